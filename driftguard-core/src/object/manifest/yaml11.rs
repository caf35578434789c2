//! Plain scalars as kubectl and Helm read them: YAML 1.1.
//!
//! kubectl and Helm turn YAML into JSON with `sigs.k8s.io/yaml`, whose parser (a fork of
//! go-yaml v2) resolves unquoted scalars by YAML 1.1: `0755` is the octal 493 (a volume's
//! `defaultMode`), `yes`, `on`, `y` are `true` and `no`, `off`, `n` are `false`, `1_000` is
//! 1000, `089` is the float 89. The YAML 1.2 reader DriftGuard parses with takes them all as
//! strings. [`resolve`] reads such a string again as YAML 1.1 would have read the plain
//! scalar (go-yaml v2's `resolve`: `strconv.ParseInt(s, 0, 64)` with `_` removed, then its
//! float pattern, then the bool words), and [`apply`] does it for every string of a document
//! that appears there unquoted.
//!
//! Which strings were unquoted is read from the document's text ([`scalars`]): the values after
//! `key:` and `-` and inside flow collections. A string that appears both quoted and unquoted
//! in one document is left as it is (the parsed value no longer says which it was); a tagged
//! one (`!!str 0755`) counts as quoted.

use std::collections::HashSet;

use serde_json::{Number, Value};

/// The YAML 1.1 reading of an unquoted scalar that YAML 1.2 reads as the string `s`, when it
/// differs: a bool or a number.
pub fn resolve(s: &str) -> Option<Value> {
    match s {
        "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => return Some(Value::Bool(true)),
        "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => return Some(Value::Bool(false)),
        _ => {}
    }
    let first = *s.as_bytes().first()?;
    if !(first.is_ascii_digit() || matches!(first, b'+' | b'-' | b'.')) {
        return None;
    }
    let plain = s.replace('_', "");
    if let Some(i) = go_parse_int(&plain) {
        return Some(Value::from(i));
    }
    if yaml_style_float(&plain) {
        let f: f64 = plain.parse().ok()?;
        return Number::from_f64(f).map(Value::Number);
    }
    None
}

/// Go's `strconv.ParseInt(s, 0, 64)`: an optional sign, then `0x`, `0o`, `0b` or a leading
/// `0` (octal) or decimal digits.
fn go_parse_int(s: &str) -> Option<i64> {
    let (negative, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    if digits.is_empty() || !digits.bytes().all(|b| (b as char).is_digit(radix)) {
        return None;
    }
    let magnitude = i128::from_str_radix(digits, radix).ok()?;
    i64::try_from(if negative { -magnitude } else { magnitude }).ok()
}

/// go-yaml v2's `yamlStyleFloat`: `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn yaml_style_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'-' | b'+')));
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            digits(&mut i);
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'-' | b'+')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// The scalars of a YAML document's text that YAML 1.1 reads otherwise than YAML 1.2, split by
/// whether they appear unquoted (`plain`) or quoted or tagged (`quoted`).
#[derive(Debug, Default)]
pub struct Scalars {
    /// Seen unquoted.
    pub plain: HashSet<String>,
    /// Seen quoted or tagged.
    pub quoted: HashSet<String>,
}

/// Reads the values of `text` (after `key:`, after `-`, inside `{...}` and `[...]`).
pub fn scalars(text: &str) -> Scalars {
    let mut out = Scalars::default();
    for line in text.lines() {
        let mut rest = line.trim_start();
        // list items, `- - x` included
        while let Some(r) = rest.strip_prefix("- ").or_else(|| rest.strip_prefix("-\t")) {
            rest = r.trim_start();
        }
        let value = match find_mapping_colon(rest) {
            Some(i) => &rest[i + 1..],
            None => rest,
        };
        take_value(value, &mut out);
    }
    out
}

/// The position of the `:` that ends a plain or quoted key (`key: value`, `"a:b": value`).
fn find_mapping_colon(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut quote: Option<u8> = None;
    for (i, &c) in b.iter().enumerate() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if (c == b'"' || c == b'\'') && i == 0 => quote = Some(c),
            None if c == b'#' && (i == 0 || b[i - 1] == b' ') => return None,
            None if c == b':' && matches!(b.get(i + 1), None | Some(b' ' | b'\t')) => {
                return Some(i)
            }
            None if c == b'{' || c == b'[' => return None,
            None => {}
        }
    }
    None
}

fn take_value(value: &str, out: &mut Scalars) {
    let v = strip_comment(value).trim();
    if v.is_empty() {
        return;
    }
    let v = match v.strip_prefix('&') {
        // an anchor before the value
        Some(a) => a
            .split_once([' ', '\t'])
            .map_or("", |(_, r)| r.trim_start()),
        None => v,
    };
    match v.as_bytes().first() {
        Some(b'{' | b'[') => {
            for part in v.split([',', '{', '}', '[', ']']) {
                let part = part.trim();
                let item = find_mapping_colon(part).map_or(part, |i| &part[i + 1..]);
                take_scalar(item.trim(), out);
            }
        }
        _ => take_scalar(v, out),
    }
}

fn take_scalar(v: &str, out: &mut Scalars) {
    match v.as_bytes().first() {
        None | Some(b'|' | b'>' | b'*') => {}
        Some(b'"' | b'\'') => {
            let inner = v.get(1..v.len().saturating_sub(1)).unwrap_or("");
            if resolve(inner).is_some() {
                out.quoted.insert(inner.to_owned());
            }
        }
        Some(b'!') => {
            if let Some((_, rest)) = v.split_once([' ', '\t']) {
                let rest = rest.trim().trim_matches(['"', '\'']);
                if resolve(rest).is_some() {
                    out.quoted.insert(rest.to_owned());
                }
            }
        }
        Some(_) => {
            if resolve(v).is_some() {
                out.plain.insert(v.to_owned());
            }
        }
    }
}

/// `v` without a trailing ` # comment` (outside quotes).
fn strip_comment(v: &str) -> &str {
    let b = v.as_bytes();
    let mut quote: Option<u8> = None;
    for (i, &c) in b.iter().enumerate() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == b'"' || c == b'\'' => quote = Some(c),
            None if c == b'#' && (i == 0 || matches!(b[i - 1], b' ' | b'\t')) => return &v[..i],
            None => {}
        }
    }
    v
}

/// Reads every string value of `value` that `text` holds only unquoted as YAML 1.1 does (map
/// keys stay strings, as Kubernetes objects need them).
pub fn apply(value: &mut Value, text: &str) {
    let found = scalars(text);
    if found.plain.is_empty() {
        return;
    }
    fn walk(v: &mut Value, s: &Scalars) {
        match v {
            Value::String(text) if s.plain.contains(text) && !s.quoted.contains(text) => {
                if let Some(r) = resolve(text) {
                    *v = r;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|i| walk(i, s)),
            Value::Object(map) => map.values_mut().for_each(|i| walk(i, s)),
            _ => {}
        }
    }
    walk(value, &found);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plain_scalars_read_as_go_yaml_v2_does() {
        for (s, want) in [
            ("0755", json!(493)),
            ("0644", json!(420)),
            ("-010", json!(-8)),
            ("1_000", json!(1000)),
            ("0o17", json!(15)),
            ("0b101", json!(5)),
            ("089", json!(89.0)),
            ("yes", json!(true)),
            ("On", json!(true)),
            ("y", json!(true)),
            ("NO", json!(false)),
            ("off", json!(false)),
        ] {
            assert_eq!(resolve(s), Some(want), "{s}");
        }
        for s in [
            "web",
            "1.2.3",
            "0x",
            "",
            "yesterday",
            "0.0.0.0",
            "v1",
            "1e",
            "nginx:1.25",
        ] {
            assert_eq!(resolve(s), None, "{s}");
        }
    }

    #[test]
    fn only_strings_unquoted_in_the_text_change() {
        let text = "spec:\n  volumes:\n    - name: s\n      secret: {secretName: s, defaultMode: 0755}\n    - name: c\n      configMap:\n        name: c\n        defaultMode: 0644 # rw-r--r--\n  hostNetwork: no\nmetadata:\n  annotations:\n    mode: \"0600\"\n    tag: !!str 0700\n";
        let mut v = json!({"spec": {"volumes": [
            {"name": "s", "secret": {"secretName": "s", "defaultMode": "0755"}},
            {"name": "c", "configMap": {"name": "c", "defaultMode": "0644"}}],
            "hostNetwork": "no"},
            "metadata": {"annotations": {"mode": "0600", "tag": "0700"}}});
        apply(&mut v, text);
        assert_eq!(v["spec"]["volumes"][0]["secret"]["defaultMode"], json!(493));
        assert_eq!(
            v["spec"]["volumes"][1]["configMap"]["defaultMode"],
            json!(420)
        );
        assert_eq!(v["spec"]["hostNetwork"], json!(false));
        assert_eq!(v["metadata"]["annotations"]["mode"], json!("0600"));
        assert_eq!(v["metadata"]["annotations"]["tag"], json!("0700"));
    }

    #[test]
    fn a_scalar_seen_quoted_and_unquoted_is_left_alone() {
        let text = "a: 0755\nb: '0755'\n";
        let mut v = json!({"a": "0755", "b": "0755"});
        apply(&mut v, text);
        assert_eq!(v, json!({"a": "0755", "b": "0755"}));
    }
}
