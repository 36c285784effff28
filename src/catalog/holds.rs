//! Legal holds as the catalog shows them: each hold with what it covers
//! (how many recordings, on which boxes), a new hold's preview, and what
//! placing or releasing one did beyond the hold itself (its copy in the
//! store, the Object Lock mirror).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ledger::holds::{Hold, Selector, describe};

/// One hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldInfo {
    pub id: i64,
    pub case_id: String,
    pub reason: String,
    pub created_by: String,
    pub created_at: i64,
    pub released_at: Option<i64>,
    pub released_by: Option<String>,
    pub release_reason: Option<String>,
    pub selectors: Vec<Selector>,
    /// The box it was placed from (in a fleet).
    pub origin: Option<String>,
    /// What it covers now (released: what it would cover), when asked for.
    pub coverage: Option<Coverage>,
}

impl HoldInfo {
    /// A ledger hold, placed from `origin` where known, covering `coverage`.
    pub fn of(h: Hold, coverage: Option<Coverage>) -> HoldInfo {
        HoldInfo {
            id: h.id,
            case_id: h.case_id,
            reason: h.reason,
            created_by: h.created_by,
            created_at: h.created_at,
            released_at: h.released_at,
            released_by: h.released_by,
            release_reason: h.release_reason,
            selectors: h.selectors,
            origin: None,
            coverage,
        }
    }

    /// The ledger's hold this is, without where it came from or what it
    /// covers (the inverse of [`HoldInfo::of`]).
    pub fn into_hold(self) -> Hold {
        Hold {
            id: self.id,
            case_id: self.case_id,
            reason: self.reason,
            created_by: self.created_by,
            created_at: self.created_at,
            released_at: self.released_at,
            released_by: self.released_by,
            release_reason: self.release_reason,
            selectors: self.selectors,
        }
    }

    /// The selectors as one line (`campaign=SALES phone=555…`).
    pub fn describe(&self) -> String {
        describe(&self.selectors)
    }

    /// True until released.
    pub fn active(&self) -> bool {
        self.released_at.is_none()
    }
}

/// What a hold covers (or would): recordings in all, per box, and how many
/// of them a deletion reserved before the hold (they go anyway).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coverage {
    pub recordings: u64,
    pub per_host: BTreeMap<String, u64>,
    pub being_deleted: u64,
}

/// A hold to place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewHold {
    pub case_id: String,
    pub reason: String,
    pub selectors: Vec<Selector>,
}

/// What happened beside a hold change: the hold table copied to the store,
/// and the store's Object Lock legal holds set to match. The hold stands
/// whatever these say.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Aftermath {
    /// The copy's key, or why it could not be made; `None` without a store.
    pub copied: Option<Result<String, String>>,
    /// With `[store] object_lock_legal_hold`: what the mirror did.
    pub mirror: Option<Mirrored>,
}

/// Object Lock legal holds set on (and off), and the keys that failed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mirrored {
    pub on: u64,
    pub off: u64,
    pub failed: Vec<(String, String)>,
}

/// A hold placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldPlacement {
    pub id: i64,
    pub coverage: Coverage,
    pub aftermath: Aftermath,
}

/// A case's holds released.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldRelease {
    pub released: usize,
    pub aftermath: Aftermath,
}
