#![cfg(feature = "kube")]
//! Killing the test cluster's kube-apiserver during a watch: the watch says `Disconnected`,
//! scans fail as "live state unknown" (nothing is resolved), and when the server is back the
//! watch resyncs with a full `Restarted` snapshot and the engine ends in the same state a fresh
//! scan finds.
//!
//! This is a test binary of its own (cargo runs test binaries one after the other), since it
//! takes the shared API server down for a few seconds.

mod kube_support;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use driftguard_core::engine::ScanError;
use driftguard_core::ports::{DriftStore, LiveChange, LiveSource};
use driftguard_core::query::EventQuery;
use driftguard_core::state::EventKind;
use futures_util::stream::StreamExt;
use kube_support::{cluster, desired, scanner, unique_ns, Cluster};

fn restart_script(c: &Cluster, arg: &str) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../scripts/test-cluster/restart-apiserver.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg(arg)
        .env("DRIFTGUARD_RUN", &c.run_dir)
        .output()
        .expect("restart script runs");
    assert!(
        out.status.success(),
        "{} {arg} failed: {}{}",
        script.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes sure the API server runs again even when an assertion fails midway.
struct Restarter(Cluster);

impl Drop for Restarter {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(
                PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                    .join("../scripts/test-cluster/restart-apiserver.sh"),
            )
            .arg("--start")
            .env("DRIFTGUARD_RUN", &self.0.run_dir)
            .output();
    }
}

async fn next(
    stream: &mut futures_util::stream::BoxStream<'static, LiveChange>,
    limit: Duration,
) -> Option<LiveChange> {
    tokio::time::timeout(limit, stream.next())
        .await
        .ok()
        .flatten()
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
kind: ConfigMap
metadata: {{name: limits, namespace: {ns}}}
data: {{max: "10"}}
"#
        ),
    )]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apiserver_restart_during_a_watch_resyncs_without_false_resolution() {
    let c = cluster();
    let ns = unique_ns("dg-restart");
    let files = app(&ns);
    c.apply(&files[0].1, &[]);
    let live = Arc::new(
        c.source()
            .await
            .with_max_backoff(Duration::from_millis(500)),
    );
    let (scanner, clock, store) = scanner("restart", &[&ns], desired(&files), live.clone());
    assert_eq!(scanner.scan().await.expect("scan").drifts().count(), 0);
    let scope = scanner.live_scope().expect("scope");
    let mut stream = live.watch(&scope).await.expect("watch");
    let first = next(&mut stream, Duration::from_secs(10))
        .await
        .expect("initial state");
    assert!(matches!(first, LiveChange::Restarted(_)));
    scanner.apply_live_change(&first).await.expect("apply");

    // a drift seen through the watch
    c.kubectl(&["-n", &ns, "scale", "deployment/api", "--replicas=4"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let ch = next(&mut stream, Duration::from_secs(5))
            .await
            .expect("change");
        let ev = scanner.apply_live_change(&ch).await.expect("apply");
        if ev.iter().any(|e| e.kind == EventKind::Detected) {
            break;
        }
        assert!(Instant::now() < deadline, "scale not seen");
    }

    // the API server crashes
    let _guard = Restarter(c.clone());
    restart_script(&c, "--kill");
    let killed = Instant::now();
    let change = loop {
        let ch = next(&mut stream, Duration::from_secs(10))
            .await
            .expect("the watch reports the loss within 10 s");
        if matches!(ch, LiveChange::Disconnected(_)) {
            break ch;
        }
        // events still in flight
        scanner.apply_live_change(&ch).await.expect("apply");
    };
    println!(
        "Disconnected {} ms after the kill",
        killed.elapsed().as_millis()
    );
    assert!(scanner
        .apply_live_change(&change)
        .await
        .expect("apply")
        .is_empty());
    // a scan while it is down: live state unknown, nothing resolved
    clock.advance(chrono::Duration::seconds(30));
    let err = scanner.scan().await.expect_err("live unknown");
    assert!(matches!(err, ScanError::Live { .. }), "{err:?}");
    // no second Disconnected while the server stays down
    assert!(next(&mut stream, Duration::from_millis(1500))
        .await
        .is_none());

    // back up; a change made right away is caught too (by the resync or the new watch)
    restart_script(&c, "--start");
    println!(
        "API server back {} ms after the kill",
        killed.elapsed().as_millis()
    );
    c.kubectl(&[
        "-n",
        &ns,
        "patch",
        "configmap/flags",
        "--type=merge",
        "-p",
        r#"{"data":{"mode":"wild"}}"#,
    ]);
    c.kubectl(&["-n", &ns, "delete", "configmap/limits"]);
    let back = Instant::now();
    let mut restarted = false;
    let mut seen_flags = false;
    let mut seen_limits = false;
    while !(restarted && seen_flags && seen_limits) {
        let ch = next(&mut stream, Duration::from_secs(20))
            .await
            .unwrap_or_else(|| {
                panic!("resync (restarted={restarted}, flags={seen_flags}, limits={seen_limits})")
            });
        if matches!(ch, LiveChange::Restarted(_)) {
            restarted = true;
            println!(
                "Restarted {} ms after the server was back",
                back.elapsed().as_millis()
            );
        }
        clock.advance(chrono::Duration::seconds(1));
        for e in scanner.apply_live_change(&ch).await.expect("apply") {
            assert_ne!(
                e.kind,
                EventKind::Resolved,
                "false resolution: {:?}",
                e.drift.id
            );
            if e.kind == EventKind::Detected && e.drift.id.name == "flags" {
                seen_flags = true;
            }
            if e.kind == EventKind::Detected && e.drift.id.name == "limits" {
                seen_limits = true;
            }
        }
    }

    // nothing was ever resolved, and the state matches a fresh scan's
    let events = store
        .events(&EventQuery {
            environment: Some("restart".into()),
            limit: 1000,
            ..EventQuery::default()
        })
        .await
        .expect("events");
    assert!(events.items.iter().all(|e| e.kind != EventKind::Resolved));
    let open = |records: Vec<driftguard_core::state::DriftRecord>| {
        let mut v: Vec<String> = records
            .into_iter()
            .filter_map(|r| {
                r.drift
                    .map(|d| format!("{}/{} {}", r.id.kind, r.id.name, d.kind))
            })
            .collect();
        v.sort();
        v
    };
    let watched = open(store.records("restart").await.expect("records"));
    assert_eq!(
        watched,
        vec![
            "ConfigMap/flags modified",
            "ConfigMap/limits missing",
            "Deployment/api modified"
        ]
    );
    let (fresh, _, fresh_store) = scanner_fresh(&c, &ns, &files, live.clone());
    fresh.scan().await.expect("fresh scan");
    assert_eq!(
        open(fresh_store.records("restart").await.expect("records")),
        watched
    );
    c.drop_namespace(&ns);
}

fn scanner_fresh(
    _c: &Cluster,
    ns: &str,
    files: &[(String, String)],
    live: Arc<driftguard_sources::kube::KubeLiveSource>,
) -> (
    driftguard_core::engine::Scanner,
    Arc<driftguard_core::memory::ManualClock>,
    Arc<driftguard_core::memory::MemoryStore>,
) {
    scanner("restart", &[ns], desired(files), live)
}
