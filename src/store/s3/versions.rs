//! Deleting for good on a versioned bucket. A plain delete there only adds a
//! delete marker and the audio stays; so every version and delete marker of
//! a key is listed (ListObjectVersions) and deleted by its id (DeleteObjects
//! with version ids, up to [`DELETE_BATCH`] per request). A version Object
//! Lock keeps is named with its retain-until date or legal hold (HeadObject
//! of that version). Unversioned buckets get plain deletes.

use std::collections::{BTreeMap, HashSet};

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::types::{BucketVersioningStatus, ObjectIdentifier, ObjectLockLegalHoldStatus};

use super::{S3Store, classify, status_of};
use crate::store::{DELETE_BATCH, LockedVersion, Purged, Store, StoreError, Versioning};
use crate::units::now_secs;

/// One version (or delete marker) of a key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Version {
    key: String,
    id: String,
    marker: bool,
}

/// Per key: its versions, or why they could not be listed.
type Listing = Vec<(String, Result<Vec<Version>, StoreError>)>;

impl S3Store {
    /// What GetBucketVersioning says; a store that does not implement it
    /// has no versions.
    pub(super) async fn bucket_versioning(&self) -> Result<Versioning, StoreError> {
        let asked = self
            .client
            .get_bucket_versioning()
            .bucket(&self.bucket)
            .send()
            .await;
        match asked {
            Ok(out) => Ok(match out.status() {
                Some(BucketVersioningStatus::Enabled) => Versioning::Enabled,
                Some(BucketVersioningStatus::Suspended) => Versioning::Suspended,
                _ => Versioning::Unversioned,
            }),
            Err(e) if status_of(&e) == Some(501) || e.code() == Some("NotImplemented") => {
                Ok(Versioning::Unversioned)
            }
            Err(e) => Err(classify("get bucket versioning", &self.bucket, e)),
        }
    }

    /// [`Store::delete_all_versions`] for S3.
    pub(super) async fn purge(
        &self,
        keys: &[String],
    ) -> Result<Vec<(String, Result<Purged, StoreError>)>, StoreError> {
        let versioning = match self.bucket_versioning().await {
            Ok(v) => v,
            Err(e) if e.is_transient() => return Err(e),
            // Credentials that may not ask (no s3:GetBucketVersioning): delete
            // as before, and say what it costs on a versioned bucket.
            Err(e) => {
                tracing::warn!(store = %self.describe(), "cannot tell whether the bucket keeps versions ({e}); deleting plainly, which on a versioned bucket leaves the old versions (allow s3:GetBucketVersioning)");
                Versioning::Unversioned
            }
        };
        if versioning == Versioning::Unversioned {
            let deleted = self.delete_many(keys).await?;
            return Ok(deleted
                .into_iter()
                .map(|(k, r)| (k, r.map(|()| Purged::default())))
                .collect());
        }
        let listing = self.list_versions(keys).await?;
        let all: Vec<Version> = listing
            .iter()
            .filter_map(|(_, r)| r.as_ref().ok())
            .flatten()
            .cloned()
            .collect();
        let (deleted, refused) = self.delete_versions(&all).await;
        let mut out = Vec::with_capacity(keys.len());
        for (key, versions) in listing {
            let result = match versions {
                Ok(versions) => self.outcome(&versions, &deleted, &refused).await,
                Err(e) => Err(e),
            };
            out.push((key, result));
        }
        Ok(out)
    }

    /// Every version and delete marker of each key. The outer error: the
    /// store did not answer the first listing (nothing is known).
    async fn list_versions(&self, keys: &[String]) -> Result<Listing, StoreError> {
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let listed = self.versions_of(key).await;
            if let Err(e) = &listed
                && out.is_empty()
                && e.is_transient()
            {
                return Err(e.clone());
            }
            out.push((key.clone(), listed));
        }
        Ok(out)
    }

    async fn versions_of(&self, key: &str) -> Result<Vec<Version>, StoreError> {
        let mut out = Vec::new();
        let (mut key_marker, mut version_marker) = (None::<String>, None::<String>);
        loop {
            let page = self
                .client
                .list_object_versions()
                .bucket(&self.bucket)
                .prefix(key)
                .set_key_marker(key_marker.take())
                .set_version_id_marker(version_marker.take())
                .send()
                .await
                .map_err(|e| classify("list object versions", key, e))?;
            // The prefix also lists longer keys; only this one is ours.
            let ours = |k: Option<&str>| k == Some(key);
            for v in page.versions().iter().filter(|v| ours(v.key())) {
                out.push(version(key, v.version_id(), false));
            }
            for m in page.delete_markers().iter().filter(|m| ours(m.key())) {
                out.push(version(key, m.version_id(), true));
            }
            if page.is_truncated() != Some(true) || page.next_key_marker().is_none() {
                return Ok(out);
            }
            key_marker = page.next_key_marker().map(str::to_string);
            version_marker = page.next_version_id_marker().map(str::to_string);
        }
    }

    /// Deletes `versions` by id. Returns those deleted, and the store's
    /// answer for each version it did not delete (by key and version id,
    /// or by key alone where the store named no version).
    async fn delete_versions(
        &self,
        versions: &[Version],
    ) -> (
        HashSet<(String, String)>,
        BTreeMap<(String, String), String>,
    ) {
        let mut deleted = HashSet::new();
        let mut refused = BTreeMap::new();
        for chunk in versions.chunks(DELETE_BATCH) {
            match self.delete_chunk_versions(chunk).await {
                Ok((done, errors)) => {
                    deleted.extend(done);
                    refused.extend(errors);
                }
                Err(e) => {
                    for v in chunk {
                        refused.insert((v.key.clone(), v.id.clone()), e.to_string());
                    }
                }
            }
        }
        (deleted, refused)
    }

    /// One DeleteObjects request with version ids (not quiet: what was
    /// deleted is read from the answer, not assumed).
    async fn delete_chunk_versions(
        &self,
        chunk: &[Version],
    ) -> Result<(Vec<(String, String)>, Vec<((String, String), String)>), StoreError> {
        let first = chunk.first().map(|v| v.key.as_str()).unwrap_or("");
        let objects = chunk
            .iter()
            .map(|v| ObjectIdentifier::builder().key(&v.key).version_id(&v.id));
        let out = self
            .send_delete(objects, false, "delete object versions", first)
            .await?;
        let done = out
            .deleted()
            .iter()
            .map(|d| (text(d.key()), text(d.version_id())))
            .collect();
        let errors = out
            .errors()
            .iter()
            .map(|e| {
                let message = format!(
                    "{}: {}",
                    e.code().unwrap_or("refused"),
                    e.message().unwrap_or("")
                );
                ((text(e.key()), text(e.version_id())), message)
            })
            .collect();
        Ok((done, errors))
    }

    /// What became of one key's versions: all gone, some kept by Object
    /// Lock (named with their date), or an error for anything else.
    async fn outcome(
        &self,
        versions: &[Version],
        deleted: &HashSet<(String, String)>,
        refused: &BTreeMap<(String, String), String>,
    ) -> Result<Purged, StoreError> {
        let mut purged = Purged::default();
        for v in versions {
            let id = (v.key.clone(), v.id.clone());
            if deleted.contains(&id) {
                purged.versions += 1;
                continue;
            }
            let message = refused
                .get(&id)
                .or_else(|| refused.get(&(v.key.clone(), String::new())))
                .cloned()
                .unwrap_or_else(|| "not deleted, and the store said nothing".to_string());
            match self.lock_of(v, &message).await? {
                Some(locked) => purged.locked.push(locked),
                None => {
                    return Err(StoreError::Permanent(format!(
                        "delete `{}` version {}: {message}",
                        v.key, v.id
                    )));
                }
            }
        }
        Ok(purged)
    }

    /// The Object Lock keeping version `v`, if any (HeadObject of the
    /// version reports retention and legal hold).
    async fn lock_of(
        &self,
        v: &Version,
        message: &str,
    ) -> Result<Option<LockedVersion>, StoreError> {
        if v.marker {
            return Ok(None);
        }
        let head = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(&v.key)
            .version_id(&v.id)
            .send()
            .await
            .map_err(|e| classify("head version", &v.key, e))?;
        let until = head.object_lock_retain_until_date().map(|d| d.secs());
        let legal_hold =
            head.object_lock_legal_hold_status() == Some(&ObjectLockLegalHoldStatus::On);
        let retained = until.is_some_and(|u| u > now_secs());
        Ok((retained || legal_hold).then(|| LockedVersion {
            version_id: v.id.clone(),
            until: until.filter(|_| retained),
            legal_hold,
            message: message.to_string(),
        }))
    }
}

fn version(key: &str, id: Option<&str>, marker: bool) -> Version {
    Version {
        key: key.to_string(),
        // Versions made while versioning was off have the id "null".
        id: id.unwrap_or("null").to_string(),
        marker,
    }
}

fn text(s: Option<&str>) -> String {
    s.unwrap_or("").to_string()
}
