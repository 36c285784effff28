//! Lossless FLAC for PCM WAV recordings, byte-for-byte: every WAV byte FLAC
//! does not carry (RIFF header, `fmt `, LIST/fact/bext/unknown chunks before
//! and after the samples, pad bytes) travels in APPLICATION metadata blocks
//! with id `riff`, one per chunk and in file order, exactly as
//! `flac --keep-foreign-metadata` stores them. So the object alone rebuilds
//! the original, with recvault ([`decode`]) or without it
//! (`flac -d --keep-foreign-metadata`).
//!
//! STREAMINFO's MD5 is left unset (see `encoder.rs`): the object's metadata
//! carries the original's SHA-256 instead.
//!
//! Object layout: `fLaC`, STREAMINFO, `riff` blocks (RIFF header, chunks
//! before the samples, the 8-byte data chunk header, chunks after the
//! samples), then the frames. Encoding reads the recording once, front to
//! back, hashing it as it goes, then once more beside the object as the
//! round-trip check rebuilds it; decoding reads the object once, front to
//! back (the chunks after the samples, at most [`MAX_TAIL`] bytes, wait in
//! memory until the samples are out); memory stays bounded whatever the
//! file size.

use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};

use super::wav::{self, Chunk, InspectError, NotFlacable, WavLayout, read_full};
use super::{Codec, Decoded, Encoded};
use crate::digest::{CHUNK, HashingReader};

#[cfg(target_os = "linux")]
mod cpu;
mod decoder;
mod encoder;
mod unpack;

use unpack::Matched;

pub use unpack::decode_from;

/// Content-Type of stored `.flac` objects (browsers play it directly).
pub const CONTENT_TYPE: &str = "audio/flac";

/// APPLICATION block id of stored WAV chunks (xiph's foreign-metadata id).
const RIFF_ID: &[u8; 4] = b"riff";
const STREAMINFO: u8 = 0;
const APPLICATION: u8 = 2;

/// Most bytes of WAV chunks after the samples an object made here carries:
/// the decoder holds them in memory while the samples stream past.
pub const MAX_TAIL: u64 = 1 << 20;

/// Why encoding did not produce a verified FLAC object.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// FLAC cannot carry this file: use another codec. `dest` holds nothing
    /// worth keeping.
    #[error("not FLAC-able: {0}")]
    NotFlacable(NotFlacable),
    /// Reading the recording failed.
    #[error("cannot read the recording: {0}")]
    Read(io::Error),
    /// Writing or reading back the object failed (full disk, …).
    #[error("cannot write the FLAC object: {0}")]
    Write(io::Error),
    /// The recording is not the file that was inspected (it grew or shrank).
    #[error("recording changed while it was encoded: {0}")]
    Changed(&'static str),
    /// The object does not decode to the original: never store it.
    #[error("FLAC round trip failed: {0}")]
    RoundTrip(String),
}

/// Encodes the WAV `source` into a FLAC object written to `dest`, then
/// decodes `dest` back and checks that it rebuilds the original byte for
/// byte: an `Ok` object is verified (the object's [`Encoded`] says
/// [`Codec::Flac`]; its SHA-256 is that of the bytes the check read).
///
/// `source` is read twice, front to back (after `wav::inspect` walked its
/// chunk headers): to encode and hash it, then beside the rebuilt bytes; the
/// caller keeps its identity checks around this call.
/// `dest` must be empty and open for reading and writing (a fresh staging
/// file: `OpenOptions::new().read(true).write(true).create_new(true)`); it is
/// written from its start, with seeks (the blocks of chunks after the samples
/// and STREAMINFO are written last). On `NotFlacable` the caller rewinds
/// `source` and uses another codec; on any error `dest` is to be discarded.
pub fn encode<R: Read + Seek, W: Read + Write + Seek>(
    mut source: R,
    mut dest: W,
) -> Result<Encoded, EncodeError> {
    let layout = wav::inspect(&mut source).map_err(|e| match e {
        InspectError::NotFlacable(n) => EncodeError::NotFlacable(n),
        InspectError::Io(e) => EncodeError::Read(e),
    })?;
    let tail: u64 = layout.tail().iter().map(Chunk::stored_len).sum();
    if tail > MAX_TAIL {
        return Err(EncodeError::NotFlacable(NotFlacable {
            reason: format!(
                "{tail} bytes of chunks after the samples (FLAC is used up to {MAX_TAIL})"
            ),
            already_compressed: false,
        }));
    }
    source.seek(SeekFrom::Start(0)).map_err(EncodeError::Read)?;
    let mut original = HashingReader::new(BufReader::with_capacity(CHUNK, &mut source));
    dest.seek(SeekFrom::Start(0)).map_err(EncodeError::Write)?;
    let mut object = BufWriter::with_capacity(CHUNK, &mut dest);
    write_object(&layout, &mut original, &mut object)?;
    object.flush().map_err(EncodeError::Write)?;
    drop(object);
    let (sha256, size) = original.finish();

    // The object must rebuild the original byte for byte, as read again:
    // stronger than libFLAC's MD5 check, or than comparing SHA-256s. (Should
    // the file change between the two reads, it no longer matches: the
    // caller falls back to zstd and its identity checks see the change.)
    dest.seek(SeekFrom::Start(0)).map_err(EncodeError::Write)?;
    source.seek(SeekFrom::Start(0)).map_err(EncodeError::Read)?;
    let (object_sha256, object_size) = match unpack::rebuild_matching(&mut dest, &mut source) {
        Matched::Same {
            object_sha256,
            object_size,
        } => (object_sha256, object_size),
        Matched::Differs(why) => return Err(EncodeError::RoundTrip(why)),
        Matched::ObjectUnreadable(e) => return Err(EncodeError::Write(e)),
        Matched::OriginalUnreadable(e) => return Err(EncodeError::Read(e)),
    };
    Ok(Encoded {
        codec: Codec::Flac,
        fallback: None,
        sha256,
        size,
        object_sha256,
        object_size,
    })
}

/// Decodes a staged or downloaded object and checks that it rebuilds exactly
/// the original (`sha256`, `size`). Returns the object's own SHA-256 and
/// size; a damaged object is an `InvalidData` error.
pub fn verify(object: impl Read, sha256: &[u8; 32], size: u64) -> io::Result<([u8; 32], u64)> {
    let back = decode_from(object, io::sink())?;
    if (back.sha256, back.size) != (*sha256, size) {
        return Err(invalid(mismatch(&back, sha256, size)));
    }
    Ok((back.object_sha256, back.object_size))
}

fn mismatch(back: &Decoded, sha256: &[u8; 32], size: u64) -> String {
    format!(
        "object decodes to {} bytes with SHA-256 {}, the original is {size} bytes with {}",
        back.size,
        hex::encode(back.sha256),
        hex::encode(sha256)
    )
}

/// Writes the whole object: metadata, frames, then the blocks of the chunks
/// after the samples into the room left for them, and STREAMINFO last.
fn write_object(
    layout: &WavLayout,
    original: &mut HashingReader<impl Read>,
    object: &mut (impl Write + Seek),
) -> Result<(), EncodeError> {
    let w = EncodeError::Write;
    object.write_all(b"fLaC").map_err(w)?;
    write_block_header(object, STREAMINFO, false, 34).map_err(w)?;
    object.write_all(&[0; 34]).map_err(w)?;
    write_head(layout, original, object)?;
    let tail_at = object.stream_position().map_err(w)?;
    let tail_len: u64 = layout.tail().iter().map(|c| 8 + c.stored_len()).sum();
    object.seek(SeekFrom::Current(tail_len as i64)).map_err(w)?;

    let streaminfo = write_frames(layout, original, object)?;
    let (_, total) = parse_streaminfo(&streaminfo);
    if total != layout.samples() {
        return Err(EncodeError::RoundTrip(format!(
            "libFLAC counted {total} samples, the WAV has {}",
            layout.samples()
        )));
    }
    object.seek(SeekFrom::Start(tail_at)).map_err(w)?;
    let last = layout.tail().len().saturating_sub(1);
    for (i, chunk) in layout.tail().iter().enumerate() {
        copy_chunk(original, object, chunk, i == last, None)?;
    }
    let mut extra = [0u8; 1];
    if read_full(original, &mut extra).map_err(EncodeError::Read)? != 0 {
        return Err(EncodeError::Changed("it grew"));
    }
    object.seek(SeekFrom::Start(8)).map_err(w)?;
    object.write_all(&streaminfo).map_err(w)
}

/// Little-endian PCM samples of `width` bytes (2 or 3) as libFLAC's i32s;
/// one loop per width (`wav::inspect` admits 16- and 24-bit only), so the
/// 16-bit one, nearly every call, vectorises.
fn widen(bytes: &[u8], width: usize, samples: &mut Vec<i32>) {
    samples.clear();
    if width == 2 {
        let pairs = bytes.chunks_exact(2);
        samples.extend(pairs.map(|s| i32::from(i16::from_le_bytes([s[0], s[1]]))));
    } else {
        let triples = bytes.chunks_exact(3);
        samples.extend(triples.map(|s| i32::from_le_bytes([0, s[0], s[1], s[2]]) >> 8));
    }
}

/// The RIFF header, every chunk before the samples and the data chunk's
/// header, each in its own block, checking the bytes that flac -d writes
/// back itself against what `inspect` accepted.
fn write_head(
    layout: &WavLayout,
    original: &mut HashingReader<impl Read>,
    object: &mut impl Write,
) -> Result<(), EncodeError> {
    let mut riff = b"RIFF".to_vec();
    riff.extend_from_slice(&((layout.file_size - 8) as u32).to_le_bytes());
    riff.extend_from_slice(b"WAVE");
    copy_block(original, object, 12, false, Some(&riff))?;
    for chunk in layout.head() {
        let expected = (&chunk.id == b"fmt ").then(|| {
            let mut fmt = chunk_header(chunk);
            fmt.extend_from_slice(&layout.format.raw);
            fmt
        });
        copy_chunk(original, object, chunk, false, expected.as_deref())?;
    }
    let data = layout.data_chunk();
    copy_block(
        original,
        object,
        8,
        layout.tail().is_empty(),
        Some(&chunk_header(&data)),
    )
}

fn chunk_header(chunk: &Chunk) -> Vec<u8> {
    let mut header = chunk.id.to_vec();
    header.extend_from_slice(&chunk.size.to_le_bytes());
    header
}

fn copy_chunk(
    original: &mut HashingReader<impl Read>,
    object: &mut impl Write,
    chunk: &Chunk,
    last: bool,
    expected: Option<&[u8]>,
) -> Result<(), EncodeError> {
    let expected = expected
        .map(<[u8]>::to_vec)
        .unwrap_or_else(|| chunk_header(chunk));
    copy_block(original, object, chunk.stored_len(), last, Some(&expected))
}

/// Copies `len` bytes of the original into one `riff` APPLICATION block; the
/// first bytes must equal `starts_with` (else the file changed since inspect).
fn copy_block(
    original: &mut HashingReader<impl Read>,
    object: &mut impl Write,
    len: u64,
    last: bool,
    starts_with: Option<&[u8]>,
) -> Result<(), EncodeError> {
    let w = EncodeError::Write;
    write_block_header(object, APPLICATION, last, (len + 4) as u32).map_err(w)?;
    object.write_all(RIFF_ID).map_err(w)?;
    let prefix = starts_with.unwrap_or(&[]);
    let mut head = vec![0u8; prefix.len()];
    read_exact_or_changed(original, &mut head)?;
    if head != prefix {
        return Err(EncodeError::Changed(
            "its header differs from the one inspected",
        ));
    }
    object.write_all(&head).map_err(w)?;
    let rest = len - prefix.len() as u64;
    let copied = io::copy(&mut original.take(rest), object).map_err(w)?;
    if copied != rest {
        return Err(EncodeError::Changed("it shrank"));
    }
    Ok(())
}

/// Streams the samples through libFLAC, a bounded buffer at a time.
fn write_frames(
    layout: &WavLayout,
    original: &mut HashingReader<impl Read>,
    object: &mut impl Write,
) -> Result<[u8; 34], EncodeError> {
    let f = &layout.format;
    let params = StreamParams {
        channels: u32::from(f.channels),
        bits_per_sample: u32::from(f.bits_per_sample),
        sample_rate: f.sample_rate,
    };
    let align = usize::from(f.block_align);
    let width = layout.sample_bytes();
    let mut encoder =
        encoder::FrameEncoder::new(params, layout.samples(), object).map_err(EncodeError::Write)?;
    let mut bytes = vec![0u8; CHUNK / align * align];
    let mut samples = Vec::with_capacity(bytes.len() / width);
    let mut left = layout.data_len();
    while left > 0 {
        let n = bytes.len().min(left as usize);
        read_exact_or_changed(original, &mut bytes[..n])?;
        widen(&bytes[..n], width, &mut samples);
        encoder
            .write(&samples, params.channels)
            .map_err(EncodeError::Write)?;
        left -= n as u64;
    }
    if layout.data_len() % 2 == 1 {
        // flac -d writes a zero pad byte after odd-sized data (24-bit mono).
        let mut pad = [0u8; 1];
        read_exact_or_changed(original, &mut pad)?;
        if pad != [0] {
            return Err(EncodeError::NotFlacable(NotFlacable {
                reason: "the data chunk's pad byte is not zero".into(),
                already_compressed: false,
            }));
        }
    }
    encoder.finish().map_err(EncodeError::Write)
}

fn write_block_header(out: &mut impl Write, kind: u8, last: bool, len: u32) -> io::Result<()> {
    let len = len.to_be_bytes();
    out.write_all(&[kind | if last { 0x80 } else { 0 }, len[1], len[2], len[3]])
}

fn read_exact_or_changed(r: &mut impl Read, buf: &mut [u8]) -> Result<(), EncodeError> {
    if read_full(r, buf).map_err(EncodeError::Read)? < buf.len() {
        return Err(EncodeError::Changed("it shrank"));
    }
    Ok(())
}

/// What the stream carries, as STREAMINFO says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StreamParams {
    channels: u32,
    bits_per_sample: u32,
    sample_rate: u32,
}

/// The parameters and sample count a STREAMINFO body declares.
fn parse_streaminfo(b: &[u8; 34]) -> (StreamParams, u64) {
    let packed = u64::from_be_bytes([b[10], b[11], b[12], b[13], b[14], b[15], b[16], b[17]]);
    let params = StreamParams {
        sample_rate: (packed >> 44) as u32,
        channels: ((packed >> 41) & 7) as u32 + 1,
        bits_per_sample: ((packed >> 36) & 31) as u32 + 1,
    };
    (params, packed & ((1 << 36) - 1))
}

/// Runs `f`, turning a panic into an I/O error (nothing unwinds into C).
fn guarded<T>(f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err(io::Error::other("panic in a FLAC callback")))
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

#[cfg(test)]
mod tests;
