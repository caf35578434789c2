//! Running terraform for one check (blocking; the source runs it off the async threads).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use driftguard_core::ports::SourceError;
use driftguard_core::render::{display_command, RenderError};
use driftguard_core::terraform::{
    declare, Declaration, ModuleInfo, PlanRun, RawPlan, StateMark, TerraformError,
};
use serde::Deserialize;

use super::{Prepared, TerraformConfig};
use crate::render::{find_program, Run};

/// Most bytes one terraform command may print (a plan's JSON of a large state).
const MAX_OUTPUT: u64 = 1024 * 1024 * 1024;

/// The terraform binary: the configured one (a path, or a name on `PATH`), else `terraform`
/// on `PATH`.
pub fn find_terraform(binary: Option<&Path>) -> Option<PathBuf> {
    let name = binary.map_or_else(|| "terraform".to_owned(), |b| b.display().to_string());
    find_program(&name, None)
}

/// The content hash of a folder's Terraform files (`.tf`, `.tf.json`, `.tfvars`, `.hcl`),
/// folders whose names start with `.` left out.
pub(crate) fn folder_hash(dir: &Path) -> Result<u64, SourceError> {
    if !dir.is_dir() {
        return Err(TerraformError::Input {
            what: format!("root module folder {}", dir.display()),
            problem: "does not exist".into(),
        }
        .into());
    }
    let mut files = Vec::new();
    collect(dir, "", &mut files);
    files.sort();
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for (rel, path) in files {
        h.update(rel.as_bytes());
        h.update(b"\0");
        if let Ok(bytes) = std::fs::read(&path) {
            h.update(&bytes);
        }
        h.update(b"\0");
    }
    Ok(h.digest())
}

fn collect(dir: &Path, rel: &str, out: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let Some(name) = e.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if name.starts_with('.') && name != ".terraform.lock.hcl" {
            continue;
        }
        let r = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            collect(&e.path(), &r, out);
        } else if [".tf", ".tf.json", ".tfvars", ".tfvars.json", ".hcl"]
            .iter()
            .any(|x| name.ends_with(x))
        {
            out.push((r, e.path()));
        }
    }
}

/// Whether terraform's standard error says the cloud (or the state's backend) could not be
/// reached.
fn unreachable(stderr: &str) -> bool {
    [
        "connection refused",
        "no such host",
        "i/o timeout",
        "dial tcp",
        "TLS handshake timeout",
        "network is unreachable",
        "request send failed",
        "send request failed",
    ]
    .iter()
    .any(|p| stderr.contains(p))
}

/// A mistake of the set-up that terraform's standard error shows, told apart so that the
/// error names what to fix (not "cannot reach the cloud" for a provider missing from a mirror,
/// not "cannot read the desired state" for missing credentials).
#[derive(Debug, PartialEq, Eq)]
enum Mistake {
    /// `init` found a provider in none of the mirrors of the CLI configuration.
    ProviderNotInMirror {
        /// The provider (`hashicorp/aws`), when terraform names it.
        provider: String,
    },
    /// `init` could not reach a provider's registry (offline, no mirror configured).
    RegistryUnreachable {
        /// The provider, when terraform names it.
        provider: String,
    },
    /// `init` could not install a provider for another reason (a checksum, a platform).
    ProviderNotInstalled {
        /// The provider, when terraform names it.
        provider: String,
    },
    /// `init` could not download a module (registry or Git host unreachable, no such module).
    ModuleNotDownloaded,
    /// The provider (or the state's backend) found no credentials.
    NoCredentials,
    /// The cloud refused the credentials (unknown key, bad signature, expired token).
    CredentialsRefused,
    /// The cloud or the backend could not be reached.
    Unreachable,
}

/// Standard error as one line of words: the excerpt joins lines with `; ` and terraform wraps
/// its diagnostics (`was not found in any of the; search locations`).
fn flat(stderr: &str) -> String {
    stderr
        .split(|c: char| c == ';' || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The provider a diagnostic of `init` names: `for provider hashicorp/aws:`, `Could not
/// resolve provider hashicorp/aws:` or `provider registry.terraform.io/hashicorp/aws was not
/// found`.
fn provider_named(stderr: &str) -> String {
    stderr
        .match_indices("provider ")
        .filter_map(|(i, m)| {
            let word = stderr[i + m.len()..]
                .split(|c: char| c.is_whitespace() || c == ':' || c == ',' || c == ';')
                .next()?;
            word.contains('/').then(|| word.to_owned())
        })
        .next()
        .unwrap_or_else(|| "a provider".into())
}

/// What terraform's (or OpenTofu's) standard error says went wrong, when it is a known
/// mistake. The provider's and the backend's messages are matched (the AWS provider's
/// `No valid credential sources found`; the registry client's `could not connect to`), the
/// first that fits winning: installing comes before reaching the cloud, as an offline `init`
/// fails with `dial tcp` too.
fn mistake(stderr: &str) -> Option<Mistake> {
    let stderr = flat(stderr);
    let stderr = stderr.as_str();
    let has = |ps: &[&str]| ps.iter().any(|p| stderr.contains(p));
    if has(&[
        "Failed to query available provider packages",
        "Failed to install provider",
        "Failed to resolve provider packages",
    ]) {
        let provider = provider_named(stderr);
        return Some(if has(&["not found in any of the search locations"]) {
            Mistake::ProviderNotInMirror { provider }
        } else if has(&[
            "could not connect to",
            "failed to request discovery document",
            "dial tcp",
            "no such host",
        ]) {
            Mistake::RegistryUnreachable { provider }
        } else {
            Mistake::ProviderNotInstalled { provider }
        });
    }
    if has(&[
        "Failed to download module",
        "Module not found",
        "Failed to query available module",
        "Error accessing remote module registry",
    ]) {
        return Some(Mistake::ModuleNotDownloaded);
    }
    if has(&[
        "No valid credential sources found",
        "no valid credential sources",
        "NoCredentialProviders",
        "static credentials are empty",
    ]) {
        return Some(Mistake::NoCredentials);
    }
    if has(&[
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidAccessKeyId",
        "UnrecognizedClientException",
        "AuthFailure",
        "The security token included in the request is invalid",
    ]) {
        return Some(Mistake::CredentialsRefused);
    }
    unreachable(stderr).then_some(Mistake::Unreachable)
}

/// Where the providers come from, for messages: the configured CLI configuration, else
/// terraform's own default.
fn mirror_setting(cli_config: Option<&Path>) -> String {
    match cli_config {
        Some(c) => format!(
            "the CLI configuration {} (terraform.cliConfigFile)",
            c.display()
        ),
        None => "no CLI configuration (terraform.cliConfigFile is not set)".into(),
    }
}

/// One terraform step's error, as the source reports it: a known mistake of the set-up says
/// what to fix ([`Mistake`]), an unreachable cloud is [`SourceError::Unreachable`], anything
/// else is terraform's error. `cli_config` is the configured CLI configuration.
fn step_error_in(
    program: &str,
    step: &str,
    source: RenderError,
    cli_config: Option<&Path>,
) -> SourceError {
    let found = match &source {
        RenderError::Failed { stderr, .. } => mistake(stderr),
        _ => None,
    };
    let e = TerraformError::Step {
        step: format!("{program} {step}"),
        source,
    };
    let setup = |context: String, e: TerraformError| SourceError::Backend {
        context,
        source: Box::new(e),
    };
    match found {
        None => SourceError::Terraform(e),
        Some(Mistake::ProviderNotInMirror { provider }) => setup(format!(
            "{program} {step} cannot install the provider {provider}: it is in none of the provider mirrors of {}; put it there (`{program} providers mirror <folder>` where the registry can be reached) or name the CLI configuration of the mirror that has it",
            mirror_setting(cli_config)
        ), e),
        Some(Mistake::RegistryUnreachable { provider }) => setup(format!(
            "{program} {step} cannot download the provider {provider}: its registry cannot be reached and {} names no mirror that has it; offline, give a CLI configuration with a provider_installation filesystem_mirror holding it (terraform.cliConfigFile)",
            mirror_setting(cli_config)
        ), e),
        Some(Mistake::ProviderNotInstalled { provider }) => setup(format!(
            "{program} {step} cannot install the provider {provider} (from {})",
            mirror_setting(cli_config)
        ), e),
        Some(Mistake::ModuleNotDownloaded) => setup(format!(
            "{program} {step} cannot download a module of the code: its registry or Git host cannot be reached, or it does not exist; offline, vendor the module into the repository"
        ), e),
        Some(Mistake::NoCredentials) => SourceError::Forbidden {
            what: format!(
                "the cloud ({program} {step}): the provider found no credentials; give DriftGuard's process its cloud's credentials (AWS: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or an IAM role: IRSA, Pod Identity, an instance profile)"
            ),
        },
        Some(Mistake::CredentialsRefused) => SourceError::Forbidden {
            what: format!(
                "the cloud ({program} {step}): the credentials were refused (an unknown key, a wrong secret or an expired token); renew those DriftGuard's process has"
            ),
        },
        Some(Mistake::Unreachable) => SourceError::Unreachable {
            target: format!("the cloud ({program} {step})"),
            source: Box::new(e),
        },
    }
}

/// A binary's name in messages: its file name (`/usr/local/bin/tofu` is `tofu`).
fn program_name(program: &Path) -> String {
    program
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "terraform".to_owned())
}

/// [`step_error_in`] without a CLI configuration to name.
fn step_error(program: &str, step: &str, source: RenderError) -> SourceError {
    step_error_in(program, step, source, None)
}

/// `terraform state pull`'s lineage and serial (the rest, sensitive values included, is
/// skipped unread).
#[derive(Deserialize)]
struct StateHead {
    #[serde(default)]
    lineage: String,
    #[serde(default)]
    serial: u64,
}

#[derive(Deserialize)]
struct ModulesJson {
    #[serde(rename = "Modules", default)]
    modules: Vec<ModuleEntry>,
}

#[derive(Deserialize)]
struct ModuleEntry {
    #[serde(rename = "Key", default)]
    key: String,
    #[serde(rename = "Dir", default)]
    dir: String,
}

/// What `init` depends on beyond the code (terraform itself tells when the code needs it
/// again): the binary, the CLI configuration (its path and content), the `-backend-config`
/// values and the plugin cache. Kept in the data folder after a successful `init`.
const INIT_MARK: &str = "driftguard-init";

/// The dependency lock file the last `init` wrote in a written-out revision, kept in the data
/// folder and put back into the next revision that has none: terraform then finds the
/// providers it installed still locked and needs no `init` for a new commit.
const KEPT_LOCK: &str = "driftguard.terraform.lock.hcl";

/// The lock file's name in a root module.
const LOCK_FILE: &str = ".terraform.lock.hcl";

/// The summaries of terraform's errors that mean "run `terraform init`" (a module or provider
/// not installed or changed, the lock file out of date, the backend not initialized or
/// changed). With `TF_IN_AUTOMATION` terraform does not always name the command, so the
/// summaries are matched (terraform's `internal/command/meta_*.go`, `internal/initwd`; the
/// same in OpenTofu).
const INIT_NEEDED: &[&str] = &[
    "Inconsistent dependency lock file",
    "Required plugins are not installed",
    "Module not installed",
    "Module source has changed",
    "Module version requirements have changed",
    "Backend initialization required",
    "Backend configuration changed",
    "initialization required",
    "Failed to decode current backend config",
    "please run \"terraform init\"",
    "please run \"tofu init\"",
];

/// Whether a failed step asks for `init`.
pub(crate) fn needs_init(e: &RenderError) -> bool {
    matches!(e, RenderError::Failed { stderr, .. } if INIT_NEEDED.iter().any(|p| flat(stderr).contains(p)))
}

/// Names of DriftGuard's environment variables whose values may be secret (cloud keys and
/// tokens, `TF_VAR_db_password`): their values are removed from terraform's error messages.
fn secret_env_values() -> Vec<String> {
    const WORDS: &[&str] = &[
        "SECRET",
        "TOKEN",
        "PASSWORD",
        "PASSWD",
        "CREDENTIAL",
        "PRIVATE",
        "API_KEY",
    ];
    std::env::vars_os()
        .filter_map(|(k, v)| {
            let k = k.to_str()?.to_ascii_uppercase();
            let v = v.into_string().ok()?;
            (v.len() >= 4 && WORDS.iter().any(|w| k.contains(w))).then_some(v)
        })
        .collect()
}

/// Only one `init` at a time in this process: a shared plugin cache is not safe for
/// concurrent installs.
static INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The plugin cache `init` uses (`TF_PLUGIN_CACHE_DIR`): the configured one, unless
/// DriftGuard's environment or the CLI configuration names one already.
fn plugin_cache(config: &TerraformConfig) -> Option<PathBuf> {
    let dir = config.plugin_cache.as_ref()?;
    if std::env::var_os("TF_PLUGIN_CACHE_DIR").is_some_and(|v| !v.is_empty()) {
        return None;
    }
    if let Some(c) = &config.cli_config_file {
        if std::fs::read_to_string(c).is_ok_and(|t| t.contains("plugin_cache_dir")) {
            return None;
        }
    }
    Some(dir.clone())
}

/// The key of what `init` depends on beyond the code ([`INIT_MARK`]).
fn init_key(config: &TerraformConfig, program: &Path, cache: Option<&Path>) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(program.as_os_str().as_encoded_bytes());
    h.update(b"\0");
    if let Some(c) = &config.cli_config_file {
        h.update(c.as_os_str().as_encoded_bytes());
        h.update(b"\0");
        h.update(&std::fs::read(c).unwrap_or_default());
    }
    h.update(b"\0");
    for b in &config.backend_config {
        h.update(b.as_bytes());
        h.update(b"\0");
    }
    if let Some(c) = cache {
        h.update(c.as_os_str().as_encoded_bytes());
    }
    format!("{:016x}", h.digest())
}

/// Terraform set up to run in one root module: the binary, the variable files, the data
/// folder and the environment every step gets, the secrets its messages must not show, and
/// `init` when needed. A check and a codify run their steps through it.
pub(crate) struct Session<'a> {
    config: &'a TerraformConfig,
    in_place: bool,
    program: PathBuf,
    /// The root module's folder (where terraform runs).
    pub dir: PathBuf,
    /// `TF_DATA_DIR`.
    pub data: PathBuf,
    /// `-var-file=` arguments.
    pub var_args: Vec<String>,
    env: Vec<(&'static str, OsString)>,
    /// The values of DriftGuard's secret-looking environment variables.
    pub secrets: Vec<String>,
    lock: PathBuf,
    kept_lock: PathBuf,
    lock_put_back: bool,
    key: String,
    marker: PathBuf,
}

impl<'a> Session<'a> {
    /// Finds the binary, checks the folder and the variable files, makes the data folder and
    /// puts back the lock file the last `init` wrote (a revision without one).
    pub fn open(
        config: &'a TerraformConfig,
        p: &Prepared,
        workspace: &str,
    ) -> Result<Self, SourceError> {
        let program = find_terraform(config.binary.as_deref()).ok_or_else(|| {
            let configured = config
                .binary
                .as_ref()
                .map_or_else(|| "terraform".to_owned(), |b| b.display().to_string());
            step_error(
                &program_name(Path::new(&configured)),
                "init",
                RenderError::NoBinary {
                    program: configured,
                    setting: "terraform.binary".into(),
                },
            )
        })?;
        let dir = p.module_dir();
        if !dir.is_dir() {
            return Err(TerraformError::Input {
                what: format!(
                    "root module folder {}",
                    if p.module.is_empty() { "." } else { &p.module }
                ),
                problem: format!("does not exist at revision {}", p.revision.short()),
            }
            .into());
        }
        let mut var_args = Vec::new();
        for f in &config.var_files {
            let path = if Path::new(f).is_absolute() {
                PathBuf::from(f)
            } else {
                dir.join(f)
            };
            if !path.is_file() {
                return Err(TerraformError::Input {
                    what: format!("variable file {f}"),
                    problem: format!("does not exist ({})", path.display()),
                }
                .into());
            }
            var_args.push(format!("-var-file={}", path.display()));
        }
        let data = config.work_dir.join("data");
        let cache = plugin_cache(config);
        for d in std::iter::once(&data).chain(cache.as_ref()) {
            std::fs::create_dir_all(d).map_err(|e| SourceError::Backend {
                context: format!("cannot create {}", d.display()),
                source: Box::new(e),
            })?;
        }
        let mut env: Vec<(&'static str, OsString)> = vec![
            ("TF_DATA_DIR", data.clone().into_os_string()),
            ("TF_IN_AUTOMATION", "1".into()),
            ("TF_INPUT", "0".into()),
            ("CHECKPOINT_DISABLE", "1".into()),
            ("TF_WORKSPACE", workspace.into()),
        ];
        if let Some(c) = &config.cli_config_file {
            env.push(("TF_CLI_CONFIG_FILE", c.clone().into_os_string()));
        }
        if let Some(c) = &cache {
            env.push(("TF_PLUGIN_CACHE_DIR", c.clone().into_os_string()));
        }
        // `init`, only when needed: a revision without a lock file gets the one the last
        // `init` wrote, so that the providers installed are still the locked ones
        let lock = dir.join(LOCK_FILE);
        let kept_lock = data.join(KEPT_LOCK);
        let mut lock_put_back = false;
        if !p.in_place && !lock.exists() && kept_lock.is_file() {
            std::fs::copy(&kept_lock, &lock)
                .map_err(io(format!("cannot write {}", lock.display())))?;
            lock_put_back = true;
        }
        let key = init_key(config, &program, cache.as_deref());
        let marker = data.join(INIT_MARK);
        Ok(Session {
            config,
            in_place: p.in_place,
            program,
            dir,
            data,
            var_args,
            env,
            secrets: secret_env_values(),
            lock,
            kept_lock,
            lock_put_back,
            key,
            marker,
        })
    }

    /// The program as messages name it (`terraform`, `tofu`).
    pub fn program_name(&self) -> String {
        program_name(&self.program)
    }

    /// Runs `terraform <args>` (or `tofu <args>`) in the root module's folder.
    pub fn run(&self, args: Vec<String>) -> Result<String, RenderError> {
        let display = display_command(&self.program_name(), &args);
        Run {
            program: &self.program,
            args: &args,
            cwd: &self.dir,
            env: &self.env,
            timeout: self.config.timeout,
            max_output: MAX_OUTPUT,
            display: &display,
            secrets: &self.secrets,
        }
        .output()
    }

    /// The error of `step`, a set-up mistake named as what to fix.
    pub fn fail(&self, step: &str, e: RenderError) -> SourceError {
        step_error_in(
            &self.program_name(),
            step,
            e,
            self.config.cli_config_file.as_deref(),
        )
    }

    /// `terraform init`, and the mark of what it depended on.
    pub fn init(&self) -> Result<(), SourceError> {
        let _one = INIT
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = std::fs::remove_file(&self.marker);
        if self.lock_put_back {
            // the lock of an earlier revision does not fit this one: `init` chooses anew
            let _ = std::fs::remove_file(&self.lock);
        }
        let mut args: Vec<String> = vec![
            "init".into(),
            "-input=false".into(),
            "-no-color".into(),
            "-reconfigure".into(),
        ];
        if self.in_place && self.lock.is_file() {
            args.push("-lockfile=readonly".into());
        }
        args.extend(
            self.config
                .backend_config
                .iter()
                .map(|b| format!("-backend-config={b}")),
        );
        self.run(args).map_err(|e| self.fail("init", e))?;
        if !self.in_place && self.lock.is_file() {
            std::fs::copy(&self.lock, &self.kept_lock)
                .map_err(io(format!("cannot write {}", self.kept_lock.display())))?;
        }
        std::fs::write(&self.marker, &self.key)
            .map_err(io(format!("cannot write {}", self.marker.display())))
    }

    /// `init` when what it depends on beyond the code changed; whether it ran.
    pub fn init_if_changed(&self) -> Result<bool, SourceError> {
        if std::fs::read_to_string(&self.marker).ok().as_deref() == Some(self.key.as_str()) {
            return Ok(false);
        }
        self.init()?;
        Ok(true)
    }

    /// What the providers' schemas depend on: the binary and the providers the lock file
    /// names (without one, the root module's folder).
    pub fn providers_key(&self) -> String {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(self.program.as_os_str().as_encoded_bytes());
        h.update(b"\0");
        match std::fs::read(&self.lock) {
            Ok(lock) => h.update(&lock),
            Err(_) => h.update(self.dir.as_os_str().as_encoded_bytes()),
        }
        format!("{:016x}", h.digest())
    }

    /// A private folder in the working folder, removed when dropped (plan files hold
    /// sensitive values).
    pub fn private_dir(&self, prefix: &str) -> Result<tempfile::TempDir, SourceError> {
        tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(&self.config.work_dir)
            .map_err(|e| SourceError::Backend {
                context: format!(
                    "cannot create a folder in {}",
                    self.config.work_dir.display()
                ),
                source: Box::new(e),
            })
    }
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> SourceError {
    move |e: std::io::Error| SourceError::Backend {
        context: what,
        source: Box::new(e),
    }
}

/// Whether a step's failure asks for `init`.
fn asks_init<T>(r: &Result<T, RenderError>) -> bool {
    r.as_ref().err().is_some_and(needs_init)
}

/// One check: `init` when what it depends on changed (or terraform asks for it), then one
/// `plan` (its `resource_drift` is what refresh found, its `resource_changes` what an apply
/// would change) beside `state pull` (the apply mark), then one `show -json` of the plan; the
/// declarations of the modules whose code is in the source.
pub(crate) fn check(
    config: &TerraformConfig,
    p: &Prepared,
    workspace: &str,
) -> Result<PlanRun, SourceError> {
    let s = Session::open(config, p, workspace)?;
    let initialized = s.init_if_changed()?;

    // the plan file holds sensitive values: a private folder, removed when the check ends
    let tmp = s.private_dir("plans-")?;
    let plan_file = tmp.path().join("plan.tfplan");
    let mut plan_args: Vec<String> = vec![
        "plan".into(),
        // read only: nothing is written, so the state's lock is not taken
        "-lock=false".into(),
        "-input=false".into(),
        "-no-color".into(),
        format!("-out={}", plan_file.display()),
    ];
    plan_args.extend(s.var_args.iter().cloned());
    let plan_and_mark = || {
        std::thread::scope(|sc| {
            let n = sc.spawn(|| s.run(plan_args.clone()));
            let st = s.run(vec!["state".into(), "pull".into()]);
            (join(n), st)
        })
    };
    let (mut planned, mut state) = plan_and_mark();
    if !initialized && (asks_init(&planned) || asks_init(&state)) {
        s.init()?;
        (planned, state) = plan_and_mark();
    }
    planned.map_err(|e| s.fail("plan", e))?;
    // the state's text (sensitive values in plain text) is read for its lineage and serial
    // and dropped here
    let state = state.map_err(|e| s.fail("state pull", e))?;
    let state = if state.trim().is_empty() {
        None
    } else {
        let head: StateHead = serde_json::from_str(&state).map_err(|e| {
            SourceError::Terraform(TerraformError::PlanJson {
                what: "state (terraform state pull)".into(),
                problem: e.to_string(),
            })
        })?;
        Some(StateMark {
            lineage: head.lineage,
            serial: head.serial,
        })
    };
    // the plan as JSON, beside the providers' schemas (read once per set of providers)
    let (plan_json, arguments) = std::thread::scope(|sc| {
        let a = sc.spawn(|| super::schema::arguments(&s));
        let shown = s.run(vec![
            "show".into(),
            "-json".into(),
            "-no-color".into(),
            plan_file.display().to_string(),
        ]);
        (
            shown,
            a.join()
                .unwrap_or_else(|_| Err("reading them failed".into())),
        )
    });
    let plan_json = plan_json.map_err(|e| s.fail("show", e))?;
    drop(tmp);
    let plan = RawPlan::new(plan_json);
    let mut warnings = Vec::new();
    let arguments = arguments
        .map_err(|e| {
            warnings.push(format!(
                "the providers' schemas are unknown, so arguments the code leaves unset are not compared (but a security group's rules): {e}"
            ))
        })
        .ok();
    if state.is_none() {
        warnings.push(format!(
            "the state of workspace {workspace} is empty: every resource of the code is reported missing (is the backend configured? terraform.backendConfig)"
        ));
    }
    Ok(PlanRun {
        revision: Some(p.revision.clone()),
        module: ModuleInfo {
            folder: p.module.clone(),
            workspace: workspace.to_owned(),
            var_files: config.var_files.clone(),
        },
        // a normal plan's `resource_drift` and `prior_state` are the refresh-only plan's
        // (one plan walk refreshes, then plans; terraform leaves out only drift that is a
        // move and nothing else, which the planned changes show): one plan serves both
        refresh_only: plan.clone(),
        plan,
        state,
        declarations: declarations(p, &s.dir, &s.data),
        cloud: None,
        arguments,
        notes: Vec::new(),
        warnings,
    })
}

fn join<T>(h: std::thread::ScopedJoinHandle<'_, Result<T, RenderError>>) -> Result<T, RenderError> {
    h.join().unwrap_or_else(|_| {
        Err(RenderError::Spawn {
            command: "terraform".into(),
            source: std::io::Error::other("a terraform step panicked"),
        })
    })
}

/// The `resource` and `module` blocks of the root module and of every module whose code is in
/// the source (`modules.json` of `terraform init` says where each one is), with paths
/// relative to the source root.
fn declarations(p: &Prepared, dir: &Path, data: &Path) -> Vec<Declaration> {
    let root = p.root.canonicalize().unwrap_or_else(|_| p.root.clone());
    let mut modules: Vec<(String, PathBuf)> = vec![(String::new(), dir.to_path_buf())];
    if let Ok(text) = std::fs::read_to_string(data.join("modules").join("modules.json")) {
        if let Ok(m) = serde_json::from_str::<ModulesJson>(&text) {
            for e in m.modules {
                if e.key.is_empty() {
                    continue;
                }
                let d = Path::new(&e.dir);
                let d = if d.is_absolute() {
                    d.to_path_buf()
                } else {
                    dir.join(d)
                };
                modules.push((e.key, d));
            }
        }
    }
    let mut out = Vec::new();
    for (key, d) in modules {
        let Ok(d) = d.canonicalize() else { continue };
        let Ok(rel) = d.strip_prefix(&root) else {
            // a module from a registry: declared by its call
            continue;
        };
        let rel = rel.to_string_lossy().replace('\\', "/");
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        let mut files: Vec<(String, PathBuf)> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_str()?.to_owned();
                (name.ends_with(".tf") || name.ends_with(".tf.json")).then(|| (name, e.path()))
            })
            .collect();
        files.sort();
        for (name, path) in files {
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let file = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            out.extend(declare::declarations_in(&key, &file, &text));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_up_mistakes_are_told_apart() {
        // terraform 1.11's and the AWS provider 5.100's own words
        // as the excerpt shows it: lines joined with `; `, terraform's wrapping kept
        let not_in_mirror = "Error: Failed to query available provider packages; Could not retrieve the list of available versions for provider hashicorp/aws:; provider registry.terraform.io/hashicorp/aws was not found in any of the; search locations; - /srv/mirror";
        assert_eq!(
            mistake(not_in_mirror),
            Some(Mistake::ProviderNotInMirror {
                provider: "hashicorp/aws".into()
            })
        );
        let offline = "Error: Failed to query available provider packages; Could not retrieve the list of available versions for provider hashicorp/aws: could not connect to registry.terraform.io: failed to request discovery document: Get \"https://registry.terraform.io/.well-known/terraform.json\": dial tcp: lookup registry.terraform.io: no such host";
        assert_eq!(
            mistake(offline),
            Some(Mistake::RegistryUnreachable {
                provider: "hashicorp/aws".into()
            })
        );
        assert_eq!(
            mistake("Error: No valid credential sources found; with provider[\"registry.terraform.io/hashicorp/aws\"]; Error: failed to refresh cached credentials, no EC2 IMDS role found, operation error ec2imds: GetMetadata, dial tcp 169.254.169.254:80: connect: connection refused"),
            Some(Mistake::NoCredentials)
        );
        assert_eq!(
            mistake("Error: reading S3 Bucket (logs): operation error S3: HeadBucket, https response error StatusCode: 403, api error InvalidAccessKeyId"),
            Some(Mistake::CredentialsRefused)
        );
        assert_eq!(
            mistake("Error: reading S3 Bucket: dial tcp 127.0.0.1:1: connect: connection refused"),
            Some(Mistake::Unreachable)
        );
        // OpenTofu 1.12's words
        assert_eq!(
            mistake("Error: Failed to resolve provider packages; Could not resolve provider hashicorp/aws: could not connect to; registry.opentofu.org: failed to request discovery document: Get; \"https://registry.opentofu.org/.well-known/terraform.json\": proxyconnect tcp:; dial tcp 127.0.0.1:1: connect: connection refused"),
            Some(Mistake::RegistryUnreachable {
                provider: "hashicorp/aws".into()
            })
        );
        assert_eq!(mistake("Error: Unsupported argument"), None);

        let failed = |stderr: &str| RenderError::Failed {
            command: "terraform init".into(),
            status: "exit status: 1".into(),
            stderr: stderr.into(),
        };
        let e = step_error_in("terraform", "init", failed(offline), None);
        assert!(matches!(e, SourceError::Backend { .. }), "{e:?}");
        let text = driftguard_core::error::chain(&e);
        assert!(
            text.starts_with("terraform init cannot download the provider hashicorp/aws: its registry cannot be reached"),
            "{text}"
        );
        assert!(
            text.contains("terraform.cliConfigFile is not set"),
            "{text}"
        );
        let e = step_error_in(
            "tofu",
            "init",
            failed(not_in_mirror),
            Some(Path::new("/etc/driftguard/terraformrc")),
        );
        assert!(
            e.to_string().contains("in none of the provider mirrors of the CLI configuration /etc/driftguard/terraformrc"),
            "{e}"
        );
        // OpenTofu's steps are named as tofu's
        assert!(
            e.to_string()
                .starts_with("tofu init cannot install the provider")
                && e.to_string().contains("`tofu providers mirror <folder>`"),
            "{e}"
        );
        let e = step_error_in(
            "terraform",
            "plan",
            failed("Error: No valid credential sources found"),
            None,
        );
        assert!(
            matches!(&e, SourceError::Forbidden { what } if what.contains("found no credentials") && what.contains("AWS_PROFILE")),
            "{e:?}"
        );
    }

    #[test]
    fn errors_asking_for_init_are_recognized() {
        let failed = |stderr: &str| RenderError::Failed {
            command: "terraform plan".into(),
            status: "exit status: 1".into(),
            stderr: stderr.into(),
        };
        // terraform 1.11's words, wrapped as its diagnostics are
        for stderr in [
            "Error: Module not installed; on main.tf line 40:; 40: module \"net\" {; This module is not yet installed.",
            "Error: Inconsistent dependency lock file; The following dependency selections recorded in the lock file are; inconsistent with the current configuration:",
            "Error: Backend initialization required, please run \"terraform init\"",
            "Error: Backend initialization required: please run \"tofu init\"",
            "Error: Required plugins are not installed",
            "Error: Module version requirements have changed",
        ] {
            assert!(needs_init(&failed(stderr)), "{stderr}");
        }
        assert!(!needs_init(&failed("Error: Unsupported argument")));
        assert!(!needs_init(&RenderError::NoBinary {
            program: "terraform".into(),
            setting: "terraform.binary".into(),
        }));
    }

    #[test]
    fn secret_looking_variables_are_redacted() {
        std::env::set_var("DG_RUN_TEST_DB_PASSWORD", "hunter2-pw");
        std::env::set_var("DG_RUN_TEST_REGION", "us-east-1");
        let secrets = secret_env_values();
        assert!(secrets.iter().any(|s| s == "hunter2-pw"));
        assert!(!secrets.iter().any(|s| s == "us-east-1"));
    }

    #[test]
    fn unreachable_clouds_are_told_apart() {
        assert!(unreachable(
            "Error: reading S3 Bucket: dial tcp 127.0.0.1:1: connect: connection refused"
        ));
        assert!(!unreachable("Error: Unsupported argument"));
    }
}
