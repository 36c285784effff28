//! The daemon's state and the steps of its loop: intake, dispatching due
//! recordings to workers (bounded, oldest first, paused while the store is
//! down), recording what they did, retention sweeps, reloads. Ledger work
//! runs through `Ledger::call`, off the async workers. The loops themselves
//! are in `run.rs`.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::archive::{Archiver, Done};
use super::batch::Outcomes;
use super::outage::{Outage, backoff};
use super::progress::Progress;
use super::run::RunSummary;
use super::systemd::{self, Watchdog};
use super::workers::Workers;
use super::{intake, pressure};
use crate::config::Config;
use crate::error::Error;
use crate::governance::audit::note_policy;
use crate::governance::gate::DeletionGate;
use crate::governance::retention::Sweep;
use crate::ledger::audit::Actor;
use crate::ledger::{Due, Ledger, MAX_RETRY_DELAY, QueueOrder};
use crate::metrics::{self, Metrics};
use crate::recording::key::display_name;
use crate::recording::{Recording, State};
use crate::spool;
use crate::units::{human_bytes, nanos, now_secs};

/// What an archive task ended with: its recordings and their outcomes, or
/// how it ended without them (a panic, an abort at shutdown).
pub(super) type TaskResult = (Vec<i64>, Result<Outcomes, tokio::task::JoinError>);

pub(super) struct Runner {
    pub(super) config: Arc<Config>,
    pub(super) ledger: Arc<Ledger>,
    /// `None` while no store is configured: the daemon then only waits.
    pub(super) archiver: Option<Arc<Archiver>>,
    pub(super) store_name: String,
    pub(super) tasks: Workers<Outcomes>,
    pub(super) busy: HashSet<i64>,
    pub(super) outage: Outage,
    pub(super) summary: RunSummary,
    pub(super) unreadable_logged: HashSet<PathBuf>,
    /// Whether the last look found a spool filesystem under `min_free`.
    pub(super) under_pressure: bool,
    /// Whether the last look found the upload windows closed.
    pub(super) window_closed: bool,
    /// When the next retention sweep is due.
    pub(super) next_sweep: Instant,
    /// When to look for erasures to carry out next (`erasure.rs`).
    pub(super) next_erasure: Instant,
    pub(super) actor: Actor,
    pub(super) metrics: Arc<Metrics>,
    /// Woken when intake finds new recordings (attribution asks at once).
    pub(super) new_recordings: Arc<Notify>,
    /// With `[fleet]`: the shared database every deletion is reserved in
    /// first, and whose retention policy this box follows.
    pub(super) gate: Option<Arc<dyn DeletionGate>>,
    /// What `--once` shows on a terminal.
    pub(super) progress: Arc<Progress>,
}

impl Runner {
    /// A runner with nothing in flight, `archiver` archiving into the store
    /// named `store_name` (none: the daemon only waits).
    pub(super) fn new(
        config: Arc<Config>,
        ledger: Arc<Ledger>,
        (archiver, store_name): (Option<Arc<Archiver>>, String),
        actor: Actor,
        metrics: Arc<Metrics>,
        gate: Option<Arc<dyn DeletionGate>>,
    ) -> Runner {
        Runner {
            config,
            ledger,
            archiver,
            store_name,
            tasks: Workers::new(),
            busy: HashSet::new(),
            outage: Outage::default(),
            summary: RunSummary::default(),
            unreadable_logged: HashSet::new(),
            under_pressure: false,
            window_closed: false,
            next_sweep: Instant::now(),
            next_erasure: Instant::now(),
            actor,
            metrics,
            new_recordings: Arc::new(Notify::new()),
            gate,
            progress: Arc::new(Progress::default()),
        }
    }

    /// Lists every spool directory and brings the ledger up to date, a
    /// batch at a time (nothing held but a batch, whatever the spool's size).
    pub(super) async fn full_intake(&mut self) -> Result<(), Error> {
        let (config, busy, progress) = (
            self.config.clone(),
            self.busy.clone(),
            self.progress.clone(),
        );
        let rescan = self
            .ledger
            .call(move |l| {
                let spool = &config.spool;
                intake::rescan(
                    l,
                    &config.naming,
                    &spool.dirs,
                    &spool.ignore,
                    Some(spool.settle),
                    &busy,
                    &mut |n| progress.listed(n),
                )
            })
            .await?;
        for (dir, e) in &rescan.unreadable {
            if self.unreadable_logged.insert(dir.clone()) {
                tracing::warn!(dir = %dir.display(), "cannot list spool directory: {e}");
            }
        }
        for dir in &rescan.listed {
            if self.unreadable_logged.remove(dir) {
                tracing::info!(dir = %dir.display(), "spool directory readable again");
            }
        }
        let report = rescan.report;
        if report != intake::IntakeReport::default() {
            tracing::debug!(?report, "spool scanned");
        }
        if report.new > 0 {
            self.new_recordings.notify_one();
        }
        self.settle().await
    }

    /// Brings the paths inotify named into the ledger.
    pub(super) async fn intake_paths(&mut self, paths: HashSet<PathBuf>) -> Result<(), Error> {
        let (config, busy) = (self.config.clone(), self.busy.clone());
        let report = self
            .ledger
            .call(move |l| {
                let spool = &config.spool;
                intake::reconcile_paths(
                    l,
                    &config.naming,
                    &spool.dirs,
                    &spool.ignore,
                    &paths,
                    &busy,
                )
            })
            .await?;
        if report.new > 0 {
            self.new_recordings.notify_one();
        }
        self.settle().await
    }

    pub(super) async fn settle(&mut self) -> Result<(), Error> {
        let (settle, busy) = (self.config.spool.settle, self.busy.clone());
        self.ledger
            .call(move |l| intake::settle(l, settle, &busy))
            .await?;
        Ok(())
    }

    /// Recordings settled at or before the mtime returned are due:
    /// `upload_after` ago, oldest first; or, while a spool filesystem is
    /// short of space, every settled one, largest first (what frees the
    /// most space for one recording's fixed cost goes first).
    pub(super) fn upload_cutoff(&mut self) -> (i64, QueueOrder) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let low = match self.config.spool.min_free {
            Some(min_free) => pressure::under_pressure(&self.config.spool.dirs, min_free),
            None => Vec::new(),
        };
        match (low.first(), self.under_pressure) {
            (Some((dir, free)), false) => tracing::warn!(
                dir = %dir.display(),
                free = %human_bytes(*free),
                "spool filesystem below min_free: archiving recordings before upload_after, largest first"
            ),
            (None, true) => tracing::info!("spool free space back above min_free"),
            _ => {}
        }
        self.under_pressure = !low.is_empty();
        if self.under_pressure {
            return (nanos(now), QueueOrder::Largest);
        }
        (
            nanos(now.saturating_sub(self.config.spool.upload_after)),
            QueueOrder::Oldest,
        )
    }

    /// True if an upload window is open now (logging when that changes).
    pub(super) fn window_open(&mut self) -> bool {
        let open = self
            .config
            .store
            .as_ref()
            .is_none_or(|s| s.upload_windows.is_open(chrono::Local::now().time()));
        if open == self.window_closed {
            if open {
                tracing::info!("upload window open: uploads resume");
            } else {
                tracing::info!("outside the upload windows: uploads wait, everything else goes on");
            }
        }
        self.window_closed = !open;
        open
    }

    /// Time until an upload window opens (zero when one is open).
    fn until_window(&self) -> Duration {
        self.config
            .store
            .as_ref()
            .map(|s| s.upload_windows.until_open(chrono::Local::now().time()))
            .unwrap_or_default()
    }

    /// Due recordings, oldest first (largest first under disk pressure), at
    /// most `limit`, that a worker may take now: in a configured spool
    /// directory, not busy, and either needing no upload or with an upload
    /// window open.
    pub(super) async fn due(&mut self, limit: usize) -> Result<Vec<Recording>, Error> {
        let (cutoff, order) = self.upload_cutoff();
        let due = Due {
            upload_cutoff_ns: cutoff,
            now: now_secs(),
            retry_all: false,
        };
        let page = self
            .ledger
            .call(move |l| l.work_page(&due, order, None, limit))
            .await?;
        let uploads = self.window_open();
        let (ready, _) = self.takeable(page, uploads);
        Ok(ready)
    }

    /// Of a page of due recordings, those a worker may take now, and how
    /// many wait only for an upload window.
    pub(super) fn takeable(&self, page: Vec<Recording>, uploads: bool) -> (Vec<Recording>, u64) {
        let dirs = &self.config.spool.dirs;
        // One look per directory, not per recording.
        let mut in_spool: HashMap<PathBuf, bool> = HashMap::new();
        let mut waiting = 0;
        let mut ready = Vec::new();
        for r in page {
            if self.busy.contains(&r.id) {
                continue;
            }
            let parent = r.path.parent().map(Path::to_path_buf).unwrap_or_default();
            let inside = *in_spool
                .entry(parent)
                .or_insert_with(|| spool::in_spool(dirs, &r.path));
            if !inside {
                continue;
            }
            if uploads || r.step() == State::Verified {
                ready.push(r);
            } else {
                waiting += 1;
            }
        }
        (ready, waiting)
    }

    /// Starts a task on `recs`: one recording alone, or a batch of small ones.
    pub(super) fn spawn(&mut self, recs: Vec<Recording>) {
        let Some(archiver) = self.archiver.clone() else {
            return;
        };
        let ids: Vec<i64> = recs.iter().map(|r| r.id).collect();
        self.busy.extend(ids.iter().copied());
        match <[Recording; 1]>::try_from(recs) {
            Ok([rec]) => {
                let id = rec.id;
                self.tasks
                    .spawn(ids, async move { vec![(id, archiver.process(id).await)] });
            }
            Err(recs) => self
                .tasks
                .spawn(ids, async move { archiver.process_batch(recs).await }),
        }
    }

    pub(super) async fn finish(&mut self, (ids, ended): TaskResult) {
        for id in &ids {
            self.busy.remove(id);
        }
        if self.tasks.is_empty() {
            // Nothing in flight: the spool shows nothing of recvault's.
            spool::release_kept_folders();
        }
        let outcomes = match ended {
            Ok(outcomes) => outcomes,
            // Aborted at shutdown: they resume from their recorded state.
            Err(e) if e.is_cancelled() => return,
            // A bug: the recordings wait their back-off like any failure,
            // instead of holding a worker slot forever.
            Err(e) => ids
                .iter()
                .map(|&id| (id, Err(Error::Local(format!("archive step panicked: {e}")))))
                .collect(),
        };
        for (id, result) in outcomes {
            self.finish_one(id, result).await;
        }
    }

    /// Counts and records how one recording's steps ended.
    async fn finish_one(&mut self, id: i64, result: Result<Done, Error>) {
        match result {
            Ok(Done::Archived {
                bytes,
                object_bytes,
            }) => {
                self.summary.archived += 1;
                self.progress.archived(bytes);
                self.summary.bytes += bytes;
                self.summary.object_bytes += object_bytes;
                if self.outage.success()
                    && let Err(e) = self.ledger.call(|l| l.retry_store_failures_now()).await
                {
                    tracing::warn!("cannot reschedule failed uploads: {e}");
                }
            }
            Ok(Done::Waiting(_)) => {}
            Err(error) => self.failed(id, error).await,
        }
    }

    async fn failed(&mut self, id: i64, error: Error) {
        self.summary.failed += 1;
        self.progress.failed();
        metrics::inc(&self.metrics.failures);
        let rec = match self.ledger.call(move |l| l.recording(id)).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(id, "{error}; and cannot read the ledger: {e}");
                return;
            }
        };
        let outage = error.is_store_outage();
        if outage {
            self.outage.failure(&error, &self.store_name);
        } else {
            tracing::warn!(recording = %display_name(&rec.name), state = %rec.state, "{error}");
        }
        if !rec.state.is_local() || rec.state == State::Failed {
            return;
        }
        let cap = if outage {
            Duration::from_secs(600)
        } else {
            MAX_RETRY_DELAY
        };
        let retry = backoff(rec.attempts, Duration::from_secs(5), cap);
        let retry_at = now_secs() + retry.as_secs() as i64;
        let (kind, message, name) = (
            error.failure_kind(),
            error.to_string(),
            display_name(&rec.name),
        );
        let marked = self
            .ledger
            .call(move |l| l.mark_failed(&rec, kind, &message, retry_at))
            .await;
        if let Err(e) = marked {
            tracing::error!(recording = %name, "cannot record failure ({error}): {e}");
        }
    }

    /// Starts archive steps for due recordings while workers are free.
    pub(super) async fn dispatch(&mut self) -> Result<(), Error> {
        if self.archiver.is_none() || self.outage.paused() {
            return Ok(());
        }
        let room = self.room();
        if room == 0 {
            return Ok(());
        }
        let due = self.due(room + self.busy.len()).await?;
        self.spawn_due(due.into_iter().take(room).collect());
        Ok(())
    }

    /// Runs a retention sweep if one is due: a bounded number of batches,
    /// skipping recordings a worker holds; back soon if more are waiting.
    /// `stop` ends the sweep between batches (shutdown); `watchdog` is
    /// pinged after each batch so a long sweep is not taken for a hang.
    pub(super) async fn sweep_if_due(&mut self, stop: &AtomicBool, watchdog: &Watchdog) {
        if Instant::now() < self.next_sweep {
            return;
        }
        let base = &self.config.retention;
        self.next_sweep = Instant::now() + base.sweep_every;
        let policy = match &self.gate {
            None => base.clone(),
            Some(gate) => match gate.policy(base) {
                Some(p) => p,
                None => {
                    tracing::warn!(
                        "retention sweep skipped: the fleet's policy is not known yet (its database not reached since start)"
                    );
                    return;
                }
            },
        };
        let policy = &policy;
        if policy.keeps_everything() {
            return;
        }
        let store = self.archiver.as_ref().map(|a| a.store().clone());
        let sweep = Sweep {
            ledger: &self.ledger,
            store: store.as_deref(),
            policy,
            spool_dirs: &self.config.spool.dirs,
            staging: &self.config.spool.staging,
            host: &self.config.daemon.host,
            playback_cache: self.config.serve.as_ref().map(|s| s.cache_dir.as_path()),
            actor: &self.actor,
            skip: &self.busy,
            max_batches: 20,
            stop: &|| stop.load(Ordering::Relaxed),
            progress: &|| watchdog.tick(),
            gate: self.gate.as_deref(),
        };
        let result = sweep.run(now_secs()).await;
        self.metrics.last_sweep.store(now_secs(), Ordering::Relaxed);
        match result {
            Ok(r) => {
                if let Some(why) = &r.gate_closed {
                    tracing::warn!(
                        held = r.held,
                        "retention deletes nothing while the fleet's holds cannot be checked: {why}"
                    );
                    self.metrics.fleet.gate_closed.store(1, Ordering::Relaxed);
                } else if self.gate.is_some() {
                    self.metrics.fleet.gate_closed.store(0, Ordering::Relaxed);
                }
                if r.deleted + r.failed + r.unarchived > 0 {
                    tracing::info!(deleted = r.deleted, object_bytes = r.object_bytes, local = r.local_removed, held = r.held, unarchived = r.unarchived, failed = r.failed, by_campaign = ?r.by_campaign, "retention sweep");
                }
                if r.more {
                    self.next_sweep = Instant::now() + Duration::from_secs(1);
                }
            }
            Err(e) => {
                tracing::warn!(
                    "retention sweep stopped (next one in {:?}): {e}",
                    policy.sweep_every
                );
            }
        }
    }

    /// When to wake up if nothing happens.
    pub(super) async fn next_wake(&self, next_rescan: Instant) -> Instant {
        let mut wake = next_rescan.min(self.next_sweep).min(self.next_erasure);
        if self.window_closed {
            wake = wake.min(Instant::now() + self.until_window().max(Duration::from_secs(1)));
        }
        if let Some(until) = self.outage.pause_ends() {
            return wake.min(until);
        }
        let (settle, upload_after) = (self.config.spool.settle, self.config.spool.upload_after);
        if let Ok(Some(due)) = self
            .ledger
            .call(move |l| l.next_due(settle, upload_after))
            .await
        {
            // Something already due is waiting for a worker (a finished task
            // wakes us) or for a writer to close it: look again in a while,
            // never in a tight loop.
            let secs = (due - now_secs()).clamp(5, 24 * 3600) as u64;
            wake = wake.min(Instant::now() + Duration::from_secs(secs));
        }
        wake
    }

    /// Re-reads the config file (SIGHUP). A valid one takes effect for new
    /// steps at once; in-flight steps finish with the config they started
    /// with. An invalid one is logged and the running config stays.
    pub(super) async fn reload(&mut self) {
        systemd::reloading();
        let source = self.config.source.clone();
        match self.load_for_reload().await {
            Err(e) => tracing::error!("config reload refused, keeping the running config: {e}"),
            Ok((new, archiver, store_name)) => {
                let (config, actor) = (new.clone(), self.actor.clone());
                let noted = self
                    .ledger
                    .call(move |l| {
                        l.attribute_pending(&config.naming)?;
                        note_policy(l, &config, &actor, now_secs())
                    })
                    .await;
                if let Err(e) = noted {
                    tracing::warn!("cannot record the policy in the audit trail: {e}");
                }
                self.next_sweep = Instant::now();
                self.config = new;
                self.archiver = archiver;
                self.store_name = store_name;
                self.outage = Outage::default();
                tracing::info!(config = %source.display(), store = %self.store_name, "config reloaded");
            }
        }
        systemd::reloaded(&format!("archiving to {}", self.store_name));
    }

    async fn load_for_reload(&self) -> Result<(Arc<Config>, Option<Arc<Archiver>>, String), Error> {
        let new = Config::load(&self.config.source)?;
        if new.ledger.path != self.config.ledger.path {
            return Err(Error::Local(format!(
                "{}: ledger.path cannot change while running; restart recvault",
                self.config.source.display()
            )));
        }
        let new = Arc::new(new);
        let (archiver, name) =
            super::run::build_archiver(&new, &self.ledger, &self.metrics).await?;
        Ok((new, archiver, name))
    }

    pub(super) async fn drain(&mut self, grace: Duration) {
        if self.tasks.is_empty() {
            return;
        }
        tracing::info!(in_flight = self.tasks.len(), "finishing in-flight steps");
        let deadline = tokio::time::sleep(grace);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                joined = self.tasks.next() => match joined {
                    Some(j) => self.finish(j).await,
                    None => return,
                },
                _ = &mut deadline => {
                    tracing::warn!(abandoned = self.tasks.len(), "shutdown grace over; abandoning in-flight steps (they resume at next start)");
                    self.tasks.abort_all();
                    spool::release_kept_folders();
                    return;
                }
            }
        }
    }
}
