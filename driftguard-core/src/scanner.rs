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
//! their whole run, and a call made meanwhile waits its turn; so does
//! [`Scanner::attribute_writes`]. The other methods ([`Scanner::fetch`], [`Scanner::watch`],
//! [`Scanner::live_scope`], [`Scanner::write_health`], [`Scanner::ingest_audit`],
//! [`Scanner::audit_cursor`]) never wait for a scan. Callers need no lock of their own.
//!
//! ## Leadership terms
//!
//! When replicas elect a leader per environment, the leader gives its scanner the epoch of its
//! term ([`Scanner::set_epoch`]) and every batch the scanner writes carries it
//! ([`ScanBatch::epoch`]): the store refuses the batches of an older term
//! ([`crate::fence`]). A new epoch starts from the store: what the scanner kept of the previous
//! term (the indexed environment, the records, the batches not written yet) is forgotten, and
//! the next call should be a full scan.
//!
//! ## When the store cannot be written
//!
//! A live change's batch that the store refuses as [`StoreError::Unavailable`] is kept, in order
//! (at most [`MAX_UNWRITTEN`] batches), and the scanner's records move on as if it had been
//! written: the events keep the time the change was observed. Kept batches are written before
//! any later one (by the next call, or by [`Scanner::retry_unwritten`]) and their events are
//! announced once written, never before. A full scan writes nothing while batches are kept: it
//! fails with [`ScanError::Store`] until they are written.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use futures_core::stream::BoxStream;
use futures_util::lock::Mutex as AsyncMutex;

use crate::audit::{
    cloud_evidence, cloud_queries, AuditCursor, AuditEvent, AuditEvidence, AuditIndex, AuditObject,
    IngestStats,
};
use crate::engine::{
    history_wanted, Engine, EnvState, Evaluation, Histories, ScanError, ScanReport, HISTORY_DEPTH,
};
use crate::findings::drift_risk;
use crate::id::ResourceId;
use crate::manifest::ManifestError;
use crate::model::{RawObject, Revision};
use crate::ports::{
    Clock, DriftStore, GitSource, GroupVersionKind, LiveChange, LiveScope, LiveSource,
    Notification, Notifier, ObjectVersion, PackedDesired, PlanSource, ScanBatch, ScanSummary,
    SourceError, StoreError,
};
use crate::query::EventQuery;
use crate::remediate::{credit, RemediationRecord};
use crate::severity::drift_score;
use crate::state::{Drift, DriftEvent, EventKind, Observation, Records, Tick};

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
    records: Records,
    /// Whether `records` are the environment's (read or written in this term): a full scan
    /// that cannot read the store goes on from them.
    records_known: bool,
    /// Batches the store refused, oldest first.
    unwritten: VecDeque<ScanBatch>,
    /// The leadership epoch stamped on every batch (`None`: no election).
    epoch: Option<u64>,
    /// When the last full scan of this scanner started.
    last_full_scan: Option<DateTime<Utc>>,
}

/// Where a scanner reads both sides from.
enum Sides {
    /// Manifests from a Git source, objects from a live source (Kubernetes).
    Manifests {
        git: Arc<dyn GitSource>,
        live: Arc<dyn LiveSource>,
    },
    /// Plans of both sides at once (Terraform).
    Plans(Arc<dyn PlanSource>),
}

/// The engine wired to its ports, for one environment.
pub struct Scanner {
    engine: Engine,
    sides: Sides,
    store: Arc<dyn DriftStore>,
    notifiers: Vec<Arc<dyn Notifier>>,
    clock: Arc<dyn Clock>,
    state: AsyncMutex<ScanState>,
    /// The live scope of the last scan, published for watchers.
    scope: Mutex<Option<LiveScope>>,
    /// Published after every write attempt.
    health: Mutex<WriteHealth>,
    /// The epoch of the current term, published (the state holds the one batches carry).
    epoch: Mutex<Option<u64>>,
    seq: AtomicU64,
    /// The audit index, loaded from the store on first use (only with audit settings).
    audit: AsyncMutex<Option<AuditIndex>>,
    /// Remediations of open episodes by this process, waiting for their `resolved` event
    /// (see [`Scanner::expect_remediation`]).
    credits: Mutex<HashMap<String, RemediationRecord>>,
}

impl std::fmt::Debug for Scanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scanner")
            .field("environment", &self.environment())
            .field("git", &self.describe_git())
            .field("live", &self.describe_live())
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
        Self::wired(engine, Sides::Manifests { git, live }, store, clock)
    }

    /// Wires an engine to a source that plans both sides at once (a Terraform root module):
    /// a scan is one check of its plans ([`crate::terraform`]); there is no watch, and
    /// [`Scanner::apply_live_change`] does nothing.
    pub fn with_plans(
        engine: Engine,
        plans: Arc<dyn PlanSource>,
        store: Arc<dyn DriftStore>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self::wired(engine, Sides::Plans(plans), store, clock)
    }

    fn wired(
        engine: Engine,
        sides: Sides,
        store: Arc<dyn DriftStore>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Scanner {
            engine,
            sides,
            store,
            notifiers: Vec::new(),
            clock,
            state: AsyncMutex::new(ScanState::default()),
            scope: Mutex::new(None),
            health: Mutex::new(WriteHealth::default()),
            epoch: Mutex::new(None),
            seq: AtomicU64::new(0),
            audit: AsyncMutex::new(None),
            credits: Mutex::new(HashMap::new()),
        }
    }

    /// The Git source of a scanner of manifests (`None` for plans): what a preview reads
    /// ([`crate::preview`]), with [`Scanner::live_source`] and [`Scanner::store`].
    pub(crate) fn git_source(&self) -> Option<&Arc<dyn GitSource>> {
        match &self.sides {
            Sides::Manifests { git, .. } => Some(git),
            Sides::Plans(_) => None,
        }
    }

    /// The live source of a scanner of manifests (`None` for plans).
    pub(crate) fn live_source(&self) -> Option<&Arc<dyn LiveSource>> {
        match &self.sides {
            Sides::Manifests { live, .. } => Some(live),
            Sides::Plans(_) => None,
        }
    }

    /// The store.
    pub(crate) fn store(&self) -> &Arc<dyn DriftStore> {
        &self.store
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
        match &self.sides {
            Sides::Manifests { git, .. } => git.describe(),
            Sides::Plans(p) => p.describe(),
        }
    }

    /// The live side, described (`cluster https://10.0.0.1 (context prod)`).
    pub fn describe_live(&self) -> String {
        match &self.sides {
            Sides::Manifests { live, .. } => live.describe(),
            Sides::Plans(p) => p.describe_live(),
        }
    }

    /// Fetches the desired side's remote; the new revision when the tracked ref moved.
    pub async fn fetch(&self) -> Result<Option<Revision>, SourceError> {
        match &self.sides {
            Sides::Manifests { git, .. } => git.fetch().await,
            Sides::Plans(p) => p.fetch().await,
        }
    }

    /// Watches the live side within `scope` (see [`Scanner::live_scope`]). A scanner on
    /// plans cannot watch ([`SourceError::Unsupported`]).
    pub async fn watch(
        &self,
        scope: &LiveScope,
    ) -> Result<BoxStream<'static, LiveChange>, SourceError> {
        match &self.sides {
            Sides::Manifests { live, .. } => live.watch(scope).await,
            Sides::Plans(_) => Err(SourceError::Unsupported {
                what: "watch (a plan source is checked by scans)".into(),
            }),
        }
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
            .filter_map(|r| r.drift.as_deref().cloned())
            .collect();
        open.sort_by(|a, b| a.id.cmp(&b.id));
        open
    }

    fn scan_id(&self, now: DateTime<Utc>) -> String {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        format!("{}-{}-{n}", self.environment(), now.timestamp_millis())
    }

    fn batch(&self, epoch: Option<u64>) -> ScanBatch {
        ScanBatch {
            environment: self.environment().to_owned(),
            epoch,
            ..ScanBatch::default()
        }
    }

    /// Starts a leadership term: every batch written from now on carries `epoch` (`None`: no
    /// election, the default). A different epoch than the current one forgets what the
    /// scanner kept (the indexed environment, the records, the live scope and the batches not
    /// written yet, which the store would refuse): the new term starts from the store, with a
    /// full scan. Waits for a scan or live change in progress (it finishes with the epoch it
    /// started with).
    pub async fn set_epoch(&self, epoch: Option<u64>) {
        let mut state = self.state.lock().await;
        if state.epoch == epoch {
            return;
        }
        *state = ScanState {
            epoch,
            ..ScanState::default()
        };
        *self.scope.lock().expect("scope cell is never poisoned") = None;
        *self.health.lock().expect("health cell is never poisoned") = WriteHealth::default();
        *self.epoch.lock().expect("epoch cell is never poisoned") = epoch;
    }

    /// The epoch of the current term (see [`Scanner::set_epoch`]).
    pub fn epoch(&self) -> Option<u64> {
        *self.epoch.lock().expect("epoch cell is never poisoned")
    }

    /// One full scan.
    pub async fn scan(&self) -> Result<ScanReport, ScanError> {
        let mut state = self.state.lock().await;
        // kept batches go first; a scan does not overtake them
        self.flush(&mut state).await.map_err(ScanError::Store)?;
        match &self.sides {
            Sides::Manifests { git, live } => self.scan_manifests(git, live, &mut state).await,
            Sides::Plans(plans) => self.scan_plans(plans, &mut state).await,
        }
    }

    /// Writes the summary of a scan whose live side could not be read, and says so.
    async fn live_failed(
        &self,
        scan_id: String,
        started: DateTime<Utc>,
        revision: Option<String>,
        source_name: String,
        source: SourceError,
        epoch: Option<u64>,
    ) -> ScanError {
        let summary = ScanSummary {
            scan_id,
            environment: self.environment().to_owned(),
            started_at: started,
            duration_ms: elapsed_ms(started, self.clock.now()),
            revision,
            counts: Default::default(),
            score: 0.0,
            errors: vec![format!("live state unknown: {source}")],
            events: 0,
        };
        let written = self
            .store
            .commit(&ScanBatch {
                summary: Some(summary),
                ..self.batch(epoch)
            })
            .await;
        match written {
            Ok(()) => ScanError::Live {
                source_name,
                source,
            },
            Err(e) => ScanError::Store(e),
        }
    }

    /// One full scan of a Git source and a live source.
    async fn scan_manifests(
        &self,
        git: &Arc<dyn GitSource>,
        live: &Arc<dyn LiveSource>,
        state: &mut ScanState,
    ) -> Result<ScanReport, ScanError> {
        let started = self.clock.now();
        let scan_id = self.scan_id(started);
        // gather: desired, live, records
        let mut desired = git.load().await.map_err(|source| ScanError::Desired {
            source_name: git.describe(),
            source,
        })?;
        let scope = self.engine.live_scope(&desired);
        let notes = std::mem::take(&mut desired.notes);
        let mut warnings = std::mem::take(&mut desired.warnings);
        // Git's objects wait as text while the live side and the records are read
        let desired = PackedDesired::from(desired);
        let snapshot = match live.snapshot(&scope).await {
            Ok(s) => s,
            Err(source) => {
                let revision = desired.revision.as_ref().map(|r| r.id.clone());
                return Err(self
                    .live_failed(
                        scan_id,
                        started,
                        revision,
                        live.describe(),
                        source,
                        state.epoch,
                    )
                    .await);
            }
        };
        let predictions = if self.engine.spec.server_side_diff {
            // Secrets are never sent: their values stay out of DriftGuard's requests
            let objects: Vec<RawObject> = desired
                .objects
                .iter()
                .filter(|m| !crate::secret::is_secret_object(&m.object.0))
                .map(|m| m.object)
                .collect();
            match live
                .predict(&objects, self.engine.spec.default_namespace())
                .await
            {
                Ok(p) => p,
                Err(e) => {
                    warnings.push(format!(
                        "server-side diff: {e}; compared with Git's objects instead"
                    ));
                    Vec::new()
                }
            }
        } else {
            Vec::new()
        };
        let records = self.records(state).await?;
        let open = records
            .values()
            .filter(|r| r.drift.is_some())
            .map(|r| r.id.clone())
            .collect();
        // the last scan's index goes before the new one is built, so that a full scan does
        // not hold two (live changes wait for this scan, which keeps its own index)
        state.env = None;
        let st = self
            .engine
            .index_consuming(desired, snapshot, &predictions, open);
        drop(predictions);
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
            git.histories(&wanted, HISTORY_DEPTH).await
        };
        // gather: the audit log's writes of the drifted objects
        let (audit, audit_problem) = self
            .audit_evidence(&observations, state.last_full_scan)
            .await;
        // evaluate: pure
        let mut ev =
            self.engine
                .evaluate_taking(&st, records, observations, &histories, &audit, &tick);
        self.credit(&mut ev.events).await;
        let mut errors: Vec<String> = st.errors.iter().map(ToString::to_string).collect();
        errors.extend(st.live_errors.iter().cloned());
        errors.extend(warnings);
        errors.extend(audit_problem);
        let report = match self
            .finish(state, &tick, ev, errors, notes, st.errors.clone())
            .await
        {
            Ok(report) => report,
            Err(e) => {
                // nothing was written: live changes go on from this scan's index (the records
                // are still those written last)
                state.env = Some(st);
                return Err(e);
            }
        };
        state.last_full_scan = Some(started);
        *self.scope.lock().expect("scope cell is never poisoned") = Some(self.scope_of(&st));
        let mut st = st;
        st.open_drifts = state
            .records
            .values()
            .filter(|r| r.drift.is_some())
            .map(|r| r.id.clone())
            .collect();
        state.env = Some(st);
        Ok(report)
    }

    /// One check of a plan source: its plans turned into observations by the core
    /// ([`crate::terraform::observe`]), the commits of the drifted resources' files read in
    /// one batch, then the same evaluation and writes as any scan.
    async fn scan_plans(
        &self,
        plans: &Arc<dyn PlanSource>,
        state: &mut ScanState,
    ) -> Result<ScanReport, ScanError> {
        let started = self.clock.now();
        let scan_id = self.scan_id(started);
        // gather: both plans, records
        let run = match plans.plan().await {
            Ok(run) => run,
            // the cloud could not be reached, or refused (or was given no) credentials: the
            // live side is unknown, the code may be fine
            Err(source @ (SourceError::Unreachable { .. } | SourceError::Forbidden { .. })) => {
                return Err(self
                    .live_failed(
                        scan_id,
                        started,
                        None,
                        plans.describe_live(),
                        source,
                        state.epoch,
                    )
                    .await);
            }
            Err(source) => {
                return Err(ScanError::Desired {
                    source_name: plans.describe(),
                    source,
                })
            }
        };
        let records = self.records(state).await?;
        let tick = Tick {
            now: started,
            scan_id: scan_id.clone(),
            revision: run.revision.as_ref().map(|r| r.id.clone()),
            first_scan: records.is_empty(),
        };
        // evaluate: the plans into observations (pure)
        let view = crate::terraform::observe(&self.engine, &run, &records).map_err(|e| {
            ScanError::Desired {
                source_name: plans.describe(),
                source: SourceError::Terraform(e),
            }
        })?;
        // gather: the newest commit of what each drifted resource depends on (its declaring
        // file, or the paths the observation names), in one batch
        let wanted: Vec<(&ResourceId, Vec<String>)> = view
            .observations
            .iter()
            .filter(|o| history_wanted(records.get(&o.id), o))
            .filter_map(|o| {
                let paths = if o.depends_on.is_empty() {
                    vec![o.provenance.as_ref()?.file.clone()]
                } else {
                    o.depends_on.clone()
                };
                Some((&o.id, paths))
            })
            .collect();
        let mut sets: Vec<Vec<String>> = wanted.iter().map(|(_, p)| p.clone()).collect();
        sets.sort();
        sets.dedup();
        let commits: HashMap<&Vec<String>, crate::model::CommitInfo> = if sets.is_empty() {
            HashMap::new()
        } else {
            let found = plans.last_commits_of(&sets).await;
            sets.iter()
                .zip(found)
                .filter_map(|(s, c)| Some((s, c?)))
                .collect()
        };
        let histories: Histories = wanted
            .iter()
            .filter_map(|(id, paths)| {
                let commit = commits.get(paths)?.clone();
                Some((
                    (*id).clone(),
                    vec![ObjectVersion {
                        commit,
                        object: None,
                    }],
                ))
            })
            .collect();
        // gather: who made each change in the cloud, from its audit trail (read only, when
        // the source reads one): the drifts made outside the code, in one batch
        let last_scan = self.previous_scan(state.last_full_scan).await;
        let queries = cloud_queries(&view.observations, &records, &view.cloud_ids, last_scan);
        let answer = plans.cloud_writes(&queries).await;
        let names = self
            .engine
            .spec
            .audit
            .as_ref()
            .map(|a| a.user_names)
            .unwrap_or_default();
        let audit = cloud_evidence(&answer, names, &self.engine.normalizer, last_scan);
        // evaluate: the state machine (pure)
        let mut ev = self.engine.evaluate_audited(
            &EnvState::default(),
            &records,
            view.observations,
            &histories,
            &audit,
            &tick,
        );
        self.credit(&mut ev.events).await;
        let mut errors = view.errors;
        errors.extend(run.warnings);
        errors.extend(answer.errors);
        let mut notes = run.notes;
        notes.extend(view.notes);
        notes.extend(answer.notes);
        let report = self
            .finish(state, &tick, ev, errors, notes, Vec::new())
            .await?;
        state.last_full_scan = Some(started);
        // a plan source has no watch: an empty scope says there is nothing to watch
        *self.scope.lock().expect("scope cell is never poisoned") = Some(LiveScope::default());
        Ok(report)
    }

    /// The stored records of the environment; while the store cannot be read, the records this
    /// scanner wrote or keeps to write (the store's own copy, which a buffer in front of it
    /// would otherwise have to hold as well).
    async fn records(&self, state: &ScanState) -> Result<Records, ScanError> {
        match self.store.records(self.environment()).await {
            Ok(stored) => Ok(stored.into_iter().collect()),
            Err(StoreError::Unavailable { .. }) if state.records_known => Ok(state.records.clone()),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes an evaluated scan and announces its events: nothing was acknowledged if the
    /// write fails, and the next scan does it again.
    async fn finish(
        &self,
        state: &mut ScanState,
        tick: &Tick,
        ev: Evaluation,
        errors: Vec<String>,
        notes: Vec<String>,
        manifest_errors: Vec<ManifestError>,
    ) -> Result<ScanReport, ScanError> {
        let score = drift_score(
            ev.counts.tracked,
            ev.verdicts.iter().filter_map(|v| {
                v.drift
                    .as_ref()
                    .map(|d| drift_risk(d.severity, &d.findings))
            }),
        );
        let summary = ScanSummary {
            scan_id: tick.scan_id.clone(),
            environment: self.environment().to_owned(),
            started_at: tick.now,
            duration_ms: elapsed_ms(tick.now, self.clock.now()),
            revision: tick.revision.clone(),
            counts: ev.counts.clone(),
            score,
            errors,
            events: ev.events.len(),
        };
        let batch = ScanBatch {
            environment: self.environment().to_owned(),
            summary: Some(summary.clone()),
            upserts: ev.upserts,
            deletes: ev.deletes,
            events: ev.events,
            epoch: state.epoch,
        };
        self.store.commit(&batch).await?;
        let notify_errors = self.announce(&batch.events).await;
        state.records = ev.records;
        state.records_known = true;
        Ok(ScanReport {
            summary,
            verdicts: ev.verdicts,
            events: batch.events,
            manifest_errors,
            notes,
            notify_errors,
        })
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
                for raw in snapshot.objects.iter() {
                    self.engine.insert_live(st, &raw);
                }
                let mut all: Vec<ResourceId> = st
                    .desired
                    .keys()
                    .chain(st.live.keys().filter(|id| !st.desired.contains_key(id)))
                    .cloned()
                    .collect();
                all.sort_unstable();
                all
            }
            LiveChange::Disconnected(_) => return Ok(Vec::new()),
        };
        self.reevaluate(state, ids, now).await
    }

    /// Re-evaluates the open drifts of `objects`, the objects new audit events wrote to (see
    /// [`Scanner::ingest_audit`]), so that they name who made them: a drift whose writers grow
    /// gets a `changed` event. Written, kept and announced like a live change. Needs one full
    /// scan first (returns no events before that).
    pub async fn attribute_writes(
        &self,
        objects: &[AuditObject],
    ) -> Result<Vec<DriftEvent>, ScanError> {
        if objects.is_empty() || self.engine.spec.audit.is_none() {
            return Ok(Vec::new());
        }
        let now = self.clock.now();
        let mut guard = self.state.lock().await;
        let state = &mut *guard;
        if state.env.is_none() {
            return Ok(Vec::new());
        }
        let wanted: HashSet<&AuditObject> = objects.iter().collect();
        let mut ids: Vec<ResourceId> = state
            .records
            .values()
            .filter(|r| r.drift.as_deref().is_some_and(Drift::is_open))
            .map(|r| &r.id)
            .filter(|id| wanted.contains(&AuditObject::of(id)))
            .cloned()
            .collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        ids.sort_unstable();
        self.reevaluate(state, ids, now).await
    }

    /// Evaluates `ids` again against the indexed environment and writes what changed (the
    /// second half of a live change).
    async fn reevaluate(
        &self,
        state: &mut ScanState,
        ids: Vec<ResourceId>,
        now: DateTime<Utc>,
    ) -> Result<Vec<DriftEvent>, ScanError> {
        let Some(st) = state.env.as_ref() else {
            return Ok(Vec::new());
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
        let histories = match &self.sides {
            Sides::Manifests { git, .. } if !wanted.is_empty() => {
                git.histories(&wanted, HISTORY_DEPTH).await
            }
            _ => Default::default(),
        };
        let (audit, _) = self
            .audit_evidence(&observations, state.last_full_scan)
            .await;
        let mut ev = self.engine.evaluate_audited(
            st,
            &state.records,
            observations,
            &histories,
            &audit,
            &tick,
        );
        self.credit(&mut ev.events).await;
        let batch = ScanBatch {
            upserts: std::mem::take(&mut ev.upserts),
            deletes: std::mem::take(&mut ev.deletes),
            events: std::mem::take(&mut ev.events),
            ..self.batch(state.epoch)
        };
        let events = batch.events.clone();
        if !batch.is_empty() {
            for id in &ids {
                let open = match ev.records.remove(id) {
                    Some(r) => {
                        let open = r.drift.is_some();
                        state.records.insert(r);
                        open
                    }
                    None => {
                        state.records.remove(id);
                        false
                    }
                };
                if let Some(st) = state.env.as_mut() {
                    st.note_open(id, open);
                }
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

    /// Adds audit events to the environment's index of recent writes (the writes among them:
    /// see [`AuditEvent::is_write`]; the privacy setting is applied first) and saves what
    /// changed, with `cursor` (how far an audit log file was read) in the same save. Never
    /// waits for a scan. Without audit settings ([`crate::engine::EnvironmentSpec::audit`])
    /// every event is ignored.
    ///
    /// When the store refuses the save, the error is returned and the index keeps the events
    /// (and the cursor) in memory, saved with the next ingestion: a sender that posts them
    /// again adds nothing twice (writes are told apart by audit id). Follow with
    /// [`Scanner::attribute_writes`] for the objects it names, so that open drifts name their
    /// writers.
    pub async fn ingest_audit(
        &self,
        events: &[AuditEvent],
        cursor: Option<AuditCursor>,
    ) -> Result<IngestStats, StoreError> {
        let Some(spec) = &self.engine.spec.audit else {
            return Ok(IngestStats {
                received: events.len(),
                ignored: events.len(),
                ..IngestStats::default()
            });
        };
        let now = self.clock.now();
        let mut slot = self.audit.lock().await;
        let index = self.audit_index(&mut slot).await?;
        let stats = index.ingest(events, spec.user_names, &self.engine.normalizer, now);
        if let Some(c) = cursor {
            index.set_cursor(c);
        }
        let changes = index.take_changes();
        if !changes.is_empty() {
            if let Err(e) = self
                .store
                .save_audit_index(self.environment(), &changes)
                .await
            {
                index.restore_changes(&changes);
                return Err(e);
            }
        }
        Ok(stats)
    }

    /// How far the audit log file at `source` was read, as the index keeps it (`None`: never,
    /// or no audit settings).
    pub async fn audit_cursor(&self, source: &str) -> Result<Option<AuditCursor>, StoreError> {
        if self.engine.spec.audit.is_none() {
            return Ok(None);
        }
        let mut slot = self.audit.lock().await;
        Ok(self.audit_index(&mut slot).await?.cursor(source).cloned())
    }

    /// The audit index, read from the store on first use.
    async fn audit_index<'a>(
        &self,
        slot: &'a mut Option<AuditIndex>,
    ) -> Result<&'a mut AuditIndex, StoreError> {
        if slot.is_none() {
            let limits = self
                .engine
                .spec
                .audit
                .as_ref()
                .map(|a| a.limits.clone())
                .unwrap_or_default();
            let kept = self.store.audit_index(self.environment()).await?;
            *slot = Some(AuditIndex::from_snapshot(limits, kept, self.clock.now()));
        }
        Ok(slot.get_or_insert_with(AuditIndex::default))
    }

    /// The audit evidence of an evaluation of `observations`: the indexed writes of the
    /// drifted ones, and when the previous full scan started (`last_scan`, else the newest
    /// full scan the store kept). A store that cannot give the index does not fail the
    /// evaluation: its drifts name no writers this time, and the problem is returned.
    async fn audit_evidence(
        &self,
        observations: &[Observation],
        last_scan: Option<DateTime<Utc>>,
    ) -> (AuditEvidence, Option<String>) {
        if self.engine.spec.audit.is_none() {
            return (AuditEvidence::default(), None);
        }
        let drifted: Vec<&ResourceId> = observations
            .iter()
            .filter(|o| o.presence.drifted())
            .map(|o| &o.id)
            .collect();
        if drifted.is_empty() {
            return (
                AuditEvidence {
                    enabled: true,
                    last_scan,
                    ..AuditEvidence::default()
                },
                None,
            );
        }
        let last_scan = self.previous_scan(last_scan).await;
        let mut slot = self.audit.lock().await;
        match self.audit_index(&mut slot).await {
            Ok(index) => {
                let mut writes = HashMap::new();
                for id in drifted {
                    let w = index.writes(&AuditObject::of(id));
                    if !w.is_empty() {
                        writes.insert(id.clone(), w.to_vec());
                    }
                }
                (
                    AuditEvidence {
                        enabled: true,
                        writes,
                        last_scan,
                        cloud: false,
                    },
                    None,
                )
            }
            Err(e) => (
                AuditEvidence::default(),
                Some(format!(
                    "audit index unavailable (no drift named its writers): {}",
                    crate::error::chain(&e)
                )),
            ),
        }
    }

    /// When the previous full scan started: `known` (this scanner's own), else the newest
    /// full scan the store kept that read the live side (a scan that could not read it saw
    /// nothing in sync).
    async fn previous_scan(&self, known: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
        match known {
            Some(t) => Some(t),
            None => self
                .store
                .scans(Some(self.environment()), 10)
                .await
                .ok()
                .and_then(|v| v.into_iter().find(|s| s.counts.tracked > 0))
                .map(|s| s.started_at),
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
                // a record of what was done: written whichever replica leads
                ..self.batch(None)
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
        // only a remediation of the current opening counts (an episode may recur)
        let Some(since) = rest.iter().map(|&i| events[i].drift.opened_at()).min() else {
            return;
        };
        let mut q = EventQuery {
            environment: Some(self.environment().to_owned()),
            kind: Some(EventKind::Remediated),
            since: Some(since),
            limit: 1000,
            ..EventQuery::default()
        };
        let mut done: HashMap<String, (DateTime<Utc>, RemediationRecord)> = HashMap::new();
        loop {
            // best effort: a store that cannot answer leaves the resolutions as they are
            let Ok(page) = self.store.events(&q).await else {
                break;
            };
            for r in page.items {
                if let Some(rec) = r.remediation.filter(|rec| rec.ok) {
                    done.insert(r.drift.episode, (r.at, rec));
                }
            }
            match page.next_offset {
                Some(next) if next > q.offset => q.offset = next,
                _ => break,
            }
        }
        for i in rest {
            let episode = events[i].drift.episode.clone();
            let opened = events[i].drift.opened_at();
            if let Some((_, r)) = done.get(&episode).filter(|(at, _)| *at >= opened) {
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
