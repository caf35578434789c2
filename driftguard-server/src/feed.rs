//! The live feed: every event a scanner stores (and every scan that ends) published in
//! process, to `GET /api/v1/events/stream` and through it to the dashboard's open pages.
//!
//! Events reach the feed through [`EventFeed::notifier`], a [`Notifier`] added to each
//! environment's scanner next to the configured ones, so that they are announced exactly when
//! the others are: once written (or buffered) by the store. Each item is serialized once, as
//! the API's JSON ([`EventDto`], [`ScanDto`]: paths, never field values), whoever listens.

use std::sync::Arc;

use async_trait::async_trait;
use driftguard_core::ports::{Notification, Notifier, NotifyError, ScanSummary};
use driftguard_core::state::DriftEvent;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::dto::{EventDto, ScanDto};

/// Items kept for a listener that falls behind (it is told with a `lagged` message after).
const CAPACITY: usize = 1024;

/// One message of the feed, serialized once.
#[derive(Clone, Debug, PartialEq)]
pub struct FeedMessage {
    /// `detected`, `changed`, `resolved` (an [`EventDto`]) or `scan` (a [`ScanDto`]).
    pub kind: &'static str,
    /// The event id, or the scan id.
    pub id: String,
    /// The environment.
    pub environment: String,
    /// The JSON document.
    pub data: Arc<str>,
}

/// The in-process feed of stored events and finished scans. Cheap to share (`Arc`).
#[derive(Debug)]
pub struct EventFeed {
    tx: broadcast::Sender<FeedMessage>,
    closed: CancellationToken,
}

impl Default for EventFeed {
    fn default() -> Self {
        Self::new()
    }
}

impl EventFeed {
    /// A feed nobody listens to yet.
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(CAPACITY);
        EventFeed {
            tx,
            closed: CancellationToken::new(),
        }
    }

    /// A notifier publishing what it is given to this feed (add it to every scanner).
    pub fn notifier(self: &Arc<Self>) -> Arc<dyn Notifier> {
        Arc::new(FeedNotifier(self.clone()))
    }

    /// Publishes stored events (nothing happens when nobody listens).
    pub fn publish_events(&self, events: &[DriftEvent]) {
        if self.tx.receiver_count() == 0 {
            return;
        }
        for e in events {
            let dto = EventDto::from(e);
            let Ok(data) = serde_json::to_string(&dto) else {
                continue;
            };
            let _ = self.tx.send(FeedMessage {
                kind: e.kind.as_str(),
                id: e.event_id.clone(),
                environment: e.drift.id.environment.clone(),
                data: data.into(),
            });
        }
    }

    /// Publishes the summary of a scan that ended.
    pub fn publish_scan(&self, summary: &ScanSummary) {
        if self.tx.receiver_count() == 0 {
            return;
        }
        let Ok(data) = serde_json::to_string(&ScanDto::from(summary)) else {
            return;
        };
        let _ = self.tx.send(FeedMessage {
            kind: "scan",
            id: summary.scan_id.clone(),
            environment: summary.environment.clone(),
            data: data.into(),
        });
    }

    /// A new listener: it receives what is published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<FeedMessage> {
        self.tx.subscribe()
    }

    /// Ends every stream (the server is stopping: open streams must not hold it up).
    pub fn close(&self) {
        self.closed.cancel();
    }

    /// Completes when [`EventFeed::close`] is called.
    pub fn closed(&self) -> CancellationToken {
        self.closed.clone()
    }
}

/// The [`Notifier`] of an [`EventFeed`]: never fails, never waits.
struct FeedNotifier(Arc<EventFeed>);

#[async_trait]
impl Notifier for FeedNotifier {
    fn name(&self) -> &str {
        "live-feed"
    }

    async fn notify(&self, notification: &Notification) -> Result<(), NotifyError> {
        self.0.publish_events(&notification.events);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit;
    use driftguard_core::severity::Severity;
    use driftguard_core::state::EventKind;
    use driftguard_test_support::build;

    #[tokio::test]
    async fn listeners_get_each_event_once_as_the_api_json() {
        let feed = Arc::new(EventFeed::new());
        let notifier = feed.notifier();
        let mut rx = feed.subscribe();
        let d = testkit::numbered_drift("prod", 0, Severity::High, true);
        let e = DriftEvent {
            event_id: "e1".into(),
            revision: None,
            ..build::event(EventKind::Detected, &d, d.detected_at, "s1")
        };
        notifier
            .notify(&Notification {
                environment: "prod".into(),
                events: vec![e.clone()],
            })
            .await
            .expect("never fails");
        let m = rx.recv().await.expect("a message");
        assert_eq!(
            (m.kind, m.id.as_str(), m.environment.as_str()),
            ("detected", "e1", "prod")
        );
        let back: EventDto = serde_json::from_str(&m.data).expect("the API's JSON");
        assert_eq!(back, EventDto::from(&e));
        assert!(rx.try_recv().is_err(), "once");
    }
}
