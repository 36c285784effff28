//! `ledger restore` brings the backup up to what the store knows that is
//! newer, before the restored ledger is put in place:
//!
//! - holds: the newest hold copy is merged with the backup's holds
//!   (`Ledger::merge_holds`): a hold placed after the backup comes back, one
//!   released after it stays released — the copy is written after every
//!   hold change, so when it is newer than the backup it is the later
//!   truth; no hold is ever dropped;
//! - recordings: every object the backup does not know (only those are
//!   asked about) is read as `rebuild` reads it (`recovery::objects`): a
//!   recording the backup did not have gets its row back under its own id;
//!   one the backup had in an earlier state (taken in, compressed, …) is
//!   moved on to archived; an object naming an id another recording has
//!   here keeps its row under a new id;
//! - ids: the next id starts above every id handed out before (`recovery::ids`).

use std::path::PathBuf;

use chrono::{DateTime, Utc};

use super::objects::{self, StoredRecording};
use crate::error::Error;
use crate::ledger::Ledger;
use crate::ledger::catch_up::HoldsMerged;
use crate::recording::{Recording, State};
use crate::store::Store;
use crate::units::now_secs;

/// One host's recordings in the store, and where its spool is.
pub struct HostArchive<'a> {
    pub store: &'a dyn Store,
    /// The configured key prefix (backups, hold copies and ids live under it).
    pub store_prefix: &'a str,
    pub host: &'a str,
    pub spool_dirs: &'a [PathBuf],
}

/// What a restore brought back from the store, and what it could not.
#[derive(Debug, Clone, Default)]
pub struct CaughtUp {
    /// The hold copy merged, if there was one, and whether it was newer
    /// than the backup (else it released nothing).
    pub hold_copy: Option<(String, bool)>,
    pub holds: HoldsMerged,
    /// Objects the backup did not know, read.
    pub objects: usize,
    /// Recordings the backup did not have at all.
    pub added: usize,
    /// Recordings the backup had in an earlier state, now archived.
    pub moved_on: usize,
    /// Of `added` and `moved_on`, those whose local copy is still in the
    /// spool (`verified`: the daemon deletes it as usual).
    pub still_local: usize,
    /// Objects of recordings besides the key their row names (earlier
    /// uploads), now among their keys.
    pub more_keys: usize,
    /// Objects naming an id another recording has in the backup (an id
    /// handed out twice before ids were reserved): a new id.
    pub renumbered: usize,
    /// Objects other hosts archived under the same prefix.
    pub foreign: usize,
    /// Objects that could not be read as a recording, and why.
    pub unreadable: Vec<(String, String)>,
    /// The id the next new recording gets.
    pub next_id: i64,
}

/// Brings `ledger` (a restored backup taken at `backup_taken`) up to what
/// `archive` knows; `replaced_next` is the next id of the ledger the
/// restore replaces, if it could be read.
pub async fn catch_up(
    ledger: &Ledger,
    archive: &HostArchive<'_>,
    backup_taken: Option<DateTime<Utc>>,
    replaced_next: Option<i64>,
) -> Result<CaughtUp, Error> {
    let HostArchive {
        store,
        store_prefix,
        host,
        ..
    } = *archive;
    let mut report = CaughtUp::default();
    if let Some((key, written, holds)) = super::hold_copy::newest(store, store_prefix, host).await?
    {
        // Same second: the scheduled backup writes its copy after the backup.
        let newer =
            matches!((written, backup_taken), (Some(c), Some(b)) if c.timestamp() >= b.timestamp());
        report.holds = ledger.merge_holds(&holds, newer)?;
        report.hold_copy = Some((key, newer));
    } else {
        report.holds.total = ledger.holds()?.len();
    }
    let listing = objects::list(store, store_prefix, host, |key| {
        Ok(ledger.key_is_tracked(key)?)
    })
    .await?;
    report.objects = listing.objects;
    report.foreign = listing.foreign;
    report.unreadable = listing.unreadable;
    // Above every id anything knows before a row is added: an object
    // without an id of its own takes the next one.
    let in_objects = listing.recordings.iter().filter_map(|r| r.object.id).max();
    let known = [
        Some(ledger.id_marks()?.next),
        in_objects.map(|id| id + 1),
        replaced_next,
    ];
    let floor = super::ids::floor(store, store_prefix, host, known).await?;
    ledger.raise_next_id(floor)?;
    for found in listing.recordings {
        bring_back(ledger, archive.spool_dirs, found, &mut report)?;
    }
    report.next_id = ledger.id_marks()?.next;
    Ok(report)
}

/// True if a recording in this state has not reached the store as far as
/// its row knows.
fn before_archive(rec: &Recording) -> bool {
    matches!(
        rec.step(),
        State::Seen
            | State::Settled
            | State::Compressed
            | State::Uploaded
            | State::Gone
            | State::Quarantined
    )
}

/// Brings one recording the store knows (and the backup does not know by
/// this key) into `ledger`.
fn bring_back(
    ledger: &Ledger,
    dirs: &[PathBuf],
    mut found: StoredRecording,
    report: &mut CaughtUp,
) -> Result<(), Error> {
    let row = match found.object.id {
        Some(id) => ledger.recording(id).ok(),
        None => None,
    };
    let now = now_secs();
    let id = match row {
        Some(rec) if rec.name != found.object.name => {
            found.object.id = None;
            report.renumbered += 1;
            add(ledger, dirs, &mut found, report)?
        }
        Some(rec) if rec.erasure_requested() => {
            let why = "an object of a recording whose erasure the backup records; left alone (`recvault erase` again deletes it)";
            report
                .unreadable
                .push((found.object.object_key, why.to_string()));
            return Ok(());
        }
        Some(rec) if before_archive(&rec) => {
            objects::locate(dirs, &mut found.object);
            report.still_local += usize::from(found.object.state == State::Verified);
            ledger.archived_after_backup(rec.id, &found.object)?;
            report.moved_on += 1;
            rec.id
        }
        // Archived already: only its other objects are new.
        Some(rec) => {
            ledger.add_written_key(rec.id, &found.object.object_key, now)?;
            report.more_keys += 1;
            rec.id
        }
        None => add(ledger, dirs, &mut found, report)?,
    };
    for key in &found.more_keys {
        ledger.add_written_key(id, key, now)?;
    }
    report.more_keys += found.more_keys.len();
    Ok(())
}

/// A row for a recording the backup did not have; returns its id.
fn add(
    ledger: &Ledger,
    dirs: &[PathBuf],
    found: &mut StoredRecording,
    report: &mut CaughtUp,
) -> Result<i64, Error> {
    objects::locate(dirs, &mut found.object);
    report.still_local += usize::from(found.object.state == State::Verified);
    report.added += 1;
    Ok(ledger.insert_archived(&found.object)?)
}
