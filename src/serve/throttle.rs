//! Failed logins slowed down inside recvault, before VICIdial's own lockout
//! (10 failures) is reached: after `free` failures of one key — a user
//! name, a client address — its next attempt must wait `base`, doubling
//! with each further failure up to `max`. An attempt that comes too early is
//! refused unchecked (no database query, no bcrypt), so guessing costs the
//! attacker time, not recvault. A key is forgotten [`FORGET`] after its last
//! failure (VICIdial's lock window) and a success forgets it at once.
//! Memory is bounded: at most `cap` keys, the longest quiet dropped first.
//! [`Logins`] pairs the two keys of a login (its name, its address): one
//! instance per login surface, shared by every kind of account that logs
//! in there (the console's local accounts and its VICIdial users add up).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
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

/// Failures of one user name before its attempts are slowed (VICIdial locks at 10).
const USER_FREE: u32 = 3;
/// Failures from one address before its attempts are slowed (an office
/// behind one address has several people mistyping).
const ADDRESS_FREE: u32 = 10;
/// The first delay, doubled with each further failure, and the longest
/// (VICIdial's lock lasts 15 minutes).
const FIRST_DELAY: Duration = Duration::from_secs(5);
const LONGEST_DELAY: Duration = Duration::from_secs(15 * 60);
/// User names and addresses whose failures are remembered, each.
const REMEMBERED: usize = 10_000;

/// Failed logins per user name and per client address, whatever checked
/// the password: a guesser switching between account kinds gains nothing.
pub struct Logins {
    users: Throttle<String>,
    addresses: Throttle<IpAddr>,
}

impl Default for Logins {
    fn default() -> Logins {
        Logins::new()
    }
}

impl Logins {
    /// The delays every login surface uses.
    pub fn new() -> Logins {
        Logins {
            users: Throttle::new(USER_FREE, FIRST_DELAY, LONGEST_DELAY, REMEMBERED),
            addresses: Throttle::new(ADDRESS_FREE, FIRST_DELAY, LONGEST_DELAY, REMEMBERED),
        }
    }

    /// The key of a typed name: VICIdial's input filter, then case folded
    /// (VICIdial's names compare without case), so `Bob` and `bob ` are one.
    fn key(name: &str) -> String {
        crate::vicidial::users::sanitize(name).to_lowercase()
    }

    /// How long `name` from `client` must still wait; `None`: it may try now.
    pub fn wait(&self, name: &str, client: IpAddr) -> Option<Duration> {
        self.users
            .wait(&Logins::key(name))
            .max(self.addresses.wait(&client))
    }

    /// Counts a wrong password (or unknown name) for `name` and `client`.
    pub fn failed(&self, name: &str, client: IpAddr) {
        self.users.failed(Logins::key(name));
        self.addresses.failed(client);
    }

    /// Forgets `name`'s failures (it logged in); its address keeps its count.
    pub fn succeeded(&self, name: &str) {
        self.users.succeeded(&Logins::key(name));
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
    #[test]
    fn logins_share_one_count_per_name_and_per_address() {
        let logins = Logins::new();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        // One name typed as VICIdial's filter and case folding see it.
        logins.failed("Bob", a);
        logins.failed("bob ", b);
        assert_eq!(logins.wait("bob", "10.0.0.3".parse().unwrap()), None);
        logins.failed("'bob'", a);
        assert!(logins.wait("BOB", "10.0.0.3".parse().unwrap()).is_some());
        logins.succeeded("bob");
        assert_eq!(logins.wait("bob", b), None);
        // Ten failures of any names from one address slow that address.
        for i in 0..10 {
            logins.failed(&format!("user{i}"), b);
        }
        assert!(logins.wait("someone", b).is_some());
        assert_eq!(logins.wait("someone", a), None);
    }
}
