//! Recordings decoded for playback, on disk: the first request for an
//! archived recording starts one decode (store stream → codec → a file in
//! the cache directory); every request for it, Range requests included,
//! reads that file, waiting for the bytes it wants while the decode is
//! still writing. Memory stays bounded whatever the number of listeners (a
//! few decodes at once, each streaming), seeking never decodes again, and a
//! decode that does not hash to the original's SHA-256 is thrown away.
//! Files nobody reads are removed, oldest first, above the configured size.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::io::AsyncReadExt;
use tokio::runtime::Handle;
use tokio::sync::{Semaphore, watch};

use crate::codec;
use crate::recording::Recording;
use crate::recording::key::display_name;
use crate::store::{ObjectReader, Store};

/// Decodes running at once: each holds a codec's window and a blocking thread.
const DECODES: usize = 3;
/// Readers are woken at most once per this many decoded bytes.
const NOTIFY_EVERY: u64 = 64 * 1024;

/// Why a recording could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The store could not be reached (or broke off): try again later.
    Unavailable,
    /// The store has no object under the recording's key.
    Missing,
    /// The decoded bytes are not the original (size or SHA-256).
    Damaged,
    /// The cache directory could not be written.
    Local,
}

/// How far a decode has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// This many bytes are in the file so far.
    Decoding(u64),
    Done,
    Failed(Failure),
}

/// One recording's decoded file.
pub struct Entry {
    pub size: u64,
    /// Open for reading (it stays readable once removed from the cache).
    pub file: Arc<File>,
    path: PathBuf,
    progress: watch::Receiver<Progress>,
    last_used: AtomicU64,
}

impl Entry {
    /// How many bytes from the start can be read now, waiting until there
    /// are more than `pos` (or the decode ended).
    pub async fn readable_past(&self, pos: u64) -> Result<u64, Failure> {
        let mut progress = self.progress.clone();
        loop {
            match *progress.borrow_and_update() {
                Progress::Done => return Ok(self.size),
                Progress::Failed(f) => return Err(f),
                Progress::Decoding(n) if n > pos => return Ok(n),
                Progress::Decoding(_) => {}
            }
            if progress.changed().await.is_err() {
                return Err(Failure::Local);
            }
        }
    }

    fn state(&self) -> Progress {
        *self.progress.borrow()
    }
}

/// The decoded copy of recording `id` in cache directory `dir` (erasure
/// and retention remove it by this name).
pub fn file_of(dir: &Path, id: i64) -> PathBuf {
    dir.join(decoded_name(id))
}

/// The decoded recordings.
pub struct PlaybackCache {
    dir: PathBuf,
    limit: u64,
    store: Arc<dyn Store>,
    decodes: Arc<Semaphore>,
    entries: Mutex<HashMap<i64, Arc<Entry>>>,
    started: Instant,
}

impl PlaybackCache {
    /// A cache in `dir` keeping about `limit` bytes of files nobody reads.
    /// The decoded files of a previous run are removed (one may be a decode
    /// cut short); nothing else in `dir` is ever touched.
    pub fn new(dir: &Path, limit: u64, store: Arc<dyn Store>) -> io::Result<PlaybackCache> {
        fs::create_dir_all(dir)?;
        for entry in fs::read_dir(dir)?.flatten() {
            let name = entry.file_name();
            if name.to_str().is_some_and(is_decoded_name)
                && entry.file_type().is_ok_and(|t| t.is_file())
            {
                fs::remove_file(entry.path())?;
            }
        }
        Ok(PlaybackCache {
            dir: dir.to_path_buf(),
            limit,
            store,
            decodes: Arc::new(Semaphore::new(DECODES)),
            entries: Mutex::new(HashMap::new()),
            started: Instant::now(),
        })
    }

    /// The decoded file of `rec` (stored under `key`), once its first bytes
    /// are there: an error before then is answered as an error, not as a
    /// response cut short.
    pub async fn open(&self, rec: &Recording, key: &str) -> Result<Arc<Entry>, Failure> {
        let entry = self.entry(rec, key)?;
        entry.readable_past(0).await.map(|_| entry.clone())?;
        Ok(entry)
    }

    fn entry(&self, rec: &Recording, key: &str) -> Result<Arc<Entry>, Failure> {
        // Make room first: with `cache_size = "0"` nothing idle is reused.
        self.evict();
        let now = self.started.elapsed().as_millis() as u64;
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = entries.get(&rec.id)
            && !matches!(e.state(), Progress::Failed(_))
        {
            e.last_used.store(now, Ordering::Relaxed);
            return Ok(e.clone());
        }
        let path = file_of(&self.dir, rec.id);
        let local = |e: io::Error| {
            tracing::warn!(path = %path.display(), "playback cache: {e}");
            Failure::Local
        };
        let writer = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(local)?;
        let file = Arc::new(File::open(&path).map_err(local)?);
        let (tx, progress) = watch::channel(Progress::Decoding(0));
        let entry = Arc::new(Entry {
            size: rec.identity.size,
            file,
            path,
            progress,
            last_used: AtomicU64::new(now),
        });
        entries.insert(rec.id, entry.clone());
        let job = Decode {
            store: self.store.clone(),
            key: key.to_string(),
            rec: rec.clone(),
            permits: self.decodes.clone(),
        };
        tokio::spawn(job.run(writer, tx));
        Ok(entry)
    }

    /// Removes failed entries, entries whose file an erasure or retention
    /// removed (their open handle would keep the audio on disk), and, above
    /// the size limit, the least recently used files that nobody reads and
    /// no decode writes.
    pub fn evict(&self) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|_, e| {
            let failed = matches!(e.state(), Progress::Failed(_));
            let idle = Arc::strong_count(e) == 1;
            if failed && idle {
                let _ = fs::remove_file(&e.path);
            }
            let removed = idle && e.state() == Progress::Done && !e.path.exists();
            !failed && !removed
        });
        let mut total: u64 = entries.values().map(|e| e.size).sum();
        if total <= self.limit {
            return;
        }
        let mut idle: Vec<(u64, i64)> = entries
            .iter()
            .filter(|(_, e)| Arc::strong_count(e) == 1 && e.state() == Progress::Done)
            .map(|(id, e)| (e.last_used.load(Ordering::Relaxed), *id))
            .collect();
        idle.sort();
        for (_, id) in idle {
            if total <= self.limit {
                break;
            }
            if let Some(e) = entries.remove(&id) {
                total -= e.size;
                let _ = fs::remove_file(&e.path);
            }
        }
    }

    /// Decoded files kept now, and their bytes.
    pub fn usage(&self) -> (usize, u64) {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        (entries.len(), entries.values().map(|e| e.size).sum())
    }
}

/// The name of recording `id`'s decoded file: `<id>.orig`.
fn decoded_name(id: i64) -> String {
    format!("{id}.orig")
}

/// True for a name [`decoded_name`] gives, the only files the cache removes.
fn is_decoded_name(name: &str) -> bool {
    name.strip_suffix(".orig")
        .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
}

/// One decode: store stream → codec → file, checked against the ledger.
struct Decode {
    store: Arc<dyn Store>,
    key: String,
    rec: Recording,
    permits: Arc<Semaphore>,
}

impl Decode {
    async fn run(self, writer: File, tx: watch::Sender<Progress>) {
        let outcome = self.decode(writer, &tx).await;
        let name = display_name(&self.rec.name);
        match outcome {
            Ok(()) => {
                tx.send_replace(Progress::Done);
            }
            Err(f) => {
                match f {
                    Failure::Damaged => {
                        tracing::error!(recording = %name, key = %self.key, "the stored object does not decode to the original (SHA-256 differs); run `recvault verify`")
                    }
                    Failure::Missing => {
                        tracing::error!(recording = %name, key = %self.key, "the recording's object is missing from the store; run `recvault verify`")
                    }
                    _ => {
                        tracing::warn!(recording = %name, key = %self.key, ?f, "playback decode failed")
                    }
                }
                tx.send_replace(Progress::Failed(f));
            }
        }
    }

    async fn decode(&self, writer: File, tx: &watch::Sender<Progress>) -> Result<(), Failure> {
        let _permit = self.permits.acquire().await.map_err(|_| Failure::Local)?;
        let reader = match self.store.open(&self.key).await {
            Ok(Some(r)) => r,
            Ok(None) => return Err(Failure::Missing),
            Err(e) => {
                tracing::debug!(key = %self.key, "playback: {e}");
                return Err(Failure::Unavailable);
            }
        };
        let codec = codec::codec_of(&self.rec);
        let sink = ProgressWriter {
            file: writer,
            written: 0,
            notified: 0,
            tx: tx.clone(),
        };
        let read_failed = Arc::new(AtomicBool::new(false));
        let source = BlockingRead {
            inner: reader,
            handle: Handle::current(),
            failed: read_failed.clone(),
        };
        let decoded = tokio::task::spawn_blocking(move || codec::decode(codec, source, sink))
            .await
            .map_err(|_| Failure::Local)?;
        let decoded = decoded.map_err(|e| {
            tracing::debug!(key = %self.key, "playback decode: {e}");
            if read_failed.load(Ordering::Relaxed) {
                Failure::Unavailable
            } else if matches!(
                e.kind(),
                io::ErrorKind::StorageFull | io::ErrorKind::PermissionDenied
            ) {
                Failure::Local
            } else {
                // The codec refused what the store sent in full.
                Failure::Damaged
            }
        })?;
        let want = self.rec.sha256.as_deref().unwrap_or_default();
        if hex::encode(decoded.sha256) != want || decoded.size != self.rec.identity.size {
            return Err(Failure::Damaged);
        }
        Ok(())
    }
}

/// An async store stream read from a blocking thread; `failed` says
/// whether an error came from the store rather than the codec.
struct BlockingRead {
    inner: ObjectReader,
    handle: Handle,
    failed: Arc<AtomicBool>,
}

impl Read for BlockingRead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.handle.block_on(self.inner.read(buf));
        if read.is_err() {
            self.failed.store(true, Ordering::Relaxed);
        }
        read
    }
}

/// Writes the decoded file and tells readers how far it has got.
struct ProgressWriter {
    file: File,
    written: u64,
    notified: u64,
    tx: watch::Sender<Progress>,
}

impl Write for ProgressWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        if self.written - self.notified >= NOTIFY_EVERY {
            self.notified = self.written;
            self.tx.send_replace(Progress::Decoding(self.written));
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tx.send_replace(Progress::Decoding(self.written));
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Codec;
    use crate::recording::FileIdentity;
    use crate::recording::State;
    use crate::store::{LocalStore, PutRequest};

    /// A recording of `bytes`, its object stored under `key` in `store`.
    async fn stored(dir: &Path, store: &LocalStore, key: &str, bytes: &[u8]) -> Recording {
        let src = dir.join(format!("{key}.wav"));
        fs::write(&src, bytes).unwrap();
        let identity = FileIdentity::of(&fs::metadata(&src).unwrap());
        let obj = dir.join(format!("{key}.obj"));
        let enc = codec::encode(&src, identity, Codec::Zstd, Default::default(), &obj).unwrap();
        let metadata = Default::default();
        let req = PutRequest {
            key,
            source: crate::store::Body::File(&obj),
            size: enc.object_size,
            sha256: enc.object_sha256,
            metadata: &metadata,
            content_type: "application/zstd",
        };
        store.put(&req).await.unwrap();
        let (_d, ledger) = crate::ledger::fixtures::ledger();
        let id =
            crate::ledger::fixtures::insert_plain(&ledger, &format!("/s/{key}.wav"), State::Seen);
        let mut rec = ledger.recording(id).unwrap();
        rec.id = id + key.len() as i64;
        rec.identity = identity;
        rec.sha256 = Some(hex::encode(enc.sha256));
        rec.codec = Some("zstd".into());
        rec
    }

    async fn read_all(entry: &Entry) -> Vec<u8> {
        let size = entry
            .readable_past(entry.size.saturating_sub(1))
            .await
            .unwrap();
        let mut out = vec![0u8; size as usize];
        std::os::unix::fs::FileExt::read_exact_at(&*entry.file, &mut out, 0).unwrap();
        out
    }

    #[test]
    fn a_restart_removes_only_decoded_files() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        fs::create_dir_all(cache.join("sub")).unwrap();
        let foreign = [
            "ledger.sqlite3",
            "a-all.wav",
            "x.orig",
            "1.orig.tmp",
            "sub/2.orig",
        ];
        for name in foreign.iter().chain(&["12.orig", "7.orig"]) {
            fs::write(cache.join(name), b"x").unwrap();
        }
        let store = LocalStore::new(dir.path().join("store"));
        PlaybackCache::new(&cache, 0, Arc::new(store)).unwrap();
        for name in foreign {
            assert!(cache.join(name).exists(), "{name} kept");
        }
        assert!(!cache.join("12.orig").exists() && !cache.join("7.orig").exists());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn decodes_once_checks_the_hash_and_keeps_only_what_fits() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path().join("store"));
        let data: Vec<u8> = (0..700_000u32).map(|i| (i % 241) as u8).collect();
        let rec = stored(dir.path(), &store, "a", &data).await;
        let cache =
            PlaybackCache::new(&dir.path().join("cache"), 0, Arc::new(store.clone())).unwrap();
        let first = cache.open(&rec, "a").await.unwrap();
        let again = cache.open(&rec, "a").await.unwrap();
        assert!(Arc::ptr_eq(&first, &again), "one decode for two listeners");
        assert_eq!(read_all(&first).await, data);
        drop((first, again));
        // cache_size 0: nobody reads it any more, so the next open decodes afresh.
        let fresh = cache.open(&rec, "a").await.unwrap();
        assert_eq!(read_all(&fresh).await, data);
        assert_eq!(cache.usage().0, 1);
        // Missing object; an object that is not the original.
        let mut missing = rec.clone();
        missing.id += 100;
        assert_eq!(
            cache.open(&missing, "nope").await.err(),
            Some(Failure::Missing)
        );
        let mut wrong = rec.clone();
        wrong.id += 200;
        wrong.sha256 = Some("00".repeat(32));
        let entry = cache.open(&wrong, "a").await;
        let failed = match entry {
            Err(f) => f,
            Ok(e) => e.readable_past(e.size).await.unwrap_err(),
        };
        assert_eq!(failed, Failure::Damaged);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_copy_erased_behind_the_cache_s_back_is_let_go() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path().join("store"));
        let data: Vec<u8> = (0..50_000u32).map(|i| (i % 199) as u8).collect();
        let rec = stored(dir.path(), &store, "b", &data).await;
        let cache_dir = dir.path().join("cache");
        let cache = PlaybackCache::new(&cache_dir, 1 << 30, Arc::new(store.clone())).unwrap();
        let entry = cache.open(&rec, "b").await.unwrap();
        assert_eq!(read_all(&entry).await, data);
        // Past its size: only the end of the decode answers.
        assert_eq!(entry.readable_past(entry.size).await, Ok(entry.size));
        drop(entry);
        // An erasure (or retention) removes the file by its name.
        fs::remove_file(file_of(&cache_dir, rec.id)).unwrap();
        assert_eq!(cache.usage().0, 1, "kept while it is there");
        cache.evict();
        assert_eq!(
            cache.usage(),
            (0, 0),
            "its open handle is closed, so the audio is freed"
        );
    }
}
