//! Normalization: turns raw desired and live objects into views in which only real differences
//! remain.
//!
//! Applied to both sides alike:
//! - what the API server writes is dropped (`status`, `metadata.uid`, `resourceVersion`,
//!   `generation`, `creationTimestamp`, `managedFields`, `selfLink`, owner references, the
//!   last-applied annotation), and so are labels and annotations that the API server, its
//!   controllers or the applying tool write, by name and domain ([`crate::metadata`]);
//! - `null` is the same as absent, except for a value of ConfigMap `data`/`binaryData` or Secret
//!   `data`/`stringData`, where it is the same as `""` (the API server stores `key:` as
//!   `key: ""`); `1.0` is `1`; quantities under resource maps get one spelling
//!   (`500m` = `0.5`, `1Gi` = `1024Mi`);
//! - lists with Kubernetes merge keys become maps keyed by `[key]` (containers by name, env by
//!   name, container ports by `containerPort/protocol`, Service ports by `port/protocol`, volumes
//!   by name, volume mounts by mount path), so they are matched by key, not position;
//! - a Secret's `stringData` is folded into `data`, and every `data` value is replaced by a keyed
//!   hash (HMAC-SHA256) of its decoded bytes. Plain text never leaves this module.
//!
//! Which fields are compared (the "desired subset") is decided later, in [`crate::compare`].

use std::fmt;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Map, Number, Value};
use sha2::Sha256;

use crate::compare::Comparison;
use crate::doc::{with_builder, Builder, Doc, Node, Val};
use crate::id::ResourceId;
use crate::ignore::JsonPointer;
use crate::model::{LiveMeta, ObjectMeta, Provenance, RawLive, RawManifest};
use crate::quantity;

/// The label or annotation that marks a live object as tracked by DriftGuard even when Git does
/// not define it (so that objects created by hand are reported as orphans).
pub const TRACKING_LABEL: &str = "driftguard.io/tracked";

/// The prefix every hashed Secret value carries in normalized views.
pub const SECRET_HASH_PREFIX: &str = "hmac-sha256:";

use crate::metadata::MetadataKeys;
use crate::secret::LAST_APPLIED;

/// The key Secret values are hashed with. Its `Debug` output is redacted.
#[derive(Clone)]
pub struct SecretKey(Vec<u8>);

impl SecretKey {
    /// Wraps key bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        SecretKey(bytes.into())
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(redacted)")
    }
}

/// Why an object could not be normalized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NormalizeError {
    /// A required field is missing or has the wrong type.
    #[error("missing or invalid field `{field}`")]
    MissingField {
        /// The field, e.g. `metadata.name`.
        field: &'static str,
    },
    /// The object is not a mapping.
    #[error("object is not a mapping")]
    NotAMapping,
}

/// A normalized view of one object.
#[derive(Clone, Debug, PartialEq)]
pub struct NormalizedObject {
    /// Identity.
    pub id: ResourceId,
    /// The API version it was read in.
    pub api_version: String,
    /// Normalized content (no `apiVersion`, `kind`, name or namespace).
    pub content: Doc,
}

/// A normalized desired object.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredObject {
    /// The view.
    pub object: NormalizedObject,
    /// Where it came from.
    pub provenance: Provenance,
}

/// A normalized live object.
#[derive(Clone, Debug, PartialEq)]
pub struct LiveObject {
    /// The view. The engine keeps the content only for objects that differ from Git or that
    /// Git does not define: for an object in sync, `content` is empty (`Doc::null()`) and
    /// `compared` says all there is to say.
    pub object: NormalizedObject,
    /// Resource version and other facts about the live object.
    pub meta: LiveMeta,
    /// `metadata.managedFields` as the server sent it (field names only, no values); read with
    /// [`LiveObject::managed_fields`] when a drift needs attribution. The engine keeps it only
    /// for objects that differ from Git or that Git does not define.
    pub managed: Doc,
    /// The `kubectl.kubernetes.io/last-applied-configuration` annotation (kept by the engine
    /// under the same condition as `managed`).
    pub last_applied: LastApplied,
    /// The comparison with the desired object, made by the engine when it indexed this object
    /// (`None` when Git does not define it, or outside the engine).
    pub compared: Option<Comparison>,
}

impl crate::by_id::Identified for DesiredObject {
    fn id(&self) -> &ResourceId {
        &self.object.id
    }
}

impl crate::by_id::Identified for LiveObject {
    fn id(&self) -> &ResourceId {
        &self.object.id
    }
}

impl LiveObject {
    /// The managed-fields summary (who owns which field).
    pub fn managed_fields(&self) -> Vec<crate::managed::ManagedFieldsEntry> {
        if self.managed.is_null() {
            return Vec::new();
        }
        crate::managed::parse_managed_fields_list(&self.managed.to_value())
    }
}

/// The last-applied annotation of a live object, normalized only when needed (it is only read
/// for drifted objects without history). A Secret's is normalized at once, so that no plain
/// text is kept.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum LastApplied {
    /// No annotation (or not valid JSON).
    #[default]
    Absent,
    /// The annotation's JSON, not yet normalized (never for Secrets).
    Raw(Box<str>),
    /// Normalized like a desired object.
    Normalized(Doc),
}

/// Normalizes objects; holds the Secret hashing key.
#[derive(Clone, Debug)]
pub struct Normalizer {
    /// The HMAC with the Secret key already absorbed (cloned for every value).
    mac: KeyedMac,
    /// Which label and annotation keys the server or a tool writes, and so are left out
    /// ([`crate::metadata`]).
    pub metadata_keys: MetadataKeys,
}

/// An HMAC-SHA256 state holding the Secret key; its `Debug` output is redacted.
#[derive(Clone)]
struct KeyedMac(Hmac<Sha256>);

impl fmt::Debug for KeyedMac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyedMac(redacted)")
    }
}

#[derive(Clone, Copy)]
struct Ctx<'a> {
    kind: &'a str,
    group: &'a str,
    depth: usize,
    parent: &'a str,
    in_resources: bool,
}

/// How the items of a list with a merge key are named.
#[derive(Clone, Copy)]
enum MergeKey {
    /// By one field (`name`, `mountPath`).
    Field(&'static str),
    /// By a port field and the protocol: `80/TCP`.
    Port(&'static str),
}

impl Normalizer {
    /// A normalizer hashing Secret values with `key`.
    pub fn new(key: SecretKey) -> Self {
        Normalizer {
            mac: KeyedMac(
                Hmac::<Sha256>::new_from_slice(&key.0).expect("HMAC accepts keys of any length"),
            ),
            metadata_keys: MetadataKeys::default(),
        }
    }

    /// Normalizes a desired object of `environment`. `ignore` pointers are removed first.
    pub fn desired(
        &self,
        environment: &str,
        raw: &RawManifest,
        ignore: &[JsonPointer],
    ) -> Result<DesiredObject, NormalizeError> {
        let value: &Value = &raw.object.0;
        let (id, api_version) = identify(environment, value)?;
        self.desired_as(id, api_version, raw, ignore)
    }

    /// [`Normalizer::desired`] for an object whose identity the caller read already.
    pub(crate) fn desired_as(
        &self,
        id: ResourceId,
        api_version: &str,
        raw: &RawManifest,
        ignore: &[JsonPointer],
    ) -> Result<DesiredObject, NormalizeError> {
        let object = self.normalize_as(id, api_version, &raw.object.0, ignore)?;
        Ok(DesiredObject {
            object,
            provenance: raw.provenance.clone(),
        })
    }

    /// Normalizes a live object of `environment`. `ignore` pointers are removed first.
    pub fn live(
        &self,
        environment: &str,
        raw: &RawLive,
        ignore: &[JsonPointer],
    ) -> Result<LiveObject, NormalizeError> {
        let value: &Value = &raw.object.0;
        let (id, api_version) = identify(environment, value)?;
        self.live_as(id, api_version, raw, ignore)
    }

    /// [`Normalizer::live`] for an object whose identity the caller read already.
    pub(crate) fn live_as(
        &self,
        id: ResourceId,
        api_version: &str,
        raw: &RawLive,
        ignore: &[JsonPointer],
    ) -> Result<LiveObject, NormalizeError> {
        let (mut live, ()) = self.live_view_as(id, api_version, raw, ignore, |_| ((), true))?;
        self.attach_attribution(raw, ignore, &mut live);
        Ok(live)
    }

    /// Reads what attribution needs (`managedFields`, the last-applied annotation) into a live
    /// object made by [`Normalizer::live_view_as`].
    pub(crate) fn attach_attribution(
        &self,
        raw: &RawLive,
        ignore: &[JsonPointer],
        live: &mut LiveObject,
    ) {
        let Some(metadata) = raw.object.0.get("metadata").and_then(Value::as_object) else {
            return;
        };
        if let Some(m) = metadata.get("managedFields") {
            live.managed = Doc::from_value(m);
        }
        let id = &live.object.id;
        if let Some(la) = metadata
            .get("annotations")
            .and_then(|a| a.get(LAST_APPLIED))
            .and_then(Value::as_str)
        {
            live.last_applied = if crate::secret::is_secret(&id.group, &id.kind) {
                serde_json::from_str::<Value>(la)
                    .ok()
                    .and_then(|v| self.normalize(&id.environment, &v, ignore).ok())
                    .map_or(LastApplied::Absent, |o| LastApplied::Normalized(o.content))
            } else {
                LastApplied::Raw(la.into())
            };
        }
    }

    /// A live object's normalized content and facts, without what only attribution needs.
    /// `judge` sees the content before it is stored and says whether to keep it.
    pub(crate) fn live_view_as<R>(
        &self,
        id: ResourceId,
        api_version: &str,
        raw: &RawLive,
        ignore: &[JsonPointer],
        judge: impl FnOnce(Node<'_>) -> (R, bool),
    ) -> Result<(LiveObject, R), NormalizeError> {
        let value: &Value = &raw.object.0;
        let mut meta = LiveMeta::default();
        let tracked = |v: &Value| {
            v.as_object()
                .and_then(|m| field(m, TRACKING_LABEL))
                .and_then(Value::as_str)
                .is_some_and(|v| v == "true" || v == "enabled")
        };
        // one pass over the metadata
        let obj = value.as_object().ok_or(NormalizeError::NotAMapping)?;
        for (k, v) in field(obj, "metadata")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            match k.as_str() {
                "labels" | "annotations" => meta.tracking |= tracked(v),
                "resourceVersion" => meta.resource_version = v.as_str().map(str::to_owned),
                "ownerReferences" => {
                    meta.owned = v.as_array().is_some_and(|a| !a.is_empty());
                }
                "creationTimestamp" => {
                    meta.created = v
                        .as_str()
                        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                        .map(|t| t.with_timezone(&Utc));
                }
                _ => {}
            }
        }
        meta.system_default = is_system_default(&id, value);
        meta.hook = crate::render::helm_hook(value).is_some();
        // `managedFields` and the last-applied annotation are dropped by normalization
        let (content, judged) = self.normalized_with(&id, value, ignore, |b, root| {
            let (judged, keep) = judge(b.view(root));
            let content = if keep { b.finish(root) } else { Doc::null() };
            (content, judged)
        })?;
        let object = NormalizedObject {
            id,
            api_version: api_version.to_owned(),
            content,
        };
        Ok((
            LiveObject {
                object,
                meta,
                managed: Doc::null(),
                last_applied: LastApplied::Absent,
                compared: None,
            },
            judged,
        ))
    }

    /// The normalized last-applied configuration of a live object.
    pub fn last_applied(
        &self,
        environment: &str,
        live: &LiveObject,
        ignore: &[JsonPointer],
    ) -> Option<Doc> {
        match &live.last_applied {
            LastApplied::Absent => None,
            LastApplied::Normalized(v) => Some(v.clone()),
            LastApplied::Raw(s) => serde_json::from_str::<Value>(s)
                .ok()
                .and_then(|v| self.normalize(environment, &v, ignore).ok())
                .map(|o| o.content),
        }
    }

    /// Normalizes any object. `ignore` pointers are removed first.
    pub fn normalize(
        &self,
        environment: &str,
        value: &Value,
        ignore: &[JsonPointer],
    ) -> Result<NormalizedObject, NormalizeError> {
        let (id, api_version) = identify(environment, value)?;
        self.normalize_as(id, api_version, value, ignore)
    }

    /// [`Normalizer::normalize`] for an object whose identity the caller read already.
    pub(crate) fn normalize_as(
        &self,
        id: ResourceId,
        api_version: &str,
        value: &Value,
        ignore: &[JsonPointer],
    ) -> Result<NormalizedObject, NormalizeError> {
        let content = self.normalized_with(&id, value, ignore, |b, root| b.finish(root))?;
        Ok(NormalizedObject {
            id,
            api_version: api_version.to_owned(),
            content,
        })
    }

    /// Normalizes `value` (without the `ignore` pointers) into the builder and hands the root
    /// to `f`.
    fn normalized_with<R>(
        &self,
        id: &ResourceId,
        value: &Value,
        ignore: &[JsonPointer],
        f: impl FnOnce(&mut Builder, Val) -> R,
    ) -> Result<R, NormalizeError> {
        let Value::Object(obj) = value else {
            return Err(NormalizeError::NotAMapping);
        };
        if ignore.is_empty() {
            return Ok(self.content_with(obj, id, f));
        }
        let mut value = value.clone();
        for p in ignore {
            p.remove(&mut value);
        }
        match &value {
            Value::Object(obj) => Ok(self.content_with(obj, id, f)),
            _ => Err(NormalizeError::NotAMapping),
        }
    }

    /// Normalizes an object of kind `id` into the builder and hands the root to `f`.
    fn content_with<R>(
        &self,
        obj: &Map<String, Value>,
        id: &ResourceId,
        f: impl FnOnce(&mut Builder, Val) -> R,
    ) -> R {
        let secret = crate::secret::is_secret(&id.group, &id.kind);
        let configmap = id.kind == "ConfigMap" && id.group.is_empty();
        let ctx = Ctx {
            kind: &id.kind,
            group: &id.group,
            depth: 0,
            parent: "",
            in_resources: false,
        };
        // a Secret's values are hashed before they reach the document
        let secret_data = secret.then(|| self.secret_data(obj, ctx));
        with_builder(|b| {
            let mark = b.mark();
            for (k, v) in obj {
                match k.as_str() {
                    "apiVersion" | "kind" => {}
                    k if UNREAD_TOP_LEVEL.contains(&k) => {}
                    "data" | "stringData" if secret => {}
                    "data" | "binaryData" if configmap => {
                        if let Some(n) = self.configmap_data(b, v, ctx) {
                            let key = b.str(k);
                            b.push(key, n);
                        }
                    }
                    "metadata" => {
                        if let Some(m) = self.metadata(b, v) {
                            let key = b.str(k);
                            b.push(key, m);
                        }
                    }
                    _ => {
                        let c = Ctx {
                            depth: 1,
                            parent: k,
                            ..ctx
                        };
                        if let Some(n) = self.norm(b, v, c) {
                            let key = b.str(k);
                            b.push(key, n);
                        }
                    }
                }
            }
            if let Some(data) = secret_data {
                let inner = b.mark();
                for (k, v) in &data {
                    let (k, v) = (b.str(k), b.str(v));
                    b.push(k, Val::Str(v));
                }
                let map = b.end_map(inner);
                let key = b.str("data");
                b.push(key, map);
            }
            let root = b.end_map(mark);
            f(b, root)
        })
    }

    /// A ConfigMap's `data` or `binaryData`, where a null value is an empty one (the API server
    /// stores `key:` as `key: ""`).
    fn configmap_data(&self, b: &mut Builder, v: &Value, ctx: Ctx<'_>) -> Option<Val> {
        let Value::Object(map) = v else {
            return self.norm(b, v, Ctx { depth: 1, ..ctx });
        };
        let mark = b.mark();
        for (k, v) in map {
            let n = match v {
                Value::Null => Some(Val::Str(b.str(""))),
                v => self.norm(
                    b,
                    v,
                    Ctx {
                        depth: 2,
                        parent: k,
                        ..ctx
                    },
                ),
            };
            if let Some(n) = n {
                let key = b.str(k);
                b.push(key, n);
            }
        }
        Some(b.end_map(mark))
    }

    /// A Secret's `data` with `stringData` folded in, every value replaced by its keyed hash,
    /// sorted by key. A null value is an empty one (the API server stores `key:` as `key: ""`).
    fn secret_data(&self, obj: &Map<String, Value>, ctx: Ctx<'_>) -> Vec<(String, String)> {
        // normalized on their own, so that no plain text reaches the object's document
        let part = |key: &str| -> Option<Doc> {
            let v = field(obj, key)?;
            if !v.is_object() {
                return None;
            }
            let c = Ctx {
                depth: 1,
                parent: key,
                ..ctx
            };
            with_builder(|b| {
                let root = self.norm(b, v, c)?;
                Some(b.finish(root))
            })
        };
        let mut data: Vec<(String, String)> = Vec::new();
        if let Some(doc) = part("data") {
            for (k, v) in doc.root().entries() {
                let hashed = match v.as_str() {
                    Some(s) => match base64::engine::general_purpose::STANDARD.decode(s.trim()) {
                        Ok(bytes) => self.hash_secret(&bytes),
                        Err(_) => format!(
                            "{}invalid-base64:{}",
                            SECRET_HASH_PREFIX,
                            self.hash_secret(s.as_bytes())
                        ),
                    },
                    None => self.hash_secret(v.to_value().to_string().as_bytes()),
                };
                data.push((k.to_owned(), hashed));
            }
        }
        let nulls = |key: &str| {
            field(obj, key)
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .filter(|(_, v)| v.is_null())
                .map(|(k, _)| k.as_str())
        };
        let set = |data: &mut Vec<(String, String)>, k: &str, hashed: String| match data
            .binary_search_by(|(dk, _)| dk.as_str().cmp(k))
        {
            Ok(i) => data[i].1 = hashed,
            Err(i) => data.insert(i, (k.to_owned(), hashed)),
        };
        for k in nulls("data") {
            set(&mut data, k, self.hash_secret(b""));
        }
        if let Some(doc) = part("stringData") {
            for (k, v) in doc.root().entries() {
                let s = scalar_string(&v.to_value()).unwrap_or_default();
                set(&mut data, k, self.hash_secret(s.as_bytes()));
            }
        }
        for k in nulls("stringData") {
            set(&mut data, k, self.hash_secret(b""));
        }
        data
    }

    fn metadata(&self, b: &mut Builder, v: &Value) -> Option<Val> {
        let Value::Object(obj) = v else {
            return None;
        };
        let mark = b.mark();
        for (k, v) in obj {
            match k.as_str() {
                "labels" | "annotations" => {
                    if let Value::Object(map) = v {
                        let inner = b.mark();
                        for (lk, lv) in map {
                            if lk == LAST_APPLIED || self.metadata_keys.dropped(lk) {
                                continue;
                            }
                            let start = b.text().len();
                            if write_scalar(b.text(), lv) {
                                let value = b.span_from(start);
                                let key = b.str(lk);
                                b.push(key, Val::Str(value));
                            }
                        }
                        if b.mark() > inner {
                            let map = b.end_map(inner);
                            let key = b.str(k);
                            b.push(key, map);
                        }
                    }
                }
                "finalizers" => {
                    if let Some(n) = self.norm(b, v, Ctx::root("finalizers")) {
                        let key = b.str(k);
                        b.push(key, n);
                    }
                }
                // written by the server, or identity (kept elsewhere)
                _ => {}
            }
        }
        if b.mark() == mark {
            return None;
        }
        Some(b.end_map(mark))
    }

    fn norm(&self, b: &mut Builder, v: &Value, ctx: Ctx<'_>) -> Option<Val> {
        match v {
            Value::Null => None,
            Value::Bool(x) => Some(Val::Bool(*x)),
            Value::Number(n) => {
                if ctx.in_resources {
                    let s = n.to_string();
                    let q = quantity::canonical(&s).unwrap_or(s);
                    return Some(Val::Str(b.str(&q)));
                }
                Some(Builder::number(&normalize_number(n)))
            }
            Value::String(s) => {
                if ctx.in_resources || ctx.parent == "sizeLimit" {
                    if let Some(q) = quantity::canonical(s) {
                        return Some(Val::Str(b.str(&q)));
                    }
                }
                Some(Val::Str(b.str(s)))
            }
            Value::Array(items) => {
                if let Some(keyed) = self.keyed_list(b, items, ctx) {
                    return Some(keyed);
                }
                let child = Ctx {
                    depth: ctx.depth + 1,
                    ..ctx
                };
                let mark = b.mark();
                for i in items {
                    let n = self.norm(b, i, child).unwrap_or(Val::Null);
                    b.item(n);
                }
                Some(b.end_list(mark))
            }
            Value::Object(map) => {
                let in_resources = ctx.in_resources
                    || (matches!(
                        ctx.parent,
                        "requests"
                            | "limits"
                            | "capacity"
                            | "hard"
                            | "default"
                            | "defaultRequest"
                            | "max"
                            | "min"
                            | "maxLimitRequestRatio"
                            | "overhead"
                    ) && ctx.kind != "CustomResourceDefinition");
                let mark = b.mark();
                for (k, child) in map {
                    let c = Ctx {
                        depth: ctx.depth + 1,
                        parent: k,
                        in_resources,
                        ..ctx
                    };
                    if let Some(n) = self.norm(b, child, c) {
                        let key = b.str(k);
                        b.push(key, n);
                    }
                }
                Some(b.end_map(mark))
            }
        }
    }

    /// Turns a list with a Kubernetes merge key into a map keyed by `[key]`; `None` when the
    /// list has no merge key (or an item lacks it, or keys repeat).
    fn keyed_list(&self, b: &mut Builder, items: &[Value], ctx: Ctx<'_>) -> Option<Val> {
        let merge_key = match ctx.parent {
            "containers"
            | "initContainers"
            | "ephemeralContainers"
            | "env"
            | "volumes"
            | "imagePullSecrets" => MergeKey::Field("name"),
            "volumeMounts" => MergeKey::Field("mountPath"),
            "volumeDevices" => MergeKey::Field("devicePath"),
            "ports" => {
                let first = items.first().and_then(Value::as_object)?;
                if field(first, "containerPort").is_some() {
                    MergeKey::Port("containerPort")
                } else if ctx.kind == "Service" && ctx.group.is_empty() && ctx.depth == 2 {
                    MergeKey::Port("port")
                } else {
                    return None;
                }
            }
            _ => return None,
        };
        // the `[key]` names are written first; nested keyed lists stack theirs above
        let text_mark = b.text().len();
        let keys_mark = b.keys.len();
        for item in items {
            let start = b.text().len();
            let ok = item
                .as_object()
                .is_some_and(|m| write_merge_key(b.text(), m, merge_key));
            let key = b.span_from(start);
            let name = b.text_of(key);
            if !ok || b.keys[keys_mark..].iter().any(|k| b.text_of(*k) == name) {
                // missing or duplicate merge keys: not a keyed list, compare it whole
                b.text().truncate(text_mark);
                b.keys.truncate(keys_mark);
                return None;
            }
            b.keys.push(key);
        }
        let child = Ctx {
            depth: ctx.depth + 1,
            ..ctx
        };
        let mark = b.mark();
        for (i, item) in items.iter().enumerate() {
            let key = b.keys[keys_mark + i];
            if let Some(n) = self.norm(b, item, child) {
                b.push(key, n);
            }
        }
        b.keys.truncate(keys_mark);
        Some(b.end_map(mark))
    }

    /// The keyed hash of a Secret value: `hmac-sha256:` and 32 hex digits.
    pub fn hash_secret(&self, bytes: &[u8]) -> String {
        let mut mac = self.mac.0.clone();
        mac.update(bytes);
        let out = mac.finalize().into_bytes();
        let mut s = String::with_capacity(SECRET_HASH_PREFIX.len() + 32);
        s.push_str(SECRET_HASH_PREFIX);
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for b in &out[..16] {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 15)]));
        }
        s
    }
}

impl Ctx<'_> {
    fn root(parent: &str) -> Ctx<'_> {
        Ctx {
            kind: "",
            group: "",
            depth: 1,
            parent,
            in_resources: false,
        }
    }
}

/// Writes `[key]`, the name of a keyed list item (see [`crate::path::item_key`]); false when the item
/// has no merge key.
fn write_merge_key(out: &mut String, m: &Map<String, Value>, key: MergeKey) -> bool {
    out.push('[');
    let ok = match key {
        MergeKey::Field(name) => field(m, name).is_some_and(|v| write_scalar(out, v)),
        MergeKey::Port(name) => {
            let ok = field(m, name).is_some_and(|v| write_scalar(out, v));
            if ok {
                out.push('/');
                out.push_str(
                    field(m, "protocol")
                        .and_then(Value::as_str)
                        .unwrap_or("TCP"),
                );
            }
            ok
        }
    };
    out.push(']');
    ok
}

/// Writes a scalar as a string (`1.0` as `1`); false for null, lists and maps.
fn write_scalar(out: &mut String, v: &Value) -> bool {
    use std::fmt::Write as _;
    match v {
        Value::String(s) => out.push_str(s),
        Value::Number(n) => {
            let _ = write!(out, "{}", normalize_number(n));
        }
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        _ => return false,
    }
    true
}

fn scalar_string(v: &Value) -> Option<String> {
    let mut s = String::new();
    write_scalar(&mut s, v).then_some(s)
}

/// Top-level fields of a live object that no comparison reads (what the controllers report,
/// never what Git sets): the normalizer leaves them out of every view, and a source that keeps
/// live objects between scans may drop them at once ([`strip_unread`]).
pub const UNREAD_TOP_LEVEL: &[&str] = &["status"];

/// Drops from a live object what no comparison reads ([`UNREAD_TOP_LEVEL`]), and who owns it
/// (the `f:status` trees of `metadata.managedFields`: a Deployment's status writer owns about
/// 600 bytes of it), so that a source keeping objects (a shared watch's cache) keeps only
/// what the engine can use. Every managed-fields entry stays, with its other fields.
pub fn strip_unread(object: &mut Value) {
    let Value::Object(map) = object else {
        return;
    };
    for k in UNREAD_TOP_LEVEL {
        map.remove(*k);
    }
    let entries = map
        .get_mut("metadata")
        .and_then(|m| m.get_mut("managedFields"))
        .and_then(Value::as_array_mut);
    for entry in entries.into_iter().flatten() {
        if let Some(Value::Object(fields)) = entry.get_mut("fieldsV1") {
            for k in UNREAD_TOP_LEVEL {
                fields.remove(&format!("f:{k}"));
            }
        }
    }
}

/// `1.0` -> `1`; other numbers unchanged.
pub fn normalize_number(n: &Number) -> Number {
    if n.is_f64() {
        if let Some(f) = n.as_f64() {
            if f.fract() == 0.0 && f.abs() < 9.0e15 {
                return Number::from(f as i64);
            }
        }
    }
    n.clone()
}

/// The identity and API version of an object, checking the fields identity needs.
pub(crate) fn identify<'a>(
    environment: &str,
    value: &'a Value,
) -> Result<(ResourceId, &'a str), NormalizeError> {
    let Value::Object(obj) = value else {
        return Err(NormalizeError::NotAMapping);
    };
    // the same reads as `ObjectMeta::of`, without hashing keys
    let s = |v: Option<&'a Value>| v.and_then(Value::as_str).unwrap_or("");
    let metadata = field(obj, "metadata").and_then(Value::as_object);
    let api_version = s(field(obj, "apiVersion"));
    let kind = s(field(obj, "kind"));
    let name = s(metadata.and_then(|m| field(m, "name")));
    if api_version.is_empty() {
        return Err(NormalizeError::MissingField {
            field: "apiVersion",
        });
    }
    if kind.is_empty() {
        return Err(NormalizeError::MissingField { field: "kind" });
    }
    if name.is_empty() {
        return Err(NormalizeError::MissingField {
            field: "metadata.name",
        });
    }
    let meta = ObjectMeta {
        api_version,
        kind,
        name,
        namespace: metadata
            .and_then(|m| field(m, "namespace"))
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty()),
    };
    Ok((meta.id(environment), api_version))
}

/// A map's value for `key`; small maps are scanned (no key hashing when serde_json keeps
/// insertion order).
pub(crate) fn field<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    if map.len() <= 8 {
        map.iter().find(|(k, _)| k.as_str() == key).map(|(_, v)| v)
    } else {
        map.get(key)
    }
}

/// Objects that the API server or its controllers create in every namespace by themselves,
/// and a deployment tool's own records: Helm's release (`sh.helm.release.v1.<release>.v<n>`,
/// a Secret of type `helm.sh/release.v1`, or a ConfigMap with the label `owner: helm` under
/// Helm's ConfigMap driver), which `helm install` and Flux's helm-controller write beside the
/// chart's objects.
fn is_system_default(id: &ResourceId, value: &Value) -> bool {
    let helm_record = || {
        id.name.starts_with("sh.helm.release.v1.")
            && value
                .pointer("/metadata/labels/owner")
                .and_then(Value::as_str)
                == Some("helm")
    };
    match (id.group.as_str(), id.kind.as_str()) {
        ("", "ServiceAccount") => id.name == "default",
        ("", "ConfigMap") => id.name == "kube-root-ca.crt" || helm_record(),
        ("", "Secret") => {
            let t = value.get("type").and_then(Value::as_str);
            t == Some("kubernetes.io/service-account-token")
                || t == Some("helm.sh/release.v1")
                || helm_record()
        }
        ("", "Endpoints") | ("discovery.k8s.io", "EndpointSlice") | ("", "Event") => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn strip_unread_drops_status_and_its_owners_and_keeps_every_entry() {
        let mut o = serde_json::json!({
            "kind": "Deployment",
            "metadata": {"name": "web", "managedFields": [
                {"manager": "kubectl", "operation": "Apply",
                 "fieldsV1": {"f:spec": {"f:replicas": {}}}},
                {"manager": "kube-controller-manager", "operation": "Update",
                 "subresource": "status",
                 "fieldsV1": {"f:metadata": {"f:annotations": {"f:rev": {}}},
                              "f:status": {"f:replicas": {}}}}
            ]},
            "spec": {"replicas": 2},
            "status": {"replicas": 2}
        });
        super::strip_unread(&mut o);
        assert!(o.get("status").is_none());
        let entries = o["metadata"]["managedFields"].as_array().expect("kept");
        assert_eq!(entries.len(), 2);
        assert_eq!(
            entries[0]["fieldsV1"],
            serde_json::json!({"f:spec": {"f:replicas": {}}})
        );
        assert_eq!(
            entries[1]["fieldsV1"],
            serde_json::json!({"f:metadata": {"f:annotations": {"f:rev": {}}}})
        );
        assert_eq!(entries[1]["manager"], "kube-controller-manager");
    }

    use super::*;
    use serde_json::json;

    fn n() -> Normalizer {
        Normalizer::new(SecretKey::new(b"test-key".to_vec()))
    }

    #[test]
    fn helm_release_records_are_the_tool_s_own() {
        let id = |kind: &str, name: &str| ResourceId::new("e", "", kind, Some("shop"), name);
        let release = json!({"type": "helm.sh/release.v1",
            "metadata": {"labels": {"owner": "helm", "name": "shop"}}});
        assert!(is_system_default(
            &id("Secret", "sh.helm.release.v1.shop.v3"),
            &release
        ));
        let cm = json!({"metadata": {"labels": {"owner": "helm"}}});
        assert!(is_system_default(
            &id("ConfigMap", "sh.helm.release.v1.shop.v1"),
            &cm
        ));
        // a user's Secret named alike is not
        let mine = json!({"type": "Opaque", "metadata": {"labels": {"owner": "team-a"}}});
        assert!(!is_system_default(
            &id("Secret", "sh.helm.release.v1.shop.v3"),
            &mine
        ));
    }

    #[test]
    fn drops_server_fields_and_keys_lists() {
        let v = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "a", "namespace": "ns", "uid": "x", "resourceVersion": "1",
                "labels": {"app": "a", "pod-template-hash": "x"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "spec": {"replicas": 1.0, "template": {"spec": {"containers": [
                {"name": "c", "image": "i", "ports": [{"containerPort": 80}],
                 "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}}]}}},
            "status": {"replicas": 1}});
        let o = n().normalize("dev", &v, &[]).expect("valid");
        assert_eq!(
            o.content.to_value(),
            json!({"metadata": {"labels": {"app": "a"}},
                "spec": {"replicas": 1, "template": {"spec": {"containers": {"[c]":
                    {"name": "c", "image": "i", "ports": {"[80/TCP]": {"containerPort": 80}},
                     "resources": {"requests": {"cpu": "0.5", "memory": "1073741824"}}}}}}}})
        );
    }

    #[test]
    fn secret_values_are_hashed_and_string_data_folded() {
        let desired = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s"}, "stringData": {"token": "hunter2"}, "data": {"x": "aGk="}});
        let live = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s"}, "data": {"token": "aHVudGVyMg==", "x": "aGk="}});
        let d = n().normalize("dev", &desired, &[]).expect("valid");
        let l = n().normalize("dev", &live, &[]).expect("valid");
        assert_eq!(d.content, l.content);
        let text = d.content.to_value().to_string();
        assert!(!text.contains("hunter2"));
        assert!(!text.contains("aHVudGVyMg"));
        assert!(text.contains(SECRET_HASH_PREFIX));
        let other = Normalizer::new(SecretKey::new(b"other".to_vec()));
        assert_ne!(
            other
                .normalize("dev", &desired, &[])
                .expect("valid")
                .content,
            d.content,
            "the hash is keyed"
        );
    }

    #[test]
    fn missing_fields_are_named() {
        let err = n()
            .normalize(
                "dev",
                &json!({"apiVersion": "v1", "kind": "ConfigMap"}),
                &[],
            )
            .expect_err("no name");
        assert_eq!(err.to_string(), "missing or invalid field `metadata.name`");
    }

    #[test]
    fn keys_dropped_by_who_writes_them() {
        let n = n();
        let keys = |v: &Value| {
            v["metadata"]["annotations"]
                .as_object()
                .map(|m| m.keys().cloned().collect::<Vec<_>>())
                .unwrap_or_default()
        };
        let v = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "s", "namespace": "n", "annotations": {
                "meta.helm.sh/release-name": "shop",
                "deployment.kubernetes.io/revision": "3",
                "nginx.ingress.kubernetes.io/proxy-body-size": "8m",
                "team": "web"}}});
        let got = n.normalize("e", &v, &[]).expect("valid").content.to_value();
        assert_eq!(
            keys(&got),
            ["nginx.ingress.kubernetes.io/proxy-body-size", "team"]
        );
        let mut compare_helm = n.clone();
        compare_helm.metadata_keys.compare = vec!["meta.helm.sh".into()];
        let got = compare_helm
            .normalize("e", &v, &[])
            .expect("valid")
            .content
            .to_value();
        assert_eq!(keys(&got).len(), 3);
    }
}
