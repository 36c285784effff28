//! Every object key recvault chose for a recording (`object_keys`), so that
//! erasure and retention reach every object it may have written — not only
//! the current key (`recordings.object_key`), but an earlier upload that
//! failed its verification, or the object of a file that changed after it
//! was put. A key is recorded in the transaction that chooses it, before
//! any put under it; the put's outcome then says whether the object there
//! is ours.

use std::collections::HashMap;

use rusqlite::{Transaction, params};

use super::{Ledger, LedgerError};

/// One key a recording may have an object under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackedKey {
    pub key: String,
    /// The store took our object there. Otherwise a put may or may not
    /// have happened: the object there is ours only if its metadata names
    /// this host and recording.
    pub written: bool,
}

/// Records that recording `id` chose `key` (inside the caller's transaction).
pub(super) fn track(tx: &Transaction<'_>, id: i64, key: &str, now: i64) -> Result<(), LedgerError> {
    tx.prepare_cached(
        "INSERT INTO object_keys (recording_id, key, state, chosen_at) VALUES (?1, ?2, 'chosen', ?3) \
         ON CONFLICT (recording_id, key) DO UPDATE SET \
           state = CASE WHEN state = 'deleted' THEN 'chosen' ELSE state END, deleted_at = NULL",
    )?
    .execute(params![id, key, now])?;
    Ok(())
}

/// Records that recording `id` has our object under `key` in the store
/// (found there: a rebuild, a restore).
pub(super) fn track_written(
    tx: &Transaction<'_>,
    id: i64,
    key: &str,
    now: i64,
) -> Result<(), LedgerError> {
    track(tx, id, key, now)?;
    tx.execute(
        "UPDATE object_keys SET state = 'written' WHERE recording_id = ?1 AND key = ?2",
        params![id, key],
    )?;
    Ok(())
}

/// Records that the store took recording `id`'s object under its current key.
pub(super) fn current_written(tx: &Transaction<'_>, id: i64) -> Result<(), LedgerError> {
    tx.prepare_cached(
        "UPDATE object_keys SET state = 'written' WHERE recording_id = ?1 \
         AND key = (SELECT object_key FROM recordings WHERE id = ?1)",
    )?
    .execute([id])?;
    Ok(())
}

/// Records that every object of recording `id` was deleted by retention.
pub(super) fn all_deleted(tx: &Transaction<'_>, id: i64, now: i64) -> Result<(), LedgerError> {
    tx.execute(
        "UPDATE object_keys SET state = 'deleted', deleted_at = ?2 \
         WHERE recording_id = ?1 AND state != 'deleted'",
        params![id, now],
    )?;
    Ok(())
}

/// Forgets the keys of an erased recording: they hold its file name, and
/// their objects are gone.
pub(super) fn forget_all(tx: &Transaction<'_>, id: i64) -> Result<(), LedgerError> {
    tx.execute("DELETE FROM object_keys WHERE recording_id = ?1", [id])?;
    Ok(())
}

impl Ledger {
    /// What a put under `key` found there for recording `id`: `ours` (our
    /// metadata: an earlier upload of this recording) is kept as written;
    /// another's object is no longer tracked as this recording's, unless a
    /// put of ours was recorded there before.
    pub fn key_found(&self, id: i64, key: &str, ours: bool) -> Result<(), LedgerError> {
        self.write(|tx| {
            let sql = match ours {
                true => "UPDATE object_keys SET state = 'written' WHERE recording_id = ?1 AND key = ?2",
                false => {
                    "DELETE FROM object_keys WHERE recording_id = ?1 AND key = ?2 AND state = 'chosen'"
                }
            };
            tx.execute(sql, params![id, key])?;
            Ok(())
        })
    }

    /// Records an object of recording `id` found in the store under `key`
    /// (a rebuild or restore finding several objects of one recording).
    pub fn add_written_key(&self, id: i64, key: &str, now: i64) -> Result<(), LedgerError> {
        self.write(|tx| track_written(tx, id, key, now))
    }

    /// Every key of `ids` whose object may still be in the store, per
    /// recording, current key first.
    pub fn object_keys(&self, ids: &[i64]) -> Result<HashMap<i64, Vec<TrackedKey>>, LedgerError> {
        let conn = self.reader()?;
        let mut stmt = conn.prepare_cached(
            "SELECT k.key, k.state = 'written' FROM object_keys k JOIN recordings r ON r.id = k.recording_id \
             WHERE k.recording_id = ?1 AND k.state != 'deleted' \
             ORDER BY k.key IS NOT r.object_key, k.chosen_at, k.key",
        )?;
        let mut out = HashMap::new();
        for id in ids {
            let keys = stmt
                .query_map([id], |r| {
                    Ok(TrackedKey {
                        key: r.get(0)?,
                        written: r.get(1)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            out.insert(*id, keys);
        }
        Ok(out)
    }

    /// Whether `key` is tracked for any recording (a store listing's
    /// objects checked against the ledger).
    pub fn key_is_tracked(&self, key: &str) -> Result<bool, LedgerError> {
        Ok(self.reader()?.query_row(
            "SELECT EXISTS (SELECT 1 FROM object_keys WHERE key = ?1) \
             OR EXISTS (SELECT 1 FROM recordings WHERE object_key = ?1)",
            [key],
            |r| r.get(0),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::CompressedFacts;
    use crate::ledger::fixtures::{insert_plain, ledger};
    use crate::recording::State;

    fn facts(key: &str) -> CompressedFacts {
        CompressedFacts {
            sha256: hex::encode([1; 32]),
            object_key: key.into(),
            object_size: 1,
            object_sha256: hex::encode([2; 32]),
            codec: "zstd".into(),
        }
    }

    #[test]
    fn every_key_a_recording_chose_is_kept_until_its_object_is_gone() {
        let (_dir, ledger) = ledger();
        let id = insert_plain(&ledger, "/s/a.wav", State::Settled);
        ledger.compressed(id, &facts("k/a.wav.zst")).unwrap();
        let keys = |l: &Ledger| l.object_keys(&[id]).unwrap().remove(&id).unwrap();
        assert_eq!(
            keys(&ledger),
            [TrackedKey {
                key: "k/a.wav.zst".into(),
                written: false
            }]
        );
        ledger.uploaded(id, "c").unwrap();
        assert!(keys(&ledger)[0].written);
        // The verification failed: uploaded again under another key.
        ledger
            .upload_again(id, Some("k/a~1.wav.zst"), "verification failed")
            .unwrap();
        let both = keys(&ledger);
        assert_eq!(both.len(), 2, "{both:?}");
        assert_eq!(both[0].key, "k/a~1.wav.zst", "current key first");
        assert!(!both[0].written && both[1].written);
        // Another recording's object found under a key: not ours to delete.
        ledger.key_found(id, "k/a~1.wav.zst", false).unwrap();
        assert_eq!(keys(&ledger).len(), 1);
        assert!(ledger.key_is_tracked("k/a.wav.zst").unwrap());
        assert!(!ledger.key_is_tracked("k/other").unwrap());
    }
}
