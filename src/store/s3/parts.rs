//! Multipart uploads' digests: SHA-256 per part, and the composite checksum
//! S3 reports for the whole object.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::super::single_part_checksum;
use crate::digest::CHUNK;

/// SHA-256 of each `part_size` slice of a file.
pub(super) fn part_digests(
    path: &Path,
    size: u64,
    part_size: u64,
) -> std::io::Result<Vec<[u8; 32]>> {
    let mut file = File::open(path)?;
    let mut digests = Vec::new();
    let mut buf = vec![0u8; CHUNK];
    let mut offset = 0;
    while offset < size {
        let len = part_size.min(size - offset);
        file.seek(SeekFrom::Start(offset))?;
        let mut hasher = Sha256::new();
        let mut left = len;
        while left > 0 {
            let want = (left as usize).min(buf.len());
            file.read_exact(&mut buf[..want])?;
            hasher.update(&buf[..want]);
            left -= want as u64;
        }
        digests.push(hasher.finalize().into());
        offset += len;
    }
    Ok(digests)
}

/// The checksum S3 reports for a multipart object: SHA-256 of the part digests, `-N`.
pub fn composite_checksum(parts: &[[u8; 32]]) -> String {
    let mut hasher = Sha256::new();
    for p in parts {
        hasher.update(p);
    }
    format!(
        "{}-{}",
        single_part_checksum(&hasher.finalize().into()),
        parts.len()
    )
}
