//! The one way DriftGuard runs a program: `git` (clone, fetch, push of the Git source and of
//! adoptions), the renderers (`helm template`, a command), kustomize (`kubectl kustomize` or
//! `kustomize build`) and terraform all go through [`Program::run`].
//!
//! A run:
//!
//! - takes an **argument list** (no shell unless the caller runs `sh -c` itself) and **no
//!   standard input** (`/dev/null`);
//! - runs in a **process group of its own** (`process_group(0)`), and that whole group is
//!   killed (`killpg(SIGKILL)`) when the run ends: at the [timeout](Program::timeout), when
//!   a stream passes its cap, when the [`Program`]'s run is dropped (a panic), and also when the
//!   program exits, so nothing it started in the background outlives it (an `ssh` of a hanging
//!   `git`, the `git` of a kustomize remote base). On Linux the group is killed while the
//!   program is a zombie not yet reaped, so its id cannot have been reused;
//! - **drains standard output and standard error at once**, on two threads: a program
//!   printing much on standard error never stalls on a full pipe. Standard output is capped
//!   at [`Program::max_output`] bytes and standard error at [`Program::max_stderr`]; a
//!   program passing either is stopped ([`RunError::OutputTooLarge`]). Of standard error only
//!   its first and last 32 KiB are kept, for the error message;
//! - gets a **scrubbed environment**: nothing of DriftGuard's environment but
//!   [`BASE_ENV`] (`PATH`, `HOME`, the locale, `TMPDIR`) and the names the caller passes on
//!   ([`Program::pass_env`], e.g. [`GIT_ENV`] for `git`), plus the variables it sets on
//!   purpose ([`Program::env`]). So `KUBECONFIG`, cloud credentials and the tokens of other
//!   remotes never reach a renderer. [`Program::inherit_env`] keeps the whole environment
//!   (terraform, whose providers read their credentials there), `GIT_DIR`, `GIT_WORK_TREE`
//!   and `GIT_INDEX_FILE` still removed;
//! - **without network** when asked ([`Network::Deny`], the renderers: `helm template` of a
//!   chart whose dependencies are vendored needs none, nor does a generator): on Linux the
//!   program runs in a network namespace of its own holding only a loopback that is down
//!   (`unshare --user --map-current-user --net`, no root needed where unprivileged user
//!   namespaces are allowed). Where they are not (a container under a seccomp profile that
//!   refuses them, another OS) the program runs with the network, as before: whether the
//!   isolation is in effect is probed once and told by [`network_isolation`]. kustomize keeps
//!   the network (a remote base is fetched by kustomize itself), so does `git`;
//! - fails with an error naming the **program** (its command line as the caller shows it,
//!   [`Program::display`]: `git clone`, never a URL that may hold a token), the **exit
//!   status**, and a **bounded excerpt of standard error** (lines joined with `; `, at most
//!   [`STDERR_SHOWN`] characters: its beginning and its end), from which the values the
//!   caller marks as secret ([`Program::redact`]) are removed.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use driftguard_core::render::{stderr_summary, RenderError};

/// What every program gets of DriftGuard's environment, when set: where programs are
/// (`PATH`), the home folder (`HOME`, `USER`, `LOGNAME`), the locale and time zone, and the
/// temporary folder.
pub const BASE_ENV: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR",
];

/// What `git` (and kustomize, whose remote bases are fetched with `git` or over HTTPS) gets
/// on top of [`BASE_ENV`], when set: the proxies, TLS (trusted certificates, a client
/// certificate, `GIT_SSL_NO_VERIFY`), the protocols allowed, how to reach SSH remotes
/// (`SSH_AUTH_SOCK`, `GIT_SSH`, `GIT_SSH_COMMAND`, `GIT_SSH_VARIANT`) and where git's own
/// configuration is. These name files and settings of the host, never a credential. The variables DriftGuard sets on purpose (`GIT_TERMINAL_PROMPT`,
/// `GIT_ASKPASS`, the credentials as `GIT_CONFIG_*`, `GIT_SSH_COMMAND` for a key) are not
/// taken from the environment but set by the caller.
pub const GIT_ENV: &[&str] = &[
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "GIT_SSL_CAINFO",
    "GIT_SSL_CAPATH",
    "GIT_SSL_NO_VERIFY",
    "GIT_SSL_CERT",
    "GIT_SSL_KEY",
    "GIT_ALLOW_PROTOCOL",
    "SSH_AUTH_SOCK",
    "GIT_SSH",
    "GIT_SSH_COMMAND",
    "GIT_SSH_VARIANT",
    "GIT_EXEC_PATH",
    "GIT_CONFIG_GLOBAL",
    "GIT_CONFIG_SYSTEM",
    "GIT_CONFIG_NOSYSTEM",
    "XDG_CONFIG_HOME",
];

/// Variables never passed on, even by [`Program::inherit_env`]: a program never works on a
/// repository DriftGuard was started in by accident.
const NEVER: &[&str] = &["GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"];

/// How many characters of standard error an error message shows.
pub const STDERR_SHOWN: usize = 1_000;
/// How much of the beginning and of the end of standard error is kept.
const STDERR_KEPT: usize = 32 * 1024;

/// Whether a program may use the network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Network {
    /// The host's network (`git`, kustomize).
    #[default]
    Allow,
    /// None, where the OS allows it ([`network_isolation`]); else the host's.
    Deny,
}

/// Which output stream passed its cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// Why a run failed. Every message names the program as [`Program::display`] shows it.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The program could not be started.
    #[error("cannot run {command}")]
    Spawn {
        /// The command line.
        command: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Its output could not be read, or its end not waited for.
    #[error("cannot read what {command} printed")]
    Read {
        /// The command line.
        command: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The program exited with an error.
    #[error("{command} failed ({status}): {stderr}")]
    Failed {
        /// The command line.
        command: String,
        /// `exit status: 1`, `signal: 9 (SIGKILL)`.
        status: String,
        /// An excerpt of its standard error, secrets removed.
        stderr: String,
    },
    /// The program did not finish in time (it was stopped with its process group).
    #[error("{command} did not finish within {}s (it was stopped)", .timeout.as_secs_f64())]
    TimedOut {
        /// The command line.
        command: String,
        /// The limit.
        timeout: Duration,
    },
    /// The program printed more than allowed on a stream (it was stopped with its group).
    #[error("{command} printed more than {limit} bytes{} (it was stopped; raise the limit if this is expected)", match .stream { Stream::Stdout => "", Stream::Stderr => " on its standard error" })]
    OutputTooLarge {
        /// The command line.
        command: String,
        /// The stream.
        stream: Stream,
        /// The limit, in bytes.
        limit: u64,
    },
    /// The program printed something on standard output that is not UTF-8
    /// ([`Program::run_text`]).
    #[error("{command} printed output that is not UTF-8")]
    NotUtf8 {
        /// The command line.
        command: String,
    },
}

impl From<RunError> for RenderError {
    /// The renderers' errors, with the same messages.
    fn from(e: RunError) -> Self {
        match e {
            RunError::Spawn { command, source } | RunError::Read { command, source } => {
                RenderError::Spawn { command, source }
            }
            RunError::Failed {
                command,
                status,
                stderr,
            } => RenderError::Failed {
                command,
                status,
                stderr,
            },
            RunError::TimedOut { command, timeout } => RenderError::TimedOut { command, timeout },
            RunError::OutputTooLarge { command, limit, .. } => {
                RenderError::OutputTooLarge { command, limit }
            }
            RunError::NotUtf8 { command } => RenderError::NotUtf8 { command },
        }
    }
}

/// What a successful run printed.
#[derive(Debug)]
pub struct Output {
    /// Its standard output, whole (at most [`Program::max_output`] bytes).
    pub stdout: Vec<u8>,
    /// An excerpt of its standard error (as in errors), secrets removed.
    pub stderr: String,
    /// How it exited (success).
    pub status: ExitStatus,
}

/// One program to run, with its limits. Built like [`std::process::Command`], run with
/// [`Program::run`] (blocking: async callers run it on a blocking thread).
///
/// ```no_run
/// use std::time::Duration;
/// use driftguard_sources::process::{Network, Program};
///
/// let out = Program::new("helm")
///     .args(["template", "shop", "."])
///     .current_dir("/charts/shop")
///     .env("HELM_CACHE_HOME", "/tmp/scratch/helm-cache")
///     .timeout(Duration::from_secs(120))
///     .max_output(256 * 1024 * 1024)
///     .network(Network::Deny)
///     .display("helm template shop charts/shop")
///     .run_text()?;
/// # Ok::<(), driftguard_sources::process::RunError>(())
/// ```
#[derive(Clone)]
pub struct Program {
    program: PathBuf,
    args: Vec<OsString>,
    cwd: Option<PathBuf>,
    env: Vec<(OsString, OsString)>,
    pass: Vec<String>,
    inherit: bool,
    timeout: Duration,
    max_output: u64,
    max_stderr: u64,
    network: Network,
    display: Option<String>,
    secrets: Vec<String>,
}

impl std::fmt::Debug for Program {
    /// The command line as displayed; no variable values (they may hold credentials).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Program")
            .field("display", &self.command_line())
            .field("cwd", &self.cwd)
            .field("env", &self.env.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .field("pass", &self.pass)
            .field("inherit", &self.inherit)
            .field("timeout", &self.timeout)
            .field("max_output", &self.max_output)
            .field("max_stderr", &self.max_stderr)
            .field("network", &self.network)
            .finish_non_exhaustive()
    }
}

impl Program {
    /// A program (a path, or a name looked for on `PATH`), with no arguments, the default
    /// limits (60 s, 64 MiB of standard output, 16 MiB of standard error), the network and
    /// only [`BASE_ENV`] of the environment.
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Program {
            program: program.into(),
            args: Vec::new(),
            cwd: None,
            env: Vec::new(),
            pass: Vec::new(),
            inherit: false,
            timeout: Duration::from_secs(60),
            max_output: 64 * 1024 * 1024,
            max_stderr: 16 * 1024 * 1024,
            network: Network::Allow,
            display: None,
            secrets: Vec::new(),
        }
    }

    /// Adds an argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Where it runs (default: where DriftGuard runs).
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// Sets a variable on purpose (it wins over one passed on).
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Passes on these variables of DriftGuard's environment, when set (on top of
    /// [`BASE_ENV`]).
    pub fn pass_env<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.pass
            .extend(names.into_iter().map(|n| n.as_ref().to_owned()));
        self
    }

    /// Passes on the whole environment (but `GIT_DIR`, `GIT_WORK_TREE`, `GIT_INDEX_FILE`):
    /// for a program that reads its credentials there by design (terraform's providers).
    pub fn inherit_env(mut self) -> Self {
        self.inherit = true;
        self
    }

    /// Longest it may run; it is stopped with its process group after that.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Most bytes it may print on standard output; it is stopped when it prints more.
    pub fn max_output(mut self, bytes: u64) -> Self {
        self.max_output = bytes;
        self
    }

    /// Most bytes it may print on standard error; it is stopped when it prints more.
    pub fn max_stderr(mut self, bytes: u64) -> Self {
        self.max_stderr = bytes;
        self
    }

    /// Whether it may use the network.
    pub fn network(mut self, network: Network) -> Self {
        self.network = network;
        self
    }

    /// The command line its errors show (default: the program). Leave out what must not be
    /// shown (a URL with a token).
    pub fn display(mut self, display: impl Into<String>) -> Self {
        self.display = Some(display.into());
        self
    }

    /// A value that must not appear in its error messages (a token its standard error might
    /// echo): replaced with `<redacted>`. Empty values are ignored.
    pub fn redact(mut self, secret: impl Into<String>) -> Self {
        let secret = secret.into();
        if !secret.is_empty() {
            self.secrets.push(secret);
        }
        self
    }

    /// The command line as errors show it.
    pub fn command_line(&self) -> String {
        self.display
            .clone()
            .unwrap_or_else(|| self.program.display().to_string())
    }

    /// Runs it and returns its standard output as text.
    pub fn run_text(&self) -> Result<String, RunError> {
        let out = self.run()?;
        String::from_utf8(out.stdout).map_err(|_| RunError::NotUtf8 {
            command: self.command_line(),
        })
    }

    /// The [`Command`] to spawn: scrubbed environment, process group, no standard input,
    /// without network when asked and possible.
    fn command(&self) -> Command {
        let isolation = match self.network {
            Network::Deny => network_isolation(),
            Network::Allow => None,
        };
        let mut cmd = match isolation {
            Some(prefix) => {
                let mut c = Command::new(&prefix[0]);
                c.args(&prefix[1..]).arg(&self.program);
                c
            }
            None => Command::new(&self.program),
        };
        cmd.args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        if self.inherit {
            for k in NEVER {
                cmd.env_remove(k);
            }
        } else {
            cmd.env_clear();
            for name in BASE_ENV
                .iter()
                .copied()
                .chain(self.pass.iter().map(String::as_str))
            {
                if NEVER.contains(&name) {
                    continue;
                }
                if let Some(v) = std::env::var_os(name) {
                    cmd.env(name, v);
                }
            }
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        cmd
    }

    /// Runs it to its end, within its limits. A non-zero exit is [`RunError::Failed`].
    pub fn run(&self) -> Result<Output, RunError> {
        let command = self.command_line();
        let child = self.command().spawn().map_err(|source| RunError::Spawn {
            command: command.clone(),
            source,
        })?;
        let mut child = Running::new(child);
        let started = Instant::now();
        let (tx, rx) = mpsc::channel();
        if let Some(stdout) = child.child.stdout.take() {
            let tx = tx.clone();
            let limit = self.max_output;
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let read = stdout.take(limit.saturating_add(1)).read_to_end(&mut buf);
                let event = match read {
                    Ok(_) if buf.len() as u64 > limit => Event::TooMuch(Stream::Stdout),
                    Ok(_) => Event::Stdout(buf),
                    Err(e) => Event::Failed(e),
                };
                let _ = tx.send(event);
            });
        } else {
            let _ = tx.send(Event::Stdout(Vec::new()));
        }
        if let Some(stderr) = child.child.stderr.take() {
            let tx = tx.clone();
            let limit = self.max_stderr;
            std::thread::spawn(move || {
                let _ = tx.send(drain_stderr(stderr, limit));
            });
        } else {
            let _ = tx.send(Event::Stderr(Kept::default()));
        }
        drop(tx);
        let timed_out = || RunError::TimedOut {
            command: command.clone(),
            timeout: self.timeout,
        };
        let too_much = |stream: Stream| RunError::OutputTooLarge {
            command: command.clone(),
            stream,
            limit: match stream {
                Stream::Stdout => self.max_output,
                Stream::Stderr => self.max_stderr,
            },
        };
        let read_error = |source| RunError::Read {
            command: command.clone(),
            source,
        };
        let deadline = started + self.timeout;
        let mut stdout: Option<Vec<u8>> = None;
        let mut stderr: Option<Kept> = None;
        let stopped = |stop: Stop| match stop {
            Stop::TooMuch(stream) => too_much(stream),
            Stop::Read(e) => read_error(e),
        };
        // until the program exits: its output read as it comes, the limits watched
        let mut poll = Duration::from_millis(1);
        let status = loop {
            match rx.recv_timeout(poll) {
                Ok(event) => {
                    if let Err(stop) = collect(event, &mut stdout, &mut stderr) {
                        child.stop();
                        return Err(stopped(stop));
                    }
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => std::thread::sleep(poll),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            poll = (poll * 2).min(Duration::from_millis(10));
            match child.exited() {
                Ok(true) => break child.finish().map_err(read_error)?,
                Ok(false) if Instant::now() >= deadline => {
                    child.stop();
                    return Err(timed_out());
                }
                Ok(false) => {}
                Err(e) => {
                    child.stop();
                    return Err(read_error(e));
                }
            }
        };
        // what is left in the pipes: the group is gone, so they close unless a process
        // that left the group holds them; then wait no longer than the time left
        let grace = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(100));
        let until = Instant::now() + grace;
        while stdout.is_none() || stderr.is_none() {
            let left = until.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(event) => collect(event, &mut stdout, &mut stderr).map_err(stopped)?,
                Err(_) if stdout.is_none() => return Err(timed_out()),
                Err(_) => break,
            }
        }
        let stdout = stdout.unwrap_or_default();
        let stderr = excerpt(&stderr.unwrap_or_default().text(), &self.secrets);
        if !status.success() {
            return Err(RunError::Failed {
                command,
                status: status.to_string(),
                stderr,
            });
        }
        Ok(Output {
            stdout,
            stderr,
            status,
        })
    }
}

/// What a reader thread tells the run.
enum Event {
    /// Standard output, whole.
    Stdout(Vec<u8>),
    /// Standard error, its beginning and end.
    Stderr(Kept),
    /// A stream passed its cap.
    TooMuch(Stream),
    /// Standard output could not be read.
    Failed(std::io::Error),
}

/// Why a run is stopped after an [`Event`].
enum Stop {
    TooMuch(Stream),
    Read(std::io::Error),
}

/// Keeps what a reader thread sent.
fn collect(
    event: Event,
    stdout: &mut Option<Vec<u8>>,
    stderr: &mut Option<Kept>,
) -> Result<(), Stop> {
    match event {
        Event::Stdout(b) => *stdout = Some(b),
        Event::Stderr(k) => *stderr = Some(k),
        Event::TooMuch(s) => return Err(Stop::TooMuch(s)),
        Event::Failed(e) => return Err(Stop::Read(e)),
    }
    Ok(())
}

/// The beginning and the end of standard error.
#[derive(Default)]
struct Kept {
    head: Vec<u8>,
    tail: VecDeque<u8>,
    skipped: u64,
}

impl Kept {
    fn push(&mut self, mut bytes: &[u8]) {
        if self.head.len() < STDERR_KEPT {
            let n = bytes.len().min(STDERR_KEPT - self.head.len());
            self.head.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
        }
        self.tail.extend(bytes);
        if self.tail.len() > STDERR_KEPT {
            let cut = self.tail.len() - STDERR_KEPT;
            self.tail.drain(..cut);
            self.skipped += cut as u64;
        }
    }

    fn text(&self) -> String {
        let mut text = String::from_utf8_lossy(&self.head).into_owned();
        if self.skipped > 0 {
            text.push_str(&format!("\n[{} bytes left out]\n", self.skipped));
        }
        let (a, b) = self.tail.as_slices();
        let mut tail = Vec::with_capacity(self.tail.len());
        tail.extend_from_slice(a);
        tail.extend_from_slice(b);
        // the kept end may start inside a character
        let start = if self.skipped > 0 {
            tail.iter()
                .position(|&b| (b & 0xC0) != 0x80)
                .unwrap_or(tail.len())
        } else {
            0
        };
        text.push_str(&String::from_utf8_lossy(&tail[start..]));
        text
    }
}

/// Reads standard error to its end, keeping its beginning and end; too much is
/// [`Event::TooMuch`].
fn drain_stderr(mut stderr: impl Read, limit: u64) -> Event {
    let mut kept = Kept::default();
    let mut total: u64 = 0;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match stderr.read(&mut buf) {
            Ok(0) => return Event::Stderr(kept),
            Ok(n) => {
                total += n as u64;
                if total > limit {
                    return Event::TooMuch(Stream::Stderr);
                }
                kept.push(&buf[..n]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // what was read is still worth showing
            Err(_) => return Event::Stderr(kept),
        }
    }
}

/// Standard error for a message: secrets replaced, lines joined with `; ` (the core's
/// [`stderr_summary`]), at most [`STDERR_SHOWN`] characters: its beginning and its end
/// (where a program says why it failed) around `…`.
fn excerpt(stderr: &str, secrets: &[String]) -> String {
    let text = driftguard_core::secret::redact_values(stderr, secrets);
    let joined = stderr_summary(&text, usize::MAX);
    if joined.chars().count() <= STDERR_SHOWN {
        return joined;
    }
    let head: String = joined.chars().take(STDERR_SHOWN * 3 / 5).collect();
    let tail_len = STDERR_SHOWN - STDERR_SHOWN * 3 / 5;
    let skip = joined.chars().count() - tail_len;
    let tail: String = joined.chars().skip(skip).collect();
    format!("{head}…{tail}")
}

/// A started child; its process group is killed when it is dropped unfinished.
struct Running {
    child: Child,
    done: bool,
}

impl Running {
    fn new(child: Child) -> Self {
        Running { child, done: false }
    }

    /// Whether the program exited. On Linux it is not reaped yet (`WNOWAIT`): its id, which
    /// is its group's, stays taken until [`Running::finish`].
    fn exited(&mut self) -> std::io::Result<bool> {
        #[cfg(target_os = "linux")]
        {
            use rustix::process::{waitid, Pid, WaitId, WaitIdOptions};
            let pid = Pid::from_child(&self.child);
            let status = waitid(
                WaitId::Pid(pid),
                WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT,
            )?;
            Ok(status.is_some())
        }
        #[cfg(not(target_os = "linux"))]
        {
            Ok(self.child.try_wait()?.is_some())
        }
    }

    /// The program exited: whatever it left running in its group is killed, it is reaped.
    fn finish(&mut self) -> std::io::Result<ExitStatus> {
        kill_group(self.child.id());
        let status = self.child.wait();
        self.done = true;
        status
    }

    /// Stops the program and its group (a timeout, a cap, a drop).
    fn stop(&mut self) {
        if self.done {
            return;
        }
        kill_group(self.child.id());
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.done = true;
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Kills the process group `pgid` (a child's own: [`Program`] starts each in a new group).
fn kill_group(pgid: u32) {
    #[cfg(unix)]
    {
        use rustix::process::{kill_process_group, Pid, Signal};
        if let Some(pid) = i32::try_from(pgid).ok().and_then(Pid::from_raw) {
            let _ = kill_process_group(pid, Signal::KILL);
        }
    }
    #[cfg(not(unix))]
    let _ = pgid;
}

/// Whether programs run with [`Network::Deny`] really have no network here: the command
/// prefix that takes it away (`unshare --user --map-current-user --net --`, or with
/// `--map-root-user` where util-linux is older), probed once. `None` where the OS does not
/// allow it without privileges; such programs then run with the network.
pub fn network_isolation() -> Option<&'static [OsString]> {
    static PREFIX: OnceLock<Option<Vec<OsString>>> = OnceLock::new();
    PREFIX
        .get_or_init(|| {
            let prefix = probe_isolation();
            match &prefix {
                Some(p) => tracing::debug!(prefix = ?p, "renderers run without network"),
                None => tracing::info!(
                    "renderers run with the network: unprivileged network namespaces (unshare --user --net) are not available here"
                ),
            }
            prefix
        })
        .as_deref()
}

fn probe_isolation() -> Option<Vec<OsString>> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let unshare = find_program("unshare", None)?;
    for map in ["--map-current-user", "--map-root-user"] {
        let prefix: Vec<OsString> = vec![
            unshare.clone().into_os_string(),
            "--user".into(),
            map.into(),
            "--net".into(),
            "--".into(),
        ];
        // `true` through the prefix, as a program will be run through it
        // with the network as far as this runner goes: a `Deny` here would ask for the very
        // probe being made (a recursive `OnceLock` initialisation deadlocks)
        let ok = Program::new(&unshare)
            .network(Network::Allow)
            .args(&prefix[1..])
            .arg("true")
            .timeout(Duration::from_secs(10))
            .max_output(4096)
            .run()
            .is_ok();
        if ok {
            return Some(prefix);
        }
    }
    None
}

/// A program named as a path (holding `/`, relative to `base` when given) or a name found on
/// `PATH`.
pub fn find_program(name: &str, base: Option<&Path>) -> Option<PathBuf> {
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

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn sh(script: &str) -> Program {
        Program::new("sh")
            .args(["-c", script])
            .display("sh test")
            .timeout(Duration::from_secs(20))
    }

    fn alive(pid: &str) -> bool {
        Command::new("kill")
            .args(["-0", pid])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    #[test]
    fn standard_output_is_returned() {
        let out = sh("printf 'a: 1\\n'; echo note >&2").run().expect("runs");
        assert_eq!(out.stdout, b"a: 1\n");
        assert_eq!(out.stderr, "note");
        assert!(out.status.success());
    }

    #[test]
    fn a_failure_names_the_program_its_status_and_its_stderr() {
        let e = sh("echo first >&2; echo 'second line' >&2; exit 3")
            .run()
            .expect_err("fails");
        assert_eq!(
            e.to_string(),
            "sh test failed (exit status: 3): first; second line"
        );
    }

    #[test]
    fn a_long_stderr_shows_its_beginning_and_its_end() {
        let e = sh("echo begin >&2; i=0; while [ $i -lt 2000 ]; do echo noise-$i >&2; i=$((i+1)); done; echo 'fatal: the cause' >&2; exit 1")
            .run()
            .expect_err("fails");
        let RunError::Failed { stderr, .. } = &e else {
            panic!("{e:?}")
        };
        assert!(stderr.starts_with("begin; noise-0"), "{stderr}");
        assert!(stderr.ends_with("fatal: the cause"), "{stderr}");
        assert!(stderr.contains('…'), "{stderr}");
        assert!(stderr.chars().count() <= STDERR_SHOWN + 1, "{stderr}");
    }

    #[test]
    fn secrets_are_removed_from_messages() {
        let e = sh("echo 'Authorization: Basic s3cr3t-t0ken' >&2; exit 1")
            .redact("s3cr3t-t0ken")
            .run()
            .expect_err("fails");
        let text = e.to_string();
        assert!(!text.contains("s3cr3t"), "{text}");
        assert!(text.contains("Basic <redacted>"), "{text}");
    }

    #[test]
    fn a_chatty_stderr_never_stalls_the_program() {
        // 4 MiB on standard error, far more than a pipe holds, then the output
        let started = Instant::now();
        let out = sh("head -c 4194304 /dev/zero | tr '\\0' x >&2; echo done")
            .timeout(Duration::from_secs(30))
            .run()
            .expect("runs");
        assert_eq!(out.stdout, b"done\n");
        assert!(started.elapsed() < Duration::from_secs(20));
    }

    #[test]
    fn standard_error_is_capped() {
        let started = Instant::now();
        let e = sh("yes >&2")
            .max_stderr(64 * 1024)
            .timeout(Duration::from_secs(60))
            .run()
            .expect_err("stopped");
        assert!(matches!(
            e,
            RunError::OutputTooLarge {
                stream: Stream::Stderr,
                limit: 65536,
                ..
            }
        ));
        assert_eq!(
            e.to_string(),
            "sh test printed more than 65536 bytes on its standard error (it was stopped; raise the limit if this is expected)"
        );
        assert!(started.elapsed() < Duration::from_secs(30));
    }

    #[test]
    fn standard_output_is_capped() {
        let e = sh("yes").max_output(1000).run().expect_err("stopped");
        assert_eq!(
            e.to_string(),
            "sh test printed more than 1000 bytes (it was stopped; raise the limit if this is expected)"
        );
    }

    #[test]
    fn a_timeout_stops_the_whole_group() {
        let dir = tempfile::tempdir().expect("temp dir");
        let pid_file = dir.path().join("pid");
        let started = Instant::now();
        let e = sh(&format!(
            "sleep 600 & echo $! > '{}'; wait",
            pid_file.display()
        ))
        .timeout(Duration::from_millis(300))
        .run()
        .expect_err("times out");
        assert_eq!(
            e.to_string(),
            "sh test did not finish within 0.3s (it was stopped)"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
        let pid = std::fs::read_to_string(&pid_file).expect("pid");
        let gone = Instant::now();
        while alive(pid.trim()) && gone.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!alive(pid.trim()), "the background sleep was left running");
    }

    #[test]
    fn what_a_program_leaves_behind_is_stopped_when_it_exits() {
        // the background sleep holds standard output: without the group killed at the
        // program's exit, the run would wait for it until its timeout
        let dir = tempfile::tempdir().expect("temp dir");
        let pid_file = dir.path().join("pid");
        let started = Instant::now();
        let out = sh(&format!(
            "sleep 600 & echo $! > '{}'; echo done",
            pid_file.display()
        ))
        .timeout(Duration::from_secs(30))
        .run()
        .expect("runs");
        assert_eq!(out.stdout, b"done\n");
        assert!(started.elapsed() < Duration::from_secs(10));
        let pid = std::fs::read_to_string(&pid_file).expect("pid");
        let gone = Instant::now();
        while alive(pid.trim()) && gone.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!alive(pid.trim()), "the background sleep was left running");
    }

    #[test]
    fn a_missing_program_is_a_spawn_error() {
        let e = Program::new("/nonexistent/driftguard-no-such-program")
            .display("no-such-program")
            .run()
            .expect_err("missing");
        assert!(matches!(e, RunError::Spawn { .. }), "{e:?}");
        assert_eq!(e.to_string(), "cannot run no-such-program");
    }

    #[test]
    fn the_environment_is_scrubbed_to_the_allow_list() {
        // a variable every test process has (cargo sets it) but no program is given
        assert!(std::env::var_os("CARGO_PKG_NAME").is_some());
        let out = sh("echo \"pkg=${CARGO_PKG_NAME:-unset} path=${PATH:+set} set=$SET_ON_PURPOSE\"")
            .env("SET_ON_PURPOSE", "yes")
            .run_text()
            .expect("runs");
        assert_eq!(out, "pkg=unset path=set set=yes\n");
        let out = sh("echo \"pkg=${CARGO_PKG_NAME:-unset}\"")
            .pass_env(["CARGO_PKG_NAME"])
            .run_text()
            .expect("runs");
        assert_eq!(out, "pkg=driftguard-sources\n");
        let out = sh("echo \"pkg=${CARGO_PKG_NAME:-unset}\"")
            .inherit_env()
            .run_text()
            .expect("runs");
        assert_eq!(out, "pkg=driftguard-sources\n");
    }

    #[test]
    fn without_network_only_a_loopback_is_left() {
        let out = sh("cat /proc/net/dev")
            .network(Network::Deny)
            .run_text()
            .expect("runs");
        let interfaces: Vec<&str> = out
            .lines()
            .skip(2)
            .filter_map(|l| l.split(':').next())
            .map(str::trim)
            .collect();
        match network_isolation() {
            Some(_) => assert_eq!(interfaces, ["lo"], "{out}"),
            // not available here: the program runs, with the network
            None => assert!(!interfaces.is_empty(), "{out}"),
        }
    }

    #[test]
    fn a_dropped_run_stops_its_group() {
        // `Running` is dropped on a panic of the caller: the group is killed then too
        use std::os::unix::process::CommandExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let pid_file = dir.path().join("pid");
        let child = Command::new("sh")
            .args([
                "-c",
                &format!("sleep 600 & echo $! > '{}'; wait", pid_file.display()),
            ])
            .process_group(0)
            .spawn()
            .expect("spawn");
        let waited = Instant::now();
        while std::fs::read_to_string(&pid_file).map_or(true, |p| !p.ends_with('\n'))
            && waited.elapsed() < Duration::from_secs(5)
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(Running::new(child));
        let pid = std::fs::read_to_string(&pid_file).expect("pid");
        let gone = Instant::now();
        while alive(pid.trim()) && gone.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!alive(pid.trim()), "the background sleep was left running");
    }
}
