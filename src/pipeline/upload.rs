//! The archive steps that talk to the store: upload the staged object with
//! its SHA-256, then verify — read the store's answer back and compare it with
//! what was computed locally. Only a `verified` recording's local copy may go.

use std::fs;
use std::path::Path;

use super::archive::Archiver;
use crate::codec;
use crate::config::VerifyMode;
use crate::digest;
use crate::error::Error;
use crate::ledger::verify::{Reserved, Verification};
use crate::metrics;
use crate::recording::Recording;
use crate::store::{Body, ObjectInfo, PutOutcome, PutRequest, StoreError, meta};

/// Where an object is read from for its upload, and its size (`None`: the
/// staging file is gone).
fn object_source<'a>(staged: &'a Path, in_memory: Option<&'a [u8]>) -> (Body<'a>, Option<u64>) {
    match in_memory {
        Some(bytes) => (Body::Bytes(bytes), Some(bytes.len() as u64)),
        None => (
            Body::File(staged),
            fs::metadata(staged).map(|m| m.len()).ok(),
        ),
    }
}

/// What an upload step did.
pub(super) enum Upload {
    /// The store took the object (or holds ours already) and will report
    /// this checksum: recorded with the verification, in its durable commit.
    Stored(String),
    /// It recorded something else (compress again, upload again under
    /// another key): the recording as it now is.
    Recorded(Box<Recording>),
}

/// What checking the store's answer found, when it was no error.
pub(super) enum Proven {
    /// The object at this key is ours: it may be recorded `verified`.
    Yes(String),
    /// It is missing: recorded to be uploaded again; the recording as it now is.
    Recorded(Box<Recording>),
}

/// What a verification step did.
pub(super) struct Verified {
    /// The recording as it now is.
    pub rec: Recording,
    /// If it was verified: what reserving its local delete in the same
    /// commit found (`ledger::verify::Reserved`).
    pub reserved: Option<Reserved>,
}

impl Archiver {
    /// Uploads `rec`'s object: `in_memory` if this call compressed it into
    /// memory, else its staging file.
    pub(super) async fn upload(
        &self,
        rec: &Recording,
        in_memory: Option<&[u8]>,
    ) -> Result<Upload, Error> {
        let id = rec.id;
        let staged = self.staging_path(id);
        let (Some(key), Some(size), Some(sha_hex)) =
            (&rec.object_key, rec.object_size, &rec.object_sha256)
        else {
            return self.compress_again(id, "incomplete compress record").await;
        };
        let (source, source_size) = object_source(&staged, in_memory);
        let sha256 = digest::from_hex(sha_hex);
        let (Some(sha256), true) = (sha256, source_size == Some(size)) else {
            // Staging lost (crash, cleaned dir): compress again.
            return self
                .compress_again(id, "staging copy missing; compressing again")
                .await;
        };
        let metadata = self.object_metadata(rec);
        let request = PutRequest {
            key,
            source,
            size,
            sha256,
            metadata: &metadata,
            content_type: codec::content_type(codec::codec_of(rec), &rec.name),
        };
        let outcome = match self.store.put(&request).await {
            Err(StoreError::Permanent(msg)) if is_digest_rejection(&msg) => {
                // The staged bytes are not what we hashed: make them again
                // (an object in memory goes with this call).
                if in_memory.is_none() {
                    let _ = fs::remove_file(&staged);
                }
                return Err(StoreError::Permanent(msg).into());
            }
            other => other?,
        };
        let checksum = match outcome {
            PutOutcome::Created { checksum } => checksum,
            PutOutcome::Exists(info) if is_our_object(rec, &info) => {
                tracing::info!(key = %key, "object already stored by an earlier attempt");
                info.checksum
                    .unwrap_or_else(|| crate::store::single_part_checksum(&sha256))
            }
            PutOutcome::Exists(info) => {
                return self
                    .key_taken(rec, key, &info)
                    .await
                    .map(|rec| Upload::Recorded(Box::new(rec)));
            }
        };
        metrics::inc(&self.metrics.uploads);
        metrics::add(&self.metrics.bytes_out, size);
        Ok(Upload::Stored(checksum))
    }

    /// Records that `id` is to be compressed again (`why`): its staged
    /// object is gone or its record incomplete.
    async fn compress_again(&self, id: i64, why: &'static str) -> Result<Upload, Error> {
        let rec = self.record(id, move |l| l.compress_again(id, why)).await?;
        Ok(Upload::Recorded(Box::new(rec)))
    }

    /// Another object has `key` in the store: never overwritten, the
    /// recording is uploaded again under a key with its id. The object
    /// there stays among the recording's keys if it is an earlier upload of
    /// this recording (its metadata says so: erasure and retention must
    /// reach it), and is no longer tracked as its if it is another's.
    async fn key_taken(
        &self,
        rec: &Recording,
        key: &str,
        there: &ObjectInfo,
    ) -> Result<Recording, Error> {
        let id = rec.id;
        let m = &there.metadata;
        let ours = m.get(meta::HOST) == Some(&self.config.daemon.host)
            && m.get(meta::RECORDING_ID) == Some(&id.to_string());
        let taken = key.to_string();
        self.ledger
            .call(move |l| l.key_found(id, &taken, ours))
            .await?;
        let fresh = self.render_key(rec, codec::codec_of(rec), true);
        if fresh == key {
            return Err(Error::Verification(format!(
                "a different object already exists at `{key}` and no other key is free"
            )));
        }
        tracing::warn!(key = %key, new_key = %fresh, "a different object already has this key; never overwriting, using another key");
        self.record(id, move |l| {
            l.upload_again(id, Some(&fresh), "key taken in store")
        })
        .await
    }

    /// Verifies `rec`'s stored object and reserves its local delete in the
    /// same durable commit. `upload`: the checksum of an upload this call
    /// made and has not recorded (`rec` is still `compressed`; its
    /// `store_checksum` is that one); `staged_in_file` if its object may be
    /// in a staging file, removed once verified.
    pub(super) async fn verify(
        &self,
        rec: &Recording,
        upload: Option<String>,
        staged_in_file: bool,
    ) -> Result<Verified, Error> {
        match self.prove(rec).await? {
            Proven::Yes(key) => {
                self.record_verified(rec, &key, upload, staged_in_file)
                    .await
            }
            Proven::Recorded(rec) => Ok(Verified {
                rec: *rec,
                reserved: None,
            }),
        }
    }

    /// Checks the store's answer about `rec`'s object against the ledger
    /// (reading the object back where that answer proves nothing). An
    /// object missing is recorded to be uploaded again; a wrong one under a
    /// fresh key, and is an error. Nothing is recorded when it is proven.
    pub(super) async fn prove(&self, rec: &Recording) -> Result<Proven, Error> {
        let id = rec.id;
        let key = rec.object_key.clone().unwrap_or_default();
        let Some(info) = self.store.head(&key).await? else {
            tracing::warn!(key = %key, "object missing on read-back; uploading again");
            let rec = self
                .record(id, move |l| {
                    l.upload_again(id, None, "object missing on read-back")
                })
                .await?;
            return Ok(Proven::Recorded(Box::new(rec)));
        };
        let mut problem = match check_object(rec, &info) {
            // Our own metadata read back proves nothing about the bytes: a
            // store that reports no checksum has its object hashed again.
            Ok(Proof::MetadataOnly) => self.read_back(rec, &key).await?,
            Ok(Proof::StoreChecksum) => None,
            Err(problem) => Some(problem),
        };
        if problem.is_none() && self.store_config.verify == VerifyMode::Read {
            problem = self.read_back(rec, &key).await?;
        }
        if let Some(problem) = problem {
            // Never delete the local file; upload under a fresh key next time.
            let fresh = self.render_key(rec, codec::codec_of(rec), true);
            tracing::error!(key = %key, problem = %problem, "verification failed; the local copy stays");
            if fresh != key {
                let why = format!("verification failed: {problem}");
                self.ledger
                    .call(move |l| l.upload_again(id, Some(&fresh), &why))
                    .await?;
            }
            return Err(Error::Verification(problem));
        }
        Ok(Proven::Yes(key))
    }

    /// Records `rec`'s object at `key` verified (with `upload`, its upload
    /// not recorded yet) and its local delete reserved, in one durable
    /// commit; then the staging file goes and a hold placed before the
    /// object existed is mirrored on it.
    async fn record_verified(
        &self,
        rec: &Recording,
        key: &str,
        upload: Option<String>,
        staged_in_file: bool,
    ) -> Result<Verified, Error> {
        let id = rec.id;
        let what = Verification {
            upload,
            reserve_local: true,
        };
        let (reserved, rec_now) = self
            .ledger
            .call(move |l| Ok::<_, Error>((l.verified_with(id, what)?, l.recording(id)?)))
            .await?;
        metrics::inc(&self.metrics.verifications);
        metrics::add(&self.metrics.bytes_in, rec.identity.size);
        if staged_in_file {
            let _ = fs::remove_file(self.staging_path(id));
        }
        self.mirror_hold(id, key, &reserved).await?;
        Ok(Verified {
            rec: rec_now,
            reserved: Some(reserved),
        })
    }

    /// Sets the object's legal hold in the store (`object_lock_legal_hold`)
    /// if a hold covers verified recording `id`: one placed before the
    /// object existed is mirrored on it. The ledger's hold protects it
    /// either way.
    pub(super) async fn mirror_hold(
        &self,
        id: i64,
        key: &str,
        reserved: &Reserved,
    ) -> Result<(), Error> {
        if self.store_config.object_lock_legal_hold
            && self.held(id, reserved).await?
            && let Err(e) = self.store.set_legal_hold(key, true).await
        {
            tracing::warn!(key = %key, "cannot set the object's legal hold (the ledger's hold still applies): {e}");
        }
        Ok(())
    }

    /// True if a hold covers recording `id`: the reservation made in its
    /// `verified` commit says so, else the ledger is asked.
    async fn held(&self, id: i64, reserved: &Reserved) -> Result<bool, Error> {
        Ok(match reserved {
            Some(cases) => !cases.is_empty(),
            None => self.ledger.call(move |l| l.is_held(id)).await?,
        })
    }

    /// Downloads the object and hashes it; `Some(problem)` if it is not ours.
    async fn read_back(&self, rec: &Recording, key: &str) -> Result<Option<String>, Error> {
        let tmp = self
            .config
            .spool
            .staging
            .join(format!("{}.readback.tmp", rec.id));
        self.store.get(key, &tmp).await?;
        let hashed = tokio::task::spawn_blocking({
            let tmp = tmp.clone();
            move || digest::sha256_file(&tmp)
        })
        .await
        .map_err(|e| Error::Local(e.to_string()))?;
        let _ = fs::remove_file(&tmp);
        let (sha, size) = hashed.map_err(|e| Error::Local(format!("read-back: {e}")))?;
        let want_sha = rec.object_sha256.as_deref().unwrap_or_default();
        if hex::encode(sha) != want_sha || Some(size) != rec.object_size {
            return Ok(Some(format!("read-back hashes to {}", hex::encode(sha))));
        }
        tracing::debug!(key = %key, bytes = size, "read back and hashed");
        Ok(None)
    }
}

/// True if `info` describes exactly this recording's object.
fn is_our_object(rec: &Recording, info: &ObjectInfo) -> bool {
    Some(info.size) == rec.object_size
        && info.metadata.get(meta::SHA256) == rec.object_sha256.as_ref()
}

/// What the store's answer about an object proves, once nothing in it
/// contradicts the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    /// The store reported its own checksum of the bytes it holds (SHA-256,
    /// or the multipart composite of SHA-256s), equal to the one expected.
    StoreChecksum,
    /// The store reported no checksum: only our own metadata came back,
    /// which says nothing about the bytes. The object must be read back.
    MetadataOnly,
}

/// Compares the store's view of an object with the ledger's: the gate
/// before a local copy may be deleted. `Err(problem)` on any mismatch;
/// otherwise what the answer proves.
pub fn check_object(rec: &Recording, info: &ObjectInfo) -> Result<Proof, String> {
    let want_size = rec.object_size.unwrap_or(0);
    if info.size != want_size {
        return Err(format!(
            "size {} in store, {} expected",
            info.size, want_size
        ));
    }
    let want_sha = rec.object_sha256.clone().unwrap_or_default();
    let meta_sha = info.metadata.get(meta::SHA256);
    if let Some(got) = meta_sha.filter(|s| **s != want_sha) {
        return Err(format!(
            "metadata sha256 {got} in store, {want_sha} expected"
        ));
    }
    match (&info.checksum, &rec.store_checksum) {
        (Some(got), Some(want)) if got != want => {
            Err(format!("checksum {got} in store, {want} expected"))
        }
        (Some(_), Some(_)) => Ok(Proof::StoreChecksum),
        _ if meta_sha.is_none() => {
            Err("the store reports neither a checksum nor our metadata".to_string())
        }
        // Nothing to compare a checksum with, or none reported.
        _ => Ok(Proof::MetadataOnly),
    }
}

/// True if the store refused a put because the bytes did not hash to the
/// SHA-256 we sent: AWS says `BadDigest`, Garage `InvalidDigest`, the local
/// store "checksum mismatch".
fn is_digest_rejection(message: &str) -> bool {
    ["BadDigest", "InvalidDigest", "checksum mismatch"]
        .iter()
        .any(|m| message.contains(m))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::recording::State;
    use crate::store::single_part_checksum;

    const SHA: [u8; 32] = [7; 32];

    /// An uploaded recording whose object is 100 bytes hashing to `SHA`.
    fn uploaded() -> Recording {
        Recording {
            state: State::Uploaded,
            sha256: Some(hex::encode([9; 32])),
            object_key: Some("k".into()),
            object_size: Some(100),
            object_sha256: Some(hex::encode(SHA)),
            store_checksum: Some(single_part_checksum(&SHA)),
            codec: Some("zstd".into()),
            ..Recording::example(1, "a.wav")
        }
    }

    /// What a store holding exactly that object reports.
    fn reported() -> ObjectInfo {
        ObjectInfo {
            size: 100,
            checksum: Some(single_part_checksum(&SHA)),
            metadata: BTreeMap::from([(meta::SHA256.to_string(), hex::encode(SHA))]),
        }
    }

    #[test]
    fn the_store_s_own_checksum_proves_the_object() {
        assert_eq!(
            check_object(&uploaded(), &reported()),
            Ok(Proof::StoreChecksum)
        );
        // A multipart composite is compared the same way.
        let mut rec = uploaded();
        rec.store_checksum = Some("Y29tcG9zaXRl-3".into());
        let mut info = reported();
        info.checksum = rec.store_checksum.clone();
        assert_eq!(check_object(&rec, &info), Ok(Proof::StoreChecksum));
    }

    #[test]
    fn metadata_alone_proves_nothing_and_asks_for_a_read_back() {
        let mut info = reported();
        info.checksum = None;
        assert_eq!(check_object(&uploaded(), &info), Ok(Proof::MetadataOnly));
        // A checksum with nothing in the ledger to compare it with: the same.
        let mut rec = uploaded();
        rec.store_checksum = None;
        assert_eq!(check_object(&rec, &reported()), Ok(Proof::MetadataOnly));
    }

    #[test]
    fn every_mismatch_is_a_problem() {
        let rec = uploaded();
        let mut info = reported();
        info.size = 99;
        let size = check_object(&rec, &info).unwrap_err();
        assert!(size.contains("size 99"), "{size}");

        let mut info = reported();
        info.metadata
            .insert(meta::SHA256.to_string(), hex::encode([8; 32]));
        let meta = check_object(&rec, &info).unwrap_err();
        assert!(meta.contains("metadata sha256"), "{meta}");

        let mut info = reported();
        info.checksum = Some(single_part_checksum(&[8; 32]));
        let checksum = check_object(&rec, &info).unwrap_err();
        assert!(checksum.contains("checksum"), "{checksum}");

        let mut info = reported();
        info.checksum = None;
        info.metadata.clear();
        let nothing = check_object(&rec, &info).unwrap_err();
        assert!(nothing.contains("neither"), "{nothing}");

        // A store checksum but no metadata is still proven by the checksum.
        let mut info = reported();
        info.metadata.clear();
        assert_eq!(check_object(&rec, &info), Ok(Proof::StoreChecksum));
    }

    #[test]
    fn digest_rejections_of_every_store_are_recognised() {
        // Garage's wording, seen through the fault proxy.
        assert!(is_digest_rejection(
            "put `k`: service error: unhandled error (InvalidDigest): Invalid digest"
        ));
        assert!(is_digest_rejection(
            "put `k`: BadDigest: The Content-MD5 you specified did not match"
        ));
        assert!(is_digest_rejection("checksum mismatch for `k`"));
        assert!(!is_digest_rejection("put `k`: AccessDenied"));
    }
}
