//! Data-driven cases: Git at base and head, the cluster and the open drifts in; one line per
//! object and per field out.

use serde_json::{json, Value};

use crate::audit::{AuditUser, AuditWrite, UserClass};
use crate::engine::{Engine, EnvironmentSpec};
use crate::managed::FieldOwner;
use crate::model::{Provenance, RawLive, RawManifest, RawObject};
use crate::normalize::{Normalizer, SecretKey};
use crate::ports::{DesiredSet, LiveSnapshot};
use crate::state::{Attribution, Direction, Drift, DriftKind};
use crate::testkit::{configmap, deployment, drift, field, object, record, t0};

fn desired(objects: &[Value]) -> DesiredSet {
    DesiredSet {
        objects: objects
            .iter()
            .map(|o| RawManifest {
                object: RawObject::new(o.clone()),
                provenance: Provenance::default(),
            })
            .collect(),
        ..DesiredSet::default()
    }
}

/// The preview of `base` → `head` with the cluster running `live` and `drifts` open, one line
/// per object and one indented line per field.
fn check(base: &[Value], head: &[Value], live: &[Value], drifts: Vec<Drift>, expect: &str) {
    let engine = Engine::new(
        EnvironmentSpec::new("prod"),
        Normalizer::new(SecretKey::new(b"k".to_vec())),
    );
    let snapshot = LiveSnapshot {
        objects: live.iter().cloned().map(RawLive::new).collect(),
        ..LiveSnapshot::default()
    };
    let b = engine.index(&desired(base), &snapshot);
    let h = engine.index(&desired(head), &snapshot);
    let records: Vec<_> = drifts
        .into_iter()
        .map(|d| record(&d.id.clone(), Some(d), t0()))
        .collect();
    let p = engine.preview(&b, &h, &records);
    let mut out = String::new();
    for o in &p.objects {
        out.push_str(&format!("{} {} {}", o.id, o.change, o.class));
        if let Some(hc) = &o.hand_change {
            out.push_str(&format!(" (hand change {}{})", hc.episode, by(&hc.who)));
        }
        for f in &o.findings {
            out.push_str(&format!(" [{} {}]", f.rule, f.risk));
        }
        out.push('\n');
        for f in &o.fields {
            let show = |v: &Option<Value>| match v {
                None => "-".to_owned(),
                Some(Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
            };
            out.push_str(&format!(
                "  {} {}: {} -> {} (live {})",
                f.path,
                f.class,
                show(&f.base),
                show(&f.head),
                show(&f.live)
            ));
            if let Some(hc) = &f.hand_change {
                out.push_str(&format!(" by {} at {}", hc.who, hc.at.format("%H:%M")));
            }
            out.push('\n');
        }
    }
    assert_eq!(out.trim_end(), expect.trim(), "\n{out}");
}

fn by(who: &str) -> String {
    if who.is_empty() {
        String::new()
    } else {
        format!(" by {who}")
    }
}

fn web(image: &str) -> crate::testkit::ManifestBuilder {
    deployment("web").replicas(2).image(image)
}

const IMAGE: &str = "spec.template.spec.containers[app].image";

/// A forward drift of the image, made by alice with `kubectl set image` at 12:07.
fn hotfix(git: &str, live: &str) -> Drift {
    let at = t0() + chrono::Duration::minutes(7);
    drift()
        .field(IMAGE, Some(json!(git)), Some(json!(live)))
        .attribution(Attribution {
            owners: vec![FieldOwner {
                path: IMAGE.into(),
                manager: "kubectl-set".into(),
                operation: "Update".into(),
                subresource: String::new(),
                time: Some(at),
                audit_id: Some("a1".into()),
            }],
            writers: vec![AuditWrite {
                audit_id: "a1".into(),
                at,
                verb: "patch".into(),
                subresource: String::new(),
                user: AuditUser {
                    name: Some("alice".into()),
                    class: UserClass::Person,
                    groups: Vec::new(),
                    acting_as: None,
                },
                manager: "kubectl-set".into(),
                user_agent: String::new(),
                source_ip: None,
            }],
            ..Attribution::default()
        })
        .build()
}

#[test]
fn a_change_beside_a_hotfix_overwrites_it_and_names_who() {
    check(
        &[web("shop/web:1").build()],
        &[web("shop/web:1").replicas(3).build()],
        &[web("shop/web:1-hotfix").build()],
        vec![hotfix("shop/web:1", "shop/web:1-hotfix")],
        "
prod:Deployment.apps/shop/web modified overwrites
  spec.replicas new: 2 -> 3 (live 2)
  spec.template.spec.containers[app].image overwrites: shop/web:1 -> shop/web:1 (live shop/web:1-hotfix) by alice (kubectl-set) at 12:07",
    );
}

#[test]
fn head_carrying_the_hotfix_adopts_it() {
    check(
        &[web("shop/web:1").build()],
        &[web("shop/web:1-hotfix").build()],
        &[web("shop/web:1-hotfix").build()],
        vec![hotfix("shop/web:1", "shop/web:1-hotfix")],
        "
prod:Deployment.apps/shop/web modified adopts
  spec.template.spec.containers[app].image adopts: shop/web:1 -> shop/web:1-hotfix (live shop/web:1-hotfix) by alice (kubectl-set) at 12:07",
    );
}

#[test]
fn both_moving_the_field_apart_conflicts() {
    check(
        &[web("shop/web:1").build()],
        &[web("shop/web:2").build()],
        &[web("shop/web:1-hotfix").build()],
        vec![hotfix("shop/web:1", "shop/web:1-hotfix")],
        "
prod:Deployment.apps/shop/web modified conflicts
  spec.template.spec.containers[app].image conflicts: shop/web:1 -> shop/web:2 (live shop/web:1-hotfix) by alice (kubectl-set) at 12:07",
    );
}

#[test]
fn an_unrelated_change_is_new_only_and_untouched_objects_are_left_out() {
    // the hotfix stays: the change does not touch the Deployment
    check(
        &[
            web("shop/web:1").build(),
            configmap("settings").data("level", "info").build(),
        ],
        &[
            web("shop/web:1").build(),
            configmap("settings").data("level", "debug").build(),
        ],
        &[
            web("shop/web:1-hotfix").build(),
            configmap("settings").data("level", "info").build(),
        ],
        vec![hotfix("shop/web:1", "shop/web:1-hotfix")],
        "
prod:ConfigMap/shop/settings modified new
  data.level new: info -> debug (live info)",
    );
}

#[test]
fn git_unapplied_change_is_not_a_move_of_the_cluster() {
    // base was never applied (reverse drift): head changing it again is an ordinary change
    let pending = drift()
        .id(crate::id::ResourceId::new(
            "prod",
            "",
            "ConfigMap",
            Some("shop"),
            "settings",
        ))
        .direction(Direction::Reverse)
        .field("data.level", Some(json!("warn")), Some(json!("info")))
        .build();
    check(
        &[configmap("settings").data("level", "warn").build()],
        &[configmap("settings").data("level", "debug").build()],
        &[configmap("settings").data("level", "info").build()],
        vec![pending],
        "
prod:ConfigMap/shop/settings modified new
  data.level new: warn -> debug (live info)",
    );
}

#[test]
fn created_pruned_and_adopted_objects() {
    let orphan = drift()
        .id(crate::id::ResourceId::new(
            "prod",
            "",
            "ConfigMap",
            Some("shop"),
            "debug",
        ))
        .kind(DriftKind::Orphan)
        .direction(Direction::Unknown)
        .build();
    let hand = drift()
        .id(crate::id::ResourceId::new(
            "prod",
            "",
            "ConfigMap",
            Some("shop"),
            "old",
        ))
        .field("data.a", Some(json!("1")), Some(json!("2")))
        .build();
    check(
        &[configmap("old").data("a", "1").build()],
        &[
            configmap("new").data("a", "1").build(),
            configmap("debug").data("x", "y").build(),
            deployment("root")
                .image("shop/root:1")
                .set(
                    "/spec/template/spec/containers/0/securityContext",
                    json!({"privileged": true}),
                )
                .build(),
        ],
        &[
            configmap("old").data("a", "2").build(),
            configmap("debug").data("x", "y").build(),
        ],
        vec![orphan, hand],
        "
prod:ConfigMap/shop/debug adopted adopts (hand change ep)
prod:ConfigMap/shop/new created new
prod:ConfigMap/shop/old pruned overwrites (hand change ep)
prod:Deployment.apps/shop/root created new [privileged critical]",
    );
}

#[test]
fn risk_findings_judge_what_head_writes_into_the_cluster() {
    let root = |privileged: bool| {
        deployment("api")
            .image("shop/api:1")
            .set(
                "/spec/template/spec/containers/0/securityContext",
                json!({ "privileged": privileged }),
            )
            .build()
    };
    check(
        &[root(false)],
        &[root(true)],
        &[root(false)],
        vec![],
        "
prod:Deployment.apps/shop/api modified new [privileged critical]
  spec.template.spec.containers[app].securityContext.privileged new: false -> true (live false)",
    );
}

#[test]
fn secret_values_are_never_shown() {
    let secret = |v: &str| {
        object("v1", "Secret", "db")
            .set("/data", json!({ "password": v }))
            .build()
    };
    check(
        &[secret("b2xk")],
        &[secret("bmV3")],
        &[secret("b2xk")],
        vec![],
        "
prod:Secret/shop/db modified new
  data.password new: (secret value) -> (secret value) (live (secret value))",
    );
}

#[test]
fn counts_add_up() {
    let engine = Engine::new(
        EnvironmentSpec::new("prod"),
        Normalizer::new(SecretKey::new(b"k".to_vec())),
    );
    let live = LiveSnapshot {
        objects: vec![RawLive::new(web("shop/web:1-hotfix").build())].into(),
        ..LiveSnapshot::default()
    };
    let b = engine.index(&desired(&[web("shop/web:1").build()]), &live);
    let h = engine.index(
        &desired(&[
            web("shop/web:1").replicas(3).build(),
            configmap("new").build(),
        ]),
        &live,
    );
    let d = hotfix("shop/web:1", "shop/web:1-hotfix");
    let p = engine.preview(&b, &h, &[record(&d.id.clone(), Some(d), t0())]);
    let c = p.counts();
    assert_eq!((c.overwrites, c.new, c.created, c.conflicts), (1, 1, 1, 0));
    assert!(p.touched());
    let none = engine.preview(&b, &b, &[]);
    assert!(!none.touched());
    let _ = field;
}
