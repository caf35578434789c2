//! Object identity.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::query::{DriftQuery, DriftSort, DriftStatus};

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

/// How a person names an object: `[env:]Kind[.group]/[namespace/]name`, as the CLI (`history`,
/// `explain`) and the API (`/environments/{env}/objects/...`) take it.
///
/// Only the kind and the name are required. An absent environment, group or namespace means
/// *any*: `prod:Deployment/shop/web` names the Deployment `shop/web` of whatever API group
/// (there is one in practice), `Namespace/shop` names the Namespace `shop`. When a reference
/// matches more than one object, [`ObjectRef::pick`] says it is ambiguous.
///
/// ```
/// use driftguard_core::id::{ObjectRef, ResourceId};
///
/// let r: ObjectRef = "prod:Deployment/shop/web".parse().expect("valid");
/// assert_eq!(r.group, None);
/// assert!(r.matches(&ResourceId::new("prod", "apps", "Deployment", Some("shop"), "web")));
/// assert!(!r.matches(&ResourceId::new("dev", "apps", "Deployment", Some("shop"), "web")));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ObjectRef {
    /// Environment (absent: any).
    pub environment: Option<String>,
    /// API group (absent: any; the core group cannot be written, as in `kubectl`'s `Kind.group`).
    pub group: Option<String>,
    /// Kind (exact).
    pub kind: String,
    /// Namespace (absent: any, cluster-scoped objects included).
    pub namespace: Option<String>,
    /// Name (exact).
    pub name: String,
}

/// The form of an object reference, for messages.
pub const OBJECT_REF_FORM: &str =
    "[env:]Kind[.group]/[namespace/]name, e.g. prod:Deployment/shop/web";

/// Why a text is not an object reference, or names no single object.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ObjectRefError {
    /// Not of the form `[env:]Kind[.group]/[namespace/]name`.
    #[error("`{given}`: expected {OBJECT_REF_FORM}")]
    Malformed {
        /// The text given.
        given: String,
    },
    /// The reference names another environment than the one it is looked up in.
    #[error("`{given}` names environment `{named}`, not `{environment}`")]
    OtherEnvironment {
        /// The text given.
        given: String,
        /// The environment it names.
        named: String,
        /// The environment it is looked up in.
        environment: String,
    },
    /// More than one object matches.
    #[error(
        "`{reference}` is ambiguous: {} (give the environment, namespace or group)",
        .candidates.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    )]
    Ambiguous {
        /// The reference.
        reference: String,
        /// The objects it matches, sorted.
        candidates: Vec<ResourceId>,
    },
}

impl ObjectRef {
    /// Parses `[env:]Kind[.group]/[namespace/]name`.
    pub fn parse(text: &str) -> Result<ObjectRef, ObjectRefError> {
        let malformed = || ObjectRefError::Malformed {
            given: text.to_owned(),
        };
        // `env:` comes before the first `/`; names may hold `:` (`system:auth-delegator`)
        let (environment, rest) = match text.split_once(':') {
            Some((env, rest)) if !env.contains('/') => (Some(env), rest),
            _ => (None, text),
        };
        let (kind_group, rest) = rest.split_once('/').ok_or_else(malformed)?;
        let (kind, group) = match kind_group.split_once('.') {
            Some((k, g)) => (k, Some(g)),
            None => (kind_group, None),
        };
        let (namespace, name) = match rest.split_once('/') {
            Some((ns, n)) => (Some(ns), n),
            None => (None, rest),
        };
        let parts = [environment, group, Some(kind), namespace, Some(name)];
        if parts.iter().flatten().any(|p| p.is_empty()) || name.contains('/') {
            return Err(malformed());
        }
        Ok(ObjectRef {
            environment: environment.map(str::to_owned),
            group: group.map(str::to_owned),
            kind: kind.to_owned(),
            namespace: namespace.map(str::to_owned),
            name: name.to_owned(),
        })
    }

    /// Parses a reference looked up in `environment`: the text may name that environment, or
    /// none.
    pub fn parse_in(environment: &str, text: &str) -> Result<ObjectRef, ObjectRefError> {
        let mut r = ObjectRef::parse(text)?;
        match &r.environment {
            Some(named) if named != environment => Err(ObjectRefError::OtherEnvironment {
                given: text.to_owned(),
                named: named.clone(),
                environment: environment.to_owned(),
            }),
            _ => {
                r.environment = Some(environment.to_owned());
                Ok(r)
            }
        }
    }

    /// Whether the reference names `id`.
    pub fn matches(&self, id: &ResourceId) -> bool {
        self.environment
            .as_ref()
            .is_none_or(|e| &id.environment == e)
            && self.group.as_ref().is_none_or(|g| &id.group == g)
            && id.kind == self.kind
            && self
                .namespace
                .as_ref()
                .is_none_or(|n| id.namespace.as_ref() == Some(n))
            && id.name == self.name
    }

    /// The object's identity when the reference gives every part (environment, group and
    /// namespace), so that it can be read by key.
    pub fn exact_id(&self) -> Option<ResourceId> {
        Some(ResourceId::new(
            self.environment.as_deref()?,
            self.group.as_deref()?,
            self.kind.as_str(),
            Some(self.namespace.as_deref()?),
            self.name.as_str(),
        ))
    }

    /// The query for every drift episode of the objects the reference matches (open and
    /// resolved, most recently updated first; every result matches, see
    /// [`ObjectRef::matches`]).
    pub fn drift_query(&self) -> DriftQuery {
        DriftQuery {
            environment: self.environment.clone(),
            group: self.group.clone(),
            kind: Some(self.kind.clone()),
            namespace: self.namespace.clone(),
            name: Some(self.name.clone()),
            status: DriftStatus::All,
            sort: DriftSort::Updated,
            limit: 10_000,
            ..DriftQuery::default()
        }
    }

    /// The one object among `ids` that the reference names: `None` when none matches, an
    /// error when several do.
    pub fn pick<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a ResourceId>,
    ) -> Result<Option<ResourceId>, ObjectRefError> {
        let mut found: Vec<&ResourceId> = ids.into_iter().filter(|id| self.matches(id)).collect();
        found.sort();
        found.dedup();
        match found.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some((*one).clone())),
            many => Err(ObjectRefError::Ambiguous {
                reference: self.to_string(),
                candidates: many.iter().map(|id| (*id).clone()).collect(),
            }),
        }
    }
}

impl FromStr for ObjectRef {
    type Err = ObjectRefError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ObjectRef::parse(s)
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(e) = &self.environment {
            write!(f, "{e}:")?;
        }
        f.write_str(&self.kind)?;
        if let Some(g) = &self.group {
            write!(f, ".{g}")?;
        }
        if let Some(ns) = &self.namespace {
            write!(f, "/{ns}")?;
        }
        write!(f, "/{}", self.name)
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
        let r = ObjectRef::parse_in("dev", "Deployment.apps/shop/web").expect("valid");
        let id = r.exact_id().expect("every part given");
        assert_eq!(id.group, "apps");
        assert_eq!(id.namespace.as_deref(), Some("shop"));
        assert_eq!(id.to_string(), "dev:Deployment.apps/shop/web");
        assert_eq!(r.to_string(), "dev:Deployment.apps/shop/web");
        let ns = ObjectRef::parse_in("dev", "Namespace/shop").expect("valid");
        assert_eq!(ns.namespace, None);
        assert!(ns.matches(&ResourceId::new("dev", "", "Namespace", None, "shop")));
        assert!(ObjectRef::parse_in("dev", "nonsense").is_err());
    }

    #[test]
    fn object_refs_parse_every_part() {
        let r: ObjectRef = "prod:Ingress.networking.k8s.io/shop/web"
            .parse()
            .expect("valid");
        assert_eq!(
            r,
            ObjectRef {
                environment: Some("prod".into()),
                group: Some("networking.k8s.io".into()),
                kind: "Ingress".into(),
                namespace: Some("shop".into()),
                name: "web".into(),
            }
        );
        // a `:` after the first `/` is part of the name
        let role: ObjectRef = "ClusterRole.rbac.authorization.k8s.io/system:auth-delegator"
            .parse()
            .expect("valid");
        assert_eq!(role.environment, None);
        assert_eq!(role.name, "system:auth-delegator");
        assert_eq!(role.namespace, None);
        let role: ObjectRef = "prod:ClusterRole/system:auth-delegator"
            .parse()
            .expect("valid");
        assert_eq!(role.environment.as_deref(), Some("prod"));
        assert_eq!(role.name, "system:auth-delegator");
        for bad in [
            "",
            "nonsense",
            "Deployment/",
            "/shop/web",
            "Deployment//web",
            "Deployment/shop/",
            ":Deployment/shop/web",
            "Deployment./shop/web",
            "Deployment/a/b/c",
        ] {
            assert_eq!(
                bad.parse::<ObjectRef>(),
                Err(ObjectRefError::Malformed { given: bad.into() }),
                "{bad}"
            );
        }
        assert_eq!(
            "Deployment/a/b/c".parse::<ObjectRef>().map_err(|e| e.to_string()),
            Err("`Deployment/a/b/c`: expected [env:]Kind[.group]/[namespace/]name, e.g. prod:Deployment/shop/web".into())
        );
        assert!(matches!(
            ObjectRef::parse_in("dev", "prod:Deployment/shop/web"),
            Err(ObjectRefError::OtherEnvironment { .. })
        ));
        assert_eq!(
            ObjectRef::parse_in("prod", "prod:Deployment/shop/web")
                .expect("same environment")
                .environment
                .as_deref(),
            Some("prod")
        );
        for text in [
            "prod:Deployment.apps/shop/web",
            "Namespace/shop",
            "ConfigMap/a/b",
        ] {
            let r: ObjectRef = text.parse().expect("valid");
            assert_eq!(r.to_string(), text, "round trip");
        }
    }

    #[test]
    fn absent_parts_match_anything_and_pick_refuses_ambiguity() {
        let web = |env: &str, group: &str, ns: Option<&str>| {
            ResourceId::new(env, group, "Deployment", ns, "web")
        };
        let ids = [
            web("prod", "apps", Some("shop")),
            web("prod", "apps", Some("pay")),
            web("dev", "apps", Some("shop")),
            web("prod", "example.com", Some("shop")),
            ResourceId::new("prod", "apps", "Deployment", Some("shop"), "api"),
        ];
        let r = |t: &str| t.parse::<ObjectRef>().expect("valid");
        assert_eq!(
            r("prod:Deployment.apps/shop/web").pick(&ids),
            Ok(Some(web("prod", "apps", Some("shop"))))
        );
        assert_eq!(
            r("prod:Deployment/pay/web").pick(&ids),
            Ok(Some(web("prod", "apps", Some("pay"))))
        );
        assert_eq!(r("prod:Deployment/none/web").pick(&ids), Ok(None));
        assert_eq!(
            r("prod:deployment/pay/web").pick(&ids),
            Ok(None),
            "kinds are exact"
        );
        let Err(ObjectRefError::Ambiguous { candidates, .. }) =
            r("prod:Deployment/shop/web").pick(&ids)
        else {
            panic!("two groups")
        };
        assert_eq!(
            candidates,
            vec![
                web("prod", "apps", Some("shop")),
                web("prod", "example.com", Some("shop"))
            ]
        );
        let err = r("Deployment.apps/web").pick(&ids).expect_err("three");
        assert_eq!(
            err.to_string(),
            "`Deployment.apps/web` is ambiguous: dev:Deployment.apps/shop/web, prod:Deployment.apps/pay/web, prod:Deployment.apps/shop/web (give the environment, namespace or group)"
        );
        // the same object twice is one object
        let twice = [
            web("prod", "apps", Some("pay")),
            web("prod", "apps", Some("pay")),
        ];
        assert_eq!(
            r("Deployment/web").pick(&twice),
            Ok(Some(web("prod", "apps", Some("pay"))))
        );
        assert_eq!(r("Deployment/web").exact_id(), None);
    }

    #[test]
    fn the_drift_query_of_a_ref_means_what_matches_means() {
        let drift_of = |id: ResourceId| crate::testkit::drift().id(id).build();
        let r: ObjectRef = "prod:Deployment/shop/web".parse().expect("valid");
        let q = r.drift_query();
        for id in [
            ResourceId::new("prod", "apps", "Deployment", Some("shop"), "web"),
            ResourceId::new("prod", "example.com", "Deployment", Some("shop"), "web"),
            ResourceId::new("prod", "apps", "Deployment", Some("pay"), "web"),
            ResourceId::new("prod", "apps", "Deployment", Some("shop"), "web-2"),
            ResourceId::new("prod", "apps", "StatefulSet", Some("shop"), "web"),
            ResourceId::new("dev", "apps", "Deployment", Some("shop"), "web"),
        ] {
            assert_eq!(q.matches(&drift_of(id.clone())), r.matches(&id), "{id}");
        }
        let mut with_group = r.clone();
        with_group.group = Some("apps".into());
        let q = with_group.drift_query();
        assert!(q.matches(&drift_of(ResourceId::new(
            "prod",
            "apps",
            "Deployment",
            Some("shop"),
            "web"
        ))));
        assert!(!q.matches(&drift_of(ResourceId::new(
            "prod",
            "example.com",
            "Deployment",
            Some("shop"),
            "web"
        ))));
    }
}
