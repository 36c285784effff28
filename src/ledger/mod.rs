//! The ledger: everything recvault knows, in SQLite (WAL), and the only
//! place in recvault that writes SQL. Uses `recording` and `config` only.
//!
//! - `schema`: opening a connection, and the versioned migrations in `migrations/`;
//! - `rows`: how a recording is read from its row;
//! - `transitions`: every state change, each one transaction that checks the
//!   state it starts from and records an event;
//! - `queries`: what the pipeline and the commands ask; `intake`: what a
//!   rescan asks and changes, in batches (a million files, bounded memory);
//! - `holds`, `audit`, `retention`: the tables (and the one SQL predicate
//!   "held") behind legal holds, the audit trail and retention;
//! - `attribution`: what VICIdial's database said about each call;
//! - `matching`: which recordings a data-subject request's selectors match;
//! - `erasure`, `redaction`: erasing them (reservation, pseudonyms, the
//!   audit entries naming them redacted without weakening the hash chain);
//! - `links`: what listen links need (the row, revocations, the v1 mark,
//!   re-signed locations);
//! - `ids`: recording ids, never handed out twice; `object_keys`: every
//!   object key chosen for a recording; `catch_up`: what a restored backup
//!   learns from the store (holds, recordings archived after it);
//! - `invariants`: `recvault ledger check`; `copy`: consistent file copies;
//!   `lock`: one daemon per ledger.
//!
//! Commits are `synchronous=NORMAL` (a transition lost to power loss is
//! simply redone) except "verified", the one that allows a delete: that one
//! is `FULL`. After `kill -9` every recording resumes from the last state
//! that was committed.
//!
//! Calls are synchronous. Async code goes through [`Ledger::call`], which
//! runs them on tokio's blocking pool (a few at a time), so a long query never
//! stalls the async workers that drive uploads. Writes share one connection;
//! reads take one of a few read-only connections, so a long read (a retention
//! page, a scrub sample, `ls`) does not hold writes up (WAL lets both run).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{Connection, Transaction, TransactionBehavior};

pub mod attribution;
pub mod audit;
pub mod catch_up;
pub mod console_accounts;
pub mod console_exports;
mod copy;
pub mod erasure;
#[cfg(test)]
pub(crate) mod fixtures;
mod group;
pub mod holds;
pub mod ids;
pub mod intake;
mod invariants;
pub mod links;
pub mod listens;
pub mod locations;
pub mod lock;
pub mod matching;
pub mod move_mix;
pub mod object_keys;
pub mod outbox;
mod queries;
mod redaction;
pub mod reservations;
pub mod retention;
mod rows;
mod schema;
pub mod search;
#[cfg(test)]
mod tests;
mod transitions;
pub mod verify;
mod wal;

pub use copy::{backup_file, write_pages};
pub use invariants::Problem;
pub use queries::{Due, QueueOrder};
pub use rows::{ArchivedObject, CompressedFacts, ListFilter, LocalRow, SpoolFile, StateTotals};
pub use transitions::MAX_RETRY_DELAY;

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
    #[error("audit trail broken at entry {id}: {problem}")]
    AuditBroken { id: i64, problem: String },
    /// A ledger call could not run (its blocking task panicked or was cancelled).
    #[error("ledger call did not complete: {0}")]
    Call(String),
    /// The ledger's log could not be synced to disk (`wal`): nothing is
    /// deleted on the ledger's word until recvault restarts.
    #[error(
        "the ledger's log could not be synced to disk ({0}); no local copy is deleted until recvault restarts"
    )]
    NotDurable(String),
}

/// Read-only connections kept for reads (a read finding none opens one,
/// closed after it if this many are kept). Each has a page cache of its
/// own (`schema::connect_reader`): with 8, the archive's peak RSS over
/// 100,000 recordings passed 64 MB (68 MB) and the idle daemon's grew by
/// 4 MB; reads are short, so 3 serve the calls in flight.
const READERS: usize = 3;
/// Ledger calls running on the blocking pool at once (see [`Ledger::call`]):
/// enough that the changes workers commit meanwhile share a group commit
/// (`group`, `verify`; with 4, a durable commit served at most 4
/// recordings), and half of the runtime's 16 blocking threads, so that
/// calls waiting on the write lock or a sync never hold every thread the
/// compress and store steps need.
const CALLS_IN_FLIGHT: usize = 8;

/// The SQLite ledger. Share it as `Arc<Ledger>`.
pub struct Ledger {
    // Readers are declared (so dropped) before the writer: the last
    // connection to close checkpoints the WAL into the file and removes it,
    // and a read-only connection cannot.
    readers: Mutex<Vec<Connection>>,
    writer: Mutex<Connection>,
    path: PathBuf,
    calls: tokio::sync::Semaphore,
    /// Recordings waiting for the next durable `verified` commit, each with
    /// where its outcome goes (`transitions::verified`: a group commit).
    verifying: Mutex<Vec<verify::Queued>>,
    /// Changes waiting for the next grouped commit (`group`).
    grouped: Mutex<Vec<(group::Change, group::Slot)>>,
    /// Syncs the log after `verified` commits, outside the write lock.
    wal: wal::WalSync,
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
        let mut writer = schema::connect(path)?;
        schema::migrate(&mut writer, path)?;
        Ok(Ledger {
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
            path: path.to_path_buf(),
            calls: tokio::sync::Semaphore::new(CALLS_IN_FLIGHT),
            verifying: Mutex::new(Vec::new()),
            grouped: Mutex::new(Vec::new()),
            wal: wal::WalSync::new(path),
        })
    }

    /// The file this ledger lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` (synchronous ledger calls) on tokio's blocking pool, at most
    /// a few at once, and returns its result: what async code uses instead of
    /// calling the ledger on an async worker.
    pub async fn call<T, E>(
        self: &Arc<Self>,
        f: impl FnOnce(&Ledger) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<LedgerError> + Send + 'static,
    {
        let _permit = self
            .calls
            .acquire()
            .await
            .map_err(|e| LedgerError::Call(e.to_string()))?;
        let ledger = self.clone();
        tokio::task::spawn_blocking(move || f(&ledger))
            .await
            .map_err(|e| LedgerError::Call(e.to_string()))?
    }

    /// Runs `f` in one IMMEDIATE transaction (the write lock is taken before
    /// anything is read), committed if it returns `Ok`.
    fn write<T, E: From<LedgerError>>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        self.write_durable(false, f)
    }

    /// Like [`Ledger::write`]; `durable` commits with `synchronous=FULL`, so
    /// the change survives power loss before anything acts on it.
    fn write_durable<T, E: From<LedgerError>>(
        &self,
        durable: bool,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        commit_on(&mut self.writer(), durable, f)
    }

    /// Runs read-only queries on a reader connection.
    fn read<T, E: From<LedgerError>>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, E>,
    ) -> Result<T, E> {
        f(&*self.reader()?)
    }

    /// A reader connection, back to the pool when dropped.
    fn reader(&self) -> Result<Reader<'_>, LedgerError> {
        let pooled = group::lock(&self.readers).pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => schema::connect_reader(&self.path)?,
        };
        Ok(Reader {
            conn: Some(conn),
            pool: &self.readers,
        })
    }

    fn writer(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (transactions roll back).
        group::lock(&self.writer)
    }

    /// Gives back the memory the connections' page caches hold (SQLite's
    /// `shrink_memory`, then the allocator's free pages to the system): the
    /// daemon calls it once a rescan is done, so an idle daemon keeps what
    /// it needs, not what the last pass over a big spool touched.
    pub fn release_memory(&self) {
        let _ = self.writer().execute_batch("PRAGMA shrink_memory");
        for conn in group::lock(&self.readers).iter() {
            let _ = conn.execute_batch("PRAGMA shrink_memory");
        }
        // SAFETY: malloc_trim only returns free heap pages to the system.
        #[cfg(target_env = "gnu")]
        unsafe {
            libc::malloc_trim(0);
        }
    }

    /// Runs raw SQL on the write connection: for tests that play a bug or a
    /// hand edit, to prove the checks find it.
    #[cfg(test)]
    pub(crate) fn execute_raw(&self, sql: &str) -> Result<(), LedgerError> {
        Ok(self.writer().execute_batch(sql)?)
    }
}

/// Runs `f` in one IMMEDIATE transaction on the write connection `conn`,
/// committed if it returns `Ok`; `durable` commits with `synchronous=FULL`.
fn commit_on<T, E: From<LedgerError>>(
    conn: &mut Connection,
    durable: bool,
    f: impl FnOnce(&Transaction<'_>) -> Result<T, E>,
) -> Result<T, E> {
    let sync = |conn: &Connection, mode: &str| conn.pragma_update(None, "synchronous", mode);
    if durable {
        sync(conn, "FULL").map_err(LedgerError::from)?;
    }
    let result = (|| {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(LedgerError::from)?;
        let out = f(&tx)?;
        tx.commit().map_err(LedgerError::from)?;
        Ok(out)
    })();
    if durable {
        sync(conn, "NORMAL").map_err(LedgerError::from)?;
    }
    result
}

/// A read-only connection borrowed from the ledger's pool.
struct Reader<'a> {
    conn: Option<Connection>,
    pool: &'a Mutex<Vec<Connection>>,
}

impl std::ops::Deref for Reader<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn
            .as_ref()
            .expect("a reader holds its connection until dropped")
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        let mut pool = group::lock(self.pool);
        if let Some(conn) = self.conn.take()
            && pool.len() < READERS
        {
            pool.push(conn);
        }
    }
}
