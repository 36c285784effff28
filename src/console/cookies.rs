//! The console's cookies: the session and the pre-login proof, both
//! `HttpOnly; Secure; SameSite=Strict` and limited to `/console/` (a
//! browser keeps a `Secure` cookie over plain HTTP only on loopback, the
//! one place `check` lets the console run without TLS).

use http::HeaderMap;
use http::header::COOKIE;

/// The session cookie's name.
pub const SESSION: &str = "recvault_session";
/// The pre-login cookie, which the login form's proof is bound to.
pub const LOGIN: &str = "recvault_login";

/// The value of cookie `name` in the request, if sent once and well formed
/// (hex, as every value the console sets is).
pub fn get<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut found = None;
    for value in headers.get_all(COOKIE) {
        let Ok(text) = value.to_str() else { continue };
        for pair in text.split(';') {
            if let Some((k, v)) = pair.trim().split_once('=')
                && k == name
            {
                if found.is_some() {
                    // Sent twice (a cookie planted beside ours): trust neither.
                    return None;
                }
                found = Some(v);
            }
        }
    }
    found.filter(|v| v.len() <= 128 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A `Set-Cookie` value for `name=value`, living `max_age` seconds.
pub fn set(name: &str, value: &str, max_age: u64) -> String {
    format!("{name}={value}; Path=/console/; Max-Age={max_age}; HttpOnly; Secure; SameSite=Strict")
}

/// A `Set-Cookie` value that removes `name`.
pub fn clear(name: &str) -> String {
    format!("{name}=; Path=/console/; Max-Age=0; HttpOnly; Secure; SameSite=Strict")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn cookies_are_read_once_and_set_strictly() {
        let mut h = HeaderMap::new();
        h.insert(
            COOKIE,
            HeaderValue::from_static("a=1; recvault_session=ab12"),
        );
        assert_eq!(get(&h, SESSION), Some("ab12"));
        h.append(COOKIE, HeaderValue::from_static("recvault_session=cd34"));
        assert_eq!(get(&h, SESSION), None, "two values: neither");
        let mut h = HeaderMap::new();
        h.insert(COOKIE, HeaderValue::from_static("recvault_session=<x>"));
        assert_eq!(get(&h, SESSION), None);
        let s = set(SESSION, "ab", 60);
        for flag in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/console/"] {
            assert!(s.contains(flag), "{s}");
        }
    }
}
