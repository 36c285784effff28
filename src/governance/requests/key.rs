//! The pseudonym key: 32 random bytes, as hex, in `pseudonym.key` beside the
//! ledger. Created (mode 0600, owned like the ledger, so the daemon and root
//! both read it) the first time a request needs it. It never leaves the
//! machine: ledger backups in the store do not carry it, so pseudonyms there
//! cannot be reversed by guessing numbers. Losing it loses nothing erased,
//! but a later request can no longer be matched to what was erased before.
//!
//! The file may hold several keys, one a line: the first makes new
//! pseudonyms, every one matches. The boxes of a fleet share one key (so a
//! request on any box matches what every box erased); a box that had erased
//! before it joined keeps its own key on a later line.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::recording::pseudonym::PseudonymKey;

/// The key file's name, in the ledger's directory.
pub const FILE: &str = "pseudonym.key";

/// Where the key of the ledger at `ledger` lives.
pub fn path(ledger: &Path) -> PathBuf {
    ledger.parent().unwrap_or(Path::new(".")).join(FILE)
}

/// The key new pseudonyms are made with (the file's first), if one was
/// ever made.
pub fn load(ledger: &Path) -> Result<Option<PseudonymKey>, Error> {
    Ok(load_all(ledger)?.into_iter().next())
}

/// Every key of the file, the one new pseudonyms are made with first
/// (empty if none was ever made). A line that is not a key is an error
/// naming the file and line, never skipped: a damaged key file must not
/// quietly stop matching what was erased.
pub fn load_all(ledger: &Path) -> Result<Vec<PseudonymKey>, Error> {
    let path = path(ledger);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(&path)(e)),
    };
    if let Ok(meta) = fs::metadata(&path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(path = %path.display(), "the pseudonym key is readable by others: chmod 600 it");
    }
    let keys: Vec<PseudonymKey> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| {
            PseudonymKey::from_hex(l)
                .map_err(|e| Error::Local(format!("{} line {}: {e}", path.display(), n + 1)))
        })
        .collect::<Result<_, _>>()?;
    if keys.is_empty() {
        return Err(Error::Local(format!("{}: no key in it", path.display())));
    }
    Ok(keys)
}

/// The key, made now if there is none.
pub fn load_or_create(ledger: &Path) -> Result<PseudonymKey, Error> {
    if let Some(key) = load(ledger)? {
        return Ok(key);
    }
    let path = path(ledger);
    let key = PseudonymKey::new(random_bytes().map_err(Error::io(&path))?);
    match create(&path, ledger, &key) {
        Ok(()) => {
            tracing::info!(path = %path.display(), "created the pseudonym key (back it up apart from the ledger)");
            Ok(key)
        }
        // Another process made it first: theirs is the key.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            load(ledger)?.ok_or_else(|| Error::Local(format!("{} vanished", path.display())))
        }
        Err(e) => Err(Error::io(&path)(e)),
    }
}

/// Writes a new key file (never replacing one), durable before use.
fn create(path: &Path, ledger: &Path, key: &PseudonymKey) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{FILE}.{}.tmp", std::process::id()));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    let written = (|| {
        file.write_all(format!("{}\n", key.to_hex()).as_bytes())?;
        file.sync_all()?;
        own_like(&file, ledger)?;
        // link() never replaces: a key another process made first stays.
        fs::hard_link(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    let _ = fs::remove_file(&tmp);
    written
}

/// Gives the key file the ledger's owner (root making it for a daemon that
/// runs as its own user).
fn own_like(file: &File, ledger: &Path) -> io::Result<()> {
    let Ok(meta) = fs::metadata(ledger) else {
        return Ok(());
    };
    // SAFETY: fchown on a descriptor we own.
    let rc = unsafe {
        libc::fchown(
            std::os::fd::AsRawFd::as_raw_fd(file),
            meta.uid(),
            meta.gid(),
        )
    };
    match rc {
        0 => Ok(()),
        _ if meta.uid() == unsafe { libc::geteuid() } => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

/// 32 bytes from the kernel's random source.
fn random_bytes() -> io::Result<[u8; 32]> {
    let mut buf = [0u8; 32];
    let mut filled = 0;
    while filled < buf.len() {
        // SAFETY: writes at most the remaining length into our buffer.
        let n =
            unsafe { libc::getrandom(buf[filled..].as_mut_ptr().cast(), buf.len() - filled, 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
            continue;
        }
        filled += n as usize;
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_once_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = dir.path().join("ledger.sqlite3");
        assert!(load(&ledger).unwrap().is_none());
        let key = load_or_create(&ledger).unwrap();
        let again = load_or_create(&ledger).unwrap();
        assert_eq!(key.phone("1"), again.phone("1"), "the same key every time");
        let mode = fs::metadata(path(&ledger)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp file left");
        fs::write(path(&ledger), "not a key").unwrap();
        assert!(
            load(&ledger).is_err(),
            "a damaged key is an error, never replaced"
        );
        assert!(load_or_create(&ledger).is_err());
    }

    #[test]
    fn a_file_of_several_keys_makes_with_the_first_and_matches_with_all() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = dir.path().join("ledger.sqlite3");
        let (fleet, own) = (PseudonymKey::new([1; 32]), PseudonymKey::new([2; 32]));
        fs::write(
            path(&ledger),
            format!("{}\n\n{}\n", fleet.to_hex(), own.to_hex()),
        )
        .unwrap();
        let all = load_all(&ledger).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(load(&ledger).unwrap().unwrap().phone("1"), fleet.phone("1"));
        assert_eq!(all[1].phone("1"), own.phone("1"));
        fs::write(path(&ledger), format!("{}\nnot a key\n", fleet.to_hex())).unwrap();
        let e = load_all(&ledger).unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
    }
}
