//! What `recvault run` does as a fleet member: join (its name checked,
//! its ledger queued for publishing, its own holds merged, the fleet's
//! policy read), then beat and publish for as long as it runs. The
//! database being down at start is no reason not to archive: the box joins
//! as soon as it can, and deletes nothing until then (the gate is closed).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::boxes::{Beat, JoinError};
use super::{Fleet, FleetGate};
use crate::catalog::Rules;
use crate::catalog::local::box_overview;
use crate::config::Config;
use crate::error::Error;
use crate::governance::requests::erase;
use crate::ledger::Ledger;
use crate::ledger::audit::Actor;
use crate::ledger::holds::Selector;
use crate::metrics::Metrics;
use crate::units::now_secs;

/// How often the outbox is looked at (an indexed read of the ledger).
const PUBLISH_POLL: Duration = Duration::from_secs(1);
/// A fresh overview with every this many heartbeats (it counts the ledger).
const OVERVIEW_EVERY: u32 = 6;

/// A running fleet member.
pub struct Member {
    pub gate: Arc<FleetGate>,
    tasks: Vec<JoinHandle<()>>,
    fleet: Arc<Fleet>,
    ledger: Arc<Ledger>,
}

impl Member {
    /// Stops beating and publishing; one last bounded publish first.
    pub async fn stop(self) {
        for t in &self.tasks {
            t.abort();
        }
        let last = self.fleet.publish_outbox(&self.ledger, 4);
        let _ = tokio::time::timeout(Duration::from_secs(3), last).await;
        // Bounded too: closing waits for every pooled connection to come
        // back, and one a cancelled task held may never (a daemon was seen
        // to hang here after "stopped").
        let _ = tokio::time::timeout(Duration::from_secs(3), self.fleet.close()).await;
    }
}

/// Starts the fleet side of the daemon; `None` without `[fleet]`. Refuses
/// (an error) when another live box has this name or the tables are
/// missing; a database that does not answer only delays the join.
pub async fn start(config: &Arc<Config>, metrics: &Arc<Metrics>) -> Result<Option<Member>, Error> {
    let Some(fleet) = Fleet::of(config)? else {
        return Ok(None);
    };
    metrics.fleet.member.store(1, Ordering::Relaxed);
    let gate = Arc::new(FleetGate::new(fleet.clone(), Some(metrics.clone())));
    let ledger = Arc::new(Ledger::open(&config.ledger.path)?);
    if let Some(queued) = ledger.start_publishing(now_secs())? {
        tracing::info!(
            recordings = queued,
            "joining a fleet for the first time: every recording of this ledger is queued for the fleet's catalog"
        );
    }
    match join(&fleet, &gate, &ledger, config).await {
        Ok(()) => {}
        Err(e) if e.is_retryable() => tracing::warn!(
            "cannot reach the fleet database now ({e}); archiving goes on, nothing is deleted \
             until this box has joined and can check the fleet's holds"
        ),
        Err(e) => {
            return Err(Error::Config(crate::config::ConfigError::Invalid {
                file: config.source.clone(),
                key: "daemon.host".into(),
                problem: e.to_string(),
            }));
        }
    }
    let tasks = vec![
        tokio::spawn(beat_loop(
            fleet.clone(),
            gate.clone(),
            ledger.clone(),
            config.clone(),
        )),
        tokio::spawn(publish_loop(
            fleet.clone(),
            gate.clone(),
            ledger.clone(),
            metrics.clone(),
        )),
        tokio::spawn(super::rounds::lead_loop(
            fleet.clone(),
            gate.clone(),
            config.clone(),
        )),
        tokio::spawn(erase_loop(fleet.clone(), gate.clone(), ledger.clone())),
        tokio::spawn(super::mirror::run(
            fleet.clone(),
            gate.clone(),
            config.clone(),
        )),
    ];
    Ok(Some(Member {
        gate,
        tasks,
        fleet,
        ledger,
    }))
}

/// Joins: the name, this box's holds merged, the policy read.
async fn join(
    fleet: &Arc<Fleet>,
    gate: &FleetGate,
    ledger: &Arc<Ledger>,
    config: &Config,
) -> Result<(), JoinError> {
    fleet.join(now_secs()).await?;
    let holds = ledger.call(|l| l.holds()).await.map_err(|e| {
        JoinError::Db(fleet.db.failure(
            crate::vicidial::db::ErrorKind::Retryable,
            "merging this box's legal holds",
            e.to_string(),
        ))
    })?;
    let merged = fleet.merge_holds(holds).await?;
    read_policy(fleet, gate, config, true).await?;
    gate.set_joined(true);
    gate.note(true);
    tracing::info!(
        host = %fleet.host,
        database = %fleet.target(),
        holds_merged = merged,
        "joined the fleet: this box's recordings are published to the fleet's catalog, the fleet's holds and policy govern its deletions"
    );
    Ok(())
}

/// Reads the fleet's policy into the gate; says so when this box's
/// `[retention]` differs (`tell`) or the fleet has none.
async fn read_policy(
    fleet: &Fleet,
    gate: &FleetGate,
    config: &Config,
    tell: bool,
) -> Result<(), JoinError> {
    let policy = fleet.policy().await?;
    let mine = Rules::of(&config.retention);
    match &policy {
        None if tell => tracing::warn!(
            "the fleet has no retention policy yet (`recvault fleet init` sets it from a box's \
             [retention]; `recvault retention set` changes it): nothing is deleted by retention"
        ),
        Some(p) if tell && p.rules != mine => tracing::warn!(
            fleet = %p.rules.summary(),
            this_box = %mine.summary(),
            "this box's [retention] differs from the fleet's policy (version {}); following the fleet's",
            p.version
        ),
        _ => {}
    }
    let version = policy.as_ref().map(|p| p.version);
    if let Some(p) = &policy
        && !tell
        && gate.policy_version() != version
    {
        tracing::info!(
            policy = %p.rules.summary(),
            set_by = %p.set_by,
            "the fleet's retention policy changed (version {}); this box follows it from its next sweep",
            p.version
        );
    }
    gate.set_policy_version(version);
    gate.set_rules(policy.map(|p| p.rules));
    Ok(())
}

/// Heartbeats (with an overview every few), the policy re-read with each;
/// joins when it has not yet.
async fn beat_loop(
    fleet: Arc<Fleet>,
    gate: Arc<FleetGate>,
    ledger: Arc<Ledger>,
    config: Arc<Config>,
) {
    let mut n: u32 = 0;
    let mut last = Beat::default();
    let mut down_logged = false;
    loop {
        tokio::time::sleep(fleet.config.heartbeat).await;
        if !gate.joined() {
            match join(&fleet, &gate, &ledger, &config).await {
                Ok(()) => down_logged = false,
                Err(e) => {
                    gate.note(false);
                    if !down_logged || !e.is_retryable() {
                        tracing::warn!(
                            "not joined to the fleet yet (nothing is deleted until then): {e}"
                        );
                        down_logged = true;
                    }
                    continue;
                }
            }
        }
        let fresh = n.is_multiple_of(OVERVIEW_EVERY);
        n = n.wrapping_add(1);
        let beat = next_beat(&ledger, &config, &mut last, fresh).await;
        let was_down = down_logged;
        beat_once(&fleet, &gate, &config, &beat, &mut down_logged).await;
        if fresh && gate.joined() {
            release_merged(&fleet, &ledger).await;
        }
        // Heard from again (or every few beats): what the leader did here.
        if gate.joined() && (fresh || (was_down && !down_logged)) {
            agree(&fleet, &ledger).await;
        }
    }
}

/// Brings this box's ledger to agree with what the fleet's leader deleted
/// of its recordings while it was not heard from (`adopt`).
async fn agree(fleet: &Fleet, ledger: &Arc<Ledger>) {
    if let Err(e) = super::adopt::agree(fleet, ledger).await {
        tracing::warn!(
            "cannot yet agree with what the fleet's leader deleted of this box's recordings: {e}"
        );
    }
}

/// Releases in this box's ledger its own holds (merged when it joined)
/// that the fleet released: the ledger's holds keep its local copies too,
/// and must not outlive the fleet's.
async fn release_merged(fleet: &Fleet, ledger: &Arc<Ledger>) {
    let Ok(released) = fleet.released_merged_holds().await else {
        return;
    };
    if released.is_empty() {
        return;
    }
    let result = ledger
        .call(move |l| {
            let active: Vec<(i64, String)> = l
                .holds()?
                .into_iter()
                .filter(|h| h.released_at.is_none())
                .map(|h| (h.id, h.case_id))
                .collect();
            let mut done = Vec::new();
            for (case, id, by, why) in released {
                if active.contains(&(id, case.clone())) && !done.contains(&case) {
                    let reason = format!("released in the fleet by {by}: {why}");
                    crate::governance::hold::release(
                        l,
                        &Actor::current(),
                        now_secs(),
                        &case,
                        &reason,
                    )?;
                    done.push(case);
                }
            }
            Ok::<_, Error>(done)
        })
        .await;
    match result {
        Ok(done) => {
            for case in done {
                tracing::info!(case = %case, "released this box's own hold: the fleet released it");
            }
        }
        Err(e) => tracing::warn!("cannot release holds the fleet released: {e}"),
    }
}

/// What the next heartbeat says: `last`'s numbers, refreshed; a new
/// overview when `fresh`.
async fn next_beat(
    ledger: &Arc<Ledger>,
    config: &Arc<Config>,
    last: &mut Beat,
    fresh: bool,
) -> Beat {
    let overview = if fresh {
        let c = config.clone();
        ledger.call(move |l| box_overview(l, &c)).await.ok()
    } else {
        None
    };
    if let Some(o) = &overview {
        last.backlog = o.waiting;
        last.last_error = o.last_errors.first().cloned();
    }
    last.outbox = ledger.call(|l| l.outbox_len()).await.unwrap_or(last.outbox);
    Beat {
        overview,
        ..last.clone()
    }
}

/// Writes one heartbeat and re-reads the policy; logs an outage once.
async fn beat_once(
    fleet: &Fleet,
    gate: &FleetGate,
    config: &Config,
    beat: &Beat,
    down_logged: &mut bool,
) {
    let now = now_secs();
    match fleet.heartbeat(now, beat).await {
        Ok(true) => {
            if let Some(m) = &gate_metrics(gate) {
                m.fleet.last_heartbeat.store(now, Ordering::Relaxed);
            }
            gate.note(true);
            if *down_logged {
                tracing::info!("the fleet database answers again");
                *down_logged = false;
            }
            if let Err(e) = read_policy(fleet, gate, config, false).await {
                tracing::debug!("cannot re-read the fleet's policy: {e}");
            }
        }
        Ok(false) => {
            tracing::error!(
                host = %fleet.host,
                "this box's row in the fleet is no longer its own (forgotten, or its name taken \
                 while it was silent): nothing is deleted until it joins again"
            );
            gate.set_joined(false);
        }
        Err(e) => {
            gate.note(false);
            if !*down_logged {
                tracing::warn!(
                    "fleet heartbeat failed (archiving goes on; deletions wait for the fleet's holds): {e}"
                );
                *down_logged = true;
            }
        }
    }
}

fn gate_metrics(gate: &FleetGate) -> Option<Arc<Metrics>> {
    gate.metrics()
}

/// Takes this box's part of the fleet's erasures into its ledger (its
/// erasure chore carries them out) and marks each in the fleet once erased,
/// every two heartbeats.
async fn erase_loop(fleet: Arc<Fleet>, gate: Arc<FleetGate>, ledger: Arc<Ledger>) {
    loop {
        tokio::time::sleep(fleet.config.heartbeat * 2).await;
        if !gate.joined() {
            continue;
        }
        let Ok(mine) = fleet.my_erasures().await else {
            continue;
        };
        let mut by_request: std::collections::BTreeMap<String, Vec<i64>> = Default::default();
        for (request, id) in mine {
            by_request.entry(request).or_default().push(id);
        }
        for (request, ids) in by_request {
            let r = request.clone();
            let erased = ledger.call(move |l| take_erasure(l, &r, &ids)).await;
            match erased {
                Ok(done) if !done.is_empty() => {
                    tracing::info!(request = %request, recordings = done.len(), "erased this box's copies of a fleet erasure");
                    if let Err(e) = fleet.mark_erased(&request, done).await {
                        tracing::warn!("cannot mark erasures done in the fleet (again later): {e}");
                    } else if let Err(e) = pseudonymise(&fleet, &request).await {
                        tracing::warn!(request = %request, "cannot write a fleet erasure's selectors as pseudonyms (again later): {e}");
                    } else if let Ok(Some(p)) = fleet.erasure_progress(&request, now_secs()).await
                        && p.complete
                    {
                        tracing::info!(request = %request, "the fleet erasure is complete: every box with a copy erased it");
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(request = %request, "cannot take a fleet erasure into this box's ledger: {e}")
                }
            }
        }
    }
}

/// The request's selectors as pseudonyms in the fleet (a request an older
/// version recorded plain loses its numbers here, as this box erases).
async fn pseudonymise(fleet: &Fleet, request: &str) -> Result<(), Error> {
    let key = fleet.pseudonym_key()?;
    Ok(fleet.pseudonymise_request(request, &key).await?)
}

/// Reserves in the ledger those of `ids` not yet reserved for `request`;
/// returns those erased already, with when and the name (a pseudonym) the
/// ledger keeps for each now.
fn take_erasure(l: &Ledger, request: &str, ids: &[i64]) -> Result<Vec<(i64, i64, String)>, Error> {
    let mine: std::collections::HashMap<i64, Option<(i64, String)>> = l
        .erasure_of(request)?
        .into_iter()
        .map(|r| {
            let name = crate::recording::key::display_name(&r.name);
            (
                r.id,
                r.erasure.and_then(|e| e.erased_at).map(|at| (at, name)),
            )
        })
        .collect();
    let missing: Vec<Selector> = ids
        .iter()
        .filter(|id| !mine.contains_key(id))
        .map(|id| Selector::Id(*id))
        .collect();
    if !missing.is_empty() {
        let key = crate::governance::requests::key::load_or_create(l.path())?;
        erase::request_confirmed(l, &key, request, &missing, &Actor::current(), now_secs())?;
    }
    Ok(ids
        .iter()
        .filter_map(|id| {
            let (at, name) = mine.get(id).cloned().flatten()?;
            Some((*id, at, name))
        })
        .collect())
}

/// Drains the outbox into the catalog, every [`PUBLISH_POLL`].
async fn publish_loop(
    fleet: Arc<Fleet>,
    gate: Arc<FleetGate>,
    ledger: Arc<Ledger>,
    metrics: Arc<Metrics>,
) {
    let mut failing = false;
    loop {
        tokio::time::sleep(PUBLISH_POLL).await;
        if !gate.joined() {
            continue;
        }
        match fleet.publish_outbox(&ledger, 20).await {
            Ok(n) => {
                if n > 0 {
                    tracing::debug!(recordings = n, "published to the fleet's catalog");
                }
                if failing {
                    tracing::info!("publishing to the fleet's catalog again");
                    failing = false;
                }
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(
                        "cannot publish to the fleet's catalog (changes wait in the outbox): {e}"
                    );
                    failing = true;
                }
            }
        }
        if let Ok(n) = ledger.call(|l| l.outbox_len()).await {
            metrics.fleet.outbox.store(n, Ordering::Relaxed);
        }
    }
}
