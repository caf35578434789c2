//! The audit webhook endpoint (`POST /api/v1/environments/{env}/audit`): its own token, its
//! body limit, clear refusals of malformed, oversized and unauthenticated posts, and the drifts
//! it makes name their writers (at once for a drift found later, afterwards with a `changed`
//! event for one found before), in the API's answers and in alerts.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use driftguard_core::audit::UserNames;
use driftguard_core::memory::{ManualClock, MemoryLiveSource, MemoryStore};
use driftguard_core::ports::{Clock, LiveChange, LiveSource};
use driftguard_server::metrics::Metrics;
use driftguard_server::state::AppState;
use driftguard_server::testkit;
use driftguard_server::{router, Environment};
use driftguard_test_support::build::deployment;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

const API_TOKEN: &str = "api-token";
const AUDIT_TOKEN: &str = "audit-token";
const MAX_BODY: usize = 64 * 1024;

struct Fixture {
    app: Router,
    state: AppState,
    live: Arc<MemoryLiveSource>,
    clock: Arc<ManualClock>,
    env: Arc<Environment>,
}

/// `prod` keeps an audit index and takes posts; `dev` does not.
async fn fixture(names: UserNames) -> Fixture {
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(testkit::t0()));
    let (prod, git, live) = testkit::audited_environment(
        "prod",
        store.clone(),
        clock.clone(),
        names,
        AUDIT_TOKEN,
        MAX_BODY,
    );
    git.set(testkit::desired(
        "rev-a",
        vec![
            deployment("web").replicas(3).image("web:1").build(),
            deployment("api").replicas(2).image("api:1").build(),
        ],
    ));
    live.set(testkit::live(vec![
        deployment("web").replicas(3).image("web:1").build(),
        deployment("api").replicas(2).image("api:1").build(),
    ]));
    let (dev, _, _) = testkit::memory_environment(
        "dev",
        store.clone(),
        clock.clone(),
        std::time::Duration::from_secs(3600),
        std::time::Duration::from_secs(3600),
    );
    let state = AppState::builder(store, vec![prod.clone(), dev], Arc::new(Metrics::new()))
        .tokens(vec![API_TOKEN.into()])
        .clock(clock.clone())
        .body_limit(1024)
        .build();
    prod.run_scan(&state.scan_context())
        .await
        .expect("first scan");
    Fixture {
        app: router(state.clone()),
        state,
        live,
        clock,
        env: prod,
    }
}

/// An audit event of a write by `who` to Deployment `name` (a scale when `subresource` says
/// so), received `secs` after t0.
fn event(id: &str, who: &str, name: &str, subresource: &str, secs: i64) -> Value {
    let at = (testkit::t0() + chrono::Duration::seconds(secs))
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    json!({"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
        "auditID": id, "stage": "ResponseComplete",
        "requestURI": format!("/apis/apps/v1/namespaces/shop/deployments/{name}/{subresource}"),
        "verb": "patch", "user": {"username": who, "groups": ["dev", "system:authenticated"]},
        "sourceIPs": ["10.1.2.3"], "userAgent": "kubectl/v1.20.2 (linux/amd64) kubernetes/faecb19",
        "objectRef": {"resource": "deployments", "namespace": "shop", "name": name,
            "apiGroup": "apps", "apiVersion": "v1", "subresource": subresource},
        "responseStatus": {"metadata": {}, "code": 200},
        "requestReceivedTimestamp": at, "stageTimestamp": at})
}

fn list(items: Vec<Value>) -> Vec<u8> {
    json!({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "metadata": {}, "items": items})
        .to_string()
        .into_bytes()
}

struct Resp {
    status: StatusCode,
    body: Value,
}

async fn post(app: &Router, env: &str, token: Option<&str>, body: Body) -> Resp {
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(format!("/api/v1/environments/{env}/audit"))
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(t) = token {
        // a whole header value (`scheme credentials`) as it is, else a bearer token
        let value = if t.contains(' ') {
            t.to_owned()
        } else {
            format!("Bearer {t}")
        };
        req = req.header(header::AUTHORIZATION, value);
    }
    send(app, req.body(body).expect("request")).await
}

async fn get(app: &Router, uri: &str) -> Resp {
    let req = Request::builder()
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {API_TOKEN}"))
        .body(Body::empty())
        .expect("request");
    send(app, req).await
}

async fn send(app: &Router, req: Request<Body>) -> Resp {
    let resp = app.clone().oneshot(req).await.expect("answers");
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    Resp {
        status,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

fn error(r: &Resp) -> (&str, &str) {
    (
        r.body["error"]["code"].as_str().unwrap_or(""),
        r.body["error"]["message"].as_str().unwrap_or(""),
    )
}

#[tokio::test]
async fn refusals_are_clear() {
    let f = fixture(UserNames::Keep).await;
    let good = || Body::from(list(vec![event("e1", "alice", "web", "scale", 10)]));
    let basic = |user_pass: &str| {
        use base64::Engine as _;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_pass)
        )
    };
    let wrong_basic = basic("driftguard:nope");
    type Case<'a> = (&'a str, Option<&'a str>, Body, StatusCode, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        (
            "prod",
            None,
            good(),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing audit token",
        ),
        (
            "prod",
            Some("nope"),
            good(),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "invalid audit token",
        ),
        (
            "prod",
            Some(API_TOKEN),
            good(),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "invalid audit token",
        ),
        (
            "prod",
            Some(&wrong_basic),
            good(),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "invalid audit token",
        ),
        (
            "prod",
            Some("Digest abc"),
            good(),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "expected `Authorization: Bearer <token>` or `Authorization: Basic`",
        ),
        (
            "prod",
            Some(AUDIT_TOKEN),
            Body::from("{\"kind\": \"EventList\", \"items\": [}"),
            StatusCode::BAD_REQUEST,
            "invalid_audit_events",
            "not an audit event list: ",
        ),
        (
            "prod",
            Some(AUDIT_TOKEN),
            Body::from(r#"{"kind":"Pod","apiVersion":"v1"}"#),
            StatusCode::BAD_REQUEST,
            "invalid_audit_events",
            "expected kind EventList of audit.k8s.io/v1, found kind `Pod`",
        ),
        (
            "prod",
            Some(AUDIT_TOKEN),
            Body::from(r#"{"kind":"EventList","apiVersion":"audit.k8s.io/v9","items":[]}"#),
            StatusCode::BAD_REQUEST,
            "invalid_audit_events",
            "unsupported apiVersion `audit.k8s.io/v9`",
        ),
        (
            "prod",
            Some(AUDIT_TOKEN),
            Body::from(vec![b' '; MAX_BODY + 1]),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "larger than 65536 bytes (audit.webhook.maxBody)",
        ),
        // authentication comes first: without an audit token, no answer tells which
        // environments exist or have a webhook (it was 404 for these)
        (
            "nowhere",
            None,
            good(),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing audit token",
        ),
        (
            "nowhere",
            Some("nope"),
            good(),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "invalid audit token",
        ),
        (
            "dev",
            Some(API_TOKEN),
            good(),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "invalid audit token",
        ),
        (
            "nowhere",
            Some(AUDIT_TOKEN),
            good(),
            StatusCode::NOT_FOUND,
            "not_found",
            "no environment `nowhere`",
        ),
        (
            "dev",
            Some(AUDIT_TOKEN),
            good(),
            StatusCode::NOT_FOUND,
            "not_found",
            "the audit webhook is not configured for environment `dev`",
        ),
    ];
    for (env, token, body, status, code, message) in cases {
        let r = post(&f.app, env, token, body).await;
        assert_eq!(r.status, status, "{env} {token:?}: {}", r.body);
        let (c, m) = error(&r);
        assert_eq!(c, code, "{}", r.body);
        assert!(m.contains(message), "{m:?} says {message:?}");
    }
    // a body sent without a length (chunked), too large: refused while it is read
    let chunks: Vec<Result<Bytes, std::io::Error>> = (0..20)
        .map(|_| Ok(Bytes::from(vec![b' '; 8 * 1024])))
        .collect();
    let r = post(
        &f.app,
        "prod",
        Some(AUDIT_TOKEN),
        Body::from_stream(futures_util::stream::iter(chunks)),
    )
    .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.body);
    // the token as the password of Basic credentials (what the API server sends over plain
    // HTTP for a server URL with user info)
    let r = post(
        &f.app,
        "prod",
        Some(&basic(&format!("driftguard:{AUDIT_TOKEN}"))),
        good(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // the API's own limit (1 KiB here) does not apply to audit posts, which have their own
    let many: Vec<Value> = (0..40)
        .map(|i| event(&format!("b{i}"), "bob", "api", "", 5))
        .collect();
    let body = list(many);
    assert!(body.len() > 1024);
    let r = post(&f.app, "prod", Some(AUDIT_TOKEN), Body::from(body)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["received"], 40);
    assert_eq!(r.body["indexed"], 40);
    // refusals are counted
    let metrics = f.state.metrics.encode(f.clock.now());
    assert!(
        metrics
            .contains("driftguard_audit_events_total{environment=\"prod\",outcome=\"refused\"} 10"),
        "{metrics}"
    );
}

#[tokio::test]
async fn posted_writes_name_who_made_each_drift() {
    let f = fixture(UserNames::Keep).await;
    // Alice scales web (no manager on 1.20), Bob scales api, a read and a retry of a post
    let body = list(vec![
        event("a1", "alice", "web", "scale", 10),
        event("b1", "bob", "api", "scale", 11),
        json!({"kind": "Event", "auditID": "r1", "stage": "ResponseComplete", "verb": "get",
            "user": {"username": "eve"}, "objectRef": {"resource": "deployments", "name": "web"},
            "responseStatus": {"code": 200}}),
    ]);
    let r = post(&f.app, "prod", Some(AUDIT_TOKEN), Body::from(body.clone())).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"environment": "prod", "received": 3, "indexed": 2, "ignored": 1, "duplicates": 0})
    );
    let again = post(&f.app, "prod", Some(AUDIT_TOKEN), Body::from(body)).await;
    assert_eq!(
        again.body["duplicates"], 2,
        "the API server retried: nothing twice"
    );
    f.live.set(testkit::live(vec![
        deployment("web").replicas(5).image("web:1").build(),
        deployment("api").replicas(4).image("api:1").build(),
    ]));
    f.clock.advance(chrono::Duration::seconds(20));
    f.env.run_scan(&f.state.scan_context()).await.expect("scan");
    let drifts = get(&f.app, "/api/v1/drifts?environment=prod&sort=object").await;
    let who: Vec<&str> = drifts.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|d| d["who"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        who,
        ["bob (kubectl/scale)", "alice (kubectl/scale)"],
        "api, then web"
    );
    let episode = drifts.body["items"][1]["episode"]
        .as_str()
        .expect("episode");
    let detail = get(&f.app, &format!("/api/v1/drifts/{episode}")).await;
    let a = &detail.body["attribution"];
    assert_eq!(a["users"], json!(["alice (kubectl/scale)"]));
    assert_eq!(a["writers"][0]["user"], "alice");
    assert_eq!(a["writers"][0]["user_class"], "person");
    assert_eq!(a["writers"][0]["source_ip"], "10.1.2.3");
    assert_eq!(a["writers"][0]["subresource"], "scale");
    assert_eq!(a["writers"][0]["audit_id"], "a1");
    assert_eq!(a["owners"][0]["path"], "spec.replicas");
    assert_eq!(a["owners"][0]["user"], "alice");
    assert!(
        a["writers"][0]["summary"]
            .as_str()
            .is_some_and(|s| s.starts_with("alice (kubectl/scale, patch, from 10.1.2.3) at ")),
        "{a}"
    );
}

#[tokio::test]
async fn a_late_post_names_the_writer_of_an_open_drift() {
    let f = fixture(UserNames::Hash).await;
    let ctx = f.state.scan_context();
    // the watch sees Alice's change first
    f.clock.advance(chrono::Duration::seconds(12));
    let scope = f.env.scanner.live_scope().expect("scope");
    f.live.set(testkit::live(vec![
        deployment("web").replicas(7).image("web:1").build(),
        deployment("api").replicas(2).image("api:1").build(),
    ]));
    let snap = f.live.snapshot(&scope).await.expect("live");
    let web = snap
        .objects
        .iter()
        .find(|o| o.object.meta().name == "web")
        .expect("web");
    f.env.apply_change(&ctx, &LiveChange::Applied(web)).await;
    let before = get(&f.app, "/api/v1/drifts?environment=prod").await;
    assert_eq!(before.body["items"][0]["who"], "");
    // then the API server's batch arrives
    f.clock.advance(chrono::Duration::seconds(2));
    let r = post(
        &f.app,
        "prod",
        Some(AUDIT_TOKEN),
        Body::from(list(vec![event("a1", "alice", "web", "scale", 11)])),
    )
    .await;
    assert_eq!(r.body["indexed"], 1, "{}", r.body);
    f.env.attribute_pending(&ctx).await;
    let after = get(&f.app, "/api/v1/drifts?environment=prod").await;
    let who = after.body["items"][0]["who"].as_str().expect("who");
    assert!(
        who.starts_with("hmac:") && who.ends_with(" (kubectl/scale)"),
        "{who}"
    );
    assert!(
        !after.body.to_string().contains("alice"),
        "hashed: {}",
        after.body
    );
    let events = get(&f.app, "/api/v1/events?environment=prod&event=changed").await;
    assert_eq!(
        events.body["total"], 1,
        "one changed event names the writer"
    );
    // and so does its alert
    let changed = f
        .state
        .store
        .events(&driftguard_core::query::EventQuery {
            environment: Some("prod".into()),
            kind: Some(driftguard_core::state::EventKind::Changed),
            ..Default::default()
        })
        .await
        .expect("events");
    let view = driftguard_server::notify::EventView::of(&changed.items[0], None);
    assert_eq!(view.who, who);
    assert_eq!(view.writers.len(), 1);
    assert!(
        view.writers[0].contains("(kubectl/scale, patch)"),
        "{:?}",
        view.writers
    );
    let payload = serde_json::to_value(&view).expect("serializes");
    assert!(payload["writers"].is_array(), "{payload}");
    let detail = get(
        &f.app,
        &format!(
            "/api/v1/drifts/{}",
            after.body["items"][0]["episode"].as_str().expect("episode")
        ),
    )
    .await;
    assert!(
        detail.body["attribution"]["writers"][0]["source_ip"].is_null(),
        "no address kept when names are hashed: {}",
        detail.body
    );
}

#[tokio::test]
async fn the_openapi_document_describes_the_endpoint() {
    let f = fixture(UserNames::Keep).await;
    let doc = get(&f.app, "/api/v1/openapi.json").await;
    let op = &doc.body["paths"]["/api/v1/environments/{env}/audit"]["post"];
    for code in ["200", "400", "401", "404", "413", "503"] {
        assert!(op["responses"][code].is_object(), "{code} in {op}");
    }
    assert!(doc.body["components"]["schemas"]["WriterDto"].is_object());
    assert!(doc.body["components"]["schemas"]["AuditAccepted"].is_object());
}
