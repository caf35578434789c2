//! The plans of a check turned into one observation per resource.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::compare::Comparison;
use crate::engine::Engine;
use crate::id::ResourceId;
use crate::ignore::JsonPointer;
use crate::model::{Provenance, Rendering};
use crate::state::{Direction, DriftKind, Observation, Presence, Records};

use super::cloud::{account_kind, managed_ids, unmanaged};
use super::declare::{find, module_key, DeclarationKind};
use super::plan::{read_plan, Action, Change, Plan};
use super::schema::Arguments;
use super::unset::{
    hand_set_arguments, named_by_others, owned_rules, unset_attributes, without_owned, Atom,
};
use super::values::{compare_with_paths, value_at, value_hash};
use super::{provider_group, PlanRun, StateMark, TerraformError};

/// What a check's plans say, ready for the state machine.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PlanView {
    /// One observation per resource (those of the plans, the account's orphans, and the
    /// recorded ones no longer seen), in identity order.
    pub observations: Vec<Observation>,
    /// Problems that did not stop the check (a kind of the account that could not be listed).
    pub errors: Vec<String>,
    /// Things worth telling (resources an apply would replace).
    pub notes: Vec<String>,
    /// The id in the cloud of each resource (its `id` attribute, as the cloud or the state
    /// has it; an orphan's own id): what a cloud's audit trail names it by.
    pub cloud_ids: BTreeMap<ResourceId, String>,
}

/// Turns a check's plans into observations (see [the module documentation](super)). Pure:
/// `records` (the environment's stored records) only decide what becomes of recorded
/// resources the plans no longer name.
pub fn observe(
    engine: &Engine,
    run: &PlanRun,
    records: &Records,
) -> Result<PlanView, TerraformError> {
    let normalizer = &engine.normalizer;
    let refresh = read_plan(&run.refresh_only, "refresh-only plan", normalizer)?;
    let plan = read_plan(&run.plan, "plan", normalizer)?;
    if !engine.spec.expect_empty_state && state_is_empty(&refresh) {
        return Err(TerraformError::EmptyState {
            workspace: run.module.workspace.clone(),
        });
    }
    let mark = run.state.as_ref().map(StateMark::hash);
    let mut view = PlanView::default();
    let mut seen: BTreeMap<ResourceId, Observation> = BTreeMap::new();
    let owned = owned_rules(&plan);
    let named = match &run.arguments {
        Some(_) => named_by_others(&plan),
        None => BTreeSet::new(),
    };
    let unset = Unset {
        owned: &owned,
        arguments: run.arguments.as_deref(),
        named: &named,
    };
    for (address, change) in &plan.changes {
        let Some(mut obs) = observe_change(engine, run, (&refresh, &plan, &unset), address, change)
        else {
            continue;
        };
        if change.is_replace() && obs.presence.drifted() {
            view.notes.push(format!(
                "{address}: an apply would replace it ({})",
                change
                    .reason
                    .as_deref()
                    .unwrap_or("an attribute that cannot be updated changed")
                    .replace('_', " ")
            ));
        }
        obs.applied_mark = mark;
        let cloud_id = [
            change.before.as_ref(),
            refresh.drift.get(address).and_then(|d| d.before.as_ref()),
        ]
        .into_iter()
        .flatten()
        .find_map(|v| v.get("id")?.as_str().filter(|i| !i.is_empty()));
        if let Some(c) = cloud_id {
            view.cloud_ids.insert(obs.id.clone(), c.to_owned());
        }
        seen.insert(obs.id.clone(), obs);
    }
    if let Some(inventory) = &run.cloud {
        let managed = managed_by_state(&refresh, &plan);
        for r in unmanaged(inventory, &managed) {
            let id = ResourceId::new(
                engine.spec.name.as_str(),
                inventory.provider.as_str(),
                r.kind.as_str(),
                None,
                r.id.as_str(),
            );
            if seen.contains_key(&id) {
                continue;
            }
            let live_hash = xxhash_rust::xxh3::xxh3_64(
                format!("{}\0{}\0{}", r.kind, r.id, r.name.as_deref().unwrap_or("")).as_bytes(),
            );
            let mut obs = Observation::new(
                id.clone(),
                inventory.provider_source.as_str(),
                Presence::LiveOnly { live_hash },
            );
            // in the account and in no state: made outside Terraform
            obs.evidence = Some(Direction::Forward);
            obs.severity = engine.spec.severity.classify(&id, DriftKind::Orphan, &[]);
            obs.applied_mark = mark;
            view.cloud_ids.insert(id.clone(), r.id.clone());
            seen.insert(id, obs);
        }
        for e in &inventory.errors {
            view.errors.push(format!(
                "cannot list {} of the account (orphans of that kind unknown): {}",
                e.kind, e.message
            ));
        }
    }
    // recorded resources the plans no longer name: gone from both sides, unless the account
    // could not be listed for their kind, or an orphan was adopted into a state
    let unlisted: BTreeSet<(&str, &str)> = run
        .cloud
        .iter()
        .flat_map(|inv| {
            inv.errors
                .iter()
                .map(|e| (inv.provider.as_str(), e.kind.as_str()))
        })
        .collect();
    let adopted = managed_by_state(&refresh, &plan);
    for record in records.values() {
        let id = &record.id;
        if seen.contains_key(id) || id.environment != engine.spec.name {
            continue;
        }
        let open_orphan = record
            .drift
            .as_ref()
            .is_some_and(|d| d.kind == DriftKind::Orphan);
        let presence = if unlisted.contains(&(id.group.as_str(), id.kind.as_str())) && open_orphan {
            Presence::Unknown
        } else if open_orphan
            && adopted
                .get(id.kind.as_str())
                .is_some_and(|ids| ids.contains(&id.name))
        {
            // imported into a state: the orphan was adopted (in sync, then forgotten)
            Presence::Both(Comparison {
                leaves: Vec::new(),
                drifted: Vec::new(),
                drifted_hashes: Vec::new(),
            })
        } else {
            Presence::Neither
        };
        let mut obs = Observation::new(id.clone(), record.api_version.as_str(), presence);
        obs.applied_mark = mark;
        seen.insert(id.clone(), obs);
    }
    view.observations = seen.into_values().collect();
    Ok(view)
}

/// Whether the state the refresh-only plan read holds no managed resource: none refreshed, none
/// deleted since it was written.
fn state_is_empty(refresh: &Plan) -> bool {
    refresh.prior.is_empty() && refresh.drift.is_empty()
}

/// The ids of the account resources the state holds, by account kind (from the refreshed
/// state and from what was deleted since the state was written).
pub(super) fn managed_by_state(
    refresh: &Plan,
    plan: &Plan,
) -> BTreeMap<&'static str, BTreeSet<String>> {
    let mut out: BTreeMap<&'static str, BTreeSet<String>> = BTreeMap::new();
    let state = refresh
        .prior
        .values()
        .chain(plan.prior.values())
        .map(|(r, v)| (r.kind.as_str(), v))
        .chain(
            refresh
                .drift
                .values()
                .filter_map(|c| c.before.as_ref().map(|b| (c.resource.kind.as_str(), b))),
        );
    for (kind, values) in state {
        if let Some(k) = account_kind(kind) {
            out.entry(k).or_default().extend(managed_ids(kind, values));
        }
    }
    out
}

/// What decides how the arguments the code leaves unset are compared.
struct Unset<'a> {
    /// The security group rules other resources own.
    owned: &'a BTreeSet<Atom>,
    /// The arguments of each resource type (`None`: the schemas are not known, only security
    /// groups' rules are compared).
    arguments: Option<&'a Arguments>,
    /// The ids and ARNs other resources name.
    named: &'a BTreeSet<String>,
}

/// One resource of the normal plan, with the state's view from the refresh-only plan.
fn observe_change(
    engine: &Engine,
    run: &PlanRun,
    (refresh, plan, unset): (&Plan, &Plan, &Unset<'_>),
    address: &str,
    change: &Change,
) -> Option<Observation> {
    let r = &change.resource;
    let id = ResourceId::new(
        engine.spec.name.as_str(),
        provider_group(&r.provider),
        r.kind.as_str(),
        None,
        address,
    );
    let pointers: Vec<JsonPointer> = if engine.spec.ignore.rules.is_empty() {
        Vec::new()
    } else {
        engine.spec.ignore.pointers_for(&id)
    };
    let without = |v: Option<&Value>| {
        v.cloned().map(|mut v| {
            for p in &pointers {
                p.remove(&mut v);
            }
            v
        })
    };
    // the code's view, the cloud's (as this plan refreshed it) and the state's (as the last
    // apply wrote it: the refresh-only plan's `before` of what drifted)
    let mut desired = without(change.after.as_ref());
    let mut live = without(change.before.as_ref());
    let drift = refresh.drift.get(address);
    let mut state = match drift {
        Some(d) => without(d.before.as_ref()),
        None => live.clone(),
    };
    let in_state = state.is_some();
    let creates = change.actions.contains(&Action::Create);
    let deletes =
        change.actions.contains(&Action::Delete) || change.actions.contains(&Action::Forget);
    let mut obs = if change.actions.contains(&Action::Read) {
        return None;
    } else if change.is_no_op() || (creates && deletes) || change.actions.contains(&Action::Update)
    {
        // in the plan's view the resource exists in the cloud
        live.as_ref()?;
        if change.is_no_op() {
            desired = live.clone();
        }
        if !(creates && deletes) {
            let configured = plan.configured.get(&(
                module_key(&r.module_address),
                r.kind.clone(),
                r.name.clone(),
            ));
            left_to_the_cloud(
                &r.kind,
                configured,
                unset.owned,
                &change.unknown,
                (&mut desired, &mut live, &mut state),
            );
            let named = |v: &Option<Value>| {
                ["id", "arn"].iter().any(|k| {
                    v.as_ref()
                        .and_then(|v| v.get(*k))
                        .and_then(Value::as_str)
                        .is_some_and(|s| unset.named.contains(s))
                })
            };
            if let Some(arguments) = unset.arguments {
                if !named(&live) {
                    hand_set_arguments(
                        &r.kind,
                        configured,
                        arguments,
                        &change.unknown,
                        (&mut desired, &mut live, &mut state),
                    );
                }
            }
        }
        let unknown = if change.is_no_op() {
            &Value::Null
        } else {
            &change.unknown
        };
        let (cmp, paths) = compare_with_paths(desired.as_ref(), live.as_ref(), unknown);
        let evidence = (!cmp.in_sync()).then(|| direction(&cmp, &paths, state.as_ref()));
        let severity = engine
            .spec
            .severity
            .classify(&id, DriftKind::Modified, &cmp.drifted);
        let mut obs = Observation::new(id.clone(), r.provider.as_str(), Presence::Both(cmp));
        obs.evidence = evidence;
        obs.severity = severity;
        obs
    } else if creates {
        let (cmp, _) = compare_with_paths(desired.as_ref(), None, &change.unknown);
        let mut obs = Observation::new(
            id.clone(),
            r.provider.as_str(),
            Presence::DesiredOnly {
                desired_hash: cmp.desired_hash(),
                fields: cmp.desired_fields(),
            },
        );
        // in the state and gone from the cloud: deleted outside Terraform; else never applied
        let deleted = drift.is_some_and(|d| d.actions.contains(&Action::Delete));
        obs.evidence = Some(if deleted || in_state {
            Direction::Forward
        } else {
            Direction::Reverse
        });
        obs.severity = engine.spec.severity.classify(&id, DriftKind::Missing, &[]);
        obs
    } else if deletes {
        let (cmp, _) = compare_with_paths(None, live.as_ref(), &Value::Null);
        let mut obs = Observation::new(
            id.clone(),
            r.provider.as_str(),
            Presence::LiveOnly {
                live_hash: cmp.live_hash(),
            },
        );
        // in the state and the cloud, gone from the code: an apply would destroy it
        obs.evidence = Some(Direction::Reverse);
        obs.severity = engine.spec.severity.classify(&id, DriftKind::Orphan, &[]);
        obs
    } else {
        return None;
    };
    obs.provenance = provenance(run, change);
    obs.depends_on = depends_on(run, change);
    Some(obs)
}

/// A security group's `ingress`/`egress` the code does not set ([`super::unset`]): the rules
/// are then those of the state's rule resources, and the cloud's rules without theirs are
/// compared with none. A rule added by hand is forward drift, and stays so after an apply
/// wrote it into the state, until the code owns it or it is removed. Other arguments the
/// code leaves unset are compared with the state by [`hand_set_arguments`].
fn left_to_the_cloud(
    kind: &str,
    configured: Option<&Value>,
    owned: &BTreeSet<Atom>,
    unknown: &Value,
    (desired, live, state): (&mut Option<Value>, &mut Option<Value>, &mut Option<Value>),
) {
    if kind != "aws_security_group" {
        return;
    }
    let (Some(Value::Object(d)), Some(Value::Object(l))) = (desired.as_mut(), live.as_mut()) else {
        return;
    };
    let group = l.get("id").and_then(Value::as_str).unwrap_or("").to_owned();
    for k in unset_attributes(configured, l.keys()) {
        let direction = match k.as_str() {
            "ingress" => "ingress",
            "egress" => "egress",
            _ => continue,
        };
        if unknown
            .get(direction)
            .is_some_and(|u| *u != Value::Bool(false))
            || value_hash(d.get(direction)) != value_hash(l.get(direction))
        {
            // an apply would change it: the normal plan's comparison holds
            continue;
        }
        if let Some(v) = l.get(direction) {
            let left = without_owned(v, &group, direction, owned);
            l.insert(k.clone(), left);
        }
        d.insert(k.clone(), Value::Array(Vec::new()));
        if let Some(Value::Object(s)) = state.as_mut() {
            s.insert(k, Value::Array(Vec::new()));
        }
    }
}

/// Which side moved, attribute by attribute: the state agreeing with the code means the cloud
/// moved (forward), agreeing with the cloud means the code moved (reverse); anything else,
/// or some of each, is a conflict.
fn direction(cmp: &Comparison, paths: &[Vec<String>], state: Option<&Value>) -> Direction {
    let (mut forward, mut reverse, mut conflict) = (false, false, false);
    for (i, segments) in paths.iter().enumerate() {
        let ph = cmp.drifted_hashes[i];
        let Some(leaf) = cmp.leaves.iter().find(|l| l.path == ph) else {
            continue;
        };
        let s = value_hash(value_at(state, segments));
        match (s == leaf.desired(), s == leaf.live()) {
            (true, false) => forward = true,
            (false, true) => reverse = true,
            _ => conflict = true,
        }
    }
    match (forward, reverse, conflict) {
        (true, false, false) => Direction::Forward,
        (false, true, false) => Direction::Reverse,
        _ => Direction::Conflict,
    }
}

/// What the resource's values depend on in the code, from the source root: the folder of the
/// module declaring it (all its files: variables' defaults, locals), the file of each `module`
/// block calling its module chain (where the inputs are given), and the variable files of the
/// root module (those configured that are in the source, and `terraform.tfvars`). A resource
/// of a module whose code is not in the source (a registry module) depends on the calls.
fn depends_on(run: &PlanRun, change: &Change) -> Vec<String> {
    let r = &change.resource;
    let mut out = Vec::new();
    let key = module_key(&r.module_address);
    let decl = run.declarations.iter().find(|d| {
        d.kind == DeclarationKind::Resource
            && d.module == key
            && d.resource_type == r.kind
            && d.name == r.name
    });
    match decl {
        // a module's folder; the root module's own resources depend on their file only (the
        // root folder holds every other resource too)
        Some(d) if !key.is_empty() => out.push(folder_of(&d.file).to_owned()),
        Some(d) => out.push(d.file.clone()),
        None => {}
    }
    // the calls of the module chain: `a`, `a.b`, ...
    let parts: Vec<&str> = key.split('.').filter(|p| !p.is_empty()).collect();
    for depth in 1..=parts.len() {
        let parent = parts[..depth - 1].join(".");
        if let Some(call) = run.declarations.iter().find(|d| {
            d.kind == DeclarationKind::Module && d.module == parent && d.name == parts[depth - 1]
        }) {
            out.push(call.file.clone());
        }
    }
    let join = |f: &str| {
        if run.module.folder.is_empty() {
            f.to_owned()
        } else {
            format!("{}/{f}", run.module.folder.trim_end_matches('/'))
        }
    };
    for f in &run.module.var_files {
        // an absolute variable file is the host's, not the source's
        if !f.starts_with('/') {
            out.push(join(f.trim_start_matches("./")));
        }
    }
    out.push(join("terraform.tfvars"));
    out.sort();
    out.dedup();
    out
}

/// The folder of a file (`""`: the source root).
fn folder_of(file: &str) -> &str {
    file.rsplit_once('/').map_or("", |(dir, _)| dir)
}

/// Where the resource is declared, as a rendered object's provenance.
fn provenance(run: &PlanRun, change: &Change) -> Option<Provenance> {
    let r = &change.resource;
    let d = find(&run.declarations, &r.module_address, &r.kind, &r.name)?;
    Some(Provenance {
        file: d.file.clone(),
        document: 0,
        line: d.line,
        revision: run.revision.as_ref().map(|r| r.id.clone()),
        rendered: Some(Box::new(Rendering {
            unstable: Vec::new(),
            renderer: "terraform".into(),
            source: run.module.folder.clone(),
            values: run.module.var_files.clone(),
            inputs_commit: None,
        })),
    })
}
