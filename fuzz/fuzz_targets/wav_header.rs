//! Fuzzes the WAV chunk-list parser (src/codec/wav.rs): any bytes are either
//! a layout whose chunks tile the file exactly, with 16/24-bit PCM samples
//! inside it and the `fmt ` chunk flac -d writes back, or refused with a
//! reason; never a panic, and never an I/O error on an in-memory file.
//!
//! Input: a mode byte, then either a whole file (odd mode) or a chunk list
//! (even mode) that gets a correct RIFF/WAVE header and a valid `fmt ` chunk
//! in front, so that a short run from an empty corpus (scripts/fuzz.sh)
//! still reaches the deep checks instead of stopping at the magic.
//!
//! Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run wav_header -- -max_total_time=60`
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;

// Compiled in by path, like key_names.rs: wav.rs needs only std and thiserror.
#[allow(dead_code)]
#[path = "../../src/codec/wav.rs"]
mod wav;

/// `RIFF` + size + `WAVE` + an 8 kHz 16-bit mono `fmt ` chunk + `chunks`.
fn framed(chunks: &[u8]) -> Vec<u8> {
    let fmt = wav::reference_fmt(1, 8000, 16);
    let mut file = b"RIFF".to_vec();
    file.extend_from_slice(&((4 + 8 + fmt.len() + chunks.len()) as u32).to_le_bytes());
    file.extend_from_slice(b"WAVEfmt ");
    file.extend_from_slice(&(fmt.len() as u32).to_le_bytes());
    file.extend_from_slice(&fmt);
    file.extend_from_slice(chunks);
    file
}

fuzz_target!(|input: &[u8]| {
    let Some((&mode, rest)) = input.split_first() else { return };
    let owned;
    let data = if mode & 1 == 1 {
        rest
    } else {
        owned = framed(rest);
        &owned
    };
    let layout = match wav::inspect(Cursor::new(data)) {
        Ok(layout) => layout,
        Err(wav::InspectError::NotFlacable(why)) => {
            assert!(!why.reason.is_empty());
            return;
        }
        Err(wav::InspectError::Io(e)) => panic!("I/O error on a byte slice: {e}"),
    };
    assert_eq!(layout.file_size, data.len() as u64);
    let mut at = 12;
    for chunk in &layout.chunks {
        assert_eq!(chunk.offset, at);
        assert_eq!(&data[at as usize..at as usize + 4], &chunk.id);
        at += chunk.stored_len();
        if &chunk.id != b"data" {
            assert!(chunk.stored_len() <= wav::MAX_FOREIGN_CHUNK);
        }
    }
    assert_eq!(at, data.len() as u64);
    assert!(layout.chunks.len() <= wav::MAX_CHUNKS);
    let f = &layout.format;
    assert!(matches!(f.bits_per_sample, 16 | 24));
    assert!(layout.samples() > 0);
    assert_eq!(layout.samples() * u64::from(f.block_align), layout.data_len());
    assert_eq!(f.raw, wav::reference_fmt(f.channels, f.sample_rate, f.bits_per_sample));
});
