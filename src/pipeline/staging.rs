//! Staging: where a recording's compressed object waits between compress and
//! verify (`<staging>/<id>.obj`, beside the ledger, never in the spool), and
//! the start-up clean-up of what interrupted steps left there.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::ledger::Ledger;
use crate::recording::State;

/// The staged object of recording `id`.
pub fn object_path(staging: &Path, id: i64) -> PathBuf {
    staging.join(format!("{id}.obj"))
}

/// Removes staging leftovers of interrupted steps: temp files, and objects
/// whose recording is no longer waiting to be uploaded. Returns how many.
pub fn clean(staging: &Path, ledger: &Ledger) -> Result<usize, Error> {
    let entries = match fs::read_dir(staging) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::io(staging)(e)),
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let keep = match name
            .strip_suffix(".obj")
            .and_then(|id| id.parse::<i64>().ok())
        {
            Some(id) => ledger
                .recording(id)
                .is_ok_and(|r| matches!(r.step(), State::Compressed | State::Uploaded)),
            None => false,
        };
        if !keep
            && entry.file_type().is_ok_and(|t| t.is_file())
            && fs::remove_file(entry.path()).is_ok()
        {
            removed += 1;
        }
    }
    Ok(removed)
}
