//! zstd: bit-exact by construction, streaming, with zstd's own frame checksum
//! so `zstd -d` alone can restore and check an object downloaded by hand.

use std::io::{self, BufRead, Read, Write};

/// Compresses everything `input` yields into `out` at `level`.
pub fn encode(input: &mut impl Read, out: &mut impl Write, level: i32) -> io::Result<()> {
    let mut encoder = ::zstd::stream::Encoder::new(out, level)?;
    encoder.include_checksum(true)?;
    io::copy(input, &mut encoder)?;
    encoder.finish()?;
    Ok(())
}

/// Decompresses the object `input` into `out`.
pub fn decode(input: impl BufRead, out: &mut impl Write) -> io::Result<()> {
    let mut decoder = ::zstd::stream::Decoder::with_buffer(input)?;
    io::copy(&mut decoder, out)?;
    Ok(())
}
