//! An S3-compatible store (Cloudflare R2, AWS S3, MinIO, Garage, B2) on aws-sdk-s3.
//!
//! The SDK's default CRC checksums and aws-chunked trailers are turned off
//! (several stores reject them); we compute SHA-256 ourselves and send it as a
//! plain `x-amz-checksum-sha256` header, per part for multipart uploads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{ByteStream, Length, SdkBody};
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, CompletedMultipartUpload, CompletedPart, ObjectLockLegalHold,
    ObjectLockLegalHoldStatus,
};

use super::{
    Body, DELETE_BATCH, ListedObject, ObjectInfo, ObjectReader, Purged, PutOutcome, PutRequest,
    Store, StoreError, Versioning, single_part_checksum,
};
use crate::config::S3Config;
use crate::digest::CHUNK;
use crate::store::parts::{composite_checksum, part_digests};
use crate::store::throttle::{PacedFile, RateLimiter};

mod delete;
mod read;
mod versions;

/// A bucket (and endpoint) reached through the S3 API.
pub struct S3Store {
    client: Client,
    bucket: String,
    endpoint: String,
    multipart_threshold: u64,
    part_size: u64,
    /// Shared upload pacing (`max_upload_rate`), if any.
    limiter: Option<Arc<RateLimiter>>,
    /// Cleared when the store answers that it does not implement `If-None-Match`;
    /// the head-before-put check then stands alone.
    conditional_writes: AtomicBool,
    /// Whether the store was seen to refuse an `If-None-Match: *` overwrite
    /// (probed once); only then may the check before each put be skipped.
    enforces_if_none_match: tokio::sync::OnceCell<bool>,
    /// Held while that probe runs, so one caller probes and the others wait
    /// for its answer, not for the probe object's removal.
    probing: tokio::sync::Mutex<()>,
    /// Where that probe may write (inside the configured prefix).
    probe_prefix: String,
}

/// Maps an SDK error to what the daemon can do about it.
fn classify<E>(
    op: &str,
    key: &str,
    err: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let message = format!("{op} `{key}`: {}", DisplayErrorContext(&err));
    match &err {
        SdkError::ConstructionFailure(_) => StoreError::Permanent(message),
        SdkError::ServiceError(_) => match status {
            Some(408 | 429 | 500..=599) => StoreError::Transient(message),
            _ if err.code() == Some("SlowDown")
                || err.code() == Some("ConditionalRequestConflict") =>
            {
                StoreError::Transient(message)
            }
            _ => StoreError::Permanent(message),
        },
        // Timeouts, connection failures, broken responses.
        _ => StoreError::Transient(message),
    }
}

fn status_of<E>(err: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
}

impl S3Store {
    /// Builds a client from the config: explicit key file or the standard AWS chain.
    pub async fn new(
        config: &S3Config,
        multipart_threshold: u64,
        part_size: u64,
        max_upload_rate: Option<u64>,
    ) -> Result<S3Store, StoreError> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(config.region.clone()));
        if let Some(endpoint) = &config.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        if let Some(c) = &config.credentials {
            loader = loader.credentials_provider(Credentials::new(
                c.access_key_id.clone(),
                c.secret_access_key.clone(),
                None,
                None,
                "recvault-key-file",
            ));
        }
        let shared = loader.load().await;
        let s3_config = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(config.path_style)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(config.connect_timeout)
                    .read_timeout(config.read_timeout)
                    .build(),
            )
            .build();
        Ok(S3Store {
            client: Client::from_conf(s3_config),
            bucket: config.bucket.clone(),
            endpoint: config.endpoint.clone().unwrap_or_else(|| "AWS".to_string()),
            multipart_threshold,
            part_size,
            limiter: max_upload_rate.map(|r| Arc::new(RateLimiter::new(r))),
            conditional_writes: AtomicBool::new(true),
            enforces_if_none_match: tokio::sync::OnceCell::new(),
            probing: tokio::sync::Mutex::new(()),
            probe_prefix: String::new(),
        })
    }

    /// `len` bytes of `body` from `offset` as a request body, paced if a rate limit is set.
    async fn body(&self, body: Body<'_>, offset: u64, len: u64) -> Result<ByteStream, StoreError> {
        let path = match body {
            Body::File(path) => path,
            Body::Bytes(bytes) => return self.memory_body(bytes, offset, len).await,
        };
        let local = |e: &dyn std::fmt::Display| {
            StoreError::Local(format!("cannot read {}: {e}", path.display()))
        };
        let Some(limiter) = &self.limiter else {
            return ByteStream::read_from()
                .path(path)
                .offset(offset)
                .length(Length::Exact(len))
                .buffer_size(CHUNK)
                .build()
                .await
                .map_err(|e| local(&e));
        };
        PacedFile::open(path, offset, len, limiter.clone()).map_err(|e| local(&e))?;
        let (path, limiter) = (path.to_path_buf(), limiter.clone());
        // Retryable: the SDK reopens the file if it has to send the body again.
        Ok(ByteStream::new(SdkBody::retryable(
            move || match PacedFile::open(&path, offset, len, limiter.clone()) {
                Ok(body) => SdkBody::from_body_1_x(body),
                Err(_) => SdkBody::taken(),
            },
        )))
    }

    /// `len` bytes of an object held in memory from `offset`, paced like a
    /// file's (all at once: such objects are small).
    async fn memory_body(
        &self,
        bytes: &[u8],
        offset: u64,
        len: u64,
    ) -> Result<ByteStream, StoreError> {
        let part = usize::try_from(offset)
            .ok()
            .zip(usize::try_from(offset + len).ok())
            .and_then(|(from, to)| bytes.get(from..to))
            .ok_or_else(|| {
                StoreError::Local(format!(
                    "the object in memory has {} bytes, not {}",
                    bytes.len(),
                    offset + len
                ))
            })?;
        if let Some(limiter) = &self.limiter {
            tokio::time::sleep(limiter.reserve(len)).await;
        }
        Ok(ByteStream::from(part.to_vec()))
    }

    /// Probe objects go under `prefix` (the configured key prefix), where
    /// the credentials are sure to allow writes.
    pub fn with_probe_prefix(mut self, prefix: &str) -> S3Store {
        self.probe_prefix = prefix.to_string();
        self
    }

    /// True once a probe showed the store refuses to overwrite under
    /// `If-None-Match: *`. A failed probe is not remembered.
    ///
    /// The caller that probes removes the probe object after the others
    /// have their answer: with the store 100 ms away, the removal's two
    /// round trips would otherwise hold up every first upload of a run.
    async fn enforces_if_none_match(&self) -> bool {
        if let Some(known) = self.enforces_if_none_match.get() {
            return *known;
        }
        let probing = self.probing.lock().await;
        if let Some(known) = self.enforces_if_none_match.get() {
            return *known;
        }
        let (answer, key) = self.probe_if_none_match().await;
        if let Ok(enforced) = answer {
            let _ = self.enforces_if_none_match.set(enforced);
        }
        drop(probing);
        if let Some(key) = key {
            let _ = self.purge(std::slice::from_ref(&key)).await;
        }
        answer.unwrap_or(false)
    }

    /// Puts a probe object twice, the second time under `If-None-Match: *`:
    /// whether the store refused it, and the probe key to remove (if the
    /// first put may have stored it).
    async fn probe_if_none_match(&self) -> (Result<bool, StoreError>, Option<String>) {
        let key = format!(
            "{}.recvault-probe/if-none-match-{}",
            self.probe_prefix,
            fastrand::u64(..)
        );
        let put = || {
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(&key)
                .body(ByteStream::from_static(b"probe"))
                .if_none_match("*")
                .send()
        };
        if let Err(e) = put().await {
            return (Err(classify("probe put", &key, e)), None);
        }
        let enforced = match put().await {
            Ok(_) => Ok(false),
            Err(e) if status_of(&e) == Some(412) => Ok(true),
            Err(e) if status_of(&e) == Some(501) => Ok(false),
            Err(e) => Err(classify("probe put", &key, e)),
        };
        tracing::debug!(store = %self.describe(), enforced = ?enforced.as_ref().ok(), "If-None-Match probe");
        (enforced, Some(key))
    }

    async fn put_single(&self, req: &PutRequest<'_>) -> Result<PutOutcome, StoreError> {
        let checksum = single_part_checksum(&req.sha256);
        loop {
            let body = self.body(req.source, 0, req.size).await?;
            let conditional = self.conditional_writes.load(Ordering::Relaxed);
            let mut put = self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(req.key)
                .body(body)
                .content_length(req.size as i64)
                .checksum_sha256(&checksum)
                .content_type(req.content_type);
            for (k, v) in req.metadata {
                put = put.metadata(k, v);
            }
            if conditional {
                put = put.if_none_match("*");
            }
            match put.send().await {
                Ok(_) => return Ok(PutOutcome::Created { checksum }),
                Err(e) if status_of(&e) == Some(412) => return self.exists(req.key).await,
                Err(e) if conditional && status_of(&e) == Some(501) => {
                    tracing::warn!(store = %self.describe(), "store does not implement If-None-Match; relying on a check before each put");
                    self.conditional_writes.store(false, Ordering::Relaxed);
                }
                Err(e) => return Err(classify("put", req.key, e)),
            }
        }
    }

    async fn exists(&self, key: &str) -> Result<PutOutcome, StoreError> {
        match self.head(key).await? {
            Some(info) => Ok(PutOutcome::Exists(info)),
            None => Err(StoreError::Transient(format!(
                "put `{key}`: precondition failed but no object is there"
            ))),
        }
    }

    async fn put_multipart(&self, req: &PutRequest<'_>) -> Result<PutOutcome, StoreError> {
        let part_size = self.part_size;
        let size = req.size;
        let part_digests = req
            .source
            .read_with(move |body| part_digests(body, size, part_size))
            .await?;
        let part_digests = part_digests.matching(req)?;
        let mut create = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(req.key)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .content_type(req.content_type);
        for (k, v) in req.metadata {
            create = create.metadata(k, v);
        }
        let upload = create
            .send()
            .await
            .map_err(|e| classify("create multipart", req.key, e))?;
        let upload_id = upload
            .upload_id()
            .ok_or_else(|| {
                StoreError::Permanent(format!("create multipart `{}`: no upload id", req.key))
            })?
            .to_string();
        let result = self.upload_parts(req, &upload_id, &part_digests).await;
        if result.is_err() {
            // Leave no half-uploads behind to be billed for.
            let _ = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(req.key)
                .upload_id(&upload_id)
                .send()
                .await;
        }
        result
    }

    async fn upload_parts(
        &self,
        req: &PutRequest<'_>,
        upload_id: &str,
        digests: &[[u8; 32]],
    ) -> Result<PutOutcome, StoreError> {
        let mut parts = Vec::with_capacity(digests.len());
        for (i, digest) in digests.iter().enumerate() {
            let offset = i as u64 * self.part_size;
            let len = self.part_size.min(req.size - offset);
            let body = self.body(req.source, offset, len).await?;
            let checksum = single_part_checksum(digest);
            let part_number = i as i32 + 1;
            let out = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(req.key)
                .upload_id(upload_id)
                .part_number(part_number)
                .content_length(len as i64)
                .checksum_sha256(&checksum)
                .body(body)
                .send()
                .await
                .map_err(|e| classify("upload part", req.key, e))?;
            parts.push(
                CompletedPart::builder()
                    .part_number(part_number)
                    .set_e_tag(out.e_tag().map(str::to_string))
                    .checksum_sha256(checksum)
                    .build(),
            );
        }
        let mut complete = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(req.key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            );
        if self.conditional_writes.load(Ordering::Relaxed) {
            complete = complete.if_none_match("*");
        }
        match complete.send().await {
            Ok(_) => Ok(PutOutcome::Created {
                checksum: composite_checksum(digests),
            }),
            Err(e) if status_of(&e) == Some(412) => self.exists(req.key).await,
            Err(e) => Err(classify("complete multipart", req.key, e)),
        }
    }
}

#[async_trait]
impl Store for S3Store {
    fn describe(&self) -> String {
        format!("s3://{} at {}", self.bucket, self.endpoint)
    }

    async fn put(&self, req: &PutRequest<'_>) -> Result<PutOutcome, StoreError> {
        // Stores that ignore If-None-Match must still never be overwritten.
        if !self.enforces_if_none_match().await
            && let Some(info) = self.head(req.key).await?
        {
            return Ok(PutOutcome::Exists(info));
        }
        if req.size >= self.multipart_threshold && req.size > self.part_size {
            self.put_multipart(req).await
        } else {
            self.put_single(req).await
        }
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        let res = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await;
        match res {
            Ok(out) => Ok(Some(ObjectInfo {
                size: out.content_length().unwrap_or(0).max(0) as u64,
                checksum: out.checksum_sha256().map(str::to_string),
                metadata: out
                    .metadata()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                            .collect::<BTreeMap<_, _>>()
                    })
                    .unwrap_or_default(),
            })),
            Err(e) if status_of(&e) == Some(404) => Ok(None),
            Err(e) => Err(classify("head", key, e)),
        }
    }

    async fn get(&self, key: &str, dest: &Path) -> Result<u64, StoreError> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| classify("get", key, e))?;
        let dest: PathBuf = dest.to_path_buf();
        let mut file = tokio::fs::File::create(&dest)
            .await
            .map_err(|e| StoreError::Local(format!("cannot create {}: {e}", dest.display())))?;
        let mut body = out.body.into_async_read();
        let n = tokio::io::copy(&mut body, &mut file)
            .await
            .map_err(|e| StoreError::Transient(format!("get `{key}`: {e}")))?;
        file.sync_all()
            .await
            .map_err(|e| StoreError::Local(format!("cannot sync {}: {e}", dest.display())))?;
        Ok(n)
    }

    async fn open(&self, key: &str) -> Result<Option<ObjectReader>, StoreError> {
        self.open_object(key).await
    }

    async fn presign_get(
        &self,
        key: &str,
        ttl: std::time::Duration,
        content_type: &str,
    ) -> Result<Option<String>, StoreError> {
        self.presign(key, ttl, content_type).await.map(Some)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| classify("delete", key, e))?;
        Ok(())
    }

    async fn delete_many(
        &self,
        keys: &[String],
    ) -> Result<Vec<(String, Result<(), StoreError>)>, StoreError> {
        let mut out = Vec::with_capacity(keys.len());
        let mut broken: Option<StoreError> = None;
        for chunk in keys.chunks(DELETE_BATCH) {
            if let Some(e) = &broken {
                // The store stopped answering: nothing more was attempted.
                out.extend(chunk.iter().map(|k| (k.clone(), Err(e.clone()))));
                continue;
            }
            match self.delete_chunk(chunk).await {
                Ok(results) => out.extend(results),
                Err(e) if out.is_empty() => return Err(e),
                Err(e) => {
                    out.extend(chunk.iter().map(|k| (k.clone(), Err(e.clone()))));
                    broken = Some(e);
                }
            }
        }
        Ok(out)
    }

    async fn set_legal_hold(&self, key: &str, on: bool) -> Result<(), StoreError> {
        let status = if on {
            ObjectLockLegalHoldStatus::On
        } else {
            ObjectLockLegalHoldStatus::Off
        };
        self.client
            .put_object_legal_hold()
            .bucket(&self.bucket)
            .key(key)
            .legal_hold(ObjectLockLegalHold::builder().status(status).build())
            .send()
            .await
            .map_err(|e| classify("put legal hold", key, e))?;
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ListedObject>, StoreError> {
        let mut out = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify("list", prefix, e))?;
            for obj in page.contents() {
                if let Some(key) = obj.key() {
                    out.push(ListedObject {
                        key: key.to_string(),
                        size: obj.size().unwrap_or(0).max(0) as u64,
                    });
                }
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn versioning(&self) -> Result<Versioning, StoreError> {
        self.bucket_versioning().await
    }

    async fn delete_all_versions(
        &self,
        keys: &[String],
    ) -> Result<Vec<(String, Result<Purged, StoreError>)>, StoreError> {
        self.purge(keys).await
    }
}
