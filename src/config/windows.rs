//! Upload windows (`[store] upload_windows`): local-time ranges in which
//! uploads may run, so archiving keeps off the dialer's busy hours.

use std::time::Duration;

use chrono::{NaiveTime, Timelike};

/// One `HH:MM-HH:MM` range; it may cross midnight (`20:00-07:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    start: u32,
    end: u32,
}

/// The configured windows; none configured means always open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadWindows {
    windows: Vec<Window>,
}

fn minute_of(text: &str) -> Option<u32> {
    let (h, m) = text.trim().split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60 && text.trim().len() == 5).then_some(h * 60 + m)
}

impl UploadWindows {
    /// Parses `["20:00-07:00", "12:00-13:00"]`; the error names the bad entry.
    pub fn parse(list: &[String]) -> Result<UploadWindows, String> {
        let mut windows = Vec::new();
        for (i, text) in list.iter().enumerate() {
            let bad = || {
                format!(
                    "[{i}] `{text}` is not a window; use \"HH:MM-HH:MM\" in local time, e.g. \"20:00-07:00\""
                )
            };
            let (a, b) = text.split_once('-').ok_or_else(bad)?;
            let (start, end) = (minute_of(a).ok_or_else(bad)?, minute_of(b).ok_or_else(bad)?);
            if start == end {
                return Err(format!(
                    "[{i}] `{text}` is empty; omit upload_windows to upload at any time"
                ));
            }
            windows.push(Window { start, end });
        }
        Ok(UploadWindows { windows })
    }

    /// True if uploads may run at local time `t`.
    pub fn is_open(&self, t: NaiveTime) -> bool {
        let m = t.hour() * 60 + t.minute();
        self.windows.is_empty()
            || self.windows.iter().any(|w| {
                if w.start < w.end {
                    (w.start..w.end).contains(&m)
                } else {
                    m >= w.start || m < w.end
                }
            })
    }

    /// How long from local time `t` until a window opens (zero if open now).
    pub fn until_open(&self, t: NaiveTime) -> Duration {
        if self.is_open(t) {
            return Duration::ZERO;
        }
        let now = t.hour() * 60 + t.minute();
        let minutes = self
            .windows
            .iter()
            .map(|w| (w.start + 24 * 60 - now) % (24 * 60))
            .min()
            .unwrap_or(0);
        Duration::from_secs(minutes as u64 * 60)
            .saturating_sub(Duration::from_secs(t.second() as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    #[test]
    fn windows_across_midnight() {
        let w = UploadWindows::parse(&["20:00-07:00".to_string()]).unwrap();
        assert!(
            w.is_open(at(23, 59))
                && w.is_open(at(0, 0))
                && w.is_open(at(6, 59))
                && w.is_open(at(20, 0))
        );
        assert!(!w.is_open(at(7, 0)) && !w.is_open(at(12, 0)) && !w.is_open(at(19, 59)));
        assert_eq!(w.until_open(at(19, 0)), Duration::from_secs(3600));
        assert_eq!(w.until_open(at(7, 0)), Duration::from_secs(13 * 3600));
        assert_eq!(w.until_open(at(21, 0)), Duration::ZERO);
    }

    #[test]
    fn several_windows_and_none() {
        let w =
            UploadWindows::parse(&["12:00-13:00".to_string(), "22:00-23:30".to_string()]).unwrap();
        assert!(w.is_open(at(12, 30)) && w.is_open(at(23, 0)) && !w.is_open(at(14, 0)));
        assert_eq!(w.until_open(at(14, 0)), Duration::from_secs(8 * 3600));
        assert!(UploadWindows::default().is_open(at(3, 0)));
    }

    #[test]
    fn bad_windows_are_named() {
        for bad in [
            "8:00-9:00",
            "20:00",
            "25:00-01:00",
            "10:00-10:00",
            "aa:bb-cc:dd",
        ] {
            let e =
                UploadWindows::parse(&["01:00-02:00".to_string(), bad.to_string()]).unwrap_err();
            assert!(e.starts_with("[1]"), "{bad}: {e}");
        }
    }
}
