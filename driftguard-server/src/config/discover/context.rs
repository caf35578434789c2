//! What the caller hands to discovery besides the tools' objects: where each destination
//! cluster is reached, which plugin runs which command, Git credentials, the ConfigMaps and
//! Secrets the objects name, the Flux sources, the name overrides and the filters.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;

use base64::Engine as _;
use driftguard_core::admission::LabelSelector;
use serde_json::Value;

use super::argocd::ArgoCdSettings;
use super::read::{as_map, get, Meta};
use super::Tool;
use crate::config::{LiveConfig, RenderConfig};

/// A namespaced object's namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// The namespace.
    pub namespace: String,
    /// The name.
    pub name: String,
}

impl ObjectKey {
    /// A key.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ObjectKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Argo CD's name for the cluster it runs in.
pub const IN_CLUSTER_SERVER: &str = "https://kubernetes.default.svc";
/// Argo CD's default name of the cluster it runs in.
pub const IN_CLUSTER_NAME: &str = "in-cluster";

/// Where each cluster a tool deploys to is reached by DriftGuard. DriftGuard never uses the
/// tools' own cluster credentials (Argo CD's cluster Secrets, Flux's kubeconfig Secrets): a
/// destination is a context of DriftGuard's own configuration, or it is a problem.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Clusters {
    /// The cluster discovery read the objects from: Argo CD's `https://kubernetes.default.svc`
    /// and `in-cluster`, and Flux objects without `spec.kubeConfig`.
    pub home: LiveConfig,
    /// Argo CD `spec.destination.server` URLs (without a trailing `/`).
    pub servers: BTreeMap<String, LiveConfig>,
    /// Argo CD `spec.destination.name` cluster names.
    pub names: BTreeMap<String, LiveConfig>,
    /// Flux `spec.kubeConfig.secretRef`: the Secret holding the kubeconfig.
    pub kubeconfig_secrets: BTreeMap<ObjectKey, LiveConfig>,
    /// Flux `spec.kubeConfig.configMapRef`: the ConfigMap naming the cluster.
    pub kubeconfig_config_maps: BTreeMap<ObjectKey, LiveConfig>,
}

impl Clusters {
    /// The cluster of an Argo CD destination URL: a mapped URL, else the home cluster for
    /// `https://kubernetes.default.svc`.
    pub fn server(&self, server: &str) -> Option<LiveConfig> {
        let server = server.trim_end_matches('/');
        self.servers.get(server).cloned().or_else(|| {
            (server == IN_CLUSTER_SERVER.trim_end_matches('/')).then(|| self.home.clone())
        })
    }

    /// The cluster of an Argo CD destination name: a mapped name, else the home cluster for
    /// `in-cluster`.
    pub fn name(&self, name: &str) -> Option<LiveConfig> {
        self.names
            .get(name)
            .cloned()
            .or_else(|| (name == IN_CLUSTER_NAME).then(|| self.home.clone()))
    }
}

/// Credentials for the repositories whose URL starts with `url_prefix` (the longest prefix
/// wins), by reference: the names of an environment variable or a key file, never a secret.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GitCredential {
    /// `https://github.com/acme/`, `git@github.com:acme/`.
    pub url_prefix: String,
    /// `git.tokenEnv` of the environments on those repositories.
    pub token_env: Option<String>,
    /// `git.sshKey` of the environments on those repositories.
    pub ssh_key: Option<PathBuf>,
}

/// Which of the tools' objects are turned into environments.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Filters {
    /// The objects' labels must match (Argo CD Applications, Flux Kustomizations and
    /// HelmReleases alike).
    pub selector: Option<LabelSelector>,
    /// Argo CD projects (`spec.project`; empty: all). Flux objects have none: a projects
    /// filter leaves them all out.
    pub projects: Vec<String>,
    /// Namespaces of the tools' objects themselves (`metadata.namespace`; empty: all).
    pub namespaces: Vec<String>,
}

impl Filters {
    /// Whether the object is discovered.
    pub fn admits(&self, tool: Tool, object: &Value) -> bool {
        let meta = Meta::read(object);
        if !self.namespaces.is_empty() && !self.namespaces.contains(&meta.namespace) {
            return false;
        }
        if let Some(selector) = &self.selector {
            let labels = object
                .get("metadata")
                .and_then(|m| m.get("labels"))
                .and_then(Value::as_object);
            if !selector.matches(labels) {
                return false;
            }
        }
        if self.projects.is_empty() {
            return true;
        }
        match tool {
            Tool::ArgoCd => {
                let project = object
                    .get("spec")
                    .and_then(|s| s.get("project"))
                    .and_then(Value::as_str)
                    .filter(|p| !p.is_empty())
                    .unwrap_or("default");
                self.projects.iter().any(|p| p == project)
            }
            Tool::Flux => false,
        }
    }
}

/// The data of a Secret, decoded: its `Debug` shows the keys only, and nothing here ever puts
/// a value into a problem or a message.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretData {
    values: BTreeMap<String, String>,
    undecodable: BTreeSet<String>,
}

impl SecretData {
    /// Values by key, already decoded.
    pub fn new(values: BTreeMap<String, String>) -> Self {
        SecretData {
            values,
            undecodable: BTreeSet::new(),
        }
    }

    /// A Secret as the API server returns it: `data` is base64 (keys whose value is not
    /// base64 of UTF-8 text are kept as undecodable), `stringData` (only ever in manifests)
    /// is taken as is.
    pub fn from_object(secret: &Value) -> Self {
        let mut out = SecretData::default();
        if let Some(data) = get(secret, "data") {
            for (k, v) in as_map(data) {
                let text = v
                    .as_str()
                    .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
                    .and_then(|bytes| String::from_utf8(bytes).ok());
                match text {
                    Some(t) => {
                        out.values.insert(k.clone(), t);
                    }
                    None => {
                        out.undecodable.insert(k.clone());
                    }
                }
            }
        }
        if let Some(data) = get(secret, "stringData") {
            for (k, v) in as_map(data) {
                if let Some(s) = v.as_str() {
                    out.values.insert(k.clone(), s.to_owned());
                }
            }
        }
        out
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// Every key with a value, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Keys whose value is not UTF-8 text.
    pub fn undecodable(&self) -> impl Iterator<Item = &str> {
        self.undecodable.iter().map(String::as_str)
    }

    /// Whether `key` is there but its value is not UTF-8 text.
    pub fn is_undecodable(&self, key: &str) -> bool {
        self.undecodable.contains(key)
    }
}

impl fmt::Debug for SecretData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretData")
            .field("keys", &self.values.keys().collect::<Vec<_>>())
            .field("undecodable", &self.undecodable)
            .finish()
    }
}

/// Everything discovery needs besides the tools' objects. Build it from the configuration
/// and from objects read in one batch ([`DiscoveryContext::add_object`]); mapping reads
/// nothing else.
#[derive(Clone, Debug, Default)]
pub struct DiscoveryContext {
    /// Environment names by their default name (`argocd.shop` → `shop-prod`).
    pub names: BTreeMap<String, String>,
    /// The command rendering each Argo CD config management plugin, by the name an
    /// Application gives in `spec.source.plugin.name`.
    pub plugins: BTreeMap<String, RenderConfig>,
    /// Where each destination cluster is reached.
    pub clusters: Clusters,
    /// Argo CD's system-wide settings (`argocd-cm`, `argocd-cmd-params-cm`).
    pub argocd: ArgoCdSettings,
    /// The namespace of Argo CD's control plane (default `argocd`): Applications elsewhere
    /// ("apps in any namespace") are named `argocd.<namespace>.<name>`.
    pub argocd_namespace: Option<String>,
    /// Git credentials by URL prefix.
    pub git_credentials: Vec<GitCredential>,
    /// ConfigMaps' `data` (Flux `substituteFrom` and `valuesFrom`).
    pub config_maps: BTreeMap<ObjectKey, BTreeMap<String, String>>,
    /// Secrets' data (Flux `substituteFrom` and `valuesFrom`).
    pub secrets: BTreeMap<ObjectKey, SecretData>,
    /// Flux `GitRepository` objects.
    pub git_repositories: BTreeMap<ObjectKey, Value>,
    /// Flux `HelmChart` objects (`spec.chartRef` of HelmReleases).
    pub helm_charts: BTreeMap<ObjectKey, Value>,
    /// Which objects are discovered.
    pub filters: Filters,
}

impl DiscoveryContext {
    /// Keeps an object the tools' objects refer to: a ConfigMap, a Secret, a Flux
    /// `GitRepository` or `HelmChart`. Whether it was one of those.
    pub fn add_object(&mut self, object: &Value) -> bool {
        let api_version = object
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        let kind = object
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let meta = Meta::read(object);
        let key = ObjectKey::new(meta.namespace, meta.name);
        match (group, kind) {
            ("", "ConfigMap") => {
                let data = get(object, "data")
                    .map(as_map)
                    .into_iter()
                    .flatten()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect();
                self.config_maps.insert(key, data);
            }
            ("", "Secret") => {
                self.secrets.insert(key, SecretData::from_object(object));
            }
            ("source.toolkit.fluxcd.io", "GitRepository") => {
                self.git_repositories.insert(key, object.clone());
            }
            ("source.toolkit.fluxcd.io", "HelmChart") => {
                self.helm_charts.insert(key, object.clone());
            }
            _ => return false,
        }
        true
    }

    /// The credentials for `url`: the longest matching prefix.
    pub(super) fn credential(&self, url: &str) -> Option<&GitCredential> {
        self.git_credentials
            .iter()
            .filter(|c| !c.url_prefix.is_empty() && url.starts_with(&c.url_prefix))
            .max_by_key(|c| c.url_prefix.len())
    }

    /// The environment name for a default name.
    pub(super) fn name(&self, default: &str) -> String {
        self.names
            .get(default)
            .cloned()
            .unwrap_or_else(|| default.to_owned())
    }

    pub(super) fn argocd_namespace(&self) -> &str {
        self.argocd_namespace.as_deref().unwrap_or("argocd")
    }
}
