//! The spool on disk: finding recordings in the configured directories
//! (here), asking the kernel whether one is still being written
//! (`writers`), and removing a local copy so that the removal itself proves
//! it removes the file that was archived (`remove`). Never follows symlinks
//! and never leaves the configured directories. Used by the pipeline
//! (intake, the local delete) and by retention.

use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use crate::ledger::SpoolFile;
use crate::recording::FileIdentity;

mod remove;
mod writers;

pub use remove::{
    REMOVING, REPLACED, erase_local_copy, recover as recover_removals, remove_local_copy,
};
pub use writers::being_written;

/// What a scan found in the spool directories.
#[derive(Debug, Default)]
pub struct Scan {
    /// Regular files that may be recordings.
    pub files: Vec<SpoolFile>,
    /// Symlinks, FIFOs, sockets and devices: never read, recorded as quarantined.
    pub specials: Vec<(SpoolFile, &'static str)>,
    /// Directories that could be listed (only their missing files count as gone).
    pub listed_dirs: Vec<PathBuf>,
    /// Directories that could not be listed, with the reason.
    pub unreadable: Vec<(PathBuf, io::Error)>,
}

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
pub fn inspect(path: &Path) -> io::Result<Option<Result<SpoolFile, (SpoolFile, &'static str)>>> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let file = SpoolFile {
        path: path.to_path_buf(),
        name: path
            .file_name()
            .map(|n| n.as_bytes().to_vec())
            .unwrap_or_default(),
        identity: FileIdentity::of(&meta),
    };
    let ft = meta.file_type();
    Ok(if ft.is_dir() {
        None
    } else if ft.is_file() {
        Some(Ok(file))
    } else if ft.is_symlink() {
        Some(Err((file, "symlink (never followed)")))
    } else if ft.is_fifo() {
        Some(Err((file, "FIFO (never read)")))
    } else if ft.is_socket() {
        Some(Err((file, "socket (never read)")))
    } else {
        Some(Err((file, "device node (never read)")))
    })
}

/// Lists every configured directory (not recursively).
pub fn scan(dirs: &[PathBuf], ignore: &[String]) -> Scan {
    let mut out = Scan::default();
    for dir in dirs {
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => {
                out.unreadable.push((dir.clone(), e));
                continue;
            }
        };
        let mut complete = true;
        for entry in entries {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    out.unreadable.push((dir.clone(), e));
                    complete = false;
                    break;
                }
            };
            if ignored(ignore, entry.file_name().as_bytes()) {
                continue;
            }
            match inspect(&entry.path()) {
                Ok(Some(Ok(file))) => out.files.push(file),
                Ok(Some(Err(special))) => out.specials.push(special),
                Ok(None) => {}
                // Vanished or unreadable between listing and stat: the next scan sees it.
                Err(_) => complete = false,
            }
        }
        if complete {
            out.listed_dirs.push(dir.clone());
        }
    }
    out
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

    #[test]
    fn scan_classifies_and_never_follows_links() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::write(d.join("a.wav"), b"x").unwrap();
        fs::write(d.join(".hidden"), b"x").unwrap();
        fs::create_dir(d.join("MP3")).unwrap();
        std::os::unix::fs::symlink("/etc/shadow", d.join("evil.wav")).unwrap();
        let c = std::ffi::CString::new(d.join("pipe.wav").as_os_str().as_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let s = scan(&[d.to_path_buf()], &[".*".to_string()]);
        let names: Vec<_> = s.files.iter().map(|f| f.name.clone()).collect();
        assert_eq!(names, vec![b"a.wav".to_vec()]);
        let mut kinds: Vec<_> = s
            .specials
            .iter()
            .map(|(f, k)| (f.name.clone(), *k))
            .collect();
        kinds.sort();
        assert_eq!(kinds.len(), 2);
        assert!(kinds[0].1.starts_with("symlink"));
        assert!(kinds[1].1.starts_with("FIFO"));
        assert_eq!(s.listed_dirs, vec![d.to_path_buf()]);
    }

    #[test]
    fn missing_dir_is_reported_not_fatal() {
        let s = scan(&[PathBuf::from("/nonexistent/recvault")], &[]);
        assert_eq!(s.unreadable.len(), 1);
        assert!(s.listed_dirs.is_empty());
    }
}
