//! VICIdial's own listen report: with `system_settings.log_recording_access
//! = '1'`, VICIdial's `recording_log_redirect.php` writes every listen
//! through it into `vicidial_recording_access_log` (recording, lead, user,
//! time, result, address), and its admin report of who listened reads that
//! table. recvault writes its own listens there the same way: `ACCESSED`
//! for a play, `INVALID USER` for a login it refused (the redirect page's
//! two outcomes that apply; recvault's own audit keeps every detail).

use super::db::{DbError, VicidialDb};

/// `vicidial_recording_access_log.access_result`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessResult {
    /// The recording was played (or redirected to).
    Accessed,
    /// The login was refused.
    InvalidUser,
}

impl AccessResult {
    pub fn as_str(self) -> &'static str {
        match self {
            AccessResult::Accessed => "ACCESSED",
            AccessResult::InvalidUser => "INVALID USER",
        }
    }
}

/// One row of `vicidial_recording_access_log`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingAccess {
    /// `recording_log.recording_id`.
    pub recording_id: i64,
    pub lead_id: Option<u64>,
    /// The VICIdial user (empty without a login), as the redirect page
    /// filters it: letters, digits, `-` and `_`, at most 20 characters.
    pub user: String,
    /// Unix seconds.
    pub at: i64,
    pub result: AccessResult,
    /// The client's address (the column holds 15 characters: an IPv6
    /// address is left empty rather than cut).
    pub ip: String,
}

/// `vicidial_recording_access_log.user` and `.ip` lengths.
const USER_LEN: usize = 20;
const IP_LEN: usize = 15;

impl RecordingAccess {
    /// A row; `user` and `ip` made to fit VICIdial's columns.
    pub fn new(
        recording_id: i64,
        lead_id: Option<u64>,
        user: &str,
        at: i64,
        result: AccessResult,
        ip: &str,
    ) -> RecordingAccess {
        RecordingAccess {
            recording_id,
            lead_id,
            user: user
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_')
                .take(USER_LEN)
                .collect(),
            at,
            result,
            ip: if ip.len() <= IP_LEN {
                ip.into()
            } else {
                String::new()
            },
        }
    }
}

impl VicidialDb {
    /// Whether VICIdial logs recording access (`system_settings.log_recording_access
    /// = '1'`); false where the column or the row is missing.
    pub async fn logs_recording_access(&self) -> Result<bool, DbError> {
        let setting: Option<(Option<String>,)> = self
            .run("reading system_settings.log_recording_access", |c| {
                Box::pin(async move {
                    sqlx::query_as("SELECT log_recording_access FROM system_settings LIMIT 1")
                        .fetch_optional(&mut *c)
                        .await
                })
            })
            .await?;
        Ok(setting.and_then(|s| s.0).as_deref() == Some("1"))
    }

    /// Writes `rows` into `vicidial_recording_access_log` on one connection.
    pub async fn log_recording_access(&self, rows: Vec<RecordingAccess>) -> Result<(), DbError> {
        self.run("writing vicidial_recording_access_log", move |c| {
            Box::pin(async move {
                for r in rows {
                    sqlx::query(
                        "INSERT INTO vicidial_recording_access_log \
                             (recording_id, lead_id, user, access_datetime, access_result, ip) \
                         VALUES (?, ?, ?, FROM_UNIXTIME(?), ?, ?)",
                    )
                    .bind(r.recording_id)
                    .bind(r.lead_id)
                    .bind(r.user)
                    .bind(r.at)
                    .bind(r.result.as_str())
                    .bind(r.ip)
                    .execute(&mut *c)
                    .await?;
                }
                Ok(())
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_fit_vicidials_columns() {
        let r = RecordingAccess::new(
            4,
            Some(9),
            "ev\u{1b}[il'; DROP-_user_with_a_long_name",
            0,
            AccessResult::InvalidUser,
            "2001:db8::1234:5678:9abc",
        );
        assert_eq!(r.user, "evilDROP-_user_with_");
        assert_eq!(r.ip, "");
        let r = RecordingAccess::new(4, None, "6666", 0, AccessResult::Accessed, "10.0.0.77");
        assert_eq!((r.user.as_str(), r.ip.as_str()), ("6666", "10.0.0.77"));
        assert_eq!(r.result.as_str(), "ACCESSED");
    }
}
