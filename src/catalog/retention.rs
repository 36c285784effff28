//! Retention as the catalog shows it: the rules in force (one box's
//! `[retention]`, or the fleet's policy in the shared database), a change
//! previewed — what it would delete, on which box, and when — and applied.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::{Keep, RetentionPolicy};

/// The rules: a period per campaign, and the default for the rest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rules {
    pub default: Keep,
    pub campaigns: BTreeMap<String, Keep>,
    /// Whether a recording never archived may be deleted when due.
    pub delete_unarchived: bool,
}

impl Rules {
    /// The rules of a policy.
    pub fn of(policy: &RetentionPolicy) -> Rules {
        Rules {
            default: policy.default.clone(),
            campaigns: policy.campaigns.clone(),
            delete_unarchived: policy.delete_unarchived,
        }
    }

    /// `base` (its sweep interval, attribution wait) with these rules.
    pub fn applied_to(&self, base: &RetentionPolicy) -> RetentionPolicy {
        RetentionPolicy {
            default: self.default.clone(),
            campaigns: self.campaigns.clone(),
            delete_unarchived: self.delete_unarchived,
            ..base.clone()
        }
    }

    /// These rules with `change` made.
    pub fn changed(&self, change: &RetentionChange) -> Rules {
        let mut out = self.clone();
        match (&change.campaign, &change.keep) {
            (None, Some(keep)) => out.default = keep.clone(),
            // The default cannot be unset: `forever` keeps everything.
            (None, None) => out.default = Keep::Forever,
            (Some(c), Some(keep)) => {
                out.campaigns.insert(c.clone(), keep.clone());
            }
            (Some(c), None) => {
                out.campaigns.remove(c);
            }
        }
        out
    }

    /// One line naming every rule (`default = 180d, SALES = forever`).
    pub fn summary(&self) -> String {
        let mut s = format!("default = {}", self.default);
        for (c, k) in &self.campaigns {
            s.push_str(&format!(", {c} = {k}"));
        }
        s
    }
}

/// The retention policy in force, and where it is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionView {
    pub rules: Rules,
    /// Where the rules live: this box's config file, or the fleet's database.
    pub source: String,
    /// Whether `retention_apply` can change them (a config file is the
    /// operator's to edit, never recvault's).
    pub editable: bool,
    /// Fleet policies: their version, who set them and when.
    pub version: Option<i64>,
    pub set_by: Option<String>,
    pub set_at: Option<i64>,
}

/// One change: a campaign's period set (or unset: the default applies to
/// it again), or the default's set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionChange {
    /// `None`: the default rule.
    pub campaign: Option<String>,
    /// `None`: unset the campaign's rule.
    pub keep: Option<Keep>,
}

/// What the recordings of one box and campaign come to under a change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImpactRow {
    pub host: String,
    pub campaign: Option<String>,
    /// The day (unix seconds of its start) they become due; `None`: due now.
    pub due: Option<i64>,
    pub recordings: u64,
    /// Bytes in the store (or on disk if never archived).
    pub bytes: u64,
    /// Of those, kept by an active legal hold.
    pub held: u64,
}

/// What a change would do: recordings it would delete that the policy in
/// force would not (yet), by box, campaign and day; and those it would
/// keep that the policy in force would delete.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionImpact {
    pub before: String,
    pub after: String,
    /// Deleted sooner (or at all) under the change, up to `horizon`.
    pub sooner: Vec<ImpactRow>,
    /// Due under the policy in force but kept (longer) under the change.
    pub spared: Vec<ImpactRow>,
    /// The preview looks this far ahead (unix seconds).
    pub horizon: i64,
}

impl RetentionImpact {
    /// Recordings (and bytes) the change deletes at the next sweep, held
    /// ones left out.
    pub fn due_now(&self) -> (u64, u64) {
        self.sooner
            .iter()
            .filter(|r| r.due.is_none())
            .fold((0, 0), |(n, b), r| (n + r.recordings - r.held, b + r.bytes))
    }
}
