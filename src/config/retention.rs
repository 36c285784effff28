//! Retention policy: how long each campaign's recordings are kept, counted
//! from the call time, and which config key decided it.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// How long a recording is kept. Serialized as written (`90d`, `forever`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Keep {
    /// Never deleted by retention.
    Forever,
    /// Deleted once the call is this old. `text` is what the operator wrote.
    For { secs: i64, text: String },
}

impl Keep {
    /// Parses `forever` or a duration of at least one day (`90d`, `7y`, `26w`).
    pub fn parse(text: &str) -> Result<Keep, String> {
        let text = text.trim();
        if text == "forever" {
            return Ok(Keep::Forever);
        }
        let d = humantime::parse_duration(text).map_err(|e| {
            format!("`{text}` is not a retention period ({e}); use e.g. `90d`, `7y` or `forever`")
        })?;
        if d < Duration::from_secs(86400) {
            return Err(format!(
                "`{text}` is shorter than a day; retention deletes recordings, so use at least `1d` (or `forever`)"
            ));
        }
        Ok(Keep::For {
            secs: d.as_secs() as i64,
            text: text.to_string(),
        })
    }

    /// Seconds kept, `None` for ever.
    pub fn secs(&self) -> Option<i64> {
        match self {
            Keep::Forever => None,
            Keep::For { secs, .. } => Some(*secs),
        }
    }
}

impl From<Keep> for String {
    fn from(k: Keep) -> String {
        k.to_string()
    }
}

impl TryFrom<String> for Keep {
    type Error = String;
    fn try_from(text: String) -> Result<Keep, String> {
        Keep::parse(&text)
    }
}

impl fmt::Display for Keep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Keep::Forever => f.write_str("forever"),
            Keep::For { text, .. } => f.write_str(text),
        }
    }
}

/// `[retention]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// For recordings of campaigns not listed (and unattributed ones).
    pub default: Keep,
    /// Per-campaign periods, by exact campaign id.
    pub campaigns: BTreeMap<String, Keep>,
    /// How often the daemon sweeps.
    pub sweep_every: Duration,
    /// Whether a recording that is due but was never archived may be
    /// deleted (its local copy, the only one). Off: it is archived first.
    pub delete_unarchived: bool,
    /// With `[vicidial]` on: how long a recording the database has not yet
    /// attributed is kept back from retention (its campaign may still
    /// change); after that the rule its file name gives applies.
    pub attribution_wait: Option<Duration>,
}

impl Default for RetentionPolicy {
    /// Keep everything: nothing is deleted until an operator sets a policy.
    fn default() -> RetentionPolicy {
        RetentionPolicy {
            default: Keep::Forever,
            campaigns: BTreeMap::new(),
            sweep_every: Duration::from_secs(3600),
            delete_unarchived: false,
            attribution_wait: None,
        }
    }
}

/// The rule that applies to one recording: the config key and its period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule<'a> {
    /// The campaign the rule is for, `None` for the default.
    pub campaign: Option<&'a str>,
    pub keep: &'a Keep,
}

impl fmt::Display for Rule<'_> {
    /// `retention.campaigns.COLLECT = 90d` or `retention.default = 180d`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.campaign {
            Some(c) => write!(f, "retention.campaigns.{c} = {}", self.keep),
            None => write!(f, "retention.default = {}", self.keep),
        }
    }
}

impl RetentionPolicy {
    /// The rule for a recording of `campaign` (`None`: unattributed).
    pub fn rule_for<'a>(&'a self, campaign: Option<&str>) -> Rule<'a> {
        match campaign.and_then(|c| self.campaigns.get_key_value(c)) {
            Some((c, keep)) => Rule {
                campaign: Some(c.as_str()),
                keep,
            },
            None => Rule {
                campaign: None,
                keep: &self.default,
            },
        }
    }

    /// When a recording of `campaign` whose call was at `call_time` becomes
    /// due for deletion; `None` if it is kept for ever.
    pub fn due_at(&self, campaign: Option<&str>, call_time: i64) -> Option<i64> {
        self.rule_for(campaign)
            .keep
            .secs()
            .map(|s| call_time.saturating_add(s))
    }

    /// True if nothing is ever deleted.
    pub fn keeps_everything(&self) -> bool {
        self.default == Keep::Forever && self.campaigns.values().all(|k| *k == Keep::Forever)
    }

    /// One line naming every rule, for the audit trail of config changes.
    pub fn summary(&self) -> String {
        let mut s = format!("default = {}", self.default);
        for (c, k) in &self.campaigns {
            s.push_str(&format!(", {c} = {k}"));
        }
        if self.delete_unarchived {
            s.push_str(", delete_unarchived = true");
        }
        if let Some(wait) = self.attribution_wait {
            s.push_str(&format!(
                ", waits up to {} for VICIdial attribution",
                humantime::format_duration(wait)
            ));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetentionPolicy {
        RetentionPolicy {
            default: Keep::parse("180d").unwrap(),
            campaigns: [
                ("COLLECT".to_string(), Keep::parse("90d").unwrap()),
                ("SALES".to_string(), Keep::parse("forever").unwrap()),
                ("CONSENT".to_string(), Keep::parse("7y").unwrap()),
            ]
            .into(),
            sweep_every: Duration::from_secs(3600),
            delete_unarchived: false,
            attribution_wait: None,
        }
    }

    #[test]
    fn campaigns_resolve_to_their_rule_else_the_default() {
        let p = policy();
        let day = 86400;
        assert_eq!(p.due_at(Some("COLLECT"), 0), Some(90 * day));
        assert_eq!(p.due_at(Some("SALES"), 0), None);
        assert_eq!(p.due_at(Some("CONSENT"), 0), Some(220_903_200));
        assert_eq!(p.due_at(Some("OTHER"), 0), Some(180 * day));
        assert_eq!(p.due_at(None, 10), Some(180 * day + 10));
        assert_eq!(
            p.rule_for(Some("COLLECT")).to_string(),
            "retention.campaigns.COLLECT = 90d"
        );
        assert_eq!(
            p.rule_for(Some("collect")).to_string(),
            "retention.default = 180d",
            "campaign ids match exactly"
        );
        assert!(!p.keeps_everything());
        assert!(RetentionPolicy::default().keeps_everything());
    }

    #[test]
    fn periods_parse_or_explain() {
        assert_eq!(Keep::parse("forever").unwrap(), Keep::Forever);
        assert_eq!(Keep::parse("1w").unwrap().secs(), Some(7 * 86400));
        assert!(Keep::parse("soon").unwrap_err().contains("`soon`"));
        assert!(
            Keep::parse("2h")
                .unwrap_err()
                .contains("shorter than a day")
        );
        assert!(Keep::parse("0s").is_err());
    }
}
