//! Carrying erasures out: every recording reserved for erasure (by any
//! request, confirmed earlier — by this process, another one that was
//! killed, or VICIdial's queue) loses its staged object and the other
//! files recvault kept of it (`governance::copies`), its local file
//! (removed through `spool::erase_local_copy`: also when it changed since
//! it was taken in) and every version of every object it ever had in the
//! store; then one ledger
//! transaction records it erased. What Object Lock keeps waits for its date
//! (the daemon comes back then); what failed stays reserved and is tried
//! again. Each step is idempotent, so a run cut short by `kill -9` is simply
//! run again.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::Error;
use crate::governance::copies;
use crate::governance::gate::DeletionGate;
use crate::ledger::Ledger;
use crate::ledger::audit::Actor;
use crate::ledger::erasure::{Outcome, Recorded};
use crate::ledger::reservations::Deletion;
use crate::recording::Recording;
use crate::recording::pseudonym::{PseudonymKey, is_pseudonym};
use crate::spool::{REPLACED, erase_local_copy};
use crate::store::{Purged, Store, StoreError};

/// Recordings erased per ledger transaction.
const BATCH: usize = 100;

/// What a recording without a local copy to remove reports.
const NO_LOCAL_COPY: &str = "none";

/// A legal hold on a stored version has no date: look again after this long.
const LEGAL_HOLD_RECHECK: i64 = 86_400;

/// Everything an erasure run needs.
pub struct Eraser<'a> {
    pub ledger: &'a Arc<Ledger>,
    /// `None` without a configured store: stored objects cannot be erased.
    pub store: Option<&'a dyn Store>,
    pub spool_dirs: &'a [PathBuf],
    pub staging: &'a Path,
    /// This host's name (`[daemon] host`): an object under a key chosen for
    /// a recording is deleted only if its metadata names this host.
    pub host: &'a str,
    /// The playback server's cache of decoded recordings (`[serve] cache_dir`),
    /// where a recording played since it was archived has a copy.
    pub playback_cache: Option<&'a Path>,
    pub key: &'a PseudonymKey,
    pub actor: &'a Actor,
    /// Recordings an archive worker is busy with: left for the next run.
    pub skip: &'a HashSet<i64>,
    /// With `[fleet]`: the shared database, which must reserve each erasure
    /// in the transaction that checks the fleet's holds. `None`: one box.
    pub gate: Option<&'a dyn DeletionGate>,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EraseReport {
    pub recorded: Recorded,
    /// Original bytes of the recordings erased.
    pub bytes: u64,
    /// Object versions and delete markers removed by id (versioned buckets).
    pub versions: u64,
    /// Recordings waiting for Object Lock, and until when.
    pub waiting: Vec<(i64, i64)>,
    /// Recordings not erased this time, and why.
    pub failed: Vec<(i64, String)>,
    /// Recordings a fleet hold keeps for now (their erasure stays open).
    pub held: u64,
}

impl Eraser<'_> {
    /// Erases every recording whose erasure is due at `now`, batch by batch.
    pub async fn run(&self, now: i64) -> Result<EraseReport, Error> {
        let mut report = EraseReport::default();
        let mut after = 0;
        loop {
            let due = self
                .ledger
                .call(move |l| l.due_erasures(now, after, BATCH))
                .await?;
            let Some(last) = due.last() else {
                return Ok(report);
            };
            after = last.id;
            let mut due: Vec<Recording> = due
                .into_iter()
                .filter(|r| !self.skip.contains(&r.id))
                .collect();
            if let (Some(gate), false) = (self.gate, due.is_empty()) {
                // Held in the fleet, or the fleet cannot say: kept, and
                // still reserved here (an erasure is a commitment).
                let shared = gate.reserve(Deletion::Erasure, &due, now).await?;
                let before = due.len();
                due.retain(|r| shared.contains(&r.id));
                report.held += (before - due.len()) as u64;
            }
            if !due.is_empty() {
                self.batch(now, due, &mut report).await?;
            }
        }
    }

    /// Erases one batch: local copies, then stored objects (every key the
    /// recording ever had), then the ledger.
    async fn batch(
        &self,
        now: i64,
        due: Vec<Recording>,
        report: &mut EraseReport,
    ) -> Result<(), Error> {
        let local = self.remove_local(&due).await?;
        let recs: Vec<&Recording> = due.iter().collect();
        let stored = copies::purge(self.ledger, self.store, self.host, &recs).await?;
        let mut outcomes = Vec::with_capacity(due.len());
        for (rec, local) in due.into_iter().zip(local) {
            let object = stored.get(&rec.id).cloned().flatten();
            if let Some(Ok(p)) = &object {
                report.versions += p.versions;
            }
            let outcome = self.outcome(&rec, local, object, now);
            match &outcome {
                Outcome::Erased { .. } => {
                    report.bytes += rec.identity.size;
                }
                Outcome::Waiting { until, .. } => report.waiting.push((rec.id, *until)),
                Outcome::Failed { why } => report.failed.push((rec.id, why.clone())),
            }
            outcomes.push((rec, outcome));
        }
        let (actor, ledger) = (self.actor.clone(), self.ledger.clone());
        let recorded = ledger
            .call(move |l| l.record_erasures(now, &actor, &outcomes))
            .await?;
        add(&mut report.recorded, &recorded);
        Ok(())
    }

    /// What became of one recording, from what happened to its local copy
    /// and to its object (`None`: it has none).
    fn outcome(
        &self,
        rec: &Recording,
        local: Result<&'static str, String>,
        object: Option<Result<Purged, StoreError>>,
        now: i64,
    ) -> Outcome {
        let local = match local {
            // Not a file: not the call, and not ours to delete. The request
            // stays open until someone looks (never reported erased).
            Ok(REPLACED) => {
                return Outcome::Failed {
                    why: format!(
                        "something other than a file (a link or a folder) has the recording's name at {}; \
                         left alone: remove it, then run the erasure again",
                        rec.path.display()
                    ),
                };
            }
            Ok(l) => l,
            Err(why) => return Outcome::Failed { why },
        };
        let versions = match object {
            None => None,
            Some(Err(e)) => {
                return Outcome::Failed {
                    why: format!("the stored object: {e}"),
                };
            }
            Some(Ok(p)) if !p.is_complete() => {
                let until = p
                    .locked
                    .iter()
                    .map(|l| l.until.unwrap_or(now + LEGAL_HOLD_RECHECK))
                    .max()
                    .unwrap_or(now);
                let why = p
                    .locked
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ");
                return Outcome::Waiting {
                    until,
                    local_removed: true,
                    why,
                };
            }
            Some(Ok(p)) => Some(p.versions),
        };
        let what = match versions {
            Some(0) => format!("stored object deleted; local copy: {local}"),
            Some(n) => format!("{n} stored versions deleted; local copy: {local}"),
            None => format!("nothing stored; local copy: {local}"),
        };
        Outcome::Erased {
            replacements: self.key.replacements(rec),
            what,
        }
    }

    /// Removes each recording's files beside the spool (staged object,
    /// temp files, playback copy) and its local copy, where the ledger says
    /// there may be one — the file at its path even if it changed since it
    /// was taken in (`spool::erase_local_copy`). Per recording: what
    /// happened, or why not.
    async fn remove_local(
        &self,
        due: &[Recording],
    ) -> Result<Vec<Result<&'static str, String>>, Error> {
        let items: Vec<(i64, bool, PathBuf, _)> = due
            .iter()
            .map(|r| {
                (
                    r.id,
                    r.state.is_local() || r.step().is_local(),
                    r.path.clone(),
                    r.identity,
                )
            })
            .collect();
        let (dirs, staging) = (self.spool_dirs.to_vec(), self.staging.to_path_buf());
        let cache = self.playback_cache.map(Path::to_path_buf);
        tokio::task::spawn_blocking(move || {
            items
                .into_iter()
                .map(|(id, local, path, identity)| {
                    copies::remove_files_beside(&staging, cache.as_deref(), id)?;
                    if !local
                        || is_pseudonym(
                            path.file_name()
                                .map(|n| n.as_encoded_bytes())
                                .unwrap_or(b""),
                        )
                    {
                        return Ok(NO_LOCAL_COPY);
                    }
                    erase_local_copy(&dirs, &path, identity)
                })
                .collect()
        })
        .await
        .map_err(|e| Error::Local(format!("erasure task failed: {e}")))
    }
}

fn add(total: &mut Recorded, more: &Recorded) {
    total.erased += more.erased;
    total.waiting += more.waiting;
    total.failed += more.failed;
    total.redacted += more.redacted;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::governance::requests::erase::request_confirmed;
    use crate::ledger::CompressedFacts;
    use crate::ledger::fixtures::{self, spool_file};
    use crate::ledger::holds::Selector;
    use crate::recording::State;
    use crate::recording::name::Attribution;
    use crate::store::LocalStore;

    #[tokio::test]
    async fn what_cannot_be_erased_now_stays_reserved_and_is_erased_later() {
        let (dir, ledger) = fixtures::ledger();
        let ledger = Arc::new(ledger);
        let call = Attribution {
            phone: Some("5551234567".into()),
            ..Attribution::default()
        };
        let file = spool_file("/nowhere/20260301-101500_5551234567-all.wav", 0);
        let id = fixtures::insert(&ledger, &file, &call, State::Settled);
        let facts = CompressedFacts {
            sha256: hex::encode([1; 32]),
            object_key: "k/20260301-101500_5551234567-all.wav.zst".into(),
            object_size: 1,
            object_sha256: hex::encode([2; 32]),
            codec: "zstd".into(),
        };
        ledger.compressed(id, &facts).unwrap();
        let (key, actor) = (
            PseudonymKey::new([5; 32]),
            Actor {
                uid: 0,
                user: "root".into(),
            },
        );
        let plan = request_confirmed(
            &ledger,
            &key,
            "Q-1",
            &[Selector::Recording(id.to_string())],
            &actor,
            1,
        )
        .unwrap();
        assert_eq!(plan.totals().0, 1);
        let staging = dir.path().join("staging");
        let eraser = |store: Option<&'static dyn Store>| Eraser {
            ledger: &ledger,
            store,
            spool_dirs: &[],
            staging: &staging,
            host: "h",
            playback_cache: None,
            key: &key,
            actor: &actor,
            skip: Box::leak(Box::default()),
            gate: None,
        };
        // No store to delete the object from: not erased, still reserved.
        let report = eraser(None).run(2).await.unwrap();
        assert_eq!(report.failed.len(), 1, "{report:?}");
        let rec = ledger.recording(id).unwrap();
        assert!(!rec.is_erased() && rec.erasure_requested());
        assert!(rec.last_error.unwrap().contains("no store"));
        // A store that answers: erased.
        let store: &'static LocalStore =
            Box::leak(Box::new(LocalStore::new(dir.path().join("store"))));
        let report = eraser(Some(store)).run(3).await.unwrap();
        assert_eq!(
            (report.recorded.erased, report.failed.len()),
            (1, 0),
            "{report:?}"
        );
        let rec = ledger.recording(id).unwrap();
        assert!(rec.is_erased() && rec.last_error.is_none());
        assert!(ledger.due_erasures(i64::MAX, 0, 10).unwrap().is_empty());
    }
}
