//! The progress line `recvault run --once` keeps on a terminal: files taken
//! in while the spool is read, then recordings archived of those due, the
//! rate and the time left. Shown only when stdout is a terminal and not
//! under systemd (`INVOCATION_ID`, `JOURNAL_STREAM`); anywhere else the
//! counters are kept and nothing is printed.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::units::human_bytes;

/// Counters the run updates and the progress line reads.
#[derive(Debug, Default)]
pub struct Progress {
    listed: AtomicU64,
    /// Recordings due when the pass started (0 until then).
    due: AtomicU64,
    archived: AtomicU64,
    bytes: AtomicU64,
    failed: AtomicU64,
}

/// True if a progress line belongs on stdout: a terminal, and not a
/// service of systemd (whose stdout may still be a tty-less journal stream).
pub fn on_terminal() -> bool {
    std::io::stdout().is_terminal()
        && std::env::var_os("INVOCATION_ID").is_none()
        && std::env::var_os("JOURNAL_STREAM").is_none()
}

impl Progress {
    /// Files taken in so far by the rescan under way.
    pub fn listed(&self, n: u64) {
        self.listed.store(n, Ordering::Relaxed);
    }

    /// The pass starts with `n` recordings due.
    pub fn due(&self, n: u64) {
        self.due.store(n, Ordering::Relaxed);
    }

    pub fn archived(&self, bytes: u64) {
        self.archived.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }

    /// The line as it reads `elapsed` after the pass started.
    fn line(&self, elapsed: Duration) -> String {
        let due = self.due.load(Ordering::Relaxed);
        if due == 0 {
            let listed = self.listed.load(Ordering::Relaxed);
            return format!("reading the spool: {listed} files taken in");
        }
        let archived = self.archived.load(Ordering::Relaxed);
        let failed = self.failed.load(Ordering::Relaxed);
        let secs = elapsed.as_secs_f64().max(0.001);
        let rate = archived as f64 / secs;
        let left = due.saturating_sub(archived + failed);
        let eta = match rate > 0.0 {
            true => {
                let s = (left as f64 / rate).ceil() as u64;
                humantime::format_duration(Duration::from_secs(s)).to_string()
            }
            false => "unknown".to_string(),
        };
        format!(
            "archived {archived} of {due} ({}), {failed} failed, {rate:.0}/s, {eta} left",
            human_bytes(self.bytes.load(Ordering::Relaxed))
        )
    }
}

/// The progress line on the terminal, redrawn every second until dropped.
pub struct ProgressLine {
    task: Option<JoinHandle<()>>,
}

impl ProgressLine {
    /// Starts redrawing `progress` if stdout is a terminal (see [`on_terminal`]).
    pub fn start(progress: &Arc<Progress>) -> ProgressLine {
        if !on_terminal() {
            return ProgressLine { task: None };
        }
        let progress = progress.clone();
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let mut pass_started = None;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                if progress.due.load(Ordering::Relaxed) > 0 {
                    pass_started.get_or_insert_with(Instant::now);
                }
                let elapsed = pass_started.unwrap_or(started).elapsed();
                let mut out = std::io::stdout().lock();
                let _ = write!(out, "\r\x1b[K{}", progress.line(elapsed));
                let _ = out.flush();
            }
        });
        ProgressLine { task: Some(task) }
    }
}

impl Drop for ProgressLine {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "\r\x1b[K");
            let _ = out.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_says_what_is_done_and_what_is_left() {
        let p = Progress::default();
        p.listed(1234);
        assert_eq!(
            p.line(Duration::from_secs(1)),
            "reading the spool: 1234 files taken in"
        );
        p.due(100);
        for _ in 0..40 {
            p.archived(2048);
        }
        p.failed();
        let line = p.line(Duration::from_secs(2));
        assert_eq!(
            line,
            "archived 40 of 100 (80.0 KiB), 1 failed, 20/s, 3s left"
        );
    }
}
