//! Publishing: each box's recordings in the fleet's catalog
//! (`recvault_recordings`), within seconds of each change. The ledger's
//! outbox (`ledger::outbox`) says what changed; it is drained in batches,
//! each upserted in one statement, and a row leaves the outbox only once
//! its change is committed there — so a database outage loses nothing and
//! the backlog catches up by itself.

use std::sync::Arc;

use super::Fleet;
use crate::catalog::Entry;
use crate::error::Error;
use crate::ledger::Ledger;
use crate::ledger::outbox::Outgoing;
use crate::recording::State;
use crate::units::now_secs;

/// Recordings published per statement.
pub const BATCH: usize = 500;

/// The catalog's columns, in the order [`bind_entry`] binds them.
const COLUMNS: &str = "host, id, name, state, time, campaign, agent, phone, lead_id, size, \
                       object_key, erase_request, erased_at, entry, published_at";

/// `INSERT … ON DUPLICATE KEY UPDATE` of `n` recordings.
fn upsert_sql(n: usize) -> String {
    let row = format!("({})", vec!["?"; 15].join(", "));
    let rows = vec![row; n].join(", ");
    let update = COLUMNS
        .split(", ")
        .skip(2)
        .map(|c| format!("{c} = VALUES({c})"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "INSERT INTO recvault_recordings ({COLUMNS}) VALUES {rows} ON DUPLICATE KEY UPDATE {update}"
    )
}

/// `text` cut to `max` characters (a column's size): a catalog row with a
/// shortened name is better than an outbox stuck on it.
fn fit(text: Option<&str>, max: usize) -> Option<String> {
    text.map(|t| t.chars().take(max).collect())
}

/// Upserts `entries` (one box's) into the catalog on `c`, in the caller's
/// transaction if it has one.
pub(super) async fn upsert(
    c: &mut sqlx::MySqlConnection,
    entries: &[Entry],
    now: i64,
) -> Result<(), sqlx::Error> {
    for chunk in entries.chunks(BATCH) {
        let sql = upsert_sql(chunk.len());
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for e in chunk {
            let json = serde_json::to_string(e)
                .map_err(|err| sqlx::Error::Protocol(format!("entry {}: {err}", e.reference())))?;
            q = q
                .bind(e.host.clone())
                .bind(e.id)
                .bind(fit(Some(&e.name), 1024))
                .bind(e.state.as_str())
                .bind(e.time)
                .bind(fit(e.campaign.as_deref(), 255))
                .bind(fit(e.agent.as_deref(), 255))
                .bind(fit(e.phone.as_deref(), 255))
                .bind(fit(e.lead_id.as_deref(), 255))
                .bind(e.size as i64)
                .bind(fit(e.object_key.as_deref(), 1024))
                .bind(e.erasure.as_ref().map(|m| m.request.clone()))
                .bind(e.erasure.as_ref().and_then(|m| m.erased_at))
                .bind(json)
                .bind(now);
        }
        q.execute(&mut *c).await?;
    }
    Ok(())
}

/// True when `e`'s deletion is done (retention or erasure).
fn is_done(e: &Entry) -> bool {
    e.state == State::RemoteDeleted || e.status() == "erased"
}

/// A recording of this box as the catalog has it (its holds are the
/// fleet's, computed when asked).
pub fn entry(host: &str, out: &Outgoing) -> Entry {
    Entry::of(host, &out.rec, Vec::new())
}

impl Fleet {
    /// Publishes `entries` (this box's) to the catalog; the deletion
    /// reservations of those whose deletion is done are dropped.
    pub async fn publish(&self, entries: Vec<Entry>) -> Result<(), crate::vicidial::db::DbError> {
        let host = self.host.clone();
        self.run("publishing recordings to the fleet's catalog", move |c| {
            Box::pin(async move {
                let mut tx = sqlx::Connection::begin(&mut *c).await?;
                // A recording the leader deleted while this box was silent
                // keeps the catalog's word until this box's ledger agrees.
                let ids: Vec<i64> = entries.iter().map(|e| e.id).collect();
                let taken = super::adopt::taken_in(&mut tx, &host, &ids).await?;
                let entries: Vec<Entry> = entries
                    .into_iter()
                    .filter(|e| !taken.contains(&e.id) || is_done(e))
                    .collect();
                upsert(&mut tx, &entries, now_secs()).await?;
                let done: Vec<i64> = entries
                    .iter()
                    .filter(|e| is_done(e))
                    .map(|e| e.id)
                    .collect();
                for chunk in done.chunks(BATCH) {
                    let list = vec!["?"; chunk.len()].join(", ");
                    let sql =
                        format!("DELETE FROM recvault_deletions WHERE host = ? AND id IN ({list})");
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(&host);
                    for id in chunk {
                        q = q.bind(id);
                    }
                    q.execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(())
            })
        })
        .await
    }

    /// Drains the outbox until it is empty (or `max_batches` were sent).
    /// Returns how many changes were published.
    pub async fn publish_outbox(
        &self,
        ledger: &Arc<Ledger>,
        max_batches: usize,
    ) -> Result<u64, Error> {
        let mut published = 0;
        for _ in 0..max_batches {
            let batch = ledger.call(|l| l.outbox_batch(BATCH)).await?;
            if batch.is_empty() {
                break;
            }
            let entries = batch.iter().map(|o| entry(&self.host, o)).collect();
            self.publish(entries).await?;
            let done: Vec<(i64, i64)> = batch.iter().map(|o| (o.rec.id, o.seq)).collect();
            published += done.len() as u64;
            ledger.call(move |l| l.outbox_done(&done)).await?;
            if batch.len() < BATCH {
                break;
            }
        }
        Ok(published)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_statement_per_batch_updates_everything_but_the_key() {
        let sql = upsert_sql(2);
        assert_eq!(sql.matches('?').count(), 30);
        assert!(sql.contains("name = VALUES(name)"));
        assert!(!sql.contains("host = VALUES(host)"));
        assert!(!sql.contains(" id = VALUES(id)"));
        assert_eq!(fit(Some("abcdef"), 3).as_deref(), Some("abc"));
    }
}
