//! A second say over deletions: with `[fleet]`, the fleet's shared
//! database, whose holds cover every box. A deletion this box's ledger
//! reserves must first be reserved there, in the transaction that checks
//! the fleet's holds; when that database cannot be asked, nothing is
//! deleted (archiving goes on). One box on its own has no gate. `fleet`
//! implements it; the sweep, the erasure chore and `retention run` ask it.

use std::collections::HashSet;

use async_trait::async_trait;

use crate::config::RetentionPolicy;
use crate::error::Error;
use crate::ledger::reservations::Deletion;
use crate::recording::Recording;

/// The shared side of every deletion (see the module doc).
#[async_trait]
pub trait DeletionGate: Send + Sync {
    /// Reserves for `what`, in the shared database, those of `recordings`
    /// (this box's) that no hold there covers; returns their ids. `Err`:
    /// the holds cannot be checked now, so nothing may be deleted.
    async fn reserve(
        &self,
        what: Deletion,
        recordings: &[Recording],
        now: i64,
    ) -> Result<HashSet<i64>, Error>;

    /// Gives up reservations whose deletion did not happen (best effort: a
    /// reservation left behind is only counted by a later hold).
    async fn release(&self, ids: &[i64]);

    /// The retention policy this box follows: the fleet's rules over
    /// `base`'s schedule. `None`: not known yet (never read): sweep nothing.
    fn policy(&self, base: &RetentionPolicy) -> Option<RetentionPolicy>;
}
