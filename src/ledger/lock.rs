//! Exactly one daemon per ledger: an exclusive `flock` on `<ledger>.lock`,
//! holding the owner's pid so the second one can say who is running.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// Held for the daemon's lifetime; the lock goes with the process.
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
    pub path: PathBuf,
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another recvault (pid {pid}) is already running with ledger {ledger}; stop it first (lock file {lock})"
    )]
    Held {
        pid: String,
        ledger: String,
        lock: String,
    },
    #[error("cannot open lock file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

impl InstanceLock {
    /// Takes the lock for `ledger`, or says which process holds it.
    pub fn acquire(ledger: &Path) -> Result<InstanceLock, LockError> {
        let path = PathBuf::from(format!("{}.lock", ledger.display()));
        let io_err = |source| LockError::Io {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io_err)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err)?;
        // SAFETY: flock on a valid, owned descriptor.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            return Err(LockError::Held {
                pid: pid.trim().to_string(),
                ledger: ledger.display().to_string(),
                lock: path.display().to_string(),
            });
        }
        file.set_len(0).map_err(io_err)?;
        file.seek(SeekFrom::Start(0)).map_err(io_err)?;
        writeln!(file, "{}", std::process::id()).map_err(io_err)?;
        Ok(InstanceLock { _file: file, path })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_names_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = dir.path().join("ledger.sqlite3");
        let first = InstanceLock::acquire(&ledger).unwrap();
        let err = InstanceLock::acquire(&ledger).unwrap_err().to_string();
        assert!(err.contains(&std::process::id().to_string()), "{err}");
        assert!(err.contains("ledger.sqlite3"), "{err}");
        drop(first);
        InstanceLock::acquire(&ledger).unwrap();
    }
}
