//! The daemon with `[vicidial]` on, end to end: the real binary, Garage, and
//! a VICIdial database in MariaDB. Campaigns come from the database for
//! default `FULLDATE_CUSTPHONE` names, retention follows them, archiving
//! never waits for the database, and its password is never logged.

use std::fs;
use std::time::Duration;

use recvault::store::meta;

use super::dialer::{DUE_NOW, Dialer, output};
use super::relay::Relay;
use super::{SERVER_IP, mariadb_port};
use crate::common::*;

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

fn append(site: &Site, text: &str) {
    let mut config = fs::read_to_string(&site.config).unwrap();
    config.push_str(text);
    fs::write(&site.config, config).unwrap();
}

/// Recordings matching `condition` (0 before the daemon made the ledger).
fn count(d: &Dialer, condition: &str) -> i64 {
    d.try_ledger_value(&format!(
        "SELECT COUNT(*) FROM recordings WHERE {condition}"
    ))
    .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn campaigns_come_from_the_database_and_retention_follows_them() {
    let g = garage();
    let spool = "settle = \"1s\"\nupload_after = \"4s\"\nrescan = \"2s\"";
    let Some(mut d) = Dialer::new("vd_campaigns", &g, spool).await else {
        return;
    };
    append(
        &d.site,
        "\n[retention]\ndefault = \"30d\"\n\n[retention.campaigns]\nCOLLECT = \"90d\"\nSALES = \"forever\"\n",
    );
    let collect = d.call(2001, "COLLECT", "agent7", 100).await;
    let sales = d.call(2002, "SALES", "agent8", 100).await;
    // A fresh call: attributed before its upload, so its object says so.
    let fresh = d.call(2003, "SALES", "agent9", 0).await;
    // A file the database has no row for: the name's attribution stands.
    let when = chrono::Local::now() - chrono::Duration::days(100);
    let orphan = format!("{}_5550000000-all.wav", when.format("%Y%m%d-%H%M%S"));
    put_recording(
        &d.site.spool,
        orphan.as_bytes(),
        &wav(1.0, 9),
        100 * 24 * HOUR,
    );
    d.start();
    d.wait_for(MINUTE, "attribution and archiving", |d| {
        count(d, "db_attribution = 'done'") == 3 && count(d, "state = 'local_deleted'") == 4
    })
    .await;
    d.stop();

    let field = |name: &str, column: &str| -> Option<String> {
        d.ledger_value(&format!(
            "SELECT CAST({column} AS TEXT) FROM recordings WHERE name = CAST('{name}' AS BLOB)"
        ))
    };
    assert_eq!(field(&collect, "campaign").as_deref(), Some("COLLECT"));
    assert_eq!(field(&collect, "agent").as_deref(), Some("agent7"));
    assert_eq!(field(&collect, "lead_id").as_deref(), Some("2001"));
    assert_eq!(field(&collect, "phone").as_deref(), Some("5550002001"));
    assert_eq!(field(&collect, "call_length").as_deref(), Some("61"));
    assert_eq!(
        field(&collect, "vicidial_recording_id").as_deref(),
        Some("2001")
    );
    assert_eq!(field(&collect, "db_source").as_deref(), Some("outbound"));
    assert_eq!(field(&sales, "campaign").as_deref(), Some("SALES"));
    // The name gives a phone but no campaign; the database has no row.
    assert_eq!(field(&orphan, "campaign"), None);
    assert_eq!(field(&orphan, "phone").as_deref(), Some("5550000000"));
    assert_eq!(field(&orphan, "db_attribution").as_deref(), Some("missing"));

    // The fresh call's object carries what the database said.
    let key: String = field(&fresh, "object_key").unwrap();
    let store = g.store(64 << 20, 16 << 20).await;
    let info = store.head(&key).await.unwrap().unwrap();
    assert_eq!(
        info.metadata.get(meta::CAMPAIGN).map(String::as_str),
        Some("SALES")
    );
    assert_eq!(
        info.metadata.get(meta::AGENT).map(String::as_str),
        Some("agent9")
    );
    assert_eq!(
        info.metadata.get(meta::LEAD_ID).map(String::as_str),
        Some("2003")
    );
    assert_eq!(
        info.metadata
            .get(meta::VICIDIAL_RECORDING_ID)
            .map(String::as_str),
        Some("2003")
    );

    // Status counts what waits and why.
    let status = d.site.recvault(&["status"]);
    expect_code(&status, 0);
    let status_text = output(&status);
    assert!(
        status_text.contains("VICIdial attribution: 3 attributed (0 from archive tables), 1 waiting (0 not asked yet, 1 no recording_log row yet, 0 database unavailable)"),
        "{status_text}"
    );
    // Retention deletes by the database's campaigns: COLLECT (100 days,
    // 90d) goes, SALES stays; the orphan would be due under the default
    // but waits for its attribution.
    let run = d.site.recvault(&["retention", "run"]);
    expect_code(&run, 0);
    assert_eq!(field(&collect, "state").as_deref(), Some("remote_deleted"));
    assert_eq!(
        field(&collect, "deleted_by").as_deref(),
        Some("retention.campaigns.COLLECT = 90d")
    );
    assert_eq!(field(&sales, "state").as_deref(), Some("local_deleted"));
    assert_eq!(field(&orphan, "state").as_deref(), Some("local_deleted"));
    let collect_key = field(&collect, "object_key").unwrap();
    assert!(store.head(&collect_key).await.unwrap().is_none());
    d.assert_password_never_logged(&(status_text + &output(&run)));

    // The ledger lost: rebuilt from the objects, the campaigns only the
    // database knew are back (its metadata), and not asked for again.
    std::fs::remove_file(d.site.ledger_path()).unwrap();
    expect_code(&d.site.recvault(&["ledger", "rebuild", "--from-store"]), 0);
    assert_eq!(field(&fresh, "campaign").as_deref(), Some("SALES"));
    assert_eq!(field(&fresh, "agent").as_deref(), Some("agent9"));
    assert_eq!(field(&fresh, "lead_id").as_deref(), Some("2003"));
    assert_eq!(field(&fresh, "db_attribution").as_deref(), Some("done"));
    assert_eq!(
        field(&fresh, "vicidial_recording_id").as_deref(),
        Some("2003")
    );
    // The orphan's object said only what its name said: the phone.
    assert_eq!(field(&orphan, "campaign"), None);
    assert_eq!(field(&orphan, "phone").as_deref(), Some("5550000000"));
    assert_eq!(field(&orphan, "db_attribution"), None, "asked again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archiving_goes_on_while_the_database_is_down_and_attribution_follows() {
    let g = garage();
    let Some(mut d) = Dialer::new("vd_down", &g, DUE_NOW).await else {
        return;
    };
    d.serve("");
    let relay = Relay::start(mariadb_port()).await;
    d.point_at(relay.port);
    relay.down();
    let a = d.call(3001, "SALES", "agent1", 2).await;
    let b = d.call(3002, "COLLECT", "agent2", 2).await;
    d.start();
    // Archived while the database is unreachable.
    d.wait_for(MINUTE, "archiving without the database", |d| {
        count(d, "state = 'local_deleted'") == 2
    })
    .await;
    d.wait_for(MINUTE, "the failure to be recorded", |d| {
        count(d, "db_attribution = 'failed'") == 2
    })
    .await;
    let status = output(&d.site.recvault(&["status"]));
    assert!(status.contains("2 database unavailable"), "{status}");
    let health = crate::serve::fetch(d.port, "/healthz", &[]).await;
    assert_eq!(health.status, 503, "{}", health.text());
    assert!(
        health.text().contains("database: unreachable"),
        "{}",
        health.text()
    );
    assert!(health.text().contains("store: ok"), "{}", health.text());
    assert!(
        status.contains("last database failure: database unavailable"),
        "{status}"
    );
    relay.up();
    d.wait_for(2 * MINUTE, "attribution once the database is back", |d| {
        count(d, "db_attribution = 'done'") == 2
    })
    .await;
    d.wait_for(
        2 * MINUTE,
        "the location update once the database is back",
        |d| {
            d.try_ledger_value::<i64>("SELECT COUNT(*) FROM locations WHERE state = 'rewritten'")
                .unwrap_or(0)
                == 2
        },
    )
    .await;
    let location =
        d.fx.text("SELECT location FROM recording_log WHERE recording_id = 3001")
            .await
            .unwrap();
    assert!(location.contains(&format!(":{}/r/", d.port)), "{location}");
    let health = crate::serve::fetch(d.port, "/healthz", &[]).await;
    assert_eq!(health.status, 200, "{}", health.text());
    d.stop();
    let campaign = |name: &str| -> Option<String> {
        d.ledger_value(&format!(
            "SELECT campaign FROM recordings WHERE name = CAST('{name}' AS BLOB)"
        ))
    };
    assert_eq!(campaign(&a).as_deref(), Some("SALES"));
    assert_eq!(campaign(&b).as_deref(), Some("COLLECT"));
    let log = d.log_text();
    assert!(log.contains("attribution from VICIdial waits"), "{log}");
    assert!(log.contains("VICIdial database answers again"), "{log}");
    d.assert_password_never_logged(&status);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_attribution_leaves_nothing_half_done() {
    let g = garage();
    // Nothing is archived: only intake and attribution run.
    let spool = "settle = \"1s\"\nupload_after = \"30d\"\nrescan = \"1h\"";
    let Some(mut d) = Dialer::new("vd_kill", &g, spool).await else {
        return;
    };
    const N: u32 = 2000;
    // The calls began before their files (an hour old) were written.
    let epoch = chrono::Local::now().timestamp() - 2 * 3600;
    let mut rows = Vec::new();
    let mut calls = Vec::new();
    let mut leads = Vec::new();
    for id in 1..=N {
        let stem = format!("kill{id:05}");
        put_recording(
            &d.site.spool,
            format!("{stem}-all.wav").as_bytes(),
            b"RIFF",
            HOUR,
        );
        let uniqueid = format!("{epoch}.{id}");
        rows.push(format!(
            "({id}, '{SERVER_IP}', {epoch}, 5, '{stem}', 'http://{SERVER_IP}/RECORDINGS/{stem}-all.wav', {id}, 'VDAD', '{uniqueid}')"
        ));
        calls.push(format!(
            "('{uniqueid}', {id}, 'C{}', 'a{id}', '555{id}')",
            id % 7
        ));
        leads.push(format!("({id}, 1, '555{id}')"));
    }
    d.fx.exec(&format!(
        "INSERT INTO recording_log (recording_id, server_ip, start_epoch, length_in_sec, filename, location, lead_id, user, vicidial_id) VALUES {}",
        rows.join(",")
    ))
    .await;
    d.fx.exec(&format!(
        "INSERT INTO vicidial_log (uniqueid, lead_id, campaign_id, user, phone_number) VALUES {}",
        calls.join(",")
    ))
    .await;
    d.fx.exec(&format!(
        "INSERT INTO vicidial_list (lead_id, list_id, phone_number) VALUES {}",
        leads.join(",")
    ))
    .await;
    d.start();
    d.wait_for(2 * MINUTE, "attribution to start", |d| {
        count(d, "db_attribution = 'done'") > 0
    })
    .await;
    d.kill();
    let done = count(&d, "db_attribution = 'done'");
    // Every recording is attributed entirely or not at all.
    assert_eq!(
        count(
            &d,
            "db_attribution = 'done' AND (campaign IS NULL OR agent IS NULL OR vicidial_recording_id IS NULL)"
        ),
        0
    );
    assert_eq!(
        count(&d, "db_attribution IS NOT 'done' AND agent IS NOT NULL"),
        0
    );
    assert_eq!(
        d.ledger_value::<i64>("SELECT COUNT(*) FROM locations"),
        done,
        "one location row per attributed recording"
    );
    eprintln!("killed with {done} of {N} attributed");
    d.start();
    d.wait_for(2 * MINUTE, "every recording attributed", |d| {
        count(d, "db_attribution = 'done'") == N as i64
    })
    .await;
    d.stop();
    assert_eq!(
        d.ledger_value::<i64>(
            "SELECT COUNT(*) FROM (SELECT recording_id FROM events WHERE detail LIKE 'attributed from VICIdial%' \
             GROUP BY recording_id HAVING COUNT(*) = 1)"
        ),
        N as i64,
        "exactly one attribution event each"
    );
    assert_eq!(
        count(
            &d,
            "campaign = 'C' || (CAST(vicidial_recording_id AS INTEGER) % 7) AND agent = 'a' || vicidial_recording_id"
        ),
        N as i64
    );
}
