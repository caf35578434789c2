//! The Kubernetes ownership rules the engine applies: the replicas an HPA owns, the claims a
//! StatefulSet makes, and which live objects may count as orphans.

use serde_json::Value;

use crate::id::ResourceId;
use crate::model::{ObjectMeta, RawObject};
use crate::normalize::LiveObject;

use super::EnvState;
use crate::normalize::field;

/// The object an HPA scales; `default_ns` is the HPA's namespace when it sets none.
pub(super) fn hpa_target(
    env: &str,
    raw: &RawObject,
    default_ns: Option<&str>,
) -> Option<ResourceId> {
    if kind_of(raw) != Some("HorizontalPodAutoscaler") {
        return None;
    }
    let meta = raw.meta();
    if meta.kind != "HorizontalPodAutoscaler" || meta.group_kind().group != "autoscaling" {
        return None;
    }
    let target = raw.0.get("spec")?.get("scaleTargetRef")?;
    let target_meta = ObjectMeta {
        api_version: target
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or(""),
        kind: target.get("kind").and_then(Value::as_str)?,
        name: target.get("name").and_then(Value::as_str)?,
        namespace: meta.namespace.or(default_ns),
    };
    Some(target_meta.id(env))
}

/// Name prefixes of the claims a StatefulSet makes from its `volumeClaimTemplates`;
/// `default_ns` is the StatefulSet's namespace when it sets none.
pub(super) fn claim_prefixes(raw: &RawObject, default_ns: Option<&str>) -> Vec<(String, String)> {
    if kind_of(raw) != Some("StatefulSet") {
        return Vec::new();
    }
    let meta = raw.meta();
    if meta.kind != "StatefulSet" || meta.group_kind().group != "apps" {
        return Vec::new();
    }
    let Some(templates) = raw
        .0
        .get("spec")
        .and_then(|s| s.get("volumeClaimTemplates"))
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    let ns = meta.namespace.or(default_ns).unwrap_or("").to_owned();
    templates
        .iter()
        .filter_map(|t| t.get("metadata")?.get("name")?.as_str())
        .map(|t| (ns.clone(), format!("{t}-{}-", meta.name)))
        .collect()
}

pub(super) fn made_by_statefulset(st: &EnvState, id: &ResourceId) -> bool {
    if !(id.group.is_empty() && id.kind == "PersistentVolumeClaim") {
        return false;
    }
    let ns = id.namespace.clone().unwrap_or_default();
    st.claim_prefixes.iter().any(|(n, prefix)| {
        n == &ns
            && id
                .name
                .strip_prefix(prefix.as_str())
                .is_some_and(|ordinal| ordinal.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// Whether a live object that Git does not define may be an orphan: of an orphan kind, not
/// made by a StatefulSet, not a Helm hook, and tracked or unowned in a managed namespace.
pub(super) fn orphan_eligible(st: &EnvState, id: &ResourceId, live: &LiveObject) -> bool {
    if !st.orphan_kinds.contains(&id.group_kind()) || made_by_statefulset(st, id) || live.meta.hook
    {
        return false;
    }
    if live.meta.tracking {
        return true;
    }
    let managed_ns = id
        .namespace
        .as_ref()
        .is_some_and(|ns| st.managed_namespaces.contains(ns));
    managed_ns && !live.meta.owned && !live.meta.system_default
}

pub(super) fn kind_of(raw: &RawObject) -> Option<&str> {
    field(raw.0.as_object()?, "kind")?.as_str()
}
