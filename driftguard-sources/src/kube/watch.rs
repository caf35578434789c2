//! The watch loop of [`super::KubeLiveSource`].
//!
//! One supervisor task lists the scope, emits [`LiveChange::Restarted`] with the complete
//! state, then starts one plain watch (`?watch=1&resourceVersion=…&allowWatchBookmarks=true`)
//! per kind and namespace and forwards their events while keeping a cache of the objects:
//!
//! - a watch that the server closes (timeout) is started again from the last resource version
//!   seen (objects and bookmarks);
//! - `410 Gone` (the version is too old) relists only that kind and emits the differences
//!   against the cache as `Applied`/`Deleted`;
//! - a connection failure emits [`LiveChange::Disconnected`] once; the supervisor then relists
//!   everything with exponential backoff and emits `Restarted` when the server answers again;
//! - a kind whose watch is forbidden (HTTP 403) is no longer watched; the rest goes on.
//!
//! Dropping the stream stops the supervisor and its watches.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ::kube::api::WatchParams;
use ::kube::core::{Request, WatchEvent};
use driftguard_core::admission::Admission;
use driftguard_core::model::RawLive;
use driftguard_core::ports::{LiveChange, LiveScope};
use driftguard_core::retry::{self, Backoff};
use futures_util::stream::{BoxStream, StreamExt};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::{classify, is_gone, object_key, resource_version, Failure, Inner, Listed, Target};

/// How long the server keeps one watch open (it then ends it; the watch is started again).
const WATCH_TIMEOUT_SECS: u32 = 290;
/// A watch that says nothing (not even a bookmark) for this long is taken as broken.
const IDLE_LIMIT: Duration = Duration::from_secs(WATCH_TIMEOUT_SECS as u64 + 60);
/// How many times a listing with transient errors (HTTP 429/5xx) is tried again before its
/// errors are reported as they are.
const TRANSIENT_RETRIES: u32 = 10;

/// Starts the supervisor and returns the stream of changes (`rule` is the scope's admission
/// rule: every change passes [`Admission::admits_change`]).
pub(super) fn start(
    inner: Arc<Inner>,
    scope: LiveScope,
    rule: Admission,
) -> BoxStream<'static, LiveChange> {
    let (tx, rx) = mpsc::channel::<LiveChange>(1024);
    tokio::spawn(
        Supervisor {
            inner,
            scope,
            rule,
            tx,
        }
        .run(),
    );
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|change| (change, rx))
    })
    .boxed()
}

/// What a watch task tells the supervisor.
enum Msg {
    /// An object event.
    Event(usize, WatchEvent<Value>),
    /// The resource version is too old: relist.
    Gone(usize),
    /// The watch failed.
    Failed(usize, Failure),
}

struct Supervisor {
    inner: Arc<Inner>,
    scope: LiveScope,
    rule: Admission,
    tx: mpsc::Sender<LiveChange>,
}

/// The reason a round of watches ended.
enum End {
    /// The consumer dropped the stream.
    Closed,
    /// Connection lost (or some failure that needs a full relist).
    Lost(String),
}

impl Supervisor {
    async fn send(&self, change: LiveChange) -> Result<(), ()> {
        self.tx.send(change).await.map_err(|_| ())
    }

    async fn run(self) {
        let mut backoff = Duration::ZERO;
        let salt = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos().into());
        let mut policy = Backoff::new(
            Duration::from_millis(100),
            self.inner.max_backoff,
            retry::seed(&self.inner.describe, salt),
        );
        let mut announced = false;
        let mut transient_tries = 0;
        loop {
            if !backoff.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = self.tx.closed() => return,
                }
            }
            let listing = match self.inner.list_scope(&self.scope, &self.rule).await {
                Ok(l) if l.transient && transient_tries < TRANSIENT_RETRIES => {
                    // the server is up but not ready for some kinds (just restarted): wait
                    transient_tries += 1;
                    backoff = policy.next_delay();
                    continue;
                }
                Ok(l) => l,
                Err(e) => {
                    if !announced {
                        tracing::warn!(source = %self.inner.describe, error = %e, "watch: live state unknown");
                        if self
                            .send(LiveChange::Disconnected(e.to_string()))
                            .await
                            .is_err()
                        {
                            return;
                        }
                        announced = true;
                    }
                    backoff = policy.next_delay();
                    continue;
                }
            };
            backoff = Duration::ZERO;
            policy.reset();
            transient_tries = 0;
            let mut targets = Vec::with_capacity(listing.listed.len());
            let mut caches = Vec::with_capacity(listing.listed.len());
            let mut objects = Vec::new();
            for Listed {
                target,
                resource_version,
                items,
            } in listing.listed
            {
                let cache: HashMap<String, Value> =
                    items.iter().map(|o| (object_key(o), o.clone())).collect();
                objects.extend(items.into_iter().map(RawLive::new));
                targets.push((target, resource_version));
                caches.push(cache);
            }
            let snapshot = driftguard_core::ports::LiveSnapshot {
                served: listing.served,
                objects,
                errors: listing.errors,
            };
            if self.send(LiveChange::Restarted(snapshot)).await.is_err() {
                return;
            }
            match self.watch_round(targets, caches).await {
                End::Closed => return,
                End::Lost(reason) => {
                    tracing::warn!(source = %self.inner.describe, %reason, "watch: connection lost");
                    if self.send(LiveChange::Disconnected(reason)).await.is_err() {
                        return;
                    }
                    announced = true;
                }
            }
        }
    }

    /// Watches every target until the connection is lost or the consumer goes away.
    async fn watch_round(
        &self,
        targets: Vec<(Target, String)>,
        mut caches: Vec<HashMap<String, Value>>,
    ) -> End {
        let (mtx, mut mrx) = mpsc::channel::<Msg>(1024);
        let mut tasks = JoinSet::new();
        let selector = self.rule.selector().map(|s| s.as_str().to_owned());
        for (i, (target, rv)) in targets.iter().enumerate() {
            tasks.spawn(watch_one(
                self.inner.clone(),
                target.clone(),
                rv.clone(),
                selector.clone(),
                i,
                mtx.clone(),
            ));
        }
        let mut live_targets = targets.len();
        loop {
            let msg = tokio::select! {
                m = mrx.recv() => m,
                _ = self.tx.closed() => return End::Closed,
            };
            let Some(msg) = msg else {
                // every watch was dropped (all forbidden): wait for the consumer to go
                self.tx.closed().await;
                return End::Closed;
            };
            match msg {
                Msg::Event(i, event) => {
                    let target = &targets[i].0;
                    let change = match event {
                        WatchEvent::Added(mut o) | WatchEvent::Modified(mut o) => {
                            target.fill_type(&mut o);
                            LiveChange::Applied(RawLive::new(o))
                        }
                        WatchEvent::Deleted(mut o) => {
                            target.fill_type(&mut o);
                            LiveChange::Deleted(RawLive::new(o))
                        }
                        WatchEvent::Bookmark(_) | WatchEvent::Error(_) => continue,
                    };
                    // a deletion is admitted whatever its labels (an object whose labels left
                    // the selector is announced as deleted): see `Admission::admits_change`
                    if !self.rule.admits_change(&change) {
                        continue;
                    }
                    match &change {
                        LiveChange::Applied(o) => {
                            let value = o.object.value();
                            caches[i].insert(object_key(value), value.clone());
                        }
                        LiveChange::Deleted(o) => {
                            caches[i].remove(&object_key(o.object.value()));
                        }
                        LiveChange::Restarted(_) | LiveChange::Disconnected(_) => {}
                    }
                    if self.send(change).await.is_err() {
                        return End::Closed;
                    }
                }
                Msg::Gone(i) => {
                    let target = &targets[i].0;
                    let lp = self.inner.list_params(&self.rule);
                    let (items, rv) = match self.inner.list_target(target, &lp, &self.rule).await {
                        Ok(r) => r,
                        Err(e) => return End::Lost(format!("relisting {}: {e}", target.gvk.kind)),
                    };
                    let mut fresh: HashMap<String, Value> = HashMap::with_capacity(items.len());
                    let mut changes = Vec::new();
                    for o in items {
                        let key = object_key(&o);
                        let same = caches[i]
                            .get(&key)
                            .is_some_and(|old| resource_version(old) == resource_version(&o));
                        if !same {
                            changes.push(LiveChange::Applied(RawLive::new(o.clone())));
                        }
                        fresh.insert(key, o);
                    }
                    for (key, old) in caches[i].drain() {
                        if !fresh.contains_key(&key) {
                            changes.push(LiveChange::Deleted(RawLive::new(old)));
                        }
                    }
                    caches[i] = fresh;
                    for c in changes {
                        if self.send(c).await.is_err() {
                            return End::Closed;
                        }
                    }
                    tasks.spawn(watch_one(
                        self.inner.clone(),
                        target.clone(),
                        rv,
                        selector.clone(),
                        i,
                        mtx.clone(),
                    ));
                }
                Msg::Failed(i, failure) => {
                    let target = &targets[i].0;
                    match failure {
                        Failure::Kind(reason) => {
                            // e.g. list allowed but watch forbidden: stop watching this kind
                            tracing::warn!(source = %self.inner.describe, kind = %target.gvk.kind,
                                %reason, "watch: kind no longer watched");
                            live_targets -= 1;
                            if live_targets == 0 {
                                drop(tasks);
                                self.tx.closed().await;
                                return End::Closed;
                            }
                        }
                        Failure::Unreachable(reason)
                        | Failure::Unauthorized(reason)
                        | Failure::Transient(reason) => return End::Lost(reason),
                    }
                }
            }
        }
    }
}

/// Watches one target from `rv`, starting again each time the server ends the watch.
async fn watch_one(
    inner: Arc<Inner>,
    target: Target,
    mut rv: String,
    selector: Option<String>,
    index: usize,
    tx: mpsc::Sender<Msg>,
) {
    let request = Request::new(target.url());
    let mut wp = WatchParams::default().timeout(WATCH_TIMEOUT_SECS);
    if let Some(sel) = &selector {
        wp = wp.labels(sel);
    }
    loop {
        let req = match request.watch(&wp, &rv) {
            Ok(r) => r,
            Err(e) => {
                let _ = tx
                    .send(Msg::Failed(index, Failure::Kind(e.to_string())))
                    .await;
                return;
            }
        };
        let stream = match inner.client.request_events::<Value>(req).await {
            Ok(s) => s,
            Err(e) => {
                let msg = if is_gone(&e) {
                    Msg::Gone(index)
                } else {
                    Msg::Failed(index, classify(&e))
                };
                let _ = tx.send(msg).await;
                return;
            }
        };
        let mut stream = std::pin::pin!(stream);
        loop {
            let next = match tokio::time::timeout(IDLE_LIMIT, stream.next()).await {
                Ok(n) => n,
                Err(_) => {
                    let _ = tx
                        .send(Msg::Failed(
                            index,
                            Failure::Unreachable("watch went silent".into()),
                        ))
                        .await;
                    return;
                }
            };
            let event = match next {
                // the server ended the watch: start it again from where it stopped
                None => break,
                Some(Ok(event)) => event,
                Some(Err(e)) => {
                    let msg = if is_gone(&e) {
                        Msg::Gone(index)
                    } else {
                        Msg::Failed(index, classify(&e))
                    };
                    let _ = tx.send(msg).await;
                    return;
                }
            };
            match &event {
                WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o) => {
                    if let Some(v) = resource_version(o) {
                        rv = v.to_owned();
                    }
                }
                WatchEvent::Bookmark(b) => {
                    rv = b.metadata.resource_version.clone();
                    continue;
                }
                WatchEvent::Error(status) => {
                    let msg = if status.code == 410 {
                        Msg::Gone(index)
                    } else {
                        Msg::Failed(index, classify(&::kube::Error::Api(status.clone())))
                    };
                    let _ = tx.send(msg).await;
                    return;
                }
            }
            if tx.send(Msg::Event(index, event)).await.is_err() {
                return;
            }
        }
    }
}
