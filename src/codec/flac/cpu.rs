//! libFLAC's CPU check, asked once per process.
//!
//! Every libFLAC encoder and decoder start calls `FLAC__cpu_info`, which runs
//! `cpuid` six times to pick its SIMD routines. In a virtual machine each
//! `cpuid` traps to the hypervisor: archiving 20,000 2 KB recordings (one
//! encoder and one round-trip decoder each), it was 6.1 % of recvault's CPU,
//! about 48 µs per recording (perf, AMD EPYC VM, 2026-12-07).
//!
//! The link flag `--wrap=FLAC__cpu_info` (build.rs) sends libFLAC's calls
//! here. The first call asks libFLAC's own function (`__real_…`) and keeps
//! its answer; later calls copy that answer. The CPU does not change under a
//! running process, so libFLAC picks the same routines as before, and it is
//! never told of an instruction set it did not detect itself.
//!
//! The answer is a private libFLAC struct (`FLAC__CPUInfo`: 15 ints in
//! libflac-sys 0.3.4). Its size is measured, not assumed: libFLAC's function
//! first zeroes the whole struct, then writes flags (0 or 1) and a small
//! enum, so in a buffer filled with 0xFF the struct ends at the first 0xFF
//! byte. Only if that is [`CPU_INFO_LEN`] is the answer kept; otherwise
//! every call goes to libFLAC, as without this module.

use std::sync::OnceLock;

/// `sizeof(FLAC__CPUInfo)` in the libFLAC that libflac-sys 0.3.4 builds.
const CPU_INFO_LEN: usize = 60;

/// The probe's room: far more than any struct of a few flags.
#[repr(C, align(16))]
struct Probe([u8; 1024]);

unsafe extern "C" {
    /// libFLAC's own `FLAC__cpu_info` (the linker's name for it under
    /// `--wrap`). Its argument is a `FLAC__CPUInfo *`.
    fn __real_FLAC__cpu_info(info: *mut u8);
}

/// libFLAC's answer, once asked; `None` if its size was not the one known.
static ANSWER: OnceLock<Option<[u8; CPU_INFO_LEN]>> = OnceLock::new();

/// What libFLAC's encoder and decoder call instead of `FLAC__cpu_info`.
///
/// # Safety
/// `info` points to a `FLAC__CPUInfo`, as in libFLAC's calls.
#[unsafe(no_mangle)]
unsafe extern "C" fn __wrap_FLAC__cpu_info(info: *mut u8) {
    match ANSWER.get_or_init(ask_libflac) {
        // SAFETY: `info` has room for the struct, whose size was measured.
        Some(answer) => unsafe {
            std::ptr::copy_nonoverlapping(answer.as_ptr(), info, CPU_INFO_LEN)
        },
        // SAFETY: libFLAC's own call, on libFLAC's own struct.
        None => unsafe { __real_FLAC__cpu_info(info) },
    }
}

/// Asks libFLAC's function into a probe and keeps the answer if the
/// struct it wrote is [`CPU_INFO_LEN`] bytes long.
fn ask_libflac() -> Option<[u8; CPU_INFO_LEN]> {
    let written = probe();
    let bytes = written.len();
    let kept = written.try_into().ok();
    if kept.is_none() {
        tracing::debug!(
            bytes,
            "libFLAC's CPU check is not the size known; asking it at every start"
        );
    }
    kept
}

/// The bytes libFLAC's `FLAC__cpu_info` writes (see the module's notes).
fn probe() -> Vec<u8> {
    let mut probe = Probe([0xFF; 1024]);
    // SAFETY: the probe is far larger than the struct, and aligned for it.
    unsafe { __real_FLAC__cpu_info(probe.0.as_mut_ptr()) };
    let end = probe.0.iter().position(|&b| b == 0xFF).unwrap_or(0);
    probe.0[..end].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails if the link flag is missing (libFLAC's calls never come here)
    /// or libFLAC's struct changed size (the answer is not kept).
    #[test]
    fn libflac_asks_once_and_gets_its_own_answer() {
        let wav = crate::codec::wav::tests::WavFile::asterisk(4000).bytes();
        let mut object = std::io::Cursor::new(Vec::new());
        super::super::encode(std::io::Cursor::new(wav), &mut object).unwrap();
        let kept = ANSWER
            .get()
            .expect("libFLAC's calls reach __wrap_FLAC__cpu_info");
        let kept = kept.expect("FLAC__CPUInfo is the size known");
        assert_eq!(kept.to_vec(), probe(), "the kept answer is libFLAC's own");
        assert!(kept.iter().any(|&b| b != 0), "libFLAC found a CPU type");
    }
}
