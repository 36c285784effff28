//! What the ledger knows, for people: `recvault status` and `recvault ls`.

use std::io::{self, Write};

use chrono::{Local, TimeZone};

use std::collections::BTreeMap;

use crate::hold::{self, Hold, HoldError};
use crate::keys::display_name;
use crate::ledger::{Ledger, LedgerError, ListFilter, now_secs};
use crate::policy::RetentionPolicy;
use crate::recording::{Recording, State};
use crate::retention;
use crate::spool::glob_match;

/// Bytes as a person reads them (binary units).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// A unix time in the machine's local time zone.
pub fn local_time(secs: i64) -> String {
    Local
        .timestamp_opt(secs, 0)
        .single()
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| secs.to_string())
}

fn age(secs: i64) -> String {
    let d = (now_secs() - secs).max(0) as u64;
    humantime::format_duration(std::time::Duration::from_secs(d - d % 60)).to_string()
}

/// Writes `recvault status`: totals per state, the backlog, the last errors.
pub fn status(ledger: &Ledger, out: &mut impl Write) -> Result<(), ReportError> {
    writeln!(out, "ledger: {}", ledger.path().display())?;
    writeln!(
        out,
        "{:<15} {:>10} {:>12} {:>12}",
        "state", "count", "original", "stored"
    )?;
    let mut total = 0;
    for (state, t) in ledger.totals()? {
        total += t.count;
        writeln!(
            out,
            "{:<15} {:>10} {:>12} {:>12}",
            state.as_str(),
            t.count,
            human_bytes(t.bytes),
            human_bytes(t.object_bytes)
        )?;
    }
    writeln!(out, "{:<15} {:>10}", "total", total)?;
    writeln!(
        out,
        "unattributed: {} (file name did not match [naming] template)",
        ledger.unattributed_count()?
    )?;
    let active = hold::list(ledger)?
        .iter()
        .filter(|h| h.released_at.is_none())
        .count();
    writeln!(out, "legal holds: {active} active")?;
    match ledger.oldest_waiting()? {
        Some(r) => writeln!(
            out,
            "backlog: oldest waiting {} ({} ago, {}): {}",
            local_time(r.time_secs()),
            age(r.time_secs()),
            r.state,
            display_name(&r.name)
        )?,
        None => writeln!(out, "backlog: none")?,
    }
    let errors = ledger.recent_errors(5)?;
    if errors.is_empty() {
        writeln!(out, "last errors: none")?;
    } else {
        writeln!(out, "last errors:")?;
        for r in errors {
            writeln!(
                out,
                "  {} {} {}: {}",
                local_time(r.updated_at),
                r.state,
                display_name(&r.name),
                r.last_error.as_deref().unwrap_or("")
            )?;
        }
    }
    Ok(())
}

/// One line of `recvault ls`, tab-separated: id, state, time, size, key, name.
pub fn ls_line(r: &Recording) -> String {
    format!(
        "{}\t{}\t{}\t{}\t{}\t{}",
        r.id,
        r.state,
        local_time(r.time_secs()),
        r.identity.size,
        r.object_key.as_deref().unwrap_or("-"),
        display_name(&r.name)
    )
}

/// Writes `recvault ls`: every recording matching the filter and name glob.
pub fn ls(
    ledger: &Ledger,
    filter: &ListFilter,
    name_glob: Option<&[u8]>,
    out: &mut impl Write,
) -> Result<u64, ReportError> {
    let mut n = 0;
    let mut write_err = None;
    ledger.list(filter, |r| {
        if write_err.is_some() || name_glob.is_some_and(|g| !glob_match(g, &r.name)) {
            return;
        }
        match writeln!(out, "{}", ls_line(r)) {
            Ok(()) => n += 1,
            Err(e) => write_err = Some(e),
        }
    })?;
    match write_err {
        Some(e) => Err(e.into()),
        None => Ok(n),
    }
}

/// Where a recording is now, for people.
pub fn location(r: &Recording) -> String {
    let key = r.object_key.as_deref().unwrap_or("-");
    let step = match r.state {
        State::Failed => r.resume_state.unwrap_or(State::Seen),
        s => s,
    };
    match step {
        State::Uploaded | State::Verified => {
            format!("local {} + store {key}", r.path.display())
        }
        State::LocalDeleted => format!("store {key}"),
        State::RemoteDeleted => format!(
            "deleted {} by {}",
            r.deleted_at.map(local_time).unwrap_or_default(),
            r.deleted_by.as_deref().unwrap_or("retention")
        ),
        State::Gone => "gone (removed by someone else before archiving)".to_string(),
        _ => format!("local {}", r.path.display()),
    }
}

/// Writes `recvault retention plan`: each recording due by `until` (when,
/// why), then totals per campaign. Held recordings are listed as kept.
pub fn retention_plan(
    ledger: &Ledger,
    policy: &RetentionPolicy,
    now: i64,
    until: i64,
    only: Option<&str>,
    totals_only: bool,
    out: &mut impl Write,
) -> Result<(), ReportError> {
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
    retention::for_each_due_summary(ledger, policy, until, only, |d| {
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

/// Writes `recvault hold list`.
pub fn hold_list(holds: &[Hold], out: &mut impl Write) -> Result<(), ReportError> {
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
            h.case_id,
            h.id,
            local_time(h.created_at),
            h.created_by,
            h.describe(),
            h.reason
        )?;
    }
    Ok(())
}

/// Writes `recvault hold show CASE`: its holds, then each recording they
/// cover with where it is now.
pub fn hold_show(ledger: &Ledger, case_id: &str, out: &mut impl Write) -> Result<(), ReportError> {
    let holds = hold::of_case(ledger, case_id)?;
    hold_list(&holds, out)?;
    for h in holds.iter().filter(|h| h.released_at.is_some()) {
        writeln!(
            out,
            "#{} released by {}: {}",
            h.id,
            h.released_by.as_deref().unwrap_or("?"),
            h.release_reason.as_deref().unwrap_or("")
        )?;
    }
    writeln!(
        out,
        "id\tstate\tcampaign\tcall time\tphone\tagent\twhere\tname"
    )?;
    let mut n = 0;
    hold::covered(ledger, case_id, |r| {
        n += 1;
        writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            r.id,
            r.state,
            r.campaign.as_deref().unwrap_or("-"),
            local_time(r.time_secs()),
            r.phone.as_deref().unwrap_or("-"),
            r.agent.as_deref().unwrap_or("-"),
            location(r),
            display_name(&r.name)
        )
    })?;
    writeln!(out, "{n} recordings")?;
    Ok(())
}

/// A report that could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Hold(#[from] HoldError),
    #[error("output: {0}")]
    Io(#[from] io::Error),
}

/// Parses `YYYY-MM-DD` or `YYYY-MM-DD HH:MM[:SS]` (local time) or RFC 3339.
pub fn parse_date(text: &str) -> Result<i64, String> {
    use chrono::{NaiveDate, NaiveDateTime};
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp());
    }
    let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M"))
        .or_else(|_| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default())
        })
        .map_err(|_| {
            format!("`{text}` is not a date; use YYYY-MM-DD or \"YYYY-MM-DD HH:MM:SS\"")
        })?;
    Local
        .from_local_datetime(&naive)
        .earliest()
        .map(|t| t.timestamp())
        .ok_or_else(|| format!("`{text}` does not exist in the local time zone"))
}

/// Like [`parse_date`], for the end of a range: a plain date means the end
/// of that day (the range includes it); a time means up to and including it.
pub fn parse_date_end(text: &str) -> Result<i64, String> {
    let start = parse_date(text)?;
    let plain_date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok();
    Ok(if plain_date {
        let next = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.succ_opt())
            .map(|d| d.format("%Y-%m-%d").to_string());
        next.map(|n| parse_date(&n))
            .transpose()?
            .unwrap_or(start + 86400)
    } else {
        start + 1
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_and_dates() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
        assert_eq!(parse_date("2026-03-01T10:15:00Z").unwrap(), 1772360100);
        assert!(parse_date("2026-03-01").is_ok());
        assert!(parse_date("yesterday").is_err());
    }
}
