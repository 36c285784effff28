//! The fleet's catalog read from any box: `find --phone` on C matches the
//! recordings A and B erased through their pseudonyms (the boxes share one
//! pseudonym key) and shows nothing readable; `ls --fleet` on C prints every
//! box's recordings in `ls`'s own format; `export` on C of A's recordings
//! reads them from the store and makes the zip A makes. `fleet status` says
//! when a box's pseudonym key is not the others'.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use super::{Cluster, text};
use crate::common::*;
use crate::requests::export::read_zip;

/// The fleet's shared pseudonym key, as an operator copies it to each box.
fn share_key(c: &mut Cluster, hosts: &[&str]) {
    let key = format!("{}\n", "5a".repeat(32));
    for host in hosts {
        let path = c.node(host).site.root.join("pseudonym.key");
        fs::write(&path, &key).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    }
}

/// The recording lines of `find` (without its header and summary).
fn found(out: &str) -> Vec<String> {
    let lines: Vec<&str> = out.lines().collect();
    lines[1..lines.len().saturating_sub(1)]
        .iter()
        .map(|l| l.to_string())
        .collect()
}

const PERSON: &str = "5550007777";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_on_any_box_matches_every_boxs_erased_recordings_by_pseudonym() {
    let Some(mut c) = Cluster::new("fleet_find_erased", &["A", "B", "C"]).await else {
        return;
    };
    expect_code(&c.node("A").recvault(&["fleet", "init", "--confirm"]), 0);
    share_key(&mut c, &["A", "B", "C"]);
    let on_a = c.node("A").call(PERSON, 1, 81);
    let on_b = c.node("B").call(PERSON, 2, 82);
    for host in ["A", "B", "C"] {
        c.node(host).start();
    }
    c.node("A").wait_state(&on_a, "local_deleted").await;
    c.node("B").wait_state(&on_b, "local_deleted").await;
    c.wait_db(
        "both recordings in the catalog",
        &format!("SELECT COUNT(*) FROM recvault_recordings WHERE phone = '{PERSON}'"),
        2,
    )
    .await;
    let erase = |token: Option<&str>| {
        let mut args = vec!["erase", "--phone", PERSON, "--request", "GDPR-7"];
        args.extend(token.map(|t| ["--confirm", t]).into_iter().flatten());
        text(&c.boxes[0].recvault(&args))
    };
    let preview = erase(None);
    let token = preview
        .split("--confirm ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .unwrap_or_else(|| panic!("no token in:\n{preview}"))
        .to_string();
    let confirmed = erase(Some(&token));
    assert!(confirmed.contains("erasure request GDPR-7"), "{confirmed}");
    c.wait_db(
        "both erased and published",
        "SELECT COUNT(*) FROM recvault_recordings WHERE erased_at IS NOT NULL AND phone LIKE 'erased:%'",
        2,
    )
    .await;

    // C finds both by the number, as A does, and prints nothing readable.
    let on_c = c.node("C").recvault(&["find", "--phone", PERSON]);
    expect_code(&on_c, 0);
    let lines = found(&text(&on_c));
    assert_eq!(lines.len(), 2, "{}", text(&on_c));
    for (line, host) in lines.iter().zip(["B", "A"]) {
        assert!(line.starts_with(&format!("{host}\t")), "{line}");
        assert!(line.contains("erased"), "{line}");
        assert!(!line.contains(PERSON), "a readable trace: {line}");
    }
    let on_a = c.node("A").recvault(&["find", "--phone", PERSON]);
    assert_eq!(found(&text(&on_a)), lines, "C answers as A does");
    let json = c.node("C").recvault(&["find", "--phone", PERSON, "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(rows.as_array().map(Vec::len), Some(2), "{rows}");
    assert!(!rows.to_string().contains(PERSON), "{rows}");

    // `ls --fleet` lists them as each box's `ls` does, nothing readable.
    let ls = c
        .node("C")
        .recvault(&["ls", "--fleet", "--state", "remote_deleted"]);
    let listed = String::from_utf8_lossy(&ls.stdout).into_owned();
    assert_eq!(listed.lines().count(), 2, "{}", text(&ls));
    assert!(!listed.contains(PERSON), "{listed}");
    let own = c.node("A").recvault(&["ls", "--state", "remote_deleted"]);
    let own = String::from_utf8_lossy(&own.stdout).into_owned();
    assert!(
        listed.contains(&format!("A\t{}", own.trim_end())),
        "{own} in {listed}"
    );

    // One shared key: `fleet status` is content; C given another, it says so.
    let status = c.node("C").recvault(&["fleet", "status"]);
    assert!(
        !text(&status).contains("PSEUDONYM KEYS DIFFER"),
        "{}",
        text(&status)
    );
    let other = format!("{}\n", "c3".repeat(32));
    fs::write(c.node("C").site.root.join("pseudonym.key"), other).unwrap();
    let deadline = std::time::Instant::now() + super::LIMIT;
    loop {
        let status = c.node("A").recvault(&["fleet", "status"]);
        if text(&status).contains("PSEUDONYM KEYS DIFFER") {
            assert_eq!(status.status.code(), Some(1), "{}", text(&status));
            assert!(
                !text(&status).contains(&"c3".repeat(8)),
                "never the key itself"
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{}", text(&status));
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    for host in ["A", "B", "C"] {
        c.node(host).stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ls_and_export_answer_for_every_box_from_any_box() {
    let Some(mut c) = Cluster::new("fleet_ls_export", &["A", "B", "C"]).await else {
        return;
    };
    expect_code(&c.node("A").recvault(&["fleet", "init", "--confirm"]), 0);
    let (x, y) = ("5550001111", "5550002222");
    let recent = c.node("A").call(x, 1, 91);
    let older = c.node("A").call(x, 5, 92);
    let on_b = c.node("B").call(y, 1, 93);
    let originals = [sha256(&wav(1.0, 91)), sha256(&wav(1.0, 92))];
    for host in ["A", "B"] {
        c.node(host).start();
    }
    for name in [&recent, &older] {
        c.node("A").wait_state(name, "local_deleted").await;
    }
    c.node("B").wait_state(&on_b, "local_deleted").await;
    c.wait_db(
        "three archived recordings in the catalog",
        "SELECT COUNT(*) FROM recvault_recordings WHERE state = 'local_deleted'",
        3,
    )
    .await;

    // `ls --fleet` on C: A's lines as A's `ls` prints them, after `A\t`.
    let ls = c.node("C").recvault(&["ls", "--fleet"]);
    expect_code(&ls, 0);
    let fleet: Vec<String> = String::from_utf8_lossy(&ls.stdout)
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(fleet.len(), 3, "{fleet:?}");
    let own = c.node("A").recvault(&["ls"]);
    let a_lines: Vec<String> = String::from_utf8_lossy(&own.stdout)
        .lines()
        .map(|l| format!("A\t{l}"))
        .collect();
    assert_eq!(a_lines.len(), 2);
    for l in &a_lines {
        assert!(fleet.contains(l), "{l} not in {fleet:?}");
    }
    assert!(fleet[0].ends_with(&older), "oldest first: {fleet:?}");
    assert!(
        fleet
            .iter()
            .any(|l| l.starts_with("B\t") && l.ends_with(&on_b))
    );
    let since = (chrono::Local::now() - chrono::Duration::days(3))
        .format("%Y-%m-%d")
        .to_string();
    let ls = c.node("C").recvault(&[
        "ls",
        "--fleet",
        "--since",
        &since,
        "--state",
        "local_deleted",
    ]);
    let recent_only = String::from_utf8_lossy(&ls.stdout).lines().count();
    assert_eq!(recent_only, 2, "{}", text(&ls));

    // `export` on C reads A's objects from the store: A's own zip.
    let mut zips = Vec::new();
    for host in ["C", "A"] {
        let zip = c.node("C").site.root.join(format!("from-{host}.zip"));
        let out = c
            .node(host)
            .recvault(&["export", "--phone", x, "-o", zip.to_str().unwrap()]);
        expect_code(&out, 0);
        zips.push(read_zip(&zip));
    }
    let (on_c, on_a) = (&zips[0], &zips[1]);
    assert_eq!(on_c["sums_match"], true);
    let mut files: Vec<String> = on_c["files"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    files.sort();
    let mut want = originals.to_vec();
    want.sort();
    assert_eq!(files, want, "the originals, bit for bit");
    for row in on_c["rows"].as_array().unwrap() {
        assert_eq!(row["status"], "exported", "{row}");
        assert!(
            row["source"].as_str().unwrap().starts_with("store "),
            "{row}"
        );
    }
    assert_eq!(on_c["files"], on_a["files"]);
    assert_eq!(on_c["rows"], on_a["rows"], "the zip A makes");
    for host in ["A", "B"] {
        c.node(host).stop();
    }
}
