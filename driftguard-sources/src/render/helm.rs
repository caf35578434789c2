//! Rendering a Helm chart with `helm template` (helm v3).
//!
//! The arguments and their order (Argo CD's precedence) come from the core
//! ([`HelmOptions::template_args`]); so does reading the output: each object's template file
//! from helm's `# Source:` lines, hooks and tests left out ([`read_helm_output`]). Helm runs
//! with homes of its own in a scratch folder (no user repositories or plugins) and never with
//! a command that reaches the network: dependencies must be vendored under `charts/`, and one
//! that is not is a [`RenderError::MissingDependency`].
//!
//! It runs like every program ([`crate::process`]): a timeout, an output cap, its process group
//! stopped as a whole, only [`BASE_ENV`](crate::process::BASE_ENV) of DriftGuard's environment
//! (no `KUBECONFIG`, no `HELM_*` of the user: its homes are the scratch folder's), and no
//! network where the OS allows it.

use std::path::PathBuf;
use std::time::Duration;

use driftguard_core::model::Rendering;
use driftguard_core::render::{
    display_command, hooks_note, missing_dependencies, read_helm_output, unstable_fields,
    HelmOptions, RenderError,
};

use super::command::folder_label;
use super::{RenderInput, Rendered};
use crate::process::{find_program, Network, Program};

/// A Helm chart's rendering: the options of `helm template` and the binary running it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HelmRenderer {
    /// What `helm template` is given.
    pub options: HelmOptions,
    /// The helm binary (default: `helm` on `PATH`).
    pub binary: Option<PathBuf>,
    /// Longest one `helm template` may run.
    pub timeout: Duration,
    /// Most bytes it may print.
    pub max_output: u64,
}

impl HelmRenderer {
    /// A renderer with `options`, `helm` from `PATH`, and the default limits (120 s, 256 MiB).
    pub fn new(options: HelmOptions) -> Self {
        HelmRenderer {
            options,
            binary: None,
            timeout: Duration::from_secs(120),
            max_output: 256 * 1024 * 1024,
        }
    }

    /// Sets the helm binary.
    pub fn binary(mut self, binary: impl Into<PathBuf>) -> Self {
        self.binary = Some(binary.into());
        self
    }

    /// The helm binary to run, if there is one.
    pub(crate) fn program(&self) -> Result<PathBuf, RenderError> {
        match &self.binary {
            Some(b) => find_program(&b.display().to_string(), None),
            None => find_program("helm", None),
        }
        .ok_or_else(|| RenderError::NoBinary {
            program: match &self.binary {
                Some(b) => format!("the helm binary {}", b.display()),
                None => "`helm` (on PATH)".into(),
            },
            setting: "helm.binary or helmBin".into(),
        })
    }

    /// Renders the chart in `input.dir` with the value files of `input`.
    pub(crate) fn render(&self, input: &RenderInput<'_>) -> Result<Rendered, RenderError> {
        let bin = self.program()?;
        let chart = folder_label(input.rel).to_owned();
        let display = display_command(
            "helm",
            &[
                "template".into(),
                self.options.release_name.clone(),
                chart.clone(),
            ],
        );
        let inline = if self.options.has_inline_values() {
            let path = input.scratch.join("inline-values.yaml");
            let text = self.options.values.as_deref().unwrap_or_default();
            std::fs::write(&path, text).map_err(|source| RenderError::Prepare {
                folder: input.scratch.display().to_string(),
                source,
            })?;
            Some(path.display().to_string())
        } else {
            None
        };
        let files: Vec<String> = input
            .value_files
            .iter()
            .map(|(_, p)| p.display().to_string())
            .collect();
        let args =
            self.options
                .template_args(&input.dir.display().to_string(), &files, inline.as_deref());
        let home = |name: &str| input.scratch.join(name);
        let run = Program::new(bin)
            .args(&args)
            .current_dir(input.dir)
            .env("HELM_CACHE_HOME", home("helm-cache"))
            .env("HELM_CONFIG_HOME", home("helm-config"))
            .env("HELM_DATA_HOME", home("helm-data"))
            .timeout(self.timeout)
            .max_output(self.max_output)
            .network(Network::Deny)
            .display(&display);
        let text = run.run_text().map_err(|e| match RenderError::from(e) {
            RenderError::Failed { stderr, .. } if missing_dependencies(&stderr).is_some() => {
                RenderError::MissingDependency {
                    chart: chart.clone(),
                    dependencies: missing_dependencies(&stderr).unwrap_or_default(),
                }
            }
            other => other,
        })?;
        let values: Vec<String> = input.value_files.iter().map(|(r, _)| r.clone()).collect();
        let rendering = Rendering {
            unstable: Vec::new(),
            renderer: "helm".into(),
            source: input.rel.to_owned(),
            values: values.clone(),
            inputs_commit: None,
        };
        let mut read = read_helm_output(&text, input.rel, &rendering);
        // a second run of the same inputs: what it gives anew (random passwords, generated
        // certificates) is not Git's (`render::unstable_fields`); a failed second run marks
        // nothing
        let unstable = match run.run_text() {
            Ok(again) if again != text => {
                let second = read_helm_output(&again, input.rel, &rendering);
                unstable_fields(&mut read, &second)
            }
            _ => 0,
        };
        let mut how = vec![
            format!("release {}", self.options.release_name),
            format!("namespace {}", self.options.namespace),
        ];
        if !values.is_empty() {
            how.push(format!("values {}", values.join(", ")));
        }
        if self.options.has_inline_values() {
            how.push("inline values".into());
        }
        match self.options.parameters.len() {
            0 => {}
            1 => how.push("1 parameter".into()),
            n => how.push(format!("{n} parameters")),
        }
        let what = format!("Helm chart {chart}");
        let mut notes = vec![format!("{what} rendered ({})", how.join(", "))];
        for missing in &input.missing_value_files {
            notes.push(format!(
                "{what}: value file {missing} does not exist: left out (ignoreMissingValueFiles)"
            ));
        }
        notes.extend(hooks_note(&what, &read.hooks));
        if unstable > 0 {
            notes.push(format!(
                "{what}: {unstable} field(s) are made anew on every render (random values, \
                 generated certificates): not compared"
            ));
        }
        Ok(Rendered {
            objects: read.objects,
            errors: read.errors,
            notes,
            digest: None,
        })
    }
}
