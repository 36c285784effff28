//! The playback server end to end: the real daemon serving links over
//! HTTP on a port chosen at run time, recordings archived in Garage, and
//! hyper's client (curl for TLS) asking.

mod hostile;
mod identity;
mod playback;
mod tls;

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::common::*;

/// The link key the tests write (what the .deb's postinst would create).
pub const KEY: &str = "test-link-key-0123456789abcdefghijklmnopqrstuvwxyz";

/// The `[serve]` table for a server on 127.0.0.1:`port`.
pub fn serve_table(root: &Path, port: u16, extra: &str) -> String {
    let key = root.join("link.key");
    fs::write(&key, format!("{KEY}\n")).unwrap();
    format!(
        "\n[serve]\nlisten = \"127.0.0.1:{port}\"\nkey_file = \"{}\"\ncache_dir = \"{}\"\nidle_timeout = \"3s\"\n{extra}\n",
        key.display(),
        root.join("playback-cache").display()
    )
}

/// A site with a server, and its daemon.
pub struct Served {
    pub site: Site,
    pub port: u16,
    pub log: PathBuf,
    daemon: Option<Child>,
}

impl Served {
    /// A site on `target` with `spool` settings and `[serve]` plus `serve_extra`.
    pub fn new(test: &str, target: Target<'_>, spool: &str, serve_extra: &str) -> Served {
        let mut site = Site::new(test);
        site.configure(target, spool);
        let port = dead_port();
        let mut config = fs::read_to_string(&site.config).unwrap();
        config.push_str(&serve_table(&site.root, port, serve_extra));
        fs::write(&site.config, config).unwrap();
        let log = site.root.join("daemon.log");
        Served {
            site,
            port,
            log,
            daemon: None,
        }
    }

    /// Starts the daemon and waits until it answers `/healthz`.
    pub async fn start(&mut self) {
        self.spawn();
        for _ in 0..150 {
            if get(self.port, "/healthz", &[]).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the server never answered; log:\n{}", self.log_text());
    }

    /// Starts the daemon.
    pub fn spawn(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        self.daemon = Some(
            self.site
                .command(&["run"])
                .env("RUST_LOG", "info,recvault=debug")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let status = child.wait().unwrap();
            assert!(status.success(), "daemon: {status}\n{}", self.log_text());
        }
    }

    /// SIGKILL: nothing gets to finish.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    pub fn pid(&self) -> u32 {
        self.daemon.as_ref().unwrap().id()
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `recvault url NAME ARGS…`: the link's path and query.
    pub fn link(&self, name: &[u8], args: &[&str]) -> String {
        let mut cmd = self.site.command(&["url"]);
        cmd.args(args)
            .arg("--")
            .arg(std::ffi::OsStr::from_bytes(name));
        let out = cmd.output().unwrap();
        expect_code(&out, 0);
        let url = String::from_utf8(out.stdout).unwrap();
        let url = url.trim();
        let host = format!("://127.0.0.1:{}", self.port);
        let at = url.find(&host).unwrap_or_else(|| panic!("{url}"));
        url[at + host.len()..].to_string()
    }

    /// Recordings in `state`.
    pub fn count(&self, state: &str) -> u64 {
        self.site
            .states()
            .into_iter()
            .filter(|(s, _)| s.as_str() == state)
            .map(|(_, n)| n)
            .sum()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `GET target` on 127.0.0.1:`port` with `headers`, on a new connection.
pub async fn get(port: u16, target: &str, headers: &[(&str, &str)]) -> Result<Reply, String> {
    request(port, "GET", target, headers).await
}

/// One request with hyper's client.
pub async fn request(
    port: u16,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> Result<Reply, String> {
    request_from("127.0.0.1", port, method, target, headers).await
}

/// `GET target` from source address `from` (any of 127/8: Linux routes
/// them all to lo) to 127.0.0.1:`port`.
pub async fn get_from(
    from: &str,
    port: u16,
    target: &str,
    headers: &[(&str, &str)],
) -> Result<Reply, String> {
    request_from(from, port, "GET", target, headers).await
}

/// A connection from source address `from` to 127.0.0.1:`port`.
pub async fn connect_from(from: &str, port: u16) -> std::io::Result<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(format!("{from}:0").parse().unwrap())?;
    socket
        .connect(format!("127.0.0.1:{port}").parse().unwrap())
        .await
}

/// One request with hyper's client, from source address `from`.
pub async fn request_from(
    from: &str,
    port: u16,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> Result<Reply, String> {
    let stream = connect_from(from, port).await.map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let mut req = http::Request::builder()
        .method(method)
        .uri(target)
        .header("host", format!("127.0.0.1:{port}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Empty::<Bytes>::new()).map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(Reply {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: body.to_vec(),
    })
}

/// `GET` that must succeed at the HTTP level.
pub async fn fetch(port: u16, target: &str, headers: &[(&str, &str)]) -> Reply {
    get(port, target, headers)
        .await
        .unwrap_or_else(|e| panic!("GET {target}: {e}"))
}

/// A link's signature (`/r/<id>/<signature>[/<file name>][?exp=…]`).
pub fn signature_of(link: &str) -> String {
    let path = link.split('?').next().unwrap();
    let at = path
        .find("/r/")
        .unwrap_or_else(|| panic!("not a link: {link}"));
    path[at..].split('/').nth(3).unwrap().to_string()
}

/// `link` with one character of its signature changed.
pub fn tampered(link: &str) -> String {
    let sig = signature_of(link);
    let changed = if sig.starts_with('A') { "B" } else { "A" }.to_string() + &sig[1..];
    link.replacen(&sig, &changed, 1)
}

/// A link to a recording no ledger row names, signed with the test key
/// as links were before they named the recording itself.
pub fn unknown_link() -> String {
    let signer = recvault::serve::link::Signer::from_key(KEY.as_bytes());
    format!("/r/999999/{}", signer.sign_v1(999_999, None))
}

/// Audit lines the binary prints for `args`.
pub fn audit_lines(site: &Site, args: &[&str]) -> Vec<String> {
    let mut all = vec!["audit"];
    all.extend_from_slice(args);
    let out = site.recvault(&all);
    expect_code(&out, 0);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// A self-signed certificate for `ip` made by openssl in `dir`: the paths of
/// the certificate and its key. Marked as no CA, which rustls requires of a
/// server certificate it is told to trust directly.
pub fn tls_certificate(dir: &Path, ip: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=recvault-test"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE", "-addext"])
        .arg(format!("subjectAltName=IP:{ip}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl (scripts/install-deps.sh installs it)");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    (cert, key)
}
