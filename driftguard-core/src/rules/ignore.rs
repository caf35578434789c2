//! Ignore rules, with the meaning of Argo CD's `ignoreDifferences`: which objects they apply to
//! (group, kind, namespace and name, with `*` globs), JSON pointers to ignore, and field
//! managers whose fields are ignored.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::id::ResourceId;
use crate::selector::ObjectSelector;

/// An RFC 6901 JSON pointer (`/spec/replicas`, `/spec/template/spec/containers/0/image`), where a
/// `*` segment matches any key or index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(try_from = "String", into = "String")]
pub struct JsonPointer {
    segments: Vec<String>,
}

/// A JSON pointer that does not start with `/`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("JSON pointer `{0}` must start with `/`")]
pub struct InvalidPointer(pub String);

impl TryFrom<String> for JsonPointer {
    type Error = InvalidPointer;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        JsonPointer::parse(&s)
    }
}

impl From<JsonPointer> for String {
    fn from(p: JsonPointer) -> String {
        p.segments
            .iter()
            .map(|s| format!("/{}", s.replace('~', "~0").replace('/', "~1")))
            .collect()
    }
}

impl JsonPointer {
    /// Parses a pointer.
    pub fn parse(s: &str) -> Result<Self, InvalidPointer> {
        let Some(rest) = s.strip_prefix('/') else {
            return Err(InvalidPointer(s.to_owned()));
        };
        Ok(JsonPointer {
            segments: rest
                .split('/')
                .map(|seg| seg.replace("~1", "/").replace("~0", "~"))
                .collect(),
        })
    }

    /// Removes what the pointer designates from `value` (every match, for `*` segments).
    pub fn remove(&self, value: &mut Value) {
        remove_at(value, &self.segments);
    }
}

fn remove_at(value: &mut Value, segments: &[String]) {
    let Some((first, rest)) = segments.split_first() else {
        return;
    };
    match value {
        Value::Object(map) => {
            if rest.is_empty() {
                if first == "*" {
                    map.clear();
                } else {
                    map.remove(first);
                }
            } else if first == "*" {
                for v in map.values_mut() {
                    remove_at(v, rest);
                }
            } else if let Some(v) = map.get_mut(first) {
                remove_at(v, rest);
            }
        }
        Value::Array(items) => {
            if first == "*" {
                if rest.is_empty() {
                    items.clear();
                } else {
                    for v in items.iter_mut() {
                        remove_at(v, rest);
                    }
                }
            } else if let Ok(i) = first.parse::<usize>() {
                if rest.is_empty() {
                    if i < items.len() {
                        items.remove(i);
                    }
                } else if let Some(v) = items.get_mut(i) {
                    remove_at(v, rest);
                }
            }
        }
        _ => {}
    }
}

/// One ignore rule: which objects ([`ObjectSelector`], written inline: `group`, `kind`,
/// `namespace`, `name`), and what to ignore in them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IgnoreRule {
    /// The objects the rule applies to.
    #[serde(flatten)]
    pub selector: ObjectSelector,
    /// Pointers removed from both sides before comparison.
    #[serde(default)]
    pub json_pointers: Vec<JsonPointer>,
    /// Field managers whose fields are not drift.
    #[serde(default)]
    pub managed_fields_managers: Vec<String>,
}

impl IgnoreRule {
    /// Whether the rule applies to `id`.
    pub fn matches(&self, id: &ResourceId) -> bool {
        self.selector.matches(id)
    }
}

/// The rules of one environment, resolved per object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IgnoreRules {
    /// The rules.
    pub rules: Vec<IgnoreRule>,
}

impl IgnoreRules {
    /// Pointers that apply to `id`.
    pub fn pointers_for(&self, id: &ResourceId) -> Vec<JsonPointer> {
        self.rules
            .iter()
            .filter(|r| r.matches(id))
            .flat_map(|r| r.json_pointers.iter().cloned())
            .collect()
    }

    /// Managers whose fields are ignored for `id`.
    pub fn managers_for(&self, id: &ResourceId) -> Vec<String> {
        self.rules
            .iter()
            .filter(|r| r.matches(id))
            .flat_map(|r| r.managed_fields_managers.iter().cloned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rules_read_as_before_and_refuse_unknown_fields() {
        let rule: IgnoreRule = serde_yaml::from_str(
            "group: apps\nkind: Deployment\nnamespace: prod-*\nname: web\njsonPointers: [/spec/replicas]\nmanagedFieldsManagers: [hpa]\n",
        )
        .expect("valid rule");
        assert_eq!(
            rule.selector,
            ObjectSelector {
                group: Some("apps".into()),
                kind: Some("Deployment".into()),
                namespace: Some("prod-*".into()),
                name: Some("web".into()),
            }
        );
        assert_eq!(rule.managed_fields_managers, vec!["hpa"]);
        assert_eq!(rule.json_pointers.len(), 1);
        let err = serde_yaml::from_str::<IgnoreRule>("kind: Deployment\njsonPointer: [/x]\n")
            .expect_err("typo");
        assert!(err.to_string().contains("jsonPointer"), "{err}");
        let back: IgnoreRule =
            serde_json::from_value(serde_json::to_value(&rule).expect("serializes"))
                .expect("round trip");
        assert_eq!(back, rule);
    }

    #[test]
    fn pointers_remove_fields() {
        let mut v = json!({"spec": {"replicas": 3, "template": {"spec": {"containers": [
            {"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}}}});
        JsonPointer::parse("/spec/replicas")
            .expect("valid")
            .remove(&mut v);
        JsonPointer::parse("/spec/template/spec/containers/*/image")
            .expect("valid")
            .remove(&mut v);
        assert_eq!(
            v,
            json!({"spec": {"template": {"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}}})
        );
        assert!(JsonPointer::parse("spec").is_err());
    }

    #[test]
    fn rules_match_by_globs() {
        let rule = IgnoreRule {
            selector: ObjectSelector {
                kind: Some("Deploy*".into()),
                namespace: Some("prod-*".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(rule.matches(&ResourceId::new(
            "e",
            "apps",
            "Deployment",
            Some("prod-eu"),
            "x"
        )));
        assert!(!rule.matches(&ResourceId::new(
            "e",
            "apps",
            "Deployment",
            Some("dev"),
            "x"
        )));
    }
}
