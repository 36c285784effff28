//! A forgotten box's recordings are still governed: the box that holds the
//! fleet's leadership (MariaDB's GET_LOCK) deletes what the fleet's policy
//! makes due and no hold covers. A kill -9 of the leader releases the lock
//! with its connection, and another box takes over.

use super::{Cluster, text};
use crate::common::*;

const HELD: &str = "5550006666";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgotten_boxs_recordings_are_swept_by_the_leader_and_a_killed_leader_is_replaced() {
    let Some(mut c) = Cluster::new("fleet_leader", &["A", "B", "C"]).await else {
        return;
    };
    expect_code(&c.node("A").recvault(&["fleet", "init", "--confirm"]), 0);
    expect_code(
        &c.node("A")
            .recvault(&["retention", "set", "default", "forever", "--confirm"]),
        0,
    );
    let (held, free) = {
        let b = c.node("B");
        (b.call(HELD, 100, 61), b.call("5550007777", 101, 62))
    };
    for host in ["A", "B", "C"] {
        c.node(host).start();
    }
    for name in [&held, &free] {
        c.node("B").wait_state(name, "local_deleted").await;
    }
    c.wait_db(
        "B's recordings in the catalog",
        "SELECT COUNT(*) FROM recvault_recordings WHERE host = 'B' AND state = 'local_deleted'",
        2,
    )
    .await;
    let add = c.node("C").recvault(&[
        "hold", "add", "CASE-3", "--reason", "audit", "--phone", HELD,
    ]);
    expect_code(&add, 0);

    // B is gone; the operator says it is wiped.
    c.node("B").stop();
    let deadline = std::time::Instant::now() + super::LIMIT;
    loop {
        let preview = c.node("A").recvault(&["fleet", "forget", "B"]);
        if preview.status.code() == Some(0) {
            assert!(
                text(&preview).contains("nothing changed"),
                "{}",
                text(&preview)
            );
            break;
        }
        assert!(
            text(&preview).contains("still heard from"),
            "{}",
            text(&preview)
        );
        assert!(std::time::Instant::now() < deadline, "{}", text(&preview));
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert_eq!(
        c.count("SELECT COUNT(*) FROM recvault_boxes WHERE forgotten_at IS NOT NULL")
            .await,
        0
    );
    expect_code(
        &c.node("A").recvault(&["fleet", "forget", "B", "--confirm"]),
        0,
    );

    // Whoever leads is killed; the other live box takes over.
    let leader = loop {
        let mut found = None;
        for host in ["A", "C"] {
            if c.node(host).log_text().contains("this box leads the fleet") {
                found = Some(host);
            }
        }
        if let Some(host) = found {
            break host;
        }
        assert!(
            std::time::Instant::now() < deadline + super::LIMIT,
            "no leader"
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    };
    let next = if leader == "A" { "C" } else { "A" };
    c.node(leader).kill();
    c.node(next).wait_log("this box leads the fleet").await;

    expect_code(
        &c.node(next)
            .recvault(&["retention", "set", "default", "30d", "--confirm"]),
        0,
    );
    c.wait_db(
        "the forgotten box's unheld recording deleted by the leader",
        "SELECT COUNT(*) FROM recvault_recordings WHERE host = 'B' AND state = 'remote_deleted'",
        1,
    )
    .await;
    let store = c.garage.store(64 << 20, 16 << 20).await;
    let b = c.node("B");
    assert!(
        store.head(&b.key_of(&free)).await.unwrap().is_none(),
        "{free}"
    );
    assert!(
        store.head(&b.key_of(&held)).await.unwrap().is_some(),
        "{held}"
    );
    assert_eq!(
        c.count(&format!(
            "SELECT COUNT(*) FROM recvault_recordings WHERE host = 'B' AND phone = '{HELD}' AND state = 'local_deleted'"
        ))
        .await,
        1
    );
    c.node(next).stop();
}
