//! Who may take a connection (issue 20 item 8): an address in neither
//! `allow` nor `metrics_allow` is closed as soon as it connects, one address
//! holds at most an eighth of `max_connections`, and hundreds of idle
//! connections from one address leave an allowed client its recording.

use std::fs;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::super::*;
use super::DUE;

/// Established connections to `port` on the server's side from `remote`.
fn connections_from(port: u16, remote: [u8; 4]) -> usize {
    // /proc/net/tcp writes an IPv4 address as one little-endian hex word.
    let remote = format!("{:08X}", u32::from_le_bytes(remote));
    let text = fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    text.lines()
        .skip(1)
        .filter(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let local_port = cols
                .get(1)
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            let peer = cols.get(2).and_then(|a| a.split(':').next());
            local_port == Some(port) && peer == Some(remote.as_str()) && cols.get(3) == Some(&"01")
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_from_one_address_leave_room_for_an_allowed_client() {
    let mut s = Served::new(
        "serve_slots",
        Target::Local,
        DUE,
        "allow = [\"127.0.0.2\"]\nmetrics_allow = [\"127.0.0.1\"]\nmax_connections = 64",
    );
    // Idle connections stay for the whole test unless the server refuses them.
    s.site.set_option("serve", "idle_timeout", "\"120s\"");
    let original = wav(2.0, 6);
    put_recording(
        &s.site.spool,
        b"slots-all.wav",
        &original,
        Duration::from_secs(60),
    );
    s.start().await;
    for _ in 0..300 {
        if s.count("local_deleted") == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let link = s.link(b"slots-all.wav", &["--permanent"]);

    // 300 idle connections from 127.0.0.1 (outside allow, inside
    // metrics_allow): it keeps 64 / 8 = 8 of them.
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(connect_from("127.0.0.1", s.port).await.unwrap());
    }
    // The allowed client still gets its recording, at once.
    let r = get_from("127.0.0.2", s.port, &link, &[])
        .await
        .unwrap_or_else(|e| panic!("the allowed client was turned away: {e}"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(sha256(&r.body), sha256(&original));
    let mut held = connections_from(s.port, [127, 0, 0, 1]);
    for _ in 0..200 {
        if held <= 8 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        held = connections_from(s.port, [127, 0, 0, 1]);
    }
    assert!(held <= 8, "127.0.0.1 holds {held} connections");

    // 127.0.0.3 is in neither list: closed before a byte is read, even
    // with a valid link (no 403: nothing was parsed).
    for _ in 0..20 {
        let mut c = connect_from("127.0.0.3", s.port).await.unwrap();
        let request = format!("GET {link} HTTP/1.1\r\nHost: x\r\n\r\n");
        let _ = c.write_all(request.as_bytes()).await;
        let mut answer = Vec::new();
        let _ = c.read_to_end(&mut answer).await;
        assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    }
    // Once 127.0.0.1's idle connections are gone, it may read /metrics again.
    drop(idle);
    for _ in 0..200 {
        if connections_from(s.port, [127, 0, 0, 1]) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = fetch(s.port, "/metrics", &[]).await.text();
    assert!(
        metrics.contains("recvault_http_refused_total{reason=\"address_not_allowed\"} 20\n"),
        "{metrics}"
    );
    let shared = metrics
        .lines()
        .find_map(|l| l.strip_prefix("recvault_http_refused_total{reason=\"address_share\"} "))
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap();
    assert!(shared >= 292, "{shared} refused for their address's share");
    s.stop();
    // Connections are not listens: nothing of this is in the audit trail
    // but the one recording played.
    let audit = audit_lines(&s.site, &["--action", "listen"]);
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert!(audit[0].contains("served; status 200"), "{audit:?}");
}
