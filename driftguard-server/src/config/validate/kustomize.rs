//! An environment's `kustomize` section: alone among the renderers, and each option in the form
//! kustomize (and Argo CD, and Flux) accepts it.

use driftguard_sources::render::{
    annotation_key_problem, is_var_name, label_problem, ImageOverride,
};

use super::super::{DesiredPlan, EnvironmentConfig, EnvironmentPlan, KustomizeConfig};
use super::{is_dns_label, Problems};

/// The keys of a patch's `target`, as kustomize's `Selector` names them.
const TARGET_KEYS: [&str; 7] = [
    "group",
    "version",
    "kind",
    "name",
    "namespace",
    "labelSelector",
    "annotationSelector",
];

/// `at` is the environment's key (`environments[0]`).
pub(super) fn check(
    problems: &mut Problems,
    at: &str,
    env: &EnvironmentConfig,
    k: &KustomizeConfig,
    resolved: &EnvironmentPlan,
) {
    let at_k = format!("{at}.kustomize");
    for (other, set) in [
        ("helm", env.helm.is_some()),
        ("render", env.render.is_some()),
        ("terraform", env.terraform.is_some()),
    ] {
        if set {
            problems.add(
                at_k.clone(),
                format!("`kustomize` and `{other}` are both set: choose one"),
            );
        }
    }
    if let Some(ns) = &k.namespace {
        if !is_dns_label(ns) {
            problems.add(
                format!("{at_k}.namespace"),
                "must be a namespace name (lower-case letters, digits and `-`, at most 63)",
            );
        }
    }
    for (j, image) in k.images.iter().enumerate() {
        if let Err(e) = ImageOverride::parse(image) {
            problems.add(format!("{at_k}.images[{j}]"), e.to_string());
        }
    }
    for (key, value) in &k.common_labels {
        // a value holding `$ARGOCD_APP_...` is checked once replaced, when it is built
        let problem = label_problem(key, if value.contains('$') { "" } else { value });
        if let Some(p) = problem {
            problems.add(format!("{at_k}.commonLabels"), p);
        }
    }
    for key in k.common_annotations.keys() {
        if let Some(p) = annotation_key_problem(key) {
            problems.add(format!("{at_k}.commonAnnotations"), p);
        }
    }
    // a plain folder's files can be checked now; a repository's only at its revision
    let folder = match &resolved.desired {
        Some(DesiredPlan::Folder(f)) => Some(&f.path),
        _ => None,
    };
    for (j, p) in k.patches.iter().enumerate() {
        let at_p = format!("{at_k}.patches[{j}]");
        match (&p.patch, &p.path) {
            (None, None) => problems.add(at_p.clone(), "needs `patch` (inline) or `path` (a file)"),
            (Some(_), Some(_)) => problems.add(
                format!("{at_p}.path"),
                "`patch` and `path` are both set: choose one",
            ),
            (Some(text), None) => {
                if let Err(e) = serde_yaml::from_str::<serde_yaml::Value>(text) {
                    problems.add(format!("{at_p}.patch"), format!("is not YAML: {e}"));
                }
            }
            (None, Some(path)) => {
                if path.trim().is_empty() || path.starts_with('/') {
                    problems.add(
                        format!("{at_p}.path"),
                        "must be a file relative to the folder",
                    );
                } else if let Some(f) = folder {
                    if !f.join(path).is_file() {
                        problems.add(
                            format!("{at_p}.path"),
                            format!("file {} does not exist", f.join(path).display()),
                        );
                    }
                }
            }
        }
        for key in p.target.iter().flat_map(|t| t.keys()) {
            if !TARGET_KEYS.contains(&key.as_str()) {
                problems.add(
                    format!("{at_p}.target.{key}"),
                    format!("is not a target key ({})", TARGET_KEYS.join(", ")),
                );
            }
        }
    }
    for (j, r) in k.replicas.iter().enumerate() {
        if r.name.trim().is_empty() {
            problems.add(format!("{at_k}.replicas[{j}].name"), "must not be empty");
        }
    }
    for (j, c) in k.components.iter().enumerate() {
        let key = format!("{at_k}.components[{j}]");
        if c.trim().is_empty() || c.starts_with('/') {
            problems.add(key, "must be a folder relative to the environment's folder");
        } else if let Some(f) = folder {
            if !f.join(c).is_dir() {
                problems.add(
                    key,
                    format!("folder {} does not exist", f.join(c).display()),
                );
            }
        }
    }
    for name in k.substitute.keys() {
        if !is_var_name(name) {
            problems.add(
                format!("{at_k}.substitute"),
                format!(
                    "`{name}` is not a variable name: a letter or `_`, then letters, digits or `_` (Flux's rule)"
                ),
            );
        }
    }
}
