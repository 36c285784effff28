//! VICIdial's own listen report (issue 19 part 3): with
//! `system_settings.log_recording_access = '1'` every play recvault serves
//! — and every login it refuses — is a row of `vicidial_recording_access_log`
//! as VICIdial's redirect page writes it; with the setting off, none.

use std::time::Duration;

use base64::Engine as _;

use super::dialer::{DUE_NOW, Dialer};
use crate::common::*;
use crate::serve::{fetch, request};

const MINUTE: Duration = Duration::from_secs(60);

fn basic(user: &str, password: &str) -> String {
    let pair = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

async fn rows(d: &mut Dialer) -> Vec<String> {
    let text = d
        .fx
        .text(
            "SELECT CAST(GROUP_CONCAT(CONCAT_WS('|', recording_id, lead_id, user, access_result, ip, \
                 ABS(TIMESTAMPDIFF(SECOND, access_datetime, NOW())) < 300) \
                 ORDER BY recording_access_log_id SEPARATOR '\\n') AS CHAR) \
             FROM vicidial_recording_access_log",
        )
        .await
        .unwrap_or_default();
    text.lines().map(str::to_string).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listens_reach_vicidials_access_log_only_while_it_asks_for_them() {
    let Some(mut d) = Dialer::on("vl_report", Target::Local, DUE_NOW).await else {
        return;
    };
    d.serve("auth = \"vicidial\"\nuser_level = 7");
    d.fx.exec(
        "INSERT INTO system_settings (version, pass_hash_enabled, log_recording_access) \
         VALUES ('2.14', '0', '1')",
    )
    .await;
    d.fx.exec(
        "INSERT INTO vicidial_users (user, pass, user_level, active) VALUES ('sup', 'Right-2', 9, 'Y')",
    )
    .await;
    let file = d.call(7001, "SALES", "a1", 1).await;
    d.start();
    d.wait_for(MINUTE, "archiving and attribution", |d| {
        d.try_ledger_value::<i64>(
            "SELECT COUNT(*) FROM recordings WHERE state = 'local_deleted' AND vicidial_recording_id = 7001",
        )
        .unwrap_or(0)
            == 1
    })
    .await;
    let out = d.site.recvault(&["url", &file]);
    expect_code(&out, 0);
    let path = d.link_path(String::from_utf8_lossy(&out.stdout).trim());
    let sup = basic("sup", "Right-2");
    // Two plays (a whole GET; a player's first range), a seek and a HEAD
    // (the same listens going on), and a refused login.
    let whole = fetch(d.port, &path, &[("authorization", &sup)]).await;
    assert_eq!(whole.status, 200, "{}", whole.text());
    let first = fetch(
        d.port,
        &path,
        &[("authorization", &sup), ("range", "bytes=0-")],
    )
    .await;
    assert_eq!(first.status, 206);
    let seek = fetch(
        d.port,
        &path,
        &[("authorization", &sup), ("range", "bytes=100-199")],
    )
    .await;
    assert_eq!(seek.status, 206);
    let head = request(d.port, "HEAD", &path, &[("authorization", &sup)])
        .await
        .unwrap();
    assert_eq!(head.status, 200);
    let refused = fetch(d.port, &path, &[("authorization", &basic("sup", "wrong"))]).await;
    assert_eq!(refused.status, 401);
    // Written in the background, within seconds.
    for _ in 0..100 {
        if rows(&mut d).await.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    d.stop();
    assert_eq!(
        rows(&mut d).await,
        [
            "7001|7001|sup|ACCESSED|127.0.0.1|1",
            "7001|7001|sup|ACCESSED|127.0.0.1|1",
            "7001|7001|sup|INVALID USER|127.0.0.1|1",
        ]
    );

    // The setting off: nothing more is written.
    d.fx.exec("UPDATE system_settings SET log_recording_access = '0'")
        .await;
    d.start();
    for _ in 0..100 {
        if crate::serve::get(d.port, "/healthz", &[]).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let again = fetch(d.port, &path, &[("authorization", &sup)]).await;
    assert_eq!(again.status, 200, "{}", again.text());
    d.stop();
    assert_eq!(rows(&mut d).await.len(), 3);
    let log = d.log_text();
    assert!(
        log.contains("listens are not written to vicidial_recording_access_log"),
        "{log}"
    );
}
