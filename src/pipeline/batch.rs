//! Small recordings archived together. A backlog of short calls spends more
//! on each recording's fixed costs (a trip to a blocking thread and a ledger
//! commit per step) than on its bytes, so a batch of them takes each step
//! together: compressed into memory in one blocking call, recorded
//! `compressed` in one commit, uploaded and checked in the store side by
//! side, recorded `verified` in one durable commit, and their local copies
//! removed and recorded in one more. The steps and their order are those of
//! one recording (`archive.rs`): nothing is deleted before its `verified`
//! commit is on disk, and each step's outcome is committed before the next.
//!
//! Anything off the plain path (a changed or vanished file, a key taken, a
//! store that answers otherwise, a failed step) leaves that recording to
//! the one-recording steps, which resume from whatever was recorded.

use std::future::Future;
use std::path::PathBuf;

use futures_util::StreamExt;

use super::archive::{Archiver, Done, local_removals, log_fallback, removal_done};
use super::upload::{Proven, Upload};
use crate::codec;
use crate::error::Error;
use crate::ledger::verify::{Reserved, Verification};
use crate::ledger::{CompressedFacts, Ledger};
use crate::metrics;
use crate::recording::{Recording, State};
use crate::spool;

/// Each recording of a batch and how its steps ended.
pub type Outcomes = Vec<(i64, Result<Done, Error>)>;

/// A recording of the batch between steps: as last recorded, and its object.
struct InFlight {
    rec: Recording,
    object: Vec<u8>,
}

impl Archiver {
    /// True if `rec` may go in a batch: settled, never failed, and small
    /// enough to be compressed into memory.
    pub fn batchable(&self, rec: &Recording) -> bool {
        let limit = self.config.spool.stage_in_memory;
        rec.state == State::Settled && rec.attempts == 0 && limit > 0 && rec.identity.size <= limit
    }

    /// Archives `recs` (each [`Archiver::batchable`]) together; the ones
    /// that leave the plain path finish through [`Archiver::process`].
    pub async fn process_batch(&self, recs: Vec<Recording>) -> Outcomes {
        let mut outcomes = Outcomes::with_capacity(recs.len());
        let mut alone = Vec::new();
        let compressed = self.compress_batch(recs, &mut alone).await;
        let stored = self
            .upload_batch(compressed, &mut outcomes, &mut alone)
            .await;
        let proven = self.prove_batch(stored, &mut outcomes, &mut alone).await;
        let verified = self.record_verified_batch(proven, &mut outcomes).await;
        self.delete_batch(verified, &mut outcomes).await;
        for id in alone {
            outcomes.push((id, self.process(id).await));
        }
        outcomes
    }

    /// Compresses `recs` into memory in one blocking call (one compress
    /// slot) and records every one that compressed in one commit. Those
    /// that did not, or whose key is taken, go to `alone`.
    async fn compress_batch(&self, recs: Vec<Recording>, alone: &mut Vec<i64>) -> Vec<InFlight> {
        let (recs, outside) = self.in_spool(recs);
        alone.extend(outside.iter().map(|r| r.id));
        let Ok(_slot) = self.compress_slots.acquire().await else {
            alone.extend(recs.iter().map(|r| r.id));
            return Vec::new();
        };
        let zstd = self.config.compress.zstd;
        let jobs: Vec<_> = recs
            .iter()
            .map(|r| (r.path.clone(), r.identity, self.codec_of(r)))
            .collect();
        let encoded = tokio::task::spawn_blocking(move || {
            jobs.into_iter()
                .map(|(path, identity, codec)| {
                    codec::encode_to_memory(&path, identity, codec, zstd).ok()
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        let mut done = Vec::new();
        let mut facts = Vec::new();
        let mut encoded = encoded.into_iter();
        for rec in recs {
            // Not encoded (changed, gone, unreadable): the one-recording
            // step encodes it again and records why.
            let Some((encoded, object)) = encoded.next().flatten() else {
                alone.push(rec.id);
                continue;
            };
            log_fallback(&rec, &encoded);
            facts.push((rec.id, self.compressed_facts(&rec, &encoded)));
            done.push(InFlight { rec, object });
        }
        self.record_compressed_batch(done, facts, alone).await
    }

    /// Records `done` compressed with `facts` in one commit; those whose
    /// key is taken (or whose state moved meanwhile) go to `alone`.
    async fn record_compressed_batch(
        &self,
        done: Vec<InFlight>,
        facts: Vec<(i64, CompressedFacts)>,
        alone: &mut Vec<i64>,
    ) -> Vec<InFlight> {
        let ids: Vec<i64> = done.iter().map(|f| f.rec.id).collect();
        let recorded = self
            .commit_then_read(ids, move |l| l.compressed_many(facts))
            .await;
        let (each, now) = match recorded {
            Ok(r) => r,
            Err(_) => {
                alone.extend(done.iter().map(|f| f.rec.id));
                return Vec::new();
            }
        };
        let mut compressed = Vec::new();
        for ((mut flight, outcome), rec) in done.into_iter().zip(each).zip(now) {
            match (outcome, rec) {
                (Ok(()), Some(rec)) if rec.state == State::Compressed => {
                    flight.rec = rec;
                    compressed.push(flight);
                }
                // A key taken, a state moved meanwhile: one at a time.
                _ => alone.push(flight.rec.id),
            }
        }
        compressed
    }

    /// `recs` split into those in a configured spool directory and those
    /// outside, which the one-recording step refuses and says why (one look
    /// per directory).
    fn in_spool(&self, recs: Vec<Recording>) -> (Vec<Recording>, Vec<Recording>) {
        let mut spool_dirs: Vec<(PathBuf, bool)> = Vec::new();
        recs.into_iter().partition(|r| {
            let parent = r.path.parent().unwrap_or(&r.path);
            match spool_dirs.iter().find(|(d, _)| d == parent) {
                Some((_, inside)) => *inside,
                None => {
                    let inside = spool::in_spool(&self.config.spool.dirs, &r.path);
                    spool_dirs.push((parent.to_path_buf(), inside));
                    inside
                }
            }
        })
    }

    /// Uploads each object, `workers` at a time. The stored ones come back
    /// with the checksum the store will report; an error is that
    /// recording's outcome; anything else recorded goes to `alone`.
    async fn upload_batch(
        &self,
        flights: Vec<InFlight>,
        outcomes: &mut Outcomes,
        alone: &mut Vec<i64>,
    ) -> Vec<(InFlight, String)> {
        let upload = |flight: InFlight| async move {
            let id = flight.rec.id;
            let upload = self.upload(&flight.rec, Some(&flight.object)).await;
            let next = upload.map(|u| match u {
                Upload::Stored(checksum) => Some((flight, checksum)),
                Upload::Recorded(_) => None,
            });
            (id, next)
        };
        self.side_by_side(flights, upload, outcomes, alone).await
    }

    /// Checks the store's answer about each stored object, `workers` at a
    /// time; those proven come back with their upload's checksum.
    async fn prove_batch(
        &self,
        stored: Vec<(InFlight, String)>,
        outcomes: &mut Outcomes,
        alone: &mut Vec<i64>,
    ) -> Vec<(InFlight, String)> {
        let prove = |(mut flight, checksum): (InFlight, String)| async move {
            flight.rec.store_checksum = Some(checksum.clone());
            let id = flight.rec.id;
            let next = self.prove(&flight.rec).await.map(|p| match p {
                Proven::Yes(_) => Some((flight, checksum)),
                Proven::Recorded(_) => None,
            });
            (id, next)
        };
        self.side_by_side(stored, prove, outcomes, alone).await
    }

    /// Runs `step` on each of `items`, `workers` at a time, and sorts what
    /// each recording's step came to: `Some` goes on to the next step,
    /// `None` (it recorded something else) to `alone`, an error is its
    /// outcome.
    async fn side_by_side<T, N, F>(
        &self,
        items: Vec<T>,
        step: impl Fn(T) -> F,
        outcomes: &mut Outcomes,
        alone: &mut Vec<i64>,
    ) -> Vec<N>
    where
        F: Future<Output = (i64, Result<Option<N>, Error>)>,
    {
        let ended = futures_util::stream::iter(items)
            .map(step)
            .buffer_unordered(self.config.daemon.workers)
            .collect::<Vec<_>>()
            .await;
        let mut next = Vec::new();
        for (id, result) in ended {
            match result {
                Ok(Some(n)) => next.push(n),
                Ok(None) => alone.push(id),
                Err(e) => outcomes.push((id, Err(e))),
            }
        }
        next
    }

    /// Records every proven upload `verified`, its local delete reserved,
    /// in one durable commit; returns each verified recording as it now is
    /// with what its reservation found.
    async fn record_verified_batch(
        &self,
        proven: Vec<(InFlight, String)>,
        outcomes: &mut Outcomes,
    ) -> Vec<(Recording, Reserved)> {
        let ids: Vec<i64> = proven.iter().map(|(f, _)| f.rec.id).collect();
        let items: Vec<(i64, Verification)> = proven
            .iter()
            .map(|(f, checksum)| {
                let what = Verification {
                    upload: Some(checksum.clone()),
                    reserve_local: true,
                };
                (f.rec.id, what)
            })
            .collect();
        let recorded = self
            .commit_then_read(ids, move |l| l.verified_many(items))
            .await;
        let (each, now) = match recorded {
            Ok(r) => r,
            Err(e) => {
                for (f, _) in &proven {
                    outcomes.push((f.rec.id, Err(Error::Local(e.to_string()))));
                }
                return Vec::new();
            }
        };
        let mut verified = Vec::new();
        for (((flight, _), outcome), rec) in proven.into_iter().zip(each).zip(now) {
            let id = flight.rec.id;
            match (outcome, rec) {
                (Ok(reserved), Some(rec)) => {
                    metrics::inc(&self.metrics.verifications);
                    metrics::add(&self.metrics.bytes_in, rec.identity.size);
                    let key = rec.object_key.clone().unwrap_or_default();
                    if let Err(e) = self.mirror_hold(id, &key, &reserved).await {
                        outcomes.push((id, Err(e)));
                        continue;
                    }
                    verified.push((rec, reserved));
                }
                (Err(e), _) => outcomes.push((id, Err(e.into()))),
                (Ok(_), None) => outcomes.push((
                    id,
                    Err(Error::Local(format!(
                        "recording {id} vanished from the ledger"
                    ))),
                )),
            }
        }
        verified
    }

    /// Runs a batched `commit` and reads recordings `ids` back as they now
    /// are, in one trip to the ledger: each one's outcome, and each one.
    async fn commit_then_read<T: Send + 'static>(
        &self,
        ids: Vec<i64>,
        commit: impl FnOnce(&Ledger) -> Vec<T> + Send + 'static,
    ) -> Result<(Vec<T>, Vec<Option<Recording>>), Error> {
        self.ledger
            .call(move |l| {
                let each = commit(l);
                Ok::<_, Error>((each, l.recordings(&ids)?))
            })
            .await
    }

    /// Removes the verified recordings' local copies (their deletes were
    /// reserved in the `verified` commit) and records them in one commit.
    async fn delete_batch(&self, verified: Vec<(Recording, Reserved)>, outcomes: &mut Outcomes) {
        let recs: Vec<Recording> = verified.iter().map(|(r, _)| r.clone()).collect();
        let (actor, dirs) = (self.actor.clone(), self.config.spool.dirs.clone());
        let items: Vec<(Recording, Option<Reserved>)> = verified
            .into_iter()
            .map(|(rec, reserved)| (rec, Some(reserved)))
            .collect();
        let removals = self
            .ledger
            .call(move |l| Ok::<_, Error>(local_removals(l, items, &dirs, &actor)))
            .await;
        match removals {
            Ok(each) => {
                for (rec, removal) in recs.iter().zip(each) {
                    outcomes.push((rec.id, removal.and_then(|r| removal_done(rec, r))));
                }
            }
            Err(e) => {
                for rec in &recs {
                    outcomes.push((rec.id, Err(Error::Local(e.to_string()))));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
