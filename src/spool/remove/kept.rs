//! The holding folder the archive step's removals share, one per spool
//! directory, kept from one removal to the next while archiving goes on.
//! A folder made and removed for each file (two directories created and
//! removed per recording) was a fifth of the archive's CPU on a backlog of
//! small recordings (perf: mkdirat, rmdir and ext4's inode allocator).
//! Files in it have distinct names: two local recordings never share a
//! path, and a name already there (or the folder gone) makes the removal
//! fall back to a folder of its own. [`release`] removes the folders once
//! the work in flight is done, so the spool shows nothing of recvault's
//! between bursts; a crash leaves one behind for `recover`, like any
//! removal cut short.

use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, MutexGuard};

use super::Holding;

/// A kept folder and the spool directory it lies in.
struct Kept {
    dev: u64,
    ino: u64,
    dir: OwnedFd,
    holding: Arc<Holding>,
}

static KEPT: Mutex<Vec<Kept>> = Mutex::new(Vec::new());

fn kept() -> MutexGuard<'static, Vec<Kept>> {
    // Nothing is left half-changed in the list by a panic.
    KEPT.lock().unwrap_or_else(|e| e.into_inner())
}

/// The kept folder of the spool directory `dir_fd` (device `dev`, inode
/// `ino`), made if there is none; `None` if it cannot be made (the caller
/// makes a folder of its own).
pub(super) fn holding(dir_fd: &OwnedFd, dev: u64, ino: u64) -> Option<Arc<Holding>> {
    let mut kept = kept();
    if let Some(k) = kept.iter().find(|k| k.dev == dev && k.ino == ino) {
        return Some(k.holding.clone());
    }
    let dir = dir_fd.try_clone().ok()?;
    let holding = Arc::new(Holding::make(dir_fd).ok()?);
    kept.push(Kept {
        dev,
        ino,
        dir,
        holding: holding.clone(),
    });
    Some(holding)
}

/// Stops using the kept folder of that spool directory (it failed a
/// removal: removed under us, or a name already in it), removing it if empty.
pub(super) fn forget(dev: u64, ino: u64) {
    let mut kept = kept();
    if let Some(at) = kept.iter().position(|k| k.dev == dev && k.ino == ino) {
        let k = kept.swap_remove(at);
        k.holding.discard(&k.dir);
    }
}

/// Removes every kept folder (each only if empty: a removal still using
/// one falls back to a folder of its own). Called when no archive step is
/// in flight.
pub fn release() {
    for k in kept().drain(..) {
        k.holding.discard(&k.dir);
    }
}
