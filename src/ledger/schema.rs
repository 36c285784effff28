//! Opening a ledger connection and bringing its schema up to date: the
//! migrations in `migrations/`, applied in order, counted by `user_version`.

use std::os::raw::c_int;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

use super::LedgerError;
use crate::recording::phone::normalize_lenient;

/// A data step run right after a migration's SQL, in its transaction: for
/// rules that live in Rust and must not be written twice in SQL.
type Step = fn(&Transaction<'_>) -> rusqlite::Result<()>;

/// Migrations in order, each with its data step if it has one;
/// `PRAGMA user_version` counts the ones applied.
const MIGRATIONS: &[(&str, Option<Step>)] = &[
    (include_str!("migrations/0001_init.sql"), None),
    (include_str!("migrations/0002_retention.sql"), None),
    (include_str!("migrations/0003_safety.sql"), None),
    (include_str!("migrations/0004_vicidial.sql"), None),
    (
        include_str!("migrations/0005_requests.sql"),
        Some(normalize_phones),
    ),
    (include_str!("migrations/0006_purges_and_listens.sql"), None),
    (include_str!("migrations/0007_attribution_rows.sql"), None),
    (include_str!("migrations/0008_move_mix.sql"), None),
    (
        include_str!("migrations/0009_ids_and_object_keys.sql"),
        None,
    ),
    (include_str!("migrations/0010_link_identity.sql"), None),
    (include_str!("migrations/0011_console.sql"), None),
    (include_str!("migrations/0012_fleet_outbox.sql"), None),
    (include_str!("migrations/0013_backlog.sql"), None),
    (include_str!("migrations/0014_console_exports.sql"), None),
    (include_str!("migrations/0015_recording_totals.sql"), None),
    (
        include_str!("migrations/0016_local_paths_compared.sql"),
        None,
    ),
    (
        include_str!("migrations/0017_retained_by_campaign_compared.sql"),
        None,
    ),
    (
        include_str!("migrations/0018_retained_by_time_compared.sql"),
        None,
    ),
];

fn open_err(path: &Path) -> impl Fn(rusqlite::Error) -> LedgerError + '_ {
    move |source| LedgerError::Open {
        path: path.to_path_buf(),
        source,
    }
}

/// SQLite's process-wide settings, once, before recvault's first
/// connection: no memory statistics, which SQLite keeps by taking a global
/// mutex around each of its allocations (a tenth of a rescan's CPU in perf
/// went to that mutex and the page cache's).
fn configure_sqlite() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: an integer option, set before any connection of ours;
        // were SQLite already initialised it refuses (SQLITE_MISUSE) and
        // nothing changes.
        unsafe {
            rusqlite::ffi::sqlite3_config(rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS, 0 as c_int);
            // Statement journals (each statement's undo within a transaction,
            // and savepoints') in memory up to 4 MiB, not the 64 KiB after
            // which SQLite writes them to a temp file: one recording's insert
            // or change touches a page of each of ~25 indexes (60 pwrites per
            // recording taken in, a third of intake's CPU). Bounded: bigger
            // journals still spill.
            rusqlite::ffi::sqlite3_config(
                rusqlite::ffi::SQLITE_CONFIG_STMTJRNL_SPILL,
                (4 << 20) as c_int,
            );
        }
    });
}

/// The write connection: WAL, `synchronous=NORMAL`, foreign keys on.
pub(super) fn connect(path: &Path) -> Result<Connection, LedgerError> {
    configure_sqlite();
    let err = open_err(path);
    let conn = Connection::open(path).map_err(&err)?;
    conn.busy_timeout(Duration::from_secs(10)).map_err(&err)?;
    wal(&conn).map_err(&err)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(&err)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(&err)?;
    // 16 MiB of page cache (default 2 MiB): retention walks rows in call
    // time order, not insertion order. Bounded, whatever the ledger's size.
    conn.pragma_update(None, "cache_size", -16384)
        .map_err(&err)?;
    // Every transition's statement stays parsed (rusqlite keeps 16 by default).
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Puts the ledger in WAL mode. Turning a new file to WAL needs it to itself
/// and SQLite answers "database is locked" at once, without waiting, while
/// another process does the same (the daemon and a command opening a new
/// ledger together): try again for as long as the busy timeout.
fn wal(conn: &Connection) -> rusqlite::Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            done => return done,
        }
    }
}

/// A read-only connection (the file is already in WAL mode).
pub(super) fn connect_reader(path: &Path) -> Result<Connection, LedgerError> {
    configure_sqlite();
    let err = open_err(path);
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(&err)?;
    conn.busy_timeout(Duration::from_secs(10)).map_err(&err)?;
    // 2 MiB each (the writer has 16): most reads are one recording by id,
    // which needs the b-tree's upper pages, not a big cache, and the archive
    // opens up to 8 readers at once (`CALLS_IN_FLIGHT`). With 8 MiB each the
    // readers' caches filled with leaf pages read once, and `run --once`
    // over 100 k recordings peaked at 68 MB; with 2 MiB, 63 MB. A rescan
    // (one long range read) took no longer: 0.14-0.15 CPU-s per 100 k
    // files against 0.15-0.18, 3.2 CPU-s per million against 3.3-3.4.
    conn.pragma_update(None, "cache_size", -2048)
        .map_err(&err)?;
    Ok(conn)
}

/// Applies the migrations the ledger at `path` has not had yet, each in a
/// transaction of its own (with its `user_version`): a big index build
/// after another in one transaction failed (migration 0016 says how).
pub(super) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), LedgerError> {
    let known = MIGRATIONS.len() as i64;
    let mut announced = false;
    loop {
        // IMMEDIATE takes the write lock before reading the version, so two
        // processes opening a ledger at once cannot both apply a migration.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > known {
            return Err(LedgerError::TooNew {
                path: path.to_path_buf(),
                found: version,
                known,
            });
        }
        let Some((sql, step)) = MIGRATIONS.get(version as usize) else {
            return Ok(());
        };
        if version > 0 && !announced {
            // Some migrations rebuild indexes or read every row: on a big
            // ledger the first start after an upgrade takes longer.
            tracing::info!(
                ledger = %path.display(),
                from = version,
                to = known,
                "upgrading the ledger's schema; on a big ledger this reads every recording and may take minutes"
            );
            announced = true;
        }
        tx.execute_batch(sql)?;
        if let Some(step) = step {
            step(&tx)?;
        }
        tx.pragma_update(None, "user_version", version + 1)?;
        tx.commit()?;
    }
}

/// Puts the phone numbers recorded before `recording::phone` existed (and
/// those of phone hold selectors) into its form, so `15551234567` in an old
/// row and `5551234567` in a new one are the same caller. Paged by rowid, so
/// a big ledger is never held in memory.
fn normalize_phones(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    let tables = [
        ("recordings", "phone", "phone IS NOT NULL"),
        (
            "hold_selectors",
            "value",
            "kind = 'phone' AND value IS NOT NULL",
        ),
    ];
    for (table, column, filter) in tables {
        let mut page = tx.prepare(&format!(
            "SELECT rowid, {column} FROM {table} WHERE {filter} AND rowid > ?1 ORDER BY rowid LIMIT 10000"
        ))?;
        let mut update = tx.prepare(&format!(
            "UPDATE {table} SET {column} = ?2 WHERE rowid = ?1"
        ))?;
        let mut after = i64::MIN;
        loop {
            let rows: Vec<(i64, String)> = page
                .query_map([after], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            let Some(last) = rows.last() else { break };
            after = last.0;
            for (rowid, phone) in rows {
                let normal = normalize_lenient(&phone);
                if normal != phone {
                    update.execute(rusqlite::params![rowid, normal])?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Brings `conn`'s new ledger to schema `version` only, as that
    /// release left it, with `rows` (SQL) written into it.
    fn ledger_at(conn: &mut Connection, version: usize, rows: &str) {
        let tx = conn.transaction().unwrap();
        for (sql, _) in &MIGRATIONS[..version] {
            tx.execute_batch(sql).unwrap();
        }
        tx.pragma_update(None, "user_version", version as i64)
            .unwrap();
        tx.execute_batch(rows).unwrap();
        tx.commit().unwrap();
    }

    /// The opcodes, or the plan's details, SQLite gives for `sql` on `conn`.
    fn explain(conn: &Connection, sql: &str, column: usize) -> Vec<String> {
        let mut stmt = conn.prepare(sql).unwrap();
        let rows = stmt.query_map([], |r| r.get::<_, String>(column)).unwrap();
        rows.collect::<Result<_, _>>().unwrap()
    }

    #[test]
    fn a_state_change_builds_no_temporary_btree_and_the_partial_indexes_still_serve() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.sqlite3");
        let mut conn = connect(&path).unwrap();
        migrate(&mut conn, &path).unwrap();
        // Every insert and state change evaluates the partial indexes'
        // predicates: with `NOT IN` lists each run built temporary b-trees.
        let writes = [
            "EXPLAIN INSERT INTO recordings (path, name, dev, ino, size, mtime_ns, state, first_seen, \
               updated_at) VALUES (x'2f61', x'61', 1, 1, 1, 1, 'seen', 1, 1)",
            "EXPLAIN UPDATE recordings SET state = 'verified', updated_at = 2 WHERE id = 1",
        ];
        for sql in writes {
            let ops = explain(&conn, sql, 1);
            assert!(!ops.is_empty());
            assert!(
                !ops.iter().any(|op| op == "OpenEphemeral"),
                "{sql}: {ops:?}"
            );
        }
        // The queries that repeat the predicates may still use the indexes
        // (SQLite refuses INDEXED BY a partial index they do not imply).
        let reads = [
            (
                format!(
                    "EXPLAIN QUERY PLAN SELECT id FROM recordings INDEXED BY recordings_local \
                     WHERE path = x'2f61' AND {}",
                    super::super::intake::LOCAL
                ),
                "recordings_local",
            ),
            (
                format!(
                    "EXPLAIN QUERY PLAN SELECT r.id FROM recordings r INDEXED BY recordings_retained_by_time \
                     WHERE {} AND r.retain_from <= 5 ORDER BY r.retain_from, r.id LIMIT 10",
                    super::super::retention::RETAINED
                ),
                "recordings_retained_by_time",
            ),
        ];
        for (sql, index) in reads {
            let plan = explain(&conn, &sql, 3);
            assert!(plan.iter().any(|p| p.contains(index)), "{sql}: {plan:?}");
        }
    }

    #[test]
    fn the_rebuilt_partial_indexes_hold_what_the_old_ones_held() {
        // 0016-0018 rebuild the indexes; the rows are long enough that each
        // build's statement journal outgrows the 4 MiB kept in memory (in
        // one transaction, the second build failed: "database or disk is full").
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.sqlite3");
        let mut conn = connect(&path).unwrap();
        // A ledger as the release before migration 0016 left it.
        ledger_at(
            &mut conn,
            15,
            "INSERT INTO recordings (id, path, name, dev, ino, size, mtime_ns, state, first_seen, updated_at) VALUES \
                   (1, x'2f61', x'61', 1, 1, 1, 1, 'settled', 1, 1), \
                   (2, x'2f61', x'61', 1, 2, 1, 1, 'local_deleted', 1, 1), \
                   (3, x'2f62', x'62', 1, 3, 1, 1, 'seen', 1, 1), \
                   (4, x'2f63', x'63', 1, 4, 1, 1, 'gone', 1, 1); \
                 WITH RECURSIVE n(i) AS (SELECT 100 UNION ALL SELECT i + 1 FROM n WHERE i < 200099) \
                 INSERT INTO recordings (id, path, name, dev, ino, size, mtime_ns, state, first_seen, \
                   updated_at, campaign) \
                 SELECT i, CAST(i AS BLOB), CAST(i AS BLOB), 1, i, 1, i, 'local_deleted', 1, 1, \
                   printf('%0200d', i) FROM n;",
        );
        migrate(&mut conn, &path).unwrap();
        let (local, retained) = (
            super::super::intake::LOCAL,
            super::super::retention::RETAINED,
        );
        let count = |index: &str, predicate: &str| -> i64 {
            let sql =
                format!("SELECT COUNT(*) FROM recordings r INDEXED BY {index} WHERE {predicate}");
            conn.query_row(&sql, [], |r| r.get(0)).unwrap()
        };
        assert_eq!(count("recordings_local", local), 2, "settled and seen");
        let kept = count("recordings_retained_by_time", retained);
        assert_eq!(kept, 200_002, "settled and local_deleted");
        assert_eq!(count("recordings_retained_by_campaign", retained), 200_002);
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
        // Still unique among local files, and only among them.
        let twin = "INSERT INTO recordings (path, name, dev, ino, size, mtime_ns, state, first_seen, updated_at) \
                    VALUES (x'2f61', x'61', 1, 9, 1, 1, 'seen', 1, 1)";
        assert!(conn.execute(twin, []).is_err());
        conn.execute(
            "UPDATE recordings SET state = 'local_deleted' WHERE id = 1",
            [],
        )
        .unwrap();
        conn.execute(twin, []).unwrap();
    }

    #[test]
    fn phones_stored_before_normalisation_are_rewritten_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.sqlite3");
        // A ledger as the release before `recording::phone` left it.
        ledger_at(
            &mut connect(&path).unwrap(),
            3,
            "INSERT INTO recordings (id, path, name, dev, ino, size, mtime_ns, state, first_seen, updated_at, phone) VALUES \
                   (1, x'2f61', x'61', 1, 1, 1, 1, 'seen', 1, 1, '15551234567'), \
                   (2, x'2f62', x'62', 1, 2, 1, 1, 'seen', 1, 1, '5551234567'), \
                   (3, x'2f63', x'63', 1, 3, 1, 1, 'seen', 1, 1, '442079460958'), \
                   (4, x'2f64', x'64', 1, 4, 1, 1, 'seen', 1, 1, NULL); \
                 INSERT INTO holds (id, case_id, reason, created_by, created_at) VALUES (1, 'C', 'r', 'u', 1), (2, 'D', 'r', 'u', 1); \
                 INSERT INTO hold_selectors (hold_id, kind, value) VALUES (1, 'phone', '15551234567'), (2, 'agent', '15551234567');",
        );
        let ledger = crate::ledger::Ledger::open(&path).unwrap();
        let phones: Vec<Option<String>> = (1..=4)
            .map(|id| ledger.recording(id).unwrap().phone)
            .collect();
        let want = ["5551234567", "5551234567", "442079460958"];
        assert_eq!(phones[..3], want.map(|p| Some(p.to_string())));
        assert_eq!(phones[3], None);
        let selectors: Vec<_> = ledger
            .holds()
            .unwrap()
            .into_iter()
            .flat_map(|h| h.selectors)
            .collect();
        assert_eq!(
            selectors,
            [
                crate::ledger::holds::Selector::Agent("15551234567".into()),
                crate::ledger::holds::Selector::Phone("5551234567".into()),
            ],
            "only phone selectors change"
        );
        assert!(ledger.is_held(1).unwrap() && ledger.is_held(2).unwrap());
    }
}
