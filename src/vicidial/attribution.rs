//! Which call a recording file belongs to, from VICIdial's database.
//!
//! A file is matched to the newest `recording_log` row of this server with
//! its `filename` (the file name without extension and leg suffix, as
//! VICIdial's audio scripts look it up). Then, following how VICIdial fills
//! `recording_log.vicidial_id` (www/agc/manager_send.php, vdc_db_query.php,
//! agi-VDAD_ALL_outbound.agi, agi-VDAD_ALL_inbound.agi):
//! - an id with a dot is the call's `uniqueid` → `vicidial_log` (outbound;
//!   `campaign_id` is the campaign);
//! - an id of digits only is a `closecallid` → `vicidial_closer_log`
//!   (inbound; `campaign_id` holds the in-group);
//! - anything else (a manual-dial caller id `M…` not yet replaced, a gateway
//!   `G…` id, empty), or a log row already archived, falls back to the lead:
//!   `vicidial_list.lead_id → list_id → vicidial_lists.campaign_id`.
//!
//! One statement per batch: a derived table picks the newest row per name
//! through the `filename` index, every join is on a primary key.

use std::collections::HashMap;
use std::sync::LazyLock;

use sqlx::Row as _;
use sqlx::mysql::MySqlRow;

use super::db::{DbError, VicidialDb};

/// Where the campaign came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttributionSource {
    /// `vicidial_log` (outbound call): `campaign` is a campaign id.
    OutboundCall,
    /// `vicidial_closer_log` (inbound call): `campaign` is an in-group id.
    InboundCall,
    /// `vicidial_lists` of the lead's list: the list's campaign.
    LeadList,
    /// Only the `recording_log` row was found; `campaign` is None.
    RecordingOnly,
}

/// What VICIdial's database says about one recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallAttribution {
    /// `recording_log.recording_id` of the newest matching row.
    pub recording_id: u32,
    /// `recording_log.filename` as stored.
    pub filename: String,
    /// Campaign id, or the in-group id for inbound calls (see `source`).
    pub campaign: Option<String>,
    /// Where `campaign` came from.
    pub source: AttributionSource,
    /// Lead id (`recording_log.lead_id`, else the call log's).
    pub lead_id: Option<u32>,
    /// The customer's number: the call log's `phone_number`, else the lead's.
    pub phone: Option<String>,
    /// The agent: the call log's `user`, else `recording_log.user`; VICIdial's
    /// placeholders `VDAD` and `VDCL` (no agent) count as none.
    pub agent: Option<String>,
    /// Recording start, Unix seconds (`recording_log.start_epoch`, else the call's).
    pub started_at: Option<i64>,
    /// Recording length in seconds (`recording_log.length_in_sec`, else the
    /// call's); None while VICIdial has not written it yet.
    pub length_secs: Option<u32>,
    /// `recording_log.vicidial_id`, as stored.
    pub vicidial_id: Option<String>,
}

/// `recording_log.filename` for a recording file: the name without its audio
/// extensions (`.wav`, `.gsm`, `.mp3`, `.ogg`, `.gsw`, `.flac`, `.opus`, and
/// `.gpg` of encrypted copies; any case) and without the leg suffix `-all`,
/// `-in` or `-out`, as VICIdial's move/compress/ftp scripts strip them.
pub fn recording_log_filename(file_name: &str) -> &str {
    const EXTENSIONS: [&str; 8] = ["wav", "gsm", "mp3", "ogg", "gsw", "flac", "opus", "gpg"];
    let mut name = file_name;
    while let Some((stem, ext)) = name.rsplit_once('.') {
        if stem.is_empty() || !EXTENSIONS.iter().any(|e| e.eq_ignore_ascii_case(ext)) {
            break;
        }
        name = stem;
    }
    for leg in ["-all", "-in", "-out"] {
        let cut = name.len().saturating_sub(leg.len());
        if cut > 0 && name.is_char_boundary(cut) && name[cut..].eq_ignore_ascii_case(leg) {
            return &name[..cut];
        }
    }
    name
}

/// Statement shapes (IN-list lengths): a batch is padded up to one of these,
/// so each connection prepares at most three statements.
const SHAPES: [usize; 3] = [1, 10, 100];

static STATEMENTS: LazyLock<[String; 3]> = LazyLock::new(|| SHAPES.map(statement));

fn statement(names: usize) -> String {
    let placeholders = vec!["?"; names].join(", ");
    format!(
        "SELECT r.recording_id, r.filename, r.start_epoch, r.length_in_sec, r.lead_id, \
                r.user, r.vicidial_id, \
                vl.campaign_id, vl.phone_number, vl.user, vl.lead_id, vl.start_epoch, vl.length_in_sec, \
                vc.campaign_id, vc.phone_number, vc.user, vc.lead_id, vc.start_epoch, vc.length_in_sec, \
                li.phone_number, ls.campaign_id \
         FROM (SELECT MAX(recording_id) AS recording_id FROM recording_log \
               WHERE server_ip = ? AND filename IN ({placeholders}) GROUP BY filename) m \
         JOIN recording_log r ON r.recording_id = m.recording_id \
         LEFT JOIN vicidial_log vl \
                ON r.vicidial_id LIKE '%.%' AND vl.uniqueid = r.vicidial_id \
         LEFT JOIN vicidial_closer_log vc \
                ON r.vicidial_id REGEXP '^[0-9]{{1,10}}$' \
               AND vc.closecallid = CAST(r.vicidial_id AS UNSIGNED) \
         LEFT JOIN vicidial_list li \
                ON li.lead_id = COALESCE(NULLIF(r.lead_id, 0), vl.lead_id, vc.lead_id) \
         LEFT JOIN vicidial_lists ls ON ls.list_id = li.list_id"
    )
}

/// The SQL of the statement for `names` file names (for EXPLAIN and the bench).
pub fn attribution_sql(names: usize) -> String {
    statement(names)
}

impl VicidialDb {
    /// Attributes one recording file (`20260301-101500_5551234567-all.wav`);
    /// None when this server has no `recording_log` row for it (yet).
    pub async fn attribute(&self, file_name: &str) -> Result<Option<CallAttribution>, DbError> {
        Ok(self.attribute_batch(&[file_name]).await?.pop().flatten())
    }

    /// Attributes many files at once, in statements of up to 100 names; the
    /// result is in the order of `file_names`.
    pub async fn attribute_batch(
        &self,
        file_names: &[&str],
    ) -> Result<Vec<Option<CallAttribution>>, DbError> {
        let keys: Vec<&str> = file_names
            .iter()
            .map(|n| recording_log_filename(n))
            .collect();
        let mut found: HashMap<String, CallAttribution> = HashMap::new();
        for chunk in keys.chunks(SHAPES[SHAPES.len() - 1]) {
            for a in self.attribute_chunk(chunk).await? {
                // filename compares case-insensitively in VICIdial's collation.
                found.insert(a.filename.to_lowercase(), a);
            }
        }
        Ok(keys
            .iter()
            .map(|k| found.get(&k.to_lowercase()).cloned())
            .collect())
    }

    async fn attribute_chunk(&self, keys: &[&str]) -> Result<Vec<CallAttribution>, DbError> {
        let shape = SHAPES.iter().position(|s| *s >= keys.len()).unwrap_or(2);
        let sql = STATEMENTS[shape].as_str();
        let server_ip = self.server_ip().to_string();
        let mut padded: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        let last = padded.last().cloned().unwrap_or_default();
        padded.resize(SHAPES[shape], last);
        let rows = self
            .run("attributing recordings", move |c| {
                Box::pin(async move {
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(server_ip);
                    for name in padded {
                        q = q.bind(name);
                    }
                    q.fetch_all(&mut *c).await
                })
            })
            .await?;
        rows.iter()
            .map(read_row)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.error("attributing recordings", e))
    }
}

/// VICIdial's `user` placeholders for "no agent".
fn agent(user: Option<String>) -> Option<String> {
    user.filter(|u| !u.is_empty() && u != "VDAD" && u != "VDCL")
}

fn read_row(row: &MySqlRow) -> Result<CallAttribution, sqlx::Error> {
    let (source, log, log_start, log_length) = call_log(row)?;
    let (log_campaign, log_phone, log_user, log_lead) = log.unwrap_or_default();
    let (campaign, source) = match (log_campaign, text(row, 20)?) {
        (Some(c), _) => (Some(c), source),
        (None, Some(c)) => (Some(c), AttributionSource::LeadList),
        (None, None) => (None, source),
    };
    let lead_id = row
        .try_get::<Option<u32>, _>(4)?
        .filter(|l| *l > 0)
        .or(log_lead);
    Ok(CallAttribution {
        recording_id: row.try_get::<u32, _>(0)?,
        filename: row.try_get::<Option<String>, _>(1)?.unwrap_or_default(),
        campaign,
        source,
        lead_id,
        phone: log_phone
            .or(text(row, 19)?)
            .map(|p| crate::recording::phone::normalize_lenient(&p)),
        agent: agent(log_user).or(agent(text(row, 5)?)),
        started_at: row
            .try_get::<Option<u32>, _>(2)?
            .or(log_start)
            .map(i64::from),
        length_secs: row
            .try_get::<Option<u32>, _>(3)?
            .or(log_length.and_then(|l| u32::try_from(l).ok())),
        vicidial_id: text(row, 6)?,
    })
}

/// A text column, empty as `None`.
fn text(row: &MySqlRow, i: usize) -> Result<Option<String>, sqlx::Error> {
    Ok(row
        .try_get::<Option<String>, _>(i)?
        .filter(|s| !s.is_empty()))
}

/// A call log row's campaign, phone number, user and lead id.
type LogColumns = (Option<String>, Option<String>, Option<String>, Option<u32>);

/// Where the attribution comes from, the call log's columns, its start time and length.
type CallLog = (
    AttributionSource,
    Option<LogColumns>,
    Option<u32>,
    Option<i32>,
);

/// Which call log the recording was joined to (outbound first).
fn call_log(row: &MySqlRow) -> Result<CallLog, sqlx::Error> {
    let outbound = (
        text(row, 7)?,
        text(row, 8)?,
        text(row, 9)?,
        row.try_get::<Option<u32>, _>(10)?,
    );
    let inbound = (
        text(row, 13)?,
        text(row, 14)?,
        text(row, 15)?,
        row.try_get::<Option<u32>, _>(16)?,
    );
    // A joined log row always has its lead_id (NOT NULL in both tables).
    Ok(if outbound.3.is_some() {
        let start = row.try_get::<Option<u32>, _>(11)?;
        let length = row.try_get::<Option<i32>, _>(12)?;
        (
            AttributionSource::OutboundCall,
            Some(outbound),
            start,
            length,
        )
    } else if inbound.3.is_some() {
        let start = row.try_get::<Option<u32>, _>(17)?;
        let length = row.try_get::<Option<i32>, _>(18)?;
        (AttributionSource::InboundCall, Some(inbound), start, length)
    } else {
        (AttributionSource::RecordingOnly, None, None, None)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filename_key_strips_extensions_and_legs() {
        for (file, key) in [
            (
                "20260301-101500_5551234567-all.wav",
                "20260301-101500_5551234567",
            ),
            (
                "20260301-101500_5551234567-in.wav",
                "20260301-101500_5551234567",
            ),
            (
                "20260301-101500_5551234567-out.WAV",
                "20260301-101500_5551234567",
            ),
            (
                "20260301-101500_5551234567-all.mp3",
                "20260301-101500_5551234567",
            ),
            (
                "20260301-101500_5551234567-ALL.GSM",
                "20260301-101500_5551234567",
            ),
            (
                "20260301-101500_5551234567-all.mp3.gpg",
                "20260301-101500_5551234567",
            ),
            (
                "20260301-101500_5551234567.wav",
                "20260301-101500_5551234567",
            ),
            (
                "SALES_1001_20260301-101500_5551234567-all.ogg",
                "SALES_1001_20260301-101500_5551234567",
            ),
            // Unknown extensions and inner legs stay.
            ("name-all.txt", "name-all.txt"),
            ("a-in-b.wav", "a-in-b"),
            ("-all.wav", "-all"),
            (".wav", ".wav"),
            ("é-all.wav", "é"),
        ] {
            assert_eq!(recording_log_filename(file), key, "{file}");
        }
    }

    #[test]
    fn statement_shapes() {
        let sql = attribution_sql(3);
        assert!(sql.contains("filename IN (?, ?, ?)"), "{sql}");
        assert_eq!(sql.matches('?').count(), 4);
        assert!(sql.contains("REGEXP '^[0-9]{1,10}$'"), "{sql}");
        assert_eq!(STATEMENTS[2].matches('?').count(), 101);
    }

    #[test]
    fn placeholder_agents_are_none() {
        assert_eq!(agent(Some("VDAD".into())), None);
        assert_eq!(agent(Some("VDCL".into())), None);
        assert_eq!(agent(Some(String::new())), None);
        assert_eq!(agent(Some("1001".into())).as_deref(), Some("1001"));
    }
}
