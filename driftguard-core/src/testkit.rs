//! Builders of the values tests need again and again (feature `testkit`, and this crate's own
//! tests): drifts ([`drift`]), their fields, events and records ([`field`], [`event`],
//! [`record`]) and manifests ([`deployment`], [`configmap`], [`object`]).
//!
//! Each builder starts from a plausible default, the Deployment `shop/web` of environment
//! `prod` at [`t0`], and a test says only what it is about. `driftguard-test-support`
//! re-exports this module as `build`, so the workspace has one set of builders: the crates
//! that depend on the core use them from there, the core's own tests from here.
//!
//! ```
//! use driftguard_core::state::{Direction, DriftKind};
//! use driftguard_core::testkit::{deployment, drift};
//! use serde_json::json;
//!
//! let d = drift()
//!     .name("api")
//!     .direction(Direction::Reverse)
//!     .field("spec.replicas", Some(json!(3)), Some(json!(5)))
//!     .build();
//! assert_eq!((d.id.name.as_str(), d.kind), ("api", DriftKind::Modified));
//! assert_eq!(d.api_version, "apps/v1");
//!
//! let manifest = deployment("api").replicas(3).image("api:1");
//! assert_eq!(manifest.clone().build()["spec"]["replicas"], 3);
//! assert!(manifest.yaml().contains("  namespace: shop\n"));
//! ```

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Map, Value};

use crate::compare::FieldDiff;
use crate::findings::{Finding, FindingCategory};
use crate::id::ResourceId;
use crate::model::Provenance;
use crate::severity::Severity;
use crate::state::{
    Attribution, Direction, Drift, DriftEvent, DriftKind, DriftRecord, EventKind, Resolution,
};

/// The time the builders use unless told otherwise: 2024-05-01T12:00:00Z.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0)
        .single()
        .expect("a valid time")
}

/// The API version of an object of `group` when a test does not name one: `v1` for the core
/// group, `<group>/v1` otherwise.
fn api_version_of(group: &str) -> String {
    if group.is_empty() {
        "v1".into()
    } else {
        format!("{group}/v1")
    }
}

// ---------------------------------------------------------------------------------- drifts

/// A drift, to be described: by default an open, forward, medium `modified` drift of the
/// Deployment `shop/web` in `prod`, episode `ep`, detected at [`t0`], with no fields.
pub fn drift() -> DriftBuilder {
    DriftBuilder {
        drift: Drift {
            episode: "ep".into(),
            id: ResourceId::new("prod", "apps", "Deployment", Some("shop"), "web"),
            api_version: String::new(),
            kind: DriftKind::Modified,
            direction: Direction::Forward,
            severity: Severity::Medium,
            fields: Vec::new(),
            attribution: Attribution::default(),
            detected_at: t0(),
            updated_at: t0(),
            resolved_at: None,
            resolution: None,
            resolved_by: None,
            recurrences: 0,
            recurred_at: None,
            revision: None,
            provenance: None,
            findings: Vec::new(),
        },
        api_version: None,
    }
}

/// A [`Drift`] being described; [`DriftBuilder::build`] makes it.
#[derive(Clone, Debug)]
#[must_use]
pub struct DriftBuilder {
    drift: Drift,
    api_version: Option<String>,
}

impl DriftBuilder {
    /// The episode id.
    pub fn episode(mut self, episode: impl Into<String>) -> Self {
        self.drift.episode = episode.into();
        self
    }

    /// The object, whole.
    pub fn id(mut self, id: ResourceId) -> Self {
        self.drift.id = id;
        self
    }

    /// The object's environment.
    pub fn environment(mut self, environment: impl Into<String>) -> Self {
        self.drift.id.environment = environment.into();
        self
    }

    /// The object's API group (`""` for the core group) and kind.
    pub fn object(mut self, group: &str, kind: &str) -> Self {
        self.drift.id.group = group.into();
        self.drift.id.kind = kind.into();
        self
    }

    /// The object's namespace (`""`: none, a cluster-scoped object).
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.drift.id.namespace = Some(namespace.to_owned()).filter(|n| !n.is_empty());
        self
    }

    /// The object's name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.drift.id.name = name.into();
        self
    }

    /// The object's API version (default: `v1` for the core group, `<group>/v1` otherwise).
    pub fn api_version(mut self, api_version: &str) -> Self {
        self.api_version = Some(api_version.into());
        self
    }

    /// The kind of drift.
    pub fn kind(mut self, kind: DriftKind) -> Self {
        self.drift.kind = kind;
        self
    }

    /// Which side moved.
    pub fn direction(mut self, direction: Direction) -> Self {
        self.drift.direction = direction;
        self
    }

    /// The severity.
    pub fn severity(mut self, severity: Severity) -> Self {
        self.drift.severity = severity;
        self
    }

    /// One more drifted field ([`field`]).
    pub fn field(mut self, path: &str, desired: Option<Value>, live: Option<Value>) -> Self {
        self.drift.fields.push(field(path, desired, live));
        self
    }

    /// The drifted fields, all of them.
    pub fn fields(mut self, fields: Vec<FieldDiff>) -> Self {
        self.drift.fields = fields;
        self
    }

    /// One more finding.
    pub fn finding(mut self, finding: Finding) -> Self {
        self.drift.findings.push(finding);
        self
    }

    /// Who made it.
    pub fn attribution(mut self, attribution: Attribution) -> Self {
        self.drift.attribution = attribution;
        self
    }

    /// Detected and last changed at `at`.
    pub fn at(mut self, at: DateTime<Utc>) -> Self {
        self.drift.detected_at = at;
        self.drift.updated_at = at;
        self
    }

    /// Detected at `at`.
    pub fn detected(mut self, at: DateTime<Utc>) -> Self {
        self.drift.detected_at = at;
        self
    }

    /// Last changed at `at`.
    pub fn updated(mut self, at: DateTime<Utc>) -> Self {
        self.drift.updated_at = at;
        self
    }

    /// Ended at `at`, the way `how` says.
    pub fn resolved(mut self, at: DateTime<Utc>, how: Resolution) -> Self {
        self.drift.resolved_at = Some(at);
        self.drift.resolution = Some(how);
        self
    }

    /// Ended by `who` (DriftGuard, for a remediation).
    pub fn resolved_by(mut self, who: &str) -> Self {
        self.drift.resolved_by = Some(who.into());
        self
    }

    /// The Git revision at the last update (also the revision of the provenance, if any).
    pub fn revision(mut self, revision: impl Into<String>) -> Self {
        self.drift.revision = Some(revision.into());
        self
    }

    /// Defined in Git in `file`, document `document` (0-based) starting at line `line`, at the
    /// drift's [revision](Self::revision).
    pub fn provenance(mut self, file: &str, document: usize, line: usize) -> Self {
        self.drift.provenance = Some(Provenance {
            file: file.into(),
            document,
            line,
            ..Provenance::default()
        });
        self
    }

    /// The drift.
    pub fn build(self) -> Drift {
        let mut d = self.drift;
        d.api_version = self
            .api_version
            .unwrap_or_else(|| api_version_of(&d.id.group));
        if let Some(p) = &mut d.provenance {
            p.revision.clone_from(&d.revision);
        }
        d
    }
}

/// A drifted field: its value in Git and in the cluster (`None`: absent on that side).
pub fn field(path: &str, desired: Option<Value>, live: Option<Value>) -> FieldDiff {
    FieldDiff {
        path: path.into(),
        desired,
        live,
    }
}

/// The finding of fewer replicas live than in Git (rule `replicas-cut`, availability, medium).
pub fn replicas_cut() -> Finding {
    Finding {
        rule: "replicas-cut".into(),
        category: FindingCategory::Availability,
        risk: Severity::Medium,
        path: Some("spec.replicas".into()),
        reason: "fewer replicas live".into(),
    }
}

/// An event of `drift` seen at `at` by scan `scan`, at the drift's revision, with the
/// deterministic id `<episode>-<kind>-<scan>`.
pub fn event(kind: EventKind, drift: &Drift, at: DateTime<Utc>, scan: &str) -> DriftEvent {
    DriftEvent {
        event_id: format!("{}-{}-{scan}", drift.episode, kind.as_str()),
        kind,
        at,
        scan_id: scan.into(),
        revision: drift.revision.clone(),
        drift: drift.clone(),
        remediation: None,
        acknowledgement: None,
    }
}

/// The record of object `id` with its open drift, if any, last changed at `at`; no hashes,
/// no baseline (change them with struct update syntax:
/// `DriftRecord { desired_hash: .., ..record(..) }`).
pub fn record(id: &ResourceId, drift: Option<Drift>, at: DateTime<Utc>) -> DriftRecord {
    DriftRecord {
        id: id.clone(),
        api_version: drift
            .as_ref()
            .map_or_else(|| api_version_of(&id.group), |d| d.api_version.clone()),
        desired_hash: None,
        live_hash: None,
        baseline: None,
        drift: drift.map(Box::new),
        applied_mark: None,
        reverted: None,
        updated_at: at,
    }
}

// ------------------------------------------------------------------------------- manifests

/// A Deployment `name` in namespace `shop`, with only what the test adds (no replicas, no
/// containers).
pub fn deployment(name: &str) -> ManifestBuilder {
    object("apps/v1", "Deployment", name)
}

/// A ConfigMap `name` in namespace `shop`, with no data until [`ManifestBuilder::data`].
pub fn configmap(name: &str) -> ManifestBuilder {
    object("v1", "ConfigMap", name)
}

/// An object of any kind, `name` in namespace `shop`.
pub fn object(api_version: &str, kind: &str, name: &str) -> ManifestBuilder {
    ManifestBuilder {
        value: json!({"apiVersion": api_version, "kind": kind,
            "metadata": {"name": name, "namespace": "shop"}}),
    }
}

/// A Kubernetes object being described, as JSON ([`build`](Self::build)) or as the YAML
/// file a person writes ([`yaml`](Self::yaml)).
#[derive(Clone, Debug)]
#[must_use]
pub struct ManifestBuilder {
    value: Value,
}

impl ManifestBuilder {
    /// Its namespace (`""`: none).
    pub fn namespace(self, namespace: &str) -> Self {
        if namespace.is_empty() {
            self.remove("/metadata/namespace")
        } else {
            self.set("/metadata/namespace", json!(namespace))
        }
    }

    /// One more label.
    pub fn label(self, key: &str, value: &str) -> Self {
        self.set_key("/metadata/labels", key, json!(value))
    }

    /// One more annotation.
    pub fn annotation(self, key: &str, value: &str) -> Self {
        self.set_key("/metadata/annotations", key, json!(value))
    }

    /// Its uid, as the API server gives every object it stores.
    pub fn uid(self, uid: &str) -> Self {
        self.set("/metadata/uid", json!(uid))
    }

    /// Its `managedFields` entries.
    pub fn managed_fields(self, entries: Vec<Value>) -> Self {
        self.set("/metadata/managedFields", Value::Array(entries))
    }

    /// `spec.replicas`.
    pub fn replicas(self, replicas: i64) -> Self {
        self.set("/spec/replicas", json!(replicas))
    }

    /// The selector a workload needs on a real API server: `app: <name>` in
    /// `spec.selector.matchLabels` and on the pod template.
    pub fn selector(self) -> Self {
        let name = self.value["metadata"]["name"].clone();
        self.set("/spec/selector/matchLabels", json!({ "app": name }))
            .set("/spec/template/metadata/labels", json!({ "app": name }))
    }

    /// One container, `app`, running `image` (in place of any containers added before).
    pub fn image(self, image: &str) -> Self {
        self.set(
            "/spec/template/spec/containers",
            json!([{"name": "app", "image": image}]),
        )
    }

    /// One more container, `name`, running `image`.
    pub fn container(self, name: &str, image: &str) -> Self {
        self.push(
            "/spec/template/spec/containers",
            json!({"name": name, "image": image}),
        )
    }

    /// One more environment variable of the last container.
    pub fn env(self, name: &str, value: &str) -> Self {
        let last = self.value["spec"]["template"]["spec"]["containers"]
            .as_array()
            .map_or(0, Vec::len)
            .checked_sub(1)
            .expect("env needs a container: call image or container first");
        self.push(
            &format!("/spec/template/spec/containers/{last}/env"),
            json!({"name": name, "value": value}),
        )
    }

    /// One more key of `data` (a ConfigMap's).
    pub fn data(self, key: &str, value: &str) -> Self {
        self.set_key("/data", key, json!(value))
    }

    /// Any other field, by JSON pointer (`/spec/revisionHistoryLimit`); missing parents are
    /// made as objects.
    pub fn set(mut self, pointer: &str, value: Value) -> Self {
        *slot(&mut self.value, pointer) = value;
        self
    }

    fn set_key(mut self, pointer: &str, key: &str, value: Value) -> Self {
        let map = slot(&mut self.value, pointer);
        if !map.is_object() {
            *map = Value::Object(Map::new());
        }
        map[key] = value;
        self
    }

    fn push(mut self, pointer: &str, value: Value) -> Self {
        let list = slot(&mut self.value, pointer);
        if !list.is_array() {
            *list = Value::Array(Vec::new());
        }
        list.as_array_mut().expect("made a list").push(value);
        self
    }

    fn remove(mut self, pointer: &str) -> Self {
        let (parent, key) = pointer.rsplit_once('/').expect("a pointer");
        if let Some(Value::Object(m)) = self.value.pointer_mut(parent) {
            m.remove(key);
        }
        self
    }

    /// The object.
    pub fn build(self) -> Value {
        self.value
    }

    /// The object as the YAML file a person writes: keys in the usual order (`apiVersion`,
    /// `kind`, `metadata` with `name` and `namespace` first, then `spec` or `data`), label
    /// maps inline (`labels: {app: web}`), lists as `- ` items at their key's indentation,
    /// strings quoted only where YAML would read them otherwise.
    pub fn yaml(&self) -> String {
        let mut out = String::new();
        match &self.value {
            Value::Object(m) => yaml_map(&mut out, m, 0),
            other => out.push_str(&yaml_scalar(other, false)),
        }
        out
    }
}

/// The value at `pointer`, made (as `null`, in objects made on the way) when missing.
fn slot<'a>(value: &'a mut Value, pointer: &str) -> &'a mut Value {
    let mut at = value;
    for token in pointer.split('/').skip(1) {
        let token = token.replace("~1", "/").replace("~0", "~");
        at = match at {
            Value::Array(items) => {
                let i: usize = token.parse().expect("a list index");
                &mut items[i]
            }
            other => {
                if !other.is_object() {
                    *other = Value::Object(Map::new());
                }
                other
                    .as_object_mut()
                    .expect("made an object")
                    .entry(token)
                    .or_insert(Value::Null)
            }
        };
    }
    at
}

/// Keys written first, in this order; the others follow alphabetically.
const KEY_ORDER: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "name",
    "namespace",
    "uid",
    "labels",
    "annotations",
    "spec",
    "data",
    "replicas",
    "selector",
    "template",
    "containers",
    "image",
];

/// Maps written inline, as people write them, when their values are scalars.
const INLINE: &[&str] = &["labels", "matchLabels", "annotations"];

fn yaml_map(out: &mut String, map: &Map<String, Value>, indent: usize) {
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_by_key(|(k, _)| {
        let rank = KEY_ORDER.iter().position(|o| o == k);
        (rank.unwrap_or(KEY_ORDER.len()), k.as_str())
    });
    for (i, (key, value)) in entries.into_iter().enumerate() {
        // the first entry of a list item follows its "- "
        if !(i == 0 && out.ends_with("- ")) {
            out.push_str(&" ".repeat(indent));
        }
        out.push_str(&yaml_string(key, false));
        out.push(':');
        yaml_value(out, key, value, indent);
    }
}

fn yaml_value(out: &mut String, key: &str, value: &Value, indent: usize) {
    match value {
        Value::Object(m) if m.is_empty() => out.push_str(" {}\n"),
        Value::Object(m)
            if INLINE.contains(&key) && m.values().all(|v| !v.is_object() && !v.is_array()) =>
        {
            let items: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{}: {}", yaml_string(k, true), yaml_scalar(v, true)))
                .collect();
            out.push_str(&format!(" {{{}}}\n", items.join(", ")));
        }
        Value::Object(m) => {
            out.push('\n');
            yaml_map(out, m, indent + 2);
        }
        Value::Array(items) if items.is_empty() => out.push_str(" []\n"),
        Value::Array(items) => {
            out.push('\n');
            for item in items {
                out.push_str(&" ".repeat(indent));
                out.push_str("- ");
                match item {
                    Value::Object(m) if !m.is_empty() => yaml_map(out, m, indent + 2),
                    // nested lists and empty maps: JSON is YAML's flow style
                    other => {
                        out.push_str(&other.to_string());
                        out.push('\n');
                    }
                }
            }
        }
        scalar => {
            out.push(' ');
            out.push_str(&yaml_scalar(scalar, false));
            out.push('\n');
        }
    }
}

fn yaml_scalar(value: &Value, inline: bool) -> String {
    match value {
        Value::String(s) => yaml_string(s, inline),
        other => other.to_string(),
    }
}

/// `s` plain when YAML (1.1 or 1.2) reads it back as this string, quoted otherwise.
fn yaml_string(s: &str, inline: bool) -> String {
    let plain = s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '/' || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._/-".contains(c) || (c == ':' && !inline))
        && !s.ends_with(':')
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n" | "null"
        );
    if plain {
        s.to_owned()
    } else {
        Value::String(s.to_owned()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deployment_reads_as_people_write_it() {
        let d = deployment("web")
            .replicas(3)
            .selector()
            .container("main", "web:1");
        assert_eq!(
            d.yaml(),
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\n\
             spec:\n  replicas: 3\n  selector:\n    matchLabels: {app: web}\n  template:\n    \
             metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      \
             - name: main\n        image: web:1\n"
        );
        let back: Value = serde_yaml::from_str(&d.yaml()).expect("YAML");
        assert_eq!(back, d.build());
    }

    #[test]
    fn yaml_quotes_what_would_read_otherwise() {
        let c = configmap("settings")
            .namespace("")
            .label("on", "yes")
            .data("n", "1")
            .data("mode", "git")
            .data("text", "a: b\n")
            .annotation("x", "a:b");
        assert_eq!(
            c.yaml(),
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  \
             labels: {\"on\": \"yes\"}\n  annotations: {x: \"a:b\"}\ndata:\n  mode: git\n  \
             \"n\": \"1\"\n  text: \"a: b\\n\"\n"
        );
        let back: Value = serde_yaml::from_str(&c.yaml()).expect("YAML");
        assert_eq!(back, c.build());
    }

    #[test]
    fn a_drift_names_its_api_version_and_provenance_revision() {
        let d = drift()
            .object("", "ConfigMap")
            .revision("r1")
            .provenance("a.yaml", 0, 1)
            .build();
        assert_eq!(d.api_version, "v1");
        assert_eq!(d.provenance.and_then(|p| p.revision).as_deref(), Some("r1"));
        let r = record(&d.id, None, t0());
        assert_eq!(r.api_version, "v1");
    }
}
