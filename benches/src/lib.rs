//! Shared helpers for the benchmarks: realistic synthetic objects, and the test cluster.

use std::path::{Path, PathBuf};

use driftguard_core::prelude::*;
use serde_json::{json, Value};

/// An error of a benchmark binary.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The test cluster the live benchmarks run on.
#[derive(Clone, Debug)]
pub struct TestCluster {
    /// Its kubeconfig.
    pub kubeconfig: PathBuf,
    /// The kubectl of its version.
    pub kubectl: PathBuf,
}

impl TestCluster {
    /// `KUBECONFIG` and `KUBECTL`, or those of the test script's `services.env` (in
    /// `DRIFTGUARD_RUN`, by default `/tmp/driftguard-test`).
    pub fn from_env() -> Result<TestCluster, BoxError> {
        if let (Ok(c), Ok(k)) = (std::env::var("KUBECONFIG"), std::env::var("KUBECTL")) {
            return Ok(TestCluster {
                kubeconfig: c.into(),
                kubectl: k.into(),
            });
        }
        let run = std::env::var("DRIFTGUARD_RUN").unwrap_or_else(|_| "/tmp/driftguard-test".into());
        let env = Path::new(&run).join("services.env");
        let text = std::fs::read_to_string(&env).map_err(|e| {
            format!(
                "{}: {e} (start the test cluster: scripts/test-services.sh up)",
                env.display()
            )
        })?;
        let get = |key: &str| {
            text.lines()
                .map(|l| l.trim().trim_start_matches("export ").trim())
                .find_map(|l| l.strip_prefix(key).map(|v| v.trim_matches('"').to_owned()))
        };
        Ok(TestCluster {
            kubeconfig: get("KUBECONFIG=")
                .ok_or("no KUBECONFIG in services.env")?
                .into(),
            kubectl: get("KUBECTL=").ok_or("no KUBECTL in services.env")?.into(),
        })
    }

    /// Objects of the kinds of [`live_manifests`] in namespace `ns` (with the two the cluster
    /// makes itself).
    pub fn live_set_count(&self, ns: &str) -> usize {
        self.kubectl(&[
            "get",
            "configmaps,secrets,roles,rolebindings,deployments",
            "-n",
            ns,
            "-o",
            "name",
        ])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().count())
        .unwrap_or(0)
    }

    /// A kubectl command on the cluster.
    pub fn kubectl(&self, args: &[&str]) -> std::process::Command {
        let mut c = std::process::Command::new(&self.kubectl);
        c.env("KUBECONFIG", &self.kubeconfig).args(args);
        c
    }
}

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

/// The manifests of one size of the live benchmarks (`live_bench`, `peers_bench`), in namespace
/// `ns`: one file per kind (and the Namespace), a mix of what Git holds: ConfigMaps, Secrets,
/// Roles, RoleBindings and Deployments (`replicas: 0`), as `(file name, YAML)`.
pub fn live_manifests(ns: &str, n: usize) -> Vec<(String, String)> {
    let mut cms = String::new();
    let mut secrets = String::new();
    let mut roles = String::new();
    let mut bindings = String::new();
    let mut deployments = String::new();
    for i in 0..n {
        match i % 10 {
            0..=3 => cms.push_str(&format!(
                "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i}\n  namespace: {ns}\n  labels: {{app: bench, shard: \"{}\"}}\ndata:\n  LOG_LEVEL: info\n  FEATURE_FLAGS: \"a,b,c\"\n  config.yaml: |\n    server:\n      port: {}\n      workers: 4\n",
                i % 7,
                8000 + i % 100
            )),
            4 | 5 => secrets.push_str(&format!(
                "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: secret-{i}\n  namespace: {ns}\n  labels: {{app: bench}}\ntype: Opaque\nstringData:\n  username: user{i}\n  password: not-a-real-password-{i}\n"
            )),
            6 | 7 => roles.push_str(&format!(
                "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: role-{i}\n  namespace: {ns}\nrules:\n- apiGroups: [\"\"]\n  resources: [configmaps, secrets]\n  verbs: [get, list, watch]\n- apiGroups: [apps]\n  resources: [deployments]\n  verbs: [get]\n"
            )),
            8 => bindings.push_str(&format!(
                "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: binding-{i}\n  namespace: {ns}\nroleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: role-{}}}\nsubjects:\n- {{kind: ServiceAccount, name: default, namespace: {ns}}}\n",
                i - 2
            )),
            _ => deployments.push_str(&format!(
                "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-{i}\n  namespace: {ns}\n  labels: {{app: bench}}\nspec:\n  replicas: 0\n  selector:\n    matchLabels: {{app: app-{i}}}\n  template:\n    metadata:\n      labels: {{app: app-{i}}}\n    spec:\n      containers:\n      - name: app\n        image: nginx:1.25\n        ports: [{{containerPort: 80}}]\n        env: [{{name: MODE, value: bench}}]\n        resources: {{requests: {{cpu: 100m, memory: 64Mi}}}}\n"
            )),
        }
    }
    vec![
        (
            "00-namespace.yaml".into(),
            format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n"),
        ),
        ("10-configmaps.yaml".into(), cms),
        ("20-secrets.yaml".into(), secrets),
        ("30-roles.yaml".into(), roles),
        ("40-rolebindings.yaml".into(), bindings),
        ("50-deployments.yaml".into(), deployments),
    ]
}
