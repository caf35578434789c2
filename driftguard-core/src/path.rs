//! Field paths as DriftGuard prints them.
//!
//! A path is a dotted list of segments: map keys (`spec.replicas`), keys that are not plain
//! identifiers in quotes (`metadata.labels["app.kubernetes.io/name"]`), and items of lists with
//! merge keys by their key (`spec.template.spec.containers[nginx].image`,
//! `spec.ports[80/TCP].targetPort`). Lists without merge keys are compared whole and never
//! indexed.

/// Appends one map key to a path buffer.
pub fn push_key(buf: &mut String, key: &str) {
    if is_item(key) {
        // keyed list items are stored as `[key]` map keys and printed as they are
        buf.push_str(key);
        return;
    }
    let plain = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if plain {
        if !buf.is_empty() {
            buf.push('.');
        }
        buf.push_str(key);
    } else {
        buf.push_str("[\"");
        for c in key.chars() {
            if c == '"' || c == '\\' {
                buf.push('\\');
            }
            buf.push(c);
        }
        buf.push_str("\"]");
    }
}

/// The label key a path names (`metadata.labels.app`, `metadata.labels["app.kubernetes.io/name"]`),
/// if it names one.
pub fn label_key(path: &str) -> Option<String> {
    // read with the one path parser, not a second one
    use crate::remediate::{parse_path, Segment};
    match parse_path(path).as_slice() {
        [Segment::Key(m), Segment::Key(l), Segment::Key(k)] if m == "metadata" && l == "labels" => {
            Some(k.clone())
        }
        _ => None,
    }
}

/// Whether a normalized map key stands for an item of a keyed list (`[nginx]`).
pub fn is_item(key: &str) -> bool {
    key.len() >= 2 && key.starts_with('[') && key.ends_with(']') && !key.starts_with("[\"")
}

/// The map key under which a keyed list item is stored in the normalized view.
pub fn item_key(key: &str) -> String {
    let mut s = String::with_capacity(key.len() + 2);
    s.push('[');
    s.push_str(key);
    s.push(']');
    s
}

/// Builds a path from plain segments (test and rule helper).
pub fn join(segments: &[&str]) -> String {
    let mut buf = String::new();
    for s in segments {
        push_key(&mut buf, s);
    }
    buf
}

/// Whether `path` is `prefix` or lies below it.
pub fn is_within(path: &str, prefix: &str) -> bool {
    path == prefix
        || (path.starts_with(prefix)
            && matches!(path.as_bytes().get(prefix.len()), Some(b'.') | Some(b'[')))
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

    #[test]
    fn formats_paths() {
        assert_eq!(join(&["spec", "replicas"]), "spec.replicas");
        assert_eq!(
            join(&["metadata", "labels", "app.kubernetes.io/name"]),
            "metadata.labels[\"app.kubernetes.io/name\"]"
        );
        assert_eq!(
            join(&["spec", "containers", "[nginx]", "image"]),
            "spec.containers[nginx].image"
        );
    }

    #[test]
    fn label_keys_read_back() {
        for key in ["app", "app.kubernetes.io/instance", "we\"ird\\"] {
            assert_eq!(
                label_key(&join(&["metadata", "labels", key])).as_deref(),
                Some(key)
            );
        }
        assert_eq!(label_key("metadata.annotations.app"), None);
        assert_eq!(label_key("metadata.labelsx"), None);
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
        assert!(is_within("spec.containers[a].image", "spec.containers"));
        assert!(is_within("spec.replicas", "spec.replicas"));
        assert!(!is_within("spec.replicasX", "spec.replicas"));
        assert!(glob_match("spec.*.image", "spec.containers[a].image"));
        assert!(glob_match("prod-*", "prod-eu"));
        assert!(!glob_match("prod-*", "dev"));
    }
}
