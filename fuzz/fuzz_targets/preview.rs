//! The preview and plan rendering path of a Secret: two arbitrary objects diffed as a
//! remediation preview shows them ([`diff_objects`]), and [`secret::redact`] /
//! [`secret::redact_at`] on any part. Invariants: no panic, and no value placed under `data`,
//! `stringData` or the last-applied annotation of a Secret ever appears in what is shown, wherever
//! the two objects differ (a whole object deleted or created, a map added, a leaf changed).
#![no_main]
use arbitrary::Arbitrary;
use driftguard_core::remediate::diff_objects;
use driftguard_core::secret;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map, Value};

/// A canary no key or other value of the generated objects can spell by chance.
const CANARY: &str = "Zq9-canary-secret-value";

#[derive(Arbitrary, Debug)]
enum J {
    Null,
    Bool(bool),
    Int(i32),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

impl J {
    fn value(&self, depth: usize) -> Value {
        match self {
            J::Null => Value::Null,
            J::Bool(b) => json!(b),
            J::Int(i) => json!(i),
            J::Str(s) => json!(s.replace("canary", "c")),
            J::Arr(a) if depth < 4 => Value::Array(a.iter().take(8).map(|j| j.value(depth + 1)).collect()),
            J::Obj(o) if depth < 4 => Value::Object(
                o.iter()
                    .take(8)
                    .map(|(k, j)| (k.replace("canary", "c"), j.value(depth + 1)))
                    .collect(),
            ),
            _ => Value::Null,
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Input {
    /// Keys of `data` / `stringData` (each value is the canary, in some shape).
    data: Vec<(String, u8)>,
    string_data: Vec<(String, u8)>,
    last_applied: bool,
    /// Everything else of each side.
    before_rest: J,
    after_rest: J,
    /// Which sides exist and carry the secret parts.
    sides: u8,
    pointer: Vec<String>,
}

fn canary_value(shape: u8) -> Value {
    match shape % 4 {
        0 => json!(CANARY),
        1 => json!([CANARY]),
        2 => json!({ "v": CANARY }),
        _ => json!(format!("x{CANARY}x")),
    }
}

fn secret_object(i: &Input, rest: &J, with_values: bool) -> Value {
    let mut obj = match rest.value(0) {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    obj.insert("apiVersion".into(), json!("v1"));
    obj.insert("kind".into(), json!("Secret"));
    if with_values {
        let map = |kv: &[(String, u8)]| {
            Value::Object(kv.iter().take(8).map(|(k, s)| (k.clone(), canary_value(*s))).collect())
        };
        obj.insert("data".into(), map(&i.data));
        obj.insert("stringData".into(), map(&i.string_data));
        if i.last_applied {
            let meta = obj.entry("metadata").or_insert_with(|| json!({}));
            if !meta.is_object() {
                *meta = json!({});
            }
            let ann = meta
                .as_object_mut()
                .expect("an object")
                .entry("annotations")
                .or_insert_with(|| json!({}));
            if !ann.is_object() {
                *ann = json!({});
            }
            ann.as_object_mut().expect("an object").insert(
                secret::LAST_APPLIED.into(),
                json!(format!("{{\"data\":{{\"k\":\"{CANARY}\"}}}}")),
            );
        }
    }
    Value::Object(obj)
}

fuzz_target!(|i: Input| {
    let before = secret_object(&i, &i.before_rest, i.sides & 1 == 1);
    let after = secret_object(&i, &i.after_rest, i.sides & 2 == 2);
    let (b, a) = match i.sides >> 2 & 3 {
        0 => (Some(&before), Some(&after)),
        1 => (Some(&before), None),
        2 => (None, Some(&after)),
        _ => (None, None),
    };
    let shown = serde_json::to_string(&diff_objects(b, a, true)).expect("json");
    assert!(!shown.contains(CANARY), "a preview shows a Secret value: {shown}");

    let mut whole = before.clone();
    secret::redact(&mut whole);
    assert!(!whole.to_string().contains(CANARY), "{whole}");

    // any part of the object, redacted where it was
    let pointer: String = i.pointer.iter().take(4).map(|t| format!("/{}", t.replace('~', "~0").replace('/', "~1"))).collect();
    if let Some(part) = before.pointer(&pointer) {
        let shown = secret::redact_at(&pointer, part).to_string();
        assert!(!shown.contains(CANARY), "{pointer}: {shown}");
    }
});
