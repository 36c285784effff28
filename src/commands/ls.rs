//! `recvault ls`: one tab-separated line per recording the ledger knows —
//! id, state, time, size, codec, object key, name (scripts and the demo
//! read it).

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::process::ExitCode;

use crate::config::Config;
use crate::error::Error;
use crate::ledger::ListFilter;
use crate::recording::key::display_name;
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

/// One line of `recvault ls`, tab-separated: id, state, time, size, codec
/// (the one the object is in, `-` before compression), key, name.
fn ls_line(r: &Recording) -> String {
    format!(
        "{}\t{}\t{}\t{}\t{}\t{}\t{}",
        r.id,
        r.state,
        local_time(r.time_secs()),
        r.identity.size,
        r.codec
            .as_deref()
            .filter(|_| r.object_size.is_some())
            .unwrap_or("-"),
        r.object_key.as_deref().unwrap_or("-"),
        display_name(&r.name)
    )
}
