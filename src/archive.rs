//! The archive steps of one recording: compress → upload → verify → delete
//! the local copy. Each step ends in one ledger transition; a step cut short
//! (crash, kill, outage) is simply done again from the recorded state.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{TimeZone, Utc};

use crate::audit::{self, Action, Actor, NewEntry};
use crate::codec::{self, EncodeError};
use crate::config::{Codec, Config, StoreConfig, VerifyMode};
use crate::digest;
use crate::hold;
use crate::keys::{KeyInputs, display_name, encode_name};
use crate::ledger::{CompressedFacts, Ledger, LedgerError, now_secs};
use crate::recording::{FileIdentity, Recording, State};
use crate::spool;
use crate::store::{ObjectInfo, PutOutcome, PutRequest, Store, StoreError, meta};

/// A step that could not be completed; the recording is marked failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("{0}")]
    Local(String),
    #[error("verification failed: {0}")]
    Verify(String),
}

impl StepError {
    /// True if the store is unreachable (every recording would fail the same way).
    pub fn is_store_outage(&self) -> bool {
        matches!(self, StepError::Store(e) if e.is_transient())
    }
}

/// How a recording's processing ended this time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    /// Archived and the local copy removed (or it was already gone).
    Archived { bytes: u64, object_bytes: u64 },
    /// Stopped in a state with nothing more to do now (changed file back to seen, …).
    Waiting(State),
}

/// Runs archive steps against one ledger and one store.
pub struct Archiver {
    config: Arc<Config>,
    store_config: StoreConfig,
    ledger: Arc<Ledger>,
    store: Arc<dyn Store>,
    /// Who the audit trail names for local deletes.
    actor: Actor,
}

impl Archiver {
    pub fn new(
        config: Arc<Config>,
        store_config: StoreConfig,
        ledger: Arc<Ledger>,
        store: Arc<dyn Store>,
    ) -> Archiver {
        Archiver {
            config,
            store_config,
            ledger,
            store,
            actor: Actor::current(),
        }
    }

    /// The store objects go to.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The staging file holding a recording's object between compress and verify.
    pub fn staging_path(&self, id: i64) -> PathBuf {
        self.config.spool.staging.join(format!("{id}.obj"))
    }

    /// Moves a recording through every step it can take now.
    pub async fn process(&self, id: i64) -> Result<Done, StepError> {
        loop {
            let rec = self.ledger.recording(id)?;
            match rec.state {
                State::Failed => {
                    self.ledger.resume_failed(&rec)?;
                }
                State::Settled => self.compress(&rec).await?,
                State::Compressed => self.upload(&rec).await?,
                State::Uploaded => self.verify(&rec).await?,
                State::Verified => return self.delete_local(&rec).await,
                other => return Ok(Done::Waiting(other)),
            }
        }
    }

    async fn compress(&self, rec: &Recording) -> Result<(), StepError> {
        if !spool::in_spool(&self.config.spool.dirs, &rec.path) {
            return Err(StepError::Local(format!(
                "{} is not in a configured spool directory; left alone",
                rec.path.display()
            )));
        }
        let dest = self.staging_path(rec.id);
        let (path, identity, codec, level) = (
            rec.path.clone(),
            rec.identity,
            self.config.compress.codec,
            self.config.compress.level,
        );
        let staging = self.config.spool.staging.clone();
        let encoded = tokio::task::spawn_blocking(move || {
            fs::create_dir_all(&staging).map_err(|e| EncodeError::Staging {
                path: staging.display().to_string(),
                source: e,
            })?;
            codec::encode(&path, identity, codec, level, &dest)
        })
        .await
        .map_err(|e| StepError::Local(format!("compress task failed: {e}")))?;
        let encoded = match encoded {
            Ok(e) => e,
            Err(EncodeError::Changed(now)) => {
                tracing::info!(recording = %display_name(&rec.name), "recording changed after it settled; starting over");
                let now = now.unwrap_or(FileIdentity {
                    size: 0,
                    mtime_ns: 0,
                    ..rec.identity
                });
                self.ledger
                    .reset_changed(rec.id, now, "changed after settling")?;
                return Ok(());
            }
            Err(EncodeError::Gone) => {
                tracing::warn!(recording = %display_name(&rec.name), "recording was removed by someone else before it was archived");
                self.ledger.transition(
                    rec.id,
                    &[State::Settled],
                    State::Gone,
                    &[],
                    "removed before archiving",
                )?;
                return Ok(());
            }
            Err(e) => return Err(StepError::Local(e.to_string())),
        };
        let mut unique = false;
        loop {
            let key = match (&rec.object_key, unique) {
                (Some(k), false) => k.clone(),
                _ => self.render_key(rec, unique),
            };
            let facts = CompressedFacts {
                sha256: hex::encode(encoded.sha256),
                object_key: key,
                object_size: encoded.object_size,
                object_sha256: hex::encode(encoded.object_sha256),
                codec: codec.as_str().to_string(),
            };
            let result = self.ledger.transition(
                rec.id,
                &[State::Settled],
                State::Compressed,
                &[
                    ("sha256", &facts.sha256),
                    ("object_key", &facts.object_key),
                    ("object_size", &(facts.object_size as i64)),
                    ("object_sha256", &facts.object_sha256),
                    ("codec", &facts.codec),
                ],
                "compressed",
            );
            match result {
                Err(LedgerError::KeyTaken(_)) if !unique => unique = true,
                other => return Ok(other?),
            }
        }
    }

    fn render_key(&self, rec: &Recording, unique: bool) -> String {
        let time = Utc
            .timestamp_opt(rec.time_secs(), 0)
            .single()
            .unwrap_or_default();
        self.store_config.key_template.render(
            &KeyInputs {
                prefix: &self.store_config.prefix,
                host: &self.config.daemon.host,
                time,
                name: &rec.name,
                id: rec.id,
            },
            unique,
        )
    }

    fn object_metadata(&self, rec: &Recording) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        let mut put = |k: &str, v: String| {
            m.insert(k.to_string(), v);
        };
        put(meta::SHA256, rec.object_sha256.clone().unwrap_or_default());
        put(
            meta::ORIGINAL_SHA256,
            rec.sha256.clone().unwrap_or_default(),
        );
        put(meta::ORIGINAL_SIZE, rec.identity.size.to_string());
        put(meta::ORIGINAL_NAME, encode_name(&rec.name));
        put(meta::ORIGINAL_MTIME_NS, rec.identity.mtime_ns.to_string());
        put(meta::CODEC, rec.codec.clone().unwrap_or_default());
        put(meta::HOST, self.config.daemon.host.clone());
        put(meta::RECORDING_ID, rec.id.to_string());
        m
    }

    /// True if `info` describes exactly this recording's object.
    fn is_our_object(rec: &Recording, info: &ObjectInfo) -> bool {
        Some(info.size) == rec.object_size
            && info.metadata.get(meta::SHA256) == rec.object_sha256.as_ref()
    }

    async fn upload(&self, rec: &Recording) -> Result<(), StepError> {
        let staged = self.staging_path(rec.id);
        let (Some(key), Some(size), Some(sha_hex)) =
            (&rec.object_key, rec.object_size, &rec.object_sha256)
        else {
            self.ledger.transition(
                rec.id,
                &[State::Compressed],
                State::Settled,
                &[],
                "incomplete compress record",
            )?;
            return Ok(());
        };
        let staged_size = fs::metadata(&staged).map(|m| m.len()).ok();
        let sha256 = digest::from_hex(sha_hex);
        let (Some(sha256), true) = (sha256, staged_size == Some(size)) else {
            // Staging lost (crash before fsync, cleaned dir): compress again.
            self.ledger.transition(
                rec.id,
                &[State::Compressed],
                State::Settled,
                &[],
                "staging copy missing; compressing again",
            )?;
            return Ok(());
        };
        let metadata = self.object_metadata(rec);
        let outcome = self
            .store
            .put(&PutRequest {
                key,
                source: &staged,
                size,
                sha256,
                metadata: &metadata,
            })
            .await;
        let outcome = match outcome {
            Err(StoreError::Permanent(msg)) if is_digest_rejection(&msg) => {
                // The staged bytes are not what we hashed: make them again.
                let _ = fs::remove_file(&staged);
                return Err(StepError::Store(StoreError::Permanent(msg)));
            }
            other => other?,
        };
        let checksum = match outcome {
            PutOutcome::Created { checksum } => checksum,
            PutOutcome::Exists(info) if Self::is_our_object(rec, &info) => {
                tracing::info!(key = %key, "object already stored by an earlier attempt");
                info.checksum
                    .unwrap_or_else(|| crate::store::single_part_checksum(&sha256))
            }
            PutOutcome::Exists(_) => {
                let fresh = self.render_key(rec, true);
                if &fresh == key {
                    return Err(StepError::Verify(format!(
                        "a different object already exists at `{key}` and no other key is free"
                    )));
                }
                tracing::warn!(key = %key, new_key = %fresh, "a different object already has this key; never overwriting, using another key");
                self.ledger.transition(
                    rec.id,
                    &[State::Compressed],
                    State::Compressed,
                    &[("object_key", &fresh)],
                    "key taken in store",
                )?;
                return Ok(());
            }
        };
        self.ledger.transition(
            rec.id,
            &[State::Compressed],
            State::Uploaded,
            &[("store_checksum", &checksum)],
            "uploaded",
        )?;
        Ok(())
    }

    async fn verify(&self, rec: &Recording) -> Result<(), StepError> {
        let key = rec.object_key.clone().unwrap_or_default();
        let Some(info) = self.store.head(&key).await? else {
            tracing::warn!(key = %key, "object missing on read-back; uploading again");
            self.ledger.transition(
                rec.id,
                &[State::Uploaded],
                State::Compressed,
                &[],
                "object missing on read-back",
            )?;
            return Ok(());
        };
        let problem = self.check_object(rec, &key, &info).await?;
        if let Some(problem) = problem {
            // Never delete the local file; upload under a fresh key next time.
            let fresh = self.render_key(rec, true);
            tracing::error!(key = %key, problem = %problem, "verification failed; the local copy stays");
            if fresh != key {
                self.ledger.transition(
                    rec.id,
                    &[State::Uploaded],
                    State::Compressed,
                    &[("object_key", &fresh)],
                    &format!("verification failed: {problem}"),
                )?;
            }
            return Err(StepError::Verify(problem));
        }
        self.ledger.transition(
            rec.id,
            &[State::Uploaded],
            State::Verified,
            &[("verified_at", &now_secs())],
            "verified",
        )?;
        let _ = fs::remove_file(self.staging_path(rec.id));
        if self.store_config.object_lock_legal_hold && hold::is_held(&self.ledger, rec.id)? {
            // A hold placed before the object existed: mirror it now. The
            // ledger's hold protects it either way.
            if let Err(e) = self.store.set_legal_hold(&key, true).await {
                tracing::warn!(key = %key, "cannot set the object's legal hold (the ledger's hold still applies): {e}");
            }
        }
        Ok(())
    }

    /// Compares the store's view of the object with ours; `Some(problem)` on mismatch.
    async fn check_object(
        &self,
        rec: &Recording,
        key: &str,
        info: &ObjectInfo,
    ) -> Result<Option<String>, StepError> {
        let want_size = rec.object_size.unwrap_or(0);
        if info.size != want_size {
            return Ok(Some(format!(
                "size {} in store, {} expected",
                info.size, want_size
            )));
        }
        let want_sha = rec.object_sha256.clone().unwrap_or_default();
        let meta_sha = info.metadata.get(meta::SHA256);
        if meta_sha.is_some_and(|s| *s != want_sha) {
            return Ok(Some(format!(
                "metadata sha256 {} in store, {want_sha} expected",
                meta_sha.unwrap()
            )));
        }
        match (&info.checksum, &rec.store_checksum) {
            (Some(got), Some(want)) if got != want => {
                return Ok(Some(format!("checksum {got} in store, {want} expected")));
            }
            (None, _) if meta_sha.is_none() => {
                return Ok(Some(
                    "the store reports neither a checksum nor our metadata".to_string(),
                ));
            }
            _ => {}
        }
        if self.store_config.verify == VerifyMode::Read {
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
            .map_err(|e| StepError::Local(e.to_string()))?;
            let _ = fs::remove_file(&tmp);
            let (sha, size) = hashed.map_err(|e| StepError::Local(format!("read-back: {e}")))?;
            if hex::encode(sha) != want_sha || size != want_size {
                return Ok(Some(format!("read-back hashes to {}", hex::encode(sha))));
            }
        }
        Ok(None)
    }

    async fn delete_local(&self, rec: &Recording) -> Result<Done, StepError> {
        let done = Done::Archived {
            bytes: rec.identity.size,
            object_bytes: rec.object_size.unwrap_or(0),
        };
        let name = display_name(&rec.name);
        // A held recording keeps its local copy too: no deletion of any kind.
        let cases = hold::cases_holding(&self.ledger, rec.id)?;
        if !cases.is_empty() {
            tracing::info!(recording = %name, cases = %cases.join(","), "archived; local copy kept under legal hold");
            return Ok(done);
        }
        let (dirs, path, expected) = (
            self.config.spool.dirs.clone(),
            rec.path.clone(),
            rec.identity,
        );
        let removed =
            tokio::task::spawn_blocking(move || remove_local_copy(&dirs, &path, expected))
                .await
                .map_err(|e| StepError::Local(e.to_string()))?
                .map_err(StepError::Local)?;
        let now = now_secs();
        let subject = crate::retention::subject(rec);
        self.ledger.transition_then(
            rec.id,
            &[State::Verified],
            State::LocalDeleted,
            &[("local_deleted_at", &now)],
            removed,
            |tx| {
                audit::append(
                    tx,
                    &self.actor,
                    now,
                    &NewEntry {
                        action: Action::LocalDelete,
                        case_id: None,
                        subject: &subject,
                        reason: &format!("object verified in the store; {removed}"),
                    },
                )
                .map(|_| ())
            },
        )?;
        let key = rec.object_key.as_deref().unwrap_or("");
        if removed == "archived" {
            tracing::info!(recording = %name, key = %key, bytes = rec.identity.size, object_bytes = done_bytes(done), "archived");
        } else {
            tracing::warn!(recording = %name, key = %key, "{removed}");
        }
        Ok(done)
    }
}

/// Removes a recording's local file if it is still the file that was
/// recorded (same identity) and inside a spool directory. A file replaced
/// since is a new recording and stays. Returns what happened.
pub fn remove_local_copy(
    dirs: &[PathBuf],
    path: &std::path::Path,
    expected: FileIdentity,
) -> Result<&'static str, String> {
    if !spool::in_spool(dirs, path) {
        return Err(format!(
            "{} is not in a configured spool directory; not deleting it",
            path.display()
        ));
    }
    let remove = || -> io::Result<&'static str> {
        let meta = match fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok("local copy already gone");
            }
            Err(e) => return Err(e),
        };
        if !meta.is_file() || FileIdentity::of(&meta) != expected {
            return Ok("local file was replaced after archiving; the new file is a new recording");
        }
        fs::remove_file(path)?;
        if let Some(dir) = path.parent() {
            digest::sync_dir(dir)?;
        }
        Ok("archived")
    };
    remove().map_err(|e| format!("cannot delete {}: {e}", path.display()))
}

/// True if the store refused a put because the bytes did not hash to the
/// SHA-256 we sent: AWS says `BadDigest`, Garage `InvalidDigest`, the local
/// store "checksum mismatch".
fn is_digest_rejection(message: &str) -> bool {
    ["BadDigest", "InvalidDigest", "checksum mismatch"]
        .iter()
        .any(|m| message.contains(m))
}

fn done_bytes(done: Done) -> u64 {
    match done {
        Done::Archived { object_bytes, .. } => object_bytes,
        Done::Waiting(_) => 0,
    }
}

/// Removes staging leftovers of interrupted steps: temp files, and objects
/// whose recording is no longer waiting to be uploaded.
pub fn clean_staging(config: &Config, ledger: &Ledger) -> Result<usize, StepError> {
    let dir = &config.spool.staging;
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => {
            return Err(StepError::Local(format!(
                "cannot list staging {}: {e}",
                dir.display()
            )));
        }
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let keep = match name
            .strip_suffix(".obj")
            .and_then(|id| id.parse::<i64>().ok())
        {
            Some(id) => ledger.recording(id).is_ok_and(|r| {
                let step = if r.state == State::Failed {
                    r.resume_state
                } else {
                    Some(r.state)
                };
                matches!(step, Some(State::Compressed | State::Uploaded))
            }),
            None => false,
        };
        if !keep
            && entry.file_type().is_ok_and(|t| t.is_file())
            && fs::remove_file(entry.path()).is_ok()
        {
            removed += 1;
        }
    }
    Ok(removed)
}

/// The codec a recording's object was written with.
pub fn codec_of(rec: &Recording) -> Codec {
    rec.codec
        .as_deref()
        .and_then(Codec::parse)
        .unwrap_or(Codec::Zstd)
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
