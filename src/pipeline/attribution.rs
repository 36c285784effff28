//! Attribution from VICIdial's database, in the background: batches of
//! recordings the ledger says still wait are looked up in one statement per
//! table and the answers recorded in one transaction. Each file goes with
//! its times — mtime, the name's call time, and its duration from the WAV
//! header while the local copy is there — so a repeated name is matched to
//! its own call's row (`vicidial::row_match`). Never on the archive's path:
//! a database that is down, slow or missing a row only delays attribution,
//! with exponential back-off and a log line every few minutes at most.

use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::outage::backoff;
use crate::config::VicidialConfig;
use crate::error::Error;
use crate::ledger::Ledger;
use crate::ledger::attribution::{AttributionTodo, DbAnswer, DbAttribution};
use crate::metrics::{self, Metrics};
use crate::recording::FileIdentity;
use crate::units::now_secs;
use crate::vicidial::attribution::{Attributed, AttributionSource, CallAttribution, FileQuery};
use crate::vicidial::db::{DbError, VicidialDb};
use crate::vicidial::row_match::FileTimes;

/// Recordings looked up per statement (the client's largest statement shape).
const BATCH: usize = 100;
/// How often the ledger is asked again when nothing was waiting.
const IDLE: Duration = Duration::from_secs(5);
/// The longest back-off after database errors.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// At most one log line per `every` about a failure that goes on.
pub(super) struct QuietLog {
    every: Duration,
    last: Option<Instant>,
    since_last: u64,
    failing: bool,
}

impl QuietLog {
    pub(super) fn new(every: Duration) -> QuietLog {
        QuietLog {
            every,
            last: None,
            since_last: 0,
            failing: false,
        }
    }

    /// A failure: true (and the number of failures not logged since) when
    /// this one should be logged.
    pub(super) fn failure(&mut self) -> Option<u64> {
        self.failing = true;
        self.since_last += 1;
        if self.last.is_some_and(|t| t.elapsed() < self.every) {
            return None;
        }
        self.last = Some(Instant::now());
        Some(std::mem::take(&mut self.since_last) - 1)
    }

    /// A success: true if it ends a run of failures (worth one log line).
    pub(super) fn success(&mut self) -> bool {
        let ended = self.failing;
        *self = QuietLog::new(self.every);
        ended
    }
}

/// Runs until `stop` is cancelled: attribution of every recording that
/// waits, batch by batch, woken early by `new_recordings`.
/// `time_tolerance` is `[naming] time_tolerance` (how far a file's times
/// may be from its call's).
pub async fn run(
    ledger: Arc<Ledger>,
    db: Arc<VicidialDb>,
    config: VicidialConfig,
    time_tolerance: Duration,
    metrics: Arc<Metrics>,
    new_recordings: Arc<Notify>,
    stop: CancellationToken,
) {
    let mut failures = 0u32;
    let mut log = QuietLog::new(Duration::from_secs(300));
    loop {
        let batch = attribute_batch(&ledger, &db, &config, time_tolerance, &metrics);
        let pause = match batch.await {
            Ok(n) => {
                failures = 0;
                if log.success() {
                    tracing::info!(database = %db.target(), "VICIdial database answers again; attribution resumes");
                }
                if n == BATCH { Duration::ZERO } else { IDLE }
            }
            Err(e) => {
                failures += 1;
                let pause = backoff(failures, Duration::from_secs(1), MAX_BACKOFF);
                if let Some(quiet) = log.failure() {
                    tracing::warn!(retry_in = ?pause, failures, unlogged = quiet, "attribution from VICIdial waits: {e}");
                }
                pause
            }
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
            // New recordings are asked about at once, unless the database
            // is failing (the back-off stands).
            _ = new_recordings.notified(), if failures == 0 => {}
        }
    }
}

/// One batch: the recordings due, asked in one statement, answered in one
/// transaction. Returns how many were asked about.
async fn attribute_batch(
    ledger: &Arc<Ledger>,
    db: &VicidialDb,
    config: &VicidialConfig,
    time_tolerance: Duration,
    metrics: &Metrics,
) -> Result<usize, Error> {
    let todo = ledger
        .call(|l| l.attribution_todo(now_secs(), BATCH))
        .await?;
    if todo.is_empty() {
        return Ok(0);
    }
    let names: Vec<String> = todo
        .iter()
        .map(|t| String::from_utf8_lossy(&t.name).into_owned())
        .collect();
    let times = tokio::task::spawn_blocking({
        let todo = todo.clone();
        move || todo.iter().map(file_times).collect::<Vec<_>>()
    })
    .await
    .map_err(|e| Error::Local(format!("reading recordings' durations: {e}")))?;
    let files: Vec<FileQuery<'_>> = names
        .iter()
        .zip(times)
        .map(|(name, times)| FileQuery { name, times })
        .collect();
    let asked = todo.len();
    match db.attribute_batch(&files, time_tolerance).await {
        Ok(found) => {
            let answers: Vec<(AttributionTodo, DbAnswer)> = todo
                .into_iter()
                .zip(found)
                .map(|(t, a)| (t, answer(a)))
                .collect();
            let wait = config.attribution_wait;
            let n = ledger
                .call(move |l| l.record_attributions(now_secs(), wait, &answers))
                .await?;
            metrics::add(&metrics.attributions, n as u64);
            tracing::debug!(asked, attributed = n, "attributed from VICIdial");
            Ok(asked)
        }
        Err(e) => {
            record_failure(ledger, &todo, &e).await?;
            Err(e.into())
        }
    }
}

/// Marks the batch as waiting for the database, with the reason `status` shows.
async fn record_failure(
    ledger: &Arc<Ledger>,
    todo: &[AttributionTodo],
    e: &DbError,
) -> Result<(), Error> {
    let ids: Vec<i64> = todo.iter().map(|t| t.id).collect();
    let attempts = todo.iter().map(|t| t.attempts).max().unwrap_or(0);
    let delay = backoff(
        attempts + 1,
        Duration::from_secs(5),
        Duration::from_secs(600),
    );
    let retry_at = now_secs() + delay.as_secs() as i64;
    let reason = match e.is_retryable() {
        true => format!("database unavailable: {e}"),
        false => format!("database refused (an operator must act): {e}"),
    };
    ledger
        .call(move |l| l.record_attribution_failure(&ids, &reason, retry_at))
        .await?;
    Ok(())
}

/// A recording's times: its mtime, the name's call time, and the seconds
/// of audio its WAV header says while the local copy is still the file
/// recorded (opened without following links or blocking on a FIFO).
fn file_times(todo: &AttributionTodo) -> FileTimes {
    FileTimes {
        mtime: todo.identity.mtime_ns.div_euclid(1_000_000_000),
        name_time: todo.call_time,
        duration: wav_seconds(Path::new(OsStr::from_bytes(&todo.path)), todo.identity),
    }
}

fn wav_seconds(path: &Path, identity: FileIdentity) -> Option<u32> {
    let file: File = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() || FileIdentity::of(&meta) != identity {
        return None;
    }
    let layout = crate::codec::wav::inspect(std::io::BufReader::new(file)).ok()?;
    let rate = u64::from(layout.format.byte_rate);
    (rate > 0).then(|| u32::try_from(layout.data_len() / rate).unwrap_or(u32::MAX))
}

/// The ledger's view of the client's answer.
fn answer(a: Attributed) -> DbAnswer {
    match a {
        Attributed::Found(a) => found(a),
        Attributed::Ambiguous(why) => DbAnswer::Ambiguous(why),
        Attributed::Missing => DbAnswer::Missing,
    }
}

fn found(a: CallAttribution) -> DbAnswer {
    let source = match a.source {
        AttributionSource::OutboundCall => "outbound",
        AttributionSource::InboundCall => "inbound",
        AttributionSource::LeadList => "lead_list",
        AttributionSource::RecordingOnly => "recording_only",
    };
    let ingroup = (a.source == AttributionSource::InboundCall)
        .then(|| a.campaign.clone())
        .flatten();
    DbAnswer::Found(DbAttribution {
        vicidial_recording_id: a.recording_id,
        campaign: a.campaign,
        ingroup,
        source,
        lead_id: a.lead_id,
        phone: a.phone,
        agent: a.agent,
        started_at: a.started_at,
        length_secs: a.length_secs,
        archived: (!a.archived.is_empty()).then(|| a.archived.join(",")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_log_speaks_once_per_interval_and_on_recovery() {
        let mut log = QuietLog::new(Duration::from_secs(3600));
        assert_eq!(log.failure(), Some(0));
        assert_eq!(log.failure(), None);
        assert_eq!(log.failure(), None);
        assert!(log.success());
        assert!(!log.success());
        let mut log = QuietLog::new(Duration::ZERO);
        assert_eq!(log.failure(), Some(0));
        log.failure();
        assert_eq!(log.failure(), Some(0));
    }
}
