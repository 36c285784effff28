//! Watching the spool with inotify: which directories are watched, and the
//! events that name files (or say a rescan is needed). A directory deleted
//! and re-created loses its watch; [`SpoolWatch::rewatch`] puts it back.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::error::Error;

/// What an inotify event tells the daemon.
#[derive(Debug)]
pub enum Seen {
    /// Something happened to this path.
    Path(PathBuf),
    /// Events were lost (overflow, watch error): list everything again.
    Rescan,
}

/// The spool directories' watches and their events.
pub struct SpoolWatch {
    watcher: RecommendedWatcher,
    watched: HashSet<PathBuf>,
    pub events: mpsc::UnboundedReceiver<Seen>,
}

impl SpoolWatch {
    /// Starts the watcher (no directory watched yet).
    pub fn start() -> Result<SpoolWatch, Error> {
        let (tx, events) = mpsc::unbounded_channel();
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let Ok(event) = res else {
                let _ = tx.send(Seen::Rescan);
                return;
            };
            if event.need_rescan() {
                let _ = tx.send(Seen::Rescan);
            }
            let read_only = matches!(
                event.kind,
                EventKind::Access(
                    notify::event::AccessKind::Open(_) | notify::event::AccessKind::Read
                )
            );
            if !read_only {
                for path in event.paths {
                    let _ = tx.send(Seen::Path(path));
                }
            }
        })
        .map_err(|e| Error::Local(format!("cannot start the spool watcher: {e}")))?;
        Ok(SpoolWatch {
            watcher,
            watched: HashSet::new(),
            events,
        })
    }

    /// Forgets the watch of `dir` (an event named the directory itself: it
    /// was deleted or moved away, so its watch is gone).
    pub fn lost(&mut self, dir: &Path) {
        self.watched.remove(dir);
    }

    /// Watches exactly `dirs`: drops watches of directories no longer
    /// configured, (re)watches configured ones that exist. Returns true if
    /// every configured directory is watched.
    pub fn rewatch(&mut self, dirs: &[PathBuf]) -> bool {
        for dir in self.watched.clone() {
            if !dirs.contains(&dir) {
                let _ = self.watcher.unwatch(&dir);
                self.watched.remove(&dir);
            }
        }
        for dir in dirs {
            if !dir.is_dir() {
                self.watched.remove(dir);
            } else if !self.watched.contains(dir) {
                let _ = self.watcher.unwatch(dir);
                match self.watcher.watch(dir, RecursiveMode::NonRecursive) {
                    Ok(()) => {
                        self.watched.insert(dir.clone());
                    }
                    Err(e) => {
                        tracing::warn!(dir = %dir.display(), "cannot watch spool directory (rescans still find files): {e}")
                    }
                }
            }
        }
        dirs.iter().all(|d| self.watched.contains(d))
    }
}
