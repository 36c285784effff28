//! Codecs: encoding a recording into its object and back, streaming, hashing
//! both sides as the bytes pass so memory stays bounded whatever the size.
//! This file owns what every codec shares: which codec a recording really
//! gets (FLAC where it carries the file byte-for-byte, else zstd, or `none`
//! for audio that is already compressed), the file handling (the source must
//! stay the file that settled; the object is written to a temp name and
//! renamed), and the one decode entry point, [`decode`], that restore and
//! playback use. Each codec (`flac`, `zstd`, `none`: stored as is) only
//! turns bytes into bytes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

pub use crate::config::{Codec, ZstdSettings};
use crate::digest::{CHUNK, HashingReader, HashingWriter};
use crate::recording::{FileIdentity, Recording};

mod zstd;

pub mod flac;
pub mod wav;

/// The outcome of encoding one recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// The codec the object is in: the one asked for, or its fallback.
    pub codec: Codec,
    /// Why the codec asked for was not used, if it was not.
    pub fallback: Option<Fallback>,
    /// SHA-256 and size of the original, read once while encoding.
    pub sha256: [u8; 32],
    pub size: u64,
    /// SHA-256 and size of the object as staged.
    pub object_sha256: [u8; 32],
    pub object_size: u64,
}

/// Why a recording for which FLAC was asked is stored another way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fallback {
    /// FLAC cannot carry it byte-for-byte (µ-law, MP3, a lying header, …):
    /// expected, decided per recording.
    NotFlacable(wav::NotFlacable),
    /// The FLAC object did not decode back to the original: a fault of the
    /// encoder, the memory or the staging disk. Never stored; an operator
    /// should hear of it.
    RoundTrip(String),
}

impl std::fmt::Display for Fallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fallback::NotFlacable(n) => write!(f, "not FLAC-able: {n}"),
            Fallback::RoundTrip(why) => write!(f, "FLAC round trip failed: {why}"),
        }
    }
}

/// What decoding an object produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    /// SHA-256 and size of the decoded bytes (the original's, if all is well).
    pub sha256: [u8; 32],
    pub size: u64,
    /// SHA-256 and size of the object as read.
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

/// The end of an object's key for a codec (`.flac`, `.zst`, nothing).
pub fn suffix(codec: Codec) -> &'static str {
    match codec {
        Codec::Flac => ".flac",
        Codec::Zstd => ".zst",
        Codec::None => "",
    }
}

/// The Content-Type an object is stored with: `audio/flac` lets a browser
/// play a FLAC object from a presigned URL; a `none` object is typed by the
/// recording's file name.
pub fn content_type(codec: Codec, name: &[u8]) -> &'static str {
    let ext = name.rsplit(|&b| b == b'.').next().unwrap_or_default();
    match codec {
        Codec::Flac => flac::CONTENT_TYPE,
        Codec::Zstd => "application/zstd",
        Codec::None if ext.eq_ignore_ascii_case(b"mp3") => "audio/mpeg",
        Codec::None if ext.eq_ignore_ascii_case(b"ogg") => "audio/ogg",
        Codec::None if ext.eq_ignore_ascii_case(b"wav") => "audio/wav",
        Codec::None => "application/octet-stream",
    }
}

/// Encodes `source` into `dest` (written as `dest` + `.tmp`, then renamed),
/// provided `source` still has identity `expected` before and after. With
/// [`Codec::Flac`] the object is FLAC only if it decoded back to the
/// original; otherwise the recording falls back (see [`Fallback`]).
pub fn encode(
    source: &Path,
    expected: FileIdentity,
    codec: Codec,
    zstd: ZstdSettings,
    dest: &Path,
) -> Result<Encoded, EncodeError> {
    let tmp = dest.with_extension("tmp");
    let staging = Staging {
        name: tmp.display().to_string(),
        open: || open_staging(&tmp),
        // No fsync: a staging copy damaged by power loss cannot pass the
        // store's SHA-256 check on upload, and is then compressed again.
        keep: |staged: File| {
            drop(staged);
            fs::rename(&tmp, dest)
        },
        discard: || {
            let _ = fs::remove_file(&tmp);
        },
    };
    encode_into(source, expected, codec, zstd, staging).map(|(encoded, ())| encoded)
}

/// Encodes `source` as [`encode`] does, into memory: the object's bytes
/// are returned, and no staging file is written. For recordings small
/// enough to be uploaded from memory (a crash loses nothing but the work:
/// the recording is compressed again, into the same object).
pub fn encode_to_memory(
    source: &Path,
    expected: FileIdentity,
    codec: Codec,
    zstd: ZstdSettings,
) -> Result<(Encoded, Vec<u8>), EncodeError> {
    // Room for the object of a recording that does not compress, and a
    // FLAC or zstd frame's overhead.
    let room = usize::try_from(expected.size)
        .unwrap_or(0)
        .saturating_add(4096);
    let staging = Staging {
        name: "memory".to_string(),
        open: || Ok(io::Cursor::new(Vec::with_capacity(room))),
        keep: |staged: io::Cursor<Vec<u8>>| Ok(staged.into_inner()),
        discard: || {},
    };
    encode_into(source, expected, codec, zstd, staging)
}

/// Where [`encode_into`] puts the object: `open` makes it empty (again for
/// a fallback), `keep` finishes it once the source proved unchanged,
/// `discard` cleans up after a failure; `name` names it in errors.
struct Staging<Open, Keep, Discard> {
    name: String,
    open: Open,
    keep: Keep,
    discard: Discard,
}

fn encode_into<S, T>(
    source: &Path,
    expected: FileIdentity,
    codec: Codec,
    zstd: ZstdSettings,
    staging: Staging<impl FnMut() -> io::Result<S>, impl FnOnce(S) -> io::Result<T>, impl FnOnce()>,
) -> Result<(Encoded, T), EncodeError>
where
    S: Read + Write + Seek,
{
    let Staging {
        name,
        open,
        keep,
        discard,
    } = staging;
    let file = open_source(source)?;
    let check = |file: &File| still_settled(file, source, expected);
    check(&file)?;

    let staging_err = |e: io::Error| EncodeError::Staging {
        path: name.clone(),
        source: e,
    };
    let job = Job {
        file: &file,
        size: expected.size,
        codec,
        zstd,
    };
    let finished = job
        .run(open)
        .map_err(|e| match e {
            Failure::Read(e) => read_error(source, e),
            Failure::Staging(e) => staging_err(e),
            Failure::Changed => EncodeError::Changed(None),
        })
        .and_then(|(encoded, staged)| {
            // Still the same file, and we read all of it?
            check(&file)?;
            if encoded.size != expected.size {
                return Err(EncodeError::Changed(None));
            }
            let kept = keep(staged).map_err(staging_err)?;
            Ok((encoded, kept))
        });
    if finished.is_err() {
        // A failed read may be the file changing under us: say so if it did.
        discard();
        check(&file)?;
    }
    finished
}

fn read_error(source: &Path, e: io::Error) -> EncodeError {
    EncodeError::Read {
        path: source.display().to_string(),
        source: e,
    }
}

/// Opens the recording without following a link or blocking on a FIFO.
fn open_source(source: &Path) -> Result<File, EncodeError> {
    match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(source)
    {
        Ok(f) => Ok(f),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(EncodeError::Gone),
        // ELOOP: it became a symlink since it was seen.
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => Err(EncodeError::Changed(None)),
        Err(e) => Err(read_error(source, e)),
    }
}

/// `Changed` unless `file` is still a regular file with identity `expected`.
fn still_settled(file: &File, source: &Path, expected: FileIdentity) -> Result<(), EncodeError> {
    let meta = file.metadata().map_err(|e| read_error(source, e))?;
    let now = FileIdentity::of(&meta);
    if !meta.is_file() || now != expected {
        return Err(EncodeError::Changed(meta.is_file().then_some(now)));
    }
    Ok(())
}

/// Opens the staging file `tmp` empty, read+write (the staging directory
/// made again if it was removed while running).
fn open_staging(tmp: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(true);
    crate::digest::open_making_folders(&options, tmp)
}

/// Why [`Job::run`] failed, before it is given paths.
enum Failure {
    Read(io::Error),
    Staging(io::Error),
    Changed,
}

/// One recording's encoding, apart from paths: what a test can feed a
/// staging file that misbehaves.
struct Job<'a> {
    file: &'a File,
    size: u64,
    codec: Codec,
    zstd: ZstdSettings,
}

impl Job<'_> {
    /// Encodes into a staging file `open_staging` makes (empty, read+write;
    /// called again for a fallback), returning it with the outcome.
    fn run<S: Read + Write + Seek>(
        &self,
        mut open_staging: impl FnMut() -> io::Result<S>,
    ) -> Result<(Encoded, S), Failure> {
        let mut codec = self.codec;
        let mut fallback = None;
        if codec == Codec::Flac {
            let mut staged = open_staging().map_err(Failure::Staging)?;
            match flac::encode(self.file, &mut staged) {
                Ok(encoded) => return Ok((encoded, staged)),
                Err(flac::EncodeError::NotFlacable(mut why)) => {
                    if !why.already_compressed && self.is_raw_gsm() {
                        why.reason = "GSM 6.10 audio (headerless .gsm)".into();
                        why.already_compressed = true;
                    }
                    codec = match why.already_compressed {
                        true => Codec::None,
                        false => Codec::Zstd,
                    };
                    fallback = Some(Fallback::NotFlacable(why));
                }
                Err(flac::EncodeError::RoundTrip(why)) => {
                    codec = Codec::Zstd;
                    fallback = Some(Fallback::RoundTrip(why));
                }
                Err(flac::EncodeError::Read(e)) => return Err(Failure::Read(e)),
                Err(flac::EncodeError::Write(e)) => return Err(Failure::Staging(e)),
                Err(flac::EncodeError::Changed(_)) => return Err(Failure::Changed),
            }
            (&*self.file)
                .seek(SeekFrom::Start(0))
                .map_err(Failure::Read)?;
        }
        let staged = open_staging().map_err(Failure::Staging)?;
        let (mut encoded, staged) = self.stream(codec, staged)?;
        encoded.fallback = fallback;
        Ok((encoded, staged))
    }

    /// zstd or `none`: one pass, both sides hashed as they pass (once for
    /// `none`, whose object is the original).
    fn stream<S: Write>(&self, codec: Codec, staged: S) -> Result<(Encoded, S), Failure> {
        let mut object = BufWriter::with_capacity(CHUNK, staged);
        // Hashed below the buffer, so the copy moves whole CHUNK-sized reads.
        let mut original = BufReader::with_capacity(CHUNK, HashingReader::new(self.file));
        let mut object_hash = None;
        let copied = match codec {
            Codec::Zstd => {
                let mut hashing = HashingWriter::new(&mut object);
                let done = zstd::encode(&mut original, &mut hashing, self.zstd, self.size);
                let (_, sha, size) = hashing.finish();
                object_hash = Some((sha, size));
                done
            }
            // (FLAC never gets here: `run` chose its fallback.)
            Codec::None | Codec::Flac => io::copy(&mut original, &mut object).map(drop),
        }
        .and_then(|()| object.flush());
        if let Err(e) = copied {
            return Err(match original.get_ref().failed() {
                true => Failure::Read(e),
                false => Failure::Staging(e),
            });
        }
        let (sha256, size) = original.into_inner().finish();
        let (object_sha256, object_size) = object_hash.unwrap_or((sha256, size));
        let staged = object
            .into_inner()
            .map_err(|e| Failure::Staging(e.into_error()))?;
        let encoded = Encoded {
            codec,
            fallback: None,
            sha256,
            size,
            object_sha256,
            object_size,
        };
        Ok((encoded, staged))
    }

    /// True for a headerless GSM 6.10 file (VICIdial's `.gsm`): whole
    /// 33-byte frames, each starting with the 0xD signature nibble.
    fn is_raw_gsm(&self) -> bool {
        const FRAME: u64 = 33;
        if self.size == 0 || !self.size.is_multiple_of(FRAME) {
            return false;
        }
        let mut head = vec![0u8; self.size.min(FRAME * 64) as usize];
        if self.file.read_exact_at(&mut head, 0).is_err() {
            return false;
        }
        head.chunks_exact(FRAME as usize).all(|f| f[0] >> 4 == 0xD)
    }
}

/// The codec a recording's object was written with (zstd for rows older
/// than the codec column).
pub fn codec_of(rec: &Recording) -> Codec {
    rec.codec
        .as_deref()
        .and_then(Codec::parse)
        .unwrap_or(Codec::Zstd)
}

/// Decodes an object (as a file, a download stream, …) into `out`, reading
/// it once, front to back, and writing the original as it goes, in bounded
/// memory: the one way from an object back to its recording, for restore
/// and for playback. Returns the SHA-256 and size of what was written (to
/// compare with the ledger's) and of the object as read. A damaged object is
/// an `InvalidData` error, after whatever came before the damage was written.
pub fn decode(codec: Codec, object: impl Read, out: impl Write) -> io::Result<Decoded> {
    if codec == Codec::Flac {
        return flac::decode_from(object, out);
    }
    let mut input = BufReader::with_capacity(CHUNK, HashingReader::new(object));
    let mut writer = HashingWriter::new(out);
    match codec {
        Codec::Zstd => zstd::decode(&mut input, &mut writer)?,
        Codec::None | Codec::Flac => drop(io::copy(&mut input, &mut writer)?),
    }
    // Whatever follows a zstd frame is part of the object: hash it too.
    io::copy(&mut input, &mut io::sink())?;
    writer.flush()?;
    let (_, sha256, size) = writer.finish();
    let (object_sha256, object_size) = input.into_inner().finish();
    Ok(Decoded {
        sha256,
        size,
        object_sha256,
        object_size,
    })
}

#[cfg(test)]
mod tests;
