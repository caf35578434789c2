//! Live clusters through `kube` (kube-rs).
//!
//! [`KubeLiveSource`] implements [`LiveSource`] for one cluster context:
//!
//! - connects from a kubeconfig file and context (like `kubectl --kubeconfig --context`), or
//!   from the in-cluster service-account configuration ([`KubeConfigSpec`]);
//! - resolves every tracked kind through API discovery (`/api/v1`, `/apis/<group>/<version>`),
//!   so CRDs work without code changes; objects are handled as plain JSON (dynamic objects),
//!   in the version Git uses, or the group's preferred version when that one is not served;
//! - lists with pagination (`limit`/`continue`, 500 a page) and the scope's label selector,
//!   per namespace when the scope names namespaces, and passes every listed and watched object
//!   through the scope's admission rule ([`LiveScope::admits`]), so that a cluster admits the
//!   same objects as any other live source (the `Namespace` kind, listed whole, is limited
//!   there to the scope's namespaces);
//! - watches with plain list + watch (no streaming lists, no aggregated discovery: API servers
//!   from 1.20 on work), bookmarks, a relist of one kind on `410 Gone`, and reconnection with
//!   backoff ([`LiveSource::watch`]).
//!
//! Failure is never silence: a kind that cannot be listed (HTTP 403, not served) is reported in
//! [`LiveSnapshot::errors`] and the other kinds are read; an API server that cannot be reached
//! makes [`LiveSource::snapshot`] fail with [`SourceError::Unreachable`], and a watch emits
//! [`LiveChange::Disconnected`] and, once the server answers again,
//! [`LiveChange::Restarted`] with a complete snapshot.
//!
//! Objects keep everything the API server returned, `metadata.managedFields` included (the
//! core reads field owners from it). They may hold Secret values: this module never logs them.

#![cfg(feature = "kube")]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ::kube::api::{ApiResource, DynamicObject, ListParams};
use ::kube::config::{KubeConfigOptions, Kubeconfig};
use ::kube::core::Request;
use ::kube::discovery::{self, Scope};
use ::kube::{Client, Config, Resource};
use async_trait::async_trait;
use driftguard_core::admission::Admission;
use driftguard_core::id::GroupKind;
use driftguard_core::manifest::ManifestError;
use driftguard_core::model::{LiveObjects, ObjectMeta, RawObject};
use driftguard_core::ports::{
    GroupVersionKind, KindError, LiveChange, LiveScope, LiveSnapshot, LiveSource, Prediction,
    SourceError,
};
use futures_util::stream::{BoxStream, StreamExt};
use serde_json::Value;

mod apply;
mod cache;
mod client;
pub mod lease;
mod packed;
mod predict;
mod watch;

pub use apply::{Applied, ApplyError};
pub use cache::{SharedWatches, LISTS_AT_ONCE};

/// How to reach a cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct KubeConfigSpec {
    /// Kubeconfig file (default: `$KUBECONFIG`, then `~/.kube/config`).
    pub kubeconfig: Option<PathBuf>,
    /// Context in the kubeconfig (default: its current context).
    pub context: Option<String>,
    /// Use the in-cluster service-account configuration instead of a kubeconfig.
    pub in_cluster: bool,
}

/// Objects read per list request.
pub const DEFAULT_PAGE_SIZE: u32 = 500;
/// Lists run at the same time during a snapshot.
pub const DEFAULT_CONCURRENCY: usize = 8;

/// A live cluster read through the Kubernetes API: one view of it (an environment's).
///
/// Views made with [`KubeLiveSource::view`] share the cluster's client (one connection pool)
/// and its watches: one list and watch per kind for all of them ([`cache`]). A view's
/// [`LiveSource::watch`] always runs on the shared watches; its [`LiveSource::snapshot`] reads
/// them too when [`KubeLiveSource::with_shared_cache`] says so (a running service), and lists
/// on its own otherwise (a one-shot scan keeps nothing).
#[derive(Clone)]
pub struct KubeLiveSource {
    inner: Arc<Inner>,
    view: Arc<View>,
}

/// What one view holds.
#[derive(Default)]
struct View {
    /// Snapshots are read from the shared watches instead of listed.
    shared_cache: bool,
    /// The shared watches of the last snapshot, held so that they run between scans.
    held: Mutex<Vec<Arc<cache::Shared>>>,
}

struct Inner {
    client: Client,
    /// The cluster's shared watches.
    hub: cache::Hub,
    describe: String,
    page_size: u32,
    concurrency: usize,
    max_backoff: Duration,
    /// Resolved kinds (discovery results are kept; failures are not, so a CRD installed later
    /// is found on the next snapshot).
    resolved: Mutex<HashMap<GroupVersionKind, Resolved>>,
    /// The API server's version (`gitVersion`) the resolved kinds were read from: when it
    /// changes (an upgrade), they are read again.
    server_version: Mutex<Option<String>>,
    /// Discovery requests run one at a time per cluster, and a version check answers for the
    /// checks asked for while it ran (and [`VERSION_FRESH`] after): many views starting at
    /// once cost one request each, not one each per view (nor a connection each).
    discovery: tokio::sync::Mutex<Option<std::time::Instant>>,
}

/// How long a version check answers for the checks that follow it.
const VERSION_FRESH: Duration = Duration::from_secs(2);

/// A kind resolved through discovery.
#[derive(Clone, Debug)]
struct Resolved {
    ar: ApiResource,
    namespaced: bool,
}

impl std::fmt::Debug for KubeLiveSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KubeLiveSource({})", self.inner.describe)
    }
}

fn config_error(file: &str, field: Option<&str>, message: String) -> SourceError {
    SourceError::Invalid(ManifestError {
        file: file.to_owned(),
        line: 0,
        field: field.map(str::to_owned),
        message,
    })
}

impl KubeConfigSpec {
    /// Reads the configuration this spec names (a kubeconfig and context, or the in-cluster
    /// service account) into a kube [`Config`], with a description of the cluster
    /// (`cluster https://10.0.0.1 (context prod)`). Does not contact the API server.
    pub async fn load(&self) -> Result<(Config, String), SourceError> {
        let spec = self;
        let (config, origin) = if spec.in_cluster {
            let config = Config::incluster().map_err(|e| {
                config_error(
                    "in-cluster configuration",
                    None,
                    format!("cannot read the service-account configuration: {e}"),
                )
            })?;
            (config, "in-cluster".to_owned())
        } else {
            let options = KubeConfigOptions {
                context: spec.context.clone(),
                ..KubeConfigOptions::default()
            };
            let file = spec
                .kubeconfig
                .as_ref()
                .map(|p| p.display().to_string())
                .or_else(|| std::env::var("KUBECONFIG").ok())
                .unwrap_or_else(|| "~/.kube/config".to_owned());
            let config = match &spec.kubeconfig {
                Some(path) => {
                    let kc = Kubeconfig::read_from(path).map_err(|e| {
                        config_error(&file, None, format!("cannot read kubeconfig: {e}"))
                    })?;
                    Config::from_custom_kubeconfig(kc, &options).await
                }
                None => Config::from_kubeconfig(&options).await,
            }
            .map_err(|e| {
                config_error(
                    &file,
                    spec.context.as_ref().map(|_| "context"),
                    format!("cannot use kubeconfig: {e}"),
                )
            })?;
            let context = spec
                .context
                .clone()
                .unwrap_or_else(|| "current context".to_owned());
            (config, format!("context {context}"))
        };
        let describe = format!("cluster {} ({origin})", config.cluster_url);
        Ok((config, describe))
    }
}

impl KubeLiveSource {
    /// Reads the configuration and builds a client. Does not contact the API server: an
    /// unreachable server shows up in [`LiveSource::snapshot`] and [`LiveSource::watch`].
    pub async fn connect(spec: &KubeConfigSpec) -> Result<Self, SourceError> {
        let (config, describe) = spec.load().await?;
        Self::from_config(config, describe)
    }

    /// Builds a source from a ready kube [`Config`].
    pub fn from_config(config: Config, describe: String) -> Result<Self, SourceError> {
        let client = client::client_for(config).map_err(|e| SourceError::Backend {
            context: format!("cannot build a Kubernetes client for {describe}"),
            source: Box::new(e),
        })?;
        Ok(Self::from_client(client, describe))
    }

    /// Wraps a ready kube [`Client`].
    pub fn from_client(client: Client, describe: String) -> Self {
        KubeLiveSource {
            view: Arc::default(),
            inner: Arc::new(Inner {
                client,
                hub: cache::Hub::default(),
                describe,
                page_size: DEFAULT_PAGE_SIZE,
                concurrency: DEFAULT_CONCURRENCY,
                max_backoff: Duration::from_secs(2),
                resolved: Mutex::new(HashMap::new()),
                server_version: Mutex::new(None),
                discovery: tokio::sync::Mutex::new(None),
            }),
        }
    }

    /// Sets the page size of list requests (default [`DEFAULT_PAGE_SIZE`]).
    pub fn with_page_size(self, page_size: u32) -> Self {
        self.rebuild(|i| i.page_size = page_size.max(1))
    }

    /// Sets the longest wait between reconnection attempts of a watch (default 2 s).
    pub fn with_max_backoff(self, max_backoff: Duration) -> Self {
        self.rebuild(|i| i.max_backoff = max_backoff.max(Duration::from_millis(10)))
    }

    fn rebuild(self, f: impl FnOnce(&mut Inner)) -> Self {
        let resolved = self
            .inner
            .resolved
            .lock()
            .expect("discovery cache lock is never poisoned")
            .clone();
        let mut inner = Inner {
            client: self.inner.client.clone(),
            hub: cache::Hub::default(),
            describe: self.inner.describe.clone(),
            page_size: self.inner.page_size,
            concurrency: self.inner.concurrency,
            max_backoff: self.inner.max_backoff,
            resolved: Mutex::new(resolved),
            discovery: tokio::sync::Mutex::new(None),
            server_version: Mutex::new(
                self.inner
                    .server_version
                    .lock()
                    .expect("version lock is never poisoned")
                    .clone(),
            ),
        };
        f(&mut inner);
        KubeLiveSource {
            inner: Arc::new(inner),
            view: Arc::new(View {
                shared_cache: self.view.shared_cache,
                held: Mutex::default(),
            }),
        }
    }

    /// Another view of the same cluster (another environment's): the same client and the same
    /// shared watches, its own scope.
    pub fn view(&self) -> Self {
        KubeLiveSource {
            inner: self.inner.clone(),
            view: Arc::new(View {
                shared_cache: self.view.shared_cache,
                held: Mutex::default(),
            }),
        }
    }

    /// Whether snapshots are read from the cluster's shared watches (and keep them running
    /// between scans) instead of listed: what a running service wants; a one-shot scan lists.
    pub fn with_shared_cache(self, on: bool) -> Self {
        KubeLiveSource {
            inner: self.inner,
            view: Arc::new(View {
                shared_cache: on,
                held: Mutex::default(),
            }),
        }
    }

    /// The cluster's running shared watches: how many, the objects their caches hold and the
    /// size of what they keep (bytes of JSON text).
    pub fn shared_watches(&self) -> SharedWatches {
        self.inner.hub.footprint()
    }

    /// The kube client (for callers that need more than the port offers).
    pub fn client(&self) -> &Client {
        &self.inner.client
    }
}

#[async_trait]
impl LiveSource for KubeLiveSource {
    fn describe(&self) -> String {
        self.inner.describe.clone()
    }

    async fn snapshot(&self, scope: &LiveScope) -> Result<LiveSnapshot, SourceError> {
        let rule = scope.admission()?;
        if !self.view.shared_cache {
            return Ok(self.inner.list_scope(scope, &rule).await?.into_snapshot());
        }
        let coverage = self.inner.cover(scope, &rule).await?;
        let mut objects = LiveObjects::new();
        for w in &coverage.watches {
            if matches!(w.phase(), cache::Phase::Ready) {
                w.read(&rule, &mut objects);
            }
        }
        *self.view.held.lock().expect("view lock is never poisoned") = coverage.watches;
        Ok(LiveSnapshot {
            served: coverage.served,
            objects,
            errors: coverage.errors,
        })
    }

    async fn watch(
        &self,
        scope: &LiveScope,
    ) -> Result<BoxStream<'static, LiveChange>, SourceError> {
        let rule = scope.admission()?;
        Ok(watch::start(self.inner.clone(), scope.clone(), rule))
    }

    async fn predict(
        &self,
        objects: &[RawObject],
        default_namespace: &str,
    ) -> Result<Vec<Prediction>, SourceError> {
        Ok(self.predict_all(objects, default_namespace).await)
    }
}

/// How a failed request is to be taken.
#[derive(Clone, Debug)]
enum Failure {
    /// The API server cannot be reached (or answered nothing usable): the whole live state is
    /// unknown.
    Unreachable(String),
    /// The credentials were refused (HTTP 401).
    Unauthorized(String),
    /// This kind cannot be read (not served, a bad answer); the others can.
    Kind(String),
    /// This kind cannot be read with these credentials (HTTP 403), here: elsewhere (in one
    /// namespace) it may be.
    Forbidden(String),
    /// This kind cannot be read now, and may be soon (HTTP 429, 5xx).
    Transient(String),
}

fn classify(e: &::kube::Error) -> Failure {
    use ::kube::Error as E;
    match e {
        E::Api(s) => {
            let what = if s.message.is_empty() {
                s.reason.clone()
            } else {
                s.message.clone()
            };
            match s.code {
                401 => Failure::Unauthorized(what),
                403 => Failure::Forbidden(format!("forbidden: {what}")),
                404 => Failure::Kind(format!("not served by the API server: {what}")),
                429 | 500..=599 => Failure::Transient(format!("HTTP {}: {what}", s.code)),
                code => Failure::Kind(format!("HTTP {code}: {what}")),
            }
        }
        E::Discovery(d) => Failure::Kind(format!("not served by the API server: {d}")),
        E::SerdeError(_) | E::FromUtf8(_) | E::BuildRequest(_) | E::HttpError(_) => {
            Failure::Kind(e.to_string())
        }
        _ => Failure::Unreachable(e.to_string()),
    }
}

/// A list answer, its items left as text to be parsed one at a time.
#[derive(serde::Deserialize)]
struct ListPage<'a> {
    #[serde(default, borrow)]
    metadata: ListPageMeta<'a>,
    #[serde(default, borrow)]
    items: Vec<&'a serde_json::value::RawValue>,
}

#[derive(Default, serde::Deserialize)]
struct ListPageMeta<'a> {
    #[serde(rename = "resourceVersion", default, borrow)]
    resource_version: std::borrow::Cow<'a, str>,
    #[serde(rename = "continue", default, borrow)]
    continue_token: Option<std::borrow::Cow<'a, str>>,
}

fn is_gone(e: &::kube::Error) -> bool {
    matches!(e, ::kube::Error::Api(s) if s.code == 410)
}

/// One list (and watch) target: a kind, in one namespace or in all.
#[derive(Clone, Debug)]
struct Target {
    gvk: GroupVersionKind,
    ar: ApiResource,
    namespace: Option<String>,
}

impl Target {
    fn url(&self) -> String {
        <DynamicObject as Resource>::url_path(&self.ar, self.namespace.as_deref())
    }

    fn group_kind(&self) -> GroupKind {
        self.gvk.group_kind()
    }

    /// Sets `apiVersion` and `kind`, which list responses leave out of their items.
    fn fill_type(&self, object: &mut Value) {
        if let Value::Object(map) = object {
            if !map.contains_key("apiVersion") {
                map.insert(
                    "apiVersion".into(),
                    Value::String(self.ar.api_version.clone()),
                );
            }
            if !map.contains_key("kind") {
                map.insert("kind".into(), Value::String(self.ar.kind.clone()));
            }
        }
    }
}

/// The items of one list and its resource version.
type ListResult = Result<(Vec<Arc<str>>, String), ::kube::Error>;

/// The result of listing a scope.
#[derive(Debug, Default)]
struct Listing {
    /// The objects listed, per target, as compact JSON text (parsed again one at a time by
    /// the scan: a listing never holds every parsed object at once).
    listed: Vec<Vec<Arc<str>>>,
    errors: Vec<KindError>,
    /// The scope of each kind read, as discovery says it.
    served: Vec<(GroupKind, bool)>,
}

impl Listing {
    fn into_snapshot(self) -> LiveSnapshot {
        LiveSnapshot {
            served: self.served,
            objects: {
                let mut objects =
                    LiveObjects::with_capacity(self.listed.iter().map(Vec::len).sum());
                for text in self.listed.into_iter().flatten() {
                    objects.push_compact(text);
                }
                objects
            },
            errors: self.errors,
        }
    }

    fn add_error(&mut self, kind: GroupKind, message: String) {
        if !self.errors.iter().any(|e| e.kind == kind) {
            self.errors.push(KindError { kind, message });
        }
    }
}

fn object_key(object: &Value) -> String {
    meta_key(ObjectMeta::of(object))
}

/// An object's key within its kind: `namespace/name` (`/name` cluster-wide).
fn meta_key(meta: ObjectMeta<'_>) -> String {
    format!("{}/{}", meta.namespace.unwrap_or(""), meta.name)
}

impl Inner {
    /// Forgets the resolved kinds when the API server's version changed since they were read
    /// (discovery is cached per server version). A failed version request changes nothing:
    /// the listing that follows says what is wrong.
    async fn check_server_version(&self) {
        let mut checked = self.discovery.lock().await;
        if checked.is_some_and(|t| t.elapsed() < VERSION_FRESH) {
            return;
        }
        let answer = self.client.apiserver_version().await;
        *checked = Some(std::time::Instant::now());
        let Ok(info) = answer else {
            return;
        };
        let mut version = self
            .server_version
            .lock()
            .expect("version lock is never poisoned");
        if version.as_deref() != Some(info.git_version.as_str()) {
            if version.is_some() {
                tracing::info!(source = %self.describe, from = ?version, to = %info.git_version,
                    "the API server's version changed: kinds are discovered again");
            }
            self.resolved
                .lock()
                .expect("discovery cache lock is never poisoned")
                .clear();
            *version = Some(info.git_version);
        }
    }

    /// Resolves a kind through discovery, in the version asked for, else the group's preferred
    /// version.
    async fn resolve(&self, gvk: &GroupVersionKind) -> Result<Resolved, ::kube::Error> {
        if let Some(r) = self
            .resolved
            .lock()
            .expect("discovery cache lock is never poisoned")
            .get(gvk)
        {
            return Ok(r.clone());
        }
        // one discovery at a time: views asking for the same kind at once wait for the first
        let _one = self.discovery.lock().await;
        if let Some(r) = self
            .resolved
            .lock()
            .expect("discovery cache lock is never poisoned")
            .get(gvk)
        {
            return Ok(r.clone());
        }
        let kgvk = ::kube::api::GroupVersionKind::gvk(&gvk.group, &gvk.version, &gvk.kind);
        let (ar, caps) = match discovery::pinned_kind(&self.client, &kgvk).await {
            Ok(found) => found,
            Err(e) if matches!(classify(&e), Failure::Kind(_) | Failure::Forbidden(_)) => {
                // the version Git uses is not served (any more): read the preferred one, the
                // core converts between known versions
                let group = discovery::group(&self.client, &gvk.group).await?;
                group.recommended_kind(&gvk.kind).ok_or_else(|| {
                    ::kube::Error::Discovery(::kube::error::DiscoveryError::MissingKind(format!(
                        "{} in group {:?}",
                        gvk.kind, gvk.group
                    )))
                })?
            }
            Err(e) => return Err(e),
        };
        let r = Resolved {
            ar,
            namespaced: caps.scope == Scope::Namespaced,
        };
        self.resolved
            .lock()
            .expect("discovery cache lock is never poisoned")
            .insert(gvk.clone(), r.clone());
        Ok(r)
    }

    /// The list parameters of a scope: the page size and the label selector (the server
    /// filters by it; [`Admission::admits`] checks again).
    fn list_params(&self, rule: &Admission) -> ListParams {
        let mut lp = ListParams::default().limit(self.page_size);
        if let Some(sel) = rule.selector() {
            lp = lp.labels(sel.as_str());
        }
        lp
    }

    /// Lists one target, page by page, keeping the objects `rule` admits.
    async fn list_target(&self, target: &Target, lp: &ListParams, rule: &Admission) -> ListResult {
        let request = Request::new(target.url());
        let mut lp = lp.clone();
        let mut items = Vec::new();
        let mut restarted = false;
        loop {
            let req = request.list(&lp).map_err(::kube::Error::BuildRequest)?;
            // the page's text is read one item at a time: a page of 500 objects parsed whole
            // is ten times its text, and several kinds are listed at once
            let text = match self.client.request_text(req).await {
                Ok(t) => t,
                Err(e) if is_gone(&e) && lp.continue_token.is_some() && !restarted => {
                    // the continue token expired: list again from the start, once
                    restarted = true;
                    items.clear();
                    lp.continue_token = None;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let page: ListPage<'_> =
                serde_json::from_str(&text).map_err(::kube::Error::SerdeError)?;
            let rv = page.metadata.resource_version.into_owned();
            let next = page
                .metadata
                .continue_token
                .filter(|c| !c.is_empty())
                .map(|c| c.into_owned());
            items.reserve(page.items.len());
            for raw in page.items {
                let Ok(mut item) = serde_json::from_str::<Value>(raw.get()) else {
                    continue;
                };
                target.fill_type(&mut item);
                if rule.admits(&item) {
                    // what no comparison reads is not kept while the scan runs
                    driftguard_core::normalize::strip_unread(&mut item);
                    if let Ok(text) = serde_json::to_string(&item) {
                        items.push(Arc::from(text));
                    }
                }
            }
            match next {
                Some(c) => lp.continue_token = Some(c),
                None => return Ok((items, rv)),
            }
        }
    }

    /// Resolves and lists every kind of a scope (`rule` is its admission rule): one list per
    /// kind (the first version named for a group and kind), per namespace for namespaced kinds
    /// when the scope names namespaces, else cluster-wide.
    async fn list_scope(
        &self,
        scope: &LiveScope,
        rule: &Admission,
    ) -> Result<Listing, SourceError> {
        let mut listing = Listing::default();
        let mut targets = Vec::new();
        let mut seen = std::collections::HashSet::new();
        self.check_server_version().await;
        for gvk in scope.kinds.iter().filter(|k| seen.insert(k.group_kind())) {
            let resolved = self.resolve(gvk).await;
            if let Ok(r) = &resolved {
                listing.served.push((gvk.group_kind(), r.namespaced));
            }
            match resolved {
                Ok(r) if r.namespaced && !rule.namespaces().is_empty() => {
                    for ns in rule.namespaces() {
                        targets.push(Target {
                            gvk: gvk.clone(),
                            ar: r.ar.clone(),
                            namespace: Some(ns.clone()),
                        });
                    }
                }
                Ok(r) => targets.push(Target {
                    gvk: gvk.clone(),
                    ar: r.ar,
                    namespace: None,
                }),
                Err(e) => self.take_failure(&mut listing, gvk.group_kind(), &e)?,
            }
        }
        let lp = self.list_params(rule);
        let results: Vec<(Target, ListResult)> = futures_util::stream::iter(targets)
            .map(|t| {
                let lp = &lp;
                async move {
                    let r = self.list_target(&t, lp, rule).await;
                    (t, r)
                }
            })
            .buffered(self.concurrency)
            .collect()
            .await;
        for (target, result) in results {
            match result {
                Ok((items, _)) => listing.listed.push(items),
                Err(e) => self.take_failure(&mut listing, target.group_kind(), &e)?,
            }
        }
        Ok(listing)
    }

    /// Records a kind-level failure, or fails the whole listing.
    fn take_failure(
        &self,
        listing: &mut Listing,
        kind: GroupKind,
        e: &::kube::Error,
    ) -> Result<(), SourceError> {
        match classify(e) {
            Failure::Unreachable(_) => Err(self.unreachable(e)),
            Failure::Unauthorized(what) => Err(SourceError::Forbidden {
                what: format!("{}: credentials refused: {what}", self.describe),
            }),
            Failure::Kind(message) | Failure::Forbidden(message) => {
                listing.add_error(kind, message);
                Ok(())
            }
            Failure::Transient(message) => {
                listing.add_error(kind, message);
                Ok(())
            }
        }
    }

    fn unreachable(&self, e: &::kube::Error) -> SourceError {
        SourceError::Unreachable {
            target: self.describe.clone(),
            source: e.to_string().into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(kind: &str) -> Target {
        let gvk = GroupVersionKind::from_api_version("v1", kind);
        Target {
            ar: ApiResource {
                group: String::new(),
                version: "v1".into(),
                api_version: "v1".into(),
                kind: kind.into(),
                plural: format!("{}s", kind.to_lowercase()),
            },
            gvk,
            namespace: None,
        }
    }

    #[test]
    fn fill_type_sets_missing_type_only() {
        let t = target("ConfigMap");
        let mut v = serde_json::json!({"metadata": {"name": "a"}});
        t.fill_type(&mut v);
        assert_eq!(v["apiVersion"], "v1");
        assert_eq!(v["kind"], "ConfigMap");
        let mut w = serde_json::json!({"apiVersion": "x/v2", "kind": "Y"});
        t.fill_type(&mut w);
        assert_eq!(w["apiVersion"], "x/v2");
        assert_eq!(w["kind"], "Y");
    }

    #[test]
    fn listed_namespaces_are_those_of_the_scope() {
        // list items come without apiVersion and kind: the rule sees them once filled in
        let scope = LiveScope {
            kinds: vec![GroupVersionKind::from_api_version("v1", "Namespace")],
            namespaces: vec!["shop".into()],
            label_selector: None,
        };
        let rule = scope.admission().expect("valid scope");
        let t = target("Namespace");
        let mut shop = serde_json::json!({"metadata": {"name": "shop"}});
        let mut other = serde_json::json!({"metadata": {"name": "other"}});
        t.fill_type(&mut shop);
        t.fill_type(&mut other);
        assert!(rule.admits(&shop));
        assert!(!rule.admits(&other));
    }

    #[test]
    fn errors_are_classified() {
        let api = |code: u16| {
            ::kube::Error::Api(Box::new(::kube::core::Status {
                code,
                message: "m".into(),
                ..::kube::core::Status::default()
            }))
        };
        assert!(matches!(classify(&api(403)), Failure::Forbidden(m) if m.starts_with("forbidden")));
        assert!(matches!(classify(&api(404)), Failure::Kind(_)));
        assert!(matches!(classify(&api(401)), Failure::Unauthorized(_)));
        assert!(matches!(classify(&api(503)), Failure::Transient(_)));
        assert!(is_gone(&api(410)));
        assert!(matches!(
            classify(&::kube::Error::TlsRequired),
            Failure::Unreachable(_)
        ));
    }

    #[test]
    fn keys_and_versions() {
        let v = serde_json::json!({"metadata": {"name": "a", "namespace": "n", "resourceVersion": "7"}});
        assert_eq!(object_key(&v), "n/a");
    }
}
