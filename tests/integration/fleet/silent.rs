//! A box cut off from the fleet's database (alive, in its own network
//! namespace) for longer than `host_timeout` is governed by the leader:
//! its recordings that fall due are deleted from the store by the leader,
//! each reserved in the gate's transaction, one a hold placed meanwhile
//! covers is kept, and the object of an erasure confirmed meanwhile is
//! erased (the request stays open until the box erased its own copies).
//! Healed, the box learns what the leader did:
//! its ledger and `status` say what the catalog says, and its own sweep
//! deletes only what it took in since and keeps the held recording.

use super::{Cluster, text};
use crate::common::*;

const HELD: &str = "5550008888";
const PERSON: &str = "5550007373";

/// The count `status` prints for `state` (0 when the line is missing).
fn status_count(status: &str, state: &str) -> u64 {
    status
        .lines()
        .find_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some(state)).then(|| words.next()?.parse().ok())?
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_boxs_due_recordings_are_swept_by_the_leader_and_the_box_agrees_when_healed() {
    let Some(mut c) = Cluster::new("fleet_silent", &["A", "B"]).await else {
        return;
    };
    expect_code(&c.node("A").recvault(&["fleet", "init", "--confirm"]), 0);
    expect_code(
        &c.node("A")
            .recvault(&["retention", "set", "default", "forever", "--confirm"]),
        0,
    );
    let (held, free, erased) = {
        let b = c.node("B");
        (
            b.call(HELD, 100, 81),
            b.call("5550009999", 100, 82),
            b.call(PERSON, 1, 84),
        )
    };
    // A leads (B, once cut off, could not govern anything).
    c.node("A").start();
    c.node("A").wait_log("this box leads the fleet").await;
    c.node("B").start();
    for name in [&held, &free, &erased] {
        c.node("B").wait_state(name, "local_deleted").await;
    }
    c.wait_db(
        "B's recordings in the catalog",
        "SELECT COUNT(*) FROM recvault_recordings WHERE host = 'B' AND state = 'local_deleted'",
        3,
    )
    .await;
    let erased_key = c.node("B").key_of(&erased);

    // B is cut off from the database (alive, still reaching the store).
    c.node("B").db.cut();
    let deadline = std::time::Instant::now() + super::LIMIT;
    loop {
        let status = c.node("A").recvault(&["fleet", "status"]);
        if text(&status).contains("B: UNREACHABLE") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{}", text(&status));
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    // Meanwhile a hold on A, then the policy makes both due.
    let add = c.node("A").recvault(&[
        "hold", "add", "CASE-5", "--reason", "dispute", "--phone", HELD,
    ]);
    expect_code(&add, 0);
    expect_code(
        &c.node("A")
            .recvault(&["retention", "set", "default", "30d", "--confirm"]),
        0,
    );
    // And an erasure of the person whose recording B keeps.
    let ask = ["erase", "--phone", PERSON, "--request", "GDPR-7"];
    let preview = text(&c.node("A").recvault(&ask));
    assert!(preview.contains(&erased), "{preview}");
    let token = preview
        .split("--confirm ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .unwrap_or_else(|| panic!("no token in:\n{preview}"))
        .to_string();
    let confirm = c
        .node("A")
        .recvault(&[&ask[..], &["--confirm", &token]].concat());
    assert!(
        text(&confirm).contains("erasure request GDPR-7"),
        "{}",
        text(&confirm)
    );
    c.wait_db(
        "the silent box's unheld recording deleted by the leader",
        "SELECT COUNT(*) FROM recvault_recordings WHERE host = 'B' AND state = 'remote_deleted'",
        1,
    )
    .await;
    let store = c.garage.store(64 << 20, 16 << 20).await;
    let (free_key, held_key) = (c.node("B").key_of(&free), c.node("B").key_of(&held));
    assert!(store.head(&free_key).await.unwrap().is_none(), "{free}");
    assert!(store.head(&held_key).await.unwrap().is_some(), "{held}");
    let deadline = std::time::Instant::now() + super::LIMIT;
    while store.head(&erased_key).await.unwrap().is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "the leader never erased {erased}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    c.wait_db(
        "what the leader did for B written down",
        "SELECT COUNT(*) FROM recvault_governed WHERE host = 'B'",
        2,
    )
    .await;
    assert_eq!(
        c.count("SELECT COUNT(*) FROM recvault_erasures WHERE completed_at IS NULL")
            .await,
        1,
        "complete before B erased its own copies"
    );
    // Cut off, B cannot know yet.
    assert_eq!(
        c.node("B").state_of(&free).as_deref(),
        Some("local_deleted")
    );

    // Healed: B's ledger agrees with the catalog; its own sweep deletes
    // nothing twice and keeps the held recording.
    c.node("B").db.heal();
    c.node("B").wait_state(&free, "remote_deleted").await;
    c.node("B").wait_log("this box's ledger now says so").await;
    c.wait_db(
        "B's part of the erasure done, the request complete",
        "SELECT COUNT(*) FROM recvault_erasures WHERE completed_at IS NOT NULL",
        1,
    )
    .await;
    assert!(
        c.node("B").state_of(&erased).is_none(),
        "{erased} kept its name"
    );
    c.wait_db(
        "B's agreement noted",
        "SELECT COUNT(*) FROM recvault_governed WHERE host = 'B'",
        0,
    )
    .await;
    // A recording B takes in after healing, due at once: B's own sweep
    // deletes it, and only it.
    let late = c.node("B").call("5550001010", 100, 83);
    c.node("B").wait_state(&late, "local_deleted").await;
    c.node("B").sweep();
    c.node("B").wait_state(&late, "remote_deleted").await;
    assert!(
        c.node("B").log_text().contains("deleted=1 "),
        "{}",
        c.node("B").log_text()
    );
    assert!(!c.node("B").log_text().contains("deleted=2 "));
    assert_eq!(
        c.node("B").state_of(&held).as_deref(),
        Some("local_deleted")
    );
    assert!(store.head(&held_key).await.unwrap().is_some(), "{held}");
    c.wait_db(
        "the catalog as B's ledger has it",
        "SELECT COUNT(*) FROM recvault_recordings WHERE host = 'B' AND state = 'remote_deleted'",
        3,
    )
    .await;
    let status = text(&c.node("B").recvault(&["status"]));
    assert_eq!(status_count(&status, "remote_deleted"), 3, "{status}");
    assert_eq!(status_count(&status, "local_deleted"), 1, "{status}");
    let audit = text(&c.node("B").recvault(&["audit"]));
    assert!(audit.contains("fleet leader A"), "{audit}");
    for host in ["A", "B"] {
        c.node(host).stop();
    }
}
