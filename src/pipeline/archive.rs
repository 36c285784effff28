//! The archive steps of one recording: compress → upload → verify → delete
//! the local copy. Each step ends in one ledger transition; a step cut short
//! (crash, kill, outage) is simply done again from the recorded state. The
//! store steps (upload, verify) are in `upload.rs`; staging files in
//! `staging.rs`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{TimeZone, Utc};

use super::upload::Upload;
use crate::codec::{self, Codec, EncodeError, Encoded, Fallback};
use crate::config::{Config, StoreConfig};
use crate::error::Error;
use crate::ledger::audit::Actor;
use crate::ledger::verify::Reserved;
use crate::ledger::{CompressedFacts, Ledger, LedgerError};
use crate::metrics::Metrics;
use crate::recording::key::{KeyInputs, display_name, encode_name};
use crate::recording::{FileIdentity, Recording, State};
use crate::spool;
use crate::store::{Store, meta};
use crate::units::now_secs;

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
    pub(super) config: Arc<Config>,
    pub(super) store_config: StoreConfig,
    pub(super) ledger: Arc<Ledger>,
    pub(super) store: Arc<dyn Store>,
    /// Who the audit trail names for local deletes.
    pub(super) actor: Actor,
    pub(super) metrics: Arc<Metrics>,
    /// Compressing is CPU work: at most one recording per core at once, so
    /// the other recordings in flight wait on the store meanwhile (the next
    /// one is compressed while this one uploads).
    pub(super) compress_slots: tokio::sync::Semaphore,
}

/// Logs why `rec` was stored with another codec than asked, if it was.
pub(super) fn log_fallback(rec: &Recording, encoded: &Encoded) {
    let name = display_name(&rec.name);
    match &encoded.fallback {
        Some(why @ Fallback::RoundTrip(_)) => {
            tracing::error!(recording = %name, codec = encoded.codec.as_str(), "{why}; the FLAC object was discarded");
        }
        Some(why) => {
            tracing::debug!(recording = %name, codec = encoded.codec.as_str(), "{why}");
        }
        None => {}
    }
}

/// A value as object metadata may carry it (HTTP header text).
fn encode_text(text: &str) -> String {
    encode_name(text.as_bytes())
}

impl Archiver {
    pub fn new(
        config: Arc<Config>,
        store_config: StoreConfig,
        ledger: Arc<Ledger>,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
    ) -> Archiver {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let slots = cores.min(config.daemon.workers);
        Archiver {
            config,
            store_config,
            ledger,
            store,
            actor: Actor::current(),
            metrics,
            compress_slots: tokio::sync::Semaphore::new(slots),
        }
    }

    /// The store objects go to.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The staging file holding a recording's object between compress and verify.
    pub fn staging_path(&self, id: i64) -> PathBuf {
        super::staging::object_path(&self.config.spool.staging, id)
    }

    /// Moves a recording through every step it can take now. Each step
    /// records its outcome and reads the recording back in one ledger call.
    pub async fn process(&self, id: i64) -> Result<Done, Error> {
        let mut rec = self.ledger.call(move |l| l.recording(id)).await?;
        // The object, if this call compressed it into memory: kept until it
        // is verified (an upload again under another key sends it again).
        let mut object: Option<Vec<u8>> = None;
        // What the `verified` commit found when it reserved the local delete.
        let mut reserved: Option<Reserved> = None;
        loop {
            rec = match rec.state {
                State::Failed => {
                    let failed = rec.clone();
                    self.record(id, move |l| l.resume_failed(&failed).map(drop))
                        .await?
                }
                State::Settled => {
                    let (next, compressed) = self.compress(&rec).await?;
                    object = compressed;
                    next
                }
                State::Compressed => match self.upload(&rec, object.as_deref()).await? {
                    Upload::Recorded(next) => *next,
                    // Recorded with the verification, in its durable commit.
                    Upload::Stored(checksum) => {
                        let stored = Recording {
                            store_checksum: Some(checksum.clone()),
                            ..rec
                        };
                        let verified = self.verify(&stored, Some(checksum), object.is_none());
                        let verified = verified.await?;
                        reserved = verified.reserved;
                        verified.rec
                    }
                },
                State::Uploaded => {
                    let verified = self.verify(&rec, None, object.is_none()).await?;
                    reserved = verified.reserved;
                    verified.rec
                }
                State::Verified => return self.delete_local(&rec, reserved.take()).await,
                other => return Ok(Done::Waiting(other)),
            };
        }
    }

    /// Records a step's outcome with `change`, then reads recording `id` as
    /// it now is: one trip to the ledger's blocking pool, not two.
    pub(super) async fn record(
        &self,
        id: i64,
        change: impl FnOnce(&Ledger) -> Result<(), LedgerError> + Send + 'static,
    ) -> Result<Recording, Error> {
        Ok(self
            .ledger
            .call(move |l| {
                change(l)?;
                l.recording(id)
            })
            .await?)
    }

    /// Compresses `rec` and records it; returns the object too if it was
    /// compressed into memory (else it is in its staging file).
    async fn compress(&self, rec: &Recording) -> Result<(Recording, Option<Vec<u8>>), Error> {
        if !spool::in_spool(&self.config.spool.dirs, &rec.path) {
            return Err(Error::Local(format!(
                "{} is not in a configured spool directory; left alone",
                rec.path.display()
            )));
        }
        // Held until the outcome is recorded.
        let _slot = self
            .compress_slots
            .acquire()
            .await
            .map_err(|e| Error::Local(format!("compress slot: {e}")))?;
        let (encoded, object) = match self.encode(rec).await? {
            Ok(e) => e,
            Err(e) => return Ok((self.not_encoded(rec, e).await?, None)),
        };
        log_fallback(rec, &encoded);
        Ok((self.record_compressed(rec, &encoded).await?, object))
    }

    /// The codec `rec` is compressed with: the one it was compressed with
    /// before if its staging was lost (so the key and the object an
    /// interrupted upload may have stored stay the same), else its campaign's.
    pub(super) fn codec_of(&self, rec: &Recording) -> Codec {
        match (&rec.object_key, rec.codec.as_deref().and_then(Codec::parse)) {
            (Some(_), Some(before)) => before,
            _ => self.config.compress.codec_for(rec.campaign.as_deref()),
        }
    }

    /// Encodes `rec` into memory if it is small (`[spool] stage_in_memory`),
    /// else into its staging file; the caller holds a compress slot.
    async fn encode(
        &self,
        rec: &Recording,
    ) -> Result<Result<(Encoded, Option<Vec<u8>>), EncodeError>, Error> {
        let dest = self.staging_path(rec.id);
        let codec = self.codec_of(rec);
        let (path, identity, zstd) = (rec.path.clone(), rec.identity, self.config.compress.zstd);
        let limit = self.config.spool.stage_in_memory;
        let in_memory = limit > 0 && identity.size <= limit;
        tokio::task::spawn_blocking(move || match in_memory {
            true => codec::encode_to_memory(&path, identity, codec, zstd)
                .map(|(encoded, object)| (encoded, Some(object))),
            false => codec::encode(&path, identity, codec, zstd, &dest).map(|e| (e, None)),
        })
        .await
        .map_err(|e| Error::Local(format!("compress task failed: {e}")))
    }

    /// Records why `rec` was not encoded: changed (back to seen) or gone;
    /// any other failure is returned.
    async fn not_encoded(&self, rec: &Recording, e: EncodeError) -> Result<Recording, Error> {
        let (id, name) = (rec.id, display_name(&rec.name));
        match e {
            EncodeError::Changed(now) => {
                tracing::info!(recording = %name, "recording changed after it settled; starting over");
                let now = now.unwrap_or(FileIdentity {
                    size: 0,
                    mtime_ns: 0,
                    ..rec.identity
                });
                self.record(id, move |l| {
                    l.reset_changed(id, now, "changed after settling")
                })
                .await
            }
            EncodeError::Gone => {
                tracing::warn!(recording = %name, "recording was removed by someone else before it was archived");
                self.record(id, move |l| {
                    l.gone(id, State::Settled, "removed before archiving")
                })
                .await
            }
            e => Err(e.into()),
        }
    }

    /// Records the staged object's facts and key (made unique if another
    /// recording has it).
    async fn record_compressed(
        &self,
        rec: &Recording,
        encoded: &Encoded,
    ) -> Result<Recording, Error> {
        let (id, used) = (rec.id, encoded.codec);
        let mut facts = self.compressed_facts(rec, encoded);
        let first = facts.clone();
        match self.record(id, move |l| l.compressed(id, &first)).await {
            // Another recording has that key (VICIdial names repeat): a unique one.
            Err(Error::Ledger(LedgerError::KeyTaken(_))) => {
                facts.object_key = self.render_key(rec, used, true);
                self.record(id, move |l| l.compressed(id, &facts)).await
            }
            other => other,
        }
    }

    /// What compressing `rec` into `encoded` found, under its key (the
    /// plain one; a key rendered for another codec, the config changed
    /// since, names the wrong format and is rendered again).
    pub(super) fn compressed_facts(&self, rec: &Recording, encoded: &Encoded) -> CompressedFacts {
        let used = encoded.codec;
        let key = match &rec.object_key {
            Some(k) if rec.codec.as_deref() == Some(used.as_str()) => k.clone(),
            _ => self.render_key(rec, used, false),
        };
        CompressedFacts {
            sha256: hex::encode(encoded.sha256),
            object_key: key,
            object_size: encoded.object_size,
            object_sha256: hex::encode(encoded.object_sha256),
            codec: used.as_str().to_string(),
        }
    }

    /// The object key of `rec` stored with `codec`; `unique` adds its id
    /// (for a name whose plain key is taken).
    pub(super) fn render_key(&self, rec: &Recording, codec: Codec, unique: bool) -> String {
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
                suffix: codec::suffix(codec),
            },
            unique,
        )
    }

    /// The metadata stored with the object: enough to rebuild the ledger
    /// row, and what is known about the call by then (from the file name or
    /// VICIdial's database).
    pub(super) fn object_metadata(&self, rec: &Recording) -> BTreeMap<String, String> {
        let call = [
            (meta::CAMPAIGN, rec.campaign.as_deref().map(encode_text)),
            (meta::AGENT, rec.agent.as_deref().map(encode_text)),
            (meta::LEAD_ID, rec.lead_id.as_deref().map(encode_text)),
            (meta::PHONE, rec.phone.as_deref().map(encode_text)),
            (meta::CALL_TIME, rec.call_time.map(|t| t.to_string())),
            (meta::CALL_LENGTH, rec.call_length.map(|l| l.to_string())),
            (
                meta::VICIDIAL_RECORDING_ID,
                rec.vicidial_recording_id.map(|r| r.to_string()),
            ),
        ];
        let call = call.into_iter().filter_map(|(k, v)| Some((k, v?)));
        [
            (meta::SHA256, rec.object_sha256.clone().unwrap_or_default()),
            (
                meta::ORIGINAL_SHA256,
                rec.sha256.clone().unwrap_or_default(),
            ),
            (meta::ORIGINAL_SIZE, rec.identity.size.to_string()),
            (meta::ORIGINAL_NAME, encode_name(&rec.name)),
            (meta::ORIGINAL_MTIME_NS, rec.identity.mtime_ns.to_string()),
            (meta::CODEC, rec.codec.clone().unwrap_or_default()),
            (meta::HOST, self.config.daemon.host.clone()),
            (meta::RECORDING_ID, rec.id.to_string()),
        ]
        .into_iter()
        .chain(call)
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Removes verified `rec`'s local copy; `reserved`: what reserving it in
    /// the `verified` commit found, if that was this call's (else it is
    /// reserved here).
    async fn delete_local(
        &self,
        rec: &Recording,
        reserved: Option<Reserved>,
    ) -> Result<Done, Error> {
        let (record, actor, dirs) = (
            rec.clone(),
            self.actor.clone(),
            self.config.spool.dirs.clone(),
        );
        // Reserve, remove, record: one trip to the ledger's blocking pool,
        // not three (the removal is blocking work too).
        let removal = self
            .ledger
            .call(move |l| local_removal(l, &record, reserved, &dirs, &actor))
            .await?;
        removal_done(rec, removal)
    }
}

/// What removing verified `rec`'s local copy came to, logged.
pub(super) fn removal_done(rec: &Recording, removal: Removal) -> Result<Done, Error> {
    let done = Done::Archived {
        bytes: rec.identity.size,
        object_bytes: rec.object_size.unwrap_or(0),
    };
    let name = display_name(&rec.name);
    let removed = match removal {
        Removal::NotNow => return Ok(Done::Waiting(State::Verified)),
        Removal::Held(cases) => {
            tracing::info!(recording = %name, cases = %cases.join(","), "archived; local copy kept under legal hold");
            return Ok(done);
        }
        Removal::Failed(e) => return Err(Error::Local(e)),
        Removal::Removed(removed) => removed,
    };
    let key = rec.object_key.as_deref().unwrap_or("");
    if removed == "archived" {
        tracing::info!(recording = %name, key = %key, bytes = rec.identity.size, object_bytes = rec.object_size.unwrap_or(0), "archived");
    } else {
        tracing::warn!(recording = %name, key = %key, "{removed}");
    }
    Ok(done)
}

/// What became of a verified recording's local copy.
pub(super) enum Removal {
    /// Not reservable now (not verified, or reserved for another deletion).
    NotNow,
    /// Kept: these cases hold it.
    Held(Vec<String>),
    /// Removing it failed (the reservation was given up).
    Failed(String),
    /// Removed (or found gone), recorded as `local_deleted`: how.
    Removed(&'static str),
}

/// Removes the local copy of verified recording `rec`, on the ledger's
/// blocking pool: reserved in the transaction that checks the holds (a hold
/// placed before that always keeps the copy; `reserved` if that was the
/// `verified` commit), removed, then recorded.
fn local_removal(
    ledger: &Ledger,
    rec: &Recording,
    reserved: Option<Reserved>,
    dirs: &[PathBuf],
    actor: &Actor,
) -> Result<Removal, Error> {
    let mut each = local_removals(ledger, vec![(rec.clone(), reserved)], dirs, actor);
    each.pop()
        .unwrap_or_else(|| Err(Error::Local("no removal outcome".to_string())))
}

/// `local_removal` of several verified recordings (a batch of small ones):
/// each reserved (unless its `verified` commit did), removed, and every
/// removal recorded in one commit. Each gets its own outcome, in order.
pub(super) fn local_removals(
    ledger: &Ledger,
    recs: Vec<(Recording, Option<Reserved>)>,
    dirs: &[PathBuf],
    actor: &Actor,
) -> Vec<Result<Removal, Error>> {
    let mut out = Vec::with_capacity(recs.len());
    let mut removed: Vec<(usize, Recording, &'static str)> = Vec::new();
    for (i, (rec, reserved)) in recs.into_iter().enumerate() {
        match remove_one(ledger, &rec, reserved, dirs) {
            Ok(Removal::Removed(how)) => {
                removed.push((i, rec, how));
                out.push(Ok(Removal::Removed(how)));
            }
            other => out.push(other),
        }
    }
    let recorded: Vec<(Recording, &str)> = removed
        .iter()
        .map(|(_, rec, how)| (rec.clone(), *how))
        .collect();
    let outcomes = ledger.local_copies_removed(&recorded, actor);
    for ((i, _, _), outcome) in removed.iter().zip(outcomes) {
        if let Err(e) = outcome {
            out[*i] = Err(e.into());
        }
    }
    out
}

/// Reserves (unless `reserved` says how the `verified` commit did) and
/// removes `rec`'s local copy; the removal is not recorded yet.
fn remove_one(
    ledger: &Ledger,
    rec: &Recording,
    reserved: Option<Reserved>,
    dirs: &[PathBuf],
) -> Result<Removal, Error> {
    let reserved = match reserved {
        Some(reserved) => reserved,
        None => {
            let reserved = ledger.reserve_local_delete(rec.id, now_secs())?;
            // Verified by an earlier call or run: its commit may never have
            // been synced (killed before it was); on disk before the delete.
            ledger.make_durable()?;
            reserved
        }
    };
    match reserved {
        None => return Ok(Removal::NotNow),
        Some(cases) if !cases.is_empty() => return Ok(Removal::Held(cases)),
        Some(_) => {}
    }
    match spool::remove_archived_copy(dirs, &rec.path, rec.identity) {
        Ok(removed) => Ok(Removal::Removed(removed)),
        Err(e) => {
            ledger.release_reservations(&[rec.id])?;
            Ok(Removal::Failed(e))
        }
    }
}
