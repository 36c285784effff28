//! A new file written and synced before it gets its name, for the local
//! store's objects and sidecars. Where the filesystem allows, it has no name
//! at all until linked (`O_TMPFILE`): no temp entry is made and removed for
//! every object, and a crash leaves nothing behind. Elsewhere (a filesystem
//! or kernel without it, no `/proc`) it is written under a temp name in the
//! same directory, removed when the staged file is dropped.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::sidecar::temp_name;
use crate::digest;

/// A new file in the directory of its future name.
pub struct StagedFile {
    file: File,
    /// The temp name it has meanwhile, or `None` while it has none.
    temp: Option<PathBuf>,
}

impl StagedFile {
    /// A new empty file for `target`, in `target`'s directory (made if
    /// missing).
    pub fn create(target: &Path) -> io::Result<StagedFile> {
        let dir = target.parent().unwrap_or(Path::new("."));
        if proc_fds() {
            match unnamed_in(dir) {
                Ok(file) => return Ok(StagedFile { file, temp: None }),
                Err(e) if unsupported(&e) => {}
                Err(e) => return Err(e),
            }
        }
        let file_name = target.file_name().and_then(|n| n.to_str());
        let temp = dir.join(temp_name(file_name.unwrap_or("object")));
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        let file = digest::open_making_folders(&options, &temp)?;
        Ok(StagedFile {
            file,
            temp: Some(temp),
        })
    }

    /// The file, to write and sync.
    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// Gives the file the name `target`; fails with `AlreadyExists` if
    /// `target` exists (it is never replaced).
    pub fn link(&self, target: &Path) -> io::Result<()> {
        match &self.temp {
            Some(temp) => std::fs::hard_link(temp, target),
            None => link_unnamed(&self.file, target),
        }
    }
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        if let Some(temp) = &self.temp {
            let _ = std::fs::remove_file(temp);
        }
    }
}

/// True if open files can be named through `/proc/self/fd` (checked once).
fn proc_fds() -> bool {
    static ANSWER: OnceLock<bool> = OnceLock::new();
    *ANSWER.get_or_init(|| Path::new("/proc/self/fd").is_dir())
}

/// Opens a file with no name in `dir`, making `dir` if missing.
fn unnamed_in(dir: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options
        .write(true)
        .custom_flags(libc::O_TMPFILE)
        .mode(0o666);
    digest::open_making(&options, dir, dir)
}

/// True for the ways a filesystem or kernel says it has no `O_TMPFILE`.
fn unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL)
    )
}

/// Names the unnamed `file` `target` (`linkat` through `/proc/self/fd`,
/// which needs no privilege, unlike `AT_EMPTY_PATH`).
fn link_unnamed(file: &File, target: &Path) -> io::Result<()> {
    let from = CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))?;
    let to = CString::new(target.as_os_str().as_bytes())?;
    // SAFETY: both are NUL-terminated paths that outlive the call.
    let rc = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_staged_file_has_no_name_until_linked_and_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a/b/object.flac");
        let mut staged = StagedFile::create(&target).unwrap();
        staged.file().write_all(b"bytes").unwrap();
        staged.file().sync_all().unwrap();
        let names = |d: &Path| std::fs::read_dir(d).unwrap().count();
        // No name yet where O_TMPFILE works (ext4, tmpfs); a temp name elsewhere.
        let before = usize::from(staged.temp.is_some());
        assert_eq!(names(&dir.path().join("a/b")), before);
        staged.link(&target).unwrap();
        drop(staged);
        assert_eq!(std::fs::read(&target).unwrap(), b"bytes");
        assert_eq!(names(&dir.path().join("a/b")), 1, "nothing but the object");
        let other = StagedFile::create(&target).unwrap();
        let e = other.link(&target).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        drop(other);
        assert_eq!(std::fs::read(&target).unwrap(), b"bytes");
        assert_eq!(names(&dir.path().join("a/b")), 1);
    }
}
