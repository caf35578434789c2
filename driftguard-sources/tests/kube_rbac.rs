#![cfg(feature = "kube")]
//! The read-only RBAC manifests in `deploy/rbac/` against the test cluster: a ServiceAccount
//! with only those rights can scan and watch and cannot write; a ServiceAccount that may not
//! list a kind gets that kind reported (HTTP 403) and the rest read.

mod kube_support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use driftguard_core::engine::VerdictStatus;
use driftguard_core::ports::{GroupVersionKind, LiveChange, LiveScope, LiveSource};
use driftguard_core::state::DriftKind;
use driftguard_sources::kube::{KubeConfigSpec, KubeLiveSource};
use futures_util::stream::StreamExt;
use kube_support::{cluster, desired, scanner, unique_ns, Cluster};

fn rbac_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/rbac")
}

/// A kubeconfig for a ServiceAccount of the test cluster.
fn service_account_kubeconfig(c: &Cluster, ns: &str, sa: &str, dir: &Path) -> PathBuf {
    driftguard_test_support::service_account_kubeconfig(&c.kubectl, &c.kubeconfig, ns, sa, dir)
}

async fn source_from(path: PathBuf) -> KubeLiveSource {
    KubeLiveSource::connect(&KubeConfigSpec {
        kubeconfig: Some(path),
        context: None,
        in_cluster: false,
    })
    .await
    .expect("connect")
}

fn app(ns: &str) -> Vec<(String, String)> {
    vec![(
        "app.yaml".to_owned(),
        format!(
            r#"apiVersion: v1
kind: Namespace
metadata: {{name: {ns}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: api, namespace: {ns}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: api}}}}
  template:
    metadata: {{labels: {{app: api}}}}
    spec:
      containers: [{{name: api, image: "busybox:1.36"}}]
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: flags, namespace: {ns}}}
data: {{mode: safe}}
---
apiVersion: v1
kind: Secret
metadata: {{name: creds, namespace: {ns}}}
stringData: {{password: hunter2}}
"#
        ),
    )]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_service_account_can_scan_and_watch_but_not_write() {
    let c = cluster();
    let text = std::fs::read_to_string(rbac_dir().join("driftguard-readonly.yaml"))
        .expect("deploy/rbac/driftguard-readonly.yaml");
    c.apply(&text, &[]);
    let who = "--as=system:serviceaccount:driftguard-system:driftguard";
    for (verb, resource, allowed) in [
        ("list", "deployments.apps", true),
        ("watch", "configmaps", true),
        ("get", "secrets", true),
        ("list", "widgets.example.test", true),
        ("create", "configmaps", false),
        ("patch", "deployments.apps", false),
        ("delete", "pods", false),
        ("update", "secrets", false),
    ] {
        let out = c.kubectl_raw(&["auth", "can-i", verb, resource, "-A", who], None);
        let answer = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert_eq!(
            answer == "yes",
            allowed,
            "can-i {verb} {resource}: {answer}"
        );
    }

    let ns = unique_ns("dg-rbac");
    let files = app(&ns);
    c.apply(&files[0].1, &[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = service_account_kubeconfig(&c, "driftguard-system", "driftguard", dir.path());
    let live = Arc::new(source_from(kubeconfig).await);
    let (scanner, clock, _store) = scanner("rbac", &[&ns], desired(&files), live.clone());
    let report = scanner.scan().await.expect("scan as the ServiceAccount");
    assert!(
        report.summary.errors.is_empty(),
        "{:?}",
        report.summary.errors
    );
    assert_eq!(report.drifts().count(), 0);
    assert_eq!(report.summary.counts.in_sync, 4);

    c.kubectl(&["-n", &ns, "scale", "deployment/api", "--replicas=2"]);
    clock.advance(chrono::Duration::seconds(5));
    let report = scanner.scan().await.expect("scan");
    assert_eq!(report.drifts().count(), 1);

    // a watch works with the same rights
    let scope = scanner.live_scope().expect("scope");
    let mut stream = live.watch(&scope).await.expect("watch");
    let first = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("in time")
        .expect("open");
    let LiveChange::Restarted(snap) = first else {
        panic!("expected the initial state, got {first:?}")
    };
    assert!(snap.errors.is_empty(), "{:?}", snap.errors);
    c.kubectl(&["-n", &ns, "label", "configmap/flags", "x=y"]);
    let change = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("in time")
        .expect("open");
    assert!(matches!(change, LiveChange::Applied(_)), "{change:?}");
    c.drop_namespace(&ns);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_kind_is_reported_and_the_rest_is_scanned() {
    let c = cluster();
    let ns = unique_ns("dg-403");
    let files = app(&ns);
    c.apply(&files[0].1, &[]);
    // an account that may read Deployments and ConfigMaps in this namespace, not Secrets
    c.apply(
        &format!(
            r#"apiVersion: v1
kind: ServiceAccount
metadata: {{name: limited, namespace: {ns}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: limited, namespace: {ns}}}
rules:
- apiGroups: ["", apps]
  resources: [configmaps, deployments, namespaces]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: limited, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: limited}}
subjects: [{{kind: ServiceAccount, name: limited, namespace: {ns}}}]
"#
        ),
        &[],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = service_account_kubeconfig(&c, &ns, "limited", dir.path());
    let live = Arc::new(source_from(kubeconfig).await);

    let scope = LiveScope {
        kinds: vec![
            GroupVersionKind::from_api_version("v1", "ConfigMap"),
            GroupVersionKind::from_api_version("v1", "Secret"),
        ],
        namespaces: vec![ns.clone()],
        label_selector: None,
    };
    let snap = live.snapshot(&scope).await.expect("snapshot");
    assert_eq!(snap.errors.len(), 1, "{:?}", snap.errors);
    assert_eq!(snap.errors[0].kind.kind, "Secret");
    assert!(
        snap.errors[0].message.contains("forbidden"),
        "{}",
        snap.errors[0].message
    );
    assert!(snap.objects.iter().any(|o| o.object.meta().name == "flags"));

    // the scan goes on: Secret unknown, Namespace (cluster-scoped, not granted) unknown, the
    // rest compared
    let (scanner, _clock, _store) = scanner("limited", &[&ns], desired(&files), live);
    let report = scanner.scan().await.expect("scan");
    let status = |kind: &str| {
        report
            .verdicts
            .iter()
            .find(|v| v.id.kind == kind)
            .map(|v| v.status)
            .unwrap_or_else(|| panic!("verdict for {kind}"))
    };
    assert_eq!(status("Secret"), VerdictStatus::Unknown);
    assert_eq!(status("Namespace"), VerdictStatus::Unknown);
    assert_eq!(status("Deployment"), VerdictStatus::InSync);
    assert_eq!(status("ConfigMap"), VerdictStatus::InSync);
    assert_eq!(report.summary.counts.unknown, 2);
    assert!(report
        .summary
        .errors
        .iter()
        .any(|e| e.contains("Secret") && e.contains("forbidden")));
    assert!(report.drifts().all(|d| d.kind != DriftKind::Missing));
    c.drop_namespace(&ns);
}
