//! The GCS store against fake-gcs-server.

use std::collections::HashMap;

use super::*;
use crate::servers;

#[test]
fn everything_works_on_gcs() {
    let Some(g) = servers::shared_gcs() else {
        return;
    };
    everything_works("gcs-all", Target::Gcs(g), g.store(64 << 20, 16 << 20));
}

#[test]
fn a_gcs_outage_loses_nothing_and_the_backlog_drains() {
    let Some(mut g) = servers::private_gcs() else {
        return;
    };
    let site = site("gcs-outage", Target::Gcs(&g));
    outage(site, &mut g.proc);
}

#[test]
fn a_damaged_gcs_object_is_caught_by_verify() {
    let Some(g) = servers::shared_gcs() else {
        return;
    };
    let store = g.store(64 << 20, 16 << 20);
    damage_is_caught_by_verify("gcs-damage", Target::Gcs(g), |key, size| {
        block_on(async {
            let before = store.head(key).await.unwrap().unwrap();
            let meta: HashMap<String, String> = before.metadata.clone().into_iter().collect();
            store
                .operator()
                .write_with(key, damaged(size))
                .user_metadata(meta)
                .await
                .unwrap();
            let after = store.head(key).await.unwrap().unwrap();
            assert_eq!(after.metadata, before.metadata);
            let checksum = after.checksum.unwrap();
            assert!(
                checksum.starts_with("md5:"),
                "GCS's MD5 no longer proves our SHA-256: {checksum}"
            );
        });
    });
}

#[test]
fn gcs_checks_name_the_setting_at_fault() {
    let Some(g) = servers::shared_gcs() else {
        return;
    };
    check_passes(
        "gcs-check",
        Target::Gcs(g),
        "the store proves the bytes it holds",
    );
    check_names(
        "gcs-nobucket",
        Target::Gcs(g),
        |site| site.set_option("store", "bucket", "\"no-such-bucket\""),
        &["store.bucket"],
    );
}

#[test]
fn an_object_sent_in_chunks_is_still_proven_by_its_md5() {
    let Some(g) = servers::shared_gcs() else {
        return;
    };
    // GCS hashes a resumable upload whole: its MD5 still proves our SHA-256.
    let checksum = large_object("gcs-chunks", Target::Gcs(g), g.store(5 << 20, 5 << 20));
    assert!(checksum.is_some_and(|c| !c.starts_with("md5:")));
}

#[test]
fn fake_gcs_server_ignores_if_generation_match_so_puts_check_first() {
    let Some(g) = servers::shared_gcs() else {
        return;
    };
    // Real GCS enforces ifGenerationMatch=0; this emulator does not (for
    // resumable uploads), and the store notices and heads before each put.
    assert!(!block_on(
        g.store(64 << 20, 16 << 20).enforces_create_only()
    ));
}
