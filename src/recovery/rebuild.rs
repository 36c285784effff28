//! `recvault ledger rebuild --from-store`: a new ledger from the objects
//! themselves, for when the ledger and its backups are lost. Every object
//! carries its recording's facts as metadata (`store::meta`), so the rows of
//! archived recordings can be rebuilt: name, size, mtime, both SHA-256s,
//! codec, the id it had, and what was known of its call (campaign, agent,
//! lead, phone, call time; VICIdial's recording id), so retention keeps
//! applying the campaign's rule even where only VICIdial's database knew it.
//!
//! Legal holds come back from their newest copy in the store
//! (`recovery::hold_copy`); new ids start above every id handed out before
//! (`recovery::ids`). Not rebuilt: recordings never uploaded (their
//! files are still in the spool; the daemon takes them in again) and events
//! and audit entries before the rebuild.

use std::fs;
use std::path::{Path, PathBuf};

use super::objects::{self, StoredRecording};
use crate::config::Config;
use crate::error::Error;
use crate::ledger::Ledger;
use crate::ledger::ids::next_id_in;
use crate::ledger::lock::InstanceLock;
use crate::recording::State;
use crate::store::Store;
use crate::units::now_secs;

/// What a rebuild found.
#[derive(Debug, Clone, Default)]
pub struct RebuildReport {
    /// Objects listed under the prefix (reserved `.recvault/` keys excluded).
    pub objects: usize,
    /// Rows written.
    pub rebuilt: usize,
    /// Of those, recordings whose local copy is still in the spool (`verified`).
    pub still_local: usize,
    /// Objects of a recording besides its last upload (kept among its keys,
    /// so erasure and retention delete them too).
    pub more_keys: usize,
    /// Objects left out, with the reason.
    pub skipped: Vec<(String, String)>,
    /// Objects another host archived under the same prefix, left out.
    pub foreign: usize,
    /// Where the previous ledger was moved, if there was one.
    pub moved_aside: Option<PathBuf>,
    /// Legal holds restored from the newest hold copy in the store.
    pub holds: usize,
    /// The id the next new recording gets: above every id handed out before.
    pub next_id: i64,
}

/// Rebuilds the configured ledger from `store`. Refuses while a daemon holds
/// the ledger's lock; an existing ledger is moved aside only with `force`.
pub async fn rebuild(
    config: &Config,
    store: &dyn Store,
    prefix: &str,
    force: bool,
) -> Result<RebuildReport, Error> {
    let path = &config.ledger.path;
    let _lock = InstanceLock::acquire(path)?;
    if path.exists() && !force {
        return Err(Error::Exists {
            path: path.clone(),
            hint: "exists; pass --force to move it aside and rebuild",
        });
    }
    let tmp = PathBuf::from(format!("{}.rebuild-tmp", path.display()));
    for ext in ["", "-wal", "-shm"] {
        let _ = fs::remove_file(format!("{}{ext}", tmp.display()));
    }
    let mut report = RebuildReport::default();
    let ledger = Ledger::open(&tmp)?;
    let host = &config.daemon.host;
    let listing = objects::list(store, prefix, host, |_| Ok(false)).await?;
    report.objects = listing.objects;
    report.skipped = listing.unreadable;
    report.foreign = listing.foreign;
    // Above every id anything still knows before any row is written: rows
    // without an id of their own take the next one.
    let known = listing.recordings.iter().filter_map(|r| r.object.id).max();
    let floor = super::ids::floor(
        store,
        prefix,
        host,
        [known.map(|id| id + 1), next_id_in(path)],
    )
    .await?;
    report.next_id = ledger.raise_next_id(floor)?;
    for found in listing.recordings {
        insert(&ledger, &config.spool.dirs, found, &mut report)?;
    }
    // Legal holds come back too: their copy is kept beside the ledger backups.
    report.holds = crate::recovery::hold_copy::recover(&ledger, store, prefix, host)
        .await
        .map_err(|e| Error::HoldsNotRecovered(Box::new(e)))?;
    report.next_id = ledger.id_marks()?.next;
    drop(ledger);
    report.moved_aside = replace_ledger(path, &tmp)?;
    Ok(report)
}

/// Writes one recording's row (its id kept where free) with all its keys.
fn insert(
    ledger: &Ledger,
    dirs: &[PathBuf],
    mut found: StoredRecording,
    report: &mut RebuildReport,
) -> Result<(), Error> {
    objects::locate(dirs, &mut found.object);
    if found.object.state == State::Verified {
        report.still_local += 1;
    }
    let id = ledger.insert_archived(&found.object)?;
    for key in &found.more_keys {
        ledger.add_written_key(id, key, now_secs())?;
    }
    report.more_keys += found.more_keys.len();
    report.rebuilt += 1;
    Ok(())
}

/// Puts the rebuilt ledger `tmp` at `path`, moving an existing ledger aside
/// (returned) first.
fn replace_ledger(path: &Path, tmp: &Path) -> Result<Option<PathBuf>, Error> {
    let mut moved_aside = None;
    if path.exists() {
        let aside = PathBuf::from(format!(
            "{}.before-rebuild-{}",
            path.display(),
            chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
        ));
        fs::rename(path, &aside).map_err(Error::io(path))?;
        for ext in ["-wal", "-shm"] {
            let _ = fs::rename(
                format!("{}{ext}", path.display()),
                format!("{}{ext}", aside.display()),
            );
        }
        moved_aside = Some(aside);
    }
    // A WAL left beside a ledger file that is gone belongs to the lost
    // ledger: replayed into the rebuilt one it would bring old rows back.
    for ext in ["-wal", "-shm"] {
        let _ = fs::remove_file(format!("{}{ext}", path.display()));
    }
    fs::rename(tmp, path).map_err(Error::io(path))?;
    for ext in ["-wal", "-shm"] {
        let _ = fs::remove_file(format!("{}{ext}", tmp.display()));
    }
    Ok(moved_aside)
}
