//! Staging: where a recording's compressed object waits between compress and
//! verify (`<staging>/<id>.obj`, beside the ledger, never in the spool), and
//! the start-up clean-up of what interrupted steps left there. The clean-up
//! removes only names recvault itself writes in staging; anything else (an
//! operator's file, a directory) is never touched.

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

/// A name recvault writes directly in staging.
#[derive(Debug, PartialEq, Eq)]
enum Staged {
    /// `<id>.obj`: kept while recording `id` waits to be uploaded.
    Object(i64),
    /// `<id>.tmp` (a compression) or `<id>.readback.tmp` (a verification
    /// download): only ever written by the daemon, which holds the ledger's
    /// lock, so a leftover belongs to a step that was cut short.
    Temp,
    /// `.holds-<pid>-<n>.tmp` (a hold copy) or `.verify-<id>-<pid>.tmp`
    /// (`recvault scrub`): a leftover only once process `pid` is gone.
    TempOf(i32),
}

/// What `name` is, if recvault writes it in staging.
fn staged(name: &str) -> Option<Staged> {
    let id = |s: &str| {
        s.parse::<i64>()
            .ok()
            .filter(|_| s.bytes().all(|b| b.is_ascii_digit()))
    };
    if let Some(n) = name.strip_suffix(".obj") {
        return id(n).map(Staged::Object);
    }
    let stem = name.strip_suffix(".tmp")?;
    if id(stem.strip_suffix(".readback").unwrap_or(stem)).is_some() {
        return Some(Staged::Temp);
    }
    let pid = |s: &str| s.parse::<i32>().ok().filter(|p| *p > 0);
    match stem.strip_prefix(".holds-").map(|r| r.split_once('-')) {
        Some(Some((p, n))) if id(n).is_some() => return pid(p).map(Staged::TempOf),
        Some(_) => return None,
        None => {}
    }
    let (rec, p) = stem.strip_prefix(".verify-")?.split_once('-')?;
    id(rec)?;
    pid(p).map(Staged::TempOf)
}

/// True while process `pid` exists (signal 0 only asks).
fn alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 sends nothing.
    let answered = unsafe { libc::kill(pid, 0) } == 0;
    answered || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Removes staging leftovers of interrupted steps: temp files, and objects
/// whose recording is no longer waiting to be uploaded. Only regular files
/// with names recvault writes are removed. Returns how many.
pub fn clean(staging: &Path, ledger: &Ledger) -> Result<usize, Error> {
    let entries = match fs::read_dir(staging) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::io(staging)(e)),
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(what) = name.to_str().and_then(staged) else {
            continue;
        };
        let leftover = match what {
            Staged::Object(id) => !ledger
                .recording(id)
                .is_ok_and(|r| matches!(r.step(), State::Compressed | State::Uploaded)),
            Staged::Temp => true,
            Staged::TempOf(pid) => !alive(pid),
        };
        if leftover
            && entry.file_type().is_ok_and(|t| t.is_file())
            && fs::remove_file(entry.path()).is_ok()
        {
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_recvault_writes_are_staged() {
        assert_eq!(staged("12.obj"), Some(Staged::Object(12)));
        assert_eq!(staged("12.tmp"), Some(Staged::Temp));
        assert_eq!(staged("12.readback.tmp"), Some(Staged::Temp));
        assert_eq!(staged(".holds-77-123456.tmp"), Some(Staged::TempOf(77)));
        assert_eq!(staged(".verify-12-77.tmp"), Some(Staged::TempOf(77)));
        for foreign in [
            "ledger.sqlite3",
            "ledger.sqlite3-wal",
            "ledger.sqlite3.lock",
            "pseudonym.key",
            "listens.journal",
            "20260301-101500_5551234567-all.wav",
            "x.obj",
            "+1.obj",
            "-1.obj",
            "1.obj.bak",
            "a.tmp",
            "ledger-backup.sqlite3.tmp",
            ".holds-x-1.tmp",
            ".holds-1.tmp",
            ".verify-1-0.tmp",
            "playback",
            "scrub",
        ] {
            assert_eq!(staged(foreign), None, "{foreign}");
        }
    }
}
