//! Local console accounts: a name, a role, and the password's argon2id
//! hash (memory-hard; 19 MiB, 2 passes, as OWASP advises), kept in the
//! ledger as a PHC string. Checking an unknown name costs a hash too, so
//! timing does not tell which names exist.

use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;

use super::Role;

const M_COST: u32 = 19 * 1024;
const T_COST: u32 = 2;
const P_COST: u32 = 1;
const OUT_LEN: usize = 32;

/// The shortest password an account may have.
pub const MIN_PASSWORD: usize = 12;

fn argon2(m: u32, t: u32, p: u32) -> Option<Argon2<'static>> {
    let params = Params::new(m, t, p, Some(OUT_LEN)).ok()?;
    Some(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// The PHC string of `password` with a fresh random salt.
pub fn hash(password: &str) -> Result<String, String> {
    let salt: [u8; 16] = super::random();
    let mut out = [0u8; OUT_LEN];
    argon2(M_COST, T_COST, P_COST)
        .ok_or("argon2 parameters")?
        .hash_password_into(password.as_bytes(), &salt, &mut out)
        .map_err(|e| format!("argon2: {e}"))?;
    Ok(format!(
        "$argon2id$v=19$m={M_COST},t={T_COST},p={P_COST}${}${}",
        STANDARD_NO_PAD.encode(salt),
        STANDARD_NO_PAD.encode(out)
    ))
}

/// True if `password` hashes to `phc` (a string [`hash`] made). `None`:
/// no account; a hash is computed anyway and the answer is false.
pub fn verify(password: &str, phc: Option<&str>) -> bool {
    let parsed = phc.and_then(parse);
    let (m, t, p, salt, expected) = parsed.unwrap_or((M_COST, T_COST, P_COST, vec![0; 16], vec![]));
    let Some(a) = argon2(m, t, p) else {
        return false;
    };
    let mut out = [0u8; OUT_LEN];
    if a.hash_password_into(password.as_bytes(), &salt, &mut out)
        .is_err()
    {
        return false;
    }
    // Constant time over the hash.
    expected.len() == OUT_LEN
        && expected
            .iter()
            .zip(out.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

type Parsed = (u32, u32, u32, Vec<u8>, Vec<u8>);

fn parse(phc: &str) -> Option<Parsed> {
    let mut parts = phc.split('$');
    let (_, alg, version, params, salt, hash) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if alg != "argon2id" || version != "v=19" || parts.next().is_some() {
        return None;
    }
    let mut m = None;
    let mut t = None;
    let mut p = None;
    for kv in params.split(',') {
        let (k, v) = kv.split_once('=')?;
        let v: u32 = v.parse().ok()?;
        match k {
            "m" => m = Some(v),
            "t" => t = Some(v),
            "p" => p = Some(v),
            _ => return None,
        }
    }
    // A tampered row must not make a login cost a gigabyte.
    let (m, t, p) = (m?, t?, p?);
    if m > 256 * 1024 || t > 10 || p > 4 {
        return None;
    }
    let salt = STANDARD_NO_PAD.decode(salt).ok()?;
    let hash = STANDARD_NO_PAD.decode(hash).ok()?;
    Some((m, t, p, salt, hash))
}

/// Refuses a name the console could not show or compare safely.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not an account name: 1 to 64 of letters, digits, . _ - @"
        ))
    }
}

/// Refuses a password too short to stand a guess.
pub fn check_password(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD {
        return Err(format!(
            "the password must have at least {MIN_PASSWORD} characters"
        ));
    }
    Ok(())
}

/// A stored role, read back.
pub fn role_of(text: &str) -> Option<Role> {
    Role::parse(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify("correct horse battery", Some(&h)));
        assert!(!verify("correct horse batterz", Some(&h)));
        assert!(!verify("correct horse battery", None));
        assert!(!verify(
            "x",
            Some("$argon2id$v=19$m=99999999,t=2,p=1$AAAA$AAAA")
        ));
        assert_ne!(hash("same").unwrap(), hash("same").unwrap(), "salted");
        assert!(check_name("alice.o-k@x").is_ok());
        assert!(check_name("<b>").is_err());
        assert!(check_password("short").is_err());
    }
}
