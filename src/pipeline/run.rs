//! Running the pipeline: the daemon (`recvault run`), or one pass over the
//! spool (`--once`). Its shutdown is a future passed in, so tests can run and
//! stop it in-process; each message on `reload` re-reads the config file.

use std::collections::HashSet;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::archive::Archiver;
use super::progress::ProgressLine;
use super::runner::Runner;
use super::services::Services;
use super::watch::{Seen, SpoolWatch};
use super::{background, staging, systemd};
use crate::config::Config;
use crate::error::Error;
use crate::governance::audit::note_policy;
use crate::governance::gate::DeletionGate;
use crate::ledger::Ledger;
use crate::ledger::audit::Actor;
use crate::ledger::lock::InstanceLock;
use crate::metrics::Metrics;
use crate::spool;
use crate::store::{self, Store, metered::MeteredStore};
use crate::units::now_secs;

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

/// Opens the configured store and an archiver for it; `None` without a store.
pub(super) async fn build_archiver(
    config: &Arc<Config>,
    ledger: &Arc<Ledger>,
    metrics: &Arc<Metrics>,
) -> Result<(Option<Arc<Archiver>>, String), Error> {
    let Some(store_config) = config.store.clone() else {
        return Ok((None, "no store".to_string()));
    };
    let store = store::open(&store_config).await?;
    let store: Arc<dyn Store> = Arc::new(MeteredStore::new(store, metrics.clone()));
    std::fs::create_dir_all(&config.spool.staging).map_err(Error::io(&config.spool.staging))?;
    let name = store.describe();
    let archiver = Archiver::new(
        config.clone(),
        store_config,
        ledger.clone(),
        store,
        metrics.clone(),
    );
    Ok((Some(Arc::new(archiver)), name))
}

/// Runs the daemon (or one pass with `--once`) until `shutdown` resolves.
/// Each message on `reload` re-reads the config file.
pub async fn run(
    config: Config,
    options: RunOptions,
    mount: Option<crate::serve::Mount>,
    shutdown: impl Future<Output = ()>,
    reload: mpsc::UnboundedReceiver<()>,
) -> Result<RunSummary, Error> {
    let _lock = InstanceLock::acquire(&config.ledger.path)?;
    let metrics = Arc::new(Metrics::default());
    run_locked(config, options, None, mount, metrics, shutdown, reload).await
}

/// Like [`run`], for a caller that already holds the instance lock, with
/// `gate` (the fleet's database) reserving every deletion first.
pub async fn run_locked(
    config: Config,
    options: RunOptions,
    gate: Option<Arc<dyn DeletionGate>>,
    mount: Option<crate::serve::Mount>,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
    reload: mpsc::UnboundedReceiver<()>,
) -> Result<RunSummary, Error> {
    let ledger = Arc::new(Ledger::open(&config.ledger.path)?);
    if options.once && config.store.is_none() {
        return Err(Error::NoStore(config.source.clone()));
    }
    let config = Arc::new(config);
    let (archiver, store_name) = build_archiver(&config, &ledger, &metrics).await?;
    let actor = Actor::current();
    recover_interrupted(&ledger, &config, &actor, archiver.is_some()).await?;
    let mut runner = Runner::new(
        config.clone(),
        ledger,
        (archiver, store_name),
        actor,
        metrics,
        gate,
    );
    let (mut chores, services) = start_background(&config, options, &runner, mount).await?;
    // Beside the work, not before it (see `reserve_ids`).
    let reservation = start_reserving_ids(&runner, !options.once);
    tokio::pin!(shutdown);
    let result = if options.once {
        let result = run_once(&mut runner, shutdown).await;
        // One bounded attempt: the run ends once it has ended.
        let _ = futures_util::future::OptionFuture::from(reservation).await;
        result
    } else {
        chores.extend(reservation);
        run_daemon(&mut runner, shutdown, reload).await
    };
    if let Some(services) = services {
        services.stop(config.daemon.shutdown_grace).await;
    }
    for task in chores {
        task.abort();
    }
    result?;
    Ok(runner.summary)
}

/// The store's id reservation for `runner`'s run, started as a task of its
/// own (`keep`: again whenever due, as a daemon does); none without a store.
fn start_reserving_ids(runner: &Runner, keep: bool) -> Option<tokio::task::JoinHandle<()>> {
    let (archiver, store_config) = (runner.archiver.as_ref()?, runner.config.store.as_ref()?);
    Some(background::reserve_ids(
        &runner.config,
        store_config,
        &runner.ledger,
        archiver.store().clone(),
        keep,
    ))
}

/// Before any work: puts back files whose removal a crash cut short, cleans
/// staging leftovers, attributes what waits and notes the policy in force.
async fn recover_interrupted(
    ledger: &Arc<Ledger>,
    config: &Arc<Config>,
    actor: &Actor,
    has_store: bool,
) -> Result<(), Error> {
    let (setup_config, setup_actor) = (config.clone(), actor.clone());
    ledger
        .call(move |l| {
            // Removals cut short by a crash: their files go back to the spool
            // (the instance lock keeps any other removal from running now).
            for back in spool::recover_removals(&setup_config.spool.dirs) {
                match back {
                    Ok(path) => tracing::info!(path = %path.display(), "put back a file whose removal was interrupted"),
                    Err(e) => tracing::error!("cannot put back a file whose removal was interrupted: {e}"),
                }
            }
            if has_store {
                let cleaned = staging::clean(&setup_config.spool.staging, l)?;
                if cleaned > 0 {
                    tracing::info!(
                        files = cleaned,
                        "removed staging leftovers of interrupted steps"
                    );
                }
            }
            l.attribute_pending(&setup_config.naming)?;
            note_policy(l, &setup_config, &setup_actor, now_secs())?;
            Ok::<_, Error>(())
        })
        .await
}

/// The daemon's chores (ledger backups, scrub) and services (playback,
/// metrics, attribution); neither with `--once`.
async fn start_background(
    config: &Arc<Config>,
    options: RunOptions,
    runner: &Runner,
    mount: Option<crate::serve::Mount>,
) -> Result<(Vec<JoinHandle<()>>, Option<Services>), Error> {
    let mut chores = Vec::new();
    if let Some(store_config) = config.store.as_ref().filter(|_| !options.once) {
        chores.extend(background::spawn_backups(config, store_config, &runner.ledger).await?);
        chores.extend(background::spawn_scrub(config, store_config, &runner.ledger).await?);
    }
    let services = match options.once {
        true => None,
        false => {
            let store = runner.archiver.as_ref().map(|a| a.store().clone());
            let wake = runner.new_recordings.clone();
            let (ledger, metrics) = (&runner.ledger, &runner.metrics);
            Some(Services::start(config, ledger, metrics, store, wake, mount).await?)
        }
    };
    Ok((chores, services))
}

async fn run_once(
    runner: &mut Runner,
    mut shutdown: Pin<&mut impl Future<Output = ()>>,
) -> Result<(), Error> {
    let _line = ProgressLine::start(&runner.progress);
    runner.full_intake().await?;
    give_back_memory(runner).await?;
    let mut pass = runner.start_pass().await?;
    let mut stopping = false;
    loop {
        let outage = runner.outage.ongoing();
        while !stopping && !outage && runner.room() > 0 {
            let room = runner.room();
            match runner.next_task_in_pass(&mut pass, room).await? {
                Some(task) => runner.spawn(task),
                None => break,
            }
        }
        if runner.tasks.is_empty() {
            break;
        }
        tokio::select! {
            joined = runner.tasks.next() => if let Some(j) = joined { runner.finish(j).await },
            _ = &mut shutdown, if !stopping => {
                stopping = true;
                runner.drain(runner.config.daemon.shutdown_grace).await;
            }
        }
    }
    // What the pass did not reach (an outage, a shutdown): counted, a page at a time.
    let mut not_attempted = 0;
    while runner.next_in_pass(&mut pass).await?.is_some() {
        not_attempted += 1;
    }
    runner.summary.not_attempted = not_attempted;
    runner.summary.deferred = pass.deferred;
    Ok(())
}

/// Runs a retention sweep if one is due. A shutdown meanwhile stops it
/// between batches — a batch under way is deleted and recorded, never cut
/// short. Returns true if shutdown was asked for.
async fn sweep_unless_shutdown(
    runner: &mut Runner,
    shutdown: &mut Pin<&mut impl Future<Output = ()>>,
    watchdog: &systemd::Watchdog,
) -> bool {
    let stop = AtomicBool::new(false);
    let sweep = runner.sweep_if_due(&stop, watchdog);
    tokio::pin!(sweep);
    let mut stopping = false;
    loop {
        tokio::select! {
            _ = &mut sweep => return stopping,
            _ = shutdown.as_mut(), if !stopping => {
                stopping = true;
                stop.store(true, Ordering::Relaxed);
            }
        }
    }
}

async fn run_daemon(
    runner: &mut Runner,
    mut shutdown: Pin<&mut impl Future<Output = ()>>,
    mut reload: mpsc::UnboundedReceiver<()>,
) -> Result<(), Error> {
    let mut watch = SpoolWatch::start()?;
    let mut next_rescan = Instant::now();
    let mut pending: HashSet<PathBuf> = HashSet::new();
    let watchdog = systemd::Watchdog::from_env();
    announce(runner);
    loop {
        watchdog.tick();
        intake(runner, &mut watch, &mut pending, &mut next_rescan).await?;
        runner.dispatch().await?;
        runner.erase_if_due().await;
        if sweep_unless_shutdown(runner, &mut shutdown, &watchdog).await {
            break;
        }
        let mut wake = runner.next_wake(next_rescan).await;
        if let Some(deadline) = watchdog.deadline() {
            wake = wake.min(deadline);
        }
        tokio::select! {
            _ = &mut shutdown => break,
            Some(()) = reload.recv() => {
                runner.reload().await;
                next_rescan = Instant::now();
            }
            joined = runner.tasks.next(), if !runner.tasks.is_empty() => {
                if let Some(j) = joined { runner.finish(j).await }
            }
            event = watch.events.recv() => {
                gather_burst(event, &mut watch, &mut pending, &mut next_rescan).await;
            }
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
    }
    systemd::stopping();
    tracing::info!("shutting down: no new work taken");
    runner.drain(runner.config.daemon.shutdown_grace).await;
    tracing::info!(archived = runner.summary.archived, "stopped");
    Ok(())
}

/// Logs what the daemon archives to (or that it archives nothing) and tells
/// systemd it is ready.
fn announce(runner: &Runner) {
    if runner.archiver.is_none() {
        tracing::warn!(config = %runner.config.source.display(), "no store configured: nothing will be archived until [store] is set and the config reloaded");
    } else {
        tracing::info!(dirs = ?runner.config.spool.dirs, store = %runner.store_name, workers = runner.config.daemon.workers, "recvault running");
    }
    systemd::ready(&format!("archiving to {}", runner.store_name));
}

/// Gives back what a look at the whole spool filled (the ledger's page
/// caches, the heap's free pages): a rescan of a big spool touches every
/// page of its rows. `run --once` calls it before archiving too: over
/// 100 k recordings its peak RSS was 63 MB without, 53 MB with.
async fn give_back_memory(runner: &Runner) -> Result<(), Error> {
    runner
        .ledger
        .call(|l| {
            l.release_memory();
            Ok::<_, crate::ledger::LedgerError>(())
        })
        .await?;
    Ok(())
}

/// Takes in the spool: everything when a rescan is due, else the paths
/// events named, else settles what is known.
async fn intake(
    runner: &mut Runner,
    watch: &mut SpoolWatch,
    pending: &mut HashSet<PathBuf>,
    next_rescan: &mut Instant,
) -> Result<(), Error> {
    // An event naming a spool directory itself (deleted, moved away):
    // its inotify watch is gone, so look again and re-watch it.
    for dir in &runner.config.spool.dirs {
        if pending.remove(dir) {
            watch.lost(dir);
            *next_rescan = Instant::now();
        }
    }
    if Instant::now() >= *next_rescan {
        let all_watched = watch.rewatch(&runner.config.spool.dirs);
        runner.full_intake().await?;
        give_back_memory(runner).await?;
        pending.clear();
        // A missing directory is looked for often: files written once it
        // is back must not wait a whole rescan interval.
        let interval = if all_watched {
            runner.config.spool.rescan
        } else {
            runner.config.spool.rescan.min(MISSING_DIR_POLL)
        };
        *next_rescan = Instant::now() + interval;
    } else if !pending.is_empty() {
        runner.intake_paths(std::mem::take(pending)).await?;
    } else {
        runner.settle().await?;
    }
    Ok(())
}

/// Notes `event` and the burst of events that follows it, for one pass.
async fn gather_burst(
    event: Option<Seen>,
    watch: &mut SpoolWatch,
    pending: &mut HashSet<PathBuf>,
    next_rescan: &mut Instant,
) {
    let mut note = |seen| match seen {
        Seen::Path(path) => {
            pending.insert(path);
        }
        Seen::Rescan => *next_rescan = Instant::now(),
    };
    if let Some(seen) = event {
        note(seen);
    }
    // Gather a burst of events into one pass.
    tokio::time::sleep(Duration::from_millis(200)).await;
    while let Ok(more) = watch.events.try_recv() {
        note(more);
    }
}
