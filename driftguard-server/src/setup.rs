//! Wiring a configuration to the ports: the desired and live sources of an environment, the
//! store and the Secret hashing key. Used by `driftguard serve` ([`crate::service`]) and by
//! the CLI's one-shot scans alike.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use driftguard_core::engine::Engine;
use driftguard_core::memory::MemoryStore;
use driftguard_core::normalize::SecretKey;
use driftguard_core::ports::{Clock, DriftStore, GitSource, LiveSource, PlanSource, StoreError};
use driftguard_core::scanner::Scanner;
use driftguard_sources::files::{DirSource, DumpSource};
use driftguard_sources::git::{GitAuth, GitRepoSource, GitSourceConfig};
use driftguard_sources::kube::{KubeConfigSpec, KubeLiveSource};
use driftguard_sources::render::{CommandRenderer, HelmRenderer, Renderer};
use driftguard_sources::terraform::aws::{AwsConfig, AwsLister};
use driftguard_sources::terraform::{TerraformCode, TerraformSource};
pub use driftguard_store::DeferredStore;
use driftguard_store::{MongoOptions, MongoStore, SqliteStore};

use crate::audit::{AuditSettings, DEFAULT_LOG_POLL, DEFAULT_MAX_BODY};
use crate::config::{Config, EnvironmentConfig, InlineValues, StoreConfig};
pub use crate::context::SystemClock;
use driftguard_core::render::{HelmOptions, HelmParameter};
use driftguard_sources::audit_log::AuditLogReader;

/// Why a configuration could not be wired to its sources and store.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// An environment variable the configuration names is not set, or is empty.
    #[error("{field}: environment variable {var} is not set")]
    MissingEnv {
        /// The key of the configuration naming the variable.
        field: String,
        /// The variable.
        var: String,
    },
    /// A value the configuration names cannot be used (e.g. a token too easy to guess).
    #[error(transparent)]
    Setting(#[from] crate::config::SettingError),
    /// The store could not be opened.
    #[error("cannot open the store ({store})")]
    Store {
        /// The store, described.
        store: String,
        /// The cause.
        #[source]
        source: StoreError,
    },
    /// A file could not be read, created or written.
    #[error("cannot {action} {}", path.display())]
    File {
        /// `read`, `create` or `write`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The Secret key file holds nothing.
    #[error("the Secret key file {} is empty", path.display())]
    EmptyKey {
        /// The file.
        path: PathBuf,
    },
    /// A shared store needs a configured Secret key.
    #[error("secretKey: a MongoDB store needs a configured key (secretKey.env or secretKey.file) so that every process hashes Secrets alike")]
    KeyNeeded,
    /// No random key could be made.
    #[error("cannot make a random key: {0}")]
    Random(getrandom::Error),
    /// An environment names no desired side.
    #[error("environment {environment}: no desired side (git or dir)")]
    NoDesiredSide {
        /// The environment.
        environment: String,
    },
    /// A source of an environment could not be set up.
    #[error("environment {environment}")]
    Source {
        /// The environment.
        environment: String,
        /// The cause.
        #[source]
        source: driftguard_core::ports::SourceError,
    },
}

/// Where history is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreChoice {
    /// Nothing kept (`--no-store`): every scan is a first scan.
    Memory,
    /// An SQLite file.
    Sqlite(PathBuf),
    /// A MongoDB database: the URI is read from an environment variable.
    Mongo {
        /// The environment variable holding the URI.
        uri_env: String,
        /// The database.
        database: String,
        /// Retention (TTL indexes), from `store.retention`.
        retention: Option<std::time::Duration>,
    },
}

impl StoreChoice {
    /// The choice a configuration makes, with `--store` / `--no-store` overrides.
    pub fn from_config(config: &Config, store_flag: Option<&Path>, no_store: bool) -> Self {
        if no_store {
            return StoreChoice::Memory;
        }
        if let Some(p) = store_flag {
            return StoreChoice::Sqlite(p.to_path_buf());
        }
        match &config.file.store {
            Some(StoreConfig {
                mongodb: Some(m), ..
            }) => StoreChoice::Mongo {
                uri_env: m.uri_env.clone().unwrap_or_else(|| "MONGODB_URI".into()),
                database: m.database.clone().unwrap_or_else(|| "driftguard".into()),
                retention: config.retention(),
            },
            Some(StoreConfig {
                sqlite: Some(p), ..
            }) => StoreChoice::Sqlite(config.resolve(p)),
            _ => StoreChoice::Sqlite(config.base.join(".driftguard").join("driftguard.db")),
        }
    }

    /// A short description for messages.
    pub fn describe(&self) -> String {
        match self {
            StoreChoice::Memory => "no store".into(),
            StoreChoice::Sqlite(p) => format!("sqlite {}", p.display()),
            StoreChoice::Mongo { database, .. } => format!("mongodb database {database}"),
        }
    }

    /// Opens the store for reading. A missing SQLite file is an empty store (it is not
    /// created).
    pub async fn open_read(&self) -> Result<Arc<dyn DriftStore>, SetupError> {
        match self {
            StoreChoice::Memory => Ok(Arc::new(MemoryStore::new())),
            StoreChoice::Sqlite(p) if !p.exists() => Ok(Arc::new(MemoryStore::new())),
            _ => self.open_write().await,
        }
    }

    /// The MongoDB connection options (the URI from its environment variable).
    fn mongo_options(
        uri_env: &str,
        database: &str,
        retention: Option<std::time::Duration>,
    ) -> Result<MongoOptions, SetupError> {
        let uri = std::env::var(uri_env).map_err(|_| SetupError::MissingEnv {
            field: "store.mongodb.uriEnv".into(),
            var: uri_env.to_owned(),
        })?;
        let mut options = MongoOptions::new(uri, database.to_owned());
        options.retention = retention;
        Ok(options)
    }

    /// Opens the store of a long-running server: like [`StoreChoice::open_write`], except
    /// that a MongoDB server that cannot be reached yet is not an error (the store connects
    /// when the database answers; wrap it in a `BufferedStore`).
    pub async fn open_service(&self) -> Result<Arc<dyn DriftStore>, SetupError> {
        match self {
            StoreChoice::Mongo {
                uri_env,
                database,
                retention,
            } => MongoStore::connect_lazy(Self::mongo_options(uri_env, database, *retention)?)
                .await
                .map(|s| Arc::new(s) as Arc<dyn DriftStore>)
                .map_err(|source| SetupError::Store {
                    store: self.describe(),
                    source,
                }),
            _ => self.open_write().await,
        }
    }

    /// Opens (creating if needed) the store for writing.
    pub async fn open_write(&self) -> Result<Arc<dyn DriftStore>, SetupError> {
        match self {
            StoreChoice::Memory => Ok(Arc::new(MemoryStore::new())),
            StoreChoice::Sqlite(p) => SqliteStore::open(p)
                .map(|s| Arc::new(s) as Arc<dyn DriftStore>)
                .map_err(|source| SetupError::Store {
                    store: self.describe(),
                    source,
                }),
            StoreChoice::Mongo {
                uri_env,
                database,
                retention,
            } => {
                let options = Self::mongo_options(uri_env, database, *retention)?;
                MongoStore::connect_with(options)
                    .await
                    .map(|s| Arc::new(s) as Arc<dyn DriftStore>)
                    .map_err(|source| SetupError::Store {
                        store: self.describe(),
                        source,
                    })
            }
        }
    }
}

/// Where the Secret hashing key comes from, resolved.
#[derive(Debug)]
pub struct ResolvedKey {
    /// The key.
    pub key: SecretKey,
    /// A key file to write next to the store when the scan's results are stored (a fresh
    /// per-store key).
    pub create: Option<(PathBuf, String)>,
}

/// The Secret hashing key: `secretKey.env` / `secretKey.file` from the configuration, else the
/// `DRIFTGUARD_SECRET_KEY` environment variable, else a per-store key kept next to the SQLite
/// file (`<db>.key`, created on the first stored scan), else (no store) a random key.
pub fn secret_key(
    config: &Config,
    key_file_flag: Option<&Path>,
    store: &StoreChoice,
) -> Result<ResolvedKey, SetupError> {
    let plain = |key: Vec<u8>| ResolvedKey {
        key: SecretKey::new(key),
        create: None,
    };
    if let Some(p) = key_file_flag {
        return read_key_file(p).map(plain);
    }
    if let Some(k) = &config.file.secret_key {
        if let Some(var) = &k.env {
            let missing = || SetupError::MissingEnv {
                field: "secretKey.env".into(),
                var: var.clone(),
            };
            let v = std::env::var(var).map_err(|_| missing())?;
            if v.trim().is_empty() {
                return Err(missing());
            }
            return Ok(plain(v.trim().as_bytes().to_vec()));
        }
        if let Some(f) = &k.file {
            return read_key_file(&config.resolve(f)).map(plain);
        }
    }
    if let Ok(v) = std::env::var("DRIFTGUARD_SECRET_KEY") {
        if !v.trim().is_empty() {
            return Ok(plain(v.trim().as_bytes().to_vec()));
        }
    }
    match store {
        StoreChoice::Sqlite(db) => {
            let path = key_path_for(db);
            if path.exists() {
                return read_key_file(&path).map(plain);
            }
            let fresh = random_key()?;
            Ok(ResolvedKey {
                key: SecretKey::new(fresh.as_bytes().to_vec()),
                create: Some((path, fresh)),
            })
        }
        StoreChoice::Memory => Ok(plain(random_key()?.into_bytes())),
        StoreChoice::Mongo { .. } => Err(SetupError::KeyNeeded),
    }
}

/// The per-store key file of an SQLite store: `driftguard.db` → `driftguard.key`.
pub fn key_path_for(db: &Path) -> PathBuf {
    db.with_extension("key")
}

fn read_key_file(p: &Path) -> Result<Vec<u8>, SetupError> {
    let text = std::fs::read_to_string(p).map_err(|source| SetupError::File {
        action: "read the Secret key file",
        path: p.to_path_buf(),
        source,
    })?;
    let t = text.trim();
    if t.is_empty() {
        return Err(SetupError::EmptyKey {
            path: p.to_path_buf(),
        });
    }
    Ok(t.as_bytes().to_vec())
}

fn random_key() -> Result<String, SetupError> {
    let mut buf = [0u8; 32];
    getrandom::fill(&mut buf).map_err(SetupError::Random)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes a fresh per-store key file (mode 0600 on Unix).
pub fn write_key_file(path: &Path, key: &str) -> Result<(), SetupError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| SetupError::File {
            action: "create",
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    use std::io::Write;
    let file_error = |action| {
        move |source| SetupError::File {
            action,
            path: path.to_path_buf(),
            source,
        }
    };
    let mut f = opts.open(path).map_err(file_error("create"))?;
    writeln!(f, "{key}").map_err(file_error("write"))
}

/// The scanner of an environment: on its Git (or folder) and live sources, or, for a
/// Terraform environment, on its plans.
pub async fn scanner(
    config: &Config,
    env: &EnvironmentConfig,
    engine: Engine,
    store: Arc<dyn DriftStore>,
    clock: Arc<dyn Clock>,
) -> Result<Scanner, SetupError> {
    if env.terraform.is_some() {
        let plans = plan_source(config, env).await?;
        return Ok(Scanner::with_plans(engine, plans, store, clock));
    }
    let git = git_source(config, env).await?;
    let live = live_source(config, env).await?;
    Ok(Scanner::new(engine, git, live, store, clock))
}

/// The plan source of a Terraform environment (its `terraform` section, with `git` or `dir`
/// holding the root module).
pub async fn plan_source(
    config: &Config,
    env: &EnvironmentConfig,
) -> Result<Arc<dyn PlanSource>, SetupError> {
    let t = env.terraform.clone().unwrap_or_default();
    let code = if let Some(d) = &env.dir {
        TerraformCode::Folder(config.resolve(d.path()))
    } else if let Some(g) = &env.git {
        let url = repository_url(config, g);
        let mut gc = GitSourceConfig::new(url, git_cache(config))
            .reference(g.reference.clone().unwrap_or_default())
            .path(g.path.clone().unwrap_or_default());
        gc.limits = config.file.limits.limits();
        if g.token_env.is_some() || g.ssh_key.is_some() {
            gc.auth = Some(GitAuth {
                token_env: g.token_env.clone(),
                ssh_key_path: g.ssh_key.as_ref().map(|p| config.resolve(p)),
                ..GitAuth::default()
            });
        }
        let src = GitRepoSource::open(gc)
            .await
            .map_err(|source| SetupError::Source {
                environment: env.name.clone(),
                source,
            })?;
        TerraformCode::Git {
            source: Arc::new(src),
            path: g.path.clone().unwrap_or_default(),
        }
    } else {
        return Err(SetupError::NoDesiredSide {
            environment: env.name.clone(),
        });
    };
    let cache = config.file.terraform_cache.as_ref().map_or_else(
        || config.base.join(".driftguard").join("terraform"),
        |p| config.resolve(p),
    );
    let mut tc = driftguard_sources::terraform::TerraformConfig::new(code, cache.join(&env.name));
    tc.workspace = t.workspace.clone();
    // relative variable files are the module's (terraform reads them from its folder)
    tc.var_files = t.var_files.clone();
    tc.binary = t.binary.as_ref().map(|p| program(config, p));
    tc.backend_config = t.backend_config.clone();
    tc.cli_config_file = t.cli_config_file.as_ref().map(|p| config.resolve(p));
    if let Some(d) = t.timeout {
        tc.timeout = d.0;
    }
    if let Some(o) = &t.orphans {
        let a = &o.aws;
        let regions = if a.regions.is_empty() {
            vec![std::env::var("AWS_REGION")
                .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
                .ok()
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| "us-east-1".into())]
        } else {
            a.regions.clone()
        };
        let mut ac = AwsConfig::new(regions);
        ac.endpoint = a.endpoint.clone();
        if !a.kinds.is_empty() {
            ac.kinds = a.kinds.clone();
        }
        ac.exclude = a.exclude.clone();
        tc.cloud = Some(Arc::new(AwsLister::new(ac)));
    }
    Ok(Arc::new(TerraformSource::new(tc)))
}

/// The folder holding the clones of remote repositories.
fn git_cache(config: &Config) -> PathBuf {
    config.file.git_cache.as_ref().map_or_else(
        || config.base.join(".driftguard").join("git"),
        |p| config.resolve(p),
    )
}

/// The desired side of an environment.
pub async fn git_source(
    config: &Config,
    env: &EnvironmentConfig,
) -> Result<Arc<dyn GitSource>, SetupError> {
    let kustomize = config
        .file
        .kustomize_bin
        .as_ref()
        .map(|p| config.resolve(p));
    let helm_bin = config.file.helm_bin.as_ref().map(|p| program(config, p));
    let renderer = renderer(config, env);
    if let Some(d) = &env.dir {
        let (include, exclude) = d.globs();
        let mut src = DirSource::new(config.resolve(d.path()))
            .with_limits(config.file.limits.limits())
            .with_globs(&include, &exclude)
            .map_err(|source| SetupError::Source {
                environment: env.name.clone(),
                source,
            })?;
        if let Some(k) = kustomize {
            src = src.with_kustomize_bin(k);
        }
        if let Some(h) = helm_bin {
            src = src.with_helm_bin(h);
        }
        if let Some(r) = renderer {
            src = src.with_renderer(r);
        }
        return Ok(Arc::new(src));
    }
    let Some(g) = &env.git else {
        return Err(SetupError::NoDesiredSide {
            environment: env.name.clone(),
        });
    };
    let gc = git_config(config, env, g);
    let src = GitRepoSource::open(gc)
        .await
        .map_err(|source| SetupError::Source {
            environment: env.name.clone(),
            source,
        })?;
    Ok(Arc::new(src))
}

/// The Git source configuration of an environment whose desired side is `g` (also what the
/// adopt writer clones and pushes to).
pub fn git_config(
    config: &Config,
    env: &EnvironmentConfig,
    g: &crate::config::GitConfig,
) -> GitSourceConfig {
    let kustomize = config
        .file
        .kustomize_bin
        .as_ref()
        .map(|p| config.resolve(p));
    let helm_bin = config.file.helm_bin.as_ref().map(|p| program(config, p));
    let renderer = renderer(config, env);
    let url = repository_url(config, g);
    let mut gc = GitSourceConfig::new(url, git_cache(config))
        .reference(g.reference.clone().unwrap_or_default())
        .path(g.path.clone().unwrap_or_default());
    gc.include = g.include.clone();
    gc.exclude = g.exclude.clone();
    gc.kustomize_bin = kustomize;
    gc.helm_bin = helm_bin;
    gc.render = renderer;
    gc.limits = config.file.limits.limits();
    if g.token_env.is_some() || g.ssh_key.is_some() {
        gc.auth = Some(GitAuth {
            token_env: g.token_env.clone(),
            ssh_key_path: g.ssh_key.as_ref().map(|p| config.resolve(p)),
            ..GitAuth::default()
        });
    }
    gc
}

/// A configured program: a path (holding `/`) is resolved against the configuration's folder,
/// a bare name is kept (looked up on PATH when it runs).
fn program(config: &Config, p: &Path) -> PathBuf {
    if p.to_string_lossy().contains('/') {
        config.resolve(p)
    } else {
        p.to_path_buf()
    }
}

/// How an environment's desired side is rendered, if it is: its `helm` section (a chart,
/// with Argo CD's meaning of each key) or its `render` section (a command).
pub fn renderer(config: &Config, env: &EnvironmentConfig) -> Option<Renderer> {
    if let Some(h) = &env.helm {
        let mut options = HelmOptions::new(
            h.release_name.clone().unwrap_or_else(|| env.name.clone()),
            h.namespace
                .clone()
                .or_else(|| env.default_namespace.clone())
                .unwrap_or_else(|| "default".into()),
        );
        options.value_files = h.value_files.clone();
        options.values = h.values.as_ref().map(InlineValues::to_yaml);
        options.parameters = h
            .parameters
            .iter()
            .map(|p| HelmParameter {
                name: p.name.clone(),
                value: p.value.clone(),
                force_string: p.force_string,
            })
            .collect();
        options.kube_version = h.kube_version.clone();
        options.api_versions = h.api_versions.clone();
        options.include_crds = h.include_crds.unwrap_or(true);
        options.skip_tests = h.skip_tests;
        options.ignore_missing_value_files = h.ignore_missing_value_files;
        let mut r = HelmRenderer::new(options);
        r.binary = h
            .binary
            .as_ref()
            .or(config.file.helm_bin.as_ref())
            .map(|p| program(config, p));
        if let Some(t) = h.timeout {
            r.timeout = t.0;
        }
        return Some(Renderer::Helm(r));
    }
    let c = env.render.as_ref()?;
    let mut r = CommandRenderer::new(c.command.iter().cloned());
    r.shell = c.shell;
    if let Some(t) = c.timeout {
        r.timeout = t.0;
    }
    if let Some(m) = c.max_output {
        r.max_output = m;
    }
    Some(Renderer::Command(r))
}

/// The URL of an environment's repository as DriftGuard uses it: as written when it is a URL,
/// else the local path made absolute (`git fetch` runs inside the mirror, where a relative path
/// means nothing). Push webhooks are matched against it.
pub fn repository_url(config: &Config, g: &crate::config::GitConfig) -> String {
    if looks_like_url(&g.url) {
        g.url.clone()
    } else {
        let path = config.resolve(Path::new(&g.url));
        std::path::absolute(&path)
            .unwrap_or(path)
            .display()
            .to_string()
    }
}

fn looks_like_url(s: &str) -> bool {
    s.contains("://") || (s.contains('@') && s.contains(':'))
}

/// The live side of an environment.
pub async fn live_source(
    config: &Config,
    env: &EnvironmentConfig,
) -> Result<Arc<dyn LiveSource>, SetupError> {
    let live = env.live.clone().unwrap_or_default();
    if let Some(d) = &live.dump {
        let paths: Vec<PathBuf> = d.paths().iter().map(|p| config.resolve(p)).collect();
        return Ok(Arc::new(
            DumpSource::new(paths).with_limits(config.file.limits.limits()),
        ));
    }
    Ok(Arc::new(kube_source(config, env).await?))
}

/// The cluster of an environment (its live side, unless that is a dump), for reading and for
/// remediation.
pub async fn kube_source(
    config: &Config,
    env: &EnvironmentConfig,
) -> Result<KubeLiveSource, SetupError> {
    let live = env.live.clone().unwrap_or_default();
    let spec = KubeConfigSpec {
        kubeconfig: live.kubeconfig.as_ref().map(|p| config.resolve(p)),
        context: live.context.clone(),
        in_cluster: live.in_cluster,
    };
    KubeLiveSource::connect(&spec)
        .await
        .map_err(|source| SetupError::Source {
            environment: env.name.clone(),
            source,
        })
}

/// The audit settings of an environment (its `audit` section), with the webhook's tokens read
/// from the variable `tokenEnv` names (`var` looks variables up). `None` without a section.
pub fn audit_settings(
    config: &Config,
    env: &EnvironmentConfig,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<AuditSettings>, SetupError> {
    let Some(a) = &env.audit else {
        return Ok(None);
    };
    let mut tokens = Vec::new();
    if let Some(w) = &a.webhook {
        let missing = || SetupError::MissingEnv {
            field: format!("environment {}: audit.webhook.tokenEnv", env.name),
            var: w.token_env.clone(),
        };
        let v = var(&w.token_env).ok_or_else(missing)?;
        tokens = crate::config::split_tokens(
            &v,
            &format!("environment {}: audit.webhook.tokenEnv", env.name),
            &w.token_env,
        )?;
        if tokens.is_empty() {
            return Err(missing());
        }
    }
    Ok(Some(AuditSettings {
        tokens,
        webhook: a.webhook.is_some(),
        max_body: a
            .webhook
            .as_ref()
            .and_then(|w| w.max_body)
            .unwrap_or(DEFAULT_MAX_BODY),
        log: audit_log(config, env),
        log_every: a.log_poll_interval.map_or(DEFAULT_LOG_POLL, |d| d.0),
    }))
}

/// The reader of an environment's audit log file (`audit.logFile`), if it names one.
pub fn audit_log(config: &Config, env: &EnvironmentConfig) -> Option<AuditLogReader> {
    let path = env.audit.as_ref()?.log_file.as_ref()?;
    Some(AuditLogReader::new(config.resolve(path)))
}
