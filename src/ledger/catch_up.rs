//! What a restored backup learns from the store (`ledger restore`): the
//! holds of the newest hold copy, merged with the backup's, and recordings
//! archived after the backup, from their objects' metadata. The rules
//! (which copy is newer, which objects) are `recovery::catch_up`.

use rusqlite::{OptionalExtension, Transaction, params};

use super::holds::{Hold, insert_selectors};
use super::rows::ArchivedObject;
use super::transitions::insert_event;
use super::{Ledger, LedgerError, object_keys};
use crate::recording::State;

/// What merging a hold copy into the ledger changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HoldsMerged {
    /// Holds the ledger did not have (placed after the backup).
    pub added: usize,
    /// Holds the copy knows as released that the ledger had active.
    pub released: usize,
    /// Holds in the ledger now, active or released.
    pub total: usize,
}

impl Ledger {
    /// Merges the holds of a hold copy into the ledger. A hold is the same
    /// hold when case, creator and creation time agree. One only the copy
    /// knows is added (under a new id if its id is another hold's); one both know
    /// takes the copy's release when `copy_is_newer` — the copy is written
    /// after every hold change, so it is the later truth — and keeps the
    /// ledger's otherwise. No hold is ever dropped.
    pub fn merge_holds(
        &self,
        copy: &[Hold],
        copy_is_newer: bool,
    ) -> Result<HoldsMerged, LedgerError> {
        self.write(|tx| {
            let mut merged = HoldsMerged::default();
            for hold in copy {
                merge_one(tx, hold, copy_is_newer, &mut merged)?;
            }
            merged.total =
                tx.query_row("SELECT COUNT(*) FROM holds", [], |r| r.get::<_, i64>(0))? as usize;
            Ok(merged)
        })
    }

    /// Brings recording `id` — the same recording as `object` describes,
    /// still in an earlier state in a restored backup — up to the state its
    /// object shows: archived (`verified` if its local copy is still in the
    /// spool, else `local_deleted`), with the object's facts and key. What
    /// was known of the call stays where the row knew it.
    pub fn archived_after_backup(
        &self,
        id: i64,
        object: &ArchivedObject,
    ) -> Result<(), LedgerError> {
        let now = crate::units::now_secs();
        self.write(|tx| {
            let from: String = tx
                .query_row("SELECT state FROM recordings WHERE id = ?1", [id], |r| r.get(0))
                .optional()?
                .ok_or(LedgerError::NoSuchRecording(id))?;
            let local_deleted_at = (object.state == State::LocalDeleted).then_some(now);
            tx.execute(
                "UPDATE recordings SET state = ?2, resume_state = NULL, sha256 = ?3, object_key = ?4, \
                   object_size = ?5, object_sha256 = ?6, store_checksum = ?7, codec = ?8, \
                   verified_at = ?9, local_deleted_at = ?10, path = ?11, dev = ?12, ino = ?13, \
                   size = ?14, mtime_ns = ?15, last_error = NULL, retry_at = NULL, failure_kind = NULL, \
                   updated_at = ?9 WHERE id = ?1",
                params![
                    id,
                    object.state.as_str(),
                    object.sha256,
                    object.object_key,
                    object.object_size as i64,
                    object.object_sha256,
                    object.store_checksum,
                    object.codec,
                    now,
                    local_deleted_at,
                    std::os::unix::ffi::OsStrExt::as_bytes(object.path.as_os_str()),
                    object.identity.dev as i64,
                    object.identity.ino as i64,
                    object.identity.size as i64,
                    object.identity.mtime_ns,
                ],
            )?;
            fill_call(tx, id, object)?;
            object_keys::track_written(tx, id, &object.object_key, now)?;
            let from: State = from.parse().unwrap_or(State::Failed);
            let detail = "archived after the restored backup was taken (from the store's object metadata)";
            insert_event(tx, id, Some(from), object.state, detail, now)
        })
    }
}

fn merge_one(
    tx: &Transaction<'_>,
    hold: &Hold,
    copy_is_newer: bool,
    merged: &mut HoldsMerged,
) -> Result<(), LedgerError> {
    // The same hold: same case, creator and creation time (its own id first).
    let known: Option<(i64, Option<i64>)> = tx
        .query_row(
            "SELECT id, released_at FROM holds WHERE case_id = ?2 AND created_at = ?3 AND created_by = ?4 \
             ORDER BY id != ?1 LIMIT 1",
            params![hold.id, hold.case_id, hold.created_at, hold.created_by],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    if let Some((id, released)) = known {
        if copy_is_newer && released.is_none() && hold.released_at.is_some() {
            tx.execute(
                "UPDATE holds SET released_at = ?2, released_by = ?3, release_reason = ?4 WHERE id = ?1",
                params![id, hold.released_at, hold.released_by, hold.release_reason],
            )?;
            merged.released += 1;
        }
        return Ok(());
    }
    // Placed after the backup; under a new id if its id is another hold's here.
    let taken: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM holds WHERE id = ?1)",
        [hold.id],
        |r| r.get(0),
    )?;
    tx.execute(
        "INSERT INTO holds (id, case_id, reason, created_by, created_at, released_at, released_by, release_reason) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            (!taken).then_some(hold.id),
            hold.case_id,
            hold.reason,
            hold.created_by,
            hold.created_at,
            hold.released_at,
            hold.released_by,
            hold.release_reason
        ],
    )?;
    insert_selectors(tx, tx.last_insert_rowid(), &hold.selectors)?;
    merged.added += 1;
    Ok(())
}

/// Fills in what the object's metadata knew of the call where the row knows nothing.
fn fill_call(tx: &Transaction<'_>, id: i64, object: &ArchivedObject) -> Result<(), LedgerError> {
    if let Some(call) = &object.call {
        tx.execute(
            "UPDATE recordings SET campaign = COALESCE(campaign, ?2), call_time = COALESCE(call_time, ?3), \
               phone = COALESCE(phone, ?4), agent = COALESCE(agent, ?5), lead_id = COALESCE(lead_id, ?6), \
               attributed = COALESCE(attributed, 1) WHERE id = ?1",
            params![id, call.campaign, call.call_time, call.phone, call.agent, call.lead_id],
        )?;
    }
    if let Some((vicidial_id, length)) = object.vicidial {
        tx.execute(
            "UPDATE recordings SET db_attribution = 'done', vicidial_recording_id = ?2, \
               call_length = COALESCE(call_length, ?3) WHERE id = ?1 AND vicidial_recording_id IS NULL",
            params![id, vicidial_id, length],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::audit::Actor;
    use crate::ledger::fixtures::ledger;
    use crate::ledger::holds::Selector;

    #[test]
    fn a_newer_copy_adds_and_releases_holds_and_never_drops_one() {
        let (_dir, ledger) = ledger();
        let actor = Actor {
            uid: 0,
            user: "root".into(),
        };
        let phone = [Selector::Phone("5551234567".into())];
        ledger.insert_hold(&actor, 10, "OLD", "r", &phone).unwrap();
        ledger.insert_hold(&actor, 11, "GONE", "r", &phone).unwrap();
        ledger
            .insert_hold(&actor, 12, "ONLY-HERE", "r", &phone)
            .unwrap();
        let mut copy = ledger.holds().unwrap();
        copy.retain(|h| h.case_id != "ONLY-HERE");
        for h in copy.iter_mut().filter(|h| h.case_id == "GONE") {
            h.released_at = Some(20);
            h.released_by = Some("root".into());
        }
        let new = |id: i64, case: &str| Hold {
            id,
            case_id: case.into(),
            reason: "r".into(),
            created_by: "root".into(),
            created_at: 21,
            released_at: None,
            released_by: None,
            release_reason: None,
            selectors: phone.to_vec(),
        };
        // NEW took id 4; CLASH has id 3, which ONLY-HERE has in the ledger.
        copy.push(new(4, "NEW"));
        copy.push(new(3, "CLASH"));
        // An older copy releases nothing.
        let older = ledger.merge_holds(&copy[..2], false).unwrap();
        assert_eq!((older.added, older.released), (0, 0));
        let merged = ledger.merge_holds(&copy, true).unwrap();
        assert_eq!(
            merged,
            HoldsMerged {
                added: 2,
                released: 1,
                total: 5
            }
        );
        let active: Vec<String> = ledger
            .holds()
            .unwrap()
            .into_iter()
            .filter(|h| h.released_at.is_none())
            .map(|h| h.case_id)
            .collect();
        assert_eq!(active.len(), 4, "{active:?}");
        assert!(!active.contains(&"GONE".to_string()));
        // Merging the same copy again changes nothing.
        let again = ledger.merge_holds(&copy, true).unwrap();
        assert_eq!((again.added, again.released, again.total), (0, 0, 5));
    }
}
