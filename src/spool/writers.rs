//! Whether anyone is still writing a spool file, asked of the kernel: a read
//! lease (`fcntl(F_SETLEASE, F_RDLCK)`) is refused with `EAGAIN` while any
//! process, of any user, has the file open for writing. The lease is let go
//! at once: it is a question, not a lock. Taking one needs `CAP_LEASE`
//! (granted in the systemd unit) unless recvault owns the file; where it
//! cannot be taken (no capability, a file system without leases) /proc is
//! scanned instead, which sees only recvault's own user's processes — logged
//! once, since the settle time is then the main guard.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::recording::FileIdentity;

/// What the kernel said about one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lease {
    /// Nobody has it open for writing (or it is gone: the next step sees that).
    Free,
    /// Somebody has it open for writing.
    Writing,
    /// No lease could be taken: the question was not answered.
    Unanswered,
}

/// Of `files` (id, path, identity), the ids some process has open for writing.
pub fn being_written(files: &[(i64, &Path, FileIdentity)]) -> HashSet<i64> {
    let mut writing = HashSet::new();
    let mut unanswered = Vec::new();
    for &(id, path, identity) in files {
        match lease(path) {
            Lease::Free => {}
            Lease::Writing => {
                writing.insert(id);
            }
            Lease::Unanswered => unanswered.push((id, identity)),
        }
    }
    if !unanswered.is_empty() {
        let ids: HashSet<(u64, u64)> = unanswered.iter().map(|(_, i)| (i.dev, i.ino)).collect();
        let open = open_for_writing_by_proc(&ids);
        writing.extend(
            unanswered
                .iter()
                .filter(|(_, i)| open.contains(&(i.dev, i.ino)))
                .map(|(id, _)| *id),
        );
    }
    writing
}

/// Asks for a read lease on `path` and lets it go.
fn lease(path: &Path) -> Lease {
    static IGNORE_SIGIO: Once = Once::new();
    // A writer opening the file while the lease is held makes the kernel
    // signal us (SIGIO, whose default is to terminate); the lease is
    // released at once anyway, so the signal is ignored.
    IGNORE_SIGIO.call_once(|| {
        // SAFETY: setting a signal's disposition to "ignore".
        unsafe { libc::signal(libc::SIGIO, libc::SIG_IGN) };
    });
    // NONBLOCK: never wait on another's lease; NOFOLLOW: never a link.
    let file = match fs::File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_NOCTTY)
        .open(path)
    {
        Ok(f) => f,
        // Gone, or a link now: the next step sees what it is.
        Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ELOOP) => {
            return Lease::Free;
        }
        Err(e) => return unanswered(path, &e),
    };
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a file descriptor we own.
    if unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_RDLCK) } == 0 {
        // SAFETY: as above; closing would release it too.
        unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_UNLCK) };
        return Lease::Free;
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EAGAIN) => Lease::Writing,
        _ => unanswered(path, &e),
    }
}

/// Logs, once per process, that leases cannot be taken, and why.
fn unanswered(path: &Path, e: &io::Error) -> Lease {
    static LOGGED: AtomicBool = AtomicBool::new(false);
    if !LOGGED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            path = %path.display(),
            "cannot take a file lease ({e}): whether another user's process is still writing a recording is not known (the unit grants CAP_LEASE for this); the settle time is the guard"
        );
    }
    Lease::Unanswered
}

/// Of the given (dev, inode) pairs, those some process has open for writing,
/// read from /proc: the fallback where leases cannot be taken. It sees only
/// processes recvault may inspect (its own user's; under the unit's
/// `ProtectProc=invisible`, not even those).
fn open_for_writing_by_proc(candidates: &HashSet<(u64, u64)>) -> HashSet<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let mut found = HashSet::new();
    if candidates.is_empty() {
        return found;
    }
    let Ok(procs) = fs::read_dir("/proc") else {
        return found;
    };
    for proc_entry in procs.flatten() {
        let pid = proc_entry.file_name();
        if !pid.as_bytes().iter().all(u8::is_ascii_digit) {
            continue;
        }
        let fd_dir = proc_entry.path().join("fd");
        let Ok(fds) = fs::read_dir(&fd_dir) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(meta) = fs::metadata(fd.path()) else {
                continue;
            };
            let id = (meta.dev(), meta.ino());
            if !candidates.contains(&id) {
                continue;
            }
            let info = proc_entry.path().join("fdinfo").join(fd.file_name());
            let Ok(text) = fs::read_to_string(info) else {
                continue;
            };
            let flags = text
                .lines()
                .find_map(|l| l.strip_prefix("flags:"))
                .and_then(|f| u32::from_str_radix(f.trim(), 8).ok())
                .unwrap_or(0);
            let mode = flags & libc::O_ACCMODE as u32;
            if mode == libc::O_WRONLY as u32 || mode == libc::O_RDWR as u32 {
                found.insert(id);
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::path::PathBuf;

    fn file(dir: &Path, name: &str) -> (PathBuf, FileIdentity) {
        let path = dir.join(name);
        fs::write(&path, b"abc").unwrap();
        let id = FileIdentity::of(&fs::metadata(&path).unwrap());
        (path, id)
    }

    #[test]
    fn a_writer_is_seen_and_a_reader_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let (path, id) = file(dir.path(), "growing.wav");
        let files = [(7, path.as_path(), id)];
        let mut writer = fs::File::options().append(true).open(&path).unwrap();
        writer.write_all(b"more").unwrap();
        let _reader = fs::File::open(&path).unwrap();
        assert_eq!(lease(&path), Lease::Writing);
        assert_eq!(being_written(&files), HashSet::from([7]));
        drop(writer);
        assert_eq!(lease(&path), Lease::Free);
        assert!(being_written(&files).is_empty());
    }

    #[test]
    fn gone_files_and_links_are_not_being_written() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(lease(&dir.path().join("nothing.wav")), Lease::Free);
        let (target, _) = file(dir.path(), "t.wav");
        let link = dir.path().join("link.wav");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        // A link is never opened (ELOOP), never followed: the archive step
        // finds the recording changed.
        assert_eq!(lease(&link), Lease::Free);
    }

    #[test]
    fn the_proc_fallback_sees_our_own_writers() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = file(dir.path(), "w.wav");
        let f = fs::File::options().write(true).open(&path).unwrap();
        let m = fs::metadata(&path).unwrap();
        let id = (m.dev(), m.ino());
        assert!(open_for_writing_by_proc(&HashSet::from([id])).contains(&id));
        drop(f);
        assert!(!open_for_writing_by_proc(&HashSet::from([id])).contains(&id));
    }
}
