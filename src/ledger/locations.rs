//! `recording_log.location` as recvault changes it: each recording
//! attributed to a `recording_log` row has a row here. The intent (old and
//! new value) is committed durably before VICIdial's database is touched,
//! so a kill at any point is finished by doing the compare-and-set again;
//! the same for putting old values back (`restore-locations`).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use rusqlite::{OptionalExtension, params};

use super::transitions::insert_event;
use super::{Ledger, LedgerError};
use crate::recording::State;

/// A location to rewrite (or to finish rewriting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocationTodo {
    pub recording_id: i64,
    pub vicidial_recording_id: i64,
    /// `Some((old, new))` once the intent was recorded.
    pub intent: Option<(String, String)>,
    /// The recording's state and file.
    pub state: State,
    pub path: PathBuf,
    pub attempts: u32,
}

/// A location recvault rewrote, for `restore-locations`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewritten {
    pub recording_id: i64,
    pub vicidial_recording_id: i64,
    pub name: Vec<u8>,
    /// What VICIdial had, and the link recvault wrote.
    pub old: String,
    pub new: String,
    /// A re-signed link on its way in (`url rotate-key`, cut short): the
    /// location may hold it instead of `new`.
    pub pending: Option<String>,
}

/// How many locations stand where (for `status`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocationCounts {
    pub waiting: u64,
    pub rewriting: u64,
    pub rewritten: u64,
    pub skipped: u64,
    pub restored: u64,
}

impl Ledger {
    /// Locations due for a rewrite now: their recording's local copy is gone
    /// (or the recording went) and they wait or were cut short mid-rewrite.
    pub fn locations_todo(&self, now: i64, limit: usize) -> Result<Vec<LocationTodo>, LedgerError> {
        let conn = self.reader()?;
        // The IN repeats the partial index `locations_todo`'s condition, so
        // SQLite walks that index; `restoring` belongs to restore-locations.
        let mut stmt = conn.prepare_cached(
            "SELECT l.recording_id, l.vicidial_recording_id, l.old_location, l.new_location, \
                    r.state, r.path, l.attempts, l.state \
             FROM locations l JOIN recordings r ON r.id = l.recording_id \
             WHERE l.state IN ('waiting', 'rewriting', 'restoring') AND l.state <> 'restoring' \
               AND (l.retry_at IS NULL OR l.retry_at <= ?1) \
               AND r.state IN ('local_deleted', 'remote_deleted', 'gone') \
             ORDER BY l.recording_id LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![now, limit as i64], |r| {
            let state: String = r.get(4)?;
            let old: Option<String> = r.get(2)?;
            let new: Option<String> = r.get(3)?;
            let rewriting = r.get::<_, String>(7)? == "rewriting";
            Ok(LocationTodo {
                recording_id: r.get(0)?,
                vicidial_recording_id: r.get(1)?,
                intent: old.zip(new).filter(|_| rewriting),
                state: state.parse().unwrap_or(State::Gone),
                path: PathBuf::from(OsStr::from_bytes(&r.get::<_, Vec<u8>>(5)?)),
                attempts: r.get::<_, i64>(6)?.max(0) as u32,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records the intent to replace `old` with `new` (durably: VICIdial's
    /// database is changed only after this commit).
    pub fn location_intent(&self, id: i64, old: &str, new: &str) -> Result<(), LedgerError> {
        self.write_durable(true, |tx| {
            let changed = tx.execute(
                "UPDATE locations SET state = 'rewriting', old_location = ?2, new_location = ?3, \
                 detail = NULL, updated_at = ?4 WHERE recording_id = ?1 AND state = 'waiting'",
                params![id, old, new, crate::units::now_secs()],
            )?;
            if changed == 0 {
                return Err(conflict(id, "waiting"));
            }
            Ok(())
        })
    }

    /// The rewrite (or restore) is over: `to` is `rewritten`, `skipped` or
    /// `restored`, with `detail` saying why, recorded as an event too.
    pub fn location_done(&self, id: i64, to: &str, detail: &str) -> Result<(), LedgerError> {
        self.write(|tx| {
            let now = crate::units::now_secs();
            tx.execute(
                "UPDATE locations SET state = ?2, detail = ?3, retry_at = NULL, updated_at = ?4, \
                 pending_location = NULL WHERE recording_id = ?1",
                params![id, to, detail, now],
            )?;
            let state: Option<String> = tx
                .query_row("SELECT state FROM recordings WHERE id = ?1", [id], |r| {
                    r.get(0)
                })
                .optional()?;
            let state: State = state.and_then(|s| s.parse().ok()).unwrap_or(State::Gone);
            insert_event(
                tx,
                id,
                Some(state),
                state,
                &format!("recording_log.location {to}: {detail}"),
                now,
            )
        })
    }

    /// VICIdial's database could not be asked: try again at `retry_at`.
    pub fn location_retry(&self, id: i64, reason: &str, retry_at: i64) -> Result<(), LedgerError> {
        self.write(|tx| {
            tx.execute(
                "UPDATE locations SET attempts = attempts + 1, retry_at = ?2, detail = ?3 \
                 WHERE recording_id = ?1",
                params![id, retry_at, reason],
            )?;
            Ok(())
        })
    }

    /// Every location recvault rewrote (or was putting back), oldest first.
    pub fn locations_rewritten(&self) -> Result<Vec<Rewritten>, LedgerError> {
        self.locations_in("'rewriting', 'rewritten', 'restoring'")
    }

    /// The locations in one of `states` (SQL string literals) whose old and
    /// new values are both known, by recording.
    pub(super) fn locations_in(&self, states: &str) -> Result<Vec<Rewritten>, LedgerError> {
        let conn = self.reader()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT l.recording_id, l.vicidial_recording_id, r.name, l.old_location, l.new_location, \
                    l.pending_location \
             FROM locations l JOIN recordings r ON r.id = l.recording_id \
             WHERE l.state IN ({states}) \
               AND l.old_location IS NOT NULL AND l.new_location IS NOT NULL \
             ORDER BY l.recording_id"
        ))?;
        let rows = stmt.query_map([], |r| {
            Ok(Rewritten {
                recording_id: r.get(0)?,
                vicidial_recording_id: r.get(1)?,
                name: r.get(2)?,
                old: r.get(3)?,
                new: r.get(4)?,
                pending: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records the intent to put the old value back (durably).
    pub fn location_restoring(&self, id: i64) -> Result<(), LedgerError> {
        self.write_durable(true, |tx| {
            tx.execute(
                "UPDATE locations SET state = 'restoring', updated_at = ?2 WHERE recording_id = ?1 \
                 AND state IN ('rewriting', 'rewritten', 'restoring')",
                params![id, crate::units::now_secs()],
            )?;
            Ok(())
        })
    }

    /// Locations per state.
    pub fn location_counts(&self) -> Result<LocationCounts, LedgerError> {
        let conn = self.reader()?;
        let mut stmt =
            conn.prepare_cached("SELECT state, COUNT(*) FROM locations GROUP BY state")?;
        let mut counts = LocationCounts::default();
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        for row in rows {
            let (state, n) = row?;
            let n = n.max(0) as u64;
            match state.as_str() {
                "waiting" => counts.waiting = n,
                "rewriting" | "restoring" => counts.rewriting += n,
                "rewritten" => counts.rewritten = n,
                "skipped" => counts.skipped = n,
                "restored" => counts.restored = n,
                _ => {}
            }
        }
        Ok(counts)
    }
}

fn conflict(id: i64, expected: &str) -> LedgerError {
    LedgerError::StateConflict {
        id,
        expected: format!("location {expected}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::attribution::{DbAnswer, DbAttribution};
    use crate::ledger::fixtures::{insert, ledger, spool_file};
    use crate::recording::name::Attribution;

    #[test]
    fn a_location_waits_for_the_local_copy_then_is_rewritten_and_restored() {
        let (_dir, ledger) = ledger();
        let id = insert(
            &ledger,
            &spool_file("/s/a-all.wav", 1),
            &Attribution::default(),
            State::Verified,
        );
        let todo = ledger.attribution_todo(i64::MAX / 2, 1).unwrap();
        let found = DbAnswer::Found(DbAttribution {
            vicidial_recording_id: 77,
            source: "outbound",
            ..DbAttribution::default()
        });
        ledger
            .record_attributions(0, std::time::Duration::ZERO, &[(todo[0].clone(), found)])
            .unwrap();
        // Still local: not yet.
        assert!(ledger.locations_todo(i64::MAX / 2, 10).unwrap().is_empty());
        ledger
            .execute_raw(&format!(
                "UPDATE recordings SET state = 'local_deleted' WHERE id = {id}"
            ))
            .unwrap();
        let todo = ledger.locations_todo(i64::MAX / 2, 10).unwrap();
        assert_eq!(
            (todo[0].vicidial_recording_id, todo[0].intent.clone()),
            (77, None)
        );
        ledger
            .location_intent(id, "http://h/RECORDINGS/a-all.wav", "http://h:8089/r/1/x")
            .unwrap();
        // A second intent (a stale worker) is refused.
        assert!(ledger.location_intent(id, "x", "y").is_err());
        let todo = ledger.locations_todo(i64::MAX / 2, 10).unwrap();
        assert_eq!(
            todo[0].intent,
            Some((
                "http://h/RECORDINGS/a-all.wav".into(),
                "http://h:8089/r/1/x".into()
            ))
        );
        ledger
            .location_done(id, "rewritten", "now the listen link")
            .unwrap();
        assert!(ledger.locations_todo(i64::MAX / 2, 10).unwrap().is_empty());
        let rewritten = ledger.locations_rewritten().unwrap();
        assert_eq!(rewritten.len(), 1);
        assert_eq!(rewritten[0].old, "http://h/RECORDINGS/a-all.wav");
        ledger.location_restoring(id).unwrap();
        assert_eq!(ledger.location_counts().unwrap().rewriting, 1);
        ledger
            .location_done(id, "restored", "old value back")
            .unwrap();
        let counts = ledger.location_counts().unwrap();
        assert_eq!((counts.restored, counts.rewritten), (1, 0));
        assert!(ledger.locations_rewritten().unwrap().is_empty());
    }
}
