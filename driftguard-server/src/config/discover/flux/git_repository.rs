//! Flux `GitRepository` sources (`source.toolkit.fluxcd.io/v1`): the URL, the reference
//! with Flux's precedence and default, and what of the source DriftGuard does not read.

use serde_json::Value;

use crate::config::discover::read::{
    at, boolean, get, get_path, list, string, unknown_keys, Problems,
};
use crate::config::discover::{git_config, DiscoveryContext, ObjectKey};
use crate::config::GitConfig;

/// A `GitRepository` as the Git side (without the folder): its URL, its reference (Flux's
/// precedence: commit, name, semver, tag, branch; `master` without any) and the credentials
/// configured for its URL. Another kind of source is a blocking problem.
pub(super) fn git_source(
    kind: &str,
    key: &ObjectKey,
    field: &str,
    ctx: &DiscoveryContext,
    p: &mut Problems,
) -> Option<GitConfig> {
    if kind != "GitRepository" {
        p.block(
            at(field, "kind"),
            format!("a source of kind {kind} ({key}) cannot be fetched here: DriftGuard reads Git repositories (GitRepository sources)"),
        );
        return None;
    }
    let Some(repository) = ctx.git_repositories.get(key) else {
        p.block(
            field,
            format!("the GitRepository {key} was not found among the objects read"),
        );
        return None;
    };
    let f = format!("GitRepository/{key}.spec");
    let spec = get(repository, "spec").unwrap_or(&Value::Null);
    unknown_keys(
        spec,
        &f,
        &[
            "url",
            "ref",
            "secretRef",
            "include",
            "ignore",
            "recurseSubmodules",
            "sparseCheckout",
        ],
        &[
            "interval",
            "timeout",
            "provider",
            "serviceAccountName",
            "verify",
            "proxySecretRef",
            "suspend",
        ],
        p,
    );
    let Some(url) = string(spec, "url", &f, p) else {
        p.block(at(&f, "url"), "is not set");
        return None;
    };
    let rf = at(&f, "ref");
    let r = get(spec, "ref").unwrap_or(&Value::Null);
    let reference = if let Some(commit) = string(r, "commit", &rf, p) {
        commit
    } else if let Some(name) = string(r, "name", &rf, p) {
        name
    } else if let Some(range) = string(r, "semver", &rf, p) {
        let resolved = get_path(repository, &["status", "artifact", "revision"])
            .and_then(Value::as_str)
            .and_then(|rev| rev.split_once('@').map(|(tag, _)| tag.to_owned()));
        let Some(tag) = resolved else {
            p.block(
                at(&rf, "semver"),
                format!("`{range}` is a version range, which DriftGuard does not resolve, and Flux has not resolved it yet"),
            );
            return None;
        };
        p.note(
            at(&rf, "semver"),
            format!("`{range}` is a version range, which DriftGuard does not resolve: the tag Flux last resolved ({tag}) is read until the next discovery"),
        );
        tag
    } else if let Some(tag) = string(r, "tag", &rf, p) {
        tag
    } else {
        string(r, "branch", &rf, p).unwrap_or_else(|| "master".into())
    };
    let git = git_config(&url, Some(reference), None, ctx);
    if let Some(secret) = get_path(spec, &["secretRef", "name"]).and_then(Value::as_str) {
        if git.token_env.is_none() && git.ssh_key.is_none() {
            p.note(
                at(&f, "secretRef"),
                format!("the repository takes credentials (Secret {secret}), and none are configured for its URL in DriftGuard's discovery configuration: reading it may fail"),
            );
        }
    }
    if !list(spec, "include", &f, p).is_empty() {
        p.note(
            at(&f, "include"),
            "the contents of other GitRepositories that Flux copies into this one are not read",
        );
    }
    if string(spec, "ignore", &f, p).is_some() {
        p.note(
            at(&f, "ignore"),
            "these .sourceignore patterns are not applied: files Flux leaves out are read",
        );
    }
    if boolean(spec, "recurseSubmodules", &f, p) {
        p.note(at(&f, "recurseSubmodules"), "submodules are not read");
    }
    Some(git)
}
