//! What changed between two discoveries, while `serve` follows the cluster: which
//! environments are new, which changed (the same name, another configuration), which are
//! gone ([`changes`]), and which changes of the tools' objects are worth a discovery at all
//! ([`fingerprint`]). No IO: the server's `follow` module does the watching and the
//! starting and stopping.

use std::collections::{BTreeMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};

use serde_json::Value;

use crate::config::EnvironmentConfig;

/// How the discovered environments differ from the running ones.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Discovered now and not running: started, in the order discovered.
    pub added: Vec<String>,
    /// Running under the same name with another configuration: stopped, then started again
    /// with the new one (the history stays: it is the same environment).
    pub changed: Vec<String>,
    /// Running and not discovered any more: stopped (their history stays in the store).
    pub removed: Vec<String>,
    /// Running and not discovered this time, but kept: the discovery could not read
    /// everything (a kind forbidden, an object unreadable), so an absence proves nothing.
    pub kept: Vec<String>,
}

impl Changes {
    /// Whether nothing is to be started or stopped.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }
}

/// The difference between `running` (the discovered environments running now, by name, with
/// the configuration each was started with) and `found` (the environments a discovery made
/// now). With `complete` false (something could not be read) nothing is removed: a missing
/// environment is [kept](Changes::kept) until a complete discovery says it is gone.
pub fn changes<'a>(
    running: &BTreeMap<String, EnvironmentConfig>,
    found: impl IntoIterator<Item = &'a EnvironmentConfig>,
    complete: bool,
) -> Changes {
    let mut out = Changes::default();
    let mut seen: HashSet<&str> = HashSet::new();
    for env in found {
        if !seen.insert(env.name.as_str()) {
            // names are unique after `dedupe`; a repeat is not a second environment
            continue;
        }
        match running.get(&env.name) {
            None => out.added.push(env.name.clone()),
            Some(before) if before != env => out.changed.push(env.name.clone()),
            Some(_) => {}
        }
    }
    for name in running.keys().filter(|n| !seen.contains(n.as_str())) {
        if complete {
            out.removed.push(name.clone());
        } else {
            out.kept.push(name.clone());
        }
    }
    out
}

/// The parts of a tool's object (an Application, a Kustomization, a HelmRelease, a
/// GitRepository, a HelmChart) that the mapping reads, hashed: the labels and annotations
/// (filters, compare options), the `spec`, and the few `status` fields that change an
/// environment (Argo CD's source types and synced revisions, the revision Flux resolved).
/// The rest of `status` (health, sync state, conditions, reconcile times) changes all the
/// time and changes no environment: a watch event that leaves this value as it was is not
/// worth a discovery.
pub fn fingerprint(object: &Value) -> u64 {
    const READ: [&str; 8] = [
        "/metadata/labels",
        "/metadata/annotations",
        "/spec",
        "/status/sourceType",
        "/status/sourceTypes",
        "/status/sync/revision",
        "/status/sync/revisions",
        "/status/artifact/revision",
    ];
    let mut h = DefaultHasher::new();
    for pointer in READ {
        pointer.hash(&mut h);
        match object.pointer(pointer) {
            // serde_json's maps are ordered by key: the same value prints the same text
            Some(v) => v.to_string().hash(&mut h),
            None => 0u8.hash(&mut h),
        }
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::config::GitConfig;

    fn env(name: &str, path: &str) -> EnvironmentConfig {
        EnvironmentConfig {
            name: name.into(),
            git: Some(GitConfig {
                url: "https://git.example.com/apps.git".into(),
                path: Some(path.into()),
                ..GitConfig::default()
            }),
            ..EnvironmentConfig::default()
        }
    }

    fn running(envs: &[EnvironmentConfig]) -> BTreeMap<String, EnvironmentConfig> {
        envs.iter().map(|e| (e.name.clone(), e.clone())).collect()
    }

    #[test]
    fn new_changed_and_gone_environments_are_told_apart() {
        let before = running(&[
            env("argocd.shop", "shop"),
            env("argocd.cart", "cart"),
            env("flux.apps.podinfo", "podinfo"),
        ]);
        let now = [
            env("argocd.shop", "shop"),
            env("argocd.cart", "cart/v2"),
            env("argocd.search", "search"),
        ];
        assert_eq!(
            changes(&before, &now, true),
            Changes {
                added: vec!["argocd.search".into()],
                changed: vec!["argocd.cart".into()],
                removed: vec!["flux.apps.podinfo".into()],
                kept: vec![],
            }
        );
    }

    #[test]
    fn the_same_set_is_no_change() {
        let envs = [
            env("argocd.shop", "shop"),
            env("flux.apps.podinfo", "podinfo"),
        ];
        let c = changes(&running(&envs), &envs, true);
        assert!(c.is_empty(), "{c:?}");
        assert_eq!(c, Changes::default());
    }

    #[test]
    fn an_incomplete_discovery_removes_nothing() {
        let before = running(&[env("argocd.shop", "shop"), env("argocd.cart", "cart")]);
        let now = [
            env("argocd.shop", "shop/v2"),
            env("argocd.search", "search"),
        ];
        let c = changes(&before, &now, false);
        assert_eq!(c.added, ["argocd.search"]);
        assert_eq!(c.changed, ["argocd.shop"]);
        assert!(c.removed.is_empty());
        assert_eq!(c.kept, ["argocd.cart"]);
        assert!(!c.is_empty());
    }

    #[test]
    fn everything_is_new_at_first_and_gone_at_last() {
        let envs = [env("b", "b"), env("a", "a")];
        let c = changes(&BTreeMap::new(), &envs, true);
        // in the order discovered, not sorted
        assert_eq!(c.added, ["b", "a"]);
        let c = changes(&running(&envs), [], true);
        assert_eq!(c.removed, ["a", "b"]);
    }

    #[test]
    fn a_rename_is_a_removal_and_an_addition() {
        // a renamed Application is another environment, unless the name map keeps its name
        let c = changes(
            &running(&[env("argocd.shop", "shop")]),
            &[env("argocd.shop-v2", "shop")],
            true,
        );
        assert_eq!(c.added, ["argocd.shop-v2"]);
        assert_eq!(c.removed, ["argocd.shop"]);
        let kept_by_the_map = changes(
            &running(&[env("shop", "shop")]),
            &[env("shop", "shop")],
            true,
        );
        assert!(kept_by_the_map.is_empty());
    }

    fn application(sync: &str, health: &str, revision: &str) -> Value {
        json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Application",
            "metadata": {"name": "shop", "namespace": "argocd", "resourceVersion": "1",
                         "labels": {"team": "web"}},
            "spec": {"source": {"repoURL": "https://git.example.com/apps.git", "path": "shop"}},
            "status": {"sync": {"status": sync, "revision": revision},
                       "health": {"status": health},
                       "reconciledAt": "2025-01-01T00:00:00Z"}
        })
    }

    #[test]
    fn status_churn_leaves_the_fingerprint_alone() {
        let a = application("Synced", "Healthy", "abc");
        let mut b = application("OutOfSync", "Degraded", "abc");
        b["metadata"]["resourceVersion"] = json!("2");
        b["status"]["reconciledAt"] = json!("2025-01-01T00:03:00Z");
        assert_eq!(fingerprint(&a), fingerprint(&b));
    }

    #[test]
    fn what_the_mapping_reads_changes_the_fingerprint() {
        let a = application("Synced", "Healthy", "abc");
        let base = fingerprint(&a);
        let mut spec = a.clone();
        spec["spec"]["source"]["path"] = json!("shop/v2");
        let mut label = a.clone();
        label["metadata"]["labels"]["team"] = json!("api");
        let mut annotation = a.clone();
        annotation["metadata"]["annotations"] =
            json!({"argocd.argoproj.io/compare-options": "ServerSideDiff=true"});
        let mut revision = a.clone();
        revision["status"]["sync"]["revision"] = json!("def");
        let mut source_type = a.clone();
        source_type["status"]["sourceType"] = json!("Helm");
        let mut artifact = a.clone();
        artifact["status"]["artifact"] = json!({"revision": "v1.2.3@sha1:abc"});
        for (what, changed) in [
            ("spec", spec),
            ("label", label),
            ("annotation", annotation),
            ("revision", revision),
            ("source type", source_type),
            ("artifact", artifact),
        ] {
            assert_ne!(fingerprint(&changed), base, "{what}");
        }
    }
}
