//! The mix's `recording_log` row, found and written as the script does:
//! the newest row with the leg's name without `-in.wav` as `filename`; its
//! `location` set to `http(s)://<server_ip>/RECORDINGS/<name>-all.wav`, and
//! where `length_in_sec` is NULL or below 1, `length_in_sec` and
//! `length_in_min` from the mix's duration.
//!
//! One condition more than the script: the row must be this server's
//! (`server_ip`), since the legs are; a newer row of the same name on
//! another server of the cluster would otherwise be given this one's URL.

use super::super::db::{DbError, VicidialDb};

/// The statement that finds a mix's row (bound: filename, server_ip); public
/// for EXPLAIN.
pub const FIND_ROW_SQL: &str = "SELECT recording_id, length_in_sec FROM recording_log \
     WHERE filename = ? AND server_ip = ? ORDER BY recording_id DESC LIMIT 1";

const SET_LOCATION_SQL: &str = "UPDATE recording_log SET location = ? WHERE recording_id = ?";

const SET_LOCATION_AND_LENGTH_SQL: &str = "UPDATE recording_log \
     SET location = ?, length_in_sec = ?, length_in_min = ? WHERE recording_id = ?";

/// The row of a mix, as found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MixRow {
    pub recording_id: u32,
    /// NULL is None.
    pub length_in_sec: Option<u32>,
}

impl MixRow {
    /// The script writes the length only where the row has none (NULL or 0).
    pub fn wants_length(&self) -> bool {
        self.length_in_sec.is_none_or(|s| s < 1)
    }
}

/// What the row is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MixRecord {
    pub location: String,
    /// `length_in_sec` and `length_in_min`, written only if the row wants them.
    pub seconds: u64,
    pub minutes: String,
}

impl VicidialDb {
    /// This server's newest `recording_log` row named `filename`.
    pub async fn mix_row(&self, filename: &str) -> Result<Option<MixRow>, DbError> {
        let (filename, server_ip) = (filename.to_string(), self.server_ip().to_string());
        self.run("finding a mix's recording_log row", move |c| {
            Box::pin(async move {
                let row: Option<(u32, Option<u32>)> = sqlx::query_as(FIND_ROW_SQL)
                    .bind(filename)
                    .bind(server_ip)
                    .fetch_optional(&mut *c)
                    .await?;
                Ok(row.map(|(recording_id, length_in_sec)| MixRow {
                    recording_id,
                    length_in_sec,
                }))
            })
        })
        .await
    }

    /// Writes `record` into `row` (its length only if the row wants one).
    /// Writing the same again changes nothing, so a step interrupted after
    /// it may repeat it.
    pub async fn record_mix(&self, row: MixRow, record: &MixRecord) -> Result<(), DbError> {
        let record = record.clone();
        self.run("writing a mix's location", move |c| {
            Box::pin(async move {
                let q = match row.wants_length() {
                    true => sqlx::query(SET_LOCATION_AND_LENGTH_SQL)
                        .bind(record.location)
                        .bind(record.seconds)
                        .bind(record.minutes),
                    false => sqlx::query(SET_LOCATION_SQL).bind(record.location),
                };
                q.bind(row.recording_id).execute(&mut *c).await?;
                Ok(())
            })
        })
        .await
    }
}
