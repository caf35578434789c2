//! A store wrapper that keeps the server detecting while its database is down.
//!
//! When a commit fails because the store is unavailable, the batch is queued (bounded, in order)
//! and acknowledged; a background task retries the queue with exponential backoff. While the
//! queue is not empty every later batch joins it (so order is kept), [`BufferedStore::status`]
//! is degraded (with the cause, one line) and [`DriftStore::health`] fails. Record reads
//! (`records`, `record`) overlay the queued batches on what the store returns, so the next scan
//! continues from what was acknowledged and emits no event twice. While the store cannot be
//! read they fail: the buffer keeps no copy of the records (a scanner keeps its own and goes
//! on from them, see [`driftguard_core::scanner`]; a copy here cost as much memory as the
//! scanner's). Every other method, the trait's provided ones included (the audit index's
//! too), goes to the wrapped store.
//!
//! Batches are kept in memory: they survive a database outage, not the loss of this process.
//!
//! A queued batch whose leadership epoch the store refuses when it is retried
//! ([`StoreError::Conflict`], see [`driftguard_core::fence`]: another replica leads its
//! environment now) can never be written: it is dropped with an error in the log.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use driftguard_core::audit::AuditSnapshot;
use driftguard_core::id::ResourceId;
use driftguard_core::ports::{DriftStore, PruneStats, ScanBatch, ScanSummary, StoreError};
use driftguard_core::query::{DriftQuery, EventQuery, OpenTally, Page};
use driftguard_core::retry::{self, Backoff};
use driftguard_core::state::{Drift, DriftEvent, DriftRecord};
use tokio::sync::Notify;

/// Health of a buffered store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BufferHealth {
    /// Everything acknowledged is in the store.
    Healthy,
    /// Batches wait for the store.
    Degraded {
        /// Batches queued.
        queued: usize,
        /// The last error met with its causes, on one line (`store unavailable: cannot open
        /// /var/lib/driftguard/driftguard.db: unable to open database file`): what a person
        /// needs to act on.
        last_error: String,
    },
}

#[derive(Default)]
struct State {
    queue: VecDeque<ScanBatch>,
    last_error: Option<String>,
}

/// Wraps a store with an in-order, bounded write buffer and background retries.
pub struct BufferedStore {
    inner: Arc<dyn DriftStore>,
    state: Arc<Mutex<State>>,
    /// Held while a batch is written to the inner store, so batches land in order.
    writer: Arc<tokio::sync::Mutex<()>>,
    wake: Arc<Notify>,
    capacity: usize,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for BufferedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BufferedStore({:?})", self.status())
    }
}

impl Drop for BufferedStore {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The record of `id` after batch `b`, given the one before it (`batch` applies upserts, then
/// deletes, like every store).
fn queued_record(
    b: &ScanBatch,
    id: &ResourceId,
    before: Option<DriftRecord>,
) -> Option<DriftRecord> {
    if b.deletes.contains(id) {
        return None;
    }
    match b.upserts.iter().rfind(|r| &r.id == id) {
        Some(r) => Some(r.clone()),
        None => before,
    }
}

impl BufferedStore {
    /// Wraps `inner`, queueing at most `capacity` batches. Retries start at `initial_backoff`
    /// and double up to 30 s. Must be called inside a tokio runtime.
    pub fn new(inner: Arc<dyn DriftStore>, capacity: usize, initial_backoff: Duration) -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let writer = Arc::new(tokio::sync::Mutex::new(()));
        let wake = Arc::new(Notify::new());
        let task = tokio::spawn(retry_loop(
            inner.clone(),
            state.clone(),
            writer.clone(),
            wake.clone(),
            initial_backoff,
        ));
        BufferedStore {
            inner,
            state,
            writer,
            wake,
            capacity: capacity.max(1),
            task,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .expect("buffer state lock is never poisoned")
    }

    /// Healthy, or degraded with the queue length and last error.
    pub fn status(&self) -> BufferHealth {
        let s = self.lock();
        if s.queue.is_empty() {
            BufferHealth::Healthy
        } else {
            BufferHealth::Degraded {
                queued: s.queue.len(),
                last_error: s.last_error.clone().unwrap_or_default(),
            }
        }
    }

    /// Batches waiting.
    pub fn queued(&self) -> usize {
        self.lock().queue.len()
    }

    /// Waits until the queue is empty or `timeout` passes; returns whether it emptied.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.queued() == 0 {
                return true;
            }
            self.wake.notify_one();
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn enqueue(&self, s: &mut State, batch: &ScanBatch, why: String) -> Result<(), StoreError> {
        if s.queue.len() >= self.capacity {
            return Err(StoreError::Unavailable {
                source: format!(
                    "write buffer full ({} batches waiting); last error: {why}",
                    s.queue.len()
                )
                .into(),
            });
        }
        s.queue.push_back(batch.clone());
        s.last_error = Some(why);
        self.wake.notify_one();
        Ok(())
    }
}

async fn retry_loop(
    inner: Arc<dyn DriftStore>,
    state: Arc<Mutex<State>>,
    writer: Arc<tokio::sync::Mutex<()>>,
    wake: Arc<Notify>,
    initial: Duration,
) {
    let max = Duration::from_secs(30);
    let salt = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos().into());
    let mut policy = Backoff::new(initial, max, retry::seed("store", salt));
    let mut backoff = initial;
    loop {
        let empty = state.lock().expect("lock").queue.is_empty();
        if empty {
            wake.notified().await;
            continue;
        }
        tokio::time::sleep(backoff).await;
        let _w = writer.lock().await;
        loop {
            let front = state.lock().expect("lock").queue.front().cloned();
            let Some(batch) = front else {
                policy.reset();
                backoff = initial;
                break;
            };
            match inner.commit(&batch).await {
                Ok(()) => {
                    let mut s = state.lock().expect("lock");
                    s.queue.pop_front();
                    if s.queue.is_empty() {
                        s.last_error = None;
                    }
                    policy.reset();
                }
                Err(e @ StoreError::Conflict { .. }) => {
                    // a refused epoch is refused for ever: drop the batch
                    let why = driftguard_core::error::chain(&e);
                    tracing::error!(environment = %batch.environment, epoch = ?batch.epoch,
                        events = batch.events.len(), error = %why,
                        "buffered batch dropped: the store refuses it");
                    let mut s = state.lock().expect("lock");
                    s.queue.pop_front();
                    if s.queue.is_empty() {
                        s.last_error = None;
                    }
                }
                Err(e) => {
                    let why = driftguard_core::error::chain(&e);
                    tracing::warn!(error = %why, "store still unavailable; batch kept for retry");
                    state.lock().expect("lock").last_error = Some(why);
                    backoff = policy.next_delay();
                    break;
                }
            }
        }
    }
}

#[async_trait]
impl DriftStore for BufferedStore {
    async fn records(&self, environment: &str) -> Result<Vec<DriftRecord>, StoreError> {
        match self.inner.records(environment).await {
            Ok(stored) => {
                let s = self.lock();
                if s.queue.is_empty() {
                    return Ok(stored);
                }
                let mut map: BTreeMap<ResourceId, DriftRecord> =
                    stored.into_iter().map(|r| (r.id.clone(), r)).collect();
                // batches still queued are newer than what the store has
                for b in &s.queue {
                    for r in b.upserts.iter().filter(|r| r.id.environment == environment) {
                        map.insert(r.id.clone(), r.clone());
                    }
                    for id in b.deletes.iter().filter(|i| i.environment == environment) {
                        map.remove(id);
                    }
                }
                Ok(map.into_values().collect())
            }
            Err(e) => Err(e),
        }
    }

    async fn commit(&self, batch: &ScanBatch) -> Result<(), StoreError> {
        if batch.writes_nothing() {
            return Ok(());
        }
        {
            let mut s = self.lock();
            if !s.queue.is_empty() {
                let why = s.last_error.clone().unwrap_or_default();
                return self.enqueue(&mut s, batch, why);
            }
        }
        let _w = self.writer.lock().await;
        {
            // the retry task may have queued nothing, or a batch may have joined meanwhile
            let mut s = self.lock();
            if !s.queue.is_empty() {
                let why = s.last_error.clone().unwrap_or_default();
                return self.enqueue(&mut s, batch, why);
            }
        }
        match self.inner.commit(batch).await {
            Ok(()) => Ok(()),
            Err(e @ StoreError::Unavailable { .. }) => {
                let why = driftguard_core::error::chain(&e);
                tracing::warn!(error = %why, "store unavailable; batch buffered");
                let mut s = self.lock();
                self.enqueue(&mut s, batch, why)
            }
            Err(e) => Err(e),
        }
    }

    async fn record(&self, id: &ResourceId) -> Result<Option<DriftRecord>, StoreError> {
        match self.inner.record(id).await {
            Ok(stored) => {
                // batches still queued are newer than what the store has
                let s = self.lock();
                Ok(s.queue.iter().fold(stored, |r, b| queued_record(b, id, r)))
            }
            Err(e) => Err(e),
        }
    }

    async fn drifts(&self, query: &DriftQuery) -> Result<Page<Drift>, StoreError> {
        self.inner.drifts(query).await
    }

    async fn drift(&self, episode: &str) -> Result<Option<Drift>, StoreError> {
        self.inner.drift(episode).await
    }

    async fn history(&self, id: &ResourceId, limit: usize) -> Result<Vec<DriftEvent>, StoreError> {
        self.inner.history(id, limit).await
    }

    async fn events(&self, query: &EventQuery) -> Result<Page<DriftEvent>, StoreError> {
        self.inner.events(query).await
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

    /// Goes to the wrapped store (the scanner keeps an index it could not save in memory).
    async fn audit_index(&self, environment: &str) -> Result<AuditSnapshot, StoreError> {
        self.inner.audit_index(environment).await
    }

    /// Goes to the wrapped store: not buffered (the scanner keeps the changes of a refused
    /// save in its index and saves them with the next one).
    async fn save_audit_index(
        &self,
        environment: &str,
        changes: &AuditSnapshot,
    ) -> Result<(), StoreError> {
        self.inner.save_audit_index(environment, changes).await
    }

    /// Goes to the wrapped store.
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

    /// Goes to the wrapped store: not buffered (a person's acknowledgement that cannot be
    /// saved is refused, not queued).
    async fn save_acknowledgements(
        &self,
        acks: &[driftguard_core::ack::Acknowledgement],
    ) -> Result<(), StoreError> {
        self.inner.save_acknowledgements(acks).await
    }

    async fn health(&self) -> Result<(), StoreError> {
        if let BufferHealth::Degraded { queued, last_error } = self.status() {
            return Err(StoreError::Unavailable {
                source: format!("degraded: {queued} batches buffered; last error: {last_error}")
                    .into(),
            });
        }
        self.inner.health().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_probe::{check_forwards_everything, record, Probe};

    #[tokio::test]
    async fn forwards_every_method() {
        let probe = Arc::new(Probe::default());
        let store = BufferedStore::new(probe.clone(), 4, Duration::from_secs(60));
        check_forwards_everything(&store, &probe).await;
        store
            .commit(&ScanBatch {
                environment: "prod".into(),
                upserts: vec![record()],
                ..ScanBatch::default()
            })
            .await
            .expect("commits");
        assert_eq!(probe.take_calls(), vec!["commit"]);
        store
            .save_audit_index("prod", &crate::test_probe::audit())
            .await
            .expect("saves");
        assert_eq!(probe.take_calls(), vec!["save_audit_index"]);
    }

    /// The in-memory store, unavailable while `down` is set.
    #[derive(Default)]
    struct Switch {
        inner: driftguard_core::memory::MemoryStore,
        down: std::sync::atomic::AtomicBool,
    }

    impl Switch {
        fn check(&self) -> Result<(), StoreError> {
            if self.down.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(StoreError::Unavailable {
                    source: "switched off".into(),
                });
            }
            Ok(())
        }
    }

    #[async_trait]
    impl DriftStore for Switch {
        async fn records(&self, environment: &str) -> Result<Vec<DriftRecord>, StoreError> {
            self.check()?;
            self.inner.records(environment).await
        }
        async fn commit(&self, batch: &ScanBatch) -> Result<(), StoreError> {
            self.check()?;
            self.inner.commit(batch).await
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
    }

    #[tokio::test]
    async fn a_buffered_batch_whose_epoch_is_refused_is_dropped_not_retried_for_ever() {
        let switch = Arc::new(Switch::default());
        let store = BufferedStore::new(switch.clone(), 8, Duration::from_millis(10));
        let old_term = ScanBatch {
            environment: "prod".into(),
            upserts: vec![record()],
            epoch: Some(1),
            ..ScanBatch::default()
        };
        store
            .commit(&ScanBatch::claim("prod", 1))
            .await
            .expect("claim");
        assert!(store.records("prod").await.expect("records").is_empty());
        // the database goes down: the old leader's batch is buffered; the buffer keeps no copy
        // of the records to read
        switch.down.store(true, std::sync::atomic::Ordering::SeqCst);
        store.commit(&old_term).await.expect("buffered");
        assert_eq!(store.queued(), 1);
        let err = store
            .records("prod")
            .await
            .expect_err("no copy of the records");
        assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
        // meanwhile another replica took over and claimed the environment
        switch
            .down
            .store(false, std::sync::atomic::Ordering::SeqCst);
        switch
            .inner
            .commit(&ScanBatch::claim("prod", 2))
            .await
            .expect("new leader's claim");
        // the retry is refused: the batch is dropped, and the buffer is healthy again
        assert!(
            store.flush(Duration::from_secs(5)).await,
            "a refused batch does not stay queued"
        );
        assert_eq!(store.status(), BufferHealth::Healthy);
        assert!(
            store.records("prod").await.expect("records").is_empty(),
            "nothing of the refused batch was written"
        );
        // a refusal of a direct write is the caller's to see
        let err = store.commit(&old_term).await.expect_err("refused");
        assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    }

    #[test]
    fn queued_batches_overlay_one_record() {
        let id = crate::test_probe::id();
        let mut newer = record();
        newer.api_version = "v2".into();
        let upsert = |r: &DriftRecord| ScanBatch {
            upserts: vec![r.clone()],
            ..ScanBatch::default()
        };
        let delete = ScanBatch {
            upserts: vec![record()],
            deletes: vec![id.clone()],
            ..ScanBatch::default()
        };
        assert_eq!(
            queued_record(&upsert(&newer), &id, Some(record())),
            Some(newer.clone())
        );
        assert_eq!(
            queued_record(&upsert(&newer), &id, None),
            Some(newer.clone())
        );
        // upserts, then deletes, like every store applies a batch
        assert_eq!(queued_record(&delete, &id, Some(newer.clone())), None);
        let other = ScanBatch::default();
        assert_eq!(queued_record(&other, &id, Some(newer.clone())), Some(newer));
    }
}
