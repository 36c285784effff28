//! One SSH connection with an SFTP channel: the server's host key must be
//! exactly the pinned one (`store.host_key`; never "accept any", never a
//! known_hosts file), then public-key login with `store.key_file`, then the
//! `sftp` subsystem. No OpenSSH client is run: russh speaks SSH in-process.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::Disconnect;
use russh::client::{self, Handle};
use russh::keys::PublicKeyOrCertificate;
use russh::keys::ssh_key::public::KeyData;
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKey};
use russh_sftp::client::SftpSession;
use russh_sftp::client::error::Error as SftpError;
use russh_sftp::protocol::StatusCode;

use crate::config::SftpConfig;
use crate::store::StoreError;

/// A live SFTP session and the SSH connection under it.
pub(super) struct Connection {
    pub sftp: SftpSession,
    ssh: Handle<Pinned>,
}

impl Connection {
    pub fn is_closed(&self) -> bool {
        self.ssh.is_closed()
    }

    pub async fn close(&self) {
        let _ = self.sftp.close().await;
        let _ = self.ssh.disconnect(Disconnect::ByApplication, "", "").await;
    }
}

/// Accepts the pinned host key and nothing else; remembers what it saw.
struct Pinned {
    want: PublicKey,
    refused: Arc<Mutex<Option<String>>>,
}

fn fingerprint(key: &KeyData) -> String {
    format!("{} {}", key.algorithm(), key.fingerprint(HashAlg::Sha256))
}

impl client::Handler for Pinned {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let presented = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.key_data(),
            PublicKeyOrCertificate::Certificate(cert) => cert.public_key(),
        };
        if presented == self.want.key_data() {
            return Ok(true);
        }
        let mut refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        *refused = Some(format!(
            "the server presented {}, but store.host_key pins {}",
            fingerprint(presented),
            fingerprint(self.want.key_data())
        ));
        Ok(false)
    }
}

/// Whether a russh error is the network's (retry) or a refusal (fix the config).
fn transient(e: &russh::Error) -> bool {
    use russh::Error as E;
    matches!(
        e,
        E::IO(_)
            | E::Disconnect
            | E::HUP
            | E::ConnectionTimeout
            | E::KeepaliveTimeout
            | E::InactivityTimeout
            | E::SendError
            | E::RecvError
            | E::Elapsed(_)
    )
}

/// Connects, checks the host key, logs in and opens the SFTP subsystem.
pub(super) async fn connect(config: &SftpConfig) -> Result<Connection, StoreError> {
    let at = format!("{}:{}", config.host, config.port);
    let ssh_config = Arc::new(client::Config {
        inactivity_timeout: Some(Duration::from_secs(300)),
        keepalive_interval: Some(Duration::from_secs(30)),
        keepalive_max: 3,
        nodelay: true,
        ..Default::default()
    });
    let refused = Arc::new(Mutex::new(None));
    let handler = Pinned {
        want: config.host_key.clone(),
        refused: refused.clone(),
    };
    let tcp = tokio::time::timeout(
        config.connect_timeout,
        tokio::net::TcpStream::connect((config.host.as_str(), config.port)),
    )
    .await
    .map_err(|_| StoreError::Transient(format!("cannot connect to {at}: timed out")))?
    .map_err(|e| StoreError::Transient(format!("cannot connect to {at}: {e}")))?;
    let handshake = tokio::time::timeout(
        config.connect_timeout,
        client::connect_stream(ssh_config, tcp, handler),
    )
    .await
    .map_err(|_| StoreError::Transient(format!("{at}: SSH handshake timed out")))?;
    let mut ssh = match handshake {
        Ok(h) => h,
        Err(e) => {
            if let Some(why) = refused.lock().unwrap_or_else(|e| e.into_inner()).take() {
                return Err(StoreError::Permanent(format!(
                    "host key mismatch for {at}: {why}; refusing to connect (if the server's key really changed, put its new key in store.host_key)"
                )));
            }
            let message = format!("{at}: SSH handshake failed: {e}");
            return Err(if transient(&e) {
                StoreError::Transient(message)
            } else {
                StoreError::Permanent(message)
            });
        }
    };
    login(&mut ssh, config, &at).await?;
    let channel = ssh
        .channel_open_session()
        .await
        .map_err(|e| StoreError::Transient(format!("{at}: cannot open a channel: {e}")))?;
    channel.request_subsystem(true, "sftp").await.map_err(|e| {
        StoreError::Permanent(format!("{at}: the server offers no sftp subsystem: {e}"))
    })?;
    let sftp = SftpSession::new(channel.into_stream())
        .await
        .map_err(|e| StoreError::Permanent(format!("{at}: SFTP did not start: {e}")))?;
    sftp.set_timeout(config.read_timeout.as_secs().max(1));
    let connection = Connection { sftp, ssh };
    root_exists(&connection, config, &at).await?;
    Ok(connection)
}

async fn login(ssh: &mut Handle<Pinned>, config: &SftpConfig, at: &str) -> Result<(), StoreError> {
    let hash = ssh
        .best_supported_rsa_hash()
        .await
        .map_err(|e| StoreError::Transient(format!("{at}: {e}")))?
        .flatten();
    let key = PrivateKeyWithHashAlg::new(config.key.0.clone(), hash);
    let result = ssh
        .authenticate_publickey(&config.user, key)
        .await
        .map_err(|e| StoreError::Transient(format!("{at}: login failed: {e}")))?;
    if !result.success() {
        return Err(StoreError::Permanent(format!(
            "{at}: the server refused the key in store.key_file for user `{}` (check store.user and the server's authorized_keys)",
            config.user
        )));
    }
    Ok(())
}

/// `store.path` must exist: recvault makes only the folders below it.
async fn root_exists(c: &Connection, config: &SftpConfig, at: &str) -> Result<(), StoreError> {
    match c.sftp.metadata(config.path.as_str()).await {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(StoreError::Permanent(format!(
            "store.path `{}` on {at} is not a directory",
            config.path
        ))),
        Err(SftpError::Status(s)) if s.status_code == StatusCode::NoSuchFile => {
            Err(StoreError::Permanent(format!(
                "store.path `{}` does not exist on {at} (create it; recvault makes only the folders below it)",
                config.path
            )))
        }
        Err(e) => Err(classify("stat", &config.path, &e)),
    }
}

/// True if the error means the file is not there.
pub(super) fn not_found(e: &SftpError) -> bool {
    matches!(e, SftpError::Status(s) if s.status_code == StatusCode::NoSuchFile)
}

/// True if the error came from the connection rather than the server's answer.
pub(super) fn broken(e: &SftpError) -> bool {
    !matches!(e, SftpError::Status(_))
}

/// Maps an SFTP error: the connection's trouble and the server's generic
/// failure (a full disk looks like this) are worth retrying; refusals are not.
pub(super) fn classify(op: &str, path: &str, e: &SftpError) -> StoreError {
    let message = format!("{op} `{path}`: {e}");
    match e {
        SftpError::Status(s) => match s.status_code {
            StatusCode::Failure | StatusCode::ConnectionLost | StatusCode::NoConnection => {
                StoreError::Transient(message)
            }
            StatusCode::PermissionDenied => StoreError::Permanent(format!(
                "{message} (the user may not do this there: check store.path and its permissions)"
            )),
            _ => StoreError::Permanent(message),
        },
        _ => StoreError::Transient(message),
    }
}
