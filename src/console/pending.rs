//! The two-person rule: a hold release or an erasure asked for by one
//! person waits here until a second person with the admin role confirms it
//! (never the one who asked), is cancelled, or expires. Kept in the
//! daemon's memory only: an erasure request names the person it is about,
//! and nothing of them may outlive the request on disk; a restart drops
//! what waits (the safe way: nothing happens without both people).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use super::sessions::Who;
use crate::catalog::Selector;

/// Requests waiting at once, at most.
const MAX_WAITING: usize = 1000;

/// What waits for a second person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Release every active hold of `case`.
    Release { case: String, reason: String },
    /// Confirm erasure `request` over `selectors`, exactly the previewed
    /// set (`token`); `summary` says what the preview showed (counts only).
    Erasure {
        request: String,
        selectors: Vec<Selector>,
        token: String,
        summary: String,
    },
}

impl Change {
    /// What it is about, for the lists (`hold release SALES-1`).
    pub fn title(&self) -> String {
        match self {
            Change::Release { case, .. } => format!("release of hold case {case}"),
            Change::Erasure { request, .. } => format!("erasure request {request}"),
        }
    }

    fn same_subject(&self, other: &Change) -> bool {
        match (self, other) {
            (Change::Release { case: a, .. }, Change::Release { case: b, .. }) => a == b,
            (Change::Erasure { request: a, .. }, Change::Erasure { request: b, .. }) => a == b,
            _ => false,
        }
    }
}

/// A change waiting for its second person.
#[derive(Debug, Clone)]
pub struct Waiting {
    pub id: u64,
    pub change: Change,
    pub by: Who,
    pub at: i64,
    pub expires: i64,
}

/// Every change waiting.
pub struct Pending {
    ttl: Duration,
    inner: Mutex<(u64, BTreeMap<u64, Waiting>)>,
}

impl Pending {
    pub fn new(ttl: Duration) -> Pending {
        Pending {
            ttl,
            inner: Mutex::new((0, BTreeMap::new())),
        }
    }

    /// Adds `change` asked by `by` at `now`; refused while the same case or
    /// request already waits.
    pub fn add(&self, change: Change, by: Who, now: i64) -> Result<Waiting, String> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.1.retain(|_, w| w.expires > now);
        if let Some(w) = inner.1.values().find(|w| w.change.same_subject(&change)) {
            return Err(format!(
                "the {} already waits for a second person (asked by {})",
                w.change.title(),
                w.by.name
            ));
        }
        if inner.1.len() >= MAX_WAITING {
            return Err("too many requests are waiting; confirm or cancel some first".into());
        }
        inner.0 += 1;
        let w = Waiting {
            id: inner.0,
            change,
            by,
            at: now,
            expires: now + self.ttl.as_secs() as i64,
        };
        inner.1.insert(w.id, w.clone());
        Ok(w)
    }

    /// Everything waiting at `now`, oldest first.
    pub fn list(&self, now: i64) -> Vec<Waiting> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.1.retain(|_, w| w.expires > now);
        inner.1.values().cloned().collect()
    }

    /// Takes request `id` out if it still waits at `now`.
    pub fn take(&self, id: u64, now: i64) -> Option<Waiting> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.1.retain(|_, w| w.expires > now);
        inner.1.remove(&id)
    }

    /// Puts a request taken by [`Pending::take`] back (the change failed).
    pub fn put_back(&self, w: Waiting) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.1.insert(w.id, w);
    }
}
