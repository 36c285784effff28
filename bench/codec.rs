//! recvault's codec alone (no store, no ledger): encodes every file named on
//! the command line exactly as the pipeline does (FLAC with its round-trip
//! check, or zstd), into a scratch staging file, and prints one line:
//! `files input_bytes object_bytes cpu_seconds flac=N zstd=N none=N`.
//!
//!   codec flac|zstd|none LEVEL LONG(0|1) FILE...
//!
//! Used by bench/archive.sh for the codec table, and by bench/backlog.sh for
//! the floor under the archive.

#[path = "cpu.rs"]
mod cpu;

use std::path::Path;

use recvault::codec::{self, Codec, ZstdSettings};
use recvault::recording::FileIdentity;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: codec flac|zstd|none LEVEL LONG(0|1) FILE...";
    let codec = args.first().and_then(|c| Codec::parse(c)).expect(usage);
    let level = args.get(1).and_then(|l| l.parse().ok()).expect(usage);
    let long = args.get(2).map(|l| l == "1").expect(usage);
    let zstd = ZstdSettings { level, long };
    let scratch = tempfile_dir();
    let dest = scratch.join("object");
    let (mut files, mut input, mut output) = (0u64, 0u64, 0u64);
    let mut used = [0u64; 3];
    let started = cpu::cpu_seconds();
    for path in &args[3..] {
        let path = Path::new(path);
        let meta = std::fs::metadata(path).expect("stat");
        let encoded = codec::encode(path, FileIdentity::of(&meta), codec, zstd, &dest)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        files += 1;
        input += encoded.size;
        output += encoded.object_size;
        used[encoded.codec as usize] += 1;
    }
    let cpu = cpu::cpu_seconds() - started;
    let _ = std::fs::remove_dir_all(&scratch);
    println!(
        "{files} {input} {output} {cpu:.3} flac={} zstd={} none={}",
        used[Codec::Flac as usize],
        used[Codec::Zstd as usize],
        used[Codec::None as usize]
    );
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("recvault-codec-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}
