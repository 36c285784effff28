//! The audit trail's table: an append-only, hash-chained record of every
//! deletion, hold change, restore and policy change — when, which unix user,
//! what, why. Each entry carries the SHA-256 of the one before, so
//! [`Ledger::verify_audit_chain`] finds any entry edited or removed after the
//! fact. Entries are appended inside the transaction of the change they
//! record, so the two commit together.

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension, Transaction, params};
use sha2::{Digest, Sha256};

use super::{Ledger, LedgerError, redaction};
use crate::recording::Recording;
use crate::recording::key::display_name;
use crate::units::local_time;

/// The `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What an entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Retention deleted a recording (object and any local copy).
    RetentionDelete,
    /// The archive pipeline removed a local copy after verifying its object.
    LocalDelete,
    HoldAdd,
    HoldRelease,
    Restore,
    /// An operator ran a retention sweep by hand.
    RetentionRun,
    /// The retention or naming policy in force changed.
    PolicyChange,
    /// Someone asked for a recording over HTTP (served, refused or not found).
    Listen,
    /// An operator confirmed a data-subject erasure (what it covers, counts only).
    EraseRequest,
    /// Recordings of an erasure request were erased (counts only; the entry
    /// also carries the digest of the entries it redacted).
    Erase,
    /// Recordings were exported for a subject-access request or an audit.
    Export,
    /// Someone downloaded what the console made: a search's CSV, an export's zip.
    Download,
}

impl Action {
    /// Every action (what `recvault audit --action` accepts).
    pub const ALL: [Action; 12] = [
        Action::Listen,
        Action::LocalDelete,
        Action::RetentionDelete,
        Action::Restore,
        Action::HoldAdd,
        Action::HoldRelease,
        Action::RetentionRun,
        Action::PolicyChange,
        Action::EraseRequest,
        Action::Erase,
        Action::Export,
        Action::Download,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::RetentionDelete => "retention-delete",
            Action::LocalDelete => "local-delete",
            Action::HoldAdd => "hold-add",
            Action::HoldRelease => "hold-release",
            Action::Restore => "restore",
            Action::RetentionRun => "retention-run",
            Action::PolicyChange => "policy-change",
            Action::Listen => "listen",
            Action::EraseRequest => "erase-request",
            Action::Erase => "erase",
            Action::Export => "export",
            Action::Download => "download",
        }
    }
}

/// Who is acting: the process's unix user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub uid: u32,
    /// The user name (`root (sudo by alice)` when run through sudo).
    pub user: String,
}

/// A new entry's content; time, user and hashes are added by [`append`].
#[derive(Debug, Clone)]
pub struct NewEntry<'a> {
    pub action: Action,
    pub case_id: Option<&'a str>,
    /// What was acted on (a recording, a hold, the policy).
    pub subject: &'a str,
    /// Why: the rule, the operator's reason.
    pub reason: &'a str,
    /// The recording the entry is about, if it is about one.
    pub recording_id: Option<i64>,
}

/// One stored entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: i64,
    pub at: i64,
    pub uid: u32,
    pub user: String,
    pub action: String,
    pub case_id: Option<String>,
    pub subject: String,
    pub reason: String,
    pub prev_hash: String,
    pub hash: String,
    pub recording_id: Option<i64>,
}

impl Entry {
    /// SHA-256 (hex) over a canonical serialization: a version tag, then each
    /// field length-prefixed, in a fixed order, ending with `prev_hash` (v1),
    /// then the recording id for an entry about one recording (v2; entries
    /// written before that column existed keep their v1 hash).
    pub fn compute_hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(match self.recording_id {
            None => b"recvault-audit-v1\n",
            Some(_) => b"recvault-audit-v2\n",
        });
        let mut field = |bytes: Option<&[u8]>| match bytes {
            None => h.update(b"-\n"),
            Some(b) => {
                h.update(format!("{}:", b.len()).as_bytes());
                h.update(b);
                h.update(b"\n");
            }
        };
        field(Some(self.id.to_string().as_bytes()));
        field(Some(self.at.to_string().as_bytes()));
        field(Some(self.uid.to_string().as_bytes()));
        field(Some(self.user.as_bytes()));
        field(Some(self.action.as_bytes()));
        field(self.case_id.as_deref().map(str::as_bytes));
        field(Some(self.subject.as_bytes()));
        field(Some(self.reason.as_bytes()));
        field(Some(self.prev_hash.as_bytes()));
        if let Some(id) = self.recording_id {
            field(Some(id.to_string().as_bytes()));
        }
        hex::encode(h.finalize())
    }
}

/// Appends an entry inside the caller's transaction (so the entry and the
/// change it records commit together). Returns its id.
pub(super) fn append(
    tx: &Transaction<'_>,
    actor: &Actor,
    at: i64,
    new: &NewEntry<'_>,
) -> Result<i64, LedgerError> {
    // Cached statements: the archive pipeline appends one per local delete.
    let last: Option<(i64, String)> = tx
        .prepare_cached("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let seq: Option<i64> = tx
        .prepare_cached("SELECT seq FROM sqlite_sequence WHERE name = 'audit'")?
        .query_row([], |r| r.get(0))
        .optional()?;
    let (last_id, prev_hash) = last.unwrap_or((0, GENESIS.to_string()));
    let mut entry = Entry {
        // AUTOINCREMENT would pick seq + 1; the hash covers the id, so use it.
        id: seq.unwrap_or(0).max(last_id) + 1,
        at,
        uid: actor.uid,
        user: actor.user.clone(),
        action: new.action.as_str().to_string(),
        case_id: new.case_id.map(str::to_string),
        subject: new.subject.to_string(),
        reason: new.reason.to_string(),
        prev_hash,
        hash: String::new(),
        recording_id: new.recording_id,
    };
    entry.hash = entry.compute_hash();
    tx.prepare_cached(
        "INSERT INTO audit (id, at, uid, user, action, case_id, subject, reason, prev_hash, hash, \
         recording_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        entry.id,
        entry.at,
        entry.uid,
        entry.user,
        entry.action,
        entry.case_id,
        entry.subject,
        entry.reason,
        entry.prev_hash,
        entry.hash,
        entry.recording_id
    ])?;
    Ok(entry.id)
}

/// Filters for `recvault audit`.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Unix seconds, inclusive.
    pub since: Option<i64>,
    pub case_id: Option<String>,
    /// Only entries with this action (`listen`, `local-delete`, …).
    pub action: Option<String>,
    /// Only entries about one of these recordings (ledger ids).
    pub recordings: Option<Vec<i64>>,
}

pub(super) fn entry_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Entry> {
    // By name: the trail is read rarely, and never in a hot loop.
    Ok(Entry {
        id: r.get("id")?,
        at: r.get("at")?,
        uid: r.get::<_, i64>("uid")? as u32,
        user: r.get("user")?,
        action: r.get("action")?,
        case_id: r.get("case_id")?,
        subject: r.get("subject")?,
        reason: r.get("reason")?,
        prev_hash: r.get("prev_hash")?,
        hash: r.get("hash")?,
        recording_id: r.get("recording_id")?,
    })
}

pub(super) const ENTRY_COLUMNS: &str =
    "id, at, uid, user, action, case_id, subject, reason, prev_hash, hash, recording_id";

/// What a good verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub entries: u64,
    /// The newest entry's hash (worth writing down: it pins the whole trail).
    pub head: String,
}

impl Ledger {
    /// Appends one entry in its own transaction. Returns its id.
    pub fn audit_record(
        &self,
        actor: &Actor,
        at: i64,
        new: &NewEntry<'_>,
    ) -> Result<i64, LedgerError> {
        self.write(|tx| append(tx, actor, at, new))
    }

    /// The reason of the newest entry with `action`, if any.
    pub fn last_audit_reason(&self, action: Action) -> Result<Option<String>, LedgerError> {
        Ok(self
            .reader()?
            .query_row(
                "SELECT reason FROM audit WHERE action = ?1 ORDER BY id DESC LIMIT 1",
                [action.as_str()],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Entries matching `filter`, oldest first, one at a time; an error from
    /// `visit` stops the walk and is returned.
    pub fn audit_entries<E: From<LedgerError>>(
        &self,
        filter: &AuditFilter,
        mut visit: impl FnMut(&Entry) -> Result<(), E>,
    ) -> Result<(), E> {
        let conn = self.reader()?;
        // A recording filter walks the recording index; the rest filter rows.
        let recordings = match &filter.recordings {
            None => String::new(),
            Some(ids) => {
                let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
                format!(
                    "AND recording_id IS NOT NULL AND recording_id IN ({})",
                    ids.join(", ")
                )
            }
        };
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {ENTRY_COLUMNS} FROM audit WHERE (?1 IS NULL OR at >= ?1) \
                 AND (?2 IS NULL OR case_id = ?2) AND (?3 IS NULL OR action = ?3) {recordings} \
                 ORDER BY id"
            ))
            .map_err(LedgerError::from)?;
        let mut rows = stmt
            .query(params![filter.since, filter.case_id, filter.action])
            .map_err(LedgerError::from)?;
        while let Some(row) = rows.next().map_err(LedgerError::from)? {
            visit(&entry_from_row(row).map_err(LedgerError::from)?)?;
        }
        Ok(())
    }

    /// Walks the whole chain: every id present, every `prev_hash` the hash of
    /// the entry before, every hash matching its entry (a redacted entry:
    /// matching its redaction record, and each erase entry's redactions the
    /// set it recorded), nothing removed at the end.
    pub fn verify_audit_chain(&self) -> Result<Verified, LedgerError> {
        let conn = self.reader()?;
        let redactions = redaction::all(&conn)?;
        let mut erase_entries = BTreeMap::new();
        let mut stmt = conn.prepare(&format!("SELECT {ENTRY_COLUMNS} FROM audit ORDER BY id"))?;
        let mut rows = stmt.query([])?;
        let (mut last_id, mut last_hash, mut entries) = (0i64, GENESIS.to_string(), 0u64);
        while let Some(row) = rows.next()? {
            let e = entry_from_row(row)?;
            let broken = |problem: String| LedgerError::AuditBroken { id: e.id, problem };
            if e.id != last_id + 1 {
                return Err(LedgerError::AuditBroken {
                    id: last_id + 1,
                    problem: format!("entries {} to {} were removed", last_id + 1, e.id - 1),
                });
            }
            if e.prev_hash != last_hash {
                return Err(broken(format!(
                    "its previous-entry hash {} is not entry {last_id}'s hash {last_hash}",
                    e.prev_hash
                )));
            }
            match redactions.get(&e.id) {
                Some((_, recorded)) => redaction::check_entry(&e, recorded).map_err(broken)?,
                None if e.compute_hash() != e.hash => {
                    return Err(broken(
                        "its content does not match its hash (the entry was edited)".to_string(),
                    ));
                }
                None => {
                    if e.action == Action::Erase.as_str() {
                        erase_entries.insert(e.id, (e.action.clone(), e.reason.clone()));
                    }
                }
            }
            (last_id, last_hash) = (e.id, e.hash);
            entries += 1;
        }
        redaction::check_sets(&redactions, &erase_entries)?;
        let seq: Option<i64> = conn
            .query_row(
                "SELECT seq FROM sqlite_sequence WHERE name = 'audit'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(seq) = seq.filter(|s| *s > last_id) {
            return Err(LedgerError::AuditBroken {
                id: last_id + 1,
                problem: format!("entries {} to {seq} were removed from the end", last_id + 1),
            });
        }
        Ok(Verified {
            entries,
            head: last_hash,
        })
    }
}

/// How the audit trail names a recording.
pub fn subject(r: &Recording) -> String {
    format!(
        "recording {} `{}` (campaign {}, call {}, key {}, sha256 {})",
        r.id,
        display_name(&r.name),
        r.campaign.as_deref().unwrap_or("-"),
        local_time(r.time_secs()),
        r.object_key.as_deref().unwrap_or("-"),
        r.sha256.as_deref().unwrap_or("-"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor() -> Actor {
        Actor {
            uid: 1000,
            user: "alice".to_string(),
        }
    }

    fn entry(ledger: &Ledger, n: i64) {
        ledger
            .audit_record(
                &actor(),
                n,
                &NewEntry {
                    action: Action::HoldAdd,
                    case_id: Some("C-1"),
                    subject: &format!("hold {n}"),
                    reason: "litigation",
                    recording_id: None,
                },
            )
            .unwrap();
    }

    fn raw(ledger: &Ledger, sql: &str) {
        ledger
            .execute_raw(&format!(
                "DROP TRIGGER IF EXISTS audit_no_update; DROP TRIGGER IF EXISTS audit_no_delete; {sql}"
            ))
            .unwrap();
    }

    #[test]
    fn chain_verifies_and_names_the_tampered_entry() {
        let (_dir, ledger) = crate::ledger::fixtures::ledger();
        for n in 1..=5 {
            entry(&ledger, n);
        }
        let ok = ledger.verify_audit_chain().unwrap();
        assert_eq!(ok.entries, 5);

        // The table refuses edits outright...
        let refused = ledger
            .execute_raw("UPDATE audit SET reason = 'x' WHERE id = 3")
            .unwrap_err();
        assert!(refused.to_string().contains("append-only"), "{refused}");
        // ...and an edit that gets round that is found.
        raw(&ledger, "UPDATE audit SET reason = 'routine' WHERE id = 3;");
        let e = ledger.verify_audit_chain().unwrap_err().to_string();
        assert!(e.contains("entry 3"), "{e}");
        assert!(e.contains("edited"), "{e}");
    }

    #[test]
    fn removed_entries_are_found() {
        let (_dir, ledger) = crate::ledger::fixtures::ledger();
        for n in 1..=4 {
            entry(&ledger, n);
        }
        raw(&ledger, "DELETE FROM audit WHERE id = 4;");
        let e = ledger.verify_audit_chain().unwrap_err().to_string();
        assert!(e.contains("entry 4") && e.contains("end"), "{e}");
        raw(&ledger, "DELETE FROM audit WHERE id = 2;");
        let e = ledger.verify_audit_chain().unwrap_err().to_string();
        assert!(e.contains("entry 2"), "{e}");
    }
}
