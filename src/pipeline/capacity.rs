//! How much archive work is in flight, and how due recordings are cut into
//! tasks. `[daemon] workers` bounds the tasks: each holds at most
//! `[spool] stage_in_memory` of objects in memory, so memory stays within
//! `workers × stage_in_memory` whatever the backlog. A task is one
//! recording, or a batch of small ones (`batch.rs`) whose bytes together
//! fit in that same allowance. Batches of a backlog of short calls spend
//! most of their time waiting on fsyncs (the store's, the ledger's), so
//! more of them than before may be in flight: up to
//! `RECORDINGS_PER_WORKER × workers` recordings in all.

use super::runner::Runner;
use crate::recording::Recording;

/// Recordings in flight per worker at most (four batches of 16 at the
/// default 16 workers). On 100,000 × 2 KB into a local store, 4 batches
/// of 16 in flight drained 2,306/s against 1,683/s for 2 batches of 8
/// (bench/backlog.sh, 2026-12-07).
const RECORDINGS_PER_WORKER: usize = 4;

/// The most small recordings archived together in one task: as many as
/// the workers, at most 32. One blocking trip and one ledger commit per
/// step serve the whole batch: 16 at a time took 0.57 ms of CPU per 2 KB
/// recording against 0.67 ms for 8.
pub(super) fn batch_size(workers: usize) -> usize {
    workers.clamp(1, 32)
}

impl Runner {
    /// How many more recordings may start now: none while `workers` tasks
    /// are in flight (one while the store is failing), else up to
    /// `RECORDINGS_PER_WORKER` per worker in all.
    pub(super) fn room(&self) -> usize {
        let tasks = self.outage.max_in_flight(self.config.daemon.workers);
        if self.tasks.len() >= tasks {
            return 0;
        }
        (RECORDINGS_PER_WORKER * tasks).saturating_sub(self.busy.len())
    }

    /// True if `rec` may join `task` (at most `most` recordings): both
    /// small enough to batch, and their bytes together within one
    /// worker's `stage_in_memory`.
    pub(super) fn joins(&self, task: &[Recording], rec: &Recording, most: usize) -> bool {
        let Some(first) = task.first() else {
            return false;
        };
        let bytes: u64 = task.iter().map(|r| r.identity.size).sum();
        task.len() < most.min(batch_size(self.config.daemon.workers))
            && self.batchable(first)
            && self.batchable(rec)
            && bytes + rec.identity.size <= self.config.spool.stage_in_memory
    }

    /// True if `rec` may be archived in a batch now (never while the store
    /// is out: one recording at a time probes it).
    pub(super) fn batchable(&self, rec: &Recording) -> bool {
        !self.outage.ongoing() && self.archiver.as_ref().is_some_and(|a| a.batchable(rec))
    }

    /// Cuts due `recs` into tasks and starts them while there is room
    /// (`next_task_in_pass` does the same for a pass over the backlog).
    pub(super) fn spawn_due(&mut self, recs: Vec<Recording>) {
        let mut task: Vec<Recording> = Vec::new();
        for rec in recs {
            if !task.is_empty() && !self.joins(&task, &rec, usize::MAX) {
                if self.room() == 0 {
                    return;
                }
                self.spawn(std::mem::take(&mut task));
            }
            task.push(rec);
        }
        if !task.is_empty() && self.room() > 0 {
            self.spawn(task);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::Config;
    use crate::ledger::Ledger;
    use crate::ledger::audit::Actor;
    use crate::metrics::Metrics;
    use crate::pipeline::archive::Archiver;
    use crate::recording::{FileIdentity, State};
    use crate::store::{LocalStore, Store};

    /// A runner with `workers` workers and a 10 KiB `stage_in_memory`,
    /// archiving into a local store under `root`.
    fn runner(root: &std::path::Path, workers: usize) -> Runner {
        let text = format!(
            "[spool]\ndirs = [\"{}\"]\nstage_in_memory = \"10KiB\"\nstaging = \"{}\"\n\n\
             [store]\nkind = \"local\"\npath = \"{}\"\n\n[ledger]\npath = \"{}\"\n\n\
             [daemon]\nworkers = {workers}\n",
            root.join("spool").display(),
            root.join("staging").display(),
            root.join("store").display(),
            root.join("ledger.sqlite3").display(),
        );
        let config = Arc::new(Config::parse(&root.join("recvault.toml"), &text).unwrap());
        let ledger = Arc::new(Ledger::open(&config.ledger.path).unwrap());
        let store: Arc<dyn Store> = Arc::new(LocalStore::new(root.join("store")));
        let metrics = Arc::new(Metrics::default());
        let archiver = Archiver::new(
            config.clone(),
            config.store.clone().unwrap(),
            ledger.clone(),
            store,
            metrics.clone(),
        );
        let archiver = Some(Arc::new(archiver));
        Runner::new(
            config,
            ledger,
            (archiver, "local".into()),
            Actor::current(),
            metrics,
            None,
        )
    }

    fn settled(id: i64, size: u64, attempts: u32) -> Recording {
        let name = format!("20260301-1015{id:02}_555000000{id}-all.wav");
        let example = Recording::example(id, &name);
        Recording {
            identity: FileIdentity {
                ino: id as u64,
                size,
                ..example.identity
            },
            state: State::Settled,
            attempts,
            ..example
        }
    }

    /// Starts a task that never ends on `ids`, as `Runner::spawn` would.
    fn occupy(runner: &mut Runner, ids: Vec<i64>) {
        runner.busy.extend(ids.iter().copied());
        runner.tasks.spawn(ids, std::future::pending());
    }

    #[tokio::test]
    async fn room_is_bounded_by_the_tasks_and_by_four_recordings_per_worker() {
        let dir = tempfile::tempdir().unwrap();
        let mut runner = runner(dir.path(), 4);
        assert_eq!(runner.room(), 16);
        occupy(&mut runner, (0..4).collect());
        occupy(&mut runner, (4..8).collect());
        occupy(&mut runner, (8..14).collect());
        assert_eq!(runner.room(), 2, "16 recordings in all, 14 in flight");
        occupy(&mut runner, vec![14]);
        assert_eq!(runner.room(), 0, "4 tasks: every worker busy");
        runner.tasks.abort_all();
        while runner.tasks.next().await.is_some() {}
        runner.busy.clear();
        let down = crate::error::Error::Local("the store is down".into());
        runner.outage.failure(&down, "local");
        assert_eq!(runner.room(), 4, "one task while the store fails");
        occupy(&mut runner, vec![1]);
        assert_eq!(runner.room(), 0);
        runner.tasks.abort_all();
    }

    #[tokio::test]
    async fn a_batch_holds_small_first_tries_within_one_workers_memory() {
        let dir = tempfile::tempdir().unwrap();
        let runner = runner(dir.path(), 4);
        let kib = 1024;
        let task = vec![settled(1, 4 * kib, 0)];
        assert!(runner.joins(&task, &settled(2, 4 * kib, 0), usize::MAX));
        assert!(
            !runner.joins(&task, &settled(2, 4 * kib, 1), usize::MAX),
            "failed before"
        );
        assert!(!runner.joins(&task, &settled(2, 4 * kib, 0), 1), "no room");
        assert!(!runner.joins(&[], &settled(2, kib, 0), usize::MAX));
        let two = vec![settled(1, 4 * kib, 0), settled(2, 4 * kib, 0)];
        assert!(
            runner.joins(&two, &settled(3, 2 * kib, 0), usize::MAX),
            "10 KiB"
        );
        assert!(
            !runner.joins(&two, &settled(3, 2 * kib + 1, 0), usize::MAX),
            "over 10 KiB"
        );
        let four: Vec<_> = (1..=4).map(|i| settled(i, 10, 0)).collect();
        assert!(
            !runner.joins(&four, &settled(5, 10, 0), usize::MAX),
            "batch of 4 workers"
        );
        let mut moved = settled(2, 10, 0);
        moved.state = State::Compressed;
        assert!(
            !runner.joins(&task, &moved, usize::MAX),
            "only settled ones"
        );
    }
}
