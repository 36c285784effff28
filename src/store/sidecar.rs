//! Object metadata kept beside the object, for stores that have none (a local
//! directory, an SFTP server): `{root}/.recvault-meta/{key}.toml`, and the key
//! and temp-name rules both of those stores share.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::StoreError;

/// The directory under the root that mirrors keys with their sidecars.
pub const META_DIR: &str = ".recvault-meta";

/// What a sidecar records about its object.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sidecar {
    pub size: u64,
    /// SHA-256 of the bytes the store wrote, base64 (what S3 would report).
    pub checksum: String,
    pub metadata: BTreeMap<String, String>,
    /// What S3 would keep as the object's Content-Type.
    #[serde(default)]
    pub content_type: Option<String>,
}

impl Sidecar {
    /// The sidecar's TOML text.
    pub fn to_text(&self) -> Result<String, StoreError> {
        toml::to_string(self).map_err(|e| StoreError::Permanent(format!("sidecar: {e}")))
    }

    /// Parses a sidecar; a damaged one counts as absent.
    pub fn parse(text: &[u8]) -> Option<Sidecar> {
        toml::from_str(std::str::from_utf8(text).ok()?).ok()
    }
}

/// The sidecar's path relative to the root.
pub fn sidecar_key(key: &str) -> String {
    format!("{META_DIR}/{key}.toml")
}

/// Refuses keys that would leave the root or land among the sidecars.
pub fn check_key(key: &str) -> Result<(), StoreError> {
    let bad = key.is_empty()
        || key.starts_with('/')
        || key.starts_with(META_DIR)
        || key
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..");
    if bad {
        return Err(StoreError::Permanent(format!("invalid object key `{key}`")));
    }
    Ok(())
}

/// A temp name for `file_name` in the same directory (`.{name}.tmp-…`).
pub fn temp_name(file_name: &str) -> String {
    format!(
        ".{file_name}.tmp-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    )
}

/// True for our own temp files, which listings skip. Not every dot-name:
/// keys such as `.recvault/…` (ledger backups) or `…/..wav.zst` are objects.
pub fn is_temp_name(file_name: &str) -> bool {
    file_name.starts_with('.') && file_name.contains(".tmp-")
}
