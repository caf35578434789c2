//! What a hostile test of `serve` found, each kept as a test: a URI that is too long, webhook
//! bodies that are not pushes, a store that takes no writes (`/readyz` and `POST .../scan`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{DateTime, Utc};
use driftguard_core::memory::{ManualClock, MemoryStore};
use driftguard_core::ports::{DriftStore, PruneStats, ScanBatch, ScanSummary, StoreError};
use driftguard_core::query::{DriftQuery, EventQuery, Page};
use driftguard_core::state::{Drift, DriftEvent, DriftRecord};
use driftguard_server::metrics::Metrics;
use driftguard_server::{router, testkit, AppState};
use driftguard_store::BufferedStore;
use driftguard_test_support::build::deployment;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

const SECRET: &str = "hook-secret";

/// A store that can refuse writes, reads, or both, as unavailable.
#[derive(Default)]
struct Switchable {
    inner: MemoryStore,
    no_writes: AtomicBool,
    no_reads: AtomicBool,
}

impl Switchable {
    fn check(&self, flag: &AtomicBool) -> Result<(), StoreError> {
        if flag.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable {
                source: "read-only file system".into(),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl DriftStore for Switchable {
    async fn records(&self, env: &str) -> Result<Vec<DriftRecord>, StoreError> {
        self.check(&self.no_reads)?;
        self.inner.records(env).await
    }
    async fn commit(&self, batch: &ScanBatch) -> Result<(), StoreError> {
        self.check(&self.no_writes)?;
        self.inner.commit(batch).await
    }
    async fn drifts(&self, q: &DriftQuery) -> Result<Page<Drift>, StoreError> {
        self.check(&self.no_reads)?;
        self.inner.drifts(q).await
    }
    async fn events(&self, q: &EventQuery) -> Result<Page<DriftEvent>, StoreError> {
        self.check(&self.no_reads)?;
        self.inner.events(q).await
    }
    async fn scans(&self, e: Option<&str>, l: usize) -> Result<Vec<ScanSummary>, StoreError> {
        self.check(&self.no_reads)?;
        self.inner.scans(e, l).await
    }
    async fn prune(&self, before: DateTime<Utc>) -> Result<PruneStats, StoreError> {
        self.inner.prune(before).await
    }
    async fn health(&self) -> Result<(), StoreError> {
        // reads still work: the old /readyz said "ok" here
        self.check(&self.no_reads)
    }
}

struct Resp {
    status: StatusCode,
    json: Value,
}

async fn call(app: &axum::Router, req: Request<Body>) -> Resp {
    let resp = app.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    Resp {
        status,
        json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

fn environment(store: Arc<dyn DriftStore>) -> Arc<driftguard_server::Environment> {
    let (env, git, live) = testkit::memory_environment(
        "dev",
        store,
        Arc::new(ManualClock::new(testkit::t0())),
        Duration::from_secs(3600),
        Duration::from_secs(3600),
    );
    git.set(testkit::desired(
        "r1",
        vec![deployment("web").replicas(3).image("web:1").build()],
    ));
    live.set(testkit::live(vec![deployment("web")
        .replicas(5)
        .image("web:1")
        .build()]));
    env
}

#[tokio::test]
async fn a_store_that_takes_no_writes_is_reported_by_readyz_with_its_cause() {
    let inner = Arc::new(Switchable::default());
    let buffer = Arc::new(BufferedStore::new(
        inner.clone(),
        100,
        Duration::from_millis(50),
    ));
    let env = environment(buffer.clone());
    let state = AppState::builder(buffer.clone(), vec![env], Arc::new(Metrics::new()))
        .buffer(buffer.clone())
        .build();
    let app = router(state);
    let scan = Request::post("/api/v1/environments/dev/scan")
        .body(Body::empty())
        .expect("req");
    // the disk turns read-only: reads work, writes do not
    inner.no_writes.store(true, Ordering::SeqCst);
    let r = call(&app, scan).await;
    // detection goes on: the scan's batch waits in the buffer
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let r = call(
        &app,
        Request::get("/readyz").body(Body::empty()).expect("req"),
    )
    .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.json);
    assert_eq!(r.json["status"], "degraded", "{}", r.json);
    let store = &r.json["checks"][0];
    assert_eq!(store["name"], "store");
    let reason = store["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("buffered") && reason.contains("read-only file system"),
        "the reason names the buffered writes and their cause: {reason}"
    );
    // writes work again: the buffer drains and /readyz is ready
    inner.no_writes.store(false, Ordering::SeqCst);
    assert!(buffer.flush(Duration::from_secs(5)).await);
    let r = call(
        &app,
        Request::get("/readyz").body(Body::empty()).expect("req"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["status"], "ready");
}

#[tokio::test]
async fn a_store_failure_on_scan_is_503_store_unavailable() {
    let store = Arc::new(Switchable::default());
    let env = environment(store.clone());
    let app = router(AppState::builder(store.clone(), vec![env], Arc::new(Metrics::new())).build());
    store.no_reads.store(true, Ordering::SeqCst);
    let r = call(
        &app,
        Request::post("/api/v1/environments/dev/scan")
            .body(Body::empty())
            .expect("req"),
    )
    .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.json);
    assert_eq!(r.json["error"]["code"], "store_unavailable", "{}", r.json);
    assert!(
        !r.json.to_string().contains("read-only"),
        "no internals: {}",
        r.json
    );
}

fn signed(body: &str) -> Request<Body> {
    Request::post("/api/v1/webhooks/git")
        .header("content-type", "application/json")
        .header("x-github-event", "push")
        .header(
            "x-hub-signature-256",
            driftguard_server::notify::webhook::sign(SECRET, body.as_bytes()),
        )
        .body(Body::from(body.to_owned()))
        .expect("req")
}

#[tokio::test]
async fn a_signed_body_that_is_not_a_push_is_refused() {
    let store = Arc::new(MemoryStore::new());
    let env = Arc::new(
        driftguard_server::Environment::new(
            environment(store.clone()).scanner.clone(),
            Duration::from_secs(60),
            Duration::from_secs(60),
        )
        .with_repositories(vec!["https://git.example/shop.git".into()]),
    );
    let app = router(
        AppState::builder(store, vec![env], Arc::new(Metrics::new()))
            .webhook_secret(Some(SECRET.into()))
            .build(),
    );
    for body in [
        "null",
        "[]",
        "\"push\"",
        "42",
        r#"{"ref": "refs/heads/main"}"#,
    ] {
        let r = call(&app, signed(body)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.json);
        assert_eq!(r.json["error"]["code"], "bad_request", "{body}");
    }
    // a push of another repository triggers nothing; one of ours triggers its environment
    let other = r#"{"repository": {"clone_url": "https://git.example/other.git"}}"#;
    let r = call(&app, signed(other)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(r.json["triggered"], serde_json::json!([]));
    let ours = r#"{"repository": {"clone_url": "https://git.example/shop"}}"#;
    let r = call(&app, signed(ours)).await;
    assert_eq!(r.json["triggered"], serde_json::json!(["dev"]));
}

/// Sends raw bytes on a new connection and reads the answer until the server closes it.
fn raw(port: u16, request: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn body_of(answer: &str) -> Value {
    answer
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_uri_too_long_gets_the_one_error_shape() {
    let store = Arc::new(MemoryStore::new());
    let env = environment(store.clone());
    let state = AppState::builder(store, vec![env], Arc::new(Metrics::new())).build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let stop = tokio_util::sync::CancellationToken::new();
    let s = stop.clone();
    let server = tokio::spawn(driftguard_server::run(listener, state, async move {
        s.cancelled().await
    }));
    for len in [10_000usize, 100_000, 1_000_000] {
        let path = format!("/api/v1/drifts?name={}", "x".repeat(len));
        let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        let answer = tokio::task::spawn_blocking(move || raw(port, req.as_bytes()))
            .await
            .expect("joined");
        assert!(answer.starts_with("HTTP/1.1 414"), "{len}: {answer:.200}");
        let body = body_of(&answer);
        assert_eq!(
            body["error"]["code"], "uri_too_long",
            "{len}: {answer:.300}"
        );
        assert!(body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    // a long URI on a kept-alive connection, after a first request: the router refuses it
    let first = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".to_owned();
    let second = format!(
        "GET /api/v1/drifts?name={} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        "y".repeat(20_000)
    );
    let both = format!("{first}{second}");
    let answer = tokio::task::spawn_blocking(move || raw(port, both.as_bytes()))
        .await
        .expect("joined");
    let second_answer = answer.split("HTTP/1.1 ").nth(2).unwrap_or_default();
    assert!(second_answer.starts_with("414"), "{answer:.400}");
    assert!(second_answer.contains("uri_too_long"), "{answer:.400}");
    // ordinary requests are unaffected
    let answer = tokio::task::spawn_blocking(move || {
        raw(
            port,
            b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        )
    })
    .await
    .expect("joined");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    stop.cancel();
    server.await.expect("joined").expect("served");
}

/// A 100 MB request body (declared by its length, or sent chunked without one) is refused with
/// 413 and the one error shape, by the default body limit (1 MiB, `server.bodyLimit`); the
/// server goes on answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_megabyte_body_is_refused_with_413() {
    let store = Arc::new(MemoryStore::new());
    let env = environment(store.clone());
    let state = AppState::builder(store, vec![env], Arc::new(Metrics::new()))
        .webhook_secret(Some(SECRET.into()))
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let stop = tokio_util::sync::CancellationToken::new();
    let s = stop.clone();
    let server = tokio::spawn(driftguard_server::run(listener, state, async move {
        s.cancelled().await
    }));
    const HUNDRED_MB: usize = 100 * 1024 * 1024;
    for chunked in [false, true] {
        let answer = tokio::task::spawn_blocking(move || {
            let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(30)))
                .expect("timeout");
            let head = if chunked {
                "POST /api/v1/webhooks/git HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nX-GitHub-Event: push\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_owned()
            } else {
                format!("POST /api/v1/webhooks/git HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nX-GitHub-Event: push\r\nContent-Length: {HUNDRED_MB}\r\nConnection: close\r\n\r\n")
            };
            let _ = s.write_all(head.as_bytes());
            let writer = s.try_clone().expect("clone");
            // the body goes out on its own thread until the server stops reading
            let sender = std::thread::spawn(move || {
                let mut w = writer;
                let chunk = vec![b'x'; 1024 * 1024];
                let mut sent = 0;
                while sent < HUNDRED_MB {
                    let ok = if chunked {
                        w.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                            .and_then(|()| w.write_all(&chunk))
                            .and_then(|()| w.write_all(b"\r\n"))
                    } else {
                        w.write_all(&chunk)
                    };
                    if ok.is_err() {
                        break;
                    }
                    sent += chunk.len();
                }
                if chunked {
                    let _ = w.write_all(b"0\r\n\r\n");
                }
                sent
            });
            let mut out = Vec::new();
            let _ = s.read_to_end(&mut out);
            let _ = s.shutdown(std::net::Shutdown::Both);
            let _ = sender.join();
            String::from_utf8_lossy(&out).into_owned()
        })
        .await
        .expect("joined");
        assert!(
            answer.starts_with("HTTP/1.1 413"),
            "chunked {chunked}: {answer:.300}"
        );
        assert_eq!(
            body_of(&answer)["error"]["code"],
            "payload_too_large",
            "{answer:.300}"
        );
    }
    let answer = tokio::task::spawn_blocking(move || {
        raw(
            port,
            b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        )
    })
    .await
    .expect("joined");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    stop.cancel();
    server.await.expect("joined").expect("served");
}
