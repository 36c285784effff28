//! The way out: a recording's original bytes back from its object — fetch,
//! decode, prove it is the original (SHA-256 from the ledger), and only then
//! put it where it was asked for (`recvault restore`), or into a zip with
//! every other recording a request covers (`export`). Uses ledger, store,
//! codec, and the request selection of `governance::requests`.

pub mod export;

use std::fs::{self, File};
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};

use crate::codec;
use crate::digest::CHUNK;
use crate::error::Error;
use crate::ledger::Ledger;
use crate::ledger::audit::{Action, Actor, NewEntry, subject};
use crate::recording::key::display_name;
use crate::recording::{Recording, State};
use crate::store::Store;
use crate::units::local_time;
use crate::units::now_secs;

/// Picks the one recording `wanted` (object key or file name) refers to.
pub fn find(ledger: &Ledger, wanted: &[u8]) -> Result<Recording, Error> {
    let shown = display_name(wanted);
    let found = ledger.find(wanted)?;
    if let Some(by_key) = found
        .iter()
        .find(|r| r.object_key.as_deref().map(str::as_bytes) == Some(wanted))
    {
        return Ok(by_key.clone());
    }
    let archived: Vec<_> = found.iter().filter(|r| r.object_key.is_some()).collect();
    match (found.len(), archived.len()) {
        (0, _) => Err(Error::NoSuchRecording(shown)),
        (_, 1) => Ok(archived[0].clone()),
        (_, 0) => Ok(found[0].clone()),
        (_, n) => Err(Error::Ambiguous {
            wanted: shown,
            count: n,
            keys: archived
                .iter()
                .map(|r| format!("  {}", r.object_key.as_deref().unwrap_or("")))
                .collect::<Vec<_>>()
                .join("\n"),
        }),
    }
}

/// The directory a file the user named goes in (`.` for a bare name), and
/// its file name: where temp files beside it go, and what they are called.
pub(crate) fn dir_and_base(output: &Path) -> (PathBuf, String) {
    let dir = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let base = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    (dir, base)
}

/// Gets a stored recording's original bytes: object `key` fetched into
/// `object_tmp`, decoded through `codec` into the new file `dest` (synced).
/// Returns the SHA-256 and size of what was written, for the caller to
/// compare with the ledger's before it counts.
pub(crate) async fn fetch_original(
    store: &dyn Store,
    rec: &Recording,
    key: &str,
    object_tmp: &Path,
    dest: &Path,
) -> Result<([u8; 32], u64), Error> {
    store.get(key, object_tmp).await?;
    let codec = codec::codec_of(rec);
    let (object_in, decoded_out) = (object_tmp.to_path_buf(), dest.to_path_buf());
    tokio::task::spawn_blocking(move || -> io::Result<([u8; 32], u64)> {
        let mut out = BufWriter::with_capacity(CHUNK, File::create(&decoded_out)?);
        let r = codec::decode(codec, File::open(&object_in)?, &mut out)?;
        out.into_inner()?.sync_all()?;
        Ok((r.sha256, r.size))
    })
    .await
    .map_err(|e| Error::Local(e.to_string()))?
    .map_err(|e| Error::Local(format!("cannot decode `{key}`: {e}")))
}

/// The key of `rec`'s object, or why there is nothing to restore: erased,
/// deleted (when, by what) or not archived.
fn stored_key(rec: &Recording) -> Result<String, Error> {
    let name = display_name(&rec.name);
    if let Some(e) = &rec.erasure {
        return Err(Error::Erased(name, e.request.clone()));
    }
    if rec.state == State::RemoteDeleted {
        let when = format!(
            "on {} ({})",
            rec.deleted_at.map(local_time).unwrap_or_default(),
            rec.deleted_by.as_deref().unwrap_or("-")
        );
        return Err(Error::Deleted(name, when));
    }
    match &rec.object_key {
        Some(k) if rec.is_stored() => Ok(k.clone()),
        _ => Err(Error::NotArchived(name, rec.path.display().to_string())),
    }
}

/// Restores the recording `wanted` to `output`. Returns the bytes written.
pub async fn restore(
    ledger: &Ledger,
    store: &dyn Store,
    wanted: &[u8],
    output: &Path,
    force: bool,
) -> Result<u64, Error> {
    let rec = find(ledger, wanted)?;
    let key = stored_key(&rec)?;
    let want = rec.sha256.clone().unwrap_or_default();
    if output.exists() && !force {
        return Err(Error::Exists {
            path: output.to_path_buf(),
            hint: "already exists; pass --force to replace it",
        });
    }
    let (dir, base) = dir_and_base(output);
    let tag = format!("{}.{}", std::process::id(), fastrand::u32(..));
    let object_tmp = dir.join(format!(".{base}.object-{tag}.tmp"));
    let output_tmp = dir.join(format!(".{base}.restore-{tag}.tmp"));
    let result = async {
        let decoded = fetch_original(store, &rec, &key, &object_tmp, &output_tmp).await?;
        let got = hex::encode(decoded.0);
        if got != want || decoded.1 != rec.identity.size {
            return Err(Error::RestoredMismatch {
                got,
                want: want.clone(),
            });
        }
        fs::rename(&output_tmp, output)
            .map_err(|e| Error::Local(format!("cannot write {}: {e}", output.display())))?;
        ledger.audit_record(
            &Actor::current(),
            now_secs(),
            &NewEntry {
                action: Action::Restore,
                case_id: None,
                subject: &subject(&rec),
                reason: &format!("restored to {} (SHA-256 verified)", output.display()),
                recording_id: Some(rec.id),
            },
        )?;
        Ok(decoded.1)
    }
    .await;
    let _ = fs::remove_file(&object_tmp);
    let _ = fs::remove_file(&output_tmp);
    result
}
