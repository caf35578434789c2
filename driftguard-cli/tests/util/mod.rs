//! Helpers for the CLI tests: temporary folders and running the built binary.

#![allow(dead_code)]

pub mod e2e;
pub mod git_http;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The outcome of one run.
#[derive(Debug)]
pub struct Run {
    /// Exit code.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// Standard output parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

/// Runs `driftguard` with `args` in `cwd`, with a clean environment (no color, no config).
pub fn run_in(cwd: &Path, args: &[&str]) -> Run {
    run_env(cwd, args, &[])
}

/// Runs with extra environment variables.
pub fn run_env(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_driftguard"));
    cmd.args(args)
        .current_dir(cwd)
        .env_remove("DRIFTGUARD_CONFIG")
        .env_remove("DRIFTGUARD_SECRET_KEY")
        .env_remove("KUBECONFIG")
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("the driftguard binary runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate is in the workspace")
        .to_path_buf()
}

/// A temporary folder holding a copy of `examples/demo` (without its store).
pub fn demo_copy() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dst = tmp.path().join("demo");
    copy_dir(&repo_root().join("examples/demo"), &dst);
    (tmp, dst)
}

pub fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).expect("mkdir");
    for e in std::fs::read_dir(src).expect("read dir") {
        let e = e.expect("entry");
        let name = e.file_name();
        if name == ".driftguard" {
            continue;
        }
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &dst.join(&name));
        } else {
            std::fs::copy(&p, dst.join(&name)).expect("copy");
        }
    }
}

/// Writes a file (creating folders).
pub fn write(path: &Path, text: &str) {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    std::fs::write(path, text).expect("write");
}

/// Replaces `from` by `to` in a file (which must contain it).
pub fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).expect("read");
    assert!(
        text.contains(from),
        "{} does not contain {from:?}",
        path.display()
    );
    std::fs::write(path, text.replacen(from, to, 1)).expect("write");
}

pub use driftguard_test_support::git_as;

/// The commit `HEAD` of the repository at `dir`.
pub fn head(dir: &Path) -> String {
    git_as(dir, &["rev-parse", "HEAD"], "x")
}
