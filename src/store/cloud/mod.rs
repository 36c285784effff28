//! The object stores reached through Apache OpenDAL (Azure Blob, Google
//! Cloud Storage): one implementation of the trait over an `Operator`; the
//! backends (`azure`, `gcs`) only build the operator and word its errors.
//!
//! Neither store checks a SHA-256, but both compute the MD5 of the bytes they
//! received (Azure's Content-MD5 of a single Put Blob, GCS's md5Hash). We
//! hash the staged file once into SHA-256 and MD5 together, refuse to send it
//! if the SHA-256 is not the caller's, and keep that MD5 in the object's
//! metadata (`meta::MD5`) beside our SHA-256. `head` then reports our SHA-256
//! as the object's checksum only when the store's own MD5 equals ours: the
//! store proves the bytes it holds are the bytes we hashed. An object the
//! store computed no MD5 for (an Azure blob put in blocks) reports no
//! checksum, and the verify step reads it back (as for any object whose
//! store reports no checksum: `pipeline::upload`'s `Proof::MetadataOnly`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use futures_util::TryStreamExt;
use opendal::{ErrorKind, Operator};
use tokio::io::AsyncWriteExt;

mod put;

use super::throttle::RateLimiter;
use super::{
    ListedObject, ObjectInfo, ObjectReader, PutOutcome, PutRequest, Store, StoreError, Versioning,
    meta, single_part_checksum,
};
use crate::digest::CHUNK;

/// What differs between the stores behind OpenDAL.
pub(super) struct Flavour {
    /// For logs: `azure://account/container at endpoint`.
    pub describe: String,
    /// Secrets that must never reach a message (keys, SAS tokens).
    pub secrets: Vec<String>,
    /// Azure allows only C#-identifier metadata names: `-` travels as `_`.
    pub underscore_names: bool,
    /// Words a refusal for the operator (which key to fix), if it knows better.
    pub explain: fn(&str) -> Option<String>,
}

impl Flavour {
    pub(super) fn new(
        describe: String,
        secrets: Vec<String>,
        explain: fn(&str) -> Option<String>,
    ) -> Flavour {
        Flavour {
            describe,
            secrets,
            underscore_names: false,
            explain,
        }
    }

    /// Metadata names travel with `_` for `-` (Azure).
    pub(super) fn underscore_names(self) -> Flavour {
        Flavour {
            underscore_names: true,
            ..self
        }
    }
}

/// A container or bucket reached through OpenDAL.
pub struct CloudStore {
    op: Operator,
    flavour: Flavour,
    /// Objects up to this size go up in one request (the store hashes them whole).
    single_put_max: u64,
    part_size: u64,
    limiter: Option<Arc<RateLimiter>>,
    /// Whether the store was seen to refuse a second create of one key
    /// (probed once): emulators may ignore the condition, and then a check
    /// before each put stands in for it, as for Garage on S3.
    enforces_create_only: tokio::sync::OnceCell<bool>,
    /// Where that probe may write (inside the configured prefix).
    probe_prefix: String,
}

/// The checksum `head` reports: our SHA-256 where the store's own MD5 equals
/// the MD5 we hashed with it; the store's MD5 itself (matching nothing of
/// ours) where they differ; nothing where the store computed none.
fn proven_checksum(store_md5: Option<&str>, metadata: &BTreeMap<String, String>) -> Option<String> {
    let store_md5 = store_md5.filter(|m| !m.is_empty())?;
    let sha = metadata
        .get(meta::SHA256)
        .and_then(|h| crate::digest::from_hex(h));
    match (metadata.get(meta::MD5), sha) {
        (Some(ours), Some(sha)) if ours == store_md5 => Some(single_part_checksum(&sha)),
        _ => Some(format!("md5:{store_md5}")),
    }
}

impl CloudStore {
    /// The store behind `builder` (`service` names it in errors), speaking
    /// HTTP with these timeouts: what Azure and GCS share once their
    /// builders are configured.
    pub(super) fn build<B: opendal::Builder>(
        service: &str,
        builder: B,
        flavour: Flavour,
        (connect_timeout, read_timeout): (std::time::Duration, std::time::Duration),
        (multipart_threshold, part_size, max_upload_rate): (u64, u64, Option<u64>),
    ) -> Result<CloudStore, StoreError> {
        let op = Operator::new(builder).map_err(|e| {
            StoreError::Permanent(scrub(&format!("{service}: {e}"), &flavour.secrets))
        })?;
        let op = with_http(op, connect_timeout, read_timeout)?;
        Ok(CloudStore {
            op,
            flavour,
            single_put_max: multipart_threshold.saturating_sub(1).min(part_size),
            part_size,
            limiter: max_upload_rate.map(|r| Arc::new(RateLimiter::new(r))),
            enforces_create_only: tokio::sync::OnceCell::new(),
            probe_prefix: String::new(),
        })
    }

    /// Probe objects go under `prefix` (the configured key prefix), where
    /// the credentials are sure to allow writes.
    pub fn with_probe_prefix(mut self, prefix: &str) -> CloudStore {
        self.probe_prefix = prefix.to_string();
        self
    }

    /// The operator, for callers that need more than the trait (tests, versions).
    pub fn operator(&self) -> &Operator {
        &self.op
    }

    /// Maps an OpenDAL error to what the daemon can do about it, with no
    /// secret (nor any URL query, where a SAS token travels) in the message.
    fn classify(&self, op: &str, key: &str, e: &opendal::Error) -> StoreError {
        let mut text = scrub(&format!("{op} `{key}`: {e}"), &self.flavour.secrets);
        if let Some(hint) = (self.flavour.explain)(&text) {
            text = format!("{hint} ({text})");
        }
        if e.is_temporary() || e.kind() == ErrorKind::RateLimited {
            StoreError::Transient(text)
        } else {
            StoreError::Permanent(text)
        }
    }

    fn our_name(&self, name: &str) -> String {
        let name = name.to_ascii_lowercase();
        if self.flavour.underscore_names {
            name.replace('_', "-")
        } else {
            name
        }
    }
}

/// `op` speaking HTTP through a client with these timeouts: a stalled
/// connection must not hang a worker.
fn with_http(
    op: Operator,
    connect_timeout: std::time::Duration,
    read_timeout: std::time::Duration,
) -> Result<Operator, StoreError> {
    let client = reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .read_timeout(read_timeout)
        .build()
        .map_err(|e| StoreError::Permanent(format!("cannot build an HTTP client: {e}")))?;
    let transport = opendal::HttpTransporter::new(
        opendal_http_transport_reqwest::ReqwestTransport::new(client),
    );
    let ctx = op.context().with_http_transport(transport);
    Ok(op.with_context(ctx))
}

/// `text` without any of `secrets` and without URL query strings.
pub(super) fn scrub(text: &str, secrets: &[String]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_query = false;
    for (i, c) in text.char_indices() {
        if in_query {
            if c.is_whitespace() || matches!(c, '"' | '\'' | ')' | ',' | '>' | '}') {
                in_query = false;
                out.push(c);
            }
            continue;
        }
        if c == '?'
            && text[..i]
                .rfind("://")
                .is_some_and(|s| !text[s..i].contains(char::is_whitespace))
        {
            out.push_str("?<query hidden>");
            in_query = true;
            continue;
        }
        out.push(c);
    }
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(secret.as_str(), "<redacted>");
    }
    out
}

#[async_trait]
impl Store for CloudStore {
    fn describe(&self) -> String {
        self.flavour.describe.clone()
    }

    async fn put(&self, req: &PutRequest<'_>) -> Result<PutOutcome, StoreError> {
        // A store that ignores the condition must still never be overwritten.
        if !self.enforces_create_only().await
            && let Some(info) = self.head(req.key).await?
        {
            return Ok(PutOutcome::Exists(info));
        }
        let result = if req.size <= self.single_put_max {
            self.put_whole(req).await
        } else {
            self.put_chunked(req).await
        };
        match result {
            Ok(_) => Ok(PutOutcome::Created {
                checksum: single_part_checksum(&req.sha256),
            }),
            Err((_, true)) => match self.head(req.key).await? {
                Some(info) => Ok(PutOutcome::Exists(info)),
                None => Err(StoreError::Transient(format!(
                    "put `{}`: the store said it exists, but it is not there",
                    req.key
                ))),
            },
            Err((e, false)) => Err(e),
        }
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        let m = match self.op.stat(key).await {
            Ok(m) => m,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.classify("head", key, &e)),
        };
        let metadata: BTreeMap<String, String> = m
            .user_metadata()
            .map(|u| {
                u.into_iter()
                    .map(|(k, v)| (self.our_name(k), v.to_string()))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Some(ObjectInfo {
            size: m.content_length(),
            checksum: proven_checksum(m.content_md5(), &metadata),
            metadata,
        }))
    }

    async fn get(&self, key: &str, dest: &Path) -> Result<u64, StoreError> {
        let fail = |e: opendal::Error| {
            if e.kind() == ErrorKind::NotFound {
                StoreError::Permanent(format!("no object `{key}`"))
            } else {
                self.classify("get", key, &e)
            }
        };
        let reader = self
            .op
            .reader_with(key)
            .chunk(CHUNK * 16)
            .await
            .map_err(fail)?;
        let mut stream = reader.into_bytes_stream(..).await.map_err(fail)?;
        let local =
            |e: std::io::Error| StoreError::Local(format!("cannot write {}: {e}", dest.display()));
        let mut file = tokio::fs::File::create(dest).await.map_err(local)?;
        let mut n = 0u64;
        while let Some(chunk) = stream.try_next().await.map_err(|e| {
            StoreError::Transient(scrub(&format!("get `{key}`: {e}"), &self.flavour.secrets))
        })? {
            file.write_all(&chunk).await.map_err(local)?;
            n += chunk.len() as u64;
        }
        file.sync_all().await.map_err(local)?;
        Ok(n)
    }

    async fn open(&self, key: &str) -> Result<Option<ObjectReader>, StoreError> {
        let reader = match self.op.reader_with(key).chunk(CHUNK * 16).await {
            Ok(r) => r,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.classify("get", key, &e)),
        };
        let stream = match reader.into_bytes_stream(..).await {
            Ok(s) => s,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.classify("get", key, &e)),
        };
        // A failure half-way arrives as a read error, never as an early end.
        let secrets = self.flavour.secrets.clone();
        let key = key.to_string();
        let stream = stream
            .map_err(move |e| std::io::Error::other(scrub(&format!("get `{key}`: {e}"), &secrets)));
        Ok(Some(Box::new(tokio_util::io::StreamReader::new(stream))))
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self.op.delete(key).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.classify("delete", key, &e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ListedObject>, StoreError> {
        // List the deepest "directory" of the prefix, then keep what matches.
        let dir = match prefix.rfind('/') {
            Some(i) => &prefix[..=i],
            None => "/",
        };
        let entries = self
            .op
            .list_with(dir)
            .recursive(true)
            .await
            .or_else(|e| {
                if e.kind() == ErrorKind::NotFound {
                    Ok(Vec::new())
                } else {
                    Err(e)
                }
            })
            .map_err(|e| self.classify("list", prefix, &e))?;
        let mut out: Vec<ListedObject> = entries
            .into_iter()
            .filter(|e| e.metadata().is_file() && e.path().starts_with(prefix))
            .map(|e| ListedObject {
                key: e.path().to_string(),
                size: e.metadata().content_length(),
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    // Azure and GCS can keep versions, but OpenDAL (0.59) neither lists
    // nor deletes them: say so rather than claim "off".
    async fn versioning(&self) -> Result<Versioning, StoreError> {
        Ok(Versioning::NotVisible)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_and_secrets_never_reach_a_message() {
        let text = "put `k`: Unexpected at write, context: { uri: http://127.0.0.1:1/acct/c/k?sv=2021&sig=SECRETSIG%3D&se=x, service: azblob } => key SECRETKEY==";
        let out = scrub(text, &["SECRETKEY==".to_string()]);
        assert!(
            !out.contains("SECRETSIG") && !out.contains("sv=2021"),
            "{out}"
        );
        assert!(!out.contains("SECRETKEY"), "{out}");
        assert!(
            out.contains("http://127.0.0.1:1/acct/c/k?<query hidden>, service: azblob"),
            "{out}"
        );
        // A question in prose is not a URL.
        assert_eq!(scrub("why? because", &[]), "why? because");
    }

    #[test]
    fn the_store_md5_proves_our_sha256_only_when_it_is_ours() {
        let sha = [7u8; 32];
        let mut m: BTreeMap<String, String> = [(meta::SHA256.to_string(), hex::encode(sha))].into();
        m.insert(meta::MD5.to_string(), "bWQ1".to_string());
        assert_eq!(
            proven_checksum(Some("bWQ1"), &m),
            Some(single_part_checksum(&sha))
        );
        assert_eq!(
            proven_checksum(Some("b3RoZXI="), &m),
            Some("md5:b3RoZXI=".to_string())
        );
        assert_eq!(proven_checksum(None, &m), None);
        m.remove(meta::MD5);
        assert_eq!(
            proven_checksum(Some("bWQ1"), &m),
            Some("md5:bWQ1".to_string())
        );
    }
}
