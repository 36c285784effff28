//! The fleet's legal holds (`recvault_holds`, `recvault_hold_selectors`):
//! placed and released in a transaction that locks the gate row, as every
//! deletion reservation does (`gate`), so whichever commits first wins —
//! the single-box guarantee, across boxes. A box's own holds are merged
//! when it joins (once: by origin and ledger id).

use std::collections::BTreeMap;

use sqlx::Row as _;

use super::Fleet;
use super::select::{self, bind_all};
use crate::catalog::{Coverage, HoldInfo, NewHold};
use crate::ledger::holds::{Hold, Selector};
use crate::vicidial::db::DbError;

/// Locks the gate row: hold changes and deletion reservations take turns.
pub(super) const LOCK_GATE: &str =
    "SELECT holds_version FROM recvault_gate WHERE id = 1 FOR UPDATE";

/// Starts a READ COMMITTED transaction (every read sees what committed
/// before the gate lock was granted).
pub(super) async fn begin(
    c: &mut sqlx::MySqlConnection,
) -> Result<sqlx::Transaction<'_, sqlx::MySql>, sqlx::Error> {
    sqlx::query("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
        .execute(&mut *c)
        .await?;
    sqlx::Connection::begin(c).await
}

async fn insert_selectors(
    c: &mut sqlx::MySqlConnection,
    hold: i64,
    selectors: &[Selector],
) -> Result<(), sqlx::Error> {
    for s in selectors {
        let (kind, value, from, to) = s.columns();
        sqlx::query(
            "INSERT INTO recvault_hold_selectors (hold_id, kind, value, time_from, time_to) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(hold)
        .bind(kind)
        .bind(value)
        .bind(from)
        .bind(to)
        .execute(&mut *c)
        .await?;
    }
    Ok(())
}

/// What hold `id` covers: per box, and how many a deletion had reserved.
async fn coverage_of(c: &mut sqlx::MySqlConnection, id: i64) -> Result<Coverage, sqlx::Error> {
    let sql = format!(
        "SELECT r.host, COUNT(*), COUNT(d.id) FROM recvault_recordings r \
         JOIN recvault_holds h ON h.id = ? \
         LEFT JOIN recvault_deletions d ON d.host = r.host AND d.id = r.id \
         WHERE {} GROUP BY r.host",
        select::covers()
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_all(&mut *c)
        .await?;
    tally(rows)
}

fn tally(rows: Vec<sqlx::mysql::MySqlRow>) -> Result<Coverage, sqlx::Error> {
    let mut out = Coverage::default();
    for row in rows {
        let (host, n, d): (String, i64, i64) = (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        out.recordings += n as u64;
        out.being_deleted += d as u64;
        out.per_host.insert(host, n as u64);
    }
    Ok(out)
}

impl Fleet {
    /// Places a hold for the whole fleet: from its commit on, no box
    /// deletes what it covers (but what a deletion had reserved before).
    pub async fn place_hold(
        &self,
        by: &str,
        now: i64,
        hold: &NewHold,
    ) -> Result<(i64, Coverage), DbError> {
        let (by, hold, origin) = (by.to_string(), hold.clone(), self.host.clone());
        self.run("placing a legal hold in the fleet", move |c| {
            Box::pin(async move {
                let mut tx = begin(c).await?;
                sqlx::query(LOCK_GATE).execute(&mut *tx).await?;
                let done = sqlx::query(
                    "INSERT INTO recvault_holds (case_id, reason, created_by, created_at, origin) \
                     VALUES (?, ?, ?, ?, ?)",
                )
                .bind(&hold.case_id)
                .bind(&hold.reason)
                .bind(&by)
                .bind(now)
                .bind(&origin)
                .execute(&mut *tx)
                .await?;
                let id = done.last_insert_id() as i64;
                insert_selectors(&mut tx, id, &hold.selectors).await?;
                sqlx::query(
                    "UPDATE recvault_gate SET holds_version = holds_version + 1 WHERE id = 1",
                )
                .execute(&mut *tx)
                .await?;
                let coverage = coverage_of(&mut tx, id).await?;
                tx.commit().await?;
                Ok((id, coverage))
            })
        })
        .await
    }

    /// Releases every active hold of `case`; returns how many.
    pub async fn release_hold(
        &self,
        by: &str,
        now: i64,
        case: &str,
        reason: &str,
    ) -> Result<u64, DbError> {
        let (by, case, reason) = (by.to_string(), case.to_string(), reason.to_string());
        self.run("releasing a legal hold in the fleet", move |c| {
            Box::pin(async move {
                let mut tx = begin(c).await?;
                sqlx::query(LOCK_GATE).execute(&mut *tx).await?;
                let done = sqlx::query(
                    "UPDATE recvault_holds SET released_at = ?, released_by = ?, release_reason = ? \
                     WHERE case_id = ? AND released_at IS NULL",
                )
                .bind(now)
                .bind(&by)
                .bind(&reason)
                .bind(&case)
                .execute(&mut *tx)
                .await?;
                sqlx::query("UPDATE recvault_gate SET holds_version = holds_version + 1 WHERE id = 1")
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(done.rows_affected())
            })
        })
        .await
    }

    /// Every hold (active first, then newest first), or `case`'s, each
    /// with what it covers.
    pub async fn holds(&self, case: Option<&str>) -> Result<Vec<HoldInfo>, DbError> {
        let case = case.map(str::to_string);
        self.run("reading the fleet's legal holds", move |c| {
            Box::pin(async move {
                let mut sql =
                    "SELECT id, case_id, reason, created_by, created_at, origin, released_at, \
                               released_by, release_reason FROM recvault_holds"
                        .to_string();
                if case.is_some() {
                    sql.push_str(" WHERE case_id = ?");
                }
                sql.push_str(" ORDER BY released_at IS NOT NULL, created_at DESC, id DESC");
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                if let Some(case) = &case {
                    q = q.bind(case.clone());
                }
                let rows = q.fetch_all(&mut *c).await?;
                let mut out = Vec::with_capacity(rows.len());
                for row in rows {
                    let id: i64 = row.try_get(0)?;
                    let selectors = selectors_of(c, id).await?;
                    let coverage = coverage_of(c, id).await?;
                    out.push(HoldInfo {
                        id,
                        case_id: row.try_get(1)?,
                        reason: row.try_get(2)?,
                        created_by: row.try_get(3)?,
                        created_at: row.try_get(4)?,
                        origin: Some(row.try_get(5)?),
                        released_at: row.try_get(6)?,
                        released_by: row.try_get(7)?,
                        release_reason: row.try_get(8)?,
                        selectors,
                        coverage: Some(coverage),
                    });
                }
                Ok(out)
            })
        })
        .await
    }

    /// What a hold of `selectors` would cover now.
    pub async fn hold_preview(&self, selectors: &[Selector]) -> Result<Coverage, DbError> {
        let Some((filter, args)) = select::selection(selectors) else {
            return Ok(Coverage::default());
        };
        self.run("previewing a legal hold", move |c| {
            Box::pin(async move {
                let sql = format!(
                    "SELECT r.host, COUNT(*), COUNT(d.id) FROM recvault_recordings r \
                     LEFT JOIN recvault_deletions d ON d.host = r.host AND d.id = r.id \
                     WHERE {filter} GROUP BY r.host"
                );
                let rows = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), &args)
                    .fetch_all(&mut *c)
                    .await?;
                tally(rows)
            })
        })
        .await
    }

    /// Merges this box's own holds (from its ledger) into the fleet, each
    /// once. Returns how many were new to the fleet.
    pub async fn merge_holds(&self, holds: Vec<Hold>) -> Result<u64, DbError> {
        let origin = self.host.clone();
        self.run("merging this box's legal holds into the fleet", move |c| {
            Box::pin(async move {
                let mut tx = begin(c).await?;
                sqlx::query(LOCK_GATE).execute(&mut *tx).await?;
                let mut merged = 0;
                for h in holds {
                    let done = sqlx::query(
                        "INSERT IGNORE INTO recvault_holds (case_id, reason, created_by, created_at, \
                         origin, origin_hold_id, released_at, released_by, release_reason) \
                         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    )
                    .bind(&h.case_id)
                    .bind(&h.reason)
                    .bind(&h.created_by)
                    .bind(h.created_at)
                    .bind(&origin)
                    .bind(h.id)
                    .bind(h.released_at)
                    .bind(&h.released_by)
                    .bind(&h.release_reason)
                    .execute(&mut *tx)
                    .await?;
                    if done.rows_affected() == 1 {
                        insert_selectors(&mut tx, done.last_insert_id() as i64, &h.selectors)
                            .await?;
                        merged += 1;
                    }
                }
                sqlx::query("UPDATE recvault_gate SET holds_version = holds_version + 1 WHERE id = 1")
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(merged)
            })
        })
        .await
    }

    /// The cases whose active holds cover each of `ids` (recordings of `host`).
    pub async fn cases_holding(
        &self,
        host: &str,
        ids: &[i64],
    ) -> Result<BTreeMap<i64, Vec<String>>, DbError> {
        if ids.is_empty() {
            return Ok(BTreeMap::new());
        }
        let (host, ids) = (host.to_string(), ids.to_vec());
        self.run("reading which holds cover recordings", move |c| {
            Box::pin(async move { cases_in(c, &host, &ids).await })
        })
        .await
    }
}

/// The cases whose active holds cover each of `ids` of `host`, on `c`.
pub(super) async fn cases_in(
    c: &mut sqlx::MySqlConnection,
    host: &str,
    ids: &[i64],
) -> Result<BTreeMap<i64, Vec<String>>, sqlx::Error> {
    let mut out: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for chunk in ids.chunks(1000) {
        let list = vec!["?"; chunk.len()].join(", ");
        let sql = format!(
            "SELECT DISTINCT r.id, h.case_id FROM recvault_recordings r \
             JOIN recvault_holds h ON h.released_at IS NULL \
             WHERE r.host = ? AND r.id IN ({list}) AND {} ORDER BY r.id, h.case_id",
            select::covers()
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(host);
        for id in chunk {
            q = q.bind(id);
        }
        for row in q.fetch_all(&mut *c).await? {
            out.entry(row.try_get(0)?)
                .or_default()
                .push(row.try_get(1)?);
        }
    }
    Ok(out)
}

async fn selectors_of(
    c: &mut sqlx::MySqlConnection,
    hold: i64,
) -> Result<Vec<Selector>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT kind, value, time_from, time_to FROM recvault_hold_selectors WHERE hold_id = ?",
    )
    .bind(hold)
    .fetch_all(&mut *c)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Selector::from_columns(
                &r.try_get::<String, _>(0)?,
                r.try_get(1)?,
                r.try_get(2)?,
                r.try_get(3)?,
            ))
        })
        .collect()
}

impl Fleet {
    /// This box's own holds, merged when it joined, that the fleet has
    /// released since: (case, ledger id, who released it, why).
    pub async fn released_merged_holds(
        &self,
    ) -> Result<Vec<(String, i64, String, String)>, DbError> {
        let origin = self.host.clone();
        self.run("reading released holds of this box", move |c| {
            Box::pin(async move {
                sqlx::query_as(
                    "SELECT case_id, origin_hold_id, COALESCE(released_by, ''), \
                     COALESCE(release_reason, '') FROM recvault_holds WHERE origin = ? \
                     AND origin_hold_id IS NOT NULL AND released_at IS NOT NULL",
                )
                .bind(origin)
                .fetch_all(&mut *c)
                .await
            })
        })
        .await
    }
}
