//! The tool's own verdict on an object (issue #31): what Argo CD or Flux last said about it, to
//! be shown next to DriftGuard's ("Argo CD says Synced; DriftGuard sees 3 hand additions").
//! Read from the object's `status` (and Flux's `spec.suspend`) by [`ToolVerdict::read`], the
//! same function for the discovery's mapping and for the watch's status changes, which update
//! the verdict without discovering again ([`verdict_fields`] is what they compare). No IO.
//!
//! Field names and values are the CRDs' (`examples/discovery/crds/`): Argo CD
//! `status.sync.status` (`Synced`, `OutOfSync`, `Unknown`), `status.sync.revision(s)`,
//! `status.health.status` (`Healthy`, `Progressing`, `Degraded`, `Suspended`, `Missing`,
//! `Unknown`), `status.operationState.phase` (`Running`, `Terminating`, `Failed`, `Error`,
//! `Succeeded`), `status.reconciledAt`; Flux the `Ready` condition of `status.conditions`
//! (`True`, `False`, `Unknown`, with its reason, message and `lastTransitionTime`),
//! `status.lastAppliedRevision` (a HelmRelease's `status.lastAttemptedRevision`: it has no
//! other) and `spec.suspend`.

use serde_json::{json, Map, Value};

use super::read::status_string;
use super::Tool;

/// The longest message kept (in characters); a longer one is cut, with `…`.
pub const MESSAGE_LIMIT: usize = 240;

/// What the tool itself last said about the object (its status), kept to be shown next to
/// DriftGuard's own verdict.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ToolVerdict {
    /// Argo CD `status.sync.status`: `Synced`, `OutOfSync`, `Unknown`.
    pub sync: Option<String>,
    /// Argo CD `status.health.status`: `Healthy`, `Progressing`, `Degraded`, `Suspended`,
    /// `Missing`, `Unknown`.
    pub health: Option<String>,
    /// Argo CD `status.operationState.phase` of the last (or running) sync: `Running`,
    /// `Terminating`, `Failed`, `Error`, `Succeeded`.
    pub operation: Option<String>,
    /// Flux: the `Ready` condition's status (`True`, `False`, `Unknown`).
    pub ready: Option<String>,
    /// Flux: the `Ready` condition's reason (`ReconciliationSucceeded`, `BuildFailed`, ...).
    pub reason: Option<String>,
    /// Flux: the `Ready` condition's message, its first line, at most [`MESSAGE_LIMIT`]
    /// characters.
    pub message: Option<String>,
    /// The revision the tool last synced or applied (Argo CD `status.sync.revision`, or
    /// `revisions[i]` of a multi-source Application; Flux `status.lastAppliedRevision`, or a
    /// HelmRelease's `status.lastAttemptedRevision`).
    pub revision: Option<String>,
    /// When the tool last looked: Argo CD `status.reconciledAt`, Flux the `Ready` condition's
    /// `lastTransitionTime` (RFC 3339, as the tool wrote it).
    pub reconciled_at: Option<String>,
    /// Flux `spec.suspend`: the tool does not apply changes.
    pub suspended: bool,
    /// The newest Kubernetes Event the tool recorded on the object ([`ToolEvent`]): Flux's
    /// change set when it applied (a drift it corrected: `Deployment/shop/web configured`),
    /// its failures; Argo CD's sync and self-heal events. Not read from the object itself: set
    /// by discovery and by the Events watch, kept when the status changes.
    pub last_event: Option<ToolEvent>,
    /// The newest of those Events that says the tool changed objects
    /// ([`ToolEvent::changes`]): what Flux last corrected or applied. Usually older than
    /// [`ToolVerdict::last_event`] (Flux records "Reconciliation finished" after each
    /// reconcile).
    pub last_change: Option<ToolEvent>,
}

/// The most lines of an Event's message kept ([`ToolEvent::message`]).
pub const EVENT_LINES: usize = 10;

/// The kinds whose Events are the tools' ([`ToolEvent::read`]).
pub const EVENT_KINDS: [&str; 3] = ["Application", "Kustomization", "HelmRelease"];

/// A Kubernetes Event (`core/v1`) a tool recorded on its object: what it did or failed to
/// do, in its own words. Flux's kustomize-controller records the change set of each apply
/// that changed something (one line per object: `Deployment/shop/web configured`), which is
/// how it reports the drift it corrected; helm-controller its drift detection and upgrades;
/// Argo CD its syncs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ToolEvent {
    /// When it last happened (`lastTimestamp`, else `eventTime`, else the Event's creation;
    /// RFC 3339 as written).
    pub at: Option<String>,
    /// A `Warning` Event (else `Normal`).
    pub warning: bool,
    /// Its reason (Flux: the `Ready` condition's reason at the time, e.g. `Progressing`).
    pub reason: String,
    /// Its message: at most [`EVENT_LINES`] lines, each at most [`MESSAGE_LIMIT`] characters,
    /// with the environment's Secret values replaced by `<redacted>`.
    pub message: String,
    /// How many times it happened (`count`, or `series.count`; 1 when not said).
    pub count: u64,
    /// The objects it says the tool changed: the lines of the message of the form `<Kind>/
    /// [<namespace>/]<name> created|configured|deleted`, the change set Flux's
    /// kustomize-controller records (fluxcd/pkg/ssa's `ChangeSetEntry`; `unchanged` and
    /// `skipped` entries are never recorded).
    pub changes: Vec<String>,
}

/// Whether a line of a tool's Event names an object it changed (see [`ToolEvent::changes`]).
fn is_change(line: &str) -> bool {
    let mut words = line.split(' ');
    match (words.next(), words.next(), words.next()) {
        (Some(subject), Some(action), None) => {
            subject.contains('/')
                && !subject.starts_with('/')
                && matches!(action, "created" | "configured" | "deleted")
        }
        _ => false,
    }
}

impl ToolEvent {
    /// The tool's object an Event is about (`Kustomization flux-system/apps`, as
    /// [`crate::verdicts::ToolStatus::object`] names it) and the Event; `None` for an Event
    /// about anything else. `secrets` as for [`ToolVerdict::read`].
    pub fn read(event: &Value, secrets: &[String]) -> Option<(String, ToolEvent)> {
        let involved = event.get("involvedObject")?;
        let s = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
        let kind = s(involved, "kind").filter(|k| EVENT_KINDS.contains(&k.as_str()))?;
        let object = format!(
            "{kind} {}/{}",
            s(involved, "namespace").unwrap_or_default(),
            s(involved, "name")?
        );
        let message = s(event, "message").unwrap_or_default();
        let message = driftguard_core::secret::redact_values(&message, secrets);
        let lines: Vec<String> = message
            .lines()
            .filter(|l| !l.trim().is_empty())
            .take(EVENT_LINES)
            .map(shorten)
            .collect();
        let at = s(event, "lastTimestamp")
            .or_else(|| s(event, "eventTime"))
            .or_else(|| {
                event
                    .pointer("/series/lastObservedTime")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .or_else(|| {
                event
                    .pointer("/metadata/creationTimestamp")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            });
        let count = event
            .get("count")
            .and_then(Value::as_u64)
            .or_else(|| event.pointer("/series/count").and_then(Value::as_u64))
            .unwrap_or(1);
        Some((
            object,
            ToolEvent {
                at,
                warning: s(event, "type").as_deref() == Some("Warning"),
                reason: s(event, "reason").unwrap_or_default(),
                changes: lines.iter().filter(|l| is_change(l)).cloned().collect(),
                message: lines.join("\n"),
                count,
            },
        ))
    }

    /// When it last happened, parsed.
    pub fn time(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.at
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc))
    }

    /// Whether it is news next to `kept`: nothing kept, or it happened no earlier (a
    /// repeated Event is the same Event with a later time and count).
    pub fn supersedes(&self, kept: Option<&ToolEvent>) -> bool {
        match kept {
            None => true,
            Some(k) => self.time() >= k.time() && self != k,
        }
    }
}

impl ToolVerdict {
    /// The verdict of `object` (an Argo CD Application, a Flux Kustomization or HelmRelease,
    /// or its [`verdict_fields`]), for the environment of its source `source` (the index in
    /// `spec.sources` of a multi-source Application; `None` otherwise). `secrets` are the
    /// values the environment took from Secrets ([`super::Discovered::secret_values`]): a
    /// message quoting one (a build error) shows `<redacted>` in its place.
    pub fn read(
        tool: Tool,
        kind: &str,
        object: &Value,
        source: Option<usize>,
        secrets: &[String],
    ) -> ToolVerdict {
        let status = object.get("status").unwrap_or(&Value::Null);
        match tool {
            Tool::ArgoCd => ToolVerdict {
                sync: status_string(status, &["sync", "status"]),
                health: status_string(status, &["health", "status"]),
                operation: status_string(status, &["operationState", "phase"]),
                revision: match source {
                    Some(i) => status
                        .pointer(&format!("/sync/revisions/{i}"))
                        .and_then(Value::as_str)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned),
                    None => status_string(status, &["sync", "revision"]),
                },
                reconciled_at: status_string(status, &["reconciledAt"]),
                ..ToolVerdict::default()
            },
            Tool::Flux => {
                let ready = status
                    .get("conditions")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"));
                let of = |key: &str| ready.and_then(|c| status_string(c, &[key]));
                let revision = if kind == "HelmRelease" {
                    "lastAttemptedRevision"
                } else {
                    "lastAppliedRevision"
                };
                ToolVerdict {
                    ready: of("status"),
                    reason: of("reason"),
                    message: of("message")
                        .map(|m| shorten(&driftguard_core::secret::redact_values(&m, secrets))),
                    revision: status_string(status, &[revision]),
                    reconciled_at: of("lastTransitionTime"),
                    suspended: object.pointer("/spec/suspend").and_then(Value::as_bool)
                        == Some(true),
                    ..ToolVerdict::default()
                }
            }
        }
    }

    /// Whether the tool says the cluster runs what Git says: Argo CD `Synced`, Flux `Ready`
    /// `True` (the last revision applied, and healthy when Flux waits for health). `None`
    /// when it does not say (`Unknown`, nothing yet).
    pub fn in_sync(&self) -> Option<bool> {
        match (&self.sync, &self.ready) {
            (Some(s), _) if s != "Unknown" => Some(s == "Synced"),
            (None, Some(r)) if r != "Unknown" => Some(r == "True"),
            _ => None,
        }
    }

    /// Whether the tool says the objects are healthy: Argo CD `Healthy`, Flux `Ready` `True`.
    /// `None` when it does not say (`Unknown`, nothing yet).
    pub fn healthy(&self) -> Option<bool> {
        match (&self.health, &self.ready) {
            (Some(h), _) if h != "Unknown" => Some(h == "Healthy"),
            (None, Some(r)) if r != "Unknown" => Some(r == "True"),
            _ => None,
        }
    }

    /// The verdict in a few words: `Synced, Healthy, revision 1a2b3c4`, `Ready=False
    /// (BuildFailed), suspended`; `nothing yet` when the tool said nothing.
    pub fn summary(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        parts.extend(self.sync.clone());
        parts.extend(self.health.clone());
        if let Some(o) = self.operation.as_ref().filter(|o| *o != "Succeeded") {
            parts.push(format!("last sync {o}"));
        }
        if let Some(r) = &self.ready {
            parts.push(format!(
                "Ready={r}{}",
                self.reason
                    .as_ref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            ));
        }
        if let Some(r) = &self.revision {
            parts.push(format!("revision {r}"));
        }
        if self.suspended {
            parts.push("suspended".into());
        }
        if parts.is_empty() {
            "nothing yet".into()
        } else {
            parts.join(", ")
        }
    }
}

impl ToolVerdict {
    /// Takes an Event the tool recorded on the object: the last event, and the last change
    /// when it says the tool changed objects, each when it is news ([`ToolEvent::supersedes`]).
    pub fn take_event(&mut self, e: ToolEvent) {
        if !e.changes.is_empty() && e.supersedes(self.last_change.as_ref()) {
            self.last_change = Some(e.clone());
        }
        if e.supersedes(self.last_event.as_ref()) {
            self.last_event = Some(e);
        }
    }

    /// The verdict with the last change the tool made, for a line of text: `Ready=True
    /// (ReconciliationSucceeded), revision main@sha1:1a2b; last change it made at
    /// 2026-12-07T01:02:03Z: Deployment/shop/web configured and 1 more`.
    pub fn summary_with_event(&self) -> String {
        let Some(e) = &self.last_change else {
            return self.summary();
        };
        let first = e.changes.first().map(String::as_str).unwrap_or_default();
        let more = match e.changes.len() {
            0 | 1 => String::new(),
            n => format!(" and {} more", n - 1),
        };
        let at =
            e.at.as_deref()
                .map(|t| format!(" at {t}"))
                .unwrap_or_default();
        format!("{}; last change it made{at}: {first}{more}", self.summary())
    }
}

/// The parts of a tool's object that [`ToolVerdict::read`] reads (and nothing else): what a
/// watch compares to tell a change of the verdict, and hands on to be read.
pub fn verdict_fields(object: &Value) -> Value {
    const READ: [&str; 8] = [
        "/status/sync",
        "/status/health",
        "/status/operationState/phase",
        "/status/reconciledAt",
        "/status/conditions",
        "/status/lastAppliedRevision",
        "/status/lastAttemptedRevision",
        "/spec/suspend",
    ];
    let mut out = Value::Object(Map::new());
    for pointer in READ {
        let Some(v) = object.pointer(pointer) else {
            continue;
        };
        let v = match pointer {
            // only the Ready condition, only what is read of `sync`
            "/status/conditions" => Value::Array(
                v.as_array()
                    .into_iter()
                    .flatten()
                    .filter(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
                    .cloned()
                    .collect(),
            ),
            "/status/sync" => json!({
                "status": v.get("status"),
                "revision": v.get("revision"),
                "revisions": v.get("revisions"),
            }),
            "/status/health" => json!({ "status": v.get("status") }),
            _ => v.clone(),
        };
        let mut at = &mut out;
        let steps: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
        for (i, step) in steps.iter().enumerate() {
            let map = at
                .as_object_mut()
                .expect("every step made here is an object");
            if i + 1 == steps.len() {
                map.insert((*step).to_owned(), v);
                break;
            }
            at = map
                .entry((*step).to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
        }
    }
    out
}

/// A message's first line, at most [`MESSAGE_LIMIT`] characters (cut with `…`).
fn shorten(message: &str) -> String {
    let line = message.lines().next().unwrap_or_default().trim();
    if line.chars().count() <= MESSAGE_LIMIT {
        return line.to_owned();
    }
    let mut cut: String = line.chars().take(MESSAGE_LIMIT - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// An Application's status as Argo CD writes it (the shape of the CRD's `status`).
    fn application() -> Value {
        json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Application",
            "metadata": {"name": "shop", "namespace": "argocd"},
            "spec": {"project": "default"},
            "status": {
                "sync": {
                    "status": "OutOfSync",
                    "revision": "8f3c1e2a9b7d6c5e4f3a2b1c0d9e8f7a6b5c4d3e",
                    "comparedTo": {"source": {"repoURL": "https://git.example.com/shop.git"}}
                },
                "health": {"status": "Degraded", "lastTransitionTime": "2026-12-01T09:00:00Z"},
                "operationState": {
                    "phase": "Failed",
                    "message": "one or more objects failed to apply",
                    "startedAt": "2026-12-01T08:59:00Z"
                },
                "reconciledAt": "2026-12-01T09:01:00Z",
                "resources": [{"kind": "Deployment", "name": "web", "status": "OutOfSync"}],
                "sourceType": "Kustomize"
            }
        })
    }

    fn kustomization() -> Value {
        json!({
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
            "kind": "Kustomization",
            "metadata": {"name": "podinfo", "namespace": "apps"},
            "spec": {"suspend": true, "path": "./deploy"},
            "status": {
                "conditions": [
                    {"type": "Reconciling", "status": "True", "reason": "Progressing",
                     "message": "reconciliation in progress",
                     "lastTransitionTime": "2026-12-01T09:00:00Z"},
                    {"type": "Ready", "status": "False", "reason": "BuildFailed",
                     "message": format!("kustomize build failed: {}\nsecond line", "x".repeat(400)),
                     "lastTransitionTime": "2026-12-01T09:02:00Z"}
                ],
                "lastAppliedRevision": "main@sha1:1a2b3c4d",
                "lastAttemptedRevision": "main@sha1:5e6f7a8b",
                "inventory": {"entries": []}
            }
        })
    }

    #[test]
    fn argocd_status() {
        let v = ToolVerdict::read(Tool::ArgoCd, "Application", &application(), None, &[]);
        assert_eq!(
            v,
            ToolVerdict {
                sync: Some("OutOfSync".into()),
                health: Some("Degraded".into()),
                operation: Some("Failed".into()),
                revision: Some("8f3c1e2a9b7d6c5e4f3a2b1c0d9e8f7a6b5c4d3e".into()),
                reconciled_at: Some("2026-12-01T09:01:00Z".into()),
                ..ToolVerdict::default()
            }
        );
        assert_eq!(v.in_sync(), Some(false));
        assert_eq!(v.healthy(), Some(false));
        assert_eq!(
            v.summary(),
            "OutOfSync, Degraded, last sync Failed, revision 8f3c1e2a9b7d6c5e4f3a2b1c0d9e8f7a6b5c4d3e"
        );
    }

    #[test]
    fn argocd_multi_source_revision() {
        let mut app = application();
        app["status"]["sync"] = json!({"status": "Synced", "revisions": ["aaa", "bbb"]});
        app["status"]["health"] = json!({"status": "Healthy"});
        let v = ToolVerdict::read(Tool::ArgoCd, "Application", &app, Some(1), &[]);
        assert_eq!(v.revision.as_deref(), Some("bbb"));
        assert_eq!((v.in_sync(), v.healthy()), (Some(true), Some(true)));
        let none = ToolVerdict::read(Tool::ArgoCd, "Application", &app, Some(5), &[]);
        assert_eq!(none.revision, None);
    }

    #[test]
    fn unknown_says_nothing() {
        let mut app = application();
        app["status"]["sync"] = json!({"status": "Unknown"});
        app["status"]["health"] = json!({"status": "Unknown"});
        let v = ToolVerdict::read(Tool::ArgoCd, "Application", &app, None, &[]);
        assert_eq!((v.in_sync(), v.healthy()), (None, None));
        let fresh = json!({"kind": "Application", "metadata": {"name": "new"}});
        let v = ToolVerdict::read(Tool::ArgoCd, "Application", &fresh, None, &[]);
        assert_eq!(v, ToolVerdict::default());
        assert_eq!(v.summary(), "nothing yet");
    }

    #[test]
    fn flux_ready_condition() {
        let v = ToolVerdict::read(Tool::Flux, "Kustomization", &kustomization(), None, &[]);
        assert_eq!(v.ready.as_deref(), Some("False"));
        assert_eq!(v.reason.as_deref(), Some("BuildFailed"));
        assert_eq!(v.revision.as_deref(), Some("main@sha1:1a2b3c4d"));
        assert_eq!(v.reconciled_at.as_deref(), Some("2026-12-01T09:02:00Z"));
        assert!(v.suspended);
        let message = v
            .message
            .clone()
            .expect("the Ready condition has a message");
        assert_eq!(message.chars().count(), MESSAGE_LIMIT);
        assert!(message.starts_with("kustomize build failed: xxx"));
        assert!(message.ends_with('…'));
        assert!(!message.contains("second line"));
        assert_eq!((v.in_sync(), v.healthy()), (Some(false), Some(false)));
        assert_eq!(
            v.summary(),
            "Ready=False (BuildFailed), revision main@sha1:1a2b3c4d, suspended"
        );
    }

    #[test]
    fn a_message_never_shows_a_secret_value() {
        let mut k = kustomization();
        k["status"]["conditions"][1]["message"] = json!(format!(
            "{}: password: hunter2-long-secret is invalid",
            "y".repeat(200)
        ));
        let secrets = vec!["hunter2-long-secret".to_owned(), "hunter2".to_owned()];
        let v = ToolVerdict::read(Tool::Flux, "Kustomization", &k, None, &secrets);
        let message = v.message.expect("a message");
        // redacted before it is cut: no part of the value survives the cut
        assert!(!message.contains("hunter"), "{message}");
        assert!(message.contains("password: <redac"), "{message}");
        let short = json!({"status": {"conditions": [{"type": "Ready", "status": "False",
            "message": "substitute failed for hunter2-long-secret"}]}});
        let v = ToolVerdict::read(Tool::Flux, "Kustomization", &short, None, &secrets);
        assert_eq!(
            v.message.as_deref(),
            Some("substitute failed for <redacted>")
        );
    }

    #[test]
    fn helm_release_revision_is_the_attempted_one() {
        let release = json!({
            "kind": "HelmRelease",
            "spec": {"chart": {"spec": {"chart": "./charts/podinfo"}}},
            "status": {
                "conditions": [{"type": "Ready", "status": "True",
                    "reason": "UpgradeSucceeded", "message": "Helm upgrade succeeded for release apps/podinfo.v3 with chart podinfo@6.5.4"}],
                "lastAttemptedRevision": "6.5.4",
                "history": [{"chartVersion": "6.5.4", "status": "deployed"}]
            }
        });
        let v = ToolVerdict::read(Tool::Flux, "HelmRelease", &release, None, &[]);
        assert_eq!(v.revision.as_deref(), Some("6.5.4"));
        assert_eq!(v.ready.as_deref(), Some("True"));
        assert!(!v.suspended);
        assert_eq!((v.in_sync(), v.healthy()), (Some(true), Some(true)));
    }

    #[test]
    fn the_fields_read_are_enough_to_read() {
        for (tool, kind, object) in [
            (Tool::ArgoCd, "Application", application()),
            (Tool::Flux, "Kustomization", kustomization()),
        ] {
            let fields = verdict_fields(&object);
            assert_eq!(
                ToolVerdict::read(tool, kind, &fields, Some(0), &[]),
                ToolVerdict::read(tool, kind, &object, Some(0), &[])
            );
            assert_eq!(
                ToolVerdict::read(tool, kind, &fields, None, &[]),
                ToolVerdict::read(tool, kind, &object, None, &[])
            );
        }
    }

    #[test]
    fn churn_outside_the_verdict_is_not_a_change() {
        let mut app = application();
        let before = verdict_fields(&app);
        app["status"]["resources"] = json!([]);
        app["status"]["operationState"]["startedAt"] = json!("2026-12-02T00:00:00Z");
        app["status"]["health"]["lastTransitionTime"] = json!("2026-12-02T00:00:00Z");
        app["spec"]["project"] = json!("other");
        assert_eq!(verdict_fields(&app), before);
        app["status"]["sync"]["status"] = json!("Synced");
        assert_ne!(verdict_fields(&app), before);

        let mut k = kustomization();
        let before = verdict_fields(&k);
        k["status"]["conditions"][0]["status"] = json!("False");
        assert_eq!(verdict_fields(&k), before);
        k["spec"]["suspend"] = json!(false);
        assert_ne!(verdict_fields(&k), before);
    }

    /// An Event as kustomize-controller records it (core/v1, through client-go's recorder):
    /// the change set of an apply, one object per line.
    fn flux_event(message: &str, reason: &str, at: &str) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": "apps.1876", "namespace": "flux-system",
                "creationTimestamp": "2026-12-07T01:00:00Z",
                "annotations": {"kustomize.toolkit.fluxcd.io/revision": "main@sha1:1a2b"}},
            "involvedObject": {"apiVersion": "kustomize.toolkit.fluxcd.io/v1",
                "kind": "Kustomization", "name": "apps", "namespace": "flux-system"},
            "type": "Normal",
            "reason": reason,
            "message": message,
            "source": {"component": "kustomize-controller"},
            "firstTimestamp": "2026-12-07T01:00:00Z",
            "lastTimestamp": at,
            "count": 1
        })
    }

    #[test]
    fn a_tools_event_names_its_object_and_the_objects_it_changed() {
        let e = flux_event(
            "ConfigMap/shop/settings configured\nDeployment/shop/web configured\nNamespace/shop unchanged",
            "Progressing",
            "2026-12-07T01:02:03Z",
        );
        let (object, event) = ToolEvent::read(&e, &[]).expect("a tool's event");
        assert_eq!(object, "Kustomization flux-system/apps");
        assert_eq!(event.reason, "Progressing");
        assert!(!event.warning);
        assert_eq!(event.at.as_deref(), Some("2026-12-07T01:02:03Z"));
        assert_eq!(
            event.changes,
            [
                "ConfigMap/shop/settings configured",
                "Deployment/shop/web configured"
            ]
        );
        assert_eq!(event.message.lines().count(), 3);

        // an Event of anything else is not a tool's
        let mut pod = e.clone();
        pod["involvedObject"]["kind"] = json!("Pod");
        assert_eq!(ToolEvent::read(&pod, &[]), None);

        // a Secret value the environment took is not shown; long messages are cut
        let mut failed = flux_event(
            "kustomize build failed: password=hunter2-secret is not valid",
            "BuildFailed",
            "2026-12-07T01:03:00Z",
        );
        failed["type"] = json!("Warning");
        let (_, event) = ToolEvent::read(&failed, &["hunter2-secret".into()]).expect("event");
        assert!(event.warning);
        assert!(!event.message.contains("hunter2"), "{}", event.message);
        assert!(event.changes.is_empty());
        let long = (0..30)
            .map(|i| format!("Deployment/shop/w{i} created"))
            .collect::<Vec<_>>();
        let (_, event) = ToolEvent::read(
            &flux_event(&long.join("\n"), "Progressing", "2026-12-07T01:04:00Z"),
            &[],
        )
        .expect("event");
        assert_eq!(event.message.lines().count(), EVENT_LINES);
    }

    #[test]
    fn the_verdict_keeps_the_newest_event_and_the_newest_change() {
        let change = |at: &str| {
            ToolEvent::read(
                &flux_event("Deployment/shop/web configured", "Progressing", at),
                &[],
            )
            .expect("event")
            .1
        };
        let finished = ToolEvent::read(
            &flux_event(
                "Reconciliation finished in 1.2s, next run in 10m0s",
                "ReconciliationSucceeded",
                "2026-12-07T01:02:04Z",
            ),
            &[],
        )
        .expect("event")
        .1;
        let mut v = ToolVerdict::default();
        v.take_event(change("2026-12-07T01:02:03Z"));
        v.take_event(finished.clone());
        assert_eq!(v.last_event.as_ref(), Some(&finished));
        assert_eq!(
            v.last_change.as_ref().and_then(|c| c.at.as_deref()),
            Some("2026-12-07T01:02:03Z")
        );
        // an older change listed late changes nothing
        v.take_event(change("2026-12-07T00:00:00Z"));
        assert_eq!(
            v.last_change.as_ref().and_then(|c| c.at.as_deref()),
            Some("2026-12-07T01:02:03Z")
        );
        assert_eq!(v.last_event.as_ref(), Some(&finished));
        assert!(v.summary_with_event().ends_with(
            "last change it made at 2026-12-07T01:02:03Z: Deployment/shop/web configured"
        ));
    }
}
