//! Terraform drift on plans recorded from the real binary (terraform 1.11.4, AWS provider
//! 5.100.0, moto's server): `examples/terraform` applied (`applied-*`), then changed by hand
//! (the bucket's tags, an ingress rule opened to 0.0.0.0/0, the VPC deleted, a bucket made
//! outside Terraform) and in the code (the database's storage, committed, not applied:
//! `changed-*`), then applied again (`resolved-*`). The variable `db_password` is sensitive;
//! its value, `CANARY-pw-7c1d0e`, is in the recorded JSON (Terraform prints it) and must be
//! nowhere else.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use driftguard_core::audit::CloudEvent;
use driftguard_core::memory::{ManualClock, MemoryPlanSource, MemoryStore, RecordingNotifier};
use driftguard_core::model::{CommitInfo, Revision};
use driftguard_core::prelude::*;
use driftguard_core::query::DriftStatus;
use driftguard_core::state::{Direction, DriftKind, Resolution};
use driftguard_core::terraform::{
    declare, CloudError, CloudInventory, CloudResource, ModuleInfo, PlanRun, RawPlan, StateMark,
};
use futures_executor::block_on;
use serde_json::Value;

const CANARY: &str = "CANARY-pw-7c1d0e";

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/terraform/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn example(file: &str) -> String {
    let path = format!(
        "{}/../examples/terraform/{file}",
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
    Utc.with_ymd_and_hms(2026, 11, 27, 20, 0, 0)
        .single()
        .expect("valid time")
        + Duration::minutes(minutes)
}

fn bucket(name: &str) -> CloudResource {
    CloudResource {
        kind: "aws_s3_bucket".into(),
        id: name.into(),
        name: Some(name.into()),
        default: false,
    }
}

/// The account as the AWS API lists it at each step.
fn inventory(step: &str) -> CloudInventory {
    let mut resources = vec![
        bucket("driftguard-data"),
        CloudResource {
            kind: "aws_vpc".into(),
            id: "vpc-default".into(),
            name: None,
            default: true,
        },
        CloudResource {
            kind: "aws_security_group".into(),
            id: "sg-default".into(),
            name: Some("default".into()),
            default: true,
        },
    ];
    if step != "applied" {
        resources.push(bucket("hand-made-reports"));
    }
    CloudInventory {
        provider: "aws".into(),
        provider_source: "registry.terraform.io/hashicorp/aws".into(),
        kinds: vec![
            "aws_s3_bucket".into(),
            "aws_vpc".into(),
            "aws_security_group".into(),
        ],
        resources,
        errors: Vec::new(),
        exclude: Vec::new(),
    }
}

fn declarations() -> Vec<declare::Declaration> {
    let mut d = declare::declarations_in("", "infra/main.tf", &example("main.tf"));
    d.extend(declare::declarations_in(
        "network",
        "infra/modules/network/main.tf",
        &example("modules/network/main.tf"),
    ));
    d
}

/// The check of one recorded step.
fn run(step: &str, revision: &str) -> PlanRun {
    let state: StateMark =
        serde_json::from_str(&fixture(&format!("{step}-state.json"))).expect("state mark");
    PlanRun {
        revision: Some(Revision::plain(revision)),
        module: ModuleInfo {
            folder: "infra".into(),
            workspace: "default".into(),
            var_files: vec!["/etc/driftguard/prod.tfvars".into()],
        },
        refresh_only: RawPlan::new(fixture(&format!("{step}-refresh.json"))),
        plan: RawPlan::new(fixture(&format!("{step}-plan.json"))),
        state: Some(state),
        declarations: declarations(),
        cloud: Some(inventory(step)),
        arguments: Some(arguments()),
        notes: Vec::new(),
        warnings: Vec::new(),
    }
}

fn engine() -> Engine {
    Engine::new(
        EnvironmentSpec::new("cloud"),
        Normalizer::new(SecretKey::new(b"test-key".to_vec())),
    )
}

fn bob() -> CommitInfo {
    CommitInfo {
        id: "6e7176d0aaaabbbbccccddddeeeeffff00001111".into(),
        author: "Bob".into(),
        email: "bob@example.com".into(),
        time: t(-5),
        message: "db: more storage".into(),
    }
}

struct Rig {
    plans: Arc<MemoryPlanSource>,
    store: Arc<MemoryStore>,
    clock: Arc<ManualClock>,
    notifier: Arc<RecordingNotifier>,
    scanner: Scanner,
}

fn rig() -> Rig {
    let plans = Arc::new(MemoryPlanSource::new());
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(t(0)));
    let notifier = Arc::new(RecordingNotifier::default());
    let scanner = Scanner::with_plans(engine(), plans.clone(), store.clone(), clock.clone())
        .with_notifier(notifier.clone());
    plans.set_commit("infra/main.tf", bob());
    Rig {
        plans,
        store,
        clock,
        notifier,
        scanner,
    }
}

fn id(kind: &str, name: &str) -> ResourceId {
    ResourceId::new("cloud", "aws", kind, None, name)
}

/// `kind direction severity [fields]` of an open drift.
fn describe(d: &Drift) -> String {
    format!(
        "{} {} {} [{}]",
        d.kind,
        d.direction,
        d.severity,
        d.paths().join(",")
    )
}

/// Everything DriftGuard keeps or says, as text: records, episodes, events, notifications.
fn everything(r: &Rig, reports: &[ScanReport]) -> String {
    let store = &r.store;
    let mut out = String::new();
    let records = block_on(store.records("cloud")).expect("records");
    out.push_str(&serde_json::to_string(&records).expect("json"));
    let q = DriftQuery {
        status: DriftStatus::All,
        limit: 1000,
        ..DriftQuery::default()
    };
    let drifts = block_on(store.drifts(&q)).expect("drifts");
    out.push_str(&serde_json::to_string(&drifts.items).expect("json"));
    out.push_str(&format!(
        "{:?}",
        r.notifier.received.lock().expect("lock is never poisoned")
    ));
    for rep in reports {
        out.push_str(&format!("{rep:?}"));
    }
    out
}

#[test]
fn hand_changes_an_unapplied_commit_and_an_orphan_then_an_apply_resolves_them() {
    let r = rig();
    let mut reports = Vec::new();

    // applied: everything in sync (the noise of a refresh, `tags: null -> {}`, is not drift)
    r.plans.set(run("applied", "3846ac0"));
    let rep = block_on(r.scanner.scan()).expect("scan");
    assert_eq!(
        rep.drifts().count(),
        0,
        "{:?}",
        rep.drifts().collect::<Vec<_>>()
    );
    assert_eq!(rep.summary.counts.tracked, 4);
    assert_eq!(rep.summary.counts.in_sync, 4);
    assert_eq!(rep.summary.revision.as_deref(), Some("3846ac0"));
    reports.push(rep);

    // changed by hand and in the code
    r.clock.set(t(10));
    r.plans.set(run("changed", "6e7176d"));
    let rep = block_on(r.scanner.scan()).expect("scan");
    let got: Vec<String> = rep
        .drifts()
        .map(|d| format!("{} {}", d.id.name, describe(d)))
        .collect();
    assert_eq!(
        got,
        vec![
            "aws_db_instance.db modified reverse medium [allocated_storage]",
            "aws_s3_bucket.data modified forward low [tags.owner,tags.team,tags_all.owner,tags_all.team]",
            "hand-made-reports orphan forward medium []",
            "aws_security_group.web modified forward high [ingress]",
            "module.network.aws_vpc.main missing forward medium []",
        ]
    );
    let drift = |kind: &str, name: &str| {
        rep.drifts()
            .find(|d| d.id == id(kind, name))
            .cloned()
            .unwrap_or_else(|| panic!("{kind} {name}"))
    };
    // the reverse drift names the commit of the file declaring the resource
    let db = drift("aws_db_instance", "aws_db_instance.db");
    assert_eq!(
        db.attribution.commit.as_ref().map(|c| c.author.as_str()),
        Some("Bob")
    );
    assert_eq!(db.attribution.who(db.direction), "Bob (6e7176d0)");
    let p = db.provenance.as_ref().expect("provenance");
    assert_eq!((p.file.as_str(), p.line), ("infra/main.tf", 61));
    assert_eq!(p.revision.as_deref(), Some("6e7176d"));
    let rendered = p.rendered.as_ref().expect("rendered");
    assert_eq!(
        (rendered.renderer.as_str(), rendered.source.as_str()),
        ("terraform", "infra")
    );
    assert_eq!(db.fields[0].desired, Some(Value::from(30)));
    assert_eq!(db.fields[0].live, Some(Value::from(20)));
    assert_eq!(db.api_version, "registry.terraform.io/hashicorp/aws");
    // the rule opened by hand, and its values
    let sg = drift("aws_security_group", "aws_security_group.web");
    let live = sg.fields[0].live.as_ref().expect("live rules").to_string();
    assert!(
        live.contains("0.0.0.0/0") && live.contains("\"from_port\":22"),
        "{live}"
    );
    let tags = drift("aws_s3_bucket", "aws_s3_bucket.data");
    assert_eq!(tags.fields[1].desired, Some(Value::from("platform")));
    assert_eq!(tags.fields[1].live, Some(Value::from("data-eng")));
    // the VPC of a local module is declared there
    let vpc = drift("aws_vpc", "module.network.aws_vpc.main");
    let p = vpc.provenance.as_ref().expect("provenance");
    assert_eq!(
        (p.file.as_str(), p.line),
        ("infra/modules/network/main.tf", 6)
    );
    assert_eq!(rep.summary.counts.modified, 3);
    assert_eq!(rep.summary.counts.missing, 1);
    assert_eq!(rep.summary.counts.orphan, 1);
    reports.push(rep);

    // the same check again: nothing new
    r.clock.set(t(20));
    let rep = block_on(r.scanner.scan()).expect("scan");
    assert!(rep.events.is_empty(), "{:?}", rep.events);
    reports.push(rep);

    // terraform apply: every drift it could end is resolved as applied; the bucket made
    // outside Terraform stays an orphan
    r.clock.set(t(30));
    r.plans.set(run("resolved", "6e7176d"));
    let rep = block_on(r.scanner.scan()).expect("scan");
    let mut resolved: Vec<String> = rep
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
    resolved.sort();
    assert_eq!(
        resolved,
        vec![
            "resolved aws_db_instance.db applied",
            "resolved aws_s3_bucket.data applied",
            "resolved aws_security_group.web applied",
            "resolved module.network.aws_vpc.main applied",
        ]
    );
    let open: Vec<String> = rep.drifts().map(|d| d.id.name.clone()).collect();
    assert_eq!(open, vec!["hand-made-reports"]);
    reports.push(rep);

    // nothing sensitive anywhere
    let text = everything(&r, &reports);
    assert!(!text.contains(CANARY), "the canary leaked");
    assert!(
        !text.contains("hmac-sha256"),
        "no keyed hash is shown either"
    );
}

/// A CloudTrail event as an adapter reads it.
fn trail_event(id: &str, name: &str, user: &str, at: DateTime<Utc>) -> CloudEvent {
    CloudEvent {
        event_id: id.into(),
        event_name: name.into(),
        at,
        username: Some(user.into()),
        arn: Some(format!("arn:aws:iam::123456789012:user/{user}")),
        identity_type: Some("IAMUser".into()),
        source_ip: Some("198.51.100.7".into()),
        user_agent: "aws-cli/2.15.0".into(),
        read_only: Some(false),
        ..CloudEvent::default()
    }
}

#[test]
fn hand_changes_name_their_writers_from_the_cloud_trail() {
    let r = rig();
    let sg = "sg-382f1cfc247a08bef";
    let vpc = "vpc-d3151f3fc830246ed";
    r.plans.set_trail(vec![
        (
            sg.into(),
            trail_event("ev-old", "ModifySecurityGroupRules", "mallory", t(-60)),
        ),
        (
            sg.into(),
            trail_event("ev-alice", "AuthorizeSecurityGroupIngress", "alice", t(5)),
        ),
        (vpc.into(), trail_event("ev-bob", "DeleteVpc", "bob", t(6))),
        (
            vpc.into(),
            trail_event("ev-tag", "CreateTags", "carol", t(4)),
        ),
    ]);
    r.plans.set(run("applied", "3846ac0"));
    block_on(r.scanner.scan()).expect("scan");
    r.clock.set(t(10));
    r.plans.set(run("changed", "6e7176d"));
    let rep = block_on(r.scanner.scan()).expect("scan");
    let writers = |name: &str| -> Vec<String> {
        rep.drifts()
            .find(|d| d.id.name == name)
            .unwrap_or_else(|| panic!("no drift of {name}"))
            .attribution
            .writers
            .iter()
            .map(|w| w.describe())
            .collect()
    };
    assert_eq!(
        writers("aws_security_group.web"),
        ["alice (AuthorizeSecurityGroupIngress, update, from 198.51.100.7) at 2026-11-27 20:05:00 UTC"],
        "the write before the last check is not it"
    );
    assert_eq!(
        writers("module.network.aws_vpc.main"),
        ["bob (DeleteVpc, delete, from 198.51.100.7) at 2026-11-27 20:06:00 UTC"],
        "a missing resource names its deletion"
    );
    assert!(
        writers("aws_db_instance.db").is_empty(),
        "a commit's drift asks no trail"
    );
    assert!(writers("aws_s3_bucket.data").is_empty());
    // the drifts made in the cloud were asked, each by its cloud id, from the last check
    let asked = r.plans.trail_queries();
    assert_eq!(asked.len(), 2, "every check asks (the first, nothing)");
    assert!(asked[0].is_empty());
    let mut got: Vec<(String, String)> = asked[1]
        .iter()
        .map(|q| (q.id.name.clone(), q.cloud_id.clone()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            (
                "aws_s3_bucket.data".to_owned(),
                "driftguard-data".to_owned()
            ),
            ("aws_security_group.web".to_owned(), sg.to_owned()),
            (
                "hand-made-reports".to_owned(),
                "hand-made-reports".to_owned()
            ),
            ("module.network.aws_vpc.main".to_owned(), vpc.to_owned()),
        ]
    );
    assert!(asked[1].iter().all(|q| q.since == Some(t(0))), "{asked:?}");
    // stored, and not asked again once named
    let stored = block_on(r.store.records("cloud")).expect("records");
    let sg_record = stored
        .iter()
        .find(|x| x.id.name == "aws_security_group.web")
        .expect("the group's record");
    let d = sg_record.drift.as_ref().expect("open");
    assert_eq!(d.attribution.writers[0].user.name.as_deref(), Some("alice"));
    assert!(
        d.attribution.owners.is_empty(),
        "an API call is no field manager: {:?}",
        d.attribution.owners
    );
    assert_eq!(d.attribution.audit_since, Some(t(0)));
    r.clock.set(t(20));
    block_on(r.scanner.scan()).expect("scan");
    let asked = r.plans.trail_queries();
    let mut again: Vec<&str> = asked[2].iter().map(|q| q.id.name.as_str()).collect();
    again.sort();
    assert_eq!(again, ["aws_s3_bucket.data", "hand-made-reports"]);
    assert!(
        asked[2].iter().all(|q| q.since == Some(t(0))),
        "the window stays"
    );
}

#[test]
fn the_first_check_takes_direction_from_the_state() {
    // no records: nothing was seen before, yet the state says which side moved
    let r = rig();
    r.plans.set(run("changed", "6e7176d"));
    let rep = block_on(r.scanner.scan()).expect("scan");
    let got: Vec<String> = rep
        .drifts()
        .map(|d| format!("{} {}", d.id.name, d.direction))
        .collect();
    assert_eq!(
        got,
        vec![
            "aws_db_instance.db reverse",
            "aws_s3_bucket.data forward",
            "hand-made-reports forward",
            "aws_security_group.web forward",
            "module.network.aws_vpc.main forward",
        ]
    );
}

/// Edits one plan of a check as JSON (a way to make other situations from the recorded ones).
fn edit(run: &mut PlanRun, normal: bool, f: impl FnOnce(&mut Value)) {
    let plan = if normal {
        &mut run.plan
    } else {
        &mut run.refresh_only
    };
    let mut v: Value = serde_json::from_str(plan.text()).expect("recorded JSON");
    f(&mut v);
    *plan = RawPlan::new(v.to_string());
}

/// The change of `address` in a plan's `resource_changes`.
fn change<'a>(plan: &'a mut Value, address: &str) -> &'a mut Value {
    plan["resource_changes"]
        .as_array_mut()
        .expect("resource_changes")
        .iter_mut()
        .find(|c| c["address"] == address)
        .unwrap_or_else(|| panic!("{address}"))
}

#[test]
fn a_changed_sensitive_value_is_reverse_drift_shown_redacted() {
    let r = rig();
    r.plans.set(run("applied", "3846ac0"));
    block_on(r.scanner.scan()).expect("scan");
    // the code's password changed (a new variable value), the cloud's did not
    let mut changed = run("applied", "3846ac1");
    edit(&mut changed, true, |p| {
        let c = change(p, "aws_db_instance.db");
        c["change"]["actions"] = serde_json::json!(["update"]);
        c["change"]["after"]["password"] = Value::from("CANARY-pw-NEW");
    });
    r.clock.set(t(5));
    r.plans.set(changed);
    let rep = block_on(r.scanner.scan()).expect("scan");
    let d: Vec<&Drift> = rep.drifts().collect();
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(describe(d[0]), "modified reverse medium [password]");
    assert_eq!(d[0].fields[0].desired, Some(Value::from("(secret value)")));
    assert_eq!(d[0].fields[0].live, Some(Value::from("(secret value)")));
    let text = everything(&r, &[rep]);
    assert!(!text.contains("CANARY"), "a password leaked");
}

#[test]
fn both_sides_moved_is_a_conflict_and_unlisted_kinds_keep_their_orphans() {
    let r = rig();
    r.plans.set(run("applied", "3846ac0"));
    block_on(r.scanner.scan()).expect("scan");
    r.clock.set(t(5));
    r.plans.set(run("changed", "6e7176d"));
    block_on(r.scanner.scan()).expect("scan");
    // the code's tag changed too, to yet another value: both moved
    let mut both = run("changed", "6e7176e");
    edit(&mut both, true, |p| {
        let c = change(p, "aws_s3_bucket.data");
        c["change"]["after"]["tags"]["team"] = Value::from("analytics");
        c["change"]["after"]["tags_all"]["team"] = Value::from("analytics");
    });
    // and the account's buckets cannot be listed this time
    let inv = both.cloud.as_mut().expect("inventory");
    inv.resources.retain(|r| r.kind != "aws_s3_bucket");
    inv.errors.push(CloudError {
        kind: "aws_s3_bucket".into(),
        message: "AccessDenied".into(),
    });
    r.clock.set(t(10));
    r.plans.set(both);
    let rep = block_on(r.scanner.scan()).expect("scan");
    let bucket = rep
        .drifts()
        .find(|d| d.id == id("aws_s3_bucket", "aws_s3_bucket.data"))
        .expect("bucket drift");
    assert_eq!(
        bucket.direction,
        Direction::Conflict,
        "{}",
        describe(bucket)
    );
    // the orphan bucket's live state is unknown: it stays open, nothing is resolved
    let orphan = rep
        .verdicts
        .iter()
        .find(|v| v.id == id("aws_s3_bucket", "hand-made-reports"))
        .expect("orphan verdict");
    assert_eq!(orphan.status, VerdictStatus::Unknown);
    assert!(rep
        .events
        .iter()
        .all(|e| e.drift.id.name != "hand-made-reports"));
    assert!(rep
        .summary
        .errors
        .iter()
        .any(|e| e.contains("aws_s3_bucket") && e.contains("AccessDenied")));
}

#[test]
fn an_orphan_imported_into_the_state_is_adopted() {
    let r = rig();
    r.plans.set(run("changed", "6e7176d"));
    block_on(r.scanner.scan()).expect("scan");
    // `terraform import` of the bucket: the refreshed state now holds it
    let mut imported = run("changed", "6e7176d");
    edit(&mut imported, false, |p| {
        p["prior_state"]["values"]["root_module"]["resources"]
            .as_array_mut()
            .expect("resources")
            .push(serde_json::json!({
                "address": "aws_s3_bucket.reports", "mode": "managed",
                "type": "aws_s3_bucket", "name": "reports",
                "provider_name": "registry.terraform.io/hashicorp/aws",
                "values": {"bucket": "hand-made-reports", "id": "hand-made-reports"},
                "sensitive_values": {}
            }));
    });
    r.clock.set(t(5));
    r.plans.set(imported.clone());
    let rep = block_on(r.scanner.scan()).expect("scan");
    let adopted: Vec<(String, Option<Resolution>)> = rep
        .events
        .iter()
        .filter(|e| e.drift.kind == DriftKind::Orphan)
        .map(|e| (e.drift.id.name.clone(), e.drift.resolution))
        .collect();
    assert_eq!(
        adopted,
        vec![("hand-made-reports".to_owned(), Some(Resolution::Adopted))]
    );
    // and the in-sync record it leaves is forgotten at the next check, without an event
    r.clock.set(t(10));
    let rep = block_on(r.scanner.scan()).expect("scan");
    assert!(rep
        .events
        .iter()
        .all(|e| e.drift.id.name != "hand-made-reports"));
    let records = block_on(r.store.records("cloud")).expect("records");
    assert!(records.iter().all(|rec| rec.id.name != "hand-made-reports"));
}

#[test]
fn an_unreachable_cloud_is_the_live_side_and_keeps_every_record() {
    let r = rig();
    r.plans.set(run("changed", "6e7176d"));
    block_on(r.scanner.scan()).expect("scan");
    let before = block_on(r.store.records("cloud")).expect("records");
    r.plans.set_unreachable();
    r.clock.set(t(5));
    match block_on(r.scanner.scan()) {
        Err(ScanError::Live { .. }) => {}
        other => panic!("expected a live-side error, got {other:?}"),
    }
    assert_eq!(block_on(r.store.records("cloud")).expect("records"), before);
    // a plan source has nothing to watch
    assert_eq!(r.scanner.live_scope(), Some(LiveScope::default()));
    assert!(block_on(r.scanner.watch(&LiveScope::default())).is_err());
}

#[test]
fn a_plan_that_is_not_terraform_json_fails_the_scan_without_its_content() {
    let r = rig();
    let mut bad = run("applied", "3846ac0");
    bad.plan = RawPlan::new(format!("{{\"password\": \"{CANARY}\""));
    r.plans.set(bad);
    let err = block_on(r.scanner.scan()).expect_err("not a plan");
    let text = driftguard_core::error::chain(&err);
    assert!(
        text.contains("not a plan in Terraform's JSON format"),
        "{text}"
    );
    assert!(!text.contains(CANARY), "{text}");
}
