//! The ledger's side of data-subject erasure. A confirmed request reserves
//! its recordings (deleting_what = 'erasure') in the same IMMEDIATE
//! transaction that checks the holds and re-reads the set it covers, so a
//! hold committed first always wins and a set that changed since the preview
//! is never erased. The reservation is a commitment: it survives restarts
//! and every transition until the erasure is recorded. Recording it moves
//! the row to `remote_deleted` with `erased_at`, replaces its personal data
//! by pseudonyms, redacts its history lines and the audit entries naming it,
//! and appends one audit entry per request with counts only.

use rusqlite::{OptionalExtension, Transaction, params};

use super::audit::{self, Action, Actor, NewEntry};
use super::holds::{Selector, cases_holding_in};
use super::matching::{Matched, matching_ids};
use super::redaction::{REDACTED, Redactions, entries_naming};
use super::rows::{COLUMNS, from_row};
use super::transitions::apply;
use super::{Ledger, LedgerError};
use crate::recording::pseudonym::Replacements;
use crate::recording::{Recording, State};

/// What the erasure of one reserved recording came to this time.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Every copy is gone (`what` says which there were): recorded as erased.
    Erased {
        replacements: Replacements,
        what: String,
    },
    /// Object Lock keeps a version of its object until `until`; the local
    /// copy and staging are gone (`local_removed`), the rest waits.
    Waiting {
        until: i64,
        local_removed: bool,
        why: String,
    },
    /// Not done this time (the store, a local file); the reservation stays.
    Failed { why: String },
}

/// What recording a batch of outcomes did, per request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recorded {
    pub erased: u64,
    pub waiting: u64,
    pub failed: u64,
    /// Audit entries redacted because they named an erased recording.
    pub redacted: u64,
}

impl Ledger {
    /// Reserves for erasure under `request` the recordings `selectors`
    /// match that no active hold covers and that no erasure has yet — if
    /// `accept`, shown every match as it stands inside the transaction,
    /// returns the reason of the `erase-request` audit entry. Returns the
    /// matches and whether they were reserved (false: `accept` refused;
    /// nothing was written).
    pub fn reserve_erasure(
        &self,
        selectors: &[Selector],
        request: &str,
        actor: &Actor,
        now: i64,
        accept: impl FnOnce(&[Matched]) -> Option<String>,
    ) -> Result<(Vec<Matched>, bool), LedgerError> {
        self.write(|tx| {
            let mut matched = Vec::new();
            for id in matching_ids(tx, selectors)? {
                let rec = tx.query_row(
                    &format!("SELECT {COLUMNS} FROM recordings WHERE id = ?1"),
                    [id],
                    from_row,
                )?;
                let cases = cases_holding_in(tx, id)?;
                matched.push(Matched { rec, cases });
            }
            matched.sort_by_key(|m| (m.rec.time_secs(), m.rec.id));
            let Some(reason) = accept(&matched) else {
                return Ok((matched, false));
            };
            let mut reserve = tx.prepare_cached(
                "UPDATE recordings SET deleting_at = ?2, deleting_what = 'erasure', erase_request = ?3 \
                 WHERE id = ?1",
            )?;
            for m in matched.iter().filter(|m| !m.held() && m.rec.erasure.is_none()) {
                reserve.execute(params![m.rec.id, now, request])?;
            }
            let entry = NewEntry {
                action: Action::EraseRequest,
                case_id: Some(request),
                subject: &format!("erasure request {request}"),
                reason: &reason,
                recording_id: None,
            };
            audit::append(tx, actor, now, &entry)?;
            Ok((matched, true))
        })
    }

    /// Recordings whose erasure is under way and may go on at `now` (no
    /// Object Lock date ahead), by id after `after`, at most `limit`.
    pub fn due_erasures(
        &self,
        now: i64,
        after: i64,
        limit: usize,
    ) -> Result<Vec<Recording>, LedgerError> {
        let conn = self.reader()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM recordings WHERE deleting_at IS NOT NULL \
             AND deleting_what = 'erasure' AND COALESCE(erase_wait_until, 0) <= ?1 AND id > ?2 \
             ORDER BY id LIMIT ?3"
        ))?;
        let rows = stmt.query_map(params![now, after, limit as i64], from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The earliest Object Lock date an erasure waits for, if any.
    pub fn next_erasure_wait(&self) -> Result<Option<i64>, LedgerError> {
        Ok(self.reader()?.query_row(
            "SELECT MIN(erase_wait_until) FROM recordings WHERE deleting_at IS NOT NULL \
             AND deleting_what = 'erasure'",
            [],
            |r| r.get(0),
        )?)
    }

    /// Every recording of erasure request `request` (done or under way).
    pub fn erasure_of(&self, request: &str) -> Result<Vec<Recording>, LedgerError> {
        let conn = self.reader()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM recordings WHERE erase_request = ?1 ORDER BY id"
        ))?;
        let rows = stmt.query_map([request], from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records what erasing `outcomes` did, in one transaction, with one
    /// audit entry per request (counts only) that also accounts for the
    /// audit entries it redacted.
    pub fn record_erasures(
        &self,
        now: i64,
        actor: &Actor,
        outcomes: &[(Recording, Outcome)],
    ) -> Result<Recorded, LedgerError> {
        self.write(|tx| {
            let mut total = Recorded::default();
            let mut requests: Vec<&str> = outcomes
                .iter()
                .filter_map(|(r, _)| r.erasure.as_ref().map(|e| e.request.as_str()))
                .collect();
            requests.sort();
            requests.dedup();
            for request in requests {
                let mine: Vec<&(Recording, Outcome)> = outcomes
                    .iter()
                    .filter(|(r, _)| r.erasure.as_ref().is_some_and(|e| e.request == request))
                    .collect();
                let r = record_request(tx, now, actor, request, &mine)?;
                total.erased += r.erased;
                total.waiting += r.waiting;
                total.failed += r.failed;
                total.redacted += r.redacted;
            }
            Ok(total)
        })
    }
}

/// What one request's outcomes came to, for its audit entry.
#[derive(Default)]
struct Batch {
    done: Recorded,
    erased_ids: Vec<i64>,
    /// Texts naming the erased recordings, for the audit entries to redact.
    identifying: Vec<String>,
    /// The latest Object Lock date waited for.
    until: Option<i64>,
}

/// [`Ledger::record_erasures`] for the outcomes of one request.
fn record_request(
    tx: &Transaction<'_>,
    now: i64,
    actor: &Actor,
    request: &str,
    outcomes: &[&(Recording, Outcome)],
) -> Result<Recorded, LedgerError> {
    let mut batch = Batch::default();
    for (rec, outcome) in outcomes {
        if still_reserved(tx, rec.id)?.as_deref() != Some(request) {
            continue;
        }
        record_one(tx, now, actor, request, rec, outcome, &mut batch)?;
    }
    if batch.done.erased + batch.done.waiting == 0 {
        return Ok(batch.done);
    }
    batch.identifying.extend(gone_phones(tx, outcomes)?);
    let redactions = Redactions::of(
        entries_naming(tx, &batch.erased_ids, &batch.identifying)?,
        &batch.identifying,
    );
    batch.done.redacted = redactions.len() as u64;
    let mut reason = format!(
        "{} erased, {} waiting",
        batch.done.erased, batch.done.waiting
    );
    if let Some(until) = batch.until {
        let until = crate::units::local_time(until);
        reason.push_str(&format!(" for Object Lock until {until}"));
    }
    reason.push_str(&redactions.note());
    let entry = NewEntry {
        action: Action::Erase,
        case_id: Some(request),
        subject: &format!("erasure request {request}"),
        reason: &reason,
        recording_id: None,
    };
    let id = audit::append(tx, actor, now, &entry)?;
    redactions.write(tx, id)?;
    Ok(batch.done)
}

/// Records one recording's outcome into the ledger and `batch`.
fn record_one(
    tx: &Transaction<'_>,
    now: i64,
    actor: &Actor,
    request: &str,
    rec: &Recording,
    outcome: &Outcome,
    batch: &mut Batch,
) -> Result<(), LedgerError> {
    match outcome {
        Outcome::Erased { replacements, what } => {
            let by = format!("erasure request {request} ({})", actor.user);
            let detail = format!("erased (request {request}): {what}");
            erased(tx, now, rec, replacements, &by, &detail)?;
            batch.erased_ids.push(rec.id);
            batch
                .identifying
                .extend(replacements.identifying.iter().cloned());
            batch.done.erased += 1;
        }
        Outcome::Waiting {
            until,
            local_removed,
            why,
        } => {
            waiting(tx, now, rec, *until, *local_removed, why)?;
            batch.until = Some(batch.until.map_or(*until, |t| t.max(*until)));
            batch.done.waiting += 1;
        }
        Outcome::Failed { why } => {
            tx.execute(
                "UPDATE recordings SET last_error = ?2 WHERE id = ?1",
                params![rec.id, format!("erasure {request}: {why}")],
            )?;
            batch.done.failed += 1;
        }
    }
    Ok(())
}

/// The request a recording is still reserved for (another run may have
/// recorded it meanwhile).
fn still_reserved(tx: &Transaction<'_>, id: i64) -> Result<Option<String>, LedgerError> {
    Ok(tx
        .query_row(
            "SELECT erase_request FROM recordings WHERE id = ?1 \
             AND deleting_what = 'erasure' AND erased_at IS NULL",
            [id],
            |r| r.get(0),
        )
        .optional()?
        .flatten())
}

/// Records one erased recording: `remote_deleted`, its personal data
/// replaced, its traces elsewhere (history lines, released holds) redacted.
fn erased(
    tx: &Transaction<'_>,
    now: i64,
    rec: &Recording,
    p: &Replacements,
    by: &str,
    detail: &str,
) -> Result<(), LedgerError> {
    let state: String = tx.query_row(
        "SELECT state FROM recordings WHERE id = ?1",
        [rec.id],
        |r| r.get(0),
    )?;
    let state: State = state.parse().unwrap_or(State::Failed);
    apply(tx, rec.id, &[state], State::RemoteDeleted, &[], detail, now)?;
    tx.execute(
        "UPDATE recordings SET name = ?2, path = ?3, phone = ?4, lead_id = ?5, object_key = ?6, \
           last_error = NULL, deleting_at = NULL, deleting_what = NULL, erased_at = ?7, \
           erase_wait_until = NULL, deleted_at = ?7, deleted_by = ?8, \
           local_deleted_at = COALESCE(local_deleted_at, ?7) WHERE id = ?1",
        params![
            rec.id,
            p.name,
            p.path,
            p.phone,
            p.lead_id,
            p.object_key,
            now,
            by
        ],
    )?;
    super::object_keys::forget_all(tx, rec.id)?;
    redact_traces(tx, rec, p)
}

/// Redacts what still names an erased recording outside its row: its
/// history lines, the VICIdial location it replaced, and a released hold
/// that named it by name or key (an active one covers it, so it was never
/// erased).
fn redact_traces(
    tx: &Transaction<'_>,
    rec: &Recording,
    p: &Replacements,
) -> Result<(), LedgerError> {
    tx.execute(
        "UPDATE hold_selectors SET value = ?3 WHERE kind = 'recording' AND value IN (?1, ?2) \
         AND hold_id IN (SELECT id FROM holds WHERE released_at IS NOT NULL)",
        params![
            String::from_utf8_lossy(&rec.name),
            rec.object_key,
            String::from_utf8_lossy(&p.name)
        ],
    )?;
    // The VICIdial location it replaced and the links recvault wrote end
    // with the file name: forgotten, never written back by
    // `restore-locations` (nor rewritten or re-signed any more).
    tx.execute(
        "UPDATE locations SET old_location = NULL, new_location = NULL, pending_location = NULL, \
           detail = 'erased', \
           state = CASE WHEN state IN ('waiting', 'rewriting', 'restoring') THEN 'skipped' ELSE state END \
         WHERE recording_id = ?1",
        [rec.id],
    )?;
    let mut redact = tx.prepare_cached(
        "UPDATE events SET detail = ?3 WHERE recording_id = ?1 AND instr(detail, ?2) > 0",
    )?;
    for text in &p.identifying {
        redact.execute(params![rec.id, text, REDACTED])?;
    }
    Ok(())
}

/// Records an erasure that waits for Object Lock: the date, and that the
/// local copy is gone (a verified recording is then `local_deleted`).
fn waiting(
    tx: &Transaction<'_>,
    now: i64,
    rec: &Recording,
    until: i64,
    local_removed: bool,
    why: &str,
) -> Result<(), LedgerError> {
    if local_removed && rec.state == State::Verified {
        let detail = "erasure: local copy removed; the stored object waits for Object Lock";
        let sets: [(&str, &dyn rusqlite::ToSql); 1] = [("local_deleted_at", &now)];
        apply(
            tx,
            rec.id,
            &[State::Verified],
            State::LocalDeleted,
            &sets,
            detail,
            now,
        )?;
    }
    tx.execute(
        "UPDATE recordings SET erase_wait_until = ?2, last_error = ?3 WHERE id = ?1",
        params![rec.id, until, why],
    )?;
    Ok(())
}

/// The erased numbers no other recording and no active hold still has:
/// released holds naming them get the pseudonym, and audit entries of
/// holds naming them are redacted.
fn gone_phones(
    tx: &Transaction<'_>,
    outcomes: &[&(Recording, Outcome)],
) -> Result<Vec<String>, LedgerError> {
    let mut gone = Vec::new();
    for (rec, outcome) in outcomes {
        let (Some(phone), Outcome::Erased { replacements, .. }) = (&rec.phone, outcome) else {
            continue;
        };
        let phone = crate::recording::phone::normalize_lenient(phone);
        let still: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM recordings WHERE phone = ?1) \
             OR EXISTS (SELECT 1 FROM hold_selectors s JOIN holds h ON h.id = s.hold_id \
                        WHERE s.kind = 'phone' AND s.value = ?1 AND h.released_at IS NULL)",
            [&phone],
            |r| r.get(0),
        )?;
        if still || gone.contains(&phone) {
            continue;
        }
        tx.execute(
            "UPDATE hold_selectors SET value = ?2 WHERE kind = 'phone' AND value = ?1",
            params![phone, replacements.phone],
        )?;
        gone.push(phone);
    }
    Ok(gone)
}

#[cfg(test)]
mod tests;
