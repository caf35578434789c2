//! Checking the values together: every problem, each with the key at fault (its line is found
//! by the caller, [`super::locate`]).
//!
//! One file per concern, one function per check: [`environments`] (names, desired and live
//! sides, kinds, namespaces), [`discover`] (the `discover:` section), [`rendering`] (`helm`
//! and `render`), [`kustomize`],
//! [`terraform`], [`audit`],
//! [`server`] (notifiers, leader election, proxies, tokens), [`store`] (the store, the Secret
//! key) and here the programs every environment shares. Paths are checked as the plan
//! ([`ResolvedConfig`]) resolved them: what is checked is what is used.
//!
//! The checks run in file order of their keys where they can; problems on one line keep the
//! order in which they are found.

mod audit;
mod discover;
mod environments;
mod kustomize;
mod live;
mod rendering;
mod server;
mod store;
mod terraform;

use std::path::Path;

use super::{Config, ConfigProblem, ResolvedConfig};

/// The problems found so far.
pub(super) struct Problems {
    file: String,
    out: Vec<ConfigProblem>,
}

impl Problems {
    /// A problem of the key `path`.
    pub(super) fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.out.push(ConfigProblem {
            file: self.file.clone(),
            line: 0,
            column: 0,
            path: Some(path.into()),
            message: message.into(),
        });
    }
}

/// Every problem of `config`, whose plan is `plan` (lines are filled in by the caller).
pub(super) fn validate(config: &Config, plan: &ResolvedConfig) -> Vec<ConfigProblem> {
    let mut problems = Problems {
        file: config.path.display().to_string(),
        out: Vec::new(),
    };
    let f = &config.file;
    environments::check(&mut problems, f, plan);
    if let Some(d) = &f.discover {
        discover::check(&mut problems, f, d, plan);
    }
    server::notifiers(&mut problems, f, plan);
    if let (Some(bin), Some(resolved)) = (&f.helm_bin, &plan.helm_bin) {
        check_binary(&mut problems, "helmBin", resolved, bin);
    }
    store::store(&mut problems, f);
    server::ha(&mut problems, f, plan);
    server::tls(&mut problems, plan);
    server::trusted_proxies(&mut problems, f);
    server::tokens(&mut problems, f);
    server::role_bindings(&mut problems, f);
    server::oidc(&mut problems, f, plan);
    store::secret_key(&mut problems, f, plan);
    problems.out
}

/// A configured binary named by a path (holding `/`) must exist; a bare name is looked up on
/// PATH when it runs.
fn check_binary(problems: &mut Problems, key: &str, resolved: &Path, given: &Path) {
    if given.to_string_lossy().contains('/') && !resolved.is_file() {
        problems.add(key, format!("file {} does not exist", resolved.display()));
    }
}

/// A file the plan names must exist.
fn check_file(problems: &mut Problems, key: impl Into<String>, resolved: &Path) {
    if !resolved.is_file() {
        problems.add(key, format!("file {} does not exist", resolved.display()));
    }
}

/// Include and exclude globs: none empty, and each one compiled as the sources compile it (so
/// that a bad glob is a located problem, not an error of the first scan).
fn check_globs(problems: &mut Problems, at: &str, include: &[String], exclude: &[String]) {
    for (field, globs) in [("include", include), ("exclude", exclude)] {
        for (i, g) in globs.iter().enumerate() {
            if g.trim().is_empty() {
                problems.add(format!("{at}.{field}[{i}]"), "empty glob");
            } else if let Some(message) = glob_error(g) {
                problems.add(format!("{at}.{field}[{i}]"), message);
            }
        }
    }
}

/// Why the sources cannot compile `glob`, if they cannot.
fn glob_error(glob: &str) -> Option<String> {
    use driftguard_core::ports::SourceError;
    match driftguard_sources::files::DirSource::new(".").with_globs(&[glob.to_owned()], &[]) {
        Ok(_) => None,
        Err(SourceError::Invalid(e)) => Some(e.message),
        Err(e) => Some(e.to_string()),
    }
}

/// Whether `name` is a Helm release name: lower-case letters, digits, `-` and `.` (DNS
/// labels joined by dots), at most 53 characters.
fn is_release_name(name: &str) -> bool {
    name.len() <= 53 && !name.is_empty() && name.split('.').all(is_dns_label)
}

/// Whether `name` is a valid namespace name (an RFC 1123 label).
fn is_dns_label(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}
