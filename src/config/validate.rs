//! Validation: the raw TOML into the settings everything downstream uses
//! without checking again. Every error names the file and the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::raw::{RawCompress, RawConfig, RawDaemon, RawLedger, RawNaming, RawRetention, RawSpool};
use super::store::parse_store;
use super::{
    Codec, CompressConfig, Config, ConfigError, DEFAULT_LEDGER_PATH, DaemonConfig, Keep,
    LedgerConfig, MinFree, RetentionPolicy, SpoolConfig, ZstdSettings, local_hostname,
};
use crate::recording::name::{DEFAULT_NAME_TEMPLATE, NameTemplate, Naming};
use crate::units::parse_bytes;

/// Collects the validation context so every error names file and key.
pub(super) struct Validator<'a> {
    pub(super) file: &'a Path,
}

impl Validator<'_> {
    pub(super) fn invalid(&self, key: &str, problem: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_path_buf(),
            key: key.to_string(),
            problem: problem.into(),
        }
    }

    pub(super) fn duration(
        &self,
        key: &str,
        value: Option<&str>,
        default: &str,
    ) -> Result<Duration, ConfigError> {
        let text = value.unwrap_or(default);
        humantime::parse_duration(text).map_err(|e| {
            self.invalid(
                key,
                format!("`{text}` is not a duration ({e}); use e.g. `15s`, `3d`"),
            )
        })
    }

    pub(super) fn bytes(
        &self,
        key: &str,
        value: Option<&str>,
        default: &str,
    ) -> Result<u64, ConfigError> {
        let text = value.unwrap_or(default);
        parse_bytes(text).ok_or_else(|| {
            self.invalid(
                key,
                format!("`{text}` is not a size; use e.g. `64MiB`, `5000000`"),
            )
        })
    }

    pub(super) fn absolute(&self, key: &str, path: PathBuf) -> Result<PathBuf, ConfigError> {
        if path.is_absolute() {
            Ok(path)
        } else {
            Err(self.invalid(
                key,
                format!("`{}` must be an absolute path", path.display()),
            ))
        }
    }

    pub(super) fn required(&self, key: &str, value: Option<String>) -> Result<String, ConfigError> {
        match value {
            Some(v) if !v.trim().is_empty() => Ok(v),
            _ => Err(self.invalid(key, "is required for this store kind")),
        }
    }
}

/// Key files the config only reads, by config key: their directories must
/// stay apart from the directories recvault deletes in (`deleting_dirs`).
fn key_files(raw: &RawConfig) -> Vec<(&'static str, PathBuf)> {
    let mut key_files = Vec::new();
    if let Some(k) = raw.store.as_ref().and_then(|s| s.key_file.clone()) {
        key_files.push(("store.key_file", k));
    }
    if let Some(vc) = &raw.vicidial {
        key_files.extend(vc.key_files());
    }
    if let Some(f) = &raw.fleet {
        key_files.extend(f.key_files());
    }
    key_files
}

/// Validates config text; `path` is only used in messages and for key-file lookup.
pub(super) fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
        file: path.to_path_buf(),
        message: e.to_string().trim_end().to_string(),
    })?;
    let v = Validator { file: path };
    let key_files = key_files(&raw);
    let ledger = ledger(&v, raw.ledger.unwrap_or_default())?;
    let spool = spool(&v, raw.spool.unwrap_or_default(), &ledger.path)?;
    let compress = compress(&v, raw.compress.unwrap_or_default())?;
    let store = match raw.store {
        None => None,
        Some(raw) => parse_store(&v, raw)?,
    };
    let daemon = daemon(&v, raw.daemon.unwrap_or_default())?;
    let naming = naming(&v, raw.naming.unwrap_or_default(), &spool.dirs)?;
    let mut retention = retention(&v, raw.retention.unwrap_or_default())?;
    let vicidial = super::vicidial::parse_section(&v, raw.vicidial.unwrap_or_default(), &spool)?;
    retention.attribution_wait = vicidial.as_ref().map(|vc| vc.attribution_wait);
    let serve = super::serve::parse_section(
        &v,
        raw.serve.unwrap_or_default(),
        &spool.staging,
        vicidial.is_some(),
    )?;
    let console = super::console::parse_section(
        &v,
        raw.console.unwrap_or_default(),
        serve.as_ref(),
        vicidial.is_some(),
    )?;
    let fleet = super::fleet::parse_section(
        &v,
        raw.fleet.unwrap_or_default(),
        vicidial.as_ref(),
        &daemon,
    )?;
    let config = Config {
        source: path.to_path_buf(),
        spool,
        compress,
        store,
        ledger,
        daemon,
        naming,
        retention,
        vicidial,
        serve,
        console,
        fleet,
    };
    super::deleting_dirs::check(&v, &config, key_files)?;
    Ok(config)
}

fn ledger(v: &Validator<'_>, raw: RawLedger) -> Result<LedgerConfig, ConfigError> {
    let path = match raw.path {
        Some(p) => v.absolute("ledger.path", p)?,
        None => PathBuf::from(DEFAULT_LEDGER_PATH),
    };
    let backup_every = match v.duration("ledger.backup_every", raw.backup_every.as_deref(), "6h")? {
        d if d.is_zero() => None,
        d if d < Duration::from_secs(1) => {
            return Err(v.invalid("ledger.backup_every", "must be at least 1s (or 0s: never)"));
        }
        d => Some(d),
    };
    let backup_keep = raw.backup_keep.unwrap_or(7);
    if backup_keep == 0 {
        return Err(v.invalid(
            "ledger.backup_keep",
            "must be at least 1 (set backup_every = \"0s\" to turn backups off)",
        ));
    }
    Ok(LedgerConfig {
        path,
        backup_every,
        backup_keep,
    })
}

/// The most `[spool] stage_in_memory` may be: with 64 workers, 1 GiB held.
const MAX_STAGE_IN_MEMORY: u64 = 16 << 20;

fn spool(v: &Validator<'_>, raw: RawSpool, ledger_path: &Path) -> Result<SpoolConfig, ConfigError> {
    let mut dirs = Vec::new();
    for (i, dir) in raw.dirs.unwrap_or_default().into_iter().enumerate() {
        let dir = v.absolute(&format!("spool.dirs[{i}]"), dir)?;
        if dirs.contains(&dir) {
            return Err(v.invalid(
                &format!("spool.dirs[{i}]"),
                format!("`{}` is listed twice", dir.display()),
            ));
        }
        dirs.push(dir);
    }
    let staging = match raw.staging {
        Some(p) => v.absolute("spool.staging", p)?,
        None => ledger_path
            .parent()
            .unwrap_or(Path::new("/"))
            .join("staging"),
    };
    // Each worker may hold one such object until it is verified.
    let stage_in_memory = v.bytes(
        "spool.stage_in_memory",
        raw.stage_in_memory.as_deref(),
        "1MiB",
    )?;
    if stage_in_memory > MAX_STAGE_IN_MEMORY {
        return Err(v.invalid("spool.stage_in_memory", "must be at most 16MiB"));
    }
    let rescan = v.duration("spool.rescan", raw.rescan.as_deref(), "5m")?;
    if rescan < Duration::from_secs(1) {
        return Err(v.invalid("spool.rescan", "must be at least 1s"));
    }
    let min_free = match raw.min_free.as_deref().unwrap_or("5%") {
        "none" | "" => None,
        text => Some(MinFree::parse(text).ok_or_else(|| {
            v.invalid(
                "spool.min_free",
                format!(
                    "`{text}` is not a size or percentage; use e.g. \"10%\", \"2GiB\" or \"none\""
                ),
            )
        })?),
    };
    Ok(SpoolConfig {
        min_free,
        dirs,
        settle: v.duration("spool.settle", raw.settle.as_deref(), "15s")?,
        upload_after: v.duration("spool.upload_after", raw.upload_after.as_deref(), "3d")?,
        staging,
        stage_in_memory,
        rescan,
        ignore: raw
            .ignore
            .unwrap_or_else(|| vec![".*".to_string(), "*.tmp".to_string(), "*.part".to_string()]),
    })
}

fn compress(v: &Validator<'_>, raw: RawCompress) -> Result<CompressConfig, ConfigError> {
    let codec = |key: &str, text: &str| {
        Codec::parse(text).ok_or_else(|| {
            v.invalid(
                key,
                format!("`{text}` is not a codec; use `flac`, `zstd` or `none`"),
            )
        })
    };
    let default = codec("compress.codec", raw.codec.as_deref().unwrap_or("flac"))?;
    let mut campaigns = BTreeMap::new();
    for (campaign, text) in raw.campaigns.unwrap_or_default() {
        let key = format!("compress.campaigns.{campaign}");
        if campaign.trim().is_empty() {
            return Err(v.invalid(&key, "campaign id must not be empty"));
        }
        campaigns.insert(campaign, codec(&key, &text)?);
    }
    let level = raw.level.unwrap_or(3);
    if !(1..=19).contains(&level) {
        return Err(v.invalid("compress.level", format!("{level} is out of range 1..=19")));
    }
    Ok(CompressConfig {
        codec: default,
        campaigns,
        zstd: ZstdSettings {
            level,
            long: raw.long.unwrap_or(false),
        },
    })
}

fn daemon(v: &Validator<'_>, raw: RawDaemon) -> Result<DaemonConfig, ConfigError> {
    let workers = raw.workers.unwrap_or(16);
    if !(1..=64).contains(&workers) {
        return Err(v.invalid(
            "daemon.workers",
            format!("{workers} is out of range 1..=64"),
        ));
    }
    let host = raw.host.unwrap_or_else(local_hostname);
    if host.is_empty() || host.contains('/') || host.chars().any(char::is_control) {
        return Err(v.invalid(
            "daemon.host",
            format!("`{host}` cannot be used in object keys"),
        ));
    }
    Ok(DaemonConfig {
        workers,
        host,
        log_level: raw.log_level.unwrap_or_else(|| "info".to_string()),
        shutdown_grace: v.duration(
            "daemon.shutdown_grace",
            raw.shutdown_grace.as_deref(),
            "20s",
        )?,
    })
}

fn naming(
    v: &Validator<'_>,
    raw: RawNaming,
    spool_dirs: &[PathBuf],
) -> Result<Naming, ConfigError> {
    let text = raw
        .template
        .unwrap_or_else(|| DEFAULT_NAME_TEMPLATE.to_string());
    let template = NameTemplate::parse(&text).map_err(|e| v.invalid("naming.template", e))?;
    let mut dir_campaigns = BTreeMap::new();
    for (dir, campaign) in raw.dir_campaigns.unwrap_or_default() {
        let key = format!("naming.dir_campaigns.\"{}\"", dir.display());
        let dir = v.absolute(&key, dir)?;
        if !spool_dirs.contains(&dir) {
            return Err(v.invalid(&key, "is not one of spool.dirs"));
        }
        if campaign.trim().is_empty() {
            return Err(v.invalid(&key, "campaign must not be empty"));
        }
        dir_campaigns.insert(dir, campaign);
    }
    let time_tolerance =
        v.duration("naming.time_tolerance", raw.time_tolerance.as_deref(), "1d")?;
    if time_tolerance < Duration::from_secs(60) {
        return Err(v.invalid("naming.time_tolerance", "must be at least 1m"));
    }
    Ok(Naming {
        template,
        dir_campaigns,
        time_tolerance,
    })
}

fn retention(v: &Validator<'_>, raw: RawRetention) -> Result<RetentionPolicy, ConfigError> {
    let keep = |key: &str, text: &str| Keep::parse(text).map_err(|e| v.invalid(key, e));
    let default = match raw.default.as_deref() {
        // Safe default: nothing is deleted until an operator sets a policy.
        None => Keep::Forever,
        Some(text) => keep("retention.default", text)?,
    };
    let mut campaigns = BTreeMap::new();
    for (campaign, text) in raw.campaigns.unwrap_or_default() {
        let key = format!("retention.campaigns.{campaign}");
        if campaign.trim().is_empty() {
            return Err(v.invalid(&key, "campaign id must not be empty"));
        }
        let period = keep(&key, &text)?;
        campaigns.insert(campaign, period);
    }
    let sweep_every = v.duration("retention.sweep_every", raw.sweep_every.as_deref(), "1h")?;
    if sweep_every < Duration::from_secs(60) {
        return Err(v.invalid("retention.sweep_every", "must be at least 1m"));
    }
    Ok(RetentionPolicy {
        default,
        campaigns,
        sweep_every,
        delete_unarchived: raw.delete_unarchived.unwrap_or(false),
        attribution_wait: None,
    })
}
