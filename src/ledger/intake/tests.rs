use super::*;
use crate::ledger::fixtures::{insert_plain, ledger};

#[test]
fn prefixes_bound_exactly_one_directory() {
    assert_eq!(dir_prefix(Path::new("/a/b")), b"/a/b/");
    assert_eq!(dir_prefix(Path::new("/a/b/")), b"/a/b/");
    assert_eq!(prefix_end(b"/a/b/"), b"/a/b0");
    assert_eq!(prefix_end(&[b'a', 0xff]), b"b");
}

/// Issue 18: a rescan's lookup answers for the name in that directory
/// only, at that device and inode, and only for `settled` rows (every
/// fixture row has device 1 and inode 2).
#[test]
fn settled_at_answers_for_that_name_device_and_inode_only() {
    let (_dir, ledger) = ledger();
    insert_plain(&ledger, "/s/a.wav", State::Settled);
    insert_plain(&ledger, "/s/MP3/a.wav", State::Settled);
    insert_plain(&ledger, "/s/b.wav", State::Seen);
    insert_plain(&ledger, "/s/ab.wav", State::Settled);
    let names = |list: &[(&'static str, u64)]| -> Vec<(&'static OsStr, u64)> {
        list.iter().map(|(n, i)| (OsStr::new(*n), *i)).collect()
    };
    let listed = names(&[
        ("a.wav", 2),
        ("b.wav", 2),
        ("ab.wav", 3),
        ("c.wav", 2),
        ("b.wav", 3),
    ]);
    assert_eq!(
        ledger.settled_at(1, Path::new("/s"), &listed).unwrap(),
        [true, false, false, false, false]
    );
    let mp3 = names(&[("a.wav", 2), ("ab.wav", 2)]);
    assert_eq!(
        ledger.settled_at(1, Path::new("/s/MP3"), &mp3).unwrap(),
        [true, false]
    );
    assert_eq!(
        ledger.settled_at(1, Path::new("/s/"), &mp3).unwrap(),
        [true, true],
        "a trailing slash names the same directory"
    );
    assert_eq!(
        ledger.settled_at(9, Path::new("/s"), &mp3).unwrap(),
        [false, false],
        "another device"
    );
}

/// The merge with the path index answers as a lookup per name would,
/// whatever the order and spacing of the names asked about: runs of
/// neighbours (stepped), gaps wider than [`GALLOP`] (sought), names
/// before, between and after the rows, repeats and names out of order.
#[test]
fn settled_at_answers_as_one_lookup_per_name_would() {
    let (_dir, ledger) = ledger();
    let mut rows = std::collections::HashMap::new();
    for i in (0..200).step_by(2) {
        let state = if i % 6 == 0 {
            State::Seen
        } else {
            State::Settled
        };
        insert_plain(&ledger, &format!("/s/n{i:03}.wav"), state);
        rows.insert(format!("n{i:03}.wav"), state == State::Settled);
    }
    insert_plain(&ledger, "/s/MP3/n001.wav", State::Settled);
    insert_plain(&ledger, "/t/n001.wav", State::Settled);
    let expect = |asked: &[(String, u64)]| -> Vec<bool> {
        asked
            .iter()
            .map(|(n, ino)| *ino == 2 && rows.get(n).copied().unwrap_or(false))
            .collect()
    };
    let mut rng = fastrand::Rng::with_seed(18);
    for round in 0..200 {
        let mut asked: Vec<(String, u64)> = (0..rng.usize(0..60))
            .map(|_| {
                (
                    format!("n{:03}.wav", rng.usize(0..205)),
                    2 + (rng.u8(..) == 0) as u64,
                )
            })
            .collect();
        asked.push(("a.wav".into(), 2));
        asked.push(("z.wav".into(), 2));
        if round % 2 == 0 {
            asked.sort();
        }
        let files: Vec<_> = asked.iter().map(|(n, i)| (OsStr::new(n), *i)).collect();
        assert_eq!(
            ledger.settled_at(1, Path::new("/s"), &files).unwrap(),
            expect(&asked),
            "{asked:?}"
        );
    }
}

/// Issue 18: the settled names read at once for a rescan answer as the
/// lookup does, for every name in and out of the directory, and are not
/// read at all above the most asked for.
#[test]
fn settled_names_answer_as_the_lookup_does_and_stop_at_the_most() {
    let (_dir, ledger) = ledger();
    let mut settled = 0;
    for i in 0..300 {
        let state = match i % 5 {
            0 => State::Seen,
            1 => State::Quarantined,
            _ => State::Settled,
        };
        let id = insert_plain(&ledger, &format!("/s/n{i:03}.wav"), state);
        if i % 7 == 0 && state == State::Settled {
            ledger.gone(id, state, "removed").unwrap();
        } else if state == State::Settled {
            settled += 1;
        }
    }
    insert_plain(&ledger, "/s/MP3/n001.wav", State::Settled);
    insert_plain(&ledger, "/s2/n002.wav", State::Settled);
    insert_plain(&ledger, "/t/n003.wav", State::Settled);
    let names = ledger
        .settled_names_in(1, Path::new("/s"), settled)
        .unwrap()
        .expect("as many as the most");
    assert_eq!(names.len(), settled);
    let mut asked: Vec<(String, u64)> = Vec::new();
    for i in 0..310 {
        asked.push((format!("n{i:03}.wav"), 2));
        asked.push((format!("n{i:03}.wav"), 3));
    }
    // A folder's name, and the empty one (no entry is named with a '/').
    asked.extend([("MP3".into(), 2), ("".into(), 2)]);
    let files: Vec<_> = asked.iter().map(|(n, i)| (OsStr::new(n), *i)).collect();
    let looked_up = ledger.settled_at(1, Path::new("/s"), &files).unwrap();
    let held: Vec<bool> = files.iter().map(|(n, i)| names.contains(n, *i)).collect();
    assert_eq!(held, looked_up);
    assert_eq!(held.iter().filter(|t| **t).count(), settled);
    let elsewhere = ledger
        .settled_names_in(9, Path::new("/s"), 1000)
        .unwrap()
        .unwrap();
    assert!(elsewhere.is_empty(), "another device");
    assert!(
        ledger
            .settled_names_in(1, Path::new("/s"), settled - 1)
            .unwrap()
            .is_none()
    );
    let few = ledger
        .settled_names_in(1, Path::new("/s2/"), 1)
        .unwrap()
        .unwrap();
    assert!(few.contains(OsStr::new("n002.wav"), 2));
    assert!(!few.contains(OsStr::new("n002.wav"), 3));
}

#[test]
fn local_rows_of_a_directory_leave_out_folders_below_and_beside_it() {
    let (_dir, ledger) = ledger();
    for path in [
        "/s/a.wav",
        "/s/b.wav",
        "/s/MP3/c.mp3",
        "/s2/d.wav",
        "/t/e.wav",
    ] {
        insert_plain(&ledger, path, State::Seen);
    }
    let gone = insert_plain(&ledger, "/s/f.wav", State::Seen);
    ledger.gone(gone, State::Seen, "removed").unwrap();
    assert_eq!(ledger.local_count_in(Path::new("/s"), None).unwrap(), 2);
    let mp3 = [OsString::from("MP3")];
    assert_eq!(
        ledger.local_count_in(Path::new("/s"), Some(&mp3)).unwrap(),
        2
    );
    // A folder not named: its rows count as if in `/s`.
    assert_eq!(
        ledger.local_count_in(Path::new("/s"), Some(&[])).unwrap(),
        3
    );
    assert_eq!(ledger.local_count_in(Path::new("/s/MP3"), None).unwrap(), 1);
    assert_eq!(
        ledger
            .local_count_in(Path::new("/s/MP3"), Some(&[]))
            .unwrap(),
        1
    );
    assert!(ledger.any_local_in(Path::new("/s/MP3")).unwrap());
    assert!(!ledger.any_local_in(Path::new("/s/MP")).unwrap());
    assert!(!ledger.any_local_in(Path::new("/u")).unwrap());
    let first = ledger.local_rows_in(Path::new("/s"), None, 1).unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].0, Path::new("/s/a.wav"));
    let rest = ledger
        .local_rows_in(Path::new("/s"), Some(&first[0].0), 10)
        .unwrap();
    let paths: Vec<_> = rest.iter().map(|(p, _)| p.clone()).collect();
    assert_eq!(paths, vec![PathBuf::from("/s/b.wav")]);
}
