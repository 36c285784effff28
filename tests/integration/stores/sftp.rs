//! The SFTP store against Debian's OpenSSH server.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use super::*;
use crate::servers;

#[test]
fn everything_works_on_sftp() {
    let Some(s) = servers::shared_sshd() else {
        return;
    };
    everything_works("sftp-all", Target::Sftp(s), s.store());
}

#[test]
fn an_sftp_outage_loses_nothing_and_the_backlog_drains() {
    let Some(mut s) = servers::private_sshd() else {
        return;
    };
    let site = site("sftp-outage", Target::Sftp(&s));
    outage(site, &mut s.proc);
}

#[test]
fn a_damaged_sftp_file_is_caught_by_verify() {
    let Some(s) = servers::shared_sshd() else {
        return;
    };
    damage_is_caught_by_verify("sftp-damage", Target::Sftp(s), |key, size| {
        // The server's disk is right here: change the file itself.
        fs::write(s.root.join(key), damaged(size)).unwrap();
    });
}

#[test]
fn a_changed_host_key_is_refused_and_nothing_is_deleted() {
    let Some(mut s) = servers::private_sshd() else {
        return;
    };
    let site = site("sftp-hostkey", Target::Sftp(&s));
    let first = recordings(&site, 2, 3);
    expect_code(&site.recvault(&["run", "--once"]), 0);
    assert_eq!(archived(&site), 2);

    s.restart_with_new_host_key();
    let second = recordings(&site, 2, 4);
    let out = site.recvault(&["run", "--once"]);
    let text = output(&out);
    assert!(text.contains("host key mismatch"), "{text}");
    assert!(text.contains("store.host_key"), "{text}");
    for (path, bytes) in &second {
        assert_eq!(
            &fs::read(path).unwrap(),
            bytes,
            "{} touched",
            path.display()
        );
    }
    assert_eq!(
        archived(&site),
        2,
        "nothing archived to a server we cannot trust"
    );
    let out = site.recvault(&["check"]);
    assert_ne!(out.status.code(), Some(0));
    let text = output(&out);
    assert!(
        text.contains("host key mismatch") && text.contains("SHA256:"),
        "{text}"
    );

    // The operator checks the new key and pins it: archiving resumes.
    site.set_option("store", "host_key", &format!("\"{}\"", s.host_key_line()));
    expect_code(&site.recvault(&["run", "--once"]), 0);
    assert_eq!(archived(&site), 4);
    for (path, bytes) in first.iter().chain(&second) {
        assert_eq!(sha256(&restore(&site, name_of(path))), sha256(bytes));
    }
}

#[test]
fn sftp_checks_name_the_setting_at_fault() {
    let Some(s) = servers::shared_sshd() else {
        return;
    };
    check_passes(
        "sftp-check",
        Target::Sftp(s),
        "every object is downloaded and hashed again",
    );
    check_names(
        "sftp-nopath",
        Target::Sftp(s),
        |site| {
            site.set_option(
                "store",
                "path",
                &format!("\"{}/missing\"", s.root.display()),
            )
        },
        &["store.path", "does not exist"],
    );
    check_names(
        "sftp-badkey",
        Target::Sftp(s),
        |site| {
            let other = site.root.join("other_key");
            let out = std::process::Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(&other)
                .output()
                .unwrap();
            assert!(out.status.success());
            site.set_option("store", "key_file", &format!("\"{}\"", other.display()));
        },
        &["store.key_file", "refused"],
    );
}

#[test]
fn leftovers_of_a_killed_put_neither_block_nor_show() {
    let Some(s) = servers::shared_sshd() else {
        return;
    };
    let store = s.store();
    let prefix = unique_prefix("sftp-leftovers");
    let key = format!("{prefix}a/b.wav.zst");
    // A put killed after linking its sidecar, before linking its object...
    let side = s.root.join(".recvault-meta").join(format!("{key}.toml"));
    fs::create_dir_all(side.parent().unwrap()).unwrap();
    fs::write(
        &side,
        "size = 7\nchecksum = \"x\"\n[metadata]\nsha256 = \"stale\"\n",
    )
    .unwrap();
    // ...and one killed while it wrote the object's temp file.
    let dir = s.root.join(&prefix).join("a");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(".b.wav.zst.tmp-1-2"), b"partial").unwrap();
    block_on(async {
        assert_eq!(store.head(&key).await.unwrap(), None);
        assert!(store.list(&prefix).await.unwrap().is_empty());
        let bytes = b"the object".to_vec();
        let tmp = tempfile::tempdir().unwrap();
        let source = tmp.path().join("src");
        fs::write(&source, &bytes).unwrap();
        let sha = recvault::digest::sha256(&bytes);
        let meta: BTreeMap<String, String> = [("sha256".to_string(), hex::encode(sha))].into();
        let put = recvault::store::PutRequest {
            key: &key,
            source: recvault::store::Body::File(&source),
            size: 10,
            sha256: sha,
            metadata: &meta,
            content_type: "application/octet-stream",
        };
        assert!(matches!(
            store.put(&put).await.unwrap(),
            recvault::store::PutOutcome::Created { .. }
        ));
        let info = store.head(&key).await.unwrap().unwrap();
        assert_eq!(info.metadata, meta, "the stale sidecar was replaced");
        assert_eq!(info.checksum, None, "a file server proves nothing");
        let keys: Vec<String> = store
            .list(&prefix)
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect();
        assert_eq!(keys, vec![key.clone()]);
    });
}

#[test]
fn killing_the_daemon_mid_upload_loses_nothing() {
    let Some(s) = servers::shared_sshd() else {
        return;
    };
    let site = site("sftp-kill", Target::Sftp(s));
    // Slow uploads, so the kill lands inside one.
    site.set_option("store", "max_upload_rate", "\"256KiB\"");
    let originals: BTreeMap<PathBuf, Vec<u8>> = (0..8u64)
        .map(|i| {
            let mut rng = fastrand::Rng::with_seed(i);
            let bytes: Vec<u8> = (0..300_000 + i as usize).map(|_| rng.u8(..)).collect();
            let name = format!("20260306-1200{i:02}_5552220{i:03}-all.wav");
            (
                put_recording(&site.spool, name.as_bytes(), &bytes, HOUR),
                bytes,
            )
        })
        .collect();
    let mut daemon = site
        .command(&["run"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500 + fastrand::u64(..1000)));
    unsafe { libc::kill(daemon.id() as i32, libc::SIGKILL) };
    daemon.wait().unwrap();
    for (path, bytes) in &originals {
        if let Ok(now) = fs::read(path) {
            assert_eq!(&now, bytes, "{} altered", path.display());
        }
    }
    site.set_option("store", "max_upload_rate", "\"none\"");
    expect_code(&site.recvault(&["run", "--once"]), 0);
    assert_eq!(archived(&site), 8);
    for (path, bytes) in &originals {
        assert_eq!(sha256(&restore(&site, name_of(path))), sha256(bytes));
    }
    let objects = block_on(recording_objects(&*s.store(), &site.prefix));
    assert_eq!(objects.len(), 8, "one object per recording: {objects:?}");
    expect_code(&site.recvault(&["ledger", "check"]), 0);
}
