//! The `server:` section and the notifiers (`server.notifiers` and `notifications`, served
//! together).

use super::super::weak_token;
use super::super::{AddrRange, ConfigFile, NotifierConfig, ResolvedConfig};
use super::{check_file, Problems};

/// Names unique across both lists; CA files that exist.
pub(super) fn notifiers(problems: &mut Problems, f: &ConfigFile, plan: &ResolvedConfig) {
    let keys = f
        .server
        .iter()
        .flat_map(|s| s.notifiers.iter().enumerate())
        .map(|(i, n)| (format!("server.notifiers[{i}]"), n))
        .chain(
            f.notifications
                .iter()
                .enumerate()
                .map(|(i, n)| (format!("notifications[{i}]"), n)),
        );
    // the plan holds them in the same order, CA files resolved
    let mut names = std::collections::HashSet::new();
    for ((at, n), resolved) in keys.zip(&plan.server.settings.notifiers) {
        if !names.insert(n.name()) {
            problems.add(
                at.clone(),
                format!(
                    "the name `{}` is used by another notifier: give each its own `name`",
                    n.name()
                ),
            );
        }
        if let NotifierConfig::Email {
            ca_file: Some(ca), ..
        } = resolved
        {
            check_file(problems, format!("{at}.caFile"), ca);
        }
    }
}

/// Leader election: its timings and names, a shared store, a home kubeconfig that exists.
pub(super) fn ha(problems: &mut Problems, f: &ConfigFile, plan: &ResolvedConfig) {
    let Some(ha) = f.server.as_ref().and_then(|s| s.ha.as_ref()) else {
        return;
    };
    for (key, message) in ha.problems() {
        problems.add(format!("server.ha.{key}"), message);
    }
    if f.store.as_ref().is_none_or(|s| s.mongodb.is_none()) {
        problems.add(
            "server.ha",
            "replicas share their history: set `store.mongodb`",
        );
    }
    if plan
        .server
        .home_cluster
        .as_ref()
        .and_then(|c| c.kubeconfig.as_ref())
        .is_some_and(|p| !p.is_file())
    {
        problems.add("server.ha.homeKubeconfig", "file does not exist");
    }
}

/// Each trusted proxy is an address or a range.
pub(super) fn trusted_proxies(problems: &mut Problems, f: &ConfigFile) {
    for (i, p) in f
        .server
        .iter()
        .flat_map(|s| s.trusted_proxies.iter().enumerate())
    {
        if let Err(message) = p.parse::<AddrRange>() {
            problems.add(format!("server.trustedProxies[{i}]"), message);
        }
    }
}

/// Inline tokens are checked here, where the line is known (those of variables when they are
/// read, see `ServerConfig::resolve_tokens`).
pub(super) fn tokens(problems: &mut Problems, f: &ConfigFile) {
    for (i, t) in f.server.iter().flat_map(|s| s.tokens.iter().enumerate()) {
        if let Some(message) = weak_token(t).filter(|_| !t.is_empty()) {
            problems.add(format!("server.tokens[{i}]"), message);
        }
    }
}

/// Each role binding names environments and only tokens of `apiTokens`; groups and people
/// only with `server.oidc`.
pub(super) fn role_bindings(problems: &mut Problems, f: &ConfigFile) {
    let Some(server) = f.server.as_ref() else {
        return;
    };
    for (i, b) in server.role_bindings.iter().enumerate() {
        if (b.environments.is_empty() && b.environment_labels.is_empty())
            || b.environments.iter().any(|e| e.trim().is_empty())
        {
            problems.add(
                format!("server.roleBindings[{i}].environments"),
                "name at least one environment (a glob such as `prod-*`, or `*` for all), or \
                 discovered ones by label (environmentLabels)",
            );
        }
        if !b.environment_labels.is_empty() && f.discover.is_none() {
            problems.add(
                format!("server.roleBindings[{i}].environmentLabels"),
                "labels select discovered environments: add a `discover:` section, or name the \
                 environments",
            );
        }
        if b.tokens.is_empty() && b.groups.is_empty() && b.users.is_empty() {
            problems.add(
                format!("server.roleBindings[{i}].tokens"),
                "name who holds the role (API tokens of apiTokens by name, or `groups` or \
                 `users` signed in with server.oidc)",
            );
        }
        if (!b.groups.is_empty() || !b.users.is_empty()) && server.oidc.is_none() {
            let key = if b.groups.is_empty() {
                "users"
            } else {
                "groups"
            };
            problems.add(
                format!("server.roleBindings[{i}].{key}"),
                "people sign in with OpenID Connect: configure server.oidc",
            );
        }
        for (key, names) in [("groups", &b.groups), ("users", &b.users)] {
            for (j, n) in names.iter().enumerate() {
                if n.trim().is_empty() {
                    problems.add(
                        format!("server.roleBindings[{i}].{key}[{j}]"),
                        "must not be empty",
                    );
                }
            }
        }
        for (j, t) in b.tokens.iter().enumerate() {
            if !server.api_tokens.iter().any(|a| &a.name == t) {
                problems.add(
                    format!("server.roleBindings[{i}].tokens[{j}]"),
                    format!("no token named `{t}` in server.apiTokens"),
                );
            }
        }
    }
}

/// `server.oidc`: an issuer URL, a client id, the secret in a file or a variable (never
/// inline), `openid` among the scopes; the secret's file exists.
pub(super) fn oidc(problems: &mut Problems, f: &ConfigFile, plan: &ResolvedConfig) {
    let Some(o) = f.server.as_ref().and_then(|s| s.oidc.as_ref()) else {
        return;
    };
    for (key, message) in o.problems() {
        problems.add(format!("server.oidc.{key}"), message);
    }
    if let Some(file) = plan
        .server
        .settings
        .oidc
        .as_ref()
        .and_then(|o| o.client_secret_file.as_ref())
    {
        check_file(problems, "server.oidc.clientSecretFile".to_owned(), file);
    }
}

/// The files of `server.tls` exist (whether they can be used is known when `serve` reads
/// them: the error names the file, never its content).
pub(super) fn tls(problems: &mut Problems, plan: &ResolvedConfig) {
    let Some(t) = plan.server.settings.tls.as_ref() else {
        return;
    };
    for (key, path) in [
        ("certFile", Some(&t.cert_file)),
        ("keyFile", Some(&t.key_file)),
        ("clientCaFile", t.client_ca_file.as_ref()),
    ] {
        if path.is_some_and(|p| !p.is_file()) {
            problems.add(format!("server.tls.{key}"), "file does not exist");
        }
    }
}
