//! Ports: the traits through which the core talks to the outside (Git, clusters, stores,
//! notifiers, the clock). Adapters live in other crates; small in-memory implementations are in
//! [`crate::memory`].
//!
//! Each trait has few required methods and provided defaults built on them, and is object safe
//! (`Arc<dyn GitSource>` and so on) so that an implementation can be chosen at run time.

use std::collections::HashMap;
use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_core::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::admission::LabelSelectorError;
use crate::audit::{AuditSnapshot, CloudWriteQuery, CloudWrites};
use crate::id::{GroupKind, ResourceId};
use crate::manifest::ManifestError;
use crate::model::{
    CommitInfo, LiveObjects, PackedManifests, RawLive, RawManifest, RawObject, Revision,
};
use crate::query::{DriftQuery, DriftSort, DriftStatus, EventQuery, OpenTally, Page};
use crate::state::{Drift, DriftEvent, DriftRecord};

/// A boxed error from an adapter.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors of Git and live sources.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A ref, path, object or kind does not exist.
    #[error("not found: {what}")]
    NotFound {
        /// What was looked for.
        what: String,
    },
    /// The remote or the API server could not be reached.
    #[error("cannot reach {target}")]
    Unreachable {
        /// Remote URL or server address.
        target: String,
        /// The cause.
        #[source]
        source: BoxError,
    },
    /// Access was refused (HTTP 401/403, bad credentials).
    #[error("access denied: {what}")]
    Forbidden {
        /// What was refused.
        what: String,
    },
    /// The source cannot do this (e.g. history of a plain folder).
    #[error("not supported by this source: {what}")]
    Unsupported {
        /// The operation.
        what: String,
    },
    /// Input that cannot be used (a malformed dump, a bad configuration).
    #[error("invalid input: {0}")]
    Invalid(ManifestError),
    /// The desired side could not be rendered (a Helm chart, a command): see
    /// [`RenderError`](crate::render::RenderError).
    #[error("rendering failed")]
    Render(#[from] crate::render::RenderError),
    /// Terraform could not plan, or its plan could not be read: see
    /// [`TerraformError`](crate::terraform::TerraformError).
    #[error("terraform could not plan")]
    Terraform(#[from] crate::terraform::TerraformError),
    /// Anything else.
    #[error("{context}")]
    Backend {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: BoxError,
    },
}

impl From<LabelSelectorError> for SourceError {
    /// A scope whose label selector is invalid: the same error from every live source.
    fn from(e: LabelSelectorError) -> Self {
        SourceError::Invalid(ManifestError {
            file: "live scope".into(),
            line: 0,
            field: Some("label_selector".into()),
            message: e.to_string(),
        })
    }
}

/// Errors of stores.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The item does not exist.
    #[error("not found: {what}")]
    NotFound {
        /// What was looked for.
        what: String,
    },
    /// A write conflicted with another writer.
    #[error("conflict: {what}")]
    Conflict {
        /// What conflicted.
        what: String,
    },
    /// The store cannot be reached now; the write may be retried.
    #[error("store unavailable")]
    Unavailable {
        /// The cause.
        #[source]
        source: BoxError,
    },
    /// Stored data could not be read back.
    #[error("corrupt data: {what}")]
    Corrupt {
        /// What was unreadable.
        what: String,
    },
    /// Anything else.
    #[error("{context}")]
    Backend {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: BoxError,
    },
}

/// Errors of notifiers.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The receiver answered with an error.
    #[error("receiver rejected the notification (status {status})")]
    Rejected {
        /// HTTP status or protocol code.
        status: u16,
    },
    /// The receiver could not be reached.
    #[error("cannot reach the receiver")]
    Unreachable {
        /// The cause.
        #[source]
        source: BoxError,
    },
    /// Anything else.
    #[error("{context}")]
    Backend {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: BoxError,
    },
}

/// The desired objects of an environment at one revision.
#[derive(Clone, Debug, Default)]
pub struct DesiredSet {
    /// The revision read.
    pub revision: Option<Revision>,
    /// Objects.
    pub objects: Vec<RawManifest>,
    /// Files or documents that could not be read; the rest was.
    pub errors: Vec<ManifestError>,
    /// Things worth telling that are not errors (a Helm chart skipped, a kustomization rendered).
    pub notes: Vec<String>,
    /// Problems of the source that did not stop the read but make it less than current (a
    /// failed fetch: the last good revision was read). Reported with the scan's errors.
    pub warnings: Vec<String>,
}

/// A [`DesiredSet`] whose objects wait as compact text ([`PackedManifests`]) while a scan
/// reads the live side: what [`crate::engine::Engine::index_consuming`] indexes.
#[derive(Clone, Debug, Default)]
pub struct PackedDesired {
    /// The revision read.
    pub revision: Option<Revision>,
    /// Objects.
    pub objects: PackedManifests,
    /// Files or documents that could not be read; the rest was.
    pub errors: Vec<ManifestError>,
}

impl From<DesiredSet> for PackedDesired {
    /// Packs the objects; the notes and warnings, which indexing does not read, are dropped
    /// (take them first).
    fn from(desired: DesiredSet) -> Self {
        PackedDesired {
            revision: desired.revision,
            objects: PackedManifests::pack(desired.objects),
            errors: desired.errors,
        }
    }
}

/// One version of an object in Git history.
#[derive(Clone, Debug)]
pub struct ObjectVersion {
    /// The commit that produced this version.
    pub commit: CommitInfo,
    /// The object as of that commit; `None` when the commit deleted it, or when the source
    /// has no object of its own to give (a Terraform resource: the version is the commit that
    /// changed the file declaring it).
    pub object: Option<RawObject>,
}

/// The desired side: a Git repository, a folder, or anything that yields manifests.
#[async_trait]
pub trait GitSource: Send + Sync {
    /// A human-readable description (`git https://host/repo@main:envs/prod`).
    fn describe(&self) -> String;

    /// The revision the tracked ref points at now (as of the last fetch).
    async fn revision(&self) -> Result<Revision, SourceError>;

    /// The desired objects at `revision`.
    async fn desired(&self, revision: &Revision) -> Result<DesiredSet, SourceError>;

    /// Fetches from the remote. Returns the new revision when the tracked ref moved.
    async fn fetch(&self) -> Result<Option<Revision>, SourceError> {
        Ok(None)
    }

    /// The revision a branch, tag, full ref name or commit id names (a preview reads Git at
    /// two of them with [`GitSource::desired`]); one not known yet is fetched first, without
    /// moving the tracked ref. A source without revisions by name (a folder) cannot.
    async fn revision_of(&self, reference: &str) -> Result<Revision, SourceError> {
        Err(SourceError::Unsupported {
            what: format!("reading revision `{reference}` of {}", self.describe()),
        })
    }

    /// The versions of one object, newest first, at most `limit`.
    async fn history(
        &self,
        id: &ResourceId,
        limit: usize,
    ) -> Result<Vec<ObjectVersion>, SourceError> {
        let _ = (id, limit);
        Err(SourceError::Unsupported {
            what: "object history".into(),
        })
    }

    /// The versions of several objects (each newest first, at most `limit`), read in one batch
    /// before an evaluation. An object whose history cannot be read is left out, and a source
    /// without history answers an empty map. The default asks [`GitSource::history`] for each.
    async fn histories(
        &self,
        ids: &[ResourceId],
        limit: usize,
    ) -> HashMap<ResourceId, Vec<ObjectVersion>> {
        let mut out = HashMap::with_capacity(ids.len());
        for id in ids {
            match self.history(id, limit).await {
                Ok(v) => {
                    out.insert(id.clone(), v);
                }
                Err(SourceError::Unsupported { .. }) => break,
                Err(_) => {}
            }
        }
        out
    }

    /// The desired objects at the current revision.
    async fn load(&self) -> Result<DesiredSet, SourceError> {
        let revision = self.revision().await?;
        self.desired(&revision).await
    }
}

/// Both sides at once, from a tool that plans one against the other: a Terraform root
/// module and workspace, checked with read-only plans ([`crate::terraform`]). A scanner built
/// on one ([`Scanner::with_plans`](crate::scanner::Scanner::with_plans)) runs the same state
/// machine, history, stores and notifiers as one built on a [`GitSource`] and a
/// [`LiveSource`]; it has no watch.
#[async_trait]
pub trait PlanSource: Send + Sync {
    /// A human-readable description of the code (`terraform git https://host/infra@main:prod
    /// (workspace default)`).
    fn describe(&self) -> String;

    /// A human-readable description of the cloud side (`cloud, as terraform refreshes it`).
    fn describe_live(&self) -> String {
        "the cloud, as terraform refreshes it".into()
    }

    /// Runs one check: both plans of the current revision, and whatever else
    /// [`PlanRun`](crate::terraform::PlanRun) holds. Never changes the cloud or the state.
    /// [`SourceError::Unreachable`] means the cloud (or the state's backend) could not be
    /// reached; any other error is the code's side.
    async fn plan(&self) -> Result<crate::terraform::PlanRun, SourceError>;

    /// Fetches the code's remote. Returns the new revision when the tracked ref moved.
    async fn fetch(&self) -> Result<Option<Revision>, SourceError> {
        Ok(None)
    }

    /// The newest commit that changed each of `files` (paths relative to the source root, as
    /// [`Provenance::file`](crate::model::Provenance::file) names them), up to the revision
    /// last planned, read in one batch before an evaluation. A file whose history cannot be
    /// read is left out; a source without history answers an empty map (the default).
    async fn last_commits(&self, files: &[String]) -> HashMap<String, CommitInfo> {
        let _ = files;
        HashMap::new()
    }

    /// For each set of paths (files or folders, from the source root), the newest commit
    /// that changed any of them, up to the revision last planned, read in one batch. The
    /// default takes the newest by commit time of [`PlanSource::last_commits`] (a source that
    /// can follow its history should say which came last when two share a second).
    async fn last_commits_of(&self, sets: &[Vec<String>]) -> Vec<Option<CommitInfo>> {
        let mut files: Vec<String> = sets.iter().flatten().cloned().collect();
        files.sort();
        files.dedup();
        let commits = self.last_commits(&files).await;
        sets.iter()
            .map(|set| {
                set.iter()
                    .filter_map(|f| commits.get(f))
                    .max_by_key(|c| c.time)
                    .cloned()
            })
            .collect()
    }

    /// The writes a cloud's own audit trail (AWS CloudTrail) recorded for resources changed
    /// outside the code, each since its window's start, read in one batch before an
    /// evaluation (read only). A source may answer for fewer than `wanted` (a rate limit:
    /// the rest wait for the next check, said in [`CloudWrites::notes`]); what it could not
    /// read is in [`CloudWrites::errors`], never a failed check. The default: no trail is read
    /// (`enabled` false), and drifts name no writers.
    async fn cloud_writes(&self, wanted: &[CloudWriteQuery]) -> CloudWrites {
        let _ = wanted;
        CloudWrites::default()
    }
}

/// A kind to read from a cluster.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GroupVersionKind {
    /// API group.
    pub group: String,
    /// Version (the one Git uses, so that fields compare like for like).
    pub version: String,
    /// Kind.
    pub kind: String,
}

impl GroupVersionKind {
    /// From an `apiVersion` and a kind.
    pub fn from_api_version(api_version: &str, kind: &str) -> Self {
        let (group, version) = match api_version.rsplit_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        GroupVersionKind {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
        }
    }

    /// The group and kind.
    pub fn group_kind(&self) -> GroupKind {
        GroupKind::new(self.group.clone(), self.kind.clone())
    }

    /// `group/version` or `version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// What to read from a cluster. Which objects it admits is decided once, for every live
/// source, by [`LiveScope::admits`] (the rule: [`crate::admission`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveScope {
    /// Kinds to read.
    pub kinds: Vec<GroupVersionKind>,
    /// Namespaces (empty: all).
    pub namespaces: Vec<String>,
    /// Label selector in the API server's syntax, if any
    /// ([`LabelSelector`](crate::admission::LabelSelector)).
    pub label_selector: Option<String>,
}

/// A kind that could not be read; the others were.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindError {
    /// The kind.
    pub kind: GroupKind,
    /// Why (e.g. `forbidden`).
    pub message: String,
}

/// A snapshot of the live objects of the tracked kinds.
#[derive(Clone, Debug, Default)]
pub struct LiveSnapshot {
    /// Objects (parsed, or compact text parsed one at a time as they are read).
    pub objects: LiveObjects,
    /// Kinds that could not be read: their objects' live state is unknown.
    pub errors: Vec<KindError>,
    /// What the API server's discovery says of the scope of the kinds read: `(kind,
    /// namespaced)`. Empty where the source has no discovery (a dump); the engine then falls
    /// back to Git's CustomResourceDefinitions, the built-in list and the objects themselves
    /// ([`crate::scope::Scopes`]).
    pub served: Vec<(GroupKind, bool)>,
}

/// A change seen by a watch.
#[derive(Clone, Debug)]
pub enum LiveChange {
    /// An object was created or modified.
    Applied(RawLive),
    /// An object was deleted.
    Deleted(RawLive),
    /// The watch restarted; this is the complete state again.
    Restarted(LiveSnapshot),
    /// The connection was lost: the live state is unknown until `Restarted`.
    Disconnected(String),
}

/// The live side: a cluster, a dump.
#[async_trait]
pub trait LiveSource: Send + Sync {
    /// A human-readable description (`cluster prod (context prod-eu)`, `dump cluster.yaml`).
    fn describe(&self) -> String;

    /// Lists the objects in scope.
    async fn snapshot(&self, scope: &LiveScope) -> Result<LiveSnapshot, SourceError>;

    /// Watches the objects in scope.
    async fn watch(
        &self,
        scope: &LiveScope,
    ) -> Result<BoxStream<'static, LiveChange>, SourceError> {
        let _ = scope;
        Err(SourceError::Unsupported {
            what: "watch".into(),
        })
    }

    /// What the cluster would make of each of `objects` once applied, in the same order: the
    /// object as a server-side apply dry run answers it (the API server's defaults, admission
    /// policies and webhooks applied; nothing changed). A namespaced object without a
    /// namespace is in `default_namespace`. For
    /// [`EnvironmentSpec::server_side_diff`](crate::engine::EnvironmentSpec::server_side_diff).
    async fn predict(
        &self,
        objects: &[RawObject],
        default_namespace: &str,
    ) -> Result<Vec<Prediction>, SourceError> {
        let _ = (objects, default_namespace);
        Err(SourceError::Unsupported {
            what: "server-side diff".into(),
        })
    }
}

/// What the API server would make of one desired object: a server-side apply dry run's
/// answer, or why there is none.
pub type Prediction = Result<RawObject, String>;

/// Counts of one scan.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanCounts {
    /// Objects tracked (desired, plus orphans).
    pub tracked: usize,
    /// In sync.
    pub in_sync: usize,
    /// Modified.
    pub modified: usize,
    /// Missing.
    pub missing: usize,
    /// Orphans.
    pub orphan: usize,
    /// Objects whose live state is unknown (their kind could not be read).
    pub unknown: usize,
}

/// The summary of one scan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScanSummary {
    /// Scan id.
    pub scan_id: String,
    /// Environment.
    pub environment: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
    /// Git revision.
    pub revision: Option<String>,
    /// Counts.
    pub counts: ScanCounts,
    /// Drift score (see [`crate::severity::drift_score`]).
    pub score: f64,
    /// Problems met (manifest errors, unreadable kinds), one line each.
    #[serde(default)]
    pub errors: Vec<String>,
    /// Events emitted.
    pub events: usize,
}

/// What one scan (or one incremental re-evaluation) writes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScanBatch {
    /// Environment.
    pub environment: String,
    /// Summary (`None` for an incremental update).
    pub summary: Option<ScanSummary>,
    /// Records that changed.
    pub upserts: Vec<DriftRecord>,
    /// Records to forget.
    pub deletes: Vec<ResourceId>,
    /// New events (their ids are deterministic; writing them twice must not duplicate them).
    pub events: Vec<DriftEvent>,
    /// The leadership epoch of the writer, when replicas elect a leader per environment
    /// (`None`: no election, as with a single server or the CLI; such a batch is not fenced).
    /// A store keeps the highest epoch it has seen per environment and refuses, as
    /// [`StoreError::Conflict`], a batch carrying a lower one: the rule is
    /// [`crate::fence::check`]. A batch with an epoch is checked and its epoch recorded even
    /// when it holds nothing else ([`ScanBatch::claim`]).
    pub epoch: Option<u64>,
}

impl ScanBatch {
    /// A batch that writes nothing but `epoch`: how a new leader fences off the older ones
    /// before it reads the environment's history (from then on the store refuses their
    /// writes).
    pub fn claim(environment: impl Into<String>, epoch: u64) -> Self {
        ScanBatch {
            environment: environment.into(),
            epoch: Some(epoch),
            ..ScanBatch::default()
        }
    }

    /// Whether the batch holds no summary, record or event (its epoch aside).
    pub fn is_empty(&self) -> bool {
        self.summary.is_none()
            && self.upserts.is_empty()
            && self.deletes.is_empty()
            && self.events.is_empty()
    }

    /// Whether a store has nothing to do with the batch: it is empty and carries no epoch to
    /// check and record.
    pub fn writes_nothing(&self) -> bool {
        self.is_empty() && self.epoch.is_none()
    }
}

/// What a prune removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneStats {
    /// Events removed.
    pub events: u64,
    /// Scan summaries removed.
    pub scans: u64,
    /// Resolved episodes removed.
    pub episodes: u64,
}

/// Durable history: records, events, episodes and scans.
///
/// `commit` must be idempotent (a retried batch does not duplicate events) and atomic enough
/// that a crash leaves either all or none of a batch's events. Episodes are derived from events:
/// `detected` opens one, `changed` updates it, `resolved` closes it (each event carries the
/// drift as it stands after it).
#[async_trait]
pub trait DriftStore: Send + Sync {
    /// Every current record of an environment.
    async fn records(&self, environment: &str) -> Result<Vec<DriftRecord>, StoreError>;

    /// Writes a batch.
    async fn commit(&self, batch: &ScanBatch) -> Result<(), StoreError>;

    /// Drift episodes matching a query.
    async fn drifts(&self, query: &DriftQuery) -> Result<Page<Drift>, StoreError>;

    /// Events matching a query, oldest first.
    async fn events(&self, query: &EventQuery) -> Result<Page<DriftEvent>, StoreError>;

    /// Scan summaries, newest first.
    async fn scans(
        &self,
        environment: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ScanSummary>, StoreError>;

    /// The scans that tell each environment's state at each of `times` (a chart's points):
    /// for every environment in `environments` and every time, the latest scan of the
    /// environment started at or before it ([`crate::query::scans_at`]); each scan once,
    /// newest first ([`crate::query::newest_scan_first`]). One call for a chart of a whole
    /// fleet, however often the environments are scanned. The default reads every scan of
    /// each environment; stores with an index on (environment, start) seek each answer.
    async fn scans_at(
        &self,
        environments: &[String],
        times: &[DateTime<Utc>],
    ) -> Result<Vec<ScanSummary>, StoreError> {
        let mut out = Vec::new();
        if times.is_empty() {
            return Ok(out);
        }
        let environments: std::collections::BTreeSet<&String> = environments.iter().collect();
        for env in environments {
            let all = self.scans(Some(env), usize::MAX).await?;
            out.extend(crate::query::scans_at(&all, times));
        }
        out.sort_by(crate::query::newest_scan_first);
        Ok(out)
    }

    /// The open drifts of each environment in `environments`, counted by severity and
    /// direction, with the oldest ([`OpenTally`]): one per environment, each once, by name (an
    /// environment without open drifts has an empty tally). One call for an overview of a
    /// whole fleet, without reading each drift. The default reads every open drift of each
    /// environment; stores count them with their indexes.
    async fn open_tallies(&self, environments: &[String]) -> Result<Vec<OpenTally>, StoreError> {
        let environments: std::collections::BTreeSet<&String> = environments.iter().collect();
        let mut out = Vec::with_capacity(environments.len());
        for env in environments {
            let mut open = Vec::new();
            let mut offset = 0;
            loop {
                let page = self
                    .drifts(&DriftQuery {
                        environment: Some(env.clone()),
                        status: DriftStatus::Open,
                        sort: DriftSort::Detected,
                        limit: 1000,
                        offset,
                        ..DriftQuery::default()
                    })
                    .await?;
                open.extend(page.items);
                match page.next_offset {
                    Some(n) => offset = n,
                    None => break,
                }
            }
            out.push(OpenTally::of(env, &open));
        }
        Ok(out)
    }

    /// Removes events, scans and resolved episodes older than `before`.
    async fn prune(&self, before: DateTime<Utc>) -> Result<PruneStats, StoreError>;

    /// One record.
    async fn record(&self, id: &ResourceId) -> Result<Option<DriftRecord>, StoreError> {
        Ok(self
            .records(&id.environment)
            .await?
            .into_iter()
            .find(|r| &r.id == id))
    }

    /// One drift episode, open or resolved, by its id. The default pages through
    /// [`DriftStore::drifts`] (open ones first); stores with an index on the id answer directly.
    async fn drift(&self, episode: &str) -> Result<Option<Drift>, StoreError> {
        for status in [DriftStatus::Open, DriftStatus::Resolved] {
            let mut offset = 0;
            loop {
                let q = DriftQuery {
                    status,
                    sort: DriftSort::Detected,
                    limit: 1000,
                    offset,
                    ..DriftQuery::default()
                };
                let page = self.drifts(&q).await?;
                if let Some(d) = page.items.into_iter().find(|d| d.episode == episode) {
                    return Ok(Some(d));
                }
                match page.next_offset {
                    Some(n) => offset = n,
                    None => break,
                }
            }
        }
        Ok(None)
    }

    /// The events of one object, oldest first.
    async fn history(&self, id: &ResourceId, limit: usize) -> Result<Vec<DriftEvent>, StoreError> {
        let q = EventQuery {
            environment: Some(id.environment.clone()),
            object: Some(id.clone()),
            limit,
            ..EventQuery::default()
        };
        Ok(self.events(&q).await?.items)
    }

    /// Whether the store answers.
    async fn health(&self) -> Result<(), StoreError> {
        self.scans(None, 1).await.map(|_| ())
    }

    /// How far the deliveries of the notifier named `notifier` have gone: the time of the
    /// newest events it handed over (delivered, or given up after all its retries). A server
    /// that restarts sends the later events again, so that no alert is lost in a crash.
    /// `None` when never set, and always for a store that does not keep it (the default).
    async fn delivered_until(&self, notifier: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let _ = notifier;
        Ok(None)
    }

    /// The highest leadership epoch written for `environment` ([`ScanBatch::epoch`], the
    /// fence of [`crate::fence`]); `None` when no batch with an epoch was written. A new
    /// leader reads it to make sure its own epoch is higher. The default keeps nothing (a
    /// store that does not fence; the conformance suite refuses it).
    async fn epoch(&self, environment: &str) -> Result<Option<u64>, StoreError> {
        let _ = environment;
        Ok(None)
    }

    /// Moves [`DriftStore::delivered_until`] of `notifier` forward to `until` (never back).
    /// Kept by [`DriftStore::prune`]. The default keeps nothing.
    async fn set_delivered_until(
        &self,
        notifier: &str,
        until: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let _ = (notifier, until);
        Ok(())
    }

    /// The audit index of `environment` as kept: the recent writes of each object and how
    /// far audit log files were read (see [`crate::audit`]), so that a restart does not forget
    /// who did what. Empty when nothing was saved, and always for a store that does not keep
    /// it (the default).
    async fn audit_index(&self, environment: &str) -> Result<AuditSnapshot, StoreError> {
        let _ = environment;
        Ok(AuditSnapshot::default())
    }

    /// Saves changes to the audit index of `environment`, all or nothing, with the meaning of
    /// [`AuditSnapshot::apply`]: each object's writes replace the kept ones (an object without
    /// writes is forgotten), each cursor replaces the one of its file. Not touched by
    /// [`DriftStore::prune`] (the index has its own limits). The default keeps nothing.
    async fn save_audit_index(
        &self,
        environment: &str,
        changes: &AuditSnapshot,
    ) -> Result<(), StoreError> {
        let _ = (environment, changes);
        Ok(())
    }

    /// The acknowledgements of `environment` (every environment's for `None`), ordered by
    /// environment and episode: one per episode (the latest saved), lapsed ones included
    /// until [`DriftStore::prune`] removes those that lapsed before its time (see
    /// [`crate::ack`]). Empty for a store that does not keep them (the default; the
    /// conformance suite refuses it).
    async fn acknowledgements(
        &self,
        environment: Option<&str>,
    ) -> Result<Vec<crate::ack::Acknowledgement>, StoreError> {
        let _ = environment;
        Ok(Vec::new())
    }

    /// The actions of people (scan now, acknowledge, remediate, failed sign-ins), newest
    /// first, of `environment` (`None`: all), at most `limit` (the order and filter of
    /// [`crate::actions::newest`]); [`DriftStore::prune`] removes those older than its time.
    /// Empty for a store that does not keep them (the default; the conformance suite refuses
    /// it).
    async fn actions(
        &self,
        environment: Option<&str>,
        limit: usize,
    ) -> Result<Vec<crate::actions::PersonAction>, StoreError> {
        let _ = (environment, limit);
        Ok(Vec::new())
    }

    /// Records actions of people; one with an id already kept replaces it (a count of failed
    /// sign-ins that grew). The default keeps nothing.
    async fn record_actions(
        &self,
        actions: &[crate::actions::PersonAction],
    ) -> Result<(), StoreError> {
        let _ = actions;
        Ok(())
    }

    /// Saves acknowledgements, all or nothing, each replacing the one of its episode. The
    /// default keeps nothing.
    async fn save_acknowledgements(
        &self,
        acks: &[crate::ack::Acknowledgement],
    ) -> Result<(), StoreError> {
        let _ = acks;
        Ok(())
    }
}

/// Events to announce for one environment.
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    /// Environment.
    pub environment: String,
    /// Events (a burst is grouped into one notification).
    pub events: Vec<DriftEvent>,
}

/// Somewhere to announce drift: Slack, a webhook, PagerDuty, e-mail.
#[async_trait]
pub trait Notifier: Send + Sync {
    /// Name for logs and metrics.
    fn name(&self) -> &str;

    /// Delivers one notification (no retries here: callers retry).
    async fn notify(&self, notification: &Notification) -> Result<(), NotifyError>;
}

/// The clock. The core never reads time by itself: adapters pass it in.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> DateTime<Utc>;
}

impl fmt::Debug for dyn GitSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GitSource({})", self.describe())
    }
}

impl fmt::Debug for dyn PlanSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PlanSource({})", self.describe())
    }
}

impl fmt::Debug for dyn LiveSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LiveSource({})", self.describe())
    }
}
