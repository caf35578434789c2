//! Environments discovered from a cluster running Argo CD or Flux (issue #31): the reading.
//!
//! [`discover`] is two steps. [`read`] lists, in one batch, what the mapping needs from the
//! discovery cluster (`discover.cluster`): the Argo CD Applications of the configured
//! namespaces and the `argocd-cm` and `argocd-cmd-params-cm` ConfigMaps; the Flux
//! Kustomizations, HelmReleases, GitRepositories and HelmCharts; then the ConfigMaps, and only
//! with `readSecrets` the Secrets, that [`flux::references`] names, each by its name. [`map`]
//! then turns them into environments with the pure mapping of [`crate::config::discover`],
//! and each environment into a plan with [`DiscoveryPlan::environment`], as the file's
//! environments are made.
//!
//! A kind the API server does not serve (its CRD is not installed) means the tool is not
//! installed: not an error. A kind that is served but cannot be read (forbidden, a version
//! DriftGuard does not read) is a [`ReadError`]: its objects are not discovered, and callers
//! say so. A cluster that cannot be reached fails the discovery.
//!
//! The objects are listed with the cluster's client rather than through the live source's
//! snapshot: a snapshot keeps only what comparisons read and drops `status`, where the tools
//! keep what discovery needs (Argo CD's source type and synced revision, the revision Flux
//! resolved, their verdicts).
//!
//! Secret values read here go into the environments that render with them and nowhere else:
//! not into a problem, a log line or the `Debug` of anything here.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;

use driftguard_core::error::chain;
use driftguard_core::ports::SourceError;
use driftguard_sources::kube::KubeLiveSource;
use futures_util::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube::runtime::watcher::{self, watcher, Event};
use kube::runtime::WatchStreamExt;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::config::discover::{
    argocd, dedupe, fingerprint, flux, verdict_fields, ArgoCdSettings, Discovered,
    DiscoveryContext, ObjectKey, Problem, Tool, ToolEvent,
};
use crate::config::{DiscoveryPlan, EnvironmentPlan};

/// Objects read per list request.
const PAGE: u32 = 500;

/// Why nothing could be discovered.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    /// The discovery cluster's configuration cannot be used.
    #[error("discover.cluster: cannot connect")]
    Connect(#[source] SourceError),
    /// The discovery cluster did not answer, or refused the credentials.
    #[error("cannot read the Argo CD and Flux objects of {cluster}")]
    Unreachable {
        /// The cluster, described.
        cluster: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
}

/// Whether a tool's kinds are served by the discovery cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolFound {
    /// The tool.
    pub tool: Tool,
    /// Whether its kinds are served (its CRDs are installed).
    pub installed: bool,
}

/// Something served by the cluster that could not be read (forbidden, a version DriftGuard
/// does not read): what it holds is not discovered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadError {
    /// What (`applications.argoproj.io in argocd`, `ConfigMap argocd/argocd-cm`).
    pub what: String,
    /// Why.
    pub message: String,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot read {}: {}", self.what, self.message)
    }
}

/// What [`read`] found: the input of [`map`].
#[derive(Clone, Debug, Default)]
pub struct Objects {
    /// Argo CD Applications.
    pub applications: Vec<Value>,
    /// Flux Kustomizations.
    pub kustomizations: Vec<Value>,
    /// Flux HelmReleases.
    pub helm_releases: Vec<Value>,
    /// `argocd-cm`, if there is one.
    pub argocd_cm: Option<Value>,
    /// `argocd-cmd-params-cm`, if there is one.
    pub argocd_cmd_params_cm: Option<Value>,
    /// The plan's context with the Flux sources and the ConfigMaps and Secrets read added
    /// (its `Debug` shows no Secret value).
    pub context: DiscoveryContext,
    /// Secrets the objects name that were not read (`readSecrets` is false).
    pub unread_secrets: BTreeSet<ObjectKey>,
    /// Which tools are installed.
    pub tools: Vec<ToolFound>,
    /// What could not be read.
    pub errors: Vec<ReadError>,
    /// The Kubernetes Events the tools recorded on their objects ([`ToolEvent::read`]).
    pub events: ToolEvents,
}

/// Kubernetes Events of the tools' objects, as listed. Their messages may quote a value
/// taken from a Secret (a Flux build error): their `Debug` shows how many there are only,
/// and each is redacted for its environment when read ([`map`]).
#[derive(Clone, Default)]
pub struct ToolEvents(pub Vec<Value>);

impl fmt::Debug for ToolEvents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} events", self.0.len())
    }
}

/// Everything discovered.
#[derive(Clone, Default)]
pub struct Discovery {
    /// Each object found, mapped, with its problems; `environment` is `None` for those not
    /// scanned (a blocking problem, a name already taken). Holds Secret values: show
    /// [`Discovered::redacted`] copies.
    pub found: Vec<Discovered>,
    /// The plans of the environments of `found`, in the same order.
    pub environments: Vec<EnvironmentPlan>,
    /// What `argocd-cm` says that cannot be used, once for every Application.
    pub settings_problems: Vec<Problem>,
    /// Which tools are installed.
    pub tools: Vec<ToolFound>,
    /// What could not be read.
    pub errors: Vec<ReadError>,
}

impl fmt::Debug for Discovery {
    // the plans may hold Secret values (a Flux substitution's): only their names are shown
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.environments.iter().map(|e| e.name.as_str()).collect();
        f.debug_struct("Discovery")
            .field("found", &self.found)
            .field("environments", &names)
            .field("settings_problems", &self.settings_problems)
            .field("tools", &self.tools)
            .field("errors", &self.errors)
            .finish()
    }
}

impl Discovery {
    /// The discovered object an environment was made of.
    pub fn found_for(&self, environment: &str) -> Option<&Discovered> {
        self.found.iter().find(|d| d.name() == Some(environment))
    }
}

/// Reads the tools' objects from the discovery cluster and maps them; `configured` are the
/// names of the file's environments, which win over discovered ones of the same name.
pub async fn discover(
    plan: &DiscoveryPlan,
    configured: &[String],
) -> Result<Discovery, DiscoverError> {
    let objects = read(plan).await?;
    Ok(map(plan, objects, configured))
}

/// The objects discovery maps, read from the discovery cluster in one batch.
pub async fn read(plan: &DiscoveryPlan) -> Result<Objects, DiscoverError> {
    let source = KubeLiveSource::connect(&plan.cluster)
        .await
        .map_err(DiscoverError::Connect)?;
    let reader = Reader {
        client: source.client().clone(),
        cluster: driftguard_core::ports::LiveSource::describe(&source),
    };
    let mut out = Objects {
        context: plan.context.clone(),
        ..Objects::default()
    };
    let selector = plan.selector.as_deref();
    if let Some(a) = &plan.argocd {
        let found = reader
            .kind(&APPLICATION, &a.namespaces, selector, &mut out.errors)
            .await?;
        out.tools.push(ToolFound {
            tool: Tool::ArgoCd,
            installed: found.is_some(),
        });
        if let Some(apps) = found {
            out.applications = apps;
            reader
                .events(&a.namespaces, &["Application"], &mut out)
                .await?;
            for (name, slot) in [
                ("argocd-cm", &mut out.argocd_cm),
                ("argocd-cmd-params-cm", &mut out.argocd_cmd_params_cm),
            ] {
                let key = ObjectKey::new(a.namespace.clone(), name);
                *slot = reader.get(&CONFIG_MAP, &key, &mut out.errors).await?;
            }
        }
    }
    if let Some(namespaces) = &plan.flux {
        let ks = reader
            .kind(&KUSTOMIZATION, namespaces, selector, &mut out.errors)
            .await?;
        let hrs = reader
            .kind(&HELM_RELEASE, namespaces, selector, &mut out.errors)
            .await?;
        out.tools.push(ToolFound {
            tool: Tool::Flux,
            installed: ks.is_some() || hrs.is_some(),
        });
        out.kustomizations = ks.unwrap_or_default();
        out.helm_releases = hrs.unwrap_or_default();
        if !out.kustomizations.is_empty() || !out.helm_releases.is_empty() {
            reader
                .events(namespaces, &["Kustomization", "HelmRelease"], &mut out)
                .await?;
        }
        if !out.kustomizations.is_empty() || !out.helm_releases.is_empty() {
            for kind in [&GIT_REPOSITORY, &HELM_CHART] {
                let sources = reader.kind(kind, namespaces, None, &mut out.errors).await?;
                for s in sources.unwrap_or_default() {
                    out.context.add_object(&s);
                }
            }
        }
        let refs = flux::references(&out.kustomizations, &out.helm_releases);
        for key in &refs.config_maps {
            if let Some(cm) = reader.get(&CONFIG_MAP, key, &mut out.errors).await? {
                out.context.add_object(&cm);
            }
        }
        for key in &refs.secrets {
            if !plan.read_secrets {
                out.unread_secrets.insert(key.clone());
                continue;
            }
            if let Some(secret) = reader.get(&SECRET, key, &mut out.errors).await? {
                out.context.add_object(&secret);
            }
        }
    }
    Ok(out)
}

/// The environments of the objects read (pure): the tools' mappings, names made unique
/// (`configured` names win: a discovered environment of the same name is reported and not
/// scanned), the Secrets not read noted, each environment planned.
pub fn map(plan: &DiscoveryPlan, objects: Objects, configured: &[String]) -> Discovery {
    let mut ctx = objects.context;
    ctx.argocd = ArgoCdSettings::from_config_maps(
        objects.argocd_cm.as_ref(),
        objects.argocd_cmd_params_cm.as_ref(),
    );
    let mut found = argocd::map_applications(&objects.applications, &ctx);
    found.extend(flux::map_all(
        &objects.kustomizations,
        &objects.helm_releases,
        &ctx,
    ));
    dedupe(&mut found);
    attach_events(&mut found, &objects.events);
    let configured: HashSet<&str> = configured.iter().map(String::as_str).collect();
    for d in &mut found {
        if let Some(name) = d
            .name()
            .filter(|n| configured.contains(n))
            .map(str::to_owned)
        {
            d.environment = None;
            d.problems.push(Problem {
                field: "metadata.name".into(),
                message: format!(
                    "the environment name `{name}` is a configured environment's: the configured one is scanned (give this one another name in `discover.names`)"
                ),
                blocking: true,
            });
        }
        if d.app.tool == Tool::Flux && !objects.unread_secrets.is_empty() {
            let object = match d.app.kind.as_str() {
                "Kustomization" => find(&objects.kustomizations, &d.app.namespace, &d.app.name),
                _ => find(&objects.helm_releases, &d.app.namespace, &d.app.name),
            };
            for (field, key) in object.map(secret_references).unwrap_or_default() {
                if objects.unread_secrets.contains(&key) {
                    d.problems.push(Problem {
                        field,
                        message: format!(
                            "the Secret {key} is not read: `discover.readSecrets` is false (set it to render with the Secret's values)"
                        ),
                        blocking: false,
                    });
                }
            }
        }
    }
    let environments = found
        .iter()
        .filter_map(|d| d.environment.as_ref())
        .map(|e| plan.environment(e))
        .collect();
    Discovery {
        found,
        environments,
        settings_problems: ctx.argocd.problems,
        tools: objects.tools,
        errors: objects.errors,
    }
}

/// Gives each discovered object the newest Event its tool recorded on it, its message
/// without the Secret values the object's environment took.
fn attach_events(found: &mut [Discovered], events: &ToolEvents) {
    let mut by_object: HashMap<String, Vec<&Value>> = HashMap::new();
    for e in &events.0 {
        if let Some((object, _)) = ToolEvent::read(e, &[]) {
            by_object.entry(object).or_default().push(e);
        }
    }
    for d in found {
        let object = format!("{} {}/{}", d.app.kind, d.app.namespace, d.app.name);
        let Some(events) = by_object.get(&object) else {
            continue;
        };
        let secrets = d.secret_values();
        for e in events {
            if let Some((_, e)) = ToolEvent::read(e, &secrets) {
                d.app.verdict.take_event(e);
            }
        }
    }
}

fn find<'a>(objects: &'a [Value], namespace: &str, name: &str) -> Option<&'a Value> {
    objects.iter().find(|o| {
        let s = |p: &str| o.pointer(p).and_then(Value::as_str).unwrap_or_default();
        s("/metadata/namespace") == namespace && s("/metadata/name") == name
    })
}

/// The Secrets a Flux object takes values from, with the field naming each.
fn secret_references(object: &Value) -> Vec<(String, ObjectKey)> {
    let namespace = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut out = Vec::new();
    for field in ["spec.postBuild.substituteFrom", "spec.valuesFrom"] {
        let pointer = format!("/{}", field.replace('.', "/"));
        let items = object.pointer(&pointer).and_then(Value::as_array);
        for (i, item) in items.into_iter().flatten().enumerate() {
            let name = item.get("name").and_then(Value::as_str);
            if let (Some("Secret"), Some(name)) = (item.get("kind").and_then(Value::as_str), name) {
                out.push((format!("{field}[{i}]"), ObjectKey::new(namespace, name)));
            }
        }
    }
    out
}

/// What a watch of [`watch`] saw happen to one of the tools' objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    /// A new object.
    Added,
    /// An object changed in what the mapping reads ([`fingerprint`]).
    Changed,
    /// An object deleted.
    Deleted,
    /// A watch (re)listed its kind: the first time, or after it lost track; changes made
    /// meanwhile are not told one by one.
    Listed,
    /// The tool's verdict on an object changed, and nothing a discovery reads: the verdict is
    /// updated, no environment changes, nothing is discovered.
    Status,
    /// The tool recorded an Event on an object ([`ToolEvent`]): the verdict's last event is
    /// updated; no environment changes, nothing is discovered.
    Event,
}

impl ChangeKind {
    /// Whether the change is about the tool's verdict only (nothing to discover).
    pub fn verdict_only(self) -> bool {
        matches!(self, ChangeKind::Status | ChangeKind::Event)
    }
}

/// One change of the tools' objects (`Application argocd/shop added`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The object (`Application argocd/shop`), or the kind for [`ChangeKind::Listed`].
    pub object: String,
    /// What happened.
    pub kind: ChangeKind,
    /// For [`ChangeKind::Status`]: the object's [`verdict_fields`], to read the verdict
    /// from ([`crate::config::discover::ToolVerdict::read`]); for [`ChangeKind::Event`]: the
    /// Event, to be read by [`ToolEvent::read`] (its message may quote a Secret's value:
    /// never logged).
    pub verdict: Option<Value>,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            ChangeKind::Added => "added",
            ChangeKind::Changed => "changed",
            ChangeKind::Deleted => "deleted",
            ChangeKind::Listed => "listed",
            ChangeKind::Status => "status changed",
            ChangeKind::Event => "event recorded",
        };
        write!(f, "{} {what}", self.object)
    }
}

/// The running watches of [`watch`]; dropping them stops them.
pub struct Watches {
    changes: mpsc::Receiver<Change>,
    _tasks: JoinSet<()>,
    /// The kinds served that cannot be watched (forbidden, another version): their objects'
    /// changes are seen at the next periodic discovery only.
    pub errors: Vec<ReadError>,
}

impl fmt::Debug for Watches {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watches")
            .field("errors", &self.errors)
            .finish_non_exhaustive()
    }
}

impl Watches {
    /// The next change; `None` when every watch has ended.
    pub async fn next(&mut self) -> Option<Change> {
        self.changes.recv().await
    }
}

/// Changes waiting to be read; past this many, more are dropped (one waiting is enough to
/// discover again).
const CHANGES_QUEUED: usize = 256;

/// Watches the kinds discovery reads (the Applications of the Argo CD namespaces; the Flux
/// Kustomizations, HelmReleases, GitRepositories and HelmCharts), with kube-runtime's
/// [`watcher`] (a paged list, then a watch from its version, listed again when the watch
/// loses track), and tells which objects were added, deleted, or changed in what the mapping
/// reads. `serve` discovers again after changes ([`crate::follow`]); the objects themselves
/// are read again by [`discover`], with the ConfigMaps and Secrets they name.
///
/// A kind not served now (the tool is not installed) is not watched: a tool installed later
/// is found by the periodic discovery. Each watch tells [`ChangeKind::Listed`] when it has
/// listed its kind, so that what changed between a discovery and the watch's start is not
/// missed.
pub async fn watch(plan: &DiscoveryPlan) -> Result<Watches, DiscoverError> {
    let source = KubeLiveSource::connect(&plan.cluster)
        .await
        .map_err(DiscoverError::Connect)?;
    let reader = Reader {
        client: source.client().clone(),
        cluster: driftguard_core::ports::LiveSource::describe(&source),
    };
    let selector = plan.selector.as_deref();
    let mut kinds: Vec<(&Kind, &[String], Option<&str>)> = Vec::new();
    if let Some(a) = &plan.argocd {
        kinds.push((&APPLICATION, &a.namespaces, selector));
    }
    if let Some(namespaces) = &plan.flux {
        kinds.push((&KUSTOMIZATION, namespaces, selector));
        kinds.push((&HELM_RELEASE, namespaces, selector));
        kinds.push((&GIT_REPOSITORY, namespaces, None));
        kinds.push((&HELM_CHART, namespaces, None));
    }
    // the Events the tools record on their objects, in the tools' namespaces
    let mut events: Vec<(&[String], &str)> = Vec::new();
    if let Some(a) = &plan.argocd {
        events.push((&a.namespaces, "Application"));
    }
    if let Some(namespaces) = &plan.flux {
        events.push((namespaces, "Kustomization"));
        events.push((namespaces, "HelmRelease"));
    }
    let (tx, changes) = mpsc::channel(CHANGES_QUEUED);
    let mut tasks = JoinSet::new();
    let mut errors = Vec::new();
    let ar = EVENT.built_in();
    for (namespaces, kind) in events {
        for (_, api) in apis(&reader.client, &ar, namespaces) {
            let config = watcher::Config::default()
                .page_size(PAGE)
                .fields(&format!("involvedObject.kind={kind}"));
            tasks.spawn(watch_events(api, config, tx.clone()));
        }
    }
    for (kind, namespaces, selector) in kinds {
        let Some(ar) = reader.resolve(kind, &mut errors).await? else {
            continue;
        };
        for (_, api) in apis(&reader.client, &ar, namespaces) {
            let mut config = watcher::Config::default().page_size(PAGE);
            if let Some(s) = selector {
                config = config.labels(s);
            }
            tasks.spawn(watch_kind(api, config, kind.kind, tx.clone()));
        }
    }
    Ok(Watches {
        changes,
        _tasks: tasks,
        errors,
    })
}

/// One watch: tells the objects added, deleted, or changed in their [`fingerprint`]; for the
/// kinds with a verdict (Applications, Kustomizations, HelmReleases), also the objects whose
/// verdict alone changed ([`ChangeKind::Status`], with their [`verdict_fields`]).
async fn watch_kind(
    api: Api<DynamicObject>,
    config: watcher::Config,
    kind: &'static str,
    tx: mpsc::Sender<Change>,
) {
    let has_verdict = matches!(kind, "Application" | "Kustomization" | "HelmRelease");
    let key = |o: &DynamicObject| {
        format!(
            "{}/{}",
            o.metadata.namespace.as_deref().unwrap_or_default(),
            o.metadata.name.as_deref().unwrap_or_default()
        )
    };
    // the object's fingerprint, and what its verdict is read from
    let read = |o: &DynamicObject| {
        let v = serde_json::to_value(o).unwrap_or(Value::Null);
        let verdict = if has_verdict {
            verdict_fields(&v)
        } else {
            Value::Null
        };
        (fingerprint(&v), verdict)
    };
    // the fingerprints and verdicts of the objects as last seen, and of a list in progress
    let mut seen: HashMap<String, (u64, Value)> = HashMap::new();
    let mut listing: HashMap<String, (u64, Value)> = HashMap::new();
    let mut listed_once = false;
    let mut stream = std::pin::pin!(watcher(api, config).default_backoff());
    let mut failing = false;
    let send = |change: Change| match tx.try_send(change) {
        Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => true,
        Err(mpsc::error::TrySendError::Closed(_)) => false,
    };
    while let Some(item) = stream.next().await {
        let change = match item {
            Ok(Event::Init) => {
                listing.clear();
                continue;
            }
            Ok(Event::InitApply(o)) => {
                listing.insert(key(&o), read(&o));
                continue;
            }
            Ok(Event::InitDone) => {
                failing = false;
                let before = std::mem::replace(&mut seen, std::mem::take(&mut listing));
                let prints = |m: &HashMap<String, (u64, Value)>| -> HashMap<String, u64> {
                    m.iter().map(|(k, (p, _))| (k.clone(), *p)).collect()
                };
                if listed_once && prints(&before) == prints(&seen) {
                    // nothing a discovery reads changed meanwhile; verdicts may have
                    for (k, (_, verdict)) in &seen {
                        if before.get(k).is_some_and(|(_, b)| b != verdict)
                            && !send(Change {
                                object: format!("{kind} {k}"),
                                kind: ChangeKind::Status,
                                verdict: Some(verdict.clone()),
                            })
                        {
                            return;
                        }
                    }
                    continue;
                }
                listed_once = true;
                Change {
                    object: format!("{kind}s"),
                    kind: ChangeKind::Listed,
                    verdict: None,
                }
            }
            Ok(Event::Apply(o)) => {
                failing = false;
                let k = key(&o);
                let (print, verdict) = read(&o);
                let kind_of = match seen.insert(k.clone(), (print, verdict.clone())) {
                    None => ChangeKind::Added,
                    Some((p, _)) if p != print => ChangeKind::Changed,
                    Some((_, v)) if v != verdict => ChangeKind::Status,
                    Some(_) => continue,
                };
                Change {
                    object: format!("{kind} {k}"),
                    verdict: (kind_of == ChangeKind::Status).then_some(verdict),
                    kind: kind_of,
                }
            }
            Ok(Event::Delete(o)) => {
                let k = key(&o);
                seen.remove(&k);
                Change {
                    object: format!("{kind} {k}"),
                    kind: ChangeKind::Deleted,
                    verdict: None,
                }
            }
            Err(e) => {
                // the stream backs off and tries again; said once per outage
                if !failing {
                    tracing::warn!(kind, error = %chain(&e), "discovery: the watch failed; retrying");
                }
                failing = true;
                continue;
            }
        };
        if !send(change) {
            return;
        }
    }
}

/// One watch of the Events of the tools' objects: tells each Event recorded or repeated
/// ([`ChangeKind::Event`]; those listed at start too: [`ToolEvent::supersedes`] keeps the
/// newest).
async fn watch_events(api: Api<DynamicObject>, config: watcher::Config, tx: mpsc::Sender<Change>) {
    let mut stream = std::pin::pin!(watcher(api, config).default_backoff());
    let mut failing = false;
    while let Some(item) = stream.next().await {
        let o = match item {
            Ok(Event::InitApply(o) | Event::Apply(o)) => o,
            Ok(_) => continue,
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %chain(&e), "discovery: the watch of the tools' events failed; retrying");
                }
                failing = true;
                continue;
            }
        };
        failing = false;
        let v = serde_json::to_value(&o).unwrap_or(Value::Null);
        let Some((object, _)) = ToolEvent::read(&v, &[]) else {
            continue;
        };
        let change = Change {
            object,
            kind: ChangeKind::Event,
            verdict: Some(v),
        };
        match tx.try_send(change) {
            Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => {}
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
}

/// The APIs of `ar` in each of `namespaces`, with the namespace; one for all namespaces when
/// none is given.
fn apis<'a>(
    client: &kube::Client,
    ar: &ApiResource,
    namespaces: &'a [String],
) -> Vec<(Option<&'a str>, Api<DynamicObject>)> {
    if namespaces.is_empty() {
        return vec![(None, Api::all_with(client.clone(), ar))];
    }
    namespaces
        .iter()
        .map(|ns| {
            (
                Some(ns.as_str()),
                Api::namespaced_with(client.clone(), ns, ar),
            )
        })
        .collect()
}

/// A kind discovery reads: the version DriftGuard's mapping reads, and its plural for
/// messages.
struct Kind {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
}

impl Kind {
    fn gvk(&self) -> GroupVersionKind {
        GroupVersionKind::gvk(self.group, self.version, self.kind)
    }

    /// `applications.argoproj.io`, `configmaps`.
    fn resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_owned()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// A built-in kind's resource, without asking discovery.
    fn built_in(&self) -> ApiResource {
        ApiResource::from_gvk_with_plural(&self.gvk(), self.plural)
    }
}

const APPLICATION: Kind = Kind {
    group: "argoproj.io",
    version: "v1alpha1",
    kind: "Application",
    plural: "applications",
};
const KUSTOMIZATION: Kind = Kind {
    group: "kustomize.toolkit.fluxcd.io",
    version: "v1",
    kind: "Kustomization",
    plural: "kustomizations",
};
const HELM_RELEASE: Kind = Kind {
    group: "helm.toolkit.fluxcd.io",
    version: "v2",
    kind: "HelmRelease",
    plural: "helmreleases",
};
const GIT_REPOSITORY: Kind = Kind {
    group: "source.toolkit.fluxcd.io",
    version: "v1",
    kind: "GitRepository",
    plural: "gitrepositories",
};
const HELM_CHART: Kind = Kind {
    group: "source.toolkit.fluxcd.io",
    version: "v1",
    kind: "HelmChart",
    plural: "helmcharts",
};
const CONFIG_MAP: Kind = Kind {
    group: "",
    version: "v1",
    kind: "ConfigMap",
    plural: "configmaps",
};
const EVENT: Kind = Kind {
    group: "",
    version: "v1",
    kind: "Event",
    plural: "events",
};
const SECRET: Kind = Kind {
    group: "",
    version: "v1",
    kind: "Secret",
    plural: "secrets",
};

/// How a failed request is taken.
enum Failure {
    /// The cluster did not answer, or refused the credentials: nothing can be discovered.
    Cluster,
    /// This read failed, the others may not.
    Read(String),
    /// Not there (a kind not served, an object that does not exist).
    NotFound,
}

fn classify(e: &kube::Error) -> Failure {
    match e {
        kube::Error::Api(s) => match s.code {
            401 => Failure::Cluster,
            404 => Failure::NotFound,
            403 => Failure::Read(format!("forbidden: {}", s.message)),
            code => Failure::Read(format!("HTTP {code}: {}", s.message)),
        },
        kube::Error::Discovery(_) => Failure::NotFound,
        kube::Error::SerdeError(_) => Failure::Read(chain(e)),
        _ => Failure::Cluster,
    }
}

/// Reads one cluster.
struct Reader {
    client: kube::Client,
    cluster: String,
}

impl Reader {
    fn unreachable(&self, source: kube::Error) -> DiscoverError {
        DiscoverError::Unreachable {
            cluster: self.cluster.clone(),
            source,
        }
    }

    /// The objects of `kind` in `namespaces` (empty: all) matching `selector`; `None` when
    /// the kind is not served (the tool is not installed). What cannot be read goes to
    /// `errors`.
    async fn kind(
        &self,
        kind: &Kind,
        namespaces: &[String],
        selector: Option<&str>,
        errors: &mut Vec<ReadError>,
    ) -> Result<Option<Vec<Value>>, DiscoverError> {
        let Some(ar) = self.resolve(kind, errors).await? else {
            return Ok(None);
        };
        let mut out = Vec::new();
        for (ns, api) in apis(&self.client, &ar, namespaces) {
            let what = match ns {
                Some(ns) => format!("{} in {ns}", kind.resource()),
                None => kind.resource(),
            };
            let lp = match selector {
                Some(s) => ListParams::default().labels(s),
                None => ListParams::default(),
            };
            match self.list(&api, &ar, lp).await {
                Ok(items) => out.extend(items),
                Err(e) => match classify(&e) {
                    Failure::Cluster => return Err(self.unreachable(e)),
                    Failure::Read(message) => errors.push(ReadError { what, message }),
                    Failure::NotFound => {}
                },
            }
        }
        Ok(Some(out))
    }

    /// The resource of `kind` in the version the mapping reads; `None` when the kind is not
    /// served. A group serving the kind only in another version is a [`ReadError`].
    async fn resolve(
        &self,
        kind: &Kind,
        errors: &mut Vec<ReadError>,
    ) -> Result<Option<ApiResource>, DiscoverError> {
        let e = match kube::discovery::pinned_kind(&self.client, &kind.gvk()).await {
            Ok((ar, _)) => return Ok(Some(ar)),
            Err(e) => e,
        };
        match classify(&e) {
            Failure::Cluster => return Err(self.unreachable(e)),
            Failure::Read(message) => {
                errors.push(ReadError {
                    what: kind.resource(),
                    message,
                });
                return Ok(None);
            }
            Failure::NotFound => {}
        }
        // the version is not served: another one may be (an older release of the tool)
        match kube::discovery::group(&self.client, kind.group).await {
            Ok(group) => {
                if let Some((other, _)) = group.recommended_kind(kind.kind) {
                    errors.push(ReadError {
                        what: kind.resource(),
                        message: format!(
                            "served as {}, not {}/{}: DriftGuard reads the tool's current API only (upgrade the tool)",
                            other.api_version, kind.group, kind.version
                        ),
                    });
                }
                Ok(None)
            }
            Err(e) => match classify(&e) {
                Failure::Cluster => Err(self.unreachable(e)),
                Failure::Read(message) => {
                    errors.push(ReadError {
                        what: kind.resource(),
                        message,
                    });
                    Ok(None)
                }
                Failure::NotFound => Ok(None),
            },
        }
    }

    /// Every page of a list (by the label or field selector of `lp`), each item with its
    /// `apiVersion` and `kind`.
    async fn list(
        &self,
        api: &Api<DynamicObject>,
        ar: &ApiResource,
        mut lp: ListParams,
    ) -> Result<Vec<Value>, kube::Error> {
        lp = lp.limit(PAGE);
        let mut out = Vec::new();
        loop {
            let page = api.list(&lp).await?;
            for item in page.items {
                out.push(typed(item, ar)?);
            }
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(c) => lp.continue_token = Some(c),
                None => return Ok(out),
            }
        }
    }

    /// The Events (`core/v1`) in `namespaces` (all when empty) about objects of `kinds`, into
    /// `out.events`. Events that cannot be read are a [`ReadError`]: the verdicts go without.
    async fn events(
        &self,
        namespaces: &[String],
        kinds: &[&str],
        out: &mut Objects,
    ) -> Result<(), DiscoverError> {
        let ar = EVENT.built_in();
        for (ns, api) in apis(&self.client, &ar, namespaces) {
            let what = match ns {
                Some(ns) => format!("events in {ns}"),
                None => "events".to_owned(),
            };
            for kind in kinds {
                let lp = ListParams::default().fields(&format!("involvedObject.kind={kind}"));
                match self.list(&api, &ar, lp).await {
                    Ok(items) => out.events.0.extend(items),
                    Err(e) => match classify(&e) {
                        Failure::Cluster => return Err(self.unreachable(e)),
                        Failure::Read(message) => out.errors.push(ReadError {
                            what: what.clone(),
                            message,
                        }),
                        Failure::NotFound => {}
                    },
                }
            }
        }
        Ok(())
    }

    /// One object, by name; `None` when it does not exist. What cannot be read goes to
    /// `errors`.
    async fn get(
        &self,
        kind: &Kind,
        key: &ObjectKey,
        errors: &mut Vec<ReadError>,
    ) -> Result<Option<Value>, DiscoverError> {
        let ar = kind.built_in();
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &key.namespace, &ar);
        let got = match api.get_opt(&key.name).await {
            Ok(Some(o)) => typed(o, &ar),
            Ok(None) => return Ok(None),
            Err(e) => Err(e),
        };
        match got {
            Ok(v) => Ok(Some(v)),
            Err(e) => match classify(&e) {
                Failure::Cluster => Err(self.unreachable(e)),
                Failure::Read(message) => {
                    errors.push(ReadError {
                        what: format!("{} {key}", kind.kind),
                        message,
                    });
                    Ok(None)
                }
                Failure::NotFound => Ok(None),
            },
        }
    }
}

/// An object as JSON, with the `apiVersion` and `kind` that list answers leave out.
fn typed(object: DynamicObject, ar: &ApiResource) -> Result<Value, kube::Error> {
    let mut v = serde_json::to_value(object).map_err(kube::Error::SerdeError)?;
    if let Value::Object(map) = &mut v {
        map.entry("apiVersion")
            .or_insert_with(|| Value::String(ar.api_version.clone()));
        map.entry("kind")
            .or_insert_with(|| Value::String(ar.kind.clone()));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde::Deserialize;

    use super::*;
    use crate::config::{Config, DesiredPlan, LivePlan};

    /// The documents of a fixture of `examples/discovery`, as the API server returns them.
    fn fixture(path: &str) -> Vec<Value> {
        let file = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples/discovery")
            .join(path);
        let text = std::fs::read_to_string(file).expect("the fixture exists");
        serde_yaml::Deserializer::from_str(&text)
            .map(|doc| Value::deserialize(doc).expect("a YAML document"))
            .filter(|v| !v.is_null())
            .collect()
    }

    fn of_kind(docs: &[Value], kind: &str) -> Vec<Value> {
        docs.iter()
            .filter(|d| d.get("kind").and_then(Value::as_str) == Some(kind))
            .cloned()
            .collect()
    }

    const CONFIG: &str = "environments:
  - name: argocd.team-tools.tools
    dir: .
    live: {context: prod}
discover:
  cluster: {kubeconfig: kube/home.yaml}
  names:
    - {discovered: argocd.guestbook, name: guestbook}
  plugins:
    - {name: jsonnet-bundler-v1.0, render: {command: [jb-render]}}
  defaults:
    serverSideDiff: false
    severity:
      - {kind: Deployment, severity: high}
    ignore:
      - {kind: ConfigMap, jsonPointers: [/data/generated]}
";

    fn plan(text: &str) -> crate::config::ResolvedConfig {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = Config::from_text(&dir.path().join("driftguard.yaml"), text)
            .expect("a valid configuration");
        config.plan()
    }

    /// The Argo CD fixtures' Applications and settings, the Flux fixture's Kustomization
    /// with its GitRepository and ConfigMap; its Secret not read.
    fn objects(plan: &DiscoveryPlan) -> Objects {
        let mut applications = Vec::new();
        for f in ["guestbook-directory.yaml", "tools-plugin.yaml"] {
            applications.extend(of_kind(&fixture(&format!("argocd/{f}")), "Application"));
        }
        let flux = fixture("flux/podinfo-kustomization.yaml");
        let mut context = plan.context.clone();
        for d in flux.iter().filter(|d| d["kind"] != "Secret") {
            context.add_object(d);
        }
        Objects {
            applications,
            kustomizations: of_kind(&flux, "Kustomization"),
            argocd_cm: fixture("argocd/argocd-cm.yaml").into_iter().next(),
            context,
            unread_secrets: BTreeSet::from([ObjectKey::new("flux-system", "cluster-secrets")]),
            ..Objects::default()
        }
    }

    #[test]
    fn discovered_environments_are_planned_like_the_file_s_with_the_defaults() {
        let resolved = plan(CONFIG);
        let section = resolved.discover.as_ref().expect("a discover section");
        let configured = vec!["argocd.team-tools.tools".to_owned()];
        let found = map(section, objects(section), &configured);
        let names: Vec<Option<&str>> = found.found.iter().map(Discovered::name).collect();
        // renamed; a plugin with a command, whose name is a configured environment's (not
        // scanned); a plugin without a command (blocked); a Kustomization whose required
        // Secret is not read (blocked)
        assert_eq!(names, [Some("guestbook"), None, None, None]);
        let tools = &found.found[1];
        assert_eq!(tools.app.name, "tools");
        assert_eq!(
            tools.problems.last().map(ToString::to_string).as_deref(),
            Some("metadata.name: the environment name `argocd.team-tools.tools` is a configured environment's: the configured one is scanned (give this one another name in `discover.names`)")
        );
        assert_eq!(found.found[2].app.name, "legacy");
        let podinfo = &found.found[3];
        let unread: Vec<&Problem> = podinfo
            .problems
            .iter()
            .filter(|p| p.field == "spec.postBuild.substituteFrom[1]")
            .collect();
        assert_eq!(unread.len(), 2, "{:#?}", podinfo.problems);
        assert!(unread[0].blocking, "the mapping's: not found, not optional");
        assert_eq!(
            unread[1].message,
            "the Secret flux-system/cluster-secrets is not read: `discover.readSecrets` is false (set it to render with the Secret's values)"
        );

        assert_eq!(found.environments.len(), 1);
        let guestbook = &found.environments[0];
        assert_eq!(guestbook.name, "guestbook");
        // the defaults: severity added, ignore after the Application's and argocd-cm's,
        // serverSideDiff turned off over the Application's annotation
        assert_eq!(guestbook.spec.severity.overrides.len(), 1);
        let ignore = &guestbook.spec.ignore.rules;
        assert_eq!(
            ignore.last().map(|r| r.selector.kind.as_deref()),
            Some(Some("ConfigMap"))
        );
        assert!(ignore.len() > 1);
        assert!(!guestbook.spec.server_side_diff);
        // the discovery cluster, its kubeconfig resolved against the file's folder
        match &guestbook.live {
            LivePlan::Cluster(spec) => {
                let k = spec.kubeconfig.as_ref().expect("a kubeconfig");
                assert!(k.is_absolute() && k.ends_with("kube/home.yaml"), "{k:?}");
            }
            LivePlan::Dump(_) => panic!("a cluster"),
        }
        match &guestbook.desired {
            Some(DesiredPlan::Git(g)) => {
                assert_eq!(
                    g.source.url,
                    "https://github.com/argoproj/argocd-example-apps.git"
                );
                assert_eq!(g.source.path, "guestbook");
                assert!(g.source.recurse, "the Application's `recurse: true`");
            }
            other => panic!("a repository: {other:?}"),
        }
    }

    #[test]
    fn read_secret_values_never_show_in_debug_or_problems() {
        let resolved = plan("discover:\n  readSecrets: true\n");
        let section = resolved.discover.as_ref().expect("a discover section");
        let flux = fixture("flux/podinfo-kustomization.yaml");
        let mut objects = Objects {
            kustomizations: of_kind(&flux, "Kustomization"),
            context: section.context.clone(),
            ..Objects::default()
        };
        for d in &flux {
            objects.context.add_object(d);
        }
        let secrets: Vec<String> = of_kind(&flux, "Secret")
            .iter()
            .flat_map(|s| {
                crate::config::discover::SecretData::from_object(s)
                    .iter()
                    .map(|(_, v)| v.to_owned())
                    .collect::<Vec<_>>()
            })
            .collect();
        assert!(!secrets.is_empty());
        let found = map(section, objects, &[]);
        assert_eq!(found.environments.len(), 1, "{found:#?}");
        let shown = format!("{found:?}");
        for s in &secrets {
            assert!(!shown.contains(s.as_str()), "{s} in {shown}");
            for d in &found.found {
                assert!(!d
                    .problems
                    .iter()
                    .any(|p| p.to_string().contains(s.as_str())));
            }
        }
        assert!(shown.contains("flux.flux-system.podinfo"));
    }

    #[test]
    fn secret_references_name_their_fields() {
        let release = serde_json::json!({
            "metadata": {"namespace": "apps", "name": "web"},
            "spec": {"valuesFrom": [
                {"kind": "ConfigMap", "name": "a"},
                {"kind": "Secret", "name": "b"},
            ]},
        });
        assert_eq!(
            secret_references(&release),
            [("spec.valuesFrom[1]".to_owned(), ObjectKey::new("apps", "b"))]
        );
    }
}
