//! Beyond the conformance list, for the Azure, GCS and SFTP stores: the real
//! binary archiving, restoring, verifying, rebuilding and sweeping against
//! each store's real server; an outage in the middle of a run; an object
//! damaged behind recvault's back; `recvault check`'s words for bad
//! settings. One scenario function each, run by `azure.rs`, `gcs.rs` and
//! `sftp.rs` against their server (`servers.rs`).

mod azure;
mod gcs;
mod sftp;

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::Duration;

use recvault::recording::State;
use recvault::store::Store;

use crate::common::*;

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86400);
const DUE_NOW: &str = "settle = \"1s\"\nupload_after = \"0s\"";

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn output(out: &std::process::Output) -> String {
    format!("{}{}", stdout(out), String::from_utf8_lossy(&out.stderr))
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Runtime::new().unwrap().block_on(f)
}

/// A site whose due recordings go to `target`.
fn site(test: &str, target: Target<'_>) -> Site {
    let mut site = Site::new(test);
    site.configure(target, DUE_NOW);
    site
}

/// Puts `n` due recordings in the spool; returns their bytes by path.
fn recordings(site: &Site, n: u64, seed: u64) -> BTreeMap<PathBuf, Vec<u8>> {
    (0..n)
        .map(|i| {
            let name = format!("20260303-1100{i:02}_555{seed:03}{i:04}-all.wav");
            let bytes = wav(0.5 + (i % 3) as f64, seed * 100 + i);
            (
                put_recording(&site.spool, name.as_bytes(), &bytes, HOUR),
                bytes,
            )
        })
        .collect()
}

fn name_of(path: &std::path::Path) -> &[u8] {
    std::os::unix::ffi::OsStrExt::as_bytes(path.file_name().unwrap())
}

/// Archive with verification, restore, verify, a hold, a retention sweep,
/// a ledger backup and restore, and a rebuild from object metadata (or
/// sidecars): everything that works on S3, on `target`'s store.
pub fn everything_works(test: &str, target: Target<'_>, store: Arc<dyn Store>) {
    let mut site = Site::new(test);
    site.configure(target, DUE_NOW);
    site.set_option("retention", "default", "\"30d\"");
    let young: [&[u8]; 4] = [
        b"20260301-101500_5551234567-all.wav",
        b"with space and 'quotes' \"too\".wav",
        b"new\nline-\xe9.wav",
        b"empty.wav",
    ];
    let mut originals: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    for (i, name) in young.iter().enumerate() {
        let bytes = if *name == b"empty.wav" {
            Vec::new()
        } else {
            wav(1.0 + i as f64, i as u64)
        };
        put_recording(&site.spool, name, &bytes, HOUR);
        originals.insert(name.to_vec(), bytes);
    }
    // Dated by mtime (the names match no template): due under 30d.
    for (i, name) in [b"old.wav".as_slice(), b"held-old.wav"].iter().enumerate() {
        let bytes = wav(1.5, 40 + i as u64);
        put_recording(&site.spool, name, &bytes, 100 * DAY);
        originals.insert(name.to_vec(), bytes);
    }

    expect_code(&site.recvault(&["run", "--once"]), 0);
    assert_eq!(
        site.states().get(&State::LocalDeleted),
        Some(&6),
        "{:?}",
        site.states()
    );
    assert_eq!(
        fs::read_dir(&site.spool).unwrap().count(),
        0,
        "every local copy removed"
    );
    for (name, bytes) in &originals {
        assert_eq!(
            sha256(&restore(&site, name)),
            sha256(bytes),
            "{}",
            String::from_utf8_lossy(name)
        );
    }
    let out = site.recvault(&["verify", "--all", "--verbose"]);
    expect_code(&out, 0);
    assert_eq!(
        stdout(&out)
            .lines()
            .filter(|l| l.starts_with("ok\t"))
            .count(),
        6,
        "{}",
        stdout(&out)
    );

    // A hold keeps one due recording; the sweep deletes the other.
    expect_code(
        &site.recvault(&[
            "hold",
            "add",
            "CASE-9",
            "--reason",
            "dispute",
            "--recording",
            "held-old.wav",
        ]),
        0,
    );
    let out = site.recvault(&["retention", "run"]);
    expect_code(&out, 0);
    assert!(
        stdout(&out).starts_with("deleted 1 recordings"),
        "{}",
        output(&out)
    );
    let objects = block_on(recording_objects(&*store, &site.prefix));
    assert_eq!(objects.len(), 5, "{objects:?}");
    assert!(
        objects.iter().all(|o| !o.key.contains("/old.wav")),
        "{objects:?}"
    );
    originals.remove(b"old.wav".as_slice());

    // The ledger backed up, lost, and brought back from the store.
    let out = site.recvault(&["ledger", "backup"]);
    expect_code(&out, 0);
    assert!(
        stdout(&out).contains(".recvault/ledger/testhost/"),
        "{}",
        output(&out)
    );
    let lose_ledger = || {
        for ext in ["", "-wal", "-shm"] {
            let _ = fs::remove_file(format!("{}{ext}", site.ledger_path().display()));
        }
    };
    lose_ledger();
    expect_code(&site.recvault(&["ledger", "restore"]), 0);
    expect_code(&site.recvault(&["ledger", "check"]), 0);

    // And rebuilt from the objects' own metadata, holds included.
    lose_ledger();
    let out = site.recvault(&["ledger", "rebuild", "--from-store"]);
    expect_code(&out, 0);
    assert!(
        stdout(&out).contains(": 5 recordings (0 still in the spool"),
        "{}",
        output(&out)
    );
    assert!(
        stdout(&out).contains("0 skipped, 1 legal holds"),
        "{}",
        output(&out)
    );
    expect_code(&site.recvault(&["ledger", "check"]), 0);
    for (name, bytes) in &originals {
        assert_eq!(
            sha256(&restore(&site, name)),
            sha256(bytes),
            "{}",
            String::from_utf8_lossy(name)
        );
    }
    let out = site.recvault(&["retention", "run"]);
    assert!(
        stdout(&out).starts_with("deleted 0 recordings"),
        "the hold came back: {}",
        output(&out)
    );
}

fn spawn_daemon(site: &Site) -> (Child, PathBuf) {
    let path = site.root.join("daemon.log");
    let log = fs::File::create(&path).unwrap();
    let child = site
        .command(&["run"])
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    (child, path)
}

fn sigterm(mut child: Child, log: &std::path::Path) {
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let mut status = None;
    wait_for(
        Duration::from_secs(60),
        "the daemon to stop on SIGTERM",
        || {
            status = child.try_wait().unwrap();
            status.is_some()
        },
    );
    assert_eq!(
        status.unwrap().code(),
        Some(0),
        "{}",
        fs::read_to_string(log).unwrap_or_default()
    );
}

fn archived(site: &Site) -> u64 {
    site.states()
        .get(&State::LocalDeleted)
        .copied()
        .unwrap_or(0)
}

/// The store's server stops while the daemon runs: nothing is deleted
/// while it is away, and the backlog drains when it comes back.
pub fn outage(site: Site, server: &mut crate::servers::Proc) {
    let first = recordings(&site, 3, 1);
    let (daemon, log) = spawn_daemon(&site);
    wait_for(
        Duration::from_secs(120),
        "the first recordings to be archived",
        || archived(&site) == 3,
    );

    server.stop();
    let second = recordings(&site, 4, 2);
    // Long enough for the daemon to find them, fail, and back off.
    std::thread::sleep(Duration::from_secs(8));
    for (path, bytes) in &second {
        assert_eq!(
            &fs::read(path).unwrap(),
            bytes,
            "{} altered or deleted during the outage",
            path.display()
        );
    }
    assert_eq!(
        archived(&site),
        3,
        "nothing is archived while the store is away"
    );
    let text = fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("WARN") || text.contains("ERROR"),
        "the outage was noticed:\n{text}"
    );

    server.start();
    wait_for(Duration::from_secs(180), "the backlog to drain", || {
        archived(&site) == 7
    });
    sigterm(daemon, &log);
    for (path, bytes) in first.iter().chain(&second) {
        assert!(!path.exists(), "{} still local", path.display());
        assert_eq!(sha256(&restore(&site, name_of(path))), sha256(bytes));
    }
    expect_code(&site.recvault(&["ledger", "check"]), 0);
}

/// An object's bytes change behind recvault's back (`damage` replaces them,
/// same size): `recvault verify` finds it and says which.
pub fn damage_is_caught_by_verify(test: &str, target: Target<'_>, damage: impl FnOnce(&str, u64)) {
    let mut site = Site::new(test);
    site.configure(target, DUE_NOW);
    let originals = recordings(&site, 3, 7);
    expect_code(&site.recvault(&["run", "--once"]), 0);
    assert_eq!(archived(&site), 3);
    let (path, _) = originals.iter().next().unwrap();
    let rec = site.ledger().find(name_of(path)).unwrap().remove(0);
    let key = rec.object_key.clone().unwrap();
    damage(&key, rec.object_size.unwrap());
    let out = site.recvault(&["verify", "--all"]);
    expect_code(&out, 1);
    let text = stdout(&out);
    assert!(
        text.contains(&format!("MISMATCH\t{key}")),
        "{}",
        output(&out)
    );
    assert!(
        text.contains("3 objects: 2 ok, 0 missing, 1 mismatched"),
        "{}",
        output(&out)
    );
}

/// A recording above `part_size` (5MiB here, stored as is) is archived in
/// chunks and restores bit-exact; returns the checksum the store proves for
/// it. Where it proves none the daemon logs that it read the object back.
pub fn large_object(test: &str, target: Target<'_>, store: Arc<dyn Store>) -> Option<String> {
    let site = site(test, target);
    site.set_option("store", "multipart_threshold", "\"5MiB\"");
    site.set_option("store", "part_size", "\"5MiB\"");
    site.set_option("compress", "codec", "\"none\"");
    let mut rng = fastrand::Rng::with_seed(9);
    let bytes: Vec<u8> = (0..(6 << 20) + 123).map(|_| rng.u8(..)).collect();
    let path = put_recording(&site.spool, b"long-call.wav", &bytes, HOUR);
    let out = site
        .command(&["run", "--once"])
        .env("RUST_LOG", "recvault=debug")
        .output()
        .unwrap();
    expect_code(&out, 0);
    assert!(!path.exists());
    let key = site
        .ledger()
        .find(b"long-call.wav")
        .unwrap()
        .remove(0)
        .object_key
        .unwrap();
    let info = block_on(store.head(&key)).unwrap().unwrap();
    let read_back = output(&out).contains("read back and hashed");
    assert_eq!(
        read_back,
        info.checksum.is_none(),
        "read back exactly when unproven:\n{}",
        output(&out)
    );
    assert_eq!(restore(&site, b"long-call.wav"), bytes);
    info.checksum
}

/// Same size, other bytes: what bit rot would leave.
fn damaged(size: u64) -> Vec<u8> {
    let mut bytes = vec![0u8; size as usize];
    bytes[0] = 1;
    bytes
}

/// `recvault check` against `target`: the probe goes through.
pub fn check_passes(test: &str, target: Target<'_>, proof: &str) {
    let mut site = Site::new(test);
    site.configure(target, DUE_NOW);
    let out = site.recvault(&["check"]);
    expect_code(&out, 0);
    let text = stdout(&out);
    for step in ["put ", "head: ok", "get: ok", "delete: ok"] {
        assert!(text.contains(step), "{step}: {}", output(&out));
    }
    assert!(text.contains(proof), "{proof}: {}", output(&out));
}

/// `recvault check` with one setting spoiled by `spoil`: it fails naming `key`.
pub fn check_names(test: &str, target: Target<'_>, spoil: impl FnOnce(&Site), words: &[&str]) {
    let mut site = Site::new(test);
    site.configure(target, DUE_NOW);
    spoil(&site);
    let out = site.recvault(&["check"]);
    assert_ne!(out.status.code(), Some(0), "{}", output(&out));
    let text = output(&out);
    for w in words {
        assert!(text.contains(w), "`{w}` missing from:\n{text}");
    }
}
