//! Opening a ledger connection and bringing its schema up to date: the
//! migrations in `migrations/`, applied in order, counted by `user_version`.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use super::LedgerError;

/// Migrations in order; `PRAGMA user_version` counts the ones applied.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_init.sql"),
    include_str!("migrations/0002_retention.sql"),
    include_str!("migrations/0003_safety.sql"),
    include_str!("migrations/0004_vicidial.sql"),
];

fn open_err(path: &Path) -> impl Fn(rusqlite::Error) -> LedgerError + '_ {
    move |source| LedgerError::Open {
        path: path.to_path_buf(),
        source,
    }
}

/// The write connection: WAL, `synchronous=NORMAL`, foreign keys on.
pub(super) fn connect(path: &Path) -> Result<Connection, LedgerError> {
    let err = open_err(path);
    let conn = Connection::open(path).map_err(&err)?;
    conn.busy_timeout(Duration::from_secs(10)).map_err(&err)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(&err)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(&err)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(&err)?;
    // 16 MiB of page cache (default 2 MiB): retention walks rows in call
    // time order, not insertion order. Bounded, whatever the ledger's size.
    conn.pragma_update(None, "cache_size", -16384)
        .map_err(&err)?;
    Ok(conn)
}

/// A read-only connection (the file is already in WAL mode).
pub(super) fn connect_reader(path: &Path) -> Result<Connection, LedgerError> {
    let err = open_err(path);
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(&err)?;
    conn.busy_timeout(Duration::from_secs(10)).map_err(&err)?;
    conn.pragma_update(None, "cache_size", -16384)
        .map_err(&err)?;
    Ok(conn)
}

/// Applies the migrations the ledger at `path` has not had yet.
pub(super) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), LedgerError> {
    // IMMEDIATE takes the write lock before reading the version, so two
    // processes opening a new ledger at once cannot both migrate it.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(LedgerError::TooNew {
            path: path.to_path_buf(),
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
