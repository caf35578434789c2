//! Flux `Kustomization`s (`kustomize.toolkit.fluxcd.io/v1`) and `HelmRelease`s
//! (`helm.toolkit.fluxcd.io/v2`) as environments, with their `GitRepository` sources
//! (`source.toolkit.fluxcd.io/v1`), with the meaning Flux's controllers give the fields.
//!
//! Each object gives one environment named `flux.<namespace>.<name>`. Sources other than Git
//! repositories (OCI repositories, buckets, Helm repositories) cannot be fetched here: those
//! objects give a blocking problem.

mod git_repository;
mod helm_release;

use std::collections::{BTreeMap, BTreeSet};

use driftguard_core::ignore::{IgnoreRule, JsonPointer};
use driftguard_core::metadata::MetadataKeys;
use driftguard_core::selector::ObjectSelector;
use serde_json::Value;

use super::read::{
    at, boolean, folder, get, get_path, list, object, patch_target, string, string_map, strings,
    unknown_keys, Meta, Problems,
};
use super::{
    dedupe, default_name, Discovered, DiscoveredApp, DiscoveryContext, ObjectKey, Tool, ToolVerdict,
};
use crate::config::{EnvironmentConfig, GitConfig, KustomizeConfig, KustomizePatch, LiveConfig};

pub use helm_release::map_helm_release;

use git_repository::git_source;

/// Every Kustomization and HelmRelease the filters admit, mapped, with names made unique
/// ([`dedupe`]).
pub fn map_all(
    kustomizations: &[Value],
    helm_releases: &[Value],
    ctx: &DiscoveryContext,
) -> Vec<Discovered> {
    let admitted = |o: &&Value| ctx.filters.admits(Tool::Flux, o);
    let mut out: Vec<Discovered> = kustomizations
        .iter()
        .filter(admitted)
        .map(|k| map_kustomization(k, ctx))
        .chain(
            helm_releases
                .iter()
                .filter(admitted)
                .map(|h| map_helm_release(h, ctx)),
        )
        .collect();
    dedupe(&mut out);
    out
}

/// The ConfigMaps and Secrets the objects take values from (`postBuild.substituteFrom`,
/// `valuesFrom`): read these, and only these, into [`DiscoveryContext::add_object`]. The
/// kubeconfig Secrets of `spec.kubeConfig` are never needed: DriftGuard does not use them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct References {
    /// ConfigMaps.
    pub config_maps: BTreeSet<ObjectKey>,
    /// Secrets.
    pub secrets: BTreeSet<ObjectKey>,
}

/// What [`References`] the objects make.
pub fn references(kustomizations: &[Value], helm_releases: &[Value]) -> References {
    let mut out = References::default();
    let mut add = |object: &Value, items: Option<&Value>| {
        let namespace = Meta::read(object).namespace;
        for item in items.and_then(Value::as_array).into_iter().flatten() {
            let name = get(item, "name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let key = ObjectKey::new(namespace.clone(), name);
            match get(item, "kind").and_then(Value::as_str) {
                Some("ConfigMap") => {
                    out.config_maps.insert(key);
                }
                Some("Secret") => {
                    out.secrets.insert(key);
                }
                _ => {}
            }
        }
    };
    for k in kustomizations {
        add(k, get_path(k, &["spec", "postBuild", "substituteFrom"]));
    }
    for h in helm_releases {
        add(h, get_path(h, &["spec", "valuesFrom"]));
    }
    out
}

/// One Kustomization.
pub fn map_kustomization(kustomization: &Value, ctx: &DiscoveryContext) -> Discovered {
    let meta = Meta::read(kustomization);
    let spec = get(kustomization, "spec").unwrap_or(&Value::Null);
    let mut p = Problems::default();
    unknown_keys(
        spec,
        "spec",
        &[
            "sourceRef",
            "path",
            "targetNamespace",
            "namePrefix",
            "nameSuffix",
            "patches",
            "images",
            "components",
            "ignoreMissingComponents",
            "postBuild",
            "commonMetadata",
            "buildMetadata",
            "decryption",
            "kubeConfig",
            "ignore",
        ],
        &[
            "interval",
            "retryInterval",
            "timeout",
            "prune",
            "deletionPolicy",
            "dependsOn",
            "healthChecks",
            "healthCheckExprs",
            "wait",
            "force",
            "suspend",
            "serviceAccountName",
        ],
        &mut p,
    );
    let app = flux_app("Kustomization", &meta, kustomization);
    let live = kube_config(spec, &meta.namespace, ctx, &mut p);
    let git = source_ref(spec, &meta.namespace, ctx, &mut p).map(|mut git| {
        git.path = string(spec, "path", "spec", &mut p).and_then(|s| folder(&s));
        git
    });

    let target_namespace = string(spec, "targetNamespace", "spec", &mut p);
    let mut secret_fields = Vec::new();
    let substitute = substitute(spec, &meta.namespace, ctx, &mut secret_fields, &mut p);
    let mut patches = Vec::new();
    for (i, item) in list(spec, "patches", "spec", &mut p).iter().enumerate() {
        let f = format!("spec.patches[{i}]");
        unknown_keys(item, &f, &["patch", "target"], &[], &mut p);
        let target =
            object(item, "target", &f, &mut p).map(|t| patch_target(t, &at(&f, "target"), &mut p));
        patches.push(KustomizePatch {
            patch: string(item, "patch", &f, &mut p),
            path: None,
            target,
        });
    }
    if boolean(spec, "ignoreMissingComponents", "spec", &mut p) {
        p.note(
            "spec.ignoreMissingComponents",
            "not supported: a component that does not exist fails the rendering",
        );
    }
    if object(spec, "decryption", "spec", &mut p).is_some() {
        p.note(
            "spec.decryption",
            "Flux decrypts SOPS-encrypted manifests before applying them; DriftGuard compares them as Git holds them, encrypted: those objects show as drift",
        );
    }
    let kustomize = KustomizeConfig {
        name_prefix: string(spec, "namePrefix", "spec", &mut p),
        name_suffix: string(spec, "nameSuffix", "spec", &mut p),
        namespace: target_namespace.clone(),
        images: images(spec, "spec", &mut p),
        common_labels: BTreeMap::new(),
        common_annotations: BTreeMap::new(),
        patches,
        replicas: Vec::new(),
        components: strings(spec, "components", "spec", &mut p),
        substitute,
    };
    let mut tool_owned = common_metadata(spec, &mut p);
    for (i, option) in strings(spec, "buildMetadata", "spec", &mut p)
        .iter()
        .enumerate()
    {
        match option.as_str() {
            "originAnnotations" => tool_owned.push("config.kubernetes.io/origin".into()),
            "transformerAnnotations" => {
                tool_owned.push("alpha.config.kubernetes.io/transformations".into())
            }
            other => p.note(
                format!("spec.buildMetadata[{i}]"),
                format!("`{other}` is not known: not read"),
            ),
        }
    }
    let ignore = ignore_rules(spec, "ignore", "spec", &mut p);

    let environment = EnvironmentConfig {
        name: ctx.name(&default_name(&["flux", &meta.namespace, &meta.name])),
        git,
        kustomize: (kustomize != KustomizeConfig::default()).then_some(kustomize),
        live: Some(live),
        default_namespace: target_namespace,
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
        "Kustomization",
        kustomization,
        None,
        &found.secret_values(),
    );
    found
}

/// The tool's view of a Flux object: its `Ready` condition, last revision, `spec.suspend`.
pub(super) fn flux_app(kind: &str, meta: &Meta, object: &Value) -> DiscoveredApp {
    DiscoveredApp {
        tool: Tool::Flux,
        kind: kind.into(),
        namespace: meta.namespace.clone(),
        name: meta.name.clone(),
        source: None,
        project: None,
        labels: meta.labels.clone(),
        verdict: ToolVerdict::read(Tool::Flux, kind, object, None, &[]),
    }
}

/// The cluster of `spec.kubeConfig`: the home cluster without one, else the cluster the
/// discovery configuration maps its Secret or ConfigMap to.
pub(super) fn kube_config(
    spec: &Value,
    namespace: &str,
    ctx: &DiscoveryContext,
    p: &mut Problems,
) -> LiveConfig {
    let Some(kc) = object(spec, "kubeConfig", "spec", p) else {
        return ctx.clusters.home.clone();
    };
    let name = |key: &str| {
        get_path(kc, &[key, "name"])
            .and_then(Value::as_str)
            .map(|n| ObjectKey::new(namespace, n))
    };
    let (field, what, found) = if let Some(key) = name("secretRef") {
        let found = ctx.clusters.kubeconfig_secrets.get(&key).cloned();
        ("spec.kubeConfig.secretRef", format!("Secret {key}"), found)
    } else if let Some(key) = name("configMapRef") {
        let found = ctx.clusters.kubeconfig_config_maps.get(&key).cloned();
        (
            "spec.kubeConfig.configMapRef",
            format!("ConfigMap {key}"),
            found,
        )
    } else {
        p.block("spec.kubeConfig", "names neither a Secret nor a ConfigMap");
        return LiveConfig::default();
    };
    found.unwrap_or_else(|| {
        p.block(
            field,
            format!("the remote cluster of the {what} is not known to DriftGuard: map it to a kubeconfig context in the discovery configuration (Flux's kubeconfig is not used)"),
        );
        LiveConfig::default()
    })
}

/// The Git side of `spec.sourceRef`.
fn source_ref(
    spec: &Value,
    namespace: &str,
    ctx: &DiscoveryContext,
    p: &mut Problems,
) -> Option<GitConfig> {
    let Some(r) = object(spec, "sourceRef", "spec", p) else {
        p.block("spec.sourceRef", "is not set");
        return None;
    };
    unknown_keys(
        r,
        "spec.sourceRef",
        &["kind", "name", "namespace", "apiVersion"],
        &[],
        p,
    );
    let kind = string(r, "kind", "spec.sourceRef", p).unwrap_or_default();
    let name = string(r, "name", "spec.sourceRef", p).unwrap_or_default();
    let ns = string(r, "namespace", "spec.sourceRef", p).unwrap_or_else(|| namespace.to_owned());
    git_source(&kind, &ObjectKey::new(ns, name), "spec.sourceRef", ctx, p)
}

/// `postBuild.substitute` over `postBuild.substituteFrom`, as kustomize-controller builds the
/// variables: the ConfigMaps and Secrets in order, then the inline values, every value with
/// its newlines removed. The names of the variables taken from Secrets go to
/// `secret_fields`; their values go nowhere else.
fn substitute(
    spec: &Value,
    namespace: &str,
    ctx: &DiscoveryContext,
    secret_fields: &mut Vec<String>,
    p: &mut Problems,
) -> BTreeMap<String, String> {
    let f = "spec.postBuild";
    let Some(post) = object(spec, "postBuild", "spec", p) else {
        return BTreeMap::new();
    };
    unknown_keys(
        post,
        f,
        &["substitute", "substituteFrom", "substituteStrategy"],
        &[],
        p,
    );
    // value, and whether it came from a Secret
    let mut vars: BTreeMap<String, (String, bool)> = BTreeMap::new();
    for (i, r) in list(post, "substituteFrom", f, p).iter().enumerate() {
        let rf = format!("{f}.substituteFrom[{i}]");
        unknown_keys(r, &rf, &["kind", "name", "optional"], &[], p);
        let kind = string(r, "kind", &rf, p).unwrap_or_default();
        let key = ObjectKey::new(namespace, string(r, "name", &rf, p).unwrap_or_default());
        let optional = boolean(r, "optional", &rf, p);
        let found = match kind.as_str() {
            "ConfigMap" => ctx.config_maps.get(&key).map(|data| {
                for (k, v) in data {
                    vars.insert(k.clone(), (v.replace('\n', ""), false));
                }
            }),
            "Secret" => ctx.secrets.get(&key).map(|data| {
                for (k, v) in data.iter() {
                    vars.insert(k.to_owned(), (v.replace('\n', ""), true));
                }
                let undecodable: Vec<&str> = data.undecodable().collect();
                if !undecodable.is_empty() {
                    p.note(
                        &rf,
                        format!(
                            "the values of {} in Secret {key} are not text: left out",
                            undecodable.join(", ")
                        ),
                    );
                }
            }),
            other => {
                p.note(
                    at(&rf, "kind"),
                    format!("`{other}` is not ConfigMap or Secret: not read"),
                );
                continue;
            }
        };
        if found.is_none() && !optional {
            p.block(
                &rf,
                format!("the {kind} {key} was not found among the objects read, and it is not optional: Flux cannot build without it either"),
            );
        }
    }
    for (k, v) in string_map(post, "substitute", f, p) {
        vars.insert(k, (v.replace('\n', ""), false));
    }
    let mut out = BTreeMap::new();
    for (name, (value, from_secret)) in vars {
        let valid = name.starts_with(|c: char| c == '_' || c.is_ascii_alphabetic())
            && name.chars().all(|c| c == '_' || c.is_ascii_alphanumeric());
        if !valid {
            p.block(
                f,
                format!("`{name}` is not a variable name (letters, digits and `_`, not starting with a digit): Flux refuses to build with it too"),
            );
            continue;
        }
        if from_secret {
            secret_fields.push(format!("kustomize.substitute.{name}"));
        }
        out.insert(name, value);
    }
    if out.is_empty() && string(post, "substituteStrategy", f, p).as_deref() == Some("Always") {
        p.note(
            at(f, "substituteStrategy"),
            "`Always` with no variable: DriftGuard substitutes nothing, so `${var:=default}` defaults are not applied",
        );
    }
    out
}

/// Flux's `images` (`name`, `newName`, `newTag`, `digest`) in Argo CD's syntax, which
/// `kustomize.images` is written in: `name=newName:newTag`, `name:newTag`, `name@digest`.
pub(super) fn images(spec: &Value, parent: &str, p: &mut Problems) -> Vec<String> {
    let f = at(parent, "images");
    let mut out = Vec::new();
    for (i, item) in list(spec, "images", parent, p).iter().enumerate() {
        let imf = format!("{f}[{i}]");
        unknown_keys(item, &imf, &["name", "newName", "newTag", "digest"], &[], p);
        let name = string(item, "name", &imf, p);
        let new_name = string(item, "newName", &imf, p);
        let new_tag = string(item, "newTag", &imf, p);
        let digest = string(item, "digest", &imf, p);
        match image_override(name, new_name, new_tag, digest) {
            Ok(Some(image)) => out.push(image),
            Ok(None) => {}
            Err(why) => p.note(imf, format!("{why}: left out")),
        }
    }
    out
}

fn image_override(
    name: Option<String>,
    new_name: Option<String>,
    new_tag: Option<String>,
    digest: Option<String>,
) -> Result<Option<String>, String> {
    let Some(name) = name else {
        return Err("has no name".into());
    };
    let image = new_name.as_deref().unwrap_or(&name);
    // the digest wins over the tag, as in kustomize
    let target = match (&digest, &new_tag) {
        (Some(d), _) => format!("{image}@{d}"),
        (None, Some(t)) => format!("{image}:{t}"),
        (None, None) => {
            let Some(new_name) = &new_name else {
                // changes nothing
                return Ok(None);
            };
            let last = new_name.rsplit('/').next().unwrap_or_default();
            if last.contains(':') || new_name.contains('@') {
                return Err(format!(
                    "`newName: {new_name}` would be read as a name with a tag or digest"
                ));
            }
            new_name.clone()
        }
    };
    Ok(Some(if new_name.is_some() {
        format!("{name}={target}")
    } else {
        target
    }))
}

/// The keys of `spec.commonMetadata`: Flux sets them on every object's metadata (not on
/// selectors or pod templates, as kustomize's commonLabels would), so they are the tool's:
/// `metadataKeys.toolOwned`.
pub(super) fn common_metadata(spec: &Value, p: &mut Problems) -> Vec<String> {
    let Some(cm) = object(spec, "commonMetadata", "spec", p) else {
        return Vec::new();
    };
    unknown_keys(
        cm,
        "spec.commonMetadata",
        &["labels", "annotations"],
        &[],
        p,
    );
    let labels = string_map(cm, "labels", "spec.commonMetadata", p);
    let annotations = string_map(cm, "annotations", "spec.commonMetadata", p);
    labels.into_keys().chain(annotations.into_keys()).collect()
}

/// Flux's drift ignore rules (`paths`, JSON pointers, and a `target` selector) as
/// DriftGuard's.
pub(super) fn ignore_rules(
    spec: &Value,
    key: &str,
    parent: &str,
    p: &mut Problems,
) -> Vec<IgnoreRule> {
    let f = at(parent, key);
    let mut rules = Vec::new();
    for (i, item) in list(spec, key, parent, p).iter().enumerate() {
        let rf = format!("{f}[{i}]");
        unknown_keys(item, &rf, &["paths", "target"], &[], p);
        let selector = match object(item, "target", &rf, p) {
            Some(t) => match selector(t, &at(&rf, "target"), p) {
                Some(s) => s,
                None => continue,
            },
            None => ObjectSelector::default(),
        };
        let mut json_pointers = Vec::new();
        for (j, path) in strings(item, "paths", &rf, p).iter().enumerate() {
            match JsonPointer::parse(path) {
                Ok(ptr) => json_pointers.push(ptr),
                Err(e) => p.note(
                    format!("{rf}.paths[{j}]"),
                    format!("{e}: not ignored, differences there are reported"),
                ),
            }
        }
        if !json_pointers.is_empty() {
            rules.push(IgnoreRule {
                selector,
                json_pointers,
                managed_fields_managers: Vec::new(),
            });
        }
    }
    rules
}

/// A Flux selector (`group`, `version`, `kind`, `name`, `namespace`: anchored regular
/// expressions) as an object selector of globs; `None` (a problem) when it cannot be one.
fn selector(t: &Value, f: &str, p: &mut Problems) -> Option<ObjectSelector> {
    unknown_keys(
        t,
        f,
        &[
            "group",
            "version",
            "kind",
            "name",
            "namespace",
            "labelSelector",
            "annotationSelector",
        ],
        &[],
        p,
    );
    for key in ["labelSelector", "annotationSelector"] {
        if string(t, key, f, p).is_some() {
            p.note(
                at(f, key),
                "DriftGuard's ignore rules select by group, kind, namespace and name only: the rule is left out, differences there are reported",
            );
            return None;
        }
    }
    // the version does not matter: an object is the same in every version
    let _ = string(t, "version", f, p);
    let mut glob = |key: &str| -> Result<Option<String>, ()> {
        let Some(regex) = string(t, key, f, p) else {
            return Ok(None);
        };
        regex_glob(&regex).map(Some).map_err(|()| {
            p.note(
                at(f, key),
                format!("`{regex}` is a regular expression DriftGuard's globs cannot express: the rule is left out, differences there are reported"),
            );
        })
    };
    Some(ObjectSelector {
        group: glob("group").ok()?,
        kind: glob("kind").ok()?,
        namespace: glob("namespace").ok()?,
        name: glob("name").ok()?,
    })
}

/// An anchored regular expression as a glob, for the ones that are names with `.*`
/// wildcards (`podinfo`, `web-.*`, `apps\.example\.com`); a bare `.` is taken as itself.
fn regex_glob(regex: &str) -> Result<String, ()> {
    let r = regex.strip_prefix('^').unwrap_or(regex);
    let r = r.strip_suffix('$').unwrap_or(r);
    let mut out = String::new();
    let mut chars = r.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '.' if chars.peek() == Some(&'*') => {
                chars.next();
                out.push('*');
            }
            '\\' => match chars.next() {
                Some(e) if !e.is_ascii_alphanumeric() => out.push(e),
                _ => return Err(()),
            },
            '*' | '+' | '?' | '(' | ')' | '[' | ']' | '{' | '}' | '|' | '^' | '$' => return Err(()),
            other => out.push(other),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flux_images_in_argo_cd_syntax() {
        let s = |v: &str| Some(v.to_owned());
        assert_eq!(
            image_override(s("nginx"), s("ghcr.io/acme/nginx"), s("1.27"), None),
            Ok(s("nginx=ghcr.io/acme/nginx:1.27"))
        );
        assert_eq!(
            image_override(s("nginx"), None, s("1.27"), s("sha256:abc")),
            Ok(s("nginx@sha256:abc"))
        );
        assert_eq!(
            image_override(s("localhost:5000/app"), None, s("v2"), None),
            Ok(s("localhost:5000/app:v2"))
        );
        assert_eq!(
            image_override(s("app"), s("registry.example/app"), None, None),
            Ok(s("app=registry.example/app"))
        );
        assert_eq!(image_override(s("app"), None, None, None), Ok(None));
        assert!(image_override(s("app"), s("registry:5000"), None, None).is_err());
        assert!(image_override(None, None, s("1"), None).is_err());
    }

    #[test]
    fn selector_regexes_as_globs() {
        assert_eq!(regex_glob("podinfo"), Ok("podinfo".into()));
        assert_eq!(regex_glob("^web-.*$"), Ok("web-*".into()));
        assert_eq!(
            regex_glob("apps\\.example\\.com"),
            Ok("apps.example.com".into())
        );
        assert_eq!(regex_glob("(a|b)"), Err(()));
        assert_eq!(regex_glob("web-[0-9]+"), Err(()));
    }
}
