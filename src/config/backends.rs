//! `[store]` settings of the Azure Blob, Google Cloud Storage and SFTP kinds,
//! and their validation. Secrets (account keys, SAS tokens, service-account
//! keys, SSH private keys) are read from key files here and held in types
//! whose Debug never shows them; errors name the key, never the secret.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use super::raw::RawStore;
pub use super::secret::Secret;
use super::validate::Validator;

/// `kind = "azure"`: a container in an Azure Storage account.
#[derive(Debug, Clone)]
pub struct AzureConfig {
    pub account: String,
    pub container: String,
    /// `https://<account>.blob.core.windows.net` unless set (Azurite, sovereign clouds).
    pub endpoint: String,
    pub credentials: AzureCredentials,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
}

/// How recvault signs Azure requests.
#[derive(Debug, Clone)]
pub enum AzureCredentials {
    /// The account's shared key, from the key file.
    AccountKey(Secret),
    /// A SAS token, from the key file.
    SasToken(Secret),
    /// Azure's standard chain: `AZURE_STORAGE_*` / `AZURE_CLIENT_*`
    /// variables, workload identity, then the managed identity.
    Environment,
}

/// `kind = "gcs"`: a Google Cloud Storage bucket.
#[derive(Debug, Clone)]
pub struct GcsConfig {
    pub bucket: String,
    /// The JSON API's address; `None` = Google's.
    pub endpoint: Option<String>,
    pub credentials: GcsCredentials,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
}

/// How recvault signs GCS requests.
#[derive(Debug, Clone)]
pub enum GcsCredentials {
    /// A service account's JSON key, from the key file.
    ServiceAccount(Secret),
    /// Application-default credentials (`GOOGLE_APPLICATION_CREDENTIALS`,
    /// gcloud's file, the VM's service account).
    Default,
}

/// `kind = "sftp"`: a directory on an SSH server, its host key pinned.
#[derive(Debug, Clone)]
pub struct SftpConfig {
    pub host: String,
    pub port: u16,
    pub user: String,
    /// The private key recvault logs in with.
    pub key: SshKey,
    /// The only host key accepted: anything else is refused.
    pub host_key: russh::keys::PublicKey,
    /// The remote directory objects go under (it must exist).
    pub path: String,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
}

/// An SSH private key read from `store.key_file`. Debug never shows it.
#[derive(Clone)]
pub struct SshKey(pub Arc<russh::keys::PrivateKey>);

impl fmt::Debug for SshKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SshKey({} <redacted>)", self.0.algorithm())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AzureKeyFile {
    account_key: Option<String>,
    sas_token: Option<String>,
}

/// Refuses keys that belong to another store kind: a `host` under
/// `kind = "gcs"` is a mistake the operator should hear about.
pub(super) fn foreign_keys(
    v: &Validator<'_>,
    raw: &RawStore,
    kind: &str,
) -> Result<(), ConfigError> {
    let set: [(&str, bool, &[&str]); 8] = [
        ("account", raw.account.is_some(), &["azure"]),
        ("container", raw.container.is_some(), &["azure"]),
        ("host", raw.host.is_some(), &["sftp"]),
        ("port", raw.port.is_some(), &["sftp"]),
        ("user", raw.user.is_some(), &["sftp"]),
        ("host_key", raw.host_key.is_some(), &["sftp"]),
        ("region", raw.region.is_some(), &["s3"]),
        ("path_style", raw.path_style.is_some(), &["s3"]),
    ];
    for (key, present, kinds) in set {
        if present && !kinds.contains(&kind) {
            return Err(v.invalid(
                &format!("store.{key}"),
                format!(
                    "only applies to store.kind = \"{}\", not \"{kind}\"",
                    kinds.join("\" or \"")
                ),
            ));
        }
    }
    Ok(())
}

fn timeouts(v: &Validator<'_>, raw: &RawStore) -> Result<(Duration, Duration), ConfigError> {
    Ok((
        v.duration(
            "store.connect_timeout",
            raw.connect_timeout.as_deref(),
            "10s",
        )?,
        v.duration("store.read_timeout", raw.read_timeout.as_deref(), "60s")?,
    ))
}

fn read_secret_file(v: &Validator<'_>, file: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(file).map_err(|e| {
        v.invalid(
            "store.key_file",
            format!("cannot read `{}`: {e}", file.display()),
        )
    })
}

fn endpoint(v: &Validator<'_>, raw: &RawStore) -> Result<Option<String>, ConfigError> {
    match &raw.endpoint {
        Some(e) if !(e.starts_with("https://") || e.starts_with("http://")) => Err(v.invalid(
            "store.endpoint",
            "must start with https:// (or http:// for a local test server)",
        )),
        // A SAS token pasted into the URL would end up in every log line.
        Some(e) if e.contains('?') => Err(v.invalid(
            "store.endpoint",
            "must not carry a query: put a SAS token in the key file (sas_token = \"...\")",
        )),
        Some(e) => Ok(Some(e.trim_end_matches('/').to_string())),
        None => Ok(None),
    }
}

/// Letters and digits only: what Azure allows in an account or container name.
fn azure_name(
    v: &Validator<'_>,
    key: &str,
    name: String,
    container: bool,
) -> Result<String, ConfigError> {
    let max = if container { 63 } else { 24 };
    let ok = (3..=max).contains(&name.len())
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || (container && b == b'-'));
    if ok {
        Ok(name)
    } else {
        Err(v.invalid(
            key,
            format!(
                "`{name}` is not an Azure name (3-63 lowercase letters and digits{})",
                if container { ", or `-`" } else { "" }
            ),
        ))
    }
}

pub(super) fn parse_azure(v: &Validator<'_>, raw: &RawStore) -> Result<AzureConfig, ConfigError> {
    let account = azure_name(
        v,
        "store.account",
        v.required("store.account", raw.account.clone())?,
        false,
    )?;
    let container = azure_name(
        v,
        "store.container",
        v.required("store.container", raw.container.clone())?,
        true,
    )?;
    let credentials = match &raw.key_file {
        None => AzureCredentials::Environment,
        Some(file) => azure_key_file(v, file)?,
    };
    let endpoint =
        endpoint(v, raw)?.unwrap_or_else(|| format!("https://{account}.blob.core.windows.net"));
    let (connect_timeout, read_timeout) = timeouts(v, raw)?;
    Ok(AzureConfig {
        account,
        container,
        endpoint,
        credentials,
        connect_timeout,
        read_timeout,
    })
}

/// The account key or SAS token in `store.key_file` (exactly one of them).
fn azure_key_file(v: &Validator<'_>, file: &Path) -> Result<AzureCredentials, ConfigError> {
    let text = read_secret_file(v, file)?;
    let wrong = || {
        v.invalid(
            "store.key_file",
            format!(
                "`{}` must hold exactly one of `account_key = \"...\"` or `sas_token = \"...\"`",
                file.display()
            ),
        )
    };
    // The parse error could quote the secret: say only what is expected.
    let keys: AzureKeyFile = toml::from_str(&text).map_err(|_| wrong())?;
    match (keys.account_key, keys.sas_token) {
        (Some(k), None) if !k.trim().is_empty() => {
            use base64::Engine;
            if base64::engine::general_purpose::STANDARD
                .decode(k.trim())
                .is_err()
            {
                return Err(v.invalid(
                    "store.key_file",
                    format!("`{}`: account_key is not base64 (copy the key from the portal's Access keys)", file.display()),
                ));
            }
            Ok(AzureCredentials::AccountKey(Secret::new(k.trim())))
        }
        (None, Some(t)) if !t.trim().is_empty() => Ok(AzureCredentials::SasToken(Secret::new(
            t.trim().trim_start_matches('?'),
        ))),
        _ => Err(wrong()),
    }
}

pub(super) fn parse_gcs(v: &Validator<'_>, raw: &RawStore) -> Result<GcsConfig, ConfigError> {
    let bucket = v.required("store.bucket", raw.bucket.clone())?;
    let credentials = match &raw.key_file {
        None => GcsCredentials::Default,
        Some(file) => {
            let text = read_secret_file(v, file)?;
            let json: Option<serde_json::Value> = serde_json::from_str(&text).ok();
            let field = |k: &str| {
                json.as_ref()
                    .and_then(|j| j.get(k))
                    .and_then(|x| x.as_str())
            };
            if field("type") != Some("service_account")
                || field("private_key").is_none()
                || field("client_email").is_none()
            {
                return Err(v.invalid(
                    "store.key_file",
                    format!(
                        "`{}` is not a service account's JSON key (type \"service_account\" with client_email and private_key)",
                        file.display()
                    ),
                ));
            }
            GcsCredentials::ServiceAccount(Secret::new(text))
        }
    };
    let (connect_timeout, read_timeout) = timeouts(v, raw)?;
    Ok(GcsConfig {
        bucket,
        endpoint: endpoint(v, raw)?,
        credentials,
        connect_timeout,
        read_timeout,
    })
}

/// The key of a `known_hosts`-style line: `[hosts] keytype base64 [comment]`.
pub fn parse_host_key(line: &str) -> Result<russh::keys::PublicKey, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    if words.first().is_some_and(|w| w.starts_with('@')) {
        return Err(format!(
            "`{}` markers are not supported: give the server's own key",
            words[0]
        ));
    }
    let is_type =
        |w: &&str| w.starts_with("ssh-") || w.starts_with("ecdsa-") || w.starts_with("sk-");
    let start = words
        .iter()
        .position(is_type)
        .filter(|&i| i <= 1 && words.len() > i + 1)
        .ok_or("expected a known_hosts line such as `example.com ssh-ed25519 AAAA...` (from `ssh-keyscan -t ed25519 HOST`)")?;
    let text = format!("{} {}", words[start], words[start + 1]);
    russh::keys::PublicKey::from_openssh(&text).map_err(|e| format!("not a public key: {e}"))
}

pub(super) fn parse_sftp(v: &Validator<'_>, raw: &RawStore) -> Result<SftpConfig, ConfigError> {
    let host = v.required("store.host", raw.host.clone())?;
    let user = v.required("store.user", raw.user.clone())?;
    let host_key_text = v.required("store.host_key", raw.host_key.clone())?;
    let host_key = parse_host_key(&host_key_text).map_err(|e| v.invalid("store.host_key", e))?;
    let file: &PathBuf = raw.key_file.as_ref().ok_or_else(|| {
        v.invalid(
            "store.key_file",
            "is required when store.kind = \"sftp\" (the private key to log in with)",
        )
    })?;
    let text = read_secret_file(v, file)?;
    // ssh-key's messages name the problem, never the key material.
    let key = russh::keys::decode_secret_key(&text, None).map_err(|e| {
        v.invalid(
            "store.key_file",
            format!(
                "`{}` is not an unencrypted OpenSSH private key: {e}",
                file.display()
            ),
        )
    })?;
    let path = raw
        .path
        .as_ref()
        .and_then(|p| p.to_str())
        .map(|p| p.trim_end_matches('/').to_string())
        .ok_or_else(|| {
            v.invalid(
                "store.path",
                "is required when store.kind = \"sftp\" (the remote directory)",
            )
        })?;
    let path = if path.is_empty() {
        "/".to_string()
    } else {
        path
    };
    if path.split('/').any(|c| c == "..") {
        return Err(v.invalid("store.path", "must not contain `..`"));
    }
    let port = raw.port.unwrap_or(22);
    if port == 0 {
        return Err(v.invalid("store.port", "must be 1..=65535"));
    }
    let (connect_timeout, read_timeout) = timeouts(v, raw)?;
    Ok(SftpConfig {
        host,
        port,
        user,
        key: SshKey(Arc::new(key)),
        host_key,
        path,
        connect_timeout,
        read_timeout,
    })
}
