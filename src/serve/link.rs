//! Listen links: `/r/<id>/<signature>[?exp=<unix seconds>]`, where the
//! signature is HMAC-SHA256 (RFC 2104) under the key in `[serve] key_file`
//! over the recording's ledger id and the expiry, base64url without padding
//! (43 characters). Without the key a link can be neither guessed nor
//! altered; ids are checked only after the signature, so they cannot be
//! enumerated either.

use std::fmt;
use std::net::IpAddr;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::error::Error;

/// The shortest key accepted, in bytes.
pub const MIN_KEY: usize = 32;
/// A signature's length in characters.
pub const SIGNATURE_LEN: usize = 43;

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
}

/// Why a link was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not `/r/<id>/<43 characters>`, or the signature does not match.
    BadSignature,
    /// Signed, but its expiry has passed.
    Expired,
}

impl Signer {
    /// Reads the key: the file's bytes without trailing whitespace, at least
    /// [`MIN_KEY`] of them. Errors name the file and the config key, never
    /// the key itself.
    pub fn load(path: &Path) -> Result<Signer, Error> {
        let bytes = std::fs::read(path).map_err(|e| {
            Error::Local(format!(
                "serve.key_file {}: cannot read the link key: {e}",
                path.display()
            ))
        })?;
        let trimmed = bytes.trim_ascii_end();
        if trimmed.len() < MIN_KEY {
            return Err(Error::Local(format!(
                "serve.key_file {}: the link key must be at least {MIN_KEY} bytes (e.g. `head -c 48 /dev/urandom | base64 > {}`)",
                path.display(),
                path.display()
            )));
        }
        Ok(Signer::from_key(trimmed))
    }

    pub fn from_key(key: &[u8]) -> Signer {
        Signer { key: key.to_vec() }
    }

    /// The signature of recording `id`'s link (expiring at `expires`).
    pub fn sign(&self, id: i64, expires: Option<i64>) -> String {
        let message = format!(
            "recvault-link-v1\n{id}\n{}",
            expires.map(|e| e.to_string()).unwrap_or_default()
        );
        URL_SAFE_NO_PAD.encode(hmac_sha256(&self.key, message.as_bytes()))
    }

    /// The path (and query) of recording `id`'s link.
    pub fn path(&self, id: i64, expires: Option<i64>) -> String {
        let signature = self.sign(id, expires);
        match expires {
            None => format!("/r/{id}/{signature}"),
            Some(e) => format!("/r/{id}/{signature}?exp={e}"),
        }
    }

    /// Checks a link at time `now`: the signature first (in constant time),
    /// then the expiry.
    pub fn check(&self, link: &Link<'_>, now: i64) -> Result<(), Refusal> {
        let expected = self.sign(link.id, link.expires);
        if link.signature.len() != SIGNATURE_LEN
            || !same(expected.as_bytes(), link.signature.as_bytes())
        {
            return Err(Refusal::BadSignature);
        }
        match link.expires {
            Some(e) if e < now => Err(Refusal::Expired),
            _ => Ok(()),
        }
    }
}

/// Parses `/r/<id>/<signature>` and an optional `exp=<unix seconds>` query;
/// None for anything else (which is refused like a bad signature).
pub fn parse<'a>(path: &'a str, query: Option<&'a str>) -> Option<Link<'a>> {
    let rest = path.strip_prefix("/r/")?;
    let (id, signature) = rest.split_once('/')?;
    let digits = |s: &str| !s.is_empty() && s.len() <= 18 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(id) || signature.len() != SIGNATURE_LEN || signature.contains('/') {
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
    })
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
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test cases 1, 2 and 6 (a key longer than a block).
        let cases: [(&[u8], &[u8], &str); 3] = [
            (
                &[0x0b; 20],
                b"Hi There",
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            ),
            (
                b"Jefe",
                b"what do ya want for nothing?",
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First",
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            ),
        ];
        for (key, message, expected) in cases {
            assert_eq!(hex::encode(hmac_sha256(key, message)), expected);
        }
    }

    #[test]
    fn links_verify_and_every_change_is_refused() {
        let signer = Signer::from_key(&[7u8; 32]);
        let other = Signer::from_key(&[8u8; 32]);
        let path = signer.path(42, None);
        let link = parse(&path, None).unwrap();
        assert_eq!(link.id, 42);
        assert_eq!(link.signature.len(), SIGNATURE_LEN);
        assert_eq!(signer.check(&link, 0), Ok(()));
        assert_eq!(other.check(&link, 0), Err(Refusal::BadSignature));
        // Another id with the same signature, a changed character.
        let moved = Link { id: 43, ..link };
        assert_eq!(signer.check(&moved, 0), Err(Refusal::BadSignature));
        let mut sig = link.signature.to_string();
        sig.replace_range(0..1, if sig.starts_with('A') { "B" } else { "A" });
        let altered = Link {
            signature: &sig,
            ..link
        };
        assert_eq!(signer.check(&altered, 0), Err(Refusal::BadSignature));
        // Expiring links: the expiry is signed too.
        let path = signer.path(42, Some(1000));
        let (p, q) = path.split_once('?').unwrap();
        let link = parse(p, Some(q)).unwrap();
        assert_eq!(signer.check(&link, 999), Ok(()));
        assert_eq!(signer.check(&link, 1001), Err(Refusal::Expired));
        let extended = Link {
            expires: Some(99_999),
            ..link
        };
        assert_eq!(signer.check(&extended, 1001), Err(Refusal::BadSignature));
        let forever = Link {
            expires: None,
            ..link
        };
        assert_eq!(signer.check(&forever, 0), Err(Refusal::BadSignature));
    }

    #[test]
    fn malformed_links_do_not_parse() {
        let sig = "a".repeat(SIGNATURE_LEN);
        assert!(parse(&format!("/r/1/{sig}"), None).is_some());
        for (path, query) in [
            (format!("/r/1/{}", "a".repeat(42)), None),
            (format!("/r/1/{}", "a".repeat(44)), None),
            (format!("/r/-1/{sig}"), None),
            (format!("/r//{sig}"), None),
            (format!("/r/1x/{sig}"), None),
            (format!("/r/{}/{sig}", "9".repeat(19)), None),
            (format!("/r/1/{sig}/x"), None),
            (format!("/x/1/{sig}"), None),
            (format!("/r/1/{sig}"), Some("exp=-5")),
            (format!("/r/1/{sig}"), Some("exp=12&x=1")),
            (format!("/r/1/{sig}"), Some("foo=1")),
        ] {
            assert!(parse(&path, query).is_none(), "{path} {query:?}");
        }
    }

    #[test]
    fn short_or_missing_keys_are_explained_without_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("link.key");
        std::fs::write(&key, "tooshortkey\n").unwrap();
        let e = Signer::load(&key).unwrap_err().to_string();
        assert!(
            e.contains("serve.key_file") && e.contains("at least 32"),
            "{e}"
        );
        assert!(!e.contains("tooshortkey"), "{e}");
        std::fs::write(&key, format!("{}\n", "k".repeat(64))).unwrap();
        let s = Signer::load(&key).unwrap();
        assert!(!format!("{s:?}").contains("kkkk"));
        assert!(Signer::load(&dir.path().join("none")).is_err());
    }
}
