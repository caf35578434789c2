//! Sign-in with OpenID Connect against a real provider: panva's `oidc-provider` (an OpenID
//! Certified implementation, started by `scripts/test-services.sh up` through
//! `scripts/oidc/start.sh`; `OIDC_ISSUER` and `OIDC_CLIENT_SECRET_FILE` name it), driven
//! through Debian's Chromium with fantoccini, `serve`'s application on a real listener.
//!
//! - alice (group `platform`, bound as operator of `prod-*`) signs in through the provider's
//!   login page and sees only `prod-eu`, on the dashboard, the API and the event stream;
//!   signing out ends the session (its cookie is refused, its stream ends) and signs her out
//!   at the provider. The ops token and MCP keep working with bearer tokens beside it.
//! - bob (group `team-dev`, bound to nothing) and carol (an e-mail domain not allowed) are
//!   refused with a 403 page saying why; both failures are in the history of actions.
//! - a real ID token of the provider, changed, signed by another key, or past its expiry by
//!   the injected clock, is refused; a state of another sign-in is refused, and a sign-in is
//!   used once.
//! - the issuer's keys are fetched again, once, for a rotated key.
//! - an unreachable provider and a callback of no sign-in are pages saying why.
//!
//! A missing provider, chromium or chromedriver fails the test (never a skip).

use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use driftguard_core::memory::{ManualClock, MemoryStore};
use driftguard_core::ports::DriftStore;
use driftguard_server::auth::oidc::{flow, token, Callback, Oidc, SignInError, TokenError};
use driftguard_server::config::{OidcSettings, Role, RoleBinding, ScopedToken, TokenScope};
use driftguard_server::metrics::Metrics;
use driftguard_server::state::AppState;
use driftguard_server::testkit;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

const OPS_TOKEN: &str = "oidc-test-ops-token-4e1f";

fn issuer() -> String {
    driftguard_test_support::service("OIDC_ISSUER", "the OpenID provider (oidc-provider)")
}

fn settings(bindings: Vec<RoleBinding>) -> OidcSettings {
    let file = driftguard_test_support::service(
        "OIDC_CLIENT_SECRET_FILE",
        "the OpenID provider's client secret",
    );
    OidcSettings {
        issuer: issuer(),
        client_id: "driftguard".into(),
        client_secret: std::fs::read_to_string(&file)
            .expect("the client secret file")
            .trim()
            .to_owned(),
        scopes: ["openid", "email", "profile", "groups"]
            .map(str::to_owned)
            .to_vec(),
        groups_claim: "groups".into(),
        allowed_email_domains: vec!["acme.example".into()],
        redirect_base_url: None,
        bindings,
    }
}

fn platform_operates_prod() -> Vec<RoleBinding> {
    vec![RoleBinding {
        role: Role::Operator,
        environments: vec!["prod-*".into()],
        environment_labels: Default::default(),
        tokens: Vec::new(),
        groups: vec!["platform".into()],
        users: Vec::new(),
    }]
}

/// `serve`'s application on 127.0.0.1 with `prod-eu` and `dev-sandbox` (drifts in both),
/// sign-in with the provider and one API token (`ops`, read everywhere). Its base URL.
async fn serve(oidc: Oidc) -> (String, AppState) {
    let store: Arc<dyn DriftStore> = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(testkit::t0()));
    let mut envs = Vec::new();
    for name in ["prod-eu", "dev-sandbox"] {
        let (env, _, _) = testkit::memory_environment(
            name,
            store.clone(),
            clock.clone(),
            Duration::from_secs(3600),
            Duration::from_secs(3600),
        );
        testkit::fill_store(store.as_ref(), name, 6, 3)
            .await
            .expect("store filled");
        envs.push(env);
    }
    // the real clock: the provider's tokens are of now
    let state = AppState::builder(store, envs, Arc::new(Metrics::new()))
        .scoped_tokens(vec![ScopedToken {
            name: "ops".into(),
            token: OPS_TOKEN.into(),
            scopes: vec![TokenScope::Read],
            grants: Vec::new(),
        }])
        .oidc(Some(Arc::new(oidc)))
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let served = state.clone();
    tokio::spawn(
        async move { driftguard_server::run(listener, served, std::future::pending()).await },
    );
    (base, state)
}

/// chromedriver on a free port, stopped (with its browsers) when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_driver() -> Driver {
    let bin = driftguard_test_support::program("chromedriver", &["--version"]);
    driftguard_test_support::program("chromium", &["--version"]);
    let port = driftguard_test_support::free_port();
    let child = Command::new(bin)
        .arg(format!("--port={port}"))
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen");
        std::thread::sleep(Duration::from_millis(100));
    }
    Driver { child, port }
}

/// A fresh Chromium (its own profile: no provider session).
async fn browser(driver: &Driver, profile: &Path) -> Client {
    let args = vec![
        "--headless=new".to_owned(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-background-networking".into(),
        "--no-first-run".into(),
        "--disable-sync".into(),
        "--disable-dev-shm-usage".into(),
        "--window-size=1280,800".into(),
        format!("--user-data-dir={}", profile.display()),
    ];
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"binary": "/usr/bin/chromium", "args": args}),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a Chromium session")
}

async fn screenshot(c: &Client, name: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
    std::fs::create_dir_all(&dir).expect("docs/screenshots");
    let png = c.screenshot().await.expect("screenshot");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
}

/// Waits until the browser is at a loaded page whose URL satisfies `at`; the URL.
async fn arrive(c: &Client, what: &str, at: impl Fn(&reqwest::Url) -> bool) -> reqwest::Url {
    let start = Instant::now();
    loop {
        if let Ok(u) = c.current_url().await {
            let ready = c.execute("return document.readyState", vec![]).await.ok()
                == Some(json!("complete"));
            if ready && at(&u) {
                return u;
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "{what}: still at {u}"
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The next piece of an event stream (within 5 s).
async fn next_chunk(r: &mut reqwest::Response) -> String {
    let chunk = tokio::time::timeout(Duration::from_secs(5), r.chunk())
        .await
        .expect("the stream goes on within 5 s")
        .expect("reads")
        .expect("not ended");
    String::from_utf8_lossy(&chunk).into_owned()
}

async fn body(c: &Client) -> String {
    c.execute("return document.body.innerText", vec![])
        .await
        .expect("script")
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no `{css}`: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("cannot click `{css}`: {e}"));
}

/// Signs `who` in at the provider's login page (the browser is there).
async fn provider_login(c: &Client, who: &str) {
    arrive(c, "the provider's login page", |u| {
        u.path().starts_with("/interaction/")
    })
    .await;
    c.find(Locator::Css("#login"))
        .await
        .expect("the name field")
        .send_keys(who)
        .await
        .expect("typed");
    click(c, "#submit").await;
}

/// From DriftGuard's sign-in page through the provider as `who`: where the browser lands.
async fn sign_in(c: &Client, base: &str, who: &str, shot: Option<&str>) -> reqwest::Url {
    c.goto(&format!("{base}/")).await.expect("opens");
    arrive(c, "the sign-in page", |u| u.path() == "/login").await;
    if let Some(name) = shot {
        screenshot(c, name).await;
    }
    click(c, "#sso").await;
    provider_login(c, who).await;
    let port = base.rsplit(':').next().unwrap_or_default().to_owned();
    let start = Instant::now();
    loop {
        // on to a page, or refused at the callback (a page saying why)
        if let Ok(u) = c.current_url().await {
            let here = u.port().map(|p| p.to_string()) == Some(port.clone());
            let ready = c.execute("return document.readyState", vec![]).await.ok()
                == Some(json!("complete"));
            let refused = c
                .execute("return !!document.getElementById('refused')", vec![])
                .await
                .ok()
                == Some(json!(true));
            if here && ready && (u.path() != "/auth/oidc/callback" || refused) {
                return u;
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "back at DriftGuard: still at {u}"
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn session_cookie(c: &Client) -> String {
    c.get_named_cookie("driftguard_session")
        .await
        .expect("a session cookie")
        .value()
        .to_owned()
}

async fn api(base: &str, path: &str, cookie: Option<&str>, token: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new().get(format!("{base}{path}"));
    if let Some(c) = cookie {
        req = req.header("cookie", format!("driftguard_session={c}"));
    }
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("answers");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn names(list: &Value) -> Vec<String> {
    let items = list
        .get("items")
        .or(list.get("environments"))
        .unwrap_or(list);
    items
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_sign_in_through_the_provider_and_see_only_their_environments() {
    let (base, state) = serve(Oidc::new(settings(platform_operates_prod()))).await;
    let driver = start_driver();
    let profiles = tempfile::tempdir().expect("temp dir");

    // alice, of `platform`: operator of prod-*
    let c = browser(&driver, &profiles.path().join("alice")).await;
    let landed = sign_in(&c, &base, "alice", Some("login-sso")).await;
    assert_eq!(landed.path(), "/", "on to the overview");
    let text = body(&c).await;
    assert!(text.contains("prod-eu"), "{text}");
    assert!(
        !text.contains("dev-sandbox"),
        "only her environments: {text}"
    );
    assert!(
        text.contains("alice@acme.example"),
        "who is signed in: {text}"
    );
    screenshot(&c, "overview-sso").await;
    let cookie = session_cookie(&c).await;
    let (status, envs) = api(&base, "/api/v1/environments", Some(&cookie), None).await;
    assert_eq!(status, 200, "{envs}");
    assert_eq!(names(&envs), vec!["prod-eu"], "{envs}");
    let (status, _) = api(
        &base,
        "/api/v1/drifts?environment=dev-sandbox",
        Some(&cookie),
        None,
    )
    .await;
    assert_eq!(status, 404, "another environment does not exist for her");
    // the event stream her page follows: nothing of dev-sandbox reaches her
    let mut stream = reqwest::Client::new()
        .get(format!("{base}/api/v1/events/stream"))
        .header("cookie", format!("driftguard_session={cookie}"))
        .send()
        .await
        .expect("the stream opens");
    assert_eq!(stream.status(), 200);
    let mut seen = String::new();
    while !seen.contains(": connected") {
        seen.push_str(&next_chunk(&mut stream).await);
    }
    for env in ["dev-sandbox", "prod-eu"] {
        let d = testkit::numbered_drift(env, 0, driftguard_core::severity::Severity::High, true);
        state.feed.publish_events(&[driftguard_core::testkit::event(
            driftguard_core::state::EventKind::Changed,
            &d,
            testkit::t0(),
            &format!("s-{env}"),
        )]);
    }
    while !seen.contains("event: changed") {
        seen.push_str(&next_chunk(&mut stream).await);
    }
    assert!(seen.contains("prod-eu"), "{seen}");
    assert!(
        !seen.contains("dev-sandbox"),
        "nothing of dev-sandbox: {seen}"
    );
    // API tokens keep working beside sign-in: the ops token reads everything
    let (status, envs) = api(&base, "/api/v1/environments", None, Some(OPS_TOKEN)).await;
    assert_eq!((status, names(&envs).len()), (200, 2), "{envs}");

    // signing out ends the session here (and the stream it opened), then at the provider
    click(&c, ".signout button").await;
    arrive(&c, "the provider's sign-out page", |u| {
        u.path().starts_with("/session/end")
    })
    .await;
    let (status, _) = api(&base, "/api/v1/environments", Some(&cookie), None).await;
    assert_eq!(status, 401, "the old session cookie no longer works");
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while stream.chunk().await.ok().flatten().is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "the session's event stream ended with it");
    click(&c, "button[value=yes]").await;
    let back = arrive(&c, "back at the sign-in page", |u| u.path() == "/login").await;
    assert!(back.as_str().starts_with(&base), "{back}");
    c.goto(&format!("{base}/")).await.expect("opens");
    arrive(&c, "asked to sign in again", |u| u.path() == "/login").await;
    c.close().await.expect("closed");

    // bob, of `team-dev`: no binding names his group
    let c = browser(&driver, &profiles.path().join("bob")).await;
    sign_in(&c, &base, "bob", None).await;
    let text = body(&c).await;
    assert!(
        text.contains("bob@acme.example (groups: team-dev) holds no role here"),
        "{text}"
    );
    screenshot(&c, "sign-in-forbidden").await;
    c.close().await.expect("closed");
    let status = reqwest::get(format!("{base}/auth/oidc/callback?code=x&state=y"))
        .await
        .expect("answers")
        .status();
    assert_eq!(status, 400, "a callback of no sign-in");

    // carol: her e-mail's domain is not allowed
    let c = browser(&driver, &profiles.path().join("carol")).await;
    sign_in(&c, &base, "carol", None).await;
    let text = body(&c).await;
    assert!(
        text.contains(
            "other.example is not among the e-mail domains allowed to sign in to this DriftGuard (acme.example)"
        ),
        "{text}"
    );
    c.close().await.expect("closed");

    // the refusals are in the history, counted with their reasons, and nothing secret
    let (status, actions) = api(&base, "/api/v1/actions", None, Some(OPS_TOKEN)).await;
    assert_eq!(status, 200, "{actions}");
    let text = actions.to_string();
    for reason in [
        "oidc: no role binding",
        "oidc: e-mail domain not allowed",
        "oidc: no sign-in under way",
    ] {
        assert!(text.contains(reason), "{reason}: {text}");
    }
    assert!(text.contains("sign-in-failed"), "{text}");
    let secret = settings(Vec::new()).client_secret;
    assert!(!text.contains(&secret));

    // the MCP endpoint takes the same bearer tokens
    let mcp = reqwest::Client::new()
        .post(format!("{base}/mcp"))
        .bearer_auth(OPS_TOKEN)
        .header("accept", "application/json, text/event-stream")
        .json(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-03-26", "capabilities": {},
            "clientInfo": {"name": "oidc-test", "version": "1"}}}),
        )
        .send()
        .await
        .expect("answers");
    assert_eq!(mcp.status(), 200);
    let status = reqwest::Client::new()
        .post(format!("{base}/mcp"))
        .header("cookie", format!("driftguard_session={cookie}"))
        .json(&json!({}))
        .send()
        .await
        .expect("answers")
        .status();
    assert_eq!(
        status, 401,
        "a session cookie does not write, nor an ended one read"
    );
}

/// A listener of the provider's redirects (`http://127.0.0.1:<port>/cb`, registered for the
/// test client): the query of each.
async fn catcher() -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/cb",
        axum::routing::get(move |q: axum::extract::RawQuery| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(q.0.unwrap_or_default());
                "caught"
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/cb", l.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(l, app).await });
    (url, rx)
}

async fn caught(rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> Callback {
    let q = tokio::time::timeout(Duration::from_secs(15), rx.recv())
        .await
        .expect("the provider sends the browser back")
        .expect("a query");
    serde_urlencoded::from_str(&q).expect("a callback query")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_id_token_changed_forged_or_expired_is_refused() {
    let oidc = Oidc::new(settings(platform_operates_prod()));
    let (cb, mut rx) = catcher().await;
    let driver = start_driver();
    let profile = tempfile::tempdir().expect("temp dir");
    let c = browser(&driver, profile.path()).await;
    let now = chrono::Utc::now().timestamp();

    // a whole sign-in, finished with a clock three hours on: the token has expired
    let (id, url) = oidc
        .begin(None, cb.clone(), "/".into())
        .await
        .expect("begins");
    c.goto(url.as_str()).await.expect("to the provider");
    provider_login(&c, "alice").await;
    let back = caught(&mut rx).await;
    let late = oidc.finish(Some(&id), &back, now + 3 * 3600).await;
    assert!(
        matches!(late, Err(SignInError::Token(TokenError::Expired))),
        "{late:?}"
    );
    // the sign-in was used: not again
    let again = oidc.finish(Some(&id), &back, now).await;
    assert!(matches!(again, Err(SignInError::NoSignIn)), "{again:?}");

    // a sign-in answered with another's state
    let (id, url) = oidc
        .begin(None, cb.clone(), "/".into())
        .await
        .expect("begins");
    c.goto(url.as_str())
        .await
        .expect("to the provider (signed in there)");
    let mut back = caught(&mut rx).await;
    back.state = Some("another-sign-in".into());
    let wrong = oidc.finish(Some(&id), &back, now).await;
    assert!(matches!(wrong, Err(SignInError::State)), "{wrong:?}");

    // a real ID token (RS256), obtained as the server would
    let d = oidc.provider.discovery().await.expect("discovery");
    let pkce = flow::Pkce::from_random(&[9; 32]);
    let scopes = oidc.settings.scopes.clone();
    let url = flow::authorization_url(
        &d.authorization_endpoint,
        &flow::AuthRequest {
            client_id: "driftguard",
            redirect_uri: &cb,
            scopes: &scopes,
            state: "s-test",
            nonce: "n-test",
            challenge: &pkce.challenge,
        },
    );
    c.goto(url.as_str()).await.expect("to the provider");
    let back = caught(&mut rx).await;
    assert_eq!(back.state.as_deref(), Some("s-test"));
    let s = &oidc.settings;
    let id_token = oidc
        .provider
        .exchange(
            &s.client_id,
            &s.client_secret,
            back.code.as_deref().expect("a code"),
            &cb,
            &pkce.verifier,
        )
        .await
        .expect("the code exchanged");
    c.close().await.expect("closed");
    let claims = oidc
        .verify(&id_token, "n-test", now)
        .await
        .expect("the provider's token holds");
    assert_eq!(claims["email"], "alice@acme.example");
    assert_eq!(claims["groups"], json!(["platform"]));
    let refused = |r: Result<serde_json::Map<String, Value>, SignInError>| match r {
        Err(SignInError::Token(e)) => e,
        other => panic!("not refused as a token: {other:?}"),
    };
    // expired, by the injected clock (past exp and the 60 s skew)
    let exp = claims["exp"].as_i64().expect("exp");
    assert!(oidc.verify(&id_token, "n-test", exp + 60).await.is_ok());
    assert_eq!(
        refused(oidc.verify(&id_token, "n-test", exp + 61).await),
        TokenError::Expired
    );
    // the payload changed (another group), the signature kept
    let mut changed = Value::Object(claims.clone());
    changed["groups"] = json!(["platform", "admins"]);
    assert_eq!(
        refused(
            oidc.verify(
                &token::testing::with_payload(&id_token, &changed),
                "n-test",
                now
            )
            .await
        ),
        TokenError::Signature
    );
    // signed with a key not in the issuer's set, under the id of its EC key, or another id
    let forger = token::testing::Signer::new("es-1");
    let forged = forger.sign(&Value::Object(claims.clone()));
    assert_eq!(
        refused(oidc.verify(&forged, "n-test", now).await),
        TokenError::Signature
    );
    let unknown = forger.sign_as("forged-kid", &Value::Object(claims.clone()));
    assert_eq!(
        refused(oidc.verify(&unknown, "n-test", now).await),
        TokenError::UnknownKey
    );
    // no signature at all
    let none = token::testing::unsigned(
        &json!({"alg": "none", "kid": "rs-1"}),
        &Value::Object(claims.clone()),
        "",
    );
    assert_eq!(
        refused(oidc.verify(&none, "n-test", now).await),
        TokenError::Algorithm("none".into())
    );
    // another sign-in's nonce: a replayed token
    assert_eq!(
        refused(oidc.verify(&id_token, "n-other", now).await),
        TokenError::Nonce
    );
}

/// An issuer of the test's own whose keys rotate: a token of a new key makes the server fetch
/// the keys again, once; an unknown key soon after does not.
#[tokio::test]
async fn a_rotated_key_is_fetched_once() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let old = token::testing::Signer::new("k1");
    let new = token::testing::Signer::new("k2");
    let jwks = Arc::new(std::sync::Mutex::new(json!({"keys": [old.jwk()]})));
    let fetches = Arc::new(AtomicUsize::new(0));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let issuer = format!("http://{}", l.local_addr().expect("addr"));
    let discovery = json!({"issuer": issuer, "authorization_endpoint": format!("{issuer}/auth"),
        "token_endpoint": format!("{issuer}/token"), "jwks_uri": format!("{issuer}/jwks")});
    let (keys, count) = (jwks.clone(), fetches.clone());
    let app = axum::Router::new()
        .route(
            "/.well-known/openid-configuration",
            axum::routing::get(move || async move { axum::Json(discovery) }),
        )
        .route(
            "/jwks",
            axum::routing::get(move || {
                count.fetch_add(1, Ordering::SeqCst);
                let k = keys.lock().expect("lock").clone();
                async move { axum::Json(k) }
            }),
        );
    tokio::spawn(async move { axum::serve(l, app).await });
    let mut s = settings(Vec::new());
    s.issuer = issuer.clone();
    let oidc = Oidc::new(s);
    let now = chrono::Utc::now().timestamp();
    let claims = json!({"iss": issuer, "aud": "driftguard", "sub": "u1", "nonce": "n",
        "iat": now, "exp": now + 300});
    oidc.verify(&old.sign(&claims), "n", now)
        .await
        .expect("the first key");
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    // the issuer rotates to a new key
    *jwks.lock().expect("lock") = json!({"keys": [new.jwk()]});
    oidc.verify(&new.sign(&claims), "n", now)
        .await
        .expect("the new key, fetched");
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
    // a token naming a key nobody has: no third fetch so soon
    let stray = token::testing::Signer::new("k3");
    assert!(oidc.verify(&stray.sign(&claims), "n", now).await.is_err());
    assert_eq!(fetches.load(Ordering::SeqCst), 2, "fetches are limited");
}

/// Without a provider to reach, or at a callback no sign-in began, the answer is a page
/// saying why (never the code or state it was given), counted in the history; the sign-in
/// page offers the provider.
#[tokio::test]
async fn an_unreachable_provider_and_a_stray_callback_are_pages_saying_why() {
    let mut s = settings(platform_operates_prod());
    s.issuer = format!("http://127.0.0.1:{}", driftguard_test_support::free_port());
    let (base, state) = serve(Oidc::new(s)).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let login = http
        .get(format!("{base}/login"))
        .send()
        .await
        .expect("answers");
    let page = login.text().await.expect("text");
    assert!(page.contains("href=\"/auth/oidc/login?next=/\""), "{page}");
    let resp = http
        .get(format!("{base}/auth/oidc/login?next=/drifts"))
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status(), 502);
    let page = resp.text().await.expect("text");
    assert!(
        page.contains("the identity provider cannot be used now"),
        "{page}"
    );
    let resp = http
        .get(format!("{base}/auth/oidc/callback?code=c0de&state=st4te"))
        .header("cookie", "driftguard_oidc=forged")
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status(), 400);
    let removal = resp
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(removal.starts_with("driftguard_oidc=;"), "{removal}");
    let page = resp.text().await.expect("text");
    assert!(page.contains("this sign-in has expired"), "{page}");
    assert!(!page.contains("c0de") && !page.contains("st4te"));
    let actions = state.store.actions(None, 10).await.expect("actions");
    let reasons: Vec<&str> = actions.iter().map(|a| a.detail.as_str()).collect();
    assert!(
        reasons.contains(&"oidc: provider unavailable")
            && reasons.contains(&"oidc: no sign-in under way"),
        "{reasons:?}"
    );
}

/// One client cannot push everyone else's sign-ins out: past 20 under way, its own oldest go.
#[tokio::test]
async fn a_client_s_sign_ins_under_way_are_bounded() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let issuer = format!("http://{}", l.local_addr().expect("addr"));
    let discovery = json!({"issuer": issuer, "authorization_endpoint": format!("{issuer}/auth"),
        "token_endpoint": format!("{issuer}/token"), "jwks_uri": format!("{issuer}/jwks")});
    let app = axum::Router::new().route(
        "/.well-known/openid-configuration",
        axum::routing::get(move || async move { axum::Json(discovery) }),
    );
    tokio::spawn(async move { axum::serve(l, app).await });
    let mut s = settings(Vec::new());
    s.issuer = issuer;
    let oidc = Oidc::new(s);
    let (a, b) = (Some([192, 0, 2, 1].into()), Some([192, 0, 2, 2].into()));
    let cb = "http://127.0.0.1:1/cb".to_owned();
    let (theirs, _) = oidc.begin(b, cb.clone(), "/".into()).await.expect("begins");
    let mut mine = Vec::new();
    for _ in 0..21 {
        mine.push(
            oidc.begin(a, cb.clone(), "/".into())
                .await
                .expect("begins")
                .0,
        );
    }
    let wrong = Callback {
        state: Some("wrong".into()),
        ..Callback::default()
    };
    // still there (the state is then what fails), or gone
    let there = |r: Result<_, SignInError>| !matches!(r, Err(SignInError::NoSignIn));
    assert!(
        there(oidc.finish(Some(&theirs), &wrong, 0).await),
        "another's stays"
    );
    assert!(
        !there(oidc.finish(Some(&mine[0]), &wrong, 0).await),
        "its oldest went"
    );
    assert!(there(oidc.finish(Some(&mine[20]), &wrong, 0).await));
}
