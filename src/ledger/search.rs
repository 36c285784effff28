//! Browsing the recordings: a request's selectors (the rule of `matching`)
//! narrowed by state, by held or not, by a case's holds, sorted on one
//! column and paged — by offset with a total (a page of a result list) or
//! after a cursor (walking every result, for a download). The query types
//! are plain values: `catalog` hands them on unchanged, and the fleet's
//! catalog answers the same query from the shared database.

use rusqlite::params_from_iter;
use rusqlite::types::Value;
use serde::{Deserialize, Serialize};

use super::holds::{Selector, cases_holding_in, covered_sql};
use super::matching::{Matched, selection};
use super::rows::{R_COLUMNS, from_row};
use super::{Ledger, LedgerError};
use crate::recording::State;

/// The most rows one page may hold.
pub const MAX_PAGE: u32 = 5000;

/// What a browse asks for. No selector means every recording (narrowed by
/// the other filters): browsing is not a request, which needs a selector.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Search {
    /// The request's rule: one selector of every kind given matches.
    pub selectors: Vec<Selector>,
    pub state: Option<StateFilter>,
    /// Only recordings an active hold covers (`true`) or none does (`false`).
    pub held: Option<bool>,
    /// Only recordings the holds of this case cover (released ones too).
    pub case: Option<String>,
    /// Only recordings of this box (fleet catalogs; one box answers for itself).
    pub host: Option<String>,
    pub sort: Sort,
    pub paging: Paging,
}

/// Where a recording stands, as a search filters it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StateFilter {
    /// In this ledger state, and no erasure asked for.
    State(State),
    /// In this ledger state, erased or not (what `recvault ls --state` lists).
    Ledger(State),
    /// An erasure was confirmed and is not finished.
    Erasing,
    /// Erased.
    Erased,
}

/// The column results are sorted on; ties go by box, then id.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SortKey {
    /// The call time (the file's time where the call's is unknown).
    #[default]
    Time,
    Host,
    Campaign,
    Agent,
    /// The original's size.
    Size,
    State,
}

/// A sort column and direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sort {
    pub key: SortKey,
    pub descending: bool,
}

/// Which part of the results a search returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Paging {
    /// `limit` rows from row `offset`, with the total count.
    Offset { offset: u64, limit: u32 },
    /// `limit` rows after `cursor` (from the start without one), no total:
    /// walking every result costs one indexed step per page.
    After { cursor: Option<Cursor>, limit: u32 },
}

impl Default for Paging {
    fn default() -> Paging {
        Paging::Offset {
            offset: 0,
            limit: 50,
        }
    }
}

impl Paging {
    /// Rows per page, never more than [`MAX_PAGE`].
    pub fn limit(&self) -> u32 {
        match self {
            Paging::Offset { limit, .. } | Paging::After { limit, .. } => (*limit).min(MAX_PAGE),
        }
    }
}

/// Where the last row of a page was: its sort value, box and id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub value: CursorValue,
    pub host: String,
    pub id: i64,
}

/// A sort column's value in a cursor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CursorValue {
    Int(i64),
    Text(String),
}

impl CursorValue {
    fn sql(&self) -> Value {
        match self {
            CursorValue::Int(v) => Value::Integer(*v),
            CursorValue::Text(v) => Value::Text(v.clone()),
        }
    }
}

/// One page of matches.
#[derive(Debug, Clone, Default)]
pub struct SearchPage {
    pub rows: Vec<Matched>,
    /// How many match in all (offset paging only).
    pub total: Option<u64>,
    /// Where the next page starts, if there may be one (cursor paging only).
    pub next: Option<Cursor>,
}

/// The SQL of a sort key over the recording aliased `r`, and whether its
/// value is text. A cursor must name every value, so walking by cursor
/// sorts NULLs as the empty string; a page by offset sorts the column as
/// it is (NULLs first ascending), which its index serves: sorting a
/// campaign's 250,000 recordings by an expression costs a third of a second.
fn sort_sql(key: SortKey, cursor: bool) -> (&'static str, bool) {
    match (key, cursor) {
        (SortKey::Time, _) => ("r.retain_from", false),
        // One box: every row is this host's, so its order is the id's.
        (SortKey::Host, _) => ("r.id", false),
        (SortKey::Campaign, true) => ("COALESCE(r.campaign, '')", true),
        (SortKey::Campaign, false) => ("r.campaign", true),
        (SortKey::Agent, true) => ("COALESCE(r.agent, '')", true),
        (SortKey::Agent, false) => ("r.agent", true),
        (SortKey::Size, _) => ("r.size", false),
        (SortKey::State, _) => ("r.state", true),
    }
}

/// Selector kinds from the fewest recordings per value to the most: a
/// hold's narrowest kind finds what it covers through its index, and its
/// broader kinds only check those rows. SQLite without `ANALYZE`
/// statistics cannot tell a campaign's quarter of the ledger from a phone
/// number's few calls, and walked the campaign.
const NARROW_FIRST: [&str; 7] = [
    "id",
    "recording",
    "phone",
    "lead",
    "agent",
    "time",
    "campaign",
];

/// `sql` over `r` with no index used for it (SQLite's unary `+`).
fn unindexed(sql: &str) -> String {
    sql.replace("r.", "+r.")
}

/// The rule of one hold's `selectors` (see `matching::selection`), driven
/// by its narrowest kind's index.
fn hold_sql(selectors: &[Selector]) -> Option<(String, Vec<Value>)> {
    let narrowest = NARROW_FIRST
        .iter()
        .find(|k| selectors.iter().any(|s| s.kind() == **k))?;
    let (drive, rest): (Vec<Selector>, Vec<Selector>) = selectors
        .iter()
        .cloned()
        .partition(|s| s.kind() == *narrowest);
    let (mut sql, mut args) = selection(&drive)?;
    if let Some((more, values)) = selection(&rest) {
        sql = format!("{sql} AND {}", unindexed(&more));
        args.extend(values);
    }
    Some((sql, args))
}

/// SQL true when an active hold covers the recording, from the active
/// holds' selectors (`active`): the holds' rule as plain selections, which
/// the indexes serve, instead of a correlated subquery per recording.
fn held_sql(active: &[Vec<Selector>]) -> (String, Vec<Value>) {
    let mut parts = Vec::new();
    let mut args = Vec::new();
    for selectors in active {
        match hold_sql(selectors) {
            Some((sql, values)) => {
                parts.push(format!("({sql})"));
                args.extend(values);
            }
            // A hold without a selector would cover everything.
            None => return ("1".into(), Vec::new()),
        }
    }
    match parts.is_empty() {
        true => ("0".into(), args),
        false => (format!("({})", parts.join(" OR ")), args),
    }
}

/// The WHERE clause of `search` (without a cursor) and its arguments;
/// `active`: the selectors of every active hold (for `held`).
fn filters(search: &Search, active: &[Vec<Selector>]) -> (String, Vec<Value>) {
    let mut parts = vec!["1".to_string()];
    let mut args = Vec::new();
    if let Some((sql, values)) = selection(&search.selectors) {
        parts.push(sql);
        args.extend(values);
    }
    match search.state {
        None => {}
        Some(StateFilter::State(s)) => {
            parts.push("r.state = ? AND r.erase_request IS NULL".into());
            args.push(Value::Text(s.as_str().into()));
        }
        Some(StateFilter::Ledger(s)) => {
            parts.push("r.state = ?".into());
            args.push(Value::Text(s.as_str().into()));
        }
        Some(StateFilter::Erasing) => {
            parts.push("r.erase_request IS NOT NULL AND r.erased_at IS NULL".into())
        }
        Some(StateFilter::Erased) => parts.push("r.erased_at IS NOT NULL".into()),
    }
    if let Some(held) = search.held {
        let (sql, values) = held_sql(active);
        // A NULL column makes a hold's rule NULL: not held, so counted in
        // "not held" (and `count` may subtract the held from the whole).
        parts.push(if held {
            sql
        } else {
            format!("NOT COALESCE({sql}, 0)")
        });
        args.extend(values);
    }
    if let Some(case) = &search.case {
        parts.push(covered_sql("h.case_id = ?"));
        args.push(Value::Text(case.clone()));
    }
    (parts.join(" AND "), args)
}

impl Ledger {
    /// One page of the recordings `search` matches, each with the cases
    /// holding it. `search.host` is the caller's to check.
    pub fn search(&self, search: &Search) -> Result<SearchPage, LedgerError> {
        let active: Vec<Vec<Selector>> = match search.held {
            Some(_) => self.active_hold_selectors()?,
            None => Vec::new(),
        };
        let (filter, mut args) = filters(search, &active);
        let cursor = matches!(search.paging, Paging::After { .. });
        let (key, text) = sort_sql(search.sort.key, cursor);
        let dir = if search.sort.descending {
            "DESC"
        } else {
            "ASC"
        };
        let limit = search.paging.limit();
        let conn = self.reader()?;
        let mut page = SearchPage::default();
        // The page's ids first, sorted on the key alone, then their rows: a
        // sort of a million wide rows would spill to disk.
        let order = format!("ORDER BY {key} {dir}, r.id {dir}");
        // What active holds cover is a few recordings found by their
        // selectors' indexes: never walk the sort column's index to them.
        let plus = if search.held == Some(true) { "+" } else { "" };
        let mut ids = format!("SELECT r.id FROM recordings r WHERE {filter}");
        let ids_order = format!("ORDER BY {plus}{key} {dir}, r.id {dir}");
        match &search.paging {
            Paging::Offset { offset, .. } => {
                page.total = Some(count(&conn, search, &active)?);
                ids.push_str(&format!(" {ids_order} LIMIT ? OFFSET ?"));
                args.extend([Value::Integer(limit.into()), Value::Integer(*offset as i64)]);
            }
            Paging::After { cursor, .. } => {
                if let Some(c) = cursor {
                    let op = if search.sort.descending { "<" } else { ">" };
                    ids.push_str(&format!(" AND ({key}, r.id) {op} (?, ?)"));
                    args.extend([c.value.sql(), Value::Integer(c.id)]);
                }
                ids.push_str(&format!(" {ids_order} LIMIT ?"));
                args.push(Value::Integer(limit.into()));
            }
        }
        let sql = format!(
            "SELECT {}, {key} FROM recordings r WHERE r.id IN ({ids}) {order}",
            *R_COLUMNS
        );
        let last = read_rows(&conn, &sql, args, text, &mut page.rows)?;
        if let (Paging::After { .. }, Some(value), Some(m)) =
            (&search.paging, last, page.rows.last())
            && page.rows.len() == limit as usize
        {
            page.next = Some(Cursor {
                value,
                host: String::new(),
                id: m.rec.id,
            });
        }
        Ok(page)
    }
}

/// How many recordings `search` matches in all (`active`: the active
/// holds' selectors). "Not held" is the whole less the held: counting it
/// directly reads every row of the ledger.
fn count(
    conn: &rusqlite::Connection,
    search: &Search,
    active: &[Vec<Selector>],
) -> Result<u64, LedgerError> {
    let one = |s: &Search| -> Result<i64, LedgerError> {
        let (filter, args) = filters(s, active);
        let sql = format!("SELECT COUNT(*) FROM recordings r WHERE {filter}");
        Ok(conn.query_row(&sql, params_from_iter(args), |r| r.get(0))?)
    };
    let n = match search.held {
        Some(false) => {
            let all = one(&Search {
                held: None,
                ..search.clone()
            })?;
            all - one(&Search {
                held: Some(true),
                ..search.clone()
            })?
        }
        _ => one(search)?,
    };
    Ok(n.max(0) as u64)
}

/// Runs a search's `sql`, appending each match (with the cases holding it)
/// to `out`. Returns the sort value of the last row (`text`: a text column).
fn read_rows(
    conn: &rusqlite::Connection,
    sql: &str,
    args: Vec<Value>,
    text: bool,
    out: &mut Vec<Matched>,
) -> Result<Option<CursorValue>, LedgerError> {
    let mut stmt = conn.prepare(sql)?;
    let mut rows = stmt.query(params_from_iter(args))?;
    let width = super::rows::COLUMN_COUNT;
    let mut last = None;
    while let Some(row) = rows.next()? {
        let rec = from_row(row)?;
        // NULL only in a page by offset (a cursor's sort names every value).
        last = Some(match text {
            true => CursorValue::Text(row.get::<_, Option<String>>(width)?.unwrap_or_default()),
            false => CursorValue::Int(row.get::<_, Option<i64>>(width)?.unwrap_or_default()),
        });
        let cases = cases_holding_in(conn, rec.id)?;
        out.push(Matched { rec, cases });
    }
    Ok(last)
}

impl Ledger {
    /// How many recordings `selectors` match (none for no selector), and
    /// how many of those a deletion has already been reserved for: what a
    /// new hold of these selectors would cover.
    pub fn coverage(&self, selectors: &[Selector]) -> Result<(u64, u64), LedgerError> {
        let Some((filter, args)) = selection(selectors) else {
            return Ok((0, 0));
        };
        let sql = format!("SELECT COUNT(*), COUNT(r.deleting_at) FROM recordings r WHERE {filter}");
        let (n, deleting): (i64, i64) =
            self.reader()?
                .query_row(&sql, params_from_iter(args), |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok((n as u64, deleting as u64))
    }
}

impl Ledger {
    /// What hold `hold_id` covers now (released: would cover), and how many
    /// of those a deletion had reserved.
    pub fn hold_coverage(&self, hold_id: i64) -> Result<(u64, u64), LedgerError> {
        let sql = format!(
            "SELECT COUNT(*), COUNT(r.deleting_at) FROM recordings r WHERE {}",
            covered_sql("h.id = ?1")
        );
        let (n, deleting): (i64, i64) = self
            .reader()?
            .query_row(&sql, [hold_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok((n as u64, deleting as u64))
    }

    /// Failed recordings waiting for the store to answer again, and those
    /// it refused or failed to verify.
    pub fn store_failures(&self) -> Result<(u64, u64), LedgerError> {
        let (outage, refused): (i64, i64) = self.reader()?.query_row(
            "SELECT COALESCE(SUM(failure_kind = 'store_outage'), 0), \
               COALESCE(SUM(failure_kind IN ('refused', 'verification')), 0) \
             FROM recordings WHERE state = 'failed'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok((outage as u64, refused as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::audit::Actor;
    use crate::ledger::fixtures::{self, insert_call as insert};

    fn ids(page: &SearchPage) -> Vec<i64> {
        page.rows.iter().map(|m| m.rec.id).collect()
    }

    #[test]
    fn pages_sort_filter_and_walk_by_cursor() {
        let (_dir, ledger) = fixtures::ledger();
        let a = insert(&ledger, "a.wav", "SALES", "555", 300);
        let b = insert(&ledger, "b.wav", "COLLECT", "555", 100);
        let c = insert(&ledger, "c.wav", "SALES", "777", 200);
        let actor = Actor {
            uid: 0,
            user: "root".into(),
        };
        ledger
            .insert_hold(&actor, 1, "CASE", "why", &[Selector::Phone("777".into())])
            .unwrap();
        let mut s = Search::default();
        let page = ledger.search(&s).unwrap();
        assert_eq!((ids(&page), page.total), (vec![b, c, a], Some(3)));
        assert_eq!(page.rows[1].cases, ["CASE"]);
        s.sort = Sort {
            key: SortKey::Campaign,
            descending: true,
        };
        assert_eq!(ids(&ledger.search(&s).unwrap()), [c, a, b]);
        s.held = Some(false);
        assert_eq!(ids(&ledger.search(&s).unwrap()), [a, b]);
        s.held = Some(true);
        assert_eq!(ids(&ledger.search(&s).unwrap()), [c]);
        s.held = None;
        s.case = Some("CASE".into());
        assert_eq!(ids(&ledger.search(&s).unwrap()), [c]);
        s.case = None;
        s.selectors = vec![Selector::Phone("555".into())];
        s.paging = Paging::Offset {
            offset: 1,
            limit: 1,
        };
        let page = ledger.search(&s).unwrap();
        assert_eq!((ids(&page), page.total), (vec![b], Some(2)));
        s.state = Some(StateFilter::State(State::Seen));
        assert_eq!(ledger.search(&s).unwrap().total, Some(0));
        // Every result, one row per page, by cursor.
        let mut s = Search {
            paging: Paging::After {
                cursor: None,
                limit: 1,
            },
            ..Search::default()
        };
        let mut seen = Vec::new();
        loop {
            let page = ledger.search(&s).unwrap();
            seen.extend(ids(&page));
            match page.next {
                Some(c) => {
                    s.paging = Paging::After {
                        cursor: Some(c),
                        limit: 1,
                    }
                }
                None if page.rows.is_empty() => break,
                None => unreachable!("a full page names its cursor"),
            }
        }
        assert_eq!(seen, [b, c, a]);
        assert_eq!(
            ledger
                .coverage(&[Selector::Campaign("SALES".into())])
                .unwrap(),
            (2, 0)
        );
    }

    #[test]
    fn unknown_columns_sort_first_and_count_as_not_held() {
        let (_dir, ledger) = fixtures::ledger();
        let a = insert(&ledger, "a.wav", "SALES", "555", 300);
        let d = fixtures::insert_plain(&ledger, "/spool/d.wav", State::Settled);
        let actor = Actor {
            uid: 0,
            user: "root".into(),
        };
        let rule = [
            Selector::Campaign("SALES".into()),
            Selector::Phone("555".into()),
        ];
        ledger.insert_hold(&actor, 1, "CASE", "why", &rule).unwrap();
        let mut s = Search {
            sort: Sort {
                key: SortKey::Campaign,
                descending: false,
            },
            ..Search::default()
        };
        assert_eq!(ids(&ledger.search(&s).unwrap()), [d, a]);
        // No campaign, no phone: the hold's rule is NULL for it, not true.
        s.held = Some(false);
        let page = ledger.search(&s).unwrap();
        assert_eq!((ids(&page), page.total), (vec![d], Some(1)));
        s.held = Some(true);
        let page = ledger.search(&s).unwrap();
        assert_eq!((ids(&page), page.total), (vec![a], Some(1)));
    }
}
