//! Recovery tools with the real binary and a real Garage: the ledger backed
//! up by the daemon and restored, rebuilt from object metadata after it is
//! lost, checked for broken invariants, and objects re-read by `verify`.

use std::collections::BTreeMap;
use std::fs;
use std::process::Stdio;
use std::time::Duration;

use recvault::recording::State;

use crate::common::*;

const HOUR: Duration = Duration::from_secs(3600);
const DUE_NOW: &str = "settle = \"1s\"\nupload_after = \"0s\"";

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A Garage site with `n` recordings archived; returns their bytes by name.
fn archived_site(test: &str, g: &Garage, n: u64) -> (Site, BTreeMap<String, Vec<u8>>) {
    let mut site = Site::new(test);
    site.configure(Target::Garage(g), DUE_NOW);
    let mut originals = BTreeMap::new();
    for i in 0..n {
        let name = format!("20260305-1200{i:02}_5550000{i:03}-all.wav");
        let bytes = wav(0.5 + i as f64 * 0.25, 500 + i);
        put_recording(&site.spool, name.as_bytes(), &bytes, HOUR);
        originals.insert(name, bytes);
    }
    expect_code(&site.recvault(&["run", "--once"]), 0);
    (site, originals)
}

fn backups(site: &Site, g: &Garage) -> Vec<String> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let prefix = format!("{}.recvault/ledger/testhost/", site.prefix);
    rt.block_on(async { g.store(64 << 20, 16 << 20).await.list(&prefix).await })
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect()
}

#[test]
fn the_daemon_backs_the_ledger_up_and_restore_brings_it_back() {
    let g = garage();
    let (site, originals) = archived_site("backup", &g, 4);
    site.set_option("ledger", "backup_every", "\"2s\"");
    site.set_option("ledger", "backup_keep", "2");
    let log = fs::File::create(site.root.join("daemon.log")).unwrap();
    let mut daemon = site
        .command(&["run"])
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    // Three backups taken means at least one generation was pruned.
    let mut seen = std::collections::BTreeSet::new();
    wait_for(Duration::from_secs(60), "three ledger backups", || {
        seen.extend(backups(&site, &g));
        seen.len() >= 3
    });
    // Restoring is refused while the daemon runs.
    let refused = site.recvault(&["ledger", "restore"]);
    expect_code(&refused, 1);
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("already running"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
    assert_eq!(daemon.wait().unwrap().code(), Some(0));
    let kept = backups(&site, &g);
    assert!(kept.len() <= 2, "backup_keep = 2, found {kept:?}");

    // The disk dies: the ledger is gone. Restore it from the bucket.
    for ext in ["", "-wal", "-shm"] {
        let _ = fs::remove_file(format!("{}{ext}", site.ledger_path().display()));
    }
    let out = site.recvault(&["ledger", "restore"]);
    expect_code(&out, 0);
    assert!(
        stdout(&out).contains(kept.last().unwrap()),
        "{}",
        stdout(&out)
    );
    expect_code(&site.recvault(&["ledger", "check"]), 0);
    assert_eq!(
        site.states().get(&State::LocalDeleted),
        Some(&(originals.len() as u64))
    );
    for (name, bytes) in &originals {
        assert_eq!(restore(&site, name.as_bytes()), *bytes);
    }
}

#[test]
fn a_lost_ledger_is_rebuilt_from_object_metadata() {
    let g = garage();
    let (site, originals) = archived_site("rebuild", &g, 5);
    // One archived recording is back in the spool (restored by hand, same
    // name, size and mtime): the rebuilt ledger must know it is archived.
    let (back_name, back_bytes) = originals.iter().next().unwrap();
    let back_path = site.spool.join(back_name);
    restore_to(&site, back_name, &back_path);
    let ledger = site.ledger();
    let rec = ledger.find(back_name.as_bytes()).unwrap().remove(0);
    let mtime = std::time::UNIX_EPOCH + Duration::from_nanos(rec.identity.mtime_ns as u64);
    fs::File::options()
        .write(true)
        .open(&back_path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    drop(ledger);
    // Legal holds must survive the lost disk too (an active and a released one).
    let (held_name, _) = originals.iter().nth(1).unwrap();
    expect_code(
        &site.recvault(&[
            "hold",
            "add",
            "CASE-7",
            "--reason",
            "litigation",
            "--recording",
            held_name,
        ]),
        0,
    );
    expect_code(
        &site.recvault(&[
            "hold",
            "add",
            "OLD-1",
            "--reason",
            "dispute",
            "--phone",
            "555 000 0000",
        ]),
        0,
    );
    expect_code(
        &site.recvault(&["hold", "release", "OLD-1", "--reason", "settled"]),
        0,
    );
    // A recording never archived is only a spool file: taken in afresh.
    let fresh = put_recording(&site.spool, b"not-yet.wav", &wav(0.5, 1), HOUR);

    let refused = site.recvault(&["ledger", "rebuild", "--from-store"]);
    expect_code(&refused, 1);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--force"));
    fs::remove_file(site.ledger_path()).unwrap();
    let out = site.recvault(&["ledger", "rebuild", "--from-store"]);
    expect_code(&out, 0);
    let text = stdout(&out);
    assert!(
        text.contains("5 recordings (1 still in the spool"),
        "{text}"
    );
    assert!(text.contains("2 legal holds"), "{text}");
    let holds = stdout(&site.recvault(&["hold", "list"]));
    assert!(
        holds.contains("CASE-7") && holds.contains("OLD-1"),
        "{holds}"
    );
    let show = site.recvault(&["hold", "show", "CASE-7"]);
    expect_code(&show, 0);
    assert!(
        stdout(&show).contains(held_name.as_str()),
        "{}",
        stdout(&show)
    );
    expect_code(&site.recvault(&["ledger", "check"]), 0);
    let states = site.states();
    assert_eq!(states.get(&State::LocalDeleted), Some(&4), "{states:?}");
    assert_eq!(states.get(&State::Verified), Some(&1), "{states:?}");
    for (name, bytes) in &originals {
        assert_eq!(restore(&site, name.as_bytes()), *bytes);
    }
    // The daemon carries on: the verified copy goes, nothing is uploaded twice.
    expect_code(&site.recvault(&["run", "--once"]), 0);
    assert!(!back_path.exists() && !fresh.exists());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let objects = rt.block_on(async {
        recording_objects(&*g.store(64 << 20, 16 << 20).await, &site.prefix).await
    });
    assert_eq!(objects.len(), originals.len() + 1);
    assert_eq!(&restore(&site, back_name.as_bytes()), back_bytes);
}

fn restore_to(site: &Site, name: &str, path: &std::path::Path) {
    let mut cmd = site.command(&["restore", "-o"]);
    expect_code(&cmd.arg(path).arg(name).output().unwrap(), 0);
}

#[test]
fn verify_finds_missing_and_altered_objects() {
    let g = garage();
    let (site, originals) = archived_site("verify", &g, 4);
    let out = site.recvault(&["verify", "--all", "--verbose"]);
    expect_code(&out, 0);
    assert_eq!(
        stdout(&out)
            .lines()
            .filter(|l| l.starts_with("ok\t"))
            .count(),
        4
    );
    expect_code(
        &site.recvault(&["verify", "--sample", "2", "--since", "2000-01-01"]),
        0,
    );

    let ledger = site.ledger();
    let names: Vec<&String> = originals.keys().collect();
    let gone = ledger.find(names[0].as_bytes()).unwrap().remove(0);
    let altered = ledger.find(names[1].as_bytes()).unwrap().remove(0);
    let gone_key = gone.object_key.clone().unwrap();
    let altered_key = altered.object_key.clone().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = g.store(64 << 20, 16 << 20).await;
        store.delete(&gone_key).await.unwrap();
        // Same key, same size, different bytes (what bit rot would leave).
        let fake = site.root.join("fake");
        let mut bytes = vec![0u8; altered.object_size.unwrap() as usize];
        bytes[0] = 1;
        fs::write(&fake, &bytes).unwrap();
        store.delete(&altered_key).await.unwrap();
        let meta = BTreeMap::new();
        store
            .put(&recvault::store::PutRequest {
                key: &altered_key,
                source: recvault::store::Body::File(&fake),
                size: bytes.len() as u64,
                sha256: recvault::digest::sha256(&bytes),
                metadata: &meta,
                content_type: "application/zstd",
            })
            .await
            .unwrap();
    });
    let out = site.recvault(&["verify", "--all"]);
    expect_code(&out, 1);
    let text = stdout(&out);
    assert!(text.contains(&format!("MISSING\t{gone_key}")), "{text}");
    assert!(text.contains(&format!("MISMATCH\t{altered_key}")), "{text}");
    assert!(
        text.contains("4 objects: 2 ok, 1 missing, 1 mismatched"),
        "{text}"
    );
    // The finding stays in the recording's history.
    let conn = rusqlite::Connection::open(site.ledger_path()).unwrap();
    let noted: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM events WHERE recording_id = ?1 AND detail LIKE 'verify: MISSING%'",
            [gone.id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(noted, 1);
}

#[test]
fn ledger_check_names_broken_invariants() {
    let mut site = Site::new("check-inv");
    site.configure(Target::Local, DUE_NOW);
    put_recording(&site.spool, b"a.wav", &wav(0.5, 1), HOUR);
    put_recording(&site.spool, b"b.wav", &wav(0.5, 2), HOUR);
    expect_code(&site.recvault(&["run", "--once"]), 0);
    let out = site.recvault(&["ledger", "check"]);
    expect_code(&out, 0);
    assert!(stdout(&out).contains(": ok"));
    let conn = rusqlite::Connection::open(site.ledger_path()).unwrap();
    conn.execute(
        "UPDATE recordings SET verified_at = NULL WHERE name = CAST('a.wav' AS BLOB)",
        [],
    )
    .unwrap();
    drop(conn);
    let out = site.recvault(&["ledger", "check"]);
    expect_code(&out, 1);
    let text = stdout(&out);
    assert!(
        text.contains("only after its object was verified"),
        "{text}"
    );
    assert!(
        text.contains("ids [1]") || text.contains("ids [2]"),
        "{text}"
    );
}

#[test]
fn the_daemon_scrub_reports_an_object_lost_behind_its_back() {
    let g = garage();
    let (site, originals) = archived_site("scrub", &g, 3);
    site.set_option("store", "scrub_every", "\"1s\"");
    site.set_option("store", "scrub_sample", "10");
    let name = originals.keys().next().unwrap();
    let key = site
        .ledger()
        .find(name.as_bytes())
        .unwrap()
        .remove(0)
        .object_key
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async { g.store(64 << 20, 16 << 20).await.delete(&key).await })
        .unwrap();

    let mut child = site
        .command(&["run"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut log = Vec::new();
    while !log
        .iter()
        .any(|l: &String| l.contains("scrub found missing or damaged objects"))
    {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => log.push(line),
            Err(_) => panic!("no scrub report within 60 s:\n{}", log.join("\n")),
        }
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert!(
        log.iter().any(|l| l.contains(&key)),
        "the lost object is named:\n{}",
        log.join("\n")
    );
}
