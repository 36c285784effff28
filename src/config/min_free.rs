//! `[spool] min_free`: the least free space a spool filesystem should keep
//! (bytes or a percentage). The pipeline measures; this only says how much.

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
            None => crate::units::parse_bytes(text).map(MinFree::Bytes),
        }
    }

    /// The free bytes wanted on a filesystem of `total` bytes.
    pub fn threshold(self, total: u64) -> u64 {
        match self {
            MinFree::Bytes(b) => b,
            MinFree::Percent(p) => (total as f64 * p / 100.0) as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bytes_and_percentages() {
        assert_eq!(MinFree::parse("10%"), Some(MinFree::Percent(10.0)));
        assert_eq!(MinFree::parse("2GiB"), Some(MinFree::Bytes(2 << 30)));
        assert_eq!(MinFree::parse("150%"), None);
        assert_eq!(MinFree::parse("lots"), None);
        assert_eq!(MinFree::Percent(10.0).threshold(1000), 100);
    }
}
