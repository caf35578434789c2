//! Parsing manifests: multi-document YAML (`---`) and JSON, `List` kinds unwrapped, each object
//! with the file, document index and line it came from. Pure: callers hand in the text.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::{ObjectMeta, Provenance, RawLive, RawManifest, RawObject};

/// A problem with one document of one file. The other documents and files are still read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub struct ManifestError {
    /// File path (relative to the source root, or as given).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// The field at fault, if one is.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // line 0: the line is not known (a rendered document)
        if self.line == 0 {
            write!(f, "{}: ", self.file)?;
        } else {
            write!(f, "{}:{}: ", self.file, self.line)?;
        }
        if let Some(field) = &self.field {
            write!(f, "field `{field}`: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Objects read from one file, and the problems met.
#[derive(Debug, Default)]
pub struct Parsed {
    /// Objects, in file order.
    pub objects: Vec<(RawObject, Provenance)>,
    /// Problems.
    pub errors: Vec<ManifestError>,
}

impl Parsed {
    /// As desired manifests.
    pub fn into_manifests(self) -> (Vec<RawManifest>, Vec<ManifestError>) {
        (
            self.objects
                .into_iter()
                .map(|(object, provenance)| RawManifest { object, provenance })
                .collect(),
            self.errors,
        )
    }

    /// As live objects (a dump).
    pub fn into_live(self) -> (Vec<RawLive>, Vec<ManifestError>) {
        (
            self.objects
                .into_iter()
                .map(|(object, _)| RawLive { object })
                .collect(),
            self.errors,
        )
    }
}

/// Whether a path names a manifest file DriftGuard reads.
pub fn is_manifest_path(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    lower.ends_with(".yaml") || lower.ends_with(".yml") || lower.ends_with(".json")
}

/// Parses one file's text. `revision` is recorded in each object's provenance.
pub fn parse_file(file: &str, text: &str, revision: Option<&str>) -> Parsed {
    let mut parsed = Parsed::default();
    if file.to_ascii_lowercase().ends_with(".json") {
        match serde_json::from_str::<Value>(text) {
            Ok(v) => accept(file, 0, 1, v, revision, &mut parsed),
            Err(e) => parsed.errors.push(ManifestError {
                file: file.to_owned(),
                line: e.line().max(1),
                field: None,
                message: format!("invalid JSON: {e}"),
            }),
        }
        return parsed;
    }
    for (index, (start, doc)) in split_documents(text).into_iter().enumerate() {
        if doc
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            continue;
        }
        match serde_yaml::from_str::<Value>(doc) {
            Ok(Value::Null) => {}
            Ok(v) => accept(file, index, start, v, revision, &mut parsed),
            Err(e) => {
                let line = e
                    .location()
                    .map_or(start, |l| start + l.line().saturating_sub(1));
                let msg = e.to_string();
                // serde_yaml appends " at line N column M"; our line is the file's
                let msg = match msg.find(" at line ") {
                    Some(i) => msg[..i].to_owned(),
                    None => msg,
                };
                parsed.errors.push(ManifestError {
                    file: file.to_owned(),
                    line,
                    field: None,
                    message: format!("invalid YAML: {msg}"),
                });
            }
        }
    }
    parsed
}

/// Reads one parsed JSON value as the `document`-th of `file`: an object (a `List` is
/// unwrapped), or an array of objects (a renderer's output). Lines are not known (0).
pub fn parse_json_value(
    file: &str,
    document: usize,
    value: Value,
    revision: Option<&str>,
) -> Parsed {
    let mut parsed = Parsed::default();
    match value {
        Value::Array(items) => {
            for item in items {
                accept(file, document, 0, item, revision, &mut parsed);
            }
        }
        v => accept(file, document, 0, v, revision, &mut parsed),
    }
    parsed
}

/// Splits YAML text at `---` lines; returns each document with its 1-based first line.
fn split_documents(text: &str) -> Vec<(usize, &str)> {
    let mut docs = Vec::new();
    let mut start_byte = 0;
    let mut start_line = 1;
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let trimmed = line.trim_end();
        let is_sep = trimmed == "---"
            || trimmed.starts_with("--- ")
            || trimmed.starts_with("---\t")
            || trimmed == "...";
        if is_sep {
            docs.push((start_line, &text[start_byte..offset]));
            start_byte = offset + line.len();
            start_line = i + 2;
        }
        offset += line.len();
    }
    docs.push((start_line, &text[start_byte..]));
    docs
}

fn accept(
    file: &str,
    document: usize,
    line: usize,
    value: Value,
    revision: Option<&str>,
    parsed: &mut Parsed,
) {
    let err = |field: Option<&str>, message: String| ManifestError {
        file: file.to_owned(),
        line,
        field: field.map(str::to_owned),
        message,
    };
    if !value.is_object() {
        parsed.errors.push(err(
            None,
            "document is not a mapping (expected a Kubernetes object)".into(),
        ));
        return;
    }
    let meta = ObjectMeta::of(&value);
    if meta.kind.ends_with("List") {
        if let Some(items) = value.get("items").and_then(Value::as_array) {
            for item in items {
                accept(file, document, line, item.clone(), revision, parsed);
            }
            return;
        }
    }
    for (field, present) in [
        ("apiVersion", !meta.api_version.is_empty()),
        ("kind", !meta.kind.is_empty()),
        ("metadata.name", !meta.name.is_empty()),
    ] {
        if !present {
            let what = if meta.kind.is_empty() {
                "object".to_owned()
            } else {
                format!("{} object", meta.kind)
            };
            parsed
                .errors
                .push(err(Some(field), format!("{what} has no `{field}`")));
            return;
        }
    }
    parsed.objects.push((
        RawObject::new(value),
        Provenance {
            file: file.to_owned(),
            document,
            line,
            revision: revision.map(str::to_owned),
            rendered: None,
        },
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_yaml_keeps_lines() {
        let text = "# comment\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n";
        let p = parse_file("x.yaml", text, Some("abc"));
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        assert_eq!(p.objects.len(), 2);
        assert_eq!(p.objects[0].1.line, 1);
        assert_eq!(p.objects[1].1.line, 7);
        assert_eq!(p.objects[1].1.document, 2);
        assert_eq!(p.objects[1].1.revision.as_deref(), Some("abc"));
    }

    #[test]
    fn bad_documents_are_reported_and_others_kept() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [unclosed\n---\napiVersion: v1\nkind: Secret\nmetadata: {}\n";
        let p = parse_file("bad.yaml", text, None);
        assert_eq!(p.objects.len(), 1);
        assert_eq!(p.errors.len(), 2);
        assert_eq!(p.errors[0].file, "bad.yaml");
        assert!(p.errors[0].line >= 5, "{:?}", p.errors[0]);
        assert!(p.errors[0].message.starts_with("invalid YAML"));
        assert_eq!(p.errors[1].line, 10);
        assert_eq!(p.errors[1].field.as_deref(), Some("metadata.name"));
        assert_eq!(
            p.errors[1].to_string(),
            "bad.yaml:10: field `metadata.name`: Secret object has no `metadata.name`"
        );
    }

    #[test]
    fn lists_are_unwrapped() {
        let text = r#"{"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}},
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"}}]}"#;
        let p = parse_file("dump.json", text, None);
        assert_eq!(p.objects.len(), 2);
        let p = parse_file("dump.json", "{not json", None);
        assert_eq!(p.errors.len(), 1);
    }
}
