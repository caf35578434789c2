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

fn security_context(ctx: &mut Ctx<'_>, f: &FieldDiff, segs: &[String], last: &str) {
    let p = &f.path;
    let who = match container_of(segs) {
        Some((_, name)) => format!("container `{name}`"),
        None => "the pods".to_owned(),
    };
    let sc_value = |v: &Option<Value>, key: &str| -> Option<Value> {
        // the diff may be at the securityContext map itself (added or removed whole)
        match last {
            "securityContext" => v.as_ref().and_then(|m| m.get(key)).cloned(),
            l if l == key => v.clone(),
            _ => None,
        }
    };
    let at_sc = last == "securityContext";
    if (at_sc || last == "privileged") && is_true(&sc_value(&f.live, "privileged")) {
        ctx.add(
            "privileged",
            FindingCategory::Security,
            Severity::Critical,
            Some(p),
            format!("{who} runs privileged in the cluster: full access to the node"),
        );
    }
    if at_sc || last == "allowPrivilegeEscalation" {
        let d = sc_value(&f.desired, "allowPrivilegeEscalation");
        let l = sc_value(&f.live, "allowPrivilegeEscalation");
        let denied_in_git = d.as_ref().and_then(Value::as_bool) == Some(false);
        let denied_live = l.as_ref().and_then(Value::as_bool) == Some(false);
        if denied_in_git && !denied_live {
            ctx.add(
                "privilege-escalation",
                FindingCategory::Security,
                Severity::High,
                Some(p),
                format!(
                    "Git forbids privilege escalation for {who}; the cluster allows it \
                     (allowPrivilegeEscalation: {})",
                    show(&l)
                ),
            );
        }
    }
    if at_sc || last == "runAsNonRoot" {
        let d = sc_value(&f.desired, "runAsNonRoot");
        let l = sc_value(&f.live, "runAsNonRoot");
        if is_true(&d) && !is_true(&l) {
            ctx.add(
                "run-as-root",
                FindingCategory::Security,
                Severity::High,
                Some(p),
                format!(
                    "Git requires {who} to run as non-root; the cluster dropped it (runAsNonRoot: {})",
                    show(&l)
                ),
            );
        }
    }
    if at_sc || last == "runAsUser" {
        let d = sc_value(&f.desired, "runAsUser");
        let l = sc_value(&f.live, "runAsUser");
        let root_live = l.as_ref().and_then(Value::as_i64) == Some(0);
        let root_git = d.as_ref().and_then(Value::as_i64) == Some(0);
        if root_live && !root_git {
            ctx.add(
                "run-as-root",
                FindingCategory::Security,
                Severity::High,
                Some(p),
                format!(
                    "{who} runs as root (runAsUser: 0) in the cluster; Git says {}",
                    show(&d)
                ),
            );
        }
    }
    // capabilities: the diff is at `capabilities`, `capabilities.add` or the whole context
    let caps = |v: &Option<Value>| -> Vec<String> {
        let root = match last {
            "securityContext" => v.as_ref().and_then(|m| m.get("capabilities")),
            "capabilities" => v.as_ref(),
            "add" if segs.len() >= 2 && segs[segs.len() - 2] == "capabilities" => {
                return strings(v.as_ref());
            }
            _ => return Vec::new(),
        };
        strings(root.and_then(|c| c.get("add")))
    };
    let (d, l) = (caps(&f.desired), caps(&f.live));
    let added: Vec<&String> = l.iter().filter(|c| !d.contains(c)).collect();
    if !added.is_empty() {
        let critical = added
            .iter()
            .any(|c| matches!(c.trim_start_matches("CAP_"), "ALL" | "SYS_ADMIN"));
        let names: Vec<&str> = added.iter().map(|s| s.as_str()).collect();
        ctx.add(
            "capabilities-added",
            FindingCategory::Security,
            if critical {
                Severity::Critical
            } else {
                Severity::High
            },
            Some(p),
            format!(
                "{who} gained Linux capabilities in the cluster that Git does not grant: {}",
                names.join(", ")
            ),
        );
    }
}

/// `host-path`: a volume in the cluster mounts a path of the node.
fn host_path(ctx: &mut Ctx<'_>, f: &FieldDiff, segs: &[String]) {
    let Some(vi) = segs.iter().position(|s| s == "volumes") else {
        return;
    };
    // the diff's own value, or the volume in the live object (an emptyDir swapped for a
    // hostPath shows only as the emptyDir gone)
    let from_diff = f
        .live
        .as_ref()
        .is_some_and(|v| segs.iter().any(|s| s == "hostPath") || contains_key(v, "hostPath"));
    let volume = segs.get(vi + 1).filter(|s| s.starts_with('['));
    let from_live = volume.is_some_and(|_| {
        ctx.live()
            .and_then(|l| value_at(l, &segs[..vi + 2]))
            .is_some_and(|v| v.get("hostPath").is_some())
    });
    if from_diff || from_live {
        let name = volume.map(|s| item_name(s)).unwrap_or("a volume");
        ctx.add(
            "host-path",
            FindingCategory::Security,
            Severity::Critical,
            Some(&f.path),
            format!("volume `{name}` mounts a path of the node (hostPath) in the cluster"),
        );
    }
}

fn contains_key(v: &Value, key: &str) -> bool {
    match v {
        Value::Object(m) => m.contains_key(key) || m.values().any(|c| contains_key(c, key)),
        Value::Array(items) => items.iter().any(|c| contains_key(c, key)),
        _ => false,
    }
}

/// One permission an RBAC rule grants.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Grant {
    group: String,
    resource: String,
    verb: String,
    names: Vec<String>,
}

impl Grant {
    fn covered_by(&self, g: &Grant) -> bool {
        let m = |a: &str, b: &str| b == "*" || a == b;
        m(&self.group, &g.group)
            && m(&self.resource, &g.resource)
            && m(&self.verb, &g.verb)
            && (g.names.is_empty() || (!self.names.is_empty() && self.names == g.names))
    }

    fn label(&self) -> String {
        let group = if self.group.is_empty() {
            "core".to_owned()
        } else {
            self.group.clone()
        };
        let mut s = format!("{} {} ({group})", self.verb, self.resource);
        if !self.names.is_empty() {
            s.push_str(&format!(" named {}", self.names.join(", ")));
        }
        s
    }

    fn dangerous(&self) -> bool {
        self.group == "*"
            || self.resource == "*"
            || self.verb == "*"
            || matches!(self.verb.as_str(), "escalate" | "bind" | "impersonate")
    }
}

fn grants(rules: Option<&Value>) -> Vec<Grant> {
    let mut out = Vec::new();
    for rule in list(rules) {
        let verbs = strings(rule.get("verbs"));
        let names = {
            let mut n = strings(rule.get("resourceNames"));
            n.sort();
            n
        };
        let urls = strings(rule.get("nonResourceURLs"));
        for url in &urls {
            for v in &verbs {
                out.push(Grant {
                    group: "(non-resource)".into(),
                    resource: url.clone(),
                    verb: v.clone(),
                    names: Vec::new(),
                });
            }
        }
        let mut groups = strings(rule.get("apiGroups"));
        let resources = strings(rule.get("resources"));
        if groups.is_empty() && !resources.is_empty() {
            // the core group reads back as `[""]`, which normalizes to a list of one empty string
            groups.push(String::new());
        }
        for g in &groups {
            for r in &resources {
                for v in &verbs {
                    out.push(Grant {
                        group: g.clone(),
                        resource: r.clone(),
                        verb: v.clone(),
                        names: names.clone(),
                    });
                }
            }
        }
    }
    out
}

/// `rbac-widened`: the cluster's rules grant what Git's do not.
fn rbac_rules(ctx: &mut Ctx<'_>, f: &FieldDiff) {
    let desired = grants(f.desired.as_ref());
    let mut added: Vec<Grant> = grants(f.live.as_ref())
        .into_iter()
        .filter(|g| !desired.iter().any(|d| g.covered_by(d)))
        .collect();
    added.sort();
    added.dedup();
    if added.is_empty() {
        return;
    }
    let critical = added.iter().any(Grant::dangerous);
    let labels: Vec<String> = added.iter().take(8).map(Grant::label).collect();
    let more = if added.len() > 8 {
        format!(" and {} more", added.len() - 8)
    } else {
        String::new()
    };
    let id = ctx.input.id;
    ctx.add(
        "rbac-widened",
        FindingCategory::Security,
        if critical {
            Severity::Critical
        } else {
            Severity::High
        },
        Some(&f.path),
        format!(
            "the {} `{}` grants more in the cluster than in Git: {}{more}",
            id.kind,
            id.name,
            labels.join("; ")
        ),
    );
}

fn subjects(v: Option<&Value>) -> Vec<String> {
    list(v)
        .into_iter()
        .map(|s| {
            let k = s.get("kind").and_then(Value::as_str).unwrap_or("");
            let n = s.get("name").and_then(Value::as_str).unwrap_or("");
            match s.get("namespace").and_then(Value::as_str) {
                Some(ns) => format!("{k} {ns}/{n}"),
                None => format!("{k} {n}"),
            }
        })
        .collect()
}

fn everyone(subject: &str) -> bool {
    [
        "system:anonymous",
        "system:unauthenticated",
        "system:authenticated",
    ]
    .iter()
    .any(|g| subject.ends_with(&format!(" {g}")))
}

fn binding_field(ctx: &mut Ctx<'_>, f: &FieldDiff, segs: &[String]) {
    let first = segs.first().map(String::as_str);
    let p = &f.path;
    if first == Some("roleRef") {
        let name = |v: &Option<Value>| -> Option<String> {
            match segs.get(1).map(String::as_str) {
                Some("name") => v.as_ref().and_then(Value::as_str).map(str::to_owned),
                None => v
                    .as_ref()
                    .and_then(|r| r.get("name"))
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                _ => None,
            }
        };
        if name(&f.live).as_deref() == Some("cluster-admin")
            && name(&f.desired).as_deref() != Some("cluster-admin")
        {
            ctx.add(
                "cluster-admin-binding",
                FindingCategory::Security,
                Severity::Critical,
                Some(p),
                format!(
                    "the binding `{}` points at `cluster-admin` in the cluster (Git: `{}`)",
                    ctx.input.id.name,
                    name(&f.desired).unwrap_or_else(|| "(absent)".into())
                ),
            );
        }
    }
    if first == Some("subjects") {
        let d = subjects(f.desired.as_ref());
        let added: Vec<String> = subjects(f.live.as_ref())
            .into_iter()
            .filter(|s| !d.contains(s))
            .collect();
        if !added.is_empty() {
            let critical = added.iter().any(|s| everyone(s));
            ctx.add(
                "rbac-subjects-added",
                FindingCategory::Security,
                if critical {
                    Severity::Critical
                } else {
                    Severity::High
                },
                Some(p),
                format!(
                    "the binding `{}` grants its role to more subjects in the cluster than in Git: {}",
                    ctx.input.id.name,
                    added.join(", ")
                ),
            );
        }
    }
}

/// Whether a NetworkPolicy rule lets anything in (or out): no peers, an empty peer, or
/// `0.0.0.0/0`.
fn open_rule(rule: &Value, peers: &str) -> bool {
    let list = match rule.get(peers) {
        None | Some(Value::Null) => return true,
        Some(Value::Array(items)) => items,
        Some(_) => return false,
    };
    list.is_empty()
        || list.iter().any(|p| {
            p.as_object().is_some_and(|m| m.is_empty())
                || p.get("ipBlock")
                    .and_then(|b| b.get("cidr"))
                    .and_then(Value::as_str)
                    .is_some_and(|c| c == "0.0.0.0/0" || c == "::/0")
        })
}

fn network_policy_field(ctx: &mut Ctx<'_>, f: &FieldDiff, segs: &[String]) {
    let p = &f.path;
    let (direction, peers) = match segs.get(1).map(String::as_str) {
        Some("ingress") => ("ingress", "from"),
        Some("egress") => ("egress", "to"),
        Some("podSelector") => {
            ctx.add(
                "network-policy-opened",
                FindingCategory::Security,
                Severity::Medium,
                Some(p),
                format!(
                    "the NetworkPolicy `{}` selects other pods in the cluster than in Git",
                    ctx.input.id.name
                ),
            );
            return;
        }
        Some("policyTypes") => {
            let d = strings(f.desired.as_ref());
            let l = strings(f.live.as_ref());
            let dropped: Vec<&String> = d.iter().filter(|t| !l.contains(t)).collect();
            if !dropped.is_empty() && f.live.is_some() {
                let names: Vec<&str> = dropped.iter().map(|s| s.as_str()).collect();
                ctx.add(
                    "network-policy-opened",
                    FindingCategory::Security,
                    Severity::High,
                    Some(p),
                    format!(
                        "the NetworkPolicy `{}` no longer restricts {} traffic in the cluster",
                        ctx.input.id.name,
                        names.join(" and ")
                    ),
                );
            }
            return;
        }
        _ => return,
    };
    if segs.len() != 2 {
        return;
    }
    let d = list(f.desired.as_ref());
    let l = list(f.live.as_ref());
    let added: Vec<&&Value> = l.iter().filter(|r| !d.contains(r)).collect();
    if added.is_empty() {
        return;
    }
    let opens_all = added.iter().any(|r| open_rule(r, peers));
    ctx.add(
        "network-policy-opened",
        FindingCategory::Security,
        Severity::High,
        Some(p),
        if opens_all {
            format!(
                "the NetworkPolicy `{}` allows all {direction} traffic in the cluster",
                ctx.input.id.name
            )
        } else {
            format!(
                "the NetworkPolicy `{}` has {} {direction} rule(s) in the cluster that Git does not",
                ctx.input.id.name,
                added.len()
            )
        },
    );
}

fn service_field(ctx: &mut Ctx<'_>, f: &FieldDiff, segs: &[String]) {
    let p = &f.path;
    match segs.get(1).map(String::as_str) {
        Some("type") if segs.len() == 2 => {
            let l = f
                .live
                .as_ref()
                .and_then(Value::as_str)
                .unwrap_or("ClusterIP");
            if matches!(l, "LoadBalancer" | "NodePort") {
                ctx.add(
                    "service-exposed",
                    FindingCategory::Security,
                    Severity::High,
                    Some(p),
                    format!(
                        "the Service `{}` is of type {l} in the cluster (Git: {}): reachable \
                         from outside the cluster",
                        ctx.input.id.name,
                        show(&f.desired)
                    ),
                );
            }
        }
        Some("externalIPs") if !strings(f.live.as_ref()).is_empty() => {
            ctx.add(
                "service-exposed",
                FindingCategory::Security,
                Severity::High,
                Some(p),
                format!(
                    "the Service `{}` has external IPs in the cluster: {}",
                    ctx.input.id.name,
                    strings(f.live.as_ref()).join(", ")
                ),
            );
        }
        Some("loadBalancerSourceRanges") if f.live.is_none() => {
            ctx.add(
                "service-exposed",
                FindingCategory::Security,
                Severity::High,
                Some(p),
                format!(
                    "the Service `{}` lost its load balancer source ranges in the cluster: open to any address",
                    ctx.input.id.name
                ),
            );
        }
        _ => {}
    }
}

fn ingress_routes(v: Option<&Value>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for rule in list(v) {
        let host = rule.get("host").and_then(Value::as_str).unwrap_or("*");
        let paths = rule.get("http").and_then(|h| h.get("paths"));
        let ps = list(paths);
        if ps.is_empty() {
            out.insert(host.to_owned());
        }
        for p in ps {
            let path = p.get("path").and_then(Value::as_str).unwrap_or("/");
            out.insert(format!("{host}{path}"));
        }
    }
    out
}

fn ingress_field(ctx: &mut Ctx<'_>, f: &FieldDiff, segs: &[String]) {
    let p = &f.path;
    match segs.get(1).map(String::as_str) {
        Some("rules") => {
            let d = ingress_routes(f.desired.as_ref());
            let added: Vec<String> = ingress_routes(f.live.as_ref())
                .into_iter()
                .filter(|r| !d.contains(r))
                .collect();
            if !added.is_empty() {
                ctx.add(
                    "ingress-widened",
                    FindingCategory::Security,
                    Severity::Medium,
                    Some(p),
                    format!(
                        "the Ingress `{}` routes more in the cluster than in Git: {}",
                        ctx.input.id.name,
                        added.join(", ")
                    ),
                );
            }
        }
        Some("tls") if f.desired.is_some() && f.live.is_none() => {
            ctx.add(
                "ingress-tls-removed",
                FindingCategory::Security,
                Severity::High,
                Some(p),
                format!(
                    "the Ingress `{}` lost its TLS settings in the cluster: traffic in clear text",
                    ctx.input.id.name
                ),
            );
        }
        _ => {}
    }
}

fn replicas(ctx: &mut Ctx<'_>, f: &FieldDiff) {
    let (Some(d), Some(l)) = (
        f.desired.as_ref().and_then(Value::as_i64),
        f.live.as_ref().and_then(Value::as_i64),
    ) else {
        return;
    };
    if l == 0 && d > 0 {
        ctx.add(
            "replicas-zero",
            FindingCategory::Availability,
            Severity::High,
            Some(&f.path),
            format!("scaled to zero in the cluster (Git: {d}): nothing serves"),
        );
    } else if l > 0 && l * 2 <= d {
        ctx.add(
            "replicas-cut",
            FindingCategory::Availability,
            Severity::Medium,
            Some(&f.path),
            format!("{l} replicas in the cluster, {d} in Git: less headroom for load or failures"),
        );
    }
}

fn limits(ctx: &mut Ctx<'_>, f: &FieldDiff, segs: &[String]) {
    let who = container_of(segs)
        .map(|(_, n)| format!("container `{n}`"))
        .unwrap_or_else(|| "a container".to_owned());
    let resource = segs.last().map(String::as_str).unwrap_or("");
    if f.desired.is_some() && f.live.is_none() {
        ctx.add(
            "limits-removed",
            FindingCategory::Availability,
            Severity::Medium,
            Some(&f.path),
            format!(
                "{who} has no {resource} limit in the cluster (Git: {}): it can starve its neighbours",
                show(&f.desired)
            ),
        );
        return;
    }
    let q = |v: &Option<Value>| match v {
        Some(Value::String(s)) => parse_nanos(s),
        Some(Value::Number(n)) => n.as_f64().map(|f| (f * 1e9) as i128),
        _ => None,
    };
    if let (Some(d), Some(l)) = (q(&f.desired), q(&f.live)) {
        if l > 0 && l * 2 <= d {
            ctx.add(
                "limits-cut",
                FindingCategory::Availability,
                Severity::Medium,
                Some(&f.path),
                format!(
                    "{who}'s {resource} limit was cut to {} in the cluster (Git: {}): throttling or OOM kills likely",
                    show(&f.live),
                    show(&f.desired)
                ),
            );
        }
    }
}

/// `probe-removed`: a probe Git defines is gone live (its fields all absent live).
fn probes_removed(ctx: &mut Ctx<'_>) {
    let mut seen: BTreeSet<FieldPath> = BTreeSet::new();
    let fields = ctx.input.fields;
    for f in fields {
        let segs = segments(&f.path);
        let Some(i) = segs.iter().position(|s| {
            matches!(
                s.as_str(),
                "livenessProbe" | "readinessProbe" | "startupProbe"
            )
        }) else {
            continue;
        };
        let prefix = join(&segs[..=i]);
        if !seen.insert(prefix.clone()) {
            continue;
        }
        let under: Vec<&FieldDiff> = fields
            .iter()
            .filter(|g| g.path.is_within(&prefix))
            .collect();
        let gone_in_diff = under
            .iter()
            .all(|g| g.live.is_none() && g.desired.is_some());
        let gone_live = match ctx.live() {
            Some(l) => value_at(l, &segs[..=i]).is_none(),
            None => true,
        };
        if gone_in_diff && gone_live {
            let who = container_of(&segs)
                .map(|(_, n)| format!("container `{n}`"))
                .unwrap_or_else(|| "a container".to_owned());
            ctx.add(
                "probe-removed",
                FindingCategory::Availability,
                Severity::Medium,
                Some(&prefix),
                format!(
                    "{who} lost its {} in the cluster: failures go unnoticed",
                    segs[i]
                ),
            );
        }
    }
}

/// An int or a percentage, as a comparable fraction in percent points for percentages.
fn int_or_percent(v: &Option<Value>) -> Option<(bool, i64)> {
    match v {
        Some(Value::Number(n)) => n.as_i64().map(|i| (false, i)),
        Some(Value::String(s)) => match s.strip_suffix('%') {
            Some(p) => p.parse().ok().map(|i| (true, i)),
            None => s.parse().ok().map(|i| (false, i)),
        },
        _ => None,
    }
}

fn pdb_field(ctx: &mut Ctx<'_>, f: &FieldDiff, last: &str) {
    let d = int_or_percent(&f.desired);
    let l = int_or_percent(&f.live);
    let loosened = match (last, d, l) {
        ("minAvailable", Some(_), None) => true,
        ("minAvailable", Some((dp, dv)), Some((lp, lv))) => dp == lp && lv < dv,
        ("maxUnavailable", Some((dp, dv)), Some((lp, lv))) => dp == lp && lv > dv,
        _ => false,
    };
    if loosened {
        ctx.add(
            "pdb-loosened",
            FindingCategory::Availability,
            Severity::Medium,
            Some(&f.path),
            format!(
                "the PodDisruptionBudget `{}` allows more disruption in the cluster ({last}: {}, Git: {})",
                ctx.input.id.name,
                show(&f.live),
                show(&f.desired)
            ),
        );
    }
}

// ------------------------------------------------------------------ images

/// A parsed image reference.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Image {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

fn parse_image(s: &str) -> Image {
    let (rest, digest) = match s.split_once('@') {
        Some((r, d)) => (r, Some(d.to_owned())),
        None => (s, None),
    };
    // a tag is after the last `:` that comes after the last `/`
    let slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[slash..].rfind(':') {
        Some(i) => (&rest[..slash + i], Some(rest[slash + i + 1..].to_owned())),
        None => (rest, None),
    };
    let (registry, repository) = match name.split_once('/') {
        Some((first, path))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first.to_owned(), path.to_owned())
        }
        _ => ("docker.io".to_owned(), name.to_owned()),
    };
    Image {
        registry,
        repository,
        tag,
        digest,
    }
}

impl Image {
    fn mutable(&self) -> bool {
        self.digest.is_none()
            && self
                .tag
                .as_deref()
                .is_none_or(|t| MUTABLE_TAGS.iter().any(|m| m.eq_ignore_ascii_case(t)))
    }
}

fn image_field(ctx: &mut Ctx<'_>, f: &FieldDiff, segs: &[String]) {
    let who = container_of(segs)
        .map(|(_, n)| format!("container `{n}`"))
        .unwrap_or_else(|| "a container".to_owned());
    let (Some(live), desired) = (
        f.live.as_ref().and_then(Value::as_str),
        f.desired.as_ref().and_then(Value::as_str),
    ) else {
        return;
    };
    let l = parse_image(live);
    let p = &f.path;
    let d = desired.map(parse_image);
    let mut specific = false;
    if l.mutable() && !d.as_ref().is_some_and(Image::mutable) {
        specific = true;
        ctx.add(
            "image-mutable-tag",
            FindingCategory::SupplyChain,
            Severity::High,
            Some(p),
            format!(
                "{who} runs `{live}` in the cluster: a mutable tag, so what runs can change \
                 without any change here"
            ),
        );
    }
    if let Some(d) = &d {
        if d.digest.is_some() && l.digest.is_none() {
            specific = true;
            ctx.add(
                "image-digest-dropped",
                FindingCategory::SupplyChain,
                Severity::High,
                Some(p),
                format!(
                    "{who} runs `{live}` in the cluster without the digest Git pins (`{}`)",
                    desired.unwrap_or_default()
                ),
            );
        }
        if d.registry != l.registry || d.repository != l.repository {
            specific = true;
            ctx.add(
                "image-registry-changed",
                FindingCategory::SupplyChain,
                Severity::High,
                Some(p),
                format!(
                    "{who} pulls from `{}/{}` in the cluster instead of `{}/{}` (Git)",
                    l.registry, l.repository, d.registry, d.repository
                ),
            );
        }
    }
    if !specific {
        ctx.add(
            "image-not-in-git",
            FindingCategory::SupplyChain,
            Severity::Medium,
            Some(p),
            format!(
                "{who} runs `{live}` in the cluster; Git names `{}`: what runs was not \
                 reviewed through Git (a hotfix not written back, or a release not applied)",
                desired.unwrap_or("(absent)")
            ),
        );
    }
}

// ------------------------------------------------------------------ cosmetic

fn metadata_only(ctx: &mut Ctx<'_>) {
    let labels = FieldPath::from_keys(["metadata", "labels"]);
    let annotations = FieldPath::from_keys(["metadata", "annotations"]);
    let all_meta = ctx
        .input
        .fields
        .iter()
        .all(|f| f.path.is_within(&labels) || f.path.is_within(&annotations));
    if all_meta {
        let n = ctx.input.fields.len();
        ctx.add(
            "metadata-only",
            FindingCategory::Cosmetic,
            Severity::Low,
            None,
            format!(
                "only labels or annotations differ ({n} field{}): no effect on what runs",
                if n == 1 { "" } else { "s" }
            ),
        );
    }
}

// ------------------------------------------------------------------ whole objects

const WORKLOADS: &[(&str, &str)] = &[
    ("apps", "Deployment"),
    ("apps", "StatefulSet"),
    ("apps", "DaemonSet"),
    ("apps", "ReplicaSet"),
    ("batch", "Job"),
    ("batch", "CronJob"),
    ("", "Pod"),
];

fn is_workload(id: &ResourceId) -> bool {
    WORKLOADS
        .iter()
        .any(|(g, k)| id.group == *g && id.kind == *k)
}

fn missing_rules(ctx: &mut Ctx<'_>) {
    let id = ctx.input.id;
    let g = id.group.as_str();
    match (g, id.kind.as_str()) {
        ("networking.k8s.io", "NetworkPolicy") => ctx.add(
            "network-policy-removed",
            FindingCategory::Security,
            Severity::High,
            None,
            format!(
                "the NetworkPolicy `{}` is in Git but not in the cluster: the traffic it \
                 restricts is allowed",
                id.name
            ),
        ),
        ("policy", "PodDisruptionBudget") => ctx.add(
            "pdb-loosened",
            FindingCategory::Availability,
            Severity::Medium,
            None,
            format!(
                "the PodDisruptionBudget `{}` is in Git but not in the cluster: nothing limits \
                 voluntary disruptions",
                id.name
            ),
        ),
        ("", "Service") => ctx.add(
            "service-missing",
            FindingCategory::Availability,
            Severity::Medium,
            None,
            format!(
                "the Service `{}` is in Git but not in the cluster: its clients cannot reach it",
                id.name
            ),
        ),
        _ if is_workload(id) => {
            let replicas = ctx
                .desired()
                .and_then(|d| d.get("spec"))
                .and_then(|s| s.get("replicas"))
                .and_then(Value::as_i64);
            if replicas != Some(0) {
                ctx.add(
                    "workload-missing",
                    FindingCategory::Availability,
                    Severity::High,
                    None,
                    format!(
                        "the {} `{}` is in Git but not running in the cluster",
                        id.kind, id.name
                    ),
                );
            }
        }
        _ => {}
    }
}

fn orphan_rules(ctx: &mut Ctx<'_>) {
    let id = ctx.input.id;
    let Some(live) = ctx.live().cloned() else {
        return;
    };
    match (id.group.as_str(), id.kind.as_str()) {
        (RBAC_GROUP, "RoleBinding" | "ClusterRoleBinding") => {
            let role = live
                .get("roleRef")
                .and_then(|r| r.get("name"))
                .and_then(Value::as_str)
                .unwrap_or("");
            let subs = subjects(live.get("subjects"));
            if role == "cluster-admin" {
                ctx.add(
                    "cluster-admin-binding",
                    FindingCategory::Security,
                    Severity::Critical,
                    None,
                    format!(
                        "the {} `{}`, not in Git, grants `cluster-admin` to {}",
                        id.kind,
                        id.name,
                        if subs.is_empty() {
                            "no one yet".to_owned()
                        } else {
                            subs.join(", ")
                        }
                    ),
                );
            } else {
                let critical = subs.iter().any(|s| everyone(s));
                ctx.add(
                    "rbac-subjects-added",
                    FindingCategory::Security,
                    if critical {
                        Severity::Critical
                    } else {
                        Severity::High
                    },
                    None,
                    format!(
                        "the {} `{}`, not in Git, grants `{role}` to {}",
                        id.kind,
                        id.name,
                        subs.join(", ")
                    ),
                );
            }
        }
        (RBAC_GROUP, "Role" | "ClusterRole") => {
            let all = grants(live.get("rules"));
            let wild: Vec<String> = all
                .iter()
                .filter(|g| g.dangerous())
                .take(8)
                .map(Grant::label)
                .collect();
            if !wild.is_empty() {
                ctx.add(
                    "rbac-widened",
                    FindingCategory::Security,
                    Severity::Critical,
                    None,
                    format!(
                        "the {} `{}`, not in Git, grants wildcards or escalation: {}",
                        id.kind,
                        id.name,
                        wild.join("; ")
                    ),
                );
            }
        }
        ("", "Service") => {
            let spec = live.get("spec");
            let ty = spec
                .and_then(|s| s.get("type"))
                .and_then(Value::as_str)
                .unwrap_or("ClusterIP");
            let ips = strings(spec.and_then(|s| s.get("externalIPs")));
            if matches!(ty, "LoadBalancer" | "NodePort") || !ips.is_empty() {
                ctx.add(
                    "service-exposed",
                    FindingCategory::Security,
                    Severity::High,
                    None,
                    format!(
                        "the Service `{}`, not in Git, is reachable from outside the cluster \
                         (type {ty}{})",
                        id.name,
                        if ips.is_empty() {
                            String::new()
                        } else {
                            format!(", external IPs {}", ips.join(", "))
                        }
                    ),
                );
            }
        }
        ("networking.k8s.io" | "extensions", "Ingress") => {
            let routes = ingress_routes(live.get("spec").and_then(|s| s.get("rules")));
            ctx.add(
                "ingress-widened",
                FindingCategory::Security,
                Severity::Medium,
                None,
                format!(
                    "the Ingress `{}`, not in Git, routes {}",
                    id.name,
                    if routes.is_empty() {
                        "to its default backend".to_owned()
                    } else {
                        routes.into_iter().collect::<Vec<_>>().join(", ")
                    }
                ),
            );
        }
        _ if is_workload(id) => orphan_pod_spec(ctx, &live),
        _ => {}
    }
}

/// The pod spec of a workload's content: `spec.template.spec`, `spec.jobTemplate.spec.
/// template.spec` or a Pod's `spec`.
fn pod_spec<'v>(v: &'v Value, kind: &str) -> Option<(&'v Value, &'static [&'static str])> {
    let spec = v.get("spec")?;
    match kind {
        "Pod" => Some((spec, &["spec"])),
        "CronJob" => spec
            .get("jobTemplate")?
            .get("spec")?
            .get("template")?
            .get("spec")
            .map(|s| (s, &["spec", "jobTemplate", "spec", "template", "spec"][..])),
        _ => spec
            .get("template")?
            .get("spec")
            .map(|s| (s, &["spec", "template", "spec"][..])),
    }
}

/// A workload created by hand: judged on its pod spec alone.
fn orphan_pod_spec(ctx: &mut Ctx<'_>, live: &Value) {
    let kind = ctx.input.id.kind.clone();
    let Some((spec, base)) = pod_spec(live, &kind) else {
        return;
    };
    let base = FieldPath::from_keys(base.iter().copied());
    for ns in ["hostNetwork", "hostPID", "hostIPC"] {
        if spec.get(ns).and_then(Value::as_bool) == Some(true) {
            ctx.add(
                "host-namespace",
                FindingCategory::Security,
                Severity::Critical,
                Some(&base.join(ns)),
                format!("a workload not in Git runs with `{ns}: true`"),
            );
        }
    }
    for (key, v) in spec
        .get("volumes")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        if v.get("hostPath").is_some() {
            ctx.add(
                "host-path",
                FindingCategory::Security,
                Severity::Critical,
                Some(&base.join("volumes").join(key)),
                format!(
                    "a workload not in Git mounts a path of the node (volume `{}`)",
                    item_name(key)
                ),
            );
        }
    }
    for list_name in ["initContainers", "containers"] {
        for (key, c) in spec
            .get(list_name)
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let at = base.join(list_name).join(key);
            let name = item_name(key);
            let sc = c.get("securityContext");
            if sc
                .and_then(|s| s.get("privileged"))
                .and_then(Value::as_bool)
                == Some(true)
            {
                ctx.add(
                    "privileged",
                    FindingCategory::Security,
                    Severity::Critical,
                    Some(&at.join("securityContext").join("privileged")),
                    format!("container `{name}` of a workload not in Git runs privileged"),
                );
            }
            if let Some(image) = c.get("image").and_then(Value::as_str) {
                if parse_image(image).mutable() {
                    ctx.add(
                        "image-mutable-tag",
                        FindingCategory::SupplyChain,
                        Severity::High,
                        Some(&at.join("image")),
                        format!(
                            "container `{name}` of a workload not in Git runs `{image}`, a mutable tag"
                        ),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn diff(path: &str, desired: Value, live: Value) -> FieldDiff {
        let opt = |v: Value| if v.is_null() { None } else { Some(v) };
        FieldDiff {
            path: path.into(),
            desired: opt(desired),
            live: opt(live),
        }
    }

    fn rules(id: &ResourceId, fields: &[FieldDiff]) -> Vec<(String, Severity)> {
        FindingRules::default()
            .judge(&FindingInput::new(id, DriftKind::Modified, fields))
            .into_iter()
            .map(|f| (f.rule, f.risk))
            .collect()
    }

    fn deploy() -> ResourceId {
        ResourceId::new("e", "apps", "Deployment", Some("n"), "web")
    }

    #[test]
    fn images() {
        let i = parse_image("registry.example.com/acme/checkout:1.4.2");
        assert_eq!(i.registry, "registry.example.com");
        assert_eq!(i.repository, "acme/checkout");
        assert_eq!(i.tag.as_deref(), Some("1.4.2"));
        assert!(!i.mutable());
        assert!(parse_image("nginx").mutable());
        assert!(parse_image("nginx:latest").mutable());
        assert!(!parse_image("nginx:latest@sha256:abc").mutable());
        let p = parse_image("localhost:5000/app");
        assert_eq!((p.registry.as_str(), p.tag), ("localhost:5000", None));
        let path = "spec.template.spec.containers[api].image";
        let r = |d: &str, l: &str| rules(&deploy(), &[diff(path, json!(d), json!(l))]);
        assert_eq!(
            r("acme/api:1.4.2", "acme/api:1.4.3-hotfix"),
            [("image-not-in-git".to_owned(), Severity::Medium)]
        );
        assert_eq!(
            r("acme/api:1.4.2", "acme/api:latest"),
            [("image-mutable-tag".to_owned(), Severity::High)]
        );
        assert_eq!(
            r("acme/api:1.4.2@sha256:aa", "acme/api:1.4.2"),
            [("image-digest-dropped".to_owned(), Severity::High)]
        );
        assert_eq!(
            r(
                "registry.example.com/acme/api:1",
                "evil.example.org/acme/api:1"
            ),
            [("image-registry-changed".to_owned(), Severity::High)]
        );
    }

    #[test]
    fn security_context_rules() {
        let c = "spec.template.spec.containers[api].securityContext";
        let id = deploy();
        assert_eq!(
            rules(
                &id,
                &[diff(&format!("{c}.privileged"), Value::Null, json!(true))]
            ),
            [("privileged".to_owned(), Severity::Critical)]
        );
        assert_eq!(
            rules(
                &id,
                &[diff(
                    &format!("{c}.allowPrivilegeEscalation"),
                    json!(false),
                    json!(true)
                )]
            ),
            [("privilege-escalation".to_owned(), Severity::High)]
        );
        assert_eq!(
            rules(
                &id,
                &[diff(&format!("{c}.runAsNonRoot"), json!(true), Value::Null)]
            ),
            [("run-as-root".to_owned(), Severity::High)]
        );
        assert_eq!(
            rules(
                &id,
                &[diff(
                    c,
                    Value::Null,
                    json!({"capabilities": {"add": ["NET_ADMIN"]}})
                )]
            ),
            [("capabilities-added".to_owned(), Severity::High)]
        );
        assert_eq!(
            rules(
                &id,
                &[diff(
                    &format!("{c}.capabilities.add"),
                    json!(["CHOWN"]),
                    json!(["CHOWN", "SYS_ADMIN"])
                )]
            ),
            [("capabilities-added".to_owned(), Severity::Critical)]
        );
        // tightening is no finding
        assert!(rules(
            &id,
            &[diff(&format!("{c}.privileged"), json!(true), json!(false))]
        )
        .is_empty());
        assert_eq!(
            rules(
                &id,
                &[diff(
                    "spec.template.spec.hostNetwork",
                    Value::Null,
                    json!(true)
                )]
            ),
            [("host-namespace".to_owned(), Severity::Critical)]
        );
    }

    #[test]
    fn host_path_from_the_live_volume() {
        let id = deploy();
        let live = Doc::from_value(&json!({"spec": {"template": {"spec": {"volumes": {
            "[data]": {"name": "data", "hostPath": {"path": "/var/lib"}}}}}}}));
        let fields = [diff(
            "spec.template.spec.volumes[data].emptyDir",
            json!({}),
            Value::Null,
        )];
        let input = FindingInput {
            live: Some(&live),
            ..FindingInput::new(&id, DriftKind::Modified, &fields)
        };
        let f = FindingRules::default().judge(&input);
        assert_eq!(f[0].rule, "host-path");
        assert_eq!(f[0].risk, Severity::Critical);
    }

    #[test]
    fn rbac_widening() {
        let role = ResourceId::new("e", RBAC_GROUP, "Role", Some("n"), "reader");
        let git =
            json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]);
        let mut wider = git.clone();
        wider
            .as_array_mut()
            .expect("a list")
            .push(json!({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}));
        let f = FindingRules::default().judge(&FindingInput::new(
            &role,
            DriftKind::Modified,
            &[diff("rules", git.clone(), wider)],
        ));
        assert_eq!(f.len(), 1);
        assert_eq!(
            (f[0].rule.as_str(), f[0].risk),
            ("rbac-widened", Severity::High)
        );
        assert!(
            f[0].reason.contains("get secrets (core)"),
            "{}",
            f[0].reason
        );
        let star = json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]);
        assert_eq!(
            rules(&role, &[diff("rules", git.clone(), star)]),
            [("rbac-widened".to_owned(), Severity::Critical)]
        );
        // narrowing is no finding
        let narrow = json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]);
        assert!(rules(&role, &[diff("rules", git, narrow)]).is_empty());
        let binding = ResourceId::new("e", RBAC_GROUP, "ClusterRoleBinding", None, "b");
        assert_eq!(
            rules(
                &binding,
                &[diff("roleRef.name", json!("view"), json!("cluster-admin"))]
            ),
            [("cluster-admin-binding".to_owned(), Severity::Critical)]
        );
        assert_eq!(
            rules(
                &binding,
                &[diff(
                    "subjects",
                    json!([{"kind": "User", "name": "a"}]),
                    json!([{"kind": "User", "name": "a"}, {"kind": "Group", "name": "system:authenticated"}])
                )]
            ),
            [("rbac-subjects-added".to_owned(), Severity::Critical)]
        );
    }

    #[test]
    fn availability_rules() {
        let id = deploy();
        assert_eq!(
            rules(&id, &[diff("spec.replicas", json!(3), json!(0))]),
            [("replicas-zero".to_owned(), Severity::High)]
        );
        assert_eq!(
            rules(&id, &[diff("spec.replicas", json!(4), json!(2))]),
            [("replicas-cut".to_owned(), Severity::Medium)]
        );
        assert!(rules(&id, &[diff("spec.replicas", json!(3), json!(5))]).is_empty());
        let lim = "spec.template.spec.containers[api].resources.limits.memory";
        assert_eq!(
            rules(&id, &[diff(lim, json!("256Mi"), Value::Null)]),
            [("limits-removed".to_owned(), Severity::Medium)]
        );
        assert_eq!(
            rules(&id, &[diff(lim, json!("256Mi"), json!("64Mi"))]),
            [("limits-cut".to_owned(), Severity::Medium)]
        );
        assert!(rules(&id, &[diff(lim, json!("256Mi"), json!("200Mi"))]).is_empty());
        let probe = "spec.template.spec.containers[api].readinessProbe";
        let f = rules(
            &id,
            &[
                diff(
                    &format!("{probe}.httpGet.path"),
                    json!("/healthz"),
                    Value::Null,
                ),
                diff(&format!("{probe}.periodSeconds"), json!(10), Value::Null),
            ],
        );
        assert_eq!(f, [("probe-removed".to_owned(), Severity::Medium)]);
        let pdb = ResourceId::new("e", "policy", "PodDisruptionBudget", Some("n"), "p");
        assert_eq!(
            rules(&pdb, &[diff("spec.minAvailable", json!(2), json!(0))]),
            [("pdb-loosened".to_owned(), Severity::Medium)]
        );
    }

    #[test]
    fn network_rules() {
        let np = ResourceId::new("e", "networking.k8s.io", "NetworkPolicy", Some("n"), "deny");
        let git = json!([{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}]}]);
        let open = json!([{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}]}, {}]);
        let f = FindingRules::default().judge(&FindingInput::new(
            &np,
            DriftKind::Modified,
            &[diff("spec.ingress", git, open)],
        ));
        assert_eq!(f[0].rule, "network-policy-opened");
        assert!(
            f[0].reason.contains("allows all ingress"),
            "{}",
            f[0].reason
        );
        let missing =
            FindingRules::default().judge(&FindingInput::new(&np, DriftKind::Missing, &[]));
        assert_eq!(missing[0].rule, "network-policy-removed");
        let svc = ResourceId::new("e", "", "Service", Some("n"), "api");
        assert_eq!(
            rules(
                &svc,
                &[diff("spec.type", json!("ClusterIP"), json!("LoadBalancer"))]
            ),
            [("service-exposed".to_owned(), Severity::High)]
        );
    }

    #[test]
    fn orphans_are_judged_on_their_content() {
        let b = ResourceId::new("e", RBAC_GROUP, "ClusterRoleBinding", None, "oops");
        let live = Doc::from_value(&json!({
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "ServiceAccount", "name": "api", "namespace": "shop"}]}));
        let input = FindingInput {
            live: Some(&live),
            ..FindingInput::new(&b, DriftKind::Orphan, &[])
        };
        let f = FindingRules::default().judge(&input);
        assert_eq!(
            (f[0].rule.as_str(), f[0].risk),
            ("cluster-admin-binding", Severity::Critical)
        );
        assert!(
            f[0].reason.contains("ServiceAccount shop/api"),
            "{}",
            f[0].reason
        );
        // a ConfigMap created by hand is no finding
        let cm = ResourceId::new("e", "", "ConfigMap", Some("n"), "debug");
        let live = Doc::from_value(&json!({"data": {"k": "v"}}));
        let input = FindingInput {
            live: Some(&live),
            ..FindingInput::new(&cm, DriftKind::Orphan, &[])
        };
        assert!(FindingRules::default().judge(&input).is_empty());
    }

    #[test]
    fn secrets_are_never_read() {
        let s = ResourceId::new("e", "", "Secret", Some("n"), "creds");
        let live = Doc::from_value(&json!({"data": {"hostPath": "x"}}));
        let fields = [diff(
            "data.k",
            json!("(secret value)"),
            json!("(secret value)"),
        )];
        let input = FindingInput {
            live: Some(&live),
            ..FindingInput::new(&s, DriftKind::Modified, &fields)
        };
        let mut ctx = Ctx {
            input: &input,
            desired: OnceCell::new(),
            live: OnceCell::new(),
            out: Vec::new(),
        };
        assert!(ctx.live().is_none());
        ctx.add(
            "x",
            FindingCategory::Security,
            Severity::Low,
            None,
            String::new(),
        );
        assert!(FindingRules::default().judge(&input).is_empty());
    }

    #[test]
    fn labels_are_cosmetic_and_controllers_noise() {
        let id = deploy();
        assert_eq!(
            rules(
                &id,
                &[diff("metadata.labels.team", Value::Null, json!("search"))]
            ),
            [("metadata-only".to_owned(), Severity::Low)]
        );
        let fields = [diff(
            "spec.template.spec.containers[api].env[X]",
            Value::Null,
            json!({"name": "X"}),
        )];
        let owner = |m: &str, op: &str| FieldOwner {
            path: fields[0].path.clone(),
            manager: m.into(),
            operation: op.into(),
            subresource: String::new(),
            time: None,
            audit_id: None,
        };
        let judge = |o: FieldOwner| {
            let owners = [o];
            let input = FindingInput {
                owners: &owners,
                ..FindingInput::new(&id, DriftKind::Modified, &fields)
            };
            FindingRules::default()
                .judge(&input)
                .into_iter()
                .map(|f| f.rule)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            judge(owner("istio-sidecar-injector", "Update")),
            ["controller-owned"]
        );
        assert!(judge(owner("kubectl-set", "Update")).is_empty());
        assert!(judge(owner("istio-sidecar-injector", "Apply")).is_empty());
    }

    #[test]
    fn overrides_change_or_drop() {
        let id = deploy();
        let fields = [diff(
            "spec.template.spec.containers[api].image",
            json!("a:1"),
            json!("a:2"),
        )];
        let input = FindingInput::new(&id, DriftKind::Modified, &fields);
        let rules: FindingRules = serde_yaml::from_str(
            "overrides:\n  - rule: image-*\n    risk: high\n  - namespace: dev\n    off: true\n",
        )
        .expect("valid rules");
        assert_eq!(rules.judge(&input)[0].risk, Severity::High);
        let dev = ResourceId::new("e", "apps", "Deployment", Some("dev"), "web");
        assert!(rules
            .judge(&FindingInput::new(&dev, DriftKind::Modified, &fields))
            .is_empty());
        assert!(serde_yaml::from_str::<FindingRules>("overrides: [{rules: x}]\n").is_err());
    }

    #[test]
    fn risk_for_the_score() {
        let f = |category, risk| Finding {
            rule: "r".into(),
            category,
            risk,
            path: None,
            reason: String::new(),
        };
        assert_eq!(drift_risk(Severity::Medium, &[]), Severity::Medium);
        assert_eq!(
            drift_risk(
                Severity::High,
                &[f(FindingCategory::Security, Severity::Critical)]
            ),
            Severity::Critical
        );
        assert_eq!(
            drift_risk(
                Severity::Medium,
                &[f(FindingCategory::LikelyNoise, Severity::Low)]
            ),
            Severity::Low
        );
        assert_eq!(
            drift_risk(
                Severity::Medium,
                &[
                    f(FindingCategory::LikelyNoise, Severity::Low),
                    f(FindingCategory::SupplyChain, Severity::Medium)
                ]
            ),
            Severity::Medium
        );
    }
}
