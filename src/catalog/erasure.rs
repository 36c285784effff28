//! Erasure as the catalog shows it: the preview (every recording a request
//! covers, each copy and where, what a hold keeps, and the token that
//! confirms exactly that set), the confirmation, and the progress of a
//! confirmed request until its report is final.

use serde::{Deserialize, Serialize};

use super::entry::{Copy, Entry};
pub use crate::governance::requests::erase::Standing;
use crate::ledger::holds::Selector;

/// One recording an erasure request covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureItem {
    pub entry: Entry,
    /// Every copy the erasure removes, and where.
    pub copies: Vec<Copy>,
    pub standing: Standing,
}

/// What a request would erase now, and the token that confirms that set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasurePlan {
    pub request: String,
    pub selectors: Vec<Selector>,
    /// Every recording matched, oldest call first.
    pub items: Vec<ErasureItem>,
    pub token: String,
}

impl ErasurePlan {
    /// The recordings this request erases (or has erased).
    pub fn to_erase(&self) -> impl Iterator<Item = &ErasureItem> {
        self.items.iter().filter(|i| i.standing == Standing::Erase)
    }

    /// How many this request erases and has not erased yet, and their bytes.
    pub fn left(&self) -> (u64, u64) {
        self.to_erase()
            .filter(|i| i.entry.status() != "erased")
            .fold((0, 0), |(n, b), i| (n + 1, b + i.entry.size))
    }

    /// Recordings an active hold keeps out of it.
    pub fn held(&self) -> impl Iterator<Item = (&ErasureItem, &Vec<String>)> {
        self.items.iter().filter_map(|i| match &i.standing {
            Standing::Held(cases) => Some((i, cases)),
            _ => None,
        })
    }
}

/// What a confirmation came to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErasureConfirmation {
    /// The token matched: the plan's recordings are reserved for erasure.
    Reserved(ErasurePlan),
    /// The set changed since the preview (or the token is not its token):
    /// nothing was reserved; this is the preview now.
    Changed(ErasurePlan),
}

/// Where one recording of a confirmed request stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CopyOutcome {
    /// Every copy is gone.
    Erased { at: i64 },
    /// The local copy is gone; Object Lock keeps a stored version until then.
    Waiting { until: i64, why: String },
    /// Not done yet (its box has not got to it, or it failed and retries).
    Pending { why: String },
    /// Its box was forgotten (`recvault fleet forget`): its stored object
    /// was erased by the fleet and its box is taken to be wiped.
    Closed { by: String },
}

/// One recording of a confirmed request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureLine {
    pub host: String,
    pub id: i64,
    /// Its name as it was (erased rows carry a pseudonym).
    pub name: String,
    pub outcome: CopyOutcome,
}

/// A box that still has copies of a request to remove.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenHost {
    pub host: String,
    /// Recordings of the request still on it.
    pub copies: u64,
    /// Its last heartbeat, when it is a fleet member.
    pub heartbeat: Option<i64>,
    /// False when it has not been heard from for longer than the fleet's
    /// `host_timeout`: it keeps the request open until it is back or forgotten.
    pub reachable: bool,
}

/// Where a confirmed request stands: its report once complete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureProgress {
    pub request: String,
    pub lines: Vec<ErasureLine>,
    /// Every box that had a copy has removed it (or was forgotten).
    pub complete: bool,
    /// Boxes that have not finished, and what they still hold.
    pub open: Vec<OpenHost>,
    /// When it was confirmed and completed (fleet requests).
    pub requested_at: Option<i64>,
    pub completed_at: Option<i64>,
}

impl ErasureProgress {
    /// Counts of erased, waiting for Object Lock, pending, closed.
    pub fn counts(&self) -> [u64; 4] {
        let mut out = [0; 4];
        for l in &self.lines {
            let i = match l.outcome {
                CopyOutcome::Erased { .. } => 0,
                CopyOutcome::Waiting { .. } => 1,
                CopyOutcome::Pending { .. } => 2,
                CopyOutcome::Closed { .. } => 3,
            };
            out[i] += 1;
        }
        out
    }
}
