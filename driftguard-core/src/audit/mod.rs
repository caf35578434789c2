//! Who, by name: attribution from the Kubernetes audit log.
//!
//! `managedFields` names a tool (`kubectl-edit`), not a person, and a 1.20 API server records
//! no manager at all for a `kubectl scale`. The API server's audit log names the user, the
//! groups, the user agent, the source address, the verb and the time of every write. This
//! module holds the rules that turn it into attribution, all pure:
//!
//! - `event`: the audit events as the API server writes them, metadata only (a request or
//!   response body is never read into memory, so a Secret's value is never held);
//! - `user`: people told apart from service accounts and the control plane's users, and what
//!   is kept of a person's name ([`UserNames`]: keep, hash with the Secret key, drop);
//! - `index`: a bounded index of recent writes per object (size and age limits), with what a
//!   store keeps of it ([`AuditSnapshot`]) and how far audit log files were read
//!   ([`AuditCursor`]);
//! - `attribute`: the matching rule: the writes that touched a drifted object since it last
//!   agreed with Git, matched with `managedFields` by time and manager, so that each field
//!   owner gains its user.
//!
//! - `cloud`: the same for a cloud's own trail (AWS CloudTrail): the writes of a Terraform
//!   resource changed outside Terraform, as [`AuditWrite`]s.
//!
//! Adapters receive the events (the server's webhook endpoint, the audit log reader of
//! `driftguard-sources`) and hand them to [`crate::scanner::Scanner::ingest_audit`].

mod attribute;
mod cloud;
mod event;
mod index;
mod user;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use attribute::{
    attributable, attribute, merge_writers, window_start, AuditEvidence, AuditFinding, MAX_WRITERS,
    SKEW, TIME_TOLERANCE,
};
pub use cloud::{cloud_evidence, cloud_queries, CloudEvent, CloudWriteQuery, CloudWrites};
pub use event::{
    parse_event_line, parse_event_list, user_agent_product, AuditError, AuditEvent, EventList,
    ObjectReference, ResponseStatus, UserInfo, AUDIT_API_VERSIONS, WRITE_VERBS,
};
pub use index::{AuditCursor, AuditIndex, AuditLimits, AuditSnapshot, IngestStats, ObjectWrites};
pub use user::{classify, hash_name, AuditUser, UserClass, UserNames, HASHED_NAME_PREFIX};

use crate::id::ResourceId;
use crate::normalize::Normalizer;

/// The audit settings of an environment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditSpec {
    /// What is kept of a person's name.
    #[serde(default)]
    pub user_names: UserNames,
    /// The index's limits.
    #[serde(default)]
    pub limits: AuditLimits,
}

/// An object as the audit log names it: API group, resource (plural), namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AuditObject {
    /// API group (empty for the core group).
    pub group: String,
    /// Resource, plural and lower-case (`deployments`).
    pub resource: String,
    /// Namespace (`None` for cluster-scoped objects).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

impl AuditObject {
    /// The object a drift is about, named as the audit log names it (the resource is the
    /// kind's plural, see [`resource_for_kind`]).
    pub fn of(id: &ResourceId) -> Self {
        AuditObject {
            group: id.group.clone(),
            resource: resource_for_kind(&id.kind),
            namespace: id.namespace.clone(),
            name: id.name.clone(),
        }
    }

    /// The object an audit event names, if it names one.
    pub fn from_ref(r: &ObjectReference) -> Option<Self> {
        (!r.resource.is_empty() && !r.name.is_empty()).then(|| AuditObject {
            group: r.api_group.clone(),
            resource: r.resource.clone(),
            namespace: Some(r.namespace.clone()).filter(|n| !n.is_empty()),
            name: r.name.clone(),
        })
    }

    /// A key unique within an environment (`apps/deployments/shop/web`), for stores.
    pub fn key(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.group,
            self.resource,
            self.namespace.as_deref().unwrap_or(""),
            self.name
        )
    }
}

/// The resource (plural) of a kind, as the API server names it for a kind without an
/// irregular plural: lower-case, `y` after a consonant becomes `ies`, `s` gets `es`, else `s`
/// (`Ingress` → `ingresses`, `NetworkPolicy` → `networkpolicies`, `Gateway` → `gateways`);
/// `Endpoints` stays `endpoints`. A custom resource with an irregular plural is not matched.
pub fn resource_for_kind(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    if lower.ends_with("endpoints") {
        return lower;
    }
    let b = lower.as_bytes();
    match b.last() {
        Some(b's') | Some(b'x') => format!("{lower}es"),
        Some(b'y') if b.len() > 1 && !b"aeiou".contains(&b[b.len() - 2]) => {
            format!("{}ies", &lower[..lower.len() - 1])
        }
        _ => format!("{lower}s"),
    }
}

/// One write to an object, as DriftGuard keeps it: who, with what, from where, when. Only
/// metadata; the privacy setting is applied before it is made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditWrite {
    /// The request's audit id (to find the full event in the API server's log).
    pub audit_id: String,
    /// When the API server received it.
    pub at: DateTime<Utc>,
    /// `create`, `update`, `patch` or `delete`.
    pub verb: String,
    /// The subresource written (`scale`), empty for the object itself.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subresource: String,
    /// Who.
    pub user: AuditUser,
    /// The field manager the write is recorded under (the `fieldManager` parameter, else the
    /// user agent's product: `kubectl-edit`, `kubectl`).
    #[serde(default)]
    pub manager: String,
    /// The user agent.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user_agent: String,
    /// The client's address (absent when the privacy setting does not keep it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
}

impl AuditWrite {
    /// The write an event records, with `names` applied, and the object it wrote; `None` for
    /// an event that is not a write DriftGuard keeps ([`AuditEvent::is_write`]).
    pub fn from_event(
        e: &AuditEvent,
        names: UserNames,
        normalizer: &Normalizer,
    ) -> Option<(AuditObject, AuditWrite)> {
        if !e.is_write() {
            return None;
        }
        let r = e.object_ref.as_ref()?;
        let object = AuditObject::from_ref(r)?;
        let user = AuditUser::from_info(&e.user, e.impersonated_user.as_ref(), names, normalizer);
        let source_ip = if user.keeps_address(names) {
            e.source_ips.first().cloned()
        } else {
            None
        };
        Some((
            object,
            AuditWrite {
                audit_id: e.audit_id.clone(),
                at: e.time()?,
                verb: e.verb.clone(),
                subresource: r.subresource.clone(),
                user,
                manager: e.field_manager(),
                user_agent: e.user_agent.chars().take(256).collect(),
                source_ip,
            },
        ))
    }

    /// What it was written with: the manager, and the subresource when there is one
    /// (`kubectl-edit`, `kubectl/scale`).
    pub fn via(&self) -> String {
        let manager = if self.manager.is_empty() {
            "unknown client"
        } else {
            &self.manager
        };
        if self.subresource.is_empty() {
            manager.to_owned()
        } else {
            format!("{manager}/{}", self.subresource)
        }
    }

    /// One line: `alice (kubectl-edit, patch, from 10.0.0.7) at 2024-05-01 12:03:04 UTC`.
    pub fn describe(&self) -> String {
        let mut s = format!("{} ({}, {}", self.user.display(), self.via(), self.verb);
        if self.user.class != UserClass::Person {
            s.push_str(", ");
            s.push_str(self.user.class.as_str());
        }
        if let Some(as_user) = &self.user.acting_as {
            s.push_str(", as ");
            s.push_str(as_user);
        }
        if let Some(ip) = &self.source_ip {
            s.push_str(", from ");
            s.push_str(ip);
        }
        s.push_str(") at ");
        s.push_str(&self.at.format("%Y-%m-%d %H:%M:%S UTC").to_string());
        s
    }
}

/// How long a write is kept by default (seven days).
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_of_kinds() {
        for (kind, resource) in [
            ("Deployment", "deployments"),
            ("ConfigMap", "configmaps"),
            ("Ingress", "ingresses"),
            ("NetworkPolicy", "networkpolicies"),
            ("StorageClass", "storageclasses"),
            ("Gateway", "gateways"),
            ("Endpoints", "endpoints"),
            ("EndpointSlice", "endpointslices"),
            ("Prometheus", "prometheuses"),
            ("HorizontalPodAutoscaler", "horizontalpodautoscalers"),
            ("PodSecurityPolicy", "podsecuritypolicies"),
        ] {
            assert_eq!(resource_for_kind(kind), resource, "{kind}");
        }
        let id = ResourceId::new("prod", "apps", "Deployment", Some("shop"), "web");
        let o = AuditObject::of(&id);
        assert_eq!(o.key(), "apps/deployments/shop/web");
        let r = ObjectReference {
            resource: "deployments".into(),
            namespace: "shop".into(),
            name: "web".into(),
            api_group: "apps".into(),
            api_version: "v1".into(),
            subresource: "scale".into(),
        };
        assert_eq!(AuditObject::from_ref(&r), Some(o));
    }
}
