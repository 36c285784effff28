//! A dead, hung, slow or locked database costs at most the deadlines and a
//! retryable error; bad credentials are permanent; the password never shows.

use std::time::{Duration, Instant};

use recvault::vicidial::db::{DbError, ErrorKind, VicidialDb};
use recvault::vicidial::servers::WebLink;

use super::attribution::{DAY, LATE};
use super::relay::Relay;
use super::{SERVER_IP, mariadb_port, quick_options, settings};
use crate::vicidial_fixture;

const PASSWORD: &str = "Pa55-S3cret-w0rd";

/// Every way the error can be shown.
fn assert_no_password(e: &DbError) {
    for shown in [e.to_string(), format!("{e:?}"), format!("{e:#?}")] {
        assert!(!shown.contains(PASSWORD), "{shown}");
    }
}

fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn unreachable_port_is_retryable_within_the_timeout() {
    let db = VicidialDb::new(
        &settings("asterisk", closed_port(), PASSWORD),
        quick_options(),
    );
    let started = Instant::now();
    let e = db
        .attribute("20260301-101500_5551234567-all.wav", LATE, DAY)
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert_eq!(e.kind(), ErrorKind::Retryable, "{e}");
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert!(e.to_string().contains("no connection within"), "{e}");
    assert_no_password(&e);
    assert!(!format!("{db:?}").contains(PASSWORD));
}

#[tokio::test]
async fn hung_server_is_retryable_within_the_timeout() {
    // Accepts connections and never sends MySQL's greeting.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let db = VicidialDb::new(&settings("asterisk", port, PASSWORD), quick_options());
    let started = Instant::now();
    let e = db.ping().await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert_no_password(&e);
    hold.abort();
}

#[tokio::test]
async fn wrong_credentials_are_permanent_and_never_show_the_password() {
    let Some(fx) = vicidial_fixture!("denied") else {
        return;
    };
    let mut s = settings(&fx.name, mariadb_port(), PASSWORD);
    s.user = "recvault_nobody".into();
    let db = VicidialDb::new(&s, quick_options());
    let e = db.ping().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Permanent, "{e}");
    assert!(e.to_string().contains("recvault_nobody@127.0.0.1"), "{e}");
    assert_no_password(&e);
    // A database that does not exist: permanent too.
    let db = VicidialDb::new(
        &settings("rv_no_such_db", mariadb_port(), ""),
        quick_options(),
    );
    assert_eq!(db.ping().await.unwrap_err().kind(), ErrorKind::Permanent);
}

#[tokio::test]
async fn database_down_then_back() {
    let Some(mut fx) = vicidial_fixture!("down_back") else {
        return;
    };
    fx.exec(&format!(
        "INSERT INTO recording_log (recording_id, server_ip, filename) VALUES (1, '{SERVER_IP}', 'a')"
    ))
    .await;
    let relay = Relay::start(mariadb_port()).await;
    let db = fx.client_via(relay.port, quick_options());
    assert_eq!(
        db.attribute("a-all.wav", LATE, DAY)
            .await
            .unwrap()
            .found()
            .unwrap()
            .recording_id,
        1
    );
    relay.down();
    let started = Instant::now();
    let e = db.attribute("a-all.wav", LATE, DAY).await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    relay.up();
    // The pool drops the dead connection and opens a new one.
    assert_eq!(
        db.attribute("a-all.wav", LATE, DAY)
            .await
            .unwrap()
            .found()
            .unwrap()
            .recording_id,
        1
    );
}

#[tokio::test]
async fn locked_table_times_out_and_the_server_gives_up_too() {
    let Some(mut fx) = vicidial_fixture!("locked") else {
        return;
    };
    fx.exec(&format!(
        "INSERT INTO recording_log (recording_id, server_ip, filename) VALUES (1, '{SERVER_IP}', 'a')"
    ))
    .await;
    // Another client holds recording_log (MyISAM: a table lock).
    fx.exec("LOCK TABLES recording_log WRITE").await;
    let started = Instant::now();
    let e = fx.db.attribute("a-all.wav", LATE, DAY).await.unwrap_err();
    let took = started.elapsed();
    assert!(e.is_retryable(), "{e}");
    assert!(e.to_string().contains("no answer within"), "{e}");
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(3),
        "took {took:?}"
    );
    // The abandoned statement does not linger on the server with the lock
    // still held: its connection was closed, and the session limits end it.
    let (lock_wait, statement) = fx.db.session_limits().await.unwrap();
    assert_eq!((lock_wait, statement), (2, Some(2.0)));
    let waiting = format!(
        "SELECT CAST(COUNT(*) AS CHAR) FROM information_schema.processlist \
         WHERE db = '{}' AND id <> CONNECTION_ID() AND info LIKE '%recording_log%'",
        fx.name
    );
    let mut left = fx.text(&waiting).await;
    for _ in 0..50 {
        if left.as_deref() == Some("0") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = fx.text(&waiting).await;
    }
    assert_eq!(
        left.as_deref(),
        Some("0"),
        "abandoned statement still on the server"
    );
    fx.exec("UNLOCK TABLES").await;
    // The pool works again once the lock is gone.
    assert_eq!(
        fx.db
            .attribute("a-all.wav", LATE, DAY)
            .await
            .unwrap()
            .found()
            .unwrap()
            .recording_id,
        1
    );
    // Writes time out the same way.
    fx.exec("LOCK TABLES recording_log_deletion_queue WRITE")
        .await;
    assert!(fx.db.mark_deleted(1).await.unwrap_err().is_retryable());
    fx.exec("UNLOCK TABLES").await;
}

#[tokio::test]
async fn missing_table_is_permanent() {
    let Some(mut fx) = vicidial_fixture!("no_table") else {
        return;
    };
    fx.exec("DROP TABLE vicidial_closer_log").await;
    let e = fx.db.attribute("a-all.wav", LATE, DAY).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Permanent, "{e}");
    assert!(e.to_string().contains("vicidial_closer_log"), "{e}");
    assert_eq!(e.action(), "attributing recordings");
}

#[tokio::test]
async fn this_servers_addresses() {
    let Some(mut fx) = vicidial_fixture!("servers") else {
        return;
    };
    fx.exec(&format!(
        "INSERT INTO servers (server_id, server_description, server_ip, active, \
             recording_web_link, alt_server_ip, external_server_ip) VALUES \
         ('dialer1', 'one', '{SERVER_IP}', 'Y', 'EXTERNAL_IP', '192.168.7.5', '203.0.113.7'), \
         ('dialer2', 'two', '10.0.0.6', 'Y', 'SERVER_IP', '', '')"
    ))
    .await;
    let s = fx.db.this_server().await.unwrap().unwrap();
    assert_eq!(s.web_link, WebLink::ExternalIp);
    assert_eq!(s.link_host(), "203.0.113.7");
    assert_eq!(s.hosts(), [SERVER_IP, "192.168.7.5", "203.0.113.7"]);
    assert!(s.active);
    fx.exec(&format!(
        "DELETE FROM servers WHERE server_ip = '{SERVER_IP}'"
    ))
    .await;
    assert_eq!(fx.db.this_server().await.unwrap(), None);
}
