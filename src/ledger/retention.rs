//! The ledger's side of retention: which recordings are due (a pure
//! selection with `now` passed in, paged through the retention indexes so a
//! million-row ledger is never loaded), and recording the deletions of a
//! sweep. The sweep itself (store deletes, local copies) is
//! `governance::retention`.

use rusqlite::{ToSql, params_from_iter};

use super::audit::{self, Action, Actor, NewEntry};
use super::holds::HELD;
use super::rows::{COLUMN_COUNT, R_COLUMNS, from_row};
use super::transitions::apply;
use super::{Ledger, LedgerError};
use crate::config::RetentionPolicy;
use crate::recording::key::display_name;
use crate::recording::{Recording, State};
use crate::units::local_time;

/// How many recordings one page (and one DeleteObjects request) holds.
pub const PAGE: usize = 1000;

/// The states retention looks at: the predicate of the partial indexes
/// `recordings_retained_by_campaign` and `recordings_retained_by_time`, word for
/// word, so they are used (comparisons, not `NOT IN`: migration 0016 says why).
pub(super) const RETAINED: &str = "r.state <> 'seen' AND r.state <> 'remote_deleted' AND r.state <> 'gone' \
     AND r.state <> 'quarantined'";

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
    /// Its object was verified in the store once. A recording never archived
    /// is not deleted unless `[retention] delete_unarchived` says so.
    pub archived: bool,
}

/// Recordings of one rule: a campaign with its own period, or the default.
struct Group {
    filter: String,
    args: Vec<String>,
    keep: i64,
    rule: String,
    /// Seconds a recording still waiting for VICIdial's attribution is kept
    /// back (from when it was first seen).
    attribution_wait: Option<i64>,
}

fn groups(policy: &RetentionPolicy, only: Option<&str>) -> Vec<Group> {
    let wait = policy.attribution_wait.map(|w| w.as_secs() as i64);
    let mut out: Vec<Group> = groups_of(policy, only);
    for g in &mut out {
        g.attribution_wait = wait;
    }
    out
}

fn groups_of(policy: &RetentionPolicy, only: Option<&str>) -> Vec<Group> {
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
                attribution_wait: None,
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
            attribution_wait: None,
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
                attribution_wait: None,
            });
        }
    }
    out
}

/// One due recording of a page: what `map` read, and where it stands.
struct PageRow<T> {
    item: T,
    retain_from: i64,
    held: bool,
    archived: bool,
    id: i64,
}

/// One page of a group's due recordings after `after` (retain_from, id),
/// oldest first: `cols` (read by `map`), then retain_from, held, archived
/// and id. The state test is the retention indexes' own condition.
fn page_of<T>(
    ledger: &Ledger,
    group: &Group,
    now: i64,
    after: (i64, i64),
    limit: usize,
    (cols, ncols): (&str, usize),
    map: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<PageRow<T>>, LedgerError> {
    // A recording VICIdial's database has not attributed yet may turn out
    // to be another campaign's: kept back until `attribution_wait` passed.
    let waiting = match group.attribution_wait {
        Some(_) => {
            "AND NOT ((r.db_attribution IS NULL OR r.db_attribution IN ('missing', 'failed')) \
             AND r.first_seen > ?)"
        }
        None => "",
    };
    let sql = format!(
        "SELECT {cols}, r.retain_from, {held}, r.verified_at IS NOT NULL, r.id FROM recordings r \
         WHERE {RETAINED} AND {filter} {waiting} AND r.retain_from <= ? AND (r.retain_from, r.id) > (?, ?) \
         ORDER BY r.retain_from, r.id LIMIT ?",
        held = *HELD,
        filter = group.filter,
    );
    let cutoff = now.saturating_sub(group.keep);
    let wait_cutoff = now.saturating_sub(group.attribution_wait.unwrap_or(0));
    let mut args: Vec<&dyn ToSql> = group.args.iter().map(|a| a as &dyn ToSql).collect();
    if group.attribution_wait.is_some() {
        args.push(&wait_cutoff);
    }
    let limit = limit as i64;
    args.extend([&cutoff as &dyn ToSql, &after.0, &after.1, &limit]);
    ledger.read(|conn| {
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params_from_iter(args), |row| {
            Ok(PageRow {
                item: map(row)?,
                retain_from: row.get(ncols)?,
                held: row.get(ncols + 1)?,
                archived: row.get(ncols + 2)?,
                id: row.get(ncols + 3)?,
            })
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
        (&R_COLUMNS, COLUMN_COUNT),
        from_row,
    )?;
    Ok(rows
        .into_iter()
        .map(|row| Due {
            rec: row.item,
            due_at: row.retain_from.saturating_add(group.keep),
            rule: group.rule.clone(),
            held: row.held,
            archived: row.archived,
        })
        .collect())
}

/// Where a walk over due recordings has got to: the rule, and the last
/// (retain_from, id) seen in it.
#[derive(Debug, Clone, Copy)]
pub struct DueCursor {
    group: usize,
    after: (i64, i64),
}

impl Default for DueCursor {
    fn default() -> DueCursor {
        DueCursor {
            group: 0,
            after: (i64::MIN, i64::MIN),
        }
    }
}

impl Ledger {
    /// The next page of recordings due at `now` under `policy` (held ones
    /// included, flagged), rule by rule, oldest first; empty at the end.
    /// `only` limits it to one campaign. Pure: deletes nothing.
    pub fn next_due_page(
        &self,
        policy: &RetentionPolicy,
        now: i64,
        only: Option<&str>,
        cursor: &mut DueCursor,
    ) -> Result<Vec<Due>, LedgerError> {
        let groups = groups(policy, only);
        while let Some(group) = groups.get(cursor.group) {
            let due = page(self, group, now, cursor.after, PAGE)?;
            if let Some(last) = due.last() {
                cursor.after = (last.due_at - group.keep, last.rec.id);
                return Ok(due);
            }
            *cursor = DueCursor {
                group: cursor.group + 1,
                ..DueCursor::default()
            };
        }
        Ok(Vec::new())
    }

    /// Visits every recording due at `now` (see [`Ledger::next_due_page`])
    /// until `visit` returns false.
    pub fn for_each_due(
        &self,
        policy: &RetentionPolicy,
        now: i64,
        only: Option<&str>,
        mut visit: impl FnMut(&Due) -> bool,
    ) -> Result<(), LedgerError> {
        let mut cursor = DueCursor::default();
        loop {
            let due = self.next_due_page(policy, now, only, &mut cursor)?;
            if due.is_empty() {
                return Ok(());
            }
            if !due.iter().all(&mut visit) {
                return Ok(());
            }
        }
    }

    /// One transaction: every recording of `done` whose object (and local
    /// copy, where `local` says one was removed) retention deleted moves to
    /// `remote_deleted` with its rule and time, one event and one audit entry
    /// each. A recording that moved on meanwhile (vanished, changed) is not
    /// ours to record and is left out. Returns the ones recorded.
    pub fn record_retention_deletes(
        &self,
        now: i64,
        actor: &Actor,
        done: &[(Due, Option<&'static str>)],
    ) -> Result<Vec<i64>, LedgerError> {
        self.write(|tx| {
            let mut recorded = Vec::new();
            for (d, local) in done {
                let r = &d.rec;
                let what = match (r.may_be_stored(), local) {
                    (true, Some(l)) => format!("object and local copy deleted ({l})"),
                    (true, None) => "object deleted".to_string(),
                    (false, Some(l)) => format!("never uploaded; local copy deleted ({l})"),
                    (false, None) => "nothing stored".to_string(),
                };
                let detail = format!("retention: {}; {what}", d.rule);
                let mut sets: Vec<(&str, &dyn ToSql)> =
                    vec![("deleted_at", &now), ("deleted_by", &d.rule)];
                if local.is_some() {
                    sets.push(("local_deleted_at", &now));
                }
                match apply(tx, r.id, &[r.state], State::RemoteDeleted, &sets, &detail, now) {
                    Err(LedgerError::StateConflict { .. }) => continue,
                    other => other?,
                };
                super::object_keys::all_deleted(tx, r.id, now)?;
                let entry = NewEntry {
                    action: Action::RetentionDelete,
                    case_id: None,
                    subject: &audit::subject(r),
                    reason: &format!("{}: due {}; {what}", d.rule, local_time(d.due_at)),
                    recording_id: Some(r.id),
                };
                audit::append(tx, actor, now, &entry)?;
                tracing::debug!(recording = %display_name(&r.name), campaign = r.campaign.as_deref().unwrap_or("-"), rule = %d.rule, "deleted by retention");
                recorded.push(r.id);
            }
            Ok(recorded)
        })
    }
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
    /// See [`Due::archived`].
    pub archived: bool,
}

impl Ledger {
    /// Like [`Ledger::for_each_due`], visiting [`DueSummary`]s (for `retention plan`).
    pub fn for_each_due_summary(
        &self,
        policy: &RetentionPolicy,
        now: i64,
        only: Option<&str>,
        mut visit: impl FnMut(&DueSummary<'_>) -> bool,
    ) -> Result<(), LedgerError> {
        let cols = "r.name, r.campaign, r.call_time IS NOT NULL, COALESCE(r.object_size, r.size)";
        for group in groups(policy, only) {
            let mut after = (i64::MIN, i64::MIN);
            loop {
                let rows = page_of(self, &group, now, after, PAGE, (cols, 4), |row| {
                    Ok((
                        row.get::<_, Vec<u8>>(0)?,
                        row.get::<_, Option<String>>(1)?,
                        row.get::<_, bool>(2)?,
                        row.get::<_, i64>(3)?,
                    ))
                })?;
                let Some(last) = rows.last() else {
                    break;
                };
                after = (last.retain_from, last.id);
                for row in rows {
                    let (name, campaign, call_time_known, bytes) = row.item;
                    let summary = DueSummary {
                        id: row.id,
                        name,
                        campaign,
                        time: row.retain_from,
                        call_time_known,
                        bytes: bytes.max(0) as u64,
                        due_at: row.retain_from.saturating_add(group.keep),
                        rule: &group.rule,
                        held: row.held,
                        archived: row.archived,
                    };
                    if !visit(&summary) {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Keep;
    use crate::ledger::fixtures::{self, spool_file};
    use crate::ledger::holds::Selector;
    use crate::recording::name::Attribution;
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
            delete_unarchived: false,
            attribution_wait: None,
        }
    }

    fn insert(ledger: &Ledger, name: &str, campaign: Option<&str>, age_days: i64) -> i64 {
        let file = spool_file(&format!("/s/{name}"), 20_000 * DAY * 1_000_000_000);
        let call = Attribution {
            matched: true,
            campaign: campaign.map(str::to_string),
            call_time: Some(20_000 * DAY - age_days * DAY),
            ..Attribution::default()
        };
        fixtures::insert(ledger, &file, &call, State::Settled)
    }

    fn due_names(ledger: &Ledger, now: i64, only: Option<&str>) -> Vec<(String, bool)> {
        let mut out = Vec::new();
        ledger
            .for_each_due(&policy(), now, only, |d| {
                out.push((String::from_utf8_lossy(&d.rec.name).into_owned(), d.held));
                true
            })
            .unwrap();
        out.sort();
        out
    }

    #[test]
    fn selection_follows_campaign_and_default_rules() {
        let (_dir, ledger) = crate::ledger::fixtures::ledger();
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
        ledger
            .insert_hold(
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
    fn recordings_waiting_for_vicidial_are_kept_back_until_the_wait_is_over() {
        use crate::ledger::attribution::{DbAnswer, DbAttribution};
        let (_dir, ledger) = crate::ledger::fixtures::ledger();
        let id = insert(&ledger, "vici", None, 200);
        let now = 20_000 * DAY;
        let first_seen = ledger.recording(id).unwrap().first_seen;
        let mut waiting = policy();
        waiting.attribution_wait = Some(Duration::from_secs(7 * DAY as u64));
        let due = |p: &RetentionPolicy, at: i64| {
            let mut n = Vec::new();
            ledger
                .for_each_due(p, at, None, |d| {
                    n.push(d.rule.clone());
                    true
                })
                .unwrap();
            n
        };
        // Without [vicidial] it falls under the default at once; with it,
        // not while the database may still name its campaign.
        assert_eq!(due(&policy(), now), ["retention.default = 180d"]);
        let soon = first_seen.max(now);
        assert!(due(&waiting, soon).is_empty());
        // Attributed to SALES (kept for ever): never due.
        let todo = ledger.attribution_todo(i64::MAX / 2, 10).unwrap();
        let sales = DbAnswer::Found(DbAttribution {
            vicidial_recording_id: 7,
            campaign: Some("SALES".into()),
            source: "outbound",
            ..DbAttribution::default()
        });
        ledger
            .record_attributions(soon, Duration::from_secs(60), &[(todo[0].clone(), sales)])
            .unwrap();
        assert!(due(&waiting, soon + 8 * DAY).is_empty());
        // Never attributed: due under the default once the wait is over.
        let other = insert(&ledger, "other", None, 200);
        let seen = ledger.recording(other).unwrap().first_seen;
        assert!(due(&waiting, seen.max(now)).is_empty());
        assert_eq!(
            due(&waiting, seen.max(now) + 8 * DAY),
            ["retention.default = 180d"]
        );
    }

    #[test]
    fn everything_forever_selects_nothing() {
        let (_dir, ledger) = crate::ledger::fixtures::ledger();
        insert(&ledger, "x", None, 10_000);
        let mut n = 0;
        ledger
            .for_each_due(&RetentionPolicy::default(), i64::MAX / 2, None, |_| {
                n += 1;
                true
            })
            .unwrap();
        assert_eq!(n, 0);
    }
}
