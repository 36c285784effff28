//! Data-subject requests (and auditors' requests): which recordings a
//! request is about, and erasing them. A request names its recordings by
//! selectors (phone, agent, lead, campaign, recording, time); a phone, lead
//! or name an earlier erasure replaced is matched through its pseudonym, so
//! the same caller asking again is shown what was done. `erase` plans and
//! confirms an erasure, `eraser` carries it out, `key` keeps the pseudonym
//! key. Exporting is `retrieve::export`.

use crate::ledger::holds::{Selector, describe};
use crate::ledger::matching::Matched;
use crate::ledger::{Ledger, LedgerError};
use crate::recording::pseudonym::{PseudonymKey, is_pseudonym};

pub mod erase;
pub mod eraser;
pub mod key;

/// `selectors` as the ledger matches them: every phone, lead and recording
/// also by the pseudonym an erasure would have left in its place.
pub fn widen(selectors: &[Selector], key: Option<&PseudonymKey>) -> Vec<Selector> {
    widen_all(selectors, key.map(std::slice::from_ref).unwrap_or(&[]))
}

/// `selectors` widened by the pseudonyms under each of `keys` (a key file's
/// every key: a fleet's shared one and a box's own from before it joined).
pub fn widen_all(selectors: &[Selector], keys: &[PseudonymKey]) -> Vec<Selector> {
    let mut out = selectors.to_vec();
    for key in keys {
        push_pseudonyms(selectors, key, &mut out);
    }
    out
}

fn push_pseudonyms(selectors: &[Selector], key: &PseudonymKey, out: &mut Vec<Selector>) {
    for s in selectors {
        match s {
            Selector::Phone(p) => out.push(Selector::Phone(key.phone(p))),
            Selector::Lead(l) => out.push(Selector::Lead(key.lead(l))),
            Selector::Recording(r) => {
                let name = String::from_utf8_lossy(&key.name(r.as_bytes())).into_owned();
                out.push(Selector::Recording(name));
                out.push(Selector::Recording(key.object_key(r)));
            }
            Selector::Campaign(_)
            | Selector::Agent(_)
            | Selector::Id(_)
            | Selector::Time { .. } => {}
        }
    }
}

/// The selectors as the audit trail names them: numbers, leads and
/// recordings by their pseudonyms, so the trail holds no one's number.
pub fn for_audit(selectors: &[Selector], key: &PseudonymKey) -> String {
    describe(&pseudonymous(selectors, key))
}

/// `selectors` with every number, lead and recording name replaced by its
/// pseudonym: what may be written down where an erased person must leave
/// no readable trace (the audit trail, the fleet's database). A value that
/// already is a pseudonym stays (doing it twice changes nothing).
pub fn pseudonymous(selectors: &[Selector], key: &PseudonymKey) -> Vec<Selector> {
    selectors
        .iter()
        .map(|s| match s {
            Selector::Phone(v) | Selector::Lead(v) | Selector::Recording(v)
                if is_pseudonym(v.as_bytes()) =>
            {
                s.clone()
            }
            Selector::Phone(p) => Selector::Phone(key.phone(p)),
            Selector::Lead(l) => Selector::Lead(key.lead(l)),
            Selector::Recording(r) => {
                Selector::Recording(String::from_utf8_lossy(&key.name(r.as_bytes())).into_owned())
            }
            other => other.clone(),
        })
        .collect()
}

/// Visits every recording the request is about, erased ones included
/// (`key`: the pseudonym key, if one was ever made), oldest call first.
pub fn find<E: From<LedgerError>>(
    ledger: &Ledger,
    selectors: &[Selector],
    key: Option<&PseudonymKey>,
    visit: impl FnMut(&Matched) -> Result<(), E>,
) -> Result<(), E> {
    if selectors.is_empty() {
        return Ok(());
    }
    let wide = widen(selectors, key);
    ledger.matching::<E>(&wide, visit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_widen_and_the_audit_never_names_a_number() {
        let key = PseudonymKey::new([1; 32]);
        let selectors = [
            Selector::Phone("5551234567".into()),
            Selector::Campaign("SALES".into()),
        ];
        let wide = widen(&selectors, Some(&key));
        assert_eq!(wide.len(), 3);
        assert!(wide.contains(&Selector::Phone(key.phone("5551234567"))));
        assert_eq!(widen(&selectors, None), selectors);
        let once = pseudonymous(&selectors, &key);
        assert_eq!(
            pseudonymous(&once, &key),
            once,
            "done twice, nothing changes"
        );
        let shown = for_audit(&selectors, &key);
        assert!(
            !shown.contains("5551234567") && shown.contains("campaign=SALES"),
            "{shown}"
        );
    }
}
