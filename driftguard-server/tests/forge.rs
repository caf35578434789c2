//! Pull and merge requests through the forges' REST APIs, against a local HTTP server on
//! 127.0.0.1 that checks each request: method, path, authentication header and body (no forge
//! runs on these machines). The token never shows in an error.

use std::collections::BTreeMap;
use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use driftguard_server::forge::{ForgeError, ForgeKind, PullRequest, PullRequestConfig};
use serde_json::{json, Value};

/// One request the fake forge received.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    headers: BTreeMap<String, String>,
    body: Value,
}

/// A fake forge: records each request and answers `status` with `answer`.
fn forge(status: u16, answer: Value) -> (u16, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let sink = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            serve(conn, &sink, status, &answer);
        }
    });
    (port, seen)
}

fn serve(conn: TcpStream, sink: &Mutex<Vec<Seen>>, status: u16, answer: &Value) {
    let mut w = conn.try_clone().expect("clone");
    let mut r = BufReader::new(conn);
    let Some(request) = driftguard_test_support::read_http_request(&mut r) else {
        return;
    };
    let driftguard_test_support::HttpRequest {
        method,
        target: path,
        headers,
        body,
    } = request;
    sink.lock().expect("lock").push(Seen {
        method,
        path,
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    });
    let out = answer.to_string();
    let _ = write!(
        w,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{out}",
        out.len()
    );
}

fn pr() -> PullRequest {
    PullRequest {
        head: "driftguard/adopt-0123456789abcdef".into(),
        base: "main".into(),
        title: "DriftGuard: adopt the live /data/level of prod:ConfigMap/shop/settings".into(),
        body: "Drift episode: `0123456789abcdef`".into(),
    }
}

fn config(forge: ForgeKind, port: u16, prefix: &str, repository: &str) -> PullRequestConfig {
    PullRequestConfig {
        forge,
        api_url: Some(format!("http://127.0.0.1:{port}{prefix}")),
        repository: repository.into(),
        token_env: "DG_FORGE_TEST_TOKEN_UNSET".into(),
        base: None,
    }
}

#[tokio::test]
async fn github_pull_request() {
    let (port, seen) = forge(
        201,
        json!({"number": 42, "html_url": "https://github.example/shop/gitops/pull/42"}),
    );
    let c = config(ForgeKind::Github, port, "/", "shop/gitops");
    let opened = c.open_with(&pr(), "ghp-secret-1").await.expect("opened");
    assert_eq!(opened.number, 42);
    assert_eq!(opened.url, "https://github.example/shop/gitops/pull/42");
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 1);
    let s = &seen[0];
    assert_eq!(s.method, "POST");
    assert_eq!(s.path, "/repos/shop/gitops/pulls");
    assert_eq!(s.headers["authorization"], "Bearer ghp-secret-1");
    assert_eq!(s.headers["accept"], "application/vnd.github+json");
    assert_eq!(s.headers["x-github-api-version"], "2022-11-28");
    assert!(s.headers["content-type"].starts_with("application/json"));
    assert_eq!(
        s.body,
        json!({"title": pr().title, "head": pr().head, "base": "main", "body": pr().body})
    );
}

#[tokio::test]
async fn gitlab_merge_request() {
    let (port, seen) = forge(
        201,
        json!({"iid": 7, "web_url": "https://gitlab.example/ops/shop/gitops/-/merge_requests/7"}),
    );
    let c = config(ForgeKind::Gitlab, port, "/api/v4", "ops/shop/gitops");
    let opened = c.open_with(&pr(), "glpat-secret-2").await.expect("opened");
    assert_eq!(opened.number, 7);
    assert!(opened.url.ends_with("/merge_requests/7"));
    let s = seen.lock().expect("lock")[0].clone();
    assert_eq!(s.method, "POST");
    assert_eq!(
        s.path,
        "/api/v4/projects/ops%2Fshop%2Fgitops/merge_requests"
    );
    assert_eq!(s.headers["private-token"], "glpat-secret-2");
    assert!(!s.headers.contains_key("authorization"));
    assert_eq!(
        s.body,
        json!({"title": pr().title, "source_branch": pr().head,
               "target_branch": "main", "description": pr().body})
    );
}

#[tokio::test]
async fn gitea_pull_request() {
    let (port, seen) = forge(
        201,
        json!({"number": 3, "html_url": "https://gitea.example/shop/gitops/pulls/3"}),
    );
    let c = config(ForgeKind::Gitea, port, "/api/v1/", "shop/gitops");
    let opened = c.open_with(&pr(), "gitea-secret-3").await.expect("opened");
    assert_eq!(opened.number, 3);
    let s = seen.lock().expect("lock")[0].clone();
    assert_eq!(s.method, "POST");
    assert_eq!(s.path, "/api/v1/repos/shop/gitops/pulls");
    assert_eq!(s.headers["authorization"], "token gitea-secret-3");
    assert_eq!(
        s.body,
        json!({"title": pr().title, "head": pr().head, "base": "main", "body": pr().body})
    );
    // Gitea has no default API URL
    let mut no_url = c.clone();
    no_url.api_url = None;
    assert!(matches!(
        no_url.open_with(&pr(), "t").await,
        Err(ForgeError::NoApiUrl(_))
    ));
}

#[tokio::test]
async fn refusals_and_missing_tokens_never_show_the_token() {
    let (port, _) = forge(422, json!({"message": "A pull request already exists"}));
    let c = config(ForgeKind::Github, port, "", "shop/gitops");
    let e = c
        .open_with(&pr(), "ghp-never-shown")
        .await
        .expect_err("refused");
    let text = driftguard_core::error::chain(&e);
    assert!(
        matches!(e, ForgeError::Rejected { status: 422, .. }),
        "{text}"
    );
    assert!(text.contains("already exists"), "{text}");
    assert!(!text.contains("ghp-never-shown"), "{text}");
    // the token comes from the environment: unset, nothing is sent
    let e = c.open(&pr()).await.expect_err("no token");
    assert!(matches!(e, ForgeError::NoToken(ref v) if v == "DG_FORGE_TEST_TOKEN_UNSET"));
    // an unreachable forge: a clear error, no token
    let free = TcpListener::bind(("127.0.0.1", 0))
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let c = config(ForgeKind::Gitlab, free, "", "1234");
    let e = c
        .open_with(&pr(), "glpat-never-shown")
        .await
        .expect_err("unreachable");
    let text = driftguard_core::error::chain(&e);
    assert!(matches!(e, ForgeError::Unreachable { .. }), "{text}");
    assert!(!text.contains("glpat-never-shown"), "{text}");
}
