//! Legal holds: named holds (case, reason, who, when) covering recordings by
//! id or name, campaign, phone, agent or call-time range — including
//! recordings that arrive after the hold. This module owns the rules (what a
//! valid hold is, mirroring it to the store's Object Lock); the ledger owns
//! the tables and the one "held" predicate every deletion path asks.

use std::collections::BTreeMap;

use crate::error::{Error, HoldProblem};
use crate::ledger::Ledger;
use crate::ledger::audit::Actor;
pub use crate::ledger::holds::{Hold, HoldPlaced, Selector};
use crate::recording::phone::normalize;
use crate::store::{Store, StoreError};

impl Selector {
    /// A phone selector from what an operator typed (`+1 555-123-4567`),
    /// in the form recordings carry (`recording::phone::normalize`).
    pub fn phone(text: &str) -> Result<Selector, Error> {
        normalize(text).map(Selector::Phone).map_err(Error::Usage)
    }
}

fn refused(case_id: &str, problem: HoldProblem) -> Error {
    Error::Hold {
        case: case_id.to_string(),
        problem,
    }
}

/// What is wrong with a hold of these selectors, if anything.
fn check_selectors(selectors: &[Selector]) -> Option<HoldProblem> {
    if selectors.is_empty() {
        return Some(HoldProblem::NoSelector);
    }
    selectors.iter().find_map(|s| match s {
        Selector::Lead(_) => Some(HoldProblem::NotForHolds("--lead")),
        Selector::Id(_) => Some(HoldProblem::NotForHolds("a ledger id")),
        Selector::Recording(v)
        | Selector::Campaign(v)
        | Selector::Phone(v)
        | Selector::Agent(v)
            if v.is_empty() =>
        {
            Some(HoldProblem::EmptySelector)
        }
        Selector::Time {
            from: Some(f),
            to: Some(t),
        } if f >= t => Some(HoldProblem::BadRange),
        Selector::Time {
            from: None,
            to: None,
        } => Some(HoldProblem::EmptySelector),
        _ => None,
    })
}

/// Checks the selectors of a hold about to be placed (or previewed): at
/// least one, none empty, no kind holds do not have, ranges that end after
/// they start.
pub fn check(selectors: &[Selector]) -> Result<(), Error> {
    match check_selectors(selectors) {
        Some(problem) => Err(refused("(new hold)", problem)),
        None => Ok(()),
    }
}

/// Places a hold. Returns its id, how many recordings it covers now, and how
/// many of those were already being deleted when it committed.
pub fn add(
    ledger: &Ledger,
    actor: &Actor,
    now: i64,
    case_id: &str,
    reason: &str,
    selectors: &[Selector],
) -> Result<HoldPlaced, Error> {
    if case_id.trim().is_empty() || reason.trim().is_empty() {
        return Err(refused(case_id, HoldProblem::NoReason));
    }
    if let Some(problem) = check_selectors(selectors) {
        return Err(refused(case_id, problem));
    }
    Ok(ledger.insert_hold(actor, now, case_id, reason, selectors)?)
}

/// Releases every active hold of `case_id`. Returns how many.
pub fn release(
    ledger: &Ledger,
    actor: &Actor,
    now: i64,
    case_id: &str,
    reason: &str,
) -> Result<usize, Error> {
    if reason.trim().is_empty() {
        return Err(refused(case_id, HoldProblem::NoReason));
    }
    match ledger.release_holds(actor, now, case_id, reason)? {
        0 => Err(refused(case_id, HoldProblem::NotActive)),
        n => Ok(n),
    }
}

/// The holds of one case; an error if it has none.
pub fn of_case(ledger: &Ledger, case_id: &str) -> Result<Vec<Hold>, Error> {
    let holds = ledger.holds_of_case(case_id)?;
    if holds.is_empty() {
        return Err(refused(case_id, HoldProblem::NoSuchCase));
    }
    Ok(holds)
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
) -> Result<MirrorReport, Error> {
    of_case(ledger, case_id)?;
    let mut objects: BTreeMap<String, i64> = BTreeMap::new();
    ledger.covered_by_case::<Error>(case_id, |r| {
        if let (Some(key), true) = (&r.object_key, r.is_stored()) {
            objects.insert(key.clone(), r.id);
        }
        Ok(())
    })?;
    let mut report = MirrorReport::default();
    for (key, id) in objects {
        let on = ledger.is_held(id)?;
        match store.set_legal_hold(&key, on).await {
            Ok(()) if on => report.on += 1,
            Ok(()) => report.off += 1,
            Err(e) => report.failed.push((key, e)),
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::ledger::fixtures::insert_call as insert;

    fn actor() -> Actor {
        Actor {
            uid: 0,
            user: "root".to_string(),
        }
    }

    #[test]
    fn selectors_of_different_kinds_must_all_match() {
        let (_dir, ledger) = crate::ledger::fixtures::ledger();
        let a = insert(&ledger, "a.wav", "SALES", "555", 100);
        let b = insert(&ledger, "b.wav", "SALES", "777", 100);
        let c = insert(&ledger, "c.wav", "COLLECT", "555", 100);
        let d = insert(&ledger, "d.wav", "SALES", "555", 900);
        let placed = add(
            &ledger,
            &actor(),
            1,
            "CASE-1",
            "subpoena",
            &[
                Selector::Campaign("SALES".into()),
                Selector::phone("+555").unwrap(),
                Selector::phone("999").unwrap(),
                Selector::Time {
                    from: Some(50),
                    to: Some(500),
                },
            ],
        )
        .unwrap();
        assert_eq!((placed.covered, placed.being_deleted), (1, 0));
        let held: Vec<bool> = [a, b, c, d]
            .iter()
            .map(|id| ledger.is_held(*id).unwrap())
            .collect();
        assert_eq!(held, [true, false, false, false]);
        assert_eq!(ledger.cases_holding(a).unwrap(), ["CASE-1"]);

        // A later recording that matches is covered too.
        let e = insert(&ledger, "e.wav", "SALES", "999", 200);
        assert!(ledger.is_held(e).unwrap());

        add(
            &ledger,
            &actor(),
            2,
            "CASE-2",
            "dispute",
            &[Selector::Recording("d.wav".into())],
        )
        .unwrap();
        assert!(ledger.is_held(d).unwrap());
        release(&ledger, &actor(), 3, "CASE-1", "settled").unwrap();
        assert!(!ledger.is_held(a).unwrap());
        assert!(ledger.is_held(d).unwrap());
        assert!(matches!(
            release(&ledger, &actor(), 4, "CASE-1", "again"),
            Err(Error::Hold {
                problem: HoldProblem::NotActive,
                ..
            })
        ));
        let mut shown = Vec::new();
        ledger
            .covered_by_case::<Error>("CASE-1", |r| {
                shown.push(r.id);
                Ok(())
            })
            .unwrap();
        assert_eq!(shown, [a, e]);
        assert_eq!(ledger.verify_audit_chain().unwrap().entries, 3);
    }

    #[test]
    fn a_hold_needs_a_reason_and_a_selector() {
        let (_dir, ledger) = crate::ledger::fixtures::ledger();
        assert!(matches!(
            add(&ledger, &actor(), 1, "C", "why", &[]),
            Err(Error::Hold {
                problem: HoldProblem::NoSelector,
                ..
            })
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
            Err(Error::Hold {
                problem: HoldProblem::NoReason,
                ..
            })
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
            Err(Error::Hold {
                problem: HoldProblem::BadRange,
                ..
            })
        ));
    }
}
