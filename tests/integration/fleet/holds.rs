//! A hold placed on one box governs every box: B's and C's retention
//! sweeps keep what A's hold covers, `find --phone` on C lists A's and B's
//! recordings, a second box cannot take a live box's name, and releasing
//! the hold from another box lets retention go on everywhere.

use super::{Cluster, text};
use crate::common::*;

const HELD: &str = "5550001111";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_placed_on_one_box_protects_every_boxs_recordings_through_their_sweeps() {
    let Some(mut c) = Cluster::new("fleet_holds", &["A", "B", "C"]).await else {
        return;
    };
    let init = c.node("A").recvault(&["fleet", "init"]);
    expect_code(&init, 0);
    assert!(text(&init).contains("nothing changed"), "{}", text(&init));
    assert!(
        text(&init).contains("GRANT SELECT, INSERT, UPDATE, DELETE ON"),
        "{}",
        text(&init)
    );
    assert_eq!(c.count("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name LIKE 'recvault%'").await, 0);
    expect_code(&c.node("A").recvault(&["fleet", "init", "--confirm"]), 0);

    // Every box has a recording of the held number and one of its own, both
    // 100 days old: due under the fleet's 30 days once archived.
    let mut held = Vec::new();
    let mut free = Vec::new();
    for (i, host) in ["A", "B", "C"].into_iter().enumerate() {
        let node = c.node(host);
        held.push((host, node.call(HELD, 100, 10 + i as u64)));
        free.push((
            host,
            node.call(&format!("555000200{i}"), 100, 20 + i as u64),
        ));
    }
    let add = c.node("A").recvault(&[
        "hold",
        "add",
        "CASE-7",
        "--reason",
        "litigation",
        "--phone",
        HELD,
    ]);
    expect_code(&add, 0);
    for host in ["A", "B", "C"] {
        c.node(host).start();
    }
    for (host, name) in held.iter().chain(&free) {
        c.node(host).wait_state(name, "local_deleted").await;
    }

    // A box with a live box's name is refused, and says why.
    let twin = crate::common::Site::new("fleet_holds-twin");
    let a_root = c.node("A").site.root.display().to_string();
    let config = std::fs::read_to_string(&c.node("A").site.config).unwrap();
    let twin_config = twin.root.join("recvault.toml");
    assert!(config.contains("host_timeout = \"5s\""), "{config}");
    // The twin judges A alive by its own host_timeout: a long one, so a
    // machine stalled past the fleet's 5 s (a loaded CI box) cannot make
    // A look gone and let the twin join (it would then run for ever).
    std::fs::write(
        &twin_config,
        config
            .replace(&a_root, &twin.root.display().to_string())
            .replace("host_timeout = \"5s\"", "host_timeout = \"10m\""),
    )
    .unwrap();
    for file in ["s3-key.toml", "fleet.dsn"] {
        std::fs::copy(c.node("A").site.root.join(file), twin.root.join(file)).unwrap();
    }
    // Refused at once.
    let run = output_within(
        std::process::Command::new(recvault_bin()).args([
            "--config",
            twin_config.to_str().unwrap(),
            "run",
        ]),
        &twin.root.join("run"),
        std::time::Duration::from_secs(60),
    );
    assert_ne!(run.status.code(), Some(0), "{}", text(&run));
    assert!(
        text(&run).contains("already used by another live box"),
        "{}",
        text(&run)
    );

    // Every box sweeps: its own recording goes, the held one stays.
    for host in ["A", "B", "C"] {
        c.node(host).sweep();
    }
    for (host, name) in &free {
        c.node(host).wait_state(name, "remote_deleted").await;
    }
    let store = c.garage.store(64 << 20, 16 << 20).await;
    for (host, name) in &held {
        let node = c.node(host);
        assert_eq!(
            node.state_of(name).as_deref(),
            Some("local_deleted"),
            "{host}: {name}"
        );
        let key = node.key_of(name);
        assert!(
            store.head(&key).await.unwrap().is_some(),
            "{host}: {key} is gone"
        );
    }

    // C answers for the fleet: A's and B's recordings of the number too.
    c.wait_db(
        "the held recordings in the catalog",
        &format!("SELECT COUNT(*) FROM recvault_recordings WHERE phone = '{HELD}' AND state = 'local_deleted'"),
        3,
    )
    .await;
    let find = c.node("C").recvault(&["find", "--phone", HELD]);
    expect_code(&find, 0);
    let out = text(&find);
    for (host, name) in &held {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{host}\t")) && l.contains(name.as_str()))
            .unwrap_or_else(|| panic!("{name} of {host} not found:\n{out}"));
        assert!(line.contains("CASE-7"), "{line}");
    }
    let status = c.node("B").recvault(&["fleet", "status"]);
    expect_code(&status, 0);
    assert_eq!(
        text(&status).matches(": reachable").count(),
        3,
        "{}",
        text(&status)
    );
    let show = c.node("B").recvault(&["hold", "show", "CASE-7"]);
    expect_code(&show, 0);

    // Released from B, the hold stops protecting anything anywhere.
    let release = c
        .node("B")
        .recvault(&["hold", "release", "CASE-7", "--reason", "case closed"]);
    expect_code(&release, 0);
    for host in ["A", "B", "C"] {
        c.node(host).sweep();
    }
    for (host, name) in &held {
        c.node(host).wait_state(name, "remote_deleted").await;
    }
    for host in ["A", "B", "C"] {
        c.node(host).stop();
    }
}
