//! Putting a file in place without ever replacing another: a mix renamed
//! from its temporary name, a leg moved to `ORIG/` — renamed where both are
//! on one file system, else copied (fsynced) under a temporary name and
//! renamed, and only then removed at its source. Where the name is taken,
//! the contents decide: the same bytes mean an earlier run got this far
//! (the step is finished, nothing doubled); other bytes belong to another
//! recording, and nothing moves. Every rename is followed by an fsync of the
//! directories it changed, so a crash never finds a leg in neither place.

use std::ffi::CString;
use std::fs::{self, File};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Where recvault's temporary files live, inside each directory it writes
/// to (same file system, so a rename finishes them; not a spool directory
/// itself, so the archive never sees a half-written file).
pub const TEMP_DIR: &str = ".recvault-move-mix";

/// How putting a file in place ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed {
    /// It is there now, and gone from where it was.
    Moved,
    /// The same bytes were already there (an interrupted run placed them):
    /// the source is removed.
    AlreadyThere,
    /// Another file with other bytes has the name: nothing moved.
    Taken,
}

/// `dir`'s temporary-files directory, created (0700) if missing.
pub fn temp_dir(dir: &Path) -> io::Result<PathBuf> {
    let temp = dir.join(TEMP_DIR);
    match fs::create_dir(&temp) {
        Ok(()) => fs::set_permissions(&temp, fs::Permissions::from_mode(0o700))?,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    Ok(temp)
}

/// Removes what interrupted runs left in `dir`'s temporary directory (only
/// recvault writes there). Returns how many files went.
pub fn clean_temp(dir: &Path) -> io::Result<usize> {
    let entries = match fs::read_dir(dir.join(TEMP_DIR)) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Renames the finished file `temp` to `dest` unless `dest` exists.
pub fn publish(temp: &Path, dest: &Path) -> io::Result<Placed> {
    match rename_noreplace(temp, dest) {
        Ok(()) => {
            sync_parent(dest)?;
            Ok(Placed::Moved)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let same = same_contents(temp, dest)?;
            fs::remove_file(temp)?;
            Ok(if same {
                Placed::AlreadyThere
            } else {
                Placed::Taken
            })
        }
        Err(e) => Err(e),
    }
}

/// Moves the file `src` into `dest_dir` under its own name, never replacing
/// another file there.
pub fn move_into(src: &Path, dest_dir: &Path) -> io::Result<Placed> {
    let name = src.file_name().ok_or_else(|| bad_name(src))?;
    let dest = dest_dir.join(name);
    match rename_noreplace(src, &dest) {
        Ok(()) => {
            sync_dir(dest_dir)?;
            sync_parent(src)?;
            Ok(Placed::Moved)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => drop_if_same(src, &dest),
        // tmpfs (VICIdial's RAM-drive monitor) to disk: copy, then rename.
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => copy_into(src, &dest, dest_dir),
        Err(e) => Err(e),
    }
}

/// `src` where `dest` already exists: removed if `dest` has its bytes.
fn drop_if_same(src: &Path, dest: &Path) -> io::Result<Placed> {
    if !same_contents(src, dest)? {
        return Ok(Placed::Taken);
    }
    fs::remove_file(src)?;
    sync_parent(src)?;
    Ok(Placed::AlreadyThere)
}

/// Copies `src` to a temporary name beside `dest`, fsyncs it, renames it to
/// `dest` (never replacing), then removes `src`.
fn copy_into(src: &Path, dest: &Path, dest_dir: &Path) -> io::Result<Placed> {
    let temp = temp_dir(dest_dir)?.join(dest.file_name().ok_or_else(|| bad_name(dest))?);
    let _ = fs::remove_file(&temp);
    {
        let mut from = File::options()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(src)?;
        let meta = from.metadata()?;
        let mode = meta.permissions().mode() & 0o777;
        let mut to = File::options()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        io::copy(&mut from, &mut to)?;
        // The leg keeps the permissions and the time Asterisk gave it, as a
        // rename (or the script's `mv`) keeps them: its time may date the call.
        to.set_permissions(fs::Permissions::from_mode(mode))?;
        to.set_modified(meta.modified()?)?;
        to.sync_all()?;
    }
    match rename_noreplace(&temp, dest) {
        Ok(()) => {
            sync_dir(dest_dir)?;
            super::crash_point("leg-copied");
            fs::remove_file(src)?;
            sync_parent(src)?;
            Ok(Placed::Moved)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            fs::remove_file(&temp)?;
            drop_if_same(src, dest)
        }
        Err(e) => {
            let _ = fs::remove_file(&temp);
            Err(e)
        }
    }
}

/// `rename(2)` that fails with `AlreadyExists` instead of replacing `to`:
/// `renameat2(RENAME_NOREPLACE)`, or where a file system lacks it, `link`
/// then `unlink`.
pub fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    let c = |p: &Path| CString::new(p.as_os_str().as_bytes()).map_err(|_| bad_name(p));
    let (f, t) = (c(from)?, c(to)?);
    // SAFETY: two NUL-terminated paths, relative to the working directory.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            f.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if r == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EINVAL) | Some(libc::ENOSYS) => {
            fs::hard_link(from, to)?;
            fs::remove_file(from)
        }
        _ => Err(e),
    }
}

/// True if the two files hold the same bytes.
pub fn same_contents(a: &Path, b: &Path) -> io::Result<bool> {
    let open = |p: &Path| {
        File::options()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(p)
    };
    let (mut fa, mut fb) = (open(a)?, open(b)?);
    if fa.metadata()?.len() != fb.metadata()?.len() {
        return Ok(false);
    }
    let (mut ba, mut bb) = (vec![0u8; 64 << 10], vec![0u8; 64 << 10]);
    loop {
        let n = crate::codec::wav::read_full(&mut fa, &mut ba)?;
        let m = crate::codec::wav::read_full(&mut fb, &mut bb)?;
        if n != m || ba[..n] != bb[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

/// fsyncs a directory, so the names in it survive a power loss.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn sync_parent(path: &Path) -> io::Result<()> {
    sync_dir(path.parent().ok_or_else(|| bad_name(path))?)
}

fn bad_name(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("`{}` cannot be moved by name", path.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_move_never_replaces_and_same_bytes_finish_it() {
        let dir = tempfile::tempdir().unwrap();
        let (src_dir, orig) = (dir.path().join("MIX"), dir.path().join("ORIG"));
        fs::create_dir_all(&src_dir).unwrap();
        fs::create_dir_all(&orig).unwrap();
        let leg = src_dir.join("x-in.wav");
        fs::write(&leg, b"leg one").unwrap();
        assert_eq!(move_into(&leg, &orig).unwrap(), Placed::Moved);
        assert!(!leg.exists());
        assert_eq!(fs::read(orig.join("x-in.wav")).unwrap(), b"leg one");
        // The same name and bytes again: an interrupted move, finished.
        fs::write(&leg, b"leg one").unwrap();
        assert_eq!(move_into(&leg, &orig).unwrap(), Placed::AlreadyThere);
        assert!(!leg.exists());
        // Other bytes: another recording's leg; nothing moves.
        fs::write(&leg, b"leg two").unwrap();
        assert_eq!(move_into(&leg, &orig).unwrap(), Placed::Taken);
        assert_eq!(fs::read(&leg).unwrap(), b"leg two");
        assert_eq!(fs::read(orig.join("x-in.wav")).unwrap(), b"leg one");
    }

    #[test]
    fn publishing_keeps_another_recording() {
        let dir = tempfile::tempdir().unwrap();
        let temp = temp_dir(dir.path()).unwrap().join("a-all.wav");
        let dest = dir.path().join("a-all.wav");
        fs::write(&temp, b"mix").unwrap();
        assert_eq!(publish(&temp, &dest).unwrap(), Placed::Moved);
        fs::write(&temp, b"mix").unwrap();
        assert_eq!(publish(&temp, &dest).unwrap(), Placed::AlreadyThere);
        fs::write(&temp, b"other").unwrap();
        assert_eq!(publish(&temp, &dest).unwrap(), Placed::Taken);
        assert_eq!(fs::read(&dest).unwrap(), b"mix");
        assert!(!temp.exists());
        fs::write(&temp, b"left by a kill").unwrap();
        assert_eq!(clean_temp(dir.path()).unwrap(), 1);
        assert!(!temp.exists());
    }

    #[test]
    fn across_file_systems_a_leg_is_copied_then_removed() {
        // /dev/shm is tmpfs (VICIdial's RAM drive); the test's temp dir is
        // on disk. Where both are one file system the rename path is taken.
        let Ok(shm) = tempfile::tempdir_in("/dev/shm") else {
            return;
        };
        let disk = tempfile::tempdir().unwrap();
        let leg = shm.path().join("y-out.wav");
        fs::write(&leg, b"far leg").unwrap();
        fs::set_permissions(&leg, fs::Permissions::from_mode(0o640)).unwrap();
        let written =
            std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_772_000_000);
        fs::File::options()
            .write(true)
            .open(&leg)
            .unwrap()
            .set_modified(written)
            .unwrap();
        assert_eq!(move_into(&leg, disk.path()).unwrap(), Placed::Moved);
        let moved = disk.path().join("y-out.wav");
        assert_eq!(fs::read(&moved).unwrap(), b"far leg");
        assert_eq!(
            fs::metadata(&moved).unwrap().permissions().mode() & 0o777,
            0o640
        );
        assert_eq!(fs::metadata(&moved).unwrap().modified().unwrap(), written);
        assert!(!leg.exists());
        assert_eq!(clean_temp(disk.path()).unwrap(), 0);
    }
}
