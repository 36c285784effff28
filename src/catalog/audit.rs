//! The audit trail as the catalog shows it: entries filtered by user,
//! action, recording, case and date, newest first and bounded, with the
//! hash chain's verification status (one box's trail; a fleet shows the
//! boxes it can verify).

use serde::{Deserialize, Serialize};

/// Which entries to show.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditQuery {
    /// Entries whose user contains this text (case-insensitive).
    pub user: Option<String>,
    /// One action (`listen`, `hold-add`, …).
    pub action: Option<String>,
    /// Entries about this recording.
    pub recording: Option<super::RecordingRef>,
    pub case: Option<String>,
    /// Unix seconds, `[from, to)`.
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// The newest this many.
    pub limit: usize,
}

/// One entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditLine {
    pub host: String,
    pub id: i64,
    pub at: i64,
    pub user: String,
    pub action: String,
    pub case_id: Option<String>,
    pub subject: String,
    pub reason: String,
    pub recording_id: Option<i64>,
}

/// Whether a box's chain verifies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainStatus {
    pub host: String,
    /// Entries verified and the head hash, or where the chain breaks.
    pub verified: Result<(u64, String), String>,
}

/// The entries shown and the chains' status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditPage {
    /// Newest first.
    pub lines: Vec<AuditLine>,
    /// More entries matched than `limit`.
    pub truncated: bool,
    pub chains: Vec<ChainStatus>,
}
