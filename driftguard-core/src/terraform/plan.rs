//! Reading `terraform show -json` output, with every sensitive value hashed as it is read.
//!
//! Only what drift needs is read: the managed resource instances of `resource_changes` and
//! `resource_drift` (actions, values before and after, unknown and sensitive marks), of
//! `prior_state` (the refreshed values), and which attributes each resource block of the
//! `configuration` sets (the names only: the expressions, which can hold sensitive constants,
//! are dropped as they are read). The rest of the document (variables, outputs) is skipped
//! unread.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::normalize::Normalizer;

use super::values::{merge_marks, sanitize};
use super::{RawPlan, TerraformError};

/// What a plan would do to a resource instance (`actions` of a change).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// Nothing.
    NoOp,
    /// Create it.
    Create,
    /// Read it (data sources).
    Read,
    /// Update it in place.
    Update,
    /// Destroy it.
    Delete,
    /// Forget it (a `removed` block with `destroy = false`): it leaves the state, not the
    /// cloud.
    Forget,
}

impl Action {
    fn parse(s: &str) -> Option<Action> {
        Some(match s {
            "no-op" => Action::NoOp,
            "create" => Action::Create,
            "read" => Action::Read,
            "update" => Action::Update,
            "delete" => Action::Delete,
            "forget" => Action::Forget,
            _ => return None,
        })
    }
}

/// A managed resource instance, as a plan names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedResource {
    /// Its address (`module.net.aws_vpc.main`, `aws_s3_bucket.logs["eu"]`).
    pub address: String,
    /// The address of its module instance (`module.net`; `""` in the root module).
    pub module_address: String,
    /// The resource type (`aws_vpc`).
    pub kind: String,
    /// The resource's name in its block (`main`).
    pub name: String,
    /// The provider (`registry.terraform.io/hashicorp/aws`).
    pub provider: String,
}

/// One change of a plan (in `resource_changes` or `resource_drift`), with sensitive values
/// hashed.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// The resource.
    pub resource: PlannedResource,
    /// What the plan would do (`[delete, create]` for a replacement).
    pub actions: Vec<Action>,
    /// The values before (`None`: absent).
    pub before: Option<Value>,
    /// The values after, without those only known after an apply (`None`: absent).
    pub after: Option<Value>,
    /// Which values after are only known after an apply: `true` where unknown, maps and lists
    /// mirroring the values' shape.
    pub unknown: Value,
    /// Why (`replace_because_cannot_update`, `delete_because_no_resource_config`).
    pub reason: Option<String>,
}

impl Change {
    /// Whether the plan would change nothing.
    pub fn is_no_op(&self) -> bool {
        self.actions.iter().all(|a| *a == Action::NoOp)
    }

    /// Whether the plan would replace the resource (destroy and create it).
    pub fn is_replace(&self) -> bool {
        self.actions.contains(&Action::Delete) && self.actions.contains(&Action::Create)
    }
}

/// A plan as DriftGuard reads it: managed resource instances only, every sensitive value
/// replaced by its keyed hash.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// The Terraform version that made it.
    pub terraform_version: String,
    /// `resource_changes`, by address.
    pub changes: BTreeMap<String, Change>,
    /// `resource_drift`, by address.
    pub drift: BTreeMap<String, Change>,
    /// The refreshed state (`prior_state`): values by address.
    pub prior: BTreeMap<String, (PlannedResource, Value)>,
    /// What the code sets, by resource block: `(module key, type, name)` (the module key as
    /// [`module_key`](super::declare::module_key) gives it) to the shape of the block's
    /// arguments: `true` for an attribute, an object for a nested block of one instance, an
    /// array of objects for a block that may repeat. Blocks written with `dynamic` are not in
    /// Terraform's configuration JSON, and so count as not set. Empty when the plan has no
    /// configuration.
    pub configured: BTreeMap<(String, String, String), Value>,
    /// Whether Terraform said the plan errored.
    pub errored: bool,
}

#[derive(Deserialize)]
struct PlanDoc {
    #[serde(default)]
    format_version: Option<String>,
    #[serde(default)]
    terraform_version: String,
    #[serde(default)]
    resource_changes: Vec<ChangeDoc>,
    #[serde(default)]
    resource_drift: Vec<ChangeDoc>,
    #[serde(default)]
    prior_state: Option<StateDoc>,
    #[serde(default)]
    configuration: Option<ConfigDoc>,
    #[serde(default)]
    errored: bool,
}

#[derive(Deserialize)]
struct ConfigDoc {
    #[serde(default)]
    root_module: Option<ConfigModule>,
}

#[derive(Deserialize)]
struct ConfigModule {
    #[serde(default)]
    resources: Vec<ConfigResource>,
    #[serde(default)]
    module_calls: BTreeMap<String, ModuleCall>,
}

#[derive(Deserialize)]
struct ModuleCall {
    #[serde(default)]
    module: Option<ConfigModule>,
}

#[derive(Deserialize)]
struct ConfigResource {
    #[serde(default)]
    mode: String,
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    name: String,
    #[serde(default, deserialize_with = "shape_of")]
    expressions: Value,
}

/// Reads a block's `expressions` as its shape: every expression (an object of `references`
/// and `constant_value`) becomes `true`, so no constant is kept.
fn shape_of<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
    let v = Value::deserialize(d)?;
    Ok(shape(&v))
}

fn shape(v: &Value) -> Value {
    match v {
        Value::Object(m) if m.keys().all(|k| k == "references" || k == "constant_value") => {
            Value::Bool(true)
        }
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
        Value::Array(a) => Value::Array(a.iter().map(shape).collect()),
        _ => Value::Bool(true),
    }
}

/// The resource blocks of a module and its calls, by module key.
fn configured(
    module: ConfigModule,
    key: &str,
    out: &mut BTreeMap<(String, String, String), Value>,
) {
    for r in module.resources {
        if r.mode == "managed" {
            out.insert((key.to_owned(), r.kind, r.name), r.expressions);
        }
    }
    for (name, call) in module.module_calls {
        if let Some(m) = call.module {
            let inner = if key.is_empty() {
                name
            } else {
                format!("{key}.{name}")
            };
            configured(m, &inner, out);
        }
    }
}

#[derive(Deserialize)]
struct ChangeDoc {
    address: String,
    #[serde(default)]
    module_address: Option<String>,
    #[serde(default)]
    mode: String,
    #[serde(rename = "type")]
    kind: String,
    name: String,
    #[serde(default)]
    provider_name: String,
    #[serde(default)]
    deposed: Option<String>,
    change: ChangeBody,
    #[serde(default)]
    action_reason: Option<String>,
}

#[derive(Deserialize)]
struct ChangeBody {
    actions: Vec<String>,
    #[serde(default)]
    before: Value,
    #[serde(default)]
    after: Value,
    #[serde(default)]
    after_unknown: Value,
    #[serde(default)]
    before_sensitive: Value,
    #[serde(default)]
    after_sensitive: Value,
}

#[derive(Deserialize)]
struct StateDoc {
    #[serde(default)]
    values: Option<StateValues>,
}

#[derive(Deserialize)]
struct StateValues {
    root_module: ModuleDoc,
}

#[derive(Deserialize)]
struct ModuleDoc {
    #[serde(default)]
    resources: Vec<StateResource>,
    #[serde(default)]
    child_modules: Vec<ModuleDoc>,
}

#[derive(Deserialize)]
struct StateResource {
    address: String,
    #[serde(default)]
    mode: String,
    #[serde(rename = "type")]
    kind: String,
    name: String,
    #[serde(default)]
    provider_name: String,
    #[serde(default)]
    values: Value,
    #[serde(default)]
    sensitive_values: Value,
}

/// The module instance part of a resource address (`module.a["x"].module.b` of
/// `module.a["x"].module.b.aws_vpc.main[0]`), for plans that do not name it.
fn module_of(address: &str, kind: &str, name: &str) -> String {
    let needle = format!("{kind}.{name}");
    match address.rfind(&needle) {
        Some(0) | None => String::new(),
        Some(i) => address[..i].trim_end_matches('.').to_owned(),
    }
}

/// Reads `terraform show -json` output. Sensitive values (marked in `before_sensitive`,
/// `after_sensitive` or a state's `sensitive_values`, on either side: the marks of a
/// resource are merged) are replaced by keyed hashes with `normalizer`'s key before anything
/// is kept. `what` names the plan in errors.
pub fn read_plan(
    raw: &RawPlan,
    what: &str,
    normalizer: &Normalizer,
) -> Result<Plan, TerraformError> {
    let doc: PlanDoc = serde_json::from_str(raw.text()).map_err(|e| TerraformError::PlanJson {
        what: what.to_owned(),
        // serde's message names the position and the expected type, never the content
        problem: e.to_string(),
    })?;
    if doc.format_version.is_none() {
        return Err(TerraformError::PlanJson {
            what: what.to_owned(),
            problem: "no format_version".into(),
        });
    }
    let mut plan = Plan {
        terraform_version: doc.terraform_version,
        errored: doc.errored,
        ..Plan::default()
    };
    if let Some(root) = doc.configuration.and_then(|c| c.root_module) {
        configured(root, "", &mut plan.configured);
    }
    // the marks of each resource, from every place that has them, merged
    let mut marks: BTreeMap<String, Value> = BTreeMap::new();
    for c in doc.resource_changes.iter().chain(&doc.resource_drift) {
        let m = marks.entry(c.address.clone()).or_insert(Value::Null);
        merge_marks(m, &c.change.before_sensitive);
        merge_marks(m, &c.change.after_sensitive);
    }
    let mut state = Vec::new();
    if let Some(values) = doc.prior_state.and_then(|s| s.values) {
        flatten(values.root_module, &mut state);
    }
    for r in &state {
        let m = marks.entry(r.address.clone()).or_insert(Value::Null);
        merge_marks(m, &r.sensitive_values);
    }
    let null = Value::Null;
    for r in state {
        if r.mode != "managed" {
            continue;
        }
        let m = marks.get(&r.address).unwrap_or(&null);
        let mut values = r.values;
        sanitize(&mut values, m, normalizer);
        let resource = PlannedResource {
            module_address: module_of(&r.address, &r.kind, &r.name),
            address: r.address,
            kind: r.kind,
            name: r.name,
            provider: r.provider_name,
        };
        plan.prior
            .insert(resource.address.clone(), (resource, values));
    }
    for (docs, into) in [
        (doc.resource_changes, &mut plan.changes),
        (doc.resource_drift, &mut plan.drift),
    ] {
        for c in docs {
            if c.mode != "managed" || c.deposed.is_some() {
                continue;
            }
            let m = marks.get(&c.address).unwrap_or(&null);
            let body = c.change;
            let mut before = body.before;
            let mut after = body.after;
            sanitize(&mut before, m, normalizer);
            sanitize(&mut after, m, normalizer);
            let actions = body
                .actions
                .iter()
                .map(|a| {
                    Action::parse(a).ok_or_else(|| TerraformError::PlanJson {
                        what: what.to_owned(),
                        problem: format!("unknown action `{a}` for {}", c.address),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let resource = PlannedResource {
                module_address: c
                    .module_address
                    .unwrap_or_else(|| module_of(&c.address, &c.kind, &c.name)),
                address: c.address,
                kind: c.kind,
                name: c.name,
                provider: c.provider_name,
            };
            into.insert(
                resource.address.clone(),
                Change {
                    resource,
                    actions,
                    before: (!before.is_null()).then_some(before),
                    after: (!after.is_null()).then_some(after),
                    unknown: body.after_unknown,
                    reason: c.action_reason,
                },
            );
        }
    }
    Ok(plan)
}

fn flatten(m: ModuleDoc, out: &mut Vec<StateResource>) {
    out.extend(m.resources);
    for c in m.child_modules {
        flatten(c, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::SecretKey;
    use serde_json::json;

    #[test]
    fn module_addresses() {
        assert_eq!(module_of("aws_vpc.main", "aws_vpc", "main"), "");
        assert_eq!(
            module_of("module.net.aws_vpc.main[0]", "aws_vpc", "main"),
            "module.net"
        );
        assert_eq!(
            module_of("module.a[\"x.y\"].module.b.aws_vpc.main", "aws_vpc", "main"),
            "module.a[\"x.y\"].module.b"
        );
    }

    #[test]
    fn sensitive_values_are_hashed_on_every_side_and_the_rest_is_skipped() {
        let text = json!({
            "format_version": "1.2",
            "terraform_version": "1.11.4",
            "variables": {"password": {"value": "CANARY"}},
            "resource_changes": [{
                "address": "aws_db_instance.db", "mode": "managed", "type": "aws_db_instance",
                "name": "db", "provider_name": "registry.terraform.io/hashicorp/aws",
                "change": {"actions": ["update"],
                    "before": {"password": "CANARY", "port": 5432, "tags": {"a": "CANARY2"}},
                    "after": {"password": "CANARY-new", "port": 5432, "tags": {"a": "CANARY2"}},
                    "after_unknown": {},
                    "before_sensitive": {"password": true},
                    "after_sensitive": {"password": true, "tags": {"a": true}}}
            }, {
                "address": "data.aws_caller_identity.me", "mode": "data",
                "type": "aws_caller_identity", "name": "me",
                "change": {"actions": ["read"], "before": null, "after": {}}
            }],
            "prior_state": {"values": {"root_module": {"resources": [{
                "address": "aws_db_instance.db", "mode": "managed", "type": "aws_db_instance",
                "name": "db", "provider_name": "registry.terraform.io/hashicorp/aws",
                "values": {"password": "CANARY", "port": 5432, "tags": {"a": "CANARY2"}},
                "sensitive_values": {}
            }]}}},
            "configuration": {"root_module": {"resources": [{"expressions": {
                "password": {"constant_value": "CANARY"}}}]}}
        })
        .to_string();
        let n = Normalizer::new(SecretKey::new(b"k".to_vec()));
        let plan = read_plan(&RawPlan::new(text.as_str()), "plan", &n).expect("reads");
        let shown = format!("{plan:?}");
        assert!(!shown.contains("CANARY"), "{shown}");
        let c = &plan.changes["aws_db_instance.db"];
        assert_eq!(c.actions, vec![Action::Update]);
        let before = c.before.as_ref().expect("before");
        let after = c.after.as_ref().expect("after");
        // the same value hashes the same on both sides; another value does not
        assert_eq!(before["tags"]["a"], after["tags"]["a"]);
        assert_ne!(before["password"], after["password"]);
        assert_eq!(before["port"], json!(5432));
        // the state's values take the marks of the changes
        let (r, v) = &plan.prior["aws_db_instance.db"];
        assert_eq!(r.kind, "aws_db_instance");
        assert_eq!(v["password"], before["password"]);
        assert!(!plan.changes.contains_key("data.aws_caller_identity.me"));
        let err =
            read_plan(&RawPlan::new("{\"password\": \"CANARY"), "plan", &n).expect_err("not JSON");
        assert!(!crate::error::chain(&err).contains("CANARY"));
        assert!(read_plan(&RawPlan::new("{}"), "plan", &n).is_err());
        assert_eq!(
            format!("{:?}", RawPlan::new(text.as_str())),
            format!("RawPlan({} bytes, content redacted)", text.len())
        );
    }
}
