//! VICIdial's GDPR purges carried out everywhere recvault keeps a copy.
//!
//! The admin's "GDPR purge" of a lead queues each of its recordings in
//! `recording_log_deletion_queue`; VICIdial's own script only removes local
//! files. Each queue row is one erasure request (`VICIdial GDPR purge,
//! recording_log N`) over the recordings of that row — found by
//! `vicidial_recording_id` (attribution), by the row's file name, and by the
//! request itself once erased (erasure replaces the name by a pseudonym). The
//! request is confirmed as the admin's purge already was: reserved in the
//! transaction that checks holds ([`erase::request_confirmed`]), carried out
//! by the daemon's erasure chore like any `recvault erase`. Only when every
//! recording of the row is erased is the row marked done (`date_deleted`),
//! as AST_GDPR_audio_purge.pl marks it; a held recording keeps the row open
//! (and is named in the log with its cases) until its hold is released.
//! A row naming nothing recvault knows is left alone: VICIdial's own
//! script, or another server's recvault, owns it.
//!
//! A kill at any moment is harmless: the reservation is durable, marking
//! comes after the erasure is recorded, and marking twice changes nothing.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::attribution::QuietLog;
use crate::error::Error;
use crate::governance::requests::erase::{self, Standing};
use crate::governance::requests::key;
use crate::ledger::Ledger;
use crate::ledger::audit::Actor;
use crate::ledger::holds::Selector;
use crate::ledger::matching::Matched;
use crate::units::now_secs;
use crate::vicidial::db::VicidialDb;
use crate::vicidial::deletion_queue::DeletionRequest;

/// Queue rows read at once.
const PAGE: u32 = 200;

/// Everything the queue's reader needs.
pub struct Purges {
    pub ledger: Arc<Ledger>,
    pub db: Arc<VicidialDb>,
    /// Where the ledger is (the pseudonym key lives beside it).
    pub ledger_path: PathBuf,
    pub actor: Actor,
    /// How often the queue is read.
    pub every: Duration,
}

/// What one queue row came to this time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// recvault knows no recording of it.
    NotHere,
    /// These many recordings were reserved for erasure just now.
    Reserved(u64),
    /// Erasure under way (the chore has not got to it, or Object Lock waits).
    Erasing,
    /// Active holds of these cases keep some of its recordings.
    Held(Vec<String>),
    /// Every recording of it is erased: the row may be marked done.
    Erased,
}

/// What a look at the queue did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pass {
    pub rows: u64,
    pub reserved: u64,
    pub marked: u64,
    pub held: u64,
}

/// Where a row stands, from where each of its recordings stands.
pub fn verdict(items: &[(Matched, Standing)]) -> Verdict {
    if items.is_empty() {
        return Verdict::NotHere;
    }
    let mut cases: Vec<String> = items
        .iter()
        .flat_map(|(_, s)| match s {
            Standing::Held(c) => c.clone(),
            _ => Vec::new(),
        })
        .collect();
    cases.sort();
    cases.dedup();
    let fresh = items
        .iter()
        .filter(|(m, s)| *s == Standing::Erase && m.rec.erasure.is_none())
        .count() as u64;
    let erased = items.iter().all(|(m, s)| match s {
        Standing::Erase => m.rec.is_erased(),
        Standing::Other { done, .. } => *done,
        Standing::Held(_) => false,
    });
    match (fresh, cases.is_empty(), erased) {
        (n, _, _) if n > 0 => Verdict::Reserved(n),
        (_, false, _) => Verdict::Held(cases),
        (_, true, true) => Verdict::Erased,
        (_, true, false) => Verdict::Erasing,
    }
}

/// The erasure request a queue row stands for.
pub fn reference(row: &DeletionRequest) -> String {
    format!("VICIdial GDPR purge, recording_log {}", row.recording_id)
}

/// Reserves what `row` covers that is not reserved yet, and says where the
/// row stands. One ledger transaction at most.
fn consider(
    ledger: &Ledger,
    key: &crate::recording::pseudonym::PseudonymKey,
    actor: &Actor,
    row: &DeletionRequest,
) -> Result<Verdict, Error> {
    let request = reference(row);
    let mut ids = ledger.ids_of_vicidial_recording(row.recording_id)?;
    if let Some(name) = row.filename.as_deref().filter(|n| !n.is_empty()) {
        ids.extend(ledger.ids_of_stem(name.as_bytes())?);
    }
    ids.extend(ledger.erasure_of(&request)?.iter().map(|r| r.id));
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(Verdict::NotHere);
    }
    let selectors: Vec<Selector> = ids.into_iter().map(Selector::Id).collect();
    let plan = erase::preview(ledger, key, &request, &selectors)?;
    match verdict(&plan.items) {
        Verdict::Reserved(_) => {
            let plan =
                erase::request_confirmed(ledger, key, &request, &selectors, actor, now_secs())?;
            Ok(Verdict::Reserved(plan.totals().0))
        }
        other => Ok(other),
    }
}

impl Purges {
    /// Runs until `stop` is cancelled.
    pub async fn run(self, stop: CancellationToken) {
        let mut log = QuietLog::new(Duration::from_secs(300));
        // Rows whose holds were named already (once per run, not per look).
        let mut held_named = HashSet::new();
        loop {
            match self.pass(&mut held_named).await {
                Ok(pass) => {
                    if log.success() {
                        tracing::info!("VICIdial's GDPR purge queue is read again");
                    }
                    if pass.reserved > 0 || pass.marked > 0 {
                        tracing::info!(
                            rows = pass.rows,
                            reserved = pass.reserved,
                            marked_done = pass.marked,
                            held = pass.held,
                            "VICIdial GDPR purges"
                        );
                    }
                }
                Err(e) => {
                    if let Some(unlogged) = log.failure() {
                        tracing::warn!(
                            unlogged,
                            "VICIdial GDPR purges wait (retried every {:?}): {e}",
                            self.every
                        );
                    }
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(self.every) => {}
            }
        }
    }

    /// Reads every pending row of this server once.
    pub async fn pass(&self, held_named: &mut HashSet<u32>) -> Result<Pass, Error> {
        let mut pass = Pass::default();
        let mut after = 0;
        let mut key = None;
        loop {
            let page = self.db.pending_deletions(after, PAGE).await?;
            for row in &page {
                pass.rows += 1;
                after = row.recording_id;
                let key = match &key {
                    Some(k) => k,
                    None => key.insert(key::load_or_create(&self.ledger_path)?),
                };
                let (k, actor, r) = (key.clone(), self.actor.clone(), row.clone());
                let verdict = self
                    .ledger
                    .call(move |l| consider(l, &k, &actor, &r))
                    .await?;
                match verdict {
                    Verdict::NotHere | Verdict::Erasing => {}
                    Verdict::Reserved(n) => pass.reserved += n,
                    Verdict::Held(cases) => {
                        pass.held += 1;
                        if held_named.insert(row.recording_id) {
                            tracing::warn!(
                                recording_log = row.recording_id,
                                cases = %cases.join(", "),
                                "VICIdial GDPR purge: held recordings are not erased; the queue row stays open until the holds are released"
                            );
                        }
                    }
                    Verdict::Erased => {
                        if self.db.mark_deleted(row.recording_id).await? {
                            pass.marked += 1;
                        }
                    }
                }
            }
            if page.len() < PAGE as usize {
                return Ok(pass);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::fixtures;
    use crate::recording::{ErasureMark, State};

    fn item(
        id: i64,
        erasure: Option<(&str, Option<i64>)>,
        standing: Standing,
    ) -> (Matched, Standing) {
        let (_dir, ledger) = fixtures::ledger();
        let path = format!("/spool/{id}-all.wav");
        let mut rec = ledger
            .recording(fixtures::insert_plain(&ledger, &path, State::Seen))
            .unwrap();
        rec.id = id;
        rec.erasure = erasure.map(|(request, erased_at)| ErasureMark {
            request: request.into(),
            erased_at,
            wait_until: None,
        });
        (
            Matched {
                rec,
                cases: Vec::new(),
            },
            standing,
        )
    }

    #[test]
    fn a_row_is_done_only_when_every_recording_is_erased() {
        let mine = Some(("q", Some(5)));
        let under_way = Some(("q", None));
        let other_done = Standing::Other {
            request: "ticket-1".into(),
            done: true,
        };
        let other_busy = Standing::Other {
            request: "ticket-1".into(),
            done: false,
        };
        assert_eq!(verdict(&[]), Verdict::NotHere);
        assert_eq!(
            verdict(&[
                item(1, None, Standing::Erase),
                item(2, mine, Standing::Erase)
            ]),
            Verdict::Reserved(1)
        );
        assert_eq!(
            verdict(&[
                item(1, under_way, Standing::Erase),
                item(2, mine, Standing::Erase)
            ]),
            Verdict::Erasing
        );
        assert_eq!(
            verdict(&[
                item(1, mine, Standing::Erase),
                item(2, Some(("ticket-1", Some(3))), other_done)
            ]),
            Verdict::Erased
        );
        assert_eq!(
            verdict(&[
                item(1, mine, Standing::Erase),
                item(2, Some(("ticket-1", None)), other_busy)
            ]),
            Verdict::Erasing
        );
        let held = Standing::Held(vec!["CASE-2".into(), "CASE-1".into()]);
        assert_eq!(
            verdict(&[item(1, mine, Standing::Erase), item(2, None, held.clone())]),
            Verdict::Held(vec!["CASE-1".into(), "CASE-2".into()])
        );
        // Something left to reserve goes first; the held one is reported later.
        assert_eq!(
            verdict(&[item(1, None, Standing::Erase), item(2, None, held)]),
            Verdict::Reserved(1)
        );
    }
}
