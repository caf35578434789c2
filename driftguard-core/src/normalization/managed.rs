//! `metadata.managedFields`: who owns which field.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::path::{glob_match, FieldPath};
use crate::state::Direction;

/// One entry of `metadata.managedFields`, with the owned fields turned into DriftGuard paths.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagedFieldsEntry {
    /// Field manager, e.g. `kubectl-edit`, `kubectl-client-side-apply`, `kube-controller-manager`.
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// Subresource (`scale`, `status`) or empty.
    #[serde(default)]
    pub subresource: String,
    /// When the manager last wrote.
    pub time: Option<DateTime<Utc>>,
    /// Paths owned.
    pub paths: Vec<FieldPath>,
}

/// Who owns a drifted field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldOwner {
    /// The drifted path.
    pub path: FieldPath,
    /// Field manager.
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// Subresource, if any.
    #[serde(default)]
    pub subresource: String,
    /// When it wrote.
    pub time: Option<DateTime<Utc>>,
    /// The audit id of the write that set the field, when the audit log names one (see
    /// [`crate::audit::attribute`]): the drift's attribution holds it among its writers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_id: Option<String>,
}

/// Reads `metadata.managedFields` of a live object.
pub fn parse_managed_fields(object: &Value) -> Vec<ManagedFieldsEntry> {
    match object.get("metadata").and_then(|m| m.get("managedFields")) {
        Some(list) => parse_managed_fields_list(list),
        None => Vec::new(),
    }
}

/// Reads a `managedFields` list.
pub fn parse_managed_fields_list(list: &Value) -> Vec<ManagedFieldsEntry> {
    let Some(entries) = list.as_array() else {
        return Vec::new();
    };
    entries
        .iter()
        .map(|e| {
            let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
            let mut paths = Vec::new();
            if let Some(fields) = e.get("fieldsV1") {
                let mut buf = FieldPath::new();
                collect_paths(fields, &mut buf, &mut paths);
            }
            ManagedFieldsEntry {
                manager: s("manager"),
                operation: s("operation"),
                subresource: s("subresource"),
                time: e
                    .get("time")
                    .and_then(Value::as_str)
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t.with_timezone(&Utc)),
                paths,
            }
        })
        .collect()
}

/// Walks a `fieldsV1` tree; every node whose children are empty (or that is marked `.`) is an
/// owned leaf.
fn collect_paths(node: &Value, buf: &mut FieldPath, out: &mut Vec<FieldPath>) {
    let Some(map) = node.as_object() else {
        return;
    };
    let children: Vec<_> = map.iter().filter(|(k, _)| k.as_str() != ".").collect();
    if children.is_empty() {
        if !buf.is_empty() {
            out.push(buf.clone());
        }
        return;
    }
    if map.contains_key(".") && !buf.is_empty() {
        out.push(buf.clone());
    }
    for (k, child) in children {
        let len = buf.len();
        if let Some(field) = k.strip_prefix("f:") {
            // a key of the normalized view, as the comparison prints it
            buf.push(field);
        } else if let Some(key) = k.strip_prefix("k:") {
            buf.push_item(&merge_key_from_json(key));
        } else if let Some(v) = k.strip_prefix("v:") {
            // set-like list items: the list is compared whole, so own the list itself
            let _ = v;
            if !out.contains(buf) && !buf.is_empty() {
                out.push(buf.clone());
            }
            continue;
        } else if k.starts_with("i:") {
            if !out.contains(buf) && !buf.is_empty() {
                out.push(buf.clone());
            }
            continue;
        } else {
            continue;
        }
        collect_paths(child, buf, out);
        buf.truncate(len);
    }
}

/// `{"containerPort":80,"protocol":"TCP"}` -> `80/TCP`; `{"name":"nginx"}` -> `nginx`.
/// Values are joined by `/` in the order of their key names, matching how
/// [`crate::normalize`] names keyed list items.
fn merge_key_from_json(json: &str) -> String {
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(json) else {
        return json.to_owned();
    };
    let parts: Vec<String> = map
        .values()
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect();
    parts.join("/")
}

/// The owners of `drifted` paths among `entries`: for each path the most recent manager whose
/// owned fields are the path, lie below it, or contain it.
pub fn owners_of(entries: &[ManagedFieldsEntry], drifted: &[FieldPath]) -> Vec<FieldOwner> {
    let mut out = Vec::new();
    for p in drifted {
        let best = entries
            .iter()
            .filter(|e| {
                e.paths
                    .iter()
                    .any(|owned| owned.is_within(p) || p.is_within(owned))
            })
            .max_by_key(|e| e.time);
        if let Some(e) = best {
            out.push(FieldOwner {
                path: p.clone(),
                manager: e.manager.clone(),
                operation: e.operation.clone(),
                subresource: e.subresource.clone(),
                time: e.time,
                audit_id: None,
            });
        }
    }
    out
}

/// Whether `path` is owned by one of `managers` (and by no other manager more recently).
pub fn owned_by_any(entries: &[ManagedFieldsEntry], managers: &[String], p: &FieldPath) -> bool {
    entries
        .iter()
        .filter(|e| {
            e.paths
                .iter()
                .any(|owned| p.is_within(owned) || owned.is_within(p))
        })
        .max_by_key(|e| e.time)
        .is_some_and(|e| managers.iter().any(|m| m == &e.manager))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_fields_v1() {
        let obj = json!({"metadata": {"managedFields": [
            {"manager": "kubectl-scale", "operation": "Update", "subresource": "scale",
             "time": "2026-11-25T17:40:00Z", "fieldsV1": {"f:spec": {"f:replicas": {}}}},
            {"manager": "kubectl-set", "operation": "Update", "time": "2026-11-25T17:41:00Z",
             "fieldsV1": {"f:spec": {"f:template": {"f:spec": {"f:containers": {
                "k:{\"name\":\"nginx\"}": {"f:image": {}},
                "k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:name": {}}}}}}}}
        ]}});
        let entries = parse_managed_fields(&obj);
        assert_eq!(entries[0].paths, vec!["spec.replicas"]);
        assert_eq!(entries[0].subresource, "scale");
        assert!(entries[1]
            .paths
            .contains(&"spec.template.spec.containers[nginx].image".into()));
        assert!(entries[1]
            .paths
            .contains(&"spec.template.spec.containers[80/TCP]".into()));
        let owners = owners_of(&entries, &["spec.replicas".into()]);
        assert_eq!(owners[0].manager, "kubectl-scale");
        assert!(owned_by_any(
            &entries,
            &["kubectl-set".to_owned()],
            &"spec.template.spec.containers[nginx].image".into()
        ));
    }
}

/// Field managers of the tools that apply Git's manifests, writing with `Update` (a
/// server-side `Apply` by any manager is an applier's write too): kubectl's client-side apply,
/// Helm, Argo CD, Flux, kapp, Rancher Fleet, Pulumi, Skaffold, Spinnaker, Terraform's
/// Kubernetes provider, and the API server's mark of fields a client-side apply owned before
/// the first server-side one (`before-first-apply`).
const APPLIERS: &[&str] = &[
    "kubectl-client-side-apply",
    "before-first-apply",
    "helm",
    "argocd*",
    "kustomize-controller",
    "helm-controller",
    "kapp*",
    "fleet*",
    "pulumi-kubernetes*",
    "skaffold*",
    "spinnaker*",
    "Terraform",
    "terraform*",
];

/// Field managers that write what a person types or clicks, as an `Update`: kubectl's commands
/// (`edit`, `patch`, `set`, `label`, `annotate`, `scale`, `rollout`, `replace`, `create`, and
/// `kubectl` itself), k9s, web consoles (`Mozilla`: the dashboard, Lens, Headlamp, Rancher's
/// UI). kubectl's client-side apply is an applier ([`APPLIERS`]).
const HAND_MANAGERS: &[&str] = &["kubectl*", "k9s*", "Mozilla*"];

/// Who a field manager is, by its name and operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ManagerKind {
    /// A person's tool: what it wrote was typed or clicked (`kubectl edit`, a web console).
    Person,
    /// A tool that applies Git's manifests (any server-side `Apply`, Helm, Argo CD, Flux, ...).
    Applier,
    /// Anything else writing with `Update`: a controller or operator maintaining the object
    /// (the built-in ones, cert-manager's injector, an autoscaler, a policy engine's
    /// background mutation).
    Controller,
}

impl ManagerKind {
    /// The word shown beside the manager.
    pub fn as_str(self) -> &'static str {
        match self {
            ManagerKind::Person => "person",
            ManagerKind::Applier => "applier",
            ManagerKind::Controller => "controller",
        }
    }
}

/// Who the field manager `manager` writing with `operation` is. `people` are more globs of
/// people's tools (an environment's own, see `findings.peopleManagers`).
pub fn manager_kind(manager: &str, operation: &str, people: &[String]) -> ManagerKind {
    let matches = |g: &str| glob_match(g, manager);
    if operation == "Apply" || APPLIERS.iter().any(|g| matches(g)) {
        ManagerKind::Applier
    } else if HAND_MANAGERS.iter().any(|g| matches(g)) || people.iter().any(|g| matches(g)) {
        ManagerKind::Person
    } else {
        ManagerKind::Controller
    }
}

/// Whether an entry is a person's write by hand.
pub fn by_hand(manager: &str, operation: &str) -> bool {
    manager_kind(manager, operation, &[]) == ManagerKind::Person
}

impl FieldOwner {
    /// Who the owner is.
    pub fn kind(&self) -> ManagerKind {
        manager_kind(&self.manager, &self.operation, &[])
    }
}

#[cfg(test)]
mod kind_tests {
    use super::*;

    #[test]
    fn managers_by_who_they_are() {
        let kind = |m: &str, op: &str| manager_kind(m, op, &[]);
        for (m, op) in [
            ("kubectl-edit", "Update"),
            ("kubectl-patch", "Update"),
            ("kubectl", "Update"),
            ("kubectl-label", "Update"),
            ("k9s", "Update"),
            ("Mozilla", "Update"),
        ] {
            assert_eq!(kind(m, op), ManagerKind::Person, "{m}");
        }
        for (m, op) in [
            ("kubectl", "Apply"),
            ("kubectl-client-side-apply", "Update"),
            ("helm", "Update"),
            ("argocd-controller", "Apply"),
            ("argocd-application-controller", "Update"),
            ("kustomize-controller", "Apply"),
            ("before-first-apply", "Update"),
            ("some-operator", "Apply"),
        ] {
            assert_eq!(kind(m, op), ManagerKind::Applier, "{m}");
        }
        for m in [
            "kube-controller-manager",
            "cert-manager-cainjector",
            "vpa-updater",
            "kyverno",
            "kube-apiserver",
        ] {
            assert_eq!(kind(m, "Update"), ManagerKind::Controller, "{m}");
        }
        assert_eq!(
            manager_kind("acme-deploy", "Update", &["acme-*".to_owned()]),
            ManagerKind::Person
        );
    }
}

/// Which side moved, as `managedFields` tell it when nothing else does (a first scan of an
/// object applied server-side, which has no last-applied annotation): the applier is the
/// newest server-side `Apply` of the object itself. A drifted field whose newest owner is a
/// hand write after that apply moved live; one the applier still owns holds what was applied,
/// so Git moved. Every drifted field one way gives that direction; both ways, a conflict;
/// a drifted field owned by someone else (a controller) or no apply at all, no evidence.
pub fn direction_from_owners(
    entries: &[ManagedFieldsEntry],
    owners: &[FieldOwner],
    drifted: usize,
) -> Option<Direction> {
    let applier = entries
        .iter()
        .filter(|e| e.operation == "Apply" && e.subresource.is_empty())
        .max_by_key(|e| e.time)?;
    if owners.len() != drifted || owners.is_empty() {
        return None;
    }
    let (mut live_moved, mut git_moved) = (false, false);
    for o in owners {
        if by_hand(&o.manager, &o.operation) && o.time >= applier.time {
            live_moved = true;
        } else if o.manager == applier.manager && o.operation == "Apply" {
            git_moved = true;
        } else {
            return None;
        }
    }
    Some(match (live_moved, git_moved) {
        (true, true) => Direction::Conflict,
        (true, false) => Direction::Forward,
        _ => Direction::Reverse,
    })
}

#[cfg(test)]
mod direction_tests {
    use super::*;
    use chrono::TimeZone;

    fn at(s: i64) -> Option<DateTime<Utc>> {
        Utc.timestamp_opt(1_700_000_000 + s, 0).single()
    }

    fn entry(manager: &str, operation: &str, time: i64, paths: &[&str]) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: manager.into(),
            operation: operation.into(),
            subresource: String::new(),
            time: at(time),
            paths: paths.iter().map(|p| FieldPath::parse(p)).collect(),
        }
    }

    #[test]
    fn hand_writes_after_the_apply_moved_live() {
        let applied = entry(
            "argocd-controller",
            "Apply",
            0,
            &["spec.replicas", "spec.template"],
        );
        let set = entry(
            "kubectl-set",
            "Update",
            60,
            &["spec.template.spec.containers[api].image"],
        );
        let entries = vec![applied.clone(), set];
        let drifted = ["spec.template.spec.containers[api].image".into()];
        let owners = owners_of(&entries, &drifted);
        assert_eq!(
            direction_from_owners(&entries, &owners, 1),
            Some(Direction::Forward)
        );
        // the applier still owns the drifted field: Git moved since
        let drifted = ["spec.replicas".into()];
        let owners = owners_of(&entries, &drifted);
        assert_eq!(
            direction_from_owners(&entries, &owners, 1),
            Some(Direction::Reverse)
        );
        // both
        let drifted = [
            "spec.replicas".into(),
            "spec.template.spec.containers[api].image".into(),
        ];
        let owners = owners_of(&entries, &drifted);
        assert_eq!(
            direction_from_owners(&entries, &owners, 2),
            Some(Direction::Conflict)
        );
        // a controller's write, or no server-side apply: no evidence
        let hpa = entry("kube-controller-manager", "Update", 90, &["spec.replicas"]);
        let entries2 = vec![applied, hpa];
        let owners = owners_of(&entries2, &["spec.replicas".into()]);
        assert_eq!(direction_from_owners(&entries2, &owners, 1), None);
        let csa = vec![entry(
            "kubectl-client-side-apply",
            "Update",
            0,
            &["spec.replicas"],
        )];
        let owners = owners_of(&csa, &["spec.replicas".into()]);
        assert_eq!(direction_from_owners(&csa, &owners, 1), None);
    }
}
