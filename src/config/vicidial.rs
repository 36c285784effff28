//! `[vicidial]`: whether recvault reads VICIdial's database, where it is and
//! how to log in (`astguiclient.conf`, optionally overridden by a DSN or a
//! key file named in recvault's TOML), and how long retention waits for an
//! attribution. The password is a [`Secret`]: no Debug, Display or error
//! ever shows it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::astguiclient::{self, Astguiclient};
pub use super::dsn::{Dsn, parse_dsn};
use super::move_mix::{self, MoveMixConfig, RawMoveMix};
pub use super::secret::Secret;
use super::validate::Validator;
use super::{ConfigError, SpoolConfig};

/// How to reach VICIdial's database, and which server this box is in it.
#[derive(Clone, PartialEq, Eq)]
pub struct DbSettings {
    /// Host name or IP; `localhost` means the local Unix socket when one
    /// exists, as VICIdial's Perl DBI does.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Database name (`asterisk` on a stock install).
    pub database: String,
    /// User name.
    pub user: String,
    /// Password.
    pub password: Secret,
    /// This box's `server_ip` in `recording_log` and `servers` (`VARserver_ip`).
    pub server_ip: String,
}

impl fmt::Debug for DbSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &self.password)
            .field("server_ip", &self.server_ip)
            .finish()
    }
}

impl fmt::Display for DbSettings {
    /// `user@host:port/database`: what logs and errors name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}@{}:{}/{}",
            self.user, self.host, self.port, self.database
        )
    }
}

/// What recvault's `[vicidial]` section says about the connection; the config
/// layer fills it from the TOML and calls [`resolve`].
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionSource {
    /// `astguiclient` (default `/etc/astguiclient.conf`).
    pub astguiclient: PathBuf,
    /// `dsn`: `mysql://user:pass@host:port/database`; what it names overrides the file.
    pub dsn: Option<Secret>,
    /// `key_file`: a TOML file with `password` (and optionally `user`) that
    /// overrides the file's and the DSN's credentials.
    pub key_file: Option<PathBuf>,
    /// `server_ip`: overrides `VARserver_ip`.
    pub server_ip: Option<String>,
}

impl Default for ConnectionSource {
    fn default() -> ConnectionSource {
        ConnectionSource {
            astguiclient: PathBuf::from(astguiclient::DEFAULT_PATH),
            dsn: None,
            key_file: None,
            server_ip: None,
        }
    }
}

impl fmt::Debug for ConnectionSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionSource")
            .field("astguiclient", &self.astguiclient)
            .field("dsn", &self.dsn.as_ref().map(|_| "<redacted>"))
            .field("key_file", &self.key_file)
            .field("server_ip", &self.server_ip)
            .finish()
    }
}

/// The connection settings, plus `astguiclient.conf` when it was read (its
/// `PATHDONEmonitor` and `VARHTTP_path` matter for listen links).
#[derive(Debug, Clone)]
pub struct Resolved {
    /// How to connect.
    pub db: DbSettings,
    /// The parsed `astguiclient.conf`, if it was read.
    pub astguiclient: Option<Astguiclient>,
}

/// Where VICIdial keeps finished recordings (`PATHDONEmonitor`) when
/// `astguiclient.conf` does not say.
pub const DEFAULT_DONE_MONITOR: &str = "/var/spool/asterisk/monitorDONE";

/// `[vicidial]`, validated: present only with `enabled = true`.
#[derive(Debug, Clone)]
pub struct VicidialConfig {
    /// How to reach the database, and this server's `server_ip`.
    pub db: DbSettings,
    /// Connections at most (1–4).
    pub pool_size: u32,
    /// How long to wait for a connection.
    pub connect_timeout: Duration,
    /// How long one query may take.
    pub query_timeout: Duration,
    /// How long retention waits for a recording's attribution from the
    /// database before it applies the file name's (or the default) rule.
    pub attribution_wait: Duration,
    /// Whether `recording_log.location` is pointed at recvault's listen link
    /// once the local copy is gone (needs `[serve]`).
    pub rewrite_locations: bool,
    /// How often VICIdial's GDPR purge queue (`recording_log_deletion_queue`)
    /// is read, and the recordings it names erased; `None`: never.
    pub purge_queue: Option<Duration>,
    /// `PATHDONEmonitor`: Apache serves it as `/RECORDINGS/`; locations are
    /// compared against paths under it.
    pub done_monitor: PathBuf,
    /// `move_mix = true`: recvault mixes and moves VICIdial's recording legs
    /// itself (no `AST_CRON_audio_1_move_mix.pl` in cron).
    pub move_mix: Option<MoveMixConfig>,
}

/// `[vicidial]` as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVicidial {
    enabled: Option<bool>,
    astguiclient: Option<PathBuf>,
    dsn: Option<String>,
    key_file: Option<PathBuf>,
    server_ip: Option<String>,
    attribution_wait: Option<String>,
    pool_size: Option<u32>,
    connect_timeout: Option<String>,
    query_timeout: Option<String>,
    rewrite_locations: Option<bool>,
    erase_purged: Option<bool>,
    purge_poll: Option<String>,
    move_mix: Option<bool>,
    move_mix_dir: Option<PathBuf>,
    move_mix_https: Option<bool>,
    move_mix_orphan_after: Option<String>,
}

impl RawVicidial {
    /// The files holding VICIdial's credentials when `[vicidial]` is on:
    /// `astguiclient.conf` and the key file, with their keys.
    pub(super) fn key_files(&self) -> Vec<(&'static str, PathBuf)> {
        if !self.enabled.unwrap_or(false) {
            return Vec::new();
        }
        let conf = self
            .astguiclient
            .clone()
            .unwrap_or_else(|| PathBuf::from(astguiclient::DEFAULT_PATH));
        let mut files = vec![("vicidial.astguiclient", conf)];
        files.extend(self.key_file.clone().map(|k| ("vicidial.key_file", k)));
        files
    }
}

/// Validates `[vicidial]`; `None` unless `enabled = true`. Reads
/// `astguiclient.conf` and the key file, as the daemon will.
pub(super) fn parse_section(
    v: &Validator<'_>,
    mut raw: RawVicidial,
    spool: &SpoolConfig,
) -> Result<Option<VicidialConfig>, ConfigError> {
    let mix_keys = move_mix_keys(&mut raw);
    if !raw.enabled.unwrap_or(false) {
        move_mix::needs_enabled(v, &mix_keys)?;
        return Ok(None);
    }
    let source = ConnectionSource {
        astguiclient: match raw.astguiclient {
            Some(p) => v.absolute("vicidial.astguiclient", p)?,
            None => PathBuf::from(astguiclient::DEFAULT_PATH),
        },
        dsn: raw.dsn.map(Secret::new),
        key_file: raw
            .key_file
            .map(|p| v.absolute("vicidial.key_file", p))
            .transpose()?,
        server_ip: raw.server_ip,
    };
    let resolved = resolve(v.file, &source)?;
    let done_monitor = resolved
        .astguiclient
        .as_ref()
        .and_then(|a| a.done_monitor.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DONE_MONITOR));
    let conf = resolved.astguiclient.as_ref();
    let move_mix = move_mix::parse(v, mix_keys, conf, &done_monitor, spool)?;
    let pool_size = raw.pool_size.unwrap_or(2);
    if !(1..=4).contains(&pool_size) {
        return Err(v.invalid(
            "vicidial.pool_size",
            format!("{pool_size} is out of range 1..=4 (the database serves the dialer first)"),
        ));
    }
    Ok(Some(VicidialConfig {
        db: resolved.db,
        pool_size,
        connect_timeout: positive(v, "connect_timeout", raw.connect_timeout.as_deref(), "3s")?,
        query_timeout: positive(v, "query_timeout", raw.query_timeout.as_deref(), "5s")?,
        attribution_wait: v.duration(
            "vicidial.attribution_wait",
            raw.attribution_wait.as_deref(),
            "7d",
        )?,
        rewrite_locations: raw.rewrite_locations.unwrap_or(true),
        purge_queue: match raw.erase_purged.unwrap_or(true) {
            true => Some(positive(v, "purge_poll", raw.purge_poll.as_deref(), "1m")?),
            false => None,
        },
        done_monitor,
        move_mix,
    }))
}

/// The keys of `[vicidial] move_mix`, taken out of the section.
fn move_mix_keys(raw: &mut RawVicidial) -> RawMoveMix {
    RawMoveMix {
        move_mix: raw.move_mix,
        dir: raw.move_mix_dir.take(),
        https: raw.move_mix_https,
        orphan_after: raw.move_mix_orphan_after.take(),
    }
}

/// `[vicidial] key`, a duration more than zero (`default` if absent).
fn positive(
    v: &Validator<'_>,
    key: &str,
    value: Option<&str>,
    default: &str,
) -> Result<Duration, ConfigError> {
    let key = format!("vicidial.{key}");
    let d = v.duration(&key, value, default)?;
    if d.is_zero() {
        return Err(v.invalid(&key, "must be more than 0s"));
    }
    Ok(d)
}

/// Builds the connection settings: `astguiclient.conf` first (required unless
/// a DSN is given), then the DSN, then the key file, then `server_ip`.
/// Errors name `config_file` and the `[vicidial]` key, never the secret.
pub fn resolve(config_file: &Path, source: &ConnectionSource) -> Result<Resolved, ConfigError> {
    let invalid = |key: &str, problem: String| ConfigError::Invalid {
        file: config_file.to_path_buf(),
        key: format!("vicidial.{key}"),
        problem,
    };
    let conf = match Astguiclient::load(&source.astguiclient) {
        Ok(conf) => Some(conf),
        // With a DSN the file only adds VARserver_ip; without one it is required.
        Err(ConfigError::Read { source: e, .. })
            if source.dsn.is_some() && e.kind() == std::io::ErrorKind::NotFound =>
        {
            None
        }
        Err(e) => return Err(e),
    };
    let mut db = match &conf {
        Some(c) => DbSettings {
            host: c.db_server.clone(),
            port: c.db_port,
            database: c.db_database.clone(),
            user: c.db_user.clone(),
            password: Secret::new(c.db_pass.clone()),
            server_ip: c.server_ip.clone().unwrap_or_default(),
        },
        None => DbSettings {
            host: "localhost".into(),
            port: 3306,
            database: "asterisk".into(),
            user: "cron".into(),
            password: Secret::default(),
            server_ip: String::new(),
        },
    };
    if let Some(dsn) = &source.dsn {
        let dsn = parse_dsn(dsn.expose()).map_err(|p| invalid("dsn", p))?;
        dsn.apply(&mut db);
    }
    if let Some(file) = &source.key_file {
        let key = read_key_file(file).map_err(|p| invalid("key_file", p))?;
        if let Some(user) = key.user {
            db.user = user;
        }
        db.password = Secret::new(key.password);
    }
    if let Some(ip) = &source.server_ip {
        db.server_ip = ip.clone();
    }
    if db.server_ip.is_empty() {
        let problem = format!(
            "this server's IP is unknown: `{}` sets no VARserver_ip; set vicidial.server_ip",
            source.astguiclient.display()
        );
        return Err(invalid("server_ip", problem));
    }
    Ok(Resolved {
        db,
        astguiclient: conf,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    user: Option<String>,
    password: String,
}

fn read_key_file(file: &Path) -> Result<KeyFile, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read `{}`: {e}", file.display()))?;
    // A TOML parse error could quote the password: only say what is expected.
    toml::from_str(&text).map_err(|_| {
        format!(
            "`{}` must hold `password = \"...\"` and optionally `user = \"...\"`",
            file.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWORD: &str = "Pa55:w@rd/x";

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn source(conf: PathBuf) -> ConnectionSource {
        ConnectionSource {
            astguiclient: conf,
            ..ConnectionSource::default()
        }
    }

    const CONF: &str = "VARserver_ip => 10.0.0.5\nVARDB_server => 10.0.0.9\nVARDB_pass => s3cret\nVARDB_port => 3307\n";

    #[test]
    fn from_astguiclient_alone() {
        let dir = tempfile::tempdir().unwrap();
        let conf = write(dir.path(), "astguiclient.conf", CONF);
        let r = resolve(Path::new("/etc/recvault/recvault.toml"), &source(conf)).unwrap();
        assert_eq!(r.db.to_string(), "cron@10.0.0.9:3307/asterisk");
        assert_eq!(r.db.password.expose(), "s3cret");
        assert_eq!(r.db.server_ip, "10.0.0.5");
        assert!(r.astguiclient.is_some());
    }

    #[test]
    fn dsn_then_key_file_then_server_ip_override() {
        let dir = tempfile::tempdir().unwrap();
        let conf = write(dir.path(), "astguiclient.conf", CONF);
        let key = write(
            dir.path(),
            "vicidial.key",
            "user = \"recvault\"\npassword = \"k3y\"\n",
        );
        let mut s = source(conf);
        s.dsn = Some(Secret::new("mysql://ro:dsnpass@db.example:3310/vici"));
        let r = resolve(Path::new("/r.toml"), &s).unwrap();
        assert_eq!(r.db.to_string(), "ro@db.example:3310/vici");
        assert_eq!(r.db.password.expose(), "dsnpass");
        s.key_file = Some(key);
        s.server_ip = Some("10.0.0.77".into());
        let r = resolve(Path::new("/r.toml"), &s).unwrap();
        assert_eq!(r.db.to_string(), "recvault@db.example:3310/vici");
        assert_eq!(r.db.password.expose(), "k3y");
        assert_eq!(r.db.server_ip, "10.0.0.77");
    }

    #[test]
    fn dsn_without_astguiclient_needs_server_ip() {
        let mut s = source(PathBuf::from("/nonexistent/astguiclient.conf"));
        s.dsn = Some(Secret::new("mysql://u:p@127.0.0.1/asterisk"));
        let e = resolve(Path::new("/r.toml"), &s).unwrap_err().to_string();
        assert!(
            e.contains("/r.toml") && e.contains("vicidial.server_ip"),
            "{e}"
        );
        s.server_ip = Some("10.0.0.5".into());
        let r = resolve(Path::new("/r.toml"), &s).unwrap();
        assert_eq!(r.db.to_string(), "u@127.0.0.1:3306/asterisk");
        assert!(r.astguiclient.is_none());
        // Without a DSN the file is required, and the error names it.
        let e = resolve(Path::new("/r.toml"), &source("/nonexistent/a.conf".into()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/a.conf"), "{e}");
    }

    #[test]
    fn bad_dsns_are_explained_without_the_password() {
        for (dsn, expect) in [
            ("postgres://u:SECRETPW@h/db", "mysql://"),
            ("mysql://u:SECRETPW@h:99999/db", "port"),
            ("mysql://u:SECRETPW@h:0/db", "port"),
            ("mysql://u:SECRETPW@/db", "host"),
            ("mysql://u:SECRETPW@h/db?ssl=1", "query"),
            ("mysql://u:SECRETPW%zz@h/db", "percent"),
            ("mysql://u:SECRETPW@[::1/db", "["),
            ("mysql://u:SECRETPW@h/db/x", "path"),
        ] {
            let e = parse_dsn(dsn).unwrap_err();
            assert!(e.contains(expect), "{dsn}: {e}");
            assert!(!e.contains("SECRETPW"), "{e}");
            let s = ConnectionSource {
                astguiclient: "/nonexistent".into(),
                dsn: Some(Secret::new(dsn)),
                key_file: None,
                server_ip: Some("1.2.3.4".into()),
            };
            let e = resolve(Path::new("/r.toml"), &s).unwrap_err().to_string();
            assert!(e.contains("vicidial.dsn") && !e.contains("SECRETPW"), "{e}");
        }
    }

    #[test]
    fn bad_key_file_never_quotes_the_password() {
        let dir = tempfile::tempdir().unwrap();
        let conf = write(dir.path(), "astguiclient.conf", CONF);
        let key = write(dir.path(), "k", &format!("password = {PASSWORD}\n"));
        let mut s = source(conf);
        s.key_file = Some(key);
        let e = resolve(Path::new("/r.toml"), &s).unwrap_err().to_string();
        assert!(
            e.contains("vicidial.key_file") && e.contains("password = "),
            "{e}"
        );
        assert!(!e.contains(PASSWORD), "{e}");
        s.key_file = Some(dir.path().join("missing"));
        let e = resolve(Path::new("/r.toml"), &s).unwrap_err().to_string();
        assert!(e.contains("cannot read"), "{e}");
    }

    #[test]
    fn password_never_in_debug_or_display() {
        let db = DbSettings {
            host: "h".into(),
            port: 3306,
            database: "asterisk".into(),
            user: "cron".into(),
            password: Secret::new(PASSWORD),
            server_ip: "10.0.0.5".into(),
        };
        let s = ConnectionSource {
            dsn: Some(Secret::new(format!("mysql://u:{PASSWORD}@h/db"))),
            ..ConnectionSource::default()
        };
        let dsn = parse_dsn(&format!("mysql://u:{PASSWORD}@h/db"));
        for shown in [
            format!("{db:?}"),
            db.to_string(),
            format!("{s:?}"),
            format!("{dsn:?}"),
            format!("{}", db.password),
        ] {
            assert!(
                !shown.contains(PASSWORD) && !shown.contains("Pa55"),
                "{shown}"
            );
        }
    }
}
