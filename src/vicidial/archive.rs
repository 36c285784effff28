//! VICIdial's archive tables. `ADMIN_archive_log_tables.pl` (usually
//! nightly or monthly from cron) copies every row of `recording_log`
//! (with `--recording-log-days`), `vicidial_log` and `vicidial_closer_log`
//! into `recording_log_archive`, `vicidial_log_archive` and
//! `vicidial_closer_log_archive` with `INSERT IGNORE … SELECT *` — a row
//! already there is not updated — then deletes the live rows older than
//! its cut-off. So a row is live only, in both, or archived only; its live
//! copy, while there, is the current one.
//!
//! The archive tables are created by VICIdial's install SQL, but a box may
//! lack them: that is normal, and they are then simply not read.

use std::time::{Duration, Instant};

use super::db::{DbError, VicidialDb};

/// How long the answer to "which archive tables exist" is reused.
const KNOWN_FOR: Duration = Duration::from_secs(60);

/// Which of the three archive tables this database has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArchiveTables {
    pub recording_log: bool,
    pub vicidial_log: bool,
    pub closer_log: bool,
}

/// The archive tables recvault reads, by name.
pub const RECORDING_LOG_ARCHIVE: &str = "recording_log_archive";
pub const VICIDIAL_LOG_ARCHIVE: &str = "vicidial_log_archive";
pub const CLOSER_LOG_ARCHIVE: &str = "vicidial_closer_log_archive";

/// Which archive tables exist in the connection's database (public for
/// EXPLAIN in bench/vicidial.sh).
pub const ARCHIVE_TABLES_SQL: &str = "SELECT TABLE_NAME FROM information_schema.TABLES \
     WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN \
     ('recording_log_archive', 'vicidial_log_archive', 'vicidial_closer_log_archive')";

impl VicidialDb {
    /// The archive tables this database has, asked at most once a minute
    /// (a box where the archive script or VICIdial's upgrade creates them
    /// starts reading them within that minute).
    pub async fn archive_tables(&self) -> Result<ArchiveTables, DbError> {
        let cached = *self.archives();
        if let Some((at, known)) = cached
            && at.elapsed() < KNOWN_FOR
        {
            return Ok(known);
        }
        let names: Vec<String> = self
            .run("looking for VICIdial's archive tables", |c| {
                Box::pin(async move {
                    sqlx::query_scalar(ARCHIVE_TABLES_SQL)
                        .fetch_all(&mut *c)
                        .await
                })
            })
            .await?;
        let has = |t: &str| names.iter().any(|n| n.eq_ignore_ascii_case(t));
        let known = ArchiveTables {
            recording_log: has(RECORDING_LOG_ARCHIVE),
            vicidial_log: has(VICIDIAL_LOG_ARCHIVE),
            closer_log: has(CLOSER_LOG_ARCHIVE),
        };
        *self.archives() = Some((Instant::now(), known));
        Ok(known)
    }
}
