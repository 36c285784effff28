//! The fleet: one policy for every dialer of a cluster, kept in recvault's
//! own InnoDB tables (`recvault_*`) in the cluster's MariaDB — the engine
//! every VICIdial cluster already runs; no consensus protocol of our own.
//!
//! - `schema`: the tables, their migrations and GRANTs (`recvault fleet init`);
//! - `boxes`: each box's name (unique), heartbeat and overview, `fleet status`;
//! - `publish`: the ledger's outbox drained into the shared catalog;
//! - `holds`: the fleet's legal holds and the SQL that says what they cover;
//! - `gate`: every deletion reserved in the transaction that checks the holds;
//! - `policy`: the fleet's retention rules;
//! - `erasure`: a request erased on every box that has a copy;
//! - `leader`: one box (MariaDB's `GET_LOCK`) governs forgotten and silent boxes' recordings;
//! - `orphan_erasure`: the leader erases those boxes' stored objects of fleet erasures;
//! - `adopt`: a box heard from again agrees with what the leader did for it;
//! - `mirror`: the fleet's holds copied to the store and mirrored onto Object Lock;
//! - `purges`: VICIdial's GDPR purge queue, marked once the fleet erased a row;
//! - `rounds`: what the leader does each round;
//! - `catalog`: [`FleetCatalog`], the `Catalog` of every box;
//! - `daemon`: what `recvault run` does as a fleet member.
//!
//! Depends on `ledger`, `governance`, `catalog`, `config` and the MySQL
//! client of `vicidial::db`; nothing below `commands` depends on it.

use std::path::Path;
use std::sync::Arc;

use crate::config::{Config, FleetConfig};
use crate::error::Error;
use crate::vicidial::db::{ConnFuture, DbError, DbOptions, VicidialDb};

pub mod adopt;
pub mod boxes;
pub mod catalog;
pub mod daemon;
pub mod erasure;
pub mod gate;
pub mod holds;
pub mod leader;
pub mod mirror;
pub mod orphan_erasure;
pub mod policy;
pub mod publish;
pub mod purges;
mod rounds;
pub mod schema;
mod select;

pub use catalog::FleetCatalog;
pub use gate::FleetGate;

/// The fleet's database as one box sees it.
pub struct Fleet {
    db: VicidialDb,
    /// This box (`[daemon] host`).
    pub host: String,
    /// Kept beside the ledger: tells this box from another one using its name.
    pub identity: String,
    pub config: FleetConfig,
    /// This box's ledger, beside which the pseudonym key lives.
    ledger: std::path::PathBuf,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("db", &self.db)
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl Fleet {
    /// The fleet of `config`, `None` without `[fleet]`. Connects lazily: a
    /// database down now costs nothing until the first call. Needs a tokio
    /// runtime. Creates this box's identity file beside the ledger.
    pub fn of(config: &Config) -> Result<Option<Arc<Fleet>>, Error> {
        let Some(fc) = &config.fleet else {
            return Ok(None);
        };
        let options = DbOptions {
            pool_size: 3,
            connect_timeout: fc.connect_timeout,
            query_timeout: fc.query_timeout,
        };
        Ok(Some(Arc::new(Fleet {
            db: VicidialDb::new(&fc.db, options).named("fleet database"),
            host: config.daemon.host.clone(),
            identity: identity(&config.ledger.path)?,
            config: fc.clone(),
            ledger: config.ledger.path.clone(),
        })))
    }

    /// The pseudonym key (the fleet shares one), made now if this box never
    /// had one: erasures match and write down numbers and names through it.
    pub fn pseudonym_key(&self) -> Result<crate::recording::pseudonym::PseudonymKey, Error> {
        crate::governance::requests::key::load_or_create(&self.ledger)
    }

    /// `user@host:port/database`, for messages.
    pub fn target(&self) -> &str {
        self.db.target()
    }

    /// Runs `query` on a pooled connection under the configured deadlines.
    pub(crate) async fn run<T, F>(&self, action: &'static str, query: F) -> Result<T, DbError>
    where
        F: for<'c> FnOnce(&'c mut sqlx::MySqlConnection) -> ConnFuture<'c, T>,
    {
        self.db.run(action, query).await
    }

    /// Closes the pool (shutdown).
    pub async fn close(&self) {
        self.db.close().await;
    }

    /// A box not heard from since this time is unreachable.
    pub fn alive_since(&self, now: i64) -> i64 {
        now - self.config.host_timeout.as_secs() as i64
    }
}

/// This ledger's identity in the fleet: 32 hex digits kept in
/// `fleet-identity` beside the ledger, made on first use.
fn identity(ledger: &Path) -> Result<String, Error> {
    let path = ledger.with_file_name("fleet-identity");
    if let Ok(text) = std::fs::read_to_string(&path) {
        let text = text.trim();
        if text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(text.to_string());
        }
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
    }
    let id = format!("{:032x}", fastrand::u128(..));
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{id}\n")).map_err(Error::io(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(Error::io(&path))?;
    Ok(id)
}
