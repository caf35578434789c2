//! Which live objects a [`LiveScope`] admits: the one rule every live source applies (a
//! memory cluster, a dump, a real cluster), so that they all hand over the same objects for the
//! same scope, and the Kubernetes label selectors it uses.
//!
//! An object is in a scope when:
//!
//! 1. **kind**: its group and kind is one of the scope's kinds (the version does not matter: a
//!    source reads one version per kind);
//! 2. **place**: the scope names no namespaces, or
//!    - the object has a namespace and it is one of them, or
//!    - the object has none (it is cluster-scoped: `ClusterRole`, `Node`, ...) and it is not a
//!      `Namespace`; a `Namespace` is in only when it is one of the named namespaces;
//! 3. **labels**: the scope has no label selector (or an empty one), or the object's
//!    `metadata.labels` match it, with the API server's grammar and meaning
//!    ([`LabelSelector`]).
//!
//! A deletion seen by a watch is admitted on 1 and 2 alone ([`Admission::admits_change`]):
//! whatever labels it carries (the API server announces an object whose labels left the
//! selector as a deletion), forgetting an object that was never admitted is harmless, while a
//! deletion dropped would leave an object that is gone. An invalid label selector admits
//! nothing; sources report it as
//! [`SourceError::Invalid`](crate::ports::SourceError::Invalid) before they read anything.
//!
//! A source may filter on its server first (kinds, namespaces, the selector): it still passes
//! every object through [`Admission::admits`], so the result is the same set by construction.

use std::fmt;

use serde_json::{Map, Value};

use crate::id::GroupKind;
use crate::model::ObjectMeta;
use crate::ports::{LiveChange, LiveScope};

/// The admission rule of one [`LiveScope`], ready to apply (its label selector parsed once).
/// See the [module docs](self).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Admission {
    /// Kinds, sorted, without repeats.
    kinds: Vec<GroupKind>,
    /// Namespaces, sorted, without repeats (empty: all).
    namespaces: Vec<String>,
    /// The label selector, when the scope has a non-empty one.
    selector: Option<LabelSelector>,
}

impl Admission {
    /// The rule of `scope`. Fails when its label selector is invalid.
    pub fn new(scope: &LiveScope) -> Result<Self, LabelSelectorError> {
        let selector = match scope.label_selector.as_deref() {
            Some(s) if !s.trim().is_empty() => Some(LabelSelector::parse(s)?),
            _ => None,
        };
        let mut kinds: Vec<GroupKind> = scope.kinds.iter().map(|k| k.group_kind()).collect();
        kinds.sort();
        kinds.dedup();
        let mut namespaces = scope.namespaces.clone();
        namespaces.sort();
        namespaces.dedup();
        Ok(Admission {
            kinds,
            namespaces,
            selector,
        })
    }

    /// Whether `object` (as a source reads it, with `apiVersion`, `kind` and `metadata`) is in
    /// the scope: kind, place and labels.
    pub fn admits(&self, object: &Value) -> bool {
        self.admits_place(object) && self.admits_labels(object)
    }

    /// Whether `object` is in the scope by kind and place, whatever its labels say.
    pub fn admits_place(&self, object: &Value) -> bool {
        let meta = ObjectMeta::of(object);
        let group = GroupKind::group_of(meta.api_version);
        if !self.admits_group_kind(group, meta.kind) {
            return false;
        }
        match meta.namespace {
            Some(ns) => self.admits_namespace(ns),
            None if group.is_empty() && meta.kind == "Namespace" => {
                self.admits_namespace(meta.name)
            }
            None => true,
        }
    }

    /// Whether `object`'s labels match the scope's selector (always, without one).
    pub fn admits_labels(&self, object: &Value) -> bool {
        self.selector.as_ref().is_none_or(|s| {
            s.matches(
                object
                    .get("metadata")
                    .and_then(|m| m.get("labels"))
                    .and_then(Value::as_object),
            )
        })
    }

    /// Whether a change seen by a watch is in the scope: an applied object by
    /// [`Admission::admits`], a deleted one by [`Admission::admits_place`] (see the
    /// [module docs](self)); restarts and disconnections always are.
    pub fn admits_change(&self, change: &LiveChange) -> bool {
        match change {
            LiveChange::Applied(o) => self.admits(o.object.value()),
            LiveChange::Deleted(o) => self.admits_place(o.object.value()),
            LiveChange::Restarted(_) | LiveChange::Disconnected(_) => true,
        }
    }

    /// What a view of a shared watch (one that sees every object of a kind, unfiltered) makes
    /// of a change, as a watch with the scope's selector would see it: an applied object in
    /// the scope stays applied; one in the scope's kinds and places whose labels do not match
    /// is a deletion when it was in the view (`was_in`: the API server announces an object
    /// whose labels leave the selector as deleted) and nothing otherwise; a deletion in place
    /// is a deletion; anything else is not the view's (`None`).
    pub fn view_change(&self, change: LiveChange, was_in: bool) -> Option<LiveChange> {
        match change {
            LiveChange::Applied(o) => {
                if !self.admits_place(o.object.value()) {
                    None
                } else if self.admits_labels(o.object.value()) {
                    Some(LiveChange::Applied(o))
                } else {
                    was_in.then_some(LiveChange::Deleted(o))
                }
            }
            other => self.admits_change(&other).then_some(other),
        }
    }

    /// Whether objects of `kind` can be in the scope.
    pub fn admits_kind(&self, kind: &GroupKind) -> bool {
        self.admits_group_kind(&kind.group, &kind.kind)
    }

    fn admits_group_kind(&self, group: &str, kind: &str) -> bool {
        self.kinds
            .iter()
            .any(|k| k.group == group && k.kind == kind)
    }

    /// Whether objects in `namespace` can be in the scope (any namespace when the scope names
    /// none).
    pub fn admits_namespace(&self, namespace: &str) -> bool {
        self.namespaces.is_empty() || self.namespaces.iter().any(|n| n == namespace)
    }

    /// The scope's kinds, sorted, each once.
    pub fn kinds(&self) -> &[GroupKind] {
        &self.kinds
    }

    /// The scope's namespaces, sorted, each once (empty: all).
    pub fn namespaces(&self) -> &[String] {
        &self.namespaces
    }

    /// The scope's label selector, when it has a non-empty one.
    pub fn selector(&self) -> Option<&LabelSelector> {
        self.selector.as_ref()
    }
}

impl LiveScope {
    /// The scope's admission rule (see [`crate::admission`]). Fails when the label selector is
    /// invalid.
    pub fn admission(&self) -> Result<Admission, LabelSelectorError> {
        Admission::new(self)
    }

    /// Whether `object` is in this scope ([`Admission::admits`]). An invalid label selector
    /// admits nothing. To test many objects, build the [`LiveScope::admission`] once.
    pub fn admits(&self, object: &Value) -> bool {
        self.admission().is_ok_and(|a| a.admits(object))
    }
}

/// A label selector that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid label selector `{selector}`: {message}")]
pub struct LabelSelectorError {
    /// The selector as given.
    pub selector: String,
    /// What is wrong with it.
    pub message: String,
}

/// A Kubernetes label selector (`app=web,tier in (a,b),!canary,size>3`): a list of
/// requirements that must all hold, with the API server's grammar and meaning
/// (`k8s.io/apimachinery/pkg/labels`):
///
/// - `key`, `!key`: the label is present, absent;
/// - `key=value`, `key==value`, `key in (v1,v2)`: present with one of the values;
/// - `key!=value`, `key notin (v1,v2)`: absent, or present with another value;
/// - `key>n`, `key<n`: present, an integer, greater or smaller than `n`.
///
/// Keys are qualified names (`prefix.example/name`), values valid label values (possibly
/// empty). The empty selector matches everything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelSelector {
    text: String,
    requirements: Vec<Requirement>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Requirement {
    key: String,
    op: Op,
    values: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Exists,
    DoesNotExist,
    In,
    NotIn,
    GreaterThan,
    LessThan,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token<'a> {
    Ident(&'a str),
    Not,
    Eq,
    DoubleEq,
    NotEq,
    Gt,
    Lt,
    Comma,
    Open,
    Close,
    End,
}

impl fmt::Display for Token<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text: &str = match self {
            Token::Ident(s) => s,
            Token::Not => "!",
            Token::Eq => "=",
            Token::DoubleEq => "==",
            Token::NotEq => "!=",
            Token::Gt => ">",
            Token::Lt => "<",
            Token::Comma => ",",
            Token::Open => "(",
            Token::Close => ")",
            Token::End => "end of the selector",
        };
        f.write_str(text)
    }
}

fn is_special(c: char) -> bool {
    matches!(c, '!' | '=' | ',' | '(' | ')' | '<' | '>')
}

fn tokens(text: &str) -> Vec<Token<'_>> {
    let mut out = Vec::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start();
        let Some(c) = rest.chars().next() else {
            out.push(Token::End);
            return out;
        };
        let two = |second: char| rest[c.len_utf8()..].starts_with(second);
        let (token, len) = match c {
            '!' if two('=') => (Token::NotEq, 2),
            '!' => (Token::Not, 1),
            '=' if two('=') => (Token::DoubleEq, 2),
            '=' => (Token::Eq, 1),
            '>' => (Token::Gt, 1),
            '<' => (Token::Lt, 1),
            ',' => (Token::Comma, 1),
            '(' => (Token::Open, 1),
            ')' => (Token::Close, 1),
            _ => {
                let end = rest
                    .find(|c: char| c.is_whitespace() || is_special(c))
                    .unwrap_or(rest.len());
                (Token::Ident(&rest[..end]), end)
            }
        };
        out.push(token);
        rest = &rest[len..];
    }
}

struct Parser<'a> {
    tokens: Vec<Token<'a>>,
    at: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> &Token<'a> {
        self.tokens.get(self.at).unwrap_or(&Token::End)
    }

    fn next(&mut self) -> Token<'a> {
        let t = self.peek().clone();
        self.at += 1;
        t
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        let negated = *self.peek() == Token::Not;
        if negated {
            self.next();
        }
        let key = match self.next() {
            Token::Ident(k) if k != "in" && k != "notin" => k.to_owned(),
            other => return Err(format!("found `{other}`, expected a label key")),
        };
        if negated {
            return Ok(Requirement {
                key,
                op: Op::DoesNotExist,
                values: Vec::new(),
            });
        }
        let (op, values) = match self.next() {
            Token::End | Token::Comma => {
                self.at -= 1;
                (Op::Exists, Vec::new())
            }
            Token::Eq | Token::DoubleEq => (Op::In, vec![self.exact_value()?]),
            Token::NotEq => (Op::NotIn, vec![self.exact_value()?]),
            Token::Gt => (Op::GreaterThan, vec![self.exact_value()?]),
            Token::Lt => (Op::LessThan, vec![self.exact_value()?]),
            Token::Ident("in") => (Op::In, self.value_list()?),
            Token::Ident("notin") => (Op::NotIn, self.value_list()?),
            other => {
                return Err(format!(
                    "found `{other}` after `{key}`, expected an operator \
                     (=, ==, !=, in, notin, >, <), `,` or the end"
                ))
            }
        };
        Ok(Requirement { key, op, values })
    }

    /// The value after `=`, `==`, `!=`, `>` or `<`; empty when none follows.
    fn exact_value(&mut self) -> Result<String, String> {
        match self.peek() {
            Token::End | Token::Comma => Ok(String::new()),
            Token::Ident(v) => {
                let v = (*v).to_owned();
                self.next();
                Ok(v)
            }
            other => Err(format!("found `{other}`, expected a value")),
        }
    }

    /// `( v1, v2, ... )`; empty items are empty values.
    fn value_list(&mut self) -> Result<Vec<String>, String> {
        match self.next() {
            Token::Open => {}
            other => return Err(format!("found `{other}`, expected `(`")),
        }
        let mut values = Vec::new();
        let mut current: Option<String> = None;
        loop {
            match self.next() {
                Token::Ident(v) if current.is_none() => current = Some(v.to_owned()),
                Token::Comma => values.push(current.take().unwrap_or_default()),
                Token::Close => {
                    if current.is_some() || !values.is_empty() {
                        values.push(current.take().unwrap_or_default());
                    }
                    break;
                }
                other => return Err(format!("found `{other}` in a list of values")),
            }
        }
        values.sort();
        values.dedup();
        Ok(values)
    }
}

/// Whether `s` is a DNS-1123 subdomain (the optional prefix of a label key).
fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|part| {
            let b = part.as_bytes();
            !b.is_empty()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
                && b[0] != b'-'
                && b[b.len() - 1] != b'-'
        })
}

/// Whether `s` is a label value (a label key's name part when `allow_empty` is false).
fn is_label_value(s: &str, allow_empty: bool) -> bool {
    let b = s.as_bytes();
    if b.is_empty() {
        return allow_empty;
    }
    b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

fn is_qualified_name(key: &str) -> bool {
    match key.split_once('/') {
        Some((prefix, name)) => {
            is_dns_subdomain(prefix) && !name.contains('/') && is_label_value(name, false)
        }
        None => is_label_value(key, false),
    }
}

fn check(r: &Requirement) -> Result<(), String> {
    if !is_qualified_name(&r.key) {
        return Err(format!(
            "key `{}` is not a qualified name ([prefix/]name, name: 1 to 63 letters, digits, \
             `-`, `_` or `.`, starting and ending with a letter or digit)",
            r.key
        ));
    }
    match r.op {
        Op::In | Op::NotIn if r.values.is_empty() => {
            return Err(format!("`{}`: the set of values cannot be empty", r.key))
        }
        Op::GreaterThan | Op::LessThan if r.values[0].parse::<i64>().is_err() => {
            return Err(format!(
                "`{}`: `>` and `<` need an integer, not `{}`",
                r.key, r.values[0]
            ))
        }
        _ => {}
    }
    if let Some(v) = r.values.iter().find(|v| !is_label_value(v, true)) {
        return Err(format!(
            "`{}`: `{v}` is not a label value (at most 63 letters, digits, `-`, `_` or `.`, \
             starting and ending with a letter or digit)",
            r.key
        ));
    }
    Ok(())
}

impl LabelSelector {
    /// Parses a selector in the API server's syntax.
    pub fn parse(text: &str) -> Result<Self, LabelSelectorError> {
        let fail = |message: String| LabelSelectorError {
            selector: text.to_owned(),
            message,
        };
        let mut p = Parser {
            tokens: tokens(text),
            at: 0,
        };
        let mut requirements = Vec::new();
        if *p.peek() != Token::End {
            loop {
                let r = p.requirement().map_err(fail)?;
                check(&r).map_err(fail)?;
                requirements.push(r);
                match p.next() {
                    Token::End => break,
                    Token::Comma if matches!(p.peek(), Token::Ident(_) | Token::Not) => {}
                    Token::Comma => {
                        return Err(fail(format!(
                            "found `{}` after `,`, expected a requirement",
                            p.peek()
                        )))
                    }
                    other => return Err(fail(format!("found `{other}`, expected `,` or the end"))),
                }
            }
        }
        Ok(LabelSelector {
            text: text.to_owned(),
            requirements,
        })
    }

    /// The selector as given (what a source sends to an API server).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the selector has no requirement (it matches everything).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether labels (`metadata.labels`; `None` when the object has none) match. A label whose
    /// value is not a string is taken as absent.
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        self.requirements.iter().all(|r| {
            let value = labels.and_then(|l| l.get(&r.key)).and_then(Value::as_str);
            match (r.op, value) {
                (Op::Exists, v) => v.is_some(),
                (Op::DoesNotExist, v) => v.is_none(),
                (Op::In, Some(v)) => r.values.iter().any(|x| x == v),
                (Op::In, None) => false,
                (Op::NotIn, Some(v)) => !r.values.iter().any(|x| x == v),
                (Op::NotIn, None) => true,
                (Op::GreaterThan | Op::LessThan, Some(v)) => {
                    match (v.parse::<i64>(), r.values[0].parse::<i64>()) {
                        (Ok(have), Ok(bound)) => {
                            if r.op == Op::GreaterThan {
                                have > bound
                            } else {
                                have < bound
                            }
                        }
                        _ => false,
                    }
                }
                (Op::GreaterThan | Op::LessThan, None) => false,
            }
        })
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for LabelSelector {
    type Err = LabelSelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LabelSelector::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RawLive;
    use crate::ports::{GroupVersionKind, LiveSnapshot};
    use serde_json::json;

    fn labels(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("an object")
    }

    /// A view of an unfiltered (shared) watch: out of place is not the view's; in place but out
    /// of the selector is a deletion of what was in the view, nothing otherwise; deletions in
    /// place pass.
    #[test]
    fn a_view_of_a_shared_watch_sees_what_a_watch_with_the_selector_sees() {
        let scope = LiveScope {
            kinds: vec![GroupVersionKind::from_api_version("v1", "ConfigMap")],
            namespaces: vec!["shop".into()],
            label_selector: Some("app=web".into()),
        };
        let rule = scope.admission().expect("valid");
        let cm = |ns: &str, app: &str| {
            RawLive::new(json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "c", "namespace": ns, "labels": {"app": app}}}))
        };
        let kind = |c: Option<LiveChange>| match c {
            Some(LiveChange::Applied(_)) => "applied",
            Some(LiveChange::Deleted(_)) => "deleted",
            Some(_) => "other",
            None => "none",
        };
        let view = |c: LiveChange, was_in: bool| kind(rule.view_change(c, was_in));
        assert_eq!(
            view(LiveChange::Applied(cm("shop", "web")), false),
            "applied"
        );
        assert_eq!(view(LiveChange::Applied(cm("shop", "db")), true), "deleted");
        assert_eq!(view(LiveChange::Applied(cm("shop", "db")), false), "none");
        assert_eq!(view(LiveChange::Applied(cm("other", "web")), true), "none");
        assert_eq!(view(LiveChange::Deleted(cm("shop", "db")), true), "deleted");
        assert_eq!(view(LiveChange::Deleted(cm("other", "web")), true), "none");
        assert_eq!(view(LiveChange::Disconnected("x".into()), true), "other");
    }

    /// `(selector, labels, expected)` cases: the API server's meaning.
    #[test]
    fn selectors_match_like_the_api_server() {
        let web = labels(json!({"app": "web", "tier": "front", "size": "5", "empty": ""}));
        let cases: &[(&str, bool)] = &[
            ("", true),
            ("   ", true),
            ("app", true),
            ("nope", false),
            ("!nope", true),
            ("!app", false),
            ("app=web", true),
            ("app==web", true),
            ("app = web", true),
            ("app=db", false),
            ("app!=db", true),
            ("app!=web", false),
            ("nope!=x", true),
            ("app in (web,db)", true),
            ("app in(db , web )", true),
            ("app in (db)", false),
            ("nope in (x)", false),
            ("app notin (db)", true),
            ("app notin (web)", false),
            ("nope notin (x)", true),
            ("empty=", true),
            ("empty==", true),
            ("empty in (,x)", true),
            ("app=", false),
            ("size>4", true),
            ("size>5", false),
            ("size<6", true),
            ("app>1", false),
            ("nope<1", false),
            ("app=web,tier=front", true),
            ("app=web,tier=back", false),
            ("app=web, !canary, tier in (front), size > 1", true),
            ("example.com/role", false),
        ];
        for (selector, expected) in cases {
            let s = LabelSelector::parse(selector).unwrap_or_else(|e| panic!("{selector}: {e}"));
            assert_eq!(s.matches(Some(&web)), *expected, "{selector:?}");
        }
        // no labels at all: only absence requirements match
        let absent = LabelSelector::parse("!app,x notin (y),z!=w").expect("valid");
        assert!(absent.matches(None));
        assert!(!LabelSelector::parse("app").expect("valid").matches(None));
        assert!(LabelSelector::parse("").expect("valid").is_empty());
        // a label that is not a string is absent
        let odd = labels(json!({"n": 5}));
        assert!(!LabelSelector::parse("n")
            .expect("valid")
            .matches(Some(&odd)));
        assert!(LabelSelector::parse("!n")
            .expect("valid")
            .matches(Some(&odd)));
    }

    #[test]
    fn invalid_selectors_are_errors_naming_the_selector() {
        for bad in [
            "=x",
            "app=web,",
            ",app",
            "app in ()",
            "app in (a",
            "app in a",
            "app notin",
            "app web",
            "app=(x)",
            "a/b/c",
            "-app",
            "app=-x",
            "app>x",
            "app<1.5",
            "Prefix.Upper/app",
            "in=x",
            "!",
            "a=b=c",
        ] {
            match LabelSelector::parse(bad) {
                Ok(s) => panic!("{bad:?} parsed: {s:?}"),
                Err(e) => {
                    assert_eq!(e.selector, bad);
                    assert!(e.to_string().contains(bad), "{e}");
                }
            }
        }
        assert!(LabelSelector::parse("example.com/app-name_1.x=v-1_2.3").is_ok());
        let long = "a".repeat(64);
        assert!(LabelSelector::parse(&long).is_err());
        assert!(LabelSelector::parse(&format!("k={long}")).is_err());
    }

    fn scope(kinds: &[(&str, &str)], namespaces: &[&str], selector: Option<&str>) -> LiveScope {
        LiveScope {
            kinds: kinds
                .iter()
                .map(|(av, k)| GroupVersionKind::from_api_version(av, k))
                .collect(),
            namespaces: namespaces.iter().map(|s| (*s).to_owned()).collect(),
            label_selector: selector.map(str::to_owned),
        }
    }

    fn obj(api_version: &str, kind: &str, ns: Option<&str>, name: &str, l: Value) -> Value {
        let mut meta = json!({"name": name, "labels": l});
        if let Some(ns) = ns {
            meta["namespace"] = json!(ns);
        }
        json!({"apiVersion": api_version, "kind": kind, "metadata": meta})
    }

    /// Every object of a small cluster, and which of them each scope admits.
    #[test]
    fn scopes_admit_by_kind_place_and_labels() {
        let all = [
            obj("v1", "ConfigMap", Some("a"), "cm-a", json!({"tier": "web"})),
            obj("v1", "ConfigMap", Some("b"), "cm-b", json!({})),
            obj("v1", "ConfigMap", Some("c"), "cm-c", json!({"tier": "web"})),
            obj("v1", "Namespace", None, "a", json!({"tier": "web"})),
            obj("v1", "Namespace", None, "c", json!({})),
            obj(
                "rbac.authorization.k8s.io/v1",
                "ClusterRole",
                None,
                "viewer",
                json!({"tier": "web"}),
            ),
            obj(
                "rbac.authorization.k8s.io/v1",
                "Role",
                Some("a"),
                "reader",
                json!({}),
            ),
            // a kind of the same name in another group
            obj("example.test/v1", "Namespace", None, "x", json!({})),
        ];
        let admitted = |s: &LiveScope| -> Vec<String> {
            let rule = s.admission().expect("valid scope");
            all.iter()
                .filter(|o| {
                    assert_eq!(rule.admits(o), s.admits(o), "one rule, two ways to ask");
                    rule.admits(o)
                })
                .map(|o| {
                    let m = ObjectMeta::of(o);
                    format!(
                        "{}/{}",
                        m.kind,
                        m.namespace
                            .map_or(m.name.to_owned(), |ns| format!("{ns}/{}", m.name))
                    )
                })
                .collect()
        };
        let kinds = [
            ("v1", "ConfigMap"),
            ("v1", "Namespace"),
            ("rbac.authorization.k8s.io/v1", "ClusterRole"),
        ];
        assert_eq!(
            admitted(&scope(&kinds, &[], None)),
            [
                "ConfigMap/a/cm-a",
                "ConfigMap/b/cm-b",
                "ConfigMap/c/cm-c",
                "Namespace/a",
                "Namespace/c",
                "ClusterRole/viewer"
            ]
        );
        assert_eq!(
            admitted(&scope(&kinds, &["a"], None)),
            ["ConfigMap/a/cm-a", "Namespace/a", "ClusterRole/viewer"],
            "one namespace: its objects, itself, and cluster-scoped objects"
        );
        assert_eq!(
            admitted(&scope(&kinds, &["b", "a", "b"], None)),
            [
                "ConfigMap/a/cm-a",
                "ConfigMap/b/cm-b",
                "Namespace/a",
                "ClusterRole/viewer"
            ],
            "two namespaces (one named twice); `b` has no Namespace object"
        );
        assert_eq!(
            admitted(&scope(&kinds, &[], Some("tier=web"))),
            [
                "ConfigMap/a/cm-a",
                "ConfigMap/c/cm-c",
                "Namespace/a",
                "ClusterRole/viewer"
            ]
        );
        assert_eq!(
            admitted(&scope(&kinds, &["c"], Some("!tier"))),
            ["Namespace/c"]
        );
        assert_eq!(
            admitted(&scope(&[("v1beta1", "ConfigMap")], &["a"], Some(""))),
            ["ConfigMap/a/cm-a"],
            "the version does not matter; an empty selector is none"
        );
        assert!(
            admitted(&scope(&[], &[], None)).is_empty(),
            "no kinds, nothing"
        );
        let bad = scope(&kinds, &[], Some("tier in ()"));
        assert!(bad.admission().is_err());
        assert!(
            all.iter().all(|o| !bad.admits(o)),
            "an invalid selector admits nothing"
        );
    }

    #[test]
    fn deletions_are_admitted_whatever_their_labels() {
        let s = scope(&[("v1", "ConfigMap")], &["a"], Some("tier=web"));
        let rule = s.admission().expect("valid");
        let left = RawLive::new(obj(
            "v1",
            "ConfigMap",
            Some("a"),
            "x",
            json!({"tier": "db"}),
        ));
        assert!(!rule.admits_change(&LiveChange::Applied(left.clone())));
        assert!(rule.admits_change(&LiveChange::Deleted(left)));
        let elsewhere = RawLive::new(obj(
            "v1",
            "ConfigMap",
            Some("b"),
            "x",
            json!({"tier": "web"}),
        ));
        assert!(!rule.admits_change(&LiveChange::Deleted(elsewhere)));
        assert!(rule.admits_change(&LiveChange::Restarted(LiveSnapshot::default())));
        assert!(rule.admits_change(&LiveChange::Disconnected("gone".into())));
        assert_eq!(rule.namespaces(), ["a"]);
        assert!(rule.admits_kind(&GroupKind::new("", "ConfigMap")));
        assert!(!rule.admits_kind(&GroupKind::new("", "Secret")));
        assert_eq!(rule.selector().map(LabelSelector::as_str), Some("tier=web"));
    }
}
