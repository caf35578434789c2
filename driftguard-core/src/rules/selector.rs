//! Which objects a rule applies to: one selector for ignore rules and severity rules.

use serde::{Deserialize, Serialize};

use crate::id::ResourceId;
use crate::path::glob_match;

/// Selects objects by API group, kind, namespace and name, each a glob in which `*` stands for
/// any run of characters (Argo CD's `ignoreDifferences` meaning). An absent field matches
/// anything; the core group is `""` and a cluster-scoped object's namespace is `""`, so
/// `group: ""` selects the core group and `namespace: ""` cluster-scoped objects.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ObjectSelector {
    /// API group glob (absent: any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind glob (absent: any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Namespace glob (absent: any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name glob (absent: any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl ObjectSelector {
    /// Whether the selector selects `id`.
    pub fn matches(&self, id: &ResourceId) -> bool {
        let m = |pattern: &Option<String>, value: &str| {
            pattern.as_deref().is_none_or(|p| glob_match(p, value))
        };
        m(&self.group, &id.group)
            && m(&self.kind, &id.kind)
            && m(&self.namespace, id.namespace.as_deref().unwrap_or(""))
            && m(&self.name, &id.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(
        group: Option<&str>,
        kind: Option<&str>,
        ns: Option<&str>,
        name: Option<&str>,
    ) -> ObjectSelector {
        ObjectSelector {
            group: group.map(Into::into),
            kind: kind.map(Into::into),
            namespace: ns.map(Into::into),
            name: name.map(Into::into),
        }
    }

    #[test]
    fn globs_on_every_part() {
        let deploy = ResourceId::new("e", "apps", "Deployment", Some("prod-eu"), "web-1");
        let role = ResourceId::new(
            "e",
            "rbac.authorization.k8s.io",
            "ClusterRole",
            None,
            "admin",
        );
        let cm = ResourceId::new("e", "", "ConfigMap", Some("prod-eu"), "web-1");
        assert!(ObjectSelector::default().matches(&deploy));
        assert!(sel(Some("apps"), Some("Deploy*"), Some("prod-*"), Some("web-*")).matches(&deploy));
        assert!(!sel(Some("apps"), None, None, None).matches(&cm));
        assert!(
            sel(Some(""), None, None, None).matches(&cm),
            "`\"\"` is the core group"
        );
        assert!(sel(Some("*.k8s.io"), None, None, None).matches(&role));
        assert!(
            sel(None, None, Some(""), None).matches(&role),
            "cluster-scoped"
        );
        assert!(!sel(None, None, Some(""), None).matches(&deploy));
        assert!(!sel(None, Some("Deployment"), Some("dev"), None).matches(&deploy));
        assert!(
            !sel(None, None, None, Some("web")).matches(&deploy),
            "globs are whole"
        );
    }
}
