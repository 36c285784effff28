//! Leadership: one box at a time governs the recordings of boxes that
//! cannot govern their own — those an operator forgot (`recvault fleet
//! forget`: wiped) and those silent for longer than `[fleet] host_timeout`
//! (down, or alive but cut off). It is the box holding MariaDB's named lock
//! `GET_LOCK('recvault_leader_<database>')` on a connection of its own; the
//! server releases it when that connection dies (a kill -9, a cut cable),
//! and the next box to ask takes over. The leader reserves each deletion
//! in the gate's transaction (the fleet's holds and the box's silence
//! checked there), deletes every version of the object, then marks the
//! catalog row and records it in `recvault_governed` for the box to learn
//! when it is heard from again; a reservation a dead leader left is
//! finished by the next one first. Of a silent box only recordings whose
//! local copy it had already removed are taken: it may be alive, and a
//! local copy is never left without its verified object.

use std::sync::Arc;

use sqlx::Row as _;

use super::holds::{LOCK_GATE, begin};
use super::select::Arg;
use super::{Fleet, publish, select};
use crate::catalog::{Entry, Rules};
use crate::recording::State;
use crate::store::Store;
use crate::vicidial::db::DbError;

/// Orphans deleted per round.
const BATCH: i64 = 200;

/// This box's claim on leadership: the connection holding the named lock.
#[derive(Default)]
pub struct Leadership {
    conn: Option<sqlx::MySqlConnection>,
}

impl Leadership {
    /// True while this box leads: keeps the lock's connection alive, or
    /// tries to take the lock (without waiting) when it has none.
    pub async fn hold(&mut self, fleet: &Fleet) -> bool {
        let timeout = fleet.db.query_timeout();
        let name = lock_name(&fleet.config.db.database);
        if let Some(conn) = self.conn.as_mut() {
            let check =
                sqlx::query_as::<_, (Option<i64>,)>("SELECT IS_USED_LOCK(?) = CONNECTION_ID()")
                    .bind(&name)
                    .fetch_one(conn);
            match tokio::time::timeout(timeout, check).await {
                Ok(Ok((Some(1),))) => return true,
                _ => {
                    tracing::warn!(
                        "this box no longer leads the fleet (its lock's connection was lost)"
                    );
                    self.conn = None;
                }
            }
        }
        let Ok(mut conn) = fleet.db.dedicated("taking the fleet's leadership").await else {
            return false;
        };
        // A leader cut off (not dead) would keep the lock for MariaDB's
        // default 8 hours: the server drops its idle connection sooner.
        let idle = fleet.config.host_timeout.max(fleet.config.heartbeat * 10);
        let set = sqlx::query("SET SESSION wait_timeout = ?")
            .bind(idle.as_secs().max(1))
            .execute(&mut conn);
        let _ = tokio::time::timeout(timeout, set).await;
        let take = sqlx::query_as::<_, (Option<i64>,)>("SELECT GET_LOCK(?, 0)")
            .bind(&name)
            .fetch_one(&mut conn);
        match tokio::time::timeout(timeout, take).await {
            Ok(Ok((Some(1),))) => {
                tracing::info!(host = %fleet.host, "this box leads the fleet: it governs the recordings of forgotten and silent boxes");
                self.conn = Some(conn);
                true
            }
            _ => false,
        }
    }
}

/// The lock's name: one leader per database (at most 64 characters).
fn lock_name(database: &str) -> String {
    let mut name = format!("recvault_leader_{database}");
    name.truncate(64);
    name
}

/// Whether `e` (a catalog entry) is due under `rules` at `now`.
fn due(rules: &Rules, e: &Entry, now: i64) -> bool {
    let keep = e
        .campaign
        .as_deref()
        .and_then(|c| rules.campaigns.get(c))
        .unwrap_or(&rules.default);
    keep.secs().is_some_and(|s| e.time + s <= now)
}

/// SQL over `r`, true when `rules` make it due at the time bound after
/// its arguments (a rule kept for ever: NULL, never true).
fn due_sql(rules: &Rules) -> (String, Vec<Arg>) {
    let keep = |k: &crate::config::Keep| k.secs().map_or(Arg::Null, Arg::Int);
    let mut args = Vec::new();
    let mut sql = String::from("r.time + ");
    if rules.campaigns.is_empty() {
        sql.push('?');
    } else {
        sql.push_str("CASE");
        for (campaign, k) in &rules.campaigns {
            sql.push_str(" WHEN r.campaign = ? THEN ?");
            args.extend([Arg::Text(campaign.clone()), keep(k)]);
        }
        sql.push_str(" ELSE ? END");
    }
    args.push(keep(&rules.default));
    sql.push_str(" <= ?");
    (format!("({sql})"), args)
}

impl Fleet {
    /// One leader's round: finishes what a dead leader reserved, then
    /// reserves and deletes the forgotten boxes' recordings `rules` make
    /// due (not held). Returns how many were deleted.
    pub async fn lead_round(
        &self,
        store: &Arc<dyn Store>,
        rules: &Rules,
        now: i64,
    ) -> Result<u64, crate::error::Error> {
        let mut deleted = self
            .delete_orphans(store, self.leftover_orphans().await?, now)
            .await?;
        let reserved = self.reserve_orphans(rules, now).await?;
        deleted += self.delete_orphans(store, reserved, now).await?;
        Ok(deleted)
    }

    /// Orphan deletions a leader reserved and did not finish.
    async fn leftover_orphans(&self) -> Result<Vec<Entry>, DbError> {
        self.run("reading the leader's unfinished deletions", |c| {
            Box::pin(async move {
                let rows = sqlx::query(
                    "SELECT r.entry FROM recvault_deletions d JOIN recvault_recordings r \
                     ON r.host = d.host AND r.id = d.id WHERE d.what = 'leader' \
                     AND r.state <> 'remote_deleted' LIMIT 200",
                )
                .fetch_all(&mut *c)
                .await?;
                entries(&rows)
            })
        })
        .await
    }

    /// Reserves forgotten and silent boxes' stored recordings that are due
    /// and not held, in the gate's transaction.
    async fn reserve_orphans(&self, rules: &Rules, now: i64) -> Result<Vec<Entry>, DbError> {
        let (rules, alive_since, me) = (rules.clone(), self.alive_since(now), self.host.clone());
        self.run("reserving forgotten and silent boxes' deletions", move |c| {
            Box::pin(async move {
                let mut tx = begin(c).await?;
                sqlx::query(LOCK_GATE).execute(&mut *tx).await?;
                // Due in SQL: the oldest page is not stuck on recordings
                // a longer rule keeps.
                let (due_sql, mut args) = due_sql(&rules);
                args.push(Arg::Int(now));
                let sql = format!(
                    "SELECT r.entry FROM recvault_recordings r JOIN recvault_boxes b ON b.host = r.host \
                     WHERE r.host <> ? AND ((b.forgotten_at IS NOT NULL \
                     AND r.state IN ('uploaded', 'verified', 'local_deleted')) OR (b.forgotten_at IS NULL \
                     AND b.heartbeat_at < ? AND r.state = 'local_deleted')) AND {due_sql} \
                     AND r.erase_request IS NULL AND NOT EXISTS (SELECT 1 FROM recvault_deletions d \
                     WHERE d.host = r.host AND d.id = r.id) AND NOT {} ORDER BY r.time LIMIT {BATCH}",
                    select::held()
                );
                let q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(&me).bind(alive_since);
                let rows = select::bind_all(q, &args).fetch_all(&mut *tx).await?;
                let due: Vec<Entry> = entries(&rows)?
                    .into_iter()
                    .filter(|e| due(&rules, e, now) && e.object_key.is_some())
                    .collect();
                reserve(&mut tx, "leader", &due, now).await?;
                tx.commit().await?;
                Ok(due)
            })
        })
        .await
    }

    /// Deletes every version of each reserved orphan's object, then marks
    /// its catalog row deleted (what Object Lock keeps stays reserved).
    async fn delete_orphans(
        &self,
        store: &Arc<dyn Store>,
        orphans: Vec<Entry>,
        now: i64,
    ) -> Result<u64, crate::error::Error> {
        let keys: Vec<String> = orphans
            .iter()
            .filter_map(|e| e.object_key.clone())
            .collect();
        if keys.is_empty() {
            return Ok(0);
        }
        let results = store.delete_all_versions(&keys).await?;
        let gone: std::collections::HashSet<String> = results
            .into_iter()
            .filter(|(_, r)| r.as_ref().is_ok_and(|p| p.locked.is_empty()))
            .map(|(k, _)| k)
            .collect();
        let by = format!(
            "fleet leader {}: retention of a box forgotten or not heard from",
            self.host
        );
        let done: Vec<Entry> = orphans
            .into_iter()
            .filter(|e| e.object_key.as_ref().is_some_and(|k| gone.contains(k)))
            .map(|mut e| {
                e.state = State::RemoteDeleted;
                e.step = State::RemoteDeleted;
                e.deleted_at = Some(now);
                e.deleted_by = Some(by.clone());
                e
            })
            .collect();
        let n = done.len() as u64;
        for e in &done {
            tracing::debug!(host = %e.host, recording = %e.name, key = e.object_key.as_deref().unwrap_or("-"), "deleted a forgotten or silent box's recording (fleet retention)");
        }
        self.run("recording the leader's deletions", move |c| {
            Box::pin(async move {
                let mut tx = sqlx::Connection::begin(&mut *c).await?;
                publish::upsert(&mut tx, &done, now).await?;
                for e in &done {
                    super::adopt::record(&mut tx, e, "retention", None).await?;
                    sqlx::query("DELETE FROM recvault_deletions WHERE host = ? AND id = ?")
                        .bind(&e.host)
                        .bind(e.id)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            })
        })
        .await?;
        Ok(n)
    }
}

/// Reserves each of `entries` for the leader (`what`: `leader` for a
/// retention deletion, `leader-erase` for an erasure) in `tx`, the gate's
/// transaction, so no box reserves it too.
pub(super) async fn reserve(
    tx: &mut sqlx::Transaction<'_, sqlx::MySql>,
    what: &str,
    entries: &[Entry],
    now: i64,
) -> Result<(), sqlx::Error> {
    for e in entries {
        sqlx::query(
            "INSERT INTO recvault_deletions (host, id, what, reserved_at) VALUES (?, ?, ?, ?) \
             ON DUPLICATE KEY UPDATE what = VALUES(what), reserved_at = VALUES(reserved_at)",
        )
        .bind(&e.host)
        .bind(e.id)
        .bind(what)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Catalog entries from rows whose first column is `entry`.
pub(super) fn entries(rows: &[sqlx::mysql::MySqlRow]) -> Result<Vec<Entry>, sqlx::Error> {
    rows.iter()
        .map(|r| {
            let json: String = r.try_get(0)?;
            serde_json::from_str(&json)
                .map_err(|e| sqlx::Error::Protocol(format!("a catalog entry is not readable: {e}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Keep;

    #[test]
    fn what_is_due_is_asked_of_the_database_per_campaign() {
        let mut rules = Rules {
            default: Keep::parse("30d").unwrap(),
            campaigns: Default::default(),
            delete_unarchived: false,
        };
        let (sql, args) = due_sql(&rules);
        assert_eq!(sql, "(r.time + ? <= ?)");
        assert_eq!(args, [Arg::Int(30 * 86_400)]);
        rules
            .campaigns
            .insert("SALES".into(), Keep::parse("forever").unwrap());
        let (sql, args) = due_sql(&rules);
        assert_eq!(
            sql,
            "(r.time + CASE WHEN r.campaign = ? THEN ? ELSE ? END <= ?)"
        );
        assert_eq!(
            args,
            [Arg::Text("SALES".into()), Arg::Null, Arg::Int(30 * 86_400)]
        );
    }
}
