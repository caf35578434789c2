//! Risk findings, table tests: on real API-server data (the corpus in
//! `fixtures/apiserver-1.20-corpus`: manifests and what a kube-apiserver 1.20 returned for them)
//! and on the objects of the acceptance scenario (`examples/acceptance/gitops/envs/prod`, with
//! the scenario's hand changes made to them). Each case is a change and the findings the engine
//! gives, one line each: `Kind/name rule category risk [path]`. Nothing in sync has a finding.

use std::fs;
use std::path::{Path, PathBuf};

use driftguard_core::engine::EnvState;
use driftguard_core::findings::{FindingOverride, FindingRules};
use driftguard_core::manifest::parse_file;
use driftguard_core::prelude::*;
use driftguard_core::selector::ObjectSelector;
use serde_json::{json, Value};

const ENV: &str = "e";

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/apiserver-1.20-corpus")
}

fn acceptance() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/acceptance/gitops/envs/prod")
}

/// Every manifest file under `dir` (recursively), in name order.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).expect("fixture folder") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "yaml") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn desired_in(dir: &Path) -> DesiredSet {
    let mut set = DesiredSet::default();
    for f in files(dir) {
        let text = fs::read_to_string(&f).expect("fixture file");
        let name = f.file_name().expect("name").to_string_lossy().into_owned();
        let (objects, errors) = parse_file(&name, &text, None).into_manifests();
        assert!(errors.is_empty(), "{errors:?}");
        set.objects.extend(objects);
    }
    set
}

fn corpus_live() -> Vec<Value> {
    let mut out = Vec::new();
    for f in ["live-namespaced.yaml", "live-cluster.yaml"] {
        let text = fs::read_to_string(corpus().join(f)).expect("fixture file");
        let (objects, errors) = parse_file(f, &text, None).into_live();
        assert!(errors.is_empty(), "{errors:?}");
        out.extend(objects.into_iter().map(|o| o.object.into_value()));
    }
    out
}

/// The acceptance scenario as applied: every manifest, live, as Git has it.
fn acceptance_live(desired: &DesiredSet) -> Vec<Value> {
    desired
        .objects
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mut v = (*m.object.0).clone();
            v["metadata"]["uid"] = json!(format!("uid-{i}"));
            v
        })
        .collect()
}

fn engine(findings: FindingRules) -> Engine {
    let mut spec = EnvironmentSpec::new(ENV);
    spec.findings = findings;
    Engine::new(spec, Normalizer::new(SecretKey::new(b"k".to_vec())))
}

/// Every finding of every object, one line each.
fn findings(engine: &Engine, st: &EnvState) -> Vec<String> {
    let mut ids: Vec<&ResourceId> = st.desired.keys().chain(st.live.keys()).collect();
    ids.sort();
    ids.dedup();
    let mut out = Vec::new();
    for id in ids {
        let obs = engine.observe(st, id);
        if !obs.presence.drifted() {
            assert!(
                obs.findings.is_empty(),
                "{id} is in sync, yet {:?}",
                obs.findings
            );
            continue;
        }
        for f in obs.findings {
            let mut line = format!(
                "{}/{} {} {} {}",
                id.kind, id.name, f.rule, f.category, f.risk
            );
            if let Some(p) = f.path {
                line.push(' ');
                line.push_str(p.as_str());
            }
            out.push(line);
        }
    }
    out
}

fn run(desired: &DesiredSet, live: Vec<Value>, rules: FindingRules) -> Vec<String> {
    let engine = engine(rules);
    let st = engine.index(
        desired,
        &LiveSnapshot {
            served: Vec::new(),
            objects: live.into_iter().map(RawLive::new).collect(),
            ..LiveSnapshot::default()
        },
    );
    assert!(st.errors.is_empty(), "{:?}", st.errors);
    findings(&engine, &st)
}

fn find<'a>(live: &'a mut [Value], kind: &str, name: &str) -> &'a mut Value {
    live.iter_mut()
        .find(|v| v["kind"] == kind && v["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{kind}/{name} in the fixtures"))
}

type Change = fn(&mut Vec<Value>);

// ------------------------------------------------------------------ the corpus

fn corpus_case(change: Change) -> Vec<String> {
    let mut live = corpus_live();
    change(&mut live);
    run(
        &desired_in(&corpus().join("desired")),
        live,
        FindingRules::default(),
    )
}

#[test]
fn corpus_table() {
    let cases: &[(&str, Change, &[&str])] = &[
        ("unchanged", |_| {}, &[]),
        (
            "scale to zero",
            |l| find(l, "StatefulSet", "cache")["spec"]["replicas"] = json!(0),
            &["StatefulSet/cache replicas-zero availability high spec.replicas"],
        ),
        (
            "image hotfix",
            |l| {
                find(l, "Deployment", "frontend")["spec"]["template"]["spec"]["containers"][0]
                    ["image"] = json!("nginx:1.25.4")
            },
            &["Deployment/frontend image-not-in-git supply-chain medium spec.template.spec.containers[nginx].image"],
        ),
        (
            "image to latest",
            |l| {
                find(l, "Deployment", "frontend")["spec"]["template"]["spec"]["containers"][0]
                    ["image"] = json!("nginx:latest")
            },
            &["Deployment/frontend image-mutable-tag supply-chain high spec.template.spec.containers[nginx].image"],
        ),
        (
            "privileged sidecar",
            |l| {
                find(l, "Deployment", "frontend")["spec"]["template"]["spec"]["containers"][1]
                    ["securityContext"] = json!({"privileged": true})
            },
            &["Deployment/frontend privileged security critical spec.template.spec.containers[sidecar].securityContext.privileged"],
        ),
        (
            "host network",
            |l| find(l, "Deployment", "frontend")["spec"]["template"]["spec"]["hostNetwork"] = json!(true),
            &["Deployment/frontend host-namespace security critical spec.template.spec.hostNetwork"],
        ),
        (
            "RBAC verbs widened",
            |l| {
                find(l, "Role", "config-reader")["rules"][0]["verbs"] =
                    json!(["get", "list", "watch", "update"])
            },
            &["Role/config-reader rbac-widened security high rules"],
        ),
        (
            "RBAC wildcard",
            |l| find(l, "Role", "config-reader")["rules"][0]["verbs"] = json!(["*"]),
            &["Role/config-reader rbac-widened security critical rules"],
        ),
        (
            "label added",
            |l| find(l, "Service", "frontend")["metadata"]["labels"] = json!({"hotfix": "true"}),
            &["Service/frontend metadata-only cosmetic low"],
        ),
        (
            "ConfigMap patched: no finding",
            |l| find(l, "ConfigMap", "frontend-config")["data"]["retries"] = json!("5"),
            &[],
        ),
        (
            "Secret rotated: no finding, and nothing read",
            |l| find(l, "Secret", "frontend-tls")["data"]["token"] = json!("cm90YXRlZA=="),
            &[],
        ),
        (
            "memory limit removed",
            |l| {
                let c = &mut find(l, "Deployment", "frontend")["spec"]["template"]["spec"]
                    ["containers"][0];
                c["resources"]["limits"]
                    .as_object_mut()
                    .expect("limits")
                    .remove("memory");
            },
            &["Deployment/frontend limits-removed availability medium spec.template.spec.containers[nginx].resources.limits.memory"],
        ),
        (
            "Service deleted",
            |l| l.retain(|v| !(v["kind"] == "Service" && v["metadata"]["name"] == "frontend")),
            &["Service/frontend service-missing availability medium"],
        ),
        (
            "Deployment deleted",
            |l| l.retain(|v| !(v["kind"] == "Deployment" && v["metadata"]["name"] == "frontend")),
            &["Deployment/frontend workload-missing availability high"],
        ),
        (
            "a RoleBinding to cluster-admin created by hand",
            |l| {
                l.push(json!({"apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "RoleBinding",
                    "metadata": {"name": "debug-admin", "namespace": "corpus", "uid": "u-1"},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "cluster-admin"},
                    "subjects": [{"kind": "ServiceAccount", "name": "default",
                        "namespace": "corpus"}]}))
            },
            &["RoleBinding/debug-admin cluster-admin-binding security critical"],
        ),
        (
            "NetworkPolicy deleted",
            |l| l.retain(|v| v["kind"] != "NetworkPolicy"),
            &["NetworkPolicy/frontend network-policy-removed security high"],
        ),
        (
            "a Service exposed by hand",
            |l| {
                l.push(json!({"apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": "debug-lb", "namespace": "corpus", "uid": "u-2"},
                    "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}}))
            },
            &["Service/debug-lb service-exposed security high"],
        ),
        (
            "a ConfigMap created by hand: no finding",
            |l| {
                l.push(json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "hand-made", "namespace": "corpus", "uid": "u-3"},
                    "data": {"a": "b"}}))
            },
            &[],
        ),
    ];
    for (name, change, want) in cases {
        assert_eq!(corpus_case(*change), *want, "case: {name}");
    }
}

// ------------------------------------------------------------------ the acceptance scenario

fn acceptance_case(change: Change, rules: FindingRules) -> Vec<String> {
    let desired = desired_in(&acceptance());
    let mut live = acceptance_live(&desired);
    change(&mut live);
    run(&desired, live, rules)
}

/// A container of a Deployment in the acceptance scenario.
fn container<'a>(l: &'a mut [Value], name: &str) -> &'a mut Value {
    &mut find(l, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]
}

#[test]
fn acceptance_scenario_table() {
    let cases: &[(&str, Change, &[&str])] = &[
        ("applied as in Git", |_| {}, &[]),
        (
            "RBAC rule widened by hand",
            |l| {
                find(l, "Role", "config-reader")["rules"]
                    .as_array_mut()
                    .expect("rules")
                    .push(json!({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}))
            },
            &["Role/config-reader rbac-widened security high rules"],
        ),
        (
            "image hotfix (`kubectl set image`)",
            |l| {
                container(l, "checkout")["image"] =
                    json!("registry.example.com/acme/checkout:1.4.3-hotfix")
            },
            &["Deployment/checkout image-not-in-git supply-chain medium spec.template.spec.containers[checkout].image"],
        ),
        (
            "label added (`kubectl label`)",
            |l| find(l, "Deployment", "catalog")["metadata"]["labels"]["team"] = json!("search-squad"),
            &["Deployment/catalog metadata-only cosmetic low"],
        ),
        (
            "scaled to zero",
            |l| find(l, "Deployment", "cart")["spec"]["replicas"] = json!(0),
            &["Deployment/cart replicas-zero availability high spec.replicas"],
        ),
        (
            "scaled up: no finding",
            |l| find(l, "Deployment", "api")["spec"]["replicas"] = json!(5),
            &[],
        ),
        (
            "env var added: no finding",
            |l| {
                container(l, "payments")["env"]
                    .as_array_mut()
                    .expect("env")
                    .push(json!({"name": "FEATURE_3DS", "value": "enabled"}))
            },
            &[],
        ),
        (
            "Service deleted",
            |l| l.retain(|v| !(v["kind"] == "Service" && v["metadata"]["name"] == "search")),
            &["Service/search service-missing availability medium"],
        ),
        (
            "readiness probe removed",
            |l| {
                container(l, "checkout")
                    .as_object_mut()
                    .expect("container")
                    .remove("readinessProbe");
            },
            &["Deployment/checkout probe-removed availability medium spec.template.spec.containers[checkout].readinessProbe"],
        ),
        (
            "image pulled from another registry",
            |l| container(l, "web")["image"] = json!("docker.io/someone/web:1.4.2"),
            &["Deployment/web image-registry-changed supply-chain high spec.template.spec.containers[web].image"],
        ),
    ];
    for (name, change, want) in cases {
        assert_eq!(
            acceptance_case(*change, FindingRules::default()),
            *want,
            "case: {name}"
        );
    }
}

#[test]
fn configured_overrides_apply() {
    let widen: Change = |l| {
        find(l, "Role", "config-reader")["rules"]
            .as_array_mut()
            .expect("rules")
            .push(json!({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}))
    };
    let critical = FindingRules {
        overrides: vec![FindingOverride {
            rule: Some("rbac-*".into()),
            risk: Some(Severity::Critical),
            ..FindingOverride::default()
        }],
        ..FindingRules::default()
    };
    assert_eq!(
        acceptance_case(widen, critical),
        ["Role/config-reader rbac-widened security critical rules"]
    );
    let off = FindingRules {
        overrides: vec![FindingOverride {
            selector: ObjectSelector {
                kind: Some("Role".into()),
                ..ObjectSelector::default()
            },
            off: true,
            ..FindingOverride::default()
        }],
        ..FindingRules::default()
    };
    assert!(acceptance_case(widen, off).is_empty());
}
