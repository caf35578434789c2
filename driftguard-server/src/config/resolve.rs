//! From the file's model to the plan ([`ResolvedConfig`]): the one place where paths of the
//! file are resolved and defaults applied.
//!
//! Resolution never fails: it is run on configurations validation has not seen (`driftguard
//! remediate` and the query commands read the file without checking it), and on ones it is
//! about to refuse (validation checks the plan's paths). Where the file is contradictory it
//! takes what setup always took: `dir` before `git`, a dump before a cluster, `secretKey.env`
//! before `secretKey.file`, and of the renderers `helm`, then `render`, then `kustomize`.
//!
//! The `discover:` section's plan keeps what an environment's resolution shares with the
//! others (the file's folder, binaries, caches, limits), so that environments discovered
//! later are planned here too, the same way ([`DiscoveryPlan::environment`]).

use std::path::{Path, PathBuf};

use driftguard_core::render::{HelmOptions, HelmParameter};
use driftguard_sources::git::{GitAuth, GitSourceConfig};
use driftguard_sources::kube::KubeConfigSpec;
use driftguard_sources::render::{
    CommandRenderer, HelmRenderer, KustomizeOptions, KustomizePatch, KustomizeRenderer,
    KustomizeReplica, Renderer,
};

use super::discover::{DiscoveryContext, GitCredential, ObjectKey};
use super::plan::*;
use super::{
    Config, ConfigFile, DirConfig, DiscoverConfig, EnvironmentConfig, GitConfig, HelmConfig,
    InlineValues, KustomizeConfig, LiveConfig, NotifierConfig, RenderConfig, StoreConfig,
};

/// Resolves the file's paths against its folder.
struct Resolver<'a> {
    base: &'a Path,
}

impl Resolver<'_> {
    /// A path of the file: `~/` is `HOME`'s, a relative path is relative to the file's folder.
    fn path(&self, p: &Path) -> PathBuf {
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

    /// A configured program: a path (holding `/`) is resolved, a bare name is kept (looked up
    /// on PATH when it runs).
    fn program(&self, p: &Path) -> PathBuf {
        if p.to_string_lossy().contains('/') {
            self.path(p)
        } else {
            p.to_path_buf()
        }
    }

    /// A folder of the file, or its default below `.driftguard/` next to the file.
    fn folder_or(&self, p: Option<&PathBuf>, default: &str) -> PathBuf {
        p.map_or_else(
            || self.base.join(".driftguard").join(default),
            |p| self.path(p),
        )
    }
}

/// The plan of `config`.
pub(super) fn plan(config: &Config) -> ResolvedConfig {
    let r = Resolver { base: &config.base };
    let f = &config.file;
    let tools = Tools {
        kustomize_bin: f.kustomize_bin.as_ref().map(|p| r.path(p)),
        helm_bin: f.helm_bin.as_ref().map(|p| r.program(p)),
        git_cache: r.folder_or(f.git_cache.as_ref(), "git"),
        terraform_cache: r.folder_or(f.terraform_cache.as_ref(), "terraform"),
        limits: f.limits.limits(),
    };
    ResolvedConfig {
        path: config.path.clone(),
        warnings: config.warnings.clone(),
        server: server(&r, f),
        environments: f
            .environments
            .iter()
            .map(|env| environment(&r, &tools, env))
            .collect(),
        discover: f.discover.as_ref().map(|d| discovery(&r, &tools, d)),
        store: store(&r, f),
        secret_key: f.secret_key.as_ref().and_then(|k| match (&k.env, &k.file) {
            (Some(v), _) => Some(SecretKeyPlan::Env(v.clone())),
            (None, Some(p)) => Some(SecretKeyPlan::File(r.path(p))),
            (None, None) => None,
        }),
        helm_bin: tools.helm_bin,
    }
}

/// What every environment shares.
#[derive(Clone, Debug)]
struct Tools {
    kustomize_bin: Option<PathBuf>,
    helm_bin: Option<PathBuf>,
    git_cache: PathBuf,
    terraform_cache: PathBuf,
    limits: driftguard_core::limits::Limits,
}

fn server(r: &Resolver<'_>, f: &ConfigFile) -> ServerPlan {
    let mut settings = f.server.clone().unwrap_or_default();
    settings.notifiers.extend(f.notifications.iter().cloned());
    for n in &mut settings.notifiers {
        if let NotifierConfig::Email {
            ca_file: Some(ca), ..
        } = n
        {
            *ca = r.path(ca);
        }
    }
    if let Some(tls) = &mut settings.tls {
        tls.cert_file = r.path(&tls.cert_file);
        tls.key_file = r.path(&tls.key_file);
        tls.client_ca_file = tls.client_ca_file.as_ref().map(|p| r.path(p));
    }
    if let Some(oidc) = &mut settings.oidc {
        oidc.client_secret_file = oidc.client_secret_file.as_ref().map(|p| r.path(p));
    }
    let mut home_cluster = None;
    if let Some(ha) = &mut settings.ha {
        ha.home_kubeconfig = ha.home_kubeconfig.as_ref().map(|p| r.path(p));
        home_cluster = Some(KubeConfigSpec {
            kubeconfig: ha.home_kubeconfig.clone(),
            context: ha.home_context.clone(),
            in_cluster: ha.in_cluster,
        });
    }
    ServerPlan {
        settings,
        home_cluster,
    }
}

fn store(r: &Resolver<'_>, f: &ConfigFile) -> StorePlan {
    let s = f.store.as_ref();
    let backend = match s {
        Some(StoreConfig {
            mongodb: Some(m), ..
        }) => StoreBackend::Mongo {
            uri_env: m.uri_env.clone().unwrap_or_else(|| "MONGODB_URI".into()),
            database: m.database.clone().unwrap_or_else(|| "driftguard".into()),
        },
        Some(StoreConfig {
            sqlite: Some(p), ..
        }) => StoreBackend::Sqlite(r.path(p)),
        _ => StoreBackend::Sqlite(r.base.join(".driftguard").join("driftguard.db")),
    };
    StorePlan {
        backend,
        retention: s.and_then(|s| s.retention).map(|d| d.0),
    }
}

fn environment(r: &Resolver<'_>, tools: &Tools, env: &EnvironmentConfig) -> EnvironmentPlan {
    let renderer = renderer(r, tools, env);
    let desired = match (&env.dir, &env.git) {
        (Some(d), _) => Some(DesiredPlan::Folder(Box::new(folder(r, tools, d, renderer)))),
        (None, Some(g)) => Some(DesiredPlan::Git(Box::new(git(r, tools, g, renderer)))),
        (None, None) => None,
    };
    let live = env.live.clone().unwrap_or_default();
    let live = match &live.dump {
        Some(d) => LivePlan::Dump(d.paths().iter().map(|p| r.path(p)).collect()),
        None => LivePlan::Cluster(KubeConfigSpec {
            kubeconfig: live.kubeconfig.as_ref().map(|p| r.path(p)),
            context: live.context.clone(),
            in_cluster: live.in_cluster,
        }),
    };
    let terraform = env.terraform.as_ref().map(|t| TerraformPlan {
        work_dir: tools.terraform_cache.join(&env.name),
        workspace: t.workspace.clone(),
        var_files: t.var_files.clone(),
        binary: t.binary.as_ref().map(|p| r.program(p)),
        backend_config: t.backend_config.clone(),
        cli_config_file: t.cli_config_file.as_ref().map(|p| r.path(p)),
        timeout: t.timeout.map(|d| d.0),
        orphans: t.orphans.as_ref().map(|o| o.aws.clone()),
        cloud_trail: t.cloud_trail.clone(),
    });
    let audit = env.audit.as_ref().map(|a| AuditPlan {
        webhook: a.webhook.clone(),
        log_file: a.log_file.as_ref().map(|p| r.path(p)),
        log_poll_interval: a.log_poll_interval.map(|d| d.0),
    });
    EnvironmentPlan {
        name: env.name.clone(),
        spec: env.spec(),
        desired,
        live,
        terraform,
        audit,
        remediation: env.remediation.clone(),
        limits: tools.limits,
    }
}

fn folder(
    r: &Resolver<'_>,
    tools: &Tools,
    d: &DirConfig,
    renderer: Option<Renderer>,
) -> FolderPlan {
    let (include, exclude) = d.globs();
    FolderPlan {
        path: r.path(d.path()),
        include,
        exclude,
        kustomize_bin: tools.kustomize_bin.clone(),
        helm_bin: tools.helm_bin.clone(),
        renderer,
    }
}

fn git(r: &Resolver<'_>, tools: &Tools, g: &GitConfig, renderer: Option<Renderer>) -> GitPlan {
    let mut source = GitSourceConfig::new(repository_url(r, g), tools.git_cache.clone())
        .reference(g.reference.clone().unwrap_or_default())
        .path(g.path.clone().unwrap_or_default());
    source.include = g.include.clone();
    source.exclude = g.exclude.clone();
    source.recurse = g.recurse.unwrap_or(true);
    source.kustomize_bin = tools.kustomize_bin.clone();
    source.helm_bin = tools.helm_bin.clone();
    source.render = renderer;
    source.limits = tools.limits;
    if g.token_env.is_some() || g.ssh_key.is_some() {
        source.auth = Some(GitAuth {
            token_env: g.token_env.clone(),
            ssh_key_path: g.ssh_key.as_ref().map(|p| r.path(p)),
            ..GitAuth::default()
        });
    }
    GitPlan {
        source,
        web_url: g.web_url.clone(),
        pull_request: g.pull_request.clone().map(|config| PullRequestPlan {
            base: config
                .base
                .clone()
                .or_else(|| g.reference.clone().filter(|r| !r.trim().is_empty()))
                .unwrap_or_else(|| "main".into()),
            config,
        }),
    }
}

/// The URL of a repository as DriftGuard uses it: as written when it is a URL, else the local
/// path made absolute (`git fetch` runs inside the mirror, where a relative path means
/// nothing). Push webhooks are matched against it.
fn repository_url(r: &Resolver<'_>, g: &GitConfig) -> String {
    if looks_like_url(&g.url) {
        g.url.clone()
    } else {
        let path = r.path(Path::new(&g.url));
        std::path::absolute(&path)
            .unwrap_or(path)
            .display()
            .to_string()
    }
}

fn looks_like_url(s: &str) -> bool {
    s.contains("://") || (s.contains('@') && s.contains(':'))
}

/// How an environment's desired side is rendered, if it is: its `helm` section (a chart,
/// with Argo CD's meaning of each key), its `render` section (a command) or its `kustomize`
/// section (the folder built with Argo CD's and Flux's kustomize options).
fn renderer(r: &Resolver<'_>, tools: &Tools, env: &EnvironmentConfig) -> Option<Renderer> {
    if let Some(h) = &env.helm {
        return Some(Renderer::Helm(helm(r, tools, env, h)));
    }
    if let Some(c) = &env.render {
        return Some(Renderer::Command(command(c)));
    }
    env.kustomize
        .as_ref()
        .map(|k| Renderer::Kustomize(kustomize(tools, k)))
}

/// The `kustomize` section: its options as the sources take them, the binaries of
/// `kustomizeBin` and `helmBin`.
fn kustomize(tools: &Tools, k: &KustomizeConfig) -> KustomizeRenderer {
    let options = KustomizeOptions {
        name_prefix: k.name_prefix.clone(),
        name_suffix: k.name_suffix.clone(),
        namespace: k.namespace.clone(),
        images: k.images.clone(),
        common_labels: k.common_labels.clone(),
        common_annotations: k.common_annotations.clone(),
        patches: k
            .patches
            .iter()
            .map(|p| KustomizePatch {
                patch: p.patch.clone(),
                path: p.path.clone(),
                target: p.target.clone().unwrap_or_default(),
            })
            .collect(),
        replicas: k
            .replicas
            .iter()
            .map(|r| KustomizeReplica {
                name: r.name.clone(),
                count: r.count.into(),
            })
            .collect(),
        components: k.components.clone(),
        substitute: k.substitute.clone(),
    };
    let mut renderer = KustomizeRenderer::new(options);
    renderer.binary = tools.kustomize_bin.clone();
    renderer.helm_bin = tools.helm_bin.clone();
    renderer
}

fn helm(r: &Resolver<'_>, tools: &Tools, env: &EnvironmentConfig, h: &HelmConfig) -> HelmRenderer {
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
    let mut renderer = HelmRenderer::new(options);
    renderer.binary = match &h.binary {
        Some(p) => Some(r.program(p)),
        None => tools.helm_bin.clone(),
    };
    if let Some(t) = h.timeout {
        renderer.timeout = t.0;
    }
    renderer
}

fn command(c: &RenderConfig) -> CommandRenderer {
    let mut renderer = CommandRenderer::new(c.command.iter().cloned());
    renderer.shell = c.shell;
    if let Some(t) = c.timeout {
        renderer.timeout = t.0;
    }
    if let Some(m) = c.max_output {
        renderer.max_output = m;
    }
    renderer.pass_env = c.pass_env.clone();
    renderer.allow_network = c.allow_network;
    renderer
}

/// What resolving an environment takes besides the environment: the file's folder and what
/// every environment shares. Kept in the [`DiscoveryPlan`] for the environments discovered
/// later.
#[derive(Clone, Debug)]
pub(crate) struct Shared {
    base: PathBuf,
    tools: Tools,
}

/// The `discover:` section: paths resolved, defaults applied (Argo CD's namespace `argocd`,
/// Flux in every namespace, the default kubeconfig).
fn discovery(r: &Resolver<'_>, tools: &Tools, d: &DiscoverConfig) -> DiscoveryPlan {
    let live =
        |kubeconfig: &Option<PathBuf>, context: &Option<String>, in_cluster: bool| LiveConfig {
            kubeconfig: kubeconfig.as_ref().map(|p| r.path(p)),
            context: context.clone(),
            in_cluster,
            dump: None,
        };
    let home = d
        .cluster
        .as_ref()
        .map(|c| live(&c.kubeconfig, &c.context, c.in_cluster))
        .unwrap_or_default();
    let mut ctx = DiscoveryContext {
        names: d
            .names
            .iter()
            .map(|n| (n.discovered.clone(), n.name.clone()))
            .collect(),
        plugins: d
            .plugins
            .iter()
            .map(|p| (p.name.clone(), p.render.clone()))
            .collect(),
        git_credentials: d
            .git_credentials
            .iter()
            .map(|c| GitCredential {
                url_prefix: c.url_prefix.clone(),
                token_env: c.token_env.clone(),
                ssh_key: c.ssh_key.as_ref().map(|p| r.path(p)),
            })
            .collect(),
        ..DiscoveryContext::default()
    };
    for c in &d.clusters {
        let to = live(&c.kubeconfig, &c.context, c.in_cluster);
        if let Some(server) = &c.server {
            let server = server.trim_end_matches('/').to_owned();
            ctx.clusters.servers.insert(server, to);
        } else if let Some(name) = &c.name {
            ctx.clusters.names.insert(name.clone(), to);
        } else if let Some(key) = c.kube_config_secret.as_deref().and_then(object_key) {
            ctx.clusters.kubeconfig_secrets.insert(key, to);
        } else if let Some(key) = c.kube_config_config_map.as_deref().and_then(object_key) {
            ctx.clusters.kubeconfig_config_maps.insert(key, to);
        }
    }
    ctx.clusters.home = home.clone();
    let selector = d.filters.selector.clone().filter(|s| !s.trim().is_empty());
    // an invalid selector is validation's to report; resolution never fails
    ctx.filters.selector = selector
        .as_deref()
        .and_then(|s| driftguard_core::admission::LabelSelector::parse(s).ok());
    ctx.filters.projects = d.filters.projects.clone();
    ctx.filters.namespaces = d.filters.namespaces.clone();
    let argocd = (d.argocd.enabled != Some(false)).then(|| {
        let namespace = d
            .argocd
            .namespace
            .clone()
            .unwrap_or_else(|| "argocd".into());
        let namespaces = if d.argocd.namespaces.is_empty() {
            vec![namespace.clone()]
        } else {
            d.argocd.namespaces.clone()
        };
        ArgoCdReads {
            namespace,
            namespaces,
        }
    });
    ctx.argocd_namespace = argocd.as_ref().map(|a| a.namespace.clone());
    DiscoveryPlan {
        cluster: KubeConfigSpec {
            kubeconfig: home.kubeconfig,
            context: home.context,
            in_cluster: home.in_cluster,
        },
        argocd,
        flux: (d.flux.enabled != Some(false)).then(|| d.flux.namespaces.clone()),
        read_secrets: d.read_secrets,
        selector,
        context: ctx,
        defaults: d.defaults.clone(),
        shared: Shared {
            base: r.base.to_path_buf(),
            tools: tools.clone(),
        },
    }
}

/// `<namespace>/<name>`.
pub(super) fn object_key(text: &str) -> Option<ObjectKey> {
    let (namespace, name) = text.split_once('/')?;
    (!namespace.is_empty() && !name.is_empty() && !name.contains('/'))
        .then(|| ObjectKey::new(namespace, name))
}

impl DiscoveryPlan {
    /// The plan of a discovered environment, made as the file's environments are (paths
    /// resolved against the file's folder, the shared binaries, caches and limits), with the
    /// section's `defaults` given to it first.
    pub fn environment(&self, discovered: &EnvironmentConfig) -> EnvironmentPlan {
        let mut env = discovered.clone();
        let d = &self.defaults;
        env.ignore.extend(d.ignore.iter().cloned());
        env.severity.extend(d.severity.iter().cloned());
        if d.findings != driftguard_core::findings::FindingRules::default() {
            env.findings = d.findings.clone();
        }
        if let Some(on) = d.server_side_diff {
            env.server_side_diff = on;
        }
        if d.hpa_owns_replicas.is_some() {
            env.hpa_owns_replicas = d.hpa_owns_replicas;
        }
        if d.audit.is_some() {
            env.audit.clone_from(&d.audit);
        }
        let r = Resolver {
            base: &self.shared.base,
        };
        environment(&r, &self.shared.tools, &env)
    }
}
