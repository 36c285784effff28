//! Legal holds mirrored as S3 Object Lock legal holds, against moto's server
//! mode (Garage has no Object Lock). Skipped, saying so, where `moto_server`
//! is not installed (`pip install 'moto[server]'`).

use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::types::ObjectLockLegalHoldStatus;

use crate::common::*;

/// The object's legal hold as the store reports it; `None` only where the
/// store says the object never had one. Any other error fails the test.
async fn legal_hold(client: &Client, bucket: &str, key: &str) -> Option<ObjectLockLegalHoldStatus> {
    use aws_sdk_s3::error::ProvideErrorMetadata;
    match client
        .get_object_legal_hold()
        .bucket(bucket)
        .key(key)
        .send()
        .await
    {
        Ok(o) => o.legal_hold().and_then(|h| h.status().cloned()),
        Err(e) if e.code() == Some("NoSuchObjectLockConfiguration") => None,
        Err(e) => panic!("GetObjectLegalHold `{key}`: {e:?}"),
    }
}

#[test]
fn holds_are_mirrored_as_object_lock_legal_holds() {
    let Some(moto) = start_moto() else {
        eprintln!("SKIPPED: moto_server not found; pip install 'moto[server]' to run this test");
        return;
    };
    let bucket = "locked";
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s3 = moto.client();
    rt.block_on(
        s3.create_bucket()
            .bucket(bucket)
            .object_lock_enabled_for_bucket(true)
            .send(),
    )
    .unwrap();
    let target = moto.target(bucket);
    let mut site = Site::new("objlock");
    site.configure(
        Target::Garage(&target),
        "settle = \"1s\"\nupload_after = \"0s\"",
    );
    let config = std::fs::read_to_string(&site.config).unwrap();
    std::fs::write(
        &site.config,
        config.replace("[ledger]", "object_lock_legal_hold = true\n\n[ledger]"),
    )
    .unwrap();

    let first = b"20260301-101500_5551234567-all.wav";
    let second = b"20260302-111500_5557654321-all.wav";
    put_recording(&site.spool, first, &wav(1.0, 1), Duration::from_secs(3600));
    put_recording(&site.spool, second, &wav(1.0, 2), Duration::from_secs(3600));
    // Held before it is archived: the pipeline sets the object's hold.
    let out = site.recvault(&[
        "hold",
        "add",
        "C-9",
        "--reason",
        "audit",
        "--phone",
        "5557654321",
    ]);
    expect_code(&out, 0);
    expect_code(&site.recvault(&["run", "--once"]), 0);
    let ledger = site.ledger();
    let key = |name: &[u8]| ledger.find(name).unwrap()[0].object_key.clone().unwrap();
    let status = |name: &[u8]| rt.block_on(legal_hold(&s3, bucket, &key(name)));
    assert_eq!(status(second), Some(ObjectLockLegalHoldStatus::On));
    assert_ne!(status(first), Some(ObjectLockLegalHoldStatus::On));

    // Held after it is archived: `hold add` sets it.
    let out = site.recvault(&[
        "hold",
        "add",
        "C-10",
        "--reason",
        "audit",
        "--recording",
        "20260301-101500_5551234567-all.wav",
    ]);
    expect_code(&out, 0);
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 on"));
    assert_eq!(status(first), Some(ObjectLockLegalHoldStatus::On));

    // Releasing clears it; the other case's hold stays.
    expect_code(
        &site.recvault(&["hold", "release", "C-10", "--reason", "done"]),
        0,
    );
    assert_eq!(status(first), Some(ObjectLockLegalHoldStatus::Off));
    assert_eq!(status(second), Some(ObjectLockLegalHoldStatus::On));
}
