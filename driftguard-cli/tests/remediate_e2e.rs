//! `driftguard remediate` end to end: the test cluster, a real Git remote accepting pushes
//! (`git daemon --enable=receive-pack` on 127.0.0.1) and the built binary. Revert a scale, an
//! image hotfix, an added label and a patched ConfigMap (dry run first); adopt a change into Git
//! on a pushed branch whose diff is exactly the drifted field with the file's comments intact;
//! after the branch is merged, the drift resolves as `adopted`.

mod util;

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use util::e2e::{free_port, kubectl, services};
use util::run_in;

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Ada")
        .env("GIT_AUTHOR_EMAIL", "ada@acme.example")
        .env("GIT_COMMITTER_NAME", "Ada")
        .env("GIT_COMMITTER_EMAIL", "ada@acme.example")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
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
    git(&srv.join("shop.git"), &["config", "receive.denyCurrentBranch", "ignore"]);
    let work = tmp.path().join("work");
    std::fs::create_dir_all(work.join("envs/prod")).expect("mkdir");
    std::fs::write(work.join("envs/prod/app.yaml"), manifest(&ns)).expect("write");
    git(&work, &["init", "-q", "-b", "main"]);
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "the shop"]);
    let port = free_port();
    let daemon = Daemon(
        Command::new(&gitbin)
            .args([
                "daemon",
                "--reuseaddr",
                "--export-all",
                "--enable=receive-pack",
                "--listen=127.0.0.1",
                &format!("--port={port}"),
                &format!("--base-path={}", srv.display()),
                &srv.display().to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("git daemon starts"),
    );
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(10), "git daemon listens");
        std::thread::sleep(Duration::from_millis(50));
    }
    let url = format!("git://127.0.0.1:{port}/shop.git");
    git(&work, &["remote", "add", "origin", &url]);
    git(&work, &["push", "-q", "origin", "main"]);

    kubectl(&s, &["create", "namespace", &ns]);
    let file = work.join("envs/prod/app.yaml");
    kubectl(&s, &["apply", "-f", &file.display().to_string()]);
    let dir = tmp.path().join("dg");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(
        dir.join("driftguard.yaml"),
        format!(
            "environments:\n  - name: prod\n    git: {{url: \"{url}\", ref: main, path: envs/prod}}\n    live: {{kubeconfig: \"{}\"}}\n    namespaces: [{ns}]\n",
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
    kubectl(&s, &["-n", &ns, "patch", "configmap/settings", "-p", r#"{"data":{"mode":"unsafe"}}"#]);
    let objects = [
        format!("prod:Deployment/{ns}/web"),
        format!("prod:ConfigMap/{ns}/settings"),
    ];
    let mut args = vec!["remediate", "--revert", "--dry-run"];
    args.extend(objects.iter().map(String::as_str));
    let r = run_in(&dir, &args);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("/spec/replicas: 5 -> 2"), "{}", r.stdout);
    assert!(r.stdout.contains("/data/mode: unsafe -> safe"), "{}", r.stdout);
    assert!(r.stdout.contains("/metadata/labels/hotfix: yes -> (absent)"), "{}", r.stdout);
    assert_eq!(
        kubectl(&s, &["-n", &ns, "get", web, "-o", "jsonpath={.spec.replicas}"]),
        "5",
        "a dry run changes nothing"
    );
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
        kubectl(&s, &["-n", &ns, "get", "configmap/settings", "-o", "jsonpath={.data.mode}"]),
        "safe"
    );
    let h = run_in(&dir, &["history", &objects[0], "-o", "json"]);
    assert_eq!(h.code, 0, "{h:?}");
    assert!(h.stdout.contains("\"remediated\""), "{}", h.stdout);
    assert!(h.stdout.contains("\"requestedBy\": \"cli:"), "{}", h.stdout);

    // adopt: the live value goes into Git on a pushed branch
    kubectl(&s, &["-n", &ns, "patch", "configmap/settings", "-p", r#"{"data":{"level":"2"}}"#]);
    let r = run_in(&dir, &["remediate", "--adopt", "--yes", &objects[1]]);
    assert_eq!(r.code, 0, "{r:?}");
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
        .filter(|l| (l.starts_with('+') || l.starts_with('-')) && !l.starts_with("+++") && !l.starts_with("---"))
        .collect();
    assert_eq!(
        changed,
        vec!["-  level: \"1\"  # tuned by hand", "+  level: '2'  # tuned by hand"],
        "{diff}"
    );
    let log = git(&work, &["log", "-1", "--format=%B", &branch]);
    assert!(log.contains("Drift-Episode: ") && log.contains("Requested-By: cli:"), "{log}");
    // merged and polled: the drift resolves as adopted
    git(&work, &["merge", "-q", "--ff-only", &branch]);
    git(&work, &["push", "-q", "origin", "main"]);
    let r = run_in(&dir, &["scan"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("adopted"), "{}", r.stdout);
    drop(daemon);
    let _ = kubectl(&s, &["delete", "namespace", &ns, "--wait=false"]);
}
