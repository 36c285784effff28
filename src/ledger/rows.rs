//! How a recording is read from its row: one column list, one reader, so a
//! query can never select columns in an order the reader does not expect.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::LazyLock;

use rusqlite::{Row, ToSql};

use crate::recording::name::Attribution;
use crate::recording::{ErasureMark, FileIdentity, Recording, State};

/// The columns [`from_row`] reads, in its order.
pub(super) const COLUMNS: &str = "id, path, name, dev, ino, size, mtime_ns, state, resume_state, sha256, object_key, \
     object_size, object_sha256, store_checksum, codec, attempts, last_error, retry_at, first_seen, updated_at, \
     campaign, call_time, phone, agent, lead_id, deleted_at, deleted_by, call_length, vicidial_recording_id, \
     erase_request, erased_at, erase_wait_until";

/// How many columns [`COLUMNS`] names: a query that selects more after them
/// reads those from this index on.
pub(super) const COLUMN_COUNT: usize = count_columns(COLUMNS);

const fn count_columns(list: &str) -> usize {
    let bytes = list.as_bytes();
    let (mut i, mut n) = (0, 1);
    while i < bytes.len() {
        if bytes[i] == b',' {
            n += 1;
        }
        i += 1;
    }
    n
}

/// [`COLUMNS`] for a query that names the table `r`.
pub(super) static R_COLUMNS: LazyLock<String> = LazyLock::new(|| {
    COLUMNS
        .split(',')
        .map(|c| format!("r.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
});

/// Reads a [`Recording`] from a row selected with [`COLUMNS`] (or [`R_COLUMNS`]).
pub(super) fn from_row(row: &Row<'_>) -> rusqlite::Result<Recording> {
    let state: String = row.get(7)?;
    let resume: Option<String> = row.get(8)?;
    let parse = |s: &str, idx| {
        s.parse::<State>().map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, e.into())
        })
    };
    Ok(Recording {
        id: row.get(0)?,
        path: PathBuf::from(OsStr::from_bytes(&row.get::<_, Vec<u8>>(1)?)),
        name: row.get(2)?,
        identity: identity_at(row, 3)?,
        state: parse(&state, 7)?,
        resume_state: resume.as_deref().map(|s| parse(s, 8)).transpose()?,
        sha256: row.get(9)?,
        object_key: row.get(10)?,
        object_size: row.get::<_, Option<i64>>(11)?.map(|v| v as u64),
        object_sha256: row.get(12)?,
        store_checksum: row.get(13)?,
        codec: row.get(14)?,
        attempts: row.get::<_, i64>(15)? as u32,
        last_error: row.get(16)?,
        retry_at: row.get(17)?,
        first_seen: row.get(18)?,
        updated_at: row.get(19)?,
        campaign: row.get(20)?,
        call_time: row.get(21)?,
        phone: row.get(22)?,
        agent: row.get(23)?,
        lead_id: row.get(24)?,
        deleted_at: row.get(25)?,
        deleted_by: row.get(26)?,
        call_length: row.get(27)?,
        vicidial_recording_id: row.get(28)?,
        erasure: row
            .get::<_, Option<String>>(29)?
            .map(|request| -> rusqlite::Result<ErasureMark> {
                Ok(ErasureMark {
                    request,
                    erased_at: row.get(30)?,
                    wait_until: row.get(31)?,
                })
            })
            .transpose()?,
    })
}

/// The file identity in the four columns from `first` on: dev, ino, size, mtime_ns.
pub(super) fn identity_at(row: &Row<'_>, first: usize) -> rusqlite::Result<FileIdentity> {
    Ok(FileIdentity {
        dev: row.get::<_, i64>(first)? as u64,
        ino: row.get::<_, i64>(first + 1)? as u64,
        size: row.get::<_, i64>(first + 2)? as u64,
        mtime_ns: row.get(first + 3)?,
    })
}

impl ToSql for State {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}

/// A file found in the spool by a scan.
#[derive(Debug, Clone)]
pub struct SpoolFile {
    pub path: PathBuf,
    pub name: Vec<u8>,
    pub identity: FileIdentity,
}

/// A local recording as a scan compares it against the spool.
#[derive(Debug, Clone, Copy)]
pub struct LocalRow {
    pub id: i64,
    pub identity: FileIdentity,
    pub state: State,
}

/// Facts learned by compressing a recording.
#[derive(Debug, Clone)]
pub struct CompressedFacts {
    pub sha256: String,
    pub object_key: String,
    pub object_size: u64,
    pub object_sha256: String,
    pub codec: String,
}

/// A recording known only from its object in the store (ledger rebuild).
#[derive(Debug, Clone)]
pub struct ArchivedObject {
    /// The id it had in the lost ledger, kept where still free.
    pub id: Option<i64>,
    pub path: PathBuf,
    pub name: Vec<u8>,
    pub identity: FileIdentity,
    /// `Verified` if the local copy is still in the spool, else `LocalDeleted`.
    pub state: State,
    pub sha256: String,
    pub object_key: String,
    pub object_size: u64,
    pub object_sha256: String,
    pub store_checksum: Option<String>,
    pub codec: String,
    /// What the ledger knew of the call when the object was archived
    /// (campaign, agent, lead, phone, call time), if anything.
    pub call: Option<Attribution>,
    /// VICIdial's `recording_log.recording_id` and the call's length, when
    /// the database had attributed it by then.
    pub vicidial: Option<(i64, Option<i64>)>,
}

/// Per-state totals for `recvault status`.
#[derive(Debug, Clone, Default)]
pub struct StateTotals {
    pub count: u64,
    pub bytes: u64,
    pub object_bytes: u64,
}

/// Filters for `recvault ls`.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub state: Option<State>,
    /// Recording time bounds, unix seconds, inclusive/exclusive.
    pub since: Option<i64>,
    pub until: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_reads_its_extra_columns_right_after_the_recording() {
        use crate::ledger::fixtures::{insert, ledger, spool_file};
        let (_dir, ledger) = ledger();
        let call = crate::recording::name::Attribution {
            campaign: Some("SALES".into()),
            ..Default::default()
        };
        insert(&ledger, &spool_file("/s/a.wav", 4), &call, State::Seen);
        let sql = format!("SELECT {}, 'extra' FROM recordings r", *R_COLUMNS);
        let (rec, extra): (Recording, String) = ledger
            .read::<_, crate::ledger::LedgerError>(|c| {
                Ok(c.query_row(&sql, [], |row| Ok((from_row(row)?, row.get(COLUMN_COUNT)?)))?)
            })
            .unwrap();
        assert_eq!(extra, "extra");
        assert_eq!(rec.name, b"a.wav");
        assert_eq!(rec.campaign.as_deref(), Some("SALES"));
        assert_eq!(rec.identity.mtime_ns, 4);
    }
}
