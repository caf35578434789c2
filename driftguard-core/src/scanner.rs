//! The scanner: the pure [`Engine`] wired to the ports of one environment.
//!
//! A scan is three phases. It gathers its inputs (desired objects, the live snapshot, the
//! stored records, then in one batch the Git history of the drifted objects that need it),
//! evaluates them in one pure step ([`Engine::evaluate`], no awaits inside), then writes the
//! batch and announces its events. A live change from a watch goes the same way for the
//! objects it touched.
//!
//! ## Concurrency contract
//!
//! A scanner keeps state between calls (the indexed environment, the records, the batches the
//! store has not taken yet). One scan or live change runs at a time per scanner: [`Scanner::scan`],
//! [`Scanner::apply_live_change`] and [`Scanner::retry_unwritten`] hold the scanner's state for
//! their whole run, and a call made meanwhile waits its turn. The other methods
//! ([`Scanner::fetch`], [`Scanner::watch`], [`Scanner::live_scope`], [`Scanner::write_health`])
//! never wait for a scan. Callers need no lock of their own.
//!
//! ## When the store cannot be written
//!
//! A live change's batch that the store refuses as [`StoreError::Unavailable`] is kept, in order
//! (at most [`MAX_UNWRITTEN`] batches), and the scanner's records move on as if it had been
//! written: the events keep the time the change was observed. Kept batches are written before
//! any later one (by the next call, or by [`Scanner::retry_unwritten`]) and their events are
//! announced once written, never before. A full scan writes nothing while batches are kept: it
//! fails with [`ScanError::Store`] until they are written.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use futures_core::stream::BoxStream;
use futures_util::lock::Mutex as AsyncMutex;

use crate::engine::{history_wanted, Engine, EnvState, ScanError, ScanReport, HISTORY_DEPTH};
use crate::findings::drift_risk;
use crate::id::ResourceId;
use crate::model::Revision;
use crate::ports::{
    Clock, DriftStore, GitSource, GroupVersionKind, LiveChange, LiveScope, LiveSource,
    Notification, Notifier, ScanBatch, ScanSummary, SourceError, StoreError,
};
use crate::query::EventQuery;
use crate::remediate::{credit, RemediationRecord};
use crate::severity::drift_score;
use crate::state::{Drift, DriftEvent, DriftRecord, EventKind, Tick};

/// Most batches a scanner keeps while the store cannot be written.
pub const MAX_UNWRITTEN: usize = 10_000;

/// Whether the scanner's writes reach the store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteHealth {
    /// Batches kept because the store refused them, waiting to be written.
    pub unwritten: usize,
    /// The last write error (one line, with its causes), while batches are kept.
    pub last_error: Option<String>,
}

/// What a scanner keeps between calls.
#[derive(Default)]
struct ScanState {
    /// The indexed environment of the last scan.
    env: Option<EnvState>,
    /// The current records (as written, or as kept in `unwritten`).
    records: HashMap<ResourceId, DriftRecord>,
    /// Batches the store refused, oldest first.
    unwritten: VecDeque<ScanBatch>,
}

/// The engine wired to its ports, for one environment.
pub struct Scanner {
    engine: Engine,
    git: Arc<dyn GitSource>,
    live: Arc<dyn LiveSource>,
    store: Arc<dyn DriftStore>,
    notifiers: Vec<Arc<dyn Notifier>>,
    clock: Arc<dyn Clock>,
    state: AsyncMutex<ScanState>,
    /// The live scope of the last scan, published for watchers.
    scope: Mutex<Option<LiveScope>>,
    /// Published after every write attempt.
    health: Mutex<WriteHealth>,
    seq: AtomicU64,
    /// Remediations of open episodes by this process, waiting for their `resolved` event
    /// (see [`Scanner::expect_remediation`]).
    credits: Mutex<HashMap<String, RemediationRecord>>,
}

impl std::fmt::Debug for Scanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scanner")
            .field("environment", &self.environment())
            .field("git", &self.git.describe())
            .field("live", &self.live.describe())
            .finish_non_exhaustive()
    }
}

impl Scanner {
    /// Wires an engine to its ports.
    pub fn new(
        engine: Engine,
        git: Arc<dyn GitSource>,
        live: Arc<dyn LiveSource>,
        store: Arc<dyn DriftStore>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Scanner {
            engine,
            git,
            live,
            store,
            notifiers: Vec::new(),
            clock,
            state: AsyncMutex::new(ScanState::default()),
            scope: Mutex::new(None),
            health: Mutex::new(WriteHealth::default()),
            seq: AtomicU64::new(0),
            credits: Mutex::new(HashMap::new()),
        }
    }

    /// Adds a notifier: the events of every batch written are announced to it.
    pub fn with_notifier(mut self, n: Arc<dyn Notifier>) -> Self {
        self.notifiers.push(n);
        self
    }

    /// The environment's name.
    pub fn environment(&self) -> &str {
        &self.engine.spec.name
    }

    /// The pure engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The desired side, described (`git https://host/repo@main:envs/prod`).
    pub fn describe_git(&self) -> String {
        self.git.describe()
    }

    /// The live side, described (`cluster https://10.0.0.1 (context prod)`).
    pub fn describe_live(&self) -> String {
        self.live.describe()
    }

    /// Fetches the desired side's remote; the new revision when the tracked ref moved.
    pub async fn fetch(&self) -> Result<Option<Revision>, SourceError> {
        self.git.fetch().await
    }

    /// Watches the live side within `scope` (see [`Scanner::live_scope`]).
    pub async fn watch(
        &self,
        scope: &LiveScope,
    ) -> Result<BoxStream<'static, LiveChange>, SourceError> {
        self.live.watch(scope).await
    }

    /// The live scope of the last successful scan (what a watch should cover).
    pub fn live_scope(&self) -> Option<LiveScope> {
        self.scope
            .lock()
            .expect("scope cell is never poisoned")
            .clone()
    }

    /// Whether writes reach the store.
    pub fn write_health(&self) -> WriteHealth {
        self.health
            .lock()
            .expect("health cell is never poisoned")
            .clone()
    }

    /// The open drifts as the scanner's records hold them (after the last scan or live
    /// change; the same as the store's unless writes are kept, see [`Scanner::write_health`]).
    pub async fn open_drifts(&self) -> Vec<Drift> {
        let state = self.state.lock().await;
        let mut open: Vec<Drift> = state
            .records
            .values()
            .filter_map(|r| r.drift.clone())
            .collect();
        open.sort_by(|a, b| a.id.cmp(&b.id));
        open
    }

    fn scan_id(&self, now: DateTime<Utc>) -> String {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        format!("{}-{}-{n}", self.environment(), now.timestamp_millis())
    }

    fn batch(&self) -> ScanBatch {
        ScanBatch {
            environment: self.environment().to_owned(),
            ..ScanBatch::default()
        }
    }

    /// One full scan.
    pub async fn scan(&self) -> Result<ScanReport, ScanError> {
        let mut state = self.state.lock().await;
        // kept batches go first; a scan does not overtake them
        self.flush(&mut state).await.map_err(ScanError::Store)?;
        let started = self.clock.now();
        let scan_id = self.scan_id(started);
        // gather: desired, live, records
        let mut desired = self.git.load().await.map_err(|source| ScanError::Desired {
            source_name: self.git.describe(),
            source,
        })?;
        let scope = self.engine.live_scope(&desired);
        let snapshot = match self.live.snapshot(&scope).await {
            Ok(s) => s,
            Err(source) => {
                let summary = ScanSummary {
                    scan_id,
                    environment: self.environment().to_owned(),
                    started_at: started,
                    duration_ms: elapsed_ms(started, self.clock.now()),
                    revision: desired.revision.as_ref().map(|r| r.id.clone()),
                    counts: Default::default(),
                    score: 0.0,
                    errors: vec![format!("live state unknown: {source}")],
                    events: 0,
                };
                self.store
                    .commit(&ScanBatch {
                        summary: Some(summary),
                        ..self.batch()
                    })
                    .await?;
                return Err(ScanError::Live {
                    source_name: self.live.describe(),
                    source,
                });
            }
        };
        let notes = std::mem::take(&mut desired.notes);
        let warnings = std::mem::take(&mut desired.warnings);
        let st = self.engine.index_owned(desired, snapshot);
        let records: HashMap<ResourceId, DriftRecord> = self
            .store
            .records(self.environment())
            .await?
            .into_iter()
            .map(|r| (r.id.clone(), r))
            .collect();
        let tick = Tick {
            now: started,
            scan_id: scan_id.clone(),
            revision: st.revision.as_ref().map(|r| r.id.clone()),
            first_scan: records.is_empty(),
        };
        let observations = self
            .engine
            .observe_each(&st, self.engine.scan_ids(&st, &records));
        // gather: the Git history of the drifted objects that need it, in one batch
        let wanted: Vec<ResourceId> = observations
            .iter()
            .filter(|o| history_wanted(records.get(&o.id), o))
            .map(|o| o.id.clone())
            .collect();
        let histories = if wanted.is_empty() {
            Default::default()
        } else {
            self.git.histories(&wanted, HISTORY_DEPTH).await
        };
        // evaluate: pure
        let mut ev = self
            .engine
            .evaluate(&st, &records, observations, &histories, &tick);
        self.credit(&mut ev.events).await;
        let score = drift_score(
            ev.counts.tracked,
            ev.verdicts.iter().filter_map(|v| {
                v.drift
                    .as_ref()
                    .map(|d| drift_risk(d.severity, &d.findings))
            }),
        );
        let mut errors: Vec<String> = st.errors.iter().map(ToString::to_string).collect();
        errors.extend(st.live_errors.iter().cloned());
        errors.extend(warnings);
        let summary = ScanSummary {
            scan_id,
            environment: self.environment().to_owned(),
            started_at: started,
            duration_ms: elapsed_ms(started, self.clock.now()),
            revision: tick.revision.clone(),
            counts: ev.counts.clone(),
            score,
            errors,
            events: ev.events.len(),
        };
        // write: nothing was acknowledged if this fails; the next scan does it again
        let batch = ScanBatch {
            environment: self.environment().to_owned(),
            summary: Some(summary.clone()),
            upserts: ev.upserts,
            deletes: ev.deletes,
            events: ev.events,
        };
        self.store.commit(&batch).await?;
        let notify_errors = self.announce(&batch.events).await;
        let report = ScanReport {
            summary,
            verdicts: ev.verdicts,
            events: batch.events,
            manifest_errors: st.errors.clone(),
            notes,
            notify_errors,
        };
        state.records = ev.records;
        *self.scope.lock().expect("scope cell is never poisoned") = Some(self.scope_of(&st));
        state.env = Some(st);
        Ok(report)
    }

    /// The live scope of an indexed environment.
    fn scope_of(&self, st: &EnvState) -> LiveScope {
        self.engine.scope_of(
            st.desired.values().map(|d| {
                GroupVersionKind::from_api_version(&d.object.api_version, &d.object.id.kind)
            }),
        )
    }

    /// Re-evaluates only the objects a live change touched (every object after a watch
    /// restart). Needs one full scan first (returns no events before that). When the store
    /// refuses the batch as unavailable, it is kept (see the module documentation) and the
    /// error says so: [`ScanError::Unwritten`].
    pub async fn apply_live_change(
        &self,
        change: &LiveChange,
    ) -> Result<Vec<DriftEvent>, ScanError> {
        let now = self.clock.now();
        let mut guard = self.state.lock().await;
        let state = &mut *guard;
        let Some(st) = state.env.as_mut() else {
            return Ok(Vec::new());
        };
        let env = &self.engine.spec.name;
        let ids: Vec<ResourceId> = match change {
            LiveChange::Applied(raw) => {
                self.engine.insert_live(st, raw);
                vec![raw.object.meta().id(env)]
            }
            LiveChange::Deleted(raw) => {
                let id = raw.object.meta().id(env);
                st.live.remove(&id);
                vec![id]
            }
            LiveChange::Restarted(snapshot) => {
                st.live.clear();
                st.unknown_kinds.clear();
                for e in &snapshot.errors {
                    st.unknown_kinds.insert(e.kind.clone());
                }
                for raw in &snapshot.objects {
                    self.engine.insert_live(st, raw);
                }
                let mut all: Vec<ResourceId> = st
                    .desired
                    .keys()
                    .chain(st.live.keys().filter(|id| !st.desired.contains_key(*id)))
                    .cloned()
                    .collect();
                all.sort_unstable();
                all
            }
            LiveChange::Disconnected(_) => return Ok(Vec::new()),
        };
        let tick = Tick {
            now,
            scan_id: self.scan_id(now),
            revision: st.revision.as_ref().map(|r| r.id.clone()),
            first_scan: state.records.is_empty(),
        };
        let observations = self.engine.observe_each(st, &ids);
        let wanted: Vec<ResourceId> = observations
            .iter()
            .filter(|o| history_wanted(state.records.get(&o.id), o))
            .map(|o| o.id.clone())
            .collect();
        let histories = if wanted.is_empty() {
            Default::default()
        } else {
            self.git.histories(&wanted, HISTORY_DEPTH).await
        };
        let mut ev = self
            .engine
            .evaluate(st, &state.records, observations, &histories, &tick);
        self.credit(&mut ev.events).await;
        let batch = ScanBatch {
            upserts: std::mem::take(&mut ev.upserts),
            deletes: std::mem::take(&mut ev.deletes),
            events: std::mem::take(&mut ev.events),
            ..self.batch()
        };
        let events = batch.events.clone();
        if !batch.is_empty() {
            for id in &ids {
                match ev.records.remove(id) {
                    Some(r) => state.records.insert(id.clone(), r),
                    None => state.records.remove(id),
                };
            }
            state.unwritten.push_back(batch);
        }
        if state.unwritten.is_empty() {
            return Ok(events);
        }
        match self.flush(state).await {
            Ok(()) => Ok(events),
            Err(source) => Err(ScanError::Unwritten {
                queued: state.unwritten.len(),
                source,
            }),
        }
    }

    /// Writes the batches kept while the store could not be written; returns how many are
    /// still kept.
    pub async fn retry_unwritten(&self) -> Result<usize, StoreError> {
        let mut state = self.state.lock().await;
        self.flush(&mut state).await?;
        Ok(state.unwritten.len())
    }

    /// Writes the kept batches in order, announcing each batch's events once it is written.
    /// On an `Unavailable` store the rest stay kept (at most [`MAX_UNWRITTEN`]); any other
    /// error drops the batch it failed on (it cannot be written as it is).
    async fn flush(&self, state: &mut ScanState) -> Result<(), StoreError> {
        while let Some(batch) = state.unwritten.front() {
            match self.store.commit(batch).await {
                Ok(()) => {
                    let batch = state.unwritten.pop_front().expect("front was just read");
                    self.announce(&batch.events).await;
                }
                Err(e) => {
                    let unavailable = matches!(e, StoreError::Unavailable { .. });
                    if !unavailable || state.unwritten.len() > MAX_UNWRITTEN {
                        state.unwritten.pop_front();
                    }
                    *self.health.lock().expect("health cell is never poisoned") = WriteHealth {
                        unwritten: state.unwritten.len(),
                        last_error: Some(crate::error::chain(&e)),
                    };
                    return Err(e);
                }
            }
        }
        *self.health.lock().expect("health cell is never poisoned") = WriteHealth::default();
        Ok(())
    }

    /// Says that DriftGuard is about to remediate `episode` as `record` says (its `ok` taken
    /// as the hoped-for outcome), so that the `resolved` event a watch may see before the
    /// `remediated` event is stored still names DriftGuard (see [`credit`]). Undo it with
    /// [`Scanner::forget_remediation`] when the remediation fails.
    pub fn expect_remediation(&self, episode: &str, record: RemediationRecord) {
        self.credits
            .lock()
            .expect("credits cell is never poisoned")
            .insert(episode.to_owned(), record);
    }

    /// Forgets what [`Scanner::expect_remediation`] said of `episode`.
    pub fn forget_remediation(&self, episode: &str) {
        self.credits
            .lock()
            .expect("credits cell is never poisoned")
            .remove(episode);
    }

    /// Stores a `remediated` event and announces it to the notifiers, like a drift's events;
    /// a successful remediation is remembered so that the episode's `resolved` event names
    /// DriftGuard. Returns the notifiers' errors.
    pub async fn record_remediation(&self, event: DriftEvent) -> Result<Vec<String>, StoreError> {
        if let Some(r) = event.remediation.as_ref().filter(|r| r.ok) {
            self.expect_remediation(&event.drift.episode, r.clone());
        }
        self.store
            .commit(&ScanBatch {
                events: vec![event.clone()],
                ..self.batch()
            })
            .await?;
        Ok(self.announce(&[event]).await)
    }

    /// Credits the `resolved` events among `events` that a remediation ended: one this
    /// process expects ([`Scanner::expect_remediation`]), else a successful `remediated` event
    /// of the episode in the store (a remediation by another process, the CLI), read in one
    /// query from the oldest detection among them.
    async fn credit(&self, events: &mut [DriftEvent]) {
        let mut rest = Vec::new();
        for (i, e) in events.iter_mut().enumerate() {
            if e.kind != EventKind::Resolved {
                continue;
            }
            let expected = self
                .credits
                .lock()
                .expect("credits cell is never poisoned")
                .remove(&e.drift.episode);
            match expected {
                Some(r) => {
                    let episode = e.drift.episode.clone();
                    credit(e, &episode, &r);
                }
                None => rest.push(i),
            }
        }
        let Some(since) = rest.iter().map(|&i| events[i].drift.detected_at).min() else {
            return;
        };
        let mut q = EventQuery {
            environment: Some(self.environment().to_owned()),
            kind: Some(EventKind::Remediated),
            since: Some(since),
            limit: 1000,
            ..EventQuery::default()
        };
        let mut done: HashMap<String, RemediationRecord> = HashMap::new();
        loop {
            // best effort: a store that cannot answer leaves the resolutions as they are
            let Ok(page) = self.store.events(&q).await else {
                break;
            };
            for r in page.items {
                if let Some(rec) = r.remediation.filter(|rec| rec.ok) {
                    done.insert(r.drift.episode, rec);
                }
            }
            match page.next_offset {
                Some(next) if next > q.offset => q.offset = next,
                _ => break,
            }
        }
        for i in rest {
            let episode = events[i].drift.episode.clone();
            if let Some(r) = done.get(&episode) {
                credit(&mut events[i], &episode, r);
            }
        }
    }

    async fn announce(&self, events: &[DriftEvent]) -> Vec<String> {
        let mut errors = Vec::new();
        if events.is_empty() {
            return errors;
        }
        let n = Notification {
            environment: self.environment().to_owned(),
            events: events.to_vec(),
        };
        for notifier in &self.notifiers {
            if let Err(e) = notifier.notify(&n).await {
                errors.push(format!("{}: {e}", notifier.name()));
            }
        }
        errors
    }
}

fn elapsed_ms(a: DateTime<Utc>, b: DateTime<Utc>) -> u64 {
    (b - a).num_milliseconds().max(0) as u64
}
