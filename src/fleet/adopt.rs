//! A box heard from again learns what the leader did to its recordings
//! while it was silent (`recvault_governed`, written by `leader` in the
//! transaction that marks the catalog) and brings its own ledger to agree:
//! a recording the leader deleted by retention becomes `remote_deleted`
//! there, with the leader's name and an audit entry, and its row is then
//! removed. Until that happens the box's sweep cannot reserve those
//! recordings (`gate`) and its publishing cannot put their old state back
//! into the catalog (`publish`): nothing is deleted twice, nothing comes
//! back. A recording the leader deleted is always one whose local copy
//! the box had already removed (the leader takes no other of a silent
//! box), so agreeing never removes a file.

use std::collections::HashSet;
use std::sync::Arc;

use super::Fleet;
use crate::catalog::Entry;
use crate::error::Error;
use crate::ledger::audit::Actor;
use crate::ledger::retention::Due;
use crate::ledger::{Ledger, LedgerError};
use crate::recording::State;
use crate::recording::key::display_name;
use crate::units::now_secs;
use crate::vicidial::db::DbError;

/// One deletion the leader did for this box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Governed {
    pub id: i64,
    /// `retention`, or `erasure` (the leader erased the stored object).
    pub what: String,
    pub deleted_by: String,
    pub deleted_at: i64,
}

/// Records in `tx` that the leader deleted `e`'s object (`what`:
/// `retention`, or `erasure` of `request`).
pub(super) async fn record(
    tx: &mut sqlx::MySqlConnection,
    e: &Entry,
    what: &str,
    request: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO recvault_governed (host, id, what, request, deleted_by, deleted_at) \
         VALUES (?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE what = what",
    )
    .bind(&e.host)
    .bind(e.id)
    .bind(what)
    .bind(request)
    .bind(e.deleted_by.as_deref().unwrap_or("fleet leader"))
    .bind(e.deleted_at.unwrap_or(0))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Those of `ids` (of `host`) the box may not reserve or publish over now:
/// deleted by the leader's retention and not yet agreed, or reserved by
/// it. (What the leader erased the box erases too: its local copies.)
pub(super) async fn taken_in(
    c: &mut sqlx::MySqlConnection,
    host: &str,
    ids: &[i64],
) -> Result<HashSet<i64>, sqlx::Error> {
    let mut out = HashSet::new();
    for chunk in ids.chunks(500) {
        let list = vec!["?"; chunk.len()].join(", ");
        let sql = format!(
            "SELECT id FROM recvault_governed WHERE host = ? AND what = 'retention' AND id IN ({list}) \
             UNION SELECT id FROM recvault_deletions WHERE host = ? AND what = 'leader' AND id IN ({list})"
        );
        let mut q = sqlx::query_as::<_, (i64,)>(sqlx::AssertSqlSafe(sql)).bind(host);
        for id in chunk {
            q = q.bind(id);
        }
        q = q.bind(host);
        for id in chunk {
            q = q.bind(id);
        }
        out.extend(q.fetch_all(&mut *c).await?.into_iter().map(|(id,)| id));
    }
    Ok(out)
}

impl Fleet {
    /// What the leader deleted of this box's recordings and this box has
    /// not agreed to yet (at most 1,000 at a time).
    pub async fn governed(&self) -> Result<Vec<Governed>, DbError> {
        let host = self.host.clone();
        self.run(
            "reading what the fleet's leader deleted of this box",
            move |c| {
                Box::pin(async move {
                    let rows: Vec<(i64, String, String, i64)> = sqlx::query_as(
                        "SELECT id, what, deleted_by, deleted_at FROM recvault_governed \
                     WHERE host = ? ORDER BY id LIMIT 1000",
                    )
                    .bind(host)
                    .fetch_all(&mut *c)
                    .await?;
                    Ok(rows
                        .into_iter()
                        .map(|(id, what, deleted_by, deleted_at)| Governed {
                            id,
                            what,
                            deleted_by,
                            deleted_at,
                        })
                        .collect())
                })
            },
        )
        .await
    }

    /// Removes this box's rows of `ids`: its ledger agrees now.
    async fn agreed(&self, ids: Vec<i64>) -> Result<(), DbError> {
        let host = self.host.clone();
        self.run("noting what this box agreed to", move |c| {
            Box::pin(async move {
                for chunk in ids.chunks(500) {
                    let list = vec!["?"; chunk.len()].join(", ");
                    let sql =
                        format!("DELETE FROM recvault_governed WHERE host = ? AND id IN ({list})");
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(&host);
                    for id in chunk {
                        q = q.bind(id);
                    }
                    q.execute(&mut *c).await?;
                }
                Ok(())
            })
        })
        .await
    }
}

/// Brings this box's ledger to agree with what the leader deleted while it
/// was silent. Returns how many recordings changed in the ledger.
pub async fn agree(fleet: &Fleet, ledger: &Arc<Ledger>) -> Result<u64, Error> {
    let rows = fleet.governed().await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let (ids, changed) = ledger.call(move |l| agree_in(l, &rows, now_secs())).await?;
    // The ledger committed first: a crash here reads the rows again and
    // finds nothing left to change.
    fleet.agreed(ids).await?;
    if changed > 0 {
        tracing::info!(
            recordings = changed,
            "the fleet's leader deleted these recordings while this box was not heard from; this box's ledger now says so"
        );
    }
    Ok(changed)
}

/// Moves each recording of `rows` the leader deleted to `remote_deleted`
/// in one ledger transaction. Returns the rows dealt with, and how many
/// recordings changed.
fn agree_in(l: &Ledger, rows: &[Governed], now: i64) -> Result<(Vec<i64>, u64), Error> {
    let mut dealt = Vec::new();
    let mut deleted = Vec::new();
    for g in rows {
        let rec = match l.recording(g.id) {
            Ok(rec) => rec,
            Err(LedgerError::NoSuchRecording(_)) => {
                dealt.push(g.id);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        dealt.push(g.id);
        // An erasure the leader began: this box's eraser does the rest.
        if g.what != "retention" {
            continue;
        }
        match rec.state {
            State::LocalDeleted if rec.erasure.is_none() => deleted.push((
                Due {
                    due_at: g.deleted_at,
                    rule: g.deleted_by.clone(),
                    held: false,
                    archived: true,
                    rec,
                },
                None,
            )),
            State::LocalDeleted | State::RemoteDeleted => {}
            other => tracing::warn!(
                recording = %display_name(&rec.name),
                state = other.as_str(),
                "the fleet's leader deleted this recording's object, but this box's ledger does not say its local copy is gone; left as it is"
            ),
        }
    }
    let changed = l.record_retention_deletes(now, &Actor::current(), &deleted)?;
    Ok((dealt, changed.len() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::fixtures;

    fn row(id: i64, what: &str) -> Governed {
        Governed {
            id,
            what: what.into(),
            deleted_by: "fleet leader A: retention".into(),
            deleted_at: 5,
        }
    }

    #[test]
    fn the_ledger_takes_the_leaders_retention_deletes_and_nothing_else() {
        let (_dir, ledger) = fixtures::ledger();
        let gone = fixtures::insert_plain(&ledger, "/spool/a-all.wav", State::LocalDeleted);
        let local = fixtures::insert_plain(&ledger, "/spool/b-all.wav", State::Verified);
        let erased = fixtures::insert_plain(&ledger, "/spool/c-all.wav", State::LocalDeleted);
        let rows = [
            row(gone, "retention"),
            row(local, "retention"),
            row(erased, "erasure"),
            row(9999, "retention"),
        ];
        let (dealt, changed) = agree_in(&ledger, &rows, 10).unwrap();
        assert_eq!(dealt, [gone, local, erased, 9999]);
        assert_eq!(changed, 1);
        let state = |id| ledger.recording(id).unwrap().state;
        assert_eq!(state(gone), State::RemoteDeleted);
        assert_eq!(
            ledger.recording(gone).unwrap().deleted_by.as_deref(),
            Some("fleet leader A: retention")
        );
        // A local copy the leader did not know of stays; an erasure is the
        // box's own eraser's to finish.
        assert_eq!(state(local), State::Verified);
        assert_eq!(state(erased), State::LocalDeleted);
        // Agreeing again (a crash before the rows were removed) changes nothing.
        assert_eq!(agree_in(&ledger, &rows[..1], 11).unwrap().1, 0);
    }
}
