//! Keyed pseudonyms for the personal data of an erased recording: its
//! phone number, lead id, file name (which carries the number) and an object
//! key holding that name. Each is an HMAC-SHA256 under a local key, so
//! nothing readable is left, yet the same person's later request — its
//! number normalized, then keyed the same way — still finds what was
//! erased. Confirmation tokens for erase previews are keyed the same way.
//! Pure computation: where the key lives is the caller's business.

use std::os::unix::ffi::OsStrExt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::Recording;
use super::key::{display_name, encode_name};
use super::phone::normalize_lenient;

/// What every pseudonym starts with, so people and scripts can tell one.
pub const PREFIX: &str = "erased:";

/// Hex digits of the HMAC kept in a pseudonym (96 bits: no two values of
/// one ledger collide in practice, and none can be guessed back without the key).
const KEPT: usize = 24;

/// The secret the pseudonyms are keyed with.
#[derive(Clone)]
pub struct PseudonymKey([u8; 32]);

impl std::fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PseudonymKey(..)")
    }
}

impl PseudonymKey {
    pub fn new(bytes: [u8; 32]) -> PseudonymKey {
        PseudonymKey(bytes)
    }

    /// The key from its file text (64 hex digits, surrounding space ignored).
    pub fn from_hex(text: &str) -> Result<PseudonymKey, String> {
        let bytes = hex::decode(text.trim()).map_err(|e| format!("not hex: {e}"))?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "not 32 bytes (64 hex digits)".to_string())?;
        Ok(PseudonymKey(bytes))
    }

    /// The key as its file holds it.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// HMAC-SHA256 of `parts` under the key, for the use `domain` names;
    /// each part length-prefixed, so no two part lists collide.
    pub fn mac(&self, domain: &str, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        for part in std::iter::once(domain.as_bytes()).chain(parts.iter().copied()) {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    fn pseudonym(&self, domain: &str, value: &[u8]) -> String {
        let mac = hex::encode(self.mac(domain, &[value]));
        format!("{PREFIX}{}", &mac[..KEPT])
    }

    /// Names the key without revealing it (16 hex digits of an HMAC), so
    /// boxes can tell whether they share one.
    pub fn fingerprint(&self) -> String {
        hex::encode(self.mac("fingerprint", &[]))[..16].to_string()
    }

    /// A phone number's pseudonym; give it in `recording::phone` form.
    pub fn phone(&self, normalized: &str) -> String {
        self.pseudonym("phone", normalized.as_bytes())
    }

    /// A lead id's pseudonym.
    pub fn lead(&self, lead_id: &str) -> String {
        self.pseudonym("lead", lead_id.as_bytes())
    }

    /// A file name's pseudonym.
    pub fn name(&self, name: &[u8]) -> Vec<u8> {
        self.pseudonym("name", name).into_bytes()
    }

    /// An object key's pseudonym (keys are unique, and so are these).
    pub fn object_key(&self, key: &str) -> String {
        self.pseudonym("object-key", key.as_bytes())
    }
}

/// What an erased recording's personal data becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replacements {
    pub name: Vec<u8>,
    /// Its spool directory, with the pseudonym for the name.
    pub path: Vec<u8>,
    pub phone: Option<String>,
    pub lead_id: Option<String>,
    /// The object key's pseudonym where the key holds the name or the
    /// number; else the key itself (it says nothing about the caller).
    pub object_key: Option<String>,
    /// Texts that identify the caller in free text (the name as people and
    /// keys write it, the path, the key, the number): a history line or an
    /// audit reason containing one is redacted.
    pub identifying: Vec<String>,
}

impl PseudonymKey {
    /// What `rec`'s personal data becomes when it is erased. Values that
    /// already are pseudonyms stay (an erasure finished twice changes nothing).
    pub fn replacements(&self, rec: &Recording) -> Replacements {
        let keep = |v: &str| is_pseudonym(v.as_bytes());
        let name = if is_pseudonym(&rec.name) {
            rec.name.clone()
        } else {
            self.name(&rec.name)
        };
        let mut path = rec
            .path
            .parent()
            .map(|d| d.as_os_str().as_bytes().to_vec())
            .unwrap_or_default();
        path.push(b'/');
        path.extend_from_slice(&name);
        let phone = rec.phone.as_deref().map(normalize_lenient);
        let encoded = encode_name(&rec.name);
        let mut identifying = vec![
            String::from_utf8_lossy(&rec.name).into_owned(),
            display_name(&rec.name),
            encoded.clone(),
            rec.path.display().to_string(),
        ];
        let key_names_caller = |k: &str| {
            k.contains(&encoded)
                || phone
                    .as_deref()
                    .is_some_and(|p| p.len() >= 5 && k.contains(p))
        };
        let object_key = rec.object_key.as_deref().map(|k| match k {
            k if keep(k) || !key_names_caller(k) => k.to_string(),
            k => {
                identifying.push(k.to_string());
                self.object_key(k)
            }
        });
        identifying.extend(phone.clone().filter(|p| p.len() >= 5 && !keep(p)));
        identifying.retain(|s| !s.is_empty() && !keep(s));
        identifying.sort();
        identifying.dedup();
        Replacements {
            name,
            path,
            phone: phone.map(|p| if keep(&p) { p } else { self.phone(&p) }),
            lead_id: rec
                .lead_id
                .as_deref()
                .map(|l| if keep(l) { l.to_string() } else { self.lead(l) }),
            object_key,
            identifying,
        }
    }
}

/// True if `value` is a pseudonym (what an erasure left in place of a value).
pub fn is_pseudonym(value: &[u8]) -> bool {
    value.starts_with(PREFIX.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_value_gets_the_same_pseudonym_and_nothing_readable_is_left() {
        let key = PseudonymKey::new([7; 32]);
        let p = key.phone("5551234567");
        assert_eq!(p, key.phone("5551234567"));
        assert!(
            p.starts_with(PREFIX) && p.len() == PREFIX.len() + KEPT,
            "{p}"
        );
        assert!(!p.contains("5551234567") && is_pseudonym(p.as_bytes()));
        // Domains keep a number and a lead id of the same digits apart.
        assert_ne!(key.phone("12345"), key.lead("12345"));
        assert_ne!(
            key.name(b"20260301-101500_5551234567-all.wav"),
            key.name(b"20260301-101500_5551234567-in.wav")
        );
        // Another key, other pseudonyms.
        assert_ne!(PseudonymKey::new([8; 32]).phone("5551234567"), p);
        // Length prefixes: ("ab", "c") is not ("a", "bc").
        assert_ne!(key.mac("t", &[b"ab", b"c"]), key.mac("t", &[b"a", b"bc"]));
    }

    #[test]
    fn the_key_file_text_round_trips_and_bad_text_is_refused() {
        let key = PseudonymKey::new([0xab; 32]);
        let back = PseudonymKey::from_hex(&format!("{}\n", key.to_hex())).unwrap();
        assert_eq!(back.phone("1"), key.phone("1"));
        assert!(PseudonymKey::from_hex("abcd").is_err());
        assert!(PseudonymKey::from_hex(&"zz".repeat(32)).is_err());
        assert_eq!(format!("{key:?}"), "PseudonymKey(..)", "never printed");
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // RFC 4231 test case 2, through the same HMAC (no domain framing).
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
