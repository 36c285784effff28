//! What intake asks and changes, in batches, so a spool of a million files
//! is compared with the ledger without either being held in memory: a
//! batch of directory entries looked up by path and the new ones inserted
//! in one transaction; the local rows of one directory counted and walked in
//! pages (to find what vanished); `seen` rows paged and settled in batches.
//! None of these changes allows a delete, so none commits with `FULL`.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rusqlite::types::ValueRef;
use rusqlite::{OptionalExtension, params};

use super::rows::{LocalRow, SpoolFile, identity_at};
use super::transitions::{apply, insert_event, insert_row};
use super::{Ledger, LedgerError};
use crate::recording::name::Naming;
use crate::recording::{FileIdentity, State};
use crate::units::now_secs;

mod mapped;
mod settled;
pub use settled::{MOST, SettledNames};

/// The states whose local file is still the ledger's concern: the predicate
/// of the partial index `recordings_local`, word for word, so it is used
/// (comparisons, not `NOT IN`: migration 0016 says why).
pub(super) const LOCAL: &str =
    "state <> 'local_deleted' AND state <> 'remote_deleted' AND state <> 'gone'";

/// How many index rows [`Ledger::settled_at`] steps over, looking for the
/// next name's, before it seeks it instead, while stepping pays ([`Steps`]):
/// a step reads one row (about a quarter of what a seek with its own
/// statement costs, where the row's pages are cached).
const GALLOP: usize = 4;

/// A directory entry as intake found it: a regular file, or a special file
/// (link, FIFO, …) with what it is.
pub type Found = Result<SpoolFile, (SpoolFile, &'static str)>;

/// What [`Ledger::take_in`] did with a batch.
#[derive(Debug, Default)]
pub struct TakenIn {
    /// Recorded as `seen`.
    pub new: usize,
    /// Special files recorded as `quarantined`.
    pub quarantined: usize,
    /// Of the new, those recorded `settled` (ripe when found).
    pub settled: usize,
    /// Entries whose local row differs from the file (index into the batch,
    /// the row): left for the caller, one transaction each.
    pub differing: Vec<(usize, LocalRow)>,
}

/// A `seen` recording as the settle check needs it.
#[derive(Debug, Clone)]
pub struct SeenFile {
    pub id: i64,
    pub path: PathBuf,
    pub identity: FileIdentity,
}

/// `dir` as the byte prefix of the paths directly in it (`/a/b/`).
fn dir_prefix(dir: &Path) -> Vec<u8> {
    let mut prefix = dir.as_os_str().as_bytes().to_vec();
    if prefix.last() != Some(&b'/') {
        prefix.push(b'/');
    }
    prefix
}

/// The first byte string after every string starting with `prefix`
/// (`/a/b/` → `/a/b0`): the upper bound of a prefix range on the index.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return end;
        }
    }
    vec![u8::MAX; prefix.len() + 1]
}

impl Ledger {
    /// Brings a batch of directory entries into the ledger in one
    /// transaction: each is looked up by path among the local recordings;
    /// an unknown one is inserted (`seen`, or `quarantined` for a special
    /// file), attributed from its name — or straight `settled` where
    /// `ripe` says so (the caller found it settled: last written long
    /// enough ago, nobody writing it), with both events, sparing the update
    /// a settle would make; one whose row matches it, or whose recording a
    /// worker holds (`busy`), is left alone; any other is returned for the
    /// caller to deal with, one at a time. `ripe` is indexed like `batch`
    /// (shorter: the rest are not ripe).
    pub fn take_in(
        &self,
        naming: &Naming,
        batch: &[Found],
        ripe: &[bool],
        busy: &HashSet<i64>,
    ) -> Result<TakenIn, LedgerError> {
        let now = now_secs();
        self.write(|tx| {
            let mut lookup = tx.prepare_cached(&format!(
                "SELECT id, dev, ino, size, mtime_ns, state FROM recordings \
                 WHERE path = ?1 AND {LOCAL}"
            ))?;
            let mut out = TakenIn::default();
            for (i, found) in batch.iter().enumerate() {
                let (file, special) = match found {
                    Ok(file) => (file, None),
                    Err((file, kind)) => (file, Some(*kind)),
                };
                let row = lookup
                    .query_row([file.path.as_os_str().as_bytes()], local_row)
                    .optional()?;
                match row {
                    Some(row) => {
                        let same = row.identity == file.identity
                            && (special.is_some() == (row.state == State::Quarantined));
                        if !same && !busy.contains(&row.id) {
                            out.differing.push((i, row));
                        }
                    }
                    None => {
                        let state = match special {
                            None if ripe.get(i) == Some(&true) => State::Settled,
                            None => State::Seen,
                            Some(_) => State::Quarantined,
                        };
                        record_new(tx, naming, file, state, special, now, &mut out)?;
                    }
                }
            }
            Ok(out)
        })
    }

    /// For each of `files` (name, inode) listed in directory `dir` on
    /// device `dev`: true if its local recording is `settled` and was taken
    /// in at that device and inode. A rescan looks no further at those: the
    /// name still names the file taken in (a replacement has another
    /// inode), and a change of its content, or a replacement that got the
    /// freed inode back, is caught before anything is encoded: the compress
    /// step compares device, inode, size and mtime with the row and starts
    /// the recording over if they differ (inotify, when running, sees it
    /// sooner).
    ///
    /// `files` in name order (as the spool's listing hands them) are
    /// merged with the path index: one range read of the index steps from
    /// one name's row to the next, and is sought again where more than
    /// [`Steps::limit`] rows lie between them (a statement per lookup was
    /// half a rescan's CPU). A name out of order (or asked again) is
    /// answered too, sought again. (An index of the settled rows by inode
    /// halved the lookups' CPU but cost intake 5 CPU-s per 100 k files, its
    /// entries inserted in random order: not worth it.)
    pub fn settled_at(
        &self,
        dev: u64,
        dir: &Path,
        files: &[(&OsStr, u64)],
    ) -> Result<Vec<bool>, LedgerError> {
        let conn = self.reader()?;
        let tx = conn.unchecked_transaction()?;
        let mut stmt = tx.prepare_cached(&format!(
            "SELECT path, dev, ino, state FROM recordings \
             WHERE path >= ?1 AND path < ?2 AND {LOCAL} ORDER BY path"
        ))?;
        let prefix = dir_prefix(dir);
        let end = prefix_end(&prefix);
        let mut path = prefix.clone();
        let mut out = Vec::with_capacity(files.len());
        let mut steps = Steps::default();
        while out.len() < files.len() {
            path.truncate(prefix.len());
            path.extend_from_slice(files[out.len()].0.as_bytes());
            let mut rows = stmt.query(params![&path, &end])?;
            merge(
                &mut rows,
                dev,
                &mut path,
                prefix.len(),
                files,
                &mut out,
                &mut steps,
            )?;
        }
        drop(stmt);
        tx.finish()?;
        Ok(out)
    }

    /// The local recording at `path`, if any.
    pub fn local_row_at(&self, path: &Path) -> Result<Option<LocalRow>, LedgerError> {
        let conn = self.reader()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT id, dev, ino, size, mtime_ns, state FROM recordings \
             WHERE path = ?1 AND {LOCAL}"
        ))?;
        Ok(stmt
            .query_row([path.as_os_str().as_bytes()], local_row)
            .optional()?)
    }

    /// How many local recordings lie directly in `dir` (not in folders below
    /// it). `folders`: the names of the folders in `dir`, if every one is
    /// known; the count is then taken from ranges of the path index, the
    /// rows below each folder taken off, instead of looking into each path
    /// (a sixth of a rescan's CPU over 100 k waiting files). Rows below a
    /// folder not named are counted as if in `dir` (the caller then looks
    /// row by row).
    pub fn local_count_in(
        &self,
        dir: &Path,
        folders: Option<&[OsString]>,
    ) -> Result<u64, LedgerError> {
        let prefix = dir_prefix(dir);
        let conn = self.reader()?;
        let Some(folders) = folders else {
            let n: i64 = conn
                .prepare_cached(&format!(
                    "SELECT COUNT(*) FROM recordings WHERE {LOCAL} AND path >= ?1 AND path < ?2 \
                     AND instr(substr(path, ?3), x'2f') = 0"
                ))?
                .query_row(
                    params![prefix, prefix_end(&prefix), prefix.len() as i64 + 1],
                    |r| r.get(0),
                )?;
            return Ok(n as u64);
        };
        let tx = conn.unchecked_transaction()?;
        let mut stmt = tx.prepare_cached(&format!(
            "SELECT COUNT(*) FROM recordings WHERE {LOCAL} AND path >= ?1 AND path < ?2"
        ))?;
        let mut count = |prefix: &[u8]| -> rusqlite::Result<u64> {
            stmt.query_row(params![prefix, prefix_end(prefix)], |r| r.get::<_, i64>(0))
                .map(|n| n as u64)
        };
        let mut n = count(&prefix)?;
        for folder in folders {
            let mut below = prefix.clone();
            below.extend_from_slice(folder.as_bytes());
            below.push(b'/');
            n = n.saturating_sub(count(&below)?);
        }
        drop(stmt);
        tx.finish()?;
        Ok(n)
    }

    /// True if any local recording lies directly in `dir`.
    pub fn any_local_in(&self, dir: &Path) -> Result<bool, LedgerError> {
        let prefix = dir_prefix(dir);
        let conn = self.reader()?;
        let any = conn
            .prepare_cached(&format!(
                "SELECT 1 FROM recordings WHERE {LOCAL} AND path >= ?1 AND path < ?2 \
                 AND instr(substr(path, ?3), x'2f') = 0 LIMIT 1"
            ))?
            .query_row(
                params![prefix, prefix_end(&prefix), prefix.len() as i64 + 1],
                |_| Ok(()),
            )
            .optional()?;
        Ok(any.is_some())
    }

    /// A page of the local recordings directly in `dir`, in path order,
    /// after the path `after` (from the start if `None`), at most `limit`.
    pub fn local_rows_in(
        &self,
        dir: &Path,
        after: Option<&Path>,
        limit: usize,
    ) -> Result<Vec<(PathBuf, LocalRow)>, LedgerError> {
        let prefix = dir_prefix(dir);
        let from = after.map(|p| p.as_os_str().as_bytes().to_vec());
        let conn = self.reader()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT id, dev, ino, size, mtime_ns, state, path FROM recordings \
             WHERE {LOCAL} AND path >= ?1 AND path < ?2 AND (?3 IS NULL OR path > ?3) \
             AND instr(substr(path, ?4), x'2f') = 0 ORDER BY path LIMIT ?5"
        ))?;
        let rows = stmt.query_map(
            params![
                prefix,
                prefix_end(&prefix),
                from,
                prefix.len() as i64 + 1,
                limit as i64
            ],
            |r| {
                let path = PathBuf::from(OsStr::from_bytes(&r.get::<_, Vec<u8>>(6)?));
                Ok((path, local_row(r)?))
            },
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A page of `seen` recordings last written at or before `mtime_ns`,
    /// in (mtime, id) order after `after`, at most `limit`.
    pub fn seen_page(
        &self,
        mtime_ns: i64,
        after: Option<(i64, i64)>,
        limit: usize,
    ) -> Result<Vec<(i64, SeenFile)>, LedgerError> {
        let (after_mtime, after_id) = after.unwrap_or((i64::MIN, i64::MIN));
        let conn = self.reader()?;
        let mut stmt = conn.prepare_cached(
            "SELECT id, dev, ino, size, mtime_ns, path FROM recordings \
             WHERE state = 'seen' AND mtime_ns <= ?1 AND (mtime_ns, id) > (?2, ?3) \
             ORDER BY mtime_ns, id LIMIT ?4",
        )?;
        let rows = stmt.query_map(
            params![mtime_ns, after_mtime, after_id, limit as i64],
            |r| {
                let identity = identity_at(r, 1)?;
                Ok((
                    identity.mtime_ns,
                    SeenFile {
                        id: r.get(0)?,
                        path: PathBuf::from(OsStr::from_bytes(&r.get::<_, Vec<u8>>(5)?)),
                        identity,
                    },
                ))
            },
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// `seen` → `settled` for each of `ids` still `seen`, in one
    /// transaction (each with its event). Returns how many moved.
    pub fn settled_all(&self, ids: &[i64]) -> Result<usize, LedgerError> {
        let now = now_secs();
        self.write(|tx| {
            let mut moved = 0;
            for &id in ids {
                match apply(tx, id, &[State::Seen], State::Settled, &[], "settled", now) {
                    Ok(_) => moved += 1,
                    // Moved on meanwhile (changed, gone): nothing to settle.
                    Err(LedgerError::StateConflict { .. } | LedgerError::NoSuchRecording(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(moved)
        })
    }
}

/// Whether stepping over rows pays in one [`Ledger::settled_at`]: each row
/// stepped over is read from the table too (the statement reads every
/// column it returns), so where the names asked about are sparse among
/// the rows (a million-file directory, 65,536 names a chunk) stepping
/// costs more than the seeks it saves. It stops once the rows stepped over
/// outnumber twice the names answered without a seek, 16 rows of slack
/// aside.
#[derive(Default)]
struct Steps {
    /// Names answered from a row stepped to, without a seek.
    saved: u32,
    /// Rows stepped over.
    wasted: u32,
}

impl Steps {
    /// How many rows to step over before seeking instead.
    fn limit(&self) -> usize {
        if self.wasted > 2 * self.saved + 16 {
            0
        } else {
            GALLOP
        }
    }
}

/// Answers [`Ledger::settled_at`] for `files` from `out.len()` on, stepping
/// through `rows` (`path, dev, ino, state` in path order, from the first of
/// them on), until a name needs the index sought again: more than
/// [`Steps::limit`] rows on, or out of order. `path` is a buffer holding
/// the directory's prefix (`dir_len` bytes).
fn merge(
    rows: &mut rusqlite::Rows<'_>,
    dev: u64,
    path: &mut Vec<u8>,
    dir_len: usize,
    files: &[(&OsStr, u64)],
    out: &mut Vec<bool>,
    steps: &mut Steps,
) -> Result<(), LedgerError> {
    let settled = State::Settled.as_str().as_bytes();
    let (first, mut stepped) = (out.len(), 0);
    let mut row = rows.next()?;
    while let Some(&(name, ino)) = files.get(out.len()) {
        if out.len() > first && name <= files[out.len() - 1].0 {
            return Ok(()); // out of order (or again): its row is behind
        }
        path.truncate(dir_len);
        path.extend_from_slice(name.as_bytes());
        let Some(r) = row else {
            out.push(false); // past the directory's last row
            continue;
        };
        let at = match r.get_ref(0)? {
            ValueRef::Blob(at) | ValueRef::Text(at) => at,
            _ => &[],
        };
        let order = at.cmp(path.as_slice());
        if out.len() > first && order.is_ge() {
            steps.saved += 1;
        }
        match order {
            std::cmp::Ordering::Less if stepped >= steps.limit() => return Ok(()),
            std::cmp::Ordering::Less => {
                (stepped, steps.wasted) = (stepped + 1, steps.wasted + 1);
                row = rows.next()?;
            }
            std::cmp::Ordering::Equal => {
                out.push(
                    r.get::<_, i64>(1)? as u64 == dev
                        && r.get::<_, i64>(2)? as u64 == ino
                        && matches!(r.get_ref(3)?, ValueRef::Text(s) if s == settled),
                );
                stepped = 0;
                row = rows.next()?;
            }
            std::cmp::Ordering::Greater => {
                out.push(false);
                stepped = 0;
            }
        }
    }
    Ok(())
}

/// Reads a [`LocalRow`] from `id, dev, ino, size, mtime_ns, state`.
fn local_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LocalRow> {
    let state: String = r.get(5)?;
    Ok(LocalRow {
        id: r.get(0)?,
        identity: identity_at(r, 1)?,
        state: state.parse().unwrap_or(State::Failed),
    })
}

/// Records a file seen for the first time as recording in `state`, with
/// its events: `special` (a kind of special file) quarantines it.
fn record_new(
    tx: &rusqlite::Transaction<'_>,
    naming: &Naming,
    file: &SpoolFile,
    state: State,
    special: Option<&'static str>,
    now: i64,
    out: &mut TakenIn,
) -> Result<(), LedgerError> {
    let call = naming.attribute(&file.path, &file.name, file.identity.mtime_ns);
    let id = insert_row(tx, None, file, state, Some(&call), now)?;
    match special {
        Some(kind) => {
            tx.prepare_cached("UPDATE recordings SET last_error = ?2 WHERE id = ?1")?
                .execute(params![id, kind])?;
            insert_event(tx, id, None, state, kind, now)?;
            out.quarantined += 1;
        }
        None => {
            insert_event(tx, id, None, State::Seen, "found", now)?;
            if state == State::Settled {
                insert_event(tx, id, Some(State::Seen), state, "settled", now)?;
                out.settled += 1;
            }
            out.new += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
