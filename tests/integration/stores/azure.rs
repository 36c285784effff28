//! The Azure store against Azurite.

use std::collections::HashMap;

use super::*;
use crate::servers;

#[test]
fn everything_works_on_azure() {
    let Some(a) = servers::shared_azurite() else {
        return;
    };
    everything_works("az-all", Target::Azure(a), a.store(64 << 20, 16 << 20));
}

#[test]
fn an_azure_outage_loses_nothing_and_the_backlog_drains() {
    let Some(mut a) = servers::private_azurite() else {
        return;
    };
    let site = site("az-outage", Target::Azure(&a));
    outage(site, &mut a.proc);
}

#[test]
fn a_damaged_azure_blob_is_caught_by_verify() {
    let Some(a) = servers::shared_azurite() else {
        return;
    };
    let store = a.store(64 << 20, 16 << 20);
    damage_is_caught_by_verify("az-damage", Target::Azure(a), |key, size| {
        block_on(async {
            let before = store.head(key).await.unwrap().unwrap();
            // Overwritten with the same metadata: only the bytes differ.
            let meta: HashMap<String, String> = before
                .metadata
                .iter()
                .map(|(k, v)| (k.replace('-', "_"), v.clone()))
                .collect();
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
                "Azure's MD5 no longer proves our SHA-256: {checksum}"
            );
        });
    });
}

#[test]
fn azure_checks_name_the_setting_at_fault() {
    let Some(a) = servers::shared_azurite() else {
        return;
    };
    check_passes(
        "az-check",
        Target::Azure(a),
        "the store proves the bytes it holds",
    );
    check_names(
        "az-badkey",
        Target::Azure(a),
        |site| {
            let wrong = "d3Jvbmcga2V5IHdyb25nIGtleSB3cm9uZyBrZXkgd3Jvbmcga2V5IHdyb25nIGtleQ==";
            fs::write(
                site.root.join("azure-key.toml"),
                format!("account_key = \"{wrong}\"\n"),
            )
            .unwrap();
        },
        &["store.key_file", "refused"],
    );
    check_names(
        "az-nocontainer",
        Target::Azure(a),
        |site| site.set_option("store", "container", "\"no-such-container\""),
        &["store.container"],
    );
}

#[test]
fn a_blob_put_in_blocks_is_read_back_before_its_local_copy_goes() {
    let Some(a) = servers::shared_azurite() else {
        return;
    };
    // Azure computes no MD5 for a blob committed from blocks: nothing proves it.
    let checksum = large_object("az-blocks", Target::Azure(a), a.store(5 << 20, 5 << 20));
    assert_eq!(checksum, None);
}

#[test]
fn a_sas_token_never_reaches_a_message_or_a_log() {
    let Some(a) = servers::shared_azurite() else {
        return;
    };
    // Azurite refuses this token (its signature is made up): every request fails.
    let token =
        "sv=2021-08-06&ss=b&srt=sco&sp=rwdlac&se=2030-01-01T00:00:00Z&sig=TOPSECRETSIGNATURE%3D";
    check_names(
        "az-sas",
        Target::Azure(a),
        |site| {
            fs::write(
                site.root.join("azure-key.toml"),
                format!("sas_token = \"{token}\"\n"),
            )
            .unwrap()
        },
        &["store.key_file"],
    );
    let site = site("az-sas-run", Target::Azure(a));
    fs::write(
        site.root.join("azure-key.toml"),
        format!("sas_token = \"{token}\"\n"),
    )
    .unwrap();
    recordings(&site, 1, 5);
    for args in [&["check"][..], &["run", "--once"]] {
        let out = site
            .command(args)
            .env("RUST_LOG", "trace")
            .output()
            .unwrap();
        let text = output(&out);
        assert!(text.contains("127.0.0.1"), "the requests were made: {text}");
        assert!(
            !text.contains("TOPSECRETSIGNATURE") && !text.contains("sig="),
            "{text}"
        );
    }
    assert_eq!(archived(&site), 0);
}

#[test]
fn azurite_refuses_a_second_create_itself() {
    let Some(a) = servers::shared_azurite() else {
        return;
    };
    // So the conformance list exercised If-None-Match: *, not the check before each put.
    assert!(block_on(a.store(64 << 20, 16 << 20).enforces_create_only()));
}
