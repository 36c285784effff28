//! Listens in the audit trail: every HTTP request for a recording —
//! served, refused or not found — as an `listen` entry, appended in batches
//! (one transaction per batch) so playback never waits for the ledger.

use super::audit::{self, Action, Actor, NewEntry};
use super::redaction::REDACTED;
use super::{Ledger, LedgerError};

/// One audit entry about requests for a recording (several identical
/// requests in one batch may be counted in one entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenEntry {
    /// Unix seconds of the first request it counts.
    pub at: i64,
    /// The recording, when the link named one the ledger knows.
    pub recording_id: Option<i64>,
    /// What was asked for (a recording's audit subject, or the link).
    pub subject: String,
    /// Who: the authenticated user, or `anonymous`.
    pub user: String,
    /// Outcome, status, bytes, client address, user agent.
    pub reason: String,
}

impl Ledger {
    /// Appends `entries` to the audit trail in one transaction, in order,
    /// in the daemon's name (`actor`) with each entry's own user (the
    /// subject of an erased recording's entry redacted, as the erasure
    /// redacted those already in the trail); with
    /// `journal`, records in the same transaction that the listen journal
    /// files up to that number are in the trail.
    pub fn record_listens(
        &self,
        actor: &Actor,
        entries: &[ListenEntry],
        journal: Option<u64>,
    ) -> Result<(), LedgerError> {
        self.write(|tx| {
            if let Some(n) = journal {
                tx.execute(
                    "INSERT INTO listen_journal (id, applied) VALUES (1, ?1) \
                     ON CONFLICT (id) DO UPDATE SET applied = MAX(applied, ?1)",
                    [n as i64],
                )?;
            }
            let mut erased = tx.prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM recordings WHERE id = ?1 AND erased_at IS NOT NULL)",
            )?;
            for e in entries {
                let who = Actor {
                    uid: actor.uid,
                    user: e.user.clone(),
                };
                // A listen of a recording erased since (journaled before a
                // kill, replayed after the erasure) names nothing of it.
                let gone = match e.recording_id {
                    Some(id) => erased.query_row([id], |r| r.get::<_, bool>(0))?,
                    None => false,
                };
                let entry = NewEntry {
                    action: Action::Listen,
                    case_id: None,
                    subject: if gone { REDACTED } else { &e.subject },
                    reason: &e.reason,
                    recording_id: e.recording_id,
                };
                audit::append(tx, &who, e.at, &entry)?;
            }
            Ok(())
        })
    }

    /// The last listen journal file whose listens are in the audit trail (0: none).
    pub fn listens_journaled(&self) -> Result<u64, LedgerError> {
        let applied: Option<i64> =
            self.reader()?
                .query_row("SELECT MAX(applied) FROM listen_journal", [], |r| r.get(0))?;
        Ok(applied.unwrap_or(0).max(0) as u64)
    }

    /// Proves the ledger takes writes (`/healthz`): rewrites one row.
    pub fn touch_health(&self, now: i64) -> Result<(), LedgerError> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO health (id, at) VALUES (1, ?1) ON CONFLICT (id) DO UPDATE SET at = ?1",
                [now],
            )?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::audit::AuditFilter;

    #[test]
    fn listens_join_the_chain_and_are_found_by_recording_and_action() {
        let (_dir, ledger) = crate::ledger::fixtures::ledger();
        let actor = Actor {
            uid: 998,
            user: "recvault".into(),
        };
        let entry = |id: Option<i64>, user: &str| ListenEntry {
            at: 100,
            recording_id: id,
            subject: format!("recording {id:?}"),
            user: user.into(),
            reason: "outcome served; status 200; bytes 10".into(),
        };
        ledger
            .record_listens(
                &actor,
                &[entry(Some(7), "1001"), entry(None, "anonymous")],
                None,
            )
            .unwrap();
        ledger
            .record_listens(&actor, &[entry(Some(8), "anonymous")], Some(4))
            .unwrap();
        assert_eq!(ledger.verify_audit_chain().unwrap().entries, 3);
        assert_eq!(ledger.listens_journaled().unwrap(), 4);
        // Never backwards: a late batch of an older file does not lower it.
        ledger.record_listens(&actor, &[], Some(2)).unwrap();
        assert_eq!(ledger.listens_journaled().unwrap(), 4);
        let find = |filter: AuditFilter| {
            let mut out = Vec::new();
            ledger
                .audit_entries::<LedgerError>(&filter, |e| {
                    out.push((e.recording_id, e.user.clone(), e.action.clone()));
                    Ok(())
                })
                .unwrap();
            out
        };
        assert_eq!(
            find(AuditFilter {
                recordings: Some(vec![7]),
                ..AuditFilter::default()
            }),
            [(Some(7), "1001".to_string(), "listen".to_string())]
        );
        assert_eq!(
            find(AuditFilter {
                action: Some("listen".into()),
                ..AuditFilter::default()
            })
            .len(),
            3
        );
        assert!(
            find(AuditFilter {
                action: Some("restore".into()),
                ..AuditFilter::default()
            })
            .is_empty()
        );
        ledger.touch_health(5).unwrap();
        ledger.touch_health(6).unwrap();
    }
}
