//! Erasure across boxes: `erase` on any box previews every box's copies of
//! a request's recordings; its confirmation (the preview's token, the set
//! and the fleet's holds checked in the gate's transaction) records the
//! request and one item per recording in the fleet's database. Each box's
//! daemon takes its own items into its ledger (where its erasure chore
//! carries them out, checking the fleet's holds again) and marks each once
//! erased. The request is complete only when every box that had a copy
//! has done so, or was forgotten.

use sha2::{Digest, Sha256};
use sqlx::Row as _;

use super::holds::{LOCK_GATE, begin};
use super::{Fleet, select};
use crate::catalog::{
    CopyOutcome, Entry, ErasureConfirmation, ErasureItem, ErasureLine, ErasurePlan,
    ErasureProgress, OpenHost, Page, Paging, Search, Selector, Standing,
};
use crate::governance::requests::{pseudonymous, widen};
use crate::ledger::holds::describe;
use crate::recording::pseudonym::{PseudonymKey, is_pseudonym};
use crate::vicidial::db::DbError;

/// Where `e` stands for `request`.
fn standing(e: &Entry, request: &str) -> Standing {
    match &e.erasure {
        Some(m) if m.request == request => Standing::Erase,
        Some(m) => Standing::Other {
            request: m.request.clone(),
            done: m.erased_at.is_some(),
        },
        None if e.held() => Standing::Held(e.held_by.clone()),
        None => Standing::Erase,
    }
}

/// The plan of `request` over `entries`, with the token naming that set.
pub fn plan(request: &str, selectors: &[Selector], entries: Vec<Entry>) -> ErasurePlan {
    let items: Vec<ErasureItem> = entries
        .into_iter()
        .map(|e| ErasureItem {
            standing: standing(&e, request),
            copies: super::catalog::copies_of_entry(&e),
            entry: e,
        })
        .collect();
    let mut lines: Vec<String> = items
        .iter()
        .map(|i| format!("{}/{}:{:?}", i.entry.host, i.entry.id, i.standing))
        .collect();
    lines.sort();
    let mut h = Sha256::new();
    h.update(b"fleet-erase-confirm\0");
    h.update(request.as_bytes());
    h.update(b"\0");
    h.update(describe(selectors).as_bytes());
    for l in &lines {
        h.update(b"\0");
        h.update(l.as_bytes());
    }
    ErasurePlan {
        request: request.to_string(),
        selectors: selectors.to_vec(),
        items,
        token: hex::encode(h.finalize())[..16].to_string(),
    }
}

impl Fleet {
    /// Every recording of the fleet `selectors` match (none for none).
    pub async fn matching(&self, selectors: &[Selector]) -> Result<Vec<Entry>, DbError> {
        if selectors.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        let mut search = Search {
            selectors: selectors.to_vec(),
            paging: Paging::After {
                cursor: None,
                limit: 5000,
            },
            ..Search::default()
        };
        loop {
            let Page { entries, next, .. } = self.search(&search).await?;
            out.extend(entries);
            match next {
                Some(cursor) => {
                    search.paging = Paging::After {
                        cursor: Some(cursor),
                        limit: 5000,
                    }
                }
                None => return Ok(out),
            }
        }
    }

    /// The plan of `request`: every recording `selectors` match, those an
    /// earlier erasure left pseudonyms in included (matched through `key`).
    pub async fn erasure_plan(
        &self,
        request: &str,
        selectors: &[Selector],
        key: &PseudonymKey,
    ) -> Result<ErasurePlan, DbError> {
        let entries = self.matching(&widen(selectors, Some(key))).await?;
        Ok(plan(request, selectors, entries))
    }

    /// Confirms `request` if the set is still the one `token` named (any
    /// with `None`): records it and its items, holds checked in the gate's
    /// transaction (a recording a hold covers now is left out). Only
    /// pseudonyms (under `key`, the fleet's) are written: the boxes match
    /// their items by (host, id), so no number or file name is needed there.
    pub async fn confirm_erasure(
        &self,
        by: &str,
        request: &str,
        selectors: &[Selector],
        key: &PseudonymKey,
        token: Option<&str>,
        now: i64,
    ) -> Result<ErasureConfirmation, DbError> {
        let preview = self.erasure_plan(request, selectors, key).await?;
        let erase = preview.to_erase().count();
        if token.is_some_and(|t| t != preview.token) || erase == 0 {
            return Ok(ErasureConfirmation::Changed(preview));
        }
        let items: Vec<(String, i64, String)> = preview
            .to_erase()
            .map(|i| {
                (
                    i.entry.host.clone(),
                    i.entry.id,
                    name_pseudonym(&i.entry.name, key),
                )
            })
            .collect();
        let (by, request_s) = (by.to_string(), request.to_string());
        let json =
            serde_json::to_string(&pseudonymous(selectors, key)).expect("selectors serialize");
        let released = released_values(selectors, key);
        let recorded = self
            .run("confirming an erasure in the fleet", move |c| {
                Box::pin(
                    async move { record(c, &by, &request_s, (json, &released), &items, now).await },
                )
            })
            .await?;
        Ok(match recorded {
            true => ErasureConfirmation::Reserved(preview),
            false => {
                ErasureConfirmation::Changed(self.erasure_plan(request, selectors, key).await?)
            }
        })
    }

    /// Where `request` stands on every box.
    pub async fn erasure_progress(
        &self,
        request: &str,
        now: i64,
    ) -> Result<Option<ErasureProgress>, DbError> {
        let request = request.to_string();
        let alive_since = self.alive_since(now);
        self.run("reading an erasure's progress", move |c| {
            Box::pin(async move { progress_in(c, request, alive_since, now).await })
        })
        .await
    }

    /// This box's items not erased yet: (request, recording id).
    pub async fn my_erasures(&self) -> Result<Vec<(String, i64)>, DbError> {
        let host = self.host.clone();
        self.run("reading this box's erasures", move |c| {
            Box::pin(async move {
                sqlx::query_as(
                    "SELECT request, id FROM recvault_erasure_items WHERE host = ? AND erased_at IS NULL \
                     ORDER BY request, id LIMIT 1000",
                )
                .bind(host)
                .fetch_all(&mut *c)
                .await
            })
        })
        .await
    }

    /// Rewrites the selectors `request` was recorded with as pseudonyms
    /// where an older version wrote them plain (nothing changes otherwise).
    pub async fn pseudonymise_request(
        &self,
        request: &str,
        key: &PseudonymKey,
    ) -> Result<(), DbError> {
        let (request, key) = (request.to_string(), key.clone());
        self.run("writing an erasure's selectors as pseudonyms", move |c| {
            Box::pin(async move {
                let row: Option<(String,)> =
                    sqlx::query_as("SELECT selectors FROM recvault_erasures WHERE request = ?")
                        .bind(&request)
                        .fetch_optional(&mut *c)
                        .await?;
                let Some(Ok(selectors)) =
                    row.map(|(json,)| serde_json::from_str::<Vec<Selector>>(&json))
                else {
                    return Ok(());
                };
                let shown = pseudonymous(&selectors, &key);
                if shown != selectors {
                    let json = serde_json::to_string(&shown).expect("selectors serialize");
                    sqlx::query("UPDATE recvault_erasures SET selectors = ? WHERE request = ?")
                        .bind(json)
                        .bind(&request)
                        .execute(&mut *c)
                        .await?;
                }
                Ok(())
            })
        })
        .await
    }

    /// Marks this box's items of `request` erased at `at`, each with the
    /// name its ledger keeps now (the pseudonym: an item an older version
    /// recorded with the file's name loses it here at the latest).
    pub async fn mark_erased(
        &self,
        request: &str,
        ids: Vec<(i64, i64, String)>,
    ) -> Result<(), DbError> {
        let (host, request) = (self.host.clone(), request.to_string());
        self.run("marking this box's erasures done", move |c| {
            Box::pin(async move {
                for (id, at, name) in ids {
                    sqlx::query(
                        "UPDATE recvault_erasure_items SET erased_at = ?, name = ? \
                         WHERE request = ? AND host = ? AND id = ? AND erased_at IS NULL",
                    )
                    .bind(at)
                    .bind(name)
                    .bind(&request)
                    .bind(&host)
                    .bind(id)
                    .execute(&mut *c)
                    .await?;
                }
                Ok(())
            })
        })
        .await
    }
}

/// What an item's name becomes in the fleet's database: its pseudonym
/// (the one the box's ledger will keep once it erased it).
fn name_pseudonym(name: &str, key: &PseudonymKey) -> String {
    match is_pseudonym(name.as_bytes()) {
        true => name.to_string(),
        false => String::from_utf8_lossy(&key.name(name.as_bytes())).into_owned(),
    }
}

/// Records a confirmed erasure and its items, in the gate's transaction;
/// `false` (nothing recorded) if a hold covers one of them now.
async fn record(
    c: &mut sqlx::MySqlConnection,
    by: &str,
    request_s: &str,
    (json, released): (String, &[Released]),
    items: &[(String, i64, String)],
    now: i64,
) -> Result<bool, sqlx::Error> {
    let mut tx = begin(c).await?;
    sqlx::query(LOCK_GATE).execute(&mut *tx).await?;
    // A hold committed since the preview: the set changed.
    for (host, id, _) in items {
        let sql = format!(
            "SELECT COUNT(*) FROM recvault_recordings r WHERE r.host = ? AND r.id = ? AND {}",
            select::held()
        );
        let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(host)
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        if n > 0 {
            return Ok(false);
        }
    }
    sqlx::query(
        "INSERT IGNORE INTO recvault_erasures (request, selectors, requested_by, requested_at) \
             VALUES (?, ?, ?, ?)",
    )
    .bind(request_s)
    .bind(json)
    .bind(by)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    for (host, id, name) in items {
        sqlx::query(
                "INSERT IGNORE INTO recvault_erasure_items (request, host, id, name) VALUES (?, ?, ?, ?)",
            )
            .bind(request_s)
            .bind(host)
            .bind(id)
            .bind(name)
            .execute(&mut *tx)
            .await?;
    }
    scrub_released_holds(&mut tx, released).await?;
    tx.commit().await?;
    Ok(true)
}

/// A number or lead id a request names: (selector kind, value, pseudonym).
type Released = (&'static str, String, String);

/// The numbers and lead ids `selectors` name, with their pseudonyms.
fn released_values(selectors: &[Selector], key: &PseudonymKey) -> Vec<Released> {
    selectors
        .iter()
        .filter_map(|s| match s {
            Selector::Phone(p) if !is_pseudonym(p.as_bytes()) => {
                Some(("phone", p.clone(), key.phone(p)))
            }
            Selector::Lead(l) if !is_pseudonym(l.as_bytes()) => {
                Some(("lead", l.clone(), key.lead(l)))
            }
            _ => None,
        })
        .collect()
}

/// Released holds naming a number (or lead id) this request erases get its
/// pseudonym, as in one ledger: unless a recording the fleet keeps still
/// has it (one no erasure covers) or an active hold names it (it must go
/// on matching). Released holds protect nothing, so this is done with the
/// confirmation rather than waiting for the boxes.
async fn scrub_released_holds(
    tx: &mut sqlx::MySqlConnection,
    released: &[Released],
) -> Result<(), sqlx::Error> {
    for (kind, value, pseudonym) in released {
        let column = match *kind {
            "phone" => "phone",
            _ => "lead_id",
        };
        let sql = format!(
            "UPDATE recvault_hold_selectors s JOIN recvault_holds h ON h.id = s.hold_id \
             SET s.value = ? WHERE s.kind = ? AND s.value = ? AND h.released_at IS NOT NULL \
             AND NOT EXISTS (SELECT 1 FROM recvault_recordings r LEFT JOIN recvault_erasure_items i \
                             ON i.host = r.host AND i.id = r.id WHERE r.{column} = ? AND i.id IS NULL) \
             AND NOT EXISTS (SELECT 1 FROM recvault_hold_selectors a JOIN recvault_holds ah \
                             ON ah.id = a.hold_id WHERE a.kind = ? AND a.value = ? AND ah.released_at IS NULL)"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(pseudonym)
            .bind(*kind)
            .bind(value)
            .bind(value)
            .bind(*kind)
            .bind(value)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// Where `request` stands, on `c`; marks it complete when it is.
async fn progress_in(
    c: &mut sqlx::MySqlConnection,
    request: String,
    alive_since: i64,
    now: i64,
) -> Result<Option<ErasureProgress>, sqlx::Error> {
    let head: Option<(i64, Option<i64>)> = sqlx::query_as(
        "SELECT requested_at, completed_at FROM recvault_erasures WHERE request = ?",
    )
    .bind(&request)
    .fetch_optional(&mut *c)
    .await?;
    let Some((requested_at, completed_at)) = head else {
        return Ok(None);
    };
    let rows = sqlx::query(
        "SELECT i.host, i.id, i.name, i.erased_at, b.forgotten_at, b.forgotten_by, b.heartbeat_at \
         FROM recvault_erasure_items i LEFT JOIN recvault_boxes b ON b.host = i.host \
         WHERE i.request = ? ORDER BY i.host, i.id",
    )
    .bind(&request)
    .fetch_all(&mut *c)
    .await?;
    let mut lines = Vec::new();
    let mut open: Vec<OpenHost> = Vec::new();
    for r in &rows {
        lines.push(line_of(r, alive_since, &mut open)?);
    }
    let complete = open.is_empty();
    let completed_at = match (complete, completed_at) {
        (true, None) => {
            sqlx::query("UPDATE recvault_erasures SET completed_at = ? WHERE request = ? AND completed_at IS NULL")
                .bind(now)
                .bind(&request)
                .execute(&mut *c)
                .await?;
            Some(now)
        }
        (_, at) => at,
    };
    Ok(Some(ErasureProgress {
        request,
        lines,
        complete,
        open,
        requested_at: Some(requested_at),
        completed_at,
    }))
}

/// One item of a request, from its row; a pending one counts on its box's
/// entry in `open`.
fn line_of(
    r: &sqlx::mysql::MySqlRow,
    alive_since: i64,
    open: &mut Vec<OpenHost>,
) -> Result<ErasureLine, sqlx::Error> {
    let host: String = r.try_get(0)?;
    let erased: Option<i64> = r.try_get(3)?;
    let forgotten: Option<i64> = r.try_get(4)?;
    let beat: Option<i64> = r.try_get(6)?;
    let outcome = match (erased, forgotten) {
        (Some(at), _) => CopyOutcome::Erased { at },
        (None, Some(_)) => CopyOutcome::Closed {
            by: r.try_get::<Option<String>, _>(5)?.unwrap_or_default(),
        },
        (None, None) => {
            match open.iter_mut().find(|o| o.host == host) {
                Some(o) => o.copies += 1,
                None => open.push(OpenHost {
                    host: host.clone(),
                    copies: 1,
                    heartbeat: beat,
                    reachable: beat.is_some_and(|b| b >= alive_since),
                }),
            }
            CopyOutcome::Pending {
                why: format!("box {host} has not erased it yet"),
            }
        }
    };
    Ok(ErasureLine {
        host,
        id: r.try_get(1)?,
        name: r.try_get(2)?,
        outcome,
    })
}
