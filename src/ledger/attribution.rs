//! The ledger's side of attribution from VICIdial's database: which
//! recordings still wait for it, and recording what the database said
//! (campaign or in-group, lead, phone, agent, call start and length) — each
//! batch one transaction, with one event per recording, so a kill never
//! leaves a recording half-attributed.
//!
//! The file name's attribution (`recording::name`) stays where the database
//! has nothing: a value the database gives replaces it, a missing one does
//! not. A recording whose row cannot be told (`ambiguous`: two
//! `recording_log` rows agree with its times, or rows exist and none does)
//! keeps the name's attribution for good: nothing is guessed, its location
//! is never rewritten, and retention applies the name's rule at once.

use std::time::Duration;

use rusqlite::{OptionalExtension, params};

use super::transitions::insert_event;
use super::{Ledger, LedgerError};
use crate::recording::{FileIdentity, State};

/// The waiting states, exactly as the partial index `recordings_db_waiting`
/// says them (SQLite uses a partial index only for a query repeating its
/// condition).
const WAITING: &str = "(db_attribution IS NULL OR db_attribution IN ('missing', 'failed'))";

/// A recording the database has not attributed yet.
#[derive(Debug, Clone)]
pub struct AttributionTodo {
    pub id: i64,
    /// The file name, as the spool had it.
    pub name: Vec<u8>,
    /// When recvault first saw it (unix seconds): `attribution_wait` counts from here.
    pub first_seen: i64,
    /// Answers asked for so far.
    pub attempts: u32,
    /// Where the file was, and which file it was (size, mtime).
    pub path: Vec<u8>,
    pub identity: FileIdentity,
    /// The call time the name gave, where believed (`recording::name`).
    pub call_time: Option<i64>,
}

/// What VICIdial's database says about one recording's call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DbAttribution {
    /// `recording_log.recording_id`.
    pub vicidial_recording_id: u32,
    /// Campaign id, or for an inbound call its in-group.
    pub campaign: Option<String>,
    /// The in-group of an inbound call.
    pub ingroup: Option<String>,
    /// Which VICIdial log decided the campaign (`outbound`, `inbound`,
    /// `lead_list`, `recording_only`).
    pub source: &'static str,
    pub lead_id: Option<u32>,
    pub phone: Option<String>,
    pub agent: Option<String>,
    /// Recording start, unix seconds.
    pub started_at: Option<i64>,
    /// Length in seconds.
    pub length_secs: Option<u32>,
    /// The VICIdial archive tables it came from, comma-separated; `None`
    /// when all came from the live tables.
    pub archived: Option<String>,
}

/// The database's answer for one recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbAnswer {
    Found(DbAttribution),
    /// Rows exist but none can be told to be the file's: why.
    Ambiguous(String),
    /// This server has no `recording_log` row for the file (yet).
    Missing,
}

/// How many recordings stand where in attribution, for `status` and `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttributionCounts {
    /// Never asked yet.
    pub not_asked: u64,
    /// No `recording_log` row yet; asked again later.
    pub missing: u64,
    /// The database could not be asked; `last_failure` says why.
    pub failed: u64,
    /// No row within `attribution_wait`: the file name's attribution stands.
    pub gave_up: u64,
    /// No row can be told (see the module): the file name's attribution stands.
    pub ambiguous: u64,
    pub done: u64,
    /// Of `done`, attributed from VICIdial's archive tables.
    pub from_archive: u64,
    /// The newest reason a recording could not be attributed.
    pub last_failure: Option<String>,
    /// The newest ambiguous recording's file name and why.
    pub last_ambiguous: Option<(Vec<u8>, String)>,
}

impl AttributionCounts {
    /// Recordings still waiting for the database.
    pub fn waiting(&self) -> u64 {
        self.not_asked + self.missing + self.failed
    }
}

/// The longest a recording waits before its `recording_log` row is looked for again.
const MAX_MISSING_DELAY: i64 = 3600;

impl Ledger {
    /// Up to `limit` recordings waiting for the database whose time to ask
    /// has come, those never asked first.
    pub fn attribution_todo(
        &self,
        now: i64,
        limit: usize,
    ) -> Result<Vec<AttributionTodo>, LedgerError> {
        let conn = self.reader()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT id, name, first_seen, db_attempts, path, dev, ino, size, mtime_ns, call_time \
             FROM recordings \
             WHERE {WAITING} AND (db_retry_at IS NULL OR db_retry_at <= ?1) \
             ORDER BY db_retry_at, id LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![now, limit as i64], |r| {
            Ok(AttributionTodo {
                id: r.get(0)?,
                name: r.get(1)?,
                first_seen: r.get(2)?,
                attempts: r.get::<_, i64>(3)?.max(0) as u32,
                path: r.get(4)?,
                identity: FileIdentity {
                    dev: r.get::<_, i64>(5)? as u64,
                    ino: r.get::<_, i64>(6)? as u64,
                    size: r.get::<_, i64>(7)?.max(0) as u64,
                    mtime_ns: r.get(8)?,
                },
                call_time: r.get(9)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records the database's answers for a batch in one transaction. A
    /// recording still without a `recording_log` row after `wait` (from
    /// when it was first seen) is given up on. Returns how many were attributed.
    pub fn record_attributions(
        &self,
        now: i64,
        wait: Duration,
        answers: &[(AttributionTodo, DbAnswer)],
    ) -> Result<usize, LedgerError> {
        self.write(|tx| {
            let mut found = 0;
            for (todo, answer) in answers {
                let Some(state) = state_of(tx, todo.id)? else {
                    continue;
                };
                match answer {
                    DbAnswer::Found(a) => {
                        attribute(tx, todo.id, a, now)?;
                        insert_event(tx, todo.id, Some(state), state, &describe(a), now)?;
                        found += 1;
                    }
                    DbAnswer::Ambiguous(why) => {
                        let event = format!(
                            "not attributed from VICIdial, the file name's attribution stands: {why}"
                        );
                        insert_event(tx, todo.id, Some(state), state, &event, now)?;
                        tx.execute(
                            "UPDATE recordings SET db_attribution = 'ambiguous', db_retry_at = NULL, \
                             db_reason = ?2, db_attempts = db_attempts + 1 WHERE id = ?1",
                            params![todo.id, why],
                        )?;
                    }
                    DbAnswer::Missing => {
                        let waited = now.saturating_sub(todo.first_seen);
                        let (what, retry_at, reason) = if waited >= wait.as_secs() as i64 {
                            let why = format!(
                                "no recording_log row within attribution_wait ({}): the file name's attribution stands",
                                humantime::format_duration(wait)
                            );
                            insert_event(tx, todo.id, Some(state), state, &why, now)?;
                            ("gave_up", None, why)
                        } else {
                            let delay = (60i64 << todo.attempts.min(6)).min(MAX_MISSING_DELAY);
                            let why = "no recording_log row yet for this file on this server";
                            ("missing", Some(now + delay), why.to_string())
                        };
                        tx.execute(
                            "UPDATE recordings SET db_attribution = ?2, db_retry_at = ?3, db_reason = ?4, \
                             db_attempts = db_attempts + 1 WHERE id = ?1",
                            params![todo.id, what, retry_at, reason],
                        )?;
                    }
                }
            }
            Ok(found)
        })
    }

    /// The database could not be asked about `ids`: they wait (`failed`,
    /// with the reason) until `retry_at`.
    pub fn record_attribution_failure(
        &self,
        ids: &[i64],
        reason: &str,
        retry_at: i64,
    ) -> Result<(), LedgerError> {
        self.write(|tx| {
            let mut stmt = tx.prepare_cached(
                "UPDATE recordings SET db_attribution = 'failed', db_reason = ?2, db_retry_at = ?3, \
                 db_attempts = db_attempts + 1 WHERE id = ?1",
            )?;
            for id in ids {
                stmt.execute(params![id, reason, retry_at])?;
            }
            Ok(())
        })
    }

    /// Recordings by where they stand in attribution.
    pub fn attribution_counts(&self) -> Result<AttributionCounts, LedgerError> {
        let conn = self.reader()?;
        let mut counts = AttributionCounts::default();
        let mut stmt = conn.prepare_cached(
            "SELECT db_attribution, COUNT(*) FROM recordings GROUP BY db_attribution",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, Option<String>>(0)?, r.get::<_, i64>(1)?))
        })?;
        for row in rows {
            let (what, n) = row?;
            let n = n.max(0) as u64;
            match what.as_deref() {
                None => counts.not_asked = n,
                Some("missing") => counts.missing = n,
                Some("failed") => counts.failed = n,
                Some("gave_up") => counts.gave_up = n,
                Some("ambiguous") => counts.ambiguous = n,
                Some("done") => counts.done = n,
                Some(_) => {}
            }
        }
        counts.last_failure = conn
            .query_row(
                "SELECT db_reason FROM recordings WHERE db_attribution = 'failed' \
                 ORDER BY db_retry_at DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()?;
        counts.from_archive = conn
            .query_row(
                "SELECT COUNT(*) FROM recordings WHERE db_archived IS NOT NULL",
                [],
                |r| r.get::<_, i64>(0),
            )?
            .max(0) as u64;
        counts.last_ambiguous = conn
            .query_row(
                "SELECT name, db_reason FROM recordings WHERE db_attribution = 'ambiguous' \
                 ORDER BY id DESC LIMIT 1",
                [],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                    ))
                },
            )
            .optional()?;
        Ok(counts)
    }

    /// Recordings still waiting for the database (the `/metrics` backlog):
    /// counted through the waiting index, never a full scan.
    pub fn attribution_backlog(&self) -> Result<u64, LedgerError> {
        let n: i64 = self.reader()?.query_row(
            &format!("SELECT COUNT(*) FROM recordings WHERE {WAITING}"),
            [],
            |r| r.get(0),
        )?;
        Ok(n.max(0) as u64)
    }
}

fn state_of(tx: &rusqlite::Transaction<'_>, id: i64) -> Result<Option<State>, LedgerError> {
    let state: Option<String> = tx
        .query_row("SELECT state FROM recordings WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .optional()?;
    Ok(state.and_then(|s| s.parse().ok()))
}

/// Writes what the database knows over what the file name said, keeps
/// the name's values where the database has none, and queues the
/// recording's `recording_log.location` for the listen link.
fn attribute(
    tx: &rusqlite::Transaction<'_>,
    id: i64,
    a: &DbAttribution,
    now: i64,
) -> Result<(), LedgerError> {
    tx.execute(
        "UPDATE recordings SET db_attribution = 'done', db_retry_at = NULL, db_reason = NULL, \
           db_attempts = db_attempts + 1, db_source = ?2, vicidial_recording_id = ?3, \
           campaign = COALESCE(?4, campaign), ingroup = ?5, lead_id = COALESCE(?6, lead_id), \
           phone = COALESCE(?7, phone), agent = COALESCE(?8, agent), \
           call_time = COALESCE(?9, call_time), \
           name_time = CASE WHEN ?9 IS NULL THEN name_time END, call_length = ?10, \
           attributed = CASE WHEN ?4 IS NULL THEN attributed ELSE 1 END, db_archived = ?11 \
         WHERE id = ?1",
        params![
            id,
            a.source,
            a.vicidial_recording_id,
            a.campaign,
            a.ingroup,
            a.lead_id.map(|l| l.to_string()),
            a.phone,
            a.agent,
            a.started_at,
            a.length_secs,
            a.archived,
        ],
    )?;
    tx.execute(
        "INSERT INTO locations (recording_id, vicidial_recording_id, state, updated_at) \
         VALUES (?1, ?2, 'waiting', ?3) \
         ON CONFLICT (recording_id) DO UPDATE SET vicidial_recording_id = ?2, updated_at = ?3 \
           WHERE state = 'waiting'",
        params![id, a.vicidial_recording_id, now],
    )?;
    Ok(())
}

/// The event recorded with an attribution.
fn describe(a: &DbAttribution) -> String {
    let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_string());
    let archived = a
        .archived
        .as_ref()
        .map(|t| format!(", from {t}"))
        .unwrap_or_default();
    format!(
        "attributed from VICIdial ({}, recording_log {}{archived}): campaign {}, agent {}, lead {}, length {}s",
        a.source,
        a.vicidial_recording_id,
        show(&a.campaign),
        show(&a.agent),
        a.lead_id
            .map(|l| l.to_string())
            .unwrap_or_else(|| "-".into()),
        a.length_secs
            .map(|l| l.to_string())
            .unwrap_or_else(|| "-".into()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::fixtures::{insert, ledger, spool_file};
    use crate::recording::name::Attribution;

    const DAY: Duration = Duration::from_secs(86400);

    fn found(rec_id: u32, campaign: &str) -> DbAnswer {
        DbAnswer::Found(DbAttribution {
            vicidial_recording_id: rec_id,
            campaign: Some(campaign.into()),
            source: "outbound",
            agent: Some("1001".into()),
            lead_id: Some(501),
            started_at: Some(1_772_360_100),
            length_secs: Some(95),
            ..DbAttribution::default()
        })
    }

    #[test]
    fn answers_replace_the_names_values_and_missing_rows_wait_then_give_up() {
        let (_dir, ledger) = ledger();
        let name_call = Attribution {
            matched: true,
            phone: Some("5551234567".into()),
            call_time: Some(1_772_360_000),
            ..Attribution::default()
        };
        let a = insert(
            &ledger,
            &spool_file("/s/a.wav", 1),
            &name_call,
            State::Settled,
        );
        let b = insert(
            &ledger,
            &spool_file("/s/b.wav", 2),
            &name_call,
            State::Settled,
        );
        let now = crate::units::now_secs();
        let todo = ledger.attribution_todo(now, 10).unwrap();
        assert_eq!(todo.iter().map(|t| t.id).collect::<Vec<_>>(), [a, b]);
        assert_eq!(ledger.attribution_backlog().unwrap(), 2);
        let answers = vec![
            (todo[0].clone(), found(1001, "SALES")),
            (todo[1].clone(), DbAnswer::Missing),
        ];
        assert_eq!(ledger.record_attributions(now, DAY, &answers).unwrap(), 1);
        let rec = ledger.recording(a).unwrap();
        assert_eq!(rec.campaign.as_deref(), Some("SALES"));
        assert_eq!(rec.agent.as_deref(), Some("1001"));
        assert_eq!(rec.lead_id.as_deref(), Some("501"));
        // The name's phone stays where the database gave none; its time yields.
        assert_eq!(rec.phone.as_deref(), Some("5551234567"));
        assert_eq!(rec.call_time, Some(1_772_360_100));
        // b waits a minute, then (past the wait) is given up on.
        assert!(ledger.attribution_todo(now, 10).unwrap().is_empty());
        let later = ledger.attribution_todo(now + 61, 10).unwrap();
        assert_eq!(later.len(), 1);
        let past_wait = later[0].first_seen + DAY.as_secs() as i64;
        ledger
            .record_attributions(past_wait, DAY, &[(later[0].clone(), DbAnswer::Missing)])
            .unwrap();
        let counts = ledger.attribution_counts().unwrap();
        assert_eq!((counts.done, counts.gave_up, counts.waiting()), (1, 1, 0));
        assert!(
            ledger
                .attribution_todo(i64::MAX / 2, 10)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn ambiguous_answers_keep_the_names_attribution_and_archives_are_counted() {
        let (_dir, ledger) = ledger();
        let name_call = Attribution {
            matched: true,
            campaign: Some("FROMNAME".into()),
            ..Attribution::default()
        };
        let a = insert(
            &ledger,
            &spool_file("/s/a.wav", 1),
            &name_call,
            State::Settled,
        );
        let b = insert(
            &ledger,
            &spool_file("/s/b.wav", 2),
            &name_call,
            State::Settled,
        );
        let now = crate::units::now_secs();
        let todo = ledger.attribution_todo(now, 10).unwrap();
        assert_eq!(todo[0].path, b"/s/a.wav".to_vec());
        let mut archived = found(1001, "SALES");
        if let DbAnswer::Found(f) = &mut archived {
            f.archived = Some("recording_log_archive".into());
        }
        let why = "recording_log rows 11, 12 all agree with the file's times";
        let answers = vec![
            (todo[0].clone(), DbAnswer::Ambiguous(why.into())),
            (todo[1].clone(), archived),
        ];
        assert_eq!(ledger.record_attributions(now, DAY, &answers).unwrap(), 1);
        let rec = ledger.recording(a).unwrap();
        assert_eq!(rec.campaign.as_deref(), Some("FROMNAME"));
        // Never asked again, and no location to rewrite.
        assert!(
            ledger
                .attribution_todo(i64::MAX / 2, 10)
                .unwrap()
                .is_empty()
        );
        assert_eq!(ledger.attribution_backlog().unwrap(), 0);
        assert_eq!(ledger.location_counts().unwrap().waiting, 1);
        let counts = ledger.attribution_counts().unwrap();
        assert_eq!(
            (counts.done, counts.ambiguous, counts.from_archive),
            (1, 1, 1)
        );
        assert_eq!(
            counts.last_ambiguous,
            Some((b"a.wav".to_vec(), why.to_string()))
        );
        assert_eq!(
            ledger.recording(b).unwrap().campaign.as_deref(),
            Some("SALES")
        );
    }

    #[test]
    fn failures_wait_with_their_reason() {
        let (_dir, ledger) = ledger();
        let a = insert(
            &ledger,
            &spool_file("/s/a.wav", 1),
            &Attribution::default(),
            State::Seen,
        );
        ledger
            .record_attribution_failure(&[a], "database unreachable", 100)
            .unwrap();
        assert!(ledger.attribution_todo(99, 10).unwrap().is_empty());
        assert_eq!(ledger.attribution_todo(100, 10).unwrap()[0].attempts, 1);
        let counts = ledger.attribution_counts().unwrap();
        assert_eq!(counts.failed, 1);
        assert_eq!(counts.last_failure.as_deref(), Some("database unreachable"));
    }

    #[test]
    fn the_waiting_query_uses_its_index() {
        let (_dir, ledger) = ledger();
        let plan: Vec<String> = ledger
            .read::<_, LedgerError>(|c| {
                let mut stmt = c.prepare(&format!(
                    "EXPLAIN QUERY PLAN SELECT id FROM recordings WHERE {WAITING} \
                     AND (db_retry_at IS NULL OR db_retry_at <= 1) ORDER BY db_retry_at, id LIMIT 5"
                ))?;
                let rows = stmt.query_map([], |r| r.get::<_, String>(3))?;
                Ok(rows.collect::<Result<_, _>>()?)
            })
            .unwrap();
        assert!(
            plan.iter().any(|p| p.contains("recordings_db_waiting")),
            "{plan:?}"
        );
    }
}
