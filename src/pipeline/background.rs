//! The daemon's background schedules: ledger backups (with copies of the
//! hold table), recording ids reserved in the store ahead of their use, and
//! the slow scrub that re-reads a sample of archived objects.
//! Each is a task of its own, aborted when the daemon stops (a backup cut
//! short leaves only a temp file; a scrub cut short has only read).

use std::sync::Arc;

use tokio::task::JoinHandle;

use crate::config::{Config, StoreConfig};
use crate::error::Error;
use crate::ledger::Ledger;
use crate::recovery::backup::{self, HoldCopies};
use crate::recovery::ids;
use crate::recovery::scrub::{self, Selection};
use crate::store::{self, Store};

/// How long the first id reservation of a run may take (an unreachable
/// store must not hold `run --once` up: the daemon's chore retries).
const FIRST_RESERVATION: std::time::Duration = std::time::Duration::from_secs(10);

/// Reserves recording ids in the store (one bounded attempt), then — for
/// the daemon (`keep`) — keeps the reservation ahead of the ids
/// (`recovery::ids`), in a task of its own.
///
/// The task runs beside intake and archiving instead of before them: its
/// requests (on a fresh ledger the store's `If-None-Match` probe, a put, a
/// listing: eight round trips, most of a second with the store 100 ms away)
/// would otherwise hold up the first upload. That changes nothing `ids`
/// promises: the ids handed out before the mark is stored are a few
/// thousand at most, well inside the [`ids::BLOCK`] a restore adds above
/// the highest mark for ids handed out while the store could not be
/// written — which is what a first attempt that failed left before.
/// `run --once` waits for the first attempt before it returns.
pub fn reserve_ids(
    config: &Config,
    store_config: &StoreConfig,
    ledger: &Arc<Ledger>,
    store: Arc<dyn Store>,
    keep: bool,
) -> JoinHandle<()> {
    let (prefix, host) = (store_config.prefix.clone(), config.daemon.host.clone());
    let ledger = ledger.clone();
    tokio::spawn(async move {
        let first = ids::reserve_if_due(&ledger, &*store, &prefix, &host);
        match tokio::time::timeout(FIRST_RESERVATION, first).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!("cannot reserve recording ids in the store yet: {e}"),
            Err(_) => tracing::warn!("cannot reserve recording ids in the store yet: no answer"),
        }
        if keep {
            ids::keep_reserving(ledger, store, prefix, host).await;
        }
    })
}

/// Starts the ledger-backup schedule (`[ledger] backup_every`), if on.
/// It keeps the store and settings it started with until the next restart.
pub async fn spawn_backups(
    config: &Config,
    store_config: &StoreConfig,
    ledger: &Arc<Ledger>,
) -> Result<Option<JoinHandle<()>>, Error> {
    let Some(every) = config.ledger.backup_every else {
        return Ok(None);
    };
    let store = store::open(store_config).await?;
    Ok(Some(tokio::spawn(backup::schedule(
        ledger.clone(),
        store,
        backup::backup_prefix(&store_config.prefix, &config.daemon.host),
        every,
        config.ledger.backup_keep,
        config.spool.staging.clone(),
        HoldCopies {
            store_prefix: store_config.prefix.clone(),
            host: config.daemon.host.clone(),
        },
    ))))
}

/// Starts the slow scrub (`[store] scrub_every`), if on: every interval it
/// re-reads `scrub_sample` random archived objects and checks their SHA-256
/// against the ledger, logging any missing or damaged one as an error.
pub async fn spawn_scrub(
    config: &Config,
    store_config: &StoreConfig,
    ledger: &Arc<Ledger>,
) -> Result<Option<JoinHandle<()>>, Error> {
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
            let selection = Selection {
                sample: Some(sample),
                since: None,
            };
            match scrub::scrub(&ledger, &*store, selection, &scratch, false, &mut problems).await {
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
