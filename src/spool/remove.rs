//! Removing a recording's local copy so that the removal itself proves it
//! removes the file that was archived. Checking a path and then unlinking it
//! leaves a window in which another file can be renamed over the name and
//! be deleted unarchived. Instead the name is first renamed — atomically,
//! never replacing anything — into a folder of its own inside
//! `.recvault-removing/` in the same spool directory (so on the same
//! filesystem); the file now held there, which nobody else can rename away,
//! is compared with the archived identity and unlinked only if it matches.
//! Anything else goes back under its name (or, if a new file took the name
//! meanwhile, beside it under another). A crash in between leaves the file
//! in `.recvault-removing/`; [`recover`] puts it back at the next start and
//! the removal is simply done again.

use std::ffi::{CString, OsStr, OsString};
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::recording::FileIdentity;

mod kept;
#[cfg(test)]
mod tests;

pub use kept::release as release_kept_folders;

/// The private folder, inside each spool directory, that removals pass through.
pub const REMOVING: &str = ".recvault-removing";

/// The local copy was the archived file, and is gone now.
pub const ARCHIVED: &str = "archived";
/// Nothing was at the recording's path.
pub const ALREADY_GONE: &str = "local copy already gone";
/// Another file holds the recording's name; it stays.
pub const REPLACED: &str =
    "local file was replaced after archiving; the new file is a new recording";

/// An erasure found the recording's file changed since it was taken in,
/// and removed it too.
pub const CHANGED: &str = "local file had changed since it was taken in; removed too \
     (it is the file at the recording's path, under the name the request matched)";

/// Which file at a recording's path a removal takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Takes {
    /// Only the file that was archived (same identity).
    Archived,
    /// Any regular file there (an erasure: a file that changed since it was
    /// taken in still holds the call; a link or a folder is never taken).
    AnyFile,
}

/// Removes a recording's local file if it is still the file that was
/// recorded (same identity) and lies in a spool directory. A file replaced
/// since is a new recording and stays. Returns what happened ([`ARCHIVED`],
/// [`ALREADY_GONE`] or [`REPLACED`]).
pub fn remove_local_copy(
    dirs: &[PathBuf],
    path: &Path,
    expected: FileIdentity,
) -> Result<&'static str, String> {
    remove_with(dirs, path, expected, Takes::Archived, || {})
}

/// Like [`remove_local_copy`], for the archive step right after `verified`
/// was committed (`FULL`) and the store proved the object: the removal is
/// not fsynced. Power lost before it reaches the disk can only bring the
/// file back, never lose one: it is then found again (archived again if the
/// ledger already recorded it as removed). Retention and erasure, whose
/// removals must not come back, keep theirs synced.
pub fn remove_archived_copy(
    dirs: &[PathBuf],
    path: &Path,
    expected: FileIdentity,
) -> Result<&'static str, String> {
    remove_synced_or_not(dirs, path, expected, Takes::Archived, false, || {})
}

/// Removes the regular file at a local recording's path for its erasure,
/// the file that was recorded ([`ARCHIVED`]) or one that changed since
/// ([`CHANGED`]: the ledger gives a local recording's path to no other
/// recording, so it is still this call). Something else there (a link, a
/// folder) stays ([`REPLACED`]); nothing there is [`ALREADY_GONE`].
pub fn erase_local_copy(
    dirs: &[PathBuf],
    path: &Path,
    expected: FileIdentity,
) -> Result<&'static str, String> {
    remove_with(dirs, path, expected, Takes::AnyFile, || {})
}

/// The removal the above do (fsynced), running `last_moment` after the
/// first look at the file and before the rename: where a test swaps
/// another file in.
pub(super) fn remove_with(
    dirs: &[PathBuf],
    path: &Path,
    expected: FileIdentity,
    takes: Takes,
    last_moment: impl FnOnce(),
) -> Result<&'static str, String> {
    remove_synced_or_not(dirs, path, expected, takes, true, last_moment)
}

/// [`remove_with`], its unlink fsynced (`sync`) or not.
fn remove_synced_or_not(
    dirs: &[PathBuf],
    path: &Path,
    expected: FileIdentity,
    takes: Takes,
    sync: bool,
    last_moment: impl FnOnce(),
) -> Result<&'static str, String> {
    let taken = |st: &libc::stat| match takes {
        Takes::Archived => matches_identity(st, expected),
        Takes::AnyFile => (st.st_mode & libc::S_IFMT) == libc::S_IFREG,
    };
    let outside = || {
        format!(
            "{} is not in a configured spool directory; not deleting it",
            path.display()
        )
    };
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(outside());
    };
    let cannot = |e: io::Error| format!("cannot delete {}: {e}", path.display());
    let dir_fd = match open_dir(None, dir.as_os_str(), false) {
        Ok(fd) => fd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(ALREADY_GONE),
        Err(e) => return Err(cannot(e)),
    };
    // The directory actually opened, not its name, must be a spool directory.
    let st = fstat(&dir_fd).map_err(cannot)?;
    if !is_spool_dir(dirs, st.st_dev, st.st_ino) {
        return Err(outside());
    }
    match stat_at(&dir_fd, name) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(ALREADY_GONE),
        Err(e) => return Err(cannot(e)),
        Ok(st) if !taken(&st) => return Ok(REPLACED),
        Ok(_) => {}
    }
    last_moment();
    let held = Held {
        dir_fd: &dir_fd,
        name,
        taken: &taken,
        expected,
    };
    // The archive step's removals share one kept folder (see `kept`); any
    // trouble with it (removed under us) and the removal makes its own.
    if !sync && let Some(kept) = kept::holding(&dir_fd, st.st_dev, st.st_ino) {
        match rename_noreplace(&dir_fd, name, &kept.fd, name) {
            Ok(()) => return held.decide(&kept, false, false).map_err(cannot),
            Err(_) => kept::forget(st.st_dev, st.st_ino),
        }
    }
    let holding = Holding::make(&dir_fd).map_err(cannot)?;
    if let Err(e) = rename_noreplace(&dir_fd, name, &holding.fd, name) {
        holding.discard(&dir_fd);
        return match e.kind() {
            io::ErrorKind::NotFound => Ok(ALREADY_GONE),
            _ => Err(cannot(e)),
        };
    }
    held.decide(&holding, sync, true).map_err(cannot)
}

/// A file renamed into a holding folder, and what a removal may take.
struct Held<'a, F: Fn(&libc::stat) -> bool> {
    dir_fd: &'a OwnedFd,
    name: &'a OsStr,
    taken: &'a F,
    expected: FileIdentity,
}

impl<F: Fn(&libc::stat) -> bool> Held<'_, F> {
    /// Only this process can reach the file in `holding` now: what it is
    /// decides whether it is unlinked (fsynced if `sync`) or put back.
    /// `own`: the folder is this removal's, discarded after it.
    fn decide(&self, holding: &Holding, sync: bool, own: bool) -> io::Result<&'static str> {
        let (dir_fd, name) = (self.dir_fd, self.name);
        let held = stat_at(&holding.fd, name);
        if let Some(st) = held.ok().filter(|st| (self.taken)(st)) {
            let what = match matches_identity(&st, self.expected) {
                true => ARCHIVED,
                false => CHANGED,
            };
            unlink_at(&holding.fd, name)?;
            if sync {
                fsync(&holding.fd)?;
            }
            if own {
                holding.discard(dir_fd);
            }
            if sync {
                fsync(dir_fd)?;
            }
            return Ok(what);
        }
        put_back(holding, dir_fd, name)?;
        if own {
            holding.discard(dir_fd);
        }
        Ok(REPLACED)
    }
}

/// Moves every file a crashed removal left in `.recvault-removing/` back
/// into its spool directory, under its own name if that is free, else
/// under a `recvault-kept-…` name beside it (it is then a new recording).
/// Only the folders a removal makes there (`<16 hex digits>/`) are looked
/// into; anything else in `.recvault-removing/`, or a link in its place,
/// is left as it is. Returns the paths files were put back under.
pub fn recover(dirs: &[PathBuf]) -> Vec<Result<PathBuf, String>> {
    let mut out = Vec::new();
    for dir in dirs {
        let holdings = dir.join(REMOVING);
        if !fs::symlink_metadata(&holdings).is_ok_and(|m| m.is_dir()) {
            continue;
        }
        let Ok(entries) = fs::read_dir(&holdings) else {
            continue;
        };
        let Ok(dir_fd) = open_dir(None, dir.as_os_str(), false) else {
            continue;
        };
        for entry in entries.flatten() {
            let sub = entry.file_name();
            if !is_holding_name(&sub) {
                continue;
            }
            let Ok(fd) = open_dir(Some(&dir_fd), holdings_name(&sub).as_os_str(), true) else {
                continue;
            };
            let holding = Holding { fd, name: sub };
            let Ok(files) = fs::read_dir(holdings.join(&holding.name)) else {
                continue;
            };
            for file in files.flatten() {
                let name = file.file_name();
                out.push(
                    put_back(&holding, &dir_fd, &name)
                        .map_err(|e| format!("{}: {e}", file.path().display())),
                );
            }
            holding.discard(&dir_fd);
        }
    }
    out
}

/// True if the directory with this device and inode is one of the
/// configured ones, whatever path led to either.
pub fn is_spool_dir(dirs: &[PathBuf], dev: u64, ino: u64) -> bool {
    use std::os::unix::fs::MetadataExt;
    dirs.iter()
        .any(|d| fs::metadata(d).is_ok_and(|m| m.is_dir() && m.dev() == dev && m.ino() == ino))
}

/// One removal's own folder, `.recvault-removing/<random>/` (or the one
/// the archive step's removals share: `kept`).
struct Holding {
    fd: OwnedFd,
    name: OsString,
}

/// True for a name [`Holding::make`] gives: 16 lowercase hex digits.
fn is_holding_name(name: &OsStr) -> bool {
    let b = name.as_bytes();
    b.len() == 16 && b.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

impl Holding {
    fn make(dir_fd: &OwnedFd) -> io::Result<Holding> {
        let name = OsString::from(format!("{:016x}", fastrand::u64(..)));
        let mut tries = 0;
        loop {
            match mkdir_at(dir_fd, OsStr::new(REMOVING)) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
                _ => {}
            }
            match mkdir_at(dir_fd, holdings_name(&name).as_os_str()) {
                // Another removal just took `.recvault-removing/` away, empty.
                Err(e) if e.kind() == io::ErrorKind::NotFound && tries < 3 => tries += 1,
                other => break other?,
            }
        }
        // NOFOLLOW: a link planted in its place must not lead elsewhere.
        let fd = open_dir(Some(dir_fd), holdings_name(&name).as_os_str(), true)?;
        Ok(Holding { fd, name })
    }

    /// Removes the (empty) folder, and `.recvault-removing/` itself once no
    /// other removal uses it, so the spool shows nothing of recvault's
    /// between removals (VICIdial's scripts and Apache list it). A leftover
    /// is harmless and retried by [`recover`].
    fn discard(&self, dir_fd: &OwnedFd) {
        for path in [holdings_name(&self.name), PathBuf::from(REMOVING)] {
            let path = cstring(path.as_os_str());
            // SAFETY: valid fd and NUL-terminated path; ENOTEMPTY is fine.
            unsafe { libc::unlinkat(dir_fd.as_raw_fd(), path.as_ptr(), libc::AT_REMOVEDIR) };
        }
    }
}

/// `.recvault-removing/<name>`, relative to the spool directory.
fn holdings_name(name: &OsStr) -> PathBuf {
    Path::new(REMOVING).join(name)
}

/// Renames `name` from the holding back into the spool directory, never
/// replacing a file that took the name meanwhile.
fn put_back(holding: &Holding, dir_fd: &OwnedFd, name: &OsStr) -> io::Result<PathBuf> {
    let back = match rename_noreplace(&holding.fd, name, dir_fd, name) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let kept = OsString::from(format!(
                "recvault-kept-{}-{:08x}",
                holding.name.to_string_lossy(),
                fastrand::u32(..)
            ));
            rename_noreplace(&holding.fd, name, dir_fd, &kept)?;
            kept
        }
        other => other.map(|()| name.to_os_string())?,
    };
    fsync(dir_fd)?;
    Ok(PathBuf::from(back))
}

fn matches_identity(st: &libc::stat, expected: FileIdentity) -> bool {
    (st.st_mode & libc::S_IFMT) == libc::S_IFREG && identity(st) == expected
}

fn identity(st: &libc::stat) -> FileIdentity {
    FileIdentity {
        dev: st.st_dev,
        ino: st.st_ino,
        size: st.st_size as u64,
        mtime_ns: st
            .st_mtime
            .saturating_mul(1_000_000_000)
            .saturating_add(st.st_mtime_nsec),
    }
}

fn cstring(s: &OsStr) -> CString {
    // A path from the file system or our own format!: no NUL inside.
    CString::new(s.as_bytes()).unwrap_or_default()
}

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Opens a directory (relative to `at` if given); `nofollow` refuses a link.
fn open_dir(at: Option<&OwnedFd>, path: &OsStr, nofollow: bool) -> io::Result<OwnedFd> {
    let c = cstring(path);
    let mut flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
    if nofollow {
        flags |= libc::O_NOFOLLOW;
    }
    let at = at.map_or(libc::AT_FDCWD, |fd| fd.as_raw_fd());
    // SAFETY: NUL-terminated path; the fd returned is owned here.
    let fd = unsafe { libc::openat(at, c.as_ptr(), flags) };
    check(fd)?;
    // SAFETY: a fresh fd from openat.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn fstat(fd: &OwnedFd) -> io::Result<libc::stat> {
    // SAFETY: zeroed stat is a valid out-parameter.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    check(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(st)
}

fn stat_at(dir: &OwnedFd, name: &OsStr) -> io::Result<libc::stat> {
    let c = cstring(name);
    // SAFETY: as above; AT_SYMLINK_NOFOLLOW never follows a link.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    check(unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            c.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    Ok(st)
}

fn mkdir_at(dir: &OwnedFd, name: &OsStr) -> io::Result<()> {
    let c = cstring(name);
    // SAFETY: valid fd and NUL-terminated path.
    check(unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), 0o700) })
}

fn unlink_at(dir: &OwnedFd, name: &OsStr) -> io::Result<()> {
    let c = cstring(name);
    // SAFETY: valid fd and NUL-terminated path.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), 0) })
}

/// renameat2(RENAME_NOREPLACE): fails with EEXIST instead of replacing.
fn rename_noreplace(from: &OwnedFd, name: &OsStr, to: &OwnedFd, new: &OsStr) -> io::Result<()> {
    let (a, b) = (cstring(name), cstring(new));
    // SAFETY: valid fds and NUL-terminated paths.
    check(unsafe {
        libc::renameat2(
            from.as_raw_fd(),
            a.as_ptr(),
            to.as_raw_fd(),
            b.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    })
}

fn fsync(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: a valid fd.
    check(unsafe { libc::fsync(fd.as_raw_fd()) })
}
