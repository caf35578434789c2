//! The generic renderer (in the spirit of Argo CD's config management plugins): a command run
//! in the environment's folder, whose standard output is YAML or JSON objects. It runs like
//! every program ([`crate::process`]): an argument list (no shell unless asked), a timeout, a
//! limit on the output, its process group, a scrubbed environment (only
//! [`BASE_ENV`](crate::process::BASE_ENV), [`CommandRenderer::pass_env`] and
//! `DRIFTGUARD_REVISION`/`DRIFTGUARD_PATH`), no network where the OS allows it (unless
//! [`CommandRenderer::allow_network`]), and errors naming the command, its exit status and an
//! excerpt of its standard error.

use std::time::Duration;

use driftguard_core::model::Rendering;
use driftguard_core::render::{display_command, hooks_note, read_command_output, RenderError};

use super::{RenderInput, Rendered};
use crate::process::{find_program, Network, Program};

/// A command printing the environment's objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandRenderer {
    /// The program and its arguments; with `shell`, one command line for `sh -c`.
    pub command: Vec<String>,
    /// Whether `command` is a shell command line (`sh -c`), instead of an argument list.
    pub shell: bool,
    /// Longest the command may run; it is stopped (with its process group) after that.
    pub timeout: Duration,
    /// Most bytes it may print; it is stopped when it prints more.
    pub max_output: u64,
    /// Variables of DriftGuard's environment it is given, on top of
    /// [`BASE_ENV`](crate::process::BASE_ENV) (`PATH`, `HOME`, the locale, `TMPDIR`); nothing
    /// else of it (`KUBECONFIG`, credentials) reaches the command.
    pub pass_env: Vec<String>,
    /// Whether it may use the network. By default it runs without, where the OS allows it
    /// ([`crate::process::network_isolation`]): rendering reads the repository, and a script
    /// of the repository reaches nothing else.
    pub allow_network: bool,
}

impl CommandRenderer {
    /// A command given as an argument list, with the default limits (60 s, 64 MiB), no
    /// variable passed on and no network.
    pub fn new(command: impl IntoIterator<Item = impl Into<String>>) -> Self {
        CommandRenderer {
            command: command.into_iter().map(Into::into).collect(),
            shell: false,
            timeout: Duration::from_secs(60),
            max_output: 64 * 1024 * 1024,
            pass_env: Vec::new(),
            allow_network: false,
        }
    }

    /// The command line, for messages and descriptions.
    pub fn display(&self) -> String {
        if self.shell {
            display_command("sh", &["-c".into(), self.command.join(" ")])
        } else {
            match self.command.split_first() {
                Some((program, args)) => display_command(program, args),
                None => String::new(),
            }
        }
    }

    /// Runs the command in `input.dir` and reads what it printed.
    pub(crate) fn render(&self, input: &RenderInput<'_>) -> Result<Rendered, RenderError> {
        let display = self.display();
        let (program, args): (String, Vec<String>) = if self.shell {
            ("sh".into(), vec!["-c".into(), self.command.join(" ")])
        } else {
            match self.command.split_first() {
                Some((p, a)) => (p.clone(), a.to_vec()),
                None => {
                    return Err(RenderError::Input {
                        what: "render.command".into(),
                        problem: "names no program".into(),
                    })
                }
            }
        };
        let bin = find_program(&program, Some(input.dir)).ok_or_else(|| RenderError::NoBinary {
            program: format!("`{program}`"),
            setting: "render.command".into(),
        })?;
        let mut run = Program::new(bin)
            .args(&args)
            .current_dir(input.dir)
            .pass_env(&self.pass_env)
            .env("DRIFTGUARD_PATH", input.rel)
            .timeout(self.timeout)
            .max_output(self.max_output)
            .network(if self.allow_network {
                Network::Allow
            } else {
                Network::Deny
            })
            .display(&display);
        if let Some(r) = input.revision {
            run = run.env("DRIFTGUARD_REVISION", r);
        }
        let text = run.run_text()?;
        let rendering = Rendering {
            unstable: Vec::new(),
            renderer: "command".into(),
            source: input.rel.to_owned(),
            values: Vec::new(),
            inputs_commit: None,
        };
        // no file: the command line stands for it (`./gen.sh (rendered by command from apps)`)
        let read = read_command_output(&text, &display, &rendering);
        let mut notes = vec![format!("{} rendered by {display}", folder_label(input.rel))];
        notes.extend(hooks_note(&format!("command {display}"), &read.hooks));
        Ok(Rendered {
            objects: read.objects,
            errors: read.errors,
            notes,
            digest: None,
        })
    }
}

/// `path/to/folder`, or `.` for the root.
pub(crate) fn folder_label(rel: &str) -> &str {
    if rel.is_empty() {
        "."
    } else {
        rel
    }
}
