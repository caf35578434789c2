//! `driftguard remediate` end to end: the test cluster, a real Git remote accepting pushes
//! (`git daemon --enable=receive-pack` on 127.0.0.1) and the built binary. Revert a scale, an
//! image hotfix, an added label and a patched ConfigMap (dry run first); adopt a change into Git
//! on a pushed branch whose diff is exactly the drifted field with the file's comments intact;
//! after the branch is merged, the drift resolves as `adopted`; the pull request goes to a fake
//! forge API on 127.0.0.1. The API's plan-then-confirm, announced at a webhook receiver; a
//! `revert` and a `notify` policy; a missing object created and a tracked orphan pruned. Every
//! resolution a remediation caused names DriftGuard.

mod util;

use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use util::e2e::{
    fake_forge, free_port, kubectl, services, spawn_server, unix_secs_now, webhook_receiver,
    DeleteOnDrop, GitDaemon, Hook, Server, Services,
};
use util::run_in;

fn git(dir: &Path, args: &[&str]) -> String {
    util::git_as(dir, args, "Ada")
}

/// The usual scenario: a Git repository `gitops` holding `manifests` in `envs/prod/app.yaml`,
/// applied to the new namespace `ns` (deleted when the value is dropped), and a DriftGuard
/// folder `dg` whose `driftguard.yaml` watches it: `env_extra` adds keys to the environment,
/// `rest` top-level sections.
struct Shop<'a> {
    _tmp: tempfile::TempDir,
    work: std::path::PathBuf,
    file: std::path::PathBuf,
    dir: std::path::PathBuf,
    _cleanup: DeleteOnDrop<'a>,
}

fn shop<'a>(s: &'a Services, ns: &str, manifests: &str, env_extra: &str, rest: &str) -> Shop<'a> {
    let tmp = tempfile::tempdir().expect("tmp");
    let work = tmp.path().join("gitops");
    std::fs::create_dir_all(work.join("envs/prod")).expect("mkdir");
    let file = work.join("envs/prod/app.yaml");
    std::fs::write(&file, manifests).expect("write");
    git(&work, &["init", "-q", "-b", "main"]);
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "the shop"]);
    let cleanup = DeleteOnDrop::namespaces(s, &[ns]);
    kubectl(s, &["create", "namespace", ns]);
    kubectl(s, &["apply", "-f", &file.display().to_string()]);
    let dir = tmp.path().join("dg");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(
        dir.join("driftguard.yaml"),
        format!(
            "environments:\n  - name: prod\n    git: {{url: \"{}\", ref: main, path: envs/prod}}\n    live: {{kubeconfig: \"{}\"}}\n    namespaces: [{ns}]\n{env_extra}{rest}",
            work.display(),
            s.kubeconfig
        ),
    )
    .expect("config");
    Shop {
        _tmp: tmp,
        work,
        file,
        dir,
        _cleanup: cleanup,
    }
}

fn manifest(ns: &str) -> String {
    format!(
        r#"# The shop's web tier. Owned by team web.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {ns}
  labels:
    app: web
spec:
  replicas: 2  # two is enough off-season
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
        - name: app
          # pinned: see the release notes
          image: "nginx:1.25"
---
# Tunables.
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: {ns}
data:
  mode: safe
  level: "1"  # tuned by hand
"#
    )
}

#[test]
fn revert_and_adopt_end_to_end() {
    let s = services();
    let gitbin = driftguard_test_support::program("git", &["--version"]);
    let ns = format!("dg-rem-{}", std::process::id());
    let tmp = tempfile::tempdir().expect("tmp");
    let srv = tmp.path().join("srv");
    std::fs::create_dir_all(&srv).expect("mkdir");
    git(&srv, &["init", "-q", "--bare", "-b", "main", "shop.git"]);
    git(
        &srv.join("shop.git"),
        &["config", "receive.denyCurrentBranch", "ignore"],
    );
    let work = tmp.path().join("work");
    std::fs::create_dir_all(work.join("envs/prod")).expect("mkdir");
    std::fs::write(work.join("envs/prod/app.yaml"), manifest(&ns)).expect("write");
    git(&work, &["init", "-q", "-b", "main"]);
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "the shop"]);
    let daemon = GitDaemon::start(&gitbin, &srv);
    let port = daemon.port;
    let url = format!("git://127.0.0.1:{port}/shop.git");
    git(&work, &["remote", "add", "origin", &url]);
    git(&work, &["push", "-q", "origin", "main"]);

    kubectl(&s, &["create", "namespace", &ns]);
    let file = work.join("envs/prod/app.yaml");
    kubectl(&s, &["apply", "-f", &file.display().to_string()]);
    let (forge_port, forge_seen) = fake_forge();
    let dir = tmp.path().join("dg");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(
        dir.join("driftguard.yaml"),
        format!(
            "environments:\n  - name: prod\n    git: {{url: \"{url}\", ref: main, path: envs/prod, pullRequest: {{forge: github, apiUrl: \"http://127.0.0.1:{forge_port}\", repository: shop/gitops, tokenEnv: DG_E2E_FORGE_TOKEN}}}}\n    live: {{kubeconfig: \"{}\"}}\n    namespaces: [{ns}]\n",
            s.kubeconfig
        ),
    )
    .expect("config");
    let r = run_in(&dir, &["scan"]);
    assert_eq!(r.code, 0, "{r:?}");

    // revert: a scale, an image hotfix, an added label, a patched ConfigMap
    let web = "deployment/web";
    kubectl(&s, &["-n", &ns, "scale", web, "--replicas=5"]);
    kubectl(&s, &["-n", &ns, "set", "image", web, "app=nginx:1.26"]);
    kubectl(&s, &["-n", &ns, "label", web, "hotfix=yes"]);
    kubectl(
        &s,
        &[
            "-n",
            &ns,
            "patch",
            "configmap/settings",
            "-p",
            r#"{"data":{"mode":"unsafe"}}"#,
        ],
    );
    let objects = [
        format!("prod:Deployment/{ns}/web"),
        format!("prod:ConfigMap/{ns}/settings"),
    ];
    let mut args = vec!["remediate", "--revert", "--dry-run"];
    args.extend(objects.iter().map(String::as_str));
    let r = run_in(&dir, &args);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("/spec/replicas: 5 -> 2"), "{}", r.stdout);
    assert!(
        r.stdout.contains("/data/mode: unsafe -> safe"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("/metadata/labels/hotfix: yes -> (absent)"),
        "{}",
        r.stdout
    );
    assert_eq!(
        kubectl(
            &s,
            &["-n", &ns, "get", web, "-o", "jsonpath={.spec.replicas}"]
        ),
        "5",
        "a dry run changes nothing"
    );
    // every open drift matching a filter, as JSON
    let r = run_in(
        &dir,
        &[
            "remediate",
            "--all",
            "-e",
            "prod",
            "--kind",
            "ConfigMap",
            "--revert",
            "--dry-run",
            "-o",
            "json",
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let outcomes = r.json();
    let outcomes = outcomes.as_array().expect("a list");
    assert_eq!(outcomes.len(), 1, "{outcomes:?}");
    assert!(outcomes[0]["object"]
        .as_str()
        .is_some_and(|o| o.ends_with("/settings")));
    assert_eq!(outcomes[0]["applied"], false);
    let mut args = vec!["remediate", "--revert", "--yes"];
    args.extend(objects.iter().map(String::as_str));
    let r = run_in(&dir, &args);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout.matches(": reverted").count(), 2, "{}", r.stdout);
    assert_eq!(
        kubectl(&s, &["-n", &ns, "get", web, "-o", "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].image} {.metadata.labels.hotfix}"]).trim(),
        "2 nginx:1.25"
    );
    assert_eq!(
        kubectl(
            &s,
            &[
                "-n",
                &ns,
                "get",
                "configmap/settings",
                "-o",
                "jsonpath={.data.mode}"
            ]
        ),
        "safe"
    );
    let h = run_in(&dir, &["history", &objects[0], "-o", "json"]);
    assert_eq!(h.code, 0, "{h:?}");
    assert!(h.stdout.contains("\"remediated\""), "{}", h.stdout);
    assert!(h.stdout.contains("\"requestedBy\": \"cli:"), "{}", h.stdout);
    // the resolution names DriftGuard as who ended the drift
    let resolved_by_driftguard = |stdout: &str, how: &str| {
        let events: serde_json::Value = serde_json::from_str(stdout).expect("history JSON");
        events.as_array().is_some_and(|all| {
            all.iter().any(|e| {
                e["kind"] == "resolved"
                    && e["drift"]["resolution"] == how
                    && e["drift"]["resolved_by"] == "driftguard"
            })
        })
    };
    assert!(
        resolved_by_driftguard(&h.stdout, "reverted"),
        "{}",
        h.stdout
    );

    // adopt: the live value goes into Git on a pushed branch
    kubectl(
        &s,
        &[
            "-n",
            &ns,
            "patch",
            "configmap/settings",
            "-p",
            r#"{"data":{"level":"2"}}"#,
        ],
    );
    let r = util::run_env(
        &dir,
        &["remediate", "--adopt", "--yes", &objects[1]],
        &[("DG_E2E_FORGE_TOKEN", "ghp-e2e-token")],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.stdout.contains("ghp-e2e-token") && !r.stderr.contains("ghp-e2e-token"));
    git(&work, &["fetch", "-q", "origin"]);
    let branches = git(&work, &["branch", "-r"]);
    let branch = branches
        .lines()
        .map(str::trim)
        .find(|b| b.starts_with("origin/driftguard/adopt-"))
        .unwrap_or_else(|| panic!("a pushed branch in {branches}"))
        .to_owned();
    let diff = git(&work, &["diff", "-U0", "main", &branch]);
    let changed: Vec<&str> = diff
        .lines()
        .filter(|l| {
            (l.starts_with('+') || l.starts_with('-'))
                && !l.starts_with("+++")
                && !l.starts_with("---")
        })
        .collect();
    assert_eq!(
        changed,
        vec![
            "-  level: \"1\"  # tuned by hand",
            "+  level: '2'  # tuned by hand"
        ],
        "{diff}"
    );
    // the pull request, as the (local, fake) GitHub API received it
    let requests = forge_seen.lock().expect("lock").clone();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let (request_line, auth, body) = &requests[0];
    assert_eq!(request_line, "POST /repos/shop/gitops/pulls");
    assert_eq!(auth, "Bearer ghp-e2e-token");
    assert_eq!(
        body["head"].as_str(),
        branch.strip_prefix("origin/"),
        "{body}"
    );
    assert_eq!(body["base"], "main", "{body}");
    assert!(
        body["body"]
            .as_str()
            .is_some_and(|b| b.contains("Requested by: cli:")),
        "{body}"
    );
    let log = git(&work, &["log", "-1", "--format=%B", &branch]);
    assert!(
        log.contains("Drift-Episode: ") && log.contains("Requested-By: cli:"),
        "{log}"
    );
    // merged and polled: the drift resolves as adopted
    git(&work, &["merge", "-q", "--ff-only", &branch]);
    git(&work, &["push", "-q", "origin", "main"]);
    let r = run_in(&dir, &["scan"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("adopted"), "{}", r.stdout);
    let h = run_in(&dir, &["history", &objects[1], "-o", "json"]);
    assert_eq!(h.code, 0, "{h:?}");
    assert!(resolved_by_driftguard(&h.stdout, "adopted"), "{}", h.stdout);
    assert!(
        h.stdout
            .contains("opened pull request #42 https://github.example/shop/gitops/pull/42"),
        "{}",
        h.stdout
    );
    drop(daemon);
    let _ = kubectl(&s, &["delete", "namespace", &ns, "--wait=false"]);
}

/// A POST with a JSON body and a bearer token: `(status, body)`.
fn post_json(server: &Server, path: &str, token: &str, body: &str) -> (u16, serde_json::Value) {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    write!(
        s,
        "POST {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    let status = out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map(|b| b.1).unwrap_or("");
    (
        status,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

const HOOK_SECRET: &str = "rem-hook-secret-4f1e";

/// The events a webhook receiver got, each with the environment it came from.
fn hooked(hooks: &[Hook]) -> Vec<serde_json::Value> {
    hooks
        .iter()
        .flat_map(|h| h.body["events"].as_array().cloned().unwrap_or_default())
        .collect()
}

/// The API: plan, then confirm exactly that plan, with a token allowed to remediate; the
/// drift resolves as `reverted` with DriftGuard named as who ended it, the history names the
/// token, and the remediation is announced at a real local webhook receiver like a drift.
#[test]
fn api_plan_then_confirm() {
    let s = services();
    driftguard_test_support::program("git", &["--version"]);
    let ns = format!("dg-remapi-{}", std::process::id());
    let hook = webhook_receiver(HOOK_SECRET);
    let shop = shop(
        &s,
        &ns,
        &manifest(&ns),
        "",
        &format!("notifications:\n  - type: webhook\n    url: http://127.0.0.1:{}/driftguard\n    secretEnv: REM_HOOK_SECRET\n    queue: {{groupWindow: 100ms, initialBackoff: 200ms}}\nserver:\n  tokenEnv: PLAIN_TOKENS\n  apiTokens:\n    - {{name: ops, tokenEnv: OPS_TOKEN, scopes: [read, scan, remediate]}}\n  pollInterval: 1s\n", hook.port),
    );
    let dir = shop.dir.clone();
    let port = free_port();
    let after = unix_secs_now();
    let mut server = spawn_server(
        &dir,
        &[],
        &[
            ("OPS_TOKEN", "ops-token-5e2b9d71"),
            ("PLAIN_TOKENS", "plain-token-8a4c3f60"),
            ("REM_HOOK_SECRET", HOOK_SECRET),
        ],
        port,
        dir.join("serve.log"),
        "ops-token-5e2b9d71",
    );
    server.wait_ready(after, 1);
    kubectl(&s, &["-n", &ns, "scale", "deployment/web", "--replicas=5"]);
    let started = Instant::now();
    let episode = loop {
        let open = server.drifts("status=open");
        if let Some(ep) = open.iter().find_map(|d| d["episode"].as_str()) {
            break ep.to_owned();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "drift seen:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let path = format!("/api/v1/drifts/{episode}/remediate");
    let (code, _) = post_json(&server, &path, "plain-token-8a4c3f60", "{}");
    assert_eq!(code, 403, "a plain token may not remediate");
    let (code, plan) = post_json(
        &server,
        &path,
        "ops-token-5e2b9d71",
        r#"{"action": "revert"}"#,
    );
    assert_eq!(code, 200, "{plan}\n{}", server.log());
    assert_eq!(plan["applied"], false);
    assert!(
        plan["preview"]
            .as_array()
            .expect("preview")
            .iter()
            .any(|c| c["path"] == "/spec/replicas" && c["to"] == 2),
        "{plan}"
    );
    assert_eq!(
        kubectl(
            &s,
            &[
                "-n",
                &ns,
                "get",
                "deployment/web",
                "-o",
                "jsonpath={.spec.replicas}"
            ]
        ),
        "5",
        "planning changes nothing"
    );
    let (code, _) = post_json(
        &server,
        &path,
        "ops-token-5e2b9d71",
        r#"{"confirm": "0000000000000000"}"#,
    );
    assert_eq!(code, 409);
    let id = plan["plan"].as_str().expect("plan id");
    let (code, done) = post_json(
        &server,
        &path,
        "ops-token-5e2b9d71",
        &format!(r#"{{"confirm": "{id}"}}"#),
    );
    assert_eq!(code, 200, "{done}\n{}", server.log());
    assert_eq!(done["applied"], true, "{done}");
    assert_eq!(
        kubectl(
            &s,
            &[
                "-n",
                &ns,
                "get",
                "deployment/web",
                "-o",
                "jsonpath={.spec.replicas}"
            ]
        ),
        "2"
    );
    let (code, _) = post_json(
        &server,
        &path,
        "ops-token-5e2b9d71",
        &format!(r#"{{"confirm": "{id}"}}"#),
    );
    assert_eq!(code, 409, "a plan is used once");
    let started = Instant::now();
    loop {
        let d = server
            .json(&format!("/api/v1/drifts/{episode}"))
            .unwrap_or_default();
        if d["drift"]["resolution"] == "reverted" {
            assert_eq!(d["drift"]["who"], "driftguard", "{d}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "resolved as reverted: {d}\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let events = server
        .json("/api/v1/events?event=remediated")
        .expect("events");
    assert!(events.to_string().contains("token:ops"), "{events}");
    // announced like a drift: the remediation, then the resolution naming DriftGuard
    let started = Instant::now();
    let (remediated, resolved) = loop {
        let got = hooked(&hook.all());
        let of = |kind: &str| {
            got.iter()
                .find(|e| e["event"] == kind && e["episode"] == episode.as_str())
                .cloned()
        };
        if let (Some(a), Some(b)) = (of("remediated"), of("resolved")) {
            break (a, b);
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "webhook got the remediation and the resolution: {got:?}\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        remediated["remediation"]["requested_by"], "token:ops",
        "{remediated}"
    );
    assert_eq!(remediated["remediation"]["ok"], true, "{remediated}");
    assert_eq!(
        remediated["remediation"]["operation"], "apply",
        "{remediated}"
    );
    assert!(
        remediated["remediation"]["paths"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p == "/spec/replicas")),
        "{remediated}"
    );
    assert_eq!(resolved["who"], "driftguard", "{resolved}");
    assert_eq!(resolved["resolution"], "reverted", "{resolved}");
    assert!(hook.all().iter().all(|h| h.signature_ok), "signed");
    drop(server);
    let _ = kubectl(&s, &["delete", "namespace", &ns, "--wait=false"]);
}

fn many(ns: &str) -> String {
    let mut out = manifest(ns);
    for i in 0..20 {
        out.push_str(&format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i}\n  namespace: {ns}\ndata:\n  k: base\n"
        ));
    }
    out.push_str(&format!(
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: contested\n  namespace: {ns}\ndata:\n  k: base\n"
    ));
    out
}

/// A `revert` policy under `serve`: a `kubectl` change is reverted within 5 seconds, once; a
/// conflict is not touched; under a burst of 20 changes the rate limit holds.
#[test]
fn policy_reverts_once_within_its_rate_limit_and_leaves_conflicts() {
    let s = services();
    driftguard_test_support::program("git", &["--version"]);
    let ns = format!("dg-rempol-{}", std::process::id());
    let shop = shop(
        &s,
        &ns,
        &many(&ns),
        "    remediation:\n      mode: revert\n      rateLimit: {max: 5, perSeconds: 3600}\n",
        "server:\n  pollInterval: 1s\n",
    );
    let (work, file, dir) = (shop.work.clone(), shop.file.clone(), shop.dir.clone());
    let port = free_port();
    let after = unix_secs_now();
    let mut server = spawn_server(&dir, &[], &[], port, dir.join("serve.log"), "none");
    server.wait_ready(after, 1);
    let replicas = || {
        kubectl(
            &s,
            &[
                "-n",
                &ns,
                "get",
                "deployment/web",
                "-o",
                "jsonpath={.spec.replicas}",
            ],
        )
    };

    // a kubectl change: reverted within 5 seconds
    kubectl(&s, &["-n", &ns, "scale", "deployment/web", "--replicas=5"]);
    let changed = Instant::now();
    while replicas() != "2" {
        assert!(
            changed.elapsed() < Duration::from_secs(5),
            "reverted within 5 s:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // its resolution names DriftGuard
    let started = Instant::now();
    while !server.drifts("status=resolved").iter().any(|d| {
        d["object"]["name"] == "web" && d["resolution"] == "reverted" && d["who"] == "driftguard"
    }) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "resolved by DriftGuard: {:?}\n{}",
            server.drifts("status=resolved"),
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // a conflict: Git moves, then the cluster moves the same field
    let text = std::fs::read_to_string(&file).expect("read");
    let contested = "  name: contested\n  namespace: ";
    let at = text.find(contested).expect("contested");
    let (head, tail) = text.split_at(at);
    std::fs::write(
        &file,
        format!("{head}{}", tail.replacen("k: base", "k: from-git", 1)),
    )
    .expect("write");
    git(&work, &["commit", "-q", "-a", "-m", "contested from git"]);
    let started = Instant::now();
    while !server
        .drifts("status=open")
        .iter()
        .any(|d| d["name"] == "contested" || d["object"]["name"] == "contested")
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "reverse drift seen:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    kubectl(
        &s,
        &[
            "-n",
            &ns,
            "patch",
            "configmap/contested",
            "-p",
            r#"{"data":{"k":"from-live"}}"#,
        ],
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        kubectl(
            &s,
            &[
                "-n",
                &ns,
                "get",
                "configmap/contested",
                "-o",
                "jsonpath={.data.k}"
            ]
        ),
        "from-live",
        "a conflict is not touched"
    );

    // a burst of 20 changes: 4 more remediations fit in the rate limit (5 an hour)
    for i in 0..20 {
        kubectl(
            &s,
            &[
                "-n",
                &ns,
                "patch",
                &format!("configmap/cm-{i}"),
                "-p",
                r#"{"data":{"k":"burst"}}"#,
            ],
        );
    }
    std::thread::sleep(Duration::from_secs(6));
    let reverted = (0..20)
        .filter(|i| {
            kubectl(
                &s,
                &[
                    "-n",
                    &ns,
                    "get",
                    &format!("configmap/cm-{i}"),
                    "-o",
                    "jsonpath={.data.k}",
                ],
            ) == "base"
        })
        .count();
    assert_eq!(reverted, 4, "the rate limit holds:\n{}", server.log());
    let events = server
        .json("/api/v1/events?event=remediated&limit=1000")
        .expect("events");
    let items = events["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 5, "{events}");
    assert!(
        items
            .iter()
            .all(|e| e["remediation"]["requested_by"] == "policy"),
        "{events}"
    );
    let web_events = items
        .iter()
        .filter(|e| e.to_string().contains("\"web\""))
        .count();
    assert_eq!(web_events, 1, "once: {events}");
    assert_eq!(replicas(), "2");
    drop(server);
    let _ = kubectl(&s, &["delete", "namespace", &ns, "--wait=false"]);
}

/// A `notify` policy under `serve`: a `kubectl` change is announced at a real local webhook
/// receiver as a `remediated` event that changed nothing (`ok: false`, what a revert would
/// change), once per episode; the cluster keeps the change.
#[test]
fn notify_policy_announces_and_changes_nothing() {
    let s = services();
    driftguard_test_support::program("git", &["--version"]);
    let ns = format!("dg-remnot-{}", std::process::id());
    let hook = webhook_receiver(HOOK_SECRET);
    let shop = shop(
        &s,
        &ns,
        &manifest(&ns),
        "    remediation:\n      mode: notify\n",
        &format!("notifications:\n  - type: webhook\n    url: http://127.0.0.1:{}/driftguard\n    secretEnv: REM_HOOK_SECRET\n    queue: {{groupWindow: 100ms, initialBackoff: 200ms}}\nserver:\n  pollInterval: 1s\n", hook.port),
    );
    let dir = shop.dir.clone();
    let port = free_port();
    let after = unix_secs_now();
    let mut server = spawn_server(
        &dir,
        &[],
        &[("REM_HOOK_SECRET", HOOK_SECRET)],
        port,
        dir.join("serve.log"),
        "none",
    );
    server.wait_ready(after, 1);
    kubectl(&s, &["-n", &ns, "scale", "deployment/web", "--replicas=5"]);
    let started = Instant::now();
    let announced = loop {
        let got = hooked(&hook.all());
        if let Some(e) = got.iter().find(|e| e["event"] == "remediated") {
            break e.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "webhook got the notify-only remediation: {got:?}\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let r = &announced["remediation"];
    assert_eq!(r["ok"], false, "{announced}");
    assert_eq!(r["requested_by"], "policy", "{announced}");
    assert!(
        r["result"]
            .as_str()
            .is_some_and(|t| t.starts_with("notify only")),
        "{announced}"
    );
    assert!(
        r["paths"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p == "/spec/replicas")),
        "{announced}"
    );
    assert_eq!(announced["object"]["name"], "web", "{announced}");
    std::thread::sleep(Duration::from_secs(2));
    let count = hooked(&hook.all())
        .iter()
        .filter(|e| e["event"] == "remediated")
        .count();
    assert_eq!(count, 1, "once per episode");
    assert_eq!(
        kubectl(
            &s,
            &[
                "-n",
                &ns,
                "get",
                "deployment/web",
                "-o",
                "jsonpath={.spec.replicas}"
            ]
        ),
        "5",
        "notify changes nothing"
    );
    drop(server);
    let _ = kubectl(&s, &["delete", "namespace", &ns, "--wait=false"]);
}

/// The names of the ConfigMaps in `ns`.
fn configmaps(s: &util::e2e::Services, ns: &str) -> String {
    kubectl(s, &["-n", ns, "get", "configmaps", "-o", "name"])
}

/// A missing object is created from Git; an orphan is deleted only with `--prune` and only
/// when it carries the tracking label; an untracked object is never an orphan, so never
/// deleted. Each resolution names DriftGuard.
#[test]
fn create_a_missing_object_and_prune_a_tracked_orphan() {
    let s = services();
    driftguard_test_support::program("git", &["--version"]);
    let ns = format!("dg-remprune-{}", std::process::id());
    let shop = shop(&s, &ns, &manifest(&ns), "", "");
    let dir = shop.dir.clone();
    let r = run_in(&dir, &["scan"]);
    assert_eq!(r.code, 0, "{r:?}");

    // missing: deleted by hand; orphans: one tracked, one not
    kubectl(&s, &["-n", &ns, "delete", "configmap/settings"]);
    kubectl(
        &s,
        &[
            "-n",
            &ns,
            "create",
            "configmap",
            "extra",
            "--from-literal=k=v",
        ],
    );
    kubectl(
        &s,
        &[
            "-n",
            &ns,
            "label",
            "configmap/extra",
            "driftguard.io/tracked=true",
        ],
    );
    kubectl(
        &s,
        &[
            "-n",
            &ns,
            "create",
            "configmap",
            "loose",
            "--from-literal=k=v",
        ],
    );
    let settings = format!("prod:ConfigMap/{ns}/settings");
    let extra = format!("prod:ConfigMap/{ns}/extra");
    let loose = format!("prod:ConfigMap/{ns}/loose");

    // without --prune: the missing object is created, the orphan refused and kept
    let r = run_in(&dir, &["remediate", "--revert", "--yes", &settings, &extra]);
    assert_eq!(r.code, 1, "a refusal is an error exit: {r:?}");
    assert!(
        r.stdout.contains(&format!("create {settings} (plan")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(&format!("refused {extra}")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(&format!("{settings}: reverted")),
        "{}",
        r.stdout
    );
    assert_eq!(
        kubectl(
            &s,
            &[
                "-n",
                &ns,
                "get",
                "configmap/settings",
                "-o",
                "jsonpath={.data.mode} {.data.level}"
            ]
        ),
        "safe 1"
    );
    let names = configmaps(&s, &ns);
    assert!(names.contains("configmap/extra"), "kept: {names}");

    // an untracked object is no orphan: nothing to prune
    let r = run_in(&dir, &["remediate", "--revert", "--prune", "--yes", &loose]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(configmaps(&s, &ns).contains("configmap/loose"));

    // with --prune, the tracked orphan goes (dry run first: nothing changes)
    let r = run_in(
        &dir,
        &["remediate", "--revert", "--prune", "--dry-run", &extra],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains(&format!("delete {extra} (plan")),
        "{}",
        r.stdout
    );
    assert!(configmaps(&s, &ns).contains("configmap/extra"));
    let r = run_in(&dir, &["remediate", "--revert", "--prune", "--yes", &extra]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains(&format!("{extra}: reverted")),
        "{}",
        r.stdout
    );
    let names = configmaps(&s, &ns);
    assert!(!names.contains("configmap/extra"), "deleted: {names}");
    assert!(names.contains("configmap/loose"), "untouched: {names}");
    assert!(names.contains("configmap/settings"), "{names}");

    // both resolutions name DriftGuard
    for object in [&settings, &extra] {
        let h = run_in(&dir, &["history", object, "-o", "json"]);
        assert_eq!(h.code, 0, "{h:?}");
        let events: serde_json::Value = serde_json::from_str(&h.stdout).expect("history JSON");
        assert!(
            events.as_array().is_some_and(|all| all.iter().any(|e| {
                e["kind"] == "resolved"
                    && e["drift"]["resolution"] == "reverted"
                    && e["drift"]["resolved_by"] == "driftguard"
            })),
            "{}",
            h.stdout
        );
    }
    let _ = kubectl(&s, &["delete", "namespace", &ns, "--wait=false"]);
}

/// Every file under `dir`, as bytes (the SQLite history, logs), for a look for canaries.
fn files_under(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else if let Ok(b) = std::fs::read(&p) {
                out.push((p, b));
            }
        }
    }
    out
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// The hostile probe's Secret leaks and plan confusion (#26): pruning a tracked orphan Secret
/// shows and stores none of its value (preview, event, log at `-vvv`, the history file); the
/// API server's refusal of a Git Secret (`stringData.pin: 73191184`, a number) names the field
/// and never the value; confirming one episode's plan against another is refused without
/// using the plan up, and the remediation records who planned and who confirmed.
#[test]
fn secret_values_never_leak_and_plans_are_not_confused() {
    const CANARY: &str = "hunter2-canary-7f3e91";
    const PIN: &str = "73191184";
    const OPS: &str = "ops-token-5e2b9d71c3a8f604";
    const OPS2: &str = "ops2-token-91c0e4a7b2d35f18";
    let s = services();
    driftguard_test_support::program("git", &["--version"]);
    let ns = format!("dg-remsecret-{}", std::process::id());
    let shop = shop(
        &s,
        &ns,
        &manifest(&ns),
        "",
        "server:\n  apiTokens:\n    - {name: ops, tokenEnv: OPS_TOKEN, scopes: [read, scan, remediate]}\n    - {name: ops2, tokenEnv: OPS2_TOKEN, scopes: [read, scan, remediate]}\n  pollInterval: 1s\n",
    );
    // a Git Secret the API server refuses: an unquoted number in stringData
    std::fs::write(
        shop.work.join("envs/prod/pin.yaml"),
        format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: pin\n  namespace: {ns}\nstringData:\n  pin: {PIN}\n"),
    )
    .expect("write");
    git(&shop.work, &["add", "."]);
    git(&shop.work, &["commit", "-q", "-m", "a pin"]);
    // a tracked orphan Secret made by hand
    kubectl(
        &s,
        &[
            "-n",
            &ns,
            "create",
            "secret",
            "generic",
            "stray",
            &format!("--from-literal=password={CANARY}"),
        ],
    );
    kubectl(
        &s,
        &[
            "-n",
            &ns,
            "label",
            "secret/stray",
            "driftguard.io/tracked=true",
        ],
    );
    let dir = shop.dir.clone();
    let port = free_port();
    let after = unix_secs_now();
    let mut server = spawn_server(
        &dir,
        &["-vvv"],
        &[("OPS_TOKEN", OPS), ("OPS2_TOKEN", OPS2)],
        port,
        dir.join("serve.log"),
        OPS,
    );
    server.wait_ready(after, 1);
    let episode_of = |name: &str| {
        let started = Instant::now();
        loop {
            let open = server.drifts("status=open&kind=Secret");
            if let Some(ep) = open
                .iter()
                .find(|d| d["object"]["name"] == name)
                .and_then(|d| d["episode"].as_str())
            {
                return ep.to_owned();
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "a drift of the Secret {name}: {open:?}\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let stray = episode_of("stray");
    let pin = episode_of("pin");
    let encoded = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(CANARY)
    };
    let clean = |what: &str, text: &str| {
        for v in [CANARY, encoded.as_str(), PIN] {
            assert!(!text.contains(v), "{what} shows a Secret value {v}: {text}");
        }
    };

    // 1. the prune preview names the Secret's keys, never their values
    let stray_path = format!("/api/v1/drifts/{stray}/remediate");
    let (code, plan) = post_json(
        &server,
        &stray_path,
        OPS,
        r#"{"action": "revert", "prune": true}"#,
    );
    assert_eq!(code, 200, "{plan}\n{}", server.log());
    assert_eq!(plan["operation"], "delete", "{plan}");
    clean("the prune preview", &plan.to_string());
    assert!(
        plan.to_string().contains("password"),
        "the key is shown: {plan}"
    );

    // 2. the API server's refusal of the Git Secret names the field only
    let pin_path = format!("/api/v1/drifts/{pin}/remediate");
    let (code, refused) = post_json(&server, &pin_path, OPS, r#"{"action": "revert"}"#);
    assert_eq!(code, 409, "{refused}\n{}", server.log());
    clean("the refusal", &refused.to_string());
    assert!(
        refused.to_string().contains("stringData.pin"),
        "the refusal names the field: {refused}"
    );

    // 11. the stray's plan confirmed against the pin's episode: refused, and not used up
    let id = plan["plan"].as_str().expect("plan id");
    let (code, wrong) = post_json(
        &server,
        &pin_path,
        OPS2,
        &format!(r#"{{"confirm": "{id}"}}"#),
    );
    assert_eq!(code, 409, "{wrong}");
    let (code, done) = post_json(
        &server,
        &stray_path,
        OPS2,
        &format!(r#"{{"confirm": "{id}", "prune": true}}"#),
    );
    assert_eq!(code, 200, "{done}\n{}", server.log());
    assert_eq!(done["applied"], true, "{done}");
    clean("the confirmation", &done.to_string());
    let started = Instant::now();
    let events = loop {
        let events = server
            .json("/api/v1/events?event=remediated")
            .expect("events");
        if events["items"].as_array().is_some_and(|i| !i.is_empty()) {
            break events;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    clean("the remediated event", &events.to_string());
    let r = &events["items"][0]["remediation"];
    assert_eq!(r["requested_by"], "token:ops2", "{events}");
    assert_eq!(r["planned_by"], "token:ops", "{events}");
    let history = server
        .json(&format!(
            "/api/v1/environments/prod/objects/Secret/{ns}/stray"
        ))
        .expect("history");
    clean("the object history", &history.to_string());
    drop(server);
    // the log at -vvv and every file DriftGuard wrote (the SQLite history)
    for (path, bytes) in files_under(&dir) {
        for v in [CANARY, encoded.as_str(), PIN] {
            assert!(
                !contains(&bytes, v),
                "{} holds a Secret value {v}",
                path.display()
            );
        }
    }
    let _ = kubectl(&s, &["delete", "namespace", &ns, "--wait=false"]);
}
