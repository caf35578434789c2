//! Rendering kustomizations with `kubectl kustomize` or the `kustomize` binary.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The error of a kustomization when no binary renders it.
pub(crate) const NO_BINARY: &str =
    "cannot render the kustomization: no kubectl or kustomize binary found (set kustomize_bin)";

/// Finds the binary: the configured one, else `kubectl`, else `kustomize` on `PATH`.
pub(crate) fn find_binary(configured: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = configured {
        return Some(p.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    for name in ["kubectl", "kustomize"] {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

/// Renders the kustomization in `dir` with `bin`. Returns the YAML stream, or a message.
///
/// A binary whose file name starts with `kustomize` is run as `kustomize build DIR`; any other
/// (kubectl) as `kubectl kustomize DIR`.
pub(crate) fn render(bin: &Path, dir: &Path) -> Result<String, String> {
    let is_kustomize = bin
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("kustomize"));
    let mut cmd = Command::new(bin);
    if is_kustomize {
        cmd.arg("build");
    } else {
        cmd.arg("kustomize");
    }
    cmd.arg(dir);
    // no network: remote bases are not fetched by DriftGuard
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let first = err.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        return Err(format!(
            "{} failed ({}): {}",
            bin.display(),
            out.status,
            first.trim()
        ));
    }
    String::from_utf8(out.stdout).map_err(|_| "kustomize output is not UTF-8".to_owned())
}
