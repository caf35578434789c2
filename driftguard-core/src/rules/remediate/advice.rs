//! Remediation plans: how to end a drift, as a value. Never applied by DriftGuard.
//!
//! A drift ends one of two ways: the cluster goes back to Git (**revert**; for a reverse drift
//! that means applying Git's newer version) or Git takes what the cluster runs (**adopt**). A
//! [`RemediationPlan`] says which is suggested and why (the direction and the findings), and
//! lists the steps (preview, change, verify) with the `kubectl` commands and the field changes
//! to write into Git. It is built from the stored drift alone, so it holds no Secret value: a
//! Secret's fields say to copy the value by hand.
//!
//! These plans are advice for a person. What DriftGuard itself carries out, when asked, is the
//! plan of [`crate::remediate`], built from the raw objects and the environment's rules.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::compare::REDACTED;
use crate::findings::FindingCategory;
use crate::names::named_enum;
use crate::severity::Severity;
use crate::state::{Direction, Drift, DriftKind};

named_enum! {
    /// Which way a drift is ended.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum RemediationAction: "remediation" {
        /// The cluster goes back to Git (or takes Git's newer version).
        Revert => "revert",
        /// Git takes what the cluster runs.
        Adopt => "adopt",
    }
}

/// One field to change in Git (adopt) or that changes in the cluster (revert).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    /// The field path as printed ([`crate::path::FieldPath`]); in a preview of what an apply
    /// changes ([`crate::remediate::diff_objects`]), a JSON pointer.
    pub path: String,
    /// Its value now, where the change happens (absent: not set).
    pub from: Option<Value>,
    /// Its value after the change (absent: removed).
    pub to: Option<Value>,
}

/// One step of a plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanStep {
    /// What to do.
    pub description: String,
    /// The command that does it, when there is one.
    #[serde(default)]
    pub command: Option<String>,
    /// The field changes it makes.
    #[serde(default)]
    pub changes: Vec<FieldChange>,
}

/// How to end one drift.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RemediationPlan {
    /// The drift episode.
    pub episode: String,
    /// The object, `env:Kind[.group]/[namespace/]name`.
    pub object: String,
    /// The action of this plan.
    pub action: RemediationAction,
    /// The action DriftGuard suggests for this drift.
    pub suggested: RemediationAction,
    /// Why that action is suggested.
    pub reason: String,
    /// The steps, in order.
    pub steps: Vec<PlanStep>,
    /// What to watch out for.
    pub notes: Vec<String>,
    /// Always false: DriftGuard never applies a plan.
    pub applied: bool,
}

/// The action suggested for `d`, and why.
pub fn suggest(d: &Drift) -> (RemediationAction, String) {
    let risky = d
        .findings
        .iter()
        .filter(|f| {
            matches!(
                f.category,
                FindingCategory::Security | FindingCategory::Availability
            ) && f.risk >= Severity::High
        })
        .map(|f| f.rule.as_str())
        .collect::<Vec<_>>();
    if d.is_terraform() {
        return terraform_advice(d, &risky);
    }
    if !risky.is_empty() {
        return (
            RemediationAction::Revert,
            format!(
                "the cluster is riskier than Git ({}): put it back to what Git says, then \
                 change Git if the change must stay",
                risky.join(", ")
            ),
        );
    }
    let noise = !d.findings.is_empty()
        && d.findings.iter().all(|f| {
            matches!(
                f.category,
                FindingCategory::LikelyNoise | FindingCategory::Cosmetic
            )
        });
    match (d.kind, d.direction) {
        _ if noise => (
            RemediationAction::Adopt,
            "the difference is cosmetic or a controller's doing: write it into Git (or ignore \
             it) rather than fight it"
                .to_owned(),
        ),
        (_, Direction::Reverse) => (
            RemediationAction::Revert,
            "Git moved and the change was never applied: apply Git's version".to_owned(),
        ),
        (DriftKind::Orphan, _) => (
            RemediationAction::Adopt,
            "the object exists only in the cluster: add it to Git if it is meant to stay, \
             otherwise delete it"
                .to_owned(),
        ),
        (_, Direction::Conflict) => (
            RemediationAction::Revert,
            "both Git and the cluster moved: decide which change wins; reverting keeps Git the \
             source of truth"
                .to_owned(),
        ),
        _ => (
            RemediationAction::Revert,
            "the cluster was changed outside Git: put it back, or adopt the change into Git if \
             it must stay"
                .to_owned(),
        ),
    }
}

/// The advice for a Terraform resource, in Terraform's terms (the code, the state, the cloud,
/// `terraform apply`).
fn terraform_advice(d: &Drift, risky: &[&str]) -> (RemediationAction, String) {
    // what the code does not set, an apply leaves as it is
    let unset = d.direction == Direction::Forward
        && !d.fields.is_empty()
        && d.fields.iter().all(|f| f.desired.is_none());
    let (action, text) = match (d.kind, d.direction) {
        _ if unset => (
            RemediationAction::Revert,
            "the code does not set it, so terraform apply leaves it as it is: remove it in the \
             cloud, or write it into the code (for a security group's rule: a rule resource) if \
             it must stay",
        ),
        (_, Direction::Reverse) if d.kind != DriftKind::Orphan => (
            RemediationAction::Revert,
            "the code changed and was not applied: review terraform plan and apply it",
        ),
        (DriftKind::Orphan, Direction::Reverse) => (
            RemediationAction::Revert,
            "removed from the code: terraform apply destroys it (a `removed` block takes it \
             out of the state without destroying it)",
        ),
        (DriftKind::Orphan, _) => (
            RemediationAction::Adopt,
            "made outside Terraform: import it into a state (an `import` block) if it is meant \
             to stay, otherwise delete it",
        ),
        (DriftKind::Missing, Direction::Forward) => (
            RemediationAction::Revert,
            "deleted outside Terraform: terraform apply creates it again, or remove it from the \
             code",
        ),
        (_, Direction::Conflict) => (
            RemediationAction::Revert,
            "both the code and the cloud changed since the last apply: decide which wins; \
             terraform apply puts the code's values back",
        ),
        _ => (
            RemediationAction::Revert,
            "the cloud was changed outside Terraform: terraform apply puts the code's values \
             back, or write the change into the code if it must stay",
        ),
    };
    if risky.is_empty() {
        (action, text.to_owned())
    } else {
        (
            RemediationAction::Revert,
            format!(
                "the cloud is riskier than the code ({}): {text}",
                risky.join(", ")
            ),
        )
    }
}

/// The `kubectl` resource name of the object: `deployment.apps`, `configmap`.
fn resource(d: &Drift) -> String {
    let kind = d.id.kind.to_ascii_lowercase();
    if d.id.group.is_empty() {
        kind
    } else {
        format!("{kind}.{}", d.id.group)
    }
}

fn ns_flag(d: &Drift) -> String {
    d.id.namespace
        .as_deref()
        .map(|n| format!(" -n {n}"))
        .unwrap_or_default()
}

fn secret(d: &Drift) -> bool {
    crate::secret::is_secret(&d.id.group, &d.id.kind)
}

/// The plan for ending `d` by `action` (`None`: the suggested action).
pub fn plan(d: &Drift, action: Option<RemediationAction>) -> RemediationPlan {
    let (suggested, reason) = suggest(d);
    let action = action.unwrap_or(suggested);
    let object = format!(
        "{}:{}/{}",
        d.id.environment,
        d.id.group_kind(),
        d.id.namespaced_name()
    );
    let file = d.provenance.as_ref().map(|p| p.file.clone());
    let file_at = d
        .provenance
        .as_ref()
        .map(|p| format!("{} (document {}, line {})", p.file, p.document, p.line));
    let target = format!("{}{} {}", resource(d), ns_flag(d), d.id.name);
    let mut steps = Vec::new();
    let mut notes = Vec::new();
    let git_file = file.clone().unwrap_or_else(|| "<the manifest file>".into());
    match (action, d.kind) {
        (RemediationAction::Revert, DriftKind::Modified | DriftKind::Missing) => {
            steps.push(PlanStep {
                description: "preview what applying Git's version changes in the cluster".into(),
                command: Some(format!("kubectl diff -f {git_file}")),
                changes: Vec::new(),
            });
            steps.push(PlanStep {
                description: match d.kind {
                    DriftKind::Missing => "create the object from Git".into(),
                    _ => "apply Git's version of the object".into(),
                },
                command: Some(format!("kubectl apply -f {git_file}")),
                changes: d
                    .fields
                    .iter()
                    .map(|f| FieldChange {
                        path: f.path.to_string(),
                        from: f.live.clone(),
                        to: f.desired.clone(),
                    })
                    .collect(),
            });
        }
        (RemediationAction::Revert, DriftKind::Orphan) => {
            steps.push(PlanStep {
                description: "look at the object before deleting it".into(),
                command: Some(format!("kubectl get {target} -o yaml")),
                changes: Vec::new(),
            });
            steps.push(PlanStep {
                description: "delete the object Git does not define".into(),
                command: Some(format!("kubectl delete {target}")),
                changes: Vec::new(),
            });
        }
        (RemediationAction::Adopt, DriftKind::Modified) => {
            steps.push(PlanStep {
                description: format!(
                    "edit {} so that it says what the cluster runs",
                    file_at.clone().unwrap_or_else(|| git_file.clone())
                ),
                command: None,
                changes: d
                    .fields
                    .iter()
                    .map(|f| FieldChange {
                        path: f.path.to_string(),
                        from: f.desired.clone(),
                        to: f.live.clone(),
                    })
                    .collect(),
            });
            steps.push(PlanStep {
                description: "commit and push the change (review it like any other)".into(),
                command: Some(format!(
                    "git commit -m \"adopt the live {} of {}\" {git_file}",
                    d.paths().join(", "),
                    d.id.namespaced_name()
                )),
                changes: Vec::new(),
            });
        }
        (RemediationAction::Adopt, DriftKind::Missing) => {
            steps.push(PlanStep {
                description: format!(
                    "remove the object from {} (the cluster does without it)",
                    file_at.clone().unwrap_or_else(|| git_file.clone())
                ),
                command: None,
                changes: Vec::new(),
            });
            steps.push(PlanStep {
                description: "commit and push the removal".into(),
                command: Some(format!(
                    "git commit -m \"remove {} (deleted from the cluster)\" {git_file}",
                    d.id.namespaced_name()
                )),
                changes: Vec::new(),
            });
        }
        (RemediationAction::Adopt, DriftKind::Orphan) => {
            steps.push(PlanStep {
                description: "export the object, drop the fields the API server writes \
                              (status, metadata.uid, resourceVersion, managedFields, ...) and \
                              add it to the environment's manifests"
                    .into(),
                command: Some(format!("kubectl get {target} -o yaml")),
                changes: Vec::new(),
            });
            steps.push(PlanStep {
                description: "commit and push the new manifest".into(),
                command: None,
                changes: Vec::new(),
            });
        }
    }
    steps.push(PlanStep {
        description: "scan again: the drift resolves as soon as both sides agree".into(),
        command: Some(format!("driftguard scan -e {}", d.id.environment)),
        changes: Vec::new(),
    });
    if secret(d) {
        notes.push(format!(
            "a Secret: DriftGuard never reads or shows its values ({REDACTED} above); {}",
            match action {
                RemediationAction::Revert => "`kubectl apply` takes the value from the file",
                RemediationAction::Adopt =>
                    "copy the value from the cluster by hand, into your secret management (not in clear text into Git)",
            }
        ));
    }
    match &d.provenance {
        Some(p) => notes.push(format!(
            "{} is relative to the environment's folder in Git (its `dir`, or `git.path` in \
             the repository)",
            p.file
        )),
        None if d.kind != DriftKind::Orphan => {
            notes.push("the drift does not say which file defines the object in Git".into());
        }
        None => {}
    }
    if d.direction == Direction::Conflict {
        notes.push(
            "both sides moved since they last agreed: the plan overwrites one side's change".into(),
        );
    }
    if action != suggested {
        notes.push(format!(
            "DriftGuard suggests to {suggested} instead: {reason}"
        ));
    }
    if d.findings
        .iter()
        .any(|f| f.category == FindingCategory::LikelyNoise)
    {
        let managers: Vec<String> = d.attribution.managers();
        notes.push(format!(
            "likely a controller's doing: an ignore rule with `managedFieldsManagers: [{}]` \
             for this object would stop reporting it",
            managers.join(", ")
        ));
    }
    if !d.is_open() {
        notes.push("this drift is already resolved: nothing to do".into());
    }
    RemediationPlan {
        episode: d.episode.clone(),
        object,
        action,
        suggested,
        reason,
        steps,
        notes,
        applied: false,
    }
}

impl RemediationPlan {
    /// The plan as text, one step a line.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "{} {} (suggested: {}: {})\n",
            self.action, self.object, self.suggested, self.reason
        );
        for (i, s) in self.steps.iter().enumerate() {
            out.push_str(&format!("{}. {}\n", i + 1, s.description));
            if let Some(c) = &s.command {
                out.push_str(&format!("   $ {c}\n"));
            }
            for c in &s.changes {
                let show = |v: &Option<Value>| match v {
                    None => "(absent)".to_owned(),
                    Some(Value::String(s)) => s.clone(),
                    Some(v) => v.to_string(),
                };
                out.push_str(&format!(
                    "   {}: {} -> {}\n",
                    c.path,
                    show(&c.from),
                    show(&c.to)
                ));
            }
        }
        for n in &self.notes {
            out.push_str(&format!("note: {n}\n"));
        }
        out.push_str("DriftGuard does not apply this plan.\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::Finding;
    use crate::testkit::{self, DriftBuilder};
    use chrono::{TimeZone, Utc};
    use serde_json::json;

    /// The drift of these tests: the object `prod:shop/web` of `group` and kind `k`, defined in
    /// `apps/web.yaml`.
    fn drift(kind: DriftKind, group: &str, k: &str) -> DriftBuilder {
        testkit::drift()
            .object(group, k)
            .api_version("v1")
            .kind(kind)
            .at(Utc.timestamp_opt(1_700_000_000, 0).single().expect("time"))
            .provenance("apps/web.yaml", 0, 1)
    }

    /// The Deployment scaled to zero by hand.
    fn scaled_to_zero() -> DriftBuilder {
        drift(DriftKind::Modified, "apps", "Deployment").field(
            "spec.replicas",
            Some(json!(3)),
            Some(json!(0)),
        )
    }

    #[test]
    fn revert_of_a_modified_object() {
        let d = scaled_to_zero()
            .finding(Finding {
                rule: "replicas-zero".into(),
                category: FindingCategory::Availability,
                risk: Severity::High,
                path: Some("spec.replicas".into()),
                reason: String::new(),
            })
            .build();
        let p = plan(&d, None);
        assert_eq!(
            (p.action, p.suggested),
            (RemediationAction::Revert, RemediationAction::Revert)
        );
        assert!(p.reason.contains("replicas-zero"));
        assert_eq!(
            p.steps[0].command.as_deref(),
            Some("kubectl diff -f apps/web.yaml")
        );
        assert_eq!(
            p.steps[1].command.as_deref(),
            Some("kubectl apply -f apps/web.yaml")
        );
        assert_eq!(p.steps[1].changes[0].to, Some(json!(3)));
        assert!(!p.applied);
        let text = p.to_text();
        assert!(text.contains("spec.replicas: 0 -> 3"), "{text}");
    }

    #[test]
    fn adopt_and_orphans() {
        let d = scaled_to_zero().build();
        let p = plan(&d, Some(RemediationAction::Adopt));
        assert_eq!(p.steps[0].changes[0].to, Some(json!(0)));
        let o = drift(DriftKind::Orphan, "", "ConfigMap").build();
        let p = plan(&o, None);
        assert_eq!(p.suggested, RemediationAction::Adopt);
        let p = plan(&o, Some(RemediationAction::Revert));
        assert_eq!(
            p.steps[1].command.as_deref(),
            Some("kubectl delete configmap -n shop web")
        );
        assert!(p.notes.iter().any(|n| n.contains("suggests to adopt")));
    }

    #[test]
    fn secrets_say_to_copy_by_hand() {
        let s = drift(DriftKind::Modified, "", "Secret")
            .field("data.token", Some(json!(REDACTED)), Some(json!(REDACTED)))
            .build();
        let p = plan(&s, Some(RemediationAction::Adopt));
        assert!(
            p.notes.iter().any(|n| n.contains("by hand")),
            "{:?}",
            p.notes
        );
    }
}
