//! The dashboard in a real browser (issue 15): Debian's Chromium, driven through chromedriver
//! with fantoccini, against `driftguard serve` watching the test cluster.
//!
//! Signs in (a wrong token is refused first), filters the drifts table, opens a drift and
//! reads its diff and who, watches a new drift appear on an open page after a `kubectl`
//! change and resolve after the revert (each within a second of the server's detection), and
//! takes a screenshot of each page into `docs/screenshots/`.
//!
//! Needs the test services (`scripts/test-services.sh up`) and `chromium` and `chromedriver`
//! (`scripts/test.sh` installs them). A missing one fails the test.

mod util;

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use util::e2e::*;

const TOKEN: &str = "dash-e2e-token-5b1c";
const SECRET_KEY: &str = "dash-e2e-secret-key-0123456789ab";
/// The issue's bound: an open page shows a detection or a resolution within this long of
/// the server's time of it.
const LIVE_WITHIN: Duration = Duration::from_secs(1);

/// chromedriver on a free port, stopped when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // chromedriver and the browsers it started share its process group: a test that
        // panics before closing its session leaves no Chromium behind
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_driver(log: &Path) -> Driver {
    let bin = driftguard_test_support::program("chromedriver", &["--version"]);
    driftguard_test_support::program("chromium", &["--version"]);
    let port = free_port();
    let child = Command::new(bin)
        .arg(format!("--port={port}"))
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"))
        .spawn()
        .expect("chromedriver starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen");
        std::thread::sleep(Duration::from_millis(100));
    }
    Driver { child, port }
}

async fn browser(driver: &Driver, profile: &Path, dark: bool) -> Client {
    let mut args = vec![
        "--headless=new".to_owned(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-background-networking".into(),
        "--no-first-run".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--disable-dev-shm-usage".into(),
        "--window-size=1280,900".into(),
        format!("--user-data-dir={}", profile.display()),
    ];
    if dark {
        args.push("--force-dark-mode".into());
        args.push("--blink-settings=preferredColorScheme=0".into());
    }
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"binary": "/usr/bin/chromium", "args": args}),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a Chromium session")
}

fn screenshots_dir() -> PathBuf {
    let d = util::repo_root().join("docs/screenshots");
    std::fs::create_dir_all(&d).expect("docs/screenshots");
    d
}

async fn screenshot(c: &Client, name: &str) {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    eprintln!(
        "screenshot {name} at {:?}",
        START.get_or_init(Instant::now).elapsed()
    );
    let png = c.screenshot().await.expect("screenshot");
    std::fs::write(screenshots_dir().join(format!("{name}.png")), png).expect("write screenshot");
}

async fn text_of(c: &Client, css: &str) -> String {
    // read in one step in the page: a live region may be replaced between a find and a read
    let v = c
        .execute(
            "var e = document.querySelector(arguments[0]); return e ? e.innerText : null;",
            vec![json!(css)],
        )
        .await
        .expect("script");
    v.as_str()
        .unwrap_or_else(|| panic!("no `{css}` on the page"))
        .to_owned()
}

/// Polls `check` every 50 ms until it is true (at most `limit`); how long it took.
async fn wait_for<F, Fut>(limit: Duration, what: &str, mut check: F) -> Instant
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return Instant::now();
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Clicks `css` and waits for the browser to arrive at a URL whose path and query satisfy
/// `arrived` (a click returns before the navigation it starts).
async fn click_to(c: &Client, css: &str, arrived: impl Fn(&str) -> bool) -> String {
    // a live region may be replaced between the find and the click: try again then
    let mut tries = 0;
    loop {
        let clicked = match c.find(Locator::Css(css)).await {
            Ok(e) => e.click().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match clicked {
            Ok(()) => break,
            Err(e) if tries < 5 => {
                tries += 1;
                eprintln!("clicking `{css}` again: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("cannot click `{css}`: {e}"),
        }
    }
    let mut last = String::new();
    let start = Instant::now();
    loop {
        if let Ok(url) = c.current_url().await {
            let here = format!("{}?{}", url.path(), url.query().unwrap_or(""));
            let ready = c.execute("return document.readyState", vec![]).await.ok()
                == Some(json!("complete"));
            if arrived(&here) && ready {
                return here;
            }
            last = here;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "clicking `{css}` did not lead where expected (at {last})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The page body's text.
async fn body(c: &Client) -> String {
    text_of(c, "body").await
}

fn git(dir: &Path, args: &[&str]) {
    util::git_as(dir, args, "Ada Admin");
}

/// `kubectl patch <kind> <name> -n <ns> --type merge -p <body>`: a hand change.
fn patch(s: &Services, ns: &str, kind: &str, name: &str, body: &str) {
    kubectl(
        s,
        &["patch", kind, name, "-n", ns, "--type", "merge", "-p", body],
    );
}

/// Waits until the open page follows the event stream.
async fn follows_stream(c: &Client) {
    wait_for(
        Duration::from_secs(10),
        "the page follows the stream",
        || async {
            c.execute("return document.body.dataset.stream", vec![])
                .await
                .ok()
                == Some(json!("open"))
        },
    )
    .await;
}

/// The open drift of a kind in an environment, from the API.
fn drift_of(server: &Server, env: &str, kind: &str, status: &str) -> Option<Value> {
    server
        .drifts(&format!("environment={env}&status={status}"))
        .into_iter()
        .find(|d| d["object"]["kind"] == kind)
}

fn secs_between(at: &str, shown: std::time::SystemTime) -> f64 {
    let shown = shown
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    shown - unix_secs(at)
}

/// The browser tests of this file run one at a time (two Chromiums and two servers on two
/// cores would blur the one-second live checks).
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_a_real_browser() {
    let _one = ONE_BROWSER.lock().await;
    let s = services();
    driftguard_test_support::program("git", &["--version"]);
    let uniq = format!(
        "{}-{}",
        std::process::id(),
        unix_secs_now() as u64 % 1_000_000
    );
    let (ns_a, ns_b) = (format!("dash-a-{uniq}"), format!("dash-b-{uniq}"));
    let _cleanup = DeleteOnDrop::namespaces(&s, &[&ns_a, &ns_b]);
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path();

    // environment a: a Git repository (commit, file and line, a web link); b: a folder
    let repo = dir.join("repo");
    std::fs::create_dir_all(repo.join("apps")).expect("mkdir");
    std::fs::write(repo.join("apps/web.yaml"), web_manifests(&ns_a, Some("a"))).expect("write");
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "web: two replicas"]);
    std::fs::create_dir_all(dir.join("b")).expect("mkdir");
    std::fs::write(dir.join("b/app.yaml"), web_manifests(&ns_b, Some("b"))).expect("write");
    for (ns, file) in [
        (&ns_a, repo.join("apps/web.yaml")),
        (&ns_b, dir.join("b/app.yaml")),
    ] {
        kubectl(&s, &["create", "namespace", ns]);
        kubectl(&s, &["apply", "-f", file.to_str().expect("utf-8")]);
    }
    // a hand change before the server starts: the dashboard opens on a drift
    patch(&s, &ns_a, "deployment", "web", r#"{"spec":{"replicas":4}}"#);
    patch(
        &s,
        &ns_b,
        "configmap",
        "app-config",
        r#"{"data":{"owner":"someone"}}"#,
    );
    let config = dir.join("driftguard.yaml");
    std::fs::write(
        &config,
        format!(
            r#"environments:
  - name: a
    git: {{url: "{repo}", webUrl: "https://git.example/org/gitops"}}
    live: {{kubeconfig: "{kc}"}}
    namespaces: ["{ns_a}"]
  - name: b
    dir: b
    live: {{kubeconfig: "{kc}"}}
    namespaces: ["{ns_b}"]
store: {{sqlite: history.db}}
secretKey: {{env: DASH_SECRET_KEY}}
server:
  tokenEnv: DASH_TOKENS
  pollInterval: 60s
  fullScanInterval: 1h
  shutdownGrace: 2s
"#,
            repo = repo.display(),
            kc = s.kubeconfig,
        ),
    )
    .expect("write config");
    let port = free_port();
    let mut server = spawn_server(
        dir,
        &["--config", config.to_str().expect("utf-8")],
        &[("DASH_TOKENS", TOKEN), ("DASH_SECRET_KEY", SECRET_KEY)],
        port,
        dir.join("serve.log"),
        TOKEN,
    );
    let t_start = Instant::now();
    server.wait_ready(0.0, 2);
    eprintln!("server ready after {:?}", t_start.elapsed());
    let base = format!("http://127.0.0.1:{port}");
    assert!(
        drift_of(&server, "a", "Deployment", "open").is_some(),
        "{}",
        server.log()
    );

    let driver = start_driver(&dir.join("chromedriver.log"));
    let c = browser(&driver, &dir.join("profile"), false).await;
    eprintln!("browser up after {:?}", t_start.elapsed());

    // ---- sign in: the page asks for it, a wrong token is refused
    c.goto(&format!("{base}/drifts")).await.expect("goto");
    let url = c.current_url().await.expect("url");
    assert_eq!(url.path(), "/login", "{url}");
    screenshot(&c, "login").await;
    c.find(Locator::Id("token"))
        .await
        .expect("token field")
        .send_keys("not-the-token")
        .await
        .expect("type");
    submit(&c, "form.stack button[type=submit]").await;
    assert!(text_of(&c, "#login-error").await.contains("not accepted"));
    assert_eq!(c.current_url().await.expect("url").path(), "/login");
    c.find(Locator::Id("token"))
        .await
        .expect("token field")
        .send_keys(TOKEN)
        .await
        .expect("type");
    let here = click_to(&c, "form.stack button[type=submit]", |u| {
        u.starts_with("/drifts")
    })
    .await;
    assert_eq!(here, "/drifts?", "back where the sign-in began");
    assert!(!here.contains(TOKEN), "never in a URL");
    let stored: Value = c
        .execute("return [document.cookie, JSON.stringify(sessionStorage), JSON.stringify(localStorage)]", vec![])
        .await
        .expect("script");
    assert!(
        !stored.to_string().contains(TOKEN),
        "the browser keeps no token: {stored}"
    );
    assert!(
        !stored.to_string().contains("driftguard_session"),
        "the cookie is HttpOnly: {stored}"
    );

    // ---- keyboard: the first Tab reaches "Skip to content"
    c.goto(&format!("{base}/")).await.expect("goto");
    c.find(Locator::Css("body"))
        .await
        .expect("body")
        .send_keys("\u{E004}")
        .await
        .expect("tab");
    let focused = c
        .execute("return document.activeElement.textContent", vec![])
        .await
        .expect("script");
    assert_eq!(focused, json!("Skip to content"));

    // ---- overview
    let overview = body(&c).await;
    for needle in ["a", "b", "Scan now", "Open drifts (all environments)"] {
        assert!(
            overview.contains(needle),
            "overview lacks {needle}: {overview}"
        );
    }
    assert!(text_of(&c, "#env-a .open-count").await.trim() == "1");
    c.execute("document.activeElement.blur()", vec![])
        .await
        .expect("script");
    c.set_window_size(1280, 1000).await.expect("resize");
    screenshot(&c, "overview").await;
    c.set_window_size(1280, 900).await.expect("resize");

    // ---- filter the drifts table with its form
    c.goto(&format!("{base}/drifts")).await.expect("goto");
    assert!(
        body(&c).await.contains("ConfigMap"),
        "b's drift is listed before filtering"
    );
    c.find(Locator::Id("f-env"))
        .await
        .expect("select")
        .select_by_value("a")
        .await
        .expect("choose a");
    let url = click_to(&c, "form.filters button[type=submit]", |u| {
        u.contains("environment=a")
    })
    .await;
    eprintln!("filtered: {url}");
    let table = text_of(&c, "#drifts-table tbody").await;
    assert!(
        table.contains("Deployment") && table.contains(&format!("{ns_a}/web")),
        "{table}"
    );
    assert!(!table.contains("ConfigMap"), "b is filtered out: {table}");
    screenshot(&c, "drifts").await;

    // ---- open the drift: its diff and who
    click_to(&c, "#drifts-table a.object", |u| u.starts_with("/drifts/")).await;
    let diff = text_of(&c, "#diff").await;
    assert!(diff.contains("spec.replicas"), "{diff}");
    let git_cell = text_of(&c, "#diff tbody td.del").await;
    let live_cell = text_of(&c, "#diff tbody td.ins").await;
    assert_eq!((git_cell.trim(), live_cell.trim()), ("2", "4"));
    let who = text_of(&c, "#who").await;
    assert!(who.contains("kubectl-patch"), "{who}");
    assert!(text_of(&c, "#commit").await.contains("Ada Admin"));
    let link = c
        .execute(
            "return document.querySelector('#where a').getAttribute('href')",
            vec![],
        )
        .await
        .expect("a link to the file");
    let link = link.as_str().unwrap_or_default().to_owned();
    assert!(
        link.starts_with("https://git.example/org/gitops/blob/")
            && link.ends_with("/apps/web.yaml#L10"),
        "{link}"
    );
    assert!(text_of(&c, "#explain")
        .await
        .contains(&format!("driftguard explain a:Deployment.apps/{ns_a}/web")));
    assert!(text_of(&c, "#direction-reason")
        .await
        .contains("live changed"));
    // its risk and findings, as the API gives them (the page reads the same query)
    let api = drift_of(&server, "a", "Deployment", "open").expect("the API has the drift");
    let findings = text_of(&c, "#findings").await;
    assert!(
        findings.contains(&format!("Risk: {}", api["risk"].as_str().unwrap_or("?"))),
        "{findings}"
    );
    for f in api["findings"].as_array().into_iter().flatten() {
        assert!(
            findings.contains(f["reason"].as_str().unwrap_or("?")),
            "{findings} lacks {f}"
        );
    }
    // the suggested remediation (the API's plan), shown and never applied
    let plan = text_of(&c, "#actions").await;
    assert!(
        plan.contains("Suggested remediation: ") && plan.contains("never applies it"),
        "{plan}"
    );
    screenshot(&c, "drift").await;
    // acknowledged from its page: marked with who, why and until when, in the table too
    let drift_url = c.current_url().await.expect("url").to_string();
    c.find(Locator::Id("ack-reason"))
        .await
        .expect("the acknowledge form")
        .send_keys("load test until Friday")
        .await
        .expect("type");
    c.find(Locator::Id("ack-until"))
        .await
        .expect("until")
        .send_keys("3d")
        .await
        .expect("type");
    submit(&c, "#ack-button").await;
    let ack = text_of(&c, "#ack").await;
    assert!(
        ack.contains("acknowledged by token") && ack.contains("load test until Friday"),
        "{ack}"
    );
    let api = drift_of(&server, "a", "Deployment", "open").expect("still open");
    assert_eq!(api["acknowledgement"]["standing"], "holds", "{api}");
    screenshot(&c, "drift-acknowledged").await;
    c.goto(&format!("{base}/drifts?environment=a&acknowledged=true"))
        .await
        .expect("goto");
    assert!(text_of(&c, "#drifts-table").await.contains("acknowledged"));
    // withdrawn: the rest of the tour sees the drift as before
    c.goto(&drift_url).await.expect("goto");
    submit(&c, "#ack-withdraw").await;
    assert!(text_of(&c, "#ack").await.contains("lapsed: withdrawn"));
    // the object's history
    click_to(&c, "dl.facts a[href^='/objects/']", |u| {
        u.starts_with("/objects/")
    })
    .await;
    assert!(body(&c).await.contains("detected"));
    screenshot(&c, "object").await;

    // ---- live: a new drift appears on the open drifts page, without a reload
    let tg = Instant::now();
    c.goto(&format!("{base}/drifts?environment=a"))
        .await
        .expect("goto");
    eprintln!("goto took {:?}", tg.elapsed());
    follows_stream(&c).await;
    c.execute("window.__sameDocument = true", vec![])
        .await
        .expect("mark the document");
    patch(
        &s,
        &ns_a,
        "configmap",
        "app-config",
        r#"{"data":{"mode":"debug"}}"#,
    );
    let t0 = Instant::now();
    wait_for(
        Duration::from_secs(10),
        "the new drift on the open page",
        || async {
            text_of(&c, "#drifts-table tbody")
                .await
                .contains("ConfigMap")
        },
    )
    .await;
    let shown = std::time::SystemTime::now();
    let seen_after = t0.elapsed();
    assert_eq!(
        c.execute("return window.__sameDocument === true", vec![])
            .await
            .expect("script"),
        json!(true),
        "the page was not reloaded"
    );
    let cm = drift_of(&server, "a", "ConfigMap", "open").expect("the API has it");
    let lag = secs_between(cm["detected_at"].as_str().unwrap_or_default(), shown);
    eprintln!("detected: on the page {lag:.3} s after the server's detection ({seen_after:?} after kubectl)");
    assert!(
        lag <= LIVE_WITHIN.as_secs_f64(),
        "shown {lag:.3} s after detection"
    );
    assert!(text_of(&c, "#live-status").await.contains("Updated"));

    // ---- and it resolves after the revert, on its own open page
    c.goto(&format!(
        "{base}/drifts/{}",
        cm["episode"].as_str().expect("episode")
    ))
    .await
    .expect("goto");
    follows_stream(&c).await;
    assert_eq!(text_of(&c, "#drift-status").await.trim(), "open");
    assert!(text_of(&c, "#diff").await.contains("debug"));
    patch(
        &s,
        &ns_a,
        "configmap",
        "app-config",
        r#"{"data":{"mode":"normal"}}"#,
    );
    wait_for(
        Duration::from_secs(10),
        "the resolution on the open page",
        || async { text_of(&c, "#drift-status").await.contains("resolved") },
    )
    .await;
    let shown = std::time::SystemTime::now();
    // the patch that put it back names who did
    assert_eq!(
        text_of(&c, "#drift-status").await.trim(),
        "resolved (reverted by kubectl-patch)"
    );
    let resolved = drift_of(&server, "a", "ConfigMap", "resolved").expect("resolved in the API");
    let lag = secs_between(resolved["resolved_at"].as_str().unwrap_or_default(), shown);
    eprintln!("resolved: on the page {lag:.3} s after the server's resolution");
    assert!(
        lag <= LIVE_WITHIN.as_secs_f64(),
        "shown {lag:.3} s after resolution"
    );

    eprintln!("live checks done after {:?}", t_start.elapsed());
    // ---- events, scans; Scan now
    c.goto(&format!("{base}/events")).await.expect("goto");
    let events = body(&c).await;
    assert!(
        events.contains("resolved") && events.contains("detected"),
        "{events}"
    );
    screenshot(&c, "events").await;
    c.goto(&format!("{base}/")).await.expect("goto");
    let scans_before = server
        .json("/api/v1/scans?environment=b")
        .and_then(|v| v["items"].as_array().map(Vec::len))
        .unwrap_or(0);
    click_to(&c, "#env-b form button", |u| u.contains("scan=b")).await;
    assert!(body(&c).await.contains("A scan of b was started"));
    wait_for(Duration::from_secs(20), "the scan of b", || async {
        server
            .json("/api/v1/scans?environment=b")
            .and_then(|v| v["items"].as_array().map(Vec::len))
            .unwrap_or(0)
            > scans_before
    })
    .await;
    eprintln!("scan now done after {:?}", t_start.elapsed());
    c.goto(&format!("{base}/scans")).await.expect("goto");
    assert!(text_of(&c, "table.scans tbody").await.contains('b'));
    screenshot(&c, "scans").await;

    // ---- narrow screen, then the dark theme
    c.set_window_size(390, 844).await.expect("resize");
    c.goto(&format!("{base}/")).await.expect("goto");
    let overflow = c
        .execute(
            "return document.documentElement.scrollWidth <= window.innerWidth + 1",
            vec![],
        )
        .await
        .expect("script");
    assert_eq!(
        overflow,
        json!(true),
        "no sideways scrolling on a narrow screen"
    );
    screenshot(&c, "overview-narrow").await;
    c.close().await.expect("close");

    let dark = browser(&driver, &dir.join("profile-dark"), true).await;
    dark.goto(&format!("{base}/login")).await.expect("goto");
    let scheme = dark
        .execute(
            "return window.matchMedia('(prefers-color-scheme: dark)').matches",
            vec![],
        )
        .await
        .expect("script");
    assert_eq!(
        scheme,
        json!(true),
        "Chromium started with a dark system theme (--force-dark-mode)"
    );
    dark.find(Locator::Id("token"))
        .await
        .expect("token")
        .send_keys(TOKEN)
        .await
        .expect("type");
    click_to(&dark, "form.stack button[type=submit]", |u| u == "/?").await;
    let bg = dark
        .execute(
            "return getComputedStyle(document.body).backgroundColor",
            vec![],
        )
        .await
        .expect("script");
    assert_eq!(
        bg,
        json!("rgb(18, 20, 23)"),
        "the dark theme follows the system"
    );
    screenshot(&dark, "overview-dark").await;
    dark.close().await.expect("close");
    eprintln!("done after {:?}", t_start.elapsed());

    // the server kept up all along
    assert!(
        matches!(server.get("/readyz"), Some((200, _))),
        "{}",
        server.log()
    );
}

/// Submits the form button `css` and waits for the next page (it may have the same URL: a
/// refused sign-in, a preview and its confirmation; the document changes).
async fn submit(c: &Client, css: &str) {
    c.execute("window.__before = true", vec![])
        .await
        .expect("mark the page");
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no `{css}`: {e}"))
        .click()
        .await
        .expect("click");
    wait_for(Duration::from_secs(60), "the next page", || async {
        c.execute(
            "return window.__before === undefined && document.readyState === 'complete'",
            vec![],
        )
        .await
        .ok()
            == Some(json!(true))
    })
    .await;
}

async fn sign_in_as(c: &Client, base: &str, token: &str) {
    c.goto(&format!("{base}/login")).await.expect("goto");
    c.find(Locator::Id("token"))
        .await
        .expect("token field")
        .send_keys(token)
        .await
        .expect("type");
    click_to(c, "form.stack button[type=submit]", |u| u == "/?").await;
}

fn replicas(s: &Services, ns: &str) -> String {
    kubectl(
        s,
        &[
            "get",
            "deployment",
            "web",
            "-n",
            ns,
            "-o",
            "jsonpath={.spec.replicas}",
        ],
    )
    .trim()
    .to_owned()
}

fn config_value(s: &Services, ns: &str, name: &str, key: &str) -> String {
    kubectl(
        s,
        &[
            "get",
            "configmap",
            name,
            "-n",
            ns,
            "-o",
            &format!("jsonpath={{.data.{key}}}"),
        ],
    )
    .trim()
    .to_owned()
}

/// Whether the drifts table's selection box of the object `name` is checked.
async fn checked(c: &Client, label_part: &str) -> bool {
    c.execute(
        "var want = arguments[0]; \
         return Array.from(document.querySelectorAll('#drifts-table input[name=episode]'))\
         .filter(function (b) { return b.getAttribute('aria-label').indexOf(want) >= 0; })\
         .map(function (b) { return b.checked; })[0] === true;",
        vec![json!(label_part)],
    )
    .await
    .expect("script")
        == json!(true)
}

/// Issue 16's dashboard buttons: a drift's page previews a revert (the API server's dry run,
/// nothing changed) and confirms it; the drifts table's selection reverts two drifts at once
/// and leaves the third; the selection survives a live update; a read-only token sees no
/// button. Each remediation is recorded as done by the signed-in token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remediation_from_the_dashboard() {
    let _one = ONE_BROWSER.lock().await;
    let s = services();
    driftguard_test_support::program("git", &["--version"]);
    let uniq = format!(
        "{}-{}",
        std::process::id(),
        unix_secs_now() as u64 % 1_000_000
    );
    let ns = format!("dash-r-{uniq}");
    let _cleanup = DeleteOnDrop::namespaces(&s, &[&ns]);
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path();
    let repo = dir.join("repo");
    std::fs::create_dir_all(repo.join("apps")).expect("mkdir");
    let mut text = web_manifests(&ns, Some("r"));
    for name in ["flags", "limits"] {
        text.push_str(&format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {ns}\ndata:\n  level: \"1\"\n"
        ));
    }
    std::fs::write(repo.join("apps/web.yaml"), &text).expect("write");
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "."]);
    git(
        &repo,
        &["commit", "-q", "-m", "web, app-config, flags, limits"],
    );
    kubectl(&s, &["create", "namespace", &ns]);
    kubectl(
        &s,
        &[
            "apply",
            "-f",
            repo.join("apps/web.yaml").to_str().expect("utf-8"),
        ],
    );
    // hand changes before the server starts: four open drifts
    patch(&s, &ns, "deployment", "web", r#"{"spec":{"replicas":4}}"#);
    patch(
        &s,
        &ns,
        "configmap",
        "app-config",
        r#"{"data":{"owner":"someone"}}"#,
    );
    patch(&s, &ns, "configmap", "flags", r#"{"data":{"level":"9"}}"#);
    patch(&s, &ns, "configmap", "limits", r#"{"data":{"level":"5"}}"#);
    let config = dir.join("driftguard.yaml");
    std::fs::write(
        &config,
        format!(
            r#"environments:
  - name: r
    git: {{url: "{repo}"}}
    live: {{kubeconfig: "{kc}"}}
    namespaces: ["{ns}"]
store: {{sqlite: history.db}}
secretKey: {{env: DASH_SECRET_KEY}}
server:
  apiTokens:
    - {{name: ops, tokenEnv: OPS_TOKEN, scopes: [read, scan, remediate]}}
    - {{name: viewer, tokenEnv: VIEWER_TOKEN, scopes: [read]}}
  pollInterval: 60s
  fullScanInterval: 1h
  shutdownGrace: 2s
"#,
            repo = repo.display(),
            kc = s.kubeconfig,
        ),
    )
    .expect("write config");
    const OPS: &str = "dash-ops-token-8d2e";
    const VIEWER: &str = "dash-viewer-token-41aa";
    let port = free_port();
    let mut server = spawn_server(
        dir,
        &["--config", config.to_str().expect("utf-8")],
        &[
            ("OPS_TOKEN", OPS),
            ("VIEWER_TOKEN", VIEWER),
            ("DASH_SECRET_KEY", SECRET_KEY),
        ],
        port,
        dir.join("serve.log"),
        OPS,
    );
    server.wait_ready(0.0, 1);
    let base = format!("http://127.0.0.1:{port}");
    assert_eq!(server.drifts("environment=r").len(), 4, "{}", server.log());
    let web = drift_of(&server, "r", "Deployment", "open").expect("the Deployment drift");
    let web_episode = web["episode"].as_str().expect("episode").to_owned();

    let driver = start_driver(&dir.join("chromedriver.log"));
    let c = browser(&driver, &dir.join("profile"), false).await;
    sign_in_as(&c, &base, OPS).await;

    // ---- one drift: preview (nothing changes), then confirm
    c.goto(&format!("{base}/drifts/{web_episode}"))
        .await
        .expect("goto");
    let revert_checked = c
        .execute(
            "return document.querySelector('#remediate-form input[value=revert]').checked",
            vec![],
        )
        .await
        .expect("script");
    assert_eq!(
        revert_checked,
        json!(true),
        "revert is suggested for a scale"
    );
    c.execute(
        "document.getElementById('remediate-form').scrollIntoView({block: 'center'})",
        vec![],
    )
    .await
    .expect("script");
    screenshot(&c, "drift-remediate").await;
    submit(&c, "#preview-button").await;
    assert_eq!(
        c.current_url().await.expect("url").path(),
        "/drifts/remediate"
    );
    let heading = text_of(&c, "#remediation-heading").await;
    assert_eq!(heading.trim(), "Preview: revert 1 drift");
    let plan = text_of(&c, "#plans").await;
    assert!(
        plan.contains(&format!("r:Deployment.apps/{ns}/web")),
        "{plan}"
    );
    let change = text_of(&c, "#plans table.changes tbody").await;
    assert!(
        change.contains("replicas") && change.contains('4') && change.contains('2'),
        "the dry run shows 4 going back to 2: {change}"
    );
    assert_eq!(replicas(&s, &ns), "4", "a preview changes nothing");
    screenshot(&c, "remediate-preview").await;
    submit(&c, "#confirm-button").await;
    let heading = text_of(&c, "#remediation-heading").await;
    assert!(heading.contains("1 of 1 drift carried out"), "{heading}");
    let result = text_of(&c, ".plan-result").await;
    assert!(result.contains("by DriftGuard"), "{result}");
    assert_eq!(replicas(&s, &ns), "2", "the cluster is back to Git");
    let (resolved, _) = poll(Instant::now(), Duration::from_secs(20), || {
        server
            .json(&format!("/api/v1/drifts/{web_episode}"))
            .filter(|d| d["drift"]["status"] == "resolved")
    })
    .unwrap_or_else(|| panic!("the scale does not resolve:\n{}", server.log()));
    assert_eq!(resolved["drift"]["resolution"], "reverted", "{resolved}");
    let events = server
        .json(&format!(
            "/api/v1/events?environment=r&object=Deployment.apps/{ns}/web"
        ))
        .expect("events");
    let remediated: Vec<&Value> = events["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["event"] == "remediated")
        .collect();
    assert_eq!(remediated.len(), 1, "{events}");
    assert_eq!(
        remediated[0]["remediation"]["requested_by"], "token:ops",
        "the event names who asked: {}",
        remediated[0]
    );

    // ---- a selection of the drifts table: two of the three ConfigMaps
    c.goto(&format!("{base}/drifts?environment=r"))
        .await
        .expect("goto");
    follows_stream(&c).await;
    let boxes = || async {
        c.execute(
            "return Array.from(document.querySelectorAll('#drifts-table input[name=episode]')).map(function (b) { return b.checked; })",
            vec![],
        )
        .await
        .expect("script")
    };
    assert_eq!(
        boxes().await,
        json!([false, false, false]),
        "three open drifts"
    );
    c.find(Locator::Css("[data-select-all]"))
        .await
        .expect("select all")
        .click()
        .await
        .expect("click");
    assert_eq!(boxes().await, json!([true, true, true]), "select all");
    c.find(Locator::Css("[data-select-all]"))
        .await
        .expect("select all")
        .click()
        .await
        .expect("click");
    assert_eq!(boxes().await, json!([false, false, false]), "and none");
    for name in ["app-config", "flags"] {
        c.find(Locator::Css(&format!(
            "#drifts-table input[aria-label*='{ns}/{name} ']"
        )))
        .await
        .unwrap_or_else(|e| panic!("the box of {name}: {e}"))
        .click()
        .await
        .expect("click");
    }
    // a live update of the table keeps the selection
    let updated = c
        .execute("return document.body.dataset.updated || ''", vec![])
        .await
        .expect("script");
    patch(&s, &ns, "configmap", "limits", r#"{"data":{"level":"6"}}"#);
    wait_for(Duration::from_secs(10), "a live update", || async {
        c.execute("return document.body.dataset.updated || ''", vec![])
            .await
            .ok()
            .is_some_and(|u| u != updated)
    })
    .await;
    assert!(checked(&c, &format!("{ns}/app-config ")).await);
    assert!(checked(&c, &format!("{ns}/flags ")).await);
    assert!(!checked(&c, &format!("{ns}/limits ")).await);
    screenshot(&c, "drifts-selected").await;
    submit(&c, "#bulk-revert").await;
    let heading = text_of(&c, "#remediation-heading").await;
    assert_eq!(heading.trim(), "Preview: revert 2 drifts");
    let plans = text_of(&c, "#plans").await;
    assert!(
        plans.contains(&format!("{ns}/app-config")) && plans.contains(&format!("{ns}/flags")),
        "{plans}"
    );
    assert!(!plans.contains("limits"), "only the selection: {plans}");
    assert_eq!(
        config_value(&s, &ns, "flags", "level"),
        "9",
        "nothing changed yet"
    );
    submit(&c, "#confirm-button").await;
    let heading = text_of(&c, "#remediation-heading").await;
    assert!(heading.contains("2 of 2 drifts carried out"), "{heading}");
    assert_eq!(config_value(&s, &ns, "flags", "level"), "1");
    assert_eq!(config_value(&s, &ns, "app-config", "owner"), "team-r");
    assert_eq!(
        config_value(&s, &ns, "limits", "level"),
        "6",
        "not selected"
    );
    screenshot(&c, "remediate-done").await;
    let (open, _) = poll(Instant::now(), Duration::from_secs(20), || {
        let open = server.drifts("environment=r");
        (open.len() == 1).then_some(open)
    })
    .unwrap_or_else(|| panic!("two drifts do not resolve:\n{}", server.log()));
    assert_eq!(open[0]["object"]["name"], "limits");
    let reverted = server.drifts("environment=r&status=resolved");
    assert_eq!(reverted.len(), 3, "{reverted:?}");
    assert!(
        reverted.iter().all(|d| d["resolution"] == "reverted"),
        "{reverted:?}"
    );

    // ---- adopt, previewed only: the live value to write into Git
    c.goto(&format!("{base}/drifts?environment=r"))
        .await
        .expect("goto");
    c.find(Locator::Css("#drifts-table input[name=episode]"))
        .await
        .expect("the box of limits")
        .click()
        .await
        .expect("click");
    submit(&c, "#bulk-adopt").await;
    assert_eq!(
        text_of(&c, "#remediation-heading").await.trim(),
        "Preview: adopt 1 drift"
    );
    let adopt = text_of(&c, "#plans").await;
    assert!(
        adopt.contains("limits") && adopt.contains("level") && adopt.contains('6'),
        "{adopt}"
    );
    assert!(text_of(&c, "#confirm-button")
        .await
        .contains("adopt 1 drift"));
    let branches = Command::new("git")
        .args(["branch", "--list"])
        .current_dir(&repo)
        .output()
        .expect("git branch");
    assert_eq!(
        String::from_utf8_lossy(&branches.stdout).trim(),
        "* main",
        "a preview pushes nothing"
    );

    // ---- a read-only token: no button to press
    c.find(Locator::Css("form.signout button"))
        .await
        .expect("sign out")
        .click()
        .await
        .expect("click");
    wait_for(Duration::from_secs(10), "signed out", || async {
        c.current_url().await.is_ok_and(|u| u.path() == "/login")
    })
    .await;
    sign_in_as(&c, &base, VIEWER).await;
    c.goto(&format!("{base}/drifts?environment=r"))
        .await
        .expect("goto");
    let inputs = c
        .execute(
            "return document.querySelectorAll('input[name=episode], #bulk-form').length",
            vec![],
        )
        .await
        .expect("script");
    assert_eq!(inputs, json!(0), "no selection for a read-only token");
    c.goto(&format!(
        "{base}/drifts/{}",
        open[0]["episode"].as_str().expect("episode")
    ))
    .await
    .expect("goto");
    assert!(body(&c).await.contains("never applies it"));
    let form = c
        .execute(
            "return document.getElementById('remediate-form') === null",
            vec![],
        )
        .await
        .expect("script");
    assert_eq!(
        form,
        json!(true),
        "no remediation form for a read-only token"
    );
    c.close().await.expect("close");
    assert!(
        matches!(server.get("/readyz"), Some((200, _))),
        "{}",
        server.log()
    );
}
