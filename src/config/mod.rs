//! Configuration: the TOML as the operator wrote it (`Raw*`), then the
//! validated settings everything downstream uses without re-checking.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::recording::name::Naming;

pub mod astguiclient;
mod backends;
pub mod console;
mod deleting_dirs;
mod dsn;
pub mod fleet;
mod min_free;
pub mod move_mix;
mod raw;
pub mod retention;
mod secret;
pub mod serve;
mod store;
mod validate;
pub mod vicidial;
pub mod windows;

pub use backends::{
    AzureConfig, AzureCredentials, GcsConfig, GcsCredentials, SftpConfig, SshKey, parse_host_key,
};
pub use console::{ConsoleConfig, LevelRoles, ReasonRule};
pub use fleet::FleetConfig;
pub use min_free::MinFree;
pub use move_mix::MoveMixConfig;
pub use retention::{Keep, RetentionPolicy};
pub use secret::Secret;
pub use serve::{Cidr, ServeConfig, TlsFiles};
pub use store::{S3Config, S3Credentials, StoreBackend, StoreConfig, VerifyMode};
pub use vicidial::VicidialConfig;
pub use windows::UploadWindows;

/// Where the daemon and every operator tool look for the config by default.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/recvault/recvault.toml";
/// Where the ledger lives unless `[ledger] path` says otherwise.
pub const DEFAULT_LEDGER_PATH: &str = "/var/lib/recvault/ledger.sqlite3";

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
    /// `[vicidial]`: `None` unless `enabled = true`.
    pub vicidial: Option<VicidialConfig>,
    /// `[serve]`: `None` unless `listen` is set.
    pub serve: Option<ServeConfig>,
    /// `[console]`: `None` unless `enabled = true`.
    pub console: Option<ConsoleConfig>,
    /// `[fleet]`: `None` unless `enabled = true` (one box on its own).
    pub fleet: Option<FleetConfig>,
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
    /// Recordings up to this size are compressed in memory and uploaded from
    /// there: no staging file (0: every object is staged in a file).
    pub stage_in_memory: u64,
    /// Safety-net full rescan interval (inotify can overflow or miss files).
    pub rescan: Duration,
    /// File-name globs (`*`, `?`) never treated as recordings.
    pub ignore: Vec<String>,
    /// Below this much free space on a spool filesystem, recordings are
    /// archived before `upload_after`, largest first.
    pub min_free: Option<MinFree>,
}

/// `[compress]`.
#[derive(Debug, Clone)]
pub struct CompressConfig {
    /// The codec asked for; each recording may fall back (see [`Codec::Flac`]).
    pub codec: Codec,
    /// Per-campaign codecs, overriding `codec` (by exact campaign id).
    pub campaigns: BTreeMap<String, Codec>,
    /// zstd's settings, wherever zstd is used.
    pub zstd: ZstdSettings,
}

impl CompressConfig {
    /// The codec asked for recordings of `campaign`.
    pub fn codec_for(&self, campaign: Option<&str>) -> Codec {
        campaign
            .and_then(|c| self.campaigns.get(c))
            .copied()
            .unwrap_or(self.codec)
    }
}

/// zstd's level and long-distance matching (`[compress] level`, `long`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZstdSettings {
    /// 1..=19.
    pub level: i32,
    /// Long-distance matching with a 128 MiB window (`zstd --long`): more
    /// memory, for long recordings that repeat themselves.
    pub long: bool,
}

impl Default for ZstdSettings {
    fn default() -> Self {
        ZstdSettings {
            level: 3,
            long: false,
        }
    }
}

/// How a recording is encoded into its object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// Lossless FLAC for the PCM WAV it can carry byte-for-byte; any other
    /// recording falls back to zstd, or to `none` where it is already
    /// compressed (MP3, Ogg, GSM).
    Flac,
    Zstd,
    /// Stored as is (already-compressed MP3/GSM spools).
    None,
}

impl Codec {
    pub fn as_str(self) -> &'static str {
        match self {
            Codec::Flac => "flac",
            Codec::Zstd => "zstd",
            Codec::None => "none",
        }
    }
    pub fn parse(s: &str) -> Option<Codec> {
        match s {
            "flac" => Some(Codec::Flac),
            "zstd" => Some(Codec::Zstd),
            "none" => Some(Codec::None),
            _ => None,
        }
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

/// The machine's host name, as object keys and metadata name it.
pub fn local_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
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
        validate::parse(path, text)
    }
}

#[cfg(test)]
mod backends_tests;
#[cfg(test)]
mod tests;
