//! `recvault audit [--since D] [--case C] [--recording NAME] [--action A]`
//! lists the audit trail, one tab-separated line per entry (`--recording`:
//! who listened to a call, and when; `--action listen`: every listen);
//! `recvault audit verify` checks its hash chain.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::process::ExitCode;

use crate::cli::AuditCommand;
use crate::config::Config;
use crate::error::Error;
use crate::ledger::Ledger;
use crate::ledger::audit::{Action, AuditFilter, Entry};
use crate::recording::key::{display_name, display_text};
use crate::units::local_time;

/// What `recvault audit` was asked to list.
pub(super) struct Wanted {
    pub(super) since: Option<String>,
    pub(super) case: Option<String>,
    pub(super) recording: Option<OsString>,
    pub(super) kind: Option<String>,
}

pub(super) fn audit(
    config: &Config,
    wanted: Wanted,
    action: Option<AuditCommand>,
    out: &mut impl Write,
) -> Result<ExitCode, Error> {
    let ledger = super::open_ledger(config)?;
    if let Some(AuditCommand::Verify) = action {
        let ok = ledger.verify_audit_chain()?;
        writeln!(
            out,
            "audit trail intact: {} entries, head {}",
            ok.entries, ok.head
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let kinds = Action::ALL.map(Action::as_str);
    if let Some(kind) = &wanted.kind
        && !kinds.contains(&kind.as_str())
    {
        return Err(Error::Usage(format!(
            "--action {kind}: not an audit action; one of: {}",
            kinds.join(", ")
        )));
    }
    let recordings = match &wanted.recording {
        None => None,
        Some(name) => Some(recordings_named(&ledger, name)?),
    };
    let filter = AuditFilter {
        since: super::date(wanted.since)?,
        case_id: wanted.case,
        action: wanted.kind,
        recordings,
    };
    ledger.audit_entries(&filter, |e| write_entry(out, e))?;
    Ok(ExitCode::SUCCESS)
}

/// The ledger ids a name, key or id on the command line stands for (every
/// recording of a repeated name: listens may be for any of them).
fn recordings_named(ledger: &Ledger, wanted: &OsString) -> Result<Vec<i64>, Error> {
    let bytes = wanted.as_bytes();
    let mut ids: Vec<i64> = ledger.find(bytes)?.iter().map(|r| r.id).collect();
    if let Some(id) = std::str::from_utf8(bytes).ok().and_then(|s| s.parse().ok())
        && ledger.recording(id).is_ok()
    {
        ids.push(id);
    }
    if ids.is_empty() {
        return Err(Error::NoSuchRecording(display_name(bytes)));
    }
    Ok(ids)
}

/// One entry as a line: id, time, user, action, case, subject, reason.
/// Every text is escaped: a listener's login name and user agent are stored
/// as they came, and must not reach the terminal as control characters.
fn write_entry(out: &mut impl Write, e: &Entry) -> Result<(), Error> {
    writeln!(
        out,
        "{}\t{}\t{}\t{}\t{}\t{}\t{}",
        e.id,
        local_time(e.at),
        display_text(&e.user),
        e.action,
        display_text(e.case_id.as_deref().unwrap_or("-")),
        display_text(&e.subject),
        display_text(&e.reason)
    )?;
    Ok(())
}
