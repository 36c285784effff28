//! `recording_log.location` is rewritten only where it still points at the
//! archived file, and can be put back.

use recvault::vicidial::location::{LocationUpdate, points_at_local_file};

use super::SERVER_IP;
use crate::vicidial_fixture;

const FILE: &str = "20260301-101500_5551234567-all.wav";

#[tokio::test]
async fn location_rewritten_only_while_it_points_at_the_file() {
    let Some(mut fx) = vicidial_fixture!("location") else {
        return;
    };
    let local = format!("http://{SERVER_IP}/RECORDINGS/{FILE}");
    let mp3 =
        format!("http://{SERVER_IP}/RECORDINGS/MP3/2026-03-01/20260301-101500_5551234567-all.mp3");
    let ftp = "http://10.0.0.20/2026-03-01/20260301-101500_5551234567-all.wav";
    fx.exec(&format!(
        "INSERT INTO recording_log (recording_id, server_ip, filename, location) VALUES \
         (1, '{SERVER_IP}', '20260301-101500_5551234567', '{local}'), \
         (2, '{SERVER_IP}', '20260301-101500_5551234567', '{ftp}'), \
         (3, '{SERVER_IP}', '20260301-101500_5551234567', '{mp3}'), \
         (4, '{SERVER_IP}', '20260301-101500_5551234567', NULL)"
    ))
    .await;
    let link = "http://10.0.0.5:8089/r/1/abcdef";
    let hosts = [SERVER_IP];
    // Row 1 still points at the local file: rewritten.
    let current = fx.db.location(1).await.unwrap().unwrap().unwrap();
    assert!(points_at_local_file(&current, FILE, &hosts));
    assert_eq!(
        fx.db.replace_location(1, &current, link).await.unwrap(),
        LocationUpdate::Updated
    );
    assert_eq!(
        fx.text("SELECT location FROM recording_log WHERE recording_id = 1")
            .await
            .as_deref(),
        Some(link)
    );
    // Repeating the step (a restart after kill -9 before the ledger knew) is harmless.
    assert_eq!(
        fx.db.replace_location(1, &current, link).await.unwrap(),
        LocationUpdate::Updated
    );
    // Row 2: the FTP script moved it; recvault's expectation is stale.
    let ftp_row = fx.db.location(2).await.unwrap().unwrap().unwrap();
    assert!(!points_at_local_file(&ftp_row, FILE, &hosts));
    assert_eq!(
        fx.db.replace_location(2, &local, link).await.unwrap(),
        LocationUpdate::Changed {
            current: Some(ftp.to_string())
        }
    );
    // Row 3 was compressed to MP3 after recvault read it: not clobbered.
    assert_eq!(
        fx.db.replace_location(3, &local, link).await.unwrap(),
        LocationUpdate::Changed {
            current: Some(mp3.clone())
        }
    );
    // The comparison is exact, not the table's case-insensitive collation.
    assert!(matches!(
        fx.db
            .replace_location(3, &mp3.to_uppercase(), link)
            .await
            .unwrap(),
        LocationUpdate::Changed { .. }
    ));
    // Row 4 was purged (NULL); row 99 does not exist.
    assert_eq!(
        fx.db.replace_location(4, &local, link).await.unwrap(),
        LocationUpdate::Changed { current: None }
    );
    assert_eq!(
        fx.db.replace_location(99, &local, link).await.unwrap(),
        LocationUpdate::Missing
    );
    for id in [2, 3] {
        let sql = format!("SELECT location FROM recording_log WHERE recording_id = {id}");
        assert_ne!(fx.text(&sql).await.as_deref(), Some(link));
    }
    // restore-locations: the same compare-and-set the other way round.
    assert_eq!(
        fx.db.replace_location(1, link, &local).await.unwrap(),
        LocationUpdate::Updated
    );
    assert_eq!(fx.db.location(1).await.unwrap(), Some(Some(local.clone())));
    // A second restore finds the old value already there: done, nothing written.
    assert_eq!(
        fx.db.replace_location(1, link, &local).await.unwrap(),
        LocationUpdate::Updated
    );
    // Another script's value is never replaced by a restore either.
    assert_eq!(
        fx.db.replace_location(2, link, &local).await.unwrap(),
        LocationUpdate::Changed {
            current: Some(ftp.to_string())
        }
    );
}
