//! Small in-memory implementations of the ports, for tests and for embedding.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::audit::AuditSnapshot;
use crate::id::ResourceId;
use crate::model::{RawLive, Revision};
use crate::ports::{
    Clock, DesiredSet, DriftStore, GitSource, LiveScope, LiveSnapshot, LiveSource, Notification,
    Notifier, NotifyError, ObjectVersion, PruneStats, ScanBatch, ScanSummary, SourceError,
    StoreError,
};
use crate::query::{DriftQuery, EventQuery, Page};
use crate::state::{episode_replaces, Drift, DriftEvent, DriftRecord, EpisodeStamp};

/// A store kept in memory.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<MemoryInner>,
}

#[derive(Debug, Default)]
struct MemoryInner {
    records: BTreeMap<ResourceId, DriftRecord>,
    events: BTreeMap<String, DriftEvent>,
    episodes: BTreeMap<String, Drift>,
    scans: BTreeMap<String, ScanSummary>,
    delivered: HashMap<String, DateTime<Utc>>,
    /// The highest leadership epoch written per environment.
    epochs: HashMap<String, u64>,
    audit: HashMap<String, AuditSnapshot>,
    /// Acknowledgements by environment and episode.
    acks: BTreeMap<(String, String), crate::ack::Acknowledgement>,
    /// People's actions by id.
    actions: BTreeMap<String, crate::actions::PersonAction>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        self.inner
            .lock()
            .expect("memory store lock is never poisoned")
    }
}

#[async_trait]
impl DriftStore for MemoryStore {
    async fn records(&self, environment: &str) -> Result<Vec<DriftRecord>, StoreError> {
        Ok(self
            .lock()
            .records
            .values()
            .filter(|r| r.id.environment == environment)
            .cloned()
            .collect())
    }

    async fn commit(&self, batch: &ScanBatch) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let stored = inner.epochs.get(&batch.environment).copied();
        if let Some(epoch) = crate::fence::check(&batch.environment, stored, batch.epoch)? {
            inner.epochs.insert(batch.environment.clone(), epoch);
        }
        for r in &batch.upserts {
            inner.records.insert(r.id.clone(), r.clone());
        }
        for id in &batch.deletes {
            inner.records.remove(id);
        }
        for e in &batch.events {
            if inner.events.contains_key(&e.event_id) {
                continue;
            }
            inner.events.insert(e.event_id.clone(), e.clone());
            let stored = inner.episodes.get(&e.drift.episode).map(EpisodeStamp::of);
            if episode_replaces(stored, &e.drift) {
                inner
                    .episodes
                    .insert(e.drift.episode.clone(), e.drift.clone());
            }
        }
        if let Some(s) = &batch.summary {
            inner.scans.insert(s.scan_id.clone(), s.clone());
        }
        Ok(())
    }

    async fn drifts(&self, query: &DriftQuery) -> Result<Page<Drift>, StoreError> {
        Ok(query.apply(self.lock().episodes.values().cloned()))
    }

    async fn events(&self, query: &EventQuery) -> Result<Page<DriftEvent>, StoreError> {
        Ok(query.apply(self.lock().events.values().cloned()))
    }

    async fn drift(&self, episode: &str) -> Result<Option<Drift>, StoreError> {
        Ok(self.lock().episodes.get(episode).cloned())
    }

    async fn scans(
        &self,
        environment: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ScanSummary>, StoreError> {
        let mut v: Vec<ScanSummary> = self
            .lock()
            .scans
            .values()
            .filter(|s| environment.is_none_or(|e| s.environment == e))
            .cloned()
            .collect();
        v.sort_by(crate::query::newest_scan_first);
        v.truncate(limit);
        Ok(v)
    }

    async fn prune(&self, before: DateTime<Utc>) -> Result<PruneStats, StoreError> {
        let mut inner = self.lock();
        let mut stats = PruneStats::default();
        let n = inner.events.len();
        inner.events.retain(|_, e| e.at >= before);
        stats.events = (n - inner.events.len()) as u64;
        let n = inner.scans.len();
        inner.scans.retain(|_, s| s.started_at >= before);
        stats.scans = (n - inner.scans.len()) as u64;
        let n = inner.episodes.len();
        inner
            .episodes
            .retain(|_, d| d.resolved_at.is_none_or(|t| t >= before));
        stats.episodes = (n - inner.episodes.len()) as u64;
        inner.acks.retain(|_, a| !crate::ack::pruned(a, before));
        inner.actions.retain(|_, a| a.at >= before);
        Ok(stats)
    }

    async fn delivered_until(&self, notifier: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self.lock().delivered.get(notifier).copied())
    }

    async fn epoch(&self, environment: &str) -> Result<Option<u64>, StoreError> {
        Ok(self.lock().epochs.get(environment).copied())
    }

    async fn set_delivered_until(
        &self,
        notifier: &str,
        until: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let mark = inner.delivered.entry(notifier.to_owned()).or_insert(until);
        *mark = (*mark).max(until);
        Ok(())
    }

    async fn audit_index(&self, environment: &str) -> Result<AuditSnapshot, StoreError> {
        Ok(self
            .lock()
            .audit
            .get(environment)
            .cloned()
            .unwrap_or_default())
    }

    async fn save_audit_index(
        &self,
        environment: &str,
        changes: &AuditSnapshot,
    ) -> Result<(), StoreError> {
        self.lock()
            .audit
            .entry(environment.to_owned())
            .or_default()
            .apply(changes);
        Ok(())
    }

    async fn acknowledgements(
        &self,
        environment: Option<&str>,
    ) -> Result<Vec<crate::ack::Acknowledgement>, StoreError> {
        Ok(self
            .lock()
            .acks
            .values()
            .filter(|a| environment.is_none_or(|e| a.environment() == e))
            .cloned()
            .collect())
    }

    async fn actions(
        &self,
        environment: Option<&str>,
        limit: usize,
    ) -> Result<Vec<crate::actions::PersonAction>, StoreError> {
        let all: Vec<_> = self.lock().actions.values().cloned().collect();
        Ok(crate::actions::newest(all, environment, limit))
    }

    async fn record_actions(
        &self,
        actions: &[crate::actions::PersonAction],
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        for a in actions {
            inner.actions.insert(a.id.clone(), a.clone());
        }
        Ok(())
    }

    async fn save_acknowledgements(
        &self,
        acks: &[crate::ack::Acknowledgement],
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        for a in acks {
            inner
                .acks
                .insert((a.environment().to_owned(), a.episode.clone()), a.clone());
        }
        Ok(())
    }
}

/// A desired side held in memory: revisions of object sets, and object histories.
#[derive(Debug, Default)]
pub struct MemoryGitSource {
    inner: Mutex<MemoryGit>,
}

#[derive(Debug, Default)]
struct MemoryGit {
    current: Option<Revision>,
    sets: HashMap<String, DesiredSet>,
    history: HashMap<ResourceId, Vec<ObjectVersion>>,
    history_supported: bool,
}

impl MemoryGitSource {
    /// An empty source with no revision.
    pub fn new() -> Self {
        MemoryGitSource::default()
    }

    /// Makes `set` the current revision.
    pub fn set(&self, set: DesiredSet) {
        let mut inner = self.inner.lock().expect("lock is never poisoned");
        let rev = set
            .revision
            .clone()
            .unwrap_or_else(|| Revision::plain(format!("mem-{}", inner.sets.len())));
        inner.sets.insert(rev.id.clone(), set);
        inner.current = Some(rev);
    }

    /// Sets the history of one object (newest first) and turns history support on.
    pub fn set_history(&self, id: ResourceId, versions: Vec<ObjectVersion>) {
        let mut inner = self.inner.lock().expect("lock is never poisoned");
        inner.history_supported = true;
        inner.history.insert(id, versions);
    }

    /// Turns history support on (objects without a set history have none).
    pub fn enable_history(&self) {
        self.inner
            .lock()
            .expect("lock is never poisoned")
            .history_supported = true;
    }
}

#[async_trait]
impl GitSource for MemoryGitSource {
    fn describe(&self) -> String {
        "memory".into()
    }

    async fn revision(&self) -> Result<Revision, SourceError> {
        self.inner
            .lock()
            .expect("lock is never poisoned")
            .current
            .clone()
            .ok_or_else(|| SourceError::NotFound {
                what: "no revision set".into(),
            })
    }

    async fn desired(&self, revision: &Revision) -> Result<DesiredSet, SourceError> {
        let inner = self.inner.lock().expect("lock is never poisoned");
        let mut set =
            inner
                .sets
                .get(&revision.id)
                .cloned()
                .ok_or_else(|| SourceError::NotFound {
                    what: format!("revision {}", revision.id),
                })?;
        set.revision = Some(revision.clone());
        Ok(set)
    }

    async fn history(
        &self,
        id: &ResourceId,
        limit: usize,
    ) -> Result<Vec<ObjectVersion>, SourceError> {
        let inner = self.inner.lock().expect("lock is never poisoned");
        if !inner.history_supported {
            return Err(SourceError::Unsupported {
                what: "object history".into(),
            });
        }
        let mut v = inner.history.get(id).cloned().unwrap_or_default();
        v.truncate(limit);
        Ok(v)
    }
}

/// A live side held in memory.
#[derive(Debug, Default)]
pub struct MemoryLiveSource {
    objects: Mutex<Option<Vec<RawLive>>>,
    errors: Mutex<Vec<crate::ports::KindError>>,
}

impl MemoryLiveSource {
    /// An empty cluster.
    pub fn new() -> Self {
        MemoryLiveSource {
            objects: Mutex::new(Some(Vec::new())),
            errors: Mutex::new(Vec::new()),
        }
    }

    /// Replaces the objects.
    pub fn set(&self, objects: Vec<RawLive>) {
        *self.objects.lock().expect("lock is never poisoned") = Some(objects);
    }

    /// Makes the cluster unreachable (`None`) or reachable again.
    pub fn set_unreachable(&self) {
        *self.objects.lock().expect("lock is never poisoned") = None;
    }

    /// Kinds that fail to list.
    pub fn set_errors(&self, errors: Vec<crate::ports::KindError>) {
        *self.errors.lock().expect("lock is never poisoned") = errors;
    }
}

#[async_trait]
impl LiveSource for MemoryLiveSource {
    fn describe(&self) -> String {
        "memory".into()
    }

    async fn snapshot(&self, scope: &LiveScope) -> Result<LiveSnapshot, SourceError> {
        let objects = self
            .objects
            .lock()
            .expect("lock is never poisoned")
            .clone()
            .ok_or_else(|| SourceError::Unreachable {
                target: "memory cluster".into(),
                source: "set unreachable by the test".into(),
            })?;
        let rule = scope.admission()?;
        // kinds that fail to list, as a cluster reports them: those of the scope only
        let errors: Vec<crate::ports::KindError> = self
            .errors
            .lock()
            .expect("lock is never poisoned")
            .iter()
            .filter(|e| rule.admits_kind(&e.kind))
            .cloned()
            .collect();
        let in_scope = |o: &RawLive| {
            let meta = o.object.meta();
            rule.admits(o.object.value())
                && !errors.iter().any(|e| {
                    e.kind.kind == meta.kind
                        && e.kind.group == crate::id::GroupKind::group_of(meta.api_version)
                })
        };
        Ok(LiveSnapshot {
            served: Vec::new(),
            objects: objects.into_iter().filter(in_scope).collect(),
            errors,
        })
    }
}

/// A plan source held in memory: the check it gives, and the commits of files.
#[derive(Debug, Default)]
pub struct MemoryPlanSource {
    inner: Mutex<MemoryPlans>,
}

#[derive(Debug, Default)]
struct MemoryPlans {
    run: Option<crate::terraform::PlanRun>,
    unreachable: bool,
    commits: HashMap<String, crate::model::CommitInfo>,
    /// The cloud's trail: events by cloud id (`None`: no trail is read).
    trail: Option<Vec<(String, crate::audit::CloudEvent)>>,
    /// What the trail was asked, each check's queries in turn.
    asked: Vec<Vec<crate::audit::CloudWriteQuery>>,
}

impl MemoryPlanSource {
    /// A source with no check yet (a scan fails until [`MemoryPlanSource::set`]).
    pub fn new() -> Self {
        MemoryPlanSource::default()
    }

    /// The check every scan gets from now on.
    pub fn set(&self, run: crate::terraform::PlanRun) {
        let mut inner = self.inner.lock().expect("lock is never poisoned");
        inner.run = Some(run);
        inner.unreachable = false;
    }

    /// Makes the cloud unreachable until the next [`MemoryPlanSource::set`].
    pub fn set_unreachable(&self) {
        self.inner
            .lock()
            .expect("lock is never poisoned")
            .unreachable = true;
    }

    /// The newest commit that changed `file`.
    pub fn set_commit(&self, file: impl Into<String>, commit: crate::model::CommitInfo) {
        self.inner
            .lock()
            .expect("lock is never poisoned")
            .commits
            .insert(file.into(), commit);
    }

    /// The cloud's trail from now on: each event with the cloud id it names (every event of
    /// an id asked for is answered; the window is the caller's).
    pub fn set_trail(&self, events: Vec<(String, crate::audit::CloudEvent)>) {
        self.inner.lock().expect("lock is never poisoned").trail = Some(events);
    }

    /// What the trail was asked, each check's queries in turn.
    pub fn trail_queries(&self) -> Vec<Vec<crate::audit::CloudWriteQuery>> {
        self.inner
            .lock()
            .expect("lock is never poisoned")
            .asked
            .clone()
    }
}

#[async_trait]
impl crate::ports::PlanSource for MemoryPlanSource {
    fn describe(&self) -> String {
        "memory plans".into()
    }

    async fn plan(&self) -> Result<crate::terraform::PlanRun, SourceError> {
        let inner = self.inner.lock().expect("lock is never poisoned");
        if inner.unreachable {
            return Err(SourceError::Unreachable {
                target: "memory cloud".into(),
                source: "set unreachable by the test".into(),
            });
        }
        inner.run.clone().ok_or_else(|| SourceError::NotFound {
            what: "no plans set".into(),
        })
    }

    async fn cloud_writes(
        &self,
        wanted: &[crate::audit::CloudWriteQuery],
    ) -> crate::audit::CloudWrites {
        let mut inner = self.inner.lock().expect("lock is never poisoned");
        let Some(trail) = inner.trail.clone() else {
            return crate::audit::CloudWrites::default();
        };
        inner.asked.push(wanted.to_vec());
        let events = wanted
            .iter()
            .map(|q| {
                let found = trail
                    .iter()
                    .filter(|(id, _)| *id == q.cloud_id)
                    .map(|(_, e)| e.clone())
                    .collect();
                (q.id.clone(), found)
            })
            .collect();
        crate::audit::CloudWrites {
            enabled: true,
            events,
            ..crate::audit::CloudWrites::default()
        }
    }

    async fn last_commits(&self, files: &[String]) -> HashMap<String, crate::model::CommitInfo> {
        let inner = self.inner.lock().expect("lock is never poisoned");
        files
            .iter()
            .filter_map(|f| inner.commits.get(f).map(|c| (f.clone(), c.clone())))
            .collect()
    }
}

/// A notifier that keeps what it was sent.
#[derive(Debug, Default)]
pub struct RecordingNotifier {
    /// Notifications received.
    pub received: Mutex<Vec<Notification>>,
}

#[async_trait]
impl Notifier for RecordingNotifier {
    fn name(&self) -> &str {
        "recording"
    }

    async fn notify(&self, notification: &Notification) -> Result<(), NotifyError> {
        self.received
            .lock()
            .expect("lock is never poisoned")
            .push(notification.clone());
        Ok(())
    }
}

/// A clock set by hand.
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    /// A clock showing `t`.
    pub fn new(t: DateTime<Utc>) -> Self {
        ManualClock(Mutex::new(t))
    }

    /// Moves the clock.
    pub fn set(&self, t: DateTime<Utc>) {
        *self.0.lock().expect("lock is never poisoned") = t;
    }

    /// Moves the clock forward.
    pub fn advance(&self, d: chrono::Duration) {
        let mut g = self.0.lock().expect("lock is never poisoned");
        *g += d;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("lock is never poisoned")
    }
}
