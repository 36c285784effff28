//! The archive workers: each recording in flight runs in a task, alone or
//! with a batch of small ones (`batch.rs`). Whatever way a task ends — done,
//! failed, panicked or aborted — it hands its recordings back, so their
//! worker slots are freed and, after a panic, the recordings are retried
//! later like any other failure.

use std::collections::HashMap;
use std::future::Future;

use tokio::task::{self, JoinError, JoinSet};

/// Tasks in flight, each working on one recording or a batch of them.
pub(super) struct Workers<T> {
    tasks: JoinSet<T>,
    recordings: HashMap<task::Id, Vec<i64>>,
}

impl<T: Send + 'static> Workers<T> {
    pub(super) fn new() -> Workers<T> {
        Workers {
            tasks: JoinSet::new(),
            recordings: HashMap::new(),
        }
    }

    /// Starts `work` on recordings `ids`.
    pub(super) fn spawn(&mut self, ids: Vec<i64>, work: impl Future<Output = T> + Send + 'static) {
        let handle = self.tasks.spawn(work);
        self.recordings.insert(handle.id(), ids);
    }

    /// The next task to end and its recordings: its output, or how it
    /// ended without one (a panic, an abort). `None` when none is in flight.
    pub(super) async fn next(&mut self) -> Option<(Vec<i64>, Result<T, JoinError>)> {
        let (task, ended) = match self.tasks.join_next_with_id().await? {
            Ok((task, output)) => (task, Ok(output)),
            Err(e) => (e.id(), Err(e)),
        };
        // Every task was spawned with its recordings; one always ends.
        let ids = self.recordings.remove(&task)?;
        Some((ids, ended))
    }

    pub(super) fn len(&self) -> usize {
        self.tasks.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    pub(super) fn abort_all(&mut self) {
        self.tasks.abort_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_task_still_hands_its_recordings_back() {
        let mut workers = Workers::new();
        workers.spawn(vec![1], async { 10 });
        workers.spawn(vec![2, 4], async { panic!("a bug in a step") });
        workers.spawn(vec![3], std::future::pending::<i32>());
        let mut ended = Vec::new();
        for _ in 0..2 {
            let (ids, result) = workers.next().await.unwrap();
            ended.push((ids, result.map_err(|e| e.is_panic())));
        }
        ended.sort();
        assert_eq!(ended, vec![(vec![1], Ok(10)), (vec![2, 4], Err(true))]);
        assert_eq!(workers.len(), 1);
        workers.abort_all();
        let (ids, result) = workers.next().await.unwrap();
        assert_eq!(ids, vec![3]);
        assert!(result.unwrap_err().is_cancelled());
        assert!(workers.is_empty() && workers.next().await.is_none());
    }
}
