//! The codec choice and file handling: what each kind of recording is
//! stored as, bit-exact round trips through [`decode`] from a plain reader,
//! changed and vanished files, and a staging file that corrupts the object.

use std::io::Cursor;

use super::wav::tag;
use super::wav::tests::{WavFile, with_extra_chunks};
use super::*;
use crate::digest::sha256;

fn identity(path: &Path) -> FileIdentity {
    FileIdentity::of(&fs::metadata(path).unwrap())
}

/// A reader that is only a reader (no seeking), handing out odd-sized
/// pieces, as a download stream does.
struct Stream<'a>(&'a [u8]);

impl Read for Stream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.0.len()).min(7777);
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

/// Encodes `bytes` as a file with `codec` asked for; checks hashes and the
/// round trip through [`decode`] from a non-seekable stream.
fn encode_bytes(bytes: &[u8], codec: Codec) -> (Encoded, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("rec.wav");
    fs::write(&src, bytes).unwrap();
    let obj = dir.path().join("rec.obj");
    let enc = encode(&src, identity(&src), codec, ZstdSettings::default(), &obj)
        .unwrap_or_else(|e| panic!("{e}"));
    let object = fs::read(&obj).unwrap();
    assert_eq!((enc.sha256, enc.size), (sha256(bytes), bytes.len() as u64));
    assert_eq!(
        (enc.object_sha256, enc.object_size),
        (sha256(&object), object.len() as u64)
    );
    assert!(!obj.with_extension("tmp").exists());
    // Encoded into memory: the same object, the same facts.
    let (in_memory, bytes_in_memory) =
        encode_to_memory(&src, identity(&src), codec, ZstdSettings::default())
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(in_memory, enc);
    assert!(
        bytes_in_memory == object,
        "the object encoded in memory differs from the staged one"
    );
    let mut back = Vec::new();
    let decoded = decode(enc.codec, Stream(&object), &mut back).unwrap();
    assert!(back == bytes, "decoded bytes differ from the original");
    assert_eq!(
        decoded,
        Decoded {
            sha256: enc.sha256,
            size: enc.size,
            object_sha256: enc.object_sha256,
            object_size: enc.object_size,
        }
    );
    (enc, object)
}

/// Every kind of input, and what FLAC asked for stores it as.
fn kinds() -> Vec<(&'static str, Vec<u8>, Codec)> {
    let base = WavFile::asterisk(4000);
    let mut lying = base.clone();
    lying.data_size = Some(1 << 30);
    let mut gsm_frames = Vec::new();
    for i in 0..300u32 {
        gsm_frames.push(0xD0 | (i % 16) as u8);
        gsm_frames.extend((0..32).map(|j| (i * 7 + j) as u8));
    }
    vec![
        ("PCM 8 kHz mono", base.bytes(), Codec::Flac),
        (
            "PCM with chunks, odd sizes",
            with_extra_chunks(WavFile::asterisk(3001)).bytes(),
            Codec::Flac,
        ),
        (
            "stereo",
            WavFile::pcm(2, 8000, 16, 3000).bytes(),
            Codec::Flac,
        ),
        (
            "16 kHz",
            WavFile::pcm(1, 16000, 16, 3000).bytes(),
            Codec::Flac,
        ),
        (
            "µ-law",
            base.clone().with_codec(tag::MULAW, 8, 1).bytes(),
            Codec::Zstd,
        ),
        (
            "A-law",
            base.clone().with_codec(tag::ALAW, 8, 1).bytes(),
            Codec::Zstd,
        ),
        (
            "GSM in WAV",
            base.clone().with_codec(tag::GSM610, 0, 65).bytes(),
            Codec::None,
        ),
        ("raw GSM", gsm_frames, Codec::None),
        (
            "8-bit",
            base.clone().with_codec(tag::PCM, 8, 1).bytes(),
            Codec::Zstd,
        ),
        (
            "float",
            base.clone().with_codec(tag::IEEE_FLOAT, 32, 4).bytes(),
            Codec::Zstd,
        ),
        ("lying header", lying.bytes(), Codec::Zstd),
        ("truncated", base.bytes()[..5000].to_vec(), Codec::Zstd),
        (
            "MP3",
            b"ID3\x04\0\0\0\0\0\x10and frames".repeat(99),
            Codec::None,
        ),
        ("Ogg", b"OggS\0\x02 and pages".repeat(99), Codec::None),
        ("empty", Vec::new(), Codec::Zstd),
    ]
}

#[test]
fn each_kind_gets_its_codec_and_round_trips_bit_exact() {
    for (name, bytes, want) in kinds() {
        let (enc, object) = encode_bytes(&bytes, Codec::Flac);
        assert_eq!(enc.codec, want, "{name}");
        assert_eq!(
            enc.fallback.is_some(),
            want != Codec::Flac,
            "{name}: {:?}",
            enc.fallback
        );
        if want == Codec::None {
            assert_eq!(object, bytes, "{name}: stored as is");
        }
    }
}

#[test]
fn the_codec_asked_for_is_used_as_is_unless_it_is_flac() {
    let wav = WavFile::asterisk(20_000).bytes();
    for codec in [Codec::Zstd, Codec::None] {
        let (enc, _) = encode_bytes(&wav, codec);
        assert_eq!((enc.codec, enc.fallback), (codec, None));
    }
    let (zstd, _) = encode_bytes(&wav, Codec::Zstd);
    let (flac, _) = encode_bytes(&wav, Codec::Flac);
    assert!(flac.object_size < zstd.object_size);
}

#[test]
fn zstd_long_distance_matching_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("a.wav");
    let data: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
    fs::write(&src, &data).unwrap();
    let obj = dir.path().join("a.obj");
    let long = ZstdSettings {
        level: 5,
        long: true,
    };
    let enc = encode(&src, identity(&src), Codec::Zstd, long, &obj).unwrap();
    assert!(enc.object_size < enc.size);
    let mut back = Vec::new();
    decode(Codec::Zstd, File::open(&obj).unwrap(), &mut back).unwrap();
    assert!(back == data);
}

/// A staging file whose disk (or memory) flips a byte it stores.
struct Flipping {
    inner: Cursor<Vec<u8>>,
    at: u64,
}

impl Write for Flipping {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let start = self.inner.position();
        let n = self.inner.write(buf)?;
        if (start..start + n as u64).contains(&self.at) {
            self.inner.get_mut()[self.at as usize] ^= 0x10;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for Flipping {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}

impl Seek for Flipping {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

#[test]
fn a_flac_object_damaged_in_staging_is_never_the_object() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("a.wav");
    let wav = WavFile::asterisk(50_000).bytes();
    fs::write(&src, &wav).unwrap();
    let file = File::open(&src).unwrap();
    let job = Job {
        file: &file,
        size: wav.len() as u64,
        codec: Codec::Flac,
        zstd: ZstdSettings::default(),
    };
    // The first staging file (FLAC's) flips a byte in the frames.
    let mut opened = 0;
    let result = job.run(|| {
        opened += 1;
        let at = if opened == 1 { 40_000 } else { u64::MAX };
        Ok(Flipping {
            inner: Cursor::new(Vec::new()),
            at,
        })
    });
    let Ok((enc, staged)) = result else {
        panic!("no object")
    };
    assert!(
        matches!(&enc.fallback, Some(Fallback::RoundTrip(why)) if why.contains("damaged") || why.contains("decodes to")),
        "{:?}",
        enc.fallback
    );
    assert_eq!(enc.codec, Codec::Zstd);
    let object = staged.inner.into_inner();
    assert_eq!(enc.object_sha256, sha256(&object));
    let mut back = Vec::new();
    decode(Codec::Zstd, Stream(&object), &mut back).unwrap();
    assert!(back == wav);
}

#[test]
fn a_damaged_object_does_not_decode_quietly() {
    let wav = WavFile::asterisk(30_000).bytes();
    for codec in [Codec::Flac, Codec::Zstd] {
        let (enc, mut object) = encode_bytes(&wav, codec);
        let at = object.len() / 2;
        object[at] ^= 0x40;
        match decode(enc.codec, Stream(&object), io::sink()) {
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{codec:?}: {e}"),
            Ok(d) => assert_ne!(d.sha256, enc.sha256, "{codec:?}"),
        }
    }
}

#[test]
fn a_changed_file_is_not_encoded() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("a.wav");
    fs::write(&src, b"first").unwrap();
    let id = identity(&src);
    fs::write(&src, b"second, longer").unwrap();
    let obj = dir.path().join("a.obj");
    for codec in [Codec::Flac, Codec::Zstd] {
        let err = encode(&src, id, codec, ZstdSettings::default(), &obj).unwrap_err();
        assert!(matches!(err, EncodeError::Changed(Some(_))), "{err}");
        assert!(!obj.exists() && !obj.with_extension("tmp").exists());
        let err = encode_to_memory(&src, id, codec, ZstdSettings::default()).unwrap_err();
        assert!(matches!(err, EncodeError::Changed(Some(_))), "{err}");
    }
}

#[test]
fn symlinks_and_missing_files() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real");
    fs::write(&real, b"x").unwrap();
    let link = dir.path().join("link.wav");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let obj = dir.path().join("o");
    let zstd = ZstdSettings::default();
    let err = encode(&link, identity(&real), Codec::Flac, zstd, &obj).unwrap_err();
    assert!(matches!(err, EncodeError::Changed(None)), "{err}");
    let missing = dir.path().join("nope");
    let err = encode(&missing, identity(&real), Codec::Flac, zstd, &obj).unwrap_err();
    assert!(matches!(err, EncodeError::Gone), "{err}");
}

#[test]
fn suffixes_and_content_types() {
    assert_eq!(suffix(Codec::Flac), ".flac");
    assert_eq!(suffix(Codec::Zstd), ".zst");
    assert_eq!(suffix(Codec::None), "");
    assert_eq!(content_type(Codec::Flac, b"a-all.wav"), "audio/flac");
    assert_eq!(content_type(Codec::None, b"a.MP3"), "audio/mpeg");
    assert_eq!(
        content_type(Codec::None, b"a.gsm"),
        "application/octet-stream"
    );
}
