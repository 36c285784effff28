//! A fleet hold reaches the store: placed on A, it is copied there (the
//! fleet's hold table) and mirrored onto Object Lock for every covered
//! object of every box — C's by C, silent B's by the leader A; released on
//! C, every legal hold goes off again. Against moto (Garage has no Object
//! Lock); skipped, saying so, where `moto_server` is not installed.

use std::time::Duration;

use aws_sdk_s3::types::ObjectLockLegalHoldStatus;

use super::{Cluster, LIMIT, text};
use crate::common::*;

const HELD: &str = "5550002222";
const BUCKET: &str = "fleetlock";

/// The object's legal hold as moto reports it (`None`: never had one).
async fn legal_hold(s3: &aws_sdk_s3::Client, key: &str) -> Option<ObjectLockLegalHoldStatus> {
    let got = s3
        .get_object_legal_hold()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await;
    got.ok()
        .and_then(|o| o.legal_hold().and_then(|h| h.status().cloned()))
}

/// Polls until every key of `keys` has legal hold `want`.
async fn wait_hold(s3: &aws_sdk_s3::Client, keys: &[&str], want: ObjectLockLegalHoldStatus) {
    let deadline = std::time::Instant::now() + LIMIT;
    for key in keys {
        while legal_hold(s3, key).await.as_ref() != Some(&want) {
            assert!(
                std::time::Instant::now() < deadline,
                "{key}: legal hold {:?}, waited for {want:?}",
                legal_hold(s3, key).await
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_hold_is_copied_to_the_store_and_mirrored_on_every_boxs_objects() {
    let Some(moto) = start_moto() else {
        eprintln!("SKIPPED: moto_server not found; pip install 'moto[server]' to run this test");
        return;
    };
    moto.versioned_bucket(BUCKET, true).await;
    let Some(mut c) = Cluster::on("fleet_mirror", &["A", "B", "C"], moto.target(BUCKET)).await
    else {
        return;
    };
    for host in ["A", "B", "C"] {
        let config = c.node(host).site.config.clone();
        let text = std::fs::read_to_string(&config).unwrap();
        let text = text.replacen("[ledger]", "object_lock_legal_hold = true\n\n[ledger]", 1);
        std::fs::write(&config, text).unwrap();
    }
    expect_code(&c.node("A").recvault(&["fleet", "init", "--confirm"]), 0);
    expect_code(
        &c.node("A")
            .recvault(&["retention", "set", "default", "forever", "--confirm"]),
        0,
    );
    let on_b = c.node("B").call(HELD, 3, 41);
    let on_c = c.node("C").call(HELD, 3, 42);
    let free = c.node("C").call("5550002323", 3, 43);
    c.node("A").start();
    c.node("A").wait_log("this box leads the fleet").await;
    c.node("B").start();
    c.node("C").start();
    c.node("B").wait_state(&on_b, "local_deleted").await;
    for name in [&on_c, &free] {
        c.node("C").wait_state(name, "local_deleted").await;
    }
    c.wait_db(
        "the recordings in the catalog",
        "SELECT COUNT(*) FROM recvault_recordings WHERE state = 'local_deleted'",
        3,
    )
    .await;
    let (key_b, key_c, key_free) = (
        c.node("B").key_of(&on_b),
        c.node("C").key_of(&on_c),
        c.node("C").key_of(&free),
    );

    // B falls silent; the hold is placed on A.
    c.node("B").stop();
    let deadline = std::time::Instant::now() + LIMIT;
    loop {
        let status = c.node("A").recvault(&["fleet", "status"]);
        if text(&status).contains("B: UNREACHABLE") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{}", text(&status));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let add = c.node("A").recvault(&[
        "hold", "add", "CASE-4", "--reason", "audit", "--phone", HELD,
    ]);
    expect_code(&add, 0);
    let out = text(&add);
    let copy = out
        .lines()
        .find_map(|l| l.strip_prefix("holds copied to the store: "))
        .unwrap_or_else(|| panic!("no hold copy in:\n{out}"))
        .to_string();
    assert!(copy.contains(".recvault/fleet-holds/"), "{copy}");
    let store = moto.target(BUCKET).store(64 << 20, 16 << 20).await;
    assert!(store.head(&copy).await.unwrap().is_some(), "{copy}");

    let s3 = moto.client();
    wait_hold(&s3, &[&key_c, &key_b], ObjectLockLegalHoldStatus::On).await;
    assert_ne!(
        legal_hold(&s3, &key_free).await,
        Some(ObjectLockLegalHoldStatus::On)
    );

    // Released on C: C's object by C, silent B's by the leader.
    expect_code(
        &c.node("C")
            .recvault(&["hold", "release", "CASE-4", "--reason", "closed"]),
        0,
    );
    wait_hold(&s3, &[&key_c, &key_b], ObjectLockLegalHoldStatus::Off).await;
    for host in ["A", "C"] {
        c.node(host).stop();
    }
}
