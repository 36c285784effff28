//! The spool on disk: finding recordings in the configured directories
//! (here), asking the kernel whether one is still being written
//! (`writers`), and removing a local copy so that the removal itself proves
//! it removes the file that was archived (`remove`). Never follows symlinks
//! and never leaves the configured directories. Used by the pipeline
//! (intake, the local delete) and by retention.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use crate::ledger::SpoolFile;
use crate::ledger::intake::Found;
use crate::recording::FileIdentity;

mod remove;
mod writers;

pub use remove::{
    REMOVING, REPLACED, erase_local_copy, recover as recover_removals, release_kept_folders,
    remove_archived_copy, remove_local_copy,
};
pub use writers::being_written;

/// What listing one spool directory found, besides the entries it handed over.
#[derive(Debug, Default)]
pub struct Listing {
    /// Entries handed over: regular files and special files, not ignored.
    pub entries: u64,
    /// True if every entry was read and looked at: only then does a
    /// recording missing from the listing count as gone.
    pub complete: bool,
    /// Why the directory could not be listed, or the listing broke off.
    pub error: Option<io::Error>,
    /// The names of the folders listed (not ignored), or `None` past
    /// [`FOLDERS_NAMED`] of them: what [`crate::ledger::Ledger::local_count_in`]
    /// takes off its count of the directory.
    pub folders: Option<Vec<OsString>>,
}

/// At most this many folder names are kept per listing (a VICIdial spool
/// has three: `MP3`, `GSM`, `ORIG`), so memory stays bounded.
pub const FOLDERS_NAMED: usize = 64;

/// A file-name pattern with `*` and `?`, matched against raw name bytes.
/// The usual shapes (`*.tmp`, `.*`, a plain name) are a suffix, prefix or
/// equality test: a rescan asks every pattern of every entry.
pub fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    let wild = |b: &&u8| matches!(**b, b'*' | b'?');
    match pattern.iter().filter(wild).count() {
        0 => pattern == name,
        1 if pattern[0] == b'*' => name.ends_with(&pattern[1..]),
        1 if pattern[pattern.len() - 1] == b'*' => name.starts_with(&pattern[..pattern.len() - 1]),
        _ => glob_general(pattern, name),
    }
}

/// [`glob_match`] for any pattern: `*` backtracks to its last position.
fn glob_general(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while n < name.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == name[n]) {
            p += 1;
            n += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some(p);
            mark = n;
            p += 1;
        } else if let Some(s) = star {
            p = s + 1;
            mark += 1;
            n = mark;
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// True if `name` matches one of the ignore patterns.
pub fn ignored(ignore: &[String], name: &[u8]) -> bool {
    ignore.iter().any(|pat| glob_match(pat.as_bytes(), name))
}

/// Looks at one path without following links. `Ok(None)` if it does not
/// exist or is a directory (sub-folders are configured separately).
pub fn inspect(path: &Path) -> io::Result<Option<Found>> {
    match fs::symlink_metadata(path) {
        Ok(meta) => Ok(classify(path.to_path_buf(), &meta)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// What the entry at `path` with `meta` (not following links) is to intake.
fn classify(path: PathBuf, meta: &fs::Metadata) -> Option<Found> {
    let ft = meta.file_type();
    if ft.is_dir() {
        return None;
    }
    let file = SpoolFile {
        name: path
            .file_name()
            .map(|n| n.as_bytes().to_vec())
            .unwrap_or_default(),
        path,
        identity: FileIdentity::of(meta),
    };
    Some(if ft.is_file() {
        Ok(file)
    } else if ft.is_symlink() {
        Err((file, "symlink (never followed)"))
    } else if ft.is_fifo() {
        Err((file, "FIFO (never read)"))
    } else if ft.is_socket() {
        Err((file, "socket (never read)"))
    } else {
        Err((file, "device node (never read)"))
    })
}

/// One directory entry as the directory itself lists it: its name, inode
/// (`d_ino`) and whether it is listed as a regular file (`d_type`), known
/// without looking at the file.
pub struct Entry {
    name: OsString,
    ino: u64,
    file: bool,
}

/// An entry read but not handed over yet: its name is in its chunk's
/// buffer of names (one allocation for all, not one each).
struct Listed {
    /// The name's first 16 bytes, big-endian, zero-padded: sorting compares
    /// these first (names of one directory share long prefixes).
    key: [u64; 2],
    at: u32,
    len: u32,
    ino: u64,
    file: bool,
}

/// The first 16 bytes of `name` as two big-endian numbers, zero-padded:
/// two names' keys are ordered as the names are, or equal (then the names
/// say).
fn sort_key(name: &[u8]) -> [u64; 2] {
    let mut head = [0u8; 16];
    let n = name.len().min(16);
    head[..n].copy_from_slice(&name[..n]);
    let key = u128::from_be_bytes(head);
    [(key >> 64) as u64, key as u64]
}

impl Entry {
    /// The entry's name in its directory.
    pub fn name(&self) -> &std::ffi::OsStr {
        &self.name
    }

    /// The inode the directory names for this entry.
    pub fn ino(&self) -> u64 {
        self.ino
    }

    /// True if the directory lists a regular file here. Where the file
    /// system gives no type (`DT_UNKNOWN`), std looked at the entry to tell.
    pub fn listed_as_file(&self) -> bool {
        self.file
    }
}

/// Entries read and sorted by name together before they are handed over in
/// batches: about 5 MB for 65,536 VICIdial names (40 bytes of key, inode
/// and place each, the names side by side). In name order the
/// ledger's path index — and the indexes that follow a VICIdial name's
/// time — are read and written a page after the next, not a random page per
/// entry as in the directory's own (hash) order: on a first intake of a
/// million files that is what the time goes to, and a rescan's lookups meet
/// their pages in order too.
pub const SORTED: usize = 65_536;

/// A chunk is handed over sooner if its names come to this many bytes
/// (names of up to 255 bytes each would otherwise hold 16 MB).
const SORTED_NAME_BYTES: usize = 4 << 20;

/// Lists one spool directory (not recursively) without holding it: its
/// entries are read [`SORTED`] at a time, sorted by name, and handed to
/// `visit` in batches of at most `batch`, so memory stays the same whatever
/// the directory's size. Names ignored and entries the directory lists as
/// folders are left out unlooked-at. `visit` counts what it takes in
/// `Listing::entries` and marks the listing incomplete if an entry could
/// not be looked at ([`look_at`] does both); an error from it stops the
/// listing and is returned.
pub fn list_dir<E>(
    dir: &Path,
    ignore: &[String],
    batch: usize,
    mut visit: impl FnMut(Vec<Entry>, &mut Listing) -> Result<(), E>,
) -> Result<Listing, E> {
    let mut listing = Listing {
        complete: true,
        folders: Some(Vec::new()),
        ..Listing::default()
    };
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            listing.complete = false;
            listing.error = Some(e);
            return Ok(listing);
        }
    };
    let chunk = SORTED.max(batch);
    let (mut listed, mut names) = (Vec::new(), Vec::new());
    for entry in entries {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                listing.error = Some(e);
                listing.complete = false;
                break;
            }
        };
        let name = entry.file_name();
        if ignored(ignore, name.as_bytes()) {
            continue;
        }
        // d_type: a folder is left out without a stat (DT_UNKNOWN: std looks).
        let kind = entry.file_type();
        if kind.as_ref().is_ok_and(|t| t.is_dir()) {
            match &mut listing.folders {
                Some(folders) if folders.len() < FOLDERS_NAMED => folders.push(name),
                _ => listing.folders = None,
            }
            continue;
        }
        use std::os::unix::fs::DirEntryExt;
        let name = name.as_bytes();
        listed.push(Listed {
            key: sort_key(name),
            at: names.len() as u32,
            len: name.len() as u32,
            ino: entry.ino(),
            file: kind.is_ok_and(|t| t.is_file()),
        });
        names.extend_from_slice(name);
        if listed.len() >= chunk || names.len() >= SORTED_NAME_BYTES {
            hand_over(&mut listed, &mut names, batch, &mut listing, &mut visit)?;
        }
    }
    hand_over(&mut listed, &mut names, batch, &mut listing, &mut visit)?;
    Ok(listing)
}

/// Sorts `listed` (its names in `names`) by name and hands it to `visit`
/// in batches of at most `batch`, leaving both empty.
fn hand_over<E>(
    listed: &mut Vec<Listed>,
    names: &mut Vec<u8>,
    batch: usize,
    listing: &mut Listing,
    visit: &mut impl FnMut(Vec<Entry>, &mut Listing) -> Result<(), E>,
) -> Result<(), E> {
    let name = |l: &Listed| &names[l.at as usize..(l.at + l.len) as usize];
    listed.sort_unstable_by(|a, b| a.key.cmp(&b.key).then_with(|| name(a).cmp(name(b))));
    for run in listed.chunks(batch.max(1)) {
        let entries = run.iter().map(|l| Entry {
            name: OsStr::from_bytes(name(l)).to_os_string(),
            ino: l.ino,
            file: l.file,
        });
        visit(entries.collect(), listing)?;
    }
    listed.clear();
    names.clear();
    Ok(())
}

/// Looks at each of `entries` of directory `dir` (never following a link)
/// and returns what intake takes in: files and special files, each counted
/// in `listing`. An entry that vanished since it was listed, or could not
/// be looked at, leaves `listing` incomplete (the next scan sees it).
pub fn look_at(
    dir: &Path,
    entries: impl IntoIterator<Item = Entry>,
    listing: &mut Listing,
) -> Vec<Found> {
    let mut found = Vec::new();
    for entry in entries {
        let path = dir.join(&entry.name);
        match fs::symlink_metadata(&path) {
            Ok(meta) => {
                if let Some(f) = classify(path, &meta) {
                    found.push(f);
                }
            }
            Err(_) => listing.complete = false,
        }
    }
    listing.entries += found.len() as u64;
    found
}

/// True if `path` lies directly in one of the configured directories: its
/// parent is the same directory (device and inode) as one of them, whatever
/// path names either; where the parent cannot be looked at (removed), its
/// path must equal a configured one.
pub fn in_spool(dirs: &[PathBuf], path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(parent) = path.parent() else {
        return false;
    };
    match fs::metadata(parent) {
        Ok(m) => m.is_dir() && remove::is_spool_dir(dirs, m.dev(), m.ino()),
        Err(_) => dirs.iter().any(|d| d == parent),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match(b"*.wav", b"a.wav"));
        assert!(!glob_match(b"*.wav", b"a.wav.tmp"));
        assert!(glob_match(b".*", b".hidden"));
        assert!(glob_match(b"a?c*", b"abcdef"));
        assert!(!glob_match(b"a?c", b"ac"));
        assert!(glob_match(b"*", b""));
        // The shapes with a fast path answer as the general match does.
        assert!(glob_match(b"*.tmp", b".tmp") && !glob_match(b"*.tmp", b"tmp"));
        assert!(glob_match(b"x.wav", b"x.wav") && !glob_match(b"x.wav", b"x.wa"));
        assert!(glob_match(b"a*", b"a") && !glob_match(b"a*", b"ba"));
        assert!(glob_match(b"?", b"a") && !glob_match(b"?", b""));
        assert!(glob_match(b"*a*", b"bab") && !glob_match(b"*a*", b"bbb"));
        let mut rng = fastrand::Rng::with_seed(18);
        for _ in 0..20_000 {
            let pattern: Vec<u8> = (0..rng.usize(0..5))
                .map(|_| b"ab.*?"[rng.usize(0..5)])
                .collect();
            let name: Vec<u8> = (0..rng.usize(0..6))
                .map(|_| b"ab."[rng.usize(0..3)])
                .collect();
            assert_eq!(
                glob_match(&pattern, &name),
                glob_general(&pattern, &name),
                "{:?} {:?}",
                String::from_utf8_lossy(&pattern),
                String::from_utf8_lossy(&name)
            );
        }
    }

    /// Everything `list_dir` hands over, in one list.
    fn list_all(dir: &Path, ignore: &[String]) -> (Vec<Found>, Listing) {
        let mut all = Vec::new();
        let listing = list_dir(dir, ignore, 2, |batch, listing| {
            assert!(batch.len() <= 2);
            all.extend(look_at(dir, batch, listing));
            Ok::<_, ()>(())
        })
        .unwrap();
        (all, listing)
    }

    #[test]
    fn listing_classifies_and_never_follows_links() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::write(d.join("a.wav"), b"x").unwrap();
        fs::write(d.join(".hidden"), b"x").unwrap();
        fs::create_dir(d.join("MP3")).unwrap();
        std::os::unix::fs::symlink("/etc/shadow", d.join("evil.wav")).unwrap();
        let c = std::ffi::CString::new(d.join("pipe.wav").as_os_str().as_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let (found, listing) = list_all(d, &[".*".to_string()]);
        let names: Vec<_> = found
            .iter()
            .filter_map(|f| f.as_ref().ok())
            .map(|f| f.name.clone())
            .collect();
        assert_eq!(names, vec![b"a.wav".to_vec()]);
        let mut kinds: Vec<_> = found
            .iter()
            .filter_map(|f| f.as_ref().err())
            .map(|(f, k)| (f.name.clone(), *k))
            .collect();
        kinds.sort();
        assert_eq!(kinds.len(), 2);
        assert!(kinds[0].1.starts_with("symlink"));
        assert!(kinds[1].1.starts_with("FIFO"));
        assert!(listing.complete && listing.error.is_none());
        assert_eq!(listing.entries, 3);
        assert_eq!(listing.folders, Some(vec![std::ffi::OsString::from("MP3")]));
    }

    /// Entries come in name order, in batches of at most the size asked
    /// for, each exactly once, whatever order the directory lists them in.
    #[test]
    fn entries_are_handed_over_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = fastrand::Rng::with_seed(18);
        let mut names: Vec<String> = (0..300)
            .map(|i| format!("{:08x}-{i}.wav", rng.u32(..)))
            .collect();
        for name in &names {
            fs::write(dir.path().join(name), b"x").unwrap();
        }
        let (found, listing) = list_all(dir.path(), &[]);
        let got: Vec<_> = found
            .iter()
            .map(|f| String::from_utf8(f.as_ref().unwrap().name.clone()).unwrap())
            .collect();
        names.sort();
        assert_eq!(got, names);
        assert_eq!(listing.entries, 300);
        assert!(listing.complete);
    }

    /// Ordering by the key first, then the name, is ordering by the name:
    /// for short names, names with zero bytes or high bytes, long prefixes.
    #[test]
    fn sort_keys_order_names_as_their_bytes_do() {
        let mut rng = fastrand::Rng::with_seed(18);
        let mut names: Vec<Vec<u8>> = (0..5_000)
            .map(|_| {
                let mut n = b"20260301-1015".to_vec();
                n.truncate(rng.usize(0..14));
                n.extend((0..rng.usize(0..8)).map(|_| [0u8, 1, b'0', b'9', 0xff][rng.usize(0..5)]));
                n
            })
            .collect();
        let mut keyed = names.clone();
        keyed.sort_unstable_by(|a, b| sort_key(a).cmp(&sort_key(b)).then_with(|| a.cmp(b)));
        names.sort();
        assert_eq!(keyed, names);
    }

    /// Folder names are kept up to [`FOLDERS_NAMED`]; past that, none.
    #[test]
    fn folder_names_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..FOLDERS_NAMED {
            fs::create_dir(dir.path().join(format!("f{i}"))).unwrap();
        }
        let (_, listing) = list_all(dir.path(), &[]);
        assert_eq!(listing.folders.map(|f| f.len()), Some(FOLDERS_NAMED));
        fs::create_dir(dir.path().join("one-more")).unwrap();
        let (_, listing) = list_all(dir.path(), &[]);
        assert_eq!(listing.folders, None);
    }

    #[test]
    fn missing_dir_is_reported_not_fatal() {
        let (found, listing) = list_all(Path::new("/nonexistent/recvault"), &[]);
        assert!(found.is_empty() && !listing.complete);
        assert!(listing.error.is_some());
    }
}
