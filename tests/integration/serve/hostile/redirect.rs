//! Redirects to presigned store URLs (issue 20 item 5): only after every
//! check a served listen passes, audited, and never valid longer than the
//! link or five minutes. (The VICIdial login before a redirect is in
//! `login`.)

use std::time::Duration;

use super::super::*;
use super::DUE;

/// A headerless GSM 6.10 file as VICIdial's compress script writes it:
/// whole 33-byte frames (stored as is, codec `none`).
fn gsm(frames: u32) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..frames {
        out.push(0xD0 | (i % 16) as u8);
        out.extend((0..32).map(|j| (i * 7 + j) as u8));
    }
    out
}

/// `X-Amz-Expires` of a presigned URL, seconds.
fn expires(location: &str) -> u64 {
    location
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("X-Amz-Expires="))
        .unwrap_or_else(|| panic!("no X-Amz-Expires in {location}"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_pass_every_check_and_never_outlive_the_link() {
    let g = garage();
    let mut s = Served::new(
        "serve_presign",
        Target::Garage(&g),
        DUE,
        "allow = [\"127.0.0.2\"]",
    );
    let original = gsm(2000);
    put_recording(
        &s.site.spool,
        b"20260301-101500_5551234567-all.gsm",
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
    assert_eq!(s.count("local_deleted"), 1, "{}", s.log_text());
    let name = b"20260301-101500_5551234567-all.gsm";
    let minute = s.link(name, &["--ttl", "1m"]);
    let permanent = s.link(name, &["--permanent"]);
    let expired = s.link(name, &["--ttl", "1s"]);
    tokio::time::sleep(Duration::from_millis(2100)).await;

    // A one-minute link: the presigned URL lasts no longer than it.
    let r = get_from("127.0.0.2", s.port, &minute, &[]).await.unwrap();
    assert_eq!(r.status, 302, "{}", r.text());
    let location = r.header("location").unwrap().to_string();
    let secs = expires(&location);
    assert!((1..=60).contains(&secs), "{secs} s for a 1-minute link");
    // It plays the original.
    let url = location.trim_start_matches(&g.endpoint);
    let port: u16 = g.endpoint.rsplit(':').next().unwrap().parse().unwrap();
    let direct = fetch(port, url, &[]).await;
    assert_eq!(sha256(&direct.body), sha256(&original));
    // A permanent link: five minutes, presign_ttl's default and most.
    let r = get_from("127.0.0.2", s.port, &permanent, &[])
        .await
        .unwrap();
    assert_eq!(r.status, 302, "{}", r.text());
    assert_eq!(expires(r.header("location").unwrap()), 300);
    // No redirect without every check: outside allow, expired, tampered.
    let tampered = tampered(&permanent);
    for (from, link) in [
        ("127.0.0.1", &permanent),
        ("127.0.0.2", &expired),
        ("127.0.0.2", &tampered),
    ] {
        let r = get_from(from, s.port, link, &[]).await.unwrap();
        assert_eq!(r.status, 403, "{from} {link}: {}", r.text());
        assert!(r.header("location").is_none(), "{from} {link}");
    }
    s.stop();
    let audit = audit_lines(&s.site, &["--action", "listen"]).join("\n");
    let redirected = audit
        .lines()
        .filter(|l| l.contains("redirected (stored as is") && l.contains("via redirect"))
        .count();
    assert_eq!(redirected, 2, "{audit}");
    assert!(audit.contains("(expiring link)\tredirected"), "{audit}");

    // A presigned URL valid for longer is refused, naming the key.
    s.site.set_option("serve", "presign_ttl", "\"1h\"");
    let check = s.site.recvault(&["check", "--offline"]);
    assert_ne!(check.status.code(), Some(0));
    let text = String::from_utf8_lossy(&check.stderr);
    assert!(
        text.contains("serve.presign_ttl") && text.contains("5m"),
        "{text}"
    );
}
