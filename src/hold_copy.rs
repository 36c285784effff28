//! Copies of the hold table in the store, so legal holds survive the loss of
//! the ledger's disk: `ledger rebuild --from-store` reads the newest copy back.
//! The ledger stays the record; a copy is written after every hold change and
//! with every scheduled ledger backup.

use std::path::Path;

use rusqlite::params;
use serde::{Deserialize, Serialize};

use crate::digest;
use crate::hold::{self, Selector};
use crate::ledger::{Ledger, LedgerError};
use crate::store::{PutOutcome, PutRequest, Store, StoreError};

/// Copies kept per host; older ones are deleted after a new one is stored.
const KEEP: usize = 5;

/// Why copying holds to or from the store failed.
#[derive(Debug, thiserror::Error)]
pub enum HoldCopyError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("hold copy {key}: {message}")]
    Invalid { key: String, message: String },
    #[error("hold copy: {0}")]
    Local(String),
}

/// The store prefix holding a host's hold copies.
pub fn prefix(store_prefix: &str, host: &str) -> String {
    format!("{store_prefix}.recvault/holds/{host}/")
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Copy {
    #[serde(default)]
    hold: Vec<HoldRow>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct HoldRow {
    id: i64,
    case_id: String,
    reason: String,
    created_by: String,
    created_at: i64,
    released_at: Option<i64>,
    released_by: Option<String>,
    release_reason: Option<String>,
    #[serde(default)]
    selector: Vec<SelectorRow>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct SelectorRow {
    kind: String,
    value: Option<String>,
    from: Option<i64>,
    to: Option<i64>,
}

fn snapshot(ledger: &Ledger) -> Result<String, HoldCopyError> {
    let holds = hold::list(ledger)?;
    let copy = Copy {
        hold: holds
            .into_iter()
            .map(|h| HoldRow {
                id: h.id,
                case_id: h.case_id,
                reason: h.reason,
                created_by: h.created_by,
                created_at: h.created_at,
                released_at: h.released_at,
                released_by: h.released_by,
                release_reason: h.release_reason,
                selector: h
                    .selectors
                    .iter()
                    .map(|s| {
                        let (kind, value, from, to) = s.columns();
                        SelectorRow {
                            kind: kind.to_string(),
                            value: value.map(str::to_string),
                            from,
                            to,
                        }
                    })
                    .collect(),
            })
            .collect(),
    };
    toml::to_string(&copy).map_err(|e| HoldCopyError::Local(e.to_string()))
}

/// Stores a copy of every hold (active and released) and prunes old copies.
/// Returns the key written.
pub async fn publish(
    ledger: &Ledger,
    store: &dyn Store,
    store_prefix: &str,
    host: &str,
    scratch: &Path,
) -> Result<String, HoldCopyError> {
    let text = snapshot(ledger)?;
    let dir = prefix(store_prefix, host);
    let now = chrono::Utc::now();
    let key = format!(
        "{dir}{}-{:09}.toml",
        now.format("%Y%m%dT%H%M%SZ"),
        now.timestamp_subsec_nanos()
    );
    let file = scratch.join(format!(
        ".holds-{}-{}.tmp",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::write(&file, &text)
        .map_err(|e| HoldCopyError::Local(format!("{}: {e}", file.display())))?;
    let sha = digest::sha256(text.as_bytes());
    let metadata = [(crate::store::meta::SHA256.to_string(), hex::encode(sha))].into();
    let put = store
        .put(&PutRequest {
            key: &key,
            source: &file,
            size: text.len() as u64,
            sha256: sha,
            metadata: &metadata,
        })
        .await;
    let _ = std::fs::remove_file(&file);
    if let PutOutcome::Exists(_) = put? {
        return Err(HoldCopyError::Invalid {
            key,
            message: "a copy with this name already exists".into(),
        });
    }
    let mut copies = store.list(&dir).await?;
    copies.sort_by(|a, b| b.key.cmp(&a.key));
    for old in copies.iter().skip(KEEP) {
        store.delete(&old.key).await?;
    }
    Ok(key)
}

/// Loads the newest hold copy of `host` into `ledger` (which must have no
/// holds yet). Returns how many holds were restored.
pub async fn recover(
    ledger: &Ledger,
    store: &dyn Store,
    store_prefix: &str,
    host: &str,
    scratch: &Path,
) -> Result<usize, HoldCopyError> {
    let mut copies = store.list(&prefix(store_prefix, host)).await?;
    copies.sort_by(|a, b| b.key.cmp(&a.key));
    let Some(newest) = copies.first() else {
        return Ok(0);
    };
    let file = scratch.join(format!(
        ".holds-{}-{}.tmp",
        std::process::id(),
        fastrand::u64(..)
    ));
    store.get(&newest.key, &file).await?;
    let text = std::fs::read_to_string(&file);
    let _ = std::fs::remove_file(&file);
    let invalid = |message: String| HoldCopyError::Invalid {
        key: newest.key.clone(),
        message,
    };
    let copy: Copy = toml::from_str(&text.map_err(|e| invalid(e.to_string()))?)
        .map_err(|e| invalid(e.to_string()))?;
    let n = copy.hold.len();
    ledger.write(|tx| {
        for h in &copy.hold {
            tx.execute(
                "INSERT INTO holds (id, case_id, reason, created_by, created_at, released_at, released_by, release_reason) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![h.id, h.case_id, h.reason, h.created_by, h.created_at, h.released_at, h.released_by, h.release_reason],
            )?;
            let selectors: Vec<Selector> = h
                .selector
                .iter()
                .map(|s| Selector::from_columns(&s.kind, s.value.clone(), s.from, s.to))
                .collect();
            hold::insert_selectors(tx, h.id, &selectors)?;
        }
        Ok::<_, LedgerError>(())
    })?;
    Ok(n)
}
