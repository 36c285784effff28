//! Encodes each 16-bit PCM WAV named on the command line with flacenc, the
//! pure-Rust FLAC encoder, frame by frame (never the whole stream in
//! memory), and prints `files input_bytes output_bytes cpu_seconds`.
//! Only the frames are counted for the output, plus the 42 bytes of
//! `fLaC` and STREAMINFO: the same measure as libFLAC's output.
//!
//!   flacenc-compare BLOCK_SIZE FILE...

use std::fs::File;
use std::io::{BufReader, Read};

use flacenc::bitsink::ByteSink;
use flacenc::component::{BitRepr, StreamInfo};
use flacenc::error::Verify;
use flacenc::source::{Context, Fill, FrameBuf};

fn main() {
    let mut args = std::env::args().skip(1);
    let block: usize = args.next().and_then(|a| a.parse().ok()).expect("block size");
    let mut config = flacenc::config::Encoder::default();
    config.block_size = block;
    let config = config.into_verified().expect("config");
    let (mut files, mut input, mut output) = (0u64, 0u64, 0u64);
    let started = cpu_seconds();
    for path in args {
        let mut file = BufReader::with_capacity(256 * 1024, File::open(&path).expect("open"));
        let Some((channels, rate, data_len)) = pcm16_header(&mut file) else {
            eprintln!("skipped (not 16-bit PCM with a 44-byte header): {path}");
            continue;
        };
        files += 1;
        input += 44 + data_len;
        output += 42 + encode(&config, &mut file, channels, rate, data_len, block);
    }
    println!("{files} {input} {output} {:.3}", cpu_seconds() - started);
}

/// Encodes `data_len` bytes of samples; returns the bytes of frames.
fn encode(
    config: &flacenc::error::Verified<flacenc::config::Encoder>,
    file: &mut impl Read,
    channels: usize,
    rate: usize,
    data_len: u64,
    block: usize,
) -> u64 {
    let info = StreamInfo::new(rate, channels, 16).expect("stream info");
    let mut fb = FrameBuf::with_size(channels, block).expect("frame buffer");
    let mut ctx = Context::new(16, channels);
    let mut bytes = vec![0u8; block * channels * 2];
    let mut sink = ByteSink::new();
    let (mut left, mut out, mut frame) = (data_len as usize, 0u64, 0usize);
    while left > 0 {
        let n = bytes.len().min(left);
        file.read_exact(&mut bytes[..n]).expect("read");
        left -= n;
        // A short last frame: the buffer records how much it holds.
        fb.fill_le_bytes(&bytes[..n], 2).expect("fill");
        ctx.fill_le_bytes(&bytes[..n], 2).expect("fill");
        let encoded = flacenc::encode_fixed_size_frame(config, &fb, frame, &info).expect("encode");
        sink.clear();
        encoded.write(&mut sink).expect("write");
        out += sink.as_slice().len() as u64;
        frame += 1;
    }
    out
}

/// Channels, rate and data size of a plain 16-bit PCM WAV with a 44-byte header.
fn pcm16_header(file: &mut impl Read) -> Option<(usize, usize, u64)> {
    let mut h = [0u8; 44];
    file.read_exact(&mut h).ok()?;
    let u16_at = |i: usize| u16::from_le_bytes([h[i], h[i + 1]]);
    let u32_at = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
    let plain = &h[..4] == b"RIFF" && &h[8..16] == b"WAVEfmt " && &h[36..40] == b"data";
    (plain && u16_at(20) == 1 && u16_at(34) == 16)
        .then(|| (usize::from(u16_at(22)), u32_at(24) as usize, u64::from(u32_at(40))))
}

fn cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<Rusage>::uninit();
    // SAFETY: getrusage fills the struct.
    unsafe { getrusage(0, usage.as_mut_ptr()) };
    let u = unsafe { usage.assume_init() };
    let tv = |t: [i64; 2]| t[0] as f64 + t[1] as f64 / 1e6;
    tv(u.utime) + tv(u.stime)
}

#[repr(C)]
struct Rusage {
    utime: [i64; 2],
    stime: [i64; 2],
    rest: [i64; 14],
}

extern "C" {
    fn getrusage(who: i32, usage: *mut Rusage) -> i32;
}
