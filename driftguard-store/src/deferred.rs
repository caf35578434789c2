//! A store wrapper that holds writes back: a one-shot scan writes nothing unless it succeeds.
//!
//! [`DeferredStore`] reads from the store it wraps and keeps the batches committed to it in
//! memory; the caller takes them with [`DeferredStore::take`] once the scan succeeded and
//! commits them to the real store. Every other method, the trait's provided ones included, goes
//! to the wrapped store, so it answers exactly like that store (with the batches not yet
//! written left out).

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use driftguard_core::id::ResourceId;
use driftguard_core::ports::{DriftStore, PruneStats, ScanBatch, ScanSummary, StoreError};
use driftguard_core::query::{DriftQuery, EventQuery, Page};
use driftguard_core::state::{Drift, DriftEvent, DriftRecord};

/// Reads from another store and keeps the batches written until [`DeferredStore::take`].
pub struct DeferredStore {
    inner: Arc<dyn DriftStore>,
    pending: Mutex<Vec<ScanBatch>>,
}

impl std::fmt::Debug for DeferredStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeferredStore({} batches kept)", self.lock().len())
    }
}

impl DeferredStore {
    /// Reads from `inner`.
    pub fn new(inner: Arc<dyn DriftStore>) -> Self {
        DeferredStore {
            inner,
            pending: Mutex::new(Vec::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<ScanBatch>> {
        self.pending.lock().expect("pending lock is never poisoned")
    }

    /// The batches written so far, oldest first (they are no longer kept).
    pub fn take(&self) -> Vec<ScanBatch> {
        std::mem::take(&mut *self.lock())
    }
}

#[async_trait]
impl DriftStore for DeferredStore {
    async fn records(&self, environment: &str) -> Result<Vec<DriftRecord>, StoreError> {
        self.inner.records(environment).await
    }

    /// Keeps the batch (see [`DeferredStore::take`]); writes nothing.
    async fn commit(&self, batch: &ScanBatch) -> Result<(), StoreError> {
        self.lock().push(batch.clone());
        Ok(())
    }

    async fn drifts(&self, query: &DriftQuery) -> Result<Page<Drift>, StoreError> {
        self.inner.drifts(query).await
    }

    async fn events(&self, query: &EventQuery) -> Result<Page<DriftEvent>, StoreError> {
        self.inner.events(query).await
    }

    async fn scans(
        &self,
        environment: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ScanSummary>, StoreError> {
        self.inner.scans(environment, limit).await
    }

    async fn prune(&self, before: DateTime<Utc>) -> Result<PruneStats, StoreError> {
        self.inner.prune(before).await
    }

    async fn record(&self, id: &ResourceId) -> Result<Option<DriftRecord>, StoreError> {
        self.inner.record(id).await
    }

    async fn drift(&self, episode: &str) -> Result<Option<Drift>, StoreError> {
        self.inner.drift(episode).await
    }

    async fn history(&self, id: &ResourceId, limit: usize) -> Result<Vec<DriftEvent>, StoreError> {
        self.inner.history(id, limit).await
    }

    async fn health(&self) -> Result<(), StoreError> {
        self.inner.health().await
    }

    async fn delivered_until(&self, notifier: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.inner.delivered_until(notifier).await
    }

    async fn epoch(&self, environment: &str) -> Result<Option<u64>, StoreError> {
        self.inner.epoch(environment).await
    }

    async fn set_delivered_until(
        &self,
        notifier: &str,
        until: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.inner.set_delivered_until(notifier, until).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_probe::{check_forwards_everything, Probe};

    #[tokio::test]
    async fn forwards_every_method_but_commit() {
        let probe = Arc::new(Probe::default());
        let store = DeferredStore::new(probe.clone());
        check_forwards_everything(&store, &probe).await;
        // commit keeps the batch, in order, until taken
        let b = |env: &str| ScanBatch {
            environment: env.into(),
            deletes: vec![crate::test_probe::id()],
            ..ScanBatch::default()
        };
        store.commit(&b("one")).await.expect("kept");
        store.commit(&b("two")).await.expect("kept");
        assert!(probe.take_calls().is_empty(), "nothing written");
        assert_eq!(store.take(), vec![b("one"), b("two")]);
        assert!(store.take().is_empty(), "taken once");
    }
}
