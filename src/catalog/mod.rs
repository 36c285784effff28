//! The catalog: one interface to "what recordings exist and what may happen
//! to them". One box's ledger answers it ([`LocalCatalog`]); a fleet's
//! shared database answers it for every box (`fleet::FleetCatalog`). The
//! operator commands (find, hold, erase, export's selection, status, ls)
//! and the console ask a `dyn Catalog` and never know which one they got.
//!
//! Recordings are named by (host, id) everywhere ([`RecordingRef`]): a
//! single box answers with its own `[daemon] host`. Everything in and out
//! is a plain value (no database types); every failure says whether trying
//! again later can help ([`CatalogError::is_retryable`]).
//!
//! - `entry`: a recording's facts, copies and listens; `holds`, `erasure`,
//!   `retention`, `overview`: the rest of what the trait answers;
//! - `local`: the answers of one box, over its ledger and `governance`.
//!
//! Uses `ledger`, `governance`, `recovery` (hold copies), `recording`,
//! `config`; `fleet` implements it; nothing below `commands` uses it.

use std::sync::Arc;

use async_trait::async_trait;
use futures_util::stream::{self, BoxStream, StreamExt};

pub mod audit;
pub mod entry;
pub mod erasure;
mod error;
pub mod holds;
pub mod local;
pub mod overview;
pub mod retention;

pub use audit::{AuditLine, AuditPage, AuditQuery, ChainStatus};
pub use entry::{Copy, Detail, Entry, Listen, Place, RecordingRef};
pub use erasure::{
    CopyOutcome, ErasureConfirmation, ErasureItem, ErasureLine, ErasurePlan, ErasureProgress,
    OpenHost, Standing,
};
pub use error::CatalogError;
pub use holds::{Aftermath, Coverage, HoldInfo, HoldPlacement, HoldRelease, Mirrored, NewHold};
pub use local::LocalCatalog;
pub use overview::{BoxOverview, Disk, StateCount, StoreHealth};
pub use retention::{ImpactRow, RetentionChange, RetentionImpact, RetentionView, Rules};

pub use crate::ledger::audit::Actor;
pub use crate::ledger::holds::Selector;
pub use crate::ledger::search::{Cursor, CursorValue, Paging, Search, Sort, SortKey, StateFilter};

/// What a catalog answers for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// One box, the one asking (`[daemon] host`).
    Box { host: String },
    /// Every box of a fleet; `host` is the one asking.
    Fleet { host: String },
}

impl Scope {
    /// The box asking.
    pub fn host(&self) -> &str {
        match self {
            Scope::Box { host } | Scope::Fleet { host } => host,
        }
    }

    /// True for a fleet.
    pub fn is_fleet(&self) -> bool {
        matches!(self, Scope::Fleet { .. })
    }
}

/// One page of a search.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    pub entries: Vec<Entry>,
    /// How many match in all (offset paging).
    pub total: Option<u64>,
    /// Where the next page starts, if there may be one (cursor paging).
    pub next: Option<Cursor>,
}

/// "What recordings exist and what may happen to them", for one box or a
/// fleet. Object-safe: share it as `Arc<dyn Catalog>`.
#[async_trait]
pub trait Catalog: Send + Sync {
    /// What this catalog answers for.
    fn scope(&self) -> Scope;

    /// The audit entries `query` matches, newest first, and whether each
    /// chain verifies. A catalog that cannot read trails refuses.
    async fn audit(&self, query: &AuditQuery) -> Result<AuditPage, CatalogError> {
        let _ = query;
        Err(CatalogError::refused(
            "this catalog cannot show the audit trail; use `recvault audit` on each box",
        ))
    }

    /// One page of the recordings `search` matches, sorted, with the cases
    /// holding each. A phone, lead or name an erasure replaced is matched
    /// through its pseudonym where this box can compute it.
    async fn search(&self, search: &Search) -> Result<Page, CatalogError>;

    /// One recording: its facts, every copy and where, the holds on it,
    /// who listened and when.
    async fn recording(&self, which: &RecordingRef) -> Result<Detail, CatalogError>;

    /// Every hold (active first, then newest first), or a case's holds
    /// (refused if it has none), each with what it covers.
    async fn holds(&self, case: Option<&str>) -> Result<Vec<HoldInfo>, CatalogError>;

    /// What a hold of `selectors` would cover now, per box.
    async fn hold_preview(&self, selectors: &[Selector]) -> Result<Coverage, CatalogError>;

    /// Places a hold: from its commit on, nothing it covers is deleted
    /// anywhere (but what a deletion had reserved before, which it counts).
    async fn place_hold(
        &self,
        actor: &Actor,
        hold: &NewHold,
    ) -> Result<HoldPlacement, CatalogError>;

    /// Releases every active hold of `case`; retention resumes.
    async fn release_hold(
        &self,
        actor: &Actor,
        case: &str,
        reason: &str,
    ) -> Result<HoldRelease, CatalogError>;

    /// What erasure request `request` over `selectors` would erase now,
    /// where each copy is, what a hold keeps, and the confirming token.
    async fn erasure_preview(
        &self,
        request: &str,
        selectors: &[Selector],
    ) -> Result<ErasurePlan, CatalogError>;

    /// Confirms a request with its preview's token (`None`: whatever it
    /// covers now, as VICIdial's purge queue confirms): reserves the set in
    /// the transaction that checks the holds, or says it changed. Carrying
    /// it out is the daemons' (or `recvault erase`'s).
    async fn erasure_confirm(
        &self,
        actor: &Actor,
        request: &str,
        selectors: &[Selector],
        token: Option<&str>,
    ) -> Result<ErasureConfirmation, CatalogError>;

    /// Where a confirmed request stands (its report once complete).
    async fn erasure_progress(&self, request: &str) -> Result<ErasureProgress, CatalogError>;

    /// The retention policy in force.
    async fn retention(&self) -> Result<RetentionView, CatalogError>;

    /// What `change` would delete (and spare), where and when. Changes nothing.
    async fn retention_preview(
        &self,
        change: &RetentionChange,
    ) -> Result<RetentionImpact, CatalogError>;

    /// Makes `change` (refused where the policy is a config file's).
    async fn retention_apply(
        &self,
        actor: &Actor,
        change: &RetentionChange,
    ) -> Result<RetentionView, CatalogError>;

    /// Every box: backlog, disk, store health, last errors, heartbeat.
    async fn overview(&self) -> Result<Vec<BoxOverview>, CatalogError>;
}

/// Every recording `search` matches, in its order, fetched `batch` at a
/// time by cursor (its paging is ignored): a CSV download or an export
/// walks a million results without holding them.
pub fn stream(
    catalog: Arc<dyn Catalog>,
    search: Search,
    batch: u32,
) -> BoxStream<'static, Result<Entry, CatalogError>> {
    let start = Some(Search {
        paging: Paging::After {
            cursor: None,
            limit: batch.max(1),
        },
        ..search
    });
    stream::unfold(start, move |next| {
        let catalog = catalog.clone();
        async move {
            let search = next?;
            let page = match catalog.search(&search).await {
                Ok(page) => page,
                Err(e) => return Some((vec![Err(e)], None)),
            };
            let after = page.next.map(|cursor| Search {
                paging: Paging::After {
                    cursor: Some(cursor),
                    limit: search.paging.limit(),
                },
                ..search
            });
            Some((page.entries.into_iter().map(Ok).collect(), after))
        }
    })
    .flat_map(stream::iter)
    .boxed()
}
