//! Reading the tools' objects as the API server returns them (`serde_json::Value`): typed
//! getters that name what is wrong instead of failing, and the collector of [`Problem`]s.
//!
//! The objects were validated by their CRDs' schemas, so a wrong type is rare; when it happens
//! the field is left out and the problem says so.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::Problem;

/// The problems found while mapping one object, in the order they were found.
#[derive(Clone, Debug, Default)]
pub(super) struct Problems(Vec<Problem>);

impl Problems {
    /// Something that is left out or differs; the environment is still made.
    pub fn note(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            field: field.into(),
            message: message.into(),
            blocking: false,
        });
    }

    /// Something without which no environment can be made.
    pub fn block(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            field: field.into(),
            message: message.into(),
            blocking: true,
        });
    }

    /// Whether a problem stops the environment from being made.
    pub fn blocked(&self) -> bool {
        self.0.iter().any(|p| p.blocking)
    }

    pub fn into_vec(self) -> Vec<Problem> {
        self.0
    }
}

/// `a.b` joined for problem fields (`spec.source` + `helm` = `spec.source.helm`).
pub(super) fn at(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// The value at `key`, `None` when absent or `null`.
pub(super) fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.get(key).filter(|x| !x.is_null())
}

/// The value at a path of keys.
pub(super) fn get_path<'a>(v: &'a Value, keys: &[&str]) -> Option<&'a Value> {
    keys.iter().try_fold(v, |v, k| get(v, k))
}

/// A string at `key` (`None` when absent, `null` or empty; a problem when not a string).
pub(super) fn string(v: &Value, key: &str, parent: &str, p: &mut Problems) -> Option<String> {
    match get(v, key)? {
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        _ => {
            p.note(at(parent, key), "expected a string: left out");
            None
        }
    }
}

/// A string at a path, without problems (status fields, which only inform).
pub(super) fn status_string(v: &Value, keys: &[&str]) -> Option<String> {
    get_path(v, keys)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// A boolean at `key` (`false` when absent; a problem when not a boolean).
pub(super) fn boolean(v: &Value, key: &str, parent: &str, p: &mut Problems) -> bool {
    match get(v, key) {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            p.note(at(parent, key), "expected true or false: taken as false");
            false
        }
    }
}

/// An object at `key` (`None` when absent; a problem when not an object).
pub(super) fn object<'a>(
    v: &'a Value,
    key: &str,
    parent: &str,
    p: &mut Problems,
) -> Option<&'a Value> {
    match get(v, key)? {
        o @ Value::Object(_) => Some(o),
        _ => {
            p.note(at(parent, key), "expected a mapping: left out");
            None
        }
    }
}

/// The items of a list at `key` (empty when absent; a problem when not a list).
pub(super) fn list<'a>(v: &'a Value, key: &str, parent: &str, p: &mut Problems) -> &'a [Value] {
    match get(v, key) {
        None => &[],
        Some(Value::Array(items)) => items,
        Some(_) => {
            p.note(at(parent, key), "expected a list: left out");
            &[]
        }
    }
}

/// A list of strings at `key`; items that are not strings are named and left out.
pub(super) fn strings(v: &Value, key: &str, parent: &str, p: &mut Problems) -> Vec<String> {
    let field = at(parent, key);
    list(v, key, parent, p)
        .iter()
        .enumerate()
        .filter_map(|(i, item)| match item {
            Value::String(s) => Some(s.clone()),
            _ => {
                p.note(format!("{field}[{i}]"), "expected a string: left out");
                None
            }
        })
        .collect()
}

/// A map of strings at `key` (labels, annotations); values that are not strings are named
/// and left out.
pub(super) fn string_map(
    v: &Value,
    key: &str,
    parent: &str,
    p: &mut Problems,
) -> BTreeMap<String, String> {
    let field = at(parent, key);
    let Some(o) = object(v, key, parent, p) else {
        return BTreeMap::new();
    };
    as_map(o)
        .iter()
        .filter_map(|(k, v)| match v {
            Value::String(s) => Some((k.clone(), s.clone())),
            _ => {
                p.note(format!("{field}.{k}"), "expected a string: left out");
                None
            }
        })
        .collect()
}

/// The keys of an object (empty for anything else).
pub(super) fn as_map(v: &Value) -> &Map<String, Value> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    v.as_object().unwrap_or_else(|| EMPTY.get_or_init(Map::new))
}

/// Names every key of `v` that is not in `read` (mapped) or `irrelevant` (read by the tool
/// for something that does not change the desired state, such as an interval): a field added
/// by a newer release of the tool is reported, never silently skipped.
pub(super) fn unknown_keys(
    v: &Value,
    parent: &str,
    read: &[&str],
    irrelevant: &[&str],
    p: &mut Problems,
) {
    for key in as_map(v).keys() {
        if !read.contains(&key.as_str()) && !irrelevant.contains(&key.as_str()) {
            p.note(
                at(parent, key),
                "not known to DriftGuard's discovery: not read (it may change what the tool deploys)",
            );
        }
    }
}

/// A kustomize patch target (`group`, `version`, `kind`, `name`, `namespace`,
/// `labelSelector`, `annotationSelector`).
pub(super) fn patch_target(t: &Value, f: &str, p: &mut Problems) -> BTreeMap<String, String> {
    const KEYS: [&str; 7] = [
        "group",
        "version",
        "kind",
        "name",
        "namespace",
        "labelSelector",
        "annotationSelector",
    ];
    unknown_keys(t, f, &KEYS, &[], p);
    KEYS.iter()
        .filter_map(|k| Some(((*k).to_owned(), string(t, k, f, p)?)))
        .collect()
}

/// `metadata.name`, `metadata.namespace` and `metadata.labels` of an object.
pub(super) struct Meta {
    pub name: String,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

impl Meta {
    pub fn read(object: &Value) -> Meta {
        let m = get(object, "metadata").unwrap_or(&Value::Null);
        let text = |key: &str| {
            get(m, key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let pairs = |key: &str| -> BTreeMap<String, String> {
            get(m, key)
                .map(as_map)
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        };
        Meta {
            name: text("name"),
            namespace: text("namespace"),
            labels: pairs("labels"),
            annotations: pairs("annotations"),
        }
    }
}

/// A folder of a repository as the configuration writes it: no leading `./` or `/`, no
/// trailing `/`, `..` resolved; `None` for the root.
pub(super) fn folder(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// The path of `target` (from the repository's root) relative to the folder `from` (from the
/// root; `None`: the root), as value files are written (`../../envs/prod/values.yaml`).
pub(super) fn relative_to(from: Option<&str>, target: &str) -> String {
    let from: Vec<&str> = from.map(|f| f.split('/').collect()).unwrap_or_default();
    let target = folder(target).unwrap_or_default();
    let target: Vec<&str> = target.split('/').collect();
    let common = from
        .iter()
        .zip(&target)
        .take_while(|(a, b)| a == b)
        .count()
        // the file's own name is never part of the common folder
        .min(target.len().saturating_sub(1));
    let mut out: Vec<&str> = vec![".."; from.len() - common];
    out.extend(&target[common..]);
    out.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_are_written_one_way() {
        assert_eq!(folder("./charts/shop/"), Some("charts/shop".into()));
        assert_eq!(folder("/a/./b/../c"), Some("a/c".into()));
        assert_eq!(folder("./"), None);
        assert_eq!(folder(""), None);
    }

    #[test]
    fn paths_relative_to_a_folder() {
        assert_eq!(
            relative_to(Some("charts/shop"), "envs/prod/values.yaml"),
            "../../envs/prod/values.yaml"
        );
        assert_eq!(
            relative_to(Some("envs/prod/chart"), "envs/prod/values.yaml"),
            "../values.yaml"
        );
        assert_eq!(relative_to(None, "./values/x.yaml"), "values/x.yaml");
        assert_eq!(
            relative_to(Some("charts/shop"), "charts/shop/values-prod.yaml"),
            "values-prod.yaml"
        );
        assert_eq!(relative_to(Some("a"), "a"), "../a");
    }
}
