//! Risk findings: what a drift means, judged deterministically, with reasons a person can read.
//!
//! Computing the diff says *what* differs; a finding says *why it matters*: a security
//! loosening (a privileged container, an RBAC rule widened, a NetworkPolicy removed, a Service
//! exposed), an availability risk (replicas to zero, limits removed, probes removed, a
//! PodDisruptionBudget loosened), a supply-chain risk (an image on a mutable tag, a digest
//! dropped, a registry changed, an image Git never named) or likely noise (a field a controller
//! DriftGuard does not know keeps writing). A drift touching only labels and annotations is
//! judged cosmetic.
//!
//! Findings are computed from what the engine already holds about a drifted object: its
//! identity, the kind of drift, the field diffs (desired and live values; Secret values come
//! redacted and are never looked at: no rule reads a Secret's content), the field owners, and
//! for whole-object drifts (missing, orphan) the object's normalized content. The rules are the
//! built-in ones below; configured [`FindingOverride`]s change a finding's risk or switch it off
//! for some objects. [`drift_risk`] is how much a drift weighs in the drift score.
//!
//! | rule | category | risk |
//! | --- | --- | --- |
//! | `privileged` | security | critical |
//! | `privilege-escalation` | security | high |
//! | `run-as-root` | security | high |
//! | `capabilities-added` | security | high (critical for `ALL`, `SYS_ADMIN`) |
//! | `host-namespace` | security | critical |
//! | `host-path` | security | critical |
//! | `rbac-widened` | security | high (critical for `*`, `escalate`, `bind`, `impersonate`) |
//! | `rbac-subjects-added` | security | high (critical for anonymous or all users) |
//! | `cluster-admin-binding` | security | critical |
//! | `network-policy-removed` | security | high |
//! | `network-policy-opened` | security | high |
//! | `service-exposed` | security | high |
//! | `ingress-widened` | security | medium |
//! | `ingress-tls-removed` | security | high |
//! | `replicas-zero` | availability | high |
//! | `replicas-cut` | availability | medium |
//! | `limits-removed` | availability | medium |
//! | `limits-cut` | availability | medium |
//! | `probe-removed` | availability | medium |
//! | `pdb-loosened` | availability | medium |
//! | `workload-missing` | availability | high |
//! | `service-missing` | availability | medium |
//! | `image-mutable-tag` | supply-chain | high |
//! | `image-digest-dropped` | supply-chain | high |
//! | `image-registry-changed` | supply-chain | high |
//! | `image-not-in-git` | supply-chain | medium |
//! | `controller-owned` | likely-noise | low |
//! | `metadata-only` | cosmetic | low |

use std::cell::OnceCell;
use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::compare::FieldDiff;
use crate::doc::Doc;
use crate::id::ResourceId;
use crate::managed::{manager_kind, FieldOwner, ManagerKind};
use crate::names::named_enum;
use crate::path::{glob_match, FieldPath};
use crate::quantity::parse_nanos;
use crate::selector::ObjectSelector;
use crate::severity::Severity;
use crate::state::DriftKind;

mod availability;
mod objects;
mod security;
mod supply_chain;
#[cfg(test)]
mod tests;

use availability::*;
use objects::*;
use security::*;
use supply_chain::*;

named_enum! {
    /// What a finding is about.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub enum FindingCategory: "finding category" {
        /// Security posture loosened: privileges, RBAC, network exposure.
        Security => "security",
        /// What keeps the service up: replicas, limits, probes, disruption budgets.
        Availability => "availability",
        /// Where the running code comes from: image tags, digests, registries.
        SupplyChain => "supply-chain",
        /// Probably a controller's doing rather than a person's.
        LikelyNoise => "likely-noise",
        /// Only labels or annotations.
        Cosmetic => "cosmetic",
    }
}

/// One judgement on a drift.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Finding {
    /// The rule that found it (e.g. `rbac-widened`; see [the module](self)).
    pub rule: String,
    /// What it is about.
    pub category: FindingCategory,
    /// How risky it is.
    pub risk: Severity,
    /// The field it concerns (absent: the whole object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<FieldPath>,
    /// Why, in words a person can read.
    pub reason: String,
}

/// A configured change to the built-in findings: which objects ([`ObjectSelector`], written
/// inline), which rule (glob on the rule name) and field, and the risk to give (or `off`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FindingOverride {
    /// The objects the override applies to.
    #[serde(flatten)]
    pub selector: ObjectSelector,
    /// Rule name glob, e.g. `image-*` (absent: any rule).
    #[serde(default)]
    pub rule: Option<String>,
    /// Field path glob (absent: any field, and whole-object findings).
    #[serde(default)]
    pub path: Option<String>,
    /// The risk to give the matching findings (absent: keep the built-in risk).
    #[serde(default)]
    pub risk: Option<Severity>,
    /// Drop the matching findings.
    #[serde(default)]
    pub off: bool,
}

/// The finding rules of an environment: the built-in rules, then the configured overrides (the
/// last matching override decides).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FindingRules {
    /// Overrides, in order.
    #[serde(default)]
    pub overrides: Vec<FindingOverride>,
    /// Field managers (globs) that are people's tools or Git appliers besides the built-in
    /// ones (`kubectl*`, `helm`, `k9s*`, `Mozilla*`, `argocd*`, `kustomize-controller`,
    /// `helm-controller`): what they write is never judged likely noise.
    #[serde(default)]
    pub people_managers: Vec<String>,
}

/// Mutable image tags (besides no tag at all).
const MUTABLE_TAGS: &[&str] = &[
    "latest", "main", "master", "dev", "develop", "edge", "nightly", "stable", "snapshot",
    "canary", "head", "trunk",
];

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// What the rules look at for one drift.
#[derive(Clone, Debug)]
pub struct FindingInput<'a> {
    /// The object.
    pub id: &'a ResourceId,
    /// The kind of drift.
    pub kind: DriftKind,
    /// The drifted fields (Secret values redacted).
    pub fields: &'a [FieldDiff],
    /// Owners of the drifted fields.
    pub owners: &'a [FieldOwner],
    /// The normalized desired content, when in Git (never given for Secrets).
    pub desired: Option<&'a Doc>,
    /// The normalized live content, when in the cluster (never given for Secrets).
    pub live: Option<&'a Doc>,
}

impl<'a> FindingInput<'a> {
    /// The input for a drift of `id` with `fields` and no content.
    pub fn new(id: &'a ResourceId, kind: DriftKind, fields: &'a [FieldDiff]) -> Self {
        FindingInput {
            id,
            kind,
            fields,
            owners: &[],
            desired: None,
            live: None,
        }
    }
}

/// The input with its contents turned into values when a rule asks.
struct Ctx<'a> {
    input: &'a FindingInput<'a>,
    desired: OnceCell<Option<Value>>,
    live: OnceCell<Option<Value>>,
    out: Vec<Finding>,
}

impl Ctx<'_> {
    fn secret(&self) -> bool {
        crate::secret::is_secret(&self.input.id.group, &self.input.id.kind)
    }

    fn desired(&self) -> Option<&Value> {
        if self.secret() {
            return None;
        }
        self.desired
            .get_or_init(|| self.input.desired.map(Doc::to_value))
            .as_ref()
    }

    fn live(&self) -> Option<&Value> {
        if self.secret() {
            return None;
        }
        self.live
            .get_or_init(|| self.input.live.map(Doc::to_value))
            .as_ref()
    }

    fn add(
        &mut self,
        rule: &str,
        category: FindingCategory,
        risk: Severity,
        path: Option<&FieldPath>,
        reason: String,
    ) {
        let f = Finding {
            rule: rule.to_owned(),
            category,
            risk,
            path: path.cloned(),
            reason,
        };
        if !self.out.contains(&f) {
            self.out.push(f);
        }
    }
}

impl FindingRules {
    /// The findings on one drift: the built-in rules, then the overrides; sorted by risk
    /// (highest first), then rule and path. Empty when the object is in sync.
    pub fn judge(&self, input: &FindingInput<'_>) -> Vec<Finding> {
        let mut ctx = Ctx {
            input,
            desired: OnceCell::new(),
            live: OnceCell::new(),
            out: Vec::new(),
        };
        match input.kind {
            DriftKind::Modified => {
                if input.fields.is_empty() {
                    return Vec::new();
                }
                for f in input.fields {
                    field_rules(&mut ctx, f);
                }
                probes_removed(&mut ctx);
                self.noise(&mut ctx);
                metadata_only(&mut ctx);
            }
            DriftKind::Missing => missing_rules(&mut ctx),
            DriftKind::Orphan => orphan_rules(&mut ctx),
        }
        let mut out = self.apply_overrides(input.id, ctx.out);
        out.sort_by(|a, b| {
            b.risk
                .cmp(&a.risk)
                .then_with(|| a.rule.cmp(&b.rule))
                .then_with(|| a.path.cmp(&b.path))
        });
        out
    }

    fn apply_overrides(&self, id: &ResourceId, findings: Vec<Finding>) -> Vec<Finding> {
        if self.overrides.is_empty() {
            return findings;
        }
        findings
            .into_iter()
            .filter_map(|mut f| {
                let last = self.overrides.iter().rev().find(|o| {
                    o.selector.matches(id)
                        && o.rule.as_deref().is_none_or(|r| glob_match(r, &f.rule))
                        && o.path.as_deref().is_none_or(|p| {
                            f.path.as_ref().is_some_and(|fp| glob_match(p, fp.as_str()))
                        })
                });
                match last {
                    Some(o) if o.off => None,
                    Some(o) => {
                        if let Some(r) = o.risk {
                            f.risk = r;
                        }
                        Some(f)
                    }
                    None => Some(f),
                }
            })
            .collect()
    }

    /// `controller-owned`: every drifted field was last written by a controller (an `Update`
    /// by a field manager that is neither a person's tool nor a Git applier).
    fn noise(&self, ctx: &mut Ctx<'_>) {
        let input = ctx.input;
        let mut controllers: BTreeSet<&str> = BTreeSet::new();
        for f in input.fields {
            let Some(owner) = input.owners.iter().find(|o| o.path == f.path) else {
                return;
            };
            let kind = manager_kind(&owner.manager, &owner.operation, &self.people_managers);
            if kind != ManagerKind::Controller {
                return;
            }
            controllers.insert(&owner.manager);
        }
        if controllers.is_empty() {
            return;
        }
        let names: Vec<String> = controllers.iter().map(|m| format!("`{m}`")).collect();
        ctx.add(
            "controller-owned",
            FindingCategory::LikelyNoise,
            Severity::Low,
            None,
            format!(
                "every drifted field was last written by {} (an Update by a controller, not a \
                 person's tool): likely a controller DriftGuard does not know rewriting its own \
                 fields; an ignore rule with `managedFieldsManagers` would silence it",
                names.join(", ")
            ),
        );
    }
}

/// How much a drift weighs in the drift score: its severity, raised to the highest risk of its
/// findings; a drift whose only findings say likely noise (or cosmetic) weighs as low.
pub fn drift_risk(severity: Severity, findings: &[Finding]) -> Severity {
    let weighty = findings.iter().filter(|f| {
        !matches!(
            f.category,
            FindingCategory::LikelyNoise | FindingCategory::Cosmetic
        )
    });
    let top = weighty.map(|f| f.risk).max();
    let noise = findings
        .iter()
        .any(|f| f.category == FindingCategory::LikelyNoise);
    match top {
        Some(r) => r.max(severity),
        None if noise => Severity::Low,
        None => severity,
    }
}

// ------------------------------------------------------------------ paths and values

/// The segments of a path as normalized map keys: `a.b[x]["c.d"]` is
/// `["a", "b", "[x]", "c.d"]`.
fn segments(path: &FieldPath) -> Vec<String> {
    path.segments().map(|s| s.map_key().into_owned()).collect()
}

fn value_at<'v>(root: &'v Value, segs: &[String]) -> Option<&'v Value> {
    segs.iter().try_fold(root, |v, k| v.get(k.as_str()))
}

/// The name inside an item segment: `[api]` is `api`.
fn item_name(seg: &str) -> &str {
    seg.trim_start_matches('[').trim_end_matches(']')
}

/// The path up to and including the container item (`...containers[api]`), and the
/// container's name, when `segs` lies inside a container.
fn container_of(segs: &[String]) -> Option<(usize, &str)> {
    segs.iter().enumerate().find_map(|(i, s)| {
        let list = i.checked_sub(1).map(|j| segs[j].as_str());
        let is_list = matches!(
            list,
            Some("containers" | "initContainers" | "ephemeralContainers")
        );
        (is_list && s.starts_with('[')).then(|| (i, item_name(s)))
    })
}

fn join(segs: &[String]) -> FieldPath {
    FieldPath::from_keys(segs.iter().map(String::as_str))
}

fn show(v: &Option<Value>) -> String {
    match v {
        None | Some(Value::Null) => "(absent)".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn is_true(v: &Option<Value>) -> bool {
    v.as_ref().and_then(Value::as_bool) == Some(true)
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_owned))
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

fn list(v: Option<&Value>) -> Vec<&Value> {
    match v {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(Value::Object(m)) => m.values().collect(),
        _ => Vec::new(),
    }
}

// ------------------------------------------------------------------ modified: per field

fn field_rules(ctx: &mut Ctx<'_>, f: &FieldDiff) {
    let id = ctx.input.id;
    let segs = segments(&f.path);
    let last = segs.last().map(String::as_str).unwrap_or("");
    let p = &f.path;

    // security context of a container or pod
    if segs.iter().any(|s| s == "securityContext") {
        security_context(ctx, f, &segs, last);
    }
    if matches!(last, "hostNetwork" | "hostPID" | "hostIPC") && is_true(&f.live) {
        ctx.add(
            "host-namespace",
            FindingCategory::Security,
            Severity::Critical,
            Some(p),
            format!("`{last}: true` in the cluster: the pods share the node's namespace"),
        );
    }
    if segs.iter().any(|s| s == "volumes") {
        host_path(ctx, f, &segs);
    }

    // RBAC
    if id.group == RBAC_GROUP {
        match id.kind.as_str() {
            "Role" | "ClusterRole" if segs.first().map(String::as_str) == Some("rules") => {
                rbac_rules(ctx, f);
            }
            "RoleBinding" | "ClusterRoleBinding" => binding_field(ctx, f, &segs),
            _ => {}
        }
    }

    // network exposure
    if id.group == "networking.k8s.io" && id.kind == "NetworkPolicy" {
        network_policy_field(ctx, f, &segs);
    }
    if id.group.is_empty() && id.kind == "Service" {
        service_field(ctx, f, &segs);
    }
    if matches!(id.group.as_str(), "networking.k8s.io" | "extensions") && id.kind == "Ingress" {
        ingress_field(ctx, f, &segs);
    }

    // availability
    if p == "spec.replicas" {
        replicas(ctx, f);
    }
    if let Some(i) = segs.iter().position(|s| s == "limits") {
        if i > 0 && segs[i - 1] == "resources" {
            limits(ctx, f, &segs);
        }
    }
    if id.group == "policy" && id.kind == "PodDisruptionBudget" {
        pdb_field(ctx, f, last);
    }

    // supply chain
    if last == "image" && container_of(&segs).is_some() {
        image_field(ctx, f, &segs);
    }
}
