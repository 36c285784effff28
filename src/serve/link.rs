//! Listen links: `/r/<id>/<signature>/<file name>[?exp=<unix seconds>]`.
//!
//! The signature is HMAC-SHA256 (RFC 2104) under the key in `[serve]
//! key_file`, base64url without padding (43 characters), over the
//! recording's ledger id, the recording's own identity and the expiry
//! (`recvault-link-v2`). The identity is the original's SHA-256 once it is
//! known (from compression on, so every link written into VICIdial has it),
//! before that the settled file: its size, mtime and name. At serve time
//! the ledger row the id names must still have that identity, so a link
//! can never play another recording, whatever happens to the ledger (an
//! older copy put back, a rebuild, a hand-edited row): without the key a
//! link can be neither guessed nor altered, and with a row that is not its
//! recording it does not verify.
//!
//! The file name at the end is for VICIdial's GDPR export, which names each
//! ZIP entry by finding `recording_log.filename` in the location. It is not
//! signed and not checked beyond its syntax: the id and the signature alone
//! decide what plays, so changing it gets nothing else.
//!
//! Links from before the identity was signed (`recvault-link-v1`: id and
//! expiry only, no file name) keep working for the ids the ledger had
//! handed out when it learned v2 (migration 0010 records the mark): ids are
//! never handed out twice, so such an id names its own recording or none.

use std::fmt;
use std::net::IpAddr;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::error::Error;
use crate::recording::Recording;
use crate::recording::key::encode_name;

/// The shortest key accepted, in bytes.
pub const MIN_KEY: usize = 32;
/// A signature's length in characters.
pub const SIGNATURE_LEN: usize = 43;
/// The longest file name a link's path accepts (encoded).
const MAX_NAME: usize = 1024;

/// Signs and checks links. Debug never shows the key.
pub struct Signer {
    key: Vec<u8>,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Signer(<redacted>)")
    }
}

/// A link's parts, as a request names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link<'a> {
    pub id: i64,
    pub expires: Option<i64>,
    pub signature: &'a str,
    /// Whether the path ends with a file name (every link since v2 does).
    pub named: bool,
}

/// Why a link was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not a link, the signature does not match, or the ledger row the id
    /// names is not the recording the link was issued for.
    BadSignature,
    /// Signed, but its expiry has passed.
    Expired,
}

/// What a link binds besides the id: the recording itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// The original's SHA-256 (hex), known from compression on.
    Sha256(String),
    /// Before that: the settled file's size, mtime and name.
    File {
        size: u64,
        mtime_ns: i64,
        name: Vec<u8>,
    },
}

impl Identity {
    /// What a link issued for `rec` now binds: the SHA-256 if known.
    pub fn of(rec: &Recording) -> Identity {
        match &rec.sha256 {
            Some(sha) => Identity::Sha256(sha.to_ascii_lowercase()),
            None => Identity::File {
                size: rec.identity.size,
                mtime_ns: rec.identity.mtime_ns,
                name: rec.name.clone(),
            },
        }
    }

    /// Every identity a link for `rec` may have been issued under: the
    /// SHA-256, and the file as it settled (a link issued before compression).
    pub fn candidates(rec: &Recording) -> Vec<Identity> {
        let file = Identity::File {
            size: rec.identity.size,
            mtime_ns: rec.identity.mtime_ns,
            name: rec.name.clone(),
        };
        match Identity::of(rec) {
            sha @ Identity::Sha256(_) => vec![sha, file],
            file => vec![file],
        }
    }

    fn text(&self) -> String {
        match self {
            Identity::Sha256(sha) => format!("sha256:{sha}"),
            Identity::File {
                size,
                mtime_ns,
                name,
            } => format!("file:{size}:{mtime_ns}:{}", hex::encode(name)),
        }
    }
}

impl Signer {
    /// Reads the key: the file's bytes without trailing whitespace, at least
    /// [`MIN_KEY`] of them. Errors name the file and the config key, never
    /// the key itself.
    pub fn load(path: &Path) -> Result<Signer, Error> {
        Signer::load_as(path, "serve.key_file")
    }

    /// [`Signer::load`], naming the file as `what` (a config key or option).
    pub fn load_as(path: &Path, what: &str) -> Result<Signer, Error> {
        let bytes = std::fs::read(path).map_err(|e| {
            Error::Local(format!(
                "{what} {}: cannot read the link key: {e}",
                path.display()
            ))
        })?;
        let trimmed = bytes.trim_ascii_end();
        if trimmed.len() < MIN_KEY {
            return Err(Error::Local(format!(
                "{what} {}: the link key must be at least {MIN_KEY} bytes (e.g. `head -c 48 /dev/urandom | base64 > {}`)",
                path.display(),
                path.display()
            )));
        }
        Ok(Signer::from_key(trimmed))
    }

    pub fn from_key(key: &[u8]) -> Signer {
        Signer { key: key.to_vec() }
    }

    /// Whether two signers hold the same key (compared in constant time).
    pub fn same_key(&self, other: &Signer) -> bool {
        same(&self.key, &other.key)
    }

    /// The signature of recording `id`'s link, bound to `identity` (and
    /// expiring at `expires`).
    pub fn sign(&self, id: i64, identity: &Identity, expires: Option<i64>) -> String {
        let message = format!(
            "recvault-link-v2\n{id}\n{}\n{}",
            identity.text(),
            expires.map(|e| e.to_string()).unwrap_or_default()
        );
        URL_SAFE_NO_PAD.encode(hmac_sha256(&self.key, message.as_bytes()))
    }

    /// The signature links carried before v2: the id and the expiry only.
    pub fn sign_v1(&self, id: i64, expires: Option<i64>) -> String {
        let message = format!(
            "recvault-link-v1\n{id}\n{}",
            expires.map(|e| e.to_string()).unwrap_or_default()
        );
        URL_SAFE_NO_PAD.encode(hmac_sha256(&self.key, message.as_bytes()))
    }

    /// The path (and query) of `rec`'s link, ending with its file name.
    pub fn path(&self, rec: &Recording, expires: Option<i64>) -> String {
        let signature = self.sign(rec.id, &Identity::of(rec), expires);
        let path = format!("/r/{}/{signature}/{}", rec.id, encode_name(&rec.name));
        with_expiry(path, expires)
    }

    /// The same link without the file name (where the name would make it
    /// too long for `recording_log.location`).
    pub fn path_unnamed(&self, rec: &Recording, expires: Option<i64>) -> String {
        let signature = self.sign(rec.id, &Identity::of(rec), expires);
        with_expiry(format!("/r/{}/{signature}", rec.id), expires)
    }

    /// Checks `link` at time `now` against `rec`, the ledger row its id
    /// names (None: no such row): the signature first, in constant time,
    /// over every identity the row may have had when the link was issued;
    /// then the expiry. A v1 link verifies only without a file name and for
    /// an id below `v1_below` (see the module's notes).
    pub fn check(
        &self,
        link: &Link<'_>,
        rec: Option<&Recording>,
        v1_below: i64,
        now: i64,
    ) -> Result<(), Refusal> {
        let given = link.signature.as_bytes();
        let mut expected: Vec<String> = Vec::with_capacity(3);
        if let Some(rec) = rec.filter(|r| r.id == link.id) {
            for identity in Identity::candidates(rec) {
                expected.push(self.sign(link.id, &identity, link.expires));
            }
            if !link.named && link.id < v1_below {
                expected.push(self.sign_v1(link.id, link.expires));
            }
        }
        // Always three signatures computed and compared: an answer's time
        // does not tell which ids exist or what kind of link they take.
        let mut matched = false;
        for i in 0..3 {
            match expected.get(i) {
                Some(e) => matched |= same(e.as_bytes(), given),
                None => {
                    let decoy = self.sign_v1(-1, link.expires);
                    std::hint::black_box(same(decoy.as_bytes(), given));
                }
            }
        }
        if !matched || given.len() != SIGNATURE_LEN {
            return Err(Refusal::BadSignature);
        }
        match link.expires {
            Some(e) if e < now => Err(Refusal::Expired),
            _ => Ok(()),
        }
    }
}

fn with_expiry(path: String, expires: Option<i64>) -> String {
    match expires {
        None => path,
        Some(e) => format!("{path}?exp={e}"),
    }
}

/// What the ledger keeps of a revoked link: a digest of its signature (a
/// revoked link is harmless, but a signature is never stored as such).
pub fn revocation_digest(signature: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"recvault-revoked-link\n");
    h.update(signature.as_bytes());
    hex::encode(h.finalize())
}

/// Parses `/r/<id>/<signature>[/<file name>]` and an optional
/// `exp=<unix seconds>` query; None for anything else (which is refused
/// like a bad signature). The file name must be one path segment of URL
/// characters and `%XX` escapes.
pub fn parse<'a>(path: &'a str, query: Option<&'a str>) -> Option<Link<'a>> {
    let rest = path.strip_prefix("/r/")?;
    let mut parts = rest.splitn(3, '/');
    let (id, signature, name) = (parts.next()?, parts.next()?, parts.next());
    let digits = |s: &str| !s.is_empty() && s.len() <= 18 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(id) || signature.len() != SIGNATURE_LEN {
        return None;
    }
    if !signature
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return None;
    }
    if name.is_some_and(|n| !file_name_segment(n)) {
        return None;
    }
    let expires = match query {
        None | Some("") => None,
        Some(q) => {
            let e = q.strip_prefix("exp=")?;
            if !digits(e) {
                return None;
            }
            Some(e.parse().ok()?)
        }
    };
    Some(Link {
        id: id.parse().ok()?,
        expires,
        signature,
        named: name.is_some(),
    })
}

/// Parses a whole link as printed or written into VICIdial
/// (`http(s)://host[:port]/r/…[?exp=…]`), or only its path and query.
pub fn parse_url(text: &str) -> Option<Link<'_>> {
    let text = text.trim();
    let start = text.find("/r/")?;
    let head = &text[..start];
    if !head.is_empty() {
        let authority = head
            .strip_prefix("http://")
            .or_else(|| head.strip_prefix("https://"))?;
        if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
            return None;
        }
    }
    let target = &text[start..];
    match target.split_once('?') {
        Some((path, query)) => parse(path, Some(query)),
        None => parse(target, None),
    }
}

/// One path segment of RFC 3986 `pchar`s: unreserved, sub-delims, `:`,
/// `@` and `%XX` escapes; not empty, not `.` or `..`, at most [`MAX_NAME`].
fn file_name_segment(s: &str) -> bool {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > MAX_NAME || s == "." || s == ".." {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = |j: usize| b.get(j).is_some_and(|c| c.is_ascii_hexdigit());
                if !(hex(i + 1) && hex(i + 2)) {
                    return false;
                }
                i += 3;
            }
            c if c.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&c) => i += 1,
            _ => return false,
        }
    }
    true
}

/// HMAC-SHA256 (RFC 2104) of `message` under `key`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|b| b ^ byte);
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

/// Compares without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Where links start: `[serve] public_url`, else `http(s)://` this server's
/// `VARserver_ip` (what VICIdial's admin pages know how to rewrite), else the
/// listen address or the host name, with the listen port. None without `[serve]`.
pub fn base_url(config: &Config) -> Option<String> {
    let serve = config.serve.as_ref()?;
    if let Some(url) = &serve.public_url {
        return Some(url.clone());
    }
    let scheme = if serve.tls.is_some() { "https" } else { "http" };
    let host = match (&config.vicidial, serve.listen.ip()) {
        (Some(v), _) => v.db.server_ip.clone(),
        (None, ip) if !ip.is_unspecified() => match ip {
            IpAddr::V6(v6) => format!("[{v6}]"),
            v4 => v4.to_string(),
        },
        (None, _) => config.daemon.host.clone(),
    };
    Some(format!("{scheme}://{host}:{}", serve.listen.port()))
}

#[cfg(test)]
mod tests;
