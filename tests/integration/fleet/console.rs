//! The console on one box answers for the fleet: B archives a recording of
//! a number, A serves the console on its own address, and a compliance
//! officer logged in to A's console finds B's recording by that number,
//! with B named as its box (played from B, not from A), and exports it:
//! A's console reads it from its object in the store.

use std::time::Duration;

use super::{Cluster, LIMIT};
use crate::common::*;
use crate::console::{Client, PASSWORD, add_user};
use crate::vicidial::dialer::tail;

const PHONE: &str = "5550004444";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_on_one_box_finds_another_boxs_recording_by_phone() {
    let Some(mut c) = Cluster::new("fleet_console", &["A", "B"]).await else {
        return;
    };
    expect_code(&c.node("A").recvault(&["fleet", "init", "--confirm"]), 0);

    // A serves the console on its own address; bob is its compliance officer.
    let a = c.node("A");
    let (ip, port) = (a.addr(), dead_port());
    // Its own address is not loopback: the console is served over HTTPS.
    let (cert, key) = crate::serve::tls_certificate(&a.site.root, &ip.to_string());
    let extra = format!(
        "idle_timeout = \"60s\"\ntls_cert = \"{}\"\ntls_key = \"{}\"",
        cert.display(),
        key.display()
    );
    let table = crate::serve::serve_table(&a.site.root, port, &extra)
        .replace("listen = \"127.0.0.1:", &format!("listen = \"{ip}:"))
        .replace("idle_timeout = \"3s\"\n", "");
    let mut config = std::fs::read_to_string(&a.site.config).unwrap();
    config.push_str(&table);
    config.push_str("\n[console]\nenabled = true\n");
    std::fs::write(&a.site.config, config).unwrap();
    add_user(&a.site, "bob", "compliance");

    let b_name = c.node("B").call(PHONE, 1, 41);
    let a_name = c.node("A").call("5550005555", 1, 42);
    for host in ["A", "B"] {
        c.node(host).start();
    }
    c.node("B").wait_state(&b_name, "local_deleted").await;
    c.node("A").wait_state(&a_name, "local_deleted").await;
    c.wait_db(
        "B's recording in the fleet's catalog",
        &format!("SELECT COUNT(*) FROM recvault_recordings WHERE host = 'B' AND phone = '{PHONE}'"),
        1,
    )
    .await;

    let deadline = std::time::Instant::now() + LIMIT;
    while tokio::net::TcpStream::connect((ip.as_str(), port))
        .await
        .is_err()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "A's console never listened on {ip}:{port}; log:\n{}",
            tail(&c.node("A").log_text(), 40)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut bob = Client::new(port);
    bob.to = ip.clone();
    bob.ca = Some(cert);
    let login = bob.log_in("bob", PASSWORD).await;
    assert_eq!(login.status, 303, "{}", login.text());

    let page = bob.get(&format!("/console/search?phone={PHONE}")).await;
    assert_eq!(page.status, 200, "{}", page.text());
    let html = page.text();
    let row = html
        .split("<tr>")
        .find(|r| r.contains(b_name.as_str()))
        .unwrap_or_else(|| {
            panic!(
                "A's console does not list B's {b_name}:\n{html}\nA's log:\n{}",
                tail(&c.node("A").log_text(), 40)
            )
        });
    assert!(row.contains("<td>B</td>"), "B not shown as its box: {row}");
    assert!(row.contains(PHONE), "{row}");
    assert!(
        !html.contains(a_name.as_str()),
        "A's other number listed:\n{html}"
    );

    // B's recording's page on A's console names B as where it is played.
    let href = row
        .split("<a href=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_else(|| panic!("no link in {row}"))
        .to_string();
    assert!(href.starts_with("/console/recordings/B/"), "{href}");
    let rec = bob.get(&href).await;
    assert_eq!(rec.status, 200, "{}", rec.text());
    assert!(
        rec.text()
            .contains("played from its own box, B: open its console there"),
        "{}",
        rec.text()
    );

    // Exported from A's console: B's recording read from its object in the store.
    let r = bob
        .submit(&page, "/console/exports/start", &[("reason", "DSAR 4444")])
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let job = r.header("location").unwrap().to_string();
    let mut done = String::new();
    for _ in 0..300 {
        done = bob.get(&job).await.text();
        if done.contains("<dd>done</dd>") || done.contains("<dd>failed</dd>") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        done.contains("1 of 1 recordings exported"),
        "{done}\nA's log:\n{}",
        tail(&c.node("A").log_text(), 40)
    );
    let zip = bob
        .get(&format!("{job}/download?reason=send+to+the+caller"))
        .await;
    assert_eq!(zip.status, 200, "{}", zip.text());
    let text = String::from_utf8_lossy(&zip.body).into_owned();
    assert!(
        text.contains(&format!("recordings/{b_name}")) && text.contains("store "),
        "B's recording, from the store, in the zip"
    );

    for host in ["A", "B"] {
        c.node(host).stop();
    }
}
