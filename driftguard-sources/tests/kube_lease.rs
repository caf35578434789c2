//! Leases on the test cluster: create, read, renew on the version read, lose a race (the
//! second writer of the same version gets a conflict), list by label, release, delete.

mod kube_support;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use driftguard_sources::kube::lease::{LeaseClaim, LeaseClient, LeaseError};
use driftguard_sources::kube::KubeConfigSpec;
use kube_support::{cluster, unique_ns};

fn claim(holder: Option<&str>, transitions: u64, secs: i64) -> LeaseClaim {
    let at = Utc
        .timestamp_opt(1_800_000_000 + secs, 123_456_000)
        .single()
        .expect("time");
    LeaseClaim {
        holder: holder.map(str::to_owned),
        duration: Duration::from_secs(7),
        transitions,
        acquired_at: Some(at),
        renewed_at: Some(at),
    }
}

#[tokio::test]
async fn leases_are_written_on_the_version_read_and_races_have_one_winner() {
    let c = cluster();
    let ns = unique_ns("dg-lease");
    c.kubectl(&["create", "namespace", &ns]);
    let spec = KubeConfigSpec {
        kubeconfig: Some(c.kubeconfig.clone()),
        context: None,
        in_cluster: false,
    };
    let leases = LeaseClient::connect(&spec, &ns)
        .await
        .expect("client")
        .with_timeout(Duration::from_secs(5));
    assert_eq!(leases.namespace(), ns);

    assert_eq!(leases.get("env-prod").await.expect("reads"), None);
    let labels = BTreeMap::from([("driftguard.io/lease".to_owned(), "environment".to_owned())]);
    let annotations = BTreeMap::from([("driftguard.io/environment".to_owned(), "prod".to_owned())]);
    let created = leases
        .create("env-prod", &claim(Some("a"), 0, 0), &labels, &annotations)
        .await
        .expect("created");
    assert_eq!(created.holder.as_deref(), Some("a"));
    assert_eq!(created.duration, Duration::from_secs(7));
    assert_eq!(created.transitions, 0);
    assert_eq!(
        created.renewed_at,
        claim(None, 0, 0).renewed_at,
        "microseconds kept"
    );
    assert_eq!(created.annotations, annotations);
    // a second create loses
    let again = leases
        .create("env-prod", &claim(Some("b"), 0, 0), &labels, &annotations)
        .await;
    assert!(
        matches!(again, Err(LeaseError::Conflict { .. })),
        "{again:?}"
    );

    // a renewal on the version read wins; a second writer of that version loses
    let renewed = leases
        .update(&created, &claim(Some("a"), 0, 2))
        .await
        .expect("renewed");
    assert_ne!(renewed.resource_version, created.resource_version);
    let stale = leases.update(&created, &claim(Some("b"), 1, 3)).await;
    assert!(
        matches!(stale, Err(LeaseError::Conflict { .. })),
        "{stale:?}"
    );
    let read = leases
        .get("env-prod")
        .await
        .expect("reads")
        .expect("exists");
    assert_eq!(read, renewed, "the record read is the one written");
    assert_eq!(read.labels, labels);

    // a takeover counts a transition
    let taken = leases
        .update(&read, &claim(Some("b"), read.transitions + 1, 9))
        .await
        .expect("taken over");
    assert_eq!((taken.holder.as_deref(), taken.transitions), (Some("b"), 1));
    // a release leaves no holder
    let released = leases
        .update(&taken, &claim(None, taken.transitions, 10))
        .await
        .expect("released");
    assert_eq!(released.holder, None);

    // listing by label finds only the labelled ones
    leases
        .create(
            "member-a",
            &claim(Some("a"), 0, 0),
            &BTreeMap::new(),
            &BTreeMap::new(),
        )
        .await
        .expect("created");
    let listed = leases
        .list("driftguard.io/lease=environment")
        .await
        .expect("lists");
    assert_eq!(
        listed.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(),
        ["env-prod"]
    );

    // deleting on a stale version loses; on the current one wins; a second delete is a no-op
    let stale = leases.delete(&taken).await;
    assert!(
        matches!(stale, Err(LeaseError::Conflict { .. })),
        "{stale:?}"
    );
    leases.delete(&released).await.expect("deleted");
    leases.delete(&released).await.expect("already gone");
    assert_eq!(leases.get("env-prod").await.expect("reads"), None);
    // the API server creates a deleted Lease again on an update (Leases allow create on
    // update), keeping what the writer says; a second writer of the same version then loses
    let recreated = leases
        .update(&released, &claim(Some("a"), 2, 11))
        .await
        .expect("created again");
    assert_eq!(
        (recreated.holder.as_deref(), recreated.transitions),
        (Some("a"), 2)
    );
    let late = leases.update(&released, &claim(Some("b"), 2, 11)).await;
    assert!(matches!(late, Err(LeaseError::Conflict { .. })), "{late:?}");

    c.drop_namespace(&ns);
}

#[tokio::test]
async fn an_api_server_that_does_not_answer_is_unreachable_within_the_timeout() {
    // a port where nothing answers the TLS handshake: a listener that never accepts
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let dir = tempfile::tempdir().expect("tmp");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:{port}\n    insecure-skip-tls-verify: true\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\nusers:\n- name: u\n  user: {{token: t}}\n"
        ),
    )
    .expect("kubeconfig");
    let spec = KubeConfigSpec {
        kubeconfig: Some(kubeconfig),
        context: None,
        in_cluster: false,
    };
    let leases = LeaseClient::connect(&spec, "default")
        .await
        .expect("client")
        .with_timeout(Duration::from_millis(300));
    let t = std::time::Instant::now();
    let r = leases.get("env-prod").await;
    assert!(matches!(r, Err(LeaseError::Unreachable { .. })), "{r:?}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    drop(listener);
}
