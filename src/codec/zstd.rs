//! zstd: bit-exact by construction, streaming, with zstd's own frame checksum
//! so `zstd -d` alone can restore and check an object downloaded by hand.

use std::io::{self, BufReader, Read, Write};

use super::ZstdSettings;
use crate::digest::{CHUNK, HashingReader};

/// The window of long-distance matching: `zstd --long`'s default, the
/// largest `zstd -d` accepts without `--long` or `--memory`.
const LONG_WINDOW_LOG: u32 = 27;

/// Compresses everything `input` yields (`size` bytes, pledged so the
/// frame records it and the window shrinks to fit) into `out`.
pub fn encode(
    input: &mut impl Read,
    out: &mut impl Write,
    settings: ZstdSettings,
    size: u64,
) -> io::Result<()> {
    let mut encoder = ::zstd::stream::Encoder::new(out, settings.level)?;
    encoder.include_checksum(true)?;
    encoder.set_pledged_src_size(Some(size))?;
    if settings.long {
        encoder.long_distance_matching(true)?;
        encoder.window_log(LONG_WINDOW_LOG)?;
    }
    io::copy(input, &mut encoder)?;
    encoder.finish()?;
    Ok(())
}

/// Decompresses the object `input` into `out`. A damaged object (not the
/// reader failing) is an `InvalidData` error.
pub fn decode<R: Read>(
    input: &mut BufReader<HashingReader<R>>,
    out: &mut impl Write,
) -> io::Result<()> {
    let mut decoder = ::zstd::stream::Decoder::with_buffer(input)?;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match decoder.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if decoder.get_ref().get_ref().failed() => return Err(e),
            Err(e) => {
                let why = format!("zstd object is damaged: {e}");
                return Err(io::Error::new(io::ErrorKind::InvalidData, why));
            }
        };
        out.write_all(&buf[..n])?;
    }
}
