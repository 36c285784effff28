//! VICIdial logins at the listen server (issue 20 items 6 and 9), against a
//! real MariaDB with VICIdial's tables: failures count toward VICIdial's own
//! lockout exactly as its login writes them, a locked or inactive user is
//! refused, guesses are slowed per user and per address, a login name with
//! control characters reaches `recvault audit` escaped, and VICIdial
//! passwords never go over plain HTTP off loopback.

use std::fs;
use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine as _;

use super::super::*;
use super::DUE;
use crate::vicidial::dialer::{DUE_NOW, Dialer, output};

fn basic(user: &str, password: &str) -> String {
    let pair = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// `failed_login_count|failed_login_attempts_today|failed_last_ip_today|failed_last_type_today|last_ip`.
async fn counters(d: &mut Dialer, user: &str) -> String {
    d.fx.text(&format!(
        "SELECT CONCAT_WS('|', failed_login_count, failed_login_attempts_today, \
             failed_last_ip_today, failed_last_type_today, last_ip) \
         FROM vicidial_users WHERE user = '{user}'"
    ))
    .await
    .unwrap()
}

/// One attempt as `user` from `from`: the status.
async fn attempt(d: &Dialer, from: &str, path: &str, user: &str, password: &str) -> u16 {
    let auth = basic(user, password);
    let r = get_from(from, d.port, path, &[("authorization", &auth)])
        .await
        .unwrap();
    if r.status == 429 {
        assert!(r.header("retry-after").is_some(), "429 without Retry-After");
    }
    r.status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_count_toward_vicidials_lockout_are_slowed_and_print_escaped() {
    let g = garage();
    let Some(mut d) = Dialer::new("hs_login", &g, DUE_NOW).await else {
        return;
    };
    d.serve("auth = \"vicidial\"\nuser_level = 7");
    // Stored as is, so a login stands before a redirect too.
    let config = fs::read_to_string(&d.site.config).unwrap();
    let config = config.replacen("[store]\n", "[compress]\ncodec = \"none\"\n\n[store]\n", 1);
    fs::write(&d.site.config, config).unwrap();
    d.fx.exec("INSERT INTO system_settings (version, pass_hash_enabled) VALUES ('2.14', '0')")
        .await;
    d.fx.exec(
        "INSERT INTO vicidial_users (user, pass, user_level, active, failed_login_count, last_login_date) VALUES \
         ('boss', 'Right-1', 9, 'Y', 9, NOW()), ('sup', 'Right-2', 9, 'Y', 4, NOW()), \
         ('old', 'Right-3', 9, 'N', 0, NOW()), ('guess', 'Right-4', 9, 'Y', 0, NOW())",
    )
    .await;
    let file = d.call(8001, "SALES", "a1", 1).await;
    d.start();
    d.wait_for(Duration::from_secs(60), "archiving", |d| {
        d.try_ledger_value::<i64>("SELECT COUNT(*) FROM recordings WHERE state = 'local_deleted'")
            .unwrap_or(0)
            == 1
    })
    .await;
    let out = d.site.recvault(&["url", &file]);
    expect_code(&out, 0);
    let path = d.link_path(String::from_utf8_lossy(&out.stdout).trim());

    // No login: no redirect.
    let r = get_from("127.0.0.10", d.port, &path, &[]).await.unwrap();
    assert_eq!(r.status, 401);
    assert!(r.header("location").is_none());
    // boss had 9 failures: one more through recvault locks it in VICIdial,
    // and then the right password is refused there too.
    assert_eq!(attempt(&d, "127.0.0.11", &path, "boss", "wrong").await, 401);
    assert_eq!(counters(&mut d, "boss").await, "10|1|127.0.0.11|aBAD|");
    assert_eq!(
        attempt(&d, "127.0.0.12", &path, "boss", "Right-1").await,
        401
    );
    assert_eq!(counters(&mut d, "boss").await, "10|2|127.0.0.11|aLOCK|");
    // Inactive, with the right password: refused, and counted as VICIdial counts it.
    assert_eq!(
        attempt(&d, "127.0.0.13", &path, "old", "Right-3").await,
        401
    );
    assert_eq!(counters(&mut d, "old").await, "1|1|127.0.0.13|aBAD|");
    // A good login: redirected; VICIdial's count starts over, last_ip set.
    assert_eq!(
        attempt(&d, "127.0.0.14", &path, "sup", "Right-2").await,
        302
    );
    assert_eq!(counters(&mut d, "sup").await, "0|0|||127.0.0.14");

    // Guessing one user's password: three tries, then slowed (5 s,
    // doubling) and refused unchecked — VICIdial sees only what was checked.
    let mut statuses = Vec::new();
    let mut third = Instant::now();
    for i in 0..8 {
        let from = format!("127.0.1.{i}");
        statuses.push(attempt(&d, &from, &path, "guess", &format!("wrong-{i}")).await);
        if i == 2 {
            third = Instant::now();
        }
    }
    assert_eq!(statuses[..3], [401, 401, 401], "{statuses:?}");
    assert!(statuses.contains(&429), "{statuses:?}");
    let checked: u32 = counters(&mut d, "guess")
        .await
        .split('|')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (3..=5).contains(&checked),
        "VICIdial counted {checked}: {statuses:?}"
    );
    let right = attempt(&d, "127.0.1.9", &path, "guess", "Right-4").await;
    if third.elapsed() < Duration::from_secs(4) {
        assert_eq!(right, 429, "the right password, unchecked while slowed");
    }
    // Guessing from one address across names: ten, then slowed.
    let mut statuses = Vec::new();
    for i in 0..14 {
        statuses.push(attempt(&d, "127.0.0.16", &path, &format!("nobody{i}"), "x").await);
    }
    assert_eq!(statuses[..10], [401; 10], "{statuses:?}");
    assert!(statuses[10..].contains(&429), "{statuses:?}");

    // A login name with ESC, CR, LF and a tab: stored as given, printed escaped.
    let evil = "ev\u{1b}[31mil\r\nforged\tline";
    assert_eq!(attempt(&d, "127.0.0.17", &path, evil, "x").await, 401);
    d.stop();
    let out = d.site.recvault(&["audit", "--action", "listen"]);
    expect_code(&out, 0);
    let audit = String::from_utf8(out.stdout).unwrap();
    assert!(!audit.contains(['\u{1b}', '\r']), "{audit:?}");
    assert!(
        audit.contains("\tev\\u{1b}[31mil\\r\\nforged\\tline (refused: UnknownUser)\tlisten\t"),
        "{audit}"
    );
    assert!(!audit.lines().any(|l| l.starts_with("forged")), "{audit}");
    for expected in [
        "\tsup\tlisten\t",
        "redirected (stored as is",
        "boss (refused: WrongPassword)",
        "boss (refused: LockedOut)",
        "old (refused: Inactive)",
        "guess (throttled)",
    ] {
        assert!(audit.contains(expected), "{expected}:\n{audit}");
    }
    d.assert_password_never_logged(&output(&d.site.recvault(&["audit"])));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vicidial_logins_over_plain_http_are_refused_off_loopback() {
    let mut site = Site::new("hs_plain");
    site.configure(Target::Local, DUE);
    let astguiclient = site.root.join("astguiclient.conf");
    fs::write(
        &astguiclient,
        "VARserver_ip => 10.0.0.5\nVARDB_server => 127.0.0.1\nVARDB_pass => 1234\n",
    )
    .unwrap();
    let port = dead_port();
    let base = format!(
        "{}\n[vicidial]\nenabled = true\nastguiclient = \"{}\"\n{}",
        fs::read_to_string(&site.config).unwrap(),
        astguiclient.display(),
        serve_table(&site.root, port, "auth = \"vicidial\"")
    );
    fs::write(&site.config, base.replace("127.0.0.1:", "0.0.0.0:")).unwrap();
    let check = site.recvault(&["check", "--offline"]);
    let text = String::from_utf8_lossy(&check.stderr).into_owned();
    assert_ne!(check.status.code(), Some(0), "{text}");
    assert!(
        text.contains("serve.auth")
            && text.contains("in clear")
            && text.contains(&site.config.display().to_string()),
        "{text}"
    );
    // The daemon refuses to start (given 30 s; it would serve forever).
    let mut run = site
        .command(&["run"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = run.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            run.kill().unwrap();
            run.wait().unwrap();
            panic!("recvault run started with auth = \"vicidial\" over plain HTTP on 0.0.0.0");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!status.success());
    // Loopback only (behind a TLS proxy): accepted.
    fs::write(&site.config, base).unwrap();
    let check = site.recvault(&["check", "--offline"]);
    let text = String::from_utf8_lossy(&check.stderr).into_owned();
    assert!(!text.contains("serve.auth"), "{text}");
}
