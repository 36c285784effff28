//! `recvault hold add|release|list|show`: legal holds. After every change
//! the hold table is copied to the store (so holds survive a lost disk) and,
//! with `object_lock_legal_hold`, mirrored onto the objects.

use std::io::Write;
use std::process::ExitCode;

use crate::cli::HoldCommand;
use crate::config::Config;
use crate::error::Error;
use crate::governance::hold::{self, Hold, HoldPlaced, Selector};
use crate::ledger::Ledger;
use crate::ledger::audit::Actor;
use crate::recording::key::{display_name, display_text};
use crate::recovery::hold_copy;
use crate::units::{local_time, now_secs};

pub(super) async fn hold(
    action: HoldCommand,
    config: &Config,
    out: &mut impl Write,
) -> Result<ExitCode, Error> {
    let ledger = super::open_ledger(config)?;
    ledger.attribute_pending(&config.naming)?;
    let actor = Actor::current();
    let case = match action {
        HoldCommand::List => {
            list(&ledger.holds()?, out)?;
            return Ok(ExitCode::SUCCESS);
        }
        HoldCommand::Show { case } => {
            show(&ledger, &case, out)?;
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
            let placed = hold::add(&ledger, &actor, now_secs(), &case, &reason, &selectors)?;
            report_placed(&placed, &case, out)?;
            case
        }
        HoldCommand::Release { case, reason } => {
            let n = hold::release(&ledger, &actor, now_secs(), &case, &reason)?;
            writeln!(
                out,
                "released {n} hold(s) of case {case}; retention resumes for its recordings at the next sweep"
            )?;
            case
        }
    };
    copy_holds(config, &ledger, out).await?;
    mirror_holds(config, &ledger, &case, out).await
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

/// What a placed hold covers; a warning for recordings already being deleted.
fn report_placed(placed: &HoldPlaced, case: &str, out: &mut impl Write) -> Result<(), Error> {
    writeln!(
        out,
        "hold #{} placed for case {case}: covers {} recordings now, and any that arrive and match",
        placed.id, placed.covered
    )?;
    if placed.being_deleted > 0 {
        eprintln!(
            "recvault: warning: {} of them were already being deleted when the hold was placed (their deletion started first); see `recvault hold show {case}`",
            placed.being_deleted
        );
    }
    Ok(())
}

/// Stores a copy of the hold table beside the ledger backups, so holds
/// survive a lost disk (`ledger rebuild --from-store`). The ledger's hold
/// stands even if this fails; the daemon's next scheduled backup copies again.
async fn copy_holds(config: &Config, ledger: &Ledger, out: &mut impl Write) -> Result<(), Error> {
    let Some(store_config) = config.store.as_ref() else {
        return Ok(());
    };
    let copied = match crate::store::open(store_config).await {
        Ok(store) => {
            let scratch = super::scratch_dir(config);
            hold_copy::publish(
                ledger,
                &*store,
                &store_config.prefix,
                &config.daemon.host,
                scratch,
            )
            .await
        }
        Err(e) => Err(e.into()),
    };
    match copied {
        Ok(key) => writeln!(out, "holds copied to the store: {key}")?,
        Err(e) => eprintln!(
            "recvault: warning: the hold is in the ledger, but copying the holds to the store failed: {e}"
        ),
    }
    Ok(())
}

/// With `[store] object_lock_legal_hold`, sets the objects' legal holds to
/// match the ledger. The ledger's hold stands even if this fails.
async fn mirror_holds(
    config: &Config,
    ledger: &Ledger,
    case: &str,
    out: &mut impl Write,
) -> Result<ExitCode, Error> {
    let Some(store_config) = config.store.as_ref().filter(|s| s.object_lock_legal_hold) else {
        return Ok(ExitCode::SUCCESS);
    };
    let store = crate::store::open(store_config).await?;
    let r = hold::mirror(ledger, &*store, case).await?;
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
fn list(holds: &[Hold], out: &mut impl Write) -> Result<(), Error> {
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
/// cover with where it is now.
fn show(ledger: &Ledger, case_id: &str, out: &mut impl Write) -> Result<(), Error> {
    let holds = hold::of_case(ledger, case_id)?;
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
    writeln!(
        out,
        "id\tstate\tcampaign\tcall time\tphone\tagent\twhere\tname"
    )?;
    let mut n = 0;
    ledger.covered_by_case::<Error>(case_id, |r| {
        n += 1;
        writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            r.id,
            r.state,
            display_text(r.campaign.as_deref().unwrap_or("-")),
            local_time(r.time_secs()),
            display_text(r.phone.as_deref().unwrap_or("-")),
            display_text(r.agent.as_deref().unwrap_or("-")),
            super::whereabouts(r),
            display_name(&r.name)
        )?;
        Ok(())
    })?;
    writeln!(out, "{n} recordings")?;
    Ok(())
}
