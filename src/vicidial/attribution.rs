//! Which call a recording file belongs to, from VICIdial's database.
//!
//! Every `recording_log` row of this server with the file's `filename`
//! (the file name without extension and leg suffix, as VICIdial's audio
//! scripts look it up) is a candidate: from the live table and, where the
//! archive script moved rows, `recording_log_archive` (the live copy wins
//! where a row is in both). `row_match` then picks the row whose times
//! agree with the file's, or says why none can be told. Then, following how
//! VICIdial fills `recording_log.vicidial_id` (www/agc/manager_send.php,
//! vdc_db_query.php, agi-VDAD_ALL_outbound.agi, agi-VDAD_ALL_inbound.agi):
//! - an id with a dot is the call's `uniqueid` → `vicidial_log` (outbound;
//!   `campaign_id` is the campaign), else `vicidial_log_archive`;
//! - an id of digits only is a `closecallid` → `vicidial_closer_log`
//!   (inbound; `campaign_id` holds the in-group), else its archive;
//! - anything else (a manual-dial caller id `M…` not yet replaced, a gateway
//!   `G…` id, empty), or a log row in neither table, falls back to the lead:
//!   `vicidial_list.lead_id → list_id → vicidial_lists.campaign_id`.
//!
//! One statement per table and batch: the rows through the `filename`
//! index, every join on a primary key.

use std::collections::HashMap;
use std::time::Duration;

use sqlx::Row as _;
use sqlx::mysql::MySqlRow;

use super::archive::{
    ArchiveTables, CLOSER_LOG_ARCHIVE, RECORDING_LOG_ARCHIVE, VICIDIAL_LOG_ARCHIVE,
};
use super::db::{DbError, VicidialDb};
use super::row_match::{FileTimes, RowChoice, RowTimes, choose};

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
    /// `recording_log.recording_id` of the file's row.
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
    /// The `recording_log` row's own times, which matched it to the file.
    pub row: RowTimes,
    /// The archive tables this came from (`recording_log_archive`, …);
    /// empty when everything was in the live tables.
    pub archived: Vec<&'static str>,
}

/// What the database says about one recording file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attributed {
    /// The file's row, and its call.
    Found(CallAttribution),
    /// Rows with the file's name exist but none can be told to be its
    /// (`row_match`): why, naming them.
    Ambiguous(String),
    /// This server has no `recording_log` row with the file's name (yet).
    Missing,
}

impl Attributed {
    /// The call, when the file's row was found.
    pub fn found(&self) -> Option<&CallAttribution> {
        match self {
            Attributed::Found(a) => Some(a),
            _ => None,
        }
    }
}

/// A file to attribute: its name (`20260301-101500_5551234567-all.wav`)
/// and its times.
#[derive(Debug, Clone, Copy)]
pub struct FileQuery<'a> {
    pub name: &'a str,
    pub times: FileTimes,
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
/// so each connection prepares at most three statements per table.
const SHAPES: [usize; 3] = [1, 10, 100];

/// The call log's columns: its own where it has the row, else its
/// archive's (joined only then), then the archive's key as the flag.
fn call_columns(live: &str, archive: Option<&str>, key: &str) -> String {
    let col = |c: &str| match archive {
        Some(a) => format!("COALESCE({live}.{c}, {a}.{c})"),
        None => format!("{live}.{c}"),
    };
    let cols: Vec<String> = [
        "campaign_id",
        "phone_number",
        "user",
        "lead_id",
        "start_epoch",
        "length_in_sec",
    ]
    .iter()
    .map(|c| col(c))
    .collect();
    let flag = archive.map_or("NULL".to_string(), |a| format!("{a}.{key}"));
    format!("{}, {flag}", cols.join(", "))
}

/// The SQL for `names` file names in `table` (`recording_log` or its
/// archive), joining the call logs' archives that exist. Public for EXPLAIN
/// in bench/vicidial.sh.
pub fn attribution_sql(table: &str, archives: ArchiveTables, names: usize) -> String {
    let placeholders = vec!["?"; names].join(", ");
    let vla = archives.vicidial_log.then_some("vla");
    let vca = archives.closer_log.then_some("vca");
    let outbound_id = "r.vicidial_id LIKE '%.%'";
    let inbound_id = "r.vicidial_id REGEXP '^[0-9]{1,10}$'";
    let mut joins =
        format!("LEFT JOIN vicidial_log vl ON {outbound_id} AND vl.uniqueid = r.vicidial_id ");
    if vla.is_some() {
        joins.push_str(&format!(
            "LEFT JOIN {VICIDIAL_LOG_ARCHIVE} vla ON vl.uniqueid IS NULL AND {outbound_id} \
             AND vla.uniqueid = r.vicidial_id "
        ));
    }
    joins.push_str(&format!(
        "LEFT JOIN vicidial_closer_log vc ON {inbound_id} \
         AND vc.closecallid = CAST(r.vicidial_id AS UNSIGNED) "
    ));
    if vca.is_some() {
        joins.push_str(&format!(
            "LEFT JOIN {CLOSER_LOG_ARCHIVE} vca ON vc.closecallid IS NULL AND {inbound_id} \
             AND vca.closecallid = CAST(r.vicidial_id AS UNSIGNED) "
        ));
    }
    let leads: Vec<String> = ["vl", "vla", "vc", "vca"]
        .iter()
        .filter(|a| match **a {
            "vla" => vla.is_some(),
            "vca" => vca.is_some(),
            _ => true,
        })
        .map(|a| format!("{a}.lead_id"))
        .collect();
    format!(
        "SELECT r.recording_id, r.filename, r.start_epoch, r.end_epoch, r.length_in_sec, \
                r.lead_id, r.user, r.vicidial_id, {}, {}, li.phone_number, ls.campaign_id \
         FROM {table} r {joins}\
         LEFT JOIN vicidial_list li ON li.lead_id = COALESCE(NULLIF(r.lead_id, 0), {}) \
         LEFT JOIN vicidial_lists ls ON ls.list_id = li.list_id \
         WHERE r.server_ip = ? AND r.filename IN ({placeholders})",
        call_columns("vl", vla, "uniqueid"),
        call_columns("vc", vca, "closecallid"),
        leads.join(", ")
    )
}

impl VicidialDb {
    /// Attributes one recording file; `tolerance` is `[naming] time_tolerance`.
    pub async fn attribute(
        &self,
        file_name: &str,
        times: FileTimes,
        tolerance: Duration,
    ) -> Result<Attributed, DbError> {
        let file = FileQuery {
            name: file_name,
            times,
        };
        let mut answers = self.attribute_batch(&[file], tolerance).await?;
        Ok(answers.pop().unwrap_or(Attributed::Missing))
    }

    /// Attributes many files at once (statements of up to 100 names per
    /// table); the result is in the order of `files`.
    pub async fn attribute_batch(
        &self,
        files: &[FileQuery<'_>],
        tolerance: Duration,
    ) -> Result<Vec<Attributed>, DbError> {
        let names: Vec<&str> = files.iter().map(|f| f.name).collect();
        let candidates = self.candidates(&names).await?;
        let tolerance = i64::try_from(tolerance.as_secs()).unwrap_or(i64::MAX);
        Ok(files
            .iter()
            .zip(candidates)
            .map(|(file, mut rows)| {
                if rows.is_empty() {
                    return Attributed::Missing;
                }
                let times: Vec<(u32, RowTimes)> =
                    rows.iter().map(|a| (a.recording_id, a.row)).collect();
                match choose(&file.times, &times, tolerance) {
                    RowChoice::Row(i) => Attributed::Found(rows.swap_remove(i)),
                    RowChoice::Ambiguous(why) => Attributed::Ambiguous(why),
                }
            })
            .collect())
    }

    /// Every `recording_log` row of this server for each of `file_names`
    /// (live first, then archived rows not also live), by recording id.
    pub async fn candidates(
        &self,
        file_names: &[&str],
    ) -> Result<Vec<Vec<CallAttribution>>, DbError> {
        let keys: Vec<&str> = file_names
            .iter()
            .map(|n| recording_log_filename(n))
            .collect();
        let archives = match keys.is_empty() {
            true => ArchiveTables::default(),
            false => self.archive_tables().await?,
        };
        let mut found: HashMap<String, Vec<CallAttribution>> = HashMap::new();
        for chunk in keys.chunks(SHAPES[SHAPES.len() - 1]) {
            let mut rows = self.rows_of("recording_log", archives, chunk).await?;
            if archives.recording_log {
                rows.extend(self.rows_of(RECORDING_LOG_ARCHIVE, archives, chunk).await?);
            }
            for a in rows {
                // filename compares case-insensitively in VICIdial's collation.
                let name = found.entry(a.filename.to_lowercase()).or_default();
                if !name.iter().any(|b| b.recording_id == a.recording_id) {
                    name.push(a);
                }
            }
        }
        Ok(keys
            .iter()
            .map(|k| {
                let mut rows = found.get(&k.to_lowercase()).cloned().unwrap_or_default();
                rows.sort_by_key(|a| a.recording_id);
                rows
            })
            .collect())
    }

    async fn rows_of(
        &self,
        table: &'static str,
        archives: ArchiveTables,
        keys: &[&str],
    ) -> Result<Vec<CallAttribution>, DbError> {
        let shape = SHAPES.iter().position(|s| *s >= keys.len()).unwrap_or(2);
        let sql = attribution_sql(table, archives, SHAPES[shape]);
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
        let archived = (table == RECORDING_LOG_ARCHIVE).then_some(table);
        rows.iter()
            .map(|r| read_row(r, archived))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.error("attributing recordings", e))
    }
}

/// VICIdial's `user` placeholders for "no agent".
fn agent(user: Option<String>) -> Option<String> {
    user.filter(|u| !u.is_empty() && u != "VDAD" && u != "VDCL")
}

/// One candidate row; `archived` names its table when it is the archive.
fn read_row(
    row: &MySqlRow,
    archived: Option<&'static str>,
) -> Result<CallAttribution, sqlx::Error> {
    let log = call_log(row)?;
    let (log_campaign, log_phone, log_user, log_lead) = log.columns.unwrap_or_default();
    let (campaign, source) = match (log_campaign, text(row, 23)?) {
        (Some(c), _) => (Some(c), log.source),
        (None, Some(c)) => (Some(c), AttributionSource::LeadList),
        (None, None) => (None, log.source),
    };
    let lead_id = row
        .try_get::<Option<u32>, _>(5)?
        .filter(|l| *l > 0)
        .or(log_lead);
    let start = row.try_get::<Option<u32>, _>(2)?;
    let length = row.try_get::<Option<u32>, _>(4)?;
    let mut tables: Vec<&'static str> = archived.into_iter().collect();
    tables.extend(log.archived);
    Ok(CallAttribution {
        recording_id: row.try_get::<u32, _>(0)?,
        filename: row.try_get::<Option<String>, _>(1)?.unwrap_or_default(),
        campaign,
        source,
        lead_id,
        phone: log_phone
            .or(text(row, 22)?)
            .map(|p| crate::recording::phone::normalize_lenient(&p)),
        agent: agent(log_user).or(agent(text(row, 6)?)),
        started_at: start.or(log.start).map(i64::from),
        length_secs: length.or(log.length.and_then(|l| u32::try_from(l).ok())),
        vicidial_id: text(row, 7)?,
        row: RowTimes {
            start: start.map(i64::from),
            end: row.try_get::<Option<u32>, _>(3)?.map(i64::from),
            length,
        },
        archived: tables,
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

/// The call log a recording was joined to.
struct CallLog {
    source: AttributionSource,
    columns: Option<LogColumns>,
    start: Option<u32>,
    length: Option<i32>,
    /// The archive table it came from, if it did.
    archived: Option<&'static str>,
}

/// Which call log the recording was joined to (outbound first): columns
/// 8–14 are the outbound log's (14: its archive's key, set when the row
/// came from there), 15–21 the inbound log's.
fn call_log(row: &MySqlRow) -> Result<CallLog, sqlx::Error> {
    let columns = |at: usize| -> Result<LogColumns, sqlx::Error> {
        Ok((
            text(row, at)?,
            text(row, at + 1)?,
            text(row, at + 2)?,
            row.try_get::<Option<u32>, _>(at + 3)?,
        ))
    };
    let (outbound, inbound) = (columns(8)?, columns(15)?);
    // A joined log row always has its lead_id (NOT NULL in both tables).
    let (source, columns, at, archived) = if outbound.3.is_some() {
        let from_archive = row.try_get::<Option<String>, _>(14)?.is_some();
        let archived = from_archive.then_some(VICIDIAL_LOG_ARCHIVE);
        (AttributionSource::OutboundCall, outbound, 8, archived)
    } else if inbound.3.is_some() {
        let from_archive = row.try_get::<Option<u32>, _>(21)?.is_some();
        let archived = from_archive.then_some(CLOSER_LOG_ARCHIVE);
        (AttributionSource::InboundCall, inbound, 15, archived)
    } else {
        return Ok(CallLog {
            source: AttributionSource::RecordingOnly,
            columns: None,
            start: None,
            length: None,
            archived: None,
        });
    };
    Ok(CallLog {
        source,
        columns: Some(columns),
        start: row.try_get::<Option<u32>, _>(at + 4)?,
        length: row.try_get::<Option<i32>, _>(at + 5)?,
        archived,
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
        let none = ArchiveTables::default();
        let sql = attribution_sql("recording_log", none, 3);
        assert!(sql.contains("filename IN (?, ?, ?)"), "{sql}");
        assert_eq!(sql.matches('?').count(), 4);
        assert!(sql.contains("REGEXP '^[0-9]{1,10}$'"), "{sql}");
        assert!(!sql.contains("_archive"), "{sql}");
        let all = ArchiveTables {
            recording_log: true,
            vicidial_log: true,
            closer_log: true,
        };
        let sql = attribution_sql(RECORDING_LOG_ARCHIVE, all, 100);
        assert!(sql.contains("FROM recording_log_archive r"), "{sql}");
        assert!(sql.contains("LEFT JOIN vicidial_log_archive vla ON vl.uniqueid IS NULL"));
        assert!(
            sql.contains("LEFT JOIN vicidial_closer_log_archive vca ON vc.closecallid IS NULL")
        );
        assert_eq!(sql.matches('?').count(), 101);
    }

    #[test]
    fn placeholder_agents_are_none() {
        assert_eq!(agent(Some("VDAD".into())), None);
        assert_eq!(agent(Some("VDCL".into())), None);
        assert_eq!(agent(Some(String::new())), None);
        assert_eq!(agent(Some("1001".into())).as_deref(), Some("1001"));
    }
}
