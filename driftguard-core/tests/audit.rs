//! Attribution from the audit log through the scanner: drifts name the people whose writes
//! made them (a scale with no manager, two people on one object), late events name them
//! afterwards with a `changed` event, the index survives a restart through the store, reverse
//! drift names nobody from the cluster, and the privacy setting is applied before anything is
//! kept.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use driftguard_core::audit::{
    AuditCursor, AuditEvent, AuditSpec, ObjectReference, ResponseStatus, UserClass, UserInfo,
    UserNames,
};
use driftguard_core::memory::{
    ManualClock, MemoryGitSource, MemoryLiveSource, MemoryStore, RecordingNotifier,
};
use driftguard_core::model::Revision;
use driftguard_core::prelude::*;
use driftguard_core::state::Drift;
use driftguard_core::testkit::{configmap, deployment};
use futures_executor::block_on;
use serde_json::{json, Value};

fn t(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0)
        .single()
        .expect("valid time")
        + Duration::seconds(secs)
}

fn rfc(secs: i64) -> String {
    t(secs).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A write as the API server's audit log records it (the request received a few hundred
/// milliseconds into second `secs`).
#[allow(clippy::too_many_arguments)]
fn write(
    id: &str,
    who: &str,
    verb: &str,
    resource: &str,
    name: &str,
    subresource: &str,
    manager: Option<&str>,
    secs: i64,
) -> AuditEvent {
    let group = if resource == "deployments" {
        "apps"
    } else {
        ""
    };
    let mut uri = format!("/apis/{group}/v1/namespaces/shop/{resource}/{name}");
    if !subresource.is_empty() {
        uri.push('/');
        uri.push_str(subresource);
    }
    if let Some(m) = manager {
        uri.push_str("?fieldManager=");
        uri.push_str(m);
    }
    AuditEvent {
        api_version: "audit.k8s.io/v1".into(),
        kind: "Event".into(),
        audit_id: id.into(),
        stage: "ResponseComplete".into(),
        request_uri: uri,
        verb: verb.into(),
        user: UserInfo {
            username: who.into(),
            groups: vec!["system:authenticated".into()],
        },
        impersonated_user: None,
        source_ips: vec![format!("10.0.0.{}", who.len())],
        user_agent: "kubectl/v1.20.2 (linux/amd64) kubernetes/faecb19".into(),
        object_ref: Some(ObjectReference {
            resource: resource.into(),
            namespace: "shop".into(),
            name: name.into(),
            api_group: group.into(),
            api_version: "v1".into(),
            subresource: subresource.into(),
        }),
        response_status: Some(ResponseStatus { code: Some(200) }),
        request_received_timestamp: Some(t(secs) + Duration::milliseconds(250)),
        stage_timestamp: Some(t(secs) + Duration::milliseconds(280)),
    }
}

fn entry(manager: &str, secs: i64, fields: Value) -> Value {
    json!({"manager": manager, "operation": "Update", "apiVersion": "v1", "time": rfc(secs),
        "fieldsType": "FieldsV1", "fieldsV1": fields})
}

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

fn git_deployment() -> Value {
    deployment("web").replicas(2).build()
}

fn git_config() -> Value {
    configmap("settings").data("A", "a").data("B", "b").build()
}

/// The live Deployment, applied from Git with `kubectl apply` (its last-applied annotation).
fn live_deployment(replicas: i64, managed: Vec<Value>) -> Value {
    deployment("web")
        .uid("u1")
        .managed_fields(managed)
        .annotation(LAST_APPLIED, &git_deployment().to_string())
        .replicas(replicas)
        .build()
}

/// The live ConfigMap, applied from Git with `kubectl apply`.
fn live_config(a: &str, b: &str, managed: Vec<Value>) -> Value {
    configmap("settings")
        .uid("u2")
        .managed_fields(managed)
        .annotation(LAST_APPLIED, &git_config().to_string())
        .data("A", a)
        .data("B", b)
        .build()
}

fn applied() -> Value {
    entry(
        "kubectl-client-side-apply",
        0,
        json!({"f:spec": {"f:replicas": {}}, "f:data": {"f:A": {}, "f:B": {}}}),
    )
}

struct World {
    git: Arc<MemoryGitSource>,
    live: Arc<MemoryLiveSource>,
    store: Arc<MemoryStore>,
    clock: Arc<ManualClock>,
    notifier: Arc<RecordingNotifier>,
}

impl World {
    fn new() -> Self {
        let git = Arc::new(MemoryGitSource::new());
        git.set(DesiredSet {
            revision: Some(Revision::plain("r1")),
            objects: vec![
                RawManifest {
                    object: RawObject::new(git_deployment()),
                    provenance: Provenance::default(),
                },
                RawManifest {
                    object: RawObject::new(git_config()),
                    provenance: Provenance::default(),
                },
            ],
            ..DesiredSet::default()
        });
        let live = Arc::new(MemoryLiveSource::new());
        live.set(vec![
            RawLive::new(live_deployment(2, vec![applied()])),
            RawLive::new(live_config("a", "b", vec![applied()])),
        ]);
        World {
            git,
            live,
            store: Arc::new(MemoryStore::new()),
            clock: Arc::new(ManualClock::new(t(0))),
            notifier: Arc::new(RecordingNotifier::default()),
        }
    }

    fn scanner(&self, names: UserNames) -> Scanner {
        let mut spec = EnvironmentSpec::new("prod");
        spec.audit = Some(AuditSpec {
            user_names: names,
            ..AuditSpec::default()
        });
        let engine = Engine::new(spec, Normalizer::new(SecretKey::new(b"k".to_vec())));
        Scanner::new(
            engine,
            self.git.clone(),
            self.live.clone(),
            self.store.clone(),
            self.clock.clone(),
        )
        .with_notifier(self.notifier.clone())
    }

    /// Alice scales the Deployment (no manager recorded), the controller annotates it; Alice
    /// edits data.A and Bob patches data.B of the ConfigMap.
    fn hand_changes(&self) -> Vec<AuditEvent> {
        self.live.set(vec![
            RawLive::new(live_deployment(
                5,
                vec![
                    applied(),
                    entry(
                        "kube-controller-manager",
                        11,
                        json!({"f:metadata": {"f:annotations": {"f:deployment.kubernetes.io/revision": {}}}}),
                    ),
                ],
            )),
            RawLive::new(live_config(
                "alice's",
                "bob's",
                vec![
                    applied(),
                    entry("kubectl-edit", 12, json!({"f:data": {"f:A": {}}})),
                    entry("kubectl-patch", 13, json!({"f:data": {"f:B": {}}})),
                ],
            )),
        ]);
        let mut controller = write(
            "kcm-1",
            "system:kube-controller-manager",
            "update",
            "deployments",
            "web",
            "",
            None,
            11,
        );
        controller.user_agent = "kube-controller-manager/v1.20.2 (linux/amd64)".into();
        vec![
            write(
                "alice-scale",
                "alice",
                "patch",
                "deployments",
                "web",
                "scale",
                None,
                10,
            ),
            controller,
            write(
                "alice-edit",
                "alice",
                "patch",
                "configmaps",
                "settings",
                "",
                Some("kubectl-edit"),
                12,
            ),
            write(
                "bob-patch",
                "bob",
                "patch",
                "configmaps",
                "settings",
                "",
                Some("kubectl-patch"),
                13,
            ),
            // a read and a refused write: not writes that count
            AuditEvent {
                verb: "get".into(),
                ..write("read", "eve", "get", "configmaps", "settings", "", None, 14)
            },
            AuditEvent {
                response_status: Some(ResponseStatus { code: Some(403) }),
                ..write(
                    "refused",
                    "eve",
                    "patch",
                    "configmaps",
                    "settings",
                    "",
                    None,
                    14,
                )
            },
        ]
    }
}

fn drift<'a>(report: &'a ScanReport, kind: &str) -> &'a Drift {
    report
        .drifts()
        .find(|d| d.id.kind == kind)
        .unwrap_or_else(|| panic!("a drift of the {kind}"))
}

fn users(d: &Drift) -> Vec<String> {
    d.attribution
        .writers
        .iter()
        .map(|w| w.user.display())
        .collect()
}

fn owner_users(d: &Drift) -> Vec<(String, String)> {
    d.attribution
        .owners
        .iter()
        .map(|o| {
            (
                o.path.to_string(),
                d.attribution
                    .writer_of(o)
                    .map(|w| w.user.display())
                    .unwrap_or_default(),
            )
        })
        .collect()
}

#[test]
fn each_drift_names_the_people_who_made_it() {
    block_on(async {
        let w = World::new();
        let scanner = w.scanner(UserNames::Keep);
        let first = scanner.scan().await.expect("first scan");
        assert_eq!(first.drifts().count(), 0);
        let events = w.hand_changes();
        let stats = scanner
            .ingest_audit(
                &events,
                Some(AuditCursor {
                    source: "/var/log/audit.log".into(),
                    device: 1,
                    inode: 2,
                    offset: 300,
                    head: 9,
                }),
            )
            .await
            .expect("ingested");
        assert_eq!((stats.received, stats.indexed, stats.ignored), (6, 4, 2));
        w.clock.set(t(20));
        let report = scanner.scan().await.expect("second scan");

        let web = drift(&report, "Deployment");
        assert_eq!(web.direction, Direction::Forward);
        assert_eq!(
            users(web),
            ["alice"],
            "the controller's annotation is not the drift"
        );
        assert_eq!(
            owner_users(web),
            [("spec.replicas".to_owned(), "alice".to_owned())]
        );
        assert_eq!(web.attribution.who(web.direction), "alice (kubectl/scale)");
        let scale = &web.attribution.writers[0];
        assert_eq!(scale.user.class, UserClass::Person);
        assert_eq!(scale.source_ip.as_deref(), Some("10.0.0.5"));
        assert_eq!(
            web.attribution.audit_since,
            Some(t(0)),
            "since the first scan"
        );

        let cm = drift(&report, "ConfigMap");
        assert_eq!(users(cm), ["alice", "bob"]);
        assert_eq!(
            owner_users(cm),
            [
                ("data.A".to_owned(), "alice".to_owned()),
                ("data.B".to_owned(), "bob".to_owned())
            ]
        );
        assert_eq!(
            cm.attribution.who(cm.direction),
            "bob (kubectl-patch), alice (kubectl-edit)"
        );
        // stored: the episode and the store's index, with the cursor
        let stored = w
            .store
            .drift(&cm.episode)
            .await
            .expect("reads")
            .expect("kept");
        assert_eq!(users(&stored), ["alice", "bob"]);
        let index = w.store.audit_index("prod").await.expect("index");
        assert_eq!(index.objects.len(), 2);
        assert_eq!(index.cursors[0].offset, 300);

        // a restart: a new scanner reads the index and the cursor back
        let again = w.scanner(UserNames::Keep);
        assert_eq!(
            again
                .audit_cursor("/var/log/audit.log")
                .await
                .expect("cursor")
                .map(|c| c.offset),
            Some(300)
        );
        let stats = again.ingest_audit(&events, None).await.expect("again");
        assert_eq!(stats.indexed, 0, "nothing twice: {stats:?}");
        assert_eq!(stats.duplicates, 4);
    })
}

#[test]
fn late_audit_events_name_the_writers_with_a_changed_event() {
    block_on(async {
        let w = World::new();
        let scanner = w.scanner(UserNames::Keep);
        scanner.scan().await.expect("first scan");
        let events = w.hand_changes();
        // the watch sees the change before the audit backend sends its batch
        w.clock.set(t(14));
        let scope = scanner.live_scope().expect("scoped by the first scan");
        let live = w.live.snapshot(&scope).await.expect("live");
        let cm = live
            .objects
            .iter()
            .find(|o| o.object.meta().kind == "ConfigMap")
            .expect("the ConfigMap");
        let detected = scanner
            .apply_live_change(&LiveChange::Applied(cm))
            .await
            .expect("applied");
        assert_eq!(detected.len(), 1);
        assert!(detected[0].drift.attribution.writers.is_empty());
        // the batch arrives: the open drift names Alice and Bob
        w.clock.set(t(15));
        let stats = scanner.ingest_audit(&events, None).await.expect("ingested");
        let named = scanner
            .attribute_writes(&stats.objects)
            .await
            .expect("attributed");
        assert_eq!(named.len(), 1, "one changed event: {named:?}");
        assert_eq!(named[0].kind, EventKind::Changed);
        assert_eq!(users(&named[0].drift), ["alice", "bob"]);
        assert_eq!(named[0].drift.episode, detected[0].drift.episode);
        // announced, and nothing new a second time
        let sent = w.notifier.received.lock().expect("lock").len();
        assert!(sent >= 2, "detected and changed were announced");
        let again = scanner
            .attribute_writes(&stats.objects)
            .await
            .expect("again");
        assert!(again.is_empty());
        // the writers stay named while the drift is open
        w.clock.set(t(30));
        let report = scanner.scan().await.expect("scan");
        assert_eq!(users(drift(&report, "ConfigMap")), ["alice", "bob"]);
    })
}

#[test]
fn reverse_drift_names_no_one_from_the_cluster() {
    block_on(async {
        let w = World::new();
        let scanner = w.scanner(UserNames::Keep);
        scanner.scan().await.expect("first scan");
        // someone patched the ConfigMap to what it already was; then Git changed
        let events = vec![write(
            "noop",
            "alice",
            "patch",
            "configmaps",
            "settings",
            "",
            Some("kubectl-patch"),
            5,
        )];
        scanner.ingest_audit(&events, None).await.expect("ingested");
        w.git.set(DesiredSet {
            revision: Some(Revision::plain("r2")),
            objects: vec![RawManifest {
                object: RawObject::new(json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "settings", "namespace": "shop"},
                "data": {"A": "new", "B": "b"}})),
                provenance: Provenance::default(),
            }],
            ..DesiredSet::default()
        });
        w.clock.set(t(20));
        let report = scanner.scan().await.expect("scan");
        let cm = drift(&report, "ConfigMap");
        assert_eq!(cm.direction, Direction::Reverse);
        assert!(cm.attribution.writers.is_empty());
    })
}

#[test]
fn names_are_hashed_or_dropped_before_they_are_kept() {
    block_on(async {
        for names in [UserNames::Hash, UserNames::Drop] {
            let w = World::new();
            let scanner = w.scanner(names);
            scanner.scan().await.expect("first scan");
            let events = w.hand_changes();
            scanner.ingest_audit(&events, None).await.expect("ingested");
            w.clock.set(t(20));
            let report = scanner.scan().await.expect("scan");
            let cm = drift(&report, "ConfigMap");
            let shown = users(cm);
            assert_eq!(shown.len(), 2, "{names}: two writers");
            let index = serde_json::to_string(&w.store.audit_index("prod").await.expect("index"))
                .expect("serializes");
            let events = serde_json::to_string(&report.events).expect("serializes");
            for kept in [&index, &events] {
                for name in ["\"alice\"", "\"bob\""] {
                    assert!(!kept.contains(name), "{names}: {kept}");
                }
                for address in ["\"10.0.0.5\"", "\"10.0.0.3\""] {
                    assert!(!kept.contains(address), "{names}: no address of a person");
                }
            }
            match names {
                UserNames::Hash => {
                    assert!(shown.iter().all(|s| s.starts_with("hmac:")), "{shown:?}");
                    assert_ne!(shown[0], shown[1], "two people, two hashes");
                }
                _ => assert_eq!(shown, ["(a person)", "(a person)"]),
            }
            // the controller is software: kept by name whatever the setting
            assert!(index.contains("system:kube-controller-manager"), "{index}");
        }
    })
}

#[test]
fn an_environment_without_audit_settings_ignores_events() {
    block_on(async {
        let w = World::new();
        let engine = Engine::new(
            EnvironmentSpec::new("prod"),
            Normalizer::new(SecretKey::new(b"k".to_vec())),
        );
        let scanner = Scanner::new(
            engine,
            w.git.clone(),
            w.live.clone(),
            w.store.clone(),
            w.clock.clone(),
        );
        scanner.scan().await.expect("first scan");
        let stats = scanner
            .ingest_audit(&w.hand_changes(), None)
            .await
            .expect("ignored");
        assert_eq!((stats.indexed, stats.ignored), (0, 6));
        w.clock.set(t(20));
        let report = scanner.scan().await.expect("scan");
        let cm = drift(&report, "ConfigMap");
        assert!(cm.attribution.writers.is_empty());
        assert_eq!(
            cm.attribution.who(cm.direction),
            "kubectl-patch, kubectl-edit",
            "field managers, as before"
        );
        assert!(w.store.audit_index("prod").await.expect("index").is_empty());
    })
}
