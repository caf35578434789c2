//! The configuration resolved: what the programs run on (ripgrep's "high-level arguments" to
//! the file's "low-level" model).
//!
//! [`Config::plan`](super::Config::plan) makes a [`ResolvedConfig`] in one pass
//! ([`super::resolve`]): every path made absolute against the file's folder (`~/` against
//! `HOME`), defaults applied, each environment's engine settings ([`EnvironmentSpec`]: rules,
//! kinds and orphan kinds parsed), renderers and the sources' configurations built. Nothing
//! else resolves a path of the file. Validation ([`super::validate`]) checks the plan's paths,
//! so that what is checked is what is used; setup ([`crate::setup`]) takes one part each: an
//! [`EnvironmentPlan`] per environment's sources, the [`StorePlan`], the [`SecretKeyPlan`];
//! the service takes the [`ServerPlan`].

use std::path::PathBuf;
use std::time::Duration;

use driftguard_core::engine::EnvironmentSpec;
use driftguard_core::limits::Limits;
use driftguard_core::remediate::{Policy, PolicyMode};
use driftguard_sources::git::GitSourceConfig;
use driftguard_sources::kube::KubeConfigSpec;
use driftguard_sources::render::Renderer;

use super::discover::DiscoveryContext;
use super::{
    AuditWebhookConfig, AwsOrphansConfig, CloudTrailConfig, ConfigProblem, DiscoverDefaults,
    PullRequestConfig, ServerConfig,
};

/// The whole configuration, resolved.
#[derive(Clone, Debug)]
pub struct ResolvedConfig {
    /// The configuration file, as given (`(flags)` for a configuration made from flags).
    pub path: PathBuf,
    /// What loading found that still works but should change (see [`super::Config::warnings`]).
    pub warnings: Vec<ConfigProblem>,
    /// The `server:` section with the top-level `notifications`, paths resolved.
    pub server: ServerPlan,
    /// The environments, in file order (a caller that discovers environments adds them
    /// after these: [`DiscoveryPlan::environment`]).
    pub environments: Vec<EnvironmentPlan>,
    /// The `discover:` section, when the file has one.
    pub discover: Option<DiscoveryPlan>,
    /// Where history is kept.
    pub store: StorePlan,
    /// Where the Secret hashing key comes from, when the file says (`secretKey`).
    pub secret_key: Option<SecretKeyPlan>,
    /// The helm binary every environment uses unless its `helm.binary` says otherwise
    /// (`helmBin`: a path resolved, a bare name kept for PATH).
    pub helm_bin: Option<PathBuf>,
}

impl ResolvedConfig {
    /// The environment named `name`.
    pub fn environment(&self, name: &str) -> Option<&EnvironmentPlan> {
        self.environments.iter().find(|e| e.name == name)
    }

    /// The remediation policies that act (mode other than `off`), by environment.
    pub fn acting_policies(&self) -> Vec<(String, Policy)> {
        self.environments
            .iter()
            .filter_map(|e| e.remediation.clone().map(|p| (e.name.clone(), p)))
            .filter(|(_, p)| p.mode != PolicyMode::Off)
            .collect()
    }
}

/// The `discover:` section, resolved: where the tools' objects are read, the context they
/// are mapped in (paths resolved), and how a discovered environment is made a plan like the
/// file's ([`DiscoveryPlan::environment`]). The reading is `crate::discover`'s.
#[derive(Clone, Debug)]
pub struct DiscoveryPlan {
    /// The cluster the tools' objects are read from.
    pub cluster: KubeConfigSpec,
    /// Argo CD's own namespace and the namespaces whose Applications are read; `None` when
    /// Argo CD is not read (`argocd.enabled: false`).
    pub argocd: Option<ArgoCdReads>,
    /// The namespaces whose Flux objects are read (empty: all); `None` when Flux is not read
    /// (`flux.enabled: false`).
    pub flux: Option<Vec<String>>,
    /// Whether the Secrets of `substituteFrom` and `valuesFrom` are read.
    pub read_secrets: bool,
    /// The label selector of `filters.selector`, for the list requests (the context's filter
    /// checks it again).
    pub selector: Option<String>,
    /// What the mapping needs besides the objects: names, plugins, clusters, credentials and
    /// filters (the objects read are added to a copy).
    pub context: DiscoveryContext,
    /// Settings given to every discovered environment.
    pub defaults: DiscoverDefaults,
    /// What every environment of the file shares (binaries, caches, limits), for discovered
    /// ones.
    pub(super) shared: super::resolve::Shared,
}

/// Where Argo CD's objects are read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArgoCdReads {
    /// Argo CD's own namespace: `argocd-cm`, `argocd-cmd-params-cm`.
    pub namespace: String,
    /// The namespaces whose Applications are read.
    pub namespaces: Vec<String>,
}

/// The `server:` section, resolved.
#[derive(Clone, Debug, Default)]
pub struct ServerPlan {
    /// The section with the top-level `notifications` added to `notifiers`, and its paths
    /// (notifiers' `caFile`, `ha.homeKubeconfig`) resolved.
    pub settings: ServerConfig,
    /// The cluster holding leader election's Leases (`server.ha`), if it is on.
    pub home_cluster: Option<KubeConfigSpec>,
}

/// Where history is kept, as the file says (the CLI's `--store` and `--no-store` override it:
/// [`crate::setup::StoreChoice`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorePlan {
    /// The database.
    pub backend: StoreBackend,
    /// `store.retention`: how long events, scans and resolved episodes are kept.
    pub retention: Option<Duration>,
}

/// A store's database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreBackend {
    /// An SQLite file (`store.sqlite`, default `.driftguard/driftguard.db` next to the file).
    Sqlite(PathBuf),
    /// A MongoDB database.
    Mongo {
        /// The environment variable holding the URI (default `MONGODB_URI`).
        uri_env: String,
        /// The database (default `driftguard`).
        database: String,
    },
}

/// Where the Secret hashing key comes from (`secretKey`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretKeyPlan {
    /// An environment variable holding the key.
    Env(String),
    /// A file holding the key.
    File(PathBuf),
}

/// One environment, resolved: everything its sources, engine, audit reader and remediation
/// need, and nothing of the others.
#[derive(Clone, Debug)]
pub struct EnvironmentPlan {
    /// The environment's name.
    pub name: String,
    /// The engine's view of it.
    pub spec: EnvironmentSpec,
    /// Where Git's side comes from (`None`: the file names neither `git` nor `dir`, which
    /// validation refuses).
    pub desired: Option<DesiredPlan>,
    /// The live side (for a Terraform environment, unused: the cloud is read through plans).
    pub live: LivePlan,
    /// A Terraform root module instead of Kubernetes manifests.
    pub terraform: Option<TerraformPlan>,
    /// Attribution from the API server's audit log.
    pub audit: Option<AuditPlan>,
    /// The remediation policy under `driftguard serve`.
    pub remediation: Option<Policy>,
    /// What one input may cost (`limits`).
    pub limits: Limits,
}

impl EnvironmentPlan {
    /// The repository, when the desired side is one.
    pub fn git(&self) -> Option<&GitPlan> {
        match &self.desired {
            Some(DesiredPlan::Git(g)) => Some(g),
            _ => None,
        }
    }

    /// How the desired side is rendered, if it is (`helm`, `render` or `kustomize`).
    pub fn renderer(&self) -> Option<&Renderer> {
        match self.desired.as_ref()? {
            DesiredPlan::Folder(f) => f.renderer.as_ref(),
            DesiredPlan::Git(g) => g.source.render.as_ref(),
        }
    }

    /// The repository URLs push webhooks are matched against (empty for a folder).
    pub fn repositories(&self) -> Vec<String> {
        self.git()
            .map(|g| vec![g.source.url.clone()])
            .unwrap_or_default()
    }

    /// Whether the live side is dump files (nothing to remediate).
    pub fn live_is_dump(&self) -> bool {
        matches!(self.live, LivePlan::Dump(_))
    }
}

/// Where Git's side of an environment comes from (each boxed: a renderer's options are
/// large).
#[derive(Clone, Debug)]
pub enum DesiredPlan {
    /// A plain folder (`dir`).
    Folder(Box<FolderPlan>),
    /// A Git repository (`git`).
    Git(Box<GitPlan>),
}

/// A plain folder of manifests, or of a chart or a command's input.
#[derive(Clone, Debug)]
pub struct FolderPlan {
    /// The folder.
    pub path: PathBuf,
    /// Globs of files to read.
    pub include: Vec<String>,
    /// Globs of files to leave out.
    pub exclude: Vec<String>,
    /// The binary rendering kustomizations (`kustomizeBin`).
    pub kustomize_bin: Option<PathBuf>,
    /// The helm binary of kustomizations' `helmCharts:` (`helmBin`).
    pub helm_bin: Option<PathBuf>,
    /// How the folder is rendered (`helm`, `render` or `kustomize`), if it is.
    pub renderer: Option<Renderer>,
}

/// A Git repository.
#[derive(Clone, Debug)]
pub struct GitPlan {
    /// How it is read: the URL as DriftGuard uses it (a local path made absolute), the clones'
    /// folder, the revision and folder, globs and `recurse`, credentials, renderers and limits.
    pub source: GitSourceConfig,
    /// The repository's web page, for links to a file and line (`git.webUrl`).
    pub web_url: Option<String>,
    /// The pull request opened after an adoption is pushed (`git.pullRequest`).
    pub pull_request: Option<PullRequestPlan>,
}

/// A pull (or merge) request to open after an adoption, and the branch it merges into.
#[derive(Clone, Debug)]
pub struct PullRequestPlan {
    /// The forge, repository and token.
    pub config: PullRequestConfig,
    /// The branch to merge into: `pullRequest.base`, else `git.ref`, else `main`.
    pub base: String,
}

/// The live side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LivePlan {
    /// A cluster (the default kubeconfig when the file names none).
    Cluster(KubeConfigSpec),
    /// Dump files.
    Dump(Vec<PathBuf>),
}

/// A Terraform root module: the `terraform` section resolved (the module's code is the
/// environment's desired side).
#[derive(Clone, Debug, Default)]
pub struct TerraformPlan {
    /// DriftGuard's working folder for the environment (`terraformCache/<name>`).
    pub work_dir: PathBuf,
    /// The workspace.
    pub workspace: Option<String>,
    /// Variable files, as written (terraform reads relative ones from the module's folder).
    pub var_files: Vec<String>,
    /// The terraform binary (a path resolved, a bare name kept for PATH).
    pub binary: Option<PathBuf>,
    /// `-backend-config` values.
    pub backend_config: Vec<String>,
    /// The Terraform CLI configuration file.
    pub cli_config_file: Option<PathBuf>,
    /// Longest one terraform step may run (absent: the source's default).
    pub timeout: Option<Duration>,
    /// The AWS account listed for orphans.
    pub orphans: Option<AwsOrphansConfig>,
    /// CloudTrail, read for who made the hand changes.
    pub cloud_trail: Option<CloudTrailConfig>,
}

/// An environment's `audit` section, resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditPlan {
    /// The webhook endpoint, if events are taken there.
    pub webhook: Option<AuditWebhookConfig>,
    /// The audit log file, if one is read.
    pub log_file: Option<PathBuf>,
    /// How often `serve` reads new lines of the log file (absent: the default).
    pub log_poll_interval: Option<Duration>,
}
