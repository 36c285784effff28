//! Signed requests that got no recording — outside `allow`, a login
//! refused or throttled, an expired link, gone, not found, the store down —
//! in the audit trail without letting one client grow it without bound.
//!
//! A listen (bytes or a redirect went out) is audited as it comes. A
//! refusal is audited at once the first time its kind (recording, client,
//! user, outcome, status, reason) is seen in a [`WINDOW`]; the same kind again in
//! that window is only counted, and the count becomes one more entry when
//! the window closes. At most [`KINDS`] kinds are tracked per window; what
//! comes beyond is one entry for the window (requests, recordings and
//! addresses counted). So refusals cost the ledger at most 2 × KINDS + 1
//! entries per window — 61 per 10 minutes, about 5 MB a day at the worst,
//! whatever a client sends. A kill -9 loses the counts of the open window,
//! never the first entry of a kind (journaled like a listen).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::journal::Line;
use super::listens::reason_of;
use crate::ledger::listens::ListenEntry;

/// How long refusals of one kind are counted into one entry.
pub const WINDOW: Duration = Duration::from_secs(600);
/// Kinds tracked per window; beyond, refusals share one entry.
pub const KINDS: usize = 30;
/// Addresses and recordings told apart in the overflow entry (beyond, "at least").
const DISTINCT: usize = 1000;

/// True for outcomes that are listens (each audited): bytes or a redirect
/// went to the client.
pub fn is_listen(outcome: &str) -> bool {
    matches!(outcome, "served" | "partial" | "redirected" | "aborted")
}

/// What makes refusals the same kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Kind {
    recording_id: Option<i64>,
    subject: String,
    client: IpAddr,
    user: Option<String>,
    outcome: String,
    status: u16,
    note: String,
}

impl Kind {
    fn of(line: &Line) -> Kind {
        Kind {
            recording_id: line.recording_id,
            subject: line.subject.clone(),
            client: line.client,
            user: line.user.clone(),
            outcome: line.outcome.clone(),
            status: line.status,
            note: line.note.clone(),
        }
    }
}

/// The repeats of one kind after its first.
struct Repeats {
    first: Line,
    /// Repeats counted (the first is not one of them).
    requests: u64,
    /// Whether every repeat sent the first's user agent.
    same_agent: bool,
}

/// Refusals beyond [`KINDS`] kinds in a window.
#[derive(Default)]
struct Overflow {
    first_at: i64,
    requests: u64,
    clients: HashSet<IpAddr>,
    recordings: HashSet<i64>,
}

/// One window's refusals.
pub struct Denials {
    since: Instant,
    kinds: HashMap<Kind, Repeats>,
    order: Vec<Kind>,
    overflow: Option<Overflow>,
}

impl Denials {
    pub fn new(now: Instant) -> Denials {
        Denials {
            since: now,
            kinds: HashMap::new(),
            order: Vec::new(),
            overflow: None,
        }
    }

    /// Takes a refused signed request: true if it is the first of its kind
    /// in the window (journal and audit it now), false if it was counted.
    pub fn first(&mut self, line: &Line) -> bool {
        let kind = Kind::of(line);
        if let Some(r) = self.kinds.get_mut(&kind) {
            r.requests += 1;
            r.same_agent &= r.first.user_agent == line.user_agent;
            return false;
        }
        if self.kinds.len() >= KINDS {
            let o = self.overflow.get_or_insert_with(|| Overflow {
                first_at: line.at,
                ..Overflow::default()
            });
            o.requests += 1;
            if o.clients.len() < DISTINCT {
                o.clients.insert(line.client);
            }
            if let Some(id) = line.recording_id.filter(|_| o.recordings.len() < DISTINCT) {
                o.recordings.insert(id);
            }
            return false;
        }
        let repeats = Repeats {
            first: line.clone(),
            requests: 0,
            same_agent: true,
        };
        self.kinds.insert(kind.clone(), repeats);
        self.order.push(kind);
        true
    }

    /// True once the window has lasted [`WINDOW`].
    pub fn is_over(&self, now: Instant) -> bool {
        now.duration_since(self.since) >= WINDOW
    }

    /// Closes the window: the entries for what it counted (repeats, the
    /// overflow); the next window starts empty at `now`.
    pub fn close(&mut self, now: Instant) -> Vec<ListenEntry> {
        let closed = std::mem::replace(self, Denials::new(now));
        let window = humantime::format_duration(WINDOW);
        let mut entries = Vec::new();
        for kind in &closed.order {
            let Some(r) = closed.kinds.get(kind).filter(|r| r.requests > 0) else {
                continue;
            };
            let mut line = r.first.clone();
            let others = match r.same_agent {
                true => "",
                false => ", with other user agents too",
            };
            line.note = match line.note.is_empty() {
                true => format!("repeated within {window} of the first{others}"),
                false => format!(
                    "{}, repeated within {window} of the first{others}",
                    line.note
                ),
            };
            entries.push(ListenEntry {
                at: line.at,
                recording_id: line.recording_id,
                subject: line.subject.clone(),
                user: line.user.clone().unwrap_or_else(|| "anonymous".into()),
                reason: reason_of(&line, r.requests, 0),
            });
        }
        if let Some(o) = closed.overflow {
            let at_least = |n: usize| match n >= DISTINCT {
                true => format!("at least {n}"),
                false => n.to_string(),
            };
            entries.push(ListenEntry {
                at: o.first_at,
                recording_id: None,
                subject: format!("refused requests beyond {KINDS} kinds in {window}"),
                user: "anonymous".into(),
                reason: format!(
                    "refused; {} requests for {} recordings from {} addresses, counted together",
                    o.requests,
                    at_least(o.recordings.len()),
                    at_least(o.clients.len())
                ),
            });
        }
        entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(id: i64, client: &str, user: &str, agent: &str) -> Line {
        Line {
            at: 7,
            recording_id: Some(id),
            subject: format!("recording {id} (permanent link)"),
            user: Some(user.into()),
            client: client.parse().unwrap(),
            user_agent: agent.into(),
            outcome: "forbidden".into(),
            status: 403,
            bytes: 0,
            via: "-".into(),
            note: "your address may not play recordings".into(),
        }
    }

    #[test]
    fn a_flood_costs_a_bounded_number_of_entries() {
        let t0 = Instant::now();
        let mut d = Denials::new(t0);
        let mut first = 0;
        // 100,000 refusals: one recording, client and user with ever-new
        // agents, then many recordings, users and addresses.
        for i in 0..50_000 {
            let agent = format!("a{i}");
            first += usize::from(d.first(&refused(1, "10.0.0.1", "u", &agent)));
        }
        for i in 0..50_000u32 {
            let client = format!("10.1.{}.{}", i / 250 % 250, i % 250);
            let user = format!("u{}", i % 7);
            first += usize::from(d.first(&refused(i64::from(i % 97), &client, &user, "y")));
        }
        assert_eq!(first, KINDS);
        assert!(!d.is_over(t0 + WINDOW / 2) && d.is_over(t0 + WINDOW));
        let entries = d.close(t0 + WINDOW);
        assert!(entries.len() <= KINDS + 1, "{}", entries.len());
        let repeated = &entries[0];
        assert!(
            repeated.reason.starts_with(
                "forbidden (your address may not play recordings, repeated within 10m of the first, with other user agents too); status 403; 0 bytes; 49999 requests;"
            ),
            "{}",
            repeated.reason
        );
        let overflow = entries.last().unwrap();
        assert!(
            overflow.reason.contains("requests for 97 recordings from"),
            "{}",
            overflow.reason
        );
        let counted: u64 = entries
            .iter()
            .map(|e| {
                let n = e
                    .reason
                    .split("; ")
                    .find(|p| p.ends_with("requests") || p.ends_with("request"));
                let n = n.unwrap_or_else(|| e.reason.split("; ").nth(1).unwrap());
                n.split(' ').next().unwrap().parse::<u64>().unwrap()
            })
            .sum();
        assert_eq!(counted as usize + first, 100_000);
        // The next window starts empty: the same kind is audited once again.
        assert!(d.first(&refused(1, "10.0.0.1", "u", "a0")));
        assert!(d.close(t0 + 2 * WINDOW).is_empty());
        assert!(is_listen("partial") && is_listen("aborted") && !is_listen("unauthorized"));
    }
}
