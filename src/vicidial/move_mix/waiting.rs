//! What move_mix remembers between passes, in memory only: which names wait
//! and why (so a pair that cannot be mixed is not read again at every pass
//! while its legs stay the same, and each reason is logged once), and
//! whether the database was down (so its return is logged).

use std::collections::HashMap;

use super::legs::{Legs, Listing};
use crate::recording::FileIdentity;

/// A name held back, and until when.
#[derive(Debug, Clone)]
struct Held {
    why: String,
    legs: Vec<FileIdentity>,
    until_ns: i64,
}

/// The memory of one MIX directory's passes.
#[derive(Debug, Default)]
pub struct Waiting {
    held: HashMap<String, Held>,
    /// The last error logged per name (files that could not be read or moved).
    errors: HashMap<String, String>,
    /// The database's last error, while it is down.
    database: Option<String>,
}

fn identities(legs: &Legs) -> Vec<FileIdentity> {
    legs.present().iter().map(|(_, l)| l.identity).collect()
}

impl Waiting {
    /// If `stem` was held back with these very legs and its time has not
    /// come, until when.
    pub fn still_held(&self, stem: &str, legs: &Legs, now_ns: i64) -> Option<i64> {
        self.held
            .get(stem)
            .filter(|h| now_ns < h.until_ns && h.legs == identities(legs))
            .map(|h| h.until_ns)
    }

    /// Holds `stem` back until `until_ns`; true if this reason is new for it
    /// (to be logged).
    pub fn hold(&mut self, stem: &str, legs: &Legs, why: &str, until_ns: i64) -> bool {
        let held = Held {
            why: why.to_string(),
            legs: identities(legs),
            until_ns,
        };
        match self.held.insert(stem.to_string(), held) {
            Some(before) => before.why != why,
            None => true,
        }
    }

    /// Notes an error about `stem`; true if it is new (to be logged).
    pub fn error(&mut self, stem: &str, text: &str) -> bool {
        self.errors
            .insert(stem.to_string(), text.to_string())
            .as_deref()
            != Some(text)
    }

    /// `stem` is done (or gone): nothing about it is remembered.
    pub fn clear(&mut self, stem: &str) {
        self.held.remove(stem);
        self.errors.remove(stem);
    }

    /// Notes the database down with `text`; true if it is new (to be logged).
    pub fn database_down(&mut self, text: &str) -> bool {
        self.database.replace(text.to_string()).as_deref() != Some(text)
    }

    /// Notes the database answering; true if it was down (to be logged).
    pub fn database_up(&mut self) -> bool {
        self.database.take().is_some()
    }

    /// Forgets names no longer in MIX.
    pub fn forget_gone(&mut self, listing: &Listing) {
        self.held.retain(|k, _| listing.legs.contains_key(k));
        self.errors.retain(|k, _| listing.legs.contains_key(k));
    }
}
