//! Object identity.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An API group and kind, e.g. `apps`/`Deployment`. The core group is the empty string.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GroupKind {
    /// API group (`""` for the core group).
    pub group: String,
    /// Kind, e.g. `Deployment`.
    pub kind: String,
}

impl GroupKind {
    /// Builds a group/kind pair.
    pub fn new(group: impl Into<String>, kind: impl Into<String>) -> Self {
        GroupKind {
            group: group.into(),
            kind: kind.into(),
        }
    }

    /// Splits an `apiVersion` into its group (`""` for `v1`).
    pub fn group_of(api_version: &str) -> &str {
        match api_version.rsplit_once('/') {
            Some((group, _)) => group,
            None => "",
        }
    }
}

impl fmt::Display for GroupKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            f.write_str(&self.kind)
        } else {
            write!(f, "{}.{}", self.kind, self.group)
        }
    }
}

/// The identity of a tracked object: environment + API group + kind + namespace + name.
///
/// The API version is recorded on objects but is not part of identity, so an object that moves
/// from `extensions/v1beta1` to `apps/v1` stays the same object.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ResourceId {
    /// Environment name (`dev`, `prod`, ...).
    pub environment: String,
    /// API group (`""` for the core group).
    pub group: String,
    /// Kind.
    pub kind: String,
    /// Namespace; `None` for cluster-scoped kinds.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

impl ResourceId {
    /// Builds an identity.
    pub fn new(
        environment: impl Into<String>,
        group: impl Into<String>,
        kind: impl Into<String>,
        namespace: Option<&str>,
        name: impl Into<String>,
    ) -> Self {
        ResourceId {
            environment: environment.into(),
            group: group.into(),
            kind: kind.into(),
            namespace: namespace.filter(|n| !n.is_empty()).map(str::to_owned),
            name: name.into(),
        }
    }

    /// The group and kind of this object.
    pub fn group_kind(&self) -> GroupKind {
        GroupKind::new(self.group.clone(), self.kind.clone())
    }

    /// `namespace/name`, or `name` for cluster-scoped objects.
    pub fn namespaced_name(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        }
    }

    /// A stable string key: `env/group/kind/namespace/name` (empty parts kept), used as a
    /// primary key by stores.
    pub fn key(&self) -> String {
        format!(
            "{}/{}/{}/{}/{}",
            self.environment,
            self.group,
            self.kind,
            self.namespace.as_deref().unwrap_or(""),
            self.name
        )
    }

    /// Parses the form written by [`ResourceId::key`].
    pub fn from_key(key: &str) -> Option<ResourceId> {
        let mut parts = key.splitn(5, '/');
        let environment = parts.next()?;
        let group = parts.next()?;
        let kind = parts.next()?;
        let namespace = parts.next()?;
        let name = parts.next()?;
        if environment.is_empty() || kind.is_empty() || name.is_empty() {
            return None;
        }
        Some(ResourceId::new(
            environment,
            group,
            kind,
            Some(namespace),
            name,
        ))
    }

    /// Parses a user-facing reference `Kind[.group]/[namespace/]name` within `environment`,
    /// e.g. `Deployment.apps/shop/frontend` or `Namespace/shop`.
    pub fn parse_ref(environment: &str, reference: &str) -> Option<ResourceId> {
        let (kind_group, rest) = reference.split_once('/')?;
        let (kind, group) = match kind_group.split_once('.') {
            Some((k, g)) => (k, g),
            None => (kind_group, ""),
        };
        let (namespace, name) = match rest.split_once('/') {
            Some((ns, n)) => (Some(ns), n),
            None => (None, rest),
        };
        if kind.is_empty() || name.is_empty() {
            return None;
        }
        Some(ResourceId::new(environment, group, kind, namespace, name))
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}/{}",
            self.environment,
            self.group_kind(),
            self.namespaced_name()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_round_trips() {
        let id = ResourceId::new("prod", "apps", "Deployment", Some("shop"), "web");
        assert_eq!(ResourceId::from_key(&id.key()), Some(id.clone()));
        let cluster = ResourceId::new("prod", "", "Namespace", None, "shop");
        assert_eq!(ResourceId::from_key(&cluster.key()), Some(cluster));
    }

    #[test]
    fn parses_user_refs() {
        let id = ResourceId::parse_ref("dev", "Deployment.apps/shop/web").expect("valid");
        assert_eq!(id.group, "apps");
        assert_eq!(id.namespace.as_deref(), Some("shop"));
        assert_eq!(id.to_string(), "dev:Deployment.apps/shop/web");
        let ns = ResourceId::parse_ref("dev", "Namespace/shop").expect("valid");
        assert_eq!(ns.namespace, None);
        assert!(ResourceId::parse_ref("dev", "nonsense").is_none());
    }
}
