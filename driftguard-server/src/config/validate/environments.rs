//! An environment's name, desired side, kinds and namespaces; the other sections each have a
//! file.

use std::collections::HashSet;

use super::super::{ConfigFile, DesiredPlan, EnvironmentConfig, EnvironmentPlan, ResolvedConfig};
use super::{audit, check_globs, is_dns_label, kustomize, live, rendering, terraform, Problems};

/// Every environment, in file order.
pub(super) fn check(problems: &mut Problems, f: &ConfigFile, plan: &ResolvedConfig) {
    let mut seen = HashSet::new();
    for (i, (env, resolved)) in f.environments.iter().zip(&plan.environments).enumerate() {
        let at = format!("environments[{i}]");
        name(problems, &at, env, &mut seen);
        desired(problems, &at, env, resolved);
        rendering::check(problems, &at, env, resolved);
        if let Some(k) = &env.kustomize {
            kustomize::check(problems, &at, env, k, resolved);
        }
        if let Some(t) = &env.terraform {
            terraform::check(problems, &at, env, t, resolved);
        }
        live::check(problems, &at, env, resolved);
        kinds(problems, &at, env);
        if let Some(a) = &env.audit {
            audit::check(problems, &format!("{at}.audit"), a);
        }
        default_namespace(problems, &at, env);
    }
}

/// Not empty, of the allowed characters, and not another environment's.
fn name(problems: &mut Problems, at: &str, env: &EnvironmentConfig, seen: &mut HashSet<String>) {
    if env.name.trim().is_empty() {
        problems.add(format!("{at}.name"), "must not be empty");
    } else if !env
        .name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        problems.add(
            format!("{at}.name"),
            format!(
                "`{}` may only hold letters, digits, `-`, `_` and `.`",
                env.name
            ),
        );
    } else if !seen.insert(env.name.clone()) {
        problems.add(
            format!("{at}.name"),
            format!("environment `{}` is defined twice", env.name),
        );
    }
}

/// One desired side: a repository with a URL, or a folder that exists; globs that compile.
fn desired(problems: &mut Problems, at: &str, env: &EnvironmentConfig, resolved: &EnvironmentPlan) {
    match (&env.git, &env.dir) {
        (None, None) => problems.add(
            at,
            "no desired side: set `git` (a repository) or `dir` (a folder)",
        ),
        (Some(_), Some(_)) => problems.add(
            format!("{at}.dir"),
            "`git` and `dir` are both set: choose one",
        ),
        (Some(g), None) => {
            if g.url.trim().is_empty() {
                problems.add(format!("{at}.git.url"), "must not be empty");
            }
            check_globs(problems, &format!("{at}.git"), &g.include, &g.exclude);
        }
        (None, Some(d)) => {
            if let Some(DesiredPlan::Folder(folder)) = &resolved.desired {
                if !folder.path.is_dir() {
                    problems.add(
                        format!("{at}.dir"),
                        format!("folder {} does not exist", folder.path.display()),
                    );
                }
            }
            let (inc, exc) = d.globs();
            check_globs(problems, &format!("{at}.dir"), &inc, &exc);
        }
    }
}

/// Kinds to read name both their `apiVersion` and `kind`; orphan kinds are not empty.
fn kinds(problems: &mut Problems, at: &str, env: &EnvironmentConfig) {
    for (j, k) in env.kinds.iter().enumerate() {
        if k.api_version.trim().is_empty() || k.kind.trim().is_empty() {
            problems.add(
                format!("{at}.kinds[{j}]"),
                "needs both `apiVersion` and `kind`",
            );
        }
    }
    for (j, k) in env.orphan_kinds.iter().flatten().enumerate() {
        if k.trim().is_empty() {
            problems.add(format!("{at}.orphanKinds[{j}]"), "must not be empty");
        }
    }
}

fn default_namespace(problems: &mut Problems, at: &str, env: &EnvironmentConfig) {
    if env
        .default_namespace
        .as_ref()
        .is_some_and(|n| !is_dns_label(n))
    {
        problems.add(
            format!("{at}.defaultNamespace"),
            "must be a namespace name (lower-case letters, digits and `-`, at most 63)",
        );
    }
}
