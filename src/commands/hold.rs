//! `recvault hold add|release|list|show`: legal holds, through the catalog
//! (one box's ledger, or with `[fleet]` the whole fleet). After every change
//! the hold table is copied to the store (so holds survive a lost disk)
//! and, with `object_lock_legal_hold`, mirrored onto the objects.

use std::io::Write;
use std::process::ExitCode;

use futures_util::StreamExt;

use crate::catalog::{Aftermath, Catalog, Coverage, HoldInfo, NewHold, Search, Selector, stream};
use crate::cli::HoldCommand;
use crate::config::Config;
use crate::error::Error;
use crate::ledger::audit::Actor;
use crate::recording::key::display_text;
use crate::units::local_time;

pub(super) async fn hold(
    action: HoldCommand,
    config: &Config,
    out: &mut impl Write,
) -> Result<ExitCode, Error> {
    let catalog = super::catalog(config).await?;
    let actor = Actor::current();
    let aftermath = match action {
        HoldCommand::List => {
            list(&catalog.holds(None).await?, out)?;
            return Ok(ExitCode::SUCCESS);
        }
        HoldCommand::Show { case } => {
            show(catalog, &case, out).await?;
            return Ok(ExitCode::SUCCESS);
        }
        HoldCommand::Add {
            case,
            reason,
            recording,
            campaign,
            phone,
            agent,
            from,
            to,
        } => {
            let selectors = selectors(recording, campaign, &phone, agent, from, to)?;
            let new = NewHold {
                case_id: case.clone(),
                reason,
                selectors,
            };
            let placed = catalog.place_hold(&actor, &new).await?;
            report_placed(placed.id, &placed.coverage, &case, out)?;
            placed.aftermath
        }
        HoldCommand::Release { case, reason } => {
            let r = catalog.release_hold(&actor, &case, &reason).await?;
            writeln!(
                out,
                "released {} hold(s) of case {case}; retention resumes for its recordings at the next sweep",
                r.released
            )?;
            r.aftermath
        }
    };
    report_aftermath(&aftermath, out)
}

/// What `hold add` names, as selectors (all must match).
fn selectors(
    recording: Vec<String>,
    campaign: Vec<String>,
    phone: &[String],
    agent: Vec<String>,
    from: Option<String>,
    to: Option<String>,
) -> Result<Vec<Selector>, Error> {
    let mut selectors: Vec<Selector> = recording.into_iter().map(Selector::Recording).collect();
    selectors.extend(campaign.into_iter().map(Selector::Campaign));
    for p in phone {
        selectors.push(Selector::phone(p)?);
    }
    selectors.extend(agent.into_iter().map(Selector::Agent));
    if from.is_some() || to.is_some() {
        selectors.push(Selector::Time {
            from: super::date(from)?,
            to: super::date_end(to)?,
        });
    }
    Ok(selectors)
}

/// What a placed hold covers (per box, in a fleet); a warning for
/// recordings already being deleted.
fn report_placed(
    id: i64,
    coverage: &Coverage,
    case: &str,
    out: &mut impl Write,
) -> Result<(), Error> {
    writeln!(
        out,
        "hold #{id} placed for case {case}: covers {} recordings now, and any that arrive and match",
        coverage.recordings
    )?;
    if coverage.per_host.len() > 1 {
        let hosts: Vec<String> = coverage
            .per_host
            .iter()
            .map(|(h, n)| format!("{h}: {n}"))
            .collect();
        writeln!(out, "  per box: {}", hosts.join(", "))?;
    }
    if coverage.being_deleted > 0 {
        eprintln!(
            "recvault: warning: {} of them were already being deleted when the hold was placed (their deletion started first); see `recvault hold show {case}`",
            coverage.being_deleted
        );
    }
    Ok(())
}

/// The hold table's copy in the store and the Object Lock mirror: the hold
/// stands whatever they did; a mirror failure makes the exit code 1.
fn report_aftermath(a: &Aftermath, out: &mut impl Write) -> Result<ExitCode, Error> {
    match &a.copied {
        None => {}
        Some(Ok(key)) => writeln!(out, "holds copied to the store: {key}")?,
        Some(Err(e)) => eprintln!(
            "recvault: warning: the hold is in the ledger, but copying the holds to the store failed: {e}"
        ),
    }
    let Some(r) = &a.mirror else {
        return Ok(ExitCode::SUCCESS);
    };
    writeln!(
        out,
        "object lock legal holds: {} on, {} off, {} failed",
        r.on,
        r.off,
        r.failed.len()
    )?;
    for (key, e) in &r.failed {
        eprintln!("recvault: legal hold on `{key}` not mirrored (the ledger hold applies): {e}");
    }
    super::exit(r.failed.is_empty())
}

/// Writes `recvault hold list`.
fn list(holds: &[HoldInfo], out: &mut impl Write) -> Result<(), Error> {
    if holds.is_empty() {
        writeln!(out, "no legal holds")?;
    }
    for h in holds {
        let status = match h.released_at {
            None => "active".to_string(),
            Some(t) => format!("released {}", local_time(t)),
        };
        writeln!(
            out,
            "{}\t#{}\t{status}\tplaced {} by {}\t{}\treason: {}",
            display_text(&h.case_id),
            h.id,
            local_time(h.created_at),
            display_text(&h.created_by),
            display_text(&h.describe()),
            display_text(&h.reason)
        )?;
    }
    Ok(())
}

/// Writes `recvault hold show CASE`: its holds, then each recording they
/// cover (on every box, in a fleet) with where it is now.
async fn show(
    catalog: std::sync::Arc<dyn Catalog>,
    case_id: &str,
    out: &mut impl Write,
) -> Result<(), Error> {
    let holds = catalog.holds(Some(case_id)).await?;
    list(&holds, out)?;
    for h in holds.iter().filter(|h| h.released_at.is_some()) {
        writeln!(
            out,
            "#{} released by {}: {}",
            h.id,
            display_text(h.released_by.as_deref().unwrap_or("?")),
            display_text(h.release_reason.as_deref().unwrap_or(""))
        )?;
    }
    let fleet = catalog.scope().is_fleet();
    let host = if fleet { "host\t" } else { "" };
    writeln!(
        out,
        "{host}id\tstate\tcampaign\tcall time\tphone\tagent\twhere\tname"
    )?;
    let search = Search {
        case: Some(case_id.to_string()),
        ..Search::default()
    };
    let mut n = 0;
    let mut covered = stream(catalog, search, 1000);
    while let Some(e) = covered.next().await {
        let e = e?;
        n += 1;
        if fleet {
            write!(out, "{}\t", e.host)?;
        }
        writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            e.id,
            e.state,
            display_text(e.campaign.as_deref().unwrap_or("-")),
            local_time(e.time),
            display_text(e.phone.as_deref().unwrap_or("-")),
            display_text(e.agent.as_deref().unwrap_or("-")),
            e.whereabouts(),
            e.name
        )?;
    }
    writeln!(out, "{n} recordings")?;
    Ok(())
}
