use super::*;
use crate::engine::EnvironmentSpec;
use crate::ignore::{IgnoreRule, JsonPointer};
use crate::model::{Provenance, RawLive, RawManifest, RawObject, Rendering};
use crate::normalize::{Normalizer, SecretKey};
use crate::ports::{DesiredSet, LiveSnapshot};
use crate::testkit::{self, deployment, DriftBuilder};
use chrono::TimeZone;

fn at(s: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + s, 0)
        .single()
        .expect("time")
}

fn deploy_git() -> Value {
    deployment("web")
        .label("app", "web")
        .replicas(3)
        .image("nginx:1.25")
        .env("A", "1")
        .build()
}

/// [`deploy_git`] as the API server returns it, changed by hand: a label, the replicas, the
/// image and an environment variable; a field owned by the VPA.
fn deploy_live() -> Value {
    deployment("web")
        .label("app", "web")
        .label("hotfix", "yes")
        .uid("u1")
        .set("/metadata/resourceVersion", json!("7"))
        .managed_fields(vec![json!(
            {"manager": "vpa", "operation": "Update", "time": "2026-11-25T17:41:00Z",
             "fieldsV1": {"f:spec": {"f:template": {"f:spec": {"f:containers": {
                "k:{\"name\":\"app\"}": {"f:resources": {}}}}}}}})])
        .replicas(5)
        .set("/spec/revisionHistoryLimit", json!(10))
        .image("nginx:1.26")
        .env("A", "1")
        .env("DEBUG", "true")
        .set("/status", json!({"replicas": 5}))
        .build()
}

fn hpa() -> Value {
    json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 1, "maxReplicas": 5}})
}

fn engine(spec: EnvironmentSpec) -> Engine {
    Engine::new(spec, Normalizer::new(SecretKey::new(b"k".to_vec())))
}

fn state(e: &Engine, desired: &[&Value], live: &[&Value]) -> EnvState {
    e.index(
        &DesiredSet {
            objects: desired
                .iter()
                .map(|v| RawManifest {
                    object: RawObject::new((*v).clone()),
                    provenance: Provenance::default(),
                })
                .collect(),
            ..DesiredSet::default()
        },
        &LiveSnapshot {
            served: Vec::new(),
            objects: live.iter().map(|v| RawLive::new((*v).clone())).collect(),
            errors: Vec::new(),
        },
    )
}

/// The drift of these tests: episode `ep1` of `prod:shop/web`, defined in `apps/web.yaml`.
fn drift(kind: DriftKind, group: &str, k: &str) -> DriftBuilder {
    testkit::drift()
        .episode("ep1")
        .object(group, k)
        .api_version("v1")
        .kind(kind)
        .at(at(0))
        .provenance("apps/web.yaml", 1, 3)
}

fn deploy_drift() -> Drift {
    drift(DriftKind::Modified, "apps", "Deployment")
        .field("metadata.labels.hotfix", None, Some(json!("yes")))
        .field(
            "spec.template.spec.containers[app].env[DEBUG]",
            None,
            Some(json!({"name": "DEBUG", "value": "true"})),
        )
        .field(
            "spec.template.spec.containers[app].image",
            Some(json!("nginx:1.25")),
            Some(json!("nginx:1.26")),
        )
        .build()
}

fn req<'a>(
    d: &'a Drift,
    action: RemediationAction,
    desired: Option<&'a Value>,
    live: Option<&'a Value>,
) -> Request<'a> {
    Request {
        drift: d,
        action,
        desired,
        live,
        prune: false,
        git: Readiness::Ready,
        cluster: Readiness::Ready,
    }
}

#[test]
fn revert_applies_only_gits_fields_and_removes_what_the_cluster_added() {
    let mut spec = EnvironmentSpec::new("prod");
    spec.ignore.rules.push(IgnoreRule {
        json_pointers: vec![JsonPointer::parse("/metadata/labels/app").expect("pointer")],
        ..IgnoreRule::default()
    });
    let e = engine(spec);
    let (git, live) = (deploy_git(), deploy_live());
    let st = state(&e, &[&git, &hpa()], &[&live]);
    let d = deploy_drift();
    let p = plan(
        &e,
        &st,
        &req(&d, RemediationAction::Revert, Some(&git), Some(&live)),
    )
    .expect("plan");
    assert_eq!(p.operation, Operation::Apply);
    let body = p.apply.clone().expect("body");
    assert_eq!(
        body.pointer("/spec/replicas"),
        None,
        "the HPA owns replicas"
    );
    assert_eq!(
        body.pointer("/metadata/labels/app"),
        None,
        "ignored by a rule"
    );
    assert_eq!(body.pointer("/status"), None);
    assert_eq!(
        body.pointer("/spec/template/spec/containers/0/image"),
        Some(&json!("nginx:1.25"))
    );
    assert_eq!(
        body.pointer("/spec/revisionHistoryLimit"),
        None,
        "Git does not set it"
    );
    assert!(
        p.left_alone
            .iter()
            .any(|l| l.contains("HorizontalPodAutoscaler")),
        "{:?}",
        p.left_alone
    );
    // guarded removals: the label and the env var, each behind a test
    let removes: Vec<&str> = p
        .removals
        .iter()
        .filter(|o| o["op"] == "remove")
        .filter_map(|o| o["path"].as_str())
        .collect();
    assert_eq!(
        removes,
        vec![
            "/metadata/labels/hotfix",
            "/spec/template/spec/containers/0/env/1"
        ]
    );
    assert!(p.removals.iter().any(|o| o["op"] == "test"
        && o["path"] == "/spec/template/spec/containers/0/env/1"
        && o["value"]["name"] == "DEBUG"));
    assert_eq!(p.changes.len(), 3);
    assert_eq!(p.changes[2].to, Some(json!("nginx:1.25")));
    // the id is the content: the same inputs give the same id, another body another one
    let again = plan(
        &e,
        &st,
        &req(&d, RemediationAction::Revert, Some(&git), Some(&live)),
    )
    .expect("plan");
    assert_eq!(p.id, again.id);
    let mut git2 = git.clone();
    git2["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.27");
    let other = plan(
        &e,
        &st,
        &req(&d, RemediationAction::Revert, Some(&git2), Some(&live)),
    )
    .expect("plan");
    assert_ne!(p.id, other.id);
}

#[test]
fn fields_of_ignored_managers_are_left_alone() {
    let mut spec = EnvironmentSpec::new("prod");
    spec.ignore.rules.push(IgnoreRule {
        managed_fields_managers: vec!["vpa".into()],
        ..IgnoreRule::default()
    });
    let e = engine(spec);
    let mut git = deploy_git();
    git["spec"]["template"]["spec"]["containers"][0]["resources"] = json!({"limits": {"cpu": "1"}});
    let live = deploy_live();
    let st = state(&e, &[&git], &[&live]);
    let d = deploy_drift();
    let p = plan(
        &e,
        &st,
        &req(&d, RemediationAction::Revert, Some(&git), Some(&live)),
    )
    .expect("plan");
    let body = p.apply.expect("body");
    assert_eq!(
        body.pointer("/spec/template/spec/containers/0/resources"),
        None
    );
    assert_eq!(
        body.pointer("/spec/replicas"),
        Some(&json!(3)),
        "no HPA here"
    );
}

#[test]
fn missing_is_created_and_orphans_are_deleted_only_when_allowed() {
    let e = engine(EnvironmentSpec::new("prod"));
    let git = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web"},
        "data": {"a": "1"}});
    let st = state(&e, &[&git], &[]);
    let d = drift(DriftKind::Missing, "", "ConfigMap").build();
    let p = plan(
        &e,
        &st,
        &req(&d, RemediationAction::Revert, Some(&git), None),
    )
    .expect("plan");
    assert_eq!(p.operation, Operation::Create);
    assert_eq!(
        p.apply
            .as_ref()
            .and_then(|b| b.pointer("/metadata/namespace")),
        Some(&json!("shop"))
    );

    let o = drift(DriftKind::Orphan, "", "ConfigMap").build();
    let untracked = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "web", "namespace": "shop"}});
    let mut r = req(&o, RemediationAction::Revert, None, Some(&untracked));
    assert!(matches!(plan(&e, &st, &r), Err(Refusal::PruneNotAsked(_))));
    r.prune = true;
    assert!(matches!(plan(&e, &st, &r), Err(Refusal::NotPrunable(_))));
    let tracked = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "web", "namespace": "shop", "labels": {"driftguard.io/tracked": "true"}}});
    r.live = Some(&tracked);
    assert_eq!(
        plan(&e, &st, &r).expect("plan").operation,
        Operation::Delete
    );
    let mut spec = EnvironmentSpec::new("prod");
    spec.managed_namespaces = Some(vec!["shop".into()]);
    let managed = engine(spec);
    r.live = Some(&untracked);
    assert_eq!(
        plan(&managed, &st, &r).expect("plan").operation,
        Operation::Delete
    );
}

#[test]
fn refusals_say_why() {
    let e = engine(EnvironmentSpec::new("prod"));
    let (git, live) = (deploy_git(), deploy_live());
    let st = state(&e, &[&git], &[&live]);
    let mut d = deploy_drift();
    d.direction = Direction::Conflict;
    let err = plan(
        &e,
        &st,
        &req(&d, RemediationAction::Revert, Some(&git), Some(&live)),
    )
    .expect_err("conflict");
    assert!(matches!(err, Refusal::Conflict(_)));
    assert!(err.to_string().contains("conflict"), "{err}");
    d.direction = Direction::Forward;
    let mut r = req(&d, RemediationAction::Revert, Some(&git), Some(&live));
    r.cluster = Readiness::Down("the watch is down".into());
    let err = plan(&e, &st, &r).expect_err("down");
    assert!(err.to_string().contains("the watch is down"), "{err}");
    let mut resolved = deploy_drift();
    resolved.resolved_at = Some(at(5));
    assert!(matches!(
        plan(
            &e,
            &st,
            &req(
                &resolved,
                RemediationAction::Revert,
                Some(&git),
                Some(&live)
            )
        ),
        Err(Refusal::Resolved(_))
    ));
}

#[test]
fn secrets_are_reverted_only_from_plain_values_and_never_shown() {
    let e = engine(EnvironmentSpec::new("prod"));
    let st = state(&e, &[], &[]);
    let d = drift(DriftKind::Modified, "", "Secret")
        .field(
            "data.token",
            Some(json!("(secret value)")),
            Some(json!("(secret value)")),
        )
        .build();
    let plain = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "web"},
        "data": {"token": "c2VjcmV0LXZhbHVl"}});
    let p = plan(
        &e,
        &st,
        &req(&d, RemediationAction::Revert, Some(&plain), None),
    )
    .expect("plan");
    let shown = format!("{p:?} {}", serde_json::to_string(&p).expect("json"));
    assert!(!shown.contains("c2VjcmV0LXZhbHVl"), "{shown}");
    let sops = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "web"},
        "data": {"token": "ENC[AES256_GCM,data:xx]"}, "sops": {"version": "3"}});
    let err = plan(
        &e,
        &st,
        &req(&d, RemediationAction::Revert, Some(&sops), None),
    )
    .expect_err("sops");
    assert!(err.to_string().contains("SOPS"), "{err}");
    let empty = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "web"}});
    assert!(matches!(
        plan(
            &e,
            &st,
            &req(&d, RemediationAction::Revert, Some(&empty), None)
        ),
        Err(Refusal::SecretNotPlain { .. })
    ));
    assert!(matches!(
        plan(
            &e,
            &st,
            &req(&d, RemediationAction::Adopt, Some(&plain), None)
        ),
        Err(Refusal::SecretAdopt(_))
    ));
}

#[test]
fn adopt_writes_the_live_values_into_plain_files_only() {
    let e = engine(EnvironmentSpec::new("prod"));
    let (git, live) = (deploy_git(), deploy_live());
    let st = state(&e, &[&git], &[&live]);
    let d = deploy_drift();
    let p = plan(
        &e,
        &st,
        &req(&d, RemediationAction::Adopt, Some(&git), Some(&live)),
    )
    .expect("plan");
    assert_eq!(p.operation, Operation::Adopt);
    assert_eq!(
        p.file,
        Some(AdoptFile {
            file: "apps/web.yaml".into(),
            document: 1
        })
    );
    assert_eq!(
        p.writes[2],
        (
            "spec.template.spec.containers[app].image".into(),
            Some(json!("nginx:1.26"))
        )
    );
    let mut rendered = deploy_drift();
    if let Some(prov) = rendered.provenance.as_mut() {
        prov.rendered = Some(Box::new(Rendering {
            unstable: Vec::new(),
            renderer: "helm".into(),
            source: "charts/web".into(),
            ..Rendering::default()
        }));
    }
    let err = plan(
        &e,
        &st,
        &req(&rendered, RemediationAction::Adopt, Some(&git), Some(&live)),
    )
    .expect_err("rendered");
    assert!(err.to_string().contains("helm from charts/web"), "{err}");
    let missing = drift(DriftKind::Missing, "apps", "Deployment").build();
    assert!(matches!(
        plan(
            &e,
            &st,
            &req(&missing, RemediationAction::Adopt, Some(&git), None)
        ),
        Err(Refusal::Unsupported(_))
    ));
}

#[test]
fn paths_are_found_set_and_removed() {
    // how paths read: `crate::path`'s tests (`parses_paths`)
    let mut v = json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}]}});
    assert!(set_path(
        &mut v,
        &"spec.ports[80/TCP].targetPort".into(),
        Some(&json!(9090))
    ));
    assert_eq!(v.pointer("/spec/ports/0/targetPort"), Some(&json!(9090)));
    assert!(set_path(
        &mut v,
        &r#"metadata.labels["a/b"]"#.into(),
        Some(&json!("x"))
    ));
    assert_eq!(v.pointer("/metadata/labels/a~1b"), Some(&json!("x")));
    assert!(remove_path(&mut v, &r#"metadata.labels["a/b"]"#.into()));
    assert!(!remove_path(&mut v, &"spec.nothing".into()));
}

fn policy(mode: PolicyMode) -> Policy {
    Policy {
        mode,
        rate_limit: RateLimit {
            max: 3,
            per_seconds: 60,
        },
        ..Policy::default()
    }
}

#[test]
fn policy_acts_once_per_episode_within_its_limits() {
    let d = deploy_drift();
    let mut ledger = PolicyLedger::default();
    assert!(matches!(
        decide(&Policy::default(), &d, &ledger, false, at(0)),
        Decision::Skip(_)
    ));
    let p = policy(PolicyMode::Revert);
    assert_eq!(
        decide(&p, &d, &ledger, false, at(0)),
        Decision::Act(RemediationAction::Revert)
    );
    assert!(
        matches!(decide(&p, &d, &ledger, true, at(0)), Decision::Skip(s) if s.contains("kill"))
    );
    ledger.record(&d.episode, at(0));
    assert!(
        matches!(decide(&p, &d, &ledger, false, at(1)), Decision::Skip(s) if s.contains("already"))
    );
    let mut conflict = deploy_drift();
    conflict.episode = "ep2".into();
    conflict.direction = Direction::Conflict;
    assert!(
        matches!(decide(&p, &conflict, &ledger, false, at(1)), Decision::Skip(s) if s.contains("conflict"))
    );
    assert_eq!(
        decide(
            &policy(PolicyMode::Notify),
            &conflict,
            &ledger,
            false,
            at(1)
        ),
        Decision::Skip("a conflict is never remediated by policy".into())
    );
    // a burst of 20 drifts: 3 a minute
    let mut acted = 0;
    let mut l = PolicyLedger::default();
    for i in 0..20 {
        let mut x = deploy_drift();
        x.episode = format!("burst{i}");
        if let Decision::Act(_) = decide(&p, &x, &l, false, at(i)) {
            l.record(&x.episode, at(i));
            acted += 1;
        }
    }
    assert_eq!(acted, 3);
    let mut late = deploy_drift();
    late.episode = "late".into();
    assert!(matches!(
        decide(&p, &late, &l, false, at(61)),
        Decision::Act(_)
    ));
}

#[test]
fn policy_selectors_severity_direction_and_window() {
    let d = deploy_drift();
    let l = PolicyLedger::default();
    let mut p = policy(PolicyMode::Adopt);
    p.selectors = vec![ObjectSelector {
        kind: Some("ConfigMap".into()),
        ..ObjectSelector::default()
    }];
    assert!(matches!(
        decide(&p, &d, &l, false, at(0)),
        Decision::Skip(_)
    ));
    p.selectors[0].kind = Some("Deploy*".into());
    assert_eq!(
        decide(&p, &d, &l, false, at(0)),
        Decision::Act(RemediationAction::Adopt)
    );
    p.min_severity = Some(Severity::High);
    assert!(matches!(
        decide(&p, &d, &l, false, at(0)),
        Decision::Skip(_)
    ));
    p.min_severity = None;
    let mut rev = deploy_drift();
    rev.direction = Direction::Reverse;
    assert!(matches!(
        decide(&p, &rev, &l, false, at(0)),
        Decision::Skip(_)
    ));
    p.directions = vec![Direction::Reverse];
    assert!(matches!(
        decide(&p, &rev, &l, false, at(0)),
        Decision::Act(_)
    ));
    // 1_700_000_000 is 22:13 UTC on a Tuesday
    p.window = Some(TimeWindow {
        start_hour: 9,
        end_hour: 17,
        days: Vec::new(),
    });
    assert!(
        matches!(decide(&p, &rev, &l, false, at(0)), Decision::Skip(s) if s.contains("window"))
    );
    p.window = Some(TimeWindow {
        start_hour: 22,
        end_hour: 6,
        days: vec!["tue".into()],
    });
    assert!(matches!(
        decide(&p, &rev, &l, false, at(0)),
        Decision::Act(_)
    ));
    assert_eq!(
        decide(&policy(PolicyMode::Notify), &d, &l, false, at(0)),
        Decision::Notify
    );
}

#[test]
fn previews_redact_secret_values() {
    let before = json!({"kind": "Secret", "metadata": {"annotations": {
        "kubectl.kubernetes.io/last-applied-configuration": "{\"data\":{\"t\":\"b2xk\"}}"}},
        "data": {"t": "b2xk"}});
    let after = json!({"kind": "Secret", "metadata": {"annotations": {
        "kubectl.kubernetes.io/last-applied-configuration": "{\"data\":{\"t\":\"bmV3\"}}"}},
        "data": {"t": "bmV3"}, "status": {"x": 1}});
    let changes = diff_objects(Some(&before), Some(&after), true);
    let shown = serde_json::to_string(&changes).expect("json");
    assert_eq!(changes.len(), 2, "{shown}");
    assert!(
        !shown.contains("b2xk") && !shown.contains("bmV3"),
        "{shown}"
    );
    let plain = diff_objects(Some(&before), Some(&after), false);
    assert!(serde_json::to_string(&plain)
        .expect("json")
        .contains("bmV3"));
}

#[test]
fn a_secret_deleted_created_or_given_data_shows_no_value() {
    let secret = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "db", "namespace": "shop",
            "labels": {"app.kubernetes.io/managed-by": "driftguard"},
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": "{\"data\":{\"t\":\"b2xk\"}}"}},
        "type": "Opaque", "data": {"t": "b2xk"}, "stringData": {"pin": 73191184}});
    let bare = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "db", "namespace": "shop"}, "type": "Opaque"});
    for (what, changes) in [
        ("pruned", diff_objects(Some(&secret), None, true)),
        ("created", diff_objects(None, Some(&secret), true)),
        ("given data", diff_objects(Some(&bare), Some(&secret), true)),
    ] {
        let shown = serde_json::to_string(&changes).expect("json");
        assert!(!changes.is_empty(), "{what}");
        assert!(
            !shown.contains("b2xk") && !shown.contains("73191184"),
            "{what}: {shown}"
        );
        // what is not a value stays readable
        assert!(
            shown.contains("Opaque") || what == "given data",
            "{what}: {shown}"
        );
    }
    let pruned = diff_objects(Some(&secret), None, true);
    assert_eq!(pruned[0].path, "");
    let from = pruned[0].from.as_ref().expect("the object before");
    assert_eq!(from["metadata"]["name"], json!("db"));
    assert_eq!(from["data"]["t"], json!(crate::compare::REDACTED));
}

#[test]
fn a_resolution_after_a_remediation_names_driftguard() {
    let record = |operation: Operation, ok: bool| RemediationRecord {
        plan_id: "p".into(),
        action: RemediationAction::Revert,
        operation,
        requested_by: "policy".into(),
        planned_by: None,
        changes: Vec::new(),
        ok,
        result: String::new(),
    };
    let d = deploy_drift();
    let resolved = |direction: Direction| {
        let mut r = remediation_event(&d, record(Operation::Apply, true), at(1));
        r.kind = EventKind::Resolved;
        r.remediation = None;
        r.drift.direction = direction;
        r.drift.resolution = Some(Resolution::Removed);
        r
    };
    let mut e = resolved(Direction::Forward);
    assert!(credit(&mut e, &d.episode, &record(Operation::Apply, true)));
    assert_eq!(e.drift.resolution, Some(Resolution::Reverted));
    assert_eq!(e.drift.resolved_by.as_deref(), Some(ACTOR));
    assert_eq!(e.drift.who(), "driftguard");
    let mut e = resolved(Direction::Reverse);
    assert!(credit(&mut e, &d.episode, &record(Operation::Apply, true)));
    assert_eq!(e.drift.resolution, Some(Resolution::Applied));
    let mut e = resolved(Direction::Forward);
    assert!(credit(&mut e, &d.episode, &record(Operation::Adopt, true)));
    assert_eq!(e.drift.resolution, Some(Resolution::Adopted));
    let mut e = resolved(Direction::Forward);
    assert!(credit(&mut e, &d.episode, &record(Operation::Delete, true)));
    assert_eq!(e.drift.resolution, Some(Resolution::Reverted));
    // a failed remediation, another episode, or another kind of event: left as it is
    for (episode, ok, kind) in [
        (d.episode.as_str(), false, EventKind::Resolved),
        ("other", true, EventKind::Resolved),
        (d.episode.as_str(), true, EventKind::Changed),
    ] {
        let mut e = resolved(Direction::Forward);
        e.kind = kind;
        assert!(!credit(&mut e, episode, &record(Operation::Apply, ok)));
        assert_eq!(e.drift.resolution, Some(Resolution::Removed));
        assert_eq!(e.drift.resolved_by, None);
        assert_ne!(e.drift.who(), "driftguard");
    }
}

#[test]
fn a_rate_limit_period_longer_than_time_counts_everything_and_never_panics() {
    let d = deploy_drift();
    let mut p = policy(PolicyMode::Revert);
    p.rate_limit = RateLimit {
        max: 1,
        per_seconds: u64::MAX,
    };
    let mut l = PolicyLedger::default();
    assert!(matches!(decide(&p, &d, &l, false, at(0)), Decision::Act(_)));
    l.record("another", at(-1_000_000_000));
    assert!(matches!(
        decide(&p, &d, &l, false, at(0)),
        Decision::Skip(_)
    ));
}
