//! The fsync that makes a `verified` commit durable, done outside the
//! write lock. SQLite's `synchronous=FULL` syncs the log inside the
//! commit, holding the write lock for the whole fsync (~5 ms on this
//! disk): every other change — another recording compressed, a local copy
//! recorded removed — waited behind it, and the archive's rate was capped
//! by one durable commit at a time. The `verified` commit is now an
//! ordinary (`NORMAL`) commit, whose frames are written to the log before
//! it returns; the log is then synced here, after the write lock is given
//! back, and no outcome of that commit is returned (so nothing is deleted
//! on its strength) before the sync is done. One sync serves every commit
//! written before it started.
//!
//! A failed sync is not retried: the log's pages may be lost, so every
//! later sync fails too, and nothing is deleted on the ledger's word until
//! recvault restarts (SQLite then reads the log as the disk has it).

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::LedgerError;
use super::group::lock;

/// The ledger's write-ahead log, synced on demand.
pub(super) struct WalSync {
    /// `{ledger}-wal`.
    path: PathBuf,
    /// `verified` commits written to the log so far (counted under the
    /// write lock, right after each).
    written: AtomicU64,
    state: Mutex<Synced>,
}

#[derive(Default)]
struct Synced {
    /// Every commit up to this count is on disk.
    through: u64,
    /// The log, open, with its device and inode (a log removed and made
    /// again is opened again).
    file: Option<(File, u64, u64)>,
    /// Why a sync failed, if one did.
    failed: Option<String>,
}

impl WalSync {
    pub(super) fn new(ledger: &Path) -> WalSync {
        let mut path = ledger.as_os_str().to_owned();
        path.push("-wal");
        WalSync {
            path: path.into(),
            written: AtomicU64::new(0),
            state: Mutex::new(Synced::default()),
        }
    }

    /// Counts a `verified` commit just written (under the write lock).
    /// Returns its number, for [`WalSync::sync_through`].
    pub(super) fn written(&self) -> u64 {
        self.written.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Returns once commit `n` and every one before it are on disk.
    pub(super) fn sync_through(&self, n: u64) -> Result<(), LedgerError> {
        let mut state = lock(&self.state);
        if let Some(why) = &state.failed {
            return Err(LedgerError::NotDurable(why.clone()));
        }
        if state.through >= n {
            return Ok(()); // a sync that started after it was written is done
        }
        // Every commit counted by now wrote its frames before this sync.
        let target = self.written.load(Ordering::SeqCst);
        self.sync(&mut state)?;
        state.through = state.through.max(target);
        Ok(())
    }

    /// Syncs the log now: whatever this process or an earlier one
    /// committed is on disk when it returns (no count is ever that high).
    pub(super) fn sync_now(&self) -> Result<(), LedgerError> {
        self.sync_through(u64::MAX)
    }

    fn sync(&self, state: &mut Synced) -> Result<(), LedgerError> {
        let result = self.open(state).and_then(|file| match file {
            Some(file) => file.sync_data(),
            None => Ok(()), // no log: nothing was written since it was checkpointed away
        });
        result.map_err(|e| {
            let why = format!("{}: {e}", self.path.display());
            state.failed = Some(why.clone());
            LedgerError::NotDurable(why)
        })
    }

    /// The log, opened again if the one open is not the one at its path.
    fn open<'a>(&self, state: &'a mut Synced) -> std::io::Result<Option<&'a File>> {
        let now = match std::fs::metadata(&self.path) {
            Ok(m) => (m.dev(), m.ino()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let same = matches!(&state.file, Some((_, dev, ino)) if (*dev, *ino) == now);
        if !same {
            let file = File::open(&self.path)?;
            let m = file.metadata()?;
            state.file = Some((file, m.dev(), m.ino()));
        }
        Ok(state.file.as_ref().map(|(f, _, _)| f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn through(wal: &WalSync) -> u64 {
        wal.state.lock().unwrap().through
    }

    #[test]
    fn one_sync_serves_every_commit_written_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = dir.path().join("l.sqlite3");
        std::fs::write(dir.path().join("l.sqlite3-wal"), b"frames").unwrap();
        let wal = WalSync::new(&ledger);
        let (first, second) = (wal.written(), wal.written());
        wal.sync_through(first).unwrap();
        assert_eq!(
            through(&wal),
            second,
            "the second was written before the sync"
        );
        wal.sync_through(second).unwrap();
        let third = wal.written();
        assert_eq!(through(&wal), second);
        wal.sync_through(third).unwrap();
        assert_eq!(through(&wal), third);
    }

    #[test]
    fn a_failed_sync_fails_every_later_one() {
        let dir = tempfile::tempdir().unwrap();
        // The log's directory is a file: the log cannot be looked at.
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        let wal = WalSync::new(&file.join("l.sqlite3"));
        let n = wal.written();
        let first = wal.sync_through(n);
        assert!(
            matches!(first, Err(LedgerError::NotDurable(_))),
            "{first:?}"
        );
        // Nothing new to sync, and asked to sync now: both refused.
        assert!(matches!(
            wal.sync_through(0),
            Err(LedgerError::NotDurable(_))
        ));
        assert!(matches!(wal.sync_now(), Err(LedgerError::NotDurable(_))));
        assert_eq!(through(&wal), 0);
    }
}
