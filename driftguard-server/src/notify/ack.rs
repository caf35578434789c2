//! What acknowledged drift leaves unannounced: [`AckGate`] wraps a notifier and hands it only
//! the events the core's rule announces ([`ack::announced`]): no event of a drift whose
//! acknowledgement holds, no `acknowledged` event; a lapse by expiry or withdrawal is.

use std::sync::Arc;

use async_trait::async_trait;
use driftguard_core::ack;
use driftguard_core::error::chain;
use driftguard_core::ports::{Clock, DriftStore, Notification, Notifier, NotifyError};

/// A notifier that leaves out what acknowledged drift does not announce.
pub struct AckGate {
    inner: Arc<dyn Notifier>,
    store: Arc<dyn DriftStore>,
    clock: Arc<dyn Clock>,
}

impl AckGate {
    /// `inner` behind the gate, reading the acknowledgements of `store` at `clock`'s time.
    pub fn wrap(
        inner: Arc<dyn Notifier>,
        store: Arc<dyn DriftStore>,
        clock: Arc<dyn Clock>,
    ) -> Arc<dyn Notifier> {
        Arc::new(AckGate {
            inner,
            store,
            clock,
        })
    }
}

#[async_trait]
impl Notifier for AckGate {
    fn name(&self) -> &str {
        self.inner.name()
    }

    /// When the acknowledgements cannot be read, everything is announced: an alert too many,
    /// never one lost.
    async fn notify(&self, n: &Notification) -> Result<(), NotifyError> {
        let acks = match self.store.acknowledgements(Some(&n.environment)).await {
            Ok(acks) => acks,
            Err(e) => {
                tracing::warn!(environment = %n.environment, error = %chain(&e),
                    "cannot read the acknowledgements; announcing every event");
                Vec::new()
            }
        };
        let events = ack::announced(n.events.clone(), &acks, self.clock.now());
        if events.is_empty() {
            return Ok(());
        }
        self.inner
            .notify(&Notification {
                environment: n.environment.clone(),
                events,
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use driftguard_core::ack::{AckRequest, Lapse};
    use driftguard_core::memory::{ManualClock, MemoryStore, RecordingNotifier};
    use driftguard_core::state::EventKind;
    use driftguard_core::testkit;
    use serde_json::json;

    fn take(n: &RecordingNotifier) -> Vec<Notification> {
        std::mem::take(&mut *n.received.lock().expect("lock"))
    }

    #[tokio::test]
    async fn acknowledged_drift_is_not_announced_until_it_lapses() {
        let t0 = chrono::Utc
            .with_ymd_and_hms(2024, 5, 1, 12, 0, 0)
            .single()
            .expect("valid");
        let store = Arc::new(MemoryStore::new());
        let clock = Arc::new(ManualClock::new(t0));
        let seen = Arc::new(RecordingNotifier::default());
        let gate = AckGate::wrap(seen.clone(), store.clone(), clock.clone());
        assert_eq!(gate.name(), seen.name());
        let d = testkit::drift()
            .episode("ep-1")
            .field("spec.replicas", Some(json!(3)), Some(json!(5)))
            .build();
        let req = AckRequest {
            by: "token:ops".into(),
            reason: "load test".into(),
            until: Some(t0 + chrono::TimeDelta::hours(1)),
        };
        let (a, acked) = ack::acknowledge(&d, &req, t0).expect("open");
        store
            .save_acknowledgements(std::slice::from_ref(&a))
            .await
            .expect("saves");
        let same = testkit::event(EventKind::Changed, &d, t0, "s1");
        let note = |events| Notification {
            environment: "prod".into(),
            events,
        };
        gate.notify(&note(vec![same.clone(), acked]))
            .await
            .expect("ok");
        assert!(take(&seen).is_empty(), "nothing announced");
        // the value moves again: announced
        let mut moved = d.clone();
        moved.fields[0].live = Some(json!(9));
        let changed = testkit::event(EventKind::Changed, &moved, t0, "s2");
        gate.notify(&note(vec![changed.clone()])).await.expect("ok");
        assert_eq!(take(&seen), vec![note(vec![changed])]);
        // the expiry passes: the lapse and the drift's events are announced again
        clock.advance(chrono::TimeDelta::hours(2));
        let (_, lapse) = ack::lapse(&a, &d, Lapse::Expired, None, clock.now());
        gate.notify(&note(vec![lapse.clone(), same.clone()]))
            .await
            .expect("ok");
        assert_eq!(take(&seen), vec![note(vec![lapse, same])]);
    }
}
