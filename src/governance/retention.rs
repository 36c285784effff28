//! Retention: the sweep that deletes what the policy says is due — objects
//! in DeleteObjects batches (every object a recording ever had, every
//! version of them on a versioned bucket: `governance::copies`),
//! then local copies, then one ledger transaction
//! recording each deletion with its audit entry. Which recordings are due is
//! the ledger's selection (`ledger::retention`); a recording under a legal
//! hold is never deleted.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::{Config, RetentionPolicy};
use crate::error::Error;
use crate::governance::audit::note_policy;
use crate::governance::copies;
use crate::governance::gate::DeletionGate;
use crate::ledger::Ledger;
use crate::ledger::audit::{Action, Actor, NewEntry};
use crate::ledger::lock::InstanceLock;
use crate::ledger::reservations::Deletion;
use crate::ledger::retention::{Due, DueCursor};
use crate::recording::Recording;
use crate::recording::key::display_name;
use crate::spool::remove_local_copy;
use crate::store::{self, Purged, Store, StoreError};
use crate::units::now_secs;

/// Everything a sweep needs besides the time.
pub struct Sweep<'a> {
    pub ledger: &'a Arc<Ledger>,
    /// `None` without a configured store: only never-uploaded local copies can go.
    pub store: Option<&'a dyn Store>,
    pub policy: &'a RetentionPolicy,
    pub spool_dirs: &'a [PathBuf],
    pub staging: &'a Path,
    /// This host's name: an object under a key chosen for a recording is
    /// deleted only if its metadata names this host (`governance::copies`).
    pub host: &'a str,
    /// The playback server's cache directory (`[serve] cache_dir`), if any.
    pub playback_cache: Option<&'a Path>,
    pub actor: &'a Actor,
    /// Recordings an archive worker is busy with right now: left for next time.
    pub skip: &'a HashSet<i64>,
    /// Stop after this many batches (the daemon comes back soon); `usize::MAX` for all.
    pub max_batches: usize,
    /// Checked between batches: true stops the sweep once the batch under
    /// way is deleted and recorded (shutdown). Never stops a batch midway.
    pub stop: &'a (dyn Fn() -> bool + Sync),
    /// Called after each batch (the daemon's watchdog ping).
    pub progress: &'a (dyn Fn() + Sync),
    /// With `[fleet]`: the shared database, which must reserve each
    /// deletion first (its holds cover every box). `None`: one box.
    pub gate: Option<&'a dyn DeletionGate>,
}

/// What a sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub deleted: u64,
    /// Object bytes removed from the store.
    pub object_bytes: u64,
    /// Local copies removed (never-uploaded or not-yet-removed ones).
    pub local_removed: u64,
    /// Due but under a legal hold: kept.
    pub held: u64,
    /// Due but never archived: kept until archived (unless
    /// `[retention] delete_unarchived`).
    pub unarchived: u64,
    /// Due but not deleted this time (store refused, local file undeletable).
    pub failed: u64,
    /// Deleted per campaign (`-` for none).
    pub by_campaign: BTreeMap<String, u64>,
    /// More due recordings are waiting (`max_batches` reached).
    pub more: bool,
    /// Why due recordings were kept because the fleet's database could not
    /// check its holds (`None`: it could, or there is no fleet).
    pub gate_closed: Option<String>,
}

impl Sweep<'_> {
    /// Deletes what is due at `now`, batch by batch — after finishing any
    /// deletion an interrupted run had reserved.
    pub async fn run(&self, now: i64) -> Result<SweepReport, Error> {
        let mut report = SweepReport::default();
        self.finish_interrupted(now, &mut report).await?;
        let mut cursor = DueCursor::default();
        for _ in 0..self.max_batches {
            if (self.stop)() {
                report.more = true;
                return Ok(report);
            }
            let policy = self.policy.clone();
            let (due, next) = self
                .ledger
                .call(move |l| {
                    let due = l.next_due_page(&policy, now, None, &mut cursor)?;
                    Ok::<_, Error>((due, cursor))
                })
                .await?;
            cursor = next;
            if due.is_empty() {
                return Ok(report);
            }
            let (held, due): (Vec<_>, Vec<_>) = due.into_iter().partition(|d| d.held);
            report.held += held.len() as u64;
            // Nothing is deleted without an archived copy unless the
            // operator asked for exactly that.
            let (due, unarchived): (Vec<_>, Vec<_>) = due
                .into_iter()
                .partition(|d| d.archived || self.policy.delete_unarchived);
            report.unarchived += unarchived.len() as u64;
            // An erasure under way deletes it anyway (and keeps it reserved).
            let due: Vec<Due> = due
                .into_iter()
                .filter(|d| !self.skip.contains(&d.rec.id) && d.rec.erasure.is_none())
                .collect();
            if !due.is_empty() {
                self.delete_batch(now, due, &mut report).await?;
            }
            (self.progress)();
        }
        report.more = true;
        Ok(report)
    }

    /// Reserves `due` (the holds are checked in the same transaction, so a
    /// hold committed before this still wins), then deletes what it reserved.
    async fn delete_batch(
        &self,
        now: i64,
        due: Vec<Due>,
        report: &mut SweepReport,
    ) -> Result<(), Error> {
        let mut ids: Vec<i64> = due.iter().map(|d| d.rec.id).collect();
        if let Some(gate) = self.gate {
            let recs: Vec<Recording> = due.iter().map(|d| d.rec.clone()).collect();
            match gate.reserve(Deletion::Retention, &recs, now).await {
                Ok(shared) => ids.retain(|id| shared.contains(id)),
                Err(e) => {
                    // The fleet's holds cannot be checked: nothing goes.
                    report.held += due.len() as u64;
                    report.gate_closed = Some(e.to_string());
                    return Ok(());
                }
            }
        }
        let asked = ids.clone();
        let reserved = self
            .ledger
            .call(move |l| l.reserve_for_retention(&ids, now))
            .await?;
        if let Some(gate) = self.gate {
            let dropped: Vec<i64> = asked
                .into_iter()
                .filter(|id| !reserved.contains(id))
                .collect();
            if !dropped.is_empty() {
                gate.release(&dropped).await;
            }
        }
        let (due, kept): (Vec<Due>, Vec<Due>) =
            due.into_iter().partition(|d| reserved.contains(&d.rec.id));
        report.held += kept.len() as u64;
        self.delete_reserved(now, due, report).await
    }

    /// Finishes deletions a run interrupted (kill, power loss) had reserved:
    /// a reservation is a commitment, made before any later hold.
    async fn finish_interrupted(&self, now: i64, report: &mut SweepReport) -> Result<(), Error> {
        let reserved = self
            .ledger
            .call(|l| l.reserved(Deletion::Retention))
            .await?;
        if reserved.is_empty() {
            return Ok(());
        }
        tracing::info!(
            recordings = reserved.len(),
            "finishing retention deletions an interrupted run had started"
        );
        let due = reserved
            .into_iter()
            .map(|rec| Due {
                due_at: now,
                rule: format!(
                    "{} (resumed)",
                    self.policy.rule_for(rec.campaign.as_deref())
                ),
                held: false,
                archived: true,
                rec,
            })
            .collect();
        self.delete_reserved(now, due, report).await
    }

    /// Deletes reserved recordings: objects first (a recording is only
    /// marked deleted once its object is gone), then local copies, then one
    /// ledger transaction recording them. What could not be deleted this time
    /// has its reservation released.
    async fn delete_reserved(
        &self,
        now: i64,
        due: Vec<Due>,
        report: &mut SweepReport,
    ) -> Result<(), Error> {
        let recs: Vec<&Recording> = due.iter().map(|d| &d.rec).collect();
        let remote = copies::purge(self.ledger, self.store, self.host, &recs).await?;
        let mut done = Vec::new();
        let mut undone = Vec::new();
        for d in due {
            let objects = match remote.get(&d.rec.id).cloned().flatten() {
                None => Ok(()),
                Some(result) => result.and_then(all_gone),
            };
            let local = match objects {
                Ok(()) => self.remove_local(&d.rec).await,
                Err(e) => Err(format!("could not delete the object: {e}")),
            };
            match local {
                Ok(local) => done.push((d, local)),
                Err(e) => {
                    tracing::warn!(recording = %display_name(&d.rec.name), "retention {e}");
                    report.failed += 1;
                    undone.push(d.rec.id);
                }
            }
        }
        if !undone.is_empty() {
            if let Some(gate) = self.gate {
                gate.release(&undone).await;
            }
            self.ledger
                .call(move |l| l.release_reservations(&undone))
                .await?;
        }
        let actor = self.actor.clone();
        let (done, recorded) = self
            .ledger
            .call(move |l| {
                let recorded = l.record_retention_deletes(now, &actor, &done)?;
                Ok::<_, Error>((done, recorded))
            })
            .await?;
        for (d, local) in done.iter().filter(|(d, _)| recorded.contains(&d.rec.id)) {
            let r = &d.rec;
            report.deleted += 1;
            report.object_bytes += r.object_size.unwrap_or(0) * u64::from(r.may_be_stored());
            report.local_removed += u64::from(local.is_some());
            *report
                .by_campaign
                .entry(r.campaign.clone().unwrap_or_else(|| "-".to_string()))
                .or_default() += 1;
        }
        Ok(())
    }

    /// Removes the local copy (and the files recvault kept of it beside the
    /// spool: staged object, temp files, playback copy) if the ledger says
    /// there is one. Returns what happened to it, `None` if there was none.
    async fn remove_local(&self, rec: &Recording) -> Result<Option<&'static str>, String> {
        let cannot = |e: String| format!("could not delete the local copy: {e}");
        let (staging, cache) = (self.staging, self.playback_cache);
        copies::remove_files_beside(staging, cache, rec.id).map_err(cannot)?;
        if !rec.state.is_local() {
            return Ok(None);
        }
        let (dirs, path, identity) = (self.spool_dirs.to_vec(), rec.path.clone(), rec.identity);
        tokio::task::spawn_blocking(move || remove_local_copy(&dirs, &path, identity))
            .await
            .map_err(|e| cannot(e.to_string()))?
            .map(Some)
            .map_err(cannot)
    }
}

/// A purge that left versions behind (Object Lock) did not delete the object.
fn all_gone(purged: Purged) -> Result<(), StoreError> {
    match purged.locked.first() {
        None => Ok(()),
        Some(locked) => Err(StoreError::Permanent(locked.to_string())),
    }
}

/// `recvault retention run`: one full sweep now, with the instance lock held
/// so no archive worker races it. Audited as an operator action.
/// With `[fleet]`, `gate` is the fleet's database: its holds and its policy.
pub async fn sweep_now(
    config: &Config,
    actor: &Actor,
    gate: Option<&dyn DeletionGate>,
) -> Result<SweepReport, Error> {
    let now = now_secs();
    let _lock = InstanceLock::acquire(&config.ledger.path).map_err(|source| Error::Busy {
        source,
        hint: "the daemon sweeps every [retention] sweep_every by itself",
    })?;
    let ledger = Arc::new(Ledger::open(&config.ledger.path)?);
    ledger.attribute_pending(&config.naming)?;
    note_policy(&ledger, config, actor, now)?;
    let store = match &config.store {
        Some(c) => Some(store::open(c).await?),
        None => None,
    };
    let policy = match gate {
        None => config.retention.clone(),
        Some(g) => g.policy(&config.retention).ok_or_else(|| Error::Database {
            message: "the fleet's retention policy cannot be read now; nothing was deleted"
                .to_string(),
            retryable: true,
        })?,
    };
    let report = Sweep {
        ledger: &ledger,
        store: store.as_deref(),
        policy: &policy,
        spool_dirs: &config.spool.dirs,
        staging: &config.spool.staging,
        host: &config.daemon.host,
        playback_cache: config.serve.as_ref().map(|s| s.cache_dir.as_path()),
        actor,
        skip: &HashSet::new(),
        max_batches: usize::MAX,
        stop: &|| false,
        progress: &|| {},
        gate,
    }
    .run(now)
    .await?;
    ledger.audit_record(
        actor,
        now,
        &NewEntry {
            action: Action::RetentionRun,
            case_id: None,
            subject: &format!(
                "sweep: {} deleted, {} held, {} failed",
                report.deleted, report.held, report.failed
            ),
            reason: "operator ran `recvault retention run`",
            recording_id: None,
        },
    )?;
    Ok(report)
}
