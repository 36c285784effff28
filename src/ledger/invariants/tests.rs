use super::MAX_IDS;
use crate::ledger::fixtures::{insert_plain, ledger};
use crate::recording::State;

#[test]
fn a_sound_ledger_passes_and_a_deleted_copy_without_verification_fails() {
    let (_dir, ledger) = ledger();
    let id = insert_plain(&ledger, "/s/a.wav", State::Seen);
    assert_eq!(ledger.check().unwrap(), vec![]);
    // What a bug (or a hand edit) could leave: deleted, never verified.
    ledger
        .execute_raw(&format!(
            "UPDATE recordings SET state = 'local_deleted', object_key = 'k' WHERE id = {id}; \
             INSERT INTO object_keys (recording_id, key, state, chosen_at) VALUES ({id}, 'k', 'written', 1)"
        ))
        .unwrap();
    let problems = ledger.check().unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0]
            .rule
            .contains("only after its object was verified")
    );
    assert_eq!(problems[0].ids, vec![id]);
}

#[test]
fn an_object_key_the_ledger_does_not_track_is_found() {
    let (_dir, ledger) = ledger();
    let id = insert_plain(&ledger, "/s/a.wav", State::Seen);
    // A key set behind the tracking's back (what a bug would leave):
    // erasure and retention would not know of an object under it.
    ledger
        .execute_raw(&format!(
            "UPDATE recordings SET object_key = 'k' WHERE id = {id}"
        ))
        .unwrap();
    let problems = ledger.check().unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].rule.contains("among the keys"), "{problems:?}");
}

/// The rows the one pass finds by merging tables in id order: history
/// missing in the middle, an event and an object key naming recordings that
/// do not exist (below, between and above the real ones), a key tracked
/// under another recording, a bad hash.
#[test]
fn the_merged_pass_finds_what_each_rule_names() {
    let (_dir, ledger) = ledger();
    let a = insert_plain(&ledger, "/s/a.wav", State::Seen);
    let b = insert_plain(&ledger, "/s/b.wav", State::Seen);
    let c = insert_plain(&ledger, "/s/c.wav", State::Seen);
    ledger
        .execute_raw(&format!(
            "PRAGMA foreign_keys = OFF; \
             DELETE FROM events WHERE recording_id = {b}; \
             INSERT INTO events (recording_id, at, to_state) VALUES (-5, 1, 'seen'), ({c} + 100, 1, 'seen'); \
             INSERT INTO object_keys (recording_id, key, state, chosen_at) VALUES ({b} + 1000, 'x', 'chosen', 1), ({a}, 'ka', 'chosen', 1); \
             UPDATE recordings SET object_key = 'ka', sha256 = 'ABC' WHERE id = {c}; \
             PRAGMA foreign_keys = ON;"
        ))
        .unwrap();
    let problems = ledger.check().unwrap();
    let find = |words: &str| {
        problems
            .iter()
            .find(|p| p.rule.contains(words))
            .unwrap_or_else(|| panic!("no `{words}` in {problems:?}"))
    };
    assert_eq!(find("has a history").ids, vec![b]);
    let mut orphans = find("foreign keys").ids.clone();
    orphans.sort();
    assert_eq!(orphans, vec![-5, c + 100, b + 1000]);
    assert_eq!(find("among the keys").ids, vec![c]);
    assert_eq!(find("64 hex digits").ids, vec![c]);
    assert_eq!(problems.len(), 4, "{problems:?}");
}

#[test]
fn many_broken_rows_are_counted_with_the_first_ids_listed() {
    let (_dir, ledger) = ledger();
    let ids: Vec<i64> = (0..MAX_IDS + 5)
        .map(|i| insert_plain(&ledger, &format!("/s/{i}.wav"), State::Seen))
        .collect();
    ledger
        .execute_raw("UPDATE recordings SET state = 'lost'")
        .unwrap();
    let problems = ledger.check().unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].count, MAX_IDS + 5);
    assert_eq!(problems[0].ids, ids[..MAX_IDS].to_vec());
}

/// The totals `status` reads are kept by triggers; an edit made with them
/// dropped (or a bug in them) leaves `status` wrong, and the check says so.
#[test]
fn totals_that_no_longer_match_the_recordings_are_found() {
    let (_dir, ledger) = ledger();
    let a = insert_plain(&ledger, "/s/a.wav", State::Seen);
    let b = insert_plain(&ledger, "/s/b.wav", State::Settled);
    // Changed with the triggers, the totals follow.
    ledger
        .execute_raw(&format!(
            "UPDATE recordings SET state = 'gone', size = 9 WHERE id = {a}"
        ))
        .unwrap();
    assert_eq!(ledger.check().unwrap(), vec![]);
    ledger
        .execute_raw(&format!(
            "DROP TRIGGER recording_totals_update; \
             UPDATE recordings SET state = 'seen' WHERE id = {b}; \
             UPDATE recording_totals SET bytes = bytes + 1 WHERE state = 'gone'"
        ))
        .unwrap();
    let problems = ledger.check().unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].rule.contains("recording_totals"),
        "{problems:?}"
    );
    // settled (kept, none left), seen (none kept), gone (a byte off).
    assert_eq!(problems[0].count, 3);
}

/// A damaged page is SQLite's structural check's to find (on its own
/// thread, beside the invariants): one in an index the invariants never
/// read is reported, and the invariants' findings come with it.
#[test]
fn a_damaged_page_is_reported_beside_the_invariants() {
    use std::io::{Seek, SeekFrom, Write};
    let (dir, ledger) = ledger();
    let a = insert_plain(&ledger, "/s/a.wav", State::Seen);
    ledger
        .execute_raw(&format!(
            "UPDATE recordings SET sha256 = 'ABC' WHERE id = {a}"
        ))
        .unwrap();
    let path = ledger.path().to_path_buf();
    drop(ledger); // the WAL folded into the file
    let (root, page_size): (u64, u64) = {
        let conn = rusqlite::Connection::open(&path).unwrap();
        let root = conn
            .query_row(
                "SELECT rootpage FROM sqlite_schema WHERE name = 'recordings_name'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        (
            root,
            conn.pragma_query_value(None, "page_size", |r| r.get(0))
                .unwrap(),
        )
    };
    // The page's type byte: no b-tree page has type 0x07.
    let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.seek(SeekFrom::Start((root - 1) * page_size)).unwrap();
    file.write_all(&[0x07]).unwrap();
    drop(file);
    let problems = crate::ledger::Ledger::open(&path).unwrap().check().unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p.rule.contains("quick_check") && p.count > 0),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.rule.contains("64 hex digits") && p.ids == vec![a]),
        "{problems:?}"
    );
    assert_eq!(problems.len(), 2, "{problems:?}");
    drop(dir);
}
