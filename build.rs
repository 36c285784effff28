//! One link flag: calls from libFLAC to `FLAC__cpu_info` go to recvault's
//! `__wrap_FLAC__cpu_info` (src/codec/flac/cpu.rs), which asks libFLAC's own
//! function once per process instead of at every encoder and decoder start.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo::rustc-link-arg=-Wl,--wrap=FLAC__cpu_info");
    }
}
