//! Listens in VICIdial's own listen report (`vicidial_recording_access_log`,
//! which its admin report of who listened reads), when VICIdial's
//! `system_settings.log_recording_access` is on — as its own redirect page
//! would have logged them. Never on a request's path: a request only puts
//! a note in a bounded queue; a task writes the queue every few seconds,
//! resolving each recording to its `recording_log` row through the ledger,
//! and reads the setting at most once a minute. recvault's audit trail
//! stays the record: what cannot be written here (the database down for
//! long, the queue full) is counted and logged, not kept forever.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::ledger::{Ledger, LedgerError};
use crate::metrics::{Metrics, add, inc};
use crate::units::now_secs;
use crate::vicidial::db::VicidialDb;
use crate::vicidial::recording_access::{AccessResult, RecordingAccess};

/// Listens waiting at most; beyond, new ones are dropped (and counted).
const QUEUE: usize = 10_000;
/// How often the queue is written.
const WRITE_EVERY: Duration = Duration::from_secs(5);
/// How long the setting read is trusted.
const SETTING_FOR: Duration = Duration::from_secs(60);
/// Rows written per database call.
const BATCH: usize = 200;

/// One listen (or refused login), as the request saw it.
#[derive(Debug, Clone)]
struct Access {
    /// The ledger's id.
    recording: i64,
    user: String,
    client: IpAddr,
    at: i64,
    result: AccessResult,
}

/// Where requests leave their listens for VICIdial's report.
#[derive(Clone)]
pub struct AccessLog {
    tx: mpsc::Sender<Access>,
    metrics: Arc<Metrics>,
}

impl AccessLog {
    /// Starts the writing task; it ends (after a last write) once every
    /// clone is dropped.
    pub fn start(
        db: Arc<VicidialDb>,
        ledger: Arc<Ledger>,
        metrics: Arc<Metrics>,
    ) -> (AccessLog, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let writer = Writer {
            db,
            ledger,
            metrics: metrics.clone(),
            pending: Vec::new(),
            setting: None,
            failing: false,
        };
        (AccessLog { tx, metrics }, tokio::spawn(writer.run(rx)))
    }

    /// Recording `recording` was played by `user` (none without a login) at `client`.
    pub fn listened(&self, recording: i64, user: Option<&str>, client: IpAddr) {
        self.push(
            recording,
            user.unwrap_or(""),
            client,
            AccessResult::Accessed,
        );
    }

    /// A login as `user` to play `recording` was refused.
    pub fn refused_login(&self, recording: i64, user: &str, client: IpAddr) {
        self.push(recording, user, client, AccessResult::InvalidUser);
    }

    fn push(&self, recording: i64, user: &str, client: IpAddr, result: AccessResult) {
        let access = Access {
            recording,
            user: user.to_string(),
            client,
            at: now_secs(),
            result,
        };
        if self.tx.try_send(access).is_err() {
            inc(&self.metrics.access_log_dropped);
        }
    }
}

struct Writer {
    db: Arc<VicidialDb>,
    ledger: Arc<Ledger>,
    metrics: Arc<Metrics>,
    pending: Vec<Access>,
    /// The setting, and when it was read.
    setting: Option<(bool, Instant)>,
    /// Whether a failure was logged (logged once until a write works).
    failing: bool,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<Access>) {
        let mut tick = tokio::time::interval(WRITE_EVERY);
        loop {
            tokio::select! {
                access = rx.recv() => match access {
                    Some(a) => self.pending.push(a),
                    None => break,
                },
                _ = tick.tick() => self.write().await,
            }
        }
        // The server stopped: one last write of what is left.
        self.write().await;
        if !self.pending.is_empty() {
            add(&self.metrics.access_log_dropped, self.pending.len() as u64);
            tracing::warn!(
                listens = self.pending.len(),
                "listens not written to VICIdial's vicidial_recording_access_log at shutdown (they are in recvault's audit trail)"
            );
        }
    }

    /// Writes what is pending if VICIdial logs recording access, drops it
    /// if it does not; keeps it (bounded) while the database is down.
    async fn write(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let Some(enabled) = self.enabled().await else {
            self.bound();
            return;
        };
        if !enabled {
            self.pending.clear();
            return;
        }
        while !self.pending.is_empty() {
            let batch: Vec<Access> = self
                .pending
                .drain(..self.pending.len().min(BATCH))
                .collect();
            let rows = match self.rows(&batch).await {
                Ok(rows) => rows,
                Err(e) => {
                    self.failed(&e);
                    self.pending.splice(0..0, batch);
                    break;
                }
            };
            let n = rows.len() as u64;
            match self.db.log_recording_access(rows).await {
                Ok(()) => {
                    add(&self.metrics.access_log_rows, n);
                    if self.failing {
                        self.failing = false;
                        tracing::info!(
                            "listens are written to vicidial_recording_access_log again"
                        );
                    }
                }
                Err(e) if e.is_retryable() => {
                    self.failed(&e);
                    self.pending.splice(0..0, batch);
                    break;
                }
                Err(e) => {
                    add(&self.metrics.access_log_dropped, n);
                    self.failed(&e);
                }
            }
        }
        self.bound();
    }

    /// The setting, read again once [`SETTING_FOR`] has passed; the last
    /// one known while the database cannot be asked (`None`: never read).
    async fn enabled(&mut self) -> Option<bool> {
        if let Some((on, at)) = self.setting
            && at.elapsed() < SETTING_FOR
        {
            return Some(on);
        }
        match self.db.logs_recording_access().await {
            Ok(on) => {
                if self.setting.map(|s| s.0) != Some(on) {
                    tracing::info!(
                        on,
                        "VICIdial's log_recording_access setting: listens {} written to vicidial_recording_access_log",
                        if on { "are" } else { "are not" }
                    );
                }
                self.setting = Some((on, Instant::now()));
                Some(on)
            }
            Err(e) => {
                self.failed(&e);
                self.setting.map(|s| s.0)
            }
        }
    }

    /// VICIdial's rows for `batch`: each recording's `recording_log` row and
    /// lead, from the ledger (recordings not attributed yet are left out).
    async fn rows(&self, batch: &[Access]) -> Result<Vec<RecordingAccess>, String> {
        let ids: Vec<i64> = batch.iter().map(|a| a.recording).collect();
        let found = self
            .ledger
            .call(move |l| {
                let rows = ids
                    .iter()
                    .map(|id| l.recording(*id).ok())
                    .map(|r| r.and_then(|r| Some((r.vicidial_recording_id?, r.lead_id))))
                    .collect::<Vec<_>>();
                Ok::<_, LedgerError>(rows)
            })
            .await
            .map_err(|e| e.to_string())?;
        Ok(batch
            .iter()
            .zip(found)
            .filter_map(|(a, row)| {
                let (vicidial_id, lead) = row?;
                let lead = lead.and_then(|l| l.parse().ok());
                let ip = a.client.to_string();
                Some(RecordingAccess::new(
                    vicidial_id,
                    lead,
                    &a.user,
                    a.at,
                    a.result,
                    &ip,
                ))
            })
            .collect())
    }

    fn failed(&mut self, e: &dyn std::fmt::Display) {
        if !self.failing {
            self.failing = true;
            tracing::warn!(
                "cannot write listens to VICIdial's vicidial_recording_access_log yet (kept for now; recvault's audit trail has them): {e}"
            );
        }
    }

    /// Keeps at most [`QUEUE`] listens waiting: the oldest go first.
    fn bound(&mut self) {
        if self.pending.len() > QUEUE {
            let over = self.pending.len() - QUEUE;
            self.pending.drain(..over);
            add(&self.metrics.access_log_dropped, over as u64);
        }
    }
}
