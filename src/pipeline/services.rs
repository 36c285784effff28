//! The daemon's companions beside the archive loop, started and stopped
//! with it: attribution from VICIdial's database, listen links written into
//! `recording_log.location`, VICIdial's GDPR purges carried out, its
//! recording legs mixed (`move_mix`), and the HTTP server. Each owns a cancellation token (a child of one the daemon
//! cancels at shutdown); none of them is on the archive's path, and none
//! failing stops archiving.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::attribution;
use super::location::Rewriter;
use super::purges::Purges;
use crate::config::{Config, VicidialConfig};
use crate::error::Error;
use crate::ledger::Ledger;
use crate::ledger::audit::Actor;
use crate::metrics::Metrics;
use crate::serve::link::{self, Signer};
use crate::serve::{Mount, MountParts, Parts, Server};
use crate::store::Store;
use crate::vicidial::db::{DbOptions, VicidialDb};
use crate::vicidial::move_mix::MoveMix;

/// The running companions.
pub(super) struct Services {
    stop: CancellationToken,
    tasks: Vec<(&'static str, JoinHandle<()>)>,
    db: Option<Arc<VicidialDb>>,
    server: Option<Server>,
}

/// The tasks that write to VICIdial's database: GDPR purges carried out,
/// listen links written into `recording_log.location`, and the legs mixed
/// (whose locations it writes).
fn vicidial_writers(
    config: &Config,
    vc: &VicidialConfig,
    ledger: &Arc<Ledger>,
    db: &Arc<VicidialDb>,
    stop: &CancellationToken,
) -> Result<Vec<(&'static str, JoinHandle<()>)>, Error> {
    let mut tasks = Vec::new();
    if let Some(mm) = &vc.move_mix {
        let settle = config.spool.settle;
        let mover = MoveMix::new(mm.clone(), settle, db.clone(), ledger.clone());
        let task = super::move_mix::run(Arc::new(mover), config.spool.rescan, stop.child_token());
        tasks.push(("move_mix", tokio::spawn(task)));
    }
    // In a fleet the leader reads the queue for every box and marks a row
    // only once the fleet's erasure is complete (`fleet::purges`).
    if let Some(every) = vc.purge_queue.filter(|_| config.fleet.is_none()) {
        let purges = Purges {
            ledger: ledger.clone(),
            db: db.clone(),
            ledger_path: config.ledger.path.clone(),
            actor: Actor::current(),
            every,
        };
        tasks.push(("GDPR purges", tokio::spawn(purges.run(stop.child_token()))));
    }
    match (vc.rewrite_locations, &config.serve, link::base_url(config)) {
        (true, Some(serve), Some(base)) => {
            let rewriter = Rewriter {
                ledger: ledger.clone(),
                db: db.clone(),
                config: vc.clone(),
                signer: Signer::load(&serve.key_file)?,
                base,
            };
            let task = tokio::spawn(rewriter.run(stop.child_token()));
            tasks.push(("listen links", task));
        }
        (true, None, _) => tracing::warn!(
            "[vicidial] rewrite_locations is on but [serve] listen is not set: recording_log.location is left alone"
        ),
        _ => {}
    }
    Ok(tasks)
}

impl Services {
    /// Starts what the config asks for.
    pub(super) async fn start(
        config: &Arc<Config>,
        ledger: &Arc<Ledger>,
        metrics: &Arc<Metrics>,
        store: Option<Arc<dyn Store>>,
        new_recordings: Arc<Notify>,
        mount: Option<Mount>,
    ) -> Result<Services, Error> {
        let stop = CancellationToken::new();
        let mut tasks = Vec::new();
        let db = config
            .vicidial
            .as_ref()
            .map(|vc| Arc::new(VicidialDb::new(&vc.db, DbOptions::from_config(vc))));
        if let (Some(vc), Some(db)) = (&config.vicidial, &db) {
            tracing::info!(database = %db.target(), server_ip = %db.server_ip(), "attributing recordings from VICIdial's database");
            let task = attribution::run(
                ledger.clone(),
                db.clone(),
                vc.clone(),
                config.naming.time_tolerance,
                metrics.clone(),
                new_recordings,
                stop.child_token(),
            );
            tasks.push(("attribution", tokio::spawn(task)));
        }
        let pages = mount.and_then(|mount| {
            mount(MountParts {
                config,
                ledger,
                store: &store,
                db: &db,
                metrics,
            })
        });
        let parts = Parts {
            pages,
            ledger: ledger.clone(),
            store,
            db: db.clone(),
            metrics: metrics.clone(),
        };
        let server = Server::start(config, parts).await?;
        if let (Some(vc), Some(db)) = (&config.vicidial, &db) {
            tasks.extend(vicidial_writers(config, vc, ledger, db, &stop)?);
        }
        Ok(Services {
            stop,
            tasks,
            db,
            server,
        })
    }

    /// Stops every companion: each finishes what it is doing (a batch in
    /// flight is recorded or not at all) within `grace`, else is abandoned.
    pub(super) async fn stop(self, grace: Duration) {
        // Open responses finish and every listen is audited before the rest stops.
        if let Some(server) = self.server {
            server.stop(grace).await;
        }
        self.stop.cancel();
        let deadline = tokio::time::Instant::now() + grace;
        for (name, mut task) in self.tasks {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                tracing::warn!(
                    task = name,
                    "did not stop within the shutdown grace; abandoned"
                );
                task.abort();
            }
        }
        if let Some(db) = self.db {
            db.close().await;
        }
    }
}
