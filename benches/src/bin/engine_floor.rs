//! The least any engine must do for a pair of objects in sync, read from parsed `serde_json`
//! values: identify both sides (a [`ResourceId`] each), index the desired side by identity,
//! find the live side's partner, hash every leaf Git sets (path and value), and check that the
//! live side holds the same value there. No normalization, no closed maps, no diff, no
//! observation: a floor under the real engine, not an engine.
//!
//! Prints that floor in pairs per second, and its parts, for 10,000 and 100,000 pairs of the
//! benchmark corpus ([`driftguard_benches::engine_inputs`]); the same work on the same objects
//! copied into compact documents ([`Doc`]) shows what a compact parsed form would change.

use std::time::Instant;

use driftguard_core::doc::{Doc, Node};
use driftguard_core::prelude::*;
use serde_json::Value;
use xxhash_rust::xxh3::xxh3_64;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Leaves = Vec<(u64, u64)>;

/// A map's value for `key`, as the engine reads it: small maps are scanned (no key hashing).
fn field<'a>(v: Option<&'a Value>, key: &str) -> Option<&'a Value> {
    let map = v?.as_object()?;
    if map.len() <= 8 {
        map.iter().find(|(k, _)| k.as_str() == key).map(|(_, v)| v)
    } else {
        map.get(key)
    }
}

fn id_of(
    env: &str,
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
) -> ResourceId {
    ResourceId {
        environment: env.to_owned(),
        group: GroupKind::group_of(api_version).to_owned(),
        kind: kind.to_owned(),
        namespace: namespace.map(str::to_owned),
        name: name.to_owned(),
    }
}

fn value_id(v: &Value) -> ResourceId {
    fn s(v: Option<&Value>) -> &str {
        v.and_then(Value::as_str).unwrap_or_default()
    }
    let md = field(Some(v), "metadata");
    id_of(
        "bench",
        s(field(Some(v), "apiVersion")),
        s(field(Some(v), "kind")),
        field(md, "namespace").and_then(Value::as_str),
        s(field(md, "name")),
    )
}

fn doc_id(d: &Doc) -> ResourceId {
    let r = d.root();
    let s = |n: Option<Node<'_>>| n.and_then(|n| n.as_str()).unwrap_or_default().to_owned();
    let md = r.get("metadata");
    let (av, kind, name) = (
        s(r.get("apiVersion")),
        s(r.get("kind")),
        s(md.and_then(|m| m.get("name"))),
    );
    let ns = md
        .and_then(|m| m.get("namespace"))
        .and_then(|n| n.as_str())
        .map(str::to_owned);
    id_of("bench", &av, &kind, ns.as_deref(), &name)
}

fn key_hash(path: u64, key: &str) -> u64 {
    path.rotate_left(5) ^ xxh3_64(key.as_bytes())
}

fn skipped(path: u64, key: &str) -> bool {
    path == 0 && matches!(key, "status" | "apiVersion" | "kind")
}

/// Hashes every leaf of `d` and checks that `l` holds the same value there.
fn walk_value(d: &Value, l: Option<&Value>, path: u64, leaves: &mut Leaves) -> bool {
    match d {
        Value::Object(m) => {
            let mut ok = l.is_some_and(Value::is_object);
            for (k, v) in m.iter().filter(|(k, _)| !skipped(path, k)) {
                ok &= walk_value(v, field(l, k), key_hash(path, k), leaves);
            }
            ok
        }
        Value::Array(items) => {
            let la = l.and_then(Value::as_array);
            let mut ok = la.is_some_and(|a| a.len() == items.len());
            for (i, v) in items.iter().enumerate() {
                ok &= walk_value(
                    v,
                    la.and_then(|a| a.get(i)),
                    path.wrapping_add(i as u64 + 1),
                    leaves,
                );
            }
            ok
        }
        leaf => {
            leaves.push((path, leaf.as_str().map_or(1, |s| xxh3_64(s.as_bytes()))));
            l == Some(leaf)
        }
    }
}

/// [`walk_value`] on documents.
fn walk_doc(d: Node<'_>, l: Option<Node<'_>>, path: u64, leaves: &mut Leaves) -> bool {
    if d.is_map() {
        let mut ok = l.is_some_and(|l| l.is_map());
        for (k, v) in d.entries().filter(|(k, _)| !skipped(path, k)) {
            ok &= walk_doc(v, l.and_then(|l| l.get(k)), key_hash(path, k), leaves);
        }
        ok
    } else if d.items().next().is_some() {
        let mut li = l.into_iter().flat_map(|l| l.items());
        let mut ok = l.is_some_and(|l| l.len() == d.len());
        for (i, v) in d.items().enumerate() {
            ok &= walk_doc(v, li.next(), path.wrapping_add(i as u64 + 1), leaves);
        }
        ok
    } else {
        leaves.push((path, d.as_str().map_or(1, |s| xxh3_64(s.as_bytes()))));
        l.is_some_and(|l| l == d)
    }
}

/// Seconds per pair: (identify and index only, the whole floor).
fn floor<T>(
    desired: &[T],
    live: &[T],
    id: impl Fn(&T) -> ResourceId,
    walk: impl Fn(&T, &T, &mut Leaves) -> bool,
    rounds: usize,
) -> (f64, f64) {
    let n = desired.len() as f64 * rounds as f64;
    let (mut ids, mut whole) = (f64::MAX, f64::MAX);
    for _ in 0..rounds {
        let t = Instant::now();
        let mut map: foldhash::HashMap<ResourceId, Leaves> = Default::default();
        map.reserve(desired.len());
        for d in desired {
            map.insert(id(d), Leaves::new());
        }
        let mut found = 0usize;
        for l in live {
            found += usize::from(map.contains_key(&id(l)));
        }
        ids = ids.min(t.elapsed().as_secs_f64());
        std::hint::black_box((found, map));

        let t = Instant::now();
        let mut map: foldhash::HashMap<ResourceId, Leaves> = Default::default();
        map.reserve(desired.len());
        for d in desired {
            map.insert(id(d), Leaves::new());
        }
        let mut in_sync = 0usize;
        let mut leaves = Leaves::new();
        for (d, l) in desired.iter().zip(live) {
            leaves.clear();
            in_sync += usize::from(walk(d, l, &mut leaves));
            if let Some(slot) = map.get_mut(&id(l)) {
                *slot = leaves.clone();
            }
        }
        whole = whole.min(t.elapsed().as_secs_f64());
        std::hint::black_box((in_sync, map));
    }
    (ids / n * rounds as f64, whole / n * rounds as f64)
}

/// One line of figures: `ids` and `whole` are seconds per pair.
fn report(n: usize, input: &str, ids: f64, whole: f64) {
    println!(
        "{n:>7} pairs, {input}: {:>7.0} pairs/s (best round; identify and index {:.2} µs, all {:.2} µs per pair)",
        1.0 / whole,
        ids * 1e6,
        whole * 1e6
    );
}

fn main() {
    for n in [10_000usize, 100_000] {
        let rounds = if n <= 10_000 { 10 } else { 3 };
        let (desired, live) = driftguard_benches::engine_inputs(n);
        let dv: Vec<&Value> = desired.objects.iter().map(|m| m.object.value()).collect();
        let live_objects = live.objects.to_vec();
        let lv: Vec<&Value> = live_objects.iter().map(|l| l.object.value()).collect();
        let (ids, whole) = floor(
            &dv,
            &lv,
            |v| value_id(v),
            |d, l, out| walk_value(d, Some(l), 0, out),
            rounds,
        );
        report(n, "serde_json values", ids, whole);
        let dd: Vec<Doc> = dv.iter().map(|v| Doc::from_value(v)).collect();
        let ld: Vec<Doc> = lv.iter().map(|v| Doc::from_value(v)).collect();
        drop((dv, lv));
        drop((desired, live));
        let (ids, whole) = floor(
            &dd,
            &ld,
            doc_id,
            |d, l, out| walk_doc(d.root(), Some(l.root()), 0, out),
            rounds,
        );
        report(n, "compact documents", ids, whole);
    }
}
