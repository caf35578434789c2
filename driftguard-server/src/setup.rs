//! Wiring the configuration's plan ([`crate::config::ResolvedConfig`]) to the ports: the
//! desired and live sources of an environment (from its [`EnvironmentPlan`] alone), the store
//! (from the [`StorePlan`]) and the Secret hashing key (from the [`SecretKeyPlan`]). Paths are
//! already resolved and defaults applied: setup opens and connects. Used by `driftguard serve`
//! ([`crate::service`]) and by the CLI's one-shot scans alike.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use driftguard_core::engine::Engine;
use driftguard_core::memory::MemoryStore;
use driftguard_core::normalize::SecretKey;
use driftguard_core::ports::{
    Clock, DriftStore, GitSource, LiveSource, PlanSource, SourceError, StoreError,
};
use driftguard_core::scanner::Scanner;
use driftguard_sources::files::{DirSource, DumpSource};
use driftguard_sources::git::{GitRepoSource, GitSourceConfig};
use driftguard_sources::kube::{KubeConfigSpec, KubeLiveSource, SharedWatches};
use driftguard_sources::terraform::aws::{AwsConfig, AwsLister};
use driftguard_sources::terraform::cloudtrail::{CloudTrailConfig, CloudTrailReader};
use driftguard_sources::terraform::{TerraformCode, TerraformSource};
pub use driftguard_store::DeferredStore;
use driftguard_store::{MongoOptions, MongoStore, SqliteStore};

use crate::audit::{AuditSettings, DEFAULT_LOG_POLL, DEFAULT_MAX_BODY};
use crate::config::{
    DesiredPlan, EnvironmentPlan, LivePlan, SecretKeyPlan, StoreBackend, StorePlan,
};
pub use crate::context::SystemClock;
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
    /// The choice the configuration's store plan makes, with `--store` / `--no-store`
    /// overrides.
    pub fn from_plan(plan: &StorePlan, store_flag: Option<&Path>, no_store: bool) -> Self {
        if no_store {
            return StoreChoice::Memory;
        }
        if let Some(p) = store_flag {
            return StoreChoice::Sqlite(p.to_path_buf());
        }
        match &plan.backend {
            StoreBackend::Mongo { uri_env, database } => StoreChoice::Mongo {
                uri_env: uri_env.clone(),
                database: database.clone(),
                retention: plan.retention,
            },
            StoreBackend::Sqlite(p) => StoreChoice::Sqlite(p.clone()),
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

/// The Secret hashing key: `secretKey.env` / `secretKey.file` from the configuration
/// (`configured`), else the `DRIFTGUARD_SECRET_KEY` environment variable, else a per-store key
/// kept next to the SQLite file (`<db>.key`, created on the first stored scan), else (no
/// store) a random key.
pub fn secret_key(
    configured: Option<&SecretKeyPlan>,
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
    match configured {
        Some(SecretKeyPlan::Env(var)) => {
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
        Some(SecretKeyPlan::File(f)) => return read_key_file(f).map(plain),
        None => {}
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
    env: &EnvironmentPlan,
    clusters: &Clusters,
    engine: Engine,
    store: Arc<dyn DriftStore>,
    clock: Arc<dyn Clock>,
) -> Result<Scanner, SetupError> {
    if env.terraform.is_some() {
        let plans = plan_source(env).await?;
        return Ok(Scanner::with_plans(engine, plans, store, clock));
    }
    let git = git_source(env).await?;
    let live = live_source(env, clusters).await?;
    Ok(Scanner::new(engine, git, live, store, clock))
}

/// The plan source of a Terraform environment (its `terraform` section, with `git` or `dir`
/// holding the root module).
pub async fn plan_source(env: &EnvironmentPlan) -> Result<Arc<dyn PlanSource>, SetupError> {
    Ok(terraform_source(env).await?)
}

/// The Terraform source of a Terraform environment, as [`plan_source`] makes it (for
/// `driftguard codify`, which also generates configuration with it).
pub async fn terraform_source(env: &EnvironmentPlan) -> Result<Arc<TerraformSource>, SetupError> {
    let t = env.terraform.clone().unwrap_or_default();
    let code = match &env.desired {
        Some(DesiredPlan::Folder(f)) => TerraformCode::Folder(f.path.clone()),
        Some(DesiredPlan::Git(g)) => {
            // the module's files as they are: nothing is rendered
            let mut gc = g.source.clone();
            gc.include.clear();
            gc.exclude.clear();
            gc.kustomize_bin = None;
            gc.helm_bin = None;
            gc.render = None;
            let path = gc.path.clone();
            TerraformCode::Git {
                source: Arc::new(open_git(env, gc).await?),
                path,
            }
        }
        None => {
            return Err(SetupError::NoDesiredSide {
                environment: env.name.clone(),
            })
        }
    };
    // one plugin cache for the environments, beside their working folders (`terraformCache`)
    let plugin_cache = t.work_dir.parent().map(|d| d.join("plugin-cache"));
    let mut tc = driftguard_sources::terraform::TerraformConfig::new(code, t.work_dir);
    tc.plugin_cache = plugin_cache;
    tc.workspace = t.workspace;
    // relative variable files are the module's (terraform reads them from its folder)
    tc.var_files = t.var_files;
    tc.binary = t.binary;
    tc.backend_config = t.backend_config;
    tc.cli_config_file = t.cli_config_file;
    if let Some(d) = t.timeout {
        tc.timeout = d;
    }
    if let Some(a) = &t.orphans {
        let regions = if a.regions.is_empty() {
            vec![aws_region_of_the_environment()]
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
    if let Some(c) = &t.cloud_trail {
        let region = c
            .region
            .clone()
            .or_else(|| t.orphans.as_ref().and_then(|o| o.regions.first().cloned()))
            .unwrap_or_else(aws_region_of_the_environment);
        let mut cc = CloudTrailConfig::new(region);
        cc.endpoint = c.endpoint.clone();
        if let Some(n) = c.max_lookups_per_scan {
            cc.max_lookups = n;
        }
        tc.cloud_writes = Some(Arc::new(CloudTrailReader::new(cc)));
    }
    Ok(Arc::new(TerraformSource::new(tc)))
}

/// The region of DriftGuard's environment: `AWS_REGION`, else `AWS_DEFAULT_REGION`, else
/// `us-east-1`.
fn aws_region_of_the_environment() -> String {
    std::env::var("AWS_REGION")
        .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
        .ok()
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "us-east-1".into())
}

async fn open_git(env: &EnvironmentPlan, gc: GitSourceConfig) -> Result<GitRepoSource, SetupError> {
    GitRepoSource::open(gc)
        .await
        .map_err(|source| SetupError::Source {
            environment: env.name.clone(),
            source,
        })
}

/// The desired side of an environment.
pub async fn git_source(env: &EnvironmentPlan) -> Result<Arc<dyn GitSource>, SetupError> {
    match &env.desired {
        Some(DesiredPlan::Folder(f)) => {
            let mut src = DirSource::new(f.path.clone())
                .with_limits(env.limits)
                .with_globs(&f.include, &f.exclude)
                .map_err(|source| SetupError::Source {
                    environment: env.name.clone(),
                    source,
                })?;
            if let Some(k) = &f.kustomize_bin {
                src = src.with_kustomize_bin(k);
            }
            if let Some(h) = &f.helm_bin {
                src = src.with_helm_bin(h);
            }
            if let Some(r) = &f.renderer {
                src = src.with_renderer(r.clone());
            }
            Ok(Arc::new(src))
        }
        Some(DesiredPlan::Git(g)) => Ok(Arc::new(open_git(env, g.source.clone()).await?)),
        None => Err(SetupError::NoDesiredSide {
            environment: env.name.clone(),
        }),
    }
}

/// The live side of an environment: a dump, or its view of a cluster (`clusters` holds one
/// client and one set of shared watches per cluster).
pub async fn live_source(
    env: &EnvironmentPlan,
    clusters: &Clusters,
) -> Result<Arc<dyn LiveSource>, SetupError> {
    match &env.live {
        LivePlan::Dump(paths) => Ok(Arc::new(
            DumpSource::new(paths.clone()).with_limits(env.limits),
        )),
        LivePlan::Cluster(spec) => clusters
            .view(spec)
            .await
            .map(|s| Arc::new(s) as Arc<dyn LiveSource>)
            .map_err(|source| SetupError::Source {
                environment: env.name.clone(),
                source,
            }),
    }
}

/// The clusters of a process: one client (one connection pool) and one set of shared watches
/// per cluster, whatever the number of environments on it; each environment reads through its
/// own view ([`KubeLiveSource::view`]).
#[derive(Debug, Default)]
pub struct Clusters {
    shared_cache: bool,
    sources: tokio::sync::Mutex<HashMap<KubeConfigSpec, KubeLiveSource>>,
}

impl Clusters {
    /// For a running service: scans read the shared watches' caches (one list per kind at
    /// start-up feeds the first scans and the watches; later full scans cost the API server
    /// nothing).
    pub fn serving() -> Self {
        Clusters {
            shared_cache: true,
            ..Clusters::default()
        }
    }

    /// For one-shot scans: each scan lists what it reads and keeps nothing.
    pub fn one_shot() -> Self {
        Clusters::default()
    }

    /// A new view of the cluster `spec` names, connecting to it on first use.
    pub async fn view(&self, spec: &KubeConfigSpec) -> Result<KubeLiveSource, SourceError> {
        let mut sources = self.sources.lock().await;
        if let Some(s) = sources.get(spec) {
            return Ok(s.view());
        }
        let source = KubeLiveSource::connect(spec)
            .await?
            .with_shared_cache(self.shared_cache);
        sources.insert(spec.clone(), source.clone());
        Ok(source)
    }

    /// The shared watches of every cluster (for figures).
    pub async fn shared_watches(&self) -> Vec<(String, SharedWatches)> {
        self.sources
            .lock()
            .await
            .values()
            .map(|s| (s.describe(), s.shared_watches()))
            .collect()
    }
}

/// The cluster of an environment (its live side, unless that is a dump: then the default
/// kubeconfig's), for reading and for remediation.
pub async fn kube_source(env: &EnvironmentPlan) -> Result<KubeLiveSource, SetupError> {
    let spec = match &env.live {
        LivePlan::Cluster(spec) => spec.clone(),
        LivePlan::Dump(_) => Default::default(),
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
    env: &EnvironmentPlan,
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
        log: audit_log(env),
        log_every: a.log_poll_interval.unwrap_or(DEFAULT_LOG_POLL),
    }))
}

/// The reader of an environment's audit log file (`audit.logFile`), if it names one.
pub fn audit_log(env: &EnvironmentPlan) -> Option<AuditLogReader> {
    let path = env.audit.as_ref()?.log_file.as_ref()?;
    Some(AuditLogReader::new(path.clone()))
}
