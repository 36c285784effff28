//! Azurite (npm), Microsoft's Azure Storage emulator, with the shared container made.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use base64::Engine;
use recvault::config::{AzureConfig, AzureCredentials, Secret};
use recvault::store::{CloudStore, azure};
use sha2::{Digest, Sha256};

use super::*;
use crate::common::dead_port;

/// Azurite's documented development account.
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    block[..key.len()].copy_from_slice(key);
    let pad = |b: u8| block.iter().map(|k| k ^ b).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// Azurite, with the shared container made.
pub struct Azurite {
    pub proc: Proc,
    pub dir: PathBuf,
}

impl Azurite {
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{AZURITE_ACCOUNT}", self.proc.port)
    }

    /// Creates `name` (Shared Key signed, as the Azure CLI would).
    pub fn create_container(&self, name: &str) {
        let b64 = base64::engine::general_purpose::STANDARD;
        let date = chrono::Utc::now()
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        let version = "2021-08-06";
        let to_sign = format!(
            "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n/{AZURITE_ACCOUNT}/{AZURITE_ACCOUNT}/{name}\nrestype:container"
        );
        let signature = b64.encode(hmac_sha256(
            &b64.decode(AZURITE_KEY).unwrap(),
            to_sign.as_bytes(),
        ));
        let head = format!(
            "PUT /{AZURITE_ACCOUNT}/{name}?restype=container HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nx-ms-date: {date}\r\nx-ms-version: {version}\r\nAuthorization: SharedKey {AZURITE_ACCOUNT}:{signature}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.proc.port
        );
        let status = http(self.proc.port, &head, b"");
        assert!(
            status == 201 || status == 409,
            "create container {name}: HTTP {status}"
        );
    }
}

fn azurite() -> Option<Azurite> {
    if !installed(
        Path::new("azurite-blob"),
        "Azurite (npm install -g azurite)",
    ) {
        return None;
    }
    let dir = workdir("azurite");
    let port = dead_port();
    let proc = Proc {
        name: "azurite-blob",
        program: which(Path::new("azurite-blob")).unwrap(),
        args: [
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            &port.to_string(),
            "--location",
            dir.to_str().unwrap(),
            "--silent",
            "--skipApiVersionCheck",
            "--loose",
            "--disableTelemetry",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        port,
        child: None,
        log: dir.join("azurite.log"),
    };
    Some(Azurite { proc, dir })
}

/// The Azurite every Azure test shares.
pub fn shared_azurite() -> Option<&'static Azurite> {
    static SHARED: OnceLock<Option<Azurite>> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            let mut a = azurite()?;
            a.proc = keep(std::mem::replace(&mut a.proc, placeholder()));
            a.create_container(CONTAINER);
            Some(a)
        })
        .as_ref()
}

/// An Azurite of one test's own (for outages).
pub fn private_azurite() -> Option<Azurite> {
    let mut a = azurite()?;
    a.proc.start();
    a.create_container(CONTAINER);
    Some(a)
}

impl Azurite {
    pub fn config(&self) -> AzureConfig {
        AzureConfig {
            account: AZURITE_ACCOUNT.into(),
            container: CONTAINER.into(),
            endpoint: self.endpoint(),
            credentials: AzureCredentials::AccountKey(Secret::new(AZURITE_KEY)),
            connect_timeout: TIMEOUT,
            read_timeout: TIMEOUT,
        }
    }

    /// The store, with the multipart threshold and part size given.
    pub fn store(&self, multipart_threshold: u64, part_size: u64) -> Arc<CloudStore> {
        Arc::new(azure::open(&self.config(), multipart_threshold, part_size, None).unwrap())
    }

    /// `[store]` lines for a site (the key goes to a key file in `dir`).
    pub fn store_toml(&self, dir: &Path) -> String {
        let key = dir.join("azure-key.toml");
        std::fs::write(&key, format!("account_key = \"{AZURITE_KEY}\"\n")).unwrap();
        format!(
            "kind = \"azure\"\naccount = \"{AZURITE_ACCOUNT}\"\ncontainer = \"{CONTAINER}\"\nendpoint = \"{}\"\nkey_file = \"{}\"\nconnect_timeout = \"2s\"\nread_timeout = \"10s\"\n",
            self.endpoint(),
            key.display()
        )
    }
}
