//! The daemon: watches the spool, takes in recordings, and runs archive steps
//! with bounded concurrency, oldest first, backing off while the store is down.
//! Its shutdown is a future passed in, so tests can run and stop it in-process.

use std::collections::HashSet;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::archive::{self, Archiver, Done, StepError};
use crate::audit::Actor;
use crate::config::Config;
use crate::intake;
use crate::keys::display_name;
use crate::ledger::{Ledger, LedgerError, now_secs};
use crate::lock::{InstanceLock, LockError};
use crate::recording::State;
use crate::retention::{self, Sweep};
use crate::store::{self, StoreError};
use crate::{pressure, spool};

/// How often a configured spool directory that is missing (or whose watch
/// was lost) is looked for.
const MISSING_DIR_POLL: Duration = Duration::from_secs(5);

/// How `run` behaves.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// One full pass over the spool, then return.
    pub once: bool,
}

/// What a run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunSummary {
    pub archived: u64,
    pub bytes: u64,
    pub object_bytes: u64,
    pub failed: u64,
    /// Left for later because the store was unavailable (`--once`).
    pub not_attempted: u64,
    /// Left for later because no upload window is open (`--once`).
    pub deferred: u64,
}

/// Why the daemon could not run.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("cannot open the store: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Setup(String),
    #[error("no store is configured in {0}: set [store] kind = \"s3\" or \"local\"")]
    NoStore(String),
}

/// Exponential back-off with full jitter: a random wait in
/// `[d/2, d]` where `d = base * 2^attempt`, capped at `max`.
pub fn backoff(attempt: u32, base: Duration, max: Duration) -> Duration {
    let d = base.saturating_mul(1u32 << attempt.min(20)).min(max);
    let half = d / 2;
    half + Duration::from_millis(fastrand::u64(0..=half.as_millis() as u64))
}

/// Tracks a store outage so one unreachable store means one paused queue and
/// a few log lines, not a storm of requests and messages.
#[derive(Debug, Default)]
struct Outage {
    failures: u32,
    until: Option<Instant>,
    last_log: Option<Instant>,
}

impl Outage {
    fn failure(&mut self, error: &StepError, store: &str) {
        self.failures += 1;
        let pause = backoff(
            self.failures,
            Duration::from_secs(1),
            Duration::from_secs(300),
        );
        self.until = Some(Instant::now() + pause);
        let log_due = self
            .last_log
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(300));
        if self.failures == 1 || log_due {
            tracing::warn!(store = %store, failures = self.failures, retry_in = ?pause, "store unavailable, uploads paused: {error}");
            self.last_log = Some(Instant::now());
        }
    }

    fn success(&mut self, ledger: &Ledger) {
        if self.failures > 0 {
            tracing::info!(
                failures = self.failures,
                "store reachable again; resuming uploads"
            );
            if let Err(e) = ledger.retry_store_failures_now() {
                tracing::warn!("cannot reschedule failed uploads: {e}");
            }
        }
        *self = Outage::default();
    }

    fn paused(&self) -> bool {
        self.until.is_some_and(|t| Instant::now() < t)
    }

    /// While recovering from an outage, probe with one upload at a time.
    fn max_in_flight(&self, workers: usize) -> usize {
        if self.failures > 0 { 1 } else { workers }
    }
}

type TaskResult = (i64, Result<Done, StepError>);

struct Runner {
    config: Arc<Config>,
    ledger: Arc<Ledger>,
    /// `None` while no store is configured: the daemon then only waits.
    archiver: Option<Arc<Archiver>>,
    store_name: String,
    tasks: JoinSet<TaskResult>,
    busy: HashSet<i64>,
    outage: Outage,
    summary: RunSummary,
    unreadable_logged: HashSet<PathBuf>,
    /// Whether the last look found a spool filesystem under `min_free`.
    under_pressure: bool,
    /// Whether the last look found the upload windows closed.
    window_closed: bool,
    /// When the next retention sweep is due.
    next_sweep: Instant,
    actor: Actor,
}

impl Runner {
    fn full_intake(&mut self) -> Result<(), DaemonError> {
        let scan = tokio::task::block_in_place(|| {
            spool::scan(&self.config.spool.dirs, &self.config.spool.ignore)
        });
        for (dir, e) in &scan.unreadable {
            if self.unreadable_logged.insert(dir.clone()) {
                tracing::warn!(dir = %dir.display(), "cannot list spool directory: {e}");
            }
        }
        for dir in &scan.listed_dirs {
            if self.unreadable_logged.remove(dir) {
                tracing::info!(dir = %dir.display(), "spool directory readable again");
            }
        }
        let report = tokio::task::block_in_place(|| {
            intake::reconcile(&self.ledger, &self.config.naming, &scan, &self.busy)
        })?;
        if report != intake::IntakeReport::default() {
            tracing::debug!(?report, "spool scanned");
        }
        self.settle()
    }

    fn settle(&mut self) -> Result<(), DaemonError> {
        tokio::task::block_in_place(|| {
            intake::settle(&self.ledger, self.config.spool.settle, &self.busy)
        })?;
        Ok(())
    }

    /// Recordings settled at or before this mtime are due: `upload_after` ago,
    /// or now while a spool filesystem is short of space.
    fn upload_cutoff_ns(&mut self) -> i64 {
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
                free = %crate::report::human_bytes(*free),
                "spool filesystem below min_free: archiving recordings before upload_after, oldest first"
            ),
            (None, true) => tracing::info!("spool free space back above min_free"),
            _ => {}
        }
        self.under_pressure = !low.is_empty();
        if self.under_pressure {
            return now.as_nanos() as i64;
        }
        now.saturating_sub(self.config.spool.upload_after)
            .as_nanos() as i64
    }

    /// True if an upload window is open now (logging when that changes).
    fn window_open(&mut self) -> bool {
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

    fn spawn(&mut self, id: i64) {
        let Some(archiver) = self.archiver.clone() else {
            return;
        };
        self.busy.insert(id);
        self.tasks
            .spawn(async move { (id, archiver.process(id).await) });
    }

    fn finish(&mut self, joined: Result<TaskResult, tokio::task::JoinError>) {
        let (id, result) = match joined {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("archive task failed: {e}");
                return;
            }
        };
        self.busy.remove(&id);
        match result {
            Ok(Done::Archived {
                bytes,
                object_bytes,
            }) => {
                self.summary.archived += 1;
                self.summary.bytes += bytes;
                self.summary.object_bytes += object_bytes;
                self.outage.success(&self.ledger);
            }
            Ok(Done::Waiting(_)) => {}
            Err(error) => self.failed(id, error),
        }
    }

    fn failed(&mut self, id: i64, error: StepError) {
        self.summary.failed += 1;
        let rec = match self.ledger.recording(id) {
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
            crate::ledger::MAX_RETRY_DELAY
        };
        let retry = backoff(rec.attempts, Duration::from_secs(5), cap);
        let retry_at = now_secs() + retry.as_secs() as i64;
        if let Err(e) = self.ledger.mark_failed(&rec, &error.to_string(), retry_at) {
            tracing::error!(recording = %display_name(&rec.name), "cannot record failure ({error}): {e}");
        }
    }

    /// Starts archive steps for due recordings while workers are free.
    fn dispatch(&mut self) -> Result<(), DaemonError> {
        if self.archiver.is_none() || self.outage.paused() {
            return Ok(());
        }
        let limit = self.outage.max_in_flight(self.config.daemon.workers);
        if self.busy.len() >= limit {
            return Ok(());
        }
        let free = limit - self.busy.len();
        let cutoff = self.upload_cutoff_ns();
        let uploads = self.window_open();
        let queue = self
            .ledger
            .work_queue(cutoff, now_secs(), false, free + self.busy.len())?;
        let due: Vec<i64> = queue
            .into_iter()
            .filter(|r| {
                !self.busy.contains(&r.id) && spool::in_spool(&self.config.spool.dirs, &r.path)
            })
            .filter(|r| uploads || needs_no_upload(r))
            .map(|r| r.id)
            .take(free)
            .collect();
        for id in due {
            self.spawn(id);
        }
        Ok(())
    }

    /// Runs a retention sweep if one is due: a bounded number of batches,
    /// skipping recordings a worker holds; back soon if more are waiting.
    async fn sweep_if_due(&mut self) {
        if Instant::now() < self.next_sweep {
            return;
        }
        let policy = &self.config.retention;
        self.next_sweep = Instant::now() + policy.sweep_every;
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
            actor: &self.actor,
            skip: &self.busy,
            max_batches: 20,
        };
        match sweep.run(now_secs()).await {
            Ok(r) => {
                if r.deleted + r.failed > 0 {
                    tracing::info!(deleted = r.deleted, object_bytes = r.object_bytes, local = r.local_removed, held = r.held, failed = r.failed, by_campaign = ?r.by_campaign, "retention sweep");
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
    fn next_wake(&self, next_rescan: Instant) -> Instant {
        let mut wake = next_rescan.min(self.next_sweep);
        if self.window_closed {
            wake = wake.min(Instant::now() + self.until_window().max(Duration::from_secs(1)));
        }
        if let Some(until) = self.outage.until.filter(|_| self.outage.paused()) {
            wake = wake.min(until);
        } else if let Ok(Some(due)) = self
            .ledger
            .next_due(self.config.spool.settle, self.config.spool.upload_after)
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
    async fn reload(&mut self) {
        crate::service::reloading();
        let source = self.config.source.clone();
        match Config::load(&source) {
            Err(e) => tracing::error!("config reload refused, keeping the running config: {e}"),
            Ok(new) if new.ledger.path != self.config.ledger.path => tracing::error!(
                config = %source.display(),
                "config reload refused: ledger.path cannot change while running; restart recvault"
            ),
            Ok(new) => match build_archiver(&new, &self.ledger).await {
                Err(e) => tracing::error!("config reload refused, keeping the running config: {e}"),
                Ok((archiver, store_name)) => {
                    let noted = tokio::task::block_in_place(|| {
                        self.ledger.attribute_pending(&new.naming)?;
                        retention::note_policy(&self.ledger, &new, &self.actor, now_secs())
                    });
                    if let Err(e) = noted {
                        tracing::warn!("cannot record the policy in the audit trail: {e}");
                    }
                    self.next_sweep = Instant::now();
                    self.config = Arc::new(new);
                    self.archiver = archiver;
                    self.store_name = store_name;
                    self.outage = Outage::default();
                    tracing::info!(config = %source.display(), store = %self.store_name, "config reloaded");
                }
            },
        }
        crate::service::reloaded(&format!("archiving to {}", self.store_name));
    }

    async fn drain(&mut self, grace: Duration) {
        if self.tasks.is_empty() {
            return;
        }
        tracing::info!(in_flight = self.tasks.len(), "finishing in-flight steps");
        let deadline = tokio::time::sleep(grace);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                joined = self.tasks.join_next() => match joined {
                    Some(j) => self.finish(j),
                    None => return,
                },
                _ = &mut deadline => {
                    tracing::warn!(abandoned = self.tasks.len(), "shutdown grace over; abandoning in-flight steps (they resume at next start)");
                    self.tasks.abort_all();
                    return;
                }
            }
        }
    }
}

/// Steps that never touch the store (the local delete of a verified
/// recording) go on outside the upload windows.
fn needs_no_upload(rec: &crate::recording::Recording) -> bool {
    let step = if rec.state == State::Failed {
        rec.resume_state
    } else {
        Some(rec.state)
    };
    step == Some(State::Verified)
}

/// Opens the configured store and an archiver for it; `None` without a store.
async fn build_archiver(
    config: &Config,
    ledger: &Arc<Ledger>,
) -> Result<(Option<Arc<Archiver>>, String), DaemonError> {
    let Some(store_config) = config.store.clone() else {
        return Ok((None, "no store".to_string()));
    };
    let store = store::open(&store_config).await?;
    std::fs::create_dir_all(&config.spool.staging).map_err(|e| {
        DaemonError::Setup(format!(
            "cannot create staging {}: {e}",
            config.spool.staging.display()
        ))
    })?;
    let name = store.describe();
    let archiver = Archiver::new(
        Arc::new(config.clone()),
        store_config,
        ledger.clone(),
        store,
    );
    Ok((Some(Arc::new(archiver)), name))
}

/// Runs the daemon (or one pass with `--once`) until `shutdown` resolves.
/// Each message on `reload` re-reads the config file.
pub async fn run(
    config: Config,
    options: RunOptions,
    shutdown: impl Future<Output = ()>,
    reload: mpsc::UnboundedReceiver<()>,
) -> Result<RunSummary, DaemonError> {
    let _lock = InstanceLock::acquire(&config.ledger.path)?;
    let ledger = Arc::new(Ledger::open(&config.ledger.path)?);
    if options.once && config.store.is_none() {
        return Err(DaemonError::NoStore(config.source.display().to_string()));
    }
    let (archiver, store_name) = build_archiver(&config, &ledger).await?;
    if archiver.is_some() {
        let cleaned = archive::clean_staging(&config, &ledger)
            .map_err(|e| DaemonError::Setup(e.to_string()))?;
        if cleaned > 0 {
            tracing::info!(
                files = cleaned,
                "removed staging leftovers of interrupted steps"
            );
        }
    }
    let actor = Actor::current();
    ledger.attribute_pending(&config.naming)?;
    retention::note_policy(&ledger, &config, &actor, now_secs())?;
    let config = Arc::new(config);
    let mut runner = Runner {
        config: config.clone(),
        ledger,
        archiver,
        store_name,
        tasks: JoinSet::new(),
        busy: HashSet::new(),
        outage: Outage::default(),
        summary: RunSummary::default(),
        unreadable_logged: HashSet::new(),
        under_pressure: false,
        window_closed: false,
        next_sweep: Instant::now(),
        actor,
    };
    let backups = match &config.store {
        Some(store_config) if !options.once => {
            spawn_backups(&config, store_config, &runner.ledger).await?
        }
        _ => None,
    };
    let scrub = match &config.store {
        Some(store_config) if !options.once => {
            spawn_scrub(&config, store_config, &runner.ledger).await?
        }
        _ => None,
    };
    tokio::pin!(shutdown);
    let result = if options.once {
        run_once(&mut runner, shutdown).await
    } else {
        run_daemon(&mut runner, shutdown, reload).await
    };
    // A backup cut short leaves only a temp file; the next one replaces it.
    // A scrub cut short has only read; the next one starts afresh.
    for task in [backups, scrub].into_iter().flatten() {
        task.abort();
    }
    result?;
    Ok(runner.summary)
}

/// Starts the slow scrub (`[store] scrub_every`), if on: every interval it
/// re-reads `scrub_sample` random archived objects and checks their SHA-256
/// against the ledger, logging any missing or damaged one as an error.
async fn spawn_scrub(
    config: &Config,
    store_config: &crate::config::StoreConfig,
    ledger: &Arc<Ledger>,
) -> Result<Option<tokio::task::JoinHandle<()>>, DaemonError> {
    let Some(every) = store_config.scrub_every else {
        return Ok(None);
    };
    let store = store::open(store_config).await?;
    let (ledger, sample) = (ledger.clone(), store_config.scrub_sample);
    let scratch = config.spool.staging.join("scrub");
    Ok(Some(tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let mut problems = Vec::new();
            let selection = crate::verify::Selection {
                sample: Some(sample),
                since: None,
            };
            match crate::verify::verify(&ledger, &*store, selection, &scratch, false, &mut problems)
                .await
            {
                Ok(r) if r.missing + r.mismatched > 0 => {
                    for line in String::from_utf8_lossy(&problems).lines() {
                        tracing::error!("scrub: {line}");
                    }
                    tracing::error!(
                        checked = r.checked,
                        missing = r.missing,
                        mismatched = r.mismatched,
                        "scrub found missing or damaged objects; run `recvault verify --all`"
                    );
                }
                Ok(r) => {
                    tracing::debug!(checked = r.checked, unreadable = r.unreadable, "scrub done")
                }
                Err(e) => tracing::warn!("scrub stopped: {e}"),
            }
        }
    })))
}

/// Starts the ledger-backup schedule (`[ledger] backup_every`), if on.
/// It keeps the store and settings it started with until the next restart.
async fn spawn_backups(
    config: &Config,
    store_config: &crate::config::StoreConfig,
    ledger: &Arc<Ledger>,
) -> Result<Option<tokio::task::JoinHandle<()>>, DaemonError> {
    let Some(every) = config.ledger.backup_every else {
        return Ok(None);
    };
    let store = store::open(store_config).await?;
    Ok(Some(tokio::spawn(crate::backup::schedule(
        ledger.clone(),
        store,
        crate::backup::backup_prefix(&store_config.prefix, &config.daemon.host),
        every,
        config.ledger.backup_keep,
        config.spool.staging.clone(),
        crate::backup::HoldCopies {
            store_prefix: store_config.prefix.clone(),
            host: config.daemon.host.clone(),
        },
    ))))
}

async fn run_once(
    runner: &mut Runner,
    mut shutdown: std::pin::Pin<&mut impl Future<Output = ()>>,
) -> Result<(), DaemonError> {
    runner.full_intake()?;
    let cutoff = runner.upload_cutoff_ns();
    let uploads = runner.window_open();
    let queue = runner
        .ledger
        .work_queue(cutoff, now_secs(), true, usize::MAX >> 1)?;
    let dirs = runner.config.spool.dirs.clone();
    let (queue, deferred): (Vec<_>, Vec<_>) = queue
        .into_iter()
        .filter(|r| spool::in_spool(&dirs, &r.path))
        .partition(|r| uploads || needs_no_upload(r));
    runner.summary.deferred = deferred.len() as u64;
    let mut queue = queue.into_iter().map(|r| r.id);
    let mut stopping = false;
    loop {
        let outage = runner.outage.failures > 0;
        while !stopping && !outage && runner.busy.len() < runner.config.daemon.workers {
            match queue.next() {
                Some(id) => runner.spawn(id),
                None => break,
            }
        }
        if runner.tasks.is_empty() {
            break;
        }
        tokio::select! {
            joined = runner.tasks.join_next() => if let Some(j) = joined { runner.finish(j) },
            _ = &mut shutdown, if !stopping => {
                stopping = true;
                runner.drain(runner.config.daemon.shutdown_grace).await;
            }
        }
    }
    runner.summary.not_attempted = queue.count() as u64;
    Ok(())
}

async fn run_daemon(
    runner: &mut Runner,
    mut shutdown: std::pin::Pin<&mut impl Future<Output = ()>>,
    mut reload: mpsc::UnboundedReceiver<()>,
) -> Result<(), DaemonError> {
    let (tx, mut events) = mpsc::unbounded_channel::<Option<PathBuf>>();
    let mut watcher =
        notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
            Ok(event) => {
                if event.need_rescan() {
                    let _ = tx.send(None);
                }
                if !matches!(
                    event.kind,
                    EventKind::Access(
                        notify::event::AccessKind::Open(_) | notify::event::AccessKind::Read
                    )
                ) {
                    for path in event.paths {
                        let _ = tx.send(Some(path));
                    }
                }
            }
            Err(_) => {
                let _ = tx.send(None);
            }
        })
        .map_err(|e| DaemonError::Setup(format!("cannot start the spool watcher: {e}")))?;
    let mut watched: HashSet<PathBuf> = HashSet::new();
    let mut next_rescan = Instant::now();
    let mut pending: HashSet<PathBuf> = HashSet::new();
    let mut watchdog = crate::service::Watchdog::from_env();
    if runner.archiver.is_none() {
        tracing::warn!(config = %runner.config.source.display(), "no store configured: nothing will be archived until [store] is set and the config reloaded");
    } else {
        tracing::info!(dirs = ?runner.config.spool.dirs, store = %runner.store_name, workers = runner.config.daemon.workers, "recvault running");
    }
    crate::service::ready(&format!("archiving to {}", runner.store_name));
    loop {
        watchdog.tick();
        // An event naming a spool directory itself (deleted, moved away):
        // its inotify watch is gone, so look again and re-watch it.
        for dir in &runner.config.spool.dirs {
            if pending.remove(dir) {
                watched.remove(dir);
                next_rescan = Instant::now();
            }
        }
        if Instant::now() >= next_rescan {
            for dir in watched.clone() {
                if !runner.config.spool.dirs.contains(&dir) {
                    let _ = watcher.unwatch(&dir);
                    watched.remove(&dir);
                }
            }
            for dir in &runner.config.spool.dirs {
                if !watched.contains(dir) && dir.is_dir() {
                    let _ = watcher.unwatch(dir);
                    match watcher.watch(dir, RecursiveMode::NonRecursive) {
                        Ok(()) => {
                            watched.insert(dir.clone());
                        }
                        Err(e) => {
                            tracing::warn!(dir = %dir.display(), "cannot watch spool directory (rescans still find files): {e}")
                        }
                    }
                } else if !dir.is_dir() {
                    watched.remove(dir);
                }
            }
            runner.full_intake()?;
            pending.clear();
            // A missing directory is looked for often: files written once it
            // is back must not wait a whole rescan interval.
            let all_watched = runner.config.spool.dirs.iter().all(|d| watched.contains(d));
            let interval = if all_watched {
                runner.config.spool.rescan
            } else {
                runner.config.spool.rescan.min(MISSING_DIR_POLL)
            };
            next_rescan = Instant::now() + interval;
        } else if !pending.is_empty() {
            let paths = std::mem::take(&mut pending);
            let config = runner.config.clone();
            tokio::task::block_in_place(|| {
                intake::reconcile_paths(
                    &runner.ledger,
                    &config.naming,
                    &config.spool.dirs,
                    &config.spool.ignore,
                    &paths,
                    &runner.busy,
                )
            })?;
            runner.settle()?;
        } else {
            runner.settle()?;
        }
        runner.dispatch()?;
        tokio::select! {
            _ = &mut shutdown => break,
            _ = runner.sweep_if_due() => {}
        }
        let mut wake = runner.next_wake(next_rescan);
        if let Some(deadline) = watchdog.deadline() {
            wake = wake.min(deadline);
        }
        tokio::select! {
            _ = &mut shutdown => break,
            Some(()) = reload.recv() => {
                runner.reload().await;
                next_rescan = Instant::now();
            }
            joined = runner.tasks.join_next(), if !runner.tasks.is_empty() => {
                if let Some(j) = joined { runner.finish(j) }
            }
            event = events.recv() => {
                match event {
                    Some(Some(path)) => { pending.insert(path); }
                    Some(None) => next_rescan = Instant::now(),
                    None => {}
                }
                // Gather a burst of events into one pass.
                tokio::time::sleep(Duration::from_millis(200)).await;
                while let Ok(more) = events.try_recv() {
                    match more {
                        Some(path) => { pending.insert(path); }
                        None => next_rescan = Instant::now(),
                    }
                }
            }
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
    }
    crate::service::stopping();
    tracing::info!("shutting down: no new work taken");
    runner.drain(runner.config.daemon.shutdown_grace).await;
    tracing::info!(archived = runner.summary.archived, "stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_within_bounds() {
        let base = Duration::from_secs(1);
        let max = Duration::from_secs(300);
        for attempt in 0..30 {
            let d = backoff(attempt, base, max);
            let cap = base.saturating_mul(1 << attempt.min(20)).min(max);
            assert!(
                d >= cap / 2 && d <= cap,
                "attempt {attempt}: {d:?} vs {cap:?}"
            );
        }
        assert!(backoff(30, base, max) <= max);
    }
}
