//! The fleet's holds in the store: a copy of the fleet's hold table
//! (`{prefix}.recvault/fleet-holds/`, written by the box that changed a
//! hold and by the leader on learning of a change), and, with `[store]
//! object_lock_legal_hold`, the Object Lock legal hold of every stored
//! object a fleet hold covers. Each box sets its own objects' legal holds
//! when it learns a hold changed (the gate row's `holds_version`); the
//! leader sets those of forgotten and silent boxes. A release turns off
//! what no active hold covers any more. The database stays the record of
//! the holds: the mirror is never the only one.

use std::collections::HashSet;
use std::sync::Arc;

use super::{Fleet, FleetGate, select};
use crate::catalog::{Aftermath, HoldInfo};
use crate::error::Error;
use crate::recovery::hold_copy;
use crate::store::Store;
use crate::units::now_secs;
use crate::vicidial::db::DbError;

/// Whose objects a [`Mirror`] looks after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// This box's own.
    Mine,
    /// Forgotten and silent boxes' (the leader's job).
    Orphans,
}

/// States in which a recording has an object in the store.
const STORED: &str =
    "r.state IN ('uploaded', 'verified', 'local_deleted') AND r.object_key IS NOT NULL";

impl Fleet {
    /// How many times the fleet's holds changed (the gate row's counter).
    pub async fn holds_version(&self) -> Result<i64, DbError> {
        self.run("reading the fleet's holds version", |c| {
            Box::pin(async move {
                let (v,): (i64,) =
                    sqlx::query_as("SELECT holds_version FROM recvault_gate WHERE id = 1")
                        .fetch_one(&mut *c)
                        .await?;
                Ok(v)
            })
        })
        .await
    }

    /// Object keys in `scope` an active hold covers (`held`), or that only
    /// released holds cover (`!held`).
    async fn lock_keys(&self, scope: Scope, held: bool, now: i64) -> Result<Vec<String>, DbError> {
        let (me, alive_since) = (self.host.clone(), self.alive_since(now));
        self.run("reading which objects the fleet's holds cover", move |c| {
            Box::pin(async move {
                let whose = match scope {
                    Scope::Mine => "r.host = ?",
                    Scope::Orphans => {
                        "r.host <> ? AND r.host IN (SELECT b.host FROM recvault_boxes b \
                         WHERE b.forgotten_at IS NOT NULL OR b.heartbeat_at < ?)"
                    }
                };
                let which = match held {
                    true => select::held(),
                    false => format!(
                        "{} AND NOT {}",
                        select::covered("h.released_at IS NOT NULL"),
                        select::held()
                    ),
                };
                let sql = format!("SELECT r.object_key FROM recvault_recordings r WHERE {whose} AND {STORED} AND {which}");
                let mut q = sqlx::query_as::<_, (String,)>(sqlx::AssertSqlSafe(sql)).bind(me);
                if scope == Scope::Orphans {
                    q = q.bind(alive_since);
                }
                Ok(q.fetch_all(&mut *c).await?.into_iter().map(|(k,)| k).collect())
            })
        })
        .await
    }
}

/// Copies every hold of the fleet to the store. Returns the key written.
pub async fn copy_holds(
    fleet: &Fleet,
    store: &dyn Store,
    store_prefix: &str,
) -> Result<String, Error> {
    let holds = fleet
        .holds(None)
        .await?
        .into_iter()
        .map(HoldInfo::into_hold)
        .collect();
    hold_copy::publish_holds(store, &hold_copy::fleet_prefix(store_prefix), holds).await
}

/// After a hold change made on this box: the fleet's holds copied to the
/// store now. Each box sets its own objects' Object Lock legal holds when
/// it learns of the change (its daemon), the leader those of silent and
/// forgotten boxes.
pub async fn aftermath(
    fleet: &Fleet,
    config: &crate::config::Config,
    store: Result<Option<Arc<dyn Store>>, Error>,
) -> Aftermath {
    let store = match (store, &config.store) {
        (Ok(Some(store)), Some(sc)) => (store, sc.prefix.clone()),
        (Err(e), _) => {
            return Aftermath {
                copied: Some(Err(e.to_string())),
                mirror: None,
            };
        }
        _ => return Aftermath::default(),
    };
    let copied = copy_holds(fleet, store.0.as_ref(), &store.1).await;
    Aftermath {
        copied: Some(copied.map_err(|e| e.to_string())),
        mirror: None,
    }
}

/// One box's (or the leader's) side of the mirror, kept between rounds.
pub struct Mirror {
    pub store: Arc<dyn Store>,
    pub scope: Scope,
    /// `[store] object_lock_legal_hold`.
    pub object_lock: bool,
    /// With a prefix: the fleet's hold copy is written on each change.
    pub copy_to: Option<String>,
    /// Keys whose legal hold this run set on.
    on: HashSet<String>,
    /// The holds version last mirrored (`None`: none yet this run).
    seen: Option<i64>,
}

impl Mirror {
    /// A mirror that has done nothing yet.
    pub fn new(store: Arc<dyn Store>, scope: Scope, object_lock: bool) -> Mirror {
        Mirror {
            store,
            scope,
            object_lock,
            copy_to: None,
            on: HashSet::new(),
            seen: None,
        }
    }

    /// Mirrors the fleet's holds if they changed since the last round (or
    /// `again`: objects stored since are covered too).
    pub async fn round(&mut self, fleet: &Fleet, now: i64, again: bool) -> Result<(), Error> {
        let version = fleet.holds_version().await?;
        if self.seen == Some(version) && !again {
            return Ok(());
        }
        if let (Some(prefix), true) = (&self.copy_to, self.seen != Some(version)) {
            match copy_holds(fleet, self.store.as_ref(), prefix).await {
                Ok(key) => tracing::info!(key = %key, "the fleet's holds copied to the store"),
                // The holds stand in the database; copied again next change.
                Err(e) => tracing::warn!("the fleet's holds not copied to the store: {e}"),
            }
        }
        if self.object_lock {
            self.set_locks(fleet, now).await?;
        }
        self.seen = Some(version);
        Ok(())
    }

    /// Legal holds on for what an active hold covers, off for what only
    /// released holds cover (and, of this box's own, what it set on and no
    /// active hold covers any more).
    async fn set_locks(&mut self, fleet: &Fleet, now: i64) -> Result<(), Error> {
        let held: HashSet<String> = fleet
            .lock_keys(self.scope, true, now)
            .await?
            .into_iter()
            .collect();
        let mut off: HashSet<String> = fleet
            .lock_keys(self.scope, false, now)
            .await?
            .into_iter()
            .collect();
        if self.scope == Scope::Mine {
            off.extend(self.on.difference(&held).cloned());
        }
        let (mut set_on, mut set_off, mut failed) = (0u64, 0u64, 0u64);
        let new: Vec<String> = held.difference(&self.on).cloned().collect();
        for key in new {
            match self.store.set_legal_hold(&key, true).await {
                Ok(()) => {
                    self.on.insert(key.clone());
                    set_on += 1;
                }
                Err(e) => {
                    failed += 1;
                    tracing::warn!(key = %key, "legal hold not mirrored to Object Lock (the fleet's hold applies): {e}");
                }
            }
        }
        for key in off {
            match self.store.set_legal_hold(&key, false).await {
                Ok(()) => set_off += 1,
                Err(e) => tracing::debug!(key = %key, "legal hold not turned off: {e}"),
            }
            self.on.remove(&key);
        }
        if set_on + set_off + failed > 0 {
            tracing::info!(on = set_on, off = set_off, failed, scope = ?self.scope, "the fleet's holds mirrored to Object Lock");
        }
        Ok(())
    }
}

/// Sets this box's objects' Object Lock legal holds to match the fleet's
/// holds when they change (and every 60 heartbeats, for objects stored
/// since); `[store] object_lock_legal_hold` only.
pub(super) async fn run(
    fleet: Arc<Fleet>,
    gate: Arc<FleetGate>,
    config: Arc<crate::config::Config>,
) {
    let Some(store_config) = config.store.as_ref().filter(|s| s.object_lock_legal_hold) else {
        return;
    };
    let store = match crate::store::open(store_config).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(
                "the fleet's holds cannot be mirrored to Object Lock (the store does not open): {e}"
            );
            return;
        }
    };
    let mut mirror = Mirror::new(store, Scope::Mine, true);
    let mut n = 0u32;
    loop {
        tokio::time::sleep(fleet.config.heartbeat).await;
        if !gate.joined() {
            continue;
        }
        n = n.wrapping_add(1);
        if let Err(e) = mirror.round(&fleet, now_secs(), n.is_multiple_of(60)).await {
            tracing::debug!("the fleet's holds not mirrored this time: {e}");
        }
    }
}
