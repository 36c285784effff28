//! The audit of listens: every request for a recording becomes an audit
//! entry, without the request waiting for the ledger. Requests are handed
//! to a task that gathers them for a second, counts identical ones (same
//! recording, client, user, user agent and outcome) in one entry — a player
//! seeking through a call, or a client hammering a bad link, costs one entry
//! a second, not one per request — and appends each batch in one
//! transaction. Nothing is dropped: a batch the ledger refuses is kept and
//! tried again, and the last one is written when the daemon stops.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::ledger::Ledger;
use crate::ledger::audit::Actor;
use crate::ledger::listens::ListenEntry;

/// How long requests are gathered before they are written.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// One request for a recording, as the audit trail records it.
#[derive(Debug, Clone)]
pub struct Listen {
    pub at: i64,
    pub recording_id: Option<i64>,
    /// The recording's audit subject, or the link that was asked for.
    pub subject: String,
    /// The VICIdial user who authenticated, if any.
    pub user: Option<String>,
    pub client: IpAddr,
    pub user_agent: String,
    /// One of `metrics::PLAYBACK_OUTCOMES`.
    pub outcome: &'static str,
    pub status: u16,
    pub bytes: u64,
    /// Where the bytes came from: `local copy`, `store`, `redirect`, `-`.
    pub via: &'static str,
    /// Why a request was refused (what the client was told), else empty.
    pub note: String,
}

/// Requests counted into one entry.
type Key = (
    Option<i64>,
    String,
    Option<String>,
    IpAddr,
    String,
    &'static str,
    u16,
    &'static str,
    String,
);

struct Tally {
    at: i64,
    requests: u64,
    bytes: u64,
}

/// Where requests are handed over. Cloned into every connection; the
/// writing task ends (after writing everything) once every clone is dropped.
#[derive(Clone)]
pub struct ListenLog {
    tx: mpsc::UnboundedSender<Listen>,
}

impl ListenLog {
    /// Starts the task that writes listens to `ledger` as `actor`.
    pub fn start(ledger: Arc<Ledger>, actor: Actor) -> (ListenLog, JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (ListenLog { tx }, tokio::spawn(write(ledger, actor, rx)))
    }

    /// Hands one request over; never waits.
    pub fn record(&self, listen: Listen) {
        if let Err(lost) = self.tx.send(listen) {
            tracing::error!(subject = %lost.0.subject, "listen not audited: the audit writer has stopped");
        }
    }
}

async fn write(ledger: Arc<Ledger>, actor: Actor, mut rx: mpsc::UnboundedReceiver<Listen>) {
    let mut pending: HashMap<Key, Tally> = HashMap::new();
    let mut order: Vec<Key> = Vec::new();
    let mut failures = 0u32;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + FLUSH_EVERY, FLUSH_EVERY);
    loop {
        tokio::select! {
            listen = rx.recv() => match listen {
                Some(l) => add(&mut pending, &mut order, l),
                None => break,
            },
            _ = tick.tick() => {
                if !pending.is_empty() {
                    flush(&ledger, &actor, &mut pending, &mut order, &mut failures).await;
                }
            }
        }
    }
    // Every sender is gone: write what is left, trying a few times.
    for _ in 0..20 {
        if pending.is_empty() {
            return;
        }
        flush(&ledger, &actor, &mut pending, &mut order, &mut failures).await;
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    tracing::error!(
        entries = pending.len(),
        "could not write the last listens to the audit trail"
    );
}

fn add(pending: &mut HashMap<Key, Tally>, order: &mut Vec<Key>, l: Listen) {
    let key = (
        l.recording_id,
        l.subject,
        l.user,
        l.client,
        l.user_agent,
        l.outcome,
        l.status,
        l.via,
        l.note,
    );
    match pending.get_mut(&key) {
        Some(t) => {
            t.requests += 1;
            t.bytes += l.bytes;
        }
        None => {
            order.push(key.clone());
            pending.insert(
                key,
                Tally {
                    at: l.at,
                    requests: 1,
                    bytes: l.bytes,
                },
            );
        }
    }
}

/// Writes everything pending in one transaction; on failure keeps it.
async fn flush(
    ledger: &Arc<Ledger>,
    actor: &Actor,
    pending: &mut HashMap<Key, Tally>,
    order: &mut Vec<Key>,
    failures: &mut u32,
) {
    let entries: Vec<ListenEntry> = order
        .iter()
        .filter_map(|k| pending.get(k).map(|t| entry(k, t)))
        .collect();
    let actor = actor.clone();
    match ledger
        .call(move |l| l.record_listens(&actor, &entries))
        .await
    {
        Ok(()) => {
            pending.clear();
            order.clear();
            if *failures > 0 {
                tracing::info!("listens are written to the audit trail again");
            }
            *failures = 0;
        }
        Err(e) => {
            *failures += 1;
            if *failures == 1 || (*failures).is_multiple_of(300) {
                tracing::warn!(
                    waiting = pending.len(),
                    "cannot write listens to the audit trail yet (kept, retried): {e}"
                );
            }
        }
    }
}

fn entry(k: &Key, t: &Tally) -> ListenEntry {
    let (recording_id, subject, user, client, agent, outcome, status, via, note) = k;
    let note = match note.is_empty() {
        true => String::new(),
        false => format!(" ({note})"),
    };
    ListenEntry {
        at: t.at,
        recording_id: *recording_id,
        subject: subject.clone(),
        user: user.clone().unwrap_or_else(|| "anonymous".to_string()),
        reason: format!(
            "{outcome}{note}; status {status}; {} bytes; {} request{}; client {client}; via {via}; user agent {agent:?}",
            t.bytes,
            t.requests,
            if t.requests == 1 { "" } else { "s" },
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::LedgerError;
    use crate::ledger::audit::AuditFilter;

    fn listen(outcome: &'static str, bytes: u64) -> Listen {
        Listen {
            at: 5,
            recording_id: Some(3),
            subject: "recording 3".into(),
            user: None,
            client: "10.0.0.7".parse().unwrap(),
            user_agent: "player/1".into(),
            outcome,
            status: 206,
            bytes,
            via: "store",
            note: String::new(),
        }
    }

    #[tokio::test]
    async fn identical_requests_share_an_entry_and_nothing_is_lost_at_the_end() {
        let (_dir, ledger) = crate::ledger::fixtures::ledger();
        let ledger = Arc::new(ledger);
        let actor = Actor {
            uid: 1,
            user: "recvault".into(),
        };
        let (log, task) = ListenLog::start(ledger.clone(), actor);
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
