//! The mix: two PCM legs summed exactly as the script's `sox -m IN OUT ALL`
//! sums them with dither off (`sox -D -m`), written as sox writes it.
//!
//! sox -m scales each of its n inputs by 1/n unless `-v` is given (the
//! script gives none), in its 32-bit internal samples: a 16-bit sample `x`
//! is `x << 16` inside, halved to `x << 15` (exact: nothing to round), the
//! two summed (exact: at most 32767 << 16), and the sum written back to 16
//! bits rounding half up, clipping only the one sum that rounds past 32767
//! (`SOX_SAMPLE_TO_SIGNED_16BIT`). A shorter leg ends: the longer one goes
//! on alone, halved. The script's sox also adds TPDF dither (±1 LSB, random):
//! that is the one difference, and it is noise. sox writes the result with
//! the first input's encoding and a plain 44-byte header (RIFF, a 16-byte
//! `fmt `, `data`), the length is that of the longer leg, and
//! `soxi -D` reads it as frames / rate.
//!
//! Only what Asterisk's `wav` and `wav16` formats write is mixed here: 16-bit
//! PCM, mono or stereo, both legs alike. Anything else (GSM, µ-law, a header
//! that lies) is left to the operator, never guessed at.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::codec::wav::{self, InspectError, tag};

/// Frames read from each leg at a time.
const CHUNK_FRAMES: usize = 8192;

/// Why a leg cannot be mixed: a property of its contents, or a read error.
#[derive(Debug, thiserror::Error)]
pub enum LegError {
    /// recvault does not mix this (the reason says what it is).
    #[error("{0}")]
    Unmixable(String),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Sample rate and channels of 16-bit PCM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcmFormat {
    pub channels: u16,
    pub rate: u32,
}

impl PcmFormat {
    fn block_align(self) -> u64 {
        u64::from(self.channels) * 2
    }
}

/// One leg, opened, its samples located.
pub struct Leg {
    reader: BufReader<File>,
    format: PcmFormat,
    frames: u64,
}

impl Leg {
    /// Opens the leg at `path` (never through a link) and reads its header.
    pub fn open(path: &Path) -> Result<Leg, LegError> {
        let mut file = File::options()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)?;
        let layout = match wav::read_layout(&mut file) {
            Ok(layout) => layout,
            Err(InspectError::NotFlacable(why)) => return Err(LegError::Unmixable(why.reason)),
            Err(InspectError::Io(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(LegError::Unmixable("truncated while it was read".into()));
            }
            Err(InspectError::Io(e)) => return Err(e.into()),
        };
        let f = &layout.format;
        let pcm = f.codec() == Some(tag::PCM) && f.bits_per_sample == 16;
        if !pcm || !(1..=2).contains(&f.channels) || f.sample_rate == 0 {
            return Err(LegError::Unmixable(format!(
                "not 16-bit PCM mono or stereo (format {:#06x}, {} bits, {} channels): recvault mixes Asterisk's wav and wav16 legs only",
                f.tag, f.bits_per_sample, f.channels
            )));
        }
        let format = PcmFormat {
            channels: f.channels,
            rate: f.sample_rate,
        };
        if u64::from(f.block_align) != format.block_align() {
            return Err(LegError::Unmixable(format!(
                "fmt chunk contradicts itself (block align {})",
                f.block_align
            )));
        }
        file.seek(SeekFrom::Start(layout.data_start()))?;
        Ok(Leg {
            reader: BufReader::with_capacity(64 << 10, file),
            format,
            // A partial frame at the end is not a sample, for sox either.
            frames: layout.data_len() / format.block_align(),
        })
    }

    /// Its format.
    pub fn format(&self) -> PcmFormat {
        self.format
    }
}

/// What a mix wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mixed {
    pub format: PcmFormat,
    /// Frames in the mix: the longer leg's.
    pub frames: u64,
}

impl Mixed {
    /// `soxi -D` of the mix with the script's `s/\..*//`: the duration
    /// printed with six decimals, cut at the point.
    pub fn whole_seconds(&self) -> u64 {
        let secs = self.frames as f64 / f64::from(self.format.rate);
        let printed = format!("{secs:.6}");
        printed
            .split('.')
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    /// `length_in_min` as the script writes it: `sprintf("%.2f", sec / 60)`
    /// of the whole seconds.
    pub fn minutes_text(&self) -> String {
        format!("{:.2}", self.whole_seconds() as f64 / 60.0)
    }
}

/// Mixes `a` and `b` into `out` (header and samples, as `sox -D -m a b out`
/// writes them).
pub fn mix(a: &mut Leg, b: &mut Leg, out: &mut impl Write) -> Result<Mixed, LegError> {
    if a.format != b.format {
        return Err(LegError::Unmixable(format!(
            "the legs differ ({} Hz × {} against {} Hz × {}): sox refuses that too",
            a.format.rate, a.format.channels, b.format.rate, b.format.channels
        )));
    }
    let format = a.format;
    let frames = a.frames.max(b.frames);
    let data_len = frames * format.block_align();
    let Ok(riff_len) = u32::try_from(36 + data_len) else {
        return Err(LegError::Unmixable(
            "the mix would pass 4 GiB, more than a WAV file holds".into(),
        ));
    };
    out.write_all(&header(format, riff_len, data_len as u32))?;
    let per_chunk = CHUNK_FRAMES * usize::from(format.channels);
    let (mut left_a, mut left_b) = (a.frames, b.frames);
    let (mut buf_a, mut buf_b) = (vec![0i16; per_chunk], vec![0i16; per_chunk]);
    let mut bytes = Vec::with_capacity(per_chunk * 2);
    let mut done = 0u64;
    while done < frames {
        let n = (frames - done).min(CHUNK_FRAMES as u64);
        let got_a = read_samples(&mut a.reader, &mut buf_a, &mut left_a, n, format)?;
        let got_b = read_samples(&mut b.reader, &mut buf_b, &mut left_b, n, format)?;
        let samples = n as usize * usize::from(format.channels);
        bytes.clear();
        for i in 0..samples {
            let x = (i < got_a).then(|| buf_a[i]);
            let y = (i < got_b).then(|| buf_b[i]);
            bytes.extend_from_slice(&mix_sample(x, y).to_le_bytes());
        }
        out.write_all(&bytes)?;
        done += n;
    }
    Ok(Mixed { format, frames })
}

/// Reads up to `n` frames (fewer where the leg ends) into `buf`; returns how
/// many samples were read.
fn read_samples(
    r: &mut impl Read,
    buf: &mut [i16],
    left: &mut u64,
    n: u64,
    format: PcmFormat,
) -> Result<usize, LegError> {
    let take = (*left).min(n);
    let samples = take as usize * usize::from(format.channels);
    let mut raw = vec![0u8; samples * 2];
    r.read_exact(&mut raw).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => LegError::Unmixable("shrank while it was mixed".into()),
        _ => LegError::Io(e),
    })?;
    for (slot, pair) in buf.iter_mut().zip(raw.chunks_exact(2)) {
        *slot = i16::from_le_bytes([pair[0], pair[1]]);
    }
    *left -= take;
    Ok(samples)
}

/// One output sample from each leg's (absent where the leg has ended), as
/// sox -m computes it: each input `x << 16` halved, the halves summed, the
/// sum written back to 16 bits.
pub fn mix_sample(a: Option<i16>, b: Option<i16>) -> i16 {
    let half = |x: Option<i16>| x.map_or(0, |x| i32::from(x) << 15);
    to_16_bits(half(a) + half(b))
}

/// `SOX_SAMPLE_TO_SIGNED_16BIT`: round half up, clip what would pass 32767.
fn to_16_bits(sample: i32) -> i16 {
    if sample > i32::MAX - (1 << 15) {
        return i16::MAX;
    }
    let unsigned = ((sample as u32) ^ 0x8000_0000).wrapping_add(1 << 15) >> 16;
    ((unsigned as u16) ^ 0x8000) as i16
}

/// The 44-byte header sox writes for 16-bit PCM with one or two channels.
fn header(format: PcmFormat, riff_len: u32, data_len: u32) -> [u8; 44] {
    let align = format.block_align() as u16;
    let mut h = [0u8; 44];
    h[..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&riff_len.to_le_bytes());
    h[8..16].copy_from_slice(b"WAVEfmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&tag::PCM.to_le_bytes());
    h[22..24].copy_from_slice(&format.channels.to_le_bytes());
    h[24..28].copy_from_slice(&format.rate.to_le_bytes());
    h[28..32].copy_from_slice(&(format.rate * u32::from(align)).to_le_bytes());
    h[32..34].copy_from_slice(&align.to_le_bytes());
    h[34..36].copy_from_slice(&16u16.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data_len.to_le_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav16(
        dir: &Path,
        name: &str,
        rate: u32,
        channels: u16,
        samples: &[i16],
    ) -> std::path::PathBuf {
        let format = PcmFormat { channels, rate };
        let data = samples.len() as u32 * 2;
        let mut bytes = header(format, 36 + data, data).to_vec();
        for s in samples {
            bytes.extend_from_slice(&s.to_le_bytes());
        }
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn samples_mix_as_sox_does() {
        // Each value checked against `sox -D -m` of the same samples.
        assert_eq!(mix_sample(Some(32767), Some(32767)), 32767);
        assert_eq!(mix_sample(Some(32767), Some(32766)), 32767);
        assert_eq!(mix_sample(Some(-32768), Some(-32768)), -32768);
        assert_eq!(mix_sample(Some(-32768), Some(32767)), 0);
        assert_eq!(mix_sample(Some(1), Some(0)), 1);
        assert_eq!(mix_sample(Some(-1), Some(0)), 0);
        assert_eq!(mix_sample(Some(3), Some(0)), 2);
        assert_eq!(mix_sample(Some(-3), Some(0)), -1);
        assert_eq!(mix_sample(Some(100), None), 50);
        assert_eq!(mix_sample(None, Some(-101)), -50);
        for a in (-32768..=32767).step_by(97) {
            for b in (-32768..=32767).step_by(89) {
                let want = ((a + b + 1) as f64 / 2.0).floor().min(32767.0) as i16;
                assert_eq!(mix_sample(Some(a as i16), Some(b as i16)), want, "{a} {b}");
            }
        }
    }

    #[test]
    fn a_mix_is_as_long_as_the_longer_leg() {
        let dir = tempfile::tempdir().unwrap();
        let a = wav16(dir.path(), "a-in.wav", 8000, 1, &[1000, -1000, 7, 9, 11]);
        let b = wav16(dir.path(), "a-out.wav", 8000, 1, &[3000, 3000]);
        let mut out = Vec::new();
        let mixed = mix(
            &mut Leg::open(&a).unwrap(),
            &mut Leg::open(&b).unwrap(),
            &mut out,
        )
        .unwrap();
        assert_eq!(mixed.frames, 5);
        let expect = [2000i16, 1000, 4, 5, 6];
        let mut want = header(mixed.format, 36 + 10, 10).to_vec();
        for s in expect {
            want.extend_from_slice(&s.to_le_bytes());
        }
        assert_eq!(out, want);
    }

    #[test]
    fn lengths_are_soxi_seconds_cut_and_minutes_rounded() {
        let m = |frames, rate| Mixed {
            format: PcmFormat { channels: 1, rate },
            frames,
        };
        assert_eq!(m(20009, 8000).whole_seconds(), 2);
        assert_eq!(m(23999, 8000).whole_seconds(), 2);
        assert_eq!(m(24000, 8000).whole_seconds(), 3);
        assert_eq!(m(0, 8000).whole_seconds(), 0);
        assert_eq!(m(8000 * 61, 8000).minutes_text(), "1.02");
        assert_eq!(m(8000 * 90, 8000).minutes_text(), "1.50");
        assert_eq!(m(16000 * 7, 16000).minutes_text(), "0.12");
    }

    #[test]
    fn legs_recvault_cannot_mix_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let mono = wav16(dir.path(), "m.wav", 8000, 1, &[1, 2]);
        let wide = wav16(dir.path(), "w.wav", 16000, 1, &[1, 2]);
        let err = mix(
            &mut Leg::open(&mono).unwrap(),
            &mut Leg::open(&wide).unwrap(),
            &mut Vec::new(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("differ"), "{err}");
        let gsm = dir.path().join("g-in.wav");
        let mut bytes = wav::reference_fmt(1, 8000, 16);
        bytes[0] = 0x31;
        let mut file = b"RIFF".to_vec();
        file.extend_from_slice(&(4 + 8 + 16 + 8u32).to_le_bytes());
        file.extend_from_slice(b"WAVEfmt ");
        file.extend_from_slice(&16u32.to_le_bytes());
        file.extend_from_slice(&bytes);
        file.extend_from_slice(b"data");
        file.extend_from_slice(&0u32.to_le_bytes());
        std::fs::write(&gsm, file).unwrap();
        let Err(LegError::Unmixable(why)) = Leg::open(&gsm) else {
            panic!("a GSM leg opened");
        };
        assert!(why.contains("0x0031"), "{why}");
        std::fs::write(&gsm, b"not a wav at all").unwrap();
        assert!(matches!(Leg::open(&gsm), Err(LegError::Unmixable(_))));
    }
}
