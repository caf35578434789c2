//! Environments discovered from Argo CD and Flux end to end (issue #31): the vendored CRDs of
//! `examples/discovery/crds` on the test cluster, a Git repository with a plain folder, a
//! kustomization and a Helm chart, Argo CD Applications for each (plus one with a plugin
//! DriftGuard has no command for and one with a chart from a Helm repository), and a Flux
//! GitRepository, Kustomization and HelmRelease (the repository's chart with values files and
//! values). The objects are deployed the way the tools would: rendered the same way (`kubectl
//! kustomize` with the Application's options, `helm template` with its values) and applied
//! server-side with the tools' field managers (`argocd-controller`, `kustomize-controller`,
//! `helm-controller`). No controller runs here (`flux_controllers.rs` runs Flux's).
//!
//! `driftguard scan --discover` with a configuration holding only `discover:` scans each app
//! as an environment (`argocd.<app>`, `flux.<namespace>.<name>`) with zero drift; a hand
//! change to the kustomize app's Deployment is then found in `argocd.kustom` with the field it
//! changed; `config validate --discover` lists every app with its problems, the two that
//! cannot be mapped are not scanned, and the others still are.
//!
//! `serve_follows_applications_as_they_change`: `serve` follows the cluster; an Application
//! created, changed and deleted while it runs is an environment added, restarted with its new
//! configuration and removed (its history kept).
//!
//! Argo CD's and Flux's namespaces are made per run (the cluster is shared by tests; the
//! discovery section says where to read). The CRDs stay installed: other tests may use them.
//!
//! Needs `scripts/test-services.sh up` (the cluster, and helm from `scripts/helm/install.sh`):
//! a missing one fails the test.

mod util;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;
use util::e2e::{kubectl, DeleteOnDrop, Services};
use util::{git_as as git, repo_root, run_env, write, Run};

const CRDS: [&str; 4] = [
    "applications.argoproj.io",
    "kustomizations.kustomize.toolkit.fluxcd.io",
    "gitrepositories.source.toolkit.fluxcd.io",
    "helmreleases.helm.toolkit.fluxcd.io",
];

/// Serves the files of `root` over HTTP/1.0 on 127.0.0.1 (GET only, the query ignored): a
/// bare repository with `git update-server-info` run in it is then a Git remote that `git`
/// clones over its "dumb" HTTP protocol. Flux's GitRepository accepts only `http`, `https`
/// and `ssh` URLs. Returns the port; the server lives as long as the test process.
fn serve_files(root: PathBuf) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the file server");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let root = root.clone();
            std::thread::spawn(move || {
                let mut request = String::new();
                let mut reader = BufReader::new(conn.try_clone().expect("clone stream"));
                if reader.read_line(&mut request).is_err() {
                    return;
                }
                loop {
                    let mut header = String::new();
                    match reader.read_line(&mut header) {
                        Ok(0) | Err(_) => break,
                        Ok(_) if header.trim().is_empty() => break,
                        Ok(_) => {}
                    }
                }
                let path = request
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("/")
                    .split('?')
                    .next()
                    .unwrap_or("/")
                    .trim_start_matches('/')
                    .to_owned();
                let file = root.join(&path);
                let answer = match std::fs::read(&file) {
                    Ok(body) if !path.contains("..") && file.is_file() => {
                        let mut a = format!(
                            "HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
                            body.len()
                        )
                        .into_bytes();
                        a.extend(body);
                        a
                    }
                    _ => b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
                };
                let _ = conn.write_all(&answer);
            });
        }
    });
    port
}

/// The tools' CRDs, as vendored, applied and Established. They stay installed: other tests
/// may use them.
fn install_crds(s: &Services) {
    let crds = repo_root().join("examples/discovery/crds");
    kubectl(
        s,
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=driftguard-e2e",
            "-f",
            &crds.display().to_string(),
        ],
    );
    for crd in CRDS {
        kubectl(
            s,
            &[
                "wait",
                "--for=condition=Established",
                "--timeout=60s",
                &format!("crd/{crd}"),
            ],
        );
    }
}

/// A per-run suffix for namespaces (the cluster is shared by tests).
fn run_id() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() % 100_000)
            .unwrap_or_default()
    )
}

/// Applies `yaml` server-side with `manager` as the field manager, in `namespace` for the
/// objects that name none (as Argo CD applies to the destination namespace).
fn apply(s: &Services, yaml: &[u8], manager: &str, namespace: Option<&str>) {
    let mut args = vec![
        "apply".to_owned(),
        "--server-side".into(),
        format!("--field-manager={manager}"),
        "-f".into(),
        "-".into(),
    ];
    if let Some(ns) = namespace {
        args.extend(["-n".into(), ns.into()]);
    }
    let mut child = Command::new(&s.kubectl)
        .args(&args)
        .env("KUBECONFIG", &s.kubeconfig)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(yaml)
        .expect("write to kubectl");
    let out = child.wait_with_output().expect("kubectl ends");
    assert!(
        out.status.success(),
        "kubectl apply ({manager}): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A program's standard output; a failure fails the test.
fn output(program: &Path, args: &[&str], dir: &Path) -> Vec<u8> {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{} runs: {e}", program.display()));
    assert!(
        out.status.success(),
        "{} {args:?}: {}",
        program.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The repository: (a) a plain folder, (b) a kustomization, (c) a Helm chart with values.
fn write_repository(repo: &Path) {
    write(
        &repo.join("apps/plain/configmap.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: plain-config\ndata:\n  mode: normal\n",
    );
    write(
        &repo.join("apps/plain/deployment.yaml"),
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: plain
  labels: {app: plain}
spec:
  replicas: 1
  selector:
    matchLabels: {app: plain}
  template:
    metadata:
      labels: {app: plain}
    spec:
      containers:
        - name: plain
          image: nginx:1.25
",
    );
    write(
        &repo.join("apps/kustom/kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - deployment.yaml\n",
    );
    write(
        &repo.join("apps/kustom/deployment.yaml"),
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: nginx:1.25
",
    );
    write(
        &repo.join("charts/shop/Chart.yaml"),
        "apiVersion: v2\nname: shop\nversion: 0.1.0\n",
    );
    write(
        &repo.join("charts/shop/values.yaml"),
        "replicas: 1\ntheme: light\nimage: nginx:1.25\n",
    );
    write(&repo.join("charts/shop/values-prod.yaml"), "theme: dark\n");
    write(
        &repo.join("charts/shop/templates/deployment.yaml"),
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-shop
  labels: {app: shop}
spec:
  replicas: {{ .Values.replicas }}
  selector:
    matchLabels: {app: shop}
  template:
    metadata:
      labels: {app: shop}
    spec:
      containers:
        - name: shop
          image: {{ .Values.image }}
",
    );
    write(
        &repo.join("charts/shop/templates/configmap.yaml"),
        "apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-settings
data:
  theme: {{ .Values.theme | quote }}
",
    );
}

fn application(name: &str, ns: &str, source: &str, destination: &str) -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: {name}
  namespace: {ns}
spec:
  project: default
  source:
{source}
  destination:
    server: https://kubernetes.default.svc
    namespace: {destination}
---
"
    )
}

type DriftRow = (String, String, String, String);

/// (environment, kind, namespace/name, fields) of every open drift.
fn drift_set(v: &Value) -> BTreeSet<DriftRow> {
    let mut out = BTreeSet::new();
    for env in v["environments"].as_array().expect("environments") {
        for d in env["drifts"].as_array().expect("drifts") {
            let fields: Vec<&str> = d["fields"]
                .as_array()
                .expect("fields")
                .iter()
                .map(|f| f["path"].as_str().expect("path"))
                .collect();
            out.insert((
                env["environment"].as_str().expect("env").to_owned(),
                d["id"]["kind"].as_str().expect("kind").to_owned(),
                format!(
                    "{}/{}",
                    d["id"]["namespace"].as_str().unwrap_or(""),
                    d["id"]["name"].as_str().expect("name")
                ),
                fields.join(","),
            ));
        }
    }
    out
}

/// environment → (tracked, in sync) of each scanned environment.
fn scanned(v: &Value) -> Vec<(String, u64, u64)> {
    v["environments"]
        .as_array()
        .expect("environments")
        .iter()
        .map(|e| {
            let counts = &e["summary"]["counts"];
            (
                e["environment"].as_str().expect("env").to_owned(),
                counts["tracked"].as_u64().expect("tracked"),
                counts["in_sync"].as_u64().expect("in sync"),
            )
        })
        .collect()
}

#[test]
fn argo_cd_and_flux_apps_are_discovered_and_scanned() {
    let s = util::e2e::services();
    let helm = driftguard_test_support::helm();
    let kubectl_bin = PathBuf::from(&s.kubectl);
    let run = run_id();
    let argocd_ns = format!("dg-disc-argocd-{run}");
    let flux_ns = format!("dg-disc-flux-{run}");
    let plain_ns = format!("dg-disc-plain-{run}");
    let kustom_ns = format!("dg-disc-kustom-{run}");
    let shop_ns = format!("dg-disc-shop-{run}");
    let fluxapp_ns = format!("dg-disc-fluxapp-{run}");
    let fluxhelm_ns = format!("dg-disc-fluxhelm-{run}");
    let namespaces = [
        &argocd_ns,
        &flux_ns,
        &plain_ns,
        &kustom_ns,
        &shop_ns,
        &fluxapp_ns,
        &fluxhelm_ns,
    ];
    let _cleanup = DeleteOnDrop::namespaces(&s, &namespaces.map(String::as_str));
    for ns in namespaces {
        kubectl(&s, &["create", "namespace", ns]);
    }

    install_crds(&s);

    // the repository: a local path for Argo CD, the same over HTTP for Flux
    let tmp = tempfile::tempdir().expect("temp dir");
    let repo = tmp.path().join("repo");
    write_repository(&repo);
    git(&repo, &["init", "-q", "-b", "main"], "Alice Dev");
    git(&repo, &["add", "-A"], "Alice Dev");
    git(&repo, &["commit", "-q", "-m", "three apps"], "Alice Dev");
    let served = tmp.path().join("served");
    std::fs::create_dir_all(&served).expect("mkdir");
    git(
        tmp.path(),
        &[
            "clone",
            "-q",
            "--bare",
            &repo.display().to_string(),
            &served.join("repo.git").display().to_string(),
        ],
        "Alice Dev",
    );
    git(
        &served.join("repo.git"),
        &["update-server-info"],
        "Alice Dev",
    );
    let port = serve_files(served);
    let http_url = format!("http://127.0.0.1:{port}/repo.git");
    let repo_url = repo.display().to_string();

    // Argo CD's Applications
    let apps = [
        application(
            "plain",
            &argocd_ns,
            &format!(
                "    repoURL: {repo_url}\n    targetRevision: main\n    path: apps/plain\n    directory: {{recurse: false}}"
            ),
            &plain_ns,
        ),
        application(
            "kustom",
            &argocd_ns,
            &format!(
                "    repoURL: {repo_url}\n    targetRevision: main\n    path: apps/kustom\n    kustomize:\n      namePrefix: e2e-\n      images: [nginx=nginx:1.27]"
            ),
            &kustom_ns,
        ),
        application(
            "shop",
            &argocd_ns,
            &format!(
                "    repoURL: {repo_url}\n    targetRevision: main\n    path: charts/shop\n    helm:\n      releaseName: web\n      valueFiles: [values-prod.yaml]\n      parameters:\n        - {{name: replicas, value: \"3\"}}"
            ),
            &shop_ns,
        ),
        application(
            "tools",
            &argocd_ns,
            &format!(
                "    repoURL: {repo_url}\n    targetRevision: main\n    path: apps/plain\n    plugin: {{name: kasane}}"
            ),
            &plain_ns,
        ),
        application(
            "ingress",
            &argocd_ns,
            "    repoURL: https://kubernetes.github.io/ingress-nginx\n    chart: ingress-nginx\n    targetRevision: 4.11.2",
            &plain_ns,
        ),
    ]
    .concat();
    apply(&s, apps.as_bytes(), "driftguard-e2e", None);
    // Flux's source and Kustomization
    let flux = format!(
        "apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata:
  name: apps
  namespace: {flux_ns}
spec:
  interval: 5m
  url: {http_url}
  ref: {{branch: main}}
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: plain
  namespace: {flux_ns}
spec:
  interval: 10m
  prune: true
  sourceRef: {{kind: GitRepository, name: apps}}
  path: ./apps/plain
  targetNamespace: {fluxapp_ns}
---
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: shop
  namespace: {flux_ns}
spec:
  interval: 10m
  releaseName: fluxshop
  targetNamespace: {fluxhelm_ns}
  chart:
    spec:
      chart: ./charts/shop
      sourceRef: {{kind: GitRepository, name: apps}}
      valuesFiles: [./charts/shop/values.yaml, ./charts/shop/values-prod.yaml]
  values:
    replicas: 2
"
    );
    apply(&s, flux.as_bytes(), "driftguard-e2e", None);

    // deployed as the tools would: (a) the folder's files
    let plain = [
        std::fs::read(repo.join("apps/plain/configmap.yaml")).expect("read"),
        b"---\n".to_vec(),
        std::fs::read(repo.join("apps/plain/deployment.yaml")).expect("read"),
    ]
    .concat();
    apply(&s, &plain, "argocd-controller", Some(&plain_ns));
    // (b) the kustomization with the Application's options set in a copy (kustomize edit)
    let kustom = tmp.path().join("kustom");
    util::copy_dir(&repo.join("apps/kustom"), &kustom);
    write(
        &kustom.join("kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - deployment.yaml
namePrefix: e2e-
images:
  - name: nginx
    newName: nginx
    newTag: \"1.27\"
",
    );
    let built = output(&kubectl_bin, &["kustomize", "."], &kustom);
    assert!(String::from_utf8_lossy(&built).contains("nginx:1.27"));
    apply(&s, &built, "argocd-controller", Some(&kustom_ns));
    // (c) the chart with the Application's values
    let rendered = output(
        &helm,
        &[
            "template",
            "web",
            "charts/shop",
            "--namespace",
            &shop_ns,
            "--values",
            "charts/shop/values-prod.yaml",
            "--set",
            "replicas=3",
        ],
        &repo,
    );
    apply(&s, &rendered, "argocd-controller", Some(&shop_ns));
    // Flux: the folder taken whole, in the target namespace
    let generated = tmp.path().join("flux-plain");
    util::copy_dir(&repo.join("apps/plain"), &generated);
    write(
        &generated.join("kustomization.yaml"),
        &format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: {fluxapp_ns}\nresources:\n  - configmap.yaml\n  - deployment.yaml\n"
        ),
    );
    let built = output(&kubectl_bin, &["kustomize", "."], &generated);
    apply(&s, &built, "kustomize-controller", None);
    // Flux: the HelmRelease's chart with its values files and values, in the target namespace
    let rendered = output(
        &helm,
        &[
            "template",
            "fluxshop",
            "charts/shop",
            "--namespace",
            &fluxhelm_ns,
            "--values",
            "charts/shop/values.yaml",
            "--values",
            "charts/shop/values-prod.yaml",
            "--set",
            "replicas=2",
        ],
        &repo,
    );
    apply(&s, &rendered, "helm-controller", Some(&fluxhelm_ns));

    // a configuration with only the discovery section
    write(
        &tmp.path().join("driftguard.yaml"),
        &format!(
            "discover:\n  cluster: {{kubeconfig: {}}}\n  argocd: {{namespace: {argocd_ns}}}\n  flux: {{namespaces: [{flux_ns}]}}\n",
            s.kubeconfig
        ),
    );
    // helm and kubectl (kustomize) as the tests run them
    let path = format!(
        "{}:{}:{}",
        helm.parent().expect("helm's folder").display(),
        kubectl_bin.parent().expect("kubectl's folder").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let env = [
        ("DRIFTGUARD_SECRET_KEY", "discover-e2e-key"),
        ("PATH", path.as_str()),
    ];
    let cli = |args: &[&str]| -> Run { run_env(tmp.path(), args, &env) };
    let scan = || {
        cli(&[
            "scan",
            "--discover",
            "--config",
            "driftguard.yaml",
            "-o",
            "json",
        ])
    };
    let flux_env = format!("flux.{flux_ns}.plain");
    let flux_helm_env = format!("flux.{flux_ns}.shop");

    // 1. every app an environment, no drift; the two that cannot be mapped are warnings
    let first = scan();
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    let v = first.json();
    assert_eq!(drift_set(&v), BTreeSet::new(), "{v:#}");
    let got = scanned(&v);
    let names: BTreeSet<&str> = got.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "argocd.plain",
            "argocd.kustom",
            "argocd.shop",
            flux_env.as_str(),
            flux_helm_env.as_str()
        ]),
        "{v:#}\n{}",
        first.stderr
    );
    for (name, tracked, in_sync) in &got {
        // a ConfigMap and a Deployment; the kustomization only a Deployment
        let objects = if name == "argocd.kustom" { 1 } else { 2 };
        assert_eq!(*tracked, objects, "{name}: {v:#}");
        assert_eq!(tracked, in_sync, "{name}: {v:#}");
    }
    assert!(
        first
            .stderr
            .contains("discovered 5 environments (2 objects not scanned)"),
        "{}",
        first.stderr
    );
    assert!(
        first.stderr.contains(&format!(
            "warning: Argo CD Application {argocd_ns}/tools: spec.source.plugin.name:"
        )),
        "{}",
        first.stderr
    );
    assert!(
        first.stderr.contains(&format!(
            "warning: Argo CD Application {argocd_ns}/ingress: spec.source.chart:"
        )),
        "{}",
        first.stderr
    );

    // 2. a hand change to the kustomize app's Deployment, found in its environment
    kubectl(
        &s,
        &[
            "set",
            "image",
            "-n",
            &kustom_ns,
            "deployment/e2e-web",
            "web=nginx:1.28",
        ],
    );
    let second = scan();
    assert_eq!(second.code, 2, "{}\n{}", second.stdout, second.stderr);
    let v = second.json();
    assert_eq!(
        drift_set(&v),
        BTreeSet::from([(
            "argocd.kustom".to_owned(),
            "Deployment".to_owned(),
            format!("{kustom_ns}/e2e-web"),
            "spec.template.spec.containers[web].image".to_owned(),
        )]),
        "{v:#}"
    );

    // 3. config validate --discover: every app, with what it maps to and its problems
    let listed = cli(&["config", "validate", "--discover", "driftguard.yaml"]);
    assert_eq!(listed.code, 0, "{}\n{}", listed.stdout, listed.stderr);
    let out = &listed.stdout;
    for expected in [
        "Argo CD: installed",
        "Flux: installed",
        "argocd.kustom\n",
        &format!("  object:      Argo CD Application {argocd_ns}/kustom\n"),
        &format!("  source:      {repo_url} @ main, path apps/kustom\n"),
        "  rendering:   kustomize, namePrefix e2e-, images nginx=nginx:1.27\n",
        &format!("  destination: kubeconfig {}, namespace {kustom_ns}\n", s.kubeconfig),
        "  rendering:   helm chart, release web, value files values-prod.yaml, parameters replicas\n",
        "  rendering:   directory (a kustomization.yaml in it is built)\n",
        &format!("{flux_env}\n"),
        &format!("  source:      {http_url} @ main, path apps/plain\n"),
        &format!("{flux_helm_env}\n"),
        &format!("  object:      Flux HelmRelease {flux_ns}/shop\n"),
        &format!("  object:      Argo CD Application {argocd_ns}/tools\n"),
        &format!("  object:      Argo CD Application {argocd_ns}/ingress\n"),
        "    BLOCKING spec.source.plugin.name: ",
        "    BLOCKING spec.source.chart: ",
        "7 objects discovered: 5 environments, 2 not scanned.",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in\n{out}");
    }
    let strict = cli(&[
        "config",
        "validate",
        "--discover",
        "--strict",
        "driftguard.yaml",
    ]);
    assert_eq!(strict.code, 1, "{}\n{}", strict.stdout, strict.stderr);

    // 4. serve discovers at start: the same environments, the same drift
    let config = std::fs::read_to_string(tmp.path().join("driftguard.yaml")).expect("read");
    write(
        &tmp.path().join("serve.yaml"),
        &format!("{config}server:\n  tokenEnv: DISCOVER_TOKENS\n  pollInterval: 60s\n"),
    );
    let mut server = util::e2e::spawn_server(
        tmp.path(),
        &["--config", "serve.yaml"],
        &[
            ("DISCOVER_TOKENS", SERVE_TOKEN),
            ("DRIFTGUARD_SECRET_KEY", "discover-e2e-key"),
            ("PATH", path.as_str()),
        ],
        util::e2e::free_port(),
        tmp.path().join("serve.log"),
        SERVE_TOKEN,
    );
    server.wait_ready(0.0, 5);
    let environments: BTreeSet<String> = server
        .json("/api/v1/environments")
        .and_then(|v| v["items"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|e| e["name"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        environments,
        BTreeSet::from([
            "argocd.plain".to_owned(),
            "argocd.kustom".to_owned(),
            "argocd.shop".to_owned(),
            flux_env.clone(),
            flux_helm_env.clone(),
        ]),
        "{}",
        server.log()
    );
    let drifts = server.drifts("environment=argocd.kustom");
    assert_eq!(drifts.len(), 1, "{drifts:?}\n{}", server.log());
    assert!(
        server.log().contains("spec.source.plugin.name"),
        "the problems are logged: {}",
        server.log()
    );
}

/// The API token of `driftguard serve` in step 4.
const SERVE_TOKEN: &str = "discover-e2e-token-4f7a1c9e2b";

/// The names of `/api/v1/environments`.
fn environment_names(server: &util::e2e::Server) -> BTreeSet<String> {
    server
        .json("/api/v1/environments")
        .and_then(|v| v["items"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|e| e["name"].as_str().map(str::to_owned))
        .collect()
}

/// Waits up to 90 s for `done`, then fails with `what` and the server's log.
fn wait_for(server: &util::e2e::Server, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within 90 s\nenvironments: {:?}\n{}",
            server.get("/api/v1/environments"),
            server.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

/// `serve` follows the cluster (#31): an Application created while it runs becomes an
/// environment and is scanned; changed (another folder), it is scanned with its new
/// configuration under the same name; deleted, it is no longer listed, while its history
/// stays in the store. The environment discovered at start is untouched throughout.
#[test]
fn serve_follows_applications_as_they_change() {
    let s = util::e2e::services();
    let run = run_id();
    let argocd_ns = format!("dg-follow-argocd-{run}");
    let first_ns = format!("dg-follow-first-{run}");
    let second_ns = format!("dg-follow-second-{run}");
    let namespaces = [&argocd_ns, &first_ns, &second_ns];
    let _cleanup = DeleteOnDrop::namespaces(&s, &namespaces.map(String::as_str));
    for ns in namespaces {
        kubectl(&s, &["create", "namespace", ns]);
    }
    install_crds(&s);

    let tmp = tempfile::tempdir().expect("temp dir");
    let repo = tmp.path().join("repo");
    write_repository(&repo);
    git(&repo, &["init", "-q", "-b", "main"], "Alice Dev");
    git(&repo, &["add", "-A"], "Alice Dev");
    git(&repo, &["commit", "-q", "-m", "apps"], "Alice Dev");
    let repo_url = repo.display().to_string();
    let plain_source = format!(
        "    repoURL: {repo_url}\n    targetRevision: main\n    path: apps/plain\n    directory: {{recurse: false}}"
    );
    // the folder of the kustomization, read as a plain folder: one Deployment
    let kustom_source = format!(
        "    repoURL: {repo_url}\n    targetRevision: main\n    path: apps/kustom\n    directory: {{recurse: false}}"
    );
    apply(
        &s,
        application("first", &argocd_ns, &plain_source, &first_ns).as_bytes(),
        "driftguard-e2e",
        None,
    );

    // no Flux objects: Flux is read in Argo CD's (empty of Flux objects) namespace
    write(
        &tmp.path().join("serve.yaml"),
        &format!(
            "discover:\n  cluster: {{kubeconfig: {}}}\n  argocd: {{namespace: {argocd_ns}}}\n  flux: {{namespaces: [{argocd_ns}]}}\nserver:\n  tokenEnv: DISCOVER_TOKENS\n  pollInterval: 60s\n",
            s.kubeconfig
        ),
    );
    let mut server = util::e2e::spawn_server(
        tmp.path(),
        &["--config", "serve.yaml"],
        &[
            ("DISCOVER_TOKENS", SERVE_TOKEN),
            ("DRIFTGUARD_SECRET_KEY", "discover-e2e-key"),
        ],
        util::e2e::free_port(),
        tmp.path().join("serve.log"),
        SERVE_TOKEN,
    );
    server.wait_ready(0.0, 1);
    assert_eq!(
        environment_names(&server),
        BTreeSet::from(["argocd.first".to_owned()]),
        "{}",
        server.log()
    );

    let tracked = |server: &util::e2e::Server, env: &str| -> Option<u64> {
        let v = server.json(&format!("/api/v1/environments/{env}"))?;
        v["last_scan"]["counts"]["tracked"].as_u64()
    };

    // 1. created: listed and scanned (the folder's ConfigMap and Deployment)
    apply(
        &s,
        application("second", &argocd_ns, &plain_source, &second_ns).as_bytes(),
        "driftguard-e2e",
        None,
    );
    wait_for(&server, "argocd.second appears and is scanned", || {
        environment_names(&server)
            == BTreeSet::from(["argocd.first".to_owned(), "argocd.second".to_owned()])
            && tracked(&server, "argocd.second") == Some(2)
    });
    assert!(
        server.log().contains("discovery: environment added"),
        "{}",
        server.log()
    );
    // nothing is deployed: the folder's two objects are missing, drifts of argocd.second
    let before = server.drifts("environment=argocd.second");
    assert_eq!(before.len(), 2, "{before:?}\n{}", server.log());
    let episode = before[0]["episode"].as_str().expect("episode").to_owned();

    // 1b. the tool's verdict: Argo CD writes the status (the Application CRD has no status
    // subresource: a merge patch of the object); the API and /metrics show it, and the
    // environment is not restarted for it (the end checks one `changed`, argocd.second's)
    kubectl(
        &s,
        &[
            "patch",
            "application",
            "first",
            "-n",
            &argocd_ns,
            "--type",
            "merge",
            "-p",
            r#"{"status":{"sync":{"status":"OutOfSync","revision":"0123456789abcdef0123456789abcdef01234567"},"health":{"status":"Degraded"},"operationState":{"phase":"Failed","operation":{"sync":{"revision":"0123456789abcdef0123456789abcdef01234567"}},"startedAt":"2026-12-01T08:59:00Z"},"reconciledAt":"2026-12-01T09:00:00Z"}}"#,
        ],
    );
    let tool = |server: &util::e2e::Server| -> Value {
        server
            .json("/api/v1/environments/argocd.first")
            .map(|v| v["tool"].clone())
            .unwrap_or(Value::Null)
    };
    wait_for(&server, "argocd.first shows Argo CD's new verdict", || {
        tool(&server)["sync"] == "OutOfSync"
    });
    let t = tool(&server);
    assert_eq!(t["tool"], "argocd", "{t}");
    assert_eq!(t["kind"], "Application", "{t}");
    assert_eq!(t["name"], "first", "{t}");
    assert_eq!(t["health"], "Degraded", "{t}");
    assert_eq!(t["operation"], "Failed", "{t}");
    assert_eq!(t["in_sync"], false, "{t}");
    assert_eq!(t["healthy"], false, "{t}");
    assert_eq!(
        t["revision"], "0123456789abcdef0123456789abcdef01234567",
        "{t}"
    );
    assert_eq!(t["reconciled_at"], "2026-12-01T09:00:00Z", "{t}");
    let metrics = server.get("/metrics").map(|(_, b)| b).unwrap_or_default();
    for gauge in ["driftguard_tool_in_sync", "driftguard_tool_healthy"] {
        assert!(
            metrics.contains(&format!(
                "{gauge}{{environment=\"argocd.first\",tool=\"argocd\"}} 0"
            )),
            "{gauge}:\n{metrics}"
        );
    }
    assert!(
        !server
            .log()
            .lines()
            .any(|l| l.contains("environment changed") && l.contains("argocd.first")),
        "a status change restarts nothing:\n{}",
        server.log()
    );

    // 2. changed: another folder, the same name; scanned with the new configuration
    apply(
        &s,
        application("second", &argocd_ns, &kustom_source, &second_ns).as_bytes(),
        "driftguard-e2e",
        None,
    );
    wait_for(
        &server,
        "argocd.second is scanned in its new folder",
        || tracked(&server, "argocd.second") == Some(1),
    );
    assert!(
        server.log().contains("discovery: environment changed"),
        "{}",
        server.log()
    );
    assert_eq!(
        environment_names(&server),
        BTreeSet::from(["argocd.first".to_owned(), "argocd.second".to_owned()])
    );

    // 3. deleted: no longer listed, no longer scanned; its history stays in the store
    kubectl(
        &s,
        &[
            "delete",
            "application",
            "second",
            "-n",
            &argocd_ns,
            "--wait=true",
        ],
    );
    wait_for(&server, "argocd.second disappears", || {
        environment_names(&server) == BTreeSet::from(["argocd.first".to_owned()])
    });
    assert!(
        server.log().contains("discovery: environment removed"),
        "{}",
        server.log()
    );
    assert_eq!(
        server
            .get("/api/v1/environments/argocd.second")
            .map(|(code, _)| code),
        Some(404)
    );
    let kept = server.json(&format!("/api/v1/drifts/{episode}"));
    assert_eq!(
        kept.as_ref().and_then(|d| d["drift"]["episode"].as_str()),
        Some(episode.as_str()),
        "the removed environment's drift episode is still in the store: {kept:?}"
    );
    let metrics = server.get("/metrics").map(|(_, b)| b).unwrap_or_default();
    for change in ["added", "changed", "removed"] {
        assert!(
            metrics.contains(&format!(
                "driftguard_discovered_environment_changes_total{{change=\"{change}\"}} 1"
            )),
            "{change}:\n{metrics}"
        );
    }
    assert!(
        !metrics.contains("environment=\"argocd.second\"")
            || metrics
                .lines()
                .filter(|l| l.contains("environment=\"argocd.second\""))
                .all(|l| l.starts_with("driftguard_drift_events")),
        "only the event counters of a removed environment stay:\n{metrics}"
    );
    // the environment discovered at start ran throughout
    assert_eq!(
        tracked(&server, "argocd.first"),
        Some(2),
        "{}",
        server.log()
    );
}
