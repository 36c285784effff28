//! `[serve] auth = "vicidial"`: HTTP Basic credentials checked against
//! VICIdial's `vicidial_users` (active, at or above `user_level`). A check
//! that passed is remembered for a minute, so a player's Range requests do
//! not each cost a database query and a bcrypt; a refusal is not remembered.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

use crate::vicidial::db::VicidialDb;
use crate::vicidial::users::{DenyReason, UserCheck};

/// How long a successful check is remembered.
const REMEMBER: Duration = Duration::from_secs(60);
/// Remembered checks at most (a flood of distinct users cannot grow it).
const REMEMBERED: usize = 1000;

/// The outcome of checking a request's credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Right password, active, level high enough: the user's name.
    Allowed(String),
    /// No (or unreadable) `Authorization: Basic` header.
    Missing,
    /// Refused; the reason goes to the audit trail, not to the client.
    Denied { user: String, reason: DenyReason },
    /// The database could not be asked.
    Unavailable,
}

/// Basic authentication against VICIdial's users.
pub struct Auth {
    db: Arc<VicidialDb>,
    min_level: u8,
    remembered: Mutex<HashMap<[u8; 32], (String, Instant)>>,
}

impl Auth {
    pub fn new(db: Arc<VicidialDb>, min_level: u8) -> Auth {
        Auth {
            db,
            min_level,
            remembered: Mutex::new(HashMap::new()),
        }
    }

    /// Checks an `Authorization` header value.
    pub async fn check(&self, header: Option<&str>) -> Verdict {
        let Some((user, password)) = header.and_then(basic) else {
            return Verdict::Missing;
        };
        let key: [u8; 32] = Sha256::new()
            .chain_update(user.as_bytes())
            .chain_update([0])
            .chain_update(password.as_bytes())
            .finalize()
            .into();
        if let Some(user) = self.remembered(&key) {
            return Verdict::Allowed(user);
        }
        match self.db.check_user(&user, &password, self.min_level).await {
            Ok(UserCheck::Allowed { .. }) => {
                self.remember(key, &user);
                Verdict::Allowed(user)
            }
            Ok(UserCheck::Denied(reason)) => Verdict::Denied { user, reason },
            Err(e) => {
                tracing::warn!("cannot check a listener's VICIdial credentials: {e}");
                Verdict::Unavailable
            }
        }
    }

    fn remembered(&self, key: &[u8; 32]) -> Option<String> {
        let map = self.remembered.lock().unwrap_or_else(|e| e.into_inner());
        map.get(key)
            .filter(|(_, at)| at.elapsed() < REMEMBER)
            .map(|(user, _)| user.clone())
    }

    fn remember(&self, key: [u8; 32], user: &str) {
        let mut map = self.remembered.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= REMEMBERED {
            map.retain(|_, (_, at)| at.elapsed() < REMEMBER);
        }
        if map.len() < REMEMBERED {
            map.insert(key, (user.to_string(), Instant::now()));
        }
    }
}

/// The user and password of a `Basic` header value.
fn basic(header: &str) -> Option<(String, String)> {
    let (scheme, encoded) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") || encoded.len() > 1024 {
        return None;
    }
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_headers() {
        let header = format!("Basic {}", STANDARD.encode("6666:pa:ss"));
        assert_eq!(basic(&header), Some(("6666".into(), "pa:ss".into())));
        assert_eq!(
            basic(&format!("basic  {}", STANDARD.encode("a:b"))),
            Some(("a".into(), "b".into()))
        );
        for bad in [
            "Bearer abc",
            "Basic !!!",
            "Basic",
            "",
            &format!("Basic {}", STANDARD.encode("nocolon")),
        ] {
            assert_eq!(basic(bad), None, "{bad}");
        }
        assert_eq!(basic(&format!("Basic {}", "A".repeat(5000))), None);
    }
}
