//! Argo CD `Application`s (`argoproj.io/v1alpha1`) as environments: the source (Git folder,
//! Helm chart folder, kustomization, plugin), the destination cluster and namespace, and the
//! `ignoreDifferences`, with the meaning Argo CD's repo server and controller give them
//! (`reposerver/repository`, `util/argo/normalizers`).
//!
//! One environment per Application, named `argocd.<name>` (`argocd.<namespace>.<name>` for an
//! Application outside Argo CD's own namespace). A multi-source Application gives one
//! environment per source that renders objects, named `argocd.<name>.<index>`: the sources
//! with only a `ref` provide `$ref/...` value files to the Helm sources.

mod build_env;
mod renderers;
mod settings;

use std::collections::BTreeMap;

use driftguard_core::ignore::IgnoreRule;
use driftguard_core::selector::ObjectSelector;
use serde_json::{json, Value};

pub use settings::ArgoCdSettings;

use build_env::BuildEnv;
use renderers::{directory, helm, kustomize, plugin, HelmScope};

use super::read::{
    at, folder, get, list, object, status_string, string, unknown_keys, Meta, Problems,
};
use super::{
    dedupe, default_name, git_config, ignore_paths, Discovered, DiscoveredApp, DiscoveryContext,
    Tool, ToolVerdict,
};
use crate::config::{
    EnvironmentConfig, GitConfig, HelmConfig, KustomizeConfig, LiveConfig, RenderConfig,
};

/// Every Application the filters admit, mapped, with names made unique ([`dedupe`]).
pub fn map_applications(applications: &[Value], ctx: &DiscoveryContext) -> Vec<Discovered> {
    let mut out: Vec<Discovered> = applications
        .iter()
        .filter(|a| ctx.filters.admits(Tool::ArgoCd, a))
        .flat_map(|a| map_application(a, ctx))
        .collect();
    dedupe(&mut out);
    out
}

/// The environments of one Application: one, or one per rendering source of a multi-source
/// Application; a single one without environment when a blocking problem stops it.
pub fn map_application(application: &Value, ctx: &DiscoveryContext) -> Vec<Discovered> {
    let meta = Meta::read(application);
    let spec = get(application, "spec").unwrap_or(&Value::Null);
    let status = get(application, "status").unwrap_or(&Value::Null);
    let mut p = Problems::default();
    unknown_keys(
        spec,
        "spec",
        &[
            "source",
            "sources",
            "sourceHydrator",
            "destination",
            "project",
            "ignoreDifferences",
        ],
        &["syncPolicy", "info", "revisionHistoryLimit"],
        &mut p,
    );
    let project = string(spec, "project", "spec", &mut p).unwrap_or_else(|| "default".into());
    let in_home = meta.namespace.is_empty() || meta.namespace == ctx.argocd_namespace();
    let base_name = if in_home {
        default_name(&["argocd", &meta.name])
    } else {
        default_name(&["argocd", &meta.namespace, &meta.name])
    };
    // Argo CD's instance name: ARGOCD_APP_NAME of the build environment
    let instance = if in_home {
        meta.name.clone()
    } else {
        format!("{}_{}", meta.namespace, meta.name)
    };
    let app = DiscoveredApp {
        tool: Tool::ArgoCd,
        kind: "Application".into(),
        namespace: meta.namespace.clone(),
        name: meta.name.clone(),
        source: None,
        project: Some(project.clone()),
        labels: meta.labels.clone(),
        verdict: ToolVerdict::read(Tool::ArgoCd, "Application", application, None, &[]),
    };

    let destination = get(spec, "destination").unwrap_or(&Value::Null);
    unknown_keys(
        destination,
        "spec.destination",
        &["server", "name", "namespace"],
        &[],
        &mut p,
    );
    let dest_ns = string(destination, "namespace", "spec.destination", &mut p);
    let live = cluster(destination, ctx, &mut p).unwrap_or_default();
    let mut ignore = ignore_differences(spec, &mut p);
    ignore.extend(ctx.argocd.ignore.iter().cloned());
    let server_side_diff = compare_options(&meta.annotations, ctx.argocd.server_side_diff);

    let sources = sources(spec, &mut p);
    let refs = ref_sources(&sources, &mut p);
    let rendering: Vec<&Source> = sources.iter().filter(|s| !s.only_ref()).collect();
    if rendering.is_empty() {
        if !sources.is_empty() {
            p.block(
                "spec.sources",
                "no source renders objects (every one only has a `ref`)",
            );
        }
        let env = EnvironmentConfig {
            name: ctx.name(&base_name),
            ..EnvironmentConfig::default()
        };
        return vec![Discovered::new(app, env, p)];
    }
    let multi = rendering.len() > 1;
    let status_types = status_types(status, sources.len(), rendering.len());
    rendering
        .iter()
        .enumerate()
        .map(|(position, source)| {
            let mut sp = p.clone();
            let env_name = match (multi, source.index) {
                (true, Some(i)) => default_name(&[&base_name, &i.to_string()]),
                _ => base_name.clone(),
            };
            let status_type = status_types.as_ref().and_then(|t| match source.index {
                Some(i) if t.len() == sources.len() => t.get(i).cloned().flatten(),
                _ => t.get(position).cloned().flatten(),
            });
            let revision = match source.index {
                Some(i) => status
                    .get("sync")
                    .and_then(|s| s.get("revisions"))
                    .and_then(|r| r.get(i))
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                None => status_string(status, &["sync", "revision"]),
            };
            let env = BuildEnv::new(&instance, &project, dest_ns.as_deref(), &source.value);
            let app_source = AppSource {
                name: &meta.name,
                dest_ns: dest_ns.as_deref(),
                refs: &refs,
                env: &env,
                status_type,
                status_revision: revision.as_deref(),
            };
            let mapped = map_source(source, &app_source, ctx, &mut sp);
            let orphan_kinds = multi.then(|| {
                sp.note(
                    "spec.sources",
                    format!(
                        "{} sources render objects: one environment each; orphans are not looked for in them (each would take the others' objects for orphans)",
                        rendering.len()
                    ),
                );
                Vec::new()
            });
            let mut this = app.clone();
            this.source = source.index;
            this.verdict = ToolVerdict::read(Tool::ArgoCd, "Application", application, source.index, &[]);
            let default_namespace = if mapped.helm.is_some() {
                None
            } else {
                dest_ns.clone()
            };
            let environment = EnvironmentConfig {
                name: ctx.name(&env_name),
                git: mapped.git,
                helm: mapped.helm,
                kustomize: mapped.kustomize,
                render: mapped.render,
                live: Some(live.clone()),
                default_namespace,
                ignore: ignore.clone(),
                server_side_diff,
                orphan_kinds,
                ..EnvironmentConfig::default()
            };
            Discovered::new(this, environment, sp)
        })
        .collect()
}

/// One entry of `spec.sources` (or `spec.source`, or the sync source of a source hydrator).
struct Source {
    /// The index in `spec.sources`.
    index: Option<usize>,
    /// Where it is, for problems (`spec.sources[1]`).
    field: String,
    value: Value,
}

impl Source {
    fn text(&self, key: &str) -> Option<&str> {
        get(&self.value, key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }

    /// A source that only provides files to others (`ref` without `path` or `chart`).
    fn only_ref(&self) -> bool {
        self.index.is_some()
            && self.text("ref").is_some()
            && self.text("path").is_none()
            && self.text("chart").is_none()
    }
}

fn sources(spec: &Value, p: &mut Problems) -> Vec<Source> {
    if let Some(h) = object(spec, "sourceHydrator", "spec", p) {
        // what Argo CD syncs from: the hydrated folder of the sync branch (GetSyncSource)
        let dry = get(h, "drySource").unwrap_or(&Value::Null);
        let sync = get(h, "syncSource").unwrap_or(&Value::Null);
        return vec![Source {
            index: None,
            field: "spec.sourceHydrator".into(),
            value: json!({
                "repoURL": get(dry, "repoURL").cloned().unwrap_or(Value::Null),
                "path": get(sync, "path").cloned().unwrap_or(Value::Null),
                "targetRevision": get(sync, "targetBranch").cloned().unwrap_or(Value::Null),
            }),
        }];
    }
    let many = list(spec, "sources", "spec", p);
    if !many.is_empty() {
        return many
            .iter()
            .enumerate()
            .map(|(i, v)| Source {
                index: Some(i),
                field: format!("spec.sources[{i}]"),
                value: v.clone(),
            })
            .collect();
    }
    match object(spec, "source", "spec", p) {
        Some(v) => vec![Source {
            index: None,
            field: "spec.source".into(),
            value: v.clone(),
        }],
        None => {
            p.block("spec", "has no source");
            Vec::new()
        }
    }
}

/// A source with a `ref`, by `$ref`.
struct RefSource {
    repo: String,
    revision: Option<String>,
}

fn ref_sources(sources: &[Source], p: &mut Problems) -> BTreeMap<String, RefSource> {
    let mut refs = BTreeMap::new();
    for s in sources.iter().filter(|s| s.index.is_some()) {
        let Some(name) = s.text("ref") else { continue };
        let Some(repo) = s.text("repoURL") else {
            p.note(&s.field, "has a `ref` but no `repoURL`");
            continue;
        };
        refs.insert(
            format!("${name}"),
            RefSource {
                repo: repo.to_owned(),
                revision: git_revision(s.text("targetRevision")),
            },
        );
    }
    refs
}

/// `status.sourceTypes` (or `status.sourceType`), when it can be matched to the sources.
fn status_types(status: &Value, sources: usize, rendering: usize) -> Option<Vec<Option<String>>> {
    if let Some(types) = get(status, "sourceTypes").and_then(Value::as_array) {
        if types.len() == sources || types.len() == rendering {
            return Some(
                types
                    .iter()
                    .map(|t| t.as_str().map(str::to_owned))
                    .collect(),
            );
        }
        return None;
    }
    status_string(status, &["sourceType"]).map(|t| vec![Some(t)])
}

/// What a source renders with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SourceType {
    Helm,
    Kustomize,
    Directory,
    Plugin,
    /// Neither the Application nor its status says: Argo CD looks at the folder.
    Unknown,
}

/// The Application's context a source is mapped in.
struct AppSource<'a> {
    name: &'a str,
    dest_ns: Option<&'a str>,
    refs: &'a BTreeMap<String, RefSource>,
    env: &'a BuildEnv,
    status_type: Option<String>,
    status_revision: Option<&'a str>,
}

#[derive(Default)]
struct Mapped {
    git: Option<GitConfig>,
    helm: Option<HelmConfig>,
    kustomize: Option<KustomizeConfig>,
    render: Option<RenderConfig>,
}

fn map_source(
    source: &Source,
    app: &AppSource<'_>,
    ctx: &DiscoveryContext,
    p: &mut Problems,
) -> Mapped {
    let f = source.field.as_str();
    let v = &source.value;
    unknown_keys(
        v,
        f,
        &[
            "repoURL",
            "path",
            "targetRevision",
            "helm",
            "kustomize",
            "directory",
            "plugin",
            "chart",
            "ref",
        ],
        // `tagPrefix` only narrows a version range, which Argo CD resolves (status)
        &["name", "tagPrefix"],
        p,
    );
    let mut out = Mapped::default();
    let Some(repo) = string(v, "repoURL", f, p) else {
        p.block(at(f, "repoURL"), "is not set");
        return out;
    };
    if let Some(chart) = string(v, "chart", f, p) {
        p.block(
            at(f, "chart"),
            format!(
                "chart `{chart}` from a Helm repository ({repo}) cannot be fetched: DriftGuard renders charts that are folders of a Git repository"
            ),
        );
        return out;
    }
    if repo.starts_with("oci://") {
        p.block(
            at(f, "repoURL"),
            format!(
                "an OCI artifact ({repo}) cannot be fetched: DriftGuard reads Git repositories"
            ),
        );
        return out;
    }
    let path = string(v, "path", f, p).and_then(|s| folder(&s));
    let target = string(v, "targetRevision", f, p);
    let reference = match target.as_deref() {
        Some(t) if is_constraint(t) => match app.status_revision {
            Some(resolved) => {
                p.note(
                    at(f, "targetRevision"),
                    format!(
                        "`{t}` is a version range, which DriftGuard does not resolve: the commit Argo CD last resolved ({resolved}) is read until the next discovery"
                    ),
                );
                Some(resolved.to_owned())
            }
            None => {
                p.block(
                    at(f, "targetRevision"),
                    format!("`{t}` is a version range, which DriftGuard does not resolve, and Argo CD has not resolved it yet"),
                );
                return out;
            }
        },
        other => git_revision(other),
    };
    let mut git = git_config(&repo, reference.clone(), path.clone(), ctx);

    let explicit: Vec<(&str, SourceType)> = [
        ("kustomize", SourceType::Kustomize),
        ("helm", SourceType::Helm),
        ("directory", SourceType::Directory),
        ("plugin", SourceType::Plugin),
    ]
    .into_iter()
    .filter(|(k, _)| get(v, k).is_some())
    .collect();
    let kind = match explicit.as_slice() {
        [] => match app.status_type.as_deref() {
            Some("Helm") => SourceType::Helm,
            Some("Kustomize") => SourceType::Kustomize,
            Some("Directory") => SourceType::Directory,
            Some("Plugin") => SourceType::Plugin,
            _ => SourceType::Unknown,
        },
        [(_, t)] => *t,
        many => {
            let names: Vec<&str> = many.iter().map(|(k, _)| *k).collect();
            p.block(
                f,
                format!(
                    "sets {}: Argo CD refuses more than one kind of source",
                    names.join(", ")
                ),
            );
            return out;
        }
    };
    let empty = Value::Object(Default::default());
    let options = |key: &str| get(v, key).unwrap_or(&empty);
    match kind {
        SourceType::Helm => {
            let scope = HelmScope {
                at: at(f, "helm"),
                chart: path.as_deref(),
                repo: &repo,
                revision: reference.as_deref(),
            };
            out.helm = Some(helm(options("helm"), &scope, app, p));
        }
        SourceType::Kustomize => {
            out.kustomize = kustomize(options("kustomize"), &at(f, "kustomize"), app.env, p);
        }
        SourceType::Directory => directory(options("directory"), &at(f, "directory"), &mut git, p),
        SourceType::Plugin => out.render = plugin(options("plugin"), &at(f, "plugin"), ctx, p),
        SourceType::Unknown => {
            p.note(
                f,
                "the source's kind is not known yet (no explicit kind and no status.sourceType): read as a plain folder without subfolders, as Argo CD reads a directory; a Helm chart there would be skipped",
            );
            directory(&empty, &at(f, "directory"), &mut git, p);
        }
    }
    out.git = Some(git);
    out
}

/// `targetRevision` as a Git reference: `HEAD` and empty mean the default branch.
fn git_revision(target: Option<&str>) -> Option<String> {
    target
        .map(str::trim)
        .filter(|t| !t.is_empty() && *t != "HEAD")
        .map(str::to_owned)
}

/// A semantic version range (`1.2.*`, `^1.2`, `>=1.0 <2.0`): characters no Git reference may
/// hold, or a comparison.
fn is_constraint(target: &str) -> bool {
    target.contains(['*', '^', '~', ' ', '|']) || target.starts_with(['>', '<', '='])
}

/// The cluster of `spec.destination`.
fn cluster(destination: &Value, ctx: &DiscoveryContext, p: &mut Problems) -> Option<LiveConfig> {
    let server = string(destination, "server", "spec.destination", p);
    let name = string(destination, "name", "spec.destination", p);
    match (server, name) {
        (Some(_), Some(_)) => {
            p.block(
                "spec.destination",
                "sets both `server` and `name`: Argo CD refuses it",
            );
            None
        }
        (None, None) => {
            p.block("spec.destination", "names no cluster (`server` or `name`)");
            None
        }
        (Some(server), None) => {
            let live = ctx.clusters.server(&server);
            if live.is_none() {
                p.block(
                    "spec.destination.server",
                    format!("the cluster `{server}` is not known to DriftGuard: map its URL to a kubeconfig context in the discovery configuration"),
                );
            }
            live
        }
        (None, Some(name)) => {
            let live = ctx.clusters.name(&name);
            if live.is_none() {
                p.block(
                    "spec.destination.name",
                    format!("the cluster `{name}` is not known to DriftGuard: map its name to a kubeconfig context in the discovery configuration"),
                );
            }
            live
        }
    }
}

/// `spec.ignoreDifferences`: group and kind are globs (an absent group is the core group),
/// name and namespace exact (absent: any), as Argo CD's ignore normalizer matches them.
fn ignore_differences(spec: &Value, p: &mut Problems) -> Vec<IgnoreRule> {
    let mut rules = Vec::new();
    for (i, entry) in list(spec, "ignoreDifferences", "spec", p)
        .iter()
        .enumerate()
    {
        let f = format!("spec.ignoreDifferences[{i}]");
        unknown_keys(
            entry,
            &f,
            &[
                "group",
                "kind",
                "name",
                "namespace",
                "jsonPointers",
                "jqPathExpressions",
                "managedFieldsManagers",
            ],
            &[],
            p,
        );
        let group = string(entry, "group", &f, p).unwrap_or_default();
        let Some(kind) = string(entry, "kind", &f, p) else {
            p.note(f, "names no kind: Argo CD matches no object with it");
            continue;
        };
        let selector = ObjectSelector {
            group: (group != "*").then_some(group),
            kind: (kind != "*").then_some(kind),
            namespace: string(entry, "namespace", &f, p),
            name: string(entry, "name", &f, p),
        };
        rules.extend(ignore_paths(selector, entry, &f, p));
    }
    rules
}

/// Server-side diff: the Application's `argocd.argoproj.io/compare-options` annotation
/// (`ServerSideDiff=true|false`), else Argo CD's setting.
fn compare_options(annotations: &BTreeMap<String, String>, default: bool) -> bool {
    annotations
        .get("argocd.argoproj.io/compare-options")
        .into_iter()
        .flat_map(|v| v.split(','))
        .filter_map(|o| o.trim().strip_prefix("ServerSideDiff="))
        .next_back()
        .map_or(default, |v| v.trim().eq_ignore_ascii_case("true"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_ranges_are_told_from_references() {
        for t in ["1.2.*", "^1.2.0", "~1.2", ">=1.0.0 <2.0.0", "1.0 || 2.0"] {
            assert!(is_constraint(t), "{t}");
        }
        for t in ["main", "v1.2.3", "release/1.2.x", "3f1a9c04e2b7"] {
            assert!(!is_constraint(t), "{t}");
        }
    }
}
