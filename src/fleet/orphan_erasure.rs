//! The leader erases the stored objects of fleet erasures on boxes that
//! cannot: forgotten ones (their items count as closed, so nobody else
//! ever would) and silent ones (alive perhaps, but cut off: the person's
//! recording should not wait in the store for the box to come back). Each
//! object is reserved in the gate's transaction (`recvault_deletions`,
//! `leader-erase`; a confirmed erasure is a commitment no later hold
//! undoes, as on one box), every version of it deleted, and the fact
//! written down (`recvault_governed`, `erasure`) so no leader does it
//! twice. Of a silent box only objects whose local copy it had removed
//! are taken: one it is still verifying would look lost to it and be
//! uploaded again. A silent box still erases its own copies when it is
//! back (spool, staging, cache) and marks its items: only then is the
//! request complete.
//! Logs name the box, the ledger id and the request, never the file name.

use std::collections::HashSet;
use std::sync::Arc;

use sqlx::Row as _;

use super::Fleet;
use super::holds::{LOCK_GATE, begin};
use crate::catalog::Entry;
use crate::error::Error;
use crate::store::Store;
use crate::vicidial::db::DbError;

/// Objects erased per round.
const BATCH: i64 = 200;

impl Fleet {
    /// Erases the stored objects of forgotten and silent boxes' erasure
    /// items not erased yet. Returns how many objects went.
    pub async fn erase_orphans(&self, store: &Arc<dyn Store>, now: i64) -> Result<u64, Error> {
        let items = self.reserve_orphan_erasures(now).await?;
        if items.is_empty() {
            return Ok(0);
        }
        let keys: Vec<String> = items
            .iter()
            .filter_map(|(_, e)| e.object_key.clone())
            .collect();
        let gone: HashSet<String> = store
            .delete_all_versions(&keys)
            .await?
            .into_iter()
            .filter(|(_, r)| r.as_ref().is_ok_and(|p| p.locked.is_empty()))
            .map(|(k, _)| k)
            .collect();
        let by = format!(
            "fleet leader {}: erasure for a box forgotten or not heard from",
            self.host
        );
        let done: Vec<(String, Entry)> = items
            .into_iter()
            .filter(|(_, e)| e.object_key.as_ref().is_some_and(|k| gone.contains(k)))
            .map(|(request, mut e)| {
                e.deleted_at = Some(now);
                e.deleted_by = Some(by.clone());
                (request, e)
            })
            .collect();
        for (request, e) in &done {
            tracing::debug!(host = %e.host, recording = e.id, request = %request, "erased a forgotten or silent box's stored object (fleet erasure)");
        }
        let n = done.len() as u64;
        self.run("recording the leader's erasures", move |c| {
            Box::pin(async move {
                let mut tx = sqlx::Connection::begin(&mut *c).await?;
                for (request, e) in &done {
                    super::adopt::record(&mut tx, e, "erasure", Some(request)).await?;
                    sqlx::query("DELETE FROM recvault_deletions WHERE host = ? AND id = ? AND what = 'leader-erase'")
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

    /// Reserves, in the gate's transaction, the stored objects of pending
    /// erasure items on forgotten and silent boxes (a box's own erasure
    /// reservation is taken over; one a dead leader left is taken again).
    async fn reserve_orphan_erasures(&self, now: i64) -> Result<Vec<(String, Entry)>, DbError> {
        let (alive_since, me) = (self.alive_since(now), self.host.clone());
        self.run("reserving erasures of forgotten and silent boxes' objects", move |c| {
            Box::pin(async move {
                let mut tx = begin(c).await?;
                sqlx::query(LOCK_GATE).execute(&mut *tx).await?;
                let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT i.request, r.entry FROM recvault_erasure_items i \
                     JOIN recvault_recordings r ON r.host = i.host AND r.id = i.id \
                     JOIN recvault_boxes b ON b.host = i.host \
                     WHERE i.erased_at IS NULL AND i.host <> ? AND r.object_key IS NOT NULL \
                     AND ((b.forgotten_at IS NOT NULL AND r.state IN ('uploaded', 'verified', 'local_deleted')) \
                     OR (b.forgotten_at IS NULL AND b.heartbeat_at < ? AND r.state = 'local_deleted')) \
                     AND NOT EXISTS (SELECT 1 FROM recvault_governed g WHERE g.host = i.host AND g.id = i.id) \
                     AND NOT EXISTS (SELECT 1 FROM recvault_deletions d WHERE d.host = i.host AND d.id = i.id \
                     AND d.what NOT IN ('erasure', 'leader-erase')) LIMIT {BATCH}"
                )))
                .bind(me)
                .bind(alive_since)
                .fetch_all(&mut *tx)
                .await?;
                let mut items = Vec::with_capacity(rows.len());
                for row in &rows {
                    let request: String = row.try_get(0)?;
                    let json: String = row.try_get(1)?;
                    let e: Entry = serde_json::from_str(&json).map_err(|e| {
                        sqlx::Error::Protocol(format!("a catalog entry is not readable: {e}"))
                    })?;
                    items.push((request, e));
                }
                // At most a page of entries: a copy costs nothing next to the round trips.
                let entries: Vec<Entry> = items.iter().map(|(_, e)| e.clone()).collect();
                super::leader::reserve(&mut tx, "leader-erase", &entries, now).await?;
                tx.commit().await?;
                Ok(items)
            })
        })
        .await
    }
}
