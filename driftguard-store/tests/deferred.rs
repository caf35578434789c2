//! The conformance suite against `DeferredStore`, through an adapter whose `commit` defers the
//! batch and then at once commits what `take` hands back to the inner store (and likewise
//! for the audit index's saves and `take_audit`): every read goes
//! through the `DeferredStore`'s forwarding, over the in-memory store and over SQLite.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use driftguard_core::audit::AuditSnapshot;
use driftguard_core::id::ResourceId;
use driftguard_core::ports::{DriftStore, PruneStats, ScanBatch, ScanSummary, StoreError};
use driftguard_core::query::{DriftQuery, EventQuery, Page};
use driftguard_core::state::{Drift, DriftEvent, DriftRecord};
use driftguard_store::DeferredStore;

/// A `DeferredStore` whose batches are written as soon as they are committed. Every method,
/// provided ones included, goes to the `DeferredStore` (not to the trait's defaults).
struct CommitThrough {
    deferred: DeferredStore,
    inner: Arc<dyn DriftStore>,
    /// One commit at a time through defer-and-take: with concurrent writers (the conformance
    /// suite has them) another writer's batch could otherwise be taken along with this one.
    commits: tokio::sync::Mutex<()>,
}

impl CommitThrough {
    fn over(inner: Arc<dyn DriftStore>) -> Arc<dyn DriftStore> {
        Arc::new(CommitThrough {
            deferred: DeferredStore::new(inner.clone()),
            inner,
            commits: tokio::sync::Mutex::new(()),
        })
    }
}

#[async_trait]
impl DriftStore for CommitThrough {
    async fn records(&self, environment: &str) -> Result<Vec<DriftRecord>, StoreError> {
        self.deferred.records(environment).await
    }

    async fn commit(&self, batch: &ScanBatch) -> Result<(), StoreError> {
        let _one_at_a_time = self.commits.lock().await;
        self.deferred.commit(batch).await?;
        let taken = self.deferred.take();
        assert_eq!(
            taken.as_slice(),
            std::slice::from_ref(batch),
            "kept as given"
        );
        for b in &taken {
            self.inner.commit(b).await?;
        }
        Ok(())
    }

    async fn drifts(&self, query: &DriftQuery) -> Result<Page<Drift>, StoreError> {
        self.deferred.drifts(query).await
    }

    async fn events(&self, query: &EventQuery) -> Result<Page<DriftEvent>, StoreError> {
        self.deferred.events(query).await
    }

    async fn scans(
        &self,
        environment: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ScanSummary>, StoreError> {
        self.deferred.scans(environment, limit).await
    }

    async fn prune(&self, before: DateTime<Utc>) -> Result<PruneStats, StoreError> {
        self.deferred.prune(before).await
    }

    async fn record(&self, id: &ResourceId) -> Result<Option<DriftRecord>, StoreError> {
        self.deferred.record(id).await
    }

    async fn drift(&self, episode: &str) -> Result<Option<Drift>, StoreError> {
        self.deferred.drift(episode).await
    }

    async fn history(&self, id: &ResourceId, limit: usize) -> Result<Vec<DriftEvent>, StoreError> {
        self.deferred.history(id, limit).await
    }

    async fn health(&self) -> Result<(), StoreError> {
        self.deferred.health().await
    }

    async fn delivered_until(&self, notifier: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.deferred.delivered_until(notifier).await
    }

    async fn epoch(&self, environment: &str) -> Result<Option<u64>, StoreError> {
        self.deferred.epoch(environment).await
    }

    async fn set_delivered_until(
        &self,
        notifier: &str,
        until: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.deferred.set_delivered_until(notifier, until).await
    }

    async fn audit_index(&self, environment: &str) -> Result<AuditSnapshot, StoreError> {
        self.deferred.audit_index(environment).await
    }

    async fn save_audit_index(
        &self,
        environment: &str,
        changes: &AuditSnapshot,
    ) -> Result<(), StoreError> {
        self.deferred.save_audit_index(environment, changes).await?;
        let taken = self.deferred.take_audit();
        assert_eq!(
            taken,
            vec![(environment.to_owned(), changes.clone())],
            "kept as given"
        );
        for (env, c) in &taken {
            self.inner.save_audit_index(env, c).await?;
        }
        Ok(())
    }

    async fn actions(
        &self,
        environment: Option<&str>,
        limit: usize,
    ) -> Result<Vec<driftguard_core::actions::PersonAction>, StoreError> {
        self.deferred.actions(environment, limit).await
    }

    async fn record_actions(
        &self,
        actions: &[driftguard_core::actions::PersonAction],
    ) -> Result<(), StoreError> {
        self.deferred.record_actions(actions).await
    }

    async fn acknowledgements(
        &self,
        environment: Option<&str>,
    ) -> Result<Vec<driftguard_core::ack::Acknowledgement>, StoreError> {
        self.deferred.acknowledgements(environment).await
    }

    async fn save_acknowledgements(
        &self,
        acks: &[driftguard_core::ack::Acknowledgement],
    ) -> Result<(), StoreError> {
        self.deferred.save_acknowledgements(acks).await
    }
}

/// Over the in-memory store.
mod over_memory {
    use super::*;
    use driftguard_core::memory::MemoryStore;

    async fn fresh() -> Arc<dyn DriftStore> {
        CommitThrough::over(Arc::new(MemoryStore::new()))
    }

    driftguard_store::conformance_tests!(fresh);
}

/// Over SQLite (which overrides `record`, `drift`, `health` and the delivery marks).
mod over_sqlite {
    use super::*;
    use driftguard_store::SqliteStore;

    async fn fresh() -> Arc<dyn DriftStore> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.keep().join("store.db");
        CommitThrough::over(Arc::new(SqliteStore::open(path).expect("opens")))
    }

    driftguard_store::conformance_tests!(fresh);
}

/// What a one-shot scan relies on: nothing reaches the inner store until taken.
#[tokio::test]
async fn nothing_is_written_until_taken() {
    let inner: Arc<dyn DriftStore> = Arc::new(driftguard_core::memory::MemoryStore::new());
    let deferred = DeferredStore::new(inner.clone());
    let batches = driftguard_store::conformance::dataset();
    for b in &batches {
        deferred.commit(b).await.expect("kept");
    }
    assert!(inner.records("prod").await.expect("records").is_empty());
    assert!(deferred.records("prod").await.expect("records").is_empty());
    assert_eq!(deferred.scans(None, 10).await.expect("scans"), vec![]);
    let taken = deferred.take();
    assert_eq!(taken, batches, "every batch, in order");
    for b in &taken {
        inner.commit(b).await.expect("commits");
    }
    assert!(!deferred.records("prod").await.expect("records").is_empty());
}
