//! The configuration file (`driftguard.yaml`): its model, loading and validation.
//!
//! Loading is two steps: the YAML is deserialized with unknown keys refused (a key or type
//! error is reported with its file, line and column, e.g.
//! `driftguard.yaml:12:5: environments[0].git: unknown field `rf`, expected one of ...`), then
//! the values are checked together ([`Config::validate`]), which reports every problem found,
//! each with the line of the key at fault.
//!
//! Keys are camelCase. The snake_case keys that the `server:` section and the notifiers used
//! to have still load, and each one found gives a warning ([`Config::warnings`]), e.g.
//! `driftguard.yaml:14: server.poll_interval: snake_case keys are deprecated; write
//! pollInterval`.
//!
//! Relative paths in the file are relative to the folder holding the file. The reference of
//! every key, `docs/config-reference.md`, is generated from this model ([`reference_markdown`]).

mod file;
mod keys;
mod locate;
mod reference;
mod server;

use std::fmt;
use std::path::{Path, PathBuf};

pub use file::*;
pub use locate::locate;
pub use reference::{json_schema, reference_markdown, UndocumentedKeys};
pub use server::*;

/// A problem in the configuration, with its location.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigProblem {
    /// The file.
    pub file: String,
    /// 1-based line (0: unknown).
    pub line: usize,
    /// 1-based column (0: unknown).
    pub column: usize,
    /// The key at fault (`environments[0].git`), if known.
    pub path: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
            if self.column > 0 {
                write!(f, ":{}", self.column)?;
            }
        }
        f.write_str(": ")?;
        if let Some(p) = &self.path {
            write!(f, "{p}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// A configuration that could not be loaded: every problem found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The problems, in file order.
    pub problems: Vec<ConfigProblem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.problems.iter().map(ToString::to_string).collect();
        f.write_str(&lines.join("\n"))
    }
}

/// A loaded, validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file's content.
    pub file: ConfigFile,
    /// The file's path, as given.
    pub path: PathBuf,
    /// The folder relative paths are resolved against.
    pub base: PathBuf,
    /// What loading found that still works but should change (deprecated snake_case keys), in
    /// file order. Programs show them: the CLI on stderr, `driftguard serve` in its log.
    pub warnings: Vec<ConfigProblem>,
}

impl Config {
    /// `store.retention`: how long events, scans and resolved episodes are kept.
    pub fn retention(&self) -> Option<std::time::Duration> {
        self.file
            .store
            .as_ref()
            .and_then(|s| s.retention)
            .map(|d| d.0)
    }

    /// Reads, parses and validates a file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            problems: vec![ConfigProblem {
                file: name.clone(),
                line: 0,
                column: 0,
                path: None,
                message: format!("cannot read the configuration: {}", io_message(&e)),
            }],
        })?;
        Config::from_text(path, &text)
    }

    /// Reads and parses a file, checking keys and types only (not that the files it names
    /// exist): enough for commands that only read the store.
    pub fn load_unchecked(path: &Path) -> Result<Config, ConfigError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            problems: vec![ConfigProblem {
                file: name.clone(),
                line: 0,
                column: 0,
                path: None,
                message: format!("cannot read the configuration: {}", io_message(&e)),
            }],
        })?;
        Config::parse(path, &text)
    }

    fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let name = path.display().to_string();
        let file: ConfigFile = if text.trim().is_empty() {
            ConfigFile::default()
        } else {
            serde_yaml::from_str(text).map_err(|e| ConfigError {
                problems: vec![yaml_problem(&name, &e)],
            })?
        };
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        Ok(Config {
            file,
            path: path.to_path_buf(),
            base,
            warnings: key_warnings(&name, text),
        })
    }

    /// Parses and validates text read from `path`.
    pub fn from_text(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let config = Config::parse(path, text)?;
        let mut problems = config.validate();
        if problems.is_empty() {
            return Ok(config);
        }
        for p in &mut problems {
            if p.line == 0 {
                if let Some(key) = &p.path {
                    p.line = locate(text, key).unwrap_or(0);
                }
            }
        }
        problems.sort_by_key(|p| p.line);
        Err(ConfigError { problems })
    }

    /// A configuration made from flags alone (no file): paths relative to the current folder.
    pub fn from_flags(file: ConfigFile) -> Config {
        Config {
            file,
            path: PathBuf::from("(flags)"),
            base: PathBuf::from("."),
            warnings: Vec::new(),
        }
    }

    /// Resolves a path of the file against its folder.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        let s = p.to_string_lossy();
        if let Some(rest) = s.strip_prefix("~/") {
            if let Some(home) = std::env::var_os("HOME") {
                return PathBuf::from(home).join(rest);
            }
        }
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }

    /// Checks the values together; returns every problem (lines are filled in by the caller).
    pub fn validate(&self) -> Vec<ConfigProblem> {
        let name = self.path.display().to_string();
        let mut out = Vec::new();
        let mut problem = |path: String, message: String| {
            out.push(ConfigProblem {
                file: name.clone(),
                line: 0,
                column: 0,
                path: Some(path),
                message,
            });
        };
        let f = &self.file;
        let mut seen = std::collections::HashSet::new();
        for (i, env) in f.environments.iter().enumerate() {
            let at = format!("environments[{i}]");
            if env.name.trim().is_empty() {
                problem(format!("{at}.name"), "must not be empty".into());
            } else if !env
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
            {
                problem(
                    format!("{at}.name"),
                    format!(
                        "`{}` may only hold letters, digits, `-`, `_` and `.`",
                        env.name
                    ),
                );
            } else if !seen.insert(env.name.clone()) {
                problem(
                    format!("{at}.name"),
                    format!("environment `{}` is defined twice", env.name),
                );
            }
            match (&env.git, &env.dir) {
                (None, None) => problem(
                    at.clone(),
                    "no desired side: set `git` (a repository) or `dir` (a folder)".into(),
                ),
                (Some(_), Some(_)) => problem(
                    format!("{at}.dir"),
                    "`git` and `dir` are both set: choose one".into(),
                ),
                (Some(g), None) => {
                    if g.url.trim().is_empty() {
                        problem(format!("{at}.git.url"), "must not be empty".into());
                    }
                    check_globs(&mut problem, &format!("{at}.git"), &g.include, &g.exclude);
                }
                (None, Some(d)) => {
                    let p = self.resolve(d.path());
                    if !p.is_dir() {
                        problem(
                            format!("{at}.dir"),
                            format!("folder {} does not exist", p.display()),
                        );
                    }
                    let (inc, exc) = d.globs();
                    check_globs(&mut problem, &format!("{at}.dir"), &inc, &exc);
                }
            }
            self.check_rendering(&mut problem, &at, env);
            if let Some(t) = &env.terraform {
                self.check_terraform(&mut problem, &at, env, t);
            }
            match &env.live {
                Some(_) if env.terraform.is_some() => problem(
                    format!("{at}.live"),
                    "a Terraform environment has no `live` side: the cloud is read through terraform's plans; remove it".into(),
                ),
                None if env.terraform.is_some() => {}
                None => problem(
                    at.clone(),
                    "no live side: set `live` (a kubeconfig/context, inCluster, or a dump)".into(),
                ),
                Some(l) => {
                    let cluster = l.kubeconfig.is_some() || l.context.is_some() || l.in_cluster;
                    if let Some(dump) = &l.dump {
                        if cluster {
                            problem(
                                format!("{at}.live.dump"),
                                "a dump and a cluster (kubeconfig/context/inCluster) are both set: choose one".into(),
                            );
                        }
                        let paths = dump.paths();
                        if paths.is_empty() {
                            problem(format!("{at}.live.dump"), "names no file".into());
                        }
                        for p in paths {
                            let r = self.resolve(&p);
                            if !r.is_file() {
                                problem(
                                    format!("{at}.live.dump"),
                                    format!("file {} does not exist", r.display()),
                                );
                            }
                        }
                    } else if l.in_cluster && (l.kubeconfig.is_some() || l.context.is_some()) {
                        problem(
                            format!("{at}.live.inCluster"),
                            "inCluster and a kubeconfig/context are both set: choose one".into(),
                        );
                    }
                }
            }
            for (j, k) in env.kinds.iter().enumerate() {
                if k.api_version.trim().is_empty() || k.kind.trim().is_empty() {
                    problem(
                        format!("{at}.kinds[{j}]"),
                        "needs both `apiVersion` and `kind`".into(),
                    );
                }
            }
            for (j, k) in env.orphan_kinds.iter().flatten().enumerate() {
                if k.trim().is_empty() {
                    problem(format!("{at}.orphanKinds[{j}]"), "must not be empty".into());
                }
            }
            if let Some(a) = &env.audit {
                let at = format!("{at}.audit");
                if a.webhook.is_none() && a.log_file.is_none() {
                    problem(
                        at.clone(),
                        "no audit events to read: set `webhook` (the API server's webhook backend) or `logFile` (its log file)".into(),
                    );
                }
                if let Some(w) = &a.webhook {
                    if w.token_env.trim().is_empty() {
                        problem(
                            format!("{at}.webhook.tokenEnv"),
                            "must name the environment variable holding the token the API server sends".into(),
                        );
                    }
                    if w.max_body == Some(0) {
                        problem(
                            format!("{at}.webhook.maxBody"),
                            "must be more than 0 bytes".into(),
                        );
                    }
                }
                for (key, zero) in [
                    ("writesPerObject", a.writes_per_object == Some(0)),
                    ("maxObjects", a.max_objects == Some(0)),
                    ("maxAge", a.max_age.is_some_and(|d| d.0.is_zero())),
                    (
                        "logPollInterval",
                        a.log_poll_interval.is_some_and(|d| d.0.is_zero()),
                    ),
                ] {
                    if zero {
                        problem(format!("{at}.{key}"), "must be more than 0".into());
                    }
                }
                if a.log_file
                    .as_ref()
                    .is_some_and(|p| p.as_os_str().is_empty())
                {
                    problem(format!("{at}.logFile"), "must not be empty".into());
                }
            }
            if env
                .default_namespace
                .as_ref()
                .is_some_and(|n| !is_dns_label(n))
            {
                problem(
                    format!("{at}.defaultNamespace"),
                    "must be a namespace name (lower-case letters, digits and `-`, at most 63)"
                        .into(),
                );
            }
        }
        // notifiers: `server.notifiers` and `notifications` are served together
        let notifiers = f
            .server
            .iter()
            .flat_map(|s| s.notifiers.iter().enumerate())
            .map(|(i, n)| (format!("server.notifiers[{i}]"), n))
            .chain(
                f.notifications
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (format!("notifications[{i}]"), n)),
            );
        let mut names = std::collections::HashSet::new();
        for (at, n) in notifiers {
            if !names.insert(n.name()) {
                problem(
                    at.clone(),
                    format!(
                        "the name `{}` is used by another notifier: give each its own `name`",
                        n.name()
                    ),
                );
            }
            if let NotifierConfig::Email {
                ca_file: Some(ca), ..
            } = n
            {
                let r = self.resolve(ca);
                if !r.is_file() {
                    problem(
                        format!("{at}.caFile"),
                        format!("file {} does not exist", r.display()),
                    );
                }
            }
        }
        if let Some(bin) = &f.helm_bin {
            check_binary(&mut problem, "helmBin", &self.resolve(bin), bin);
        }
        if let Some(store) = &f.store {
            if store.sqlite.is_some() && store.mongodb.is_some() {
                problem(
                    "store".into(),
                    "`sqlite` and `mongodb` are both set: choose one".into(),
                );
            }
        }
        if let Some(ha) = f.server.as_ref().and_then(|s| s.ha.as_ref()) {
            for (key, message) in ha.problems() {
                problem(format!("server.ha.{key}"), message);
            }
            if f.store.as_ref().is_none_or(|s| s.mongodb.is_none()) {
                problem(
                    "server.ha".into(),
                    "replicas share their history: set `store.mongodb`".into(),
                );
            }
            if ha
                .home_kubeconfig
                .as_ref()
                .is_some_and(|p| !self.resolve(p).is_file())
            {
                problem(
                    "server.ha.homeKubeconfig".into(),
                    "file does not exist".into(),
                );
            }
        }
        for (i, p) in f
            .server
            .iter()
            .flat_map(|s| s.trusted_proxies.iter().enumerate())
        {
            if let Err(message) = p.parse::<AddrRange>() {
                problem(format!("server.trustedProxies[{i}]"), message);
            }
        }
        // inline tokens are checked here, where the line is known (those of variables when
        // they are read, see `ServerConfig::resolve_tokens`)
        for (i, t) in f.server.iter().flat_map(|s| s.tokens.iter().enumerate()) {
            if let Some(message) = weak_token(t).filter(|_| !t.is_empty()) {
                problem(format!("server.tokens[{i}]"), message);
            }
        }
        if let Some(k) = &f.secret_key {
            match (&k.env, &k.file) {
                (None, None) => problem(
                    "secretKey".into(),
                    "set `env` (an environment variable) or `file`".into(),
                ),
                (Some(_), Some(_)) => problem(
                    "secretKey".into(),
                    "`env` and `file` are both set: choose one".into(),
                ),
                (Some(v), None) if v.trim().is_empty() => {
                    problem("secretKey.env".into(), "must not be empty".into())
                }
                (None, Some(p)) => {
                    let r = self.resolve(p);
                    if !r.is_file() {
                        problem(
                            "secretKey.file".into(),
                            format!("file {} does not exist", r.display()),
                        );
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// The environment named `name`.
    pub fn environment(&self, name: &str) -> Option<&EnvironmentConfig> {
        self.file.environments.iter().find(|e| e.name == name)
    }

    /// Checks an environment's `terraform` section.
    fn check_terraform(
        &self,
        problem: &mut impl FnMut(String, String),
        at: &str,
        env: &EnvironmentConfig,
        t: &TerraformConfig,
    ) {
        let at_t = format!("{at}.terraform");
        if env.helm.is_some() || env.render.is_some() {
            problem(
                at_t.clone(),
                "`terraform` and `helm`/`render` are both set: choose one".into(),
            );
        }
        let globs = match (&env.git, &env.dir) {
            (Some(g), _) => !g.include.is_empty() || !g.exclude.is_empty(),
            (None, Some(d)) => {
                let (include, exclude) = d.globs();
                !include.is_empty() || !exclude.is_empty()
            }
            _ => false,
        };
        if globs {
            problem(
                at_t.clone(),
                "`include` and `exclude` do not apply to a Terraform environment: remove them"
                    .into(),
            );
        }
        if t.workspace.as_ref().is_some_and(|w| w.trim().is_empty()) {
            problem(format!("{at_t}.workspace"), "must not be empty".into());
        }
        for (j, f) in t.var_files.iter().enumerate() {
            let key = format!("{at_t}.varFiles[{j}]");
            if f.trim().is_empty() {
                problem(key, "must not be empty".into());
                continue;
            }
            let p = Path::new(f);
            let resolved = if p.is_absolute() {
                Some(p.to_path_buf())
            } else {
                env.dir.as_ref().map(|d| self.resolve(d.path()).join(p))
            };
            if let Some(r) = resolved.filter(|r| !r.is_file()) {
                problem(key, format!("file {} does not exist", r.display()));
            }
        }
        if let Some(bin) = &t.binary {
            check_binary(problem, &format!("{at_t}.binary"), &self.resolve(bin), bin);
        }
        if let Some(c) = &t.cli_config_file {
            let r = self.resolve(c);
            if !r.is_file() {
                problem(
                    format!("{at_t}.cliConfigFile"),
                    format!("file {} does not exist", r.display()),
                );
            }
        }
        if t.timeout.is_some_and(|d| d.0.is_zero()) {
            problem(format!("{at_t}.timeout"), "must be longer than 0s".into());
        }
        if let Some(o) = &t.orphans {
            let kinds = driftguard_core::terraform::cloud::AWS_KINDS;
            for (j, k) in o.aws.kinds.iter().enumerate() {
                if !kinds.contains(&k.as_str()) {
                    problem(
                        format!("{at_t}.orphans.aws.kinds[{j}]"),
                        format!("`{k}` cannot be listed: one of {}", kinds.join(", ")),
                    );
                }
            }
            if let Some(e) = &o.aws.endpoint {
                if !(e.starts_with("http://") || e.starts_with("https://")) {
                    problem(
                        format!("{at_t}.orphans.aws.endpoint"),
                        "must be an http:// or https:// URL".into(),
                    );
                }
            }
        }
    }

    /// Checks an environment's `helm` or `render` section.
    fn check_rendering(
        &self,
        problem: &mut impl FnMut(String, String),
        at: &str,
        env: &EnvironmentConfig,
    ) {
        if env.helm.is_some() && env.render.is_some() {
            problem(
                format!("{at}.render"),
                "`helm` and `render` are both set: choose one".into(),
            );
        }
        if env.helm.is_some() || env.render.is_some() {
            let (side, globs) = match (&env.git, &env.dir) {
                (Some(g), _) => ("git", !g.include.is_empty() || !g.exclude.is_empty()),
                (None, Some(d)) => {
                    let (include, exclude) = d.globs();
                    ("dir", !include.is_empty() || !exclude.is_empty())
                }
                (None, None) => ("", false),
            };
            if globs {
                problem(
                    format!("{at}.{side}"),
                    "`include` and `exclude` do not apply to a rendered environment (helm or render): remove them".into(),
                );
            }
        }
        if let Some(h) = &env.helm {
            let at = format!("{at}.helm");
            match &h.release_name {
                Some(r) if !is_release_name(r) => problem(
                    format!("{at}.releaseName"),
                    format!("`{r}` is not a release name (lower-case letters, digits, `-` and `.`, at most 53)"),
                ),
                None if !is_release_name(&env.name) => problem(
                    format!("{at}.releaseName"),
                    format!(
                        "the environment's name `{}` is not a release name (lower-case letters, digits, `-` and `.`, at most 53): set releaseName",
                        env.name
                    ),
                ),
                _ => {}
            }
            if let Some(ns) = &h.namespace {
                if !is_dns_label(ns) {
                    problem(
                        format!("{at}.namespace"),
                        "must be a namespace name (lower-case letters, digits and `-`, at most 63)"
                            .into(),
                    );
                }
                if env.default_namespace.as_ref().is_some_and(|d| d != ns) {
                    problem(
                        format!("{at}.namespace"),
                        "differs from `defaultNamespace`: a chart's objects that name no namespace are in the release namespace; set only one of them".into(),
                    );
                }
            }
            for (j, f) in h.value_files.iter().enumerate() {
                let key = format!("{at}.valueFiles[{j}]");
                if f.trim().is_empty() {
                    problem(key, "must not be empty".into());
                } else if env.git.is_some() && f.starts_with('/') {
                    problem(
                        key,
                        "must be a file of the repository, relative to the chart folder".into(),
                    );
                } else if let (Some(d), false) = (&env.dir, h.ignore_missing_value_files) {
                    let p = self.resolve(d.path()).join(f);
                    if !p.is_file() {
                        problem(
                            key,
                            format!(
                                "file {} does not exist (ignoreMissingValueFiles leaves it out)",
                                p.display()
                            ),
                        );
                    }
                }
            }
            if let Some(InlineValues::Text(t)) = &h.values {
                match serde_yaml::from_str::<serde_yaml::Value>(t) {
                    Ok(serde_yaml::Value::Mapping(_) | serde_yaml::Value::Null) => {}
                    Ok(_) => problem(
                        format!("{at}.values"),
                        "must be a YAML mapping of values".into(),
                    ),
                    Err(e) => problem(format!("{at}.values"), format!("is not YAML: {e}")),
                }
            }
            for (j, p) in h.parameters.iter().enumerate() {
                if p.name.trim().is_empty() {
                    problem(
                        format!("{at}.parameters[{j}].name"),
                        "must not be empty".into(),
                    );
                }
            }
            if h.timeout.is_some_and(|t| t.0.is_zero()) {
                problem(format!("{at}.timeout"), "must be longer than 0s".into());
            }
            if let Some(bin) = &h.binary {
                check_binary(problem, &format!("{at}.binary"), &self.resolve(bin), bin);
            }
        }
        if let Some(r) = &env.render {
            let at = format!("{at}.render");
            if r.command.first().is_none_or(|c| c.trim().is_empty()) {
                problem(format!("{at}.command"), "names no program".into());
            } else if r.shell && r.command.len() != 1 {
                problem(
                    format!("{at}.command"),
                    "with `shell: true`, give one command line (a list of one string)".into(),
                );
            }
            if r.timeout.is_some_and(|t| t.0.is_zero()) {
                problem(format!("{at}.timeout"), "must be longer than 0s".into());
            }
            if r.max_output == Some(0) {
                problem(
                    format!("{at}.maxOutput"),
                    "must be more than 0 bytes".into(),
                );
            }
        }
    }
}

/// A configured binary named by a path (holding `/`) must exist; a bare name is looked up on
/// PATH when it runs.
fn check_binary(
    problem: &mut impl FnMut(String, String),
    key: &str,
    resolved: &Path,
    given: &Path,
) {
    if given.to_string_lossy().contains('/') && !resolved.is_file() {
        problem(
            key.to_owned(),
            format!("file {} does not exist", resolved.display()),
        );
    }
}

/// Whether `name` is a Helm release name: lower-case letters, digits, `-` and `.` (DNS
/// labels joined by dots), at most 53 characters.
fn is_release_name(name: &str) -> bool {
    name.len() <= 53 && !name.is_empty() && name.split('.').all(is_dns_label)
}

fn check_globs(
    problem: &mut impl FnMut(String, String),
    at: &str,
    include: &[String],
    exclude: &[String],
) {
    for (field, globs) in [("include", include), ("exclude", exclude)] {
        for (i, g) in globs.iter().enumerate() {
            if g.trim().is_empty() {
                problem(format!("{at}.{field}[{i}]"), "empty glob".into());
            }
        }
    }
}

/// A warning per deprecated snake_case key of `text`, a document the model accepted. Keys are
/// found in the parsed YAML, lines by [`locate`].
fn key_warnings(file: &str, text: &str) -> Vec<ConfigProblem> {
    let Ok(doc) = serde_yaml::from_str::<serde_yaml::Value>(text) else {
        return Vec::new();
    };
    let mut out: Vec<ConfigProblem> = keys::snake_case_keys(&doc)
        .into_iter()
        .map(|k| ConfigProblem {
            file: file.to_owned(),
            line: locate(text, &k.path).unwrap_or(0),
            column: 0,
            message: format!("snake_case keys are deprecated; write {}", k.camel),
            path: Some(k.path),
        })
        .collect();
    out.sort_by_key(|p| p.line);
    out
}

fn io_message(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// Whether `name` is a valid namespace name (an RFC 1123 label).
fn is_dns_label(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// Turns a serde_yaml error into a located problem (`file:line:col: path: message`).
fn yaml_problem(file: &str, e: &serde_yaml::Error) -> ConfigProblem {
    let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
    let msg = e.to_string();
    let msg = match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg,
    };
    // serde_yaml writes `path: message`; keep the path apart
    let (path, message) = match msg.split_once(": ") {
        Some((p, m))
            if !p.contains(' ')
                && p.chars()
                    .all(|c| c.is_alphanumeric() || "[]._-".contains(c)) =>
        {
            (Some(p.to_owned()), m.to_owned())
        }
        _ => (None, msg),
    };
    ConfigProblem {
        file: file.to_owned(),
        line,
        column,
        path,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENV: &str = "environments:\n  - name: a\n    dir: .\n    live:\n      dump: mod.rs\n";

    fn load(text: &str) -> Result<Config, ConfigError> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/config");
        Config::from_text(&dir.join("d.yaml"), text)
    }

    #[test]
    fn snake_case_keys_load_and_warn_with_file_line_and_new_key() {
        let text = format!(
            "{ENV}server:\n  listen: 127.0.0.1:9000\n  poll_interval: 30s\n  notifiers:\n    - type: pagerduty\n      routing_key_env: PD\n      route: {{min_severity: high}}\n      queue:\n        max_attempts: 3\n"
        );
        let config = load(&text).expect("snake_case keys still load");
        let server = config.file.server.as_ref().expect("server section");
        assert_eq!(server.poll_interval.0, std::time::Duration::from_secs(30));
        assert_eq!(server.notifiers[0].name(), "pagerduty");
        let NotifierConfig::Pagerduty {
            routing_key_env,
            route,
            queue,
            ..
        } = &server.notifiers[0]
        else {
            panic!("a pagerduty notifier: {:?}", server.notifiers[0]);
        };
        assert_eq!(routing_key_env, "PD");
        assert_eq!(
            route.min_severity,
            Some(driftguard_core::severity::Severity::High)
        );
        assert_eq!(queue.max_attempts, 3);
        let warnings: Vec<String> = config
            .warnings
            .iter()
            .map(|w| {
                w.to_string()
                    .replace(&config.path.display().to_string(), "d.yaml")
            })
            .collect();
        assert_eq!(
            warnings,
            [
                "d.yaml:8: server.poll_interval: snake_case keys are deprecated; write pollInterval",
                "d.yaml:11: server.notifiers[0].routing_key_env: snake_case keys are deprecated; write routingKeyEnv",
                "d.yaml:12: server.notifiers[0].route.min_severity: snake_case keys are deprecated; write minSeverity",
                "d.yaml:14: server.notifiers[0].queue.max_attempts: snake_case keys are deprecated; write maxAttempts",
            ]
        );
    }

    #[test]
    fn camel_case_keys_load_without_warnings() {
        let text = format!(
            "{ENV}server:\n  pollInterval: 30s\n  cacheTtl: 0s\n  notifiers:\n    - type: pagerduty\n      routingKeyEnv: PD\n      route: {{minSeverity: high}}\n      queue: {{maxAttempts: 3, groupWindow: 1s}}\n"
        );
        let config = load(&text).expect("valid");
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
        let server = config.file.server.expect("server section");
        assert_eq!(server.cache_ttl.0, std::time::Duration::ZERO);
    }

    #[test]
    fn unknown_and_doubled_keys_are_still_errors() {
        let e = load(&format!("{ENV}server:\n  pollIntervall: 30s\n")).expect_err("typo");
        let s = e.to_string();
        assert!(
            s.contains("d.yaml:7:") && s.contains("unknown field `pollIntervall`"),
            "{s}"
        );
        let e = load(&format!(
            "{ENV}server:\n  pollInterval: 30s\n  poll_interval: 40s\n"
        ))
        .expect_err("the same key twice");
        assert!(e.to_string().contains("duplicate field"), "{e}");
        // snake_case keys outside `server:` and notifiers were never valid
        let e = load(&format!("{ENV}secret_key:\n  env: K\n")).expect_err("not an alias");
        assert!(e.to_string().contains("unknown field `secret_key`"), "{e}");
    }

    #[test]
    fn leader_election_needs_a_shared_store_and_timings_in_order() {
        let mongo = "store:\n  mongodb: {uriEnv: U}\n";
        let ok = load(&format!(
            "{ENV}{mongo}server:\n  ha: {{namespace: dg, leaseDuration: 15s, renewDeadline: 10s, retryPeriod: 2s}}\n"
        ))
        .expect("valid");
        let ha = ok.file.server.and_then(|s| s.ha).expect("ha");
        assert_eq!(ha.namespace, "dg");
        assert_eq!(ha.lease_prefix, "driftguard");
        let problems = |text: String| -> Vec<String> {
            load(&text)
                .expect_err("refused")
                .problems
                .iter()
                .map(|p| p.path.clone().unwrap_or_default())
                .collect()
        };
        assert_eq!(
            problems(format!("{ENV}server:\n  ha: {{}}\n")),
            ["server.ha"],
            "replicas share their history: a MongoDB store"
        );
        assert_eq!(
            problems(format!(
                "{ENV}{mongo}server:\n  ha: {{leaseDuration: 1500ms, renewDeadline: 2s, retryPeriod: 3s, namespace: Not_A_Name, leasePrefix: '', inCluster: true, homeContext: c}}\n"
            )),
            [
                "server.ha.leaseDuration",
                "server.ha.renewDeadline",
                "server.ha.retryPeriod",
                "server.ha.namespace",
                "server.ha.leasePrefix",
                "server.ha.inCluster",
            ]
        );
    }

    #[test]
    fn problems_name_the_camel_case_key_at_the_line_of_either_spelling() {
        for key in ["caFile", "ca_file"] {
            let text = format!(
                "{ENV}notifications:\n  - type: email\n    host: h\n    from: a@b.c\n    to: [d@e.f]\n    {key}: none.pem\n"
            );
            let e = load(&text).expect_err("missing CA file");
            assert_eq!(e.problems.len(), 1, "{e}");
            let p = &e.problems[0];
            assert_eq!(p.path.as_deref(), Some("notifications[0].caFile"), "{e}");
            assert_eq!(p.line, 11, "{e}");
        }
    }
    #[test]
    fn an_inline_token_too_easy_to_guess_is_a_located_problem() {
        let text = format!("{ENV}server:\n  tokens:\n    - 4f1c9e0b7a2d6e83c5b1\n    - a\n");
        let e = load(&text).expect_err("`a` guards nothing");
        assert_eq!(e.problems.len(), 1, "{e}");
        let p = &e.problems[0];
        assert_eq!(p.path.as_deref(), Some("server.tokens[1]"), "{e}");
        assert!(p.message.contains("at least 16"), "{e}");
        assert!(p.line >= 7, "{e}");
        load(&format!("{ENV}server:\n  tokens: [4f1c9e0b7a2d6e83c5b1]\n")).expect("strong");
    }

    const CHART: &str = "../../../examples/helm/charts/shop";

    fn problems(text: &str) -> Vec<String> {
        match load(text) {
            Ok(_) => Vec::new(),
            Err(e) => e
                .problems
                .iter()
                .map(|p| format!("{}: {}", p.path.clone().unwrap_or_default(), p.message))
                .collect(),
        }
    }

    #[test]
    fn a_helm_environment_loads_with_argo_cd_keys() {
        let text = format!(
            "environments:\n  - name: prod\n    dir: {CHART}\n    helm:\n      releaseName: shop\n      namespace: shop-prod\n      valueFiles: [../../envs/prod/values.yaml]\n      values: |\n        theme: blue\n      parameters:\n        - {{name: web.replicas, value: \"4\"}}\n        - {{name: worker.image, value: \"busybox:1.33\", forceString: true}}\n      kubeVersion: 1.20.2\n      apiVersions: [monitoring.coreos.com/v1]\n      includeCRDs: false\n      skipTests: true\n    live:\n      dump: mod.rs\n  - name: gen\n    dir: .\n    render:\n      command: [./gen.sh, --all]\n      timeout: 5s\n      maxOutput: 1000\n    live:\n      dump: mod.rs\n"
        );
        let config = load(&text).expect("valid");
        let prod = config.environment("prod").expect("prod");
        assert_eq!(prod.spec().default_namespace.as_deref(), Some("shop-prod"));
        let Some(driftguard_sources::render::Renderer::Helm(h)) =
            crate::setup::renderer(&config, prod)
        else {
            panic!("a helm renderer");
        };
        assert_eq!(h.options.release_name, "shop");
        assert!(!h.options.include_crds);
        assert!(h.options.skip_tests);
        assert_eq!(h.options.values.as_deref(), Some("theme: blue\n"));
        assert_eq!(
            h.options.template_args("c", &["v.yaml".into()], Some("i.yaml")).join(" "),
            "template shop c --namespace shop-prod --kube-version 1.20.2 --api-versions monitoring.coreos.com/v1 --skip-tests --values v.yaml --values i.yaml --set web.replicas=4 --set-string worker.image=busybox:1.33"
        );
        let Some(driftguard_sources::render::Renderer::Command(c)) =
            crate::setup::renderer(&config, config.environment("gen").expect("gen"))
        else {
            panic!("a command renderer");
        };
        assert_eq!(c.command, ["./gen.sh", "--all"]);
        assert_eq!(c.timeout, std::time::Duration::from_secs(5));
        assert_eq!(c.max_output, 1000);
        // defaults: the environment's name is the release, `default` the namespace
        let text = format!(
            "environments:\n  - name: staging\n    dir: {CHART}\n    helm:\n      values: {{theme: red}}\n    live:\n      dump: mod.rs\n"
        );
        let config = load(&text).expect("valid");
        let env = config.environment("staging").expect("staging");
        let Some(driftguard_sources::render::Renderer::Helm(h)) =
            crate::setup::renderer(&config, env)
        else {
            panic!("a helm renderer");
        };
        assert_eq!(
            (
                h.options.release_name.as_str(),
                h.options.namespace.as_str()
            ),
            ("staging", "default")
        );
        assert!(h.options.include_crds);
        assert_eq!(h.options.values.as_deref(), Some("{\"theme\":\"red\"}"));
    }

    #[test]
    fn helm_and_render_problems_are_located() {
        let env = |name: &str, body: &str| {
            format!("environments:\n  - name: {name}\n{body}    live:\n      dump: mod.rs\n")
        };
        let cases = [
            (
                env("a", &format!("    dir: {CHART}\n    helm: {{}}\n    render: {{command: [x]}}\n")),
                "environments[0].render: `helm` and `render` are both set: choose one",
            ),
            (
                env("a", "    git: {url: x, include: ['*.yaml']}\n    helm: {}\n"),
                "environments[0].git: `include` and `exclude` do not apply",
            ),
            (
                env("Prod_EU", &format!("    dir: {CHART}\n    helm: {{}}\n")),
                "environments[0].helm.releaseName: the environment's name `Prod_EU` is not a release name",
            ),
            (
                env("a", &format!("    dir: {CHART}\n    helm: {{releaseName: Shop}}\n")),
                "environments[0].helm.releaseName: `Shop` is not a release name",
            ),
            (
                env("a", &format!("    dir: {CHART}\n    defaultNamespace: x\n    helm: {{namespace: y}}\n")),
                "environments[0].helm.namespace: differs from `defaultNamespace`",
            ),
            (
                env("a", &format!("    dir: {CHART}\n    helm: {{valueFiles: [nope.yaml]}}\n")),
                "environments[0].helm.valueFiles[0]: file ",
            ),
            (
                env("a", "    git: {url: x}\n    helm: {valueFiles: [/etc/v.yaml]}\n"),
                "environments[0].helm.valueFiles[0]: must be a file of the repository",
            ),
            (
                env("a", &format!("    dir: {CHART}\n    helm: {{values: '[1, 2]'}}\n")),
                "environments[0].helm.values: must be a YAML mapping",
            ),
            (
                env("a", &format!("    dir: {CHART}\n    helm: {{parameters: [{{name: '', value: x}}]}}\n")),
                "environments[0].helm.parameters[0].name: must not be empty",
            ),
            (
                env("a", &format!("    dir: {CHART}\n    helm: {{binary: ./no/helm}}\n")),
                "environments[0].helm.binary: file ",
            ),
            (
                env("a", "    dir: .\n    render: {command: [sh, -c], shell: true}\n"),
                "environments[0].render.command: with `shell: true`, give one command line",
            ),
            (
                env("a", "    dir: .\n    render: {command: []}\n"),
                "environments[0].render.command: names no program",
            ),
            (
                env("a", "    dir: .\n    render: {command: [x], timeout: 0s, maxOutput: 0}\n"),
                "environments[0].render.maxOutput: must be more than 0 bytes",
            ),
            (
                format!("{}helmBin: ./missing/helm\n", env("a", "    dir: .\n")),
                "helmBin: file ",
            ),
        ];
        for (text, expected) in cases {
            let found = problems(&text);
            assert!(
                found.iter().any(|p| p.starts_with(expected)),
                "{expected:?} not in {found:?}\n{text}"
            );
        }
        // a missing value file is fine when it is to be left out
        let ok = env(
            "a",
            &format!("    dir: {CHART}\n    helm: {{valueFiles: [nope.yaml], ignoreMissingValueFiles: true}}\n"),
        );
        assert_eq!(problems(&ok), Vec::<String>::new());
    }

    const MODULE: &str = "../../../examples/terraform";

    #[test]
    fn a_terraform_environment_loads_without_a_live_side() {
        let text = format!(
            "terraformCache: /var/cache/dg-tf\nenvironments:\n  - name: cloud\n    dir: {MODULE}\n    terraform:\n      workspace: prod\n      varFiles: [variables.tf, /etc/hostname]\n      binary: terraform\n      backendConfig: [path=/var/lib/tf/prod.tfstate]\n      timeout: 2m\n      orphans:\n        aws:\n          regions: [eu-west-1]\n          endpoint: http://127.0.0.1:5000\n          kinds: [aws_s3_bucket, aws_vpc]\n          exclude: ['tfstate-*']\n"
        );
        let config = load(&text).expect("valid");
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
        let env = config.environment("cloud").expect("cloud");
        let t = env.terraform.as_ref().expect("terraform section");
        assert_eq!(t.workspace.as_deref(), Some("prod"));
        assert_eq!(t.var_files, ["variables.tf", "/etc/hostname"]);
        assert_eq!(t.backend_config, ["path=/var/lib/tf/prod.tfstate"]);
        assert_eq!(
            t.timeout.map(|d| d.0),
            Some(std::time::Duration::from_secs(120))
        );
        let aws = &t.orphans.as_ref().expect("orphans").aws;
        assert_eq!(aws.kinds, ["aws_s3_bucket", "aws_vpc"]);
        assert_eq!(aws.endpoint.as_deref(), Some("http://127.0.0.1:5000"));
        assert_eq!(
            config.file.terraform_cache.as_deref(),
            Some(Path::new("/var/cache/dg-tf"))
        );
    }

    #[test]
    fn terraform_problems_are_located() {
        let env = |body: &str| format!("environments:\n  - name: a\n{body}");
        let cases = [
            (
                env(&format!("    dir: {MODULE}\n    terraform: {{}}\n    live:\n      dump: mod.rs\n")),
                "environments[0].live: a Terraform environment has no `live` side",
            ),
            (
                env(&format!("    dir: {CHART}\n    terraform: {{}}\n    helm: {{}}\n")),
                "environments[0].terraform: `terraform` and `helm`/`render` are both set",
            ),
            (
                env("    git: {url: x, include: ['*.tf']}\n    terraform: {}\n"),
                "environments[0].terraform: `include` and `exclude` do not apply",
            ),
            (
                env(&format!("    dir: {MODULE}\n    terraform: {{workspace: ' '}}\n")),
                "environments[0].terraform.workspace: must not be empty",
            ),
            (
                env(&format!("    dir: {MODULE}\n    terraform: {{varFiles: [prod.tfvars]}}\n")),
                "environments[0].terraform.varFiles[0]: file ",
            ),
            (
                env(&format!("    dir: {MODULE}\n    terraform: {{binary: ./no/terraform}}\n")),
                "environments[0].terraform.binary: file ",
            ),
            (
                env(&format!("    dir: {MODULE}\n    terraform: {{cliConfigFile: none.tfrc}}\n")),
                "environments[0].terraform.cliConfigFile: file ",
            ),
            (
                env(&format!("    dir: {MODULE}\n    terraform: {{timeout: 0s}}\n")),
                "environments[0].terraform.timeout: must be longer than 0s",
            ),
            (
                env(&format!("    dir: {MODULE}\n    terraform: {{orphans: {{aws: {{kinds: [aws_lambda_function]}}}}}}\n")),
                "environments[0].terraform.orphans.aws.kinds[0]: `aws_lambda_function` cannot be listed",
            ),
            (
                env(&format!("    dir: {MODULE}\n    terraform: {{orphans: {{aws: {{endpoint: '127.0.0.1:5000'}}}}}}\n")),
                "environments[0].terraform.orphans.aws.endpoint: must be an http:// or https:// URL",
            ),
        ];
        for (text, expected) in cases {
            let found = problems(&text);
            assert!(
                found.iter().any(|p| p.starts_with(expected)),
                "{expected:?} not in {found:?}\n{text}"
            );
        }
        // without `live`, only a Kubernetes environment is refused
        let found = problems(&env(&format!("    dir: {MODULE}\n")));
        assert!(
            found.iter().any(|p| p.contains("no live side")),
            "{found:?}"
        );
    }

    #[test]
    fn an_audit_section_loads_and_its_problems_are_located() {
        let env = |audit: &str| {
            format!("environments:\n  - name: prod\n    dir: .\n    live:\n      dump: mod.rs\n    audit:\n{audit}")
        };
        let config = load(&env(
            "      webhook: {tokenEnv: AUDIT_TOKEN, maxBody: 1000}\n      logFile: /var/log/kubernetes/audit.log\n      logPollInterval: 5s\n      userNames: hash\n      writesPerObject: 4\n      maxAge: 2d\n      maxObjects: 10\n",
        ))
        .expect("valid");
        let prod = config.environment("prod").expect("prod");
        let spec = prod.spec().audit.expect("audit settings");
        assert_eq!(spec.user_names, driftguard_core::audit::UserNames::Hash);
        assert_eq!(spec.limits.writes_per_object, 4);
        assert_eq!(
            spec.limits.max_age,
            std::time::Duration::from_secs(2 * 86400)
        );
        assert_eq!(spec.limits.max_objects, 10);
        let (t1, t2) = ("audit-token-1-4f1c9e0b", "audit-token-2-7a2d6e83");
        let var = |k: &str| (k == "AUDIT_TOKEN").then(|| format!("{t1}, {t2}"));
        let settings = crate::setup::audit_settings(&config, prod, &var)
            .expect("resolved")
            .expect("settings");
        assert_eq!(settings.tokens, [t1, t2]);
        assert_eq!(settings.max_body, 1000);
        assert!(settings.webhook);
        assert_eq!(settings.log_every, std::time::Duration::from_secs(5));
        assert!(
            !format!("{settings:?}").contains(t1),
            "tokens are not printed"
        );
        let weak = |k: &str| (k == "AUDIT_TOKEN").then(|| format!("{t1}, audit"));
        let err = crate::setup::audit_settings(&config, prod, &weak)
            .expect_err("a token too easy to guess");
        assert!(
            err.to_string().starts_with(
                "invalid environment prod: audit.webhook.tokenEnv: token 2 of 2 in $AUDIT_TOKEN: a token of 5 characters"
            ),
            "{err}"
        );
        let err = crate::setup::audit_settings(&config, prod, &|_: &str| None)
            .expect_err("the variable is missing");
        assert_eq!(
            err.to_string(),
            "environment prod: audit.webhook.tokenEnv: environment variable AUDIT_TOKEN is not set"
        );
        // defaults: nothing but a log file
        let config = load(&env("      logFile: audit.log\n")).expect("valid");
        let prod = config.environment("prod").expect("prod");
        assert_eq!(
            prod.spec().audit,
            Some(driftguard_core::audit::AuditSpec::default())
        );
        let settings = crate::setup::audit_settings(&config, prod, &|_: &str| None)
            .expect("no token needed")
            .expect("settings");
        assert!(!settings.webhook);
        assert!(settings
            .log
            .as_ref()
            .is_some_and(|l| l.path().ends_with("src/config/audit.log")));
        let cases = [
            (
                "      userNames: keep\n",
                "environments[0].audit: no audit events to read",
            ),
            (
                "      webhook: {tokenEnv: ' '}\n",
                "environments[0].audit.webhook.tokenEnv: must name the environment variable",
            ),
            (
                "      webhook: {tokenEnv: T, maxBody: 0}\n",
                "environments[0].audit.webhook.maxBody: must be more than 0 bytes",
            ),
            (
                "      logFile: a.log\n      writesPerObject: 0\n",
                "environments[0].audit.writesPerObject: must be more than 0",
            ),
            (
                "      logFile: a.log\n      maxAge: 0s\n",
                "environments[0].audit.maxAge: must be more than 0",
            ),
            (
                "      logFile: a.log\n      userNames: blur\n",
                "environments[0].audit.userNames: unknown user name setting `blur`",
            ),
            (
                "      logFile: a.log\n      tokenEnv: X\n",
                "environments[0].audit: unknown field `tokenEnv`",
            ),
        ];
        for (audit, expected) in cases {
            let found = problems(&env(audit));
            assert!(
                found.iter().any(|p| p.starts_with(expected)),
                "{expected:?} not in {found:?}"
            );
        }
    }
}
