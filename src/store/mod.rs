//! The store: where objects live. One small trait; backends for S3-compatible
//! stores, Azure Blob and Google Cloud Storage (through OpenDAL, `cloud`),
//! SFTP and a local directory; one conformance suite in `tests/` run against
//! every one. Deleting for good (`delete_all_versions`) knows about versioned
//! buckets; its default is a plain delete, for stores without versions.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;

use crate::config::{StoreBackend, StoreConfig};

pub mod azure;
mod cloud;
pub mod gcs;
mod local;
pub mod metered;
mod parts;
pub mod probe;
mod s3;
pub mod sftp;
mod sidecar;
mod staged;
mod text;
pub mod throttle;

pub use cloud::CloudStore;
pub use local::LocalStore;
pub use s3::S3Store;
pub use sftp::SftpStore;
pub use text::{get_text, put_text};

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
    /// What is known about the call when the object is stored (campaign or
    /// in-group, agent, lead, phone, unix call time, length in seconds,
    /// VICIdial's `recording_log.recording_id`), each key-encoded.
    pub const CAMPAIGN: &str = "campaign";
    pub const AGENT: &str = "agent";
    pub const LEAD_ID: &str = "lead-id";
    pub const PHONE: &str = "phone";
    pub const CALL_TIME: &str = "call-time";
    pub const CALL_LENGTH: &str = "call-length";
    pub const VICIDIAL_RECORDING_ID: &str = "vicidial-recording-id";
    /// MD5 (base64) of the object bytes, hashed in one pass with `sha256`
    /// (Azure, GCS): the link from the store's own MD5 to our SHA-256.
    pub const MD5: &str = "md5";
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
    /// Exactly the object bytes: a file, or the bytes themselves.
    pub source: Body<'a>,
    pub size: u64,
    pub sha256: [u8; 32],
    pub metadata: &'a BTreeMap<String, String>,
    /// The object's Content-Type (`audio/flac` lets a browser play a
    /// presigned URL); stores without such a header may keep it aside.
    pub content_type: &'a str,
}

/// Where the bytes of an object being put are. Every backend takes both.
#[derive(Debug, Clone, Copy)]
pub enum Body<'a> {
    /// A file holding exactly the object bytes (a staged object, a backup).
    File(&'a Path),
    /// The object bytes themselves: a small recording compressed in memory,
    /// for which no staging file was ever written.
    Bytes(&'a [u8]),
}

impl<'a> Body<'a> {
    /// The bytes from the start, read as they are needed.
    pub fn reader(&self) -> std::io::Result<Box<dyn std::io::Read + Send + 'a>> {
        Ok(match *self {
            Body::File(path) => Box::new(std::fs::File::open(path)?),
            Body::Bytes(bytes) => Box::new(bytes),
        })
    }

    /// Runs `f` over the bytes from the start: a file's on the blocking
    /// pool, bytes in memory right here (they are small). A failure to
    /// read is [`StoreError::Local`], naming the body.
    pub async fn read_with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn std::io::Read) -> std::io::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let read = match *self {
            Body::File(path) => {
                let path = path.to_path_buf();
                tokio::task::spawn_blocking(move || f(&mut std::fs::File::open(&path)?))
                    .await
                    .map_err(|e| StoreError::Local(format!("reading {self}: {e}")))?
            }
            Body::Bytes(mut bytes) => f(&mut bytes),
        };
        read.map_err(|e| StoreError::Local(format!("cannot read {self}: {e}")))
    }

    /// The same as [`Body::reader`], for a task that must not block.
    pub async fn async_reader(
        &self,
    ) -> std::io::Result<Box<dyn tokio::io::AsyncRead + Send + Unpin + 'a>> {
        Ok(match *self {
            Body::File(path) => Box::new(tokio::fs::File::open(path).await?),
            Body::Bytes(bytes) => Box::new(bytes),
        })
    }
}

/// Names the body in errors: the file's path, or that it was in memory.
impl std::fmt::Display for Body<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Body::File(path) => write!(f, "{}", path.display()),
            Body::Bytes(bytes) => write!(f, "the object in memory ({} bytes)", bytes.len()),
        }
    }
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

/// An object's bytes as they arrive from the store.
pub type ObjectReader = Box<dyn tokio::io::AsyncRead + Send + Unpin>;

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
    /// The store may keep versions (Azure blob versioning, GCS object
    /// versioning), but recvault's client for it can neither see nor delete
    /// them: a delete removes the current object only.
    NotVisible,
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
    /// `key`'s bytes, to read as they arrive (bounded memory); `None` if absent.
    async fn open(&self, key: &str) -> Result<Option<ObjectReader>, StoreError>;
    /// A URL from which anyone holding it may GET `key` until `ttl` has
    /// passed, answered with `content_type`; `None` where the store has no
    /// such URLs.
    async fn presign_get(
        &self,
        key: &str,
        ttl: Duration,
        content_type: &str,
    ) -> Result<Option<String>, StoreError> {
        let _ = (key, ttl, content_type);
        Ok(None)
    }
    /// Removes `key`; absent keys are not an error.
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// Removes many keys (S3: DeleteObjects, up to [`DELETE_BATCH`] per
    /// request). The outer error means nothing is known to be deleted; else
    /// one result per key, in order. Absent keys are not an error. The
    /// default, for stores without a batch delete, sends
    /// [`DELETE_CONCURRENCY`] single deletes at a time.
    async fn delete_many(
        &self,
        keys: &[String],
    ) -> Result<Vec<(String, Result<(), StoreError>)>, StoreError> {
        Ok(delete_each(self, keys, DELETE_CONCURRENCY).await)
    }
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
    /// Whether deleted objects leave versions behind. No default: every
    /// backend, and every wrapper, says (a wrapper that forgot would turn
    /// "delete for good" into a delete marker).
    async fn versioning(&self) -> Result<Versioning, StoreError>;
    /// Removes everything of each key: on a versioned bucket every version
    /// and delete marker (by version id), naming the versions Object Lock
    /// keeps and until when; on a store without versions a plain delete
    /// ([`delete_plainly`]). Same results shape as `delete_many`.
    ///
    /// The default serves stores whose deletes leave nothing recvault can
    /// reach (a directory, a file server, OpenDAL's clouds); on a store that
    /// says it keeps versions it refuses rather than leave them behind, so a
    /// backend or wrapper that forgot to implement this cannot turn "delete
    /// for good" into a delete marker.
    async fn delete_all_versions(
        &self,
        keys: &[String],
    ) -> Result<Vec<(String, Result<Purged, StoreError>)>, StoreError> {
        match self.versioning().await? {
            Versioning::Unversioned | Versioning::NotVisible => delete_plainly(self, keys).await,
            Versioning::Enabled | Versioning::Suspended => Err(StoreError::Permanent(format!(
                "{}: keeps versions, and this store cannot delete them by id",
                self.describe()
            ))),
        }
    }
}

/// [`Store::delete_all_versions`] for a store whose deletes leave nothing
/// behind that recvault can see: [`Store::delete_many`].
pub(crate) async fn delete_plainly<S: Store + ?Sized>(
    store: &S,
    keys: &[String],
) -> Result<Vec<(String, Result<Purged, StoreError>)>, StoreError> {
    Ok(store
        .delete_many(keys)
        .await?
        .into_iter()
        .map(|(k, r)| (k, r.map(|()| Purged::default())))
        .collect())
}

/// `delete_many` for stores without a batch delete: one `delete` per key,
/// `concurrency` at a time, results in order. Once a whole round fails as
/// an outage, the rest are not tried (each would wait out a timeout) and
/// carry that error.
pub(crate) async fn delete_each<S: Store + ?Sized>(
    store: &S,
    keys: &[String],
    concurrency: usize,
) -> Vec<(String, Result<(), StoreError>)> {
    let mut out = Vec::with_capacity(keys.len());
    let mut broken: Option<StoreError> = None;
    for chunk in keys.chunks(concurrency.max(1)) {
        if let Some(e) = &broken {
            out.extend(chunk.iter().map(|k| (k.clone(), Err(e.clone()))));
            continue;
        }
        let results = futures_util::future::join_all(chunk.iter().map(|k| store.delete(k))).await;
        if results
            .iter()
            .all(|r| r.as_ref().is_err_and(StoreError::is_transient))
        {
            broken = results.first().and_then(|r| r.clone().err());
        }
        out.extend(chunk.iter().cloned().zip(results));
    }
    out
}

/// Single deletes in flight at once where a store has no batch delete: a
/// thousand keys take 63 round trips, not a thousand.
pub const DELETE_CONCURRENCY: usize = 16;

/// The most keys one DeleteObjects request may carry (an S3 limit).
pub const DELETE_BATCH: usize = 1000;

/// Builds the configured store.
pub async fn open(config: &StoreConfig) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match &config.backend {
        StoreBackend::Local { path } => Arc::new(LocalStore::new(path.clone())),
        StoreBackend::Azure(azure) => Arc::new(
            azure::open(
                azure,
                config.multipart_threshold,
                config.part_size,
                config.max_upload_rate,
            )?
            .with_probe_prefix(&config.prefix),
        ),
        StoreBackend::Gcs(gcs) => Arc::new(
            gcs::open(
                gcs,
                config.multipart_threshold,
                config.part_size,
                config.max_upload_rate,
            )?
            .with_probe_prefix(&config.prefix),
        ),
        StoreBackend::Sftp(sftp) => Arc::new(SftpStore::new(sftp, config.max_upload_rate)),
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Deletes fail as an outage would; counts the attempts. Says it keeps
    /// versions as told, and leaves `delete_all_versions` to the default.
    struct Down(AtomicUsize, Versioning);

    #[async_trait]
    impl Store for Down {
        fn describe(&self) -> String {
            "down".into()
        }
        async fn put(&self, _: &PutRequest<'_>) -> Result<PutOutcome, StoreError> {
            unreachable!()
        }
        async fn head(&self, _: &str) -> Result<Option<ObjectInfo>, StoreError> {
            unreachable!()
        }
        async fn get(&self, _: &str, _: &Path) -> Result<u64, StoreError> {
            unreachable!()
        }
        async fn open(&self, _: &str) -> Result<Option<ObjectReader>, StoreError> {
            unreachable!()
        }
        async fn delete(&self, _: &str) -> Result<(), StoreError> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Err(StoreError::Transient("connection refused".into()))
        }
        async fn delete_many(
            &self,
            keys: &[String],
        ) -> Result<Vec<(String, Result<(), StoreError>)>, StoreError> {
            Ok(delete_each(self, keys, 16).await)
        }
        async fn list(&self, _: &str) -> Result<Vec<ListedObject>, StoreError> {
            unreachable!()
        }
        async fn versioning(&self) -> Result<Versioning, StoreError> {
            Ok(self.1)
        }
    }

    #[tokio::test]
    async fn an_outage_stops_one_by_one_deletes_after_one_round() {
        let store = Down(AtomicUsize::new(0), Versioning::Unversioned);
        let keys: Vec<String> = (0..100).map(|i| format!("k{i}")).collect();
        let results = store.delete_many(&keys).await.unwrap();
        assert_eq!(results.len(), 100);
        assert!(
            results
                .iter()
                .zip(&keys)
                .all(|((k, r), want)| k == want && r.is_err())
        );
        assert_eq!(
            store.0.load(Ordering::Relaxed),
            16,
            "only the first round was tried"
        );
    }

    #[tokio::test]
    async fn the_default_purge_deletes_plainly_only_where_no_versions_stay() {
        let keys = vec!["a".to_string(), "b".to_string()];
        for kept in [Versioning::Enabled, Versioning::Suspended] {
            let store = Down(AtomicUsize::new(0), kept);
            let err = store.delete_all_versions(&keys).await.unwrap_err();
            assert!(err.to_string().contains("keeps versions"), "{err}");
            assert_eq!(store.0.load(Ordering::Relaxed), 0, "nothing deleted");
        }
        for gone in [Versioning::Unversioned, Versioning::NotVisible] {
            let store = Down(AtomicUsize::new(0), gone);
            let results = store.delete_all_versions(&keys).await.unwrap();
            assert_eq!(results.len(), 2);
            assert_eq!(store.0.load(Ordering::Relaxed), 2, "one delete per key");
        }
    }
}
