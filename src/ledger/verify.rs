//! The durable commit that allows a local delete: `verified`. It also
//! records, in the same transaction, what the archive step knows by then
//! and would otherwise commit on its own: the upload (`compressed` →
//! `uploaded`, when the store's answer was checked right after the put) and
//! the reservation of the local copy's delete (holds checked there, as
//! `reserve_local_delete` does). One commit instead of three per recording.
//!
//! A group commit: recordings verified by other workers while one commits
//! queue up, and whoever takes the write lock next commits every one
//! queued, in one transaction, each inside a savepoint of its own (one that
//! cannot move is rolled back alone and gets its own error). The commit is
//! made durable by syncing the log after the write lock is given back
//! (`wal`); no outcome is returned before that.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use rusqlite::{ToSql, Transaction, params};

use super::group::{in_savepoints, lock};
use super::transitions::{apply, record_upload};
use super::{Ledger, LedgerError};
use crate::recording::State;
use crate::units::now_secs;

/// What the `verified` commit records besides the state change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verification {
    /// The store's checksum of an upload not recorded yet: recorded in this
    /// commit (`compressed` → `uploaded` → `verified`, both events kept).
    pub upload: Option<String>,
    /// Reserve the local copy's delete in this commit.
    pub reserve_local: bool,
}

/// What reserving the local delete found: `Some(cases)` (empty: reserved;
/// else these cases hold the copy, nothing reserved), `None`: not
/// reservable now (reserved for another deletion) or not asked.
pub type Reserved = Option<Vec<String>>;

/// Where a queued recording's outcome goes, once its commit is durable.
#[derive(Default)]
pub(super) struct Slot {
    /// Set (under the write lock) when a worker takes it into its commit.
    taken: AtomicBool,
    outcome: Mutex<Option<Result<Reserved, LedgerError>>>,
    ready: Condvar,
}

impl Slot {
    fn set(&self, outcome: Result<Reserved, LedgerError>) {
        *lock(&self.outcome) = Some(outcome);
        self.ready.notify_all();
    }

    fn wait(&self) -> Result<Reserved, LedgerError> {
        let mut outcome = lock(&self.outcome);
        loop {
            if let Some(done) = outcome.take() {
                return done;
            }
            outcome = self.ready.wait(outcome).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// One recording waiting for the next durable commit.
pub(super) type Queued = (i64, Verification, Arc<Slot>);

impl Ledger {
    /// `uploaded` → `verified`: the store reported our size and SHA-256.
    /// This commit allows the local delete, so it returns only once it is
    /// on disk (`wal`). The recording is counted in its minute's drain
    /// (`recvault status`).
    pub fn verified(&self, id: i64) -> Result<(), LedgerError> {
        self.verified_with(id, Verification::default()).map(drop)
    }

    /// `verified` with what `what` adds (the upload, the reservation), in
    /// one group commit, on disk before it returns.
    pub fn verified_with(&self, id: i64, what: Verification) -> Result<Reserved, LedgerError> {
        let mut each = self.verified_many(vec![(id, what)]);
        each.pop().unwrap_or_else(|| {
            Err(LedgerError::Call(
                "the `verified` commit left no outcome".to_string(),
            ))
        })
    }

    /// `verified_with` for several recordings at once (a batch of small
    /// ones): queued together, so they are committed in one durable commit,
    /// each in its own savepoint; each gets its own outcome, in order.
    pub fn verified_many(
        &self,
        items: Vec<(i64, Verification)>,
    ) -> Vec<Result<Reserved, LedgerError>> {
        let slots: Vec<Arc<Slot>> = items.iter().map(|_| Arc::default()).collect();
        lock(&self.verifying).extend(
            items
                .into_iter()
                .zip(&slots)
                .map(|((id, what), slot)| (id, what, slot.clone())),
        );
        let mut conn = self.writer();
        // Queued under one lock: a commit takes all of them or none.
        if slots.first().is_none_or(|s| s.taken.load(Ordering::SeqCst)) {
            drop(conn);
            return slots.iter().map(|s| s.wait()).collect(); // in the commit before
        }
        let batch = std::mem::take(&mut *lock(&self.verifying));
        for (_, _, queued) in &batch {
            queued.taken.store(true, Ordering::SeqCst);
        }
        let now = now_secs();
        let committed = super::commit_on(&mut conn, false, |tx| {
            in_savepoints(tx, &batch, |tx, (id, what, _)| {
                verify_one(tx, *id, what, now)
            })
        });
        let written = self.wal.written();
        drop(conn);
        // Synced with the write lock given back: other changes commit
        // meanwhile, and this sync serves every commit written before it.
        let synced = committed.and_then(|each| self.wal.sync_through(written).map(|()| each));
        match synced {
            Ok(each) => {
                for ((_, _, to), result) in batch.iter().zip(each) {
                    to.set(result);
                }
            }
            Err(e) => {
                let why = e.to_string();
                for (_, _, to) in &batch {
                    to.set(Err(LedgerError::Call(format!(
                        "the commit recording `verified` failed: {why}"
                    ))));
                }
            }
        }
        slots.iter().map(|s| s.wait()).collect()
    }

    /// Syncs the ledger's log to disk now: a `verified` state read from the
    /// ledger (committed by an earlier run, perhaps never synced) is on
    /// disk before a local copy is deleted on its word.
    pub fn make_durable(&self) -> Result<(), LedgerError> {
        self.wal.sync_now()
    }
}

/// One recording's part of the durable commit.
fn verify_one(
    tx: &Transaction<'_>,
    id: i64,
    what: &Verification,
    now: i64,
) -> Result<Reserved, LedgerError> {
    if let Some(checksum) = &what.upload {
        record_upload(tx, id, checksum, now)?;
    }
    let sets: [(&str, &dyn ToSql); 1] = [("verified_at", &now)];
    apply(
        tx,
        id,
        &[State::Uploaded],
        State::Verified,
        &sets,
        "verified",
        now,
    )?;
    count_drained(tx, id, now)?;
    match what.reserve_local {
        true => super::reservations::reserve_local_in(tx, id, now),
        false => Ok(None),
    }
}

/// Adds recording `id` (verified at `now`) to its minute's drain, and drops
/// minutes older than a day.
fn count_drained(tx: &Transaction<'_>, id: i64, now: i64) -> Result<(), LedgerError> {
    tx.prepare_cached(
        "INSERT INTO drain_minutes (minute, recordings, bytes) \
         SELECT ?2 / 60, 1, size FROM recordings WHERE id = ?1 \
         ON CONFLICT (minute) DO UPDATE SET recordings = recordings + 1, \
           bytes = bytes + excluded.bytes",
    )?
    .execute(params![id, now])?;
    tx.prepare_cached("DELETE FROM drain_minutes WHERE minute < ?1 / 60 - 1440")?
        .execute([now])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::CompressedFacts;
    use crate::ledger::audit::Actor;
    use crate::ledger::fixtures::{insert_plain, ledger};
    use crate::ledger::holds::Selector;

    /// A compressed recording at `path` whose key is `key`.
    fn compressed(ledger: &Ledger, path: &str, key: &str) -> i64 {
        let id = insert_plain(ledger, path, State::Settled);
        let facts = CompressedFacts {
            sha256: "0".repeat(64),
            object_key: key.to_string(),
            object_size: 2,
            object_sha256: "1".repeat(64),
            codec: "flac".into(),
        };
        ledger.compressed(id, &facts).unwrap();
        id
    }

    fn deleting_what(ledger: &Ledger, id: i64) -> Option<String> {
        ledger
            .reader()
            .unwrap()
            .query_row(
                "SELECT deleting_what FROM recordings WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .unwrap()
    }

    fn events(ledger: &Ledger, id: i64) -> Vec<String> {
        let conn = ledger.reader().unwrap();
        let mut stmt = conn
            .prepare("SELECT to_state FROM events WHERE recording_id = ?1 ORDER BY id")
            .unwrap();
        stmt.query_map([id], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// Issue 18: the upload, the verification and the local delete's
    /// reservation in one durable commit, with the history and the key's
    /// state as three commits left them, and a hold still keeping the copy.
    #[test]
    fn one_commit_records_the_upload_the_verification_and_the_reservation() {
        let (_dir, ledger) = ledger();
        let free = compressed(&ledger, "/s/free.wav", "k/free.flac");
        let held = compressed(&ledger, "/s/held.wav", "k/held.flac");
        let actor = Actor {
            uid: 0,
            user: "root".into(),
        };
        let hold = [Selector::Recording("held.wav".into())];
        ledger
            .insert_hold(&actor, 5, "CASE-1", "why", &hold)
            .unwrap();
        let what = Verification {
            upload: Some("c1".into()),
            reserve_local: true,
        };
        assert_eq!(
            ledger.verified_with(free, what.clone()).unwrap(),
            Some(vec![])
        );
        let rec = ledger.recording(free).unwrap();
        assert_eq!(rec.state, State::Verified);
        assert_eq!(rec.store_checksum.as_deref(), Some("c1"));
        assert_eq!(deleting_what(&ledger, free).as_deref(), Some("local"));
        assert!(ledger.object_keys(&[free]).unwrap()[&free][0].written);
        let history = events(&ledger, free);
        assert_eq!(history[history.len() - 2..], ["uploaded", "verified"]);

        let kept = ledger.verified_with(held, what.clone()).unwrap();
        assert_eq!(kept, Some(vec!["CASE-1".to_string()]));
        assert_eq!(
            deleting_what(&ledger, held),
            None,
            "a held copy is not reserved"
        );

        // Not compressed any more: nothing of it is written.
        let again = ledger.verified_with(free, what);
        assert!(
            matches!(again, Err(LedgerError::StateConflict { .. })),
            "{again:?}"
        );
        assert_eq!(events(&ledger, free), history);
    }
}
