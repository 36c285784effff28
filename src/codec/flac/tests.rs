//! FLAC codec tests: bit-exact round trips for every WAV kind FLAC takes,
//! the reference layout, fallbacks, damaged objects, hostile I/O.
//! `reference.rs` runs Debian's `flac` on the same objects.

use std::io::{self, Cursor, Read, Seek, SeekFrom, Write};

use super::*;
use crate::codec::wav::tests::{WavFile, extensible_16_bit_stereo, with_extra_chunks};
use crate::codec::wav::{self, tag};
use crate::digest::sha256;

mod reference;

/// Every kind of WAV FLAC carries, hand-made.
pub(super) fn kinds() -> Vec<(&'static str, Vec<u8>)> {
    let mut tail_only = WavFile::asterisk(4097);
    tail_only
        .after
        .push((b"LIST", b"INFOISFT\x08\0\0\0Asterisk".to_vec()));
    let mut odd24 = WavFile::pcm(1, 8000, 24, 333);
    odd24.after.push((b"note", vec![5; 7]));
    vec![
        ("asterisk 8 kHz mono", WavFile::asterisk(24_000).bytes()),
        (
            "extra chunks, odd sizes, pad bytes",
            with_extra_chunks(WavFile::asterisk(5000)).bytes(),
        ),
        ("chunks after the data", tail_only.bytes()),
        ("stereo", WavFile::pcm(2, 8000, 16, 9000).bytes()),
        ("16 kHz mono", WavFile::pcm(1, 16000, 16, 16000).bytes()),
        (
            "16 kHz stereo with chunks",
            with_extra_chunks(WavFile::pcm(2, 16000, 16, 3000)).bytes(),
        ),
        ("24-bit EXTENSIBLE, odd data size", odd24.bytes()),
        (
            "24-bit 48 kHz stereo",
            WavFile::pcm(2, 48000, 24, 5000).bytes(),
        ),
        (
            "3 channels EXTENSIBLE",
            WavFile::pcm(3, 8000, 16, 2000).bytes(),
        ),
        ("one sample", WavFile::asterisk(1).bytes()),
        (
            "one sample, chunks around",
            with_extra_chunks(WavFile::asterisk(1)).bytes(),
        ),
    ]
}

/// Encodes `wav` in memory, checks every hash and size, decodes it back.
fn round_trip(wav: &[u8]) -> (Encoded, Vec<u8>) {
    let mut object = Cursor::new(Vec::new());
    let enc = encode(Cursor::new(wav), &mut object).unwrap_or_else(|e| panic!("{e}"));
    let object = object.into_inner();
    assert_eq!((enc.sha256, enc.size), (sha256(wav), wav.len() as u64));
    assert_eq!(
        (enc.object_sha256, enc.object_size),
        (sha256(&object), object.len() as u64)
    );
    let mut back = Vec::new();
    let decoded = decode_from(Cursor::new(&object), &mut back).unwrap();
    assert!(back == wav, "decoded WAV differs from the original");
    assert_eq!((decoded.sha256, decoded.size), (enc.sha256, enc.size));
    (enc, object)
}

#[test]
fn every_kind_round_trips_bit_exact() {
    for (name, wav) in kinds() {
        let layout = wav::inspect(Cursor::new(&wav)).unwrap();
        let (enc, object) = round_trip(&wav);
        assert_eq!(enc.codec, Codec::Flac, "{name}");
        let (params, samples) = parse_streaminfo(&object[8..42].try_into().unwrap());
        assert_eq!(samples, layout.samples(), "{name}");
        assert_eq!(object[26..42], [0; 16], "{name}: MD5 left unset");
        assert_eq!(
            (params.channels, params.sample_rate),
            (u32::from(layout.format.channels), layout.format.sample_rate)
        );
    }
}

#[test]
fn speech_takes_fewer_bytes() {
    let wav = WavFile::asterisk(80_000).bytes();
    let (enc, _) = round_trip(&wav);
    assert!(
        enc.object_size * 10 < enc.size * 8,
        "{} of {}",
        enc.object_size,
        enc.size
    );
}

/// Splits an object's metadata into (type, last, body) blocks.
fn blocks(object: &[u8]) -> Vec<(u8, bool, &[u8])> {
    assert_eq!(&object[..4], b"fLaC");
    let mut at = 4;
    let mut out = Vec::new();
    loop {
        let len = u32::from_be_bytes([0, object[at + 1], object[at + 2], object[at + 3]]) as usize;
        let (kind, last) = (object[at] & 0x7f, object[at] & 0x80 != 0);
        out.push((kind, last, &object[at + 4..at + 4 + len]));
        at += 4 + len;
        if last {
            return out;
        }
    }
}

#[test]
fn chunks_are_stored_the_way_flac_keep_foreign_metadata_stores_them() {
    let wav = with_extra_chunks(WavFile::asterisk(700)).bytes();
    let layout = wav::inspect(Cursor::new(&wav)).unwrap();
    let (_, object) = round_trip(&wav);
    let blocks = blocks(&object);
    assert_eq!((blocks[0].0, blocks[0].2.len()), (0, 34));
    // One `riff` block per chunk, in file order: RIFF header, whole chunks
    // (pad bytes included), only the header of the data chunk.
    let mut expected = vec![&wav[..12]];
    for c in &layout.chunks {
        let len = if &c.id == b"data" { 8 } else { c.stored_len() };
        expected.push(&wav[c.offset as usize..(c.offset + len) as usize]);
    }
    let stored: Vec<&[u8]> = blocks[1..]
        .iter()
        .map(|(kind, _, body)| {
            assert_eq!((*kind, &body[..4]), (APPLICATION, &b"riff"[..]));
            &body[4..]
        })
        .collect();
    assert_eq!(stored, expected);
    assert!(
        blocks.iter().rev().skip(1).all(|b| !b.1),
        "only the last block is marked last"
    );
}

#[test]
fn inputs_flac_cannot_carry_fall_back_without_writing() {
    let base = WavFile::asterisk(100);
    let mut lying = base.clone();
    lying.data_size = Some(1 << 30);
    let truncated = base.bytes()[..150].to_vec();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("µ-law", base.clone().with_codec(tag::MULAW, 8, 1).bytes()),
        ("A-law", base.clone().with_codec(tag::ALAW, 8, 1).bytes()),
        (
            "GSM 6.10",
            base.clone().with_codec(tag::GSM610, 0, 65).bytes(),
        ),
        ("8-bit PCM", base.clone().with_codec(tag::PCM, 8, 1).bytes()),
        (
            "floating-point",
            base.clone().with_codec(tag::IEEE_FLOAT, 32, 4).bytes(),
        ),
        ("data size says", lying.bytes()),
        ("RIFF size says", truncated),
        ("no samples", WavFile::asterisk(0).bytes()),
        (
            "plain PCM one flac -d writes back",
            extensible_16_bit_stereo().bytes(),
        ),
        ("MP3 file", b"ID3\x03\0\0\0\0\0\0 and then frames".to_vec()),
    ];
    for (words, bytes) in cases {
        let mut dest = Cursor::new(Vec::new());
        match encode(Cursor::new(&bytes), &mut dest) {
            Err(EncodeError::NotFlacable(why)) => {
                assert!(why.reason.contains(words), "{why} lacks {words:?}")
            }
            other => panic!("{words}: {other:?}"),
        }
        assert!(
            dest.get_ref().is_empty(),
            "{words}: wrote to the staging file"
        );
    }
}

#[test]
fn chunks_after_the_samples_are_bounded_both_ways() {
    // Over MAX_TAIL after the samples: the decoder would have to hold them.
    let mut wav = WavFile::asterisk(100);
    wav.after.push((b"big1", vec![7; (MAX_TAIL / 2) as usize]));
    wav.after.push((b"big2", vec![8; (MAX_TAIL / 2) as usize]));
    let err = encode(Cursor::new(wav.bytes()), Cursor::new(Vec::new())).unwrap_err();
    assert!(
        matches!(&err, EncodeError::NotFlacable(n) if n.reason.contains("after the samples")),
        "{err}"
    );
    // Just under it: FLAC, and a plain reader decodes it.
    wav.after.pop();
    let (_, object) = round_trip(&wav.bytes());
    let mut back = Vec::new();
    decode_from(&object[..], &mut back).unwrap();
    assert!(back == wav.bytes());
    // A hostile object with more after the samples than the decoder holds
    // is refused before it is buffered.
    let mut hostile = b"fLaC".to_vec();
    let head: Vec<_> = blocks(&object)
        .into_iter()
        .take_while(|(_, _, body)| !body[4..].starts_with(b"big1"))
        .collect();
    let mut add = |body: &[u8], last: bool| {
        hostile.push(if last { 0x80 } else { 0 } | head_kind(body));
        hostile.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        hostile.extend_from_slice(body);
    };
    for (_, _, body) in &head {
        add(body, false);
    }
    let mut big = b"riffJUNK".to_vec();
    big.extend_from_slice(&((1u32 << 24) - 17).to_le_bytes());
    big.resize((1 << 24) - 1, 0);
    add(&big, false);
    add(&big, true);
    let err = decode_from(&hostile[..], io::sink()).unwrap_err();
    assert!(err.to_string().contains("after the samples"), "{err}");
}

/// The block type of a body [`blocks`] returned: STREAMINFO is 34 bytes.
fn head_kind(body: &[u8]) -> u8 {
    if body.len() == 34 && !body.starts_with(RIFF_ID) {
        STREAMINFO
    } else {
        APPLICATION
    }
}

#[test]
fn a_nonzero_pad_byte_after_odd_data_falls_back() {
    let mut wav = WavFile::pcm(1, 8000, 24, 3);
    wav.pad = 0x55;
    let err = encode(Cursor::new(wav.bytes()), Cursor::new(Vec::new())).unwrap_err();
    assert!(
        matches!(&err, EncodeError::NotFlacable(n) if n.reason.contains("pad byte")),
        "{err}"
    );
}

#[test]
fn every_flipped_byte_is_caught_or_harmless() {
    let wav = with_extra_chunks(WavFile::pcm(2, 8000, 16, 600)).bytes();
    let (enc, object) = round_trip(&wav);
    let mut harmless = Vec::new();
    for at in 0..object.len() {
        let mut bad = object.clone();
        bad[at] ^= 0x21;
        if verify(Cursor::new(&bad), &enc.sha256, enc.size).is_ok() {
            harmless.push(at);
        }
    }
    // Only STREAMINFO's block- and frame-size hints (bytes 8..18) may change
    // without changing what the object rebuilds.
    assert!(
        harmless.iter().all(|at| (8..18).contains(at)),
        "{harmless:?}"
    );
    assert!(verify(Cursor::new(&object), &enc.sha256, enc.size).is_ok());
}

#[test]
fn a_damaged_object_fails_verification_with_invalid_data() {
    let wav = WavFile::asterisk(20_000).bytes();
    let (enc, object) = round_trip(&wav);
    for at in [object.len() / 2, object.len() - 1] {
        let mut bad = object.clone();
        bad[at] ^= 0xff;
        let err = verify(Cursor::new(&bad), &enc.sha256, enc.size).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "byte {at}: {err}");
    }
    let err = verify(Cursor::new(&object), &[0; 32], enc.size).unwrap_err();
    assert!(err.to_string().contains("the original is"), "{err}");
}

#[test]
fn every_truncation_of_an_object_is_caught() {
    let wav = with_extra_chunks(WavFile::asterisk(300)).bytes();
    let (_, object) = round_trip(&wav);
    for len in 0..object.len() {
        assert!(
            decode_from(Cursor::new(&object[..len]), io::sink()).is_err(),
            "length {len}"
        );
    }
    let mut longer = object.clone();
    longer.extend_from_slice(b"junk after the last frame");
    assert!(decode_from(Cursor::new(&longer), io::sink()).is_err());
}

#[test]
fn staged_files_on_disk_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let (src, obj) = (dir.path().join("a.wav"), dir.path().join("a.flac"));
    let wav = with_extra_chunks(WavFile::pcm(2, 16000, 16, 40_000)).bytes();
    std::fs::write(&src, &wav).unwrap();
    let mut dest = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&obj)
        .unwrap();
    let enc = encode(std::fs::File::open(&src).unwrap(), &mut dest).unwrap();
    drop(dest);
    assert_eq!(enc.object_sha256, sha256(&std::fs::read(&obj).unwrap()));
    let mut back = Vec::new();
    let decoded = decode_from(std::fs::File::open(&obj).unwrap(), &mut back).unwrap();
    assert_eq!((decoded.sha256, decoded.size), (enc.sha256, enc.size));
    assert!(back == wav);
}

/// A recording whose length changes between inspection and encoding: its
/// seek-to-end says `claimed`, its reads give `data`.
struct Moving {
    data: Cursor<Vec<u8>>,
    claimed: u64,
}

impl Read for Moving {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.data.read(buf)
    }
}

impl Seek for Moving {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        match pos {
            SeekFrom::End(0) => Ok(self.claimed),
            other => self.data.seek(other),
        }
    }
}

#[test]
fn a_recording_that_shrinks_or_grows_while_read_is_refused() {
    let wav = WavFile::asterisk(50_000).bytes();
    let claimed = wav.len() as u64;
    let shrunk = Moving {
        data: Cursor::new(wav[..wav.len() - 1000].to_vec()),
        claimed,
    };
    let mut grown = wav.clone();
    grown.extend_from_slice(&[1; 10]);
    let grown = Moving {
        data: Cursor::new(grown),
        claimed,
    };
    for (source, words) in [(shrunk, "shrank"), (grown, "grew")] {
        let err = encode(source, Cursor::new(Vec::new())).unwrap_err();
        assert!(
            matches!(err, EncodeError::Changed(w) if w.contains(words)),
            "{err}"
        );
    }
}

/// A staging file on a disk that fills up after `room` bytes.
struct FullDisk {
    inner: Cursor<Vec<u8>>,
    room: u64,
}

impl Write for FullDisk {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.inner.position() + buf.len() as u64 > self.room {
            return Err(io::Error::from_raw_os_error(28)); // ENOSPC
        }
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for FullDisk {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}

impl Seek for FullDisk {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

#[test]
fn a_full_disk_is_a_write_error() {
    let wav = WavFile::asterisk(400_000).bytes();
    for room in [0, 100, 300_000] {
        let dest = FullDisk {
            inner: Cursor::new(Vec::new()),
            room,
        };
        let err = encode(Cursor::new(&wav), dest).unwrap_err();
        assert!(
            matches!(&err, EncodeError::Write(e) if e.raw_os_error() == Some(28)),
            "{room}: {err}"
        );
    }
}

/// Counts what is read through it.
struct Counting<R> {
    inner: R,
    read: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

impl<R: Seek> Seek for Counting<R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

#[test]
fn decoding_writes_as_it_reads() {
    // 8 MB of WAV; the player hangs up after 256 KiB: decoding must have
    // read only a little of the object, not all of it first.
    let wav = WavFile::asterisk(4_000_000).bytes();
    let (_, object) = round_trip(&wav);
    let mut input = Counting {
        inner: Cursor::new(&object),
        read: 0,
    };
    let hangs_up = FullDisk {
        inner: Cursor::new(Vec::new()),
        room: 256 * 1024,
    };
    assert!(decode_from(&mut input, hangs_up).is_err());
    assert!(
        input.read < object.len() as u64 / 4,
        "{} of {}",
        input.read,
        object.len()
    );
}

/// The round-trip check takes exactly the original: one byte changed, added
/// or missing anywhere (header, samples, end) is a difference it names, and
/// an original that cannot be read is told apart from a damaged object.
#[test]
fn the_round_trip_check_takes_the_original_byte_for_byte_and_nothing_else() {
    let wav = with_extra_chunks(WavFile::asterisk(5000)).bytes();
    let (_, object) = round_trip(&wav);
    let check = |original: &[u8]| unpack::rebuild_matching(Cursor::new(&object), original);
    match check(&wav) {
        Matched::Same {
            object_sha256,
            object_size,
        } => assert_eq!(
            (object_sha256, object_size),
            (sha256(&object), object.len() as u64)
        ),
        _ => panic!("the original does not match its own object"),
    }
    let data_at = wav.windows(4).position(|w| w == b"data").unwrap();
    for (at, what) in [(20, "a header byte"), (data_at + 4000, "a sample byte")] {
        let mut other = wav.clone();
        other[at] ^= 0x10;
        let Matched::Differs(why) = check(&other) else {
            panic!("{what} changed went unseen")
        };
        assert!(why.ends_with(&format!("at {at}")), "{what}: {why}");
    }
    let longer = [&wav[..], &[0]].concat();
    assert!(matches!(check(&longer), Matched::Differs(why) if why.contains("longer")));
    let shorter = &wav[..wav.len() - 1];
    assert!(matches!(check(shorter), Matched::Differs(why) if why.contains("more bytes")));

    struct Unreadable;
    impl Read for Unreadable {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::other("disk on fire"))
        }
    }
    let unreadable = unpack::rebuild_matching(Cursor::new(&object), Unreadable);
    assert!(matches!(unreadable, Matched::OriginalUnreadable(e) if e.to_string().contains("fire")));
    let damaged = unpack::rebuild_matching(Cursor::new(&object[..object.len() / 2]), &wav[..]);
    assert!(matches!(damaged, Matched::Differs(_)));
}
