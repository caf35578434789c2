//! Drift verdicts on real API-server data: the manifests in `fixtures/apiserver-1.20-corpus`
//! and the objects a real kube-apiserver 1.20 returned for them (defaults, status, controller-made
//! objects). Unchanged, nothing drifts; each hand change is reported with the right kind,
//! direction, fields and severity, and nothing else.

use std::fs;
use std::path::Path;

use driftguard_core::engine::EnvState;
use driftguard_core::manifest::parse_file;
use driftguard_core::prelude::*;
use serde_json::{json, Value};

const ENV: &str = "corpus";

fn fixtures() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/apiserver-1.20-corpus"
    ))
}

/// The empty-collection corpus: manifests with `[]`, `{}` and empty values, and what the API
/// server returned for them (`fixtures/apiserver-1.20-empty/README.md`).
fn empty_fixtures() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/apiserver-1.20-empty"
    ))
}

fn desired() -> DesiredSet {
    desired_in(fixtures())
}

fn desired_in(dir: &Path) -> DesiredSet {
    let mut set = DesiredSet::default();
    let mut files: Vec<_> = fs::read_dir(dir.join("desired"))
        .expect("fixture folder")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    for f in files {
        let text = fs::read_to_string(&f).expect("fixture file");
        let name = f.file_name().expect("name").to_string_lossy().into_owned();
        let (objects, errors) = parse_file(&name, &text, None).into_manifests();
        assert!(errors.is_empty(), "{errors:?}");
        set.objects.extend(objects);
    }
    set
}

fn live_values() -> Vec<Value> {
    live_values_in(fixtures())
}

fn live_values_in(dir: &Path) -> Vec<Value> {
    let mut out = Vec::new();
    for f in ["live-namespaced.yaml", "live-cluster.yaml"] {
        let text = fs::read_to_string(dir.join(f)).expect("fixture file");
        let (objects, errors) = parse_file(f, &text, None).into_live();
        assert!(errors.is_empty(), "{errors:?}");
        out.extend(objects.into_iter().map(|o| o.object.into_value()));
    }
    out
}

fn engine() -> Engine {
    Engine::new(
        EnvironmentSpec::new(ENV),
        Normalizer::new(SecretKey::new(b"corpus-key".to_vec())),
    )
}

/// Every object's verdict as one line: `Kind/name kind direction severity paths`.
fn verdicts(engine: &Engine, st: &EnvState) -> Vec<String> {
    let mut ids: Vec<&ResourceId> = st.desired.keys().chain(st.live.keys()).collect();
    ids.sort();
    ids.dedup();
    let mut out = Vec::new();
    for id in ids {
        let obs = engine.observe(st, id);
        let line = match &obs.presence {
            Presence::Both(c) if c.in_sync() => continue,
            Presence::Both(c) => format!(
                "{}/{} modified {} {} {}",
                id.kind,
                id.name,
                obs.evidence.unwrap_or(Direction::Unknown),
                obs.severity,
                c.drifted_paths().join(",")
            ),
            Presence::DesiredOnly { .. } => {
                format!("{}/{} missing {}", id.kind, id.name, obs.severity)
            }
            Presence::LiveOnly { .. } => format!("{}/{} orphan {}", id.kind, id.name, obs.severity),
            Presence::Neither => continue,
            Presence::Unknown => format!("{}/{} unknown", id.kind, id.name),
        };
        out.push(line);
    }
    out
}

fn index(engine: &Engine, live: Vec<Value>) -> EnvState {
    index_in(engine, &desired(), live)
}

fn index_in(engine: &Engine, desired: &DesiredSet, live: Vec<Value>) -> EnvState {
    engine.index(
        desired,
        &LiveSnapshot {
            served: Vec::new(),
            objects: live.into_iter().map(RawLive::new).collect(),
            ..LiveSnapshot::default()
        },
    )
}

/// The live objects as a watch cache hands them over: compact JSON text, parsed while indexed.
fn index_compact(engine: &Engine, live: &[Value]) -> EnvState {
    let mut objects = LiveObjects::new();
    for v in live {
        objects.push_compact(serde_json::to_string(v).expect("json").into());
    }
    engine.index(
        &desired(),
        &LiveSnapshot {
            objects,
            ..LiveSnapshot::default()
        },
    )
}

fn check(mutate: impl FnOnce(&mut Vec<Value>), expect: &[&str]) {
    let mut live = live_values();
    mutate(&mut live);
    let engine = engine();
    let st = index(&engine, live.clone());
    assert!(st.errors.is_empty(), "{:?}", st.errors);
    assert_eq!(verdicts(&engine, &st), expect);
    // the same objects as compact text give the same verdicts (HPA targets, StatefulSet
    // claims and scopes read from the text too)
    let compact = index_compact(&engine, &live);
    assert_eq!(verdicts(&engine, &compact), expect, "from compact text");
    assert_eq!(compact.hpa_targets, st.hpa_targets);
    assert_eq!(compact.claim_prefixes, st.claim_prefixes);
    // a full scan's index, which lets each object go once it is indexed, is the same too
    let consumed = index_consuming(&engine, &live);
    assert_eq!(verdicts(&engine, &consumed), expect, "consuming both sides");
    assert_eq!(consumed.hpa_targets, st.hpa_targets);
    assert_eq!(consumed.claim_prefixes, st.claim_prefixes);
    assert_eq!(consumed.errors, st.errors);
    assert_eq!(
        consumed
            .desired
            .keys()
            .collect::<std::collections::BTreeSet<_>>(),
        st.desired.keys().collect()
    );
}

/// [`index_compact`] through [`Engine::index_consuming`], as the scanner indexes.
fn index_consuming(engine: &Engine, live: &[Value]) -> EnvState {
    let mut objects = LiveObjects::new();
    for v in live {
        objects.push_compact(serde_json::to_string(v).expect("json").into());
    }
    engine.index_consuming(
        desired().into(),
        LiveSnapshot {
            objects,
            ..LiveSnapshot::default()
        },
        &[],
        Default::default(),
    )
}

fn find<'a>(live: &'a mut [Value], kind: &str, name: &str) -> &'a mut Value {
    live.iter_mut()
        .find(|v| v["kind"] == kind && v["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{kind}/{name} in the corpus"))
}

#[test]
fn unchanged_corpus_has_no_drift() {
    check(|_| {}, &[]);
}

#[test]
fn scale_of_a_statefulset() {
    check(
        |l| find(l, "StatefulSet", "cache")["spec"]["replicas"] = json!(5),
        // applied client-side: the last-applied annotation equals Git, so live moved
        &["StatefulSet/cache modified forward medium spec.replicas"],
    );
}

#[test]
fn scale_to_zero_is_high() {
    check(
        |l| find(l, "StatefulSet", "cache")["spec"]["replicas"] = json!(0),
        &["StatefulSet/cache modified forward high spec.replicas"],
    );
}

#[test]
fn hpa_owned_replicas_are_not_drift() {
    check(
        |l| find(l, "Deployment", "frontend")["spec"]["replicas"] = json!(7),
        &[],
    );
}

#[test]
fn image_hotfix() {
    check(
        |l| {
            find(l, "Deployment", "frontend")["spec"]["template"]["spec"]["containers"][0]
                ["image"] = json!("nginx:1.25.4")
        },
        &["Deployment/frontend modified forward high spec.template.spec.containers[nginx].image"],
    );
}

#[test]
fn env_var_added_and_changed() {
    check(
        |l| {
            let c = &mut find(l, "Deployment", "frontend")["spec"]["template"]["spec"]
                ["containers"][0];
            c["env"][0]["value"] = json!("debug");
            c["env"]
                .as_array_mut()
                .expect("env list")
                .push(json!({"name": "DEBUG", "value": "1"}));
        },
        &["Deployment/frontend modified forward medium spec.template.spec.containers[nginx].env[DEBUG],spec.template.spec.containers[nginx].env[MODE].value"],
    );
}

#[test]
fn configmap_patched_and_key_added() {
    check(
        |l| {
            let cm = find(l, "ConfigMap", "frontend-config");
            cm["data"]["retries"] = json!("5");
            cm["data"]["extra"] = json!("x");
        },
        &["ConfigMap/frontend-config modified forward medium data.extra,data.retries"],
    );
}

#[test]
fn label_added_by_hand() {
    check(
        |l| find(l, "Service", "frontend")["metadata"]["labels"] = json!({"hotfix": "true"}),
        &["Service/frontend modified forward low metadata.labels.hotfix"],
    );
}

#[test]
fn keys_the_server_or_a_tool_writes_are_ignored_and_user_settings_are_not() {
    // what `helm install`, Argo CD (label and annotation tracking), Flux and the controllers
    // leave on an object Git does not set
    check(
        |l| {
            let svc = find(l, "Service", "frontend");
            svc["metadata"]["labels"] = json!({
                "app.kubernetes.io/managed-by": "Helm",
                "app.kubernetes.io/instance": "shop",
                "kustomize.toolkit.fluxcd.io/name": "apps",
                "kustomize.toolkit.fluxcd.io/namespace": "flux-system"});
            svc["metadata"]["annotations"] = json!({
                "meta.helm.sh/release-name": "shop",
                "meta.helm.sh/release-namespace": "corpus",
                "argocd.argoproj.io/tracking-id": "shop:/Service:corpus/frontend",
                "endpoints.kubernetes.io/last-change-trigger-time": "2026-01-01T00:00:00Z"});
        },
        &[],
    );
    // a setting under a Kubernetes domain, added by hand: drift
    check(
        |l| {
            find(l, "Service", "frontend")["metadata"]["annotations"] =
                json!({"service.beta.kubernetes.io/aws-load-balancer-internal": "true"})
        },
        &["Service/frontend modified unknown low metadata.annotations[\"service.beta.kubernetes.io/aws-load-balancer-internal\"]"],
    );
}

#[test]
fn secret_rotated_by_hand_is_high_and_redacted() {
    let mut live = live_values();
    // base64 of "rotated-token"
    find(&mut live, "Secret", "frontend-tls")["data"]["token"] = json!("cm90YXRlZC10b2tlbg==");
    let engine = engine();
    let st = index(&engine, live);
    let id = ResourceId::new(ENV, "", "Secret", Some("corpus"), "frontend-tls");
    let obs = engine.observe(&st, &id);
    let Presence::Both(c) = &obs.presence else {
        panic!("both sides present")
    };
    assert_eq!(c.drifted_paths(), vec!["data.token"]);
    assert_eq!(obs.severity, Severity::High);
    let shown = serde_json::to_string(&c.drifted).expect("serializes");
    for plain in [
        "rotated-token",
        "cm90YXRlZC10b2tlbg",
        "not-a-real-token",
        "bm90LWEtcmVhbC10b2tlbg",
    ] {
        assert!(!shown.contains(plain), "{plain} leaked in {shown}");
    }
    // the normalized live object keeps no plaintext either, last-applied included
    let l = st.live.get(&id).expect("tracked");
    let all = format!("{:?} {:?}", l.object.content, l.last_applied);
    assert!(!all.contains("not-a-real-token"), "{all}");
}

#[test]
fn deleted_object_is_missing() {
    check(
        |l| l.retain(|v| !(v["kind"] == "ConfigMap" && v["metadata"]["name"] == "frontend-config")),
        &["ConfigMap/frontend-config missing medium"],
    );
}

#[test]
fn objects_created_by_hand_are_orphans() {
    check(
        |l| {
            // in a namespace Git manages: no tracking label needed
            l.push(json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "hand-made", "namespace": "corpus", "uid": "u1"},
                "data": {"a": "b"}}));
            // elsewhere: only with DriftGuard's tracking label
            l.push(json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "tracked", "namespace": "other",
                    "labels": {"driftguard.io/tracked": "true"}}}));
            l.push(json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "untracked", "namespace": "other"}}));
            // controller-made objects are not orphans
            l.push(json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "owned", "namespace": "corpus",
                    "ownerReferences": [{"kind": "X", "name": "y", "uid": "z"}]}}));
        },
        &[
            "ConfigMap/hand-made orphan medium",
            "ConfigMap/tracked orphan medium",
        ],
    );
}

#[test]
fn custom_resource_changed_but_schema_default_ignored() {
    check(
        |l| find(l, "Widget", "blue")["spec"]["color"] = json!("red"),
        &["Widget/blue modified forward medium spec.color"],
    );
}

#[test]
fn rbac_rules_widened() {
    check(
        |l| {
            find(l, "Role", "config-reader")["rules"][0]["verbs"] =
                json!(["get", "list", "watch", "update"])
        },
        // applied server-side: no last-applied annotation, no history: direction unknown
        &["Role/config-reader modified unknown high rules"],
    );
}

#[test]
fn privileged_container_is_critical() {
    check(
        |l| {
            find(l, "Deployment", "frontend")["spec"]["template"]["spec"]["containers"][1]
                ["securityContext"] = json!({"privileged": true})
        },
        &["Deployment/frontend modified forward critical spec.template.spec.containers[sidecar].securityContext.privileged"],
    );
}

#[test]
fn quantities_written_differently_are_equal() {
    check(
        |l| {
            let r = &mut find(l, "Deployment", "frontend")["spec"]["template"]["spec"]
                ["containers"][0]["resources"];
            r["limits"]["memory"] = json!("1024Mi");
            r["limits"]["cpu"] = json!("1000m");
        },
        &[],
    );
}

#[test]
fn field_manager_attribution() {
    let mut live = live_values();
    let sts = find(&mut live, "StatefulSet", "cache");
    sts["spec"]["replicas"] = json!(4);
    sts["metadata"]["managedFields"] = json!([
        {"manager": "kubectl", "operation": "Apply", "time": "2026-11-25T17:36:45Z",
         "fieldsV1": {"f:spec": {"f:replicas": {}, "f:serviceName": {}}}},
        {"manager": "kubectl-scale", "operation": "Update", "subresource": "scale",
         "time": "2026-11-25T18:00:00Z", "fieldsV1": {"f:spec": {"f:replicas": {}}}}
    ]);
    let engine = engine();
    let st = index(&engine, live);
    let id = ResourceId::new(ENV, "apps", "StatefulSet", Some("corpus"), "cache");
    let obs = engine.observe(&st, &id);
    assert_eq!(obs.owners.len(), 1);
    assert_eq!(obs.owners[0].manager, "kubectl-scale");
    assert_eq!(obs.owners[0].subresource, "scale");
}

#[test]
fn client_side_apply_is_not_blamed_for_a_forward_drift() {
    // on a 1.20 server `kubectl scale` leaves managedFields alone: the applier still owns
    // replicas, but it applied Git's value (the last-applied annotation equals Git)
    let mut live = live_values();
    let sts = find(&mut live, "StatefulSet", "cache");
    sts["spec"]["replicas"] = json!(4);
    sts["metadata"]["annotations"] = json!({
        "kubectl.kubernetes.io/last-applied-configuration":
            r#"{"apiVersion":"apps/v1","kind":"StatefulSet","metadata":{"annotations":{},"name":"cache","namespace":"corpus"},"spec":{"replicas":2,"selector":{"matchLabels":{"app":"cache"}},"serviceName":"cache","template":{"metadata":{"labels":{"app":"cache"}},"spec":{"containers":[{"image":"redis:7.2","name":"redis","ports":[{"containerPort":6379}]}]}},"volumeClaimTemplates":[{"metadata":{"name":"data"},"spec":{"accessModes":["ReadWriteOnce"],"resources":{"requests":{"storage":"2Gi"}}}}]}}"#});
    sts["metadata"]["managedFields"] = json!([
        {"manager": "kubectl-client-side-apply", "operation": "Update",
         "time": "2026-11-25T17:36:45Z", "fieldsV1": {"f:spec": {"f:replicas": {}}}}
    ]);
    let engine = engine();
    let st = index(&engine, live);
    let id = ResourceId::new(ENV, "apps", "StatefulSet", Some("corpus"), "cache");
    let obs = engine.observe(&st, &id);
    assert_eq!(obs.evidence, Some(Direction::Forward));
    assert!(obs.owners.is_empty(), "{:?}", obs.owners);
}

#[test]
fn ignore_rules_by_pointer_and_manager() {
    let mut live = live_values();
    let sts = find(&mut live, "StatefulSet", "cache");
    sts["spec"]["replicas"] = json!(4);
    sts["metadata"]["annotations"] = json!({"note": "x"});
    sts["metadata"]["managedFields"] = json!([
        {"manager": "autoscaler", "operation": "Update", "time": "2026-11-25T18:00:00Z",
         "fieldsV1": {"f:metadata": {"f:annotations": {"f:note": {}}}}}
    ]);
    let mut spec = EnvironmentSpec::new(ENV);
    spec.ignore = serde_json::from_value(json!({"rules": [
        {"kind": "StatefulSet", "jsonPointers": ["/spec/replicas"]},
        {"kind": "Stateful*", "managedFieldsManagers": ["autoscaler"]}
    ]}))
    .expect("valid rules");
    let engine = Engine::new(spec, Normalizer::new(SecretKey::new(b"k".to_vec())));
    let st = index(&engine, live);
    assert_eq!(verdicts(&engine, &st), Vec::<String>::new());
}

/// The corpus as manifests that name no namespace would give it (`kubectl apply -n corpus`).
fn desired_without_namespaces() -> (DesiredSet, usize) {
    let mut set = desired();
    let mut stripped = 0;
    for m in &mut set.objects {
        let mut v = m.object.clone().into_value();
        if let Some(md) = v["metadata"].as_object_mut() {
            stripped += usize::from(md.remove("namespace").is_some());
        }
        m.object = RawObject::new(v);
    }
    (set, stripped)
}

fn engine_in(default_namespace: &str) -> Engine {
    let mut spec = EnvironmentSpec::new(ENV);
    spec.default_namespace = Some(default_namespace.to_owned());
    Engine::new(
        spec,
        Normalizer::new(SecretKey::new(b"corpus-key".to_vec())),
    )
}

#[test]
fn manifests_without_a_namespace_are_in_the_default_one() {
    let (set, stripped) = desired_without_namespaces();
    assert!(stripped >= 15, "the corpus names its namespace: {stripped}");
    let mut live = live_values();
    // the HPA still owns the replicas of its target, found in the default namespace
    find(&mut live, "Deployment", "frontend")["spec"]["replicas"] = json!(7);
    let snapshot = LiveSnapshot {
        served: Vec::new(),
        objects: live.into_iter().map(RawLive::new).collect(),
        ..LiveSnapshot::default()
    };
    let engine = engine_in("corpus");
    let st = engine.index(&set, &snapshot);
    assert!(st.errors.is_empty(), "{:?}", st.errors);
    assert_eq!(verdicts(&engine, &st), Vec::<String>::new());
    // cluster-scoped kinds stay without a namespace, the custom resource gets one (its CRD
    // in Git says it is namespaced)
    let namespace_of = |kind: &str| {
        st.desired
            .keys()
            .find(|id| id.kind == kind)
            .unwrap_or_else(|| panic!("{kind} in Git"))
            .namespace
            .clone()
    };
    assert_eq!(namespace_of("Namespace"), None);
    assert_eq!(namespace_of("CustomResourceDefinition"), None);
    assert_eq!(namespace_of("Widget").as_deref(), Some("corpus"));
    assert_eq!(namespace_of("Deployment").as_deref(), Some("corpus"));

    // applied to another namespace than the one configured: every namespaced object is
    // missing, the cluster-scoped ones are not
    let engine = engine_in("elsewhere");
    let st = engine.index(&set, &snapshot);
    let missing = verdicts(&engine, &st)
        .into_iter()
        .filter(|v| v.contains(" missing "))
        .count();
    assert_eq!(
        missing,
        st.desired.len() - 2,
        "{:#?}",
        verdicts(&engine, &st)
    );
}

/// A cluster-scoped object whose manifest carries a namespace (charts often template one onto
/// every object) is the cluster's object of that name, as kubectl, Helm and the API server take
/// it: found live, in sync, never missing.
#[test]
fn a_namespace_on_a_cluster_scoped_manifest_is_ignored() {
    let (mut set, _) = desired_without_namespaces();
    for m in &mut set.objects {
        let mut v = (*m.object.0).clone();
        v["metadata"]["namespace"] = json!("corpus");
        m.object = RawObject::new(v);
    }
    let snapshot = LiveSnapshot {
        served: Vec::new(),
        objects: live_values().into_iter().map(RawLive::new).collect(),
        ..LiveSnapshot::default()
    };
    let engine = engine_in("corpus");
    let st = engine.index(&set, &snapshot);
    assert!(st.errors.is_empty(), "{:?}", st.errors);
    assert_eq!(verdicts(&engine, &st), Vec::<String>::new());
    let cluster_scoped: Vec<_> = st
        .desired
        .keys()
        .filter(|id| matches!(id.kind.as_str(), "Namespace" | "CustomResourceDefinition"))
        .collect();
    assert_eq!(cluster_scoped.len(), 2);
    assert!(cluster_scoped.iter().all(|id| id.namespace.is_none()));
}

/// The empty-collection corpus with `mutate` applied to the live side (and `edit` to Git):
/// every verdict, as in [`check`].
fn check_empty(
    edit: impl FnOnce(&mut DesiredSet),
    mutate: impl FnOnce(&mut Vec<Value>),
    expect: &[&str],
) {
    let mut desired = desired_in(empty_fixtures());
    edit(&mut desired);
    let mut live = live_values_in(empty_fixtures());
    mutate(&mut live);
    let engine = Engine::new(
        EnvironmentSpec::new(ENV),
        Normalizer::new(SecretKey::new(b"corpus-key".to_vec())),
    );
    let st = index_in(&engine, &desired, live);
    assert!(st.errors.is_empty(), "{:?}", st.errors);
    assert_eq!(st.desired.len(), 10, "every manifest read");
    assert_eq!(verdicts(&engine, &st), expect);
}

/// Changes the manifest `kind`/`name` in Git.
fn edit_desired(set: &mut DesiredSet, kind: &str, name: &str, f: impl FnOnce(&mut Value)) {
    let m = set
        .objects
        .iter_mut()
        .find(|m| m.object.0["kind"] == kind && m.object.0["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{kind}/{name} in Git"));
    let mut v = m.object.clone().into_value();
    f(&mut v);
    m.object = RawObject::new(v);
}

#[test]
fn empty_collections_and_values_as_the_api_server_returns_them_are_no_drift() {
    // `rules: []` came back `rules: null`, `subjects: []` and a Deployment's `env: []`,
    // `volumes: []`, `tolerations: []`, `args: []`, `ports: []`, `nodeSelector: {}`,
    // `annotations: {}` came back absent; `data: {}` too; ConfigMap and Secret values written
    // `key:` (null) came back `""`
    check_empty(|_| {}, |_| {}, &[]);
}

#[test]
fn the_live_side_says_null_where_the_server_drops_a_collection() {
    // a client may read `rules: null` as it is, or drop it: the same
    check_empty(
        |_| {},
        |l| {
            let role = find(l, "Role", "nothing");
            role["rules"] = Value::Null;
            let deploy = find(l, "Deployment", "api");
            deploy["spec"]["template"]["spec"]["tolerations"] = Value::Null;
        },
        &[],
    );
}

#[test]
fn a_non_empty_list_live_is_drift_against_an_empty_one_in_git() {
    check_empty(
        |_| {},
        |l| {
            find(l, "ClusterRole", "dg-rules-empty-nothing")["rules"] =
                json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]);
            let c = &mut find(l, "Deployment", "api")["spec"]["template"]["spec"];
            c["tolerations"] = json!([{"operator": "Exists"}]);
            c["containers"][0]["args"] = json!(["--debug"]);
            c["containers"][0]["env"] = json!([{"name": "DEBUG", "value": "1"}]);
            find(l, "RoleBinding", "nobody")["subjects"] =
                json!([{"kind": "User", "name": "mallory", "apiGroup": "rbac.authorization.k8s.io"}]);
        },
        // applied client-side: the last-applied annotation equals Git, so live moved
        &[
            "Deployment/api modified forward medium spec.template.spec.containers[api].args,spec.template.spec.containers[api].env[DEBUG],spec.template.spec.tolerations",
            "ClusterRole/dg-rules-empty-nothing modified forward high rules",
            "RoleBinding/nobody modified forward high subjects",
        ],
    );
}

#[test]
fn empty_and_null_values_differ_from_set_ones() {
    check_empty(
        |_| {},
        |l| {
            // values set by hand where Git has `""` or `key:` (null)
            find(l, "ConfigMap", "empty-values")["data"]["blank"] = json!("set-by-hand");
            find(l, "ConfigMap", "empty-values")["data"]["empty"] = json!("x");
            // base64 of "x"
            find(l, "Secret", "empty-values")["data"]["blank"] = json!("eA==");
            find(l, "Secret", "empty-string-data")["data"]["empty"] = json!("eA==");
            // a key added where Git has `data: {}`
            find(l, "ConfigMap", "no-data")["data"] = json!({"added": ""});
        },
        &[
            "ConfigMap/empty-values modified forward medium data.blank,data.empty",
            "ConfigMap/no-data modified forward medium data.added",
            "Secret/empty-string-data modified forward high data.empty",
            "Secret/empty-values modified forward high data.blank",
        ],
    );
    // and a value emptied live where Git sets one
    check_empty(
        |_| {},
        |l| {
            find(l, "ConfigMap", "empty-values")["data"]["set"] = json!("");
            find(l, "Secret", "empty-values")["data"]["set"] = Value::Null;
        },
        &[
            "ConfigMap/empty-values modified forward medium data.set",
            "Secret/empty-values modified forward high data.set",
        ],
    );
}

#[test]
fn an_empty_list_inside_a_list_compared_whole_is_absent_too() {
    // the API server drops `resourceNames: []` inside a rule: the rule list still agrees
    check_empty(
        |d| {
            edit_desired(d, "Role", "nothing", |v| {
                v["rules"] = json!([{"apiGroups": [""], "resources": ["configmaps"],
                    "verbs": ["get"], "resourceNames": []}]);
            })
        },
        |l| {
            find(l, "Role", "nothing")["rules"] =
                json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]);
        },
        &[],
    );
    check_empty(
        |d| {
            edit_desired(d, "Role", "nothing", |v| {
                v["rules"] = json!([{"apiGroups": [""], "resources": ["configmaps"],
                    "verbs": ["get"], "resourceNames": []}]);
            })
        },
        |l| {
            find(l, "Role", "nothing")["rules"] = json!([{"apiGroups": [""],
                "resources": ["configmaps"], "verbs": ["get"], "resourceNames": ["one"]}]);
        },
        // the last-applied annotation holds the rules as first applied: Git moved from them,
        // and so did the cluster
        &["Role/nothing modified conflict high rules"],
    );
}

#[test]
fn an_in_sync_empty_list_keeps_a_baseline_so_later_changes_have_a_direction() {
    let desired = desired_in(empty_fixtures());
    let engine = Engine::new(
        EnvironmentSpec::new(ENV),
        Normalizer::new(SecretKey::new(b"corpus-key".to_vec())),
    );
    let id = ResourceId::new(
        ENV,
        "rbac.authorization.k8s.io",
        "ClusterRole",
        None,
        "dg-rules-empty-nothing",
    );
    let st = index_in(&engine, &desired, live_values_in(empty_fixtures()));
    let Presence::Both(before) = engine.observe(&st, &id).presence else {
        panic!("both sides")
    };
    assert!(before.in_sync());
    // `rules` is a compared leaf on both sides, with the same hash
    assert_eq!(before.desired_fields(), before.live_fields());
    assert!(!before.leaves.is_empty());
    let mut live = live_values_in(empty_fixtures());
    find(&mut live, "ClusterRole", "dg-rules-empty-nothing")["rules"] =
        json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]);
    let st = index_in(&engine, &desired, live);
    let Presence::Both(after) = engine.observe(&st, &id).presence else {
        panic!("both sides")
    };
    assert_eq!(after.drifted_paths(), vec!["rules"]);
    // the desired side did not move: only the live hash of `rules` changed
    assert_eq!(after.desired_fields(), before.desired_fields());
    assert_ne!(after.live_fields(), before.live_fields());
}

#[test]
fn a_volume_whose_empty_dir_became_a_host_path_is_drift() {
    // `emptyDir: {}` is the one empty map whose presence is its meaning: the API server keeps
    // it, and its absence live means another volume source took its place
    check(
        |l| {
            let v = &mut find(l, "Deployment", "frontend")["spec"]["template"]["spec"]["volumes"]
                [0];
            v.as_object_mut().expect("a volume").remove("emptyDir");
            v["hostPath"] = json!({"path": "/var/run/docker.sock", "type": ""});
        },
        &["Deployment/frontend modified forward medium spec.template.spec.volumes[cache].emptyDir"],
    );
}
