//! The watch of one view ([`super::KubeLiveSource`] for one scope) on the cluster's shared
//! watches ([`super::cache`]).
//!
//! A view's watch reads the objects of its scope from the shared caches and subscribes to
//! their announcements at one instant, emits [`LiveChange::Restarted`] with that complete
//! state, then forwards each announcement its admission rule takes
//! ([`Admission::view_change`]):
//!
//! - a shared watch that relisted (first list, `410 Gone`, a kind readable again) or a view
//!   that fell behind its announcements reads the caches anew and emits `Restarted`;
//! - a lost connection emits [`LiveChange::Disconnected`] once; when the API server answers
//!   again (the shared watches list anew), the view emits `Restarted`;
//! - a kind that cannot be read is in the snapshot's errors; the rest goes on.
//!
//! Dropping the stream stops the view; a shared watch stops when no view holds it.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use driftguard_core::admission::Admission;
use driftguard_core::id::GroupKind;
use driftguard_core::model::{LiveObjects, ObjectMeta, RawLive};
use driftguard_core::ports::{LiveChange, LiveScope, LiveSnapshot};
use driftguard_core::retry::{self, Backoff};
use futures_util::stream::{self, BoxStream, StreamExt};
use serde_json::Value;
use tokio::sync::{broadcast, mpsc};

use super::cache::{Note, Phase};
use super::{meta_key, Inner};

/// Starts the view's watch and returns the stream of changes (`rule` is the scope's admission
/// rule: every change passes it).
pub(super) fn start(
    inner: Arc<Inner>,
    scope: LiveScope,
    rule: Admission,
) -> BoxStream<'static, LiveChange> {
    let (tx, rx) = mpsc::channel::<LiveChange>(1024);
    tokio::spawn(
        View {
            inner,
            scope,
            rule,
            tx,
        }
        .run(),
    );
    stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|change| (change, rx))
    })
    .boxed()
}

struct View {
    inner: Arc<Inner>,
    scope: LiveScope,
    rule: Admission,
    tx: mpsc::Sender<LiveChange>,
}

/// The objects in a view with a label selector (`namespace/name` by kind), so that an object
/// whose labels leave the selector is announced as deleted, and one that never matched is not
/// announced at all. Without a selector nothing is kept: place alone decides.
#[derive(Default)]
struct Members(Option<HashSet<(GroupKind, String)>>);

impl Members {
    fn new(rule: &Admission, objects: &LiveObjects) -> Self {
        if rule.selector().is_none() {
            return Members(None);
        }
        let mut set = HashSet::with_capacity(objects.len());
        objects.for_each_meta(|meta| {
            set.insert(member_of(meta));
        });
        Members(Some(set))
    }

    fn contains(&self, value: &Value) -> bool {
        self.0.as_ref().is_none_or(|m| m.contains(&member(value)))
    }

    fn note(&mut self, change: &LiveChange) {
        let Some(m) = self.0.as_mut() else {
            return;
        };
        match change {
            LiveChange::Applied(o) => {
                m.insert(member(o.object.value()));
            }
            LiveChange::Deleted(o) => {
                m.remove(&member(o.object.value()));
            }
            LiveChange::Restarted(_) | LiveChange::Disconnected(_) => {}
        }
    }
}

fn member(value: &Value) -> (GroupKind, String) {
    member_of(ObjectMeta::of(value))
}

fn member_of(meta: ObjectMeta<'_>) -> (GroupKind, String) {
    (meta.group_kind(), meta_key(meta))
}

/// Why a view stopped following its watches.
enum End {
    /// The consumer dropped the stream.
    Closed,
    /// Read the caches anew.
    Resync,
    /// The connection was lost (already announced).
    Lost,
}

impl View {
    async fn send(&self, change: LiveChange) -> Result<(), ()> {
        self.tx.send(change).await.map_err(|_| ())
    }

    async fn run(self) {
        let salt = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos().into());
        let mut policy = Backoff::new(
            Duration::from_millis(100),
            self.inner.max_backoff,
            retry::seed(&self.inner.describe, salt),
        );
        let mut announced = false;
        loop {
            let covered = tokio::select! {
                c = self.inner.cover(&self.scope, &self.rule) => c,
                _ = self.tx.closed() => return,
            };
            let coverage = match covered {
                Ok(c) => c,
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
                    tokio::select! {
                        _ = tokio::time::sleep(policy.next_delay()) => {}
                        _ = self.tx.closed() => return,
                    }
                    continue;
                }
            };
            policy.reset();
            announced = false;
            let mut objects = LiveObjects::new();
            let mut receivers = Vec::with_capacity(coverage.watches.len());
            for w in &coverage.watches {
                match w.phase() {
                    Phase::Ready => receivers.push(w.read_and_follow(&self.rule, &mut objects)),
                    // a kind that cannot be read now: its errors are in the snapshot, and it
                    // announces when it can be read
                    _ => receivers.push(w.read_and_follow(&self.rule, &mut LiveObjects::new())),
                }
            }
            let snapshot = LiveSnapshot {
                served: coverage.served.clone(),
                objects,
                errors: coverage.errors.clone(),
            };
            let mut members = Members::new(&self.rule, &snapshot.objects);
            if self.send(LiveChange::Restarted(snapshot)).await.is_err() {
                return;
            }
            match self.follow(receivers, &mut members).await {
                End::Closed => return,
                End::Resync => {}
                End::Lost => announced = true,
            }
        }
    }

    /// Forwards the announcements of `receivers` until a resync is needed.
    async fn follow(
        &self,
        receivers: Vec<broadcast::Receiver<Note>>,
        members: &mut Members,
    ) -> End {
        let streams = receivers.into_iter().map(|rx| {
            stream::unfold(rx, |mut rx| async move {
                let note = rx.recv().await;
                match note {
                    Err(broadcast::error::RecvError::Closed) => None,
                    other => Some((other, rx)),
                }
            })
            .boxed()
        });
        let mut merged = stream::select_all(streams);
        loop {
            let note = tokio::select! {
                n = merged.next() => n,
                _ = self.tx.closed() => return End::Closed,
            };
            let change = match note {
                Some(Ok(Note::Applied(v))) => self.change(&v, LiveChange::Applied, members),
                Some(Ok(Note::Deleted(v))) => self.change(&v, LiveChange::Deleted, members),
                Some(Ok(Note::Relisted)) | Some(Err(_)) | None => return End::Resync,
                Some(Ok(Note::Lost(reason))) => {
                    tracing::warn!(source = %self.inner.describe, %reason, "watch: connection lost");
                    if self.send(LiveChange::Disconnected(reason)).await.is_err() {
                        return End::Closed;
                    }
                    return End::Lost;
                }
            };
            if let Some(change) = change {
                members.note(&change);
                if self.send(change).await.is_err() {
                    return End::Closed;
                }
            }
        }
    }

    /// The view's change for an announced object (`None`: not this view's).
    fn change(
        &self,
        value: &Value,
        make: fn(RawLive) -> LiveChange,
        members: &Members,
    ) -> Option<LiveChange> {
        // most announcements are other views' objects: the place is checked before copying
        if !self.rule.admits_place(value) {
            return None;
        }
        let was_in = members.contains(value);
        self.rule
            .view_change(make(RawLive::new(value.clone())), was_in)
    }
}
