//! What a recording is: the states of its life, its identity on disk, what
//! its VICIdial file name says about the call (`name`), how phone numbers
//! compare (`phone`), how an erased recording's personal data is replaced
//! (`pseudonym`) and how its object in the store is named (`key`). Pure
//! values and rules: no I/O, no SQL, and no imports from any other part of
//! recvault but `digest` and `units`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

pub mod key;
pub mod name;
pub mod phone;
pub mod pseudonym;

/// Where a recording is in its life. Each change is one ledger transaction.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Found in the spool; may still be written.
    Seen,
    /// Finished; waiting for `upload_after`.
    Settled,
    /// Object written to staging; hashes known.
    Compressed,
    /// Object stored; not yet read back.
    Uploaded,
    /// The store reported the same size and SHA-256: the local copy may go.
    Verified,
    /// Local copy removed (by us after verification, or by someone else after it).
    LocalDeleted,
    /// Deleted by retention (the object, and any local copy); metadata kept.
    RemoteDeleted,
    /// A step failed; retried from `resume_state` at `retry_at`.
    Failed,
    /// Will not be archived until an operator acts (symlink, FIFO, …).
    Quarantined,
    /// Vanished before it was archived (removed by someone else).
    Gone,
}

impl State {
    /// Every state, in life order.
    pub const ALL: [State; 10] = [
        State::Seen,
        State::Settled,
        State::Compressed,
        State::Uploaded,
        State::Verified,
        State::LocalDeleted,
        State::RemoteDeleted,
        State::Failed,
        State::Quarantined,
        State::Gone,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Seen => "seen",
            State::Settled => "settled",
            State::Compressed => "compressed",
            State::Uploaded => "uploaded",
            State::Verified => "verified",
            State::LocalDeleted => "local_deleted",
            State::RemoteDeleted => "remote_deleted",
            State::Failed => "failed",
            State::Quarantined => "quarantined",
            State::Gone => "gone",
        }
    }

    /// True while the recording waits to be archived (not yet verified, not
    /// given up on): what a backlog counts.
    pub fn is_waiting(self) -> bool {
        matches!(
            self,
            State::Seen | State::Settled | State::Compressed | State::Uploaded | State::Failed
        )
    }

    /// True while the spool file at the recording's path is still its concern.
    pub fn is_local(self) -> bool {
        !matches!(
            self,
            State::LocalDeleted | State::RemoteDeleted | State::Gone
        )
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for State {
    type Err = String;
    fn from_str(s: &str) -> Result<State, String> {
        State::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<_> = State::ALL.iter().map(|s| s.as_str()).collect();
                format!("unknown state `{s}`; one of: {}", names.join(", "))
            })
    }
}

/// Why a step failed, as far as retrying is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The store could not be reached: retried as soon as it answers again.
    StoreOutage,
    /// The store refused the request (credentials, a bad digest, no bucket).
    Refused,
    /// The store's copy did not match what was computed locally.
    Verification,
    /// Something local: the spool file, staging, the disk.
    Local,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::StoreOutage => "store_outage",
            FailureKind::Refused => "refused",
            FailureKind::Verification => "verification",
            FailureKind::Local => "local",
        }
    }
}

/// The identity of a spool file: if any of these change, it is not the file we hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileIdentity {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
}

impl FileIdentity {
    pub fn of(meta: &std::fs::Metadata) -> FileIdentity {
        use std::os::unix::fs::MetadataExt;
        FileIdentity {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            // Saturating: a file can claim any mtime (past 2262 overflows i64 ns).
            mtime_ns: meta
                .mtime()
                .saturating_mul(1_000_000_000)
                .saturating_add(meta.mtime_nsec()),
        }
    }
}

/// One recording's row in the ledger.
#[derive(Debug, Clone)]
pub struct Recording {
    pub id: i64,
    pub path: PathBuf,
    pub name: Vec<u8>,
    pub identity: FileIdentity,
    pub state: State,
    pub resume_state: Option<State>,
    /// SHA-256 (hex) of the original file.
    pub sha256: Option<String>,
    pub object_key: Option<String>,
    pub object_size: Option<u64>,
    /// SHA-256 (hex) of the object (the compressed bytes).
    pub object_sha256: Option<String>,
    /// The checksum string the store is expected to report back.
    pub store_checksum: Option<String>,
    pub codec: Option<String>,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub retry_at: Option<i64>,
    pub first_seen: i64,
    pub updated_at: i64,
    /// The campaign (or in-group) the call belongs to, if known.
    pub campaign: Option<String>,
    /// Unix seconds of the call, from the file name; `None` if unknown.
    pub call_time: Option<i64>,
    pub phone: Option<String>,
    pub agent: Option<String>,
    pub lead_id: Option<String>,
    /// When retention deleted it (unix seconds).
    pub deleted_at: Option<i64>,
    /// The retention rule that deleted it (or the erasure request).
    pub deleted_by: Option<String>,
    /// The call's length in seconds, from VICIdial's database.
    pub call_length: Option<i64>,
    /// Its `recording_log.recording_id` in VICIdial's database, once attributed.
    pub vicidial_recording_id: Option<i64>,
    /// Its data-subject erasure, once one was confirmed.
    pub erasure: Option<ErasureMark>,
}

/// A confirmed data-subject erasure of a recording.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ErasureMark {
    /// The request's reference (`--request`, or VICIdial's queue row).
    pub request: String,
    /// When every copy was gone and its personal data replaced; `None`
    /// while the erasure is under way.
    pub erased_at: Option<i64>,
    /// Object Lock keeps a version of its object until then (unix seconds):
    /// the daemon finishes the erasure after it.
    pub wait_until: Option<i64>,
}

impl Recording {
    /// The state the recording is in, or for a failed one the state its
    /// step resumes from: where it really is in its life.
    pub fn step(&self) -> State {
        match self.state {
            State::Failed => self.resume_state.unwrap_or(State::Seen),
            s => s,
        }
    }

    /// True if the store acknowledged its object (uploaded or later, not
    /// deleted): what can be read back or put under a legal hold.
    pub fn is_stored(&self) -> bool {
        self.object_key.is_some()
            && matches!(
                self.step(),
                State::Uploaded | State::Verified | State::LocalDeleted
            )
    }

    /// True if an object may exist in the store: also a compressed one, whose
    /// upload may have gone through before a crash could record it. What a
    /// deletion must remove.
    pub fn may_be_stored(&self) -> bool {
        self.is_stored() || (self.object_key.is_some() && self.step() == State::Compressed)
    }

    /// True once the recording was erased: no copy left anywhere, its
    /// personal data replaced. A playback link answers 410 Gone.
    pub fn is_erased(&self) -> bool {
        self.erasure.as_ref().is_some_and(|e| e.erased_at.is_some())
    }

    /// True if an erasure was confirmed (done or still under way): nothing
    /// may be played, archived or restored from it any more.
    pub fn erasure_requested(&self) -> bool {
        self.erasure.is_some()
    }

    /// The recording's time in seconds: the call time where the file name
    /// gave one, else the mtime. Retention counts from it; keys are dated by it.
    pub fn time_secs(&self) -> i64 {
        self.call_time
            .unwrap_or_else(|| self.identity.mtime_ns.div_euclid(1_000_000_000))
    }
}

#[cfg(test)]
impl Recording {
    /// A recording for unit tests: `name` in `/spool`, 300 bytes, just seen,
    /// nothing else known. Tests set what they need with `..`.
    pub fn example(id: i64, name: &str) -> Recording {
        Recording {
            id,
            path: std::path::PathBuf::from(format!("/spool/{name}")),
            name: name.as_bytes().to_vec(),
            identity: FileIdentity {
                dev: 1,
                ino: 2,
                size: 300,
                mtime_ns: 0,
            },
            state: State::Seen,
            resume_state: None,
            sha256: None,
            object_key: None,
            object_size: None,
            object_sha256: None,
            store_checksum: None,
            codec: None,
            attempts: 0,
            last_error: None,
            retry_at: None,
            first_seen: 0,
            updated_at: 0,
            campaign: None,
            call_time: None,
            phone: None,
            agent: None,
            lead_id: None,
            deleted_at: None,
            deleted_by: None,
            call_length: None,
            vicidial_recording_id: None,
            erasure: None,
        }
    }
}
