//! Putting an object: the staged file hashed once into SHA-256 and MD5
//! (refused unless the SHA-256 is the caller's), sent whole or in chunks as a
//! conditional create, and the store's answer checked against our MD5. The
//! condition itself is probed once per start (emulators may ignore it).

use std::collections::HashMap;
use std::io::Read;

use base64::Engine;
use bytes::Bytes;
use md5::Digest as _;
use opendal::ErrorKind;
use sha2::Digest as _;
use sha2::Sha256;

use super::CloudStore;
use crate::digest::CHUNK;
use crate::store::{PutRequest, Store, StoreError, meta};

/// SHA-256 and MD5 of a file's bytes, and the bytes if `keep`.
struct Hashed {
    sha256: [u8; 32],
    md5: [u8; 16],
    size: u64,
    bytes: Option<Bytes>,
}

fn hash_body(mut file: impl Read, keep: bool) -> std::io::Result<Hashed> {
    let mut sha = Sha256::new();
    let mut md5 = md5::Md5::new();
    let mut kept = Vec::new();
    let mut buf = vec![0u8; CHUNK];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        sha.update(&buf[..n]);
        md5.update(&buf[..n]);
        if keep {
            kept.extend_from_slice(&buf[..n]);
        }
        size += n as u64;
    }
    Ok(Hashed {
        sha256: sha.finalize().into(),
        md5: md5.finalize().into(),
        size,
        bytes: keep.then(|| Bytes::from(kept)),
    })
}

pub(super) fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

impl CloudStore {
    /// True once a probe showed the store refuses to overwrite on a
    /// conditional create. A failed probe is not remembered.
    pub async fn enforces_create_only(&self) -> bool {
        let probe = self
            .enforces_create_only
            .get_or_try_init(|| self.probe_create_only())
            .await;
        probe.copied().unwrap_or(false)
    }

    async fn probe_create_only(&self) -> Result<bool, StoreError> {
        let key = format!(
            "{}.recvault-probe/if-not-exists-{}",
            self.probe_prefix,
            fastrand::u64(..)
        );
        let put = || {
            self.op
                .write_with(&key, Bytes::from_static(b"probe"))
                .if_not_exists(true)
        };
        put()
            .await
            .map_err(|e| self.classify("probe put", &key, &e))?;
        let enforced = match put().await {
            Ok(_) => false,
            Err(e)
                if e.kind() == ErrorKind::ConditionNotMatch
                    || e.kind() == ErrorKind::AlreadyExists =>
            {
                true
            }
            Err(e) => {
                let _ = self.op.delete(&key).await;
                return Err(self.classify("probe put", &key, &e));
            }
        };
        let _ = self.op.delete(&key).await;
        if !enforced {
            tracing::warn!(store = %self.describe(), "the store ignores conditional creates; relying on a check before each put");
        }
        Ok(enforced)
    }

    fn put_metadata(&self, req: &PutRequest<'_>, md5: &[u8; 16]) -> HashMap<String, String> {
        let mut out: HashMap<String, String> = req
            .metadata
            .iter()
            .map(|(k, v)| (self.wire_name(k), v.clone()))
            .collect();
        out.insert(self.wire_name(meta::MD5), b64(md5));
        out
    }

    fn wire_name(&self, name: &str) -> String {
        if self.flavour.underscore_names {
            name.replace('-', "_")
        } else {
            name.to_string()
        }
    }

    async fn pace(&self, bytes: u64) {
        if let Some(limiter) = &self.limiter {
            tokio::time::sleep(limiter.reserve(bytes)).await;
        }
    }

    /// Reads and hashes the staged file; refuses it unless it hashes to the
    /// SHA-256 the caller computed (as S3 refuses a bad `x-amz-checksum-sha256`).
    async fn hashed(&self, req: &PutRequest<'_>, keep: bool) -> Result<Hashed, StoreError> {
        let hashed = req
            .source
            .read_with(move |body| hash_body(body, keep))
            .await?;
        if hashed.sha256 != req.sha256 || hashed.size != req.size {
            return Err(StoreError::Permanent(format!(
                "checksum mismatch for `{}`: sent {} ({} bytes), staged bytes hash to {} ({} bytes)",
                req.key,
                hex::encode(req.sha256),
                req.size,
                hex::encode(hashed.sha256),
                hashed.size
            )));
        }
        Ok(hashed)
    }

    /// One request: the store computes the MD5 of the whole object.
    pub(super) async fn put_whole(
        &self,
        req: &PutRequest<'_>,
    ) -> Result<opendal::Metadata, (StoreError, bool)> {
        let hashed = self.hashed(req, true).await.map_err(|e| (e, false))?;
        let body = hashed.bytes.clone().unwrap_or_default();
        self.pace(req.size).await;
        let result = self
            .op
            .write_with(req.key, body)
            .if_not_exists(true)
            .content_type(req.content_type)
            .user_metadata(self.put_metadata(req, &hashed.md5))
            .await;
        let written = result.map_err(|e| {
            let exists = matches!(
                e.kind(),
                ErrorKind::ConditionNotMatch | ErrorKind::AlreadyExists
            );
            (self.classify("put", req.key, &e), exists)
        })?;
        if let Some(theirs) = written.content_md5().filter(|m| !m.is_empty())
            && theirs != b64(&hashed.md5)
        {
            // The store holds other bytes than we sent: take our object back.
            let _ = self.op.delete(req.key).await;
            return Err((
                StoreError::Permanent(format!(
                    "checksum mismatch for `{}`: the store received bytes with MD5 {theirs}, we sent {}",
                    req.key,
                    b64(&hashed.md5)
                )),
                false,
            ));
        }
        Ok(written)
    }

    /// In `part_size` chunks (Azure blocks, a GCS resumable upload), after a
    /// first pass that hashed the file: memory stays at one chunk.
    pub(super) async fn put_chunked(
        &self,
        req: &PutRequest<'_>,
    ) -> Result<opendal::Metadata, (StoreError, bool)> {
        let hashed = self.hashed(req, false).await.map_err(|e| (e, false))?;
        let classify = |e: opendal::Error| {
            let exists = matches!(
                e.kind(),
                ErrorKind::ConditionNotMatch | ErrorKind::AlreadyExists
            );
            (self.classify("put", req.key, &e), exists)
        };
        let mut writer = self
            .op
            .writer_with(req.key)
            .chunk(self.part_size as usize)
            .if_not_exists(true)
            .content_type(req.content_type)
            .user_metadata(self.put_metadata(req, &hashed.md5))
            .await
            .map_err(classify)?;
        let local = |e: std::io::Error| {
            (
                StoreError::Local(format!("cannot read {}: {e}", req.source)),
                false,
            )
        };
        let mut file = req.source.async_reader().await.map_err(local)?;
        let mut left = req.size;
        let result = async {
            while left > 0 {
                let mut chunk = vec![0u8; (left.min(CHUNK as u64 * 16)) as usize];
                tokio::io::AsyncReadExt::read_exact(&mut file, &mut chunk)
                    .await
                    .map_err(local)?;
                left -= chunk.len() as u64;
                self.pace(chunk.len() as u64).await;
                writer.write(chunk).await.map_err(classify)?;
            }
            writer.close().await.map_err(classify)
        }
        .await;
        if result.is_err() {
            let _ = writer.abort().await;
        }
        result
    }
}
