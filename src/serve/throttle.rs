//! Failed logins slowed down inside recvault, before VICIdial's own lockout
//! (10 failures) is reached: after `free` failures of one key — a user
//! name, a client address — its next attempt must wait `base`, doubling
//! with each further failure up to `max`. An attempt that comes too early is
//! refused unchecked (no database query, no bcrypt), so guessing costs the
//! attacker time, not recvault. A key is forgotten [`FORGET`] after its last
//! failure (VICIdial's lock window) and a success forgets it at once.
//! Memory is bounded: at most `cap` keys, the longest quiet dropped first.
//! Shared by everything that logs VICIdial users in (listen links, and the
//! console later).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures are forgotten this long after the last one.
pub const FORGET: Duration = Duration::from_secs(15 * 60);

struct Failures {
    count: u32,
    last: Instant,
}

/// Exponential delays after failures, per key.
pub struct Throttle<K> {
    free: u32,
    base: Duration,
    max: Duration,
    cap: usize,
    keys: Mutex<HashMap<K, Failures>>,
}

impl<K: Hash + Eq> Throttle<K> {
    /// `free` failures without delay, then `base` doubling up to `max`; at
    /// most `cap` keys remembered.
    pub fn new(free: u32, base: Duration, max: Duration, cap: usize) -> Throttle<K> {
        Throttle {
            free,
            base,
            max,
            cap: cap.max(2),
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// How long `key` must still wait before an attempt; `None`: it may try now.
    pub fn wait(&self, key: &K) -> Option<Duration> {
        self.wait_at(key, Instant::now())
    }

    /// Counts a failed attempt of `key`.
    pub fn failed(&self, key: K) {
        self.failed_at(key, Instant::now())
    }

    /// Forgets `key`'s failures (it logged in).
    pub fn succeeded(&self, key: &K) {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        keys.remove(key);
    }

    fn delay(&self, count: u32) -> Duration {
        if count < self.free {
            return Duration::ZERO;
        }
        let doublings = (count - self.free).min(30);
        self.base.saturating_mul(1 << doublings).min(self.max)
    }

    fn wait_at(&self, key: &K, now: Instant) -> Option<Duration> {
        let keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        let f = keys.get(key)?;
        if now.duration_since(f.last) >= FORGET {
            return None;
        }
        let until = f.last + self.delay(f.count);
        (until > now).then(|| until - now)
    }

    fn failed_at(&self, key: K, now: Instant) {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if keys.len() >= self.cap && !keys.contains_key(&key) {
            keys.retain(|_, f| now.duration_since(f.last) < FORGET);
            if keys.len() >= self.cap {
                // Still full: drop the quieter half (amortised: once per cap/2 keys).
                let mut lasts: Vec<Instant> = keys.values().map(|f| f.last).collect();
                let middle = lasts.len() / 2;
                let (_, cut, _) = lasts.select_nth_unstable(middle);
                let cut = *cut;
                keys.retain(|_, f| f.last > cut);
            }
        }
        let f = keys.entry(key).or_insert(Failures {
            count: 0,
            last: now,
        });
        if now.duration_since(f.last) >= FORGET {
            f.count = 0;
        }
        f.count = f.count.saturating_add(1);
        f.last = now;
    }

    /// Keys remembered (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.keys.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_after_the_free_failures_and_success_forgets() {
        let t = Throttle::new(3, Duration::from_secs(5), Duration::from_secs(900), 100);
        let t0 = Instant::now();
        for _ in 0..2 {
            t.failed_at("u", t0);
        }
        assert_eq!(t.wait_at(&"u", t0), None);
        t.failed_at("u", t0);
        assert_eq!(t.wait_at(&"u", t0), Some(Duration::from_secs(5)));
        assert_eq!(
            t.wait_at(&"u", t0 + Duration::from_secs(2)),
            Some(Duration::from_secs(3))
        );
        assert_eq!(t.wait_at(&"u", t0 + Duration::from_secs(5)), None);
        t.failed_at("u", t0);
        assert_eq!(t.wait_at(&"u", t0), Some(Duration::from_secs(10)));
        for _ in 0..40 {
            t.failed_at("u", t0);
        }
        assert_eq!(t.wait_at(&"u", t0), Some(Duration::from_secs(900)));
        // Forgotten after FORGET, and at once by a success.
        assert_eq!(t.wait_at(&"u", t0 + FORGET), None);
        t.failed_at("u", t0 + FORGET);
        assert_eq!(t.wait_at(&"u", t0 + FORGET), None, "counting starts over");
        assert_eq!(t.wait_at(&"v", t0), None);
        t.succeeded(&"u");
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn memory_stays_bounded_under_a_flood_of_names() {
        let t = Throttle::new(3, Duration::from_secs(5), Duration::from_secs(900), 1000);
        let t0 = Instant::now();
        for i in 0..3 {
            t.failed_at(
                "victim".to_string(),
                t0 + Duration::from_millis(100_000 + i),
            );
        }
        for i in 0..100_000u64 {
            t.failed_at(format!("name{i}"), t0 + Duration::from_millis(i));
            assert!(t.len() <= 1000);
        }
        // The most recent failures are the ones kept.
        assert!(
            t.wait_at(&"victim".to_string(), t0 + Duration::from_secs(100))
                .is_some()
        );
    }
}
