//! Who writes which label and annotation keys, and so which are drift.
//!
//! Labels and annotations are compared as closed maps (a key added by hand is drift), except
//! keys that someone other than Git is expected to write:
//!
//! - **the API server and the built-in controllers**, by name
//!   ([`SERVER_WRITTEN`]: `deployment.kubernetes.io/revision`, a namespace's
//!   `kubernetes.io/metadata.name`, `pod-template-hash`, the bootstrap roles' marks, ...). Only
//!   these names: the `*.kubernetes.io/` domains also hold settings people write
//!   (`nginx.ingress.kubernetes.io/proxy-body-size`, `ingressclass.kubernetes.io/is-default-class`,
//!   `app.kubernetes.io/name`), which are compared like any other key;
//! - **the tool that applied the object** ([`TOOL_DOMAINS`]): Helm's release marks
//!   (`meta.helm.sh/*`), Argo CD's (`argocd.argoproj.io/*`, the tracking annotation), Flux's
//!   (`*.toolkit.fluxcd.io/*`), kapp and Carvel (`*.k14s.io/*`, `*.carvel.dev/*`), Rancher Fleet
//!   (`*.cattle.io/*`), Pulumi (`pulumi.com/*`), Skaffold (`skaffold.dev/*`), Spinnaker
//!   (`*.spinnaker.io/*`), kubectl's `kubernetes.io/change-cause`. The tool writes them on every
//!   apply; a hand edit of one is the tool's business (it puts it back, or re-adopts the
//!   object), not drift of the application;
//! - **a tool's label that Git does not set** ([`TOOL_LABELS_WHEN_UNSET`]): Argo CD's label
//!   tracking writes `app.kubernetes.io/instance`, Pulumi and Skaffold write
//!   `app.kubernetes.io/managed-by`. When Git sets the label (a Helm chart's templates do), it
//!   is compared.
//!
//! Both lists can be changed per environment ([`MetadataKeys`]): keys or domains to compare
//! anyway, and more tool domains. The last-applied annotation is kubectl's copy of the
//! manifest and never a key of its own ([`crate::secret::LAST_APPLIED`]).

use serde::{Deserialize, Serialize};

/// Keys the API server and the built-in controllers write (labels and annotations).
pub const SERVER_WRITTEN: &[&str] = &[
    // Deployments, ReplicaSets, DaemonSets, StatefulSets, Jobs and their pods
    "deployment.kubernetes.io/revision",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.daemonset.template.generation",
    "pod-template-hash",
    "controller-revision-hash",
    "statefulset.kubernetes.io/pod-name",
    "apps.kubernetes.io/pod-index",
    "batch.kubernetes.io/controller-uid",
    "batch.kubernetes.io/job-name",
    "batch.kubernetes.io/job-tracking",
    "batch.kubernetes.io/cronjob-scheduled-timestamp",
    "controller-uid",
    "job-name",
    // namespaces, service accounts, endpoints
    "kubernetes.io/metadata.name",
    "kubernetes.io/service-account.uid",
    "kubernetes.io/legacy-token-last-used",
    "kubernetes.io/legacy-token-invalid-since",
    "endpoints.kubernetes.io/last-change-trigger-time",
    "endpoints.kubernetes.io/managed-by",
    "endpointslice.kubernetes.io/managed-by",
    "kubernetes.io/service-name",
    "service.kubernetes.io/headless",
    // the API server's bootstrap RBAC, leader election, autoscaling's conversion marks
    "kubernetes.io/bootstrapping",
    "rbac.authorization.kubernetes.io/autoupdate",
    "control-plane.alpha.kubernetes.io/leader",
    "autoscaling.alpha.kubernetes.io/conditions",
    "autoscaling.alpha.kubernetes.io/current-metrics",
    // volumes
    "pv.kubernetes.io/bind-completed",
    "pv.kubernetes.io/bound-by-controller",
    "pv.kubernetes.io/provisioned-by",
    "pv.kubernetes.io/migrated-to",
    "volume.beta.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/selected-node",
    // nodes
    "node.alpha.kubernetes.io/ttl",
    "volumes.kubernetes.io/controller-managed-attach-detach",
];

/// Domains (the part of a key before `/`) that a deployment tool writes on what it applies: the
/// domain itself and its subdomains.
pub const TOOL_DOMAINS: &[&str] = &[
    "meta.helm.sh",
    "argocd.argoproj.io",
    "toolkit.fluxcd.io",
    "fluxcd.io",
    "k14s.io",
    "carvel.dev",
    "cattle.io",
    "pulumi.com",
    "skaffold.dev",
    "spinnaker.io",
];

/// Single keys a tool writes outside its own domain.
const TOOL_KEYS: &[&str] = &["kubernetes.io/change-cause"];

/// Labels a tool adds when Git does not set them.
pub const TOOL_LABELS_WHEN_UNSET: &[&str] =
    &["app.kubernetes.io/instance", "app.kubernetes.io/managed-by"];

/// Who is expected to write a label or annotation key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Writer {
    /// The API server or a built-in controller.
    Server,
    /// The tool that applied the object.
    Tool,
    /// Git (and so a person changing it by hand makes drift).
    Git,
}

/// Per-environment changes to the built-in lists (`metadataKeys` in the configuration).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct MetadataKeys {
    /// Keys, or domains (`example.com`, also matching its subdomains), compared even though a
    /// built-in list says the server or a tool writes them (`argocd.argoproj.io` to see hand
    /// edits of Argo CD's sync options as drift).
    pub compare: Vec<String>,
    /// More keys or domains that a tool of yours writes on what it applies: never drift.
    pub tool_owned: Vec<String>,
}

fn domain_matches(domain: &str, pattern: &str) -> bool {
    domain == pattern
        || domain
            .strip_suffix(pattern)
            .is_some_and(|rest| rest.ends_with('.'))
}

fn listed(key: &str, patterns: &[impl AsRef<str>]) -> bool {
    let domain = key.split_once('/').map(|(d, _)| d);
    patterns.iter().any(|p| {
        let p = p.as_ref();
        key == p || domain.is_some_and(|d| domain_matches(d, p))
    })
}

impl MetadataKeys {
    /// Who writes `key` of an object's labels or annotations.
    pub fn writer(&self, key: &str) -> Writer {
        if listed(key, &self.compare) {
            return Writer::Git;
        }
        if SERVER_WRITTEN.contains(&key) {
            return Writer::Server;
        }
        if TOOL_KEYS.contains(&key) || listed(key, TOOL_DOMAINS) || listed(key, &self.tool_owned) {
            return Writer::Tool;
        }
        Writer::Git
    }

    /// Whether `key` is left out of the comparison on both sides.
    pub fn dropped(&self, key: &str) -> bool {
        self.writer(key) != Writer::Git
    }

    /// Whether a label present live but not in Git is a tool's, not drift.
    pub fn tool_label_when_unset(&self, key: &str) -> bool {
        TOOL_LABELS_WHEN_UNSET.contains(&key) && !listed(key, &self.compare)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writers_by_name_not_by_domain() {
        let k = MetadataKeys::default();
        for key in [
            "deployment.kubernetes.io/revision",
            "kubernetes.io/metadata.name",
            "pod-template-hash",
        ] {
            assert_eq!(k.writer(key), Writer::Server, "{key}");
        }
        for key in [
            "meta.helm.sh/release-name",
            "argocd.argoproj.io/tracking-id",
            "kustomize.toolkit.fluxcd.io/name",
            "helm.toolkit.fluxcd.io/namespace",
            "kapp.k14s.io/association",
            "objectset.rio.cattle.io/hash",
            "pulumi.com/autonamed",
            "skaffold.dev/run-id",
            "moniker.spinnaker.io/application",
            "kubernetes.io/change-cause",
        ] {
            assert_eq!(k.writer(key), Writer::Tool, "{key}");
        }
        // settings people write, under the Kubernetes domains too
        for key in [
            "nginx.ingress.kubernetes.io/proxy-body-size",
            "ingressclass.kubernetes.io/is-default-class",
            "app.kubernetes.io/name",
            "app.kubernetes.io/instance",
            "cluster-autoscaler.kubernetes.io/safe-to-evict",
            "team",
            "example.com/owner",
            // a domain that only ends like a tool's
            "notpulumi.com/x",
            "helm.sh/resource-policy",
        ] {
            assert_eq!(k.writer(key), Writer::Git, "{key}");
        }
        assert!(k.tool_label_when_unset("app.kubernetes.io/instance"));
        assert!(!k.tool_label_when_unset("app.kubernetes.io/name"));
    }

    #[test]
    fn an_environment_changes_the_lists() {
        let k = MetadataKeys {
            compare: vec![
                "argocd.argoproj.io".into(),
                "app.kubernetes.io/instance".into(),
            ],
            tool_owned: vec!["example.com".into(), "team-x/rollout".into()],
        };
        assert_eq!(k.writer("argocd.argoproj.io/sync-wave"), Writer::Git);
        assert_eq!(k.writer("meta.helm.sh/release-name"), Writer::Tool);
        assert_eq!(k.writer("deploy.example.com/stamp"), Writer::Tool);
        assert_eq!(k.writer("team-x/rollout"), Writer::Tool);
        assert!(!k.tool_label_when_unset("app.kubernetes.io/instance"));
    }
}
