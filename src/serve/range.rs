//! The `Range` request header (RFC 9110 §14): one byte range, resolved
//! against the recording's size. Several ranges are answered with the whole
//! recording (a server may ignore Range); anything malformed or outside the
//! recording is refused with 416, never guessed at.

/// What to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    /// The whole recording (no Range, another unit, or several ranges).
    Whole,
    /// Bytes `start..=end` (206).
    Part { start: u64, end: u64 },
    /// A range that is malformed or outside the recording (416).
    Unsatisfiable,
}

/// Resolves a `Range` header value against a recording of `size` bytes.
pub fn resolve(header: Option<&str>, size: u64) -> Wanted {
    let Some(value) = header.map(str::trim) else {
        return Wanted::Whole;
    };
    let Some(spec) = value.strip_prefix("bytes=") else {
        // Another unit: ignored, as RFC 9110 asks.
        return match value.split_once('=') {
            Some((unit, _))
                if !unit.is_empty() && unit.bytes().all(|b| b.is_ascii_alphanumeric()) =>
            {
                Wanted::Whole
            }
            _ => Wanted::Unsatisfiable,
        };
    };
    if spec.contains(',') {
        return Wanted::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Wanted::Unsatisfiable;
    };
    let number = |s: &str| -> Option<Option<u64>> {
        if s.is_empty() {
            return Some(None);
        }
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // A number too big for u64 is still a number: past any end.
        Some(Some(s.parse().unwrap_or(u64::MAX)))
    };
    let (Some(first), Some(last)) = (number(first.trim()), number(last.trim())) else {
        return Wanted::Unsatisfiable;
    };
    match (first, last) {
        // `bytes=-N`: the last N bytes.
        (None, Some(n)) if n > 0 && size > 0 => Wanted::Part {
            start: size.saturating_sub(n),
            end: size - 1,
        },
        (Some(start), end) if start < size && end.is_none_or(|e| e >= start) => Wanted::Part {
            start,
            end: end.unwrap_or(u64::MAX).min(size - 1),
        },
        _ => Wanted::Unsatisfiable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(start: u64, end: u64) -> Wanted {
        Wanted::Part { start, end }
    }

    #[test]
    fn ranges_browsers_send() {
        assert_eq!(resolve(None, 100), Wanted::Whole);
        assert_eq!(resolve(Some("bytes=0-"), 100), part(0, 99));
        assert_eq!(resolve(Some("bytes=10-19"), 100), part(10, 19));
        assert_eq!(resolve(Some("bytes=90-200"), 100), part(90, 99));
        assert_eq!(resolve(Some("bytes=-10"), 100), part(90, 99));
        assert_eq!(resolve(Some("bytes=-500"), 100), part(0, 99));
        assert_eq!(resolve(Some(" bytes=99-99 "), 100), part(99, 99));
        // A huge end is clamped; several ranges get the whole recording.
        assert_eq!(
            resolve(Some("bytes=0-99999999999999999999999999"), 100),
            part(0, 99)
        );
        assert_eq!(resolve(Some("bytes=0-1,5-6"), 100), Wanted::Whole);
        assert_eq!(resolve(Some("items=0-1"), 100), Wanted::Whole);
    }

    #[test]
    fn hostile_ranges_are_refused() {
        for bad in [
            "bytes=100-",
            "bytes=100-200",
            "bytes=99999999999999999999999-",
            "bytes=50-10",
            "bytes=-0",
            "bytes=--5",
            "bytes=-5-10",
            "bytes=-5-",
            "bytes=a-b",
            "bytes=1.5-2",
            "bytes=",
            "bytes=-",
            "bytes=5",
            "=5-6",
            "bytes 0-5",
        ] {
            assert_eq!(resolve(Some(bad), 100), Wanted::Unsatisfiable, "{bad}");
        }
        assert_eq!(resolve(Some("bytes=0-"), 0), Wanted::Unsatisfiable);
        assert_eq!(resolve(Some("bytes=-1"), 0), Wanted::Unsatisfiable);
    }
}
