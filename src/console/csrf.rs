//! Proofs that a form was served by the console to this session: an HMAC of
//! the form's action and the hour it was served in, keyed by a secret of the
//! session (or, before login, by the console's secret and the pre-login
//! cookie). A proof is good for the form it was made for, in its hour and
//! the next; a proof from another session, another form or a forger fails.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Proofs are made per this many seconds; the previous window's still pass.
const WINDOW: i64 = 3600;

fn mac(key: &[u8], action: &str, window: i64) -> Hmac<Sha256> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(&window.to_be_bytes());
    m.update(action.as_bytes());
    m
}

/// The proof for a form posting to `action`, made at `now`.
pub fn token(key: &[u8], action: &str, now: i64) -> String {
    hex::encode(
        mac(key, action, now.div_euclid(WINDOW))
            .finalize()
            .into_bytes(),
    )
}

/// True if `proof` was made by [`token`] for `action` in this window or the last.
pub fn check(key: &[u8], action: &str, proof: Option<&str>, now: i64) -> bool {
    let Some(bytes) = proof.and_then(|p| hex::decode(p).ok()) else {
        return false;
    };
    let window = now.div_euclid(WINDOW);
    [window, window - 1]
        .into_iter()
        .any(|w| mac(key, action, w).verify_slice(&bytes).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_are_bound_to_key_form_and_time() {
        let (k, other) = ([7u8; 32], [8u8; 32]);
        let t = token(&k, "/console/holds/place", 10_000);
        assert!(check(&k, "/console/holds/place", Some(&t), 10_000));
        assert!(check(&k, "/console/holds/place", Some(&t), 10_000 + WINDOW));
        assert!(!check(
            &k,
            "/console/holds/place",
            Some(&t),
            10_000 + 2 * WINDOW
        ));
        assert!(!check(&k, "/console/holds/release", Some(&t), 10_000));
        assert!(!check(&other, "/console/holds/place", Some(&t), 10_000));
        assert!(!check(&k, "/console/holds/place", None, 10_000));
        assert!(!check(&k, "/console/holds/place", Some("zz"), 10_000));
    }
}
