//! `recvault retention plan|run`: what retention would delete, when and why
//! (a dry run, with totals per campaign), and one sweep now.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;

use crate::catalog::{RetentionChange, RetentionImpact};
use crate::cli::RetentionCommand;
use crate::config::{Config, Keep, RetentionPolicy};
use crate::error::Error;
use crate::governance::gate::DeletionGate;
use crate::governance::retention::sweep_now;
use crate::ledger::Ledger;
use crate::ledger::audit::Actor;
use crate::ledger::retention::DueSummary;
use crate::recording::key::display_name;
use crate::units::{human_bytes, local_time, now_secs};

pub(super) async fn retention(
    action: RetentionCommand,
    config: &Config,
    out: &mut impl Write,
) -> Result<ExitCode, Error> {
    match action {
        RetentionCommand::Plan {
            campaign,
            until,
            totals,
        } => {
            let now = now_secs();
            let until = super::date(until)?.unwrap_or(now);
            let ledger = super::open_ledger(config)?;
            ledger.attribute_pending(&config.naming)?;
            let policy = match super::fleet_gate(config).await? {
                None => config.retention.clone(),
                Some(g) => g.policy(&config.retention).ok_or_else(|| {
                    Error::Usage("the fleet has no retention policy yet: nothing is due".into())
                })?,
            };
            plan_report(
                &ledger,
                &policy,
                now,
                until.max(now),
                campaign.as_deref(),
                totals,
                out,
            )?;
            Ok(ExitCode::SUCCESS)
        }
        RetentionCommand::Set {
            campaign,
            duration,
            confirm,
        } => {
            let keep = Keep::parse(&duration).map_err(Error::Usage)?;
            change(config, &campaign, Some(keep), confirm, out).await
        }
        RetentionCommand::Unset { campaign, confirm } => {
            change(config, &campaign, None, confirm, out).await
        }
        RetentionCommand::Run => run(config, out).await,
    }
}

/// `retention run`: one sweep now (with `[fleet]`, through its gate).
async fn run(config: &Config, out: &mut impl Write) -> Result<ExitCode, Error> {
    let gate = super::fleet_gate(config).await?;
    let gate_ref = gate.as_deref().map(|g| g as &dyn DeletionGate);
    let r = sweep_now(config, &Actor::current(), gate_ref).await?;
    if let Some(why) = &r.gate_closed {
        writeln!(out, "nothing was deleted: {why}")?;
    }
    writeln!(
        out,
        "deleted {} recordings ({} stored, {} local copies), {} held, {} not yet archived (kept), {} failed",
        r.deleted,
        human_bytes(r.object_bytes),
        r.local_removed,
        r.held,
        r.unarchived,
        r.failed
    )?;
    for (campaign, n) in &r.by_campaign {
        writeln!(out, "  {campaign}: {n}")?;
    }
    super::exit(r.failed == 0)
}

/// Writes `recvault retention plan`: each recording due by `until` (when,
/// why), then totals per campaign. Held recordings are listed as kept.
fn plan_report(
    ledger: &Ledger,
    policy: &RetentionPolicy,
    now: i64,
    until: i64,
    only: Option<&str>,
    totals_only: bool,
    out: &mut impl Write,
) -> Result<(), Error> {
    writeln!(out, "policy: {}", policy.summary())?;
    if policy.keeps_everything() {
        writeln!(
            out,
            "nothing is ever deleted: set [retention] default or campaigns"
        )?;
        return Ok(());
    }
    if !totals_only {
        writeln!(
            out,
            "due\tid\tcampaign\tcall time\tbytes stored\trule\tname"
        )?;
    }
    let mut totals: BTreeMap<String, Totals> = BTreeMap::new();
    let mut write_err = None;
    ledger.for_each_due_summary(policy, until, only, |d| {
        let campaign = d.campaign.as_deref().unwrap_or("-");
        let kept = d.held || (!d.archived && !policy.delete_unarchived);
        let t = match totals.get_mut(campaign) {
            Some(t) => t,
            None => totals.entry(campaign.to_string()).or_default(),
        };
        t.add(d, kept);
        if totals_only {
            return true;
        }
        let line = due_line(out, d, campaign, kept, now);
        line.map_err(|e| write_err = Some(e)).is_ok()
    })?;
    if let Some(e) = write_err {
        return Err(e.into());
    }
    totals_table(&totals, out)
}

/// One recording due: when (or why it is kept), id, campaign, call time,
/// bytes, rule and name.
fn due_line(
    out: &mut impl Write,
    d: &DueSummary<'_>,
    campaign: &str,
    kept: bool,
    now: i64,
) -> std::io::Result<()> {
    let when = match (d.held, kept) {
        (true, _) => "held".to_string(),
        (false, true) => "unarchived".to_string(),
        _ if d.due_at <= now => "now".to_string(),
        _ => local_time(d.due_at),
    };
    writeln!(
        out,
        "{when}\t{}\t{campaign}\t{}{}\t{}\t{}\t{}",
        d.id,
        local_time(d.time),
        if d.call_time_known { "" } else { " (mtime)" },
        d.bytes,
        d.rule,
        display_name(&d.name)
    )
}

/// The totals per campaign, and their sum.
fn totals_table(totals: &BTreeMap<String, Totals>, out: &mut impl Write) -> Result<(), Error> {
    let row = |out: &mut dyn Write, name: &str, t: &Totals| {
        writeln!(
            out,
            "{name:<20} {:>10} {:>12} {:>8} {:>10}",
            t.due,
            human_bytes(t.bytes),
            t.held,
            t.unarchived
        )
    };
    writeln!(
        out,
        "{:<20} {:>10} {:>12} {:>8} {:>10}",
        "campaign", "due", "bytes", "held", "unarchived"
    )?;
    let mut sum = Totals::default();
    for (campaign, t) in totals {
        row(out, campaign, t)?;
        sum.due += t.due;
        sum.bytes += t.bytes;
        sum.held += t.held;
        sum.unarchived += t.unarchived;
    }
    row(out, "total", &sum)?;
    Ok(())
}

/// A campaign's line in the plan's totals.
#[derive(Default)]
struct Totals {
    /// Due and deleted at the next sweep, and their bytes.
    due: u64,
    bytes: u64,
    /// Due but kept: under a legal hold, or never archived.
    held: u64,
    unarchived: u64,
}

impl Totals {
    fn add(&mut self, d: &DueSummary<'_>, kept: bool) {
        match (d.held, kept) {
            (true, _) => self.held += 1,
            (false, true) => self.unarchived += 1,
            (false, false) => {
                self.due += 1;
                self.bytes += d.bytes;
            }
        }
    }
}

/// `retention set|unset`: the fleet's policy changed — previewed (what it
/// would delete, where and when), applied only with `confirm`.
async fn change(
    config: &Config,
    campaign: &str,
    keep: Option<Keep>,
    confirm: bool,
    out: &mut impl Write,
) -> Result<ExitCode, Error> {
    if config.fleet.is_none() {
        return Err(Error::Usage(format!(
            "retention set/unset change a fleet's policy; this box's policy is [retention] in {} \
             (edit it there and reload)",
            config.source.display()
        )));
    }
    let change = RetentionChange {
        campaign: (campaign != "default").then(|| campaign.to_string()),
        keep,
    };
    if change.campaign.is_none() && change.keep.is_none() {
        return Err(Error::Usage(
            "the default rule cannot be unset: `retention set default forever` keeps everything"
                .into(),
        ));
    }
    let catalog = super::catalog(config).await?;
    let impact = catalog.retention_preview(&change).await?;
    print_impact(&impact, out)?;
    if !confirm {
        writeln!(
            out,
            "nothing changed; run again with --confirm to apply it on every box"
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let view = catalog.retention_apply(&Actor::current(), &change).await?;
    writeln!(
        out,
        "the fleet's retention policy is now (version {}): {}; every box follows it from its next sweep",
        view.version.unwrap_or_default(),
        view.rules.summary()
    )?;
    Ok(ExitCode::SUCCESS)
}

fn print_impact(impact: &RetentionImpact, out: &mut impl Write) -> Result<(), Error> {
    writeln!(out, "policy now:   {}", impact.before)?;
    writeln!(out, "policy after: {}", impact.after)?;
    let (n, bytes) = impact.due_now();
    writeln!(
        out,
        "deleted at the next sweep: {n} recordings ({}), held ones kept",
        human_bytes(bytes)
    )?;
    for (title, rows) in [
        ("deleted sooner", &impact.sooner),
        ("kept longer", &impact.spared),
    ] {
        if rows.is_empty() {
            continue;
        }
        writeln!(out, "{title}:")?;
        for r in rows {
            writeln!(
                out,
                "  {} {}: {} recordings ({}), {} held, due {}",
                r.host,
                r.campaign.as_deref().unwrap_or("-"),
                r.recordings,
                human_bytes(r.bytes),
                r.held,
                r.due.map(local_time).unwrap_or_else(|| "now".to_string())
            )?;
        }
    }
    Ok(())
}
