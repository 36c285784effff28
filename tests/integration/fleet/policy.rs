//! The fleet's retention policy: a box whose `[retention]` differs says so
//! and follows the fleet; a change is previewed (what it would delete, on
//! which box, when) without changing anything, then applied with
//! --confirm, and every box's next sweep follows it.

use super::{Cluster, text};
use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retention_change_is_previewed_then_applied_on_every_box() {
    let Some(mut c) = Cluster::new("fleet_policy", &["A", "B", "C"]).await else {
        return;
    };
    expect_code(&c.node("A").recvault(&["fleet", "init", "--confirm"]), 0);
    // Everything kept for now; the boxes' own [retention] says 30 days.
    expect_code(
        &c.node("B")
            .recvault(&["retention", "set", "default", "forever", "--confirm"]),
        0,
    );
    let mut calls = Vec::new();
    for (i, host) in ["A", "B", "C"].into_iter().enumerate() {
        calls.push((
            host,
            c.node(host)
                .call(&format!("555000500{i}"), 100, 50 + i as u64),
        ));
        c.node(host).start();
    }
    for (host, name) in &calls {
        c.node(host).wait_state(name, "local_deleted").await;
    }
    c.node("C")
        .wait_log("differs from the fleet's policy")
        .await;
    for host in ["A", "B", "C"] {
        c.node(host).sweep();
    }
    c.wait_db(
        "every box's recording in the catalog",
        "SELECT COUNT(*) FROM recvault_recordings WHERE state = 'local_deleted'",
        3,
    )
    .await;

    // The preview names each box's recording, due now; nothing changes.
    let preview = c
        .node("C")
        .recvault(&["retention", "set", "default", "30d"]);
    expect_code(&preview, 0);
    let out = text(&preview);
    assert!(
        out.contains("deleted at the next sweep: 3 recordings"),
        "{out}"
    );
    for host in ["A", "B", "C"] {
        assert!(out.contains(&format!("  {host} -: 1 recordings")), "{out}");
    }
    assert!(out.contains("nothing changed"), "{out}");
    for (host, name) in &calls {
        assert_eq!(
            c.node(host).state_of(name).as_deref(),
            Some("local_deleted")
        );
    }

    let apply = c
        .node("C")
        .recvault(&["retention", "set", "default", "30d", "--confirm"]);
    expect_code(&apply, 0);
    assert!(text(&apply).contains("version 3"), "{}", text(&apply));
    // Every box re-reads the policy with its heartbeat; its next sweep follows.
    for host in ["A", "B", "C"] {
        c.node(host)
            .wait_log("the fleet's retention policy changed (version 3)")
            .await;
        c.node(host).sweep();
    }
    for (host, name) in &calls {
        c.node(host).wait_state(name, "remote_deleted").await;
    }
    for host in ["A", "B", "C"] {
        c.node(host).stop();
    }
}
