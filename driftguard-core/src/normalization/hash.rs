//! The field hasher: xxh3 over a canonical encoding.
//!
//! Map keys are visited in sorted order (`serde_json` maps are ordered by key), numbers are
//! encoded by value (`1` and `1.0` alike), so equal values hash equal whatever their key order
//! or formatting.

use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use xxhash_rust::xxh3::xxh3_64;

pub(crate) const T_NULL: u8 = 0;
pub(crate) const T_FALSE: u8 = 1;
pub(crate) const T_TRUE: u8 = 2;
pub(crate) const T_INT: u8 = 3;
pub(crate) const T_UINT: u8 = 4;
pub(crate) const T_FLOAT: u8 = 5;
pub(crate) const T_STR: u8 = 6;
pub(crate) const T_ARR: u8 = 7;
pub(crate) const T_OBJ: u8 = 8;
pub(crate) const T_ABSENT: u8 = 9;

/// Appends the canonical encoding of `v` to `out`.
pub fn encode(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.push(T_NULL),
        Value::Bool(false) => out.push(T_FALSE),
        Value::Bool(true) => out.push(T_TRUE),
        Value::Number(n) => encode_number(n, out),
        Value::String(s) => encode_str(s, out),
        Value::Array(items) => {
            out.push(T_ARR);
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for i in items {
                encode(i, out);
            }
        }
        Value::Object(map) => {
            out.push(T_OBJ);
            out.extend_from_slice(&(map.len() as u64).to_le_bytes());
            for_each_sorted(map, |k, v| {
                encode_str(k, out);
                encode(v, out);
            });
        }
    }
}

/// Visits a map's entries in key order, whatever order the map keeps (serde_json keeps
/// insertion order when another crate turns on its `preserve_order` feature).
pub(crate) fn for_each_sorted<'a>(
    map: &'a serde_json::Map<String, Value>,
    mut f: impl FnMut(&'a String, &'a Value),
) {
    let sorted = map.keys().zip(map.keys().skip(1)).all(|(a, b)| a <= b);
    if sorted {
        for (k, v) in map {
            f(k, v);
        }
    } else {
        let mut entries: Vec<(&String, &Value)> = map.iter().collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        for (k, v) in entries {
            f(k, v);
        }
    }
}

pub(crate) fn encode_str(s: &str, out: &mut Vec<u8>) {
    out.push(T_STR);
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

pub(crate) fn encode_i64(i: i64, out: &mut Vec<u8>) {
    out.push(T_INT);
    out.extend_from_slice(&i.to_le_bytes());
}

pub(crate) fn encode_u64(u: u64, out: &mut Vec<u8>) {
    out.push(T_UINT);
    out.extend_from_slice(&u.to_le_bytes());
}

/// A float with no fraction is encoded as the integer it equals (`1.0` hashes like `1`).
pub(crate) fn encode_f64(f: f64, out: &mut Vec<u8>) {
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        encode_i64(f as i64, out);
    } else {
        out.push(T_FLOAT);
        out.extend_from_slice(&f.to_bits().to_le_bytes());
    }
}

fn encode_number(n: &serde_json::Number, out: &mut Vec<u8>) {
    if let Some(i) = n.as_i64() {
        encode_i64(i, out);
    } else if let Some(u) = n.as_u64() {
        encode_u64(u, out);
    } else {
        encode_f64(n.as_f64().unwrap_or(f64::NAN), out);
    }
}

/// xxh3 of the canonical encoding of `v`.
pub fn hash_value(v: &Value) -> u64 {
    let mut buf = Vec::with_capacity(256);
    encode(v, &mut buf);
    xxh3_64(&buf)
}

/// One hash per compared field path: `(hash of the path, hash of the value)`, sorted by path
/// hash. Lets the engine tell which side changed a field without keeping old values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldHashes(pub Vec<(u64, u64)>);

impl FieldHashes {
    /// Builds from unsorted pairs.
    pub fn from_pairs(mut pairs: Vec<(u64, u64)>) -> Self {
        pairs.sort_unstable();
        pairs.dedup_by_key(|p| p.0);
        FieldHashes(pairs)
    }

    /// The value hash of a path, if the path existed.
    pub fn get(&self, path_hash: u64) -> Option<u64> {
        self.0
            .binary_search_by_key(&path_hash, |p| p.0)
            .ok()
            .map(|i| self.0[i].1)
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// One hash over all fields.
    pub fn combined(&self) -> u64 {
        let mut buf = Vec::with_capacity(self.0.len() * 16);
        for (p, v) in &self.0 {
            buf.extend_from_slice(&p.to_le_bytes());
            buf.extend_from_slice(&v.to_le_bytes());
        }
        xxh3_64(&buf)
    }

    /// Compact text form (base64 of the little-endian pairs), used by stores.
    pub fn to_base64(&self) -> String {
        let mut buf = Vec::with_capacity(self.0.len() * 16);
        for (p, v) in &self.0 {
            buf.extend_from_slice(&p.to_le_bytes());
            buf.extend_from_slice(&v.to_le_bytes());
        }
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(buf)
    }

    /// Parses [`FieldHashes::to_base64`].
    pub fn from_base64(s: &str) -> Option<Self> {
        let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(s)
            .ok()?;
        if bytes.len() % 16 != 0 {
            return None;
        }
        let pairs = bytes
            .chunks_exact(16)
            .map(|c| {
                let mut a = [0u8; 8];
                let mut b = [0u8; 8];
                a.copy_from_slice(&c[..8]);
                b.copy_from_slice(&c[8..]);
                (u64::from_le_bytes(a), u64::from_le_bytes(b))
            })
            .collect();
        Some(FieldHashes(pairs))
    }
}

impl Serialize for FieldHashes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_base64())
    }
}

impl<'de> Deserialize<'de> for FieldHashes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        FieldHashes::from_base64(&s).ok_or_else(|| serde::de::Error::custom("invalid field hashes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn insertion_order_does_not_matter() {
        let mut a = serde_json::Map::new();
        a.insert("b".into(), json!(1));
        a.insert("a".into(), json!(2));
        let mut b = serde_json::Map::new();
        b.insert("a".into(), json!(2));
        b.insert("b".into(), json!(1));
        assert_eq!(hash_value(&Value::Object(a)), hash_value(&Value::Object(b)));
    }

    #[test]
    fn numbers_hash_by_value() {
        assert_eq!(hash_value(&json!(1)), hash_value(&json!(1.0)));
        assert_ne!(hash_value(&json!(1)), hash_value(&json!("1")));
        assert_ne!(hash_value(&json!([1, 2])), hash_value(&json!([2, 1])));
    }

    #[test]
    fn field_hashes_round_trip() {
        let f = FieldHashes::from_pairs(vec![(3, 4), (1, 2)]);
        assert_eq!(f.get(1), Some(2));
        assert_eq!(f.get(5), None);
        assert_eq!(FieldHashes::from_base64(&f.to_base64()), Some(f.clone()));
        let json = serde_json::to_string(&f).expect("serializes");
        assert_eq!(
            serde_json::from_str::<FieldHashes>(&json).expect("parses"),
            f
        );
    }
}
