//! `recvault find SELECTOR…`: every recording a person, agent, lead,
//! campaign or time range has, wherever it is now, with the holds covering
//! it — one line each, or `--json` for scripts. Also builds the selectors
//! `export` and `erase` take from the same options.

use std::io::Write;
use std::process::ExitCode;

use serde_json::json;

use crate::cli::SelectorArgs;
use crate::config::Config;
use crate::error::Error;
use crate::governance::hold::Selector;
use crate::governance::requests::{self, key};
use crate::ledger::matching::Matched;
use crate::recording::key::{display_name, display_text};
use crate::units::{human_bytes, local_time};

/// The selectors the options name. Refuses none at all (a request about
/// nothing is a mistake, never "everything") and empty values.
pub(super) fn selectors(args: SelectorArgs) -> Result<Vec<Selector>, Error> {
    let mut out = Vec::new();
    for p in &args.phone {
        out.push(Selector::phone(p)?);
    }
    let named = [
        (
            "--agent",
            args.agent,
            Selector::Agent as fn(String) -> Selector,
        ),
        ("--lead", args.lead, Selector::Lead),
        ("--campaign", args.campaign, Selector::Campaign),
        ("--recording", args.recording, Selector::Recording),
    ];
    for (option, values, make) in named {
        for v in values {
            if v.trim().is_empty() {
                return Err(Error::Usage(format!("{option} needs a value")));
            }
            out.push(make(v));
        }
    }
    if args.from.is_some() || args.to.is_some() {
        let (from, to) = (super::date(args.from)?, super::date_end(args.to)?);
        if let (Some(f), Some(t)) = (from, to)
            && f >= t
        {
            return Err(Error::Usage("--from is not before --to".to_string()));
        }
        out.push(Selector::Time { from, to });
    }
    if out.is_empty() {
        return Err(Error::Usage(
            "give at least one selector (--phone, --agent, --lead, --campaign, --recording, --from/--to); \
             `recvault ls` lists everything"
                .to_string(),
        ));
    }
    Ok(out)
}

pub(super) fn find(
    config: &Config,
    select: SelectorArgs,
    json: bool,
    out: &mut impl Write,
) -> Result<ExitCode, Error> {
    let selectors = selectors(select)?;
    let ledger = super::open_ledger(config)?;
    ledger.attribute_pending(&config.naming)?;
    let key = key::load(&config.ledger.path)?;
    let (mut n, mut held) = (0u64, 0u64);
    if json {
        write!(out, "[")?;
    } else {
        writeln!(
            out,
            "id\tstate\tcall time\tcampaign\tagent\tsize\theld by\twhere\tname"
        )?;
    }
    requests::find::<Error>(&ledger, &selectors, key.as_ref(), |m| {
        if json {
            let sep = if n == 0 { "\n" } else { ",\n" };
            write!(out, "{sep}{}", json_of(m))?;
        } else {
            writeln!(out, "{}", line_of(m))?;
        }
        n += 1;
        held += u64::from(m.held());
        Ok(())
    })?;
    let shown = crate::ledger::holds::describe(&selectors);
    if json {
        writeln!(out, "\n]")?;
    } else if n == 0 {
        writeln!(out, "no recording matches {shown}")?;
    } else {
        writeln!(
            out,
            "{n} recordings match {shown} ({held} under a legal hold)"
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// What `find` calls the state of a recording: an erasure's over its state.
fn state_of(m: &Matched) -> String {
    match &m.rec.erasure {
        Some(e) if e.erased_at.is_some() => "erased".to_string(),
        Some(_) => "erasing".to_string(),
        None => m.rec.state.to_string(),
    }
}

/// One tab-separated line of `find`.
fn line_of(m: &Matched) -> String {
    let r = &m.rec;
    format!(
        "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
        r.id,
        state_of(m),
        local_time(r.time_secs()),
        display_text(r.campaign.as_deref().unwrap_or("-")),
        display_text(r.agent.as_deref().unwrap_or("-")),
        human_bytes(r.identity.size),
        if m.held() {
            display_text(&m.cases.join(","))
        } else {
            "-".to_string()
        },
        super::whereabouts(r),
        display_name(&r.name)
    )
}

/// One object of `find --json`.
fn json_of(m: &Matched) -> serde_json::Value {
    let r = &m.rec;
    json!({
        "id": r.id,
        "state": state_of(m),
        "name": display_name(&r.name),
        "call_time": r.call_time,
        "time": local_time(r.time_secs()),
        "campaign": r.campaign,
        "agent": r.agent,
        "phone": r.phone,
        "lead_id": r.lead_id,
        "size": r.identity.size,
        "sha256": r.sha256,
        "object_key": r.object_key,
        "object_size": r.object_size,
        "where": super::whereabouts(r),
        "deleted_at": r.deleted_at,
        "deleted_by": r.deleted_by,
        "held_by": m.cases,
        "erase_request": r.erasure.as_ref().map(|e| &e.request),
        "erased_at": r.erasure.as_ref().and_then(|e| e.erased_at),
    })
}
