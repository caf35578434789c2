//! Acceptance suite (issue 8): the whole system against the kube-apiserver test cluster, as a
//! new user would run it, side by side with `kubectl diff`.
//!
//! The scenario is `examples/acceptance/gitops`: a shop of ten Deployments, a StatefulSet,
//! Services, ConfigMaps, Secrets, an Ingress, RBAC, an HPA and a CustomResourceDefinition with
//! objects of it, in three environments (`envs/dev`, `envs/staging`, `envs/prod`), each applied
//! to its own namespaces (`staging` with `kubectl apply --server-side`). Then the hand changes
//! operators make (see [`changes`]), Git commits that are not applied, a conflict, a revert and
//! an adoption. After each phase `driftguard scan` must report exactly the expected drifts
//! (kind, direction, fields, severity, who, and the risk findings of the judged changes) and
//! nothing else; `kubectl diff` runs on the same state in the same run; `driftguard serve`,
//! started before the changes, must announce each drift once to a local webhook receiver and
//! count it in `/metrics`.
//!
//! The report (a Markdown table of what each tool caught, missed and misclassified, and how
//! long each took) is printed and written to `$CARGO_TARGET_TMPDIR/acceptance-report.md`, and to
//! `$DRIFTGUARD_ACCEPTANCE_REPORT` when set (`docs/acceptance-report.md` is one such run).
//!
//! Needs `scripts/test-services.sh up`: a missing cluster fails the test.

mod util;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use util::e2e::*;
use util::edit;
use util::git_as as git;

const TOKEN: &str = "acceptance-token-5d1e";
const HOOK_SECRET: &str = "acceptance-hook-secret-77f0";
/// The rotated Secret value: it must never appear in anything DriftGuard writes.
const CANARY: &str = "sk_live_ROTATED_canary_4b1d";
const ENVS: [&str; 3] = ["dev", "staging", "prod"];

fn namespaces(env: &str) -> [String; 2] {
    [format!("shop-{env}"), format!("shop-{env}-data")]
}

// ---------------------------------------------------------------- the scenario

/// What the scenario expects of one object.
#[derive(Clone, Debug)]
struct Expect {
    /// The hand change or Git change, as the report names it.
    scenario: &'static str,
    env: &'static str,
    kind: &'static str,
    namespace: String,
    name: &'static str,
    /// `None`: no drift (in sync).
    drift: Option<Verdict>,
    /// After phase 2: resolved, and how.
    resolved: Option<&'static str>,
}

#[derive(Clone, Debug)]
struct Verdict {
    drift: &'static str,
    direction: &'static str,
    severity: &'static str,
    fields: &'static [&'static str],
    /// Field managers that must be named (forward and conflict).
    managers: &'static [&'static str],
    /// The commit author that must be named (reverse and conflict).
    author: Option<&'static str>,
}

const fn v(
    drift: &'static str,
    direction: &'static str,
    severity: &'static str,
    fields: &'static [&'static str],
    managers: &'static [&'static str],
    author: Option<&'static str>,
) -> Option<Verdict> {
    Some(Verdict {
        drift,
        direction,
        severity,
        fields,
        managers,
        author,
    })
}

/// The scenario's rows, in the order of the report.
#[rustfmt::skip]
fn expectations() -> Vec<Expect> {
    let e = |scenario, env, kind, name, drift, resolved| Expect {
        scenario, env, kind, namespace: format!("shop-{env}"), name, drift, resolved,
    };
    vec![
        e("scale (`kubectl scale`)", "prod", "Deployment", "api",
          v("modified", "forward", "medium", &["spec.replicas"], &[], None), None),
        e("image hotfix (`kubectl set image`)", "prod", "Deployment", "checkout",
          v("modified", "forward", "high", &["spec.template.spec.containers[checkout].image"], &["kubectl-set"], None), None),
        e("env var added (`kubectl set env`)", "prod", "Deployment", "payments",
          v("modified", "forward", "medium", &["spec.template.spec.containers[payments].env[FEATURE_3DS]"], &["kubectl-set"], None), None),
        e("ConfigMap patched (`kubectl patch`)", "prod", "ConfigMap", "web-config",
          v("modified", "forward", "medium", &["data.THEME"], &["kubectl-patch"], None), None),
        e("Secret rotated by hand", "prod", "Secret", "api-secrets",
          v("modified", "forward", "high", &["data.STRIPE_API_KEY"], &["kubectl-patch"], None), None),
        e("label added (`kubectl label`)", "prod", "Deployment", "catalog",
          v("modified", "forward", "low", &["metadata.labels.team"], &["kubectl-label"], None), None),
        e("object deleted (`kubectl delete svc`)", "prod", "Service", "search",
          v("missing", "forward", "medium", &[], &[], None), None),
        e("object created by hand with the tracking label", "prod", "ConfigMap", "debug-dump",
          v("orphan", "forward", "medium", &[], &[], None), None),
        e("Git commit not applied", "prod", "Deployment", "notifications",
          v("modified", "reverse", "high", &["spec.template.spec.containers[notifications].image"], &[], Some("Alice Dev")), None),
        e("Git commit and live change to one object", "prod", "Deployment", "auth",
          v("modified", "conflict", "high", &["spec.replicas", "spec.template.spec.containers[auth].image"], &["kubectl-set"], Some("Bob Sre")), None),
        e("custom resource edited (`kubectl patch featureflag`)", "prod", "FeatureFlag", "checkout-v2",
          v("modified", "forward", "medium", &["spec.rollout"], &["kubectl-patch"], None), None),
        e("RBAC rule widened by hand", "prod", "Role", "config-reader",
          v("modified", "forward", "high", &["rules"], &["kubectl-patch"], None), None),
        e("HPA changes replicas (controller)", "prod", "Deployment", "web", None, None),
        e("scaled to zero, later reverted by hand", "prod", "Deployment", "cart",
          v("modified", "forward", "high", &["spec.replicas"], &[], None), Some("reverted")),
        e("live change later adopted into Git", "prod", "ConfigMap", "api-config",
          v("modified", "forward", "medium", &["data.RATE_LIMIT"], &["kubectl-patch"], None), Some("adopted")),
        e("image hotfix on a server-side-applied env", "staging", "Deployment", "search",
          v("modified", "forward", "high", &["spec.template.spec.containers[search].image"], &["kubectl-set"], None), None),
        e("object deleted on a server-side-applied env", "staging", "ConfigMap", "web-config",
          v("missing", "forward", "medium", &[], &[], None), None),
        e("HPA changes replicas, server-side-applied env", "staging", "Deployment", "web", None, None),
        e("untouched environment", "dev", "Deployment", "web", None, None),
    ]
}

/// Phase 1: the hand changes (kubectl) and the Git commits that are not applied.
fn changes(s: &Services, repo: &Path) {
    let p = ["-n", "shop-prod"];
    let k = |args: &[&str]| {
        let mut a = args.to_vec();
        a.extend(p);
        kubectl(s, &a)
    };
    k(&["scale", "deploy/api", "--replicas=5"]);
    k(&[
        "set",
        "image",
        "deploy/checkout",
        "checkout=registry.example.com/acme/checkout:1.4.3-hotfix",
    ]);
    k(&["set", "env", "deploy/payments", "FEATURE_3DS=enabled"]);
    k(&[
        "patch",
        "configmap",
        "web-config",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"THEME":"winter"}}"#,
    ]);
    let rotated = format!(r#"{{"data":{{"STRIPE_API_KEY":"{}"}}}}"#, b64(CANARY));
    k(&[
        "patch",
        "secret",
        "api-secrets",
        "--type",
        "merge",
        "-p",
        &rotated,
    ]);
    k(&["label", "deploy/catalog", "team=search-squad"]);
    k(&["delete", "service", "search"]);
    k(&["create", "configmap", "debug-dump", "--from-literal=dump=1"]);
    k(&[
        "label",
        "configmap",
        "debug-dump",
        "driftguard.io/tracked=true",
    ]);
    k(&["scale", "deploy/cart", "--replicas=0"]);
    k(&[
        "patch",
        "configmap",
        "api-config",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"RATE_LIMIT":"500"}}"#,
    ]);
    k(&[
        "set",
        "image",
        "deploy/auth",
        "auth=registry.example.com/acme/auth:1.4.2-debug",
    ]);
    k(&[
        "patch",
        "featureflag",
        "checkout-v2",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"rollout":50}}"#,
    ]);
    let widen = r#"[{"op":"add","path":"/rules/-","value":{"apiGroups":[""],"resources":["secrets"],"verbs":["get"]}}]"#;
    k(&[
        "patch",
        "role",
        "config-reader",
        "--type",
        "json",
        "-p",
        widen,
    ]);
    kubectl(
        s,
        &[
            "set",
            "image",
            "deploy/search",
            "search=registry.example.com/acme/search:1.4.3",
            "-n",
            "shop-staging",
        ],
    );
    kubectl(
        s,
        &["delete", "configmap", "web-config", "-n", "shop-staging"],
    );
    // Git moves on without anyone applying it
    edit(
        &repo.join("envs/prod/apps/notifications.yaml"),
        "acme/notifications:1.4.2",
        "acme/notifications:1.5.0",
    );
    commit(repo, "Alice Dev", "notifications: release 1.5.0");
    edit(
        &repo.join("envs/prod/apps/auth.yaml"),
        "  replicas: 2",
        "  replicas: 3",
    );
    commit(repo, "Bob Sre", "auth: three replicas for the sale");
}

/// Phase 2: one change reverted by hand, one adopted into Git.
fn resolutions(s: &Services, repo: &Path) {
    kubectl(
        s,
        &["scale", "deploy/cart", "--replicas=2", "-n", "shop-prod"],
    );
    edit(
        &repo.join("envs/prod/config.yaml"),
        r#"RATE_LIMIT: "200""#,
        r#"RATE_LIMIT: "500""#,
    );
    commit(
        repo,
        "Carol Lead",
        "api: raise the rate limit to 500 (adopts the hotfix)",
    );
}

// ---------------------------------------------------------------- small helpers

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// Whether `text` holds the rotated Secret value, plain or base64.
fn holds_canary(text: &str) -> bool {
    text.contains(CANARY) || text.contains(&b64(CANARY))
}

fn commit(repo: &Path, author: &str, message: &str) {
    git(repo, &["commit", "-q", "-a", "-m", message], author);
}

/// Removes what an earlier run left (namespaces, the CRD) and waits until it is gone.
fn clean_cluster(s: &Services) {
    let mut args = vec![
        "delete",
        "namespace",
        "--ignore-not-found",
        "--wait=true",
        "--timeout=120s",
    ];
    let names: Vec<String> = ENVS.iter().flat_map(|e| namespaces(e)).collect();
    args.extend(names.iter().map(String::as_str));
    let (code, _, err) = kubectl_status(s, &args, &[]);
    assert_eq!(code, 0, "cannot delete the scenario's namespaces: {err}");
    let (code, _, err) = kubectl_status(
        s,
        &[
            "delete",
            "crd",
            "featureflags.acme.io",
            "--ignore-not-found",
            "--wait=true",
            "--timeout=60s",
        ],
        &[],
    );
    assert_eq!(code, 0, "cannot delete the scenario's CRD: {err}");
}

/// Deletes the scenario's namespaces and CRD when the test ends (without waiting).
struct Cleanup<'a>(&'a Services);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if std::env::var_os("DRIFTGUARD_ACCEPTANCE_KEEP").is_some() {
            return;
        }
        let names: Vec<String> = ENVS.iter().flat_map(|e| namespaces(e)).collect();
        let mut args = vec!["delete", "namespace", "--ignore-not-found", "--wait=false"];
        args.extend(names.iter().map(String::as_str));
        let _ = kubectl_status(self.0, &args, &[]);
        let _ = kubectl_status(
            self.0,
            &[
                "delete",
                "crd",
                "featureflags.acme.io",
                "--ignore-not-found",
                "--wait=false",
            ],
            &[],
        );
    }
}

/// Applies each environment as its team would: namespaces and the CRD first, then the rest.
fn apply_all(s: &Services, repo: &Path) {
    for env in ENVS {
        let dir = repo.join("envs").join(env);
        let d = |f: &str| dir.join(f).display().to_string();
        let mut base = vec!["apply"];
        if env == "staging" {
            base.push("--server-side");
        }
        let mut first = base.clone();
        let (ns, crd) = (d("namespaces.yaml"), d("crd-featureflags.yaml"));
        first.extend(["-f", &ns, "-f", &crd]);
        kubectl(s, &first);
        kubectl(
            s,
            &[
                "wait",
                "--for",
                "condition=established",
                "--timeout=60s",
                "crd/featureflags.acme.io",
            ],
        );
        let all = dir.display().to_string();
        let mut rest = base.clone();
        rest.extend(["-R", "-f", &all]);
        kubectl(s, &rest);
    }
}

/// Waits until the HPA controller has set `web` to its minimum where that is above Git's.
fn wait_for_hpa(s: &Services) {
    let deadline = Instant::now() + Duration::from_secs(90);
    for (env, want) in [("staging", "3"), ("prod", "3")] {
        loop {
            let (_, out, _) = kubectl_status(
                s,
                &[
                    "get",
                    "deploy/web",
                    "-n",
                    &format!("shop-{env}"),
                    "-o",
                    "jsonpath={.spec.replicas}",
                ],
                &[],
            );
            if out.trim() == want {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the HPA controller did not scale shop-{env}/web to {want} (spec.replicas {out:?})"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

// ---------------------------------------------------------------- DriftGuard

/// One `driftguard scan -o json` of every environment, and the same as a table.
struct Scan {
    json: Value,
    table: String,
    took: Duration,
    raw: String,
}

fn scan(dir: &Path) -> Scan {
    let t = Instant::now();
    let r = util::run_in(dir, &["scan", "--store", "cli.db", "-o", "json"]);
    let took = t.elapsed();
    assert!(
        r.code == 0 || r.code == 2,
        "scan failed ({}):\n{}\n{}",
        r.code,
        r.stdout,
        r.stderr
    );
    let table = util::run_in(
        dir,
        &["scan", "--store", "cli-table.db", "--color", "never"],
    );
    Scan {
        json: r.json(),
        table: table.stdout,
        took,
        raw: format!("{}{}", r.stdout, r.stderr),
    }
}

/// `(environment, kind, namespace, name)`.
type Key = (String, String, String, String);

/// A webhook event: `(event, object, episode)`.
type HookEvent = (String, Key, String);

fn key_of(id: &Value) -> Key {
    let s = |k: &str| id[k].as_str().unwrap_or_default().to_owned();
    (s("environment"), s("kind"), s("namespace"), s("name"))
}

fn expect_key(e: &Expect) -> Key {
    (
        e.env.into(),
        e.kind.into(),
        e.namespace.clone(),
        e.name.into(),
    )
}

fn by_key(scan: &Scan, list: &str) -> BTreeMap<Key, Value> {
    let mut out = BTreeMap::new();
    for env in scan.json["environments"].as_array().expect("environments") {
        assert!(
            env["errors"].as_array().is_none_or(Vec::is_empty),
            "scan errors: {}",
            env["errors"]
        );
        for d in env[list].as_array().cloned().unwrap_or_default() {
            out.insert(key_of(&d["id"]), d);
        }
    }
    out
}

/// Checks one reported drift against the expectation; returns how the report describes it.
fn check_drift(e: &Expect, want: &Verdict, got: &Value) -> String {
    let ctx = format!("{} ({}/{}/{}): {got:#}", e.scenario, e.env, e.kind, e.name);
    assert_eq!(got["kind"], want.drift, "drift kind of {ctx}");
    assert_eq!(got["direction"], want.direction, "direction of {ctx}");
    assert_eq!(got["severity"], want.severity, "severity of {ctx}");
    let fields: BTreeSet<&str> = got["fields"]
        .as_array()
        .map(|f| f.iter().filter_map(|x| x["path"].as_str()).collect())
        .unwrap_or_default();
    let wanted: BTreeSet<&str> = want.fields.iter().copied().collect();
    assert_eq!(fields, wanted, "fields of {ctx}");
    let managers: BTreeSet<&str> = got["attribution"]["owners"]
        .as_array()
        .map(|o| o.iter().filter_map(|x| x["manager"].as_str()).collect())
        .unwrap_or_default();
    for m in want.managers {
        assert!(managers.contains(m), "{m} not named for {ctx}");
    }
    // the judgement (issue 18): the risk findings some hand changes must get
    let findings: Vec<(&str, &str, &str)> = got["findings"]
        .as_array()
        .map(|f| {
            f.iter()
                .map(|x| {
                    let s = |k: &str| x[k].as_str().unwrap_or_default();
                    (s("rule"), s("category"), s("risk"))
                })
                .collect()
        })
        .unwrap_or_default();
    let judged = match e.scenario {
        "RBAC rule widened by hand" => Some(("rbac-widened", "security", "high")),
        "image hotfix (`kubectl set image`)" | "image hotfix on a server-side-applied env" => {
            Some(("image-not-in-git", "supply-chain", "medium"))
        }
        "label added (`kubectl label`)" => Some(("metadata-only", "cosmetic", "low")),
        "scaled to zero, later reverted by hand" => Some(("replicas-zero", "availability", "high")),
        "object deleted (`kubectl delete svc`)" => {
            Some(("service-missing", "availability", "medium"))
        }
        _ => None,
    };
    if let Some(f) = judged {
        assert!(findings.contains(&f), "finding {f:?} of {ctx}");
    }
    if e.scenario == "label added (`kubectl label`)" {
        assert!(
            findings.iter().all(|(_, _, risk)| *risk == "low"),
            "an added label is low: {ctx}"
        );
    }
    let author = got["attribution"]["commit"]["author"].as_str();
    if let Some(a) = want.author {
        assert_eq!(author, Some(a), "commit author of {ctx}");
    }
    // who, as the direction tells: the cluster's field managers for a live change, the commit
    // for a Git change, both for a conflict
    let mut who: Vec<String> = if want.direction == "reverse" {
        Vec::new()
    } else {
        managers.iter().map(|m| (*m).to_owned()).collect()
    };
    if want.direction != "forward" {
        if let Some(a) = author {
            let msg = got["attribution"]["commit"]["message"]
                .as_str()
                .unwrap_or_default();
            who.push(format!(
                "{a}: \"{}\"",
                msg.lines().next().unwrap_or_default()
            ));
        }
    }
    let fields = if fields.is_empty() {
        String::new()
    } else {
        format!(" `{}`", fields.into_iter().collect::<Vec<_>>().join("`, `"))
    };
    format!(
        "{} {} {}{}{}",
        want.drift,
        want.direction,
        want.severity,
        fields,
        if who.is_empty() {
            String::new()
        } else {
            format!(", by {}", who.join(", "))
        }
    )
}

// ---------------------------------------------------------------- kubectl diff

/// What `kubectl diff` showed for one environment.
#[derive(Default)]
struct KubectlDiff {
    took: Duration,
    exit: i32,
    error: String,
    /// Objects it printed a diff for: `(kind, namespace, name)` -> what differs.
    shown: BTreeMap<(String, String, String), Shown>,
    /// Whether its output holds the rotated Secret value (base64).
    leaks_secret: bool,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Shown {
    /// Not live: `kubectl diff` shows it as a creation.
    Create,
    /// Real field differences.
    Fields,
    /// Only server bookkeeping (managedFields, generation, resourceVersion) differs.
    Bookkeeping,
}

/// Runs `kubectl diff` on an environment's folder (staging: `--server-side --force-conflicts`,
/// as it was applied), capturing the LIVE and MERGED folders it compares.
fn kubectl_diff(s: &Services, repo: &Path, env: &str, work: &Path) -> KubectlDiff {
    let capture = work.join(format!("kdiff-{env}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&capture);
    std::fs::create_dir_all(&capture).expect("mkdir");
    let script = work.join("capture-diff.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\ncp -r \"$1\" \"$CAPTURE/live\"; cp -r \"$2\" \"$CAPTURE/merged\"\nexec diff -u -N -r \"$1\" \"$2\"\n",
    )
    .expect("write script");
    let _ = Command::new("chmod").arg("+x").arg(&script).status();
    let dir = repo.join("envs").join(env).display().to_string();
    let mut args = vec!["diff"];
    if env == "staging" {
        args.extend(["--server-side", "--force-conflicts"]);
    }
    args.extend(["-R", "-f", &dir]);
    let t = Instant::now();
    let (exit, out, err) = kubectl_status(
        s,
        &args,
        &[
            (
                "KUBECTL_EXTERNAL_DIFF",
                script.to_str().expect("utf-8 path"),
            ),
            ("CAPTURE", capture.to_str().expect("utf-8 path")),
        ],
    );
    let took = t.elapsed();
    assert!(
        exit == 0 || exit == 1,
        "kubectl diff {env} failed ({exit}): {err}"
    );
    let mut kd = KubectlDiff {
        took,
        exit,
        error: err
            .lines()
            .filter(|l| !l.starts_with('W'))
            .collect::<Vec<_>>()
            .join(" "),
        leaks_secret: holds_canary(&out),
        ..KubectlDiff::default()
    };
    let read = |p: &Path| -> Option<Value> {
        let text = std::fs::read_to_string(p).ok()?;
        serde_yaml::from_str(&text).ok()
    };
    let merged = capture.join("merged");
    for entry in std::fs::read_dir(&merged).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        // <group.>version.Kind.namespace.name
        let Some(m) = read(&entry.path()) else {
            continue;
        };
        let key = (
            m["kind"].as_str().unwrap_or_default().to_owned(),
            m["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            m["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
        let live = read(&capture.join("live").join(&name));
        let shown = match live {
            None | Some(Value::Null) => Shown::Create,
            Some(l) if l == m => continue,
            Some(l) if strip_bookkeeping(l.clone()) == strip_bookkeeping(m.clone()) => {
                Shown::Bookkeeping
            }
            Some(_) => Shown::Fields,
        };
        kd.shown.insert(key, shown);
    }
    kd
}

fn strip_bookkeeping(mut v: Value) -> Value {
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in ["managedFields", "generation", "resourceVersion"] {
            meta.remove(k);
        }
    }
    v
}

fn describe_kubectl(kd: &KubectlDiff, e: &Expect) -> String {
    let key = (e.kind.to_owned(), e.namespace.clone(), e.name.to_owned());
    let shown = kd.shown.get(&key).copied();
    match (&e.drift, shown) {
        (None, None) => "nothing (right)".into(),
        (None, Some(Shown::Bookkeeping)) => "**false drift**: a diff of managedFields only".into(),
        (None, Some(_)) => "**false drift**: shows a difference".into(),
        (Some(_), None) => "**missed**".into(),
        (Some(_), Some(Shown::Bookkeeping)) => "**missed** (a managedFields-only diff)".into(),
        (Some(w), Some(Shown::Create)) if w.drift == "missing" => {
            "shown as \"would create\" (no direction, no who)".into()
        }
        (Some(w), Some(Shown::Fields)) => {
            let mut s = "a diff (no direction, no who".to_owned();
            if w.direction == "reverse" || w.direction == "conflict" {
                s.push_str(", not told from a hand change");
            }
            if e.kind == "Secret" && kd.leaks_secret {
                s.push_str("; **prints the Secret value**");
            }
            s.push(')');
            s
        }
        (Some(_), Some(other)) => format!("{other:?}"),
    }
}

// ---------------------------------------------------------------- the server

fn start_server(dir: &Path, port: u16) -> Server {
    spawn_server(
        dir,
        &["--config", "serve.yaml", "--store", "serve.db"],
        &[("ACC_TOKENS", TOKEN), ("ACC_HOOK_SECRET", HOOK_SECRET)],
        port,
        dir.join("serve.log"),
        TOKEN,
    )
}

/// Webhook events as `(event, key, episode)`.
fn hook_events(hooks: &[Hook]) -> Vec<HookEvent> {
    hooks
        .iter()
        .flat_map(|h| h.body["events"].as_array().cloned().unwrap_or_default())
        .map(|e| {
            (
                e["event"].as_str().unwrap_or_default().to_owned(),
                key_of(&e["object"]),
                e["episode"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Sum of the `driftguard_drifts` series of an environment.
fn open_in_metrics(server: &Server, env: &str) -> f64 {
    server
        .drift_series(env)
        .iter()
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .fold(0.0, |a, b| a + b)
}

// ---------------------------------------------------------------- the test

#[test]
fn acceptance_scenario_against_the_cluster_side_by_side_with_kubectl_diff() {
    let s = services();
    let t_all = Instant::now();
    clean_cluster(&s);
    let _cleanup = Cleanup(&s);
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().to_path_buf();
    if std::env::var_os("DRIFTGUARD_ACCEPTANCE_KEEP").is_some() {
        eprintln!("keeping {}", tmp.keep().display());
    }
    let dir = dir.as_path();
    let repo = dir.join("gitops");
    util::copy_dir(&util::repo_root().join("examples/acceptance/gitops"), &repo);
    git(&repo, &["init", "-q", "-b", "main"], "Dana Ops");
    git(&repo, &["add", "."], "Dana Ops");
    git(
        &repo,
        &["commit", "-q", "-m", "shop: dev, staging and prod"],
        "Dana Ops",
    );

    // ---- apply the three environments; let the controllers settle
    apply_all(&s, &repo);
    wait_for_hpa(&s);

    let hook = webhook_receiver(HOOK_SECRET);
    let port = free_port();
    let mut config = String::from("environments:\n");
    for env in ENVS {
        let [a, b] = namespaces(env);
        writeln!(
            config,
            "  - name: {env}\n    git: {{url: gitops, ref: main, path: envs/{env}}}\n    live: {{kubeconfig: \"{}\"}}\n    namespaces: [{a}, {b}]",
            s.kubeconfig
        )
        .expect("write");
    }
    write!(
        config,
        r#"secretKey: {{file: secret.key}}
notifications:
  - type: webhook
    url: http://127.0.0.1:{}/driftguard
    secretEnv: ACC_HOOK_SECRET
    queue: {{groupWindow: 200ms, initialBackoff: 200ms}}
server:
  tokenEnv: ACC_TOKENS
  pollInterval: 1s
  fullScanInterval: 1h
  shutdownGrace: 2s
"#,
        hook.port
    )
    .expect("write");
    std::fs::write(dir.join("driftguard.yaml"), &config).expect("write config");
    // the server keeps its own clones: two processes fetching into one mirror would race
    std::fs::write(
        dir.join("serve.yaml"),
        format!("{config}gitCache: .driftguard/serve-git\n"),
    )
    .expect("write config");
    std::fs::write(dir.join("secret.key"), "acceptance-secret-key-8c2b19e0f4a7").expect("key");

    // ---- phase 0: freshly applied, controllers done: zero drift anywhere
    let base = scan(dir);
    let drifts = by_key(&base, "drifts");
    assert!(
        drifts.is_empty(),
        "false drift right after apply: {drifts:#?}\n{}",
        base.table
    );
    let tracked: u64 = base.json["environments"]
        .as_array()
        .expect("environments")
        .iter()
        .map(|e| e["summary"]["counts"]["tracked"].as_u64().unwrap_or(0))
        .sum();
    assert!(
        tracked >= 100,
        "the scenario tracks every object ({tracked})"
    );
    let kd_base: BTreeMap<&str, KubectlDiff> = ENVS
        .iter()
        .map(|e| (*e, kubectl_diff(&s, &repo, e, dir)))
        .collect();

    let mut server = start_server(dir, port);
    server.wait_ready(0.0, 3);
    assert!(server.drifts("status=all").is_empty(), "{}", server.log());

    // ---- phase 1: hand changes, Git commits not applied
    changes(&s, &repo);
    let changed_at = Instant::now();
    let expect = expectations();
    let one = scan(dir);
    let got = by_key(&one, "drifts");
    let mut row_dg: BTreeMap<Key, String> = BTreeMap::new();
    for e in &expect {
        let k = expect_key(e);
        match (&e.drift, got.get(&k)) {
            (Some(w), Some(d)) => {
                row_dg.insert(k, check_drift(e, w, d));
            }
            (Some(_), None) => panic!("{}: no drift reported for {k:?}\n{}", e.scenario, one.table),
            (None, Some(d)) => panic!("{}: false drift {d:#}", e.scenario),
            (None, None) => {
                row_dg.insert(k, "nothing (right)".into());
            }
        }
    }
    let expected_keys: BTreeSet<Key> = expect
        .iter()
        .filter(|e| e.drift.is_some())
        .map(expect_key)
        .collect();
    let extra: Vec<&Key> = got.keys().filter(|k| !expected_keys.contains(*k)).collect();
    assert!(
        extra.is_empty(),
        "drift nobody made: {extra:?}\n{}",
        one.table
    );
    assert!(!holds_canary(&one.raw), "a Secret value in the output");
    assert!(!holds_canary(&one.table));
    let kd_one: BTreeMap<&str, KubectlDiff> = ENVS
        .iter()
        .map(|e| (*e, kubectl_diff(&s, &repo, e, dir)))
        .collect();

    // the server announces each drift once
    let wait_hooks = |what: &str, since: Instant, want: &dyn Fn(&[HookEvent]) -> bool| {
        loop {
            let hooks = hook.all();
            if want(&hook_events(&hooks)) {
                // when the last of them arrived, after the last change was made
                let last = hooks.iter().map(|h| h.at).max().unwrap_or(since);
                return last.saturating_duration_since(since);
            }
            assert!(
                since.elapsed() < Duration::from_secs(90),
                "webhook: {what} not announced: {:#?}\n{}",
                hook_events(&hooks),
                server.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let detected = |ev: &[HookEvent]| -> BTreeSet<Key> {
        ev.iter()
            .filter(|e| e.0 == "detected")
            .map(|e| e.1.clone())
            .collect()
    };
    let t_hooks1 = wait_hooks("every drift", changed_at, &|ev| {
        expected_keys.is_subset(&detected(ev))
    });

    // ---- phase 2: a revert by hand, an adoption into Git
    resolutions(&s, &repo);
    let resolved_at = Instant::now();
    let two = scan(dir);
    let resolved = by_key(&two, "resolved");
    let still = by_key(&two, "drifts");
    let mut row_res: BTreeMap<Key, String> = BTreeMap::new();
    for e in &expect {
        let k = expect_key(e);
        match e.resolved {
            Some(how) => {
                let r = resolved
                    .get(&k)
                    .unwrap_or_else(|| panic!("{}: not resolved\n{}", e.scenario, two.table));
                assert_eq!(r["resolution"], how, "{}: {r:#}", e.scenario);
                assert!(!still.contains_key(&k), "{}: still open", e.scenario);
                row_res.insert(k, format!("resolved: {how}"));
            }
            None if e.drift.is_some() => {
                assert!(
                    still.contains_key(&k),
                    "{}: no longer open\n{}",
                    e.scenario,
                    two.table
                );
            }
            None => {}
        }
    }
    assert_eq!(
        still.len() + resolved.len(),
        expected_keys.len(),
        "phase 2 open {:?} resolved {:?}",
        still.keys(),
        resolved.keys()
    );
    let kd_two: BTreeMap<&str, KubectlDiff> = ENVS
        .iter()
        .map(|e| (*e, kubectl_diff(&s, &repo, e, dir)))
        .collect();
    let resolved_keys: BTreeSet<Key> = expect
        .iter()
        .filter(|e| e.resolved.is_some())
        .map(expect_key)
        .collect();
    let t_hooks2 = wait_hooks("the resolutions", resolved_at, &|ev| {
        let r: BTreeSet<Key> = ev
            .iter()
            .filter(|e| e.0 == "resolved")
            .map(|e| e.1.clone())
            .collect();
        resolved_keys.is_subset(&r)
    });
    // quiet period: nothing more may arrive
    std::thread::sleep(Duration::from_secs(3));
    let events = hook_events(&hook.all());
    assert!(
        hook.all().iter().all(|h| h.signature_ok),
        "a webhook without a valid signature"
    );
    let mut seen: BTreeMap<(String, Key), usize> = BTreeMap::new();
    for (ev, k, _) in &events {
        *seen.entry((ev.clone(), k.clone())).or_default() += 1;
    }
    for ((ev, k), n) in &seen {
        assert_eq!(*n, 1, "{ev} of {k:?} announced {n} times: {events:#?}");
        assert!(
            expected_keys.contains(k),
            "{ev} of {k:?}: not in the scenario"
        );
        if ev == "resolved" {
            assert!(resolved_keys.contains(k), "{k:?} announced resolved");
        }
    }
    let bodies: String = hook.all().iter().map(|h| h.body.to_string()).collect();
    assert!(!holds_canary(&bodies));
    let mut metrics_row = Vec::new();
    for env in ENVS {
        let want = still.keys().filter(|k| k.0 == env).count() as f64;
        let t = Instant::now();
        loop {
            let got = open_in_metrics(&server, env);
            if (got - want).abs() < 0.5 {
                metrics_row.push(format!("{env} {got}"));
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "/metrics: driftguard_drifts for {env} sums to {got}, want {want}:\n{:?}",
                server.drift_series(env)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let log = server.log();
    assert!(!holds_canary(&log), "a Secret value in the server log");
    drop(server);
    for db in ["cli.db", "serve.db"] {
        for f in std::fs::read_dir(dir).expect("dir").flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            if name.starts_with(db) {
                let bytes = std::fs::read(f.path()).expect("read store");
                let hay = String::from_utf8_lossy(&bytes);
                assert!(!holds_canary(&hay), "{name} holds the Secret value");
            }
        }
    }

    // ---- the report
    let server: Value =
        serde_json::from_str(&kubectl(&s, &["get", "--raw", "/version"])).expect("/version");
    let server = server["gitVersion"]
        .as_str()
        .expect("gitVersion")
        .trim_start_matches('v')
        .to_owned();
    let mut r = String::new();
    writeln!(
        r,
        "# Acceptance run: DriftGuard and `kubectl diff` side by side\n"
    )
    .expect("w");
    writeln!(
        r,
        "Scenario `examples/acceptance/gitops` on the kube-apiserver {server} test cluster (with \
         kube-controller-manager); {tracked} objects tracked in dev, staging and prod; staging \
         applied with `kubectl apply --server-side`, the others client-side. Produced by \
         `cargo test -p driftguard-cli --test acceptance` ({:.0} s in all).\n",
        t_all.elapsed().as_secs_f64()
    )
    .expect("w");
    writeln!(r, "| change | env | object | DriftGuard | `kubectl diff` |").expect("w");
    writeln!(r, "| --- | --- | --- | --- | --- |").expect("w");
    for e in &expect {
        let k = expect_key(e);
        let kd = &kd_one[e.env];
        let mut dg = row_dg.get(&k).cloned().unwrap_or_default();
        let mut kc = describe_kubectl(kd, e);
        if let Some(res) = row_res.get(&k) {
            dg.push_str(&format!("; then {res}"));
            let after = kd_two[e.env].shown.contains_key(&(
                e.kind.to_owned(),
                e.namespace.clone(),
                e.name.to_owned(),
            ));
            kc.push_str(if after {
                "; then still a diff"
            } else {
                "; then no diff, and no record that it happened or how it ended"
            });
        }
        writeln!(
            r,
            "| {} | {} | {} {}/{} | {dg} | {kc} |",
            e.scenario, e.env, e.kind, e.namespace, e.name
        )
        .expect("w");
    }
    writeln!(
        r,
        "\nRight after `kubectl apply` (controllers settled), before any hand change:\n"
    )
    .expect("w");
    writeln!(r, "| env | DriftGuard | `kubectl diff` |").expect("w");
    writeln!(r, "| --- | --- | --- |").expect("w");
    for env in ENVS {
        let kd = &kd_base[env];
        let listed: Vec<String> = kd
            .shown
            .iter()
            .map(|((k, ns, n), how)| {
                format!(
                    "{k} {}{n}{}",
                    if ns.is_empty() {
                        String::new()
                    } else {
                        format!("{ns}/")
                    },
                    if *how == Shown::Bookkeeping {
                        " (managedFields only)"
                    } else {
                        ""
                    }
                )
            })
            .collect();
        writeln!(
            r,
            "| {env} | no drift | {} |",
            if listed.is_empty() {
                "no diff".to_owned()
            } else {
                format!("{} false: {}", listed.len(), listed.join(", "))
            }
        )
        .expect("w");
    }
    writeln!(
        r,
        "\nOther objects `kubectl diff` printed after the hand changes (not changed by anyone):\n"
    )
    .expect("w");
    let scenario_objs: BTreeSet<(String, String, String)> = expect
        .iter()
        .map(|e| (e.kind.to_owned(), e.namespace.clone(), e.name.to_owned()))
        .collect();
    for env in ENVS {
        let others: Vec<String> = kd_one[env]
            .shown
            .iter()
            .filter(|(k, _)| !scenario_objs.contains(*k))
            .map(|((k, ns, n), how)| format!("{k} {ns}/{n} ({how:?})"))
            .collect();
        writeln!(
            r,
            "- {env}: {}",
            if others.is_empty() {
                "none".to_owned()
            } else {
                others.join(", ")
            }
        )
        .expect("w");
    }
    writeln!(r, "\nTime (wall clock, this machine, same run):\n").expect("w");
    writeln!(
        r,
        "| step | DriftGuard `scan` (3 envs, one process) | `kubectl diff` (sum of 3 envs) |"
    )
    .expect("w");
    writeln!(r, "| --- | --- | --- |").expect("w");
    for (step, dg, kd) in [
        ("after apply", &base, &kd_base),
        ("after the hand changes", &one, &kd_one),
        ("after revert and adoption", &two, &kd_two),
    ] {
        let k: f64 = kd.values().map(|x| x.took.as_secs_f64()).sum();
        let exits: Vec<String> = ENVS.iter().map(|e| format!("{e} {}", kd[e].exit)).collect();
        writeln!(
            r,
            "| {step} | {:.2} s | {k:.2} s (exit codes {}) |",
            dg.took.as_secs_f64(),
            exits.join(", ")
        )
        .expect("w");
    }
    writeln!(
        r,
        "\n`driftguard serve` (started after the apply, Git polled every second) announced every \
         drift to the webhook receiver once ({} detected, {} resolved events; the last detection arrived \
         {:.1} s after the last change, the last resolution {:.1} s after the revert and adoption), and `/metrics` counted the open \
         drifts per environment ({}).",
        events.iter().filter(|e| e.0 == "detected").count(),
        events.iter().filter(|e| e.0 == "resolved").count(),
        t_hooks1.as_secs_f64(),
        t_hooks2.as_secs_f64(),
        metrics_row.join(", ")
    )
    .expect("w");
    let errs: Vec<String> = kd_one
        .iter()
        .filter(|(_, k)| !k.error.is_empty())
        .map(|(e, k)| format!("{e}: {}", k.error))
        .collect();
    if !errs.is_empty() {
        writeln!(r, "\n`kubectl diff` stderr: {}", errs.join("; ")).expect("w");
    }
    writeln!(
        r,
        "\n## `driftguard scan` after the hand changes\n\n```text\n{}```",
        one.table
    )
    .expect("w");
    writeln!(
        r,
        "\n## `driftguard scan` after the revert and the adoption\n\n```text\n{}```",
        two.table
    )
    .expect("w");
    eprintln!("{r}");
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("acceptance-report.md");
    std::fs::write(&out, &r).expect("write report");
    if let Ok(p) = std::env::var("DRIFTGUARD_ACCEPTANCE_REPORT") {
        std::fs::write(p, &r).expect("write report");
    }
}
