//! What a renderer's program gets of DriftGuard's process: a scrubbed environment (no
//! `KUBECONFIG`, no cloud credentials; `PATH`, `HOME`, what the renderer sets on purpose and
//! what it is told to pass on) and, where the OS allows it (unprivileged network namespaces,
//! `driftguard_sources::process::network_isolation`), no network: a command reaching for a
//! listener on 127.0.0.1 does not reach it, unless the renderer allows the network. One test
//! sets variables of this process: the other does not read them.

use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use driftguard_core::error::chain;
use driftguard_core::ports::{DesiredSet, GitSource, SourceError};
use driftguard_core::render::HelmOptions;
use driftguard_sources::files::DirSource;
use driftguard_sources::process::network_isolation;
use driftguard_sources::render::{CommandRenderer, HelmRenderer, Renderer};

/// Writes an executable script.
fn script(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("#!/bin/sh\n{body}")).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// A script printing a ConfigMap `seen` whose data are the variables it was given.
const PRINT_ENV: &str = r#"cat <<EOF
apiVersion: v1
kind: ConfigMap
metadata:
  name: seen
  namespace: gen
data:
  kubeconfig: "${KUBECONFIG:-unset}"
  aws: "${AWS_SECRET_ACCESS_KEY:-unset}"
  passed: "${DRIFTGUARD_TEST_PASSED:-unset}"
  path: "${PATH:+set}"
  home: "${HOME:+set}"
  helmCache: "${HELM_CACHE_HOME:-unset}"
  driftguardPath: "${DRIFTGUARD_PATH-unset}"
EOF
"#;

fn seen(set: &DesiredSet, key: &str) -> String {
    let cm = set
        .objects
        .iter()
        .find(|m| m.object.meta().name == "seen")
        .expect("the ConfigMap seen");
    cm.object.value()["data"][key]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renderers_get_a_scrubbed_environment() {
    std::env::set_var("KUBECONFIG", "/leaked/kubeconfig");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "leaked-secret");
    std::env::set_var("DRIFTGUARD_TEST_PASSED", "passed-on");
    std::env::set_var("HELM_CACHE_HOME", "/leaked/helm-cache");
    let tmp = tempfile::tempdir().expect("temp dir");
    script(&tmp.path().join("gen.sh"), PRINT_ENV);

    // a command: only the allow-list, what it is told to pass on, DRIFTGUARD_PATH
    let mut r = CommandRenderer::new(["./gen.sh"]);
    r.timeout = Duration::from_secs(20);
    let set = DirSource::new(tmp.path())
        .with_renderer(Renderer::Command(r.clone()))
        .load()
        .await
        .expect("renders");
    assert!(set.errors.is_empty(), "{:?}", set.errors);
    assert_eq!(seen(&set, "kubeconfig"), "unset");
    assert_eq!(seen(&set, "aws"), "unset");
    assert_eq!(seen(&set, "passed"), "unset");
    assert_eq!(seen(&set, "path"), "set");
    assert_eq!(seen(&set, "home"), "set");
    assert_eq!(seen(&set, "helmCache"), "unset");
    assert_eq!(seen(&set, "driftguardPath"), "");
    r.pass_env = vec!["DRIFTGUARD_TEST_PASSED".into()];
    let set = DirSource::new(tmp.path())
        .with_renderer(Renderer::Command(r))
        .load()
        .await
        .expect("renders");
    assert_eq!(seen(&set, "passed"), "passed-on");
    assert_eq!(seen(&set, "kubeconfig"), "unset");

    // helm (a stand-in printing what it was given): its homes are the scratch folder's,
    // never the user's, and no KUBECONFIG
    let chart = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        chart.path().join("Chart.yaml"),
        "apiVersion: v2\nname: seen\nversion: 0.1.0\n",
    )
    .expect("write");
    let helm = tmp.path().join("helm");
    script(&helm, PRINT_ENV);
    let mut h = HelmRenderer::new(HelmOptions::new("seen", "gen")).binary(&helm);
    h.timeout = Duration::from_secs(20);
    let set = DirSource::new(chart.path())
        .with_renderer(Renderer::Helm(h))
        .load()
        .await
        .unwrap_or_else(|e| panic!("renders: {}", chain(&e)));
    assert!(set.errors.is_empty(), "{:?}", set.errors);
    assert_eq!(seen(&set, "kubeconfig"), "unset");
    assert_eq!(seen(&set, "aws"), "unset");
    assert_eq!(seen(&set, "path"), "set");
    let cache = seen(&set, "helmCache");
    assert!(
        cache.ends_with("/helm-cache") && !cache.starts_with("/leaked"),
        "{cache}"
    );
}

async fn load(dir: &Path, r: CommandRenderer) -> Result<DesiredSet, SourceError> {
    DirSource::new(dir)
        .with_renderer(Renderer::Command(r))
        .load()
        .await
}

/// A listener on 127.0.0.1 that accepts and never answers; counts its connections.
fn silent_listener() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let port = listener.local_addr().expect("address").port();
    let count = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&count);
    std::thread::spawn(move || {
        let mut open = Vec::new();
        for stream in listener.incoming().flatten() {
            c.fetch_add(1, Ordering::SeqCst);
            open.push(stream);
        }
    });
    (port, count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renderers_have_no_network_where_the_os_allows_it() {
    let git = driftguard_test_support::program("git", &["--version"]);
    let (port, connections) = silent_listener();
    let tmp = tempfile::tempdir().expect("temp dir");
    // reaches for the listener (git over HTTP), then prints an object whatever happened
    script(
        &tmp.path().join("gen.sh"),
        &format!(
            "'{}' ls-remote http://127.0.0.1:{port}/x.git >/dev/null 2>&1\n{}",
            git.display(),
            "printf 'apiVersion: v1\\nkind: ConfigMap\\nmetadata:\\n  name: gen\\n  namespace: gen\\n'\n"
        ),
    );
    let mut r = CommandRenderer::new(["./gen.sh"]);
    r.timeout = Duration::from_secs(3);
    match network_isolation() {
        Some(prefix) => {
            let set = load(tmp.path(), r.clone())
                .await
                .unwrap_or_else(|e| panic!("renders without network: {}", chain(&e)));
            assert_eq!(set.objects.len(), 1);
            assert_eq!(
                connections.load(Ordering::SeqCst),
                0,
                "the command reached 127.0.0.1:{port} although run through {prefix:?}"
            );
        }
        None => eprintln!(
            "no unprivileged network namespaces here: renderers run with the network (documented)"
        ),
    }
    // allowed, the command reaches the listener, which never answers: stopped at the timeout
    r.allow_network = true;
    let e = load(tmp.path(), r)
        .await
        .expect_err("the silent listener holds it");
    assert!(
        chain(&e).contains("did not finish within 3s (it was stopped)"),
        "{}",
        chain(&e)
    );
    assert!(connections.load(Ordering::SeqCst) >= 1);
}
