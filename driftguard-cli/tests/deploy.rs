//! `deploy/`: the Helm chart rendered with helm and accepted by the test cluster (server-side
//! dry run: no kubelet runs pods there), its configuration accepted by DriftGuard, the server
//! running with only the rights of the chart's ServiceAccount (RBAC applied for real), and the
//! Dockerfile's shape (no Docker daemon runs here: it cannot be built in the tests).

mod util;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use util::e2e::*;

const TOKEN: &str = "deploy-test-token";

fn chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/helm/driftguard")
}

/// A name part of its own for each test (the tests of this binary run at the same time).
fn uniq() -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    format!(
        "{}-{}-{}",
        std::process::id() % 100_000,
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis()
            % 1_000_000,
        NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    )
}

/// `helm` with `args`: `(success, stdout, stderr)`.
fn helm(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(driftguard_test_support::helm())
        .args(args)
        .output()
        .expect("helm runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The test cluster's Kubernetes version (`1.37.2`), for `helm template --kube-version`.
fn server_version(s: &Services) -> String {
    let (ok, out) = kubectl_in(s, &["get", "--raw", "/version"], None);
    assert!(ok, "kubectl get --raw /version: {out}");
    let json: Value = serde_json::from_str(&out[out.find('{').unwrap_or(0)..])
        .unwrap_or_else(|e| panic!("/version: {e}: {out}"));
    let version = json["gitVersion"].as_str().expect("gitVersion");
    version.trim_start_matches('v').to_owned()
}

/// The chart rendered for Kubernetes `kube_version`, release `release` in `namespace` with
/// `--set` values.
fn render(release: &str, namespace: &str, kube_version: &str, sets: &[&str]) -> String {
    let chart = chart();
    let mut args = vec![
        "template",
        release,
        chart.to_str().expect("utf-8"),
        "--namespace",
        namespace,
        "--kube-version",
        kube_version,
    ];
    for s in sets {
        args.extend(["--set", s]);
    }
    let (ok, out, err) = helm(&args);
    assert!(ok, "helm template failed: {err}");
    out
}

fn docs(yaml: &str) -> Vec<Value> {
    yaml.split("\n---")
        .filter_map(|d| serde_yaml::from_str::<Value>(d).ok())
        .filter(|v| v.is_object())
        .collect()
}

fn kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn kubectl_in(s: &Services, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new(&s.kubectl)
        .args(args)
        .env("KUBECONFIG", &s.kubeconfig)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl runs");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write");
    }
    let out = child.wait_with_output().expect("kubectl output");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

const VALUES: &[&str] = &[
    "apiTokens.value=t0ken",
    "secretKey.value=k3y",
    "mongodb.value=mongodb://mongo:27017",
    "config.environments[0].name=prod",
    "config.environments[0].git.url=https://git.example/gitops.git",
    "config.environments[0].git.path=envs/prod",
    "config.environments[0].live.inCluster=true",
];

#[test]
fn the_chart_renders_and_the_cluster_accepts_it() {
    let s = services();
    let (ok, out, err) = helm(&["lint", chart().to_str().expect("utf-8"), "--set", VALUES[0]]);
    assert!(ok, "helm lint: {out}{err}");
    let ns = format!("dg-chart-{}", uniq());
    let version = server_version(&s);
    let text = render("dg", &ns, &version, VALUES);
    let all = docs(&text);
    for k in [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "ConfigMap",
        "Secret",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
    ] {
        assert_eq!(kind(&all, k).len(), 1, "one {k} in:\n{text}");
    }
    assert!(kind(&all, "ServiceMonitor").is_empty(), "off by default");
    // the PDB's API version follows the cluster's: policy/v1 from 1.21 on (the test cluster's),
    // policy/v1beta1 before
    assert_eq!(
        kind(&all, "PodDisruptionBudget")[0]["apiVersion"],
        "policy/v1"
    );
    let old = docs(&render("dg", &ns, "1.20.2", VALUES));
    assert_eq!(
        kind(&old, "PodDisruptionBudget")[0]["apiVersion"],
        "policy/v1beta1"
    );
    let on = docs(&render(
        "dg",
        &ns,
        &version,
        &[VALUES, &["serviceMonitor.enabled=true"]].concat(),
    ));
    let sm = kind(&on, "ServiceMonitor");
    assert_eq!(sm.len(), 1);
    assert_eq!(sm[0]["spec"]["endpoints"][0]["path"], "/metrics");

    // the Deployment: replicas, probes, non-root read-only, the identity and the Secrets
    let d = kind(&all, "Deployment")[0];
    assert_eq!(d["spec"]["replicas"], 3);
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    let c = &pod["containers"][0];
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"][0], "ALL");
    let env = c["env"].as_array().expect("env");
    let var = |n: &str| env.iter().find(|e| e["name"] == n).cloned();
    assert_eq!(
        var("POD_NAME").expect("POD_NAME")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    for v in [
        "DRIFTGUARD_API_TOKENS",
        "DRIFTGUARD_SECRET_KEY",
        "MONGODB_URI",
    ] {
        assert!(
            var(v).is_some_and(|e| !e["valueFrom"]["secretKeyRef"]["name"].is_null()),
            "{v} from a Secret"
        );
    }
    // the Lease Role: only Leases, only in the release namespace
    let role = kind(&all, "Role")[0];
    assert_eq!(role["metadata"]["namespace"], ns.as_str());
    assert_eq!(role["rules"][0]["resources"][0], "leases");
    // the read-only ClusterRole never writes
    let verbs = kind(&all, "ClusterRole")[0]["rules"][0]["verbs"].clone();
    assert_eq!(verbs, serde_json::json!(["get", "list", "watch"]));

    // the configuration the chart makes is one DriftGuard accepts, with leader election
    let cm = kind(&all, "ConfigMap")[0];
    let yaml = cm["data"]["driftguard.yaml"].as_str().expect("config");
    let config = driftguard_server::config::Config::from_text(Path::new("driftguard.yaml"), yaml)
        .unwrap_or_else(|e| panic!("the chart's configuration is refused: {e}\n{yaml}"));
    let server = config.file.server.as_ref().expect("server");
    let ha = server.ha.as_ref().expect("ha");
    assert!(ha.in_cluster);
    assert_eq!(ha.namespace, ns);
    assert_eq!(server.listen, "0.0.0.0:8080");

    // without API tokens the chart refuses (the probes could not reach a loopback listener)
    let chart = chart();
    let (ok, _, err) = helm(&[
        "template",
        "dg",
        chart.to_str().expect("utf-8"),
        "--set",
        VALUES[1],
    ]);
    assert!(!ok && err.contains("apiTokens"), "{err}");

    // the test cluster accepts every object (server-side dry run)
    let (ok, out) = kubectl_in(&s, &["create", "namespace", &ns], None);
    assert!(ok, "{out}");
    let (ok, out) = kubectl_in(&s, &["apply", "--dry-run=server", "-f", "-"], Some(&text));
    let _ = kubectl_in(&s, &["delete", "namespace", &ns, "--wait=false"], None);
    assert!(ok, "server-side dry run refused:\n{out}");
    for k in [
        "deployment.apps",
        "poddisruptionbudget.policy",
        "role.rbac",
        "clusterrole.rbac",
    ] {
        assert!(out.contains(k), "{k} in:\n{out}");
    }
}

/// A kubeconfig for a ServiceAccount of the test cluster.
fn service_account_kubeconfig(s: &Services, ns: &str, sa: &str, dir: &Path) -> PathBuf {
    driftguard_test_support::service_account_kubeconfig(
        Path::new(&s.kubectl),
        Path::new(&s.kubeconfig),
        ns,
        sa,
        dir,
    )
}

#[test]
fn the_server_runs_with_only_the_rights_of_the_charts_service_account() {
    let s = services();
    let u = uniq();
    let (release_ns, app_ns) = (format!("dg-rel-{u}"), format!("dg-app-{u}"));
    let release = format!("r{}", u.replace('-', ""));
    let database = format!("dg_chart_{}", u.replace('-', "_"));
    let fullname = format!("{release}-driftguard");
    struct Cleanup<'a> {
        s: &'a Services,
        namespaces: Vec<String>,
        cluster_objects: Vec<String>,
    }
    impl Drop for Cleanup<'_> {
        fn drop(&mut self) {
            for n in &self.namespaces {
                let _ = kubectl_in(self.s, &["delete", "namespace", n, "--wait=false"], None);
            }
            for o in &self.cluster_objects {
                let _ = kubectl_in(self.s, &["delete", o, "--ignore-not-found"], None);
            }
        }
    }
    let _cleanup = Cleanup {
        s: &s,
        namespaces: vec![release_ns.clone(), app_ns.clone()],
        cluster_objects: vec![
            format!("clusterrole/{fullname}-reader"),
            format!("clusterrolebinding/{fullname}-reader"),
        ],
    };
    kubectl(&s, &["create", "namespace", &release_ns]);
    kubectl(&s, &["create", "namespace", &app_ns]);
    // the chart's ServiceAccount and RBAC, for real
    let chart = chart();
    let version = server_version(&s);
    let mut args = vec![
        "template",
        release.as_str(),
        chart.to_str().expect("utf-8"),
        "--namespace",
        &release_ns,
        "--kube-version",
        &version,
        "--show-only",
        "templates/serviceaccount.yaml",
        "--show-only",
        "templates/rbac.yaml",
    ];
    for v in VALUES {
        args.extend(["--set", v]);
    }
    let (ok, rbac, err) = helm(&args);
    assert!(ok, "{err}");
    let (ok, out) = kubectl_in(&s, &["apply", "-f", "-"], Some(&rbac));
    assert!(ok, "{out}");
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let sa_kubeconfig = service_account_kubeconfig(&s, &release_ns, &fullname, dir);

    // an environment on the same cluster, read with the ServiceAccount's token too
    let app = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\n  namespace: {app_ns}\ndata:\n  mode: normal\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\n  namespace: {app_ns}\nstringData:\n  password: hunter2\n"
    );
    std::fs::create_dir_all(dir.join("prod")).expect("mkdir");
    std::fs::write(dir.join("prod/app.yaml"), &app).expect("write");
    let (ok, out) = kubectl_in(&s, &["apply", "-f", "-"], Some(&app));
    assert!(ok, "{out}");
    let config = format!(
        r#"environments:
  - name: prod
    dir: prod
    live: {{kubeconfig: "{kc}"}}
    namespaces: ["{app_ns}"]
store:
  mongodb: {{uriEnv: MONGODB_URI, database: {database}}}
secretKey: {{env: DG_SECRET_KEY}}
server:
  tokenEnv: DG_TOKENS
  ha:
    homeKubeconfig: "{kc}"
    namespace: {release_ns}
    leasePrefix: {fullname}
    leaseDuration: 3s
    renewDeadline: 2s
    retryPeriod: 500ms
"#,
        kc = sa_kubeconfig.display()
    );
    std::fs::write(dir.join("driftguard.yaml"), config).expect("write");
    let mut server = spawn_server(
        dir,
        &["--config", "driftguard.yaml"],
        &[
            ("MONGODB_URI", &s.mongodb_uri),
            ("DG_SECRET_KEY", "chart-test-key"),
            ("DG_TOKENS", TOKEN),
            ("POD_NAME", "chart-replica-0"),
        ],
        free_port(),
        dir.join("serve.log"),
        TOKEN,
    );
    // it takes its Lease, scans every kind without a refusal, and watches
    let (env, _) = poll(Instant::now(), Duration::from_secs(40), || {
        server
            .json("/api/v1/environments/prod")
            .filter(|v| v["leader"]["this_replica"] == true && v["watching"] == true)
            .filter(|v| !v["last_scan"].is_null())
    })
    .unwrap_or_else(|| panic!("no scan as the chart's ServiceAccount:\n{}", server.log()));
    assert_eq!(
        env["last_scan"]["errors"],
        serde_json::json!([]),
        "every kind readable: {env}"
    );
    assert_eq!(env["status"], "in_sync", "{env}");
    let holder = kubectl(
        &s,
        &[
            "-n",
            &release_ns,
            "get",
            "lease",
            &format!("{fullname}-env-prod"),
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ],
    );
    assert_eq!(holder, "chart-replica-0");
    // a hand change is seen through the watch
    kubectl(
        &s,
        &[
            "-n",
            &app_ns,
            "patch",
            "configmap",
            "app",
            "--type",
            "merge",
            "-p",
            r#"{"data":{"mode":"debug"}}"#,
        ],
    );
    poll(Instant::now(), Duration::from_secs(15), || {
        (server.drifts("environment=prod").len() == 1).then_some(())
    })
    .unwrap_or_else(|| panic!("the change was not detected:\n{}", server.log()));
    // and it may not write to the cluster
    let (_, can) = kubectl_in(
        &s,
        &[
            "auth",
            "can-i",
            "create",
            "configmaps",
            "-n",
            &app_ns,
            &format!("--as=system:serviceaccount:{release_ns}:{fullname}"),
        ],
        None,
    );
    assert!(can.trim().starts_with("no"), "{can}");
    // a graceful stop hands the Lease back and removes its membership: update and delete
    let ok = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok);
    let _ = server.child.wait();
    let log = server.log();
    assert!(
        !log.contains("Forbidden") && !log.contains("forbidden"),
        "{log}"
    );
    let leases = kubectl(
        &s,
        &[
            "-n",
            &release_ns,
            "get",
            "leases",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}={.spec.holderIdentity}{\"\\n\"}{end}",
        ],
    );
    assert_eq!(leases.trim(), format!("{fullname}-env-prod="), "{leases}");
    // drop the test database
    if let Ok(rt) = tokio::runtime::Runtime::new() {
        rt.block_on(async {
            if let Ok(store) =
                driftguard_store::MongoStore::connect(&s.mongodb_uri, &database).await
            {
                let _ = store.database().drop().await;
            }
        });
    }
}

#[test]
fn the_dockerfile_builds_the_binary_in_one_stage_and_runs_it_as_non_root_in_another() {
    // no Docker daemon runs here: the Dockerfile's shape is checked, not built
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(root.join("deploy/Dockerfile")).expect("deploy/Dockerfile");
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let instructions = [
        "ARG",
        "FROM",
        "WORKDIR",
        "COPY",
        "RUN",
        "USER",
        "EXPOSE",
        "ENTRYPOINT",
        "CMD",
        "ENV",
    ];
    // every line is an instruction or the continuation of a RUN
    let mut continued = false;
    for l in &lines {
        let word = l.split_whitespace().next().unwrap_or("");
        assert!(
            continued || instructions.contains(&word),
            "not an instruction: {l}"
        );
        continued = l.ends_with('\\');
    }
    let froms: Vec<&&str> = lines.iter().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "a build stage and a run stage: {froms:?}");
    assert!(froms.iter().all(|f| f.contains(" AS ")), "named stages");
    assert!(!text.contains(":latest"), "pinned bases");
    let build = froms[0].rsplit(' ').next().expect("stage name");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("COPY --from={build} ")) && l.contains("driftguard")),
        "the run stage takes the binary from the build stage"
    );
    assert!(text.contains("cargo build --release --locked -p driftguard-cli --bin driftguard"));
    // the user of the run stage is the chart's (non-root)
    let user = lines
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("USER");
    assert_eq!(user.trim(), "65532:65532");
    let values = std::fs::read_to_string(chart().join("values.yaml")).expect("values");
    assert!(values.contains("runAsUser: 65532") && values.contains("runAsGroup: 65532"));
    assert!(lines.contains(&r#"ENTRYPOINT ["/usr/local/bin/driftguard"]"#));
    // everything the build stage copies is in the repository, and the workspace's members are
    // all copied
    for l in lines
        .iter()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let parts: Vec<&str> = l.split_whitespace().collect();
        for src in &parts[1..parts.len() - 1] {
            assert!(root.join(src).exists(), "COPY source {src} exists");
        }
    }
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("Cargo.toml");
    let members: Vec<&str> = manifest
        .lines()
        .skip_while(|l| !l.starts_with("members"))
        .skip(1)
        .take_while(|l| !l.starts_with(']'))
        .filter_map(|l| l.trim().trim_end_matches(',').strip_prefix('"'))
        .filter_map(|l| l.strip_suffix('"'))
        .collect();
    assert!(!members.is_empty());
    for m in members {
        let top = m.split('/').next().expect("member");
        assert!(
            lines.iter().any(|l| l.starts_with(&format!("COPY {top} "))),
            "workspace member {m} is copied"
        );
    }
    let ignore = std::fs::read_to_string(root.join(".dockerignore")).expect(".dockerignore");
    assert!(
        ignore.lines().any(|l| l.trim() == "target"),
        "target is not sent"
    );
}
