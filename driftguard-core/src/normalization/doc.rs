//! [`Doc`]: the compact tree normalized views are kept in.
//!
//! A `Doc` holds one JSON-like value in two allocations: every string in one text buffer and
//! every map entry or list item in one node array, with the items of a map or list stored next
//! to each other and map entries sorted by key. Building one costs no allocation per node,
//! reading a map key is a binary search, and dropping one frees two buffers, whatever serde_json
//! features the workspace turns on (`preserve_order` makes every `serde_json::Map` a hashed
//! `IndexMap`).
//!
//! Equality is by value (`1` equals `1.0`, key order never matters), and so is
//! [`Doc::hash`]: the same canonical encoding and hash as [`crate::hash::hash_value`] of
//! [`Doc::to_value`].

use std::cell::RefCell;
use std::fmt;

use serde_json::{Map, Number, Value};
use xxhash_rust::xxh3::xxh3_64;

use crate::hash::{
    encode_f64, encode_i64, encode_str, encode_u64, T_ABSENT, T_ARR, T_FALSE, T_NULL, T_OBJ, T_TRUE,
};

/// Byte order of keys, deciding on the first byte without a `memcmp` call when it can.
fn key_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.as_bytes().first(), b.as_bytes().first()) {
        (Some(x), Some(y)) if x != y => x.cmp(y),
        _ => a.cmp(b),
    }
}

/// A range of the text buffer or of the node array.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Span {
    start: u32,
    len: u32,
}

impl Span {
    const EMPTY: Span = Span { start: 0, len: 0 };

    fn range(self) -> std::ops::Range<usize> {
        self.start as usize..(self.start + self.len) as usize
    }
}

/// One value; containers point at their items in the node array.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) enum Val {
    #[default]
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(Span),
    Arr(Span),
    Map(Span),
}

/// A map entry (`key` set) or list item (`key` empty).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Entry {
    key: Span,
    val: Val,
}

/// A compact immutable JSON-like tree (see the module docs).
#[derive(Clone, Default)]
pub struct Doc {
    text: Box<str>,
    nodes: Box<[Entry]>,
    root: Val,
}

/// A value inside a [`Doc`] (or inside a document still being built).
#[derive(Clone, Copy)]
pub struct Node<'a> {
    text: &'a str,
    nodes: &'a [Entry],
    val: Val,
}

impl Doc {
    /// The `null` document.
    pub fn null() -> Doc {
        Doc::default()
    }

    /// Copies a value (map keys sorted, numbers kept as they are).
    pub fn from_value(v: &Value) -> Doc {
        with_builder(|b| {
            let root = b.value(v);
            b.finish(root)
        })
    }

    /// The root value.
    pub fn root(&self) -> Node<'_> {
        Node {
            text: &self.text,
            nodes: &self.nodes,
            val: self.root,
        }
    }

    /// Converts back to a `serde_json` value.
    pub fn to_value(&self) -> Value {
        self.root().to_value()
    }

    /// The value at a path of plain map keys.
    pub fn get(&self, path: &[&str]) -> Option<Node<'_>> {
        path.iter().try_fold(self.root(), |n, k| n.get(k))
    }

    /// xxh3 of the canonical encoding (equal to `hash_value(&self.to_value())`).
    pub fn hash(&self) -> u64 {
        let mut buf = Vec::with_capacity(256);
        self.root().encode(&mut buf);
        xxh3_64(&buf)
    }

    /// Whether the root is `null`.
    pub fn is_null(&self) -> bool {
        matches!(self.root, Val::Null)
    }
}

impl PartialEq for Doc {
    fn eq(&self, other: &Doc) -> bool {
        self.root() == other.root()
    }
}

impl fmt::Debug for Doc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.to_value(), f)
    }
}

impl fmt::Debug for Node<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.to_value(), f)
    }
}

impl<'a> Node<'a> {
    fn str_at(&self, s: Span) -> &'a str {
        &self.text[s.range()]
    }

    fn items_at(&self, r: Span) -> &'a [Entry] {
        &self.nodes[r.range()]
    }

    fn child(&self, val: Val) -> Node<'a> {
        Node { val, ..*self }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&'a str> {
        match self.val {
            Val::Str(s) => Some(self.str_at(s)),
            _ => None,
        }
    }

    /// Whether this is a map.
    pub fn is_map(&self) -> bool {
        matches!(self.val, Val::Map(_))
    }

    /// The entries of a map (sorted by key), empty for anything else.
    pub fn entries(&self) -> impl Iterator<Item = (&'a str, Node<'a>)> + 'a {
        let this = *self;
        let items: &'a [Entry] = match self.val {
            Val::Map(r) => self.items_at(r),
            _ => &[],
        };
        items
            .iter()
            .map(move |e| (this.str_at(e.key), this.child(e.val)))
    }

    /// The items of a list, empty for anything else.
    pub fn items(&self) -> impl Iterator<Item = Node<'a>> + 'a {
        let this = *self;
        let items: &'a [Entry] = match self.val {
            Val::Arr(r) => self.items_at(r),
            _ => &[],
        };
        items.iter().map(move |e| this.child(e.val))
    }

    /// Number of entries or items (0 for scalars).
    pub fn len(&self) -> usize {
        match self.val {
            Val::Map(r) | Val::Arr(r) => r.len as usize,
            _ => 0,
        }
    }

    /// Whether [`Node::len`] is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether this is an empty list or map, which stands for an absent field: the API server
    /// drops empty collections (a ClusterRole applied with `rules: []` comes back with
    /// `rules: null`), so an empty one in Git agrees with a null or absent field live. A
    /// non-empty value live still differs from an empty list in Git.
    pub fn is_empty_collection(&self) -> bool {
        matches!(self.val, Val::Map(r) | Val::Arr(r) if r.len == 0)
    }

    /// Whether this is `null`.
    pub fn is_null(&self) -> bool {
        matches!(self.val, Val::Null)
    }

    /// Whether this is the zero value of its scalar type (`0`, `false`, `""`): what the API
    /// server leaves out of a stored object for a field marked `omitempty` that is not a
    /// pointer (`minReadySeconds: 0`, a probe's `initialDelaySeconds: 0`, an env var's
    /// `value: ""`). A pointer field keeps its zero, so a zero in Git and an absent field live
    /// can only mean the server dropped it, or that the field is unset, which means the same.
    pub fn is_zero_scalar(&self) -> bool {
        match self.val {
            Val::Bool(b) => !b,
            Val::Int(i) => i == 0,
            Val::UInt(u) => u == 0,
            Val::Float(f) => f == 0.0,
            Val::Str(s) => s.len == 0,
            _ => false,
        }
    }

    /// A map's value for `key` (binary search).
    pub fn get(&self, key: &str) -> Option<Node<'a>> {
        let Val::Map(r) = self.val else {
            return None;
        };
        let items = self.items_at(r);
        items
            .binary_search_by(|e| key_cmp(self.str_at(e.key), key))
            .ok()
            .map(|i| self.child(items[i].val))
    }

    /// A map's value for `key`, looking from entry `*pos` on and leaving `*pos` after it:
    /// visiting keys in ascending order costs one pass over the map.
    pub(crate) fn seek(&self, key: &str, pos: &mut usize) -> Option<Node<'a>> {
        let Val::Map(r) = self.val else {
            return None;
        };
        let items = self.items_at(r);
        while let Some(e) = items.get(*pos) {
            match key_cmp(self.str_at(e.key), key) {
                std::cmp::Ordering::Less => *pos += 1,
                std::cmp::Ordering::Equal => {
                    *pos += 1;
                    return Some(self.child(e.val));
                }
                std::cmp::Ordering::Greater => return None,
            }
        }
        None
    }

    /// Converts to a `serde_json` value.
    pub fn to_value(&self) -> Value {
        match self.val {
            Val::Null => Value::Null,
            Val::Bool(b) => Value::Bool(b),
            Val::Int(i) => Value::Number(i.into()),
            Val::UInt(u) => Value::Number(u.into()),
            Val::Float(f) => Number::from_f64(f).map_or(Value::Null, Value::Number),
            Val::Str(s) => Value::String(self.str_at(s).to_owned()),
            Val::Arr(_) => Value::Array(self.items().map(|i| i.to_value()).collect()),
            Val::Map(_) => {
                let mut m = Map::new();
                for (k, v) in self.entries() {
                    m.insert(k.to_owned(), v.to_value());
                }
                Value::Object(m)
            }
        }
    }

    /// Appends the canonical encoding (see [`crate::hash::encode`]).
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        match self.val {
            Val::Null => out.push(T_NULL),
            Val::Bool(false) => out.push(T_FALSE),
            Val::Bool(true) => out.push(T_TRUE),
            Val::Int(i) => encode_i64(i, out),
            Val::UInt(u) => encode_u64(u, out),
            Val::Float(f) => encode_f64(f, out),
            Val::Str(s) => encode_str(self.str_at(s), out),
            Val::Arr(r) => {
                out.push(T_ARR);
                out.extend_from_slice(&(r.len as u64).to_le_bytes());
                for i in self.items() {
                    i.encode(out);
                }
            }
            Val::Map(r) => {
                out.push(T_OBJ);
                out.extend_from_slice(&(r.len as u64).to_le_bytes());
                for (k, v) in self.entries() {
                    encode_str(k, out);
                    v.encode(out);
                }
            }
        }
    }

    /// Encodes `live` restricted to the shape of `self`: the same bytes as `self.encode` when
    /// they agree on every field `self` sets.
    pub(crate) fn encode_projected(&self, live: Node<'_>, out: &mut Vec<u8>) {
        match (self.val, live.val) {
            (Val::Map(dr), Val::Map(_)) => {
                out.push(T_OBJ);
                out.extend_from_slice(&(dr.len as u64).to_le_bytes());
                for (k, dv) in self.entries() {
                    encode_str(k, out);
                    match live.get(k) {
                        Some(lv) => dv.encode_projected(lv, out),
                        // what the API server drops: empty collections, omitted zeros
                        None if dv.is_empty_collection() || dv.is_zero_scalar() => dv.encode(out),
                        None => out.push(T_ABSENT),
                    }
                }
            }
            (Val::Arr(da), Val::Arr(la)) if da.len == la.len => {
                out.push(T_ARR);
                out.extend_from_slice(&(da.len as u64).to_le_bytes());
                for (dv, lv) in self.items().zip(live.items()) {
                    dv.encode_projected(lv, out);
                }
            }
            _ => live.encode(out),
        }
    }

    /// Encodes `live` compared whole with `self`: like [`Node::encode_projected`] for what
    /// `self` sets, and every entry `live` adds beside it, except the API server's defaults
    /// (a port's `protocol: TCP`). An empty map in `self` so matches only an empty map.
    pub(crate) fn encode_closed(&self, live: Node<'_>, out: &mut Vec<u8>) {
        fn server_default(key: &str, v: Node<'_>) -> bool {
            key == "protocol" && v.as_str() == Some("TCP")
        }
        match (self.val, live.val) {
            (Val::Map(_), Val::Map(_)) => {
                let added: Vec<(&str, Node<'_>)> = live
                    .entries()
                    .filter(|(k, v)| self.get(k).is_none() && !server_default(k, *v))
                    .collect();
                let mut entries: Vec<(&str, Option<Node<'_>>, Option<Node<'_>>)> = self
                    .entries()
                    .map(|(k, dv)| (k, Some(dv), live.get(k)))
                    .chain(added.into_iter().map(|(k, lv)| (k, None, Some(lv))))
                    .collect();
                entries.sort_by(|a, b| key_cmp(a.0, b.0));
                out.push(T_OBJ);
                out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
                for (k, dv, lv) in entries {
                    encode_str(k, out);
                    match (dv, lv) {
                        (Some(dv), Some(lv)) => dv.encode_closed(lv, out),
                        (Some(dv), None) if dv.is_empty_collection() || dv.is_zero_scalar() => {
                            dv.encode(out)
                        }
                        (Some(_), None) => out.push(T_ABSENT),
                        (None, Some(lv)) => lv.encode(out),
                        (None, None) => out.push(T_ABSENT),
                    }
                }
            }
            (Val::Arr(da), Val::Arr(la)) if da.len == la.len => {
                out.push(T_ARR);
                out.extend_from_slice(&(da.len as u64).to_le_bytes());
                for (dv, lv) in self.items().zip(live.items()) {
                    dv.encode_closed(lv, out);
                }
            }
            _ => live.encode(out),
        }
    }

    /// `live` restricted to the shape of `self`, for display.
    pub fn project(&self, live: Node<'_>) -> Value {
        match (self.val, live.val) {
            (Val::Map(_), Val::Map(_)) => Value::Object(
                self.entries()
                    .filter_map(|(k, dv)| live.get(k).map(|lv| (k.to_owned(), dv.project(lv))))
                    .collect(),
            ),
            (Val::Arr(da), Val::Arr(la)) if da.len == la.len => Value::Array(
                self.items()
                    .zip(live.items())
                    .map(|(d, l)| d.project(l))
                    .collect(),
            ),
            _ => live.to_value(),
        }
    }

    fn number(&self) -> Option<Num> {
        match self.val {
            Val::Int(i) => Some(Num::Int(i)),
            Val::UInt(u) => Some(Num::UInt(u)),
            Val::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(Num::Int(f as i64)),
            Val::Float(f) => Some(Num::Float(f)),
            _ => None,
        }
    }
}

#[derive(PartialEq)]
enum Num {
    Int(i64),
    UInt(u64),
    Float(f64),
}

impl PartialEq for Node<'_> {
    fn eq(&self, other: &Node<'_>) -> bool {
        match (self.val, other.val) {
            (Val::Null, Val::Null) => true,
            (Val::Bool(a), Val::Bool(b)) => a == b,
            (Val::Str(_), Val::Str(_)) => self.as_str() == other.as_str(),
            (Val::Arr(a), Val::Arr(b)) => {
                a.len == b.len && self.items().zip(other.items()).all(|(x, y)| x == y)
            }
            (Val::Map(a), Val::Map(b)) => {
                a.len == b.len
                    && self
                        .entries()
                        .zip(other.entries())
                        .all(|((ka, va), (kb, vb))| ka == kb && va == vb)
            }
            _ => match (self.number(), other.number()) {
                (Some(a), Some(b)) => a == b,
                _ => false,
            },
        }
    }
}

/// Builds docs without an allocation per node: items are gathered on a stack, and a finished
/// map or list moves its items, sorted, into the node array.
#[derive(Default)]
pub(crate) struct Builder {
    text: String,
    nodes: Vec<Entry>,
    stack: Vec<Entry>,
    /// Spans of keyed-list item keys (see [`crate::normalize`]).
    pub(crate) keys: Vec<Span>,
}

thread_local! {
    static BUILDER: RefCell<Builder> = RefCell::new(Builder::default());
}

/// Runs `f` with this thread's builder (a fresh one when it is in use).
pub(crate) fn with_builder<R>(f: impl FnOnce(&mut Builder) -> R) -> R {
    let mut f = Some(f);
    let reused = BUILDER.with(|cell| {
        cell.try_borrow_mut().ok().map(|mut b| {
            b.clear();
            let f = f.take().expect("called once");
            let r = f(&mut b);
            b.clear();
            r
        })
    });
    match reused {
        Some(r) => r,
        None => {
            let f = f.take().expect("not called yet");
            f(&mut Builder::default())
        }
    }
}

impl Builder {
    fn clear(&mut self) {
        self.text.clear();
        self.nodes.clear();
        self.stack.clear();
        self.keys.clear();
    }

    /// Appends a string to the text buffer.
    pub(crate) fn str(&mut self, s: &str) -> Span {
        let start = self.text.len();
        self.text.push_str(s);
        self.span_from(start)
    }

    /// The text written since `start`.
    pub(crate) fn span_from(&self, start: usize) -> Span {
        Span {
            start: u32::try_from(start).expect("documents are smaller than 4 GiB"),
            len: u32::try_from(self.text.len() - start).expect("documents are smaller than 4 GiB"),
        }
    }

    /// The text buffer, to write into directly.
    pub(crate) fn text(&mut self) -> &mut String {
        &mut self.text
    }

    /// The text of a span written earlier.
    pub(crate) fn text_of(&self, s: Span) -> &str {
        &self.text[s.range()]
    }

    /// Where the items of a new map or list start.
    pub(crate) fn mark(&self) -> usize {
        self.stack.len()
    }

    /// Adds an item to the open map (with a key) or list (with [`Builder::item`]).
    pub(crate) fn push(&mut self, key: Span, val: Val) {
        self.stack.push(Entry { key, val });
    }

    /// Adds a list item.
    pub(crate) fn item(&mut self, val: Val) {
        self.push(Span::EMPTY, val);
    }

    /// Closes a map opened at `mark`: sorts its entries by key.
    pub(crate) fn end_map(&mut self, mark: usize) -> Val {
        let text = &self.text;
        let items = &mut self.stack[mark..];
        let sorted = items
            .windows(2)
            .all(|w| key_cmp(&text[w[0].key.range()], &text[w[1].key.range()]).is_le());
        if !sorted {
            items.sort_unstable_by(|a, b| key_cmp(&text[a.key.range()], &text[b.key.range()]));
        }
        Val::Map(self.close(mark))
    }

    /// Closes a list opened at `mark`.
    pub(crate) fn end_list(&mut self, mark: usize) -> Val {
        Val::Arr(self.close(mark))
    }

    fn close(&mut self, mark: usize) -> Span {
        let start = self.nodes.len();
        self.nodes.extend(self.stack.drain(mark..));
        Span {
            start: u32::try_from(start).expect("documents have fewer than 4G nodes"),
            len: u32::try_from(self.nodes.len() - start)
                .expect("documents have fewer than 4G nodes"),
        }
    }

    /// A number as it is.
    pub(crate) fn number(n: &Number) -> Val {
        if let Some(i) = n.as_i64() {
            Val::Int(i)
        } else if let Some(u) = n.as_u64() {
            Val::UInt(u)
        } else {
            Val::Float(n.as_f64().unwrap_or(f64::NAN))
        }
    }

    /// Copies a value as it is (keys sorted).
    pub(crate) fn value(&mut self, v: &Value) -> Val {
        match v {
            Value::Null => Val::Null,
            Value::Bool(b) => Val::Bool(*b),
            Value::Number(n) => Builder::number(n),
            Value::String(s) => Val::Str(self.str(s)),
            Value::Array(items) => {
                let mark = self.mark();
                for i in items {
                    let v = self.value(i);
                    self.item(v);
                }
                self.end_list(mark)
            }
            Value::Object(map) => {
                let mark = self.mark();
                for (k, v) in map {
                    let v = self.value(v);
                    let k = self.str(k);
                    self.push(k, v);
                }
                self.end_map(mark)
            }
        }
    }

    /// A view of a value built so far (before [`Builder::finish`]).
    pub(crate) fn view(&self, root: Val) -> Node<'_> {
        Node {
            text: &self.text,
            nodes: &self.nodes,
            val: root,
        }
    }

    /// The finished document (copied out in two exact-size allocations; the builder is
    /// cleared).
    pub(crate) fn finish(&mut self, root: Val) -> Doc {
        debug_assert!(self.stack.is_empty(), "every map and list is closed");
        let doc = Doc {
            text: self.text.as_str().into(),
            nodes: self.nodes.as_slice().into(),
            root,
        };
        self.clear();
        doc
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::hash_value;
    use serde_json::json;

    #[test]
    fn round_trips_and_hashes_like_values() {
        let v = json!({"b": [1, 2.5, "x", null, true, {"z": 1, "a": {}}], "a": {"c": -3},
            "big": u64::MAX});
        let d = Doc::from_value(&v);
        assert_eq!(d.to_value(), v);
        assert_eq!(d.hash(), hash_value(&v));
        assert_eq!(d.get(&["a", "c"]).map(|n| n.to_value()), Some(json!(-3)));
        assert_eq!(
            d.root().entries().map(|(k, _)| k).collect::<Vec<_>>(),
            ["a", "b", "big"]
        );
    }

    #[test]
    fn equality_is_by_value() {
        let a = Doc::from_value(&json!({"x": 1, "y": [1.0, "s"]}));
        let b = Doc::from_value(&json!({"y": [1, "s"], "x": 1.0}));
        assert_eq!(a, b);
        assert_ne!(a, Doc::from_value(&json!({"x": 1, "y": [1, "t"]})));
        assert_ne!(a, Doc::null());
    }

    #[test]
    fn nested_builders_do_not_clash() {
        let d = with_builder(|b| {
            let inner = Doc::from_value(&json!({"k": "v"}));
            let root = b.value(&json!(["outer"]));
            (b.finish(root), inner)
        });
        assert_eq!(d.0.to_value(), json!(["outer"]));
        assert_eq!(d.1.to_value(), json!({"k": "v"}));
    }
}
