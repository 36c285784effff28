//! The archive steps that talk to the store: upload the staged object with
//! its SHA-256, then verify — read the store's answer back and compare it with
//! what was computed locally. Only a `verified` recording's local copy may go.

use std::fs;

use super::archive::Archiver;
use crate::codec;
use crate::config::VerifyMode;
use crate::digest;
use crate::error::Error;
use crate::recording::Recording;
use crate::store::{ObjectInfo, PutOutcome, PutRequest, StoreError, meta};

impl Archiver {
    pub(super) async fn upload(&self, rec: &Recording) -> Result<(), Error> {
        let id = rec.id;
        let staged = self.staging_path(id);
        let (Some(key), Some(size), Some(sha_hex)) =
            (&rec.object_key, rec.object_size, &rec.object_sha256)
        else {
            return Ok(self
                .ledger
                .call(move |l| l.compress_again(id, "incomplete compress record"))
                .await?);
        };
        let staged_size = fs::metadata(&staged).map(|m| m.len()).ok();
        let sha256 = digest::from_hex(sha_hex);
        let (Some(sha256), true) = (sha256, staged_size == Some(size)) else {
            // Staging lost (crash, cleaned dir): compress again.
            return Ok(self
                .ledger
                .call(move |l| l.compress_again(id, "staging copy missing; compressing again"))
                .await?);
        };
        let metadata = self.object_metadata(rec);
        let request = PutRequest {
            key,
            source: &staged,
            size,
            sha256,
            metadata: &metadata,
            content_type: codec::content_type(codec::codec_of(rec), &rec.name),
        };
        let outcome = match self.store.put(&request).await {
            Err(StoreError::Permanent(msg)) if is_digest_rejection(&msg) => {
                // The staged bytes are not what we hashed: make them again.
                let _ = fs::remove_file(&staged);
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
            PutOutcome::Exists(_) => {
                let fresh = self.render_key(rec, codec::codec_of(rec), true);
                if &fresh == key {
                    return Err(Error::Verification(format!(
                        "a different object already exists at `{key}` and no other key is free"
                    )));
                }
                tracing::warn!(key = %key, new_key = %fresh, "a different object already has this key; never overwriting, using another key");
                return Ok(self
                    .ledger
                    .call(move |l| l.upload_again(id, Some(&fresh), "key taken in store"))
                    .await?);
            }
        };
        Ok(self.ledger.call(move |l| l.uploaded(id, &checksum)).await?)
    }

    pub(super) async fn verify(&self, rec: &Recording) -> Result<(), Error> {
        let id = rec.id;
        let key = rec.object_key.clone().unwrap_or_default();
        let Some(info) = self.store.head(&key).await? else {
            tracing::warn!(key = %key, "object missing on read-back; uploading again");
            return Ok(self
                .ledger
                .call(move |l| l.upload_again(id, None, "object missing on read-back"))
                .await?);
        };
        let mut problem = compare(rec, &info);
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
        self.ledger.call(move |l| l.verified(id)).await?;
        let _ = fs::remove_file(self.staging_path(id));
        if self.store_config.object_lock_legal_hold
            && self.ledger.call(move |l| l.is_held(id)).await?
        {
            // A hold placed before the object existed: mirror it now. The
            // ledger's hold protects it either way.
            if let Err(e) = self.store.set_legal_hold(&key, true).await {
                tracing::warn!(key = %key, "cannot set the object's legal hold (the ledger's hold still applies): {e}");
            }
        }
        Ok(())
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
        Ok(None)
    }
}

/// True if `info` describes exactly this recording's object.
fn is_our_object(rec: &Recording, info: &ObjectInfo) -> bool {
    Some(info.size) == rec.object_size
        && info.metadata.get(meta::SHA256) == rec.object_sha256.as_ref()
}

/// Compares the store's view of an object with the ledger's; `Some(problem)`
/// on any mismatch. This is the gate before a local copy may be deleted.
pub fn compare(rec: &Recording, info: &ObjectInfo) -> Option<String> {
    let want_size = rec.object_size.unwrap_or(0);
    if info.size != want_size {
        return Some(format!(
            "size {} in store, {} expected",
            info.size, want_size
        ));
    }
    let want_sha = rec.object_sha256.clone().unwrap_or_default();
    let meta_sha = info.metadata.get(meta::SHA256);
    if let Some(got) = meta_sha.filter(|s| **s != want_sha) {
        return Some(format!(
            "metadata sha256 {got} in store, {want_sha} expected"
        ));
    }
    match (&info.checksum, &rec.store_checksum) {
        (Some(got), Some(want)) if got != want => {
            Some(format!("checksum {got} in store, {want} expected"))
        }
        (None, _) if meta_sha.is_none() => {
            Some("the store reports neither a checksum nor our metadata".to_string())
        }
        _ => None,
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
    use super::*;

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
