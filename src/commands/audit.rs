//! `recvault audit [--since D] [--case C]` lists the audit trail, one
//! tab-separated line per entry; `recvault audit verify` checks its hash chain.

use std::io::Write;
use std::process::ExitCode;

use crate::cli::AuditCommand;
use crate::config::Config;
use crate::error::Error;
use crate::ledger::audit::{AuditFilter, Entry};
use crate::units::local_time;

pub(super) fn audit(
    config: &Config,
    since: Option<String>,
    case: Option<String>,
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
    let filter = AuditFilter {
        since: super::date(since)?,
        case_id: case,
    };
    ledger.audit_entries(&filter, |e| write_entry(out, e))?;
    Ok(ExitCode::SUCCESS)
}

/// One entry as a line: id, time, user, action, case, subject, reason.
fn write_entry(out: &mut impl Write, e: &Entry) -> Result<(), Error> {
    writeln!(
        out,
        "{}\t{}\t{}\t{}\t{}\t{}\t{}",
        e.id,
        local_time(e.at),
        e.user,
        e.action,
        e.case_id.as_deref().unwrap_or("-"),
        e.subject,
        e.reason
    )?;
    Ok(())
}
