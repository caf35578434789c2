//! The DriftStore conformance suite (feature `conformance`).
//!
//! Each function takes a fresh, empty store and panics on a failed check. Most of them write the
//! same batches to the store under test and to the reference [`MemoryStore`] and compare every
//! answer, so "same meaning as the in-memory store" is what is tested. Use
//! [`conformance_tests!`](crate::conformance_tests) to generate one `#[tokio::test]` per check.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, TimeZone, Utc};
use driftguard_core::audit::{
    parse_event_line, AuditCursor, AuditObject, AuditSnapshot, AuditSpec, AuditUser, AuditWrite,
    ObjectWrites, UserClass,
};
use driftguard_core::id::ResourceId;
use driftguard_core::memory::{ManualClock, MemoryGitSource, MemoryLiveSource, MemoryStore};
use driftguard_core::model::{Provenance, RawLive, RawManifest, RawObject, Revision};
use driftguard_core::ports::{
    DesiredSet, DriftStore, PruneStats, ScanBatch, ScanCounts, ScanSummary, StoreError,
};
use driftguard_core::prelude::{Engine, EnvironmentSpec, Normalizer, Scanner, SecretKey};
use driftguard_core::query::{DriftQuery, DriftSort, DriftStatus, EventQuery, Page};
use driftguard_core::severity::Severity;
use driftguard_core::state::{
    Direction, Drift, DriftEvent, DriftKind, DriftRecord, EventKind, Hash64, Resolution,
    RevertedEpisode,
};
use driftguard_core::testkit::{self, DriftBuilder};
use serde_json::json;

/// Generates one `#[tokio::test]` per conformance check, each with a fresh store from
/// `$fresh` (an `async fn() -> Arc<dyn DriftStore>`, or a path to one).
#[macro_export]
macro_rules! conformance_tests {
    ($fresh:path) => {
        $crate::conformance_tests!(@one $fresh, conformance_round_trip, round_trip);
        $crate::conformance_tests!(@one $fresh, conformance_queries_match_reference, queries_match_reference);
        $crate::conformance_tests!(@one $fresh, conformance_pagination, pagination);
        $crate::conformance_tests!(@one $fresh, conformance_idempotent_retries, idempotent_retries);
        $crate::conformance_tests!(@one $fresh, conformance_retention, retention);
        $crate::conformance_tests!(@one $fresh, conformance_concurrent_writers, concurrent_writers);
        $crate::conformance_tests!(@one $fresh, conformance_scanner_round_trip, scanner_round_trip);
        $crate::conformance_tests!(@one $fresh, conformance_delivery_marks, delivery_marks);
        $crate::conformance_tests!(@one $fresh, conformance_fencing, fencing);
        $crate::conformance_tests!(@one $fresh, conformance_provided_methods, provided_methods);
        $crate::conformance_tests!(@one $fresh, conformance_audit_index, audit_index);
        $crate::conformance_tests!(@one $fresh, conformance_acknowledgements, acknowledgements);
        $crate::conformance_tests!(@one $fresh, conformance_person_actions, person_actions);
    };
    (@one $fresh:path, $name:ident, $check:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let store = $fresh().await;
            $crate::conformance::$check(store).await;
        }
    };
}

/// A fixed time `secs` seconds after 2024-01-01T00:00:00Z (with a sub-millisecond part, so
/// that stores must keep full precision).
pub fn t(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0)
        .single()
        .expect("valid date")
        + Duration::seconds(secs)
        + Duration::microseconds(secs.rem_euclid(7) * 13)
}

/// The drift of `id` the suite writes, to be completed (direction, severity, times):
/// episode `episode` of kind `kind` at revision `rev-1`, defined in `apps/web.yaml`; a
/// modified one has its replicas cut (the field and its finding).
pub fn drift(id: &ResourceId, episode: &str, kind: DriftKind) -> DriftBuilder {
    let d = testkit::drift()
        .id(id.clone())
        .episode(episode)
        .kind(kind)
        .revision("rev-1")
        .provenance("apps/web.yaml", 0, 1);
    if kind == DriftKind::Modified {
        d.field("spec.replicas", Some(json!(3)), Some(json!(5)))
            .finding(testkit::replicas_cut())
    } else {
        d
    }
}

pub use testkit::event;

/// A record of an object with an optional open drift (with hashes of both sides).
pub fn record(id: &ResourceId, drift: Option<Drift>, at: DateTime<Utc>) -> DriftRecord {
    DriftRecord {
        desired_hash: Some(Hash64(0xdead_beef)),
        live_hash: Some(Hash64(u64::MAX - 3)),
        ..testkit::record(id, drift, at)
    }
}

/// A scan summary.
pub fn summary(env: &str, scan: &str, at: DateTime<Utc>, events: usize) -> ScanSummary {
    ScanSummary {
        scan_id: scan.to_owned(),
        environment: env.to_owned(),
        started_at: at,
        duration_ms: 12,
        revision: Some("rev-1".into()),
        counts: ScanCounts {
            tracked: 10,
            in_sync: 9,
            modified: 1,
            ..ScanCounts::default()
        },
        score: 2.5,
        errors: vec!["apps/bad.yaml:3: oops".into()],
        events,
    }
}

/// A varied history: two environments, several kinds and namespaces, every drift kind,
/// direction and severity, open, changed and resolved episodes, in several batches.
pub fn dataset() -> Vec<ScanBatch> {
    let kinds: [(&str, &str, bool); 3] = [
        ("apps", "Deployment", true),
        ("", "ConfigMap", true),
        ("", "Namespace", false),
    ];
    let mut batches: Vec<ScanBatch> = Vec::new();
    let mut n = 0i64;
    for (ei, env) in ["prod", "dev"].iter().enumerate() {
        for scan in 0..4i64 {
            let scan_id = format!("{env}-scan-{scan}");
            let at = t(1000 * scan + ei as i64 * 10);
            let mut b = ScanBatch {
                environment: (*env).to_owned(),
                summary: Some(summary(env, &scan_id, at, 0)),
                ..ScanBatch::default()
            };
            for (ki, (group, kind, namespaced)) in kinds.iter().enumerate() {
                for i in 0..4i64 {
                    n += 1;
                    let ns = namespaced.then_some(if i % 2 == 0 { "shop" } else { "web" });
                    let name = if i == 3 {
                        format!("api[{scan}]")
                    } else {
                        format!("web-{scan}-{i}")
                    };
                    let id = ResourceId::new(*env, *group, *kind, ns, name);
                    let dk = DriftKind::ALL[(n as usize) % 3];
                    let dir = Direction::ALL[(n as usize / 3) % 4];
                    let sev = [
                        Severity::Low,
                        Severity::Medium,
                        Severity::High,
                        Severity::Critical,
                    ][(n as usize * 7 + ki) % 4];
                    let ep = format!("ep-{env}-{scan}-{ki}-{i}");
                    let detected = at + Duration::milliseconds(i);
                    let d = drift(&id, &ep, dk)
                        .direction(dir)
                        .severity(sev)
                        .at(detected)
                        .build();
                    b.events
                        .push(event(EventKind::Detected, &d, detected, &scan_id));
                    let mut last = d.clone();
                    if n % 3 == 0 {
                        let mut c = d.clone();
                        c.severity = Severity::Critical;
                        c.updated_at = detected + Duration::seconds(5);
                        b.events
                            .push(event(EventKind::Changed, &c, c.updated_at, &scan_id));
                        last = c;
                    }
                    if n % 4 == 0 {
                        let mut r = last.clone();
                        r.updated_at = last.updated_at + Duration::seconds(30);
                        r.resolved_at = Some(r.updated_at);
                        r.resolution = Some(Resolution::Reverted);
                        b.events
                            .push(event(EventKind::Resolved, &r, r.updated_at, &scan_id));
                        b.upserts.push(record(&id, None, r.updated_at));
                    } else {
                        b.upserts
                            .push(record(&id, Some(last.clone()), last.updated_at));
                    }
                    if n % 11 == 0 {
                        b.deletes.push(id.clone());
                        b.upserts.retain(|r| r.id != id);
                    }
                }
            }
            if let Some(s) = b.summary.as_mut() {
                s.events = b.events.len();
            }
            batches.push(b);
        }
    }
    batches
}

async fn commit_both(store: &Arc<dyn DriftStore>, reference: &MemoryStore, b: &ScanBatch) {
    store.commit(b).await.expect("store commits");
    reference.commit(b).await.expect("reference commits");
}

/// Every drift query the suite compares.
pub fn drift_queries() -> Vec<DriftQuery> {
    let base = DriftQuery {
        limit: 1000,
        ..DriftQuery::default()
    };
    let mut qs = Vec::new();
    for status in [DriftStatus::Open, DriftStatus::Resolved, DriftStatus::All] {
        for sort in [
            DriftSort::Severity,
            DriftSort::Detected,
            DriftSort::Updated,
            DriftSort::Object,
        ] {
            qs.push(DriftQuery {
                status,
                sort,
                ..base.clone()
            });
        }
    }
    let all = DriftQuery {
        status: DriftStatus::All,
        ..base.clone()
    };
    for env in ["prod", "dev", "nope"] {
        qs.push(DriftQuery {
            environment: Some(env.into()),
            ..base.clone()
        });
    }
    for kind in ["Deployment", "ConfigMap", "Namespace", "Secret"] {
        qs.push(DriftQuery {
            kind: Some(kind.into()),
            ..all.clone()
        });
    }
    for ns in ["shop", "web"] {
        qs.push(DriftQuery {
            namespace: Some(ns.into()),
            ..all.clone()
        });
    }
    // the group filter: exact, `""` is the core group, absent is any
    for (group, kind) in [
        ("apps", None),
        ("", None),
        ("app*", None),
        ("example.com", None),
        ("", Some("Deployment")),
        ("apps", Some("Deployment")),
    ] {
        qs.push(DriftQuery {
            group: Some(group.into()),
            kind: kind.map(Into::into),
            ..all.clone()
        });
    }
    for name in [
        "web-*", "*-1", "api[1]", "api[*", "*", "web-?-1", "w*b-2-*", "w*-*-*", "*e*-*-2",
        "web-1*-*",
    ] {
        qs.push(DriftQuery {
            name: Some(name.into()),
            ..all.clone()
        });
    }
    for k in DriftKind::ALL {
        qs.push(DriftQuery {
            drift: Some(*k),
            ..all.clone()
        });
    }
    for d in Direction::ALL {
        qs.push(DriftQuery {
            direction: Some(*d),
            ..all.clone()
        });
    }
    for s in [
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ] {
        qs.push(DriftQuery {
            min_severity: Some(s),
            ..base.clone()
        });
    }
    // the age filter: detected strictly before, at full precision
    for cut in [
        t(0),
        t(1000),
        t(2000),
        t(2000) + Duration::nanoseconds(1),
        t(100_000),
    ] {
        qs.push(DriftQuery {
            detected_before: Some(cut),
            ..all.clone()
        });
    }
    qs.push(DriftQuery {
        environment: Some("prod".into()),
        kind: Some("Deployment".into()),
        namespace: Some("shop".into()),
        min_severity: Some(Severity::Medium),
        sort: DriftSort::Updated,
        ..all.clone()
    });
    qs.push(DriftQuery {
        environment: Some("dev".into()),
        drift: Some(DriftKind::Missing),
        direction: Some(Direction::Forward),
        status: DriftStatus::Resolved,
        ..base.clone()
    });
    qs.push(DriftQuery {
        limit: 0,
        ..all.clone()
    });
    qs.push(DriftQuery {
        limit: 5,
        offset: 3,
        ..all.clone()
    });
    qs.push(DriftQuery {
        limit: 5,
        offset: 10_000,
        ..all
    });
    qs
}

/// Every event query the suite compares.
pub fn event_queries(sample: &ResourceId) -> Vec<EventQuery> {
    let base = EventQuery {
        limit: 1000,
        ..EventQuery::default()
    };
    let mut qs = vec![base.clone()];
    for env in ["prod", "dev", "nope"] {
        qs.push(EventQuery {
            environment: Some(env.into()),
            ..base.clone()
        });
    }
    for k in EventKind::ALL {
        qs.push(EventQuery {
            kind: Some(*k),
            ..base.clone()
        });
    }
    qs.push(EventQuery {
        object: Some(sample.clone()),
        ..base.clone()
    });
    qs.push(EventQuery {
        since: Some(t(1000)),
        ..base.clone()
    });
    qs.push(EventQuery {
        until: Some(t(2000)),
        ..base.clone()
    });
    qs.push(EventQuery {
        environment: Some("prod".into()),
        since: Some(t(1000)),
        until: Some(t(3000)),
        kind: Some(EventKind::Detected),
        ..base.clone()
    });
    // boundaries: `since` inclusive, `until` exclusive, at full precision
    qs.push(EventQuery {
        since: Some(t(2000)),
        until: Some(t(2000) + Duration::nanoseconds(1)),
        ..base.clone()
    });
    qs.push(EventQuery {
        limit: 7,
        offset: 4,
        ..base
    });
    qs
}

async fn assert_same(store: &Arc<dyn DriftStore>, reference: &MemoryStore, what: &str) {
    for env in ["prod", "dev", "nope"] {
        let mut a = store.records(env).await.expect("records");
        let mut b = reference.records(env).await.expect("records");
        a.sort_by(|x, y| x.id.cmp(&y.id));
        b.sort_by(|x, y| x.id.cmp(&y.id));
        assert_eq!(a, b, "{what}: records of {env}");
        assert_eq!(
            store.scans(Some(env), 100).await.expect("scans"),
            reference.scans(Some(env), 100).await.expect("scans"),
            "{what}: scans of {env}"
        );
    }
    assert_eq!(
        store.scans(None, 3).await.expect("scans"),
        reference.scans(None, 3).await.expect("scans"),
        "{what}: newest scans"
    );
    for q in drift_queries() {
        let a = store.drifts(&q).await.expect("drifts");
        let b = reference.drifts(&q).await.expect("drifts");
        let ids = |p: &driftguard_core::query::Page<Drift>| {
            (
                p.total,
                p.next_offset,
                p.items
                    .iter()
                    .map(|d| d.episode.clone())
                    .collect::<Vec<_>>(),
            )
        };
        assert_eq!(ids(&a), ids(&b), "{what}: episodes of {q:?}");
        assert_eq!(a, b, "{what}: {q:?}");
    }
    let sample = ResourceId::new("prod", "apps", "Deployment", Some("shop"), "web-1-0");
    for q in event_queries(&sample) {
        assert_eq!(
            store.events(&q).await.expect("events"),
            reference.events(&q).await.expect("events"),
            "{what}: {q:?}"
        );
    }
    assert_eq!(
        store.history(&sample, 10).await.expect("history"),
        reference.history(&sample, 10).await.expect("history"),
        "{what}: history"
    );
}

/// Writes, reads back, deletes.
pub async fn round_trip(store: Arc<dyn DriftStore>) {
    store.health().await.expect("healthy");
    let id = ResourceId::new("prod", "apps", "Deployment", Some("shop"), "web");
    let d = drift(&id, "ep1", DriftKind::Modified)
        .severity(Severity::High)
        .at(t(10))
        .build();
    let e = event(EventKind::Detected, &d, t(10), "s1");
    let r = record(&id, Some(d.clone()), t(10));
    let b = ScanBatch {
        environment: "prod".into(),
        summary: Some(summary("prod", "s1", t(10), 1)),
        upserts: vec![r.clone()],
        deletes: vec![],
        events: vec![e.clone()],
        epoch: None,
    };
    store.commit(&b).await.expect("commits");
    assert_eq!(
        store.records("prod").await.expect("records"),
        vec![r.clone()]
    );
    assert_eq!(store.record(&id).await.expect("record"), Some(r));
    assert!(store.records("dev").await.expect("records").is_empty());
    let open = store.drifts(&DriftQuery::default()).await.expect("drifts");
    assert_eq!(open.items, vec![d.clone()]);
    assert_eq!(open.total, 1);
    assert_eq!(
        store.history(&id, 10).await.expect("history"),
        vec![e.clone()]
    );
    assert_eq!(
        store.scans(Some("prod"), 10).await.expect("scans"),
        vec![summary("prod", "s1", t(10), 1)]
    );
    // resolve and forget the object
    let mut resolved = d.clone();
    resolved.updated_at = t(20);
    resolved.resolved_at = Some(t(20));
    resolved.resolution = Some(Resolution::Reverted);
    let b2 = ScanBatch {
        environment: "prod".into(),
        summary: Some(summary("prod", "s2", t(20), 1)),
        upserts: vec![],
        deletes: vec![id.clone()],
        events: vec![event(EventKind::Resolved, &resolved, t(20), "s2")],
        epoch: None,
    };
    store.commit(&b2).await.expect("commits");
    assert!(store.records("prod").await.expect("records").is_empty());
    assert_eq!(store.record(&id).await.expect("record"), None);
    assert!(store
        .drifts(&DriftQuery::default())
        .await
        .expect("drifts")
        .items
        .is_empty());
    let all = store
        .drifts(&DriftQuery {
            status: DriftStatus::Resolved,
            ..DriftQuery::default()
        })
        .await
        .expect("drifts");
    assert_eq!(all.items, vec![resolved]);
    assert_eq!(store.history(&id, 10).await.expect("history").len(), 2);
    let scans = store.scans(None, 10).await.expect("scans");
    assert_eq!(
        scans.iter().map(|s| s.scan_id.as_str()).collect::<Vec<_>>(),
        ["s2", "s1"]
    );
    // the same drift back soon after: the episode opens again (a `recurred` event), and the
    // record keeps what it knows of the revert
    let mut again = d.clone();
    again.updated_at = t(30);
    again.recurrences = 1;
    again.recurred_at = Some(t(30));
    let mut kept = record(&id, Some(again.clone()), t(30));
    kept.reverted = Some(Box::new(RevertedEpisode {
        episode: again.episode.clone(),
        kind: again.kind,
        paths: Vec::new(),
        detected_at: again.detected_at,
        reverted_at: t(20),
        recurrences: 0,
    }));
    store
        .commit(&ScanBatch {
            environment: "prod".into(),
            summary: Some(summary("prod", "s3", t(30), 1)),
            upserts: vec![kept.clone()],
            deletes: vec![],
            events: vec![event(EventKind::Recurred, &again, t(30), "s3")],
            epoch: None,
        })
        .await
        .expect("commits");
    assert_eq!(store.record(&id).await.expect("record"), Some(kept));
    let open = store.drifts(&DriftQuery::default()).await.expect("drifts");
    assert_eq!(open.items, vec![again.clone()], "open again");
    let every = store
        .drifts(&DriftQuery {
            status: DriftStatus::All,
            ..DriftQuery::default()
        })
        .await
        .expect("drifts");
    assert_eq!(every.total, 1, "one episode");
    assert_eq!(store.drift("ep1").await.expect("drift"), Some(again));
    assert_eq!(store.history(&id, 10).await.expect("history").len(), 3);
    // an empty batch is a no-op
    store
        .commit(&ScanBatch::default())
        .await
        .expect("empty commit");
}

/// The dataset, written in batches, answers every query like the reference store.
pub async fn queries_match_reference(store: Arc<dyn DriftStore>) {
    let reference = MemoryStore::new();
    for b in dataset() {
        commit_both(&store, &reference, &b).await;
    }
    assert_same(&store, &reference, "dataset").await;
    // one episode by its id, open or resolved
    let all = reference
        .drifts(&DriftQuery {
            status: DriftStatus::All,
            limit: 10_000,
            ..DriftQuery::default()
        })
        .await
        .expect("drifts")
        .items;
    assert!(
        all.iter().any(|d| d.resolved_at.is_some()) && all.iter().any(|d| d.resolved_at.is_none())
    );
    for d in &all {
        let got = store.drift(&d.episode).await.expect("drift by id");
        assert_eq!(got.as_ref(), Some(d), "episode {}", d.episode);
    }
    assert_eq!(
        store.drift("no-such-episode").await.expect("drift by id"),
        None
    );
    hostile_globs(&store, &reference).await;
}

/// A name glob of many `*` against a long name answers at once, the same as the reference: a
/// backtracking matcher (or a regular expression of the glob) takes time to the power of the
/// stars here, and a request that never ends holds the server.
async fn hostile_globs(store: &Arc<dyn DriftStore>, reference: &MemoryStore) {
    let id = ResourceId::new("prod", "", "ConfigMap", Some("shop"), "a".repeat(250));
    let at = t(9000);
    let d = drift(&id, "ep-long-name", DriftKind::Modified)
        .severity(Severity::Low)
        .at(at)
        .build();
    let b = ScanBatch {
        environment: "prod".into(),
        events: vec![event(EventKind::Detected, &d, at, "prod-scan-long")],
        upserts: vec![record(&id, Some(d.clone()), at)],
        ..ScanBatch::default()
    };
    commit_both(store, reference, &b).await;
    for name in [
        "*a*a*a*a*a*a*a*a*a*a*b".to_owned(),
        "*a*a*a*a*a*a*a*a*a*a*".to_owned(),
        format!("{}*a*a*a*a*a*a*a*a*b", "a".repeat(20)),
    ] {
        for status in [DriftStatus::Open, DriftStatus::All] {
            for environment in [Some("prod".to_owned()), None] {
                let q = DriftQuery {
                    name: Some(name.clone()),
                    status,
                    environment,
                    limit: 50,
                    ..DriftQuery::default()
                };
                let got =
                    tokio::time::timeout(std::time::Duration::from_secs(60), store.drifts(&q))
                        .await
                        .unwrap_or_else(|_| panic!("{q:?} did not answer within 60 s"))
                        .expect("drifts");
                let want = reference.drifts(&q).await.expect("drifts");
                assert_eq!(got, want, "{q:?}");
                assert_eq!(got.total, usize::from(!name.ends_with('b')), "{q:?}");
            }
        }
    }
}

/// Walking pages yields every item once, in order, with a stable total.
pub async fn pagination(store: Arc<dyn DriftStore>) {
    for b in dataset() {
        store.commit(&b).await.expect("commits");
    }
    for sort in [
        DriftSort::Severity,
        DriftSort::Detected,
        DriftSort::Updated,
        DriftSort::Object,
    ] {
        let full = store
            .drifts(&DriftQuery {
                status: DriftStatus::All,
                sort,
                limit: 10_000,
                ..DriftQuery::default()
            })
            .await
            .expect("drifts");
        let mut walked = Vec::new();
        let mut offset = Some(0);
        while let Some(o) = offset {
            let p = store
                .drifts(&DriftQuery {
                    status: DriftStatus::All,
                    sort,
                    limit: 7,
                    offset: o,
                    ..DriftQuery::default()
                })
                .await
                .expect("page");
            assert_eq!(p.total, full.total);
            assert!(p.items.len() <= 7);
            walked.extend(p.items);
            offset = p.next_offset;
        }
        assert_eq!(walked, full.items, "{sort:?}");
    }
    let all = store
        .events(&EventQuery {
            limit: 10_000,
            ..EventQuery::default()
        })
        .await
        .expect("events");
    let mut walked = Vec::new();
    let mut offset = Some(0);
    while let Some(o) = offset {
        let p = store
            .events(&EventQuery {
                limit: 9,
                offset: o,
                ..EventQuery::default()
            })
            .await
            .expect("page");
        assert_eq!(p.total, all.total);
        walked.extend(p.items);
        offset = p.next_offset;
    }
    assert_eq!(walked, all.items);
}

/// A retried batch, or an old batch replayed after newer ones, changes nothing.
pub async fn idempotent_retries(store: Arc<dyn DriftStore>) {
    let reference = MemoryStore::new();
    let batches = dataset();
    for b in &batches {
        commit_both(&store, &reference, b).await;
        store.commit(b).await.expect("retry commits");
    }
    // replay everything again, oldest first, like a buffer draining after an outage
    for b in &batches {
        store.commit(b).await.expect("replay commits");
    }
    // the last batch again: records are already current
    store
        .commit(batches.last().expect("dataset is not empty"))
        .await
        .expect("commits");
    assert_same(&store, &reference, "after retries").await;
    let total = store
        .events(&EventQuery::default())
        .await
        .expect("events")
        .total;
    let expected: usize = batches.iter().map(|b| b.events.len()).sum();
    assert_eq!(total, expected, "no event stored twice");
}

/// Pruning removes old events, scans and resolved episodes, like the reference.
pub async fn retention(store: Arc<dyn DriftStore>) {
    let reference = MemoryStore::new();
    for b in dataset() {
        commit_both(&store, &reference, &b).await;
    }
    for cut in [t(500), t(2000), t(2031)] {
        let a = store.prune(cut).await.expect("prunes");
        let b = reference.prune(cut).await.expect("prunes");
        assert_eq!(a, b, "prune stats at {cut}");
        assert_same(&store, &reference, "after prune").await;
    }
    let again = store.prune(t(2031)).await.expect("prunes");
    assert_eq!(again, Default::default(), "nothing left to prune");
    // open drifts survive any prune
    assert!(
        store
            .drifts(&DriftQuery::default())
            .await
            .expect("drifts")
            .total
            > 0
    );
}

/// How far each notifier's deliveries went: kept per notifier, only ever moved forward, with
/// full precision, and kept by prune.
pub async fn delivery_marks(store: Arc<dyn DriftStore>) {
    let mark = |name: &'static str| {
        let store = store.clone();
        async move { store.delivered_until(name).await.expect("reads") }
    };
    let set = |name: &'static str, secs: i64| {
        let store = store.clone();
        async move {
            store
                .set_delivered_until(name, t(secs))
                .await
                .expect("sets")
        }
    };
    assert_eq!(mark("webhook").await, None);
    set("webhook", 100).await;
    set("email", 50).await;
    assert_eq!(mark("webhook").await, Some(t(100)));
    assert_eq!(mark("email").await, Some(t(50)));
    // never back
    set("webhook", 90).await;
    assert_eq!(mark("webhook").await, Some(t(100)));
    set("webhook", 200).await;
    store.prune(t(10_000)).await.expect("prunes");
    assert_eq!(mark("webhook").await, Some(t(200)), "kept by prune");
    assert_eq!(mark("slack").await, None);
}

/// One detection in `env`, with its record and a summary, written by leadership `epoch`.
fn fenced_batch(env: &str, n: i64, epoch: Option<u64>) -> ScanBatch {
    let id = ResourceId::new(env, "apps", "Deployment", Some("shop"), format!("web-{n}"));
    let d = drift(&id, &format!("{env}-ep-{n}"), DriftKind::Modified)
        .severity(Severity::High)
        .at(t(n))
        .build();
    let scan = format!("{env}-fenced-{n}");
    ScanBatch {
        environment: env.to_owned(),
        summary: Some(summary(env, &scan, t(n), 1)),
        upserts: vec![record(&id, Some(d.clone()), t(n))],
        deletes: vec![],
        events: vec![event(EventKind::Detected, &d, t(n), &scan)],
        epoch,
    }
}

fn is_refusal(r: &Result<(), StoreError>, epoch: u64) -> bool {
    matches!(r, Err(StoreError::Conflict { what })
        if what.contains(&format!("leadership epoch {epoch} was refused")))
}

/// Fencing by leadership epoch ([`driftguard_core::fence`]): per environment, the store keeps
/// the highest epoch written and refuses, whole and as [`StoreError::Conflict`], a batch that
/// carries a lower one; an empty batch with an epoch (a claim) moves the fence too; a batch
/// without an epoch is not fenced; a refused batch leaves nothing behind. Answers like the
/// reference.
pub async fn fencing(store: Arc<dyn DriftStore>) {
    let reference = MemoryStore::new();
    // term 2 writes
    commit_both(&store, &reference, &fenced_batch("prod", 1, Some(2))).await;
    commit_both(&store, &reference, &fenced_batch("prod", 2, Some(2))).await;
    // an older term is refused, whole
    let r = store.commit(&fenced_batch("prod", 3, Some(1))).await;
    assert!(is_refusal(&r, 1), "epoch 1 after 2: {r:?}");
    assert!(is_refusal(
        &reference.commit(&fenced_batch("prod", 3, Some(1))).await,
        1
    ));
    assert_same(&store, &reference, "after a refused batch").await;
    assert_eq!(
        store
            .events(&EventQuery::default())
            .await
            .expect("events")
            .total,
        2,
        "nothing of the refused batch is stored"
    );
    assert_eq!(store.scans(Some("prod"), 10).await.expect("scans").len(), 2);
    assert_eq!(store.epoch("prod").await.expect("epoch"), Some(2));
    assert_eq!(store.epoch("dev").await.expect("epoch"), None);
    // a new term claims the environment with an empty batch: term 2 is fenced off at once
    store
        .commit(&ScanBatch::claim("prod", 3))
        .await
        .expect("claim of epoch 3");
    reference
        .commit(&ScanBatch::claim("prod", 3))
        .await
        .expect("claim");
    let r = store.commit(&fenced_batch("prod", 4, Some(2))).await;
    assert!(is_refusal(&r, 2), "epoch 2 after the claim of 3: {r:?}");
    let r = store.commit(&ScanBatch::claim("prod", 2)).await;
    assert!(is_refusal(&r, 2), "an older claim: {r:?}");
    // the claim wrote nothing else
    assert_same(&store, &reference, "after a claim").await;
    // term 3 writes; epochs are per environment; no epoch is not fenced
    commit_both(&store, &reference, &fenced_batch("prod", 5, Some(3))).await;
    commit_both(&store, &reference, &fenced_batch("dev", 6, Some(1))).await;
    commit_both(&store, &reference, &fenced_batch("prod", 7, None)).await;
    assert_eq!(store.epoch("prod").await.expect("epoch"), Some(3));
    assert_eq!(store.epoch("dev").await.expect("epoch"), Some(1));
    // a retried batch of the current term is still idempotent
    store
        .commit(&fenced_batch("prod", 5, Some(3)))
        .await
        .expect("retry of the current term");
    assert_same(&store, &reference, "after terms 3 and 1").await;

    // two writers racing: whatever the order, once the claim of 9 has returned, 8 is refused
    let (claim8, claim9) = (ScanBatch::claim("race", 8), ScanBatch::claim("race", 9));
    let (a, b) = tokio::join!(store.commit(&claim8), store.commit(&claim9));
    assert!(b.is_ok(), "the newer claim always passes: {b:?}");
    assert!(a.is_ok() || is_refusal(&a, 8), "{a:?}");
    assert_eq!(store.epoch("race").await.expect("epoch"), Some(9));
    let r = store.commit(&fenced_batch("race", 10, Some(8))).await;
    assert!(is_refusal(&r, 8), "{r:?}");
    store
        .commit(&fenced_batch("race", 11, Some(9)))
        .await
        .expect("the newest epoch writes");
}

/// One audit write (times with a sub-millisecond part, so that stores keep full precision).
pub fn audit_write(id: &str, secs: i64, who: &str) -> AuditWrite {
    AuditWrite {
        audit_id: id.to_owned(),
        at: t(secs),
        verb: "patch".into(),
        subresource: if secs % 2 == 0 {
            String::new()
        } else {
            "scale".into()
        },
        user: AuditUser {
            name: Some(who.to_owned()),
            class: if who.starts_with("system:serviceaccount:") {
                UserClass::ServiceAccount
            } else {
                UserClass::Person
            },
            groups: vec!["dev".into()],
            acting_as: (secs % 3 == 0).then(|| "hmac:0123456789abcdef".to_owned()),
        },
        manager: "kubectl-edit".into(),
        user_agent: "kubectl/v1.20.2 (linux/amd64) kubernetes/faecb19".into(),
        source_ip: Some("10.0.0.7".into()),
    }
}

fn audit_object(resource: &str, namespace: Option<&str>, name: &str) -> AuditObject {
    AuditObject {
        group: if resource == "deployments" {
            "apps".into()
        } else {
            String::new()
        },
        resource: resource.into(),
        namespace: namespace.map(str::to_owned),
        name: name.into(),
    }
}

/// Saves of audit indexes, in order: two environments, objects replaced and forgotten, a
/// cluster-scoped object, cursors replaced.
pub fn audit_saves() -> Vec<(&'static str, AuditSnapshot)> {
    let web = audit_object("deployments", Some("shop"), "web");
    let cm = audit_object("configmaps", Some("shop"), "settings");
    let ns = audit_object("namespaces", None, "shop");
    let cursor = |source: &str, offset: u64| AuditCursor {
        source: source.into(),
        device: 2049,
        inode: 1_234_567,
        offset,
        head: 0x5eed ^ offset,
    };
    let objects = |v: Vec<(&AuditObject, Vec<AuditWrite>)>| {
        v.into_iter()
            .map(|(o, writes)| ObjectWrites {
                object: o.clone(),
                writes,
            })
            .collect()
    };
    vec![
        (
            "prod",
            AuditSnapshot {
                objects: objects(vec![
                    (&web, vec![audit_write("w1", 10, "alice")]),
                    (
                        &cm,
                        vec![
                            audit_write("w2", 11, "bob"),
                            audit_write("w3", 12, "system:serviceaccount:ci:deployer"),
                        ],
                    ),
                ]),
                cursors: vec![cursor("/var/log/kubernetes/audit.log", 10)],
            },
        ),
        (
            "dev",
            AuditSnapshot {
                objects: objects(vec![(&web, vec![audit_write("w4", 13, "carol")])]),
                cursors: vec![cursor("/var/log/kubernetes/audit.log", 99)],
            },
        ),
        (
            "prod",
            AuditSnapshot {
                objects: objects(vec![
                    (
                        &web,
                        vec![audit_write("w1", 10, "alice"), audit_write("w5", 20, "bob")],
                    ),
                    (&cm, Vec::new()),
                    (&ns, vec![audit_write("w6", 21, "alice")]),
                ]),
                cursors: vec![
                    cursor("/var/log/kubernetes/audit.log", 20),
                    cursor("/var/log/other.log", 5),
                ],
            },
        ),
        ("prod", AuditSnapshot::default()),
        (
            "dev",
            AuditSnapshot {
                objects: objects(vec![(&cm, Vec::new())]),
                cursors: Vec::new(),
            },
        ),
    ]
}

/// The audit index pair (`audit_index`, `save_audit_index`): kept per environment, each
/// object's writes replaced by a save, an object without writes forgotten (also one never
/// saved), each cursor replaced per file, every field kept with full precision, and untouched
/// by prune; answers like the reference store's after every save.
pub async fn audit_index(store: Arc<dyn DriftStore>) {
    let reference = MemoryStore::new();
    assert_eq!(
        store.audit_index("prod").await.expect("reads"),
        AuditSnapshot::default(),
        "empty at first"
    );
    for (i, (env, changes)) in audit_saves().iter().enumerate() {
        store
            .save_audit_index(env, changes)
            .await
            .expect("store saves");
        reference
            .save_audit_index(env, changes)
            .await
            .expect("reference saves");
        for e in ["prod", "dev", "none"] {
            assert_eq!(
                store.audit_index(e).await.expect("reads"),
                reference.audit_index(e).await.expect("reads"),
                "after save {i}, environment {e}"
            );
        }
    }
    let prod = store.audit_index("prod").await.expect("reads");
    assert_eq!(prod.objects.len(), 2, "web and the namespace: {prod:?}");
    assert_eq!(prod.cursors.len(), 2);
    assert_eq!(
        store.audit_index("dev").await.expect("reads").objects.len(),
        1
    );
    store.prune(t(100_000)).await.expect("prunes");
    assert_eq!(
        store.audit_index("prod").await.expect("reads"),
        prod,
        "prune leaves the index to its own limits"
    );
}

/// Acknowledgements: kept one per episode (the latest saved), read per environment or all,
/// ordered by environment and episode, times at full precision; an `acknowledged` event and
/// its `unacknowledged` lapse go through a batch like any event; prune removes only those
/// whose lapse was recorded before its time (the core's `ack::pruned`).
pub async fn acknowledgements(store: Arc<dyn DriftStore>) {
    use driftguard_core::ack::{self, AckRequest, Lapse};
    let reference = MemoryStore::new();
    assert!(store
        .acknowledgements(None)
        .await
        .expect("reads")
        .is_empty());
    let open = |env: &str, episode: &str| {
        let id = ResourceId::new(env, "apps", "Deployment", Some("shop"), episode);
        drift(&id, episode, DriftKind::Modified)
            .detected(t(1))
            .updated(t(1))
            .build()
    };
    let (a, b, c) = (
        open("prod", "ep-b"),
        open("prod", "ep-a"),
        open("dev", "ep-c"),
    );
    let req = |until: Option<DateTime<Utc>>| AckRequest {
        by: "token:ops".into(),
        reason: "known: load test".into(),
        until,
    };
    let (ack_a, event_a) = ack::acknowledge(&a, &req(None), t(10)).expect("open");
    let (ack_b, _) = ack::acknowledge(&b, &req(Some(t(5000))), t(11)).expect("open");
    let (ack_c, _) = ack::acknowledge(&c, &req(None), t(12)).expect("open");
    let all = [ack_a.clone(), ack_b.clone(), ack_c.clone()];
    store.save_acknowledgements(&all).await.expect("saves");
    reference.save_acknowledgements(&all).await.expect("saves");
    let compare = |what: &'static str| {
        let (store, reference) = (store.clone(), &reference);
        async move {
            for env in [None, Some("prod"), Some("dev"), Some("none")] {
                assert_eq!(
                    store.acknowledgements(env).await.expect("reads"),
                    reference.acknowledgements(env).await.expect("reads"),
                    "{what}, environment {env:?}"
                );
            }
        }
    };
    compare("after the first save").await;
    assert_eq!(
        store.acknowledgements(None).await.expect("reads"),
        vec![ack_c.clone(), ack_b.clone(), ack_a.clone()],
        "by environment, then episode"
    );
    // the lapse replaces the acknowledgement of its episode
    let (lapsed_a, lapse_event) = ack::lapse(&ack_a, &a, Lapse::Expired, None, t(50));
    store
        .save_acknowledgements(std::slice::from_ref(&lapsed_a))
        .await
        .expect("saves");
    reference
        .save_acknowledgements(std::slice::from_ref(&lapsed_a))
        .await
        .expect("saves");
    compare("after a lapse").await;
    assert_eq!(
        store.acknowledgements(Some("prod")).await.expect("reads"),
        vec![ack_b.clone(), lapsed_a.clone()]
    );
    // the events go through a batch, their kinds filter
    let batch = ScanBatch {
        environment: "prod".into(),
        events: vec![event_a, lapse_event],
        ..ScanBatch::default()
    };
    commit_both(&store, &reference, &batch).await;
    for kind in [EventKind::Acknowledged, EventKind::Unacknowledged] {
        let q = EventQuery {
            kind: Some(kind),
            ..EventQuery::default()
        };
        let got = store.events(&q).await.expect("events");
        assert_eq!(got, reference.events(&q).await.expect("events"), "{kind}");
        assert_eq!(got.items.len(), 1, "{kind}");
        assert_eq!(
            got.items[0]
                .acknowledgement
                .as_ref()
                .map(|x| x.episode.as_str()),
            Some("ep-b")
        );
    }
    // prune: only what lapsed before its time
    store.prune(t(40)).await.expect("prunes");
    reference.prune(t(40)).await.expect("prunes");
    compare("after a prune before the lapse").await;
    assert_eq!(store.acknowledgements(None).await.expect("reads").len(), 3);
    store.prune(t(60)).await.expect("prunes");
    reference.prune(t(60)).await.expect("prunes");
    compare("after a prune past the lapse").await;
    assert_eq!(
        store.acknowledgements(None).await.expect("reads"),
        vec![ack_c, ack_b],
        "the lapsed one is gone, the others stay"
    );
}

/// People's actions: kept once per id (the latest written), newest first, per environment or all, at most the
/// limit, times at full precision; prune removes those older than its time.
pub async fn person_actions(store: Arc<dyn DriftStore>) {
    use driftguard_core::actions::{ActionKind, PersonAction};
    let reference = MemoryStore::new();
    assert!(store.actions(None, 10).await.expect("reads").is_empty());
    let all = vec![
        PersonAction::new(
            ActionKind::Scan,
            "token:ops",
            t(10),
            Some("prod".into()),
            vec![],
            "",
        ),
        PersonAction::new(
            ActionKind::Acknowledge,
            "token:ops",
            t(20),
            Some("prod".into()),
            vec!["ep-1".into(), "ep-2".into()],
            "load test",
        ),
        PersonAction::new(
            ActionKind::Scan,
            "cli:ada",
            t(30),
            Some("dev".into()),
            vec![],
            "",
        ),
        PersonAction::new(
            ActionKind::SignInFailed,
            "192.0.2.7",
            t(40),
            None,
            vec![],
            "",
        )
        .counted(12),
        // the same instant: the id orders them
        PersonAction::new(
            ActionKind::Remediate,
            "token:ops",
            t(40),
            Some("prod".into()),
            vec!["ep-3".into()],
            "revert",
        ),
    ];
    store.record_actions(&all).await.expect("records");
    reference.record_actions(&all).await.expect("records");
    // written twice: kept once
    store
        .record_actions(&all[..2])
        .await
        .expect("records again");
    for (env, limit) in [
        (None, 10),
        (None, 2),
        (Some("prod"), 10),
        (Some("dev"), 10),
        (Some("none"), 10),
    ] {
        assert_eq!(
            store.actions(env, limit).await.expect("reads"),
            reference.actions(env, limit).await.expect("reads"),
            "environment {env:?}, limit {limit}"
        );
    }
    let newest = store.actions(None, 10).await.expect("reads");
    assert_eq!(newest.len(), 5);
    assert_eq!(newest[4], all[0], "oldest last, at full precision");
    assert_eq!(
        store.actions(Some("prod"), 10).await.expect("reads").len(),
        3
    );
    store.prune(t(25)).await.expect("prunes");
    reference.prune(t(25)).await.expect("prunes");
    assert_eq!(
        store.actions(None, 10).await.expect("reads"),
        reference.actions(None, 10).await.expect("reads")
    );
    assert_eq!(store.actions(None, 10).await.expect("reads").len(), 3);
}

/// A store seen through its required methods only: its provided methods are the trait's
/// defaults, the meaning every override must keep.
struct RequiredOnly(Arc<dyn DriftStore>);

#[async_trait]
impl DriftStore for RequiredOnly {
    async fn records(&self, environment: &str) -> Result<Vec<DriftRecord>, StoreError> {
        self.0.records(environment).await
    }

    async fn commit(&self, batch: &ScanBatch) -> Result<(), StoreError> {
        self.0.commit(batch).await
    }

    async fn drifts(&self, query: &DriftQuery) -> Result<Page<Drift>, StoreError> {
        self.0.drifts(query).await
    }

    async fn events(&self, query: &EventQuery) -> Result<Page<DriftEvent>, StoreError> {
        self.0.events(query).await
    }

    async fn scans(
        &self,
        environment: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ScanSummary>, StoreError> {
        self.0.scans(environment, limit).await
    }

    async fn prune(&self, before: DateTime<Utc>) -> Result<PruneStats, StoreError> {
        self.0.prune(before).await
    }
}

/// The provided methods (`record`, `drift`, `history`, `scans_at`, `open_tallies`,
/// `delivered_until`) mean what the trait says, whether a store overrides them or not: each answers like the trait's default built on
/// the store's own required methods, and like the reference store.
pub async fn provided_methods(store: Arc<dyn DriftStore>) {
    let reference = MemoryStore::new();
    let batches = dataset();
    for b in &batches {
        commit_both(&store, &reference, b).await;
    }
    let defaults = RequiredOnly(store.clone());
    // record: every current record, every forgotten one, and objects never seen
    let mut ids: BTreeSet<ResourceId> = BTreeSet::new();
    for env in ["prod", "dev"] {
        let current = reference.records(env).await.expect("records");
        assert!(!current.is_empty(), "the dataset has records in {env}");
        ids.extend(current.into_iter().map(|r| r.id));
    }
    let deleted: Vec<&ResourceId> = batches.iter().flat_map(|b| &b.deletes).collect();
    assert!(!deleted.is_empty(), "the dataset forgets objects");
    ids.extend(deleted.into_iter().cloned());
    ids.insert(ResourceId::new(
        "prod",
        "",
        "ConfigMap",
        Some("shop"),
        "never",
    ));
    ids.insert(ResourceId::new(
        "nope",
        "apps",
        "Deployment",
        None,
        "web-0-0",
    ));
    for id in &ids {
        let got = store.record(id).await.expect("record");
        assert_eq!(
            got,
            defaults.record(id).await.expect("default record"),
            "record({id}) is the one records() holds"
        );
        assert_eq!(
            got,
            reference.record(id).await.expect("reference record"),
            "record({id})"
        );
    }
    // drift: every episode, open or resolved, and one that does not exist
    let all = reference
        .drifts(&DriftQuery {
            status: DriftStatus::All,
            limit: 10_000,
            ..DriftQuery::default()
        })
        .await
        .expect("drifts")
        .items;
    let mut episodes: Vec<String> = all.into_iter().map(|d| d.episode).collect();
    episodes.push("no-such-episode".into());
    for ep in &episodes {
        let got = store.drift(ep).await.expect("drift");
        assert_eq!(
            got,
            defaults.drift(ep).await.expect("default drift"),
            "drift({ep}) is the one drifts() holds"
        );
        assert_eq!(
            got,
            reference.drift(ep).await.expect("reference"),
            "drift({ep})"
        );
    }
    // history: every object's events, oldest first, cut at `limit`
    let mut with_several = 0;
    for (i, id) in ids.iter().enumerate() {
        let limits: &[usize] = if i % 8 == 0 {
            &[0, 1, 2, 1000]
        } else {
            &[1000]
        };
        for &limit in limits {
            let got = store.history(id, limit).await.expect("history");
            assert_eq!(
                got,
                defaults.history(id, limit).await.expect("default history"),
                "history({id}, {limit}) is what events() holds"
            );
            assert_eq!(
                got,
                reference.history(id, limit).await.expect("reference"),
                "history({id}, {limit})"
            );
            if limit == 1000 && got.len() > 1 {
                with_several += 1;
            }
        }
    }
    assert!(with_several > 0, "some objects have several events");
    let owned = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
    // scans_at: the scans at a chart's points, with two scans of one environment starting
    // together (the higher id is the later one)
    for id in ["dev-tie-a", "dev-tie-b"] {
        let b = ScanBatch {
            environment: "dev".into(),
            summary: Some(summary("dev", id, t(50_000), 0)),
            ..ScanBatch::default()
        };
        commit_both(&store, &reference, &b).await;
    }
    let started: Vec<DateTime<Utc>> = reference
        .scans(None, usize::MAX)
        .await
        .expect("scans")
        .iter()
        .map(|s| s.started_at)
        .collect();
    assert!(started.len() > 4, "the dataset has scans");
    let nano = Duration::nanoseconds(1);
    let mut every: Vec<DateTime<Utc>> = started
        .iter()
        .flat_map(|&at| [at - nano, at, at + nano])
        .collect();
    every.extend([t(-1), t(1_000_000)]);
    let cases: Vec<(Vec<String>, Vec<DateTime<Utc>>)> = vec![
        (owned(&["prod", "dev"]), every.clone()),
        (owned(&["dev", "nope", "dev"]), every.clone()),
        (
            owned(&["prod"]),
            vec![t(1_000_000), started[started.len() / 2], t(-1)],
        ),
        (owned(&["dev"]), vec![t(50_000)]),
        (owned(&["prod", "dev"]), vec![t(-1)]),
        (owned(&["prod", "dev"]), Vec::new()),
        (Vec::new(), every.clone()),
    ];
    let mut answered = 0;
    for (envs, times) in &cases {
        let got = store.scans_at(envs, times).await.expect("scans_at");
        assert_eq!(
            got,
            defaults
                .scans_at(envs, times)
                .await
                .expect("default scans_at"),
            "scans_at({envs:?}, {} times) is what scans() holds",
            times.len()
        );
        assert_eq!(
            got,
            reference.scans_at(envs, times).await.expect("reference"),
            "scans_at({envs:?}, {} times)",
            times.len()
        );
        answered += got.len();
    }
    assert!(answered > 0, "some points have scans");
    let tie = store
        .scans_at(&owned(&["dev"]), &[t(50_000)])
        .await
        .expect("scans_at");
    assert_eq!(
        tie.iter().map(|s| s.scan_id.as_str()).collect::<Vec<_>>(),
        ["dev-tie-b"],
        "of two scans starting together, the higher id"
    );
    // open_tallies: every environment's open drifts counted, and environments without any
    for envs in [
        owned(&["prod", "dev"]),
        owned(&["dev", "nope", "prod", "dev"]),
        owned(&["nope"]),
        Vec::new(),
    ] {
        let got = store.open_tallies(&envs).await.expect("open_tallies");
        assert_eq!(
            got,
            defaults
                .open_tallies(&envs)
                .await
                .expect("default open_tallies"),
            "open_tallies({envs:?}) is what drifts() holds"
        );
        assert_eq!(
            got,
            reference.open_tallies(&envs).await.expect("reference"),
            "open_tallies({envs:?})"
        );
    }
    let both = store
        .open_tallies(&owned(&["prod", "dev"]))
        .await
        .expect("open_tallies");
    assert_eq!(
        both.iter()
            .map(|t| t.environment.as_str())
            .collect::<Vec<_>>(),
        ["dev", "prod"]
    );
    assert!(
        both.iter()
            .all(|t| t.total() > 0 && t.oldest.is_some() && t.counts.len() > 1),
        "the dataset has open drifts of several kinds in each: {both:?}"
    );
    // delivered_until: what the reference keeps (the default, which keeps nothing, is for
    // stores that cannot keep a mark)
    for (name, secs) in [("webhook", Some(100)), ("email", Some(7)), ("slack", None)] {
        if let Some(secs) = secs {
            store
                .set_delivered_until(name, t(secs))
                .await
                .expect("sets");
            reference
                .set_delivered_until(name, t(secs))
                .await
                .expect("sets");
        }
        assert_eq!(
            store.delivered_until(name).await.expect("mark"),
            reference.delivered_until(name).await.expect("mark"),
            "delivered_until({name})"
        );
    }
}

/// Many writers at once (distinct environments, and the same batches retried concurrently).
pub async fn concurrent_writers(store: Arc<dyn DriftStore>) {
    let reference = Arc::new(MemoryStore::new());
    let batches = dataset();
    let mut tasks = Vec::new();
    // prod and dev batches are written by different tasks; each batch twice, concurrently
    for env in ["prod", "dev"] {
        for copy in 0..2 {
            let store = store.clone();
            let mine: Vec<ScanBatch> = batches
                .iter()
                .filter(|b| b.environment == env)
                .cloned()
                .collect();
            tasks.push(tokio::spawn(async move {
                for b in mine {
                    let _ = copy;
                    store.commit(&b).await.expect("concurrent commit");
                }
            }));
        }
    }
    // plus writers of unrelated environments
    for w in 0..4 {
        let store = store.clone();
        let reference = reference.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..10 {
                let env = format!("w{w}");
                let id = ResourceId::new(&env, "", "ConfigMap", Some("ns"), format!("cm-{i}"));
                let d = drift(&id, &format!("ep-{env}-{i}"), DriftKind::Missing)
                    .direction(Direction::Unknown)
                    .at(t(i))
                    .build();
                let b = ScanBatch {
                    environment: env.clone(),
                    summary: Some(summary(&env, &format!("{env}-{i}"), t(i), 1)),
                    upserts: vec![record(&id, Some(d.clone()), t(i))],
                    deletes: vec![],
                    events: vec![event(EventKind::Detected, &d, t(i), &format!("{env}-{i}"))],
                    epoch: None,
                };
                store.commit(&b).await.expect("concurrent commit");
                reference.commit(&b).await.expect("reference");
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer task");
    }
    // the reference gets prod/dev in order: within an environment, batches are ordered
    for b in &batches {
        reference.commit(b).await.expect("reference");
    }
    assert_same(&store, &reference, "concurrent").await;
    for w in 0..4 {
        let env = format!("w{w}");
        assert_eq!(store.records(&env).await.expect("records").len(), 10);
        assert_eq!(store.scans(Some(&env), 100).await.expect("scans").len(), 10);
    }
    let q = EventQuery {
        limit: 100_000,
        ..EventQuery::default()
    };
    assert_eq!(
        store.events(&q).await.expect("events"),
        reference.events(&q).await.expect("events")
    );
}

/// The Deployment `shop/web` the scanner checks, with `replicas`.
fn web(replicas: i64) -> serde_json::Value {
    testkit::deployment("web")
        .replicas(replicas)
        .container("web", "nginx:1.25")
        .build()
}

fn scanner(
    store: Arc<dyn DriftStore>,
    git: Arc<MemoryGitSource>,
    live: Arc<MemoryLiveSource>,
    clock: Arc<ManualClock>,
) -> Scanner {
    let engine = Engine::new(
        EnvironmentSpec::new("prod"),
        Normalizer::new(SecretKey::new(b"conformance-key".to_vec())),
    );
    Scanner::new(engine, git, live, store, clock)
}

/// The core scanner runs over the store: detect, change, resolve, and a scan after a "restart"
/// (a new scanner reading the records back) emits nothing new; all like the reference store.
pub async fn scanner_round_trip(store: Arc<dyn DriftStore>) {
    let reference: Arc<dyn DriftStore> = Arc::new(MemoryStore::new());
    let git = Arc::new(MemoryGitSource::new());
    git.set(DesiredSet {
        revision: Some(Revision::plain("r1")),
        objects: vec![RawManifest {
            object: RawObject::new(web(3)),
            provenance: Provenance {
                file: "web.yaml".into(),
                document: 0,
                line: 1,
                revision: Some("r1".into()),
                rendered: None,
            },
        }],
        ..DesiredSet::default()
    });
    let live = Arc::new(MemoryLiveSource::new());
    let clock = Arc::new(ManualClock::new(t(0)));
    let mut all_events = Vec::new();
    for (step, replicas) in [3, 5, 7, 7, 3].into_iter().enumerate() {
        live.set(vec![RawLive::new(web(replicas))]);
        clock.set(t(60 * step as i64));
        // a fresh scanner each time, as after a restart: state comes from the store
        let a = scanner(store.clone(), git.clone(), live.clone(), clock.clone())
            .scan()
            .await
            .expect("scan");
        let b = scanner(reference.clone(), git.clone(), live.clone(), clock.clone())
            .scan()
            .await
            .expect("reference scan");
        assert_eq!(a.events, b.events, "step {step}");
        all_events.extend(a.events);
    }
    let kinds: Vec<EventKind> = all_events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [EventKind::Detected, EventKind::Changed, EventKind::Resolved]
    );
    let q = EventQuery::default();
    assert_eq!(
        store.events(&q).await.expect("events"),
        reference.events(&q).await.expect("events")
    );
    let dq = DriftQuery {
        status: DriftStatus::All,
        ..DriftQuery::default()
    };
    assert_eq!(
        store.drifts(&dq).await.expect("drifts"),
        reference.drifts(&dq).await.expect("drifts")
    );
    assert_eq!(
        store.records("prod").await.expect("records"),
        reference.records("prod").await.expect("records")
    );
    assert_eq!(
        store.scans(Some("prod"), 100).await.expect("scans").len(),
        5
    );
}

/// Canary strings held by the Secrets that [`write_secret_canary`] scans: the plain values and
/// their base64 forms. None may appear anywhere in a store.
pub fn canary_needles() -> Vec<String> {
    let plain = [
        "CANARY-desired-7f3a9c1e5b2d4f60",
        "CANARY-live-0d9e8c7b6a5f4e3d",
    ];
    let mut out: Vec<String> = plain.iter().map(|s| (*s).to_owned()).collect();
    for p in plain {
        out.push(b64(p.as_bytes()));
    }
    out
}

fn b64(bytes: &[u8]) -> String {
    use base64_lite as b;
    b::encode(bytes)
}

mod base64_lite {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    pub fn encode(input: &[u8]) -> String {
        let mut out = String::new();
        for chunk in input.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
}

/// Runs the core scanner over Secrets whose values are the canaries (a drifted Secret, a
/// missing one and an orphan one), so that the store holds records, events and episodes of
/// Secrets. Returns the needles to search the store's raw storage for.
pub async fn write_secret_canary(store: Arc<dyn DriftStore>) -> Vec<String> {
    let needles = canary_needles();
    let secret = |name: &str, value: &str| {
        json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": "shop",
                "labels": {"app.kubernetes.io/managed-by": "driftguard"}},
            "type": "Opaque",
            "data": {"password": b64(value.as_bytes())}})
    };
    let with_string_data = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "plain", "namespace": "shop"},
        "stringData": {"token": needles[0]}});
    let git = Arc::new(MemoryGitSource::new());
    git.set(DesiredSet {
        revision: Some(Revision::plain("r1")),
        objects: vec![
            RawManifest {
                object: RawObject::new(secret("db", &needles[0])),
                provenance: Provenance::default(),
            },
            RawManifest {
                object: RawObject::new(secret("gone", &needles[0])),
                provenance: Provenance::default(),
            },
            RawManifest {
                object: RawObject::new(with_string_data),
                provenance: Provenance::default(),
            },
            RawManifest {
                object: RawObject::new(json!({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": "shop"}})),
                provenance: Provenance::default(),
            },
        ],
        ..DesiredSet::default()
    });
    let live = Arc::new(MemoryLiveSource::new());
    live.set(vec![
        RawLive::new(secret("db", &needles[1])),
        RawLive::new(secret("stray", &needles[1])),
        RawLive::new(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "plain", "namespace": "shop"},
            "data": {"token": b64(needles[1].as_bytes())}})),
        RawLive::new(json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "shop"}})),
    ]);
    let clock = Arc::new(ManualClock::new(t(0)));
    let report = scanner(store.clone(), git.clone(), live.clone(), clock.clone())
        .scan()
        .await
        .expect("scan");
    assert!(
        report.events.len() >= 3,
        "the canary scan must detect drift on Secrets: {:?}",
        report
            .events
            .iter()
            .map(|e| e.drift.id.to_string())
            .collect::<Vec<_>>()
    );
    // a second scan with the values changed again, so that `changed` events are written too
    live.set(vec![
        RawLive::new(secret("db", &needles[0][..10])),
        RawLive::new(secret("stray", &needles[1])),
        RawLive::new(json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "shop"}})),
    ]);
    clock.set(t(60));
    // the second scan keeps an audit index, fed an event whose bodies hold the values (as an
    // API server logging at RequestResponse level sends it): only its metadata is kept
    let audited = {
        let mut spec = EnvironmentSpec::new("prod");
        spec.audit = Some(AuditSpec::default());
        let engine = Engine::new(
            spec,
            Normalizer::new(SecretKey::new(b"conformance-key".to_vec())),
        );
        Scanner::new(engine, git, live, store.clone(), clock)
    };
    let event = json!({"kind": "Event", "apiVersion": "audit.k8s.io/v1",
        "level": "RequestResponse", "auditID": "canary-1", "stage": "ResponseComplete",
        "requestURI": "/api/v1/namespaces/shop/secrets/db?fieldManager=kubectl-edit",
        "verb": "patch", "user": {"username": "alice", "groups": ["system:authenticated"]},
        "sourceIPs": ["10.0.0.7"], "userAgent": "kubectl/v1.20.2",
        "objectRef": {"resource": "secrets", "namespace": "shop", "name": "db", "apiVersion": "v1"},
        "responseStatus": {"code": 200},
        "requestObject": {"data": {"password": b64(needles[0].as_bytes())},
            "stringData": {"password": needles[0]}},
        "responseObject": {"kind": "Secret", "data": {"password": b64(&needles[0].as_bytes()[..10])}},
        "requestReceivedTimestamp": t(59).to_rfc3339(),
        "stageTimestamp": t(59).to_rfc3339()});
    let event = parse_event_line(event.to_string().as_bytes()).expect("an audit event");
    let ingested = audited
        .ingest_audit(&[event], None)
        .await
        .expect("the index is saved");
    assert_eq!(ingested.indexed, 1, "the canary write is indexed");
    audited.scan().await.expect("scan");
    // the Secret's drift is in the store, its values are not (checked by the caller)
    let drifts = store
        .drifts(&DriftQuery {
            kind: Some("Secret".into()),
            status: DriftStatus::All,
            ..DriftQuery::default()
        })
        .await
        .expect("drifts");
    assert!(drifts.total >= 2, "Secret drifts stored");
    let dump = serde_json::to_string(&drifts).expect("serializes");
    for n in &needles {
        assert!(!dump.contains(n.as_str()), "canary in a query answer");
    }
    needles
}
