//! The tables behind legal holds (`holds`, `hold_selectors`) and the one SQL
//! predicate every deletion path asks: is this recording held? The rules
//! (what a valid hold is, mirroring to Object Lock) are `governance::hold`.

use std::sync::LazyLock;

use rusqlite::{Transaction, params};
use serde::{Deserialize, Serialize};

use super::audit::{self, Action, Actor, NewEntry};
use super::rows::{R_COLUMNS, from_row};
use super::{Ledger, LedgerError};
use crate::recording::Recording;
use crate::units::local_time;

/// What a hold covers. Selectors of one kind are alternatives; a recording
/// must match one selector of every kind the hold has. Serialized as its
/// `hold_selectors` row (for the copies of the hold table in the store).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "SelectorRow", from = "SelectorRow")]
pub enum Selector {
    /// A ledger id, file name or object key.
    Recording(String),
    Campaign(String),
    /// In the form `recording::phone::normalize` gives (digits, no NANP `1`).
    Phone(String),
    Agent(String),
    /// A VICIdial lead id. Data-subject requests only: holds have no lead
    /// selector (`hold_selectors` has no such kind).
    Lead(String),
    /// A ledger id and nothing else (not a name or key that happens to read
    /// the same): how VICIdial's purge queue names recordings. Requests only.
    Id(i64),
    /// Call time (mtime where unknown) in `[from, to)`, unix seconds; open-ended if `None`.
    Time {
        from: Option<i64>,
        to: Option<i64>,
    },
}

impl Selector {
    /// The kind, as `hold_selectors.kind` names it.
    pub fn kind(&self) -> &'static str {
        match self {
            Selector::Recording(_) => "recording",
            Selector::Campaign(_) => "campaign",
            Selector::Phone(_) => "phone",
            Selector::Agent(_) => "agent",
            Selector::Lead(_) => "lead",
            Selector::Id(_) => "id",
            Selector::Time { .. } => "time",
        }
    }

    /// The selector as its `hold_selectors` row: kind, value, time range.
    pub fn columns(&self) -> (&'static str, Option<&str>, Option<i64>, Option<i64>) {
        match self {
            Selector::Recording(v)
            | Selector::Campaign(v)
            | Selector::Phone(v)
            | Selector::Agent(v)
            | Selector::Lead(v) => (self.kind(), Some(v.as_str()), None, None),
            Selector::Time { from, to } => (self.kind(), None, *from, *to),
            Selector::Id(id) => (self.kind(), None, Some(*id), Some(*id)),
        }
    }

    /// The selector a `hold_selectors` row describes.
    pub fn from_columns(
        kind: &str,
        value: Option<String>,
        from: Option<i64>,
        to: Option<i64>,
    ) -> Selector {
        let value = value.unwrap_or_default();
        match kind {
            "campaign" => Selector::Campaign(value),
            "phone" => Selector::Phone(value),
            "agent" => Selector::Agent(value),
            "lead" => Selector::Lead(value),
            "time" => Selector::Time { from, to },
            "id" => Selector::Id(from.unwrap_or_default()),
            _ => Selector::Recording(value),
        }
    }
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Selector::Recording(v) => write!(f, "recording={v}"),
            Selector::Campaign(v) => write!(f, "campaign={v}"),
            Selector::Phone(v) => write!(f, "phone={v}"),
            Selector::Agent(v) => write!(f, "agent={v}"),
            Selector::Lead(v) => write!(f, "lead={v}"),
            Selector::Id(id) => write!(f, "id={id}"),
            Selector::Time { from, to } => write!(
                f,
                "time=[{}, {})",
                from.map(local_time).unwrap_or_else(|| "-".to_string()),
                to.map(local_time).unwrap_or_else(|| "-".to_string())
            ),
        }
    }
}

/// A selector as its `hold_selectors` row.
#[derive(Serialize, Deserialize)]
struct SelectorRow {
    kind: String,
    value: Option<String>,
    from: Option<i64>,
    to: Option<i64>,
}

impl From<Selector> for SelectorRow {
    fn from(s: Selector) -> SelectorRow {
        let (kind, value, from, to) = s.columns();
        SelectorRow {
            kind: kind.to_string(),
            value: value.map(str::to_string),
            from,
            to,
        }
    }
}

impl From<SelectorRow> for Selector {
    fn from(r: SelectorRow) -> Selector {
        Selector::from_columns(&r.kind, r.value, r.from, r.to)
    }
}

/// What placing a hold found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoldPlaced {
    pub id: i64,
    /// Recordings it covers now.
    pub covered: u64,
    /// Of those, recordings whose deletion had already started (reserved
    /// before the hold committed): they will be gone.
    pub being_deleted: u64,
}

/// One `recvault hold add`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub id: i64,
    pub case_id: String,
    pub reason: String,
    pub created_by: String,
    pub created_at: i64,
    pub released_at: Option<i64>,
    pub released_by: Option<String>,
    pub release_reason: Option<String>,
    #[serde(rename = "selector", default)]
    pub selectors: Vec<Selector>,
}

impl Hold {
    /// The selectors as one line (`campaign=SALES phone=555…`).
    pub fn describe(&self) -> String {
        describe(&self.selectors)
    }
}

/// SQL true when the recording aliased `r` is covered by a hold `h`
/// satisfying `hold_filter`: for every selector kind of the hold, some
/// selector of that kind matches.
pub(super) fn covered_sql(hold_filter: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM holds h WHERE {hold_filter} AND NOT EXISTS ( \
           SELECT 1 FROM hold_selectors k WHERE k.hold_id = h.id AND NOT EXISTS ( \
             SELECT 1 FROM hold_selectors s WHERE s.hold_id = h.id AND s.kind = k.kind AND ( \
               (s.kind = 'recording' AND (s.value = CAST(r.id AS TEXT) OR CAST(s.value AS BLOB) = r.name \
                  OR s.value = r.object_key)) \
               OR (s.kind = 'campaign' AND s.value = r.campaign) \
               OR (s.kind = 'phone' AND s.value = r.phone) \
               OR (s.kind = 'agent' AND s.value = r.agent) \
               OR (s.kind = 'time' AND r.retain_from >= COALESCE(s.time_from, r.retain_from) \
                  AND r.retain_from < COALESCE(s.time_to, r.retain_from + 1))))))"
    )
}

/// SQL true when the recording aliased `r` is under any active hold.
pub(super) static HELD: LazyLock<String> = LazyLock::new(|| covered_sql("h.released_at IS NULL"));

impl Ledger {
    /// True if recording `id` is under an active hold.
    pub fn is_held(&self, id: i64) -> Result<bool, LedgerError> {
        let sql = format!("SELECT {} FROM recordings r WHERE r.id = ?1", *HELD);
        Ok(self
            .reader()?
            .prepare_cached(&sql)?
            .query_row([id], |r| r.get(0))?)
    }

    /// The cases whose active holds cover recording `id`.
    pub fn cases_holding(&self, id: i64) -> Result<Vec<String>, LedgerError> {
        Ok(cases_holding_in(&*self.reader()?, id)?)
    }

    /// Records a new hold (already validated) with its audit entry. Returns
    /// its id and how many recordings it covers now.
    pub fn insert_hold(
        &self,
        actor: &Actor,
        now: i64,
        case_id: &str,
        reason: &str,
        selectors: &[Selector],
    ) -> Result<HoldPlaced, LedgerError> {
        let description = describe(selectors);
        self.write(|tx| {
            tx.execute(
                "INSERT INTO holds (case_id, reason, created_by, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![case_id, reason, actor.user, now],
            )?;
            let id = tx.last_insert_rowid();
            insert_selectors(tx, id, selectors)?;
            // Those being deleted right now had their deletion reserved (and
            // their holds checked) before this hold: it cannot save them.
            let (covered, deleting): (i64, i64) = tx.query_row(
                &format!(
                    "SELECT COUNT(*), COUNT(r.deleting_at) FROM recordings r WHERE {}",
                    covered_sql("h.id = ?1")
                ),
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let entry = NewEntry {
                action: Action::HoldAdd,
                case_id: Some(case_id),
                subject: &format!("hold #{id}: {description} (covers {covered} recordings now)"),
                reason,
                recording_id: None,
            };
            audit::append(tx, actor, now, &entry)?;
            Ok(HoldPlaced {
                id,
                covered: covered as u64,
                being_deleted: deleting as u64,
            })
        })
    }

    /// Releases every active hold of `case_id` with its audit entry. Returns
    /// how many (0: the case had no active hold, and nothing was written).
    pub fn release_holds(
        &self,
        actor: &Actor,
        now: i64,
        case_id: &str,
        reason: &str,
    ) -> Result<usize, LedgerError> {
        self.write(|tx| {
            let n = tx.execute(
                "UPDATE holds SET released_at = ?2, released_by = ?3, release_reason = ?4 \
                 WHERE case_id = ?1 AND released_at IS NULL",
                params![case_id, now, actor.user, reason],
            )?;
            if n > 0 {
                let entry = NewEntry {
                    action: Action::HoldRelease,
                    case_id: Some(case_id),
                    subject: &format!("{n} hold(s) of case {case_id}"),
                    reason,
                    recording_id: None,
                };
                audit::append(tx, actor, now, &entry)?;
            }
            Ok(n)
        })
    }

    /// Puts holds read back from a copy into a ledger that has none, ids kept.
    pub fn restore_holds(&self, holds: &[Hold]) -> Result<(), LedgerError> {
        self.write(|tx| {
            for h in holds {
                tx.execute(
                    "INSERT INTO holds (id, case_id, reason, created_by, created_at, released_at, released_by, release_reason) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![h.id, h.case_id, h.reason, h.created_by, h.created_at, h.released_at, h.released_by, h.release_reason],
                )?;
                insert_selectors(tx, h.id, &h.selectors)?;
            }
            Ok(())
        })
    }

    /// Every hold, active ones first, then newest first.
    pub fn holds(&self) -> Result<Vec<Hold>, LedgerError> {
        self.holds_where("1", &[])
    }

    /// The holds of one case (empty if there is none).
    pub fn holds_of_case(&self, case_id: &str) -> Result<Vec<Hold>, LedgerError> {
        self.holds_where("case_id = ?1", &[&case_id])
    }

    /// The selectors of every active hold, one list per hold.
    pub fn active_hold_selectors(&self) -> Result<Vec<Vec<Selector>>, LedgerError> {
        Ok(self
            .holds_where("released_at IS NULL", &[])?
            .into_iter()
            .map(|h| h.selectors)
            .collect())
    }

    fn holds_where(
        &self,
        filter: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<Hold>, LedgerError> {
        self.read(|conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT id, case_id, reason, created_by, created_at, released_at, released_by, release_reason \
                 FROM holds WHERE {filter} ORDER BY released_at IS NOT NULL, id DESC"
            ))?;
            let mut holds: Vec<Hold> = stmt
                .query_map(args, |r| {
                    Ok(Hold {
                        id: r.get(0)?,
                        case_id: r.get(1)?,
                        reason: r.get(2)?,
                        created_by: r.get(3)?,
                        created_at: r.get(4)?,
                        released_at: r.get(5)?,
                        released_by: r.get(6)?,
                        release_reason: r.get(7)?,
                        selectors: Vec::new(),
                    })
                })?
                .collect::<Result<_, _>>()?;
            let mut stmt = conn.prepare_cached(
                "SELECT kind, value, time_from, time_to FROM hold_selectors WHERE hold_id = ?1 ORDER BY rowid",
            )?;
            for hold in &mut holds {
                hold.selectors = stmt
                    .query_map([hold.id], |r| {
                        let kind: String = r.get(0)?;
                        Ok(Selector::from_columns(&kind, r.get(1)?, r.get(2)?, r.get(3)?))
                    })?
                    .collect::<Result<_, _>>()?;
            }
            Ok(holds)
        })
    }

    /// Visits the recordings a case's holds cover (released ones included,
    /// so a released case still shows what it covered), oldest call first.
    pub fn covered_by_case<E: From<LedgerError>>(
        &self,
        case_id: &str,
        mut visit: impl FnMut(&Recording) -> Result<(), E>,
    ) -> Result<(), E> {
        let sql = format!(
            "SELECT {} FROM recordings r WHERE {} ORDER BY r.retain_from, r.id",
            *R_COLUMNS,
            covered_sql("h.case_id = ?1")
        );
        let conn = self.reader()?;
        let mut stmt = conn.prepare(&sql).map_err(LedgerError::from)?;
        let mut rows = stmt.query([case_id]).map_err(LedgerError::from)?;
        while let Some(row) = rows.next().map_err(LedgerError::from)? {
            visit(&from_row(row).map_err(LedgerError::from)?)?;
        }
        Ok(())
    }
}

/// The cases whose active holds cover recording `id`, on `conn` (inside a
/// caller's transaction where the answer must hold until it commits).
pub(super) fn cases_holding_in(
    conn: &rusqlite::Connection,
    id: i64,
) -> rusqlite::Result<Vec<String>> {
    let sql = format!(
        "SELECT DISTINCT c.case_id FROM holds c WHERE c.released_at IS NULL AND EXISTS ( \
           SELECT 1 FROM recordings r WHERE r.id = ?1 AND {}) ORDER BY c.case_id",
        covered_sql("h.id = c.id")
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map([id], |r| r.get(0))?;
    rows.collect()
}

/// The selectors as one line (`campaign=SALES phone=555…`).
pub fn describe(selectors: &[Selector]) -> String {
    selectors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Writes a hold's selectors (inside the caller's transaction).
pub(super) fn insert_selectors(
    tx: &Transaction<'_>,
    hold_id: i64,
    selectors: &[Selector],
) -> Result<(), rusqlite::Error> {
    for s in selectors {
        let (kind, value, from, to) = s.columns();
        tx.execute(
            "INSERT INTO hold_selectors (hold_id, kind, value, time_from, time_to) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![hold_id, kind, value, from, to],
        )?;
    }
    Ok(())
}
