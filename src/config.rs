//! Configuration: the TOML as the operator wrote it (`Raw*`), then the
//! validated settings everything downstream uses without re-checking.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::keys::KeyTemplate;
use crate::naming::{DEFAULT_NAME_TEMPLATE, NameTemplate, Naming};
use crate::policy::{Keep, RetentionPolicy};
use crate::pressure::MinFree;
use crate::schedule::UploadWindows;

/// Where the daemon and every operator tool look for the config by default.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/recvault/recvault.toml";
/// Where the ledger lives unless `[ledger] path` says otherwise.
pub const DEFAULT_LEDGER_PATH: &str = "/var/lib/recvault/ledger.sqlite3";
/// The object key template unless `[store] key_template` says otherwise.
pub const DEFAULT_KEY_TEMPLATE: &str = "{prefix}{host}/{yyyy}/{mm}/{dd}/{name}.zst";

/// A config problem, always naming the file and, where there is one, the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Parse { file: PathBuf, message: String },
    #[error("{file}: key `{key}`: {problem}")]
    Invalid {
        file: PathBuf,
        key: String,
        problem: String,
    },
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this was read from (for messages).
    pub source: PathBuf,
    pub spool: SpoolConfig,
    pub compress: CompressConfig,
    /// `None` until an operator configures a store: the daemon then idles.
    pub store: Option<StoreConfig>,
    pub ledger: LedgerConfig,
    pub daemon: DaemonConfig,
    /// `[naming]`: how file names attribute recordings to calls and campaigns.
    pub naming: Naming,
    /// `[retention]`: absent means keep everything for ever.
    pub retention: RetentionPolicy,
}

/// `[spool]`: which directories hold finished recordings and when to take them.
#[derive(Debug, Clone)]
pub struct SpoolConfig {
    pub dirs: Vec<PathBuf>,
    /// A file is settled once its mtime is at least this old and nobody has it open for writing.
    pub settle: Duration,
    /// How long a settled recording stays local before it is archived.
    pub upload_after: Duration,
    /// Where compressed objects wait for upload.
    pub staging: PathBuf,
    /// Safety-net full rescan interval (inotify can overflow or miss files).
    pub rescan: Duration,
    /// File-name globs (`*`, `?`) never treated as recordings.
    pub ignore: Vec<String>,
    /// Below this much free space on a spool filesystem, recordings are
    /// archived before `upload_after`, oldest first.
    pub min_free: Option<MinFree>,
}

/// `[compress]`.
#[derive(Debug, Clone, Copy)]
pub struct CompressConfig {
    pub codec: Codec,
    pub level: i32,
}

/// How a recording is encoded into its object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Zstd,
    /// Stored as is (already-compressed MP3/GSM spools).
    None,
}

impl Codec {
    pub fn as_str(self) -> &'static str {
        match self {
            Codec::Zstd => "zstd",
            Codec::None => "none",
        }
    }
    pub fn parse(s: &str) -> Option<Codec> {
        match s {
            "zstd" => Some(Codec::Zstd),
            "none" => Some(Codec::None),
            _ => None,
        }
    }
}

/// `[store]`: where objects go and how they are named and checked.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub backend: StoreBackend,
    pub prefix: String,
    pub key_template: KeyTemplate,
    /// Objects at least this big go up as multipart uploads.
    pub multipart_threshold: u64,
    pub part_size: u64,
    pub verify: VerifyMode,
    /// Upload bandwidth limit in bytes per second, shared by all workers.
    pub max_upload_rate: Option<u64>,
    /// Local-time ranges in which uploads may run (empty: any time).
    pub upload_windows: UploadWindows,
    /// How often the daemon re-reads a sample of archived objects (`None`: never).
    pub scrub_every: Option<Duration>,
    /// How many objects each scrub re-reads.
    pub scrub_sample: usize,
    /// Mirror legal holds as S3 Object Lock legal holds (the ledger stays the record).
    pub object_lock_legal_hold: bool,
}

/// The kind of store and its settings.
#[derive(Debug, Clone)]
pub enum StoreBackend {
    S3(S3Config),
    Local { path: PathBuf },
}

/// How hard verification looks at an uploaded object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyMode {
    /// HeadObject: the store's checksum (or, where it reports none, size and our metadata).
    Checksum,
    /// Also download the object and hash it again.
    Read,
}

/// S3-compatible endpoint settings (R2, AWS, MinIO, Garage, B2).
#[derive(Clone)]
pub struct S3Config {
    pub endpoint: Option<String>,
    pub region: String,
    pub bucket: String,
    pub path_style: bool,
    /// Credentials from a key file, else the standard AWS chain.
    pub credentials: Option<S3Credentials>,
    /// Per-request timeouts: a stalled connection must not hang a worker.
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("path_style", &self.path_style)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

/// An access key read from the key file named in the config.
#[derive(Clone)]
pub struct S3Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl fmt::Debug for S3Credentials {
    // The secret never reaches a log, an error or a panic message.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

/// `[ledger]`.
#[derive(Debug, Clone)]
pub struct LedgerConfig {
    pub path: PathBuf,
    /// How often the daemon copies the ledger to the store; `None` = never.
    pub backup_every: Option<Duration>,
    /// How many ledger backups (generations) the store keeps per host.
    pub backup_keep: usize,
}

/// `[daemon]`.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// Recordings processed at once.
    pub workers: usize,
    /// Host name used in object keys and metadata.
    pub host: String,
    /// Default log filter (`RUST_LOG` wins).
    pub log_level: String,
    /// How long shutdown waits for in-flight steps before abandoning them.
    pub shutdown_grace: Duration,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    spool: Option<RawSpool>,
    compress: Option<RawCompress>,
    store: Option<RawStore>,
    ledger: Option<RawLedger>,
    daemon: Option<RawDaemon>,
    naming: Option<RawNaming>,
    retention: Option<RawRetention>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawNaming {
    template: Option<String>,
    dir_campaigns: Option<BTreeMap<PathBuf, String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRetention {
    default: Option<String>,
    sweep_every: Option<String>,
    campaigns: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSpool {
    dirs: Option<Vec<PathBuf>>,
    settle: Option<String>,
    upload_after: Option<String>,
    staging: Option<PathBuf>,
    rescan: Option<String>,
    ignore: Option<Vec<String>>,
    min_free: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCompress {
    codec: Option<String>,
    level: Option<i32>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStore {
    kind: Option<String>,
    endpoint: Option<String>,
    region: Option<String>,
    bucket: Option<String>,
    prefix: Option<String>,
    path_style: Option<bool>,
    key_file: Option<PathBuf>,
    path: Option<PathBuf>,
    key_template: Option<String>,
    multipart_threshold: Option<String>,
    part_size: Option<String>,
    verify: Option<String>,
    connect_timeout: Option<String>,
    read_timeout: Option<String>,
    max_upload_rate: Option<String>,
    upload_windows: Option<Vec<String>>,
    scrub_every: Option<String>,
    scrub_sample: Option<usize>,
    object_lock_legal_hold: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLedger {
    path: Option<PathBuf>,
    backup_every: Option<String>,
    backup_keep: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDaemon {
    workers: Option<usize>,
    host: Option<String>,
    log_level: Option<String>,
    shutdown_grace: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeyFile {
    access_key_id: String,
    secret_access_key: String,
}

/// Collects the validation context so every error names file and key.
struct Validator<'a> {
    file: &'a Path,
}

impl Validator<'_> {
    fn invalid(&self, key: &str, problem: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_path_buf(),
            key: key.to_string(),
            problem: problem.into(),
        }
    }

    fn duration(
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

    fn bytes(&self, key: &str, value: Option<&str>, default: &str) -> Result<u64, ConfigError> {
        let text = value.unwrap_or(default);
        parse_bytes(text).ok_or_else(|| {
            self.invalid(
                key,
                format!("`{text}` is not a size; use e.g. `64MiB`, `5000000`"),
            )
        })
    }

    fn absolute(&self, key: &str, path: PathBuf) -> Result<PathBuf, ConfigError> {
        if path.is_absolute() {
            Ok(path)
        } else {
            Err(self.invalid(
                key,
                format!("`{}` must be an absolute path", path.display()),
            ))
        }
    }

    fn required(&self, key: &str, value: Option<String>) -> Result<String, ConfigError> {
        match value {
            Some(v) if !v.trim().is_empty() => Ok(v),
            _ => Err(self.invalid(key, "is required for this store kind")),
        }
    }
}

/// Parses `1234`, `64KiB`, `16MiB`, `1GiB`, `10MB` into bytes.
pub fn parse_bytes(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.to_path_buf(),
            source,
        })?;
        Config::parse(path, &text)
    }

    /// Validates config text; `path` is only used in messages and for key-file lookup.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            file: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let v = Validator { file: path };

        let raw_ledger = raw.ledger.unwrap_or_default();
        let ledger_path = match raw_ledger.path {
            Some(p) => v.absolute("ledger.path", p)?,
            None => PathBuf::from(DEFAULT_LEDGER_PATH),
        };
        let backup_every = v.duration(
            "ledger.backup_every",
            raw_ledger.backup_every.as_deref(),
            "6h",
        )?;
        let backup_every = match backup_every {
            d if d.is_zero() => None,
            d if d < Duration::from_secs(1) => {
                return Err(v.invalid("ledger.backup_every", "must be at least 1s (or 0s: never)"));
            }
            d => Some(d),
        };
        let backup_keep = raw_ledger.backup_keep.unwrap_or(7);
        if backup_keep == 0 {
            return Err(v.invalid(
                "ledger.backup_keep",
                "must be at least 1 (set backup_every = \"0s\" to turn backups off)",
            ));
        }

        let spool = raw.spool.unwrap_or_default();
        let mut dirs = Vec::new();
        for (i, dir) in spool.dirs.unwrap_or_default().into_iter().enumerate() {
            let dir = v.absolute(&format!("spool.dirs[{i}]"), dir)?;
            if dirs.contains(&dir) {
                return Err(v.invalid(
                    &format!("spool.dirs[{i}]"),
                    format!("`{}` is listed twice", dir.display()),
                ));
            }
            dirs.push(dir);
        }
        let staging = match spool.staging {
            Some(p) => v.absolute("spool.staging", p)?,
            None => ledger_path
                .parent()
                .unwrap_or(Path::new("/"))
                .join("staging"),
        };
        if dirs.iter().any(|d| staging.starts_with(d)) {
            return Err(v.invalid("spool.staging", "must not be inside a spool directory"));
        }
        let rescan = v.duration("spool.rescan", spool.rescan.as_deref(), "5m")?;
        if rescan < Duration::from_secs(1) {
            return Err(v.invalid("spool.rescan", "must be at least 1s"));
        }
        let min_free_text = spool.min_free.unwrap_or_else(|| "5%".to_string());
        let min_free = match min_free_text.as_str() {
            "none" | "" => None,
            text => Some(MinFree::parse(text).ok_or_else(|| {
                v.invalid("spool.min_free", format!("`{text}` is not a size or percentage; use e.g. \"10%\", \"2GiB\" or \"none\""))
            })?),
        };
        let spool = SpoolConfig {
            min_free,
            dirs,
            settle: v.duration("spool.settle", spool.settle.as_deref(), "15s")?,
            upload_after: v.duration("spool.upload_after", spool.upload_after.as_deref(), "3d")?,
            staging,
            rescan,
            ignore: spool.ignore.unwrap_or_else(|| {
                vec![".*".to_string(), "*.tmp".to_string(), "*.part".to_string()]
            }),
        };

        let compress = raw.compress.unwrap_or_default();
        let codec_text = compress.codec.unwrap_or_else(|| "zstd".to_string());
        let codec = Codec::parse(&codec_text).ok_or_else(|| {
            v.invalid(
                "compress.codec",
                format!("`{codec_text}` is not a codec; use `zstd` or `none`"),
            )
        })?;
        let level = compress.level.unwrap_or(3);
        if !(1..=19).contains(&level) {
            return Err(v.invalid("compress.level", format!("{level} is out of range 1..=19")));
        }
        let compress = CompressConfig { codec, level };

        let store = match raw.store {
            None => None,
            Some(raw) => parse_store(&v, raw)?,
        };

        let daemon = raw.daemon.unwrap_or_default();
        let workers = daemon.workers.unwrap_or(4);
        if !(1..=64).contains(&workers) {
            return Err(v.invalid(
                "daemon.workers",
                format!("{workers} is out of range 1..=64"),
            ));
        }
        let host = match daemon.host {
            Some(h) => h,
            None => local_hostname(),
        };
        if host.is_empty() || host.contains('/') || host.chars().any(char::is_control) {
            return Err(v.invalid(
                "daemon.host",
                format!("`{host}` cannot be used in object keys"),
            ));
        }
        let daemon = DaemonConfig {
            workers,
            host,
            log_level: daemon.log_level.unwrap_or_else(|| "info".to_string()),
            shutdown_grace: v.duration(
                "daemon.shutdown_grace",
                daemon.shutdown_grace.as_deref(),
                "20s",
            )?,
        };

        let naming = parse_naming(&v, raw.naming.unwrap_or_default(), &spool.dirs)?;
        let retention = parse_retention(&v, raw.retention.unwrap_or_default())?;

        Ok(Config {
            source: path.to_path_buf(),
            spool,
            compress,
            store,
            ledger: LedgerConfig {
                path: ledger_path,
                backup_every,
                backup_keep,
            },
            daemon,
            naming,
            retention,
        })
    }
}

fn parse_naming(
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
    Ok(Naming {
        template,
        dir_campaigns,
    })
}

fn parse_retention(v: &Validator<'_>, raw: RawRetention) -> Result<RetentionPolicy, ConfigError> {
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
    })
}

fn parse_store(v: &Validator<'_>, raw: RawStore) -> Result<Option<StoreConfig>, ConfigError> {
    let kind = raw.kind.clone().unwrap_or_else(|| "none".to_string());
    let backend = match kind.as_str() {
        "none" => return Ok(None),
        "local" => {
            let path = raw.path.ok_or_else(|| {
                v.invalid("store.path", "is required when store.kind = \"local\"")
            })?;
            StoreBackend::Local {
                path: v.absolute("store.path", path)?,
            }
        }
        "s3" => {
            let credentials = match &raw.key_file {
                None => None,
                Some(file) => Some(read_key_file(v, file)?),
            };
            if let Some(endpoint) = &raw.endpoint
                && !(endpoint.starts_with("https://") || endpoint.starts_with("http://"))
            {
                return Err(v.invalid(
                    "store.endpoint",
                    "must start with https:// (or http:// for a local test server)",
                ));
            }
            StoreBackend::S3(S3Config {
                endpoint: raw.endpoint,
                region: raw.region.unwrap_or_else(|| "auto".to_string()),
                bucket: v.required("store.bucket", raw.bucket)?,
                path_style: raw.path_style.unwrap_or(false),
                credentials,
                connect_timeout: v.duration(
                    "store.connect_timeout",
                    raw.connect_timeout.as_deref(),
                    "10s",
                )?,
                read_timeout: v.duration(
                    "store.read_timeout",
                    raw.read_timeout.as_deref(),
                    "60s",
                )?,
            })
        }
        other => {
            return Err(v.invalid(
                "store.kind",
                format!("`{other}` is not a store kind; use \"s3\", \"local\" or \"none\""),
            ));
        }
    };
    let prefix = raw.prefix.unwrap_or_default();
    if prefix.starts_with('/') || prefix.split('/').any(|c| c == "..") {
        return Err(v.invalid("store.prefix", "must not start with `/` or contain `..`"));
    }
    let template_text = raw
        .key_template
        .unwrap_or_else(|| DEFAULT_KEY_TEMPLATE.to_string());
    let key_template =
        KeyTemplate::parse(&template_text).map_err(|e| v.invalid("store.key_template", e))?;
    let multipart_threshold = v.bytes(
        "store.multipart_threshold",
        raw.multipart_threshold.as_deref(),
        "64MiB",
    )?;
    let part_size = v.bytes("store.part_size", raw.part_size.as_deref(), "16MiB")?;
    if !(5 << 20..=5 << 30).contains(&part_size) {
        return Err(v.invalid(
            "store.part_size",
            "must be between 5MiB and 5GiB (S3 limits)",
        ));
    }
    let verify = match raw.verify.as_deref().unwrap_or("checksum") {
        "checksum" => VerifyMode::Checksum,
        "read" => VerifyMode::Read,
        other => {
            return Err(v.invalid(
                "store.verify",
                format!("`{other}` is not a mode; use \"checksum\" or \"read\""),
            ));
        }
    };
    let max_upload_rate = match raw.max_upload_rate.as_deref() {
        None | Some("none") => None,
        Some(text) => {
            match parse_bytes(text) {
                Some(n) if n >= 1024 => Some(n),
                _ => {
                    return Err(v.invalid(
                    "store.max_upload_rate",
                    format!("`{text}` is not a rate of at least 1KiB (bytes per second, e.g. \"4MiB\")"),
                ));
                }
            }
        }
    };
    let upload_windows = UploadWindows::parse(&raw.upload_windows.unwrap_or_default())
        .map_err(|e| v.invalid("store.upload_windows", e))?;
    let scrub_every = match v.duration("store.scrub_every", raw.scrub_every.as_deref(), "1d")? {
        d if d.is_zero() => None,
        d => Some(d),
    };
    let scrub_sample = raw.scrub_sample.unwrap_or(20);
    let object_lock_legal_hold = raw.object_lock_legal_hold.unwrap_or(false);
    if object_lock_legal_hold && !matches!(backend, StoreBackend::S3(_)) {
        return Err(v.invalid(
            "store.object_lock_legal_hold",
            "needs store.kind = \"s3\" (a bucket with Object Lock enabled)",
        ));
    }
    Ok(Some(StoreConfig {
        max_upload_rate,
        upload_windows,
        scrub_every,
        scrub_sample,
        backend,
        prefix,
        key_template,
        multipart_threshold,
        part_size,
        verify,
        object_lock_legal_hold,
    }))
}

fn read_key_file(v: &Validator<'_>, file: &Path) -> Result<S3Credentials, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        v.invalid(
            "store.key_file",
            format!("cannot read `{}`: {e}", file.display()),
        )
    })?;
    // The parse error could quote the secret, so only say which keys are expected.
    let raw: RawKeyFile = toml::from_str(&text).map_err(|_| {
        v.invalid(
            "store.key_file",
            format!("`{}` must hold exactly `access_key_id = \"...\"` and `secret_access_key = \"...\"`", file.display()),
        )
    })?;
    Ok(S3Credentials {
        access_key_id: raw.access_key_id,
        secret_access_key: raw.secret_access_key,
    })
}

/// The machine's host name, as object keys and metadata name it.
pub fn local_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/etc/recvault/recvault.toml"), text)
    }

    #[test]
    fn empty_config_is_valid_and_has_no_store() {
        let c = parse("").unwrap();
        assert!(c.store.is_none());
        assert_eq!(c.spool.settle, Duration::from_secs(15));
        assert_eq!(c.spool.upload_after, Duration::from_secs(3 * 86400));
        assert_eq!(c.ledger.path, PathBuf::from(DEFAULT_LEDGER_PATH));
        assert_eq!(c.spool.staging, PathBuf::from("/var/lib/recvault/staging"));
        assert_eq!(c.ledger.backup_every, Some(Duration::from_secs(6 * 3600)));
        assert_eq!(c.ledger.backup_keep, 7);
    }

    #[test]
    fn ledger_backups_can_be_turned_off_but_not_kept_zero_times() {
        let c = parse("[ledger]\nbackup_every = \"0s\"\n").unwrap();
        assert_eq!(c.ledger.backup_every, None);
        let e = parse("[ledger]\nbackup_keep = 0\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("ledger.backup_keep"), "{e}");
    }

    #[test]
    fn unknown_key_names_the_key_and_file() {
        let e = parse("[spool]\nsettel = \"5s\"\n").unwrap_err().to_string();
        assert!(e.contains("/etc/recvault/recvault.toml"), "{e}");
        assert!(e.contains("settel"), "{e}");
    }

    #[test]
    fn bad_duration_names_the_key() {
        let e = parse("[spool]\nsettle = \"soon\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("key `spool.settle`"), "{e}");
        assert!(e.contains("soon"), "{e}");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let e = parse("[daemon]\nworkers = \"four\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("workers"), "{e}");
    }

    #[test]
    fn relative_dir_is_rejected_with_index() {
        let e = parse("[spool]\ndirs = [\"/a\", \"b\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("spool.dirs[1]"), "{e}");
    }

    #[test]
    fn s3_requires_bucket() {
        let e = parse("[store]\nkind = \"s3\"\n").unwrap_err().to_string();
        assert!(e.contains("store.bucket"), "{e}");
    }

    #[test]
    fn bad_template_names_the_key() {
        let e = parse("[store]\nkind = \"local\"\npath = \"/s\"\nkey_template = \"{nope}\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("store.key_template"), "{e}");
    }

    #[test]
    fn rates_windows_and_free_space() {
        let c = parse("[spool]\nmin_free = \"10%\"\n[store]\nkind = \"local\"\npath = \"/s\"\nmax_upload_rate = \"4MiB\"\nupload_windows = [\"20:00-07:00\"]\n").unwrap();
        let store = c.store.unwrap();
        assert_eq!(store.max_upload_rate, Some(4 << 20));
        assert_eq!(c.spool.min_free, Some(MinFree::Percent(10.0)));
        let e = parse("[store]\nkind = \"local\"\npath = \"/s\"\nupload_windows = [\"8-9\"]\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("store.upload_windows") && e.contains("8-9"),
            "{e}"
        );
        let e = parse("[store]\nkind = \"local\"\npath = \"/s\"\nmax_upload_rate = \"fast\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("store.max_upload_rate"), "{e}");
        let e = parse("[spool]\nmin_free = \"lots\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("spool.min_free"), "{e}");
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_bytes("64MiB"), Some(64 << 20));
        assert_eq!(parse_bytes("5000"), Some(5000));
        assert_eq!(parse_bytes("10MB"), Some(10_000_000));
        assert_eq!(parse_bytes("lots"), None);
        assert_eq!(parse_bytes("1XB"), None);
    }

    #[test]
    fn key_file_secret_never_in_debug_or_errors() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.toml");
        std::fs::write(
            &key,
            "access_key_id = \"AKID\"\nsecret_access_key = \"SUPERSECRET\"\n",
        )
        .unwrap();
        let text = format!(
            "[store]\nkind = \"s3\"\nbucket = \"b\"\nkey_file = \"{}\"\n",
            key.display()
        );
        let c = parse(&text).unwrap();
        let dbg = format!("{c:?}");
        assert!(dbg.contains("AKID"));
        assert!(!dbg.contains("SUPERSECRET"), "{dbg}");

        std::fs::write(
            &key,
            "access_key_id = \"AKID\"\nsecret_access_key = SUPERSECRET\n",
        )
        .unwrap();
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.contains("store.key_file"), "{e}");
        assert!(!e.contains("SUPERSECRET"), "{e}");
    }

    #[test]
    fn retention_and_naming_parse() {
        let c = parse(
            "[spool]\ndirs = [\"/s/sales\"]\n[naming]\ntemplate = \"CAMPAIGN_FULLDATE_CUSTPHONE\"\n\
             [naming.dir_campaigns]\n\"/s/sales\" = \"SALES\"\n\
             [retention]\ndefault = \"180d\"\n[retention.campaigns]\nCOLLECT = \"90d\"\nSALES = \"forever\"\nCONSENT = \"7y\"\n",
        )
        .unwrap();
        assert_eq!(c.retention.default.secs(), Some(180 * 86400));
        assert_eq!(c.retention.campaigns["SALES"], Keep::Forever);
        assert_eq!(c.retention.sweep_every, Duration::from_secs(3600));
        assert_eq!(c.naming.dir_campaigns[Path::new("/s/sales")], "SALES");
    }

    #[test]
    fn retention_defaults_to_keeping_everything() {
        assert!(parse("").unwrap().retention.keeps_everything());
        assert!(
            parse("[retention]\nsweep_every = \"2h\"\n")
                .unwrap()
                .retention
                .keeps_everything()
        );
    }

    #[test]
    fn retention_errors_name_the_key() {
        let e = parse("[retention.campaigns]\nCOLLECT = \"ninety days\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("key `retention.campaigns.COLLECT`"), "{e}");
        let e = parse("[retention]\ndefault = \"1h\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("key `retention.default`"), "{e}");
        let e = parse("[retention]\ndefualt = \"90d\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("defualt"), "{e}");
        let e = parse("[naming]\ntemplate = \"FULLDATE_PHONE\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("key `naming.template`"), "{e}");
        assert!(e.contains("PHONE"), "{e}");
        let e = parse("[naming.dir_campaigns]\n\"/elsewhere\" = \"X\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("naming.dir_campaigns"), "{e}");
        let e = parse("[store]\nkind = \"local\"\npath = \"/s\"\nobject_lock_legal_hold = true\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("store.object_lock_legal_hold"), "{e}");
    }

    #[test]
    fn shipped_example_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
        let c = Config::load(&path).unwrap();
        assert!(
            c.store.is_none(),
            "the shipped config must do nothing until a store is configured"
        );
        assert!(!c.spool.dirs.is_empty());
        assert!(
            c.retention.keeps_everything(),
            "the shipped config must delete nothing until a policy is set"
        );
    }
}
