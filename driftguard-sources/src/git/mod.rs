//! The Git source: a repository cloned into a cache folder, polled by fetching, and read
//! straight from its object database with `gix` (no checkout).
//!
//! - **Remotes**: a local path, `file://`, `git://`, `http(s)://` or `ssh://` URL. Clone and
//!   fetch run the system `git` binary (`git clone --mirror`, `git fetch --prune`), so every
//!   transport `git` knows works; everything else (refs, trees, blobs, commits, history) is
//!   read with `gix`. Credentials come from the configuration or the environment only
//!   ([`GitAuth`]), are handed to `git` through its environment (never on the command line,
//!   never written to the cache's config), and are never logged.
//! - **Manifests**: every `.yaml`, `.yml` and `.json` file below the environment's folder
//!   (only those directly in it with `recurse: false`), filtered by include/exclude globs
//!   (relative to that folder, `*` also matches `/`); files and folders whose names start with
//!   `.` are skipped. Multi-document YAML and `List` kinds are read by
//!   [`driftguard_core::manifest::parse_file`].
//! - **Kustomize**: a folder holding `kustomization.yaml` is rendered as a whole (`kubectl
//!   kustomize`, or the configured binary) from a copy of the revision's tree in a temporary
//!   folder; one inflating Helm charts (`helmCharts:`) with `--enable-helm` when helm is found.
//!   It runs within [`KustomizeLimits`] (a timeout and an output cap, its process group
//!   stopped as a whole), like every program DriftGuard runs, `git` included: all go through
//!   [`crate::process`], with a scrubbed environment.
//!   A Helm chart (`Chart.yaml`) met among plain manifests is skipped with a note.
//! - **Renderers**: with [`GitSourceConfig::render`], the environment's folder is rendered
//!   instead of read: a Helm chart (`helm template`), a command, or the folder built with
//!   kustomize and Argo CD's or Flux's options ([`crate::render`]). Only the inputs are written
//!   out (the chart folder and its value files; the whole tree for a command or a
//!   kustomization), and the rendering is kept by the inputs' key (their tree and blob ids,
//!   and the renderer's options): a revision whose inputs did not change is not rendered
//!   again. A tree written out holds no symbolic link and no `.git` entry, as `git` would
//!   check it out.
//! - **Incremental**: parsed files are kept by blob id; loading another revision re-parses only
//!   the blobs that changed.
//! - **History**: [`GitRepoSource`] answers [`GitSource::history`] by walking first parents;
//!   a rendered environment's earlier revisions are rendered on demand (only where the inputs
//!   changed, at most ten renderings a walk, the last 32 kept).

mod adopt;

pub use crate::tree::KustomizeLimits;

pub use adopt::{
    adopt_branch, adoption_revision, push_adoption, push_adoption_at, push_files_at, AdoptError,
    Adopted, PushedFiles, UnsafePath,
};
mod cache;
mod history;
mod manifests;
mod objects;
mod reader;
mod refs;
mod rendered;
mod worktree;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use driftguard_core::error::chain;
use driftguard_core::id::ResourceId;
use driftguard_core::model::Revision;
use driftguard_core::ports::{DesiredSet, GitSource, ObjectVersion, SourceError};

pub(crate) use self::reader::Reader;
use self::reader::ReaderOptions;
use crate::process::{Network, Program, RunError, GIT_ENV};
use crate::render::Renderer;
use crate::tree::select::Filter;

pub(crate) use crate::tree::kustomize::{
    find_binary as find_kustomize, render_folder as render_kustomization,
};
pub(crate) use crate::tree::select::kustomization_path;
pub(crate) use crate::tree::select::{extend_set, parse_bytes, plan, FileObjects};

/// Credentials for a remote. Taken from the configuration or the environment, never from a
/// file in the repository. `Debug` does not show the token.
#[derive(Clone, Default)]
pub struct GitAuth {
    /// An HTTP(S) token, given directly.
    pub token: Option<String>,
    /// The name of an environment variable holding an HTTP(S) token.
    pub token_env: Option<String>,
    /// The user name sent with the token (default `x-access-token`).
    pub username: Option<String>,
    /// A private SSH key file for `ssh://` and `user@host:path` remotes.
    pub ssh_key_path: Option<PathBuf>,
}

impl fmt::Debug for GitAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitAuth")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("token_env", &self.token_env)
            .field("username", &self.username)
            .field("ssh_key_path", &self.ssh_key_path)
            .finish()
    }
}

impl GitAuth {
    fn token(&self) -> Option<String> {
        self.token.clone().or_else(|| {
            self.token_env
                .as_ref()
                .and_then(|v| std::env::var(v).ok())
                .filter(|t| !t.is_empty())
        })
    }
}

/// Where and what to read.
#[derive(Clone, Debug)]
pub struct GitSourceConfig {
    /// Remote: a local path, `file://`, `git://`, `http(s)://` or `ssh://` URL.
    pub url: String,
    /// Branch, tag, full ref name (`refs/...`) or commit id; empty or `HEAD` for the remote's
    /// default branch.
    pub reference: String,
    /// Folder inside the repository holding the environment's manifests (empty: the root).
    pub path: String,
    /// Globs (relative to `path`) a file must match one of (empty: all manifest files).
    pub include: Vec<String>,
    /// Globs (relative to `path`) of files to leave out.
    pub exclude: Vec<String>,
    /// Whether files in subfolders of `path` are read (default true); without, only the
    /// folder's own files are, as an Argo CD directory Application without `recurse` reads
    /// them.
    pub recurse: bool,
    /// Folder holding the clones (one bare mirror per URL).
    pub cache_dir: PathBuf,
    /// Credentials.
    pub auth: Option<GitAuth>,
    /// The binary rendering kustomizations: `kubectl` (run as `kubectl kustomize`) or
    /// `kustomize` (run as `kustomize build`). Default: `kubectl`, else `kustomize`, on `PATH`.
    pub kustomize_bin: Option<PathBuf>,
    /// The helm binary inflating the Helm charts of kustomizations (`helmCharts:`). Default:
    /// `helm` on `PATH`.
    pub helm_bin: Option<PathBuf>,
    /// How long a kustomization's rendering may run and how much it may print.
    pub kustomize_limits: KustomizeLimits,
    /// How the environment's folder is rendered (a Helm chart, a command) instead of read as
    /// manifest files; the include and exclude globs do not apply then.
    pub render: Option<Renderer>,
    /// Longest a clone or fetch may take.
    pub timeout: Duration,
    /// Threads parsing files when many changed (0: one per core, at most 8).
    pub parse_threads: usize,
    /// What one file may cost (a larger one is an error of its own, not read).
    pub limits: driftguard_core::limits::Limits,
}

impl GitSourceConfig {
    /// A configuration with defaults: default branch, the whole repository, no credentials.
    pub fn new(url: impl Into<String>, cache_dir: impl Into<PathBuf>) -> Self {
        GitSourceConfig {
            url: url.into(),
            reference: String::new(),
            path: String::new(),
            include: Vec::new(),
            exclude: Vec::new(),
            recurse: true,
            cache_dir: cache_dir.into(),
            auth: None,
            kustomize_bin: None,
            helm_bin: None,
            kustomize_limits: KustomizeLimits::default(),
            render: None,
            timeout: Duration::from_secs(300),
            parse_threads: 0,
            limits: driftguard_core::limits::Limits::default(),
        }
    }

    /// Sets the branch, tag or commit.
    pub fn reference(mut self, reference: impl Into<String>) -> Self {
        self.reference = reference.into();
        self
    }

    /// Sets the folder inside the repository.
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// Renders the folder with `renderer` (a Helm chart, a command).
    pub fn render(mut self, renderer: Renderer) -> Self {
        self.render = Some(renderer);
        self
    }

    /// Sets how many threads parse files (0: one per core, at most 8; 1: the calling thread).
    pub fn parse_threads(mut self, threads: usize) -> Self {
        self.parse_threads = threads;
        self
    }
}

/// A remote URL with any password or token removed, for messages.
pub fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
        if let Some((user, host)) = authority.rsplit_once('@') {
            let user = user.split(':').next().unwrap_or("");
            let sep = if path.is_empty() && !rest.contains('/') {
                ""
            } else {
                "/"
            };
            return format!("{scheme}://{user}@{host}{sep}{path}");
        }
    }
    url.to_owned()
}

/// A Git repository as the desired side of one environment.
pub struct GitRepoSource {
    config: GitSourceConfig,
    mirror: PathBuf,
    reader: Arc<Reader>,
    /// The revision last reported by `fetch`.
    last: Mutex<Option<String>>,
    /// Why the last fetch failed, if it did.
    fetch_error: Mutex<Option<String>>,
}

impl fmt::Debug for GitRepoSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GitRepoSource({})", self.describe())
    }
}

/// Most bytes a `git` command may print on its standard output (the commands run print
/// nothing there: `--quiet`, `cat-file -e`).
const GIT_MAX_OUTPUT: u64 = 1024 * 1024;

/// Runs one `git` command for the remote through the one runner of programs
/// ([`crate::process`]): a timeout, its own process group (an `ssh` or `git-remote-https` it
/// started is stopped with it), standard output and error drained while it runs, and a
/// scrubbed environment: [`BASE_ENV`](crate::process::BASE_ENV), [`GIT_ENV`] (proxies,
/// certificates, SSH, git's own configuration files) and what is set here on purpose: no
/// terminal prompt, the credentials (`GIT_CONFIG_*`, `GIT_SSH_COMMAND`). The credentials are
/// never on the command line, and removed from its error messages, as is a password in a URL
/// argument; the command line shown is the step only (`git clone`).
fn run_git(
    args: &[&std::ffi::OsStr],
    cwd: Option<&Path>,
    auth: Option<&GitAuth>,
    timeout: Duration,
) -> Result<(), String> {
    let mut run = Program::new("git")
        .args(args)
        .pass_env(GIT_ENV)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "true")
        .timeout(timeout)
        .max_output(GIT_MAX_OUTPUT)
        .network(Network::Allow);
    if let Some(dir) = cwd {
        run = run.current_dir(dir);
    }
    if let Some(auth) = auth {
        if let Some(token) = auth.token() {
            let user = auth.username.as_deref().unwrap_or("x-access-token");
            let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{token}"));
            run = run
                .env("GIT_CONFIG_COUNT", "1")
                .env("GIT_CONFIG_KEY_0", "http.extraHeader")
                .env(
                    "GIT_CONFIG_VALUE_0",
                    format!("Authorization: Basic {basic}"),
                )
                .redact(basic)
                .redact(token);
        }
        if let Some(key) = &auth.ssh_key_path {
            run = run.env(
                "GIT_SSH_COMMAND",
                format!(
                    "ssh -i '{}' -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=accept-new",
                    key.display()
                ),
            );
        }
    }
    for a in args {
        if let Some(password) = a.to_str().and_then(url_password) {
            run = run.redact(password);
        }
    }
    // the step only (`git clone`): the arguments may hold a URL with a token
    let step = args
        .iter()
        .filter_map(|a| a.to_str())
        .find(|a| !a.starts_with('-') && !a.contains('='))
        .unwrap_or("");
    let run = run.display(format!("git {step}"));
    match run.run() {
        Ok(_) => Ok(()),
        Err(RunError::Failed { status, stderr, .. }) => Err(format!("git {status}: {stderr}")),
        Err(RunError::TimedOut { timeout, .. }) => {
            Err(format!("git timed out after {}s", timeout.as_secs()))
        }
        Err(e) => Err(chain(&e)),
    }
}

/// The password of a URL (`scheme://user:password@host/...`), as [`redact_url`] removes it.
fn url_password(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("://")?;
    let authority = rest.split_once('/').map_or(rest, |(a, _)| a);
    let (user, _) = authority.rsplit_once('@')?;
    let (_, password) = user.split_once(':')?;
    (!password.is_empty()).then_some(password)
}

fn mirror_path(config: &GitSourceConfig) -> PathBuf {
    let h = xxhash_rust::xxh3::xxh3_64(config.url.as_bytes());
    config.cache_dir.join(format!("{h:016x}.git"))
}

fn unreachable(config: &GitSourceConfig, message: String) -> SourceError {
    SourceError::Unreachable {
        target: redact_url(&config.url),
        source: message.into(),
    }
}

/// Clones the remote into the cache if needed, else fetches. Returns why a fetch failed.
fn prepare(config: &GitSourceConfig, mirror: &Path) -> Result<Option<String>, SourceError> {
    if mirror.join("HEAD").is_file() {
        return Ok(fetch_blocking(config, mirror).err());
    }
    std::fs::create_dir_all(&config.cache_dir).map_err(|e| SourceError::Backend {
        context: format!("cannot create cache folder {}", config.cache_dir.display()),
        source: Box::new(e),
    })?;
    let tmp = config.cache_dir.join(format!(
        ".{}.tmp-{}",
        mirror
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("clone"),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    let result = run_git(
        &[
            "clone".as_ref(),
            "--mirror".as_ref(),
            // a local path is cloned through the pack protocol too: packed objects, no links
            "--no-local".as_ref(),
            "--quiet".as_ref(),
            "--".as_ref(),
            config.url.as_ref(),
            tmp.as_os_str(),
        ],
        None,
        config.auth.as_ref(),
        config.timeout,
    );
    if let Err(message) = result {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(unreachable(config, message));
    }
    std::fs::rename(&tmp, mirror).map_err(|e| SourceError::Backend {
        context: format!("cannot move the clone to {}", mirror.display()),
        source: Box::new(e),
    })?;
    Ok(None)
}

fn fetch_blocking(config: &GitSourceConfig, mirror: &Path) -> Result<(), String> {
    // the URL may have changed in the configuration; it is never one holding a password we add
    let _ = run_git(
        &[
            "remote".as_ref(),
            "set-url".as_ref(),
            "origin".as_ref(),
            config.url.as_ref(),
        ],
        Some(mirror),
        None,
        config.timeout,
    );
    run_git(
        &[
            "fetch".as_ref(),
            "--prune".as_ref(),
            "--quiet".as_ref(),
            "origin".as_ref(),
        ],
        Some(mirror),
        config.auth.as_ref(),
        config.timeout,
    )
}

/// One clone or fetch at a time per mirror, shared by every source of the process that reads
/// it (environments on the same repository): a source asking while another's fetch runs waits
/// for it and takes its result instead of fetching again, so that N environments polling one
/// repository at the same moment cost one `git fetch`, not N (which would also contend for the
/// mirror's lock files).
struct Gate {
    /// When the last fetch ended, and how.
    last: tokio::sync::Mutex<Option<(std::time::Instant, Result<(), String>)>>,
    /// Clones and fetches run.
    runs: std::sync::atomic::AtomicU64,
}

impl Gate {
    /// The gate of `mirror` (one per path, for the life of the process).
    fn of(mirror: &Path) -> Arc<Gate> {
        static GATES: std::sync::OnceLock<Mutex<HashMap<PathBuf, Arc<Gate>>>> =
            std::sync::OnceLock::new();
        GATES
            .get_or_init(Mutex::default)
            .lock()
            .expect("gate lock is never poisoned")
            .entry(mirror.to_path_buf())
            .or_insert_with(|| {
                Arc::new(Gate {
                    last: tokio::sync::Mutex::new(None),
                    runs: std::sync::atomic::AtomicU64::new(0),
                })
            })
            .clone()
    }

    /// Fetches, unless a fetch that ended after this call began can answer for it.
    async fn fetch(
        &self,
        config: &GitSourceConfig,
        mirror: &Path,
    ) -> Result<Result<(), String>, SourceError> {
        let asked = std::time::Instant::now();
        let mut last = self.last.lock().await;
        if let Some((ended, result)) = last.as_ref() {
            if *ended >= asked {
                return Ok(result.clone());
            }
        }
        self.runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (config, m) = (config.clone(), mirror.to_path_buf());
        let result = blocking(move || Ok(fetch_blocking(&config, &m))).await?;
        *last = Some((std::time::Instant::now(), result.clone()));
        Ok(result)
    }

    /// Clones the remote if no mirror is there yet, else fetches (as [`Gate::fetch`]).
    /// Returns why a fetch failed.
    async fn prepare(
        &self,
        config: &GitSourceConfig,
        mirror: &Path,
    ) -> Result<Option<String>, SourceError> {
        let asked = std::time::Instant::now();
        let mut last = self.last.lock().await;
        if let Some((ended, result)) = last.as_ref() {
            if *ended >= asked && mirror.join("HEAD").is_file() {
                return Ok(result.clone().err());
            }
        }
        self.runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (config, m) = (config.clone(), mirror.to_path_buf());
        let prepared = blocking(move || prepare(&config, &m)).await?;
        *last = Some((
            std::time::Instant::now(),
            prepared.clone().map_or(Ok(()), Err),
        ));
        Ok(prepared)
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SourceError> + Send + 'static,
) -> Result<T, SourceError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| SourceError::Backend {
            context: "git task failed".into(),
            source: Box::new(e),
        })?
}

impl GitRepoSource {
    /// Opens the source: clones the remote into `cache_dir` (or fetches when a clone is
    /// there already; a failed fetch then keeps the cached revision and is reported by the
    /// next `desired`) and checks that the tracked ref exists.
    pub async fn open(config: GitSourceConfig) -> Result<Self, SourceError> {
        let mirror = mirror_path(&config);
        let filter = Filter::new(&config.path, &config.include, &config.exclude)?
            .with_recurse(config.recurse);
        let fetch_error = Gate::of(&mirror).prepare(&config, &mirror).await?;
        let cfg = config.clone();
        let m = mirror.clone();
        let (reader, head) = blocking(move || {
            let options = ReaderOptions {
                kustomize_bin: cfg.kustomize_bin.clone(),
                helm_bin: cfg.helm_bin.clone(),
                kustomize_limits: cfg.kustomize_limits,
                render: cfg.render.clone(),
                parse_threads: cfg.parse_threads,
                limits: cfg.limits,
            };
            let reader = Reader::open(&m, filter, options)?;
            let head = reader.resolve(&cfg.reference).map_err(|e| match e {
                SourceError::NotFound { what } => SourceError::NotFound {
                    what: format!("{what} in {}", redact_url(&cfg.url)),
                },
                other => other,
            })?;
            Ok((reader, head))
        })
        .await?;
        Ok(GitRepoSource {
            config,
            mirror,
            reader: Arc::new(reader),
            last: Mutex::new(Some(head.to_string())),
            fetch_error: Mutex::new(fetch_error),
        })
    }

    /// The bare mirror in the cache folder.
    pub fn mirror_path(&self) -> &Path {
        &self.mirror
    }

    /// How many files were parsed so far (files whose content was parsed before, at any
    /// recent revision, are not parsed again).
    pub fn files_parsed(&self) -> u64 {
        self.reader
            .parsed_count
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many renderings ran so far (a chart or a command; a revision whose inputs did not
    /// change reuses the last rendering and does not count).
    pub fn renders(&self) -> u64 {
        self.reader
            .render_count
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many times `git fetch` (or the first clone) ran on this source's mirror, in this
    /// process: every source reading the same remote shares them.
    pub fn fetches_run(&self) -> u64 {
        Gate::of(&self.mirror)
            .runs
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Why the last fetch failed, if it did.
    pub fn last_fetch_error(&self) -> Option<String> {
        self.fetch_error
            .lock()
            .expect("lock is never poisoned")
            .clone()
    }

    /// The reader of the mirror (for the Terraform source: working copies and file
    /// histories).
    pub(crate) fn reader(&self) -> Arc<Reader> {
        Arc::clone(&self.reader)
    }

    /// The commit the tracked ref points at (as of the last fetch).
    pub(crate) async fn head(&self) -> Result<gix::ObjectId, SourceError> {
        self.resolve().await
    }

    fn not_found(&self, e: SourceError) -> SourceError {
        match e {
            SourceError::NotFound { what } => SourceError::NotFound {
                what: format!("{what} in {}", redact_url(&self.config.url)),
            },
            other => other,
        }
    }

    async fn resolve(&self) -> Result<gix::ObjectId, SourceError> {
        let reader = Arc::clone(&self.reader);
        let reference = self.config.reference.clone();
        blocking(move || reader.resolve(&reference))
            .await
            .map_err(|e| self.not_found(e))
    }
}

#[async_trait]
impl GitSource for GitRepoSource {
    fn describe(&self) -> String {
        let r = if self.config.reference.is_empty() {
            "HEAD"
        } else {
            &self.config.reference
        };
        let path = crate::tree::select::normalize_prefix(&self.config.path);
        let rendered = self
            .config
            .render
            .as_ref()
            .map(|r| format!(" ({})", r.describe()))
            .unwrap_or_default();
        format!(
            "git {}@{}:{}{rendered}",
            redact_url(&self.config.url),
            r,
            if path.is_empty() { "/" } else { &path }
        )
    }

    async fn revision(&self) -> Result<Revision, SourceError> {
        let id = self.resolve().await?;
        let reader = Arc::clone(&self.reader);
        blocking(move || reader.revision(id)).await
    }

    async fn desired(&self, revision: &Revision) -> Result<DesiredSet, SourceError> {
        let id =
            gix::ObjectId::from_hex(revision.id.as_bytes()).map_err(|_| SourceError::NotFound {
                what: format!("revision {}", revision.id),
            })?;
        let reader = Arc::clone(&self.reader);
        let mut set = blocking(move || reader.load(id))
            .await
            .map_err(|e| self.not_found(e))?;
        if let Some(err) = self.last_fetch_error() {
            set.warnings.push(format!(
                "the last fetch from {} failed ({err}); reading the last good revision {}",
                redact_url(&self.config.url),
                revision.short()
            ));
        }
        Ok(set)
    }

    async fn fetch(&self) -> Result<Option<Revision>, SourceError> {
        let fetched = Gate::of(&self.mirror)
            .fetch(&self.config, &self.mirror)
            .await?;
        if let Err(message) = fetched {
            tracing::warn!(remote = %redact_url(&self.config.url), "fetch failed; keeping the last good revision");
            *self.fetch_error.lock().expect("lock is never poisoned") = Some(message.clone());
            return Err(unreachable(&self.config, message));
        }
        *self.fetch_error.lock().expect("lock is never poisoned") = None;
        let id = self.resolve().await?;
        let moved = {
            let mut last = self.last.lock().expect("lock is never poisoned");
            let moved = last.as_deref() != Some(id.to_string().as_str());
            *last = Some(id.to_string());
            moved
        };
        if !moved {
            return Ok(None);
        }
        let reader = Arc::clone(&self.reader);
        Ok(Some(blocking(move || reader.revision(id)).await?))
    }

    async fn revision_of(&self, reference: &str) -> Result<Revision, SourceError> {
        let resolve = || {
            let reader = Arc::clone(&self.reader);
            let reference = reference.to_owned();
            blocking(move || {
                let id = reader.resolve(&reference)?;
                reader.revision(id)
            })
        };
        match resolve().await {
            Err(SourceError::NotFound { .. }) => {
                // a pull request's ref or commit pushed since the last fetch: fetch (through
                // the mirror's gate, leaving the tracked ref's last revision alone) and look
                // again
                let fetched = Gate::of(&self.mirror)
                    .fetch(&self.config, &self.mirror)
                    .await?;
                if let Err(message) = fetched {
                    return Err(unreachable(&self.config, message));
                }
                resolve().await.map_err(|e| self.not_found(e))
            }
            other => other.map_err(|e| self.not_found(e)),
        }
    }

    async fn history(
        &self,
        id: &ResourceId,
        limit: usize,
    ) -> Result<Vec<ObjectVersion>, SourceError> {
        let tip = self.resolve().await?;
        let reader = Arc::clone(&self.reader);
        let id = id.clone();
        blocking(move || reader.history(tip, &id, limit)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("https://user:secret@example.com/org/repo.git"),
            "https://user@example.com/org/repo.git"
        );
        assert_eq!(
            redact_url("git://127.0.0.1:9418/r"),
            "git://127.0.0.1:9418/r"
        );
        assert_eq!(redact_url("/tmp/repo"), "/tmp/repo");
        assert_eq!(
            url_password("https://user:secret@example.com/org/repo.git"),
            Some("secret")
        );
        assert_eq!(url_password("https://user@example.com/org"), None);
        assert_eq!(url_password("https://example.com/a:b@c"), None);
        assert_eq!(url_password("/tmp/repo"), None);
    }

    #[test]
    fn auth_debug_hides_the_token() {
        let a = GitAuth {
            token: Some("s3cret".into()),
            ..GitAuth::default()
        };
        assert!(!format!("{a:?}").contains("s3cret"));
    }
}
