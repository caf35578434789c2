//! The scanner's own contract: live changes the store refuses are kept in order, written and
//! announced once the store answers, with the time they were observed; a full scan does not
//! overtake them; one scan or live change runs at a time.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, TimeZone, Utc};
use driftguard_core::memory::{
    ManualClock, MemoryGitSource, MemoryLiveSource, MemoryStore, RecordingNotifier,
};
use driftguard_core::model::Revision;
use driftguard_core::ports::{PruneStats, ScanBatch, ScanSummary, StoreError};
use driftguard_core::prelude::*;
use driftguard_core::query::{DriftStatus, EventQuery};
use driftguard_core::state::{Drift, DriftEvent, DriftRecord};
use driftguard_core::testkit::deployment;
use futures_executor::block_on;
use serde_json::{json, Value};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0)
        .single()
        .expect("valid time")
}

/// A store that refuses writes (as unavailable) while `down` is set, and reads of records
/// while `no_reads` is.
#[derive(Default)]
struct FlakyStore {
    inner: MemoryStore,
    down: AtomicBool,
    no_reads: AtomicBool,
    refused: AtomicUsize,
}

#[async_trait]
impl DriftStore for FlakyStore {
    async fn records(&self, environment: &str) -> Result<Vec<DriftRecord>, StoreError> {
        if self.no_reads.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable {
                source: "database locked".into(),
            });
        }
        self.inner.records(environment).await
    }
    async fn commit(&self, batch: &ScanBatch) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return Err(StoreError::Unavailable {
                source: "disk full".into(),
            });
        }
        self.inner.commit(batch).await
    }
    async fn drifts(&self, q: &DriftQuery) -> Result<Page<Drift>, StoreError> {
        self.inner.drifts(q).await
    }
    async fn events(&self, q: &EventQuery) -> Result<Page<DriftEvent>, StoreError> {
        self.inner.events(q).await
    }
    async fn scans(&self, e: Option<&str>, l: usize) -> Result<Vec<ScanSummary>, StoreError> {
        self.inner.scans(e, l).await
    }
    async fn prune(&self, before: DateTime<Utc>) -> Result<PruneStats, StoreError> {
        self.inner.prune(before).await
    }
}

fn served(mut v: Value) -> Value {
    v["metadata"]["uid"] = json!("u");
    v
}

struct World {
    store: Arc<FlakyStore>,
    clock: Arc<ManualClock>,
    notifier: Arc<RecordingNotifier>,
    scanner: Scanner,
    live: Arc<MemoryLiveSource>,
}

fn world() -> World {
    let git = Arc::new(MemoryGitSource::new());
    git.set(DesiredSet {
        revision: Some(Revision::plain("r1")),
        objects: ["a", "b"]
            .iter()
            .map(|n| RawManifest {
                object: RawObject::new(deployment(n).replicas(2).build()),
                provenance: Provenance::default(),
            })
            .collect(),
        ..DesiredSet::default()
    });
    let live = Arc::new(MemoryLiveSource::new());
    live.set(vec![
        RawLive::new(served(deployment("a").replicas(2).build())),
        RawLive::new(served(deployment("b").replicas(2).build())),
    ]);
    let store = Arc::new(FlakyStore::default());
    let clock = Arc::new(ManualClock::new(t0()));
    let notifier = Arc::new(RecordingNotifier::default());
    let scanner = Scanner::new(
        Engine::new(
            EnvironmentSpec::new("prod"),
            Normalizer::new(SecretKey::new(b"k".to_vec())),
        ),
        git,
        live.clone(),
        store.clone(),
        clock.clone(),
    )
    .with_notifier(notifier.clone());
    World {
        store,
        clock,
        notifier,
        scanner,
        live,
    }
}

fn announced(n: &RecordingNotifier) -> usize {
    n.received
        .lock()
        .expect("lock")
        .iter()
        .map(|x| x.events.len())
        .sum()
}

#[test]
fn a_full_scan_that_cannot_read_the_store_goes_on_from_the_scanners_records() {
    let w = world();
    // before any scan the scanner knows no records: the scan cannot start without the store
    w.store.no_reads.store(true, Ordering::SeqCst);
    assert!(matches!(
        block_on(w.scanner.scan()),
        Err(ScanError::Store(StoreError::Unavailable { .. }))
    ));
    w.store.no_reads.store(false, Ordering::SeqCst);
    block_on(w.scanner.scan()).expect("first scan");
    // a hand change nobody watched, then a full scan while the records cannot be read
    w.live.set(vec![
        RawLive::new(served(deployment("a").replicas(4).build())),
        RawLive::new(served(deployment("b").replicas(2).build())),
    ]);
    w.store.no_reads.store(true, Ordering::SeqCst);
    w.clock.advance(Duration::minutes(1));
    let report = block_on(w.scanner.scan()).expect("scanned from the scanner's own records");
    assert_eq!(report.events.len(), 1, "{:?}", report.events);
    assert_eq!(report.events[0].drift.id.name, "a");
    // and the next one, from the same records, announces nothing twice
    w.clock.advance(Duration::minutes(1));
    let report = block_on(w.scanner.scan()).expect("scanned again");
    assert!(report.events.is_empty(), "{:?}", report.events);
    w.store.no_reads.store(false, Ordering::SeqCst);
    let stored = block_on(w.store.records("prod")).expect("records");
    assert_eq!(stored.iter().filter(|r| r.drift.is_some()).count(), 1);
}

#[test]
fn a_full_scan_the_store_refuses_leaves_live_changes_working() {
    let w = world();
    block_on(w.scanner.scan()).expect("first scan");
    // the store goes down during the next full scan: its write fails, nothing is kept of it
    w.store.down.store(true, Ordering::SeqCst);
    w.clock.advance(Duration::minutes(1));
    assert!(matches!(
        block_on(w.scanner.scan()),
        Err(ScanError::Store(StoreError::Unavailable { .. }))
    ));
    // a hand change seen by the watch is still judged (the scan dropped the last index
    // before building its own, and keeps its own when it cannot write)
    w.clock.advance(Duration::minutes(1));
    let r = block_on(
        w.scanner
            .apply_live_change(&LiveChange::Applied(RawLive::new(served(
                deployment("a").replicas(9).build(),
            )))),
    );
    assert!(
        matches!(r, Err(ScanError::Unwritten { queued: 1, .. })),
        "{r:?}"
    );
    assert_eq!(block_on(w.scanner.open_drifts()).len(), 1);
    w.store.down.store(false, Ordering::SeqCst);
    assert_eq!(block_on(w.scanner.retry_unwritten()).expect("written"), 0);
    let events = block_on(w.store.events(&EventQuery::default()))
        .expect("events")
        .items;
    assert_eq!(events.len(), 1, "the hand change, stored once");
    assert_eq!(events[0].drift.id.name, "a");
}

#[test]
fn live_changes_the_store_refuses_are_kept_and_written_later_with_their_time() {
    let w = world();
    block_on(w.scanner.scan()).expect("first scan");
    w.store.down.store(true, Ordering::SeqCst);

    // two hand changes while the store is down, a minute apart
    w.clock.advance(Duration::minutes(1));
    let first_at = w.clock.now();
    let r = block_on(
        w.scanner
            .apply_live_change(&LiveChange::Applied(RawLive::new(served(
                deployment("a").replicas(5).build(),
            )))),
    );
    assert!(
        matches!(r, Err(ScanError::Unwritten { queued: 1, .. })),
        "{r:?}"
    );
    w.clock.advance(Duration::minutes(1));
    let second_at = w.clock.now();
    let r = block_on(
        w.scanner
            .apply_live_change(&LiveChange::Applied(RawLive::new(served(
                deployment("b").replicas(7).build(),
            )))),
    );
    assert!(
        matches!(r, Err(ScanError::Unwritten { queued: 2, .. })),
        "{r:?}"
    );
    let health = w.scanner.write_health();
    assert_eq!(health.unwritten, 2);
    assert!(
        health
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("disk full")),
        "{health:?}"
    );
    // nothing stored, nothing announced: events are announced only once stored
    assert_eq!(announced(&w.notifier), 0);
    // the scanner's records moved on: what is open is known without the store
    assert_eq!(block_on(w.scanner.open_drifts()).len(), 2);
    // a full scan does not overtake the kept changes
    assert!(matches!(
        block_on(w.scanner.scan()),
        Err(ScanError::Store(StoreError::Unavailable { .. }))
    ));

    // the store answers again, minutes later
    w.clock.advance(Duration::minutes(10));
    w.store.down.store(false, Ordering::SeqCst);
    assert_eq!(block_on(w.scanner.retry_unwritten()).expect("written"), 0);
    assert_eq!(w.scanner.write_health(), Default::default());
    let events = block_on(w.store.events(&EventQuery::default()))
        .expect("events")
        .items;
    let detected: Vec<(String, DateTime<Utc>)> = events
        .iter()
        .map(|e| (e.drift.id.name.clone(), e.at))
        .collect();
    assert_eq!(
        detected,
        vec![("a".to_owned(), first_at), ("b".to_owned(), second_at)],
        "stored once each, with the time the change was observed"
    );
    assert_eq!(announced(&w.notifier), 2);
    // trying again writes and announces nothing more
    assert_eq!(block_on(w.scanner.retry_unwritten()).expect("nothing"), 0);
    assert_eq!(announced(&w.notifier), 2);
    // and a full scan now agrees with what was kept
    w.live.set(vec![
        RawLive::new(served(deployment("a").replicas(5).build())),
        RawLive::new(served(deployment("b").replicas(7).build())),
    ]);
    let report = block_on(w.scanner.scan()).expect("scan");
    assert!(report.events.is_empty(), "{:?}", report.events);
    let open = block_on(w.store.drifts(&DriftQuery {
        status: DriftStatus::Open,
        ..DriftQuery::default()
    }))
    .expect("drifts");
    assert_eq!(open.total, 2);
    assert!(w.store.refused.load(Ordering::SeqCst) >= 3);
}

#[test]
fn concurrent_scans_and_changes_run_one_at_a_time() {
    let w = world();
    block_on(w.scanner.scan()).expect("first scan");
    // many changes and scans at once: the scanner serializes them itself
    let changes: Vec<_> = (0..20)
        .map(|i| {
            LiveChange::Applied(RawLive::new(served(
                deployment(if i % 2 == 0 { "a" } else { "b" })
                    .replicas(3 + i)
                    .build(),
            )))
        })
        .collect();
    let futures = changes
        .iter()
        .map(|c| {
            let s = &w.scanner;
            Box::pin(async move {
                let _ = s.apply_live_change(c).await;
            }) as std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>
        })
        .chain((0..5).map(|_| {
            let s = &w.scanner;
            Box::pin(async move {
                let _ = s.scan().await;
            }) as std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>
        }));
    block_on(futures_util::future::join_all(futures));
    // every event was stored once, and each detection announced once
    let events = block_on(w.store.events(&EventQuery {
        limit: 10_000,
        ..EventQuery::default()
    }))
    .expect("events")
    .items;
    let mut ids: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
    let n = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), n);
    assert_eq!(announced(&w.notifier), n);
}

#[test]
fn batches_carry_the_epoch_and_an_older_term_is_refused_and_announces_nothing() {
    let w = world();
    // term 1: the scanner's batches carry epoch 1
    block_on(w.scanner.set_epoch(Some(1)));
    assert_eq!(w.scanner.epoch(), Some(1));
    block_on(w.scanner.scan()).expect("first scan of term 1");
    w.clock.advance(Duration::minutes(1));
    let events = block_on(
        w.scanner
            .apply_live_change(&LiveChange::Applied(RawLive::new(served(
                deployment("a").replicas(5).build(),
            )))),
    )
    .expect("written in term 1");
    assert_eq!(events.len(), 1);
    assert_eq!(announced(&w.notifier), 1);

    // another replica takes over with epoch 2 and claims the environment
    block_on(w.store.commit(&ScanBatch::claim("prod", 2))).expect("claim");
    // an older epoch is refused from then on, whole, and nothing of it is announced
    w.clock.advance(Duration::minutes(1));
    let r = block_on(
        w.scanner
            .apply_live_change(&LiveChange::Applied(RawLive::new(served(
                deployment("b").replicas(9).build(),
            )))),
    );
    match r {
        Err(ScanError::Unwritten {
            source: StoreError::Conflict { what },
            ..
        }) => assert!(what.contains("epoch 1 was refused"), "{what}"),
        other => panic!("expected a refused epoch, got {other:?}"),
    }
    // a refused batch is not kept (it could never be written)
    assert_eq!(w.scanner.write_health().unwritten, 0);
    match block_on(w.scanner.scan()) {
        Err(ScanError::Store(StoreError::Conflict { .. })) => {}
        other => panic!("expected a refused scan, got {other:?}"),
    }
    assert_eq!(
        announced(&w.notifier),
        1,
        "nothing of the old term is announced"
    );
    let stored = block_on(w.store.events(&EventQuery::default()))
        .expect("events")
        .items;
    assert_eq!(stored.len(), 1, "{stored:?}");

    // a new term (epoch 3) forgets what the old one kept and starts from the store
    block_on(w.scanner.set_epoch(Some(3)));
    assert!(w.scanner.live_scope().is_none());
    assert!(block_on(w.scanner.open_drifts()).is_empty());
    let before_scan = block_on(
        w.scanner
            .apply_live_change(&LiveChange::Applied(RawLive::new(served(
                deployment("b").replicas(9).build(),
            )))),
    )
    .expect("nothing to do before a full scan");
    assert!(before_scan.is_empty());
    w.live.set(vec![
        RawLive::new(served(deployment("a").replicas(5).build())),
        RawLive::new(served(deployment("b").replicas(9).build())),
    ]);
    let report = block_on(w.scanner.scan()).expect("scan of term 3");
    // `a` is already open in the store: only `b` is new
    let names: Vec<&str> = report
        .events
        .iter()
        .map(|e| e.drift.id.name.as_str())
        .collect();
    assert_eq!(names, ["b"]);
    assert_eq!(announced(&w.notifier), 2);
}

/// A remediation is stored and announced like a drift's events, and the `resolved` event that
/// follows it names DriftGuard: from the store (a remediation by another process), or from what
/// this process expects (the watch may see the change before the audit event is stored).
#[test]
fn resolutions_after_a_remediation_name_driftguard_and_remediations_are_announced() {
    use driftguard_core::remediate::advice::RemediationAction;
    use driftguard_core::remediate::{remediation_event, Operation, RemediationRecord};
    use driftguard_core::state::{EventKind, Resolution};
    let w = world();
    block_on(w.scanner.scan()).expect("first scan");
    // both drift: a is remediated (by another process: its event is in the store), b is
    // expected to be
    w.live.set(vec![
        RawLive::new(served(deployment("a").replicas(5).build())),
        RawLive::new(served(deployment("b").replicas(5).build())),
    ]);
    w.clock.advance(Duration::seconds(1));
    let report = block_on(w.scanner.scan()).expect("drift scan");
    let open: Vec<Drift> = report
        .events
        .iter()
        .filter(|e| e.kind == EventKind::Detected)
        .map(|e| e.drift.clone())
        .collect();
    assert_eq!(open.len(), 2);
    let record = |ok: bool| RemediationRecord {
        plan_id: "p".into(),
        action: RemediationAction::Revert,
        operation: Operation::Apply,
        requested_by: "policy".into(),
        planned_by: None,
        changes: Vec::new(),
        ok,
        result: "apply by DriftGuard".into(),
    };
    let before = announced(&w.notifier);
    let errors = block_on(w.scanner.record_remediation(remediation_event(
        &open[0],
        record(true),
        w.clock.now(),
    )))
    .expect("stored");
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(announced(&w.notifier), before + 1, "announced");
    let stored = block_on(w.store.events(&EventQuery {
        kind: Some(EventKind::Remediated),
        ..EventQuery::default()
    }))
    .expect("events");
    assert_eq!(stored.items.len(), 1);
    // a fresh scanner (another process) finds it in the store
    w.scanner.forget_remediation(&open[0].episode);
    w.scanner.expect_remediation(&open[1].episode, record(true));
    w.live.set(vec![
        RawLive::new(served(deployment("a").replicas(2).build())),
        RawLive::new(served(deployment("b").replicas(2).build())),
    ]);
    w.clock.advance(Duration::seconds(1));
    let report = block_on(w.scanner.scan()).expect("resolving scan");
    let resolved: Vec<&DriftEvent> = report
        .events
        .iter()
        .filter(|e| e.kind == EventKind::Resolved)
        .collect();
    assert_eq!(resolved.len(), 2);
    for e in resolved {
        assert_eq!(e.drift.resolved_by.as_deref(), Some("driftguard"), "{e:?}");
        assert_eq!(e.drift.who(), "driftguard");
        assert_eq!(e.drift.resolution, Some(Resolution::Reverted));
    }
    // the stored episodes say so too
    let a = block_on(w.store.drifts(&DriftQuery {
        status: DriftStatus::Resolved,
        ..DriftQuery::default()
    }))
    .expect("drifts");
    assert!(a
        .items
        .iter()
        .all(|d| d.resolved_by.as_deref() == Some("driftguard")));

    // a drift that ends by someone else's hand (a failed remediation before it) does not
    w.live.set(vec![
        RawLive::new(served(deployment("a").replicas(7).build())),
        RawLive::new(served(deployment("b").replicas(2).build())),
    ]);
    w.clock.advance(Duration::seconds(1));
    let report = block_on(w.scanner.scan()).expect("drift again");
    // the same hand change soon after its remediation: the episode recurs
    let again = report
        .events
        .iter()
        .find(|e| e.kind == EventKind::Recurred)
        .expect("recurred")
        .drift
        .clone();
    block_on(
        w.scanner
            .record_remediation(remediation_event(&again, record(false), w.clock.now())),
    )
    .expect("stored");
    w.live.set(vec![
        RawLive::new(served(deployment("a").replicas(2).build())),
        RawLive::new(served(deployment("b").replicas(2).build())),
    ]);
    w.clock.advance(Duration::seconds(1));
    let report = block_on(w.scanner.scan()).expect("resolved by hand");
    let e = report
        .events
        .iter()
        .find(|e| e.kind == EventKind::Resolved)
        .expect("resolved");
    assert_eq!(e.drift.resolved_by, None);
    assert_ne!(e.drift.who(), "driftguard");
}
