//! The fleet's say over this box's deletions: each retention or erasure
//! deletion is reserved in `recvault_deletions`, in the transaction that
//! locks the gate row and checks the fleet's holds (against the facts the
//! box has now, published in the same transaction). A hold committed
//! before wins; a reservation committed before goes on, and `hold add`
//! counts it. A box that has not reached the database since it started,
//! or cannot now, deletes nothing.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use sqlx::Row as _;

use super::holds::{LOCK_GATE, begin};
use super::{Fleet, publish, select};
use crate::catalog::{Entry, Rules};
use crate::config::RetentionPolicy;
use crate::error::Error;
use crate::governance::gate::DeletionGate;
use crate::ledger::reservations::Deletion;
use crate::metrics::Metrics;
use crate::recording::Recording;

/// The fleet's deletion gate for this box.
pub struct FleetGate {
    pub fleet: Arc<Fleet>,
    /// The fleet's retention rules, as last read (`None`: never read).
    rules: RwLock<Option<Rules>>,
    /// True once this box joined the fleet (its name checked) in this run.
    joined: AtomicBool,
    /// The version of `rules` (0: none read).
    version: std::sync::atomic::AtomicI64,
    metrics: Option<Arc<Metrics>>,
}

impl FleetGate {
    /// A closed gate: it opens once the box joins and reads the policy.
    pub fn new(fleet: Arc<Fleet>, metrics: Option<Arc<Metrics>>) -> FleetGate {
        FleetGate {
            fleet,
            rules: RwLock::new(None),
            joined: AtomicBool::new(false),
            version: std::sync::atomic::AtomicI64::new(0),
            metrics,
        }
    }

    /// This box joined (or rejoined) the fleet.
    pub fn set_joined(&self, joined: bool) {
        self.joined.store(joined, Ordering::SeqCst);
    }

    /// True once joined.
    pub fn joined(&self) -> bool {
        self.joined.load(Ordering::SeqCst)
    }

    /// The version of the policy last read.
    pub fn policy_version(&self) -> Option<i64> {
        Some(self.version.load(Ordering::SeqCst)).filter(|v| *v > 0)
    }

    /// Notes the version of the policy read.
    pub fn set_policy_version(&self, version: Option<i64>) {
        self.version.store(version.unwrap_or(0), Ordering::SeqCst);
    }

    /// The fleet's rules as last read (`None`: never read, or none set).
    pub fn rules(&self) -> Option<Rules> {
        self.rules.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The fleet's rules as last read.
    pub fn set_rules(&self, rules: Option<Rules>) {
        *self.rules.write().unwrap_or_else(|e| e.into_inner()) = rules;
    }

    /// The daemon's metrics, if any.
    pub fn metrics(&self) -> Option<Arc<Metrics>> {
        self.metrics.clone()
    }

    /// Notes whether the last call reached the database.
    pub fn note(&self, up: bool) {
        if let Some(m) = &self.metrics {
            m.fleet.database_up.store(u64::from(up), Ordering::Relaxed);
        }
    }

    fn closed(&self, why: String) -> Error {
        if let Some(m) = &self.metrics {
            m.fleet.gate_closed.store(1, Ordering::Relaxed);
        }
        Error::Database {
            message: format!("nothing is deleted until the fleet's holds can be checked: {why}"),
            retryable: true,
        }
    }
}

#[async_trait]
impl DeletionGate for FleetGate {
    async fn reserve(
        &self,
        what: Deletion,
        recordings: &[Recording],
        now: i64,
    ) -> Result<HashSet<i64>, Error> {
        if !self.joined() {
            return Err(self.closed(format!(
                "this box has not joined the fleet since it started (database {})",
                self.fleet.target()
            )));
        }
        if recordings.is_empty() {
            return Ok(HashSet::new());
        }
        let host = self.fleet.host.clone();
        let entries: Vec<Entry> = recordings
            .iter()
            .map(|r| Entry::of(&host, r, Vec::new()))
            .collect();
        let mut ids: Vec<i64> = recordings.iter().map(|r| r.id).collect();
        ids.sort_unstable();
        let what = match what {
            Deletion::Retention => "retention",
            Deletion::Erasure => "erasure",
            Deletion::LocalCopy => "local",
        };
        let result = self
            .fleet
            .run("reserving deletions in the fleet", move |c| {
                Box::pin(async move { reserve_in(c, &host, &entries, &ids, what, now).await })
            })
            .await;
        self.note(result.is_ok());
        match result {
            Ok(free) => {
                if let Some(m) = &self.metrics {
                    m.fleet.gate_closed.store(0, Ordering::Relaxed);
                }
                Ok(free)
            }
            Err(e) => Err(self.closed(e.to_string())),
        }
    }

    async fn release(&self, ids: &[i64]) {
        let (host, ids) = (self.fleet.host.clone(), ids.to_vec());
        let released = self
            .fleet
            .run("releasing deletion reservations in the fleet", move |c| {
                Box::pin(async move {
                    for chunk in ids.chunks(500) {
                        let list = vec!["?"; chunk.len()].join(", ");
                        let sql = format!(
                            "DELETE FROM recvault_deletions WHERE host = ? AND id IN ({list})"
                        );
                        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(&host);
                        for id in chunk {
                            q = q.bind(id);
                        }
                        q.execute(&mut *c).await?;
                    }
                    Ok(())
                })
            })
            .await;
        if let Err(e) = released {
            // Left behind, a reservation only makes a later hold count it.
            tracing::debug!("cannot release deletion reservations in the fleet: {e}");
        }
    }

    fn policy(&self, base: &RetentionPolicy) -> Option<RetentionPolicy> {
        self.rules
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|r| r.applied_to(base))
    }
}

/// The gate for a command that deletes (`retention run`, `erase` run by
/// hand): the tables checked, the policy read, and open — the command
/// runs under the instance lock, as this box. `None` without `[fleet]`.
pub async fn for_command(config: &crate::config::Config) -> Result<Option<Arc<FleetGate>>, Error> {
    let Some(fleet) = Fleet::of(config)? else {
        return Ok(None);
    };
    let needed = super::schema::migrations().len() as i64;
    let found = fleet.schema_version().await?;
    if found < needed {
        return Err(Error::Usage(format!(
            "the fleet database {} has recvault's tables at version {found}, this recvault needs \
             {needed}: run `recvault fleet init`",
            fleet.target()
        )));
    }
    let gate = FleetGate::new(fleet.clone(), None);
    gate.set_rules(fleet.policy().await?.map(|p| p.rules));
    gate.set_joined(true);
    Ok(Some(Arc::new(gate)))
}

/// Reserves, in one transaction holding the gate lock, those of `ids` (of
/// `host`, whose facts are `entries`) that no active hold covers.
async fn reserve_in(
    c: &mut sqlx::MySqlConnection,
    host: &str,
    entries: &[Entry],
    ids: &[i64],
    what: &str,
    now: i64,
) -> Result<HashSet<i64>, sqlx::Error> {
    let mut tx = begin(c).await?;
    sqlx::query(LOCK_GATE).execute(&mut *tx).await?;
    // What the leader deleted (or is deleting) while this box was silent
    // is not this box's to delete again, nor its old facts to publish.
    let taken = super::adopt::taken_in(&mut tx, host, ids).await?;
    let entries: Vec<Entry> = entries
        .iter()
        .filter(|e| !taken.contains(&e.id))
        .cloned()
        .collect();
    let ids: Vec<i64> = ids
        .iter()
        .copied()
        .filter(|id| !taken.contains(id))
        .collect();
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    // The facts this box has now decide what the holds cover.
    publish::upsert(&mut tx, &entries, now).await?;
    let list = vec!["?"; ids.len()].join(", ");
    let sql = format!(
        "SELECT r.id FROM recvault_recordings r WHERE r.host = ? AND r.id IN ({list}) AND NOT {}",
        select::held()
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(host);
    for id in &ids {
        q = q.bind(id);
    }
    let free: Vec<i64> = q
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    for chunk in free.chunks(500) {
        let rows = vec!["(?, ?, ?, ?)"; chunk.len()].join(", ");
        let sql = format!(
            "INSERT INTO recvault_deletions (host, id, what, reserved_at) VALUES {rows} \
             ON DUPLICATE KEY UPDATE what = VALUES(what), reserved_at = VALUES(reserved_at)"
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in chunk {
            q = q.bind(host).bind(id).bind(what).bind(now);
        }
        q.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(free.into_iter().collect())
}
