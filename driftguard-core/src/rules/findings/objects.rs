//! Findings on whole objects and on metadata: labels and annotations only (cosmetic),
//! objects missing from the cluster, objects the cluster has and Git does not.

use super::*;

// ------------------------------------------------------------------ cosmetic

pub(super) fn metadata_only(ctx: &mut Ctx<'_>) {
    let labels = FieldPath::from_keys(["metadata", "labels"]);
    let annotations = FieldPath::from_keys(["metadata", "annotations"]);
    let all_meta = ctx
        .input
        .fields
        .iter()
        .all(|f| f.path.is_within(&labels) || f.path.is_within(&annotations));
    if all_meta {
        let n = ctx.input.fields.len();
        ctx.add(
            "metadata-only",
            FindingCategory::Cosmetic,
            Severity::Low,
            None,
            format!(
                "only labels or annotations differ ({n} field{}): no effect on what runs",
                if n == 1 { "" } else { "s" }
            ),
        );
    }
}

// ------------------------------------------------------------------ whole objects

pub(super) const WORKLOADS: &[(&str, &str)] = &[
    ("apps", "Deployment"),
    ("apps", "StatefulSet"),
    ("apps", "DaemonSet"),
    ("apps", "ReplicaSet"),
    ("batch", "Job"),
    ("batch", "CronJob"),
    ("", "Pod"),
];

pub(super) fn is_workload(id: &ResourceId) -> bool {
    WORKLOADS
        .iter()
        .any(|(g, k)| id.group == *g && id.kind == *k)
}

pub(super) fn missing_rules(ctx: &mut Ctx<'_>) {
    let id = ctx.input.id;
    let g = id.group.as_str();
    match (g, id.kind.as_str()) {
        ("networking.k8s.io", "NetworkPolicy") => ctx.add(
            "network-policy-removed",
            FindingCategory::Security,
            Severity::High,
            None,
            format!(
                "the NetworkPolicy `{}` is in Git but not in the cluster: the traffic it \
                 restricts is allowed",
                id.name
            ),
        ),
        ("policy", "PodDisruptionBudget") => ctx.add(
            "pdb-loosened",
            FindingCategory::Availability,
            Severity::Medium,
            None,
            format!(
                "the PodDisruptionBudget `{}` is in Git but not in the cluster: nothing limits \
                 voluntary disruptions",
                id.name
            ),
        ),
        ("", "Service") => ctx.add(
            "service-missing",
            FindingCategory::Availability,
            Severity::Medium,
            None,
            format!(
                "the Service `{}` is in Git but not in the cluster: its clients cannot reach it",
                id.name
            ),
        ),
        _ if is_workload(id) => {
            let replicas = ctx
                .desired()
                .and_then(|d| d.get("spec"))
                .and_then(|s| s.get("replicas"))
                .and_then(Value::as_i64);
            if replicas != Some(0) {
                ctx.add(
                    "workload-missing",
                    FindingCategory::Availability,
                    Severity::High,
                    None,
                    format!(
                        "the {} `{}` is in Git but not running in the cluster",
                        id.kind, id.name
                    ),
                );
            }
        }
        _ => {}
    }
}

pub(super) fn orphan_rules(ctx: &mut Ctx<'_>) {
    let id = ctx.input.id;
    let Some(live) = ctx.live().cloned() else {
        return;
    };
    match (id.group.as_str(), id.kind.as_str()) {
        (RBAC_GROUP, "RoleBinding" | "ClusterRoleBinding") => {
            let role = live
                .get("roleRef")
                .and_then(|r| r.get("name"))
                .and_then(Value::as_str)
                .unwrap_or("");
            let subs = subjects(live.get("subjects"));
            if role == "cluster-admin" {
                ctx.add(
                    "cluster-admin-binding",
                    FindingCategory::Security,
                    Severity::Critical,
                    None,
                    format!(
                        "the {} `{}`, not in Git, grants `cluster-admin` to {}",
                        id.kind,
                        id.name,
                        if subs.is_empty() {
                            "no one yet".to_owned()
                        } else {
                            subs.join(", ")
                        }
                    ),
                );
            } else {
                let critical = subs.iter().any(|s| everyone(s));
                ctx.add(
                    "rbac-subjects-added",
                    FindingCategory::Security,
                    if critical {
                        Severity::Critical
                    } else {
                        Severity::High
                    },
                    None,
                    format!(
                        "the {} `{}`, not in Git, grants `{role}` to {}",
                        id.kind,
                        id.name,
                        subs.join(", ")
                    ),
                );
            }
        }
        (RBAC_GROUP, "Role" | "ClusterRole") => {
            let all = grants(live.get("rules"));
            let wild: Vec<String> = all
                .iter()
                .filter(|g| g.dangerous())
                .take(8)
                .map(Grant::label)
                .collect();
            if !wild.is_empty() {
                ctx.add(
                    "rbac-widened",
                    FindingCategory::Security,
                    Severity::Critical,
                    None,
                    format!(
                        "the {} `{}`, not in Git, grants wildcards or escalation: {}",
                        id.kind,
                        id.name,
                        wild.join("; ")
                    ),
                );
            }
        }
        ("", "Service") => {
            let spec = live.get("spec");
            let ty = spec
                .and_then(|s| s.get("type"))
                .and_then(Value::as_str)
                .unwrap_or("ClusterIP");
            let ips = strings(spec.and_then(|s| s.get("externalIPs")));
            if matches!(ty, "LoadBalancer" | "NodePort") || !ips.is_empty() {
                ctx.add(
                    "service-exposed",
                    FindingCategory::Security,
                    Severity::High,
                    None,
                    format!(
                        "the Service `{}`, not in Git, is reachable from outside the cluster \
                         (type {ty}{})",
                        id.name,
                        if ips.is_empty() {
                            String::new()
                        } else {
                            format!(", external IPs {}", ips.join(", "))
                        }
                    ),
                );
            }
        }
        ("networking.k8s.io" | "extensions", "Ingress") => {
            let routes = ingress_routes(live.get("spec").and_then(|s| s.get("rules")));
            ctx.add(
                "ingress-widened",
                FindingCategory::Security,
                Severity::Medium,
                None,
                format!(
                    "the Ingress `{}`, not in Git, routes {}",
                    id.name,
                    if routes.is_empty() {
                        "to its default backend".to_owned()
                    } else {
                        routes.into_iter().collect::<Vec<_>>().join(", ")
                    }
                ),
            );
        }
        _ if is_workload(id) => orphan_pod_spec(ctx, &live),
        _ => {}
    }
}

/// The pod spec of a workload's content: `spec.template.spec`, `spec.jobTemplate.spec.
/// template.spec` or a Pod's `spec`.
pub(super) fn pod_spec<'v>(
    v: &'v Value,
    kind: &str,
) -> Option<(&'v Value, &'static [&'static str])> {
    let spec = v.get("spec")?;
    match kind {
        "Pod" => Some((spec, &["spec"])),
        "CronJob" => spec
            .get("jobTemplate")?
            .get("spec")?
            .get("template")?
            .get("spec")
            .map(|s| (s, &["spec", "jobTemplate", "spec", "template", "spec"][..])),
        _ => spec
            .get("template")?
            .get("spec")
            .map(|s| (s, &["spec", "template", "spec"][..])),
    }
}

/// A workload created by hand: judged on its pod spec alone.
pub(super) fn orphan_pod_spec(ctx: &mut Ctx<'_>, live: &Value) {
    let kind = ctx.input.id.kind.clone();
    let Some((spec, base)) = pod_spec(live, &kind) else {
        return;
    };
    let base = FieldPath::from_keys(base.iter().copied());
    for ns in ["hostNetwork", "hostPID", "hostIPC"] {
        if spec.get(ns).and_then(Value::as_bool) == Some(true) {
            ctx.add(
                "host-namespace",
                FindingCategory::Security,
                Severity::Critical,
                Some(&base.join(ns)),
                format!("a workload not in Git runs with `{ns}: true`"),
            );
        }
    }
    for (key, v) in spec
        .get("volumes")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        if v.get("hostPath").is_some() {
            ctx.add(
                "host-path",
                FindingCategory::Security,
                Severity::Critical,
                Some(&base.join("volumes").join(key)),
                format!(
                    "a workload not in Git mounts a path of the node (volume `{}`)",
                    item_name(key)
                ),
            );
        }
    }
    for list_name in ["initContainers", "containers"] {
        for (key, c) in spec
            .get(list_name)
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let at = base.join(list_name).join(key);
            let name = item_name(key);
            let sc = c.get("securityContext");
            if sc
                .and_then(|s| s.get("privileged"))
                .and_then(Value::as_bool)
                == Some(true)
            {
                ctx.add(
                    "privileged",
                    FindingCategory::Security,
                    Severity::Critical,
                    Some(&at.join("securityContext").join("privileged")),
                    format!("container `{name}` of a workload not in Git runs privileged"),
                );
            }
            if let Some(image) = c.get("image").and_then(Value::as_str) {
                if parse_image(image).mutable() {
                    ctx.add(
                        "image-mutable-tag",
                        FindingCategory::SupplyChain,
                        Severity::High,
                        Some(&at.join("image")),
                        format!(
                            "container `{name}` of a workload not in Git runs `{image}`, a mutable tag"
                        ),
                    );
                }
            }
        }
    }
}
