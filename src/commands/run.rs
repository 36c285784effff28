//! `recvault run [--once]`: the daemon, stopped by SIGTERM/SIGINT (a second
//! one aborts) and reloaded by SIGHUP; or one pass over the spool.

use std::io::Write;
use std::process::ExitCode;

use std::sync::Arc;

use crate::catalog::Catalog;
use crate::config::Config;
use crate::error::Error;
use crate::governance::gate::DeletionGate;
use crate::ledger::lock::InstanceLock;
use crate::metrics::Metrics;
use crate::pipeline::{self, RunOptions};
use crate::units::human_bytes;

pub(super) async fn run(config: Config, once: bool) -> Result<ExitCode, Error> {
    // The daemon would mix VICIdial's legs (not `--once`): never beside the script.
    if !once {
        super::move_mix::refuse_if_cron_runs_script(&config)?;
    }
    // The compliance console, mounted on [serve]'s listener once the daemon
    // has its ledger and store.
    // With [fleet] it answers for every box, through the fleet's catalog.
    let fleet = if config.console.is_some() && config.serve.is_some() {
        crate::fleet::Fleet::of(&config)?
    } else {
        None
    };
    let mount = config
        .console
        .as_ref()
        .filter(|_| config.serve.is_some())
        .map(|_| {
            crate::console::mount(move |local| -> Arc<dyn Catalog> {
                match fleet {
                    Some(fleet) => Arc::new(crate::fleet::FleetCatalog::new(fleet, local)),
                    None => Arc::new(local),
                }
            })
        });
    let summary = if config.fleet.is_some() && !once {
        run_in_fleet(config, mount).await?
    } else {
        pipeline::run(
            config,
            RunOptions { once },
            mount,
            shutdown_signal(),
            reload_signal(),
        )
        .await?
    };
    if !once {
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = super::stdout();
    writeln!(
        out,
        "archived {} recordings ({} -> {}), {} failed, {} not attempted, {} waiting for an upload window",
        summary.archived,
        human_bytes(summary.bytes),
        human_bytes(summary.object_bytes),
        summary.failed,
        summary.not_attempted,
        summary.deferred
    )?;
    super::exit(summary.failed == 0 && summary.not_attempted == 0)
}

/// The daemon as a fleet member: the instance lock first (one daemon per
/// ledger joins), then the fleet's side (refused if another live box has
/// this name), then the pipeline with the fleet's gate on every deletion.
async fn run_in_fleet(
    config: Config,
    mount: Option<crate::serve::Mount>,
) -> Result<pipeline::RunSummary, Error> {
    let _lock = InstanceLock::acquire(&config.ledger.path)?;
    let (shutdown, reload) = (shutdown_signal(), reload_signal());
    let shared = Arc::new(config.clone());
    let metrics = Arc::new(Metrics::default());
    let member = crate::fleet::daemon::start(&shared, &metrics)
        .await?
        .expect("[fleet] is enabled");
    let gate: Arc<dyn DeletionGate> = member.gate.clone();
    let result = pipeline::run_locked(
        config,
        RunOptions { once: false },
        Some(gate),
        mount,
        metrics,
        shutdown,
        reload,
    )
    .await;
    member.stop().await;
    result
}

/// A message for every SIGHUP: re-read the config.
fn reload_signal() -> tokio::sync::mpsc::UnboundedReceiver<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    if let Ok(mut hup) = signal(SignalKind::hangup()) {
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                if tx.send(()).is_err() {
                    break;
                }
            }
        });
    }
    rx
}

/// Resolves on the first SIGTERM or SIGINT; a second one exits at once.
/// The handlers are installed here, before the daemon starts up, so a
/// signal during a long start-up (a big spool's first scan) is not lost to
/// the default action.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let handlers = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    async move {
        let (Ok(mut term), Ok(mut int)) = handlers else {
            std::future::pending::<()>().await;
            return;
        };
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        tracing::info!("signal received; stopping (send again to abort)");
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
            eprintln!("recvault: second signal; aborting (interrupted steps resume at next start)");
            std::process::exit(130);
        });
    }
}
