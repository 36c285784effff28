//! Scrubbing: re-reading archived objects from the store and checking their
//! SHA-256 and size against the ledger, to find damage before a restore
//! needs the object (`recvault verify`, and the daemon's `scrub_every`).
//! Every mismatch or missing object is reported and noted in the recording's
//! history. Not to be confused with the pipeline's verify step, which checks
//! a fresh upload before the local copy may go.

use std::io::Write;
use std::path::Path;

use std::sync::Arc;

use crate::digest;
use crate::error::Error;
use crate::ledger::Ledger;
use crate::recording::Recording;
use crate::recording::key::display_name;
use crate::store::{Store, StoreError};

/// Which archived recordings to re-read.
#[derive(Debug, Clone, Copy, Default)]
pub struct Selection {
    /// A random sample of this many; `None` = all.
    pub sample: Option<usize>,
    /// Only recordings from this time on (unix seconds).
    pub since: Option<i64>,
}

/// What re-reading one object found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    Ok,
    Missing,
    Mismatch(String),
    /// The store could not be asked (outage, refusal): not a verdict.
    Unreadable(String),
}

/// Totals of a verify run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScrubReport {
    pub checked: usize,
    pub ok: usize,
    pub missing: usize,
    pub mismatched: usize,
    pub unreadable: usize,
}

impl ScrubReport {
    /// True if every object checked was found intact.
    pub fn clean(&self) -> bool {
        self.ok == self.checked
    }
}

/// Downloads `rec`'s object into `scratch` and compares it with the ledger.
async fn check_one(store: &dyn Store, rec: &Recording, scratch: &Path) -> Finding {
    let key = rec.object_key.as_deref().unwrap_or_default();
    match store.head(key).await {
        Ok(None) => return Finding::Missing,
        Ok(Some(_)) => {}
        Err(e) => return Finding::Unreadable(e.to_string()),
    }
    let tmp = scratch.join(format!(".verify-{}-{}.tmp", rec.id, std::process::id()));
    let got = store.get(key, &tmp).await;
    let hashed = match got {
        Ok(_) => {
            let path = tmp.clone();
            tokio::task::spawn_blocking(move || digest::sha256_file(&path))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()))
        }
        Err(StoreError::Permanent(m)) if m.contains("NoSuchKey") || m.contains("no object") => {
            let _ = std::fs::remove_file(&tmp);
            return Finding::Missing;
        }
        Err(e) => Err(e.to_string()),
    };
    let _ = std::fs::remove_file(&tmp);
    let (sha, size) = match hashed {
        Ok(v) => v,
        Err(e) => return Finding::Unreadable(e),
    };
    let want_sha = rec.object_sha256.as_deref().unwrap_or_default();
    let want_size = rec.object_size.unwrap_or(0);
    if hex::encode(sha) != want_sha || size != want_size {
        return Finding::Mismatch(format!(
            "{} bytes hashing to {}, ledger says {want_size} bytes, {want_sha}",
            size,
            hex::encode(sha)
        ));
    }
    Finding::Ok
}

/// Verifies the selected recordings, one line per problem on `out` (and
/// per object with `verbose`), and returns the totals.
pub async fn scrub(
    ledger: &Arc<Ledger>,
    store: &dyn Store,
    selection: Selection,
    scratch: &Path,
    verbose: bool,
    out: &mut impl Write,
) -> Result<ScrubReport, Error> {
    std::fs::create_dir_all(scratch).map_err(Error::io(scratch))?;
    let mut report = ScrubReport::default();
    let Selection { since, sample } = selection;
    let selected = ledger.call(move |l| l.archived(since, sample)).await?;
    for rec in selected {
        let key = rec.object_key.clone().unwrap_or_default();
        let finding = check_one(store, &rec, scratch).await;
        report.checked += 1;
        let line = match &finding {
            Finding::Ok => {
                report.ok += 1;
                if verbose {
                    writeln!(out, "ok\t{key}")?;
                }
                continue;
            }
            Finding::Missing => {
                report.missing += 1;
                format!("MISSING\t{key}\t{}", display_name(&rec.name))
            }
            Finding::Mismatch(why) => {
                report.mismatched += 1;
                format!("MISMATCH\t{key}\t{}: {why}", display_name(&rec.name))
            }
            Finding::Unreadable(why) => {
                report.unreadable += 1;
                format!("UNREADABLE\t{key}\t{why}")
            }
        };
        writeln!(out, "{line}")?;
        if !matches!(finding, Finding::Unreadable(_)) {
            // The recording's history keeps the finding (an audit trail
            // until the audit log from the retention work takes it over).
            tracing::error!(recording = %display_name(&rec.name), key = %key, "verify: {line}");
            let (id, note) = (rec.id, format!("verify: {line}"));
            ledger.call(move |l| l.note(id, &note)).await?;
        }
    }
    writeln!(
        out,
        "verified {} objects: {} ok, {} missing, {} mismatched, {} unreadable",
        report.checked, report.ok, report.missing, report.mismatched, report.unreadable
    )?;
    Ok(report)
}
