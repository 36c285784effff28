//! Retention: which recordings are due (a pure selection over the ledger
//! with `now` passed in, paged through an index so a million-row ledger is
//! never loaded) and the sweep that deletes them — objects in DeleteObjects
//! batches, local copies, then one ledger transaction with an audit entry
//! per recording. A recording under a legal hold is never deleted.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use rusqlite::{ToSql, params_from_iter};

use crate::archive::remove_local_copy;
use crate::audit::{self, Action, Actor, NewEntry};
use crate::config::Config;
use crate::hold::held_sql;
use crate::keys::display_name;
use crate::ledger::{Ledger, LedgerError, columns_of_r, insert_event, recording_from_row};
use crate::lock::{InstanceLock, LockError};
use crate::policy::RetentionPolicy;
use crate::recording::{Recording, State};
use crate::report::local_time;
use crate::store::{self, DELETE_BATCH, Store, StoreError};

/// Why a sweep stopped early.
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// `retention run` while the daemon runs: it sweeps on its own schedule.
    #[error("{0}; the daemon sweeps every [retention] sweep_every by itself")]
    Lock(#[from] LockError),
    /// The store refused or could not be reached; nothing in this batch was deleted.
    #[error("retention: {0}")]
    Store(#[from] StoreError),
}

/// A recording retention would delete (or would, but for a hold).
#[derive(Debug, Clone)]
pub struct Due {
    pub rec: Recording,
    /// When it became (or becomes) due: call time + the rule's period.
    pub due_at: i64,
    /// The rule, as its config key says it (`retention.campaigns.COLLECT = 90d`).
    pub rule: String,
    /// Under an active legal hold: kept.
    pub held: bool,
}

/// Recordings of one rule: a campaign with its own period, or the default.
struct Group {
    filter: String,
    args: Vec<String>,
    keep: i64,
    rule: String,
}

fn groups(policy: &RetentionPolicy, only: Option<&str>) -> Vec<Group> {
    let mut out = Vec::new();
    for (campaign, keep) in &policy.campaigns {
        if only.is_some_and(|o| o != campaign) {
            continue;
        }
        if let Some(keep) = keep.secs() {
            out.push(Group {
                filter: "r.campaign = ?".to_string(),
                args: vec![campaign.clone()],
                keep,
                rule: policy.rule_for(Some(campaign)).to_string(),
            });
        }
    }
    let Some(keep) = policy.default.secs() else {
        return out;
    };
    let rule = policy.rule_for(None).to_string();
    match only {
        Some(c) if policy.campaigns.contains_key(c) => {}
        Some(c) => out.push(Group {
            filter: "r.campaign = ?".to_string(),
            args: vec![c.to_string()],
            keep,
            rule,
        }),
        None => {
            let names: Vec<String> = policy.campaigns.keys().cloned().collect();
            let filter = if names.is_empty() {
                "1".to_string()
            } else {
                format!(
                    "(r.campaign IS NULL OR r.campaign NOT IN ({}))",
                    vec!["?"; names.len()].join(", ")
                )
            };
            out.push(Group {
                filter,
                args: names,
                keep,
                rule,
            });
        }
    }
    out
}

/// One page of a group's due recordings after `after` (retain_from, id),
/// oldest first: `cols` (read by `map`), then retain_from, held and id. The
/// state test is the retention indexes' own condition.
fn page_of<T>(
    ledger: &Ledger,
    group: &Group,
    now: i64,
    after: (i64, i64),
    limit: usize,
    (cols, ncols): (&str, usize),
    map: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<(T, i64, bool, i64)>, LedgerError> {
    let sql = format!(
        "SELECT {cols}, r.retain_from, {held}, r.id FROM recordings r \
         WHERE r.state NOT IN ('seen', 'remote_deleted', 'gone', 'quarantined') \
           AND {filter} AND r.retain_from <= ? AND (r.retain_from, r.id) > (?, ?) \
         ORDER BY r.retain_from, r.id LIMIT ?",
        held = held_sql(),
        filter = group.filter,
    );
    let cutoff = now.saturating_sub(group.keep);
    let mut args: Vec<&dyn ToSql> = group.args.iter().map(|a| a as &dyn ToSql).collect();
    let limit = limit as i64;
    args.extend([&cutoff as &dyn ToSql, &after.0, &after.1, &limit]);
    ledger.read(|conn| {
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params_from_iter(args), |row| {
            Ok((
                map(row)?,
                row.get(ncols)?,
                row.get(ncols + 1)?,
                row.get(ncols + 2)?,
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    })
}

/// One page of whole due recordings (what a sweep needs to delete them).
fn page(
    ledger: &Ledger,
    group: &Group,
    now: i64,
    after: (i64, i64),
    limit: usize,
) -> Result<Vec<Due>, LedgerError> {
    let rows = page_of(
        ledger,
        group,
        now,
        after,
        limit,
        (&columns_of_r(), 27),
        recording_from_row,
    )?;
    Ok(rows
        .into_iter()
        .map(|(rec, retain_from, held, _)| Due {
            rec,
            due_at: retain_from.saturating_add(group.keep),
            rule: group.rule.clone(),
            held,
        })
        .collect())
}

/// Visits every recording due at `now` under `policy` (held ones included,
/// flagged), rule by rule, oldest first, a page at a time. `only` limits it
/// to one campaign. Pure: deletes nothing, reads the clock nowhere.
pub fn for_each_due(
    ledger: &Ledger,
    policy: &RetentionPolicy,
    now: i64,
    only: Option<&str>,
    mut visit: impl FnMut(&Due) -> bool,
) -> Result<(), LedgerError> {
    for group in groups(policy, only) {
        let mut after = (i64::MIN, i64::MIN);
        loop {
            let due = page(ledger, &group, now, after, DELETE_BATCH)?;
            let Some(last) = due.last() else { break };
            after = (last.due_at - group.keep, last.rec.id);
            for d in &due {
                if !visit(d) {
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

/// What `retention plan` shows of a due recording: only the columns it
/// prints, so listing hundreds of thousands stays quick.
#[derive(Debug, Clone)]
pub struct DueSummary<'a> {
    pub id: i64,
    pub name: Vec<u8>,
    pub campaign: Option<String>,
    /// When the call was, or the mtime where the name gave no call time.
    pub time: i64,
    pub call_time_known: bool,
    /// Bytes in the store (or on disk if never uploaded).
    pub bytes: u64,
    pub due_at: i64,
    pub rule: &'a str,
    pub held: bool,
}

/// Like [`for_each_due`], visiting [`DueSummary`]s (for `retention plan`).
pub fn for_each_due_summary(
    ledger: &Ledger,
    policy: &RetentionPolicy,
    now: i64,
    only: Option<&str>,
    mut visit: impl FnMut(&DueSummary<'_>) -> bool,
) -> Result<(), LedgerError> {
    let cols = "r.name, r.campaign, r.call_time IS NOT NULL, COALESCE(r.object_size, r.size)";
    for group in groups(policy, only) {
        let mut after = (i64::MIN, i64::MIN);
        loop {
            let rows = page_of(ledger, &group, now, after, DELETE_BATCH, (cols, 4), |row| {
                Ok((
                    row.get::<_, Vec<u8>>(0)?,
                    row.get::<_, Option<String>>(1)?,
                    row.get::<_, bool>(2)?,
                    row.get::<_, i64>(3)?,
                ))
            })?;
            let Some(&(_, retain_from, _, id)) = rows.last() else {
                break;
            };
            after = (retain_from, id);
            for ((name, campaign, call_time_known, bytes), retain_from, held, id) in rows {
                let summary = DueSummary {
                    id,
                    name,
                    campaign,
                    time: retain_from,
                    call_time_known,
                    bytes: bytes.max(0) as u64,
                    due_at: retain_from.saturating_add(group.keep),
                    rule: &group.rule,
                    held,
                };
                if !visit(&summary) {
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

/// Everything a sweep needs besides the time.
pub struct Sweep<'a> {
    pub ledger: &'a Ledger,
    /// `None` without a configured store: only never-uploaded local copies can go.
    pub store: Option<&'a dyn Store>,
    pub policy: &'a RetentionPolicy,
    pub spool_dirs: &'a [PathBuf],
    pub staging: &'a Path,
    pub actor: &'a Actor,
    /// Recordings an archive worker is busy with right now: left for next time.
    pub skip: &'a HashSet<i64>,
    /// Stop after this many batches (the daemon comes back soon); `usize::MAX` for all.
    pub max_batches: usize,
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
    /// Due but not deleted this time (store refused, local file undeletable).
    pub failed: u64,
    /// Deleted per campaign (`-` for none).
    pub by_campaign: BTreeMap<String, u64>,
    /// More due recordings are waiting (`max_batches` reached).
    pub more: bool,
}

impl Sweep<'_> {
    /// Deletes what is due at `now`, batch by batch.
    pub async fn run(&self, now: i64) -> Result<SweepReport, RetentionError> {
        let mut report = SweepReport::default();
        let mut batches = 0;
        for group in groups(self.policy, None) {
            let mut after = (i64::MIN, i64::MIN);
            loop {
                if batches >= self.max_batches {
                    report.more = true;
                    return Ok(report);
                }
                let due = page(self.ledger, &group, now, after, DELETE_BATCH)?;
                let Some(last) = due.last() else { break };
                after = (last.due_at - group.keep, last.rec.id);
                let (held, due): (Vec<_>, Vec<_>) = due.into_iter().partition(|d| d.held);
                report.held += held.len() as u64;
                let due: Vec<Due> = due
                    .into_iter()
                    .filter(|d| !self.skip.contains(&d.rec.id))
                    .collect();
                if !due.is_empty() {
                    self.delete_batch(now, due, &mut report).await?;
                }
                batches += 1;
            }
        }
        Ok(report)
    }

    /// Ids among `ids` that an active hold covers now (checked again right
    /// before deleting: a hold placed since the selection still wins).
    fn held_now(&self, ids: &[i64]) -> Result<HashSet<i64>, LedgerError> {
        if ids.is_empty() {
            return Ok(HashSet::new());
        }
        let sql = format!(
            "SELECT r.id FROM recordings r WHERE r.id IN ({}) AND {}",
            vec!["?"; ids.len()].join(", "),
            held_sql()
        );
        self.ledger.read(|conn| {
            let mut stmt = conn.prepare(&sql)?;
            let rows = stmt.query_map(params_from_iter(ids), |r| r.get(0))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    async fn delete_batch(
        &self,
        now: i64,
        due: Vec<Due>,
        report: &mut SweepReport,
    ) -> Result<(), RetentionError> {
        let ids: Vec<i64> = due.iter().map(|d| d.rec.id).collect();
        let held = self.held_now(&ids)?;
        report.held += held.len() as u64;
        let due: Vec<Due> = due
            .into_iter()
            .filter(|d| !held.contains(&d.rec.id))
            .collect();
        // Objects first: a recording is only marked deleted once its object is gone.
        let keys: Vec<String> = due
            .iter()
            .filter(|d| may_have_object(&d.rec))
            .filter_map(|d| d.rec.object_key.clone())
            .collect();
        let mut remote: HashMap<String, Result<(), StoreError>> = HashMap::new();
        if !keys.is_empty() {
            match self.store {
                Some(store) => remote.extend(store.delete_many(&keys).await?),
                None => {
                    let e = StoreError::Permanent("no store is configured".to_string());
                    remote.extend(keys.into_iter().map(|k| (k, Err(e.clone()))));
                }
            }
        }
        let mut done = Vec::new();
        for d in due {
            let key_result = d
                .rec
                .object_key
                .as_ref()
                .and_then(|k| remote.get(k))
                .cloned()
                .unwrap_or(Ok(()));
            if let Err(e) = key_result {
                tracing::warn!(recording = %display_name(&d.rec.name), "retention could not delete the object: {e}");
                report.failed += 1;
                continue;
            }
            let local = match self.remove_local(&d.rec).await {
                Ok(local) => local,
                Err(e) => {
                    tracing::warn!(recording = %display_name(&d.rec.name), "retention could not delete the local copy: {e}");
                    report.failed += 1;
                    continue;
                }
            };
            done.push((d, local));
        }
        self.record(now, done, report)?;
        Ok(())
    }

    /// Removes the local copy (and any staged object) if the ledger says
    /// there is one. Returns what happened to it, `None` if there was none.
    async fn remove_local(&self, rec: &Recording) -> Result<Option<&'static str>, String> {
        let _ = std::fs::remove_file(self.staging.join(format!("{}.obj", rec.id)));
        if !rec.state.is_local() {
            return Ok(None);
        }
        let (dirs, path, identity) = (self.spool_dirs.to_vec(), rec.path.clone(), rec.identity);
        tokio::task::spawn_blocking(move || remove_local_copy(&dirs, &path, identity))
            .await
            .map_err(|e| e.to_string())?
            .map(Some)
    }

    /// One transaction: every deleted recording moves to `remote_deleted`
    /// with its rule and time, one event and one audit entry each.
    fn record(
        &self,
        now: i64,
        done: Vec<(Due, Option<&'static str>)>,
        report: &mut SweepReport,
    ) -> Result<(), LedgerError> {
        self.ledger.write(|tx| {
            for (d, local) in &done {
                let r = &d.rec;
                let changed = tx.execute(
                    "UPDATE recordings SET state = 'remote_deleted', deleted_at = ?2, deleted_by = ?3, \
                     updated_at = ?2, local_deleted_at = CASE WHEN ?4 THEN ?2 ELSE local_deleted_at END \
                     WHERE id = ?1 AND state = ?5",
                    rusqlite::params![r.id, now, d.rule, local.is_some(), r.state.as_str()],
                )?;
                if changed == 0 {
                    continue; // moved on meanwhile (vanished, changed): not ours to record
                }
                let what = match (may_have_object(r), local) {
                    (true, Some(l)) => format!("object and local copy deleted ({l})"),
                    (true, None) => "object deleted".to_string(),
                    (false, Some(l)) => format!("never uploaded; local copy deleted ({l})"),
                    (false, None) => "nothing stored".to_string(),
                };
                let detail = format!("retention: {}; {what}", d.rule);
                insert_event(tx, r.id, Some(r.state), State::RemoteDeleted, &detail, now)?;
                audit::append(
                    tx,
                    self.actor,
                    now,
                    &NewEntry {
                        action: Action::RetentionDelete,
                        case_id: None,
                        subject: &subject(r),
                        reason: &format!(
                            "{}: due {}; {what}",
                            d.rule,
                            local_time(d.due_at)
                        ),
                    },
                )?;
                report.deleted += 1;
                report.object_bytes += r.object_size.unwrap_or(0) * u64::from(may_have_object(r));
                report.local_removed += u64::from(local.is_some());
                *report
                    .by_campaign
                    .entry(r.campaign.clone().unwrap_or_else(|| "-".to_string()))
                    .or_default() += 1;
                tracing::debug!(recording = %display_name(&r.name), campaign = r.campaign.as_deref().unwrap_or("-"), rule = %d.rule, "deleted by retention");
            }
            Ok(())
        })
    }
}

/// `recvault retention run`: one full sweep now, with the instance lock held
/// so no archive worker races it. Audited as an operator action.
pub async fn sweep_now(
    config: &Config,
    actor: &Actor,
    now: i64,
) -> Result<SweepReport, RetentionError> {
    let _lock = InstanceLock::acquire(&config.ledger.path)?;
    let ledger = Ledger::open(&config.ledger.path)?;
    ledger.attribute_pending(&config.naming)?;
    note_policy(&ledger, config, actor, now)?;
    let store = match &config.store {
        Some(c) => Some(store::open(c).await?),
        None => None,
    };
    let report = Sweep {
        ledger: &ledger,
        store: store.as_deref(),
        policy: &config.retention,
        spool_dirs: &config.spool.dirs,
        staging: &config.spool.staging,
        actor,
        skip: &HashSet::new(),
        max_batches: usize::MAX,
    }
    .run(now)
    .await?;
    audit::record(
        &ledger,
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
        },
    )?;
    Ok(report)
}

/// Records the retention and naming policy in the audit trail if it differs
/// from the one last recorded (a config change that decides deletions).
pub fn note_policy(
    ledger: &Ledger,
    config: &Config,
    actor: &Actor,
    now: i64,
) -> Result<bool, LedgerError> {
    let current = format!(
        "retention: {}; {}",
        config.retention.summary(),
        config.naming.summary()
    );
    if audit::last_reason(ledger, Action::PolicyChange)?.as_deref() == Some(current.as_str()) {
        return Ok(false);
    }
    audit::record(
        ledger,
        actor,
        now,
        &NewEntry {
            action: Action::PolicyChange,
            case_id: None,
            subject: &format!("config {}", config.source.display()),
            reason: &current,
        },
    )?;
    tracing::info!(policy = %current, "retention policy in force");
    Ok(true)
}

/// How the audit trail names a recording.
pub fn subject(r: &Recording) -> String {
    format!(
        "recording {} `{}` (campaign {}, call {}, key {}, sha256 {})",
        r.id,
        display_name(&r.name),
        r.campaign.as_deref().unwrap_or("-"),
        local_time(r.time_secs()),
        r.object_key.as_deref().unwrap_or("-"),
        r.sha256.as_deref().unwrap_or("-"),
    )
}

/// True if an object may exist for this recording (compressed or later).
fn may_have_object(r: &Recording) -> bool {
    let state = match r.state {
        State::Failed => r.resume_state.unwrap_or(State::Seen),
        s => s,
    };
    r.object_key.is_some()
        && matches!(
            state,
            State::Compressed | State::Uploaded | State::Verified | State::LocalDeleted
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hold::{self, Selector};
    use crate::ledger::SpoolFile;
    use crate::naming::Attribution;
    use crate::policy::Keep;
    use crate::recording::FileIdentity;
    use std::time::Duration;

    const DAY: i64 = 86400;

    fn policy() -> RetentionPolicy {
        RetentionPolicy {
            default: Keep::parse("180d").unwrap(),
            campaigns: [
                ("COLLECT".to_string(), Keep::parse("90d").unwrap()),
                ("SALES".to_string(), Keep::Forever),
            ]
            .into(),
            sweep_every: Duration::from_secs(3600),
        }
    }

    fn insert(ledger: &Ledger, name: &str, campaign: Option<&str>, age_days: i64) -> i64 {
        let file = SpoolFile {
            path: PathBuf::from(format!("/s/{name}")),
            name: name.as_bytes().to_vec(),
            identity: FileIdentity {
                dev: 1,
                ino: 2,
                size: 3,
                mtime_ns: 20_000 * DAY * 1_000_000_000,
            },
        };
        let call = Attribution {
            matched: true,
            campaign: campaign.map(str::to_string),
            call_time: Some(20_000 * DAY - age_days * DAY),
            ..Attribution::default()
        };
        ledger.insert(&file, &call, State::Settled, "").unwrap()
    }

    fn due_names(ledger: &Ledger, now: i64, only: Option<&str>) -> Vec<(String, bool)> {
        let mut out = Vec::new();
        for_each_due(ledger, &policy(), now, only, |d| {
            out.push((String::from_utf8_lossy(&d.rec.name).into_owned(), d.held));
            true
        })
        .unwrap();
        out.sort();
        out
    }

    #[test]
    fn selection_follows_campaign_and_default_rules() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("l.sqlite3")).unwrap();
        insert(&ledger, "collect-old", Some("COLLECT"), 91);
        insert(&ledger, "collect-new", Some("COLLECT"), 89);
        insert(&ledger, "sales-ancient", Some("SALES"), 5000);
        insert(&ledger, "other-old", Some("OTHER"), 181);
        insert(&ledger, "other-new", Some("OTHER"), 179);
        insert(&ledger, "none-old", None, 200);
        let now = 20_000 * DAY;
        let f = |n: &str| (n.to_string(), false);
        assert_eq!(
            due_names(&ledger, now, None),
            [f("collect-old"), f("none-old"), f("other-old")]
        );
        assert_eq!(due_names(&ledger, now, Some("COLLECT")), [f("collect-old")]);
        assert_eq!(due_names(&ledger, now, Some("SALES")), []);
        // Looking ahead: two days on, the 89-day COLLECT call is due too.
        assert_eq!(
            due_names(&ledger, now + 2 * DAY, Some("COLLECT")),
            [f("collect-new"), f("collect-old")]
        );
        hold::add(
            &ledger,
            &Actor {
                uid: 0,
                user: "root".into(),
            },
            now,
            "C",
            "why",
            &[Selector::Campaign("OTHER".into())],
        )
        .unwrap();
        assert_eq!(
            due_names(&ledger, now, None),
            [f("collect-old"), f("none-old"), ("other-old".into(), true)]
        );
    }

    #[test]
    fn everything_forever_selects_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("l.sqlite3")).unwrap();
        insert(&ledger, "x", None, 10_000);
        let mut n = 0;
        for_each_due(
            &ledger,
            &RetentionPolicy::default(),
            i64::MAX / 2,
            None,
            |_| {
                n += 1;
                true
            },
        )
        .unwrap();
        assert_eq!(n, 0);
    }
}
