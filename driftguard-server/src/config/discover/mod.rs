//! Environments discovered from a cluster: Argo CD `Application`s ([`argocd`]) and Flux
//! `Kustomization`s and `HelmRelease`s ([`flux`]) turned into [`EnvironmentConfig`]s, so
//! that their users configure nothing. Each environment comes with the tool's own view of it
//! ([`DiscoveredApp`]: project, labels, sync and health, or Flux's `Ready` condition) and with
//! every part of the tool's object that cannot be mapped, named ([`Problem`]): nothing is left
//! out silently.
//!
//! No IO here. The caller reads the objects in one batch (the Applications, `argocd-cm`, the
//! Flux objects and sources, the ConfigMaps and Secrets that [`flux::references`] names),
//! hands them in with a [`DiscoveryContext`] (destination clusters, plugin commands, Git
//! credentials, name overrides, filters), and gets [`Discovered`] values back.
//!
//! ```no_run
//! use driftguard_server::config::discover::{argocd, DiscoveryContext};
//! # let applications: Vec<serde_json::Value> = Vec::new();
//! let ctx = DiscoveryContext::default();
//! for found in argocd::map_applications(&applications, &ctx) {
//!     for problem in &found.problems {
//!         eprintln!("{}/{}: {problem}", found.app.namespace, found.app.name);
//!     }
//! }
//! ```
//!
//! The mapping, field by field, and what is not supported: `docs/argocd-flux.md`.
//!
//! The files: `argocd/` (Applications in `mod`, the four kinds of source in `renderers`, the
//! `ARGOCD_APP_*` build environment in `build_env`, `argocd-cm` in `settings`), `flux/`
//! (Kustomizations and what Flux objects share in `mod`, `git_repository`, `helm_release`),
//! `jq` (Argo CD's jq paths as JSON pointers), `context` (what the caller hands in), `read`
//! (reading the objects, collecting problems), `changes` (what changed between two
//! discoveries, and which watch events can change anything).

pub mod argocd;
mod changes;
mod context;
pub mod flux;
mod jq;
mod read;
mod verdict;

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use driftguard_core::ignore::{IgnoreRule, JsonPointer};
use driftguard_core::selector::ObjectSelector;
use serde_json::Value;

pub use argocd::ArgoCdSettings;
pub use changes::{changes, fingerprint, Changes};
pub use context::{
    Clusters, DiscoveryContext, Filters, GitCredential, ObjectKey, SecretData, IN_CLUSTER_NAME,
    IN_CLUSTER_SERVER,
};
pub use verdict::{verdict_fields, ToolEvent, ToolVerdict, EVENT_KINDS, MESSAGE_LIMIT};

use super::{EnvironmentConfig, GitConfig, InlineValues};
use read::{strings, Problems};

/// The deployment tool an environment was discovered from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tool {
    /// Argo CD (`argoproj.io/v1alpha1` Applications).
    ArgoCd,
    /// Flux (`kustomize.toolkit.fluxcd.io/v1` Kustomizations, `helm.toolkit.fluxcd.io/v2`
    /// HelmReleases).
    Flux,
}

/// The tool's object an environment was discovered from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoveredApp {
    /// The tool.
    pub tool: Tool,
    /// `Application`, `Kustomization` or `HelmRelease`.
    pub kind: String,
    /// The object's namespace.
    pub namespace: String,
    /// The object's name.
    pub name: String,
    /// The index in `spec.sources` of the source this environment renders (a multi-source
    /// Application with several rendering sources gives one environment each).
    pub source: Option<usize>,
    /// Argo CD `spec.project` (`default` when empty).
    pub project: Option<String>,
    /// The object's labels.
    pub labels: BTreeMap<String, String>,
    /// The tool's own verdict ([`ToolVerdict::read`]).
    pub verdict: ToolVerdict,
}

/// A part of the tool's object that DriftGuard does not map, or maps differently.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The field at fault, in the tool's object (`spec.source.helm.fileParameters[0]`), or
    /// in the ConfigMap it comes from (`argocd-cm.data[...]`).
    pub field: String,
    /// What is wrong or left out, and what it means for the comparison.
    pub message: String,
    /// Whether no environment could be made because of it (the source cannot be fetched, the
    /// cluster is not known, ...); otherwise the environment is made without that part.
    pub blocking: bool,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// One environment discovered from one of the tool's objects, or the reasons there is none.
#[derive(Clone, PartialEq)]
pub struct Discovered {
    /// The tool's object.
    pub app: DiscoveredApp,
    /// The environment; `None` when a blocking problem stopped it.
    pub environment: Option<EnvironmentConfig>,
    /// What is not mapped, in the order found.
    pub problems: Vec<Problem>,
    /// Fields of `environment` that hold values read from Secrets
    /// (`kustomize.substitute.DB_PASSWORD`, `helm.values`): never print, store or send them;
    /// [`Discovered::redacted`] replaces them. `Debug` shows them redacted.
    pub secret_fields: Vec<String>,
}

impl Discovered {
    fn new(app: DiscoveredApp, environment: EnvironmentConfig, p: Problems) -> Self {
        let blocked = p.blocked();
        Discovered {
            app,
            environment: (!blocked).then_some(environment),
            problems: p.into_vec(),
            secret_fields: Vec::new(),
        }
    }

    /// The environment's name, if there is one.
    pub fn name(&self) -> Option<&str> {
        self.environment.as_ref().map(|e| e.name.as_str())
    }

    /// The values of [`Discovered::secret_fields`], to be cut out of text that may quote them
    /// (the tool's messages, [`ToolVerdict::read`]): each substituted variable read from a
    /// Secret, and every string of at least [`SECRET_VALUE_MIN`] characters in Helm values
    /// that took a Secret's (they are merged: which came from the Secret is not known).
    pub fn secret_values(&self) -> Vec<String> {
        match &self.environment {
            Some(env) => secret_values(env, &self.secret_fields),
            None => Vec::new(),
        }
    }

    /// A copy whose Secret values (the [`Discovered::secret_fields`]) are replaced by
    /// `<redacted>`: for showing or storing the configuration.
    pub fn redacted(&self) -> Discovered {
        let mut out = self.clone();
        if let Some(env) = &mut out.environment {
            for field in &self.secret_fields {
                if field == "helm.values" {
                    if let Some(h) = &mut env.helm {
                        h.values = Some(InlineValues::Text(REDACTED.into()));
                    }
                } else if let Some(name) = field.strip_prefix("kustomize.substitute.") {
                    if let Some(v) = env
                        .kustomize
                        .as_mut()
                        .and_then(|k| k.substitute.get_mut(name))
                    {
                        REDACTED.clone_into(v);
                    }
                }
            }
        }
        out
    }
}

const REDACTED: &str = driftguard_core::secret::REDACTED_TEXT;

/// The values of `env`'s `secret_fields` (see [`Discovered::secret_values`]).
pub fn secret_values(env: &EnvironmentConfig, secret_fields: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for field in secret_fields {
        if field == "helm.values" {
            match env.helm.as_ref().and_then(|h| h.values.as_ref()) {
                Some(InlineValues::Object(map)) => {
                    for v in map.values() {
                        strings_in(v, &mut out);
                    }
                }
                Some(InlineValues::Text(text)) => out.push(text.clone()),
                None => {}
            }
        } else if let Some(name) = field.strip_prefix("kustomize.substitute.") {
            if let Some(v) = env.kustomize.as_ref().and_then(|k| k.substitute.get(name)) {
                out.push(v.clone());
            }
        }
    }
    out.retain(|v| !v.is_empty());
    out
}

/// The shortest string of Helm values taken from a Secret that is cut out of the tool's
/// messages (shorter ones, `true`, `1`, are everywhere in a message).
pub const SECRET_VALUE_MIN: usize = 4;

/// The strings of `v` of at least [`SECRET_VALUE_MIN`] characters.
fn strings_in(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) if s.chars().count() >= SECRET_VALUE_MIN => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|i| strings_in(i, out)),
        Value::Object(map) => map.values().for_each(|i| strings_in(i, out)),
        _ => {}
    }
}

impl fmt::Debug for Discovered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = self.redacted();
        f.debug_struct("Discovered")
            .field("app", &shown.app)
            .field("environment", &shown.environment)
            .field("problems", &shown.problems)
            .field("secret_fields", &shown.secret_fields)
            .finish()
    }
}

/// A default environment name from its parts (`argocd`, `shop`; `flux`, `apps`, `podinfo`),
/// joined by `.` (`argocd.shop`, `flux.apps.podinfo`). Not `/`: an environment's name is a path
/// segment of the API (`/api/v1/environments/{name}`), of the dashboard's links and of the
/// store's keys, and names keep to letters, digits, `-`, `_` and `.` there; a `.` is in no
/// tool's namespace prefix, and the names stay unique (duplicates are refused by [`dedupe`]).
/// The one place the scheme is written: the names are the keys of [`DiscoveryContext::names`].
pub fn default_name(parts: &[&str]) -> String {
    parts.join(".")
}

/// Makes environment names unique: an environment whose name an earlier one already has is
/// dropped with a blocking problem naming both objects (give one a name in
/// [`DiscoveryContext::names`]). Run it over everything discovered, from both tools.
pub fn dedupe(found: &mut [Discovered]) {
    let mut seen: HashMap<String, String> = HashMap::new();
    for d in found.iter_mut() {
        let Some(name) = d.name().map(str::to_owned) else {
            continue;
        };
        let this = format!("{} {}/{}", d.app.kind, d.app.namespace, d.app.name);
        match seen.get(&name) {
            Some(first) => {
                d.environment = None;
                d.problems.push(Problem {
                    field: "metadata.name".into(),
                    message: format!(
                        "the environment name `{name}` is already taken by {first}: give one of them another name in the discovery name map"
                    ),
                    blocking: true,
                });
            }
            None => {
                seen.insert(name, this);
            }
        }
    }
}

/// The Git side of an environment: the URL, the reference, the folder, and the credentials
/// the caller configured for the URL.
fn git_config(
    url: &str,
    reference: Option<String>,
    path: Option<String>,
    ctx: &DiscoveryContext,
) -> GitConfig {
    let credential = ctx.credential(url);
    GitConfig {
        url: url.to_owned(),
        reference,
        path,
        token_env: credential.and_then(|c| c.token_env.clone()),
        ssh_key: credential.and_then(|c| c.ssh_key.clone()),
        ..GitConfig::default()
    }
}

/// An ignore rule from the fields Argo CD's `ignoreDifferences` entries and `argocd-cm`
/// overrides share: `jsonPointers`, `jqPathExpressions` (the plain paths, as pointers) and
/// `managedFieldsManagers`. `None` when nothing is left to ignore.
fn ignore_paths(
    selector: ObjectSelector,
    entry: &Value,
    at: &str,
    p: &mut Problems,
) -> Option<IgnoreRule> {
    let mut json_pointers = Vec::new();
    for (i, text) in strings(entry, "jsonPointers", at, p)
        .into_iter()
        .enumerate()
    {
        match JsonPointer::parse(&text) {
            Ok(ptr) => json_pointers.push(ptr),
            Err(e) => p.note(
                format!("{at}.jsonPointers[{i}]"),
                format!("{e}: not ignored, differences there are reported"),
            ),
        }
    }
    for (i, expression) in strings(entry, "jqPathExpressions", at, p)
        .into_iter()
        .enumerate()
    {
        match jq::to_pointer(&expression) {
            Ok(ptr) => json_pointers.push(ptr),
            Err(why) => p.note(
                format!("{at}.jqPathExpressions[{i}]"),
                format!("`{expression}` {why}: not ignored, differences there are reported"),
            ),
        }
    }
    let managed_fields_managers = strings(entry, "managedFieldsManagers", at, p);
    if json_pointers.is_empty() && managed_fields_managers.is_empty() {
        return None;
    }
    Some(IgnoreRule {
        selector,
        json_pointers,
        managed_fields_managers,
    })
}

#[cfg(test)]
mod tests;
