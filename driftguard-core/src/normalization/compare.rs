//! Comparison of a normalized desired view with a normalized live view.
//!
//! Only the fields Git sets are compared (the "desired subset"), so server defaults never count.
//! Closed maps are compared in both directions so that additions by hand are caught:
//! `metadata.labels`, `metadata.annotations`, ConfigMap `data`/`binaryData`, Secret `data`, a
//! container's `env` and `securityContext`; and a pod spec's `hostNetwork`, `hostPID` and
//! `hostIPC` are compared even when Git does not set them (security posture). Lists without merge keys are compared whole: same length and order,
//! with the desired subset applied inside their items.
//!
//! An empty list or map in Git (`[]`, `{}`) agrees with a null or absent field live, at any
//! depth, because the API server drops empty collections (a ClusterRole applied with
//! `rules: []` comes back with `rules: null`); a non-empty list live still differs from `[]` in
//! Git ([`Node::is_empty_collection`](crate::doc::Node::is_empty_collection)). A marker whose
//! presence is its meaning (a volume's `emptyDir: {}`, which the API server keeps) must still
//! be there live.
//!
//! Every compared leaf gets a path hash and a value hash on each side ([`FieldHashes`]); the
//! object's hash is the hash of its leaves.

use std::cell::RefCell;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use xxhash_rust::xxh3::xxh3_64;

use crate::doc::{Doc, Node};
use crate::hash::FieldHashes;
use crate::path::{self, FieldPath};

/// Whether the field at `path` is an empty map whose presence is its meaning, so that it must
/// be present live even though the API server drops other empty collections.
fn presence_marker(path: &str) -> bool {
    path.rsplit('.').next() == Some("emptyDir")
}

/// Fields whose items mean something when empty, or whose every entry narrows or widens what
/// they allow: compared whole when Git sets them, with what the cluster added (other than the
/// API server's defaults, [`crate::doc::Node::encode_closed`]). A NetworkPolicy's `ingress:
/// [{}]` allows everything, so a `from` added live narrows it; `podSelector: {}` selects every
/// pod, so labels added live change which; an RBAC rule given `resourceNames` live no longer
/// grants what Git says. The desired subset would find them all agreeing.
fn closed_fields(group: &str, kind: &str) -> &'static [&'static str] {
    match (group, kind) {
        ("networking.k8s.io", "NetworkPolicy") => {
            &["spec.egress", "spec.ingress", "spec.podSelector"]
        }
        ("rbac.authorization.k8s.io", "Role" | "ClusterRole") => &["rules"],
        _ => &[],
    }
}

/// Longest string shown in a field diff before it is shortened.
const MAX_SHOWN: usize = 2048;

/// What is shown in place of a Secret value.
pub const REDACTED: &str = "(secret value)";

/// One drifted field: the Git value and the live value (`None` = absent).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FieldDiff {
    /// The field path (serialized as its printed form).
    pub path: FieldPath,
    /// Value in Git.
    pub desired: Option<Value>,
    /// Value in the cluster.
    pub live: Option<Value>,
}

/// One compared leaf: 24 bytes, where `Option<u64>` sides took 40 (a comparison is kept for
/// every watched object). An absent side is stored as 0; a value whose hash is 0 is stored as
/// 1, so a value hashing to 0 and one hashing to 1 count as equal (odds of 2^-63 per pair).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leaf {
    /// Hash of the path.
    pub path: u64,
    desired: u64,
    live: u64,
}

const _: () = assert!(std::mem::size_of::<Leaf>() == 24);

/// 0 for absent; a present hash is never 0.
fn packed(h: Option<u64>) -> u64 {
    match h {
        None => 0,
        Some(0) => 1,
        Some(h) => h,
    }
}

fn unpacked(h: u64) -> Option<u64> {
    (h != 0).then_some(h)
}

impl Leaf {
    /// A leaf of the path hash `path`, with the hashes of its desired and live values (`None`:
    /// absent).
    pub fn new(path: u64, desired: Option<u64>, live: Option<u64>) -> Self {
        Leaf {
            path,
            desired: packed(desired),
            live: packed(live),
        }
    }

    /// Hash of the desired value (`None` = absent).
    pub fn desired(&self) -> Option<u64> {
        unpacked(self.desired)
    }

    /// Hash of the live value, projected on the desired shape (`None` = absent).
    pub fn live(&self) -> Option<u64> {
        unpacked(self.live)
    }

    /// Counts the live value as the desired one (a drift left out).
    fn agree(&mut self) {
        self.live = self.desired;
    }
}

/// The outcome of comparing one object.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    /// Every compared leaf.
    pub leaves: Vec<Leaf>,
    /// The leaves that differ, with values for display.
    pub drifted: Vec<FieldDiff>,
    /// The path hashes of `drifted`, in the same order.
    pub drifted_hashes: Vec<u64>,
}

impl Comparison {
    /// Whether both sides agree.
    pub fn in_sync(&self) -> bool {
        self.drifted.is_empty()
    }

    /// Field hashes of the desired side.
    pub fn desired_fields(&self) -> FieldHashes {
        FieldHashes::from_pairs(
            self.leaves
                .iter()
                .filter_map(|l| l.desired().map(|h| (l.path, h)))
                .collect(),
        )
    }

    /// Field hashes of the live side (projected on the desired shape).
    pub fn live_fields(&self) -> FieldHashes {
        FieldHashes::from_pairs(
            self.leaves
                .iter()
                .filter_map(|l| l.live().map(|h| (l.path, h)))
                .collect(),
        )
    }

    /// Hash of the desired side.
    pub fn desired_hash(&self) -> u64 {
        combine(self.leaves.iter().map(|l| (l.path, l.desired())))
    }

    /// Hash of the live side.
    pub fn live_hash(&self) -> u64 {
        combine(self.leaves.iter().map(|l| (l.path, l.live())))
    }

    /// The drifted paths.
    pub fn drifted_paths(&self) -> Vec<FieldPath> {
        self.drifted.iter().map(|d| d.path.clone()).collect()
    }

    /// Adds fields found drifted outside the comparison (a field Git does not set, written by
    /// hand: [`crate::engine`]): each is a leaf with no desired value, and the list stays
    /// sorted by path.
    pub fn add_drifted(&mut self, fields: Vec<FieldDiff>) {
        if fields.is_empty() {
            return;
        }
        let mut enc = Vec::new();
        for f in fields {
            let path = xxh3_64(f.path.as_str().as_bytes());
            enc.clear();
            if let Some(v) = &f.live {
                Doc::from_value(v).root().encode(&mut enc);
            }
            self.leaves.push(Leaf::new(
                path,
                None,
                f.live.as_ref().map(|_| xxh3_64(&enc)),
            ));
            self.drifted.push(f);
            self.drifted_hashes.push(path);
        }
        let mut pairs: Vec<(FieldDiff, u64)> = self
            .drifted
            .drain(..)
            .zip(self.drifted_hashes.drain(..))
            .collect();
        pairs.sort_by(|a, b| a.0.path.cmp(&b.0.path));
        (self.drifted, self.drifted_hashes) = pairs.into_iter().unzip();
    }

    /// Drops drifted fields for which `ignore` says yes (ignored field managers, rules): they
    /// count as agreeing.
    pub fn retain_drift(&mut self, mut keep: impl FnMut(&FieldDiff) -> bool) {
        let mut i = 0;
        while i < self.drifted.len() {
            if keep(&self.drifted[i]) {
                i += 1;
                continue;
            }
            let ph = self.drifted_hashes.remove(i);
            self.drifted.remove(i);
            if let Some(leaf) = self.leaves.iter_mut().find(|l| l.path == ph) {
                leaf.agree();
            }
        }
    }
}

fn combine(items: impl Iterator<Item = (u64, Option<u64>)>) -> u64 {
    let mut buf = Vec::with_capacity(512);
    for (p, v) in items {
        if let Some(v) = v {
            buf.extend_from_slice(&p.to_le_bytes());
            buf.extend_from_slice(&v.to_le_bytes());
        }
    }
    xxh3_64(&buf)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Root,
    Metadata,
    Closed,
    ContainerList,
    Container,
    Other,
}

/// Compares normalized content given as values (see [`compare_docs`]).
pub fn compare(group: &str, kind: &str, desired: &Value, live: &Value) -> Comparison {
    compare_docs(
        group,
        kind,
        &Doc::from_value(desired),
        &Doc::from_value(live),
    )
}

/// Compares normalized content. `kind` and `group` select the closed maps of ConfigMaps and
/// Secrets.
pub fn compare_docs(group: &str, kind: &str, desired: &Doc, live: &Doc) -> Comparison {
    compare_nodes(group, kind, desired.root(), live.root())
}

/// [`compare_docs`] on values inside documents.
pub(crate) fn compare_nodes(
    group: &str,
    kind: &str,
    desired: Node<'_>,
    live: Node<'_>,
) -> Comparison {
    thread_local! {
        static SCRATCH: RefCell<Walker> = RefCell::new(Walker::default());
    }
    let run = |w: &mut Walker| {
        w.configmap = group.is_empty() && kind == "ConfigMap";
        w.secret = crate::secret::is_secret(group, kind);
        w.closed_fields = closed_fields(group, kind);
        w.buf.clear();
        w.leaves.clear();
        w.walk(Some(desired), Some(live), Kind::Root);
        // the scratch buffers are reused; the result gets exact-size copies
        let mut out = Comparison {
            leaves: w.leaves.as_slice().to_vec(),
            drifted: std::mem::take(&mut w.drifted),
            drifted_hashes: std::mem::take(&mut w.drifted_hashes),
        };
        if out.drifted.len() > 1 {
            let mut pairs: Vec<(FieldDiff, u64)> = out
                .drifted
                .drain(..)
                .zip(out.drifted_hashes.drain(..))
                .collect();
            pairs.sort_by(|a, b| a.0.path.cmp(&b.0.path));
            (out.drifted, out.drifted_hashes) = pairs.into_iter().unzip();
        }
        out
    };
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut w) => run(&mut w),
        Err(_) => run(&mut Walker::default()),
    })
}

#[derive(Default)]
struct Walker {
    configmap: bool,
    secret: bool,
    /// Fields of this kind compared whole ([`closed_fields`]).
    closed_fields: &'static [&'static str],
    buf: FieldPath,
    enc: Vec<u8>,
    leaves: Vec<Leaf>,
    drifted: Vec<FieldDiff>,
    drifted_hashes: Vec<u64>,
}

impl Walker {
    /// Whether the current leaf is an entry of a map whose entries are data: labels,
    /// annotations, a ConfigMap's or Secret's data.
    fn in_data_map(&self) -> bool {
        let under = |p: &str| {
            self.buf
                .as_str()
                .strip_prefix(p)
                .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
        };
        under("metadata.labels")
            || under("metadata.annotations")
            || ((self.configmap || self.secret) && (under("data") || under("binaryData")))
    }

    fn closed_children(&self, node: Kind) -> &'static [&'static str] {
        match node {
            Kind::Root if self.configmap => &["metadata", "data", "binaryData"],
            Kind::Root if self.secret => &["metadata", "data"],
            Kind::Root => &["metadata"],
            Kind::Metadata => &["labels", "annotations"],
            Kind::Container => &["env", "securityContext"],
            Kind::Other => &["hostNetwork", "hostPID", "hostIPC"],
            _ => &[],
        }
    }

    fn child_kind(&self, node: Kind, key: &str) -> Kind {
        match node {
            Kind::Root => match key {
                "metadata" => Kind::Metadata,
                "data" if self.configmap || self.secret => Kind::Closed,
                "binaryData" if self.configmap => Kind::Closed,
                _ => Kind::Other,
            },
            Kind::Metadata => match key {
                "labels" | "annotations" => Kind::Closed,
                _ => Kind::Other,
            },
            Kind::ContainerList => Kind::Container,
            Kind::Container if key == "env" || key == "securityContext" => Kind::Closed,
            _ => match key {
                "containers" | "initContainers" | "ephemeralContainers" => Kind::ContainerList,
                _ => Kind::Other,
            },
        }
    }

    fn walk(&mut self, d: Option<Node<'_>>, l: Option<Node<'_>>, node: Kind) {
        if d.is_some() && !self.closed_fields.is_empty() && self.at_closed_field() {
            return self.leaf_with(d, l, true);
        }
        let closed = node == Kind::Closed;
        let structural = matches!(node, Kind::Root | Kind::Metadata | Kind::Container);
        match (d, l) {
            (Some(dm), lv) if dm.is_map() && (!dm.is_empty() || closed || structural) => match lv {
                Some(lm) if lm.is_map() => self.walk_map(Some(dm), Some(lm), node),
                None => self.walk_map(Some(dm), None, node),
                Some(_) => self.leaf(d, l),
            },
            (None, Some(lm)) if lm.is_map() && (closed || structural) => {
                self.walk_map(None, Some(lm), node);
            }
            (None, None) => {}
            _ => self.leaf(d, l),
        }
    }

    fn walk_map(&mut self, dm: Option<Node<'_>>, lm: Option<Node<'_>>, node: Kind) {
        let closed = node == Kind::Closed;
        // both maps are sorted by key: one pass over each
        let mut lpos = 0;
        let mut containers = false;
        for (k, dv) in dm.into_iter().flat_map(|m| m.entries()) {
            containers |= k == "containers";
            let len = self.buf.len();
            self.buf.push(k);
            let child = self.child_kind(node, k);
            self.walk(Some(dv), lm.and_then(|m| m.seek(k, &mut lpos)), child);
            self.buf.truncate(len);
        }
        let Some(lm) = lm else {
            return;
        };
        if closed {
            let mut dpos = 0;
            for (k, lv) in lm.entries() {
                if dm.is_some_and(|m| m.seek(k, &mut dpos).is_some()) {
                    continue;
                }
                let len = self.buf.len();
                self.buf.push(k);
                self.leaf(None, Some(lv));
                self.buf.truncate(len);
            }
        } else {
            let pod_spec = node != Kind::Other || containers;
            for k in self.closed_children(node).iter().filter(|_| pod_spec) {
                if dm.is_some_and(|m| m.get(k).is_some()) {
                    continue;
                }
                if let Some(lv) = lm.get(k) {
                    let len = self.buf.len();
                    self.buf.push(k);
                    let child = self.child_kind(node, k);
                    self.walk(None, Some(lv), child);
                    self.buf.truncate(len);
                }
            }
            // a keyed list Git sets (Service ports, containers, volumes): an item the cluster
            // has beside Git's is an addition (a port changed by hand shows as its old item
            // gone and its new item added)
            let keyed = dm.is_some_and(|m| {
                !m.is_empty_collection() && m.entries().all(|(k, _)| path::is_item(k))
            });
            if keyed {
                let mut dpos = 0;
                for (k, lv) in lm.entries() {
                    if !path::is_item(k) || dm.is_some_and(|m| m.seek(k, &mut dpos).is_some()) {
                        continue;
                    }
                    let len = self.buf.len();
                    self.buf.push(k);
                    self.leaf(None, Some(lv));
                    self.buf.truncate(len);
                }
            }
        }
    }

    fn leaf(&mut self, d: Option<Node<'_>>, l: Option<Node<'_>>) {
        self.leaf_with(d, l, false);
    }

    /// Whether the field at the current path means something even where Git leaves it empty
    /// or says less: compared whole, live additions included.
    fn at_closed_field(&self) -> bool {
        self.closed_fields.contains(&self.buf.as_str())
    }

    fn leaf_with(&mut self, d: Option<Node<'_>>, l: Option<Node<'_>>, closed: bool) {
        let path_hash = xxh3_64(self.buf.as_str().as_bytes());
        let dh = d.map(|d| {
            self.enc.clear();
            d.encode(&mut self.enc);
            xxh3_64(&self.enc)
        });
        let lh = match l {
            Some(l) => {
                self.enc.clear();
                match d {
                    Some(d) if closed => d.encode_closed(l, &mut self.enc),
                    Some(d) => d.encode_projected(l, &mut self.enc),
                    None => l.encode(&mut self.enc),
                }
                Some(xxh3_64(&self.enc))
            }
            // the API server drops empty lists and maps: absent live is what Git's `[]` gives;
            // not for a marker whose presence is its meaning (`emptyDir: {}` picks the volume
            // source: absent live means another source took its place)
            None if d.is_some_and(|d| d.is_empty_collection())
                && !presence_marker(self.buf.as_str()) =>
            {
                dh
            }
            // the API server leaves out a zero it need not keep (`minReadySeconds: 0`); not
            // in maps whose entries are data (a label `x: ""` is kept, so absent is a change)
            None if d.is_some_and(|d| d.is_zero_scalar()) && !self.in_data_map() => dh,
            None => None,
        };
        self.leaves.push(Leaf::new(path_hash, dh, lh));
        if dh != lh {
            let secret = self.secret && {
                let p = self.buf.as_str();
                p.starts_with("data.") || p.starts_with("data[")
            };
            let show = |v: Option<Value>| {
                v.map(|v| {
                    if secret {
                        Value::String(REDACTED.to_owned())
                    } else {
                        shorten(v)
                    }
                })
            };
            let live_shown = match (d, l) {
                (Some(_), Some(l)) if closed => Some(l.to_value()),
                (Some(d), Some(l)) => Some(d.project(l)),
                (None, l) => l.map(|l| l.to_value()),
                (_, None) => None,
            };
            self.drifted.push(FieldDiff {
                path: self.buf.clone(),
                desired: show(d.map(|d| d.to_value())),
                live: show(live_shown),
            });
            self.drifted_hashes.push(path_hash);
        }
    }
}

/// `l` restricted to the shape of `d`, for display.
pub fn project(d: &Value, l: &Value) -> Value {
    Doc::from_value(d).root().project(Doc::from_value(l).root())
}

pub(crate) fn shorten(v: Value) -> Value {
    match v {
        Value::String(s) if s.len() > MAX_SHOWN => {
            let mut end = MAX_SHOWN;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            Value::String(format!("{}… ({} bytes)", &s[..end], s.len()))
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_leaf_keeps_absent_apart_from_every_hash() {
        let l = Leaf::new(7, None, Some(0));
        assert_eq!((l.desired(), l.live()), (None, Some(1)));
        let l = Leaf::new(7, Some(u64::MAX), None);
        assert_eq!((l.desired(), l.live()), (Some(u64::MAX), None));
        let mut l = Leaf::new(7, Some(5), Some(6));
        l.agree();
        assert_eq!(l.live(), Some(5));
    }

    fn paths(d: Value, l: Value) -> Vec<FieldPath> {
        compare("apps", "Deployment", &d, &l).drifted_paths()
    }

    #[test]
    fn server_defaults_are_not_drift() {
        let d = json!({"spec": {"replicas": 3, "template": {"spec": {"containers": {
            "[a]": {"name": "a", "image": "x"}}}}}});
        let l = json!({"spec": {"replicas": 3, "strategy": {"type": "RollingUpdate"},
            "template": {"spec": {"dnsPolicy": "ClusterFirst", "containers": {
            "[a]": {"name": "a", "image": "x", "imagePullPolicy": "IfNotPresent"}}}}}});
        assert!(paths(d, l).is_empty());
    }

    #[test]
    fn zeros_the_api_server_omits_are_not_drift() {
        // minReadySeconds and initialDelaySeconds are omitempty ints; PodSecurityPolicy's
        // booleans omitempty bools; an env var's empty value an omitempty string
        let d = json!({"spec": {"minReadySeconds": 0, "paused": false, "template": {"spec": {
            "containers": {"[a]": {"name": "a", "image": "x",
                "readinessProbe": {"initialDelaySeconds": 0, "periodSeconds": 5},
                "env": {"[E]": {"name": "E", "value": ""}}}},
            "tolerations": [{"key": "k", "operator": "Exists", "tolerationSeconds": 0}]}}}});
        let l = json!({"spec": {"template": {"spec": {
            "containers": {"[a]": {"name": "a", "image": "x",
                "readinessProbe": {"periodSeconds": 5},
                "env": {"[E]": {"name": "E"}}}},
            "tolerations": [{"key": "k", "operator": "Exists"}]}}}});
        assert!(paths(d.clone(), l.clone()).is_empty(), "{:?}", paths(d, l));
        // a zero Git sets and a non-zero live value still differ
        let l2 = json!({"spec": {"minReadySeconds": 30}});
        assert_eq!(
            paths(json!({"spec": {"minReadySeconds": 0}}), l2),
            vec!["spec.minReadySeconds"]
        );
        // a label or data entry with an empty value is kept by the API server: gone is a change
        let d = json!({"metadata": {"labels": {"tier": ""}}});
        assert_eq!(
            paths(d, json!({"metadata": {}})),
            vec!["metadata.labels.tier"]
        );
        let c = compare("", "ConfigMap", &json!({"data": {"k": ""}}), &json!({}));
        assert_eq!(c.drifted_paths(), vec!["data.k"]);
    }

    #[test]
    fn rules_that_mean_something_when_empty_are_compared_whole() {
        let np = |d: Value, l: Value| {
            compare("networking.k8s.io", "NetworkPolicy", &d, &l).drifted_paths()
        };
        // allow all, then narrowed by hand to one source
        let d = json!({"spec": {"podSelector": {}, "ingress": [{}], "policyTypes": ["Ingress"]}});
        let l = json!({"spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [
            {"from": [{"podSelector": {"matchLabels": {"app": "x"}}}]}]}});
        assert_eq!(np(d.clone(), l), vec!["spec.ingress"]);
        assert!(np(d.clone(), d.clone()).is_empty());
        // every pod, then only some
        let l = json!({"spec": {"podSelector": {"matchLabels": {"app": "db"}}, "ingress": [{}],
            "policyTypes": ["Ingress"]}});
        assert_eq!(np(d, l), vec!["spec.podSelector"]);
        // the API server's default protocol is not a change
        let d = json!({"spec": {"podSelector": {}, "ingress": [{"ports": [{"port": 80}]}]}});
        let l = json!({"spec": {"podSelector": {}, "ingress": [{"ports": [{"port": 80, "protocol": "TCP"}]}]}});
        assert!(np(d, l).is_empty());
        // an RBAC rule narrowed (or widened) by a field Git does not set
        let d = json!({"rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]});
        let l = json!({"rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"],
            "resourceNames": ["one"]}]});
        let c = compare("rbac.authorization.k8s.io", "Role", &d, &l);
        assert_eq!(c.drifted_paths(), vec!["rules"]);
        assert_eq!(c.drifted[0].live, Some(l["rules"].clone()), "shown whole");
        assert!(compare("rbac.authorization.k8s.io", "ClusterRole", &d, &d).in_sync());
    }

    #[test]
    fn a_changed_list_key_shows_the_old_item_gone_and_the_new_added() {
        let d = json!({"spec": {"ports": {"[80/TCP]": {"port": 80, "protocol": "TCP", "targetPort": 8080}}}});
        let l = json!({"spec": {"ports": {"[81/TCP]": {"port": 81, "protocol": "TCP", "targetPort": 8080}}}});
        let c = compare("", "Service", &d, &l);
        let paths = c.drifted_paths();
        assert!(
            paths.contains(&"spec.ports[80/TCP].port".into()),
            "{paths:?}"
        );
        let added = c
            .drifted
            .iter()
            .find(|f| f.path == "spec.ports[81/TCP]")
            .expect("the new port is shown");
        assert_eq!(added.desired, None);
        assert_eq!(
            added.live.as_ref().map(|v| v["port"].clone()),
            Some(json!(81))
        );
        // a port added beside Git's, and a sidecar added by hand
        let l = json!({"spec": {"ports": {"[80/TCP]": {"port": 80, "protocol": "TCP", "targetPort": 8080},
            "[9090/TCP]": {"port": 9090, "protocol": "TCP"}}}});
        assert_eq!(
            paths_of("", "Service", &d, &l),
            vec!["spec.ports[9090/TCP]"]
        );
    }

    fn paths_of(group: &str, kind: &str, d: &Value, l: &Value) -> Vec<FieldPath> {
        compare(group, kind, d, l).drifted_paths()
    }

    #[test]
    fn closed_maps_catch_additions() {
        let d = json!({"spec": {"template": {"spec": {"containers": {
            "[a]": {"name": "a", "env": {"[X]": {"name": "X", "value": "1"}}}}}}}});
        let l = json!({"metadata": {"labels": {"hand": "made"}},
            "spec": {"template": {"spec": {"containers": {
            "[a]": {"name": "a", "env": {"[X]": {"name": "X", "value": "1"},
                                          "[Y]": {"name": "Y", "value": "2"}}}}}}}});
        assert_eq!(
            paths(d, l),
            vec![
                "metadata.labels.hand",
                "spec.template.spec.containers[a].env[Y]"
            ]
        );
    }

    #[test]
    fn lists_without_keys_compare_whole_with_defaults_inside() {
        let d = json!({"spec": {"rules": [{"host": "a", "paths": [{"path": "/"}]}]}});
        let l = json!({"spec": {"rules": [{"host": "a", "paths": [{"path": "/", "pathType": "Prefix"}]}]}});
        assert!(paths(d.clone(), l).is_empty());
        let l2 =
            json!({"spec": {"rules": [{"host": "a", "paths": [{"path": "/"}]}, {"host": "b"}]}});
        assert_eq!(paths(d, l2), vec!["spec.rules"]);
    }

    #[test]
    fn secret_diffs_are_redacted() {
        let d = json!({"data": {"k": "hmac-sha256:aa"}});
        let l = json!({"data": {"k": "hmac-sha256:bb"}});
        let c = compare("", "Secret", &d, &l);
        assert_eq!(c.drifted[0].desired, Some(json!(REDACTED)));
        assert_eq!(c.drifted[0].live, Some(json!(REDACTED)));
    }

    #[test]
    fn hashes_agree_when_in_sync() {
        let d = json!({"spec": {"x": 1}});
        let l = json!({"spec": {"x": 1, "y": 2}});
        let c = compare("g", "K", &d, &l);
        assert!(c.in_sync());
        assert_eq!(c.desired_hash(), c.live_hash());
        assert_eq!(c.desired_fields(), c.live_fields());
    }
}
