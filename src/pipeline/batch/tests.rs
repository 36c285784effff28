//! A batch against a real spool, ledger and local store: the plain
//! recordings are archived together, and each one that leaves the plain
//! path ends as it would alone.

use std::collections::HashSet;
use std::fs;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::config::Config;
use crate::ledger::Ledger;
use crate::metrics::Metrics;
use crate::pipeline::intake;
use crate::store::{LocalStore, Store};
use crate::units::now_secs;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_archives_the_plain_ones_and_leaves_the_rest_to_the_one_recording_steps() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (a, b) = (root.join("spool"), root.join("spool-orig"));
    for d in [&a, &b] {
        fs::create_dir_all(d).unwrap();
    }
    let text = format!(
        "[spool]\ndirs = [\"{}\", \"{}\"]\nsettle = \"0s\"\nupload_after = \"0s\"\nstaging = \"{}\"\nmin_free = \"none\"\n\n[store]\nkind = \"local\"\npath = \"{}\"\n\n[ledger]\npath = \"{}\"\n",
        a.display(),
        b.display(),
        root.join("staging").display(),
        root.join("store").display(),
        root.join("ledger.sqlite3").display(),
    );
    let config = Arc::new(Config::parse(&root.join("recvault.toml"), &text).unwrap());
    let store_config = config.store.clone().unwrap();
    let ledger = Arc::new(Ledger::open(&config.ledger.path).unwrap());
    let store: Arc<dyn Store> = Arc::new(LocalStore::new(root.join("store")));
    let archiver = Archiver::new(
        config.clone(),
        store_config,
        ledger.clone(),
        store.clone(),
        Arc::new(Metrics::default()),
    );

    // VICIdial repeats names: the same name in two folders is two
    // recordings, whose plain keys are the same.
    let same = "20260301-101500_5551234567-all.wav";
    let files = [
        a.join("20260301-101501_5550000001-all.wav"),
        a.join("20260301-101502_5550000002-all.wav"),
        a.join(same),
        b.join(same),
        a.join("20260301-101503_5550000003-all.wav"),
        a.join("20260301-101504_5550000004-all.wav"),
    ];
    for (i, path) in files.iter().enumerate() {
        fs::write(path, format!("recording {i} ").repeat(50 + i)).unwrap();
    }
    let spool = &config.spool;
    let none = HashSet::new();
    intake::rescan(
        &ledger,
        &config.naming,
        &spool.dirs,
        &spool.ignore,
        Some(Duration::ZERO),
        &none,
        &mut |_| {},
    )
    .unwrap();
    intake::settle(&ledger, Duration::ZERO, &none).unwrap();
    let recs = ledger.work_queue(i64::MAX, now_secs(), true, 100).unwrap();
    assert_eq!(recs.len(), files.len());
    assert!(recs.iter().all(|r| archiver.batchable(r)));
    let id_of = |path: &std::path::Path| recs.iter().find(|r| r.path == path).unwrap().id;
    let (changed, gone) = (id_of(&files[4]), id_of(&files[5]));

    // After the batch was read: one file grows, one is removed.
    fs::write(&files[4], "written again, longer than before".repeat(40)).unwrap();
    fs::remove_file(&files[5]).unwrap();

    let outcomes = archiver.process_batch(recs.clone()).await;
    let mut ids: Vec<i64> = outcomes.iter().map(|(id, _)| *id).collect();
    ids.sort();
    let mut want: Vec<i64> = recs.iter().map(|r| r.id).collect();
    want.sort();
    assert_eq!(ids, want, "one outcome per recording");
    for (id, outcome) in &outcomes {
        let now = ledger.recording(*id).unwrap();
        match *id {
            id if id == changed => {
                assert_eq!(outcome.as_ref().ok(), Some(&Done::Waiting(State::Seen)));
                assert_eq!(now.state, State::Seen);
            }
            id if id == gone => {
                assert_eq!(outcome.as_ref().ok(), Some(&Done::Waiting(State::Gone)));
                assert_eq!(now.state, State::Gone);
            }
            _ => {
                assert!(
                    matches!(outcome, Ok(Done::Archived { .. })),
                    "{}: {outcome:?}",
                    now.path.display()
                );
                assert_eq!(now.state, State::LocalDeleted);
                assert!(!now.path.exists(), "{}", now.path.display());
                let key = now.object_key.clone().unwrap();
                let info = store.head(&key).await.unwrap().unwrap();
                assert_eq!(Some(info.size), now.object_size);
            }
        }
    }
    // The two of the same name were stored under two keys.
    let keys: HashSet<String> = [id_of(&files[2]), id_of(&files[3])]
        .iter()
        .map(|&id| ledger.recording(id).unwrap().object_key.unwrap())
        .collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(files[4].exists(), "the changed file stays");
}
