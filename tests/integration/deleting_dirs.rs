//! The directories recvault deletes files in (`[spool] staging`, `[serve]
//! cache_dir`, a local store's `path`) against what it must keep: a config
//! pointing one at a spool directory, the ledger's directory, a key file's
//! directory or `/` is refused by `check`, `check --offline` and `run`
//! before anything is touched; and the clean-ups remove only names
//! recvault writes, whatever else an operator left there.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::*;
use crate::serve::{Served, serve_table};

/// Every file under `root` (but the config) with its bytes.
fn tree(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() && !path.ends_with("recvault.toml") {
                out.insert(path.clone(), fs::read(&path).unwrap());
            } else if kind.is_symlink() {
                out.insert(
                    path.clone(),
                    fs::read_link(&path)
                        .unwrap()
                        .into_os_string()
                        .into_encoded_bytes(),
                );
            }
        }
    }
    out
}

#[test]
fn every_forbidden_directory_is_refused_by_check_and_run() {
    let mut site = Site::new("forbidden-dirs");
    site.configure(Target::Local, "settle = \"1s\"\nupload_after = \"0s\"");
    let mut config = fs::read_to_string(&site.config).unwrap();
    config.push_str(&serve_table(&site.root, dead_port(), ""));
    fs::write(&site.config, &config).unwrap();
    let root = site.root.clone();
    let spool = site.spool.clone();
    put_recording(
        &spool,
        b"20260301-101500_5551234567-all.wav",
        &wav(1.0, 1),
        Duration::from_secs(60),
    );
    // A ledger with its side files, as a daemon leaves them.
    for side in [
        "ledger.sqlite3",
        "ledger.sqlite3-wal",
        "ledger.sqlite3.lock",
        "pseudonym.key",
    ] {
        fs::write(root.join(side), side.as_bytes()).unwrap();
    }
    let keys_tmp = tempfile::tempdir().unwrap();
    let keys = keys_tmp.path().join("keys");
    fs::create_dir(&keys).unwrap();
    fs::copy(root.join("link.key"), keys.join("link.key")).unwrap();
    std::os::unix::fs::symlink(&spool, root.join("to-spool")).unwrap();
    std::os::unix::fs::symlink(&root, root.join("to-ledger")).unwrap();
    let at = |p: &Path| format!("\"{}\"", p.display());
    let staging: Vec<(String, &str)> = vec![
        (at(&spool), "is the spool directory"),
        (at(&spool.join("sub")), "lies inside the spool directory"),
        (at(&root.join("to-spool")), "is the spool directory"),
        (at(&root), "the ledger's directory"),
        (at(&root.join("staging/..")), "the ledger's directory"),
        (at(root.parent().unwrap()), "contains"),
        ("\"/\"".into(), "is /"),
    ];
    let cache: Vec<(String, &str)> = vec![
        (at(&spool), "is the spool directory"),
        (
            at(&root.join("monitorDONE/../monitorDONE")),
            "is the spool directory",
        ),
        (at(&root.join("to-ledger")), "is the ledger's directory"),
        (at(&root), "is the ledger's directory"),
        ("\"/\"".into(), "is /"),
    ];
    // (table, key, value, what the refusal says, whether the link key
    // moves to a directory of its own outside the ledger's).
    let mut cases: Vec<(&str, &str, String, &str, bool)> = Vec::new();
    for (value, why) in &staging {
        cases.push(("spool", "staging", value.clone(), why, false));
    }
    for (value, why) in &cache {
        cases.push(("serve", "cache_dir", value.clone(), why, false));
    }
    cases.push(("store", "path", at(&spool), "is the spool directory", false));
    let key_dir = "the directory of serve.key_file";
    cases.push(("spool", "staging", at(&keys), key_dir, true));
    cases.push((
        "serve",
        "cache_dir",
        at(&keys.join("cache")),
        "lies inside",
        true,
    ));
    let before = tree(&root);
    for (table, key, value, why, own_key_dir) in cases {
        fs::write(&site.config, &config).unwrap();
        site.set_option(table, key, &value);
        if own_key_dir {
            site.set_option("serve", "key_file", &at(&keys.join("link.key")));
        }
        for args in [&["check"][..], &["check", "--offline"], &["run", "--once"]] {
            let out = site.recvault(args);
            let text = String::from_utf8_lossy(&out.stderr);
            let case = format!("{table}.{key} = {value}, {args:?}: {text}");
            assert_eq!(out.status.code(), Some(2), "{case}");
            assert!(text.contains(&format!("key `{table}.{key}`")), "{case}");
            assert!(text.contains(&site.config.display().to_string()), "{case}");
            assert!(text.contains(why), "{case}");
            assert_eq!(tree(&root), before, "{case}: files changed");
        }
    }
    assert!(keys.join("link.key").exists());
    fs::write(&site.config, &config).unwrap();
    // The same site with directories of their own runs.
    expect_code(&site.recvault(&["check", "--offline"]), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_ups_remove_only_what_recvault_wrote() {
    let mut s = Served::new(
        "foreign-files",
        Target::Local,
        "settle = \"1s\"\nupload_after = \"0s\"\nrescan = \"1s\"",
        "",
    );
    let staging = s.site.root.join("staging");
    let cache = s.site.root.join("playback-cache");
    let removing = s.site.spool.join(".recvault-removing/notours");
    let mut foreign = Vec::new();
    for dir in [&staging, &cache, &removing] {
        fs::create_dir_all(dir).unwrap();
        for name in [
            "ledger.sqlite3",
            "20260301-090000_5550000000-all.wav",
            "notes.txt",
        ] {
            let path = dir.join(name);
            fs::write(&path, format!("an operator's {name}")).unwrap();
            foreign.push(path);
        }
    }
    fs::create_dir_all(staging.join("mine")).unwrap();
    fs::write(staging.join("mine/7.obj"), b"a directory's file").unwrap();
    foreign.push(staging.join("mine/7.obj"));
    // What interrupted steps of recvault leave: these go.
    let leftovers = [
        staging.join("999.obj"),
        staging.join("998.tmp"),
        cache.join("5.orig"),
    ];
    for path in &leftovers {
        fs::write(path, b"cut short").unwrap();
    }
    let name = b"20260301-101500_5551234567-all.wav";
    let recording = put_recording(&s.site.spool, name, &wav(1.0, 2), Duration::from_secs(60));
    s.start().await;
    wait_for(Duration::from_secs(60), "the recording archived", || {
        s.count("local_deleted") == 1
    });
    s.stop();
    assert!(!recording.exists());
    for path in &foreign {
        let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            text.contains("an operator's") || text == "a directory's file",
            "{}",
            path.display()
        );
    }
    for path in &leftovers {
        assert!(!path.exists(), "{} left", path.display());
    }
    // The foreign folder in the removal area was never put into the spool.
    assert!(!s.site.spool.join("notes.txt").exists());
    assert_eq!(
        s.site.states().values().sum::<u64>(),
        1,
        "{:?}",
        s.site.states()
    );
}
