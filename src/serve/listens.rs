//! The audit of listens: every request a valid link signed becomes an audit
//! entry, without the request waiting for the ledger. Requests are handed
//! to a task that gathers them for a second, counts identical ones (same
//! recording, client, user, user agent and outcome) in one entry — a player
//! seeking through a call costs one entry a second, not one per request —
//! and appends each batch in one transaction. Refusals of signed requests
//! are counted over longer windows (`denials`), so no client can grow the
//! trail without bound; requests no link signed never get here
//! (`refusals`). Nothing is dropped: each audited request is journaled
//! first (`journal`: a kill -9 loses none), a batch the ledger refuses is
//! kept and tried again, and the last one is written when the daemon stops.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::denials::{self, Denials};
use super::journal::{self, Journal, Line};
use crate::error::Error;
use crate::ledger::Ledger;
use crate::ledger::audit::Actor;
use crate::ledger::listens::ListenEntry;

/// How long requests are gathered before they are written.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// One request for a recording, as the audit trail records it (and the
/// journal keeps it until then).
pub type Listen = Line;

/// Requests counted into one entry: the line without its time and bytes.
type Key = Line;

struct Tally {
    at: i64,
    requests: u64,
    bytes: u64,
}

/// Listens gathered and counted, in the order they first came.
#[derive(Default)]
struct Pending {
    tallies: HashMap<Key, Tally>,
    order: Vec<Key>,
}

impl Pending {
    fn add(&mut self, mut line: Line) {
        let (at, bytes) = (line.at, line.bytes);
        (line.at, line.bytes) = (0, 0);
        match self.tallies.get_mut(&line) {
            Some(t) => {
                t.requests += 1;
                t.bytes += bytes;
            }
            None => {
                self.order.push(line.clone());
                let tally = Tally {
                    at,
                    requests: 1,
                    bytes,
                };
                self.tallies.insert(line, tally);
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    fn entries(&self) -> Vec<ListenEntry> {
        self.order
            .iter()
            .filter_map(|k| self.tallies.get(k).map(|t| entry(k, t)))
            .collect()
    }
}

/// The audit entries of journaled lines, identical requests counted together.
fn entries_of(lines: Vec<Line>) -> Vec<ListenEntry> {
    let mut pending = Pending::default();
    lines.into_iter().for_each(|l| pending.add(l));
    pending.entries()
}

/// Where requests are handed over. Cloned into every connection; the
/// writing task ends (after writing everything) once every clone is dropped.
#[derive(Clone)]
pub struct ListenLog {
    tx: mpsc::UnboundedSender<Line>,
    journal: Arc<Mutex<Journal>>,
    denials: Arc<Mutex<Denials>>,
}

impl ListenLog {
    /// Replays what a killed run journaled in `dir`, then starts the task
    /// that writes listens to `ledger` as `actor`.
    pub async fn start(
        ledger: Arc<Ledger>,
        actor: Actor,
        dir: &Path,
    ) -> Result<(ListenLog, JoinHandle<()>), Error> {
        let journal = replay(ledger.clone(), actor.clone(), dir).await?;
        let journal = Arc::new(Mutex::new(journal));
        let denials = Arc::new(Mutex::new(Denials::new(std::time::Instant::now())));
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = Writer {
            ledger,
            actor,
            journal: journal.clone(),
            denials: denials.clone(),
            pending: Pending::default(),
            counted: Vec::new(),
            files: Vec::new(),
            failures: 0,
        };
        let task = tokio::spawn(write(writer, rx));
        Ok((
            ListenLog {
                tx,
                journal,
                denials,
            },
            task,
        ))
    }

    /// Journals one request and hands it over; never waits for the ledger.
    /// A refusal whose kind this window already audited is only counted.
    pub fn record(&self, line: Listen) {
        if !denials::is_listen(&line.outcome) {
            let mut denials = self.denials.lock().unwrap_or_else(|e| e.into_inner());
            if !denials.first(&line) {
                return;
            }
        }
        // Journaled and sent under one lock: a rotation sees both or neither.
        let mut journal = self.journal.lock().unwrap_or_else(|e| e.into_inner());
        journal.append(&line);
        if let Err(lost) = self.tx.send(line) {
            tracing::error!(subject = %lost.0.subject, "listen not audited now: the audit writer has stopped (it is in the journal)");
        }
    }
}

/// Puts what a killed run journaled in `dir` into the audit trail; returns
/// the journal to write from now on.
pub(super) async fn replay(
    ledger: Arc<Ledger>,
    actor: Actor,
    dir: &Path,
) -> Result<Journal, Error> {
    let dir = dir.to_path_buf();
    ledger
        .call(move |l| journal::recover(l, &actor, &dir, entries_of))
        .await
}

async fn write(mut w: Writer, mut rx: mpsc::UnboundedReceiver<Line>) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + FLUSH_EVERY, FLUSH_EVERY);
    loop {
        tokio::select! {
            line = rx.recv() => match line {
                Some(l) => w.pending.add(l),
                None => break,
            },
            _ = tick.tick() => {
                w.close_window(false);
                w.flush(&mut rx).await
            }
        }
    }
    // Every sender is gone: write what is left, trying a few times (what
    // is not written stays in the journal for the next start).
    w.close_window(true);
    for _ in 0..20 {
        w.flush(&mut rx).await;
        if w.pending.is_empty() && w.counted.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tracing::error!(
        entries = w.pending.order.len(),
        "could not write the last listens to the audit trail (they stay in the journal for the next start)"
    );
}

/// The audit writer's state.
struct Writer {
    ledger: Arc<Ledger>,
    actor: Actor,
    journal: Arc<Mutex<Journal>>,
    denials: Arc<Mutex<Denials>>,
    pending: Pending,
    /// Entries for refusals counted over a window (never journaled).
    counted: Vec<ListenEntry>,
    /// Journal files whose listens are pending.
    files: Vec<u64>,
    failures: u32,
}

impl Writer {
    /// Takes the entries of the refusals window once it is over (or now,
    /// when `now` says so: the server stops).
    fn close_window(&mut self, now: bool) {
        let at = std::time::Instant::now();
        let mut denials = self.denials.lock().unwrap_or_else(|e| e.into_inner());
        if now || denials.is_over(at) {
            self.counted.extend(denials.close(at));
        }
    }

    /// Gathers what is journaled, rotates the journal, and writes it all in
    /// one transaction with the journal's number; on failure keeps it.
    async fn flush(&mut self, rx: &mut mpsc::UnboundedReceiver<Line>) {
        {
            let mut journal = self.journal.lock().unwrap_or_else(|e| e.into_inner());
            while let Ok(line) = rx.try_recv() {
                self.pending.add(line);
            }
            self.files.extend(journal.rotate());
        }
        if self.pending.is_empty() && self.files.is_empty() && self.counted.is_empty() {
            return;
        }
        let mut entries = self.pending.entries();
        entries.extend(self.counted.iter().cloned());
        let (actor, upto) = (self.actor.clone(), self.files.last().copied());
        match self
            .ledger
            .call(move |l| l.record_listens(&actor, &entries, upto))
            .await
        {
            Ok(()) => {
                self.pending = Pending::default();
                self.counted.clear();
                let journal = self.journal.lock().unwrap_or_else(|e| e.into_inner());
                self.files.drain(..).for_each(|n| journal.remove(n));
                if self.failures > 0 {
                    tracing::info!("listens are written to the audit trail again");
                }
                self.failures = 0;
            }
            Err(e) => {
                self.failures += 1;
                if self.failures == 1 || self.failures.is_multiple_of(300) {
                    tracing::warn!(
                        waiting = self.pending.order.len(),
                        "cannot write listens to the audit trail yet (kept, journaled, retried): {e}"
                    );
                }
            }
        }
    }
}

fn entry(k: &Key, t: &Tally) -> ListenEntry {
    ListenEntry {
        at: t.at,
        recording_id: k.recording_id,
        subject: k.subject.clone(),
        user: k.user.clone().unwrap_or_else(|| "anonymous".to_string()),
        reason: reason_of(k, t.requests, t.bytes),
    }
}

/// An entry's reason: outcome (and why), status, bytes, requests, client,
/// where the bytes came from, and the user agent as it was sent (escaped
/// when printed, never here).
pub(super) fn reason_of(k: &Line, requests: u64, bytes: u64) -> String {
    let note = match k.note.is_empty() {
        true => String::new(),
        false => format!(" ({})", k.note),
    };
    format!(
        "{}{note}; status {}; {bytes} bytes; {requests} request{}; client {}; via {}; user agent \"{}\"",
        k.outcome,
        k.status,
        if requests == 1 { "" } else { "s" },
        k.client,
        k.via,
        k.user_agent,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::LedgerError;
    use crate::ledger::audit::AuditFilter;

    fn listen(outcome: &str, bytes: u64) -> Listen {
        Listen {
            at: 5,
            recording_id: Some(3),
            subject: "recording 3".into(),
            user: None,
            client: "10.0.0.7".parse().unwrap(),
            user_agent: "player/1".into(),
            outcome: outcome.into(),
            status: 206,
            bytes,
            via: "store".into(),
            note: String::new(),
        }
    }

    fn actor() -> Actor {
        Actor {
            uid: 1,
            user: "recvault".into(),
        }
    }

    /// (requests, entries) of `outcome` in the audit trail.
    fn audited(ledger: &Ledger, outcome: &str) -> (u64, usize) {
        let mut reasons = Vec::new();
        ledger
            .audit_entries::<LedgerError>(&AuditFilter::default(), |e| {
                reasons.push(e.reason.clone());
                Ok(())
            })
            .unwrap();
        let mine: Vec<&String> = reasons.iter().filter(|r| r.starts_with(outcome)).collect();
        let requests = mine
            .iter()
            .map(|r| r.split("; ").nth(3).unwrap().split(' ').next().unwrap())
            .map(|n| n.parse::<u64>().unwrap())
            .sum();
        (requests, mine.len())
    }

    fn journals(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".journal"))
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn listens_a_kill_cut_short_are_replayed_from_the_journal_exactly_once() {
        let (dir, ledger) = crate::ledger::fixtures::ledger();
        let ledger = Arc::new(ledger);
        let (log, task) = ListenLog::start(ledger.clone(), actor(), dir.path())
            .await
            .unwrap();
        for _ in 0..7 {
            log.record(listen("served", 10));
        }
        // Killed before the writer wrote anything: only the journal has them.
        task.abort();
        let _ = task.await;
        drop(log);
        assert_eq!(audited(&ledger, "served"), (0, 0));
        assert_eq!(journals(dir.path()), ["listens.journal"]);
        let (log, task) = ListenLog::start(ledger.clone(), actor(), dir.path())
            .await
            .unwrap();
        assert_eq!(audited(&ledger, "served"), (7, 1), "replayed at start");
        assert!(journals(dir.path()).is_empty());
        log.record(listen("served", 10));
        // A kill after the batch committed but before its file was removed:
        // the file is there again, and must not count twice.
        let mut w = Writer {
            ledger: ledger.clone(),
            actor: actor(),
            journal: log.journal.clone(),
            denials: log.denials.clone(),
            pending: Pending::default(),
            counted: Vec::new(),
            files: Vec::new(),
            failures: 0,
        };
        let (_tx, mut rx) = mpsc::unbounded_channel();
        let kept = dir.path().join("kept");
        w.pending.add(listen("served", 10));
        let n = w.journal.lock().unwrap().rotate().unwrap();
        let rotated = dir.path().join(format!("listens.{n}.journal"));
        std::fs::copy(&rotated, &kept).unwrap();
        w.files.push(n);
        w.flush(&mut rx).await;
        assert_eq!(audited(&ledger, "served"), (8, 2));
        std::fs::rename(&kept, &rotated).unwrap();
        task.abort();
        let _ = task.await;
        drop(log);
        // Without [serve] the daemon still replays what a killed server left.
        replay(ledger.clone(), actor(), dir.path()).await.unwrap();
        assert_eq!(audited(&ledger, "served"), (8, 2), "not replayed twice");
        let (log, task) = ListenLog::start(ledger.clone(), actor(), dir.path())
            .await
            .unwrap();
        assert!(journals(dir.path()).is_empty());
        drop(log);
        task.await.unwrap();
        assert_eq!(ledger.verify_audit_chain().unwrap().entries, 2);
    }

    #[tokio::test]
    async fn identical_requests_share_an_entry_and_nothing_is_lost_at_the_end() {
        let (dir, ledger) = crate::ledger::fixtures::ledger();
        let ledger = Arc::new(ledger);
        let (log, task) = ListenLog::start(ledger.clone(), actor(), dir.path())
            .await
            .unwrap();
        for _ in 0..500 {
            log.record(listen("partial", 100));
        }
        log.record(listen("forbidden", 0));
        drop(log);
        task.await.unwrap();
        let mut reasons = Vec::new();
        ledger
            .audit_entries::<LedgerError>(&AuditFilter::default(), |e| {
                reasons.push((e.user.clone(), e.reason.clone()));
                Ok(())
            })
            .unwrap();
        // Gathered into a few entries (a flush may fall mid-burst), none lost.
        let partial: Vec<_> = reasons
            .iter()
            .filter(|r| r.1.starts_with("partial"))
            .collect();
        assert!(partial.len() <= 2, "{reasons:?}");
        let requests: u64 = partial
            .iter()
            .map(|r| {
                r.1.split("; ")
                    .nth(3)
                    .unwrap()
                    .split(' ')
                    .next()
                    .unwrap()
                    .parse::<u64>()
                    .unwrap()
            })
            .sum();
        assert_eq!(requests, 500, "{reasons:?}");
        assert_eq!(reasons[0].0, "anonymous");
        assert!(
            reasons[0].1.contains("client 10.0.0.7; via store"),
            "{reasons:?}"
        );
        let reasons = [
            reasons.last().unwrap().clone(),
            reasons.last().unwrap().clone(),
        ];
        assert!(reasons[1].1.contains("forbidden") && reasons[1].1.contains("1 request;"));
    }
}
