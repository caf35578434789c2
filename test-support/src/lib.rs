//! # driftguard-test-support
//!
//! The one rule for tests that need a real service (the Kubernetes API server, the
//! MongoDB-compatible server, `git`, `helm`, ...): **they run against the real service or
//! fail.** There is no silent skip and no substitute (an in-memory store standing in for
//! MongoDB, say). The README's test command (`scripts/test.sh`) starts every service and
//! writes their addresses to `$DRIFTGUARD_RUN/services.env`; a test finds them through
//! [`service`], which reads the process environment first and that file second, and panics
//! with a message naming the script to run when a value is missing.
//!
//! The values tests build again and again (drifts, field diffs, events, records,
//! Deployments, ConfigMaps) come from one set of builders, [`build`].
//!
//! Only the test code of the workspace depends on this crate (as a dev-dependency).

/// The builders of drifts, field diffs, events, records and manifests: the core's
/// `driftguard_core::testkit`, re-exported so that every crate's tests use the same ones (the
/// core's own tests use it in place, as they cannot depend on this crate).
///
/// ```
/// use driftguard_test_support::build::{deployment, drift};
///
/// let d = drift().namespace("pay").name("api").build();
/// assert_eq!(d.id.to_string(), "prod:Deployment.apps/pay/api");
/// let file = deployment("api").replicas(2).selector().image("api:1").yaml();
/// assert!(file.starts_with("apiVersion: apps/v1\nkind: Deployment\n"));
/// ```
pub mod build {
    pub use driftguard_core::testkit::*;
}

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where the test services keep their run-time state (`$DRIFTGUARD_RUN`, default
/// `/tmp/driftguard-test`).
pub fn run_dir() -> PathBuf {
    PathBuf::from(std::env::var("DRIFTGUARD_RUN").unwrap_or_else(|_| "/tmp/driftguard-test".into()))
}

/// A value of `services.env` (`export KEY=value` lines) in [`run_dir`].
fn from_services_env(key: &str) -> Option<String> {
    let text = std::fs::read_to_string(run_dir().join("services.env")).ok()?;
    text.lines()
        .map(|l| l.trim().trim_start_matches("export ").trim())
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .map(|v| v.trim_matches('"').to_owned())
        .filter(|v| !v.is_empty())
}

/// A setting of the test services, e.g. `MONGODB_URI`, `KUBECONFIG`, `KUBECTL`: from the
/// environment, else from `$DRIFTGUARD_RUN/services.env`. `None` when neither has it.
pub fn lookup(key: &str) -> Option<String> {
    std::env::var(key)
        .ok()
        .filter(|v| !v.is_empty())
        .or_else(|| from_services_env(key))
}

/// Like [`lookup`], but a missing value fails the test, naming `what` needs it and how to
/// start it.
#[track_caller]
pub fn service(key: &str, what: &str) -> String {
    lookup(key).unwrap_or_else(|| {
        panic!(
            "{what} is required: {key} is not set and {} does not name it \
             (start the test services with scripts/test-services.sh up, or run scripts/test.sh)",
            run_dir().join("services.env").display()
        )
    })
}

/// The MongoDB test server's URI.
#[track_caller]
pub fn mongodb_uri() -> String {
    service("MONGODB_URI", "the MongoDB test server (SecantusDB)")
}

/// The test cluster: its kubeconfig and its `kubectl` (the server's version). Fails
/// the test when the cluster is not configured or does not answer `/readyz`.
#[track_caller]
pub fn cluster() -> (PathBuf, PathBuf) {
    let kubeconfig = PathBuf::from(service(
        "KUBECONFIG",
        "the test cluster (kube-apiserver 1.37.2, or KUBE_VERSION's)",
    ));
    let kubectl = PathBuf::from(service("KUBECTL", "kubectl of the test cluster"));
    let ready = Command::new(&kubectl)
        .env("KUBECONFIG", &kubeconfig)
        .args(["get", "--raw", "/readyz"])
        .output();
    match ready {
        Ok(o) if o.status.success() => (kubeconfig, kubectl),
        Ok(o) => panic!(
            "the test cluster does not answer /readyz ({}): restart it with scripts/test-services.sh up",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => panic!("cannot run {}: {e}", kubectl.display()),
    }
}

/// A program the tests need (`git`, `helm`, `terraform`, ...): the path, checked to run with
/// `args` (e.g. `["--version"]`). Fails the test when it is missing.
#[track_caller]
pub fn program(name: &str, args: &[&str]) -> PathBuf {
    let path = Path::new(name).to_path_buf();
    match Command::new(&path).args(args).output() {
        Ok(o) if o.status.success() => path,
        Ok(o) => panic!(
            "`{name} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => panic!("{name} is required by this test and cannot run: {e}"),
    }
}

/// Runs `git` in `dir` as `author` (e-mail `<first name>@acme.example`), without system or
/// global configuration; its standard output, trimmed. A missing git or a failing command
/// fails the test with git's message.
#[track_caller]
pub fn git_as(dir: &Path, args: &[&str], author: &str) -> String {
    static GIT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let git = GIT.get_or_init(|| program("git", &["--version"]));
    let email = format!(
        "{}@acme.example",
        author.split(' ').next().unwrap_or("x").to_lowercase()
    );
    let out = Command::new(git)
        .args(args)
        .current_dir(dir)
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env("GIT_AUTHOR_NAME", author)
        .env("GIT_AUTHOR_EMAIL", &email)
        .env("GIT_COMMITTER_NAME", author)
        .env("GIT_COMMITTER_EMAIL", &email)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A kubeconfig for the ServiceAccount `ns/sa`, written into `dir`: the `admin` kubeconfig with
/// the account's token instead of the admin's. The token is read through kubectl's template
/// and never printed. Makes the account a token secret (`<sa>-token`) and waits up to 20 s for
/// the token controller to fill it.
#[track_caller]
pub fn service_account_kubeconfig(
    kubectl: &Path,
    admin: &Path,
    ns: &str,
    sa: &str,
    dir: &Path,
) -> PathBuf {
    let run = |args: &[&str]| {
        let out = Command::new(kubectl)
            .args(args)
            .env("KUBECONFIG", admin)
            .output()
            .expect("kubectl runs");
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    // Since Kubernetes 1.24 the token controller no longer makes a secret for every account:
    // ask for one (a `service-account-token` secret naming the account), as on any version.
    let secret = format!("{sa}-token");
    let manifest = dir.join(format!("{sa}-token.yaml"));
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {secret}\n  namespace: {ns}\n  \
             annotations:\n    kubernetes.io/service-account.name: {sa}\n\
             type: kubernetes.io/service-account-token\n"
        ),
    )
    .expect("write token secret manifest");
    run(&["apply", "-f", manifest.to_str().expect("utf-8 path")]);
    let started = Instant::now();
    let token = loop {
        let token = run(&[
            "-n",
            ns,
            "get",
            "secret",
            &secret,
            "-o",
            "go-template={{if .data.token}}{{.data.token | base64decode}}{{end}}",
        ]);
        if !token.is_empty() {
            break token;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no token in secret {ns}/{secret} within 20 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let replaced: Vec<String> = std::fs::read_to_string(admin)
        .expect("kubeconfig")
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("token:") {
                let indent = &l[..l.len() - l.trim_start().len()];
                format!("{indent}token: {token}")
            } else {
                l.to_owned()
            }
        })
        .collect();
    let path = dir.join(format!("{sa}.kubeconfig"));
    std::fs::write(&path, replaced.join("\n") + "\n").expect("write kubeconfig");
    path
}

/// The helm binary the tests run (v3.18.0, installed by `scripts/helm/install.sh` into
/// `$DRIFTGUARD_CACHE/helm/`): `HELM` from the environment or `services.env`, checked to run
/// (`helm version`). A missing or broken helm fails the test.
#[track_caller]
pub fn helm() -> PathBuf {
    let path = service("HELM", "helm (scripts/helm/install.sh)");
    program(&path, &["version", "--short"])
}

/// A kubectl whose `kubectl kustomize --enable-helm` renders kustomizations with `helmCharts:`
/// (v1.33, installed with helm by `scripts/helm/install.sh`; the test cluster's kubectl 1.20
/// cannot). Only a renderer: never pointed at the test cluster. Missing fails the test.
#[track_caller]
pub fn helm_kubectl() -> PathBuf {
    let path = service(
        "HELM_KUBECTL",
        "kubectl with kustomize --enable-helm (scripts/helm/install.sh)",
    );
    program(&path, &["version", "--client"])
}

/// Schemathesis's `st` (PyPI, installed by `scripts/schemathesis/install.sh` into a venv under
/// [`cache_dir`]): `SCHEMATHESIS` from the environment or `services.env`, else that venv; checked
/// to run (`st --version`). Missing fails the test.
#[track_caller]
pub fn schemathesis() -> PathBuf {
    let path = lookup("SCHEMATHESIS").unwrap_or_else(|| {
        cache_dir()
            .join("schemathesis-venv/bin/st")
            .display()
            .to_string()
    });
    program(&path, &["--version"])
}

/// Where the test services' downloads and builds are kept (`$DRIFTGUARD_CACHE`, from the
/// environment or `services.env`; default `~/.cache/driftguard`).
pub fn cache_dir() -> PathBuf {
    lookup("DRIFTGUARD_CACHE").map_or_else(
        || {
            PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into()))
                .join(".cache/driftguard")
        },
        PathBuf::from,
    )
}

/// The SecantusDB server binary, for a test that runs a MongoDB-compatible server of its own
/// (to stop and start it). Fails the test when it is not installed.
#[track_caller]
pub fn secantusd() -> PathBuf {
    let bin = cache_dir().join("secantus-venv/bin/secantusd-py");
    if !bin.exists() {
        panic!(
            "{} is missing: install SecantusDB with scripts/mongo/start.sh \
             (or scripts/test-services.sh up)",
            bin.display()
        );
    }
    bin
}

/// One HTTP/1.1 request as a fake server on 127.0.0.1 reads it (the fake forges and receivers
/// of the tests): the request line, the headers (names in lower case) and the body of
/// `Content-Length` bytes.
#[derive(Clone, Debug)]
pub struct HttpRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The request target: path and query.
    pub target: String,
    /// Headers by lower-case name.
    pub headers: std::collections::BTreeMap<String, String>,
    /// The body.
    pub body: Vec<u8>,
}

/// Reads one request from `r`; `None` when the connection ends before it is whole.
pub fn read_http_request(r: &mut impl std::io::BufRead) -> Option<HttpRequest> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let target = parts.next().unwrap_or_default().to_owned();
    let mut headers = std::collections::BTreeMap::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).ok()?;
    Some(HttpRequest {
        method,
        target,
        headers,
        body,
    })
}

/// A port nothing listens on (bound, then let go).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}

/// A SecantusDB of the test's own, on a free port, with its data in a folder, so that a test
/// can kill it and start it again on the same data (the shared test server is never stopped).
#[derive(Debug)]
pub struct MongoServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl MongoServer {
    /// A server on a free port, not started yet (nothing listens there).
    pub fn stopped(dir: PathBuf) -> Self {
        MongoServer {
            port: free_port(),
            dir,
            child: None,
        }
    }

    /// A server started on a free port, keeping its data in `dir`.
    #[track_caller]
    pub fn start(dir: PathBuf) -> Self {
        let mut s = Self::stopped(dir);
        s.spawn();
        s
    }

    /// Starts it (again, on the same port and data); waits until it accepts connections.
    #[track_caller]
    pub fn spawn(&mut self) {
        let child = Command::new(secantusd())
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .arg("--storage-path")
            .arg(&self.dir)
            .args(["--log-level", "WARNING"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start secantusd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "secantusd did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills it (SIGKILL, like a crash).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Its connection string.
    pub fn uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}/?directConnection=true", self.port)
    }
}

impl Drop for MongoServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Terraform as the tests run it: the binary (1.11.4 on the machine image) and a CLI
/// configuration whose `provider_installation` is the image's filesystem mirror of the AWS
/// provider 5.100.0 (both found by `scripts/terraform/setup.sh`). No network.
#[derive(Clone, Debug)]
pub struct Terraform {
    /// The terraform binary.
    pub bin: PathBuf,
    /// The CLI configuration (`TF_CLI_CONFIG_FILE`).
    pub cli_config: PathBuf,
}

/// Terraform and its provider mirror: `TERRAFORM` and `TF_CLI_CONFIG_FILE` from the
/// environment or `services.env`. A missing binary or mirror fails the test, naming it.
#[track_caller]
pub fn terraform() -> Terraform {
    let bin = service(
        "TERRAFORM",
        "terraform (1.11, on PATH; found by scripts/terraform/setup.sh)",
    );
    let bin = program(&bin, &["version"]);
    let cli_config = PathBuf::from(service(
        "TF_CLI_CONFIG_FILE",
        "the AWS provider's filesystem mirror (registry.terraform.io/hashicorp/aws, found by \
         scripts/terraform/setup.sh)",
    ));
    let aws = mirror_in(&cli_config).join("registry.terraform.io/hashicorp/aws");
    assert!(
        aws.is_dir(),
        "the AWS provider mirror {} is missing (scripts/terraform/setup.sh)",
        aws.display()
    );
    Terraform { bin, cli_config }
}

impl Terraform {
    /// Runs this binary as the test's user would: in `dir`, with the user's own data folder
    /// `data` (never DriftGuard's), the provider mirror's CLI configuration, no checkpoint
    /// calls, and moto's test credentials unless `env` gives others. Fails the test with its
    /// output when it fails; its standard output.
    #[track_caller]
    pub fn user<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(
        &self,
        dir: &Path,
        data: &Path,
        args: &[S],
        env: &[(&str, &str)],
    ) -> String {
        let out = Command::new(&self.bin)
            .args(args)
            .current_dir(dir)
            .env("TF_CLI_CONFIG_FILE", &self.cli_config)
            .env("TF_DATA_DIR", data)
            .env("CHECKPOINT_DISABLE", "1")
            .env("TF_IN_AUTOMATION", "1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .envs(env.iter().copied())
            .output()
            .unwrap_or_else(|e| panic!("{} does not run: {e}", self.bin.display()));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{} {args:?}: {stdout}{}",
            self.bin.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// The user's `init` (a local state at `state`) and `apply` (with `var_file`) of the code
    /// in `dir`, with their own data folder `data`, as [`Terraform::user`] runs them.
    #[track_caller]
    pub fn user_apply(&self, dir: &Path, data: &Path, state: &Path, var_file: &Path) {
        let backend = format!("-backend-config=path={}", state.display());
        self.user(
            dir,
            data,
            &["init", "-input=false", "-no-color", &backend],
            &[],
        );
        let vars = format!("-var-file={}", var_file.display());
        self.user(
            dir,
            data,
            &["apply", "-auto-approve", "-input=false", "-no-color", &vars],
            &[],
        );
    }
}

/// The folder of the filesystem mirror a CLI configuration names (its `path = "..."`).
#[track_caller]
fn mirror_in(cli_config: &Path) -> PathBuf {
    let text = std::fs::read_to_string(cli_config)
        .unwrap_or_else(|e| panic!("the CLI configuration {}: {e}", cli_config.display()));
    let mirror = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("path"))
        .map(|p| {
            p.trim()
                .trim_start_matches('=')
                .trim()
                .trim_matches('"')
                .to_owned()
        })
        .unwrap_or_default();
    PathBuf::from(mirror)
}

/// OpenTofu as the tests run it: `tofu` built from the Go module proxy and a CLI configuration
/// offering the same provider mirror under OpenTofu's registry host name (both by
/// `scripts/opentofu/build.sh`, run by `scripts/test-services.sh up`): `TOFU` and
/// `TOFU_CLI_CONFIG_FILE` from the environment or `services.env`. A missing one fails the test,
/// naming it: in CI OpenTofu is a service like the others.
#[track_caller]
pub fn tofu() -> Terraform {
    let bin = service(
        "TOFU",
        "OpenTofu's tofu (built by scripts/opentofu/build.sh)",
    );
    let bin = program(&bin, &["version"]);
    let cli_config = PathBuf::from(service(
        "TOFU_CLI_CONFIG_FILE",
        "the provider mirror for OpenTofu (registry.opentofu.org/hashicorp/aws, written by \
         scripts/opentofu/build.sh)",
    ));
    let aws = mirror_in(&cli_config).join("registry.opentofu.org/hashicorp/aws");
    assert!(
        aws.is_dir(),
        "the AWS provider mirror for OpenTofu {} is missing (scripts/opentofu/build.sh)",
        aws.display()
    );
    Terraform { bin, cli_config }
}

/// The Python of moto's venv (`scripts/moto/install.sh`), whose boto3 is the tests' hand in
/// the AWS console. Missing fails the test.
#[track_caller]
pub fn moto_python() -> PathBuf {
    let venv = PathBuf::from(service(
        "MOTO_VENV",
        "moto's server (scripts/moto/install.sh)",
    ));
    let py = venv.join("bin/python");
    program(&py.display().to_string(), &["-c", "import boto3, moto"])
}

/// A moto server of the test's own (the AWS API on a free 127.0.0.1 port, empty), stopped
/// when dropped: tests never share an account.
#[derive(Debug)]
pub struct MotoServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    child: Child,
}

impl MotoServer {
    /// Starts one and waits until it answers.
    #[track_caller]
    pub fn start() -> Self {
        let py = moto_python();
        let server = py.with_file_name("moto_server");
        let port = free_port();
        let child = Command::new(&server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", server.display()));
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto's server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        MotoServer { port, child }
    }

    /// Its URL (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Runs a Python script with boto3 against this server (credentials and region set; the
    /// script reads `ENDPOINT`); fails the test when it fails. Returns its standard output.
    #[track_caller]
    pub fn boto3(&self, script: &str) -> String {
        let out = Command::new(moto_python())
            .arg("-c")
            .arg(script)
            .env("ENDPOINT", self.url())
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .output()
            .expect("run boto3");
        assert!(
            out.status.success(),
            "boto3 script failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fake of AWS CloudTrail's `LookupEvents` of the test's own (`test-support/cloudtrail_fake.py`,
/// run with moto's Python: moto's server does not answer `LookupEvents`), on a free 127.0.0.1
/// port, stopped when dropped. It checks each request's AWS Signature Version 4 with botocore's
/// own signer and the secret given here (a mismatch is a 403 `InvalidSignatureException`),
/// serves the events of [`CloudTrailFake::set_events`] for the asked `ResourceName` from
/// `StartTime` on, two a page, and logs every request ([`CloudTrailFake::requests`]).
#[derive(Debug)]
pub struct CloudTrailFake {
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: PathBuf,
    child: Child,
}

impl CloudTrailFake {
    /// Starts one that accepts requests signed with `access_key` and `secret` for `region`,
    /// with no events.
    #[track_caller]
    pub fn start(access_key: &str, secret: &str, region: &str) -> Self {
        use std::io::BufRead;
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "driftguard-cloudtrail-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("a folder for the fake");
        std::fs::write(dir.join("events.json"), "[]").expect("written");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("cloudtrail_fake.py");
        let mut child = Command::new(moto_python())
            .arg(&script)
            .args([
                "--access-key",
                access_key,
                "--secret",
                secret,
                "--region",
                region,
            ])
            .arg("--events")
            .arg(dir.join("events.json"))
            .arg("--log")
            .arg(dir.join("requests.jsonl"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", script.display()));
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped");
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the fake's first line");
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the CloudTrail fake did not start: {line:?}"));
        CloudTrailFake { port, dir, child }
    }

    /// Its URL (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Replaces the events it serves: a JSON list of `{EventId, EventName, EventTime (epoch
    /// seconds), ResourceName, Username?, ReadOnly?, CloudTrailEvent? (an object)}`.
    pub fn set_events(&self, json: &str) {
        let tmp = self.dir.join("events.json.new");
        std::fs::write(&tmp, json).expect("written");
        std::fs::rename(&tmp, self.dir.join("events.json")).expect("renamed");
    }

    /// The requests received so far, one JSON line each (`time`, `target`, `body`, `ok`,
    /// `why`).
    pub fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("requests.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for CloudTrailFake {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The Python of the venv holding the official MCP Python SDK (`mcp` on PyPI), the real MCP
/// client the MCP tests drive DriftGuard with: `MCP_PYTHON` (written to `services.env` by
/// `scripts/test-services.sh up`, which runs `scripts/mcp-client/install.sh`), else the venv
/// that script keeps under [`cache_dir`]. Fails the test when the SDK does not import.
#[track_caller]
pub fn mcp_python() -> PathBuf {
    let python =
        lookup("MCP_PYTHON").map_or_else(|| cache_dir().join("mcp-venv/bin/python"), PathBuf::from);
    match Command::new(&python)
        .args([
            "-c",
            "import mcp.client.session, mcp.client.stdio, mcp.client.streamable_http",
        ])
        .output()
    {
        Ok(o) if o.status.success() => python,
        Ok(o) => panic!(
            "the MCP Python SDK does not import with {} ({}): install it with \
             scripts/mcp-client/install.sh (scripts/test-services.sh up runs it)",
            python.display(),
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => panic!(
            "the MCP Python SDK is required: cannot run {} ({e}); install it with \
             scripts/mcp-client/install.sh (scripts/test-services.sh up runs it)",
            python.display()
        ),
    }
}
