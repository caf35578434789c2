//! The resource model: raw objects as sources hand them over, with their provenance, and typed
//! accessors the engine needs.
//!
//! Raw objects are unstructured (`serde_json::Value`), like `kubectl` sees them. They may hold
//! Secret values in plain text, so their `Debug` output never shows the content; they are turned
//! into normalized views (see [`crate::normalize`]) before anything is compared, stored or printed.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::id::{GroupKind, ResourceId};

/// A Git commit, as far as DriftGuard reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitInfo {
    /// Full object id (hex).
    pub id: String,
    /// Author name.
    pub author: String,
    /// Author e-mail.
    #[serde(default)]
    pub email: String,
    /// Author time.
    pub time: DateTime<Utc>,
    /// First line of the message.
    pub message: String,
}

/// A revision of the desired state: a Git commit, or a content hash for plain folders.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revision {
    /// Commit id, or `dir:<hash>` for a folder that is not a Git repository.
    pub id: String,
    /// The commit, when the source is Git.
    pub commit: Option<CommitInfo>,
}

impl Revision {
    /// A revision that is not a commit (a plain folder, a test).
    pub fn plain(id: impl Into<String>) -> Self {
        Revision {
            id: id.into(),
            commit: None,
        }
    }

    /// The id shortened to 12 characters for display.
    pub fn short(&self) -> &str {
        let end = self
            .id
            .char_indices()
            .nth(12)
            .map_or(self.id.len(), |(i, _)| i);
        &self.id[..end]
    }
}

/// Where a desired object came from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// File path relative to the source root.
    pub file: String,
    /// Index of the YAML document in the file (0-based).
    pub document: usize,
    /// Line (1-based) where the document starts.
    pub line: usize,
    /// The Git commit (or plain revision id) the file was read at.
    pub revision: Option<String>,
    /// How the object was rendered, when a renderer (a Helm chart, a command) made it; `file`
    /// is then the template it came from (helm's `# Source:`), or what the command is named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rendered: Option<Box<Rendering>>,
}

/// How a rendered object was made: which renderer, from which inputs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rendering {
    /// `helm`, `kustomize` or `command`.
    pub renderer: String,
    /// The chart folder (or the folder the command ran in), relative to the source root.
    pub source: String,
    /// The value files in play, relative to the source root, in the order given (the last
    /// wins).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    /// The newest commit that changed an input of the rendering (the chart, a value file),
    /// when the source is Git.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs_commit: Option<String>,
    /// Fields (JSON pointers) the renderer gives a new value on every run of the same inputs
    /// (a chart's `randAlphaNum` password, `genCA` certificate, `uuidv4`, `now`): not Git's, so
    /// not compared (see [`crate::render::unstable_fields`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unstable: Vec<String>,
}

impl fmt::Display for Provenance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.rendered {
            None => write!(f, "{}:{}", self.file, self.line),
            Some(r) => {
                let source = if r.source.is_empty() { "." } else { &r.source };
                write!(f, "{} (rendered by {} from {source}", self.file, r.renderer)?;
                if !r.values.is_empty() {
                    write!(f, " with {}", r.values.join(", "))?;
                }
                if let Some(c) = &r.inputs_commit {
                    write!(f, ", inputs last changed in {}", &c[..c.len().min(12)])?;
                }
                f.write_str(")")
            }
        }
    }
}

/// An unstructured object whose content is never printed by `Debug`.
///
/// The value is shared: cloning a `RawObject` is cheap (a reference count), so sources can keep
/// parsed objects cached and hand them out again without copying them.
#[derive(Clone, PartialEq)]
pub struct RawObject(pub Arc<Value>);

impl fmt::Debug for RawObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let meta = ObjectMeta::of(&self.0);
        write!(
            f,
            "RawObject({}/{} {}/{}, content redacted)",
            meta.api_version,
            meta.kind,
            meta.namespace.unwrap_or(""),
            meta.name
        )
    }
}

impl From<Value> for RawObject {
    fn from(value: Value) -> Self {
        RawObject::new(value)
    }
}

impl RawObject {
    /// Wraps a value.
    pub fn new(value: Value) -> Self {
        RawObject(Arc::new(value))
    }

    /// The value.
    pub fn value(&self) -> &Value {
        &self.0
    }

    /// The value, owned (copied only when it is shared).
    pub fn into_value(self) -> Value {
        Arc::try_unwrap(self.0).unwrap_or_else(|shared| (*shared).clone())
    }

    /// Typed view of the identifying fields.
    pub fn meta(&self) -> ObjectMeta<'_> {
        ObjectMeta::of(&self.0)
    }
}

/// A desired object as read from Git or a folder.
#[derive(Clone, Debug, PartialEq)]
pub struct RawManifest {
    /// The object.
    pub object: RawObject,
    /// Where it came from.
    pub provenance: Provenance,
}

/// A live object as read from a cluster or a dump.
#[derive(Clone, Debug, PartialEq)]
pub struct RawLive {
    /// The object, as the API server returned it.
    pub object: RawObject,
}

impl RawLive {
    /// Wraps a value.
    pub fn new(value: Value) -> Self {
        RawLive {
            object: RawObject::new(value),
        }
    }
}

/// The live objects of a snapshot: parsed, or kept by the source as the compact JSON text of
/// one object each and parsed one at a time as they are read.
///
/// A source that caches objects as text (the shared watch caches) hands them over without
/// parsing them, so a scan holds one parsed object at a time instead of all of them: the peak
/// of a first scan is the text, not the parsed trees (about 1.5 KB against 10 KB for an
/// ordinary Deployment). Text that does not parse as an object is skipped when read; sources
/// only ever keep what they serialized themselves. `Debug` never shows the content.
#[derive(Clone, Default, PartialEq)]
pub struct LiveObjects {
    items: Vec<LiveItem>,
}

/// An object its source keeps packed (compressed, say) and unpacks to the compact JSON text
/// of one object only when a scan reaches it: a cache of many objects hands them over without
/// a copy of each.
pub trait PackedText: Send + Sync {
    /// The object's compact JSON text; `None` when it cannot be unpacked (the object is then
    /// skipped, as text that does not parse is).
    fn unpack(&self) -> Option<String>;
}

#[derive(Clone)]
enum LiveItem {
    Parsed(RawLive),
    Compact(Arc<str>),
    Packed(Arc<dyn PackedText>),
}

impl PartialEq for LiveItem {
    fn eq(&self, other: &LiveItem) -> bool {
        match (self, other) {
            (LiveItem::Parsed(a), LiveItem::Parsed(b)) => a == b,
            _ => self.parse() == other.parse(),
        }
    }
}

impl LiveItem {
    fn parse(&self) -> Option<RawLive> {
        let parse = |text: &str| {
            serde_json::from_str::<Value>(text)
                .ok()
                .filter(Value::is_object)
                .map(RawLive::new)
        };
        match self {
            LiveItem::Parsed(raw) => Some(raw.clone()),
            LiveItem::Compact(text) => parse(text),
            LiveItem::Packed(packed) => parse(&packed.unpack()?),
        }
    }
}

/// What the identifying fields of a compact object say, read without parsing the rest.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(rename = "apiVersion", default, borrow)]
    api_version: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    metadata: HeadMeta<'a>,
}

#[derive(Default, Deserialize)]
struct HeadMeta<'a> {
    #[serde(default, borrow)]
    name: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    namespace: Option<std::borrow::Cow<'a, str>>,
}

impl fmt::Debug for LiveObjects {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LiveObjects({} objects, content redacted)", self.len())
    }
}

impl LiveObjects {
    /// No objects.
    pub fn new() -> Self {
        Self::default()
    }

    /// Room for `n` objects.
    pub fn with_capacity(n: usize) -> Self {
        LiveObjects {
            items: Vec::with_capacity(n),
        }
    }

    /// Adds a parsed object.
    pub fn push(&mut self, raw: RawLive) {
        self.items.push(LiveItem::Parsed(raw));
    }

    /// Adds an object kept as the compact JSON text of one object (shared, not copied).
    pub fn push_compact(&mut self, text: Arc<str>) {
        self.items.push(LiveItem::Compact(text));
    }

    /// Adds an object its source keeps packed (shared, not copied; unpacked when read).
    pub fn push_packed(&mut self, packed: Arc<dyn PackedText>) {
        self.items.push(LiveItem::Packed(packed));
    }

    /// How many objects.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The objects, each parsed as it is reached (a parsed one is shared, not copied).
    pub fn iter(&self) -> impl Iterator<Item = RawLive> + '_ {
        self.items.iter().filter_map(LiveItem::parse)
    }

    /// The objects whose identifying fields `keep` accepts; a compact object is parsed only
    /// when it is kept.
    pub fn iter_where<'s>(
        &'s self,
        mut keep: impl FnMut(ObjectMeta<'_>) -> bool + 's,
    ) -> impl Iterator<Item = RawLive> + 's {
        self.items.iter().filter_map(move |item| match item {
            LiveItem::Parsed(raw) => keep(raw.object.meta()).then(|| raw.clone()),
            LiveItem::Compact(text) => with_head(text, &mut keep)?.then(|| item.parse()).flatten(),
            LiveItem::Packed(packed) => {
                let text = packed.unpack()?;
                with_head(&text, &mut keep)?
                    .then(|| serde_json::from_str::<Value>(&text).ok())
                    .flatten()
                    .filter(Value::is_object)
                    .map(RawLive::new)
            }
        })
    }

    /// Visits each object's identifying fields (a compact object's are read without parsing
    /// the rest of it).
    pub fn for_each_meta(&self, mut visit: impl FnMut(ObjectMeta<'_>)) {
        for item in &self.items {
            match item {
                LiveItem::Parsed(raw) => visit(raw.object.meta()),
                LiveItem::Compact(text) => {
                    with_head(text, &mut visit);
                }
                LiveItem::Packed(packed) => {
                    if let Some(text) = packed.unpack() {
                        with_head(&text, &mut visit);
                    }
                }
            }
        }
    }

    /// The objects, all parsed (for callers that keep them).
    pub fn to_vec(&self) -> Vec<RawLive> {
        self.iter().collect()
    }

    /// The objects, each parsed as it is reached and its text let go once it is passed on (the
    /// last holder of a compact text frees it): a consumer that keeps less than the object
    /// never holds the whole set twice.
    pub fn into_parsed(self) -> impl Iterator<Item = RawLive> {
        self.items.into_iter().filter_map(|item| match item {
            LiveItem::Parsed(raw) => Some(raw),
            compact => compact.parse(),
        })
    }
}

/// Desired objects kept as the compact JSON text of one object each, with their provenance,
/// between reading them and indexing them: while a scan lists the live side and reads its
/// records, Git's objects wait at about a tenth of their parsed size (a parsed manifest of a
/// few hundred bytes of YAML is about 3 KB of maps and strings). Indexing parses them back one
/// at a time ([`PackedManifests::into_parsed`]). `Debug` never shows the content.
#[derive(Clone, Default)]
pub struct PackedManifests {
    items: Vec<(Box<str>, Box<Provenance>)>,
}

impl fmt::Debug for PackedManifests {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PackedManifests({} objects)", self.items.len())
    }
}

impl PackedManifests {
    /// Packs `objects`, letting each parsed one go as it is packed.
    pub fn pack(objects: Vec<RawManifest>) -> Self {
        let mut items = Vec::with_capacity(objects.len());
        for m in objects {
            let RawManifest { object, provenance } = m;
            // a Value always serializes (its keys are strings)
            if let Ok(text) = serde_json::to_string(object.value()) {
                items.push((text.into_boxed_str(), Box::new(provenance)));
            }
        }
        PackedManifests { items }
    }

    /// How many objects.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The objects, each parsed as it is reached.
    pub fn iter(&self) -> impl Iterator<Item = RawManifest> + '_ {
        self.items.iter().filter_map(|(text, p)| unpack(text, p))
    }

    /// The objects whose identifying fields `keep` accepts, parsed only when kept.
    pub fn iter_where<'s>(
        &'s self,
        mut keep: impl FnMut(ObjectMeta<'_>) -> bool + 's,
    ) -> impl Iterator<Item = RawManifest> + 's {
        self.items
            .iter()
            .filter(move |(text, _)| with_head(text, &mut keep).unwrap_or(false))
            .filter_map(|(text, p)| unpack(text, p))
    }

    /// The objects, each parsed as it is reached and its text let go once it is passed on.
    pub fn into_parsed(self) -> impl Iterator<Item = RawManifest> {
        self.items.into_iter().filter_map(|(text, p)| {
            let value = serde_json::from_str::<Value>(&text).ok()?;
            drop(text);
            Some(RawManifest {
                object: RawObject::new(value),
                provenance: *p,
            })
        })
    }
}

fn unpack(text: &str, provenance: &Provenance) -> Option<RawManifest> {
    Some(RawManifest {
        object: RawObject::new(serde_json::from_str(text).ok()?),
        provenance: provenance.clone(),
    })
}

/// Calls `f` with the identifying fields of the compact object `text`; `None` when it is not
/// an object.
fn with_head<R>(text: &str, f: &mut impl FnMut(ObjectMeta<'_>) -> R) -> Option<R> {
    let head: Head<'_> = serde_json::from_str(text).ok()?;
    Some(f(ObjectMeta {
        api_version: &head.api_version,
        kind: &head.kind,
        name: &head.metadata.name,
        namespace: head.metadata.namespace.as_deref().filter(|n| !n.is_empty()),
    }))
}

impl From<Vec<RawLive>> for LiveObjects {
    fn from(objects: Vec<RawLive>) -> Self {
        LiveObjects {
            items: objects.into_iter().map(LiveItem::Parsed).collect(),
        }
    }
}

impl FromIterator<RawLive> for LiveObjects {
    fn from_iter<I: IntoIterator<Item = RawLive>>(iter: I) -> Self {
        LiveObjects {
            items: iter.into_iter().map(LiveItem::Parsed).collect(),
        }
    }
}

impl Extend<RawLive> for LiveObjects {
    fn extend<I: IntoIterator<Item = RawLive>>(&mut self, iter: I) {
        self.items.extend(iter.into_iter().map(LiveItem::Parsed));
    }
}

/// Borrowed typed accessors for the fields the engine needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectMeta<'a> {
    /// `apiVersion` (empty when absent).
    pub api_version: &'a str,
    /// `kind` (empty when absent).
    pub kind: &'a str,
    /// `metadata.name` (empty when absent).
    pub name: &'a str,
    /// `metadata.namespace`.
    pub namespace: Option<&'a str>,
}

impl<'a> ObjectMeta<'a> {
    /// Reads the identifying fields of an unstructured object.
    pub fn of(value: &'a Value) -> Self {
        let s = |v: Option<&'a Value>| v.and_then(Value::as_str).unwrap_or("");
        let metadata = value.get("metadata");
        ObjectMeta {
            api_version: s(value.get("apiVersion")),
            kind: s(value.get("kind")),
            name: s(metadata.and_then(|m| m.get("name"))),
            namespace: metadata
                .and_then(|m| m.get("namespace"))
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty()),
        }
    }

    /// The object's group and kind.
    pub fn group_kind(&self) -> GroupKind {
        GroupKind::new(GroupKind::group_of(self.api_version), self.kind)
    }

    /// The object's identity in `environment`.
    pub fn id(&self, environment: &str) -> ResourceId {
        ResourceId::new(
            environment,
            GroupKind::group_of(self.api_version),
            self.kind,
            self.namespace,
            self.name,
        )
    }
}

/// What the engine keeps of a live object besides its normalized content.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LiveMeta {
    /// `metadata.resourceVersion`.
    pub resource_version: Option<String>,
    /// Whether the object has an owner reference (made by a controller).
    pub owned: bool,
    /// Labels (system ones included), used for tracking-label checks.
    pub tracking: bool,
    /// `metadata.creationTimestamp`.
    pub created: Option<DateTime<Utc>>,
    /// Whether the object is one the API server or a controller makes by itself in every
    /// namespace (`default` ServiceAccount, `kube-root-ca.crt`, service-account tokens).
    pub system_default: bool,
    /// Whether the object is a Helm hook (`helm.sh/hook`: a migration Job, a test Pod): not
    /// desired state, so never an orphan ([`crate::render::helm_hook`]).
    #[serde(default)]
    pub hook: bool,
}

/// Reads a string at a dotted path of plain keys.
pub fn str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    value_at(value, path).and_then(Value::as_str)
}

/// Reads a value at a path of plain keys.
pub fn value_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(*key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn text(v: &Value) -> Arc<str> {
        serde_json::to_string(v).expect("json").into()
    }

    #[test]
    fn packed_manifests_give_back_what_was_packed() {
        let at = |line| Provenance {
            file: "apps.yaml".into(),
            document: line,
            line,
            revision: Some("abc".into()),
            rendered: None,
        };
        let objects = vec![
            RawManifest {
                object: RawObject::new(json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "a", "namespace": "shop"},
                    "data": {"z": "1", "a": "x\u{e9}", "n": 1.5, "big": u64::MAX}})),
                provenance: at(1),
            },
            RawManifest {
                object: RawObject::new(json!({"apiVersion": "autoscaling/v2",
                    "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web"},
                    "spec": {"maxReplicas": 3}})),
                provenance: at(7),
            },
        ];
        let packed = PackedManifests::pack(objects.clone());
        assert_eq!(packed.len(), 2);
        assert_eq!(packed.iter().collect::<Vec<_>>(), objects);
        let hpas: Vec<_> = packed
            .iter_where(|m| m.kind == "HorizontalPodAutoscaler")
            .collect();
        assert_eq!(hpas, objects[1..]);
        assert!(!format!("{packed:?}").contains("x\u{e9}"));
        assert_eq!(packed.into_parsed().collect::<Vec<_>>(), objects);
    }

    #[test]
    fn compact_objects_read_like_parsed_ones() {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a\"b", "namespace": "shop", "labels": {"x": "y"}},
            "data": {"k": "secret-ish"}});
        let ns = json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "shop", "namespace": ""}});
        let mut objects = LiveObjects::new();
        objects.push_compact(text(&cm));
        objects.push(RawLive::new(ns.clone()));
        objects.push_compact("[1, 2]".into());
        objects.push_compact("{not json".into());
        assert_eq!(objects.len(), 4);
        // what does not parse as an object is skipped when read
        let all = objects.to_vec();
        assert_eq!(all, vec![RawLive::new(cm.clone()), RawLive::new(ns)]);
        // identities come from the text without parsing the rest; an escaped name too, and
        // an empty namespace is none
        let mut metas = Vec::new();
        objects.for_each_meta(|m| {
            metas.push((
                m.kind.to_owned(),
                m.name.to_owned(),
                m.namespace.map(str::to_owned),
            ))
        });
        assert_eq!(
            metas,
            [
                (
                    "ConfigMap".to_owned(),
                    "a\"b".to_owned(),
                    Some("shop".to_owned())
                ),
                ("Namespace".to_owned(), "shop".to_owned(), None),
            ]
        );
        let kept: Vec<RawLive> = objects.iter_where(|m| m.kind == "ConfigMap").collect();
        assert_eq!(kept, vec![RawLive::new(cm)]);
        // the content is never printed
        let shown = format!("{objects:?}");
        assert!(
            !shown.contains("secret-ish") && shown.contains("4 objects"),
            "{shown}"
        );
    }
}
