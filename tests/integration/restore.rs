//! `ledger restore` against Garage with the real binary (issue 20, item 1):
//! a restored ledger knows what the store knows that is newer than the
//! backup — holds from the newest hold copy, recordings from their objects'
//! metadata — and no recording id is ever handed out a second time.

use std::time::Duration;

use crate::common::*;

const HOUR: Duration = Duration::from_secs(3600);
const DUE_NOW: &str = "settle = \"1s\"\nupload_after = \"0s\"";

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ok(site: &Site, args: &[&str]) -> String {
    let out = site.recvault(args);
    expect_code(&out, 0);
    stdout(&out)
}

/// A call from `days_ago` days back to `phone`, named `FULLDATE_CUSTPHONE`.
fn call(site: &Site, days_ago: i64, phone: &str, seed: u64) -> String {
    let when = chrono::Local::now() - chrono::Duration::days(days_ago);
    let name = format!("{}_{phone}-all.wav", when.format("%Y%m%d-%H%M%S"));
    let age = Duration::from_secs(days_ago as u64 * 86400) + HOUR;
    put_recording(&site.spool, name.as_bytes(), &wav(0.5, seed), age);
    name
}

fn id_of(site: &Site, name: &str) -> i64 {
    let found = site.ledger().find(name.as_bytes()).unwrap();
    found
        .first()
        .unwrap_or_else(|| panic!("{name} is not in the ledger"))
        .id
}

fn object_exists(g: &Garage, key: &str) -> bool {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async { g.store(64 << 20, 16 << 20).await.head(key).await })
        .unwrap()
        .is_some()
}

/// The disk holding the ledger dies: ledger, WAL and pseudonym key are gone.
fn lose_the_ledger(site: &Site) {
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", site.ledger_path().display()));
    }
}

#[test]
fn holds_placed_or_released_after_the_backup_are_restored_as_they_stand() {
    let g = garage();
    let mut site = Site::new("restore-holds");
    site.configure(Target::Garage(&g), DUE_NOW);
    let old = call(&site, 20, "5550000001", 1);
    let new = call(&site, 20, "5550000002", 2);
    let free = call(&site, 20, "5550000003", 3);
    ok(&site, &["run", "--once"]);
    ok(
        &site,
        &[
            "hold",
            "add",
            "CASE-OLD",
            "--reason",
            "r",
            "--recording",
            &old,
        ],
    );
    ok(
        &site,
        &[
            "hold",
            "add",
            "CASE-GONE",
            "--reason",
            "r",
            "--phone",
            "5550000003",
        ],
    );
    ok(&site, &["ledger", "backup"]);
    ok(
        &site,
        &[
            "hold",
            "add",
            "CASE-NEW",
            "--reason",
            "r",
            "--phone",
            "5550000002",
        ],
    );
    ok(
        &site,
        &["hold", "release", "CASE-GONE", "--reason", "settled"],
    );
    let keys: Vec<String> = [&old, &new, &free]
        .iter()
        .map(|n| {
            site.ledger().find(n.as_bytes()).unwrap()[0]
                .object_key
                .clone()
                .unwrap()
        })
        .collect();

    lose_the_ledger(&site);
    let text = ok(&site, &["ledger", "restore"]);
    assert!(text.contains("3 legal holds"), "{text}");
    assert!(
        text.contains("1 placed and 1 released after the backup"),
        "{text}"
    );
    let list = ok(&site, &["hold", "list"]);
    let line = |case: &str| {
        list.lines()
            .find(|l| l.contains(case))
            .unwrap_or_else(|| panic!("{case} missing from\n{list}"))
            .to_string()
    };
    assert!(!line("CASE-NEW").contains("released"), "{list}");
    assert!(!line("CASE-OLD").contains("released"), "{list}");
    assert!(line("CASE-GONE").contains("released"), "{list}");

    // Retention now deletes what no hold covers, and only that.
    site.set_option("retention", "default", "\"7d\"");
    ok(&site, &["retention", "run"]);
    assert!(object_exists(&g, &keys[0]), "CASE-OLD's recording");
    assert!(object_exists(&g, &keys[1]), "CASE-NEW's recording");
    assert!(!object_exists(&g, &keys[2]), "released: deleted");
    expect_code(&site.recvault(&["ledger", "check"]), 0);
}

#[test]
fn a_restore_brings_back_newer_recordings_and_never_hands_their_ids_out_again() {
    let g = garage();
    let mut site = Site::new("restore-ids");
    site.configure(Target::Garage(&g), DUE_NOW);
    // A listen server is configured (never started): `url` signs links for it.
    let serve = crate::serve::serve_table(&site.root, dead_port(), "");
    let text = std::fs::read_to_string(&site.config).unwrap() + &serve;
    std::fs::write(&site.config, text).unwrap();
    let a = call(&site, 2, "5550000001", 1);
    ok(&site, &["run", "--once"]);
    ok(&site, &["ledger", "backup"]);
    let b = call(&site, 2, "5550000002", 2);
    ok(&site, &["run", "--once"]);
    let b_id = id_of(&site, &b);
    assert_eq!((id_of(&site, &a), b_id), (1, 2));
    let b_key = site.ledger().recording(b_id).unwrap().object_key.unwrap();
    // B's permanent link, as VICIdial's recording_log.location would keep it.
    let b_link = ok(&site, &["url", "2", "--permanent"]);
    // D was taken in (an id handed out) but never uploaded before the disk died.
    site.set_option("spool", "upload_after", "\"30d\"");
    let d = call(&site, 0, "5550000004", 4);
    ok(&site, &["run", "--once"]);
    let d_id = id_of(&site, &d);
    assert_eq!(d_id, 3);

    lose_the_ledger(&site);
    let out = site.recvault(&["ledger", "restore"]);
    expect_code(&out, 0);
    let text = stdout(&out);
    assert!(
        text.contains("1 recording brought back from the store"),
        "{text}"
    );
    assert!(text.contains("next recording id"), "{text}");
    assert_eq!(id_of(&site, &b), b_id, "B is back under its own id");

    site.set_option("spool", "upload_after", "\"0s\"");
    let c = call(&site, 1, "5550000005", 5);
    ok(&site, &["run", "--once"]);
    let c_id = id_of(&site, &c);
    let d_again = id_of(&site, &d);
    assert!(
        c_id > d_id && d_again > d_id && c_id != d_again,
        "ids handed out before the restore (B {b_id}, D {d_id}) came back: C {c_id}, D again {d_again}"
    );
    // B's link still names B, and C has a link of its own.
    assert_eq!(ok(&site, &["url", "--permanent", "--", &b]), b_link);
    assert_ne!(ok(&site, &["url", "--permanent", "--", &c]), b_link);
    // B is the ledger's again: found, and erased with its object.
    let found = ok(&site, &["find", "--phone", "5550000002"]);
    assert!(found.contains(&b), "{found}");
    let preview = ok(
        &site,
        &["erase", "--request", "R-1", "--phone", "5550000002"],
    );
    let token = preview
        .rsplit("--confirm ")
        .next()
        .unwrap()
        .trim()
        .to_string();
    ok(
        &site,
        &[
            "erase",
            "--request",
            "R-1",
            "--phone",
            "5550000002",
            "--confirm",
            &token,
        ],
    );
    assert!(
        !object_exists(&g, &b_key),
        "B's object outlived its erasure"
    );
    expect_code(&site.recvault(&["ledger", "check"]), 0);
    expect_code(&site.recvault(&["audit", "verify"]), 0);
}
