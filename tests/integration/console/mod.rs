//! The compliance console end to end: the real daemon serving `/console/`
//! on 127.0.0.1, local accounts made with the real `recvault console user
//! add`, and a small cookie-keeping HTTP client that submits the forms the
//! pages serve (`security`, `changes`); Debian's chromium driven by
//! playwright-core through every page (`browser`).

mod browser;
mod changes;
mod exports;
mod security;
mod vicidial;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

use crate::common::*;
use crate::serve::{Reply, Served, audit_lines, connect_from};

pub const PASSWORD: &str = "correct horse battery staple";
pub const NAME: &[u8] = b"20260301-101500_5551234567-all.wav";
pub const SPOOL: &str = "settle = \"1s\"\nupload_after = \"0s\"\nrescan = \"1s\"";

/// Adds local account `name` with `role` through the CLI (password on stdin).
pub fn add_user(site: &Site, name: &str, role: &str) {
    let mut child = site
        .command(&["console", "user", "add", name, "--role", role])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    expect_code(&out, 0);
}

/// A served site with the console on, four local accounts (alice and dave
/// admins, bob compliance, carol listener) and one archived recording.
pub async fn console_site(test: &str, console_extra: &str) -> (Served, Vec<u8>) {
    let mut s = Served::new(
        test,
        Target::Local,
        SPOOL,
        &format!("\n[console]\nenabled = true\n{console_extra}\n"),
    );
    // A busy machine may take seconds over a login's hash: a connection
    // idle that long is not the client's fault here.
    s.site.set_option("serve", "idle_timeout", "\"60s\"");
    for (n, r) in [
        ("alice", "admin"),
        ("dave", "admin"),
        ("bob", "compliance"),
        ("carol", "listener"),
    ] {
        add_user(&s.site, n, r);
    }
    let original = wav(4.0, 17);
    put_recording(&s.site.spool, NAME, &original, Duration::from_secs(60));
    s.start().await;
    let site = &s.site;
    wait_for(Duration::from_secs(60), "the recording archived", || {
        site.states()
            .get(&recvault::recording::State::LocalDeleted)
            .copied()
            == Some(1)
    });
    (s, original)
}

/// A browser without JavaScript: keeps cookies, sends forms.
pub struct Client {
    pub port: u16,
    pub from: String,
    /// The server's address (127.0.0.1 unless a test's box has its own).
    pub to: String,
    /// HTTPS, trusting this PEM certificate, when set.
    pub ca: Option<std::path::PathBuf>,
    pub cookies: BTreeMap<String, String>,
}

impl Client {
    pub fn new(port: u16) -> Client {
        Client {
            port,
            from: "127.0.0.1".into(),
            to: "127.0.0.1".into(),
            ca: None,
            cookies: BTreeMap::new(),
        }
    }

    /// One request; cookies sent and kept.
    pub async fn send(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> Reply {
        let stream = if self.to == "127.0.0.1" {
            connect_from(&self.from, self.port).await
        } else {
            tokio::net::TcpStream::connect((self.to.as_str(), self.port)).await
        }
        .unwrap();
        let stream: Box<dyn Io> = match &self.ca {
            None => Box::new(stream),
            Some(ca) => Box::new(tls(ca, &self.to).connect_to(stream).await),
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let mut req = http::Request::builder()
            .method(method)
            .uri(target)
            .header("host", format!("{}:{}", self.to, self.port));
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            req = req.header("cookie", jar.join("; "));
        }
        if body.is_some() {
            req = req.header("content-type", "application/x-www-form-urlencoded");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        let (parts, body) = resp.into_parts();
        for c in parts.headers.get_all("set-cookie") {
            let text = c.to_str().unwrap();
            let (pair, _) = text.split_once(';').unwrap_or((text, ""));
            let (k, v) = pair.split_once('=').unwrap();
            if v.is_empty() || text.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_string(), v.to_string());
            }
        }
        let body = body.collect().await.unwrap().to_bytes();
        Reply {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body: body.to_vec(),
        }
    }

    pub async fn get(&mut self, target: &str) -> Reply {
        self.send("GET", target, &[], None).await
    }

    /// POSTs `fields` to `action` as they are (the caller adds any proof).
    pub async fn post(&mut self, action: &str, fields: &[(&str, &str)]) -> Reply {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        self.send("POST", action, &[], Some(body)).await
    }

    /// Submits the form of `page` that posts to `action`: its hidden
    /// fields (the proof among them) and `fields`.
    pub async fn submit(&mut self, page: &Reply, action: &str, fields: &[(&str, &str)]) -> Reply {
        let hidden = hidden_of(&page.text(), action)
            .unwrap_or_else(|| panic!("no form to {action} on the page:\n{}", page.text()));
        let mut all: Vec<(&str, &str)> = hidden
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        all.extend_from_slice(fields);
        self.post(action, &all).await
    }

    /// Logs in; the answer to the login form.
    pub async fn log_in(&mut self, user: &str, password: &str) -> Reply {
        let page = self.get("/console/login").await;
        assert_eq!(page.status, 200, "{}", page.text());
        self.submit(
            &page,
            "/console/login",
            &[("user", user), ("password", password)],
        )
        .await
    }
}

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// A TLS client for server `name` trusting only the certificate in `ca`.
fn tls(ca: &std::path::Path, name: &str) -> Tls {
    use tokio_rustls::rustls::{self, pki_types::CertificateDer, pki_types::pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Tls {
        connector: tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)),
        name: rustls::pki_types::ServerName::try_from(name.to_string()).unwrap(),
    }
}

struct Tls {
    connector: tokio_rustls::TlsConnector,
    name: tokio_rustls::rustls::pki_types::ServerName<'static>,
}

impl Tls {
    async fn connect_to(
        self,
        tcp: tokio::net::TcpStream,
    ) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
        self.connector.connect(self.name, tcp).await.unwrap()
    }
}

/// The hidden fields of the form that posts to `action`, unescaped.
pub fn hidden_of(html: &str, action: &str) -> Option<Vec<(String, String)>> {
    let at = html.find(&format!("action=\"{action}\""))?;
    let form = &html[at..at + html[at..].find("</form>")?];
    let unescape = |s: &str| {
        s.replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    };
    let mut out = Vec::new();
    for piece in form.split("<input type=\"hidden\" name=\"").skip(1) {
        let (name, rest) = piece.split_once('"')?;
        let value = rest.split_once("value=\"")?.1.split_once('"')?.0;
        out.push((unescape(name), unescape(value)));
    }
    Some(out)
}

/// The proof in the form that posts to `action`.
pub fn csrf_of(html: &str, action: &str) -> Option<String> {
    let at = html.find(&format!("action=\"{action}\""))?;
    let rest = &html[at..];
    let v = rest.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
    Some(
        rest[v..]
            .chars()
            .take_while(|c| c.is_ascii_hexdigit())
            .collect(),
    )
}

/// A client logged in as `user`.
pub async fn logged_in(port: u16, user: &str) -> Client {
    let mut c = Client::new(port);
    let r = c.log_in(user, PASSWORD).await;
    assert_eq!(r.status, 303, "{user}: {}", r.text());
    c
}
