//! The legs in the MIX directory: listed (never through a link), paired by
//! name, and judged finished by the spool's rules — untouched for `settle`
//! and open for writing by no process.
//!
//! A leg is `<name>-in.wav` or `<name>-out.wav`, as Asterisk's Monitor names
//! them. The script takes every file whose name does not contain `out.wav`
//! (and mixes a file that is not a leg with itself); recvault takes legs
//! only and leaves anything else where it is, counted in `status`.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::recording::FileIdentity;
use crate::spool;
use crate::units::nanos;

/// Which side of the call a leg recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// `-in.wav`: what the channel heard.
    In,
    /// `-out.wav`: what it said.
    Out,
}

impl Side {
    /// The ending of a leg's file name.
    pub fn suffix(self) -> &'static str {
        match self {
            Side::In => "-in.wav",
            Side::Out => "-out.wav",
        }
    }

    /// The other leg's side.
    pub fn partner(self) -> Side {
        match self {
            Side::In => Side::Out,
            Side::Out => Side::In,
        }
    }
}

/// One leg file as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegFile {
    pub path: PathBuf,
    pub identity: FileIdentity,
}

/// The legs of one name: both, or one whose partner is missing.
#[derive(Debug, Clone, Default)]
pub struct Legs {
    pub inn: Option<LegFile>,
    pub out: Option<LegFile>,
}

impl Legs {
    /// The legs there are, with their sides.
    pub fn present(&self) -> Vec<(Side, &LegFile)> {
        let mut v = Vec::new();
        if let Some(l) = &self.inn {
            v.push((Side::In, l));
        }
        if let Some(l) = &self.out {
            v.push((Side::Out, l));
        }
        v
    }

    /// The newest last write of the legs there are (ns).
    pub fn last_write_ns(&self) -> i64 {
        self.present()
            .iter()
            .map(|(_, l)| l.identity.mtime_ns)
            .max()
            .unwrap_or(0)
    }
}

/// What the MIX directory holds.
#[derive(Debug, Default)]
pub struct Listing {
    /// Legs by name (the leg's file name without `-in.wav`/`-out.wav`: the
    /// `recording_log.filename` the script looks for), in name order.
    pub legs: BTreeMap<String, Legs>,
    /// Everything else that is not a directory: never touched.
    pub others: Vec<PathBuf>,
}

/// Splits a leg's file name into its name and side.
pub fn leg_name(file_name: &str) -> Option<(&str, Side)> {
    [Side::In, Side::Out].into_iter().find_map(|side| {
        file_name
            .strip_suffix(side.suffix())
            .filter(|stem| !stem.is_empty())
            .map(|stem| (stem, side))
    })
}

/// Lists `dir` (not recursively).
pub fn list(dir: &Path) -> io::Result<Listing> {
    let mut out = Listing::default();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if meta.is_dir() {
            continue;
        }
        let leg = entry
            .file_name()
            .to_str()
            .and_then(leg_name)
            .filter(|_| meta.file_type().is_file())
            .map(|(stem, side)| (stem.to_string(), side));
        let Some((stem, side)) = leg else {
            out.others.push(path);
            continue;
        };
        let file = LegFile {
            path,
            identity: FileIdentity::of(&meta),
        };
        let legs = out.legs.entry(stem).or_default();
        match side {
            Side::In => legs.inn = Some(file),
            Side::Out => legs.out = Some(file),
        }
    }
    Ok(out)
}

/// Of `legs`, the paths that are finished: last written at least `settle`
/// before `now_ns`, and open for writing by nobody (the kernel's answer, as
/// for the spool).
pub fn finished(legs: &[&LegFile], now_ns: i64, settle: Duration) -> HashSet<PathBuf> {
    let old: Vec<(i64, &Path, FileIdentity)> = legs
        .iter()
        .enumerate()
        .filter(|(_, l)| now_ns.saturating_sub(l.identity.mtime_ns) >= nanos(settle))
        .map(|(i, l)| (i as i64, l.path.as_path(), l.identity))
        .collect();
    let writing = spool::being_written(&old);
    old.iter()
        .filter(|(i, _, _)| !writing.contains(i))
        .map(|(_, p, _)| p.to_path_buf())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn names_and_sides() {
        assert_eq!(
            leg_name("20260301-101500_5551234567-in.wav"),
            Some(("20260301-101500_5551234567", Side::In))
        );
        assert_eq!(leg_name("x-out.wav"), Some(("x", Side::Out)));
        assert_eq!(leg_name("-in.wav"), None);
        assert_eq!(leg_name("x-all.wav"), None);
        assert_eq!(leg_name("x-in.WAV"), None);
        assert_eq!(leg_name("x-in.gsm"), None);
    }

    #[test]
    fn lists_pairs_lone_legs_and_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for name in ["a-in.wav", "a-out.wav", "b-out.wav", "notes.txt"] {
            fs::write(d.join(name), b"x").unwrap();
        }
        fs::create_dir(d.join("lost+found")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.join("c-in.wav")).unwrap();
        let l = list(d).unwrap();
        assert_eq!(l.legs.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert!(l.legs["a"].inn.is_some() && l.legs["a"].out.is_some());
        assert!(l.legs["b"].inn.is_none() && l.legs["b"].out.is_some());
        let mut others: Vec<_> = l.others.iter().map(|p| p.file_name().unwrap()).collect();
        others.sort();
        assert_eq!(others, ["c-in.wav", "notes.txt"]);
    }

    #[test]
    fn a_leg_being_written_or_fresh_is_not_finished() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a-in.wav");
        let mut writer = fs::File::create(&path).unwrap();
        writer.write_all(b"RIFF").unwrap();
        let leg = LegFile {
            path: path.clone(),
            identity: FileIdentity::of(&fs::metadata(&path).unwrap()),
        };
        let now = crate::units::now_ns();
        let settle = Duration::from_secs(15);
        assert!(finished(&[&leg], now, settle).is_empty(), "fresh");
        let later = now + nanos(settle);
        assert!(
            finished(&[&leg], later, settle).is_empty(),
            "open for writing"
        );
        drop(writer);
        assert_eq!(finished(&[&leg], later, settle), HashSet::from([path]));
    }
}
