//! Google Cloud Storage (and fake-gcs-server) through OpenDAL's `gcs`
//! service: the operator and the words for Google's refusals; `cloud` does
//! the rest. Creates use `ifGenerationMatch=0`; GCS computes every object's
//! MD5, which `cloud` checks against ours.
//!
//! Like Google's own client libraries, recvault honours
//! `STORAGE_EMULATOR_HOST`: set, it talks to that emulator, unsigned.

use base64::Engine;
use opendal::services::Gcs;

use super::StoreError;
use super::cloud::{CloudStore, Flavour};
use crate::config::{GcsConfig, GcsCredentials};

/// Builds the store for `[store] kind = "gcs"`.
pub fn open(
    config: &GcsConfig,
    multipart_threshold: u64,
    part_size: u64,
    max_upload_rate: Option<u64>,
) -> Result<CloudStore, StoreError> {
    let emulator = std::env::var("STORAGE_EMULATOR_HOST").ok();
    open_with_emulator(
        config,
        emulator.as_deref(),
        multipart_threshold,
        part_size,
        max_upload_rate,
    )
}

/// [`open`], given what `STORAGE_EMULATOR_HOST` says (`None`: Google itself).
pub fn open_with_emulator(
    config: &GcsConfig,
    emulator: Option<&str>,
    multipart_threshold: u64,
    part_size: u64,
    max_upload_rate: Option<u64>,
) -> Result<CloudStore, StoreError> {
    let mut builder = Gcs::default().root("/").bucket(&config.bucket);
    let mut secrets = Vec::new();
    let emulator = emulator.filter(|h| !h.is_empty()).map(|h| {
        if h.contains("://") {
            h.to_string()
        } else {
            format!("http://{h}")
        }
    });
    let endpoint = emulator.clone().or_else(|| config.endpoint.clone());
    if let Some(endpoint) = &endpoint {
        builder = builder.endpoint(endpoint);
    }
    if emulator.is_some() {
        builder = builder
            .skip_signature()
            .disable_vm_metadata()
            .disable_config_load();
    } else {
        match &config.credentials {
            GcsCredentials::ServiceAccount(json) => {
                let encoded = base64::engine::general_purpose::STANDARD.encode(json.expose());
                builder = builder.credential(&encoded).disable_config_load();
                secrets.push(encoded);
            }
            GcsCredentials::Default => {}
        }
    }
    let describe = format!(
        "gs://{} at {}",
        config.bucket,
        endpoint.as_deref().unwrap_or("Google")
    );
    let flavour = Flavour::new(describe, secrets, explain);
    let timeouts = (config.connect_timeout, config.read_timeout);
    let transfer = (multipart_threshold, part_size, max_upload_rate);
    CloudStore::build("gcs", builder, flavour, timeouts, transfer)
}

/// Which setting a Google error points at.
fn explain(message: &str) -> Option<String> {
    let hint = if message.contains("bucket does not exist")
        || message.contains("Not Found") && message.contains("/b/")
    {
        "no such bucket: check store.bucket"
    } else if message.contains("status: 401")
        || message.contains("invalid_grant")
        || message.contains("Unauthorized")
    {
        "the credentials were refused: check store.key_file (a service account's JSON key) or the application-default credentials"
    } else if message.contains("status: 403") || message.contains("Forbidden") {
        "the credentials may not do this: the service account needs Storage Object Admin (or create, get, list, delete) on the bucket"
    } else {
        return None;
    };
    Some(hint.to_string())
}
