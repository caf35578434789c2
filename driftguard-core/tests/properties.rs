//! Properties: key order never changes a hash; normalization is idempotent; an object compared
//! with itself is in sync; a canonical quantity reads back as itself. The same invariants as the
//! fuzz targets of `fuzz/` (`compare`, `quantity`), on the stable toolchain.

use driftguard_core::engine::{Engine, EnvironmentSpec};
use driftguard_core::hash::hash_value;
use driftguard_core::model::{Provenance, RawLive, RawManifest, RawObject};
use driftguard_core::normalize::{Normalizer, SecretKey};
use driftguard_core::ports::{DesiredSet, LiveSnapshot};
use driftguard_core::quantity::canonical;
use driftguard_core::state::Presence;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(|i| json!(i)),
        "[a-z0-9]{0,6}".prop_map(Value::String),
        prop_oneof![Just("500m"), Just("1Gi"), Just("0.5"), Just("2")]
            .prop_map(|s| Value::String(s.into())),
        Just(Value::Null),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    "[a-z]{1,5}".prop_map(String::from),
                    Just("requests".to_owned()),
                    Just("containers".to_owned()),
                    Just("env".to_owned()),
                    Just("name".to_owned()),
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// JSON text with every object's keys written in reverse order.
fn reversed_text(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let parts: Vec<String> = m
                .iter()
                .rev()
                .map(|(k, v)| format!("{}:{}", Value::String(k.clone()), reversed_text(v)))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(reversed_text).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

fn object(kind: &str, spec: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": kind,
        "metadata": {"name": "x", "namespace": "n", "labels": {"b": "1", "a": "2"}},
        "spec": spec})
}

proptest! {
    #[test]
    fn key_order_never_changes_a_hash(spec in value()) {
        let obj = object("Deployment", spec);
        let reordered: Value = serde_json::from_str(&reversed_text(&obj)).expect("valid JSON");
        let yaml = serde_yaml::to_string(&obj).expect("yaml");
        let from_yaml: Value = serde_yaml::from_str(&yaml).expect("yaml back");
        let n = Normalizer::new(SecretKey::new(b"k".to_vec()));
        let a = n.normalize("e", &obj, &[]).expect("valid");
        let b = n.normalize("e", &reordered, &[]).expect("valid");
        let c = n.normalize("e", &from_yaml, &[]).expect("valid");
        prop_assert_eq!(hash_value(&a.content.to_value()), hash_value(&b.content.to_value()));
        prop_assert_eq!(a.content.hash(), hash_value(&a.content.to_value()));
        prop_assert_eq!(hash_value(&a.content.to_value()), hash_value(&c.content.to_value()));
    }

    #[test]
    fn normalize_is_idempotent(spec in value(), kind in prop_oneof![Just("Deployment"), Just("ConfigMap"), Just("Service")]) {
        let n = Normalizer::new(SecretKey::new(b"k".to_vec()));
        let once = n.normalize("e", &object(kind, spec), &[]).expect("valid");
        let mut again_input = once.content.to_value();
        let m: &mut Map<String, Value> = again_input.as_object_mut().expect("object");
        m.insert("apiVersion".into(), json!("apps/v1"));
        m.insert("kind".into(), json!(kind));
        let meta = m.entry("metadata").or_insert_with(|| json!({}));
        meta["name"] = json!("x");
        meta["namespace"] = json!("n");
        let twice = n.normalize("e", &again_input, &[]).expect("valid");
        prop_assert_eq!(once.content, twice.content);
    }

    #[test]
    fn an_object_compared_with_itself_is_in_sync(
        spec in value(),
        data in value(),
        kind in prop_oneof![Just("Deployment"), Just("ConfigMap"), Just("Secret"), Just("Service"), Just("Widget")],
    ) {
        let mut obj = object(kind, spec);
        obj["data"] = data;
        let mut live = obj.clone();
        live["metadata"]["uid"] = json!("u-1");
        let engine = Engine::new(
            EnvironmentSpec::new("e"),
            Normalizer::new(SecretKey::new(b"k".to_vec())),
        );
        let st = engine.index(
            &DesiredSet {
                objects: vec![RawManifest {
                    object: RawObject::new(obj),
                    provenance: Provenance::default(),
                }],
                ..DesiredSet::default()
            },
            &LiveSnapshot { served: Vec::new(),
                objects: vec![RawLive::new(live)].into(),
                errors: Vec::new(),
            },
        );
        for id in st.desired.keys() {
            let o = engine.observe(&st, id);
            match &o.presence {
                Presence::Both(c) => prop_assert!(c.in_sync(), "itself differs: {:?}", c.drifted),
                other => prop_assert!(false, "itself is not on both sides: {:?}", other),
            }
        }
    }

    #[test]
    fn a_canonical_quantity_reads_back_as_itself(
        n in 0u64..10_000_000,
        frac in prop::option::of(0u32..1000),
        unit in prop_oneof![Just(""), Just("m"), Just("k"), Just("M"), Just("G"), Just("Ki"), Just("Mi"), Just("Gi"), Just("e3"), Just("E-2")],
    ) {
        let s = match frac {
            Some(f) => format!("{n}.{f}{unit}"),
            None => format!("{n}{unit}"),
        };
        if let Some(c) = canonical(&s) {
            let again = canonical(&c);
            prop_assert_eq!(again.as_deref(), Some(c.as_str()), "{} -> {}", s, c);
        }
    }
}
