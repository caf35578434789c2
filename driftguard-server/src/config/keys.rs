//! The key style of the configuration file: camelCase everywhere. The `server:` section and
//! the notifiers used to be written in snake_case; those spellings are still read (serde
//! aliases on the model), and this module finds them in the parsed YAML so that loading can
//! warn about each one.

use serde_yaml::Value;

/// A snake_case key found in a document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OldKey {
    /// Where it is, as written (`server.notifiers[0].url_env`).
    pub path: String,
    /// The camelCase key to write instead (`urlEnv`).
    pub camel: String,
}

/// The mappings of the model whose keys are the user's (labels, annotations, variables, a
/// patch's target): their keys may hold `_` and are never looked at.
pub(crate) const FREE_FORM: &[&str] = &[
    "commonLabels",
    "commonAnnotations",
    "substitute",
    "target",
    "environmentLabels",
];

/// Every snake_case key of `doc`, in document order.
///
/// Meant for a document that the model accepted: the model refuses unknown keys in every
/// mapping and has no mapping of free-form keys but those named in [`FREE_FORM`] (a test of the
/// schema checks both), so there every other key holding `_` is one of the deprecated aliases.
pub(crate) fn snake_case_keys(doc: &Value) -> Vec<OldKey> {
    let mut out = Vec::new();
    walk(doc, "", &mut out);
    out
}

fn walk(value: &Value, at: &str, out: &mut Vec<OldKey>) {
    match value {
        Value::Mapping(map) => {
            for (key, value) in map {
                let Some(key) = key.as_str() else {
                    continue;
                };
                let path = if at.is_empty() {
                    key.to_owned()
                } else {
                    format!("{at}.{key}")
                };
                if key.contains('_') {
                    out.push(OldKey {
                        path: path.clone(),
                        camel: camel_case(key),
                    });
                }
                if !FREE_FORM.contains(&key) {
                    walk(value, &path, out);
                }
            }
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, &format!("{at}[{i}]"), out);
            }
        }
        Value::Tagged(tagged) => walk(&tagged.value, at, out),
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => {}
    }
}

/// `poll_interval` → `pollInterval`.
pub(crate) fn camel_case(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '_' {
            upper = !out.is_empty();
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// `pollInterval` → `poll_interval`.
pub(crate) fn snake_case(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings() {
        assert_eq!(camel_case("poll_interval"), "pollInterval");
        assert_eq!(camel_case("routing_key_env"), "routingKeyEnv");
        assert_eq!(camel_case("listen"), "listen");
        assert_eq!(snake_case("routingKeyEnv"), "routing_key_env");
        assert_eq!(snake_case("caFile"), "ca_file");
        assert_eq!(snake_case("listen"), "listen");
    }

    #[test]
    fn finds_old_keys_in_document_order_with_their_paths() {
        let doc: Value = serde_yaml::from_str(
            "environments:\n  - name: a_b\n    namespaces: [x_y]\nserver:\n  poll_interval: 30s\n  tokenEnv: T\n  notifiers:\n    - type: slack\n      urlEnv: U\n    - type: webhook\n      url: http://h/x_y\n      secret_env: S\n      queue: {group_window: 1s}\n",
        )
        .expect("yaml");
        let found = snake_case_keys(&doc);
        assert_eq!(
            found,
            vec![
                OldKey {
                    path: "server.poll_interval".into(),
                    camel: "pollInterval".into()
                },
                OldKey {
                    path: "server.notifiers[1].secret_env".into(),
                    camel: "secretEnv".into()
                },
                OldKey {
                    path: "server.notifiers[1].queue.group_window".into(),
                    camel: "groupWindow".into()
                },
            ],
            "values holding `_` are not keys"
        );
        // the keys of labels, annotations, variables and patch targets are the user's
        let doc: Value = serde_yaml::from_str(
            "environments:\n  - name: a\n    kustomize:\n      commonLabels: {team_name: x}\n      substitute: {db_host: h}\n      patches: [{patch: p, target: {label_selector: x}}]\n      name_prefix: p-\n",
        )
        .expect("yaml");
        let found: Vec<String> = snake_case_keys(&doc).into_iter().map(|k| k.path).collect();
        assert_eq!(found, ["environments[0].kustomize.name_prefix"]);
    }

    /// The configuration examples of the docs and of `examples/` are written in camelCase.
    #[test]
    fn documented_configurations_use_camel_case_keys() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let top: Vec<String> = crate::config::json_schema()["properties"]
            .as_object()
            .expect("the file is a mapping")
            .keys()
            .cloned()
            .collect();
        let mut texts = vec![(
            "examples/demo/driftguard.yaml".to_owned(),
            std::fs::read_to_string(root.join("examples/demo/driftguard.yaml")).expect("demo"),
        )];
        for doc in std::fs::read_dir(root.join("docs")).expect("docs") {
            let path = doc.expect("docs entry").path();
            if path.extension().is_some_and(|e| e == "md") {
                let text = std::fs::read_to_string(&path).expect("readable doc");
                for (i, block) in text.split("```yaml\n").skip(1).enumerate() {
                    let block = block.split("```").next().unwrap_or_default();
                    texts.push((format!("{} block {}", path.display(), i + 1), block.into()));
                }
            }
        }
        let mut configs = 0;
        let mut old = Vec::new();
        for (name, text) in texts {
            let Ok(Value::Mapping(doc)) = serde_yaml::from_str::<Value>(&text) else {
                continue;
            };
            // configuration files only, not the Kubernetes manifests of the walkthrough
            if !doc
                .keys()
                .all(|k| k.as_str().is_some_and(|k| top.iter().any(|t| t == k)))
            {
                continue;
            }
            configs += 1;
            let found = snake_case_keys(&Value::Mapping(doc));
            old.extend(found.into_iter().map(|k| format!("{name}: {}", k.path)));
        }
        assert!(configs >= 5, "found only {configs} configuration examples");
        assert!(old.is_empty(), "snake_case keys in examples: {old:#?}");
    }

    /// What [`snake_case_keys`] relies on: every mapping of the model refuses unknown keys,
    /// and none has free-form keys but those of [`FREE_FORM`].
    #[test]
    fn every_mapping_of_the_model_refuses_unknown_keys() {
        fn check(v: &serde_json::Value, at: &str, bad: &mut Vec<String>) {
            match v {
                serde_json::Value::Object(m) => {
                    if m.contains_key("properties")
                        && m.get("additionalProperties") != Some(&serde_json::Value::Bool(false))
                    {
                        bad.push(format!("{at}: open mapping"));
                    }
                    let free_form = FREE_FORM
                        .iter()
                        .any(|k| at.contains(&format!("/properties/{k}")));
                    if (m.get("additionalProperties").is_some_and(|a| a.is_object())
                        || m.contains_key("patternProperties"))
                        && !free_form
                    {
                        bad.push(format!("{at}: free-form keys"));
                    }
                    for (k, v) in m {
                        check(v, &format!("{at}/{k}"), bad);
                    }
                }
                serde_json::Value::Array(items) => {
                    for (i, v) in items.iter().enumerate() {
                        check(v, &format!("{at}/{i}"), bad);
                    }
                }
                _ => {}
            }
        }
        let schema = crate::config::json_schema();
        let mut bad = Vec::new();
        check(&schema, "#", &mut bad);
        assert!(bad.is_empty(), "{bad:?}");
    }
}
