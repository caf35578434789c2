#![cfg(feature = "kube")]
//! Environments are views of a cluster: on the real test cluster, views in several namespaces
//! share one watch per kind, each sees only its own objects, a snapshot read from the shared
//! cache is what a list would give, and a watch stops when no view holds it.

mod kube_support;

use std::time::Duration;

use driftguard_core::model::LiveObjects;
use driftguard_core::ports::{GroupVersionKind, LiveChange, LiveScope, LiveSource};
use futures_util::stream::{BoxStream, StreamExt};
use kube_support::{cluster, unique_ns};

fn scope(ns: &str) -> LiveScope {
    LiveScope {
        kinds: vec![
            GroupVersionKind::from_api_version("v1", "ConfigMap"),
            GroupVersionKind::from_api_version("apps/v1", "Deployment"),
        ],
        namespaces: vec![ns.to_owned()],
        label_selector: None,
    }
}

fn names(objects: &LiveObjects) -> Vec<String> {
    let mut n: Vec<String> = objects
        .iter()
        .filter(|o| o.object.meta().kind == "ConfigMap")
        .map(|o| o.object.meta().name.to_owned())
        .filter(|n| n != "kube-root-ca.crt")
        .collect();
    n.sort();
    n
}

async fn next(stream: &mut BoxStream<'static, LiveChange>) -> LiveChange {
    tokio::time::timeout(Duration::from_secs(20), stream.next())
        .await
        .expect("a change within 20 s")
        .expect("the stream goes on")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_share_one_watch_per_kind_and_see_only_their_objects() {
    let c = cluster();
    let namespaces: Vec<String> = (0..3).map(|i| unique_ns(&format!("shared{i}"))).collect();
    for (i, ns) in namespaces.iter().enumerate() {
        c.apply(
            &format!(
                "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\n\
                 apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: app{i}, namespace: {ns}}}\ndata: {{k: v}}\n"
            ),
            &[],
        );
    }
    // the controller manager publishes `kube-root-ca.crt` into each new namespace a moment
    // later; wait for it, so the cache and the list below read the same namespace contents
    for ns in &namespaces {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !c
            .kubectl_raw(&["get", "configmap", "kube-root-ca.crt", "-n", ns], None)
            .status
            .success()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "no kube-root-ca.crt in {ns}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let base = c.source().await.with_shared_cache(true);
    let listing = c.source().await;
    let views: Vec<_> = namespaces.iter().map(|_| base.view()).collect();

    // a snapshot from the shared cache is what a list gives
    for (i, (view, ns)) in views.iter().zip(&namespaces).enumerate() {
        let cached = view.snapshot(&scope(ns)).await.expect("snapshot");
        let listed = listing.snapshot(&scope(ns)).await.expect("list");
        assert_eq!(names(&cached.objects), [format!("app{i}")]);
        assert_eq!(names(&cached.objects), names(&listed.objects));
        assert_eq!(cached.objects.len(), listed.objects.len(), "{ns}");
        assert!(cached.errors.is_empty(), "{:?}", cached.errors);
        let mut served = cached.served.clone();
        let mut listed_served = listed.served.clone();
        served.sort();
        listed_served.sort();
        assert_eq!(served, listed_served);
    }
    // three environments, two kinds: two watches, not six
    let running = base.shared_watches();
    assert_eq!(running.watches, 2, "{running:?}");
    assert!(running.objects >= 3, "{running:?}");
    // kept without status: a few hundred bytes for these ConfigMaps
    assert!(running.bytes / running.objects < 4096, "{running:?}");

    // each view's watch starts from the cache and sees only its namespace
    let mut streams = Vec::new();
    for (view, ns) in views.iter().zip(&namespaces) {
        let mut s = view.watch(&scope(ns)).await.expect("watch");
        match next(&mut s).await {
            LiveChange::Restarted(snap) => assert_eq!(names(&snap.objects).len(), 1),
            other => panic!("expected the first state, got {other:?}"),
        }
        streams.push(s);
    }
    assert_eq!(base.shared_watches().watches, 2);
    c.kubectl(&[
        "create",
        "configmap",
        "late",
        "-n",
        &namespaces[1],
        "--from-literal=a=b",
    ]);
    match next(&mut streams[1]).await {
        LiveChange::Applied(o) => {
            assert_eq!(o.object.meta().name, "late");
            assert!(o.object.value().get("status").is_none());
        }
        other => panic!("expected the new object, got {other:?}"),
    }
    // the other views hear nothing of it
    for i in [0, 2] {
        let quiet = tokio::time::timeout(Duration::from_millis(700), streams[i].next()).await;
        assert!(quiet.is_err(), "view {i} got {quiet:?}");
    }

    // no view holds the watches any more: they stop
    drop(streams);
    drop(views);
    let mut left = usize::MAX;
    for _ in 0..50 {
        left = base.shared_watches().watches;
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left, 0, "watches still running without a view");
    for ns in &namespaces {
        c.drop_namespace(ns);
    }
}

/// The objects of a snapshot by name, as their values.
fn by_name(objects: &LiveObjects) -> std::collections::BTreeMap<String, serde_json::Value> {
    objects
        .iter()
        .filter(|o| o.object.meta().name.starts_with("cm-"))
        .map(|o| (o.object.meta().name.to_owned(), o.object.value().clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kind_of_many_objects_is_packed_with_its_dictionary_and_read_back_as_listed() {
    // more objects than a dictionary needs (64), fewer than its sample (2,000): the dictionary
    // is trained when the list ends, and every object is packed with it
    let c = cluster();
    let ns = unique_ns("packed");
    let mut yaml = format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n");
    for i in 0..150 {
        yaml.push_str(&format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm-{i}, namespace: {ns}, \
             labels: {{app: svc-{}}}}}\ndata: {{URL: 'postgres://db-{i}.internal:5432/svc', \
             LEVEL: info, N: '{i}'}}\n",
            i / 3
        ));
    }
    c.apply(&yaml, &[]);
    let base = c.source().await.with_shared_cache(true);
    let listing = c.source().await;
    let view = base.view();
    let cached = view.snapshot(&scope(&ns)).await.expect("snapshot");
    let listed = listing.snapshot(&scope(&ns)).await.expect("list");
    let (cached, listed) = (by_name(&cached.objects), by_name(&listed.objects));
    assert_eq!(cached.len(), 150);
    assert_eq!(cached, listed, "the unpacked objects are the listed ones");

    // a change reaches the cache through the watch, packed with the list's dictionary
    let mut stream = view.watch(&scope(&ns)).await.expect("watch");
    assert!(matches!(next(&mut stream).await, LiveChange::Restarted(_)));
    c.kubectl(&[
        "patch",
        "configmap",
        "cm-7",
        "-n",
        &ns,
        "--type=merge",
        "-p",
        r#"{"data":{"LEVEL":"debug ✓"}}"#,
    ]);
    loop {
        if let LiveChange::Applied(o) = next(&mut stream).await {
            if o.object.meta().name == "cm-7" {
                break;
            }
        }
    }
    let again = by_name(&view.snapshot(&scope(&ns)).await.expect("snapshot").objects);
    assert_eq!(again["cm-7"]["data"]["LEVEL"], "debug ✓");
    assert_eq!(again["cm-8"], cached["cm-8"]);
    drop(stream);
    c.drop_namespace(&ns);
}
