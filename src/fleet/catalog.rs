//! [`FleetCatalog`]: the `Catalog` of every box, answered from the fleet's
//! database — searches over the published catalog, the fleet's holds, its
//! retention policy and every box's overview. What only this box can do
//! (carry out an erasure, read its own listens) goes to its own
//! [`LocalCatalog`]. Every failure to reach the database is
//! [`CatalogError::Unavailable`]: nothing changed, try again later.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use sqlx::Row as _;

use super::Fleet;
use super::select::{self, Arg, bind_all};
use crate::catalog::{
    Actor, BoxOverview, Catalog, CatalogError, Copy, Coverage, Cursor, CursorValue, Detail, Entry,
    ErasureConfirmation, ErasurePlan, ErasureProgress, HoldInfo, HoldPlacement, HoldRelease,
    LocalCatalog, NewHold, Page, Paging, Place, RecordingRef, RetentionChange, RetentionImpact,
    RetentionView, Rules, Scope, Search, Selector, SortKey, StateFilter,
};
use crate::error::{Error, HoldProblem};
use crate::governance::hold;
use crate::units::now_secs;
use crate::vicidial::db::DbError;

/// The catalog of a whole fleet, asked from one of its boxes.
pub struct FleetCatalog {
    fleet: Arc<Fleet>,
    local: LocalCatalog,
}

impl FleetCatalog {
    /// The fleet's catalog; `local` is this box's (erasures, listens).
    pub fn new(fleet: Arc<Fleet>, local: LocalCatalog) -> FleetCatalog {
        FleetCatalog { fleet, local }
    }

    /// The fleet's holds copied to the store after a change made here.
    async fn aftermath(&self) -> crate::catalog::Aftermath {
        let store = self.local.hold_store().await;
        super::mirror::aftermath(&self.fleet, self.local.config(), store).await
    }

    fn by(&self, actor: &Actor) -> String {
        format!("{}@{}", actor.user, self.fleet.host)
    }
}

fn unavailable(e: DbError) -> CatalogError {
    CatalogError::from(Error::from(e))
}

/// The SQL of a sort key over `r`, and whether its value is text.
fn sort_sql(key: SortKey) -> (&'static str, bool) {
    match key {
        SortKey::Time => ("r.time", false),
        SortKey::Host => ("r.host", true),
        SortKey::Campaign => ("COALESCE(r.campaign, '')", true),
        SortKey::Agent => ("COALESCE(r.agent, '')", true),
        SortKey::Size => ("r.size", false),
        SortKey::State => ("r.state", true),
    }
}

/// The WHERE clause of `search` (without a cursor) and its arguments.
fn filters(search: &Search) -> (String, Vec<Arg>) {
    let mut parts = vec!["1 = 1".to_string()];
    let mut args = Vec::new();
    if let Some((sql, values)) = select::selection(&search.selectors) {
        parts.push(sql);
        args.extend(values);
    }
    match search.state {
        None => {}
        Some(StateFilter::State(s)) => {
            parts.push("r.state = ? AND r.erase_request IS NULL".into());
            args.push(Arg::Text(s.as_str().into()));
        }
        Some(StateFilter::Ledger(s)) => {
            parts.push("r.state = ?".into());
            args.push(Arg::Text(s.as_str().into()));
        }
        Some(StateFilter::Erasing) => {
            parts.push("r.erase_request IS NOT NULL AND r.erased_at IS NULL".into())
        }
        Some(StateFilter::Erased) => parts.push("r.erased_at IS NOT NULL".into()),
    }
    match search.held {
        None => {}
        Some(true) => parts.push(select::held()),
        Some(false) => parts.push(format!("NOT {}", select::held())),
    }
    if let Some(case) = &search.case {
        parts.push(select::covered("h.case_id = ?"));
        args.push(Arg::Text(case.clone()));
    }
    if let Some(host) = &search.host {
        parts.push("r.host = ?".into());
        args.push(Arg::Text(host.clone()));
    }
    (parts.join(" AND "), args)
}

/// A search's page query, its arguments, its count query (offset paging)
/// and whether the sort value is text.
#[allow(clippy::type_complexity)]
fn page_sql(search: &Search) -> (String, Vec<Arg>, Option<(String, Vec<Arg>)>, bool) {
    let (filter, mut args) = filters(search);
    let (key, text) = sort_sql(search.sort.key);
    let dir = if search.sort.descending {
        "DESC"
    } else {
        "ASC"
    };
    let limit = search.paging.limit();
    let mut sql = format!("SELECT r.entry, {key} FROM recvault_recordings r WHERE {filter}");
    let mut count = None;
    match &search.paging {
        Paging::Offset { offset, .. } => {
            count = Some((
                format!("SELECT COUNT(*) FROM recvault_recordings r WHERE {filter}"),
                args.clone(),
            ));
            sql.push_str(&format!(
                " ORDER BY {key} {dir}, r.host {dir}, r.id {dir} LIMIT ? OFFSET ?"
            ));
            args.extend([Arg::Int(limit.into()), Arg::Int(*offset as i64)]);
        }
        Paging::After { cursor, .. } => {
            if let Some(c) = cursor {
                let op = if search.sort.descending { "<" } else { ">" };
                // The row comparison alone is no range to MariaDB: each page
                // would walk the index from the start. The plain bound on
                // the sort column first starts the walk at the cursor.
                sql.push_str(&format!(
                    " AND {key} {op}= ? AND ({key}, r.host, r.id) {op} (?, ?, ?)"
                ));
                let value = match &c.value {
                    CursorValue::Int(v) => Arg::Int(*v),
                    CursorValue::Text(v) => Arg::Text(v.clone()),
                };
                args.extend([value.clone(), value]);
                args.extend([Arg::Text(c.host.clone()), Arg::Int(c.id)]);
            }
            sql.push_str(&format!(
                " ORDER BY {key} {dir}, r.host {dir}, r.id {dir} LIMIT ?"
            ));
            args.push(Arg::Int(limit.into()));
        }
    }
    (sql, args, count, text)
}

impl Fleet {
    /// One page of the catalog's recordings `search` matches, each with
    /// the cases whose active holds cover it.
    pub async fn search(&self, search: &Search) -> Result<Page, DbError> {
        let (sql, args, count, text) = page_sql(search);
        let limit = search.paging.limit();
        let after = matches!(search.paging, Paging::After { .. });
        let (rows, total, cases) = self
            .run("searching the fleet's catalog", move |c| {
                Box::pin(async move { read_page(c, sql, args, count, text).await })
            })
            .await?;
        let mut page = Page {
            total,
            ..Page::default()
        };
        if after
            && rows.len() == limit as usize
            && let Some((e, v)) = rows.last()
        {
            page.next = Some(Cursor {
                value: v.clone(),
                host: e.host.clone(),
                id: e.id,
            });
        }
        page.entries = rows
            .into_iter()
            .map(|(mut e, _)| {
                e.held_by = cases
                    .get(&(e.host.clone(), e.id))
                    .cloned()
                    .unwrap_or_default();
                e
            })
            .collect();
        Ok(page)
    }

    /// One recording of the catalog.
    pub async fn entry(&self, which: &RecordingRef) -> Result<Option<Entry>, DbError> {
        let (host, id) = (which.host.clone(), which.id);
        self.run("reading the fleet's catalog", move |c| {
            Box::pin(async move {
                let row: Option<(String,)> = sqlx::query_as(
                    "SELECT entry FROM recvault_recordings WHERE host = ? AND id = ?",
                )
                .bind(&host)
                .bind(id)
                .fetch_optional(&mut *c)
                .await?;
                let Some((json,)) = row else { return Ok(None) };
                let mut e: Entry = serde_json::from_str(&json).map_err(|e| {
                    sqlx::Error::Protocol(format!("a catalog entry is not readable: {e}"))
                })?;
                e.held_by = super::holds::cases_in(c, &host, &[id])
                    .await?
                    .remove(&id)
                    .unwrap_or_default();
                Ok(Some(e))
            })
        })
        .await
    }
}

/// A page's entries with their sort values, the total (offset paging) and
/// the cases holding each, on `c`.
#[allow(clippy::type_complexity)]
async fn read_page(
    c: &mut sqlx::MySqlConnection,
    sql: String,
    args: Vec<Arg>,
    count: Option<(String, Vec<Arg>)>,
    text: bool,
) -> Result<
    (
        Vec<(Entry, CursorValue)>,
        Option<u64>,
        BTreeMap<(String, i64), Vec<String>>,
    ),
    sqlx::Error,
> {
    let total = match count {
        None => None,
        Some((sql, args)) => {
            let (n,): (i64,) = sqlx::query_as_with(sqlx::AssertSqlSafe(sql), args_of(&args))
                .fetch_one(&mut *c)
                .await?;
            Some(n as u64)
        }
    };
    let rows = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), &args)
        .fetch_all(&mut *c)
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let json: String = row.try_get(0)?;
        let entry: Entry = serde_json::from_str(&json)
            .map_err(|e| sqlx::Error::Protocol(format!("a catalog entry is not readable: {e}")))?;
        let value = match text {
            true => CursorValue::Text(row.try_get(1)?),
            false => CursorValue::Int(row.try_get(1)?),
        };
        out.push((entry, value));
    }
    let mut by_host: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for (e, _) in &out {
        by_host.entry(e.host.clone()).or_default().push(e.id);
    }
    let mut cases = BTreeMap::new();
    for (host, ids) in by_host {
        for (id, c) in super::holds::cases_in(c, &host, &ids).await? {
            cases.insert((host.clone(), id), c);
        }
    }
    Ok((out, total, cases))
}

/// `args` as sqlx arguments (for `query_as_with`).
fn args_of(args: &[Arg]) -> sqlx::mysql::MySqlArguments {
    use sqlx::Arguments as _;
    let mut out = sqlx::mysql::MySqlArguments::default();
    for a in args {
        let _ = match a {
            Arg::Int(v) => out.add(*v),
            Arg::Text(v) => out.add(v.clone()),
            Arg::Null => out.add(None::<i64>),
        };
    }
    out
}

/// The copies a catalog entry says there are (its box's disk is not looked at).
pub(super) fn copies_of_entry(e: &Entry) -> Vec<Copy> {
    let mut out = Vec::new();
    if e.erasure.as_ref().is_some_and(|m| m.erased_at.is_some()) {
        return out;
    }
    if e.step.is_local() {
        out.push(Copy {
            host: e.host.clone(),
            place: Place::Spool {
                path: e.path.clone(),
            },
        });
    }
    if let Some(key) = &e.object_key
        && e.may_be_stored()
    {
        out.push(Copy {
            host: e.host.clone(),
            place: Place::Store { key: key.clone() },
        });
    }
    out
}

#[async_trait]
impl Catalog for FleetCatalog {
    fn scope(&self) -> Scope {
        Scope::Fleet {
            host: self.fleet.host.clone(),
        }
    }

    /// A phone, lead or name an erasure replaced on any box is matched
    /// through its pseudonym, as one box does: the boxes share the key.
    async fn search(&self, search: &Search) -> Result<Page, CatalogError> {
        let mut search = search.clone();
        search.selectors = self.local.widen(&search.selectors)?;
        self.fleet.search(&search).await.map_err(unavailable)
    }

    async fn recording(&self, which: &RecordingRef) -> Result<Detail, CatalogError> {
        let mut detail = if which.host == self.fleet.host {
            self.local.recording(which).await?
        } else {
            let entry = self
                .fleet
                .entry(which)
                .await
                .map_err(unavailable)?
                .ok_or_else(|| {
                    CatalogError::NotFound(format!("no recording {which} in the fleet's catalog"))
                })?;
            Detail {
                copies: copies_of_entry(&entry),
                entry,
                holds: Vec::new(),
                listens: Vec::new(),
            }
        };
        let cases = self
            .fleet
            .cases_holding(&which.host, &[which.id])
            .await
            .map_err(unavailable)?
            .remove(&which.id)
            .unwrap_or_default();
        let mut holds = Vec::new();
        for case in cases.iter().collect::<BTreeSet<_>>() {
            holds.extend(
                self.fleet
                    .holds(Some(case))
                    .await
                    .map_err(unavailable)?
                    .into_iter()
                    .filter(HoldInfo::active),
            );
        }
        detail.entry.held_by = cases;
        detail.holds = holds;
        Ok(detail)
    }

    async fn holds(&self, case: Option<&str>) -> Result<Vec<HoldInfo>, CatalogError> {
        let holds = self.fleet.holds(case).await.map_err(unavailable)?;
        if let (Some(case), true) = (case, holds.is_empty()) {
            return Err(CatalogError::Refused(Error::Hold {
                case: case.to_string(),
                problem: HoldProblem::NoSuchCase,
            }));
        }
        Ok(holds)
    }

    async fn hold_preview(&self, selectors: &[Selector]) -> Result<Coverage, CatalogError> {
        hold::check(selectors)?;
        self.fleet
            .hold_preview(selectors)
            .await
            .map_err(unavailable)
    }

    async fn place_hold(
        &self,
        actor: &Actor,
        new: &NewHold,
    ) -> Result<HoldPlacement, CatalogError> {
        if new.case_id.trim().is_empty() || new.reason.trim().is_empty() {
            return Err(CatalogError::Refused(Error::Hold {
                case: new.case_id.clone(),
                problem: HoldProblem::NoReason,
            }));
        }
        hold::check(&new.selectors)?;
        let (id, coverage) = self
            .fleet
            .place_hold(&self.by(actor), now_secs(), new)
            .await
            .map_err(unavailable)?;
        tracing::info!(case = %new.case_id, hold = id, recordings = coverage.recordings, "legal hold placed in the fleet");
        Ok(HoldPlacement {
            id,
            coverage,
            aftermath: self.aftermath().await,
        })
    }

    async fn release_hold(
        &self,
        actor: &Actor,
        case: &str,
        reason: &str,
    ) -> Result<HoldRelease, CatalogError> {
        if reason.trim().is_empty() {
            return Err(CatalogError::Refused(Error::Hold {
                case: case.to_string(),
                problem: HoldProblem::NoReason,
            }));
        }
        let released = self
            .fleet
            .release_hold(&self.by(actor), now_secs(), case, reason)
            .await
            .map_err(unavailable)?;
        if released == 0 {
            return Err(CatalogError::Refused(Error::Hold {
                case: case.to_string(),
                problem: HoldProblem::NotActive,
            }));
        }
        Ok(HoldRelease {
            released: released as usize,
            aftermath: self.aftermath().await,
        })
    }

    async fn erasure_preview(
        &self,
        request: &str,
        selectors: &[Selector],
    ) -> Result<ErasurePlan, CatalogError> {
        crate::governance::requests::erase::check_reference(request)?;
        let key = self.fleet.pseudonym_key()?;
        self.fleet
            .erasure_plan(request, selectors, &key)
            .await
            .map_err(unavailable)
    }

    async fn erasure_confirm(
        &self,
        actor: &Actor,
        request: &str,
        selectors: &[Selector],
        token: Option<&str>,
    ) -> Result<ErasureConfirmation, CatalogError> {
        crate::governance::requests::erase::check_reference(request)?;
        let key = self.fleet.pseudonym_key()?;
        self.fleet
            .confirm_erasure(&self.by(actor), request, selectors, &key, token, now_secs())
            .await
            .map_err(unavailable)
    }

    async fn erasure_progress(&self, request: &str) -> Result<ErasureProgress, CatalogError> {
        match self
            .fleet
            .erasure_progress(request, now_secs())
            .await
            .map_err(unavailable)?
        {
            Some(p) => Ok(p),
            None => self.local.erasure_progress(request).await,
        }
    }

    async fn retention(&self) -> Result<RetentionView, CatalogError> {
        let policy = self.fleet.policy().await.map_err(unavailable)?;
        Ok(match policy {
            Some(p) => RetentionView {
                rules: p.rules,
                source: format!("the fleet's database {}", self.fleet.target()),
                editable: true,
                version: Some(p.version),
                set_by: Some(p.set_by),
                set_at: Some(p.set_at),
            },
            None => RetentionView {
                rules: Rules {
                    default: crate::config::Keep::Forever,
                    campaigns: BTreeMap::new(),
                    delete_unarchived: false,
                },
                source: format!(
                    "the fleet's database {} (no policy set yet: everything is kept)",
                    self.fleet.target()
                ),
                editable: true,
                version: None,
                set_by: None,
                set_at: None,
            },
        })
    }

    async fn retention_preview(
        &self,
        change: &RetentionChange,
    ) -> Result<RetentionImpact, CatalogError> {
        let view = self.retention().await?;
        self.fleet
            .retention_impact(&view.rules, &view.rules.changed(change), now_secs())
            .await
            .map_err(unavailable)
    }

    async fn retention_apply(
        &self,
        actor: &Actor,
        change: &RetentionChange,
    ) -> Result<RetentionView, CatalogError> {
        let view = self.retention().await?;
        let rules = view.rules.changed(change);
        let set = self
            .fleet
            .set_policy(&rules, view.version, &self.by(actor), now_secs())
            .await
            .map_err(unavailable)?;
        if !set {
            return Err(CatalogError::Unavailable(
                "the fleet's retention policy changed while this change was being made; \
                 preview it again"
                    .to_string(),
            ));
        }
        self.retention().await
    }

    async fn overview(&self) -> Result<Vec<BoxOverview>, CatalogError> {
        let now = now_secs();
        let alive_since = self.fleet.alive_since(now);
        let boxes = self.fleet.boxes().await.map_err(unavailable)?;
        Ok(boxes
            .into_iter()
            .map(|b| {
                let mut o = b.overview.clone().unwrap_or_else(|| BoxOverview {
                    host: b.host.clone(),
                    version: b.version.clone(),
                    waiting: b.backlog.max(0) as u64,
                    at: b.heartbeat_at,
                    ..BoxOverview::default()
                });
                o.host = b.host.clone();
                o.version = b.version.clone();
                o.heartbeat = Some(b.heartbeat_at);
                o.reachable = b.heartbeat_at >= alive_since && b.forgotten_at.is_none();
                o.forgotten = b.forgotten_at;
                o.database = Some(match &b.last_error {
                    Some(e) if !o.reachable => Err(e.clone()),
                    _ => Ok(()),
                });
                o
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_page_starts_its_index_walk_at_the_cursor() {
        let search = Search {
            paging: Paging::After {
                cursor: Some(Cursor {
                    value: CursorValue::Int(7),
                    host: "B".into(),
                    id: 3,
                }),
                limit: 10,
            },
            ..Search::default()
        };
        let (sql, args, _, _) = page_sql(&search);
        assert!(
            sql.contains("r.time >= ? AND (r.time, r.host, r.id) > (?, ?, ?)"),
            "{sql}"
        );
        assert_eq!(args[..2], [Arg::Int(7), Arg::Int(7)]);
    }
}
