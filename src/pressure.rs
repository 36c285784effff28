//! Disk pressure on the spool (`[spool] min_free`): when a spool filesystem
//! runs low, recordings are archived before `upload_after`, oldest first.
//! Nothing unverified is ever deleted to make room.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The least free space a spool filesystem should keep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MinFree {
    Bytes(u64),
    /// Percent of the filesystem's size.
    Percent(f64),
}

impl MinFree {
    /// Parses `"10%"`, `"2GiB"`, `"500000000"`.
    pub fn parse(text: &str) -> Option<MinFree> {
        match text.trim().strip_suffix('%') {
            Some(p) => p
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|p| (0.0..=100.0).contains(p))
                .map(MinFree::Percent),
            None => crate::config::parse_bytes(text).map(MinFree::Bytes),
        }
    }

    fn threshold(self, total: u64) -> u64 {
        match self {
            MinFree::Bytes(b) => b,
            MinFree::Percent(p) => (total as f64 * p / 100.0) as u64,
        }
    }
}

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
    fn parses_and_measures() {
        assert_eq!(MinFree::parse("10%"), Some(MinFree::Percent(10.0)));
        assert_eq!(MinFree::parse("2GiB"), Some(MinFree::Bytes(2 << 30)));
        assert_eq!(MinFree::parse("150%"), None);
        assert_eq!(MinFree::parse("lots"), None);
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
