//! Links that keep playing: byte for byte from the local copy, then from
//! the store once the local copy is gone, Range requests stitched back
//! together, refusals that say why, every request audited.

use std::time::Duration;

use super::*;

const LATER: &str = "settle = \"1s\"\nupload_after = \"1h\"\nrescan = \"1s\"";
const NAME: &[u8] = b"20260301-101500_5551234567-all.wav";

fn sha(bytes: &[u8]) -> String {
    sha256(bytes)
}

async fn wait_state(s: &Served, state: &str, n: u64) {
    for _ in 0..300 {
        if s.count(state) == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "never {n} {state}; states {:?}\n{}",
        s.site.states(),
        s.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recordings_play_byte_for_byte_from_disk_then_from_the_store() {
    let g = garage();
    let mut s = Served::new("serve_play", Target::Garage(&g), LATER, "");
    let original = wav(60.0, 7);
    put_recording(&s.site.spool, NAME, &original, Duration::from_secs(60));
    s.start().await;
    wait_state(&s, "settled", 1).await;
    let link = s.link(NAME, &[]);
    assert!(link.contains("?exp="), "{link}");
    // From the local copy.
    let r = fetch(s.port, &link, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(sha(&r.body), sha(&original));
    assert_eq!(r.header("content-type"), Some("audio/wav"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert_eq!(
        r.header("content-length"),
        Some(original.len().to_string().as_str())
    );
    s.stop();

    // Archived: the local copy is gone, the same link plays from the store.
    s.site.set_option("spool", "upload_after", "\"0s\"");
    s.start().await;
    wait_state(&s, "local_deleted", 1).await;
    assert!(
        !s.site
            .spool
            .join("20260301-101500_5551234567-all.wav")
            .exists()
    );
    let r = fetch(s.port, &link, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(sha(&r.body), sha(&original), "decoded from the store");
    // Range requests, as a player seeking, stitched back together.
    let size = original.len();
    let mut stitched = Vec::new();
    for (from, to) in [(0, 999), (1000, 300_000), (300_001, size - 1)] {
        let range = format!("bytes={from}-{to}");
        let r = fetch(s.port, &link, &[("range", &range)]).await;
        assert_eq!(r.status, 206, "{range}: {}", r.text());
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes {from}-{to}/{size}").as_str())
        );
        stitched.extend_from_slice(&r.body);
    }
    assert_eq!(sha(&stitched), sha(&original), "ranges stitched");
    let tail = fetch(s.port, &link, &[("range", "bytes=-100")]).await;
    assert_eq!(tail.body, original[size - 100..]);
    let head = request(s.port, "HEAD", &link, &[]).await.unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length"),
        Some(size.to_string().as_str())
    );
    assert!(head.body.is_empty());
    // A permanent link (as written into VICIdial) plays too.
    let permanent = s.link(NAME, &["--permanent"]);
    assert!(!permanent.contains('?'));
    assert_eq!(
        sha(&fetch(s.port, &permanent, &[]).await.body),
        sha(&original)
    );

    // Refusals say why.
    assert!(
        permanent.ends_with("/20260301-101500_5551234567-all.wav"),
        "{permanent}"
    );
    let r = fetch(s.port, &tampered(&permanent), &[]).await;
    assert_eq!((r.status, r.text().trim()), (403, "bad signature"));
    let short = s.link(NAME, &["--ttl", "1s"]);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = fetch(s.port, &short, &[]).await;
    assert_eq!((r.status, r.text().trim()), (403, "this link has expired"));
    // An id no row names: nothing to check the signature against.
    let r = fetch(s.port, &unknown_link(), &[]).await;
    assert_eq!((r.status, r.text().trim()), (403, "bad signature"));
    let wrong = fetch(s.port, &link, &[("range", "bytes=5000000-")]).await;
    assert_eq!(wrong.status, 416);
    assert_eq!(
        wrong.header("content-range"),
        Some(format!("bytes */{size}").as_str())
    );

    // Health and metrics, unsigned, from loopback.
    let h = fetch(s.port, "/healthz", &[]).await;
    assert_eq!(h.status, 200, "{}", h.text());
    assert!(
        h.text().contains("ledger: ok") && h.text().contains("store: ok"),
        "{}",
        h.text()
    );
    let m = fetch(s.port, "/metrics", &[]).await.text();
    for line in [
        "recvault_recordings{state=\"local_deleted\"} 1",
        "recvault_playback_requests_total{outcome=\"partial\"} 4",
        "recvault_playback_requests_total{outcome=\"forbidden\"} 3",
        "recvault_http_refused_total{reason=\"bad_signature\"} 2",
        "recvault_uploads_total 1",
        "recvault_verifications_total 1",
        "recvault_backlog_recordings 0",
    ] {
        assert!(m.contains(line), "{line} missing:\n{m}");
    }
    assert!(
        m.contains("recvault_store_request_duration_seconds_count{op=\"open\"} 1"),
        "{m}"
    );
    s.stop();

    // Every request a valid link signed is in the audit trail, the refused
    // ones too; a bad signature only in /metrics.
    let listens = audit_lines(
        &s.site,
        &["--recording", "20260301-101500_5551234567-all.wav"],
    );
    let text = listens.join("\n");
    assert!(
        text.contains("served; status 200") && text.contains("via local copy"),
        "{text}"
    );
    // Identical requests share an entry per flush (a second): on a busy
    // machine the four may fall into two; together they are four.
    let partial: u64 = listens
        .iter()
        .filter(|l| l.contains("partial; status 206"))
        .filter_map(|l| {
            let (before, _) = l.split_once(" request")?;
            before.rsplit(' ').next()?.parse::<u64>().ok()
        })
        .sum();
    assert_eq!(partial, 4, "{text}");
    assert!(text.contains("via store"), "{text}");
    assert!(
        listens
            .iter()
            .all(|l| l.contains("\tlisten\t") || !l.contains("anonymous"))
    );
    let all = audit_lines(&s.site, &["--action", "listen", "--since", "2000-01-01"]).join("\n");
    assert!(!all.contains("bad signature"), "{all}");
    assert!(all.contains("forbidden (this link has expired)"), "{all}");
    assert!(!all.contains("recording 999999"), "{all}");
    assert!(
        all.contains("bad_request (range outside the recording)"),
        "{all}"
    );
    let verified = s.site.recvault(&["audit", "verify"]);
    expect_code(&verified, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_recordings_are_gone_and_a_store_outage_says_when_to_come_back() {
    let g = garage();
    let due = "settle = \"1s\"\nupload_after = \"0s\"\nrescan = \"1s\"";
    let mut s = Served::new("serve_gone", Target::Garage(&g), due, "");
    let mut config = std::fs::read_to_string(&s.site.config).unwrap();
    config.push_str("\n[retention]\ndefault = \"30d\"\n");
    std::fs::write(&s.site.config, config).unwrap();
    let when = chrono::Local::now() - chrono::Duration::days(100);
    let old = format!("{}_5550000001-all.wav", when.format("%Y%m%d-%H%M%S"));
    let keep = b"kept-all.wav";
    put_recording(
        &s.site.spool,
        old.as_bytes(),
        &wav(2.0, 1),
        Duration::from_secs(100 * 86400 + 60),
    );
    put_recording(&s.site.spool, keep, &wav(2.0, 2), Duration::from_secs(60));
    s.start().await;
    // The first sweep runs at start, before anything is archived: a
    // never-archived recording keeps its only copy. Wait for both archived.
    wait_state(&s, "local_deleted", 2).await;
    let gone_link = s.link(old.as_bytes(), &["--permanent"]);
    let kept_link = s.link(keep, &["--permanent"]);
    s.stop();
    let swept = s.site.recvault(&["retention", "run"]);
    expect_code(&swept, 0);
    s.start().await;
    let r = fetch(s.port, &gone_link, &[]).await;
    assert_eq!(r.status, 410, "{}", r.text());
    assert!(r.text().contains("retention.default = 30d"), "{}", r.text());
    assert_eq!(fetch(s.port, &kept_link, &[]).await.status, 200);
    s.stop();

    // The store goes away: 503 with Retry-After, and /healthz names it.
    s.site.set_option(
        "store",
        "endpoint",
        &format!("\"http://127.0.0.1:{}\"", dead_port()),
    );
    s.start().await;
    let r = fetch(s.port, &kept_link, &[]).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("30"));
    let h = fetch(s.port, "/healthz", &[]).await;
    assert_eq!(h.status, 503);
    assert!(h.text().contains("store: unreachable"), "{}", h.text());
    assert!(h.text().contains("ledger: ok"), "{}", h.text());
    s.stop();
    let all = audit_lines(&s.site, &["--action", "listen"]).join("\n");
    assert!(all.contains("gone (this recording was deleted on"), "{all}");
    assert!(
        all.contains("unavailable (the store is unavailable"),
        "{all}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recordings_stored_as_is_redirect_to_a_presigned_url() {
    let g = garage();
    let due = "settle = \"1s\"\nupload_after = \"0s\"\nrescan = \"1s\"";
    let mut s = Served::new(
        "serve_redirect",
        Target::Garage(&g),
        due,
        "presign_ttl = \"2m\"",
    );
    let mut config = std::fs::read_to_string(&s.site.config).unwrap();
    config = config.replacen("[store]\n", "[compress]\ncodec = \"none\"\n\n[store]\n", 1);
    std::fs::write(&s.site.config, config).unwrap();
    let original = wav(3.0, 5);
    put_recording(
        &s.site.spool,
        b"asis-all.wav",
        &original,
        Duration::from_secs(60),
    );
    s.start().await;
    wait_state(&s, "local_deleted", 1).await;
    let link = s.link(b"asis-all.wav", &[]);
    let r = fetch(s.port, &link, &[]).await;
    assert_eq!(r.status, 302, "{}", r.text());
    let location = r.header("location").unwrap().to_string();
    assert!(location.starts_with(&g.endpoint), "{location}");
    assert!(location.contains("X-Amz-Expires=120"), "{location}");
    // The presigned URL plays the original, as audio.
    let url = location.trim_start_matches(&g.endpoint);
    let port: u16 = g.endpoint.rsplit(':').next().unwrap().parse().unwrap();
    let direct = fetch(port, url, &[]).await;
    assert_eq!(direct.status, 200, "{}", direct.text());
    assert_eq!(sha(&direct.body), sha(&original));
    assert_eq!(direct.header("content-type"), Some("audio/wav"));
    // `recvault url --presigned` gives one too.
    let out = s
        .site
        .recvault(&["url", "--presigned", "--ttl", "10m", "asis-all.wav"]);
    expect_code(&out, 0);
    assert!(String::from_utf8_lossy(&out.stdout).contains("X-Amz-Expires=600"));
    s.stop();
    let all = audit_lines(&s.site, &["--recording", "asis-all.wav"]).join("\n");
    assert!(
        all.contains("redirected") && all.contains("via redirect"),
        "{all}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listens_are_audited_exactly_once_across_a_kill_9() {
    let g = garage();
    let mut s = Served::new("serve_kill_listens", Target::Garage(&g), LATER, "");
    put_recording(&s.site.spool, NAME, &wav(2.0, 3), Duration::from_secs(60));
    s.start().await;
    wait_state(&s, "settled", 1).await;
    let link = s.link(NAME, &[]);
    // Distinct user agents: one audit entry each, none counted together.
    const N: usize = 40;
    for i in 0..N {
        let agent = format!("kill-test/{i}");
        let r = fetch(s.port, &link, &[("user-agent", agent.as_str())]).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // Within the writer's one-second batch: only the journal has them now.
    s.kill();
    s.start().await;
    s.stop();
    let lines = audit_lines(&s.site, &["--action", "listen"]);
    for i in 0..N {
        let agent = format!("\"kill-test/{i}\"");
        let n = lines.iter().filter(|l| l.contains(&agent)).count();
        assert_eq!(n, 1, "{agent} audited {n} times:\n{}", lines.join("\n"));
    }
    let verify = s.site.recvault(&["audit", "verify"]);
    expect_code(&verify, 0);
    let journals: Vec<_> = std::fs::read_dir(&s.site.root)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".journal"))
        .collect();
    assert!(journals.is_empty(), "{journals:?}");
}
