//! Wiring a configuration to the ports: the desired and live sources of an environment, the
//! store, the Secret hashing key and the clock.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use driftguard_core::memory::MemoryStore;
use driftguard_core::normalize::SecretKey;
use driftguard_core::ports::{
    Clock, DriftStore, GitSource, LiveSource, PruneStats, ScanBatch, ScanSummary, StoreError,
};
use driftguard_core::query::{DriftQuery, EventQuery, Page};
use driftguard_core::state::{Drift, DriftEvent, DriftRecord};
use driftguard_sources::files::{DirSource, DumpSource};
use driftguard_sources::git::{GitAuth, GitRepoSource, GitSourceConfig};
use driftguard_sources::kube::{KubeConfigSpec, KubeLiveSource};
use driftguard_store::{MongoOptions, MongoStore, SqliteStore};

use crate::config::{Config, EnvironmentConfig, StoreConfig};

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A setup failure, one line.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SetupError(pub String);

/// Formats an error and its causes on one line (`a: b: c`), without repeating a cause whose
/// text is already part of the previous one ([`driftguard_core::error::chain`]).
pub fn one_line(e: &(dyn std::error::Error + 'static)) -> String {
    driftguard_core::error::chain(e)
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

    /// Opens (creating if needed) the store for writing.
    pub async fn open_write(&self) -> Result<Arc<dyn DriftStore>, SetupError> {
        match self {
            StoreChoice::Memory => Ok(Arc::new(MemoryStore::new())),
            StoreChoice::Sqlite(p) => SqliteStore::open(p)
                .map(|s| Arc::new(s) as Arc<dyn DriftStore>)
                .map_err(|e| {
                    SetupError(format!(
                        "cannot open the store {}: {}",
                        p.display(),
                        one_line(&e)
                    ))
                }),
            StoreChoice::Mongo {
                uri_env,
                database,
                retention,
            } => {
                let uri = std::env::var(uri_env).map_err(|_| {
                    SetupError(format!(
                        "store: environment variable {uri_env} (the MongoDB URI) is not set"
                    ))
                })?;
                let mut options = MongoOptions::new(uri, database.clone());
                options.retention = *retention;
                MongoStore::connect_with(options)
                    .await
                    .map(|s| Arc::new(s) as Arc<dyn DriftStore>)
                    .map_err(|e| {
                        SetupError(format!("cannot open the MongoDB store: {}", one_line(&e)))
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
            let v = std::env::var(var).map_err(|_| {
                SetupError(format!(
                    "secretKey.env: environment variable {var} is not set"
                ))
            })?;
            if v.trim().is_empty() {
                return Err(SetupError(format!(
                    "secretKey.env: environment variable {var} is empty"
                )));
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
        StoreChoice::Mongo { .. } => Err(SetupError(
            "secretKey: a MongoDB store needs a configured key (secretKey.env or secretKey.file) so that every process hashes Secrets alike".into(),
        )),
    }
}

/// The per-store key file of an SQLite store: `driftguard.db` → `driftguard.key`.
pub fn key_path_for(db: &Path) -> PathBuf {
    db.with_extension("key")
}

fn read_key_file(p: &Path) -> Result<Vec<u8>, SetupError> {
    let text = std::fs::read_to_string(p).map_err(|e| {
        SetupError(format!(
            "cannot read the Secret key file {}: {}",
            p.display(),
            e.kind()
        ))
    })?;
    let t = text.trim();
    if t.is_empty() {
        return Err(SetupError(format!(
            "the Secret key file {} is empty",
            p.display()
        )));
    }
    Ok(t.as_bytes().to_vec())
}

fn random_key() -> Result<String, SetupError> {
    let mut buf = [0u8; 32];
    getrandom::fill(&mut buf).map_err(|e| SetupError(format!("cannot make a random key: {e}")))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes a fresh per-store key file (mode 0600 on Unix).
pub fn write_key_file(path: &Path, key: &str) -> Result<(), SetupError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| SetupError(format!("cannot create {}: {e}", dir.display())))?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    use std::io::Write;
    let mut f = opts
        .open(path)
        .map_err(|e| SetupError(format!("cannot create {}: {e}", path.display())))?;
    writeln!(f, "{key}").map_err(|e| SetupError(format!("cannot write {}: {e}", path.display())))
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
    if let Some(d) = &env.dir {
        let (include, exclude) = d.globs();
        let mut src = DirSource::new(config.resolve(d.path()))
            .with_globs(&include, &exclude)
            .map_err(|e| SetupError(format!("{}: {}", env.name, one_line(&e))))?;
        if let Some(k) = kustomize {
            src = src.with_kustomize_bin(k);
        }
        return Ok(Arc::new(src));
    }
    let Some(g) = &env.git else {
        return Err(SetupError(format!(
            "environment {}: no desired side (git or dir)",
            env.name
        )));
    };
    let url = if looks_like_url(&g.url) {
        g.url.clone()
    } else {
        // absolute: `git fetch` runs inside the mirror, where a relative path means nothing
        let path = config.resolve(Path::new(&g.url));
        std::path::absolute(&path)
            .unwrap_or(path)
            .display()
            .to_string()
    };
    let cache = config.file.git_cache.as_ref().map_or_else(
        || config.base.join(".driftguard").join("git"),
        |p| config.resolve(p),
    );
    let mut gc = GitSourceConfig::new(url, cache)
        .reference(g.reference.clone().unwrap_or_default())
        .path(g.path.clone().unwrap_or_default());
    gc.include = g.include.clone();
    gc.exclude = g.exclude.clone();
    gc.kustomize_bin = kustomize;
    if g.token_env.is_some() || g.ssh_key.is_some() {
        gc.auth = Some(GitAuth {
            token_env: g.token_env.clone(),
            ssh_key_path: g.ssh_key.as_ref().map(|p| config.resolve(p)),
            ..GitAuth::default()
        });
    }
    let src = GitRepoSource::open(gc)
        .await
        .map_err(|e| SetupError(format!("environment {}: {}", env.name, one_line(&e))))?;
    Ok(Arc::new(src))
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
        return Ok(Arc::new(DumpSource::new(paths)));
    }
    let spec = KubeConfigSpec {
        kubeconfig: live.kubeconfig.as_ref().map(|p| config.resolve(p)),
        context: live.context.clone(),
        in_cluster: live.in_cluster,
    };
    let src = KubeLiveSource::connect(&spec)
        .await
        .map_err(|e| SetupError(format!("environment {}: {}", env.name, one_line(&e))))?;
    Ok(Arc::new(src))
}

/// A store that reads from another and keeps the batches written, so that a one-shot scan
/// writes nothing unless it succeeds ([`DeferredStore::take`], then commit them).
pub struct DeferredStore {
    inner: Arc<dyn DriftStore>,
    pending: Mutex<Vec<ScanBatch>>,
}

impl DeferredStore {
    /// Reads from `inner`.
    pub fn new(inner: Arc<dyn DriftStore>) -> Self {
        DeferredStore {
            inner,
            pending: Mutex::new(Vec::new()),
        }
    }

    /// The batches written so far.
    pub fn take(&self) -> Vec<ScanBatch> {
        std::mem::take(&mut *self.pending.lock().expect("pending lock is never poisoned"))
    }
}

#[async_trait]
impl DriftStore for DeferredStore {
    async fn records(&self, environment: &str) -> Result<Vec<DriftRecord>, StoreError> {
        self.inner.records(environment).await
    }

    async fn commit(&self, batch: &ScanBatch) -> Result<(), StoreError> {
        self.pending
            .lock()
            .expect("pending lock is never poisoned")
            .push(batch.clone());
        Ok(())
    }

    async fn drifts(&self, query: &DriftQuery) -> Result<Page<Drift>, StoreError> {
        self.inner.drifts(query).await
    }

    async fn events(&self, query: &EventQuery) -> Result<Page<DriftEvent>, StoreError> {
        self.inner.events(query).await
    }

    async fn scans(
        &self,
        environment: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ScanSummary>, StoreError> {
        self.inner.scans(environment, limit).await
    }

    async fn prune(&self, before: DateTime<Utc>) -> Result<PruneStats, StoreError> {
        self.inner.prune(before).await
    }
}
