//! Store outages: one unreachable store means one paused queue and a few log
//! lines, not a storm of requests and messages. Exponential back-off with
//! full jitter, probing with one upload at a time while recovering.

use std::time::{Duration, Instant};

use crate::error::Error;

/// Exponential back-off with full jitter: a random wait in
/// `[d/2, d]` where `d = base * 2^attempt`, capped at `max`.
pub fn backoff(attempt: u32, base: Duration, max: Duration) -> Duration {
    let d = base.saturating_mul(1u32 << attempt.min(20)).min(max);
    let half = d / 2;
    half + Duration::from_millis(fastrand::u64(0..=half.as_millis() as u64))
}

/// How long the log stays quiet about an outage that goes on.
const LOG_EVERY: Duration = Duration::from_secs(300);

/// The state of the store as the daemon's uploads have found it.
#[derive(Debug, Default)]
pub struct Outage {
    failures: u32,
    until: Option<Instant>,
    last_log: Option<Instant>,
}

impl Outage {
    /// One more upload failed because the store is unreachable.
    pub fn failure(&mut self, error: &Error, store: &str) {
        self.failures += 1;
        let pause = backoff(self.failures, Duration::from_secs(1), LOG_EVERY);
        self.until = Some(Instant::now() + pause);
        let log_due = self.last_log.is_none_or(|t| t.elapsed() >= LOG_EVERY);
        if self.failures == 1 || log_due {
            tracing::warn!(store = %store, failures = self.failures, retry_in = ?pause, "store unavailable, uploads paused: {error}");
            self.last_log = Some(Instant::now());
        }
    }

    /// An upload went through. True if that ended an outage (the recordings
    /// it parked are then due again at once).
    pub fn success(&mut self) -> bool {
        let ended = self.failures > 0;
        if ended {
            tracing::info!(
                failures = self.failures,
                "store reachable again; resuming uploads"
            );
        }
        *self = Outage::default();
        ended
    }

    /// True while uploads wait for the back-off to pass.
    pub fn paused(&self) -> bool {
        self.until.is_some_and(|t| Instant::now() < t)
    }

    /// When the pause ends, while paused.
    pub fn pause_ends(&self) -> Option<Instant> {
        self.until.filter(|_| self.paused())
    }

    /// True once a failure was seen and no upload has succeeded since.
    pub fn ongoing(&self) -> bool {
        self.failures > 0
    }

    /// While recovering from an outage, probe with one upload at a time.
    pub fn max_in_flight(&self, workers: usize) -> usize {
        if self.failures > 0 { 1 } else { workers }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_within_bounds() {
        let base = Duration::from_secs(1);
        let max = Duration::from_secs(300);
        for attempt in 0..30 {
            let d = backoff(attempt, base, max);
            let cap = base.saturating_mul(1 << attempt.min(20)).min(max);
            assert!(
                d >= cap / 2 && d <= cap,
                "attempt {attempt}: {d:?} vs {cap:?}"
            );
        }
        assert!(backoff(30, base, max) <= max);
    }
}
