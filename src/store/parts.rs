//! Multipart uploads' hashes: each part's SHA-256 (what S3 checks per part)
//! and the composite checksum S3 reports, read in one pass that also hashes
//! the whole file, so a staged file damaged since it was hashed is refused
//! as a single PUT's `x-amz-checksum-sha256` would be.

use std::io::Read;

use sha2::{Digest, Sha256};

use super::{PutRequest, StoreError, single_part_checksum};
use crate::digest::CHUNK;

/// Each part's SHA-256, and the whole file's.
pub struct PartDigests {
    parts: Vec<[u8; 32]>,
    whole: [u8; 32],
}

impl PartDigests {
    /// The part digests, if the file is the one `req` describes; else the
    /// refusal a store gives a body that does not match its SHA-256.
    pub fn matching(self, req: &PutRequest<'_>) -> Result<Vec<[u8; 32]>, StoreError> {
        if self.whole != req.sha256 {
            return Err(StoreError::Permanent(format!(
                "checksum mismatch for `{}`: sent {}, the file hashes to {}",
                req.key,
                hex::encode(req.sha256),
                hex::encode(self.whole)
            )));
        }
        Ok(self.parts)
    }
}

/// SHA-256 of each `part_size` slice of the first `size` bytes of `body`
/// (a file or bytes in memory, read front to back), and of all of them.
pub fn part_digests(
    mut body: impl Read,
    size: u64,
    part_size: u64,
) -> std::io::Result<PartDigests> {
    let mut digests = Vec::new();
    let mut whole = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut offset = 0;
    while offset < size {
        let len = part_size.min(size - offset);
        let mut hasher = Sha256::new();
        let mut left = len;
        while left > 0 {
            let want = (left as usize).min(buf.len());
            body.read_exact(&mut buf[..want])?;
            hasher.update(&buf[..want]);
            whole.update(&buf[..want]);
            left -= want as u64;
        }
        digests.push(hasher.finalize().into());
        offset += len;
    }
    Ok(PartDigests {
        parts: digests,
        whole: whole.finalize().into(),
    })
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn parts_are_hashed_and_a_file_that_changed_since_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("object");
        let bytes: Vec<u8> = (0..(3 * CHUNK + 5)).map(|i| (i % 253) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let part = CHUNK as u64 + 1;
        let metadata = BTreeMap::new();
        let mut req = PutRequest {
            key: "k",
            source: crate::store::Body::File(&path),
            size: bytes.len() as u64,
            sha256: crate::digest::sha256(&bytes),
            metadata: &metadata,
            content_type: "audio/flac",
        };
        let parts = part_digests(std::fs::File::open(&path).unwrap(), req.size, part).unwrap();
        let parts = parts.matching(&req).unwrap();
        let want: Vec<[u8; 32]> = bytes
            .chunks(part as usize)
            .map(crate::digest::sha256)
            .collect();
        assert_eq!(parts, want);
        // The same bytes from memory: the same digests.
        let from_memory = part_digests(&bytes[..], req.size, part).unwrap();
        assert_eq!(from_memory.matching(&req).unwrap(), want);
        req.sha256[0] ^= 1;
        let refused = part_digests(&bytes[..], req.size, part)
            .unwrap()
            .matching(&req)
            .unwrap_err();
        assert!(
            refused.to_string().contains("checksum mismatch"),
            "{refused}"
        );
    }
}
