//! Hand-made WAV files (also used by the FLAC tests) and the parser's tests.

use std::io::Cursor;

use super::*;

/// Builds a WAV file chunk by chunk, able to lie in every header field.
#[derive(Clone)]
pub(crate) struct WavFile {
    pub fmt: Vec<u8>,
    pub before: Vec<(&'static [u8; 4], Vec<u8>)>,
    pub data: Vec<u8>,
    pub after: Vec<(&'static [u8; 4], Vec<u8>)>,
    /// Value of odd chunks' pad byte (0 in well-formed files).
    pub pad: u8,
    pub riff_size: Option<u32>,
    pub data_size: Option<u32>,
    pub trailing: Vec<u8>,
}

impl WavFile {
    /// Integer PCM with the `fmt ` chunk flac writes back (see `reference_fmt`).
    pub fn pcm(channels: u16, rate: u32, bits: u16, frames: usize) -> WavFile {
        WavFile {
            fmt: reference_fmt(channels, rate, bits),
            before: Vec::new(),
            data: speech_like(frames * usize::from(channels), bits),
            after: Vec::new(),
            pad: 0,
            riff_size: None,
            data_size: None,
            trailing: Vec::new(),
        }
    }

    /// 8 kHz 16-bit mono, as Asterisk's MixMonitor writes it.
    pub fn asterisk(frames: usize) -> WavFile {
        WavFile::pcm(1, 8000, 16, frames)
    }

    /// A `fmt ` chunk of another codec (`bits`, `align` as that codec has them).
    pub fn with_codec(mut self, tag: u16, bits: u16, align: u16) -> WavFile {
        let rate = le32(&self.fmt[4..8]);
        let mut fmt = Vec::new();
        fmt.extend_from_slice(&tag.to_le_bytes());
        fmt.extend_from_slice(&1u16.to_le_bytes());
        fmt.extend_from_slice(&rate.to_le_bytes());
        fmt.extend_from_slice(&(rate * u32::from(align)).to_le_bytes());
        fmt.extend_from_slice(&align.to_le_bytes());
        fmt.extend_from_slice(&bits.to_le_bytes());
        self.fmt = fmt;
        self
    }

    pub fn bytes(&self) -> Vec<u8> {
        let mut body = b"WAVE".to_vec();
        for (id, chunk) in &self.before {
            self.put(&mut body, id, chunk, None);
        }
        self.put(&mut body, b"fmt ", &self.fmt, None);
        self.put(&mut body, b"data", &self.data, self.data_size);
        for (id, chunk) in &self.after {
            self.put(&mut body, id, chunk, None);
        }
        let mut file = b"RIFF".to_vec();
        let size = self.riff_size.unwrap_or(body.len() as u32);
        file.extend_from_slice(&size.to_le_bytes());
        file.extend_from_slice(&body);
        file.extend_from_slice(&self.trailing);
        file
    }

    fn put(&self, out: &mut Vec<u8>, id: &[u8; 4], body: &[u8], size: Option<u32>) {
        out.extend_from_slice(id);
        out.extend_from_slice(&size.unwrap_or(body.len() as u32).to_le_bytes());
        out.extend_from_slice(body);
        if body.len() % 2 == 1 {
            out.push(self.pad);
        }
    }
}

/// Deterministic samples that look like speech over line noise: a few
/// wandering tones plus noise, little-endian, `bits` 16 or 24.
pub(crate) fn speech_like(samples: usize, bits: u16) -> Vec<u8> {
    let mut seed = 0x2545_f491_u32;
    let mut out = Vec::with_capacity(samples * usize::from(bits / 8));
    for i in 0..samples {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let noise = f64::from((seed >> 16) as i16) / 400.0;
        let t = i as f64 / 8000.0;
        let voice = 6000.0 * (t * 310.0).sin() * (t * 3.0).sin() + 2500.0 * (t * 1130.0).sin();
        let v = (voice + noise) as i32;
        match bits {
            24 => out.extend_from_slice(&(v * 256 + (seed as i32 & 0xff)).to_le_bytes()[..3]),
            _ => out.extend_from_slice(&(v as i16).to_le_bytes()),
        }
    }
    out
}

/// 16-bit stereo in a WAVE_FORMAT_EXTENSIBLE header (standard speaker mask).
pub(crate) fn extensible_16_bit_stereo() -> WavFile {
    let mut wav = WavFile::pcm(2, 8000, 16, 10);
    let mut ext = reference_fmt(3, 8000, 16);
    ext[2..4].copy_from_slice(&2u16.to_le_bytes());
    ext[8..12].copy_from_slice(&32000u32.to_le_bytes());
    ext[12..14].copy_from_slice(&4u16.to_le_bytes());
    ext[20..24].copy_from_slice(&3u32.to_le_bytes());
    wav.fmt = ext;
    wav
}

/// Chunks a broadcast WAV or a Windows tool adds, odd sizes included.
pub(crate) fn with_extra_chunks(mut wav: WavFile) -> WavFile {
    wav.before.push((b"bext", vec![b'B'; 602]));
    wav.before.push((b"JUNK", vec![0; 27]));
    wav.after
        .push((b"LIST", b"INFOICMT\x07\0\0\0campaign".to_vec()));
    wav.after.push((b"fact", 800u32.to_le_bytes().to_vec()));
    wav.after.push((b"x\x01y ", vec![9; 3]));
    wav.pad = 0xAB;
    wav
}

pub(crate) fn reason(bytes: &[u8]) -> NotFlacable {
    match inspect(Cursor::new(bytes)) {
        Err(InspectError::NotFlacable(n)) => n,
        Err(e) => panic!("I/O error on a byte slice: {e}"),
        Ok(layout) => panic!("accepted: {layout:?}"),
    }
}

fn assert_reason(bytes: &[u8], words: &str) -> NotFlacable {
    let why = reason(bytes);
    assert!(
        why.reason.contains(words),
        "{:?} lacks {words:?}",
        why.reason
    );
    why
}

#[test]
fn an_asterisk_recording_is_flacable() {
    let wav = WavFile::asterisk(8000).bytes();
    let layout = inspect(Cursor::new(&wav)).unwrap();
    assert_eq!(layout.file_size, wav.len() as u64);
    assert_eq!((layout.data_start(), layout.data_len()), (44, 16000));
    assert_eq!(layout.samples(), 8000);
    assert_eq!(
        (layout.format.channels, layout.format.sample_rate),
        (1, 8000)
    );
    assert_eq!(layout.head().len(), 1);
    assert!(layout.tail().is_empty());
}

#[test]
fn extra_chunks_before_and_after_the_data_are_listed_in_order() {
    let wav = with_extra_chunks(WavFile::asterisk(101)).bytes();
    let layout = inspect(Cursor::new(&wav)).unwrap();
    let ids: Vec<&[u8; 4]> = layout.chunks.iter().map(|c| &c.id).collect();
    assert_eq!(
        ids,
        [
            b"bext", b"JUNK", b"fmt ", b"data", b"LIST", b"fact", b"x\x01y "
        ]
    );
    let junk = layout.chunks[1];
    assert_eq!((junk.size, junk.stored_len()), (27, 36));
    // Chunks tile the file exactly, pad bytes included.
    let end = layout.chunks.iter().fold(12, |at, c| {
        assert_eq!(c.offset, at);
        at + c.stored_len()
    });
    assert_eq!(end, wav.len() as u64);
    assert_eq!(layout.samples(), 101);
}

#[test]
fn stereo_16_khz_and_24_bit_extensible_are_flacable() {
    for (channels, rate, bits) in [
        (2, 8000, 16),
        (1, 16000, 16),
        (2, 16000, 16),
        (1, 8000, 24),
        (2, 48000, 24),
        (3, 8000, 16),
    ] {
        let wav = WavFile::pcm(channels, rate, bits, 333).bytes();
        let layout =
            inspect(Cursor::new(&wav)).unwrap_or_else(|e| panic!("{channels}/{rate}/{bits}: {e}"));
        assert_eq!(layout.format.bits_per_sample, bits);
        assert_eq!(layout.samples(), 333);
        assert_eq!(
            layout.format.tag == tag::EXTENSIBLE,
            bits == 24 || channels > 2
        );
    }
}

#[test]
fn headers_flac_would_not_write_back_are_refused() {
    // 24-bit in a plain PCM header: flac -d writes WAVE_FORMAT_EXTENSIBLE.
    let mut wav = WavFile::pcm(1, 8000, 24, 10);
    wav.fmt = wav.fmt[..16].to_vec();
    wav.fmt[..2].copy_from_slice(&tag::PCM.to_le_bytes());
    assert_reason(
        &wav.bytes(),
        "WAVE_FORMAT_EXTENSIBLE one flac -d writes back",
    );
    // 16-bit stereo in an EXTENSIBLE header: flac 1.4 writes plain PCM back.
    assert_reason(
        &extensible_16_bit_stereo().bytes(),
        "plain PCM one flac -d writes back",
    );
    // A PCM fmt chunk with cbSize (18 bytes): flac 1.4 drops the cbSize.
    let mut wav = WavFile::asterisk(10);
    wav.fmt.extend_from_slice(&[0, 0]);
    assert_reason(&wav.bytes(), "fmt chunk (18 bytes");
    // A non-default speaker mask.
    let mut wav = WavFile::pcm(1, 8000, 24, 10);
    wav.fmt[20..24].copy_from_slice(&1u32.to_le_bytes());
    assert_reason(&wav.bytes(), "is not the WAVE_FORMAT_EXTENSIBLE one");
}

#[test]
fn other_codecs_are_refused_with_their_name() {
    let base = WavFile::asterisk(80);
    let cases: [(u16, u16, u16, &str, bool); 6] = [
        (tag::MULAW, 8, 1, "µ-law", false),
        (tag::ALAW, 8, 1, "A-law", false),
        (tag::IEEE_FLOAT, 32, 4, "floating-point", false),
        (tag::GSM610, 0, 65, "GSM 6.10", true),
        (tag::IMA_ADPCM, 4, 256, "ADPCM", true),
        (tag::MPEGLAYER3, 0, 1, "MPEG", true),
    ];
    for (tag, bits, align, words, already) in cases {
        let why = assert_reason(&base.clone().with_codec(tag, bits, align).bytes(), words);
        assert_eq!(why.already_compressed, already, "{words}");
    }
    let eight = base.clone().with_codec(tag::PCM, 8, 1).bytes();
    assert_reason(&eight, "8-bit PCM");
    let mut float_ext = WavFile::pcm(1, 8000, 24, 10);
    float_ext.fmt[24..26].copy_from_slice(&tag::IEEE_FLOAT.to_le_bytes());
    assert_reason(&float_ext.bytes(), "floating-point");
    let mut unknown_ext = WavFile::pcm(1, 8000, 24, 10);
    unknown_ext.fmt[30] ^= 1;
    assert_reason(&unknown_ext.bytes(), "unknown sub-format");
}

#[test]
fn headers_that_lie_are_refused() {
    let good = WavFile::asterisk(100);
    let mut w = good.clone();
    w.riff_size = Some(1_000_000);
    assert_reason(&w.bytes(), "RIFF size says 1000008 bytes");
    let mut w = good.clone();
    w.riff_size = Some(100);
    assert_reason(&w.bytes(), "after the end of the RIFF chunk");
    let mut w = good.clone();
    w.data_size = Some(0xFFFF_FFF0);
    assert_reason(&w.bytes(), "data size says 4294967280 bytes");
    let mut w = good.clone();
    w.data.push(7);
    w.pad = 0;
    assert_reason(&w.bytes(), "not a whole number of 2-byte frames");
    let mut w = good.clone();
    w.trailing = b"garbage".to_vec();
    assert_reason(&w.bytes(), "7 bytes after the end");
    let mut w = good.clone();
    w.data.clear();
    assert_reason(&w.bytes(), "no samples");
}

#[test]
fn broken_chunk_lists_are_refused() {
    let good = WavFile::asterisk(10).bytes();
    // fmt missing: rename it.
    let mut no_fmt = good.clone();
    no_fmt[12..16].copy_from_slice(b"fmu ");
    assert_reason(&no_fmt, "no fmt chunk before the data chunk");
    let mut no_data = good.clone();
    no_data[36..40].copy_from_slice(b"dat4");
    assert_reason(&no_data, "no data chunk");
    let mut w = WavFile::asterisk(10);
    w.before.push((b"data", vec![0; 4]));
    assert_reason(&w.bytes(), "no fmt chunk before the data chunk");
    let mut w = WavFile::asterisk(10);
    w.after.push((b"data", vec![0; 4]));
    assert_reason(&w.bytes(), "two data chunks");
    let mut w = WavFile::asterisk(10);
    w.after.push((b"fmt ", w.fmt.clone()));
    assert_reason(&w.bytes(), "two fmt chunks");
    let mut w = WavFile::asterisk(10);
    w.fmt.truncate(14);
    assert_reason(&w.bytes(), "fmt chunk of 14 bytes");
    // An odd last chunk whose pad byte the writer forgot.
    let mut w = WavFile::asterisk(10);
    w.after.push((b"note", vec![1; 5]));
    let mut bytes = w.bytes();
    bytes.pop();
    let riff = (bytes.len() - 8) as u32;
    bytes[4..8].copy_from_slice(&riff.to_le_bytes());
    assert_reason(&bytes, "odd size and no pad byte");
    let mut w = WavFile::asterisk(10);
    w.before = (0..MAX_CHUNKS).map(|_| (b"JUNK", Vec::new())).collect();
    assert_reason(&w.bytes(), "more than 1024 chunks");
}

#[test]
fn inconsistent_formats_are_refused() {
    let mut w = WavFile::asterisk(10);
    w.fmt[12] = 4;
    assert_reason(&w.bytes(), "contradicts itself");
    let mut w = WavFile::asterisk(10);
    w.fmt[2] = 0;
    assert_reason(&w.bytes(), "0 channels");
    let mut w = WavFile::asterisk(10);
    w.fmt[4..8].copy_from_slice(&0u32.to_le_bytes());
    assert_reason(&w.bytes(), "sample rate 0 Hz");
}

#[test]
fn a_chunk_too_big_for_one_metadata_block_is_refused() {
    let mut w = WavFile::asterisk(10);
    w.after.push((b"LIST", vec![0; MAX_FOREIGN_CHUNK as usize]));
    assert_reason(&w.bytes(), "over FLAC's 16 MiB metadata block");
}

#[test]
fn files_that_are_not_wav_are_named() {
    for (bytes, words, already) in [
        (&b""[..], "too short for a WAV file (0 bytes)", false),
        (b"ID3\x04\0\0\0\0\0\0\0\0\0\0", "MP3 file", true),
        (b"\xff\xfb\x90\x64\0\0\0\0\0\0\0\0\0", "MP3 file", true),
        (b"OggS\0\x02\0\0\0\0\0\0\0\0", "Ogg file", true),
        (b"fLaC\0\0\0\x22\0\0\0\0\0\0", "already FLAC", true),
        (b"RF64\xff\xff\xff\xffWAVEds64", "RF64", false),
        (b"RIFF\x04\0\0\0AVI ", "RIFF file, but not WAVE", false),
        (b"<html><body>oops</body>", "not a RIFF/WAVE file", false),
    ] {
        assert_eq!(
            assert_reason(bytes, words).already_compressed,
            already,
            "{words}"
        );
    }
}

#[test]
fn every_truncation_is_refused_without_panicking() {
    let wav = with_extra_chunks(WavFile::pcm(2, 8000, 16, 40)).bytes();
    assert!(inspect(Cursor::new(&wav)).is_ok());
    for len in 0..wav.len() {
        let why = reason(&wav[..len]);
        assert!(!why.reason.is_empty(), "length {len}");
    }
}

#[test]
fn every_single_byte_change_in_the_headers_is_handled() {
    let wav = with_extra_chunks(WavFile::pcm(1, 8000, 24, 40)).bytes();
    let layout = inspect(Cursor::new(&wav)).unwrap();
    let header_end = layout.data_start() as usize;
    for at in 0..header_end {
        for value in [0x00, 0x01, 0x7f, 0x80, 0xff, wav[at] ^ 0x10] {
            let mut bad = wav.clone();
            bad[at] = value;
            // Accepted or refused with a reason, never a panic or I/O error.
            if let Err(e) = inspect(Cursor::new(&bad)) {
                assert!(matches!(e, InspectError::NotFlacable(_)), "{e}");
            }
        }
    }
}
