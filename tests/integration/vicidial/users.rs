//! `auth = "vicidial"`: HTTP Basic users against `vicidial_users`, plain and
//! bcrypt-hashed passwords as VICIdial stores them.

use recvault::vicidial::users::{DenyReason, UserCheck};

use crate::vicidial_fixture;

const PASS_KEY: &str = "Ab3dEf7hIj9lMn0p";
/// `pass_hash` of "1234" with PASS_KEY at cost 2, from VICIdial's Perl
/// hasher (www/agc/bp.pl; see the unit test's vectors).
const HASH_1234: &str = "m5skjHv1HXuowwdqHcy2eBMePSiiBn6";

async fn users(fx: &mut super::Fixture, hashing: bool) {
    fx.exec(&format!(
        "INSERT INTO system_settings (version, pass_hash_enabled, pass_key, pass_cost) \
         VALUES ('2.14b0.5', '{}', '{PASS_KEY}', 2)",
        if hashing { 1 } else { 0 }
    ))
    .await;
    // With hashing on, VICIdial's converter may blank `pass`; 6666 keeps a
    // stale plain one that must no longer count.
    let (pass, hash) = if hashing {
        ("", HASH_1234)
    } else {
        ("1234", "")
    };
    fx.exec(&format!(
        "INSERT INTO vicidial_users (user, pass, pass_hash, full_name, user_level, active, \
             failed_login_count, last_login_date) VALUES \
         ('admin', '{pass}', '{hash}', 'Admin', 9, 'Y', 0, NOW()), \
         ('agent', '{pass}', '{hash}', 'Agent', 1, 'Y', 0, NOW()), \
         ('gone', '{pass}', '{hash}', 'Former', 9, 'N', 0, NOW()), \
         ('locked', '{pass}', '{hash}', 'Locked', 9, 'Y', 10, NOW() - INTERVAL 5 MINUTE), \
         ('unlocked', '{pass}', '{hash}', 'Lock over', 9, 'Y', 10, NOW() - INTERVAL 20 MINUTE), \
         ('6666', 'stale', '{hash}', 'Stale', 9, 'Y', 0, NOW())"
    ))
    .await;
}

async fn check(fx: &super::Fixture, user: &str, pass: &str) -> UserCheck {
    fx.db.check_user(user, pass, 8).await.unwrap()
}

#[tokio::test]
async fn plain_passwords() {
    let Some(mut fx) = vicidial_fixture!("users_plain") else {
        return;
    };
    users(&mut fx, false).await;
    assert_eq!(
        check(&fx, "admin", "1234").await,
        UserCheck::Allowed { user_level: 9 }
    );
    // VICIdial strips spaces and quotes from what was typed.
    assert_eq!(
        check(&fx, "admin", " 12'34").await,
        UserCheck::Allowed { user_level: 9 }
    );
    assert_eq!(
        check(&fx, "6666", "stale").await,
        UserCheck::Allowed { user_level: 9 }
    );
    assert_eq!(
        check(&fx, "admin", "12345").await,
        UserCheck::Denied(DenyReason::WrongPassword)
    );
    assert_eq!(
        check(&fx, "admin", "").await,
        UserCheck::Denied(DenyReason::WrongPassword)
    );
    assert_eq!(
        check(&fx, "agent", "1234").await,
        UserCheck::Denied(DenyReason::LevelTooLow)
    );
    assert_eq!(
        check(&fx, "gone", "1234").await,
        UserCheck::Denied(DenyReason::Inactive)
    );
    assert_eq!(
        check(&fx, "nobody", "1234").await,
        UserCheck::Denied(DenyReason::UnknownUser)
    );
    assert_eq!(
        check(&fx, "locked", "1234").await,
        UserCheck::Denied(DenyReason::LockedOut)
    );
    assert_eq!(
        check(&fx, "unlocked", "1234").await,
        UserCheck::Allowed { user_level: 9 }
    );
    // Nothing is written: VICIdial's failure counters are left alone.
    let failed = fx
        .text("SELECT CAST(failed_login_count AS CHAR) FROM vicidial_users WHERE user = 'admin'")
        .await;
    assert_eq!(failed.as_deref(), Some("0"));
}

#[tokio::test]
async fn bcrypt_hashed_passwords() {
    let Some(mut fx) = vicidial_fixture!("users_hashed") else {
        return;
    };
    users(&mut fx, true).await;
    assert_eq!(
        check(&fx, "admin", "1234").await,
        UserCheck::Allowed { user_level: 9 }
    );
    assert_eq!(
        check(&fx, "admin", "1235").await,
        UserCheck::Denied(DenyReason::WrongPassword)
    );
    // The plain column no longer counts once hashing is on.
    assert_eq!(
        check(&fx, "6666", "stale").await,
        UserCheck::Denied(DenyReason::WrongPassword)
    );
    assert_eq!(
        check(&fx, "6666", "1234").await,
        UserCheck::Allowed { user_level: 9 }
    );
    assert_eq!(
        check(&fx, "agent", "1234").await,
        UserCheck::Denied(DenyReason::LevelTooLow)
    );
    assert_eq!(
        check(&fx, "locked", "1234").await,
        UserCheck::Denied(DenyReason::LockedOut)
    );
    // A pass_key VICIdial could not hash with is an operator's problem.
    fx.exec("UPDATE system_settings SET pass_key = 'short'")
        .await;
    let e = fx.db.check_user("admin", "1234", 8).await.unwrap_err();
    assert!(
        !e.is_retryable() && e.to_string().contains("pass_key"),
        "{e}"
    );
}

/// `failed_login_count|failed_login_attempts_today|failed_last_ip_today|failed_last_type_today|last_ip|last_login_date within a minute`.
async fn counters(fx: &mut super::Fixture, user: &str) -> String {
    fx.text(&format!(
        "SELECT CONCAT_WS('|', failed_login_count, failed_login_attempts_today, failed_last_ip_today, \
             failed_last_type_today, last_ip, ABS(TIMESTAMPDIFF(SECOND, last_login_date, NOW())) < 60) \
         FROM vicidial_users WHERE user = '{user}'"
    ))
    .await
    .unwrap()
}

async fn log_in(fx: &super::Fixture, user: &str, pass: &str, ip: std::net::IpAddr) -> UserCheck {
    fx.db.log_in(user, pass, 8, ip).await.unwrap()
}

#[tokio::test]
async fn logins_are_counted_as_vicidials_own_login_counts_them() {
    let Some(mut fx) = vicidial_fixture!("users_counted") else {
        return;
    };
    users(&mut fx, false).await;
    let v4: std::net::IpAddr = "10.0.0.77".parse().unwrap();
    let v6: std::net::IpAddr = "2001:db8:85a3::8a2e:370:7334".parse().unwrap();
    // Failures count up; a success resets the count and notes the address.
    for _ in 0..2 {
        assert_eq!(
            log_in(&fx, "admin", "nope", v4).await,
            UserCheck::Denied(DenyReason::WrongPassword)
        );
    }
    assert_eq!(counters(&mut fx, "admin").await, "2|2|10.0.0.77|aBAD||1");
    assert_eq!(
        log_in(&fx, "admin", "1234", v4).await,
        UserCheck::Allowed { user_level: 9 }
    );
    assert_eq!(
        counters(&mut fx, "admin").await,
        "0|2|10.0.0.77|aBAD|10.0.0.77|1"
    );
    // last_ip holds 15 characters: an IPv6 address is left out, not cut.
    assert_eq!(
        log_in(&fx, "admin", "1234", v6).await,
        UserCheck::Allowed { user_level: 9 }
    );
    assert_eq!(counters(&mut fx, "admin").await, "0|2|10.0.0.77|aBAD||1");
    // A level too low, with the right password, counts as VICIdial counts it.
    log_in(&fx, "agent", "1234", v6).await;
    assert_eq!(
        counters(&mut fx, "agent").await,
        "1|1|2001:db8:85a3::8a2e:370:7334|aBAD||1"
    );
    // Locked (10 failures, 5 minutes ago): refused, only the attempt noted.
    assert_eq!(
        log_in(&fx, "locked", "1234", v4).await,
        UserCheck::Denied(DenyReason::LockedOut)
    );
    assert_eq!(counters(&mut fx, "locked").await, "10|1||aLOCK||0");
    // Ten failures, but the lock is over: counting starts again at 1, and
    // a new lock would last 15 minutes from now.
    assert_eq!(
        log_in(&fx, "unlocked", "nope", v4).await,
        UserCheck::Denied(DenyReason::WrongPassword)
    );
    assert_eq!(counters(&mut fx, "unlocked").await, "1|1|10.0.0.77|aBAD||1");
    // No such user: nothing to count.
    assert_eq!(
        log_in(&fx, "nobody", "x", v4).await,
        UserCheck::Denied(DenyReason::UnknownUser)
    );
}
