//! `recvault ls`: one tab-separated line per recording the ledger knows —
//! id, state, time, size, codec, object key, name (scripts and the demo
//! read it). `ls --fleet`: every box's, from the fleet's catalog, the same
//! line after the box's name.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::process::ExitCode;

use futures_util::StreamExt;

use crate::catalog::{Entry, Search, Selector, StateFilter, stream};
use crate::config::Config;
use crate::error::Error;
use crate::ledger::ListFilter;
use crate::recording::key::{decode_name, display_name};
use crate::recording::{Recording, State};
use crate::spool::glob_match;
use crate::units::local_time;

pub(super) fn ls(
    config: &Config,
    state: Option<State>,
    since: Option<String>,
    until: Option<String>,
    name: Option<OsString>,
    out: &mut impl Write,
) -> Result<ExitCode, Error> {
    let filter = ListFilter {
        state,
        since: super::date(since)?,
        until: super::date(until)?,
    };
    let glob = name.as_ref().map(|n| n.as_bytes());
    let ledger = super::open_ledger(config)?;
    ledger.list(&filter, |r| {
        if glob.is_some_and(|g| !glob_match(g, &r.name)) {
            return Ok(());
        }
        writeln!(out, "{}", ls_line(r)).map_err(Error::from)
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `ls --fleet`: every box's recordings from the fleet's catalog, oldest
/// first, walked by cursor (a page at a time, whatever the fleet's size).
pub(super) async fn ls_fleet(
    config: &Config,
    state: Option<State>,
    since: Option<String>,
    until: Option<String>,
    name: Option<OsString>,
    out: &mut impl Write,
) -> Result<ExitCode, Error> {
    if config.fleet.is_none() {
        return Err(Error::Usage(format!(
            "{}: --fleet needs [fleet] enabled; this box is on its own (`recvault ls` lists it)",
            config.source.display()
        )));
    }
    let (from, to) = (super::date(since)?, super::date(until)?);
    let search = Search {
        // The time index serves the range; no range lists every recording.
        selectors: match (from, to) {
            (None, None) => Vec::new(),
            (from, to) => vec![Selector::Time { from, to }],
        },
        // Erased ones too, as `ls` lists them.
        state: state.map(StateFilter::Ledger),
        ..Search::default()
    };
    let glob = name.as_ref().map(|n| n.as_bytes());
    let mut entries = stream(super::catalog(config).await?, search, 1000);
    while let Some(e) = entries.next().await {
        let e = e?;
        let raw = decode_name(&e.name).unwrap_or_else(|| e.name.clone().into_bytes());
        if glob.is_some_and(|g| !glob_match(g, &raw)) {
            continue;
        }
        writeln!(out, "{}\t{}", e.host, fleet_line(&e))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// One line of `recvault ls`, tab-separated: id, state, time, size, codec
/// (the one the object is in, `-` before compression), key, name.
fn ls_line(r: &Recording) -> String {
    line(
        r.id,
        r.state,
        r.time_secs(),
        r.identity.size,
        r.codec.as_deref().filter(|_| r.object_size.is_some()),
        r.object_key.as_deref(),
        &display_name(&r.name),
    )
}

/// The same line from a catalog entry (another box's recording).
fn fleet_line(e: &Entry) -> String {
    line(
        e.id,
        e.state,
        e.time,
        e.size,
        e.codec.as_deref().filter(|_| e.object_size.is_some()),
        e.object_key.as_deref(),
        &e.name,
    )
}

fn line(
    id: i64,
    state: State,
    time: i64,
    size: u64,
    codec: Option<&str>,
    key: Option<&str>,
    name: &str,
) -> String {
    format!(
        "{id}\t{state}\t{}\t{size}\t{}\t{}\t{name}",
        local_time(time),
        codec.unwrap_or("-"),
        key.unwrap_or("-"),
    )
}
