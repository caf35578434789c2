//! The configuration file (`driftguard.yaml`): its model, loading and validation.
//!
//! Loading is two steps: the YAML is deserialized with unknown keys refused (a key or type
//! error is reported with its file, line and column, e.g.
//! `driftguard.yaml:12:5: environments[0].git: unknown field `rf`, expected one of ...`), then
//! the values are checked together ([`Config::validate`]), which reports every problem found,
//! each with the line of the key at fault.
//!
//! Relative paths in the file are relative to the folder holding the file.

use std::fmt;
use std::path::{Path, PathBuf};

use driftguard_core::engine::EnvironmentSpec;
use driftguard_core::id::GroupKind;
use driftguard_core::ignore::{IgnoreRule, IgnoreRules};
use driftguard_core::ports::GroupVersionKind;
use driftguard_core::severity::{SeverityRule, SeverityRules};
use serde::{Deserialize, Serialize};

/// The whole file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigFile {
    /// Environments to scan.
    #[serde(default)]
    pub environments: Vec<EnvironmentConfig>,
    /// Where history is kept (default: the embedded SQLite file).
    #[serde(default)]
    pub store: Option<StoreConfig>,
    /// The key Secret values are hashed with.
    #[serde(default)]
    pub secret_key: Option<SecretKeySource>,
    /// Notifiers (used by `driftguard serve`, added to `server.notifiers`).
    #[serde(default)]
    pub notifications: Vec<driftguard_server::config::NotifierConfig>,
    /// The `server:` section (used by `driftguard serve`).
    #[serde(default)]
    pub server: Option<driftguard_server::config::ServerConfig>,
    /// Folder holding the clones of remote repositories (default `.driftguard/git`).
    #[serde(default)]
    pub git_cache: Option<PathBuf>,
    /// The binary rendering kustomizations (`kubectl` or `kustomize`; default: found on PATH).
    #[serde(default)]
    pub kustomize_bin: Option<PathBuf>,
}

/// One environment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvironmentConfig {
    /// Name (unique).
    pub name: String,
    /// Desired side: a Git repository.
    #[serde(default)]
    pub git: Option<GitConfig>,
    /// Desired side: a plain folder of manifests.
    #[serde(default)]
    pub dir: Option<DirConfig>,
    /// Live side.
    #[serde(default)]
    pub live: Option<LiveConfig>,
    /// Namespaces to read from the cluster (empty: all).
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// The namespace of namespaced manifests that name none, as `kubectl apply -n` gives it
    /// (default: `default`).
    #[serde(default)]
    pub default_namespace: Option<String>,
    /// Kinds to read besides those Git defines (`apiVersion` and `kind`).
    #[serde(default)]
    pub kinds: Vec<KindConfig>,
    /// Ignore rules (like Argo CD's `ignoreDifferences`).
    #[serde(default)]
    pub ignore: Vec<IgnoreRule>,
    /// Severity overrides.
    #[serde(default)]
    pub severity: Vec<SeverityRule>,
    /// Whether an HPA owns the `spec.replicas` of its target (default true).
    #[serde(default)]
    pub hpa_owns_replicas: Option<bool>,
    /// Namespaces fully managed by Git, where orphans are looked for (default: the
    /// namespaces Git defines).
    #[serde(default)]
    pub managed_namespaces: Option<Vec<String>>,
    /// Kinds (`Kind` or `Kind.group`) in which orphans are looked for (default: the kinds Git
    /// defines).
    #[serde(default)]
    pub orphan_kinds: Option<Vec<String>>,
}

/// A Git repository.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GitConfig {
    /// URL or local path.
    pub url: String,
    /// Branch, tag or commit (default: the remote's default branch).
    #[serde(default, rename = "ref")]
    pub reference: Option<String>,
    /// Folder inside the repository.
    #[serde(default)]
    pub path: Option<String>,
    /// Globs of files to read (relative to `path`).
    #[serde(default)]
    pub include: Vec<String>,
    /// Globs of files to leave out.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Name of an environment variable holding an HTTPS token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// A private SSH key file.
    #[serde(default)]
    pub ssh_key: Option<PathBuf>,
}

/// A plain folder: a path, or a mapping with globs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DirConfig {
    /// Just the path.
    Path(PathBuf),
    /// Path and globs.
    Full(DirFull),
}

/// A plain folder with globs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DirFull {
    /// The folder.
    pub path: PathBuf,
    /// Globs of files to read.
    #[serde(default)]
    pub include: Vec<String>,
    /// Globs of files to leave out.
    #[serde(default)]
    pub exclude: Vec<String>,
}

impl DirConfig {
    /// The folder.
    pub fn path(&self) -> &Path {
        match self {
            DirConfig::Path(p) => p,
            DirConfig::Full(f) => &f.path,
        }
    }

    /// Include and exclude globs.
    pub fn globs(&self) -> (Vec<String>, Vec<String>) {
        match self {
            DirConfig::Path(_) => (Vec::new(), Vec::new()),
            DirConfig::Full(f) => (f.include.clone(), f.exclude.clone()),
        }
    }
}

/// The live side: a cluster (kubeconfig and context, or in-cluster), or dump files.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LiveConfig {
    /// Kubeconfig file (default `$KUBECONFIG`, then `~/.kube/config`).
    #[serde(default)]
    pub kubeconfig: Option<PathBuf>,
    /// Context in the kubeconfig.
    #[serde(default)]
    pub context: Option<String>,
    /// Use the in-cluster service account.
    #[serde(default)]
    pub in_cluster: bool,
    /// Dump files (`kubectl get -o yaml` output) instead of a cluster.
    #[serde(default)]
    pub dump: Option<OneOrMany>,
}

/// One path or a list of paths.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One.
    One(PathBuf),
    /// Several.
    Many(Vec<PathBuf>),
}

impl OneOrMany {
    /// As a list.
    pub fn paths(&self) -> Vec<PathBuf> {
        match self {
            OneOrMany::One(p) => vec![p.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// A kind to read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KindConfig {
    /// `apiVersion`, e.g. `apps/v1`.
    pub api_version: String,
    /// Kind.
    pub kind: String,
}

/// Where history is kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StoreConfig {
    /// An SQLite file (the default, `.driftguard/driftguard.db`).
    #[serde(default)]
    pub sqlite: Option<PathBuf>,
    /// A MongoDB database.
    #[serde(default)]
    pub mongodb: Option<MongoConfig>,
    /// Age after which events, scan summaries and resolved episodes are pruned (e.g. `90d`;
    /// default: kept). Open drifts and current records are never pruned.
    #[serde(default)]
    pub retention: Option<driftguard_server::config::HumanDuration>,
}

/// A MongoDB database.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MongoConfig {
    /// Name of the environment variable holding the connection string (default
    /// `MONGODB_URI`); the URI is never written in the file.
    #[serde(default)]
    pub uri_env: Option<String>,
    /// Database (default `driftguard`).
    #[serde(default)]
    pub database: Option<String>,
}

/// Where the Secret hashing key comes from: never inline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretKeySource {
    /// An environment variable holding the key.
    #[serde(default)]
    pub env: Option<String>,
    /// A file holding the key (surrounding whitespace is trimmed).
    #[serde(default)]
    pub file: Option<PathBuf>,
}

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
            match &env.live {
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
            if let driftguard_server::config::NotifierConfig::Email {
                ca_file: Some(ca), ..
            } = n
            {
                let r = self.resolve(ca);
                if !r.is_file() {
                    problem(
                        format!("{at}.ca_file"),
                        format!("file {} does not exist", r.display()),
                    );
                }
            }
        }
        if let Some(store) = &f.store {
            if store.sqlite.is_some() && store.mongodb.is_some() {
                problem(
                    "store".into(),
                    "`sqlite` and `mongodb` are both set: choose one".into(),
                );
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

impl EnvironmentConfig {
    /// The engine's view of this environment.
    pub fn spec(&self) -> EnvironmentSpec {
        let mut spec = EnvironmentSpec::new(self.name.clone());
        spec.ignore = IgnoreRules {
            rules: self.ignore.clone(),
        };
        spec.severity = SeverityRules {
            overrides: self.severity.clone(),
        };
        if let Some(h) = self.hpa_owns_replicas {
            spec.hpa_owns_replicas = h;
        }
        spec.managed_namespaces = self.managed_namespaces.clone();
        spec.orphan_kinds = self.orphan_kinds.as_ref().map(|v| {
            v.iter()
                .map(|k| match k.split_once('.') {
                    Some((kind, group)) => GroupKind::new(group, kind),
                    None => GroupKind::new("", k.as_str()),
                })
                .collect()
        });
        spec.namespaces = self.namespaces.clone();
        spec.default_namespace = self.default_namespace.clone();
        spec.extra_kinds = self
            .kinds
            .iter()
            .map(|k| GroupVersionKind::from_api_version(&k.api_version, &k.kind))
            .collect();
        spec
    }
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

/// Finds the line of a key path (`environments[1].live.dump`) in block-style YAML text.
/// Returns the line (1-based) of the deepest segment found.
pub fn locate(text: &str, path: &str) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let mut segments = Vec::new();
    for part in path.split('.') {
        match part.split_once('[') {
            Some((key, rest)) => {
                if !key.is_empty() {
                    segments.push(Seg::Key(key.to_owned()));
                }
                for idx in rest.split('[') {
                    if let Ok(n) = idx.trim_end_matches(']').parse::<usize>() {
                        segments.push(Seg::Index(n));
                    }
                }
            }
            None => segments.push(Seg::Key(part.to_owned())),
        }
    }
    // effective indentation and content of a line (`- key: v` counts as `key: v` two deeper)
    let eff = |line: &str| -> Option<(usize, bool, String)> {
        let t = line.trim_start();
        if t.is_empty() || t.starts_with('#') {
            return None;
        }
        let indent = line.len() - t.len();
        Some((indent, t.starts_with("- ") || t == "-", t.to_owned()))
    };
    let (mut start, mut end) = (0usize, lines.len());
    let mut want: Option<usize> = None; // indentation of the keys of the current block
    let mut found = None;
    for seg in segments {
        let mut hit = None;
        let mut count = 0;
        for (i, line) in lines.iter().enumerate().take(end).skip(start) {
            let Some((indent, dash, t)) = eff(line) else {
                continue;
            };
            match &seg {
                Seg::Key(k) => {
                    let (ind, body) = if dash && i == start && want.is_some_and(|w| w == indent + 2)
                    {
                        (indent + 2, t[2..].trim_start().to_owned())
                    } else {
                        (indent, t)
                    };
                    let w = *want.get_or_insert(ind);
                    if ind == w && body.starts_with(&format!("{k}:")) {
                        hit = Some((i, ind));
                        break;
                    }
                }
                Seg::Index(n) => {
                    let w = *want.get_or_insert(indent);
                    if dash && indent == w {
                        if count == *n {
                            hit = Some((i, indent));
                            break;
                        }
                        count += 1;
                    }
                }
            }
        }
        let (i, ind) = hit?;
        found = Some(i + 1);
        let mut e = i + 1;
        while e < lines.len() {
            if let Some((indent, _, _)) = eff(lines[e]) {
                if indent <= ind {
                    break;
                }
            }
            e += 1;
        }
        match seg {
            Seg::Index(_) => {
                start = i;
                want = Some(ind + 2);
            }
            Seg::Key(_) => {
                start = i + 1;
                want = None;
            }
        }
        end = e;
    }
    found
}

enum Seg {
    Key(String),
    Index(usize),
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# c\nenvironments:\n  - name: a\n    dir: x\n  - name: b\n    live:\n      dump: y.yaml\n    dir: z\nstore:\n  sqlite: s.db\n";

    #[test]
    fn locates_keys() {
        assert_eq!(locate(TEXT, "environments"), Some(2));
        assert_eq!(locate(TEXT, "environments[0]"), Some(3));
        assert_eq!(locate(TEXT, "environments[1].name"), Some(5));
        assert_eq!(locate(TEXT, "environments[1].live.dump"), Some(7));
        assert_eq!(locate(TEXT, "environments[1].dir"), Some(8));
        assert_eq!(locate(TEXT, "store.sqlite"), Some(10));
    }

    #[test]
    fn unknown_keys_are_located() {
        let text = "environments:\n  - name: a\n    git:\n      url: x\n      rf: main\n";
        let e = Config::from_text(Path::new("d.yaml"), text).expect_err("unknown key");
        let s = e.to_string();
        assert!(s.starts_with("d.yaml:5:"), "{s}");
        assert!(s.contains("environments[0].git: unknown field `rf`"), "{s}");
    }
}
