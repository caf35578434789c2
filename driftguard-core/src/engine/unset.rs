//! Hand changes to fields Git does not set.
//!
//! The desired subset compares only what Git sets, so a field a person adds by hand where Git
//! says nothing (a Service's `type: LoadBalancer`, a toleration, container limits) would never
//! show: `kubectl diff` and Argo CD do not see it either. `managedFields` do: the API server
//! records which manager owns each field. A field whose newest owner is a person's write by
//! hand ([`managed::by_hand`]: `kubectl edit`/`patch`/`set`/`scale`/..., k9s, a web console),
//! that Git does not set, and that the object still has, is drift: Git's value is absent, the
//! live value is shown. Fields controllers and the API server maintain are owned by them, not
//! by a hand manager, so they never count.
//!
//! Left to the comparison: fields Git sets (compared already), closed maps (labels,
//! annotations, data, env, securityContext: every key is compared), items of a keyed list Git
//! sets, and anything under `metadata` (the comparison's closed maps; owner references and
//! finalizers are controllers' business). A rollout restart's `restartedAt` annotation is a
//! restart, not configuration.
//!
//! One write leaves no owner: the scale subresource (`kubectl scale`, `PATCH .../scale`). The
//! API server's `ScaleHandler` (k8s.io/apimachinery `managedfields/scalehandler.go`) moves the
//! ownership of `spec.replicas` between the object and its scale, and a scale write to a
//! field nobody owned leaves it owned by nobody (seen on 1.35 and 1.37). Git's silence on
//! `spec.replicas` means the API server's default, 1: every applier (server-side apply,
//! kubectl's client-side apply, Helm's three-way merge) resets a field it stops setting. So a
//! Deployment, ReplicaSet, StatefulSet or ReplicationController whose manifest sets no
//! replicas, whose replicas no manager owns and differ from 1, was scaled by hand
//! ([`unowned_scale`]). An autoscaler also writes through the scale subresource: the replicas
//! of a HorizontalPodAutoscaler's target are not compared at all (`hpaOwnsReplicas`), so an
//! autoscaler in the environment's scope never counts; one outside it does (documented).

use serde_json::Value;

use crate::compare::FieldDiff;
use crate::doc::Node;
use crate::managed::{by_hand, manager_kind, owners_of, ManagedFieldsEntry, ManagerKind};
use crate::path::{FieldPath, Segment};

/// Maps whose every key the comparison already looks at.
const CLOSED: &[&str] = &[
    "labels",
    "annotations",
    "data",
    "binaryData",
    "env",
    "securityContext",
];

/// Values the API server gives a field Git leaves unset, by the field's name: a write by hand
/// that leaves such a value behaves as Git's silence does, so it is not drift. They matter
/// because `managedFields` credit the defaults a request caused to its manager: a Service
/// patched to `type: LoadBalancer` by `kubectl patch` also "owns" the
/// `externalTrafficPolicy: Cluster` the API server filled in.
const SERVER_DEFAULTS: &[(&str, &str)] = &[
    ("allocateLoadBalancerNodePorts", "true"),
    ("externalTrafficPolicy", "\"Cluster\""),
    ("internalTrafficPolicy", "\"Cluster\""),
    ("sessionAffinity", "\"None\""),
    ("ipFamilyPolicy", "\"SingleStack\""),
    ("terminationMessagePath", "\"/dev/termination-log\""),
    ("terminationMessagePolicy", "\"File\""),
    ("imagePullPolicy", "\"IfNotPresent\""),
    ("timeoutSeconds", "1"),
    ("periodSeconds", "10"),
    ("successThreshold", "1"),
    ("failureThreshold", "3"),
    ("dnsPolicy", "\"ClusterFirst\""),
    ("restartPolicy", "\"Always\""),
    ("schedulerName", "\"default-scheduler\""),
    ("terminationGracePeriodSeconds", "30"),
    ("revisionHistoryLimit", "10"),
    ("progressDeadlineSeconds", "600"),
    ("protocol", "\"TCP\""),
];

fn server_default(segments: &[Segment<'_>], value: &Value) -> bool {
    let Some(Segment::Key(name)) = segments.last() else {
        return false;
    };
    SERVER_DEFAULTS
        .iter()
        .any(|(k, v)| k == name && serde_json::from_str::<Value>(v).is_ok_and(|d| &d == value))
}

/// Kinds whose `spec.replicas` the scale subresource writes (group, kind).
const SCALED: &[(&str, &str)] = &[
    ("apps", "Deployment"),
    ("apps", "ReplicaSet"),
    ("apps", "StatefulSet"),
    ("", "ReplicationController"),
];

/// The API server's default of `spec.replicas` for the [`SCALED`] kinds.
const DEFAULT_REPLICAS: u64 = 1;

/// `spec.replicas` of `live` when it moved through the scale subresource without an owner (see
/// the module's notes): a kind the scale subresource serves, Git sets no replicas, live has
/// other than the default, and no manager owns the field. `managed` is read only when the
/// cheap checks pass.
pub(crate) fn unowned_scale(
    group: &str,
    kind: &str,
    desired: Node<'_>,
    live: Node<'_>,
    managed: impl FnOnce() -> Vec<ManagedFieldsEntry>,
) -> Option<FieldDiff> {
    if !SCALED.iter().any(|(g, k)| *g == group && *k == kind) {
        return None;
    }
    if desired
        .get("spec")
        .and_then(|s| s.get("replicas"))
        .is_some()
    {
        return None;
    }
    let value = live.get("spec")?.get("replicas")?.to_value();
    if value.as_u64() == Some(DEFAULT_REPLICAS) {
        return None;
    }
    const PATH: &str = "spec.replicas";
    // an owner of `spec` itself (`.`) owns the map's presence, not its fields
    let owned = managed().iter().any(|e| e.paths.iter().any(|p| p == PATH));
    (!owned).then(|| FieldDiff {
        path: PATH.into(),
        desired: None,
        live: Some(value),
    })
}

/// Whether `f` is a label or annotation that live has and Git does not set.
pub(crate) fn live_only_key(f: &FieldDiff) -> bool {
    if f.desired.is_some() {
        return false;
    }
    let segments: Vec<Segment<'_>> = f.path.segments().collect();
    matches!(
        segments.as_slice(),
        [.., Segment::Key(m), Segment::Key(map), Segment::Key(_)]
            if m == "metadata" && (map == "labels" || map == "annotations")
    )
}

/// Whether a label or annotation that live has and Git does not set was written by a
/// controller: the newest manager owning that very key is neither a person's tool nor an
/// applier ([`ManagerKind::Controller`]). Such keys are the controller's (cert-manager's
/// injector, a service mesh, an operator), not drift; [`crate::metadata`] names the API
/// server's own keys, which need no owner to be known. `people` are more globs of people's
/// tools.
pub(crate) fn controller_written(
    f: &FieldDiff,
    entries: &[ManagedFieldsEntry],
    people: &[String],
) -> bool {
    live_only_key(f)
        && entries
            .iter()
            .filter(|e| e.paths.contains(&f.path))
            .max_by_key(|e| e.time)
            .is_some_and(|e| {
                manager_kind(&e.manager, &e.operation, people) == ManagerKind::Controller
            })
}

/// Whether the raw `managedFields` of an object hold a write by hand (a cheap look before they
/// are read whole).
pub(crate) fn any_by_hand(raw: &Value) -> bool {
    raw.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .is_some_and(|entries| {
            entries.iter().any(|e| {
                let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("");
                by_hand(s("manager"), s("operation"))
            })
        })
}

/// The fields of `live` that a person wrote by hand and Git (`desired`) does not set, with
/// their live values, leaving out those `already` reported.
pub(crate) fn hand_changes(
    desired: Node<'_>,
    live: Node<'_>,
    entries: &[ManagedFieldsEntry],
    already: &[FieldDiff],
) -> Vec<FieldDiff> {
    let mut out: Vec<FieldDiff> = Vec::new();
    for e in entries.iter().filter(|e| by_hand(&e.manager, &e.operation)) {
        for p in &e.paths {
            let printed = p.as_str();
            if printed.starts_with("metadata")
                || printed.contains("kubectl.kubernetes.io/restartedAt")
            {
                continue;
            }
            // the newest owner of the field is this write
            let newest = owners_of(entries, std::slice::from_ref(p));
            if newest
                .first()
                .is_none_or(|o| o.manager != e.manager || o.time != e.time)
            {
                continue;
            }
            let related = |q: &FieldPath| q.is_within(p) || p.is_within(q);
            if already.iter().any(|f| related(&f.path)) || out.iter().any(|f| related(&f.path)) {
                continue;
            }
            let segments: Vec<Segment<'_>> = p.segments().collect();
            if git_covers(desired, &segments) {
                continue;
            }
            if let Some(v) = at(live, &segments).map(|v| v.to_value()) {
                if server_default(&segments, &v) {
                    continue;
                }
                out.push(FieldDiff {
                    path: p.clone(),
                    desired: None,
                    live: Some(v),
                });
            }
        }
    }
    out
}

fn child<'a>(node: Node<'a>, s: &Segment<'_>) -> Option<Node<'a>> {
    node.get(&s.map_key())
}

/// The node at `segments` of `node`.
fn at<'a>(node: Node<'a>, segments: &[Segment<'_>]) -> Option<Node<'a>> {
    segments.iter().try_fold(node, |n, s| child(n, s))
}

/// Whether the comparison already looks at the field: Git sets it or a field holding it that
/// is compared whole (a value, a list), or it lies in a closed map.
fn git_covers(desired: Node<'_>, segments: &[Segment<'_>]) -> bool {
    let mut node = desired;
    let mut last_key: Option<&str> = None;
    for s in segments {
        if !node.is_map() {
            return !node.is_null();
        }
        match child(node, s) {
            Some(next) => node = next,
            None => return last_key.is_some_and(|k| CLOSED.contains(&k)),
        }
        last_key = match s {
            Segment::Key(k) => Some(&**k),
            Segment::Item(_) => None,
        };
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::Doc;
    use chrono::{TimeZone, Utc};
    use serde_json::json;

    fn entry(manager: &str, op: &str, secs: i64, paths: &[&str]) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: manager.into(),
            operation: op.into(),
            subresource: String::new(),
            time: Utc.timestamp_opt(1_700_000_000 + secs, 0).single(),
            paths: paths.iter().map(|p| FieldPath::parse(p)).collect(),
        }
    }

    #[test]
    fn fields_a_person_set_where_git_says_nothing() {
        let desired = Doc::from_value(&json!({"spec": {"ports": {"[80/TCP]": {"port": 80}},
            "template": {"spec": {"containers": {"[app]": {"name": "app", "image": "a:1"}}}}}}));
        let live = Doc::from_value(&json!({"spec": {"type": "LoadBalancer",
            "ports": {"[80/TCP]": {"port": 80, "protocol": "TCP"}},
            "clusterIP": "10.0.0.9",
            "template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "now"}},
                "spec": {"tolerations": [{"key": "k", "operator": "Exists"}],
                "containers": {"[app]": {"name": "app", "image": "a:2",
                    "resources": {"limits": {"cpu": "1"}}}}}}}}));
        let entries = vec![
            entry(
                "argocd-controller",
                "Apply",
                0,
                &[
                    "spec.ports[80/TCP].port",
                    "spec.template.spec.containers[app].image",
                ],
            ),
            entry("kube-apiserver", "Update", 1, &["spec.clusterIP"]),
            entry("kubectl-patch", "Update", 10, &["spec.type"]),
            entry(
                "kubectl-edit",
                "Update",
                20,
                &["spec.template.spec.tolerations"],
            ),
            entry(
                "kubectl-set",
                "Update",
                30,
                &[
                    "spec.template.spec.containers[app].resources.limits.cpu",
                    "spec.template.spec.containers[app].image",
                ],
            ),
            entry(
                "kubectl-rollout",
                "Update",
                40,
                &["spec.template.metadata.annotations[\"kubectl.kubernetes.io/restartedAt\"]"],
            ),
        ];
        let already = vec![FieldDiff {
            path: "spec.template.spec.containers[app].image".into(),
            desired: Some(json!("a:1")),
            live: Some(json!("a:2")),
        }];
        let got = hand_changes(desired.root(), live.root(), &entries, &already);
        let paths: Vec<&str> = got.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "spec.type",
                "spec.template.spec.tolerations",
                "spec.template.spec.containers[app].resources.limits.cpu"
            ]
        );
        assert_eq!(got[0].live, Some(json!("LoadBalancer")));
        assert_eq!(got[0].desired, None);
        // the defaults a hand write made the API server fill in are not
        let live2 = Doc::from_value(&json!({"spec": {"type": "LoadBalancer",
            "externalTrafficPolicy": "Cluster", "allocateLoadBalancerNodePorts": true}}));
        let patch = vec![entry(
            "kubectl-patch",
            "Update",
            10,
            &[
                "spec.type",
                "spec.externalTrafficPolicy",
                "spec.allocateLoadBalancerNodePorts",
            ],
        )];
        let got = hand_changes(desired.root(), live2.root(), &patch, &[]);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].path, "spec.type");
        // a field the applier took back since is not a hand change any more
        let mut later = entries.clone();
        later.push(entry("argocd-controller", "Apply", 50, &["spec.type"]));
        let got = hand_changes(desired.root(), live.root(), &later, &already);
        assert!(got.iter().all(|f| f.path != "spec.type"), "{got:?}");
    }

    #[test]
    fn replicas_scaled_without_an_owner() {
        let git = Doc::from_value(&json!({"spec": {"template": {}}}));
        let scaled = Doc::from_value(&json!({"spec": {"replicas": 3}}));
        let applied = || vec![entry("kubectl", "Apply", 0, &["spec.template"])];
        let found = unowned_scale("apps", "Deployment", git.root(), scaled.root(), applied);
        assert_eq!(
            found.map(|f| (f.path.to_string(), f.live)),
            Some(("spec.replicas".to_owned(), Some(json!(3))))
        );
        // the default, a kind the scale subresource does not serve, Git setting replicas, or an
        // owner of the field: not this rule's
        let default = Doc::from_value(&json!({"spec": {"replicas": 1}}));
        assert!(unowned_scale("apps", "Deployment", git.root(), default.root(), applied).is_none());
        assert!(unowned_scale("", "ConfigMap", git.root(), scaled.root(), applied).is_none());
        let sets = Doc::from_value(&json!({"spec": {"replicas": 2}}));
        assert!(
            unowned_scale("apps", "StatefulSet", sets.root(), scaled.root(), applied).is_none()
        );
        let owned = || vec![entry("kubectl-edit", "Update", 5, &["spec.replicas"])];
        assert!(unowned_scale("apps", "ReplicaSet", git.root(), scaled.root(), owned).is_none());
        // owning `spec` itself is owning the map, not its replicas
        let spec = || vec![entry("helm", "Update", 5, &["spec"])];
        assert!(
            unowned_scale("", "ReplicationController", git.root(), scaled.root(), spec).is_some()
        );
    }

    #[test]
    fn keys_a_controller_wrote_are_its_own() {
        let key = |path: &str| FieldDiff {
            path: path.into(),
            desired: None,
            live: Some(json!("x")),
        };
        let injected = "metadata.annotations[\"cert-manager.io/inject-ca-from\"]";
        let team = "spec.template.metadata.labels.team";
        let entries = vec![
            entry(
                "helm",
                "Update",
                0,
                &["metadata.annotations", "spec.template"],
            ),
            entry("cert-manager-cainjector", "Update", 5, &[injected]),
            entry("kubectl-label", "Update", 9, &[team]),
        ];
        assert!(controller_written(&key(injected), &entries, &[]));
        assert!(!controller_written(&key(team), &entries, &[]));
        // a key Git sets is compared whatever wrote it; a field that is no key is not this rule's
        let mut set = key(injected);
        set.desired = Some(json!("y"));
        assert!(!controller_written(&set, &entries, &[]));
        assert!(!controller_written(
            &key("spec.type"),
            &[entry("svc-operator", "Update", 1, &["spec.type"])],
            &[]
        ));
        // an environment that names the tool a person's keeps it drift
        assert!(!controller_written(
            &key(injected),
            &entries,
            &["cert-manager-*".to_owned()]
        ));
        // the newest owner decides: a person who wrote over the controller's key
        let mut later = entries.clone();
        later.push(entry("kubectl-annotate", "Update", 20, &[injected]));
        assert!(!controller_written(&key(injected), &later, &[]));
    }
}
