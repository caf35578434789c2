//! Which kinds are namespaced, so that a manifest without `metadata.namespace` gets the
//! namespace `kubectl apply -n <namespace>` would give it (see
//! [`crate::engine::EnvironmentSpec::default_namespace`]), and a cluster-scoped one stays
//! without.
//!
//! What is known, most trusted first: the API server's discovery (the cluster's own answer,
//! read by the live source, cached there per server version), a CustomResourceDefinition in
//! Git (`spec.scope`), the built-in list of the cluster-scoped kinds Kubernetes serves (up to
//! 1.37: the fallback where there is no discovery, such as a dump), and the live objects of the
//! kind (with a namespace or without). A kind nothing is known of is taken as namespaced, as
//! most are.

use serde_json::Value;

use crate::engine::FastMap;
use crate::id::GroupKind;
use crate::normalize::field;

/// The cluster-scoped kinds Kubernetes serves (1.20 to 1.37), as `(group, kind)`.
const CLUSTER_SCOPED: &[(&str, &str)] = &[
    ("", "ComponentStatus"),
    ("", "Namespace"),
    ("", "Node"),
    ("", "PersistentVolume"),
    (
        "admissionregistration.k8s.io",
        "MutatingWebhookConfiguration",
    ),
    (
        "admissionregistration.k8s.io",
        "ValidatingWebhookConfiguration",
    ),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
    (
        "admissionregistration.k8s.io",
        "ValidatingAdmissionPolicyBinding",
    ),
    ("admissionregistration.k8s.io", "MutatingAdmissionPolicy"),
    (
        "admissionregistration.k8s.io",
        "MutatingAdmissionPolicyBinding",
    ),
    ("authentication.k8s.io", "SelfSubjectReview"),
    ("certificates.k8s.io", "ClusterTrustBundle"),
    ("internal.apiserver.k8s.io", "StorageVersion"),
    ("networking.k8s.io", "IPAddress"),
    ("networking.k8s.io", "ServiceCIDR"),
    ("resource.k8s.io", "DeviceClass"),
    ("resource.k8s.io", "ResourceSlice"),
    ("storage.k8s.io", "VolumeAttributesClass"),
    ("storagemigration.k8s.io", "StorageVersionMigration"),
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ("apiregistration.k8s.io", "APIService"),
    ("authentication.k8s.io", "TokenReview"),
    ("authorization.k8s.io", "SelfSubjectAccessReview"),
    ("authorization.k8s.io", "SelfSubjectRulesReview"),
    ("authorization.k8s.io", "SubjectAccessReview"),
    ("certificates.k8s.io", "CertificateSigningRequest"),
    ("flowcontrol.apiserver.k8s.io", "FlowSchema"),
    ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"),
    ("networking.k8s.io", "IngressClass"),
    ("node.k8s.io", "RuntimeClass"),
    ("policy", "PodSecurityPolicy"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("scheduling.k8s.io", "PriorityClass"),
    ("storage.k8s.io", "CSIDriver"),
    ("storage.k8s.io", "CSINode"),
    ("storage.k8s.io", "StorageClass"),
    ("storage.k8s.io", "VolumeAttachment"),
];

/// What is known of the scope of kinds (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct Scopes {
    /// From the API server's discovery: namespaced or not.
    served: FastMap<GroupKind, bool>,
    /// From CustomResourceDefinitions in Git: namespaced or not.
    defined: FastMap<GroupKind, bool>,
    /// From live objects: namespaced or not.
    seen: FastMap<GroupKind, bool>,
}

impl Scopes {
    /// Learns the scope of the kind a CustomResourceDefinition defines (any other object is
    /// passed over).
    pub fn learn_definition(&mut self, object: &Value) {
        let Some(obj) = object.as_object() else {
            return;
        };
        fn s(v: Option<&Value>) -> Option<&str> {
            v.and_then(Value::as_str)
        }
        if s(field(obj, "kind")) != Some("CustomResourceDefinition") {
            return;
        }
        let spec = field(obj, "spec").and_then(Value::as_object);
        let group = spec.and_then(|sp| s(field(sp, "group")));
        let kind = spec
            .and_then(|sp| field(sp, "names"))
            .and_then(Value::as_object)
            .and_then(|n| s(field(n, "kind")));
        let scope = spec.and_then(|sp| s(field(sp, "scope")));
        if let (Some(group), Some(kind), Some(scope)) = (group, kind, scope) {
            self.defined
                .insert(GroupKind::new(group, kind), scope != "Cluster");
        }
    }

    /// Learns what the API server's discovery says of `kind`: the truth, where there is one.
    pub fn learn_served(&mut self, kind: &GroupKind, namespaced: bool) {
        self.served.insert(kind.clone(), namespaced);
    }

    /// Learns from a live object of `kind`: it has a namespace or not.
    pub fn learn_live(&mut self, kind: &GroupKind, has_namespace: bool) {
        if !self.seen.contains_key(kind) {
            self.seen.insert(kind.clone(), has_namespace);
        }
    }

    /// Whether objects of `group`/`kind` live in namespaces.
    pub fn namespaced(&self, group: &str, kind: &str) -> bool {
        let gk = GroupKind::new(group, kind);
        if let Some(&namespaced) = self.served.get(&gk) {
            return namespaced;
        }
        if let Some(&namespaced) = self.defined.get(&gk) {
            return namespaced;
        }
        if CLUSTER_SCOPED.contains(&(group, kind)) {
            return false;
        }
        self.seen.get(&gk).copied().unwrap_or(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn built_in_definitions_and_live_evidence() {
        let mut s = Scopes::default();
        assert!(s.namespaced("apps", "Deployment"));
        assert!(s.namespaced("", "ConfigMap"));
        assert!(!s.namespaced("", "Namespace"));
        assert!(!s.namespaced("rbac.authorization.k8s.io", "ClusterRole"));
        assert!(s.namespaced("rbac.authorization.k8s.io", "Role"));

        // a custom kind: unknown is namespaced, then the live side and Git's CRD say more
        assert!(s.namespaced("example.test", "Gadget"));
        s.learn_live(&GroupKind::new("example.test", "Gadget"), false);
        assert!(!s.namespaced("example.test", "Gadget"));
        s.learn_definition(&json!({"apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition", "metadata": {"name": "gadgets.example.test"},
            "spec": {"group": "example.test", "scope": "Namespaced",
                "names": {"kind": "Gadget", "plural": "gadgets"}}}));
        assert!(
            s.namespaced("example.test", "Gadget"),
            "Git's CRD is trusted before the objects"
        );
        // the API server's discovery is trusted first, over Git's CRD and the built-in list
        s.learn_served(&GroupKind::new("example.test", "Gadget"), false);
        assert!(!s.namespaced("example.test", "Gadget"));
        s.learn_served(&GroupKind::new("", "Namespace"), false);
        assert!(!s.namespaced("", "Namespace"));
        s.learn_definition(&json!({"kind": "CustomResourceDefinition",
            "spec": {"group": "example.test", "scope": "Cluster", "names": {"kind": "Fleet"}}}));
        assert!(!s.namespaced("example.test", "Fleet"));
        s.learn_definition(
            &json!({"kind": "ConfigMap", "spec": {"group": "x", "scope": "Cluster",
            "names": {"kind": "ConfigMap"}}}),
        );
        assert!(s.namespaced("x", "ConfigMap"), "only CRDs define scopes");
    }
}
