//! The Terraform source: a root module (from Git or a folder) checked with read-only plans,
//! as the [`PlanSource`] of an environment ([`driftguard_core::terraform`] says what the plans
//! mean).
//!
//! One check runs, in a working folder of DriftGuard's own:
//!
//! 1. `terraform init -input=false`, with the configured `-backend-config` values, only when
//!    what it depends on beyond the code changed (the binary, the CLI configuration, the
//!    backend values: a mark in the data folder) or when terraform's plan says it is needed
//!    (a module or provider added or changed, the backend changed: then `init` and the plan
//!    again). A written-out revision without a lock file gets the one the last `init` wrote,
//!    so a new commit needs no `init`. Providers come from the user's configured mirror or
//!    cache (`TF_CLI_CONFIG_FILE`), linked through a plugin cache shared by the environments
//!    (`TF_PLUGIN_CACHE_DIR`, [`TerraformConfig::plugin_cache`]); nothing is downloaded on
//!    DriftGuard's behalf that `terraform init` would not download;
//! 2. at once: `terraform plan -lock=false -input=false`, written with `-out` to a plan file in
//!    a private temporary folder, `terraform state pull` (only its lineage and serial are
//!    kept), and, when configured, the listing of the cloud account ([`CloudLister`]). One
//!    normal plan gives both what refresh found (`resource_drift`, the state against the
//!    cloud, as `plan -refresh-only` shows it) and what an apply would change
//!    (`resource_changes`): each terraform run starts the provider (seconds for AWS's), so
//!    there is one plan, not two;
//! 3. `terraform show -json` of the plan file. The temporary folder (the plan file holds
//!    sensitive values) is removed when the check ends.
//!
//! Nothing is ever applied: no `apply`, no `import`, no `refresh` (which writes the state),
//! and the state is read without its lock. `TF_DATA_DIR` points into DriftGuard's working
//! folder, so that a folder source's `.terraform/` is never touched; a folder's existing
//! `.terraform.lock.hcl` is read-only (`-lockfile=readonly`). A Git revision is written out
//! whole into the working folder (modules may be `../`), once per revision.
//!
//! The workspace is chosen with `TF_WORKSPACE` (nothing is selected or written). Checkpoint
//! calls are off (`CHECKPOINT_DISABLE`).

mod codify;
mod run;
mod schema;

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "aws")]
mod aws_sign;
#[cfg(feature = "aws")]
pub mod cloudtrail;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use driftguard_core::audit::{CloudWriteQuery, CloudWrites};
use driftguard_core::model::{CommitInfo, Revision};
use driftguard_core::ports::{PlanSource, SourceError};
use driftguard_core::terraform::{CloudInventory, PlanRun};

use crate::git::GitRepoSource;

pub use codify::Codified;
pub use run::find_terraform;

/// Lists a cloud account's resources, for those in no state.
#[async_trait]
pub trait CloudLister: Send + Sync + fmt::Debug {
    /// What is listed (`aws us-east-1 at http://127.0.0.1:5000`).
    fn describe(&self) -> String;

    /// The account's resources; a kind that cannot be listed is in `errors`.
    async fn list(&self) -> CloudInventory;
}

/// Reads a cloud's audit trail for who made the hand changes of a check (CloudTrail:
/// [`cloudtrail::CloudTrailReader`]).
#[async_trait]
pub trait CloudWriteReader: Send + Sync + fmt::Debug {
    /// What is read (`CloudTrail us-east-1`).
    fn describe(&self) -> String;

    /// The write events of the resources `wanted` (see [`PlanSource::cloud_writes`]).
    async fn writes(&self, wanted: &[CloudWriteQuery]) -> CloudWrites;
}

/// Where the code is.
#[derive(Clone)]
pub enum TerraformCode {
    /// A Git repository (opened with [`GitRepoSource::open`]), the root module in `path`.
    Git {
        /// The repository.
        source: Arc<GitRepoSource>,
        /// The root module's folder in the repository (empty: the root).
        path: String,
    },
    /// A folder holding the root module.
    Folder(PathBuf),
}

impl fmt::Debug for TerraformCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TerraformCode::Git { source, path } => {
                write!(f, "Git({source:?}, {path})")
            }
            TerraformCode::Folder(p) => write!(f, "Folder({})", p.display()),
        }
    }
}

/// How a root module is checked.
#[derive(Clone, Debug)]
pub struct TerraformConfig {
    /// Where the code is.
    pub code: TerraformCode,
    /// The workspace (`None`: the selected one, `default` for DriftGuard's own working
    /// folder).
    pub workspace: Option<String>,
    /// Variable files (`-var-file`), relative to the root module's folder or absolute.
    pub var_files: Vec<String>,
    /// The terraform binary: a path, or a name looked up on `PATH` (default `terraform`).
    pub binary: Option<PathBuf>,
    /// `-backend-config` values for `terraform init` (`key=value`, or a file).
    pub backend_config: Vec<String>,
    /// A Terraform CLI configuration file (`TF_CLI_CONFIG_FILE`: provider mirrors, caches).
    pub cli_config_file: Option<PathBuf>,
    /// A folder of providers shared by the environments' `terraform init`s
    /// (`TF_PLUGIN_CACHE_DIR`), used unless DriftGuard's environment or the CLI configuration
    /// names one (`None`: none).
    pub plugin_cache: Option<PathBuf>,
    /// DriftGuard's working folder for this environment (its `TF_DATA_DIR`, the revision
    /// written out, the temporary plan files).
    pub work_dir: PathBuf,
    /// Longest one terraform step may run.
    pub timeout: Duration,
    /// The cloud account's lister, for resources in no state.
    pub cloud: Option<Arc<dyn CloudLister>>,
    /// The cloud's audit trail, read for who made the hand changes (`None`: not read).
    pub cloud_writes: Option<Arc<dyn CloudWriteReader>>,
}

impl TerraformConfig {
    /// A configuration with defaults: the `default` workspace, `terraform` on `PATH`, 10
    /// minutes a step, no cloud listing.
    pub fn new(code: TerraformCode, work_dir: impl Into<PathBuf>) -> Self {
        TerraformConfig {
            code,
            workspace: None,
            var_files: Vec::new(),
            binary: None,
            backend_config: Vec::new(),
            cli_config_file: None,
            plugin_cache: None,
            work_dir: work_dir.into(),
            timeout: Duration::from_secs(600),
            cloud: None,
            cloud_writes: None,
        }
    }
}

/// A Terraform root module as both sides of an environment.
pub struct TerraformSource {
    config: TerraformConfig,
    /// The revision last planned (histories are read up to it).
    planned: Mutex<Option<Revision>>,
    /// Only one check at a time.
    running: tokio::sync::Mutex<()>,
    /// Checks run so far (for tests and benchmarks).
    checks: std::sync::atomic::AtomicU64,
}

impl fmt::Debug for TerraformSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TerraformSource({})", self.describe())
    }
}

impl TerraformSource {
    /// A source for `config`. Relative folders and files are taken from the current folder
    /// once, here: terraform runs in the root module's folder, where they would mean another
    /// place (its data folder, the plan files, the CLI configuration).
    pub fn new(mut config: TerraformConfig) -> Self {
        let absolute = |p: &mut PathBuf| {
            if p.is_relative() {
                if let Ok(a) = std::path::absolute(&*p) {
                    *p = a;
                }
            }
        };
        absolute(&mut config.work_dir);
        if let TerraformCode::Folder(dir) = &mut config.code {
            absolute(dir);
        }
        if let Some(c) = config.cli_config_file.as_mut() {
            absolute(c);
        }
        if let Some(c) = config.plugin_cache.as_mut() {
            absolute(c);
        }
        // a binary given as a relative path (not a name looked up on PATH)
        if let Some(b) = config.binary.as_mut() {
            if b.components().count() > 1 {
                absolute(b);
            }
        }
        TerraformSource {
            config,
            planned: Mutex::new(None),
            running: tokio::sync::Mutex::new(()),
            checks: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// How many checks ran.
    pub fn checks(&self) -> u64 {
        self.checks.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn workspace(&self) -> &str {
        self.config.workspace.as_deref().unwrap_or("default")
    }
}

#[async_trait]
impl PlanSource for TerraformSource {
    fn describe(&self) -> String {
        let code = match &self.config.code {
            TerraformCode::Git { source, .. } => {
                use driftguard_core::ports::GitSource;
                source.describe()
            }
            TerraformCode::Folder(p) => format!("dir {}", p.display()),
        };
        format!("terraform {code} (workspace {})", self.workspace())
    }

    fn describe_live(&self) -> String {
        match &self.config.cloud {
            Some(c) => format!("the cloud, as terraform refreshes it, and {}", c.describe()),
            None => "the cloud, as terraform refreshes it".into(),
        }
    }

    async fn plan(&self) -> Result<PlanRun, SourceError> {
        let _one = self.running.lock().await;
        self.checks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let prepared = self.prepare().await?;
        let cloud = self.config.cloud.clone();
        let listing = async move {
            match cloud {
                Some(c) => Some(c.list().await),
                None => None,
            }
        };
        let config = self.config.clone();
        let p = prepared;
        let workspace = self.workspace().to_owned();
        let planning = tokio::task::spawn_blocking(move || run::check(&config, &p, &workspace));
        let (planned, cloud) = tokio::join!(planning, listing);
        let mut run = planned.map_err(|e| SourceError::Backend {
            context: "terraform task failed".into(),
            source: Box::new(e),
        })??;
        *self.planned.lock().expect("lock is never poisoned") = run.revision.clone();
        run.cloud = cloud;
        Ok(run)
    }

    async fn cloud_writes(&self, wanted: &[CloudWriteQuery]) -> CloudWrites {
        match &self.config.cloud_writes {
            Some(r) => r.writes(wanted).await,
            None => CloudWrites::default(),
        }
    }

    async fn fetch(&self) -> Result<Option<Revision>, SourceError> {
        match &self.config.code {
            TerraformCode::Git { source, .. } => {
                use driftguard_core::ports::GitSource;
                source.fetch().await
            }
            TerraformCode::Folder(_) => Ok(None),
        }
    }

    async fn last_commits(&self, files: &[String]) -> HashMap<String, CommitInfo> {
        let TerraformCode::Git { source, .. } = &self.config.code else {
            return HashMap::new();
        };
        let planned = self.planned.lock().expect("lock is never poisoned").clone();
        let Some(tip) = planned.and_then(|r| gix::ObjectId::from_hex(r.id.as_bytes()).ok()) else {
            return HashMap::new();
        };
        let reader = source.reader();
        let files = files.to_vec();
        tokio::task::spawn_blocking(move || {
            files
                .into_iter()
                .filter_map(|f| match reader.last_change(tip, &f) {
                    Ok(Some(c)) => Some((f, c)),
                    _ => None,
                })
                .collect()
        })
        .await
        .unwrap_or_default()
    }

    async fn last_commits_of(&self, sets: &[Vec<String>]) -> Vec<Option<CommitInfo>> {
        let TerraformCode::Git { source, .. } = &self.config.code else {
            return vec![None; sets.len()];
        };
        let planned = self.planned.lock().expect("lock is never poisoned").clone();
        let Some(tip) = planned.and_then(|r| gix::ObjectId::from_hex(r.id.as_bytes()).ok()) else {
            return vec![None; sets.len()];
        };
        let reader = source.reader();
        let owned = sets.to_vec();
        tokio::task::spawn_blocking(move || {
            owned
                .iter()
                .map(|set| reader.last_change_any(tip, set).ok().flatten())
                .collect()
        })
        .await
        .unwrap_or_else(|_| vec![None; sets.len()])
    }
}

/// The code of one check, on disk.
#[derive(Clone, Debug)]
pub(crate) struct Prepared {
    /// The revision.
    pub revision: Revision,
    /// The source root on disk (the written-out tree, or the folder).
    pub root: PathBuf,
    /// The root module's folder, relative to `root` (`""`: the root).
    pub module: String,
    /// Whether the root is the user's own folder (its lock file is read-only).
    pub in_place: bool,
}

impl Prepared {
    /// The root module's folder on disk.
    pub fn module_dir(&self) -> PathBuf {
        if self.module.is_empty() {
            self.root.clone()
        } else {
            self.root.join(&self.module)
        }
    }
}

impl TerraformSource {
    /// The code of the current revision on disk: a Git revision written out (once), or the
    /// folder with its content hash as revision.
    async fn prepare(&self) -> Result<Prepared, SourceError> {
        match &self.config.code {
            TerraformCode::Git { source, path } => {
                let head = source.head().await?;
                let reader = source.reader();
                let work = self.config.work_dir.clone();
                let path = path.trim_matches('/').to_owned();
                let revision = {
                    let reader = Arc::clone(&reader);
                    tokio::task::spawn_blocking(move || reader.revision(head))
                        .await
                        .map_err(|e| SourceError::Backend {
                            context: "git task failed".into(),
                            source: Box::new(e),
                        })??
                };
                let rev = revision.id.clone();
                let root =
                    tokio::task::spawn_blocking(move || write_out(&reader, head, &rev, &work))
                        .await
                        .map_err(|e| SourceError::Backend {
                            context: "git task failed".into(),
                            source: Box::new(e),
                        })??;
                Ok(Prepared {
                    revision,
                    root,
                    module: path,
                    in_place: false,
                })
            }
            TerraformCode::Folder(dir) => {
                let dir = dir.clone();
                let hash =
                    tokio::task::spawn_blocking(move || run::folder_hash(&dir).map(|h| (h, dir)))
                        .await
                        .map_err(|e| SourceError::Backend {
                            context: "folder task failed".into(),
                            source: Box::new(e),
                        })??;
                Ok(Prepared {
                    revision: Revision::plain(format!("dir:{:016x}", hash.0)),
                    root: hash.1,
                    module: String::new(),
                    in_place: true,
                })
            }
        }
    }
}

/// Writes the tree of `commit` into `<work>/tree` unless it holds that revision already
/// (`<work>/tree.rev`); returns the folder.
fn write_out(
    reader: &crate::git::Reader,
    commit: gix::ObjectId,
    revision: &str,
    work: &Path,
) -> Result<PathBuf, SourceError> {
    let tree = work.join("tree");
    let mark = work.join("tree.rev");
    if tree.is_dir() && std::fs::read_to_string(&mark).is_ok_and(|r| r.trim() == revision) {
        return Ok(tree);
    }
    let io = |what: String| {
        move |e: std::io::Error| SourceError::Backend {
            context: what,
            source: Box::new(e),
        }
    };
    std::fs::create_dir_all(work).map_err(io(format!("cannot create {}", work.display())))?;
    let fresh = work.join("tree.new");
    if fresh.exists() {
        std::fs::remove_dir_all(&fresh)
            .map_err(io(format!("cannot remove {}", fresh.display())))?;
    }
    reader.export(commit, &fresh)?;
    if tree.exists() {
        std::fs::remove_dir_all(&tree).map_err(io(format!("cannot remove {}", tree.display())))?;
    }
    std::fs::rename(&fresh, &tree).map_err(io(format!("cannot move {}", fresh.display())))?;
    std::fs::write(&mark, revision).map_err(io(format!("cannot write {}", mark.display())))?;
    Ok(tree)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_are_taken_from_the_current_folder_once() {
        let mut c = TerraformConfig::new(
            TerraformCode::Folder("infra".into()),
            ".driftguard/terraform/prod",
        );
        c.cli_config_file = Some("tf.rc".into());
        c.binary = Some("terraform".into());
        let src = TerraformSource::new(c);
        let cwd = std::env::current_dir().expect("cwd");
        assert_eq!(src.config.work_dir, cwd.join(".driftguard/terraform/prod"));
        let TerraformCode::Folder(dir) = &src.config.code else {
            panic!("a folder");
        };
        assert_eq!(dir, &cwd.join("infra"));
        assert_eq!(src.config.cli_config_file, Some(cwd.join("tf.rc")));
        // a name is looked up on PATH
        assert_eq!(src.config.binary, Some(PathBuf::from("terraform")));
        let mut c = TerraformConfig::new(TerraformCode::Folder("/srv/infra".into()), "/w");
        c.binary = Some("bin/terraform".into());
        let src = TerraformSource::new(c);
        assert_eq!(src.config.binary, Some(cwd.join("bin/terraform")));
        assert_eq!(src.config.work_dir, PathBuf::from("/w"));
    }
}
