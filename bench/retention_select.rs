//! Times retention selection on an existing ledger (see bench/retention.sh):
//! the full selection `retention plan` walks, and one daemon sweep's worth
//! (20 batches of 1000), with the peak RSS of this process.
//!
//! cargo run --release --example retention_select -- CONFIG

use std::time::Instant;

use recvault::config::Config;
use recvault::ledger::Ledger;
use recvault::units::now_secs;

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    let config = std::env::args()
        .nth(1)
        .expect("usage: retention_select CONFIG");
    let config = Config::load(config.as_ref()).unwrap();
    let ledger = Ledger::open(&config.ledger.path).unwrap();
    let now = now_secs();

    let t = Instant::now();
    let (mut due, mut held) = (0u64, 0u64);
    ledger
        .for_each_due(&config.retention, now, None, |d| {
            if d.held {
                held += 1
            } else {
                due += 1
            }
            true
        })
        .unwrap();
    println!(
        "full selection: {due} due, {held} held in {:.3} s",
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let mut n = 0u64;
    ledger
        .for_each_due(&config.retention, now, None, |_| {
            n += 1;
            n < 20_000
        })
        .unwrap();
    println!(
        "one sweep's selection (20 batches): {n} recordings in {:.3} s",
        t.elapsed().as_secs_f64()
    );
    println!("peak RSS: {} MiB", peak_rss_kib() / 1024);
}
