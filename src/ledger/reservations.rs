//! Deletions reserved before they start. A deletion — retention's (object
//! and local copy) or the pipeline's (a verified recording's local copy) — is
//! reserved in the same IMMEDIATE transaction that checks the holds, and
//! `hold add` (also IMMEDIATE) sees the reservations: whichever commits first
//! wins. A hold committed before the reservation always saves the recording;
//! a deletion reserved before the hold goes on, and `hold add` says so. A
//! reservation left by a crash is a commitment: the deletion is finished at
//! the next start. Every state transition clears it, but an erasure's
//! (`ledger::erasure`), which stays until the erasure is recorded.

use std::collections::HashSet;

use rusqlite::params_from_iter;

use super::holds::HELD;
use super::rows::{COLUMNS, from_row};
use super::{Ledger, LedgerError};
use crate::recording::Recording;

/// What a reservation is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletion {
    /// Retention: the object, any staged copy and any local copy.
    Retention,
    /// The pipeline: the local copy of a verified recording.
    LocalCopy,
    /// A data-subject erasure: every copy. Never released, and kept through
    /// every transition, until the erasure is recorded (`ledger::erasure`).
    Erasure,
}

impl Deletion {
    fn as_str(self) -> &'static str {
        match self {
            Deletion::Retention => "retention",
            Deletion::LocalCopy => "local",
            Deletion::Erasure => "erasure",
        }
    }
}

impl Ledger {
    /// Reserves for retention those of `ids` that no active hold covers and
    /// that nothing else has reserved. Returns the ids reserved.
    pub fn reserve_for_retention(
        &self,
        ids: &[i64],
        now: i64,
    ) -> Result<HashSet<i64>, LedgerError> {
        if ids.is_empty() {
            return Ok(HashSet::new());
        }
        let list = vec!["?"; ids.len()].join(", ");
        self.write(|tx| {
            let free: HashSet<i64> = {
                let sql = format!(
                    "SELECT r.id FROM recordings r WHERE r.id IN ({list}) \
                     AND r.deleting_at IS NULL AND NOT {}",
                    *HELD
                );
                let mut stmt = tx.prepare(&sql)?;
                let rows = stmt.query_map(params_from_iter(ids), |r| r.get(0))?;
                rows.collect::<Result<_, _>>()?
            };
            let mut stmt = tx.prepare_cached(
                "UPDATE recordings SET deleting_at = ?2, deleting_what = 'retention' WHERE id = ?1",
            )?;
            for id in &free {
                stmt.execute((id, now))?;
            }
            Ok(free)
        })
    }

    /// Reserves the local delete of verified recording `id`, unless a hold
    /// covers it (then returns the holding cases and reserves nothing). A
    /// local-copy reservation left by an earlier run is taken over; one for
    /// retention is not (`Err` is not used for that: it returns `Ok(None)`).
    pub fn reserve_local_delete(
        &self,
        id: i64,
        now: i64,
    ) -> Result<Option<Vec<String>>, LedgerError> {
        self.write(|tx| reserve_local_in(tx, id, now))
    }

    /// Gives up reservations (a deletion that could not be done this time).
    /// An erasure's reservation is not given up: it is a commitment.
    pub fn release_reservations(&self, ids: &[i64]) -> Result<(), LedgerError> {
        self.write(|tx| {
            let mut stmt = tx.prepare_cached(
                "UPDATE recordings SET deleting_at = NULL, deleting_what = NULL \
                 WHERE id = ?1 AND deleting_what IS NOT 'erasure'",
            )?;
            for id in ids {
                stmt.execute([id])?;
            }
            Ok(())
        })
    }

    /// Recordings with a reservation of kind `what` (left by an interrupted
    /// run, or in progress).
    pub fn reserved(&self, what: Deletion) -> Result<Vec<Recording>, LedgerError> {
        let conn = self.reader()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM recordings WHERE deleting_at IS NOT NULL AND deleting_what = ?1 \
             ORDER BY id"
        ))?;
        let rows = stmt.query_map([what.as_str()], from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// [`Ledger::reserve_local_delete`] inside the caller's transaction (the
/// durable `verified` commit reserves there too: `ledger::verify`).
pub(super) fn reserve_local_in(
    tx: &rusqlite::Transaction<'_>,
    id: i64,
    now: i64,
) -> Result<Option<Vec<String>>, LedgerError> {
    let (state, what): (String, Option<String>) = tx
        .prepare_cached("SELECT state, deleting_what FROM recordings WHERE id = ?1")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    match what.as_deref() {
        Some("local") => return Ok(Some(Vec::new())),
        Some(_) => return Ok(None),
        None if state != "verified" => return Ok(None),
        None => {}
    }
    let cases = super::holds::cases_holding_in(tx, id)?;
    if cases.is_empty() {
        tx.prepare_cached(
            "UPDATE recordings SET deleting_at = ?2, deleting_what = 'local' WHERE id = ?1",
        )?
        .execute((id, now))?;
    }
    Ok(Some(cases))
}
