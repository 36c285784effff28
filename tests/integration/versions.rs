//! Deleting for good on versioned buckets (moto's server: Garage has no
//! versions): every version and delete marker of a key goes, a version
//! Object Lock keeps is named with its date, and retention leaves nothing
//! of what it deleted.

use std::time::Duration;

use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{ObjectLockLegalHoldStatus, ObjectLockMode};
use recvault::store::{S3Store, Store, Versioning};

use crate::common::*;

async fn put(moto: &Moto, bucket: &str, key: &str, body: &'static [u8]) -> String {
    let out = moto
        .client()
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from_static(body))
        .send()
        .await
        .unwrap();
    out.version_id().unwrap().to_string()
}

async fn store(moto: &Moto, bucket: &str) -> S3Store {
    S3Store::new(&moto.target(bucket).s3_config(), 64 << 20, 16 << 20, None)
        .await
        .unwrap()
}

#[test]
fn every_version_and_delete_marker_of_a_key_goes() {
    let Some(moto) = start_moto() else {
        eprintln!("SKIPPED: moto_server not found; pip install 'moto[server]' to run this test");
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        moto.versioned_bucket("versioned", false).await;
        for body in [&b"one"[..], b"two", b"three"] {
            put(&moto, "versioned", "r/a.zst", body).await;
        }
        put(&moto, "versioned", "r/b.zst", b"b").await;
        put(&moto, "versioned", "r/a.zst.other", b"not ours").await;
        let store = store(&moto, "versioned").await;
        assert_eq!(store.versioning().await.unwrap(), Versioning::Enabled);
        // What retention used to do: a delete marker on top, the audio below.
        store.delete("r/b.zst").await.unwrap();
        assert_eq!(moto.versions("versioned", "r/b.zst").await.len(), 2);

        let keys = ["r/a.zst", "r/b.zst", "r/absent.zst"].map(String::from);
        let results = store.delete_all_versions(&keys).await.unwrap();
        let got: Vec<(String, u64, bool)> = results
            .into_iter()
            .map(|(k, r)| {
                let p = r.unwrap();
                (k, p.versions, p.is_complete())
            })
            .collect();
        assert_eq!(
            got,
            [
                ("r/a.zst".to_string(), 3, true),
                ("r/b.zst".to_string(), 2, true),
                ("r/absent.zst".to_string(), 0, true)
            ]
        );
        let left: Vec<String> = moto
            .versions("versioned", "r/")
            .await
            .into_iter()
            .map(|(k, _, _)| k)
            .collect();
        assert_eq!(
            left,
            ["r/a.zst.other"],
            "a longer key with the same start stays"
        );
    });
}

#[test]
fn a_version_object_lock_keeps_is_named_with_its_date() {
    let Some(moto) = start_moto() else {
        eprintln!("SKIPPED: moto_server not found; pip install 'moto[server]' to run this test");
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        moto.versioned_bucket("locked", true).await;
        let s3 = moto.client();
        let old = put(&moto, "locked", "k.zst", b"old, unlocked").await;
        let until = recvault::units::now_secs() + 3 * 86400;
        let locked = s3
            .put_object()
            .bucket("locked")
            .key("k.zst")
            .body(ByteStream::from_static(b"locked"))
            .object_lock_mode(ObjectLockMode::Compliance)
            .object_lock_retain_until_date(DateTime::from_secs(until))
            .send()
            .await
            .unwrap()
            .version_id()
            .unwrap()
            .to_string();
        put(&moto, "locked", "held.zst", b"held").await;
        s3.put_object_legal_hold()
            .bucket("locked")
            .key("held.zst")
            .legal_hold(
                aws_sdk_s3::types::ObjectLockLegalHold::builder()
                    .status(ObjectLockLegalHoldStatus::On)
                    .build(),
            )
            .send()
            .await
            .unwrap();

        let store = store(&moto, "locked").await;
        let keys = ["k.zst", "held.zst"].map(String::from);
        let results = store.delete_all_versions(&keys).await.unwrap();
        let k = results[0].1.clone().unwrap();
        assert_eq!(k.versions, 1, "the unlocked version went");
        assert_eq!(k.locked.len(), 1, "{k:?}");
        assert_eq!(k.locked[0].version_id, locked);
        assert_eq!(k.locked[0].until, Some(until));
        assert!(!k.locked[0].legal_hold);
        assert!(
            k.locked[0].to_string().contains("retention until"),
            "{}",
            k.locked[0]
        );
        let held = results[1].1.clone().unwrap();
        assert!(
            held.locked[0].legal_hold && held.locked[0].until.is_none(),
            "{held:?}"
        );
        let left = moto.versions("locked", "").await;
        assert!(left.iter().all(|(_, v, _)| *v != old), "{left:?}");
        assert_eq!(left.len(), 2, "{left:?}");
    });
}

#[test]
fn retention_on_a_versioned_bucket_leaves_no_version_behind() {
    let Some(moto) = start_moto() else {
        eprintln!("SKIPPED: moto_server not found; pip install 'moto[server]' to run this test");
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(moto.versioned_bucket("retained", false));
    let target = moto.target("retained");
    let mut site = Site::new("versioned-retention");
    site.configure(
        Target::Garage(&target),
        "settle = \"1s\"\nupload_after = \"0s\"",
    );
    let when = chrono::Local::now() - chrono::Duration::days(200);
    let name = format!("{}_5551234567-all.wav", when.format("%Y%m%d-%H%M%S"));
    let age = Duration::from_secs(200 * 86400 + 600);
    put_recording(&site.spool, name.as_bytes(), &wav(0.5, 1), age);
    expect_code(&site.recvault(&["run", "--once"]), 0);
    let check = site.recvault(&["check"]);
    expect_code(&check, 0);
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(text.contains("versioning: on"), "{text}");
    let before = rt.block_on(moto.versions("retained", &format!("{}testhost/", site.prefix)));
    assert_eq!(before.len(), 1, "{before:?}");

    site.set_option("retention", "default", "\"90d\"");
    expect_code(&site.recvault(&["retention", "run"]), 0);
    assert_eq!(
        site.states()
            .get(&recvault::recording::State::RemoteDeleted),
        Some(&1)
    );
    let left = rt.block_on(moto.versions("retained", &format!("{}testhost/", site.prefix)));
    assert!(
        left.is_empty(),
        "no version or delete marker may stay: {left:?}"
    );
}
