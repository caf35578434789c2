//! Flux `HelmRelease`s (`helm.toolkit.fluxcd.io/v2`) whose chart is a folder of a
//! `GitRepository` (`spec.chart.spec.sourceRef`, or `spec.chartRef` to a `HelmChart` of one):
//! the release name and namespace as Flux makes them, the values as helm-controller composes
//! them (`valuesFrom` in order, `targetPath` with helm's `--set` typing, then `values`), the
//! drift detection's ignore rules.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::{common_metadata, flux_app, git_source, ignore_rules, kube_config};
use crate::config::discover::read::{
    at, boolean, folder, get, list, object, relative_to, string, strings, unknown_keys, Meta,
    Problems,
};
use crate::config::discover::{default_name, Discovered, DiscoveryContext, ObjectKey};
use crate::config::discover::{Tool, ToolVerdict};
use crate::config::{EnvironmentConfig, GitConfig, HelmConfig, InlineValues};
use driftguard_core::metadata::MetadataKeys;

/// One HelmRelease.
pub fn map_helm_release(release: &Value, ctx: &DiscoveryContext) -> Discovered {
    let meta = Meta::read(release);
    let spec = get(release, "spec").unwrap_or(&Value::Null);
    let mut p = Problems::default();
    unknown_keys(
        spec,
        "spec",
        &[
            "chart",
            "chartRef",
            "releaseName",
            "targetNamespace",
            "values",
            "valuesFrom",
            "driftDetection",
            "kubeConfig",
            "commonMetadata",
            "postRenderers",
            "install",
        ],
        &[
            "interval",
            "suspend",
            "storageNamespace",
            "dependsOn",
            "timeout",
            "maxHistory",
            "serviceAccountName",
            "persistentClient",
            "upgrade",
            "test",
            "rollback",
            "uninstall",
            "postRenderStrategy",
            "waitStrategy",
            "healthCheckExprs",
        ],
        &mut p,
    );
    let app = flux_app("HelmRelease", &meta, release);
    let live = kube_config(spec, &meta.namespace, ctx, &mut p);
    let chart = chart(spec, &meta.namespace, ctx, &mut p);

    let target_namespace = string(spec, "targetNamespace", "spec", &mut p);
    let release_name = string(spec, "releaseName", "spec", &mut p).unwrap_or_else(|| {
        shorten(&match &target_namespace {
            Some(ns) => format!("{ns}-{}", meta.name),
            None => meta.name.clone(),
        })
    });
    let namespace = target_namespace.unwrap_or_else(|| meta.namespace.clone());
    let mut secret_fields = Vec::new();
    let values = values(spec, &meta.namespace, ctx, &mut secret_fields, &mut p);

    let install = get(spec, "install").unwrap_or(&Value::Null);
    let skip_crds = boolean(install, "skipCRDs", "spec.install", &mut p)
        || string(install, "crds", "spec.install", &mut p).as_deref() == Some("Skip");
    if !list(spec, "postRenderers", "spec", &mut p).is_empty() {
        p.note(
            "spec.postRenderers",
            "post-renderers are not applied: the fields their patches and images change may show as drift",
        );
    }
    let ignore = get(spec, "driftDetection")
        .map(|d| ignore_rules(d, "ignore", "spec.driftDetection", &mut p))
        .unwrap_or_default();
    let tool_owned = common_metadata(spec, &mut p);

    let (git, value_files, ignore_missing) = match chart {
        Some(c) => (Some(c.git), c.value_files, c.ignore_missing),
        None => (None, Vec::new(), false),
    };
    let environment = EnvironmentConfig {
        name: ctx.name(&default_name(&["flux", &meta.namespace, &meta.name])),
        git,
        helm: Some(HelmConfig {
            release_name: Some(release_name),
            namespace: Some(namespace),
            value_files,
            values: (!values.is_empty()).then_some(InlineValues::Object(values)),
            include_crds: skip_crds.then_some(false),
            ignore_missing_value_files: ignore_missing,
            ..HelmConfig::default()
        }),
        live: Some(live),
        ignore,
        metadata_keys: MetadataKeys {
            compare: Vec::new(),
            tool_owned,
        },
        ..EnvironmentConfig::default()
    };
    let mut found = Discovered::new(app, environment, p);
    found.secret_fields = secret_fields;
    // the message again, without the Secret values it may quote
    found.app.verdict = ToolVerdict::read(
        Tool::Flux,
        "HelmRelease",
        release,
        None,
        &found.secret_values(),
    );
    found
}

/// Flux's release name: `[<targetNamespace>-]<name>`, and when longer than helm's 53
/// characters, its first 40 and the first 12 hex digits of its SHA-256 (helm-controller's
/// `release.ShortenName`).
fn shorten(name: &str) -> String {
    if name.len() <= 53 {
        return name.to_owned();
    }
    let hash = hex::encode(Sha256::digest(name.as_bytes()));
    format!("{}-{}", &name[..40], &hash[..12])
}

/// The chart: where it is, and its value files.
struct Chart {
    git: GitConfig,
    value_files: Vec<String>,
    ignore_missing: bool,
}

fn chart(spec: &Value, namespace: &str, ctx: &DiscoveryContext, p: &mut Problems) -> Option<Chart> {
    if let Some(template) = object(spec, "chart", "spec", p) {
        let f = "spec.chart.spec";
        let cs = get(template, "spec").unwrap_or(&Value::Null);
        unknown_keys(template, "spec.chart", &["spec"], &["kind", "metadata"], p);
        unknown_keys(
            cs,
            f,
            &[
                "chart",
                "sourceRef",
                "valuesFiles",
                "ignoreMissingValuesFiles",
            ],
            // a chart of a Git repository is at the repository's revision, whatever version
            &["version", "reconcileStrategy", "interval", "verify"],
            p,
        );
        let r = get(cs, "sourceRef").unwrap_or(&Value::Null);
        let kind = string(r, "kind", &at(f, "sourceRef"), p).unwrap_or_default();
        let name = string(r, "name", &at(f, "sourceRef"), p).unwrap_or_default();
        let ns =
            string(r, "namespace", &at(f, "sourceRef"), p).unwrap_or_else(|| namespace.to_owned());
        let chart_name = string(cs, "chart", f, p).unwrap_or_default();
        if kind == "HelmRepository" {
            p.block(
                at(f, "sourceRef"),
                format!("chart `{chart_name}` from the HelmRepository {ns}/{name} cannot be fetched here: DriftGuard renders charts that are folders of a Git repository"),
            );
            return None;
        }
        return chart_in_git(&kind, &ObjectKey::new(ns, name), &chart_name, cs, f, ctx, p);
    }
    if let Some(r) = object(spec, "chartRef", "spec", p) {
        let f = "spec.chartRef";
        unknown_keys(r, f, &["kind", "name", "namespace", "apiVersion"], &[], p);
        let kind = string(r, "kind", f, p).unwrap_or_default();
        let key = ObjectKey::new(
            string(r, "namespace", f, p).unwrap_or_else(|| namespace.to_owned()),
            string(r, "name", f, p).unwrap_or_default(),
        );
        if kind != "HelmChart" {
            p.block(
                at(f, "kind"),
                format!("a chart from the {kind} {key} cannot be fetched here: DriftGuard renders charts that are folders of a Git repository"),
            );
            return None;
        }
        let Some(helm_chart) = ctx.helm_charts.get(&key) else {
            p.block(
                f,
                format!("the HelmChart {key} was not found among the objects read"),
            );
            return None;
        };
        let hf = format!("HelmChart/{key}.spec");
        let cs = get(helm_chart, "spec").unwrap_or(&Value::Null);
        unknown_keys(
            cs,
            &hf,
            &[
                "chart",
                "sourceRef",
                "valuesFiles",
                "ignoreMissingValuesFiles",
            ],
            &[
                "version",
                "reconcileStrategy",
                "interval",
                "verify",
                "suspend",
            ],
            p,
        );
        let r = get(cs, "sourceRef").unwrap_or(&Value::Null);
        let source_kind = string(r, "kind", &at(&hf, "sourceRef"), p).unwrap_or_default();
        let source = ObjectKey::new(
            key.namespace.clone(),
            string(r, "name", &at(&hf, "sourceRef"), p).unwrap_or_default(),
        );
        let chart_name = string(cs, "chart", &hf, p).unwrap_or_default();
        return chart_in_git(&source_kind, &source, &chart_name, cs, &hf, ctx, p);
    }
    p.block("spec", "names no chart (`chart` or `chartRef`)");
    None
}

/// A chart folder of a GitRepository, with the value files (relative to the source's root in
/// Flux, to the chart folder in DriftGuard).
fn chart_in_git(
    kind: &str,
    source: &ObjectKey,
    chart_path: &str,
    cs: &Value,
    f: &str,
    ctx: &DiscoveryContext,
    p: &mut Problems,
) -> Option<Chart> {
    let mut git = git_source(kind, source, &at(f, "sourceRef"), ctx, p)?;
    git.path = folder(chart_path);
    let files = strings(cs, "valuesFiles", f, p);
    let own = format!(
        "{}values.yaml",
        git.path
            .as_deref()
            .map(|c| format!("{c}/"))
            .unwrap_or_default()
    );
    if !files.is_empty()
        && !files
            .iter()
            .any(|v| folder(v).as_deref() == Some(own.as_str()))
    {
        p.note(
            at(f, "valuesFiles"),
            "Flux uses these files instead of the chart's values.yaml; DriftGuard renders them over the chart's values.yaml: values only that file sets may differ",
        );
    }
    let value_files = files
        .iter()
        .map(|v| relative_to(git.path.as_deref(), v))
        .collect();
    Some(Chart {
        git,
        value_files,
        ignore_missing: boolean(cs, "ignoreMissingValuesFiles", f, p),
    })
}

/// The values as helm-controller composes them: each `valuesFrom` reference in order (merged
/// at the root, or set at its `targetPath`), then `spec.values` over them. Nothing of a
/// Secret's content ever goes into a problem.
fn values(
    spec: &Value,
    namespace: &str,
    ctx: &DiscoveryContext,
    secret_fields: &mut Vec<String>,
    p: &mut Problems,
) -> Map<String, Value> {
    let mut out = Map::new();
    for (i, r) in list(spec, "valuesFrom", "spec", p).iter().enumerate() {
        let f = format!("spec.valuesFrom[{i}]");
        unknown_keys(
            r,
            &f,
            &[
                "kind",
                "name",
                "valuesKey",
                "targetPath",
                "optional",
                "literal",
            ],
            &[],
            p,
        );
        let kind = string(r, "kind", &f, p).unwrap_or_default();
        let key = ObjectKey::new(namespace, string(r, "name", &f, p).unwrap_or_default());
        let values_key = string(r, "valuesKey", &f, p).unwrap_or_else(|| "values.yaml".into());
        let optional = boolean(r, "optional", &f, p);
        let from_secret = kind == "Secret";
        let data: Option<Option<&str>> = match kind.as_str() {
            "ConfigMap" => ctx
                .config_maps
                .get(&key)
                .map(|d| d.get(&values_key).map(String::as_str)),
            "Secret" => ctx.secrets.get(&key).map(|d| {
                if d.is_undecodable(&values_key) {
                    p.note(
                        &f,
                        format!(
                            "the value of `{values_key}` in Secret {key} is not text: left out"
                        ),
                    );
                }
                d.get(&values_key)
            }),
            other => {
                p.note(
                    at(&f, "kind"),
                    format!("`{other}` is not ConfigMap or Secret: not read"),
                );
                continue;
            }
        };
        let text = match data {
            None if optional => continue,
            None => {
                p.block(
                    &f,
                    format!("the {kind} {key} was not found among the objects read, and it is not optional: Flux cannot install the release without it either"),
                );
                continue;
            }
            Some(None) => {
                p.block(
                    &f,
                    format!(
                        "the {kind} {key} has no key `{values_key}`: Flux fails the release too"
                    ),
                );
                continue;
            }
            Some(Some(text)) => text,
        };
        if from_secret && !secret_fields.iter().any(|s| s == "helm.values") {
            secret_fields.push("helm.values".into());
        }
        match string(r, "targetPath", &f, p) {
            Some(path) => {
                let literal = boolean(r, "literal", &f, p);
                if let Err(why) = set_at_path(&mut out, &path, text, literal) {
                    p.note(
                        at(&f, "targetPath"),
                        format!("`{path}`: {why}: left out, the fields it sets may show as drift"),
                    );
                }
            }
            None => match serde_yaml::from_str::<Value>(text) {
                Ok(Value::Object(values)) => merge(&mut out, values),
                Ok(Value::Null) => {}
                // the parser's message may quote the text: never for a Secret
                Ok(_) => p.block(
                    &f,
                    format!("`{values_key}` of the {kind} {key} is not a mapping of values"),
                ),
                Err(_) if from_secret => {
                    p.block(
                        &f,
                        format!("`{values_key}` of the Secret {key} is not YAML"),
                    );
                }
                Err(e) => p.block(
                    &f,
                    format!("`{values_key}` of the ConfigMap {key} is not YAML: {e}"),
                ),
            },
        }
    }
    match get(spec, "values") {
        Some(Value::Object(values)) => merge(&mut out, values.clone()),
        Some(_) => p.note("spec.values", "expected a mapping: left out"),
        None => {}
    }
    out
}

/// Helm's (and Flux's `MergeMaps`) merge: mappings merged key by key, anything else
/// replaced.
fn merge(into: &mut Map<String, Value>, from: Map<String, Value>) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(Value::Object(a)), Value::Object(b)) => merge(a, b),
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

/// Sets `text` at a dotted path the way helm-controller does for a `targetPath`: helm's
/// `--set` (a quoted value, or with `literal`, a string; else `true`, `false`, `null` and
/// whole numbers typed), for paths of keys and values without commas or escapes, which need
/// helm's own parser.
fn set_at_path(
    values: &mut Map<String, Value>,
    path: &str,
    text: &str,
    literal: bool,
) -> Result<(), String> {
    let mut keys = Vec::new();
    let mut current = String::new();
    let mut chars = path.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e) => current.push(e),
                None => return Err("ends with `\\`".into()),
            },
            '.' => keys.push(std::mem::take(&mut current)),
            '[' | ']' => return Err("list indexes are not supported here".into()),
            other => current.push(other),
        }
    }
    keys.push(current);
    if keys.iter().any(String::is_empty) {
        return Err("has an empty key".into());
    }
    let value = if literal {
        Value::String(text.to_owned())
    } else {
        let quoted = text.len() >= 2
            && ((text.starts_with('\'') && text.ends_with('\''))
                || (text.starts_with('"') && text.ends_with('"')));
        let unquoted = if quoted {
            text.trim_matches(|c| c == '\'' || c == '"')
        } else {
            text
        };
        if unquoted.contains([',', '\\']) || (!quoted && unquoted.starts_with('{')) {
            return Err(
                "the value holds `,`, `\\` or a `{...}` list, which only helm's own parser reads"
                    .into(),
            );
        }
        if quoted {
            Value::String(unquoted.to_owned())
        } else {
            typed(unquoted)
        }
    };
    let (last, parents) = keys.split_last().ok_or("is empty")?;
    let mut map = values;
    for k in parents {
        let entry = map
            .entry(k.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        map = entry.as_object_mut().expect("an object was just put there");
    }
    map.insert(last.clone(), value);
    Ok(())
}

/// Helm's `--set` typing (`strvals.typedVal`).
fn typed(text: &str) -> Value {
    if text.eq_ignore_ascii_case("true") {
        return Value::Bool(true);
    }
    if text.eq_ignore_ascii_case("false") {
        return Value::Bool(false);
    }
    if text.eq_ignore_ascii_case("null") {
        return Value::Null;
    }
    if text == "0" {
        return Value::from(0);
    }
    if !text.starts_with('0') {
        if let Ok(n) = text.parse::<i64>() {
            return Value::from(n);
        }
    }
    Value::String(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::discover::read::as_map;
    use serde_json::json;

    #[test]
    fn long_release_names_are_shortened_as_flux_does() {
        assert_eq!(shorten("podinfo"), "podinfo");
        let long = "a-very-long-target-namespace-name-for-the-team-podinfo-release";
        let short = shorten(long);
        assert_eq!(short.len(), 53);
        assert!(short.starts_with(&long[..40]));
        assert_eq!(&short[40..41], "-");
    }

    #[test]
    fn target_paths_set_typed_values() {
        let mut v = Map::new();
        set_at_path(&mut v, "image.tag", "1.2.3", false).expect("simple");
        set_at_path(&mut v, "replicas", "3", false).expect("simple");
        set_at_path(&mut v, "build", "0042", false).expect("simple");
        set_at_path(&mut v, "flag", "TRUE", false).expect("simple");
        set_at_path(&mut v, "quoted", "'5'", false).expect("simple");
        set_at_path(&mut v, "a\\.b", "x,y", true).expect("literal");
        assert_eq!(
            Value::Object(v.clone()),
            json!({"image": {"tag": "1.2.3"}, "replicas": 3, "build": "0042", "flag": true, "quoted": "5", "a.b": "x,y"})
        );
        assert!(set_at_path(&mut v, "list[0]", "x", false).is_err());
        assert!(set_at_path(&mut v, "a", "x,y", false).is_err());
        assert!(set_at_path(&mut v, "a..b", "x", false).is_err());
    }

    #[test]
    fn values_merge_key_by_key() {
        let mut a = json!({"a": {"b": 1, "c": 2}, "d": [1]});
        let m = a.as_object_mut().expect("an object");
        merge(
            m,
            as_map(&json!({"a": {"c": 3}, "d": [2], "e": null})).clone(),
        );
        assert_eq!(a, json!({"a": {"b": 1, "c": 3}, "d": [2], "e": null}));
    }
}
