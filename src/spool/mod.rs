//! The spool on disk: finding recordings in the configured directories
//! (here), asking the kernel whether one is still being written
//! (`writers`), and removing a local copy so that the removal itself proves
//! it removes the file that was archived (`remove`). Never follows symlinks
//! and never leaves the configured directories. Used by the pipeline
//! (intake, the local delete) and by retention.

use std::ffi::OsString;
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
pub fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
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
/// (`d_ino`) and type (`d_type`), known without looking at the file. Held
/// with the open directory, so [`look_at`] stats it relative to that.
pub struct Entry(fs::DirEntry);

impl Entry {
    /// The entry's name in its directory.
    pub fn name(&self) -> std::ffi::OsString {
        self.0.file_name()
    }

    /// The inode the directory names for this entry.
    pub fn ino(&self) -> u64 {
        use std::os::unix::fs::DirEntryExt;
        self.0.ino()
    }

    /// True if the directory lists a regular file here. Where the file
    /// system gives no type (`DT_UNKNOWN`), std looks at the entry to tell.
    pub fn listed_as_file(&self) -> bool {
        self.0.file_type().is_ok_and(|t| t.is_file())
    }
}

/// Lists one spool directory (not recursively) without holding it: its
/// entries are handed to `visit` in batches of at most `batch`, as the
/// directory is read, so memory stays the same whatever its size. Names
/// ignored and entries the directory lists as folders are left out
/// unlooked-at. `visit` counts what it takes in `Listing::entries` and
/// marks the listing incomplete if an entry could not be looked at
/// ([`look_at`] does both); an error from it stops the listing and is
/// returned.
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
    let mut listed = Vec::with_capacity(batch);
    for entry in entries {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                listing.error = Some(e);
                listing.complete = false;
                break;
            }
        };
        if ignored(ignore, entry.file_name().as_bytes()) {
            continue;
        }
        // d_type: a folder is left out without a stat (DT_UNKNOWN: look_at decides).
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            match &mut listing.folders {
                Some(folders) if folders.len() < FOLDERS_NAMED => folders.push(entry.file_name()),
                _ => listing.folders = None,
            }
            continue;
        }
        listed.push(Entry(entry));
        if listed.len() >= batch {
            visit(
                std::mem::replace(&mut listed, Vec::with_capacity(batch)),
                &mut listing,
            )?;
        }
    }
    if !listed.is_empty() {
        visit(listed, &mut listing)?;
    }
    Ok(listing)
}

/// Looks at each of `entries` (fstatat relative to the open directory,
/// never following a link) and returns what intake takes in: files and
/// special files, each counted in `listing`. An entry that vanished since
/// it was listed, or could not be looked at, leaves `listing` incomplete
/// (the next scan sees it).
pub fn look_at(entries: impl IntoIterator<Item = Entry>, listing: &mut Listing) -> Vec<Found> {
    let mut found = Vec::new();
    for Entry(entry) in entries {
        match entry.metadata() {
            Ok(meta) => {
                if let Some(f) = classify(entry.path(), &meta) {
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
    }

    /// Everything `list_dir` hands over, in one list.
    fn list_all(dir: &Path, ignore: &[String]) -> (Vec<Found>, Listing) {
        let mut all = Vec::new();
        let listing = list_dir(dir, ignore, 2, |batch, listing| {
            assert!(batch.len() <= 2);
            all.extend(look_at(batch, listing));
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
