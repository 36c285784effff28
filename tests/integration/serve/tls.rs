//! HTTPS from PEM files: a certificate made by openssl, fetched with curl
//! checking it, byte for byte.

use std::process::Command;
use std::time::Duration;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_play_over_https() {
    let g = garage();
    let due = "settle = \"1s\"\nupload_after = \"0s\"\nrescan = \"1s\"";
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = tls_certificate(dir.path(), "127.0.0.1");
    let tls = format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"",
        cert.display(),
        key.display()
    );
    let mut s = Served::new("serve_tls", Target::Garage(&g), due, &tls);
    let original = wav(20.0, 11);
    put_recording(
        &s.site.spool,
        b"secure-all.wav",
        &original,
        Duration::from_secs(60),
    );
    s.spawn();
    let curl = |target: &str, out: &std::path::Path| {
        Command::new("curl")
            .args(["-sS", "--fail", "--max-time", "20", "--cacert"])
            .arg(&cert)
            .arg("-o")
            .arg(out)
            .arg(format!("https://127.0.0.1:{}{target}", s.port))
            .output()
            .unwrap()
    };
    let health = s.site.root.join("health.txt");
    let mut up = false;
    for _ in 0..200 {
        if curl("/healthz", &health).status.success() && s.count("local_deleted") == 1 {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        up,
        "no HTTPS answer or nothing archived; log:\n{}",
        s.log_text()
    );
    let link = s.link(b"secure-all.wav", &[]);
    let url_out = s.site.recvault(&["url", "secure-all.wav"]);
    assert!(String::from_utf8_lossy(&url_out.stdout).starts_with("https://127.0.0.1:"));
    let body = s.site.root.join("body.wav");
    let got = curl(&link, &body);
    assert!(
        got.status.success(),
        "{}",
        String::from_utf8_lossy(&got.stderr)
    );
    assert_eq!(sha256(&std::fs::read(&body).unwrap()), sha256(&original));
    // Plain HTTP on the HTTPS port gets nothing useful.
    assert!(get(s.port, "/healthz", &[]).await.is_err());
    s.stop();
}
