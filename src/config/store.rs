//! `[store]`: where objects go, how they are named and how hard an upload
//! is checked — the settings and their validation.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::backends::{
    AzureConfig, GcsConfig, SftpConfig, foreign_keys, parse_azure, parse_gcs, parse_sftp,
};
use super::raw::{RawKeyFile, RawStore};
use super::validate::Validator;
use super::{ConfigError, UploadWindows};
use crate::recording::key::{DEFAULT_KEY_TEMPLATE, KeyTemplate};
use crate::units::parse_bytes;

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
    Azure(AzureConfig),
    Gcs(GcsConfig),
    Sftp(SftpConfig),
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

pub(super) fn parse_store(
    v: &Validator<'_>,
    raw: RawStore,
) -> Result<Option<StoreConfig>, ConfigError> {
    let Some(backend) = parse_backend(v, &raw)? else {
        return Ok(None);
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
    let part_size = parse_part_size(v, raw.part_size.as_deref())?;
    let verify = parse_verify(v, raw.verify.as_deref())?;
    let max_upload_rate = parse_max_upload_rate(v, raw.max_upload_rate.as_deref())?;
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

/// `store.kind` and the settings of that kind; `None` for `kind = "none"`.
fn parse_backend(v: &Validator<'_>, raw: &RawStore) -> Result<Option<StoreBackend>, ConfigError> {
    let kind = raw.kind.clone().unwrap_or_else(|| "none".to_string());
    if kind != "none" {
        foreign_keys(v, raw, &kind)?;
    }
    let backend = match kind.as_str() {
        "none" => return Ok(None),
        "local" => {
            let path = raw.path.clone().ok_or_else(|| {
                v.invalid("store.path", "is required when store.kind = \"local\"")
            })?;
            StoreBackend::Local {
                path: v.absolute("store.path", path)?,
            }
        }
        "s3" => StoreBackend::S3(parse_s3(v, raw)?),
        "azure" => StoreBackend::Azure(parse_azure(v, raw)?),
        "gcs" => StoreBackend::Gcs(parse_gcs(v, raw)?),
        "sftp" => StoreBackend::Sftp(parse_sftp(v, raw)?),
        other => {
            return Err(v.invalid(
                "store.kind",
                format!("`{other}` is not a store kind; use \"s3\", \"azure\", \"gcs\", \"sftp\", \"local\" or \"none\""),
            ));
        }
    };
    Ok(Some(backend))
}

fn parse_s3(v: &Validator<'_>, raw: &RawStore) -> Result<S3Config, ConfigError> {
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
    Ok(S3Config {
        endpoint: raw.endpoint.clone(),
        region: raw.region.clone().unwrap_or_else(|| "auto".to_string()),
        bucket: v.required("store.bucket", raw.bucket.clone())?,
        path_style: raw.path_style.unwrap_or(false),
        credentials,
        connect_timeout: v.duration(
            "store.connect_timeout",
            raw.connect_timeout.as_deref(),
            "10s",
        )?,
        read_timeout: v.duration("store.read_timeout", raw.read_timeout.as_deref(), "60s")?,
    })
}

/// `store.part_size`: within S3's limits for a multipart upload's parts.
fn parse_part_size(v: &Validator<'_>, text: Option<&str>) -> Result<u64, ConfigError> {
    let part_size = v.bytes("store.part_size", text, "16MiB")?;
    if !(5 << 20..=5 << 30).contains(&part_size) {
        return Err(v.invalid(
            "store.part_size",
            "must be between 5MiB and 5GiB (S3 limits)",
        ));
    }
    Ok(part_size)
}

fn parse_verify(v: &Validator<'_>, text: Option<&str>) -> Result<VerifyMode, ConfigError> {
    match text.unwrap_or("checksum") {
        "checksum" => Ok(VerifyMode::Checksum),
        "read" => Ok(VerifyMode::Read),
        other => Err(v.invalid(
            "store.verify",
            format!("`{other}` is not a mode; use \"checksum\" or \"read\""),
        )),
    }
}

/// `store.max_upload_rate`: `None` (or "none") for no limit, else at least 1KiB/s.
fn parse_max_upload_rate(
    v: &Validator<'_>,
    text: Option<&str>,
) -> Result<Option<u64>, ConfigError> {
    match text {
        None | Some("none") => Ok(None),
        Some(text) => match parse_bytes(text) {
            Some(n) if n >= 1024 => Ok(Some(n)),
            _ => Err(v.invalid(
                "store.max_upload_rate",
                format!(
                    "`{text}` is not a rate of at least 1KiB (bytes per second, e.g. \"4MiB\")"
                ),
            )),
        },
    }
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
