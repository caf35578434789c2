//! Rendering kustomizations with `kubectl kustomize` or the `kustomize` binary. A
//! kustomization inflating Helm charts (`helmCharts:`) is rendered with `--enable-helm` when
//! helm is found; its hooks are left out like a chart's.
//!
//! The binary runs like every program ([`crate::process`]): an argument list, in a process
//! group of its own, stopped with the group (and the `git` or `helm` it started) after
//! [`KustomizeLimits::timeout`] or when it prints more than [`KustomizeLimits::max_output`]
//! bytes. A remote base that never answers, or a generator that never stops printing, cannot
//! hang a scan. Its environment is scrubbed: [`BASE_ENV`](crate::process::BASE_ENV) and what
//! fetching a remote base needs ([`GIT_ENV`]: proxies, certificates, SSH), never
//! `KUBECONFIG`. Unlike the renderers it keeps the network: a remote base (`resources:` holding
//! a URL) is fetched by kustomize itself.

use std::path::{Path, PathBuf};
use std::time::Duration;

use driftguard_core::error::chain;
use driftguard_core::manifest::ManifestError;
use driftguard_core::render::{display_command, hooks_note, kustomization_uses_helm, split_hooks};

use super::select::{parse_bytes, FileObjects};
use crate::process::{find_program, Network, Program, RunError, GIT_ENV};

/// How long one kustomization's rendering may run and how much it may print.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KustomizeLimits {
    /// Longest one rendering may run; it is stopped (with its process group) after that.
    pub timeout: Duration,
    /// Most bytes it may print; it is stopped when it prints more.
    pub max_output: u64,
}

impl Default for KustomizeLimits {
    /// Those of a Helm chart's rendering: 120 s, 256 MiB.
    fn default() -> Self {
        KustomizeLimits {
            timeout: Duration::from_secs(120),
            max_output: 256 * 1024 * 1024,
        }
    }
}

/// The error of a kustomization inflating Helm charts when no helm is found.
pub(crate) const NO_HELM: &str =
    "cannot render the kustomization: it inflates Helm charts (helmCharts) and no helm binary was found (set helmBin)";

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

/// Renders the kustomization in `dir` (on disk; `file` is its kustomization file as the
/// source names it, `text` its content) with `bin`, or says why it cannot: the parsed objects
/// and problems, and the notes (hooks left out).
pub(crate) fn render_folder(
    bin: Option<&Path>,
    dir: &Path,
    file: &str,
    text: Option<&str>,
    helm_bin: Option<&Path>,
    limits: KustomizeLimits,
) -> FileObjects {
    let fail = |message: String| FileObjects {
        errors: vec![ManifestError {
            file: file.to_owned(),
            line: 1,
            field: None,
            message,
        }],
        ..FileObjects::default()
    };
    let Some(bin) = bin else {
        return fail(NO_BINARY.into());
    };
    let uses_helm = text.is_some_and(kustomization_uses_helm);
    let helm = if uses_helm {
        match helm_program(helm_bin) {
            Some(h) => Some(h),
            None => return fail(NO_HELM.into()),
        }
    } else {
        None
    };
    let text = match render(bin, dir, helm.as_deref(), limits) {
        Ok(text) => text,
        Err(m) => return fail(m),
    };
    read_output(file, &text, uses_helm)
}

/// The helm binary inflating a kustomization's charts: the configured one, else `helm` on
/// `PATH`, if it is found.
pub(crate) fn helm_program(helm_bin: Option<&Path>) -> Option<PathBuf> {
    match helm_bin {
        Some(h) => find_program(&h.display().to_string(), None),
        None => find_program("helm", None),
    }
}

/// Reads what the kustomization whose file is `file` (relative to the root) printed: its
/// objects, named by that file, and the problems; the hooks of the Helm charts it inflated
/// (`uses_helm`) are left out with a note.
pub(crate) fn read_output(file: &str, text: &str, uses_helm: bool) -> FileObjects {
    let parsed = parse_bytes(file, text.as_bytes());
    if !uses_helm {
        return parsed;
    }
    let (kept, hooks) = split_hooks(driftguard_core::manifest::Parsed {
        objects: parsed.objects,
        errors: parsed.errors,
    });
    let dir_name = file.rsplit_once('/').map_or(".", |(d, _)| d);
    FileObjects {
        objects: kept.objects,
        errors: kept.errors,
        notes: hooks_note(&format!("kustomization {dir_name}"), &hooks)
            .into_iter()
            .collect(),
    }
}

/// Renders the kustomization in `dir` with `bin`, within `limits`. Returns the YAML stream,
/// or a message (a timeout and too much output say so).
///
/// A binary whose file name starts with `kustomize` is run as `kustomize build DIR`; any other
/// (kubectl) as `kubectl kustomize DIR`. With `helm`, Helm charts are inflated with it
/// (`--enable-helm --helm-command HELM`).
pub(crate) fn render(
    bin: &Path,
    dir: &Path,
    helm: Option<&Path>,
    limits: KustomizeLimits,
) -> Result<String, String> {
    run(bin, dir, helm, limits).map_err(|e| chain(&e))
}

/// Runs `bin` on the kustomization in `dir`, as [`render`] says; the runner's error as is.
pub(crate) fn run(
    bin: &Path,
    dir: &Path,
    helm: Option<&Path>,
    limits: KustomizeLimits,
) -> Result<String, RunError> {
    let is_kustomize = bin
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("kustomize"));
    let mut args: Vec<String> = vec![if is_kustomize { "build" } else { "kustomize" }.into()];
    if let Some(h) = helm {
        args.extend([
            "--enable-helm".into(),
            "--helm-command".into(),
            h.display().to_string(),
        ]);
    }
    // the folder as an absolute path: the program runs in it, so a relative one would be
    // looked for below itself
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let dir = dir.as_path();
    args.push(dir.display().to_string());
    let display = display_command(&bin.display().to_string(), &args);
    // DriftGuard fetches no remote base itself; the binary may (a `git` clone, a URL): it
    // never waits for a password on a terminal, and the limits stop it
    Program::new(bin)
        .args(&args)
        .current_dir(dir)
        .pass_env(GIT_ENV)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "true")
        .timeout(limits.timeout)
        .max_output(limits.max_output)
        .network(Network::Allow)
        .display(display)
        .run_text()
}
