//! The generic renderer (in the spirit of Argo CD's config management plugins): a command run
//! in the environment's folder, whose standard output is YAML or JSON objects. Also the one
//! way renderers run a program: an argument list (no shell unless asked), a timeout, a limit
//! on the output, and errors naming the command, its exit status and its standard error.

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use driftguard_core::model::Rendering;
use driftguard_core::render::{
    display_command, hooks_note, read_command_output, stderr_summary, RenderError,
};

use super::{RenderInput, Rendered};

/// How much of a program's standard error is kept for its error message.
const STDERR_KEPT: usize = 64 * 1024;
/// How much of it a message shows.
const STDERR_SHOWN: usize = 1_000;

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
}

impl CommandRenderer {
    /// A command given as an argument list, with the default limits (60 s, 64 MiB).
    pub fn new(command: impl IntoIterator<Item = impl Into<String>>) -> Self {
        CommandRenderer {
            command: command.into_iter().map(Into::into).collect(),
            shell: false,
            timeout: Duration::from_secs(60),
            max_output: 64 * 1024 * 1024,
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
        let mut env: Vec<(&str, OsString)> = Vec::new();
        if let Some(r) = input.revision {
            env.push(("DRIFTGUARD_REVISION", r.into()));
        }
        env.push(("DRIFTGUARD_PATH", input.rel.into()));
        let run = Run {
            program: &bin,
            args: &args,
            cwd: input.dir,
            env: &env,
            timeout: self.timeout,
            max_output: self.max_output,
            display: &display,
        };
        let text = run.output()?;
        let rendering = Rendering {
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

/// A program named as a path (holding `/`, relative to `base` when given) or a name found on
/// `PATH`.
pub(crate) fn find_program(name: &str, base: Option<&Path>) -> Option<PathBuf> {
    if name.contains('/') {
        let p = Path::new(name);
        let p = match base {
            Some(b) if p.is_relative() => b.join(p),
            _ => p.to_path_buf(),
        };
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|c| c.is_file())
}

/// One run of a program.
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
}

impl Run<'_> {
    /// Runs the program; its standard output as text. The program runs in a process group of
    /// its own, stopped as a whole on a timeout or too much output. `GIT_DIR`,
    /// `GIT_WORK_TREE` and `GIT_INDEX_FILE` are not passed on.
    pub fn output(&self) -> Result<String, RenderError> {
        let mut cmd = Command::new(self.program);
        cmd.args(self.args)
            .current_dir(self.cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // a program never works on a repository DriftGuard was started in by accident
        for k in ["GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"] {
            cmd.env_remove(k);
        }
        for (k, v) in self.env {
            cmd.env(k, v);
        }
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        let mut child = cmd.spawn().map_err(|source| RenderError::Spawn {
            command: self.display.to_owned(),
            source,
        })?;
        let started = Instant::now();
        let limit = self.max_output;
        let (out_tx, out_rx) = mpsc::channel();
        let (over_tx, over_rx) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let read = stdout.take(limit.saturating_add(1)).read_to_end(&mut buf);
                if buf.len() as u64 > limit {
                    let _ = over_tx.send(());
                }
                let _ = out_tx.send(read.map(|_| buf));
            });
        }
        let (err_tx, err_rx) = mpsc::channel();
        if let Some(stderr) = child.stderr.take() {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = stderr.take(STDERR_KEPT as u64).read_to_end(&mut buf);
                let _ = err_tx.send(buf);
            });
        }
        let status = loop {
            if over_rx.try_recv().is_ok() {
                stop(&mut child);
                return Err(RenderError::OutputTooLarge {
                    command: self.display.to_owned(),
                    limit,
                });
            }
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if started.elapsed() >= self.timeout => {
                    stop(&mut child);
                    return Err(RenderError::TimedOut {
                        command: self.display.to_owned(),
                        timeout: self.timeout,
                    });
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(source) => {
                    stop(&mut child);
                    return Err(RenderError::Spawn {
                        command: self.display.to_owned(),
                        source,
                    });
                }
            }
        };
        // what it printed; a background process it left may hold the pipes: wait no longer
        // than the time left
        let left = self
            .timeout
            .saturating_sub(started.elapsed())
            .max(Duration::from_millis(100));
        let stdout = match out_rx.recv_timeout(left) {
            Ok(Ok(buf)) => buf,
            Ok(Err(source)) => {
                return Err(RenderError::Spawn {
                    command: self.display.to_owned(),
                    source,
                })
            }
            Err(_) => {
                kill_group(child.id());
                return Err(RenderError::TimedOut {
                    command: self.display.to_owned(),
                    timeout: self.timeout,
                });
            }
        };
        if stdout.len() as u64 > limit {
            return Err(RenderError::OutputTooLarge {
                command: self.display.to_owned(),
                limit,
            });
        }
        if !status.success() {
            let stderr = err_rx
                .recv_timeout(Duration::from_millis(500))
                .unwrap_or_default();
            return Err(RenderError::Failed {
                command: self.display.to_owned(),
                status: status.to_string(),
                stderr: stderr_summary(&String::from_utf8_lossy(&stderr), STDERR_SHOWN),
            });
        }
        String::from_utf8(stdout).map_err(|_| RenderError::NotUtf8 {
            command: self.display.to_owned(),
        })
    }
}

/// Stops a child and every process of its group.
fn stop(child: &mut std::process::Child) {
    kill_group(child.id());
    let _ = child.kill();
    let _ = child.wait();
}

/// Kills the process group `pgid` (the child's own, see [`Run::output`]) with `kill(1)`: no
/// unsafe code for `killpg`. A missing `kill` leaves the child alone to [`stop`].
fn kill_group(pgid: u32) {
    #[cfg(unix)]
    {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pgid}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    #[cfg(not(unix))]
    let _ = pgid;
}
