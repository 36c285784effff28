//! Erasure across boxes: `erase` on A previews every box's copies and, once
//! confirmed, B erases the copy still in its spool; C, stopped meanwhile,
//! keeps the request open (its copy pending) — the leader erases C's
//! stored object once C is silent — until it runs again and erases its
//! own copies: only then is the request complete.

use super::{Cluster, text};
use crate::common::*;

const PERSON: &str = "5550008888";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_started_on_one_box_stays_open_until_every_box_with_a_copy_erased_it() {
    let Some(mut c) = Cluster::new("fleet_erase", &["A", "B", "C"]).await else {
        return;
    };
    expect_code(&c.node("A").recvault(&["fleet", "init", "--confirm"]), 0);
    // B keeps its recording in the spool for an hour; C archives at once.
    c.node("B")
        .site
        .set_option("spool", "upload_after", "\"1h\"");
    let on_b = c.node("B").call(PERSON, 0, 71);
    let on_c = c.node("C").call(PERSON, 1, 72);
    for host in ["A", "B", "C"] {
        c.node(host).start();
    }
    c.node("C").wait_state(&on_c, "local_deleted").await;
    c.wait_db(
        "both recordings in the catalog",
        &format!("SELECT COUNT(*) FROM recvault_recordings WHERE phone = '{PERSON}'"),
        2,
    )
    .await;
    let key_c = c.node("C").key_of(&on_c);
    c.node("C").stop();

    let preview = c
        .node("A")
        .recvault(&["erase", "--phone", PERSON, "--request", "GDPR-1"]);
    let out = text(&preview);
    assert!(out.contains(&on_b) && out.contains(&on_c), "{out}");
    let token = out
        .split("--confirm ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .unwrap_or_else(|| panic!("no token in:\n{out}"))
        .to_string();
    let confirm = c.node("A").recvault(&[
        "erase",
        "--phone",
        PERSON,
        "--request",
        "GDPR-1",
        "--confirm",
        &token,
    ]);
    let out = text(&confirm);
    assert!(out.contains("erasure request GDPR-1"), "{out}");

    // B erases the copy in its spool; the request stays open for C.
    c.wait_db(
        "B's copy erased",
        "SELECT COUNT(*) FROM recvault_erasure_items WHERE host = 'B' AND erased_at IS NOT NULL",
        1,
    )
    .await;
    let spool_b = c.node("B").site.spool.join(&on_b);
    assert!(!spool_b.exists(), "{} is still there", spool_b.display());
    assert_eq!(
        c.count("SELECT COUNT(*) FROM recvault_erasures WHERE completed_at IS NULL")
            .await,
        1
    );
    // Once C is silent the leader erases its stored object; the request
    // stays open all the same, until C itself is back.
    let store = c.garage.store(64 << 20, 16 << 20).await;
    let deadline = std::time::Instant::now() + super::LIMIT;
    while store.head(&key_c).await.unwrap().is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "{key_c} kept while C is silent"
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    assert_eq!(
        c.count("SELECT COUNT(*) FROM recvault_erasures WHERE completed_at IS NULL")
            .await,
        1
    );

    // C comes back and erases its copies: complete.
    c.node("C").start();
    c.wait_db(
        "C's copy erased",
        "SELECT COUNT(*) FROM recvault_erasure_items WHERE host = 'C' AND erased_at IS NOT NULL",
        1,
    )
    .await;
    assert!(store.head(&key_c).await.unwrap().is_none(), "{key_c}");
    let again = c.node("B").recvault(&[
        "erase",
        "--phone",
        PERSON,
        "--request",
        "GDPR-1",
        "--confirm",
        &token,
    ]);
    let _ = again;
    c.wait_db(
        "the request complete",
        "SELECT COUNT(*) FROM recvault_erasures WHERE completed_at IS NOT NULL",
        1,
    )
    .await;
    for host in ["A", "B", "C"] {
        c.node(host).stop();
    }
}
