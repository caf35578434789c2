//! Remediation, in two parts: [`advice`], the revert or adopt steps a person is told (never
//! carried out by DriftGuard), and, here, the remediation DriftGuard carries out when asked:
//! the pure [`Plan`] of ending one drift, or the [`Refusal`] that says why it will not, and the
//! remediation [`policy`](Policy) of an environment.
//!
//! A plan is built from the drift, Git's raw object, the live raw object and the environment's
//! rules ([`plan`]); adapters apply it (the cluster side with server-side apply, the Git side
//! with a format-preserving edit) and never decide anything themselves.
//!
//! - **Revert / apply** (cluster side, [`Operation::Apply`]): a server-side apply body holding
//!   only the fields Git sets, minus what DriftGuard ignores (ignore rules' pointers, an HPA's
//!   `spec.replicas`, fields whose newest owner is an ignored field manager), plus guarded JSON
//!   patch removals of what the cluster added to closed maps and keyed lists (an added label,
//!   an added env var, an added ConfigMap key) that Git does not set, and of fields Git does
//!   not set that a person wrote by hand (a drift of their own: the API server's default
//!   applies again). Other fields Git does not set are never in the body, so they are left
//!   alone.
//! - **Create** ([`Operation::Create`]): a missing object, from Git.
//! - **Delete** ([`Operation::Delete`]): an orphan, only when asked to prune, and only when it
//!   carries the tracking label [`TRACKING_LABEL`] or lives in a namespace the environment
//!   declares fully managed (`managedNamespaces`, set explicitly).
//! - **Adopt** ([`Operation::Adopt`]): the drifted fields' live values, to write into the one
//!   plain manifest file that defines the object.
//!
//! Refused, with the reason: a conflict (both sides moved), a source that is down or unknown, a
//! resolved drift, a Secret whose value Git does not hold in plain form (SOPS, `ENC[...]`, or
//! no `data`), adopting a Secret (its value would go into Git), adopting a rendered object
//! (kustomize, Helm, a renderer), adopting a missing or orphan object, pruning an object that is
//! neither tracked nor in a fully managed namespace.
//!
//! Plans never print a Secret value: the apply body and the removals are not serialized and
//! their `Debug` is redacted; [`Plan::changes`] come from the stored drift, in which Secret
//! values are already `(secret value)`.

use std::fmt;

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::engine::{Engine, EnvState};
use crate::managed::{parse_managed_fields, ManagedFieldsEntry};
use crate::names::named_enum;
use crate::normalize::TRACKING_LABEL;
use crate::path::{FieldPath, Segment};
use crate::remediate::advice::{FieldChange, RemediationAction};
use crate::selector::ObjectSelector;
use crate::severity::Severity;
use crate::state::{Direction, Drift, DriftEvent, DriftKind, EventKind, Resolution};

/// The field manager DriftGuard applies with.
pub const FIELD_MANAGER: &str = "driftguard";

named_enum! {
    /// What a plan does.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum Operation: "operation" {
        /// Server-side apply Git's fields (and remove what the cluster added).
        Apply => "apply",
        /// Create the missing object from Git.
        Create => "create",
        /// Delete the orphan.
        Delete => "delete",
        /// Write the live values into the manifest file in Git.
        Adopt => "adopt",
        /// Write import blocks and the generated configuration of resources no Terraform
        /// state holds into Git (`driftguard codify`).
        Codify => "codify",
    }
}

/// The object a plan acts on, as the cluster names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// `apps/v1`, `v1`.
    pub api_version: String,
    /// The kind.
    pub kind: String,
    /// The namespace (absent: cluster-scoped).
    pub namespace: Option<String>,
    /// The name.
    pub name: String,
}

impl Target {
    /// The API group (`apps`; empty for the core group).
    pub fn group(&self) -> &str {
        self.api_version
            .rsplit_once('/')
            .map(|(g, _)| g)
            .unwrap_or("")
    }
}

/// Where an adopt plan writes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdoptFile {
    /// The file, as the drift names it (from the repository root for a Git source).
    pub file: String,
    /// The YAML document in the file (0-based).
    pub document: usize,
}

/// One planned remediation of one drift episode. Built by [`plan`]; its [`Plan::id`] is a hash
/// of everything it does, so confirming an id applies exactly what was previewed.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Content hash of the plan (16 hex digits).
    pub id: String,
    /// The drift episode it ends.
    pub episode: String,
    /// The object, `env:Kind[.group]/[namespace/]name`.
    pub object: String,
    /// The object as the cluster names it.
    pub target: Target,
    /// The action asked for.
    pub action: RemediationAction,
    /// What the plan does.
    pub operation: Operation,
    /// The field changes, from the stored drift (Secret values redacted): for a cluster plan
    /// live → Git, for adopt Git → live.
    pub changes: Vec<FieldChange>,
    /// Fields DriftGuard leaves alone, and why (`spec.replicas: owned by an HPA`).
    pub left_alone: Vec<String>,
    /// Where adopt writes (adopt only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<AdoptFile>,
    /// The server-side apply body (apply and create). May hold Secret values from Git: never
    /// serialized, never printed.
    #[serde(skip)]
    pub apply: Option<Value>,
    /// Guarded JSON patch operations (`test` then `remove`) for what the cluster added and Git
    /// does not set. Never serialized.
    #[serde(skip)]
    pub removals: Vec<Value>,
    /// Adopt: the field paths and live values to write (a Secret is never adopted). Never
    /// serialized.
    #[serde(skip)]
    pub writes: Vec<(FieldPath, Option<Value>)>,
}

impl fmt::Debug for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plan")
            .field("id", &self.id)
            .field("object", &self.object)
            .field("operation", &self.operation)
            .field("changes", &self.changes.len())
            .field("removals", &self.removals.len())
            .finish_non_exhaustive()
    }
}

/// Why DriftGuard will not remediate a drift.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The drift is already resolved.
    #[error("the drift {0} is already resolved")]
    Resolved(String),
    /// Both sides moved since they last agreed.
    #[error("both Git and the cluster changed {0} since they last agreed (a conflict): decide by hand which change wins")]
    Conflict(String),
    /// A source is down or its state unknown.
    #[error("the {side} side of {object} cannot be read now ({why}): nothing is changed while a source is down or unknown")]
    SourceDown {
        /// `Git` or `live`.
        side: String,
        /// The object.
        object: String,
        /// Why.
        why: String,
    },
    /// A Secret whose value Git does not hold in plain form.
    #[error("{object} is a Secret whose value Git does not hold in plain form ({why}): DriftGuard cannot put it back; restore it through your secret management")]
    SecretNotPlain {
        /// The object.
        object: String,
        /// Why (`encrypted with SOPS`).
        why: String,
    },
    /// Adopting a Secret would write its value into Git.
    #[error("{0} is a Secret: adopting it would write its value into Git; copy it into your secret management by hand")]
    SecretAdopt(String),
    /// The object is rendered: no one plain file to write into.
    #[error("{object} is rendered by {renderer} from {folder}: adopt writes only into plain manifest files; change the {renderer} inputs by hand")]
    Rendered {
        /// The object.
        object: String,
        /// `kustomize`, `helm`, `command`.
        renderer: String,
        /// The chart or folder.
        folder: String,
    },
    /// Pruning an object DriftGuard may not delete.
    #[error("{0} is not defined in Git, but it neither carries the label `driftguard.io/tracked` nor lives in a namespace the environment declares fully managed (`managedNamespaces`): DriftGuard does not delete it")]
    NotPrunable(String),
    /// An orphan without `prune`.
    #[error("{0} exists only in the cluster: deleting it needs `--prune`")]
    PruneNotAsked(String),
    /// Not supported (yet).
    #[error("{0}")]
    Unsupported(String),
}

/// Whether a source can be trusted now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Readiness {
    /// Read in this run.
    #[default]
    Ready,
    /// Down or unknown, with the reason.
    Down(String),
}

/// Everything [`plan`] looks at.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    /// The open drift (as just evaluated).
    pub drift: &'a Drift,
    /// Revert (cluster side) or adopt (Git side).
    pub action: RemediationAction,
    /// Git's raw object (absent for an orphan).
    pub desired: Option<&'a Value>,
    /// The live raw object (absent for a missing object).
    pub live: Option<&'a Value>,
    /// Delete an orphan.
    pub prune: bool,
    /// The Git side.
    pub git: Readiness,
    /// The live side.
    pub cluster: Readiness,
}

/// The plan for `req`, with the environment's rules from `engine` and `st` (the environment
/// as indexed by [`Engine::index`]), or why not.
pub fn plan(engine: &Engine, st: &EnvState, req: &Request<'_>) -> Result<Plan, Refusal> {
    let d = req.drift;
    let object = format!(
        "{}:{}/{}",
        d.id.environment,
        d.id.group_kind(),
        d.id.namespaced_name()
    );
    if !d.is_open() {
        return Err(Refusal::Resolved(d.episode.clone()));
    }
    for (side, r) in [("Git", &req.git), ("live", &req.cluster)] {
        if let Readiness::Down(why) = r {
            return Err(Refusal::SourceDown {
                side: side.into(),
                object,
                why: why.clone(),
            });
        }
    }
    if st.unknown_kinds.contains(&d.id.group_kind()) {
        return Err(Refusal::SourceDown {
            side: "live".into(),
            object,
            why: "its kind could not be read".into(),
        });
    }
    if d.direction == Direction::Conflict {
        return Err(Refusal::Conflict(object));
    }
    let secret = crate::secret::is_secret(&d.id.group, &d.id.kind);
    let target = Target {
        api_version: req
            .desired
            .or(req.live)
            .and_then(|v| v.get("apiVersion"))
            .and_then(Value::as_str)
            .unwrap_or(&d.api_version)
            .to_owned(),
        kind: d.id.kind.clone(),
        namespace: d.id.namespace.clone(),
        name: d.id.name.clone(),
    };
    let mut p = Plan {
        id: String::new(),
        episode: d.episode.clone(),
        object: object.clone(),
        target,
        action: req.action,
        operation: Operation::Apply,
        changes: Vec::new(),
        left_alone: Vec::new(),
        file: None,
        apply: None,
        removals: Vec::new(),
        writes: Vec::new(),
    };
    match (req.action, d.kind) {
        (RemediationAction::Revert, DriftKind::Orphan) => {
            if !req.prune {
                return Err(Refusal::PruneNotAsked(object));
            }
            let live = req.live.ok_or_else(|| Refusal::SourceDown {
                side: "live".into(),
                object: object.clone(),
                why: "the object was not found".into(),
            })?;
            let tracked = live
                .pointer("/metadata/labels")
                .and_then(|l| l.get(TRACKING_LABEL))
                .is_some();
            let managed = d.id.namespace.as_ref().is_some_and(|ns| {
                engine
                    .spec
                    .managed_namespaces
                    .as_ref()
                    .is_some_and(|m| m.contains(ns))
            });
            if !tracked && !managed {
                return Err(Refusal::NotPrunable(object));
            }
            p.operation = Operation::Delete;
        }
        (RemediationAction::Revert, kind) => {
            let desired = req.desired.ok_or_else(|| Refusal::SourceDown {
                side: "Git".into(),
                object: object.clone(),
                why: "Git does not define the object".into(),
            })?;
            if secret {
                secret_plain(desired, &object)?;
            }
            let mut body = desired.clone();
            strip_server_fields(&mut body, d.id.namespace.as_deref());
            // what the renderer makes anew on every run is not Git's: an object that exists
            // keeps its value (a new object takes the render's, as `helm install` would)
            if kind != DriftKind::Missing {
                for ptr in st.unstable.get(&d.id).into_iter().flatten() {
                    let before = body.clone();
                    ptr.remove(&mut body);
                    if body != before {
                        p.left_alone.push(format!(
                            "{}: made anew on every render",
                            String::from(ptr.clone())
                        ));
                    }
                }
            }
            let hpa = engine.spec.hpa_owns_replicas && st.hpa_targets.contains(&d.id);
            for ptr in engine.spec.ignore.pointers_for(&d.id) {
                let before = body.clone();
                ptr.remove(&mut body);
                if body != before {
                    p.left_alone
                        .push(format!("{}: an ignore rule", String::from(ptr.clone())));
                }
            }
            if hpa && remove_path(&mut body, &FieldPath::from_keys(["spec", "replicas"])) {
                p.left_alone
                    .push("spec.replicas: owned by a HorizontalPodAutoscaler".into());
            }
            let managers = engine.spec.ignore.managers_for(&d.id);
            if let (false, Some(live)) = (managers.is_empty(), req.live) {
                for (path, manager) in newest_owners(&parse_managed_fields(live), &managers) {
                    if remove_path(&mut body, &path) {
                        p.left_alone
                            .push(format!("{path}: owned by the ignored manager {manager}"));
                    }
                }
            }
            p.operation = if kind == DriftKind::Missing {
                Operation::Create
            } else {
                Operation::Apply
            };
            if let (DriftKind::Modified, Some(live)) = (kind, req.live) {
                for f in d.fields.iter().filter(|f| f.desired.is_none()) {
                    if let Some(ops) = removal(live, &f.path) {
                        p.removals.extend(ops);
                    }
                }
            }
            p.changes = d
                .fields
                .iter()
                .map(|f| FieldChange {
                    path: f.path.to_string(),
                    from: f.live.clone(),
                    to: f.desired.clone(),
                })
                .collect();
            p.apply = Some(body);
        }
        (RemediationAction::Adopt, DriftKind::Modified) => {
            if secret {
                return Err(Refusal::SecretAdopt(object));
            }
            let prov = d.provenance.as_ref().ok_or_else(|| {
                Refusal::Unsupported(format!(
                    "the drift of {object} does not say which file defines it in Git"
                ))
            })?;
            if let Some(r) = &prov.rendered {
                return Err(Refusal::Rendered {
                    object,
                    renderer: r.renderer.clone(),
                    folder: if r.source.is_empty() {
                        ".".into()
                    } else {
                        r.source.clone()
                    },
                });
            }
            p.operation = Operation::Adopt;
            p.file = Some(AdoptFile {
                file: prov.file.clone(),
                document: prov.document,
            });
            p.changes = d
                .fields
                .iter()
                .map(|f| FieldChange {
                    path: f.path.to_string(),
                    from: f.desired.clone(),
                    to: f.live.clone(),
                })
                .collect();
            p.writes = d
                .fields
                .iter()
                .map(|f| (f.path.clone(), f.live.clone()))
                .collect();
        }
        (RemediationAction::Adopt, kind) => {
            return Err(Refusal::Unsupported(format!(
                "adopting a {kind} object ({object}) is not supported: {}",
                if kind == DriftKind::Missing {
                    "remove it from Git by hand"
                } else {
                    "export it and add it to Git by hand"
                }
            )));
        }
    }
    p.id = plan_id(&p);
    Ok(p)
}

/// The content hash of a plan.
fn plan_id(p: &Plan) -> String {
    let seed = json!({
        "episode": p.episode,
        "object": p.object,
        "operation": p.operation.as_str(),
        "apply": p.apply,
        "removals": p.removals,
        "writes": p.writes,
        "file": p.file,
    });
    format!(
        "{:016x}",
        xxhash_rust::xxh3::xxh3_64(seed.to_string().as_bytes())
    )
}

/// Refuses a Secret whose value Git does not hold in plain form.
fn secret_plain(desired: &Value, object: &str) -> Result<(), Refusal> {
    let refuse = |why: &str| {
        Err(Refusal::SecretNotPlain {
            object: object.to_owned(),
            why: why.to_owned(),
        })
    };
    if desired.get("sops").is_some() {
        return refuse("encrypted with SOPS");
    }
    let data = ["data", "stringData"]
        .iter()
        .filter_map(|k| desired.get(*k).and_then(Value::as_object))
        .collect::<Vec<_>>();
    if data.is_empty() {
        return refuse("the manifest holds no data");
    }
    let encrypted = data
        .iter()
        .flat_map(|m| m.values())
        .any(|v| v.as_str().is_some_and(|s| s.starts_with("ENC[")));
    if encrypted {
        return refuse("its values are encrypted");
    }
    Ok(())
}

/// Drops what the API server writes and sets the namespace.
fn strip_server_fields(body: &mut Value, namespace: Option<&str>) {
    let Value::Object(map) = body else {
        return;
    };
    map.remove("status");
    if let Some(Value::Object(meta)) = map.get_mut("metadata") {
        for k in [
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "managedFields",
            "selfLink",
        ] {
            meta.remove(k);
        }
        if let Some(ns) = namespace {
            meta.insert("namespace".into(), Value::String(ns.to_owned()));
        }
    }
}

/// The paths whose newest owner is one of `managers`.
fn newest_owners(entries: &[ManagedFieldsEntry], managers: &[String]) -> Vec<(FieldPath, String)> {
    let mut out = Vec::new();
    for e in entries.iter().filter(|e| managers.contains(&e.manager)) {
        for p in &e.paths {
            let newer = entries.iter().any(|o| {
                o.manager != e.manager && o.time > e.time && o.paths.iter().any(|q| p.is_within(q))
            });
            if !newer {
                out.push((p.clone(), e.manager.clone()));
            }
        }
    }
    out
}

/// The merge key of a list item as the normalizer names it, for each way it may be named.
fn item_names(item: &Map<String, Value>) -> Vec<String> {
    let scalar = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    let mut out = Vec::new();
    for k in ["name", "mountPath", "devicePath"] {
        if let Some(s) = item.get(k).and_then(scalar) {
            out.push(s);
        }
    }
    let proto = item
        .get("protocol")
        .and_then(Value::as_str)
        .unwrap_or("TCP");
    for k in ["containerPort", "port"] {
        if let Some(s) = item.get(k).and_then(scalar) {
            out.push(format!("{s}/{proto}"));
        }
    }
    out
}

fn escape_pointer(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// Finds `path` in `value`: the JSON pointer, and the `test` operations that guard the list
/// items on the way (their position may change).
fn locate(value: &Value, path: &FieldPath) -> Option<(String, Vec<Value>)> {
    let mut cur = value;
    let mut pointer = String::new();
    let mut tests = Vec::new();
    for seg in path.segments() {
        match seg {
            Segment::Key(k) => {
                cur = cur.as_object()?.get(&*k)?;
                pointer.push('/');
                pointer.push_str(&escape_pointer(&k));
            }
            Segment::Item(k) => {
                let items = cur.as_array()?;
                let (i, item) = items.iter().enumerate().find(|(_, v)| {
                    v.as_object()
                        .is_some_and(|m| item_names(m).iter().any(|n| n == &k))
                })?;
                pointer.push_str(&format!("/{i}"));
                tests.push(json!({"op": "test", "path": pointer.clone(), "value": item}));
                cur = item;
            }
        }
    }
    Some((pointer, tests))
}

/// The guarded JSON patch operations that remove `path` from `live`.
fn removal(live: &Value, path: &FieldPath) -> Option<Vec<Value>> {
    let (pointer, mut ops) = locate(live, path)?;
    let value = live.pointer(&pointer)?;
    if !ops.iter().any(|o| o["path"] == pointer.as_str()) {
        ops.push(json!({"op": "test", "path": pointer.clone(), "value": value}));
    }
    ops.push(json!({"op": "remove", "path": pointer}));
    Some(ops)
}

/// Removes `path` from `value`; whether something was there.
pub fn remove_path(value: &mut Value, path: &FieldPath) -> bool {
    let Some((pointer, _)) = locate(value, path) else {
        return false;
    };
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return false;
    };
    let last = last.replace("~1", "/").replace("~0", "~");
    match value.pointer_mut(parent) {
        Some(Value::Object(m)) => m.remove(&last).is_some(),
        Some(Value::Array(a)) => match last.parse::<usize>() {
            Ok(i) if i < a.len() => {
                a.remove(i);
                true
            }
            _ => false,
        },
        _ => false,
    }
}

/// Sets `path` in `value` to `to` (absent: removes it), creating maps on the way; a keyed list
/// item that does not exist yet is appended with its merge key `name` (or `mountPath`).
pub fn set_path(value: &mut Value, path: &FieldPath, to: Option<&Value>) -> bool {
    let Some(to) = to else {
        return remove_path(value, path);
    };
    let segs: Vec<Segment<'_>> = path.segments().collect();
    let mut cur = value;
    for (i, seg) in segs.iter().enumerate() {
        let last = i + 1 == segs.len();
        match seg {
            Segment::Key(k) => {
                if !cur.is_object() {
                    if cur.is_null() {
                        *cur = Value::Object(Map::new());
                    } else {
                        return false;
                    }
                }
                let Value::Object(m) = cur else {
                    return false;
                };
                if last {
                    m.insert(k.to_string(), to.clone());
                    return true;
                }
                cur = m.entry(k.to_string()).or_insert(Value::Null);
            }
            Segment::Item(k) => {
                if cur.is_null() {
                    *cur = Value::Array(Vec::new());
                }
                let Value::Array(items) = cur else {
                    return false;
                };
                let pos = items.iter().position(|v| {
                    v.as_object()
                        .is_some_and(|m| item_names(m).iter().any(|n| n == k))
                });
                if last {
                    match pos {
                        Some(p) => items[p] = to.clone(),
                        None => items.push(to.clone()),
                    }
                    return true;
                }
                let p = match pos {
                    Some(p) => p,
                    None => {
                        items.push(json!({ "name": k }));
                        items.len() - 1
                    }
                };
                cur = &mut items[p];
            }
        }
    }
    false
}

/// What changes from `before` to `after` (two raw objects of the same kind), field by field as
/// JSON pointers, leaving out what the API server keeps for itself (`managedFields`,
/// `resourceVersion`, `generation`, `status`). Values under a Secret's `data` and `stringData`
/// are shown as `(secret value)`.
pub fn diff_objects(
    before: Option<&Value>,
    after: Option<&Value>,
    secret: bool,
) -> Vec<FieldChange> {
    let mut out = Vec::new();
    diff_at(String::new(), before, after, secret, &mut out);
    out
}

fn skipped(pointer: &str) -> bool {
    matches!(
        pointer,
        "/metadata/managedFields"
            | "/metadata/resourceVersion"
            | "/metadata/generation"
            | "/status"
    )
}

fn diff_at(
    pointer: String,
    before: Option<&Value>,
    after: Option<&Value>,
    secret: bool,
    out: &mut Vec<FieldChange>,
) {
    if skipped(&pointer) || before == after {
        return;
    }
    match (before, after) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                diff_at(
                    format!("{pointer}/{}", escape_pointer(k)),
                    a.get(k),
                    b.get(k),
                    secret,
                    out,
                );
            }
        }
        (Some(Value::Array(a)), Some(Value::Array(b))) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                diff_at(format!("{pointer}/{i}"), Some(x), Some(y), secret, out);
            }
        }
        _ => {
            // a whole object or subtree (a deleted or created Secret, its `data` added) goes
            // through the same rule as a leaf
            let show = |v: Option<&Value>| {
                v.map(|v| {
                    if secret {
                        crate::secret::redact_at(&pointer, v)
                    } else {
                        v.clone()
                    }
                })
            };
            let (from, to) = (show(before), show(after));
            out.push(FieldChange {
                path: pointer,
                from,
                to,
            });
        }
    }
}

/// Applies a plan's removals to `value` (what the API server does with them), for a preview.
pub fn apply_removals(value: &mut Value, removals: &[Value]) {
    for op in removals.iter().filter(|o| o["op"] == "remove") {
        let Some(pointer) = op["path"].as_str() else {
            continue;
        };
        let Some((parent, last)) = pointer.rsplit_once('/') else {
            continue;
        };
        let last = last.replace("~1", "/").replace("~0", "~");
        match value.pointer_mut(parent) {
            Some(Value::Object(m)) => {
                m.remove(&last);
            }
            Some(Value::Array(a)) => {
                if let Ok(i) = last.parse::<usize>() {
                    if i < a.len() {
                        a.remove(i);
                    }
                }
            }
            _ => {}
        }
    }
}

/// The audit of one remediation, kept in the history as a `remediated` event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RemediationRecord {
    /// The plan's id.
    pub plan_id: String,
    /// Revert or adopt.
    pub action: RemediationAction,
    /// What was done.
    pub operation: Operation,
    /// Who asked for it to be carried out (who confirmed the plan): `token:<name>`,
    /// `cli:<user>`, `policy`.
    pub requested_by: String,
    /// Who made the plan that was confirmed, when not the same caller (absent in records
    /// older than this field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned_by: Option<String>,
    /// The previewed change (Secret values redacted).
    pub changes: Vec<FieldChange>,
    /// Whether it succeeded.
    pub ok: bool,
    /// The result in words (`applied`, the branch pushed, the error).
    pub result: String,
}

/// The `remediated` event of `drift` at `at` (deterministic id: writing it twice keeps one).
pub fn remediation_event(
    drift: &Drift,
    record: RemediationRecord,
    at: DateTime<Utc>,
) -> DriftEvent {
    let seed = format!(
        "{}|remediated|{}|{}",
        drift.episode,
        record.plan_id,
        at.timestamp_millis()
    );
    DriftEvent {
        event_id: format!("{:016x}", xxhash_rust::xxh3::xxh3_64(seed.as_bytes())),
        kind: EventKind::Remediated,
        at,
        scan_id: format!("remediation-{}", record.plan_id),
        revision: drift.revision.clone(),
        drift: drift.clone(),
        remediation: Some(record),
        acknowledgement: None,
    }
}

/// The actor a drift names when DriftGuard ended it ([`Drift::resolved_by`]).
pub const ACTOR: &str = "driftguard";

/// Credits a `resolved` event to the remediation that ended it: when `by` is a successful
/// remediation of the same episode, the drift names DriftGuard ([`ACTOR`]) as who ended it, and
/// the resolution says what DriftGuard did: `adopted` for an adoption, `applied` for a reverse
/// drift put into the cluster, `reverted` for the cluster put back to Git (an orphan deleted
/// included). Returns whether the event was credited; any other event, or a failed
/// remediation, is left as it is.
pub fn credit(resolved: &mut DriftEvent, episode: &str, by: &RemediationRecord) -> bool {
    if resolved.kind != EventKind::Resolved || resolved.drift.episode != episode || !by.ok {
        return false;
    }
    let d = &mut resolved.drift;
    d.resolution = Some(match (by.operation, d.direction) {
        (Operation::Adopt | Operation::Codify, _) => Resolution::Adopted,
        (_, Direction::Reverse) => Resolution::Applied,
        _ => Resolution::Reverted,
    });
    d.resolved_by = Some(ACTOR.to_owned());
    true
}

named_enum! {
    /// What an environment's policy does with a drift.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub enum PolicyMode: "policy mode" {
        /// Nothing (the default).
        #[default]
        Off => "off",
        /// Announce that the drift could be remediated, change nothing.
        Notify => "notify",
        /// Revert the cluster to Git.
        Revert => "revert",
        /// Adopt the change into Git.
        Adopt => "adopt",
    }
}

/// The hours of the day (UTC) and days of the week in which a policy may act.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TimeWindow {
    /// First hour (0-23, UTC) in which the policy acts.
    pub start_hour: u32,
    /// Hour (1-24, UTC) from which it no longer acts; below `startHour`: the window spans
    /// midnight.
    pub end_hour: u32,
    /// Days (`mon` ... `sun`); empty: every day.
    #[serde(default)]
    pub days: Vec<String>,
}

impl TimeWindow {
    /// Whether `at` lies in the window.
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        let h = at.hour();
        let in_hours = if self.start_hour <= self.end_hour {
            h >= self.start_hour && h < self.end_hour
        } else {
            h >= self.start_hour || h < self.end_hour
        };
        let day = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
            [at.weekday().num_days_from_monday() as usize];
        in_hours && (self.days.is_empty() || self.days.iter().any(|d| d.eq_ignore_ascii_case(day)))
    }
}

/// At most `max` remediations per `per_seconds`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimit {
    /// Remediations allowed in the period.
    pub max: u32,
    /// The period, in seconds.
    pub per_seconds: u64,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            max: 10,
            per_seconds: 60,
        }
    }
}

/// The remediation policy of one environment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Policy {
    /// `off` (default), `notify`, `revert` or `adopt`.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "String"))]
    pub mode: PolicyMode,
    /// The objects it applies to (empty: every object).
    #[serde(default)]
    pub selectors: Vec<ObjectSelector>,
    /// The lowest severity it acts on (absent: any).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub min_severity: Option<Severity>,
    /// The directions it acts on (empty: forward only for revert and adopt).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Vec<String>"))]
    pub directions: Vec<Direction>,
    /// How often it may act.
    #[serde(default)]
    pub rate_limit: RateLimit,
    /// When it may act (absent: always).
    #[serde(default)]
    pub window: Option<TimeWindow>,
    /// The kill switch: true stops the policy at once.
    #[serde(default)]
    pub paused: bool,
}

/// What a policy has done so far (kept by the caller).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyLedger {
    /// Episodes already acted on.
    pub episodes: std::collections::HashSet<String>,
    /// When it acted, oldest first.
    pub acted_at: std::collections::VecDeque<DateTime<Utc>>,
}

impl PolicyLedger {
    /// Records that the policy acted on `episode` at `at`.
    pub fn record(&mut self, episode: &str, at: DateTime<Utc>) {
        self.episodes.insert(episode.to_owned());
        self.acted_at.push_back(at);
    }
}

/// What a policy decides for one drift.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Remediate with this action.
    Act(RemediationAction),
    /// Announce only.
    Notify,
    /// Do nothing, and why.
    Skip(String),
}

/// What `policy` decides for `d` at `now`, given what it has done (`ledger`) and whether the
/// global kill switch is on.
pub fn decide(
    policy: &Policy,
    d: &Drift,
    ledger: &PolicyLedger,
    killed: bool,
    now: DateTime<Utc>,
) -> Decision {
    let skip = |s: &str| Decision::Skip(s.to_owned());
    if policy.mode == PolicyMode::Off {
        return skip("the policy is off");
    }
    if killed || policy.paused {
        return skip("the kill switch is on");
    }
    if !d.is_open() {
        return skip("the drift is resolved");
    }
    if d.direction == Direction::Conflict {
        return skip("a conflict is never remediated by policy");
    }
    if !policy.selectors.is_empty() && !policy.selectors.iter().any(|s| s.matches(&d.id)) {
        return skip("no selector matches the object");
    }
    if policy.min_severity.is_some_and(|m| d.severity < m) {
        return skip("below the policy's severity");
    }
    let directions = if policy.directions.is_empty() {
        vec![Direction::Forward]
    } else {
        policy.directions.clone()
    };
    if !directions.contains(&d.direction) {
        return Decision::Skip(format!("the policy does not act on {} drift", d.direction));
    }
    if policy.mode == PolicyMode::Notify {
        return Decision::Notify;
    }
    if ledger.episodes.contains(&d.episode) {
        return skip("the policy already acted on this episode");
    }
    if policy.window.as_ref().is_some_and(|w| !w.contains(now)) {
        return skip("outside the policy's time window");
    }
    // a period longer than any date can go back counts every remediation ever made
    let since = i64::try_from(policy.rate_limit.per_seconds)
        .ok()
        .and_then(chrono::Duration::try_seconds)
        .and_then(|period| now.checked_sub_signed(period))
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    let recent = ledger.acted_at.iter().filter(|t| **t > since).count();
    if recent >= policy.rate_limit.max as usize {
        return skip("the rate limit is reached");
    }
    Decision::Act(match policy.mode {
        PolicyMode::Adopt => RemediationAction::Adopt,
        _ => RemediationAction::Revert,
    })
}

pub mod advice;

#[cfg(test)]
mod tests;
