//! A pass over the whole backlog (`run --once`): what is due and in which
//! order is fixed when it starts, then read a page at a time and handed to
//! workers one recording, or one batch of small ones, at a time.

use std::collections::VecDeque;

use super::runner::Runner;
use crate::error::Error;
use crate::ledger::{Due, QueueOrder};
use crate::recording::Recording;
use crate::units::now_secs;

/// Due recordings read at once by a pass over the backlog (`--once`).
const PASS_PAGE: usize = 512;

/// Where a pass over the backlog (`--once`) stands: the recordings read
/// but not yet handed to a worker, and where the next page starts.
#[derive(Default)]
pub(super) struct Pass {
    /// What is due and in which order, fixed at the first page.
    due: Option<(Due, QueueOrder)>,
    /// The last recording of the page read before.
    after: Option<Recording>,
    /// No more pages.
    done: bool,
    window: VecDeque<Recording>,
    /// Due recordings that wait only for an upload window.
    pub(super) deferred: u64,
}

impl Runner {
    /// Starts a pass over the whole backlog (`--once`): what is due and in
    /// which order is fixed now; the progress line learns how many are due.
    pub(super) async fn start_pass(&mut self) -> Result<Pass, Error> {
        let (cutoff, order) = self.upload_cutoff();
        let due = Due {
            upload_cutoff_ns: cutoff,
            now: now_secs(),
            retry_all: true,
        };
        let (count, _) = self.ledger.call(move |l| l.due_totals(&due)).await?;
        self.progress.due(count);
        Ok(Pass {
            due: Some((due, order)),
            ..Pass::default()
        })
    }

    /// The next recording of a pass over the whole backlog (`--once`), a
    /// page at a time: the pass's order and cutoff are fixed when it starts.
    pub(super) async fn next_in_pass(
        &mut self,
        pass: &mut Pass,
    ) -> Result<Option<Recording>, Error> {
        loop {
            if let Some(rec) = pass.window.pop_front() {
                return Ok(Some(rec));
            }
            if pass.done {
                return Ok(None);
            }
            let (due, order) = match pass.due {
                Some(fixed) => fixed,
                None => {
                    let (cutoff, order) = self.upload_cutoff();
                    let due = Due {
                        upload_cutoff_ns: cutoff,
                        now: now_secs(),
                        retry_all: true,
                    };
                    *pass.due.insert((due, order))
                }
            };
            let after = pass.after.take();
            let page = self
                .ledger
                .call(move |l| l.work_page(&due, order, after.as_ref(), PASS_PAGE))
                .await?;
            pass.done = page.len() < PASS_PAGE;
            pass.after = page.last().cloned();
            let uploads = self.window_open();
            let (ready, waiting) = self.takeable(page, uploads);
            pass.deferred += waiting;
            pass.window.extend(ready);
        }
    }

    /// The next task of a pass over the whole backlog (`--once`) for at
    /// most `room` recordings: the next recording, with the small ones
    /// after it if it is small (a batch).
    pub(super) async fn next_task_in_pass(
        &mut self,
        pass: &mut Pass,
        room: usize,
    ) -> Result<Option<Vec<Recording>>, Error> {
        let Some(first) = self.next_in_pass(pass).await? else {
            return Ok(None);
        };
        let mut task = vec![first];
        while pass
            .window
            .front()
            .is_some_and(|r| self.joins(&task, r, room))
        {
            task.extend(pass.window.pop_front());
        }
        Ok(Some(task))
    }
}
