//! The no-lock-in promise, checked with the reference tool: Debian's `flac`
//! rebuilds the original WAV from recvault's objects byte-for-byte, and
//! recvault decodes what `flac --keep-foreign-metadata` made.
//!
//! Under CI (env CI set) a missing `flac` binary fails these tests;
//! elsewhere they are skipped with a note (install-deps.sh installs it).

use std::path::Path;
use std::process::Command;

use super::*;

/// The `flac` binary, or None (skip) outside CI.
fn reference_flac() -> Option<&'static str> {
    match Command::new("flac").arg("--version").output() {
        Ok(out) if out.status.success() => Some("flac"),
        _ if std::env::var_os("CI").is_some() => {
            panic!(
                "`flac` is not installed (apt-get install flac; scripts/install-deps.sh does it)"
            )
        }
        _ => {
            eprintln!("note: skipping the reference-tool test: `flac` is not installed");
            None
        }
    }
}

fn run(flac: &str, args: &[&str], dir: &Path) {
    let out = Command::new(flac)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "flac {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn flac_d_keep_foreign_metadata_rebuilds_our_objects_byte_for_byte() {
    let Some(flac) = reference_flac() else { return };
    let dir = tempfile::tempdir().unwrap();
    for (name, wav) in kinds() {
        let (_, object) = round_trip(&wav);
        std::fs::write(dir.path().join("obj.flac"), &object).unwrap();
        run(
            flac,
            &[
                "-s",
                "-f",
                "-d",
                "--keep-foreign-metadata",
                "-o",
                "back.wav",
                "obj.flac",
            ],
            dir.path(),
        );
        // flac 1.4 exits 0 even when it rebuilt a different header: compare.
        let back = std::fs::read(dir.path().join("back.wav")).unwrap();
        assert!(back == wav, "{name}: flac -d rebuilt a different file");
        // And its own test mode (frame CRCs; the MD5 is unset) passes.
        run(flac, &["-s", "-t", "obj.flac"], dir.path());
    }
}

#[test]
fn we_decode_what_flac_keep_foreign_metadata_made() {
    let Some(flac) = reference_flac() else { return };
    let dir = tempfile::tempdir().unwrap();
    for (name, wav) in kinds() {
        std::fs::write(dir.path().join("in.wav"), &wav).unwrap();
        run(
            flac,
            &[
                "-s",
                "-f",
                "--keep-foreign-metadata",
                "-o",
                "ref.flac",
                "in.wav",
            ],
            dir.path(),
        );
        let object = std::fs::read(dir.path().join("ref.flac")).unwrap();
        let mut back = Vec::new();
        decode_from(Cursor::new(&object), &mut back).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(back == wav, "{name}: decoded a different file");
    }
}
