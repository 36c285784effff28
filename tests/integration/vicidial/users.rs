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
