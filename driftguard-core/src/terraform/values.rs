//! Attribute values of Terraform resources: sensitive values hashed, a canonical encoding, and
//! the comparison of the code's values with the cloud's.
//!
//! Values compare as Terraform means them once the noise of its JSON is gone: `null`, an empty
//! list and an empty map are all "not set" (a refresh turns `tags = null` into `tags = {}`),
//! maps are compared key by key (`tags.team`), a nested block of one instance (a list of one
//! object on both sides: `point_in_time_recovery`) field by field
//! (`point_in_time_recovery[0].enabled`: a field the code does not set that moved with it is
//! not part of the verdict), and other lists and sets whole (`ingress`: the rules
//! of a security group; a set has no stable item names). Values only known after an apply are
//! not compared.

use serde_json::{Map, Value};
use xxhash_rust::xxh3::xxh3_64;

use crate::compare::{shorten, Comparison, FieldDiff, Leaf, REDACTED};
use crate::normalize::{Normalizer, SECRET_HASH_PREFIX};
use crate::path::FieldPath;

/// Merges sensitivity marks (`true` where sensitive; maps and lists mirroring the values'
/// shape) into `into`: a value marked anywhere is marked.
pub(crate) fn merge_marks(into: &mut Value, from: &Value) {
    if !marks_any(from) || *into == Value::Bool(true) {
        return;
    }
    if *from == Value::Bool(true) || !(into.is_object() || into.is_array()) {
        *into = from.clone();
        return;
    }
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge_marks(a.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, v) in b.iter().enumerate() {
                match a.get_mut(i) {
                    Some(x) => merge_marks(x, v),
                    None => a.push(v.clone()),
                }
            }
        }
        // shapes that disagree: mark the whole value rather than risk showing it
        (into, _) => *into = Value::Bool(true),
    }
}

/// Whether any value under `marks` is marked.
fn marks_any(marks: &Value) -> bool {
    match marks {
        Value::Bool(b) => *b,
        Value::Object(m) => m.values().any(marks_any),
        Value::Array(a) => a.iter().any(marks_any),
        _ => false,
    }
}

/// Replaces every value `marks` marks as sensitive by its keyed hash (`hmac-sha256:...`; a
/// string's bytes, or the canonical encoding of anything else). `null` stays `null`.
pub(crate) fn sanitize(value: &mut Value, marks: &Value, normalizer: &Normalizer) {
    match (marks, &mut *value) {
        (_, Value::Null) => {}
        (Value::Bool(true), v) => *v = Value::String(keyed_hash(v, normalizer)),
        (Value::Object(m), Value::Object(vm)) => {
            for (k, mk) in m {
                if let Some(x) = vm.get_mut(k) {
                    sanitize(x, mk, normalizer);
                }
            }
        }
        (Value::Array(m), Value::Array(va)) => {
            for (x, mk) in va.iter_mut().zip(m) {
                sanitize(x, mk, normalizer);
            }
        }
        // marks whose shape does not fit the value: hash it whole if anything is marked
        (m, v) => {
            if marks_any(m) {
                *v = Value::String(keyed_hash(v, normalizer));
            }
        }
    }
}

fn keyed_hash(v: &Value, normalizer: &Normalizer) -> String {
    match v {
        Value::String(s) => normalizer.hash_secret(s.as_bytes()),
        other => {
            let mut buf = String::new();
            encode(other, &mut buf);
            normalizer.hash_secret(buf.as_bytes())
        }
    }
}

/// Whether a value counts as set: not `null`, not an empty list or map.
fn is_set(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
        _ => true,
    }
}

/// The canonical encoding: map keys sorted, unset map entries left out, integral numbers
/// written as integers.
pub(crate) fn encode(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => out.push_str(&i.to_string()),
            (None, Some(u), _) => out.push_str(&u.to_string()),
            (None, None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
                out.push_str(&(f as i64).to_string());
            }
            _ => out.push_str(&n.to_string()),
        },
        Value::String(s) => out.push_str(&Value::String(s.clone()).to_string()),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                encode(x, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().filter(|k| is_set(&m[*k])).collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                encode(&m[k], out);
            }
            out.push('}');
        }
    }
}

/// The hash of a value as compared (`None`: not set).
pub(crate) fn value_hash(v: Option<&Value>) -> Option<u64> {
    let v = v.filter(|v| is_set(v))?;
    let mut buf = String::new();
    encode(v, &mut buf);
    Some(xxh3_64(buf.as_bytes()))
}

/// The value at a path of map keys and list indexes (`[0]`).
pub(crate) fn value_at<'a>(v: Option<&'a Value>, segments: &[String]) -> Option<&'a Value> {
    segments.iter().try_fold(v?, |v, k| match (v, index(k)) {
        (Value::Array(a), Some(i)) => a.get(i),
        _ => v.get(k.as_str()),
    })
}

/// The list index a path segment names (`[0]`).
pub(crate) fn index(segment: &str) -> Option<usize> {
    segment.strip_prefix('[')?.strip_suffix(']')?.parse().ok()
}

/// A value as shown in a field diff: sensitive values (their keyed hashes) as
/// `(secret value)`, long strings shortened.
fn shown(v: &Value) -> Value {
    match v {
        Value::String(s) if s.starts_with(SECRET_HASH_PREFIX) => Value::String(REDACTED.into()),
        Value::Array(a) => Value::Array(a.iter().map(shown).collect()),
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().filter(|k| is_set(&m[*k])).collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), shown(&m[k])))
                    .collect::<Map<String, Value>>(),
            )
        }
        other => shorten(other.clone()),
    }
}

/// Compares the code's values (`desired`, without what `unknown` marks) with the cloud's
/// (`live`): one leaf per attribute (map keys recursed, lists whole), a field diff per leaf
/// that differs. Either side may be absent.
pub fn compare_values(
    desired: Option<&Value>,
    live: Option<&Value>,
    unknown: &Value,
) -> Comparison {
    compare_with_paths(desired, live, unknown).0
}

/// [`compare_values`], with the map keys leading to each drifted field (in the order of
/// `drifted`).
pub(crate) fn compare_with_paths(
    desired: Option<&Value>,
    live: Option<&Value>,
    unknown: &Value,
) -> (Comparison, Vec<Vec<String>>) {
    let mut w = Walker::default();
    w.walk(desired, live, unknown);
    let mut drifted: Vec<(FieldDiff, u64, Vec<String>)> = w.drifted;
    drifted.sort_by(|a, b| a.0.path.cmp(&b.0.path));
    let mut cmp = Comparison {
        leaves: w.leaves,
        drifted: Vec::with_capacity(drifted.len()),
        drifted_hashes: Vec::with_capacity(drifted.len()),
    };
    let mut paths = Vec::with_capacity(drifted.len());
    for (d, h, p) in drifted {
        cmp.drifted.push(d);
        cmp.drifted_hashes.push(h);
        paths.push(p);
    }
    (cmp, paths)
}

#[derive(Default)]
struct Walker {
    path: FieldPath,
    segments: Vec<String>,
    leaves: Vec<Leaf>,
    drifted: Vec<(FieldDiff, u64, Vec<String>)>,
}

impl Walker {
    fn walk(&mut self, d: Option<&Value>, l: Option<&Value>, unknown: &Value) {
        if unknown == &Value::Bool(true) {
            return;
        }
        let d = d.filter(|v| is_set(v));
        let l = l.filter(|v| is_set(v));
        match (d, l) {
            (None, None) => {}
            (Some(Value::Object(dm)), Some(Value::Object(lm))) => {
                self.walk_maps(Some(dm), Some(lm), unknown);
            }
            (Some(Value::Object(dm)), None) => self.walk_maps(Some(dm), None, unknown),
            (None, Some(Value::Object(lm))) => self.walk_maps(None, Some(lm), unknown),
            // a nested block of one instance on both sides: field by field
            (Some(Value::Array(da)), Some(Value::Array(la)))
                if da.len() == 1 && la.len() == 1 && da[0].is_object() && la[0].is_object() =>
            {
                // the block whole is kept as a leaf too, never reported: a set of one item
                // (a security group's one rule) that grows is compared whole, and the baseline
                // of the last check must know that path as well
                self.leaves.push(Leaf::new(
                    xxh3_64(self.path.as_str().as_bytes()),
                    value_hash(d),
                    value_hash(l),
                ));
                let len = self.path.len();
                self.path.push_item("0");
                self.segments.push("[0]".to_owned());
                self.walk(
                    da.first(),
                    la.first(),
                    unknown.get(0).unwrap_or(&Value::Null),
                );
                self.segments.pop();
                self.path.truncate(len);
            }
            // a list with values only known after an apply cannot be compared yet
            _ if marks_any(unknown) => {}
            _ => self.leaf(d, l),
        }
    }

    fn walk_maps(
        &mut self,
        d: Option<&Map<String, Value>>,
        l: Option<&Map<String, Value>>,
        unknown: &Value,
    ) {
        let mut keys: Vec<&String> = d
            .into_iter()
            .flat_map(|m| m.keys())
            .chain(l.into_iter().flat_map(|m| m.keys()))
            .collect();
        keys.sort();
        keys.dedup();
        for k in keys {
            let len = self.path.len();
            self.path.push(k);
            self.segments.push(k.clone());
            self.walk(
                d.and_then(|m| m.get(k)),
                l.and_then(|m| m.get(k)),
                unknown.get(k.as_str()).unwrap_or(&Value::Null),
            );
            self.segments.pop();
            self.path.truncate(len);
        }
    }

    fn leaf(&mut self, d: Option<&Value>, l: Option<&Value>) {
        let path = xxh3_64(self.path.as_str().as_bytes());
        let desired = value_hash(d);
        let live = value_hash(l);
        self.leaves.push(Leaf::new(path, desired, live));
        if desired != live {
            self.drifted.push((
                FieldDiff {
                    path: self.path.clone(),
                    desired: d.map(shown),
                    live: l.map(shown),
                },
                path,
                self.segments.clone(),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::SecretKey;
    use serde_json::json;

    fn paths(d: Value, l: Value) -> Vec<FieldPath> {
        compare_values(Some(&d), Some(&l), &Value::Null).drifted_paths()
    }

    #[test]
    fn null_and_empty_are_not_set_maps_recurse_lists_are_whole() {
        assert!(paths(
            json!({"tags": null, "ids": null, "a": 1}),
            json!({"tags": {}, "ids": [], "a": 1.0})
        )
        .is_empty());
        assert_eq!(
            paths(
                json!({"tags": {"team": "core", "env": "prod"}}),
                json!({"tags": {"team": "hand", "env": "prod", "owner": "ops"}})
            ),
            vec!["tags.owner", "tags.team"]
        );
        assert_eq!(
            paths(
                json!({"ingress": [{"from_port": 443, "cidr_blocks": ["10.0.0.0/16"]}]}),
                json!({"ingress": [{"from_port": 22, "cidr_blocks": ["0.0.0.0/0"]},
                                   {"from_port": 443, "cidr_blocks": ["10.0.0.0/16"]}]})
            ),
            vec!["ingress"]
        );
        // key order never matters, nor an unset entry inside a list item
        assert!(paths(
            json!({"x": [{"a": 1, "b": null}]}),
            json!({"x": [{"b": [], "a": 1}]})
        )
        .is_empty());
        assert_eq!(
            paths(json!({"tags": {"k.io/x": "1"}}), json!({})),
            vec!["tags[\"k.io/x\"]"]
        );
    }

    #[test]
    fn values_known_after_apply_are_not_compared() {
        let unknown = json!({"arn": true, "ingress": [{"cidr_blocks": [true]}]});
        let c = compare_values(
            Some(&json!({"name": "web", "ingress": [{"cidr_blocks": null}]})),
            Some(&json!({"name": "web", "arn": "arn:1", "ingress": [{"cidr_blocks": ["x"]}]})),
            &unknown,
        );
        assert!(c.in_sync(), "{:?}", c.drifted);
    }

    #[test]
    fn hashes_agree_when_in_sync_and_sensitive_values_never_show() {
        let n = Normalizer::new(SecretKey::new(b"k".to_vec()));
        let marks = json!({"password": true, "nested": [{"token": true}], "whole": true});
        let mut a = json!({"password": "CANARY", "nested": [{"token": "CANARY", "x": 1}],
            "whole": {"a": "CANARY"}, "port": 1});
        let mut b = a.clone();
        b["password"] = json!("CANARY-2");
        sanitize(&mut a, &marks, &n);
        sanitize(&mut b, &marks, &n);
        assert!(!a.to_string().contains("CANARY"), "{a}");
        assert!(!b.to_string().contains("CANARY"), "{b}");
        let c = compare_values(Some(&a), Some(&a), &Value::Null);
        assert!(c.in_sync());
        assert_eq!(c.desired_hash(), c.live_hash());
        let c = compare_values(Some(&a), Some(&b), &Value::Null);
        assert_eq!(c.drifted_paths(), vec!["password"]);
        assert_eq!(c.drifted[0].desired, Some(json!(REDACTED)));
        assert_eq!(c.drifted[0].live, Some(json!(REDACTED)));
        // a whole list shown holds no hash either
        let mut l = a.clone();
        l["nested"][0]["x"] = json!(2);
        l["nested"]
            .as_array_mut()
            .expect("a list")
            .push(json!({"x": 3}));
        let c = compare_values(Some(&a), Some(&l), &Value::Null);
        assert_eq!(c.drifted_paths(), vec!["nested"]);
        assert_eq!(
            c.drifted[0].live,
            Some(json!([{"token": REDACTED, "x": 2}, {"x": 3}]))
        );
    }

    #[test]
    fn a_block_of_one_instance_is_compared_field_by_field() {
        // point-in-time recovery turned off by hand: the period the code leaves unset moved
        // with it, on both the plan's sides
        let d =
            json!({"point_in_time_recovery": [{"enabled": true, "recovery_period_in_days": 0}]});
        let l =
            json!({"point_in_time_recovery": [{"enabled": false, "recovery_period_in_days": 0}]});
        let (c, segments) = compare_with_paths(Some(&d), Some(&l), &Value::Null);
        assert_eq!(c.drifted_paths(), vec!["point_in_time_recovery[0].enabled"]);
        assert_eq!(
            segments,
            vec![vec!["point_in_time_recovery", "[0]", "enabled"]]
        );
        assert_eq!(value_at(Some(&d), &segments[0]), Some(&json!(true)));
        // the block whole is a leaf too (not reported), so that a baseline knows its path
        let whole = xxh3_64(b"point_in_time_recovery");
        assert!(c.leaves.iter().any(|leaf| leaf.path == whole));
        assert!(c.drifted_hashes.iter().all(|h| *h != whole));
        // a list of several items, or of one against two, is compared whole
        let two = json!({"point_in_time_recovery": [{"enabled": true}, {"enabled": false}]});
        assert_eq!(paths(d.clone(), two), vec!["point_in_time_recovery"]);
    }

    #[test]
    fn marks_merge() {
        let mut m = Value::Null;
        merge_marks(&mut m, &json!({"a": true, "l": [false]}));
        merge_marks(&mut m, &json!({"b": {"c": true}, "l": [false, true]}));
        merge_marks(&mut m, &json!(false));
        assert_eq!(m, json!({"a": true, "b": {"c": true}, "l": [false, true]}));
        let mut whole = json!({"a": true});
        merge_marks(&mut whole, &json!(true));
        assert_eq!(whole, json!(true));
    }
}
