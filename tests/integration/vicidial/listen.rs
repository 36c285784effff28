//! Listen links in VICIdial: `recording_log.location` rewritten only where
//! it still pointed at the archived file, the new location played with a
//! real HTTP client, `restore-locations` putting the old values back, a
//! kill -9 in the middle, and VICIdial logins for listeners.

use std::time::Duration;

use super::SERVER_IP;
use super::dialer::{DUE_NOW, Dialer, output};
use crate::common::*;
use crate::serve::{fetch, get};

const MINUTE: Duration = Duration::from_secs(60);

fn rows(d: &Dialer, condition: &str) -> i64 {
    d.try_ledger_value(&format!("SELECT COUNT(*) FROM locations WHERE {condition}"))
        .unwrap_or(0)
}

fn recordings(d: &Dialer, condition: &str) -> i64 {
    d.try_ledger_value(&format!(
        "SELECT COUNT(*) FROM recordings WHERE {condition}"
    ))
    .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locations_point_at_links_only_where_they_pointed_at_the_file_and_can_be_put_back() {
    let g = garage();
    let Some(mut d) = Dialer::new("vl_location", &g, DUE_NOW).await else {
        return;
    };
    d.serve("");
    d.fx.exec(&format!(
        "INSERT INTO servers (server_id, server_description, server_ip, active, recording_web_link) \
         VALUES ('dialer1', 'one', '{SERVER_IP}', 'Y', 'SERVER_IP')"
    ))
    .await;
    let ours = d.call(4001, "SALES", "a1", 1).await;
    let moved = d.call(4002, "SALES", "a2", 1).await;
    let purged = d.call(4003, "SALES", "a3", 1).await;
    let original = std::fs::read(d.site.spool.join(&ours)).unwrap();
    let local = format!("http://{SERVER_IP}/RECORDINGS/{ours}");
    let ftp = format!("http://10.0.0.20/archive/2026-03-01/{moved}");
    d.fx.exec(&format!(
        "UPDATE recording_log SET location = '{ftp}' WHERE recording_id = 4002"
    ))
    .await;
    d.fx.exec("UPDATE recording_log SET location = NULL WHERE recording_id = 4003")
        .await;
    let _ = purged;
    d.start();
    d.wait_for(MINUTE, "archiving and the location rewrite", |d| {
        recordings(d, "state = 'local_deleted'") == 3
            && rows(d, "state IN ('rewritten', 'skipped')") == 3
    })
    .await;
    let location =
        |id: u32| format!("SELECT location FROM recording_log WHERE recording_id = {id}");
    let link = d.fx.text(&location(4001)).await.unwrap();
    assert!(
        link.starts_with(&format!("http://{SERVER_IP}:{}/r/", d.port)),
        "{link}"
    );
    // Short enough for recording_log.location, ending with the file name
    // (VICIdial's GDPR export names the ZIP entry from it).
    assert!(link.len() < 150, "{link}");
    assert!(link.ends_with(&format!("/{ours}")), "{link}");
    assert_eq!(
        d.fx.text(&location(4002)).await.as_deref(),
        Some(ftp.as_str())
    );
    assert_eq!(d.fx.text(&location(4003)).await, None);
    assert_eq!(rows(&d, "state = 'rewritten'"), 1);
    let why: String =
        d.ledger_value("SELECT detail FROM locations WHERE vicidial_recording_id = 4002");
    assert!(why.contains("points elsewhere"), "{why}");

    // The new location plays the original, whole and in ranges.
    let path = d.link_path(&link);
    let whole = fetch(d.port, &path, &[]).await;
    assert_eq!(whole.status, 200, "{}", whole.text());
    assert_eq!(sha256(&whole.body), sha256(&original));
    let half = original.len() / 2;
    let a = fetch(
        d.port,
        &path,
        &[("range", &format!("bytes=0-{}", half - 1))],
    )
    .await;
    let b = fetch(d.port, &path, &[("range", &format!("bytes={half}-"))]).await;
    assert_eq!((a.status, b.status), (206, 206));
    assert_eq!(sha256(&[a.body, b.body].concat()), sha256(&original));

    // restore-locations: a dry run changes nothing; the real one needs the
    // daemon stopped, prints what it does, and puts the old value back.
    let dry = d
        .site
        .recvault(&["vicidial", "restore-locations", "--dry-run"]);
    expect_code(&dry, 0);
    let dry_text = output(&dry);
    assert!(
        dry_text.contains("1 recording_log location(s) to restore"),
        "{dry_text}"
    );
    assert!(
        dry_text.contains(&format!("{link} -> {local}")),
        "{dry_text}"
    );
    assert!(dry_text.contains("dry run: nothing changed"));
    assert_eq!(
        d.fx.text(&location(4001)).await.as_deref(),
        Some(link.as_str())
    );
    let busy = d.site.recvault(&["vicidial", "restore-locations"]);
    expect_code(&busy, 1);
    assert!(
        output(&busy).contains("stop the daemon first"),
        "{}",
        output(&busy)
    );
    let status = output(&d.site.recvault(&["status"]));
    assert!(
        status.contains("listen links in recording_log.location: 1 written"),
        "{status}"
    );
    d.stop();
    let restore = d.site.recvault(&["vicidial", "restore-locations"]);
    expect_code(&restore, 0);
    let restore_text = output(&restore);
    assert!(
        restore_text.contains("restored 1, left 0"),
        "{restore_text}"
    );
    assert_eq!(
        d.fx.text(&location(4001)).await.as_deref(),
        Some(local.as_str())
    );
    assert_eq!(
        d.fx.text(&location(4002)).await.as_deref(),
        Some(ftp.as_str())
    );
    assert_eq!(rows(&d, "state = 'restored'"), 1);
    let again = output(&d.site.recvault(&["vicidial", "restore-locations"]));
    assert!(
        again.contains("0 recording_log location(s) to restore"),
        "{again}"
    );
    d.assert_password_never_logged(&format!("{dry_text}{restore_text}{status}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_the_location_rewrite_leaves_nothing_half_done() {
    let Some(mut d) = Dialer::on("vl_kill", Target::Local, DUE_NOW).await else {
        return;
    };
    d.serve("");
    const N: u32 = 200;
    for id in 1..=N {
        d.call(5000 + id, "C", "a", 1).await;
    }
    d.start();
    d.wait_for(2 * MINUTE, "some locations rewritten", |d| {
        rows(d, "state = 'rewritten'") > 0
    })
    .await;
    d.kill();
    let rewritten = rows(&d, "state = 'rewritten'");
    eprintln!("killed with {rewritten} of {N} locations rewritten");
    // Whatever the ledger says was written is in the database, and nothing
    // the ledger does not know about was changed.
    let ledger = rusqlite::Connection::open(d.site.ledger_path()).unwrap();
    let mut stmt = ledger
        .prepare("SELECT vicidial_recording_id, state, old_location, new_location FROM locations")
        .unwrap();
    let states: Vec<(i64, String, Option<String>, Option<String>)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    drop(stmt);
    drop(ledger);
    for (vid, state, old, new) in &states {
        let now =
            d.fx.text(&format!(
                "SELECT location FROM recording_log WHERE recording_id = {vid}"
            ))
            .await;
        match state.as_str() {
            "rewritten" => assert_eq!(&now, new, "{vid}"),
            "rewriting" => assert!(now == *old || now == *new, "{vid}: {now:?}"),
            "waiting" => assert!(
                now.as_deref().is_some_and(|l| l.contains("/RECORDINGS/")),
                "{vid}: {now:?}"
            ),
            other => panic!("{vid}: {other}"),
        }
    }
    d.start();
    d.wait_for(2 * MINUTE, "every location rewritten", |d| {
        rows(d, "state = 'rewritten'") == N as i64
    })
    .await;
    d.stop();
    let links = d
        .fx
        .text(&format!(
            "SELECT CAST(COUNT(*) AS CHAR) FROM recording_log WHERE location LIKE 'http://{SERVER_IP}:{}/r/%'",
            d.port
        ))
        .await;
    assert_eq!(links.as_deref(), Some(N.to_string().as_str()));
    let once: i64 = d.ledger_value(
        "SELECT COUNT(*) FROM (SELECT recording_id FROM events WHERE detail LIKE 'recording_log.location rewritten%' \
         GROUP BY recording_id HAVING COUNT(*) = 1)",
    );
    assert_eq!(once, N as i64, "one rewrite event each");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_log_in_as_vicidial_users() {
    let g = garage();
    let Some(mut d) = Dialer::new("vl_auth", &g, DUE_NOW).await else {
        return;
    };
    d.serve("auth = \"vicidial\"\nuser_level = 7");
    d.fx.exec("INSERT INTO system_settings (version, pass_hash_enabled) VALUES ('2.14', '0')")
        .await;
    d.fx.exec(
        "INSERT INTO vicidial_users (user, pass, user_level, active) VALUES \
         ('6666', 'Sup3rvisor', 9, 'Y'), ('agent1', 'pw1', 1, 'Y'), ('gone', 'pw2', 9, 'N')",
    )
    .await;
    let file = d.call(6001, "SALES", "agent1", 1).await;
    let original = std::fs::read(d.site.spool.join(&file)).unwrap();
    let check = d.site.recvault(&["check"]);
    expect_code(&check, 0);
    let check_text = output(&check);
    assert!(
        check_text.contains("link key") && check_text.contains("VICIdial database"),
        "{check_text}"
    );
    assert!(
        check_text.contains(&format!("{}@127.0.0.1", d.user)),
        "{check_text}"
    );
    d.start();
    d.wait_for(MINUTE, "archiving", |d| {
        recordings(d, "state = 'local_deleted'") == 1
    })
    .await;
    let out = d.site.recvault(&["url", &file]);
    expect_code(&out, 0);
    let path = d.link_path(String::from_utf8_lossy(&out.stdout).trim());
    let basic = |user: &str, pass: &str| {
        use base64::Engine as _;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
        )
    };
    let none = fetch(d.port, &path, &[]).await;
    assert_eq!(none.status, 401);
    assert!(
        none.header("www-authenticate")
            .unwrap()
            .starts_with("Basic realm=")
    );
    for (user, pass) in [
        ("6666", "wrong"),
        ("agent1", "pw1"),
        ("gone", "pw2"),
        ("nobody", "x"),
    ] {
        let r = fetch(d.port, &path, &[("authorization", &basic(user, pass))]).await;
        assert_eq!(r.status, 401, "{user}");
    }
    let ok = fetch(
        d.port,
        &path,
        &[("authorization", &basic("6666", "Sup3rvisor"))],
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(sha256(&ok.body), sha256(&original));
    assert!(
        get(d.port, "/healthz", &[])
            .await
            .unwrap()
            .text()
            .contains("database: ok")
    );
    d.stop();
    let out = d.site.recvault(&["audit", "--recording", &file]);
    let audit = output(&out);
    assert!(
        audit.contains("\t6666\tlisten\t") && audit.contains("served; status 200"),
        "{audit}"
    );
    assert!(audit.contains("agent1 (refused: LevelTooLow)"), "{audit}");
    assert!(audit.contains("gone (refused: Inactive)"), "{audit}");
    assert!(!audit.contains("Sup3rvisor"), "{audit}");
    d.assert_password_never_logged(&format!("{audit}{check_text}"));
}
