//! The archive pipeline end to end: the real binary, real files, a real Garage.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use recvault::recording::State;

use crate::common::*;

const HOUR: Duration = Duration::from_secs(3600);
const DUE_NOW: &str = "settle = \"1s\"\nupload_after = \"0s\"";

fn odd_names() -> Vec<Vec<u8>> {
    vec![
        b"20260301-101500_5551234567-all.wav".to_vec(),
        b"with space and 'quotes' \"too\".wav".to_vec(),
        b"-leading-dash.wav".to_vec(),
        b"new\nline.wav".to_vec(),
        b"latin1-\xe9\xff.wav".to_vec(),
        b"empty.wav".to_vec(),
    ]
}

/// SHA-256 of every file now in the spool dirs, by path.
fn local_hashes(site: &Site) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    for dir in &site.dirs {
        for e in fs::read_dir(dir).unwrap().flatten() {
            if e.file_type().unwrap().is_file() {
                out.insert(e.path(), sha256(&fs::read(e.path()).unwrap()));
            }
        }
    }
    out
}

#[test]
fn every_due_recording_is_archived_and_restores_bit_exact() {
    let g = garage();
    let mut site = Site::new("bitexact");
    let orig = site.add_dir("ORIG");
    site.configure(Target::Garage(&g), DUE_NOW);
    let mut originals = BTreeMap::new();
    for (i, name) in odd_names().into_iter().enumerate() {
        let bytes = if name == b"empty.wav" {
            Vec::new()
        } else {
            wav(2.0 + i as f64, i as u64)
        };
        put_recording(&site.spool, &name, &bytes, HOUR);
        originals.insert(name, bytes);
    }
    // VICIdial repeats names: the same name in two folders is two recordings.
    let dup = b"20260301-101500_5551234567-all.wav";
    let dup_bytes = wav(3.0, 99);
    put_recording(&orig, dup, &dup_bytes, HOUR);

    let out = site.recvault(&["run", "--once"]);
    expect_code(&out, 0);
    assert!(
        local_hashes(&site).is_empty(),
        "every due local copy removed after verification"
    );
    assert_eq!(site.states().get(&State::LocalDeleted), Some(&7));

    for (name, bytes) in &originals {
        if name.as_slice() == dup {
            continue;
        }
        assert_eq!(
            sha256(&restore(&site, name)),
            sha256(bytes),
            "{}",
            String::from_utf8_lossy(name)
        );
    }
    // The repeated name is ambiguous; each object restores by its key.
    let mut cmd = site.command(&["restore", "-o"]);
    let out = cmd
        .arg(site.root.join("x"))
        .arg(std::ffi::OsStr::from_bytes(dup))
        .output()
        .unwrap();
    expect_code(&out, 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("names 2 recordings"));
    let ledger = site.ledger();
    let recs = ledger.find(dup).unwrap();
    let mut restored: Vec<String> = recs
        .iter()
        .map(|r| sha256(&restore(&site, r.object_key.as_ref().unwrap().as_bytes())))
        .collect();
    restored.sort();
    let mut want = vec![sha256(&originals[dup.as_slice()]), sha256(&dup_bytes)];
    want.sort();
    assert_eq!(restored, want);

    // Exactly one object per recording, nothing else under the prefix.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let objects = rt.block_on(async {
        recording_objects(&*g.store(64 << 20, 16 << 20).await, &site.prefix).await
    });
    assert_eq!(objects.len(), 7, "{objects:?}");
}

#[test]
fn too_young_and_still_written_recordings_are_untouched() {
    let mut site = Site::new("young");
    site.configure(Target::Local, "settle = \"1s\"\nupload_after = \"1h\"");
    let old = put_recording(&site.spool, b"old.wav", &wav(1.0, 1), 2 * HOUR);
    let young = put_recording(
        &site.spool,
        b"young.wav",
        &wav(1.0, 2),
        Duration::from_secs(60),
    );
    expect_code(&site.recvault(&["run", "--once"]), 0);
    assert!(!old.exists(), "old enough: archived");
    assert_eq!(
        fs::read(&young).unwrap(),
        wav(1.0, 2),
        "too young: untouched"
    );

    // Still being written: a recent mtime, and a writer holding it open.
    site.configure(Target::Local, "settle = \"30s\"\nupload_after = \"0s\"");
    let growing = put_recording(&site.spool, b"growing.wav", &wav(1.0, 3), Duration::ZERO);
    let held = put_recording(&site.spool, b"held-open.wav", &wav(1.0, 4), HOUR);
    let writer = fs::OpenOptions::new().append(true).open(&held).unwrap();
    expect_code(&site.recvault(&["run", "--once"]), 0);
    assert!(
        growing.exists() && held.exists(),
        "unsettled files untouched"
    );
    assert!(!young.exists(), "young.wav is due once upload_after allows");
    drop(writer);
    expect_code(&site.recvault(&["run", "--once"]), 0);
    assert!(!held.exists(), "archived once the writer closed it");
    assert!(growing.exists(), "still inside its settle time");
}

#[test]
fn a_store_outage_deletes_nothing_and_the_backlog_drains_after() {
    let g = garage();
    let mut site = Site::new("outage");
    let mut originals = BTreeMap::new();
    for i in 0..10u64 {
        let name = format!("2026030{}-1015{:02}_555000{i:04}-all.wav", i % 9 + 1, i);
        let bytes = wav(1.5, i);
        put_recording(&site.spool, name.as_bytes(), &bytes, HOUR);
        originals.insert(name, bytes);
    }
    let before = local_hashes(&site);
    site.configure(Target::Dead(&g, dead_port()), DUE_NOW);
    let out = site.recvault(&["run", "--once"]);
    expect_code(&out, 1);
    assert_eq!(
        local_hashes(&site),
        before,
        "nothing deleted or changed during the outage"
    );
    let states = site.states();
    assert!(
        !states.contains_key(&State::Verified) && !states.contains_key(&State::LocalDeleted),
        "{states:?}"
    );
    let status = site.recvault(&["status"]);
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("store unavailable"),
        "status shows the error"
    );

    site.configure(Target::Garage(&g), DUE_NOW);
    expect_code(&site.recvault(&["run", "--once"]), 0);
    assert!(local_hashes(&site).is_empty());
    for (name, bytes) in &originals {
        assert_eq!(restore(&site, name.as_bytes()), *bytes);
    }
}

#[test]
fn killing_the_daemon_at_random_moments_loses_nothing() {
    let g = garage();
    let mut site = Site::new("kill");
    let mut originals: BTreeMap<PathBuf, Vec<u8>> = BTreeMap::new();
    for i in 0..40u64 {
        let name = format!("20260302-{:06}_555{i:07}-all.wav", 90000 + i);
        // Three above the 5 MiB multipart threshold set below.
        let bytes = if i % 13 == 5 {
            let mut rng = fastrand::Rng::with_seed(i);
            (0..(6 << 20) + 777).map(|_| rng.u8(..)).collect()
        } else {
            wav(5.0 + (i % 7) as f64 * 4.0, i)
        };
        let path = put_recording(&site.spool, name.as_bytes(), &bytes, HOUR);
        originals.insert(path, bytes);
    }
    site.configure(Target::Garage(&g), DUE_NOW);
    let cfg = fs::read_to_string(&site.config).unwrap();
    fs::write(
        &site.config,
        cfg.replace(
            "[store]\n",
            "[store]\nmultipart_threshold = \"5MiB\"\npart_size = \"5MiB\"\n",
        ),
    )
    .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = rt.block_on(g.store(5 << 20, 5 << 20));
    let mut rng = fastrand::Rng::with_seed(7);
    let mut landed = 0;
    for _ in 0..8 {
        // Killed once a recording is between steps (compressed, uploaded or
        // verified but its local copy not yet removed), after a random few
        // more of them, so the kills land at different steps.
        let after = rng.i64(0..3);
        let mut first = None;
        landed += usize::from(kill_when(&site, Duration::from_secs(60), |conn| {
            let between = count_where(conn, "state IN ('compressed', 'uploaded', 'verified')");
            let done = count_where(conn, "state = 'local_deleted'");
            let base = *first.get_or_insert(done);
            between > 0 && done >= base + after
        }));
        // Every local copy that is gone has a verified object holding exactly its bytes.
        let ledger = site.ledger();
        for (path, bytes) in &originals {
            if path.exists() {
                assert_eq!(fs::read(path).unwrap(), *bytes, "a local copy was altered");
                continue;
            }
            let rec = ledger
                .find(path.file_name().unwrap().as_bytes())
                .unwrap()
                .remove(0);
            assert!(
                matches!(rec.state, State::Verified | State::LocalDeleted),
                "{} deleted in state {}",
                path.display(),
                rec.state
            );
            let info = rt
                .block_on(store.head(rec.object_key.as_ref().unwrap()))
                .unwrap()
                .expect("object present");
            assert_eq!(info.metadata.get("original-sha256"), Some(&sha256(bytes)));
        }
    }
    // Kills that all came before any work started would prove nothing.
    eprintln!("{landed} of 8 kills landed between steps");
    assert!(landed >= 6, "only {landed} of 8 kills landed between steps");
    expect_code(&site.recvault(&["run", "--once"]), 0);
    for (path, bytes) in &originals {
        assert!(!path.exists());
        assert_eq!(
            sha256(&restore(&site, path.file_name().unwrap().as_bytes())),
            sha256(bytes)
        );
    }
    let objects = rt.block_on(recording_objects(&*store, &site.prefix));
    assert_eq!(
        objects.len(),
        originals.len(),
        "one object per recording: {objects:?}"
    );
}

#[test]
fn the_daemon_picks_up_new_files_and_stops_cleanly_on_sigterm() {
    let mut site = Site::new("daemon");
    site.configure(Target::Local, DUE_NOW);
    let mut child = site
        .command(&["run"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    for i in 0..3u64 {
        let path = site.spool.join(format!("live-{i}.wav"));
        fs::write(&path, wav(1.0, i)).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while site.states().get(&State::LocalDeleted) != Some(&3) {
        assert!(
            Instant::now() < deadline,
            "not archived: {:?}",
            site.states()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    // A second daemon on the same ledger is refused while one runs.
    let mut first = site
        .command(&["run"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let second = site.recvault(&["run"]);
    expect_code(&second, 1);
    assert!(String::from_utf8_lossy(&second.stderr).contains(&format!("pid {}", first.id())));
    first.kill().unwrap();
    first.wait().unwrap();
}

#[test]
fn links_pipes_subfolders_and_outside_files_are_never_touched() {
    let mut site = Site::new("hostile");
    site.configure(Target::Local, DUE_NOW);
    let outside = site.root.join("outside.wav");
    fs::write(&outside, b"outside").unwrap();
    let link = site.spool.join("link.wav");
    std::os::unix::fs::symlink(&outside, &link).unwrap();
    let fifo = site.spool.join("pipe.wav");
    let c = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let sub = site.spool.join("MP3");
    fs::create_dir(&sub).unwrap();
    let in_sub = put_recording(&sub, b"not-configured.mp3", b"mp3", HOUR);
    let real = put_recording(&site.spool, b"real.wav", &wav(1.0, 1), HOUR);

    expect_code(&site.recvault(&["run", "--once"]), 0);
    assert!(!real.exists());
    assert_eq!(fs::read(&outside).unwrap(), b"outside");
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(fs::symlink_metadata(&fifo).is_ok() && in_sub.exists());
    let ls = site.recvault(&["ls", "--state", "quarantined"]);
    let text = String::from_utf8_lossy(&ls.stdout);
    assert!(
        text.contains("link.wav") && text.contains("pipe.wav"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 2);
    // Logged once: a second pass adds no second entry.
    expect_code(&site.recvault(&["run", "--once"]), 0);
    assert_eq!(site.states().get(&State::Quarantined), Some(&2));
}

#[test]
fn a_file_removed_by_someone_else_is_recorded_as_gone() {
    let mut site = Site::new("gone");
    site.configure(Target::Local, "settle = \"1s\"\nupload_after = \"1h\"");
    let path = put_recording(
        &site.spool,
        b"soon-gone.wav",
        &wav(1.0, 1),
        Duration::from_secs(60),
    );
    expect_code(&site.recvault(&["run", "--once"]), 0);
    assert_eq!(site.states().get(&State::Settled), Some(&1));
    fs::remove_file(&path).unwrap();
    expect_code(&site.recvault(&["run", "--once"]), 0);
    assert_eq!(site.states().get(&State::Gone), Some(&1));
    let ls = site.recvault(&["ls", "--state", "gone"]);
    assert!(String::from_utf8_lossy(&ls.stdout).contains("soon-gone.wav"));
}

/// A rescan does not look at the files of settled recordings whose name
/// still lists the same inode (issue 18: a rescan of a big backlog): a
/// change made in place while nobody watched (no daemon, no inotify) must
/// still be caught before the recording is archived, and the archive must
/// hold the file as it is then, its local copy removed.
#[test]
fn a_waiting_recording_changed_in_place_between_runs_is_archived_as_it_is_now() {
    use std::io::Write;
    use std::os::unix::fs::MetadataExt;
    let mut site = Site::new("inplace");
    site.configure(Target::Local, "settle = \"1s\"\nupload_after = \"3650d\"");
    let path = put_recording(&site.spool, b"inplace.wav", &wav(1.0, 1), HOUR);
    let other = put_recording(&site.spool, b"other.wav", &wav(1.0, 2), HOUR);
    expect_code(&site.recvault(&["run", "--once"]), 0);
    assert_eq!(site.states().get(&State::Settled), Some(&2));

    // Rewritten in place (same inode), same size, older mtime than before:
    // only the identity the ledger recorded tells the two contents apart.
    let ino = fs::metadata(&path).unwrap().ino();
    let now = wav(1.0, 3);
    assert_eq!(now.len(), wav(1.0, 1).len());
    let mut f = fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all(&now).unwrap();
    f.set_modified(std::time::SystemTime::now() - 2 * HOUR)
        .unwrap();
    drop(f);
    assert_eq!(fs::metadata(&path).unwrap().ino(), ino);

    site.set_option("spool", "upload_after", "\"0s\"");
    expect_code(&site.recvault(&["run", "--once"]), 0);
    assert!(!other.exists(), "the unchanged one archived");
    // The compress step found the change and started it over (seen, with
    // the file's identity now); the next pass settles and archives it.
    let row = site.ledger().local_row_at(&path).unwrap().unwrap();
    assert_eq!(row.state, State::Seen);
    assert_eq!(row.identity.size, now.len() as u64);
    expect_code(&site.recvault(&["run", "--once"]), 0);
    assert!(!path.exists(), "archived in the next pass");
    assert_eq!(site.states().get(&State::LocalDeleted), Some(&2));
    assert_eq!(sha256(&restore(&site, b"inplace.wav")), sha256(&now));
    assert_eq!(sha256(&restore(&site, b"other.wav")), sha256(&wav(1.0, 2)));
}

#[test]
fn check_probes_the_store_and_names_bad_keys() {
    let g = garage();
    let mut site = Site::new("check");
    site.configure(Target::Garage(&g), DUE_NOW);
    let out = site.recvault(&["check"]);
    expect_code(&out, 0);
    let text = String::from_utf8_lossy(&out.stdout);
    for step in ["put ", "head: ok", "get: ok", "delete: ok"] {
        assert!(text.contains(step), "{text}");
    }
    // Credentials from the standard AWS environment variables instead of a key file.
    let cfg = fs::read_to_string(&site.config).unwrap();
    let no_key: String = cfg
        .lines()
        .filter(|l| !l.starts_with("key_file"))
        .map(|l| format!("{l}\n"))
        .collect();
    fs::write(&site.config, no_key).unwrap();
    let out = site
        .command(&["check"])
        .env("AWS_ACCESS_KEY_ID", &g.key_id)
        .env("AWS_SECRET_ACCESS_KEY", &g.secret)
        .output()
        .unwrap();
    expect_code(&out, 0);
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&g.secret));

    fs::write(&site.config, "[spool]\nupload_after = \"three days\"\n").unwrap();
    let out = site.recvault(&["check", "--offline"]);
    expect_code(&out, 2);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("spool.upload_after") && err.contains(site.config.to_str().unwrap()),
        "{err}"
    );
}

/// Small recordings are compressed into memory and uploaded from there: no
/// staging file is ever created for them. Each staging name they would
/// use (`<id>.tmp`, ids 1..) is taken by a directory, where a staging file
/// cannot be made; they are archived all the same and restore bit-exact.
#[test]
fn small_recordings_are_archived_without_a_staging_file() {
    let mut site = Site::new("in-memory");
    site.configure(Target::Local, DUE_NOW);
    let count = 6;
    let mut originals = BTreeMap::new();
    for i in 0..count {
        let name = format!("20260301-1015{i:02}_555123456{i}-all.wav");
        // FLAC for the WAVs, and one zstd (not FLAC-able) among them.
        let bytes = match i {
            0 => b"not a wav at all, stored with zstd".repeat(50),
            _ => wav(0.5 + i as f64 * 0.25, i as u64),
        };
        put_recording(&site.spool, name.as_bytes(), &bytes, HOUR);
        originals.insert(name, bytes);
    }
    let staging = site.root.join("staging");
    for id in 1..=count + 2 {
        fs::create_dir_all(staging.join(format!("{id}.tmp"))).unwrap();
    }

    let out = site.recvault(&["run", "--once"]);
    expect_code(&out, 0);
    assert_eq!(
        site.states().get(&State::LocalDeleted),
        Some(&(count as u64)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (name, bytes) in &originals {
        assert_eq!(
            sha256(&restore(&site, name.as_bytes())),
            sha256(bytes),
            "{name}"
        );
    }
    let left: Vec<_> = fs::read_dir(&staging)
        .unwrap()
        .flatten()
        .filter(|e| !e.file_type().unwrap().is_dir())
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "files left in staging: {left:?}");
}
