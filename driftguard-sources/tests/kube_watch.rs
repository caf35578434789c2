#![cfg(feature = "kube")]
//! Watching the real test cluster: a change made while watching reaches the engine
//! (`Scanner::apply_live_change`) within a second.

mod kube_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use driftguard_core::engine::Scanner;
use driftguard_core::ports::{LiveChange, LiveSource};
use driftguard_core::state::{DriftEvent, DriftKind, EventKind};
use futures_util::stream::{BoxStream, StreamExt};
use kube_support::{cluster, desired, scanner, unique_ns, Cluster};

fn app(ns: &str) -> Vec<(String, String)> {
    vec![
        (
            "00-namespace.yaml".to_owned(),
            format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n"),
        ),
        (
            "10-app.yaml".to_owned(),
            format!(
                r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: api, namespace: {ns}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: api}}}}
  template:
    metadata: {{labels: {{app: api}}}}
    spec:
      containers: [{{name: api, image: "busybox:1.36", args: [sleep, "3600"]}}]
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: flags, namespace: {ns}}}
data: {{mode: safe}}
---
apiVersion: v1
kind: Service
metadata: {{name: api, namespace: {ns}}}
spec:
  selector: {{app: api}}
  ports: [{{port: 8080}}]
"#
            ),
        ),
    ]
}

/// Feeds changes to the scanner until one yields an event for `name` that `want` accepts;
/// returns the events and when they came.
async fn until_event(
    scanner: &Scanner,
    stream: &mut BoxStream<'static, LiveChange>,
    limit: Duration,
    want: impl Fn(&DriftEvent) -> bool,
) -> Option<(Instant, Vec<DriftEvent>)> {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        let change = tokio::time::timeout(left, stream.next()).await.ok()??;
        let events = scanner
            .apply_live_change(&change)
            .await
            .expect("apply change");
        if events.iter().any(&want) {
            return Some((Instant::now(), events));
        }
    }
}

/// Runs kubectl off the async threads; returns when it started and ended.
async fn timed_kubectl(c: &Cluster, args: Vec<String>) -> (Instant, Instant) {
    let c = c.clone();
    tokio::task::spawn_blocking(move || {
        let start = Instant::now();
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        c.kubectl(&a);
        (start, Instant::now())
    })
    .await
    .expect("kubectl thread")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_made_while_watching_reach_the_engine_within_a_second() {
    let c = cluster();
    let ns = unique_ns("dg-watch");
    let files = app(&ns);
    for (_, t) in &files {
        c.apply(t, &[]);
    }
    let live = Arc::new(c.source().await);
    let (scanner, _clock, store) = scanner("watch", &[&ns], desired(&files), live.clone());
    let report = scanner.scan().await.expect("scan");
    assert_eq!(report.drifts().count(), 0);

    let scope = scanner.live_scope().expect("scope");
    let mut stream = live.watch(&scope).await.expect("watch");
    // the watch starts with the complete state: nothing changed
    let first = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("first change in time")
        .expect("stream open");
    assert!(matches!(first, LiveChange::Restarted(_)), "{first:?}");
    assert!(scanner
        .apply_live_change(&first)
        .await
        .expect("apply")
        .is_empty());

    let mut figures = Vec::new();
    let nsa = ns.clone();
    let cases: Vec<(&str, Vec<String>, &str, DriftKind, EventKind)> = vec![
        (
            "kubectl patch configmap",
            vec![
                "-n".into(),
                nsa.clone(),
                "patch".into(),
                "configmap/flags".into(),
                "--type=merge".into(),
                "-p".into(),
                r#"{"data":{"mode":"wild"}}"#.into(),
            ],
            "flags",
            DriftKind::Modified,
            EventKind::Detected,
        ),
        (
            "kubectl scale",
            vec![
                "-n".into(),
                nsa.clone(),
                "scale".into(),
                "deployment/api".into(),
                "--replicas=3".into(),
            ],
            "api",
            DriftKind::Modified,
            EventKind::Detected,
        ),
        (
            "kubectl delete service",
            vec![
                "-n".into(),
                nsa.clone(),
                "delete".into(),
                "service/api".into(),
                "--wait=false".into(),
            ],
            "api",
            DriftKind::Missing,
            EventKind::Detected,
        ),
        (
            "kubectl create configmap (orphan)",
            vec![
                "-n".into(),
                nsa.clone(),
                "create".into(),
                "configmap".into(),
                "stray".into(),
                "--from-literal=a=b".into(),
            ],
            "stray",
            DriftKind::Orphan,
            EventKind::Detected,
        ),
        (
            "kubectl patch configmap back",
            vec![
                "-n".into(),
                nsa.clone(),
                "patch".into(),
                "configmap/flags".into(),
                "--type=merge".into(),
                "-p".into(),
                r#"{"data":{"mode":"safe"}}"#.into(),
            ],
            "flags",
            DriftKind::Modified,
            EventKind::Resolved,
        ),
    ];
    for (what, args, name, kind, event_kind) in cases {
        let (t0, t1) = timed_kubectl(&c, args).await;
        let got = until_event(&scanner, &mut stream, Duration::from_secs(5), |e| {
            e.drift.id.name == name && e.drift.kind == kind && e.kind == event_kind
        })
        .await;
        let Some((t2, _events)) = got else {
            panic!("{what}: no {event_kind:?} {kind:?} event for {name} within 5 s");
        };
        let after_command = t2.saturating_duration_since(t1);
        let from_start = t2.saturating_duration_since(t0);
        println!(
            "{what}: engine saw it {} ms after kubectl returned ({} ms after it started)",
            after_command.as_millis(),
            from_start.as_millis()
        );
        assert!(
            after_command < Duration::from_secs(1),
            "{what}: {after_command:?} after kubectl returned"
        );
        figures.push(after_command);
    }
    // the store saw the same: the Resolved above closed the ConfigMap episode
    let open: Vec<String> = store_open(&store).await;
    assert_eq!(
        open,
        vec!["ConfigMap/stray", "Deployment/api", "Service/api"]
    );
    c.drop_namespace(&ns);
}

async fn store_open(store: &driftguard_core::memory::MemoryStore) -> Vec<String> {
    use driftguard_core::ports::DriftStore;
    let mut v: Vec<String> = store
        .records("watch")
        .await
        .expect("records")
        .into_iter()
        .filter(|r| r.drift.is_some())
        .map(|r| format!("{}/{}", r.id.kind, r.id.name))
        .collect();
    v.sort();
    v
}
