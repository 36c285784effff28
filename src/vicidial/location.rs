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
    /// No `recording_log` row has this id (archived or deleted).
    Missing,
}

impl VicidialDb {
    /// Sets `recording_log.location` to `new` only if it is still exactly
    /// `expected` (byte for byte, not by the table's case-insensitive
    /// collation): one compare-and-set statement, so a concurrent VICIdial
    /// script is never overwritten. A row that already holds `new` counts as
    /// updated, so the step can be repeated after a crash. Used both ways: archive (local URL →
    /// recvault link) and `restore-locations` (link → old URL).
    pub async fn replace_location(
        &self,
        recording_id: u32,
        expected: &str,
        new: &str,
    ) -> Result<LocationUpdate, DbError> {
        const ACTION: &str = "rewriting recording_log.location";
        let (expected, new_value) = (expected.to_string(), new.to_string());
        self.run(ACTION, move |c| {
            Box::pin(async move {
                // FOUND_ROWS is on: rows_affected counts matched rows.
                let matched = sqlx::query(REPLACE_LOCATION_SQL)
                    .bind(new_value.clone())
                    .bind(recording_id)
                    .bind(expected)
                    .execute(&mut *c)
                    .await?
                    .rows_affected();
                if matched > 0 {
                    return Ok(LocationUpdate::Updated);
                }
                let current: Option<(Option<String>,)> =
                    sqlx::query_as("SELECT location FROM recording_log WHERE recording_id = ?")
                        .bind(recording_id)
                        .fetch_optional(&mut *c)
                        .await?;
                Ok(match current {
                    // Already done (a retry after a lost answer, or a restart
                    // after kill -9 between this update and the ledger's commit).
                    Some((Some(current),)) if current.as_bytes() == new_value.as_bytes() => {
                        LocationUpdate::Updated
                    }
                    Some((current,)) => LocationUpdate::Changed { current },
                    None => LocationUpdate::Missing,
                })
            })
        })
        .await
    }

    /// `recording_log.location` of one row (None: no row; Some(None): NULL).
    pub async fn location(&self, recording_id: u32) -> Result<Option<Option<String>>, DbError> {
        self.run("reading recording_log.location", move |c| {
            Box::pin(async move {
                let row: Option<(Option<String>,)> =
                    sqlx::query_as("SELECT location FROM recording_log WHERE recording_id = ?")
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
