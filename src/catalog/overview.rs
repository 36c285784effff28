//! The overview of a box, as an operator at 3 a.m. wants it: recordings per
//! state, the backlog, disk, the store's health, the last errors and, in a
//! fleet, whether the box is heard from and reaches the shared database.
//! A fleet member publishes its own with each heartbeat.

use serde::{Deserialize, Serialize};

/// Count and bytes of the recordings in one state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateCount {
    pub state: String,
    pub count: u64,
    pub bytes: u64,
    pub object_bytes: u64,
}

/// A filesystem recvault writes to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disk {
    pub path: String,
    pub free: u64,
    pub total: u64,
}

/// The store as this box last saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreHealth {
    /// What it is (`s3 bucket/prefix`), or `none`.
    pub name: String,
    /// Recordings waiting because the store could not be reached.
    pub unreachable_failures: u64,
    /// Recordings the store refused or failed to verify.
    pub refused_failures: u64,
}

/// One box.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoxOverview {
    pub host: String,
    /// recvault's version there.
    pub version: String,
    pub states: Vec<StateCount>,
    /// Recordings not yet archived, and the oldest one's time.
    pub waiting: u64,
    pub oldest_waiting: Option<i64>,
    pub disks: Vec<Disk>,
    pub store: StoreHealth,
    /// The newest errors, one line each.
    pub last_errors: Vec<String>,
    /// When this was true (unix seconds).
    pub at: i64,
    /// Fleet members: the last heartbeat the shared database has.
    pub heartbeat: Option<i64>,
    /// Fleet members: heard from within `host_timeout` (one box: true).
    pub reachable: bool,
    /// Fleet members: forgotten by `recvault fleet forget`, and when.
    pub forgotten: Option<i64>,
    /// Fleet members: whether the box reaches the shared database, and the
    /// last error when it does not.
    pub database: Option<Result<(), String>>,
    /// A fingerprint of the box's pseudonym key (never the key itself;
    /// `None`: no key yet). The boxes of a fleet share one key, or a
    /// request on one box cannot match what another erased.
    #[serde(default)]
    pub pseudonym_key: Option<String>,
}
