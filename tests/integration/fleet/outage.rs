//! A box cut off from the fleet's database while a hold is placed and its
//! sweep is due: it keeps archiving (compress, upload, verify, remove the
//! local copy), deletes nothing — not even what no hold covers — and says
//! so; healed, it catches up without an operator: the uncovered recording
//! goes, the held one stays, and the catalog has both.

use super::{Cluster, text};
use crate::common::*;

const HELD: &str = "5550003333";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_box_cut_off_while_a_hold_is_placed_deletes_nothing_until_it_can_check_the_holds() {
    let Some(mut c) = Cluster::new("fleet_outage", &["A", "B", "C"]).await else {
        return;
    };
    expect_code(&c.node("A").recvault(&["fleet", "init", "--confirm"]), 0);
    for host in ["A", "B", "C"] {
        c.node(host).start();
    }
    c.wait_db(
        "three boxes joined",
        "SELECT COUNT(*) FROM recvault_boxes",
        3,
    )
    .await;

    // B is cut off from the database (not from the store); then A's hold.
    c.node("B").db.cut();
    let add = c.node("A").recvault(&[
        "hold",
        "add",
        "CASE-9",
        "--reason",
        "complaint",
        "--phone",
        HELD,
    ]);
    expect_code(&add, 0);
    let (held, free) = {
        let b = c.node("B");
        (b.call(HELD, 100, 31), b.call("5550004444", 100, 32))
    };
    for name in [&held, &free] {
        c.node("B").wait_state(name, "local_deleted").await;
    }
    c.node("B").sweep();
    c.node("B")
        .wait_log("retention deletes nothing while the fleet's holds cannot be checked")
        .await;
    let store = c.garage.store(64 << 20, 16 << 20).await;
    for name in [&held, &free] {
        let b = c.node("B");
        assert_eq!(b.state_of(name).as_deref(), Some("local_deleted"), "{name}");
        assert!(
            store.head(&b.key_of(name)).await.unwrap().is_some(),
            "{name}"
        );
    }
    // The others see B go silent.
    let deadline = std::time::Instant::now() + super::LIMIT;
    loop {
        let status = c.node("A").recvault(&["fleet", "status"]);
        if status.status.code() == Some(1) && text(&status).contains("B: UNREACHABLE") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{}", text(&status));
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }

    // Healed: B publishes what it archived, and its next sweep deletes
    // what no hold covers, and keeps the held recording.
    c.node("B").db.heal();
    c.wait_db(
        "B's recordings in the catalog",
        "SELECT COUNT(*) FROM recvault_recordings WHERE host = 'B'",
        2,
    )
    .await;
    c.node("B").sweep();
    c.node("B").wait_state(&free, "remote_deleted").await;
    assert_eq!(
        c.node("B").state_of(&held).as_deref(),
        Some("local_deleted")
    );
    assert!(
        store
            .head(&c.node("B").key_of(&held))
            .await
            .unwrap()
            .is_some()
    );
    let find = c.node("A").recvault(&["find", "--phone", HELD]);
    expect_code(&find, 0);
    assert!(text(&find).contains(held.as_str()), "{}", text(&find));
    for host in ["A", "B", "C"] {
        c.node(host).stop();
    }
}
