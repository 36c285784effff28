//! `recording_log_deletion_queue`: VICIdial's GDPR erasure requests.
//!
//! The admin's "GDPR purge" of a lead (www/vicidial/admin_modify_lead.php)
//! copies each of the lead's `recording_log` rows (and `recording_log_archive`
//! rows) into the queue (`recording_id, lead_id, filename, location,
//! date_queued=NOW()`), then sets `filename` and `location` to NULL in
//! `recording_log`. VICIdial's bin/AST_GDPR_audio_purge.pl reads
//! `date_deleted IS NULL` rows by `date_queued`, removes the local files
//! matching `filename*` and then sets `date_deleted=NOW()` for the row; it
//! writes nothing else (no `location='DELETED'`: that is the older
//! AST_CRON_purge_recordings.pl on `recording_log`). recvault does the same for
//! the copies it archived, after deleting them from the store.

use chrono::NaiveDateTime;
use sqlx::Row as _;

use super::db::{DbError, VicidialDb};

/// Pending requests of this server (bound: after, server_ip, limit); public
/// for EXPLAIN in bench/vicidial.sh.
pub const PENDING_SQL: &str = "SELECT q.recording_id, q.lead_id, q.filename, q.location, \
            q.date_queued, r.server_ip \
     FROM recording_log_deletion_queue q \
     LEFT JOIN recording_log r ON r.recording_id = q.recording_id \
     WHERE q.date_deleted IS NULL AND q.recording_id > ? \
       AND (r.server_ip = ? OR r.recording_id IS NULL) \
     ORDER BY q.recording_id LIMIT ?";

/// Pending requests of every server (bound: after, limit): a fleet's
/// leader reads them for every box.
pub const PENDING_ALL_SQL: &str = "SELECT q.recording_id, q.lead_id, q.filename, q.location, \
            q.date_queued, r.server_ip \
     FROM recording_log_deletion_queue q \
     LEFT JOIN recording_log r ON r.recording_id = q.recording_id \
     WHERE q.date_deleted IS NULL AND q.recording_id > ? \
     ORDER BY q.recording_id LIMIT ?";

/// The mark, as AST_GDPR_audio_purge.pl writes it (bound: recording_id).
pub const MARK_SQL: &str = "UPDATE recording_log_deletion_queue SET date_deleted = NOW() \
     WHERE recording_id = ? AND date_deleted IS NULL";

/// One pending erasure request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletionRequest {
    /// `recording_log.recording_id` of the recording to erase.
    pub recording_id: u32,
    /// The lead being purged.
    pub lead_id: Option<u32>,
    /// `recording_log.filename` before the purge (no extension, no leg suffix).
    pub filename: Option<String>,
    /// `recording_log.location` before the purge.
    pub location: Option<String>,
    /// When the admin asked, in the database server's local time.
    pub queued_at: Option<NaiveDateTime>,
    /// The recording's `server_ip` if its `recording_log` row still exists;
    /// None when the row was archived to `recording_log_archive`.
    pub server_ip: Option<String>,
}

impl VicidialDb {
    /// Pending requests (`date_deleted IS NULL`) for recordings of this server
    /// (or whose `recording_log` row is gone), by `recording_id`, starting
    /// after `after` (0 for the first page), at most `limit`.
    pub async fn pending_deletions(
        &self,
        after: u32,
        limit: u32,
    ) -> Result<Vec<DeletionRequest>, DbError> {
        self.pending_of(Some(self.server_ip().to_string()), after, limit)
            .await
    }

    /// Like [`VicidialDb::pending_deletions`], for every server.
    pub async fn pending_deletions_everywhere(
        &self,
        after: u32,
        limit: u32,
    ) -> Result<Vec<DeletionRequest>, DbError> {
        self.pending_of(None, after, limit).await
    }

    async fn pending_of(
        &self,
        server_ip: Option<String>,
        after: u32,
        limit: u32,
    ) -> Result<Vec<DeletionRequest>, DbError> {
        const ACTION: &str = "reading recording_log_deletion_queue";
        let rows = self
            .run(ACTION, move |c| {
                Box::pin(async move {
                    let q = match &server_ip {
                        Some(ip) => sqlx::query(PENDING_SQL).bind(after).bind(ip.clone()),
                        None => sqlx::query(PENDING_ALL_SQL).bind(after),
                    };
                    q.bind(limit).fetch_all(&mut *c).await
                })
            })
            .await?;
        rows.iter()
            .map(|row| {
                Ok(DeletionRequest {
                    recording_id: row.try_get(0)?,
                    lead_id: row.try_get(1)?,
                    filename: row.try_get(2)?,
                    location: row.try_get(3)?,
                    queued_at: row.try_get(4)?,
                    server_ip: row.try_get(5)?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(|e| self.error(ACTION, e))
    }

    /// Marks a request done as VICIdial's purge script does
    /// (`date_deleted=NOW()`), unless it already is: true if this call marked it.
    pub async fn mark_deleted(&self, recording_id: u32) -> Result<bool, DbError> {
        self.run("marking recording_log_deletion_queue", move |c| {
            Box::pin(async move {
                let done = sqlx::query(MARK_SQL)
                    .bind(recording_id)
                    .execute(&mut *c)
                    .await?;
                Ok(done.rows_affected() > 0)
            })
        })
        .await
    }
}
