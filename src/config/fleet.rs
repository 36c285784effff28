//! `[fleet]`: whether this box governs its recordings together with the
//! other dialers of a cluster, through recvault's own tables in the
//! cluster's MariaDB. The connection is `[vicidial]`'s (astguiclient.conf)
//! unless `dsn_file` names a file holding a DSN. The password is a
//! [`Secret`]: no Debug, Display or error ever shows it.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::validate::Validator;
use super::vicidial::{DbSettings, Secret, VicidialConfig, parse_dsn};
use super::{ConfigError, DaemonConfig};

/// `[fleet]`, validated: present only with `enabled = true`.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// How to reach the fleet's database (its primary, never a replica).
    pub db: DbSettings,
    /// Where the connection came from, for messages (`[vicidial]` or the DSN file).
    pub db_source: String,
    /// A box not heard from for this long is unreachable; its recordings
    /// are governed by the leader, and its name may be taken by another box.
    pub host_timeout: Duration,
    /// How often this box writes its heartbeat (and overview).
    pub heartbeat: Duration,
    /// How long to wait for a connection, and for one statement.
    pub connect_timeout: Duration,
    pub query_timeout: Duration,
}

/// `[fleet]` as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFleet {
    enabled: Option<bool>,
    dsn_file: Option<PathBuf>,
    host_timeout: Option<String>,
    heartbeat: Option<String>,
    connect_timeout: Option<String>,
    query_timeout: Option<String>,
}

impl RawFleet {
    /// The file holding the fleet's DSN (a password), when one is named.
    pub(super) fn key_files(&self) -> Vec<(&'static str, PathBuf)> {
        match (self.enabled, &self.dsn_file) {
            (Some(true), Some(f)) => vec![("fleet.dsn_file", f.clone())],
            _ => Vec::new(),
        }
    }
}

/// Validates `[fleet]`; `None` unless `enabled = true`. Reads the DSN file.
pub(super) fn parse_section(
    v: &Validator<'_>,
    raw: RawFleet,
    vicidial: Option<&VicidialConfig>,
    daemon: &DaemonConfig,
) -> Result<Option<FleetConfig>, ConfigError> {
    if !raw.enabled.unwrap_or(false) {
        return Ok(None);
    }
    if daemon.host.len() > 255 {
        return Err(v.invalid(
            "daemon.host",
            "a fleet member's host name has at most 255 bytes",
        ));
    }
    let (db, db_source) = match (&raw.dsn_file, vicidial) {
        (Some(file), _) => {
            let file = v.absolute("fleet.dsn_file", file.clone())?;
            (
                dsn_from_file(v, &file)?,
                format!("fleet.dsn_file {}", file.display()),
            )
        }
        (None, Some(vc)) => (vc.db.clone(), "[vicidial] (astguiclient.conf)".to_string()),
        (None, None) => {
            return Err(v.invalid(
                "fleet.dsn_file",
                "is required when [vicidial] is not enabled (the fleet uses VICIdial's database \
                 connection by default); name a file holding mysql://user:pass@host:port/database",
            ));
        }
    };
    let heartbeat = v.duration("fleet.heartbeat", raw.heartbeat.as_deref(), "10s")?;
    let host_timeout = v.duration("fleet.host_timeout", raw.host_timeout.as_deref(), "2m")?;
    if heartbeat < Duration::from_secs(1) {
        return Err(v.invalid("fleet.heartbeat", "must be at least 1s"));
    }
    if host_timeout < heartbeat * 3 {
        return Err(v.invalid(
            "fleet.host_timeout",
            format!(
                "must be at least three heartbeats ({:?}): a box one slow query late is not gone",
                heartbeat * 3
            ),
        ));
    }
    Ok(Some(FleetConfig {
        db,
        db_source,
        host_timeout,
        heartbeat,
        connect_timeout: positive(v, "fleet.connect_timeout", raw.connect_timeout, "3s")?,
        query_timeout: positive(v, "fleet.query_timeout", raw.query_timeout, "5s")?,
    }))
}

fn positive(
    v: &Validator<'_>,
    key: &str,
    value: Option<String>,
    default: &str,
) -> Result<Duration, ConfigError> {
    let d = v.duration(key, value.as_deref(), default)?;
    if d.is_zero() {
        return Err(v.invalid(key, "must be more than 0s"));
    }
    Ok(d)
}

/// The connection a DSN file names (its first non-comment line).
fn dsn_from_file(v: &Validator<'_>, file: &std::path::Path) -> Result<DbSettings, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        v.invalid(
            "fleet.dsn_file",
            format!("cannot read {}: {e}", file.display()),
        )
    })?;
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .ok_or_else(|| v.invalid("fleet.dsn_file", format!("{} holds no DSN", file.display())))?;
    let dsn = parse_dsn(line)
        .map_err(|p| v.invalid("fleet.dsn_file", format!("{}: {p}", file.display())))?;
    let mut db = DbSettings {
        host: "localhost".into(),
        port: 3306,
        database: "asterisk".into(),
        user: "cron".into(),
        password: Secret::default(),
        server_ip: String::new(),
    };
    dsn.apply(&mut db);
    Ok(db)
}
