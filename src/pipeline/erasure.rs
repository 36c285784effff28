//! The daemon's erasure chore: confirmed erasures it carries out — those
//! confirmed while it runs (`recvault erase` waits for it), those a killed
//! run left reserved, and those whose Object Lock date has come. Looked
//! for every [`POLL`]; recordings a worker holds are left for the next look.

use std::time::{Duration, Instant};

use super::runner::Runner;
use crate::governance::requests::eraser::Eraser;
use crate::governance::requests::key;
use crate::units::now_secs;

/// How often the daemon looks for erasures to carry out (one indexed query).
pub(super) const POLL: Duration = Duration::from_secs(10);

/// After a run that could not erase everything (the store down, a file it
/// may not delete), the next one waits this long: no retry storm, no log spam.
const AFTER_FAILURE: Duration = Duration::from_secs(300);

impl Runner {
    /// Carries out the erasures due now, if any.
    pub(super) async fn erase_if_due(&mut self) {
        if Instant::now() < self.next_erasure {
            return;
        }
        self.next_erasure = Instant::now() + POLL;
        let now = now_secs();
        match self.ledger.call(move |l| l.due_erasures(now, 0, 1)).await {
            Ok(due) if due.is_empty() => return,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!("cannot look for erasures to carry out: {e}");
                return;
            }
        }
        let key = match key::load_or_create(&self.config.ledger.path) {
            Ok(k) => k,
            Err(e) => {
                tracing::error!("erasures wait: the pseudonym key: {e}");
                return;
            }
        };
        let store = self.archiver.as_ref().map(|a| a.store().clone());
        let eraser = Eraser {
            ledger: &self.ledger,
            store: store.as_deref(),
            spool_dirs: &self.config.spool.dirs,
            staging: &self.config.spool.staging,
            host: &self.config.daemon.host,
            playback_cache: self.config.serve.as_ref().map(|s| s.cache_dir.as_path()),
            key: &key,
            actor: &self.actor,
            skip: &self.busy,
            gate: self.gate.as_deref(),
        };
        let result = eraser.run(now).await;
        self.note_erasure(result);
    }

    /// Logs what an erasure run did, and when to look again.
    fn note_erasure(
        &mut self,
        result: Result<crate::governance::requests::eraser::EraseReport, crate::error::Error>,
    ) {
        match result {
            Ok(r) if r.failed.is_empty() => tracing::info!(
                erased = r.recorded.erased,
                waiting = r.recorded.waiting,
                versions = r.versions,
                "erasure"
            ),
            Ok(r) => {
                self.next_erasure = Instant::now() + AFTER_FAILURE;
                tracing::warn!(
                    erased = r.recorded.erased,
                    waiting = r.recorded.waiting,
                    failed = r.failed.len(),
                    "erasure: some recordings not erased this time (again in {AFTER_FAILURE:?}): {}",
                    r.failed[0].1
                );
            }
            Err(
                e @ crate::error::Error::Database {
                    retryable: true, ..
                },
            ) if self.gate.is_some() => {
                // The fleet's holds cannot be checked: nothing is erased
                // until they can; look again at the next poll.
                tracing::warn!("erasure waits for the fleet's database: {e}");
            }
            Err(e) => {
                self.next_erasure = Instant::now() + AFTER_FAILURE;
                tracing::warn!("erasure stopped (again in {AFTER_FAILURE:?}): {e}");
            }
        }
    }
}
