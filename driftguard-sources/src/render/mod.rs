//! Renderers on the desired side: a Helm chart ([`HelmRenderer`], `helm template`), any
//! command printing manifests ([`CommandRenderer`]: jsonnet, cdk8s, kcl, home-grown
//! generators), or a folder built with kustomize and Argo CD's or Flux's options
//! ([`KustomizeRenderer`]). Each gives the objects of a [`DesiredSet`], each with its
//! provenance (the template file, the chart, the value files in play).
//!
//! The Git source ([`crate::git`]) and the folder source ([`crate::files`]) render an
//! environment with the renderer its configuration names: they key the rendering by the
//! content of its inputs (a Helm chart's folder and value files; a command's or a
//! kustomization's whole tree or folder) and the renderer's options, and run the renderer
//! again only when one of them changed. The rules (Helm's value
//! precedence, hooks are not desired state, reading the output) are the core's
//! ([`driftguard_core::render`]); this module runs the programs, through the one runner of
//! programs ([`crate::process`]) and without network where the OS allows it.

mod command;
mod helm;
mod kustomize;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use driftguard_core::manifest::ManifestError;
use driftguard_core::model::{Provenance, RawManifest, RawObject};
use driftguard_core::ports::DesiredSet;
use driftguard_core::render::RenderError;

use crate::tree::select::Filter;

pub(crate) use crate::process::find_program;
pub(crate) use command::folder_label;
pub use command::CommandRenderer;
pub use helm::HelmRenderer;
pub use kustomize::{
    annotation_key_problem, is_var_name, label_problem, ImageOverride, ImageSyntaxError,
    KustomizeOptions, KustomizePatch, KustomizeRenderer, KustomizeReplica, SUBSTITUTE_ANNOTATION,
};

/// How an environment's desired side is rendered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Renderer {
    /// A Helm chart: the environment's folder is the chart.
    Helm(HelmRenderer),
    /// A command run in the environment's folder.
    Command(CommandRenderer),
    /// The folder built with kustomize and the environment's kustomize options.
    Kustomize(KustomizeRenderer),
}

impl Renderer {
    /// `helm chart` or `command <line>`, for descriptions.
    pub fn describe(&self) -> String {
        match self {
            Renderer::Helm(_) => "helm chart".into(),
            Renderer::Command(c) => format!("command {}", c.display()),
            Renderer::Kustomize(_) => "kustomize with options".into(),
        }
    }

    /// The value files, as configured (relative to the environment's folder).
    pub(crate) fn value_files(&self) -> &[String] {
        match self {
            Renderer::Helm(h) => &h.options.value_files,
            Renderer::Command(_) | Renderer::Kustomize(_) => &[],
        }
    }

    /// Whether a value file that does not exist is left out.
    pub(crate) fn ignore_missing_value_files(&self) -> bool {
        match self {
            Renderer::Helm(h) => h.options.ignore_missing_value_files,
            Renderer::Command(_) | Renderer::Kustomize(_) => false,
        }
    }

    /// Whether the rendering may read the whole tree (a command; a kustomization, whose bases
    /// and components may be anywhere in it), not only the environment's folder and value
    /// files (a chart).
    pub(crate) fn reads_whole_tree(&self) -> bool {
        matches!(self, Renderer::Command(_) | Renderer::Kustomize(_))
    }

    /// Whether the rendering may read files outside the folder of a plain-folder source (a
    /// kustomization's `../base`), which the folder's content does not key: such a folder is
    /// rendered at every read.
    pub(crate) fn reads_outside_folder(&self) -> bool {
        matches!(self, Renderer::Kustomize(_))
    }

    /// Feeds the renderer's options to `h`, for the key of its renderings: a changed option
    /// renders anew.
    pub(crate) fn hash_into(&self, h: &mut xxhash_rust::xxh3::Xxh3) {
        match self {
            Renderer::Helm(r) => h.update(format!("helm {r:?}").as_bytes()),
            Renderer::Command(r) => h.update(format!("command {r:?}").as_bytes()),
            Renderer::Kustomize(r) => {
                h.update(b"kustomize");
                r.hash_into(h);
            }
        }
    }

    /// Renders the inputs written on disk as `input` says.
    pub(crate) fn render(&self, input: &RenderInput<'_>) -> Result<Rendered, RenderError> {
        match self {
            Renderer::Helm(h) => h.render(input),
            Renderer::Command(c) => c.render(input),
            Renderer::Kustomize(k) => k.render(input),
        }
    }
}

/// The inputs of one rendering, on disk.
#[derive(Debug)]
pub(crate) struct RenderInput<'a> {
    /// The environment's folder (the chart, or where the command runs).
    pub dir: &'a Path,
    /// Its path relative to the source root (provenance).
    pub rel: &'a str,
    /// Value files that exist: path relative to the source root (as provenance names it) and
    /// path on disk, in the order configured.
    pub value_files: Vec<(String, PathBuf)>,
    /// Value files that do not exist and are left out (`ignoreMissingValueFiles`).
    pub missing_value_files: Vec<String>,
    /// The revision rendered, when it is a commit (`DRIFTGUARD_REVISION` for commands).
    pub revision: Option<&'a str>,
    /// A scratch folder of this rendering (helm's homes, the inline values file).
    pub scratch: &'a Path,
    /// Which files of the folder the environment reads (include and exclude globs, whether
    /// subfolders are): a kustomization generated for a folder without one lists them.
    pub filter: &'a Filter,
    /// Whether the files in `dir` may be changed (a revision written out for this rendering),
    /// or are the user's (a plain folder) and must be copied first.
    pub editable: bool,
}

/// What a rendering gave: objects (provenance without revision), problems and notes. Kept
/// while its inputs are unchanged.
#[derive(Debug, Default)]
pub(crate) struct Rendered {
    /// Objects, each with its provenance (`rendered` set).
    pub objects: Vec<(RawObject, Provenance)>,
    /// Documents that are not Kubernetes objects.
    pub errors: Vec<ManifestError>,
    /// What to tell: the rendering, the hooks skipped.
    pub notes: Vec<String>,
    /// A digest of what the program printed, before anything was done to it, for a source
    /// that renders at every read and names its revision by what it read (a plain folder
    /// built with kustomize); `None` from the renderers that are keyed by their inputs.
    pub digest: Option<u64>,
}

impl Rendered {
    /// Adds the rendering to `set`, as read at `revision`, its inputs last changed by
    /// `inputs_commit`.
    pub fn extend_set(&self, set: &mut DesiredSet, revision: &str, inputs_commit: Option<&str>) {
        set.objects.reserve(self.objects.len());
        for (object, provenance) in &self.objects {
            let mut provenance = provenance.clone();
            provenance.revision = Some(revision.to_owned());
            if let Some(r) = &mut provenance.rendered {
                r.inputs_commit = inputs_commit.map(str::to_owned);
            }
            set.objects.push(RawManifest {
                object: object.clone(),
                provenance,
            });
        }
        set.errors.extend(self.errors.iter().cloned());
        set.notes.extend(self.notes.iter().cloned());
    }
}

/// One run of a program as the terraform source describes it, run by [`crate::process`] with
/// the whole environment passed on ([`Program::inherit_env`](crate::process::Program::inherit_env):
/// terraform's providers read their credentials there), `GIT_DIR`, `GIT_WORK_TREE` and
/// `GIT_INDEX_FILE` left out; errors as the renderers'. Other callers build a
/// [`Program`](crate::process::Program) themselves.
pub(crate) struct Run<'a> {
    /// The program.
    pub program: &'a Path,
    /// Its arguments.
    pub args: &'a [String],
    /// Where it runs.
    pub cwd: &'a Path,
    /// Variables added to its environment.
    pub env: &'a [(&'a str, OsString)],
    /// Longest it may run.
    pub timeout: Duration,
    /// Most bytes it may print.
    pub max_output: u64,
    /// The command line for messages.
    pub display: &'a str,
    /// Values removed from its error messages (secrets of the environment it inherits).
    pub secrets: &'a [String],
}

impl Run<'_> {
    /// Runs the program; its standard output as text.
    pub fn output(&self) -> Result<String, RenderError> {
        let mut program = crate::process::Program::new(self.program)
            .args(self.args)
            .current_dir(self.cwd)
            .inherit_env()
            .timeout(self.timeout)
            .max_output(self.max_output)
            // `TF_LOG=trace` prints much on standard error: as much as on standard output
            .max_stderr(self.max_output.max(16 * 1024 * 1024))
            .display(self.display);
        for (k, v) in self.env {
            program = program.env(k, v);
        }
        for s in self.secrets {
            program = program.redact(s.as_str());
        }
        Ok(program.run_text()?)
    }
}

/// `rel` (a relative path) resolved against the folder `base`, both relative to a root:
/// `.` and `..` are resolved. `None` when the result leaves the root or `rel` is absolute.
pub(crate) fn join_relative(base: &str, rel: &str) -> Option<String> {
    if rel.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = base.split('/').filter(|p| !p.is_empty()).collect();
    for part in rel.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_stay_inside_the_root() {
        assert_eq!(
            join_relative("charts/shop", "values-prod.yaml").as_deref(),
            Some("charts/shop/values-prod.yaml")
        );
        assert_eq!(
            join_relative("charts/shop", "../../envs/prod.yaml").as_deref(),
            Some("envs/prod.yaml")
        );
        assert_eq!(
            join_relative("", "./a/./b.yaml").as_deref(),
            Some("a/b.yaml")
        );
        assert_eq!(join_relative("charts", "../../x.yaml"), None);
        assert_eq!(join_relative("charts", "/etc/passwd"), None);
        assert_eq!(join_relative("", "."), None);
    }
}
