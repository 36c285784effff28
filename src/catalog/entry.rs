//! What the catalog says about one recording: its facts as a search row
//! ([`Entry`]), and, asked about it alone, every copy and where it is, the
//! holds on it and who listened ([`Detail`]). Plain values, the same
//! whether one box's ledger or a fleet's shared database answered.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::holds::HoldInfo;
use crate::recording::key::{decode_name, display_name};
use crate::recording::{ErasureMark, FileIdentity, Recording, State};
use crate::units::local_time;

/// A recording, named the same everywhere in a fleet: the box that recorded
/// it (`[daemon] host`) and its id in that box's ledger. Written `host/id`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RecordingRef {
    pub host: String,
    pub id: i64,
}

impl fmt::Display for RecordingRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.host, self.id)
    }
}

impl FromStr for RecordingRef {
    type Err = String;
    /// `host/id`; a host name never holds `/`, so the last one splits.
    fn from_str(text: &str) -> Result<RecordingRef, String> {
        let bad = || format!("`{text}` is not HOST/ID (e.g. dialer1/42)");
        let (host, id) = text.rsplit_once('/').ok_or_else(bad)?;
        let id = id.parse().map_err(|_| bad())?;
        if host.is_empty() {
            return Err(bad());
        }
        Ok(RecordingRef {
            host: host.to_string(),
            id,
        })
    }
}

/// What the catalog knows of one recording: a search's row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The box that recorded it.
    pub host: String,
    /// Its id in that box's ledger.
    pub id: i64,
    /// Its file name, for people (percent-encoded where not printable).
    pub name: String,
    /// Where its file is (was) on its box.
    pub path: String,
    pub state: State,
    /// Where it really is: a failed recording's state to resume from.
    pub step: State,
    /// The call time, or the file's time where the call's is unknown.
    pub time: i64,
    /// The call time, where known.
    pub call_time: Option<i64>,
    pub campaign: Option<String>,
    pub agent: Option<String>,
    /// The caller's number (`recording::phone` form), or its pseudonym once erased.
    pub phone: Option<String>,
    pub lead_id: Option<String>,
    /// The original's size.
    pub size: u64,
    pub sha256: Option<String>,
    pub codec: Option<String>,
    pub object_key: Option<String>,
    pub object_size: Option<u64>,
    pub object_sha256: Option<String>,
    pub deleted_at: Option<i64>,
    pub deleted_by: Option<String>,
    pub erasure: Option<ErasureMark>,
    /// VICIdial's `recording_log.recording_id`, once attributed.
    pub vicidial_recording_id: Option<i64>,
    /// The call's length in seconds, from VICIdial's database.
    pub call_length: Option<i64>,
    /// Cases whose active holds cover it (empty: none).
    pub held_by: Vec<String>,
    /// A deletion reserved for it and under way (`retention`, `erasure`, `local`).
    pub deleting: Option<String>,
}

impl Entry {
    /// An entry from a ledger row of box `host`, with the cases holding it.
    pub fn of(host: &str, r: &Recording, held_by: Vec<String>) -> Entry {
        Entry {
            host: host.to_string(),
            id: r.id,
            name: display_name(&r.name),
            path: r.path.display().to_string(),
            state: r.state,
            step: r.step(),
            time: r.time_secs(),
            call_time: r.call_time,
            campaign: r.campaign.clone(),
            agent: r.agent.clone(),
            phone: r.phone.clone(),
            lead_id: r.lead_id.clone(),
            size: r.identity.size,
            sha256: r.sha256.clone(),
            codec: r.codec.clone(),
            object_key: r.object_key.clone(),
            object_size: r.object_size,
            object_sha256: r.object_sha256.clone(),
            deleted_at: r.deleted_at,
            deleted_by: r.deleted_by.clone(),
            erasure: r.erasure.clone(),
            vicidial_recording_id: r.vicidial_recording_id,
            call_length: r.call_length,
            held_by,
            deleting: None,
        }
    }

    /// Its name as `host/id`.
    pub fn reference(&self) -> RecordingRef {
        RecordingRef {
            host: self.host.clone(),
            id: self.id,
        }
    }

    /// True if an active legal hold covers it.
    pub fn held(&self) -> bool {
        !self.held_by.is_empty()
    }

    /// Its state as people read it: an erasure's over the ledger state.
    pub fn status(&self) -> &str {
        match &self.erasure {
            Some(e) if e.erased_at.is_some() => "erased",
            Some(_) => "erasing",
            None => self.state.as_str(),
        }
    }

    /// The recording as a ledger row would hold it, for reading its object
    /// (export) on a box that is not its own: no file identity beyond size
    /// and time, so a local file is never taken for it.
    pub fn to_recording(&self) -> Recording {
        let name = decode_name(&self.name).unwrap_or_else(|| self.name.clone().into_bytes());
        Recording {
            id: self.id,
            path: PathBuf::from(&self.path),
            name,
            identity: FileIdentity {
                dev: 0,
                ino: 0,
                size: self.size,
                mtime_ns: self.time.saturating_mul(1_000_000_000),
            },
            state: self.state,
            resume_state: (self.state == State::Failed).then_some(self.step),
            sha256: self.sha256.clone(),
            object_key: self.object_key.clone(),
            object_size: self.object_size,
            object_sha256: self.object_sha256.clone(),
            store_checksum: None,
            codec: self.codec.clone(),
            attempts: 0,
            last_error: None,
            retry_at: None,
            first_seen: self.time,
            updated_at: self.time,
            campaign: self.campaign.clone(),
            call_time: self.call_time,
            phone: self.phone.clone(),
            agent: self.agent.clone(),
            lead_id: self.lead_id.clone(),
            deleted_at: self.deleted_at,
            deleted_by: self.deleted_by.clone(),
            call_length: self.call_length,
            vicidial_recording_id: self.vicidial_recording_id,
            erasure: self.erasure.clone(),
        }
    }

    /// True if the store acknowledged its object and it was not deleted.
    pub fn is_stored(&self) -> bool {
        self.object_key.is_some()
            && matches!(
                self.step,
                State::Uploaded | State::Verified | State::LocalDeleted
            )
    }

    /// True if an object may exist in the store (also a compressed one,
    /// whose upload may have gone through before a crash could record it).
    pub fn may_be_stored(&self) -> bool {
        self.is_stored() || (self.object_key.is_some() && self.step == State::Compressed)
    }

    /// Where the recording is now, for people (one line).
    pub fn whereabouts(&self) -> String {
        let key = self.object_key.as_deref().unwrap_or("-");
        if let Some(e) = &self.erasure {
            return match (e.erased_at, e.wait_until) {
                (Some(at), _) => format!("erased {} (request {})", local_time(at), e.request),
                (None, Some(until)) => format!(
                    "being erased (request {}): store {key} kept by Object Lock until {}",
                    e.request,
                    local_time(until)
                ),
                (None, None) => format!("being erased (request {})", e.request),
            };
        }
        match self.step {
            State::Uploaded | State::Verified => format!("local {} + store {key}", self.path),
            State::LocalDeleted => format!("store {key}"),
            State::RemoteDeleted => format!(
                "deleted {} by {}",
                self.deleted_at.map(local_time).unwrap_or_default(),
                self.deleted_by.as_deref().unwrap_or("retention")
            ),
            State::Gone => "gone (removed by someone else before archiving)".to_string(),
            _ => format!("local {}", self.path),
        }
    }
}

/// Where one copy of a recording is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Place {
    /// The file in the spool of its box.
    Spool { path: String },
    /// The compressed object waiting in its box's staging directory.
    Staging { path: String },
    /// The object in the store.
    Store { key: String },
}

/// One copy of a recording: which box has it, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Copy {
    /// The box that holds it (for the store: the box that put it there).
    pub host: String,
    pub place: Place,
}

impl fmt::Display for Copy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.place {
            Place::Spool { path } => write!(f, "local file {path} on {}", self.host),
            Place::Staging { path } => write!(f, "staging {path} on {}", self.host),
            Place::Store { key } => write!(f, "store {key}"),
        }
    }
}

/// Someone who asked to hear a recording (served or refused).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listen {
    pub at: i64,
    /// Who: the authenticated user, or `anonymous`.
    pub user: String,
    /// Outcome, status, bytes, client address, user agent.
    pub what: String,
}

/// Everything about one recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Detail {
    pub entry: Entry,
    /// Every copy there is, and where.
    pub copies: Vec<Copy>,
    /// The active holds covering it.
    pub holds: Vec<HoldInfo>,
    /// Every request to hear it, oldest first.
    pub listens: Vec<Listen>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_read_back() {
        let r: RecordingRef = "dialer-1.example/42".parse().unwrap();
        assert_eq!((r.host.as_str(), r.id), ("dialer-1.example", 42));
        assert_eq!(r.to_string(), "dialer-1.example/42");
        for bad in ["42", "/42", "a/b", "a/"] {
            assert!(bad.parse::<RecordingRef>().is_err(), "{bad}");
        }
    }
}
