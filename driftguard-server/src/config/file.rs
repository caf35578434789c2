//! The configuration file's model: what `driftguard.yaml` may hold. Keys are camelCase.

use std::path::{Path, PathBuf};

use driftguard_core::audit::{AuditLimits, AuditSpec, UserNames};
use driftguard_core::engine::EnvironmentSpec;
use driftguard_core::findings::FindingRules;
use driftguard_core::id::GroupKind;
use driftguard_core::ignore::{IgnoreRule, IgnoreRules};
use driftguard_core::ports::GroupVersionKind;
use driftguard_core::severity::{SeverityRule, SeverityRules};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::server::{HumanDuration, NotifierConfig, ServerConfig};

/// The whole file (`driftguard.yaml`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigFile {
    /// Environments to scan, each with a desired side (Git or a folder) and a live side.
    #[serde(default)]
    pub environments: Vec<EnvironmentConfig>,
    /// Environments discovered from a cluster running Argo CD or Flux: one per Application,
    /// Kustomization or HelmRelease, besides those of `environments` (read by `driftguard scan
    /// --discover`, `driftguard config validate --discover`, and by `driftguard serve` at
    /// start). See docs/argocd-flux.md.
    #[serde(default)]
    pub discover: Option<DiscoverConfig>,
    /// Where history is kept (default: the embedded SQLite file).
    #[serde(default)]
    pub store: Option<StoreConfig>,
    /// Where the key Secret values are hashed with comes from (never the key itself; default:
    /// `DRIFTGUARD_SECRET_KEY`, then a key kept next to an SQLite store).
    #[serde(default)]
    pub secret_key: Option<SecretKeySource>,
    /// Notifiers (used by `driftguard serve`, added to `server.notifiers`).
    #[serde(default)]
    pub notifications: Vec<NotifierConfig>,
    /// The `server:` section (used by `driftguard serve`).
    #[serde(default)]
    pub server: Option<ServerConfig>,
    /// Folder holding the clones of remote repositories (default `.driftguard/git`).
    #[serde(default)]
    pub git_cache: Option<PathBuf>,
    /// The binary rendering kustomizations (`kubectl` or `kustomize`; default: found on PATH).
    #[serde(default)]
    pub kustomize_bin: Option<PathBuf>,
    /// The helm binary (v3) rendering Helm charts and the `helmCharts:` of kustomizations: a
    /// path, or a name looked up on PATH (default `helm`). An environment's `helm.binary`
    /// overrides it.
    #[serde(default)]
    pub helm_bin: Option<PathBuf>,
    /// Folder holding the working folders of Terraform environments (their `TF_DATA_DIR`, the
    /// revision written out) and the plugin cache they share (`plugin-cache`); default
    /// `.driftguard/terraform`.
    #[serde(default)]
    pub terraform_cache: Option<PathBuf>,
    /// What one input may cost: larger manifest files and dumps, and sources handing over
    /// more objects, are clear errors instead of unbounded memory (the defaults fit large
    /// clusters; raise them here).
    #[serde(default)]
    pub limits: LimitsConfig,
}

/// Limits on what one input may cost (see `docs/reliability.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest manifest file read, in bytes (default 16 MiB): a larger file is an error of its
    /// own, not read, and the other files are scanned.
    pub max_manifest_bytes: u64,
    /// Largest dump file read, in bytes (default 512 MiB).
    pub max_dump_bytes: u64,
    /// Most objects one source may hand over in one read (default 500000).
    pub max_objects: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig::from(driftguard_core::limits::Limits::default())
    }
}

impl From<driftguard_core::limits::Limits> for LimitsConfig {
    fn from(l: driftguard_core::limits::Limits) -> Self {
        LimitsConfig {
            max_manifest_bytes: l.max_manifest_bytes,
            max_dump_bytes: l.max_dump_bytes,
            max_objects: l.max_objects,
        }
    }
}

impl LimitsConfig {
    /// As the core's limits.
    pub fn limits(&self) -> driftguard_core::limits::Limits {
        driftguard_core::limits::Limits {
            max_manifest_bytes: self.max_manifest_bytes,
            max_dump_bytes: self.max_dump_bytes,
            max_objects: self.max_objects,
        }
    }
}

/// One environment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvironmentConfig {
    /// Name, unique; letters, digits, `-`, `_` and `.`.
    pub name: String,
    /// Desired side: a Git repository (set `git` or `dir`).
    #[serde(default)]
    pub git: Option<GitConfig>,
    /// Desired side: a plain folder of manifests, as a path or a mapping with globs (set `git`
    /// or `dir`).
    #[serde(default)]
    pub dir: Option<DirConfig>,
    /// Render the desired side from a Helm chart: the folder `git.path` or `dir` is the chart
    /// (like an Argo CD Application with a Helm source; see docs/helm.md).
    #[serde(default)]
    pub helm: Option<HelmConfig>,
    /// Kustomize options over the folder `git.path` or `dir` (like an Argo CD Application's
    /// `kustomize` options or a Flux Kustomization): they are set in the folder's
    /// kustomization, as `kustomize edit` does for Argo CD, in a copy (a folder without
    /// `kustomization.yaml` gets one listing its manifests, as Flux generates it).
    #[serde(default)]
    pub kustomize: Option<KustomizeConfig>,
    /// Render the desired side with a command run in the folder `git.path` or `dir`, whose
    /// standard output is YAML or JSON objects (jsonnet, cdk8s, kcl, a script of your own; in
    /// the spirit of Argo CD's config management plugins).
    #[serde(default)]
    pub render: Option<RenderConfig>,
    /// A Terraform root module instead of Kubernetes manifests: the folder `git.path` or
    /// `dir` is the root module, checked with read-only plans (`plan -refresh-only` and
    /// `plan`); the cloud is the live side, so `live` is not set (see docs/terraform.md).
    #[serde(default)]
    pub terraform: Option<TerraformConfig>,
    /// Live side: a cluster or dump files (not for a Terraform environment).
    #[serde(default)]
    pub live: Option<LiveConfig>,
    /// Namespaces to read from the cluster (empty: all).
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// The namespace of namespaced manifests that name none, as `kubectl apply -n` gives it
    /// (default: `default`).
    #[serde(default)]
    pub default_namespace: Option<String>,
    /// Kinds to read from the cluster besides those Git defines.
    #[serde(default)]
    pub kinds: Vec<KindConfig>,
    /// Ignore rules (like Argo CD's `ignoreDifferences`): which objects, and which fields or
    /// field managers to leave out of the comparison.
    #[serde(default)]
    pub ignore: Vec<IgnoreRule>,
    /// Severity overrides (the highest matching one wins over the built-in verdict).
    #[serde(default)]
    pub severity: Vec<SeverityRule>,
    /// Risk findings: overrides of the built-in rules (risk changed, or `off`, for some
    /// objects, rules and fields) and the field managers that are people's tools (see
    /// `docs/findings.md`).
    #[serde(default)]
    pub findings: FindingRules,
    /// Whether an HPA owns the `spec.replicas` of its target, so that it is not drift
    /// (absent: true).
    #[serde(default)]
    pub hpa_owns_replicas: Option<bool>,
    /// Label and annotation keys: `compare` keys or domains that the built-in lists say the
    /// API server or a deployment tool writes (Helm's `meta.helm.sh`, Argo CD's
    /// `argocd.argoproj.io`, Flux's `*.toolkit.fluxcd.io`, ...), `toolOwned` more keys or
    /// domains your own tools write. See `docs/configuration.md`.
    #[serde(default)]
    pub metadata_keys: driftguard_core::metadata::MetadataKeys,
    /// Compare with what the API server would make of Git's objects (a server-side apply dry
    /// run of each, as Argo CD's server-side diff does), so that admission policies, webhooks
    /// and the server's defaults over Git's values are not drift. One request per object per
    /// full scan; needs `patch` on the kinds. Default false. See `docs/configuration.md`.
    #[serde(default)]
    pub server_side_diff: bool,
    /// Namespaces fully managed by Git, where orphans are looked for (default: the
    /// namespaces Git defines).
    #[serde(default)]
    pub managed_namespaces: Option<Vec<String>>,
    /// Kinds (`Kind` or `Kind.group`) in which orphans are looked for (default: the kinds Git
    /// defines).
    #[serde(default)]
    pub orphan_kinds: Option<Vec<String>>,
    /// The remediation policy under `driftguard serve` (default: `off`): `notify`, `revert`
    /// or `adopt` drifts matching its selectors, severity and directions, within its rate
    /// limit and time window (see docs/remediation.md).
    #[serde(default)]
    pub remediation: Option<driftguard_core::remediate::Policy>,
    /// Who, by name: the API server's audit log (its webhook backend, or its log file) names
    /// the person behind each hand change (see docs/audit.md).
    #[serde(default)]
    pub audit: Option<AuditConfig>,
}

/// Attribution from the API server's audit log: where the events come from, what is kept of a
/// person's name, and how much is kept.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditConfig {
    /// Take the events the API server's webhook backend posts (`--audit-webhook-config-file`,
    /// batch mode) at `POST /api/v1/environments/<name>/audit` of `driftguard serve`.
    #[serde(default)]
    pub webhook: Option<AuditWebhookConfig>,
    /// An audit log file as `--audit-log-path` writes it (JSON lines): read on from where it
    /// was left before each `driftguard scan`, and followed by `driftguard serve`; rotation
    /// and truncation are followed.
    #[serde(default)]
    pub log_file: Option<PathBuf>,
    /// How often `driftguard serve` reads new lines of `logFile` (default `2s`).
    #[serde(default)]
    pub log_poll_interval: Option<HumanDuration>,
    /// What is kept of a person's user name: `keep` (default; with the source address),
    /// `hash` (a keyed hash made with the Secret key, `hmac:` and 16 hex digits; no address)
    /// or `drop` (only "a person"; no address, no groups). Service accounts and the control
    /// plane's users are software and always kept by name. Applied before anything is kept.
    #[serde(default)]
    pub user_names: Option<UserNames>,
    /// Most writes kept per object, the newest (default 8).
    #[serde(default)]
    pub writes_per_object: Option<usize>,
    /// How long a write is kept, counted from now (default `7d`).
    #[serde(default)]
    pub max_age: Option<HumanDuration>,
    /// Most objects whose writes are kept; those written to longest ago go first (default
    /// 50000).
    #[serde(default)]
    pub max_objects: Option<usize>,
}

/// The audit webhook endpoint of an environment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditWebhookConfig {
    /// Name of an environment variable holding the token(s) the API server sends (comma
    /// separated): as a bearer token (`users[].user.token` of its webhook kubeconfig, sent
    /// over HTTPS only), or as the password of Basic credentials (the user info of the
    /// kubeconfig's server URL, `http://driftguard:<token>@host:port/...`, for plain HTTP).
    /// Required: audit events are never taken without it. The API's own tokens are not
    /// accepted here.
    pub token_env: String,
    /// Largest accepted body, in bytes (default 16777216, 16 MiB; a batch of 400 events at
    /// `Metadata` level is about 0.5 MiB). Larger posts are refused with 413.
    #[serde(default)]
    pub max_body: Option<usize>,
}

impl AuditConfig {
    /// The core's audit settings.
    pub fn spec(&self) -> AuditSpec {
        let mut limits = AuditLimits::default();
        if let Some(n) = self.writes_per_object {
            limits.writes_per_object = n;
        }
        if let Some(d) = self.max_age {
            limits.max_age = d.0;
        }
        if let Some(n) = self.max_objects {
            limits.max_objects = n;
        }
        AuditSpec {
            user_names: self.user_names.unwrap_or_default(),
            limits,
        }
    }
}

/// A Git repository.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
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
    /// Globs of files to read, relative to `path` (default: every `.yaml`, `.yml` and `.json`).
    #[serde(default)]
    pub include: Vec<String>,
    /// Globs of files to leave out.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Whether files in subfolders of `path` are read (default true; an Argo CD directory
    /// Application without `recurse` reads only the folder's own files: false).
    #[serde(default)]
    pub recurse: Option<bool>,
    /// Name of an environment variable holding an HTTPS token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// A private SSH key file, for `ssh://` and `user@host:path` remotes.
    #[serde(default)]
    pub ssh_key: Option<PathBuf>,
    /// The repository's web page, for the dashboard's links to a file and line: a base URL
    /// (`https://github.com/org/repo`, linked as `{base}/blob/{revision}/{file}#L{line}`) or a
    /// template with `{revision}`, `{path}` and `{line}`
    /// (`https://gitea.example/org/repo/src/commit/{revision}/{path}#L{line}`).
    #[serde(default)]
    pub web_url: Option<String>,
    /// Open a pull (or merge) request through the forge's REST API after an adoption's branch
    /// is pushed (absent: the branch is only pushed).
    #[serde(default)]
    pub pull_request: Option<PullRequestConfig>,
}

/// Which forge hosts the environment's repository.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ForgeKind {
    /// GitHub or GitHub Enterprise: a pull request.
    Github,
    /// GitLab: a merge request.
    Gitlab,
    /// Gitea or Forgejo: a pull request.
    Gitea,
}

/// Opening a pull (or merge) request after an adoption is pushed (`git.pullRequest`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PullRequestConfig {
    /// `github`, `gitlab` or `gitea`.
    pub forge: ForgeKind,
    /// The API's base URL. Default: `https://api.github.com` (GitHub), `https://gitlab.com/api/v4`
    /// (GitLab); required for Gitea (`https://gitea.example.org/api/v1`).
    #[serde(default)]
    pub api_url: Option<String>,
    /// The repository: `owner/name` (GitHub, Gitea), the project's path `group/name` or its
    /// numeric id (GitLab).
    pub repository: String,
    /// Name of the environment variable holding the API token (GitHub: a token allowed to
    /// open pull requests; GitLab: a token with the `api` scope; Gitea: an access token).
    pub token_env: String,
    /// The branch to merge into. Default: the environment's `git.ref`, else `main`.
    #[serde(default)]
    pub base: Option<String>,
}

/// A Helm chart as the desired side, rendered with `helm template`. The keys mean what Argo
/// CD's `spec.source.helm` keys mean, with the same precedence: `parameters` over `values`
/// over `valueFiles` (the last file wins) over the chart's `values.yaml`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HelmConfig {
    /// The release name (`.Release.Name`; Argo CD `helm.releaseName`). Default: the
    /// environment's name.
    #[serde(default)]
    pub release_name: Option<String>,
    /// The release namespace (`.Release.Namespace`, `helm template --namespace`; Argo CD: the
    /// destination namespace), also the namespace of rendered objects that name none.
    /// Default: `defaultNamespace`, else `default`.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Value files, relative to the chart folder, in order: the last wins (Argo CD
    /// `helm.valueFiles`). They may lie elsewhere in the repository
    /// (`../../envs/prod/values.yaml`).
    #[serde(default)]
    pub value_files: Vec<String>,
    /// Inline values, over the value files: YAML text (Argo CD `helm.values`) or a mapping
    /// (Argo CD `helm.valuesObject`).
    #[serde(default)]
    pub values: Option<InlineValues>,
    /// `--set` parameters, over everything else (Argo CD `helm.parameters`).
    #[serde(default)]
    pub parameters: Vec<HelmParameterConfig>,
    /// The Kubernetes version templates see (`.Capabilities.KubeVersion`, `--kube-version`;
    /// Argo CD `helm.kubeVersion`).
    #[serde(default)]
    pub kube_version: Option<String>,
    /// API versions templates see (`.Capabilities.APIVersions`, `--api-versions`; Argo CD
    /// `helm.apiVersions`).
    #[serde(default)]
    pub api_versions: Vec<String>,
    /// Whether the chart's `crds/` are rendered (`--include-crds`; default true, as Argo CD's
    /// `helm.skipCrds: false`).
    #[serde(default, rename = "includeCRDs")]
    pub include_crds: Option<bool>,
    /// Leave `templates/tests` out (`--skip-tests`; Argo CD `helm.skipTests`). Tests are
    /// hooks, skipped either way; this only spares rendering them.
    #[serde(default)]
    pub skip_tests: bool,
    /// Leave out value files that do not exist instead of failing (Argo CD
    /// `helm.ignoreMissingValueFiles`).
    #[serde(default)]
    pub ignore_missing_value_files: bool,
    /// The helm binary (v3): a path, or a name looked up on PATH. Default: `helmBin`, else
    /// `helm`.
    #[serde(default)]
    pub binary: Option<PathBuf>,
    /// Longest one `helm template` may run (default `2m`).
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
}

/// Kustomize options set in the environment's kustomization (in a copy), with the meaning of
/// Argo CD's `spec.source.kustomize` and of a Flux Kustomization's fields of the same names.
/// Substituted values may come from Secrets: they are never stored or shown.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KustomizeConfig {
    /// Prefix of every object's name (`namePrefix`).
    #[serde(default)]
    pub name_prefix: Option<String>,
    /// Suffix of every object's name (`nameSuffix`).
    #[serde(default)]
    pub name_suffix: Option<String>,
    /// Namespace of every namespaced object (`namespace`; Flux's `targetNamespace`).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Image overrides in Argo CD's syntax: `name=newName:tag`, `name:tag`, `name@digest`
    /// (Flux's `images` entries are turned into it).
    #[serde(default)]
    pub images: Vec<String>,
    /// Labels added to every object (`commonLabels`; selectors too, as kustomize does).
    #[serde(default)]
    pub common_labels: std::collections::BTreeMap<String, String>,
    /// Annotations added to every object (`commonAnnotations`).
    #[serde(default)]
    pub common_annotations: std::collections::BTreeMap<String, String>,
    /// Patches (`patches`: strategic merge or JSON 6902, inline or a file of the repository).
    #[serde(default)]
    pub patches: Vec<KustomizePatch>,
    /// Replica counts by object name (`replicas`).
    #[serde(default)]
    pub replicas: Vec<KustomizeReplicas>,
    /// Components, relative to the folder (`components`).
    #[serde(default)]
    pub components: Vec<String>,
    /// `${name}` variables replaced in the built objects, as Flux's `postBuild` does
    /// (`${name:=default}` takes the default when the name is not given; `$${name}` is kept).
    /// Discovery fills it from a Kustomization's `substitute` and `substituteFrom`.
    #[serde(default)]
    pub substitute: std::collections::BTreeMap<String, String>,
}

/// One kustomize patch.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KustomizePatch {
    /// The patch, inline (YAML or JSON).
    #[serde(default)]
    pub patch: Option<String>,
    /// The patch, a file relative to the folder.
    #[serde(default)]
    pub path: Option<String>,
    /// The objects patched (kustomize's `target`: group, version, kind, name, namespace,
    /// labelSelector, annotationSelector).
    #[serde(default)]
    pub target: Option<std::collections::BTreeMap<String, String>>,
}

/// A replica count by object name.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KustomizeReplicas {
    /// The object's name.
    pub name: String,
    /// The count.
    pub count: u32,
}

/// Inline Helm values: YAML text, or a mapping.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum InlineValues {
    /// YAML text (Argo CD `helm.values`).
    Text(String),
    /// A mapping (Argo CD `helm.valuesObject`).
    Object(serde_json::Map<String, serde_json::Value>),
}

impl InlineValues {
    /// The values as YAML text, as helm reads them from a file.
    pub fn to_yaml(&self) -> String {
        match self {
            InlineValues::Text(t) => t.clone(),
            // JSON is YAML: no second serializer needed
            InlineValues::Object(m) => serde_json::Value::Object(m.clone()).to_string(),
        }
    }
}

/// One `--set` parameter (Argo CD `helm.parameters[]`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HelmParameterConfig {
    /// The value's path (`image.tag`, `ingress.hosts[0]`).
    pub name: String,
    /// The value (commas are escaped, as Argo CD does, unless it is a `{a,b}` list).
    pub value: String,
    /// Pass it with `--set-string`: always a string, never a number or a boolean.
    #[serde(default)]
    pub force_string: bool,
}

/// A command rendering the desired side: run in the folder `git.path` (of a copy of the
/// revision's whole tree) or `dir`, it prints YAML (documents separated by `---`) or JSON
/// (objects, arrays of objects, `List`s) on its standard output.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RenderConfig {
    /// The program and its arguments, run without a shell (`[jsonnet, -y, main.jsonnet]`); a
    /// program with a `/` is relative to the folder. With `shell: true`, one command line.
    pub command: Vec<String>,
    /// Run `command` (a single line) with `sh -c`, for pipes and variables.
    #[serde(default)]
    pub shell: bool,
    /// Longest the command may run; it is stopped after that (default `60s`).
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
    /// Most bytes the command may print; it is stopped when it prints more (default
    /// 67108864, 64 MiB).
    #[serde(default)]
    pub max_output: Option<u64>,
    /// Names of environment variables of DriftGuard's environment passed to the command
    /// (`[JSONNET_PATH, CDK8S_ENV]`). It runs with a scrubbed environment: only `PATH`,
    /// `HOME`, `USER`, `LOGNAME`, `LANG`, `LC_ALL`, `LC_CTYPE`, `TZ` and `TMPDIR`, these names,
    /// and `DRIFTGUARD_REVISION` and `DRIFTGUARD_PATH`; nothing else (`KUBECONFIG`, tokens,
    /// cloud credentials) reaches it. A name that is not set is left out; `GIT_DIR`,
    /// `GIT_WORK_TREE` and `GIT_INDEX_FILE` never pass.
    #[serde(default)]
    pub pass_env: Vec<String>,
    /// Let the command use the network (default false). Without it, the command runs in a
    /// network namespace of its own with no way out, where the OS allows it (unprivileged
    /// user namespaces, `unshare --user --net`); where it does not, the command runs with the
    /// network, and DriftGuard logs that once. Rendering reads the folder: a generator that
    /// fetches its inputs (a remote jsonnet library, a package registry) needs this.
    #[serde(default)]
    pub allow_network: bool,
}

/// How a Terraform root module is checked. Nothing is ever applied: DriftGuard runs `terraform
/// init -input=false`, `terraform plan -refresh-only` and `terraform plan` (both `-lock=false
/// -input=false -out=<a private temporary file>`), `terraform show -json` and `terraform state
/// pull`, in a working folder of its own.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TerraformConfig {
    /// The workspace to plan (`TF_WORKSPACE`; default `default`).
    #[serde(default)]
    pub workspace: Option<String>,
    /// Variable files (`-var-file`), relative to the root module's folder, or absolute (a file
    /// of the DriftGuard host, outside the repository: where sensitive values belong).
    #[serde(default)]
    pub var_files: Vec<String>,
    /// The terraform binary: a path, or a name looked up on PATH (default `terraform`); OpenTofu's
    /// `tofu` works the same way.
    #[serde(default)]
    pub binary: Option<PathBuf>,
    /// `-backend-config` values given to `terraform init`: `key=value` (`path=/var/lib/tf/prod.tfstate`
    /// for a local state) or a file.
    #[serde(default)]
    pub backend_config: Vec<String>,
    /// A Terraform CLI configuration file (`TF_CLI_CONFIG_FILE`): provider mirrors and
    /// caches. Default: terraform's own (`~/.terraformrc`).
    #[serde(default)]
    pub cli_config_file: Option<PathBuf>,
    /// Longest one terraform step may run (default `10m`).
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
    /// Resources of the cloud account that are in no state (made by hand), listed through the
    /// cloud's API and reported as orphans.
    #[serde(default)]
    pub orphans: Option<OrphansConfig>,
    /// Who made a hand change in AWS: CloudTrail's event history, read for the resources
    /// that changed outside Terraform (read only; needs `cloudtrail:LookupEvents`). A section
    /// of its own, not under `orphans`: it is wanted without listing the account, and it
    /// reads one region's trail at its own endpoint.
    #[serde(default)]
    pub cloud_trail: Option<CloudTrailConfig>,
    /// The state is meant to hold no resource (nothing applied yet): record its checks.
    /// Otherwise a check that reads an empty state (often a missing `backendConfig`) is an
    /// error, and nothing is recorded (default `false`).
    #[serde(default)]
    pub expect_empty_state: bool,
}

/// CloudTrail read for who made the hand changes of a Terraform environment, with the
/// credentials of DriftGuard's environment (the AWS SDK's default chain).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CloudTrailConfig {
    /// The region whose trail is read, where the resources are (default: the first of
    /// `orphans.aws.regions`, else `AWS_REGION`, else `AWS_DEFAULT_REGION`, else `us-east-1`).
    #[serde(default)]
    pub region: Option<String>,
    /// Send the requests to this URL instead of AWS.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Most resources looked up in one check (default 10; CloudTrail answers two lookups a
    /// second): the others are looked up at the next check.
    #[serde(default)]
    pub max_lookups_per_scan: Option<usize>,
}

/// Which cloud account is listed for resources in no Terraform state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrphansConfig {
    /// An AWS account, with the credentials of DriftGuard's environment
    /// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`).
    pub aws: AwsOrphansConfig,
}

/// An AWS account listed for orphans: S3 buckets, VPCs, security groups, EC2 instances and RDS
/// instances. A default VPC and a VPC's `default` security group are never orphans.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AwsOrphansConfig {
    /// Regions whose VPCs, security groups and instances are listed (S3 buckets are global;
    /// default: `AWS_REGION`, else `AWS_DEFAULT_REGION`, else `us-east-1`).
    #[serde(default)]
    pub regions: Vec<String>,
    /// Send the requests to this URL instead of AWS (LocalStack, moto's server).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Kinds to list: `aws_s3_bucket`, `aws_vpc`, `aws_security_group`, `aws_instance`,
    /// `aws_db_instance` (default: all).
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Globs of ids or names never reported (`tfstate-*`: a state bucket; resources another
    /// tool manages).
    #[serde(default)]
    pub exclude: Vec<String>,
}

/// A plain folder: a path, or a mapping with the path and globs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum DirConfig {
    /// The folder's path.
    Path(PathBuf),
    /// The folder's path and globs.
    Full(DirFull),
}

/// A plain folder with globs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DirFull {
    /// The folder.
    pub path: PathBuf,
    /// Globs of files to read, relative to `path` (default: every `.yaml`, `.yml` and `.json`).
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
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LiveConfig {
    /// Kubeconfig file (default `$KUBECONFIG`, then `~/.kube/config`).
    #[serde(default)]
    pub kubeconfig: Option<PathBuf>,
    /// Context in the kubeconfig.
    #[serde(default)]
    pub context: Option<String>,
    /// Use the pod's in-cluster service account.
    #[serde(default)]
    pub in_cluster: bool,
    /// Dump files (`kubectl get -o yaml` output) instead of a cluster: one path or a list.
    #[serde(default)]
    pub dump: Option<OneOrMany>,
}

/// One path or a list of paths.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One path.
    One(PathBuf),
    /// A list of paths.
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

/// A kind to read from the cluster.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KindConfig {
    /// `apiVersion`, e.g. `apps/v1`.
    pub api_version: String,
    /// The kind, e.g. `NetworkPolicy`.
    pub kind: String,
}

/// Where history is kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StoreConfig {
    /// An SQLite file (the default store: `.driftguard/driftguard.db`).
    #[serde(default)]
    pub sqlite: Option<PathBuf>,
    /// A MongoDB database (several servers can share it).
    #[serde(default)]
    pub mongodb: Option<MongoConfig>,
    /// Age after which events, scan summaries and resolved episodes are pruned (e.g. `90d`;
    /// default: kept). Open drifts and current records are never pruned.
    #[serde(default)]
    pub retention: Option<HumanDuration>,
}

/// A MongoDB database.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretKeySource {
    /// An environment variable holding the key.
    #[serde(default)]
    pub env: Option<String>,
    /// A file holding the key (surrounding whitespace is trimmed).
    #[serde(default)]
    pub file: Option<PathBuf>,
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
        spec.findings = self.findings.clone();
        if let Some(h) = self.hpa_owns_replicas {
            spec.hpa_owns_replicas = h;
        }
        spec.metadata_keys = self.metadata_keys.clone();
        spec.server_side_diff = self.server_side_diff;
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
        // a chart's objects that name no namespace are in the release's
        spec.default_namespace = self
            .default_namespace
            .clone()
            .or_else(|| self.helm.as_ref().and_then(|h| h.namespace.clone()));
        spec.extra_kinds = self
            .kinds
            .iter()
            .map(|k| GroupVersionKind::from_api_version(&k.api_version, &k.kind))
            .collect();
        spec.audit = self.audit.as_ref().map(AuditConfig::spec);
        spec.expect_empty_state = self
            .terraform
            .as_ref()
            .is_some_and(|t| t.expect_empty_state);
        spec
    }
}

/// Where environments are discovered from, and how the tools' objects map to them
/// (`discover:`; see docs/argocd-flux.md).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DiscoverConfig {
    /// The cluster whose Argo CD Applications and Flux objects are read (default: the default
    /// kubeconfig's current context). Environments that Argo CD deploys to
    /// `https://kubernetes.default.svc` (`in-cluster`), and Flux objects without
    /// `spec.kubeConfig`, are compared on it too.
    #[serde(default)]
    pub cluster: Option<DiscoverCluster>,
    /// Argo CD: where its Applications and settings are read.
    #[serde(default)]
    pub argocd: ArgoCdDiscovery,
    /// Flux: where its Kustomizations, HelmReleases and sources are read.
    #[serde(default)]
    pub flux: FluxDiscovery,
    /// Which of the tools' objects become environments.
    #[serde(default)]
    pub filters: DiscoverFilters,
    /// Names for discovered environments instead of the default ones (`argocd.shop`,
    /// `flux.apps.podinfo`).
    #[serde(default)]
    pub names: Vec<DiscoverName>,
    /// The command rendering each Argo CD config management plugin (an Application's
    /// `spec.source.plugin.name`); an Application using a plugin not listed here is not
    /// scanned.
    #[serde(default)]
    pub plugins: Vec<DiscoverPlugin>,
    /// Credentials for the tools' repositories, by URL prefix (the longest matching prefix
    /// wins): DriftGuard never reads the tools' own repository Secrets.
    #[serde(default)]
    pub git_credentials: Vec<GitCredentialConfig>,
    /// Where each cluster the tools deploy to is reached, besides the discovery cluster (an
    /// Argo CD destination by `server` URL or `name`, a Flux `spec.kubeConfig` by its Secret
    /// or ConfigMap): DriftGuard never reads the tools' own cluster credentials, so an
    /// object deploying elsewhere is not scanned until its cluster is listed here.
    #[serde(default)]
    pub clusters: Vec<DestinationCluster>,
    /// Read the Secrets named by Flux's `postBuild.substituteFrom` and `valuesFrom` (default
    /// false: an object needing one is reported and, unless the reference is optional, not
    /// scanned). Their values are used for rendering only: never stored, logged or shown.
    #[serde(default)]
    pub read_secrets: bool,
    /// Settings given to every discovered environment.
    #[serde(default)]
    pub defaults: DiscoverDefaults,
}

/// A cluster reached through a kubeconfig and context, or from inside the cluster.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DiscoverCluster {
    /// Kubeconfig file (default `$KUBECONFIG`, then `~/.kube/config`).
    #[serde(default)]
    pub kubeconfig: Option<PathBuf>,
    /// Context in the kubeconfig (default: its current context).
    #[serde(default)]
    pub context: Option<String>,
    /// Use the pod's in-cluster service account.
    #[serde(default)]
    pub in_cluster: bool,
}

/// Where Argo CD's objects are read.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ArgoCdDiscovery {
    /// Whether Argo CD's Applications are read (default true; a cluster without Argo CD's
    /// CRD has none, which is not an error).
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Argo CD's own namespace (default `argocd`): its `argocd-cm` and
    /// `argocd-cmd-params-cm` ConfigMaps are read there, and its Applications are named
    /// `argocd.<name>` (those of other namespaces `argocd.<namespace>.<name>`).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Namespaces whose Applications are read (default: Argo CD's own namespace; list more
    /// for "apps in any namespace").
    #[serde(default)]
    pub namespaces: Vec<String>,
}

/// Where Flux's objects are read.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FluxDiscovery {
    /// Whether Flux's Kustomizations and HelmReleases are read (default true; a cluster
    /// without Flux's CRDs has none, which is not an error).
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Namespaces whose Kustomizations, HelmReleases, GitRepositories and HelmCharts are read
    /// (default: all).
    #[serde(default)]
    pub namespaces: Vec<String>,
}

/// Which of the tools' objects become environments (all must hold).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DiscoverFilters {
    /// A label selector the objects' labels must match, in the API server's syntax
    /// (`team=shop,tier in (web,api)`).
    #[serde(default)]
    pub selector: Option<String>,
    /// Argo CD projects (`spec.project`; default: all). Flux objects have no project: a
    /// projects filter leaves them all out.
    #[serde(default)]
    pub projects: Vec<String>,
    /// Namespaces of the tools' objects themselves (default: all those read).
    #[serde(default)]
    pub namespaces: Vec<String>,
}

/// A discovered environment's name.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DiscoverName {
    /// The default name (`argocd.shop`, `argocd.team-tools.tools`, `flux.apps.podinfo`).
    pub discovered: String,
    /// The environment's name instead (letters, digits, `-`, `_` and `.`).
    pub name: String,
}

/// The command rendering an Argo CD config management plugin.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DiscoverPlugin {
    /// The plugin's name, as Applications give it in `spec.source.plugin.name`.
    pub name: String,
    /// The command, as an environment's `render` section gives it.
    pub render: RenderConfig,
}

/// Credentials for the repositories whose URL starts with a prefix.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GitCredentialConfig {
    /// The URL prefix (`https://github.com/acme/`, `git@github.com:acme/`).
    pub url_prefix: String,
    /// Name of an environment variable holding an HTTPS token (`git.tokenEnv`).
    #[serde(default)]
    pub token_env: Option<String>,
    /// A private SSH key file (`git.sshKey`).
    #[serde(default)]
    pub ssh_key: Option<PathBuf>,
}

/// A cluster a tool deploys to, and how DriftGuard reaches it: one of `server`, `name`,
/// `kubeConfigSecret` or `kubeConfigConfigMap` says which, `kubeconfig`/`context` or
/// `inCluster` how.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DestinationCluster {
    /// An Argo CD `spec.destination.server` URL (`https://10.0.12.1:6443`).
    #[serde(default)]
    pub server: Option<String>,
    /// An Argo CD `spec.destination.name` (`prod-eu`).
    #[serde(default)]
    pub name: Option<String>,
    /// A Flux `spec.kubeConfig.secretRef`, as `<namespace>/<name>` of the Secret (never
    /// read: it only names the cluster).
    #[serde(default)]
    pub kube_config_secret: Option<String>,
    /// A Flux `spec.kubeConfig.configMapRef`, as `<namespace>/<name>` of the ConfigMap.
    #[serde(default)]
    pub kube_config_config_map: Option<String>,
    /// Kubeconfig file (default `$KUBECONFIG`, then `~/.kube/config`).
    #[serde(default)]
    pub kubeconfig: Option<PathBuf>,
    /// Context in the kubeconfig.
    #[serde(default)]
    pub context: Option<String>,
    /// Use the pod's in-cluster service account.
    #[serde(default)]
    pub in_cluster: bool,
}

/// Settings given to every discovered environment, as an environment's keys of the same
/// names give them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DiscoverDefaults {
    /// Ignore rules, after those the tool's object gives (Argo CD's `ignoreDifferences`,
    /// `argocd-cm`, Flux's ignore rules).
    #[serde(default)]
    pub ignore: Vec<IgnoreRule>,
    /// Severity overrides.
    #[serde(default)]
    pub severity: Vec<SeverityRule>,
    /// Risk findings' overrides and people's field managers.
    #[serde(default)]
    pub findings: FindingRules,
    /// Server-side diff for every discovered environment (absent: as the tool says: Argo CD's
    /// `ServerSideDiff` compare option or `controller.diff.server.side`; false for Flux).
    #[serde(default)]
    pub server_side_diff: Option<bool>,
    /// Whether an HPA owns the `spec.replicas` of its target (absent: true).
    #[serde(default)]
    pub hpa_owns_replicas: Option<bool>,
    /// Attribution from the API server's audit log, for every discovered environment.
    #[serde(default)]
    pub audit: Option<AuditConfig>,
}
