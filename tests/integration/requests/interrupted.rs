//! `kill -9` in the middle of an erasure, at the moments that matter: right
//! after the set is reserved, and with some batches recorded and the next
//! one under way. The same command run again finishes the job; nothing is
//! left half-done: no copy, no readable number, an intact audit trail.

use std::fs;
use std::time::Duration;

use super::*;

const X: &str = "5557770000";

/// Every file name under `dir` (recursively, `.recvault-removing` included).
fn files_under(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path.display().to_string());
        }
    }
    out
}

/// X's call `minutes` ago, and a file age to match.
fn named(minutes: u64) -> (String, Duration) {
    let when = chrono::Local::now() - chrono::Duration::minutes(minutes as i64 + 1);
    let name = format!("SALES_agent7_{}_{X}-all.wav", when.format("%Y%m%d-%H%M%S"));
    (name, Duration::from_secs(minutes * 60 + 30))
}

#[test]
fn an_erasure_killed_anywhere_is_finished_by_running_it_again() {
    let g = garage();
    let site = site("erase-kill", Target::Garage(&g), DUE_NOW);
    // 220 calls: three batches; the newest 40 still local, the rest archived.
    for i in 0..180 {
        let (name, age) = named(i + 100);
        put_recording(&site.spool, name.as_bytes(), &wav(0.05, i), age);
    }
    ok(&site, &["run", "--once"]);
    site.set_option("spool", "upload_after", "\"30d\"");
    for i in 180..220 {
        let (name, age) = named(i - 180);
        put_recording(&site.spool, name.as_bytes(), &wav(0.05, i), age);
    }
    ok(&site, &["run", "--once"]);
    assert_eq!(found_ids(&site, &["--phone", X]).len(), 220);

    let token = token_of(&ok(&site, &["erase", "--phone", X, "--request", "K-1"]));
    let args = [
        "erase",
        "--phone",
        X,
        "--request",
        "K-1",
        "--confirm",
        &token,
    ];
    // Killed right after the reservation committed, before anything is gone.
    let landed = kill_command_when(&site, &args, Duration::from_secs(30), |c| {
        count_where(c, "deleting_what = 'erasure'") > 0
    });
    assert!(landed, "the kill after the reservation never landed");
    // Killed with a batch recorded and the next one under way.
    let landed = kill_command_when(&site, &args, Duration::from_secs(30), |c| {
        let erased = count_where(c, "erased_at IS NOT NULL");
        erased > 0 && erased < 220
    });
    assert!(landed, "the kill mid-way never landed");
    let conn = rusqlite::Connection::open(site.ledger_path()).unwrap();
    let half = count_where(&conn, "erased_at IS NOT NULL");
    assert!(half > 0 && half < 220, "{half} erased");
    // Nothing half-done: every row is erased, or still reserved for it.
    assert_eq!(
        count_where(
            &conn,
            "erased_at IS NULL AND deleting_what IS NOT 'erasure'"
        ),
        0
    );
    drop(conn);

    let started = std::time::Instant::now();
    let out = site.recvault(&args);
    expect_code(&out, 0);
    eprintln!(
        "erasure finished after two kills: {:.2} s for the remaining {} of 220",
        started.elapsed().as_secs_f64(),
        220 - half
    );
    assert!(stdout(&out).contains("220 erased"), "{}", stdout(&out));
    assert_eq!(ids_in_state(&site, &["--phone", X], "erased").len(), 220);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let objects = rt.block_on(async {
        recording_objects(&*g.store(64 << 20, 16 << 20).await, &site.prefix).await
    });
    assert!(objects.is_empty(), "objects left: {objects:?}");
    let files: Vec<String> = files_under(&site.root)
        .into_iter()
        .filter(|f| f.contains(X))
        .collect();
    assert!(files.is_empty(), "files left: {files:?}");
    assert!(!dump(&site).contains(X));
    assert!(ok(&site, &["audit", "verify"]).contains("intact"));
}
