//! Which recordings a data-subject request's selectors match (`find`,
//! `export`, `erase`): the rule of a legal hold — for every kind of selector
//! given, one selector of that kind matches — over every recording the
//! ledger has ever known, whatever became of it.

use std::collections::BTreeMap;

use rusqlite::types::Value;
use rusqlite::{Connection, params_from_iter};

use super::holds::{Selector, cases_holding_in};
use super::rows::{R_COLUMNS, from_row};
use super::{Ledger, LedgerError};
use crate::recording::Recording;

/// A recording the selectors match, with the cases whose active holds cover it.
#[derive(Debug, Clone)]
pub struct Matched {
    pub rec: Recording,
    /// Cases holding it (empty: no active hold covers it).
    pub cases: Vec<String>,
}

impl Matched {
    /// True if an active legal hold covers it.
    pub fn held(&self) -> bool {
        !self.cases.is_empty()
    }
}

/// SQL over the recording aliased `r`, true when `s` matches it, and its arguments.
fn one(s: &Selector) -> (&'static str, Vec<Value>) {
    let text = |v: &str| Value::Text(v.to_string());
    match s {
        // Each alternative through an index (an id only in its canonical
        // form): a request naming recordings by id never reads every row.
        Selector::Recording(v) => match v.parse::<i64>().ok().filter(|id| id.to_string() == *v) {
            Some(id) => (
                "(r.id = ? OR r.name = CAST(? AS BLOB) OR r.object_key = ?)",
                vec![
                    Value::Integer(id),
                    Value::Blob(v.as_bytes().to_vec()),
                    text(v),
                ],
            ),
            None => (
                "(r.name = CAST(? AS BLOB) OR r.object_key = ?)",
                vec![Value::Blob(v.as_bytes().to_vec()), text(v)],
            ),
        },
        Selector::Campaign(v) => ("r.campaign = ?", vec![text(v)]),
        Selector::Phone(v) => ("r.phone = ?", vec![text(v)]),
        Selector::Agent(v) => ("r.agent = ?", vec![text(v)]),
        Selector::Lead(v) => ("r.lead_id = ?", vec![text(v)]),
        Selector::Id(id) => ("r.id = ?", vec![Value::Integer(*id)]),
        // Only the bounds given, so the retain_from indexes serve the range.
        Selector::Time { from, to } => match (from, to) {
            (Some(f), Some(t)) => (
                "(r.retain_from >= ? AND r.retain_from < ?)",
                vec![Value::Integer(*f), Value::Integer(*t)],
            ),
            (Some(f), None) => ("r.retain_from >= ?", vec![Value::Integer(*f)]),
            (None, Some(t)) => ("r.retain_from < ?", vec![Value::Integer(*t)]),
            (None, None) => ("1", vec![]),
        },
    }
}

/// SQL over `r` true when the recording matches `selectors` (alternatives
/// within a kind, every kind), and its arguments. `None` for no selector:
/// no selection ever means "everything".
pub(super) fn selection(selectors: &[Selector]) -> Option<(String, Vec<Value>)> {
    combine(selectors, one)
}

/// The request's rule in any SQL dialect: for every kind of selector given,
/// one selector of that kind matches (`OR` within a kind, `AND` across),
/// each selector's SQL and arguments from `one`. The ledger (SQLite) and
/// the fleet's catalog (MariaDB) differ only in `one`. `None` for no
/// selector.
pub fn combine<V, S: AsRef<str>>(
    selectors: &[Selector],
    mut one: impl FnMut(&Selector) -> (S, Vec<V>),
) -> Option<(String, Vec<V>)> {
    let mut by_kind: BTreeMap<&str, Vec<&Selector>> = BTreeMap::new();
    for s in selectors {
        by_kind.entry(s.kind()).or_default().push(s);
    }
    if by_kind.is_empty() {
        return None;
    }
    let mut args = Vec::new();
    let mut groups = Vec::new();
    for alternatives in by_kind.values() {
        let mut sql = Vec::new();
        for s in alternatives {
            let (text, values) = one(s);
            sql.push(text.as_ref().to_string());
            args.extend(values);
        }
        groups.push(format!("({})", sql.join(" OR ")));
    }
    Some((groups.join(" AND "), args))
}

/// The ids of the recordings `selectors` match on `conn` (inside a caller's
/// transaction where the answer must hold until it commits), in id order.
pub(super) fn matching_ids(
    conn: &Connection,
    selectors: &[Selector],
) -> Result<Vec<i64>, LedgerError> {
    let Some((filter, args)) = selection(selectors) else {
        return Ok(Vec::new());
    };
    let mut stmt = conn.prepare(&format!(
        "SELECT r.id FROM recordings r WHERE {filter} ORDER BY r.id"
    ))?;
    let ids = stmt.query_map(params_from_iter(args), |r| r.get(0))?;
    Ok(ids.collect::<Result<_, _>>()?)
}

impl Ledger {
    /// Ids of the recordings of one VICIdial `recording_log.filename`: named
    /// `stem` itself or `stem` followed by a leg suffix or extensions
    /// (`stem-all.wav`, `stem.gsm`, `stem-in.wav`). Through the name index.
    pub fn ids_of_stem(&self, stem: &[u8]) -> Result<Vec<i64>, LedgerError> {
        if stem.is_empty() {
            return Ok(Vec::new());
        }
        let mut end = stem.to_vec();
        end.push(0xff);
        let conn = self.reader()?;
        let mut stmt = conn.prepare_cached(
            "SELECT id, name FROM recordings WHERE name >= ?1 AND name < ?2 ORDER BY id",
        )?;
        let rows = stmt.query_map(rusqlite::params![stem, end], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
        })?;
        let mut ids = Vec::new();
        for row in rows {
            let (id, name) = row?;
            if matches!(name.get(stem.len()), None | Some(b'-' | b'.')) {
                ids.push(id);
            }
        }
        Ok(ids)
    }

    /// Ids of the recordings attributed to VICIdial's `recording_log` row
    /// `recording_id` (erased ones too: the id is not personal data).
    pub fn ids_of_vicidial_recording(&self, recording_id: u32) -> Result<Vec<i64>, LedgerError> {
        let conn = self.reader()?;
        let mut stmt = conn.prepare_cached(
            "SELECT id FROM recordings WHERE vicidial_recording_id = ?1 ORDER BY id",
        )?;
        let ids = stmt.query_map([recording_id], |r| r.get(0))?;
        Ok(ids.collect::<Result<_, _>>()?)
    }

    /// Visits every recording `selectors` match (none for no selector),
    /// oldest call first, with the cases holding it. An error from `visit`
    /// stops the walk and is returned.
    pub fn matching<E: From<LedgerError>>(
        &self,
        selectors: &[Selector],
        mut visit: impl FnMut(&Matched) -> Result<(), E>,
    ) -> Result<(), E> {
        let Some((filter, args)) = selection(selectors) else {
            return Ok(());
        };
        let conn = self.reader()?;
        let sql = format!(
            "SELECT {} FROM recordings r WHERE {filter} ORDER BY r.retain_from, r.id",
            *R_COLUMNS
        );
        let mut stmt = conn.prepare(&sql).map_err(LedgerError::from)?;
        let mut rows = stmt
            .query(params_from_iter(args))
            .map_err(LedgerError::from)?;
        while let Some(row) = rows.next().map_err(LedgerError::from)? {
            let rec = from_row(row).map_err(LedgerError::from)?;
            let cases = cases_holding_in(&conn, rec.id).map_err(LedgerError::from)?;
            visit(&Matched { rec, cases })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::audit::Actor;

    use crate::ledger::fixtures::{self, insert_call as insert};

    fn ids(ledger: &Ledger, selectors: &[Selector]) -> Vec<i64> {
        let mut out = Vec::new();
        ledger
            .matching::<LedgerError>(selectors, |m| {
                out.push(m.rec.id);
                Ok(())
            })
            .unwrap();
        out
    }

    #[test]
    fn kinds_narrow_and_alternatives_widen() {
        let (_dir, ledger) = fixtures::ledger();
        let a = insert(&ledger, "a.wav", "SALES", "555", 300);
        let b = insert(&ledger, "b.wav", "SALES", "777", 200);
        let c = insert(&ledger, "c.wav", "COLLECT", "555", 100);
        let phone = |p: &str| Selector::Phone(p.to_string());
        assert_eq!(ids(&ledger, &[phone("555")]), [c, a], "oldest call first");
        assert_eq!(ids(&ledger, &[phone("555"), phone("777")]), [c, b, a]);
        assert_eq!(
            ids(&ledger, &[phone("555"), Selector::Campaign("SALES".into())]),
            [a]
        );
        let range = Selector::Time {
            from: Some(150),
            to: Some(300),
        };
        assert_eq!(ids(&ledger, &[range]), [b]);
        assert_eq!(ids(&ledger, &[Selector::Lead("L777".into())]), [b]);
        assert_eq!(ids(&ledger, &[Selector::Recording("c.wav".into())]), [c]);
        assert_eq!(ids(&ledger, &[Selector::Recording(a.to_string())]), [a]);
        assert_eq!(ids(&ledger, &[]), Vec::<i64>::new(), "nothing, never all");
        assert_eq!(ids(&ledger, &[phone("999")]), Vec::<i64>::new());
        let d = insert(&ledger, "c-in.wav", "SALES", "1", 1);
        insert(&ledger, "cc.wav", "SALES", "1", 1);
        assert_eq!(ledger.ids_of_stem(b"c").unwrap(), [c, d], "not `cc.wav`");
        let conn = ledger.reader().unwrap();
        assert_eq!(matching_ids(&conn, &[phone("555")]).unwrap(), [a, c]);
        assert_eq!(
            ids(&ledger, &[Selector::Recording(format!("0{a}"))]),
            Vec::<i64>::new(),
            "an id only as written"
        );
        // A name that reads like an id: matched by Recording, never by Id.
        let named = insert(&ledger, &a.to_string(), "SALES", "1", 1);
        let by_text = ids(&ledger, &[Selector::Recording(a.to_string())]);
        assert_eq!(by_text, [named, a]);
        assert_eq!(ids(&ledger, &[Selector::Id(a)]), [a]);
    }

    #[test]
    fn recordings_named_by_id_name_or_key_are_found_through_indexes() {
        let (_dir, ledger) = fixtures::ledger();
        let conn = ledger.reader().unwrap();
        for v in ["17", "c.wav"] {
            let (filter, args) = selection(&[
                Selector::Recording(v.into()),
                Selector::Recording("x/y.flac".into()),
            ])
            .unwrap();
            let sql = format!("EXPLAIN QUERY PLAN SELECT r.id FROM recordings r WHERE {filter}");
            let mut stmt = conn.prepare(&sql).unwrap();
            let plan: Vec<String> = stmt
                .query_map(params_from_iter(args), |r| r.get::<_, String>(3))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            assert!(
                plan.iter().all(|step| !step.starts_with("SCAN")),
                "{v}: {plan:?}"
            );
        }
    }

    #[test]
    fn matches_carry_the_cases_holding_them() {
        let (_dir, ledger) = fixtures::ledger();
        let a = insert(&ledger, "a.wav", "SALES", "555", 300);
        let actor = Actor {
            uid: 0,
            user: "root".into(),
        };
        ledger
            .insert_hold(&actor, 1, "CASE-7", "why", &[Selector::Phone("555".into())])
            .unwrap();
        let mut seen = Vec::new();
        ledger
            .matching::<LedgerError>(&[Selector::Campaign("SALES".into())], |m| {
                seen.push((m.rec.id, m.cases.clone(), m.held()));
                Ok(())
            })
            .unwrap();
        assert_eq!(seen, [(a, vec!["CASE-7".to_string()], true)]);
    }
}
