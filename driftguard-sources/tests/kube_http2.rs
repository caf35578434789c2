#![cfg(feature = "kube")]
//! The lists and watches of a cluster share one HTTP/2 connection: on the real test cluster,
//! a source watching eight kinds holds one connection to the API server, where kube-rs's own
//! HTTP/1.1 client holds one per watch.

mod kube_support;

use std::collections::HashSet;
use std::time::Duration;

use driftguard_core::ports::{GroupVersionKind, LiveChange, LiveScope, LiveSource};
use futures_util::stream::StreamExt;
use kube_support::{cluster, unique_ns};

/// The port of the test cluster's API server, from its kubeconfig.
fn api_port(kubeconfig: &std::path::Path) -> u16 {
    let text = std::fs::read_to_string(kubeconfig).expect("kubeconfig");
    let server = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("server:"))
        .expect("a server in the kubeconfig")
        .trim()
        .trim_matches('"');
    let port = server.rsplit(':').next().expect("a port");
    port.trim_end_matches('/').parse().expect("a numeric port")
}

/// This process's established TCP connections to `port` (from `/proc/self/net/tcp{,6}` and
/// the process's socket descriptors).
fn connections_to(port: u16) -> usize {
    let mine: HashSet<String> = std::fs::read_dir("/proc/self/fd")
        .expect("fds")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            l.strip_prefix("socket:[")?
                .strip_suffix(']')
                .map(str::to_owned)
        })
        .collect();
    let mut n = 0;
    for table in ["/proc/self/net/tcp", "/proc/self/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let (Some(remote), Some(state), Some(inode)) = (cols.get(2), cols.get(3), cols.get(9))
            else {
                continue;
            };
            let remote_port = remote
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            // 01: ESTABLISHED
            if remote_port == Some(port) && *state == "01" && mine.contains(*inode) {
                n += 1;
            }
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lists_and_watches_of_a_cluster_share_one_connection() {
    let c = cluster();
    let port = api_port(&c.kubeconfig);
    let ns = unique_ns("h2");
    c.apply(
        &format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\n\
             apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: app, namespace: {ns}}}\ndata: {{k: v}}\n"
        ),
        &[],
    );
    let kinds = [
        ("v1", "ConfigMap"),
        ("v1", "Secret"),
        ("v1", "Service"),
        ("v1", "ServiceAccount"),
        ("apps/v1", "Deployment"),
        ("apps/v1", "StatefulSet"),
        ("batch/v1", "Job"),
        ("rbac.authorization.k8s.io/v1", "Role"),
    ];
    let scope = LiveScope {
        kinds: kinds
            .iter()
            .map(|(v, k)| GroupVersionKind::from_api_version(v, k))
            .collect(),
        namespaces: vec![ns.clone()],
        label_selector: None,
    };
    let before = connections_to(port);
    let source = c.source().await;
    let snap = source.snapshot(&scope).await.expect("snapshot");
    assert!(snap.errors.is_empty(), "{:?}", snap.errors);
    let mut stream = source.watch(&scope).await.expect("watch");
    match tokio::time::timeout(Duration::from_secs(20), stream.next()).await {
        Ok(Some(LiveChange::Restarted(_))) => {}
        other => panic!("expected the first state, got {other:?}"),
    }
    // eight watches are open now; a change reaches the stream through them
    c.kubectl(&[
        "create",
        "configmap",
        "late",
        "-n",
        &ns,
        "--from-literal=a=b",
    ]);
    match tokio::time::timeout(Duration::from_secs(20), stream.next()).await {
        Ok(Some(LiveChange::Applied(o))) => assert_eq!(o.object.meta().name, "late"),
        other => panic!("expected the new object, got {other:?}"),
    }
    let held = connections_to(port) - before;
    assert_eq!(
        held, 1,
        "eight watches and their lists over one HTTP/2 connection, not one connection each"
    );
    drop(stream);
    c.drop_namespace(&ns);
}
