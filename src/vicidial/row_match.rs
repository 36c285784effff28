//! Which `recording_log` row a recording file is. VICIdial names repeat
//! (a template without a date, two calls to one number, a recording started
//! twice in one call), so "the newest row with this file name" can be
//! another call's: its campaign, phone and listen link. A file is matched
//! by its times instead, and never guessed:
//!
//! - a row is *possible* when the file could have been recorded in that
//!   call: the file was finished no earlier than the row's start plus the
//!   file's own length (give or take [`CLOCK_SLACK`]), and a date in the
//!   file's name is within `time_tolerance` of the row's start;
//! - a row *agrees* when it is possible and, besides, its length matches
//!   the file's duration (within [`length_slack`]) and the file was
//!   finished within `time_tolerance` of the row's end (VICIdial mixes and
//!   compresses minutes after a call, not days).
//!
//! The only row of a name is the file's when it is possible: there is no
//! other call it could be. Among several rows exactly one must agree. Two
//! that agree, or none that does (or an only row that is impossible), is
//! ambiguous: the caller records why and attributes nothing.

/// A recording file's times, as the ledger knows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileTimes {
    /// When the file was last written (its mtime), Unix seconds.
    pub mtime: i64,
    /// The call time its name gives (FULLDATE, EPOCH, …), where the
    /// template has one and it was believed.
    pub name_time: Option<i64>,
    /// Seconds of audio in the file (its WAV header), where known.
    pub duration: Option<u32>,
}

/// A `recording_log` row's own times.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RowTimes {
    /// `start_epoch`.
    pub start: Option<i64>,
    /// `end_epoch`.
    pub end: Option<i64>,
    /// `length_in_sec` (0 counts as not written yet).
    pub length: Option<u32>,
}

/// The outcome for one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowChoice {
    /// The index of the file's row among those given.
    Row(usize),
    /// No row can be told to be the file's: why, naming the rows.
    Ambiguous(String),
}

/// Clocks of a VICIdial cluster's web, telephony and database servers
/// differ by this much at most (VICIdial itself warns at a few seconds).
pub const CLOCK_SLACK: i64 = 60;

/// How far a row's `length_in_sec` may be from a file's duration: VICIdial
/// logs the seconds between its start and stop commands, the file holds
/// what Asterisk recorded in between.
pub fn length_slack(seconds: u32) -> u32 {
    (seconds / 10).max(5)
}

/// Picks the row among `rows` (with their `recording_log` ids, for the
/// reason) that `file` is; `tolerance` is `[naming] time_tolerance` in
/// seconds. `rows` must not be empty.
pub fn choose(file: &FileTimes, rows: &[(u32, RowTimes)], tolerance: i64) -> RowChoice {
    let ids = |pick: &dyn Fn(&RowTimes) -> bool| -> Vec<String> {
        rows.iter()
            .filter(|(_, r)| pick(r))
            .map(|(id, _)| id.to_string())
            .collect()
    };
    if let [(id, row)] = rows {
        return match possible(file, row, tolerance) {
            true => RowChoice::Row(0),
            false => RowChoice::Ambiguous(format!(
                "the only recording_log row ({id}, started {}) cannot be this file ({})",
                show(row.start),
                describe(file)
            )),
        };
    }
    let agreeing: Vec<usize> = (0..rows.len())
        .filter(|&i| agrees(file, &rows[i].1, tolerance))
        .collect();
    match agreeing[..] {
        [one] => RowChoice::Row(one),
        [] => RowChoice::Ambiguous(format!(
            "none of recording_log rows {} agrees with the file's times ({})",
            ids(&|_| true).join(", "),
            describe(file)
        )),
        _ => RowChoice::Ambiguous(format!(
            "recording_log rows {} all agree with the file's times ({})",
            ids(&|r| agrees(file, r, tolerance)).join(", "),
            describe(file)
        )),
    }
}

/// The file could have been recorded in this row's call.
fn possible(file: &FileTimes, row: &RowTimes, tolerance: i64) -> bool {
    let Some(start) = row.start.filter(|s| *s > 0) else {
        // A row without times contradicts nothing.
        return true;
    };
    let recorded = i64::from(file.duration.unwrap_or(0));
    let finished_after_start = file.mtime + CLOCK_SLACK >= start + recorded;
    let named_near = file
        .name_time
        .is_none_or(|t| t.abs_diff(start) <= tolerance.unsigned_abs());
    finished_after_start && named_near
}

/// Possible, of the file's length, and finished soon after the row's end.
fn agrees(file: &FileTimes, row: &RowTimes, tolerance: i64) -> bool {
    if !possible(file, row, tolerance) {
        return false;
    }
    let length = row.length.filter(|l| *l > 0);
    let same_length = match (file.duration, length) {
        (Some(d), Some(l)) => d.abs_diff(l) <= length_slack(d.max(l)),
        _ => true,
    };
    let end = row.end.filter(|e| *e > 0).or_else(|| {
        let start = row.start.filter(|s| *s > 0)?;
        Some(start + i64::from(length.or(file.duration).unwrap_or(0)))
    });
    let finished_soon = end.is_none_or(|e| file.mtime <= e + tolerance);
    same_length && finished_soon
}

fn describe(file: &FileTimes) -> String {
    let mut out = format!("written {}", show(Some(file.mtime)));
    if let Some(d) = file.duration {
        out.push_str(&format!(", {d}s long"));
    }
    if let Some(t) = file.name_time {
        out.push_str(&format!(", named for {}", show(Some(t))));
    }
    out
}

/// A Unix time as UTC, `-` when unknown.
fn show(t: Option<i64>) -> String {
    t.and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map(|t| t.format("%Y-%m-%d %H:%M:%SZ").to_string())
        .unwrap_or_else(|| "-".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;
    const T: i64 = 1_772_360_100;

    fn row(start: i64, length: u32) -> RowTimes {
        RowTimes {
            start: Some(start),
            end: Some(start + i64::from(length)),
            length: Some(length),
        }
    }

    fn file(mtime: i64, duration: Option<u32>) -> FileTimes {
        FileTimes {
            mtime,
            name_time: None,
            duration,
        }
    }

    #[test]
    fn an_older_file_is_its_own_call_not_the_newest() {
        let rows = [(11, row(T, 60)), (12, row(T + 3 * DAY, 60))];
        // Mixed a few minutes after each call.
        assert_eq!(
            choose(&file(T + 200, Some(60)), &rows, DAY),
            RowChoice::Row(0)
        );
        assert_eq!(
            choose(&file(T + 3 * DAY + 200, Some(60)), &rows, DAY),
            RowChoice::Row(1)
        );
    }

    #[test]
    fn lengths_tell_calls_of_one_day_apart() {
        let rows = [(11, row(T, 20)), (12, row(T + 3600, 95))];
        assert_eq!(
            choose(&file(T + 3900, Some(95)), &rows, DAY),
            RowChoice::Row(1)
        );
        // Same lengths: both agree, nothing is guessed.
        let same = [(11, row(T, 95)), (12, row(T + 3600, 95))];
        let RowChoice::Ambiguous(why) = choose(&file(T + 3900, Some(95)), &same, DAY) else {
            panic!("guessed");
        };
        assert!(why.contains("rows 11, 12 all agree"), "{why}");
        // Without a duration (an MP3), times alone cannot tell them apart.
        assert!(matches!(
            choose(&file(T + 3900, None), &rows, DAY),
            RowChoice::Ambiguous(_)
        ));
    }

    #[test]
    fn a_file_finished_before_every_call_is_none_of_them() {
        let rows = [(11, row(T, 60)), (12, row(T + DAY, 60))];
        let RowChoice::Ambiguous(why) = choose(&file(T - 3600, Some(60)), &rows, DAY) else {
            panic!("guessed");
        };
        assert!(why.contains("none of recording_log rows 11, 12"), "{why}");
        // The only row, begun after the file was finished: not this file's.
        let only = [(11, row(T, 60))];
        let RowChoice::Ambiguous(why) = choose(&file(T - 3600, None), &only, DAY) else {
            panic!("guessed");
        };
        assert!(why.contains("only recording_log row (11"), "{why}");
        // The only row stands on weaker evidence: a late mix or a length
        // VICIdial logged differently does not unmatch it.
        assert_eq!(
            choose(&file(T + 5 * DAY, Some(3)), &only, DAY),
            RowChoice::Row(0)
        );
    }

    #[test]
    fn the_names_date_and_clock_slack() {
        let rows = [(11, row(T, 60))];
        let mut f = file(T + 60, Some(60));
        f.name_time = Some(T - 2 * DAY);
        assert!(matches!(choose(&f, &rows, DAY), RowChoice::Ambiguous(_)));
        f.name_time = Some(T + 5);
        assert_eq!(choose(&f, &rows, DAY), RowChoice::Row(0));
        // Finished "before" the call by less than the clocks may differ.
        assert_eq!(
            choose(&file(T + 60 - CLOCK_SLACK, Some(60)), &rows, DAY),
            RowChoice::Row(0)
        );
        // Rows without times (not written yet) contradict nothing.
        let bare = [(11, RowTimes::default()), (12, RowTimes::default())];
        assert!(matches!(
            choose(&file(T, None), &bare, DAY),
            RowChoice::Ambiguous(_)
        ));
        assert_eq!(choose(&file(T, None), &bare[..1], DAY), RowChoice::Row(0));
    }
}
