//! Handler tests (tower::ServiceExt::oneshot) for every endpoint, and the OpenAPI document
//! checked against the real responses.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use driftguard_core::memory::{ManualClock, MemoryGitSource, MemoryLiveSource, MemoryStore};
use driftguard_core::ports::DriftStore;
use driftguard_server::metrics::Metrics;
use driftguard_server::state::AppState;
use driftguard_server::testkit;
use driftguard_server::{router, Environment};
use driftguard_test_support::build::deployment;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

const TOKEN: &str = "s3cret-token";
const HOOK_SECRET: &str = "hook-secret";

struct Fixture {
    app: Router,
    state: AppState,
    #[allow(dead_code)]
    git: Arc<MemoryGitSource>,
    live: Arc<MemoryLiveSource>,
    clock: Arc<ManualClock>,
}

/// `dev` runs on memory sources (web has 5 replicas live, 3 in Git); `prod` is filled with
/// 40 hand-made drifts (every fourth resolved).
async fn fixture() -> Fixture {
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(testkit::t0()));
    let (dev, git, live) = testkit::memory_environment(
        "dev",
        store.clone(),
        clock.clone(),
        Duration::from_secs(3600),
        Duration::from_secs(3600),
    );
    git.set(testkit::desired(
        "rev-a",
        vec![
            deployment("web").replicas(3).image("web:1").build(),
            deployment("api").replicas(2).image("api:1").build(),
        ],
    ));
    live.set(testkit::live(vec![
        deployment("web").replicas(5).image("web:1").build(),
        deployment("api").replicas(2).image("api:1").build(),
    ]));
    let (prod, _, _) = testkit::memory_environment(
        "prod",
        store.clone(),
        clock.clone(),
        Duration::from_secs(3600),
        Duration::from_secs(3600),
    );
    testkit::fill_store(store.as_ref(), "prod", 40, 4)
        .await
        .expect("store filled");
    let state = AppState::builder(store, vec![dev, prod], Arc::new(Metrics::new()))
        .tokens(vec![TOKEN.into()])
        .webhook_secret(Some(HOOK_SECRET.into()))
        .clock(clock.clone())
        .body_limit(64 * 1024)
        .build();
    Fixture {
        app: router(state.clone()),
        state,
        git,
        live,
        clock,
    }
}

struct Resp {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    text: String,
    json: Value,
}

async fn send(app: &Router, req: Request<Body>) -> Resp {
    let resp = app.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .expect("body read")
        .to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Resp {
        status,
        headers,
        text,
        json,
    }
}

async fn get(app: &Router, uri: &str) -> Resp {
    let req = Request::get(uri)
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .expect("request");
    send(app, req).await
}

async fn post(app: &Router, uri: &str) -> Resp {
    let req = Request::post(uri)
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .expect("request");
    send(app, req).await
}

fn assert_error(r: &Resp, status: StatusCode, code: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.json["error"]["code"], code, "{}", r.text);
    assert!(
        r.json["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{}",
        r.text
    );
    assert_eq!(
        r.json.as_object().map(|o| o.len()),
        Some(1),
        "only `error`: {}",
        r.text
    );
}

#[tokio::test]
async fn health_and_metrics_need_no_token() {
    let f = fixture().await;
    let r = send(
        &f.app,
        Request::get("/healthz").body(Body::empty()).expect("req"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json, json!({"status": "ok"}));
    let r = send(
        &f.app,
        Request::get("/metrics").body(Body::empty()).expect("req"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.headers["content-type"]
        .to_str()
        .expect("ascii")
        .starts_with("application/openmetrics-text"));
    assert!(
        r.text.contains("# TYPE driftguard_drift_score gauge"),
        "{}",
        r.text
    );
    let r = send(
        &f.app,
        Request::get("/readyz").body(Body::empty()).expect("req"),
    )
    .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "no scan yet");
    assert_eq!(r.json["ready"], false);
    let reasons: Vec<&str> = r.json["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter_map(|c| c["reason"].as_str())
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("first scan pending")),
        "{reasons:?}"
    );
    assert_eq!(
        r.json["checks"][0],
        json!({"name": "store", "ok": true, "reason": null})
    );
}

#[tokio::test]
async fn authentication_is_required_and_checked() {
    let f = fixture().await;
    for uri in [
        "/api/v1/drifts",
        "/api/v1/environments",
        "/api/v1/openapi.json",
        "/api/v1/events",
        "/api/v1/scans",
    ] {
        let r = send(&f.app, Request::get(uri).body(Body::empty()).expect("req")).await;
        assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");
        assert_eq!(r.headers["www-authenticate"], "Bearer");
        let r = send(
            &f.app,
            Request::get(uri)
                .header("authorization", "Bearer wrong")
                .body(Body::empty())
                .expect("req"),
        )
        .await;
        assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");
        let r = send(
            &f.app,
            Request::get(uri)
                .header("authorization", format!("Basic {TOKEN}"))
                .body(Body::empty())
                .expect("req"),
        )
        .await;
        assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");
        assert_eq!(get(&f.app, uri).await.status, StatusCode::OK, "{uri}");
    }
    let r = send(
        &f.app,
        Request::post("/api/v1/environments/dev/scan")
            .body(Body::empty())
            .expect("req"),
    )
    .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    // a refused request with an unread body: the connection is not kept, and the client is
    // told so (no `Connection: close` when there is no body to leave unread)
    assert!(!r.headers.contains_key("connection"), "{:?}", r.headers);
    for token in [None, Some("Bearer wrong")] {
        let mut req = Request::post("/mcp")
            .header("content-type", "application/json")
            .header("content-length", "2");
        if let Some(t) = token {
            req = req.header("authorization", t);
        }
        let r = send(&f.app, req.body(Body::from("{}")).expect("req")).await;
        assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");
        assert_eq!(r.headers["connection"], "close", "{token:?}");
    }
}

#[tokio::test]
async fn without_tokens_the_api_is_open() {
    let store = Arc::new(MemoryStore::new());
    let state = AppState::builder(store, vec![], Arc::new(Metrics::new())).build();
    let app = router(state);
    let r = send(
        &app,
        Request::get("/api/v1/drifts")
            .body(Body::empty())
            .expect("req"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn environments_scan_and_status() {
    let f = fixture().await;
    let r = get(&f.app, "/api/v1/environments").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["items"][0]["name"], "dev");
    assert_eq!(r.json["items"][0]["status"], "pending");
    assert_eq!(r.json["items"][0]["sources"][0]["source"], "git");

    let r = post(&f.app, "/api/v1/environments/dev/scan").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["environment"], "dev");
    assert_eq!(r.json["counts"]["modified"], 1);
    assert_eq!(r.json["counts"]["tracked"], 2);

    let r = get(&f.app, "/api/v1/environments/dev").await;
    assert_eq!(r.json["status"], "drifted", "{}", r.text);
    assert_eq!(r.json["open_drifts"], 1);
    assert!(r.json["score"].as_f64().expect("score") > 0.0);
    assert_eq!(r.json["sources"][1]["up"], true);

    let r = get(&f.app, "/api/v1/drifts?environment=dev").await;
    assert_eq!(r.json["total"], 1);
    let d = &r.json["items"][0];
    assert_eq!(d["object"]["reference"], "Deployment.apps/shop/web");
    assert_eq!(d["paths"], json!(["spec.replicas"]));
    assert_eq!(d["findings"], json!([]), "scaled up: nothing to judge");
    assert_eq!(d["risk"], d["severity"]);
    // first scan, no history: the direction is unknown
    assert_eq!(d["direction"], "unknown");

    // live fixed: scanning again resolves it
    f.live.set(testkit::live(vec![
        deployment("web").replicas(3).image("web:1").build(),
        deployment("api").replicas(2).image("api:1").build(),
    ]));
    let r = post(&f.app, "/api/v1/environments/dev/scan").await;
    assert_eq!(r.json["counts"]["in_sync"], 2, "{}", r.text);
    // the same query again: the scan invalidated the cached answer
    let r = get(&f.app, "/api/v1/drifts?environment=dev").await;
    assert_eq!(r.json["total"], 0, "{}", r.text);
    let r = get(&f.app, "/api/v1/drifts?environment=dev&status=resolved").await;
    assert_eq!(r.json["total"], 1);
    assert_eq!(r.json["items"][0]["resolution"], "reverted");

    // a broken cluster: 502 with a clear message, status says error
    f.live.set_unreachable();
    let r = post(&f.app, "/api/v1/environments/dev/scan").await;
    assert_error(&r, StatusCode::BAD_GATEWAY, "scan_failed");
    assert!(r.json["error"]["message"]
        .as_str()
        .expect("msg")
        .contains("live state"));
    let r = get(&f.app, "/api/v1/environments/dev").await;
    assert_eq!(r.json["status"], "error");
    assert_eq!(r.json["sources"][1]["up"], false);

    let r = post(&f.app, "/api/v1/environments/nope/scan").await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    let r = get(&f.app, "/api/v1/environments/nope").await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
}

/// A discovered environment carries its tool's verdict (#31): `tool` in the API, the
/// `driftguard_tool_*` gauges in /metrics; the file's environments have neither.
#[tokio::test]
async fn a_discovered_environment_shows_its_tools_verdict() {
    use driftguard_server::config::discover::{Tool, ToolVerdict};
    use driftguard_server::verdicts::ToolStatus;

    let f = fixture().await;
    let r = get(&f.app, "/api/v1/environments/dev").await;
    assert_eq!(r.json.get("tool"), None, "{}", r.text);

    let object = json!({"status": {
        "sync": {"status": "Synced", "revision": "53e28ff20cc530b9ada2173fbbd64d48338583ba"},
        "health": {"status": "Progressing"},
        "operationState": {"phase": "Running"},
        "reconciledAt": "2024-05-01T11:58:00Z"
    }});
    f.state.verdicts.set(
        "dev",
        ToolStatus {
            tool: Tool::ArgoCd,
            kind: "Application".into(),
            namespace: "argocd".into(),
            name: "shop".into(),
            source: None,
            verdict: ToolVerdict::read(Tool::ArgoCd, "Application", &object, None, &[]),
            labels: Default::default(),
            observed_at: testkit::t0(),
        },
        &f.state.metrics,
    );
    let r = get(&f.app, "/api/v1/environments/dev").await;
    assert_eq!(
        r.json["tool"],
        json!({
            "tool": "argocd", "kind": "Application", "namespace": "argocd", "name": "shop",
            "in_sync": true, "healthy": false, "sync": "Synced", "health": "Progressing",
            "operation": "Running", "revision": "53e28ff20cc530b9ada2173fbbd64d48338583ba",
            "reconciled_at": "2024-05-01T11:58:00Z", "suspended": false,
            "observed_at": testkit::t0(),
        }),
        "{}",
        r.text
    );
    let r = get(&f.app, "/api/v1/environments").await;
    let items = r.json["items"].as_array().expect("items");
    let by_name = |n: &str| items.iter().find(|e| e["name"] == n).expect(n);
    assert_eq!(by_name("dev")["tool"]["sync"], "Synced", "{}", r.text);
    assert_eq!(by_name("prod").get("tool"), None, "{}", r.text);

    let r = get(&f.app, "/metrics").await;
    assert!(
        r.text
            .contains(r#"driftguard_tool_in_sync{environment="dev",tool="argocd"} 1"#),
        "{}",
        r.text
    );
    assert!(
        r.text
            .contains(r#"driftguard_tool_healthy{environment="dev",tool="argocd"} 0"#),
        "{}",
        r.text
    );
    assert!(
        !r.text.contains(r#"environment="prod",tool="#),
        "{}",
        r.text
    );

    // the dashboard: the environment's drift table says what Argo CD says, beside DriftGuard
    let login = send(
        &f.app,
        Request::post("/login")
            .header("host", "127.0.0.1:8080")
            .header("origin", "http://127.0.0.1:8080")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(format!("token={TOKEN}&next=%2Fdrifts")))
            .expect("request"),
    )
    .await;
    let session = login
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("driftguard_session="))
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_owned();
    let page = |uri: &'static str| {
        let app = f.app.clone();
        let session = session.clone();
        async move {
            send(
                &app,
                Request::get(uri)
                    .header("host", "127.0.0.1:8080")
                    .header("cookie", format!("driftguard_session={session}"))
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
        }
    };
    let dev = page("/drifts?environment=dev").await;
    assert_eq!(dev.status, StatusCode::OK, "{}", dev.text);
    assert!(
        dev.text
            .contains("What Argo CD says <span class=\"muted\">of Application argocd/shop</span>"),
        "{}",
        dev.text
    );
    assert!(
        dev.text
            .contains("Argo CD says Synced, Progressing; DriftGuard has not scanned it yet."),
        "{}",
        dev.text
    );
    assert!(
        dev.text
            .contains("<dt>Last sync</dt><dd class=\"status-pending\">Running</dd>"),
        "{}",
        dev.text
    );
    let prod = page("/drifts?environment=prod").await;
    assert_eq!(prod.status, StatusCode::OK, "{}", prod.text);
    assert!(!prod.text.contains("tool-verdict"), "{}", prod.text);
    let all = page("/drifts").await;
    assert!(!all.text.contains("tool-verdict"), "{}", all.text);
}

#[tokio::test]
async fn drifts_filters_and_pagination() {
    let f = fixture().await;
    // 40 in prod, 10 resolved (i % 4 == 3), so 30 open
    let r = get(&f.app, "/api/v1/drifts?environment=prod").await;
    assert_eq!(r.json["total"], 30, "{}", r.text);
    // default sort: severity first (the critical ones, i % 4 == 3, are the resolved ones)
    assert_eq!(r.json["items"][0]["severity"], "high");
    let r = get(&f.app, "/api/v1/drifts?environment=prod&status=all").await;
    assert_eq!(r.json["total"], 40);
    let r = get(&f.app, "/api/v1/drifts?environment=prod&status=resolved").await;
    assert_eq!(r.json["total"], 10);
    assert!(r.json["items"]
        .as_array()
        .expect("items")
        .iter()
        .all(|d| d["status"] == "resolved"));

    type Pred = dyn Fn(&Value) -> bool;
    let cases: &[(&str, &Pred)] = &[
        ("namespace=ns-1", &|d| d["object"]["namespace"] == "ns-1"),
        ("kind=Deployment", &|d| d["object"]["kind"] == "Deployment"),
        ("name=web-1*", &|d| {
            d["object"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("web-1"))
        }),
        ("drift=missing", &|d| d["drift"] == "missing"),
        ("direction=reverse", &|d| d["direction"] == "reverse"),
        ("severity=high", &|d| {
            d["severity"] == "high" || d["severity"] == "critical"
        }),
    ];
    for (q, pred) in cases {
        let r = get(&f.app, &format!("/api/v1/drifts?environment=prod&{q}")).await;
        assert_eq!(r.status, StatusCode::OK, "{q}: {}", r.text);
        let items = r.json["items"].as_array().expect("items");
        assert!(!items.is_empty(), "{q}");
        assert!(items.iter().all(pred), "{q}: {}", r.text);
        assert_eq!(r.json["total"].as_u64(), Some(items.len() as u64), "{q}");
    }
    let r = get(&f.app, "/api/v1/drifts?kind=ConfigMap").await;
    assert_eq!(r.json["total"], 0);

    // pagination walks every item once, in a stable order
    let mut seen = Vec::new();
    let mut offset = Some(0u64);
    while let Some(o) = offset {
        let r = get(
            &f.app,
            &format!("/api/v1/drifts?environment=prod&sort=detected&limit=7&offset={o}"),
        )
        .await;
        assert_eq!(r.json["limit"], 7);
        assert_eq!(r.json["offset"], o);
        for d in r.json["items"].as_array().expect("items") {
            seen.push(d["episode"].as_str().expect("episode").to_owned());
        }
        offset = r.json["next_offset"].as_u64();
    }
    assert_eq!(seen.len(), 30);
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "sort=detected follows detection order");
}

/// Answers hold drifts and events: no browser or proxy may keep them; and a name glob built
/// to make a backtracking matcher take exponential time answers at once (the server keeps
/// answering `/healthz` afterwards).
#[tokio::test]
async fn answers_are_not_cached_and_hostile_globs_answer_at_once() {
    let f = fixture().await;
    for uri in [
        "/api/v1/drifts?environment=prod",
        "/api/v1/environments",
        "/api/v1/events",
        "/api/v1/drifts/nope",
    ] {
        let r = get(&f.app, uri).await;
        assert_eq!(
            r.headers.get("cache-control").and_then(|v| v.to_str().ok()),
            Some("no-store"),
            "{uri}"
        );
    }
    // a drift with a long name: the matcher's worst case
    let long = "a".repeat(200);
    f.git.set(testkit::desired(
        "rev-b",
        vec![deployment(&long).replicas(3).image("web:1").build()],
    ));
    f.live.set(testkit::live(vec![deployment(&long)
        .replicas(5)
        .image("web:1")
        .build()]));
    assert_eq!(
        post(&f.app, "/api/v1/environments/dev/scan").await.status,
        StatusCode::OK
    );
    let r = get(
        &f.app,
        &format!("/api/v1/drifts?status=all&name={}*", "*a".repeat(30)),
    )
    .await;
    assert_eq!(r.json["total"], 1, "{}", r.text);
    let hostile = format!("/api/v1/drifts?status=all&name={}b", "*a".repeat(30));
    for _ in 0..3 {
        let r = tokio::time::timeout(Duration::from_secs(20), get(&f.app, &hostile))
            .await
            .expect("a hostile glob answers within 20 s");
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    assert_eq!(get(&f.app, "/healthz").await.status, StatusCode::OK);
}

#[tokio::test]
async fn bad_parameters_are_refused_with_one_shape() {
    let f = fixture().await;
    for q in [
        "limit=0",
        "limit=abc",
        "limit=5000",
        "offset=-1",
        "severity=bogus",
        "status=maybe",
        "drift=weird",
        "direction=sideways",
        "sort=random",
        "colour=blue",
    ] {
        let r = get(&f.app, &format!("/api/v1/drifts?{q}")).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    }
    let r = get(&f.app, "/api/v1/drifts?environment=nowhere").await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    for q in [
        "since=yesterday",
        "until=2024-13-01T00:00:00Z",
        "object=Deployment.apps/shop/web",
        "environment=prod&object=nonsense",
        "event=exploded",
        "since=2024-05-02T00:00:00Z&until=2024-05-01T00:00:00Z",
    ] {
        let r = get(&f.app, &format!("/api/v1/events?{q}")).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    }
    let r = get(&f.app, "/api/v1/scans?limit=x").await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    let r = get(&f.app, "/api/v1/nothing-here").await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    let r = send(
        &f.app,
        Request::builder()
            .method(Method::DELETE)
            .uri("/api/v1/drifts")
            .header("authorization", format!("Bearer {TOKEN}"))
            .body(Body::empty())
            .expect("req"),
    )
    .await;
    assert_error(&r, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
}

#[tokio::test]
async fn one_drift_with_diff_and_attribution() {
    let f = fixture().await;
    let r = get(&f.app, "/api/v1/drifts/prod-00000000").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["drift"]["episode"], "prod-00000000");
    assert_eq!(
        r.json["fields"],
        json!([{"path": "spec.replicas", "desired": 3, "live": 5}])
    );
    assert_eq!(
        r.json["attribution"]["owners"][0]["manager"],
        "kubectl-edit"
    );
    assert_eq!(r.json["attribution"]["who"], "kubectl-edit");
    assert_eq!(r.json["provenance"]["file"], "deploy.yaml");
    // the findings, and the risk they give the drift: a low drift with a medium finding
    assert_eq!(r.json["drift"]["findings"][0]["rule"], "replicas-cut");
    assert_eq!(r.json["drift"]["findings"][0]["category"], "availability");
    assert_eq!(
        r.json["drift"]["findings"][0]["reason"],
        "fewer replicas live"
    );
    assert_eq!(r.json["drift"]["severity"], "low");
    assert_eq!(r.json["drift"]["risk"], "medium");
    // how to end it: a plan, never applied
    let r = get(&f.app, "/api/v1/drifts/prod-00000000/remediation").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["action"], "revert");
    assert_eq!(r.json["applied"], false);
    assert_eq!(
        r.json["steps"][1]["command"],
        "kubectl apply -f deploy.yaml"
    );
    assert_eq!(
        r.json["steps"][1]["changes"],
        json!([{"path": "spec.replicas", "from": 5, "to": 3}])
    );
    let r = get(
        &f.app,
        "/api/v1/drifts/prod-00000000/remediation?action=adopt",
    )
    .await;
    assert_eq!(r.json["action"], "adopt", "{}", r.text);
    assert_eq!(r.json["steps"][0]["changes"][0]["to"], 5);
    let r = get(
        &f.app,
        "/api/v1/drifts/prod-00000000/remediation?action=apply",
    )
    .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    let r = get(&f.app, "/api/v1/drifts/does-not-exist/remediation").await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    // a resolved one is found too
    let r = get(&f.app, "/api/v1/drifts/prod-00000003").await;
    assert_eq!(r.json["drift"]["status"], "resolved");
    let r = get(&f.app, "/api/v1/drifts/does-not-exist").await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
}

/// The README's demo (`examples/demo`, environment `prod`) scanned on memory sources.
async fn demo_app() -> Router {
    use driftguard_core::manifest::parse_file;
    use driftguard_core::model::Revision;
    use driftguard_core::ports::DesiredSet;

    let demo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/demo");
    let read = |p: std::path::PathBuf| {
        let text = std::fs::read_to_string(&p).expect("demo file");
        let name = p.file_name().expect("name").to_string_lossy().into_owned();
        (name, text)
    };
    let mut files: Vec<_> = std::fs::read_dir(demo.join("gitops/envs/prod"))
        .expect("demo manifests")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let mut desired = DesiredSet {
        revision: Some(Revision::plain("demo")),
        ..DesiredSet::default()
    };
    for f in files {
        let (name, text) = read(f);
        let (objects, errors) = parse_file(&name, &text, None).into_manifests();
        assert!(errors.is_empty(), "{errors:?}");
        desired.objects.extend(objects);
    }
    let (name, text) = read(demo.join("live/prod.yaml"));
    let (live, errors) = parse_file(&name, &text, None).into_live();
    assert!(errors.is_empty(), "{errors:?}");

    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(testkit::t0()));
    let (prod, git, live_source) = testkit::memory_environment(
        "prod",
        store.clone(),
        clock.clone(),
        Duration::from_secs(3600),
        Duration::from_secs(3600),
    );
    git.set(desired);
    live_source.set(live);
    let state = AppState::builder(store, vec![prod], Arc::new(Metrics::new()))
        .tokens(vec![TOKEN.into()])
        .clock(clock)
        .build();
    let app = router(state);
    let r = post(&app, "/api/v1/environments/prod/scan").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    app
}

/// `driftguard explain prod:Deployment/shop/api` finds the demo's api Deployment (cli.rs,
/// `history_drifts_events_explain_and_resolved_drift`); the object URL with the same reference
/// finds the same object: an absent group (or namespace) means any, as in the CLI.
#[tokio::test]
async fn object_urls_find_what_the_cli_finds() {
    let app = demo_app().await;
    let r = get(
        &app,
        "/api/v1/environments/prod/objects/Deployment/shop/api",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.json["object"],
        json!({"environment": "prod", "group": "apps", "kind": "Deployment",
            "namespace": "shop", "name": "api", "reference": "Deployment.apps/shop/api"})
    );
    let drift = &r.json["record"]["drift"];
    assert_eq!(drift["status"], "open", "{}", r.text);
    assert!(
        drift["paths"]
            .as_array()
            .expect("paths")
            .contains(&json!("spec.template.spec.containers[api].image")),
        "{}",
        r.text
    );
    assert_eq!(r.json["events"][0]["event"], "detected", "{}", r.text);
    // every spelling of the same reference answers the same object
    for reference in [
        "Deployment.apps/shop/api",
        "Deployment/api",
        "prod:Deployment/shop/api",
    ] {
        let other = get(
            &app,
            &format!("/api/v1/environments/prod/objects/{reference}"),
        )
        .await;
        assert_eq!(other.status, StatusCode::OK, "{reference}: {}", other.text);
        assert_eq!(other.json["object"], r.json["object"], "{reference}");
        assert_eq!(other.json["record"], r.json["record"], "{reference}");
    }
    // the core group: found without a group too (the CLI explains this one as well)
    let r = get(
        &app,
        "/api/v1/environments/prod/objects/ConfigMap/shop/api-config",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["object"]["group"], "");
    assert_eq!(r.json["record"]["drift"]["direction"], "reverse");
    // an object that never drifted is found among the tracked ones
    let r = get(&app, "/api/v1/environments/prod/objects/Service/shop/api").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["record"]["drift"], Value::Null);
    assert_eq!(r.json["events"], json!([]));
    // a wrong group, an unknown name, another environment
    for (uri, status, code) in [
        (
            "Deployment.example.com/shop/api",
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "Deployment/shop/nothing",
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "dev:Deployment/shop/api",
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
    ] {
        let r = get(&app, &format!("/api/v1/environments/prod/objects/{uri}")).await;
        assert_error(&r, status, code);
    }
    // the events of the object, by the same reference
    let r = get(
        &app,
        "/api/v1/events?environment=prod&object=Deployment/shop/api",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["total"], 1, "{}", r.text);
    assert_eq!(r.json["items"][0]["drift"]["object"]["name"], "api");
    let r = get(
        &app,
        "/api/v1/events?environment=prod&object=Deployment/shop/nothing",
    )
    .await;
    assert_eq!(r.json["total"], 0, "{}", r.text);
    // and the drift list filters by group
    let r = get(&app, "/api/v1/drifts?environment=prod&group=apps").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let items = r.json["items"].as_array().expect("items");
    assert!(!items.is_empty());
    assert!(
        items.iter().all(|d| d["object"]["group"] == "apps"),
        "{}",
        r.text
    );
    let all = get(&app, "/api/v1/drifts?environment=prod").await;
    assert!(
        all.json["total"].as_u64() > r.json["total"].as_u64(),
        "the demo drifts in the core group too: {}",
        all.text
    );
}

#[tokio::test]
async fn object_history_events_and_scans() {
    let f = fixture().await;
    let r = get(
        &f.app,
        "/api/v1/environments/prod/objects/Deployment.apps/ns-3/web-3",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["object"]["name"], "web-3");
    let kinds: Vec<&str> = r.json["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["event"].as_str())
        .collect();
    assert_eq!(kinds, ["detected", "resolved"]);
    assert_eq!(r.json["record"]["drift"], Value::Null);
    let r = get(
        &f.app,
        "/api/v1/environments/prod/objects/Deployment.apps/ns-0/web-0",
    )
    .await;
    assert_eq!(r.json["record"]["drift"]["episode"], "prod-00000000");
    let r = get(&f.app, "/api/v1/environments/prod/objects/nonsense").await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    let r = get(
        &f.app,
        "/api/v1/environments/prod/objects/Deployment.apps/ns-0/ghost",
    )
    .await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    let r = get(
        &f.app,
        "/api/v1/environments/mars/objects/Deployment.apps/ns-0/web-0",
    )
    .await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");

    // events in a time range: drift i is detected at t0 + i s
    let r = get(
        &f.app,
        "/api/v1/events?environment=prod&event=detected&since=2024-05-01T12:00:10Z&until=2024-05-01T12:00:20Z",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["total"], 10);
    assert_eq!(r.json["items"][0]["drift"]["episode"], "prod-00000010");
    let r = get(
        &f.app,
        "/api/v1/events?environment=prod&event=resolved&limit=3",
    )
    .await;
    assert_eq!(r.json["total"], 10);
    assert_eq!(r.json["items"].as_array().map(Vec::len), Some(3));
    assert_eq!(r.json["next_offset"], 3);
    let r = get(
        &f.app,
        "/api/v1/events?environment=prod&object=Deployment.apps/ns-3/web-3",
    )
    .await;
    assert_eq!(r.json["total"], 2);

    let r = get(&f.app, "/api/v1/scans?environment=prod").await;
    assert_eq!(r.json["items"][0]["scan_id"], "prod-fill");
    let r = get(&f.app, "/api/v1/scans?environment=zzz").await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
}

fn github_request(body: &str, signature: Option<String>, event: &str) -> Request<Body> {
    let mut b = Request::post("/api/v1/webhooks/git")
        .header("content-type", "application/json")
        .header("x-github-event", event);
    if let Some(s) = signature {
        b = b.header("x-hub-signature-256", s);
    }
    b.body(Body::from(body.to_owned())).expect("req")
}

#[tokio::test]
async fn git_webhook_is_verified_and_triggers_fetch() {
    let f = fixture().await;
    let body =
        r#"{"ref":"refs/heads/main","repository":{"clone_url":"https://git.example/shop.git"}}"#;
    let good = driftguard_server::notify::webhook::sign(HOOK_SECRET, body.as_bytes());
    let r = send(&f.app, github_request(body, Some(good.clone()), "push")).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(
        r.json,
        json!({"event": "push", "triggered": ["dev", "prod"]})
    );

    let bad = driftguard_server::notify::webhook::sign("other", body.as_bytes());
    let r = send(&f.app, github_request(body, Some(bad), "push")).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    let r = send(
        &f.app,
        github_request(body, Some("sha256=zz".into()), "push"),
    )
    .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    let r = send(&f.app, github_request(body, None, "push")).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    // the signature covers the body
    let r = send(
        &f.app,
        github_request(&body.replace("main", "evil"), Some(good), "push"),
    )
    .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");

    let ping = r#"{"zen":"hi"}"#;
    let r = send(
        &f.app,
        github_request(
            ping,
            Some(driftguard_server::notify::webhook::sign(
                HOOK_SECRET,
                ping.as_bytes(),
            )),
            "ping",
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["triggered"], json!([]));

    let gl =
        r#"{"object_kind":"push","project":{"git_http_url":"https://gitlab.example/shop.git"}}"#;
    let req = |token: &str| {
        Request::post("/api/v1/webhooks/git")
            .header("x-gitlab-event", "Push Hook")
            .header("x-gitlab-token", token)
            .body(Body::from(gl))
            .expect("req")
    };
    let r = send(&f.app, req(HOOK_SECRET)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let r = send(&f.app, req("guess")).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");

    let junk = "not json";
    let r = send(
        &f.app,
        github_request(
            junk,
            Some(driftguard_server::notify::webhook::sign(
                HOOK_SECRET,
                junk.as_bytes(),
            )),
            "push",
        ),
    )
    .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");

    // request size limit (64 KiB in the fixture)
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(100 * 1024));
    let r = send(
        &f.app,
        github_request(
            &big,
            Some(driftguard_server::notify::webhook::sign(
                HOOK_SECRET,
                big.as_bytes(),
            )),
            "push",
        ),
    )
    .await;
    assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
}

#[tokio::test]
async fn webhook_without_secret_is_disabled_and_repos_are_matched() {
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(testkit::t0()));
    let git = Arc::new(MemoryGitSource::new());
    let live = Arc::new(MemoryLiveSource::new());
    let env = Arc::new(
        Environment::new(
            testkit::environment(
                "dev",
                git,
                live,
                store.clone(),
                clock,
                Duration::from_secs(60),
                Duration::from_secs(60),
            )
            .scanner
            .clone(),
            Duration::from_secs(60),
            Duration::from_secs(60),
        )
        .with_repositories(vec!["https://git.example/shop".into()]),
    );
    let state =
        AppState::builder(store.clone(), vec![env.clone()], Arc::new(Metrics::new())).build();
    let r = send(
        &router(state),
        github_request("{}", Some("sha256=00".into()), "push"),
    )
    .await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");

    let state = AppState::builder(store, vec![env], Arc::new(Metrics::new()))
        .webhook_secret(Some("k".into()))
        .build();
    let app = router(state);
    for (url, expect) in [
        ("https://git.example/shop.git", json!(["dev"])),
        ("https://git.example/other.git", json!([])),
    ] {
        let body = json!({"repository": {"clone_url": url}}).to_string();
        let sig = driftguard_server::notify::webhook::sign("k", body.as_bytes());
        let r = send(&app, github_request(&body, Some(sig), "push")).await;
        assert_eq!(r.json["triggered"], expect, "{url}");
    }
}

#[tokio::test]
async fn slow_requests_time_out_with_the_error_shape() {
    struct SlowStore(MemoryStore);
    #[async_trait::async_trait]
    impl DriftStore for SlowStore {
        async fn records(
            &self,
            e: &str,
        ) -> Result<Vec<driftguard_core::state::DriftRecord>, driftguard_core::ports::StoreError>
        {
            self.0.records(e).await
        }
        async fn commit(
            &self,
            b: &driftguard_core::ports::ScanBatch,
        ) -> Result<(), driftguard_core::ports::StoreError> {
            self.0.commit(b).await
        }
        async fn drifts(
            &self,
            q: &driftguard_core::query::DriftQuery,
        ) -> Result<
            driftguard_core::query::Page<driftguard_core::state::Drift>,
            driftguard_core::ports::StoreError,
        > {
            tokio::time::sleep(Duration::from_secs(5)).await;
            self.0.drifts(q).await
        }
        async fn events(
            &self,
            q: &driftguard_core::query::EventQuery,
        ) -> Result<
            driftguard_core::query::Page<driftguard_core::state::DriftEvent>,
            driftguard_core::ports::StoreError,
        > {
            self.0.events(q).await
        }
        async fn scans(
            &self,
            e: Option<&str>,
            l: usize,
        ) -> Result<Vec<driftguard_core::ports::ScanSummary>, driftguard_core::ports::StoreError>
        {
            Err(driftguard_core::ports::StoreError::Unavailable {
                source: format!("{e:?} {l} secret-internal-detail").into(),
            })
        }
        async fn prune(
            &self,
            b: chrono::DateTime<chrono::Utc>,
        ) -> Result<driftguard_core::ports::PruneStats, driftguard_core::ports::StoreError>
        {
            self.0.prune(b).await
        }
    }
    let state = AppState::builder(
        Arc::new(SlowStore(MemoryStore::new())),
        vec![],
        Arc::new(Metrics::new()),
    )
    .request_timeout(Duration::from_millis(100))
    .build();
    let app = router(state);
    let r = send(
        &app,
        Request::get("/api/v1/drifts")
            .body(Body::empty())
            .expect("req"),
    )
    .await;
    assert_error(&r, StatusCode::SERVICE_UNAVAILABLE, "timeout");
    // store failures leak nothing
    let r = send(
        &app,
        Request::get("/api/v1/scans")
            .body(Body::empty())
            .expect("req"),
    )
    .await;
    assert_error(&r, StatusCode::SERVICE_UNAVAILABLE, "store_unavailable");
    assert!(!r.text.contains("secret-internal-detail"));
    let r = send(
        &app,
        Request::get("/readyz").body(Body::empty()).expect("req"),
    )
    .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.json["checks"][0]["reason"], "store unreachable");
}

#[tokio::test]
async fn metrics_follow_scans() {
    let f = fixture().await;
    let r = post(&f.app, "/api/v1/environments/dev/scan").await;
    assert_eq!(r.status, StatusCode::OK);
    let r = send(
        &f.app,
        Request::get("/metrics").body(Body::empty()).expect("req"),
    )
    .await;
    let m = r.text;
    for needle in [
        "driftguard_drift_score{environment=\"dev\"}",
        "driftguard_drifts{environment=\"dev\",kind=\"Deployment\",namespace=\"shop\",drift=\"modified\",direction=\"unknown\",severity=\"medium\"} 1",
        "driftguard_drift_age_seconds{environment=\"dev\"} 0.0",
        "driftguard_drift_events_total{environment=\"dev\",event=\"detected\"} 1",
        "driftguard_scan_duration_seconds_count{environment=\"dev\"} 1",
        "driftguard_last_scan_timestamp_seconds{environment=\"dev\",source=\"git\"}",
        "driftguard_source_up{environment=\"dev\",source=\"live\"} 1",
    ] {
        assert!(m.contains(needle), "missing {needle} in\n{m}");
    }
    // once resolved, the open-drift series goes away
    f.live.set(testkit::live(vec![
        deployment("web").replicas(3).image("web:1").build(),
        deployment("api").replicas(2).image("api:1").build(),
    ]));
    post(&f.app, "/api/v1/environments/dev/scan").await;
    let m = send(
        &f.app,
        Request::get("/metrics").body(Body::empty()).expect("req"),
    )
    .await
    .text;
    assert!(!m.contains("driftguard_drifts{environment=\"dev\""), "{m}");
    assert!(
        m.contains("driftguard_drift_events_total{environment=\"dev\",event=\"resolved\"} 1"),
        "{m}"
    );
    let _ = &f.state;
}

// ---------------------------------------------------------------------------------------
// OpenAPI: every answer below is validated against the schema the document gives for its
// route and status; every route the router serves is in the document.

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r.trim_start_matches("#/components/schemas/");
            &doc["components"]["schemas"][name]
        }
        None => schema,
    }
}

fn type_ok(t: &str, v: &Value) -> bool {
    match t {
        "null" => v.is_null(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        _ => false,
    }
}

fn validate(doc: &Value, schema: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    let s = resolve(doc, schema);
    for key in ["oneOf", "anyOf"] {
        if let Some(alts) = s.get(key).and_then(Value::as_array) {
            let ok = alts.iter().any(|a| {
                let mut e = Vec::new();
                validate(doc, a, v, at, &mut e);
                e.is_empty()
            });
            if !ok {
                errors.push(format!("{at}: matches no alternative of {key}"));
            }
            return;
        }
    }
    if let Some(all) = s.get("allOf").and_then(Value::as_array) {
        for a in all {
            validate(doc, a, v, at, errors);
        }
        return;
    }
    if v.is_null() && s.get("nullable") == Some(&Value::Bool(true)) {
        return;
    }
    match s.get("type") {
        Some(Value::String(t)) if !type_ok(t, v) => {
            errors.push(format!("{at}: expected {t}, got {v}"));
            return;
        }
        Some(Value::Array(ts)) if !ts.iter().filter_map(Value::as_str).any(|t| type_ok(t, v)) => {
            errors.push(format!("{at}: expected one of {ts:?}, got {v}"));
            return;
        }
        _ => {}
    }
    if let Some(e) = s.get("enum").and_then(Value::as_array) {
        if !e.contains(v) {
            errors.push(format!("{at}: {v} not in enum"));
        }
    }
    if let Value::Object(map) = v {
        let props = s.get("properties").and_then(Value::as_object);
        if let Some(req) = s.get("required").and_then(Value::as_array) {
            for r in req.iter().filter_map(Value::as_str) {
                if !map.contains_key(r) {
                    errors.push(format!("{at}: required `{r}` missing"));
                }
            }
        }
        if let Some(props) = props {
            for (k, val) in map {
                match props.get(k) {
                    Some(ps) => validate(doc, ps, val, &format!("{at}.{k}"), errors),
                    None => errors.push(format!("{at}: field `{k}` not described")),
                }
            }
        }
    }
    if let (Value::Array(items), Some(is)) = (v, s.get("items")) {
        for (i, it) in items.iter().enumerate() {
            validate(doc, is, it, &format!("{at}[{i}]"), errors);
        }
    }
}

fn template_matches(template: &str, path: &str) -> bool {
    let t: Vec<&str> = template.split('/').collect();
    let p: Vec<&str> = path.split('/').collect();
    // the last parameter of the object history route takes the rest of the path
    if template.ends_with("{object}") {
        return p.len() >= t.len()
            && t[..t.len() - 1]
                .iter()
                .zip(&p)
                .all(|(a, b)| a.starts_with('{') || a == b);
    }
    t.len() == p.len() && t.iter().zip(&p).all(|(a, b)| a.starts_with('{') || a == b)
}

fn check_against_doc(doc: &Value, method: &str, uri: &str, r: &Resp) -> Vec<String> {
    let path = uri.split('?').next().unwrap_or(uri);
    let mut templates: Vec<&String> = doc["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .filter(|t| template_matches(t, path))
        .collect();
    // prefer literal segments over parameters
    templates.sort_by_key(|t| t.matches('{').count());
    let Some(template) = templates.first() else {
        return vec![format!("{method} {path}: no path in the document")];
    };
    let op = &doc["paths"][template.as_str()][method];
    if op.is_null() {
        return vec![format!("{method} {template}: no operation in the document")];
    }
    let resp = &op["responses"][r.status.as_str()];
    if resp.is_null() {
        return vec![format!(
            "{method} {template}: status {} not documented",
            r.status
        )];
    }
    let Some(schema) = resp["content"]["application/json"].get("schema") else {
        return Vec::new();
    };
    let mut errors = Vec::new();
    validate(
        doc,
        schema,
        &r.json,
        &format!("{method} {template} {}", r.status),
        &mut errors,
    );
    errors
}

#[tokio::test]
async fn openapi_document_matches_the_answers() {
    let f = fixture().await;
    post(&f.app, "/api/v1/environments/dev/scan").await;
    // dev as if discovered from Flux: its answers carry `tool`
    let kustomization = json!({"spec": {"suspend": true}, "status": {
        "conditions": [{"type": "Ready", "status": "False", "reason": "BuildFailed",
            "message": "kustomize build failed", "lastTransitionTime": "2024-05-01T11:58:00Z"}],
        "lastAppliedRevision": "main@sha1:1a2b3c4d"
    }});
    f.state.verdicts.set(
        "dev",
        driftguard_server::verdicts::ToolStatus {
            tool: driftguard_server::config::discover::Tool::Flux,
            kind: "Kustomization".into(),
            namespace: "apps".into(),
            name: "dev".into(),
            source: None,
            verdict: driftguard_server::config::discover::ToolVerdict::read(
                driftguard_server::config::discover::Tool::Flux,
                "Kustomization",
                &kustomization,
                None,
                &[],
            ),
            labels: Default::default(),
            observed_at: testkit::t0(),
        },
        &f.state.metrics,
    );
    let doc = get(&f.app, "/api/v1/openapi.json").await;
    assert_eq!(doc.status, StatusCode::OK);
    let doc = doc.json;
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );

    let hook_body = r#"{"repository":{"clone_url":"https://x/y.git"}}"#;
    let mut answers: Vec<(&str, String, Resp)> = Vec::new();
    for uri in [
        "/api/v1/environments",
        "/api/v1/environments/dev",
        "/api/v1/environments/zzz",
        "/api/v1/environments/prod/objects/Deployment.apps/ns-3/web-3",
        "/api/v1/environments/prod/objects/Deployment.apps/ns-0/web-0",
        "/api/v1/environments/prod/objects/bad",
        "/api/v1/drifts?environment=prod&status=all&limit=50",
        "/api/v1/drifts?environment=dev",
        "/api/v1/drifts?limit=0",
        "/api/v1/drifts/prod-00000000",
        "/api/v1/drifts/prod-00000003",
        "/api/v1/drifts/nope",
        "/api/v1/drifts/prod-00000000/remediation",
        "/api/v1/drifts/prod-00000001/remediation?action=adopt",
        "/api/v1/drifts/prod-00000000/remediation?action=bogus",
        "/api/v1/drifts/nope/remediation",
        "/api/v1/events?environment=prod",
        "/api/v1/events?since=bad",
        "/api/v1/scans",
        "/healthz",
        "/readyz",
    ] {
        let r = get(&f.app, uri).await;
        answers.push(("get", uri.to_owned(), r));
    }
    let r = send(
        &f.app,
        Request::get("/api/v1/drifts")
            .body(Body::empty())
            .expect("req"),
    )
    .await;
    answers.push(("get", "/api/v1/drifts".into(), r));
    let r = post(&f.app, "/api/v1/environments/dev/scan").await;
    answers.push(("post", "/api/v1/environments/dev/scan".into(), r));
    f.live.set_unreachable();
    let r = post(&f.app, "/api/v1/environments/dev/scan").await;
    answers.push(("post", "/api/v1/environments/dev/scan".into(), r));
    let r = send(
        &f.app,
        github_request(
            hook_body,
            Some(driftguard_server::notify::webhook::sign(
                HOOK_SECRET,
                hook_body.as_bytes(),
            )),
            "push",
        ),
    )
    .await;
    answers.push(("post", "/api/v1/webhooks/git".into(), r));
    let r = send(&f.app, github_request(hook_body, None, "push")).await;
    answers.push(("post", "/api/v1/webhooks/git".into(), r));
    let r = send(
        &f.app,
        Request::get("/readyz").body(Body::empty()).expect("req"),
    )
    .await;
    answers.push(("get", "/readyz".into(), r));
    // a preview on environments of memory sources (no revisions by name): a clear 400
    let r = send_json(
        &f.app,
        Method::POST,
        "/api/v1/preview",
        TOKEN,
        json!({"base": "main", "head": "pr-7", "failOn": ["overwrites"]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.json);
    assert!(
        r.json["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Git repository")),
        "{}",
        r.json
    );
    answers.push(("post", "/api/v1/preview".into(), r));
    let r = send_json(
        &f.app,
        Method::POST,
        "/api/v1/preview",
        TOKEN,
        json!({"base": "main", "head": "pr-7", "failOn": ["everything"]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.json);
    answers.push(("post", "/api/v1/preview".into(), r));

    let mut errors = Vec::new();
    for (m, uri, r) in &answers {
        errors.extend(check_against_doc(&doc, m, uri, r));
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));

    // every route of the router is documented (and nothing else)
    let mut documented: Vec<String> = doc["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .cloned()
        .collect();
    documented.sort();
    let mut served = vec![
        "/api/v1/environments",
        "/api/v1/environments/{env}",
        "/api/v1/environments/{env}/scan",
        "/api/v1/environments/{env}/objects/{object}",
        "/api/v1/drifts",
        "/api/v1/drifts/{episode}",
        "/api/v1/drifts/{episode}/remediation",
        "/api/v1/drifts/{episode}/remediate",
        "/api/v1/drifts/{episode}/acknowledgement",
        "/api/v1/acknowledgements",
        "/api/v1/remediation/pause",
        "/api/v1/remediation/resume",
        "/api/v1/events",
        "/api/v1/actions",
        "/api/v1/events/stream",
        "/api/v1/scans",
        "/api/v1/preview",
        "/api/v1/openapi.json",
        "/api/v1/webhooks/git",
        "/api/v1/environments/{env}/audit",
        "/healthz",
        "/readyz",
        "/metrics",
    ];
    served.sort();
    assert_eq!(documented, served);
    // and each of them answers (not the 404 fallback)
    for p in served {
        let uri = p
            .replace("{env}", "dev")
            .replace("{episode}", "prod-00000000")
            .replace("{object}", "Deployment.apps/shop/web");
        let method = if p.ends_with("/scan")
            || p.ends_with("/git")
            || p.ends_with("/audit")
            || p.ends_with("/preview")
        {
            "POST"
        } else if p.ends_with("/acknowledgement") {
            "DELETE"
        } else {
            "GET"
        };
        if p.ends_with("/stream") {
            // an endless answer: its head is enough
            let resp = f
                .app
                .clone()
                .oneshot(
                    Request::get(&uri)
                        .header("authorization", format!("Bearer {TOKEN}"))
                        .body(Body::empty())
                        .expect("req"),
                )
                .await
                .expect("infallible");
            assert_eq!(resp.status(), StatusCode::OK, "{uri}");
            continue;
        }
        let r = send(
            &f.app,
            Request::builder()
                .method(method)
                .uri(&uri)
                .header("authorization", format!("Bearer {TOKEN}"))
                .body(Body::empty())
                .expect("req"),
        )
        .await;
        assert_ne!(r.json["error"]["message"], "no such route", "{uri}");
    }
}

/// Scoped tokens: a plain token reads and scans but may not remediate; a named `read` token
/// may not scan; a `remediate` token passes the scope check (and, on a server without a
/// cluster to remediate, gets a clear 409).
#[tokio::test]
async fn remediation_needs_a_token_with_the_remediate_scope() {
    use driftguard_server::config::{ScopedToken, TokenScope};
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(testkit::t0()));
    let (dev, git, live) = testkit::memory_environment(
        "dev",
        store.clone(),
        clock.clone(),
        Duration::from_secs(3600),
        Duration::from_secs(3600),
    );
    git.set(testkit::desired(
        "rev-a",
        vec![deployment("web").replicas(3).image("web:1").build()],
    ));
    live.set(testkit::live(vec![deployment("web")
        .replicas(5)
        .image("web:1")
        .build()]));
    let state = AppState::builder(store, vec![dev], Arc::new(Metrics::new()))
        .tokens(vec![TOKEN.into()])
        .scoped_tokens(vec![
            ScopedToken {
                name: "viewer".into(),
                token: "viewer-token".into(),
                scopes: vec![TokenScope::Read],
                grants: Vec::new(),
            },
            ScopedToken {
                name: "ops".into(),
                token: "ops-token".into(),
                scopes: vec![TokenScope::Read, TokenScope::Remediate],
                grants: Vec::new(),
            },
        ])
        .clock(clock)
        .build();
    let app = router(state);
    let r = post(&app, "/api/v1/environments/dev/scan").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let drifts = get(&app, "/api/v1/drifts").await;
    let episode = drifts.json["items"][0]["episode"]
        .as_str()
        .expect("an open drift")
        .to_owned();
    let call = |token: &str, uri: String, body: &str| {
        Request::post(uri)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .expect("request")
    };
    let uri = format!("/api/v1/drifts/{episode}/remediate");
    let r = send(&app, call(TOKEN, uri.clone(), "{}")).await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    assert!(r.text.contains("remediate"), "{}", r.text);
    let r = send(&app, call("viewer-token", uri.clone(), "{}")).await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = send(
        &app,
        call("viewer-token", "/api/v1/environments/dev/scan".into(), ""),
    )
    .await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = Request::get("/api/v1/drifts")
        .header("authorization", "Bearer viewer-token")
        .body(Body::empty())
        .expect("request");
    assert_eq!(send(&app, r).await.status, StatusCode::OK);
    let r = send(
        &app,
        call("ops-token", uri.clone(), r#"{"action": "revert"}"#),
    )
    .await;
    assert_error(&r, StatusCode::CONFLICT, "not_available");
    let r = send(&app, call("ops-token", uri, r#"{"bogus": 1}"#)).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
}

async fn send_json(app: &Router, method: Method, uri: &str, token: &str, body: Value) -> Resp {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .expect("request");
    send(app, req).await
}

/// Acknowledged drift: it stays open and listed, marked with who, why and until when; the
/// `acknowledged` filter finds it or leaves it out; the person's act is an event; it lapses
/// when its expiry passes and when the drift changes (each lapse recorded once, as an event),
/// and a person may withdraw it; a whole environment can be acknowledged at once (the
/// baseline); a token without the `scan` scope may not acknowledge.
#[tokio::test]
async fn acknowledged_drift_stays_open_marked_and_lapses() {
    use driftguard_server::queries::ack::record_lapses;
    let f = fixture().await;
    assert_eq!(
        post(&f.app, "/api/v1/environments/dev/scan").await.status,
        StatusCode::OK
    );
    let list = get(&f.app, "/api/v1/drifts?environment=dev").await;
    let episode = list.json["items"][0]["episode"]
        .as_str()
        .expect("web drifted")
        .to_owned();
    assert!(list.json["items"][0].get("acknowledgement").is_none());
    let ack = |body: Value| {
        send_json(
            &f.app,
            Method::POST,
            "/api/v1/acknowledgements",
            TOKEN,
            body,
        )
    };

    // refusals
    let r = ack(json!({"episodes": [episode], "reason": "  "})).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    let r = ack(json!({"episodes": ["nope"], "reason": "x"})).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    let r = ack(json!({"reason": "x"})).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    let r =
        ack(json!({"episodes": [episode], "reason": "x", "until": "2000-01-01T00:00:00Z"})).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    let r = ack(json!({"episodes": [episode], "reason": "x", "until": "soon"})).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");

    // acknowledged for an hour
    let r = ack(json!({"episodes": [episode], "reason": "load test until Friday", "until": "1h"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let a = &r.json["items"][0];
    assert_eq!(a["standing"], "holds");
    assert_eq!(a["by"], "token");
    assert_eq!(a["reason"], "load test until Friday");
    let until = (testkit::t0() + chrono::TimeDelta::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
    assert_eq!(a["until"], until.as_str());
    // open, listed, marked
    let list = get(&f.app, "/api/v1/drifts?environment=dev").await;
    assert_eq!(list.json["total"], 1);
    assert_eq!(list.json["items"][0]["status"], "open");
    assert_eq!(
        list.json["items"][0]["acknowledgement"]["standing"],
        "holds"
    );
    let only = get(&f.app, "/api/v1/drifts?environment=dev&acknowledged=true").await;
    assert_eq!(only.json["total"], 1);
    let others = get(&f.app, "/api/v1/drifts?environment=dev&acknowledged=false").await;
    assert_eq!(
        (others.json["total"].clone(), others.json["items"].clone()),
        (json!(0), json!([]))
    );
    let r = get(&f.app, "/api/v1/drifts?acknowledged=maybe").await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    let detail = get(&f.app, &format!("/api/v1/drifts/{episode}")).await;
    assert_eq!(
        detail.json["drift"]["acknowledgement"]["reason"],
        "load test until Friday"
    );
    let events = get(&f.app, "/api/v1/events?environment=dev&event=acknowledged").await;
    assert_eq!(
        events.json["items"].as_array().map(Vec::len),
        Some(1),
        "{}",
        events.text
    );
    assert_eq!(events.json["items"][0]["acknowledgement"]["by"], "token");
    // a scan that finds the same drift keeps it
    assert_eq!(
        post(&f.app, "/api/v1/environments/dev/scan").await.status,
        StatusCode::OK
    );
    assert_eq!(record_lapses(&f.state).await.expect("lapses"), 0);
    let only = get(&f.app, "/api/v1/drifts?environment=dev&acknowledged=true").await;
    assert_eq!(only.json["total"], 1, "{}", only.text);

    // the expiry passes: lapsed, recorded once
    f.clock.advance(chrono::TimeDelta::hours(2));
    let (app, state) = (f.app.clone(), f.state.clone());
    assert_eq!(record_lapses(&state).await.expect("lapses"), 1);
    assert_eq!(record_lapses(&state).await.expect("lapses"), 0, "once");
    let list = get(&app, "/api/v1/acknowledgements?environment=dev").await;
    assert_eq!(list.json["items"][0]["standing"], "lapsed", "{}", list.text);
    assert_eq!(list.json["items"][0]["lapse"], "expired");
    let others = get(&app, "/api/v1/drifts?environment=dev&acknowledged=false").await;
    assert_eq!(others.json["total"], 1);
    let lapses = get(&app, "/api/v1/events?environment=dev&event=unacknowledged").await;
    assert_eq!(
        lapses.json["items"][0]["acknowledgement"]["lapse"], "expired",
        "{}",
        lapses.text
    );

    // acknowledged again with no expiry; the drift changes: lapsed
    let r = send_json(
        &app,
        Method::POST,
        "/api/v1/acknowledgements",
        TOKEN,
        json!({"episodes": [episode], "reason": "known"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    f.live.set(testkit::live(vec![
        deployment("web").replicas(7).image("web:1").build(),
        deployment("api").replicas(2).image("api:1").build(),
    ]));
    assert_eq!(
        post(&app, "/api/v1/environments/dev/scan").await.status,
        StatusCode::OK
    );
    let list = get(&app, "/api/v1/drifts?environment=dev").await;
    assert_eq!(
        list.json["items"][0]["acknowledgement"]["lapse"], "changed",
        "{}",
        list.text
    );
    assert_eq!(record_lapses(&state).await.expect("lapses"), 1);

    // withdrawn by a person
    let r = send_json(
        &app,
        Method::POST,
        "/api/v1/acknowledgements",
        TOKEN,
        json!({"episodes": [episode], "reason": "known, again"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let uri = format!("/api/v1/drifts/{episode}/acknowledgement");
    let r = send_json(&app, Method::DELETE, &uri, TOKEN, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["lapse"], "withdrawn");
    let r = send_json(&app, Method::DELETE, &uri, TOKEN, json!({})).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");

    // what people did, with who: scans asked for, acknowledgements, the withdrawal
    let actions = get(&app, "/api/v1/actions?environment=dev").await;
    assert_eq!(actions.status, StatusCode::OK, "{}", actions.text);
    let kinds: Vec<&str> = actions.json["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|a| a["action"].as_str())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "acknowledge").count(),
        3,
        "{kinds:?}"
    );
    assert!(kinds.contains(&"scan"), "{kinds:?}");
    let withdrawn = actions.json["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|a| a["action"] == "withdraw")
        .expect("the withdrawal");
    assert_eq!(withdrawn["who"], "token");
    assert_eq!(withdrawn["episodes"][0], episode.as_str());
    let first_ack = actions.json["items"]
        .as_array()
        .expect("items")
        .last()
        .expect("the oldest");
    assert!(
        first_ack["action"] == "scan" || first_ack["detail"] == "load test until Friday",
        "oldest last: {first_ack}"
    );
    // the baseline of an environment
    let open = get(&app, "/api/v1/drifts?environment=prod").await.json["total"].clone();
    assert!(open.as_u64().is_some_and(|n| n > 1), "{open}");
    let r = send_json(
        &app,
        Method::POST,
        "/api/v1/acknowledgements",
        TOKEN,
        json!({"environment": "prod", "reason": "baseline at onboarding"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(json!(r.json["items"].as_array().map(Vec::len)), open);
    let rest = get(&app, "/api/v1/drifts?environment=prod&acknowledged=false").await;
    assert_eq!(rest.json["total"], 0, "{}", rest.text);
    let held = get(
        &app,
        "/api/v1/drifts?environment=prod&acknowledged=true&limit=5&offset=5",
    )
    .await;
    assert_eq!(held.json["total"], open);
    assert_eq!(held.json["items"].as_array().map(Vec::len), Some(5));
}

/// Acknowledging needs the `scan` scope (the operator's); reading acknowledgements, `read`.
#[tokio::test]
async fn acknowledging_needs_the_scan_scope() {
    use driftguard_server::config::{ScopedToken, TokenScope};
    let store = Arc::new(MemoryStore::new());
    testkit::fill_store(store.as_ref(), "prod", 4, 4)
        .await
        .expect("store filled");
    let clock = Arc::new(ManualClock::new(testkit::t0()));
    let (prod, _, _) = testkit::memory_environment(
        "prod",
        store.clone(),
        clock.clone(),
        Duration::from_secs(3600),
        Duration::from_secs(3600),
    );
    let state = AppState::builder(store, vec![prod], Arc::new(Metrics::new()))
        .scoped_tokens(vec![
            ScopedToken {
                name: "viewer".into(),
                token: "viewer-token-0123456789".into(),
                scopes: vec![TokenScope::Read],
                grants: Vec::new(),
            },
            ScopedToken {
                name: "operator".into(),
                token: "operator-token-0123456789".into(),
                scopes: vec![TokenScope::Read, TokenScope::Scan],
                grants: Vec::new(),
            },
        ])
        .clock(clock)
        .build();
    let app = router(state);
    let body = json!({"environment": "prod", "reason": "baseline"});
    let r = send_json(
        &app,
        Method::POST,
        "/api/v1/acknowledgements",
        "viewer-token-0123456789",
        body.clone(),
    )
    .await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = send_json(
        &app,
        Method::POST,
        "/api/v1/acknowledgements",
        "operator-token-0123456789",
        body,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["items"][0]["by"], "token:operator");
    let req = Request::get("/api/v1/acknowledgements")
        .header("authorization", "Bearer viewer-token-0123456789")
        .body(Body::empty())
        .expect("request");
    let r = send(&app, req).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["items"].as_array().map(Vec::len), Some(3));
}
