//! The engine on in-memory values: no file, no cluster, no clock. Run with
//! `cargo run -p driftguard-examples --example engine_in_memory`.

use chrono::{TimeZone, Utc};
use driftguard_core::prelude::*;
use driftguard_core::state::{transition, Tick};
use serde_json::json;

fn main() {
    let engine = Engine::new(
        EnvironmentSpec::new("prod"),
        Normalizer::new(SecretKey::new(b"a key for Secret values".to_vec())),
    );
    // what Git says
    let desired = DesiredSet {
        objects: vec![RawManifest {
            object: RawObject::new(json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "shop"},
                "spec": {"replicas": 3, "template": {"spec": {"containers": [
                    {"name": "web", "image": "shop/web:1.4.2"}]}}}})),
            provenance: Provenance {
                file: "envs/prod/web.yaml".into(),
                line: 1,
                ..Provenance::default()
            },
        }],
        ..DesiredSet::default()
    };
    // what the API server returned: defaults filled in, and someone scaled it
    let live = LiveSnapshot {
        served: Vec::new(),
        objects: vec![RawLive::new(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop", "uid": "7c1e",
                "resourceVersion": "4711", "generation": 2},
            "spec": {"replicas": 5, "revisionHistoryLimit": 10,
                "strategy": {"type": "RollingUpdate"},
                "template": {"spec": {"containers": [
                    {"name": "web", "image": "shop/web:1.4.2",
                     "imagePullPolicy": "IfNotPresent",
                     "terminationMessagePath": "/dev/termination-log"}]}}},
            "status": {"replicas": 5}}))]
        .into(),
        ..LiveSnapshot::default()
    };

    // index both sides, look at one object
    let state = engine.index(&desired, &live);
    let id = ResourceId::new("prod", "apps", "Deployment", Some("shop"), "web");
    let obs = engine.observe(&state, &id);
    let Presence::Both(cmp) = &obs.presence else {
        panic!("the object is on both sides");
    };
    println!(
        "{id}: drifted {:?} (severity {}); defaults and status are not drift",
        cmp.drifted_paths(),
        obs.severity
    );
    assert_eq!(cmp.drifted_paths(), vec!["spec.replicas"]);

    // the state machine: no previous record, first scan
    let tick = Tick {
        now: Utc
            .with_ymd_and_hms(2024, 5, 1, 12, 0, 0)
            .single()
            .expect("a valid time"),
        scan_id: "scan-1".into(),
        revision: None,
        first_scan: true,
    };
    let t = transition(None, &obs, &tick);
    for e in &t.events {
        println!(
            "event: {} {} {} at {}",
            e.kind, e.drift.kind, e.drift.direction, e.at
        );
    }
    assert_eq!(t.events.len(), 1);
}
