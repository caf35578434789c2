//! Acceptance of issue 34 (`driftguard preview`) on the test cluster, with a real Git remote
//! (`git daemon` on 127.0.0.1) and the API server's audit log.
//!
//! A Deployment and a ConfigMap are applied from Git; Alice hot-fixes the Deployment's image
//! with `kubectl set image`, and a scan reading the audit log names her. Then four pull
//! requests are pushed and previewed against `main` with the built binary:
//!
//! - one that scales the Deployment keeps Git's old image, so it would undo the hotfix: the
//!   image is flagged "overwrites a hand change", naming Alice, and `--fail-on overwrites`
//!   exits 2;
//! - one that writes the hotfix's image into Git "adopts" the drift;
//! - one that only changes the ConfigMap is "new" only, and the hotfix is not mentioned;
//! - one that changes a Helm values file is rendered through the chart (an environment with
//!   `helm:`), and only that environment is touched.
//!
//! The Markdown is posted on the pull request of a fake GitHub (`--comment 7`), then edited in
//! place on the next push. The same through `POST /api/v1/preview` of a running `driftguard serve`, for an operator
//! (a viewer is refused), on a pull request pushed after the server cloned the repository and
//! named by its commit. Nothing is written to the cluster or to Git by the previews. The namespaces are
//! `dg-preview-*`, deleted at the end. Needs the test cluster with its audit settings
//! (KUBECONFIG, KUBECTL, AUDIT_LOG, ALICE_TOKEN), git and helm; a missing one fails.

mod util;

use std::io::{BufRead, BufReader, Read, Write as _};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use util::e2e::{free_port, kubectl, kubectl_status, DeleteOnDrop, GitDaemon, Services};
use util::{run_env, write, Run};

const SECRET_KEY: &str = "preview-e2e-secret-key-0123456789";
const OPERATOR_TOKEN: &str = "preview-e2e-operator-token-0123456789";
const VIEWER_TOKEN: &str = "preview-e2e-viewer-token-0123456789";
const FORGE_TOKEN: &str = "preview-e2e-forge-token";
/// How long the audit log may take to name Alice.
const NAMED_WITHIN: Duration = Duration::from_secs(60);

fn git(dir: &Path, args: &[&str]) -> String {
    util::git_as(dir, args, "Ada Ops")
}

fn app(ns: &str, replicas: u32, image: &str, level: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {ns}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
        - name: app
          image: "{image}"
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: {ns}
data:
  level: "{level}"
"#
    )
}

const CHART: &str = "apiVersion: v2\nname: mini\nversion: 0.1.0\n";
const CHART_VALUES: &str = "greeting: hello\nreplicas: 1\n";
const CHART_TEMPLATE: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-settings
data:
  greeting: {{ .Values.greeting | quote }}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-api
spec:
  replicas: {{ .Values.replicas }}
  selector:
    matchLabels: {app: api}
  template:
    metadata:
      labels: {app: api}
    spec:
      containers:
        - name: api
          image: "nginx:1.25"
"#;

/// `helm template mini charts/mini -n NS -f envs/helm/values.yaml | kubectl apply -n NS -f -`.
fn helm_apply(s: &Services, helm: &Path, repo: &Path, ns: &str) {
    let rendered = Command::new(helm)
        .args(["template", "mini", "charts/mini", "--namespace", ns])
        .args(["--values", "envs/helm/values.yaml"])
        .current_dir(repo)
        .output()
        .expect("helm runs");
    assert!(
        rendered.status.success(),
        "helm template: {}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    let mut child = Command::new(&s.kubectl)
        .args(["apply", "-n", ns, "-f", "-"])
        .env("KUBECONFIG", &s.kubeconfig)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&rendered.stdout)
        .expect("write to kubectl");
    let out = child.wait_with_output().expect("kubectl ends");
    assert!(
        out.status.success(),
        "kubectl apply: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One request the fake forge received: method, path and query, authorization, body.
type Seen = (String, String, String, Value);

/// The fake forge's comments and the requests it received.
type Forge = Arc<Mutex<(Vec<Value>, Vec<Seen>)>>;

/// A fake GitHub on 127.0.0.1 for pull request 7 of `ops/gitops`: keeps its comments (one by
/// someone else to begin with), lists, creates and edits them as GitHub does, and records
/// every request. Anything else is a 404.
fn fake_github() -> (u16, Forge) {
    let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let state: Forge = Arc::new(Mutex::new((
        vec![serde_json::json!({"id": 1, "body": "LGTM once the preview is green"})],
        Vec::new(),
    )));
    let st = state.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let mut w = conn.try_clone().expect("clone");
            let mut r = BufReader::new(conn);
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                continue;
            }
            let mut parts = line.split_whitespace();
            let method = parts.next().unwrap_or_default().to_owned();
            let target = parts.next().unwrap_or_default().to_owned();
            let (mut auth, mut len) = (String::new(), 0usize);
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    match k.trim().to_ascii_lowercase().as_str() {
                        "authorization" => auth = v.trim().to_owned(),
                        "content-length" => len = v.trim().parse().unwrap_or(0),
                        _ => {}
                    }
                }
            }
            let mut body = vec![0u8; len];
            let _ = r.read_exact(&mut body);
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let mut g = st.lock().expect("lock");
            g.1.push((method.clone(), target.clone(), auth, body.clone()));
            let path = target.split('?').next().unwrap_or_default();
            let list = "/repos/ops/gitops/issues/7/comments";
            let (status, answer) = if method == "GET" && path == list {
                (200, Value::Array(g.0.clone()))
            } else if method == "POST" && path == list {
                let id = 100 + g.0.len() as u64;
                let c = serde_json::json!({"id": id, "body": body["body"],
                    "html_url": format!("http://127.0.0.1:{port}/ops/gitops/pull/7#issuecomment-{id}")});
                g.0.push(c.clone());
                (201, c)
            } else if let Some(id) = path
                .strip_prefix("/repos/ops/gitops/issues/comments/")
                .and_then(|i| i.parse::<u64>().ok())
                .filter(|_| method == "PATCH")
            {
                match g.0.iter_mut().find(|c| c["id"] == id) {
                    Some(c) => {
                        c["body"] = body["body"].clone();
                        (200, c.clone())
                    }
                    None => (404, serde_json::json!({"message": "Not Found"})),
                }
            } else {
                (404, serde_json::json!({"message": "Not Found"}))
            };
            drop(g);
            let out = answer.to_string();
            let _ = write!(
                w,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{out}",
                out.len()
            );
        }
    });
    (port, state)
}

/// A pull request: a branch from main with `change` made in the work tree, pushed.
fn pull_request(work: &Path, branch: &str, change: impl FnOnce(&Path)) {
    git(work, &["checkout", "-q", "-b", branch, "main"]);
    change(work);
    git(work, &["commit", "-q", "-am", branch]);
    git(work, &["push", "-q", "origin", branch]);
    git(work, &["checkout", "-q", "main"]);
}

fn preview(dir: &Path, head: &str, extra: &[&str]) -> Run {
    let mut args = vec![
        "preview",
        "--config",
        "driftguard.yaml",
        "--base",
        "main",
        "--head",
        head,
    ];
    args.extend_from_slice(extra);
    run_env(
        dir,
        &args,
        &[
            ("E2E_SECRET_KEY", SECRET_KEY),
            ("E2E_FORGE_TOKEN", FORGE_TOKEN),
        ],
    )
}

/// `(environment, object name, field, class, who)` of every field of a JSON preview, and
/// `(environment, object name, "-", change/class, who)` of whole-object changes.
fn rows(v: &Value) -> Vec<(String, String, String, String, String)> {
    let mut out = Vec::new();
    for e in v["environments"].as_array().expect("environments") {
        let env = e["environment"].as_str().expect("env").to_owned();
        for o in e["objects"].as_array().expect("objects") {
            let name = o["id"]["name"].as_str().expect("name").to_owned();
            let fields = o["fields"].as_array().expect("fields");
            if fields.is_empty() {
                out.push((
                    env.clone(),
                    name.clone(),
                    "-".into(),
                    format!("{}/{}", o["change"], o["class"]).replace('"', ""),
                    String::new(),
                ));
            }
            for f in fields {
                out.push((
                    env.clone(),
                    name.clone(),
                    f["path"].as_str().expect("path").to_owned(),
                    f["class"].as_str().expect("class").to_owned(),
                    f["hand_change"]["who"].as_str().unwrap_or("").to_owned(),
                ));
            }
        }
    }
    out
}

#[test]
fn preview_pull_requests_against_the_drift_history() {
    let s = util::e2e::services();
    let helm = driftguard_test_support::helm();
    let audit_log = driftguard_test_support::service(
        "AUDIT_LOG",
        "the test cluster's audit log (scripts/test-cluster/start.sh)",
    );
    let alice = driftguard_test_support::service(
        "ALICE_TOKEN",
        "the test cluster's token users (scripts/test-cluster/start.sh)",
    );
    let gitbin = driftguard_test_support::program("git", &["--version"]);
    let run = std::process::id();
    let ns = format!("dg-preview-{run}");
    let nsh = format!("dg-preview-helm-{run}");
    let _cleanup = DeleteOnDrop::namespaces(&s, &[&ns, &nsh]);
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().to_path_buf();
    if std::env::var_os("DRIFTGUARD_E2E_KEEP").is_some() {
        eprintln!("keeping {}", tmp.keep().display());
    }

    // ---- the GitOps repository, served by git daemon
    let srv = dir.join("srv");
    std::fs::create_dir_all(&srv).expect("mkdir");
    git(&srv, &["init", "-q", "--bare", "-b", "main", "gitops.git"]);
    let work = dir.join("work");
    write(
        &work.join("envs/prod/app.yaml"),
        &app(&ns, 1, "nginx:1.25", "info"),
    );
    write(&work.join("charts/mini/Chart.yaml"), CHART);
    write(&work.join("charts/mini/values.yaml"), CHART_VALUES);
    write(&work.join("charts/mini/templates/all.yaml"), CHART_TEMPLATE);
    write(
        &work.join("envs/helm/values.yaml"),
        "greeting: hello from prod\n",
    );
    git(&work, &["init", "-q", "-b", "main"]);
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "the shop"]);
    let daemon = GitDaemon::start(&gitbin, &srv);
    let port = daemon.port;
    let url = format!("git://127.0.0.1:{port}/gitops.git");
    git(&work, &["remote", "add", "origin", &url]);
    git(&work, &["push", "-q", "origin", "main"]);

    // ---- applied to the cluster; Alice may edit in the namespace
    for n in [&ns, &nsh] {
        kubectl(&s, &["create", "namespace", n]);
    }
    kubectl(
        &s,
        &[
            "-n",
            &ns,
            "create",
            "rolebinding",
            "editors",
            "--clusterrole=edit",
            "--user=alice",
        ],
    );
    kubectl(
        &s,
        &[
            "apply",
            "-f",
            &work.join("envs/prod/app.yaml").display().to_string(),
        ],
    );
    helm_apply(&s, &helm, &work, &nsh);

    let (forge_port, forge) = fake_github();
    write(
        &dir.join("driftguard.yaml"),
        &format!(
            r#"helmBin: {helm}
environments:
  - name: prod
    git:
      url: "{url}"
      path: envs/prod
      pullRequest: {{forge: github, repository: ops/gitops, tokenEnv: E2E_FORGE_TOKEN, apiUrl: "http://127.0.0.1:{forge_port}"}}
    namespaces: ["{ns}"]
    live: {{kubeconfig: "{kc}"}}
    audit: {{logFile: "{audit_log}"}}
  - name: prod-helm
    git: {{url: "{url}", path: charts/mini}}
    helm:
      releaseName: mini
      namespace: {nsh}
      valueFiles: [../../envs/helm/values.yaml]
    namespaces: ["{nsh}"]
    live: {{kubeconfig: "{kc}"}}
store: {{sqlite: history.db}}
secretKey: {{env: E2E_SECRET_KEY}}
"#,
            helm = helm.display(),
            kc = s.kubeconfig,
        ),
    );

    // ---- the hotfix, by Alice; a scan names her (from the audit log)
    let (code, _, err) = kubectl_status(
        &s,
        &[
            "--token",
            &alice,
            "-n",
            &ns,
            "set",
            "image",
            "deployment/web",
            "app=nginx:1.25.5",
        ],
        &[],
    );
    assert_eq!(code, 0, "alice's kubectl set image: {err}");
    let started = Instant::now();
    loop {
        let scan = run_env(
            &dir,
            &["scan", "--config", "driftguard.yaml", "-o", "json"],
            &[("E2E_SECRET_KEY", SECRET_KEY)],
        );
        assert_eq!(
            scan.code, 2,
            "the hotfix is drift: {}\n{}",
            scan.stdout, scan.stderr
        );
        let v = scan.json();
        let web = v["environments"]
            .as_array()
            .expect("environments")
            .iter()
            .flat_map(|e| e["drifts"].as_array().cloned().unwrap_or_default())
            .find(|d| d["id"]["name"] == "web")
            .unwrap_or_else(|| panic!("the hotfix is found: {v:#}"));
        assert_eq!(web["direction"], "forward", "{web:#}");
        let named = web["attribution"]["writers"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|w| w["user"]["name"] == "alice");
        if named {
            break;
        }
        assert!(
            started.elapsed() < NAMED_WITHIN,
            "the audit log names alice: {web:#}"
        );
        std::thread::sleep(Duration::from_secs(2));
    }

    // ---- four pull requests
    let app_file = |w: &Path| w.join("envs/prod/app.yaml");
    pull_request(&work, "scale-web", |w| {
        write(&app_file(w), &app(&ns, 3, "nginx:1.25", "info"))
    });
    pull_request(&work, "adopt-hotfix", |w| {
        write(&app_file(w), &app(&ns, 1, "nginx:1.25.5", "info"))
    });
    pull_request(&work, "debug-logs", |w| {
        write(&app_file(w), &app(&ns, 1, "nginx:1.25", "debug"))
    });
    pull_request(&work, "helm-greeting", |w| {
        write(
            &w.join("envs/helm/values.yaml"),
            "greeting: hello from the PR\n",
        )
    });
    let image = "spec.template.spec.containers[app].image";

    // 1. scaling keeps Git's old image: the hotfix would be undone, and Alice is named
    let p = preview(&dir, "scale-web", &["-o", "json"]);
    assert_eq!(p.code, 0, "no --fail-on: {}\n{}", p.stdout, p.stderr);
    let got = rows(&p.json());
    let prod: Vec<_> = got.iter().filter(|r| r.0 == "prod").collect();
    assert_eq!(prod.len(), 2, "{got:#?}");
    assert_eq!(
        (prod[0].1.as_str(), prod[0].2.as_str(), prod[0].3.as_str()),
        ("web", "spec.replicas", "new"),
        "{got:#?}"
    );
    assert_eq!(
        (prod[1].1.as_str(), prod[1].2.as_str(), prod[1].3.as_str()),
        ("web", image, "overwrites"),
        "{got:#?}"
    );
    assert!(prod[1].4.contains("alice"), "names alice: {got:#?}");
    assert!(
        got.iter().all(|r| r.0 == "prod"),
        "the Helm environment is not touched: {got:#?}"
    );
    let gate = preview(&dir, "scale-web", &["--fail-on", "overwrites"]);
    assert_eq!(gate.code, 2, "{}\n{}", gate.stdout, gate.stderr);
    assert!(
        gate.stdout.contains("overwrites a hand change"),
        "{}",
        gate.stdout
    );
    assert!(gate.stdout.contains("alice"), "{}", gate.stdout);
    eprintln!(
        "---- driftguard preview --base main --head scale-web --fail-on overwrites (exit 2)\n{}",
        gate.stdout
    );
    let md = preview(&dir, "scale-web", &["-o", "markdown"]);
    assert_eq!(md.code, 0, "{}", md.stderr);
    assert!(
        md.stdout.starts_with("<!-- driftguard-preview -->"),
        "{}",
        md.stdout
    );
    assert!(
        md.stdout.contains("<details><summary><b>prod</b>"),
        "{}",
        md.stdout
    );
    eprintln!("---- -o markdown\n{}", md.stdout);

    // the comment on the pull request, then edited in place on the next push (here: another
    // head), never a second one; the other comment is left alone
    for head in ["scale-web", "adopt-hotfix"] {
        let c = preview(&dir, head, &["-o", "markdown", "--comment", "7"]);
        assert_eq!(c.code, 0, "{}\n{}", c.stdout, c.stderr);
    }
    {
        let (comments, seen) = &*forge.lock().expect("lock");
        assert_eq!(comments.len(), 2, "{comments:#?}");
        assert_eq!(comments[0]["body"], "LGTM once the preview is green");
        let ours = comments[1]["body"].as_str().expect("body");
        assert!(ours.starts_with("<!-- driftguard-preview -->"), "{ours}");
        assert!(
            ours.contains("`main` → `adopt-hotfix`"),
            "the latest push: {ours}"
        );
        assert!(ours.contains("✅ adopts a drift"), "{ours}");
        let calls: Vec<(&str, &str)> = seen
            .iter()
            .map(|(m, t, _, _)| (m.as_str(), t.as_str()))
            .collect();
        assert_eq!(
            calls,
            [
                (
                    "GET",
                    "/repos/ops/gitops/issues/7/comments?per_page=100&page=1"
                ),
                ("POST", "/repos/ops/gitops/issues/7/comments"),
                (
                    "GET",
                    "/repos/ops/gitops/issues/7/comments?per_page=100&page=1"
                ),
                ("PATCH", "/repos/ops/gitops/issues/comments/101"),
            ]
        );
        for (_, _, auth, _) in seen {
            assert_eq!(auth, &format!("Bearer {FORGE_TOKEN}"));
        }
    }

    // 2. the hotfix written into Git: adopted
    let p = preview(
        &dir,
        "adopt-hotfix",
        &["-o", "json", "--fail-on", "overwrites,conflicts"],
    );
    assert_eq!(p.code, 0, "{}\n{}", p.stdout, p.stderr);
    let got = rows(&p.json());
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(
        (got[0].1.as_str(), got[0].2.as_str(), got[0].3.as_str()),
        ("web", image, "adopts"),
        "{got:#?}"
    );
    assert!(got[0].4.contains("alice"), "{got:#?}");
    eprintln!(
        "---- driftguard preview --base main --head adopt-hotfix\n{}",
        preview(&dir, "adopt-hotfix", &[]).stdout
    );

    // 3. an unrelated change: new only, the hotfix is left alone
    let p = preview(
        &dir,
        "debug-logs",
        &["-o", "json", "--fail-on", "overwrites,conflicts,high"],
    );
    assert_eq!(p.code, 0, "{}\n{}", p.stdout, p.stderr);
    let got = rows(&p.json());
    assert_eq!(
        got,
        vec![(
            "prod".to_owned(),
            "settings".to_owned(),
            "data.level".to_owned(),
            "new".to_owned(),
            String::new()
        )],
    );

    eprintln!(
        "---- driftguard preview --base main --head debug-logs --fail-on overwrites,conflicts,high\n{}",
        preview(&dir, "debug-logs", &["--fail-on", "overwrites,conflicts,high"]).stdout
    );

    // 4. a Helm values change, previewed through the chart
    let p = preview(&dir, "helm-greeting", &["-o", "json"]);
    assert_eq!(p.code, 0, "{}\n{}", p.stdout, p.stderr);
    let v = p.json();
    let got = rows(&v);
    assert_eq!(
        got,
        vec![(
            "prod-helm".to_owned(),
            "mini-settings".to_owned(),
            "data.greeting".to_owned(),
            "new".to_owned(),
            String::new()
        )],
    );
    let f = &v["environments"][0]["objects"][0]["fields"][0];
    assert_eq!(f["base"], "hello from prod", "{f:#}");
    assert_eq!(f["head"], "hello from the PR", "{f:#}");
    assert_eq!(f["live"], "hello from prod", "{f:#}");
    let skipped: Vec<&str> = v["skipped"]
        .as_array()
        .expect("skipped")
        .iter()
        .filter_map(|s| s["environment"].as_str())
        .collect();
    assert_eq!(skipped, ["prod"], "{v:#}");
    eprintln!(
        "---- driftguard preview --base main --head helm-greeting\n{}",
        preview(&dir, "helm-greeting", &[]).stdout
    );

    // nothing was applied: the hotfix still runs, the greeting is still the old one
    let image_now = kubectl(
        &s,
        &[
            "-n",
            &ns,
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}",
        ],
    );
    assert_eq!(image_now, "nginx:1.25.5");
    let greeting = kubectl(
        &s,
        &[
            "-n",
            &nsh,
            "get",
            "configmap",
            "mini-settings",
            "-o",
            "jsonpath={.data.greeting}",
        ],
    );
    assert_eq!(greeting, "hello from prod");
    // a ref that does not exist: a clear error, exit 1
    let bad = preview(&dir, "no-such-branch", &[]);
    assert_eq!(bad.code, 1, "{}\n{}", bad.stdout, bad.stderr);
    assert!(bad.stderr.contains("no-such-branch"), "{}", bad.stderr);

    // ---- the same through the API of a running server, for an operator
    let config = std::fs::read_to_string(dir.join("driftguard.yaml")).expect("config");
    write(
        &dir.join("serve.yaml"),
        &format!(
            "{config}server:\n  apiTokens:\n    - {{name: ops, tokenEnv: E2E_OPERATOR}}\n    - {{name: looker, tokenEnv: E2E_VIEWER}}\n  roleBindings:\n    - {{role: operator, environments: [\"prod*\"], tokens: [ops]}}\n    - {{role: viewer, environments: [\"*\"], tokens: [looker]}}\n  pollInterval: 60s\n  fullScanInterval: 1h\n  shutdownGrace: 2s\n"
        ),
    );
    let api_port = free_port();
    let mut server = util::e2e::spawn_server(
        &dir,
        &["--config", "serve.yaml"],
        &[
            ("E2E_SECRET_KEY", SECRET_KEY),
            ("E2E_OPERATOR", OPERATOR_TOKEN),
            ("E2E_VIEWER", VIEWER_TOKEN),
        ],
        api_port,
        dir.join("serve.log"),
        OPERATOR_TOKEN,
    );
    server.wait_ready(0.0, 2);
    // a pull request pushed after the server cloned the repository, named by its commit
    pull_request(&work, "scale-web-more", |w| {
        write(&app_file(w), &app(&ns, 4, "nginx:1.25", "info"))
    });
    let sha = git(&work, &["rev-parse", "scale-web-more"]);
    let body = serde_json::json!({"base": "main", "head": sha, "failOn": ["overwrites"]});
    let (status, answer) = server
        .send_json("POST", "/api/v1/preview", &body)
        .expect("the server answers");
    assert_eq!(status, 200, "{answer}\n{}", server.log());
    let v: Value = serde_json::from_str(&answer).expect("JSON");
    assert_eq!(v["fails"], true, "{v:#}");
    let got = rows(&v["report"]);
    let classes: Vec<(&str, &str)> = got.iter().map(|r| (r.2.as_str(), r.3.as_str())).collect();
    assert_eq!(
        classes,
        [("spec.replicas", "new"), (image, "overwrites")],
        "{v:#}"
    );
    assert!(got[1].4.contains("alice"), "{got:#?}");
    assert!(
        v["markdown"]
            .as_str()
            .is_some_and(|m| m.starts_with("<!-- driftguard-preview -->")),
        "{v:#}"
    );
    // a viewer may not; an unknown revision is a 404
    server.token = VIEWER_TOKEN.into();
    let (status, answer) = server
        .send_json("POST", "/api/v1/preview", &body)
        .expect("the server answers");
    assert_eq!(status, 403, "{answer}");
    server.token = OPERATOR_TOKEN.into();
    let (status, answer) = server
        .send_json(
            "POST",
            "/api/v1/preview",
            &serde_json::json!({"base": "main", "head": "no-such-branch"}),
        )
        .expect("the server answers");
    assert_eq!(status, 404, "{answer}");
}
