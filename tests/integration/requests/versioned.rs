//! Erasure on a versioned bucket with Object Lock (moto's server): every
//! version and delete marker of an erased object goes; a version Object
//! Lock retention keeps is reported with its date, and the daemon finishes
//! the erasure once the date has passed.

use std::time::Duration;

use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{ObjectLockRetention, ObjectLockRetentionMode};

use super::*;

const X: &str = "5552223333";

#[test]
fn every_version_goes_and_object_lock_is_waited_for() {
    let Some(moto) = start_moto() else {
        eprintln!("SKIPPED: moto_server not found; pip install 'moto[server]' to run this test");
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(moto.versioned_bucket("erasing", true));
    let target = moto.target("erasing");
    let site = site("erase-versions", Target::Garage(&target), DUE_NOW);
    for i in 0..3 {
        let (name, age) = call("SALES", 1 + i, X);
        put_recording(&site.spool, &name, &wav(0.3, i as u64), age);
    }
    ok(&site, &["run", "--once"]);
    assert!(ok(&site, &["check"]).contains("versioning: on"));
    let ledger = site.ledger();
    let ids = found_ids(&site, &["--phone", X]);
    let keys: Vec<String> = ids
        .iter()
        .map(|id| ledger.recording(*id).unwrap().object_key.unwrap())
        .collect();
    drop(ledger);
    let s3 = moto.client();
    rt.block_on(async {
        // A second version under one key, a delete marker over another.
        s3.put_object()
            .bucket("erasing")
            .key(&keys[0])
            .body(ByteStream::from_static(b"another version"))
            .send()
            .await
            .unwrap();
        s3.delete_object()
            .bucket("erasing")
            .key(&keys[1])
            .send()
            .await
            .unwrap();
    });
    // Recordings' versions only (not recvault's own `.recvault/` objects).
    let recordings = |prefix: &str| {
        let all = rt.block_on(moto.versions("erasing", prefix));
        all.into_iter()
            .filter(|(k, _, _)| !k.contains("/.recvault/"))
            .collect::<Vec<_>>()
    };
    let versions = recordings(&site.prefix);
    assert_eq!(versions.len(), 5, "{versions:?}");
    // The third object is under Object Lock retention for a few seconds.
    let until = recvault::units::now_secs() + 8;
    let locked = rt
        .block_on(moto.versions("erasing", &keys[2]))
        .pop()
        .unwrap()
        .1;
    rt.block_on(
        s3.put_object_retention()
            .bucket("erasing")
            .key(&keys[2])
            .version_id(&locked)
            .retention(
                ObjectLockRetention::builder()
                    .mode(ObjectLockRetentionMode::Compliance)
                    .retain_until_date(DateTime::from_secs(until))
                    .build(),
            )
            .send(),
    )
    .unwrap();

    let shown = ok(&site, &["erase", "--phone", X, "--request", "V-1"]);
    assert!(shown.contains("every version and delete marker"), "{shown}");
    let out = site.recvault(&[
        "erase",
        "--phone",
        X,
        "--request",
        "V-1",
        "--confirm",
        &token_of(&shown),
    ]);
    expect_code(&out, 0);
    let report = stdout(&out);
    assert!(
        report.contains("2 erased, 1 waiting for Object Lock"),
        "{report}"
    );
    assert!(
        report.contains(&recvault::units::local_time(until)),
        "says until when: {report}"
    );
    let left = recordings(&site.prefix);
    assert_eq!(
        left,
        [(keys[2].clone(), locked.clone(), false)],
        "only the locked version stays"
    );
    assert_eq!(ids_in_state(&site, &["--phone", X], "erasing").len(), 1);

    // Once the date has passed, the daemon finishes the erasure.
    std::thread::sleep(Duration::from_secs(
        (until - recvault::units::now_secs() + 1).max(0) as u64,
    ));
    let mut daemon = site
        .command(&["run"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for(
        Duration::from_secs(60),
        "the daemon to finish the erasure",
        || ids_in_state(&site, &["--phone", X], "erased").len() == 3,
    );
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    let left = rt.block_on(moto.versions("erasing", &site.prefix));
    assert!(left.iter().all(|(k, _, _)| !k.contains(X)), "{left:?}");
    assert!(!dump(&site).contains(X));
    assert!(ok(&site, &["audit", "verify"]).contains("intact"));
}
