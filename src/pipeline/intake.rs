//! Intake: bringing what the spool holds into the ledger — new files, changed
//! files, vanished files, special files — and settling finished ones.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::ledger::{Ledger, LedgerError, LocalRow, SpoolFile};
use crate::recording::State;
use crate::recording::key::display_name;
use crate::recording::name::Naming;
use crate::spool::{self, Scan};
use crate::units::{nanos, now_ns};

/// What one intake pass changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct IntakeReport {
    pub new: usize,
    pub changed: usize,
    pub vanished: usize,
    pub quarantined: usize,
    pub settled: usize,
}

/// Compares a scan with the ledger and records the differences. Recordings
/// in `busy` are being worked on and left to their worker.
pub fn reconcile(
    ledger: &Ledger,
    naming: &Naming,
    scan: &Scan,
    busy: &HashSet<i64>,
) -> Result<IntakeReport, LedgerError> {
    let mut rows = ledger.local_rows()?;
    let mut report = IntakeReport::default();
    for file in &scan.files {
        observe(
            ledger,
            naming,
            rows.remove(&file.path),
            file,
            None,
            busy,
            &mut report,
        )?;
    }
    for (file, kind) in &scan.specials {
        observe(
            ledger,
            naming,
            rows.remove(&file.path),
            file,
            Some(kind),
            busy,
            &mut report,
        )?;
    }
    // Whatever is left was not found: gone, but only where the directory was fully listed.
    for (path, row) in rows {
        let listed = path
            .parent()
            .is_some_and(|p| scan.listed_dirs.iter().any(|d| d == p));
        if listed && !busy.contains(&row.id) {
            vanished(ledger, &path, row, &mut report)?;
        }
    }
    Ok(report)
}

/// Like [`reconcile`] for a few paths an inotify event named.
pub fn reconcile_paths(
    ledger: &Ledger,
    naming: &Naming,
    dirs: &[PathBuf],
    ignore: &[String],
    paths: &HashSet<PathBuf>,
    busy: &HashSet<i64>,
) -> Result<IntakeReport, LedgerError> {
    let mut rows = ledger.local_rows()?;
    let mut report = IntakeReport::default();
    for path in paths {
        let name = path
            .file_name()
            .map(|n| std::os::unix::ffi::OsStrExt::as_bytes(n).to_vec())
            .unwrap_or_default();
        if !spool::in_spool(dirs, path) || spool::ignored(ignore, &name) {
            continue;
        }
        let row = rows.remove(path);
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
/// nobody has open for writing to `settled`.
pub fn settle(
    ledger: &Ledger,
    settle: Duration,
    busy: &HashSet<i64>,
) -> Result<usize, LedgerError> {
    let (now_ns, settle_ns) = (now_ns(), nanos(settle));
    let ripe: Vec<_> = ledger
        .seen()?
        .into_iter()
        .filter(|r| {
            !busy.contains(&r.id) && now_ns.saturating_sub(r.identity.mtime_ns) >= settle_ns
        })
        .collect();
    if ripe.is_empty() {
        return Ok(0);
    }
    let files: Vec<_> = ripe
        .iter()
        .map(|r| (r.id, r.path.as_path(), r.identity))
        .collect();
    let writing = spool::being_written(&files);
    let mut settled = 0;
    for rec in &ripe {
        if writing.contains(&rec.id) {
            continue;
        }
        ledger.settled(rec.id)?;
        settled += 1;
    }
    Ok(settled)
}
