//! Group commits of the transitions that allow no delete (compressed,
//! uploaded, local copy removed). Each one alone wrote the same few pages
//! (the table's leaf, its state indexes, the events) to the WAL again —
//! about 75 page writes per recording on a backlog of small ones. Workers
//! committing at the same time queue their changes, and whoever takes the
//! write lock next commits every one queued in one transaction, each inside
//! a savepoint of its own: one that fails is rolled back alone and gets its
//! own error. The durable `verified` commit has its group of its own
//! (`transitions::verified`).

use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::Transaction;

use super::{Ledger, LedgerError};

/// One queued change: runs inside the group's transaction.
pub(super) type Change = Box<dyn FnOnce(&Transaction<'_>) -> Result<(), LedgerError> + Send>;
/// Where a queued change's outcome goes.
pub(super) type Slot = Arc<Mutex<Option<Result<(), LedgerError>>>>;

/// One of the ledger's mutexes, locked whether or not a panic poisoned it:
/// a queue or a slot is changed in one step, and SQLite rolls back a
/// connection's open transaction, so nothing is left half-written.
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `each` on every one of `items` inside `tx`, each in a savepoint of
/// its own: one that fails is rolled back alone and gets its own error,
/// the others stay. `Err` only if a savepoint itself fails.
pub(super) fn in_savepoints<I, T>(
    tx: &Transaction<'_>,
    items: impl IntoIterator<Item = I>,
    mut each: impl FnMut(&Transaction<'_>, I) -> Result<T, LedgerError>,
) -> Result<Vec<Result<T, LedgerError>>, LedgerError> {
    let mut out = Vec::new();
    for item in items {
        tx.execute_batch("SAVEPOINT grouped")?;
        let result = each(tx, item);
        let end = match &result {
            Ok(_) => "RELEASE grouped",
            Err(_) => "ROLLBACK TO grouped; RELEASE grouped",
        };
        tx.execute_batch(end)?;
        out.push(result);
    }
    Ok(out)
}

impl Ledger {
    /// Commits `change` (`synchronous=NORMAL`), grouped with whatever other
    /// workers queued meanwhile; returns once it is committed, with its own
    /// outcome.
    pub(super) fn write_grouped(&self, change: Change) -> Result<(), LedgerError> {
        let mut each = self.write_grouped_many(vec![change]);
        each.pop().unwrap_or_else(|| {
            Err(LedgerError::Call(
                "the grouped commit left no outcome".to_string(),
            ))
        })
    }

    /// `write_grouped` for several changes at once (a batch of small
    /// recordings): queued together, so one commit takes them all; each
    /// gets its own outcome, in order.
    pub(super) fn write_grouped_many(&self, changes: Vec<Change>) -> Vec<Result<(), LedgerError>> {
        let slots: Vec<Slot> = changes.iter().map(|_| Slot::default()).collect();
        lock(&self.grouped).extend(changes.into_iter().zip(slots.iter().cloned()));
        let conn = self.writer();
        // Queued under one lock: a commit takes all of them or none (and
        // then filled their slots before giving the write lock back).
        if slots.first().is_some_and(|s| lock(s).is_none()) {
            let (changes, to): (Vec<Change>, Vec<Slot>) = std::mem::take(&mut *lock(&self.grouped))
                .into_iter()
                .unzip();
            commit_queued(conn, changes, &to);
        } else {
            drop(conn);
        }
        slots
            .iter()
            .map(|s| {
                lock(s).take().unwrap_or_else(|| {
                    Err(LedgerError::Call(
                        "the grouped commit left no outcome".to_string(),
                    ))
                })
            })
            .collect()
    }
}

/// Commits the queued `changes` on the writer `conn`, each outcome to its slot.
fn commit_queued(
    mut conn: MutexGuard<'_, rusqlite::Connection>,
    changes: Vec<Change>,
    slots: &[Slot],
) {
    let committed = super::commit_on(&mut conn, false, |tx| {
        in_savepoints(tx, changes, |tx, change| change(tx))
    });
    match committed {
        Ok(each) => {
            for (to, result) in slots.iter().zip(each) {
                *lock(to) = Some(result);
            }
        }
        Err(e) => {
            let why = e.to_string();
            for to in slots {
                *lock(to) = Some(Err(LedgerError::Call(format!(
                    "the grouped commit failed: {why}"
                ))));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Barrier};

    use crate::ledger::LedgerError;
    use crate::ledger::fixtures::{insert_plain, ledger};
    use crate::recording::State;

    /// Changes committed together each get their own outcome: one that
    /// fails (a recording in another state) leaves no trace, and the
    /// others are committed.
    #[test]
    fn grouped_changes_fail_alone() {
        let (_dir, ledger) = ledger();
        let ledger = Arc::new(ledger);
        let ids: Vec<i64> = (0..8)
            .map(|i| insert_plain(&ledger, &format!("/s/{i}.wav"), State::Settled))
            .collect();
        // The odd ones are not `compressed`: their upload cannot be recorded.
        for id in ids.iter().step_by(2) {
            ledger
                .execute_raw(&format!(
                    "UPDATE recordings SET state = 'compressed' WHERE id = {id}"
                ))
                .unwrap();
        }
        let start = Arc::new(Barrier::new(ids.len()));
        let threads: Vec<_> = ids
            .iter()
            .map(|&id| {
                let (ledger, start) = (ledger.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    (id, ledger.uploaded(id, "c"))
                })
            })
            .collect();
        for t in threads {
            let (id, result) = t.join().unwrap();
            let state = ledger.recording(id).unwrap().state;
            if ids.iter().position(|&i| i == id).unwrap() % 2 == 0 {
                assert!(result.is_ok(), "{id}: {result:?}");
                assert_eq!(state, State::Uploaded);
            } else {
                assert!(
                    matches!(result, Err(LedgerError::StateConflict { .. })),
                    "{id}: {result:?}"
                );
                assert_eq!(state, State::Settled);
            }
        }
    }

    /// A batch's changes are committed together, each with its own outcome:
    /// the ones that cannot move fail alone, in every batched transition.
    #[test]
    fn a_batch_commits_together_and_each_fails_alone() {
        use crate::ledger::CompressedFacts;
        use crate::ledger::verify::Verification;

        let (_dir, ledger) = ledger();
        let ids: Vec<i64> = (0..4)
            .map(|i| insert_plain(&ledger, &format!("/s/{i}.wav"), State::Settled))
            .collect();
        // The last one is not `settled`: it cannot be recorded compressed.
        ledger
            .execute_raw(&format!(
                "UPDATE recordings SET state = 'seen' WHERE id = {}",
                ids[3]
            ))
            .unwrap();
        let facts = |i: i64| CompressedFacts {
            sha256: "aa".repeat(32),
            object_key: format!("k/{i}"),
            object_size: 10,
            object_sha256: "bb".repeat(32),
            codec: "zstd".to_string(),
        };
        let each = ledger.compressed_many(ids.iter().map(|&id| (id, facts(id))).collect());
        assert_eq!(each.len(), 4);
        assert!(each[..3].iter().all(|r| r.is_ok()), "{each:?}");
        assert!(
            matches!(each[3], Err(LedgerError::StateConflict { .. })),
            "{each:?}"
        );

        // Verified with the upload and the reservation, in one durable
        // commit; the one never compressed fails alone.
        let what = Verification {
            upload: Some("c2hh".to_string()),
            reserve_local: true,
        };
        let each = ledger.verified_many(ids.iter().map(|&id| (id, what.clone())).collect());
        assert!(
            each[..3]
                .iter()
                .all(|r| matches!(r, Ok(Some(cases)) if cases.is_empty())),
            "{each:?}"
        );
        assert!(each[3].is_err(), "{each:?}");
        let states: Vec<State> = ids
            .iter()
            .map(|&id| ledger.recording(id).unwrap().state)
            .collect();
        assert_eq!(
            states,
            [
                State::Verified,
                State::Verified,
                State::Verified,
                State::Seen
            ]
        );
    }
}
