//! Requests per client address: a token bucket each (`client_rate` a
//! second, twice that in a burst), so one client cannot take the server
//! from everyone else. Forgotten a minute after a client's last request, and
//! bounded in number whatever the clients do.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Addresses tracked at most; beyond, idle ones are forgotten first.
const TRACKED: usize = 10_000;
const FORGET_AFTER: Duration = Duration::from_secs(60);

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Per-address request buckets.
pub struct ClientLimit {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl ClientLimit {
    pub fn new(per_second: u32) -> ClientLimit {
        let rate = f64::from(per_second.max(1));
        ClientLimit {
            rate,
            burst: rate * 2.0,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request's token for `client`: true if it may go ahead.
    pub fn admit(&self, client: IpAddr) -> bool {
        self.admit_at(client, Instant::now())
    }

    fn admit_at(&self, client: IpAddr, now: Instant) -> bool {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= TRACKED && !buckets.contains_key(&client) {
            buckets.retain(|_, b| now.duration_since(b.at) < FORGET_AFTER);
            if buckets.len() >= TRACKED {
                // Everyone is busy: no new address gets a bucket of its own.
                return false;
            }
        }
        let bucket = buckets.entry(client).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let elapsed = now.duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate() {
        let limit = ClientLimit::new(10);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let t0 = Instant::now();
        let admitted = (0..100).filter(|_| limit.admit_at(a, t0)).count();
        assert_eq!(admitted, 20, "the burst");
        assert!(limit.admit_at(b, t0), "another client is not held up");
        assert!(!limit.admit_at(a, t0 + Duration::from_millis(50)));
        assert!(limit.admit_at(a, t0 + Duration::from_millis(100)));
        let later = t0 + Duration::from_secs(10);
        assert_eq!((0..100).filter(|_| limit.admit_at(a, later)).count(), 20);
    }
}
