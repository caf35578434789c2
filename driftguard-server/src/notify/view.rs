//! What a notification says: an event as every notifier shows it.

use super::*;

/// What a notifier tells about one event. Holds no field values (only paths), so no Secret
/// value and no raw object is ever sent; the findings' reasons quote only what a rule read,
/// and no rule reads a Secret.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EventView {
    /// Event id.
    pub event_id: String,
    /// `detected`, `changed`, `resolved` or `remediated`.
    pub event: String,
    /// When.
    pub at: DateTime<Utc>,
    /// Episode id (also the PagerDuty dedup key).
    pub episode: String,
    /// The object.
    pub object: ObjectRef,
    /// `modified`, `missing`, `orphan`.
    pub drift: String,
    /// `forward`, `reverse`, `conflict`, `unknown`.
    pub direction: String,
    /// `low` .. `critical`.
    pub severity: String,
    /// Drifted field paths.
    pub fields: Vec<String>,
    /// Who changed it (the people the audit log names, else field managers; or the commit
    /// author), `driftguard` when DriftGuard's remediation ended it; may be empty.
    pub who: String,
    /// The writes of the audit log behind it, one line each (`alice (kubectl-edit, patch,
    /// from 10.0.0.7) at 2024-05-01 12:03:04 UTC`), oldest first; absent when none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub writers: Vec<String>,
    /// Git revision.
    pub revision: Option<String>,
    /// How it ended (resolved events).
    pub resolution: Option<String>,
    /// Who ended it (resolved events): `driftguard`, or the field manager that wrote it back
    /// (a GitOps tool's correction); absent when unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_by: Option<String>,
    /// How many times the episode came back after it was reverted (`recurred` events).
    #[serde(skip_serializing_if = "is_zero")]
    pub recurrences: u32,
    /// Link to the drift in the API (when `publicUrl` is configured).
    pub link: Option<String>,
    /// The drift's risk: its severity raised by its findings.
    pub risk: String,
    /// Risk findings, highest risk first.
    pub findings: Vec<FindingDto>,
    /// What DriftGuard did (`remediated` events only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remediation: Option<RemediationView>,
}

/// What a notifier tells of a remediation: what, how, who asked and the result; the changed
/// paths without their values.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RemediationView {
    /// The plan's id.
    pub plan: String,
    /// `revert` or `adopt`.
    pub action: String,
    /// `apply`, `create`, `delete` or `adopt`.
    pub operation: String,
    /// Who asked: `token:<name>`, `cli:<user>`, `policy`.
    pub requested_by: String,
    /// Whether it succeeded.
    pub ok: bool,
    /// The result in words.
    pub result: String,
    /// The paths it changed (or would change).
    pub paths: Vec<String>,
}

impl EventView {
    /// The view of one event.
    pub fn of(e: &DriftEvent, public_url: Option<&str>) -> Self {
        let d = &e.drift;
        EventView {
            event_id: e.event_id.clone(),
            event: e.kind.as_str().to_owned(),
            at: e.at,
            episode: d.episode.clone(),
            object: ObjectRef::from(&d.id),
            drift: d.kind.as_str().to_owned(),
            direction: d.direction.as_str().to_owned(),
            severity: d.severity.as_str().to_owned(),
            fields: d.fields.iter().map(|f| f.path.to_string()).collect(),
            who: d.who(),
            writers: d
                .attribution
                .writers
                .iter()
                .map(driftguard_core::audit::AuditWrite::describe)
                .collect(),
            revision: e.revision.clone(),
            resolution: d.resolution.map(|r| r.as_str().to_owned()),
            resolved_by: d.resolved_by.clone(),
            recurrences: d.recurrences,
            link: public_url.map(|u| format!("{u}/api/v1/drifts/{}", d.episode)),
            risk: drift_risk(d.severity, &d.findings).as_str().to_owned(),
            findings: d.findings.iter().map(FindingDto::from).collect(),
            remediation: e.remediation.as_ref().map(|r| RemediationView {
                plan: r.plan_id.clone(),
                action: r.action.as_str().to_owned(),
                operation: r.operation.as_str().to_owned(),
                requested_by: r.requested_by.clone(),
                ok: r.ok,
                result: r.result.clone(),
                paths: r.changes.iter().map(|c| c.path.clone()).collect(),
            }),
        }
    }

    /// The findings in one line: `high security rbac-widened: <reason>; ...` (empty when
    /// there are none).
    pub fn findings_line(&self) -> String {
        self.findings
            .iter()
            .map(|f| format!("{} {} {}: {}", f.risk, f.category, f.rule, f.reason))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// `Deployment.apps shop/web`.
    pub fn object_label(&self) -> String {
        let kg = if self.object.group.is_empty() {
            self.object.kind.clone()
        } else {
            format!("{}.{}", self.object.kind, self.object.group)
        };
        match &self.object.namespace {
            Some(ns) => format!("{kg} {ns}/{}", self.object.name),
            None => format!("{kg} {}", self.object.name),
        }
    }

    /// A one-line summary.
    pub fn headline(&self) -> String {
        match self.event.as_str() {
            "resolved" => format!(
                "resolved: {} {} ({}){}",
                self.drift,
                self.object_label(),
                self.severity,
                self.resolution
                    .as_ref()
                    .map(|r| format!(", {r}"))
                    .unwrap_or_default()
            ),
            "remediated" => match &self.remediation {
                Some(r) => format!(
                    "remediated: {} of {} ({}, asked by {}): {}",
                    r.operation,
                    self.object_label(),
                    if r.ok { "done" } else { "not done" },
                    r.requested_by,
                    r.result
                ),
                None => format!("remediated: {}", self.object_label()),
            },
            "unacknowledged" => format!(
                "no longer acknowledged, announced again: {} {} drift of {} ({})",
                self.direction,
                self.drift,
                self.object_label(),
                self.severity
            ),
            ev => format!(
                "{ev}: {} {} drift of {} ({})",
                self.direction,
                self.drift,
                self.object_label(),
                self.severity
            ),
        }
    }
}

/// Counts per event kind: `2 detected, 1 resolved`.
pub fn tally(events: &[DriftEvent]) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for e in events {
        *counts.entry(e.kind.as_str()).or_default() += 1;
    }
    counts
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}
