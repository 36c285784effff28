//! A store that times every request into the daemon's metrics (the store
//! latency histogram of `/metrics`) and otherwise passes it through.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{
    ListedObject, ObjectInfo, ObjectReader, Purged, PutOutcome, PutRequest, Store, StoreError,
    Versioning,
};
use crate::metrics::Metrics;

/// `inner`, timed.
pub struct MeteredStore {
    inner: Arc<dyn Store>,
    metrics: Arc<Metrics>,
}

impl MeteredStore {
    pub fn new(inner: Arc<dyn Store>, metrics: Arc<Metrics>) -> MeteredStore {
        MeteredStore { inner, metrics }
    }

    async fn timed<T>(&self, op: &str, call: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let out = call.await;
        self.metrics.store_request(op, started.elapsed());
        out
    }
}

#[async_trait]
impl Store for MeteredStore {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    async fn put(&self, req: &PutRequest<'_>) -> Result<PutOutcome, StoreError> {
        self.timed("put", self.inner.put(req)).await
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        self.timed("head", self.inner.head(key)).await
    }

    async fn get(&self, key: &str, dest: &Path) -> Result<u64, StoreError> {
        self.timed("get", self.inner.get(key, dest)).await
    }

    /// Timed to the first byte's availability: the stream itself is the caller's.
    async fn open(&self, key: &str) -> Result<Option<ObjectReader>, StoreError> {
        self.timed("open", self.inner.open(key)).await
    }

    async fn presign_get(
        &self,
        key: &str,
        ttl: Duration,
        content_type: &str,
    ) -> Result<Option<String>, StoreError> {
        self.timed("presign", self.inner.presign_get(key, ttl, content_type))
            .await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.timed("delete", self.inner.delete(key)).await
    }

    async fn delete_many(
        &self,
        keys: &[String],
    ) -> Result<Vec<(String, Result<(), StoreError>)>, StoreError> {
        self.timed("delete", self.inner.delete_many(keys)).await
    }

    async fn set_legal_hold(&self, key: &str, on: bool) -> Result<(), StoreError> {
        self.inner.set_legal_hold(key, on).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ListedObject>, StoreError> {
        self.timed("list", self.inner.list(prefix)).await
    }

    async fn versioning(&self) -> Result<Versioning, StoreError> {
        self.inner.versioning().await
    }

    async fn delete_all_versions(
        &self,
        keys: &[String],
    ) -> Result<Vec<(String, Result<Purged, StoreError>)>, StoreError> {
        self.timed("delete", self.inner.delete_all_versions(keys))
            .await
    }
}
