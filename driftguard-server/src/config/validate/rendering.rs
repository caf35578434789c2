//! An environment's `helm` or `render` section.

use driftguard_sources::render::Renderer;

use super::super::{
    DesiredPlan, EnvironmentConfig, EnvironmentPlan, HelmConfig, InlineValues, RenderConfig,
};
use super::{check_binary, is_dns_label, is_release_name, Problems};

/// One renderer at most, no globs with it, and each section's own checks.
pub(super) fn check(
    problems: &mut Problems,
    at: &str,
    env: &EnvironmentConfig,
    resolved: &EnvironmentPlan,
) {
    if env.helm.is_some() && env.render.is_some() {
        problems.add(
            format!("{at}.render"),
            "`helm` and `render` are both set: choose one",
        );
    }
    if env.helm.is_some() || env.render.is_some() {
        let (side, globs) = match (&env.git, &env.dir) {
            (Some(g), _) => ("git", !g.include.is_empty() || !g.exclude.is_empty()),
            (None, Some(d)) => {
                let (include, exclude) = d.globs();
                ("dir", !include.is_empty() || !exclude.is_empty())
            }
            (None, None) => ("", false),
        };
        if globs {
            problems.add(
                format!("{at}.{side}"),
                "`include` and `exclude` do not apply to a rendered environment (helm or render): remove them",
            );
        }
        if env.git.as_ref().is_some_and(|g| g.recurse == Some(false)) {
            problems.add(
                format!("{at}.git.recurse"),
                "does not apply to a rendered environment (helm or render): remove it",
            );
        }
    }
    if let Some(h) = &env.helm {
        helm(problems, &format!("{at}.helm"), env, h, resolved);
    }
    if let Some(r) = &env.render {
        render(problems, &format!("{at}.render"), r);
    }
}

/// `at` is the section's key (`environments[0].helm`).
fn helm(
    problems: &mut Problems,
    at: &str,
    env: &EnvironmentConfig,
    h: &HelmConfig,
    resolved: &EnvironmentPlan,
) {
    match &h.release_name {
        Some(r) if !is_release_name(r) => problems.add(
            format!("{at}.releaseName"),
            format!("`{r}` is not a release name (lower-case letters, digits, `-` and `.`, at most 53)"),
        ),
        None if !is_release_name(&env.name) => problems.add(
            format!("{at}.releaseName"),
            format!(
                "the environment's name `{}` is not a release name (lower-case letters, digits, `-` and `.`, at most 53): set releaseName",
                env.name
            ),
        ),
        _ => {}
    }
    if let Some(ns) = &h.namespace {
        if !is_dns_label(ns) {
            problems.add(
                format!("{at}.namespace"),
                "must be a namespace name (lower-case letters, digits and `-`, at most 63)",
            );
        }
        if env.default_namespace.as_ref().is_some_and(|d| d != ns) {
            problems.add(
                format!("{at}.namespace"),
                "differs from `defaultNamespace`: a chart's objects that name no namespace are in the release namespace; set only one of them",
            );
        }
    }
    let folder = match &resolved.desired {
        Some(DesiredPlan::Folder(f)) => Some(&f.path),
        _ => None,
    };
    for (j, f) in h.value_files.iter().enumerate() {
        let key = format!("{at}.valueFiles[{j}]");
        if f.trim().is_empty() {
            problems.add(key, "must not be empty");
        } else if env.git.is_some() && f.starts_with('/') {
            problems.add(
                key,
                "must be a file of the repository, relative to the chart folder",
            );
        } else if let (Some(d), false) = (folder, h.ignore_missing_value_files) {
            let p = d.join(f);
            if !p.is_file() {
                problems.add(
                    key,
                    format!(
                        "file {} does not exist (ignoreMissingValueFiles leaves it out)",
                        p.display()
                    ),
                );
            }
        }
    }
    if let Some(InlineValues::Text(t)) = &h.values {
        match serde_yaml::from_str::<serde_yaml::Value>(t) {
            Ok(serde_yaml::Value::Mapping(_) | serde_yaml::Value::Null) => {}
            Ok(_) => problems.add(format!("{at}.values"), "must be a YAML mapping of values"),
            Err(e) => problems.add(format!("{at}.values"), format!("is not YAML: {e}")),
        }
    }
    for (j, p) in h.parameters.iter().enumerate() {
        if p.name.trim().is_empty() {
            problems.add(format!("{at}.parameters[{j}].name"), "must not be empty");
        }
    }
    if h.timeout.is_some_and(|t| t.0.is_zero()) {
        problems.add(format!("{at}.timeout"), "must be longer than 0s");
    }
    if let (Some(bin), Some(Renderer::Helm(r))) = (&h.binary, resolved.renderer()) {
        if let Some(resolved) = &r.binary {
            check_binary(problems, &format!("{at}.binary"), resolved, bin);
        }
    }
}

/// `at` is the section's key (`environments[0].render`, `discover.plugins[0].render`).
pub(super) fn render(problems: &mut Problems, at: &str, r: &RenderConfig) {
    if r.command.first().is_none_or(|c| c.trim().is_empty()) {
        problems.add(format!("{at}.command"), "names no program");
    } else if r.shell && r.command.len() != 1 {
        problems.add(
            format!("{at}.command"),
            "with `shell: true`, give one command line (a list of one string)",
        );
    }
    if r.timeout.is_some_and(|t| t.0.is_zero()) {
        problems.add(format!("{at}.timeout"), "must be longer than 0s");
    }
    if r.max_output == Some(0) {
        problems.add(format!("{at}.maxOutput"), "must be more than 0 bytes");
    }
    for (j, name) in r.pass_env.iter().enumerate() {
        if name.trim().is_empty() {
            problems.add(format!("{at}.passEnv[{j}]"), "must not be empty");
        } else if name.contains('=') || name.contains('\0') || name.trim() != name {
            problems.add(
                format!("{at}.passEnv[{j}]"),
                format!("`{name}` is not the name of an environment variable"),
            );
        }
    }
}
