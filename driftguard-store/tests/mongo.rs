//! The conformance suite (over a store made with `connect`, over one made with `connect_lazy`,
//! and over `BufferedStore`), the Secret canary, the outage tests and lazy set-up against
//! MongoDB (SecantusDB).
//!
//! Needs the MongoDB test server: `MONGODB_URI`, from the environment or the test services'
//! `services.env` (`scripts/test-services.sh up`). Without it every test here fails; none runs
//! against a substitute.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use driftguard_core::memory::{ManualClock, MemoryGitSource, MemoryLiveSource, MemoryStore};
use driftguard_core::model::{Provenance, RawLive, RawManifest, RawObject, Revision};
use driftguard_core::ports::{DesiredSet, DriftStore, ScanBatch, StoreError};
use driftguard_core::prelude::{Engine, EnvironmentSpec, Normalizer, Scanner, SecretKey};
use driftguard_core::query::{DriftQuery, DriftStatus, EventQuery};
use driftguard_store::buffered::{BufferHealth, BufferedStore};
use driftguard_store::conformance::t;
use driftguard_store::mongo::{MongoOptions, MongoStore};
use driftguard_test_support::build::deployment;
use driftguard_test_support::MongoServer;
use futures_util::TryStreamExt;
use mongodb::bson::{doc, Document};

/// The test server's URI; fails the test when it is not configured.
fn mongo_uri() -> String {
    driftguard_test_support::mongodb_uri()
}

fn unique_db(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "dgt_{prefix}_{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() % 1_000_000_000)
    )
}

async fn fresh() -> Arc<dyn DriftStore> {
    let uri = mongo_uri();
    let store = MongoStore::connect(&uri, &unique_db("c"))
        .await
        .expect("connects to MongoDB");
    drop_stale_databases(&store).await;
    Arc::new(store)
}

/// Test databases are named `dgt_<kind>_<pid>_...`; those of earlier test processes are dropped
/// (each test's own database stays until the next run, for inspection).
async fn drop_stale_databases(store: &MongoStore) {
    static ONCE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    ONCE.get_or_init(|| async {
        let client = store.database().client().clone();
        let mine = format!("_{}_", std::process::id());
        for name in client.list_database_names().await.unwrap_or_default() {
            if name.starts_with("dgt_") && !name.contains(&mine) {
                let _ = client.database(&name).drop().await;
            }
        }
    })
    .await;
}

driftguard_store::conformance_tests!(fresh);

/// `BufferedStore` over MongoDB.
mod buffered {
    use std::sync::Arc;
    use std::time::Duration;

    use driftguard_core::ports::DriftStore;
    use driftguard_store::BufferedStore;

    async fn fresh() -> Arc<dyn DriftStore> {
        Arc::new(BufferedStore::new(
            super::fresh().await,
            100,
            Duration::from_millis(50),
        ))
    }

    driftguard_store::conformance_tests!(fresh);
}

/// A store made with `connect_lazy` on the live server: set up by its first call.
mod lazy {
    use std::sync::Arc;

    use driftguard_core::ports::DriftStore;
    use driftguard_store::mongo::{MongoOptions, MongoStore};

    async fn fresh() -> Arc<dyn DriftStore> {
        let options = MongoOptions::new(super::mongo_uri(), super::unique_db("lazy"));
        let store = MongoStore::connect_lazy(options)
            .await
            .expect("a well-formed URI");
        assert!(!store.is_set_up(), "nothing done before the first call");
        Arc::new(store)
    }

    driftguard_store::conformance_tests!(fresh);
}

/// Every method of `store`, each as one call (the batch is not empty).
async fn call_every_method(store: &dyn DriftStore, name: usize) -> Result<(), StoreError> {
    let id = driftguard_core::id::ResourceId::new("prod", "", "ConfigMap", Some("ns"), "cm");
    let batch = ScanBatch {
        environment: "prod".into(),
        deletes: vec![id.clone()],
        ..ScanBatch::default()
    };
    match name {
        0 => store.records("prod").await.map(drop),
        1 => store.commit(&batch).await,
        2 => store.drifts(&DriftQuery::default()).await.map(drop),
        3 => store.events(&EventQuery::default()).await.map(drop),
        4 => store.scans(None, 10).await.map(drop),
        5 => store.prune(t(0)).await.map(drop),
        6 => store.record(&id).await.map(drop),
        7 => store.drift("ep").await.map(drop),
        8 => store.history(&id, 10).await.map(drop),
        9 => store.health().await,
        10 => store.delivered_until("webhook").await.map(drop),
        _ => store.set_delivered_until("webhook", t(1)).await,
    }
}

const METHODS: usize = 12;

/// Made while nothing listens on its port, a lazy store is made at once, and then every call
/// fails as `Unavailable` within the server selection timeout (so `BufferedStore` buffers),
/// alone or many at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lazy_store_on_a_dead_port_is_unavailable_quickly() {
    let timeout = Duration::from_secs(1);
    let slack = Duration::from_millis(1500);
    let mut o = MongoOptions::new(
        format!(
            "mongodb://127.0.0.1:{}/?directConnection=true",
            driftguard_test_support::free_port()
        ),
        "dead",
    );
    o.server_selection_timeout = timeout;
    let started = Instant::now();
    let store = Arc::new(MongoStore::connect_lazy(o).await.expect("made without IO"));
    assert!(started.elapsed() < Duration::from_millis(500), "no waiting");
    for m in 0..METHODS {
        let started = Instant::now();
        let err = call_every_method(store.as_ref(), m)
            .await
            .expect_err("no server");
        let took = started.elapsed();
        assert!(
            matches!(err, StoreError::Unavailable { .. }),
            "method {m}: {err:?} is Unavailable"
        );
        assert!(took < timeout + slack, "method {m} took {took:?}");
    }
    assert!(!store.is_set_up());
    // many calls at once: one set-up attempt at a time, and those that waited for it fail
    // with it instead of each waiting out another timeout
    let started = Instant::now();
    let calls: Vec<_> = (0..METHODS)
        .map(|m| {
            let store = store.clone();
            tokio::spawn(async move { call_every_method(store.as_ref(), m).await })
        })
        .collect();
    for c in calls {
        let err = c.await.expect("task").expect_err("no server");
        assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    }
    let took = started.elapsed();
    assert!(
        took < 2 * timeout + slack,
        "{METHODS} calls at once took {took:?}"
    );
    // the buffering wrapper acknowledges, and says why it is degraded
    let buffered = BufferedStore::new(store.clone(), 10, Duration::from_secs(60));
    let b = driftguard_store::conformance::dataset().remove(0);
    buffered.commit(&b).await.expect("buffered");
    match buffered.status() {
        BufferHealth::Degraded { queued, last_error } => {
            assert_eq!(queued, 1);
            assert!(
                last_error.starts_with("store unavailable: ") && last_error.len() > 30,
                "the cause, not only that it failed: {last_error}"
            );
        }
        BufferHealth::Healthy => panic!("degraded"),
    }
    // a malformed URI is the one thing that fails at once
    let err = MongoStore::connect_lazy(MongoOptions::new("mongodb://", "x"))
        .await
        .expect_err("malformed");
    assert!(matches!(err, StoreError::Backend { .. }), "{err:?}");
}

/// A lazy store made while its server is down sets itself up (indexes, TTL) on the first call
/// after the server starts, and a buffered store over it drains.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lazy_store_sets_up_when_the_server_starts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = MongoServer::stopped(dir.path().join("data"));
    let mut o = MongoOptions::new(server.uri(), "late");
    o.server_selection_timeout = Duration::from_millis(1500);
    o.retention = Some(Duration::from_secs(3600));
    let store = Arc::new(MongoStore::connect_lazy(o).await.expect("made"));
    let buffered = BufferedStore::new(store.clone(), 100, Duration::from_millis(200));
    let reference = MemoryStore::new();
    let batches = driftguard_store::conformance::dataset();
    let (early, late) = batches.split_at(3);
    for b in early {
        buffered.commit(b).await.expect("acknowledged while down");
        reference.commit(b).await.expect("reference");
    }
    assert!(matches!(
        store.health().await,
        Err(StoreError::Unavailable { .. })
    ));
    assert!(!store.is_set_up());
    assert_eq!(buffered.queued(), early.len());

    server.spawn();
    assert!(
        buffered.flush(Duration::from_secs(60)).await,
        "drains once the server is up"
    );
    assert!(
        store.is_set_up(),
        "set up by the first call that reached it"
    );
    for b in late {
        buffered.commit(b).await.expect("commits");
        reference.commit(b).await.expect("reference");
    }
    assert_eq!(buffered.queued(), 0, "written straight through");
    let names = |coll: &'static str| {
        let db = store.database().clone();
        async move {
            db.collection::<Document>(coll)
                .list_index_names()
                .await
                .expect("indexes")
        }
    };
    assert!(names("records").await.contains(&"identity".to_owned()));
    assert!(names("events").await.contains(&"ttl_at_date".to_owned()));
    let q = EventQuery {
        limit: 100_000,
        ..EventQuery::default()
    };
    assert_eq!(
        store.events(&q).await.expect("events"),
        reference.events(&q).await.expect("events")
    );
    let dq = DriftQuery {
        status: DriftStatus::All,
        limit: 10_000,
        ..DriftQuery::default()
    };
    assert_eq!(
        store.drifts(&dq).await.expect("drifts"),
        reference.drifts(&dq).await.expect("drifts")
    );
    server.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexes_and_ttl_are_created() {
    let uri = mongo_uri();
    let mut o = MongoOptions::new(&uri, unique_db("ix"));
    o.retention = Some(Duration::from_secs(3600));
    let store = MongoStore::connect_with(o).await.expect("connects");
    let names = |coll: &'static str| {
        let db = store.database().clone();
        async move {
            db.collection::<Document>(coll)
                .list_index_names()
                .await
                .expect("indexes")
        }
    };
    assert!(names("records").await.contains(&"identity".to_owned()));
    assert!(names("events").await.contains(&"ttl_at_date".to_owned()));
    assert!(names("scans")
        .await
        .contains(&"ttl_started_date".to_owned()));
    // a new retention replaces the TTL index; none drops it
    store
        .set_retention(Some(Duration::from_secs(60)))
        .await
        .expect("retention");
    store.set_retention(None).await.expect("no retention");
    assert!(!names("events").await.contains(&"ttl_at_date".to_owned()));
    // the unique identity index refuses a second record of the same object
    let coll = store.database().collection::<Document>("records");
    let d =
        doc! {"env": "e", "group": "", "kind": "K", "namespace": "n", "name": "x", "body": "{}"};
    let mut d1 = d.clone();
    d1.insert("_id", "a");
    let mut d2 = d;
    d2.insert("_id", "b");
    coll.insert_one(d1).await.expect("first");
    assert!(coll.insert_one(d2).await.is_err(), "identity is unique");
    store.database().drop().await.expect("drop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_canary_is_not_in_any_collection() {
    let uri = mongo_uri();
    let store = MongoStore::connect(&uri, &unique_db("canary"))
        .await
        .expect("connects");
    let needles = driftguard_store::conformance::write_secret_canary(Arc::new(store.clone())).await;
    let db = store.database();
    let mut docs = 0;
    for coll in db.list_collection_names().await.expect("collections") {
        let all: Vec<Document> = db
            .collection::<Document>(&coll)
            .find(doc! {})
            .await
            .expect("find")
            .try_collect()
            .await
            .expect("read");
        for d in &all {
            docs += 1;
            let text = format!("{d}");
            for n in &needles {
                assert!(!text.contains(n.as_str()), "canary found in {coll}");
            }
        }
    }
    assert!(docs > 5, "the canary scan stored documents ({docs})");
    db.drop().await.expect("drop");
}

/// The database is killed during scans and started again: the scanner keeps detecting through
/// the buffered store (health degraded), and after recovery every acknowledged event is stored
/// exactly once and the scans go on exactly like scans over the in-memory reference.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_killed_during_scans_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = MongoServer::start(dir.path().join("data"));
    let mut o = MongoOptions::new(server.uri(), "outage");
    o.server_selection_timeout = Duration::from_millis(1500);
    let mongo = Arc::new(MongoStore::connect_with(o).await.expect("connects"));
    let buffered = Arc::new(BufferedStore::new(
        mongo.clone(),
        10_000,
        Duration::from_millis(200),
    ));
    let reference: Arc<dyn DriftStore> = Arc::new(MemoryStore::new());

    let names: Vec<String> = (0..30).map(|i| format!("web-{i}")).collect();
    let git = Arc::new(MemoryGitSource::new());
    git.set(DesiredSet {
        revision: Some(Revision::plain("r1")),
        objects: names
            .iter()
            .map(|n| RawManifest {
                object: RawObject::new(deployment(n).replicas(3).build()),
                provenance: Provenance::default(),
            })
            .collect(),
        ..DesiredSet::default()
    });
    let live = Arc::new(MemoryLiveSource::new());
    let clock = Arc::new(ManualClock::new(t(0)));
    let engine = || {
        Engine::new(
            EnvironmentSpec::new("prod"),
            Normalizer::new(SecretKey::new(b"k".to_vec())),
        )
    };
    let scanner = Scanner::new(
        engine(),
        git.clone(),
        live.clone(),
        buffered.clone(),
        clock.clone(),
    );
    let ref_scanner = Scanner::new(
        engine(),
        git,
        live.clone(),
        reference.clone(),
        clock.clone(),
    );

    let mut acked = Vec::new();
    let mut saw_degraded = false;
    for step in 0..12i64 {
        // every step some objects drift, change, or go back
        live.set(
            names
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    let r = if (i as i64 + step) % 3 == 0 {
                        3
                    } else {
                        3 + step % 4 + 1
                    };
                    RawLive::new(deployment(n).replicas(r).build())
                })
                .collect(),
        );
        clock.set(t(60 * step));
        let scan = {
            let s = scanner.scan();
            if step == 3 {
                // kill the database while this scan writes
                let (r, ()) = tokio::join!(s, async {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    server.kill();
                });
                r
            } else {
                s.await
            }
        };
        let report = scan.expect("scan goes on while the database is down");
        let expected = ref_scanner.scan().await.expect("reference scan");
        assert_eq!(report.events, expected.events, "step {step}");
        acked.extend(report.events.into_iter().map(|e| e.event_id));
        if matches!(buffered.status(), BufferHealth::Degraded { .. }) {
            saw_degraded = true;
            assert!(buffered.health().await.is_err(), "degraded health");
        }
        if step == 8 {
            server.spawn();
        }
    }
    assert!(saw_degraded, "the outage was noticed");
    assert!(
        buffered.flush(Duration::from_secs(90)).await,
        "the buffer drains after recovery"
    );
    assert_eq!(buffered.status(), BufferHealth::Healthy);
    buffered.health().await.expect("healthy again");

    // every acknowledged event once, and the same history as the reference
    let q = EventQuery {
        limit: 1_000_000,
        ..EventQuery::default()
    };
    let stored = mongo.events(&q).await.expect("events");
    let mut ids: Vec<&str> = stored.items.iter().map(|e| e.event_id.as_str()).collect();
    ids.sort_unstable();
    let mut want: Vec<&str> = acked.iter().map(String::as_str).collect();
    want.sort_unstable();
    assert_eq!(ids, want, "every acknowledged event exactly once");
    assert_eq!(stored, reference.events(&q).await.expect("events"));
    let dq = DriftQuery {
        status: DriftStatus::All,
        limit: 10_000,
        ..DriftQuery::default()
    };
    assert_eq!(
        mongo.drifts(&dq).await.expect("drifts"),
        reference.drifts(&dq).await.expect("drifts")
    );
    assert_eq!(
        mongo.records("prod").await.expect("records"),
        reference.records("prod").await.expect("records")
    );
    assert_eq!(
        mongo.scans(Some("prod"), 100).await.expect("scans").len(),
        12
    );
    // and the next scan continues on the recovered database
    clock.set(t(60 * 20));
    live.set(
        names
            .iter()
            .map(|n| RawLive::new(deployment(n).replicas(3).build()))
            .collect(),
    );
    let report = scanner.scan().await.expect("scan after recovery");
    let expected = ref_scanner.scan().await.expect("reference scan");
    assert_eq!(report.events, expected.events);
    assert!(!report.events.is_empty(), "everything resolves");
    assert_eq!(buffered.queued(), 0, "written straight through");
    assert_eq!(
        mongo.events(&q).await.expect("events"),
        reference.events(&q).await.expect("events")
    );
    mongo.database().drop().await.expect("drop");
}

/// The open-drift view (`open_drifts`) is derived data: lost or never written (a database from
/// before it existed), it is rebuilt from the episodes, by a query and by a write alike; two
/// stores on one database keep it in step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_drift_view_is_rebuilt_and_shared() {
    use driftguard_store::conformance::{dataset, drift_queries};
    let uri = mongo_uri();
    let db = unique_db("view");
    let a = MongoStore::connect(&uri, &db).await.expect("connects");
    let b = MongoStore::connect(&uri, &db).await.expect("connects");
    let reference = MemoryStore::new();
    let same = |when: &'static str| {
        let (a, b, reference) = (&a, &b, &reference);
        async move {
            for q in drift_queries() {
                let want = reference.drifts(&q).await.expect("reference");
                for s in [a, b] {
                    assert_eq!(s.drifts(&q).await.expect("drifts"), want, "{when}: {q:?}");
                }
            }
        }
    };
    let view = a.database().collection::<Document>("open_drifts");
    let batches = dataset();
    let half = batches.len() / 2;
    for (i, batch) in batches[..half].iter().enumerate() {
        let s = if i % 2 == 0 { &a } else { &b };
        s.commit(batch).await.expect("commit");
        reference.commit(batch).await.expect("commit");
    }
    same("written by two stores").await;
    view.drop().await.expect("drop the view");
    same("view rebuilt by queries").await;
    view.drop().await.expect("drop the view");
    for batch in &batches[half..] {
        a.commit(batch).await.expect("commit");
        reference.commit(batch).await.expect("commit");
    }
    same("view rebuilt by writes").await;
    a.database().drop().await.expect("drop");
}
