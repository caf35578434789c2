//! Server-side diff (issue 28) on the test cluster: an admission policy that rewrites a field
//! Git sets (`examples/server-side-diff/mirror-policy.yaml` moves images to a registry mirror)
//! is drift that never goes away for the default comparison, and none with `serverSideDiff`,
//! which compares with the API server's answer to a server-side apply dry run of Git's
//! objects; a change by hand afterwards is found by both, with the field and direction. The
//! dry runs change nothing (the object's resource version and field managers stay).
//!
//! Needs `scripts/test-services.sh up` (the cluster, Kubernetes 1.36 or newer for
//! MutatingAdmissionPolicy v1): a missing one fails the test.

mod util;

use std::path::Path;

use serde_json::Value;
use util::e2e::{kubectl, kubectl_status, DeleteOnDrop, Services};
use util::{git_as as git, repo_root, run_env, write};

const NS: &str = "dg-ssd";

const MANIFESTS: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: dg-ssd
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: nginx:1.27
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
  namespace: dg-ssd
data:
  mode: normal
"#;

/// Removes the cluster-wide policy however the test ends.
struct Policy<'a>(&'a Services, String);

impl Drop for Policy<'_> {
    fn drop(&mut self) {
        let _ = kubectl_status(
            self.0,
            &["delete", "-f", &self.1, "--ignore-not-found"],
            &[],
        );
    }
}

/// One drift: `(environment, kind/name, direction, [(path, git, live)])`.
type Found = (String, String, String, Vec<(String, Value, Value)>);

/// The drifts of every environment.
fn scan(repo: &Path) -> Vec<Found> {
    let out = run_env(
        repo,
        &["scan", "--config", "driftguard.yaml", "-o", "json"],
        &[("DRIFTGUARD_SECRET_KEY", "ssd-key")],
    );
    assert!(
        out.code == 0 || out.code == 2,
        "scan failed ({}): {}",
        out.code,
        out.stderr
    );
    let v = out.json();
    let mut found = Vec::new();
    for env in v["environments"].as_array().expect("environments") {
        let errors = env["errors"].as_array().cloned().unwrap_or_default();
        assert!(errors.is_empty(), "{}: {errors:?}", env["environment"]);
        for d in env["drifts"].as_array().expect("drifts") {
            let fields = d["fields"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|f| {
                    (
                        f["path"].as_str().unwrap_or_default().to_owned(),
                        f["desired"].clone(),
                        f["live"].clone(),
                    )
                })
                .collect();
            found.push((
                env["environment"].as_str().unwrap_or_default().to_owned(),
                format!(
                    "{}/{}",
                    d["id"]["kind"].as_str().unwrap_or_default(),
                    d["id"]["name"].as_str().unwrap_or_default()
                ),
                d["direction"].as_str().unwrap_or_default().to_owned(),
                fields,
            ));
        }
    }
    found
}

#[test]
fn an_admission_policy_is_not_drift_with_server_side_diff() {
    let s = util::e2e::services();
    let _ns = DeleteOnDrop::namespaces(&s, &[NS]);
    let policy = repo_root().join("examples/server-side-diff/mirror-policy.yaml");
    let policy = policy.display().to_string();
    let _policy = Policy(&s, policy.clone());
    kubectl(&s, &["apply", "-f", &policy]);
    kubectl(&s, &["create", "namespace", NS]);
    kubectl(&s, &["label", "namespace", NS, "driftguard-test/mirror=on"]);

    let tmp = tempfile::tempdir().expect("temp dir");
    let repo = tmp.path().join("gitops");
    write(&repo.join("apps/web.yaml"), MANIFESTS);
    git(&repo, &["init", "-q", "-b", "main"], "Ann");
    git(&repo, &["add", "."], "Ann");
    git(&repo, &["commit", "-q", "-m", "web"], "Ann");
    let live = format!("live: {{kubeconfig: \"{}\"}}", s.kubeconfig);
    let repo_url = repo.display();
    write(
        &repo.join("driftguard.yaml"),
        &format!(
            r#"environments:
  - name: plain
    git: {{url: "{repo_url}", path: apps}}
    {live}
  - name: ssd
    git: {{url: "{repo_url}", path: apps}}
    serverSideDiff: true
    {live}
store:
  sqlite: .driftguard/driftguard.db
"#
        ),
    );
    // the API server loads admission policies in the background: wait until a dry run of the
    // Deployment shows the rewrite
    let web_yaml = repo.join("apps/web.yaml");
    let web_yaml = web_yaml.to_str().expect("utf-8 path");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let image = kubectl(
            &s,
            &["create", "--dry-run=server", "-f", web_yaml, "-o",
              "jsonpath={.items[0].spec.template.spec.containers[0].image}{.spec.template.spec.containers[0].image}"],
        );
        if image.contains("mirror.local/") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the policy never took effect: {image}"
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    // applied as Argo CD or Flux would: server-side; the policy rewrites the image on the way
    kubectl(
        &s,
        &[
            "apply",
            "--server-side",
            "--field-manager",
            "argocd-controller",
            "-f",
        ]
        .iter()
        .copied()
        .chain([repo.join("apps/web.yaml").to_str().expect("utf-8 path")])
        .collect::<Vec<_>>(),
    );
    let image = |s: &Services| {
        kubectl(
            s,
            &[
                "get",
                "deployment",
                "web",
                "-n",
                NS,
                "-o",
                "jsonpath={.spec.template.spec.containers[0].image}",
            ],
        )
    };
    assert_eq!(
        image(&s),
        "mirror.local/nginx:1.27",
        "the policy rewrote the image"
    );
    let before = kubectl(&s, &["get", "deployment", "web", "-n", NS, "-o", "json"]);
    let before: Value = serde_json::from_str(&before).expect("JSON");

    let first = scan(&repo);
    let image_path = "spec.template.spec.containers[web].image";
    let plain: Vec<_> = first.iter().filter(|d| d.0 == "plain").collect();
    assert_eq!(
        plain.len(),
        1,
        "the default comparison sees the policy's rewrite: {first:?}"
    );
    assert_eq!(plain[0].1, "Deployment/web");
    assert_eq!(plain[0].3.len(), 1, "{plain:?}");
    assert_eq!(plain[0].3[0].0, image_path);
    assert_eq!(plain[0].3[0].1, "nginx:1.27");
    assert_eq!(plain[0].3[0].2, "mirror.local/nginx:1.27");
    assert!(
        first.iter().all(|d| d.0 != "ssd"),
        "with serverSideDiff the policy's rewrite is not drift: {first:?}"
    );
    // the dry runs changed nothing
    let after = kubectl(&s, &["get", "deployment", "web", "-n", NS, "-o", "json"]);
    let after: Value = serde_json::from_str(&after).expect("JSON");
    assert_eq!(
        before["metadata"]["resourceVersion"], after["metadata"]["resourceVersion"],
        "a dry run wrote the object"
    );
    let managers = |v: &Value| -> Vec<String> {
        v["metadata"]["managedFields"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| e["manager"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    assert!(!managers(&after).iter().any(|m| m == "driftguard-diff"));

    // a change by hand: found by both, the server-side diff with the value the policy gives
    kubectl(
        &s,
        &["set", "image", "-n", NS, "deployment/web", "web=nginx:1.28"],
    );
    kubectl(
        &s,
        &[
            "patch",
            "-n",
            NS,
            "configmap",
            "web-config",
            "-p",
            r#"{"data":{"mode":"debug"}}"#,
        ],
    );
    let second = scan(&repo);
    let ssd: Vec<_> = second.iter().filter(|d| d.0 == "ssd").collect();
    assert_eq!(ssd.len(), 2, "{second:?}");
    let web = ssd
        .iter()
        .find(|d| d.1 == "Deployment/web")
        .expect("the Deployment drifted");
    assert_eq!(web.2, "forward", "{web:?}");
    assert_eq!(
        web.3,
        vec![(
            image_path.to_owned(),
            Value::from("mirror.local/nginx:1.27"),
            Value::from("mirror.local/nginx:1.28")
        )]
    );
    let cm = ssd
        .iter()
        .find(|d| d.1 == "ConfigMap/web-config")
        .expect("the ConfigMap drifted");
    assert_eq!(cm.3[0].0, "data.mode");
    assert_eq!(cm.2, "forward");
    assert!(second
        .iter()
        .any(|d| d.0 == "plain" && d.1 == "ConfigMap/web-config"));
}
