//! Azure Blob Storage (and Azurite) through OpenDAL's `azblob` service: the
//! operator and the words for Azure's refusals; `cloud` does the rest.
//! Creates use `If-None-Match: *`; a single Put Blob gets its Content-MD5
//! computed by Azure, which `cloud` checks against ours.

use opendal::services::Azblob;

use super::StoreError;
use super::cloud::{CloudStore, Flavour};
use crate::config::{AzureConfig, AzureCredentials};

/// Builds the store for `[store] kind = "azure"`.
pub fn open(
    config: &AzureConfig,
    multipart_threshold: u64,
    part_size: u64,
    max_upload_rate: Option<u64>,
) -> Result<CloudStore, StoreError> {
    let mut builder = Azblob::default()
        .root("/")
        .container(&config.container)
        .endpoint(&config.endpoint)
        .account_name(&config.account);
    let mut secrets = Vec::new();
    match &config.credentials {
        AzureCredentials::AccountKey(key) => {
            builder = builder.account_key(key.expose());
            secrets.push(key.expose().to_string());
        }
        AzureCredentials::SasToken(token) => {
            builder = builder.sas_token(token.expose());
            secrets.push(token.expose().to_string());
        }
        AzureCredentials::Environment => {}
    }
    let describe = format!(
        "azure://{}/{} at {}",
        config.account, config.container, config.endpoint
    );
    let flavour = Flavour::new(describe, secrets, explain).underscore_names();
    let timeouts = (config.connect_timeout, config.read_timeout);
    let transfer = (multipart_threshold, part_size, max_upload_rate);
    CloudStore::build("azure", builder, flavour, timeouts, transfer)
}

/// Which setting an Azure error code points at.
fn explain(message: &str) -> Option<String> {
    let hint = if message.contains("ContainerNotFound") {
        "no such container: check store.container (and store.account)"
    } else if message.contains("AuthenticationFailed")
        || message.contains("InvalidAuthenticationInfo")
    {
        "the credentials were refused: check store.key_file (account_key or sas_token) and store.account"
    } else if message.contains("AuthorizationPermissionMismatch")
        || message.contains("AuthorizationFailure")
        || message.contains("AuthorizationResourceTypeMismatch")
        || message.contains("status: 403")
    {
        "the credentials were refused or may not do this: check store.key_file (account_key or sas_token) and store.account; a SAS token or role needs read, add, create, write, delete and list on the container"
    } else if message.contains("ResourceNotFound") || message.contains("AccountNotFound") {
        "no such account or endpoint: check store.account and store.endpoint"
    } else {
        return None;
    };
    Some(hint.to_string())
}
