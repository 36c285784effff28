//! The catalog of one box: its ledger answers, through `governance` for
//! every change (the same rules as the commands had: a hold checked in the
//! transaction that reserves a deletion, an erasure's token bound to its
//! set). A box without `[fleet]` behaves exactly as before the catalog.
//!
//! - `recordings`: search and one recording's detail;
//! - `changes`: holds and erasure;
//! - `report`: retention's preview and the box's overview.

use std::sync::Arc;

use async_trait::async_trait;

use super::{
    Actor, AuditPage, AuditQuery, BoxOverview, Catalog, CatalogError, Coverage, Detail,
    ErasureConfirmation, ErasurePlan, ErasureProgress, HoldInfo, HoldPlacement, HoldRelease,
    NewHold, Page, RecordingRef, RetentionChange, RetentionImpact, RetentionView, Rules, Scope,
    Search, Selector,
};
use crate::config::Config;
use crate::error::Error;
use crate::governance::requests::key;
use crate::ledger::Ledger;
use crate::recording::pseudonym::PseudonymKey;
use crate::store::Store;

mod audit;
mod changes;
mod recordings;
mod report;

pub use changes::hold_aftermath;
pub use recordings::copies_of;
pub use report::{HORIZON, box_overview, retention_impact};

/// One box's catalog: its ledger, its config (host name, policy, spool),
/// and the store where hold copies go.
pub struct LocalCatalog {
    ledger: Arc<Ledger>,
    config: Arc<Config>,
    /// `None`: opened from the config when a hold change needs it.
    store: Option<Arc<dyn Store>>,
}

impl LocalCatalog {
    /// The catalog of the box `config` describes, over its open `ledger`.
    pub fn new(config: Arc<Config>, ledger: Arc<Ledger>) -> LocalCatalog {
        LocalCatalog {
            ledger,
            config,
            store: None,
        }
    }

    /// Uses `store` (the daemon's) instead of opening one for hold copies.
    pub fn with_store(mut self, store: Option<Arc<dyn Store>>) -> LocalCatalog {
        self.store = store;
        self
    }

    fn host(&self) -> &str {
        &self.config.daemon.host
    }

    /// `selectors` widened by the pseudonyms an erasure would have left in
    /// place of their numbers, leads and names, under every key of this
    /// box's key file (a fleet's catalog matches through them too).
    pub fn widen(&self, selectors: &[Selector]) -> Result<Vec<Selector>, CatalogError> {
        let keys = key::load_all(&self.config.ledger.path)?;
        Ok(crate::governance::requests::widen_all(selectors, &keys))
    }

    /// The pseudonym key, made now if this box never had one.
    fn key_or_create(&self) -> Result<PseudonymKey, CatalogError> {
        Ok(key::load_or_create(&self.config.ledger.path)?)
    }

    /// Runs ledger calls off the async workers.
    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Ledger) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, CatalogError> {
        Ok(self.ledger.call(f).await?)
    }

    /// The store for hold copies and the Object Lock mirror, if configured.
    async fn store(&self) -> Result<Option<Arc<dyn Store>>, Error> {
        match (&self.store, &self.config.store) {
            (Some(s), _) => Ok(Some(s.clone())),
            (None, Some(c)) => Ok(Some(crate::store::open(c).await?)),
            (None, None) => Ok(None),
        }
    }

    /// The config this catalog was made from.
    pub(crate) fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// The store hold copies go to (`None` without one).
    pub(crate) async fn hold_store(&self) -> Result<Option<Arc<dyn Store>>, Error> {
        self.store().await
    }
}

#[async_trait]
impl Catalog for LocalCatalog {
    fn scope(&self) -> Scope {
        Scope::Box {
            host: self.host().to_string(),
        }
    }

    async fn search(&self, search: &Search) -> Result<Page, CatalogError> {
        self.search_ledger(search).await
    }

    async fn recording(&self, which: &RecordingRef) -> Result<Detail, CatalogError> {
        self.detail(which).await
    }

    async fn holds(&self, case: Option<&str>) -> Result<Vec<HoldInfo>, CatalogError> {
        self.hold_list(case).await
    }

    async fn hold_preview(&self, selectors: &[Selector]) -> Result<Coverage, CatalogError> {
        self.preview_hold(selectors).await
    }

    async fn place_hold(
        &self,
        actor: &Actor,
        hold: &NewHold,
    ) -> Result<HoldPlacement, CatalogError> {
        self.add_hold(actor, hold).await
    }

    async fn release_hold(
        &self,
        actor: &Actor,
        case: &str,
        reason: &str,
    ) -> Result<HoldRelease, CatalogError> {
        self.end_hold(actor, case, reason).await
    }

    async fn erasure_preview(
        &self,
        request: &str,
        selectors: &[Selector],
    ) -> Result<ErasurePlan, CatalogError> {
        self.plan_erasure(request, selectors).await
    }

    async fn erasure_confirm(
        &self,
        actor: &Actor,
        request: &str,
        selectors: &[Selector],
        token: Option<&str>,
    ) -> Result<ErasureConfirmation, CatalogError> {
        self.confirm_erasure(actor, request, selectors, token).await
    }

    async fn erasure_progress(&self, request: &str) -> Result<ErasureProgress, CatalogError> {
        self.erasure_state(request).await
    }

    async fn retention(&self) -> Result<RetentionView, CatalogError> {
        Ok(RetentionView {
            rules: Rules::of(&self.config.retention),
            source: format!("[retention] in {}", self.config.source.display()),
            editable: false,
            version: None,
            set_by: None,
            set_at: None,
        })
    }

    async fn retention_preview(
        &self,
        change: &RetentionChange,
    ) -> Result<RetentionImpact, CatalogError> {
        let (before, host) = (self.config.retention.clone(), self.host().to_string());
        let after = Rules::of(&before).changed(change).applied_to(&before);
        let now = crate::units::now_secs();
        let campaign = change.campaign.clone();
        self.call(move |l| {
            retention_impact(l, &host, &before, &after, campaign.as_deref(), now)
                .map_err(Error::from)
        })
        .await
    }

    async fn retention_apply(
        &self,
        _actor: &Actor,
        _change: &RetentionChange,
    ) -> Result<RetentionView, CatalogError> {
        Err(CatalogError::refused(format!(
            "this box's retention policy is [retention] in {}: edit it there and reload \
             (recvault never writes its config); with [fleet] the policy lives in the fleet's database",
            self.config.source.display()
        )))
    }

    async fn overview(&self) -> Result<Vec<BoxOverview>, CatalogError> {
        let config = self.config.clone();
        let one = self.call(move |l| box_overview(l, &config)).await?;
        Ok(vec![one])
    }

    async fn audit(&self, query: &AuditQuery) -> Result<AuditPage, CatalogError> {
        self.audit_page(query).await
    }
}

#[cfg(test)]
mod tests;
