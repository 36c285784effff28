//! One box's answers about recordings: a search through the ledger (the
//! selectors widened by the pseudonyms an erasure left), and one
//! recording's copies, holds and listens.

use std::path::Path;

use super::LocalCatalog;
use crate::catalog::{
    CatalogError, Copy, Cursor, Detail, Entry, HoldInfo, Listen, Page, Place, RecordingRef, Search,
};
use crate::error::Error;
use crate::ledger::LedgerError;
use crate::ledger::audit::{Action, AuditFilter};
use crate::recording::Recording;

impl LocalCatalog {
    pub(super) async fn search_ledger(&self, search: &Search) -> Result<Page, CatalogError> {
        let host = self.host().to_string();
        if search.host.as_ref().is_some_and(|h| *h != host) {
            return Ok(Page::default());
        }
        let mut search = search.clone();
        search.selectors = self.widen(&search.selectors)?;
        let page = self.call(move |l| Ok(l.search(&search)?)).await?;
        Ok(Page {
            entries: page
                .rows
                .iter()
                .map(|m| Entry::of(&host, &m.rec, m.cases.clone()))
                .collect(),
            total: page.total,
            next: page.next.map(|c| Cursor {
                host: host.clone(),
                ..c
            }),
        })
    }

    pub(super) async fn detail(&self, which: &RecordingRef) -> Result<Detail, CatalogError> {
        let not_found = || CatalogError::NotFound(format!("no recording {which}"));
        if which.host != self.host() {
            return Err(not_found());
        }
        let (id, host) = (which.id, self.host().to_string());
        let staging = self.config.spool.staging.clone();
        let found = self
            .call(move |l| {
                let rec = match l.recording(id) {
                    Ok(r) => r,
                    Err(LedgerError::NoSuchRecording(_)) => return Ok(None),
                    Err(e) => return Err(e.into()),
                };
                let cases = l.cases_holding(id)?;
                let mut holds = Vec::new();
                for case in &cases {
                    holds.extend(
                        l.holds_of_case(case)?
                            .into_iter()
                            .filter(|h| h.released_at.is_none()),
                    );
                }
                let filter = AuditFilter {
                    action: Some(Action::Listen.as_str().to_string()),
                    recordings: Some(vec![id]),
                    ..AuditFilter::default()
                };
                let mut listens = Vec::new();
                l.audit_entries::<Error>(&filter, |e| {
                    listens.push(Listen {
                        at: e.at,
                        user: e.user.clone(),
                        what: e.reason.clone(),
                    });
                    Ok(())
                })?;
                let copies = copies_of(&host, &rec, &staging);
                Ok(Some((rec, cases, holds, listens, copies)))
            })
            .await?;
        let (rec, cases, holds, listens, copies) = found.ok_or_else(not_found)?;
        Ok(Detail {
            entry: Entry::of(self.host(), &rec, cases),
            copies,
            holds: holds.into_iter().map(|h| HoldInfo::of(h, None)).collect(),
            listens,
        })
    }
}

/// Every copy of `rec` on its box `host` (it has to look: a file the
/// ledger says is local may be gone), and its object in the store.
pub fn copies_of(host: &str, rec: &Recording, staging: &Path) -> Vec<Copy> {
    let mut out = Vec::new();
    let copy = |place| Copy {
        host: host.to_string(),
        place,
    };
    if rec.state.is_local() && std::fs::symlink_metadata(&rec.path).is_ok() {
        out.push(copy(Place::Spool {
            path: rec.path.display().to_string(),
        }));
    }
    let staged = staging.join(format!("{}.obj", rec.id));
    if staged.exists() {
        out.push(copy(Place::Staging {
            path: staged.display().to_string(),
        }));
    }
    if let Some(key) = &rec.object_key
        && (rec.may_be_stored() || rec.deleted_at.is_some())
        && !rec.is_erased()
    {
        out.push(copy(Place::Store { key: key.clone() }));
    }
    out
}
