//! `recvault retention plan|run`: what retention would delete, when and why
//! (a dry run, with totals per campaign), and one sweep now.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;

use crate::cli::RetentionCommand;
use crate::config::{Config, RetentionPolicy};
use crate::error::Error;
use crate::governance::retention::sweep_now;
use crate::ledger::Ledger;
use crate::ledger::audit::Actor;
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
            plan_report(
                &ledger,
                &config.retention,
                now,
                until.max(now),
                campaign.as_deref(),
                totals,
                out,
            )?;
            Ok(ExitCode::SUCCESS)
        }
        RetentionCommand::Run => {
            let r = sweep_now(config, &Actor::current()).await?;
            writeln!(
                out,
                "deleted {} recordings ({} stored, {} local copies), {} held, {} failed",
                r.deleted,
                human_bytes(r.object_bytes),
                r.local_removed,
                r.held,
                r.failed
            )?;
            for (campaign, n) in &r.by_campaign {
                writeln!(out, "  {campaign}: {n}")?;
            }
            super::exit(r.failed == 0)
        }
    }
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
    // campaign -> (due, bytes, held)
    let mut totals: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    let mut write_err = None;
    ledger.for_each_due_summary(policy, until, only, |d| {
        let campaign = d.campaign.as_deref().unwrap_or("-");
        let bytes = d.bytes;
        let t = match totals.get_mut(campaign) {
            Some(t) => t,
            None => totals.entry(campaign.to_string()).or_default(),
        };
        if d.held {
            t.2 += 1;
        } else {
            t.0 += 1;
            t.1 += bytes;
        }
        if totals_only {
            return true;
        }
        let when = if d.held {
            "held".to_string()
        } else if d.due_at <= now {
            "now".to_string()
        } else {
            local_time(d.due_at)
        };
        let line = writeln!(
            out,
            "{when}\t{}\t{campaign}\t{}{}\t{bytes}\t{}\t{}",
            d.id,
            local_time(d.time),
            if d.call_time_known { "" } else { " (mtime)" },
            d.rule,
            display_name(&d.name)
        );
        match line {
            Ok(()) => true,
            Err(e) => {
                write_err = Some(e);
                false
            }
        }
    })?;
    if let Some(e) = write_err {
        return Err(e.into());
    }
    writeln!(
        out,
        "{:<20} {:>10} {:>12} {:>8}",
        "campaign", "due", "bytes", "held"
    )?;
    let mut sum = (0, 0, 0);
    for (campaign, (n, bytes, held)) in &totals {
        writeln!(
            out,
            "{campaign:<20} {n:>10} {:>12} {held:>8}",
            human_bytes(*bytes)
        )?;
        sum = (sum.0 + n, sum.1 + bytes, sum.2 + held);
    }
    writeln!(
        out,
        "{:<20} {:>10} {:>12} {:>8}",
        "total",
        sum.0,
        human_bytes(sum.1),
        sum.2
    )?;
    Ok(())
}
