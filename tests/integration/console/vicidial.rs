//! VICIdial users log in to the console with VICIdial's own password check
//! and lockout, their `user_level` mapped to a role by `[console]`; a level
//! below `listener_level`, an inactive user or a wrong password is refused
//! and counted in `vicidial_users` as VICIdial counts it.

use super::*;
use crate::vicidial::dialer::{DUE_NOW, Dialer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vicidial_users_log_in_with_the_role_of_their_level() {
    let Some(mut d) = Dialer::on("console_vicidial", Target::Local, DUE_NOW).await else {
        return;
    };
    d.serve("\n[console]\nenabled = true\n");
    d.fx.exec("INSERT INTO system_settings (version, pass_hash_enabled) VALUES ('2.14', '0')")
        .await;
    d.fx.exec(
        "INSERT INTO vicidial_users (user, pass, user_level, active) VALUES \
         ('6666', 'Sup3rvisor', 9, 'Y'), ('qa1', 'Qa-pass-1', 8, 'Y'), ('sup7', 'Sup-pass-7', 7, 'Y'), \
         ('agent1', 'pw1', 1, 'Y'), ('gone', 'pw2', 9, 'N')",
    )
    .await;
    d.start();
    let port = d.port;
    for _ in 0..150 {
        if crate::serve::get(port, "/healthz", &[]).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (user, pass, role) in [
        ("6666", "Sup3rvisor", "admin"),
        ("qa1", "Qa-pass-1", "compliance"),
        ("sup7", "Sup-pass-7", "listener"),
    ] {
        let mut c = Client::new(port);
        let r = c.log_in(user, pass).await;
        assert_eq!(r.status, 303, "{user}: {}", r.text());
        let page = c.get("/console/search").await;
        assert!(
            page.text().contains(&format!("{user} · {role}")),
            "{user}: {}",
            page.text()
        );
    }
    for (user, pass) in [("agent1", "pw1"), ("gone", "pw2"), ("6666", "wrong")] {
        let mut c = Client::new(port);
        let r = c.log_in(user, pass).await;
        assert_eq!(r.status, 401, "{user}: {}", r.text());
        assert!(!c.cookies.contains_key("recvault_session"));
    }
    let failed = d
        .fx
        .text("SELECT CAST(failed_login_count AS CHAR) FROM vicidial_users WHERE user = '6666'")
        .await;
    assert_eq!(
        failed.as_deref(),
        Some("1"),
        "counted as VICIdial counts it"
    );
    d.stop();
}

/// Local accounts and VICIdial users log in through one throttle: failures
/// of both kinds from one address add up to its limit (ten), after which
/// neither kind is checked from there, even with the right password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_and_vicidial_login_failures_add_up() {
    let Some(mut d) = Dialer::on("console_one_throttle", Target::Local, DUE_NOW).await else {
        return;
    };
    d.serve("\n[console]\nenabled = true\n");
    d.fx.exec("INSERT INTO system_settings (version, pass_hash_enabled) VALUES ('2.14', '0')")
        .await;
    d.fx.exec(
        "INSERT INTO vicidial_users (user, pass, user_level, active) VALUES \
         ('6666', 'Sup3rvisor', 9, 'Y'), ('qa1', 'Qa-pass-1', 8, 'Y'), ('sup7', 'Sup-pass-7', 7, 'Y'), \
         ('qa2', 'Qa-pass-2', 8, 'Y')",
    )
    .await;
    for name in ["loc1", "loc2", "loc3"] {
        add_user(&d.site, name, "compliance");
    }
    d.start();
    let port = d.port;
    for _ in 0..150 {
        if crate::serve::get(port, "/healthz", &[]).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut guesser = Client::new(port);
    guesser.from = "127.0.0.3".into();
    // Six local failures (three names' worth each stays under the name limit)...
    for name in ["loc1", "loc2"] {
        for _ in 0..3 {
            let r = guesser.log_in(name, "guess").await;
            assert_eq!(r.status, 401, "{name}: {}", r.text());
        }
    }
    // ...and four VICIdial ones: ten from this address.
    for name in ["6666", "qa1", "sup7", "qa2"] {
        let r = guesser.log_in(name, "guess").await;
        assert_eq!(r.status, 401, "{name}: {}", r.text());
    }
    for (name, password) in [("qa1", "Qa-pass-1"), ("loc3", PASSWORD)] {
        let r = guesser.log_in(name, password).await;
        assert_eq!(r.status, 429, "{name} after ten failures: {}", r.text());
        assert!(!guesser.cookies.contains_key("recvault_session"));
    }
    // The names themselves were not slowed: from another address they log in.
    let mut other = Client::new(port);
    other.from = "127.0.0.4".into();
    for (name, password) in [("qa1", "Qa-pass-1"), ("loc3", PASSWORD)] {
        let r = other.log_in(name, password).await;
        assert_eq!(r.status, 303, "{name}: {}", r.text());
    }
    d.stop();
}
