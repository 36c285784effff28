//! Rebuilding the original WAV from a FLAC object, reading it once front to
//! back: the stored `riff` blocks before the samples are written as they are
//! read, the frames are decoded into PCM as they arrive, and the blocks
//! stored for chunks after the samples wait in memory (at most
//! [`MAX_BUFFERED_TAIL`] bytes) until the samples are out. So an object can
//! be decoded straight from a network stream, with bounded memory.

use std::io::{self, BufRead, BufReader, Read, Write};

use super::{APPLICATION, RIFF_ID, STREAMINFO, decoder, invalid, parse_streaminfo};
use crate::codec::Decoded;
use crate::codec::wav::reference_fmt;
use crate::digest::{CHUNK, HashingReader, HashingWriter};

/// The most bytes of chunks after the samples the decoder holds: objects
/// made by recvault carry at most [`super::MAX_TAIL`]; this leaves room for
/// what `flac --keep-foreign-metadata` may have made.
pub const MAX_BUFFERED_TAIL: u64 = 16 << 20;

/// Decodes a FLAC object made by [`super::encode`] (or by
/// `flac --keep-foreign-metadata`) into `out`, streaming. A damaged or
/// foreign object is an `InvalidData` error (after writing whatever came
/// before the damage).
pub fn decode_from(object: impl Read, out: impl Write) -> io::Result<Decoded> {
    let mut wav = HashingWriter::new(out);
    let (object_sha256, object_size) = rebuild_into(object, &mut wav, true)?;
    let (_, sha256, size) = wav.finish();
    Ok(Decoded {
        sha256,
        size,
        object_sha256,
        object_size,
    })
}

/// The round-trip check: rebuilds the original from `object`, checking every
/// rebuilt byte against `original`, read front to back. A byte that differs,
/// or an original longer or shorter than what the object rebuilds, is
/// [`Matched::Differs`]. Byte for byte is stronger than comparing SHA-256s
/// (or than STREAMINFO's MD5, left unchecked), and reading the original
/// again from the page cache costs a third of hashing what was rebuilt.
pub(super) fn rebuild_matching(object: impl Read, original: impl Read) -> Matched {
    let mut wav = Matching {
        original: BufReader::with_capacity(CHUNK, original),
        at: 0,
        failed: None,
    };
    let rebuilt = rebuild_into(object, &mut wav, false).and_then(|digest| {
        wav.at_end()?;
        Ok(digest)
    });
    match (rebuilt, wav.failed) {
        (_, Some(e)) => Matched::OriginalUnreadable(e),
        (Ok((object_sha256, object_size)), None) => Matched::Same {
            object_sha256,
            object_size,
        },
        (Err(e), None) if is_damage(&e) => Matched::Differs(e.to_string()),
        (Err(e), None) => Matched::ObjectUnreadable(e),
    }
}

/// What [`rebuild_matching`] found.
pub(super) enum Matched {
    /// The object rebuilds the original exactly.
    Same {
        object_sha256: [u8; 32],
        object_size: u64,
    },
    /// It rebuilds something else, or is damaged: why.
    Differs(String),
    /// Reading the object failed.
    ObjectUnreadable(io::Error),
    /// Reading the original failed.
    OriginalUnreadable(io::Error),
}

fn is_damage(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
    )
}

/// Rebuilds the original from `object` into `wav`; returns the object's
/// SHA-256 and size.
fn rebuild_into(
    object: impl Read,
    wav: &mut impl Write,
    check_md5: bool,
) -> io::Result<([u8; 32], u64)> {
    let mut input = HashingReader::new(BufReader::with_capacity(CHUNK, object));
    let meta = read_metadata(&mut input, wav)?;
    let streaminfo = meta.streaminfo.ok_or_else(|| invalid("no STREAMINFO"))?;
    let samples = decoder::decode_frames(&streaminfo, &mut input, wav, check_md5)?;
    let (params, total) = parse_streaminfo(&streaminfo);
    let frame_bytes = u64::from(params.channels * params.bits_per_sample / 8);
    if samples != total || samples * frame_bytes != meta.data_size {
        return Err(invalid(format!(
            "object holds {samples} samples; STREAMINFO says {total}, the data chunk {} bytes",
            meta.data_size
        )));
    }
    if meta.data_size % 2 == 1 {
        wav.write_all(&[0])?;
    }
    wav.write_all(&meta.tail)?;
    wav.flush()?;
    Ok(input.finish())
}

/// A writer that takes only the bytes `original` holds next, in order.
struct Matching<R> {
    original: BufReader<R>,
    /// Bytes matched so far.
    at: u64,
    /// Reading the original failed (kept: the decoder reports its own error).
    failed: Option<io::Error>,
}

impl<R: Read> Matching<R> {
    /// Reads up to `want` of the original's next bytes, hands them to `f`,
    /// consumes them; `None` at the original's end.
    fn next_bytes<T>(&mut self, want: usize, f: impl FnOnce(&[u8]) -> T) -> io::Result<Option<T>> {
        let next = match self.original.fill_buf() {
            Ok(next) => next,
            Err(e) => {
                self.failed = Some(io::Error::new(e.kind(), e.to_string()));
                return Err(e);
            }
        };
        if next.is_empty() {
            return Ok(None);
        }
        let n = next.len().min(want);
        let out = f(&next[..n]);
        self.original.consume(n);
        Ok(Some(out))
    }

    /// The original must end where the rebuilt bytes did.
    fn at_end(&mut self) -> io::Result<()> {
        match self.next_bytes(1, |_| ())? {
            None => Ok(()),
            Some(()) => Err(invalid(format!(
                "object rebuilds {} bytes, the original is longer",
                self.at
            ))),
        }
    }
}

impl<R: Read> Write for Matching<R> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let at = self.at;
        let Some((n, differs)) = self.next_bytes(buf.len(), |next| {
            let same = next == &buf[..next.len()];
            let differs = (!same).then(|| next.iter().zip(buf).take_while(|(a, b)| a == b).count());
            (next.len(), differs)
        })?
        else {
            return Err(invalid(format!(
                "object rebuilds more bytes than the original's {at}"
            )));
        };
        if let Some(i) = differs {
            return Err(invalid(format!(
                "object rebuilds another byte than the original's at {}",
                at + i as u64
            )));
        }
        self.at += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The metadata section as it is walked: STREAMINFO, where the next `riff`
/// block goes, and what the stored chunks add up to.
#[derive(Default)]
struct Metadata {
    streaminfo: Option<[u8; 34]>,
    phase: Phase,
    riff_size: u64,
    /// Bytes of stored chunks (headers and pad bytes included), data excluded.
    chunk_bytes: u64,
    data_size: u64,
    /// The chunks stored for after the samples, as the WAV has them.
    tail: Vec<u8>,
}

/// Where the next `riff` block goes.
#[derive(Default, PartialEq)]
enum Phase {
    #[default]
    RiffHeader,
    BeforeData,
    AfterData,
}

/// Walks the metadata blocks, writing the stored WAV header chunks to `wav`.
fn read_metadata(
    input: &mut HashingReader<impl Read>,
    wav: &mut impl Write,
) -> io::Result<Metadata> {
    let mut magic = [0u8; 4];
    read_exact(input, &mut magic)?;
    if &magic != b"fLaC" {
        return Err(invalid("not a FLAC object"));
    }
    let mut meta = Metadata::default();
    loop {
        let mut header = [0u8; 4];
        read_exact(input, &mut header)?;
        let (last, kind) = (header[0] & 0x80 != 0, header[0] & 0x7f);
        let len = u64::from(u32::from_be_bytes([0, header[1], header[2], header[3]]));
        match kind {
            STREAMINFO if meta.streaminfo.is_none() && len == 34 => {
                let mut body = [0u8; 34];
                read_exact(input, &mut body)?;
                meta.streaminfo = Some(body);
            }
            _ if meta.streaminfo.is_none() => {
                return Err(invalid("STREAMINFO is not the first block"));
            }
            STREAMINFO | 127 => return Err(invalid("invalid metadata block")),
            APPLICATION if len >= 4 => {
                let mut id = [0u8; 4];
                read_exact(input, &mut id)?;
                if &id == RIFF_ID {
                    meta.riff_block(input, wav, len - 4)?;
                } else {
                    copy_exact(input, &mut io::sink(), len - 4)?;
                }
            }
            _ => copy_exact(input, &mut io::sink(), len)?,
        }
        if last {
            break;
        }
    }
    meta.check_sizes()?;
    Ok(meta)
}

impl Metadata {
    /// One stored chunk: written now if it comes before the samples,
    /// remembered (offset, length) if it comes after them.
    fn riff_block(
        &mut self,
        input: &mut HashingReader<impl Read>,
        wav: &mut impl Write,
        len: u64,
    ) -> io::Result<()> {
        match self.phase {
            Phase::RiffHeader => {
                let mut riff = [0u8; 12];
                if len != 12 {
                    return Err(invalid("first stored chunk is not a RIFF header"));
                }
                read_exact(input, &mut riff)?;
                if &riff[..4] != b"RIFF" || &riff[8..] != b"WAVE" {
                    return Err(invalid("first stored chunk is not a RIFF header"));
                }
                self.riff_size =
                    u64::from(u32::from_le_bytes([riff[4], riff[5], riff[6], riff[7]]));
                wav.write_all(&riff)?;
                self.phase = Phase::BeforeData;
            }
            Phase::BeforeData => {
                let mut header = [0u8; 8];
                if len < 8 {
                    return Err(invalid("stored chunk shorter than its header"));
                }
                read_exact(input, &mut header)?;
                wav.write_all(&header)?;
                match &header[..4] {
                    b"data" if len == 8 => {
                        self.data_size = u64::from(u32::from_le_bytes([
                            header[4], header[5], header[6], header[7],
                        ]));
                        self.phase = Phase::AfterData;
                    }
                    b"data" => return Err(invalid("stored data chunk header has a body")),
                    b"fmt " => self.fmt_block(input, wav, len - 8)?,
                    _ => copy_exact(input, wav, len - 8)?,
                }
                self.chunk_bytes += len;
            }
            Phase::AfterData => {
                if self.tail.len() as u64 + len > MAX_BUFFERED_TAIL {
                    return Err(invalid(format!(
                        "over {MAX_BUFFERED_TAIL} bytes of chunks after the samples"
                    )));
                }
                self.chunk_bytes += len;
                copy_exact(input, &mut self.tail, len)?;
            }
        }
        Ok(())
    }

    /// The stored `fmt ` body must be the one flac -d writes for STREAMINFO's
    /// format, or the reference tool would not rebuild the original.
    fn fmt_block(
        &mut self,
        input: &mut impl Read,
        wav: &mut impl Write,
        len: u64,
    ) -> io::Result<()> {
        let streaminfo = self
            .streaminfo
            .as_ref()
            .ok_or_else(|| invalid("no STREAMINFO"))?;
        let (params, _) = parse_streaminfo(streaminfo);
        let expected = reference_fmt(
            params.channels as u16,
            params.sample_rate,
            params.bits_per_sample as u16,
        );
        if len != expected.len() as u64 {
            return Err(invalid("stored fmt chunk does not match STREAMINFO"));
        }
        let mut body = vec![0u8; expected.len()];
        read_exact(input, &mut body)?;
        if body != expected {
            return Err(invalid("stored fmt chunk does not match STREAMINFO"));
        }
        wav.write_all(&body)
    }

    /// The stored RIFF size must be what the stored chunks and samples add up
    /// to (what flac -d writes back).
    fn check_sizes(&self) -> io::Result<()> {
        if self.phase != Phase::AfterData {
            return Err(invalid("object has no stored WAV header"));
        }
        if self.riff_size != 4 + self.chunk_bytes + self.data_size.div_ceil(2) * 2 {
            return Err(invalid("stored RIFF size does not match the stored chunks"));
        }
        Ok(())
    }
}

fn read_exact(input: &mut impl Read, buf: &mut [u8]) -> io::Result<()> {
    input.read_exact(buf).map_err(truncated)
}

/// Copies exactly `len` bytes; a short input means a truncated object.
fn copy_exact(input: &mut impl Read, out: &mut impl Write, len: u64) -> io::Result<()> {
    let copied = io::copy(&mut input.take(len), out)?;
    if copied != len {
        return Err(invalid("object is truncated"));
    }
    Ok(())
}

fn truncated(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        invalid("object is truncated")
    } else {
        e
    }
}
