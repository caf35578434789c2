//! An environment's `terraform` section.

use std::path::Path;

use super::super::{DesiredPlan, EnvironmentConfig, EnvironmentPlan, TerraformConfig};
use super::{check_binary, check_file, Problems};

/// `at` is the environment's key (`environments[0]`).
pub(super) fn check(
    problems: &mut Problems,
    at: &str,
    env: &EnvironmentConfig,
    t: &TerraformConfig,
    resolved: &EnvironmentPlan,
) {
    let at_t = format!("{at}.terraform");
    if env.helm.is_some() || env.render.is_some() {
        problems.add(
            at_t.clone(),
            "`terraform` and `helm`/`render` are both set: choose one",
        );
    }
    let globs = match (&env.git, &env.dir) {
        (Some(g), _) => !g.include.is_empty() || !g.exclude.is_empty(),
        (None, Some(d)) => {
            let (include, exclude) = d.globs();
            !include.is_empty() || !exclude.is_empty()
        }
        _ => false,
    };
    if globs {
        problems.add(
            at_t.clone(),
            "`include` and `exclude` do not apply to a Terraform environment: remove them",
        );
    }
    if t.workspace.as_ref().is_some_and(|w| w.trim().is_empty()) {
        problems.add(format!("{at_t}.workspace"), "must not be empty");
    }
    let folder = match &resolved.desired {
        Some(DesiredPlan::Folder(f)) => Some(&f.path),
        _ => None,
    };
    for (j, f) in t.var_files.iter().enumerate() {
        let key = format!("{at_t}.varFiles[{j}]");
        if f.trim().is_empty() {
            problems.add(key, "must not be empty");
            continue;
        }
        // relative variable files are the module's: checked here for a folder only
        let p = Path::new(f);
        let file = if p.is_absolute() {
            Some(p.to_path_buf())
        } else {
            folder.map(|d| d.join(p))
        };
        if let Some(file) = file {
            check_file(problems, key, &file);
        }
    }
    let plan = resolved.terraform.as_ref();
    if let (Some(bin), Some(resolved)) = (&t.binary, plan.and_then(|p| p.binary.as_ref())) {
        check_binary(problems, &format!("{at_t}.binary"), resolved, bin);
    }
    if let Some(c) = plan.and_then(|p| p.cli_config_file.as_ref()) {
        check_file(problems, format!("{at_t}.cliConfigFile"), c);
    }
    if t.timeout.is_some_and(|d| d.0.is_zero()) {
        problems.add(format!("{at_t}.timeout"), "must be longer than 0s");
    }
    if let Some(o) = &t.orphans {
        let kinds = driftguard_core::terraform::cloud::AWS_KINDS;
        for (j, k) in o.aws.kinds.iter().enumerate() {
            if !kinds.contains(&k.as_str()) {
                problems.add(
                    format!("{at_t}.orphans.aws.kinds[{j}]"),
                    format!("`{k}` cannot be listed: one of {}", kinds.join(", ")),
                );
            }
        }
        if let Some(e) = &o.aws.endpoint {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                problems.add(
                    format!("{at_t}.orphans.aws.endpoint"),
                    "must be an http:// or https:// URL",
                );
            }
        }
    }
}
