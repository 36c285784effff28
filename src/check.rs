//! `recvault check`: the config is valid (loading it proved that) and the
//! store works end to end — put, head with checksum, get, delete a probe.

use std::collections::BTreeMap;
use std::io::Write;

use crate::config::Config;
use crate::digest;
use crate::store::{self, PutOutcome, PutRequest, single_part_checksum};

/// A failed check, with the step that failed.
#[derive(Debug, thiserror::Error)]
#[error("{step}: {message}")]
pub struct CheckError {
    pub step: &'static str,
    pub message: String,
}

fn fail(step: &'static str, message: impl ToString) -> CheckError {
    CheckError {
        step,
        message: message.to_string(),
    }
}

/// Runs the checks, reporting each on `out`. Warnings do not fail the check.
pub async fn check(config: &Config, offline: bool, out: &mut impl Write) -> Result<(), CheckError> {
    let _ = writeln!(out, "config {}: ok", config.source.display());
    for dir in &config.spool.dirs {
        match std::fs::read_dir(dir) {
            Ok(_) => {
                let _ = writeln!(out, "spool {}: readable", dir.display());
            }
            Err(e) => {
                let _ = writeln!(out, "warning: spool {}: {e}", dir.display());
            }
        }
    }
    let Some(store_config) = &config.store else {
        let _ = writeln!(
            out,
            "store: none configured; the daemon will archive nothing"
        );
        return Ok(());
    };
    if offline {
        let _ = writeln!(out, "store: not contacted (--offline)");
        return Ok(());
    }
    let store = store::open(store_config)
        .await
        .map_err(|e| fail("open store", e))?;
    let _ = writeln!(out, "store {}:", store.describe());
    let body = format!(
        "recvault probe from {} at {}\n",
        config.daemon.host,
        crate::ledger::now_secs()
    );
    let dir = tempfile_dir().map_err(|e| fail("probe file", e))?;
    let source = dir.join("probe");
    std::fs::write(&source, &body).map_err(|e| fail("probe file", e))?;
    let sha = digest::sha256(body.as_bytes());
    let key = format!(
        "{}.recvault-probe/{}-{}",
        store_config.prefix,
        config.daemon.host,
        fastrand::u64(..)
    );
    let metadata: BTreeMap<String, String> =
        [(store::meta::SHA256.to_string(), hex::encode(sha))].into();
    let result = probe(&*store, &key, &source, &body, sha, &metadata, out).await;
    let _ = std::fs::remove_dir_all(&dir);
    if result.is_err() {
        let _ = store.delete(&key).await;
    }
    result
}

async fn probe(
    store: &dyn store::Store,
    key: &str,
    source: &std::path::Path,
    body: &str,
    sha: [u8; 32],
    metadata: &BTreeMap<String, String>,
    out: &mut impl Write,
) -> Result<(), CheckError> {
    let put = store
        .put(&PutRequest {
            key,
            source,
            size: body.len() as u64,
            sha256: sha,
            metadata,
        })
        .await
        .map_err(|e| fail("put", e))?;
    if !matches!(put, PutOutcome::Created { .. }) {
        return Err(fail("put", format!("probe key `{key}` already existed")));
    }
    let _ = writeln!(out, "  put {key}: ok (sha256 sent)");
    let info = store
        .head(key)
        .await
        .map_err(|e| fail("head", e))?
        .ok_or_else(|| fail("head", "probe object not found after put"))?;
    let checksum = match &info.checksum {
        Some(c) if *c == single_part_checksum(&sha) => "checksum read back",
        Some(c) => {
            return Err(fail(
                "head",
                format!(
                    "store reports checksum {c}, expected {}",
                    single_part_checksum(&sha)
                ),
            ));
        }
        None if info.metadata.get(store::meta::SHA256) == Some(&hex::encode(sha)) => {
            "no checksum reported; metadata matches"
        }
        None => return Err(fail("head", "store reports neither checksum nor metadata")),
    };
    if info.size != body.len() as u64 {
        return Err(fail(
            "head",
            format!("size {} reported, {} sent", info.size, body.len()),
        ));
    }
    let _ = writeln!(out, "  head: ok ({checksum})");
    let back = source.with_extension("back");
    store.get(key, &back).await.map_err(|e| fail("get", e))?;
    let got = std::fs::read(&back).map_err(|e| fail("get", e))?;
    if got != body.as_bytes() {
        return Err(fail("get", "downloaded bytes differ from the probe"));
    }
    let _ = writeln!(out, "  get: ok");
    store.delete(key).await.map_err(|e| fail("delete", e))?;
    if store
        .head(key)
        .await
        .map_err(|e| fail("delete", e))?
        .is_some()
    {
        return Err(fail("delete", "probe still present after delete"));
    }
    let _ = writeln!(out, "  delete: ok");
    Ok(())
}

fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "recvault-check-{}-{}",
        std::process::id(),
        fastrand::u32(..)
    ));
    std::fs::create_dir(&dir)?;
    Ok(dir)
}
