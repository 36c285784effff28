//! `[serve]`: the daemon's HTTP server for listen links, health and metrics —
//! where it listens, with which TLS files and link key, who may connect, and
//! how playback is paced and cached.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use super::validate::Validator;

/// Where the link key is unless `[serve] key_file` says otherwise (the
/// Debian package creates it, 0640 root:recvault).
pub const DEFAULT_LINK_KEY: &str = "/etc/recvault/link.key";

/// The longest a presigned URL handed out by a redirect may stay valid:
/// anyone holding it can fetch the object, from anywhere, with no login.
pub const MAX_PRESIGN_TTL: Duration = Duration::from_secs(300);

/// `[serve]`, validated: present only when `listen` is set.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    /// Certificate chain and private key (PEM) for HTTPS; `None`: plain HTTP.
    pub tls: Option<TlsFiles>,
    /// The HMAC key that signs listen links.
    pub key_file: PathBuf,
    /// The start of every link (`https://dialer1.example:8089`), without a
    /// trailing slash; `None`: this server's `VARserver_ip` (or host name)
    /// and the listen port.
    pub public_url: Option<String>,
    /// How long a presigned store URL a playback redirects to stays valid
    /// (at most [`MAX_PRESIGN_TTL`], and never past the link's expiry).
    pub presign_ttl: Duration,
    /// Redirect to a presigned store URL where the object is the original
    /// (stored as is); off: recvault streams every recording itself.
    pub redirect: bool,
    /// Who may fetch recordings at all.
    pub allow: Vec<Cidr>,
    /// Who may read `/healthz` and `/metrics` (no signature needed).
    pub metrics_allow: Vec<Cidr>,
    /// `Some(level)`: HTTP Basic against VICIdial's users at or above it.
    pub auth_user_level: Option<u8>,
    /// A connection on which nothing moves for this long is closed (a
    /// client that stopped reading, an idle keep-alive, a slow header).
    pub idle_timeout: Duration,
    /// Requests per second one client address may make (twice that in a burst).
    pub client_rate: u32,
    /// Connections open at once; more are refused until one closes.
    pub max_connections: usize,
    /// Decoded recordings kept on disk for playback, and how many bytes of them.
    pub cache_dir: PathBuf,
    pub cache_size: u64,
}

/// HTTPS certificate chain and key, PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// An address range, `10.0.0.0/8` or `::1/128` (a bare address is /32 or /128).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// True if `ip` is in the range (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let (whole, rest) = ((prefix / 8) as usize, prefix % 8);
    if a[..whole] != b[..whole] {
        return false;
    }
    rest == 0 || {
        let mask = 0xffu8 << (8 - rest);
        a[whole] & mask == b[whole] & mask
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(text: &str) -> Result<Cidr, String> {
        let bad = || format!("`{text}` is not an address range; use e.g. \"10.0.0.0/8\", \"::1\"");
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().map_err(|_| bad())?)),
            None => (text.trim(), None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(bad());
        }
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Debug for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Loopback and the private ranges: who may play recordings by default.
pub const DEFAULT_ALLOW: [&str; 7] = [
    "127.0.0.0/8",
    "::1/128",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "fc00::/7",
    "fe80::/10",
];

/// `[serve]` as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServe {
    listen: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    key_file: Option<PathBuf>,
    public_url: Option<String>,
    presign_ttl: Option<String>,
    redirect: Option<bool>,
    allow: Option<Vec<String>>,
    metrics_allow: Option<Vec<String>>,
    auth: Option<String>,
    user_level: Option<u8>,
    idle_timeout: Option<String>,
    client_rate: Option<u32>,
    max_connections: Option<usize>,
    cache_dir: Option<PathBuf>,
    cache_size: Option<String>,
}

/// Validates `[serve]`; `None` without `listen`. `staging` is where the
/// playback cache goes by default; `vicidial` says whether `auth =
/// "vicidial"` has a database to ask.
pub(super) fn parse_section(
    v: &Validator<'_>,
    raw: RawServe,
    staging: &Path,
    vicidial: bool,
) -> Result<Option<ServeConfig>, ConfigError> {
    let Some(listen) = raw.listen.filter(|l| !l.trim().is_empty()) else {
        return Ok(None);
    };
    let listen: SocketAddr = listen.trim().parse().map_err(|_| {
        v.invalid(
            "serve.listen",
            format!("`{listen}` is not an address and port; use e.g. \"0.0.0.0:8089\""),
        )
    })?;
    let tls = tls_files(v, raw.tls_cert, raw.tls_key)?;
    let auth_user_level = auth_user_level(v, raw.auth.as_deref(), raw.user_level, vicidial)?;
    if auth_user_level.is_some() && tls.is_none() && !listen.ip().is_loopback() {
        return Err(v.invalid(
            "serve.auth",
            format!(
                "\"vicidial\" over plain HTTP on {listen} would send VICIdial passwords in clear: set serve.tls_cert and serve.tls_key, or listen on 127.0.0.1 only (behind a TLS proxy)"
            ),
        ));
    }
    let (presign_ttl, idle_timeout) =
        durations(v, raw.presign_ttl.as_deref(), raw.idle_timeout.as_deref())?;
    Ok(Some(ServeConfig {
        listen,
        tls,
        key_file: v.absolute(
            "serve.key_file",
            raw.key_file.unwrap_or_else(|| DEFAULT_LINK_KEY.into()),
        )?,
        public_url: raw.public_url.map(|u| public_url(v, &u)).transpose()?,
        presign_ttl,
        redirect: raw.redirect.unwrap_or(true),
        allow: ranges(v, "serve.allow", raw.allow, &DEFAULT_ALLOW)?,
        metrics_allow: ranges(
            v,
            "serve.metrics_allow",
            raw.metrics_allow,
            &["127.0.0.0/8", "::1/128"],
        )?,
        auth_user_level,
        idle_timeout,
        client_rate: positive(v, "serve.client_rate", raw.client_rate.unwrap_or(50))?,
        max_connections: positive(
            v,
            "serve.max_connections",
            raw.max_connections.unwrap_or(256),
        )?,
        cache_dir: match raw.cache_dir {
            Some(p) => v.absolute("serve.cache_dir", p)?,
            None => staging.join("playback"),
        },
        cache_size: v.bytes("serve.cache_size", raw.cache_size.as_deref(), "512MiB")?,
    }))
}

/// `serve.presign_ttl` (1s to 5m) and `serve.idle_timeout` (at least 1s).
fn durations(
    v: &Validator<'_>,
    presign_ttl: Option<&str>,
    idle_timeout: Option<&str>,
) -> Result<(Duration, Duration), ConfigError> {
    let presign_ttl = v.duration("serve.presign_ttl", presign_ttl, "5m")?;
    if presign_ttl < Duration::from_secs(1) || presign_ttl > MAX_PRESIGN_TTL {
        return Err(v.invalid(
            "serve.presign_ttl",
            "must be from 1s to 5m: a presigned URL plays the recording for anyone who has it",
        ));
    }
    let idle_timeout = v.duration("serve.idle_timeout", idle_timeout, "60s")?;
    if idle_timeout < Duration::from_secs(1) {
        return Err(v.invalid("serve.idle_timeout", "must be at least 1s"));
    }
    Ok((presign_ttl, idle_timeout))
}

/// `serve.tls_cert` and `serve.tls_key`: both or neither.
fn tls_files(
    v: &Validator<'_>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
) -> Result<Option<TlsFiles>, ConfigError> {
    match (cert, key) {
        (None, None) => Ok(None),
        (Some(cert), Some(key)) => Ok(Some(TlsFiles {
            cert: v.absolute("serve.tls_cert", cert)?,
            key: v.absolute("serve.tls_key", key)?,
        })),
        (Some(_), None) => Err(v.invalid("serve.tls_key", "is required with tls_cert")),
        (None, Some(_)) => Err(v.invalid("serve.tls_cert", "is required with tls_key")),
    }
}

/// `serve.auth` and `serve.user_level`: the lowest VICIdial user level let
/// in, or `None` when nobody is asked to log in.
fn auth_user_level(
    v: &Validator<'_>,
    auth: Option<&str>,
    user_level: Option<u8>,
    vicidial: bool,
) -> Result<Option<u8>, ConfigError> {
    let level = match auth {
        None | Some("none") => None,
        Some("vicidial") if !vicidial => {
            return Err(v.invalid(
                "serve.auth",
                "\"vicidial\" needs [vicidial] enabled = true (users are checked in its database)",
            ));
        }
        Some("vicidial") => Some(user_level.unwrap_or(7)),
        Some(other) => {
            return Err(v.invalid(
                "serve.auth",
                format!("`{other}` is not an authentication; use \"vicidial\" or \"none\""),
            ));
        }
    };
    if level.is_some_and(|l| !(1..=9).contains(&l)) {
        return Err(v.invalid("serve.user_level", "must be from 1 to 9"));
    }
    Ok(level)
}

fn positive<T: PartialEq + Default>(v: &Validator<'_>, key: &str, n: T) -> Result<T, ConfigError> {
    if n == T::default() {
        return Err(v.invalid(key, "must be at least 1"));
    }
    Ok(n)
}

fn ranges(
    v: &Validator<'_>,
    key: &str,
    raw: Option<Vec<String>>,
    default: &[&str],
) -> Result<Vec<Cidr>, ConfigError> {
    let texts = raw.unwrap_or_else(|| default.iter().map(|s| s.to_string()).collect());
    texts
        .iter()
        .enumerate()
        .map(|(i, t)| t.parse().map_err(|e| v.invalid(&format!("{key}[{i}]"), e)))
        .collect()
}

/// A link is `public_url` + `/r/<id>/<43-character signature>`, and
/// `recording_log.location` holds 255 characters.
const MAX_PUBLIC_URL: usize = 180;

fn public_url(v: &Validator<'_>, text: &str) -> Result<String, ConfigError> {
    let url = text.trim().trim_end_matches('/');
    let ok_scheme = url.starts_with("http://") || url.starts_with("https://");
    let host = url.split_once("://").map(|(_, rest)| rest).unwrap_or("");
    if !ok_scheme || host.is_empty() || host.starts_with('/') {
        return Err(v.invalid(
            "serve.public_url",
            format!("`{text}` must be an http:// or https:// URL with a host"),
        ));
    }
    if url.contains(['?', '#', ' ', '\'', '"']) || url.chars().any(char::is_control) {
        return Err(v.invalid(
            "serve.public_url",
            "must not hold a query, a fragment, spaces or quotes",
        ));
    }
    if url.len() > MAX_PUBLIC_URL {
        return Err(v.invalid(
            "serve.public_url",
            format!(
                "is {} characters; links must fit recording_log.location (255), so at most {MAX_PUBLIC_URL}",
                url.len()
            ),
        ));
    }
    Ok(url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_contain_what_they_should() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(cidr("10.0.0.0/8").contains(ip("10.255.1.2")));
        assert!(!cidr("10.0.0.0/8").contains(ip("11.0.0.1")));
        assert!(cidr("172.16.0.0/12").contains(ip("172.31.255.255")));
        assert!(!cidr("172.16.0.0/12").contains(ip("172.32.0.0")));
        assert!(cidr("::1").contains(ip("::1")));
        assert!(!cidr("::1").contains(ip("::2")));
        // IPv4 clients on a dual-stack socket.
        assert!(cidr("127.0.0.0/8").contains(ip("::ffff:127.0.0.1")));
        assert!(cidr("0.0.0.0/0").contains(ip("203.0.113.9")));
        assert!(!cidr("0.0.0.0/0").contains(ip("2001:db8::1")));
        assert!(cidr("fc00::/7").contains(ip("fd12::1")));
        for bad in ["10.0.0.0/33", "::/129", "10.0.0", "x/8", "10.0.0.0/-1", ""] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }
}
