//! Copies of the hold table in the store, so legal holds survive the loss of
//! the ledger's disk: `ledger rebuild --from-store` reads the newest copy
//! back, and `ledger restore` merges it with the backup's holds.
//! The ledger stays the record; a copy is written after every hold change and
//! with every scheduled ledger backup.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::ledger::Ledger;
use crate::ledger::holds::Hold;
use crate::store::{self, PutOutcome, Store};

/// Copies kept per host; older ones are deleted after a new one is stored.
const KEEP: usize = 5;

/// The store prefix holding a host's hold copies.
pub fn prefix(store_prefix: &str, host: &str) -> String {
    format!("{store_prefix}.recvault/holds/{host}/")
}

/// A hold copy's file: every hold, as TOML.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Copy {
    #[serde(default)]
    hold: Vec<Hold>,
}

/// The store prefix holding the fleet's hold copies (its holds live in the
/// fleet's database; these copies outlive its loss).
pub fn fleet_prefix(store_prefix: &str) -> String {
    format!("{store_prefix}.recvault/fleet-holds/")
}

/// Stores a copy of every hold (active and released) and prunes old copies.
/// Returns the key written.
pub async fn publish(
    ledger: &Ledger,
    store: &dyn Store,
    store_prefix: &str,
    host: &str,
) -> Result<String, Error> {
    let dir = prefix(store_prefix, host);
    publish_holds(store, &dir, ledger.holds()?).await
}

/// Stores a copy of `holds` under `dir` and prunes old copies there.
/// Returns the key written.
pub async fn publish_holds(
    store: &dyn Store,
    dir: &str,
    holds: Vec<Hold>,
) -> Result<String, Error> {
    let text = toml::to_string(&Copy { hold: holds })
        .map_err(|e| Error::Local(format!("hold copy: {e}")))?;
    let dir = dir.to_string();
    let now = chrono::Utc::now();
    let key = format!(
        "{dir}{}-{:09}.toml",
        now.format("%Y%m%dT%H%M%SZ"),
        now.timestamp_subsec_nanos()
    );
    let put = store::put_text(store, &key, &text, "application/toml").await;
    if let PutOutcome::Exists(_) = put? {
        return Err(Error::HoldCopy {
            key,
            message: "a copy with this name already exists".into(),
        });
    }
    let mut copies = store.list(&dir).await?;
    copies.sort_by(|a, b| b.key.cmp(&a.key));
    let old: Vec<String> = copies.iter().skip(KEEP).map(|c| c.key.clone()).collect();
    for (_, result) in store.delete_all_versions(&old).await? {
        result?;
    }
    Ok(key)
}

/// The newest hold copy of `host`: its key, when it was written, and its holds.
pub async fn newest(
    store: &dyn Store,
    store_prefix: &str,
    host: &str,
) -> Result<Option<(String, Option<DateTime<Utc>>, Vec<Hold>)>, Error> {
    let dir = prefix(store_prefix, host);
    let mut copies = store.list(&dir).await?;
    copies.sort_by(|a, b| b.key.cmp(&a.key));
    let Some(newest) = copies.first() else {
        return Ok(None);
    };
    let invalid = |message: String| Error::HoldCopy {
        key: newest.key.clone(),
        message,
    };
    // Listed a moment ago and gone since (pruned by a newer copy): an error,
    // never "no holds".
    let text = store::get_text(store, &newest.key)
        .await?
        .ok_or_else(|| invalid("gone while it was being read; try again".into()))?;
    let copy: Copy = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    // `{dir}20260301T101500Z-000000000.toml`: the second it was written.
    let written = newest
        .key
        .strip_prefix(&dir)
        .and_then(|name| name.get(..16))
        .and_then(|stamp| NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%SZ").ok())
        .map(|t| t.and_utc());
    Ok(Some((newest.key.clone(), written, copy.hold)))
}

/// Loads the newest hold copy of `host` into `ledger` (which must have no
/// holds yet). Returns how many holds were restored.
pub async fn recover(
    ledger: &Ledger,
    store: &dyn Store,
    store_prefix: &str,
    host: &str,
) -> Result<usize, Error> {
    let Some((_, _, holds)) = newest(store, store_prefix, host).await? else {
        return Ok(0);
    };
    ledger.restore_holds(&holds)?;
    Ok(holds.len())
}
