//! A store in a local directory (a NAS mount, or the demo's default).
//! Objects are staged (`staged.rs`), checked against the caller's SHA-256,
//! then linked into place so an existing object is never overwritten.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::sidecar::{META_DIR, Sidecar, check_key, is_temp_name, sidecar_key};
use super::staged::StagedFile;
use super::{
    Body, ListedObject, ObjectInfo, ObjectReader, PutOutcome, PutRequest, Store, StoreError,
    Versioning, single_part_checksum,
};
use crate::digest::{self, HashingWriter};

/// A directory used as an object store.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

/// Where a put's bytes are, owned so the blocking task can have them.
enum Source {
    File(PathBuf),
    /// A small object held in memory (copied: the put is a blocking task).
    Bytes(Vec<u8>),
}

impl Source {
    fn of(body: Body<'_>) -> Source {
        match body {
            Body::File(path) => Source::File(path.to_path_buf()),
            Body::Bytes(bytes) => Source::Bytes(bytes.to_vec()),
        }
    }

    fn body(&self) -> Body<'_> {
        match self {
            Source::File(path) => Body::File(path),
            Source::Bytes(bytes) => Body::Bytes(bytes),
        }
    }
}

/// What a put hands over besides the key.
struct Sent<'a> {
    source: &'a Source,
    sha256: [u8; 32],
    metadata: BTreeMap<String, String>,
    content_type: String,
}

fn local(context: &str, path: &Path, e: io::Error) -> StoreError {
    StoreError::Local(format!("{context} {}: {e}", path.display()))
}

/// The store's own trouble: unlike a source file, retrying may help once the
/// mount or disk is back, so it counts as transient — except for errors about
/// this one key (a name too long for the file system), which no retry fixes
/// and which must not pause every other upload as an outage would.
fn unavailable(context: &str, path: &Path, e: io::Error) -> StoreError {
    let message = format!("{context} {}: {e}", path.display());
    if e.raw_os_error() == Some(libc::ENAMETOOLONG) {
        StoreError::Permanent(message)
    } else {
        StoreError::Transient(message)
    }
}

/// Copies `source` into the staged file `out` (for `target`), synced: the
/// SHA-256 and size of the bytes written.
fn copy_synced(
    source: &Source,
    out: &mut StagedFile,
    target: &Path,
) -> Result<([u8; 32], u64), StoreError> {
    let body = source.body();
    let mut input = body
        .reader()
        .map_err(|e| StoreError::Local(format!("cannot open {body}: {e}")))?;
    let mut writer = HashingWriter::new(out.file());
    io::copy(&mut input, &mut writer).map_err(|e| unavailable("cannot write", target, e))?;
    let (out, written_sha, size) = writer.finish();
    out.sync_all()
        .map_err(|e| unavailable("cannot sync", target, e))?;
    Ok((written_sha, size))
}

impl LocalStore {
    pub fn new(root: PathBuf) -> LocalStore {
        LocalStore { root }
    }

    fn object_path(&self, key: &str) -> Result<PathBuf, StoreError> {
        check_key(key)?;
        Ok(self.root.join(key))
    }

    fn sidecar_path(&self, key: &str) -> PathBuf {
        self.root.join(sidecar_key(key))
    }

    fn put_blocking(
        &self,
        key: &str,
        source: &Source,
        sha256: [u8; 32],
        metadata: BTreeMap<String, String>,
        content_type: String,
    ) -> Result<PutOutcome, StoreError> {
        let target = self.object_path(key)?;
        if let Some(info) = self.head_blocking(key)? {
            return Ok(PutOutcome::Exists(info));
        }
        let sent = Sent {
            source,
            sha256,
            metadata,
            content_type,
        };
        self.write_new(&target, key, sent)
    }

    fn write_new(
        &self,
        target: &Path,
        key: &str,
        sent: Sent<'_>,
    ) -> Result<PutOutcome, StoreError> {
        let Sent {
            source,
            sha256,
            metadata,
            content_type,
        } = sent;
        let mut staged =
            StagedFile::create(target).map_err(|e| unavailable("cannot create", target, e))?;
        let (written_sha, size) = copy_synced(source, &mut staged, target)?;
        if written_sha != sha256 {
            // Like S3's BadDigest: the bytes are not the bytes the caller hashed.
            return Err(StoreError::Permanent(format!(
                "checksum mismatch for `{key}`: sent {}, stored bytes hash to {}",
                hex::encode(sha256),
                hex::encode(written_sha)
            )));
        }
        let checksum = single_part_checksum(&written_sha);
        self.write_sidecar(
            key,
            &Sidecar {
                size,
                checksum: checksum.clone(),
                metadata,
                content_type: Some(content_type),
            },
        )?;
        // link() fails if the target exists: never overwrite.
        match staged.link(target) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return match self.head_blocking(key)? {
                    Some(info) => Ok(PutOutcome::Exists(info)),
                    None => Err(StoreError::Transient(format!(
                        "`{key}` appeared and vanished during put"
                    ))),
                };
            }
            Err(e) => return Err(unavailable("cannot link", target, e)),
        }
        let parent = target.parent().unwrap_or(&self.root);
        digest::sync_dir(parent).map_err(|e| unavailable("cannot sync", parent, e))?;
        Ok(PutOutcome::Created { checksum })
    }

    /// Writes `key`'s sidecar (staged, synced, then linked into place).
    /// Called only for a key with no object, so a sidecar found there was
    /// left by a put that never linked its object, and is replaced.
    fn write_sidecar(&self, key: &str, sidecar: &Sidecar) -> Result<(), StoreError> {
        let side = self.sidecar_path(key);
        let text = sidecar.to_text()?;
        let write_side = || -> io::Result<()> {
            let mut staged = StagedFile::create(&side)?;
            staged.file().write_all(text.as_bytes())?;
            staged.file().sync_all()?;
            match staged.link(&side) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    fs::remove_file(&side)?;
                    staged.link(&side)
                }
                other => other,
            }
        };
        write_side().map_err(|e| unavailable("cannot write", &side, e))
    }

    fn head_blocking(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        let target = self.object_path(key)?;
        let meta = match fs::symlink_metadata(&target) {
            Ok(m) if m.is_file() => m,
            Ok(_) => {
                return Err(StoreError::Permanent(format!(
                    "`{key}` is not a regular file"
                )));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(unavailable("cannot stat", &target, e)),
        };
        let side = self.sidecar_path(key);
        let sidecar: Option<Sidecar> = match fs::read(&side) {
            Ok(text) => Sidecar::parse(&text),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(unavailable("cannot read", &side, e)),
        };
        Ok(Some(match sidecar {
            // A sidecar describing another size is stale; report what is there.
            Some(s) if s.size == meta.len() => ObjectInfo {
                size: meta.len(),
                checksum: Some(s.checksum),
                metadata: s.metadata,
            },
            _ => ObjectInfo {
                size: meta.len(),
                checksum: None,
                metadata: BTreeMap::new(),
            },
        }))
    }

    fn list_blocking(&self, prefix: &str) -> Result<Vec<ListedObject>, StoreError> {
        let mut out = Vec::new();
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(unavailable("cannot list", &dir, e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| unavailable("cannot list", &dir, e))?;
                let path = entry.path();
                let Ok(rel) = path.strip_prefix(&self.root) else {
                    continue;
                };
                let Some(key) = rel.to_str() else { continue };
                let file_type = entry
                    .file_type()
                    .map_err(|e| unavailable("cannot stat", &path, e))?;
                let name = entry.file_name();
                // Skip the sidecars and our own temp files.
                if key == META_DIR || is_temp_name(&name.to_string_lossy()) {
                    continue;
                }
                if file_type.is_dir() {
                    stack.push(path);
                } else if file_type.is_file() && key.starts_with(prefix) {
                    let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                    out.push(ListedObject {
                        key: key.to_string(),
                        size,
                    });
                }
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Transient(format!("store task failed: {e}")))?
}

#[async_trait]
impl Store for LocalStore {
    fn describe(&self) -> String {
        format!("local directory {}", self.root.display())
    }

    async fn put(&self, req: &PutRequest<'_>) -> Result<PutOutcome, StoreError> {
        let this = self.clone();
        let (key, source, sha, meta, content_type) = (
            req.key.to_string(),
            Source::of(req.source),
            req.sha256,
            req.metadata.clone(),
            req.content_type.to_string(),
        );
        blocking(move || this.put_blocking(&key, &source, sha, meta, content_type)).await
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        let this = self.clone();
        let key = key.to_string();
        blocking(move || this.head_blocking(&key)).await
    }

    async fn get(&self, key: &str, dest: &Path) -> Result<u64, StoreError> {
        let source = self.object_path(key)?;
        let dest = dest.to_path_buf();
        let key = key.to_string();
        blocking(move || {
            let mut input = match File::open(&source) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(StoreError::Permanent(format!("no object `{key}`")));
                }
                Err(e) => return Err(unavailable("cannot open", &source, e)),
            };
            let mut out = File::create(&dest).map_err(|e| local("cannot create", &dest, e))?;
            let n = io::copy(&mut input, &mut out).map_err(|e| local("cannot write", &dest, e))?;
            out.sync_all().map_err(|e| local("cannot sync", &dest, e))?;
            Ok(n)
        })
        .await
    }

    async fn open(&self, key: &str) -> Result<Option<ObjectReader>, StoreError> {
        let source = self.object_path(key)?;
        match tokio::fs::File::open(&source).await {
            Ok(f) => Ok(Some(Box::new(f))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(unavailable("cannot open", &source, e)),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let target = self.object_path(key)?;
        let side = self.sidecar_path(key);
        blocking(move || {
            for path in [&target, &side] {
                match fs::remove_file(path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(unavailable("cannot delete", path, e)),
                }
            }
            Ok(())
        })
        .await
    }

    async fn delete_many(
        &self,
        keys: &[String],
    ) -> Result<Vec<(String, Result<(), StoreError>)>, StoreError> {
        Ok(super::delete_each(self, keys, 1).await)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ListedObject>, StoreError> {
        let this = self.clone();
        let prefix = prefix.to_string();
        blocking(move || this.list_blocking(&prefix)).await
    }

    async fn versioning(&self) -> Result<Versioning, StoreError> {
        Ok(Versioning::Unversioned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_too_long_is_a_problem_of_the_key_not_an_outage() {
        let e = io::Error::from_raw_os_error(libc::ENAMETOOLONG);
        assert!(!unavailable("cannot stat", Path::new("/x"), e).is_transient());
        let e = io::Error::from_raw_os_error(libc::EIO);
        assert!(unavailable("cannot stat", Path::new("/x"), e).is_transient());
    }

    /// Every temp name left under `dir`.
    fn temp_files(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.extend(temp_files(&path));
            } else if path.to_string_lossy().contains(".tmp-") {
                out.push(path);
            }
        }
        out
    }

    /// Folders are made when a put finds them missing, whenever that is:
    /// the first put, and one after the store's folders were removed.
    #[test]
    fn a_put_makes_the_folders_it_finds_missing() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("store");
        let store = LocalStore::new(root.clone());
        let put = |key: &str| {
            let bytes = key.as_bytes().to_vec();
            let sha = digest::sha256(&bytes);
            let source = Source::Bytes(bytes);
            store.put_blocking(key, &source, sha, BTreeMap::new(), "audio/flac".into())
        };
        assert!(matches!(
            put("h/2026/a.flac"),
            Ok(PutOutcome::Created { .. })
        ));
        fs::remove_dir_all(&root).unwrap();
        assert!(matches!(
            put("h/2026/b.flac"),
            Ok(PutOutcome::Created { .. })
        ));
        assert!(matches!(
            put("h/2026/c.flac"),
            Ok(PutOutcome::Created { .. })
        ));
        for name in ["b", "c"] {
            let key = format!("h/2026/{name}.flac");
            assert_eq!(fs::read(root.join(&key)).unwrap(), key.as_bytes());
            assert!(
                store
                    .head_blocking(&key)
                    .unwrap()
                    .unwrap()
                    .checksum
                    .is_some()
            );
        }
    }

    /// A put leaves the object, a sidecar that reports it, and no temp
    /// file; a second put of the key finds it and writes nothing.
    #[test]
    fn a_put_leaves_its_object_and_sidecar_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path().join("store"));
        let bytes = b"fLaC and more".to_vec();
        let sha = digest::sha256(&bytes);
        let meta = BTreeMap::from([("sha256".to_string(), hex::encode(sha))]);
        let source = Source::Bytes(bytes.clone());
        let put = store.put_blocking("h/a.flac", &source, sha, meta.clone(), "audio/flac".into());
        let checksum = single_part_checksum(&sha);
        assert!(
            matches!(&put, Ok(PutOutcome::Created { checksum: c }) if *c == checksum),
            "{put:?}"
        );
        assert_eq!(fs::read(dir.path().join("store/h/a.flac")).unwrap(), bytes);
        let info = store.head_blocking("h/a.flac").unwrap().unwrap();
        assert_eq!(
            (info.size, info.checksum, info.metadata),
            (13, Some(checksum), meta)
        );
        assert_eq!(temp_files(dir.path()), Vec::<PathBuf>::new());
        let other = Source::Bytes(b"other".to_vec());
        let again = store.put_blocking(
            "h/a.flac",
            &other,
            digest::sha256(b"other"),
            BTreeMap::new(),
            "audio/flac".into(),
        );
        assert!(
            matches!(again, Ok(PutOutcome::Exists(ref i)) if i.size == 13),
            "{again:?}"
        );
        assert_eq!(fs::read(dir.path().join("store/h/a.flac")).unwrap(), bytes);
    }

    /// A sidecar left by a put that never linked its object (a crash
    /// between the two) is replaced by the next put of that key.
    #[test]
    fn a_put_replaces_the_sidecar_an_unfinished_put_left() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path().join("store"));
        let side = store.sidecar_path("h/a.flac");
        fs::create_dir_all(side.parent().unwrap()).unwrap();
        fs::write(&side, "size = 5\nchecksum = \"stale\"\n[metadata]\n").unwrap();
        let bytes = b"fLaC again".to_vec();
        let sha = digest::sha256(&bytes);
        let source = Source::Bytes(bytes.clone());
        let put = store.put_blocking(
            "h/a.flac",
            &source,
            sha,
            BTreeMap::new(),
            "audio/flac".into(),
        );
        assert!(matches!(put, Ok(PutOutcome::Created { .. })), "{put:?}");
        let info = store.head_blocking("h/a.flac").unwrap().unwrap();
        assert_eq!(
            (info.size, info.checksum),
            (10, Some(single_part_checksum(&sha)))
        );
        assert_eq!(temp_files(dir.path()), Vec::<PathBuf>::new());
    }
}
