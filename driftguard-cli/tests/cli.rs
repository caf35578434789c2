//! End-to-end tests of the `driftguard` binary: every command, output format and exit code,
//! bad input, and the shipped example.

mod util;

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;
use util::{demo_copy, edit, repo_root, run_env, run_in, write};

/// (kind, namespace/name, drift, direction, fields) of every open drift in a `-o json` scan.
fn drift_set(v: &Value) -> BTreeSet<(String, String, String, String, String, String)> {
    let mut out = BTreeSet::new();
    for env in v["environments"].as_array().expect("environments") {
        for d in env["drifts"].as_array().expect("drifts") {
            let id = &d["id"];
            let ns = id["namespace"].as_str().unwrap_or("");
            let fields: Vec<&str> = d["fields"]
                .as_array()
                .expect("fields")
                .iter()
                .map(|f| f["path"].as_str().expect("path"))
                .collect();
            out.insert((
                env["environment"].as_str().expect("env").to_owned(),
                id["kind"].as_str().expect("kind").to_owned(),
                format!("{ns}/{}", id["name"].as_str().expect("name")),
                d["kind"].as_str().expect("drift kind").to_owned(),
                d["direction"].as_str().expect("direction").to_owned(),
                fields.join(","),
            ));
        }
    }
    out
}

fn expected_demo() -> BTreeSet<(String, String, String, String, String, String)> {
    [
        (
            "Deployment",
            "shop/web",
            "modified",
            "forward",
            "spec.replicas",
        ),
        (
            "Deployment",
            "shop/api",
            "modified",
            "forward",
            "spec.template.spec.containers[api].image",
        ),
        (
            "ConfigMap",
            "shop/web-config",
            "modified",
            "forward",
            "data.LOG_LEVEL",
        ),
        (
            "Deployment",
            "shop/worker",
            "modified",
            "forward",
            "metadata.labels.debug",
        ),
        ("ConfigMap", "shop/worker-config", "missing", "unknown", ""),
        ("ConfigMap", "shop/debug-snapshot", "orphan", "unknown", ""),
        (
            "ConfigMap",
            "shop/api-config",
            "modified",
            "reverse",
            "data.RATE_LIMIT",
        ),
    ]
    .into_iter()
    .map(|(k, o, d, dir, f)| {
        (
            "prod".to_owned(),
            k.to_owned(),
            o.to_owned(),
            d.to_owned(),
            dir.to_owned(),
            f.to_owned(),
        )
    })
    .collect()
}

#[test]
fn shipped_example_gives_exactly_its_drifts() {
    let (_tmp, demo) = demo_copy();
    let r = run_in(&demo, &["scan", "-o", "json"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(drift_set(&r.json()), expected_demo(), "{}", r.stdout);
    // with a kustomize renderer on PATH staging is read and in sync; without, it says why
    let v = r.json();
    let staging = &v["environments"][0];
    assert_eq!(staging["environment"], "staging");
    assert_eq!(staging["drifts"].as_array().map(Vec::len), Some(0));
}

#[test]
fn readme_command_prints_the_drift_table() {
    let root = repo_root();
    let store = tempfile::tempdir().expect("tmp");
    let db = store.path().join("dg.db");
    let r = run_in(
        &root,
        &[
            "scan",
            "--config",
            "examples/demo/driftguard.yaml",
            "--store",
            db.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(r.code, 2, "{r:?}");
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(lines[0].starts_with("ENVIRONMENT  KIND"), "{}", r.stdout);
    for h in [
        "OBJECT",
        "DRIFT",
        "DIRECTION",
        "SEVERITY",
        "FIELDS",
        "WHO",
        "SINCE",
    ] {
        assert!(lines[0].contains(h), "{}", lines[0]);
    }
    assert!(r.stdout.contains("kubectl-set"), "{}", r.stdout);
    assert!(r.stdout.contains("kubectl-patch"), "{}", r.stdout);
    assert!(r.stdout.contains("kubectl-label"), "{}", r.stdout);
    assert!(
        r.stdout.contains("7 drifts (staging: 0, prod: 7)."),
        "{}",
        r.stdout
    );
    // not a terminal and NO_COLOR: no escape codes
    assert!(!r.stdout.contains('\x1b'), "{}", r.stdout);
}

#[test]
fn yaml_output_and_diff() {
    let (_tmp, demo) = demo_copy();
    let r = run_in(&demo, &["scan", "--no-store", "-e", "prod", "-o", "yaml"]);
    assert_eq!(r.code, 2, "{r:?}");
    let v: Value = serde_yaml::from_str(&r.stdout).expect("yaml");
    assert_eq!(drift_set(&v), expected_demo());

    let r = run_in(&demo, &["scan", "--no-store", "-e", "prod", "--diff"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stdout.contains("spec.replicas: git=2 live=5"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(
            "spec.template.spec.containers[api].image: git=ghcr.io/example/shop-api:1.4.2 live=ghcr.io/example/shop-api:1.4.3-hotfix"
        ),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("data.RATE_LIMIT: git=200 live=100"),
        "{}",
        r.stdout
    );
}

#[test]
fn fail_on_sets_the_threshold() {
    let (_tmp, demo) = demo_copy();
    let r = run_in(&demo, &["scan", "--no-store", "--fail-on", "critical"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("shop/web"), "the table is still printed");
    let r = run_in(&demo, &["scan", "--no-store", "--fail-on", "high"]);
    assert_eq!(r.code, 2, "{r:?}");
    let r = run_in(&demo, &["scan", "--no-store", "--fail-on", "bad"]);
    assert_eq!(r.code, 1, "usage errors exit 1: {r:?}");
}

#[test]
fn secret_values_are_never_shown() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    write(
        &d.join("git/s.yaml"),
        "apiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: app}\nstringData:\n  PASSWORD: git-plaintext-value\n",
    );
    // live: base64("live-plaintext-value")
    write(
        &d.join("live.yaml"),
        "apiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: app, uid: x}\ntype: Opaque\ndata:\n  PASSWORD: bGl2ZS1wbGFpbnRleHQtdmFsdWU=\n",
    );
    for fmt in ["table", "json", "yaml"] {
        let r = run_env(
            d,
            &[
                "scan",
                "--dir",
                "git",
                "--live-dump",
                "live.yaml",
                "--no-store",
                "--diff",
                "-o",
                fmt,
            ],
            &[("DRIFTGUARD_SECRET_KEY", "k")],
        );
        assert_eq!(r.code, 2, "{r:?}");
        assert!(r.stdout.contains("data.PASSWORD"), "{}", r.stdout);
        for secret in [
            "git-plaintext-value",
            "live-plaintext-value",
            "bGl2ZS1wbGFpbnRleHQtdmFsdWU=",
        ] {
            assert!(!r.stdout.contains(secret), "{fmt}: {}", r.stdout);
            assert!(!r.stderr.contains(secret), "{fmt}: {}", r.stderr);
        }
    }
}

#[test]
fn flags_alone_and_no_drift_exit_zero() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    write(
        &d.join("git/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: app}\ndata: {k: v}\n",
    );
    write(
        &d.join("live.yaml"),
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: a, namespace: app, uid: u1, resourceVersion: '1'}\n  data: {k: v}\n",
    );
    let r = run_in(d, &["scan", "--dir", "git", "--live-dump", "live.yaml"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.starts_with("No drift: 1 objects in sync"),
        "{}",
        r.stdout
    );
    // the default store is ./.driftguard/driftguard.db, with its per-store key
    assert!(d.join(".driftguard/driftguard.db").is_file());
    assert!(d.join(".driftguard/driftguard.key").is_file());
    let r = run_in(
        d,
        &["scan", "-q", "--dir", "git", "--live-dump", "live.yaml"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout, "", "quiet prints nothing when there is no drift");
}

#[test]
fn history_drifts_events_explain_and_resolved_drift() {
    let (_tmp, demo) = demo_copy();
    let r = run_in(&demo, &["scan"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(demo.join(".driftguard/driftguard.db").is_file());

    // the scale is reverted, the label removed by hand: the second scan tells they resolved
    let live = demo.join("live/prod.yaml");
    edit(&live, "replicas: 5", "replicas: 2");
    edit(&live, "      debug: 'true'\n", "");
    let r = run_in(&demo, &["scan"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stdout.contains("Resolved since the last scan:"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("prod Deployment shop/web (modified forward, reverted)"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("5 drifts (staging: 0, prod: 5)."),
        "{}",
        r.stdout
    );

    let r = run_in(&demo, &["drifts", "-o", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json().as_array().map(Vec::len), Some(5));
    // every drift carries its findings; the demo's deleted ConfigMap has none, the label
    // added by hand (resolved since) was cosmetic
    let drifts = r.json();
    let of = |name: &str| -> Vec<String> {
        drifts
            .as_array()
            .expect("drifts")
            .iter()
            .find(|d| d["id"]["name"] == name)
            .map(|d| {
                d["findings"]
                    .as_array()
                    .expect("findings")
                    .iter()
                    .map(|f| f["rule"].as_str().expect("rule").to_owned())
                    .collect()
            })
            .unwrap_or_else(|| panic!("{name} drifts"))
    };
    assert_eq!(of("api"), ["image-not-in-git"]);
    assert_eq!(of("worker-config"), Vec::<String>::new());
    let r = run_in(&demo, &["drifts", "--status", "resolved"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("shop/web"), "{}", r.stdout);
    assert!(r.stdout.contains("shop/worker"), "{}", r.stdout);
    let r = run_in(&demo, &["drifts", "--severity", "high", "-o", "yaml"]);
    let v: Value = serde_yaml::from_str(&r.stdout).expect("yaml");
    assert_eq!(v.as_array().map(Vec::len), Some(2), "{}", r.stdout);

    let r = run_in(&demo, &["events", "-o", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let v = r.json();
    let kinds: Vec<&str> = v
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["kind"].as_str().expect("kind"))
        .collect();
    assert_eq!(kinds.iter().filter(|k| **k == "detected").count(), 7);
    assert_eq!(kinds.iter().filter(|k| **k == "resolved").count(), 2);
    let r = run_in(&demo, &["events", "--kind", "resolved"]);
    assert!(r.stdout.lines().count() == 3, "{}", r.stdout);

    let r = run_in(&demo, &["history", "prod:Deployment/shop/web"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("detected"), "{}", r.stdout);
    assert!(r.stdout.contains("resolved"), "{}", r.stdout);
    assert!(r.stdout.contains("reverted"), "{}", r.stdout);
    let r = run_in(
        &demo,
        &["history", "Deployment.apps/shop/web", "-o", "json"],
    );
    assert_eq!(r.json().as_array().map(Vec::len), Some(2));

    let r = run_in(&demo, &["explain", "prod:Deployment/shop/api"]);
    assert_eq!(r.code, 0, "{r:?}");
    for s in [
        "spec.template.spec.containers[api].image",
        "git:  ghcr.io/example/shop-api:1.4.2",
        "live: ghcr.io/example/shop-api:1.4.3-hotfix",
        "live value set by: kubectl-set (person, Update) at 2026-",
        "direction: forward",
        "severity:  high",
        "defined in Git at api.yaml:1",
        // the judgement: a hotfix Git never saw, and what to do about it
        "findings:\n    medium supply-chain image-not-in-git (spec.template.spec.containers[api].image): container `api` runs `ghcr.io/example/shop-api:1.4.3-hotfix` in the cluster",
        "suggested: revert",
    ] {
        assert!(r.stdout.contains(s), "missing {s:?} in\n{}", r.stdout);
    }
    let r = run_in(
        &demo,
        &["explain", "prod:Deployment/shop/api", "-o", "json"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let f = &r.json()["findings"][0];
    assert_eq!(f["rule"], "image-not-in-git", "{}", r.stdout);
    assert_eq!(f["category"], "supply-chain");
    assert_eq!(f["risk"], "medium");
    assert_eq!(f["path"], "spec.template.spec.containers[api].image");
    let r = run_in(&demo, &["explain", "ConfigMap/shop/api-config"]);
    assert!(r.stdout.contains("direction: reverse"), "{}", r.stdout);
    let r = run_in(&demo, &["explain", "prod:Deployment/shop/nothing"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("no drift recorded"), "{}", r.stdout);
    let r = run_in(&demo, &["explain", "nonsense"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.starts_with("error: `nonsense`: expected"),
        "{}",
        r.stderr
    );
}

fn store_state(demo: &Path) -> (String, String) {
    let d = run_in(demo, &["drifts", "--status", "all", "-o", "json"]);
    let e = run_in(demo, &["events", "-o", "json"]);
    assert_eq!(d.code, 0);
    assert_eq!(e.code, 0);
    (d.stdout, e.stdout)
}

fn assert_one_line_error(r: &util::Run, needle: &str) {
    assert_eq!(r.code, 1, "{r:?}");
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {}", r.stderr);
    assert!(lines[0].starts_with("error: "), "{}", r.stderr);
    assert!(lines[0].contains(needle), "{needle:?} not in {}", r.stderr);
}

#[test]
fn bad_input_is_one_line_exit_one_and_changes_nothing() {
    let (_tmp, demo) = demo_copy();
    let r = run_in(&demo, &["scan"]);
    assert_eq!(r.code, 2, "{r:?}");
    let before = store_state(&demo);

    // a missing file
    let r = run_in(&demo, &["scan", "-c", "nope.yaml"]);
    assert_one_line_error(&r, "nope.yaml: cannot read the configuration: no such file");
    let r = run_in(&demo, &["scan", "--live-dump", "nope.yaml"]);
    assert_one_line_error(&r, "nope.yaml");

    // an invalid config
    write(
        &demo.join("bad.yaml"),
        "environments:\n  - name: prod\n    dir: gitops/envs/prod\n    live:\n      dumb: live/prod.yaml\n",
    );
    let r = run_in(&demo, &["scan", "-c", "bad.yaml"]);
    assert_one_line_error(
        &r,
        "bad.yaml:5:7: environments[0].live: unknown field `dumb`, expected one of",
    );

    // a malformed dump
    let live = demo.join("live/prod.yaml");
    let good = std::fs::read_to_string(&live).expect("read");
    write(&live, &format!("{good}\n---\nkind: [unclosed\n"));
    let r = run_in(&demo, &["scan", "-e", "prod"]);
    assert_one_line_error(&r, "environment prod: cannot read the live state");
    assert!(r.stderr.contains("invalid YAML"), "{}", r.stderr);
    write(&live, &good);

    // an unreachable cluster
    write(
        &demo.join("kubeconfig"),
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:1', insecure-skip-tls-verify: true}\nusers:\n- name: u\n  user: {token: t}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n",
    );
    let r = run_in(&demo, &["scan", "-e", "prod", "--kubeconfig", "kubeconfig"]);
    assert_one_line_error(&r, "environment prod: cannot read the live state");
    assert!(r.stderr.contains("127.0.0.1:1"), "{}", r.stderr);

    assert_eq!(store_state(&demo), before, "nothing stored changed");

    // no configuration at all
    let empty = tempfile::tempdir().expect("tmp");
    let r = run_in(empty.path(), &["scan"]);
    assert_one_line_error(&r, "no configuration");
    assert!(!empty.path().join(".driftguard").exists());
}

#[test]
fn failed_first_scan_creates_no_store() {
    let (_tmp, demo) = demo_copy();
    write(&demo.join("live/prod.yaml"), "items: [\n");
    let r = run_in(&demo, &["scan", "-e", "prod"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(!demo.join(".driftguard").exists());
}

#[test]
fn config_validate_lists_every_problem_with_its_line() {
    let (_tmp, demo) = demo_copy();
    let r = run_in(&demo, &["config", "validate"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout, "driftguard.yaml: ok (2 environments)\n");

    write(
        &demo.join("bad.yaml"),
        "environments:\n  - name: a\n    dir: gitops/envs/prod\n    defaultNamespace: Shop_1\n    live:\n      dump: missing.yaml\n  - name: a\n    git:\n      url: x\n    dir: y\nsecretKey:\n  env: ''\n",
    );
    let r = run_in(&demo, &["config", "validate", "bad.yaml"]);
    assert_eq!(r.code, 1, "{r:?}");
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert!(
        lines
            .contains(&"bad.yaml:6: environments[0].live.dump: file ./missing.yaml does not exist"),
        "{}",
        r.stderr
    );
    assert!(
        lines.contains(&"bad.yaml:7: environments[1].name: environment `a` is defined twice"),
        "{}",
        r.stderr
    );
    assert!(
        lines.contains(
            &"bad.yaml:10: environments[1].dir: `git` and `dir` are both set: choose one"
        ),
        "{}",
        r.stderr
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("bad.yaml:7: environments[1]: no live side")),
        "{}",
        r.stderr
    );
    assert!(
        lines.contains(&"bad.yaml:12: secretKey.env: must not be empty"),
        "{}",
        r.stderr
    );
    assert!(
        lines.contains(
            &"bad.yaml:4: environments[0].defaultNamespace: must be a namespace name (lower-case letters, digits and `-`, at most 63)"
        ),
        "{}",
        r.stderr
    );
    assert_eq!(lines.last(), Some(&"bad.yaml: 6 problems"), "{}", r.stderr);

    // notifiers: names must differ, a CA file must exist
    write(
        &demo.join("bad3.yaml"),
        "environments:\n  - name: a\n    dir: gitops/envs/prod\n    live:\n      dump: live/prod.yaml\nnotifications:\n  - type: webhook\n    url: http://127.0.0.1:9/hook\n  - type: webhook\n    url: http://127.0.0.1:9/other\n  - type: email\n    host: 127.0.0.1\n    from: a@b.c\n    to: [d@e.f]\n    caFile: certs/none.pem\n",
    );
    let r = run_in(&demo, &["config", "validate", "bad3.yaml"]);
    assert_eq!(r.code, 1, "{r:?}");
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert!(
        lines.contains(&"bad3.yaml:9: notifications[1]: the name `webhook` is used by another notifier: give each its own `name`"),
        "{}",
        r.stderr
    );
    assert!(
        lines.iter().any(
            |l| l.starts_with("bad3.yaml:15: notifications[2].caFile: file ")
                && l.ends_with("certs/none.pem does not exist")
        ),
        "{}",
        r.stderr
    );
    assert_eq!(lines.last(), Some(&"bad3.yaml: 2 problems"), "{}", r.stderr);

    // a wrong type names the key and line
    write(
        &demo.join("bad2.yaml"),
        "environments:\n  - name: a\n    namespaces: shop\n",
    );
    let r = run_in(&demo, &["config", "validate", "bad2.yaml"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .starts_with("bad2.yaml:3:17: environments[0].namespaces: invalid type"),
        "{}",
        r.stderr
    );
}

/// The one configuration written with the old snake_case keys on purpose: they still load,
/// and each gives a warning with its file, line and the key to write instead.
#[test]
fn config_validate_accepts_snake_case_keys_with_a_warning() {
    let (_tmp, demo) = demo_copy();
    write(
        &demo.join("old.yaml"),
        "environments:\n  - name: prod\n    dir: gitops/envs/prod\n    live:\n      dump: live/prod.yaml\nserver:\n  listen: 127.0.0.1:9000\n  poll_interval: 30s\n  notifiers:\n    - type: webhook\n      url: http://127.0.0.1:9/hook\n      secret_env: HOOK_SECRET\n      queue: {group_window: 1s}\n",
    );
    let r = run_in(&demo, &["config", "validate", "old.yaml"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout, "old.yaml: ok (1 environment)\n");
    assert_eq!(
        r.stderr.lines().collect::<Vec<_>>(),
        [
            "warning: old.yaml:8: server.poll_interval: snake_case keys are deprecated; write pollInterval",
            "warning: old.yaml:12: server.notifiers[0].secret_env: snake_case keys are deprecated; write secretEnv",
            "warning: old.yaml:13: server.notifiers[0].queue.group_window: snake_case keys are deprecated; write groupWindow",
        ],
        "{r:?}"
    );
    // the camelCase spelling of the same file loads without a word
    write(
        &demo.join("new.yaml"),
        "environments:\n  - name: prod\n    dir: gitops/envs/prod\n    live:\n      dump: live/prod.yaml\nserver:\n  listen: 127.0.0.1:9000\n  pollInterval: 30s\n  notifiers:\n    - type: webhook\n      url: http://127.0.0.1:9/hook\n      secretEnv: HOOK_SECRET\n      queue: {groupWindow: 1s}\n",
    );
    let r = run_in(&demo, &["config", "validate", "new.yaml"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stderr, "", "{r:?}");
    // scans print the same warnings
    let r = run_in(&demo, &["--config", "old.yaml", "scan", "--no-store"]);
    assert!(
        r.stderr.contains(
            "warning: old.yaml:8: server.poll_interval: snake_case keys are deprecated; write pollInterval"
        ),
        "{r:?}"
    );
}

#[test]
fn completions_and_version() {
    let tmp = tempfile::tempdir().expect("tmp");
    for shell in ["bash", "zsh", "fish"] {
        let r = run_in(tmp.path(), &["completions", shell]);
        assert_eq!(r.code, 0, "{r:?}");
        assert!(r.stdout.contains("driftguard"), "{shell}");
    }
    let r = run_in(tmp.path(), &["--version"]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.starts_with("driftguard "));
}

#[test]
fn the_documented_example_parses() {
    let doc = std::fs::read_to_string(repo_root().join("docs/configuration.md")).expect("docs");
    let start = doc.find("## Full example").expect("section");
    let block = &doc[start..];
    let body = &block[block.find("```yaml\n").expect("yaml block") + 8..];
    let body = &body[..body.find("```").expect("block end")];
    let parsed: driftguard_cli::config::ConfigFile =
        serde_yaml::from_str(body).expect("the documented example parses");
    assert_eq!(parsed.environments.len(), 2);
    assert_eq!(parsed.environments[0].spec().severity.overrides.len(), 2);
}

fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

#[test]
fn serve_runs_the_server_on_the_same_configuration() {
    let (_tmp, demo) = demo_copy();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_driftguard"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .current_dir(&demo)
        .env("NO_COLOR", "1")
        .env_remove("DRIFTGUARD_CONFIG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("serve starts");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut drifts = None;
    while std::time::Instant::now() < deadline {
        if let Some(r) = http_get(port, "/api/v1/drifts?environment=prod") {
            if r.starts_with("HTTP/1.1 200") && r.contains("debug-snapshot") {
                drifts = Some(r);
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let envs = http_get(port, "/api/v1/environments");
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        drifts.is_some(),
        "the server scanned prod and lists its drifts"
    );
    assert!(envs.is_some_and(|e| e.contains("staging")));
}

#[test]
fn the_example_against_a_real_cluster_gives_the_same_verdicts() {
    let (kubeconfig, kubectl) = driftguard_test_support::cluster();
    let (kubeconfig, kubectl) = (
        kubeconfig.display().to_string(),
        kubectl.display().to_string(),
    );
    let (_tmp, demo) = demo_copy();
    // apply the example's manifests and make the same hand changes with kubectl
    let out = std::process::Command::new(demo.join("reproduce.sh"))
        .env("KUBECTL", &kubectl)
        .env("KUBECONFIG", &kubeconfig)
        .env("SKIP_STAGING", "1")
        .output()
        .expect("reproduce.sh runs");
    assert!(
        out.status.success(),
        "reproduce.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = run_in(
        &demo,
        &[
            "scan",
            "-e",
            "prod",
            "--kubeconfig",
            &kubeconfig,
            "--no-store",
            "-o",
            "json",
        ],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(drift_set(&r.json()), expected_demo(), "{}", r.stdout);
    // and the same as the shipped dump
    let d = run_in(&demo, &["scan", "-e", "prod", "--no-store", "-o", "json"]);
    assert_eq!(drift_set(&d.json()), drift_set(&r.json()));
}

#[test]
fn git_flags_scan_a_repository_and_attribute_commits() {
    let (tmp, demo) = demo_copy();
    let repo = tmp.path().join("repo");
    std::fs::rename(demo.join("gitops"), &repo).expect("move");
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args([
                "-c",
                "user.name=Alice",
                "-c",
                "user.email=alice@example.com",
            ])
            .args(args)
            .current_dir(&repo)
            .output()
    };
    driftguard_test_support::program("git", &["--version"]);
    assert!(git(&["init", "-q"]).expect("git init").status.success());
    assert!(git(&["add", "-A"]).expect("git add").status.success());
    assert!(git(&["commit", "-qm", "shop: initial"])
        .expect("git commit")
        .status
        .success());
    let repo_s = repo.to_str().expect("utf-8");
    let r = run_in(
        &demo,
        &[
            "scan",
            "--git",
            repo_s,
            "--path",
            "envs/prod",
            "--live-dump",
            "live/prod.yaml",
            "-e",
            "prod",
            "--store",
            "h.db",
            "-o",
            "json",
        ],
    );
    // --git without --config: flags alone, the environment named by -e
    assert_eq!(r.code, 2, "{r:?}");
    let set = drift_set(&r.json());
    assert_eq!(set.len(), 7, "{set:?}");
    let r = run_in(
        &demo,
        &[
            "--store",
            "h.db",
            "explain",
            "prod:ConfigMap/shop/api-config",
        ],
    );
    assert!(
        r.stdout.contains("Alice <alice@example.com>"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("\"shop: initial\""), "{}", r.stdout);
    assert!(
        r.stdout.contains("defined in Git at envs/prod/api.yaml"),
        "{}",
        r.stdout
    );
}

#[test]
fn store_retention_prunes_old_history_after_a_scan_and_keeps_open_drifts() {
    use driftguard_core::ports::DriftStore;
    use driftguard_core::query::{DriftQuery, EventQuery};
    let (_tmp, demo) = demo_copy();
    let db = demo.join(".driftguard/driftguard.db");
    std::fs::create_dir_all(db.parent().expect("parent")).expect("mkdir");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let count = |store: &driftguard_store::SqliteStore| {
        rt.block_on(async {
            let q = EventQuery {
                environment: Some("archive".into()),
                ..EventQuery::default()
            };
            let events = store.events(&q).await.expect("events").items.len();
            let scans = store.scans(Some("archive"), 10).await.expect("scans").len();
            let d = DriftQuery {
                environment: Some("archive".into()),
                ..DriftQuery::default()
            };
            let open = store.drifts(&d).await.expect("drifts").items.len();
            (events, scans, open)
        })
    };
    {
        // history of an environment from 2024 (testkit's t0), 2 of 4 drifts resolved
        let store = driftguard_store::SqliteStore::open(&db).expect("open");
        rt.block_on(driftguard_server::testkit::fill_store(
            &store, "archive", 4, 2,
        ))
        .expect("fill");
        assert_eq!(count(&store), (6, 1, 2));
    }
    // without retention nothing goes
    let r = run_in(&demo, &["scan", "--quiet"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(
        count(&driftguard_store::SqliteStore::open(&db).expect("open")),
        (6, 1, 2)
    );
    // with 30 days of retention the 2024 events and scan go, the open drifts stay
    let config = demo.join("driftguard.yaml");
    let text = std::fs::read_to_string(&config).expect("read");
    std::fs::write(&config, format!("{text}\nstore:\n  retention: 30d\n")).expect("write");
    let r = run_in(&demo, &["scan", "--quiet"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(
        count(&driftguard_store::SqliteStore::open(&db).expect("open")),
        (0, 0, 2)
    );
    // and the demo's own history (made just now) is kept
    let r = run_in(&demo, &["events", "-e", "prod"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("detected"), "{}", r.stdout);
    // a bad value names the key
    std::fs::write(&config, format!("{text}\nstore:\n  retention: soon\n")).expect("write");
    let r = run_in(&demo, &["scan", "--quiet"]);
    assert_eq!(r.code, 1);
    // the line is the `retention:` line (the path stops at `store`: serde_yaml's)
    let line = text.lines().count() + 3;
    assert!(
        r.stderr.contains(&format!("driftguard.yaml:{line}:"))
            && r.stderr.contains("invalid duration `soon`"),
        "{}",
        r.stderr
    );
}

/// `driftguard ack`: acknowledged drift stays listed but leaves `scan`'s exit code (unless
/// `--include-acknowledged`); the baseline of a whole environment; a drift that changes
/// counts again; a withdrawn acknowledgement counts again; refusals are one line.
#[test]
fn acknowledged_drift_leaves_the_guardrail_until_it_changes() {
    let (_tmp, demo) = demo_copy();
    assert_eq!(run_in(&demo, &["scan"]).code, 2);
    let r = run_in(&demo, &["drifts", "-o", "json"]);
    let drifts = r.json();
    let episode_of = |name: &str| -> String {
        drifts
            .as_array()
            .expect("drifts")
            .iter()
            .find(|d| d["id"]["name"] == name)
            .and_then(|d| d["episode"].as_str())
            .expect("the drift")
            .to_owned()
    };
    let web = episode_of("web");
    // refusals
    let r = run_in(&demo, &["ack", &web]);
    assert_one_line_error(&r, "--reason");
    let r = run_in(&demo, &["ack", "nope", "--reason", "x"]);
    assert_one_line_error(&r, "no drift episode `nope`");
    // one drift acknowledged: the others still fail the scan
    let r = run_in(
        &demo,
        &["ack", &web, "--reason", "load test", "--until", "3d"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("holds") && r.stdout.contains("by cli:"),
        "{}",
        r.stdout
    );
    let r = run_in(&demo, &["scan"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("1 acknowledged drift left out"),
        "{}",
        r.stderr
    );
    assert!(r.stdout.contains("shop/web "), "still listed: {}", r.stdout);
    // and marked, in the scan's table and in `drifts`: who, and until when
    for r in [r, run_in(&demo, &["drifts"])] {
        let header = r.stdout.lines().next().unwrap_or_default().to_owned();
        assert!(header.contains("ACKNOWLEDGED"), "{}", r.stdout);
        let web_row = r
            .stdout
            .lines()
            .find(|l| l.contains("shop/web "))
            .unwrap_or_default();
        assert!(
            web_row.contains("by cli:") && web_row.contains(" until 20"),
            "{}",
            r.stdout
        );
        let api_row = r
            .stdout
            .lines()
            .find(|l| l.contains("shop/api "))
            .unwrap_or_default();
        assert!(!api_row.contains("by cli:"), "{}", r.stdout);
    }
    // the baseline: every open drift of prod
    let r = run_in(
        &demo,
        &[
            "ack",
            "--env",
            "prod",
            "--all",
            "--reason",
            "baseline at onboarding",
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout.lines().count(), 7, "{}", r.stdout);
    let r = run_in(&demo, &["scan"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains("7 acknowledged drifts left out"),
        "{}",
        r.stderr
    );
    assert_eq!(run_in(&demo, &["scan", "--include-acknowledged"]).code, 2);
    let r = run_in(&demo, &["ack", "--list", "-o", "json"]);
    let list = r.json();
    assert_eq!(list.as_array().map(Vec::len), Some(7), "{list}");
    assert!(list
        .as_array()
        .expect("list")
        .iter()
        .all(|a| a["standing"] == "holds"));
    // the scale moves again: web's drift changed, its acknowledgement lapsed
    edit(&demo.join("live/prod.yaml"), "replicas: 5", "replicas: 6");
    let r = run_in(&demo, &["scan"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("6 acknowledged drifts left out"),
        "{}",
        r.stderr
    );
    let r = run_in(&demo, &["ack", "--list", "--env", "prod"]);
    assert!(
        r.stdout.contains(&format!("{web}  lapsed (changed)")),
        "{}",
        r.stdout
    );
    // withdrawn: counts again
    let api = episode_of("api");
    let r = run_in(&demo, &["ack", "--withdraw", &api]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("lapsed (withdrawn)"), "{}", r.stdout);
    let r = run_in(&demo, &["ack", "--withdraw", &api]);
    assert_one_line_error(&r, "no acknowledgement that holds");
    let r = run_in(&demo, &["events", "-o", "json"]);
    let kinds: Vec<String> = r
        .json()
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["kind"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| *k == "acknowledged").count(),
        8,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| *k == "unacknowledged").count(),
        1,
        "{kinds:?}"
    );
}
