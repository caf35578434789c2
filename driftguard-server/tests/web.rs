//! The dashboard's pages, sign-in, CSRF protection, security headers and assets
//! (tower::ServiceExt::oneshot), and the event stream on a real listener. The browser tests
//! are in `driftguard-cli/tests/dashboard.rs`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use driftguard_core::engine::{Engine, EnvironmentSpec, Scanner};
use driftguard_core::memory::{ManualClock, MemoryGitSource, MemoryLiveSource, MemoryStore};
use driftguard_core::normalize::{Normalizer, SecretKey};
use driftguard_core::ports::DriftStore;
use driftguard_server::config::{ScopedToken, TokenScope};
use driftguard_server::feed::EventFeed;
use driftguard_server::metrics::Metrics;
use driftguard_server::state::AppState;
use driftguard_server::testkit;
use driftguard_server::web::{assets, CSP};
use driftguard_server::{router, Environment};
use driftguard_test_support::build::deployment;
use http_body_util::BodyExt;
use tower::ServiceExt;

const TOKEN: &str = "web-s3cret-token";

struct Fixture {
    app: Router,
    state: AppState,
    git: Arc<MemoryGitSource>,
    live: Arc<MemoryLiveSource>,
}

/// `dev` on memory sources (web: 5 replicas live, 3 in Git; linked to a repository web page);
/// `prod` with 40 hand-made drifts (every fourth resolved). `tokens`: whether sign-in is
/// needed.
async fn fixture(tokens: bool) -> Fixture {
    fixture_with(tokens, Vec::new()).await
}

/// [`fixture`] with named tokens (`server.apiTokens`) too.
async fn fixture_with(tokens: bool, scoped: Vec<ScopedToken>) -> Fixture {
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(testkit::t0() + chrono::Duration::hours(1)));
    let git = Arc::new(MemoryGitSource::new());
    let live = Arc::new(MemoryLiveSource::new());
    // as under `serve`: the scanner announces to the live feed once the store has the events
    let feed = Arc::new(EventFeed::new());
    let engine = Engine::new(
        EnvironmentSpec::new("dev"),
        Normalizer::new(SecretKey::new(b"test-key".to_vec())),
    );
    let scanner = Scanner::new(
        engine,
        git.clone(),
        live.clone(),
        store.clone(),
        clock.clone(),
    )
    .with_notifier(feed.notifier());
    let dev = Arc::new(
        Environment::new(
            Arc::new(scanner),
            Duration::from_secs(3600),
            Duration::from_secs(3600),
        )
        .with_web_url(Some("https://git.example/org/repo".into())),
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
    testkit::fill_store(store.as_ref() as &dyn DriftStore, "prod", 40, 4)
        .await
        .expect("store filled");
    let state = AppState::builder(store, vec![dev, prod], Arc::new(Metrics::new()))
        .tokens(if tokens { vec![TOKEN.into()] } else { vec![] })
        .scoped_tokens(scoped)
        .clock(clock)
        .feed(feed)
        .build();
    Fixture {
        app: router(state.clone()),
        state,
        git,
        live,
    }
}

#[derive(Debug)]
struct Resp {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    text: String,
}

impl Resp {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The session id this answer sets.
    fn session(&self) -> Option<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|c| c.strip_prefix("driftguard_session="))
            .map(|c| c.split(';').next().unwrap_or("").to_owned())
            .filter(|c| !c.is_empty())
    }

    /// The CSRF token of the page's forms.
    fn csrf(&self) -> String {
        let at = self
            .text
            .find("name=\"csrf\" value=\"")
            .expect("a form with a CSRF token");
        let rest = &self.text[at + "name=\"csrf\" value=\"".len()..];
        rest[..rest.find('"').expect("closing quote")].to_owned()
    }
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
    Resp {
        status,
        headers,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

async fn page(app: &Router, uri: &str, session: Option<&str>) -> Resp {
    let mut req = Request::get(uri).header("host", "127.0.0.1:8080");
    if let Some(s) = session {
        req = req.header("cookie", format!("driftguard_session={s}"));
    }
    send(app, req.body(Body::empty()).expect("request")).await
}

async fn form(
    app: &Router,
    uri: &str,
    session: Option<&str>,
    origin: Option<&str>,
    body: &str,
) -> Resp {
    let mut req = Request::post(uri)
        .header("host", "127.0.0.1:8080")
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some(s) = session {
        req = req.header("cookie", format!("driftguard_session={s}"));
    }
    if let Some(o) = origin {
        req = req.header("origin", o);
    }
    send(app, req.body(Body::from(body.to_owned())).expect("request")).await
}

async fn sign_in(app: &Router) -> String {
    sign_in_with(app, TOKEN).await
}

async fn sign_in_with(app: &Router, token: &str) -> String {
    let r = form(
        app,
        "/login",
        None,
        Some("http://127.0.0.1:8080"),
        &format!("token={token}&next=%2Fdrifts"),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(r.header("location"), "/drifts");
    r.session().expect("a session cookie")
}

fn assert_secure_headers(r: &Resp) {
    assert_eq!(r.header("content-security-policy"), CSP);
    assert!(!CSP.contains("unsafe-inline") && !CSP.contains("unsafe-eval"));
    assert!(CSP.contains("frame-ancestors 'none'") && CSP.contains("script-src 'self'"));
    assert_eq!(r.header("x-frame-options"), "DENY");
    assert_eq!(r.header("x-content-type-options"), "nosniff");
}

/// No inline script, no inline style, no event-handler attribute, no external resource.
fn assert_self_contained(html: &str) {
    for bad in ["<script>", "style=\"", "<style", "javascript:", "http://"] {
        assert!(!html.contains(bad), "the page holds `{bad}`:\n{html}");
    }
    // `onclick=` and the like
    let handler = html.match_indices(" on").any(|(i, _)| {
        let rest = &html[i + 3..];
        let letters = rest.bytes().take_while(u8::is_ascii_lowercase).count();
        letters > 0 && rest.as_bytes().get(letters) == Some(&b'=')
    });
    assert!(!handler, "an event-handler attribute:\n{html}");
    // the only outside address: the configured repository's web page
    let outside = html
        .match_indices("https://")
        .any(|(i, _)| !html[i..].starts_with("https://git.example/org/repo/"));
    assert!(!outside, "an outside address:\n{html}");
}

#[tokio::test]
async fn every_page_renders_with_its_data_and_the_security_headers() {
    let f = fixture(false).await;
    let scan = f
        .state
        .environment("dev")
        .expect("dev")
        .run_scan(&f.state.scan_context())
        .await
        .expect("scan");
    assert_eq!(scan.events, 1);
    let overview = page(&f.app, "/", None).await;
    assert_eq!(overview.status, StatusCode::OK, "{}", overview.text);
    assert_secure_headers(&overview);
    assert_self_contained(&overview.text);
    let cookie = overview
        .headers
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .expect("a session is opened without tokens too (for CSRF)");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    for needle in [
        "id=\"env-dev\"",
        "id=\"env-prod\"",
        "Scan now",
        "Open drifts (all environments)",
        "<svg",
    ] {
        assert!(overview.text.contains(needle), "overview lacks {needle}");
    }
    assert!(
        !overview.text.contains("id=\"fleet-table\""),
        "two environments are cards only"
    );
    // prod: 30 open of 40 (every fourth resolved)
    assert!(
        overview.text.contains("<strong>31</strong> open drifts"),
        "{}",
        overview.text
    );

    let drifts = page(&f.app, "/drifts?environment=dev", None).await;
    assert_eq!(drifts.status, StatusCode::OK);
    assert!(drifts.text.contains("shop/web") && drifts.text.contains("spec.replicas"));
    assert!(
        !drifts.text.contains("ns-1/web-1"),
        "filtered by environment"
    );

    let episode = f
        .state
        .store
        .drifts(&driftguard_core::query::DriftQuery {
            environment: Some("dev".into()),
            ..Default::default()
        })
        .await
        .expect("drifts")
        .items
        .remove(0);
    let detail = page(&f.app, &format!("/drifts/{}", episode.episode), None).await;
    assert_eq!(detail.status, StatusCode::OK, "{}", detail.text);
    assert_self_contained(&detail.text);
    for needle in [
        "<code>spec.replicas</code>",
        "<code>3</code>",
        "<code>5</code>",
        "driftguard explain dev:Deployment.apps/shop/web",
        "https://git.example/org/repo/blob/rev-a/deploy.yaml#L1",
        "Episodes of this object",
        "id=\"findings\"",
        "id=\"actions\"",
    ] {
        assert!(
            detail.text.contains(needle),
            "drift page lacks {needle}:\n{}",
            detail.text
        );
    }
    assert!(
        detail.text.contains(episode.direction_reason()),
        "why the direction"
    );
    // the page and the API read the same query: the API gives the file's web page and the
    // reason for the direction too
    let api = page(&f.app, &format!("/api/v1/drifts/{}", episode.episode), None).await;
    assert_eq!(api.status, StatusCode::OK, "{}", api.text);
    let json: serde_json::Value = serde_json::from_str(&api.text).expect("json");
    assert_eq!(
        json["provenance"]["web_url"],
        "https://git.example/org/repo/blob/rev-a/deploy.yaml#L1"
    );
    assert_eq!(json["direction_reason"], episode.direction_reason());
    // an open drift's suggested remediation, the API's plan, shown and never applied
    let plan = page(
        &f.app,
        &format!("/api/v1/drifts/{}/remediation", episode.episode),
        None,
    )
    .await;
    let plan: serde_json::Value = serde_json::from_str(&plan.text).expect("json");
    let suggested = plan["suggested"].as_str().expect("suggested");
    assert!(
        detail
            .text
            .contains(&format!("Suggested remediation: {suggested}")),
        "{}",
        detail.text
    );
    assert!(detail.text.contains("never applies it"));
    let steps = plan["steps"].as_array().map_or(0, Vec::len);
    assert!(steps > 0, "{plan}");
    let shown = detail
        .text
        .split("<ol class=\"steps\">")
        .nth(1)
        .expect("steps");
    let shown = shown.split("</ol>").next().unwrap_or_default();
    assert_eq!(shown.matches("<li>").count(), steps, "every step: {shown}");
    let inline = page(
        &f.app,
        &format!("/drifts/{}?view=inline", episode.episode),
        None,
    )
    .await;
    assert!(inline.text.contains("class=\"diff-inline\"") && inline.text.contains("- 3"));

    // the risk findings the core put on a drift: its risk, each finding's category, field,
    // reason and rule; the drifts table has a risk column
    let with_findings = page(&f.app, "/drifts/prod-00000000", None).await;
    assert_eq!(
        with_findings.status,
        StatusCode::OK,
        "{}",
        with_findings.text
    );
    for needle in [
        "Risk: <span class=\"badge sev-",
        "<strong>availability</strong>",
        "fewer replicas live",
        "(replicas-cut)",
    ] {
        assert!(
            with_findings.text.contains(needle),
            "findings lack {needle}:\n{}",
            with_findings.text
        );
    }
    let without = page(&f.app, "/drifts/prod-00000001", None).await;
    assert!(without.text.contains("No risk finding beyond the drift"));
    let resolved = f
        .state
        .store
        .drifts(&driftguard_core::query::DriftQuery {
            environment: Some("prod".into()),
            status: driftguard_core::query::DriftStatus::Resolved,
            ..Default::default()
        })
        .await
        .expect("drifts")
        .items
        .remove(0);
    let resolved = page(&f.app, &format!("/drifts/{}", resolved.episode), None).await;
    assert!(
        !resolved.text.contains("Suggested remediation"),
        "a resolved drift needs none"
    );
    let table = page(
        &f.app,
        "/drifts?environment=prod&limit=200&status=all",
        None,
    )
    .await;
    assert!(table.text.contains("<th scope=\"col\">Risk</th>"));

    let object = page(&f.app, "/objects/dev/Deployment/shop/web", None).await;
    assert_eq!(object.status, StatusCode::OK, "{}", object.text);
    assert!(object.text.contains("detected"));
    let events = page(&f.app, "/events?environment=prod", None).await;
    assert_eq!(events.status, StatusCode::OK);
    assert!(
        events.text.contains("50 events"),
        "40 detected, 10 resolved"
    );
    let scans = page(&f.app, "/scans", None).await;
    assert_eq!(scans.status, StatusCode::OK);
    assert!(scans.text.contains("dev") && scans.text.contains("prod"));

    let missing = page(&f.app, "/drifts/nope", None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.text.contains("no drift episode"));
    assert_secure_headers(&missing);
}

#[tokio::test]
async fn a_secret_value_shows_only_as_changed() {
    let f = fixture(false).await;
    let secret = |password: &str| {
        serde_json::json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "creds", "namespace": "shop"},
            "data": {"password": password}})
    };
    // "hunter2" in Git, "letmein" live
    f.git
        .set(testkit::desired("rev-b", vec![secret("aHVudGVyMg==")]));
    f.live.set(testkit::live(vec![secret("bGV0bWVpbg==")]));
    let env = f.state.environment("dev").expect("dev");
    env.run_scan(&f.state.scan_context()).await.expect("scan");
    let d = f
        .state
        .store
        .drifts(&driftguard_core::query::DriftQuery {
            kind: Some("Secret".into()),
            ..Default::default()
        })
        .await
        .expect("drifts")
        .items
        .remove(0);
    for uri in [
        format!("/drifts/{}", d.episode),
        format!("/drifts/{}?view=inline", d.episode),
        "/drifts?kind=Secret".to_owned(),
        "/objects/dev/Secret/shop/creds".to_owned(),
        "/events".to_owned(),
    ] {
        let r = page(&f.app, &uri, None).await;
        assert_eq!(r.status, StatusCode::OK, "{uri}: {}", r.text);
        for value in ["aHVudGVyMg", "bGV0bWVpbg", "hunter2", "letmein"] {
            assert!(!r.text.contains(value), "{uri} shows a Secret value");
        }
        if uri.starts_with("/drifts/") {
            assert!(r.text.contains("data.password"), "{uri}");
            assert!(r.text.contains("(secret value)"), "{uri}: {}", r.text);
        }
    }
}

#[tokio::test]
async fn drift_filters_live_in_the_url_and_use_the_api_rules() {
    let f = fixture(false).await;
    let rows = |text: &str| text.matches("class=\"object\"").count();
    let all = page(&f.app, "/drifts?status=all&environment=prod", None).await;
    assert!(all.text.contains("40 drifts (all)"), "{}", all.text);
    assert_eq!(rows(&all.text), 40);
    let critical = page(&f.app, "/drifts?environment=prod&severity=critical", None).await;
    // open criticals: i % 4 == 3 are critical, and exactly those are resolved
    assert_eq!(rows(&critical.text), 0);
    let high = page(&f.app, "/drifts?environment=prod&severity=high", None).await;
    assert_eq!(rows(&high.text), 10, "{}", high.text);
    let paged = page(&f.app, "/drifts?environment=prod&limit=7&offset=7", None).await;
    assert_eq!(rows(&paged.text), 7);
    assert!(paged.text.contains("8–14 of 30"), "{}", paged.text);
    assert!(paged.text.contains("offset=14") && paged.text.contains("offset=0"));
    // age: the clock is 1 h after the drifts were detected (over 40 s)
    let old = page(&f.app, "/drifts?environment=prod&age=30m", None).await;
    assert_eq!(rows(&old.text), 30);
    let older = page(&f.app, "/drifts?environment=prod&age=2h", None).await;
    assert_eq!(rows(&older.text), 0);
    let sorted = page(&f.app, "/drifts?environment=prod&sort=object", None).await;
    assert!(sorted.text.contains("aria-sort=\"ascending\""));
    let bad = page(&f.app, "/drifts?severity=urgent", None).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.text.contains("severity"), "{}", bad.text);
    let bad_age = page(&f.app, "/drifts?age=soon", None).await;
    assert_eq!(bad_age.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn with_tokens_pages_ask_to_sign_in_and_a_wrong_token_is_refused() {
    let f = fixture(true).await;
    let r = page(&f.app, "/drifts?environment=prod", None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        r.header("location"),
        "/login?next=%2Fdrifts%3Fenvironment%3Dprod"
    );
    let login = page(&f.app, "/login", None).await;
    assert_eq!(login.status, StatusCode::OK);
    assert!(login.text.contains("type=\"password\""));
    // a token is no password of the person's: the browser is not asked to keep it
    assert!(
        login.text.contains("autocomplete=\"off\"") && !login.text.contains("current-password"),
        "{}",
        login.text
    );
    assert_secure_headers(&login);
    assert!(!login.text.contains(TOKEN));

    let wrong = form(
        &f.app,
        "/login",
        None,
        Some("http://127.0.0.1:8080"),
        "token=nope&next=%2F",
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.text.contains("not accepted"));
    assert!(wrong.session().is_none());
    let cross = form(
        &f.app,
        "/login",
        None,
        Some("https://evil.example"),
        &format!("token={TOKEN}"),
    )
    .await;
    assert_eq!(cross.status, StatusCode::FORBIDDEN, "a cross-site sign-in");
    // an open redirect is not offered
    let r = form(
        &f.app,
        "/login",
        None,
        Some("http://127.0.0.1:8080"),
        &format!("token={TOKEN}&next=%2F%2Fevil.example"),
    )
    .await;
    assert_eq!(r.header("location"), "/");

    let s = sign_in(&f.app).await;
    let ok = page(&f.app, "/drifts", Some(&s)).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert!(ok.text.contains("Sign out"));
    assert!(!ok.text.contains(TOKEN), "the token is never in a page");
    // the cookie reads the API (the event stream), never changes anything through it
    let api = page(&f.app, "/api/v1/drifts", Some(&s)).await;
    assert_eq!(api.status, StatusCode::OK);
    let post = form(&f.app, "/api/v1/environments/dev/scan", Some(&s), None, "").await;
    assert_eq!(post.status, StatusCode::UNAUTHORIZED);
    let forged = page(&f.app, "/drifts", Some("forged")).await;
    assert_eq!(forged.status, StatusCode::SEE_OTHER);

    // sign out: the session ends
    let csrf = ok.csrf();
    let out = form(
        &f.app,
        "/logout",
        Some(&s),
        Some("http://127.0.0.1:8080"),
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(out.header("set-cookie").contains("Max-Age=0"));
    assert_eq!(
        page(&f.app, "/drifts", Some(&s)).await.status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn scan_now_needs_the_csrf_token_and_this_origin() {
    let f = fixture(true).await;
    let s = sign_in(&f.app).await;
    let overview = page(&f.app, "/", Some(&s)).await;
    let csrf = overview.csrf();
    let scans = || async {
        f.state
            .store
            .scans(Some("dev"), 10)
            .await
            .expect("scans")
            .len()
    };
    assert_eq!(scans().await, 0);
    let none = form(&f.app, "/environments/dev/scan", Some(&s), None, "").await;
    assert_eq!(none.status, StatusCode::FORBIDDEN);
    let wrong = form(
        &f.app,
        "/environments/dev/scan",
        Some(&s),
        None,
        "csrf=wrong",
    )
    .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    let cross = form(
        &f.app,
        "/environments/dev/scan",
        Some(&s),
        Some("https://evil.example"),
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(cross.status, StatusCode::FORBIDDEN);
    let anonymous = form(
        &f.app,
        "/environments/dev/scan",
        None,
        None,
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(scans().await, 0, "nothing was scanned");
    let ok = form(
        &f.app,
        "/environments/dev/scan",
        Some(&s),
        Some("http://127.0.0.1:8080"),
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.text);
    assert_eq!(ok.header("location"), "/?scan=dev");
    for _ in 0..100 {
        if scans().await == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(scans().await, 1);
    let after = page(&f.app, "/?scan=dev", Some(&s)).await;
    assert!(after.text.contains("A scan of dev was started"));
}

#[tokio::test]
async fn a_session_may_do_only_what_its_token_may() {
    let named = |name: &str, token: &str, scopes: Vec<TokenScope>| ScopedToken {
        name: name.into(),
        token: token.into(),
        scopes,
        grants: Vec::new(),
    };
    let f = fixture_with(
        false,
        vec![
            named("viewer", "viewer-token-1", vec![TokenScope::Read]),
            named(
                "ops",
                "ops-token-2",
                vec![TokenScope::Read, TokenScope::Scan, TokenScope::Remediate],
            ),
        ],
    )
    .await;
    let episode = f
        .state
        .store
        .drifts(&driftguard_core::query::DriftQuery::default())
        .await
        .expect("drifts")
        .items[0]
        .episode
        .clone();
    let scans = || async {
        f.state
            .store
            .scans(Some("dev"), 10)
            .await
            .expect("scans")
            .len()
    };

    // a read-only token: no button that changes anything, and its posts are refused
    let viewer = sign_in_with(&f.app, "viewer-token-1").await;
    let overview = page(&f.app, "/", Some(&viewer)).await;
    assert_eq!(overview.status, StatusCode::OK);
    assert!(!overview.text.contains("Scan now"), "{}", overview.text);
    let csrf = overview.csrf();
    let scan = form(
        &f.app,
        "/environments/dev/scan",
        Some(&viewer),
        Some("http://127.0.0.1:8080"),
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(scan.status, StatusCode::FORBIDDEN);
    assert!(scan.text.contains("`scan` scope"), "{}", scan.text);
    let drifts = page(&f.app, "/drifts", Some(&viewer)).await;
    assert!(
        !drifts.text.contains("name=\"episode\"") && !drifts.text.contains("bulk-form"),
        "no selection for a read-only token"
    );
    let drift = page(&f.app, &format!("/drifts/{episode}"), Some(&viewer)).await;
    assert!(drift.text.contains("Suggested remediation"));
    assert!(!drift.text.contains("remediate-form"));
    let remediate = form(
        &f.app,
        "/drifts/remediate",
        Some(&viewer),
        Some("http://127.0.0.1:8080"),
        &format!("csrf={csrf}&action=revert&episode={episode}"),
    )
    .await;
    assert_eq!(remediate.status, StatusCode::FORBIDDEN);
    assert!(
        remediate.text.contains("`remediate` scope"),
        "{}",
        remediate.text
    );
    // without the session's CSRF token, even the right scope is refused
    let ops = sign_in_with(&f.app, "ops-token-2").await;
    let forged = form(
        &f.app,
        "/drifts/remediate",
        Some(&ops),
        Some("http://127.0.0.1:8080"),
        &format!("csrf={csrf}&episode={episode}"),
    )
    .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(forged.text.contains("expired"), "{}", forged.text);
    assert_eq!(scans().await, 0, "nothing was scanned");

    // a token that may scan and remediate: Scan now; this server has no cluster to
    // remediate, so no remediation button, and a post says why
    let overview = page(&f.app, "/", Some(&ops)).await;
    assert!(overview.text.contains("Scan now"));
    let drifts = page(&f.app, "/drifts", Some(&ops)).await;
    assert!(!drifts.text.contains("bulk-form"));
    let remediate = form(
        &f.app,
        "/drifts/remediate",
        Some(&ops),
        Some("http://127.0.0.1:8080"),
        &format!("csrf={}&episode={episode}", overview.csrf()),
    )
    .await;
    assert_eq!(remediate.status, StatusCode::CONFLICT, "{}", remediate.text);
    assert!(
        remediate.text.contains("not available"),
        "{}",
        remediate.text
    );
    // the API answers the same for the token itself
    let api = send(
        &f.app,
        Request::post(format!("/api/v1/drifts/{episode}/remediate"))
            .header("authorization", "Bearer viewer-token-1")
            .header("content-type", "application/json")
            .body(Body::from("{}"))
            .expect("request"),
    )
    .await;
    assert_eq!(api.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn assets_are_embedded_small_and_versioned() {
    let f = fixture(false).await;
    let overview = page(&f.app, "/", None).await;
    let mut total = 0;
    for name in assets::PAGE_ASSETS {
        let url = assets::url(name);
        assert!(url.contains("?v="), "{url}");
        assert!(overview.text.contains(url), "the page loads {url}");
        let r = page(&f.app, url, None).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.header("cache-control").contains("immutable"));
        assert_self_contained(&r.text);
        total += r.text.len();
    }
    assert_eq!(total, assets::page_bytes());
    eprintln!("first load: {total} bytes of scripts and styles");
    assert!(total < 200 * 1024, "{total} bytes");
    assert_eq!(
        page(&f.app, "/assets/nope.js", None).await.status,
        StatusCode::NOT_FOUND
    );
}

/// Reads the stream until `want` shows in it (or 5 s pass).
async fn read_until(body: &mut Body, want: &str) -> String {
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !seen.contains(want) {
        let frame = tokio::time::timeout_at(deadline, body.frame())
            .await
            .unwrap_or_else(|_| panic!("`{want}` not in the stream:\n{seen}"))
            .expect("the stream goes on")
            .expect("a frame");
        if let Ok(data) = frame.into_data() {
            seen.push_str(&String::from_utf8_lossy(&data));
        }
    }
    seen
}

#[tokio::test]
async fn the_event_stream_announces_stored_events_and_scans() {
    let f = fixture(true).await;
    let unauth = send(
        &f.app,
        Request::get("/api/v1/events/stream")
            .body(Body::empty())
            .expect("req"),
    )
    .await;
    assert_eq!(unauth.status, StatusCode::UNAUTHORIZED);
    let resp = f
        .app
        .clone()
        .oneshot(
            Request::get("/api/v1/events/stream?environment=dev")
                .header("authorization", format!("Bearer {TOKEN}"))
                .body(Body::empty())
                .expect("req"),
        )
        .await
        .expect("infallible");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    let mut body = resp.into_body();
    read_until(&mut body, ": connected").await;
    let env = f.state.environment("dev").expect("dev");
    let summary = env.run_scan(&f.state.scan_context()).await.expect("scan");
    let detected = read_until(&mut body, "event: detected").await;
    assert!(detected.contains("\"scan_id\""), "{detected}");
    let seen = detected + &read_until(&mut body, "event: scan").await;
    assert!(seen.contains(&summary.scan_id), "{seen}");
    assert!(!seen.contains("prod-"), "filtered by environment: {seen}");
    // values never travel in the stream: paths only
    assert!(
        seen.contains("spec.replicas") && !seen.contains("\"live\""),
        "{seen}"
    );
    // closing the feed ends the stream (the server is stopping)
    f.state.feed.close();
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(_)) = body.frame().await {}
    })
    .await;
    assert!(end.is_ok(), "the stream ends when the feed closes");
}

#[tokio::test]
async fn file_links_follow_the_configured_web_page() {
    use driftguard_core::model::{Provenance, Rendering};
    let f = fixture(false).await;
    let env = f.state.environment("dev").expect("dev");
    let p = Provenance {
        file: "envs/prod/web.yaml".into(),
        document: 1,
        line: 12,
        revision: Some("abc123".into()),
        rendered: None,
    };
    assert_eq!(
        env.file_link(&p).as_deref(),
        Some("https://git.example/org/repo/blob/abc123/envs/prod/web.yaml#L12")
    );
    let (prod, _, _) = testkit::memory_environment(
        "x",
        f.state.store.clone(),
        f.state.clock.clone(),
        Duration::from_secs(1),
        Duration::from_secs(1),
    );
    assert_eq!(prod.file_link(&p), None, "no web page configured");
    let gitea = Arc::into_inner(prod).expect("one owner").with_web_url(Some(
        "https://gitea.example/o/r/src/commit/{revision}/{path}#L{line}".into(),
    ));
    assert_eq!(
        gitea.file_link(&p).as_deref(),
        Some("https://gitea.example/o/r/src/commit/abc123/envs/prod/web.yaml#L12")
    );
    let rendered = Provenance {
        rendered: Some(Box::new(Rendering {
            unstable: Vec::new(),
            renderer: "helm".into(),
            source: "charts/web".into(),
            ..Rendering::default()
        })),
        ..p.clone()
    };
    assert_eq!(
        env.file_link(&rendered),
        None,
        "a template is no place in the repository"
    );
    let unknown = Provenance {
        revision: None,
        ..p
    };
    assert_eq!(env.file_link(&unknown), None, "no revision, no link");
}

/// A request for `host`, with a bearer token when given.
async fn get_as_host(app: &Router, uri: &str, host: &str, bearer: Option<&str>) -> Resp {
    let mut req = Request::get(uri).header("host", host);
    if let Some(t) = bearer {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    send(app, req.body(Body::empty()).expect("request")).await
}

#[tokio::test]
async fn without_tokens_every_route_serves_loopback_hosts_only() {
    // DNS rebinding: attacker.example made to resolve to 127.0.0.1 read every drift and
    // started scans (with the CSRF token taken from the page)
    let f = fixture(false).await;
    for uri in [
        "/",
        "/drifts",
        "/login",
        "/assets/app.css",
        "/api/v1/drifts",
        "/api/v1/environments",
        "/api/v1/events/stream",
        "/mcp",
        "/healthz",
        "/readyz",
        "/metrics",
        "/no-such-route",
    ] {
        for host in [
            "attacker.example",
            "attacker.example:8080",
            "127.0.0.1.nip.io",
        ] {
            let r = get_as_host(&f.app, uri, host, None).await;
            assert_eq!(
                r.status,
                StatusCode::FORBIDDEN,
                "{uri} as {host}: {}",
                r.text
            );
            assert!(r.text.contains("host_not_allowed"), "{uri}: {}", r.text);
        }
    }
    let scan = send(
        &f.app,
        Request::post("/environments/dev/scan")
            .header("host", "attacker.example:8080")
            .header("origin", "http://attacker.example:8080")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from("csrf=x"))
            .expect("request"),
    )
    .await;
    assert_eq!(scan.status, StatusCode::FORBIDDEN, "{}", scan.text);
    for host in [
        "localhost:8080",
        "127.0.0.1:8080",
        "[::1]:8080",
        "LOCALHOST",
    ] {
        let r = get_as_host(&f.app, "/api/v1/drifts", host, None).await;
        assert_eq!(r.status, StatusCode::OK, "{host}: {}", r.text);
        assert_eq!(
            get_as_host(&f.app, "/drifts", host, None).await.status,
            StatusCode::OK
        );
    }
    // with tokens the token is the protection: any host
    let t = fixture(true).await;
    let r = get_as_host(&t.app, "/api/v1/drifts", "driftguard.example", Some(TOKEN)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = get_as_host(&t.app, "/login", "driftguard.example", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn next_never_leads_off_this_site_nor_fails() {
    let hostile = [
        "/%09/127.0.0.1:18999/",
        "/%0a/127.0.0.1:18999/",
        "/%0d%0aSet-Cookie:%20x=1",
        "%2F%5C127.0.0.1:18999",
        "//127.0.0.1:18999/",
        "/%E2%80%A8/evil.example",
        "https://evil.example/",
    ];
    // without tokens /login sends the browser on at once
    let open = fixture(false).await;
    for next in hostile {
        let r = page(&open.app, &format!("/login?next={next}"), None).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{next}: {}", r.text);
        assert_eq!(r.header("location"), "/", "{next}");
    }
    // with tokens: the form keeps `/`, and signing in goes there
    let f = fixture(true).await;
    for next in hostile {
        let r = page(&f.app, &format!("/login?next={next}"), None).await;
        assert_eq!(r.status, StatusCode::OK, "{next}: {}", r.text);
        assert!(
            r.text.contains("name=\"next\" value=\"/\""),
            "{next}: {}",
            r.text
        );
        let r = form(
            &f.app,
            "/login",
            None,
            Some("http://127.0.0.1:8080"),
            &format!("token={TOKEN}&next={next}"),
        )
        .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{next}: {}", r.text);
        assert_eq!(r.header("location"), "/", "{next}");
    }
    let r = page(&f.app, "/login?next=%2Fdrifts%3Fenvironment%3Dprod", None).await;
    assert!(r.text.contains("/drifts?environment=prod"), "{}", r.text);
}

#[tokio::test]
async fn an_age_too_long_for_a_date_is_a_bad_request() {
    // `DateTime - TimeDelta overflowed` made this a panic (500)
    let f = fixture(false).await;
    for age in [
        "99999999999d",
        "2000000000w",
        "1000000d",
        "18446744073709551615",
    ] {
        let r = page(&f.app, &format!("/drifts?age={age}"), None).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{age}: {}", r.text);
        assert!(r.text.contains("age:"), "{age}: {}", r.text);
    }
    let r = page(&f.app, "/drifts?age=7d", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // the API's times are parsed, never computed: far dates are answered
    for q in [
        "detected_before=9999-12-31T23:59:59-23:59",
        "detected_before=0000-01-01T00:00:00%2B23:59",
    ] {
        let r = page(&f.app, &format!("/api/v1/drifts?{q}"), None).await;
        assert_eq!(r.status, StatusCode::OK, "{q}: {}", r.text);
    }
    for q in [
        "since=0000-01-01T00:00:00%2B23:59",
        "until=9999-12-31T23:59:59-23:59",
    ] {
        let r = page(&f.app, &format!("/api/v1/events?{q}"), None).await;
        assert_eq!(r.status, StatusCode::OK, "{q}: {}", r.text);
    }
}

/// `req` as if it came over a connection from `peer`.
fn from_peer(mut req: Request<Body>, peer: &str) -> Request<Body> {
    let addr: std::net::SocketAddr = format!("{peer}:40000").parse().expect("address");
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(driftguard_server::guard::Peer(
            addr,
        )));
    req
}

fn sign_in_request(token: &str, peer: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut req = Request::post("/login")
        .header("host", "127.0.0.1:8080")
        .header("origin", "http://127.0.0.1:8080")
        .header("content-type", "application/x-www-form-urlencoded");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    from_peer(
        req.body(Body::from(format!("token={token}&next=%2Fdrifts")))
            .expect("request"),
        peer,
    )
}

#[tokio::test]
async fn failed_sign_ins_and_token_checks_are_limited_per_client() {
    // 300 wrong sign-ins in 8 s got no slowdown
    let f = fixture(true).await;
    let burst = driftguard_server::config::FAILURES_BURST;
    for i in 0..burst {
        let r = send(&f.app, sign_in_request("wrong-token", "192.0.2.7", &[])).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    let r = send(&f.app, sign_in_request("wrong-token", "192.0.2.7", &[])).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    let wait: u64 = r
        .header("retry-after")
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&wait), "{wait}");
    // while held, even the right token is not heard (else guesses would still be told apart)
    let r = send(&f.app, sign_in_request(TOKEN, "192.0.2.7", &[])).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    // another client is not held
    let r = send(&f.app, sign_in_request(TOKEN, "192.0.2.8", &[])).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);

    // bearer checks: the same limit, in the API's error shape
    let bearer = |token: &str, peer: &str| {
        from_peer(
            Request::get("/api/v1/drifts")
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .expect("request"),
            peer,
        )
    };
    for _ in 0..burst {
        let r = send(&f.app, bearer("wrong-token", "198.51.100.4")).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let r = send(&f.app, bearer(TOKEN, "198.51.100.4")).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    assert!(r.text.contains("too_many_failures"), "{}", r.text);
    assert!(!r.header("retry-after").is_empty());
    let r = send(&f.app, bearer(TOKEN, "198.51.100.5")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // an untrusted peer's X-Forwarded-For is not believed: still the peer's count
    let spoofed = |token: &str, xff: &str| {
        from_peer(
            Request::get("/api/v1/drifts")
                .header("authorization", format!("Bearer {token}"))
                .header("x-forwarded-for", xff)
                .body(Body::empty())
                .expect("request"),
            "198.51.100.4",
        )
    };
    let r = send(&f.app, spoofed(TOKEN, "203.0.113.1")).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
}

/// A server with tokens behind a proxy at 10.0.0.0/8.
async fn behind_proxy() -> Router {
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(testkit::t0()));
    let (prod, _, _) = testkit::memory_environment(
        "prod",
        store.clone(),
        clock.clone(),
        Duration::from_secs(3600),
        Duration::from_secs(3600),
    );
    let state = AppState::builder(store, vec![prod], Arc::new(Metrics::new()))
        .tokens(vec![TOKEN.into()])
        .trusted_proxies(vec!["10.0.0.0/8".parse().expect("range")])
        .clock(clock)
        .build();
    router(state)
}

#[tokio::test]
async fn a_trusted_proxy_s_https_makes_the_cookie_secure_and_host_only() {
    // the cookie was Secure only when publicUrl was https, never behind a TLS proxy
    let app = behind_proxy().await;
    let https = [("x-forwarded-proto", "https")];
    let r = send(&app, sign_in_request(TOKEN, "10.1.2.3", &https)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let cookie = r.header("set-cookie").to_owned();
    // attributes in any order (the cookie crate writes `Path` after `Secure`)
    let attributes: Vec<&str> = cookie.split("; ").collect();
    assert!(
        cookie.starts_with("__Host-driftguard_session=")
            && attributes.contains(&"Path=/")
            && attributes.contains(&"Secure")
            && !cookie.to_ascii_lowercase().contains("domain"),
        "{cookie}"
    );
    let id = cookie
        .trim_start_matches("__Host-driftguard_session=")
        .split(';')
        .next()
        .expect("value")
        .to_owned();
    let visit = |name: &str| {
        from_peer(
            Request::get("/drifts")
                .header("host", "driftguard.example")
                .header("x-forwarded-proto", "https")
                .header("cookie", format!("{name}={id}"))
                .body(Body::empty())
                .expect("request"),
            "10.1.2.3",
        )
    };
    assert_eq!(
        send(&app, visit("__Host-driftguard_session")).await.status,
        StatusCode::OK
    );
    // over HTTPS a cookie without the prefix (one a neighbouring site could set) is not read
    assert_eq!(
        send(&app, visit("driftguard_session")).await.status,
        StatusCode::SEE_OTHER
    );
    // X-Forwarded-Proto from anyone else is not believed
    let r = send(&app, sign_in_request(TOKEN, "192.0.2.9", &https)).await;
    let cookie = r.header("set-cookie");
    assert!(
        cookie.starts_with("driftguard_session=") && !cookie.contains("Secure"),
        "{cookie}"
    );
    // behind the proxy, failures count per forwarded client
    for _ in 0..driftguard_server::config::FAILURES_BURST {
        let r = send(
            &app,
            sign_in_request(
                "wrong-token",
                "10.1.2.3",
                &[("x-forwarded-for", "198.51.100.1")],
            ),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let held = send(
        &app,
        sign_in_request(TOKEN, "10.1.2.3", &[("x-forwarded-for", "198.51.100.1")]),
    )
    .await;
    assert_eq!(held.status, StatusCode::TOO_MANY_REQUESTS);
    let other = send(
        &app,
        sign_in_request(
            TOKEN,
            "10.1.2.3",
            &[("x-forwarded-for", "198.51.100.1, 198.51.100.2")],
        ),
    )
    .await;
    assert_eq!(
        other.status,
        StatusCode::SEE_OTHER,
        "the nearest untrusted address"
    );
}

#[tokio::test]
async fn signing_out_ends_the_session_s_event_stream() {
    // a stream opened before sign-out kept delivering events after it
    let f = fixture(true).await;
    let s = sign_in(&f.app).await;
    let resp = f
        .app
        .clone()
        .oneshot(
            Request::get("/api/v1/events/stream")
                .header("cookie", format!("driftguard_session={s}"))
                .body(Body::empty())
                .expect("req"),
        )
        .await
        .expect("infallible");
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    read_until(&mut body, ": connected").await;
    let csrf = page(&f.app, "/drifts", Some(&s)).await.csrf();
    let out = form(
        &f.app,
        "/logout",
        Some(&s),
        Some("http://127.0.0.1:8080"),
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    let env = f.state.environment("dev").expect("dev");
    env.run_scan(&f.state.scan_context()).await.expect("scan");
    let mut after = String::new();
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(d) = frame.into_data() {
                after.push_str(&String::from_utf8_lossy(&d));
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the stream ends with the session");
    assert!(!after.contains("event:"), "nothing after sign-out: {after}");
}

#[tokio::test]
async fn bidi_controls_in_names_and_values_are_shown_not_obeyed() {
    // `\u{202E}` in a name reordered the page's text
    let f = fixture(false).await;
    let name = "web\u{202E}lmth.exe";
    f.git.set(testkit::desired(
        "rev-b",
        vec![deployment(name).replicas(3).image("web:1\u{2067}").build()],
    ));
    f.live.set(testkit::live(vec![deployment(name)
        .replicas(5)
        .image("web:2\u{2067}")
        .build()]));
    let env = f.state.environment("dev").expect("dev");
    env.run_scan(&f.state.scan_context()).await.expect("scan");
    let list = page(&f.app, "/drifts?environment=dev", None).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    assert!(list.text.contains("web\\u{202E}lmth.exe"), "{}", list.text);
    let link = list
        .text
        .match_indices("href=\"/drifts/")
        .map(|(i, _)| &list.text[i + 6..])
        .map(|rest| &rest[..rest.find('"').expect("closing quote")])
        .find(|href| !href.contains('?'))
        .expect("a drift link")
        .to_owned();
    let one = page(&f.app, &link, None).await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.text);
    for p in [&list, &one] {
        assert!(
            !p.text
                .chars()
                .any(driftguard_server::web::view::is_bidi_control),
            "a bidi control reached the page:\n{}",
            p.text
        );
    }
    assert!(one.text.contains("\\u{2067}"), "values too: {}", one.text);
}

/// `n` environments `fleet-00`.. on one memory store; `drifts` gives some of them open drifts
/// (by index: how many; severities low, medium, high, critical in turn).
async fn fleet(n: usize, drifts: &[(usize, usize)]) -> Router {
    let store: Arc<dyn DriftStore> = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(testkit::t0() + chrono::Duration::hours(1)));
    let mut envs = Vec::new();
    for i in 0..n {
        let name = format!("fleet-{i:02}");
        let (env, _, _) = testkit::memory_environment(
            &name,
            store.clone(),
            clock.clone(),
            Duration::from_secs(3600),
            Duration::from_secs(3600),
        );
        envs.push(env);
        if let Some((_, k)) = drifts.iter().find(|(e, _)| *e == i) {
            testkit::fill_store(store.as_ref(), &name, *k, 0)
                .await
                .expect("store filled");
        }
    }
    let state = AppState::builder(store, envs, Arc::new(Metrics::new()))
        .clock(clock)
        .build();
    router(state)
}

/// Where each needle first shows in `text`, in the order given (a needle missing fails).
fn positions(text: &str, needles: &[String]) -> Vec<usize> {
    needles
        .iter()
        .map(|n| text.find(n.as_str()).unwrap_or_else(|| panic!("no {n}")))
        .collect()
}

fn is_sorted(v: &[usize]) -> bool {
    v.windows(2).all(|w| w[0] < w[1])
}

#[tokio::test]
async fn up_to_two_dozen_environments_each_is_a_card() {
    let app = fleet(24, &[(3, 2)]).await;
    let overview = page(&app, "/", None).await;
    assert_eq!(overview.status, StatusCode::OK, "{}", overview.text);
    assert_eq!(overview.text.matches("<li class=\"card\"").count(), 24);
    assert!(!overview.text.contains("id=\"fleet-table\""));
    assert!(overview
        .text
        .contains("in <strong>1</strong> of 24 environments"));
}

#[tokio::test]
async fn a_fleet_shows_the_environments_needing_attention_as_cards_and_every_one_in_a_table() {
    // fleet-03: 8 open drifts (2 critical), fleet-07: 4 (1 critical), fleet-11: 1 (low)
    let app = fleet(30, &[(11, 1), (7, 4), (3, 8)]).await;
    let overview = page(&app, "/", None).await;
    assert_eq!(overview.status, StatusCode::OK, "{}", overview.text);
    assert_self_contained(&overview.text);
    let text = &overview.text;
    assert!(
        text.contains("<strong>13</strong> open drifts") && text.contains("of 30 environments"),
        "{text}"
    );
    // cards: only the drifted ones, the most critical first
    assert_eq!(text.matches("<li class=\"card\"").count(), 3, "{text}");
    let cards = positions(
        text,
        &["fleet-03", "fleet-07", "fleet-11"].map(|e| format!("id=\"env-{e}\"")),
    );
    assert!(is_sorted(&cards), "{cards:?}");
    assert!(
        !text.contains("id=\"env-fleet-00\""),
        "an environment in sync is no card"
    );
    // the table: a row per environment, worst first by default
    assert!(text.contains("id=\"fleet-table\""));
    assert_eq!(text.matches("<tr id=\"row-fleet-").count(), 30);
    assert!(text
        .contains("aria-sort=\"descending\"><a href=\"/?range=24h&#38;sort=status#fleet\">Status"));
    let worst_first = positions(
        text,
        &["fleet-03", "fleet-07", "fleet-11", "fleet-00", "fleet-29"]
            .map(|e| format!("id=\"row-{e}\"")),
    );
    assert!(is_sorted(&worst_first), "{worst_first:?}");
    // a row links to the environment's drifts and has its own Scan button
    assert!(text.contains("<a href=\"/drifts?environment=fleet-29\">fleet-29</a>"));
    assert!(text.contains("aria-label=\"Scan fleet-29 now\""));

    // sorted by name, by open drifts; the range keeps the sort
    let by_name = page(&app, "/?sort=name", None).await.text;
    let names: Vec<String> = (0..30)
        .map(|i| format!("id=\"row-fleet-{i:02}\""))
        .collect();
    assert!(is_sorted(&positions(&by_name, &names)));
    assert!(by_name.contains(
        "aria-sort=\"ascending\"><a href=\"/?range=24h&#38;sort=name#fleet\">Environment"
    ));
    assert!(by_name.contains("href=\"/?range=7d&#38;sort=name\""));
    let by_open = page(&app, "/?sort=open", None).await.text;
    let most = positions(
        &by_open,
        &["fleet-03", "fleet-07", "fleet-11", "fleet-00"].map(|e| format!("id=\"row-{e}\"")),
    );
    assert!(is_sorted(&most), "{most:?}");
    // an unknown sort is the default one
    let unknown = page(&app, "/?sort=nope", None).await;
    assert_eq!(unknown.status, StatusCode::OK);
    assert!(unknown.text.contains("sorted by status, worst first"));
}

/// The drift page's Acknowledge button (with the CSRF token, by a session that may scan)
/// marks the drift on its page and in the drifts table, whose filter finds it or leaves it
/// out; Withdraw ends it. A read-only session sees no form and may not post one.
#[tokio::test]
async fn a_drift_is_acknowledged_and_withdrawn_from_its_page() {
    let f = fixture_with(
        true,
        vec![ScopedToken {
            name: "viewer".into(),
            token: "viewer-web-token-0123".into(),
            scopes: vec![TokenScope::Read],
            grants: Vec::new(),
        }],
    )
    .await;
    let s = sign_in(&f.app).await;
    let drifts = page(&f.app, "/drifts?environment=prod", Some(&s)).await;
    let at = drifts
        .text
        .find("href=\"/drifts/prod-")
        .expect("a drift link");
    let rest = &drifts.text[at + "href=\"".len()..];
    let link = rest[..rest.find('"').expect("quote")].to_owned();
    let before = page(&f.app, &link, Some(&s)).await;
    assert!(
        before.text.contains("id=\"ack-button\""),
        "the form is there"
    );
    let csrf = before.csrf();
    let action = format!("{link}/acknowledge");
    let origin = Some("http://127.0.0.1:8080");
    let none = form(&f.app, &action, Some(&s), origin, "reason=known").await;
    assert_eq!(none.status, StatusCode::FORBIDDEN, "no CSRF token");
    let ok = form(
        &f.app,
        &action,
        Some(&s),
        origin,
        &format!("csrf={csrf}&reason=load+test+until+Friday&until=3d"),
    )
    .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.text);
    assert_eq!(ok.header("location"), link);
    let after = page(&f.app, &link, Some(&s)).await;
    assert!(
        after.text.contains("acknowledged by token")
            && after.text.contains("load test until Friday")
            && after.text.contains("id=\"ack-withdraw\""),
        "{}",
        after.text
    );
    let marked = page(
        &f.app,
        "/drifts?environment=prod&acknowledged=true",
        Some(&s),
    )
    .await;
    assert_eq!(
        marked.text.matches("badge ack").count(),
        1,
        "{}",
        marked.text
    );
    let others = page(
        &f.app,
        "/drifts?environment=prod&acknowledged=false",
        Some(&s),
    )
    .await;
    assert!(!others.text.contains(&link), "left out");
    assert!(
        others.text.contains("href=\"/drifts/prod-"),
        "the others stay"
    );
    // a read-only session: no form, and a post is refused
    let v = sign_in_with(&f.app, "viewer-web-token-0123").await;
    let seen = page(&f.app, &link, Some(&v)).await;
    assert!(!seen.text.contains("id=\"ack-form\""));
    let refused = form(
        &f.app,
        &action,
        Some(&v),
        origin,
        &format!("csrf={}&withdraw=1", seen.csrf()),
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    // withdrawn
    let ok = form(
        &f.app,
        &action,
        Some(&s),
        origin,
        &format!("csrf={csrf}&withdraw=1"),
    )
    .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.text);
    let after = page(&f.app, &link, Some(&s)).await;
    assert!(after.text.contains("(lapsed: withdrawn)"), "{}", after.text);
    assert!(after.text.contains("id=\"ack-button\""));
}

/// A binding by labels (`environmentLabels`) holds in the discovered environments whose tool's
/// object carries them, in the API and on the dashboard, and follows the labels as they change.
#[tokio::test]
async fn a_role_bound_by_labels_holds_in_the_discovered_environments_that_carry_them() {
    use driftguard_server::auth::Grant;
    use driftguard_server::config::discover::{Tool, ToolVerdict};
    use driftguard_server::config::Role;
    use driftguard_server::verdicts::ToolStatus;
    let f = fixture_with(
        true,
        vec![ScopedToken {
            name: "webteam".into(),
            token: "webteam-token-012345".into(),
            scopes: Vec::new(),
            grants: vec![Grant {
                role: Role::Operator,
                environments: Vec::new(),
                labels: [("team".to_owned(), "web".to_owned())].into(),
            }],
        }],
    )
    .await;
    let labelled = |team: &str| ToolStatus {
        tool: Tool::ArgoCd,
        kind: "Application".into(),
        namespace: "argocd".into(),
        name: "dev".into(),
        source: None,
        verdict: ToolVerdict::default(),
        labels: [("team".to_owned(), team.to_owned())].into(),
        observed_at: chrono::Utc::now(),
    };
    let api = |method: &'static str, uri: &'static str| {
        let app = f.app.clone();
        async move {
            send(
                &app,
                Request::builder()
                    .method(method)
                    .uri(uri)
                    .header("authorization", "Bearer webteam-token-012345")
                    .body(Body::empty())
                    .expect("req"),
            )
            .await
        }
    };
    // dev comes from an Application labelled team=web: the binding holds there, not in prod
    f.state
        .verdicts
        .set("dev", labelled("web"), &f.state.metrics);
    let envs = api("GET", "/api/v1/environments").await;
    assert!(
        envs.text.contains("\"dev\"") && !envs.text.contains("\"prod\""),
        "{}",
        envs.text
    );
    let scan = api("POST", "/api/v1/environments/dev/scan").await;
    assert_eq!(scan.status, StatusCode::OK, "{}", scan.text);
    let scan = api("POST", "/api/v1/environments/prod/scan").await;
    assert_eq!(scan.status, StatusCode::FORBIDDEN, "{}", scan.text);
    // the dashboard, signed in with the token, sees the same
    let s = sign_in_with(&f.app, "webteam-token-012345").await;
    let overview = page(&f.app, "/", Some(&s)).await;
    assert!(
        overview.text.contains(">dev<") && !overview.text.contains(">prod<"),
        "{}",
        overview.text
    );
    // the Application's label changes: from the next request on, dev is not the team's
    f.state
        .verdicts
        .set("dev", labelled("api"), &f.state.metrics);
    let scan = api("POST", "/api/v1/environments/dev/scan").await;
    assert_eq!(scan.status, StatusCode::FORBIDDEN, "{}", scan.text);
    let overview = page(&f.app, "/", Some(&s)).await;
    assert!(!overview.text.contains(">dev<"), "{}", overview.text);
}

/// Roles per environment, one check everywhere: a token bound as viewer of `prod*` and
/// operator of nothing else sees only prod in the API, the dashboard and the event stream,
/// may not scan or acknowledge; an operator of `dev` scans dev but not prod; a remediator of
/// dev may not turn the kill switch.
#[tokio::test]
async fn roles_per_environment_hold_for_the_api_the_dashboard_and_the_stream() {
    use driftguard_server::auth::Grant;
    use driftguard_server::config::Role;
    let bound = |name: &str, token: &str, role: Role, envs: &[&str]| ScopedToken {
        name: name.into(),
        token: token.into(),
        scopes: Vec::new(),
        grants: vec![Grant {
            role,
            environments: envs.iter().map(|e| (*e).to_owned()).collect(),
            labels: Default::default(),
        }],
    };
    let f = fixture_with(
        true,
        vec![
            bound("prodview", "prodview-token-0123", Role::Viewer, &["prod*"]),
            bound("devops", "devops-token-012345", Role::Remediator, &["dev"]),
        ],
    )
    .await;
    let env = f.state.environment("dev").expect("dev");
    env.run_scan(&f.state.scan_context()).await.expect("scan");
    let api = |token: &'static str, method: &'static str, uri: String| {
        let app = f.app.clone();
        async move {
            send(
                &app,
                Request::builder()
                    .method(method)
                    .uri(uri)
                    .header("authorization", format!("Bearer {token}"))
                    .header("content-type", "application/json")
                    .body(Body::from(
                        "{\"reason\": \"known\", \"environment\": \"prod\"}",
                    ))
                    .expect("req"),
            )
            .await
        }
    };
    let pv = "prodview-token-0123";
    let envs = api(pv, "GET", "/api/v1/environments".into()).await;
    assert!(
        envs.text.contains("\"prod\"") && !envs.text.contains("\"dev\""),
        "{}",
        envs.text
    );
    let drifts = api(pv, "GET", "/api/v1/drifts?status=all&limit=1000".into()).await;
    let v: serde_json::Value = serde_json::from_str(&drifts.text).expect("json");
    assert_eq!(v["total"], 40, "prod's only: {}", drifts.text);
    assert!(!drifts.text.contains("\"environment\":\"dev\""));
    let dev_list = api(pv, "GET", "/api/v1/drifts?environment=dev".into()).await;
    assert_eq!(dev_list.status, StatusCode::NOT_FOUND);
    let dev_episode = {
        let all = api(TOKEN, "GET", "/api/v1/drifts?environment=dev".into()).await;
        let v: serde_json::Value = serde_json::from_str(&all.text).expect("json");
        v["items"][0]["episode"]
            .as_str()
            .expect("dev drift")
            .to_owned()
    };
    let one = api(pv, "GET", format!("/api/v1/drifts/{dev_episode}")).await;
    assert_eq!(one.status, StatusCode::NOT_FOUND, "as if it did not exist");
    let events = api(pv, "GET", "/api/v1/events?limit=1000".into()).await;
    assert!(
        !events.text.contains("\"environment\":\"dev\""),
        "{}",
        events.text
    );
    // a viewer may not scan nor acknowledge
    let scan = api(pv, "POST", "/api/v1/environments/prod/scan".into()).await;
    assert_eq!(scan.status, StatusCode::FORBIDDEN);
    let ack = api(pv, "POST", "/api/v1/acknowledgements".into()).await;
    assert_eq!(ack.status, StatusCode::FORBIDDEN);
    // an operator of dev: dev yes, prod no (named)
    let dv = "devops-token-012345";
    let scan = api(dv, "POST", "/api/v1/environments/dev/scan".into()).await;
    assert_eq!(scan.status, StatusCode::OK, "{}", scan.text);
    let scan = api(dv, "POST", "/api/v1/environments/prod/scan".into()).await;
    assert_eq!(scan.status, StatusCode::FORBIDDEN);
    assert!(scan.text.contains("`prod`"), "{}", scan.text);
    let ack = api(dv, "POST", "/api/v1/acknowledgements".into()).await;
    assert_eq!(
        ack.status,
        StatusCode::NOT_FOUND,
        "prod is not dev's: {}",
        ack.text
    );
    let pause = api(dv, "POST", "/api/v1/remediation/pause".into()).await;
    assert_eq!(pause.status, StatusCode::FORBIDDEN, "{}", pause.text);
    // the dashboard, signed in as the prod viewer
    let s = sign_in_with(&f.app, pv).await;
    let overview = page(&f.app, "/", Some(&s)).await;
    assert!(!overview.text.contains(">dev<"), "{}", overview.text);
    let table = page(&f.app, "/drifts?status=all&limit=100", Some(&s)).await;
    assert!(table.text.contains("prod-") && !table.text.contains(&dev_episode));
    let hidden = page(&f.app, &format!("/drifts/{dev_episode}"), Some(&s)).await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND);
    // the stream: nothing of dev reaches the prod viewer
    let resp = f
        .app
        .clone()
        .oneshot(
            Request::get("/api/v1/events/stream")
                .header("authorization", format!("Bearer {pv}"))
                .body(Body::empty())
                .expect("req"),
        )
        .await
        .expect("infallible");
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    read_until(&mut body, ": connected").await;
    f.live.set(testkit::live(vec![
        deployment("web").replicas(9).image("web:1").build(),
        deployment("api").replicas(2).image("api:1").build(),
    ]));
    env.run_scan(&f.state.scan_context()).await.expect("scan");
    let prod_drift = f
        .state
        .store
        .drift("prod-00000000")
        .await
        .expect("reads")
        .expect("a prod drift");
    f.state
        .feed
        .publish_events(&[driftguard_core::testkit::event(
            driftguard_core::state::EventKind::Changed,
            &prod_drift,
            testkit::t0(),
            "s-prod",
        )]);
    let seen = read_until(&mut body, "event: changed").await;
    assert!(seen.contains("prod-00000000"), "{seen}");
    assert!(!seen.contains("\"dev\""), "nothing of dev: {seen}");
}

/// Failed sign-ins are recorded as people's actions, counted per client and minute, and shown
/// on the events page and by the API (to a caller who reads every environment).
#[tokio::test]
async fn failed_sign_ins_are_counted_in_the_history() {
    let f = fixture(true).await;
    for _ in 0..3 {
        let r = form(
            &f.app,
            "/login",
            None,
            Some("http://127.0.0.1:8080"),
            "token=wrong-token-0123456789&next=%2F",
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    }
    let actions = f.state.store.actions(None, 10).await.expect("reads");
    assert_eq!(
        actions.len(),
        1,
        "one record per client and minute: {actions:?}"
    );
    assert_eq!(actions[0].count, 3);
    assert_eq!(
        actions[0].who, "unknown",
        "no connection in this test: no address"
    );
    let s = sign_in(&f.app).await;
    let page = page(&f.app, "/events", Some(&s)).await;
    assert!(page.text.contains("sign-in-failed ×3"), "{}", page.text);
}
