//! A kustomization whose rendering never ends (a remote base that never answers) or never
//! stops printing is stopped at its limits: a clear error in bounded time, the rest of the
//! environment still read.

mod git_support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use driftguard_core::ports::{DesiredSet, GitSource};
use driftguard_sources::files::DirSource;
use driftguard_sources::git::{GitRepoSource, GitSourceConfig, KustomizeLimits};
use git_support::*;

/// A fake `kustomize` (its name starts with `kustomize`, so it is run as `kustomize build
/// DIR`) running `body`.
fn fake_kustomize(dir: &Path, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("kustomize-fake");
    std::fs::write(&bin, format!("#!/bin/sh\n{body}\n")).expect("write the fake");
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    bin
}

/// Never answers: waits on a child (which holds the output pipe) like a `git` fetch of a
/// remote base that hangs.
const HANG: &str = "sleep 600 &\nwait";
/// Prints objects without end.
const FLOOD: &str = "yes 'apiVersion: v1'";

fn limits(timeout_ms: u64, max_output: u64) -> KustomizeLimits {
    KustomizeLimits {
        timeout: Duration::from_millis(timeout_ms),
        max_output,
    }
}

fn folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("app")).expect("mkdir");
    std::fs::write(
        dir.path().join("app/kustomization.yaml"),
        "resources:\n- https://example.invalid/never/answers\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("plain.yaml"),
        configmap("plain", "shop", "1"),
    )
    .expect("write");
    dir
}

/// The one error is the kustomization's, saying `what`; the plain file is still read.
fn assert_stopped(set: &DesiredSet, what: &str) {
    assert_eq!(set.objects.len(), 1, "the plain file is read");
    assert_eq!(set.errors.len(), 1, "{:?}", set.errors);
    let e = &set.errors[0];
    assert_eq!(e.file, "app/kustomization.yaml");
    assert!(e.message.contains(what), "{}", e.message);
}

#[tokio::test]
async fn a_folder_kustomization_that_never_ends_is_stopped() {
    let tools = tempfile::tempdir().expect("temp dir");
    let bin = fake_kustomize(tools.path(), HANG);
    let dir = folder();
    let started = Instant::now();
    let set = DirSource::new(dir.path())
        .with_kustomize_bin(&bin)
        .with_kustomize_limits(limits(500, 1024 * 1024))
        .load()
        .await
        .expect("the folder is read");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert_stopped(&set, "did not finish within 0.5s (it was stopped)");
}

#[tokio::test]
async fn a_folder_kustomization_printing_without_end_is_cut_at_the_cap() {
    let tools = tempfile::tempdir().expect("temp dir");
    let bin = fake_kustomize(tools.path(), FLOOD);
    let dir = folder();
    let started = Instant::now();
    let set = DirSource::new(dir.path())
        .with_kustomize_bin(&bin)
        .with_kustomize_limits(limits(60_000, 64 * 1024))
        .load()
        .await
        .expect("the folder is read");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    assert_stopped(&set, "printed more than 65536 bytes");
}

#[tokio::test]
async fn a_git_kustomization_that_never_ends_is_stopped() {
    let tools = tempfile::tempdir().expect("temp dir");
    let bin = fake_kustomize(tools.path(), HANG);
    let mut repo = TestRepo::new();
    repo.write(
        "app/kustomization.yaml",
        "resources:\n- https://example.invalid/never/answers\n",
    );
    repo.write("plain.yaml", &configmap("plain", "shop", "1"));
    repo.commit("a remote base", "Alice");
    let cache = cache();
    let mut cfg = GitSourceConfig::new(repo.url(), cache.path());
    cfg.kustomize_bin = Some(bin);
    cfg.kustomize_limits = limits(500, 1024 * 1024);
    let src = GitRepoSource::open(cfg).await.expect("opens");
    let started = Instant::now();
    let set = src.load().await.expect("loads");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert_stopped(&set, "did not finish within 0.5s (it was stopped)");
}

#[test]
fn the_default_limits_are_those_of_a_chart() {
    let d = KustomizeLimits::default();
    assert_eq!(d.timeout, Duration::from_secs(120));
    assert_eq!(d.max_output, 256 * 1024 * 1024);
}
