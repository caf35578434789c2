//! Severity of a drift and the environment's drift score.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::compare::FieldDiff;
use crate::id::ResourceId;
use crate::names::named_enum;
use crate::path::glob_match;
use crate::selector::ObjectSelector;
use crate::state::DriftKind;

named_enum! {
    /// How bad a drift is.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
    pub enum Severity: "severity" {
        /// Cosmetic: labels, annotations.
        #[default]
        Low => "low",
        /// Configuration that changes behaviour: env vars, resources, ConfigMap data, ports.
        Medium => "medium",
        /// Images, Secret data, RBAC rules, replicas scaled to zero.
        High => "high",
        /// Security posture: privileged containers, host namespaces.
        Critical => "critical",
    }
}

impl Severity {
    /// Weight in the drift score.
    pub fn weight(self) -> f64 {
        match self {
            Severity::Low => 0.05,
            Severity::Medium => 0.2,
            Severity::High => 0.5,
            Severity::Critical => 1.0,
        }
    }
}

/// A configured severity override: which objects ([`ObjectSelector`], written inline: `group`,
/// `kind`, `namespace`, `name`), optionally which fields, and the severity to give.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeverityRule {
    /// The objects the rule applies to.
    #[serde(flatten)]
    pub selector: ObjectSelector,
    /// Field path glob, e.g. `spec.template.spec.containers*.image` (absent: any field).
    #[serde(default)]
    pub path: Option<String>,
    /// The severity to give.
    pub severity: Severity,
}

/// Severity rules: the built-in ones, then configured overrides (the highest matching override
/// wins over the built-in verdict).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeverityRules {
    /// Overrides.
    pub overrides: Vec<SeverityRule>,
}

const RBAC_KINDS: &[&str] = &["Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"];

impl SeverityRules {
    /// The severity of a drift of `id` with `fields` drifted.
    pub fn classify(&self, id: &ResourceId, kind: DriftKind, fields: &[FieldDiff]) -> Severity {
        let builtin = match kind {
            DriftKind::Modified => fields
                .iter()
                .map(|f| builtin_field(id, f))
                .max()
                .unwrap_or(Severity::Low),
            DriftKind::Missing | DriftKind::Orphan => {
                if id.group == "rbac.authorization.k8s.io" && RBAC_KINDS.contains(&id.kind.as_str())
                    || (id.group.is_empty() && id.kind == "Secret")
                {
                    Severity::High
                } else {
                    Severity::Medium
                }
            }
        };
        let matching: Vec<&SeverityRule> = self
            .overrides
            .iter()
            .filter(|r| {
                r.selector.matches(id)
                    && match &r.path {
                        None => true,
                        Some(p) => fields.iter().any(|f| glob_match(p, &f.path)),
                    }
            })
            .collect();
        match matching.iter().map(|r| r.severity).max() {
            Some(s) => s,
            None => builtin,
        }
    }
}

fn builtin_field(id: &ResourceId, f: &FieldDiff) -> Severity {
    let p = f.path.as_str();
    let last = p.rsplit(['.', ']']).next().unwrap_or(p);
    let is_true = |v: &Option<Value>| v.as_ref().and_then(Value::as_bool) == Some(true);
    if (last == "privileged" || last == "hostNetwork" || last == "hostPID" || last == "hostIPC")
        && is_true(&f.live)
    {
        return Severity::Critical;
    }
    if id.group == "rbac.authorization.k8s.io"
        && RBAC_KINDS.contains(&id.kind.as_str())
        && (p.starts_with("rules") || p.starts_with("subjects") || p.starts_with("roleRef"))
    {
        return Severity::High;
    }
    if id.group.is_empty() && id.kind == "Secret" && (p.starts_with("data") || p == "type") {
        return Severity::High;
    }
    if p.ends_with(".image") && p.contains("ontainers[") {
        return Severity::High;
    }
    if p == "spec.replicas" {
        let zero = f.live.as_ref().and_then(Value::as_i64) == Some(0);
        return if zero {
            Severity::High
        } else {
            Severity::Medium
        };
    }
    if p.starts_with("metadata.labels") || p.starts_with("metadata.annotations") {
        return Severity::Low;
    }
    Severity::Medium
}

/// The environment's drift score, 0 (in sync) to 100.
///
/// `score = min(100, 100 × Σ weight(risk of each open drift) / tracked objects)`, where a
/// drift's risk is its severity raised by its findings ([`crate::findings::drift_risk`]), with
/// weights low 0.05, medium 0.2, high 0.5, critical 1.0. An environment where every tracked object
/// has a critical drift scores 100; one low drift among 100 objects scores 0.05 (rounded to two
/// decimals).
pub fn drift_score(tracked: usize, open: impl IntoIterator<Item = Severity>) -> f64 {
    let sum: f64 = open.into_iter().map(Severity::weight).sum();
    if sum == 0.0 {
        return 0.0;
    }
    let score = (100.0 * sum / tracked.max(1) as f64).min(100.0);
    (score * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn diff(path: &str, live: Value) -> FieldDiff {
        FieldDiff {
            path: path.into(),
            desired: Some(json!(1)),
            live: Some(live),
        }
    }

    #[test]
    fn builtin_severities() {
        let id = ResourceId::new("e", "apps", "Deployment", Some("n"), "d");
        let r = SeverityRules::default();
        let c = |p: &str, v: Value| r.classify(&id, DriftKind::Modified, &[diff(p, v)]);
        assert_eq!(c("spec.replicas", json!(0)), Severity::High);
        assert_eq!(c("spec.replicas", json!(5)), Severity::Medium);
        assert_eq!(
            c("spec.template.spec.containers[a].image", json!("x")),
            Severity::High
        );
        assert_eq!(c("metadata.labels.x", json!("y")), Severity::Low);
        assert_eq!(
            c(
                "spec.template.spec.containers[a].securityContext.privileged",
                json!(true)
            ),
            Severity::Critical
        );
    }

    #[test]
    fn overrides_win() {
        let id = ResourceId::new("e", "apps", "Deployment", Some("n"), "d");
        let r = SeverityRules {
            overrides: vec![SeverityRule {
                path: Some("metadata.labels*".into()),
                severity: Severity::High,
                ..Default::default()
            }],
        };
        assert_eq!(
            r.classify(
                &id,
                DriftKind::Modified,
                &[diff("metadata.labels.x", json!("y"))]
            ),
            Severity::High
        );
    }

    #[test]
    fn overrides_select_by_group_too() {
        let rule: SeverityRule =
            serde_yaml::from_str("group: example.com\nkind: Widget\nseverity: critical\n")
                .expect("valid rule");
        let r = SeverityRules {
            overrides: vec![rule],
        };
        let d = [diff("spec.color", json!("red"))];
        let widget = |group: &str| ResourceId::new("e", group, "Widget", Some("n"), "w");
        assert_eq!(
            r.classify(&widget("example.com"), DriftKind::Modified, &d),
            Severity::Critical
        );
        assert_eq!(
            r.classify(&widget("other.org"), DriftKind::Modified, &d),
            Severity::Medium
        );
        // the fields written before the selector existed still read, unknown ones are refused
        let old: SeverityRule = serde_yaml::from_str(
            "kind: Deployment\nnamespace: prod\nname: web-*\npath: spec.replicas\nseverity: High\n",
        )
        .expect("valid rule");
        assert_eq!(old.selector.name.as_deref(), Some("web-*"));
        assert_eq!(old.severity, Severity::High);
        assert!(
            serde_yaml::from_str::<SeverityRule>("kind: X\nseverity: low\ngroups: [a]\n").is_err()
        );
    }

    #[test]
    fn score_formula() {
        assert_eq!(drift_score(10, []), 0.0);
        assert_eq!(drift_score(10, [Severity::High]), 5.0);
        assert_eq!(drift_score(1, [Severity::Critical, Severity::High]), 100.0);
    }
}
