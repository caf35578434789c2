//! The live-side conformance suite, run against the memory source, the dump source and the
//! kube source on the test cluster (the fixture's objects applied with its `kubectl` into
//! namespaces of their own, deleted afterwards).

mod kube_support;

use std::sync::Arc;

use driftguard_core::memory::MemoryLiveSource;
use driftguard_core::ports::LiveSource;
use driftguard_sources::conformance::LiveFixture;

mod memory {
    use super::*;

    async fn fresh(fixture: &LiveFixture) -> (Arc<dyn LiveSource>, ()) {
        let source = MemoryLiveSource::new();
        source.set(fixture.raw_live());
        (Arc::new(source), ())
    }

    driftguard_sources::live_source_conformance_tests!(fresh);
}

mod dump {
    use super::*;

    async fn fresh(fixture: &LiveFixture) -> (Arc<dyn LiveSource>, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let source = fixture.dump(dir.path()).expect("the dump is written");
        (Arc::new(source), dir)
    }

    driftguard_sources::live_source_conformance_tests!(fresh);
}

#[cfg(feature = "kube")]
mod kube {
    use std::time::Duration;

    use driftguard_core::model::ObjectMeta;
    use driftguard_core::ports::{GroupVersionKind, LiveChange, LiveScope};
    use futures_util::stream::{BoxStream, StreamExt};
    use kube_support::{cluster, Cluster};

    use super::*;

    /// Deletes the fixture's namespaces and ClusterRoles when dropped (a failed test too).
    struct Cleanup {
        cluster: Cluster,
        fixture: LiveFixture,
    }

    impl Drop for Cleanup {
        fn drop(&mut self) {
            for ns in self.fixture.namespaces() {
                self.cluster.drop_namespace(&ns);
            }
            let mut args = vec!["delete", "clusterrole", "--ignore-not-found"];
            let roles = self.fixture.cluster_roles();
            args.extend(roles.iter().map(String::as_str));
            let _ = self.cluster.kubectl_raw(&args, None);
        }
    }

    async fn fresh(fixture: &LiveFixture) -> (Arc<dyn LiveSource>, Cleanup) {
        let c = cluster();
        let cleanup = Cleanup {
            cluster: c.clone(),
            fixture: fixture.clone(),
        };
        c.apply(&fixture.list_json(), &[]);
        (Arc::new(c.source().await), cleanup)
    }

    driftguard_sources::live_source_conformance_tests!(fresh);

    async fn next(stream: &mut BoxStream<'static, LiveChange>) -> LiveChange {
        tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .expect("a change within 30 s")
            .expect("the watch goes on")
    }

    fn names(objects: &[driftguard_core::model::RawLive]) -> Vec<&str> {
        let mut v: Vec<&str> = objects.iter().map(|o| o.object.meta().name).collect();
        v.sort();
        v
    }

    /// The API server announces an object whose labels leave the selector as a deletion: the
    /// watch hands it over (the rule admits deletions by kind and place), and the object's
    /// return as an applied change; changes of objects outside the selector are not seen.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_object_leaving_the_selector_is_watched_as_deleted() {
        let fixture = LiveFixture::new(&driftguard_sources::conformance::run_token());
        let (source, keep) = fresh(&fixture).await;
        let [a, _, _] = fixture.namespaces();
        let scope = LiveScope {
            kinds: vec![GroupVersionKind::from_api_version("v1", "ConfigMap")],
            namespaces: vec![a.clone()],
            label_selector: Some("tier=web".into()),
        };
        let mut stream = source.watch(&scope).await.expect("watch");
        match next(&mut stream).await {
            LiveChange::Restarted(s) => assert_eq!(names(&s.objects.to_vec()), ["canary", "web"]),
            other => panic!("expected the first state, got {other:?}"),
        }
        let label = |value: &str| {
            keep.cluster.kubectl(&[
                "label",
                "configmap",
                "web",
                "-n",
                &a,
                &format!("tier={value}"),
                "--overwrite",
            ]);
        };
        label("db");
        match next(&mut stream).await {
            LiveChange::Deleted(o) => {
                let meta: ObjectMeta<'_> = o.object.meta();
                assert_eq!((meta.namespace, meta.name), (Some(a.as_str()), "web"));
            }
            other => panic!("expected a deletion, got {other:?}"),
        }
        label("web");
        match next(&mut stream).await {
            LiveChange::Applied(o) => assert_eq!(o.object.meta().name, "web"),
            other => panic!("expected the object back, got {other:?}"),
        }
        // an object outside the selector changes: nothing is handed over
        keep.cluster
            .kubectl(&["label", "configmap", "db", "-n", &a, "touched=yes"]);
        label("web2");
        match next(&mut stream).await {
            LiveChange::Deleted(o) => assert_eq!(o.object.meta().name, "web"),
            other => panic!("expected the next deletion (not the db change), got {other:?}"),
        }
    }
}
