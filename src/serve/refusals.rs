//! Connections and requests refused before any link checked: an address
//! outside `allow`, a client over its rate or its share of connections, a
//! target too long, a path that is no link or a signature that does not
//! match. They are not listens, so they never reach the audit trail (anyone
//! who can reach the port could fill it): each is counted in `/metrics` by
//! reason, and logged at most once a minute per reason with how many there
//! were. Nothing a client sent — its target above all, which may hold a
//! working signature — is ever logged: only the reason and an address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::metrics::Metrics;

/// How often each reason is logged at most.
pub const LOG_EVERY: Duration = Duration::from_secs(60);

/// Why a connection or request was refused unaudited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refused {
    /// The peer is in neither `allow` nor `metrics_allow`: closed at accept.
    AddressNotAllowed,
    /// The peer already holds its share of the connection slots.
    AddressShare,
    /// Every connection slot is taken.
    ConnectionsFull,
    /// Over `client_rate` (429).
    Rate,
    /// A request target over the limit (414).
    TargetTooLong,
    /// Not GET or HEAD (405).
    Method,
    /// `/r/…` that is not a link (403).
    BadLink,
    /// A link whose signature does not match, or not the recording its id
    /// names now (403).
    BadSignature,
    /// A link revoked with `recvault url revoke` (403).
    Revoked,
    /// `/healthz` or `/metrics` from outside `metrics_allow` (403).
    MetricsNotAllowed,
    /// Any other path (404).
    NotFound,
}

impl Refused {
    /// The metrics label (one of `metrics::REFUSALS`).
    pub fn as_str(self) -> &'static str {
        match self {
            Refused::AddressNotAllowed => "address_not_allowed",
            Refused::AddressShare => "address_share",
            Refused::ConnectionsFull => "connections_full",
            Refused::Rate => "rate",
            Refused::TargetTooLong => "target_too_long",
            Refused::Method => "method",
            Refused::BadLink => "bad_link",
            Refused::BadSignature => "bad_signature",
            Refused::Revoked => "revoked",
            Refused::MetricsNotAllowed => "metrics_not_allowed",
            Refused::NotFound => "not_found",
        }
    }

    /// What the log line says.
    fn describe(self) -> &'static str {
        match self {
            Refused::AddressNotAllowed => {
                "connection closed at once: the address is in neither serve.allow nor serve.metrics_allow"
            }
            Refused::AddressShare => {
                "connection closed at once: the address already holds its share of serve.max_connections"
            }
            Refused::ConnectionsFull => "connection closed at once: serve.max_connections are open",
            Refused::Rate => "request refused: over serve.client_rate",
            Refused::TargetTooLong => "request refused: target too long",
            Refused::Method => "request refused: not GET or HEAD",
            Refused::BadLink => "request refused: not a recording link",
            Refused::BadSignature => {
                "request refused: the link's signature does not match the recording its id names"
            }
            Refused::Revoked => "request refused: the link was revoked (recvault url revoke)",
            Refused::MetricsNotAllowed => {
                "request refused: /healthz or /metrics from outside serve.metrics_allow"
            }
            Refused::NotFound => "request refused: no such path",
        }
    }
}

/// One reason's count since its last log line.
struct Tally {
    since: Instant,
    count: u64,
    last_client: IpAddr,
}

/// Counts refusals and logs them, rate-limited.
pub struct Refusals {
    metrics: Arc<Metrics>,
    tallies: Mutex<HashMap<Refused, Tally>>,
}

impl Refusals {
    pub fn new(metrics: Arc<Metrics>) -> Refusals {
        Refusals {
            metrics,
            tallies: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one refusal from `client`: the first of its reason is logged at
    /// once, the rest once [`LOG_EVERY`] has passed, with their number.
    pub fn note(&self, why: Refused, client: IpAddr) {
        self.metrics.refused(why.as_str());
        self.note_at(why, client, Instant::now());
    }

    fn note_at(&self, why: Refused, client: IpAddr, now: Instant) {
        let mut tallies = self.tallies.lock().unwrap_or_else(|e| e.into_inner());
        match tallies.get_mut(&why) {
            None => {
                tracing::info!(%client, "{} (more are counted and logged once a minute)", why.describe());
                let tally = Tally {
                    since: now,
                    count: 0,
                    last_client: client,
                };
                tallies.insert(why, tally);
            }
            Some(t) => {
                t.count += 1;
                t.last_client = client;
                if now.duration_since(t.since) >= LOG_EVERY {
                    log(why, t, now);
                }
            }
        }
    }

    /// Logs every reason whose minute is over (called once a minute, so a
    /// burst's count is logged even when nothing follows it).
    pub fn flush(&self) {
        self.flush_at(Instant::now());
    }

    fn flush_at(&self, now: Instant) {
        let mut tallies = self.tallies.lock().unwrap_or_else(|e| e.into_inner());
        for (why, t) in tallies.iter_mut() {
            if t.count > 0 && now.duration_since(t.since) >= LOG_EVERY {
                log(*why, t, now);
            }
        }
        // A reason quiet for a whole minute starts over (logged at once again).
        tallies.retain(|_, t| t.count > 0 || now.duration_since(t.since) < LOG_EVERY);
    }

    /// Refusals counted but not yet logged (for tests).
    #[cfg(test)]
    fn waiting(&self, why: Refused) -> Option<u64> {
        let tallies = self.tallies.lock().unwrap_or_else(|e| e.into_inner());
        tallies.get(&why).map(|t| t.count)
    }
}

fn log(why: Refused, t: &mut Tally, now: Instant) {
    let secs = now.duration_since(t.since).as_secs();
    tracing::info!(
        count = t.count,
        latest_client = %t.last_client,
        "{} ({} more in the last {secs}s)",
        why.describe(),
        t.count
    );
    t.count = 0;
    t.since = now;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_metrics_reasons() {
        for why in [
            Refused::AddressNotAllowed,
            Refused::AddressShare,
            Refused::ConnectionsFull,
            Refused::Rate,
            Refused::TargetTooLong,
            Refused::Method,
            Refused::BadLink,
            Refused::BadSignature,
            Refused::Revoked,
            Refused::MetricsNotAllowed,
            Refused::NotFound,
        ] {
            assert!(crate::metrics::REFUSALS.contains(&why.as_str()), "{why:?}");
        }
    }

    #[test]
    fn counted_always_logged_once_a_minute() {
        let metrics = Arc::new(Metrics::default());
        let r = Refusals::new(metrics.clone());
        let ip: IpAddr = "203.0.113.9".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..1000 {
            r.metrics.refused(Refused::BadSignature.as_str());
            r.note_at(Refused::BadSignature, ip, t0);
        }
        // The first was logged, 999 wait for the minute.
        assert_eq!(r.waiting(Refused::BadSignature), Some(999));
        r.flush_at(t0 + Duration::from_secs(30));
        assert_eq!(r.waiting(Refused::BadSignature), Some(999));
        r.flush_at(t0 + LOG_EVERY);
        assert_eq!(r.waiting(Refused::BadSignature), Some(0));
        // A quiet minute later the reason starts over.
        r.flush_at(t0 + 2 * LOG_EVERY);
        assert_eq!(r.waiting(Refused::BadSignature), None);
        let mut out = String::new();
        metrics.render(&mut out);
        assert!(out.contains("recvault_http_refused_total{reason=\"bad_signature\"} 1000\n"));
    }
}
