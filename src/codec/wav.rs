//! RIFF/WAVE parsing for the FLAC codec: where a recording's samples are, what
//! surrounds them, and whether FLAC can carry the file so that the reference
//! tool (`flac -d --keep-foreign-metadata`, 1.4 and 1.5) rebuilds it
//! byte-for-byte.
//!
//! The parser reads chunk headers and the `fmt ` body only (seeking over
//! everything else), keeps at most [`MAX_CHUNKS`] chunk descriptors, and turns
//! every oddity of a hostile or broken file into a [`NotFlacable`] reason.

use std::fmt;
use std::io::{self, Read, Seek, SeekFrom};

/// At most this many chunks in a file FLAC takes: bounds the parser's memory.
pub const MAX_CHUNKS: usize = 1024;

/// Largest chunk (header and pad byte included) one APPLICATION block holds:
/// its 24-bit length covers the 4-byte application id too.
pub const MAX_FOREIGN_CHUNK: u64 = (1 << 24) - 1 - 4;

/// WAVE format tags (`wFormatTag`) recvault names in its reasons.
pub mod tag {
    pub const PCM: u16 = 0x0001;
    pub const MS_ADPCM: u16 = 0x0002;
    pub const IEEE_FLOAT: u16 = 0x0003;
    pub const ALAW: u16 = 0x0006;
    pub const MULAW: u16 = 0x0007;
    pub const IMA_ADPCM: u16 = 0x0011;
    pub const GSM610: u16 = 0x0031;
    pub const G721: u16 = 0x0040;
    pub const MPEG: u16 = 0x0050;
    pub const MPEGLAYER3: u16 = 0x0055;
    pub const EXTENSIBLE: u16 = 0xFFFE;
}

/// The tail shared by every KSDATAFORMAT_SUBTYPE GUID whose first two bytes
/// are a plain format tag (PCM, IEEE float, A-law, µ-law, …).
const SUBTYPE_TAIL: [u8; 14] = [
    0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71,
];

/// One RIFF chunk: its id, where its 8-byte header starts, its declared size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    pub id: [u8; 4],
    pub offset: u64,
    pub size: u32,
}

impl Chunk {
    /// Bytes the chunk occupies in the file: header, body and pad byte.
    pub fn stored_len(&self) -> u64 {
        8 + u64::from(self.size) + u64::from(self.size & 1)
    }
}

/// What the `fmt ` chunk says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    /// `wFormatTag` as written (0xFFFE for WAVE_FORMAT_EXTENSIBLE).
    pub tag: u16,
    /// For WAVE_FORMAT_EXTENSIBLE: the sub-format's tag, if its GUID is a standard one.
    pub subformat: Option<u16>,
    pub channels: u16,
    pub sample_rate: u32,
    pub byte_rate: u32,
    pub block_align: u16,
    pub bits_per_sample: u16,
    /// WAVE_FORMAT_EXTENSIBLE only.
    pub valid_bits: Option<u16>,
    /// WAVE_FORMAT_EXTENSIBLE only.
    pub channel_mask: Option<u32>,
    /// The chunk's body as written, up to its first 40 bytes.
    pub raw: Vec<u8>,
    /// The chunk's declared size.
    pub size: u32,
}

impl Format {
    /// The codec the samples are in (the sub-format's for EXTENSIBLE).
    pub fn codec(&self) -> Option<u16> {
        if self.tag == tag::EXTENSIBLE {
            self.subformat
        } else {
            Some(self.tag)
        }
    }
}

/// A WAV file FLAC can carry: its chunks in file order and its format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WavLayout {
    pub file_size: u64,
    pub format: Format,
    /// Every chunk in file order, `fmt ` and `data` included.
    pub chunks: Vec<Chunk>,
    /// Index of the `data` chunk in `chunks`.
    pub data: usize,
}

impl WavLayout {
    /// The `data` chunk.
    pub fn data_chunk(&self) -> Chunk {
        self.chunks[self.data]
    }
    /// Offset of the first sample byte.
    pub fn data_start(&self) -> u64 {
        self.data_chunk().offset + 8
    }
    /// Bytes of samples.
    pub fn data_len(&self) -> u64 {
        u64::from(self.data_chunk().size)
    }
    /// Samples per channel.
    pub fn samples(&self) -> u64 {
        self.data_len() / u64::from(self.format.block_align)
    }
    /// Bytes per sample of one channel (2 or 3).
    pub fn sample_bytes(&self) -> usize {
        usize::from(self.format.bits_per_sample / 8)
    }
    /// Chunks before `data`, in order.
    pub fn head(&self) -> &[Chunk] {
        &self.chunks[..self.data]
    }
    /// Chunks after `data`, in order.
    pub fn tail(&self) -> &[Chunk] {
        &self.chunks[self.data + 1..]
    }
}

/// Why a file is not stored as FLAC; the caller falls back to another codec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotFlacable {
    /// For the operator: what is wrong or unsupported, in a few words.
    pub reason: String,
    /// The audio is already compressed (GSM, ADPCM, MP3, Ogg, FLAC): a
    /// general-purpose compressor gains nothing, so store it as it is.
    pub already_compressed: bool,
}

impl fmt::Display for NotFlacable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for NotFlacable {}

/// Why [`inspect`] returned no layout.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// The file is readable but FLAC cannot carry it (fall back).
    #[error("not FLAC-able: {0}")]
    NotFlacable(NotFlacable),
    /// Reading failed (not a property of the file's contents).
    #[error("cannot read the recording: {0}")]
    Io(#[from] io::Error),
}

fn unfit(reason: impl Into<String>) -> InspectError {
    InspectError::NotFlacable(NotFlacable {
        reason: reason.into(),
        already_compressed: false,
    })
}

fn compressed(reason: impl Into<String>) -> InspectError {
    InspectError::NotFlacable(NotFlacable {
        reason: reason.into(),
        already_compressed: true,
    })
}

/// Reads the chunk list of a WAV file and decides whether FLAC can carry it.
/// Seeks (reads chunk headers and `fmt ` only); leaves the reader anywhere.
pub fn inspect<R: Read + Seek>(reader: R) -> Result<WavLayout, InspectError> {
    inspect_chunks(reader).map_err(|e| match e {
        // The chunk walk checked sizes against the file's length, so an early
        // end here means the file shrank while it was read.
        InspectError::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            unfit("truncated while it was read")
        }
        other => other,
    })
}

/// Reads the chunk list and format of a well-formed WAV file (every chunk
/// inside the RIFF chunk, which ends where the file does), whatever its
/// samples are: for readers of the samples themselves (VICIdial's legs,
/// mixed by `vicidial::move_mix`), who judge the format on their own.
pub fn read_layout<R: Read + Seek>(mut reader: R) -> Result<WavLayout, InspectError> {
    let file_size = reader.seek(SeekFrom::End(0))?;
    reader.seek(SeekFrom::Start(0))?;
    let riff_end = read_riff_header(&mut reader, file_size)?;
    let (chunks, format, data) = walk_chunks(&mut reader, riff_end)?;
    Ok(WavLayout {
        file_size,
        format,
        chunks,
        data,
    })
}

fn inspect_chunks<R: Read + Seek>(reader: R) -> Result<WavLayout, InspectError> {
    let layout = read_layout(reader)?;
    check_samples(&layout)?;
    check_rebuild(&layout)?;
    Ok(layout)
}

/// Checks the 12-byte RIFF header; returns where the RIFF chunk ends.
fn read_riff_header(r: &mut impl Read, file_size: u64) -> Result<u64, InspectError> {
    let mut head = [0u8; 12];
    let got = read_full(r, &mut head)?;
    let head = &head[..got];
    if head.len() < 12 || &head[..4] != b"RIFF" || &head[8..12] != b"WAVE" {
        return Err(not_riff(head));
    }
    let riff_end = 8 + u64::from(le32(&head[4..8]));
    if riff_end > file_size {
        return Err(unfit(format!(
            "truncated, or the header lies: RIFF size says {riff_end} bytes, the file has {file_size}"
        )));
    }
    if riff_end < file_size {
        return Err(unfit(format!(
            "{} bytes after the end of the RIFF chunk",
            file_size - riff_end
        )));
    }
    Ok(riff_end)
}

/// Names what a file that is not RIFF/WAVE looks like.
fn not_riff(head: &[u8]) -> InspectError {
    match head {
        [b'R', b'I', b'F', b'F', _, _, _, _, ..] => unfit("RIFF file, but not WAVE"),
        [b'R', b'F', b'6', b'4', ..] => unfit("RF64 WAV (over 4 GiB) is not supported"),
        [b'O', b'g', b'g', b'S', ..] => compressed("Ogg file"),
        [b'f', b'L', b'a', b'C', ..] => compressed("already FLAC"),
        [b'I', b'D', b'3', ..] => compressed("MP3 file"),
        [0xFF, b, ..] if b & 0xE0 == 0xE0 => compressed("MP3 file"),
        _ if head.len() < 12 => unfit(format!("too short for a WAV file ({} bytes)", head.len())),
        _ => unfit("not a RIFF/WAVE file"),
    }
}

/// Walks every chunk from offset 12 to `riff_end`.
fn walk_chunks(
    r: &mut (impl Read + Seek),
    riff_end: u64,
) -> Result<(Vec<Chunk>, Format, usize), InspectError> {
    let mut chunks = Vec::new();
    let mut format = None;
    let mut data = None;
    let mut offset = 12u64;
    while offset < riff_end {
        if riff_end - offset < 8 {
            return Err(unfit(format!(
                "{} stray bytes at the end of the RIFF chunk",
                riff_end - offset
            )));
        }
        if chunks.len() == MAX_CHUNKS {
            return Err(unfit(format!("more than {MAX_CHUNKS} chunks")));
        }
        let chunk = read_chunk_header(r, offset)?;
        check_chunk_fits(&chunk, riff_end)?;
        match &chunk.id {
            b"fmt " if format.is_some() => return Err(unfit("two fmt chunks")),
            b"fmt " => format = Some(read_format(r, &chunk)?),
            b"data" if data.is_some() => return Err(unfit("two data chunks")),
            b"data" if format.is_none() => return Err(unfit("no fmt chunk before the data chunk")),
            b"data" => data = Some(chunks.len()),
            _ => {}
        }
        chunks.push(chunk);
        offset += chunk.stored_len();
    }
    let format = format.ok_or_else(|| unfit("no fmt chunk"))?;
    let data = data.ok_or_else(|| unfit("no data chunk"))?;
    Ok((chunks, format, data))
}

fn read_chunk_header(r: &mut (impl Read + Seek), offset: u64) -> Result<Chunk, InspectError> {
    let mut header = [0u8; 8];
    r.seek(SeekFrom::Start(offset))?;
    if read_full(r, &mut header)? < 8 {
        return Err(unfit(format!(
            "file ends inside the chunk header at {offset}"
        )));
    }
    Ok(Chunk {
        id: [header[0], header[1], header[2], header[3]],
        offset,
        size: le32(&header[4..8]),
    })
}

/// A chunk must end (pad byte included) within the RIFF chunk.
fn check_chunk_fits(chunk: &Chunk, riff_end: u64) -> Result<(), InspectError> {
    let end = chunk.offset + chunk.stored_len();
    if end <= riff_end {
        return Ok(());
    }
    let left = riff_end - chunk.offset - 8;
    let name = id_text(&chunk.id);
    if chunk.size & 1 == 1 && end == riff_end + 1 {
        return Err(unfit(format!(
            "last chunk '{name}' has an odd size and no pad byte"
        )));
    }
    if &chunk.id == b"data" {
        return Err(unfit(format!(
            "truncated, or the header lies: data size says {} bytes, {left} follow",
            chunk.size
        )));
    }
    Err(unfit(format!(
        "chunk '{name}' says {} bytes, {left} follow",
        chunk.size
    )))
}

/// Parses the `fmt ` chunk body (its first 40 bytes at most).
fn read_format(r: &mut impl Read, chunk: &Chunk) -> Result<Format, InspectError> {
    if chunk.size < 16 {
        return Err(unfit(format!(
            "fmt chunk of {} bytes (needs 16)",
            chunk.size
        )));
    }
    let mut raw = vec![0u8; chunk.size.min(40) as usize];
    r.read_exact(&mut raw)?;
    let u16_at = |i: usize| u16::from_le_bytes([raw[i], raw[i + 1]]);
    let tag = u16_at(0);
    let mut format = Format {
        tag,
        subformat: None,
        channels: u16_at(2),
        sample_rate: le32(&raw[4..8]),
        byte_rate: le32(&raw[8..12]),
        block_align: u16_at(12),
        bits_per_sample: u16_at(14),
        valid_bits: None,
        channel_mask: None,
        raw: Vec::new(),
        size: chunk.size,
    };
    if tag == tag::EXTENSIBLE {
        if raw.len() < 40 || u16_at(16) < 22 {
            return Err(unfit("WAVE_FORMAT_EXTENSIBLE fmt chunk too short"));
        }
        format.valid_bits = Some(u16_at(18));
        format.channel_mask = Some(le32(&raw[20..24]));
        format.subformat = (raw[26..40] == SUBTYPE_TAIL).then(|| u16_at(24));
    }
    format.raw = raw;
    Ok(format)
}

/// The samples must be 16- or 24-bit integer PCM with a consistent header.
fn check_samples(layout: &WavLayout) -> Result<(), InspectError> {
    let f = &layout.format;
    let codec = f
        .codec()
        .ok_or_else(|| unfit("WAVE_FORMAT_EXTENSIBLE with an unknown sub-format"))?;
    if codec != tag::PCM {
        let name = codec_name(codec);
        let plain = matches!(codec, tag::IEEE_FLOAT | tag::ALAW | tag::MULAW);
        return Err(if plain { unfit(name) } else { compressed(name) });
    }
    let bits = f.bits_per_sample;
    if bits != 16 && bits != 24 {
        return Err(unfit(format!(
            "{bits}-bit PCM (FLAC is used for 16- and 24-bit)"
        )));
    }
    if f.valid_bits.is_some_and(|v| v != bits) {
        return Err(unfit(format!(
            "{}-bit samples in {bits}-bit containers",
            f.valid_bits.unwrap_or(0)
        )));
    }
    if !(1..=8).contains(&f.channels) {
        return Err(unfit(format!("{} channels", f.channels)));
    }
    if !(1..=655_350).contains(&f.sample_rate) {
        return Err(unfit(format!("sample rate {} Hz", f.sample_rate)));
    }
    let align = u32::from(f.channels) * u32::from(bits / 8);
    if u32::from(f.block_align) != align
        || u64::from(f.byte_rate) != u64::from(f.sample_rate) * u64::from(align)
    {
        return Err(unfit(format!(
            "fmt chunk contradicts itself (block align {}, byte rate {})",
            f.block_align, f.byte_rate
        )));
    }
    if !layout.data_len().is_multiple_of(u64::from(align)) {
        return Err(unfit(format!(
            "data size {} is not a whole number of {align}-byte frames",
            layout.data_len()
        )));
    }
    if layout.data_len() == 0 {
        return Err(unfit("no samples (flac would restore a RIFF size of 0)"));
    }
    Ok(())
}

/// The reference decoder writes its own RIFF header, `fmt ` chunk and data
/// header and then checks them against the stored ones: accept only files
/// whose `fmt ` chunk is exactly what both flac 1.4 and 1.5 write back, and
/// whose other chunks each fit in one APPLICATION block.
fn check_rebuild(layout: &WavLayout) -> Result<(), InspectError> {
    let f = &layout.format;
    let expected = reference_fmt(f.channels, f.sample_rate, f.bits_per_sample);
    if f.size as usize != expected.len() || f.raw != expected {
        let kind = if expected.len() == 40 {
            "WAVE_FORMAT_EXTENSIBLE"
        } else {
            "plain PCM"
        };
        return Err(unfit(format!(
            "fmt chunk ({} bytes, tag {:#06x}) is not the {kind} one flac -d writes back",
            f.size, f.tag
        )));
    }
    for chunk in layout.chunks.iter().filter(|c| &c.id != b"data") {
        if chunk.stored_len() > MAX_FOREIGN_CHUNK {
            return Err(unfit(format!(
                "chunk '{}' of {} bytes is over FLAC's 16 MiB metadata block",
                id_text(&chunk.id),
                chunk.size
            )));
        }
    }
    Ok(())
}

/// The `fmt ` body flac writes when decoding: plain PCM for 16-bit mono or
/// stereo, WAVE_FORMAT_EXTENSIBLE with the default channel mask otherwise.
pub fn reference_fmt(channels: u16, sample_rate: u32, bits: u16) -> Vec<u8> {
    let extensible = bits != 16 || channels > 2;
    // Wrapping, like the C it mirrors: never a panic on a hostile STREAMINFO.
    let align = channels.wrapping_mul(bits / 8);
    let format_tag = if extensible {
        tag::EXTENSIBLE
    } else {
        tag::PCM
    };
    let mut body = Vec::with_capacity(40);
    body.extend_from_slice(&format_tag.to_le_bytes());
    body.extend_from_slice(&channels.to_le_bytes());
    body.extend_from_slice(&sample_rate.to_le_bytes());
    body.extend_from_slice(&(sample_rate.wrapping_mul(u32::from(align))).to_le_bytes());
    body.extend_from_slice(&align.to_le_bytes());
    body.extend_from_slice(&bits.to_le_bytes());
    if extensible {
        body.extend_from_slice(&22u16.to_le_bytes());
        body.extend_from_slice(&bits.to_le_bytes());
        body.extend_from_slice(&default_channel_mask(channels).to_le_bytes());
        body.extend_from_slice(&tag::PCM.to_le_bytes());
        body.extend_from_slice(&SUBTYPE_TAIL);
    }
    body
}

/// The speaker mask flac assumes for a channel count (its decoder's table).
fn default_channel_mask(channels: u16) -> u32 {
    match channels {
        1 => 0x0004,
        2 => 0x0003,
        3 => 0x0007,
        4 => 0x0033,
        5 => 0x0607,
        6 => 0x060f,
        7 => 0x070f,
        8 => 0x063f,
        _ => 0,
    }
}

/// A name for a non-PCM codec, for the operator.
fn codec_name(codec: u16) -> String {
    match codec {
        tag::IEEE_FLOAT => "floating-point samples".into(),
        tag::ALAW => "A-law audio (format 6)".into(),
        tag::MULAW => "µ-law audio (format 7)".into(),
        tag::GSM610 => "GSM 6.10 audio (WAV49, format 0x31)".into(),
        tag::MS_ADPCM | tag::IMA_ADPCM => format!("ADPCM audio (format {codec:#06x})"),
        tag::G721 => "G.721 ADPCM audio (format 0x40)".into(),
        tag::MPEG | tag::MPEGLAYER3 => format!("MPEG audio in WAV (format {codec:#06x})"),
        _ => format!("compressed audio (format {codec:#06x})"),
    }
}

/// A chunk id for messages: printable ASCII as is, anything else escaped.
fn id_text(id: &[u8; 4]) -> String {
    id.iter()
        .flat_map(|b| b.escape_ascii())
        .map(char::from)
        .collect()
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// Reads until `buf` is full or the input ends; returns how much was read.
pub(crate) fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
pub(crate) mod tests;
