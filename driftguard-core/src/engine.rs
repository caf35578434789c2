//! The scan engine.
//!
//! [`Engine`] is pure: it indexes normalized desired and live objects ([`EnvState`]) and turns
//! one object's two sides into an [`Observation`]. [`Scanner`] wires it to the ports: read
//! desired and live, normalize, compare by hash first and diff only what differs, run the state
//! machine against the stored records, store, notify, and report. Re-evaluating one object after
//! a live change ([`Scanner::apply_live_change`]) touches only that object.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::compare::{compare_docs, compare_nodes, Comparison};
use crate::convert::convert;
use crate::doc::{Doc, Node};
use crate::id::{GroupKind, ResourceId};
use crate::ignore::{IgnoreRules, JsonPointer};
use crate::managed::{owned_by_any, owners_of};
use crate::manifest::ManifestError;
use crate::model::{ObjectMeta, RawLive, RawObject, Revision};
use crate::normalize::{field, identify, DesiredObject, LiveObject, Normalizer};
use crate::ports::{
    Clock, DesiredSet, DriftStore, GitSource, GroupVersionKind, LiveChange, LiveScope,
    LiveSnapshot, LiveSource, Notification, Notifier, ScanBatch, ScanCounts, ScanSummary,
    SourceError, StoreError,
};
use crate::scope::Scopes;
use crate::severity::{drift_score, SeverityRules};
use crate::state::{
    transition, Direction, Drift, DriftEvent, DriftKind, DriftRecord, Observation, Presence, Tick,
};

/// Settings of one environment that the engine needs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvironmentSpec {
    /// Name.
    pub name: String,
    /// Ignore rules.
    pub ignore: IgnoreRules,
    /// Severity overrides.
    pub severity: SeverityRules,
    /// When a HorizontalPodAutoscaler targets an object, its `spec.replicas` is not drift
    /// (default true; see [`EnvironmentSpec::new`]).
    pub hpa_owns_replicas: bool,
    /// Namespaces fully managed by Git (orphans are looked for there). Default: the namespaces
    /// Git itself defines.
    pub managed_namespaces: Option<Vec<String>>,
    /// Kinds in which orphans are looked for. Default: the kinds Git defines.
    pub orphan_kinds: Option<Vec<GroupKind>>,
    /// Namespaces to read from the cluster (empty: all).
    pub namespaces: Vec<String>,
    /// Extra kinds to read besides those Git defines.
    pub extra_kinds: Vec<GroupVersionKind>,
    /// The namespace a namespaced manifest without `metadata.namespace` is applied to, as
    /// `kubectl apply -n <namespace>` (or an Argo CD destination namespace) gives it. Default:
    /// `default`. Which kinds are namespaced: see [`crate::scope`].
    #[serde(default)]
    pub default_namespace: Option<String>,
}

impl EnvironmentSpec {
    /// An environment with default settings.
    pub fn new(name: impl Into<String>) -> Self {
        EnvironmentSpec {
            name: name.into(),
            hpa_owns_replicas: true,
            ..EnvironmentSpec::default()
        }
    }

    /// [`EnvironmentSpec::default_namespace`], or `default`.
    pub fn default_namespace(&self) -> &str {
        self.default_namespace.as_deref().unwrap_or("default")
    }
}

/// A hash map with a fast, randomly seeded hasher (foldhash) for the engine's indexes.
pub type FastMap<K, V> = foldhash::HashMap<K, V>;

/// A hash set with a fast, randomly seeded hasher (foldhash) for the engine's indexes.
pub type FastSet<T> = foldhash::HashSet<T>;

/// The normalized state of one environment, kept between scans for incremental use.
#[derive(Clone, Debug, Default)]
pub struct EnvState {
    /// Desired objects by identity.
    pub desired: FastMap<ResourceId, DesiredObject>,
    /// Live objects that are tracked (in Git, or eligible as orphans).
    pub live: FastMap<ResourceId, LiveObject>,
    /// Objects whose replicas an HPA owns.
    pub hpa_targets: FastSet<ResourceId>,
    /// Namespaces fully managed by Git.
    pub managed_namespaces: FastSet<String>,
    /// Kinds in which orphans count.
    pub orphan_kinds: FastSet<GroupKind>,
    /// PersistentVolumeClaims made from StatefulSet `volumeClaimTemplates`, as
    /// `(namespace, name prefix)`: `<template>-<statefulset>-`.
    pub claim_prefixes: FastSet<(String, String)>,
    /// Kinds whose live state is unknown (could not be read).
    pub unknown_kinds: FastSet<GroupKind>,
    /// Problems met (manifest errors, duplicates, unreadable kinds).
    pub errors: Vec<ManifestError>,
    /// Problems reading live kinds.
    pub live_errors: Vec<String>,
    /// The Git revision.
    pub revision: Option<Revision>,
}

/// The pure part of the engine.
#[derive(Clone, Debug)]
pub struct Engine {
    /// The environment.
    pub spec: EnvironmentSpec,
    /// The normalizer (holds the Secret key).
    pub normalizer: Normalizer,
}

impl Engine {
    /// An engine for one environment.
    pub fn new(spec: EnvironmentSpec, normalizer: Normalizer) -> Self {
        Engine { spec, normalizer }
    }

    /// The live scope: the kinds Git defines, in the version Git uses, plus configured ones.
    pub fn live_scope(&self, desired: &DesiredSet) -> LiveScope {
        self.scope_of(desired.objects.iter().map(|m| {
            let meta = m.object.meta();
            GroupVersionKind::from_api_version(meta.api_version, meta.kind)
        }))
    }

    /// The live scope for these kinds plus the configured ones, one version per group/kind.
    fn scope_of(&self, kinds: impl Iterator<Item = GroupVersionKind>) -> LiveScope {
        let mut kinds: BTreeSet<GroupVersionKind> = kinds.collect();
        kinds.extend(self.spec.extra_kinds.iter().cloned());
        let mut seen = HashSet::new();
        LiveScope {
            kinds: kinds
                .into_iter()
                .filter(|k| seen.insert(k.group_kind()))
                .collect(),
            namespaces: self.spec.namespaces.clone(),
            label_selector: None,
        }
    }

    fn pointers(&self, id: &ResourceId, hpa_targets: &FastSet<ResourceId>) -> Vec<JsonPointer> {
        let mut p = if self.spec.ignore.rules.is_empty() {
            Vec::new()
        } else {
            self.spec.ignore.pointers_for(id)
        };
        if self.spec.hpa_owns_replicas && !hpa_targets.is_empty() && hpa_targets.contains(id) {
            p.push(JsonPointer::parse("/spec/replicas").expect("static pointer is valid"));
        }
        p
    }

    /// Normalizes and indexes both sides. The raw objects are only read: the state keeps
    /// compact normalized copies.
    pub fn index(&self, desired: &DesiredSet, live: &LiveSnapshot) -> EnvState {
        let env = &self.spec.name;
        let mut st = EnvState {
            revision: desired.revision.clone(),
            errors: desired.errors.clone(),
            ..EnvState::default()
        };
        // desired objects without a namespace are in the default one (live ones never lack it)
        let default_ns = self.spec.default_namespace();
        for (raw, ns) in desired
            .objects
            .iter()
            .map(|m| (&m.object, Some(default_ns)))
            .chain(live.objects.iter().map(|l| (&l.object, None)))
        {
            match kind_of(raw) {
                Some("HorizontalPodAutoscaler") => {
                    st.hpa_targets.extend(hpa_target(env, raw, ns));
                }
                Some("StatefulSet") => st.claim_prefixes.extend(claim_prefixes(raw, ns)),
                _ => {}
            }
        }
        let mut scopes: Option<Scopes> = None;
        st.desired.reserve(desired.objects.len());
        for m in &desired.objects {
            let result = identify(env, &m.object.0).and_then(|(mut id, api_version)| {
                if id.namespace.is_none()
                    && scopes
                        .get_or_insert_with(|| learn_scopes(desired, live))
                        .namespaced(&id.group, &id.kind)
                {
                    id.namespace = Some(default_ns.to_owned());
                }
                let pointers = self.pointers(&id, &st.hpa_targets);
                match st.desired.entry(id) {
                    Entry::Occupied(first) => Ok(Err(format!(
                        "duplicate object {}: also defined at {}",
                        first.key(),
                        first.get().provenance
                    ))),
                    Entry::Vacant(slot) => {
                        let id = slot.key().clone();
                        let d = self.normalizer.desired_as(id, api_version, m, &pointers)?;
                        slot.insert(d);
                        Ok(Ok(()))
                    }
                }
            });
            let message = match result {
                Ok(Ok(())) => continue,
                Ok(Err(duplicate)) => duplicate,
                Err(e) => e.to_string(),
            };
            st.errors.push(ManifestError {
                file: m.provenance.file.clone(),
                line: m.provenance.line,
                field: None,
                message,
            });
        }
        st.managed_namespaces = match &self.spec.managed_namespaces {
            Some(list) => list.iter().cloned().collect(),
            None => st
                .desired
                .keys()
                .filter(|id| id.group.is_empty() && id.kind == "Namespace")
                .map(|id| id.name.clone())
                .collect(),
        };
        st.orphan_kinds = match &self.spec.orphan_kinds {
            Some(list) => list.iter().cloned().collect(),
            None => st.desired.keys().map(ResourceId::group_kind).collect(),
        };
        for e in &live.errors {
            st.unknown_kinds.insert(e.kind.clone());
            st.live_errors
                .push(format!("cannot read {}: {}", e.kind, e.message));
        }
        st.live.reserve(live.objects.len());
        for raw in &live.objects {
            self.track_live(&mut st, raw);
        }
        st
    }

    /// Like [`Engine::index`], taking the raw objects (dropped afterwards).
    pub fn index_owned(&self, desired: DesiredSet, live: LiveSnapshot) -> EnvState {
        self.index(&desired, &live)
    }

    /// Normalizes one live object into `st` if it is tracked. Returns its identity.
    pub fn insert_live(&self, st: &mut EnvState, raw: &RawLive) -> Option<ResourceId> {
        let id = raw.object.meta().id(&self.spec.name);
        self.track_live(st, raw).then_some(id)
    }

    /// [`Engine::insert_live`] without handing the identity back.
    fn track_live(&self, st: &mut EnvState, raw: &RawLive) -> bool {
        let Ok((id, api_version)) = identify(&self.spec.name, &raw.object.0) else {
            return false;
        };
        let desired = st.desired.get(&id);
        if desired.is_none() && !st.orphan_kinds.contains(&id.group_kind()) {
            return false;
        }
        let pointers = self.pointers(&id, &st.hpa_targets);
        // compared once, here, before the content is stored: what an object in sync with Git
        // keeps is its comparison
        let judged =
            self.normalizer
                .live_view_as(
                    id.clone(),
                    api_version,
                    raw,
                    &pointers,
                    |content| match desired {
                        Some(d) => {
                            let cmp = self.compare_with(d, api_version, content);
                            let differs = !cmp.in_sync();
                            (Some(cmp), differs)
                        }
                        None => (None, true),
                    },
                );
        let Ok((mut live, cmp)) = judged else {
            return false;
        };
        match cmp {
            Some(cmp) => {
                // attribution data is kept only when it can be needed
                if !cmp.in_sync() {
                    self.normalizer
                        .attach_attribution(raw, &pointers, &mut live);
                }
                live.compared = Some(cmp);
            }
            None => {
                if !orphan_eligible(st, &id, &live) {
                    st.live.remove(&id);
                    return false;
                }
                self.normalizer
                    .attach_attribution(raw, &pointers, &mut live);
            }
        }
        st.live.insert(id, live);
        true
    }

    /// Like [`Engine::insert_live`], taking the raw object.
    pub fn insert_live_owned(&self, st: &mut EnvState, raw: RawLive) -> Option<ResourceId> {
        self.insert_live(st, &raw)
    }

    /// What is seen of one object. Severity and evidence from last-applied are filled in;
    /// history-based evidence and the commit are left to the caller.
    pub fn observe(&self, st: &EnvState, id: &ResourceId) -> Observation {
        let d = st.desired.get(id);
        let l = st.live.get(id);
        let api_version = d
            .map(|d| d.object.api_version.clone())
            .or_else(|| l.map(|l| l.object.api_version.clone()))
            .unwrap_or_default();
        let mut obs = match (d, l) {
            (Some(d), Some(l)) => {
                // indexed objects were compared when the live side was indexed
                let cmp = match &l.compared {
                    Some(cmp) => cmp.clone(),
                    None => self.compare_fields(d, l),
                };
                let cmp = self.ignore_managers(id, l, cmp);
                let mut obs = Observation::new(id.clone(), api_version, Presence::Both(cmp));
                if let Presence::Both(cmp) = &obs.presence {
                    if !cmp.in_sync() {
                        obs.evidence = self.last_applied_evidence(st, d, l);
                        let mut managed = l.managed_fields();
                        if obs.evidence == Some(Direction::Forward) {
                            // the last client-side apply wrote Git's values, and live differs:
                            // that manager is not who changed the field (a 1.20 server does not
                            // record `kubectl scale` in managedFields, for one)
                            managed.retain(|e| e.manager != "kubectl-client-side-apply");
                        }
                        obs.owners = owners_of(&managed, &cmp.drifted_paths());
                        obs.severity =
                            self.spec
                                .severity
                                .classify(id, DriftKind::Modified, &cmp.drifted);
                    }
                }
                obs
            }
            (Some(d), None) => {
                let fields = compare_docs(&id.group, &id.kind, &d.object.content, &Doc::null())
                    .desired_fields();
                let mut obs = Observation::new(
                    id.clone(),
                    api_version,
                    Presence::DesiredOnly {
                        desired_hash: fields.combined(),
                        fields,
                    },
                );
                obs.severity = self.spec.severity.classify(id, DriftKind::Missing, &[]);
                obs
            }
            (None, Some(l)) => {
                let mut obs = Observation::new(
                    id.clone(),
                    api_version,
                    Presence::LiveOnly {
                        live_hash: l.object.content.hash(),
                    },
                );
                obs.severity = self.spec.severity.classify(id, DriftKind::Orphan, &[]);
                obs
            }
            (None, None) => Observation::new(id.clone(), api_version, Presence::Neither),
        };
        obs.provenance = d.map(|d| d.provenance.clone());
        obs
    }

    /// Compares the two sides of one object, with version conversion and ignored managers.
    pub fn compare(&self, d: &DesiredObject, l: &LiveObject) -> Comparison {
        self.ignore_managers(&d.object.id, l, self.compare_fields(d, l))
    }

    /// Drops drift in fields that ignored field managers own.
    fn ignore_managers(&self, id: &ResourceId, l: &LiveObject, mut cmp: Comparison) -> Comparison {
        if !cmp.in_sync() {
            let managers = self.spec.ignore.managers_for(id);
            if !managers.is_empty() {
                let managed = l.managed_fields();
                cmp.retain_drift(|p| !owned_by_any(&managed, &managers, p));
            }
        }
        cmp
    }

    /// Compares the fields of both sides, with version conversion.
    fn compare_fields(&self, d: &DesiredObject, l: &LiveObject) -> Comparison {
        self.compare_with(d, &l.object.api_version, l.object.content.root())
    }

    /// Compares a desired object with live content read in `live_version`.
    fn compare_with(&self, d: &DesiredObject, live_version: &str, live: Node<'_>) -> Comparison {
        let id = &d.object.id;
        let converted = (d.object.api_version != live_version)
            .then(|| {
                convert(
                    &id.kind,
                    &d.object.api_version,
                    live_version,
                    &d.object.content.to_value(),
                )
            })
            .flatten()
            .map(|v| Doc::from_value(&v));
        let desired = converted.as_ref().unwrap_or(&d.object.content);
        compare_nodes(&id.group, &id.kind, desired.root(), live)
    }

    /// Whether a live object equals an earlier desired version (normalized the same way).
    pub fn live_equals(&self, st: &EnvState, id: &ResourceId, earlier: &RawObject) -> bool {
        let Some(l) = st.live.get(id) else {
            return false;
        };
        let pointers = self.pointers(id, &st.hpa_targets);
        let Ok(n) = self
            .normalizer
            .normalize(&self.spec.name, &earlier.0, &pointers)
        else {
            return false;
        };
        let d = DesiredObject {
            object: n,
            provenance: Default::default(),
        };
        self.compare(&d, l).in_sync()
    }
}

fn kind_of(raw: &RawObject) -> Option<&str> {
    field(raw.0.as_object()?, "kind")?.as_str()
}

/// What the desired and live objects tell of the scope of kinds.
fn learn_scopes(desired: &DesiredSet, live: &LiveSnapshot) -> Scopes {
    let mut scopes = Scopes::default();
    for m in &desired.objects {
        if kind_of(&m.object) == Some("CustomResourceDefinition") {
            scopes.learn_definition(&m.object.0);
        }
    }
    for l in &live.objects {
        let meta = l.object.meta();
        scopes.learn_live(&meta.group_kind(), meta.namespace.is_some());
    }
    scopes
}

/// The object an HPA scales; `default_ns` is the HPA's namespace when it sets none.
fn hpa_target(env: &str, raw: &RawObject, default_ns: Option<&str>) -> Option<ResourceId> {
    if kind_of(raw) != Some("HorizontalPodAutoscaler") {
        return None;
    }
    let meta = raw.meta();
    if meta.kind != "HorizontalPodAutoscaler" || meta.group_kind().group != "autoscaling" {
        return None;
    }
    let target = raw.0.get("spec")?.get("scaleTargetRef")?;
    let target_meta = ObjectMeta {
        api_version: target
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or(""),
        kind: target.get("kind").and_then(Value::as_str)?,
        name: target.get("name").and_then(Value::as_str)?,
        namespace: meta.namespace.or(default_ns),
    };
    Some(target_meta.id(env))
}

/// Name prefixes of the claims a StatefulSet makes from its `volumeClaimTemplates`;
/// `default_ns` is the StatefulSet's namespace when it sets none.
fn claim_prefixes(raw: &RawObject, default_ns: Option<&str>) -> Vec<(String, String)> {
    if kind_of(raw) != Some("StatefulSet") {
        return Vec::new();
    }
    let meta = raw.meta();
    if meta.kind != "StatefulSet" || meta.group_kind().group != "apps" {
        return Vec::new();
    }
    let Some(templates) = raw
        .0
        .get("spec")
        .and_then(|s| s.get("volumeClaimTemplates"))
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    let ns = meta.namespace.or(default_ns).unwrap_or("").to_owned();
    templates
        .iter()
        .filter_map(|t| t.get("metadata")?.get("name")?.as_str())
        .map(|t| (ns.clone(), format!("{t}-{}-", meta.name)))
        .collect()
}

fn made_by_statefulset(st: &EnvState, id: &ResourceId) -> bool {
    if !(id.group.is_empty() && id.kind == "PersistentVolumeClaim") {
        return false;
    }
    let ns = id.namespace.clone().unwrap_or_default();
    st.claim_prefixes.iter().any(|(n, prefix)| {
        n == &ns
            && id
                .name
                .strip_prefix(prefix.as_str())
                .is_some_and(|ordinal| ordinal.bytes().all(|b| b.is_ascii_digit()))
    })
}

fn orphan_eligible(st: &EnvState, id: &ResourceId, live: &LiveObject) -> bool {
    if !st.orphan_kinds.contains(&id.group_kind()) || made_by_statefulset(st, id) {
        return false;
    }
    if live.meta.tracking {
        return true;
    }
    let managed_ns = id
        .namespace
        .as_ref()
        .is_some_and(|ns| st.managed_namespaces.contains(ns));
    managed_ns && !live.meta.owned && !live.meta.system_default
}

impl Engine {
    /// Direction evidence from the last-applied annotation, for objects with no history.
    fn last_applied_evidence(
        &self,
        st: &EnvState,
        d: &DesiredObject,
        l: &LiveObject,
    ) -> Option<Direction> {
        let id = &d.object.id;
        let pointers = self.pointers(id, &st.hpa_targets);
        let la = self
            .normalizer
            .last_applied(&self.spec.name, l, &pointers)?;
        last_applied_evidence(d, l, &la)
    }
}

fn last_applied_evidence(d: &DesiredObject, l: &LiveObject, la: &Doc) -> Option<Direction> {
    if la == &d.object.content {
        // Git's current version was applied, and live differs from it: changed by hand
        return Some(Direction::Forward);
    }
    let id = &d.object.id;
    if compare_docs(&id.group, &id.kind, la, &l.object.content).in_sync() {
        // live is still what was applied last, and Git moved on
        return Some(Direction::Reverse);
    }
    None
}

/// The verdict on one object in a report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// The object.
    pub id: ResourceId,
    /// `in-sync`, `drifted` or `unknown`.
    pub status: VerdictStatus,
    /// The open drift.
    pub drift: Option<Drift>,
}

/// Status of one object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VerdictStatus {
    /// Both sides agree.
    InSync,
    /// There is an open drift.
    Drifted,
    /// The live state could not be read.
    Unknown,
}

/// The result of one scan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScanReport {
    /// Summary (as stored).
    pub summary: ScanSummary,
    /// Per-object verdicts, drifted first.
    pub verdicts: Vec<Verdict>,
    /// Events emitted.
    pub events: Vec<DriftEvent>,
    /// Manifests that could not be read.
    pub manifest_errors: Vec<ManifestError>,
    /// Notes from the sources.
    pub notes: Vec<String>,
    /// Notifications that failed.
    pub notify_errors: Vec<String>,
}

impl ScanReport {
    /// The open drifts.
    pub fn drifts(&self) -> impl Iterator<Item = &Drift> {
        self.verdicts.iter().filter_map(|v| v.drift.as_ref())
    }
}

/// Why a scan failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The desired side could not be read at all.
    #[error("cannot read the desired state ({source_name})")]
    Desired {
        /// The source.
        source_name: String,
        /// The cause.
        #[source]
        source: SourceError,
    },
    /// The live side could not be read at all: its state is unknown, nothing was resolved.
    #[error("cannot read the live state ({source_name})")]
    Live {
        /// The source.
        source_name: String,
        /// The cause.
        #[source]
        source: SourceError,
    },
    /// The store failed.
    #[error("store failed")]
    Store(#[from] StoreError),
}

/// The engine wired to its ports, for one environment.
pub struct Scanner {
    /// The pure engine.
    pub engine: Engine,
    /// Desired side.
    pub git: Arc<dyn GitSource>,
    /// Live side.
    pub live: Arc<dyn LiveSource>,
    /// History.
    pub store: Arc<dyn DriftStore>,
    /// Where to announce events.
    pub notifiers: Vec<Arc<dyn Notifier>>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    state: Mutex<Option<EnvState>>,
    records: Mutex<HashMap<ResourceId, DriftRecord>>,
    seq: std::sync::atomic::AtomicU64,
}

/// How many Git versions of a drifted object are read for evidence and attribution.
const HISTORY_DEPTH: usize = 20;

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
            state: Mutex::new(None),
            records: Mutex::new(HashMap::new()),
            seq: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Adds a notifier.
    pub fn with_notifier(mut self, n: Arc<dyn Notifier>) -> Self {
        self.notifiers.push(n);
        self
    }

    fn env(&self) -> &str {
        &self.engine.spec.name
    }

    fn scan_id(&self, now: chrono::DateTime<chrono::Utc>) -> String {
        let n = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{}-{}-{n}", self.env(), now.timestamp_millis())
    }

    /// The live scope of the last scan (for watches).
    pub fn live_scope(&self) -> Option<LiveScope> {
        let st = self.state.lock().expect("state lock is never poisoned");
        st.as_ref().map(|st| {
            self.engine.scope_of(st.desired.values().map(|d| {
                GroupVersionKind::from_api_version(&d.object.api_version, &d.object.id.kind)
            }))
        })
    }

    /// One full scan.
    pub async fn scan(&self) -> Result<ScanReport, ScanError> {
        let started = self.clock.now();
        let scan_id = self.scan_id(started);
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
                    environment: self.env().to_owned(),
                    started_at: started,
                    duration_ms: elapsed_ms(started, self.clock.now()),
                    revision: desired.revision.as_ref().map(|r| r.id.clone()),
                    counts: ScanCounts::default(),
                    score: 0.0,
                    errors: vec![format!("live state unknown: {source}")],
                    events: 0,
                };
                self.store
                    .commit(&ScanBatch {
                        environment: self.env().to_owned(),
                        summary: Some(summary),
                        ..ScanBatch::default()
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
            .records(self.env())
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
        let mut ids: BTreeSet<&ResourceId> = st.desired.keys().collect();
        ids.extend(st.live.keys());
        ids.extend(records.keys());
        let mut batch = ScanBatch {
            environment: self.env().to_owned(),
            ..ScanBatch::default()
        };
        let mut verdicts = Vec::new();
        let mut counts = ScanCounts::default();
        let mut next_records = HashMap::new();
        for id in ids {
            let prev = records.get(id);
            if st.unknown_kinds.contains(&id.group_kind()) {
                counts.unknown += 1;
                verdicts.push(Verdict {
                    id: id.clone(),
                    status: VerdictStatus::Unknown,
                    drift: prev.and_then(|r| r.drift.clone()),
                });
                if let Some(p) = prev {
                    next_records.insert(id.clone(), p.clone());
                }
                continue;
            }
            let mut obs = self.engine.observe(&st, id);
            self.enrich(&st, prev, &mut obs, &tick).await;
            let t = transition(prev, &obs, &tick);
            batch.events.extend(t.events);
            match t.record {
                Some(r) => {
                    counts.tracked += 1;
                    match r.drift.as_ref().map(|d| d.kind) {
                        None => counts.in_sync += 1,
                        Some(DriftKind::Modified) => counts.modified += 1,
                        Some(DriftKind::Missing) => counts.missing += 1,
                        Some(DriftKind::Orphan) => counts.orphan += 1,
                    }
                    verdicts.push(Verdict {
                        id: id.clone(),
                        status: if r.drift.is_some() {
                            VerdictStatus::Drifted
                        } else {
                            VerdictStatus::InSync
                        },
                        drift: r.drift.clone(),
                    });
                    if t.changed {
                        batch.upserts.push(r.clone());
                    }
                    next_records.insert(id.clone(), r);
                }
                None => {
                    if prev.is_some() {
                        batch.deletes.push(id.clone());
                    }
                }
            }
        }
        verdicts.sort_by(|a, b| {
            let rank = |v: &Verdict| match v.status {
                VerdictStatus::Drifted => 0,
                VerdictStatus::Unknown => 1,
                VerdictStatus::InSync => 2,
            };
            rank(a).cmp(&rank(b)).then(a.id.cmp(&b.id))
        });
        let score = drift_score(
            counts.tracked,
            verdicts
                .iter()
                .filter_map(|v| v.drift.as_ref().map(|d| d.severity)),
        );
        let mut errors: Vec<String> = st.errors.iter().map(ToString::to_string).collect();
        errors.extend(st.live_errors.iter().cloned());
        errors.extend(warnings);
        let summary = ScanSummary {
            scan_id,
            environment: self.env().to_owned(),
            started_at: started,
            duration_ms: elapsed_ms(started, self.clock.now()),
            revision: tick.revision.clone(),
            counts,
            score,
            errors,
            events: batch.events.len(),
        };
        batch.summary = Some(summary.clone());
        self.store.commit(&batch).await?;
        let notify_errors = self.announce(&batch.events).await;
        let report = ScanReport {
            summary,
            verdicts,
            events: batch.events,
            manifest_errors: st.errors.clone(),
            notes,
            notify_errors,
        };
        *self.records.lock().expect("records lock is never poisoned") = next_records;
        *self.state.lock().expect("state lock is never poisoned") = Some(st);
        Ok(report)
    }

    /// Fills in the commit and history-based evidence for drifted observations.
    async fn enrich(
        &self,
        st: &EnvState,
        prev: Option<&DriftRecord>,
        obs: &mut Observation,
        tick: &Tick,
    ) {
        let drifted = match &obs.presence {
            Presence::Both(c) => !c.in_sync(),
            Presence::DesiredOnly { .. } | Presence::LiveOnly { .. } => true,
            Presence::Neither => false,
        };
        if !drifted {
            return;
        }
        // only look history up when something new is to be said
        let open = prev.and_then(|r| r.drift.as_ref());
        let unchanged = match (&obs.presence, open) {
            (Presence::Both(c), Some(d)) => d.fields == c.drifted,
            (_, Some(_)) => true,
            _ => false,
        };
        if unchanged {
            // nothing new: the commit named when it was detected still stands
            if obs.commit.is_none() {
                obs.commit = open.and_then(|d| d.attribution.commit.clone());
            }
            return;
        }
        let Ok(versions) = self.git.history(&obs.id, HISTORY_DEPTH).await else {
            return;
        };
        obs.commit = versions.first().map(|v| v.commit.clone());
        let no_history = prev.is_none_or(|r| r.baseline.is_none());
        match &obs.presence {
            Presence::Both(_) if no_history && obs.evidence.is_none() => {
                // live equals an earlier Git version: the newer commits were not applied
                for (i, v) in versions.iter().enumerate().skip(1) {
                    if let Some(o) = &v.object {
                        if self.engine.live_equals(st, &obs.id, o) {
                            obs.evidence = Some(Direction::Reverse);
                            obs.commit = versions.get(i - 1).map(|v| v.commit.clone());
                            break;
                        }
                    }
                }
            }
            Presence::LiveOnly { .. } if tick.first_scan || prev.is_none() => {
                obs.evidence = Some(if versions.is_empty() {
                    Direction::Forward
                } else {
                    Direction::Reverse
                });
            }
            _ => {}
        }
    }

    async fn announce(&self, events: &[DriftEvent]) -> Vec<String> {
        let mut errors = Vec::new();
        if events.is_empty() {
            return errors;
        }
        let n = Notification {
            environment: self.env().to_owned(),
            events: events.to_vec(),
        };
        for notifier in &self.notifiers {
            if let Err(e) = notifier.notify(&n).await {
                errors.push(format!("{}: {e}", notifier.name()));
            }
        }
        errors
    }

    /// Re-evaluates only the object a live change touched. Needs one full scan first (returns
    /// no events before that).
    pub async fn apply_live_change(
        &self,
        change: &LiveChange,
    ) -> Result<Vec<DriftEvent>, ScanError> {
        let now = self.clock.now();
        let (ids, first_scan, revision) = {
            let mut guard = self.state.lock().expect("state lock is never poisoned");
            let Some(st) = guard.as_mut() else {
                return Ok(Vec::new());
            };
            let ids: Vec<ResourceId> = match change {
                LiveChange::Applied(raw) => {
                    self.engine.insert_live(st, raw);
                    vec![raw.object.meta().id(self.env())]
                }
                LiveChange::Deleted(raw) => {
                    let id = raw.object.meta().id(self.env());
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
                    let mut all: BTreeSet<ResourceId> = st.desired.keys().cloned().collect();
                    all.extend(st.live.keys().cloned());
                    all.into_iter().collect()
                }
                LiveChange::Disconnected(_) => return Ok(Vec::new()),
            };
            let records = self.records.lock().expect("records lock is never poisoned");
            (
                ids,
                records.is_empty(),
                st.revision.as_ref().map(|r| r.id.clone()),
            )
        };
        let tick = Tick {
            now,
            scan_id: self.scan_id(now),
            revision,
            first_scan,
        };
        let mut batch = ScanBatch {
            environment: self.env().to_owned(),
            ..ScanBatch::default()
        };
        let mut updates = Vec::new();
        for id in ids {
            let (obs, prev) = {
                let guard = self.state.lock().expect("state lock is never poisoned");
                let Some(st) = guard.as_ref() else {
                    continue;
                };
                if st.unknown_kinds.contains(&id.group_kind()) {
                    continue;
                }
                let records = self.records.lock().expect("records lock is never poisoned");
                (self.engine.observe(st, &id), records.get(&id).cloned())
            };
            let t = transition(prev.as_ref(), &obs, &tick);
            if t.changed {
                match &t.record {
                    Some(r) => batch.upserts.push(r.clone()),
                    None => batch.deletes.push(id.clone()),
                }
            }
            batch.events.extend(t.events);
            updates.push((id, t.record));
        }
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        self.store.commit(&batch).await?;
        {
            let mut records = self.records.lock().expect("records lock is never poisoned");
            for (id, r) in updates {
                match r {
                    Some(r) => {
                        records.insert(id, r);
                    }
                    None => {
                        records.remove(&id);
                    }
                }
            }
        }
        self.announce(&batch.events).await;
        Ok(batch.events)
    }
}

fn elapsed_ms(a: chrono::DateTime<chrono::Utc>, b: chrono::DateTime<chrono::Utc>) -> u64 {
    (b - a).num_milliseconds().max(0) as u64
}
