//! The console's export jobs (`console_exports`): what each exports, who
//! asked, from where and why, how far it got, what it made. Kept in the
//! ledger so a daemon stopped (or killed) mid-export runs the job again
//! when it starts; the zip itself is the console's, beside the ledger.
//! While a job is unfinished its `search` (a catalog search as JSON) says
//! what to select; once it ends the search is cleared, so a phone number
//! outlives the job only as the pseudonyms of `what`.

use rusqlite::{OptionalExtension, Row, params};

use super::{Ledger, LedgerError};

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// Waiting for the runner.
    Queued,
    /// Being written (or interrupted by a stop: run again at the next start).
    Running,
    /// Its zip is ready to download.
    Done,
    /// It could not be made; `error` says why.
    Failed,
    /// Done, and its zip removed after the time it is kept.
    Expired,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Expired => "expired",
        }
    }

    fn parse(text: &str) -> JobState {
        match text {
            "queued" => JobState::Queued,
            "running" => JobState::Running,
            "done" => JobState::Done,
            "expired" => JobState::Expired,
            _ => JobState::Failed,
        }
    }

    /// True while the runner still has work to do for it.
    pub fn unfinished(self) -> bool {
        matches!(self, JobState::Queued | JobState::Running)
    }
}

/// One export job as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportJob {
    pub id: i64,
    /// The user as the audit trail names them (name, kind, address).
    pub created_by: String,
    pub created_at: i64,
    pub reason: String,
    /// What it exports, as the audit trail says it (numbers as pseudonyms).
    pub what: String,
    /// The search to run (JSON), while unfinished.
    pub search: Option<String>,
    pub state: JobState,
    /// Times it was started (more than one: resumed after a stop).
    pub attempts: u32,
    pub done: u64,
    pub total: u64,
    pub bytes: u64,
    pub total_bytes: u64,
    pub exported: u64,
    pub failed: u64,
    pub gone: u64,
    /// The zip's size once done.
    pub zip_size: Option<u64>,
    pub finished_at: Option<i64>,
    pub error: Option<String>,
}

/// What a finished job made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobOutcome {
    pub exported: u64,
    pub failed: u64,
    pub gone: u64,
    /// The zip's size (none: nothing matched, no zip).
    pub zip_size: Option<u64>,
}

const COLUMNS: &str = "id, created_by, created_at, reason, what, search, state, attempts, \
    done, total, bytes, total_bytes, exported, failed, gone, zip_size, finished_at, error";

fn job(r: &Row<'_>) -> rusqlite::Result<ExportJob> {
    let n = |i: usize| -> rusqlite::Result<u64> { Ok(r.get::<_, i64>(i)?.max(0) as u64) };
    Ok(ExportJob {
        id: r.get(0)?,
        created_by: r.get(1)?,
        created_at: r.get(2)?,
        reason: r.get(3)?,
        what: r.get(4)?,
        search: r.get(5)?,
        state: JobState::parse(&r.get::<_, String>(6)?),
        attempts: r.get(7)?,
        done: n(8)?,
        total: n(9)?,
        bytes: n(10)?,
        total_bytes: n(11)?,
        exported: n(12)?,
        failed: n(13)?,
        gone: n(14)?,
        zip_size: r.get::<_, Option<i64>>(15)?.map(|v| v.max(0) as u64),
        finished_at: r.get(16)?,
        error: r.get(17)?,
    })
}

impl Ledger {
    /// Queues a job; its id.
    pub fn export_job_add(
        &self,
        created_by: &str,
        at: i64,
        reason: &str,
        what: &str,
        search: &str,
    ) -> Result<i64, LedgerError> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO console_exports (created_by, created_at, reason, what, search) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![created_by, at, reason, what, search],
            )?;
            Ok(tx.last_insert_rowid())
        })
    }

    /// Job `id`, if there is one.
    pub fn export_job(&self, id: i64) -> Result<Option<ExportJob>, LedgerError> {
        self.read(|c| {
            let sql = format!("SELECT {COLUMNS} FROM console_exports WHERE id = ?1");
            Ok(c.query_row(&sql, [id], job).optional()?)
        })
    }

    /// The newest `limit` jobs, newest first.
    pub fn export_jobs(&self, limit: u32) -> Result<Vec<ExportJob>, LedgerError> {
        self.read(|c| {
            let sql = format!("SELECT {COLUMNS} FROM console_exports ORDER BY id DESC LIMIT ?1");
            let mut stmt = c.prepare(&sql)?;
            let rows = stmt.query_map([limit], job)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// The oldest unfinished job, marked running (one more attempt): a job
    /// a stop interrupted comes first, and is made again from the start.
    pub fn export_job_take(&self) -> Result<Option<ExportJob>, LedgerError> {
        self.write(|tx| {
            let sql = format!(
                "SELECT {COLUMNS} FROM console_exports WHERE state IN ('queued', 'running') \
                 ORDER BY id LIMIT 1"
            );
            let Some(mut j) = tx.query_row(&sql, [], job).optional()? else {
                return Ok(None);
            };
            tx.execute(
                "UPDATE console_exports SET state = 'running', attempts = attempts + 1, \
                 done = 0, bytes = 0 WHERE id = ?1",
                [j.id],
            )?;
            j.state = JobState::Running;
            j.attempts += 1;
            (j.done, j.bytes) = (0, 0);
            Ok(Some(j))
        })
    }

    /// How far job `id` has got.
    pub fn export_job_progress(
        &self,
        id: i64,
        done: u64,
        total: u64,
        bytes: u64,
        total_bytes: u64,
    ) -> Result<(), LedgerError> {
        let v = |n: u64| n.min(i64::MAX as u64) as i64;
        self.write(|tx| {
            tx.execute(
                "UPDATE console_exports SET done = ?2, total = ?3, bytes = ?4, total_bytes = ?5 \
                 WHERE id = ?1 AND state = 'running'",
                params![id, v(done), v(total), v(bytes), v(total_bytes)],
            )?;
            Ok(())
        })
    }

    /// Ends job `id` at `at`: done with what it made, or failed with why.
    /// Its search is cleared either way.
    pub fn export_job_finish(
        &self,
        id: i64,
        at: i64,
        outcome: Result<JobOutcome, String>,
    ) -> Result<(), LedgerError> {
        let v = |n: u64| n.min(i64::MAX as u64) as i64;
        self.write(|tx| {
            match outcome {
                Ok(o) => tx.execute(
                    "UPDATE console_exports SET state = 'done', search = NULL, finished_at = ?2, \
                     exported = ?3, failed = ?4, gone = ?5, zip_size = ?6, done = total, \
                     bytes = total_bytes, error = NULL WHERE id = ?1",
                    params![
                        id,
                        at,
                        v(o.exported),
                        v(o.failed),
                        v(o.gone),
                        o.zip_size.map(v)
                    ],
                )?,
                Err(why) => tx.execute(
                    "UPDATE console_exports SET state = 'failed', search = NULL, finished_at = ?2, \
                     error = ?3 WHERE id = ?1",
                    params![id, at, why],
                )?,
            };
            Ok(())
        })
    }

    /// Marks expired the done jobs finished before `before`, and those
    /// asked for before the latest erasure was carried out (their zip may
    /// hold what it erased: an erased person leaves nothing readable, so
    /// such an export is made again if it is still needed). Their ids, whose
    /// zips are to be removed.
    pub fn export_jobs_expire(&self, before: i64) -> Result<Vec<i64>, LedgerError> {
        self.write(|tx| {
            // Through the erase_request index: only erased recordings are read.
            let erased: Option<i64> = tx.query_row(
                "SELECT MAX(erased_at) FROM recordings WHERE erase_request IS NOT NULL",
                [],
                |r| r.get(0),
            )?;
            let mut stmt = tx.prepare(
                "UPDATE console_exports SET state = 'expired' \
                 WHERE state = 'done' AND (finished_at < ?1 OR created_at <= ?2) RETURNING id",
            )?;
            let ids = stmt.query_map(params![before, erased.unwrap_or(i64::MIN)], |r| r.get(0))?;
            Ok(ids.collect::<Result<_, _>>()?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::fixtures;

    #[test]
    fn jobs_are_taken_oldest_first_resumed_and_finished() {
        let (_dir, ledger) = fixtures::ledger();
        let a = ledger
            .export_job_add("bob", 10, "DSAR 1", "phone x", "{}")
            .unwrap();
        let b = ledger
            .export_job_add("bob", 11, "audit", "case C", "{}")
            .unwrap();
        let first = ledger.export_job_take().unwrap().unwrap();
        assert_eq!(
            (first.id, first.state, first.attempts),
            (a, JobState::Running, 1)
        );
        ledger.export_job_progress(a, 1, 2, 100, 200).unwrap();
        // Interrupted (a stop): taken again first, from the start.
        let again = ledger.export_job_take().unwrap().unwrap();
        assert_eq!((again.id, again.attempts, again.done), (a, 2, 0));
        let outcome = JobOutcome {
            exported: 2,
            zip_size: Some(300),
            ..JobOutcome::default()
        };
        ledger.export_job_finish(a, 20, Ok(outcome)).unwrap();
        let done = ledger.export_job(a).unwrap().unwrap();
        assert_eq!(
            (done.state, done.search, done.zip_size),
            (JobState::Done, None, Some(300))
        );
        assert_eq!(ledger.export_job_take().unwrap().unwrap().id, b);
        ledger
            .export_job_finish(b, 21, Err("no store".into()))
            .unwrap();
        assert!(ledger.export_job_take().unwrap().is_none());
        assert_eq!(ledger.export_jobs_expire(21).unwrap(), vec![a]);
        let ids: Vec<i64> = ledger
            .export_jobs(10)
            .unwrap()
            .iter()
            .map(|j| j.id)
            .collect();
        assert_eq!(ids, [b, a]);
    }

    #[test]
    fn an_erasure_expires_the_zips_asked_for_before_it() {
        let (_dir, ledger) = fixtures::ledger();
        let rec = fixtures::insert_call(&ledger, "a.wav", "SALES", "555", 100);
        let done = |at: i64| {
            let id = ledger
                .export_job_add("bob", at, "DSAR", "phone x", "{}")
                .unwrap();
            ledger.export_job_take().unwrap();
            ledger
                .export_job_finish(id, at + 1, Ok(JobOutcome::default()))
                .unwrap();
            id
        };
        let (before, after) = (done(10), done(30));
        assert!(ledger.export_jobs_expire(0).unwrap().is_empty());
        ledger
            .execute_raw(&format!(
                "UPDATE recordings SET erase_request = 'DSR-1', erased_at = 20 WHERE id = {rec}"
            ))
            .unwrap();
        assert_eq!(ledger.export_jobs_expire(0).unwrap(), vec![before]);
        let kept = ledger.export_job(after).unwrap().unwrap();
        assert_eq!(kept.state, JobState::Done);
    }
}
