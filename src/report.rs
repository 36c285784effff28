//! What the ledger knows, for people: `recvault status` and `recvault ls`.

use std::io::{self, Write};

use chrono::{Local, TimeZone};

use crate::keys::display_name;
use crate::ledger::{Ledger, LedgerError, ListFilter, now_secs};
use crate::recording::Recording;
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

/// A report that could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
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
