//! The audit trail: an append-only table of every deletion, hold change,
//! restore and policy change — when, which unix user, what, why. Each entry
//! carries the SHA-256 of the one before, so `recvault audit verify` finds
//! any entry edited or removed after the fact.

use std::ffi::CStr;
use std::io::{self, Write};

use rusqlite::{OptionalExtension, Transaction, params};
use sha2::{Digest, Sha256};

use crate::ledger::{Ledger, LedgerError};

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
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::RetentionDelete => "retention-delete",
            Action::LocalDelete => "local-delete",
            Action::HoldAdd => "hold-add",
            Action::HoldRelease => "hold-release",
            Action::Restore => "restore",
            Action::RetentionRun => "retention-run",
            Action::PolicyChange => "policy-change",
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

impl Actor {
    /// The user this process runs as.
    pub fn current() -> Actor {
        // SAFETY: getuid cannot fail.
        let uid = unsafe { libc::getuid() };
        let mut user = user_name(uid).unwrap_or_else(|| format!("uid {uid}"));
        if uid == 0
            && let Ok(by) = std::env::var("SUDO_USER")
            && !by.is_empty()
        {
            user = format!("{user} (sudo by {by})");
        }
        Actor { uid, user }
    }
}

/// The name of `uid` from the password database (getpwuid_r).
pub fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: passwd is plain data; getpwuid_r writes into pwd and buf
        // (whose length we pass) and sets result to &pwd or null.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = unsafe {
            libc::getpwuid_r(
                uid,
                &mut pwd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        // SAFETY: pw_name points into buf, NUL-terminated by getpwuid_r.
        let name = unsafe { CStr::from_ptr(pwd.pw_name) };
        return Some(name.to_string_lossy().into_owned());
    }
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
}

impl Entry {
    /// SHA-256 (hex) over a canonical serialization: a version tag, then each
    /// field length-prefixed, in a fixed order, ending with `prev_hash`.
    pub fn compute_hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"recvault-audit-v1\n");
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
        hex::encode(h.finalize())
    }
}

/// Appends an entry inside the caller's transaction (so the entry and the
/// change it records commit together). Returns its id.
pub fn append(
    tx: &Transaction<'_>,
    actor: &Actor,
    at: i64,
    new: &NewEntry<'_>,
) -> Result<i64, LedgerError> {
    let last: Option<(i64, String)> = tx
        .query_row(
            "SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let seq: Option<i64> = tx
        .query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = 'audit'",
            [],
            |r| r.get(0),
        )
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
    };
    entry.hash = entry.compute_hash();
    tx.execute(
        "INSERT INTO audit (id, at, uid, user, action, case_id, subject, reason, prev_hash, hash) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            entry.id,
            entry.at,
            entry.uid,
            entry.user,
            entry.action,
            entry.case_id,
            entry.subject,
            entry.reason,
            entry.prev_hash,
            entry.hash
        ],
    )?;
    Ok(entry.id)
}

/// Appends one entry in its own transaction.
pub fn record(
    ledger: &Ledger,
    actor: &Actor,
    at: i64,
    new: &NewEntry<'_>,
) -> Result<i64, LedgerError> {
    ledger.write(|tx| append(tx, actor, at, new))
}

/// The reason of the newest entry with `action`, if any.
pub fn last_reason(ledger: &Ledger, action: Action) -> Result<Option<String>, LedgerError> {
    ledger.read(|conn| {
        Ok(conn
            .query_row(
                "SELECT reason FROM audit WHERE action = ?1 ORDER BY id DESC LIMIT 1",
                [action.as_str()],
                |r| r.get(0),
            )
            .optional()?)
    })
}

/// Filters for `recvault audit`.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Unix seconds, inclusive.
    pub since: Option<i64>,
    pub case_id: Option<String>,
}

fn entry_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Entry> {
    Ok(Entry {
        id: r.get(0)?,
        at: r.get(1)?,
        uid: r.get::<_, i64>(2)? as u32,
        user: r.get(3)?,
        action: r.get(4)?,
        case_id: r.get(5)?,
        subject: r.get(6)?,
        reason: r.get(7)?,
        prev_hash: r.get(8)?,
        hash: r.get(9)?,
    })
}

const ENTRY_COLUMNS: &str = "id, at, uid, user, action, case_id, subject, reason, prev_hash, hash";

/// Entries matching `filter`, oldest first, one at a time.
pub fn list(
    ledger: &Ledger,
    filter: &AuditFilter,
    mut visit: impl FnMut(&Entry) -> io::Result<()>,
) -> Result<(), AuditError> {
    ledger.read(|conn| {
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {ENTRY_COLUMNS} FROM audit WHERE (?1 IS NULL OR at >= ?1) \
                 AND (?2 IS NULL OR case_id = ?2) ORDER BY id"
            ))
            .map_err(LedgerError::from)?;
        let mut rows = stmt
            .query(params![filter.since, filter.case_id])
            .map_err(LedgerError::from)?;
        while let Some(row) = rows.next().map_err(LedgerError::from)? {
            visit(&entry_from_row(row).map_err(LedgerError::from)?)?;
        }
        Ok(())
    })
}

/// Writes one entry as a line: id, time, user, action, case, subject, reason.
pub fn write_entry(out: &mut impl Write, e: &Entry) -> io::Result<()> {
    writeln!(
        out,
        "{}\t{}\t{}\t{}\t{}\t{}\t{}",
        e.id,
        crate::report::local_time(e.at),
        e.user,
        e.action,
        e.case_id.as_deref().unwrap_or("-"),
        e.subject,
        e.reason
    )
}

/// Why the audit trail could not be listed or does not verify.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("output: {0}")]
    Io(#[from] io::Error),
    #[error("audit trail broken at entry {id}: {problem}")]
    Broken { id: i64, problem: String },
}

/// What a good verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub entries: u64,
    /// The newest entry's hash (worth writing down: it pins the whole trail).
    pub head: String,
}

/// Walks the whole chain: every id present, every `prev_hash` the hash of
/// the entry before, every hash matching its entry, nothing removed at the end.
pub fn verify(ledger: &Ledger) -> Result<Verified, AuditError> {
    ledger.read(|conn| {
        let mut stmt = conn
            .prepare(&format!("SELECT {ENTRY_COLUMNS} FROM audit ORDER BY id"))
            .map_err(LedgerError::from)?;
        let mut rows = stmt.query([]).map_err(LedgerError::from)?;
        let (mut last_id, mut last_hash, mut entries) = (0i64, GENESIS.to_string(), 0u64);
        while let Some(row) = rows.next().map_err(LedgerError::from)? {
            let e = entry_from_row(row).map_err(LedgerError::from)?;
            let broken = |problem: String| AuditError::Broken { id: e.id, problem };
            if e.id != last_id + 1 {
                return Err(AuditError::Broken {
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
            if e.compute_hash() != e.hash {
                return Err(broken(
                    "its content does not match its hash (the entry was edited)".to_string(),
                ));
            }
            (last_id, last_hash) = (e.id, e.hash);
            entries += 1;
        }
        let seq: Option<i64> = conn
            .query_row(
                "SELECT seq FROM sqlite_sequence WHERE name = 'audit'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(LedgerError::from)?;
        if let Some(seq) = seq.filter(|s| *s > last_id) {
            return Err(AuditError::Broken {
                id: last_id + 1,
                problem: format!("entries {} to {seq} were removed from the end", last_id + 1),
            });
        }
        Ok(Verified {
            entries,
            head: last_hash,
        })
    })
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
        record(
            ledger,
            &actor(),
            n,
            &NewEntry {
                action: Action::HoldAdd,
                case_id: Some("C-1"),
                subject: &format!("hold {n}"),
                reason: "litigation",
            },
        )
        .unwrap();
    }

    fn raw(ledger: &Ledger, sql: &str) {
        ledger
            .read::<_, LedgerError>(|c| {
                c.execute_batch(&format!(
                    "DROP TRIGGER IF EXISTS audit_no_update; DROP TRIGGER IF EXISTS audit_no_delete; {sql}"
                ))?;
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn chain_verifies_and_names_the_tampered_entry() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("l.sqlite3")).unwrap();
        for n in 1..=5 {
            entry(&ledger, n);
        }
        let ok = verify(&ledger).unwrap();
        assert_eq!(ok.entries, 5);

        // The table refuses edits outright...
        let refused = ledger.read::<_, LedgerError>(|c| {
            Ok(c.execute("UPDATE audit SET reason = 'x' WHERE id = 3", [])?)
        });
        assert!(refused.is_err());
        // ...and an edit that gets round that is found.
        raw(&ledger, "UPDATE audit SET reason = 'routine' WHERE id = 3;");
        let e = verify(&ledger).unwrap_err().to_string();
        assert!(e.contains("entry 3"), "{e}");
        assert!(e.contains("edited"), "{e}");
    }

    #[test]
    fn removed_entries_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("l.sqlite3")).unwrap();
        for n in 1..=4 {
            entry(&ledger, n);
        }
        raw(&ledger, "DELETE FROM audit WHERE id = 4;");
        let e = verify(&ledger).unwrap_err().to_string();
        assert!(e.contains("entry 4") && e.contains("end"), "{e}");
        raw(&ledger, "DELETE FROM audit WHERE id = 2;");
        let e = verify(&ledger).unwrap_err().to_string();
        assert!(e.contains("entry 2"), "{e}");
    }

    #[test]
    fn current_user_has_a_name() {
        let a = Actor::current();
        assert!(!a.user.is_empty());
        assert_eq!(user_name(0).as_deref(), Some("root"));
    }
}
