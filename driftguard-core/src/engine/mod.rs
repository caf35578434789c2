//! The scan engine, pure.
//!
//! [`Engine`] indexes normalized desired and live objects ([`EnvState`], `index`), applies the
//! Kubernetes ownership rules (`ownership`: HPA replicas, StatefulSet claims, orphan
//! eligibility), turns one object's two sides into an [`Observation`](crate::state::Observation) (`observe`) and evaluates a
//! whole environment against the stored records in one pure step ([`Engine::evaluate`]). The
//! report types are in `report`. [`crate::scanner::Scanner`] wires the engine to the ports.

mod evaluate;
mod index;
mod observe;
mod ownership;
pub mod predicted;
mod report;
mod unset;

pub use crate::by_id::{ById, Identified};
pub use crate::scanner::Scanner;
pub use evaluate::{history_wanted, Evaluation, Histories, HISTORY_DEPTH};
pub use report::{ScanError, ScanReport, Verdict, VerdictStatus};

use std::collections::{BTreeSet, HashSet};

use serde::{Deserialize, Serialize};

use crate::audit::AuditSpec;
use crate::compare::{compare_nodes, Comparison};
use crate::convert::convert;
use crate::doc::{Doc, Node};
use crate::findings::FindingRules;
use crate::id::{GroupKind, ResourceId};
use crate::ignore::{IgnoreRules, JsonPointer};
use crate::managed::owned_by_any;
use crate::manifest::ManifestError;
use crate::metadata::MetadataKeys;
use crate::model::{RawObject, Revision};
use crate::normalize::{DesiredObject, LiveObject, Normalizer};
use crate::path;
use crate::ports::{DesiredSet, GroupVersionKind, LiveScope};
use crate::severity::SeverityRules;

/// Settings of one environment that the engine needs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvironmentSpec {
    /// Name.
    pub name: String,
    /// Ignore rules.
    pub ignore: IgnoreRules,
    /// Severity overrides.
    pub severity: SeverityRules,
    /// Finding rules (overrides of the built-in risk findings).
    #[serde(default)]
    pub findings: FindingRules,
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
    /// The settings of the audit index (`None`: none is kept, and drifts name field managers
    /// only): see [`crate::audit`].
    #[serde(default)]
    pub audit: Option<AuditSpec>,
    /// Changes to which label and annotation keys the server or a tool writes (never drift):
    /// see [`crate::metadata`].
    #[serde(default)]
    pub metadata_keys: MetadataKeys,
    /// Compare with what the API server would make of Git's objects (a server-side apply dry
    /// run of each, as Argo CD's server-side diff does) instead of Git's objects themselves:
    /// see [`predicted`]. Costs one request per live object per full scan.
    #[serde(default)]
    pub server_side_diff: bool,
    /// A Terraform environment whose state is meant to hold no resource (nothing applied
    /// yet): its checks are recorded. Otherwise a check of an empty state is refused (see
    /// [`crate::terraform::TerraformError::EmptyState`]).
    #[serde(default)]
    pub expect_empty_state: bool,
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

/// The normalized state of one environment, kept between scans for incremental use.
#[derive(Clone, Debug, Default)]
pub struct EnvState {
    /// Desired objects by identity.
    pub desired: ById<DesiredObject>,
    /// Live objects that are tracked (in Git, or eligible as orphans).
    pub live: ById<LiveObject>,
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
    /// What the API server would make of desired objects, projected on Git's fields (a
    /// server-side diff: see [`predicted`]); compared in their place.
    pub predicted: FastMap<ResourceId, Doc>,
    /// Fields the renderer gives anew on every run, by object ([`Rendering::unstable`]): left
    /// out of both sides.
    ///
    /// [`Rendering::unstable`]: crate::model::Rendering::unstable
    pub unstable: FastMap<ResourceId, Vec<JsonPointer>>,
    /// Objects with an open drift (from the stored records): their live side keeps what
    /// attribution needs even once back in sync with Git, so that the drift's end can name
    /// who wrote them back ([`crate::state::Observation::resolver`]). Every other object in
    /// sync keeps only its comparison.
    pub open_drifts: FastSet<ResourceId>,
}

impl EnvState {
    /// Notes whether `id` holds an open drift now ([`EnvState::open_drifts`]).
    pub fn note_open(&mut self, id: &ResourceId, open: bool) {
        if open {
            self.open_drifts.insert(id.clone());
        } else {
            self.open_drifts.remove(id);
        }
    }
}

/// A hash map with a fast, randomly seeded hasher (foldhash) for the engine's indexes.
pub type FastMap<K, V> = foldhash::HashMap<K, V>;

/// A hash set with a fast, randomly seeded hasher (foldhash) for the engine's indexes.
pub type FastSet<T> = foldhash::HashSet<T>;

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
    pub fn new(spec: EnvironmentSpec, mut normalizer: Normalizer) -> Self {
        // the one place the environment's metadata keys reach normalization and comparison
        normalizer.metadata_keys = spec.metadata_keys.clone();
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
    pub(crate) fn scope_of(&self, kinds: impl Iterator<Item = GroupVersionKind>) -> LiveScope {
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

    pub(crate) fn pointers(
        &self,
        id: &ResourceId,
        hpa_targets: &FastSet<ResourceId>,
    ) -> Vec<JsonPointer> {
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

    /// Compares the two sides of one object, with version conversion and ignored managers.
    pub fn compare(&self, d: &DesiredObject, l: &LiveObject) -> Comparison {
        let mut cmp = self.compare_fields(d, None, l);
        let managed = l.managed.to_value();
        let raw = serde_json::json!({ "metadata": { "managedFields": managed } });
        self.add_unset_changes(d, l.object.content.root(), &raw, &mut cmp);
        self.ignore_managers(&d.object.id, l, cmp)
    }

    /// Adds to `cmp` the fields Git does not set that a person changed (see [`unset`]): those
    /// written by hand, and replicas scaled without an owner; and drops the labels and
    /// annotations Git does not set that a controller wrote. `raw` is the live object as the
    /// server sent it (only its `metadata.managedFields` is read, and only when needed).
    pub(crate) fn add_unset_changes(
        &self,
        d: &DesiredObject,
        live: Node<'_>,
        raw: &serde_json::Value,
        cmp: &mut Comparison,
    ) {
        let desired = d.object.content.root();
        let mut found = Vec::new();
        let mut managed: Option<Vec<crate::managed::ManagedFieldsEntry>> = None;
        if unset::any_by_hand(raw) {
            let entries = managed.get_or_insert_with(|| crate::managed::parse_managed_fields(raw));
            found = unset::hand_changes(desired, live, entries, &cmp.drifted);
        }
        let id = &d.object.id;
        let scaled = unset::unowned_scale(&id.group, &id.kind, desired, live, || {
            managed
                .take()
                .unwrap_or_else(|| crate::managed::parse_managed_fields(raw))
        });
        found.extend(scaled.filter(|f| cmp.drifted.iter().all(|g| g.path != f.path)));
        cmp.add_drifted(found);
        if cmp.drifted.iter().any(unset::live_only_key) {
            let entries = managed.unwrap_or_else(|| crate::managed::parse_managed_fields(raw));
            let people = &self.spec.findings.people_managers;
            cmp.retain_drift(|f| !unset::controller_written(f, &entries, people));
        }
    }

    /// Drops drift in fields that ignored field managers own.
    fn ignore_managers(&self, id: &ResourceId, l: &LiveObject, mut cmp: Comparison) -> Comparison {
        if !cmp.in_sync() {
            let managers = self.spec.ignore.managers_for(id);
            if !managers.is_empty() {
                let managed = l.managed_fields();
                cmp.retain_drift(|f| !owned_by_any(&managed, &managers, &f.path));
            }
        }
        cmp
    }

    /// Compares the fields of both sides, with version conversion; with the server's answer
    /// for the desired object when there is one ([`predicted`]).
    fn compare_fields(
        &self,
        d: &DesiredObject,
        predicted: Option<&Doc>,
        l: &LiveObject,
    ) -> Comparison {
        self.compare_with(d, predicted, &l.object.api_version, l.object.content.root())
    }

    /// Compares a desired object (or the server's answer for it, `predicted`) with live content
    /// read in `live_version`.
    fn compare_with(
        &self,
        d: &DesiredObject,
        predicted: Option<&Doc>,
        live_version: &str,
        live: Node<'_>,
    ) -> Comparison {
        let id = &d.object.id;
        let base = predicted.unwrap_or(&d.object.content);
        let converted = (d.object.api_version != live_version)
            .then(|| {
                convert(
                    &id.kind,
                    &d.object.api_version,
                    live_version,
                    &base.to_value(),
                )
            })
            .flatten()
            .map(|v| Doc::from_value(&v));
        let desired = converted.as_ref().unwrap_or(base);
        let mut cmp = compare_nodes(&id.group, &id.kind, desired.root(), live);
        // a label a tool adds when Git does not set it (Argo CD's label tracking)
        let keys = &self.normalizer.metadata_keys;
        cmp.retain_drift(|f| {
            f.desired.is_some()
                || !path::label_key(&f.path).is_some_and(|k| keys.tool_label_when_unset(&k))
        });
        cmp
    }

    /// Whether a live object equals an earlier desired version (normalized the same way).
    pub fn live_equals(&self, st: &EnvState, id: &ResourceId, earlier: &RawObject) -> bool {
        let Some(l) = st.live.get(id) else {
            return false;
        };
        let pointers = self.pointers_in(st, id);
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
