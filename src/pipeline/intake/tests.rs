//! The streaming rescan against a real directory and a real ledger: a
//! directory of many entries, files appearing, vanishing and changing while
//! a rescan is under way, and inotify's intake racing it.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use super::*;
use crate::ledger::fixtures::ledger;
use crate::recording::FileIdentity;

const IGNORE: &[&str] = &[".*", "*.tmp"];

fn ignore() -> Vec<String> {
    IGNORE.iter().map(|s| s.to_string()).collect()
}

/// Writes `n` small recordings into `dir`, each with its own content.
fn fill(dir: &Path, n: usize) {
    for i in 0..n {
        fs::write(
            dir.join(format!("20260301-1015{:02}_{i:010}-all.wav", i % 60)),
            i.to_le_bytes(),
        )
        .unwrap();
    }
}

fn rescan_all(ledger: &Ledger, dir: &Path, hook: &mut dyn FnMut(u64)) -> Rescan {
    rescan(
        ledger,
        &Naming::default(),
        &[dir.to_path_buf()],
        &ignore(),
        None,
        &HashSet::new(),
        hook,
    )
    .unwrap()
}

/// Every local recording of `dir`, by path: its identity.
fn local(ledger: &Ledger, dir: &Path) -> BTreeMap<PathBuf, FileIdentity> {
    let mut out = BTreeMap::new();
    let mut after: Option<PathBuf> = None;
    loop {
        let page = ledger.local_rows_in(dir, after.as_deref(), 700).unwrap();
        let Some((last, _)) = page.last() else {
            return out;
        };
        after = Some(last.clone());
        for (path, row) in page {
            assert!(out.insert(path, row.identity).is_none(), "one row per path");
        }
    }
}

/// What the directory holds (not ignored), by path: its identity.
fn on_disk(dir: &Path) -> BTreeMap<PathBuf, FileIdentity> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| !spool::ignored(&ignore(), e.file_name().as_encoded_bytes()))
        .map(|e| (e.path(), FileIdentity::of(&e.metadata().unwrap())))
        .collect()
}

#[test]
fn a_directory_of_many_entries_is_taken_in_a_batch_at_a_time() {
    let (_l, ledger) = ledger();
    let spool = tempfile::tempdir().unwrap();
    let dir = spool.path();
    fill(dir, 20_000);
    fs::write(dir.join(".partial"), b"x").unwrap();
    fs::write(dir.join("upload.tmp"), b"x").unwrap();
    let mut batches = Vec::new();
    let first = rescan_all(&ledger, dir, &mut |n| batches.push(n));
    assert_eq!(first.report.new, 20_000);
    assert_eq!(
        batches.len(),
        20,
        "one ledger transaction per {BATCH} entries"
    );
    assert!(batches.windows(2).all(|w| w[1] - w[0] == BATCH as u64));
    assert_eq!(first.listed, vec![dir.to_path_buf()]);
    assert_eq!(local(&ledger, dir), on_disk(dir));

    // Nothing changed: nothing recorded, nothing walked.
    let again = rescan_all(&ledger, dir, &mut |_| {});
    assert_eq!(again.report, IntakeReport::default());

    // Three gone, one changed, one new.
    let names: Vec<PathBuf> = on_disk(dir).into_keys().collect();
    for gone in &names[..3] {
        fs::remove_file(gone).unwrap();
    }
    fs::write(&names[10], b"a longer recording now").unwrap();
    fs::write(dir.join("20260301-111111_5551230000-all.wav"), b"new").unwrap();
    let third = rescan_all(&ledger, dir, &mut |_| {});
    assert_eq!(
        (
            third.report.vanished,
            third.report.changed,
            third.report.new
        ),
        (3, 1, 1)
    );
    assert_eq!(local(&ledger, dir), on_disk(dir));
    for gone in &names[..3] {
        assert!(ledger.local_row_at(gone).unwrap().is_none());
    }

    // Settling pages through every seen recording.
    let settled = settle(&ledger, Duration::ZERO, &HashSet::new()).unwrap();
    assert_eq!(settled, 20_000 - 3 + 1);
}

#[test]
fn files_appearing_vanishing_and_changing_mid_rescan_end_up_exactly_as_on_disk() {
    let (_l, ledger) = ledger();
    let spool = tempfile::tempdir().unwrap();
    let dir = spool.path();
    fill(dir, 3_500);
    let mut acted = false;
    let mut hook = |_| {
        if acted {
            return;
        }
        acted = true;
        // Some entries are recorded by now, the rest not yet.
        let taken = local(&ledger, dir);
        let all: Vec<PathBuf> = on_disk(dir).into_keys().collect();
        let (known, unknown): (Vec<_>, Vec<_>) = all.iter().partition(|p| taken.contains_key(*p));
        assert!(!known.is_empty() && !unknown.is_empty());
        fs::remove_file(known[0]).unwrap();
        fs::remove_file(unknown[0]).unwrap();
        fs::write(known[1], b"changed after it was taken in").unwrap();
        fs::write(unknown[1], b"changed before it was listed").unwrap();
        fs::write(dir.join("20260301-120000_5559990000-all.wav"), b"appeared").unwrap();
    };
    let first = rescan_all(&ledger, dir, &mut hook);
    assert!(acted);
    // Whatever this rescan saw, it never recorded a path twice.
    let after_first = local(&ledger, dir);
    assert!(first.report.new >= 3_500 - 1);
    // The next rescan settles every difference.
    rescan_all(&ledger, dir, &mut |_| {});
    assert_eq!(local(&ledger, dir), on_disk(dir));
    assert!(after_first.len() >= 3_500 - 2);
}

#[test]
fn a_rescan_racing_inotify_records_each_file_once() {
    let (_l, ledger) = ledger();
    let spool = tempfile::tempdir().unwrap();
    let dir = spool.path().to_path_buf();
    fill(&dir, 2_500);
    let dirs = vec![dir.clone()];
    let mut calls = 0;
    let mut hook = |_| {
        calls += 1;
        if calls != 1 {
            return;
        }
        // inotify names a new file, a removed one and a changed one while
        // the rescan is between batches; the daemon's intake of them runs.
        let taken = local(&ledger, &dir);
        let known: Vec<PathBuf> = taken.keys().take(2).cloned().collect();
        let new = dir.join("20260301-130000_5558880000-all.wav");
        fs::write(&new, b"written during the rescan").unwrap();
        fs::remove_file(&known[0]).unwrap();
        fs::write(&known[1], b"rewritten during the rescan").unwrap();
        let named: HashSet<PathBuf> = [new, known[0].clone(), known[1].clone()].into();
        let report = reconcile_paths(
            &ledger,
            &Naming::default(),
            &dirs,
            &ignore(),
            &named,
            &HashSet::new(),
        )
        .unwrap();
        assert_eq!((report.new, report.vanished, report.changed), (1, 1, 1));
    };
    rescan_all(&ledger, &dir, &mut hook);
    assert!(calls >= 2);
    assert_eq!(local(&ledger, &dir), on_disk(&dir));
    // And a rescan afterwards finds nothing to do.
    let again = rescan_all(&ledger, &dir, &mut |_| {});
    assert_eq!(again.report, IntakeReport::default());
}

#[test]
fn a_busy_recording_is_left_to_its_worker() {
    let (_l, ledger) = ledger();
    let spool = tempfile::tempdir().unwrap();
    let dir = spool.path();
    fill(dir, 3);
    rescan_all(&ledger, dir, &mut |_| {});
    let (path, _) = local(&ledger, dir).into_iter().next().unwrap();
    let id = ledger.local_row_at(&path).unwrap().unwrap().id;
    fs::remove_file(&path).unwrap();
    let busy = HashSet::from([id]);
    let naming = Naming::default();
    let scan = rescan(
        &ledger,
        &naming,
        &[dir.to_path_buf()],
        &ignore(),
        None,
        &busy,
        &mut |_| {},
    );
    assert_eq!(scan.unwrap().report.vanished, 0);
    assert!(ledger.local_row_at(&path).unwrap().is_some());
}

#[test]
fn settled_recordings_replaced_removed_or_turned_into_links_are_found_by_a_rescan() {
    // A rescan does not look at a settled recording's file when the
    // directory lists a regular file under its name at its inode: each of
    // these differs in what the listing itself shows.
    let (_l, ledger) = ledger();
    let spool = tempfile::tempdir().unwrap();
    let dir = spool.path();
    fill(dir, 2_500);
    rescan_all(&ledger, dir, &mut |_| {});
    assert_eq!(
        settle(&ledger, Duration::ZERO, &HashSet::new()).unwrap(),
        2_500
    );
    let names: Vec<PathBuf> = on_disk(dir).into_keys().collect();
    // Spread over the name order the rescan merges with the ledger's path
    // index in: its middle, its first and its last name.
    // Replaced by another file (renamed over it: another inode).
    let replaced = &names[1_250];
    let tmp = dir.join(".replacement");
    fs::write(&tmp, b"another recording under the same name").unwrap();
    fs::rename(&tmp, replaced).unwrap();
    // Turned into a link, and removed.
    fs::remove_file(&names[0]).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", &names[0]).unwrap();
    fs::remove_file(&names[2_499]).unwrap();
    // A new name between two settled ones.
    let mut between = names[1_700].clone().into_os_string();
    between.push("-second-leg.wav");
    fs::write(&between, b"new").unwrap();
    let scan = rescan_all(&ledger, dir, &mut |_| {});
    assert_eq!(
        (scan.report.changed, scan.report.vanished, scan.report.new),
        (2, 1, 1),
        "{:?}",
        scan.report
    );
    assert_eq!(local(&ledger, dir), on_disk(dir));
    let row = ledger.local_row_at(replaced).unwrap().unwrap();
    assert_eq!(row.state, State::Seen, "the replacement starts over");
    let link = ledger.local_row_at(&names[0]).unwrap().unwrap();
    assert_eq!(link.state, State::Quarantined);
    // The others, still settled and unchanged, were left as they were.
    let again = rescan_all(&ledger, dir, &mut |_| {});
    assert_eq!(again.report, IntakeReport::default());
}

#[test]
fn a_new_file_already_settled_is_recorded_settled_with_both_events() {
    let (_l, ledger) = ledger();
    let spool = tempfile::tempdir().unwrap();
    let dir = spool.path();
    fill(dir, 1_500);
    let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    for path in on_disk(dir).into_keys() {
        let f = fs::File::options().write(true).open(&path).unwrap();
        f.set_modified(hour_ago).unwrap();
    }
    // Last written a moment ago; and old, but still open for writing.
    let young = dir.join("20260301-140000_5557770000-all.wav");
    fs::write(&young, b"just written").unwrap();
    let held = dir.join("20260301-140001_5557770001-all.wav");
    fs::write(&held, b"still being written").unwrap();
    let writer = fs::File::options().append(true).open(&held).unwrap();
    writer.set_modified(hour_ago).unwrap();

    let settle_time = Duration::from_secs(60);
    let scan = rescan(
        &ledger,
        &Naming::default(),
        &[dir.to_path_buf()],
        &ignore(),
        Some(settle_time),
        &HashSet::new(),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!((scan.report.new, scan.report.settled), (1_502, 1_500));
    let state = |p: &Path| ledger.local_row_at(p).unwrap().unwrap().state;
    assert_eq!(state(&young), State::Seen);
    assert_eq!(state(&held), State::Seen, "a writer has it open");
    let totals = ledger.totals().unwrap();
    let settled = totals.iter().find(|(s, _)| *s == State::Settled).unwrap();
    assert_eq!(settled.1.count, 1_500, "totals kept exact");
    // Its history is what intake then settle would have written.
    let conn = rusqlite::Connection::open(ledger.path()).unwrap();
    let id = ledger.local_row_at(&on_disk(dir).into_keys().next().unwrap());
    let events: Vec<(Option<String>, String, String)> = conn
        .prepare(
            "SELECT from_state, to_state, detail FROM events WHERE recording_id = ?1 ORDER BY id",
        )
        .unwrap()
        .query_map([id.unwrap().unwrap().id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let want = [
        (None, "seen", "found"),
        (Some("seen"), "settled", "settled"),
    ];
    let want: Vec<_> = want
        .iter()
        .map(|(f, t, d)| (f.map(String::from), t.to_string(), d.to_string()))
        .collect();
    assert_eq!(events, want);
    // The settle pass leaves both until their time comes.
    assert_eq!(settle(&ledger, settle_time, &HashSet::new()).unwrap(), 0);
    drop(writer);
    assert_eq!(settle(&ledger, settle_time, &HashSet::new()).unwrap(), 1);
}

/// Issue 18: the settled names read before a listing and the lookup a
/// batch at a time (a directory with more than [`MOST`]) leave the same
/// entries to look at: the replaced, the linked, the new and the
/// unsettled ones, whatever else the directory holds.
#[test]
fn settled_names_held_and_looked_up_leave_the_same_entries_to_look_at() {
    let (_l, ledger) = ledger();
    let spool = tempfile::tempdir().unwrap();
    let dir = spool.path();
    fill(dir, 2_500);
    rescan_all(&ledger, dir, &mut |_| {});
    let names: Vec<PathBuf> = on_disk(dir).into_keys().collect();
    let settle_ids: Vec<i64> = names
        .iter()
        .step_by(2)
        .map(|p| ledger.local_row_at(p).unwrap().unwrap().id)
        .collect();
    assert_eq!(ledger.settled_all(&settle_ids).unwrap(), 1_250);
    let tmp = dir.join(".replacement");
    fs::write(&tmp, b"another recording under the same name").unwrap();
    fs::rename(&tmp, &names[1_250]).unwrap();
    fs::remove_file(&names[0]).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", &names[0]).unwrap();
    fs::write(dir.join("20260301-120000_5559990000-all.wav"), b"new").unwrap();
    fs::create_dir(dir.join("MP3")).unwrap();

    let dev = fs::metadata(dir).unwrap().dev();
    let to_look_at = |settled: &Settled| {
        let mut left = Vec::new();
        let listing = spool::list_dir(dir, &ignore(), BATCH, |batch, listing| {
            let changed = unless_settled_there(&ledger, Some(settled), dir, batch, listing)?;
            left.extend(changed.iter().map(|e| e.name().to_os_string()));
            Ok::<_, LedgerError>(())
        })
        .unwrap();
        left.sort();
        (left, listing.entries)
    };
    let held = Settled::read(&ledger, dev, dir, MOST).unwrap();
    assert!(matches!(held, Settled::Read(_)));
    let looked_up = Settled::read(&ledger, dev, dir, 1_000).unwrap();
    assert!(matches!(looked_up, Settled::LookUp(_)));
    let (left, unlooked) = to_look_at(&held);
    assert_eq!((left.clone(), unlooked), to_look_at(&looked_up));
    // The 1,250 unsettled, the new file, and of the settled the replaced
    // one and the link (where a settled recording was) are looked at.
    assert_eq!(left.len(), 1_250 + 1 + 1 + 1, "{}", left.len());
    assert_eq!(unlooked, 2_500 - 1_250 - 2);
    assert!(left.contains(&names[1_250].file_name().unwrap().to_os_string()));
    assert!(left.contains(&names[0].file_name().unwrap().to_os_string()));
}
