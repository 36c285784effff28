//! Planning and confirming an erasure. The preview is a [`Plan`]: what the
//! request covers, where each recording stands (to erase, held and by which
//! cases, already erased) and a token bound to exactly that — an HMAC over
//! the request, the selectors and each recording's id and standing. The
//! confirmation recomputes the plan inside the transaction that reserves
//! (and checks the holds), and reserves only if the token still matches:
//! a new recording, a new hold or a released one means a new preview.
//! Pipeline progress (a local copy archived meanwhile) does not change the
//! token: the erasure removes every copy wherever it is.

use crate::error::Error;
use crate::ledger::Ledger;
use crate::ledger::audit::Actor;
use crate::ledger::holds::{Selector, describe};
use crate::ledger::matching::Matched;
use crate::recording::pseudonym::PseudonymKey;
use crate::units::human_bytes;

use super::{for_audit, widen};

/// Hex digits of a confirmation token.
const TOKEN_LEN: usize = 20;

/// Where a recording a request covers stands.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Standing {
    /// This request erases it (or has begun to).
    Erase,
    /// Active holds of these cases cover it: it is never erased.
    Held(Vec<String>),
    /// Another request erased it (`done`), or is erasing it.
    Other { request: String, done: bool },
}

/// What an erasure request covers, and the token that confirms exactly that.
#[derive(Debug, Clone)]
pub struct Plan {
    pub request: String,
    pub selectors: Vec<Selector>,
    /// Every recording matched, oldest call first, with where it stands.
    pub items: Vec<(Matched, Standing)>,
    pub token: String,
}

impl Plan {
    /// The recordings this request erases.
    pub fn to_erase(&self) -> impl Iterator<Item = &Matched> {
        self.items
            .iter()
            .filter(|(_, s)| *s == Standing::Erase)
            .map(|(m, _)| m)
    }

    /// How many this request erases, and their original bytes.
    pub fn totals(&self) -> (u64, u64) {
        self.to_erase()
            .fold((0, 0), |(n, b), m| (n + 1, b + m.rec.identity.size))
    }

    /// What the `erase-request` audit entry says: counts, cases, and the
    /// selectors with numbers as pseudonyms — never a number.
    pub fn audit_reason(&self, key: &PseudonymKey) -> String {
        let (n, bytes) = self.totals();
        let held: Vec<&Vec<String>> = self
            .items
            .iter()
            .filter_map(|(_, s)| match s {
                Standing::Held(cases) => Some(cases),
                _ => None,
            })
            .collect();
        let mut cases: Vec<&str> = held
            .iter()
            .flat_map(|c| c.iter().map(String::as_str))
            .collect();
        cases.sort();
        cases.dedup();
        format!(
            "{n} to erase ({}), {} held (cases: {}), {} erased before; selector {}",
            human_bytes(bytes),
            held.len(),
            if cases.is_empty() {
                "-".to_string()
            } else {
                cases.join(", ")
            },
            self.items.len() - n as usize - held.len(),
            for_audit(&self.selectors, key)
        )
    }
}

/// Where `m` stands for `request`.
pub fn standing(m: &Matched, request: &str) -> Standing {
    match &m.rec.erasure {
        Some(e) if e.request == request => Standing::Erase,
        Some(e) => Standing::Other {
            request: e.request.clone(),
            done: e.erased_at.is_some(),
        },
        None if m.held() => Standing::Held(m.cases.clone()),
        None => Standing::Erase,
    }
}

/// The plan of `request` over the matches `items`.
fn plan(key: &PseudonymKey, request: &str, selectors: &[Selector], items: &[Matched]) -> Plan {
    let items: Vec<(Matched, Standing)> = items
        .iter()
        .map(|m| (m.clone(), standing(m, request)))
        .collect();
    let mut lines: Vec<String> = items
        .iter()
        .map(|(m, s)| format!("{}:{s:?}", m.rec.id))
        .collect();
    lines.sort();
    let described = describe(selectors);
    let mut parts: Vec<&[u8]> = vec![request.as_bytes(), described.as_bytes()];
    parts.extend(lines.iter().map(|l| l.as_bytes()));
    let token = hex::encode(key.mac("erase-confirm", &parts))[..TOKEN_LEN].to_string();
    Plan {
        request: request.to_string(),
        selectors: selectors.to_vec(),
        items,
        token,
    }
}

/// Checks a request reference: it names the request in the ledger and the
/// audit trail, so it must be there, on one line, and short.
pub fn check_reference(request: &str) -> Result<(), Error> {
    if request.trim().is_empty() || request.len() > 200 || request.chars().any(char::is_control) {
        return Err(Error::Usage(
            "--request needs a reference (a ticket or case number): one line, at most 200 bytes"
                .to_string(),
        ));
    }
    Ok(())
}

/// The preview: what `request` would erase now, and its token.
pub fn preview(
    ledger: &Ledger,
    key: &PseudonymKey,
    request: &str,
    selectors: &[Selector],
) -> Result<Plan, Error> {
    check_reference(request)?;
    let mut items = Vec::new();
    super::find::<Error>(ledger, selectors, Some(key), |m| {
        items.push(m.clone());
        Ok(())
    })?;
    Ok(plan(key, request, selectors, &items))
}

/// An erasure confirmed elsewhere — VICIdial's deletion queue (the admin's
/// GDPR purge): reserves what `selectors` cover now (holds win, and are in
/// the returned plan with their cases) for the daemon's erasure chore, or an
/// [`super::eraser::Eraser`] run, to carry out. A queue consumer names a
/// queue row's recordings by `Ledger::ids_of_stem(filename)` as
/// `Selector::Recording(id)`s, the request by the queue row, the actor as
/// itself; the row is done once `Ledger::erasure_of(request)` shows each
/// erased (held ones stay, and keep the row open).
pub fn request_confirmed(
    ledger: &Ledger,
    key: &PseudonymKey,
    request: &str,
    selectors: &[Selector],
    actor: &Actor,
    now: i64,
) -> Result<Plan, Error> {
    match confirm(ledger, key, request, selectors, None, actor, now)? {
        Confirmation::Reserved(plan) | Confirmation::Changed(plan) => Ok(plan),
    }
}

/// What a confirmation came to.
#[derive(Debug, Clone)]
pub enum Confirmation {
    /// The token matched: the plan's recordings are reserved for erasure.
    Reserved(Plan),
    /// The set changed since the preview (or the token is wrong): nothing
    /// was reserved; this is the new preview.
    Changed(Plan),
}

/// Confirms `request` with the preview's `token`: reserves what the plan
/// erases, checking holds and the set in the same transaction. `None` as
/// the token confirms whatever the plan is now (a request already confirmed
/// elsewhere, such as VICIdial's deletion queue).
pub fn confirm(
    ledger: &Ledger,
    key: &PseudonymKey,
    request: &str,
    selectors: &[Selector],
    token: Option<&str>,
    actor: &Actor,
    now: i64,
) -> Result<Confirmation, Error> {
    check_reference(request)?;
    let wide = widen(selectors, Some(key));
    let mut seen = None;
    let (_, reserved) = ledger.reserve_erasure(&wide, request, actor, now, |matched| {
        let p = plan(key, request, selectors, matched);
        let ok = token.is_none_or(|t| t == p.token) && p.totals().0 > 0;
        let reason = ok.then(|| p.audit_reason(key));
        seen = Some(p);
        reason
    })?;
    let plan = seen.unwrap_or_else(|| plan(key, request, selectors, &[]));
    Ok(if reserved {
        Confirmation::Reserved(plan)
    } else {
        Confirmation::Changed(plan)
    })
}
