//! Redacting audit entries that name an erased recording (or its number),
//! without making the trail any less tamper-evident. A redacted entry's
//! subject (and a reason that names it) becomes `[erased]`, so its hash can
//! no longer be recomputed; instead `audit_redactions` records the digest of
//! every field it still has (hash and prev_hash included), and the erase
//! entry that redacted it — itself a normal, hash-checked entry — carries
//! the digest of all its redactions in its reason. `verify` checks each
//! redacted entry against its row and each set of rows against its erase
//! entry: an entry edited, redacted behind recvault's back, or a redaction
//! row added or removed, is found like any other tampering.

use std::collections::BTreeMap;

use rusqlite::{Connection, Transaction, params};
use sha2::{Digest, Sha256};

use super::LedgerError;
use super::audit::{Action, Entry, entry_from_row};

/// What a redacted subject (or reason) reads.
pub const REDACTED: &str = "[erased]";

/// How an erase entry's reason names the digest of its redactions.
const DIGEST_TAG: &str = "audit redactions sha256 ";

/// Digest of an entry's fields but its subject, as they stand after redaction.
fn rest_digest(e: &Entry) -> String {
    let mut h = Sha256::new();
    h.update(b"recvault-audit-redacted-v1\n");
    for field in [
        Some(e.id.to_string()),
        Some(e.at.to_string()),
        Some(e.uid.to_string()),
        Some(e.user.clone()),
        Some(e.action.clone()),
        e.case_id.clone(),
        Some(e.reason.clone()),
        Some(e.prev_hash.clone()),
        Some(e.hash.clone()),
        e.recording_id.map(|id| id.to_string()),
    ] {
        match field {
            None => h.update(b"-\n"),
            Some(f) => {
                h.update(format!("{}:", f.len()).as_bytes());
                h.update(f.as_bytes());
                h.update(b"\n");
            }
        }
    }
    hex::encode(h.finalize())
}

/// Digest of one erase entry's redactions: (entry id, rest digest), by id.
fn set_digest(rows: &BTreeMap<i64, String>) -> String {
    let mut h = Sha256::new();
    for (id, digest) in rows {
        h.update(format!("{id}:{digest}\n").as_bytes());
    }
    hex::encode(h.finalize())
}

/// Redactions worked out, not yet written: the entries as they will read.
#[derive(Debug, Default)]
pub(super) struct Redactions {
    entries: Vec<Entry>,
}

impl Redactions {
    /// Redacts `entries` (read from the trail): the subject always, the
    /// reason where it contains one of `identifying`.
    pub(super) fn of(entries: Vec<Entry>, identifying: &[String]) -> Redactions {
        let entries = entries
            .into_iter()
            .filter(|e| e.subject != REDACTED)
            .map(|mut e| {
                e.subject = REDACTED.to_string();
                if identifying.iter().any(|s| e.reason.contains(s.as_str())) {
                    e.reason = REDACTED.to_string();
                }
                e
            })
            .collect();
        Redactions { entries }
    }

    /// Each entry's rest digest (for tests that forge a record).
    #[cfg(test)]
    pub(super) fn rest_digests(&self) -> Vec<String> {
        self.entries.iter().map(rest_digest).collect()
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// What the erase entry's reason says about them (none: empty).
    pub(super) fn note(&self) -> String {
        if self.entries.is_empty() {
            return String::new();
        }
        let rows = self
            .entries
            .iter()
            .map(|e| (e.id, rest_digest(e)))
            .collect();
        format!(
            "; {} audit entries redacted ({DIGEST_TAG}{})",
            self.entries.len(),
            set_digest(&rows)
        )
    }

    /// Writes them, recorded under erase entry `by` (appended with [`Self::note`]).
    pub(super) fn write(&self, tx: &Transaction<'_>, by: i64) -> Result<(), LedgerError> {
        for e in &self.entries {
            tx.execute(
                "INSERT INTO audit_redactions (entry_id, by_entry, rest_digest) VALUES (?1, ?2, ?3)",
                params![e.id, by, rest_digest(e)],
            )?;
            tx.execute(
                "UPDATE audit SET subject = ?2, reason = ?3 WHERE id = ?1",
                params![e.id, e.subject, e.reason],
            )?;
        }
        Ok(())
    }
}

/// Every redaction: entry id → (erase entry, rest digest).
pub(super) fn all(conn: &Connection) -> Result<BTreeMap<i64, (i64, String)>, LedgerError> {
    let mut stmt = conn.prepare("SELECT entry_id, by_entry, rest_digest FROM audit_redactions")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Checks one entry that has a redaction row: its fields as they stand
/// must be what was recorded.
pub(super) fn check_entry(e: &Entry, recorded: &str) -> Result<(), String> {
    if e.subject != REDACTED {
        return Err("it has a redaction on record but its subject is not redacted".to_string());
    }
    if rest_digest(e) != recorded {
        return Err(
            "its content does not match its redaction record (the entry was edited)".into(),
        );
    }
    Ok(())
}

/// Checks each erase entry's redactions against the digest its (hash-checked)
/// reason carries. `erase_entries` maps an entry id to its action and reason.
pub(super) fn check_sets(
    redactions: &BTreeMap<i64, (i64, String)>,
    erase_entries: &BTreeMap<i64, (String, String)>,
) -> Result<(), LedgerError> {
    let mut sets: BTreeMap<i64, BTreeMap<i64, String>> = BTreeMap::new();
    for (id, (by, digest)) in redactions {
        sets.entry(*by).or_default().insert(*id, digest.clone());
    }
    for (by, rows) in sets {
        let claimed = erase_entries
            .get(&by)
            .filter(|(action, _)| action == Action::Erase.as_str())
            .and_then(|(_, reason)| reason.split(DIGEST_TAG).nth(1))
            .map(|rest| rest.chars().take(64).collect::<String>());
        if claimed.as_deref() != Some(set_digest(&rows).as_str()) {
            return Err(LedgerError::AuditBroken {
                id: by,
                problem: format!(
                    "its redactions ({} entries) are not the ones it recorded",
                    rows.len()
                ),
            });
        }
    }
    Ok(())
}

/// The entries of the trail that name one of `recordings` (by the subject
/// `audit::subject` gives them, or the recording id an entry carries, as
/// listens do), or — among hold and export entries — one
/// of `identifying` (a number or name a released hold, or the path of an
/// export, named).
pub(super) fn entries_naming(
    tx: &Transaction<'_>,
    recordings: &[i64],
    identifying: &[String],
) -> Result<Vec<Entry>, LedgerError> {
    if recordings.is_empty() && identifying.is_empty() {
        return Ok(Vec::new());
    }
    let ids = vec!["?"; recordings.len()].join(", ");
    let texts = vec!["instr(subject, ?) > 0"; identifying.len()].join(" OR ");
    let sql = format!(
        "SELECT {cols} FROM audit WHERE subject != '{REDACTED}' AND ( \
           (subject LIKE 'recording %' \
            AND CAST(substr(subject, 11, instr(substr(subject, 11), ' ') - 1) AS INTEGER) IN ({ids})) \
           OR recording_id IN ({ids}) \
           OR (action IN ('hold-add', 'hold-release', 'export') AND ({texts}))) ORDER BY id",
        cols = super::audit::ENTRY_COLUMNS,
        ids = if ids.is_empty() {
            "NULL".to_string()
        } else {
            ids
        },
        texts = if texts.is_empty() {
            "0".to_string()
        } else {
            texts
        },
    );
    // The ids twice (subject, then recording_id), then the texts.
    let ids_once = recordings
        .iter()
        .map(|id| rusqlite::types::Value::from(*id));
    let mut args: Vec<rusqlite::types::Value> = ids_once.clone().chain(ids_once).collect();
    args.extend(identifying.iter().map(|s| s.clone().into()));
    let mut stmt = tx.prepare(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(args), entry_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}
