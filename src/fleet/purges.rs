//! VICIdial's GDPR purge queue (`recording_log_deletion_queue`) in a fleet:
//! read by the leader alone, for every server's rows, instead of by each
//! box for its own. Each row is one fleet erasure request (`VICIdial GDPR
//! purge, recording_log N`) over every copy the catalog knows of its
//! recording (by the row's file name, or its `recording_log` id and lead),
//! on whichever box it is; each box erases its own copies (`erasure`). The
//! row is marked done (`date_deleted`) only when the fleet's request is
//! complete — every box that had a copy erased it, or was forgotten — and
//! no hold keeps one of them. A stopped box keeps the row open. A row
//! naming nothing the fleet knows is left to VICIdial's own script.

use std::collections::{BTreeSet, HashSet};

use super::Fleet;
use crate::catalog::{Entry, ErasureConfirmation, Standing};
use crate::error::Error;
use crate::ledger::holds::Selector;
use crate::pipeline::purges::{Pass, Verdict, reference};
use crate::vicidial::db::{DbError, VicidialDb};
use crate::vicidial::deletion_queue::DeletionRequest;

/// Queue rows read at once.
const PAGE: u32 = 200;

impl Fleet {
    /// One look at the whole queue: reserves what is new, marks what the
    /// fleet has erased. `held_named`: rows whose holds were logged already.
    pub async fn purge_queue_pass(
        &self,
        db: &VicidialDb,
        held_named: &mut HashSet<u32>,
        now: i64,
    ) -> Result<Pass, Error> {
        let mut pass = Pass::default();
        let mut after = 0;
        loop {
            let page = db.pending_deletions_everywhere(after, PAGE).await?;
            for row in &page {
                pass.rows += 1;
                after = row.recording_id;
                match self.purge_row(row, now).await? {
                    Verdict::NotHere | Verdict::Erasing => {}
                    Verdict::Reserved(n) => pass.reserved += n,
                    Verdict::Held(cases) => {
                        pass.held += 1;
                        if held_named.insert(row.recording_id) {
                            tracing::warn!(
                                recording_log = row.recording_id,
                                cases = %cases.join(", "),
                                "VICIdial GDPR purge: held recordings are not erased on any box; the queue row stays open until the holds are released"
                            );
                        }
                    }
                    Verdict::Erased => {
                        if db.mark_deleted(row.recording_id).await? {
                            tracing::info!(
                                recording_log = row.recording_id,
                                "VICIdial GDPR purge complete on every box: queue row marked done"
                            );
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

    /// Where one queue row stands in the fleet; reserves its new copies.
    async fn purge_row(&self, row: &DeletionRequest, now: i64) -> Result<Verdict, Error> {
        let request = reference(row);
        let progress = self.erasure_progress(&request, now).await?;
        let known: HashSet<(String, i64)> = progress
            .iter()
            .flat_map(|p| p.lines.iter().map(|l| (l.host.clone(), l.id)))
            .collect();
        let entries = self.queue_matches(row).await?;
        if entries.is_empty() && progress.is_none() {
            return Ok(Verdict::NotHere);
        }
        let plan = super::erasure::plan(&request, &[], entries);
        let fresh: Vec<Selector> = plan
            .to_erase()
            .filter(|i| !known.contains(&(i.entry.host.clone(), i.entry.id)))
            .map(|i| Selector::Recording(format!("{}/{}", i.entry.host, i.entry.id)))
            .collect();
        if !fresh.is_empty() {
            let by = format!("fleet leader {}: VICIdial GDPR purge", self.host);
            let key = self.pseudonym_key()?;
            return Ok(
                match self
                    .confirm_erasure(&by, &request, &fresh, &key, None, now)
                    .await?
                {
                    ErasureConfirmation::Reserved(p) => {
                        Verdict::Reserved(p.to_erase().count() as u64)
                    }
                    // A hold came in between: looked at again next time.
                    ErasureConfirmation::Changed(_) => Verdict::Erasing,
                },
            );
        }
        let mut cases = BTreeSet::new();
        let mut others_busy = false;
        for item in &plan.items {
            match &item.standing {
                Standing::Held(c) => cases.extend(c.iter().cloned()),
                Standing::Other { done, .. } => others_busy |= !done,
                Standing::Erase => {}
            }
        }
        Ok(match progress {
            _ if !cases.is_empty() => Verdict::Held(cases.into_iter().collect()),
            Some(p) if p.complete && !others_busy => Verdict::Erased,
            _ => Verdict::Erasing,
        })
    }

    /// The catalog's recordings `row` names: those whose file name is the
    /// row's (before a `-` leg suffix or the extension), and those of its
    /// lead attributed to its `recording_log` id.
    async fn queue_matches(&self, row: &DeletionRequest) -> Result<Vec<Entry>, DbError> {
        let stem = row.filename.clone().filter(|n| !n.is_empty());
        let lead = row.lead_id.map(|l| l.to_string());
        let id = i64::from(row.recording_id);
        let entries = self
            .run("finding a GDPR purge's recordings in the fleet", move |c| {
                Box::pin(async move {
                    let like = stem.as_deref().map(|s| format!("{}%", escape_like(s)));
                    let rows = sqlx::query(
                        "SELECT entry FROM recvault_recordings WHERE (? IS NOT NULL AND name LIKE ? ESCAPE '!') \
                         OR (? IS NOT NULL AND lead_id = ?)",
                    )
                    .bind(like.clone())
                    .bind(like)
                    .bind(lead.clone())
                    .bind(lead)
                    .fetch_all(&mut *c)
                    .await?;
                    super::leader::entries(&rows)
                })
            })
            .await?;
        let stem = row.filename.as_deref().unwrap_or_default();
        Ok(entries
            .into_iter()
            .filter(|e| {
                e.vicidial_recording_id == Some(id)
                    || (!stem.is_empty()
                        && e.name.strip_prefix(stem).is_some_and(|rest| {
                            rest.is_empty() || rest.starts_with('-') || rest.starts_with('.')
                        }))
            })
            .collect())
    }
}

/// `text` for a LIKE pattern with `!` as the escape character.
fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        if matches!(ch, '!' | '%' | '_') {
            out.push('!');
        }
        out.push(ch);
    }
    out
}

/// The leader's reading of the queue: every `every`, while it leads.
pub struct QueueReader {
    pub db: VicidialDb,
    held_named: HashSet<u32>,
    failing: bool,
}

impl QueueReader {
    /// A reader of `db`'s queue.
    pub fn new(db: VicidialDb) -> QueueReader {
        QueueReader {
            db,
            held_named: HashSet::new(),
            failing: false,
        }
    }

    /// One pass, its outcome logged once per change.
    pub async fn pass(&mut self, fleet: &Fleet, now: i64) {
        match fleet
            .purge_queue_pass(&self.db, &mut self.held_named, now)
            .await
        {
            Ok(pass) => {
                tracing::debug!(rows = pass.rows, "VICIdial GDPR purge queue read");
                if self.failing {
                    tracing::info!("VICIdial's GDPR purge queue is read again");
                    self.failing = false;
                }
                if pass.reserved > 0 || pass.marked > 0 {
                    tracing::info!(
                        rows = pass.rows,
                        reserved = pass.reserved,
                        marked_done = pass.marked,
                        held = pass.held,
                        "VICIdial GDPR purges across the fleet"
                    );
                }
            }
            Err(e) if !self.failing => {
                tracing::warn!("VICIdial GDPR purges wait: {e}");
                self.failing = true;
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn like_patterns_match_the_name_literally() {
        assert_eq!(super::escape_like("2026_01!%"), "2026!_01!!!%");
    }
}
