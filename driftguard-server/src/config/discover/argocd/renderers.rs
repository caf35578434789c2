//! The four kinds of source an Application renders with: a Helm chart folder, a
//! kustomization, a plain folder of manifests (a "directory"), a config management plugin.

use std::collections::BTreeMap;

use serde_json::Value;

use super::build_env::BuildEnv;
use super::AppSource;
use crate::config::discover::read::{
    as_map, at, boolean, get, list, object, patch_target, relative_to, string, string_map, strings,
    unknown_keys, Problems,
};
use crate::config::discover::DiscoveryContext;
use crate::config::{
    GitConfig, HelmConfig, HelmParameterConfig, InlineValues, KustomizeConfig, KustomizePatch,
    KustomizeReplicas, RenderConfig,
};

/// Where a Helm source is, for its value files.
pub(super) struct HelmScope<'a> {
    pub(super) at: String,
    /// The chart folder from the repository's root.
    pub(super) chart: Option<&'a str>,
    pub(super) repo: &'a str,
    pub(super) revision: Option<&'a str>,
}

pub(super) fn helm(
    h: &Value,
    scope: &HelmScope<'_>,
    app: &AppSource<'_>,
    p: &mut Problems,
) -> HelmConfig {
    let f = scope.at.as_str();
    unknown_keys(
        h,
        f,
        &[
            "valueFiles",
            "values",
            "valuesObject",
            "parameters",
            "fileParameters",
            "releaseName",
            "namespace",
            "kubeVersion",
            "apiVersions",
            "skipCrds",
            "skipTests",
            "ignoreMissingValueFiles",
            "skipSchemaValidation",
        ],
        // helm v3 is the only one; credentials are for remote charts
        &["version", "passCredentials"],
        p,
    );
    let value_files = strings(h, "valueFiles", f, p)
        .iter()
        .enumerate()
        .filter_map(|(i, raw)| value_file(raw, &format!("{f}.valueFiles[{i}]"), scope, app, p))
        .collect();

    let values = match get(h, "valuesObject") {
        Some(Value::Object(m)) if !m.is_empty() => Some(InlineValues::Object(m.clone())),
        Some(Value::Object(_)) | None => match get(h, "values") {
            Some(Value::String(t)) if !t.trim().is_empty() => Some(InlineValues::Text(t.clone())),
            Some(Value::Object(m)) if !m.is_empty() => Some(InlineValues::Object(m.clone())),
            Some(Value::String(_) | Value::Object(_)) | None => None,
            Some(_) => {
                p.note(at(f, "values"), "expected YAML text: left out");
                None
            }
        },
        Some(_) => {
            p.note(at(f, "valuesObject"), "expected a mapping: left out");
            None
        }
    };

    let mut parameters = Vec::new();
    for (i, item) in list(h, "parameters", f, p).iter().enumerate() {
        let pf = format!("{f}.parameters[{i}]");
        unknown_keys(item, &pf, &["name", "value", "forceString"], &[], p);
        let Some(name) = string(item, "name", &pf, p) else {
            p.note(pf, "has no name: left out");
            continue;
        };
        let value = string(item, "value", &pf, p).unwrap_or_default();
        parameters.push(HelmParameterConfig {
            value: app.env.subst(&value, &at(&pf, "value"), p),
            force_string: boolean(item, "forceString", &pf, p),
            name,
        });
    }
    for (i, item) in list(h, "fileParameters", f, p).iter().enumerate() {
        let name = get(item, "name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let path = get(item, "path")
            .and_then(Value::as_str)
            .unwrap_or_default();
        p.note(
            format!("{f}.fileParameters[{i}]"),
            format!("`{name}` from the file `{path}` (--set-file) is not passed: the chart is rendered without it, and the fields it sets may show as drift"),
        );
    }
    if boolean(h, "skipSchemaValidation", f, p) {
        p.note(
            at(f, "skipSchemaValidation"),
            "DriftGuard's helm validates values against the chart's schema: values that do not validate fail the rendering",
        );
    }

    let namespace = string(h, "namespace", f, p);
    if let (Some(ns), Some(dest)) = (&namespace, app.dest_ns) {
        if ns != dest {
            p.note(
                at(f, "namespace"),
                format!("differs from the destination namespace `{dest}`: objects that name no namespace are compared in `{ns}` (DriftGuard puts them in the release namespace), where Argo CD applies them in `{dest}`"),
            );
        }
    }
    HelmConfig {
        release_name: Some(string(h, "releaseName", f, p).unwrap_or_else(|| app.name.to_owned())),
        namespace: namespace.or_else(|| app.dest_ns.map(str::to_owned)),
        value_files,
        values,
        parameters,
        kube_version: string(h, "kubeVersion", f, p),
        api_versions: strings(h, "apiVersions", f, p),
        include_crds: boolean(h, "skipCrds", f, p).then_some(false),
        skip_tests: boolean(h, "skipTests", f, p),
        ignore_missing_value_files: boolean(h, "ignoreMissingValueFiles", f, p),
        ..HelmConfig::default()
    }
}

/// A value file relative to the chart folder: `$ref/...` of a source on the same repository
/// and revision, a path from the repository's root (`/envs/prod.yaml`), or relative to the
/// chart. Remote files and files of other repositories are problems.
fn value_file(
    raw: &str,
    f: &str,
    scope: &HelmScope<'_>,
    app: &AppSource<'_>,
    p: &mut Problems,
) -> Option<String> {
    if raw.starts_with('$') {
        let (name, rest) = raw.split_once('/').unwrap_or((raw, ""));
        let Some(r) = app.refs.get(name) else {
            p.note(
                f,
                format!("`{name}` is the `ref` of no source of spec.sources: left out, the chart is rendered without it"),
            );
            return None;
        };
        if !same_repository(&r.repo, scope.repo) {
            p.note(
                f,
                format!("is in another repository ({}): DriftGuard reads one repository per environment; left out, the chart is rendered without it", r.repo),
            );
            return None;
        }
        if r.revision.as_deref() != scope.revision {
            p.note(
                f,
                format!(
                    "is at another revision ({}) than the chart ({}): left out, the chart is rendered without it",
                    r.revision.as_deref().unwrap_or("HEAD"),
                    scope.revision.unwrap_or("HEAD")
                ),
            );
            return None;
        }
        let file = app.env.subst(rest, f, p);
        return Some(relative_to(scope.chart, &file));
    }
    if raw.starts_with("http://") || raw.starts_with("https://") {
        p.note(
            f,
            "a remote values file cannot be fetched: left out, the chart is rendered without it",
        );
        return None;
    }
    let file = app.env.subst(raw, f, p);
    Some(if file.starts_with('/') {
        relative_to(scope.chart, &file)
    } else {
        file
    })
}

/// Whether two repository URLs name the same repository (scheme, user, `.git` and case
/// aside; `git@host:path` is `host/path`).
fn same_repository(a: &str, b: &str) -> bool {
    fn key(url: &str) -> String {
        let url = url.trim().to_ascii_lowercase();
        let (rest, scp) = match url.split_once("://") {
            Some((_, rest)) => (rest.to_owned(), false),
            None => (url.clone(), true),
        };
        let rest = rest.split_once('@').map_or(rest.as_str(), |(_, r)| r);
        let rest = if scp {
            rest.replacen(':', "/", 1)
        } else {
            rest.to_owned()
        };
        rest.trim_end_matches('/')
            .trim_end_matches(".git")
            .to_owned()
    }
    key(a) == key(b)
}

pub(super) fn kustomize(
    k: &Value,
    f: &str,
    env: &BuildEnv,
    p: &mut Problems,
) -> Option<KustomizeConfig> {
    unknown_keys(
        k,
        f,
        &[
            "namePrefix",
            "nameSuffix",
            "images",
            "commonLabels",
            "commonAnnotations",
            "commonAnnotationsEnvsubst",
            "namespace",
            "replicas",
            "patches",
            "components",
            "ignoreMissingComponents",
            "labelWithoutSelector",
            "labelIncludeTemplates",
            "kubeVersion",
            "apiVersions",
            "version",
            "forceCommonLabels",
            "forceCommonAnnotations",
        ],
        &[],
        p,
    );
    let images = strings(k, "images", f, p)
        .iter()
        .map(|image| env.pre_subst(image))
        .collect();
    let mut common_annotations = string_map(k, "commonAnnotations", f, p);
    if boolean(k, "commonAnnotationsEnvsubst", f, p) {
        for (key, value) in common_annotations.iter_mut() {
            *value = env.subst(value, &format!("{f}.commonAnnotations.{key}"), p);
        }
    }
    let mut replicas = Vec::new();
    for (i, item) in list(k, "replicas", f, p).iter().enumerate() {
        let rf = format!("{f}.replicas[{i}]");
        let name = string(item, "name", &rf, p);
        let count = match get(item, "count") {
            Some(Value::Number(n)) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
            Some(Value::String(s)) => s.trim().parse::<u32>().ok(),
            _ => None,
        };
        match (name, count) {
            (Some(name), Some(count)) => replicas.push(KustomizeReplicas { name, count }),
            _ => p.note(rf, "needs a name and a count (a whole number): left out"),
        }
    }
    let mut patches = Vec::new();
    for (i, item) in list(k, "patches", f, p).iter().enumerate() {
        let pf = format!("{f}.patches[{i}]");
        unknown_keys(item, &pf, &["path", "patch", "target", "options"], &[], p);
        if object(item, "options", &pf, p).is_some_and(|o| !as_map(o).is_empty()) {
            p.note(
                at(&pf, "options"),
                "patch options (allowNameChange, allowKindChange) are not passed: the patch is applied without them",
            );
        }
        let target = object(item, "target", &pf, p).map(|t| patch_target(t, &at(&pf, "target"), p));
        patches.push(KustomizePatch {
            patch: string(item, "patch", &pf, p),
            path: string(item, "path", &pf, p),
            target,
        });
    }
    for (key, what) in [
        ("forceCommonLabels", "a label"),
        ("forceCommonAnnotations", "an annotation"),
    ] {
        if boolean(k, key, f, p) {
            p.note(
                at(f, key),
                format!("not supported: {what} the kustomization already sets fails the rendering, where Argo CD replaces it"),
            );
        }
    }
    if boolean(k, "labelWithoutSelector", f, p) {
        p.note(
            at(f, "labelWithoutSelector"),
            "DriftGuard adds commonLabels to selectors and pod templates too (kustomize's commonLabels): the selectors and templates of the objects may show as drift",
        );
    }
    if boolean(k, "labelIncludeTemplates", f, p) {
        p.note(
            at(f, "labelIncludeTemplates"),
            "not supported: commonLabels go to selectors and templates alike",
        );
    }
    if boolean(k, "ignoreMissingComponents", f, p) {
        p.note(
            at(f, "ignoreMissingComponents"),
            "not supported: a component that does not exist fails the rendering",
        );
    }
    if let Some(version) = string(k, "version", f, p) {
        p.note(
            at(f, "version"),
            format!("kustomize `{version}` of Argo CD is not chosen: DriftGuard renders with its own kustomize (kustomizeBin)"),
        );
    }
    if string(k, "kubeVersion", f, p).is_some() || !strings(k, "apiVersions", f, p).is_empty() {
        p.note(
            f,
            "kubeVersion and apiVersions (for the kustomization's helmCharts) are not passed: charts see helm's defaults",
        );
    }
    let config = KustomizeConfig {
        name_prefix: string(k, "namePrefix", f, p),
        name_suffix: string(k, "nameSuffix", f, p),
        namespace: string(k, "namespace", f, p),
        images,
        common_labels: string_map(k, "commonLabels", f, p)
            .into_iter()
            .map(|(key, value)| (key, env.pre_subst(&value)))
            .collect(),
        common_annotations,
        patches,
        replicas,
        components: strings(k, "components", f, p),
        substitute: BTreeMap::new(),
    };
    (config != KustomizeConfig::default()).then_some(config)
}

pub(super) fn directory(d: &Value, f: &str, git: &mut GitConfig, p: &mut Problems) {
    unknown_keys(d, f, &["recurse", "include", "exclude", "jsonnet"], &[], p);
    // Argo CD reads a directory's subfolders only with `recurse: true`
    git.recurse = Some(boolean(d, "recurse", f, p));
    if let Some(include) = string(d, "include", f, p) {
        git.include = expand_braces(&include);
    }
    if let Some(exclude) = string(d, "exclude", f, p) {
        git.exclude = expand_braces(&exclude);
    }
    if let Some(j) = object(d, "jsonnet", f, p) {
        let used: Vec<&str> = ["extVars", "tlas", "libs"]
            .into_iter()
            .filter(|k| {
                get(j, k)
                    .and_then(Value::as_array)
                    .is_some_and(|a| !a.is_empty())
            })
            .collect();
        if !used.is_empty() {
            p.block(
                at(f, "jsonnet"),
                format!(
                    "sets {}: DriftGuard does not render jsonnet (a command can: map the Application to a plugin)",
                    used.join(", ")
                ),
            );
        }
    }
}

/// An Argo CD glob with `{a,b}` alternatives as the plain globs it stands for
/// (`{*.yml,*.yaml}` → `*.yml`, `*.yaml`).
fn expand_braces(glob: &str) -> Vec<String> {
    const MAX: usize = 256;
    let b = glob.as_bytes();
    let mut depth = 0usize;
    let mut open = None;
    let mut commas = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 1,
            b'{' => {
                if depth == 0 {
                    open = Some(i);
                    commas.clear();
                }
                depth += 1;
            }
            b',' if depth == 1 => commas.push(i),
            b'}' if depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    let start = open.unwrap_or_default();
                    let (prefix, suffix) = (&glob[..start], &glob[i + 1..]);
                    let mut bounds = vec![start];
                    bounds.extend(&commas);
                    bounds.push(i);
                    let mut out = Vec::new();
                    for w in bounds.windows(2) {
                        let alternative = &glob[w[0] + 1..w[1]];
                        for rest in expand_braces(&format!("{prefix}{alternative}{suffix}")) {
                            if !out.contains(&rest) && out.len() < MAX {
                                out.push(rest);
                            }
                        }
                    }
                    return out;
                }
            }
            _ => {}
        }
        i += 1;
    }
    vec![glob.to_owned()]
}

pub(super) fn plugin(
    v: &Value,
    f: &str,
    ctx: &DiscoveryContext,
    p: &mut Problems,
) -> Option<RenderConfig> {
    unknown_keys(v, f, &["name", "env", "parameters"], &[], p);
    let env: Vec<String> = list(v, "env", f, p)
        .iter()
        .filter_map(|e| get(e, "name").and_then(Value::as_str))
        .map(|n| format!("ARGOCD_ENV_{n}"))
        .collect();
    if !env.is_empty() {
        p.note(
            at(f, "env"),
            format!("{} are not given to the command (it runs with a scrubbed environment; name variables of DriftGuard's own environment in the command's passEnv)", env.join(", ")),
        );
    }
    let parameters: Vec<&str> = list(v, "parameters", f, p)
        .iter()
        .filter_map(|e| get(e, "name").and_then(Value::as_str))
        .collect();
    if !parameters.is_empty() {
        p.note(
            at(f, "parameters"),
            format!("{} are not given to the command", parameters.join(", ")),
        );
    }
    let Some(name) = string(v, "name", f, p) else {
        p.block(
            f,
            "names no plugin (Argo CD picks one by its discovery rules): name it, and map it to a command in the discovery configuration",
        );
        return None;
    };
    let command = ctx.plugins.get(&name).cloned();
    if command.is_none() {
        p.block(
            at(f, "name"),
            format!("the plugin `{name}` has no command in DriftGuard's discovery configuration (plugins): it cannot be rendered"),
        );
    }
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn braces_become_several_globs() {
        assert_eq!(expand_braces("*.yaml"), vec!["*.yaml"]);
        assert_eq!(
            expand_braces("{config.json,env-usw2/*}"),
            vec!["config.json", "env-usw2/*"]
        );
        assert_eq!(
            expand_braces("{a,b}/{x,y}.yaml"),
            vec!["a/x.yaml", "a/y.yaml", "b/x.yaml", "b/y.yaml"]
        );
        assert_eq!(
            expand_braces("base/{a,{b,c}}.yaml"),
            vec!["base/a.yaml", "base/b.yaml", "base/c.yaml"]
        );
        assert_eq!(expand_braces("a\\{b,c\\}"), vec!["a\\{b,c\\}"]);
    }

    #[test]
    fn repositories_compare_without_scheme_user_and_suffix() {
        assert!(same_repository(
            "https://github.com/Acme/GitOps.git",
            "git@github.com:acme/gitops"
        ));
        assert!(same_repository(
            "ssh://git@github.com/acme/gitops.git/",
            "https://github.com/acme/gitops"
        ));
        assert!(!same_repository(
            "https://github.com/acme/gitops",
            "https://github.com/acme/values"
        ));
    }
}
