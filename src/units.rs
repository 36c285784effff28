//! Time and size as recvault reads the clock and as operators read and
//! write them: unix seconds, local-time text, byte counts. No other module
//! formats or parses a date or a size on its own.

use chrono::{Local, TimeZone};

/// Seconds since the epoch.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Nanoseconds since the epoch (saturating: the clock can say anything).
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(nanos)
        .unwrap_or(0)
}

/// A duration in nanoseconds, saturating at `i64::MAX` (about 292 years).
pub fn nanos(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

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

/// Parses `1234`, `64KiB`, `16MiB`, `1GiB`, `10MB` into bytes.
pub fn parse_bytes(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// A unix time in the machine's local time zone.
pub fn local_time(secs: i64) -> String {
    Local
        .timestamp_opt(secs, 0)
        .single()
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| secs.to_string())
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

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_bytes("64MiB"), Some(64 << 20));
        assert_eq!(parse_bytes("5000"), Some(5000));
        assert_eq!(parse_bytes("10MB"), Some(10_000_000));
        assert_eq!(parse_bytes("lots"), None);
        assert_eq!(parse_bytes("1XB"), None);
    }
}
