//! `recvault ledger check`: SQLite's own structural check, then recvault's
//! invariants — the facts every other step relies on (nothing is
//! `local_deleted` without a verified object, no two recordings share an
//! object, …).
//!
//! Built for a ledger of ten million recordings: every rule is checked while
//! the tables are read once each, in id order (`scan`), and each rule keeps
//! only a count and its first ids, so memory does not grow with the ledger.
//! `PRAGMA quick_check` (every page, every record) stands in for
//! `integrity_check`, whose index-by-index comparison takes minutes there,
//! and runs on a thread of its own beside that pass.

use rusqlite::Connection;

use super::{Ledger, LedgerError};

mod scan;
mod totals;

/// One broken invariant and the recordings that break it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What should hold.
    pub rule: &'static str,
    /// Offending recording ids (at most [`MAX_IDS`] are listed).
    pub ids: Vec<i64>,
    /// How many rows break it in all.
    pub count: usize,
}

/// Ids listed per problem; the count says how many there are in all.
pub const MAX_IDS: usize = 20;

/// Lines of `quick_check` output read: enough to know it failed and how.
const QUICK_CHECK_LINES: usize = 100;

/// A rule's findings while the ledger is read: how many rows break it and
/// the first [`MAX_IDS`] of them.
#[derive(Debug)]
struct Tally {
    rule: &'static str,
    ids: Vec<i64>,
    count: usize,
}

impl Tally {
    fn new(rule: &'static str) -> Tally {
        Tally {
            rule,
            ids: Vec::new(),
            count: 0,
        }
    }

    fn add(&mut self, id: i64) {
        self.count += 1;
        if self.ids.len() < MAX_IDS {
            self.ids.push(id);
        }
    }

    /// Adds every id `sql` returns (its first column), one row at a time.
    fn add_query(&mut self, conn: &Connection, sql: &str) -> Result<(), LedgerError> {
        let mut stmt = conn.prepare(sql)?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            self.add(row.get(0)?);
        }
        Ok(())
    }

    fn problem(self) -> Option<Problem> {
        (self.count > 0).then_some(Problem {
            rule: self.rule,
            ids: self.ids,
            count: self.count,
        })
    }
}

/// Rules about many rows at once, each a query returning the ids breaking
/// it; both run on a unique index (a scan of the index, no sort).
const GROUP_RULES: &[(&str, &str)] = &[
    (
        "no two recordings share an object key",
        "SELECT id FROM recordings WHERE object_key IN \
         (SELECT object_key FROM recordings WHERE object_key IS NOT NULL \
          GROUP BY object_key HAVING COUNT(*) > 1)",
    ),
    (
        "no two recordings still local share a path",
        "SELECT id FROM recordings \
         WHERE state <> 'local_deleted' AND state <> 'remote_deleted' AND state <> 'gone' \
         AND path IN (SELECT path FROM recordings \
          WHERE state <> 'local_deleted' AND state <> 'remote_deleted' AND state <> 'gone' \
          GROUP BY path HAVING COUNT(*) > 1)",
    ),
];

/// Tables whose foreign keys are checked by SQLite itself: small ones (the
/// big tables naming recordings are checked by `scan`, in order).
const SMALL_CHILD_TABLES: &[&str] = &["hold_selectors", "audit_redactions"];

impl Ledger {
    /// Runs SQLite's `quick_check` and every invariant. An empty list means
    /// the ledger is sound.
    ///
    /// The two read the whole ledger side by side, each on a connection of
    /// its own: `quick_check` on one thread, the invariants on this one (at
    /// ten million recordings each is tens of seconds of CPU, and the
    /// machine has cores for both). The invariants see one snapshot; the
    /// structural check needs none of theirs.
    pub fn check(&self) -> Result<Vec<Problem>, LedgerError> {
        std::thread::scope(|s| {
            let structure = s.spawn(|| {
                let conn = self.reader()?;
                quick_check(&conn)
            });
            let invariants = self.invariants();
            let structure = structure
                .join()
                .map_err(|_| LedgerError::Call("the quick_check thread panicked".into()))?;
            let mut problems: Vec<Problem> = structure?.into_iter().collect();
            problems.extend(invariants?);
            Ok(problems)
        })
    }

    /// recvault's invariants, on one snapshot of the ledger.
    fn invariants(&self) -> Result<Vec<Problem>, LedgerError> {
        let conn = self.reader()?;
        // One read transaction: every rule sees the same ledger.
        let snapshot = conn.unchecked_transaction()?;
        let mut orphans = Tally::new(scan::ORPHAN_RULE);
        for table in SMALL_CHILD_TABLES {
            let sql = format!("PRAGMA foreign_key_check({table})");
            let mut stmt = snapshot.prepare(&sql)?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                orphans.add(row.get(1)?);
            }
        }
        let mut counted = totals::Counted::default();
        let mut tallies = scan::scan(&snapshot, orphans, &mut counted)?;
        tallies.push(counted.compare(&snapshot)?);
        for (rule, sql) in GROUP_RULES {
            let mut tally = Tally::new(rule);
            tally.add_query(&snapshot, sql)?;
            tallies.push(tally);
        }
        snapshot.commit()?;
        Ok(tallies.into_iter().filter_map(Tally::problem).collect())
    }
}

/// SQLite's `quick_check`: every page and record well-formed. A problem
/// with as many lines as it reported (up to [`QUICK_CHECK_LINES`]).
fn quick_check(conn: &Connection) -> Result<Option<Problem>, LedgerError> {
    let mut stmt = conn.prepare(&format!("PRAGMA quick_check({QUICK_CHECK_LINES})"))?;
    let mut rows = stmt.query([])?;
    let mut lines = Vec::new();
    while let Some(row) = rows.next()? {
        lines.push(row.get::<_, String>(0)?);
    }
    Ok((lines != ["ok"]).then_some(Problem {
        rule: "SQLite quick_check reports ok",
        ids: Vec::new(),
        count: lines.len(),
    }))
}

#[cfg(test)]
mod tests;
