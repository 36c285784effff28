//! The daemon's HTTP server (`[serve]`): listen links that keep playing a
//! recording after its local copy is gone, `/healthz` and `/metrics`. Uses
//! the ledger, the store, the codecs and VICIdial's database; started and
//! stopped by the daemon (`pipeline::services`), never on the archive's path.
//!
//! - `link`: what a link is and how it is signed (also for `recvault url`
//!   and `recording_log.location`);
//! - `listener`: sockets, TLS, who may connect and how many connections
//!   each address may hold, stalls; `router`: one request's checks and
//!   dispatch; `limit`: requests per client;
//! - `playback`: a recording's bytes (`range`, `body`, `cache`); `auth`:
//!   VICIdial logins counted toward VICIdial's lockout and slowed by
//!   `throttle` (both reusable by anything that logs VICIdial users in);
//! - `listens`: every signed request into the audit trail, by way of a
//!   `journal` file a kill cannot lose, refusals counted over windows
//!   (`denials`); `refusals`: what no link signed, counted and logged
//!   rate-limited, never audited; `access_log`: listens into VICIdial's own
//!   listen report;
//! - `health`: `/healthz` and `/metrics`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ServeConfig};
use crate::error::Error;
use crate::ledger::Ledger;
use crate::ledger::audit::Actor;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::vicidial::db::VicidialDb;

mod access_log;
pub mod auth;
pub mod body;
pub mod cache;
mod denials;
mod health;
mod journal;
pub mod limit;
pub mod link;
mod listener;
pub mod listens;
mod pages;
pub(crate) mod playback;
pub mod range;
pub mod refusals;
pub(crate) mod router;
pub mod throttle;

pub use pages::{Mount, MountParts, Pages};
pub use playback::content_type as playback_content_type;

/// What VICIdial's database adds to the server: the login check (with
/// `auth = "vicidial"`) and the writer of VICIdial's listen report.
#[derive(Default)]
struct VicidialParts {
    auth: Option<auth::Auth>,
    access_log: Option<access_log::AccessLog>,
    access_task: Option<JoinHandle<()>>,
}

fn vicidial_parts(serve: &ServeConfig, parts: &Parts) -> VicidialParts {
    let Some(db) = &parts.db else {
        return VicidialParts::default();
    };
    let auth = serve
        .auth_user_level
        .map(|level| auth::Auth::new(db.clone(), level, parts.metrics.clone()));
    let (log, task) =
        access_log::AccessLog::start(db.clone(), parts.ledger.clone(), parts.metrics.clone());
    VicidialParts {
        auth,
        access_log: Some(log),
        access_task: Some(task),
    }
}

/// Loads the TLS certificate and key as the server would (for `recvault check`).
pub fn check_tls(files: &crate::config::TlsFiles) -> Result<(), Error> {
    listener::tls_acceptor(files).map(drop)
}

/// What every request may use.
pub struct State {
    pub config: ServeConfig,
    pub spool_dirs: Vec<PathBuf>,
    pub ledger: Arc<Ledger>,
    pub store: Option<Arc<dyn Store>>,
    /// The store's key prefix (health probes go under it).
    pub store_prefix: String,
    pub cache: Option<cache::PlaybackCache>,
    pub signer: link::Signer,
    pub auth: Option<auth::Auth>,
    pub db: Option<Arc<VicidialDb>>,
    pub metrics: Arc<Metrics>,
    pub limit: limit::ClientLimit,
    pub listens: listens::ListenLog,
    /// Refusals no link signed: counted, logged rate-limited.
    pub refusals: refusals::Refusals,
    /// Listens for VICIdial's own report (with VICIdial's database).
    pub access_log: Option<access_log::AccessLog>,
    /// Pages mounted beside the links (the compliance console under `/console/`).
    pub pages: Option<Arc<dyn Pages>>,
    /// The ledger's figures for `/metrics`, and when they were read.
    figures: Mutex<Option<(Instant, String)>>,
}

/// What the server is built from.
pub struct Parts {
    pub ledger: Arc<Ledger>,
    pub store: Option<Arc<dyn Store>>,
    pub db: Option<Arc<VicidialDb>>,
    pub metrics: Arc<Metrics>,
    /// Pages to mount (the console), built by whoever knows them.
    pub pages: Option<Arc<dyn Pages>>,
}

/// The running server.
pub struct Server {
    stop: CancellationToken,
    accept: JoinHandle<()>,
    audit: JoinHandle<()>,
    access_log: Option<JoinHandle<()>>,
    /// Where it listens (the port chosen when `listen` says `:0`).
    pub addr: SocketAddr,
}

impl Server {
    /// Binds `[serve] listen` and starts answering; `None` without `[serve]`
    /// (listens a killed server journaled are still put in the audit trail).
    /// A port that cannot be bound, an unreadable link key or TLS file is
    /// an error: the operator asked for a server.
    pub async fn start(config: &Config, parts: Parts) -> Result<Option<Server>, Error> {
        let journal_dir = config
            .ledger
            .path
            .parent()
            .unwrap_or(std::path::Path::new("."));
        let Some(serve) = config.serve.clone() else {
            listens::replay(parts.ledger, Actor::current(), journal_dir).await?;
            return Ok(None);
        };
        let signer = link::Signer::load(&serve.key_file)?;
        let tls = serve.tls.as_ref().map(listener::tls_acceptor).transpose()?;
        let cache = match &parts.store {
            Some(store) => Some(
                cache::PlaybackCache::new(&serve.cache_dir, serve.cache_size, store.clone())
                    .map_err(Error::io(&serve.cache_dir))?,
            ),
            None => None,
        };
        let socket = TcpListener::bind(serve.listen).await.map_err(|e| {
            Error::Local(format!("serve.listen {}: cannot listen: {e}", serve.listen))
        })?;
        let addr = socket.local_addr().map_err(Error::Output)?;
        let (listens, audit) =
            listens::ListenLog::start(parts.ledger.clone(), Actor::current(), journal_dir).await?;
        let vicidial = vicidial_parts(&serve, &parts);
        let state = Arc::new(State {
            pages: parts.pages,
            limit: limit::ClientLimit::new(serve.client_rate),
            spool_dirs: config.spool.dirs.clone(),
            store_prefix: config
                .store
                .as_ref()
                .map(|s| s.prefix.clone())
                .unwrap_or_default(),
            ledger: parts.ledger,
            store: parts.store,
            cache,
            signer,
            auth: vicidial.auth,
            db: parts.db,
            refusals: refusals::Refusals::new(parts.metrics.clone()),
            metrics: parts.metrics,
            listens,
            access_log: vicidial.access_log,
            figures: Mutex::new(None),
            config: serve,
        });
        let stop = CancellationToken::new();
        let grace = config.daemon.shutdown_grace;
        tracing::info!(listen = %addr, tls = tls.is_some(), links = %link::base_url(config).unwrap_or_default(), "serving listen links, /healthz and /metrics");
        let accept = tokio::spawn(listener::accept(socket, tls, state, stop.clone(), grace));
        Ok(Some(Server {
            stop,
            accept,
            audit,
            access_log: vicidial.access_task,
            addr,
        }))
    }

    /// Stops taking connections, lets open ones finish within `grace`, then
    /// writes the last listens to the audit trail.
    pub async fn stop(self, grace: Duration) {
        self.stop.cancel();
        let _ = self.accept.await;
        // Every request is over: the audit writer drains and ends.
        if tokio::time::timeout(grace.max(Duration::from_secs(5)), self.audit)
            .await
            .is_err()
        {
            tracing::error!("the last listens could not be written to the audit trail in time");
        }
        if let Some(task) = self.access_log {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .is_err()
            {
                abort.abort();
                tracing::warn!(
                    "the last listens were not written to vicidial_recording_access_log in time (they are in the audit trail)"
                );
            }
        }
    }
}
