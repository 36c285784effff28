//! The console's export jobs, made one at a time in the background: each
//! job's recordings selected through the catalog (another box's read from
//! its object in the store, in a fleet), zipped by the very code of
//! `recvault export` (`retrieve::export`) into `console-exports/ID.zip`
//! beside the ledger, its progress written to the ledger every second. A
//! job is a ledger row (`ledger::console_exports`): a daemon stopped or
//! killed mid-job makes it again from the start when it next starts (the
//! zip is written under a temp name and renamed when complete, and a dead
//! process's temp files are removed). A zip is kept [`KEPT`], then removed:
//! it holds the recordings themselves; an erasure carried out after a job
//! was asked for removes its zip at once (checked before every download).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::catalog::{Catalog, Search};
use crate::ledger::Ledger;
use crate::ledger::audit::Actor;
use crate::ledger::console_exports::{ExportJob, JobOutcome};
use crate::recording::pseudonym::PseudonymKey;
use crate::retrieve::export::{self, Export, Progress};
use crate::store::Store;
use crate::units::now_secs;

/// How long a finished export's zip is kept for its download.
pub const KEPT: Duration = Duration::from_secs(24 * 3600);
/// How often progress is written while a job runs.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// How long the runner sleeps when nothing wakes it (expiry runs then).
const IDLE: Duration = Duration::from_secs(60);

/// Makes the queued jobs.
pub struct ExportJobs {
    ledger: Arc<Ledger>,
    catalog: Arc<dyn Catalog>,
    store: Option<Arc<dyn Store>>,
    key: PseudonymKey,
    dir: PathBuf,
    wake: Notify,
    stop: CancellationToken,
}

impl ExportJobs {
    /// Jobs of `ledger`, their zips in `console-exports/` beside it.
    pub fn new(
        ledger: Arc<Ledger>,
        catalog: Arc<dyn Catalog>,
        store: Option<Arc<dyn Store>>,
        key: PseudonymKey,
    ) -> ExportJobs {
        let dir = ledger
            .path()
            .parent()
            .unwrap_or(Path::new("."))
            .join("console-exports");
        ExportJobs {
            ledger,
            catalog,
            store,
            key,
            dir,
            wake: Notify::new(),
            stop: CancellationToken::new(),
        }
    }

    /// Where job `id`'s zip is.
    pub fn zip_path(&self, id: i64) -> PathBuf {
        self.dir.join(format!("{id}.zip"))
    }

    /// The pseudonym key (the audit trail names people through it).
    pub fn key(&self) -> &PseudonymKey {
        &self.key
    }

    /// Wakes the runner: a job was queued.
    pub fn queued(&self) {
        self.wake.notify_one();
    }

    /// Stops the runner (a job in progress is made again at the next start).
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Starts the runner: unfinished jobs first (a stop interrupted them).
    pub fn start(self: &Arc<Self>) {
        let jobs = self.clone();
        tokio::spawn(async move { jobs.run().await });
    }

    async fn run(self: Arc<Self>) {
        loop {
            self.expire().await;
            let next = self.ledger.call(|l| l.export_job_take()).await;
            let wait = match next {
                Ok(Some(job)) => {
                    tokio::select! {
                        _ = self.make(job) => continue,
                        _ = self.stop.cancelled() => return,
                    }
                }
                Ok(None) => IDLE,
                Err(e) => {
                    tracing::warn!("console exports: cannot read the queue: {e}");
                    Duration::from_secs(30)
                }
            };
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = self.stop.cancelled() => return,
            }
        }
    }

    /// Removes the zips kept long enough, and those an erasure since their
    /// request may have reached into.
    pub async fn expire(&self) {
        let before = now_secs() - KEPT.as_secs() as i64;
        match self
            .ledger
            .call(move |l| l.export_jobs_expire(before))
            .await
        {
            Ok(ids) => {
                for id in ids {
                    let _ = std::fs::remove_file(self.zip_path(id));
                    tracing::info!(job = id, "console export expired; its zip removed");
                }
            }
            Err(e) => tracing::warn!("console exports: cannot expire old zips: {e}"),
        }
    }

    /// Makes one job and records how it ended.
    async fn make(&self, job: ExportJob) {
        let id = job.id;
        tracing::info!(job = id, attempt = job.attempts, "console export started");
        let outcome = self.export(&job).await;
        match &outcome {
            Ok(o) => {
                tracing::info!(
                    job = id,
                    exported = o.exported,
                    failed = o.failed,
                    "console export done"
                )
            }
            Err(e) => tracing::warn!(job = id, "console export failed: {e}"),
        }
        if let Err(e) = self.ledger.export_job_finish(id, now_secs(), outcome) {
            // Left running: made again at the next start.
            tracing::warn!(job = id, "console export: cannot record its end: {e}");
        }
    }

    async fn export(&self, job: &ExportJob) -> Result<JobOutcome, String> {
        let search: Search = job
            .search
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
            .ok_or("its search is unreadable")?;
        let selectors = search.selectors.clone();
        let selection = export::select(self.catalog.clone(), search)
            .await
            .map_err(|e| format!("selecting its recordings: {e}"))?;
        std::fs::create_dir_all(&self.dir).map_err(|e| format!("{}: {e}", self.dir.display()))?;
        let actor = Actor {
            uid: Actor::current().uid,
            user: job.created_by.clone(),
        };
        let note = format!(
            "console export job {} of {}; reason: {}",
            job.id, job.what, job.reason
        );
        let run = Export {
            ledger: &self.ledger,
            store: self.store.as_deref(),
            key: &self.key,
            selectors: &selectors,
            selection,
            actor: &actor,
            note: Some(&note),
        };
        let path = self.zip_path(job.id);
        let mut last: Option<Instant> = None;
        let mut progress = |p: &Progress| {
            if last.is_some_and(|t| t.elapsed() < PROGRESS_EVERY) && p.done < p.total {
                return;
            }
            last = Some(Instant::now());
            let written =
                self.ledger
                    .export_job_progress(job.id, p.done, p.total, p.bytes, p.total_bytes);
            if let Err(e) = written {
                tracing::warn!(job = job.id, "console export: cannot record progress: {e}");
            }
        };
        let report = run
            .to_zip(&path, true, &mut progress)
            .await
            .map_err(|e| e.to_string())?;
        let zip_size = match report.matched {
            0 => None,
            _ => Some(std::fs::metadata(&path).map_err(|e| e.to_string())?.len()),
        };
        Ok(JobOutcome {
            exported: report.exported,
            failed: report.failed.len() as u64,
            gone: report.gone.len() as u64,
            zip_size,
        })
    }
}
