//! The SQL over the fleet's catalog (`recvault_recordings r`): a request's
//! selectors (the rule of `ledger::matching`: one selector of every kind
//! given), and what a hold covers (the rule of `ledger::holds`). The one
//! place these rules are written for MariaDB: the deletion gate, holds'
//! coverage and searches all use it; how selectors combine is the ledger's
//! own code, only each selector's SQL is MariaDB's.

use crate::ledger::holds::Selector;

/// A bound value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    Int(i64),
    Text(String),
    /// SQL NULL (an integer column's).
    Null,
}

/// Binds `args` in order.
pub fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, sqlx::MySql, sqlx::mysql::MySqlArguments>,
    args: &[Arg],
) -> sqlx::query::Query<'q, sqlx::MySql, sqlx::mysql::MySqlArguments> {
    for a in args {
        q = match a {
            Arg::Int(v) => q.bind(*v),
            Arg::Text(v) => q.bind(v.clone()),
            Arg::Null => q.bind(None::<i64>),
        };
    }
    q
}

/// `r.id` as text, in the tables' collation.
const ID_TEXT: &str = "(CAST(r.id AS CHAR CHARACTER SET utf8mb4) COLLATE utf8mb4_bin)";

/// SQL over `r` and a hold aliased `h`: true when `h` covers `r` (for every
/// selector kind of the hold, one of its selectors of that kind matches).
/// A recording selector matches an id on any box (or `host/id`), a name or
/// an object key: wider, never narrower, than one box's rule.
pub fn covers() -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM recvault_hold_selectors k WHERE k.hold_id = h.id AND NOT EXISTS ( \
           SELECT 1 FROM recvault_hold_selectors s WHERE s.hold_id = h.id AND s.kind = k.kind AND ( \
             (s.kind = 'recording' AND (s.value = {ID_TEXT} \
                OR s.value = CONCAT(r.host, '/', {ID_TEXT}) OR s.value = r.name OR s.value = r.object_key)) \
             OR (s.kind = 'campaign' AND s.value = r.campaign) \
             OR (s.kind = 'phone' AND s.value = r.phone) \
             OR (s.kind = 'agent' AND s.value = r.agent) \
             OR (s.kind = 'time' AND r.time >= COALESCE(s.time_from, r.time) \
                AND r.time < COALESCE(s.time_to, r.time + 1)))))"
    )
}

/// SQL over `r`: true when a hold satisfying `filter` (over `h`) covers it.
pub fn covered(filter: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM recvault_holds h WHERE {filter} AND {})",
        covers()
    )
}

/// SQL over `r`: true when an active hold covers it.
pub fn held() -> String {
    covered("h.released_at IS NULL")
}

fn one(s: &Selector) -> (String, Vec<Arg>) {
    let text = |v: &str| Arg::Text(v.to_string());
    match s {
        Selector::Recording(v) => {
            let mut sql = "(r.name = ? OR r.object_key = ?".to_string();
            let mut args = vec![text(v), text(v)];
            if let Some((host, id)) = v.rsplit_once('/')
                && let Ok(id) = id.parse::<i64>()
            {
                sql.push_str(" OR (r.host = ? AND r.id = ?)");
                args.extend([text(host), Arg::Int(id)]);
            }
            if let Some(id) = v.parse::<i64>().ok().filter(|id| id.to_string() == *v) {
                sql.push_str(" OR r.id = ?");
                args.push(Arg::Int(id));
            }
            sql.push(')');
            (sql, args)
        }
        Selector::Campaign(v) => ("r.campaign = ?".into(), vec![text(v)]),
        Selector::Phone(v) => ("r.phone = ?".into(), vec![text(v)]),
        Selector::Agent(v) => ("r.agent = ?".into(), vec![text(v)]),
        Selector::Lead(v) => ("r.lead_id = ?".into(), vec![text(v)]),
        Selector::Id(id) => ("r.id = ?".into(), vec![Arg::Int(*id)]),
        // Only the bounds given: `r.time >= COALESCE(?, r.time)` reads as a
        // function of the column, and MariaDB walked all 10 M rows for it.
        Selector::Time { from, to } => match (from, to) {
            (Some(f), Some(t)) => (
                "(r.time >= ? AND r.time < ?)".into(),
                vec![Arg::Int(*f), Arg::Int(*t)],
            ),
            (Some(f), None) => ("r.time >= ?".into(), vec![Arg::Int(*f)]),
            (None, Some(t)) => ("r.time < ?".into(), vec![Arg::Int(*t)]),
            (None, None) => ("1 = 1".into(), Vec::new()),
        },
    }
}

/// SQL over `r` true when the recording matches `selectors`, and its
/// arguments (the ledger's rule, `ledger::matching::combine`); `None` for no
/// selector.
pub fn selection(selectors: &[Selector]) -> Option<(String, Vec<Arg>)> {
    crate::ledger::matching::combine(selectors, one)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_of_a_kind_are_alternatives_kinds_all_apply() {
        let (sql, args) = selection(&[
            Selector::Phone("5551234567".into()),
            Selector::Phone("5559999999".into()),
            Selector::Campaign("SALES".into()),
        ])
        .unwrap();
        assert_eq!(sql, "(r.campaign = ?) AND (r.phone = ? OR r.phone = ?)");
        assert_eq!(args.len(), 3);
        let (sql, args) = selection(&[Selector::Recording("dialer1/42".into())]).unwrap();
        assert!(sql.contains("(r.host = ? AND r.id = ?)"), "{sql}");
        assert_eq!(args[3], Arg::Int(42));
        assert!(selection(&[]).is_none());
    }

    #[test]
    fn a_time_range_names_only_its_bounds_so_the_index_serves_it() {
        let since = Selector::Time {
            from: Some(100),
            to: None,
        };
        assert_eq!(
            selection(&[since]).unwrap(),
            ("(r.time >= ?)".to_string(), vec![Arg::Int(100)])
        );
        let both = Selector::Time {
            from: Some(1),
            to: Some(2),
        };
        let (sql, args) = selection(&[both]).unwrap();
        assert!(!sql.contains("COALESCE"), "{sql}");
        assert_eq!(args, [Arg::Int(1), Arg::Int(2)]);
    }
}
