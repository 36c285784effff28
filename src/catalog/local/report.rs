//! One box's reports: what a retention change would delete (and spare),
//! and the box's overview (states, backlog, disk, store, errors).

use std::collections::BTreeMap;

use crate::catalog::Rules;
use crate::catalog::{BoxOverview, Disk, ImpactRow, RetentionImpact, StateCount, StoreHealth};
use crate::config::{Config, RetentionPolicy, StoreBackend};
use crate::error::Error;
use crate::ledger::{Ledger, LedgerError};
use crate::pipeline::pressure::free_space;
use crate::recording::State;
use crate::recording::key::display_name;
use crate::units::{local_time, now_secs};

/// How far ahead a retention preview looks.
pub const HORIZON: i64 = 366 * 86_400;

const DAY: i64 = 86_400;

/// The day `at` falls on (its start, unix seconds), or `None` if it is due by `now`.
fn day(at: i64, now: i64) -> Option<i64> {
    (at > now).then(|| at - at.rem_euclid(DAY))
}

/// Adds one recording to the row of its (campaign, day).
fn tally(
    rows: &mut BTreeMap<(Option<String>, Option<i64>), ImpactRow>,
    host: &str,
    campaign: Option<&str>,
    due: Option<i64>,
    bytes: u64,
    held: bool,
) {
    let row = rows
        .entry((campaign.map(str::to_string), due))
        .or_insert_with(|| ImpactRow {
            host: host.to_string(),
            campaign: campaign.map(str::to_string),
            due,
            ..ImpactRow::default()
        });
    row.recordings += 1;
    row.bytes += bytes;
    row.held += u64::from(held);
}

/// What changing `before` into `after` would do to this box's recordings
/// over the next [`HORIZON`]: those deleted sooner (or at all), and those
/// spared, by campaign and day. `campaign`: the rule changed (`None`: the
/// default, which covers every campaign without a rule).
pub fn retention_impact(
    ledger: &Ledger,
    host: &str,
    before: &RetentionPolicy,
    after: &RetentionPolicy,
    campaign: Option<&str>,
    now: i64,
) -> Result<RetentionImpact, LedgerError> {
    let horizon = now + HORIZON;
    let walk = |from: &RetentionPolicy, to: &RetentionPolicy| {
        let mut rows = BTreeMap::new();
        // Recordings not archived yet are counted: they go once archived.
        ledger.for_each_due_summary(from, horizon, campaign, |d| {
            // Both due by now: the next sweep deletes it either way.
            let other = to.due_at(d.campaign.as_deref(), d.time);
            if other.is_none_or(|o| o.max(now) > d.due_at.max(now)) {
                let due = day(d.due_at, now);
                tally(&mut rows, host, d.campaign.as_deref(), due, d.bytes, d.held);
            }
            true
        })?;
        Ok::<_, LedgerError>(rows.into_values().collect())
    };
    let sooner = walk(after, before)?;
    let spared = walk(before, after)?;
    Ok(RetentionImpact {
        before: Rules::of(before).summary(),
        after: Rules::of(after).summary(),
        sooner,
        spared,
        horizon,
    })
}

/// The store as one line (`s3 bucket/prefix`), `none` without one.
fn store_name(config: &Config) -> String {
    let Some(s) = &config.store else {
        return "none".to_string();
    };
    match &s.backend {
        StoreBackend::S3(c) => format!("s3 {}/{}", c.bucket, s.prefix),
        StoreBackend::Local { path } => format!("local {}/{}", path.display(), s.prefix),
        StoreBackend::Azure(c) => format!("azure {}/{}", c.container, s.prefix),
        StoreBackend::Gcs(c) => format!("gcs {}/{}", c.bucket, s.prefix),
        StoreBackend::Sftp(c) => format!("sftp {}:{}", c.host, c.path),
    }
}

/// This box's overview, read from its ledger and its filesystems now.
pub fn box_overview(ledger: &Ledger, config: &Config) -> Result<BoxOverview, Error> {
    let totals = ledger.totals()?;
    let waiting_states = [
        State::Seen,
        State::Settled,
        State::Compressed,
        State::Uploaded,
        State::Failed,
    ];
    let waiting = totals
        .iter()
        .filter(|(s, _)| waiting_states.contains(s))
        .map(|(_, t)| t.count)
        .sum();
    let (unreachable, refused) = ledger.store_failures()?;
    Ok(BoxOverview {
        host: config.daemon.host.clone(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        states: totals
            .into_iter()
            .map(|(s, t)| StateCount {
                state: s.as_str().to_string(),
                count: t.count,
                bytes: t.bytes,
                object_bytes: t.object_bytes,
            })
            .collect(),
        waiting,
        oldest_waiting: ledger.oldest_waiting()?.map(|r| r.time_secs()),
        disks: disks(config),
        store: StoreHealth {
            name: store_name(config),
            unreachable_failures: unreachable,
            refused_failures: refused,
        },
        last_errors: last_errors(ledger)?,
        at: now_secs(),
        heartbeat: None,
        reachable: true,
        forgotten: None,
        database: None,
        pseudonym_key: crate::governance::requests::key::load(&config.ledger.path)?
            .map(|k| k.fingerprint()),
    })
}

/// The filesystems of the spool, staging and the ledger, with free space.
fn disks(config: &Config) -> Vec<Disk> {
    let mut dirs = config.spool.dirs.clone();
    dirs.push(config.spool.staging.clone());
    if let Some(parent) = config.ledger.path.parent() {
        dirs.push(parent.to_path_buf());
    }
    dirs.iter()
        .filter_map(|d| {
            let (free, total) = free_space(d).ok()?;
            Some(Disk {
                path: d.display().to_string(),
                free,
                total,
            })
        })
        .collect()
}

/// The five newest errors, one line each.
fn last_errors(ledger: &Ledger) -> Result<Vec<String>, Error> {
    Ok(ledger
        .recent_errors(5)?
        .iter()
        .map(|r| {
            format!(
                "{} {} {}: {}",
                local_time(r.updated_at),
                r.state,
                display_name(&r.name),
                r.last_error.as_deref().unwrap_or("")
            )
        })
        .collect())
}
