//! GDPR erasure requests in `recording_log_deletion_queue`.

use super::SERVER_IP;
use crate::vicidial_fixture;

#[tokio::test]
async fn deletion_queue_read_and_mark() {
    let Some(mut fx) = vicidial_fixture!("queue") else {
        return;
    };
    // As admin_modify_lead.php's GDPR purge leaves things: recording_log rows
    // with filename/location NULL, their old values in the queue.
    fx.exec(&format!(
        "INSERT INTO recording_log (recording_id, server_ip, filename, location, lead_id) VALUES \
         (11, '{SERVER_IP}', NULL, NULL, 900), (12, '10.0.0.6', NULL, NULL, 900), \
         (13, '{SERVER_IP}', NULL, NULL, 900), (14, '{SERVER_IP}', NULL, NULL, 901)"
    ))
    .await;
    fx.exec(&format!(
        "INSERT INTO recording_log_deletion_queue \
             (recording_id, lead_id, filename, location, date_queued, date_deleted) VALUES \
         (11, 900, '20260301-101500_5551234567', 'http://{SERVER_IP}/RECORDINGS/x-all.wav', \
             '2026-03-02 09:00:00', NULL), \
         (12, 900, 'other-box', 'http://10.0.0.6/RECORDINGS/o-all.wav', '2026-03-02 09:00:00', NULL), \
         (13, 900, 'done', NULL, '2026-03-02 09:00:00', '2026-03-02 10:00:00'), \
         (14, 901, 'b', NULL, '2026-03-02 09:05:00', NULL), \
         (15, 901, 'archived-row', NULL, '2026-03-02 09:05:00', NULL)"
    ))
    .await;
    let pending = fx.db.pending_deletions(0, 100).await.unwrap();
    let ids: Vec<u32> = pending.iter().map(|r| r.recording_id).collect();
    // 12 is another server's, 13 is done; 15's recording_log row is gone.
    assert_eq!(ids, [11, 14, 15]);
    let first = &pending[0];
    assert_eq!(first.lead_id, Some(900));
    assert_eq!(
        first.filename.as_deref(),
        Some("20260301-101500_5551234567")
    );
    assert_eq!(first.server_ip.as_deref(), Some(SERVER_IP));
    assert_eq!(
        first.queued_at.map(|t| t.to_string()).as_deref(),
        Some("2026-03-02 09:00:00")
    );
    assert_eq!(pending[2].server_ip, None);
    // Paging by recording_id.
    let page: Vec<u32> = fx
        .db
        .pending_deletions(11, 1)
        .await
        .unwrap()
        .iter()
        .map(|r| r.recording_id)
        .collect();
    assert_eq!(page, [14]);

    // Marking writes date_deleted = NOW() like AST_GDPR_audio_purge.pl, once.
    assert!(fx.db.mark_deleted(11).await.unwrap());
    let recent = "SELECT CAST(date_deleted BETWEEN NOW() - INTERVAL 60 SECOND AND NOW() AS CHAR) \
                  FROM recording_log_deletion_queue WHERE recording_id = 11";
    assert_eq!(fx.text(recent).await.as_deref(), Some("1"));
    assert!(!fx.db.mark_deleted(11).await.unwrap());
    assert!(
        !fx.db.mark_deleted(13).await.unwrap(),
        "an earlier deletion time is kept"
    );
    assert!(!fx.db.mark_deleted(999).await.unwrap());
    let sql = "SELECT CAST(date_deleted AS CHAR) FROM recording_log_deletion_queue WHERE recording_id = 13";
    assert_eq!(fx.text(sql).await.as_deref(), Some("2026-03-02 10:00:00"));
    let ids: Vec<u32> = fx
        .db
        .pending_deletions(0, 100)
        .await
        .unwrap()
        .iter()
        .map(|r| r.recording_id)
        .collect();
    assert_eq!(ids, [14, 15]);
}
