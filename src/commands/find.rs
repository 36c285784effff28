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
use futures_util::StreamExt;

use crate::catalog::{Entry, Search, stream};
use crate::recording::key::display_text;
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

pub(super) async fn find(
    config: &Config,
    select: SelectorArgs,
    json: bool,
    out: &mut impl Write,
) -> Result<ExitCode, Error> {
    let selectors = selectors(select)?;
    let catalog = super::catalog(config).await?;
    let fleet = catalog.scope().is_fleet();
    let search = Search {
        selectors: selectors.clone(),
        ..Search::default()
    };
    let (mut n, mut held) = (0u64, 0u64);
    if json {
        write!(out, "[")?;
    } else {
        let host = if fleet { "host\t" } else { "" };
        writeln!(
            out,
            "{host}id\tstate\tcall time\tcampaign\tagent\tsize\theld by\twhere\tname"
        )?;
    }
    let mut entries = stream(catalog, search, 1000);
    while let Some(entry) = entries.next().await {
        let e = entry?;
        if json {
            let sep = if n == 0 { "\n" } else { ",\n" };
            write!(out, "{sep}{}", json_of(&e, fleet))?;
        } else {
            writeln!(out, "{}", line_of(&e, fleet))?;
        }
        n += 1;
        held += u64::from(e.held());
    }
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

/// One tab-separated line of `find` (the box first, in a fleet).
fn line_of(e: &Entry, fleet: bool) -> String {
    let line = format!(
        "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
        e.id,
        e.status(),
        local_time(e.time),
        display_text(e.campaign.as_deref().unwrap_or("-")),
        display_text(e.agent.as_deref().unwrap_or("-")),
        human_bytes(e.size),
        if e.held() {
            display_text(&e.held_by.join(","))
        } else {
            "-".to_string()
        },
        e.whereabouts(),
        e.name
    );
    match fleet {
        true => format!("{}\t{line}", e.host),
        false => line,
    }
}

/// One object of `find --json` (with its box, in a fleet).
fn json_of(e: &Entry, fleet: bool) -> serde_json::Value {
    let mut v = json!({
        "id": e.id,
        "state": e.status(),
        "name": e.name,
        "call_time": e.call_time,
        "time": local_time(e.time),
        "campaign": e.campaign,
        "agent": e.agent,
        "phone": e.phone,
        "lead_id": e.lead_id,
        "size": e.size,
        "sha256": e.sha256,
        "object_key": e.object_key,
        "object_size": e.object_size,
        "where": e.whereabouts(),
        "deleted_at": e.deleted_at,
        "deleted_by": e.deleted_by,
        "held_by": e.held_by,
        "erase_request": e.erasure.as_ref().map(|m| &m.request),
        "erased_at": e.erasure.as_ref().and_then(|m| m.erased_at),
    });
    if fleet {
        v["host"] = json!(e.host);
    }
    v
}
