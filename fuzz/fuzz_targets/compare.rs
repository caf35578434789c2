//! Normalization and comparison of arbitrary objects, with the invariants the engine relies
//! on: no panic; normalizing twice equals normalizing once; an object compared with itself is
//! in sync; hashes do not depend on key order.
#![no_main]
use arbitrary::Arbitrary;
use driftguard_core::engine::{Engine, EnvironmentSpec};
use driftguard_core::model::{Provenance, RawLive, RawManifest, RawObject};
use driftguard_core::normalize::{Normalizer, SecretKey};
use driftguard_core::ports::{DesiredSet, LiveSnapshot};
use driftguard_core::state::Presence;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map, Value};

/// Keys Kubernetes objects use, so that merge keys, closed maps and quantities are reached.
const KEYS: &[&str] = &[
    "spec", "template", "containers", "name", "image", "env", "value", "ports",
    "containerPort", "resources", "limits", "requests", "cpu", "memory", "replicas",
    "labels", "annotations", "data", "stringData", "securityContext", "privileged",
    "volumes", "emptyDir", "hostPath", "rules", "verbs", "apiGroups", "selector",
    "matchLabels", "initContainers", "volumeMounts", "mountPath", "protocol", "key",
];

#[derive(Arbitrary, Debug)]
enum J {
    Null,
    Bool(bool),
    Int(i32),
    Float(f32),
    Str(String),
    Quantity(u8, u16),
    Arr(Vec<J>),
    Obj(Vec<(K, J)>),
}

#[derive(Arbitrary, Debug)]
enum K {
    Known(u8),
    Free(String),
}

fn key(k: &K) -> String {
    match k {
        K::Known(i) => KEYS[*i as usize % KEYS.len()].to_owned(),
        K::Free(s) => s.chars().take(12).collect(),
    }
}

fn value(j: &J, depth: usize) -> Value {
    if depth > 6 {
        return Value::Null;
    }
    match j {
        J::Null => Value::Null,
        J::Bool(b) => json!(b),
        J::Int(i) => json!(i),
        J::Float(f) if f.is_finite() => json!(f),
        J::Float(_) => Value::Null,
        J::Str(s) => Value::String(s.chars().take(40).collect()),
        J::Quantity(unit, n) => {
            let units = ["", "m", "Ki", "Mi", "Gi", "k", "M", "G", "e3"];
            Value::String(format!("{n}{}", units[*unit as usize % units.len()]))
        }
        J::Arr(items) => Value::Array(items.iter().take(6).map(|i| value(i, depth + 1)).collect()),
        J::Obj(entries) => {
            let mut m = Map::new();
            for (k, v) in entries.iter().take(8) {
                m.insert(key(k), value(v, depth + 1));
            }
            Value::Object(m)
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Input {
    kind: u8,
    body: Vec<(K, J)>,
}

const KINDS: &[(&str, &str)] = &[
    ("apps/v1", "Deployment"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "Service"),
    ("apps/v1", "StatefulSet"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("example.com/v1", "Widget"),
];

/// The same JSON written with every object's keys in reverse order.
fn reversed(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, v) in m.iter().rev() {
                out.insert(k.clone(), reversed(v));
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(reversed).collect()),
        other => other.clone(),
    }
}

fuzz_target!(|input: Input| {
    let (api_version, kind) = KINDS[input.kind as usize % KINDS.len()];
    let mut obj = Map::new();
    for (k, v) in input.body.iter().take(8) {
        obj.insert(key(k), value(v, 1));
    }
    obj.insert("apiVersion".into(), json!(api_version));
    obj.insert("kind".into(), json!(kind));
    obj.insert("metadata".into(), json!({"name": "x", "namespace": "n"}));
    let obj = Value::Object(obj);
    let normalizer = Normalizer::new(SecretKey::new(b"fuzz".to_vec()));
    let Ok(once) = normalizer.normalize("fuzz", &obj, &[]) else {
        return;
    };
    // hashes do not depend on key order
    let rev = normalizer
        .normalize("fuzz", &reversed(&obj), &[])
        .expect("the same object in another key order normalizes");
    assert_eq!(once.content.hash(), rev.content.hash(), "key order changed the hash");

    // normalizing twice equals normalizing once (Secrets' values are hashed once: skip them)
    if kind != "Secret" {
        let mut again = match once.content.to_value() {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        again.insert("apiVersion".into(), json!(api_version));
        again.insert("kind".into(), json!(kind));
        again.insert("metadata".into(), {
            let mut meta = again
                .get("metadata")
                .cloned()
                .unwrap_or_else(|| json!({}));
            meta["name"] = json!("x");
            meta["namespace"] = json!("n");
            meta
        });
        let twice = normalizer
            .normalize("fuzz", &Value::Object(again), &[])
            .expect("a normalized object normalizes again");
        assert_eq!(
            once.content.hash(),
            twice.content.hash(),
            "normalizing twice differs from once:\n{}\n{}",
            once.content.to_value(),
            twice.content.to_value()
        );
    }

    // an object compared with itself is in sync
    let engine = Engine::new(EnvironmentSpec::new("fuzz"), normalizer);
    let mut live = obj.clone();
    live["metadata"]["uid"] = json!("u");
    let st = engine.index(
        &DesiredSet {
            objects: vec![RawManifest {
                object: RawObject::new(obj),
                provenance: Provenance::default(),
            }],
            ..DesiredSet::default()
        },
        &LiveSnapshot {
            objects: vec![RawLive::new(live)].into(),
            errors: Vec::new(),
        },
    );
    for id in st.desired.keys() {
        let o = engine.observe(&st, id);
        match &o.presence {
            Presence::Both(c) => assert!(c.in_sync(), "itself differs: {:?}", c.drifted),
            other => panic!("itself is not on both sides: {other:?}"),
        }
    }
});
