#![cfg(feature = "kube")]
//! The kube live source against the real test cluster (kube-apiserver 1.20): snapshots feed
//! the engine, which must see no drift right after `kubectl apply`, and name kind, direction,
//! fields and field manager for each change operators make by hand.

mod kube_support;

use std::sync::Arc;
use std::time::Duration;

use driftguard_core::engine::EnvironmentSpec;
use driftguard_core::engine::{ScanError, ScanReport, VerdictStatus};
use driftguard_core::ports::{GroupVersionKind, LiveScope, LiveSource, SourceError};
use driftguard_core::state::{Direction, Drift, DriftKind};
use driftguard_sources::kube::{KubeConfigSpec, KubeLiveSource};
use kube_support::{cluster, corpus, desired, scanner, scanner_for, unique_ns};

fn app(ns: &str) -> Vec<(String, String)> {
    let files = [
        (
            "00-namespace.yaml",
            format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n"),
        ),
        (
            "10-web.yaml",
            format!(
                r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {ns}
  labels: {{app: web, tier: frontend}}
spec:
  replicas: 2
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1.25
        ports: [{{containerPort: 80}}]
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: {ns}
spec:
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 80}}]
"#
            ),
        ),
        (
            "20-config.yaml",
            format!(
                r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: {ns}
  labels: {{tier: frontend}}
data:
  LOG_LEVEL: info
  FEATURE_X: "off"
"#
            ),
        ),
    ];
    files.into_iter().map(|(n, t)| (n.to_owned(), t)).collect()
}

fn drift_of<'a>(report: &'a ScanReport, kind: &str, name: &str) -> Option<&'a Drift> {
    report
        .drifts()
        .find(|d| d.id.kind == kind && d.id.name == name)
}

fn show(report: &ScanReport) -> String {
    report
        .drifts()
        .map(|d| {
            format!(
                "{}/{} {} {} {:?} by {:?}",
                d.id.kind,
                d.id.name,
                d.kind,
                d.direction,
                d.paths(),
                d.attribution.managers()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_changes_are_reported_with_kind_direction_fields_and_manager() {
    let c = cluster();
    let ns = unique_ns("dg-ops");
    let files = app(&ns);
    for (_, text) in &files {
        c.apply(text, &[]);
    }
    let live = Arc::new(c.source().await);
    let (scanner, clock, _store) = scanner("ops", &[&ns], desired(&files), live);

    // right after kubectl apply: server defaults are not drift
    let report = scanner.scan().await.expect("first scan");
    assert!(
        report.summary.errors.is_empty(),
        "{:?}",
        report.summary.errors
    );
    assert_eq!(
        report.drifts().count(),
        0,
        "drift after apply:\n{}",
        show(&report)
    );
    assert_eq!(
        report.summary.counts.tracked, 4,
        "{:?}",
        report.summary.counts
    );
    assert!(report
        .verdicts
        .iter()
        .all(|v| v.status == VerdictStatus::InSync));

    let step = |args: &[&str]| {
        let mut a = vec!["-n", ns.as_str()];
        a.extend_from_slice(args);
        c.kubectl(&a);
        clock.advance(chrono::Duration::seconds(10));
    };

    // kubectl scale
    step(&["scale", "deployment/web", "--replicas=5"]);
    let report = scanner.scan().await.expect("scan after scale");
    let d = drift_of(&report, "Deployment", "web").expect("scale is drift");
    assert_eq!(d.kind, DriftKind::Modified);
    assert_eq!(d.direction, Direction::Forward);
    assert_eq!(d.paths(), vec!["spec.replicas"]);
    let replicas = &d.fields[0];
    assert_eq!(replicas.desired, Some(serde_json::json!(2)));
    assert_eq!(replicas.live, Some(serde_json::json!(5)));
    // since 1.22 the API server records the writer of the scale subresource: `kubectl` (with
    // subresource `scale`) owns `spec.replicas` and is named; the client-side applier, who
    // applied Git's value, is not to blame (on 1.20 nobody was named)
    let managers = d.attribution.managers();
    assert!(managers.contains(&"kubectl".to_owned()), "{managers:?}");
    assert!(
        !managers.contains(&"kubectl-client-side-apply".to_owned()),
        "{managers:?}"
    );
    assert_eq!(report.drifts().count(), 1, "{}", show(&report));

    // kubectl set image
    step(&["set", "image", "deployment/web", "web=nginx:1.26"]);
    let report = scanner.scan().await.expect("scan after set image");
    let d = drift_of(&report, "Deployment", "web").expect("set image is drift");
    assert_eq!(d.direction, Direction::Forward);
    assert!(
        d.paths()
            .contains(&"spec.template.spec.containers[web].image"),
        "{:?}",
        d.paths()
    );
    assert!(
        d.attribution.managers().contains(&"kubectl-set".to_owned()),
        "{:?}",
        d.attribution.managers()
    );

    // kubectl patch of a ConfigMap
    step(&[
        "patch",
        "configmap/settings",
        "--type=merge",
        "-p",
        r#"{"data":{"LOG_LEVEL":"debug"}}"#,
    ]);
    let report = scanner.scan().await.expect("scan after patch");
    let d = drift_of(&report, "ConfigMap", "settings").expect("patch is drift");
    assert_eq!(d.kind, DriftKind::Modified);
    assert_eq!(d.direction, Direction::Forward);
    assert_eq!(d.paths(), vec!["data.LOG_LEVEL"]);
    assert_eq!(d.attribution.managers(), vec!["kubectl-patch".to_owned()]);

    // kubectl label (a label Git sets, overwritten)
    step(&["label", "--overwrite", "configmap/settings", "tier=backend"]);
    let report = scanner.scan().await.expect("scan after label");
    let d = drift_of(&report, "ConfigMap", "settings").expect("still drifted");
    assert!(
        d.paths().contains(&"metadata.labels.tier"),
        "{:?}",
        d.paths()
    );
    let owners: Vec<_> = d
        .attribution
        .owners
        .iter()
        .map(|o| (o.path.to_string(), o.manager.clone()))
        .collect();
    assert!(
        owners.contains(&(
            "metadata.labels.tier".to_owned(),
            "kubectl-label".to_owned()
        )),
        "{owners:?}"
    );
    assert!(
        owners.contains(&("data.LOG_LEVEL".to_owned(), "kubectl-patch".to_owned())),
        "{owners:?}"
    );

    // kubectl delete
    step(&["delete", "service/web"]);
    let report = scanner.scan().await.expect("scan after delete");
    let d = drift_of(&report, "Service", "web").expect("delete is drift");
    assert_eq!(d.kind, DriftKind::Missing);
    assert_eq!(d.direction, Direction::Forward);

    // an object Git does not list, with the tracking label
    c.apply(
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: hand-made\n  namespace: {ns}\n  \
             labels: {{driftguard.io/tracked: \"true\"}}\ndata: {{a: b}}\n"
        ),
        &[],
    );
    clock.advance(chrono::Duration::seconds(10));
    let report = scanner.scan().await.expect("scan after create");
    let d = drift_of(&report, "ConfigMap", "hand-made").expect("orphan");
    assert_eq!(d.kind, DriftKind::Orphan);
    assert_eq!(d.direction, Direction::Forward);

    // nothing else: controller-made objects (ReplicaSet, Endpoints, kube-root-ca.crt, the
    // default ServiceAccount) are not reported
    let mut drifted: Vec<String> = report
        .drifts()
        .map(|d| format!("{}/{}", d.id.kind, d.id.name))
        .collect();
    drifted.sort();
    assert_eq!(
        drifted,
        vec![
            "ConfigMap/hand-made",
            "ConfigMap/settings",
            "Deployment/web",
            "Service/web"
        ],
        "{}",
        show(&report)
    );
    c.drop_namespace(&ns);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_applied_to_the_cluster_has_no_drift() {
    let c = cluster();
    let ns = unique_ns("dg-corpus");
    let files = corpus(&ns);
    let text = |name: &str| {
        files
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.as_str())
            .unwrap_or_else(|| panic!("corpus file {name}"))
    };
    // as the corpus README says: namespace and CRD first, misc server-side, the rest
    // client-side
    c.apply(text("00-namespace.yaml"), &[]);
    c.apply(text("60-crd.yaml"), &[]);
    c.kubectl(&[
        "wait",
        "--for=condition=established",
        "--timeout=30s",
        "crd/widgets.example.test",
    ]);
    for f in [
        "10-deployment.yaml",
        "20-statefulset.yaml",
        "30-services.yaml",
        "40-config.yaml",
        "70-widget.yaml",
    ] {
        c.apply(text(f), &[]);
    }
    c.apply(text("50-misc.yaml"), &["--server-side"]);
    // let the controllers make what they make (ReplicaSet, Pods, PVCs, token Secrets)
    tokio::time::sleep(Duration::from_secs(2)).await;

    let live = Arc::new(c.source().await);
    let set = desired(&files);
    let n = set.objects.len();
    let (scanner, _clock, _store) = scanner("corpus", &[&ns], set, live.clone());
    let report = scanner.scan().await.expect("scan");
    assert!(
        report.summary.errors.is_empty(),
        "{:?}",
        report.summary.errors
    );
    assert_eq!(report.drifts().count(), 0, "drift:\n{}", show(&report));
    assert_eq!(report.summary.counts.tracked, n);
    assert_eq!(report.summary.counts.in_sync, n);

    // the snapshot holds every kind Git uses, with managedFields, apiVersion and kind
    let scope = scanner.live_scope().expect("scope after a scan");
    let snap = live.snapshot(&scope).await.expect("snapshot");
    assert!(snap.errors.is_empty(), "{:?}", snap.errors);
    for o in snap.objects.iter() {
        let meta = o.object.meta();
        assert!(!meta.api_version.is_empty() && !meta.kind.is_empty());
    }
    // discovery's answer on each kind's scope comes with it (the engine trusts it first)
    let served = |group: &str, kind: &str| {
        snap.served
            .iter()
            .find(|(k, _)| k.group == group && k.kind == kind)
            .map(|(_, namespaced)| *namespaced)
    };
    assert_eq!(served("", "ConfigMap"), Some(true), "{:?}", snap.served);
    assert_eq!(served("apps", "Deployment"), Some(true));
    assert_eq!(snap.served.len(), {
        let mut kinds: Vec<_> = scope.kinds.iter().map(|k| k.group_kind()).collect();
        kinds.sort();
        kinds.dedup();
        kinds.len()
    });
    let widget = snap
        .objects
        .iter()
        .find(|o| o.object.meta().kind == "Widget")
        .expect("the custom resource is listed");
    assert_eq!(widget.object.0["spec"]["size"], 3, "CRD default applied");
    let cronjob = snap
        .objects
        .iter()
        .find(|o| o.object.meta().kind == "CronJob")
        .expect("CronJob listed");
    assert_eq!(cronjob.object.meta().api_version, "batch/v1");
    assert!(cronjob.object.0["metadata"]["managedFields"].is_array());
    c.drop_namespace(&ns);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifests_without_a_namespace_as_kubectl_apply_n_applies_them() {
    let c = cluster();
    let ns = unique_ns("dg-nons");
    let role = format!("{ns}-reader");
    let files = vec![
        (
            "00-namespace.yaml".to_owned(),
            format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n"),
        ),
        (
            "10-app.yaml".to_owned(),
            format!(
                r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  LOG_LEVEL: info
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {{app: web}}
  ports: [{{port: 80}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {role}
rules:
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get]
"#
            ),
        ),
    ];
    c.apply(&files[0].1, &[]);
    c.apply(&files[1].1, &["-n", &ns]);
    let live = Arc::new(c.source().await);
    let mut spec = EnvironmentSpec::new("nons");
    spec.namespaces = vec![ns.clone()];
    spec.default_namespace = Some(ns.clone());
    let (scanner, clock, _store) = scanner_for(spec, desired(&files), live);

    let report = scanner.scan().await.expect("first scan");
    assert!(
        report.summary.errors.is_empty(),
        "{:?}",
        report.summary.errors
    );
    assert_eq!(report.drifts().count(), 0, "drift:\n{}", show(&report));
    assert_eq!(
        report.summary.counts.in_sync, 4,
        "{:?}",
        report.summary.counts
    );
    let namespace_of = |kind: &str| {
        report
            .verdicts
            .iter()
            .find(|v| v.id.kind == kind)
            .unwrap_or_else(|| panic!("{kind} has a verdict"))
            .id
            .namespace
            .clone()
    };
    assert_eq!(namespace_of("ConfigMap"), Some(ns.clone()));
    assert_eq!(namespace_of("Service"), Some(ns.clone()));
    assert_eq!(namespace_of("ClusterRole"), None);

    // a change by hand is found in that namespace
    c.kubectl(&["-n", &ns, "delete", "configmap", "settings"]);
    clock.advance(chrono::Duration::seconds(10));
    let report = scanner.scan().await.expect("second scan");
    let d = drift_of(&report, "ConfigMap", "settings").expect("the deleted ConfigMap drifts");
    assert_eq!(d.kind, DriftKind::Missing);
    assert_eq!(d.id.namespace.as_deref(), Some(ns.as_str()));
    assert_eq!(report.drifts().count(), 1, "{}", show(&report));

    let _ = c.kubectl_raw(
        &["delete", "clusterrole", &role, "--ignore-not-found"],
        None,
    );
    c.drop_namespace(&ns);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_and_label_selector() {
    let c = cluster();
    let ns = unique_ns("dg-page");
    let mut yaml = format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n");
    for i in 0..25 {
        let parity = if i % 2 == 0 { "even" } else { "odd" };
        yaml.push_str(&format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i:02}\n  namespace: {ns}\n  labels: {{parity: {parity}}}\ndata: {{i: \"{i}\"}}\n"
        ));
    }
    c.apply(&yaml, &[]);
    let live = c.source().await.with_page_size(4);
    let mut scope = LiveScope {
        kinds: vec![GroupVersionKind::from_api_version("v1", "ConfigMap")],
        namespaces: vec![ns.clone()],
        label_selector: None,
    };
    let snap = live.snapshot(&scope).await.expect("snapshot");
    let names: Vec<String> = snap
        .objects
        .iter()
        .map(|o| o.object.meta().name.to_owned())
        .filter(|n| n.starts_with("cm-"))
        .collect();
    assert_eq!(names.len(), 25, "7 pages of 4 all read");
    scope.label_selector = Some("parity=odd".into());
    let snap = live.snapshot(&scope).await.expect("snapshot");
    assert_eq!(snap.objects.len(), 12);
    c.drop_namespace(&ns);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kind_is_reported_and_the_rest_is_read() {
    let c = cluster();
    let live = c.source().await;
    let scope = LiveScope {
        kinds: vec![
            GroupVersionKind::from_api_version("v1", "Namespace"),
            GroupVersionKind::from_api_version("example.test/v9", "Gadget"),
            GroupVersionKind::from_api_version("nosuch.example.test/v1", "Thing"),
        ],
        namespaces: vec!["default".into()],
        label_selector: None,
    };
    let snap = live.snapshot(&scope).await.expect("snapshot");
    assert_eq!(snap.objects.len(), 1, "only the listed namespace");
    assert_eq!(snap.objects.to_vec()[0].object.meta().name, "default");
    let mut kinds: Vec<String> = snap.errors.iter().map(|e| e.kind.to_string()).collect();
    kinds.sort();
    assert_eq!(kinds.len(), 2, "{:?}", snap.errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_not_served_falls_back_to_the_preferred_one() {
    let c = cluster();
    let live = c.source().await;
    // Git still says extensions/v1beta1 Ingress... which 1.20 serves; networking.k8s.io/v2 is
    // not served at all: the preferred networking.k8s.io version is read instead
    let scope = LiveScope {
        kinds: vec![GroupVersionKind::from_api_version(
            "networking.k8s.io/v2",
            "NetworkPolicy",
        )],
        namespaces: vec!["default".into()],
        label_selector: None,
    };
    let snap = live.snapshot(&scope).await.expect("snapshot");
    assert!(snap.errors.is_empty(), "{:?}", snap.errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_server_is_an_error_never_an_empty_cluster() {
    let c = cluster();
    // the test cluster's kubeconfig, pointed at a port nobody listens on
    let text = std::fs::read_to_string(&c.kubeconfig).expect("kubeconfig");
    let server = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: "))
        .expect("server line")
        .to_owned();
    let dead = text.replace(&server, "https://127.0.0.1:1");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, dead).expect("write kubeconfig");
    let live = KubeLiveSource::connect(&KubeConfigSpec {
        kubeconfig: Some(path),
        context: Some("driftguard-test".into()),
        in_cluster: false,
    })
    .await
    .expect("config is valid");
    let scope = LiveScope {
        kinds: vec![GroupVersionKind::from_api_version("v1", "ConfigMap")],
        ..LiveScope::default()
    };
    let err = live.snapshot(&scope).await.expect_err("unreachable");
    assert!(matches!(err, SourceError::Unreachable { .. }), "{err:?}");

    let files = app("dg-unreachable");
    let (scanner, _clock, _store) = scanner("dead", &[], desired(&files), Arc::new(live));
    let err = scanner.scan().await.expect_err("scan fails");
    assert!(matches!(err, ScanError::Live { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_kubeconfig_names_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("broken-kubeconfig");
    std::fs::write(&path, "apiVersion: v1\nkind: Config\nclusters: [oops\n").expect("write");
    let err = KubeLiveSource::connect(&KubeConfigSpec {
        kubeconfig: Some(path.clone()),
        context: None,
        in_cluster: false,
    })
    .await
    .expect_err("invalid");
    let text = err.to_string();
    assert!(matches!(err, SourceError::Invalid(_)), "{text}");
    let SourceError::Invalid(e) = err else {
        unreachable!()
    };
    assert_eq!(e.file, path.display().to_string());

    let err = KubeLiveSource::connect(&KubeConfigSpec {
        kubeconfig: Some(dir.path().join("absent")),
        context: None,
        in_cluster: false,
    })
    .await
    .expect_err("absent file");
    assert!(matches!(err, SourceError::Invalid(_)));
}
