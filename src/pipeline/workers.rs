//! The archive workers: each recording in flight runs as a task of its own.
//! Whatever way a task ends — done, failed, panicked or aborted — it hands
//! its recording back, so its worker slot is freed and, after a panic, the
//! recording is retried later like any other failure.

use std::collections::HashMap;
use std::future::Future;

use tokio::task::{self, JoinError, JoinSet};

/// Tasks in flight, each working on one recording.
pub(super) struct Workers<T> {
    tasks: JoinSet<T>,
    recordings: HashMap<task::Id, i64>,
}

impl<T: Send + 'static> Workers<T> {
    pub(super) fn new() -> Workers<T> {
        Workers {
            tasks: JoinSet::new(),
            recordings: HashMap::new(),
        }
    }

    /// Starts `work` on recording `id`.
    pub(super) fn spawn(&mut self, id: i64, work: impl Future<Output = T> + Send + 'static) {
        let handle = self.tasks.spawn(work);
        self.recordings.insert(handle.id(), id);
    }

    /// The next task to end and its recording: its output, or how it ended
    /// without one (a panic, an abort). `None` when none is in flight.
    pub(super) async fn next(&mut self) -> Option<(i64, Result<T, JoinError>)> {
        let (task, ended) = match self.tasks.join_next_with_id().await? {
            Ok((task, output)) => (task, Ok(output)),
            Err(e) => (e.id(), Err(e)),
        };
        // Every task was spawned with its recording; one always ends.
        let id = self.recordings.remove(&task)?;
        Some((id, ended))
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
    async fn a_panicking_task_still_hands_its_recording_back() {
        let mut workers = Workers::new();
        workers.spawn(1, async { 10 });
        workers.spawn(2, async { panic!("a bug in a step") });
        workers.spawn(3, std::future::pending::<i32>());
        let mut ended = Vec::new();
        for _ in 0..2 {
            let (id, result) = workers.next().await.unwrap();
            ended.push((id, result.map_err(|e| e.is_panic())));
        }
        ended.sort();
        assert_eq!(ended, vec![(1, Ok(10)), (2, Err(true))]);
        assert_eq!(workers.len(), 1);
        workers.abort_all();
        let (id, result) = workers.next().await.unwrap();
        assert_eq!(id, 3);
        assert!(result.unwrap_err().is_cancelled());
        assert!(workers.is_empty() && workers.next().await.is_none());
    }
}
