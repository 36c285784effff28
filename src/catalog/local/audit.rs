//! One box's audit trail for the catalog: its entries filtered and the
//! newest kept, and its chain verified.

use std::collections::VecDeque;

use super::LocalCatalog;
use crate::catalog::{AuditLine, AuditPage, AuditQuery, CatalogError, ChainStatus};
use crate::error::Error;
use crate::ledger::audit::AuditFilter;

impl LocalCatalog {
    pub(super) async fn audit_page(&self, query: &AuditQuery) -> Result<AuditPage, CatalogError> {
        let host = self.host().to_string();
        if query.recording.as_ref().is_some_and(|r| r.host != host) {
            return Ok(AuditPage::default());
        }
        let query = query.clone();
        self.call(move |l| {
            let filter = AuditFilter {
                since: query.from,
                case_id: query.case.clone(),
                action: query.action.clone(),
                recordings: query.recording.as_ref().map(|r| vec![r.id]),
            };
            let user = query.user.as_ref().map(|u| u.to_lowercase());
            let limit = query.limit.max(1);
            let mut kept = VecDeque::with_capacity(limit);
            let mut truncated = false;
            l.audit_entries::<Error>(&filter, |e| {
                if query.to.is_some_and(|to| e.at >= to)
                    || user
                        .as_ref()
                        .is_some_and(|u| !e.user.to_lowercase().contains(u.as_str()))
                {
                    return Ok(());
                }
                if kept.len() == limit {
                    kept.pop_front();
                    truncated = true;
                }
                kept.push_back(AuditLine {
                    host: host.clone(),
                    id: e.id,
                    at: e.at,
                    user: e.user.clone(),
                    action: e.action.clone(),
                    case_id: e.case_id.clone(),
                    subject: e.subject.clone(),
                    reason: e.reason.clone(),
                    recording_id: e.recording_id,
                });
                Ok(())
            })?;
            let verified = l
                .verify_audit_chain()
                .map(|v| (v.entries, v.head))
                .map_err(|e| e.to_string());
            Ok(AuditPage {
                lines: kept.into_iter().rev().collect(),
                truncated,
                chains: vec![ChainStatus { host, verified }],
            })
        })
        .await
    }
}
