//! Codecs: encoding a recording into its object and back, streaming, hashing
//! both sides as the bytes pass so memory stays bounded whatever the size.
//! This file owns the file handling every codec shares (the source must stay
//! the file that settled; the object is written to a temp name and renamed);
//! each codec (`zstd`, or `none`: stored as is) only turns bytes into bytes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::config::Codec;
use crate::digest::{CHUNK, HashingReader, HashingWriter};
use crate::recording::{FileIdentity, Recording};

mod zstd;

pub mod flac;
pub mod wav;

/// The outcome of encoding one recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub sha256: [u8; 32],
    pub size: u64,
    pub object_sha256: [u8; 32],
    pub object_size: u64,
}

/// Why encoding did not produce an object.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The file is not the one that settled (written to, replaced, turned into a link).
    #[error("recording changed while it was being read")]
    Changed(Option<FileIdentity>),
    /// The file is gone.
    #[error("recording vanished")]
    Gone,
    /// Reading the recording failed.
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: io::Error },
    /// Writing the staging file failed (full disk, …).
    #[error("cannot write staging file {path}: {source}")]
    Staging { path: String, source: io::Error },
}

/// Encodes `source` into `dest` (written as `dest` + `.tmp`, then renamed),
/// provided `source` still has identity `expected` before and after.
pub fn encode(
    source: &Path,
    expected: FileIdentity,
    codec: Codec,
    level: i32,
    dest: &Path,
) -> Result<Encoded, EncodeError> {
    let read_err = |source_err: io::Error| EncodeError::Read {
        path: source.display().to_string(),
        source: source_err,
    };
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(source)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(EncodeError::Gone),
        // ELOOP: it became a symlink since it was seen.
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(EncodeError::Changed(None)),
        Err(e) => return Err(read_err(e)),
    };
    let check = |file: &File| -> Result<(), EncodeError> {
        let meta = file.metadata().map_err(read_err)?;
        let now = FileIdentity::of(&meta);
        if !meta.is_file() || now != expected {
            return Err(EncodeError::Changed(meta.is_file().then_some(now)));
        }
        Ok(())
    };
    check(&file)?;

    let tmp = dest.with_extension("tmp");
    let staging_err = |e: io::Error| EncodeError::Staging {
        path: tmp.display().to_string(),
        source: e,
    };
    let out = File::create(&tmp).map_err(staging_err)?;
    let mut object = HashingWriter::new(BufWriter::with_capacity(CHUNK, out));
    // Hashed below the buffer, so the copy moves whole CHUNK-sized reads.
    let mut original = BufReader::with_capacity(CHUNK, HashingReader::new(&file));
    let copied = match codec {
        Codec::Zstd => zstd::encode(&mut original, &mut object, level),
        Codec::None => io::copy(&mut original, &mut object).map(drop),
    }
    .and_then(|()| object.flush());
    let result = copied.map_err(|e| match original.get_ref().failed() {
        true => read_err(e),
        false => staging_err(e),
    });
    let (writer, object_sha256, object_size) = object.finish();
    let (sha256, size) = original.into_inner().finish();
    let finished = result.and_then(|()| {
        // Still the same file, and we read all of it?
        check(&file)?;
        if size != expected.size {
            return Err(EncodeError::Changed(None));
        }
        // No fsync: a staging copy damaged by power loss cannot pass the
        // store's SHA-256 check on upload, and is then compressed again.
        drop(
            writer
                .into_inner()
                .map_err(|e| staging_err(e.into_error()))?,
        );
        fs::rename(&tmp, dest).map_err(staging_err)?;
        Ok(())
    });
    if let Err(e) = finished {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(Encoded {
        sha256,
        size,
        object_sha256,
        object_size,
    })
}

/// The codec a recording's object was written with (zstd for rows older
/// than the codec column).
pub fn codec_of(rec: &Recording) -> Codec {
    rec.codec
        .as_deref()
        .and_then(Codec::parse)
        .unwrap_or(Codec::Zstd)
}

/// Decodes an object file into `out`, returning the SHA-256 and size of the
/// decoded bytes (which must equal the original's).
pub fn decode(codec: Codec, object: &Path, out: impl Write) -> io::Result<([u8; 32], u64)> {
    decode_stream(codec, File::open(object)?, out)
}

/// Decodes an object read as it arrives (a store's download stream) into
/// `out`, in bounded memory, returning the SHA-256 and size of the decoded
/// bytes. Playback and restore both come through here: every codec's
/// decoder belongs in this one match.
pub fn decode_stream(
    codec: Codec,
    object: impl io::Read,
    out: impl Write,
) -> io::Result<([u8; 32], u64)> {
    let input = BufReader::with_capacity(CHUNK, object);
    let mut writer = HashingWriter::new(out);
    match codec {
        Codec::Zstd => zstd::decode(input, &mut writer)?,
        Codec::None => {
            let mut input = input;
            io::copy(&mut input, &mut writer)?;
        }
    }
    writer.flush()?;
    let (_, sha, size) = writer.finish();
    Ok((sha, size))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    /// A reader that returns at most 7 bytes per read.
    struct Trickle<R>(R);

    impl<R: io::Read> io::Read for Trickle<R> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(7);
            self.0.read(&mut buf[..n])
        }
    }

    fn identity(path: &Path) -> FileIdentity {
        FileIdentity::of(&fs::metadata(path).unwrap())
    }

    #[test]
    fn zstd_round_trip_is_bit_exact() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("a.wav");
        let data: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
        fs::write(&src, &data).unwrap();
        let obj = dir.path().join("a.obj");
        let enc = encode(&src, identity(&src), Codec::Zstd, 3, &obj).unwrap();
        assert_eq!(enc.size, data.len() as u64);
        assert_eq!(enc.sha256, crate::digest::sha256(&data));
        assert_eq!(
            enc.object_sha256,
            crate::digest::sha256(&fs::read(&obj).unwrap())
        );
        assert!(enc.object_size < enc.size);
        let mut back = Vec::new();
        let (sha, size) = decode(Codec::Zstd, &obj, &mut back).unwrap();
        assert_eq!((sha, size), (enc.sha256, enc.size));
        assert_eq!(back, data);
        // The same from a stream that hands over a few bytes at a time.
        let trickle = io::Cursor::new(fs::read(&obj).unwrap()).take(u64::MAX);
        let mut again = Vec::new();
        let got = decode_stream(Codec::Zstd, Trickle(trickle), &mut again).unwrap();
        assert_eq!(got, (enc.sha256, enc.size));
        // A damaged object fails instead of decoding to something else.
        let mut damaged = fs::read(&obj).unwrap();
        let mid = damaged.len() / 2;
        damaged[mid] ^= 0x55;
        let bad = decode_stream(Codec::Zstd, &damaged[..], io::sink());
        assert!(bad.is_err() || bad.unwrap().0 != enc.sha256);
        assert!(!obj.with_extension("tmp").exists());
    }

    #[test]
    fn a_changed_file_is_not_encoded() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("a.wav");
        fs::write(&src, b"first").unwrap();
        let id = identity(&src);
        fs::write(&src, b"second, longer").unwrap();
        let obj = dir.path().join("a.obj");
        let err = encode(&src, id, Codec::Zstd, 3, &obj).unwrap_err();
        assert!(matches!(err, EncodeError::Changed(Some(_))), "{err}");
        assert!(!obj.exists() && !obj.with_extension("tmp").exists());
    }

    #[test]
    fn symlinks_and_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        fs::write(&real, b"x").unwrap();
        let link = dir.path().join("link.wav");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let obj = dir.path().join("o");
        let err = encode(&link, identity(&real), Codec::Zstd, 3, &obj).unwrap_err();
        assert!(matches!(err, EncodeError::Changed(None)), "{err}");
        let err = encode(
            &dir.path().join("nope"),
            identity(&real),
            Codec::Zstd,
            3,
            &obj,
        )
        .unwrap_err();
        assert!(matches!(err, EncodeError::Gone), "{err}");
    }
}
