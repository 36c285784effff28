//! The probe `recvault check` runs against a store: put a small object under
//! `{prefix}.recvault-probe/`, head it (the store's checksum, or our metadata),
//! get it back, delete it — the store works end to end, or the step that
//! failed says why.

use std::collections::BTreeMap;
use std::path::Path;

use super::{PutOutcome, PutRequest, Store, meta, single_part_checksum};
use crate::digest;

/// The probe's steps, in order.
pub const STEPS: [&str; 4] = ["put", "head", "get", "delete"];

/// A probe that went through.
#[derive(Debug, Clone)]
pub struct Probe {
    /// The probe object's key (deleted again).
    pub key: String,
    /// What the store proved on head.
    pub checksum: &'static str,
}

/// The step that failed and why; the steps before it went through.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{step}: {message}")]
pub struct ProbeError {
    pub key: String,
    pub step: &'static str,
    pub message: String,
}

/// Probes `store` with an object under `prefix`, named for `host`.
/// `scratch` is a directory for the probe file.
pub async fn probe(
    store: &dyn Store,
    prefix: &str,
    host: &str,
    scratch: &Path,
) -> Result<Probe, ProbeError> {
    let key = format!("{prefix}.recvault-probe/{host}-{}", fastrand::u64(..));
    let fail = |step: &'static str, message: &dyn ToString| ProbeError {
        key: key.clone(),
        step,
        message: message.to_string(),
    };
    let body = format!(
        "recvault probe from {host} at {}\n",
        crate::units::now_secs()
    );
    let source = scratch.join(format!(".recvault-probe-{}", fastrand::u64(..)));
    std::fs::write(&source, &body).map_err(|e| fail("put", &e))?;
    let result = steps(store, &key, &source, body.as_bytes()).await;
    let _ = std::fs::remove_file(&source);
    match result {
        Ok(checksum) => Ok(Probe { key, checksum }),
        Err((step, message)) => {
            let _ = store.delete_all_versions(std::slice::from_ref(&key)).await;
            Err(fail(step, &message))
        }
    }
}

async fn steps(
    store: &dyn Store,
    key: &str,
    source: &Path,
    body: &[u8],
) -> Result<&'static str, Failed> {
    let sha = digest::sha256(body);
    let metadata: BTreeMap<String, String> = [(meta::SHA256.to_string(), hex::encode(sha))].into();
    let request = PutRequest {
        key,
        source: super::Body::File(source),
        size: body.len() as u64,
        sha256: sha,
        metadata: &metadata,
        content_type: "application/octet-stream",
    };
    match store.put(&request).await {
        Ok(PutOutcome::Created { .. }) => {}
        Ok(PutOutcome::Exists(_)) => {
            return Err(("put", format!("probe key `{key}` already existed")));
        }
        Err(e) => return Err(("put", e.to_string())),
    }
    let checksum = head_step(store, key, &sha, body.len() as u64).await?;
    get_step(store, key, source, body).await?;
    delete_step(store, key).await?;
    Ok(checksum)
}

/// A failed step and why.
type Failed = (&'static str, String);

/// The object is there with our size, and the store's checksum (or our
/// metadata) proves its bytes: what the store proves, for the operator.
async fn head_step(
    store: &dyn Store,
    key: &str,
    sha: &[u8; 32],
    size: u64,
) -> Result<&'static str, Failed> {
    let info = match store.head(key).await {
        Ok(Some(info)) => info,
        Ok(None) => return Err(("head", "probe object not found after put".into())),
        Err(e) => return Err(("head", e.to_string())),
    };
    let want = single_part_checksum(sha);
    let checksum = match &info.checksum {
        Some(c) if *c == want => {
            "the store proves the bytes it holds (its checksum matches ours): checked before a local copy may go"
        }
        Some(c) => {
            return Err((
                "head",
                format!("store reports checksum {c}, expected {want}"),
            ));
        }
        None if info.metadata.get(meta::SHA256) == Some(&hex::encode(sha)) => {
            "the store reports no checksum of its own: every object is downloaded and hashed again before its local copy may go"
        }
        None => return Err(("head", "store reports neither checksum nor metadata".into())),
    };
    if info.size != size {
        let problem = format!("size {} reported, {} sent", info.size, size);
        return Err(("head", problem));
    }
    Ok(checksum)
}

/// The object downloads as the bytes sent.
async fn get_step(store: &dyn Store, key: &str, source: &Path, body: &[u8]) -> Result<(), Failed> {
    let back = source.with_extension("back");
    let got = match store.get(key, &back).await {
        Ok(_) => std::fs::read(&back).map_err(|e| ("get", e.to_string())),
        Err(e) => Err(("get", e.to_string())),
    };
    let _ = std::fs::remove_file(&back);
    if got? != body {
        return Err(("get", "downloaded bytes differ from the probe".into()));
    }
    Ok(())
}

/// Every version of the object deletes, and it is gone after.
async fn delete_step(store: &dyn Store, key: &str) -> Result<(), Failed> {
    // Every version (what retention and erase need on a versioned bucket,
    // and no probe left behind there).
    let purged = store
        .delete_all_versions(&[key.to_string()])
        .await
        .map_err(|e| ("delete", e.to_string()))?;
    for (_, result) in purged {
        let purged = result.map_err(|e| ("delete", e.to_string()))?;
        if let Some(locked) = purged.locked.first() {
            return Err(("delete", locked.to_string()));
        }
    }
    match store.head(key).await {
        Ok(None) => Ok(()),
        Ok(Some(_)) => Err(("delete", "probe still present after delete".into())),
        Err(e) => Err(("delete", e.to_string())),
    }
}
