//! VICIdial's GDPR purge carried out by the daemon: the admin's purge of a
//! lead queues its recordings in `recording_log_deletion_queue`; recvault
//! erases every copy it keeps (store, local, ledger's personal data), holds
//! win and keep the row open, and the row is marked done as VICIdial's own
//! script marks it — also across a `kill -9` in the middle.

use std::time::Duration;

use super::dialer::{DUE_NOW, Dialer, output, tail};
use crate::common::*;

const MINUTE: Duration = Duration::from_secs(60);

fn count(d: &Dialer, condition: &str) -> i64 {
    d.try_ledger_value(&format!(
        "SELECT COUNT(*) FROM recordings WHERE {condition}"
    ))
    .unwrap_or(0)
}

fn by_name(d: &Dialer, name: &str, column: &str) -> Option<String> {
    d.ledger_value(&format!(
        "SELECT CAST({column} AS TEXT) FROM recordings WHERE name = CAST('{name}' AS BLOB)"
    ))
}

fn by_vicidial_id(d: &Dialer, id: u32, column: &str) -> Option<String> {
    d.ledger_value(&format!(
        "SELECT CAST({column} AS TEXT) FROM recordings WHERE vicidial_recording_id = {id}"
    ))
}

/// What `admin_modify_lead.php`'s GDPR purge does to one recording.
async fn purge(d: &mut Dialer, id: u32) {
    d.fx.exec(&format!(
        "INSERT INTO recording_log_deletion_queue \
             (recording_id, lead_id, filename, location, date_queued) \
         SELECT recording_id, lead_id, filename, location, NOW() FROM recording_log \
         WHERE recording_id = {id}"
    ))
    .await;
    d.fx.exec(&format!(
        "UPDATE recording_log SET filename = NULL, location = NULL WHERE recording_id = {id}"
    ))
    .await;
}

async fn marked(d: &mut Dialer, id: u32) -> bool {
    d.fx.text(&format!(
        "SELECT CAST(date_deleted IS NOT NULL AS CHAR) FROM recording_log_deletion_queue \
         WHERE recording_id = {id}"
    ))
    .await
    .as_deref()
        == Some("1")
}

/// Waits (two minutes at most) for queue row `id` to be marked done.
async fn wait_marked(d: &mut Dialer, id: u32, when: &str) {
    let deadline = std::time::Instant::now() + 2 * MINUTE;
    while !marked(d, id).await {
        assert!(
            std::time::Instant::now() < deadline,
            "queue row {id} never marked done {when}; log:\n{}",
            tail(&d.log_text(), 40)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gdpr_purges_erase_every_copy_holds_win_and_rows_are_marked_done() {
    let g = garage();
    let Some(mut d) = Dialer::new("vd_purge", &g, DUE_NOW).await else {
        return;
    };
    // Dialer::new's [vicidial] table is the config's last.
    let mut config = std::fs::read_to_string(&d.site.config).unwrap();
    config.push_str("purge_poll = \"1s\"\n");
    std::fs::write(&d.site.config, config).unwrap();
    let erased = d.call(4101, "SALES", "agent1", 1).await;
    let held = d.call(4102, "SALES", "agent2", 1).await;
    let kept = d.call(4103, "SALES", "agent3", 1).await;
    let hold = d.site.recvault(&[
        "hold",
        "add",
        "CASE-77",
        "--reason",
        "litigation",
        "--recording",
        &held,
    ]);
    expect_code(&hold, 0);
    d.start();
    d.wait_for(MINUTE, "attribution and archiving", |d| {
        count(d, "db_attribution = 'done'") == 3
            && count(d, "state IN ('local_deleted', 'verified')") == 3
    })
    .await;
    let store = g.store(64 << 20, 16 << 20).await;
    let key_of = |name: &str| by_name(&d, name, "object_key").unwrap();
    let (erased_key, held_key, kept_key) = (key_of(&erased), key_of(&held), key_of(&kept));
    let held_path = d.site.spool.join(&held);
    assert!(held_path.exists(), "a held recording keeps its local copy");

    purge(&mut d, 4101).await;
    purge(&mut d, 4102).await;
    // A queue row naming nothing recvault knows (its recording_log row is
    // gone): left for VICIdial's own script.
    d.fx.exec(
        "INSERT INTO recording_log_deletion_queue (recording_id, lead_id, filename, date_queued) \
         VALUES (4999, 4999, '20200101-000000_5550004999', NOW())",
    )
    .await;
    // A kill -9 while the purge is reserved: the next run finishes it.
    d.wait_for(MINUTE, "the purge to be reserved", |d| {
        count(d, "erase_request IS NOT NULL") == 1
    })
    .await;
    d.kill();
    d.start();
    wait_marked(&mut d, 4101, "after the kill").await;
    // Every copy of the purged recording is gone, its personal data too.
    assert!(store.head(&erased_key).await.unwrap().is_none());
    assert!(!d.site.spool.join(&erased).exists());
    assert!(by_vicidial_id(&d, 4101, "erased_at").is_some());
    assert_eq!(
        by_vicidial_id(&d, 4101, "erase_request").as_deref(),
        Some("VICIdial GDPR purge, recording_log 4101")
    );
    let phone = by_vicidial_id(&d, 4101, "phone").unwrap_or_default();
    assert!(!phone.contains("4101"), "phone left readable: {phone}");
    assert_eq!(count(&d, &format!("name = CAST('{erased}' AS BLOB)")), 0);
    // The held one: every copy kept, its row open, the case named in the log.
    assert!(store.head(&held_key).await.unwrap().is_some());
    assert!(held_path.exists());
    assert!(by_name(&d, &held, "erase_request").is_none());
    assert!(
        !marked(&mut d, 4102).await,
        "a held recording's row stays open"
    );
    let log = d.log_text();
    assert!(
        log.contains("held recordings are not erased") && log.contains("CASE-77"),
        "{}",
        tail(&log, 40)
    );
    // Untouched: the recording nobody purged, and the row that is not ours.
    assert!(store.head(&kept_key).await.unwrap().is_some());
    assert!(!marked(&mut d, 4999).await);

    // Once the hold is released, the purge goes through.
    let release = d
        .site
        .recvault(&["hold", "release", "CASE-77", "--reason", "settled"]);
    expect_code(&release, 0);
    wait_marked(&mut d, 4102, "after the release").await;
    d.stop();
    assert!(store.head(&held_key).await.unwrap().is_none());
    assert!(!held_path.exists());
    assert_eq!(count(&d, "deleting_at IS NOT NULL"), 0, "nothing half-done");
    let verify = d.site.recvault(&["audit", "verify"]);
    expect_code(&verify, 0);
    let audit = output(&d.site.recvault(&["audit", "--action", "erase-request"]));
    assert!(
        audit.contains("VICIdial GDPR purge, recording_log 4101")
            && audit.contains("VICIdial GDPR purge, recording_log 4102"),
        "{audit}"
    );
    assert!(
        !audit.contains("5550004101"),
        "a phone number in the audit: {audit}"
    );
    d.assert_password_never_logged(&audit);
}
