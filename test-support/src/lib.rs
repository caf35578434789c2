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
//! Only the test code of the workspace depends on this crate (as a dev-dependency).

use std::path::{Path, PathBuf};
use std::process::Command;

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

/// The test cluster: its kubeconfig and its `kubectl` (v1.20, matching the server). Fails
/// the test when the cluster is not configured or does not answer `/readyz`.
#[track_caller]
pub fn cluster() -> (PathBuf, PathBuf) {
    let kubeconfig = PathBuf::from(service(
        "KUBECONFIG",
        "the test cluster (kube-apiserver 1.20)",
    ));
    let kubectl = PathBuf::from(service("KUBECTL", "kubectl 1.20 of the test cluster"));
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
