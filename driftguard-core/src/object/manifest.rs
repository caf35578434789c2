//! Parsing manifests: multi-document YAML (`---`) and JSON, `List` kinds unwrapped, each object
//! with the file, document index and line it came from. Pure: callers hand in the text.

pub mod yaml11;

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
            Ok(mut v) => {
                // unquoted scalars as kubectl and Helm read them (YAML 1.1: `0755` is octal)
                yaml11::apply(&mut v, doc);
                accept(file, index, start, v, revision, &mut parsed)
            }
            Err(e) => parsed.errors.push(yaml_error(file, start, &e)),
        }
    }
    parsed
}

/// More objects than a dump may hold (see [`parse_dump`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooManyObjects {
    /// The limit that was passed.
    pub max_objects: usize,
    /// How many objects the file holds.
    pub found: usize,
}

/// Parses a dump (`kubectl get -o yaml/json` output) like [`parse_file`], holding at most
/// `max_objects` objects: the items of a `List` (and of a top-level array) are counted as they
/// are parsed, and those past the limit are skipped unparsed, so a dump far over the limit costs
/// memory for the limit's worth of objects, not for the whole dump. Over the limit it is an
/// error saying how many objects the file holds.
pub fn parse_dump(file: &str, text: &str, max_objects: usize) -> Result<Parsed, TooManyObjects> {
    let budget = bounded::Budget::new(max_objects);
    let mut parsed = Parsed::default();
    if file.to_ascii_lowercase().ends_with(".json") {
        let mut de = serde_json::Deserializer::from_str(text);
        let value = serde::de::DeserializeSeed::deserialize(bounded::Document(&budget), &mut de)
            .and_then(|v| de.end().map(|()| v));
        match value {
            Ok(v) => accept(file, 0, 1, v, None, &mut parsed),
            Err(e) => parsed.errors.push(ManifestError {
                file: file.to_owned(),
                line: e.line().max(1),
                field: None,
                message: format!("invalid JSON: {e}"),
            }),
        }
    } else {
        for (index, (start, doc)) in split_documents(text).into_iter().enumerate() {
            if doc
                .lines()
                .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
            {
                continue;
            }
            let value = serde::de::DeserializeSeed::deserialize(
                bounded::Document(&budget),
                serde_yaml::Deserializer::from_str(doc),
            );
            match value {
                Ok(Value::Null) => {}
                // a document of its own is one object (a list's items were counted)
                Ok(v) if v.is_object() && !v.get("items").is_some_and(Value::is_array) => {
                    if budget.take_one() {
                        accept(file, index, start, v, None, &mut parsed);
                    }
                }
                Ok(v) => accept(file, index, start, v, None, &mut parsed),
                Err(e) => parsed.errors.push(yaml_error(file, start, &e)),
            }
        }
    }
    let found = parsed.objects.len() + budget.over();
    if found > max_objects {
        return Err(TooManyObjects { max_objects, found });
    }
    Ok(parsed)
}

/// A YAML error as the file's: its line counted from the document's first line.
fn yaml_error(file: &str, start: usize, e: &serde_yaml::Error) -> ManifestError {
    let line = e
        .location()
        .map_or(start, |l| start + l.line().saturating_sub(1));
    let msg = e.to_string();
    // serde_yaml appends " at line N column M"; our line is the file's
    let msg = match msg.find(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg,
    };
    ManifestError {
        file: file.to_owned(),
        line,
        field: None,
        message: format!("invalid YAML: {msg}"),
    }
}

/// Parsing a document into a [`Value`] while counting the items of its top-level `items`
/// array (or of the document itself when it is an array) against a budget.
mod bounded {
    use std::cell::Cell;
    use std::fmt;

    use serde::de::value::MapAccessDeserializer;
    use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
    use serde::Deserialize;
    use serde_json::{Map, Value};

    /// How many objects may still be read, and how many were skipped past the limit.
    pub(super) struct Budget {
        left: Cell<usize>,
        over: Cell<usize>,
    }

    impl Budget {
        pub(super) fn new(max: usize) -> Self {
            Budget {
                left: Cell::new(max),
                over: Cell::new(0),
            }
        }

        /// Takes one object from the budget: `false` (and counted as over) when none is left.
        pub(super) fn take_one(&self) -> bool {
            match self.left.get().checked_sub(1) {
                Some(left) => {
                    self.left.set(left);
                    true
                }
                None => {
                    self.over.set(self.over.get() + 1);
                    false
                }
            }
        }

        /// Objects skipped past the limit.
        pub(super) fn over(&self) -> usize {
            self.over.get()
        }
    }

    /// A whole document: a mapping whose `items` are counted, or an array whose elements are.
    pub(super) struct Document<'a>(pub(super) &'a Budget);

    impl<'de> DeserializeSeed<'de> for Document<'_> {
        type Value = Value;

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
            d.deserialize_any(Counting {
                budget: self.0,
                document: true,
            })
        }
    }

    /// The `items` of a list: each element taken from the budget before it is parsed.
    struct Items<'a>(&'a Budget);

    impl<'de> DeserializeSeed<'de> for Items<'_> {
        type Value = Value;

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
            d.deserialize_any(Counting {
                budget: self.0,
                document: false,
            })
        }
    }

    /// Builds a [`Value`], counting the elements of an array against the budget; a mapping
    /// has its `items` counted when it is the document itself, and is read whole otherwise.
    struct Counting<'a> {
        budget: &'a Budget,
        document: bool,
    }

    impl<'de> Visitor<'de> for Counting<'_> {
        type Value = Value;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a Kubernetes object or list")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
            if !self.document {
                return Value::deserialize(MapAccessDeserializer::new(map));
            }
            let mut out = Map::new();
            while let Some(key) = map.next_key::<String>()? {
                let value = if key == "items" {
                    map.next_value_seed(Items(self.budget))?
                } else {
                    map.next_value::<Value>()?
                };
                out.insert(key, value);
            }
            Ok(Value::Object(out))
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
            let budget = self.budget;
            let mut out = Vec::new();
            loop {
                if budget.left.get() == 0 {
                    // past the limit: counted, skipped unparsed
                    if seq.next_element::<de::IgnoredAny>()?.is_none() {
                        break;
                    }
                    budget.over.set(budget.over.get() + 1);
                    continue;
                }
                match seq.next_element::<Value>()? {
                    Some(v) => {
                        budget.left.set(budget.left.get() - 1);
                        out.push(v);
                    }
                    None => break,
                }
            }
            Ok(Value::Array(out))
        }

        fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
            Ok(Value::Bool(v))
        }

        fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
            Ok(Value::from(v))
        }

        fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
            Ok(Value::from(v))
        }

        fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
            Ok(Value::from(v))
        }

        fn visit_str<E>(self, v: &str) -> Result<Value, E> {
            Ok(Value::String(v.to_owned()))
        }

        fn visit_string<E>(self, v: String) -> Result<Value, E> {
            Ok(Value::String(v))
        }

        fn visit_unit<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }

        fn visit_none<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
            Value::deserialize(d)
        }
    }
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
    if meta.kind.ends_with("List") && value.get("items").is_some_and(Value::is_array) {
        // the items are moved out, not copied: a large dump is not held twice
        let mut value = value;
        if let Some(Value::Array(items)) = value.as_object_mut().and_then(|m| m.remove("items")) {
            for item in items {
                accept(file, document, line, item, revision, parsed);
            }
        }
        return;
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
    if let Some(why) = name_refused(meta.name) {
        parsed.errors.push(err(
            Some("metadata.name"),
            format!("{} name {:?} {why}", meta.kind, meta.name),
        ));
        return;
    }
    if let Some(why) = meta.namespace.and_then(namespace_refused) {
        parsed.errors.push(err(
            Some("metadata.namespace"),
            format!("namespace {:?} {why}", meta.namespace.unwrap_or_default()),
        ));
        return;
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

/// Why the API server would refuse `name` as any object's name, whatever its kind: every name
/// must be usable as a path segment of its URL (apimachinery's `IsValidPathSegmentName`: not
/// `.` or `..`, no `/` or `%`); most kinds ask more (a DNS subdomain), which the API server
/// says when the object is applied. Control characters are refused too: no kind accepts them.
pub fn name_refused(name: &str) -> Option<&'static str> {
    if name == "." || name == ".." {
        Some("may not be `.` or `..`")
    } else if name.contains('/') || name.contains('%') {
        Some("may not contain `/` or `%`")
    } else if name.chars().any(char::is_control) {
        Some("may not contain control characters")
    } else if name.len() > 253 {
        Some("is longer than 253 characters")
    } else {
        None
    }
}

/// Why the API server would refuse `namespace` (a DNS label: at most 63 lower-case letters,
/// digits and `-`, starting and ending with a letter or digit). Empty: the default namespace.
pub fn namespace_refused(namespace: &str) -> Option<&'static str> {
    let ok = namespace.is_empty()
        || (namespace.len() <= 63
            && namespace
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !namespace.starts_with('-')
            && !namespace.ends_with('-'));
    (!ok).then_some(
        "is not a valid namespace name (at most 63 lower-case letters, digits and `-`, starting and ending with a letter or digit)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unquoted_scalars_are_read_as_kubectl_reads_them() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  volumes:\n    - name: s\n      secret: {secretName: s, defaultMode: 0755}\n  hostNetwork: no\n";
        let p = parse_file("pod.yaml", text, None);
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        let v = &p.objects[0].0 .0;
        assert_eq!(v["spec"]["volumes"][0]["secret"]["defaultMode"], 493);
        assert_eq!(v["spec"]["hostNetwork"], false);
        assert_eq!(v["metadata"]["name"], "p");
    }

    #[test]
    fn names_the_api_server_refuses_are_located_errors() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ../../etc/passwd\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: ../up}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: \"system:controller:x\"}\n";
        let p = parse_file("bad.yaml", text, None);
        let names: Vec<&str> = p.objects.iter().map(|(o, _)| o.meta().name).collect();
        assert_eq!(names, ["ok", "system:controller:x"]);
        assert_eq!(p.errors.len(), 2, "{:?}", p.errors);
        assert_eq!(p.errors[0].line, 5);
        assert_eq!(p.errors[0].field.as_deref(), Some("metadata.name"));
        assert!(
            p.errors[0]
                .to_string()
                .starts_with("bad.yaml:5: field `metadata.name`"),
            "{}",
            p.errors[0]
        );
        assert_eq!(p.errors[1].field.as_deref(), Some("metadata.namespace"));
        for bad in [".", "..", "a/b", "a%2f", "a\nb", &"x".repeat(254)] {
            assert!(name_refused(bad).is_some(), "{bad:?}");
        }
        assert!(name_refused("web-1.shop").is_none());
        assert!(namespace_refused("Shop").is_some());
        assert!(namespace_refused("shop-1").is_none());
    }

    fn json_list(n: usize) -> String {
        let items: Vec<String> = (0..n)
            .map(|i| {
                format!(r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"c{i}"}}}}"#)
            })
            .collect();
        format!(
            r#"{{"apiVersion":"v1","kind":"List","items":[{}]}}"#,
            items.join(",")
        )
    }

    #[test]
    fn a_dump_is_read_up_to_its_object_limit_and_no_further() {
        // JSON and YAML Lists, at the limit and one past it
        let json = json_list(10);
        let p = parse_dump("d.json", &json, 10).expect("at the limit");
        assert_eq!(p.objects.len(), 10);
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        assert_eq!(
            parse_dump("d.json", &json, 9).map(|p| p.objects.len()),
            Err(TooManyObjects {
                max_objects: 9,
                found: 10
            })
        );
        let yaml: Value = serde_json::from_str(&json).expect("json");
        let yaml = serde_yaml::to_string(&yaml).expect("yaml");
        assert_eq!(
            parse_dump("d.yaml", &yaml, 10).expect("fits").objects.len(),
            10
        );
        assert_eq!(
            parse_dump("d.yaml", &yaml, 3).map(|p| p.objects.len()),
            Err(TooManyObjects {
                max_objects: 3,
                found: 10
            })
        );
        // documents of their own count too
        let docs = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n";
        assert_eq!(
            parse_dump("d.yaml", docs, 2).expect("fits").objects.len(),
            2
        );
        assert_eq!(
            parse_dump("d.yaml", docs, 1).map(|p| p.objects.len()),
            Err(TooManyObjects {
                max_objects: 1,
                found: 2
            })
        );
        // the same objects, errors and lines as parse_file when it fits
        let bad = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\nkind: [\n";
        let a = parse_dump("b.yaml", bad, 100).expect("fits");
        let b = parse_file("b.yaml", bad, None);
        assert_eq!(a.objects.len(), b.objects.len());
        assert_eq!(a.errors, b.errors);
        let a = parse_dump("b.json", "{\"items\": [1, 2", 100).expect("an error, not a limit");
        assert_eq!(
            a.errors,
            parse_file("b.json", "{\"items\": [1, 2", None).errors
        );
    }

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
