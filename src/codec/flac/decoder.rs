//! libFLAC's stream decoder behind a safe function: frames in from a Rust
//! reader, interleaved little-endian PCM out to a Rust writer, frame by frame.
//!
//! libFLAC is fed a STREAMINFO-only header followed by the object's frames, so
//! it never reads (or allocates for) the stored WAV chunks. Any stream error
//! (lost sync, bad header, CRC or MD5 mismatch) fails the decode.

use std::ffi::c_void;
use std::io::{self, Read, Write};
use std::ptr::NonNull;

use libflac_sys as sys;

use super::{StreamParams, guarded, invalid};

struct DecoderState<'a> {
    prefix: Vec<u8>,
    prefix_at: usize,
    input: &'a mut dyn Read,
    out: &'a mut dyn Write,
    params: StreamParams,
    pcm: Vec<u8>,
    samples: u64,
    io_error: Option<io::Error>,
    stream_error: Option<String>,
}

struct RawDecoder(NonNull<sys::FLAC__StreamDecoder>);

impl Drop for RawDecoder {
    fn drop(&mut self) {
        // SAFETY: created by FLAC__stream_decoder_new and deleted once.
        unsafe { sys::FLAC__stream_decoder_delete(self.0.as_ptr()) }
    }
}

/// Decodes the frames that follow the metadata in `input` (STREAMINFO body
/// `streaminfo`), writing PCM to `out` as each frame is decoded. Returns the
/// number of samples per channel. `check_md5`: also check STREAMINFO's MD5
/// of the samples (13 % of decoding time; redundant where the caller
/// compares the rebuilt file with the original byte for byte, as the
/// round-trip check does).
pub fn decode_frames(
    streaminfo: &[u8; 34],
    input: &mut dyn Read,
    out: &mut dyn Write,
    check_md5: bool,
) -> io::Result<u64> {
    let (params, _) = super::parse_streaminfo(streaminfo);
    let mut prefix = b"fLaC\x80\x00\x00\x22".to_vec();
    prefix.extend_from_slice(streaminfo);
    let mut state = Box::new(DecoderState {
        prefix,
        prefix_at: 0,
        input,
        out,
        params,
        pcm: Vec::new(),
        samples: 0,
        io_error: None,
        stream_error: None,
    });
    // SAFETY: a fresh decoder; `state` is boxed and outlives `decoder`
    // (declared before it, so dropped after it).
    let decoder = RawDecoder(
        NonNull::new(unsafe { sys::FLAC__stream_decoder_new() })
            .ok_or_else(|| io::Error::other("libFLAC: cannot allocate a decoder"))?,
    );
    let d = decoder.0.as_ptr();
    let client = &mut *state as *mut DecoderState<'_> as *mut c_void;
    // SAFETY: valid decoder and callbacks matching libFLAC's signatures.
    let (processed, finished) = unsafe {
        sys::FLAC__stream_decoder_set_md5_checking(d, i32::from(check_md5));
        let status = sys::FLAC__stream_decoder_init_stream(
            d,
            Some(read_cb),
            None,
            None,
            None,
            None,
            Some(write_cb),
            None,
            Some(error_cb),
            client,
        );
        if status != sys::FLAC__STREAM_DECODER_INIT_STATUS_OK {
            return Err(io::Error::other(format!(
                "libFLAC: decoder init failed ({status})"
            )));
        }
        let processed = sys::FLAC__stream_decoder_process_until_end_of_stream(d);
        // finish() is where libFLAC compares the MD5 of what it decoded.
        (processed, sys::FLAC__stream_decoder_finish(d))
    };
    drop(decoder);
    outcome(&mut state, processed, finished)
}

/// The samples per channel decoded, or the first thing that went wrong: a
/// reader or writer error, a stream error, decoding stopped, an MD5 mismatch.
fn outcome(
    state: &mut DecoderState<'_>,
    processed: sys::FLAC__bool,
    finished: sys::FLAC__bool,
) -> io::Result<u64> {
    if let Some(e) = state.io_error.take() {
        return Err(e);
    }
    if let Some(e) = state.stream_error.take() {
        return Err(invalid(format!("FLAC stream is damaged: {e}")));
    }
    if processed == 0 {
        return Err(invalid("FLAC stream is damaged: decoding stopped"));
    }
    if finished == 0 {
        return Err(invalid(
            "FLAC stream is damaged: MD5 of the samples does not match",
        ));
    }
    Ok(state.samples)
}

unsafe extern "C" fn read_cb(
    _: *const sys::FLAC__StreamDecoder,
    buffer: *mut sys::FLAC__byte,
    bytes: *mut usize,
    client: *mut c_void,
) -> sys::FLAC__StreamDecoderReadStatus {
    // SAFETY: `client` is the boxed state; libFLAC offers `*bytes` bytes.
    let (state, buf) = unsafe {
        let state = &mut *(client as *mut DecoderState<'_>);
        (state, std::slice::from_raw_parts_mut(buffer, *bytes))
    };
    if state.io_error.is_some() || state.stream_error.is_some() {
        return sys::FLAC__STREAM_DECODER_READ_STATUS_ABORT;
    }
    let n = if state.prefix_at < state.prefix.len() {
        let left = &state.prefix[state.prefix_at..];
        let n = left.len().min(buf.len());
        buf[..n].copy_from_slice(&left[..n]);
        state.prefix_at += n;
        Ok(n)
    } else {
        guarded(|| {
            loop {
                match state.input.read(buf) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    other => return other,
                }
            }
        })
    };
    // SAFETY: `bytes` is libFLAC's out-parameter.
    unsafe { *bytes = *n.as_ref().unwrap_or(&0) };
    match n {
        Ok(0) => sys::FLAC__STREAM_DECODER_READ_STATUS_END_OF_STREAM,
        Ok(_) => sys::FLAC__STREAM_DECODER_READ_STATUS_CONTINUE,
        Err(e) => {
            state.io_error = Some(e);
            sys::FLAC__STREAM_DECODER_READ_STATUS_ABORT
        }
    }
}

unsafe extern "C" fn write_cb(
    _: *const sys::FLAC__StreamDecoder,
    frame: *const sys::FLAC__Frame,
    channels: *const *const sys::FLAC__int32,
    client: *mut c_void,
) -> sys::FLAC__StreamDecoderWriteStatus {
    // SAFETY: `client` is the boxed state; `frame` is valid for this call.
    let (state, header) = unsafe { (&mut *(client as *mut DecoderState<'_>), &(*frame).header) };
    if state.io_error.is_some() || state.stream_error.is_some() {
        return sys::FLAC__STREAM_DECODER_WRITE_STATUS_ABORT;
    }
    let p = state.params;
    if header.channels != p.channels || header.bits_per_sample != p.bits_per_sample {
        state.stream_error = Some("a frame's format differs from STREAMINFO".into());
        return sys::FLAC__STREAM_DECODER_WRITE_STATUS_ABORT;
    }
    let n = header.blocksize as usize;
    // SAFETY: libFLAC passes `channels` pointers to `blocksize` samples each.
    let plane = |c: usize| unsafe { std::slice::from_raw_parts(*channels.add(c), n) };
    interleave(&mut state.pcm, p, n, plane);
    state.samples += n as u64;
    match guarded(|| state.out.write_all(&state.pcm)) {
        Ok(()) => sys::FLAC__STREAM_DECODER_WRITE_STATUS_CONTINUE,
        Err(e) => {
            state.io_error = Some(e);
            sys::FLAC__STREAM_DECODER_WRITE_STATUS_ABORT
        }
    }
}

unsafe extern "C" fn error_cb(
    _: *const sys::FLAC__StreamDecoder,
    status: sys::FLAC__StreamDecoderErrorStatus,
    client: *mut c_void,
) {
    // SAFETY: `client` is the boxed state.
    let state = unsafe { &mut *(client as *mut DecoderState<'_>) };
    let what = match status {
        sys::FLAC__STREAM_DECODER_ERROR_STATUS_LOST_SYNC => "lost sync",
        sys::FLAC__STREAM_DECODER_ERROR_STATUS_BAD_HEADER => "bad frame header",
        sys::FLAC__STREAM_DECODER_ERROR_STATUS_FRAME_CRC_MISMATCH => "frame CRC mismatch",
        sys::FLAC__STREAM_DECODER_ERROR_STATUS_UNPARSEABLE_STREAM => "unparseable stream",
        _ => "decoder error",
    };
    state.stream_error.get_or_insert_with(|| what.to_string());
}

/// Interleaves one frame's channels into little-endian PCM (the mono 16-bit
/// case, nearly every recording, gets its own tight loop).
fn interleave<'a>(
    pcm: &mut Vec<u8>,
    p: StreamParams,
    n: usize,
    plane: impl Fn(usize) -> &'a [i32],
) {
    pcm.clear();
    if p.channels == 1 && p.bits_per_sample == 16 {
        let samples = plane(0);
        pcm.resize(samples.len() * 2, 0);
        for (out, &v) in pcm.chunks_exact_mut(2).zip(samples) {
            out.copy_from_slice(&(v as i16).to_le_bytes());
        }
        return;
    }
    let width = (p.bits_per_sample / 8) as usize;
    let planes: Vec<&[i32]> = (0..p.channels as usize).map(plane).collect();
    for i in 0..n {
        for plane in &planes {
            pcm.extend_from_slice(&plane[i].to_le_bytes()[..width]);
        }
    }
}
