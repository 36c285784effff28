//! Legal holds: named holds (case, reason, who, when) covering recordings by
//! id or name, campaign, phone, agent or call-time range — including
//! recordings that arrive after the hold. Kept in the ledger and checked
//! with one SQL predicate, so every deletion path can afford to ask.

use std::collections::BTreeMap;

use rusqlite::params;

use crate::audit::{self, Action, Actor, NewEntry};
use crate::ledger::{Ledger, LedgerError, columns_of_r, recording_from_row};
use crate::recording::{Recording, State};
use crate::report::local_time;
use crate::store::{Store, StoreError};

/// What a hold covers. Selectors of one kind are alternatives; a recording
/// must match one selector of every kind the hold has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// A ledger id, file name or object key.
    Recording(String),
    Campaign(String),
    /// Digits only, as the file name carries them.
    Phone(String),
    Agent(String),
    /// Call time (mtime where unknown) in `[from, to)`, unix seconds; open-ended if `None`.
    Time {
        from: Option<i64>,
        to: Option<i64>,
    },
}

impl Selector {
    fn kind(&self) -> &'static str {
        match self {
            Selector::Recording(_) => "recording",
            Selector::Campaign(_) => "campaign",
            Selector::Phone(_) => "phone",
            Selector::Agent(_) => "agent",
            Selector::Time { .. } => "time",
        }
    }

    /// The selector as its `hold_selectors` row: kind, value, time range.
    pub(crate) fn columns(&self) -> (&'static str, Option<&str>, Option<i64>, Option<i64>) {
        match self {
            Selector::Recording(v)
            | Selector::Campaign(v)
            | Selector::Phone(v)
            | Selector::Agent(v) => (self.kind(), Some(v.as_str()), None, None),
            Selector::Time { from, to } => (self.kind(), None, *from, *to),
        }
    }

    /// The selector a `hold_selectors` row describes.
    pub(crate) fn from_columns(
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
            "time" => Selector::Time { from, to },
            _ => Selector::Recording(value),
        }
    }

    /// A phone selector from what an operator typed (`+1 555-123-4567` → digits).
    pub fn phone(text: &str) -> Selector {
        Selector::Phone(text.chars().filter(char::is_ascii_digit).collect())
    }
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Selector::Recording(v) => write!(f, "recording={v}"),
            Selector::Campaign(v) => write!(f, "campaign={v}"),
            Selector::Phone(v) => write!(f, "phone={v}"),
            Selector::Agent(v) => write!(f, "agent={v}"),
            Selector::Time { from, to } => write!(
                f,
                "time=[{}, {})",
                from.map(local_time).unwrap_or_else(|| "-".to_string()),
                to.map(local_time).unwrap_or_else(|| "-".to_string())
            ),
        }
    }
}

/// One `recvault hold add`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub id: i64,
    pub case_id: String,
    pub reason: String,
    pub created_by: String,
    pub created_at: i64,
    pub released_at: Option<i64>,
    pub released_by: Option<String>,
    pub release_reason: Option<String>,
    pub selectors: Vec<Selector>,
}

impl Hold {
    /// The selectors as one line (`campaign=SALES phone=555…`).
    pub fn describe(&self) -> String {
        self.selectors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Why a hold could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum HoldError {
    #[error(
        "hold {0}: give at least one selector (--recording, --campaign, --phone, --agent, --from/--to)"
    )]
    NoSelector(String),
    #[error("hold {0}: --reason must say why")]
    NoReason(String),
    #[error("hold {0}: a selector is empty")]
    EmptySelector(String),
    #[error("hold {0}: --from is not before --to")]
    BadRange(String),
    #[error("no active hold for case `{0}`")]
    NotActive(String),
    #[error("no hold for case `{0}`")]
    NoSuchCase(String),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

impl From<rusqlite::Error> for HoldError {
    fn from(e: rusqlite::Error) -> HoldError {
        HoldError::Ledger(LedgerError::Sql(e))
    }
}

/// SQL true when the recording aliased `r` is covered by a hold `h`
/// satisfying `hold_filter`: for every selector kind of the hold, some
/// selector of that kind matches.
fn covered_sql(hold_filter: &str) -> String {
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
pub fn held_sql() -> String {
    covered_sql("h.released_at IS NULL")
}

/// True if recording `id` is under an active hold.
pub fn is_held(ledger: &Ledger, id: i64) -> Result<bool, LedgerError> {
    ledger.read(|conn| {
        let sql = format!("SELECT {} FROM recordings r WHERE r.id = ?1", held_sql());
        Ok(conn.prepare_cached(&sql)?.query_row([id], |r| r.get(0))?)
    })
}

/// The cases whose active holds cover recording `id`.
pub fn cases_holding(ledger: &Ledger, id: i64) -> Result<Vec<String>, LedgerError> {
    ledger.read(|conn| {
        let sql = format!(
            "SELECT DISTINCT c.case_id FROM holds c WHERE c.released_at IS NULL AND EXISTS ( \
               SELECT 1 FROM recordings r WHERE r.id = ?1 AND {}) ORDER BY c.case_id",
            covered_sql("h.id = c.id")
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map([id], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    })
}

/// Places a hold. Returns its id and how many recordings it covers now.
pub fn add(
    ledger: &Ledger,
    actor: &Actor,
    now: i64,
    case_id: &str,
    reason: &str,
    selectors: &[Selector],
) -> Result<(i64, u64), HoldError> {
    let case = case_id.to_string();
    if case_id.trim().is_empty() || reason.trim().is_empty() {
        return Err(HoldError::NoReason(case));
    }
    if selectors.is_empty() {
        return Err(HoldError::NoSelector(case));
    }
    for s in selectors {
        match s {
            Selector::Recording(v)
            | Selector::Campaign(v)
            | Selector::Phone(v)
            | Selector::Agent(v)
                if v.is_empty() =>
            {
                return Err(HoldError::EmptySelector(case));
            }
            Selector::Time {
                from: Some(f),
                to: Some(t),
            } if f >= t => return Err(HoldError::BadRange(case)),
            Selector::Time {
                from: None,
                to: None,
            } => return Err(HoldError::EmptySelector(case)),
            _ => {}
        }
    }
    let description = selectors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ");
    ledger.write(|tx| {
        tx.execute(
            "INSERT INTO holds (case_id, reason, created_by, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![case_id, reason, actor.user, now],
        )?;
        let id = tx.last_insert_rowid();
        insert_selectors(tx, id, selectors)?;
        let covered: i64 = tx.query_row(
            &format!(
                "SELECT COUNT(*) FROM recordings r WHERE {}",
                covered_sql("h.id = ?1")
            ),
            [id],
            |r| r.get(0),
        )?;
        audit::append(
            tx,
            actor,
            now,
            &NewEntry {
                action: Action::HoldAdd,
                case_id: Some(case_id),
                subject: &format!("hold #{id}: {description} (covers {covered} recordings now)"),
                reason,
            },
        )?;
        Ok::<_, HoldError>((id, covered as u64))
    })
}

/// Writes a hold's selectors (inside the caller's transaction).
pub(crate) fn insert_selectors(
    tx: &rusqlite::Transaction<'_>,
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

/// Releases every active hold of `case_id`. Returns how many.
pub fn release(
    ledger: &Ledger,
    actor: &Actor,
    now: i64,
    case_id: &str,
    reason: &str,
) -> Result<usize, HoldError> {
    if reason.trim().is_empty() {
        return Err(HoldError::NoReason(case_id.to_string()));
    }
    ledger.write(|tx| {
        let n = tx.execute(
            "UPDATE holds SET released_at = ?2, released_by = ?3, release_reason = ?4 \
             WHERE case_id = ?1 AND released_at IS NULL",
            params![case_id, now, actor.user, reason],
        )?;
        if n == 0 {
            return Err(HoldError::NotActive(case_id.to_string()));
        }
        audit::append(
            tx,
            actor,
            now,
            &NewEntry {
                action: Action::HoldRelease,
                case_id: Some(case_id),
                subject: &format!("{n} hold(s) of case {case_id}"),
                reason,
            },
        )?;
        Ok(n)
    })
}

/// Every hold, active ones first, then newest first.
pub fn list(ledger: &Ledger) -> Result<Vec<Hold>, LedgerError> {
    holds_where(ledger, "1", &[])
}

/// The holds of one case.
pub fn of_case(ledger: &Ledger, case_id: &str) -> Result<Vec<Hold>, HoldError> {
    let holds = holds_where(ledger, "case_id = ?1", &[&case_id])?;
    if holds.is_empty() {
        return Err(HoldError::NoSuchCase(case_id.to_string()));
    }
    Ok(holds)
}

fn holds_where(
    ledger: &Ledger,
    filter: &str,
    args: &[&dyn rusqlite::ToSql],
) -> Result<Vec<Hold>, LedgerError> {
    ledger.read(|conn| {
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

/// The recordings a case's holds cover (released ones included, so a
/// released case still shows what it covered), oldest call first.
pub fn covered(
    ledger: &Ledger,
    case_id: &str,
    mut visit: impl FnMut(&Recording) -> std::io::Result<()>,
) -> Result<(), HoldError> {
    of_case(ledger, case_id)?;
    ledger.read(|conn| {
        let sql = format!(
            "SELECT {} FROM recordings r WHERE {} ORDER BY r.retain_from, r.id",
            columns_of_r(),
            covered_sql("h.case_id = ?1")
        );
        let mut stmt = conn.prepare(&sql)?;
        let mut rows = stmt.query([case_id])?;
        while let Some(row) = rows.next()? {
            if visit(&recording_from_row(row)?).is_err() {
                break;
            }
        }
        Ok(())
    })
}

/// What mirroring holds into the store did.
#[derive(Debug, Clone, Default)]
pub struct MirrorReport {
    pub on: u64,
    pub off: u64,
    /// Keys whose legal hold could not be set, with the store's answer.
    pub failed: Vec<(String, StoreError)>,
}

/// Sets the store's Object Lock legal hold on every stored object the case
/// covers to match the ledger (ON while any active hold covers it, else OFF).
pub async fn mirror(
    ledger: &Ledger,
    store: &dyn Store,
    case_id: &str,
) -> Result<MirrorReport, HoldError> {
    let mut objects: BTreeMap<String, i64> = BTreeMap::new();
    covered(ledger, case_id, |r| {
        if let (Some(key), true) = (&r.object_key, has_object(r)) {
            objects.insert(key.clone(), r.id);
        }
        Ok(())
    })?;
    let mut report = MirrorReport::default();
    for (key, id) in objects {
        let on = is_held(ledger, id)?;
        match store.set_legal_hold(&key, on).await {
            Ok(()) if on => report.on += 1,
            Ok(()) => report.off += 1,
            Err(e) => report.failed.push((key, e)),
        }
    }
    Ok(report)
}

/// True if the recording's object is (or may be) in the store.
pub fn has_object(r: &Recording) -> bool {
    let state = match r.state {
        State::Failed => r.resume_state.unwrap_or(State::Seen),
        s => s,
    };
    matches!(
        state,
        State::Uploaded | State::Verified | State::LocalDeleted
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::SpoolFile;
    use crate::naming::Attribution;
    use crate::recording::FileIdentity;
    use std::path::PathBuf;

    fn insert(ledger: &Ledger, name: &str, campaign: &str, phone: &str, time: i64) -> i64 {
        let file = SpoolFile {
            path: PathBuf::from(format!("/s/{name}")),
            name: name.as_bytes().to_vec(),
            identity: FileIdentity {
                dev: 1,
                ino: 2,
                size: 3,
                mtime_ns: 0,
            },
        };
        let call = Attribution {
            matched: true,
            campaign: Some(campaign.to_string()),
            call_time: Some(time),
            phone: Some(phone.to_string()),
            agent: Some("a1".to_string()),
            lead_id: None,
        };
        ledger.insert(&file, &call, State::Settled, "").unwrap()
    }

    fn actor() -> Actor {
        Actor {
            uid: 0,
            user: "root".to_string(),
        }
    }

    #[test]
    fn selectors_of_different_kinds_must_all_match() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("l.sqlite3")).unwrap();
        let a = insert(&ledger, "a.wav", "SALES", "555", 100);
        let b = insert(&ledger, "b.wav", "SALES", "777", 100);
        let c = insert(&ledger, "c.wav", "COLLECT", "555", 100);
        let d = insert(&ledger, "d.wav", "SALES", "555", 900);
        let (_, n) = add(
            &ledger,
            &actor(),
            1,
            "CASE-1",
            "subpoena",
            &[
                Selector::Campaign("SALES".into()),
                Selector::phone("+555"),
                Selector::phone("999"),
                Selector::Time {
                    from: Some(50),
                    to: Some(500),
                },
            ],
        )
        .unwrap();
        assert_eq!(n, 1);
        let held: Vec<bool> = [a, b, c, d]
            .iter()
            .map(|id| is_held(&ledger, *id).unwrap())
            .collect();
        assert_eq!(held, [true, false, false, false]);
        assert_eq!(cases_holding(&ledger, a).unwrap(), ["CASE-1"]);

        // A later recording that matches is covered too.
        let e = insert(&ledger, "e.wav", "SALES", "999", 200);
        assert!(is_held(&ledger, e).unwrap());

        add(
            &ledger,
            &actor(),
            2,
            "CASE-2",
            "dispute",
            &[Selector::Recording("d.wav".into())],
        )
        .unwrap();
        assert!(is_held(&ledger, d).unwrap());
        release(&ledger, &actor(), 3, "CASE-1", "settled").unwrap();
        assert!(!is_held(&ledger, a).unwrap());
        assert!(is_held(&ledger, d).unwrap());
        assert!(matches!(
            release(&ledger, &actor(), 4, "CASE-1", "again"),
            Err(HoldError::NotActive(_))
        ));
        let mut shown = Vec::new();
        covered(&ledger, "CASE-1", |r| {
            shown.push(r.id);
            Ok(())
        })
        .unwrap();
        assert_eq!(shown, [a, e]);
        assert_eq!(crate::audit::verify(&ledger).unwrap().entries, 3);
    }

    #[test]
    fn a_hold_needs_a_reason_and_a_selector() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("l.sqlite3")).unwrap();
        assert!(matches!(
            add(&ledger, &actor(), 1, "C", "why", &[]),
            Err(HoldError::NoSelector(_))
        ));
        assert!(matches!(
            add(
                &ledger,
                &actor(),
                1,
                "C",
                " ",
                &[Selector::Agent("a".into())]
            ),
            Err(HoldError::NoReason(_))
        ));
        assert!(matches!(
            add(
                &ledger,
                &actor(),
                1,
                "C",
                "why",
                &[Selector::Time {
                    from: Some(5),
                    to: Some(5)
                }]
            ),
            Err(HoldError::BadRange(_))
        ));
    }
}
