//! The ledger: everything recvault knows, in SQLite (WAL). Commits are
//! `synchronous=NORMAL` (a transition lost to power loss is simply redone)
//! except "verified", the one that allows a delete: that one is `FULL`.
//! Each state change is one transaction, so after `kill -9` every recording
//! resumes from the last state that was committed.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Row, ToSql, params};

use crate::naming::{Attribution, Naming};
use crate::recording::{FileIdentity, Recording, State};

pub mod check;

/// Migrations in order; `PRAGMA user_version` counts the ones applied.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_init.sql"),
    include_str!("migrations/0002_retention.sql"),
];

/// A ledger failure.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("ledger {path}: cannot create its directory: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("ledger: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("ledger: recording {id} is no longer in state {expected} (another step moved it)")]
    StateConflict { id: i64, expected: String },
    #[error("ledger: object key `{0}` already belongs to another recording")]
    KeyTaken(String),
    #[error("ledger: no recording with id {0}")]
    NoSuchRecording(i64),
    #[error(
        "ledger {path} was written by a newer recvault (schema {found}, this one knows {known})"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
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

/// The SQLite ledger. Cheap calls; shared behind a mutex.
pub struct Ledger {
    conn: Mutex<Connection>,
    path: PathBuf,
}

const COLUMNS: &str = "id, path, name, dev, ino, size, mtime_ns, state, resume_state, sha256, object_key, \
     object_size, object_sha256, store_checksum, codec, attempts, last_error, retry_at, first_seen, updated_at, \
     campaign, call_time, phone, agent, lead_id, deleted_at, deleted_by";

/// [`COLUMNS`] for a query that names the table `r`.
pub(crate) fn columns_of_r() -> String {
    COLUMNS
        .split(", ")
        .map(|c| format!("r.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<Recording> {
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
        identity: FileIdentity {
            dev: row.get::<_, i64>(3)? as u64,
            ino: row.get::<_, i64>(4)? as u64,
            size: row.get::<_, i64>(5)? as u64,
            mtime_ns: row.get(6)?,
        },
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
    })
}

/// Reads a [`Recording`] from a row selected with [`COLUMNS`] (or [`columns_of_r`]).
pub(crate) fn recording_from_row(row: &Row<'_>) -> rusqlite::Result<Recording> {
    from_row(row)
}

/// The longest a failed step waits for its retry (the back-off's cap).
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(3600);

/// Seconds since the epoch.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Ledger {
    /// Opens (creating if needed) and migrates the ledger at `path`.
    pub fn open(path: &Path) -> Result<Ledger, LedgerError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| LedgerError::CreateDir {
                path: path.to_path_buf(),
                source,
            })?;
        }
        let open_err = |source| LedgerError::Open {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(Duration::from_secs(10))
            .map_err(open_err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_err)?;
        // 16 MiB of page cache (default 2 MiB): retention walks rows in call
        // time order, not insertion order. Bounded, whatever the ledger's size.
        conn.pragma_update(None, "cache_size", -16384)
            .map_err(open_err)?;
        let ledger = Ledger {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
        };
        ledger.migrate()?;
        Ok(ledger)
    }

    /// The file this ledger lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in one transaction, committed if it returns `Ok`. For the
    /// modules that own their tables (holds, audit, retention).
    pub(crate) fn write<T, E: From<LedgerError>>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(LedgerError::from)?;
        let out = f(&tx)?;
        tx.commit().map_err(LedgerError::from)?;
        Ok(out)
    }

    /// Runs read-only queries on the connection.
    pub(crate) fn read<T, E: From<LedgerError>>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, E>,
    ) -> Result<T, E> {
        f(&self.conn())
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (transactions roll back).
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn migrate(&self) -> Result<(), LedgerError> {
        let mut conn = self.conn();
        // IMMEDIATE takes the write lock before reading the version, so two
        // processes opening a new ledger at once cannot both migrate it.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(LedgerError::TooNew {
                path: self.path.clone(),
                found: version,
                known,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Every recording whose local file is still the ledger's concern, by path.
    pub fn local_rows(&self) -> Result<HashMap<PathBuf, LocalRow>, LedgerError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT id, path, dev, ino, size, mtime_ns, state FROM recordings \
             WHERE state NOT IN ('local_deleted', 'remote_deleted', 'gone')",
        )?;
        let rows = stmt.query_map([], |row| {
            let path = PathBuf::from(OsStr::from_bytes(&row.get::<_, Vec<u8>>(1)?));
            let state: String = row.get(6)?;
            Ok((
                path,
                LocalRow {
                    id: row.get(0)?,
                    identity: FileIdentity {
                        dev: row.get::<_, i64>(2)? as u64,
                        ino: row.get::<_, i64>(3)? as u64,
                        size: row.get::<_, i64>(4)? as u64,
                        mtime_ns: row.get(5)?,
                    },
                    state: state.parse().unwrap_or(State::Failed),
                },
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records a newly found file as `seen` (or `quarantined` with a reason),
    /// with what its name says about the call.
    pub fn insert(
        &self,
        file: &SpoolFile,
        call: &Attribution,
        state: State,
        detail: &str,
    ) -> Result<i64, LedgerError> {
        let now = now_secs();
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let last_error = (state == State::Quarantined).then_some(detail);
        tx.execute(
            "INSERT INTO recordings (path, name, dev, ino, size, mtime_ns, state, last_error, first_seen, updated_at, \
               attributed, campaign, call_time, phone, agent, lead_id) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
            params![
                file.path.as_os_str().as_bytes(),
                file.name,
                file.identity.dev as i64,
                file.identity.ino as i64,
                file.identity.size as i64,
                file.identity.mtime_ns,
                state.as_str(),
                last_error,
                now,
                call.matched,
                call.campaign,
                call.call_time,
                call.phone,
                call.agent,
                call.lead_id,
            ],
        )?;
        let id = tx.last_insert_rowid();
        insert_event(&tx, id, None, state, detail, now)?;
        tx.commit()?;
        Ok(id)
    }

    /// The spool file at a local recording's path is no longer the file that
    /// was seen: start over from `seen` with its new identity.
    pub fn reset_changed(
        &self,
        id: i64,
        identity: FileIdentity,
        detail: &str,
    ) -> Result<(), LedgerError> {
        self.transition(
            id,
            &[
                State::Seen,
                State::Settled,
                State::Compressed,
                State::Uploaded,
                State::Failed,
                State::Quarantined,
            ],
            State::Seen,
            &[
                ("dev", &(identity.dev as i64)),
                ("ino", &(identity.ino as i64)),
                ("size", &(identity.size as i64)),
                ("mtime_ns", &identity.mtime_ns),
                ("sha256", &None::<String>),
                ("object_sha256", &None::<String>),
                ("object_size", &None::<i64>),
                ("store_checksum", &None::<String>),
                ("resume_state", &None::<String>),
                ("last_error", &None::<String>),
                ("retry_at", &None::<i64>),
                ("attempts", &0),
            ],
            detail,
        )
    }

    /// Moves a recording from one of `from` to `to`, setting `sets`, and
    /// records the event — all in one transaction. Fails with
    /// [`LedgerError::StateConflict`] if the recording was not in `from`.
    pub fn transition(
        &self,
        id: i64,
        from: &[State],
        to: State,
        sets: &[(&str, &dyn ToSql)],
        detail: &str,
    ) -> Result<(), LedgerError> {
        self.transition_then(id, from, to, sets, detail, |_| Ok(()))
    }

    /// Like [`Ledger::transition`], also running `then` in the same
    /// transaction (an audit entry that must commit with the change).
    pub fn transition_then(
        &self,
        id: i64,
        from: &[State],
        to: State,
        sets: &[(&str, &dyn ToSql)],
        detail: &str,
        then: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<(), LedgerError>,
    ) -> Result<(), LedgerError> {
        let mut conn = self.conn();
        // Only "verified" allows deleting the local file: that commit must
        // survive power loss before the delete happens.
        let durable = to == State::Verified;
        if durable {
            conn.pragma_update(None, "synchronous", "FULL")?;
        }
        let result = transition_in(&mut conn, id, from, to, sets, detail, then);
        if durable {
            conn.pragma_update(None, "synchronous", "NORMAL")?;
        }
        result
    }

    /// Records a failed step: the recording waits in `failed` until `retry_at`,
    /// then resumes from the state it failed in.
    pub fn mark_failed(
        &self,
        rec: &Recording,
        error: &str,
        retry_at: i64,
    ) -> Result<(), LedgerError> {
        let resume = rec.state.as_str();
        let attempts = rec.attempts + 1;
        self.transition(
            rec.id,
            &[rec.state],
            State::Failed,
            &[
                ("resume_state", &resume),
                ("last_error", &error),
                ("retry_at", &retry_at),
                ("attempts", &attempts),
            ],
            error,
        )
    }

    /// Puts a failed recording back into the state it failed in.
    pub fn resume_failed(&self, rec: &Recording) -> Result<State, LedgerError> {
        let to = rec.resume_state.unwrap_or(State::Seen);
        self.transition(
            rec.id,
            &[State::Failed],
            to,
            &[("retry_at", &None::<i64>)],
            "retrying",
        )?;
        Ok(to)
    }

    /// After a store outage ends, recordings that failed only because the
    /// store was unreachable are due again at once.
    pub fn retry_store_failures_now(&self) -> Result<usize, LedgerError> {
        Ok(self.conn().execute(
            "UPDATE recordings SET retry_at = ?1 WHERE state = 'failed' AND last_error LIKE 'store unavailable:%'",
            [now_secs()],
        )?)
    }

    /// One recording by id.
    pub fn recording(&self, id: i64) -> Result<Recording, LedgerError> {
        let conn = self.conn();
        conn.query_row(
            &format!("SELECT {COLUMNS} FROM recordings WHERE id = ?1"),
            [id],
            from_row,
        )
        .optional()?
        .ok_or(LedgerError::NoSuchRecording(id))
    }

    /// Recordings with a step to do now, oldest first: settled ones whose
    /// mtime is at or before `upload_cutoff_ns`, every half-done one (but not
    /// a verified one under a legal hold: its local copy stays), and failed
    /// ones whose retry time has come (all of them if `retry_all`). A retry
    /// time further ahead than [`MAX_RETRY_DELAY`] can only mean the clock
    /// was set back since it was written: such a recording is due now rather
    /// than parked until the clock catches up.
    pub fn work_queue(
        &self,
        upload_cutoff_ns: i64,
        now: i64,
        retry_all: bool,
        limit: usize,
    ) -> Result<Vec<Recording>, LedgerError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM recordings r WHERE \
               (state = 'settled' AND mtime_ns <= ?1) \
               OR state IN ('compressed', 'uploaded') \
               OR (state = 'verified' AND NOT {held}) \
               OR (state = 'failed' AND (?3 OR retry_at <= ?2 OR retry_at > ?2 + ?5)) \
             ORDER BY mtime_ns, id LIMIT ?4",
            held = crate::hold::held_sql()
        ))?;
        let rows = stmt.query_map(
            params![
                upload_cutoff_ns,
                now,
                retry_all,
                limit as i64,
                MAX_RETRY_DELAY.as_secs() as i64
            ],
            from_row,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Recordings still `seen`, for the settle check.
    pub fn seen(&self) -> Result<Vec<Recording>, LedgerError> {
        self.by_state(State::Seen)
    }

    /// Every recording in `state`.
    pub fn by_state(&self, state: State) -> Result<Vec<Recording>, LedgerError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM recordings WHERE state = ?1 ORDER BY mtime_ns, id"
        ))?;
        let rows = stmt.query_map([state.as_str()], from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The earliest moment (unix seconds) something waiting becomes due:
    /// a seen file settling, a settled one reaching `upload_after`, a retry.
    pub fn next_due(
        &self,
        settle: Duration,
        upload_after: Duration,
    ) -> Result<Option<i64>, LedgerError> {
        let conn = self.conn();
        let due: Option<i64> = conn.query_row(
            "SELECT MIN(due) FROM ( \
               SELECT MIN(mtime_ns) / 1000000000 + ?1 AS due FROM recordings WHERE state = 'seen' \
               UNION ALL SELECT MIN(mtime_ns) / 1000000000 + ?2 FROM recordings WHERE state = 'settled' \
               UNION ALL SELECT MIN(MIN(retry_at, ?3 + ?4)) FROM recordings WHERE state = 'failed')",
            params![
                settle.as_secs() as i64 + 1,
                upload_after.as_secs() as i64 + 1,
                now_secs(),
                MAX_RETRY_DELAY.as_secs() as i64
            ],
            |r| r.get(0),
        )?;
        Ok(due)
    }

    /// Count and bytes per state.
    pub fn totals(&self) -> Result<Vec<(State, StateTotals)>, LedgerError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT state, COUNT(*), COALESCE(SUM(size), 0), COALESCE(SUM(object_size), 0) \
             FROM recordings GROUP BY state",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                StateTotals {
                    count: r.get::<_, i64>(1)? as u64,
                    bytes: r.get::<_, i64>(2)? as u64,
                    object_bytes: r.get::<_, i64>(3)? as u64,
                },
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (state, totals) = row?;
            if let Ok(state) = state.parse() {
                out.push((state, totals));
            }
        }
        out.sort_by_key(|(s, _)| *s);
        Ok(out)
    }

    /// The oldest recording not yet archived (mtime, ns), if any.
    pub fn oldest_waiting(&self) -> Result<Option<Recording>, LedgerError> {
        let conn = self.conn();
        Ok(conn
            .query_row(
                &format!(
                    "SELECT {COLUMNS} FROM recordings \
                     WHERE state IN ('seen', 'settled', 'compressed', 'uploaded', 'failed') \
                     ORDER BY mtime_ns LIMIT 1"
                ),
                [],
                from_row,
            )
            .optional()?)
    }

    /// The most recently updated recordings that carry an error.
    pub fn recent_errors(&self, limit: usize) -> Result<Vec<Recording>, LedgerError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM recordings WHERE last_error IS NOT NULL \
             AND state IN ('failed', 'quarantined') ORDER BY updated_at DESC, id DESC LIMIT ?1"
        ))?;
        let rows = stmt.query_map([limit as i64], from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Recordings matching `filter`, oldest first; `visit` sees each in turn
    /// so a big ledger is never held in memory.
    pub fn list(
        &self,
        filter: &ListFilter,
        mut visit: impl FnMut(&Recording),
    ) -> Result<(), LedgerError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM recordings WHERE (?1 IS NULL OR state = ?1) \
             AND (?2 IS NULL OR mtime_ns >= ?2 * 1000000000) AND (?3 IS NULL OR mtime_ns < ?3 * 1000000000) \
             ORDER BY mtime_ns, id"
        ))?;
        let mut rows = stmt.query(params![
            filter.state.map(|s| s.as_str()),
            filter.since,
            filter.until
        ])?;
        while let Some(row) = rows.next()? {
            visit(&from_row(row)?);
        }
        Ok(())
    }

    /// Attributes recordings taken in before attribution existed (in pages,
    /// so a big ledger is never held in memory). Returns how many.
    pub fn attribute_pending(&self, naming: &Naming) -> Result<usize, LedgerError> {
        let mut done = 0;
        loop {
            let page: Vec<(i64, Vec<u8>, Vec<u8>)> = {
                let conn = self.conn();
                let mut stmt = conn.prepare_cached(
                    "SELECT id, path, name FROM recordings WHERE attributed IS NULL ORDER BY id LIMIT 1000",
                )?;
                stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect::<Result<_, _>>()?
            };
            if page.is_empty() {
                return Ok(done);
            }
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            for (id, path, name) in &page {
                let call = naming.attribute(Path::new(OsStr::from_bytes(path)), name);
                tx.execute(
                    "UPDATE recordings SET attributed = ?2, campaign = ?3, call_time = ?4, phone = ?5, \
                     agent = ?6, lead_id = ?7 WHERE id = ?1",
                    params![
                        id,
                        call.matched,
                        call.campaign,
                        call.call_time,
                        call.phone,
                        call.agent,
                        call.lead_id
                    ],
                )?;
            }
            tx.commit()?;
            done += page.len();
        }
    }

    /// Recordings whose name did not match the naming template.
    pub fn unattributed_count(&self) -> Result<u64, LedgerError> {
        let n: i64 = self.conn().query_row(
            "SELECT COUNT(*) FROM recordings WHERE attributed = 0",
            [],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    /// Records a recording rebuilt from its object, with one event saying so.
    pub fn insert_archived(&self, object: &ArchivedObject) -> Result<i64, LedgerError> {
        let now = now_secs();
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let id_free = match object.id {
            Some(id) => tx
                .query_row("SELECT 1 FROM recordings WHERE id = ?1", [id], |_| Ok(()))
                .optional()?
                .is_none(),
            None => false,
        };
        let local_deleted_at = (object.state == State::LocalDeleted).then_some(now);
        tx.execute(
            "INSERT INTO recordings (id, path, name, dev, ino, size, mtime_ns, state, sha256, object_key, \
             object_size, object_sha256, store_checksum, codec, first_seen, updated_at, verified_at, local_deleted_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?15, ?15, ?16)",
            params![
                object.id.filter(|_| id_free),
                object.path.as_os_str().as_bytes(),
                object.name,
                object.identity.dev as i64,
                object.identity.ino as i64,
                object.identity.size as i64,
                object.identity.mtime_ns,
                object.state.as_str(),
                object.sha256,
                object.object_key,
                object.object_size as i64,
                object.object_sha256,
                object.store_checksum,
                object.codec,
                now,
                local_deleted_at,
            ],
        )?;
        let id = tx.last_insert_rowid();
        insert_event(
            &tx,
            id,
            None,
            object.state,
            "rebuilt from the store's object metadata",
            now,
        )?;
        tx.commit()?;
        Ok(id)
    }

    /// Adds an event to a recording's history without changing its state
    /// (e.g. what `recvault verify` found).
    pub fn note(&self, id: i64, detail: &str) -> Result<(), LedgerError> {
        let now = now_secs();
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let state: String = tx
            .query_row("SELECT state FROM recordings WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?
            .ok_or(LedgerError::NoSuchRecording(id))?;
        let state: State = state.parse().unwrap_or(State::Failed);
        insert_event(&tx, id, Some(state), state, detail, now)?;
        tx.commit()?;
        Ok(())
    }

    /// Recordings whose object should be in the store (verified or local
    /// copy deleted), recorded at or after `since` (unix seconds); a random
    /// `sample` of them, or all.
    pub fn archived(
        &self,
        since: Option<i64>,
        sample: Option<usize>,
    ) -> Result<Vec<Recording>, LedgerError> {
        let conn = self.conn();
        let order = if sample.is_some() {
            "RANDOM()"
        } else {
            "mtime_ns, id"
        };
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM recordings WHERE state IN ('verified', 'local_deleted') \
             AND object_key IS NOT NULL AND (?1 IS NULL OR mtime_ns >= ?1 * 1000000000) \
             ORDER BY {order} LIMIT ?2"
        ))?;
        let limit = sample.map(|n| n as i64).unwrap_or(-1);
        let rows = stmt.query_map(params![since, limit], from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Recordings whose object key or file name is `wanted`, newest first.
    pub fn find(&self, wanted: &[u8]) -> Result<Vec<Recording>, LedgerError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM recordings WHERE CAST(object_key AS BLOB) = ?1 OR name = ?1 \
             ORDER BY mtime_ns DESC, id DESC"
        ))?;
        let rows = stmt.query_map([wanted], from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

fn transition_in(
    conn: &mut Connection,
    id: i64,
    from: &[State],
    to: State,
    sets: &[(&str, &dyn ToSql)],
    detail: &str,
    then: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<(), LedgerError>,
) -> Result<(), LedgerError> {
    let now = now_secs();
    let tx = conn.transaction()?;
    let current: Option<String> = tx
        .query_row("SELECT state FROM recordings WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .optional()?;
    let current = current.ok_or(LedgerError::NoSuchRecording(id))?;
    let current: State = current.parse().map_err(|_| LedgerError::StateConflict {
        id,
        expected: format!("{from:?}"),
    })?;
    if !from.contains(&current) {
        return Err(LedgerError::StateConflict {
            id,
            expected: from
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("|"),
        });
    }
    let mut sql = String::from("UPDATE recordings SET state = ?1, updated_at = ?2");
    let mut values: Vec<&dyn ToSql> = vec![&to as &dyn ToSql, &now];
    for (i, (column, value)) in sets.iter().enumerate() {
        sql.push_str(&format!(", {column} = ?{}", i + 3));
        values.push(*value);
    }
    sql.push_str(&format!(" WHERE id = ?{}", values.len() + 1));
    values.push(&id);
    match tx.execute(&sql, values.as_slice()) {
        Err(rusqlite::Error::SqliteFailure(e, Some(msg)))
            if e.code == rusqlite::ErrorCode::ConstraintViolation && msg.contains("object_key") =>
        {
            let key = sets
                .iter()
                .find(|(c, _)| *c == "object_key")
                .and_then(|(_, v)| v.to_sql().ok())
                .map(|v| match v {
                    rusqlite::types::ToSqlOutput::Borrowed(rusqlite::types::ValueRef::Text(t)) => {
                        String::from_utf8_lossy(t).into_owned()
                    }
                    rusqlite::types::ToSqlOutput::Owned(rusqlite::types::Value::Text(t)) => t,
                    _ => String::new(),
                })
                .unwrap_or_default();
            return Err(LedgerError::KeyTaken(key));
        }
        other => {
            other?;
        }
    }
    insert_event(&tx, id, Some(current), to, detail, now)?;
    then(&tx)?;
    tx.commit()?;
    Ok(())
}

/// Writes a consistent copy of the ledger at `path` to `dest` with SQLite's
/// online backup, from a connection of its own, so the daemon's connection
/// is not held up (blocking: call it off the async runtime).
pub fn backup_file(path: &Path, dest: &Path) -> Result<(), LedgerError> {
    let source = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| LedgerError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    source.busy_timeout(Duration::from_secs(10))?;
    let mut copy = Connection::open(dest).map_err(|source| LedgerError::Open {
        path: dest.to_path_buf(),
        source,
    })?;
    {
        use rusqlite::backup::{Backup, StepResult};
        let backup = Backup::new(&source, &mut copy)?;
        // All pages in one step: one read transaction, one consistent snapshot.
        while backup.step(-1)? != StepResult::Done {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    copy.pragma_update(None, "journal_mode", "DELETE")?;
    Ok(())
}

/// Records a state change in the events table (inside the caller's transaction).
pub(crate) fn insert_event(
    tx: &rusqlite::Transaction<'_>,
    id: i64,
    from: Option<State>,
    to: State,
    detail: &str,
    now: i64,
) -> Result<(), LedgerError> {
    tx.execute(
        "INSERT INTO events (recording_id, at, from_state, to_state, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, now, from.map(|s| s.as_str()), to.as_str(), detail],
    )?;
    Ok(())
}

impl ToSql for State {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str) -> SpoolFile {
        SpoolFile {
            path: PathBuf::from(path),
            name: Path::new(path).file_name().unwrap().as_bytes().to_vec(),
            identity: FileIdentity {
                dev: 1,
                ino: 2,
                size: 3,
                mtime_ns: 4_000_000_000,
            },
        }
    }

    #[test]
    fn transitions_are_checked_and_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("l.sqlite3")).unwrap();
        let id = ledger
            .insert(
                &file("/s/a.wav"),
                &Attribution::default(),
                State::Seen,
                "found",
            )
            .unwrap();
        ledger
            .transition(id, &[State::Seen], State::Settled, &[], "settled")
            .unwrap();
        let err = ledger
            .transition(id, &[State::Seen], State::Settled, &[], "again")
            .unwrap_err();
        assert!(matches!(err, LedgerError::StateConflict { .. }), "{err}");
        assert_eq!(ledger.recording(id).unwrap().state, State::Settled);
    }

    #[test]
    fn one_local_recording_per_path_but_paths_may_return() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("l.sqlite3")).unwrap();
        let id = ledger
            .insert(
                &file("/s/a.wav"),
                &Attribution::default(),
                State::Seen,
                "found",
            )
            .unwrap();
        assert!(
            ledger
                .insert(
                    &file("/s/a.wav"),
                    &Attribution::default(),
                    State::Seen,
                    "dup"
                )
                .is_err()
        );
        ledger
            .transition(id, &[State::Seen], State::Gone, &[], "removed")
            .unwrap();
        ledger
            .insert(
                &file("/s/a.wav"),
                &Attribution::default(),
                State::Seen,
                "found again",
            )
            .unwrap();
        assert_eq!(ledger.local_rows().unwrap().len(), 1);
    }

    #[test]
    fn object_keys_are_unique() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("l.sqlite3")).unwrap();
        let a = ledger
            .insert(
                &file("/s/a.wav"),
                &Attribution::default(),
                State::Settled,
                "",
            )
            .unwrap();
        let b = ledger
            .insert(
                &file("/t/a.wav"),
                &Attribution::default(),
                State::Settled,
                "",
            )
            .unwrap();
        ledger
            .transition(
                a,
                &[State::Settled],
                State::Compressed,
                &[("object_key", &"k")],
                "",
            )
            .unwrap();
        let err = ledger
            .transition(
                b,
                &[State::Settled],
                State::Compressed,
                &[("object_key", &"k")],
                "",
            )
            .unwrap_err();
        assert!(
            matches!(err, LedgerError::KeyTaken(ref k) if k == "k"),
            "{err}"
        );
        assert_eq!(
            ledger.recording(b).unwrap().state,
            State::Settled,
            "a failed transition changes nothing"
        );
    }

    #[test]
    fn failed_resumes_where_it_failed() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("l.sqlite3")).unwrap();
        let id = ledger
            .insert(
                &file("/s/a.wav"),
                &Attribution::default(),
                State::Compressed,
                "",
            )
            .unwrap();
        ledger
            .mark_failed(&ledger.recording(id).unwrap(), "store down", 0)
            .unwrap();
        let rec = ledger.recording(id).unwrap();
        assert_eq!((rec.state, rec.attempts), (State::Failed, 1));
        assert_eq!(ledger.resume_failed(&rec).unwrap(), State::Compressed);
    }

    #[test]
    fn concurrent_first_opens_migrate_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.sqlite3");
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || Ledger::open(&path).map(|_| ()))
            })
            .collect();
        for h in handles {
            h.join().unwrap().unwrap();
        }
    }

    #[test]
    fn a_retry_parked_by_a_clock_set_back_is_due_now() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("l.sqlite3")).unwrap();
        let id = ledger
            .insert(
                &file("/s/a.wav"),
                &Attribution::default(),
                State::Compressed,
                "",
            )
            .unwrap();
        let rec = ledger.recording(id).unwrap();
        let now = now_secs();
        // Written a minute before the clock was set back a day.
        ledger
            .mark_failed(&rec, "store down", now + 86_400 + 60)
            .unwrap();
        let queue = ledger.work_queue(0, now, false, 10).unwrap();
        assert_eq!(queue.iter().map(|r| r.id).collect::<Vec<_>>(), vec![id]);
        let due = ledger
            .next_due(Duration::from_secs(1), Duration::from_secs(1))
            .unwrap()
            .unwrap();
        assert!(due <= now_secs() + MAX_RETRY_DELAY.as_secs() as i64);
        // An ordinary back-off is still waited for.
        let id2 = ledger
            .insert(
                &file("/s/b.wav"),
                &Attribution::default(),
                State::Compressed,
                "",
            )
            .unwrap();
        ledger
            .mark_failed(&ledger.recording(id2).unwrap(), "store down", now + 60)
            .unwrap();
        let queue = ledger.work_queue(0, now, false, 10).unwrap();
        assert!(!queue.iter().any(|r| r.id == id2));
    }

    #[test]
    fn reopening_keeps_data_and_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.sqlite3");
        let id = Ledger::open(&path)
            .unwrap()
            .insert(&file("/s/a.wav"), &Attribution::default(), State::Seen, "")
            .unwrap();
        let again = Ledger::open(&path).unwrap();
        assert_eq!(again.recording(id).unwrap().name, b"a.wav");
    }
}
