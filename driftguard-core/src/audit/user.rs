//! Who a user is: people told apart from service accounts and the control plane's own users,
//! and what is kept of a person's name (the privacy setting).

use serde::{Deserialize, Serialize};

use crate::names::named_enum;
use crate::normalize::{Normalizer, SECRET_HASH_PREFIX};

use super::event::UserInfo;

named_enum! {
    /// What kind of user made a request.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub enum UserClass: "user class" {
        /// A person (any user that is not one of the others).
        Person => "person",
        /// A service account (`system:serviceaccount:<namespace>:<name>`): software running in
        /// the cluster, a CI job, an operator.
        ServiceAccount => "service-account",
        /// The control plane's own users: controllers, the scheduler, nodes, the API server
        /// (`system:kube-controller-manager`, `system:node:<name>`, ...).
        System => "system",
    }
}

named_enum! {
    /// What is kept of a person's user name (service accounts and system users are software
    /// and always kept by name).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub enum UserNames: "user name setting" {
        /// The name as the API server gives it, with the source address.
        #[default]
        Keep => "keep",
        /// A keyed hash of the name (`hmac:` and 16 hex digits, made with the Secret key): the
        /// same person always gets the same hash, and whoever holds the key can check a name
        /// against it. The source address is not kept.
        Hash => "hash",
        /// Nothing: the person is only said to be a person. Neither the source address nor the
        /// groups are kept.
        Drop => "drop",
    }
}

/// The prefix of a hashed user name.
pub const HASHED_NAME_PREFIX: &str = "hmac:";

/// The class of a user, from its name and groups.
pub fn classify(user: &UserInfo) -> UserClass {
    let name = user.username.as_str();
    let in_group = |g: &str| user.groups.iter().any(|x| x == g);
    if name.starts_with("system:serviceaccount:") || in_group("system:serviceaccounts") {
        UserClass::ServiceAccount
    } else if name.starts_with("system:") || in_group("system:nodes") {
        UserClass::System
    } else {
        UserClass::Person
    }
}

/// A user as DriftGuard keeps it: the name (as the privacy setting allows), the class and the
/// groups.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AuditUser {
    /// The name, its keyed hash (`hmac:...`), or `None` when names of people are dropped.
    #[serde(default)]
    pub name: Option<String>,
    /// Person, service account or system user.
    pub class: UserClass,
    /// The user's groups (without `system:authenticated`); empty when names are dropped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// The user it acted as (impersonation), under the same privacy setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acting_as: Option<String>,
}

impl AuditUser {
    /// The user from an event's user (and impersonated user), with `names` applied to people.
    pub fn from_info(
        user: &UserInfo,
        impersonated: Option<&UserInfo>,
        names: UserNames,
        normalizer: &Normalizer,
    ) -> Self {
        let class = classify(user);
        let name_of = |u: &UserInfo| match (classify(u), names) {
            (UserClass::Person, UserNames::Hash) => Some(hash_name(normalizer, &u.username)),
            (UserClass::Person, UserNames::Drop) => None,
            _ => Some(u.username.clone()),
        };
        let groups = if class == UserClass::Person && names == UserNames::Drop {
            Vec::new()
        } else {
            user.groups
                .iter()
                .filter(|g| g.as_str() != "system:authenticated")
                .take(16)
                .cloned()
                .collect()
        };
        AuditUser {
            name: name_of(user),
            class,
            groups,
            acting_as: impersonated
                .filter(|u| !u.username.is_empty())
                .and_then(name_of),
        }
    }

    /// How the user is shown: the name, or `(a person)` when it was dropped.
    pub fn display(&self) -> String {
        match &self.name {
            Some(n) => n.clone(),
            None => match self.class {
                UserClass::Person => "(a person)".into(),
                UserClass::ServiceAccount => "(a service account)".into(),
                UserClass::System => "(a system user)".into(),
            },
        }
    }

    /// Whether the source address of this user's requests may be kept.
    pub fn keeps_address(&self, names: UserNames) -> bool {
        self.class != UserClass::Person || names == UserNames::Keep
    }
}

/// The keyed hash of a person's name: `hmac:` and the first 16 hex digits of
/// HMAC-SHA256(Secret key, `driftguard-audit-user:` + name).
pub fn hash_name(normalizer: &Normalizer, name: &str) -> String {
    let full = normalizer.hash_secret(format!("driftguard-audit-user:{name}").as_bytes());
    let hex = full.strip_prefix(SECRET_HASH_PREFIX).unwrap_or(&full);
    format!("{HASHED_NAME_PREFIX}{}", &hex[..hex.len().min(16)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::SecretKey;

    fn user(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo {
            username: name.into(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        }
    }

    #[test]
    fn people_service_accounts_and_system_users() {
        let cases = [
            (
                user("alice", &["dev", "system:authenticated"]),
                UserClass::Person,
            ),
            (user("admin", &["system:masters"]), UserClass::Person),
            (
                user(
                    "system:serviceaccount:ci:deployer",
                    &["system:serviceaccounts"],
                ),
                UserClass::ServiceAccount,
            ),
            (
                user("robot", &["system:serviceaccounts"]),
                UserClass::ServiceAccount,
            ),
            (
                user("system:kube-controller-manager", &[]),
                UserClass::System,
            ),
            (user("system:node:n1", &["system:nodes"]), UserClass::System),
            (user("system:apiserver", &[]), UserClass::System),
        ];
        for (u, want) in cases {
            assert_eq!(classify(&u), want, "{}", u.username);
        }
    }

    #[test]
    fn privacy_applies_to_people_only() {
        let n = Normalizer::new(SecretKey::new(b"k".to_vec()));
        let alice = user("alice", &["dev", "system:authenticated"]);
        let sa = user(
            "system:serviceaccount:ci:deployer",
            &["system:serviceaccounts"],
        );
        let kept = AuditUser::from_info(&alice, None, UserNames::Keep, &n);
        assert_eq!(kept.name.as_deref(), Some("alice"));
        assert_eq!(kept.groups, ["dev"]);
        let hashed = AuditUser::from_info(&alice, None, UserNames::Hash, &n);
        let h = hashed.name.clone().expect("a hash");
        assert!(h.starts_with("hmac:") && h.len() == 21, "{h}");
        assert!(!h.contains("alice"));
        // stable, and keyed
        assert_eq!(hash_name(&n, "alice"), h);
        let other = Normalizer::new(SecretKey::new(b"other".to_vec()));
        assert_ne!(hash_name(&other, "alice"), h);
        assert!(!hashed.keeps_address(UserNames::Hash));
        let dropped = AuditUser::from_info(&alice, Some(&sa), UserNames::Drop, &n);
        assert_eq!(dropped.name, None);
        assert!(dropped.groups.is_empty());
        assert_eq!(dropped.display(), "(a person)");
        assert_eq!(
            dropped.acting_as.as_deref(),
            Some("system:serviceaccount:ci:deployer"),
            "a service account is software: kept"
        );
        for names in UserNames::ALL {
            let s = AuditUser::from_info(&sa, Some(&alice), *names, &n);
            assert_eq!(s.name.as_deref(), Some("system:serviceaccount:ci:deployer"));
            assert_eq!(s.class, UserClass::ServiceAccount);
            assert!(s.keeps_address(*names));
            assert_eq!(
                s.acting_as,
                AuditUser::from_info(&alice, None, *names, &n).name,
                "the person it impersonated follows the setting"
            );
        }
    }
}
