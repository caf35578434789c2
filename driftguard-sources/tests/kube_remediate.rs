#![cfg(feature = "kube")]
//! Remediation on the test cluster: the core's plans applied with server-side apply by
//! [`KubeLiveSource::apply_plan`], previewed with a server-side dry run; a scale, an image
//! hotfix, an added env var, an added label and a patched ConfigMap are reverted and resolve as
//! `reverted`, while fields Git does not set and an HPA's (autoscaling/v2) replicas are left
//! alone; an account without write rights gets a clear error and nothing changes.

mod kube_support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use driftguard_core::ports::{LiveSnapshot, LiveSource};
use driftguard_core::remediate::advice::RemediationAction;
use driftguard_core::remediate::{self, Operation, Readiness, Request};
use driftguard_core::state::{Drift, EventKind, Resolution};
use driftguard_sources::kube::{ApplyError, KubeConfigSpec, KubeLiveSource};
use kube_support::{cluster, desired, scanner, unique_ns, Cluster};
use serde_json::Value;

fn files(ns: &str) -> Vec<(String, String)> {
    vec![(
        "app.yaml".to_owned(),
        format!(
            r#"apiVersion: v1
kind: Namespace
metadata: {{name: {ns}}}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {ns}
  labels: {{app: web}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: app
        image: "nginx:1.25"
        env: [{{name: A, value: "1"}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: scaled, namespace: {ns}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: scaled}}}}
  template:
    metadata: {{labels: {{app: scaled}}}}
    spec:
      containers: [{{name: app, image: "nginx:1.25"}}]
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {{name: scaled, namespace: {ns}}}
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: scaled}}
  minReplicas: 1
  maxReplicas: 10
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: settings, namespace: {ns}}}
data: {{mode: safe, level: "1"}}
"#
        ),
    )]
}

/// A kubeconfig for a ServiceAccount of the test cluster.
fn service_account_kubeconfig(c: &Cluster, ns: &str, sa: &str, dir: &Path) -> PathBuf {
    driftguard_test_support::service_account_kubeconfig(&c.kubectl, &c.kubeconfig, ns, sa, dir)
}

/// The object as the server has it, managedFields included (kubectl hides them since 1.21).
fn get(c: &Cluster, ns: &str, what: &str) -> Value {
    serde_json::from_str(&c.kubectl(&[
        "-n",
        ns,
        "get",
        what,
        "-o",
        "json",
        "--show-managed-fields",
    ]))
    .expect("json")
}

fn raw(snap: &LiveSnapshot, d: &Drift) -> Option<Value> {
    snap.objects
        .iter()
        .map(|o| o.object.into_value())
        .find(|v| {
            v.pointer("/metadata/name").and_then(Value::as_str) == Some(d.id.name.as_str())
                && v.get("kind").and_then(Value::as_str) == Some(d.id.kind.as_str())
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revert_previews_applies_and_resolves_as_reverted() {
    let c = cluster();
    let ns = unique_ns("dg-remediate");
    let files = files(&ns);
    c.apply(&files[0].1, &[]);
    let live = Arc::new(c.source().await);
    let set = desired(&files);
    let (scanner, clock, _store) = scanner("prod", &[&ns], set.clone(), live.clone());
    let report = scanner.scan().await.expect("scan");
    assert_eq!(
        report.drifts().count(),
        0,
        "{:?}",
        report.drifts().collect::<Vec<_>>()
    );

    // the drifts: a scale, an image hotfix, an added env var, an added label, a patched
    // ConfigMap; a field Git does not set; the HPA's target scaled and hotfixed
    let web = "deployment/web";
    c.kubectl(&["-n", &ns, "scale", web, "--replicas=5"]);
    c.kubectl(&["-n", &ns, "set", "image", web, "app=nginx:1.26"]);
    c.kubectl(&["-n", &ns, "set", "env", web, "DEBUG=true"]);
    c.kubectl(&["-n", &ns, "label", web, "hotfix=yes"]);
    c.kubectl(&[
        "-n",
        &ns,
        "patch",
        web,
        "-p",
        r#"{"spec":{"revisionHistoryLimit":3}}"#,
    ]);
    c.kubectl(&[
        "-n",
        &ns,
        "patch",
        "configmap/settings",
        "-p",
        r#"{"data":{"mode":"unsafe","extra":"x"}}"#,
    ]);
    c.kubectl(&["-n", &ns, "scale", "deployment/scaled", "--replicas=4"]);
    c.kubectl(&[
        "-n",
        &ns,
        "set",
        "image",
        "deployment/scaled",
        "app=nginx:1.26",
    ]);
    clock.advance(chrono::Duration::seconds(5));
    let report = scanner.scan().await.expect("scan");
    let drifts: Vec<Drift> = report.drifts().cloned().collect();
    let names: Vec<String> = drifts.iter().map(|d| d.id.name.clone()).collect();
    assert_eq!(drifts.len(), 3, "{names:?}");

    let engine = scanner.engine().clone();
    let scope = scanner.live_scope().expect("scope");
    let snap = live.snapshot(&scope).await.expect("snapshot");
    let st = engine.index(&set, &snap);
    let plans: Vec<_> = drifts
        .iter()
        .map(|d| {
            let desired = set.objects.iter().map(|m| m.object.value()).find(|v| {
                v.pointer("/metadata/name").and_then(Value::as_str) == Some(d.id.name.as_str())
                    && v.get("kind").and_then(Value::as_str) == Some(d.id.kind.as_str())
            });
            let live = raw(&snap, d);
            remediate::plan(
                &engine,
                &st,
                &Request {
                    drift: d,
                    action: RemediationAction::Revert,
                    desired,
                    live: live.as_ref(),
                    prune: false,
                    git: Readiness::Ready,
                    cluster: Readiness::Ready,
                },
            )
            .expect("plan")
        })
        .collect();
    assert!(plans.iter().all(|p| p.operation == Operation::Apply));

    // the preview is the API server's dry run: exactly what would change, and nothing changes
    let web_plan = plans
        .iter()
        .find(|p| p.target.name == "web")
        .expect("web plan");
    let preview = live.preview(web_plan).await.expect("preview");
    assert!(!preview.applied);
    let paths: Vec<&str> = preview.changes.iter().map(|c| c.path.as_str()).collect();
    for want in [
        "/spec/replicas",
        "/spec/template/spec/containers/0/image",
        "/metadata/labels/hotfix",
    ] {
        assert!(paths.contains(&want), "{want} in {paths:?}");
    }
    assert!(
        paths
            .iter()
            .any(|p| p.starts_with("/spec/template/spec/containers/0/env")),
        "{paths:?}"
    );
    // Git does not set it, and a person did (`kubectl patch`): a drift of its own, which the
    // revert undoes by removing it (the API server's default applies again)
    assert!(paths.contains(&"/spec/revisionHistoryLimit"), "{paths:?}");
    assert_eq!(
        get(&c, &ns, web)["spec"]["replicas"],
        5,
        "a dry run changes nothing"
    );

    // an account that may only read: a clear error, nothing half-done
    c.apply(
        &format!(
            r#"apiVersion: v1
kind: ServiceAccount
metadata: {{name: reader, namespace: {ns}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: reader, namespace: {ns}}}
rules:
- apiGroups: ["", apps]
  resources: [configmaps, deployments]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: reader, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}}
subjects: [{{kind: ServiceAccount, name: reader, namespace: {ns}}}]
"#
        ),
        &[],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let kc = service_account_kubeconfig(&c, &ns, "reader", dir.path());
    let reader = KubeLiveSource::connect(&KubeConfigSpec {
        kubeconfig: Some(kc),
        context: None,
        in_cluster: false,
    })
    .await
    .expect("connect");
    let err = reader.apply_plan(web_plan).await.expect_err("forbidden");
    assert!(matches!(err, ApplyError::Forbidden { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("write role") && msg.contains("nothing was changed"),
        "{msg}"
    );
    let now = get(&c, &ns, web);
    assert_eq!(now["spec"]["replicas"], 5);
    assert_eq!(now["metadata"]["labels"]["hotfix"], "yes");

    // apply every plan
    for p in &plans {
        let applied = live.apply_plan(p).await.expect("apply");
        assert!(applied.applied);
    }
    let now = get(&c, &ns, web);
    assert_eq!(now["spec"]["replicas"], 2);
    assert_eq!(
        now["spec"]["revisionHistoryLimit"], 10,
        "set by hand where Git says nothing: back to the API server's default"
    );
    assert_eq!(now["metadata"]["labels"].get("hotfix"), None);
    let container = &now["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "nginx:1.25");
    let env: Vec<&str> = container["env"]
        .as_array()
        .expect("env")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(env, vec!["A"]);
    assert!(now["metadata"]["managedFields"]
        .as_array()
        .expect("managed fields")
        .iter()
        .any(|m| m["manager"] == "driftguard"));
    let cm = get(&c, &ns, "configmap/settings");
    assert_eq!(
        cm["data"],
        serde_json::json!({"mode": "safe", "level": "1"})
    );
    let scaled = get(&c, &ns, "deployment/scaled");
    assert_eq!(
        scaled["spec"]["replicas"], 4,
        "the HPA's replicas are left alone"
    );
    assert_eq!(
        scaled["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.25"
    );

    clock.advance(chrono::Duration::seconds(5));
    let report = scanner.scan().await.expect("scan");
    assert_eq!(
        report.drifts().count(),
        0,
        "{:?}",
        report.drifts().collect::<Vec<_>>()
    );
    let resolved: Vec<(String, Option<Resolution>)> = report
        .events
        .iter()
        .filter(|e| e.kind == EventKind::Resolved)
        .map(|e| (e.drift.id.name.clone(), e.drift.resolution))
        .collect();
    assert_eq!(resolved.len(), 3, "{resolved:?}");
    assert!(
        resolved
            .iter()
            .all(|(_, r)| *r == Some(Resolution::Reverted)),
        "{resolved:?}"
    );
    c.drop_namespace(&ns);
}
