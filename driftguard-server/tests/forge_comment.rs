//! `driftguard preview --comment` through the forges' REST APIs: one comment per pull request,
//! found again by its hidden marker and edited in place on the next push. Against a local fake
//! forge on 127.0.0.1 that keeps the comments and checks every request: method, path, query,
//! authentication header and body.

use std::collections::BTreeMap;
use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use driftguard_server::forge::{Commented, ForgeError, ForgeKind, PullRequestConfig};
use driftguard_server::preview::markdown::MARKER;
use serde_json::{json, Value};

/// One request the fake forge received.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    target: String,
    headers: BTreeMap<String, String>,
    body: Value,
}

/// The fake forge's state: the comments on the pull request, and every request.
#[derive(Default)]
struct Forge {
    comments: Vec<Value>,
    seen: Vec<Seen>,
}

/// A fake forge of `kind` for pull request 7 of `repo` under `prefix`, with `existing`
/// comments. Answers list, create and edit as the forge does; anything else is a 404.
fn forge(kind: ForgeKind, prefix: &'static str, existing: Vec<Value>) -> (u16, Arc<Mutex<Forge>>) {
    let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let state = Arc::new(Mutex::new(Forge {
        comments: existing,
        seen: Vec::new(),
    }));
    let s = state.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            serve(conn, &s, kind, prefix, port);
        }
    });
    (port, state)
}

fn serve(conn: TcpStream, state: &Mutex<Forge>, kind: ForgeKind, prefix: &str, port: u16) {
    let mut w = conn.try_clone().expect("clone");
    let mut r = BufReader::new(conn);
    let Some(request) = driftguard_test_support::read_http_request(&mut r) else {
        return;
    };
    let driftguard_test_support::HttpRequest {
        method,
        target,
        headers,
        body,
    } = request;
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut st = state.lock().expect("lock");
    st.seen.push(Seen {
        method: method.clone(),
        target: target.clone(),
        headers,
        body: body.clone(),
    });
    let (list, edit) = match kind {
        ForgeKind::Gitlab => (
            format!("{prefix}/projects/ops%2Fgitops/merge_requests/7/notes"),
            format!("{prefix}/projects/ops%2Fgitops/merge_requests/7/notes/"),
        ),
        _ => (
            format!("{prefix}/repos/ops/gitops/issues/7/comments"),
            format!("{prefix}/repos/ops/gitops/issues/comments/"),
        ),
    };
    let path = target.split('?').next().unwrap_or_default();
    let html = |id: u64| format!("http://127.0.0.1:{port}/ops/gitops/pull/7#issuecomment-{id}");
    let (status, answer) = if method == "GET" && path == list {
        let query = target.split_once('?').map(|(_, q)| q).unwrap_or_default();
        let page: usize = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("page="))
            .and_then(|p| p.parse().ok())
            .unwrap_or(1);
        let size = if kind == ForgeKind::Gitea { 50 } else { 100 };
        let items: Vec<Value> = st
            .comments
            .iter()
            .skip((page - 1) * size)
            .take(size)
            .cloned()
            .collect();
        (200, Value::Array(items))
    } else if method == "POST" && path == list {
        let id = 1000 + st.comments.len() as u64;
        let c = json!({"id": id, "body": body["body"], "html_url": html(id)});
        st.comments.push(c.clone());
        (201, c)
    } else if let Some(id) = path
        .strip_prefix(edit.as_str())
        .and_then(|i| i.parse::<u64>().ok())
    {
        let want = if kind == ForgeKind::Gitlab {
            "PUT"
        } else {
            "PATCH"
        };
        match st.comments.iter_mut().find(|c| c["id"] == id) {
            Some(c) if method == want => {
                c["body"] = body["body"].clone();
                (
                    200,
                    json!({"id": id, "body": c["body"], "html_url": html(id)}),
                )
            }
            _ => (404, json!({"message": "Not Found"})),
        }
    } else {
        (404, json!({"message": "Not Found"}))
    };
    drop(st);
    let out = answer.to_string();
    let _ = write!(
        w,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{out}",
        out.len()
    );
}

fn config(forge: ForgeKind, port: u16, prefix: &str) -> PullRequestConfig {
    PullRequestConfig {
        forge,
        api_url: Some(format!("http://127.0.0.1:{port}{prefix}")),
        repository: "ops/gitops".into(),
        token_env: "DG_FORGE_COMMENT_TOKEN_UNSET".into(),
        base: None,
    }
}

fn body(n: u32) -> String {
    format!("{MARKER}\n### DriftGuard preview, push {n}\n")
}

/// Two pushes: the first creates the comment, the second edits it; others' comments are
/// never touched. Every request carries the forge's authentication.
async fn one_comment_per_pull_request(kind: ForgeKind, prefix: &'static str, token: &str) {
    let others = vec![
        json!({"id": 1, "body": "LGTM"}),
        json!({"id": 2, "body": "a review <!-- not ours -->"}),
    ];
    let (port, state) = forge(kind, prefix, others);
    let c = config(kind, port, prefix);
    let first = c
        .comment_with(7, MARKER, &body(1), token)
        .await
        .expect("posted");
    let Commented::Created { id, .. } = first else {
        panic!("{first:?}");
    };
    assert_eq!(id, 1002);
    let second = c
        .comment_with(7, MARKER, &body(2), token)
        .await
        .expect("edited");
    assert!(
        matches!(second, Commented::Updated { id: 1002, .. }),
        "{second:?}"
    );
    let st = state.lock().expect("lock");
    assert_eq!(
        st.comments.len(),
        3,
        "one comment of ours: {:?}",
        st.comments
    );
    assert_eq!(st.comments[0]["body"], "LGTM");
    assert_eq!(st.comments[2]["body"], body(2));
    let methods: Vec<&str> = st.seen.iter().map(|s| s.method.as_str()).collect();
    let edit = if kind == ForgeKind::Gitlab {
        "PUT"
    } else {
        "PATCH"
    };
    assert_eq!(methods, ["GET", "POST", "GET", edit]);
    for s in &st.seen {
        match kind {
            ForgeKind::Github => {
                assert_eq!(s.headers["authorization"], format!("Bearer {token}"));
                assert_eq!(s.headers["accept"], "application/vnd.github+json");
                assert_eq!(s.headers["x-github-api-version"], "2022-11-28");
            }
            ForgeKind::Gitea => {
                assert_eq!(s.headers["authorization"], format!("token {token}"))
            }
            ForgeKind::Gitlab => {
                assert_eq!(s.headers["private-token"], token);
                assert!(!s.headers.contains_key("authorization"));
            }
        }
        if s.method != "GET" {
            assert!(s.headers["content-type"].starts_with("application/json"));
            assert_eq!(s.body.as_object().map(|m| m.len()), Some(1), "{:?}", s.body);
        }
    }
    let page = if kind == ForgeKind::Gitea {
        "?limit=50&page=1"
    } else {
        "?per_page=100&page=1"
    };
    assert!(st.seen[0].target.ends_with(page), "{}", st.seen[0].target);
    assert_eq!(st.seen[1].body, json!({"body": body(1)}));
    assert_eq!(st.seen[3].body, json!({"body": body(2)}));
    assert!(
        st.seen[3].target.ends_with("/1002"),
        "{}",
        st.seen[3].target
    );
}

#[tokio::test]
async fn github_comment_is_posted_then_edited() {
    one_comment_per_pull_request(ForgeKind::Github, "", "ghp-secret-1").await;
}

#[tokio::test]
async fn gitlab_note_is_posted_then_edited() {
    one_comment_per_pull_request(ForgeKind::Gitlab, "/api/v4", "glpat-secret-2").await;
}

#[tokio::test]
async fn gitea_comment_is_posted_then_edited() {
    one_comment_per_pull_request(ForgeKind::Gitea, "/api/v1", "gitea-secret-3").await;
}

#[tokio::test]
async fn the_marker_is_found_on_a_later_page() {
    let mut many: Vec<Value> = (0..150)
        .map(|i| json!({"id": i + 1, "body": format!("comment {i}")}))
        .collect();
    many.push(json!({"id": 500, "body": body(1)}));
    let (port, state) = forge(ForgeKind::Github, "", many);
    let c = config(ForgeKind::Github, port, "");
    let done = c
        .comment_with(7, MARKER, &body(2), "t")
        .await
        .expect("edited");
    assert!(
        matches!(done, Commented::Updated { id: 500, .. }),
        "{done:?}"
    );
    let st = state.lock().expect("lock");
    let targets: Vec<&str> = st.seen.iter().map(|s| s.target.as_str()).collect();
    assert_eq!(
        targets,
        [
            "/repos/ops/gitops/issues/7/comments?per_page=100&page=1",
            "/repos/ops/gitops/issues/7/comments?per_page=100&page=2",
            "/repos/ops/gitops/issues/comments/500",
        ]
    );
}

#[tokio::test]
async fn refusals_and_missing_tokens_never_show_the_token() {
    let (port, _) = forge(ForgeKind::Github, "", Vec::new());
    // a pull request the forge does not know: 404 on the list
    let mut c = config(ForgeKind::Github, port, "");
    c.repository = "ops/other".into();
    let e = c
        .comment_with(7, MARKER, &body(1), "ghp-never-shown")
        .await
        .expect_err("refused");
    let text = driftguard_core::error::chain(&e);
    assert!(
        matches!(e, ForgeError::Rejected { status: 404, .. }),
        "{text}"
    );
    assert!(!text.contains("ghp-never-shown"), "{text}");
    let e = c.comment(7, MARKER, &body(1)).await.expect_err("no token");
    assert!(matches!(e, ForgeError::NoToken(ref v) if v == "DG_FORGE_COMMENT_TOKEN_UNSET"));
}
