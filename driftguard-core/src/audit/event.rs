//! The audit events a Kubernetes API server writes (`audit.k8s.io/v1` `Event`, and the
//! `EventList` its webhook backend posts): only the metadata DriftGuard needs.
//!
//! No type here has a field for `requestObject` or `responseObject`: the parser skips them
//! (serde ignores unknown fields without building them), so a request body, which for a
//! Secret holds its values, is never even held, whatever level the API server's audit policy
//! logs at.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The audit API versions read (`v1beta1` events carry the same fields).
pub const AUDIT_API_VERSIONS: &[&str] = &["audit.k8s.io/v1", "audit.k8s.io/v1beta1"];

/// The verbs of a write that names its object.
pub const WRITE_VERBS: &[&str] = &["create", "update", "patch", "delete"];

/// One audit event, metadata only.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    /// `audit.k8s.io/v1` (absent in some lists' items).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    /// `Event` (absent in some lists' items).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// The request's unique id: the same request at several stages shares it.
    #[serde(default, rename = "auditID")]
    pub audit_id: String,
    /// `RequestReceived`, `ResponseStarted`, `ResponseComplete` or `Panic`.
    #[serde(default)]
    pub stage: String,
    /// The request's path and query (`/apis/apps/v1/namespaces/shop/deployments/web?fieldManager=kubectl-edit`).
    #[serde(default, rename = "requestURI")]
    pub request_uri: String,
    /// `create`, `update`, `patch`, `delete`, `get`, ...
    #[serde(default)]
    pub verb: String,
    /// Who sent the request (as authenticated).
    #[serde(default)]
    pub user: UserInfo,
    /// The user it impersonated, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impersonated_user: Option<UserInfo>,
    /// Where the request came from (the client first, then proxies).
    #[serde(default, rename = "sourceIPs")]
    pub source_ips: Vec<String>,
    /// The client's user agent (`kubectl/v1.20.2 (linux/amd64) kubernetes/faecb19`).
    #[serde(default)]
    pub user_agent: String,
    /// The object the request was about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_ref: Option<ObjectReference>,
    /// The answer's status (only its code is read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_status: Option<ResponseStatus>,
    /// When the API server received the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_received_timestamp: Option<DateTime<Utc>>,
    /// When the request reached this stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage_timestamp: Option<DateTime<Utc>>,
}

/// An authenticated user.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// The user name (`alice`, `system:serviceaccount:ci:deployer`, `system:kube-controller-manager`).
    #[serde(default)]
    pub username: String,
    /// The user's groups.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// The object of a request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReference {
    /// The resource (plural, lower-case: `deployments`).
    #[serde(default)]
    pub resource: String,
    /// The namespace, empty for cluster-scoped objects.
    #[serde(default)]
    pub namespace: String,
    /// The name (filled in for a create from the request's object).
    #[serde(default)]
    pub name: String,
    /// The API group, empty for the core group.
    #[serde(default)]
    pub api_group: String,
    /// The API version.
    #[serde(default)]
    pub api_version: String,
    /// The subresource (`scale`, `status`), empty for the object itself.
    #[serde(default)]
    pub subresource: String,
}

/// The status of an answer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseStatus {
    /// The HTTP status code.
    #[serde(default)]
    pub code: Option<u16>,
}

/// A list of audit events, as the API server's webhook backend posts it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventList {
    /// `audit.k8s.io/v1`.
    #[serde(default)]
    pub api_version: String,
    /// `EventList`.
    #[serde(default)]
    pub kind: String,
    /// The events.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub items: Vec<AuditEvent>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<AuditEvent>, D::Error> {
    Ok(Option::<Vec<AuditEvent>>::deserialize(d)?.unwrap_or_default())
}

/// Why audit events could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Not JSON of the expected shape.
    #[error("not an audit event {what}")]
    Malformed {
        /// `list` or `line`.
        what: &'static str,
        /// The parser's complaint (with line and column).
        #[source]
        source: serde_json::Error,
    },
    /// JSON, but not an `EventList` (or a line that is not an `Event`).
    #[error("expected kind {expected} of audit.k8s.io/v1, found kind `{found}`")]
    WrongKind {
        /// `EventList` or `Event`.
        expected: &'static str,
        /// What the document says it is.
        found: String,
    },
    /// An audit API version this program does not read.
    #[error("unsupported apiVersion `{found}` (expected audit.k8s.io/v1)")]
    WrongVersion {
        /// The version found.
        found: String,
    },
}

fn check_version(v: &str) -> Result<(), AuditError> {
    if v.is_empty() || AUDIT_API_VERSIONS.contains(&v) {
        Ok(())
    } else {
        Err(AuditError::WrongVersion {
            found: v.to_owned(),
        })
    }
}

/// Reads an `EventList` (the body the webhook backend posts).
pub fn parse_event_list(body: &[u8]) -> Result<Vec<AuditEvent>, AuditError> {
    let list: EventList = serde_json::from_slice(body).map_err(|source| AuditError::Malformed {
        what: "list",
        source,
    })?;
    if list.kind != "EventList" {
        return Err(AuditError::WrongKind {
            expected: "EventList",
            found: list.kind,
        });
    }
    check_version(&list.api_version)?;
    for e in &list.items {
        check_version(&e.api_version)?;
    }
    Ok(list.items)
}

/// Reads one line of an audit log file (`--audit-log-path`, JSON format): one `Event`.
pub fn parse_event_line(line: &[u8]) -> Result<AuditEvent, AuditError> {
    let e: AuditEvent = serde_json::from_slice(line).map_err(|source| AuditError::Malformed {
        what: "line",
        source,
    })?;
    if !e.kind.is_empty() && e.kind != "Event" {
        return Err(AuditError::WrongKind {
            expected: "Event",
            found: e.kind,
        });
    }
    check_version(&e.api_version)?;
    Ok(e)
}

impl AuditEvent {
    /// When the request was made: when the API server received it (else the stage's time).
    pub fn time(&self) -> Option<DateTime<Utc>> {
        self.request_received_timestamp.or(self.stage_timestamp)
    }

    /// Whether the request succeeded (a 2xx answer; an event without a status is taken as
    /// complete only at its last stage).
    pub fn succeeded(&self) -> bool {
        match self.response_status.as_ref().and_then(|s| s.code) {
            Some(code) => (200..300).contains(&code),
            None => false,
        }
    }

    /// A query parameter of the request URI, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        let (_, query) = self.request_uri.split_once('?')?;
        query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k) == name).then(|| percent_decode(v))
        })
    }

    /// Whether the request was a dry run (`dryRun=All`): it changed nothing.
    pub fn dry_run(&self) -> bool {
        self.query_param("dryRun").is_some_and(|v| !v.is_empty())
    }

    /// The field manager the API server recorded the write under: the request's
    /// `fieldManager` parameter, else what the server derives from the user agent (the part
    /// before the first `/`).
    pub fn field_manager(&self) -> String {
        match self.query_param("fieldManager").filter(|m| !m.is_empty()) {
            Some(m) => m,
            None => user_agent_product(&self.user_agent).to_owned(),
        }
    }

    /// Whether this event is a completed, successful, real write that names its object: what
    /// DriftGuard keeps. Reads, failed or dry-run writes, writes of collections and earlier
    /// stages of a request are not.
    pub fn is_write(&self) -> bool {
        WRITE_VERBS.contains(&self.verb.as_str())
            && (self.stage.is_empty() || self.stage == "ResponseComplete")
            && self.succeeded()
            && self.time().is_some()
            && self
                .object_ref
                .as_ref()
                .is_some_and(|o| !o.resource.is_empty() && !o.name.is_empty())
            && !self.dry_run()
    }
}

/// The product part of a user agent (`kubectl` of `kubectl/v1.20.2 (linux/amd64) ...`), which
/// the API server takes as the field manager of a request that names none.
pub fn user_agent_product(user_agent: &str) -> &str {
    user_agent.split('/').next().unwrap_or("").trim()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An event as a 1.20 API server logs a `kubectl edit` (at RequestResponse level, to show
    /// that the bodies are skipped).
    pub(crate) const EDIT: &str = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"RequestResponse","auditID":"0d3e","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/shop/secrets/db?fieldManager=kubectl-edit","verb":"patch","user":{"username":"alice","groups":["dev","system:authenticated"]},"sourceIPs":["10.0.0.7","127.0.0.1"],"userAgent":"kubectl/v1.20.2 (linux/amd64) kubernetes/faecb19","objectRef":{"resource":"secrets","namespace":"shop","name":"db","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":200},"requestObject":{"data":{"password":"c2VjcmV0"}},"responseObject":{"kind":"Secret","data":{"password":"c2VjcmV0"}},"requestReceivedTimestamp":"2024-05-01T12:03:04.123456Z","stageTimestamp":"2024-05-01T12:03:04.140000Z","annotations":{"authorization.k8s.io/decision":"allow"}}"#;

    #[test]
    fn reads_only_metadata() {
        let e = parse_event_line(EDIT.as_bytes()).expect("an event");
        assert_eq!(e.audit_id, "0d3e");
        assert_eq!(e.user.username, "alice");
        assert_eq!(e.field_manager(), "kubectl-edit");
        assert!(e.is_write());
        let back = serde_json::to_string(&e).expect("serializes");
        assert!(!back.contains("c2VjcmV0"), "no body is kept: {back}");
        assert!(!back.contains("password"), "no body is kept: {back}");
    }

    #[test]
    fn lists_and_their_errors() {
        let list = format!(
            r#"{{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{{}},"items":[{EDIT}]}}"#
        );
        assert_eq!(parse_event_list(list.as_bytes()).expect("a list").len(), 1);
        let empty = r#"{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":null}"#;
        assert!(parse_event_list(empty.as_bytes())
            .expect("empty")
            .is_empty());
        let e = parse_event_list(b"{not json").expect_err("malformed");
        let text = crate::error::chain(&e);
        assert!(text.starts_with("not an audit event list: "), "{text}");
        assert!(text.contains("line 1 column"), "{text}");
        let e = parse_event_list(br#"{"kind":"Pod","apiVersion":"v1"}"#).expect_err("a pod");
        assert_eq!(
            e.to_string(),
            "expected kind EventList of audit.k8s.io/v1, found kind `Pod`"
        );
        let e = parse_event_list(br#"{"kind":"EventList","apiVersion":"audit.k8s.io/v2"}"#)
            .expect_err("unknown version");
        assert!(e.to_string().contains("audit.k8s.io/v2"), "{e}");
        let e = parse_event_list(br#"[1, 2]"#).expect_err("not an object");
        assert!(matches!(e, AuditError::Malformed { .. }), "{e:?}");
    }

    #[test]
    fn what_counts_as_a_write() {
        let base = parse_event_line(EDIT.as_bytes()).expect("an event");
        type Case<'a> = (&'a str, Box<dyn Fn(&mut AuditEvent)>, bool);
        let cases: Vec<Case> = vec![
            ("as is", Box::new(|_| {}), true),
            ("a read", Box::new(|e| e.verb = "get".into()), false),
            (
                "refused",
                Box::new(|e| e.response_status = Some(ResponseStatus { code: Some(403) })),
                false,
            ),
            ("no status", Box::new(|e| e.response_status = None), false),
            (
                "an earlier stage",
                Box::new(|e| e.stage = "RequestReceived".into()),
                false,
            ),
            (
                "a collection",
                Box::new(|e| e.object_ref.as_mut().expect("ref").name.clear()),
                false,
            ),
            (
                "a dry run",
                Box::new(|e| e.request_uri.push_str("&dryRun=All")),
                false,
            ),
            (
                "no time",
                Box::new(|e| {
                    e.request_received_timestamp = None;
                    e.stage_timestamp = None;
                }),
                false,
            ),
            ("a create", Box::new(|e| e.verb = "create".into()), true),
            ("a delete", Box::new(|e| e.verb = "delete".into()), true),
        ];
        for (what, change, want) in cases {
            let mut e = base.clone();
            change(&mut e);
            assert_eq!(e.is_write(), want, "{what}");
        }
    }

    #[test]
    fn field_managers() {
        let mut e = AuditEvent {
            user_agent: "kubectl/v1.20.2 (linux/amd64) kubernetes/faecb19".into(),
            request_uri: "/apis/apps/v1/namespaces/shop/deployments/web/scale".into(),
            ..AuditEvent::default()
        };
        assert_eq!(e.field_manager(), "kubectl");
        e.request_uri = "/api/v1/x?a=1&fieldManager=my%20tool&b".into();
        assert_eq!(e.field_manager(), "my tool");
        assert_eq!(user_agent_product(""), "");
        assert_eq!(percent_decode("a%2Fb%zz%"), "a/b%zz%");
    }
}
