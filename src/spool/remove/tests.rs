use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};

use super::*;

fn identity_of(path: &Path) -> FileIdentity {
    FileIdentity::of(&fs::symlink_metadata(path).unwrap())
}

fn spool() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("monitorDONE");
    fs::create_dir(&dir).unwrap();
    (tmp, dir)
}

/// Files left in `.recvault-removing/` (a removal that finished leaves none).
fn held(dir: &Path) -> Vec<PathBuf> {
    let Ok(subs) = fs::read_dir(dir.join(REMOVING)) else {
        return Vec::new();
    };
    subs.flatten()
        .flat_map(|s| fs::read_dir(s.path()).unwrap().flatten().map(|f| f.path()))
        .collect()
}

/// Writes `bytes` to a temp name and renames it over `path`: a new inode.
fn swap_in(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("swap-tmp");
    fs::write(&tmp, bytes).unwrap();
    fs::rename(&tmp, path).unwrap();
}

#[test]
fn the_archived_file_is_removed_and_nothing_is_left_behind() {
    let (_tmp, dir) = spool();
    let path = dir.join("a.wav");
    fs::write(&path, b"archived bytes").unwrap();
    let id = identity_of(&path);
    assert_eq!(
        remove_local_copy(std::slice::from_ref(&dir), &path, id),
        Ok(ARCHIVED)
    );
    assert!(!path.exists());
    assert!(held(&dir).is_empty());
    assert!(
        !dir.join(REMOVING).exists(),
        "the spool shows nothing of recvault's"
    );
    // Once more: nothing there.
    assert_eq!(
        remove_local_copy(std::slice::from_ref(&dir), &path, id),
        Ok(ALREADY_GONE)
    );
}

#[test]
fn a_file_swapped_in_at_the_last_moment_survives() {
    let (_tmp, dir) = spool();
    let path = dir.join("call.wav");
    fs::write(&path, b"the archived call").unwrap();
    let archived = identity_of(&path);
    // Between the look and the removal, another recording takes the name.
    let removed = remove_with(
        std::slice::from_ref(&dir),
        &path,
        archived,
        Takes::Archived,
        || swap_in(&path, b"a different call, never archived"),
    );
    assert_eq!(removed, Ok(REPLACED));
    assert_eq!(
        fs::read(&path).unwrap(),
        b"a different call, never archived"
    );
    assert!(held(&dir).is_empty());
    assert!(!dir.join(REMOVING).exists());
}

#[test]
fn a_file_rewritten_in_place_is_not_removed() {
    let (_tmp, dir) = spool();
    let path = dir.join("call.wav");
    fs::write(&path, b"first").unwrap();
    let archived = identity_of(&path);
    let removed = remove_with(
        std::slice::from_ref(&dir),
        &path,
        archived,
        Takes::Archived,
        || fs::write(&path, b"second, longer").unwrap(),
    );
    assert_eq!(removed, Ok(REPLACED));
    assert_eq!(fs::read(&path).unwrap(), b"second, longer");
}

#[test]
fn only_files_in_a_spool_directory_are_removed() {
    let (tmp, dir) = spool();
    let elsewhere = tmp.path().join("elsewhere.wav");
    fs::write(&elsewhere, b"x").unwrap();
    let id = identity_of(&elsewhere);
    assert!(remove_local_copy(std::slice::from_ref(&dir), &elsewhere, id).is_err());
    assert!(elsewhere.exists());
    // Through `..` out of the spool: the directory opened decides, not the text.
    let sneaky = dir.join("..").join("elsewhere.wav");
    assert!(remove_local_copy(std::slice::from_ref(&dir), &sneaky, id).is_err());
    assert!(elsewhere.exists());
}

#[test]
fn the_spool_is_recognised_through_a_link_to_it() {
    let (tmp, dir) = spool();
    let link = tmp.path().join("spool-link");
    std::os::unix::fs::symlink(&dir, &link).unwrap();
    // Configured by its link, recorded by its real path (or the reverse).
    let path = dir.join("b.wav");
    fs::write(&path, b"bytes").unwrap();
    assert!(crate::spool::in_spool(std::slice::from_ref(&link), &path));
    assert!(crate::spool::in_spool(
        std::slice::from_ref(&dir),
        &link.join("b.wav")
    ));
    let id = identity_of(&path);
    assert_eq!(remove_local_copy(&[link], &path, id), Ok(ARCHIVED));
    assert!(!path.exists());
}

#[test]
fn recover_puts_back_what_a_crash_left_and_never_replaces() {
    let (_tmp, dir) = spool();
    // A crash after the rename: two files held, one of whose names was
    // taken again since.
    for (sub, name, bytes) in [
        ("00000000000000aa", "free.wav", b"held one".as_slice()),
        ("00000000000000bb", "taken.wav", b"held two".as_slice()),
    ] {
        let holding = dir.join(REMOVING).join(sub);
        fs::create_dir_all(&holding).unwrap();
        fs::write(holding.join(name), bytes).unwrap();
    }
    fs::write(dir.join("taken.wav"), b"the new file").unwrap();
    let back: Vec<PathBuf> = recover(std::slice::from_ref(&dir))
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(back.len(), 2);
    assert_eq!(fs::read(dir.join("free.wav")).unwrap(), b"held one");
    assert_eq!(fs::read(dir.join("taken.wav")).unwrap(), b"the new file");
    let kept: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("recvault-kept-")
        })
        .map(|e| fs::read(e.path()).unwrap())
        .collect();
    assert_eq!(kept, vec![b"held two".to_vec()]);
    assert!(held(&dir).is_empty());
}

#[test]
fn recover_leaves_what_a_removal_never_made_alone() {
    let (tmp, dir) = spool();
    let removing = dir.join(REMOVING);
    // Folders and files no removal makes: another tool's, an operator's.
    for (sub, name) in [("notours", "a.wav"), ("00000000000000AA", "b.wav")] {
        fs::create_dir_all(removing.join(sub)).unwrap();
        fs::write(removing.join(sub).join(name), b"foreign").unwrap();
    }
    fs::write(removing.join("ledger.sqlite3"), b"foreign").unwrap();
    fs::create_dir(removing.join("0000000000000000")).unwrap();
    assert!(recover(std::slice::from_ref(&dir)).is_empty());
    assert!(removing.join("notours/a.wav").exists());
    assert!(removing.join("00000000000000AA/b.wav").exists());
    assert!(removing.join("ledger.sqlite3").exists());
    assert!(
        !removing.join("0000000000000000").exists(),
        "its own, empty"
    );
    // `.recvault-removing` a link to elsewhere: never followed.
    let (_other, other) = spool();
    let elsewhere = tmp.path().join("elsewhere");
    fs::create_dir_all(elsewhere.join("00000000000000cc")).unwrap();
    fs::write(elsewhere.join("00000000000000cc/c.wav"), b"foreign").unwrap();
    std::os::unix::fs::symlink(&elsewhere, other.join(REMOVING)).unwrap();
    assert!(recover(std::slice::from_ref(&other)).is_empty());
    assert!(elsewhere.join("00000000000000cc/c.wav").exists());
    assert!(!other.join("c.wav").exists());
}

/// Up to this many spins before the swap: about the time a removal takes
/// to look, so swaps land before, during and after it.
const SPIN: u32 = 4000;

/// Another process renames new recordings over the name while removals
/// run: a file that was never archived is never the one removed.
#[test]
fn racing_renames_never_lose_an_unarchived_file() {
    let (_tmp, dir) = spool();
    let path = dir.join("busy.wav");
    let mut replaced = 0;
    for round in 0..300u32 {
        fs::write(&path, format!("archived {round}")).unwrap();
        let archived = identity_of(&path);
        let newcomer = format!("newcomer {round}");
        let start = Arc::new(Barrier::new(2));
        let swapper = {
            let (path, newcomer, start) = (path.clone(), newcomer.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                for _ in 0..fastrand::u32(0..SPIN) {
                    std::hint::spin_loop();
                }
                swap_in(&path, newcomer.as_bytes());
            })
        };
        start.wait();
        let outcome = remove_local_copy(std::slice::from_ref(&dir), &path, archived).unwrap();
        swapper.join().unwrap();
        replaced += usize::from(outcome == REPLACED);
        // Wherever it ended up, the newcomer is still there.
        let survivors: Vec<Vec<u8>> = fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_type().unwrap().is_file())
            .map(|e| fs::read(e.path()).unwrap())
            .collect();
        assert!(
            survivors.contains(&newcomer.clone().into_bytes()),
            "round {round}: the unarchived newcomer was lost ({outcome})"
        );
        for e in fs::read_dir(&dir).unwrap().flatten() {
            if e.file_type().unwrap().is_file() {
                fs::remove_file(e.path()).unwrap();
            }
        }
    }
    // Both orders happened: some removals won the race, some saw the swap.
    eprintln!("the swap came first in {replaced} of 300 rounds");
    assert!(replaced > 0 && replaced < 300, "replaced {replaced} of 300");
}

#[test]
fn an_erasure_takes_the_changed_file_at_the_path_but_never_a_link() {
    let (_tmp, dir) = spool();
    let dirs = std::slice::from_ref(&dir);
    let path = dir.join("20260301-101500_5551234567-all.wav");
    fs::write(&path, b"the call").unwrap();
    let taken_in = identity_of(&path);
    // Written to again after it was taken in: no longer the hashed file.
    fs::write(&path, b"the call, and more").unwrap();
    assert_eq!(remove_local_copy(dirs, &path, taken_in).unwrap(), REPLACED);
    assert!(path.exists(), "the pipeline leaves a changed file alone");
    assert_eq!(erase_local_copy(dirs, &path, taken_in).unwrap(), CHANGED);
    assert!(!path.exists() && held(&dir).is_empty());
    // The file as taken in: archived, as before.
    fs::write(&path, b"the call").unwrap();
    let same = identity_of(&path);
    assert_eq!(erase_local_copy(dirs, &path, same).unwrap(), ARCHIVED);
    assert_eq!(erase_local_copy(dirs, &path, same).unwrap(), ALREADY_GONE);
    // A link (or folder) under the name is not the call: it stays.
    let elsewhere = dir.join("elsewhere");
    fs::write(&elsewhere, b"x").unwrap();
    std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
    assert_eq!(erase_local_copy(dirs, &path, same).unwrap(), REPLACED);
    assert!(fs::symlink_metadata(&path).is_ok() && elsewhere.exists());
}

/// The archive step's removals share a kept folder; one removed under them
/// (by `release` elsewhere, or by hand) must not make a file look gone.
#[test]
fn archive_removals_share_a_kept_folder_and_survive_its_loss() {
    let (_tmp, dir) = spool();
    let dirs = std::slice::from_ref(&dir);
    let mut paths = Vec::new();
    for name in ["a.wav", "b.wav", "c.wav"] {
        let path = dir.join(name);
        fs::write(&path, name.as_bytes()).unwrap();
        paths.push((identity_of(&path), path));
    }
    let (id, path) = &paths[0];
    assert_eq!(remove_archived_copy(dirs, path, *id), Ok(ARCHIVED));
    assert!(!path.exists() && held(&dir).is_empty());
    // The kept folder taken away between two removals.
    if let Ok(subs) = fs::read_dir(dir.join(REMOVING)) {
        for sub in subs.flatten() {
            fs::remove_dir(sub.path()).unwrap();
        }
    }
    let (id, path) = &paths[1];
    assert_eq!(remove_archived_copy(dirs, path, *id), Ok(ARCHIVED));
    assert!(!path.exists(), "the file must really be gone");
    // A file replaced after archiving stays, put back under its name.
    let (id, path) = &paths[2];
    swap_in(path, b"a new call");
    assert_eq!(remove_archived_copy(dirs, path, *id), Ok(REPLACED));
    assert_eq!(fs::read(path).unwrap(), b"a new call");
    release_kept_folders();
    assert!(held(&dir).is_empty());
    assert!(
        !dir.join(REMOVING).exists(),
        "released: the spool shows nothing of recvault's"
    );
}
