//! The store: where objects live. One small trait, two backends (S3-compatible
//! and a local directory), one conformance suite in `tests/` run against both.
//! Deleting for good (`delete_all_versions`) knows about versioned buckets;
//! its default is a plain delete, for stores without versions.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;

use crate::config::{StoreBackend, StoreConfig};

mod local;
pub mod probe;
mod s3;
pub mod throttle;

pub use local::LocalStore;
pub use s3::S3Store;

/// Metadata keys recvault writes on every object (as `x-amz-meta-*` on S3).
pub mod meta {
    /// Full-object SHA-256 (hex) of the object bytes.
    pub const SHA256: &str = "sha256";
    /// SHA-256 (hex) of the original recording.
    pub const ORIGINAL_SHA256: &str = "original-sha256";
    /// Size in bytes of the original recording.
    pub const ORIGINAL_SIZE: &str = "original-size";
    /// The original file name, key-encoded (see `keys::encode_name`).
    pub const ORIGINAL_NAME: &str = "original-name";
    /// The original's mtime, unix nanoseconds.
    pub const ORIGINAL_MTIME_NS: &str = "original-mtime-ns";
    /// How the object was encoded (`zstd`, `none`).
    pub const CODEC: &str = "codec";
    /// Host that archived it.
    pub const HOST: &str = "host";
    /// The recording's id in that host's ledger.
    pub const RECORDING_ID: &str = "recording-id";
}

/// Why a store call failed, and whether trying again can help.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// Network trouble, timeouts, 5xx, throttling: back off and retry.
    #[error("store unavailable: {0}")]
    Transient(String),
    /// The request itself is wrong or refused (auth, bad digest, no bucket).
    #[error("store refused: {0}")]
    Permanent(String),
    /// A local file the call needed could not be read or written.
    #[error("local file: {0}")]
    Local(String),
}

impl StoreError {
    /// True if the same call may succeed later without anyone changing anything.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Transient(_))
    }
}

/// What the caller knows about an object it puts.
#[derive(Debug, Clone)]
pub struct PutRequest<'a> {
    pub key: &'a str,
    /// The file holding exactly the object bytes.
    pub source: &'a Path,
    pub size: u64,
    pub sha256: [u8; 32],
    pub metadata: &'a BTreeMap<String, String>,
}

/// The result of a put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    /// Stored; the store will report `checksum` for it on head.
    Created { checksum: String },
    /// Something is already stored under that key; nothing was overwritten.
    Exists(ObjectInfo),
}

/// What the store says about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub size: u64,
    /// The store's own checksum, if it reports one (base64 SHA-256, or
    /// `base64-N` for a multipart composite).
    pub checksum: Option<String>,
    pub metadata: BTreeMap<String, String>,
}

/// Whether a store keeps an object's old versions when it is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Versioning {
    /// A delete removes the object (a local directory, Garage, R2).
    Unversioned,
    /// A plain delete only adds a delete marker: the bytes stay (and are
    /// billed) until each version is deleted by its id.
    Enabled,
    /// No new versions, but those made while it was on stay until deleted by id.
    Suspended,
}

/// A version the store refused to delete because Object Lock keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedVersion {
    pub version_id: String,
    /// Retention keeps it until then (unix seconds), if the store says.
    pub until: Option<i64>,
    /// An Object Lock legal hold keeps it (no date: until someone lifts it).
    pub legal_hold: bool,
    /// The store's answer.
    pub message: String,
}

impl std::fmt::Display for LockedVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "version {} is kept by Object Lock", self.version_id)?;
        if let Some(until) = self.until {
            write!(f, " retention until {}", crate::units::local_time(until))?;
        }
        if self.legal_hold {
            write!(f, " (legal hold on the object: until it is lifted)")?;
        }
        Ok(())
    }
}

/// What deleting every version of one key did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Purged {
    /// Versions and delete markers removed by id (0 on a store without
    /// versions, where the delete itself removed the object).
    pub versions: u64,
    /// Versions still there because Object Lock keeps them.
    pub locked: Vec<LockedVersion>,
}

impl Purged {
    /// True if nothing of the key is left in the store.
    pub fn is_complete(&self) -> bool {
        self.locked.is_empty()
    }
}

/// One object in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    pub key: String,
    pub size: u64,
}

/// A place objects are stored. Implementations never overwrite an existing
/// object and never follow a key outside their root.
#[async_trait]
pub trait Store: Send + Sync {
    /// A short description for logs (never containing credentials).
    fn describe(&self) -> String;
    /// Stores `req.source` under `req.key`, sending `req.sha256` for the store
    /// to check, unless the key already exists.
    async fn put(&self, req: &PutRequest<'_>) -> Result<PutOutcome, StoreError>;
    /// Size, checksum and metadata of `key`, or `None` if absent.
    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError>;
    /// Streams `key` into the file `dest` (created or truncated); returns bytes written.
    async fn get(&self, key: &str, dest: &Path) -> Result<u64, StoreError>;
    /// Removes `key`; absent keys are not an error.
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// Removes many keys (S3: DeleteObjects, up to [`DELETE_BATCH`] per
    /// request). The outer error means nothing is known to be deleted; else
    /// one result per key, in order. Absent keys are not an error.
    async fn delete_many(
        &self,
        keys: &[String],
    ) -> Result<Vec<(String, Result<(), StoreError>)>, StoreError>;
    /// Sets or clears the S3 Object Lock legal hold on `key`. Stores without
    /// Object Lock refuse.
    async fn set_legal_hold(&self, key: &str, on: bool) -> Result<(), StoreError> {
        let _ = on;
        Err(StoreError::Permanent(format!(
            "{}: no Object Lock legal holds (for `{key}`)",
            self.describe()
        )))
    }
    /// Every object whose key starts with `prefix`, in key order.
    async fn list(&self, prefix: &str) -> Result<Vec<ListedObject>, StoreError>;
    /// Whether deleted objects leave versions behind. Stores without
    /// versions need not implement it.
    async fn versioning(&self) -> Result<Versioning, StoreError> {
        Ok(Versioning::Unversioned)
    }
    /// Removes everything of each key: on a versioned bucket every version
    /// and delete marker (by version id), naming the versions Object Lock
    /// keeps and until when; elsewhere a plain delete ([`Store::delete_many`],
    /// which this default is). Same results shape as `delete_many`.
    async fn delete_all_versions(
        &self,
        keys: &[String],
    ) -> Result<Vec<(String, Result<Purged, StoreError>)>, StoreError> {
        Ok(self
            .delete_many(keys)
            .await?
            .into_iter()
            .map(|(k, r)| (k, r.map(|()| Purged::default())))
            .collect())
    }
}

/// The most keys one DeleteObjects request may carry (an S3 limit).
pub const DELETE_BATCH: usize = 1000;

/// Builds the configured store.
pub async fn open(config: &StoreConfig) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match &config.backend {
        StoreBackend::Local { path } => Arc::new(LocalStore::new(path.clone())),
        StoreBackend::S3(s3) => Arc::new(
            S3Store::new(
                s3,
                config.multipart_threshold,
                config.part_size,
                config.max_upload_rate,
            )
            .await?
            .with_probe_prefix(&config.prefix),
        ),
    })
}

/// The checksum string a store reports for a single-part object with this SHA-256.
pub fn single_part_checksum(sha256: &[u8; 32]) -> String {
    base64::engine::general_purpose::STANDARD.encode(sha256)
}
