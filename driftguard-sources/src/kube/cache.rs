//! The cluster's shared watches: one list and watch per kind (and, where only that is
//! allowed, per namespace) for every environment on the cluster.
//!
//! Environments are views of a cluster (kinds, namespaces, a label selector). Argo CD's answer
//! to thousands of applications on one cluster is one cache per cluster shared by all of them;
//! this is DriftGuard's. A [`Shared`] watch runs kube-runtime's [`watcher`] (paged list, then a
//! watch with bookmarks; a `410 Gone` relists) for one [`Target`], keeps what the engine can
//! use of every object (the object without what no comparison reads:
//! [`strip_unread`](driftguard_core::normalize::strip_unread)) as compact JSON text packed
//! with a dictionary of its kind ([`super::packed`]), and
//! announces each change to every view subscribed ([`Note`]). A view reads its objects from the
//! cache (its first scan needs no list of its own) and follows the announcements, filtered by
//! its admission rule.
//!
//! - The hub holds its watches weakly: a watch lives while some view holds it (a view keeps the
//!   watches of its last scan and of its running watch), and stops when none does.
//! - A failure is never silence: a watch that cannot reach the API server says so
//!   ([`Note::Lost`], [`Phase::Lost`]) and starts over with a fresh list once it answers
//!   (views then get a complete snapshot); a kind that cannot be read (HTTP 403, not served)
//!   is [`Phase::Failed`] and is tried again after a backoff; errors that may go away soon
//!   (HTTP 429, 5xx) are retried with the one retry policy ([`driftguard_core::retry`]).
//! - The API server is a shared resource: a few lists run at once per cluster (the others
//!   wait), and every retry waits with jitter, so that many environments starting at once
//!   spread their requests.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use ::kube::api::{Api, DynamicObject};
use ::kube::runtime::watcher::{self, watcher, Event};
use ::kube::Client;
use driftguard_core::admission::Admission;
use driftguard_core::id::GroupKind;
use driftguard_core::model::{LiveObjects, PackedText};
use driftguard_core::normalize::strip_unread;
use driftguard_core::ports::{KindError, LiveScope, SourceError};
use driftguard_core::retry::{self, Backoff};
use futures_util::StreamExt;
use serde_json::Value;
use tokio::sync::{broadcast, watch, Semaphore};

use super::packed::{Dictionary, Packed, MAX_SAMPLES};
use super::{classify, object_key, Failure, Inner, Target};

/// Lists (initial lists and relists after a lost connection) that run at once on one cluster.
pub const LISTS_AT_ONCE: usize = 4;
/// Announcements a slow view may fall behind before it reads the cache anew.
const ANNOUNCEMENTS: usize = 4096;

/// The shared watches of one cluster.
pub(super) struct Hub {
    watches: Mutex<HashMap<WatchKey, Weak<Shared>>>,
    lists: Arc<Semaphore>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            watches: Mutex::new(HashMap::new()),
            lists: Arc::new(Semaphore::new(LISTS_AT_ONCE)),
        }
    }
}

/// What one shared watch reads: a resolved kind in one namespace, or in all.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct WatchKey {
    api_version: String,
    kind: String,
    namespace: Option<String>,
}

impl WatchKey {
    fn of(target: &Target) -> Self {
        WatchKey {
            api_version: target.ar.api_version.clone(),
            kind: target.ar.kind.clone(),
            namespace: target.namespace.clone(),
        }
    }
}

/// What a watch knows of its target.
#[derive(Clone, Debug)]
pub(super) enum Phase {
    /// Listing for the first time (or again after a lost connection).
    Syncing,
    /// The cache holds every object of the target.
    Ready,
    /// The kind cannot be read now; tried again after a backoff.
    Failed(Failure),
    /// The API server cannot be reached, or refused the credentials.
    Lost(Failure),
}

impl Phase {
    fn settled(&self) -> bool {
        !matches!(self, Phase::Syncing)
    }
}

/// An announcement of a shared watch to its views.
#[derive(Clone, Debug)]
pub(super) enum Note {
    /// An object was created or changed (as the cache now holds it).
    Applied(Arc<Value>),
    /// An object was deleted.
    Deleted(Arc<Value>),
    /// The cache was filled anew (first list, relist, or a phase change): read it again.
    Relisted,
    /// The API server cannot be reached.
    Lost(String),
}

/// One shared watch: the cache of its target and its announcements.
pub(super) struct Shared {
    target: Target,
    objects: Mutex<Cache>,
    notes: broadcast::Sender<Note>,
    phase: watch::Sender<Phase>,
    task: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().ok().and_then(|mut t| t.take()) {
            task.abort();
        }
    }
}

/// How a shared watch is run.
pub(super) struct Settings {
    pub client: Client,
    pub describe: String,
    pub page_size: u32,
    pub max_backoff: Duration,
}

impl Hub {
    /// The shared watch of `target`, started if no view holds it yet.
    pub(super) fn watch(&self, target: &Target, settings: Settings) -> Arc<Shared> {
        let key = WatchKey::of(target);
        let mut watches = self.watches.lock().expect("hub lock is never poisoned");
        if let Some(shared) = watches.get(&key).and_then(Weak::upgrade) {
            return shared;
        }
        watches.retain(|_, w| w.strong_count() > 0);
        let (notes, _) = broadcast::channel(ANNOUNCEMENTS);
        let (phase, _) = watch::channel(Phase::Syncing);
        let shared = Arc::new(Shared {
            target: target.clone(),
            objects: Mutex::new(Cache::default()),
            notes,
            phase,
            task: Mutex::new(None),
        });
        let task = tokio::spawn(run(Arc::downgrade(&shared), settings, self.lists.clone()));
        *shared.task.lock().expect("task lock is never poisoned") = Some(task.abort_handle());
        watches.insert(key, Arc::downgrade(&shared));
        shared
    }

    /// The running shared watches and what their caches hold.
    pub(super) fn footprint(&self) -> SharedWatches {
        let watches: Vec<Arc<Shared>> = self
            .watches
            .lock()
            .expect("hub lock is never poisoned")
            .values()
            .filter_map(Weak::upgrade)
            .collect();
        let mut out = SharedWatches {
            watches: watches.len(),
            ..SharedWatches::default()
        };
        for w in &watches {
            let (objects, bytes) = w.footprint();
            out.objects += objects;
            out.bytes += bytes;
        }
        out
    }
}

/// The running shared watches of a cluster ([`super::KubeLiveSource::shared_watches`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SharedWatches {
    /// Watches running (one per kind, or per kind and namespace where only that is allowed).
    pub watches: usize,
    /// Objects their caches hold.
    pub objects: usize,
    /// Bytes their caches hold: the packed objects, their keys and the kinds' dictionaries.
    pub bytes: usize,
}

/// The shared watches a scope reads, and what discovery said of its kinds.
pub(super) struct Coverage {
    pub watches: Vec<Arc<Shared>>,
    pub served: Vec<(GroupKind, bool)>,
    pub errors: Vec<KindError>,
}

impl Inner {
    fn settings(&self) -> Settings {
        Settings {
            client: self.client.clone(),
            describe: self.describe.clone(),
            page_size: self.page_size,
            max_backoff: self.max_backoff,
        }
    }

    /// The shared watches of `scope`, started where none runs, once each has listed: one per
    /// kind, cluster-wide; per namespace of the scope for a namespaced kind that may not be
    /// read cluster-wide (HTTP 403) when the scope names namespaces. Fails when the API server
    /// cannot be reached or refuses the credentials; a kind that cannot be read is in the
    /// errors.
    pub(super) async fn cover(
        &self,
        scope: &LiveScope,
        rule: &Admission,
    ) -> Result<Coverage, SourceError> {
        let mut listing = super::Listing::default();
        let mut seen = std::collections::HashSet::new();
        let mut started = Vec::new();
        self.check_server_version().await;
        for gvk in scope.kinds.iter().filter(|k| seen.insert(k.group_kind())) {
            match self.resolve(gvk).await {
                Ok(r) => {
                    listing.served.push((gvk.group_kind(), r.namespaced));
                    let target = Target {
                        gvk: gvk.clone(),
                        ar: r.ar,
                        namespace: None,
                    };
                    started.push((r.namespaced, self.hub.watch(&target, self.settings())));
                }
                Err(e) => self.take_failure(&mut listing, gvk.group_kind(), &e)?,
            }
        }
        let phases = futures_util::future::join_all(started.iter().map(|(_, w)| w.settled())).await;
        let mut watches = Vec::with_capacity(started.len());
        for ((namespaced, w), phase) in started.into_iter().zip(phases) {
            let by_namespace = namespaced
                && !rule.namespaces().is_empty()
                && matches!(phase, Phase::Failed(Failure::Forbidden(_)));
            if !by_namespace {
                watches.push((w, phase));
                continue;
            }
            // not allowed cluster-wide: one watch per namespace of the scope
            let target = w.target().clone();
            drop(w);
            let per_ns: Vec<Arc<Shared>> = rule
                .namespaces()
                .iter()
                .map(|ns| {
                    let t = Target {
                        namespace: Some(ns.clone()),
                        ..target.clone()
                    };
                    self.hub.watch(&t, self.settings())
                })
                .collect();
            let phases = futures_util::future::join_all(per_ns.iter().map(|w| w.settled())).await;
            watches.extend(per_ns.into_iter().zip(phases));
        }
        let mut held = Vec::with_capacity(watches.len());
        for (w, phase) in watches {
            let kind = w.target().group_kind();
            match phase {
                Phase::Ready | Phase::Syncing => {}
                Phase::Failed(Failure::Kind(m) | Failure::Forbidden(m)) => {
                    listing.add_error(kind, m)
                }
                Phase::Failed(Failure::Transient(m)) => listing.add_error(kind, m),
                Phase::Failed(Failure::Unreachable(reason))
                | Phase::Lost(Failure::Unreachable(reason)) => {
                    return Err(SourceError::Unreachable {
                        target: self.describe.clone(),
                        source: reason.into(),
                    })
                }
                Phase::Failed(Failure::Unauthorized(what))
                | Phase::Lost(Failure::Unauthorized(what)) => {
                    return Err(SourceError::Forbidden {
                        what: format!("{}: credentials refused: {what}", self.describe),
                    })
                }
                Phase::Lost(Failure::Kind(m) | Failure::Forbidden(m) | Failure::Transient(m)) => {
                    return Err(SourceError::Unreachable {
                        target: self.describe.clone(),
                        source: m.into(),
                    })
                }
            }
            held.push(w);
        }
        Ok(Coverage {
            watches: held,
            served: listing.served,
            errors: listing.errors,
        })
    }
}

impl Shared {
    pub(super) fn target(&self) -> &Target {
        &self.target
    }

    /// Waits until the watch has listed (or failed to), and says how it stands.
    pub(super) async fn settled(&self) -> Phase {
        let mut rx = self.phase.subscribe();
        let phase = match rx.wait_for(Phase::settled).await {
            Ok(p) => p.clone(),
            // the task ended (the runtime shuts down): nothing more will come
            Err(_) => Phase::Lost(Failure::Unreachable("the watch stopped".into())),
        };
        phase
    }

    /// The phase now.
    pub(super) fn phase(&self) -> Phase {
        self.phase.borrow().clone()
    }

    /// Subscribes to the announcements and reads the objects `rule` admits, at one instant:
    /// every change after the objects read is announced to the receiver.
    pub(super) fn read_and_follow(
        &self,
        rule: &Admission,
        out: &mut LiveObjects,
    ) -> broadcast::Receiver<Note> {
        let objects = self.objects.lock().expect("cache lock is never poisoned");
        let rx = self.notes.subscribe();
        read_into(&objects, rule, out);
        rx
    }

    /// Reads the objects `rule` admits.
    pub(super) fn read(&self, rule: &Admission, out: &mut LiveObjects) {
        let objects = self.objects.lock().expect("cache lock is never poisoned");
        read_into(&objects, rule, out);
    }

    /// How many objects the cache holds, and their size as kept (bytes of packed objects,
    /// keys and the dictionary).
    pub(super) fn footprint(&self) -> (usize, usize) {
        let cache = self.objects.lock().expect("cache lock is never poisoned");
        let bytes = cache
            .objects
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>()
            + cache.dictionary.as_ref().map_or(0, |d| d.len());
        (cache.objects.len(), bytes)
    }

    fn set_phase(&self, phase: Phase) {
        self.phase.send_replace(phase);
    }

    fn announce(&self, note: Note) {
        // no view subscribed is not an error
        let _ = self.notes.send(note);
    }
}

fn read_into(cache: &Cache, rule: &Admission, out: &mut LiveObjects) {
    let namespaces = rule.namespaces();
    for (key, packed) in &cache.objects {
        // the key is `namespace/name`: out-of-place objects are skipped without parsing
        if !namespaces.is_empty() {
            if let Some((ns, _)) = key.split_once('/') {
                if !ns.is_empty() && !rule.admits_namespace(ns) {
                    continue;
                }
            }
        }
        // unpacked and parsed to be judged, then handed over packed: the scan unpacks and
        // parses each object again, one at a time, so no snapshot holds every object's text
        // or parsed tree at once
        let Some(value) = packed
            .unpack()
            .and_then(|text| serde_json::from_str::<Value>(&text).ok())
        else {
            continue;
        };
        if rule.admits(&value) {
            out.push_packed(Arc::clone(packed) as Arc<dyn PackedText>);
        }
    }
}

/// The object of a watch event as the cache keeps it: typed, without what no comparison reads.
fn kept(target: &Target, object: DynamicObject) -> Option<Value> {
    let mut value = serde_json::to_value(object).ok()?;
    target.fill_type(&mut value);
    strip_unread(&mut value);
    Some(value)
}

/// A watch's objects by `namespace/name`, packed ([`super::packed`]) with the dictionary of
/// their last full list.
#[derive(Default)]
struct Cache {
    objects: HashMap<Box<str>, Arc<Packed>>,
    dictionary: Option<Arc<Dictionary>>,
}

impl Cache {
    /// Keeps an object (replacing what the key held).
    fn store(&mut self, value: &Value) {
        if let Ok(text) = serde_json::to_string(value) {
            self.insert(object_key(value).into_boxed_str(), &text);
        }
    }

    fn insert(&mut self, key: Box<str>, text: &str) {
        let packed = Packed::pack(text, self.dictionary.as_ref());
        self.objects.insert(key, packed);
    }
}

/// The objects of one full list as they arrive: the first ones kept as text until there are
/// enough to train the kind's dictionary on them, the others packed with it at once (so a
/// list of 100,000 objects never holds more than a sample as text).
#[derive(Default)]
struct Filling {
    sample: Vec<(Box<str>, String)>,
    cache: Cache,
    trained: bool,
}

impl Filling {
    fn add(&mut self, value: &Value) {
        let Ok(text) = serde_json::to_string(value) else {
            return;
        };
        let key = object_key(value).into_boxed_str();
        if self.trained {
            self.cache.insert(key, &text);
            return;
        }
        self.sample.push((key, text));
        if self.sample.len() >= MAX_SAMPLES {
            self.train();
        }
    }

    fn train(&mut self) {
        self.trained = true;
        self.cache.dictionary = Dictionary::train(self.sample.iter().map(|(_, t)| t.as_str()));
        for (key, text) in std::mem::take(&mut self.sample) {
            self.cache.insert(key, &text);
        }
    }

    fn finish(mut self) -> Cache {
        if !self.trained {
            self.train();
        }
        self.cache.objects.shrink_to_fit();
        self.cache
    }
}

/// The task of one shared watch: runs while the watch has a view.
async fn run(shared: Weak<Shared>, settings: Settings, lists: Arc<Semaphore>) {
    let Some(target) = shared.upgrade().map(|s| s.target.clone()) else {
        return;
    };
    let api: Api<DynamicObject> = match &target.namespace {
        Some(ns) => Api::namespaced_with(settings.client.clone(), ns, &target.ar),
        None => Api::all_with(settings.client.clone(), &target.ar),
    };
    let config = watcher::Config::default().page_size(settings.page_size);
    let salt = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos().into());
    let name = format!("{} {}", settings.describe, target.url());
    let mut policy = Backoff::new(
        Duration::from_millis(200),
        settings.max_backoff,
        retry::seed(&name, salt),
    );
    // a kind that cannot be read is tried again less often than a lost connection
    let mut kind_policy = Backoff::new(
        Duration::from_secs(2),
        Duration::from_secs(300).max(settings.max_backoff),
        retry::seed(&name, salt ^ 1),
    );
    loop {
        // a fresh watcher lists everything: one of few lists at once on this cluster
        let permit = lists.clone().acquire_owned().await.ok();
        let mut permit = permit;
        let mut stream = std::pin::pin!(watcher(api.clone(), config.clone()));
        let mut pending = Filling::default();
        loop {
            let Some(item) = stream.next().await else {
                break;
            };
            let Some(shared) = shared.upgrade() else {
                return;
            };
            match item {
                Ok(Event::Init) => pending = Filling::default(),
                Ok(Event::InitApply(o)) => {
                    if let Some(v) = kept(&target, o) {
                        pending.add(&v);
                    }
                }
                Ok(Event::InitDone) => {
                    permit = None;
                    {
                        let filled = std::mem::take(&mut pending).finish();
                        let mut objects =
                            shared.objects.lock().expect("cache lock is never poisoned");
                        *objects = filled;
                        shared.set_phase(Phase::Ready);
                        shared.announce(Note::Relisted);
                    }
                    policy.reset();
                    kind_policy.reset();
                }
                Ok(Event::Apply(o)) => {
                    if let Some(v) = kept(&target, o) {
                        let mut objects =
                            shared.objects.lock().expect("cache lock is never poisoned");
                        objects.store(&v);
                        shared.announce(Note::Applied(Arc::new(v)));
                    }
                }
                Ok(Event::Delete(o)) => {
                    if let Some(v) = kept(&target, o) {
                        let mut objects =
                            shared.objects.lock().expect("cache lock is never poisoned");
                        objects.objects.remove(object_key(&v).as_str());
                        shared.announce(Note::Deleted(Arc::new(v)));
                    }
                }
                Err(e) => {
                    let failure = classify_watch(&e);
                    match failure {
                        Failure::Unreachable(ref reason) | Failure::Unauthorized(ref reason) => {
                            let was_lost = matches!(shared.phase(), Phase::Lost(_));
                            if !was_lost {
                                tracing::warn!(source = %settings.describe, kind = %target.gvk.kind,
                                    %reason, "watch: connection lost");
                            }
                            let reason = reason.clone();
                            shared.set_phase(Phase::Lost(failure));
                            if !was_lost {
                                shared.announce(Note::Lost(reason));
                            }
                            drop(shared);
                            // start over with a fresh list once the server answers
                            tokio::time::sleep(policy.next_delay()).await;
                            break;
                        }
                        Failure::Kind(_) | Failure::Forbidden(_) => {
                            tracing::warn!(source = %settings.describe, kind = %target.gvk.kind,
                                error = %e, "watch: kind cannot be read");
                            // a kind listed but not watchable keeps what was listed; one that
                            // cannot be listed is unknown
                            if matches!(e, watcher::Error::InitialListFailed(_))
                                || !matches!(shared.phase(), Phase::Ready)
                            {
                                shared.set_phase(Phase::Failed(failure));
                                shared.announce(Note::Relisted);
                            }
                            permit = None;
                            drop(shared);
                            tokio::time::sleep(kind_policy.next_delay()).await;
                        }
                        Failure::Transient(_) => {
                            // the server is busy or restarting: the views keep what they have
                            // once ready; before that, the kind is unknown for now
                            if !matches!(shared.phase(), Phase::Ready) {
                                shared.set_phase(Phase::Failed(failure));
                            }
                            drop(shared);
                            tokio::time::sleep(policy.next_delay()).await;
                        }
                    }
                }
            }
        }
        drop(permit);
    }
}

/// How a watcher's error is to be taken.
fn classify_watch(e: &watcher::Error) -> Failure {
    match e {
        watcher::Error::InitialListFailed(e) | watcher::Error::WatchStartFailed(e) => classify(e),
        watcher::Error::WatchFailed(e) => match classify(e) {
            // a watch that breaks mid-stream is a connection problem
            Failure::Kind(m) => Failure::Unreachable(m),
            other => other,
        },
        watcher::Error::WatchError(status) => classify(&::kube::Error::Api(status.clone())),
        watcher::Error::NoResourceVersion => Failure::Kind(e.to_string()),
    }
}
