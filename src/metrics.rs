//! The daemon's counters since it started — archive steps, bytes, store
//! request latencies, playback outcomes, the last retention sweep — kept in
//! atomics so counting costs nothing on the paths that count, and written
//! out in Prometheus' text format. What the ledger knows (recordings per
//! state, backlogs) is added by the `/metrics` handler at scrape time.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the store latency histogram's buckets.
const LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Store operations timed by [`Metrics::store_request`].
pub const STORE_OPS: [&str; 7] = ["put", "head", "get", "delete", "list", "open", "presign"];

/// How a playback request ended (the `outcome` label).
pub const PLAYBACK_OUTCOMES: [&str; 12] = [
    "served",
    "partial",
    "redirected",
    "aborted",
    "error",
    "forbidden",
    "unauthorized",
    "not_found",
    "gone",
    "bad_request",
    "too_many",
    "unavailable",
];

/// Why the listen server refused a connection or a request it does not
/// audit (the `reason` label): nothing a valid link signed.
pub const REFUSALS: [&str; 11] = [
    "address_not_allowed",
    "address_share",
    "connections_full",
    "rate",
    "target_too_long",
    "method",
    "bad_link",
    "bad_signature",
    "revoked",
    "metrics_not_allowed",
    "not_found",
];

/// A latency histogram: counts per bucket, plus sum and count.
#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    /// Microseconds.
    sum_us: AtomicU64,
}

impl Histogram {
    fn observe(&self, took: Duration) {
        let secs = took.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }
}

/// A fleet member's view of the shared database (all 0 without `[fleet]`).
#[derive(Default)]
pub struct FleetGauges {
    /// 1 with `[fleet]`: the gauges below are rendered.
    pub member: AtomicU64,
    /// 1 while the last call to the fleet's database answered.
    pub database_up: AtomicU64,
    /// 1 while deletions wait because the fleet's holds cannot be checked.
    pub gate_closed: AtomicU64,
    /// Recording changes not yet published to the fleet's catalog.
    pub outbox: AtomicU64,
    /// Unix seconds of the last heartbeat written.
    pub last_heartbeat: AtomicI64,
}

/// The daemon's counters. Share it as `Arc<Metrics>`.
#[derive(Default)]
pub struct Metrics {
    /// Objects the store took.
    pub uploads: AtomicU64,
    /// Objects verified in the store.
    pub verifications: AtomicU64,
    /// Archive steps that failed.
    pub failures: AtomicU64,
    /// Original bytes of the recordings archived (read from the spool).
    pub bytes_in: AtomicU64,
    /// Object bytes sent to the store.
    pub bytes_out: AtomicU64,
    /// Bytes of recordings sent to listeners.
    pub playback_bytes: AtomicU64,
    /// Recordings attributed from VICIdial's database.
    pub attributions: AtomicU64,
    /// Login attempts refused unchecked: too many failures for the user or address.
    pub logins_throttled: AtomicU64,
    /// Listens written to VICIdial's `vicidial_recording_access_log`.
    pub access_log_rows: AtomicU64,
    /// Listens not written there: its queue was full or the database kept failing.
    pub access_log_dropped: AtomicU64,
    /// Unix seconds of the last retention sweep (0: none since start).
    pub last_sweep: AtomicI64,
    /// With `[fleet]`: the shared database as this box last saw it.
    pub fleet: FleetGauges,
    store: [Histogram; STORE_OPS.len()],
    playback: [AtomicU64; PLAYBACK_OUTCOMES.len()],
    refused: [AtomicU64; REFUSALS.len()],
}

/// Adds one to a counter.
pub fn inc(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Adds `n` to a counter.
pub fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Metrics {
    /// Times one store request of `op` (one of [`STORE_OPS`]).
    pub fn store_request(&self, op: &str, took: Duration) {
        if let Some(i) = STORE_OPS.iter().position(|o| *o == op) {
            self.store[i].observe(took);
        }
    }

    /// Counts one playback request ending in `outcome` (one of [`PLAYBACK_OUTCOMES`]).
    pub fn playback(&self, outcome: &str) {
        if let Some(i) = PLAYBACK_OUTCOMES.iter().position(|o| *o == outcome) {
            inc(&self.playback[i]);
        }
    }

    /// Counts one connection or request refused for `reason` (one of [`REFUSALS`]).
    pub fn refused(&self, reason: &str) {
        if let Some(i) = REFUSALS.iter().position(|r| *r == reason) {
            inc(&self.refused[i]);
        }
    }

    /// Playback requests that ended in `outcome` so far.
    pub fn playback_count(&self, outcome: &str) -> u64 {
        PLAYBACK_OUTCOMES
            .iter()
            .position(|o| *o == outcome)
            .map(|i| self.playback[i].load(Ordering::Relaxed))
            .unwrap_or(0)
    }

    /// The fleet gauges, for a fleet member only.
    fn render_fleet(&self, out: &mut String) {
        let f = &self.fleet;
        if f.member.load(Ordering::Relaxed) == 0 {
            return;
        }
        let gauges: [(&str, &str, i64); 4] = [
            (
                "recvault_fleet_database_up",
                "1 while the fleet's database answers.",
                f.database_up.load(Ordering::Relaxed) as i64,
            ),
            (
                "recvault_fleet_deletions_blocked",
                "1 while nothing is deleted because the fleet's holds cannot be checked.",
                f.gate_closed.load(Ordering::Relaxed) as i64,
            ),
            (
                "recvault_fleet_outbox",
                "Recording changes not yet published to the fleet's catalog.",
                f.outbox.load(Ordering::Relaxed) as i64,
            ),
            (
                "recvault_fleet_last_heartbeat_timestamp_seconds",
                "When this box last wrote its heartbeat.",
                f.last_heartbeat.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, value) in gauges {
            metric(out, name, "gauge", help);
            let _ = writeln!(out, "{name} {value}");
        }
    }

    /// The counters in Prometheus' text format, appended to `out`.
    pub fn render(&self, out: &mut String) {
        for (name, help, value) in self.counters() {
            metric(out, name, "counter", help);
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
        let name = "recvault_retention_last_sweep_timestamp_seconds";
        metric(
            out,
            name,
            "gauge",
            "When the last retention sweep ran (0: none since start).",
        );
        let _ = writeln!(out, "{name} {}", self.last_sweep.load(Ordering::Relaxed));
        self.render_fleet(out);
        let name = "recvault_playback_requests_total";
        metric(out, name, "counter", "Playback requests by how they ended.");
        for (outcome, n) in PLAYBACK_OUTCOMES.iter().zip(&self.playback) {
            let _ = writeln!(
                out,
                "{name}{{outcome=\"{outcome}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
        let name = "recvault_http_refused_total";
        metric(
            out,
            name,
            "counter",
            "Connections and requests refused without an audit entry (no valid link), by reason.",
        );
        for (reason, n) in REFUSALS.iter().zip(&self.refused) {
            let _ = writeln!(
                out,
                "{name}{{reason=\"{reason}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
        self.render_latency(out);
    }

    /// The plain counters: name, help text, value.
    fn counters(&self) -> [(&'static str, &'static str, &AtomicU64); 10] {
        [
            (
                "recvault_uploads_total",
                "Objects the store took.",
                &self.uploads,
            ),
            (
                "recvault_verifications_total",
                "Objects verified in the store (size and SHA-256).",
                &self.verifications,
            ),
            (
                "recvault_failures_total",
                "Archive steps that failed (retried later).",
                &self.failures,
            ),
            (
                "recvault_bytes_in_total",
                "Original bytes of recordings archived.",
                &self.bytes_in,
            ),
            (
                "recvault_bytes_out_total",
                "Object bytes sent to the store.",
                &self.bytes_out,
            ),
            (
                "recvault_playback_bytes_total",
                "Bytes of recordings sent to listeners.",
                &self.playback_bytes,
            ),
            (
                "recvault_attributions_total",
                "Recordings attributed from VICIdial's database.",
                &self.attributions,
            ),
            (
                "recvault_logins_throttled_total",
                "Login attempts refused unchecked after too many failures from the user or address.",
                &self.logins_throttled,
            ),
            (
                "recvault_vicidial_access_log_rows_total",
                "Listens written to VICIdial's vicidial_recording_access_log.",
                &self.access_log_rows,
            ),
            (
                "recvault_vicidial_access_log_dropped_total",
                "Listens not written to vicidial_recording_access_log (queue full or database failing).",
                &self.access_log_dropped,
            ),
        ]
    }

    fn render_latency(&self, out: &mut String) {
        let name = "recvault_store_request_duration_seconds";
        metric(
            out,
            name,
            "histogram",
            "Store request latency by operation.",
        );
        for (op, h) in STORE_OPS.iter().zip(&self.store) {
            let mut cumulative = 0;
            for (bound, n) in LATENCY_BUCKETS.iter().zip(&h.buckets) {
                cumulative += n.load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "{name}_bucket{{op=\"{op}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let count = h.count.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{op=\"{op}\",le=\"+Inf\"}} {count}");
            let sum = h.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(out, "{name}_sum{{op=\"{op}\"}} {sum}");
            let _ = writeln!(out, "{name}_count{{op=\"{op}\"}} {count}");
        }
    }
}

/// The `# HELP` and `# TYPE` lines of a metric.
pub fn metric(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_a_cumulative_histogram() {
        let m = Metrics::default();
        inc(&m.uploads);
        add(&m.bytes_in, 1000);
        m.playback("served");
        m.playback("no such outcome");
        m.refused("bad_signature");
        m.refused("no such reason");
        m.store_request("put", Duration::from_millis(3));
        m.store_request("put", Duration::from_millis(70));
        m.store_request("put", Duration::from_secs(60));
        let mut out = String::new();
        m.render(&mut out);
        assert!(out.contains("recvault_uploads_total 1\n"), "{out}");
        assert!(out.contains("recvault_bytes_in_total 1000\n"));
        assert!(out.contains("recvault_playback_requests_total{outcome=\"served\"} 1\n"));
        assert!(out.contains("recvault_http_refused_total{reason=\"bad_signature\"} 1\n"));
        assert!(out.contains("op=\"put\",le=\"0.005\"} 1\n"), "{out}");
        assert!(out.contains("op=\"put\",le=\"0.1\"} 2\n"));
        assert!(out.contains("op=\"put\",le=\"30\"} 2\n"));
        assert!(out.contains("op=\"put\",le=\"+Inf\"} 3\n"));
        assert!(out.contains("recvault_store_request_duration_seconds_count{op=\"put\"} 3\n"));
        // Every sample line is `name{labels} value`.
        for line in out.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
