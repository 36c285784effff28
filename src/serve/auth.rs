//! VICIdial logins, for listen links (`[serve] auth = "vicidial"`, HTTP
//! Basic) and for anything else that logs VICIdial users in: checked
//! against `vicidial_users` and recorded there the way VICIdial's own login
//! records them, so failures count toward VICIdial's lockout
//! (`VicidialDb::log_in`); slowed per user name and per client address
//! inside recvault first (`throttle`). A check that passed is remembered
//! for a minute, so a player's Range requests do not each cost a database
//! query and a bcrypt; a refusal is never remembered.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

use super::throttle::Logins;
use crate::metrics::{Metrics, inc};
use crate::vicidial::db::VicidialDb;
use crate::vicidial::users::{DenyReason, UserCheck};

/// How long a successful check is remembered.
const REMEMBER: Duration = Duration::from_secs(60);
/// Remembered checks at most (a flood of distinct users cannot grow it).
const REMEMBERED: usize = 1000;

/// The outcome of checking a login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Right password, active, level high enough: the user's name.
    Allowed(String),
    /// No (or unreadable) `Authorization: Basic` header.
    Missing,
    /// Refused; the reason goes to the audit trail, not to the client.
    Denied { user: String, reason: DenyReason },
    /// Not checked: too many failures from this user or address lately;
    /// the next attempt may come after `wait`.
    Throttled { user: String, wait: Duration },
    /// The database could not be asked.
    Unavailable,
}

/// VICIdial logins, throttled.
pub struct Auth {
    db: Arc<VicidialDb>,
    min_level: u8,
    metrics: Arc<Metrics>,
    remembered: Mutex<HashMap<[u8; 32], (String, u8, Instant)>>,
    /// Failed logins, per name and per address: shared with whatever
    /// else logs people in on the same surface.
    logins: Arc<Logins>,
}

impl Auth {
    /// Logins of users at or above `min_level`.
    pub fn new(db: Arc<VicidialDb>, min_level: u8, metrics: Arc<Metrics>) -> Auth {
        Auth::sharing(db, min_level, metrics, Arc::new(Logins::new()))
    }

    /// [`Auth::new`], counting failures in `logins` (the console's, which
    /// its local accounts count in too).
    pub fn sharing(
        db: Arc<VicidialDb>,
        min_level: u8,
        metrics: Arc<Metrics>,
        logins: Arc<Logins>,
    ) -> Auth {
        Auth {
            db,
            min_level,
            metrics,
            remembered: Mutex::new(HashMap::new()),
            logins,
        }
    }

    /// Checks an `Authorization` header value sent from `client`.
    pub async fn check_basic(&self, header: Option<&str>, client: IpAddr) -> Verdict {
        match header.and_then(basic) {
            Some((user, password)) => self.log_in(&user, &password, client).await,
            None => Verdict::Missing,
        }
    }

    /// Checks a user name and password typed at `client`: remembered, else
    /// throttled, else asked of VICIdial's database (which counts it).
    pub async fn log_in(&self, user: &str, password: &str, client: IpAddr) -> Verdict {
        self.log_in_level(user, password, client).await.0
    }

    /// [`Auth::log_in`], with the user's `user_level` when allowed (the
    /// console maps it to a role).
    pub async fn log_in_level(
        &self,
        user: &str,
        password: &str,
        client: IpAddr,
    ) -> (Verdict, Option<u8>) {
        let key: [u8; 32] = Sha256::new()
            .chain_update(user.as_bytes())
            .chain_update([0])
            .chain_update(password.as_bytes())
            .finalize()
            .into();
        if let Some((user, level)) = self.remembered(&key) {
            return (Verdict::Allowed(user), Some(level));
        }
        if let Some(wait) = self.logins.wait(user, client) {
            inc(&self.metrics.logins_throttled);
            let user = user.to_string();
            return (Verdict::Throttled { user, wait }, None);
        }
        match self.db.log_in(user, password, self.min_level, client).await {
            Ok(UserCheck::Allowed { user_level }) => {
                self.logins.succeeded(user);
                self.remember(key, user, user_level);
                (Verdict::Allowed(user.to_string()), Some(user_level))
            }
            Ok(UserCheck::Denied(reason)) => {
                self.logins.failed(user, client);
                let user = user.to_string();
                (Verdict::Denied { user, reason }, None)
            }
            Err(e) => {
                tracing::warn!("cannot check a listener's VICIdial credentials: {e}");
                (Verdict::Unavailable, None)
            }
        }
    }

    fn remembered(&self, key: &[u8; 32]) -> Option<(String, u8)> {
        let map = self.remembered.lock().unwrap_or_else(|e| e.into_inner());
        map.get(key)
            .filter(|(_, _, at)| at.elapsed() < REMEMBER)
            .map(|(user, level, _)| (user.clone(), *level))
    }

    fn remember(&self, key: [u8; 32], user: &str, level: u8) {
        let mut map = self.remembered.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= REMEMBERED {
            map.retain(|_, (_, _, at)| at.elapsed() < REMEMBER);
        }
        if map.len() < REMEMBERED {
            map.insert(key, (user.to_string(), level, Instant::now()));
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
