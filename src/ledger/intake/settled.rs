//! The settled recordings of one spool directory, held for a rescan as one
//! 8-byte fingerprint of (name, inode) each, so a directory of a million
//! waiting files is compared with the ledger in one pass over its path
//! index instead of a lookup per entry.

use std::ffi::OsStr;
use std::hash::{BuildHasher, RandomState};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rusqlite::params;
use rusqlite::types::ValueRef;

use super::mapped::Mapped;
use super::{LOCAL, dir_prefix, prefix_end};
use crate::ledger::{Ledger, LedgerError};

/// The most settled recordings a rescan holds as [`SettledNames`] (16 MiB
/// of fingerprints); a directory with more is looked up a batch at a time
/// ([`Ledger::settled_at`]), so memory stays bounded whatever the backlog.
pub const MOST: usize = 1 << 21;

/// The settled recordings directly in one directory, on one device, as the
/// ledger had them when they were read: (name, inode) fingerprints under a
/// key drawn afresh for each set, sorted, with where each run of leading
/// bits starts. A name and inode that match one of them was settled then,
/// but for a fingerprint collision (one in 2^64 for each name asked about
/// per recording held, with a new key each rescan: a file so missed is
/// taken in by the next rescan, or by inotify).
pub struct SettledNames {
    key: RandomState,
    sorted: Mapped<u64>,
    /// `starts[b]`: the index in `sorted` of the first fingerprint whose
    /// leading `bits` bits are at least `b`.
    starts: Mapped<u32>,
    bits: u32,
}

impl SettledNames {
    fn print(key: &RandomState, name: &[u8], ino: u64) -> u64 {
        key.hash_one((name, ino))
    }

    /// True if `name` in the directory named the inode `ino` of a settled
    /// recording when the set was read.
    pub fn contains(&self, name: &OsStr, ino: u64) -> bool {
        let print = Self::print(&self.key, name.as_bytes(), ino);
        let run = bucket(print, self.bits);
        let starts = self.starts.as_slice();
        let (from, to) = (starts[run], starts[run + 1]);
        self.sorted.as_slice()[from as usize..to as usize].contains(&print)
    }

    /// How many settled recordings the set holds.
    pub fn len(&self) -> usize {
        self.sorted.as_slice().len()
    }

    /// True if the set holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The set of the fingerprints made under `key`, `sorted` here.
    fn new(key: RandomState, mut sorted: Mapped<u64>) -> std::io::Result<Self> {
        sorted.as_mut_slice().sort_unstable();
        // About four fingerprints per run of leading bits: a lookup reads
        // one or two cache lines, not the twenty a binary search would.
        let prints = sorted.as_slice();
        let bits = prints.len().max(1).ilog2().saturating_sub(2);
        let buckets = 1usize << bits;
        let mut starts = Mapped::with_capacity(buckets + 1)?;
        let mut at = 0;
        for b in 0..buckets {
            while at < prints.len() && bucket(prints[at], bits) < b {
                at += 1;
            }
            starts.push(at as u32);
        }
        starts.push(prints.len() as u32);
        Ok(Self {
            key,
            sorted,
            starts,
            bits,
        })
    }
}

/// The run of leading `bits` bits `print` is in (with no bits used, a set
/// of up to 7, every fingerprint is in run 0).
fn bucket(print: u64, bits: u32) -> usize {
    print.checked_shr(64 - bits).unwrap_or(0) as usize
}

impl Ledger {
    /// The settled recordings directly in `dir` on device `dev`, in one
    /// read of the path index's range for `dir`, or `None` if there are
    /// more than `most`, or no memory to map for them (the caller then
    /// asks [`Ledger::settled_at`]).
    /// Rows in folders below `dir` are left out.
    pub fn settled_names_in(
        &self,
        dev: u64,
        dir: &Path,
        most: usize,
    ) -> Result<Option<SettledNames>, LedgerError> {
        let prefix = dir_prefix(dir);
        let conn = self.reader()?;
        // Room for every settled recording the ledger holds (its totals are
        // kept by triggers: at least this directory's, unless more settle
        // before the range is read; the array then fills up and the caller
        // looks up instead), in a mapping whose pages are only resident once
        // written ([`Mapped`] says why not from the allocator).
        let total: i64 = conn
            .prepare_cached(
                "SELECT COALESCE(SUM(recordings), 0) FROM recording_totals WHERE state = 'settled'",
            )?
            .query_row([], |r| r.get(0))?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT path, ino FROM recordings \
             WHERE path >= ?1 AND path < ?2 AND {LOCAL} AND state = 'settled' AND dev = ?3"
        ))?;
        let mut rows = stmt.query(params![&prefix, prefix_end(&prefix), dev as i64])?;
        let room = usize::try_from(total).unwrap_or(0).min(most);
        // Without the memory, a lookup a batch at a time needs none.
        let Ok(mut prints) = Mapped::with_capacity(room) else {
            return Ok(None);
        };
        let key = RandomState::new();
        while let Some(row) = rows.next()? {
            let name = match row.get_ref(0)? {
                ValueRef::Blob(p) | ValueRef::Text(p) => p.get(prefix.len()..).unwrap_or(&[]),
                _ => continue,
            };
            if name.contains(&b'/') {
                continue; // in a folder below
            }
            let ino = row.get::<_, i64>(1)? as u64;
            if !prints.push(SettledNames::print(&key, name, ino)) {
                return Ok(None); // more than `most` (or than the totals said)
            }
        }
        Ok(SettledNames::new(key, prints).ok())
    }
}
