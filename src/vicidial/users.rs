//! HTTP Basic users checked against `vicidial_users`, the way VICIdial's
//! `user_authorization()` (www/vicidial/functions.php) checks admin logins.
//!
//! What VICIdial does, and recvault with it:
//! - user and password lose `|`, `` ` ``, `&`, `'`, `"`, `\`, `;` and spaces first;
//! - with `system_settings.pass_hash_enabled = '1'` it compares
//!   `vicidial_users.pass_hash` with bcrypt (`$2a$`, cost
//!   `system_settings.pass_cost`, default 2, zero-padded) of the password
//!   salted with the 16-character `system_settings.pass_key`
//!   (www/agc/bp.pl, Crypt::Eksblowfish::Bcrypt); `pass_hash` stores only the
//!   31 hash characters after the 29-character `$2a$CC$salt` prefix;
//!   otherwise it compares the plain `vicidial_users.pass`;
//! - the user must be `active = 'Y'` at the wanted `user_level`, and is
//!   locked out for 15 minutes after 10 failed logins
//!   (`failed_login_count >= 10` and `last_login_date` within 900 s);
//! - [`VicidialDb::log_in`] then records the attempt as
//!   `user_authorization()` does for `recording_log_redirect.php` (admin
//!   logins, `user_update` on): a refusal of a known user — wrong password,
//!   inactive, level too low — adds one to `failed_login_count` (and the
//!   `_today` counters, `failed_last_ip_today`, `failed_last_type_today =
//!   'aBAD'`) while under 10; at 10 with `last_login_date` older than 15
//!   minutes the count starts over at 1 and `last_login_date` is now (so
//!   the lock lasts 15 minutes from then); a locked user's attempt only adds
//!   to `failed_login_attempts_today` (`'aLOCK'`). A success sets
//!   `last_login_date`, `last_ip` and `failed_login_count = 0`. So a
//!   password guessed through recvault locks the user in VICIdial too.
//!
//! Differences, on purpose: recvault compares passwords exactly (VICIdial's
//! SQL comparison is case-insensitive through the table's collation), never
//! accepts an empty password, and writes each attempt's branch as one
//! UPDATE whose WHERE repeats the branch's condition (VICIdial reads, then
//! writes: two logins at once can both take the same branch there).

use base64::Engine as _;
use base64::alphabet::BCRYPT;
use base64::engine::general_purpose::{GeneralPurpose, NO_PAD};

use std::net::IpAddr;

use super::db::{DbError, ErrorKind, VicidialDb};

const BCRYPT_BASE64: GeneralPurpose = GeneralPurpose::new(&BCRYPT, NO_PAD);

/// Failed logins after which VICIdial locks a user out, and for how long.
const LOCK_ATTEMPTS: u8 = 10;
const LOCK_SECS: i64 = 900;

/// The outcome of a login check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserCheck {
    /// Right password, active, level high enough.
    Allowed {
        /// `vicidial_users.user_level`.
        user_level: u8,
    },
    /// Refused; the reason is for the audit trail, not for the client.
    Denied(DenyReason),
}

/// Why a login was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    /// No such user.
    UnknownUser,
    /// Wrong (or empty) password.
    WrongPassword,
    /// `active` is not `Y`.
    Inactive,
    /// `user_level` below the configured minimum.
    LevelTooLow,
    /// 10 failed logins within the last 15 minutes (VICIdial's lockout).
    LockedOut,
}

/// `system_settings`' password hashing.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Hashing {
    enabled: bool,
    key: String,
    cost: u8,
}

/// A `vicidial_users` row, as the check needs it.
struct UserRow {
    pass: String,
    pass_hash: Option<String>,
    user_level: u8,
    active: bool,
    failed_logins: u8,
    secs_since_last_login: Option<i64>,
}

impl VicidialDb {
    /// Checks HTTP Basic credentials against `vicidial_users`.
    pub async fn check_user(
        &self,
        user: &str,
        password: &str,
        min_level: u8,
    ) -> Result<UserCheck, DbError> {
        const ACTION: &str = "checking a VICIdial user";
        let (user, password) = (sanitize(user), sanitize(password));
        if user.is_empty() {
            return Ok(UserCheck::Denied(DenyReason::UnknownUser));
        }
        let (hashing, row) = self
            .run(ACTION, move |c| Box::pin(read_user(c, user)))
            .await?;
        let Some(row) = row else {
            return Ok(UserCheck::Denied(DenyReason::UnknownUser));
        };
        if row.failed_logins >= LOCK_ATTEMPTS
            && row.secs_since_last_login.is_none_or(|s| s < LOCK_SECS)
        {
            return Ok(UserCheck::Denied(DenyReason::LockedOut));
        }
        let right = match hashing {
            Some(h) if h.enabled => {
                let cost = h.cost;
                let key = h.key.clone();
                // Cheap at VICIdial's usual costs, but never on the async workers.
                let hashed =
                    tokio::task::spawn_blocking(move || vicidial_hash(&password, &key, cost))
                        .await
                        .map_err(|e| self.failure(ErrorKind::Retryable, ACTION, e.to_string()))?
                        .map_err(|problem| self.failure(ErrorKind::Permanent, ACTION, problem))?;
                row.pass_hash.is_some_and(|stored| same(&stored, &hashed))
            }
            _ => !password.is_empty() && same(&row.pass, &password),
        };
        Ok(if !right {
            UserCheck::Denied(DenyReason::WrongPassword)
        } else if !row.active {
            UserCheck::Denied(DenyReason::Inactive)
        } else if row.user_level < min_level {
            UserCheck::Denied(DenyReason::LevelTooLow)
        } else {
            UserCheck::Allowed {
                user_level: row.user_level,
            }
        })
    }
}

impl VicidialDb {
    /// Checks a login as [`VicidialDb::check_user`] does and records the
    /// attempt from `client` the way VICIdial's own login does, so failures
    /// count toward VICIdial's lockout. A record that cannot be written is
    /// logged; the check's answer stands.
    pub async fn log_in(
        &self,
        user: &str,
        password: &str,
        min_level: u8,
        client: IpAddr,
    ) -> Result<UserCheck, DbError> {
        let check = self.check_user(user, password, min_level).await?;
        let attempt = match check {
            UserCheck::Allowed { .. } => Attempt::Succeeded,
            UserCheck::Denied(DenyReason::UnknownUser) => return Ok(check),
            UserCheck::Denied(_) => Attempt::Failed,
        };
        let (user, ip) = (sanitize(user), client.to_string());
        let recorded = self
            .run("recording a login attempt in vicidial_users", move |c| {
                Box::pin(record_attempt(c, user, ip, attempt))
            })
            .await;
        if let Err(e) = recorded {
            tracing::warn!(
                "a login attempt could not be counted in VICIdial's vicidial_users (its lockout does not see it): {e}"
            );
        }
        Ok(check)
    }
}

/// What a login attempt did, as VICIdial records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    Succeeded,
    Failed,
}

/// `vicidial_users.last_ip` holds 15 characters (an IPv4 address).
const LAST_IP: usize = 15;

/// The UPDATEs of `user_authorization()`, each branch's condition in its
/// WHERE: the first that changes the row is the one VICIdial would take.
async fn record_attempt(
    c: &mut sqlx::MySqlConnection,
    user: String,
    ip: String,
    attempt: Attempt,
) -> Result<(), sqlx::Error> {
    if attempt == Attempt::Succeeded {
        let last_ip = if ip.len() <= LAST_IP { ip.as_str() } else { "" };
        sqlx::query(
            "UPDATE vicidial_users SET last_login_date = NOW(), last_ip = ?, failed_login_count = 0 \
             WHERE user = ?",
        )
        .bind(last_ip)
        .bind(&user)
        .execute(&mut *c)
        .await?;
        return Ok(());
    }
    let counted = sqlx::query(
        "UPDATE vicidial_users SET failed_login_count = failed_login_count + 1, \
             failed_login_attempts_today = failed_login_attempts_today + 1, \
             failed_login_count_today = failed_login_count_today + 1, \
             failed_last_ip_today = ?, failed_last_type_today = 'aBAD' \
         WHERE user = ? AND failed_login_count < 10",
    )
    .bind(&ip)
    .bind(&user)
    .execute(&mut *c)
    .await?;
    if counted.rows_affected() > 0 {
        return Ok(());
    }
    // Ten failures, but the lock (15 minutes from last_login_date) is over:
    // counting starts again, and a new lock would run from now.
    let restarted = sqlx::query(
        "UPDATE vicidial_users SET last_login_date = NOW(), failed_login_count = 1, \
             failed_last_ip_today = ?, failed_login_attempts_today = failed_login_attempts_today + 1, \
             failed_login_count_today = failed_login_count_today + 1, failed_last_type_today = 'aBAD' \
         WHERE user = ? AND failed_login_count >= 10 \
           AND (last_login_date IS NULL OR UNIX_TIMESTAMP(last_login_date) < UNIX_TIMESTAMP(NOW()) - 900)",
    )
    .bind(&ip)
    .bind(&user)
    .execute(&mut *c)
    .await?;
    if restarted.rows_affected() > 0 {
        return Ok(());
    }
    sqlx::query(
        "UPDATE vicidial_users SET failed_login_attempts_today = failed_login_attempts_today + 1, \
             failed_last_type_today = 'aLOCK' \
         WHERE user = ? AND failed_login_count >= 10",
    )
    .bind(&user)
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// The user lookup (bound: user); public for EXPLAIN in bench/vicidial.sh.
pub const USER_SQL: &str = "SELECT pass, pass_hash, user_level, active, failed_login_count, \
            UNIX_TIMESTAMP(NOW()) - UNIX_TIMESTAMP(last_login_date) \
     FROM vicidial_users WHERE user = ? LIMIT 1";

/// `pass, pass_hash, user_level, active, failed_login_count, seconds since last_login_date`.
type RawUser = (
    String,
    Option<String>,
    Option<u8>,
    Option<String>,
    Option<u8>,
    Option<i64>,
);

async fn read_user(
    c: &mut sqlx::MySqlConnection,
    user: String,
) -> Result<(Option<Hashing>, Option<UserRow>), sqlx::Error> {
    let hashing: Option<(Option<String>, Option<String>, Option<u8>)> = sqlx::query_as(
        "SELECT pass_hash_enabled, pass_key, pass_cost FROM system_settings LIMIT 1",
    )
    .fetch_optional(&mut *c)
    .await?;
    let row: Option<RawUser> = sqlx::query_as(USER_SQL)
        .bind(user)
        .fetch_optional(&mut *c)
        .await?;
    let hashing = hashing.map(|(enabled, key, cost)| Hashing {
        enabled: enabled.as_deref() == Some("1"),
        key: key.unwrap_or_default(),
        cost: cost.unwrap_or(2),
    });
    let row = row.map(|(pass, pass_hash, level, active, failed, since)| UserRow {
        pass,
        pass_hash: pass_hash.filter(|h| !h.is_empty()),
        user_level: level.unwrap_or(0),
        active: active.as_deref() == Some("Y"),
        failed_logins: failed.unwrap_or(0),
        secs_since_last_login: since,
    });
    Ok((hashing, row))
}

/// VICIdial's input filter: `preg_replace("/\||`|&|\'|\"|\\\\|;| /","",…)`.
pub fn sanitize(text: &str) -> String {
    text.chars()
        .filter(|c| !matches!(c, '|' | '`' | '&' | '\'' | '"' | '\\' | ';' | ' '))
        .collect()
}

/// What VICIdial stores in `vicidial_users.pass_hash` for `password`: the 31
/// hash characters of `$2a$` bcrypt with cost `cost` and the 16-byte salt
/// `pass_key`. Errors describe a `system_settings` VICIdial cannot use either.
pub fn vicidial_hash(password: &str, pass_key: &str, cost: u8) -> Result<String, String> {
    let salt: [u8; 16] = pass_key.as_bytes().try_into().map_err(|_| {
        "system_settings.pass_key must be 16 characters for password hashing".to_string()
    })?;
    if cost > 31 {
        return Err(format!(
            "system_settings.pass_cost {cost} is above bcrypt's 31"
        ));
    }
    // `$2a$`: the password plus a NUL, at most 72 bytes, "\0" if empty
    // (Crypt::Eksblowfish::Bcrypt::bcrypt_hash).
    let mut key = password.as_bytes().to_vec();
    key.push(0);
    key.truncate(72);
    let raw = bcrypt::bcrypt(u32::from(cost), salt, &key);
    Ok(BCRYPT_BASE64.encode(&raw[..23]))
}

/// Compares without stopping at the first difference.
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference values from VICIdial's own hasher: Perl's
    /// Crypt::Eksblowfish::Bcrypt (Debian libcrypt-eksblowfish-perl 0.009-3),
    /// `substr(bcrypt($pass, '$2a$'.$cost.'$'.en_base64($pass_key)), 29, 31)`,
    /// exactly as www/agc/bp.pl computes `pass_hash`. Cost 2 is VICIdial's
    /// default and below what most bcrypt libraries accept.
    const PERL_VECTORS: [(&str, &str, u8, &str); 5] = [
        (
            "test",
            "abcdefghijklmnop",
            2,
            "eS4u5gmGXpClnVdPnfIBf8ZNPN.BGoe",
        ),
        (
            "1234",
            "Ab3dEf7hIj9lMn0p",
            2,
            "m5skjHv1HXuowwdqHcy2eBMePSiiBn6",
        ),
        (
            "Sup3r-Pass_word",
            "0123456789abcdef",
            5,
            "u4LoiGBELMiZfkr8nq0jsOiRipw1YIW",
        ),
        ("", "ZZZZZZZZZZZZZZZZ", 2, "EE8bjPV2p0Dr/N4cnitjAP5u36XCqj."),
        // 80 characters: bcrypt reads the first 72 bytes only.
        (
            LONG,
            "abcdefghijklmnop",
            4,
            "ij3gaF7fClh.a6SxcfgP9r3btUiFIym",
        ),
    ];
    const LONG: &str =
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";

    #[test]
    fn matches_vicidials_perl_hasher() {
        for (password, key, cost, expected) in PERL_VECTORS {
            assert_eq!(
                vicidial_hash(password, key, cost).unwrap(),
                expected,
                "{password} {cost}"
            );
        }
        assert_ne!(
            vicidial_hash("test", "abcdefghijklmnop", 3).unwrap(),
            PERL_VECTORS[0].3
        );
    }

    #[test]
    fn bad_settings_are_explained() {
        assert!(
            vicidial_hash("x", "short", 2)
                .unwrap_err()
                .contains("pass_key")
        );
        assert!(
            vicidial_hash("x", "abcdefghijklmnop", 40)
                .unwrap_err()
                .contains("pass_cost")
        );
    }

    #[test]
    fn vicidial_input_filter() {
        assert_eq!(sanitize("a b|c`d&e'f\"g\\h;i"), "abcdefghi");
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }
}
