//! The one redaction rule for Secret objects shown to people: which parts of a Secret hold its
//! value, how a Secret (or any part of one) is redacted before it is rendered into a preview, a
//! plan, an event or a log, and what is said instead of an API server's message about a Secret.
//!
//! A Secret's value lives in `data`, `stringData` and the
//! `kubectl.kubernetes.io/last-applied-configuration` annotation (which holds a copy of the
//! applied manifest, `data` included). Normalization hashes the same parts
//! ([`crate::normalize`]); everything that shows a Secret redacts them with [`redact`] or
//! [`redact_at`], so that no adapter decides on its own what may be shown.

use serde_json::{Map, Value};

use crate::compare::REDACTED;

/// The annotation in which `kubectl apply` keeps a copy of the applied manifest.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Whether `group`/`kind` names the core Secret.
pub fn is_secret(group: &str, kind: &str) -> bool {
    group.is_empty() && kind == "Secret"
}

/// Whether a raw object (or an apply body) is a core Secret: `apiVersion: v1`, `kind: Secret`.
pub fn is_secret_object(obj: &Value) -> bool {
    obj.get("kind").and_then(Value::as_str) == Some("Secret")
        && obj
            .get("apiVersion")
            .and_then(Value::as_str)
            .is_none_or(|v| !v.contains('/'))
}

/// Whether the JSON pointer `pointer` (`/data/password`) of a Secret lies inside its value: in
/// `data`, `stringData`, or the last-applied annotation.
pub fn holds_value(pointer: &str) -> bool {
    let last_applied = format!("/metadata/annotations/{}", LAST_APPLIED.replace('/', "~1"));
    ["/data/", "/stringData/"]
        .iter()
        .any(|p| pointer.starts_with(p))
        || pointer == last_applied
}

/// Replaces every value of a Secret object in place: each key of `data` and `stringData` keeps
/// its name and shows [`REDACTED`], and so does the last-applied annotation. Other fields
/// (metadata, `type`) are left as they are.
pub fn redact(obj: &mut Value) {
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    for field in ["data", "stringData"] {
        match map.get_mut(field) {
            Some(Value::Object(values)) => {
                for v in values.values_mut() {
                    *v = Value::String(REDACTED.into());
                }
            }
            Some(Value::Null) | None => {}
            Some(other) => *other = Value::String(REDACTED.into()),
        }
    }
    if let Some(Value::Object(annotations)) = map
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
    {
        if let Some(v) = annotations.get_mut(LAST_APPLIED) {
            *v = Value::String(REDACTED.into());
        }
    }
}

/// `value`, found at the JSON pointer `pointer` of a Secret (`""` for the whole object), with
/// the Secret's value redacted as [`redact`] does it for the whole object: a leaf inside `data`
/// becomes [`REDACTED`], `/data` keeps its keys, the whole object keeps its metadata.
pub fn redact_at(pointer: &str, value: &Value) -> Value {
    if holds_value(pointer) {
        return Value::String(REDACTED.into());
    }
    // place the value where it was in an object, redact that, and take it out again
    let tokens: Vec<String> = pointer
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    let mut whole = value.clone();
    for t in tokens.iter().rev() {
        let mut m = Map::new();
        m.insert(t.clone(), whole);
        whole = Value::Object(m);
    }
    redact(&mut whole);
    let mut cur = whole;
    for t in &tokens {
        cur = match cur {
            Value::Object(mut m) => m.remove(t).unwrap_or(Value::Null),
            other => other,
        };
    }
    cur
}

/// What a message shows in place of a known secret value (a token a program echoed, a value
/// taken from a Secret).
pub const REDACTED_TEXT: &str = "<redacted>";

/// `text` with every occurrence of each of `secrets` replaced by [`REDACTED_TEXT`], the
/// longest first (one may hold another); empty values are ignored. For messages from other
/// programs and tools that may quote a value DriftGuard knows to be secret.
pub fn redact_values(text: &str, secrets: &[String]) -> String {
    let mut sorted: Vec<&String> = secrets.iter().filter(|s| !s.is_empty()).collect();
    sorted.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = text.to_owned();
    for s in sorted {
        out = out.replace(s.as_str(), REDACTED_TEXT);
    }
    out
}

/// What is said instead of an API server's (or another program's) message about a Secret: such
/// a message may quote the value it refused (`.stringData.pin: expected string, got
/// &value.valueUnstructured{Value:73191184}`), so it is never passed on. The answer names the
/// fields the message mentions under `data` or `stringData` (their key names only) and the
/// HTTP status, nothing else.
pub fn api_message(status: u16, message: &str) -> String {
    let mut fields: Vec<String> = Vec::new();
    for prefix in ["stringData", "data"] {
        let mut rest = message;
        while let Some(at) = rest.find(prefix) {
            let before = rest[..at].chars().next_back();
            let after = &rest[at + prefix.len()..];
            rest = after;
            // a whole word: `.stringData.pin`, `data[pin]`, not `metadata`
            if before.is_some_and(|c| c.is_ascii_alphanumeric()) {
                continue;
            }
            let key: String = match after.chars().next() {
                Some('.') | Some('[') => after[1..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                    .take(253)
                    .collect(),
                _ => String::new(),
            };
            let key = key.trim_end_matches('.');
            let field = if key.is_empty() {
                prefix.to_owned()
            } else {
                format!("{prefix}.{key}")
            };
            if !fields.contains(&field) {
                fields.push(field);
            }
        }
    }
    let code = if status == 0 {
        String::new()
    } else {
        format!("HTTP {status}: ")
    };
    if fields.is_empty() {
        format!("{code}the API server refused the Secret (its message is not shown, since it may hold a Secret value)")
    } else {
        format!(
            "{code}the API server refused the Secret's field {} (its message is not shown, since it may hold a Secret value)",
            fields.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn known_values_are_redacted_longest_first() {
        let secrets = [
            "s3cr3t".to_owned(),
            String::new(),
            "s3cr3t-and-more".to_owned(),
        ];
        assert_eq!(
            redact_values("url https://u:s3cr3t-and-more@h and s3cr3t", &secrets),
            "url https://u:<redacted>@h and <redacted>"
        );
        assert_eq!(redact_values("nothing here", &secrets), "nothing here");
    }

    fn secret() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "db", "namespace": "shop", "labels": {"app": "db"},
                "annotations": {LAST_APPLIED: "{\"data\":{\"password\":\"aHVudGVyMg==\"}}", "team": "a"}},
            "type": "Opaque",
            "data": {"password": "aHVudGVyMg=="},
            "stringData": {"pin": 73191184}
        })
    }

    #[test]
    fn a_whole_secret_keeps_its_keys_and_metadata_and_loses_its_values() {
        let mut s = secret();
        redact(&mut s);
        let text = s.to_string();
        assert!(!text.contains("aHVudGVyMg"), "{text}");
        assert!(!text.contains("73191184"), "{text}");
        assert_eq!(s["data"]["password"], json!(REDACTED));
        assert_eq!(s["stringData"]["pin"], json!(REDACTED));
        assert_eq!(s["metadata"]["annotations"][LAST_APPLIED], json!(REDACTED));
        assert_eq!(s["metadata"]["annotations"]["team"], json!("a"));
        assert_eq!(s["metadata"]["labels"]["app"], json!("db"));
        assert_eq!(s["type"], json!("Opaque"));
    }

    #[test]
    fn any_part_of_a_secret_is_redacted_where_it_was() {
        let s = secret();
        let whole = redact_at("", &s);
        assert!(!whole.to_string().contains("aHVudGVyMg"));
        assert_eq!(whole["metadata"]["name"], json!("db"));
        assert_eq!(
            redact_at("/data", &s["data"]),
            json!({"password": REDACTED})
        );
        assert_eq!(redact_at("/data/password", &json!("x")), json!(REDACTED));
        let meta = redact_at("/metadata", &s["metadata"]);
        assert_eq!(meta["annotations"][LAST_APPLIED], json!(REDACTED));
        assert_eq!(meta["annotations"]["team"], json!("a"));
        let ann = redact_at("/metadata/annotations", &s["metadata"]["annotations"]);
        assert_eq!(ann[LAST_APPLIED], json!(REDACTED));
        assert_eq!(redact_at("/type", &json!("Opaque")), json!("Opaque"));
        assert_eq!(
            redact_at(
                "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration",
                &json!("{}")
            ),
            json!(REDACTED)
        );
    }

    #[test]
    fn api_messages_about_a_secret_name_the_field_only() {
        let m = api_message(
            409,
            "Secret \"db\" is invalid: .stringData.pin: expected string, got &value.valueUnstructured{Value:73191184}",
        );
        assert!(!m.contains("73191184"), "{m}");
        assert!(m.contains("stringData.pin"), "{m}");
        assert!(m.starts_with("HTTP 409"), "{m}");
        let m = api_message(422, "data[token]: Invalid value: \"hunter2\": a valid config key must consist of alphanumeric characters");
        assert!(m.contains("data.token") && !m.contains("hunter2"), "{m}");
        let m = api_message(422, "metadata.name: Invalid value: \"s3cr3t\"");
        assert!(!m.contains("s3cr3t") && !m.contains("metadata"), "{m}");
    }

    #[test]
    fn only_the_core_secret_is_a_secret() {
        assert!(is_secret("", "Secret"));
        assert!(!is_secret("bitnami.com", "Secret"));
        assert!(is_secret_object(
            &json!({"apiVersion": "v1", "kind": "Secret"})
        ));
        assert!(!is_secret_object(
            &json!({"apiVersion": "bitnami.com/v1alpha1", "kind": "Secret"})
        ));
        assert!(holds_value("/stringData/x"));
        assert!(!holds_value("/metadata/name"));
    }
}
