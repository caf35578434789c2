//! Argo CD's `jqPathExpressions` as JSON pointers, for the expressions that are only a path:
//! `.spec.replicas`, `.metadata.annotations["example.com/x"]`, `.spec.containers[0].image`,
//! `.spec.containers[].env` (every item: a `*` segment), `."key"`, with `?` after a step.
//! Anything else (`select(...)`, pipes, `..`, slices, functions) has no pointer: the caller
//! names the expression as a problem. A jq engine is not carried for the rest.

use driftguard_core::ignore::JsonPointer;

/// The pointer an expression designates, or why there is none.
pub(super) fn to_pointer(expression: &str) -> Result<JsonPointer, String> {
    let segments = segments(expression.trim())?;
    if segments.is_empty() {
        return Err("designates the whole object".into());
    }
    let pointer: String = segments
        .iter()
        .map(|s| format!("/{}", s.replace('~', "~0").replace('/', "~1")))
        .collect();
    JsonPointer::parse(&pointer).map_err(|e| e.to_string())
}

/// `*` for every item (`[]`), else a key or an index.
fn segments(text: &str) -> Result<Vec<String>, String> {
    const NOT_A_PATH: &str = "is not a plain path (only `.key`, `.\"key\"`, `[\"key\"]`, `[N]` and `[]` steps are translated)";
    let b = text.as_bytes();
    if b.first() != Some(&b'.') {
        return Err(NOT_A_PATH.into());
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'.' => {
                i += 1;
                match b.get(i) {
                    None => {}
                    Some(b'"') => {
                        let (key, next) = quoted(text, i)?;
                        out.push(key);
                        i = next;
                    }
                    // `.[...]`: a bracket step follows
                    Some(b'[') => {}
                    Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {
                        let start = i;
                        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                            i += 1;
                        }
                        out.push(text[start..i].to_owned());
                    }
                    Some(_) => return Err(NOT_A_PATH.into()),
                }
            }
            b'[' => {
                i += 1;
                match b.get(i) {
                    Some(b']') => {
                        out.push("*".into());
                        i += 1;
                    }
                    Some(b'"') => {
                        let (key, next) = quoted(text, i)?;
                        if b.get(next) != Some(&b']') {
                            return Err(NOT_A_PATH.into());
                        }
                        out.push(key);
                        i = next + 1;
                    }
                    Some(c) if c.is_ascii_digit() => {
                        let start = i;
                        while i < b.len() && b[i].is_ascii_digit() {
                            i += 1;
                        }
                        if b.get(i) != Some(&b']') {
                            return Err(NOT_A_PATH.into());
                        }
                        out.push(text[start..i].to_owned());
                        i += 1;
                    }
                    _ => return Err(NOT_A_PATH.into()),
                }
            }
            // `.a?`, `.a[]?`: errors suppressed, the same path for a removal
            b'?' if i > 0 => i += 1,
            _ => return Err(NOT_A_PATH.into()),
        }
        if b.get(i).is_some_and(|c| !matches!(c, b'.' | b'[' | b'?')) {
            return Err(NOT_A_PATH.into());
        }
    }
    Ok(out)
}

/// The JSON string starting at `start` (a `"`), and the index after it.
fn quoted(text: &str, start: usize) -> Result<(String, usize), String> {
    let b = text.as_bytes();
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => {
                let key: String = serde_json::from_str(&text[start..=i])
                    .map_err(|_| "holds a string jq reads differently".to_owned())?;
                return Ok((key, i + 1));
            }
            _ => i += 1,
        }
    }
    Err("has an unterminated string".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pointer(expression: &str) -> String {
        String::from(to_pointer(expression).expect("a plain path"))
    }

    #[test]
    fn plain_paths_become_pointers() {
        assert_eq!(pointer(".spec.replicas"), "/spec/replicas");
        assert_eq!(
            pointer(".metadata.annotations[\"example.com/restartedAt\"]"),
            "/metadata/annotations/example.com~1restartedAt"
        );
        assert_eq!(
            pointer(".metadata.annotations.\"a~b\""),
            "/metadata/annotations/a~0b"
        );
        assert_eq!(
            pointer(".spec.template.spec.containers[0].image"),
            "/spec/template/spec/containers/0/image"
        );
        assert_eq!(
            pointer(".spec.template.spec.containers[].env?"),
            "/spec/template/spec/containers/*/env"
        );
        assert_eq!(pointer(".data.[\"x\"]"), "/data/x");
        assert_eq!(pointer("  .spec.replicas  "), "/spec/replicas");
    }

    #[test]
    fn anything_else_is_refused() {
        for e in [
            ".spec.template.spec.initContainers[] | select(.name == \"istio-init\")",
            ".",
            "..",
            ".spec.containers[-1]",
            ".spec.containers[1:2]",
            "spec.replicas",
            ".metadata.labels[\"x\"",
            ".a.b | del(.c)",
            ".a[\"x\"].b c",
        ] {
            assert!(to_pointer(e).is_err(), "{e}");
        }
    }
}
