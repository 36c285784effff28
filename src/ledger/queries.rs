//! What the pipeline and the commands ask the ledger about recordings.
//! Reads go to a reader connection; the two writes here (attribution of old
//! rows, rescheduling after an outage) change no state.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use rusqlite::{OptionalExtension, params};

use super::rows::{COLUMNS, ListFilter, R_COLUMNS, StateTotals, from_row};
use super::transitions::MAX_RETRY_DELAY;
use super::{Ledger, LedgerError};

/// Recordings whose object should be in the store (the predicate of the
/// partial index `recordings_archived`, word for word, so it is used).
const ARCHIVED: &str = "state IN ('verified', 'local_deleted') AND object_key IS NOT NULL";
use crate::recording::name::Naming;
use crate::recording::{Recording, State};
use crate::units::now_secs;

/// One recording by id, on connection `conn`.
pub(super) fn recording_in(
    conn: &rusqlite::Connection,
    id: i64,
) -> Result<Option<Recording>, LedgerError> {
    Ok(conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM recordings WHERE id = ?1"))?
        .query_row([id], from_row)
        .optional()?)
}

impl Ledger {
    /// One recording by id.
    pub fn recording(&self, id: i64) -> Result<Recording, LedgerError> {
        recording_in(&*self.reader()?, id)?.ok_or(LedgerError::NoSuchRecording(id))
    }

    /// The recordings with these ids, in order, on one reader (`None`
    /// where there is none).
    pub fn recordings(&self, ids: &[i64]) -> Result<Vec<Option<Recording>>, LedgerError> {
        let conn = self.reader()?;
        ids.iter().map(|&id| recording_in(&conn, id)).collect()
    }

    /// Recordings with a step to do now (none whose erasure is under way),
    /// oldest first, at most `limit`: [`Ledger::work_page`] from the start.
    pub fn work_queue(
        &self,
        upload_cutoff_ns: i64,
        now: i64,
        retry_all: bool,
        limit: usize,
    ) -> Result<Vec<Recording>, LedgerError> {
        let due = Due {
            upload_cutoff_ns,
            now,
            retry_all,
        };
        self.work_page(&due, QueueOrder::Oldest, None, limit)
    }

    /// A page of the recordings with a step to do now (none whose erasure
    /// is under way), in `order`, after `after` (the last recording of the
    /// page before; from the start if `None`), at most `limit`: settled
    /// ones whose mtime is at or before the upload cutoff, every half-done
    /// one (but not a verified one under a legal hold: its local copy
    /// stays), and failed ones whose retry time has come (all of them if
    /// `retry_all`). A retry time further ahead than [`MAX_RETRY_DELAY`]
    /// can only mean the clock was set back since it was written: such a
    /// recording is due now rather than parked until the clock catches up.
    ///
    /// Each kind of due recording is read through its own index, in order,
    /// and only a page of each is merged: a page costs the same whatever
    /// the size of the backlog.
    pub fn work_page(
        &self,
        due: &Due,
        order: QueueOrder,
        after: Option<&Recording>,
        limit: usize,
    ) -> Result<Vec<Recording>, LedgerError> {
        let held = &*super::holds::HELD;
        let (sort, keyset) = match order {
            QueueOrder::Oldest => (
                "mtime_ns, id",
                "(?6 IS NULL OR (mtime_ns >= ?6 AND (mtime_ns > ?6 OR id > ?7)))",
            ),
            QueueOrder::Largest => (
                "size DESC, id DESC",
                "(?6 IS NULL OR (size <= ?6 AND (size < ?6 OR id < ?7)))",
            ),
        };
        let arms = [
            "state = 'settled' AND mtime_ns <= ?1".to_string(),
            "state = 'compressed'".to_string(),
            "state = 'uploaded'".to_string(),
            format!("state = 'verified' AND NOT {held}"),
            "state = 'failed' AND (?3 OR retry_at <= ?2 OR retry_at > ?2 + ?5)".to_string(),
        ];
        let arms: Vec<String> = arms
            .iter()
            .map(|filter| {
                format!(
                    "SELECT * FROM (SELECT {columns} FROM recordings r WHERE {filter} \
                     AND deleting_what IS NOT 'erasure' AND {keyset} ORDER BY {sort} LIMIT ?4)",
                    columns = *R_COLUMNS
                )
            })
            .collect();
        let sql = format!(
            "SELECT * FROM ({}) ORDER BY {sort} LIMIT ?4",
            arms.join(" UNION ALL ")
        );
        let conn = self.reader()?;
        let mut stmt = conn.prepare_cached(&sql)?;
        let mark = after.map(|r| match order {
            QueueOrder::Oldest => (r.identity.mtime_ns, r.id),
            QueueOrder::Largest => (r.identity.size as i64, r.id),
        });
        let rows = stmt.query_map(
            params![
                due.upload_cutoff_ns,
                due.now,
                due.retry_all,
                limit as i64,
                MAX_RETRY_DELAY.as_secs() as i64,
                mark.map(|m| m.0),
                mark.map(|m| m.1),
            ],
            from_row,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// How many recordings are due (see [`Ledger::work_page`]), and their bytes.
    pub fn due_totals(&self, due: &Due) -> Result<(u64, u64), LedgerError> {
        let conn = self.reader()?;
        let (n, bytes): (i64, i64) = conn
            .prepare_cached(&format!(
                "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM recordings r WHERE (\
                   (state = 'settled' AND mtime_ns <= ?1) \
                   OR state IN ('compressed', 'uploaded') \
                   OR (state = 'verified' AND NOT {held}) \
                   OR (state = 'failed' AND (?3 OR retry_at <= ?2 OR retry_at > ?2 + ?4))) \
                   AND deleting_what IS NOT 'erasure'",
                held = *super::holds::HELD
            ))?
            .query_row(
                params![
                    due.upload_cutoff_ns,
                    due.now,
                    due.retry_all,
                    MAX_RETRY_DELAY.as_secs() as i64
                ],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
        Ok((n as u64, bytes as u64))
    }

    /// Every recording in `state`.
    pub fn by_state(&self, state: State) -> Result<Vec<Recording>, LedgerError> {
        let conn = self.reader()?;
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
        let conn = self.reader()?;
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

    /// Recordings verified, and their original bytes, from `since` (unix
    /// seconds) on, and the first minute (unix seconds) any was verified in
    /// that time: what `status` makes its drain rate of.
    pub fn drained_since(&self, since: i64) -> Result<(u64, u64, Option<i64>), LedgerError> {
        let conn = self.reader()?;
        let (n, bytes, first): (i64, i64, Option<i64>) = conn
            .prepare_cached(
                "SELECT COALESCE(SUM(recordings), 0), COALESCE(SUM(bytes), 0), MIN(minute) * 60 \
                 FROM drain_minutes WHERE minute >= ?1 / 60",
            )?
            .query_row([since], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok((n as u64, bytes as u64, first))
    }

    /// Count and bytes per state, from the totals the ledger's triggers
    /// keep (`recording_totals`): a few rows, whatever the ledger's size.
    pub fn totals(&self) -> Result<Vec<(State, StateTotals)>, LedgerError> {
        let conn = self.reader()?;
        let mut stmt = conn.prepare_cached(
            "SELECT state, SUM(recordings), SUM(bytes), SUM(object_bytes) \
             FROM recording_totals GROUP BY state HAVING SUM(recordings) > 0",
        )?;
        let rows = stmt.query_map([], totals_row)?;
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

    /// Count and bytes per codec of the objects in the store (or staged for
    /// it): what each codec saves. From `recording_totals`, like `totals`.
    pub fn codec_totals(&self) -> Result<Vec<(String, StateTotals)>, LedgerError> {
        let conn = self.reader()?;
        let mut stmt = conn.prepare_cached(
            "SELECT codec, SUM(recordings), SUM(bytes), SUM(object_bytes) \
             FROM recording_totals WHERE codec != '' AND stored = 1 \
             AND state IN ('compressed', 'uploaded', 'verified', 'local_deleted') \
             GROUP BY codec HAVING SUM(recordings) > 0 ORDER BY codec",
        )?;
        let rows = stmt.query_map([], totals_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The oldest recording not yet archived (mtime, ns), if any.
    pub fn oldest_waiting(&self) -> Result<Option<Recording>, LedgerError> {
        let conn = self.reader()?;
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
        let conn = self.reader()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM recordings WHERE last_error IS NOT NULL \
             AND state IN ('failed', 'quarantined') ORDER BY updated_at DESC, id DESC LIMIT ?1"
        ))?;
        let rows = stmt.query_map([limit as i64], from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Recordings matching `filter`, oldest first; `visit` sees each in turn
    /// so a big ledger is never held in memory. An error from `visit` stops
    /// the walk and is returned.
    pub fn list<E: From<LedgerError>>(
        &self,
        filter: &ListFilter,
        mut visit: impl FnMut(&Recording) -> Result<(), E>,
    ) -> Result<(), E> {
        let conn = self.reader()?;
        let (sql, values) = list_sql(filter);
        let mut stmt = conn.prepare_cached(&sql).map_err(LedgerError::from)?;
        let mut rows = stmt
            .query(rusqlite::params_from_iter(values))
            .map_err(LedgerError::from)?;
        while let Some(row) = rows.next().map_err(LedgerError::from)? {
            visit(&from_row(row).map_err(LedgerError::from)?)?;
        }
        Ok(())
    }

    /// Attributes recordings taken in before attribution existed (in pages,
    /// so a big ledger is never held in memory). Returns how many.
    pub fn attribute_pending(&self, naming: &Naming) -> Result<usize, LedgerError> {
        let mut done = 0;
        loop {
            let page: Vec<(i64, Vec<u8>, Vec<u8>, i64)> = {
                let conn = self.reader()?;
                let mut stmt = conn.prepare_cached(
                    "SELECT id, path, name, mtime_ns FROM recordings WHERE attributed IS NULL ORDER BY id LIMIT 1000",
                )?;
                stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                    .collect::<Result<_, _>>()?
            };
            if page.is_empty() {
                return Ok(done);
            }
            let mut conn = self.writer();
            let tx = conn.transaction()?;
            for (id, path, name, mtime_ns) in &page {
                let call = naming.attribute(Path::new(OsStr::from_bytes(path)), name, *mtime_ns);
                tx.execute(
                    "UPDATE recordings SET attributed = ?2, campaign = ?3, call_time = ?4, phone = ?5, \
                     agent = ?6, lead_id = ?7, name_time = ?8 WHERE id = ?1",
                    params![
                        id,
                        call.matched,
                        call.campaign,
                        call.call_time,
                        call.phone,
                        call.agent,
                        call.lead_id,
                        call.name_time
                    ],
                )?;
            }
            tx.commit()?;
            done += page.len();
        }
    }

    /// Recordings whose file name's date was not believed (too far from the
    /// file's mtime): retention counts from their mtime.
    pub fn name_time_disputed(&self) -> Result<u64, LedgerError> {
        let n: i64 = self.reader()?.query_row(
            "SELECT COUNT(*) FROM recordings WHERE name_time IS NOT NULL",
            [],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    /// Recordings whose name did not match the naming template.
    pub fn unattributed_count(&self) -> Result<u64, LedgerError> {
        let n: i64 = self.reader()?.query_row(
            "SELECT COUNT(*) FROM recordings WHERE attributed = 0",
            [],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    /// Recordings whose object should be in the store (verified or local
    /// copy deleted), recorded at or after `since` (unix seconds); a random
    /// `sample` of them, or all.
    pub fn archived(
        &self,
        since: Option<i64>,
        sample: Option<usize>,
    ) -> Result<Vec<Recording>, LedgerError> {
        let conn = self.reader()?;
        let Some(sample) = sample else {
            let mut stmt = conn.prepare(&format!(
                "SELECT {COLUMNS} FROM recordings WHERE {ARCHIVED} \
                 AND (?1 IS NULL OR mtime_ns >= ?1 * 1000000000) ORDER BY mtime_ns, id"
            ))?;
            let rows = stmt.query_map([since], from_row)?;
            return Ok(rows.collect::<Result<_, _>>()?);
        };
        // A sample without sorting the whole ledger: random points in the
        // id range, each taking the first archived recording at or after it
        // through the partial index (a few lookups, whatever the size).
        let end = |order: &str| {
            conn.query_row(
                &format!(
                    "SELECT id FROM recordings INDEXED BY recordings_archived \
                     WHERE {ARCHIVED} ORDER BY id {order} LIMIT 1"
                ),
                [],
                |r| r.get::<_, i64>(0),
            )
            .optional()
        };
        let (Some(low), Some(high)) = (end("ASC")?, end("DESC")?) else {
            return Ok(Vec::new());
        };
        let mut next = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM recordings INDEXED BY recordings_archived \
             WHERE {ARCHIVED} AND id >= ?1 \
             AND (?2 IS NULL OR mtime_ns >= ?2 * 1000000000) ORDER BY id LIMIT 1"
        ))?;
        let mut picked = std::collections::BTreeMap::new();
        // Repeats are dropped; a few more tries than wanted make up for them.
        for _ in 0..sample.saturating_mul(3) {
            if picked.len() == sample {
                break;
            }
            let point = fastrand::i64(low..=high);
            if let Some(rec) = next.query_row(params![point, since], from_row).optional()? {
                picked.entry(rec.id).or_insert(rec);
            }
        }
        Ok(picked.into_values().collect())
    }

    /// Recordings whose object key or file name is `wanted`, newest first.
    pub fn find(&self, wanted: &[u8]) -> Result<Vec<Recording>, LedgerError> {
        let conn = self.reader()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM recordings WHERE CAST(object_key AS BLOB) = ?1 OR name = ?1 \
             ORDER BY mtime_ns DESC, id DESC"
        ))?;
        let rows = stmt.query_map([wanted], from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// What makes a recording due for its next step now.
#[derive(Debug, Clone, Copy)]
pub struct Due {
    /// Settled recordings last written at or before this (ns) are due.
    pub upload_cutoff_ns: i64,
    /// Now (unix seconds), for retry times.
    pub now: i64,
    /// Every failed recording is due, whatever its retry time (`--once`).
    pub retry_all: bool,
}

/// The order the work queue is taken in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueOrder {
    /// Oldest first (by the file's mtime): the normal order.
    Oldest,
    /// Largest first: under disk pressure, what frees the most space for
    /// one recording's fixed cost goes first.
    Largest,
}

/// A (group, count, bytes, object bytes) row of a totals query.
/// The query of [`Ledger::list`] and its values: only the bounds given
/// are written, as ranges, and every state is named when none is asked
/// for, so SQLite reads only the rows in range from
/// `recordings_state_mtime` (one range per state), not every row: `ls
/// --since` a day read all 10 M rows (2 s).
fn list_sql(filter: &ListFilter) -> (String, Vec<rusqlite::types::Value>) {
    let mut values = Vec::new();
    let states = match filter.state {
        Some(state) => {
            values.push(state.as_str().to_string().into());
            "?".to_string()
        }
        None => State::ALL
            .iter()
            .map(|s| format!("'{}'", s.as_str()))
            .collect::<Vec<_>>()
            .join(", "),
    };
    let mut sql = format!("SELECT {COLUMNS} FROM recordings WHERE state IN ({states})");
    if let Some(since) = filter.since {
        sql.push_str(" AND mtime_ns >= ? * 1000000000");
        values.push(since.into());
    }
    if let Some(until) = filter.until {
        sql.push_str(" AND mtime_ns < ? * 1000000000");
        values.push(until.into());
    }
    sql.push_str(" ORDER BY mtime_ns, id");
    (sql, values)
}

fn totals_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(String, StateTotals)> {
    Ok((
        r.get(0)?,
        StateTotals {
            count: r.get::<_, i64>(1)? as u64,
            bytes: r.get::<_, i64>(2)? as u64,
            object_bytes: r.get::<_, i64>(3)? as u64,
        },
    ))
}
