//! `recvault restore`: fetch an object, decode it, prove it is the original
//! (SHA-256 from the ledger) and only then put it at the requested path.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use crate::archive::codec_of;
use crate::audit::{self, Action, Actor, NewEntry};
use crate::codec;
use crate::keys::display_name;
use crate::ledger::{Ledger, LedgerError, now_secs};
use crate::recording::{Recording, State};
use crate::report::local_time;
use crate::store::{Store, StoreError};

/// Why a restore wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("no recording in the ledger has the name or object key `{0}`")]
    NotFound(String),
    #[error("`{wanted}` names {count} recordings; restore one by object key:\n{keys}")]
    Ambiguous {
        wanted: String,
        count: usize,
        keys: String,
    },
    #[error("recording `{0}` was never uploaded; its local copy is {1}")]
    NotArchived(String, String),
    #[error("recording `{0}` was deleted by retention {1}")]
    Deleted(String, String),
    #[error("{0} already exists; pass --force to replace it")]
    Exists(PathBuf),
    #[error(
        "restored data does not match the original: SHA-256 {got}, expected {want}; nothing written"
    )]
    Mismatch { got: String, want: String },
    #[error("{0}")]
    Io(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// Picks the one recording `wanted` (object key or file name) refers to.
pub fn find(ledger: &Ledger, wanted: &[u8]) -> Result<Recording, RestoreError> {
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
        (0, _) => Err(RestoreError::NotFound(shown)),
        (_, 1) => Ok(archived[0].clone()),
        (_, 0) => Ok(found[0].clone()),
        (_, n) => Err(RestoreError::Ambiguous {
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

/// Restores the recording `wanted` to `output`. Returns the bytes written.
pub async fn restore(
    ledger: &Ledger,
    store: &dyn Store,
    wanted: &[u8],
    output: &Path,
    force: bool,
) -> Result<u64, RestoreError> {
    let rec = find(ledger, wanted)?;
    let name = display_name(&rec.name);
    let key = match (&rec.object_key, rec.state) {
        (_, State::RemoteDeleted) => {
            let when = format!(
                "on {} ({})",
                rec.deleted_at.map(local_time).unwrap_or_default(),
                rec.deleted_by.as_deref().unwrap_or("-")
            );
            return Err(RestoreError::Deleted(name, when));
        }
        (Some(k), State::Uploaded | State::Verified | State::LocalDeleted) => k.clone(),
        (Some(k), State::Failed)
            if matches!(rec.resume_state, Some(State::Uploaded | State::Verified)) =>
        {
            k.clone()
        }
        _ => {
            return Err(RestoreError::NotArchived(
                name,
                rec.path.display().to_string(),
            ));
        }
    };
    let want = rec.sha256.clone().unwrap_or_default();
    if output.exists() && !force {
        return Err(RestoreError::Exists(output.to_path_buf()));
    }
    let dir = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let base = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tag = format!("{}.{}", std::process::id(), fastrand::u32(..));
    let object_tmp = dir.join(format!(".{base}.object-{tag}.tmp"));
    let output_tmp = dir.join(format!(".{base}.restore-{tag}.tmp"));
    let result = async {
        store.get(&key, &object_tmp).await?;
        let codec = codec_of(&rec);
        let (object_in, decoded_out) = (object_tmp.clone(), output_tmp.clone());
        let decoded = tokio::task::spawn_blocking(move || -> io::Result<([u8; 32], u64)> {
            let mut out = File::create(&decoded_out)?;
            let r = codec::decode(codec, &object_in, &mut out)?;
            out.sync_all()?;
            Ok(r)
        })
        .await
        .map_err(|e| RestoreError::Io(e.to_string()))?
        .map_err(|e| RestoreError::Io(format!("cannot decode `{key}`: {e}")))?;
        let got = hex::encode(decoded.0);
        if got != want || decoded.1 != rec.identity.size {
            return Err(RestoreError::Mismatch {
                got,
                want: want.clone(),
            });
        }
        fs::rename(&output_tmp, output)
            .map_err(|e| RestoreError::Io(format!("cannot write {}: {e}", output.display())))?;
        audit::record(
            ledger,
            &Actor::current(),
            now_secs(),
            &NewEntry {
                action: Action::Restore,
                case_id: None,
                subject: &crate::retention::subject(&rec),
                reason: &format!("restored to {} (SHA-256 verified)", output.display()),
            },
        )?;
        Ok(decoded.1)
    }
    .await;
    let _ = fs::remove_file(&object_tmp);
    let _ = fs::remove_file(&output_tmp);
    result
}
