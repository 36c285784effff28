//! A recording uploaded again under a new key (its first upload failed its
//! verification: the store served damaged bytes back) keeps its first
//! object — the complete audio — among its keys (issue 20, item 7): a
//! rebuilt ledger makes one recording of both objects, and erasure and
//! retention delete both.

use super::*;
use crate::proxy::{Fault, Proxy, Seen};

const X: &str = "5551234567";
const Y: &str = "5559876543";

fn objects(g: &Garage, site: &Site) -> Vec<String> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = g.store(64 << 20, 16 << 20).await;
        recording_objects(&*store, &site.prefix).await
    })
    .into_iter()
    .map(|o| o.key)
    .collect()
}

#[test]
fn earlier_uploads_are_rebuilt_as_one_recording_and_deleted_with_it() {
    let g = garage();
    let proxy = Proxy::garage(&g);
    let site = site("uploads", Target::Proxy(&g, proxy.port), DUE_NOW);
    let mut names = Vec::new();
    for (i, phone) in [X, Y].into_iter().enumerate() {
        let (name, age) = call("SALES", 20, phone);
        put_recording(&site.spool, &name, &wav(1.0, i as u64), age);
        names.push(name);
    }
    // A store that reports no checksum and serves damaged bytes: each
    // read-back fails, and each recording is uploaded again under a new key.
    let reads = |fault: Fault| {
        move |s: &Seen| match s.method.as_str() {
            "HEAD" => Fault::NoChecksum,
            "GET" if !s.target.contains("list-type") && !s.target.contains("?location") => fault,
            _ => Fault::Pass,
        }
    };
    proxy.set_rule(reads(Fault::CorruptResponse));
    expect_code(&site.recvault(&["run", "--once"]), 1);
    proxy.set_rule(reads(Fault::NoChecksum));
    ok(&site, &["run", "--once"]);
    let stored = objects(&g, &site);
    assert_eq!(stored.len(), 4, "two objects per recording: {stored:?}");

    // The ledger is lost: rebuilt, each recording is one row with both keys.
    std::fs::remove_file(site.ledger_path()).unwrap();
    let text = ok(&site, &["ledger", "rebuild", "--from-store"]);
    assert!(text.contains(": 2 recordings"), "{text}");
    assert!(text.contains("2 objects are earlier uploads"), "{text}");
    // New ids start above every id the lost ledger may have handed out.
    let next = recvault::recovery::ids::BLOCK;
    assert!(site.ledger().id_marks().unwrap().next > next, "{text}");
    expect_code(&site.recvault(&["ledger", "check"]), 0);
    for name in &names {
        assert_eq!(site.ledger().find(name).unwrap().len(), 1);
        restore(&site, name);
    }

    let preview = ok(&site, &["erase", "--request", "U-1", "--phone", X]);
    // Both of X's objects are named before anything is deleted.
    let copies = preview.lines().find(|l| l.contains("copies:")).unwrap();
    assert_eq!(copies.matches("store ").count(), 2, "{preview}");
    let token = token_of(&preview);
    ok(
        &site,
        &[
            "erase",
            "--request",
            "U-1",
            "--phone",
            X,
            "--confirm",
            &token,
        ],
    );
    let left = objects(&g, &site);
    assert_eq!(
        left.len(),
        2,
        "X's first upload outlived its erasure: {left:?}"
    );
    assert!(left.iter().all(|k| k.contains(Y)), "{left:?}");

    site.set_option("retention", "default", "\"7d\"");
    ok(&site, &["retention", "run"]);
    let left = objects(&g, &site);
    assert!(
        left.is_empty(),
        "Y's first upload outlived retention: {left:?}"
    );
    expect_code(&site.recvault(&["ledger", "check"]), 0);
    expect_code(&site.recvault(&["audit", "verify"]), 0);
}
