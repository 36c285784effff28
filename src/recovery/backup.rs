//! Ledger backups in the store: a consistent copy of the ledger's pages,
//! zstd-compressed as they are read,
//! under `{prefix}.recvault/ledger/{host}/{timestamp}.sqlite3.zst`, keeping a
//! configured number of generations; and restoring the newest one, brought
//! up to what the store knows that is newer (`catch_up`).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{NaiveDateTime, Utc};

use crate::digest::{self, CHUNK, HashingWriter};
use crate::error::Error;
use crate::ledger::Ledger;
use crate::ledger::lock::InstanceLock;
use crate::recovery::catch_up::{CaughtUp, HostArchive, catch_up};
use crate::store::{PutOutcome, PutRequest, Store, StoreError, meta};

/// The key suffix of every ledger backup.
const SUFFIX: &str = ".sqlite3.zst";
/// Timestamps in backup keys: UTC, sortable as text.
const STAMP: &str = "%Y%m%dT%H%M%SZ";

/// Where this host's ledger backups live: reserved, beside the recordings.
pub fn backup_prefix(store_prefix: &str, host: &str) -> String {
    format!("{store_prefix}.recvault/ledger/{host}/")
}

/// When a backup key was taken, from its name.
fn taken_at(prefix: &str, key: &str) -> Option<chrono::DateTime<Utc>> {
    let stamp = key.strip_prefix(prefix)?.strip_suffix(SUFFIX)?;
    NaiveDateTime::parse_from_str(stamp, STAMP)
        .ok()
        .map(|t| t.and_utc())
}

/// This host's backups in the store, oldest first.
pub async fn list(store: &dyn Store, prefix: &str) -> Result<Vec<String>, StoreError> {
    let mut keys: Vec<String> = store
        .list(prefix)
        .await?
        .into_iter()
        .map(|o| o.key)
        .filter(|k| taken_at(prefix, k).is_some())
        .collect();
    keys.sort();
    Ok(keys)
}

/// How long ago the newest backup was taken; `None` if there is none.
pub async fn age_of_newest(
    store: &dyn Store,
    prefix: &str,
) -> Result<Option<Duration>, StoreError> {
    let keys = list(store, prefix).await?;
    Ok(keys
        .last()
        .and_then(|k| taken_at(prefix, k))
        .map(|t| (Utc::now() - t).to_std().unwrap_or_default()))
}

/// What a backup did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    pub key: String,
    pub bytes: u64,
    /// Older generations deleted to keep `keep`.
    pub pruned: Vec<String>,
}

/// Backs the ledger up to the store, then deletes all but the newest `keep`
/// backups. `scratch` is a directory for the temporary copies.
pub async fn backup(
    ledger: &Ledger,
    store: &dyn Store,
    prefix: &str,
    keep: usize,
    scratch: &Path,
) -> Result<BackupReport, Error> {
    fs::create_dir_all(scratch).map_err(Error::io(scratch))?;
    let copy = scratch.join("ledger-backup.sqlite3.tmp");
    let packed = scratch.join("ledger-backup.sqlite3.zst.tmp");
    let _ = fs::remove_file(&copy);
    let result = async {
        let (sha256, size) = pack(ledger, scratch, &copy, &packed).await?;
        let key = format!("{prefix}{}{SUFFIX}", Utc::now().format(STAMP));
        let metadata: BTreeMap<String, String> =
            [(meta::SHA256.to_string(), hex::encode(sha256))].into();
        let outcome = store
            .put(&PutRequest {
                key: &key,
                source: crate::store::Body::File(&packed),
                size,
                sha256,
                metadata: &metadata,
                content_type: "application/zstd",
            })
            .await?;
        if let PutOutcome::Exists(_) = outcome {
            // Two backups within one second: the one there is as recent.
            tracing::debug!(key = %key, "a backup with this timestamp already exists");
        }
        let pruned = prune(store, prefix, keep).await?;
        Ok(BackupReport {
            key,
            bytes: size,
            pruned,
        })
    }
    .await;
    let _ = fs::remove_file(&copy);
    let _ = fs::remove_file(&packed);
    result
}

/// A consistent copy of the ledger compressed to `packed` (through a
/// scratch copy at `copy` only where this SQLite cannot read pages): its
/// SHA-256 and size.
async fn pack(
    ledger: &Ledger,
    scratch: &Path,
    copy: &Path,
    packed: &Path,
) -> Result<([u8; 32], u64), Error> {
    let (source, copy, packed) = (
        ledger.path().to_path_buf(),
        copy.to_path_buf(),
        packed.to_path_buf(),
    );
    tokio::task::spawn_blocking(move || pack_blocking(&source, &copy, &packed, Pages::Stream))
        .await
        .map_err(|e| Error::Io {
            path: scratch.to_path_buf(),
            source: io::Error::other(e),
        })?
}

/// How the ledger's pages reach the compressor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pages {
    /// Read in one read transaction and compressed as they come, where this
    /// SQLite has `sqlite_dbpage`; else as `Copy`.
    Stream,
    /// Copied to a scratch file by SQLite's online backup, then compressed
    /// (what `Stream` falls back to; tests take it on purpose).
    #[cfg_attr(not(test), allow(dead_code))]
    Copy,
}

/// Compresses a consistent copy of the ledger at `source` into `dest`, by
/// `pages`; returns the SHA-256 and size of `dest`.
fn pack_blocking(
    source: &Path,
    copy: &Path,
    dest: &Path,
    pages: Pages,
) -> Result<([u8; 32], u64), Error> {
    let out = File::create(dest).map_err(Error::io(dest))?;
    let mut writer = HashingWriter::new(BufWriter::with_capacity(CHUNK, out));
    let mut encoder = encoder(&mut writer).map_err(Error::io(dest))?;
    let streamed = match pages {
        Pages::Stream => crate::ledger::write_pages(source, &mut encoder)
            .map_err(Error::io(source))?
            .is_some(),
        Pages::Copy => false,
    };
    if !streamed {
        crate::ledger::backup_file(source, copy)?;
        let input = File::open(copy).map_err(Error::io(copy))?;
        io::copy(&mut BufReader::with_capacity(CHUNK, input), &mut encoder)
            .map_err(Error::io(dest))?;
        let _ = fs::remove_file(copy);
    }
    encoder.finish().map_err(Error::io(dest))?;
    writer.flush().map_err(Error::io(dest))?;
    let (out, sha, size) = writer.finish();
    out.into_inner()
        .map_err(|e| Error::io(dest)(e.into_error()))?
        .sync_all()
        .map_err(Error::io(dest))?;
    Ok((sha, size))
}

/// zstd level 1, on up to two worker threads, with a checksum. A ledger
/// page compresses nearly as well at 1 as at 3 (a million recordings:
/// 171 MB against 168 MB, and 137 MB at 9) for 45 % less CPU; the workers
/// compress while this thread reads pages, so a ten-million-row ledger is
/// packed in the time it takes to read it, not a minute.
fn encoder<W: Write>(out: W) -> io::Result<zstd::stream::Encoder<'static, W>> {
    let mut encoder = zstd::stream::Encoder::new(out, 1)?;
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(2));
    // A zstd built without threads refuses: it then compresses on this one.
    let _ = encoder.multithread(workers as u32);
    encoder.include_checksum(true)?;
    Ok(encoder)
}

/// Deletes all but the newest `keep` backups; returns the keys deleted.
async fn prune(store: &dyn Store, prefix: &str, keep: usize) -> Result<Vec<String>, Error> {
    let keys = list(store, prefix).await?;
    let mut pruned = Vec::new();
    // Every version: ledger copies hold personal data (names, numbers),
    // and on a versioned bucket a plain delete would keep them for ever.
    let old = &keys[..keys.len().saturating_sub(keep)];
    for (key, result) in store.delete_all_versions(old).await? {
        result?;
        pruned.push(key);
    }
    Ok(pruned)
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct Restored {
    /// The backup restored.
    pub key: String,
    /// Where the ledger it replaced went, if there was one.
    pub moved_aside: Option<PathBuf>,
    /// What the store knew that the backup did not, brought back.
    pub caught_up: CaughtUp,
}

/// Replaces the ledger at `ledger_path` with the newest backup of
/// `archive`'s host, brought up to what the store knows that is newer
/// (`recovery::catch_up`) before it is put in place. Refuses while a daemon
/// holds the ledger's lock (and holds it meanwhile). The ledger it replaces
/// is kept beside it as `…before-restore-<time>`.
pub async fn reinstate_latest(
    archive: &HostArchive<'_>,
    ledger_path: &Path,
) -> Result<Restored, Error> {
    let _lock = InstanceLock::acquire(ledger_path)?;
    let (store, host) = (archive.store, archive.host);
    let prefix = backup_prefix(archive.store_prefix, host);
    let keys = list(store, &prefix).await?;
    let key = keys.last().cloned().ok_or_else(|| Error::NoBackup {
        host: host.to_string(),
        prefix: prefix.clone(),
    })?;
    let dir = ledger_path.parent().unwrap_or(Path::new("/")).to_path_buf();
    fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
    let packed = dir.join(".ledger-restore.zst.tmp");
    let unpacked = dir.join(".ledger-restore.sqlite3.tmp");
    let result = async {
        fetch_checked(store, &key, &packed, &unpacked).await?;
        let replaced_next = crate::ledger::ids::next_id_in(ledger_path);
        let restored = Ledger::open(&unpacked)?;
        let taken = taken_at(&prefix, &key);
        let caught_up = catch_up(&restored, archive, taken, replaced_next).await?;
        // Closed (its WAL folded into the file) before it is moved.
        drop(restored);
        let moved_aside = put_in_place(&unpacked, ledger_path)?;
        digest::sync_dir(&dir).map_err(Error::io(&dir))?;
        Ok(Restored {
            key: key.clone(),
            moved_aside,
            caught_up,
        })
    }
    .await;
    let _ = fs::remove_file(&packed);
    let _ = fs::remove_file(&unpacked);
    for ext in ["-wal", "-shm"] {
        let _ = fs::remove_file(format!("{}{ext}", unpacked.display()));
    }
    result
}

/// Downloads backup `key` to `packed` and unpacks it to `unpacked`,
/// provided its SHA-256 is the one its metadata names and the ledger in it
/// passes its check.
async fn fetch_checked(
    store: &dyn Store,
    key: &str,
    packed: &Path,
    unpacked: &Path,
) -> Result<(), Error> {
    store.get(key, packed).await?;
    let want = store
        .head(key)
        .await?
        .and_then(|i| i.metadata.get(meta::SHA256).cloned());
    let (packed2, unpacked2) = (packed.to_path_buf(), unpacked.to_path_buf());
    let got = tokio::task::spawn_blocking(move || unpack(&packed2, &unpacked2))
        .await
        .map_err(|e| Error::Io {
            path: packed.to_path_buf(),
            source: io::Error::other(e),
        })??;
    if want.as_ref().is_some_and(|w| *w != got) {
        return Err(Error::BackupDamaged {
            key: key.to_string(),
            problem: format!("SHA-256 {got}, metadata says {}", want.unwrap_or_default()),
        });
    }
    let problems = Ledger::open(unpacked)?.check()?;
    if let Some(p) = problems.first() {
        return Err(Error::BackupDamaged {
            key: key.to_string(),
            problem: format!("ledger check: {} (ids {:?})", p.rule, p.ids),
        });
    }
    Ok(())
}

/// Decompresses `packed` into `unpacked`; returns the SHA-256 of `packed` (hex).
fn unpack(packed: &Path, unpacked: &Path) -> Result<String, Error> {
    let (sha, _) = digest::sha256_file(packed).map_err(Error::io(packed))?;
    let input = BufReader::new(File::open(packed).map_err(Error::io(packed))?);
    let mut out = File::create(unpacked).map_err(Error::io(unpacked))?;
    zstd::stream::copy_decode(input, &mut out).map_err(Error::io(unpacked))?;
    out.sync_all().map_err(Error::io(unpacked))?;
    Ok(hex::encode(sha))
}

/// Moves the ledger at `ledger_path` aside (returned), if there is one, and
/// the restored `unpacked` into its place.
fn put_in_place(unpacked: &Path, ledger_path: &Path) -> Result<Option<PathBuf>, Error> {
    let moved = if ledger_path.exists() {
        let aside = PathBuf::from(format!(
            "{}.before-restore-{}",
            ledger_path.display(),
            Utc::now().format(STAMP)
        ));
        fs::rename(ledger_path, &aside).map_err(Error::io(ledger_path))?;
        Some(aside)
    } else {
        None
    };
    // The old ledger's WAL must not be replayed into the restored one.
    for ext in ["-wal", "-shm"] {
        let side = PathBuf::from(format!("{}{ext}", ledger_path.display()));
        if let (Some(aside), true) = (&moved, side.exists()) {
            let _ = fs::rename(&side, format!("{}{ext}", aside.display()));
        } else {
            let _ = fs::remove_file(&side);
        }
    }
    fs::rename(unpacked, ledger_path).map_err(Error::io(ledger_path))?;
    Ok(moved)
}

/// Where the schedule also stores a copy of the hold table (see `hold_copy`).
pub struct HoldCopies {
    pub store_prefix: String,
    pub host: String,
}

/// The daemon's backup schedule: the first backup when the newest in the
/// store is `every` old (at once if there is none), then every `every`.
/// Runs until the task is aborted; failures are logged and retried at the
/// next tick, never more often than every minute.
pub async fn schedule(
    ledger: std::sync::Arc<Ledger>,
    store: std::sync::Arc<dyn Store>,
    prefix: String,
    every: Duration,
    keep: usize,
    scratch: PathBuf,
    holds: HoldCopies,
) {
    let first = match age_of_newest(&*store, &prefix).await {
        Ok(Some(age)) => every.saturating_sub(age),
        Ok(None) => Duration::ZERO,
        Err(e) => {
            tracing::warn!(prefix = %prefix, "cannot list ledger backups: {e}");
            Duration::from_secs(60).min(every)
        }
    };
    tokio::time::sleep(first).await;
    loop {
        let wait = match backup(&ledger, &*store, &prefix, keep, &scratch).await {
            Ok(report) => {
                tracing::info!(key = %report.key, bytes = report.bytes, pruned = report.pruned.len(), "ledger backed up");
                // Holds must survive a lost disk even without restoring a backup.
                if let Err(e) = crate::recovery::hold_copy::publish(
                    &ledger,
                    &*store,
                    &holds.store_prefix,
                    &holds.host,
                )
                .await
                {
                    tracing::warn!(
                        "copying the holds to the store failed (the ledger keeps them): {e}"
                    );
                }
                every
            }
            Err(e) => {
                tracing::warn!(prefix = %prefix, "ledger backup failed: {e}");
                Duration::from_secs(60).min(every)
            }
        };
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::LocalStore;

    /// Pages streamed into the compressor and the scratch copy this
    /// SQLite falls back to without `sqlite_dbpage` unpack to the same
    /// ledger, whole and sound.
    #[test]
    fn streamed_pages_and_a_scratch_copy_unpack_to_the_same_ledger() {
        use crate::ledger::fixtures::insert_plain;
        use crate::recording::State;
        let dir = tempfile::tempdir().unwrap();
        let ledger_path = dir.path().join("ledger.sqlite3");
        let ledger = Ledger::open(&ledger_path).unwrap();
        for i in 0..300 {
            insert_plain(&ledger, &format!("/s/{i}.wav"), State::Settled);
        }
        let rows = |path: &Path| -> Vec<(i64, Vec<u8>, String)> {
            let conn = rusqlite::Connection::open(path).unwrap();
            let mut stmt = conn
                .prepare("SELECT id, path, state FROM recordings ORDER BY id")
                .unwrap();
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        let want = rows(&ledger_path);
        assert_eq!(want.len(), 300);
        for pages in [Pages::Stream, Pages::Copy] {
            let copy = dir.path().join("copy.tmp");
            let packed = dir.path().join(format!("{pages:?}.zst"));
            let (sha, size) = pack_blocking(&ledger_path, &copy, &packed, pages).unwrap();
            assert!(!copy.exists(), "{pages:?} leaves no scratch copy");
            assert_eq!(fs::metadata(&packed).unwrap().len(), size);
            let unpacked = dir.path().join(format!("{pages:?}.sqlite3"));
            assert_eq!(unpack(&packed, &unpacked).unwrap(), hex::encode(sha));
            assert_eq!(rows(&unpacked), want, "{pages:?}");
            assert_eq!(Ledger::open(&unpacked).unwrap().check().unwrap(), vec![]);
        }
    }

    #[tokio::test]
    async fn backups_rotate_and_the_newest_restores() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path().join("store"));
        let ledger_path = dir.path().join("var/ledger.sqlite3");
        let ledger = Ledger::open(&ledger_path).unwrap();
        let prefix = backup_prefix("p/", "host1");
        assert_eq!(prefix, "p/.recvault/ledger/host1/");
        let mut taken = Vec::new();
        for _ in 0..3 {
            taken.push(
                backup(&ledger, &store, &prefix, 2, &dir.path().join("scratch"))
                    .await
                    .unwrap()
                    .key,
            );
            // Keys carry whole seconds.
            tokio::time::sleep(Duration::from_millis(1100)).await;
        }
        let kept = list(&store, &prefix).await.unwrap();
        assert_eq!(kept, taken[1..].to_vec());
        drop(ledger);
        let archive = HostArchive {
            store: &store,
            store_prefix: "p/",
            host: "host1",
            spool_dirs: &[],
        };
        let err = {
            let _held = InstanceLock::acquire(&ledger_path).unwrap();
            reinstate_latest(&archive, &ledger_path).await.unwrap_err()
        };
        assert!(matches!(err, Error::Lock(_)), "{err}");
        let restored = reinstate_latest(&archive, &ledger_path).await.unwrap();
        assert_eq!(restored.key, taken[2]);
        assert!(restored.moved_aside.unwrap().exists());
        assert_eq!(Ledger::open(&ledger_path).unwrap().check().unwrap(), vec![]);
    }
}
