//! Normalization: turns raw desired and live objects into views in which only real differences
//! remain.
//!
//! Applied to both sides alike:
//! - what the API server writes is dropped (`status`, `metadata.uid`, `resourceVersion`,
//!   `generation`, `creationTimestamp`, `managedFields`, `selfLink`, owner references, the
//!   last-applied and deployment-revision annotations), and so are labels and annotations under
//!   system prefixes (`kubernetes.io/`, `k8s.io/`, `*.kubernetes.io/`, `*.k8s.io/`);
//! - `null` is the same as absent; `1.0` is `1`; quantities under resource maps get one spelling
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
use hmac::{Hmac, Mac};
use serde_json::{Map, Number, Value};
use sha2::Sha256;

use crate::id::ResourceId;
use crate::ignore::JsonPointer;
use crate::model::{LiveMeta, ObjectMeta, Provenance, RawLive, RawManifest};
use crate::path;
use crate::quantity;

/// The label or annotation that marks a live object as tracked by DriftGuard even when Git does
/// not define it (so that objects created by hand are reported as orphans).
pub const TRACKING_LABEL: &str = "driftguard.io/tracked";

/// The prefix every hashed Secret value carries in normalized views.
pub const SECRET_HASH_PREFIX: &str = "hmac-sha256:";

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Annotations the API server or its controllers write that lie outside the system prefixes
/// (or must go even when system prefixes are compared).
const SERVER_ANNOTATIONS: &[&str] = &[
    "deployment.kubernetes.io/revision",
    "deprecated.daemonset.template.generation",
];

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
    pub content: Value,
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
    /// The view.
    pub object: NormalizedObject,
    /// Resource version and other facts about the live object.
    pub meta: LiveMeta,
    /// `metadata.managedFields` as the server sent it (field names only, no values); read with
    /// [`LiveObject::managed_fields`] when a drift needs attribution.
    pub managed: Value,
    /// The `kubectl.kubernetes.io/last-applied-configuration` annotation.
    pub last_applied: LastApplied,
}

impl LiveObject {
    /// The managed-fields summary (who owns which field).
    pub fn managed_fields(&self) -> Vec<crate::managed::ManagedFieldsEntry> {
        crate::managed::parse_managed_fields_list(&self.managed)
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
    Normalized(Value),
}

/// Normalizes objects; holds the Secret hashing key.
#[derive(Clone, Debug)]
pub struct Normalizer {
    key: SecretKey,
    /// Drop labels and annotations under system prefixes (default: true).
    pub ignore_system_prefixes: bool,
}

#[derive(Clone, Copy)]
struct Ctx<'a> {
    kind: &'a str,
    group: &'a str,
    depth: usize,
    parent: &'a str,
    in_resources: bool,
}

impl Normalizer {
    /// A normalizer hashing Secret values with `key`.
    pub fn new(key: SecretKey) -> Self {
        Normalizer {
            key,
            ignore_system_prefixes: true,
        }
    }

    /// Normalizes a desired object of `environment`. `ignore` pointers are removed first.
    pub fn desired(
        &self,
        environment: &str,
        raw: &RawManifest,
        ignore: &[JsonPointer],
    ) -> Result<DesiredObject, NormalizeError> {
        self.desired_owned(environment, raw.clone(), ignore)
    }

    /// Like [`Normalizer::desired`], consuming the raw object (no copies).
    pub fn desired_owned(
        &self,
        environment: &str,
        raw: RawManifest,
        ignore: &[JsonPointer],
    ) -> Result<DesiredObject, NormalizeError> {
        let object = self.normalize_owned(environment, raw.object.0, ignore)?;
        Ok(DesiredObject {
            object,
            provenance: raw.provenance,
        })
    }

    /// Normalizes a live object of `environment`. `ignore` pointers are removed first.
    pub fn live(
        &self,
        environment: &str,
        raw: &RawLive,
        ignore: &[JsonPointer],
    ) -> Result<LiveObject, NormalizeError> {
        self.live_owned(environment, raw.clone(), ignore)
    }

    /// Like [`Normalizer::live`], consuming the raw object (no copies).
    pub fn live_owned(
        &self,
        environment: &str,
        raw: RawLive,
        ignore: &[JsonPointer],
    ) -> Result<LiveObject, NormalizeError> {
        let mut value = raw.object.0;
        let secret = {
            let m = ObjectMeta::of(&value);
            m.kind == "Secret" && m.group_kind().group.is_empty()
        };
        let system_default = is_system_default(&value);
        let mut managed = Value::Null;
        let mut last_applied = LastApplied::Absent;
        let mut meta = LiveMeta {
            system_default,
            ..LiveMeta::default()
        };
        if let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut) {
            if let Some(m) = metadata.remove("managedFields") {
                managed = m;
            }
            let tracked = |k: &str| {
                metadata
                    .get(k)
                    .and_then(|l| l.get(TRACKING_LABEL))
                    .and_then(Value::as_str)
                    .is_some_and(|v| v == "true" || v == "enabled")
            };
            meta.tracking = tracked("labels") || tracked("annotations");
            meta.resource_version = metadata
                .get("resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_owned);
            meta.owned = metadata
                .get("ownerReferences")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty());
            meta.created = metadata
                .get("creationTimestamp")
                .and_then(Value::as_str)
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc));
            if let Some(Value::String(la)) = metadata
                .get_mut("annotations")
                .and_then(Value::as_object_mut)
                .and_then(|a| a.remove(LAST_APPLIED))
            {
                last_applied = if secret {
                    serde_json::from_str::<Value>(&la)
                        .ok()
                        .and_then(|v| self.normalize_owned(environment, v, ignore).ok())
                        .map_or(LastApplied::Absent, |o| LastApplied::Normalized(o.content))
                } else {
                    LastApplied::Raw(la.into_boxed_str())
                };
            }
        }
        let object = self.normalize_owned(environment, value, ignore)?;
        Ok(LiveObject {
            object,
            meta,
            managed,
            last_applied,
        })
    }

    /// The normalized last-applied configuration of a live object.
    pub fn last_applied(
        &self,
        environment: &str,
        live: &LiveObject,
        ignore: &[JsonPointer],
    ) -> Option<Value> {
        match &live.last_applied {
            LastApplied::Absent => None,
            LastApplied::Normalized(v) => Some(v.clone()),
            LastApplied::Raw(s) => serde_json::from_str::<Value>(s)
                .ok()
                .and_then(|v| self.normalize_owned(environment, v, ignore).ok())
                .map(|o| o.content),
        }
    }

    /// Normalizes any object.
    pub fn normalize(
        &self,
        environment: &str,
        value: &Value,
        ignore: &[JsonPointer],
    ) -> Result<NormalizedObject, NormalizeError> {
        self.normalize_owned(environment, value.clone(), ignore)
    }

    /// Normalizes any object, consuming it.
    pub fn normalize_owned(
        &self,
        environment: &str,
        mut value: Value,
        ignore: &[JsonPointer],
    ) -> Result<NormalizedObject, NormalizeError> {
        if !value.is_object() {
            return Err(NormalizeError::NotAMapping);
        }
        let (id, api_version) = {
            let meta = ObjectMeta::of(&value);
            if meta.api_version.is_empty() {
                return Err(NormalizeError::MissingField {
                    field: "apiVersion",
                });
            }
            if meta.kind.is_empty() {
                return Err(NormalizeError::MissingField { field: "kind" });
            }
            if meta.name.is_empty() {
                return Err(NormalizeError::MissingField {
                    field: "metadata.name",
                });
            }
            (meta.id(environment), meta.api_version.to_owned())
        };
        for p in ignore {
            p.remove(&mut value);
        }
        let ctx = Ctx {
            kind: &id.kind,
            group: &id.group,
            depth: 0,
            parent: "",
            in_resources: false,
        };
        let mut content = Map::new();
        if let Value::Object(obj) = value {
            for (k, v) in obj {
                match k.as_str() {
                    "apiVersion" | "kind" | "status" => {}
                    "metadata" => {
                        if let Some(m) = self.metadata(v) {
                            content.insert(k, m);
                        }
                    }
                    _ => {
                        let c = Ctx {
                            depth: 1,
                            parent: &k,
                            ..ctx
                        };
                        if let Some(n) = self.norm(v, c) {
                            content.insert(k, n);
                        }
                    }
                }
            }
        }
        if id.kind == "Secret" && id.group.is_empty() {
            self.fold_secret(&mut content);
        }
        content.sort_keys();
        Ok(NormalizedObject {
            id,
            api_version,
            content: Value::Object(content),
        })
    }

    fn metadata(&self, v: Value) -> Option<Value> {
        let Value::Object(obj) = v else {
            return None;
        };
        let mut out = Map::new();
        for (k, v) in obj {
            match k.as_str() {
                "labels" | "annotations" => {
                    if let Value::Object(map) = v {
                        let mut kept = Map::new();
                        for (lk, lv) in map {
                            if lk == LAST_APPLIED
                                || SERVER_ANNOTATIONS.contains(&lk.as_str())
                                || (self.ignore_system_prefixes && is_system_key(&lk))
                            {
                                continue;
                            }
                            if let Some(s) = scalar_string(&lv) {
                                kept.insert(lk, Value::String(s));
                            }
                        }
                        if !kept.is_empty() {
                            kept.sort_keys();
                            out.insert(k, Value::Object(kept));
                        }
                    }
                }
                "finalizers" => {
                    if let Some(n) = self.norm(v, Ctx::root("finalizers")) {
                        out.insert(k, n);
                    }
                }
                // written by the server, or identity (kept elsewhere)
                _ => {}
            }
        }
        out.sort_keys();
        (!out.is_empty()).then_some(Value::Object(out))
    }

    fn norm(&self, v: Value, ctx: Ctx<'_>) -> Option<Value> {
        match v {
            Value::Null => None,
            Value::Bool(_) => Some(v),
            Value::Number(n) => {
                if ctx.in_resources {
                    return Some(Value::String(
                        quantity::canonical(&n.to_string()).unwrap_or_else(|| n.to_string()),
                    ));
                }
                Some(Value::Number(normalize_number(&n)))
            }
            Value::String(s) => {
                if ctx.in_resources || ctx.parent == "sizeLimit" {
                    if let Some(q) = quantity::canonical(&s) {
                        return Some(Value::String(q));
                    }
                }
                Some(Value::String(s))
            }
            Value::Array(items) => {
                let items = match self.keyed_list(items, ctx) {
                    Ok(keyed) => return Some(keyed),
                    Err(items) => items,
                };
                let child = Ctx {
                    depth: ctx.depth + 1,
                    ..ctx
                };
                Some(Value::Array(
                    items
                        .into_iter()
                        .map(|i| self.norm(i, child).unwrap_or(Value::Null))
                        .collect(),
                ))
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
                let mut out = Map::new();
                for (k, child) in map {
                    let c = Ctx {
                        depth: ctx.depth + 1,
                        parent: &k,
                        in_resources,
                        ..ctx
                    };
                    if let Some(n) = self.norm(child, c) {
                        out.insert(k, n);
                    }
                }
                out.sort_keys();
                Some(Value::Object(out))
            }
        }
    }

    /// Turns a list with a Kubernetes merge key into a map keyed by `[key]`; gives the list
    /// back when it has no merge key (or an item lacks it, or keys repeat).
    fn keyed_list(&self, items: Vec<Value>, ctx: Ctx<'_>) -> Result<Value, Vec<Value>> {
        type KeyFn = fn(&Map<String, Value>) -> Option<String>;
        let name: KeyFn = |m| m.get("name").and_then(scalar_string);
        let key_fn: KeyFn = match ctx.parent {
            "containers"
            | "initContainers"
            | "ephemeralContainers"
            | "env"
            | "volumes"
            | "imagePullSecrets" => name,
            "volumeMounts" => |m| m.get("mountPath").and_then(scalar_string),
            "volumeDevices" => |m| m.get("devicePath").and_then(scalar_string),
            "ports" => {
                let Some(first) = items.first().and_then(Value::as_object) else {
                    return Err(items);
                };
                if first.contains_key("containerPort") {
                    |m| {
                        let port = m.get("containerPort").and_then(scalar_string)?;
                        Some(format!("{port}/{}", protocol(m)))
                    }
                } else if ctx.kind == "Service" && ctx.group.is_empty() && ctx.depth == 2 {
                    |m| {
                        let port = m.get("port").and_then(scalar_string)?;
                        Some(format!("{port}/{}", protocol(m)))
                    }
                } else {
                    return Err(items);
                }
            }
            _ => return Err(items),
        };
        let mut keys = Vec::with_capacity(items.len());
        for item in &items {
            let Some(key) = item.as_object().and_then(key_fn) else {
                return Err(items);
            };
            if keys.contains(&key) {
                // duplicate merge keys: not a valid keyed list, compare it whole
                return Err(items);
            }
            keys.push(key);
        }
        let child = Ctx {
            depth: ctx.depth + 1,
            ..ctx
        };
        let mut out = Map::new();
        for (item, key) in items.into_iter().zip(keys) {
            if let Some(n) = self.norm(item, child) {
                out.insert(path::item_key(&key), n);
            }
        }
        out.sort_keys();
        Ok(Value::Object(out))
    }

    fn fold_secret(&self, content: &mut Map<String, Value>) {
        let mut data = match content.remove("data") {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        for (_, v) in data.iter_mut() {
            let hashed = match v.as_str() {
                Some(s) => match base64::engine::general_purpose::STANDARD.decode(s.trim()) {
                    Ok(bytes) => self.hash_secret(&bytes),
                    Err(_) => format!(
                        "{}invalid-base64:{}",
                        SECRET_HASH_PREFIX,
                        self.hash_secret(s.as_bytes())
                    ),
                },
                None => self.hash_secret(v.to_string().as_bytes()),
            };
            *v = Value::String(hashed);
        }
        if let Some(Value::Object(string_data)) = content.remove("stringData") {
            for (k, v) in string_data {
                let s = scalar_string(&v).unwrap_or_default();
                data.insert(k, Value::String(self.hash_secret(s.as_bytes())));
            }
        }
        data.sort_keys();
        content.insert("data".to_owned(), Value::Object(data));
    }

    /// The keyed hash of a Secret value: `hmac-sha256:` and 32 hex digits.
    pub fn hash_secret(&self, bytes: &[u8]) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key.0).expect("HMAC accepts keys of any length");
        mac.update(bytes);
        let out = mac.finalize().into_bytes();
        let mut s = String::with_capacity(SECRET_HASH_PREFIX.len() + 32);
        s.push_str(SECRET_HASH_PREFIX);
        for b in &out[..16] {
            use std::fmt::Write as _;
            let _ = write!(s, "{b:02x}");
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

fn protocol(m: &Map<String, Value>) -> &str {
    m.get("protocol").and_then(Value::as_str).unwrap_or("TCP")
}

fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(normalize_number(n).to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
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

/// Whether a label or annotation key lies under a system prefix.
pub fn is_system_key(key: &str) -> bool {
    let Some((prefix, _)) = key.split_once('/') else {
        return false;
    };
    prefix == "kubernetes.io"
        || prefix == "k8s.io"
        || prefix.ends_with(".kubernetes.io")
        || prefix.ends_with(".k8s.io")
}

/// Objects that the API server or its controllers create in every namespace by themselves.
fn is_system_default(value: &Value) -> bool {
    let meta = ObjectMeta::of(value);
    match (meta.group_kind().group.as_str(), meta.kind) {
        ("", "ServiceAccount") => meta.name == "default",
        ("", "ConfigMap") => meta.name == "kube-root-ca.crt",
        ("", "Secret") => {
            value.get("type").and_then(Value::as_str) == Some("kubernetes.io/service-account-token")
        }
        ("", "Endpoints") | ("discovery.k8s.io", "EndpointSlice") | ("", "Event") => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn n() -> Normalizer {
        Normalizer::new(SecretKey::new(b"test-key".to_vec()))
    }

    #[test]
    fn drops_server_fields_and_keys_lists() {
        let v = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "a", "namespace": "ns", "uid": "x", "resourceVersion": "1",
                "labels": {"app": "a", "app.kubernetes.io/managed-by": "x"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "spec": {"replicas": 1.0, "template": {"spec": {"containers": [
                {"name": "c", "image": "i", "ports": [{"containerPort": 80}],
                 "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}}]}}},
            "status": {"replicas": 1}});
        let o = n().normalize("dev", &v, &[]).expect("valid");
        assert_eq!(
            o.content,
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
        let text = d.content.to_string();
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
    fn system_prefixes() {
        assert!(is_system_key("kubernetes.io/service-account.name"));
        assert!(is_system_key("app.kubernetes.io/name"));
        assert!(is_system_key("k8s.io/x"));
        assert!(!is_system_key("example.com/team"));
        assert!(!is_system_key("team"));
    }
}
