//! Retention: history older than the configured age is pruned; open drifts stay.

use std::sync::Arc;
use std::time::Duration;

use driftguard_core::memory::{ManualClock, MemoryStore};
use driftguard_core::ports::{Clock, DriftStore};
use driftguard_core::query::{DriftQuery, DriftStatus, EventQuery};
use driftguard_server::retention::{prune_once, spawn_pruner};
use driftguard_server::testkit::{fill_store, t0};
use tokio_util::sync::CancellationToken;

const DAY: Duration = Duration::from_secs(86_400);

async fn counts(store: &dyn DriftStore) -> (usize, usize, usize, usize) {
    let events = store
        .events(&EventQuery::default())
        .await
        .expect("events")
        .items
        .len();
    let scans = store.scans(None, 100).await.expect("scans").len();
    let open = store
        .drifts(&DriftQuery::default())
        .await
        .expect("drifts")
        .items
        .len();
    let all = store
        .drifts(&DriftQuery {
            status: DriftStatus::All,
            ..DriftQuery::default()
        })
        .await
        .expect("drifts")
        .items
        .len();
    (events, scans, open, all)
}

#[tokio::test]
async fn prune_once_removes_only_what_is_older_than_the_retention() {
    let store = MemoryStore::new();
    fill_store(&store, "prod", 8, 4).await.expect("fill");
    let before = counts(&store).await;
    assert_eq!(before, (10, 1, 6, 8), "8 episodes, 2 resolved");

    // 10 days later, 90 days of retention: nothing is old enough
    let clock = ManualClock::new(t0() + chrono::Duration::days(10));
    let s = prune_once(&store, &clock, 90 * DAY).await.expect("prunes");
    assert_eq!((s.events, s.scans, s.episodes), (0, 0, 0));
    assert_eq!(counts(&store).await, before);

    // 100 days later: events, the scan and the resolved episodes go; open drifts stay
    clock.set(t0() + chrono::Duration::days(100));
    let s = prune_once(&store, &clock, 90 * DAY).await.expect("prunes");
    assert_eq!((s.events, s.scans, s.episodes), (10, 1, 2));
    assert_eq!(counts(&store).await, (0, 0, 6, 6));
}

#[tokio::test]
async fn the_pruner_runs_at_start_and_stops_when_cancelled() {
    let store = Arc::new(MemoryStore::new());
    fill_store(store.as_ref(), "prod", 4, 2)
        .await
        .expect("fill");
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(t0() + chrono::Duration::days(400)));
    let cancel = CancellationToken::new();
    let task = spawn_pruner(
        store.clone(),
        clock,
        365 * DAY,
        Duration::from_millis(20),
        cancel.clone(),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while counts(store.as_ref()).await.0 != 0 {
        assert!(std::time::Instant::now() < deadline, "nothing was pruned");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(counts(store.as_ref()).await, (0, 0, 2, 2));
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("the pruner stops when cancelled")
        .expect("the pruner does not panic");
}
