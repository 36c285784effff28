//! One list of store tests, run against every backend: the local directory
//! store, the S3 store talking to a real Garage, the Azure store talking to
//! Azurite, the GCS store talking to fake-gcs-server and the SFTP store
//! talking to OpenSSH (`servers.rs` starts those three).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use recvault::digest;
use recvault::store::{
    LocalStore, Purged, PutOutcome, PutRequest, Store, StoreError, Versioning, single_part_checksum,
};

use crate::common::{garage, unique_prefix};
use crate::servers;

const MIB: u64 = 1 << 20;

fn meta(sha: [u8; 32]) -> BTreeMap<String, String> {
    [
        ("sha256".to_string(), hex::encode(sha)),
        ("original-name".to_string(), "a%20b.wav".to_string()),
    ]
    .into()
}

async fn put_bytes(
    store: &dyn Store,
    dir: &Path,
    key: &str,
    bytes: &[u8],
) -> Result<PutOutcome, StoreError> {
    let source = dir.join(format!("src-{}", fastrand::u64(..)));
    std::fs::write(&source, bytes).unwrap();
    let sha = digest::sha256(bytes);
    let m = meta(sha);
    store
        .put(&PutRequest {
            key,
            source: recvault::store::Body::File(&source),
            size: bytes.len() as u64,
            sha256: sha,
            metadata: &m,
            content_type: "audio/flac",
        })
        .await
}

async fn get_bytes(store: &dyn Store, dir: &Path, key: &str) -> Vec<u8> {
    let dest = dir.join(format!("dst-{}", fastrand::u64(..)));
    let n = store.get(key, &dest).await.unwrap();
    let bytes = std::fs::read(&dest).unwrap();
    assert_eq!(n, bytes.len() as u64);
    bytes
}

/// What a backend reports, on head, as its own proof of an object's bytes.
#[derive(Debug, Clone, Copy)]
pub enum Reports {
    /// Base64 SHA-256 of the whole object; from `multipart_from` bytes up,
    /// S3's composite: SHA-256 of the `part_size` parts' SHA-256s, `-N`.
    Sha256 { multipart_from: u64, part_size: u64 },
    /// Base64 SHA-256 of objects up to this size (sent in one piece, which
    /// the store's own MD5 vouches for); nothing for larger ones.
    Sha256UpTo(u64),
    /// Nothing: the store proves nothing about what it holds.
    Nothing,
}

impl Reports {
    /// The checksum the store must report for an object holding `bytes`,
    /// computed here from the bytes alone.
    fn expected(self, bytes: &[u8]) -> Option<String> {
        let (multipart_from, part_size) = match self {
            Reports::Sha256 {
                multipart_from,
                part_size,
            } => (multipart_from, part_size),
            Reports::Sha256UpTo(max) if bytes.len() as u64 <= max => (u64::MAX, 0),
            Reports::Sha256UpTo(_) | Reports::Nothing => return None,
        };
        if (bytes.len() as u64) < multipart_from {
            return Some(single_part_checksum(&digest::sha256(bytes)));
        }
        let parts: Vec<[u8; 32]> = bytes
            .chunks(part_size as usize)
            .map(digest::sha256)
            .collect();
        let joined: Vec<u8> = parts.concat();
        Some(format!(
            "{}-{}",
            single_part_checksum(&digest::sha256(&joined)),
            parts.len()
        ))
    }
}

fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..len).map(|_| rng.u8(..)).collect()
}

pub async fn put_head_get_delete(store: &dyn Store, prefix: &str, dir: &Path, reports: Reports) {
    let key = format!("{prefix}host/2026/03/01/a%20b.wav.zst");
    let bytes = random(300_000, 1);
    let sha = digest::sha256(&bytes);
    let outcome = put_bytes(store, dir, &key, &bytes).await.unwrap();
    assert_eq!(
        outcome,
        PutOutcome::Created {
            checksum: single_part_checksum(&sha)
        }
    );
    let info = store.head(&key).await.unwrap().expect("object after put");
    assert_eq!(info.size, bytes.len() as u64);
    assert_eq!(info.metadata.get("sha256"), Some(&hex::encode(sha)));
    assert_eq!(
        info.metadata.get("original-name").map(String::as_str),
        Some("a%20b.wav")
    );
    assert_eq!(
        info.checksum,
        reports.expected(&bytes),
        "the checksum the store reports"
    );
    assert_eq!(get_bytes(store, dir, &key).await, bytes);
    store.delete(&key).await.unwrap();
    assert_eq!(store.head(&key).await.unwrap(), None);
}

pub async fn never_overwrites(store: &dyn Store, prefix: &str, dir: &Path, _reports: Reports) {
    let key = format!("{prefix}dup.wav.zst");
    let first = random(1000, 2);
    put_bytes(store, dir, &key, &first).await.unwrap();
    let second = random(2000, 3);
    match put_bytes(store, dir, &key, &second).await.unwrap() {
        PutOutcome::Exists(info) => {
            assert_eq!(info.size, 1000);
            assert_eq!(
                info.metadata.get("sha256"),
                Some(&hex::encode(digest::sha256(&first)))
            );
        }
        other => panic!("second put must not overwrite: {other:?}"),
    }
    assert_eq!(get_bytes(store, dir, &key).await, first);
}

pub async fn wrong_checksum_is_refused(
    store: &dyn Store,
    prefix: &str,
    dir: &Path,
    _reports: Reports,
) {
    let key = format!("{prefix}corrupt.wav.zst");
    let bytes = random(5000, 4);
    let source = dir.join("corrupt-src");
    std::fs::write(&source, &bytes).unwrap();
    let wrong = digest::sha256(b"something else");
    let m = meta(wrong);
    let err = store
        .put(&PutRequest {
            key: &key,
            source: recvault::store::Body::File(&source),
            size: bytes.len() as u64,
            sha256: wrong,
            metadata: &m,
            content_type: "audio/flac",
        })
        .await
        .expect_err("a body that does not match its SHA-256 must be refused");
    assert!(!err.is_transient(), "a bad digest is not an outage: {err}");
    assert_eq!(store.head(&key).await.unwrap(), None, "nothing stored");
}

/// Puts `bytes` from memory (`Body::Bytes`: a small recording compressed
/// without a staging file), with `sha` announced.
async fn put_from_memory(
    store: &dyn Store,
    key: &str,
    bytes: &[u8],
    sha: [u8; 32],
) -> Result<PutOutcome, StoreError> {
    let m = meta(sha);
    store
        .put(&PutRequest {
            key,
            source: recvault::store::Body::Bytes(bytes),
            size: bytes.len() as u64,
            sha256: sha,
            metadata: &m,
            content_type: "audio/flac",
        })
        .await
}

pub async fn puts_from_memory(store: &dyn Store, prefix: &str, dir: &Path, reports: Reports) {
    // One small object, and one above the 5 MiB multipart threshold and
    // part size the S3 and Azure backends are built with here.
    for (name, len) in [("small", 20_000), ("parts", (6 * MIB + 777) as usize)] {
        let key = format!("{prefix}memory-{name}.flac");
        let bytes = random(len, 6);
        let sha = digest::sha256(&bytes);
        let outcome = put_from_memory(store, &key, &bytes, sha).await.unwrap();
        assert!(
            matches!(outcome, PutOutcome::Created { .. }),
            "{name}: {outcome:?}"
        );
        let info = store.head(&key).await.unwrap().expect("object after put");
        assert_eq!(info.size, bytes.len() as u64, "{name}");
        assert_eq!(info.metadata.get("sha256"), Some(&hex::encode(sha)));
        assert_eq!(info.checksum, reports.expected(&bytes), "{name}");
        assert!(
            get_bytes(store, dir, &key).await == bytes,
            "{name}: bytes differ"
        );
        // Put again: the object there is reported, not overwritten.
        let again = put_from_memory(store, &key, &bytes, sha).await.unwrap();
        assert!(matches!(again, PutOutcome::Exists(_)), "{name}: {again:?}");
    }
    // Bytes in memory that do not match their SHA-256 are refused too.
    let key = format!("{prefix}memory-corrupt.flac");
    let err = put_from_memory(store, &key, &random(5000, 7), digest::sha256(b"else"))
        .await
        .expect_err("a body that does not match its SHA-256 must be refused");
    assert!(!err.is_transient(), "a bad digest is not an outage: {err}");
    assert_eq!(store.head(&key).await.unwrap(), None, "nothing stored");
}

pub async fn missing_objects(store: &dyn Store, prefix: &str, dir: &Path, _reports: Reports) {
    let key = format!("{prefix}never-written");
    assert_eq!(store.head(&key).await.unwrap(), None);
    store.delete(&key).await.unwrap();
    assert!(store.get(&key, &dir.join("missing")).await.is_err());
}

pub async fn large_object_round_trips(
    store: &dyn Store,
    prefix: &str,
    dir: &Path,
    reports: Reports,
) {
    // Above the 5 MiB multipart threshold the S3 backend is built with here.
    let key = format!("{prefix}big.wav.zst");
    let bytes = random((12 * MIB + 12345) as usize, 5);
    let outcome = put_bytes(store, dir, &key, &bytes).await.unwrap();
    let PutOutcome::Created { checksum } = outcome else {
        panic!("{outcome:?}")
    };
    // Where the store reports a checksum, put announced that one, and both
    // are what the bytes alone say it must be (checked on head below, also
    // where the store reports none).
    if let Some(want) = reports.expected(&bytes) {
        assert_eq!(checksum, want);
    }
    let info = store.head(&key).await.unwrap().unwrap();
    assert_eq!(info.size, bytes.len() as u64);
    assert_eq!(
        info.metadata.get("sha256"),
        Some(&hex::encode(digest::sha256(&bytes)))
    );
    assert_eq!(
        info.checksum,
        reports.expected(&bytes),
        "the checksum the store reports"
    );
    assert_eq!(
        digest::sha256(&get_bytes(store, dir, &key).await),
        digest::sha256(&bytes)
    );
}

pub async fn list_by_prefix(store: &dyn Store, prefix: &str, dir: &Path, _reports: Reports) {
    for k in ["a/2", "a/1", "b/1"] {
        put_bytes(store, dir, &format!("{prefix}{k}"), k.as_bytes())
            .await
            .unwrap();
    }
    let listed = store.list(&format!("{prefix}a/")).await.unwrap();
    let keys: Vec<_> = listed.iter().map(|o| o.key.clone()).collect();
    assert_eq!(keys, vec![format!("{prefix}a/1"), format!("{prefix}a/2")]);
    assert!(listed.iter().all(|o| o.size == 3));
}

pub async fn odd_keys(store: &dyn Store, prefix: &str, dir: &Path, _reports: Reports) {
    let name = recvault::recording::key::encode_name(b"-x \"quote\" 'q' \n\xff~.wav");
    let key = format!("{prefix}{name}~7.zst");
    put_bytes(store, dir, &key, b"odd").await.unwrap();
    assert_eq!(get_bytes(store, dir, &key).await, b"odd");
    assert!(
        store
            .list(prefix)
            .await
            .unwrap()
            .iter()
            .any(|o| o.key == key)
    );
}

pub async fn delete_many_in_batches(
    store: &dyn Store,
    prefix: &str,
    dir: &Path,
    _reports: Reports,
) {
    // More than one DeleteObjects request's worth, a few absent keys among them.
    let mut keys = Vec::new();
    for i in 0..1005 {
        let key = format!("{prefix}many/{i:04}");
        if i % 100 != 7 {
            put_bytes(store, dir, &key, key.as_bytes()).await.unwrap();
        }
        keys.push(key);
    }
    let keep = format!("{prefix}keep");
    put_bytes(store, dir, &keep, b"keep").await.unwrap();
    let results = store.delete_many(&keys).await.unwrap();
    assert_eq!(results.len(), keys.len());
    for ((key, result), wanted) in results.iter().zip(&keys) {
        assert_eq!(key, wanted, "results come back in order");
        assert!(result.is_ok(), "{key}: {result:?}");
    }
    let left: Vec<_> = store
        .list(prefix)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(left, vec![keep], "exactly the listed keys are gone");
    assert!(store.delete_many(&[]).await.unwrap().is_empty());
}

/// Stores without versions recvault can see: deleting "every version" is a
/// plain delete. `versioning` is what the backend must say about itself
/// (`check` and `erase` show it to the operator).
pub async fn delete_all_versions_leaves_nothing(
    store: &dyn Store,
    prefix: &str,
    dir: &Path,
    versioning: Versioning,
) {
    assert_eq!(store.versioning().await.unwrap(), versioning);
    let keys: Vec<String> = ["a", "b", "absent"]
        .iter()
        .map(|k| format!("{prefix}v/{k}"))
        .collect();
    for key in &keys[..2] {
        put_bytes(store, dir, key, b"audio").await.unwrap();
    }
    let keep = format!("{prefix}v/a-longer");
    put_bytes(store, dir, &keep, b"keep").await.unwrap();
    let results = store.delete_all_versions(&keys).await.unwrap();
    let got: Vec<_> = results
        .iter()
        .map(|(k, r)| (k.clone(), r.clone().unwrap()))
        .collect();
    let want: Vec<_> = keys
        .iter()
        .map(|k| (k.clone(), Purged::default()))
        .collect();
    assert_eq!(got, want);
    let left: Vec<_> = store
        .list(prefix)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(left, [keep]);
}

macro_rules! conformance {
    ($backend:ident, $reports:expr, $versioning:expr, $make:expr) => {
        mod $backend {
            use super::*;

            const REPORTS: Reports = $reports;
            const VERSIONING: Versioning = $versioning;

            /// `None`: the backend's test server is not installed (outside CI).
            async fn setup(test: &str) -> Option<(Arc<dyn Store>, String, tempfile::TempDir)> {
                let dir = tempfile::tempdir().unwrap();
                let make: fn(&Path) -> _ = $make;
                let store = make(dir.path()).await?;
                Some((store, unique_prefix(test), dir))
            }

            conformance!(@tests put_head_get_delete, never_overwrites, wrong_checksum_is_refused,
                puts_from_memory, missing_objects, large_object_round_trips, list_by_prefix, odd_keys,
                delete_many_in_batches);

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn delete_all_versions_leaves_nothing() {
                let Some((store, prefix, dir)) = setup("delete_all_versions_leaves_nothing").await
                else {
                    return;
                };
                super::delete_all_versions_leaves_nothing(&*store, &prefix, dir.path(), VERSIONING)
                    .await;
            }
        }
    };
    (@tests $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some((store, prefix, dir)) = setup(stringify!($name)).await else {
                    return;
                };
                super::$name(&*store, &prefix, dir.path(), REPORTS).await;
            }
        )*
    };
}

// The local store hashes what it wrote, in one piece.
conformance!(
    local,
    Reports::Sha256 {
        multipart_from: u64::MAX,
        part_size: 0
    },
    Versioning::Unversioned,
    |dir| {
        let root = dir.join("store");
        Box::pin(async move { Some(Arc::new(LocalStore::new(root)) as Arc<dyn Store>) })
    }
);

// Built with a 5 MiB multipart threshold and part size.
conformance!(
    s3_garage,
    Reports::Sha256 {
        multipart_from: 5 * MIB,
        part_size: 5 * MIB
    },
    Versioning::Unversioned,
    |_dir| Box::pin(async { Some(garage().store(5 * MIB, 5 * MIB).await) })
);

// Azure's Content-MD5 vouches for our SHA-256 on a blob put in one piece
// (up to the 5 MiB part size); a blob put in blocks has none.
conformance!(
    azure_azurite,
    Reports::Sha256UpTo(5 * MIB),
    Versioning::NotVisible,
    |_dir| Box::pin(async {
        Some(servers::shared_azurite()?.store(5 * MIB, 5 * MIB) as Arc<dyn Store>)
    })
);

// GCS's md5Hash vouches for our SHA-256 however the object was sent.
conformance!(
    gcs_fake_gcs_server,
    Reports::Sha256 {
        multipart_from: u64::MAX,
        part_size: 0
    },
    Versioning::NotVisible,
    |_dir| Box::pin(async {
        Some(servers::shared_gcs()?.store(5 * MIB, 5 * MIB) as Arc<dyn Store>)
    })
);

// A file server proves nothing about the bytes it holds.
conformance!(
    sftp_openssh,
    Reports::Nothing,
    Versioning::Unversioned,
    |_dir| Box::pin(async { Some(servers::shared_sshd()?.store() as Arc<dyn Store>) })
);
