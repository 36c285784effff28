//! Pages mounted beside the links under a path of their own (the
//! compliance console): `serve` hands them their requests and knows
//! nothing else of them, so the console can sit above it.

use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;

use super::State;
use super::body::Body;
use super::router::Asker;
use crate::config::Config;
use crate::ledger::Ledger;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::vicidial::db::VicidialDb;

/// What mounted pages are built from, once the daemon has it.
pub struct MountParts<'a> {
    pub config: &'a Arc<Config>,
    pub ledger: &'a Arc<Ledger>,
    pub store: &'a Option<Arc<dyn Store>>,
    pub db: &'a Option<Arc<VicidialDb>>,
    pub metrics: &'a Arc<Metrics>,
}

/// Builds the pages to mount (`None`: nothing to mount).
pub type Mount = Box<dyn FnOnce(MountParts<'_>) -> Option<Arc<dyn Pages>> + Send>;

/// Pages served beside the links under a path of their own (the console):
/// they get every request for their paths (any method, after the rate and
/// length checks) and answer it themselves; `serve` knows nothing of them.
#[async_trait::async_trait]
pub trait Pages: Send + Sync {
    /// True if `path` is theirs.
    fn owns(&self, path: &str) -> bool;
    /// Answers one request for a path they own.
    async fn answer(
        &self,
        state: Arc<State>,
        req: Request<Incoming>,
        asker: Asker,
    ) -> Response<Body>;
}
