//! Helm charts end to end (issue 14): the chart of `examples/helm` (a CRD, a subchart under
//! `charts/`, a hook, a test pod, per-environment value files) in a real Git repository,
//! applied per environment to the test cluster with `helm template | kubectl apply`, scanned by
//! the built `driftguard` binary.
//!
//! Right after the apply there is no drift; then `kubectl scale`, `set image`, `set env`,
//! `label` and a ConfigMap patch are each found with the right kind, direction and fields, a
//! values change committed and not applied is reverse drift naming its commit, and the hook
//! and the test pod never appear (the scan's notes say they were skipped). Three more
//! environments cannot be rendered (no helm binary, a broken template, a dependency that is
//! not vendored): each is a clear error of its own, and the scan of the others completes.
//!
//! Needs `scripts/test-services.sh up` (the cluster, and helm from `scripts/helm/install.sh`):
//! a missing one fails the test.

mod util;

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;
use util::e2e::{kubectl, DeleteOnDrop, Services};
use util::{copy_dir, repo_root, run_env, write, Run};
use util::{git_as as git, head};

/// `helm template shop charts/shop -n NS --include-crds -f envs/ENV/values.yaml | kubectl
/// apply -n NS -f -`: everything the chart renders, the hook and the test pod included.
fn apply(s: &Services, helm: &Path, repo: &Path, env: &str, ns: &str) {
    let values = format!("envs/{env}/values.yaml");
    let rendered = Command::new(helm)
        .args(["template", "shop", "charts/shop", "--namespace", ns])
        .args(["--include-crds", "--values", &values])
        .current_dir(repo)
        .output()
        .expect("helm runs");
    assert!(
        rendered.status.success(),
        "helm template: {}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    let text = String::from_utf8_lossy(&rendered.stdout);
    assert!(text.contains("helm.sh/hook"), "the hooks are applied too");
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

type DriftRow = (String, String, String, String, String, String);

/// (environment, kind, namespace/name, drift, direction, fields) of every open drift.
fn drift_set(v: &Value) -> BTreeSet<DriftRow> {
    let mut out = BTreeSet::new();
    for env in v["environments"].as_array().expect("environments") {
        for d in env["drifts"].as_array().expect("drifts") {
            let id = &d["id"];
            let fields: Vec<&str> = d["fields"]
                .as_array()
                .expect("fields")
                .iter()
                .map(|f| f["path"].as_str().expect("path"))
                .collect();
            out.insert((
                env["environment"].as_str().expect("env").to_owned(),
                id["kind"].as_str().expect("kind").to_owned(),
                format!(
                    "{}/{}",
                    id["namespace"].as_str().unwrap_or(""),
                    id["name"].as_str().expect("name")
                ),
                d["kind"].as_str().expect("drift kind").to_owned(),
                d["direction"].as_str().expect("direction").to_owned(),
                fields.join(","),
            ));
        }
    }
    out
}

fn env_result<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["environments"]
        .as_array()
        .expect("environments")
        .iter()
        .find(|e| e["environment"] == name)
        .unwrap_or_else(|| panic!("no result for {name}: {v}"))
}

fn scan(dir: &Path, envs: &[&str]) -> Run {
    let mut args = vec!["scan", "--config", "driftguard.yaml", "-o", "json"];
    for e in envs {
        args.push("--env");
        args.push(e);
    }
    run_env(dir, &args, &[("DRIFTGUARD_SECRET_KEY", "helm-e2e-key")])
}

#[test]
fn helm_charts_end_to_end_on_the_test_cluster() {
    let s = util::e2e::services();
    let helm = driftguard_test_support::helm();
    let tmp = tempfile::tempdir().expect("temp dir");
    let repo = tmp.path().join("repo");
    copy_dir(&repo_root().join("examples/helm"), &repo);
    // two charts that cannot be rendered, beside the good one
    copy_dir(&repo.join("charts/shop"), &repo.join("charts/broken"));
    write(
        &repo.join("charts/broken/templates/broken.yaml"),
        "kind: ConfigMap\nname: {{ .Values.theme | nosuchfunction }}\n",
    );
    copy_dir(&repo.join("charts/shop"), &repo.join("charts/nodeps"));
    std::fs::remove_dir_all(repo.join("charts/nodeps/charts")).expect("rm");
    git(&repo, &["init", "-q", "-b", "main"], "Alice Dev");
    git(&repo, &["add", "-A"], "Alice Dev");
    git(
        &repo,
        &["commit", "-q", "-m", "the shop chart"],
        "Alice Dev",
    );

    let run = std::process::id();
    let staging = format!("helm-e2e-staging-{run}");
    let prod = format!("helm-e2e-prod-{run}");
    let _cleanup =
        DeleteOnDrop::namespaces(&s, &[&staging, &prod]).with_crd("widgets.shop.example.com");
    for ns in [&staging, &prod] {
        kubectl(&s, &["create", "namespace", ns]);
    }
    apply(&s, &helm, &repo, "staging", &staging);
    apply(&s, &helm, &repo, "prod", &prod);

    let env = |name: &str, path: &str, ns: &str, values: &str, binary: Option<&str>| {
        format!(
            "  - name: {name}\n    git:\n      url: ./repo\n      path: {path}\n    helm:\n      releaseName: shop\n      namespace: {ns}\n      valueFiles: [../../envs/{values}/values.yaml]\n{}    namespaces: [{ns}]\n    live:\n      kubeconfig: {}\n",
            binary.map(|b| format!("      binary: {b}\n")).unwrap_or_default(),
            s.kubeconfig
        )
    };
    let config = format!(
        "helmBin: {}\nenvironments:\n{}{}{}{}{}",
        helm.display(),
        env("staging", "charts/shop", &staging, "staging", None),
        env("prod", "charts/shop", &prod, "prod", None),
        env(
            "nohelm",
            "charts/shop",
            &prod,
            "prod",
            Some("helm-is-not-installed-here")
        ),
        env("broken", "charts/broken", &prod, "prod", None),
        env("nodeps", "charts/nodeps", &prod, "prod", None),
    );
    write(&tmp.path().join("driftguard.yaml"), &config);
    let validate = run_env(tmp.path(), &["config", "validate"], &[]);
    assert_eq!(validate.code, 0, "{}{}", validate.stdout, validate.stderr);

    // 1. right after the apply: no drift, and the hooks never appear
    let first = scan(tmp.path(), &["staging", "prod"]);
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    let v = first.json();
    assert_eq!(drift_set(&v), BTreeSet::new(), "{v:#}");
    for name in ["staging", "prod"] {
        let r = env_result(&v, name);
        assert_eq!(
            r["summary"]["counts"]["tracked"], 5,
            "the CRD, a ConfigMap and three Deployments (one of the subchart): {r:#}"
        );
        assert_eq!(r["summary"]["counts"]["in_sync"], 5, "{r:#}");
        let notes: Vec<&str> = r["notes"]
            .as_array()
            .expect("notes")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(
            notes.contains(&"Helm chart charts/shop: 2 hooks skipped (hooks are not desired state): Pod shop-test-connection (test), Job shop-migrate (pre-install,pre-upgrade)"),
            "{notes:?}"
        );
        assert!(!v.to_string().contains("shop-migrate\",\"namespace"));
    }
    let live_hooks = kubectl(&s, &["get", "job,pod", "-n", &prod, "-o", "name"]);
    assert!(
        live_hooks.contains("job.batch/shop-migrate")
            && live_hooks.contains("pod/shop-test-connection"),
        "the hook and the test pod are in the cluster: {live_hooks}"
    );

    // 2. hand changes, and a values change committed but not applied
    kubectl(
        &s,
        &["scale", "deployment/shop-web", "--replicas=5", "-n", &prod],
    );
    kubectl(
        &s,
        &[
            "set",
            "image",
            "deployment/shop-worker",
            "worker=busybox:1.34",
            "-n",
            &prod,
        ],
    );
    kubectl(
        &s,
        &[
            "set",
            "env",
            "deployment/shop-cache",
            "FEATURE_X=on",
            "-n",
            &prod,
        ],
    );
    kubectl(
        &s,
        &["label", "deployment/shop-web", "team=ops", "-n", &staging],
    );
    kubectl(
        &s,
        &[
            "patch",
            "configmap/shop-config",
            "-n",
            &staging,
            "--type",
            "merge",
            "-p",
            r#"{"data":{"THEME":"hacked"}}"#,
        ],
    );
    let prod_values = repo.join("envs/prod/values.yaml");
    let text = std::fs::read_to_string(&prod_values).expect("read");
    std::fs::write(&prod_values, text.replace("theme: dark", "theme: solar")).expect("write");
    git(
        &repo,
        &["commit", "-q", "-a", "-m", "prod: the solar theme"],
        "Bob Sre",
    );
    let values_commit = head(&repo);

    let second = scan(tmp.path(), &["staging", "prod"]);
    assert_eq!(
        second.code, 2,
        "drift found: {}\n{}",
        second.stdout, second.stderr
    );
    let v = second.json();
    let row = |env: &str, kind: &str, ns: &str, name: &str, direction: &str, fields: &str| {
        (
            env.to_owned(),
            kind.to_owned(),
            format!("{ns}/{name}"),
            "modified".to_owned(),
            direction.to_owned(),
            fields.to_owned(),
        )
    };
    let expected: BTreeSet<DriftRow> = [
        row(
            "prod",
            "Deployment",
            &prod,
            "shop-web",
            "forward",
            "spec.replicas",
        ),
        row(
            "prod",
            "Deployment",
            &prod,
            "shop-worker",
            "forward",
            "spec.template.spec.containers[worker].image",
        ),
        row(
            "prod",
            "Deployment",
            &prod,
            "shop-cache",
            "forward",
            "spec.template.spec.containers[cache].env[FEATURE_X]",
        ),
        row(
            "prod",
            "ConfigMap",
            &prod,
            "shop-config",
            "reverse",
            "data.THEME",
        ),
        row(
            "staging",
            "Deployment",
            &staging,
            "shop-web",
            "forward",
            "metadata.labels.team",
        ),
        row(
            "staging",
            "ConfigMap",
            &staging,
            "shop-config",
            "forward",
            "data.THEME",
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(drift_set(&v), expected, "{v:#}");
    // the reverse drift names the values commit; its provenance is the chart's template
    let reverse = env_result(&v, "prod")["drifts"]
        .as_array()
        .expect("drifts")
        .iter()
        .find(|d| d["direction"] == "reverse")
        .expect("the reverse drift");
    assert_eq!(
        reverse["attribution"]["commit"]["id"],
        values_commit.as_str()
    );
    assert_eq!(reverse["attribution"]["commit"]["author"], "Bob Sre");
    assert_eq!(
        reverse["attribution"]["commit"]["message"],
        "prod: the solar theme"
    );
    assert_eq!(reverse["fields"][0]["desired"], "solar");
    assert_eq!(reverse["fields"][0]["live"], "dark");
    let p = &reverse["provenance"];
    assert_eq!(p["file"], "charts/shop/templates/config.yaml");
    assert_eq!(p["rendered"]["renderer"], "helm");
    assert_eq!(p["rendered"]["values"][0], "envs/prod/values.yaml");
    assert_eq!(p["rendered"]["inputs_commit"], values_commit.as_str());
    assert!(
        !v.to_string().contains("shop-migrate\",\"namespace")
            && !v.to_string().contains("\"name\":\"shop-test-connection\""),
        "hooks never appear"
    );

    // 3. every environment: the three that cannot be rendered fail, each with its reason
    let all = scan(tmp.path(), &[]);
    assert_eq!(all.code, 1, "{}\n{}", all.stdout, all.stderr);
    let v = all.json();
    assert_eq!(drift_set(&v), expected, "the others complete: {v:#}");
    let failed: Vec<&str> = v["failed"]
        .as_array()
        .expect("failed")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(failed.len(), 3, "{failed:?}");
    let reason = |env: &str| {
        let prefix = format!("environment {env}: cannot read the desired state (git ");
        failed
            .iter()
            .find(|f| f.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no failure of {env}: {failed:?}"))
            .split_once("): rendering failed: ")
            .map(|(_, r)| r.to_owned())
            .unwrap_or_default()
    };
    assert_eq!(
        reason("nohelm"),
        "the helm binary helm-is-not-installed-here was not found (set helm.binary or helmBin)"
    );
    assert!(
        reason("broken").starts_with(
            "helm template shop charts/broken failed (exit status: 1): Error: parse error at (shop/templates/broken.yaml:2): function \"nosuchfunction\" not defined"
        ),
        "{}",
        reason("broken")
    );
    assert_eq!(
        reason("nodeps"),
        "chart charts/nodeps needs a dependency not vendored under charts/ (cache): DriftGuard does not download dependencies; run `helm dependency build` and commit charts/"
    );
    assert!(
        all.stderr
            .contains("error: environment nodeps: cannot read the desired state"),
        "{}",
        all.stderr
    );
}
