//! Shared helpers for the benchmarks: realistic synthetic objects.

use driftguard_core::prelude::*;
use serde_json::{json, Value};

/// `n` desired objects (Deployments, Services, ConfigMaps, Secrets in equal parts) and the live
/// objects an API server would return for them (defaults, status, managedFields, last-applied),
/// with one object in ten changed by hand.
pub fn corpus(n: usize) -> (Vec<Value>, Vec<Value>) {
    let mut desired = Vec::with_capacity(n);
    let mut live = Vec::with_capacity(n);
    for i in 0..n {
        let ns = format!("team-{}", i % 50);
        let d = match i % 4 {
            0 => deployment(i, &ns),
            1 => service(i, &ns),
            2 => configmap(i, &ns),
            _ => secret(i, &ns),
        };
        let mut l = served(&d, i);
        if i % 10 == 0 {
            match i % 4 {
                0 => l["spec"]["replicas"] = json!(7),
                1 => l["metadata"]["labels"]["hotfix"] = json!("true"),
                2 => l["data"]["retries"] = json!("9"),
                _ => l["data"]["password"] = json!("cm90YXRlZA=="),
            }
        }
        desired.push(d);
        live.push(l);
    }
    (desired, live)
}

/// [`corpus`] as the engine takes it.
pub fn engine_inputs(n: usize) -> (DesiredSet, LiveSnapshot) {
    let (desired, live) = corpus(n);
    let desired = DesiredSet {
        objects: desired
            .into_iter()
            .map(|v| RawManifest {
                object: RawObject::new(v),
                provenance: Provenance::default(),
            })
            .collect(),
        ..DesiredSet::default()
    };
    let live = LiveSnapshot {
        served: Vec::new(),
        objects: live.into_iter().map(RawLive::new).collect(),
        ..LiveSnapshot::default()
    };
    (desired, live)
}

fn deployment(i: usize, ns: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": format!("app-{i}"), "namespace": ns,
            "labels": {"app": format!("app-{i}"), "team": ns, "tier": "backend"},
            "annotations": {"owner": "platform"}},
        "spec": {"replicas": 3,
            "selector": {"matchLabels": {"app": format!("app-{i}")}},
            "template": {"metadata": {"labels": {"app": format!("app-{i}")}},
                "spec": {"containers": [
                    {"name": "app", "image": format!("registry.example/app-{i}:1.{}", i % 7),
                     "ports": [{"containerPort": 8080, "name": "http"}],
                     "env": [{"name": "MODE", "value": "production"},
                             {"name": "LOG_LEVEL", "value": "info"},
                             {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                     "resources": {"requests": {"cpu": "250m", "memory": "256Mi"},
                                   "limits": {"cpu": "1", "memory": "1Gi"}},
                     "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}},
                     "volumeMounts": [{"name": "cache", "mountPath": "/cache"}]},
                    {"name": "sidecar", "image": "busybox:1.36", "command": ["sh", "-c", "sleep infinity"]}],
                    "volumes": [{"name": "cache", "emptyDir": {}}]}}}})
}

fn service(i: usize, ns: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": format!("svc-{i}"), "namespace": ns, "labels": {"app": format!("app-{i}")}},
        "spec": {"selector": {"app": format!("app-{i}")},
            "ports": [{"name": "http", "port": 80, "targetPort": "http"},
                      {"name": "metrics", "port": 9090, "targetPort": 9090}]}})
}

fn configmap(i: usize, ns: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": format!("cfg-{i}"), "namespace": ns},
        "data": {"retries": "3", "timeout": "30s", "endpoint": format!("https://api-{i}.example"),
            "app.properties": "a=1\nb=2\nc=3\nfeature.x=true\nfeature.y=false\n".repeat(4)}})
}

fn secret(i: usize, ns: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": format!("sec-{i}"), "namespace": ns},
        "type": "Opaque",
        "data": {"password": "aHVudGVyMg==", "token": "bm90LWEtcmVhbC10b2tlbg=="}})
}

/// The object as a 1.20 API server returns it.
fn served(d: &Value, i: usize) -> Value {
    let mut l = d.clone();
    let m = &mut l["metadata"];
    m["uid"] = json!(format!("00000000-0000-0000-0000-{i:012}"));
    m["resourceVersion"] = json!(format!("{}", 1000 + i));
    m["creationTimestamp"] = json!("2026-11-25T17:36:45Z");
    m["generation"] = json!(1);
    let last_applied = d.to_string();
    if m.get("annotations").is_none() {
        m["annotations"] = json!({});
    }
    m["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = json!(last_applied);
    m["managedFields"] = json!([{"manager": "kubectl-client-side-apply", "operation": "Update",
        "apiVersion": d["apiVersion"], "time": "2026-11-25T17:36:45Z", "fieldsType": "FieldsV1",
        "fieldsV1": {"f:metadata": {"f:annotations": {".": {}, "f:kubectl.kubernetes.io/last-applied-configuration": {}}},
                     "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:image": {}}}}}}}}]);
    match d["kind"].as_str() {
        Some("Deployment") => {
            let s = &mut l["spec"];
            s["progressDeadlineSeconds"] = json!(600);
            s["revisionHistoryLimit"] = json!(10);
            s["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}});
            let t = &mut s["template"]["spec"];
            t["dnsPolicy"] = json!("ClusterFirst");
            t["restartPolicy"] = json!("Always");
            t["schedulerName"] = json!("default-scheduler");
            t["securityContext"] = json!({});
            t["terminationGracePeriodSeconds"] = json!(30);
            for c in t["containers"].as_array_mut().into_iter().flatten() {
                c["imagePullPolicy"] = json!("IfNotPresent");
                c["terminationMessagePath"] = json!("/dev/termination-log");
                c["terminationMessagePolicy"] = json!("File");
                if let Some(ports) = c["ports"].as_array_mut() {
                    for p in ports {
                        p["protocol"] = json!("TCP");
                    }
                }
            }
            t["containers"][0]["resources"]["requests"]["cpu"] = json!("250m");
            t["containers"][0]["env"][2]["valueFrom"]["fieldRef"]["apiVersion"] = json!("v1");
            l["status"] = json!({"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3,
                "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}]});
        }
        Some("Service") => {
            l["spec"]["clusterIP"] = json!(format!("10.0.{}.{}", (i / 250) % 250, i % 250));
            l["spec"]["type"] = json!("ClusterIP");
            l["spec"]["sessionAffinity"] = json!("None");
            for p in l["spec"]["ports"].as_array_mut().into_iter().flatten() {
                p["protocol"] = json!("TCP");
            }
            l["status"] = json!({"loadBalancer": {}});
        }
        _ => {}
    }
    l
}
