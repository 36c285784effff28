//! `recording_log.location`: deciding whether it still points at the local
//! file recvault archived, and rewriting it only if it still does.
//!
//! VICIdial's scripts write these forms (bin/AST_CRON_audio_*.pl):
//! - `http(s)://SERVER_IP/RECORDINGS/NAME-all.wav` (move_mix, move_VDonly);
//! - `http(s)://SERVER_IP/RECORDINGS/MP3|GSM|OGG|GSW/[YYYY-MM-DD/]NAME-all.ext`
//!   (compress, `--file-sorting` adds the date directory);
//! - `http(s)://SERVER_IP/RECORDINGS/GPG/NAME…gpg` (encrypt);
//! - `VARHTTP_path/[date dirs/]NAME-all.ext` (ftp: the file now lives on the
//!   archive server, not here);
//! - the bare `filename` (the AGI's placeholder before the mix), `DELETED`
//!   (AST_CRON_purge_recordings.pl), NULL (GDPR purge in admin_modify_lead.php).
//!
//! Only the first three, with this server's host and exactly the path of the
//! archived file under `PATHDONEmonitor` (Apache's `/RECORDINGS/`), point at
//! the local file. Everything else belongs to someone else and is left alone.

use super::db::{DbError, VicidialDb};

/// Apache's alias for `PATHDONEmonitor` on a VICIdial server.
pub const RECORDINGS_ALIAS: &str = "/RECORDINGS/";

/// Whether `location` is a URL VICIdial wrote for the local file at
/// `relative_path` (under `PATHDONEmonitor`, `/`-separated, e.g.
/// `MP3/2026-03-01/NAME-all.mp3`) on a server reachable as one of `hosts`
/// (its `server_ip`, alternate and external IPs, host names; any case, any
/// port). Scheme, host and percent-escapes are compared the way a web server
/// would; the path must match exactly.
pub fn points_at_local_file(location: &str, relative_path: &str, hosts: &[&str]) -> bool {
    let Some(rest) = strip_scheme(location) else {
        return false;
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => return false,
    };
    if path.contains(['?', '#']) || !host_matches(authority, hosts) {
        return false;
    }
    let Some(file) = path.strip_prefix(RECORDINGS_ALIAS) else {
        return false;
    };
    !relative_path.is_empty() && decode_path(file).as_deref() == Some(relative_path)
}

fn strip_scheme(location: &str) -> Option<&str> {
    ["http://", "https://"].iter().find_map(|scheme| {
        let head = location.get(..scheme.len())?;
        head.eq_ignore_ascii_case(scheme)
            .then(|| &location[scheme.len()..])
    })
}

fn host_matches(authority: &str, hosts: &[&str]) -> bool {
    if authority.contains('@') {
        return false;
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.split(':').next().unwrap_or(""),
    };
    !host.is_empty()
        && hosts
            .iter()
            .any(|h| !h.is_empty() && h.eq_ignore_ascii_case(host))
}

/// Percent-decodes `text`; None for a bad escape or non-UTF-8 bytes.
fn decode_path(text: &str) -> Option<String> {
    String::from_utf8(crate::recording::key::decode_name(text)?).ok()
}

/// The compare-and-set statement (bound: new, recording_id, expected); public
/// for EXPLAIN in bench/vicidial.sh.
pub const REPLACE_LOCATION_SQL: &str = "UPDATE recording_log SET location = ? \
     WHERE recording_id = ? AND location = ? COLLATE utf8mb4_bin";

/// The same on the row's copy in `recording_log_archive` (VICIdial's archive
/// script keeps `recording_id` unique there, not a primary key).
pub const REPLACE_ARCHIVED_LOCATION_SQL: &str = "UPDATE recording_log_archive SET location = ? \
     WHERE recording_id = ? AND location = ? COLLATE utf8mb4_bin";

/// One row's location (bound: recording_id).
pub const LOCATION_SQL: &str = "SELECT location FROM recording_log WHERE recording_id = ?";
pub const ARCHIVED_LOCATION_SQL: &str =
    "SELECT location FROM recording_log_archive WHERE recording_id = ?";

/// What a location rewrite did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocationUpdate {
    /// The row held the expected value and now holds the new one.
    Updated,
    /// The row holds something else now (another script moved or purged
    /// the recording): nothing was written. `current` is what it holds.
    Changed {
        /// The row's location now (None for NULL).
        current: Option<String>,
    },
    /// No `recording_log` row has this id, live or archived (deleted).
    Missing,
}

/// A row's location where it was found: None when no row has the id,
/// `Some(None)` when it is NULL.
type Found = Option<Option<String>>;

impl VicidialDb {
    /// Sets `recording_log.location` of row `recording_id` to `new` only if
    /// it is still exactly `expected` (byte for byte, not by the table's
    /// case-insensitive collation): one compare-and-set statement, so a
    /// concurrent VICIdial script is never overwritten. A row that already
    /// holds `new` counts as updated, so the step can be repeated after a
    /// crash. Used both ways: archive (local URL → recvault link) and
    /// `restore-locations` (link → old URL).
    ///
    /// VICIdial's archive script copies rows into `recording_log_archive`
    /// and never updates a copy already there; it later deletes the live
    /// row. The live row, while there, decides; its archived copy follows
    /// it (compare-and-set from the same `expected`, after the live row, so
    /// a copy taken at any moment ends up with `new`); without a live row
    /// the archived one decides.
    pub async fn replace_location(
        &self,
        recording_id: u32,
        expected: &str,
        new: &str,
    ) -> Result<LocationUpdate, DbError> {
        const ACTION: &str = "rewriting recording_log.location";
        let live = self
            .swap_location(
                ACTION,
                REPLACE_LOCATION_SQL,
                LOCATION_SQL,
                recording_id,
                expected,
                new,
            )
            .await?;
        let live_done = match &live {
            Some(Some(current)) if current.as_bytes() == new.as_bytes() => true,
            Some(current) => {
                return Ok(LocationUpdate::Changed {
                    current: current.clone(),
                });
            }
            None => false,
        };
        if !self.archive_tables().await?.recording_log {
            return Ok(match live_done {
                true => LocationUpdate::Updated,
                false => LocationUpdate::Missing,
            });
        }
        let archived = self
            .swap_location(
                ACTION,
                REPLACE_ARCHIVED_LOCATION_SQL,
                ARCHIVED_LOCATION_SQL,
                recording_id,
                expected,
                new,
            )
            .await?;
        Ok(match archived {
            _ if live_done => LocationUpdate::Updated,
            Some(Some(current)) if current.as_bytes() == new.as_bytes() => LocationUpdate::Updated,
            Some(current) => LocationUpdate::Changed { current },
            None => LocationUpdate::Missing,
        })
    }

    /// One table's compare-and-set: the row's location afterwards (`new`
    /// when it was set now), or None without a row. Reads first, so a
    /// table the rewrite need not touch is not written (a recvault-only
    /// database user may lack UPDATE on `recording_log_archive` where no
    /// row was ever archived).
    async fn swap_location(
        &self,
        action: &'static str,
        update: &'static str,
        select: &'static str,
        recording_id: u32,
        expected: &str,
        new: &str,
    ) -> Result<Found, DbError> {
        let (expected, new_value) = (expected.to_string(), new.to_string());
        self.run(action, move |c| {
            Box::pin(async move {
                let current: Option<(Option<String>,)> = sqlx::query_as(select)
                    .bind(recording_id)
                    .fetch_optional(&mut *c)
                    .await?;
                match &current {
                    Some((Some(now),)) if now.as_bytes() == expected.as_bytes() => {}
                    _ => return Ok(current.map(|(l,)| l)),
                }
                // FOUND_ROWS is on: rows_affected counts matched rows.
                let matched = sqlx::query(update)
                    .bind(new_value.clone())
                    .bind(recording_id)
                    .bind(expected)
                    .execute(&mut *c)
                    .await?
                    .rows_affected();
                if matched > 0 {
                    return Ok(Some(Some(new_value)));
                }
                // Changed between the read and the update: what is there now.
                let now: Option<(Option<String>,)> = sqlx::query_as(select)
                    .bind(recording_id)
                    .fetch_optional(&mut *c)
                    .await?;
                Ok(now.map(|(l,)| l))
            })
        })
        .await
    }

    /// `recording_log.location` of one row (None: no row; Some(None): NULL):
    /// the live row's, else its archived copy's.
    pub async fn location(&self, recording_id: u32) -> Result<Option<Option<String>>, DbError> {
        let live = self.read_location(LOCATION_SQL, recording_id).await?;
        if live.is_some() || !self.archive_tables().await?.recording_log {
            return Ok(live);
        }
        self.read_location(ARCHIVED_LOCATION_SQL, recording_id)
            .await
    }

    async fn read_location(
        &self,
        select: &'static str,
        recording_id: u32,
    ) -> Result<Option<Option<String>>, DbError> {
        self.run("reading recording_log.location", move |c| {
            Box::pin(async move {
                let row: Option<(Option<String>,)> = sqlx::query_as(select)
                    .bind(recording_id)
                    .fetch_optional(&mut *c)
                    .await?;
                Ok(row.map(|(l,)| l))
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTS: [&str; 3] = ["10.0.0.5", "203.0.113.7", "dialer1"];

    fn local(location: &str, rel: &str) -> bool {
        points_at_local_file(location, rel, &HOSTS)
    }

    #[test]
    fn vicidial_forms_that_point_here() {
        let name = "20260301-101500_5551234567-all.wav";
        assert!(local(&format!("http://10.0.0.5/RECORDINGS/{name}"), name));
        assert!(local(&format!("https://10.0.0.5/RECORDINGS/{name}"), name));
        assert!(local(&format!("HTTP://DIALER1:80/RECORDINGS/{name}"), name));
        assert!(local(
            &format!("http://203.0.113.7/RECORDINGS/{name}"),
            name
        ));
        let mp3 = "MP3/2026-03-01/20260301-101500_5551234567-all.mp3";
        assert!(local(&format!("http://10.0.0.5/RECORDINGS/{mp3}"), mp3));
        assert!(local(
            "http://10.0.0.5/RECORDINGS/GSM/a%20b-all.gsm",
            "GSM/a b-all.gsm"
        ));
    }

    #[test]
    fn everything_else_is_someone_elses() {
        let name = "20260301-101500_5551234567-all.wav";
        for location in [
            // Another server, the FTP archive (VARHTTP_path), a different file.
            format!("http://10.0.0.6/RECORDINGS/{name}"),
            format!("http://10.10.10.20/2026-03-01/{name}"),
            "http://10.0.0.5/RECORDINGS/20260301-101500_5551234567-all.mp3".to_string(),
            format!("http://10.0.0.5/RECORDINGS/MP3/{name}"),
            // Placeholders and purges.
            "20260301-101500_5551234567".to_string(),
            "DELETED".to_string(),
            String::new(),
            // Tricks: user info, query, other alias, case of the path.
            format!("http://10.0.0.5@evil/RECORDINGS/{name}"),
            format!("http://evil@10.0.0.5/RECORDINGS/{name}"),
            format!("http://10.0.0.5/RECORDINGS/{name}?x=1"),
            format!("http://10.0.0.5/recordings/{name}"),
            format!("http://10.0.0.5/RECORDINGS/../RECORDINGS/{name}"),
            format!("ftp://10.0.0.5/RECORDINGS/{name}"),
            format!("http://10.0.0.5.evil.com/RECORDINGS/{name}"),
            "http://10.0.0.5/RECORDINGS/%zz".to_string(),
        ] {
            assert!(!local(&location, name), "{location}");
        }
        assert!(!points_at_local_file(
            "http://10.0.0.5/RECORDINGS/",
            "",
            &HOSTS
        ));
        assert!(!points_at_local_file(
            &format!("http:///RECORDINGS/{name}"),
            name,
            &[""]
        ));
    }
}
