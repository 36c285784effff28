//! Intake: bringing what the spool holds into the ledger — new files, changed
//! files, vanished files, special files — and settling finished ones.
//!
//! A rescan streams: each directory is read [`spool::SORTED`] entries at a
//! time, sorted by name (the ledger's indexes are then met in order, not at
//! a random page per entry), and handed over in batches of [`BATCH`], each
//! batch looked up and its new files inserted in one ledger transaction, so
//! neither the directory nor the ledger is ever held in memory. What
//! vanished is found without a list of every path: once a directory is
//! fully listed, the ledger's count of local recordings in it is compared
//! with the number of entries found (each entry is exactly one local
//! recording once taken in); only when they differ are that directory's
//! recordings walked, a page at a time, and each looked at.
//! A regular file whose recording is `settled` under that name and inode
//! (the bulk of a waiting backlog) is not looked at at all: the directory's
//! listing says enough ([`Ledger::settled_at`]). Which are settled is read
//! once per directory, before it is listed, as 8 bytes per recording
//! ([`SettledNames`], up to [`MOST`]): looked up a batch at a time instead,
//! each chunk's names lie scattered over the whole path index, and a
//! rescan of a million waiting files read that index 16 times over
//! (3.5 CPU-s against 1.25).

use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::ledger::intake::Found;
use crate::ledger::intake::{MOST, SettledNames};
use crate::ledger::{Ledger, LedgerError, LocalRow, SpoolFile};
use crate::recording::State;
use crate::recording::key::display_name;
use crate::recording::name::Naming;
use crate::spool;
use crate::units::{nanos, now_ns};

/// Directory entries (and `seen` recordings) handled per ledger transaction.
pub const BATCH: usize = 1000;

/// What one intake pass changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct IntakeReport {
    pub new: usize,
    pub changed: usize,
    pub vanished: usize,
    pub quarantined: usize,
    pub settled: usize,
}

/// What a rescan found, besides the changes it recorded.
#[derive(Debug, Default)]
pub struct Rescan {
    pub report: IntakeReport,
    /// Directories listed completely.
    pub listed: Vec<PathBuf>,
    /// Directories that could not be listed (or not completely), with why.
    pub unreadable: Vec<(PathBuf, io::Error)>,
}

/// Lists every spool directory and brings the ledger up to date, a batch
/// at a time. With `settle`, a new file already settled (last written at
/// least that long ago, nobody writing it) is recorded `settled` at once;
/// without, every new file is `seen` and left to [`settle`]. Recordings in
/// `busy` are being worked on and left to their worker. `after_batch` runs
/// after each batch is recorded, with the entries listed so far (progress
/// display; tests act there mid-rescan).
pub fn rescan(
    ledger: &Ledger,
    naming: &Naming,
    dirs: &[PathBuf],
    ignore: &[String],
    settle: Option<Duration>,
    busy: &HashSet<i64>,
    after_batch: &mut dyn FnMut(u64),
) -> Result<Rescan, LedgerError> {
    let mut out = Rescan::default();
    let mut seen_so_far = 0;
    for dir in dirs {
        let report = &mut out.report;
        // Entries of one directory are on its device (a mount point is a
        // folder). A directory the ledger knows nothing in (a first
        // intake) has no settled recording to look up.
        let settled = match ledger.any_local_in(dir)? {
            true => match fs::metadata(dir) {
                Ok(meta) => Some(Settled::read(ledger, meta.dev(), dir, MOST)?),
                Err(_) => None,
            },
            false => None,
        };
        let mut listing = spool::list_dir(dir, ignore, BATCH, |batch, listing| {
            let listed = batch.len() as u64;
            let changed = unless_settled_there(ledger, settled.as_ref(), dir, batch, listing)?;
            let found = spool::look_at(dir, changed, listing);
            if !found.is_empty() {
                let ripe = ripe(&found, settle);
                take_in(ledger, naming, &found, &ripe, busy, report)?;
            }
            seen_so_far += listed;
            after_batch(seen_so_far);
            Ok::<_, LedgerError>(())
        })?;
        if let Some(e) = listing.error.take() {
            out.unreadable.push((dir.clone(), e));
        }
        if listing.complete {
            vanished_in(ledger, dir, ignore, &listing, busy, &mut out.report)?;
            out.listed.push(dir.clone());
        }
    }
    Ok(out)
}

/// What a rescan knows of a directory's settled recordings before it
/// lists it: all of them, read at once (most directories), or only the
/// device, each batch then looked up.
enum Settled {
    Read(SettledNames),
    LookUp(u64),
}

impl Settled {
    fn read(ledger: &Ledger, dev: u64, dir: &Path, most: usize) -> Result<Self, LedgerError> {
        Ok(match ledger.settled_names_in(dev, dir, most)? {
            Some(names) => Self::Read(names),
            None => Self::LookUp(dev),
        })
    }
}

/// Of a batch of entries, those to look at: all but the regular files
/// whose recording is `settled` and was taken in under that name at that
/// device and inode ([`Ledger::settled_at`] says why nothing is missed).
/// Those are counted in `listing` unlooked-at, sparing a `statx` each on a
/// rescan of a waiting backlog. The settled recordings are those read
/// before the listing began (a recording a worker moved on since is left
/// alone by [`take_in`] as well: its file is unchanged, or it is `busy`),
/// or, for a directory with too many to hold, looked up now.
fn unless_settled_there(
    ledger: &Ledger,
    settled: Option<&Settled>,
    dir: &Path,
    batch: Vec<spool::Entry>,
    listing: &mut spool::Listing,
) -> Result<Vec<spool::Entry>, LedgerError> {
    let Some(settled) = settled else {
        return Ok(batch);
    };
    let (files, others): (Vec<_>, Vec<_>) = batch.into_iter().partition(|e| e.listed_as_file());
    let there = match settled {
        Settled::Read(names) => files
            .iter()
            .map(|e| names.contains(e.name(), e.ino()))
            .collect(),
        Settled::LookUp(dev) => {
            let keys: Vec<_> = files.iter().map(|e| (e.name(), e.ino())).collect();
            ledger.settled_at(*dev, dir, &keys)?
        }
    };
    let mut changed = others;
    for (entry, there) in files.into_iter().zip(there) {
        if there {
            listing.entries += 1;
        } else {
            changed.push(entry);
        }
    }
    Ok(changed)
}

/// For each of `found`: true if it is a regular file settled now, as
/// [`settle`] decides for a `seen` one — last written at least `settle`
/// ago, and nobody has it open for writing (asked of the kernel for the
/// batch at once). All false without `settle`.
fn ripe(found: &[Found], settle: Option<Duration>) -> Vec<bool> {
    let mut ripe = vec![false; found.len()];
    let Some(settle) = settle else {
        return ripe;
    };
    let cutoff = now_ns().saturating_sub(nanos(settle));
    let old: Vec<_> = found
        .iter()
        .enumerate()
        .filter_map(|(i, f)| match f {
            Ok(file) if file.identity.mtime_ns <= cutoff => {
                Some((i as i64, file.path.as_path(), file.identity))
            }
            _ => None,
        })
        .collect();
    let writing = spool::being_written(&old);
    for (i, _, _) in old {
        ripe[i as usize] = !writing.contains(&i);
    }
    ripe
}

/// Records one batch of entries: the new ones in one transaction, each
/// that differs from its recording on its own.
fn take_in(
    ledger: &Ledger,
    naming: &Naming,
    batch: &[Found],
    ripe: &[bool],
    busy: &HashSet<i64>,
    report: &mut IntakeReport,
) -> Result<(), LedgerError> {
    let taken = ledger.take_in(naming, batch, ripe, busy)?;
    report.new += taken.new;
    report.settled += taken.settled;
    report.quarantined += taken.quarantined;
    for (file, row) in taken.differing {
        let (file, special) = match &batch[file] {
            Ok(file) => (file, None),
            Err((file, kind)) => (file, Some(*kind)),
        };
        observe(ledger, naming, Some(row), file, special, busy, report)?;
    }
    Ok(())
}

/// Finds the recordings of the fully listed `dir` that its listing of
/// `entries` did not show: gone (or, archived, removed by someone else).
fn vanished_in(
    ledger: &Ledger,
    dir: &Path,
    ignore: &[String],
    listing: &spool::Listing,
    busy: &HashSet<i64>,
    report: &mut IntakeReport,
) -> Result<(), LedgerError> {
    if ledger.local_count_in(dir, listing.folders.as_deref())? == listing.entries {
        return Ok(());
    }
    let mut after: Option<PathBuf> = None;
    loop {
        let page = ledger.local_rows_in(dir, after.as_deref(), BATCH)?;
        let Some((last, _)) = page.last() else {
            return Ok(());
        };
        after = Some(last.clone());
        let full = page.len() == BATCH;
        for (path, row) in page {
            if busy.contains(&row.id) || still_there(&path, ignore) {
                continue;
            }
            vanished(ledger, &path, row, report)?;
        }
        if !full {
            return Ok(());
        }
    }
}

/// True if a rescan would find an entry at `path`: something other than a
/// directory, under a name not ignored. A file that cannot be looked at
/// counts as there (the next rescan decides).
fn still_there(path: &Path, ignore: &[String]) -> bool {
    let name = path.file_name().map(std::os::unix::ffi::OsStrExt::as_bytes);
    if name.is_some_and(|n| spool::ignored(ignore, n)) {
        return false;
    }
    !matches!(spool::inspect(path), Ok(None))
}

/// Like [`rescan`] for a few paths an inotify event named.
pub fn reconcile_paths(
    ledger: &Ledger,
    naming: &Naming,
    dirs: &[PathBuf],
    ignore: &[String],
    paths: &HashSet<PathBuf>,
    busy: &HashSet<i64>,
) -> Result<IntakeReport, LedgerError> {
    let mut report = IntakeReport::default();
    for path in paths {
        let name = path
            .file_name()
            .map(|n| std::os::unix::ffi::OsStrExt::as_bytes(n).to_vec())
            .unwrap_or_default();
        if !spool::in_spool(dirs, path) || spool::ignored(ignore, &name) {
            continue;
        }
        let row = ledger.local_row_at(path)?;
        match spool::inspect(path) {
            Ok(Some(Ok(file))) => observe(ledger, naming, row, &file, None, busy, &mut report)?,
            Ok(Some(Err((file, kind)))) => {
                observe(ledger, naming, row, &file, Some(kind), busy, &mut report)?
            }
            Ok(None) => {
                if let Some(row) = row.filter(|r| !busy.contains(&r.id)) {
                    vanished(ledger, path, row, &mut report)?;
                }
            }
            Err(_) => {} // the next full scan decides
        }
    }
    Ok(report)
}

fn observe(
    ledger: &Ledger,
    naming: &Naming,
    row: Option<LocalRow>,
    file: &SpoolFile,
    special: Option<&str>,
    busy: &HashSet<i64>,
    report: &mut IntakeReport,
) -> Result<(), LedgerError> {
    let shown = display_name(&file.name);
    let Some(row) = row else {
        // Attribution happens once, as the recording enters the ledger.
        let call = naming.attribute(&file.path, &file.name, file.identity.mtime_ns);
        match special {
            None => {
                ledger.insert(file, &call, State::Seen, "found")?;
                tracing::debug!(recording = %shown, "found");
                report.new += 1;
            }
            Some(kind) => {
                ledger.insert(file, &call, State::Quarantined, kind)?;
                tracing::warn!(path = %file.path.display(), "skipping {kind}");
                report.quarantined += 1;
            }
        }
        return Ok(());
    };
    let same =
        row.identity == file.identity && (special.is_some() == (row.state == State::Quarantined));
    if same || busy.contains(&row.id) {
        return Ok(());
    }
    report.changed += 1;
    if row.state == State::Verified {
        // Archived, then replaced: the archive keeps the old content, the new file is new.
        ledger.local_copy_lost(row.id, "local file replaced after archiving")?;
        tracing::warn!(recording = %shown, "archived recording was replaced by a different file; archiving the new one too");
        return observe(ledger, naming, None, file, special, busy, report);
    }
    match special {
        None => {
            tracing::debug!(recording = %shown, "changed; starting over");
            ledger.reset_changed(row.id, file.identity, "file changed")
        }
        Some(kind) => {
            // A recording turned into a link or pipe: the old content is gone.
            ledger.gone(row.id, row.state, &format!("replaced by a {kind}"))?;
            tracing::warn!(path = %file.path.display(), "recording replaced by a {kind}; skipping it");
            let call = naming.attribute(&file.path, &file.name, file.identity.mtime_ns);
            ledger
                .insert(file, &call, State::Quarantined, kind)
                .map(|_| ())
        }
    }
}

fn vanished(
    ledger: &Ledger,
    path: &Path,
    row: LocalRow,
    report: &mut IntakeReport,
) -> Result<(), LedgerError> {
    report.vanished += 1;
    if row.state == State::Verified {
        tracing::info!(path = %path.display(), "archived recording removed by someone else");
        return ledger.local_copy_lost(row.id, "removed by someone else after archiving");
    }
    if row.state != State::Quarantined {
        tracing::warn!(path = %path.display(), state = %row.state, "recording removed by someone else before it was archived");
    }
    ledger.gone(row.id, row.state, "removed before archiving")
}

/// Moves `seen` recordings whose mtime is at least `settle` old and which
/// nobody has open for writing to `settled`: a page at a time, each page's
/// changes in one transaction.
pub fn settle(
    ledger: &Ledger,
    settle: Duration,
    busy: &HashSet<i64>,
) -> Result<usize, LedgerError> {
    let cutoff = now_ns().saturating_sub(nanos(settle));
    let mut after = None;
    let mut settled = 0;
    loop {
        let page = ledger.seen_page(cutoff, after, BATCH)?;
        let Some((mtime, last)) = page.last() else {
            return Ok(settled);
        };
        after = Some((*mtime, last.id));
        let full = page.len() == BATCH;
        let files: Vec<_> = page
            .iter()
            .filter(|(_, f)| !busy.contains(&f.id))
            .map(|(_, f)| (f.id, f.path.as_path(), f.identity))
            .collect();
        let writing = spool::being_written(&files);
        let ripe: Vec<i64> = files
            .iter()
            .map(|(id, _, _)| *id)
            .filter(|id| !writing.contains(id))
            .collect();
        settled += ledger.settled_all(&ripe)?;
        if !full {
            return Ok(settled);
        }
    }
}

#[cfg(test)]
mod tests;
