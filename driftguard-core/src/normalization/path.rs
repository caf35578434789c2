//! Field paths as DriftGuard prints them: [`FieldPath`], the one type that builds, prints and
//! reads them.
//!
//! A path is a dotted list of segments: map keys (`spec.replicas`), keys that are not plain
//! identifiers in quotes (`metadata.labels["app.kubernetes.io/name"]`, with `"` and `\`
//! escaped by `\`), and items of lists with merge keys by their key
//! (`spec.template.spec.containers[nginx].image`, `spec.ports[80/TCP].targetPort`). Lists
//! without merge keys are compared whole and never indexed.
//!
//! The printed form is what the API, the CLI, the stores and the field hashes see; it is
//! also what a [`FieldPath`] holds, so printing, ordering and hashing never re-encode.
//! [`FieldPath::segments`] reads it back: for every path the normalizer and the comparison
//! build, `FieldPath::parse(p).to_string() == p`.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A field path: the printed form (see [the module](self)), read back into [`Segment`]s on
/// demand.
///
/// Built key by key ([`FieldPath::push`] and its kin) or parsed from its printed form
/// ([`FieldPath::parse`], also `From<&str>` and `FromStr`); printed by `Display` and
/// [`FieldPath::as_str`]. It is ordered, compared and hashed as its printed form, and its serde
/// form is that string, so JSON and stored drifts read as they always did.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FieldPath(String);

/// One segment of a [`FieldPath`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Segment<'a> {
    /// A map key.
    Key(Cow<'a, str>),
    /// An item of a keyed list, by its merge key (`nginx`, `80/TCP`).
    Item(Cow<'a, str>),
}

impl Segment<'_> {
    /// The map key or the item's merge key.
    pub fn name(&self) -> &str {
        match self {
            Segment::Key(k) | Segment::Item(k) => k,
        }
    }

    /// The key of the segment in a normalized view, where keyed list items are maps keyed by
    /// `[key]` ([`crate::normalize`]).
    pub fn map_key(&self) -> Cow<'_, str> {
        match self {
            Segment::Key(k) => Cow::Borrowed(k),
            Segment::Item(k) => Cow::Owned(item_key(k)),
        }
    }

    /// The segment owning its text.
    pub fn into_owned(self) -> Segment<'static> {
        match self {
            Segment::Key(k) => Segment::Key(Cow::Owned(k.into_owned())),
            Segment::Item(k) => Segment::Item(Cow::Owned(k.into_owned())),
        }
    }
}

/// Whether a key is printed as it is (`spec`), not in quotes.
fn plain(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl FieldPath {
    /// The empty path (the object itself).
    pub const fn new() -> FieldPath {
        FieldPath(String::new())
    }

    /// Reads a printed path. Lenient, as paths are only ever printed by DriftGuard: empty keys
    /// (`a..b`) are skipped and an unclosed quote or bracket runs to the end. The result
    /// prints in the canonical form, which for every path DriftGuard prints is `s` itself.
    pub fn parse(s: &str) -> FieldPath {
        let mut p = FieldPath(String::with_capacity(s.len()));
        for seg in (Segments { rest: s }) {
            p.push_segment(&seg);
        }
        p
    }

    /// The path of a list of keys of a normalized view (see [`FieldPath::push`]).
    pub fn from_keys<'k>(keys: impl IntoIterator<Item = &'k str>) -> FieldPath {
        let mut p = FieldPath::new();
        for k in keys {
            p.push(k);
        }
        p
    }

    /// Appends a key of a normalized view: `[nginx]` is a keyed list item
    /// ([`FieldPath::push_item`]), any other key a map key ([`FieldPath::push_key`]).
    pub fn push(&mut self, key: &str) {
        if is_item(key) {
            // keyed list items are stored as `[key]` map keys and printed as they are
            self.0.push_str(key);
        } else {
            self.push_key(key);
        }
    }

    /// Appends a map key: `.key` when it is a plain identifier, `["key"]` otherwise.
    pub fn push_key(&mut self, key: &str) {
        if plain(key) {
            if !self.0.is_empty() {
                self.0.push('.');
            }
            self.0.push_str(key);
        } else {
            self.0.push_str("[\"");
            for c in key.chars() {
                if c == '"' || c == '\\' {
                    self.0.push('\\');
                }
                self.0.push(c);
            }
            self.0.push_str("\"]");
        }
    }

    /// Appends an item of a keyed list by its merge key: `[nginx]`, `[80/TCP]`.
    pub fn push_item(&mut self, merge_key: &str) {
        if merge_key.starts_with('"') {
            // `["...` reads as a quoted key: printed as the normalized view's key, as
            // `push` does with it
            self.push_key(&item_key(merge_key));
        } else {
            self.0.push('[');
            self.0.push_str(merge_key);
            self.0.push(']');
        }
    }

    /// Appends one segment.
    pub fn push_segment(&mut self, segment: &Segment<'_>) {
        match segment {
            Segment::Key(k) => self.push_key(k),
            Segment::Item(k) => self.push_item(k),
        }
    }

    /// This path with a key of a normalized view appended (see [`FieldPath::push`]).
    pub fn join(&self, key: &str) -> FieldPath {
        let mut p = self.clone();
        p.push(key);
        p
    }

    /// The segments, read from the printed form.
    pub fn segments(&self) -> Segments<'_> {
        Segments { rest: &self.0 }
    }

    /// The last segment.
    pub fn last(&self) -> Option<Segment<'_>> {
        self.segments().last()
    }

    /// The printed form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The printed form, owned.
    pub fn into_string(self) -> String {
        self.0
    }

    /// Whether this is the empty path.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The length of the printed form in bytes: a mark to [`FieldPath::truncate`] back to.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Goes back to the path as it was when [`FieldPath::len`] said `len` (a path reused as a
    /// buffer while walking a tree).
    pub fn truncate(&mut self, len: usize) {
        self.0.truncate(len);
    }

    /// Empties the path.
    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// Whether this path is `prefix` or lies below it.
    pub fn is_within(&self, prefix: &FieldPath) -> bool {
        let (path, prefix) = (self.as_str(), prefix.as_str());
        path == prefix
            || (path.starts_with(prefix)
                && matches!(path.as_bytes().get(prefix.len()), Some(b'.') | Some(b'[')))
    }
}

/// The label key a path names (`metadata.labels.app`,
/// `metadata.labels["app.kubernetes.io/name"]`), if it names one.
pub fn label_key(path: &FieldPath) -> Option<Cow<'_, str>> {
    let mut s = path.segments();
    match (s.next(), s.next(), s.next(), s.next()) {
        (Some(Segment::Key(m)), Some(Segment::Key(l)), Some(Segment::Key(k)), None)
            if m == "metadata" && l == "labels" =>
        {
            Some(k)
        }
        _ => None,
    }
}

/// The [`Segment`]s of a printed path ([`FieldPath::segments`]): the one reader of paths.
#[derive(Clone, Debug)]
pub struct Segments<'a> {
    rest: &'a str,
}

impl<'a> Iterator for Segments<'a> {
    type Item = Segment<'a>;

    fn next(&mut self) -> Option<Segment<'a>> {
        loop {
            let s = self.rest;
            match s.as_bytes().first()? {
                b'.' => self.rest = &s[1..],
                b'[' if s[1..].starts_with('"') => return Some(self.quoted()),
                b'[' => return Some(self.item()),
                _ => {
                    let end = s.find(['.', '[']).unwrap_or(s.len());
                    self.rest = &s[end..];
                    return Some(Segment::Key(Cow::Borrowed(&s[..end])));
                }
            }
        }
    }
}

impl<'a> Segments<'a> {
    /// `["key"]`, `\` escaping the next character; `rest` starts at `["`.
    fn quoted(&mut self) -> Segment<'a> {
        let body = &self.rest[2..];
        let mut owned: Option<String> = None;
        let mut chars = body.char_indices();
        let mut end = body.len();
        let mut after = body.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    let buf = owned.get_or_insert_with(|| body[..i].to_owned());
                    if let Some((_, n)) = chars.next() {
                        buf.push(n);
                    }
                }
                '"' => {
                    end = i;
                    after = i + 1;
                    break;
                }
                c => {
                    if let Some(buf) = owned.as_mut() {
                        buf.push(c);
                    }
                }
            }
        }
        let mut rest = &body[after..];
        if let Some(r) = rest.strip_prefix(']') {
            rest = r;
        }
        self.rest = rest;
        Segment::Key(match owned {
            Some(k) => Cow::Owned(k),
            None => Cow::Borrowed(&body[..end]),
        })
    }

    /// `[key]`; `rest` starts at `[`. The item ends at the first `]` that ends the path or is
    /// followed by `.` or `[` (a mount path may hold `]`), else at the first `]`.
    fn item(&mut self) -> Segment<'a> {
        let body = &self.rest[1..];
        let bytes = body.as_bytes();
        let closes = |i: &usize| bytes[*i] == b']';
        let end = (0..bytes.len())
            .filter(closes)
            .find(|i| matches!(bytes.get(i + 1), None | Some(b'.') | Some(b'[')))
            .or_else(|| (0..bytes.len()).find(closes));
        match end {
            Some(e) => {
                self.rest = &body[e + 1..];
                Segment::Item(Cow::Borrowed(&body[..e]))
            }
            None => {
                self.rest = "";
                Segment::Item(Cow::Borrowed(body))
            }
        }
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl FromStr for FieldPath {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<FieldPath, Self::Err> {
        Ok(FieldPath::parse(s))
    }
}

impl From<&str> for FieldPath {
    fn from(s: &str) -> FieldPath {
        FieldPath::parse(s)
    }
}

impl From<String> for FieldPath {
    fn from(s: String) -> FieldPath {
        FieldPath::parse(&s)
    }
}

impl From<&String> for FieldPath {
    fn from(s: &String) -> FieldPath {
        FieldPath::parse(s)
    }
}

impl From<FieldPath> for String {
    fn from(p: FieldPath) -> String {
        p.0
    }
}

impl AsRef<str> for FieldPath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Paths compare, order and hash as their printed form: lists of them join
/// (`paths.join(", ")`) and sets of them are looked up by a printed path.
impl std::borrow::Borrow<str> for FieldPath {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for FieldPath {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for FieldPath {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for FieldPath {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

impl PartialEq<FieldPath> for str {
    fn eq(&self, other: &FieldPath) -> bool {
        self == other.0
    }
}

impl PartialEq<FieldPath> for &str {
    fn eq(&self, other: &FieldPath) -> bool {
        *self == other.0
    }
}

impl Serialize for FieldPath {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for FieldPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<FieldPath, D::Error> {
        let s = String::deserialize(d)?;
        Ok(FieldPath::parse(&s))
    }
}

/// Whether a normalized map key stands for an item of a keyed list (`[nginx]`).
pub fn is_item(key: &str) -> bool {
    key.len() >= 2 && key.starts_with('[') && key.ends_with(']') && !key.starts_with("[\"")
}

/// The map key under which a keyed list item is stored in the normalized view (`[nginx]`).
pub fn item_key(key: &str) -> String {
    let mut s = String::with_capacity(key.len() + 2);
    s.push('[');
    s.push_str(key);
    s.push(']');
    s
}

/// Matches a path against a pattern where `*` stands for any run of characters.
///
/// In time proportional to the pattern's length times the text's at worst, whatever the
/// pattern (`*a*a*a*a*a*b` included): a mismatch after a `*` only ever moves that last `*` on,
/// since matching each literal run at its leftmost place is never worse for what follows.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    // the position after the last `*` seen, and where in the text it was tried last
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi + 1, ti));
                pi += 1;
            }
            Some(c) if *c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((after, tried)) => {
                    pi = after;
                    ti = tried + 1;
                    star = Some((after, tried + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The keys of the normalized view a path names.
    fn keys(p: &FieldPath) -> Vec<String> {
        p.segments().map(|s| s.map_key().into_owned()).collect()
    }

    #[test]
    fn formats_paths() {
        assert_eq!(FieldPath::from_keys(["spec", "replicas"]), "spec.replicas");
        assert_eq!(
            FieldPath::from_keys(["metadata", "labels", "app.kubernetes.io/name"]),
            "metadata.labels[\"app.kubernetes.io/name\"]"
        );
        assert_eq!(
            FieldPath::from_keys(["spec", "containers", "[nginx]", "image"]),
            "spec.containers[nginx].image"
        );
        let mut p = FieldPath::new();
        p.push_key("spec");
        p.push_item("80/TCP");
        p.push_key("targetPort");
        assert_eq!(p.to_string(), "spec[80/TCP].targetPort");
        assert_eq!(p.join("x.y"), "spec[80/TCP].targetPort[\"x.y\"]");
        let mark = p.len();
        p.push("[a]");
        p.truncate(mark);
        assert_eq!(p, "spec[80/TCP].targetPort");
    }

    #[test]
    fn label_keys_read_back() {
        for key in ["app", "app.kubernetes.io/instance", "we\"ird\\"] {
            assert_eq!(
                label_key(&FieldPath::from_keys(["metadata", "labels", key])).as_deref(),
                Some(key)
            );
        }
        assert_eq!(label_key(&"metadata.annotations.app".into()), None);
        assert_eq!(label_key(&"metadata.labelsx".into()), None);
    }

    #[test]
    fn parses_paths() {
        let segments = |p: &str| {
            FieldPath::parse(p)
                .segments()
                .map(Segment::into_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            segments(r#"metadata.labels["app.kubernetes.io/name"]"#),
            vec![
                Segment::Key("metadata".into()),
                Segment::Key("labels".into()),
                Segment::Key("app.kubernetes.io/name".into())
            ]
        );
        assert_eq!(
            segments("spec.ports[80/TCP].targetPort"),
            vec![
                Segment::Key("spec".into()),
                Segment::Key("ports".into()),
                Segment::Item("80/TCP".into()),
                Segment::Key("targetPort".into())
            ]
        );
        assert_eq!(
            segments(r#"a["we\"ird\\"][x]"#),
            vec![
                Segment::Key("a".into()),
                Segment::Key("we\"ird\\".into()),
                Segment::Item("x".into())
            ]
        );
        // lenient: what DriftGuard never prints reads as near as it can
        assert_eq!(FieldPath::parse("a..b."), "a.b");
        assert_eq!(FieldPath::parse("[\"a.b"), "[\"a.b\"]");
        assert_eq!(FieldPath::parse("a[x"), "a[x]");
        assert_eq!(FieldPath::parse("[\"plain\"]"), "plain");
        assert!(FieldPath::parse("").is_empty());
    }

    #[test]
    fn path_segments() {
        let segments = |p: &str| keys(&FieldPath::parse(p));
        assert_eq!(
            segments("spec.template.spec.containers[api].image"),
            ["spec", "template", "spec", "containers", "[api]", "image"]
        );
        assert_eq!(
            segments("metadata.labels[\"app.kubernetes.io/name\"]"),
            ["metadata", "labels", "app.kubernetes.io/name"]
        );
        assert_eq!(
            segments("spec.ports[80/TCP].port"),
            ["spec", "ports", "[80/TCP]", "port"]
        );
    }

    #[test]
    fn tricky_keys_read_back() {
        let tricky_keys = [
            "a.b",
            "app.kubernetes.io/name",
            "a/b",
            "we\"ird\\",
            "\"",
            "\\",
            "\"]",
            "[\"x\"]",
            "x[0]",
            "[",
            "]",
            "a]b",
            "][",
            "[x",
            "ünïcødé",
            "日本語.キー",
            "🚀 launch",
            "",
            " ",
            "..",
            "a\tb\nc",
            "plain_key-1",
        ];
        let tricky_items = [
            "nginx",
            "80/TCP",
            "/var/lib/data",
            "/etc/conf.d",
            "/data[1]/x",
            "/odd]",
            "a b",
            "ünï",
            "",
        ];
        for k in tricky_keys {
            for i in tricky_items {
                let item = format!("[{i}]");
                for path_keys in [
                    vec!["metadata", "labels", k],
                    vec![k, "spec"],
                    vec!["spec", "containers", item.as_str(), k],
                    vec!["spec", "ports", item.as_str(), item.as_str(), k, k],
                    vec![item.as_str(), k, item.as_str()],
                ] {
                    let p = FieldPath::from_keys(path_keys.iter().copied());
                    let back = FieldPath::parse(p.as_str());
                    assert_eq!(back.to_string(), p.to_string(), "{path_keys:?}");
                    assert_eq!(keys(&back), path_keys, "{p}");
                    let json = serde_json::to_string(&p).expect("serializes");
                    assert_eq!(json, serde_json::to_string(p.as_str()).expect("serializes"));
                    let read: FieldPath = serde_json::from_str(&json).expect("reads");
                    assert_eq!(read, p);
                }
            }
        }
    }

    /// A key of a normalized view: a map key, or a keyed list item (`[name]`) whose name
    /// neither starts with `"` nor holds `].` or `][`.
    fn normalized_key() -> impl Strategy<Value = String> {
        prop_oneof![
            "(?s).{0,8}".prop_filter("a map key", |k| !is_item(k)),
            "(?s).{0,8}"
                .prop_filter("an item's merge key", |k| {
                    !k.starts_with('"') && !k.contains("].") && !k.contains("][")
                })
                .prop_map(|k| format!("[{k}]")),
            prop_oneof![
                Just("spec"),
                Just("[nginx]"),
                Just("[80/TCP]"),
                Just("app.kubernetes.io/name")
            ]
            .prop_map(str::to_owned),
        ]
    }

    fn tricky_name() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9.\\-/]{1,12}",
            "(?s)[^\\]\"\\[]{1,8}",
            prop_oneof![
                Just("app.kubernetes.io/name"),
                Just("we\"ird\\"),
                Just("/data[1]/x"),
                Just("ünï.cødé/🚀"),
            ]
            .prop_map(str::to_owned),
        ]
    }

    proptest! {
        #[test]
        fn printed_paths_read_back(path_keys in prop::collection::vec(normalized_key(), 0..7)) {
            let p = FieldPath::from_keys(path_keys.iter().map(String::as_str));
            let back = FieldPath::parse(p.as_str());
            prop_assert_eq!(back.as_str(), p.as_str());
            prop_assert_eq!(keys(&back), path_keys);
        }

        /// Every path the normalizer and the comparison print reads back as itself.
        #[test]
        fn normalizer_paths_read_back(
            label in tricky_name(),
            container in "[^\\]\"]{1,8}",
            env in tricky_name().prop_filter("no `]`", |n| !n.contains(']')),
            mount in tricky_name().prop_filter("an absolute path", |m| {
                !m.starts_with('"') && !m.contains("].") && !m.contains("][")
            }),
            field in tricky_name(),
        ) {
            use crate::normalize::{Normalizer, SecretKey};
            let object = |v: &str| serde_json::json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "shop",
                    "labels": {label.clone(): v}, "annotations": {field.clone(): v}},
                "spec": {"template": {"spec": {"containers": [{
                    "name": container, "image": v,
                    "env": [{"name": env, "value": v}],
                    "volumeMounts": [{"mountPath": mount, "name": v}],
                    "ports": [{"containerPort": 80, "name": v}],
                }]}}},
            });
            let n = Normalizer::new(SecretKey::new(b"k".to_vec()));
            let d = n.normalize("e", &object("a"), &[]).expect("normalizes");
            let l = n.normalize("e", &object("b"), &[]).expect("normalizes");
            let cmp = crate::compare::compare_docs("apps", "Deployment", &d.content, &l.content);
            prop_assert!(cmp.drifted.len() >= 6, "{:?}", cmp.drifted_paths());
            for f in &cmp.drifted {
                let back = FieldPath::parse(f.path.as_str());
                prop_assert_eq!(back.as_str(), f.path.as_str());
            }
        }
    }

    #[test]
    fn globs_take_linear_time_on_hostile_patterns() {
        let text = "a".repeat(4096);
        let pattern = "*a".repeat(40) + "*b";
        let t0 = std::time::Instant::now();
        assert!(!glob_match(&pattern, &text));
        // exponential backtracking would take longer than the universe's age here
        assert!(t0.elapsed() < std::time::Duration::from_secs(5));
        assert!(glob_match(&("*a".repeat(40) + "*"), &text));
    }

    #[test]
    fn globs_agree_with_a_plain_reference_matcher() {
        fn reference(p: &[u8], t: &[u8]) -> bool {
            match p.split_first() {
                None => t.is_empty(),
                Some((b'*', rest)) => (0..=t.len()).any(|i| reference(rest, &t[i..])),
                Some((c, rest)) => t.first() == Some(c) && reference(rest, &t[1..]),
            }
        }
        let alphabet = ["", "a", "b", "*", "ab", "ba", "a*", "*b", "**"];
        let texts = [
            "", "a", "b", "ab", "ba", "aab", "abab", "bba", "aaaa", "abba",
        ];
        for x in alphabet {
            for y in alphabet {
                for z in alphabet {
                    let p = format!("{x}{y}{z}");
                    for t in texts {
                        assert_eq!(
                            glob_match(&p, t),
                            reference(p.as_bytes(), t.as_bytes()),
                            "{p:?} on {t:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn within_and_globs() {
        let within = |p: &str, prefix: &str| FieldPath::parse(p).is_within(&prefix.into());
        assert!(within("spec.containers[a].image", "spec.containers"));
        assert!(within("spec.replicas", "spec.replicas"));
        assert!(!within("spec.replicasX", "spec.replicas"));
        assert!(glob_match("spec.*.image", "spec.containers[a].image"));
        assert!(glob_match("prod-*", "prod-eu"));
        assert!(!glob_match("prod-*", "dev"));
    }
}
