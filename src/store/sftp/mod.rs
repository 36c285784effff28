//! A store on an SFTP server (a legacy archive box): objects are files under
//! `store.path`, their metadata in sidecar files (`sidecar`), as in the local
//! directory store.
//!
//! A put writes the object and its sidecar under temp names, then hard-links
//! them into place (`hardlink@openssh.com`; a plain SFTP rename, which the
//! protocol says must not replace, where the server lacks it) — an existing
//! object is never overwritten; `posix-rename@openssh.com` would replace, so
//! it is never used. The sidecar is linked first: a crash leaves at worst a
//! sidecar without an object, which the next put replaces.
//!
//! A file server proves nothing about the bytes it holds, so `head` reports
//! no checksum and the verify step reads every object back and hashes it
//! before a local copy may go (`pipeline::upload`'s `Proof::MetadataOnly`).

mod session;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use russh_sftp::client::SftpSession;
use russh_sftp::protocol::OpenFlags;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use self::session::{Connection, broken, classify, not_found};
use super::sidecar::{META_DIR, Sidecar, check_key, is_temp_name, sidecar_key, temp_name};
use super::throttle::RateLimiter;
use super::{
    Body, ListedObject, ObjectInfo, ObjectReader, PutOutcome, PutRequest, Store, StoreError,
    Versioning, single_part_checksum,
};
use crate::config::SftpConfig;
use crate::digest::CHUNK;

/// A directory on an SFTP server, reached over one shared SSH connection
/// that is made on first use and again after it broke.
pub struct SftpStore {
    config: SftpConfig,
    connection: tokio::sync::Mutex<Option<Arc<Connection>>>,
    limiter: Option<Arc<RateLimiter>>,
}

impl SftpStore {
    pub fn new(config: &SftpConfig, max_upload_rate: Option<u64>) -> SftpStore {
        SftpStore {
            config: config.clone(),
            connection: tokio::sync::Mutex::new(None),
            limiter: max_upload_rate.map(|r| Arc::new(RateLimiter::new(r))),
        }
    }

    async fn connection(&self) -> Result<Arc<Connection>, StoreError> {
        let mut slot = self.connection.lock().await;
        if let Some(c) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        // Login and the subsystem get a bound too: a server that stalls
        // after the handshake must not hang every worker.
        let limit = self.config.connect_timeout + self.config.read_timeout;
        let c = tokio::time::timeout(limit, session::connect(&self.config))
            .await
            .map_err(|_| {
                StoreError::Transient(format!(
                    "{}: no SFTP session within {limit:?}",
                    self.describe()
                ))
            })??;
        let c = Arc::new(c);
        *slot = Some(c.clone());
        Ok(c)
    }

    /// Runs `f` on the connection; a broken connection is dropped so the next
    /// call makes a new one.
    async fn with<T>(
        &self,
        f: impl AsyncFnOnce(&SftpSession) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let c = self.connection().await?;
        let result = f(&c.sftp).await;
        if matches!(result, Err(StoreError::Transient(_))) {
            let mut slot = self.connection.lock().await;
            if slot.as_ref().is_some_and(|s| Arc::ptr_eq(s, &c)) {
                *slot = None;
                drop(slot);
                c.close().await;
            }
        }
        result
    }

    fn path(&self, relative: &str) -> String {
        match self.config.path.as_str() {
            "/" => format!("/{relative}"),
            root => format!("{root}/{relative}"),
        }
    }

    async fn put_on(
        &self,
        sftp: &SftpSession,
        req: &PutRequest<'_>,
    ) -> Result<PutOutcome, StoreError> {
        if let Some(info) = head_on(self, sftp, req.key).await? {
            return Ok(PutOutcome::Exists(info));
        }
        let target = self.path(req.key);
        let side = self.path(&sidecar_key(req.key));
        make_parents(sftp, &self.config.path, req.key).await?;
        make_parents(sftp, &self.config.path, &sidecar_key(req.key)).await?;
        let tmp = sibling_temp(&target);
        let side_tmp = sibling_temp(&side);
        let result = async {
            let sha = self.send(sftp, req.source, req.size, &tmp).await?;
            if sha != req.sha256 {
                // Like S3's BadDigest: the bytes are not the bytes the caller hashed.
                return Err(StoreError::Permanent(format!(
                    "checksum mismatch for `{}`: sent {}, staged bytes hash to {}",
                    req.key,
                    hex::encode(req.sha256),
                    hex::encode(sha)
                )));
            }
            let sidecar = Sidecar {
                size: req.size,
                checksum: single_part_checksum(&sha),
                metadata: req.metadata.clone(),
                content_type: Some(req.content_type.to_string()),
            };
            write_file(sftp, &side_tmp, sidecar.to_text()?.as_bytes()).await?;
            if !link_sidecar(sftp, &side_tmp, &side, &target, req.key).await? {
                return Ok(None);
            }
            if !link(sftp, &tmp, &target).await? {
                remove(sftp, &side).await?;
                return Ok(None);
            }
            Ok(Some(PutOutcome::Created {
                checksum: single_part_checksum(&sha),
            }))
        }
        .await;
        let _ = sftp.remove_file(tmp.as_str()).await;
        let _ = sftp.remove_file(side_tmp.as_str()).await;
        match result? {
            Some(created) => Ok(created),
            None => self.put_by_another(sftp, req.key).await,
        }
    }

    /// The object another writer put while ours was under way.
    async fn put_by_another(
        &self,
        sftp: &SftpSession,
        key: &str,
    ) -> Result<PutOutcome, StoreError> {
        match head_on(self, sftp, key).await? {
            Some(info) => Ok(PutOutcome::Exists(info)),
            None => Err(StoreError::Transient(format!(
                "`{key}` appeared and vanished during put"
            ))),
        }
    }

    /// Copies `source` into a new remote file `remote`, synced; returns the
    /// SHA-256 of the bytes sent.
    async fn send(
        &self,
        sftp: &SftpSession,
        source: Body<'_>,
        size: u64,
        remote: &str,
    ) -> Result<[u8; 32], StoreError> {
        let local = |e: std::io::Error| StoreError::Local(format!("cannot read {source}: {e}"));
        let mut input = source.async_reader().await.map_err(local)?;
        let mut out = sftp
            .open_with_flags(
                remote,
                OpenFlags::CREATE | OpenFlags::EXCLUDE | OpenFlags::WRITE,
            )
            .await
            .map_err(|e| classify("create", remote, &e))?;
        let io = |e: std::io::Error| StoreError::Transient(format!("write `{remote}`: {e}"));
        let mut sha = Sha256::new();
        let mut buf = vec![0u8; CHUNK];
        let mut sent = 0u64;
        loop {
            let n = input.read(&mut buf).await.map_err(local)?;
            if n == 0 {
                break;
            }
            if let Some(limiter) = &self.limiter {
                tokio::time::sleep(limiter.reserve(n as u64)).await;
            }
            sha.update(&buf[..n]);
            out.write_all(&buf[..n]).await.map_err(io)?;
            sent += n as u64;
        }
        out.flush().await.map_err(io)?;
        out.sync_all()
            .await
            .map_err(|e| classify("fsync", remote, &e))?;
        out.shutdown().await.map_err(io)?;
        if sent != size {
            return Err(StoreError::Local(format!(
                "{source} has {sent} bytes, {size} expected"
            )));
        }
        Ok(sha.finalize().into())
    }
}

fn sibling_temp(path: &str) -> String {
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
    format!("{dir}/{}", temp_name(name))
}

async fn write_file(sftp: &SftpSession, path: &str, bytes: &[u8]) -> Result<(), StoreError> {
    let mut f = sftp
        .open_with_flags(
            path,
            OpenFlags::CREATE | OpenFlags::EXCLUDE | OpenFlags::WRITE,
        )
        .await
        .map_err(|e| classify("create", path, &e))?;
    let io = |e: std::io::Error| StoreError::Transient(format!("write `{path}`: {e}"));
    f.write_all(bytes).await.map_err(io)?;
    f.sync_all()
        .await
        .map_err(|e| classify("fsync", path, &e))?;
    f.shutdown().await.map_err(io)
}

/// Links `from` to `to` unless `to` exists: Ok(false) if it does.
async fn link(sftp: &SftpSession, from: &str, to: &str) -> Result<bool, StoreError> {
    let linked = match sftp.hardlink(from, to).await {
        Ok(true) => Ok(()),
        // No hardlink extension: SFTP's own rename fails if `to` exists.
        Ok(false) => sftp.rename(from, to).await,
        Err(e) => Err(e),
    };
    match linked {
        Ok(()) => Ok(true),
        Err(e) if broken(&e) => Err(classify("link", to, &e)),
        // The server words "exists" as a generic failure: look.
        Err(e) => match sftp.symlink_metadata(to).await {
            Ok(_) => Ok(false),
            Err(_) => Err(classify("link", to, &e)),
        },
    }
}

/// Links the sidecar `side_tmp` to `side`, replacing a sidecar a crashed put
/// left: Ok(false) if the object `target` is there (another put won).
async fn link_sidecar(
    sftp: &SftpSession,
    side_tmp: &str,
    side: &str,
    target: &str,
    key: &str,
) -> Result<bool, StoreError> {
    if link(sftp, side_tmp, side).await? {
        return Ok(true);
    }
    // A sidecar without its object is left from a crashed put: ours replaces it.
    if sftp.symlink_metadata(target).await.is_ok() {
        return Ok(false);
    }
    remove(sftp, side).await?;
    if !link(sftp, side_tmp, side).await? {
        return Err(StoreError::Transient(format!(
            "put `{key}`: another writer is at it"
        )));
    }
    Ok(true)
}

async fn remove(sftp: &SftpSession, path: &str) -> Result<(), StoreError> {
    match sftp.remove_file(path).await {
        Ok(()) => Ok(()),
        Err(e) if not_found(&e) => Ok(()),
        Err(e) => Err(classify("delete", path, &e)),
    }
}

/// Makes the folders between `root` and `relative`'s file, as `mkdir -p`.
async fn make_parents(sftp: &SftpSession, root: &str, relative: &str) -> Result<(), StoreError> {
    let Some((dirs, _)) = relative.rsplit_once('/') else {
        return Ok(());
    };
    let full = format!("{}/{dirs}", root.trim_end_matches('/'));
    if sftp.metadata(full.as_str()).await.is_ok_and(|m| m.is_dir()) {
        return Ok(());
    }
    let mut path = root.trim_end_matches('/').to_string();
    for part in dirs.split('/') {
        path = format!("{path}/{part}");
        if let Err(e) = sftp.create_dir(path.as_str()).await {
            match sftp.metadata(path.as_str()).await {
                Ok(m) if m.is_dir() => {}
                _ => return Err(classify("mkdir", &path, &e)),
            }
        }
    }
    Ok(())
}

async fn head_on(
    store: &SftpStore,
    sftp: &SftpSession,
    key: &str,
) -> Result<Option<ObjectInfo>, StoreError> {
    check_key(key)?;
    let path = store.path(key);
    let m = match sftp.symlink_metadata(path.as_str()).await {
        Ok(m) if m.is_regular() => m,
        Ok(_) => {
            return Err(StoreError::Permanent(format!(
                "`{key}` is not a regular file"
            )));
        }
        Err(e) if not_found(&e) => return Ok(None),
        Err(e) => return Err(classify("stat", &path, &e)),
    };
    let size = m.len();
    let side = store.path(&sidecar_key(key));
    let sidecar = match sftp.read(side.as_str()).await {
        Ok(text) => Sidecar::parse(&text),
        Err(e) if not_found(&e) => None,
        Err(e) => return Err(classify("read", &side, &e)),
    };
    // A file server proves nothing: no checksum, whatever the sidecar says.
    Ok(Some(ObjectInfo {
        size,
        checksum: None,
        metadata: sidecar
            .filter(|s| s.size == size)
            .map(|s| s.metadata)
            .unwrap_or_default(),
    }))
}

/// Every file under `dir` (relative to the root), skipping sidecars and temp files.
async fn walk(
    store: &SftpStore,
    sftp: &SftpSession,
    dir: &str,
    out: &mut Vec<ListedObject>,
) -> Result<(), StoreError> {
    let mut stack = vec![dir.to_string()];
    while let Some(dir) = stack.pop() {
        let full = if dir.is_empty() {
            store.config.path.clone()
        } else {
            store.path(dir.trim_end_matches('/'))
        };
        let entries = match sftp.read_dir(full.as_str()).await {
            Ok(e) => e,
            Err(e) if not_found(&e) => continue,
            Err(e) => return Err(classify("list", &full, &e)),
        };
        for entry in entries {
            let name = entry.file_name();
            let key = format!("{dir}{name}");
            if name == "." || name == ".." || key == META_DIR || is_temp_name(&name) {
                continue;
            }
            let kind = entry.file_type();
            if kind.is_dir() {
                stack.push(format!("{key}/"));
            } else if kind.is_file() {
                out.push(ListedObject {
                    key,
                    size: entry.metadata().len(),
                });
            }
        }
    }
    Ok(())
}

#[async_trait]
impl Store for SftpStore {
    fn describe(&self) -> String {
        format!(
            "sftp://{}@{}:{}{}",
            self.config.user, self.config.host, self.config.port, self.config.path
        )
    }

    async fn put(&self, req: &PutRequest<'_>) -> Result<PutOutcome, StoreError> {
        check_key(req.key)?;
        self.with(async |sftp| self.put_on(sftp, req).await).await
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        self.with(async |sftp| head_on(self, sftp, key).await).await
    }

    async fn get(&self, key: &str, dest: &Path) -> Result<u64, StoreError> {
        check_key(key)?;
        let path = self.path(key);
        self.with(async |sftp| {
            let mut remote = match sftp.open(path.as_str()).await {
                Ok(f) => f,
                Err(e) if not_found(&e) => {
                    return Err(StoreError::Permanent(format!("no object `{key}`")));
                }
                Err(e) => return Err(classify("open", &path, &e)),
            };
            let local = |e: std::io::Error| {
                StoreError::Local(format!("cannot write {}: {e}", dest.display()))
            };
            let mut file = tokio::fs::File::create(dest).await.map_err(local)?;
            let mut buf = vec![0u8; CHUNK];
            let mut n = 0u64;
            loop {
                let got = remote
                    .read(&mut buf)
                    .await
                    .map_err(|e| StoreError::Transient(format!("read `{path}`: {e}")))?;
                if got == 0 {
                    break;
                }
                file.write_all(&buf[..got]).await.map_err(local)?;
                n += got as u64;
            }
            file.sync_all().await.map_err(local)?;
            Ok(n)
        })
        .await
    }

    async fn open(&self, key: &str) -> Result<Option<ObjectReader>, StoreError> {
        check_key(key)?;
        let path = self.path(key);
        self.with(async |sftp| match sftp.open(path.as_str()).await {
            // The file holds its own handle on the session: it reads on
            // after this call, as the bytes are wanted.
            Ok(f) => Ok(Some(Box::new(f) as ObjectReader)),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(classify("open", &path, &e)),
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        check_key(key)?;
        let (target, side) = (self.path(key), self.path(&sidecar_key(key)));
        self.with(async |sftp| {
            remove(sftp, &target).await?;
            remove(sftp, &side).await
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ListedObject>, StoreError> {
        let dir = prefix.rfind('/').map(|i| &prefix[..=i]).unwrap_or("");
        let mut out = Vec::new();
        self.with(async |sftp| walk(self, sftp, dir, &mut out).await)
            .await?;
        out.retain(|o| o.key.starts_with(prefix));
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    // A file server keeps no versions: a removed file is gone.
    async fn versioning(&self) -> Result<Versioning, StoreError> {
        Ok(Versioning::Unversioned)
    }
}
