//! Disk pressure on the spool (`[spool] min_free`): when a spool filesystem
//! runs low, recordings are archived before `upload_after`, largest first.
//! Nothing unverified is ever deleted to make room.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::config::MinFree;

/// Free and total bytes of the filesystem holding `path` (for unprivileged users).
pub fn free_space(path: &Path) -> io::Result<(u64, u64)> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid C string and a zeroed out-struct of the right type.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let unit = st.f_frsize as u64;
    Ok((st.f_bavail as u64 * unit, st.f_blocks as u64 * unit))
}

/// Spool directories whose filesystem has less free space than `min_free`,
/// with the free bytes found.
pub fn under_pressure(dirs: &[PathBuf], min_free: MinFree) -> Vec<(PathBuf, u64)> {
    dirs.iter()
        .filter_map(|d| {
            let (free, total) = free_space(d).ok()?;
            (free < min_free.threshold(total)).then(|| (d.clone(), free))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_free_space() {
        let dir = std::env::temp_dir();
        let (free, total) = free_space(&dir).unwrap();
        assert!(total > 0 && free <= total);
        assert_eq!(
            under_pressure(std::slice::from_ref(&dir), MinFree::Percent(100.0)).len(),
            1
        );
        assert!(under_pressure(&[dir], MinFree::Bytes(0)).is_empty());
    }
}
