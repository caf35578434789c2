//! Severity of a drift and the environment's drift score.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::compare::FieldDiff;
use crate::id::ResourceId;
use crate::names::named_enum;
use crate::path::{glob_match, Segment};
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
                    || crate::secret::is_secret(&id.group, &id.kind)
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
                        Some(p) => fields.iter().any(|f| glob_match(p, f.path.as_str())),
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
    if id.kind.starts_with("aws_") {
        return cloud_field(id, f);
    }
    let p = f.path.as_str();
    let last = f.path.last();
    let last = match &last {
        Some(Segment::Key(k)) => k,
        _ => "",
    };
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
    if crate::secret::is_secret(&id.group, &id.kind) && (p.starts_with("data") || p == "type") {
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

/// The severity of a drifted attribute of a cloud resource (Terraform's AWS resources): high
/// when the cloud is more open than the code says (a security group opened to `0.0.0.0/0` or
/// `::/0`, S3 public access, an IAM policy granting more), low for tags, medium otherwise.
fn cloud_field(id: &ResourceId, f: &FieldDiff) -> Severity {
    let top = f.path.segments().next();
    let top = match &top {
        Some(Segment::Key(k)) => k,
        _ => "",
    };
    let kind = id.kind.as_str();
    let high = match kind {
        "aws_security_group" | "aws_default_security_group" => {
            top == "ingress" && opens_to_world(&f.desired, &f.live, rule_items)
        }
        "aws_security_group_rule" => {
            matches!(top, "cidr_blocks" | "ipv6_cidr_blocks")
                && opens_to_world(&f.desired, &f.live, |v| vec![v])
        }
        "aws_vpc_security_group_ingress_rule" => {
            matches!(top, "cidr_ipv4" | "cidr_ipv6")
                && f.live
                    .as_ref()
                    .and_then(Value::as_str)
                    .is_some_and(is_world)
        }
        "aws_s3_bucket_public_access_block" | "aws_s3_account_public_access_block" => {
            matches!(
                top,
                "block_public_acls"
                    | "block_public_policy"
                    | "ignore_public_acls"
                    | "restrict_public_buckets"
            ) && f.live.as_ref().and_then(Value::as_bool) != Some(true)
        }
        "aws_s3_bucket_acl" | "aws_s3_bucket"
            if matches!(top, "acl" | "access_control_policy" | "grant") =>
        {
            public_acl(&f.live) && !public_acl(&f.desired)
        }
        "aws_s3_bucket_policy" | "aws_s3_bucket" if top == "policy" => {
            public_policy(&f.live) && !public_policy(&f.desired)
        }
        "aws_iam_policy"
        | "aws_iam_role_policy"
        | "aws_iam_user_policy"
        | "aws_iam_group_policy"
            if top == "policy" =>
        {
            policy_widened(&f.desired, &f.live)
        }
        "aws_iam_role" if matches!(top, "assume_role_policy" | "inline_policy") => {
            policy_widened(&f.desired, &f.live)
        }
        _ => false,
    };
    if high {
        Severity::High
    } else if top == "tags" || top == "tags_all" {
        Severity::Low
    } else {
        Severity::Medium
    }
}

fn is_world(cidr: &str) -> bool {
    cidr == "0.0.0.0/0" || cidr == "::/0"
}

/// The rules of a security group's `ingress` list.
fn rule_items(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(items) => items.iter().collect(),
        _ => Vec::new(),
    }
}

/// Whether `live` holds a world-open CIDR (in `cidr_blocks`/`ipv6_cidr_blocks` of its rules,
/// or as a plain CIDR list) for a rule that `desired` does not open to the world.
fn opens_to_world(
    desired: &Option<Value>,
    live: &Option<Value>,
    rules: impl Fn(&Value) -> Vec<&Value>,
) -> bool {
    let open = |rule: &Value| -> Vec<String> {
        let cidrs = |v: Option<&Value>| -> Vec<String> {
            v.and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .filter(|c| is_world(c))
                .map(str::to_owned)
                .collect()
        };
        match rule {
            Value::Array(_) => cidrs(Some(rule)),
            _ => {
                let mut c = cidrs(rule.get("cidr_blocks"));
                c.extend(cidrs(rule.get("ipv6_cidr_blocks")));
                c
            }
        }
    };
    // a rule is its ports and protocol; a world-open one the code also has is not new
    let key = |rule: &Value, cidr: &str| {
        format!(
            "{}|{}|{}|{cidr}",
            rule.get("from_port").unwrap_or(&Value::Null),
            rule.get("to_port").unwrap_or(&Value::Null),
            rule.get("protocol").unwrap_or(&Value::Null)
        )
    };
    let set = |v: &Option<Value>| -> std::collections::BTreeSet<String> {
        v.as_ref()
            .map(|v| {
                rules(v)
                    .into_iter()
                    .flat_map(|r| open(r).into_iter().map(move |c| key(r, &c)))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (d, l) = (set(desired), set(live));
    l.iter().any(|k| !d.contains(k))
}

/// Whether an S3 ACL (a canned ACL name, or grants) lets everyone or every AWS user in.
fn public_acl(v: &Option<Value>) -> bool {
    let Some(v) = v else {
        return false;
    };
    let text = v.to_string();
    [
        "public-read",
        "public-read-write",
        "authenticated-read",
        "/global/AllUsers",
        "/global/AuthenticatedUsers",
    ]
    .iter()
    .any(|p| text.contains(p))
}

/// The `Allow` statements of a policy document (a JSON string, as Terraform holds it).
fn allow_statements(v: &Option<Value>) -> Vec<Value> {
    let doc = match v {
        Some(Value::String(s)) => serde_json::from_str::<Value>(s).ok(),
        Some(other) => Some(other.clone()),
        None => None,
    };
    let Some(doc) = doc else {
        return Vec::new();
    };
    let statements = match doc.get("Statement") {
        Some(Value::Array(a)) => a.clone(),
        Some(one) => vec![one.clone()],
        None => Vec::new(),
    };
    statements
        .into_iter()
        .filter(|s| s.get("Effect").and_then(Value::as_str) == Some("Allow"))
        .collect()
}

/// The strings of a policy element (`"s3:*"` or `["a", "b"]`).
fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Some(Value::Object(m)) => m.values().flat_map(|x| strings(Some(x))).collect(),
        _ => Vec::new(),
    }
}

/// Whether a bucket policy allows anyone (`"Principal": "*"` or `{"AWS": "*"}`).
fn public_policy(v: &Option<Value>) -> bool {
    allow_statements(v)
        .iter()
        .any(|s| strings(s.get("Principal")).iter().any(|p| p == "*"))
}

/// Whether the live policy allows more than the code's: an action, resource or principal of
/// an `Allow` statement that the code's statements do not name.
fn policy_widened(desired: &Option<Value>, live: &Option<Value>) -> bool {
    let grants = |v: &Option<Value>| -> std::collections::BTreeSet<String> {
        allow_statements(v)
            .iter()
            .flat_map(|s| {
                [
                    "Action",
                    "NotAction",
                    "Resource",
                    "NotResource",
                    "Principal",
                ]
                .into_iter()
                .flat_map(move |k| {
                    strings(s.get(k))
                        .into_iter()
                        .map(move |x| format!("{k}={x}"))
                })
            })
            .collect()
    };
    let (d, l) = (grants(desired), grants(live));
    l.iter().any(|g| !d.contains(g))
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
    fn cloud_resources_are_high_when_more_open_than_the_code() {
        let r = SeverityRules::default();
        let id = |kind: &str| ResourceId::new("e", "aws", kind, None, format!("{kind}.x"));
        let field = |path: &str, desired: Value, live: Value| FieldDiff {
            path: path.into(),
            desired: Some(desired),
            live: Some(live),
        };
        let c = |kind: &str, f: FieldDiff| r.classify(&id(kind), DriftKind::Modified, &[f]);
        let rule = |port: u16, cidr: &str| json!({"from_port": port, "to_port": port, "protocol": "tcp", "cidr_blocks": [cidr]});
        let code = json!([rule(443, "10.0.0.0/16")]);
        assert_eq!(
            c(
                "aws_security_group",
                field(
                    "ingress",
                    code.clone(),
                    json!([rule(22, "0.0.0.0/0"), rule(443, "10.0.0.0/16")])
                )
            ),
            Severity::High
        );
        // a rule the code opens to the world already is not new
        let open = json!([rule(443, "0.0.0.0/0")]);
        assert_eq!(
            c(
                "aws_security_group",
                field(
                    "ingress",
                    open.clone(),
                    json!([rule(443, "0.0.0.0/0"), rule(80, "10.0.0.0/8")])
                )
            ),
            Severity::Medium
        );
        assert_eq!(
            c(
                "aws_security_group",
                field("ingress", code, json!([rule(443, "10.1.0.0/16")]))
            ),
            Severity::Medium
        );
        assert_eq!(
            c(
                "aws_vpc_security_group_ingress_rule",
                field("cidr_ipv6", json!("2001:db8::/32"), json!("::/0"))
            ),
            Severity::High
        );
        assert_eq!(
            c(
                "aws_s3_bucket_public_access_block",
                field("block_public_policy", json!(true), json!(false))
            ),
            Severity::High
        );
        assert_eq!(
            c(
                "aws_s3_bucket_acl",
                field("acl", json!("private"), json!("public-read"))
            ),
            Severity::High
        );
        let policy = |principal: &str| {
            json!(
                json!({"Statement": [{"Effect": "Allow", "Principal": principal,
                "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}]})
                .to_string()
            )
        };
        assert_eq!(
            c(
                "aws_s3_bucket_policy",
                field("policy", policy("arn:aws:iam::1:root"), policy("*"))
            ),
            Severity::High
        );
        let iam = |actions: Value| {
            json!(
                json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                "Action": actions, "Resource": "*"}]})
                .to_string()
            )
        };
        assert_eq!(
            c(
                "aws_iam_policy",
                field(
                    "policy",
                    iam(json!(["s3:GetObject"])),
                    iam(json!(["s3:GetObject", "s3:*"]))
                )
            ),
            Severity::High
        );
        assert_eq!(
            c(
                "aws_iam_policy",
                field(
                    "policy",
                    iam(json!(["s3:GetObject", "s3:PutObject"])),
                    iam(json!(["s3:GetObject"]))
                )
            ),
            Severity::Medium,
            "narrowed is not widened"
        );
        assert_eq!(
            c("aws_s3_bucket", field("tags.team", json!("a"), json!("b"))),
            Severity::Low
        );
        assert_eq!(
            c(
                "aws_db_instance",
                field("allocated_storage", json!(20), json!(30))
            ),
            Severity::Medium
        );
        // missing and orphan cloud resources are medium, and overrides still win
        assert_eq!(
            r.classify(&id("aws_vpc"), DriftKind::Missing, &[]),
            Severity::Medium
        );
    }

    #[test]
    fn score_formula() {
        assert_eq!(drift_score(10, []), 0.0);
        assert_eq!(drift_score(10, [Severity::High]), 5.0);
        assert_eq!(drift_score(1, [Severity::Critical, Severity::High]), 100.0);
    }
}
