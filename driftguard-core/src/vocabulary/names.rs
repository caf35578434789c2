//! Names of enum values: one mechanism, one case rule.
//!
//! Every enum whose values are written as words (severities, drift kinds, directions, query
//! orders, ...) is declared with the crate's `named_enum!` macro, which gives it
//! `as_str`, `ALL`, `Display`, `FromStr` and serde, all from one list of names.
//!
//! **The case rule.** A canonical name is lower-case ASCII, and a name of several words is
//! kebab-case (`in-sync`). `as_str`, `Display` and serde write the canonical name; `FromStr` and
//! serde read a name in any ASCII case (`high`, `High`, `HIGH`). The canonical names are the
//! serde names the enums had before this module existed, so stored data keeps its spelling.
//!
//! A name that names no value is an [`UnknownName`], which says what was being named and which
//! names exist.

use std::fmt;
use std::marker::PhantomData;

/// A name that names no value of an enum.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{given}` (expected one of: {})", .expected.join(", "))]
pub struct UnknownName {
    /// What was being named, e.g. `severity`.
    pub what: &'static str,
    /// The name given.
    pub given: String,
    /// The canonical names.
    pub expected: &'static [&'static str],
}

/// An enum whose values have names (implemented by the crate's `named_enum!` macro).
pub trait Named: Copy + 'static {
    /// What a value names, for messages: `severity`, `drift status`.
    const WHAT: &'static str;
    /// Every value, in declaration order.
    const ALL: &'static [Self];
    /// The canonical names, in the order of [`Named::ALL`].
    const NAMES: &'static [&'static str];

    /// The canonical name of this value.
    fn name(self) -> &'static str;

    /// The value a name stands for, in any ASCII case.
    fn from_name(given: &str) -> Result<Self, UnknownName> {
        Self::NAMES
            .iter()
            .position(|n| n.eq_ignore_ascii_case(given))
            .map(|i| Self::ALL[i])
            .ok_or_else(|| UnknownName {
                what: Self::WHAT,
                given: given.to_owned(),
                expected: Self::NAMES,
            })
    }
}

/// Serde's visitor for a [`Named`] value (a string, read by [`Named::from_name`]).
#[doc(hidden)]
pub struct NameVisitor<T>(PhantomData<T>);

impl<T> NameVisitor<T> {
    /// A visitor.
    pub fn new() -> Self {
        NameVisitor(PhantomData)
    }
}

impl<T> Default for NameVisitor<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Named> serde::de::Visitor<'_> for NameVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a {} ({})", T::WHAT, T::NAMES.join(", "))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<T, E> {
        T::from_name(v).map_err(E::custom)
    }
}

/// Declares an enum whose values have names, with `as_str`, `ALL`, `Display`, `FromStr`
/// (error: [`UnknownName`]) and serde, following the case rule of [this module](self).
///
/// ```text
/// named_enum! {
///     /// How bad a drift is.
///     #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
///     pub enum Severity: "severity" {
///         /// Cosmetic.
///         Low => "low",
///         /// Worse.
///         High => "high",
///     }
/// }
/// ```
macro_rules! named_enum {
    (
        $(#[$m:meta])*
        pub enum $name:ident : $what:literal {
            $($(#[$vm:meta])* $variant:ident => $s:literal),+ $(,)?
        }
    ) => {
        $(#[$m])*
        pub enum $name { $($(#[$vm])* $variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The canonical (lower-case) name.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $s),+ }
            }
        }

        impl $crate::names::Named for $name {
            const WHAT: &'static str = $what;
            const ALL: &'static [$name] = $name::ALL;
            const NAMES: &'static [&'static str] = &[$($s),+];

            fn name(self) -> &'static str {
                self.as_str()
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::names::UnknownName;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                <$name as $crate::names::Named>::from_name(s)
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_str($crate::names::NameVisitor::<$name>::new())
            }
        }

        /// One of the names (with the `schema` feature: the configuration reference).
        #[cfg(feature = "schema")]
        impl ::schemars::JsonSchema for $name {
            fn schema_name() -> ::std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_: &mut ::schemars::SchemaGenerator) -> ::schemars::Schema {
                ::schemars::json_schema!({
                    "type": "string",
                    "enum": <$name as $crate::names::Named>::NAMES,
                })
            }
        }
    };
}

pub(crate) use named_enum;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::VerdictStatus;
    use crate::query::{DriftSort, DriftStatus};
    use crate::severity::Severity;
    use crate::state::{Direction, DriftKind, EventKind, Resolution};

    /// The case rule and the serde names, for every named enum of the core.
    fn check<T>()
    where
        T: Named + fmt::Debug + PartialEq + serde::Serialize + serde::de::DeserializeOwned,
        T: std::str::FromStr<Err = UnknownName> + fmt::Display,
    {
        assert_eq!(T::ALL.len(), T::NAMES.len());
        for (&v, &name) in T::ALL.iter().zip(T::NAMES) {
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "`{name}` is not lower-case kebab-case"
            );
            assert_eq!(v.name(), name);
            assert_eq!(v.to_string(), name);
            assert_eq!(name.parse::<T>(), Ok(v));
            assert_eq!(name.to_ascii_uppercase().parse::<T>(), Ok(v));
            assert_eq!(
                serde_json::to_value(v).expect("serializes"),
                serde_json::json!(name)
            );
            assert_eq!(
                serde_json::from_value::<T>(serde_json::json!(name.to_ascii_uppercase()))
                    .expect("reads any case"),
                v
            );
            assert_eq!(
                serde_yaml::from_str::<T>(name).expect("reads YAML"),
                v,
                "YAML"
            );
        }
        let err = "no-such-name".parse::<T>().expect_err("unknown");
        assert_eq!(err.what, T::WHAT);
        assert_eq!(err.given, "no-such-name");
        assert_eq!(err.expected, T::NAMES);
        assert!(serde_json::from_value::<T>(serde_json::json!("no-such-name")).is_err());
        assert!(serde_json::from_value::<T>(serde_json::json!(1)).is_err());
    }

    #[test]
    fn every_named_enum_follows_the_case_rule() {
        check::<Severity>();
        check::<DriftKind>();
        check::<Direction>();
        check::<Resolution>();
        check::<EventKind>();
        check::<DriftStatus>();
        check::<DriftSort>();
        check::<crate::engine::VerdictStatus>();
        check::<crate::findings::FindingCategory>();
        check::<crate::remediate::advice::RemediationAction>();
        check::<crate::remediate::Operation>();
        check::<crate::remediate::PolicyMode>();
    }

    #[test]
    fn serde_names_are_the_stored_ones() {
        // the spellings written by the serde derives these enums had before (stored data)
        let stored = serde_json::json!([
            "low",
            "medium",
            "high",
            "critical",
            "modified",
            "missing",
            "orphan",
            "forward",
            "reverse",
            "conflict",
            "unknown",
            "reverted",
            "adopted",
            "applied",
            "removed",
            "detected",
            "changed",
            "resolved",
            "remediated",
            "recurred",
            "acknowledged",
            "unacknowledged",
            "open",
            "resolved",
            "all",
            "severity",
            "detected",
            "updated",
            "object"
        ]);
        // `remediated` (remediation events), `recurred` (a reverted drift back),
        // `acknowledged` and `unacknowledged` (acknowledged drift) are new; every earlier name
        // is unchanged
        let mut now: Vec<&str> = Vec::new();
        now.extend(Severity::ALL.iter().map(|v| v.as_str()));
        now.extend(DriftKind::ALL.iter().map(|v| v.as_str()));
        now.extend(Direction::ALL.iter().map(|v| v.as_str()));
        now.extend(Resolution::ALL.iter().map(|v| v.as_str()));
        now.extend(EventKind::ALL.iter().map(|v| v.as_str()));
        now.extend(DriftStatus::ALL.iter().map(|v| v.as_str()));
        now.extend(DriftSort::ALL.iter().map(|v| v.as_str()));
        assert_eq!(serde_json::json!(now), stored);
        // VerdictStatus keeps its own kebab-case serde names (engine.rs)
        assert_eq!(
            serde_json::to_value(VerdictStatus::InSync).expect("serializes"),
            serde_json::json!("in-sync")
        );
    }

    #[test]
    fn unknown_names_say_what_exists() {
        let err = "urgent".parse::<Severity>().expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "unknown severity `urgent` (expected one of: low, medium, high, critical)"
        );
        let err = serde_yaml::from_str::<DriftStatus>("closed").expect_err("unknown");
        assert!(
            err.to_string()
                .contains("unknown drift status `closed` (expected one of: open, resolved, all)"),
            "{err}"
        );
    }
}
