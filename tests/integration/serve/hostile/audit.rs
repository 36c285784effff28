//! What reaches the audit trail (issue 20 items 3 and 4): a flood of bad
//! and valid links, from inside and outside `allow`, leaves the ledger
//! almost as it was; no signature is ever written to the audit trail, the
//! ledger's files, the daemon's log or /metrics.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::super::*;
use super::DUE;

const BASE64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// A signature-shaped string no key made.
fn random_signature() -> String {
    (0..43)
        .map(|_| BASE64URL[fastrand::usize(..64)] as char)
        .collect()
}

/// Bytes of the ledger and its WAL.
fn ledger_bytes(ledger: &Path) -> u64 {
    let wal = ledger.with_extension("sqlite3-wal");
    [ledger, wal.as_path()]
        .iter()
        .filter_map(|p| fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

/// Audit entries in the ledger.
fn audit_entries(ledger: &Path) -> i64 {
    let c = rusqlite::Connection::open(ledger).unwrap();
    c.query_row("SELECT COUNT(*) FROM audit", [], |r| r.get(0))
        .unwrap()
}

/// Sends every (source address, target, user agent) job, 16 at a time
/// (under each address's share of connections); statuses counted.
async fn flood(port: u16, jobs: Vec<(&'static str, String, String)>) -> BTreeMap<u16, u64> {
    let gate = Arc::new(tokio::sync::Semaphore::new(16));
    let mut tasks = tokio::task::JoinSet::new();
    for (from, target, agent) in jobs {
        let permit = gate.clone().acquire_owned().await.unwrap();
        tasks.spawn(async move {
            let r = get_from(from, port, &target, &[("user-agent", &agent)]).await;
            drop(permit);
            r.unwrap_or_else(|e| panic!("{from} {target}: {e}")).status
        });
    }
    let mut statuses = BTreeMap::new();
    while let Some(status) = tasks.join_next().await {
        *statuses.entry(status.unwrap()).or_insert(0) += 1;
    }
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_refused_requests_leaves_the_ledger_as_it_was() {
    let mut s = Served::new(
        "serve_flood",
        Target::Local,
        DUE,
        "allow = [\"127.0.0.2\"]\nclient_rate = 100000",
    );
    put_recording(
        &s.site.spool,
        b"flood-all.wav",
        &wav(2.0, 4),
        Duration::from_secs(60),
    );
    s.start().await;
    for _ in 0..300 {
        if s.count("local_deleted") == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let link = s.link(b"flood-all.wav", &["--permanent"]);
    let expired = s.link(b"flood-all.wav", &["--ttl", "1s"]);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    s.stop();
    let ledger = s.site.ledger_path();
    let (bytes_before, entries_before) = (ledger_bytes(&ledger), audit_entries(&ledger));
    s.start().await;

    // 6,000 requests, each with its own user agent (nothing counts them
    // together by accident): bad signatures, not links and unknown paths
    // from inside and outside allow, a valid link from outside allow, an
    // expired one from inside; and 20 real listens.
    let id = link.split('/').nth(2).unwrap().to_string();
    let mut jobs = Vec::new();
    for i in 0..6000 {
        let from = if i % 2 == 0 { "127.0.0.1" } else { "127.0.0.2" };
        let target = match i % 6 {
            0 | 1 => format!("/r/{id}/{}", random_signature()),
            2 => format!("/r/{}", random_signature()),
            3 => format!("/x/{}", random_signature()),
            4 => link.clone(),
            _ => expired.clone(),
        };
        let from = if i % 6 == 4 {
            "127.0.0.1"
        } else if i % 6 == 5 {
            "127.0.0.2"
        } else {
            from
        };
        jobs.push((from, target, format!("flood/{i}")));
    }
    for i in 0..20 {
        jobs.push(("127.0.0.2", link.clone(), format!("listener/{i}")));
    }
    let statuses = flood(s.port, jobs).await;
    assert_eq!(
        statuses,
        BTreeMap::from([(200, 20), (403, 5000), (404, 1000)]),
        "{statuses:?}"
    );
    let metrics = fetch(s.port, "/metrics", &[]).await.text();
    s.stop();

    // Bound: a refused kind costs two entries per 10-minute window (its
    // first, then its count), 20 listens at most one entry each, so at
    // most 30 new entries; 64 KiB (16 SQLite pages) at most. On main, every
    // request was an entry of ~560 bytes: 3 MB.
    let (bytes_after, entries_after) = (ledger_bytes(&ledger), audit_entries(&ledger));
    let grown = bytes_after.saturating_sub(bytes_before);
    eprintln!(
        "ledger {bytes_before} -> {bytes_after} bytes, audit {entries_before} -> {entries_after} entries"
    );
    assert!(grown <= 64 * 1024, "the ledger grew {grown} bytes");
    assert!(
        entries_after - entries_before <= 30,
        "{} new audit entries",
        entries_after - entries_before
    );
    // The refusals a signed link got are there, counted; those no link
    // signed are only counted in /metrics.
    let lines = audit_lines(&s.site, &["--action", "listen"]).join("\n");
    let forbidden: u64 = lines
        .lines()
        .filter(|l| l.contains("forbidden (your address may not play recordings"))
        .map(|l| {
            let n = l
                .split("; ")
                .find(|p| p.ends_with("request") || p.ends_with("requests"));
            n.unwrap()
                .split(' ')
                .next()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert_eq!(forbidden, 1000, "{lines}");
    assert!(
        lines.contains("forbidden (this link has expired"),
        "{lines}"
    );
    assert!(!lines.contains("bad signature"), "{lines}");
    for line in [
        "recvault_http_refused_total{reason=\"bad_signature\"} 2000\n",
        "recvault_http_refused_total{reason=\"bad_link\"} 1000\n",
        "recvault_http_refused_total{reason=\"not_found\"} 1000\n",
    ] {
        assert!(metrics.contains(line), "{line} missing:\n{metrics}");
    }
    // Logged once a minute per reason, not once per request.
    let log = s.log_text();
    let logged = log
        .lines()
        .filter(|l| l.contains("signature does not match"))
        .count();
    assert!((1..=3).contains(&logged), "{logged} log lines:\n{log}");
    let verify = s.site.recvault(&["audit", "verify"]);
    expect_code(&verify, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_signature_reaches_the_audit_trail_the_ledger_the_log_or_metrics() {
    let mut s = Served::new(
        "serve_secrets",
        Target::Local,
        DUE,
        "allow = [\"127.0.0.2\"]",
    );
    put_recording(
        &s.site.spool,
        b"secret-all.wav",
        &wav(2.0, 5),
        Duration::from_secs(60),
    );
    s.start().await;
    for _ in 0..300 {
        if s.count("local_deleted") == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let permanent = s.link(b"secret-all.wav", &["--permanent"]);
    let expiring = s.link(b"secret-all.wav", &["--ttl", "1h"]);
    let expired = s.link(b"secret-all.wav", &["--ttl", "1s"]);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let unknown = unknown_link();
    let tampered = tampered(&permanent);
    let outside = get_from("127.0.0.1", s.port, &permanent, &[])
        .await
        .unwrap();
    assert_eq!(outside.status, 403, "{}", outside.text());
    for (target, range, status) in [
        (&permanent, "bytes=0-", 206),
        (&expiring, "bytes=0-99", 206),
        (&expired, "", 403),
        (&unknown, "", 403),
        (&tampered, "", 403),
    ] {
        let headers: Vec<(&str, &str)> = match range {
            "" => vec![],
            r => vec![("range", r)],
        };
        let r = get_from("127.0.0.2", s.port, target, &headers)
            .await
            .unwrap();
        assert_eq!(r.status, status, "{target}: {}", r.text());
    }
    let metrics = fetch(s.port, "/metrics", &[]).await.text();
    s.stop();

    let signatures: Vec<String> = [&permanent, &expiring, &expired, &unknown, &tampered]
        .iter()
        .map(|l| signature_of(l))
        .collect();
    let audit = audit_lines(&s.site, &[]).join("\n");
    let mut places = vec![
        ("recvault audit".to_string(), audit.clone().into_bytes()),
        ("the daemon's log".to_string(), s.log_text().into_bytes()),
        ("/metrics".to_string(), metrics.into_bytes()),
    ];
    // The ledger, its WAL, the listen journals: every file beside it.
    for entry in fs::read_dir(s.site.ledger_path().parent().unwrap()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            places.push((path.display().to_string(), fs::read(&path).unwrap()));
        }
    }
    for (place, bytes) in &places {
        for sig in &signatures {
            let found = bytes.windows(sig.len()).any(|w| w == sig.as_bytes());
            assert!(!found, "signature {sig} in {place}");
        }
    }
    // The audit names the recording and the kind of link instead.
    assert!(
        audit.contains("(permanent link)\tforbidden (your address may not play recordings)"),
        "{audit}"
    );
    assert!(
        audit.contains("(expiring link)\tpartial; status 206"),
        "{audit}"
    );
    // No row to check it against: refused unaudited, like a forgery.
    assert!(!audit.contains("recording 999999"), "{audit}");
}
