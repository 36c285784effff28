//! Small text objects recvault writes beside the recordings (an id
//! reservation, a copy of the holds): put from memory with their SHA-256
//! and read back whole, never through a temporary file.

use std::collections::BTreeMap;

use tokio::io::AsyncReadExt;

use super::{Body, PutOutcome, PutRequest, Store, StoreError, meta};
use crate::digest;

/// The largest text object read back (a copy of many thousand holds is a
/// few MiB): anything bigger is not one of ours.
const MAX_TEXT: u64 = 64 << 20;

/// Stores `text` at `key` (never over an existing object: `Exists` then),
/// with its SHA-256 in the metadata as every object of ours carries it.
pub async fn put_text(
    store: &dyn Store,
    key: &str,
    text: &str,
    content_type: &str,
) -> Result<PutOutcome, StoreError> {
    let sha256 = digest::sha256(text.as_bytes());
    let metadata: BTreeMap<String, String> =
        [(meta::SHA256.to_string(), hex::encode(sha256))].into();
    store
        .put(&PutRequest {
            key,
            source: Body::Bytes(text.as_bytes()),
            size: text.len() as u64,
            sha256,
            metadata: &metadata,
            content_type,
        })
        .await
}

/// The text object at `key` (`None`: there is none). Not UTF-8, or bigger
/// than a text of ours can be, is an error naming the key.
pub async fn get_text(store: &dyn Store, key: &str) -> Result<Option<String>, StoreError> {
    let Some(reader) = store.open(key).await? else {
        return Ok(None);
    };
    let mut bytes = Vec::new();
    let read = reader.take(MAX_TEXT + 1).read_to_end(&mut bytes).await;
    let bad = |why: String| StoreError::Permanent(format!("`{key}`: {why}"));
    read.map_err(|e| StoreError::Transient(format!("reading `{key}`: {e}")))?;
    if bytes.len() as u64 > MAX_TEXT {
        return Err(bad(format!("larger than {MAX_TEXT} bytes")));
    }
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|e| bad(format!("not UTF-8 text: {e}")))
}
