//! `recvault ledger rebuild --from-store`: a new ledger from the objects
//! themselves, for when the ledger and its backups are lost. Every object
//! carries its recording's facts as metadata (`store::meta`), so the rows of
//! archived recordings can be rebuilt: name, size, mtime, both SHA-256s,
//! codec, the id it had, and what was known of its call (campaign, agent,
//! lead, phone, call time; VICIdial's recording id), so retention keeps
//! applying the campaign's rule even where only VICIdial's database knew it.
//!
//! Legal holds come back from their newest copy in the store
//! (`recovery::hold_copy`). Not rebuilt: recordings never uploaded (their
//! files are still in the spool; the daemon takes them in again) and events
//! and audit entries before the rebuild.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::error::Error;
use crate::ledger::lock::InstanceLock;
use crate::ledger::{ArchivedObject, Ledger};
use crate::recording::key::decode_name;
use crate::recording::name::Attribution;
use crate::recording::{FileIdentity, State};
use crate::store::{ObjectInfo, Store, meta};

/// What a rebuild found.
#[derive(Debug, Clone, Default)]
pub struct RebuildReport {
    /// Objects listed under the prefix (reserved `.recvault/` keys excluded).
    pub objects: usize,
    /// Rows written.
    pub rebuilt: usize,
    /// Of those, recordings whose local copy is still in the spool (`verified`).
    pub still_local: usize,
    /// Objects left out, with the reason.
    pub skipped: Vec<(String, String)>,
    /// Where the previous ledger was moved, if there was one.
    pub moved_aside: Option<PathBuf>,
    /// Legal holds restored from the newest hold copy in the store.
    pub holds: usize,
}

/// The recording an object describes, or why it describes none of ours.
fn from_metadata(key: &str, info: &ObjectInfo, host: &str) -> Result<ArchivedObject, String> {
    let m = &info.metadata;
    let get = |k: &str| m.get(k).ok_or_else(|| format!("no `{k}` metadata"));
    if get(meta::HOST)? != host {
        return Err(format!("archived by host `{}`", m[meta::HOST]));
    }
    let name = decode_name(get(meta::ORIGINAL_NAME)?).ok_or("undecodable original-name")?;
    let size = get(meta::ORIGINAL_SIZE)?
        .parse()
        .map_err(|_| "bad original-size")?;
    let mtime_ns = get(meta::ORIGINAL_MTIME_NS)?
        .parse()
        .map_err(|_| "bad original-mtime-ns")?;
    let sha256 = get(meta::ORIGINAL_SHA256)?.clone();
    let object_sha256 = get(meta::SHA256)?.clone();
    if sha256.len() != 64 || object_sha256.len() != 64 {
        return Err("SHA-256 metadata is not 64 hex digits".to_string());
    }
    Ok(ArchivedObject {
        id: m.get(meta::RECORDING_ID).and_then(|v| v.parse().ok()),
        path: PathBuf::new(),
        name,
        identity: FileIdentity {
            dev: 0,
            ino: 0,
            size,
            mtime_ns,
        },
        state: State::LocalDeleted,
        sha256,
        object_key: key.to_string(),
        object_size: info.size,
        object_sha256,
        store_checksum: info.checksum.clone(),
        codec: m.get(meta::CODEC).cloned().unwrap_or_else(|| "zstd".into()),
        call: call_of(m),
        vicidial: number(m, meta::VICIDIAL_RECORDING_ID)
            .map(|id| (id, number(m, meta::CALL_LENGTH))),
    })
}

fn number(m: &BTreeMap<String, String>, key: &str) -> Option<i64> {
    m.get(key).and_then(|v| v.parse().ok())
}

/// The call as the object's metadata describes it (the ledger's attribution
/// when it was archived: from the name or from VICIdial's database); `None`
/// if it says nothing, so the name is asked again.
fn call_of(m: &BTreeMap<String, String>) -> Option<Attribution> {
    let text = |key: &str| {
        m.get(key)
            .and_then(|v| decode_name(v))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    };
    let call = Attribution {
        matched: true,
        campaign: text(meta::CAMPAIGN),
        call_time: number(m, meta::CALL_TIME),
        phone: text(meta::PHONE),
        agent: text(meta::AGENT),
        lead_id: text(meta::LEAD_ID),
        name_time: None,
    };
    let said = call.campaign.is_some()
        || call.call_time.is_some()
        || call.phone.is_some()
        || call.agent.is_some()
        || call.lead_id.is_some();
    said.then_some(call)
}

/// Looks for the recording's local copy (same name, size and mtime) in the
/// spool; found, the row is `verified` so the daemon deletes it as usual.
fn locate(dirs: &[PathBuf], object: &mut ArchivedObject) {
    let name = std::ffi::OsStr::from_bytes(&object.name);
    for dir in dirs {
        let path = dir.join(name);
        if let Ok(m) = fs::symlink_metadata(&path) {
            let identity = FileIdentity::of(&m);
            if m.is_file()
                && identity.size == object.identity.size
                && identity.mtime_ns == object.identity.mtime_ns
            {
                object.path = path;
                object.identity = identity;
                object.state = State::Verified;
                return;
            }
        }
    }
    // Gone: where it most likely was (only for people; never opened).
    object.path = dirs
        .first()
        .map(|d| d.join(name))
        .unwrap_or_else(|| PathBuf::from(name));
}

/// Rebuilds the configured ledger from `store`. Refuses while a daemon holds
/// the ledger's lock; an existing ledger is moved aside only with `force`.
pub async fn rebuild(
    config: &Config,
    store: &dyn Store,
    prefix: &str,
    force: bool,
) -> Result<RebuildReport, Error> {
    let path = &config.ledger.path;
    let _lock = InstanceLock::acquire(path)?;
    if path.exists() && !force {
        return Err(Error::Exists {
            path: path.clone(),
            hint: "exists; pass --force to move it aside and rebuild",
        });
    }
    let tmp = PathBuf::from(format!("{}.rebuild-tmp", path.display()));
    for ext in ["", "-wal", "-shm"] {
        let _ = fs::remove_file(format!("{}{ext}", tmp.display()));
    }
    let mut report = RebuildReport::default();
    let ledger = Ledger::open(&tmp)?;
    let rows = archived_objects(store, prefix, &config.daemon.host, &mut report).await?;
    for mut object in rows {
        locate(&config.spool.dirs, &mut object);
        if object.state == State::Verified {
            report.still_local += 1;
        }
        ledger.insert_archived(&object)?;
        report.rebuilt += 1;
    }
    // Legal holds come back too: their copy is kept beside the ledger backups.
    let scratch = path.parent().unwrap_or(Path::new("/tmp"));
    report.holds =
        crate::recovery::hold_copy::recover(&ledger, store, prefix, &config.daemon.host, scratch)
            .await
            .map_err(|e| Error::HoldsNotRecovered(Box::new(e)))?;
    drop(ledger);
    report.moved_aside = replace_ledger(path, &tmp)?;
    Ok(report)
}

/// The recordings the objects under `prefix` describe, in id order (objects
/// without an id last); what is not ours goes to `report.skipped`.
async fn archived_objects(
    store: &dyn Store,
    prefix: &str,
    host: &str,
    report: &mut RebuildReport,
) -> Result<Vec<ArchivedObject>, Error> {
    let reserved = format!("{prefix}.recvault");
    let mut objects = store.list(prefix).await?;
    // Oldest ids first, so kept ids never collide with fresh ones.
    objects.sort_by(|a, b| a.key.cmp(&b.key));
    let mut rows = Vec::new();
    for listed in objects {
        if listed.key.starts_with(&reserved) {
            continue;
        }
        report.objects += 1;
        let Some(info) = store.head(&listed.key).await? else {
            report
                .skipped
                .push((listed.key, "vanished while listing".into()));
            continue;
        };
        match from_metadata(&listed.key, &info, host) {
            Ok(object) => rows.push(object),
            Err(why) => report.skipped.push((listed.key, why)),
        }
    }
    rows.sort_by_key(|o| (o.id.is_none(), o.id));
    Ok(rows)
}

/// Puts the rebuilt ledger `tmp` at `path`, moving an existing ledger aside
/// (returned) first.
fn replace_ledger(path: &Path, tmp: &Path) -> Result<Option<PathBuf>, Error> {
    let mut moved_aside = None;
    if path.exists() {
        let aside = PathBuf::from(format!(
            "{}.before-rebuild-{}",
            path.display(),
            chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
        ));
        fs::rename(path, &aside).map_err(Error::io(path))?;
        for ext in ["-wal", "-shm"] {
            let _ = fs::rename(
                format!("{}{ext}", path.display()),
                format!("{}{ext}", aside.display()),
            );
        }
        moved_aside = Some(aside);
    }
    // A WAL left beside a ledger file that is gone belongs to the lost
    // ledger: replayed into the rebuilt one it would bring old rows back.
    for ext in ["-wal", "-shm"] {
        let _ = fs::remove_file(format!("{}{ext}", path.display()));
    }
    fs::rename(tmp, path).map_err(Error::io(path))?;
    for ext in ["-wal", "-shm"] {
        let _ = fs::remove_file(format!("{}{ext}", tmp.display()));
    }
    Ok(moved_aside)
}
