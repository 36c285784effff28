//! A link plays the recording it was issued for and never another (issue
//! 20 item 1, and its "Also"): with the ledger's files put back from an
//! older copy by hand, the next call gets B's id, and B's link is refused
//! instead of playing that call; after `ledger restore` and new archives,
//! B's link plays B; a revoked link is refused and counted while the
//! recording's other links keep playing.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use super::*;

const DUE_NOW: &str = "settle = \"1s\"\nupload_after = \"0s\"\nrescan = \"1s\"";

/// A call from yesterday to `phone`: its name and bytes.
fn call(s: &Served, phone: &str, seed: u64) -> (String, Vec<u8>) {
    let when = chrono::Local::now() - chrono::Duration::days(1);
    let name = format!("{}_{phone}-all.wav", when.format("%Y%m%d-%H%M%S"));
    let bytes = wav(0.5, seed);
    put_recording(
        &s.site.spool,
        name.as_bytes(),
        &bytes,
        Duration::from_secs(3600),
    );
    (name, bytes)
}

fn once(s: &Served) {
    expect_code(&s.site.recvault(&["run", "--once"]), 0);
}

/// The ledger id of `name`, read without opening the ledger as recvault
/// does (which would bring its schema up to this build's).
fn id_of(s: &Served, name: &str) -> i64 {
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
    let conn = rusqlite::Connection::open_with_flags(s.site.ledger_path(), flags).unwrap();
    conn.query_row(
        "SELECT id FROM recordings WHERE name = ?1",
        [name.as_bytes()],
        |r| r.get(0),
    )
    .unwrap_or_else(|e| panic!("{name} is not in the ledger: {e}"))
}

/// The ledger's files as a file-level backup holds them (nothing running).
fn ledger_files(s: &Served) -> Vec<(PathBuf, Option<Vec<u8>>)> {
    ["", "-wal", "-shm"]
        .iter()
        .map(|ext| {
            let path = PathBuf::from(format!("{}{ext}", s.site.ledger_path().display()));
            let bytes = fs::read(&path).ok();
            (path, bytes)
        })
        .collect()
}

fn put_back(files: &[(PathBuf, Option<Vec<u8>>)]) {
    for (path, bytes) in files {
        match bytes {
            Some(b) => fs::write(path, b).unwrap(),
            None => {
                let _ = fs::remove_file(path);
            }
        }
    }
}

fn refused(metrics: &str, reason: &str) -> u64 {
    let line = format!("recvault_http_refused_total{{reason=\"{reason}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&line))
        .unwrap_or_else(|| panic!("no {line} in {metrics}"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_ledger_put_back_by_hand_never_makes_a_link_play_another_call() {
    let g = garage();
    let mut s = Served::new("link_identity", Target::Garage(&g), DUE_NOW, "");
    call(&s, "5550000001", 1);
    once(&s);
    let copy = ledger_files(&s);
    let (b, _) = call(&s, "5550000002", 2);
    once(&s);
    let b_id = id_of(&s, &b);
    // B's permanent link, as VICIdial's recording_log.location keeps it.
    let b_link = s.link(b.as_bytes(), &["--permanent"]);
    // The operator puts back last night's copy of the ledger's files.
    put_back(&copy);
    let (c, c_bytes) = call(&s, "5550000003", 3);
    once(&s);
    assert_eq!(
        id_of(&s, &c),
        b_id,
        "the copy handed B's id to C: the case a link must survive"
    );
    s.start().await;
    let r = fetch(s.port, &b_link, &[]).await;
    assert_ne!(
        sha256(&r.body),
        sha256(&c_bytes),
        "B's link played C's call"
    );
    assert_eq!((r.status, r.text().trim()), (403, "bad signature"));
    let m = fetch(s.port, "/metrics", &[]).await.text();
    assert_eq!(refused(&m, "bad_signature"), 1, "{m}");
    // C has a link of its own, which plays C.
    let c_link = s.link(c.as_bytes(), &["--permanent"]);
    assert_ne!(signature_of(&c_link), signature_of(&b_link));
    let r = fetch(s.port, &c_link, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(sha256(&r.body), sha256(&c_bytes));
    s.stop();
    // The refused request is not a listen: nothing of it in the audit trail.
    let audit = audit_lines(&s.site, &["--action", "listen"]);
    assert_eq!(audit.len(), 1, "{audit:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_ledger_restore_and_new_archives_an_old_link_plays_its_own_call() {
    let g = garage();
    let mut s = Served::new("link_restore", Target::Garage(&g), DUE_NOW, "");
    call(&s, "5550000001", 1);
    once(&s);
    expect_code(&s.site.recvault(&["ledger", "backup"]), 0);
    let (b, b_bytes) = call(&s, "5550000002", 2);
    once(&s);
    let b_link = s.link(b.as_bytes(), &["--permanent"]);
    // The disk holding the ledger dies; the backup is restored.
    for (path, _) in ledger_files(&s) {
        let _ = fs::remove_file(path);
    }
    expect_code(&s.site.recvault(&["ledger", "restore"]), 0);
    let (c, c_bytes) = call(&s, "5550000003", 3);
    once(&s);
    s.start().await;
    let r = fetch(s.port, &b_link, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(sha256(&r.body), sha256(&b_bytes), "B's link plays B");
    let c_link = s.link(c.as_bytes(), &["--permanent"]);
    assert_ne!(c_link, b_link);
    let r = fetch(s.port, &c_link, &[]).await;
    assert_eq!(sha256(&r.body), sha256(&c_bytes));
    s.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_link_is_refused_and_counted_while_the_others_play() {
    let g = garage();
    let mut s = Served::new("link_revoke", Target::Garage(&g), DUE_NOW, "");
    let (b, b_bytes) = call(&s, "5550000002", 2);
    s.start().await;
    for _ in 0..300 {
        if s.count("local_deleted") == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let permanent = s.link(b.as_bytes(), &["--permanent"]);
    let hour = s.link(b.as_bytes(), &["--ttl", "1h"]);
    let whole = format!("http://127.0.0.1:{}{permanent}", s.port);

    // The plan first: nothing changes without --confirm.
    let plan = s.site.recvault(&["url", "revoke", &whole]);
    expect_code(&plan, 0);
    let text = String::from_utf8_lossy(&plan.stdout).into_owned();
    assert!(
        text.contains("to revoke: the permanent link of recording 1 `")
            && text.contains("nothing changed; run again with --confirm"),
        "{text}"
    );
    assert_eq!(fetch(s.port, &permanent, &[]).await.status, 200);
    let done = s.site.recvault(&["url", "revoke", &whole, "--confirm"]);
    expect_code(&done, 0);
    let text = String::from_utf8_lossy(&done.stdout).into_owned();
    assert!(
        text.contains("revoked 1 signature(s) of recording 1"),
        "{text}"
    );

    // The running server refuses it at once; the recording's other link plays.
    let r = fetch(s.port, &permanent, &[]).await;
    assert_eq!((r.status, r.text().trim()), (403, "this link was revoked"));
    let r = fetch(s.port, &hour, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(sha256(&r.body), sha256(&b_bytes));
    let m = fetch(s.port, "/metrics", &[]).await.text();
    assert_eq!(refused(&m, "revoked"), 1, "{m}");
    let again = s.site.recvault(&["url", "revoke", &permanent, "--confirm"]);
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("already revoked"),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );

    // A forged link plays nothing: there is nothing to revoke, and nothing
    // is recorded for it.
    let forged = s.site.recvault(&["url", "revoke", &tampered(&permanent)]);
    expect_code(&forged, 2);
    assert!(
        String::from_utf8_lossy(&forged.stderr).contains("nothing to revoke"),
        "{}",
        String::from_utf8_lossy(&forged.stderr)
    );
    // By id: every permanent link of the recording (here the one issued
    // before it was hashed, if any, is among them); expiring ones still play.
    let by_id = s.site.recvault(&["url", "revoke", "1", "--confirm"]);
    expect_code(&by_id, 0);
    assert_eq!(fetch(s.port, &permanent, &[]).await.status, 403);
    assert_eq!(fetch(s.port, &hour, &[]).await.status, 200);
    s.stop();
    // The ledger keeps digests, never a signature.
    let ledger = fs::read(s.site.ledger_path()).unwrap();
    let wal = fs::read(format!("{}-wal", s.site.ledger_path().display())).unwrap_or_default();
    let sig = signature_of(&permanent);
    for bytes in [&ledger, &wal] {
        assert!(!bytes.windows(sig.len()).any(|w| w == sig.as_bytes()));
    }
}
