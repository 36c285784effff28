//! Hostile input in the spool: odd names, links, pipes, sockets, empty and
//! lying files, huge sparse files, files swapped under the daemon. Each gets
//! DESIGN.md's behaviour and, where it is not archived, a ledger entry an
//! operator finds with `recvault ls --state quarantined|failed`.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Duration;

use recvault::recording::State;

use crate::common::*;

const HOUR: Duration = Duration::from_secs(3600);
const DUE_NOW: &str = "settle = \"1s\"\nupload_after = \"0s\"";

/// File names an attacker or a broken script could leave in the spool.
fn hostile_names() -> Vec<Vec<u8>> {
    let mut names = vec![
        b"new\nline.wav".to_vec(),
        b"\ncarriage\r\nreturn\n".to_vec(),
        b"tab\tand \"double\" 'single' `back` quotes.wav".to_vec(),
        b"..wav".to_vec(),
        b"...".to_vec(),
        b"..%2F..%2Fetc%2Fpasswd".to_vec(),
        b"%2E%2E".to_vec(),
        b"~1.wav".to_vec(),
        b"non-utf8-\xff\xfe\x80.wav".to_vec(),
        b"-rf --no-preserve-root.wav".to_vec(),
        b"$(touch pwned).wav".to_vec(),
        b"back\\slash.wav".to_vec(),
        "ünïcødé 通話 📞.wav".as_bytes().to_vec(),
        b"\x1b[31mred.wav".to_vec(),
    ];
    // 255 bytes: the longest name Linux allows, key-safe and all-escaped.
    names.push(vec![b'a'; 255]);
    names.push(vec![b'\xe9'; 255]);
    let mut mixed = b"20260301-101500_5551234567-".to_vec();
    mixed.resize(251, b'x');
    mixed.extend_from_slice(b".wav");
    names.push(mixed);
    names
}

fn archive_hostile_names(target: &str) -> usize {
    let g = garage();
    let mut site = Site::new(&format!("names-{target}"));
    // No ignore patterns: the default `.*` would skip the dot-names untried.
    let spool = format!("{DUE_NOW}\nignore = []");
    match target {
        "garage" => site.configure(Target::Garage(&g), &spool),
        _ => site.configure(Target::Local, &spool),
    }
    let mut originals = BTreeMap::new();
    for (i, name) in hostile_names().into_iter().enumerate() {
        let bytes = wav(0.5, i as u64);
        put_recording(&site.spool, &name, &bytes, HOUR);
        originals.insert(name, bytes);
    }
    let out = site.recvault(&["run", "--once"]);
    expect_code(&out, 0);
    assert_eq!(
        site.states().get(&State::LocalDeleted),
        Some(&(originals.len() as u64)),
        "{}",
        String::from_utf8_lossy(&site.recvault(&["ls"]).stdout)
    );
    for (name, bytes) in &originals {
        assert_eq!(
            sha256(&restore(&site, name)),
            sha256(bytes),
            "{}",
            String::from_utf8_lossy(name)
        );
    }
    // The store itself holds one object per recording, under the prefix,
    // at the key the ledger records for it.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listed: Vec<String> = rt.block_on(async {
        let store: std::sync::Arc<dyn recvault::store::Store> = match target {
            "garage" => g.store(64 << 20, 16 << 20).await,
            _ => std::sync::Arc::new(recvault::store::LocalStore::new(site.root.join("store"))),
        };
        recording_objects(&*store, &site.prefix)
            .await
            .into_iter()
            .map(|o| o.key)
            .collect()
    });
    assert_eq!(listed.len(), originals.len(), "{listed:?}");
    let ledger = site.ledger();
    for name in originals.keys() {
        let rec = &ledger.find(name).unwrap()[0];
        let key = rec.object_key.as_ref().unwrap();
        assert!(listed.contains(key), "{key} not in the store");
    }
    // Nothing escaped the store's root or prefix.
    if target == "local" {
        let store = site.root.join("store");
        let mut n = 0;
        let mut stack = vec![store.clone()];
        while let Some(dir) = stack.pop() {
            for e in fs::read_dir(&dir).unwrap().flatten() {
                let p = e.path();
                assert!(p.starts_with(&store));
                if e.file_type().unwrap().is_dir() {
                    stack.push(p);
                } else if !p.to_string_lossy().contains(".recvault-meta")
                    // recvault's own objects (the id reservation) are not recordings.
                    && !p.to_string_lossy().contains("/.recvault/")
                {
                    n += 1;
                }
            }
        }
        assert_eq!(n, originals.len());
    }
    // `ls` prints one line per recording, whatever the names hold.
    let ls = site.recvault(&["ls"]);
    assert_eq!(
        String::from_utf8_lossy(&ls.stdout).lines().count(),
        originals.len()
    );
    originals.len()
}

#[test]
fn hostile_names_archive_and_restore_on_garage() {
    let n = archive_hostile_names("garage");
    eprintln!("hostile names tried (garage): {n}");
}

#[test]
fn hostile_names_archive_and_restore_on_a_local_store() {
    let n = archive_hostile_names("local");
    eprintln!("hostile names tried (local store): {n}");
}

#[test]
fn links_pipes_and_sockets_are_quarantined_never_read_never_deleted() {
    let mut site = Site::new("specials");
    site.configure(Target::Local, DUE_NOW);
    let shadow_before = fs::read("/etc/shadow").ok();
    let link = site.spool.join("shadow.wav");
    std::os::unix::fs::symlink("/etc/shadow", &link).unwrap();
    let dir_link = site.spool.join("etc-dir.wav");
    std::os::unix::fs::symlink("/etc", &dir_link).unwrap();
    let dangling = site.spool.join("dangling.wav");
    std::os::unix::fs::symlink("/nonexistent/recvault", &dangling).unwrap();
    let fifo = site.spool.join("pipe.wav");
    let c = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let sock_path = site.spool.join("socket.wav");
    let _socket = std::os::unix::net::UnixListener::bind(&sock_path).unwrap();
    let real = put_recording(&site.spool, b"real.wav", &wav(1.0, 1), HOUR);

    expect_code(&site.recvault(&["run", "--once"]), 0);
    assert!(!real.exists(), "the real recording is archived");
    for special in [&link, &dir_link, &dangling, &fifo, &sock_path] {
        assert!(
            fs::symlink_metadata(special).is_ok(),
            "{} must never be deleted",
            special.display()
        );
    }
    assert_eq!(fs::read("/etc/shadow").ok(), shadow_before);
    let ls = site.recvault(&["ls", "--state", "quarantined"]);
    let text = String::from_utf8_lossy(&ls.stdout).into_owned();
    for name in [
        "shadow.wav",
        "etc-dir.wav",
        "dangling.wav",
        "pipe.wav",
        "socket.wav",
    ] {
        assert!(text.contains(name), "{name} not quarantined:\n{text}");
    }
    let status = String::from_utf8_lossy(&site.recvault(&["status"]).stdout).into_owned();
    assert!(
        status.contains("symlink") && status.contains("socket"),
        "{status}"
    );
    // Only the real recording reached the store; shadow's bytes never did.
    let ledger = site.ledger();
    let archived: Vec<_> = ledger.by_state(State::LocalDeleted).unwrap();
    assert_eq!(archived.len(), 1);
    assert_eq!(archived[0].name, b"real.wav");
    expect_code(&site.recvault(&["run", "--once"]), 0);
    assert_eq!(site.states().get(&State::Quarantined), Some(&5));
}

#[test]
fn hard_links_are_archived_per_name_and_the_other_name_keeps_its_data() {
    let mut site = Site::new("hardlinks");
    site.configure(Target::Local, DUE_NOW);
    let bytes = wav(1.0, 5);
    let first = put_recording(&site.spool, b"first.wav", &bytes, HOUR);
    let second = site.spool.join("second.wav");
    fs::hard_link(&first, &second).unwrap();
    let outside = site.root.join("kept-outside.wav");
    fs::hard_link(&first, &outside).unwrap();
    expect_code(&site.recvault(&["run", "--once"]), 0);
    assert!(!first.exists() && !second.exists());
    assert_eq!(
        fs::read(&outside).unwrap(),
        bytes,
        "a link outside the spool is untouched"
    );
    assert_eq!(restore(&site, b"first.wav"), bytes);
    assert_eq!(restore(&site, b"second.wav"), bytes);
}

#[test]
fn empty_truncated_and_lying_files_archive_bit_exact() {
    let mut site = Site::new("lying");
    site.configure(Target::Local, DUE_NOW);
    let full = wav(1.0, 9);
    let mut lying = full.clone();
    // The header claims 1 GiB of samples; the file holds one second.
    lying[40..44].copy_from_slice(&(1u32 << 30).to_le_bytes());
    lying[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    let cases: Vec<(&[u8], Vec<u8>)> = vec![
        (b"empty.wav", Vec::new()),
        (b"header-only.wav", full[..44].to_vec()),
        (b"truncated.wav", full[..1001].to_vec()),
        (b"lying-header.wav", lying),
        (
            b"not-a-wav.wav",
            b"MP3 ID3 or garbage \x00\x01\x02".to_vec(),
        ),
    ];
    for (name, bytes) in &cases {
        put_recording(&site.spool, name, bytes, HOUR);
    }
    expect_code(&site.recvault(&["run", "--once"]), 0);
    for (name, bytes) in &cases {
        assert_eq!(
            &restore(&site, name),
            bytes,
            "{}",
            String::from_utf8_lossy(name)
        );
    }
}

#[test]
fn a_file_replaced_between_settle_and_upload_archives_the_new_content() {
    let mut site = Site::new("replaced");
    // Settles at once, but is not due for an hour.
    site.configure(Target::Local, "settle = \"1s\"\nupload_after = \"1h\"");
    let old = wav(1.0, 1);
    let path = put_recording(&site.spool, b"swapped.wav", &old, Duration::from_secs(600));
    expect_code(&site.recvault(&["run", "--once"]), 0);
    assert_eq!(site.states().get(&State::Settled), Some(&1));
    // Replaced by rename (a new inode), and old enough to be due now.
    let new = wav(2.0, 2);
    let tmp = put_recording(&site.root, b"swap.tmp", &new, 2 * HOUR);
    fs::rename(&tmp, &path).unwrap();
    expect_code(&site.recvault(&["run", "--once"]), 0);
    assert!(!path.exists());
    assert_eq!(restore(&site, b"swapped.wav"), new);

    // Replaced in place (same inode, new bytes) after settling: same outcome.
    // A rescan does not stat a settled file it finds at the same inode, so
    // the change is found when the recording is due and about to be
    // compressed: back to seen with what the file is now, archived by the
    // run after.
    let again = put_recording(
        &site.spool,
        b"rewritten.wav",
        &old,
        Duration::from_secs(600),
    );
    expect_code(&site.recvault(&["run", "--once"]), 0);
    let rewritten = wav(1.5, 3);
    fs::write(&again, &rewritten).unwrap();
    fs::File::options()
        .write(true)
        .open(&again)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - 2 * HOUR)
        .unwrap();
    site.configure(Target::Local, "settle = \"1s\"\nupload_after = \"0s\"");
    expect_code(&site.recvault(&["run", "--once"]), 0);
    expect_code(&site.recvault(&["run", "--once"]), 0);
    assert!(!again.exists());
    assert_eq!(restore(&site, b"rewritten.wav"), rewritten);
}

/// Issue 13.3: a removal cut short by a crash after it moved the file into
/// `.recvault-removing/` and before it unlinked it. The next run puts the
/// file back and removes it properly; nothing is lost or left behind.
#[test]
fn a_removal_cut_short_is_put_back_and_finished() {
    let mut site = Site::new("cutshort");
    site.configure(Target::Local, DUE_NOW);
    let bytes = wav(1.0, 5);
    let path = put_recording(&site.spool, b"held-then-cut.wav", &bytes, HOUR);
    // Held: archived and verified, its local copy kept.
    let hold = |args: &[&str]| expect_code(&site.recvault(args), 0);
    hold(&[
        "hold",
        "add",
        "CUT-1",
        "--reason",
        "test",
        "--recording",
        "held-then-cut.wav",
    ]);
    expect_code(&site.recvault(&["run", "--once"]), 0);
    assert_eq!(site.states().get(&State::Verified), Some(&1));
    // What a crash mid-removal leaves: the file in its holding folder.
    let holding = site
        .spool
        .join(".recvault-removing")
        .join("00000000cafe0001");
    fs::create_dir_all(&holding).unwrap();
    fs::rename(&path, holding.join("held-then-cut.wav")).unwrap();
    hold(&["hold", "release", "CUT-1", "--reason", "done"]);
    let out = site.recvault(&["run", "--once"]);
    expect_code(&out, 0);
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("put back a file whose removal was interrupted"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!path.exists());
    assert!(!holding.exists(), "its holding folder is removed");
    assert_eq!(site.states().get(&State::LocalDeleted), Some(&1));
    let rec = &site.ledger().find(b"held-then-cut.wav").unwrap()[0];
    assert_eq!(rec.last_error, None, "{rec:?}");
    assert_eq!(restore(&site, b"held-then-cut.wav"), bytes);
}

/// A 5 GiB sparse file through the multipart path. Stored uncompressed
/// (`codec = "none"`) so the object itself is 5 GiB and goes up in parts;
/// Garage deduplicates the all-zero blocks, so it costs little disk.
/// Ignored by default: with a debug build on 2 shared cores, hashing and
/// sending 5 GiB took over 10 minutes; with `RECVAULT_BIN` pointing at a
/// release build it passes in about 95 s. Run it with `-- --ignored`.
/// (`restore` checks the original's SHA-256 before writing, so its success
/// proves the 5 GiB came back bit-exact.)
#[test]
#[ignore = "5 GiB through a debug build: run with --ignored"]
fn a_5_gib_sparse_file_goes_up_in_parts_and_restores() {
    let g = garage();
    let mut site = Site::new("sparse");
    site.configure(Target::Garage(&g), DUE_NOW);
    site.set_option("compress", "codec", "\"none\"");
    site.set_option("store", "multipart_threshold", "\"64MiB\"");
    site.set_option("store", "part_size", "\"512MiB\"");
    site.set_option("store", "read_timeout", "\"120s\"");
    let path = site.spool.join("sparse-5gib.wav");
    let size: u64 = 5 << 30;
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = fs::File::create(&path).unwrap();
        f.write_all(&wav(0.5, 1)).unwrap();
        f.seek(SeekFrom::Start(size - 4)).unwrap();
        f.write_all(b"END!").unwrap();
        f.set_modified(std::time::SystemTime::now() - HOUR).unwrap();
    }
    let out = site.recvault(&["run", "--once"]);
    expect_code(&out, 0);
    assert!(!path.exists());
    let ledger = site.ledger();
    let rec = ledger.find(b"sparse-5gib.wav").unwrap().remove(0);
    assert_eq!(rec.state, State::LocalDeleted);
    assert_eq!(rec.object_size, Some(size));
    // A multipart object reports a composite checksum ("base64-N").
    let checksum = rec.store_checksum.clone().unwrap_or_default();
    assert!(checksum.ends_with("-10"), "{checksum}");
    let out_path: PathBuf = site.root.join("restored.wav");
    let mut cmd = site.command(&["restore", "-o"]);
    expect_code(
        &cmd.arg(&out_path).arg("sparse-5gib.wav").output().unwrap(),
        0,
    );
    assert_eq!(fs::metadata(&out_path).unwrap().len(), size);
    fs::remove_file(&out_path).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = g.store(64 << 20, 512 << 20).await;
        store
            .delete(rec.object_key.as_ref().unwrap())
            .await
            .unwrap();
    });
}

/// Issue 13.7: an mtime past 2262 overflowed nanoseconds (a panic in a debug
/// build, a wrapped identity in release); one before 1970 is negative.
#[test]
fn mtimes_far_in_the_future_or_the_past_crash_nothing() {
    let mut site = Site::new("mtimes");
    site.configure(Target::Local, "settle = \"1s\"\nupload_after = \"0s\"");
    let year_2300 = std::time::UNIX_EPOCH + Duration::from_secs(10_500_000_000);
    let year_1960 = std::time::UNIX_EPOCH - Duration::from_secs(315_000_000);
    for (name, when) in [("future.wav", year_2300), ("past.wav", year_1960)] {
        let path = put_recording(&site.spool, name.as_bytes(), &wav(0.5, 7), HOUR);
        fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(when)
            .unwrap();
    }
    let out = site.recvault(&["run", "--once"]);
    expect_code(&out, 0);
    // The one from 1960 is archived; the one from 2300 waits to "settle"
    // (it is still being written, as far as its time says), in the ledger.
    let states = site.states();
    assert_eq!(states.get(&State::LocalDeleted), Some(&1), "{states:?}");
    assert_eq!(states.get(&State::Seen), Some(&1), "{states:?}");
    let ls = String::from_utf8_lossy(&site.recvault(&["ls"]).stdout).into_owned();
    assert!(ls.contains("future.wav") && ls.contains("past.wav"), "{ls}");
}
