//! The configuration reference, `docs/config-reference.md`, generated from the file's model.
//!
//! `schemars` derives a JSON Schema from the configuration types: doc comments become
//! descriptions, and serde's attributes give the keys (camelCase), which keys are required,
//! the defaults and the notifier variants chosen by `type`. [`reference_markdown`] renders that
//! schema as Markdown, one section per mapping. A test renders it and fails when the committed
//! file differs or when a key has no description (rust-analyzer generates its configuration
//! documentation the same way).

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};

use super::ConfigFile;

/// Keys of the configuration's model without a description.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("configuration keys without a description (give their fields a doc comment): {}", .keys.join(", "))]
pub struct UndocumentedKeys {
    /// The keys, as paths (`server.notifiers[].queue.capacity`).
    pub keys: Vec<String>,
}

/// The JSON Schema (draft 2020-12) of `driftguard.yaml`.
pub fn json_schema() -> Value {
    schemars::schema_for!(ConfigFile).to_value()
}

/// The configuration reference in Markdown: every key with its type, default and description.
pub fn reference_markdown() -> Result<String, UndocumentedKeys> {
    render(&json_schema())
}

const HEADER: &str = "# Configuration reference

<!-- Generated from the configuration types (driftguard-server/src/config/) by
`UPDATE_DOCS=1 cargo test -p driftguard-server config_reference`. Edit their doc comments,
not this file: a test fails when it is stale. -->

Every key of `driftguard.yaml`, generated from the types that read it. The
[configuration guide](configuration.md) shows a full example and explains how the parts work
together.

Keys are camelCase. The snake_case spellings that the `server:` section and the notifiers used
to have (`poll_interval`, `url_env`, ...) are still read, with a warning naming the file, the
line and the key to write instead. Unknown keys are errors. A blank default means the key is
optional and unset unless its description says otherwise; paths are relative to the folder
holding the file.
";

/// Renders a schema made by [`json_schema`].
fn render(schema: &Value) -> Result<String, UndocumentedKeys> {
    let empty = Map::new();
    let defs = schema
        .get("$defs")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let mut walk = Walk {
        defs,
        sections: vec![Section {
            paths: Vec::new(),
            schema,
        }],
        by_def: HashMap::new(),
    };
    walk.object(schema, "");
    let mut out = Render {
        walk: &walk,
        text: String::from(HEADER),
        value_types: BTreeMap::new(),
        undocumented: Vec::new(),
    };
    for section in &walk.sections {
        out.section(section);
    }
    if !out.value_types.is_empty() {
        out.text.push_str("\n## Value types\n");
        let types = std::mem::take(&mut out.value_types);
        for (title, description) in types {
            out.text
                .push_str(&format!("\n### {title}\n\n{description}\n"));
        }
    }
    if out.undocumented.is_empty() {
        Ok(out.text)
    } else {
        Err(UndocumentedKeys {
            keys: out.undocumented,
        })
    }
}

/// A mapping of the file: where it is used and its schema (an object, or variants by `type`).
struct Section<'a> {
    paths: Vec<String>,
    schema: &'a Value,
}

/// Finds the sections, in the order a reader meets them.
struct Walk<'a> {
    defs: &'a Map<String, Value>,
    sections: Vec<Section<'a>>,
    /// Definition name → index in `sections`.
    by_def: HashMap<&'a str, usize>,
}

impl<'a> Walk<'a> {
    fn object(&mut self, schema: &'a Value, at: &str) {
        for (key, prop) in properties(schema) {
            self.value(prop, &join(at, key));
        }
    }

    fn value(&mut self, schema: &'a Value, at: &str) {
        if let Some(name) = ref_name(schema) {
            if let Some((name, def)) = self.defs.get_key_value(name) {
                self.definition(name, def, at);
            }
        } else if let Some(items) = schema.get("items") {
            self.value(items, &format!("{at}[]"));
        } else {
            for alt in alternatives(schema) {
                self.value(alt, at);
            }
        }
    }

    fn definition(&mut self, name: &'a str, def: &'a Value, at: &str) {
        if !is_mapping(def) {
            return self.value(def, at);
        }
        // a mapping used in several places is one section listing them all
        match self.by_def.get(name) {
            Some(&i) if self.sections[i].paths.iter().any(|p| p == at) => return,
            Some(&i) => self.sections[i].paths.push(at.to_owned()),
            None => {
                self.by_def.insert(name, self.sections.len());
                self.sections.push(Section {
                    paths: vec![at.to_owned()],
                    schema: def,
                });
            }
        }
        if properties(def).next().is_some() {
            self.object(def, at);
        }
        for variant in variants(def) {
            self.object(variant, at);
        }
    }
}

/// Writes the Markdown.
struct Render<'w, 'a> {
    walk: &'w Walk<'a>,
    text: String,
    /// Named value types met (`duration`), with their description.
    value_types: BTreeMap<String, String>,
    undocumented: Vec<String>,
}

impl Render<'_, '_> {
    fn section(&mut self, section: &Section<'_>) {
        self.text
            .push_str(&format!("\n## {}\n", heading(&section.paths)));
        if let Some(d) = description(section.schema) {
            self.text.push_str(&format!("\n{d}\n"));
        }
        let at = section.paths.first().map_or("", String::as_str);
        if properties(section.schema).next().is_some() {
            self.table(section.schema, at, None);
        }
        let variants: Vec<&Value> = variants(section.schema).collect();
        if !variants.is_empty() {
            self.text
                .push_str("\nEach item is one of the following, chosen by its `type`.\n");
        }
        for variant in variants {
            let tag = properties(variant)
                .find(|(k, _)| *k == "type")
                .and_then(|(_, t)| constant(t))
                .unwrap_or_default();
            self.text.push_str(&format!("\n### `type: {tag}`\n"));
            if let Some(d) = description(variant) {
                self.text.push_str(&format!("\n{d}\n"));
            }
            self.table(variant, at, Some("type"));
        }
    }

    fn table(&mut self, schema: &Value, at: &str, skip: Option<&str>) {
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        self.text
            .push_str("\n| Key | Type | Default | Description |\n| --- | --- | --- | --- |\n");
        for (key, prop) in properties(schema) {
            if Some(key) == skip {
                continue;
            }
            let text = match description(prop) {
                Some(d) => d,
                None => {
                    self.undocumented.push(join(at, key));
                    String::new()
                }
            };
            let row = format!(
                "| `{key}` | {} | {} | {} |\n",
                self.type_of(prop),
                default_of(prop, required.contains(&key)),
                text
            );
            self.text.push_str(&row);
        }
    }

    fn type_of(&mut self, schema: &Value) -> String {
        if let Some(name) = ref_name(schema) {
            let Some(def) = self.walk.defs.get(name) else {
                return name.to_owned();
            };
            if let Some(&i) = self.walk.by_def.get(name) {
                let label = if variants(def).next().is_some() {
                    "mapping by `type`"
                } else {
                    "mapping"
                };
                let anchor = slug(&heading(&self.walk.sections[i].paths));
                return format!("[{label}](#{anchor})");
            }
            if let Some(title) = def.get("title").and_then(Value::as_str) {
                let text = description(def).unwrap_or_default();
                self.value_types.insert(title.to_owned(), text);
                return format!("[{title}](#{})", slug(title));
            }
            return self.type_of(def);
        }
        let consts: Vec<String> = alternatives(schema)
            .filter_map(constant)
            .chain(
                schema
                    .get("enum")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_owned),
            )
            .collect();
        if !consts.is_empty() {
            let values: Vec<String> = consts.iter().map(|c| format!("`{c}`")).collect();
            return format!("one of {}", values.join(", "));
        }
        let alts: Vec<&Value> = alternatives(schema).collect();
        if !alts.is_empty() {
            let types: Vec<String> = alts.into_iter().map(|a| self.type_of(a)).collect();
            return types.join(" or ");
        }
        let types: Vec<&str> = match schema.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts
                .iter()
                .filter_map(Value::as_str)
                .filter(|t| *t != "null")
                .collect(),
            _ => Vec::new(),
        };
        let names: Vec<String> = types
            .into_iter()
            .map(|t| match t {
                "array" => match schema.get("items") {
                    Some(items) => format!("list of {}", self.type_of(items)),
                    None => "list".to_owned(),
                },
                "object" => "mapping".to_owned(),
                other => other.to_owned(),
            })
            .collect();
        if names.is_empty() {
            "any".to_owned()
        } else {
            names.join(" or ")
        }
    }
}

/// A section's heading: its paths (`notifications[]`, `server.notifiers[]`).
fn heading(paths: &[String]) -> String {
    if paths.is_empty() {
        return "Top level".to_owned();
    }
    let quoted: Vec<String> = paths.iter().map(|p| format!("`{p}`")).collect();
    quoted.join(", ")
}

/// The anchor a Markdown renderer gives a heading (GitHub's rule: lower case, punctuation
/// dropped, spaces become `-`).
fn slug(heading: &str) -> String {
    heading
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

fn join(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_owned()
    } else {
        format!("{at}.{key}")
    }
}

fn properties(schema: &Value) -> impl Iterator<Item = (&str, &Value)> {
    schema
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v))
}

/// The alternatives of an `anyOf` or `oneOf`, without `null`.
fn alternatives(schema: &Value) -> impl Iterator<Item = &Value> {
    ["anyOf", "oneOf"]
        .into_iter()
        .filter_map(|k| schema.get(k).and_then(Value::as_array))
        .flatten()
        .filter(|alt| alt.get("type").and_then(Value::as_str) != Some("null"))
}

/// The variants of a tagged enum: alternatives that are mappings.
fn variants(schema: &Value) -> impl Iterator<Item = &Value> {
    alternatives(schema).filter(|alt| properties(alt).next().is_some())
}

fn is_mapping(schema: &Value) -> bool {
    properties(schema).next().is_some() || variants(schema).next().is_some()
}

fn ref_name(schema: &Value) -> Option<&str> {
    schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/$defs/"))
}

fn constant(schema: &Value) -> Option<String> {
    schema
        .get("const")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// A schema's description on one line, ready for a table cell: rustdoc's intra-doc links
/// (``[`ObjectSelector`]``) become plain code.
fn description(schema: &Value) -> Option<String> {
    let d = schema.get("description").and_then(Value::as_str)?;
    let one_line = d.split_whitespace().collect::<Vec<_>>().join(" ");
    (!one_line.is_empty()).then(|| without_doc_links(&one_line).replace('|', "\\|"))
}

/// ``[`name`]`` → `` `name` `` when no link target follows.
fn without_doc_links(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("[`") {
        let after = &rest[start + 1..];
        let Some(end) = after.find("`]") else {
            break;
        };
        let code = &after[..end + 1];
        let tail = &after[end + 2..];
        out.push_str(&rest[..start]);
        if tail.starts_with('(') || tail.starts_with('[') || code.contains('[') {
            out.push('[');
            out.push_str(code);
            out.push(']');
        } else {
            out.push_str(code);
        }
        rest = tail;
    }
    out.push_str(rest);
    out
}

fn default_of(schema: &Value, required: bool) -> String {
    match schema.get("default") {
        None | Some(Value::Null) if required => "required".to_owned(),
        None | Some(Value::Null) | Some(Value::Object(_)) => String::new(),
        Some(Value::String(s)) => format!("`{s}`"),
        Some(v) => format!("`{v}`"),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// The committed reference is the one the types give (`UPDATE_DOCS=1` rewrites it).
    #[test]
    fn config_reference() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/config-reference.md");
        let want = reference_markdown().unwrap_or_else(|e| panic!("{e}"));
        if std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::write(&path, &want).expect("docs/config-reference.md is writable");
            return;
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        if have != want {
            let line = have
                .lines()
                .zip(want.lines())
                .position(|(a, b)| a != b)
                .unwrap_or_else(|| have.lines().count().min(want.lines().count()))
                + 1;
            panic!(
                "docs/config-reference.md is stale: the configuration types changed (first \
                 difference at line {line}). Regenerate it with\n\n    \
                 UPDATE_DOCS=1 cargo test -p driftguard-server config_reference\n\nand commit it."
            );
        }
    }

    #[test]
    fn the_reference_documents_every_key_with_its_default() {
        let doc = reference_markdown().expect("every key is documented");
        for row in [
            "| `cacheTtl` | [duration](#duration) | `1s` | Longest time",
            "| `pollInterval` | [duration](#duration) | `60s` |",
            "| `name` | string | required |",
            "| `minSeverity` | one of `low`, `medium`, `high`, `critical` |  |",
            "| `routingKeyEnv` | string | required |",
            "| `dir` | string or [mapping](#environmentsdir) |  |",
            "| `dump` | string or list of string |  |",
            "| `notifications` | list of [mapping by `type`](#notifications-servernotifiers) | `[]` |",
            "| `tls` | one of `auto`, `starttls`, `tls`, `none` | `auto` |",
        ] {
            assert!(doc.contains(row), "missing {row:?} in\n{doc}");
        }
        for heading in [
            "## `server`",
            "## `notifications[]`, `server.notifiers[]`",
            "### `type: pagerduty`",
            "## `notifications[].queue`, `server.notifiers[].queue`",
            "## `environments[].ignore[]`, `discover.defaults.ignore[]`",
            "### duration",
        ] {
            assert!(
                doc.lines().any(|l| l == heading),
                "missing {heading:?} in\n{doc}"
            );
        }
        let snake: Vec<&str> = doc
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split('`').next())
            .filter(|key| key.contains('_'))
            .collect();
        assert!(snake.is_empty(), "snake_case keys: {snake:?}");
    }

    #[test]
    fn doc_links_become_code() {
        assert_eq!(
            without_doc_links("which objects ([`ObjectSelector`], inline) and [`a`](b.md)"),
            "which objects (`ObjectSelector`, inline) and [`a`](b.md)"
        );
        assert_eq!(without_doc_links("no link [`x"), "no link [`x");
    }

    #[test]
    fn a_key_without_a_description_is_refused() {
        #[derive(schemars::JsonSchema)]
        #[serde(rename_all = "camelCase")]
        #[allow(dead_code)]
        struct Part {
            /// Documented.
            shown: u32,
            hidden_key: Inner,
        }
        #[derive(schemars::JsonSchema)]
        #[allow(dead_code)]
        struct Inner {
            /// Documented.
            a: bool,
            b: bool,
        }
        let schema = schemars::schema_for!(Part).to_value();
        let e = render(&schema).expect_err("undocumented keys");
        assert_eq!(e.keys, vec!["hiddenKey", "hiddenKey.b"]);
        assert!(e.to_string().contains("hiddenKey.b"), "{e}");
    }
}
