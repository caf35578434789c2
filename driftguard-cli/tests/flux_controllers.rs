//! Flux's own controllers deploying from a local Git server, DriftGuard beside them (issue
//! #31, "tested for real"). `discover.rs` applies the objects the way the tools would; here
//! Flux's source-controller and kustomize-controller themselves (v1.9.6, built from the Go
//! module proxy by `scripts/flux/build.sh`) run against the test cluster as child processes,
//! watching only the run's namespace, and deploy a folder of a Git repository served over
//! Git's smart HTTP protocol on 127.0.0.1 (go-git speaks no other; `util::git_http`).
//!
//! Then:
//! 1. `driftguard scan --discover` with a configuration holding only `discover:` finds the
//!    Kustomization, tracks every object Flux applied, and sees no drift: Flux's labels and
//!    field manager are not drift;
//! 2. under `driftguard serve`, a hand change (`kubectl scale`) is an open forward drift; once
//!    Flux is asked to reconcile (the `reconcile.fluxcd.io/requestedAt` annotation, as `flux
//!    reconcile` does) and puts the field back, the drift is resolved as `reverted`, naming
//!    Flux's field manager (`kustomize-controller`);
//! 3. the same hand change again is the same episode coming back (`recurrences` 1, a
//!    `recurred` event), not a new one, and Flux's second correction resolves it again.
//!
//! The CRDs of the objects the controllers read: `examples/discovery/crds` for GitRepository
//! and Kustomization (v1.10.1, as `discover.rs` applies them: their v1 schemas are a superset
//! of v1.9.6's), the others (HelmRepository, HelmChart, Bucket, OCIRepository, which
//! source-controller watches from its start, and ExternalArtifact) from the controllers' own
//! modules (`$FLUX_CRDS`, copied by `scripts/flux/build.sh`). They stay installed.
//!
//! Needs `scripts/test-services.sh up` (the cluster, and FLUX_SOURCE_CONTROLLER,
//! FLUX_KUSTOMIZE_CONTROLLER and FLUX_CRDS from `scripts/flux/build.sh`): a missing one fails
//! the test.

mod util;

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use util::e2e::{free_port, kubectl, kubectl_status, DeleteOnDrop, Server, Services};
use util::{git_as as git, repo_root, run_env, write};

/// How long any one wait lasts at most.
const LIMIT: Duration = Duration::from_secs(120);

/// The API token of `driftguard serve`.
const TOKEN: &str = "flux-e2e-token-8c2d5e7a1f93";

/// Flux's field manager for what kustomize-controller applies.
const FLUX_MANAGER: &str = "kustomize-controller";

// ---------------------------------------------------------------- the controllers

/// A controller running as a child process, its output in a log file; killed when dropped.
struct Controller {
    name: &'static str,
    child: RefCell<Child>,
    log: PathBuf,
}

impl Controller {
    /// Starts `program` with `args`, in a scrubbed environment: the test cluster's kubeconfig,
    /// `RUNTIME_NAMESPACE` (the one namespace watched with `--watch-all-namespaces=false`), a
    /// home and temporary folder of its own, and no events address.
    fn start(
        name: &'static str,
        program: &Path,
        args: &[String],
        s: &Services,
        namespace: &str,
        dir: &Path,
    ) -> Controller {
        let home = dir.join(format!("{name}-home"));
        std::fs::create_dir_all(&home).expect("mkdir");
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).expect("log file");
        let child = Command::new(program)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("TMPDIR", &home)
            .env("KUBECONFIG", &s.kubeconfig)
            .env("RUNTIME_NAMESPACE", namespace)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log file"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("{name} ({}) starts: {e}", program.display()));
        Controller {
            name,
            child: RefCell::new(child),
            log,
        }
    }

    /// The last lines of its log, and how it ended if it did.
    fn tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(30);
        let state = match self.child.borrow_mut().try_wait() {
            Ok(Some(st)) => format!("EXITED ({st})"),
            _ => "running".to_owned(),
        };
        format!(
            "--- {} ({state}), last lines of {}:\n{}",
            self.name,
            self.log.display(),
            lines[from..].join("\n")
        )
    }

    fn exited(&self) -> bool {
        matches!(self.child.borrow_mut().try_wait(), Ok(Some(_)))
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        let child = self.child.get_mut();
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Both controllers.
struct Flux {
    source: Controller,
    kustomize: Controller,
}

impl Flux {
    /// Starts source-controller and kustomize-controller on the test cluster, watching only
    /// `namespace`, without leader election, every address on a free port of 127.0.0.1, the
    /// artifacts in `dir` (served and advertised on 127.0.0.1, where kustomize-controller
    /// fetches them).
    fn start(s: &Services, namespace: &str, dir: &Path) -> Flux {
        let source_bin = controller_binary("FLUX_SOURCE_CONTROLLER", "source-controller");
        let kustomize_bin = controller_binary("FLUX_KUSTOMIZE_CONTROLLER", "kustomize-controller");
        let addr = |port: u16| format!("127.0.0.1:{port}");
        let common = |metrics: u16, health: u16| {
            vec![
                "--watch-all-namespaces=false".to_owned(),
                "--enable-leader-election=false".to_owned(),
                format!("--metrics-addr={}", addr(metrics)),
                format!("--health-addr={}", addr(health)),
                "--log-encoding=console".to_owned(),
            ]
        };
        let storage = free_port();
        let artifacts = dir.join("artifacts");
        std::fs::create_dir_all(&artifacts).expect("mkdir");
        let mut source_args = common(free_port(), free_port());
        source_args.extend([
            format!("--storage-path={}", artifacts.display()),
            format!("--storage-addr={}", addr(storage)),
            format!("--storage-adv-addr={}", addr(storage)),
        ]);
        let mut kustomize_args = common(free_port(), free_port());
        // a Kustomization whose source is not ready yet is looked at again after this (30 s
        // by default); no remote bases: everything comes from the local Git server
        kustomize_args.extend([
            "--requeue-dependency=5s".to_owned(),
            "--no-remote-bases=true".to_owned(),
        ]);
        Flux {
            source: Controller::start(
                "source-controller",
                &source_bin,
                &source_args,
                s,
                namespace,
                dir,
            ),
            kustomize: Controller::start(
                "kustomize-controller",
                &kustomize_bin,
                &kustomize_args,
                s,
                namespace,
                dir,
            ),
        }
    }

    /// Both logs' last lines.
    fn tails(&self) -> String {
        format!("{}\n{}", self.source.tail(), self.kustomize.tail())
    }

    /// Fails the test when a controller has exited.
    fn check_alive(&self) {
        if self.source.exited() || self.kustomize.exited() {
            panic!("a Flux controller exited:\n{}", self.tails());
        }
    }
}

/// A controller's program, from the test services (`scripts/flux/build.sh`); a missing one
/// fails the test.
#[track_caller]
fn controller_binary(key: &str, name: &str) -> PathBuf {
    let path = PathBuf::from(driftguard_test_support::service(
        key,
        &format!("Flux's {name} (built by scripts/flux/build.sh)"),
    ));
    assert!(
        path.is_file(),
        "{key}={}: no such file (run scripts/flux/build.sh, or scripts/test-services.sh up)",
        path.display()
    );
    path
}

// ---------------------------------------------------------------- cluster helpers

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

/// `yaml` applied server-side (field manager `driftguard-e2e`).
fn apply(s: &Services, yaml: &str) {
    let mut child = Command::new(&s.kubectl)
        .args([
            "apply",
            "--server-side",
            "--field-manager=driftguard-e2e",
            "-f",
            "-",
        ])
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
        .write_all(yaml.as_bytes())
        .expect("write to kubectl");
    let out = child.wait_with_output().expect("kubectl ends");
    assert!(
        out.status.success(),
        "kubectl apply: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The CRDs the controllers need, Established: the vendored ones as `discover.rs` applies
/// them, then those of `$FLUX_CRDS` that are not vendored.
fn install_crds(s: &Services) {
    let vendored = repo_root().join("examples/discovery/crds");
    let modules = PathBuf::from(driftguard_test_support::service(
        "FLUX_CRDS",
        "the CRDs of Flux's controllers (copied by scripts/flux/build.sh)",
    ));
    let mut files = vec![vendored.display().to_string()];
    let mut names = Vec::new();
    let entries = std::fs::read_dir(&modules)
        .unwrap_or_else(|e| panic!("FLUX_CRDS={}: {e}", modules.display()));
    for entry in entries {
        let path = entry.expect("entry").path();
        let file = path.file_name().expect("a file name").to_owned();
        // `source.toolkit.fluxcd.io_helmcharts.yaml` is the CRD `helmcharts.source.toolkit.fluxcd.io`
        let Some((group, plural)) = file
            .to_str()
            .and_then(|f| f.strip_suffix(".yaml"))
            .and_then(|f| f.split_once('_'))
        else {
            continue;
        };
        names.push(format!("{plural}.{group}"));
        if !vendored.join(&file).exists() {
            files.push(path.display().to_string());
        }
    }
    for crd in [
        "helmrepositories",
        "helmcharts",
        "buckets",
        "ocirepositories",
    ] {
        assert!(
            names.contains(&format!("{crd}.source.toolkit.fluxcd.io")),
            "FLUX_CRDS={} has no {crd} CRD: {names:?}",
            modules.display()
        );
    }
    for file in &files {
        kubectl(
            s,
            &[
                "apply",
                "--server-side",
                "--force-conflicts",
                "--field-manager=driftguard-e2e",
                "-f",
                file,
            ],
        );
    }
    for crd in &names {
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

/// An object as JSON with its `managedFields`, `None` when it does not exist (yet).
fn get(s: &Services, kind: &str, namespace: &str, name: &str) -> Option<Value> {
    let (code, out, _) = kubectl_status(
        s,
        &[
            "get",
            kind,
            name,
            "-n",
            namespace,
            "-o",
            "json",
            "--show-managed-fields",
        ],
        &[],
    );
    (code == 0).then(|| serde_json::from_str(&out).expect("kubectl's JSON"))
}

/// The `Ready` condition of a Flux object: (status, reason, message).
fn ready(object: &Value) -> Option<(String, String, String)> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
            (s("status"), s("reason"), s("message"))
        })
}

/// Whether `manager` has applied (server-side) fields of `object`.
fn applied_by(object: &Value, manager: &str) -> bool {
    object["metadata"]["managedFields"]
        .as_array()
        .is_some_and(|m| {
            m.iter()
                .any(|e| e["manager"] == manager && e["operation"] == "Apply")
        })
}

/// Polls `check` every 250 ms until it answers `Some`, at most [`LIMIT`]; then fails with
/// `what` and `context()` (the controllers' log tails, the objects, the server's log).
#[track_caller]
fn wait_for<T>(
    what: &str,
    mut context: impl FnMut() -> String,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            eprintln!("[flux e2e] {what}: {:.1} s", start.elapsed().as_secs_f64());
            return v;
        }
        if start.elapsed() > LIMIT {
            panic!("{what}: not within {} s\n{}", LIMIT.as_secs(), context());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The last `n` lines of a text.
fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Removes the Flux objects' finalizers when dropped, before their namespace is deleted: the
/// controllers are gone by then, and nobody else would let the namespace go.
struct Unfinalize<'a> {
    s: &'a Services,
    namespace: String,
}

impl Drop for Unfinalize<'_> {
    fn drop(&mut self) {
        for object in ["kustomization/apps", "gitrepository/apps"] {
            let _ = kubectl_status(
                self.s,
                &[
                    "patch",
                    object,
                    "-n",
                    &self.namespace,
                    "--type=merge",
                    "-p",
                    r#"{"metadata":{"finalizers":null}}"#,
                ],
                &[],
            );
        }
    }
}

// ---------------------------------------------------------------- the repository

/// The folder Flux deploys: a ConfigMap and a Deployment, no `kustomization.yaml` (Flux
/// makes one of the folder's files, as DriftGuard does).
fn write_repository(repo: &Path) {
    write(
        &repo.join("deploy/web/configmap.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-config\ndata:\n  mode: normal\n  greeting: hello\n",
    );
    write(
        &repo.join("deploy/web/deployment.yaml"),
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
          ports:
            - containerPort: 80
",
    );
    write(&repo.join("README.md"), "Deployed by Flux.\n");
}

// ---------------------------------------------------------------- the API

/// The open drift of `env` on the Deployment `web`, if any.
fn web_drift(server: &Server, env: &str) -> Option<Value> {
    server
        .drifts(&format!("environment={env}&kind=Deployment&name=web"))
        .into_iter()
        .next()
}

/// One episode (`GET /api/v1/drifts/{episode}`).
fn episode(server: &Server, episode: &str) -> Option<Value> {
    server
        .json(&format!("/api/v1/drifts/{episode}"))
        .map(|v| v["drift"].clone())
}

// ---------------------------------------------------------------- the test

#[test]
fn flux_controllers_deploy_and_driftguard_sees_their_reverts() {
    // the cluster only (no MongoDB here)
    let (kubeconfig, kubectl_bin) = driftguard_test_support::cluster();
    let s = Services {
        kubeconfig: kubeconfig.display().to_string(),
        kubectl: kubectl_bin.display().to_string(),
        mongodb_uri: String::new(),
    };
    let run = run_id();
    let flux_ns = format!("dg-flux-{run}");
    let app_ns = format!("dg-flux-app-{run}");
    let env = format!("flux.{flux_ns}.apps");
    // dropped last to first: the controllers stop, the finalizers go, the namespaces go
    let _namespaces = DeleteOnDrop::namespaces(&s, &[flux_ns.as_str(), app_ns.as_str()]);
    for ns in [&flux_ns, &app_ns] {
        kubectl(&s, &["create", "namespace", ns]);
    }
    let _unfinalize = Unfinalize {
        s: &s,
        namespace: flux_ns.clone(),
    };
    install_crds(&s);

    // the repository, served over smart HTTP
    let tmp = tempfile::tempdir().expect("temp dir");
    let repo = tmp.path().join("repo");
    write_repository(&repo);
    git(&repo, &["init", "-q", "-b", "main"], "Alice Dev");
    git(&repo, &["add", "-A"], "Alice Dev");
    git(&repo, &["commit", "-q", "-m", "web"], "Alice Dev");
    let served = tmp.path().join("served");
    std::fs::create_dir_all(&served).expect("mkdir");
    git(
        tmp.path(),
        &[
            "clone",
            "-q",
            "--bare",
            &repo.display().to_string(),
            &served.join("apps.git").display().to_string(),
        ],
        "Alice Dev",
    );
    let url = format!(
        "http://127.0.0.1:{}/apps.git",
        util::git_http::serve(served)
    );

    // Flux, and its objects: a source and a Kustomization; the interval is long so that Flux
    // corrects a hand change when asked (below), not before DriftGuard has seen it
    let flux_dir = tmp.path().join("flux");
    std::fs::create_dir_all(&flux_dir).expect("mkdir");
    let flux = Flux::start(&s, &flux_ns, &flux_dir);
    apply(
        &s,
        &format!(
            "apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata:
  name: apps
  namespace: {flux_ns}
spec:
  interval: 10m
  url: {url}
  ref: {{branch: main}}
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: apps
  namespace: {flux_ns}
spec:
  interval: 10m
  retryInterval: 5s
  prune: true
  sourceRef: {{kind: GitRepository, name: apps}}
  path: ./deploy/web
  targetNamespace: {app_ns}
"
        ),
    );
    let objects = |s: &Services| {
        format!(
            "GitRepository: {:#}\nKustomization: {:#}",
            get(s, "gitrepository", &flux_ns, "apps").unwrap_or_default()["status"],
            get(s, "kustomization", &flux_ns, "apps").unwrap_or_default()["status"],
        )
    };
    let applied = wait_for(
        "Flux applies the folder (Kustomization Ready=True, both objects applied by kustomize-controller)",
        || format!("{}\n{}", objects(&s), flux.tails()),
        || {
            flux.check_alive();
            let k = get(&s, "kustomization", &flux_ns, "apps")?;
            let (status, _, _) = ready(&k)?;
            let cm = get(&s, "configmap", &app_ns, "web-config")?;
            let deploy = get(&s, "deployment", &app_ns, "web")?;
            (status == "True" && applied_by(&cm, FLUX_MANAGER) && applied_by(&deploy, FLUX_MANAGER))
                .then_some(k)
        },
    );
    let revision = applied["status"]["lastAppliedRevision"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        revision.starts_with("main@sha1:"),
        "Flux applied {revision:?}: {:#}",
        applied["status"]
    );

    // 1. a one-shot scan: the Kustomization is an environment, every object tracked, no drift
    let dg = tmp.path().join("driftguard");
    std::fs::create_dir_all(&dg).expect("mkdir");
    let discover = format!(
        "discover:\n  cluster: {{kubeconfig: {}}}\n  argocd: {{enabled: false}}\n  flux: {{namespaces: [{flux_ns}]}}\n",
        s.kubeconfig
    );
    write(&dg.join("driftguard.yaml"), &discover);
    // kubectl (kustomize) as the tests run it
    let path = format!(
        "{}:{}",
        Path::new(&s.kubectl)
            .parent()
            .expect("kubectl's folder")
            .display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let cli_env = [
        ("DRIFTGUARD_SECRET_KEY", "flux-e2e-key"),
        ("PATH", path.as_str()),
    ];
    let scan = run_env(
        &dg,
        &[
            "scan",
            "--discover",
            "--config",
            "driftguard.yaml",
            "-o",
            "json",
        ],
        &cli_env,
    );
    let v: Value = serde_json::from_str(&scan.stdout).unwrap_or_else(|e| {
        panic!(
            "scan --discover printed no JSON ({e}), exit {}:\n{}\n{}",
            scan.code, scan.stdout, scan.stderr
        )
    });
    let envs = v["environments"].as_array().expect("environments");
    let names: Vec<&str> = envs
        .iter()
        .filter_map(|e| e["environment"].as_str())
        .collect();
    assert_eq!(names, [env.as_str()], "{v:#}\n{}", scan.stderr);
    let e = &envs[0];
    assert_eq!(
        e["drifts"].as_array().map(Vec::len),
        Some(0),
        "DriftGuard sees drift on what Flux applied (false drift):\n{:#}\n{}",
        e["drifts"],
        scan.stderr
    );
    assert_eq!(scan.code, 0, "{v:#}\n{}", scan.stderr);
    let counts = &e["summary"]["counts"];
    assert_eq!(counts["tracked"], 2, "{v:#}");
    assert_eq!(counts["in_sync"], 2, "{v:#}");
    assert_eq!(e["errors"].as_array().map(Vec::len), Some(0), "{v:#}");
    assert_eq!(e["tool"]["tool"], "flux", "{v:#}");
    assert_eq!(e["tool"]["ready"], "True", "{v:#}");
    assert_eq!(e["tool"]["in_sync"], true, "{v:#}");
    // Flux's own Event of its first apply: the objects it created
    let created = e["tool"]["last_change"]["changes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        created.contains(&Value::from(format!("Deployment/{app_ns}/web created"))),
        "the change Flux last made, from its Events:\n{:#}",
        e["tool"]
    );
    assert!(
        !scan.stderr.contains("warning:"),
        "the Kustomization maps without a problem:\n{}",
        scan.stderr
    );

    // 2. serve: the same configuration, its own store
    write(
        &dg.join("serve.yaml"),
        &format!(
            "{discover}server:\n  tokenEnv: FLUX_E2E_TOKENS\n  pollInterval: 60s\nstore:\n  sqlite: {}\n",
            dg.join("serve/driftguard.db").display()
        ),
    );
    let mut server = util::e2e::spawn_server(
        &dg,
        &["--config", "serve.yaml"],
        &[
            ("FLUX_E2E_TOKENS", TOKEN),
            ("DRIFTGUARD_SECRET_KEY", "flux-e2e-key"),
            ("PATH", path.as_str()),
        ],
        free_port(),
        dg.join("serve.log"),
        TOKEN,
    );
    server.wait_ready(0.0, 1);
    assert_eq!(
        server.drifts(&format!("environment={env}&status=all")),
        Vec::<Value>::new(),
        "no drift before the hand change\n{}",
        last_lines(&server.log(), 40)
    );
    let context = |server: &Server, flux: &Flux| {
        format!(
            "drifts: {:?}\nDeployment: {:#}\n{}\n--- driftguard serve, last lines:\n{}\n{}",
            server.drifts(&format!("environment={env}&status=all")),
            get(&s, "deployment", &app_ns, "web").unwrap_or_default()["spec"],
            objects(&s),
            last_lines(&server.log(), 40),
            flux.tails()
        )
    };

    // a hand change, Flux asked to reconcile, the drift resolved naming Flux; twice
    let mut first_episode = None;
    let mut last_correction: Option<(Value, Value)> = None;
    for round in 0..2_u64 {
        kubectl(
            &s,
            &["scale", "deployment", "web", "-n", &app_ns, "--replicas=5"],
        );
        let open = wait_for(
            &format!("round {round}: the hand change is an open forward drift on spec.replicas"),
            || context(&server, &flux),
            || {
                web_drift(&server, &env).filter(|d| {
                    d["status"] == "open"
                        && d["direction"] == "forward"
                        && d["paths"]
                            .as_array()
                            .is_some_and(|p| p.iter().any(|p| p == "spec.replicas"))
                })
            },
        );
        let id = open["episode"].as_str().expect("episode").to_owned();
        assert_eq!(open["drift"], "modified", "{open:#}");
        match &first_episode {
            None => {
                assert_eq!(open["recurrences"], 0, "a first episode: {open:#}");
                first_episode = Some(id.clone());
            }
            Some(first) => {
                assert_eq!(
                    &id, first,
                    "the change Flux reverted came back: the same episode, not a new one\n{open:#}"
                );
                assert_eq!(open["recurrences"], round, "{open:#}");
            }
        }

        // what `flux reconcile kustomization apps` does
        let requested = format!("driftguard-e2e-{run}-{round}");
        kubectl(
            &s,
            &[
                "annotate",
                "--overwrite",
                "kustomization/apps",
                "-n",
                &flux_ns,
                &format!("reconcile.fluxcd.io/requestedAt={requested}"),
            ],
        );
        wait_for(
            &format!("round {round}: Flux handles the reconcile request and puts 2 replicas back"),
            || context(&server, &flux),
            || {
                flux.check_alive();
                let k = get(&s, "kustomization", &flux_ns, "apps")?;
                let d = get(&s, "deployment", &app_ns, "web")?;
                (k["status"]["lastHandledReconcileAt"] == requested.as_str()
                    && d["spec"]["replicas"] == 2)
                    .then_some(())
            },
        );
        let resolved = wait_for(
            &format!("round {round}: the drift resolves as reverted"),
            || context(&server, &flux),
            || episode(&server, &id).filter(|d| d["status"] == "resolved"),
        );
        assert_eq!(resolved["resolution"], "reverted", "{resolved:#}");
        assert_eq!(
            resolved["resolved_by"], FLUX_MANAGER,
            "the drift names who put the fields back\n{resolved:#}"
        );
        assert_eq!(resolved["recurrences"], round, "{resolved:#}");
        // and Flux's own word for it, from its Events: the Deployment it configured
        let correction = format!("Deployment/{app_ns}/web configured");
        let seen = wait_for(
            &format!("round {round}: Flux's Event of the correction is the tool's last change"),
            || context(&server, &flux),
            || {
                let t = server.json(&format!("/api/v1/environments/{env}"))?["tool"].clone();
                let c = &t["last_change"];
                let changes = c["changes"].as_array()?;
                // this round's: a new Event, or the same one again (a later time, a count)
                let stamp = (c["at"].clone(), c["count"].clone());
                (changes.contains(&Value::from(correction.as_str()))
                    && Some(&stamp) != last_correction.as_ref())
                .then_some(stamp)
            },
        );
        last_correction = Some(seen);
    }

    // one episode in all, nothing else drifted on the way; its events say it came back
    let first = first_episode.expect("an episode");
    let all = server.drifts(&format!("environment={env}&status=all"));
    let episodes: BTreeSet<&str> = all.iter().filter_map(|d| d["episode"].as_str()).collect();
    assert_eq!(episodes, BTreeSet::from([first.as_str()]), "{all:#?}");
    let events: Vec<String> = server
        .json(&format!("/api/v1/events?environment={env}"))
        .and_then(|v| v["items"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter(|e| e["drift"]["episode"] == first.as_str())
        .filter_map(|e| e["event"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        events,
        ["detected", "resolved", "recurred", "resolved"],
        "the episode's events"
    );
    assert!(
        !server
            .log()
            .lines()
            .any(|l| l.contains("environment changed") && l.contains(&env)),
        "a reconcile request changes no environment:\n{}",
        last_lines(&server.log(), 60)
    );
}
