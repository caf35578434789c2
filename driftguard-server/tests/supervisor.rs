//! Continuous detection: initial scan, live watch, Git poll and push webhook, isolation of a
//! stuck environment, graceful shutdown; and `run` on a real socket.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use driftguard_core::memory::{MemoryGitSource, MemoryLiveSource, MemoryStore};
use driftguard_core::model::Revision;
use driftguard_core::ports::{
    DesiredSet, DriftStore, GitSource, LiveChange, LiveScope, LiveSnapshot, LiveSource, SourceError,
};
use driftguard_core::query::{DriftQuery, DriftStatus};
use driftguard_server::context::SystemClock;
use driftguard_server::metrics::Metrics;
use driftguard_server::state::AppState;
use driftguard_server::supervisor::Supervisor;
use driftguard_server::testkit;
use driftguard_test_support::build::deployment;
use futures_core::stream::BoxStream;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A Git source whose `fetch` reports a pending revision once.
struct FetchGit {
    inner: MemoryGitSource,
    fetches: AtomicUsize,
    pending: Mutex<Option<DesiredSet>>,
}

#[async_trait]
impl GitSource for FetchGit {
    fn describe(&self) -> String {
        "test git".into()
    }
    async fn revision(&self) -> Result<Revision, SourceError> {
        self.inner.revision().await
    }
    async fn desired(&self, r: &Revision) -> Result<DesiredSet, SourceError> {
        self.inner.desired(r).await
    }
    async fn fetch(&self) -> Result<Option<Revision>, SourceError> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        let next = self.pending.lock().expect("lock").take();
        Ok(next.map(|set| {
            let rev = set.revision.clone().expect("revision");
            self.inner.set(set);
            rev
        }))
    }
}

/// A live source whose watch yields what the test sends.
struct WatchLive {
    inner: MemoryLiveSource,
    rx: Mutex<Option<mpsc::UnboundedReceiver<LiveChange>>>,
}

#[async_trait]
impl LiveSource for WatchLive {
    fn describe(&self) -> String {
        "test cluster".into()
    }
    async fn snapshot(&self, scope: &LiveScope) -> Result<LiveSnapshot, SourceError> {
        self.inner.snapshot(scope).await
    }
    async fn watch(&self, _: &LiveScope) -> Result<BoxStream<'static, LiveChange>, SourceError> {
        let rx = self
            .rx
            .lock()
            .expect("lock")
            .take()
            .ok_or(SourceError::Unsupported {
                what: "second watch".into(),
            })?;
        Ok(futures_util::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|c| (c, rx)) },
        )
        .boxed())
    }
}

/// A Git source that never answers.
struct StuckGit;

#[async_trait]
impl GitSource for StuckGit {
    fn describe(&self) -> String {
        "stuck".into()
    }
    async fn revision(&self) -> Result<Revision, SourceError> {
        std::future::pending().await
    }
    async fn desired(&self, _: &Revision) -> Result<DesiredSet, SourceError> {
        std::future::pending().await
    }
}

async fn eventually(what: &str, mut f: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !f().await {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn open_drifts(store: &dyn DriftStore, env: &str) -> usize {
    store
        .drifts(&DriftQuery {
            environment: Some(env.into()),
            status: DriftStatus::Open,
            ..DriftQuery::default()
        })
        .await
        .expect("query")
        .total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_poll_webhook_and_shutdown() {
    let store = Arc::new(MemoryStore::new());
    let git = Arc::new(FetchGit {
        inner: MemoryGitSource::new(),
        fetches: AtomicUsize::new(0),
        pending: Mutex::new(None),
    });
    git.inner.set(testkit::desired(
        "rev-a",
        vec![deployment("web").replicas(3).image("web:1").build()],
    ));
    let (tx, rx) = mpsc::unbounded_channel();
    let live = Arc::new(WatchLive {
        inner: MemoryLiveSource::new(),
        rx: Mutex::new(Some(rx)),
    });
    live.inner.set(testkit::live(vec![deployment("web")
        .replicas(5)
        .image("web:1")
        .build()]));
    let env = testkit::environment(
        "dev",
        git.clone(),
        live.clone(),
        store.clone(),
        Arc::new(SystemClock),
        Duration::from_secs(3600),
        Duration::from_secs(3600),
    );
    let state = AppState::builder(store.clone(), vec![env.clone()], Arc::new(Metrics::new()))
        .webhook_secret(Some("k".into()))
        .build();
    let sup = Supervisor::start(&state, CancellationToken::new());

    // the initial full scan finds the drift
    eventually("initial scan", async || env.status().last_scan.is_some()).await;
    assert_eq!(open_drifts(store.as_ref(), "dev").await, 1);
    eventually("watching", async || env.status().watching).await;

    // a live change re-evaluates the object without a full scan
    let fixed = testkit::live(vec![deployment("web").replicas(3).image("web:1").build()]);
    tx.send(LiveChange::Applied(fixed[0].clone()))
        .expect("send");
    eventually("resolved by the watch", async || {
        open_drifts(store.as_ref(), "dev").await == 0
    })
    .await;
    assert_eq!(
        store.scans(Some("dev"), 10).await.expect("scans").len(),
        1,
        "no extra full scan"
    );

    // a push webhook fetches at once (the poll interval is an hour) and scans the new revision
    *git.pending.lock().expect("lock") = Some(testkit::desired(
        "rev-b",
        vec![deployment("web").replicas(4).image("web:1").build()],
    ));
    live.inner.set(fixed);
    let body = r#"{"repository":{"clone_url":"https://git.example/shop.git"}}"#;
    let resp = tower::ServiceExt::oneshot(
        driftguard_server::router(state.clone()),
        axum::http::Request::post("/api/v1/webhooks/git")
            .header(
                "x-hub-signature-256",
                driftguard_server::notify::webhook::sign("k", body.as_bytes()),
            )
            .header("x-github-event", "push")
            .body(axum::body::Body::from(body))
            .expect("req"),
    )
    .await
    .expect("resp");
    assert_eq!(resp.status(), 202);
    eventually("fetched and rescanned", async || {
        store.scans(Some("dev"), 10).await.expect("scans").len() == 2
    })
    .await;
    assert_eq!(git.fetches.load(Ordering::SeqCst), 1);
    assert_eq!(
        open_drifts(store.as_ref(), "dev").await,
        1,
        "Git moved to 4 replicas, live has 3"
    );
    // the status follows the store's commit (the scan stores, then reports)
    eventually("the status shows the new revision", async || {
        env.status().last_scan.and_then(|s| s.revision).as_deref() == Some("rev-b")
    })
    .await;

    let t = Instant::now();
    sup.shutdown(Duration::from_secs(5)).await;
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_finds_new_commits() {
    let store = Arc::new(MemoryStore::new());
    let git = Arc::new(FetchGit {
        inner: MemoryGitSource::new(),
        fetches: AtomicUsize::new(0),
        pending: Mutex::new(None),
    });
    git.inner.set(testkit::desired(
        "rev-a",
        vec![deployment("web").replicas(3).image("web:1").build()],
    ));
    let live = Arc::new(MemoryLiveSource::new());
    live.set(testkit::live(vec![deployment("web")
        .replicas(3)
        .image("web:1")
        .build()]));
    let env = testkit::environment(
        "dev",
        git.clone(),
        live,
        store.clone(),
        Arc::new(SystemClock),
        Duration::from_millis(50),
        Duration::from_secs(3600),
    );
    let state =
        AppState::builder(store.clone(), vec![env.clone()], Arc::new(Metrics::new())).build();
    let cancel = CancellationToken::new();
    let sup = Supervisor::start(&state, cancel.clone());
    eventually("initial scan", async || env.status().last_scan.is_some()).await;
    assert_eq!(open_drifts(store.as_ref(), "dev").await, 0);
    *git.pending.lock().expect("lock") = Some(testkit::desired(
        "rev-b",
        vec![deployment("web").replicas(3).image("web:2").build()],
    ));
    eventually("reverse drift after the poll", async || {
        open_drifts(store.as_ref(), "dev").await == 1
    })
    .await;
    assert!(env.status().git.up == Some(true));
    // the memory live source cannot watch: detection goes on with scans only
    assert!(!env.status().watching);
    cancel.cancel();
    sup.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_environment_does_not_delay_the_others() {
    let store = Arc::new(MemoryStore::new());
    let stuck = testkit::environment(
        "stuck",
        Arc::new(StuckGit),
        Arc::new(MemoryLiveSource::new()),
        store.clone(),
        Arc::new(SystemClock),
        Duration::from_millis(50),
        Duration::from_secs(3600),
    );
    let (ok, git, live) = testkit::memory_environment(
        "ok",
        store.clone(),
        Arc::new(SystemClock),
        Duration::from_secs(3600),
        Duration::from_secs(3600),
    );
    git.set(testkit::desired(
        "rev-a",
        vec![deployment("web").replicas(3).image("web:1").build()],
    ));
    live.set(testkit::live(vec![deployment("web")
        .replicas(3)
        .image("web:1")
        .build()]));
    let state = AppState::builder(
        store,
        vec![stuck.clone(), ok.clone()],
        Arc::new(Metrics::new()),
    )
    .build();
    let sup = Supervisor::start(&state, CancellationToken::new());
    eventually("ok scanned", async || ok.status().last_scan.is_some()).await;
    assert!(stuck.status().scanning);
    // readiness names the stuck environment
    let resp = tower::ServiceExt::oneshot(
        driftguard_server::router(state.clone()),
        axum::http::Request::get("/readyz")
            .body(axum::body::Body::empty())
            .expect("req"),
    )
    .await
    .expect("resp");
    assert_eq!(resp.status(), 503);
    // shutdown abandons the stuck scan after the grace period
    let t = Instant::now();
    sup.shutdown(Duration::from_millis(200)).await;
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn run_serves_on_a_socket_and_shuts_down() {
    let store = Arc::new(MemoryStore::new());
    let state = AppState::builder(store.clone(), vec![], Arc::new(Metrics::new())).build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    let server = tokio::spawn(driftguard_server::run(listener, state, async move {
        stop.cancelled().await
    }));
    let body = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .expect("get")
        .text()
        .await
        .expect("text");
    assert_eq!(body, r#"{"status":"ok"}"#);
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("stops")
        .expect("no panic")
        .expect("served");

    // without tokens, only loopback
    let open = tokio::net::TcpListener::bind("0.0.0.0:0")
        .await
        .expect("bind");
    let state = AppState::builder(store, vec![], Arc::new(Metrics::new())).build();
    let err = driftguard_server::run(open, state, async {})
        .await
        .expect_err("refused");
    assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
}
