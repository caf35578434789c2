//! Helpers for the Git source tests: real repositories built with the `git` binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use driftguard_test_support::build;

/// A repository with a work tree, in a temporary folder.
pub struct TestRepo {
    pub dir: tempfile::TempDir,
    pub n: u32,
}

/// The `git` binary (`driftguard_test_support::program`): a missing `git` fails the test.
pub fn git_bin() -> &'static Path {
    static GIT: OnceLock<PathBuf> = OnceLock::new();
    GIT.get_or_init(|| driftguard_test_support::program("git", &["--version"]))
}

pub fn git(cwd: &Path, args: &[&str]) -> String {
    let out = Command::new(git_bin())
        .args(args)
        .current_dir(cwd)
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_COMMITTER_NAME", "Tester")
        .env("GIT_COMMITTER_EMAIL", "tester@example.com")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

impl TestRepo {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        git(dir.path(), &["init", "-q", "-b", "main"]);
        TestRepo { dir, n: 0 }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn url(&self) -> String {
        self.path().display().to_string()
    }

    pub fn write(&self, file: &str, text: &str) {
        let p = self.path().join(file);
        std::fs::create_dir_all(p.parent().expect("has parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }

    pub fn rm(&self, file: &str) {
        git(self.path(), &["rm", "-q", file]);
    }

    pub fn mv(&self, from: &str, to: &str) {
        git(self.path(), &["mv", from, to]);
    }

    /// Commits everything as `author`; returns the commit id.
    pub fn commit(&mut self, message: &str, author: &str) -> String {
        self.n += 1;
        let date = format!("2024-01-{:02}T10:00:00Z", self.n);
        git(self.path(), &["add", "-A"]);
        let out = Command::new(git_bin())
            .args(["commit", "-q", "-m", message])
            .current_dir(self.path())
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", author)
            .env(
                "GIT_AUTHOR_EMAIL",
                format!("{}@example.com", author.to_lowercase()),
            )
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_NAME", author)
            .env("GIT_COMMITTER_EMAIL", "ci@example.com")
            .env("GIT_COMMITTER_DATE", &date)
            .output()
            .expect("git commit runs");
        assert!(
            out.status.success(),
            "commit failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        git(self.path(), &["rev-parse", "HEAD"])
    }
}

pub fn cache() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// The file of a Deployment `ns/name` a person writes: `replicas`, the selector, one
/// container `main` running `image` (the shared builder's YAML).
pub fn deployment(name: &str, ns: &str, replicas: u32, image: &str) -> String {
    build::deployment(name)
        .namespace(ns)
        .replicas(replicas.into())
        .selector()
        .container("main", image)
        .yaml()
}

/// The file of a ConfigMap `ns/name` with `key: value`.
pub fn configmap(name: &str, ns: &str, value: &str) -> String {
    build::configmap(name)
        .namespace(ns)
        .data("key", value)
        .yaml()
}

/// The kustomize binary for tests: `KUSTOMIZE_BIN`, `KUBECTL` (from the environment or the
/// test services' `services.env`), the driftguard cache's newest kubectl, or `kubectl` or
/// `kustomize` on PATH, checked to run (`driftguard_test_support::program`). None found fails
/// the test.
#[track_caller]
pub fn kustomize_bin() -> PathBuf {
    let mut candidates: Vec<PathBuf> = Vec::new();
    for var in ["KUSTOMIZE_BIN", "KUBECTL"] {
        if let Some(v) = driftguard_test_support::lookup(var) {
            candidates.push(PathBuf::from(v));
        }
    }
    let cache = driftguard_test_support::lookup("DRIFTGUARD_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/driftguard")));
    if let Some(c) = cache {
        // the test clusters' kubectl (`k8s-<version>/bin`), the newest version first
        let mut versions: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir(&c)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let version = name.strip_prefix("k8s-")?;
                let key = version.split('.').map(|n| n.parse().unwrap_or(0)).collect();
                Some((key, e.path().join("bin/kubectl")))
            })
            .collect();
        versions.sort_by(|a, b| b.0.cmp(&a.0));
        candidates.extend(versions.into_iter().map(|(_, p)| p));
    }
    if let Some(path) = std::env::var_os("PATH") {
        for d in std::env::split_paths(&path) {
            candidates.push(d.join("kubectl"));
            candidates.push(d.join("kustomize"));
        }
    }
    let found = candidates
        .into_iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "no kubectl or kustomize binary found: set KUSTOMIZE_BIN or KUBECTL \
                 (scripts/test-services.sh up names the test cluster's kubectl)"
            )
        });
    let is_kustomize = found
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("kustomize"));
    let args: &[&str] = if is_kustomize {
        &["version"]
    } else {
        &["version", "--client"]
    };
    driftguard_test_support::program(&found.display().to_string(), args)
}
