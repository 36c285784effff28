//! `[console]`: the compliance console served under `/console/` on the
//! `[serve]` listener — whether it is on, how long a session lives, whether
//! a listener must say why, the two-person rule, and which VICIdial user
//! levels get which role.

use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use super::serve::ServeConfig;
use super::validate::Validator;

/// Whether a listener must type why before playing or downloading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReasonRule {
    Required,
    Optional,
}

/// `[console]`, validated: present only when `enabled = true`.
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    /// A session unused this long is ended.
    pub idle_timeout: Duration,
    /// A session ends this long after its login, used or not.
    pub max_session: Duration,
    pub reason: ReasonRule,
    /// Releasing a hold and confirming an erasure need a second person.
    pub two_person: bool,
    /// A request waiting for its second person expires after this long.
    pub pending_ttl: Duration,
    /// VICIdial logins: `None` without `[vicidial]` (local accounts only).
    pub vicidial: Option<LevelRoles>,
}

/// The lowest VICIdial `user_level` of each role (a higher one wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LevelRoles {
    pub listener: u8,
    pub compliance: u8,
    pub admin: u8,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConsole {
    enabled: Option<bool>,
    idle_timeout: Option<String>,
    max_session: Option<String>,
    reason: Option<String>,
    two_person: Option<bool>,
    pending_ttl: Option<String>,
    vicidial_login: Option<bool>,
    listener_level: Option<u8>,
    compliance_level: Option<u8>,
    admin_level: Option<u8>,
}

/// Validates `[console]`; `None` unless enabled. It needs `[serve]`, and
/// outside loopback it needs `[serve]`'s TLS: passwords and session
/// cookies never travel in clear.
pub(super) fn parse_section(
    v: &Validator<'_>,
    raw: RawConsole,
    serve: Option<&ServeConfig>,
    vicidial: bool,
) -> Result<Option<ConsoleConfig>, ConfigError> {
    if !raw.enabled.unwrap_or(false) {
        return Ok(None);
    }
    let Some(serve) = serve else {
        return Err(v.invalid(
            "console.enabled",
            "the console is served on [serve]'s listener: set serve.listen (e.g. \"127.0.0.1:8089\")",
        ));
    };
    if serve.tls.is_none() && !serve.listen.ip().is_loopback() {
        return Err(v.invalid(
            "console.enabled",
            format!(
                "the console over plain HTTP on {} would send passwords and session cookies in clear: set serve.tls_cert and serve.tls_key, or listen on 127.0.0.1 only (behind a TLS proxy)",
                serve.listen
            ),
        ));
    }
    let (idle_timeout, max_session, pending_ttl) = durations(v, &raw)?;
    let reason = match raw.reason.as_deref() {
        None | Some("required") => ReasonRule::Required,
        Some("optional") => ReasonRule::Optional,
        Some(other) => {
            return Err(v.invalid(
                "console.reason",
                format!("`{other}` is not a rule; use \"required\" or \"optional\""),
            ));
        }
    };
    let vicidial_login = raw.vicidial_login.unwrap_or(vicidial);
    if vicidial_login && !vicidial {
        return Err(v.invalid(
            "console.vicidial_login",
            "needs [vicidial] enabled = true (users are checked in its database)",
        ));
    }
    let roles = level_roles(v, &raw)?;
    Ok(Some(ConsoleConfig {
        idle_timeout,
        max_session,
        reason,
        two_person: raw.two_person.unwrap_or(true),
        pending_ttl,
        vicidial: vicidial_login.then_some(roles),
    }))
}

/// `idle_timeout`, `max_session` and `pending_ttl`, each at least a minute.
fn durations(
    v: &Validator<'_>,
    raw: &RawConsole,
) -> Result<(Duration, Duration, Duration), ConfigError> {
    let idle_timeout = v.duration("console.idle_timeout", raw.idle_timeout.as_deref(), "15m")?;
    let max_session = v.duration("console.max_session", raw.max_session.as_deref(), "12h")?;
    let pending_ttl = v.duration("console.pending_ttl", raw.pending_ttl.as_deref(), "24h")?;
    for (key, d) in [
        ("console.idle_timeout", idle_timeout),
        ("console.max_session", max_session),
        ("console.pending_ttl", pending_ttl),
    ] {
        if d < Duration::from_secs(60) {
            return Err(v.invalid(key, "must be at least 1m"));
        }
    }
    Ok((idle_timeout, max_session, pending_ttl))
}

/// The VICIdial levels of the roles: 1 to 9, rising.
fn level_roles(v: &Validator<'_>, raw: &RawConsole) -> Result<LevelRoles, ConfigError> {
    let roles = LevelRoles {
        listener: raw.listener_level.unwrap_or(7),
        compliance: raw.compliance_level.unwrap_or(8),
        admin: raw.admin_level.unwrap_or(9),
    };
    for (key, level) in [
        ("console.listener_level", roles.listener),
        ("console.compliance_level", roles.compliance),
        ("console.admin_level", roles.admin),
    ] {
        if !(1..=9).contains(&level) {
            return Err(v.invalid(key, "must be a VICIdial user level from 1 to 9"));
        }
    }
    if !(roles.listener <= roles.compliance && roles.compliance <= roles.admin) {
        return Err(v.invalid(
            "console.compliance_level",
            "levels must rise: listener_level <= compliance_level <= admin_level",
        ));
    }
    Ok(roles)
}
