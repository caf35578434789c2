//! Terraform drift through community modules, on plans recorded from the real binary
//! (terraform 1.11.4, AWS provider 5.100.0, moto's server): `examples/terraform-modules`
//! (a VPC, terraform-aws-modules' security group, whose rules are `aws_security_group_rule`
//! resources, and its DynamoDB table with point-in-time recovery) applied (`modules-clean-*`),
//! then changed by hand with boto3 (port 22 opened to 0.0.0.0/0 on the group, the table's
//! point-in-time recovery turned off: `modules-hand-*`), then `terraform apply` run again
//! (`modules-applied-*`: the recovery back on, the rule written into the group's state).

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use driftguard_core::memory::{ManualClock, MemoryPlanSource, MemoryStore};
use driftguard_core::model::Revision;
use driftguard_core::prelude::*;
use driftguard_core::terraform::{declare, ModuleInfo, PlanRun, RawPlan, StateMark};
use futures_executor::block_on;

const SG: &str = "module.web_sg.aws_security_group.this_name_prefix[0]";
const TABLE: &str = "module.orders.aws_dynamodb_table.this[0]";

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/terraform/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The arguments of the AWS provider 5.100.0's resource types (`terraform providers schema
/// -json`, the types of these plans kept).
fn arguments() -> std::sync::Arc<driftguard_core::terraform::Arguments> {
    std::sync::Arc::new(
        driftguard_core::terraform::Arguments::from_schema_json(&fixture(
            "aws-5.100.0-schema.json",
        ))
        .expect("the schema fixture"),
    )
}

fn t(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 7, 11, 0, 0)
        .single()
        .expect("valid time")
        + Duration::minutes(minutes)
}

/// The declarations of the example's files.
fn declarations() -> Vec<declare::Declaration> {
    let root = format!(
        "{}/../examples/terraform-modules",
        env!("CARGO_MANIFEST_DIR")
    );
    let read = |f: &str| {
        std::fs::read_to_string(format!("{root}/{f}")).unwrap_or_else(|e| panic!("{f}: {e}"))
    };
    let mut d = declare::declarations_in("", "live/prod/main.tf", &read("live/prod/main.tf"));
    d.extend(declare::declarations_in(
        "web_sg",
        "modules/security-group/main.tf",
        &read("modules/security-group/main.tf"),
    ));
    d.extend(declare::declarations_in(
        "orders",
        "modules/dynamodb-table/main.tf",
        &read("modules/dynamodb-table/main.tf"),
    ));
    d
}

fn run(step: &str) -> PlanRun {
    // `terraform state pull` of no state prints nothing
    let state: Option<StateMark> = (step != "empty").then(|| {
        // (the state of the `vpcrules-*` steps: `modules-vpcrules.tf` added and applied)
        serde_json::from_str(&fixture(&format!("modules-{step}-state.json"))).expect("state")
    });
    PlanRun {
        revision: Some(Revision::plain("c0ffee1")),
        module: ModuleInfo {
            folder: "live/prod".into(),
            workspace: "default".into(),
            var_files: Vec::new(),
        },
        refresh_only: RawPlan::new(fixture(&format!("modules-{step}-refresh.json"))),
        plan: RawPlan::new(fixture(&format!("modules-{step}-plan.json"))),
        state,
        declarations: declarations(),
        cloud: None,
        arguments: Some(arguments()),
        notes: Vec::new(),
        warnings: Vec::new(),
    }
}

fn scanner(plans: &Arc<MemoryPlanSource>, clock: &Arc<ManualClock>) -> Scanner {
    scanner_with(plans, clock, Arc::new(MemoryStore::new()), false)
}

fn scanner_with(
    plans: &Arc<MemoryPlanSource>,
    clock: &Arc<ManualClock>,
    store: Arc<MemoryStore>,
    expect_empty_state: bool,
) -> Scanner {
    let mut spec = EnvironmentSpec::new("cloud");
    spec.expect_empty_state = expect_empty_state;
    Scanner::with_plans(
        Engine::new(spec, Normalizer::new(SecretKey::new(b"test-key".to_vec()))),
        plans.clone(),
        store,
        clock.clone(),
    )
}

/// `name drift direction severity [fields]` of the open drifts.
fn open(rep: &ScanReport) -> Vec<String> {
    rep.drifts()
        .map(|d| {
            format!(
                "{} {} {} {} [{}]",
                d.id.name,
                d.kind,
                d.direction,
                d.severity,
                d.paths().join(",")
            )
        })
        .collect()
}

#[test]
fn a_rule_opened_by_hand_and_a_nested_flag_turned_off_are_forward_drift_field_by_field() {
    let plans = Arc::new(MemoryPlanSource::new());
    let clock = Arc::new(ManualClock::new(t(0)));
    let s = scanner(&plans, &clock);

    // right after the apply: the refresh-only plan shows the group's ingress and egress
    // growing by the rules of its rule resources, and the egress rule's ports moving from -1
    // to 0; none of it is drift
    plans.set(run("clean"));
    let rep = block_on(s.scan()).expect("scan");
    assert_eq!(open(&rep), Vec::<String>::new());
    assert_eq!(rep.summary.counts.tracked, 5);

    // by hand: port 22 opened to the world on the group, the table's recovery turned off
    clock.set(t(10));
    plans.set(run("hand"));
    let rep = block_on(s.scan()).expect("scan");
    assert_eq!(
        open(&rep),
        vec![
            format!("{TABLE} modified forward medium [point_in_time_recovery[0].enabled]"),
            format!("{SG} modified forward high [ingress]"),
        ]
    );
    let sg = rep
        .drifts()
        .find(|d| d.id.name == SG)
        .expect("the group's drift");
    // only the rule no rule resource owns: the module's 443 from the VPC is not in it
    let live = sg.fields[0].live.as_ref().expect("live").to_string();
    assert!(
        live.contains("0.0.0.0/0") && live.contains("\"from_port\":22"),
        "{live}"
    );
    assert!(!live.contains("443"), "{live}");
    assert_eq!(sg.fields[0].desired, None);
    let table = rep
        .drifts()
        .find(|d| d.id.name == TABLE)
        .expect("the table");
    assert_eq!(table.fields[0].desired, Some(true.into()));
    assert_eq!(table.fields[0].live, Some(false.into()));
    // declared in the module's file
    let p = table.provenance.as_ref().expect("provenance");
    assert_eq!(p.file, "modules/dynamodb-table/main.tf");

    // terraform apply: the recovery is back on (applied); the rule is still open, now in the
    // group's state too, and still drift
    clock.set(t(20));
    plans.set(run("applied"));
    let rep = block_on(s.scan()).expect("scan");
    let resolved: Vec<String> = rep
        .events
        .iter()
        .map(|e| {
            format!(
                "{} {} {}",
                e.kind,
                e.drift.id.name,
                e.drift
                    .resolution
                    .map(|r| r.to_string())
                    .unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(resolved, vec![format!("resolved {TABLE} applied")]);
    assert_eq!(
        open(&rep),
        vec![format!("{SG} modified forward high [ingress]")]
    );
}

#[test]
fn on_a_first_check_the_direction_comes_from_the_state() {
    // no history: the table's block is compared with the state field by field (the period
    // the code leaves unset moved from 35 to 0 with it), the group's rule is forward
    let plans = Arc::new(MemoryPlanSource::new());
    let clock = Arc::new(ManualClock::new(t(0)));
    let s = scanner(&plans, &clock);
    plans.set(run("hand"));
    let rep = block_on(s.scan()).expect("scan");
    assert_eq!(
        open(&rep),
        vec![
            format!("{TABLE} modified forward medium [point_in_time_recovery[0].enabled]"),
            format!("{SG} modified forward high [ingress]"),
        ]
    );
}

#[test]
fn an_empty_state_is_refused_unless_it_is_meant_and_nothing_stored_is_lost() {
    let plans = Arc::new(MemoryPlanSource::new());
    let clock = Arc::new(ManualClock::new(t(0)));
    let store = Arc::new(MemoryStore::new());
    let s = scanner_with(&plans, &clock, store.clone(), false);
    plans.set(run("clean"));
    block_on(s.scan()).expect("scan");
    let before = block_on(store.records("cloud")).expect("records");
    assert_eq!(before.len(), 5);

    // the same code planned without its backend: an empty local state
    clock.set(t(10));
    plans.set(run("empty"));
    let err = block_on(s.scan()).expect_err("an empty state is refused");
    let text = driftguard_core::error::chain(&err);
    assert!(
        text.contains("the state of workspace default holds no resource")
            && text.contains("terraform.backendConfig")
            && text.contains("terraform.expectEmptyState: true"),
        "{text}"
    );
    assert_eq!(block_on(store.records("cloud")).expect("records"), before);

    // meant to be empty: recorded, everything of the code never applied
    let s = scanner_with(&plans, &clock, Arc::new(MemoryStore::new()), true);
    let rep = block_on(s.scan()).expect("scan");
    let rows = open(&rep);
    assert_eq!(rows.len(), 5, "{rows:?}");
    assert!(
        rows.iter().all(|r| r.contains(" missing reverse ")),
        "{rows:?}"
    );
}

fn commit(
    id: &str,
    author: &str,
    minutes: i64,
    message: &str,
) -> driftguard_core::model::CommitInfo {
    driftguard_core::model::CommitInfo {
        id: id.into(),
        author: author.into(),
        email: format!("{}@example.com", author.to_lowercase()),
        time: t(minutes),
        message: message.into(),
    }
}

#[test]
fn a_module_input_changed_where_the_module_is_called_names_that_commit() {
    let plans = Arc::new(MemoryPlanSource::new());
    let clock = Arc::new(ManualClock::new(t(0)));
    let s = scanner(&plans, &clock);
    // the repository's first commit made everything; a later one changed the table's tags
    // where the module is called (live/prod/main.tf), not applied
    let first = commit(
        "a11ce00000000000000000000000000000000000",
        "Alice",
        -60,
        "infra",
    );
    let tags = commit(
        "ca201000000000000000000000000000000000000",
        "Carol",
        -5,
        "orders: team tag",
    );
    plans.set_commit("modules/dynamodb-table", first.clone());
    plans.set_commit("modules/security-group", first.clone());
    plans.set_commit("live/prod/main.tf", tags.clone());
    plans.set(run("inputs"));
    let rep = block_on(s.scan()).expect("scan");
    assert_eq!(
        open(&rep),
        vec![
            format!("{TABLE} modified reverse low [tags.team,tags_all.team]"),
            format!("{SG} modified forward high [ingress]"),
        ]
    );
    let table = rep
        .drifts()
        .find(|d| d.id.name == TABLE)
        .expect("the table");
    assert_eq!(table.attribution.commit.as_ref(), Some(&tags));
    assert_eq!(table.attribution.who(table.direction), "Carol (ca201000)");
    // still declared in the module's file
    let p = table.provenance.as_ref().expect("provenance");
    assert_eq!(p.file, "modules/dynamodb-table/main.tf");
    // a change in the module itself, newer still, is named instead
    let module = commit(
        "b0b0000000000000000000000000000000000000",
        "Bob",
        -1,
        "table: class",
    );
    plans.set_commit("modules/dynamodb-table", module.clone());
    let s = scanner(&plans, &clock);
    let rep = block_on(s.scan()).expect("scan");
    let table = rep
        .drifts()
        .find(|d| d.id.name == TABLE)
        .expect("the table");
    assert_eq!(table.attribution.commit.as_ref(), Some(&module));
}

#[test]
fn rules_of_vpc_security_group_rule_resources_are_theirs_and_a_rule_opened_to_ipv6_is_not() {
    // the root module with a group whose rules are `aws_vpc_security_group_ingress_rule` and
    // `..._egress_rule` resources (`modules-vpcrules.tf`), applied; the web group still has
    // the rule opened by hand before
    let plans = Arc::new(MemoryPlanSource::new());
    let clock = Arc::new(ManualClock::new(t(0)));
    let s = scanner(&plans, &clock);
    plans.set(run("vpcrules-clean"));
    let rep = block_on(s.scan()).expect("scan");
    assert_eq!(
        open(&rep),
        vec![format!("{SG} modified forward high [ingress]")]
    );
    assert_eq!(rep.summary.counts.tracked, 8);
    // by hand: port 22 opened to ::/0 on the api group
    clock.set(t(10));
    plans.set(run("vpcrules-hand"));
    let rep = block_on(s.scan()).expect("scan");
    assert_eq!(
        open(&rep),
        vec![
            "aws_security_group.api modified forward high [ingress]".to_owned(),
            format!("{SG} modified forward high [ingress]"),
        ]
    );
    let api = rep
        .drifts()
        .find(|d| d.id.name == "aws_security_group.api")
        .expect("the api group");
    let live = api.fields[0].live.as_ref().expect("live").to_string();
    assert!(
        live.contains("::/0") && live.contains("\"from_port\":22"),
        "{live}"
    );
    assert!(
        !live.contains("10.40.0.0/16") && !live.contains("443"),
        "{live}"
    );
}
