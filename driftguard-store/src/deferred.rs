//! A store wrapper that holds writes back: a one-shot scan writes nothing unless it succeeds.
//!
//! [`DeferredStore`] reads from the store it wraps and keeps the batches committed to it in
//! memory; the caller takes them with [`DeferredStore::take`] once the scan succeeded and
//! commits them to the real store. Every other method, the trait's provided ones included, goes
//! to the wrapped store, so it answers exactly like that store (with the batches not yet
//! written left out).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use driftguard_core::audit::AuditSnapshot;
use driftguard_core::id::ResourceId;
use driftguard_core::ports::{DriftStore, PruneStats, ScanBatch, ScanSummary, StoreError};
use driftguard_core::query::{DriftQuery, EventQuery, OpenTally, Page};
use driftguard_core::state::{Drift, DriftEvent, DriftRecord};

/// Reads from another store and keeps the batches written until [`DeferredStore::take`] (and
/// the audit index's changes until [`DeferredStore::take_audit`]).
pub struct DeferredStore {
    inner: Arc<dyn DriftStore>,
    pending: Mutex<Vec<ScanBatch>>,
    audit: Mutex<BTreeMap<String, AuditSnapshot>>,
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
            audit: Mutex::new(BTreeMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<ScanBatch>> {
        self.pending.lock().expect("pending lock is never poisoned")
    }

    /// The batches written so far, oldest first (they are no longer kept).
    pub fn take(&self) -> Vec<ScanBatch> {
        std::mem::take(&mut *self.lock())
    }

    fn audit(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, AuditSnapshot>> {
        self.audit.lock().expect("pending lock is never poisoned")
    }

    /// The audit index changes saved so far, per environment, merged (they are no longer
    /// kept): save them to the real store after the batches.
    pub fn take_audit(&self) -> Vec<(String, AuditSnapshot)> {
        std::mem::take(&mut *self.audit()).into_iter().collect()
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

    async fn scans_at(
        &self,
        environments: &[String],
        times: &[DateTime<Utc>],
    ) -> Result<Vec<ScanSummary>, StoreError> {
        self.inner.scans_at(environments, times).await
    }

    async fn open_tallies(&self, environments: &[String]) -> Result<Vec<OpenTally>, StoreError> {
        self.inner.open_tallies(environments).await
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

    /// The wrapped store's index with the changes kept here applied.
    async fn audit_index(&self, environment: &str) -> Result<AuditSnapshot, StoreError> {
        let mut snap = self.inner.audit_index(environment).await?;
        if let Some(kept) = self.audit().get(environment) {
            snap.apply(kept);
        }
        Ok(snap)
    }

    /// Reads the wrapped store.
    async fn actions(
        &self,
        environment: Option<&str>,
        limit: usize,
    ) -> Result<Vec<driftguard_core::actions::PersonAction>, StoreError> {
        self.inner.actions(environment, limit).await
    }

    /// Goes to the wrapped store: a person's action is not a scan's write.
    async fn record_actions(
        &self,
        actions: &[driftguard_core::actions::PersonAction],
    ) -> Result<(), StoreError> {
        self.inner.record_actions(actions).await
    }

    async fn acknowledgements(
        &self,
        environment: Option<&str>,
    ) -> Result<Vec<driftguard_core::ack::Acknowledgement>, StoreError> {
        self.inner.acknowledgements(environment).await
    }

    /// Goes to the wrapped store: an acknowledgement is a person's act, not a scan's write.
    async fn save_acknowledgements(
        &self,
        acks: &[driftguard_core::ack::Acknowledgement],
    ) -> Result<(), StoreError> {
        self.inner.save_acknowledgements(acks).await
    }

    /// Keeps the changes (see [`DeferredStore::take_audit`]); writes nothing.
    async fn save_audit_index(
        &self,
        environment: &str,
        changes: &AuditSnapshot,
    ) -> Result<(), StoreError> {
        let mut kept = self.audit();
        let merged = kept.entry(environment.to_owned()).or_default();
        for o in &changes.objects {
            merged.objects.retain(|x| x.object != o.object);
            merged.objects.push(o.clone());
        }
        for c in &changes.cursors {
            merged.cursors.retain(|x| x.source != c.source);
            merged.cursors.push(c.clone());
        }
        Ok(())
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
        // the audit index's changes are kept too, and read back over the wrapped store's
        let audit = crate::test_probe::audit();
        store.save_audit_index("prod", &audit).await.expect("kept");
        assert!(probe.take_calls().is_empty(), "nothing written");
        let mut read = store.audit_index("prod").await.expect("reads");
        assert_eq!(probe.take_calls(), vec!["audit_index"]);
        let mut want = crate::test_probe::audit();
        want.apply(&audit);
        read.objects.sort_by(|a, b| a.object.cmp(&b.object));
        assert_eq!(read, want);
        assert_eq!(store.take_audit(), vec![("prod".to_owned(), audit)]);
        assert!(store.take_audit().is_empty(), "taken once");
    }
}
