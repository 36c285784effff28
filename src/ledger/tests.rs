//! The ledger's transitions and queries against a real SQLite file.

use std::time::Duration;

use super::fixtures::{insert_plain, ledger, spool_file};
use super::*;
use crate::recording::name::Attribution;
use crate::recording::{FailureKind, State};
use crate::units::now_secs;

#[test]
fn transitions_are_checked_and_recorded() {
    let (_dir, ledger) = ledger();
    let id = insert_plain(&ledger, "/s/a.wav", State::Seen);
    ledger.settled(id).unwrap();
    let err = ledger.settled(id).unwrap_err();
    assert!(matches!(err, LedgerError::StateConflict { .. }), "{err}");
    assert_eq!(ledger.recording(id).unwrap().state, State::Settled);
}

#[test]
fn one_local_recording_per_path_but_paths_may_return() {
    let (_dir, ledger) = ledger();
    let id = insert_plain(&ledger, "/s/a.wav", State::Seen);
    let again = spool_file("/s/a.wav", 4_000_000_000);
    let none = Attribution::default();
    assert!(ledger.insert(&again, &none, State::Seen, "dup").is_err());
    ledger.gone(id, State::Seen, "removed").unwrap();
    ledger
        .insert(&again, &none, State::Seen, "found again")
        .unwrap();
    assert_eq!(
        ledger
            .local_count_in(std::path::Path::new("/s"), None)
            .unwrap(),
        1
    );
}

#[test]
fn object_keys_are_unique() {
    let (_dir, ledger) = ledger();
    let a = insert_plain(&ledger, "/s/a.wav", State::Settled);
    let b = insert_plain(&ledger, "/t/a.wav", State::Settled);
    let facts = CompressedFacts {
        sha256: "0".repeat(64),
        object_key: "k".to_string(),
        object_size: 1,
        object_sha256: "0".repeat(64),
        codec: "zstd".to_string(),
    };
    ledger.compressed(a, &facts).unwrap();
    let err = ledger.compressed(b, &facts).unwrap_err();
    assert!(
        matches!(err, LedgerError::KeyTaken(ref k) if k == "k"),
        "{err}"
    );
    assert_eq!(
        ledger.recording(b).unwrap().state,
        State::Settled,
        "a failed transition changes nothing"
    );
}

#[test]
fn failed_resumes_where_it_failed() {
    let (_dir, ledger) = ledger();
    let id = insert_plain(&ledger, "/s/a.wav", State::Compressed);
    ledger
        .mark_failed(
            &ledger.recording(id).unwrap(),
            FailureKind::StoreOutage,
            "store down",
            0,
        )
        .unwrap();
    let rec = ledger.recording(id).unwrap();
    assert_eq!((rec.state, rec.attempts), (State::Failed, 1));
    assert_eq!(ledger.resume_failed(&rec).unwrap(), State::Compressed);
}

#[test]
fn concurrent_first_opens_migrate_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.sqlite3");
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || Ledger::open(&path).map(|_| ()))
        })
        .collect();
    for h in handles {
        h.join().unwrap().unwrap();
    }
}

#[test]
fn a_retry_parked_by_a_clock_set_back_is_due_now() {
    let (_dir, ledger) = ledger();
    let id = insert_plain(&ledger, "/s/a.wav", State::Compressed);
    let rec = ledger.recording(id).unwrap();
    let now = now_secs();
    // Written a minute before the clock was set back a day.
    ledger
        .mark_failed(
            &rec,
            FailureKind::StoreOutage,
            "store down",
            now + 86_400 + 60,
        )
        .unwrap();
    let queue = ledger.work_queue(0, now, false, 10).unwrap();
    assert_eq!(queue.iter().map(|r| r.id).collect::<Vec<_>>(), vec![id]);
    let due = ledger
        .next_due(Duration::from_secs(1), Duration::from_secs(1))
        .unwrap()
        .unwrap();
    assert!(due <= now_secs() + MAX_RETRY_DELAY.as_secs() as i64);
    // An ordinary back-off is still waited for.
    let id2 = insert_plain(&ledger, "/s/b.wav", State::Compressed);
    ledger
        .mark_failed(
            &ledger.recording(id2).unwrap(),
            FailureKind::StoreOutage,
            "store down",
            now + 60,
        )
        .unwrap();
    let queue = ledger.work_queue(0, now, false, 10).unwrap();
    assert!(!queue.iter().any(|r| r.id == id2));
}

#[test]
fn reopening_keeps_data_and_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.sqlite3");
    let id = insert_plain(&Ledger::open(&path).unwrap(), "/s/a.wav", State::Seen);
    let again = Ledger::open(&path).unwrap();
    assert_eq!(again.recording(id).unwrap().name, b"a.wav");
}

#[test]
fn an_ended_outage_reschedules_by_kind_not_by_wording() {
    let (_dir, ledger) = ledger();
    let later = now_secs() + 600;
    let fail = |path: &str, kind, message| {
        let id = insert_plain(&ledger, path, State::Compressed);
        let rec = ledger.recording(id).unwrap();
        ledger.mark_failed(&rec, kind, message, later).unwrap();
        id
    };
    let outage = fail(
        "/s/a.wav",
        FailureKind::StoreOutage,
        "put `k`: connection refused",
    );
    // Worded like an outage, but the store refused it: no retry storm.
    let refused = fail(
        "/s/b.wav",
        FailureKind::Refused,
        "store unavailable: AccessDenied",
    );
    assert_eq!(ledger.retry_store_failures_now().unwrap(), 1);
    assert!(ledger.recording(outage).unwrap().retry_at.unwrap() < later);
    assert_eq!(ledger.recording(refused).unwrap().retry_at, Some(later));
}

#[test]
fn a_scrub_sample_is_distinct_archived_recordings() {
    let (_dir, ledger) = ledger();
    assert!(ledger.archived(None, Some(5)).unwrap().is_empty());
    let mut archived = std::collections::BTreeSet::new();
    for i in 0..40 {
        let state = if i % 3 == 0 {
            State::Settled
        } else {
            State::LocalDeleted
        };
        let id = insert_plain(&ledger, &format!("/s/{i}.wav"), state);
        if state == State::LocalDeleted {
            ledger
                .execute_raw(&format!(
                    "UPDATE recordings SET object_key = 'k{i}' WHERE id = {id}"
                ))
                .unwrap();
            archived.insert(id);
        }
    }
    for _ in 0..20 {
        let sample = ledger.archived(None, Some(5)).unwrap();
        let ids: std::collections::BTreeSet<_> = sample.iter().map(|r| r.id).collect();
        assert_eq!(ids.len(), sample.len(), "no repeats");
        assert!(!ids.is_empty() && ids.len() <= 5);
        assert!(ids.is_subset(&archived), "{ids:?}");
    }
    // Asking for more than there are gives at most all of them.
    let all = ledger.archived(None, Some(1000)).unwrap();
    assert!(all.len() <= archived.len() && all.len() >= archived.len() / 2);
    assert_eq!(ledger.archived(None, None).unwrap().len(), archived.len());
}

/// Issue 13.6: a ledger call that takes long (here: until another task
/// speaks) must not hold the async worker it was called from. On a runtime
/// with one worker, a call run on that worker would wait forever for a task
/// that can then never run; run off it, both finish.
#[test]
fn a_long_ledger_call_never_stalls_the_async_workers() {
    let (_dir, ledger) = ledger();
    let ledger = std::sync::Arc::new(ledger);
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let (tx, rx) = std::sync::mpsc::channel::<()>();
            let call = ledger.call(move |l| {
                rx.recv().unwrap();
                l.totals()
            });
            let other = async move {
                tokio::task::yield_now().await;
                tx.send(()).unwrap();
            };
            let (totals, ()) = tokio::join!(call, other);
            totals.unwrap();
        });
        done_tx.send(()).unwrap();
    });
    done_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("a ledger call held the only async worker: the runtime stalled");
}

#[test]
fn the_work_queue_pages_through_every_due_recording_once_in_either_order() {
    let (_dir, ledger) = ledger();
    let none = Attribution::default();
    let mut ids = Vec::new();
    for i in 0..50i64 {
        let mut file = super::fixtures::spool_file(&format!("/s/{i}.wav"), 1_000 + (i % 7));
        file.identity.size = (i * 37 % 11) as u64;
        let id = ledger.insert(&file, &none, State::Settled, "test").unwrap();
        ids.push((id, file.identity));
    }
    // Not due: too young, and one in another state.
    let young = super::fixtures::spool_file("/s/young.wav", 9_000);
    ledger
        .insert(&young, &none, State::Settled, "test")
        .unwrap();
    insert_plain(&ledger, "/s/seen.wav", State::Seen);
    let due = Due {
        upload_cutoff_ns: 5_000,
        now: now_secs(),
        retry_all: false,
    };
    assert_eq!(ledger.due_totals(&due).unwrap().0, 50);
    for order in [QueueOrder::Oldest, QueueOrder::Largest] {
        let mut got = Vec::new();
        let mut after = None;
        loop {
            let page = ledger.work_page(&due, order, after.as_ref(), 8).unwrap();
            got.extend(page.iter().map(|r| (r.id, r.identity)));
            if page.len() < 8 {
                break;
            }
            after = page.last().cloned();
        }
        let mut want = ids.clone();
        match order {
            QueueOrder::Oldest => want.sort_by_key(|(id, i)| (i.mtime_ns, *id)),
            QueueOrder::Largest => want.sort_by_key(|(id, i)| std::cmp::Reverse((i.size, *id))),
        }
        assert_eq!(got, want, "{order:?}");
    }
}

#[test]
fn a_verified_recording_counts_in_its_minute_s_drain() {
    let (_dir, ledger) = ledger();
    let id = insert_plain(&ledger, "/s/a.wav", State::Uploaded);
    let before = now_secs() - 60;
    assert_eq!(ledger.drained_since(before).unwrap(), (0, 0, None));
    ledger.verified(id).unwrap();
    let (n, bytes, first) = ledger.drained_since(before).unwrap();
    assert_eq!((n, bytes), (1, 3));
    assert!(first.is_some_and(|f| f <= now_secs() && f > before - 60));
}

#[test]
fn recordings_verified_at_once_by_many_workers_are_each_committed_once() {
    let (_dir, ledger) = ledger();
    let ids: Vec<i64> = (0..200)
        .map(|i| insert_plain(&ledger, &format!("/s/{i}.wav"), State::Uploaded))
        .collect();
    let not_uploaded = insert_plain(&ledger, "/s/seen.wav", State::Seen);
    let before = now_secs() - 60;
    std::thread::scope(|s| {
        for chunk in ids.chunks(25) {
            let ledger = &ledger;
            s.spawn(move || {
                for id in chunk {
                    ledger.verified(*id).unwrap();
                }
            });
        }
        // One that cannot move fails alone, whatever batch it lands in.
        s.spawn(|| {
            let err = ledger.verified(not_uploaded).unwrap_err();
            assert!(matches!(err, LedgerError::StateConflict { .. }), "{err}");
        });
    });
    for id in &ids {
        assert_eq!(ledger.recording(*id).unwrap().state, State::Verified);
    }
    assert_eq!(ledger.recording(not_uploaded).unwrap().state, State::Seen);
    assert_eq!(ledger.drained_since(before).unwrap().0, 200);
}

/// Issue 18: `status` reads its counts from totals the triggers keep, so
/// they must stay exact through every transition a recording can make,
/// every column they sum changing, and a row removed.
#[test]
fn the_kept_totals_stay_exact_through_every_transition() {
    use super::fixtures::assert_totals_exact as exact;
    let (_dir, l) = ledger();
    let facts = |key: &str, size: u64, codec: &str| CompressedFacts {
        sha256: "0".repeat(64),
        object_key: key.to_string(),
        object_size: size,
        object_sha256: "1".repeat(64),
        codec: codec.to_string(),
    };
    let a = insert_plain(&l, "/s/a.wav", State::Seen);
    exact(&l);
    l.settled(a).unwrap();
    l.compressed(a, &facts("ka", 2, "flac")).unwrap();
    exact(&l);
    l.compress_again(a, "staged object gone").unwrap();
    exact(&l);
    l.compressed(a, &facts("ka2", 1, "zstd")).unwrap();
    l.upload_again(a, Some("ka3"), "damaged").unwrap();
    l.uploaded(a, "c").unwrap();
    exact(&l);
    l.verified(a).unwrap();
    exact(&l);
    let rec = l.recording(a).unwrap();
    let actor = super::audit::Actor {
        uid: 0,
        user: "root".into(),
    };
    l.local_copy_removed(&rec, "archived", &actor).unwrap();
    exact(&l);

    let b = insert_plain(&l, "/s/b.wav", State::Seen);
    l.settled(b).unwrap();
    l.compressed(b, &facts("kb", 2, "flac")).unwrap();
    let rec = l.recording(b).unwrap();
    l.mark_failed(&rec, FailureKind::StoreOutage, "503", 0)
        .unwrap();
    exact(&l);
    let rec = l.recording(b).unwrap();
    l.resume_failed(&rec).unwrap();
    exact(&l);
    let mut changed = spool_file("/s/b.wav", 5).identity;
    changed.size = 9;
    l.reset_changed(b, changed, "changed").unwrap();
    exact(&l);
    l.gone(b, State::Seen, "removed").unwrap();
    exact(&l);

    let c = insert_plain(&l, "/s/c.wav", State::Quarantined);
    let _verified = insert_plain(&l, "/s/d.wav", State::Uploaded);
    exact(&l);
    // Updates that leave the counted columns alone, one that changes only
    // a size, and a row removed (as a hand edit or a future purge would).
    l.note(c, "still unreadable").unwrap();
    l.execute_raw(&format!(
        "UPDATE recordings SET last_error = 'x', size = size + 40 WHERE id = {c}; \
         UPDATE recordings SET object_size = 7 WHERE id = {a}; \
         PRAGMA foreign_keys = OFF; DELETE FROM recordings WHERE id = {b}; \
         PRAGMA foreign_keys = ON"
    ))
    .unwrap();
    exact(&l);
}

/// A ledger written before the kept totals existed gets them counted once,
/// when it is opened by this version.
#[test]
fn an_older_ledger_gets_its_totals_counted_on_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.sqlite3");
    {
        let l = Ledger::open(&path).unwrap();
        insert_plain(&l, "/s/a.wav", State::Seen);
        insert_plain(&l, "/s/b.wav", State::Uploaded);
        // Back to the schema before migration 0015, with rows it never saw.
        l.execute_raw(
            "DROP TRIGGER recording_totals_insert; DROP TRIGGER recording_totals_update; \
             DROP TRIGGER recording_totals_delete; DROP TABLE recording_totals; \
             DROP INDEX recordings_unmatched_name; \
             UPDATE recordings SET state = 'settled' WHERE path = CAST('/s/a.wav' AS BLOB); \
             PRAGMA user_version = 14;",
        )
        .unwrap();
    }
    let l = Ledger::open(&path).unwrap();
    super::fixtures::assert_totals_exact(&l);
    let states: Vec<State> = l.totals().unwrap().into_iter().map(|(s, _)| s).collect();
    assert_eq!(states, [State::Settled, State::Uploaded]);
}

/// `ls`: every bound given and none other, each state or all, oldest
/// first (the query is written per filter, so each form is tried).
#[test]
fn list_keeps_to_its_state_and_time_bounds_oldest_first() {
    let (_dir, l) = ledger();
    let none = Attribution::default();
    let at = |path: &str, secs: i64, state: State| {
        let file = spool_file(path, secs * 1_000_000_000);
        l.insert(&file, &none, state, "test").unwrap()
    };
    let c = at("/s/c.wav", 300, State::Seen);
    let a = at("/s/a.wav", 100, State::Seen);
    let b = at("/s/b.wav", 200, State::Quarantined);
    let d = at("/s/d.wav", 400, State::Settled);
    let ids = |state: Option<State>, since: Option<i64>, until: Option<i64>| {
        let mut got = Vec::new();
        let filter = ListFilter {
            state,
            since,
            until,
        };
        l.list::<LedgerError>(&filter, |r| {
            got.push(r.id);
            Ok(())
        })
        .unwrap();
        got
    };
    assert_eq!(ids(None, None, None), [a, b, c, d]);
    assert_eq!(ids(None, Some(200), None), [b, c, d]);
    assert_eq!(ids(None, None, Some(300)), [a, b]);
    assert_eq!(ids(None, Some(200), Some(400)), [b, c]);
    assert_eq!(ids(Some(State::Seen), None, None), [a, c]);
    assert_eq!(ids(Some(State::Seen), Some(150), Some(999)), [c]);
    assert_eq!(ids(Some(State::Gone), None, None), Vec::<i64>::new());
}
