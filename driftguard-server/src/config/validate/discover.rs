//! The `discover:` section: namespaces, the filters' selector, names, plugins, Git
//! credentials, destination clusters and the defaults' audit section.

use std::collections::HashSet;

use driftguard_core::admission::LabelSelector;

use super::super::resolve::object_key;
use super::super::{ConfigFile, DiscoverConfig, ResolvedConfig};
use super::{audit, check_file, is_dns_label, rendering, Problems};

const AT: &str = "discover";

/// Every key of the section, in file order.
pub(super) fn check(
    problems: &mut Problems,
    f: &ConfigFile,
    d: &DiscoverConfig,
    plan: &ResolvedConfig,
) {
    if let Some(c) = &d.cluster {
        if c.in_cluster && (c.kubeconfig.is_some() || c.context.is_some()) {
            problems.add(
                format!("{AT}.cluster.inCluster"),
                "inCluster and a kubeconfig/context are both set: choose one",
            );
        }
    }
    if let Some(ns) = &d.argocd.namespace {
        namespace(problems, format!("{AT}.argocd.namespace"), ns);
    }
    namespaces(
        problems,
        &format!("{AT}.argocd.namespaces"),
        &d.argocd.namespaces,
    );
    namespaces(
        problems,
        &format!("{AT}.flux.namespaces"),
        &d.flux.namespaces,
    );
    filters(problems, d);
    names(problems, f, d);
    let mut plugins = HashSet::new();
    for (i, p) in d.plugins.iter().enumerate() {
        let at = format!("{AT}.plugins[{i}]");
        if p.name.trim().is_empty() {
            problems.add(format!("{at}.name"), "must not be empty");
        } else if !plugins.insert(p.name.as_str()) {
            problems.add(
                format!("{at}.name"),
                format!("plugin `{}` is listed twice", p.name),
            );
        }
        rendering::render(problems, &format!("{at}.render"), &p.render);
    }
    credentials(problems, d, plan);
    clusters(problems, d);
    if let Some(a) = &d.defaults.audit {
        audit::check(problems, &format!("{AT}.defaults.audit"), a);
    }
}

fn namespace(problems: &mut Problems, at: String, ns: &str) {
    if !is_dns_label(ns) {
        problems.add(
            at,
            "must be a namespace name (lower-case letters, digits and `-`, at most 63)",
        );
    }
}

fn namespaces(problems: &mut Problems, at: &str, list: &[String]) {
    for (i, ns) in list.iter().enumerate() {
        namespace(problems, format!("{at}[{i}]"), ns);
    }
}

/// The selector parses as the API server parses it; projects and namespaces are names.
fn filters(problems: &mut Problems, d: &DiscoverConfig) {
    let at = format!("{AT}.filters");
    if let Some(s) = &d.filters.selector {
        if let Err(e) = LabelSelector::parse(s) {
            problems.add(format!("{at}.selector"), e.to_string());
        }
    }
    for (i, p) in d.filters.projects.iter().enumerate() {
        if p.trim().is_empty() {
            problems.add(format!("{at}.projects[{i}]"), "must not be empty");
        }
    }
    namespaces(problems, &format!("{at}.namespaces"), &d.filters.namespaces);
}

/// Whether `name` may be an environment's name: letters, digits, `-`, `_` and `.`.
fn is_environment_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

/// Each discovered name renamed once, to an environment name no other environment has.
fn names(problems: &mut Problems, f: &ConfigFile, d: &DiscoverConfig) {
    let configured: HashSet<&str> = f.environments.iter().map(|e| e.name.as_str()).collect();
    let mut from = HashSet::new();
    let mut to = HashSet::new();
    for (i, n) in d.names.iter().enumerate() {
        let at = format!("{AT}.names[{i}]");
        if !(n.discovered.starts_with("argocd.") || n.discovered.starts_with("flux.")) {
            problems.add(
                format!("{at}.discovered"),
                format!(
                    "`{}` is not a discovered environment's name (`argocd.<name>`, `argocd.<namespace>.<name>`, `flux.<namespace>.<name>`)",
                    n.discovered
                ),
            );
        } else if !from.insert(n.discovered.as_str()) {
            problems.add(
                format!("{at}.discovered"),
                format!("`{}` is renamed twice", n.discovered),
            );
        }
        if !is_environment_name(&n.name) {
            problems.add(
                format!("{at}.name"),
                format!(
                    "`{}` may only hold letters, digits, `-`, `_` and `.`",
                    n.name
                ),
            );
        } else if configured.contains(n.name.as_str()) {
            problems.add(
                format!("{at}.name"),
                format!(
                    "`{}` is a configured environment's name: the configured one would be scanned, not the discovered one",
                    n.name
                ),
            );
        } else if !to.insert(n.name.as_str()) {
            problems.add(
                format!("{at}.name"),
                format!("`{}` is given to two discovered environments", n.name),
            );
        }
    }
}

/// A prefix, and a token variable or a key file that exists.
fn credentials(problems: &mut Problems, d: &DiscoverConfig, plan: &ResolvedConfig) {
    let resolved = plan
        .discover
        .as_ref()
        .map(|p| p.context.git_credentials.as_slice())
        .unwrap_or_default();
    for (i, c) in d.git_credentials.iter().enumerate() {
        let at = format!("{AT}.gitCredentials[{i}]");
        if c.url_prefix.trim().is_empty() {
            problems.add(format!("{at}.urlPrefix"), "must not be empty");
        }
        match (&c.token_env, &c.ssh_key) {
            (None, None) => problems.add(at.clone(), "set `tokenEnv` or `sshKey`"),
            (Some(t), _) if t.trim().is_empty() => {
                problems.add(format!("{at}.tokenEnv"), "must not be empty");
            }
            _ => {}
        }
        if let Some(key) = resolved.get(i).and_then(|r| r.ssh_key.as_ref()) {
            check_file(problems, format!("{at}.sshKey"), key);
        }
    }
}

/// One way to name each cluster, one way to reach it, each named once.
fn clusters(problems: &mut Problems, d: &DiscoverConfig) {
    let mut seen = HashSet::new();
    for (i, c) in d.clusters.iter().enumerate() {
        let at = format!("{AT}.clusters[{i}]");
        let named: Vec<(&str, &str)> = [
            ("server", c.server.as_deref()),
            ("name", c.name.as_deref()),
            ("kubeConfigSecret", c.kube_config_secret.as_deref()),
            ("kubeConfigConfigMap", c.kube_config_config_map.as_deref()),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?)))
        .collect();
        match named.as_slice() {
            [] => problems.add(
                at.clone(),
                "names no cluster: set one of `server`, `name`, `kubeConfigSecret` or `kubeConfigConfigMap`",
            ),
            [(key, value)] => {
                if value.trim().is_empty() {
                    problems.add(format!("{at}.{key}"), "must not be empty");
                } else if key.starts_with("kubeConfig") && object_key(value).is_none() {
                    problems.add(
                        format!("{at}.{key}"),
                        format!("`{value}` is not `<namespace>/<name>`"),
                    );
                } else {
                    let id = format!("{key} {}", value.trim_end_matches('/'));
                    if !seen.insert(id) {
                        problems.add(
                            format!("{at}.{key}"),
                            format!("`{value}` is listed twice"),
                        );
                    }
                }
            }
            [_, (key, _), ..] => problems.add(
                format!("{at}.{key}"),
                "names a second cluster: set only one of `server`, `name`, `kubeConfigSecret` or `kubeConfigConfigMap`",
            ),
        }
        if c.in_cluster && (c.kubeconfig.is_some() || c.context.is_some()) {
            problems.add(
                format!("{at}.inCluster"),
                "inCluster and a kubeconfig/context are both set: choose one",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    fn problems(text: &str) -> Vec<String> {
        match Config::from_text(Path::new("d.yaml"), text) {
            Ok(_) => Vec::new(),
            Err(e) => e.problems.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn a_full_section_is_valid_and_resolved() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("acme.key"), "key").expect("write");
        let text = "discover:
  cluster: {kubeconfig: home.yaml, context: ops}
  argocd: {namespace: argo, namespaces: [argo, team-a]}
  flux: {namespaces: [flux-system]}
  filters: {selector: 'team in (a,b)', projects: [default]}
  names: [{discovered: argocd.shop, name: shop-prod}]
  plugins: [{name: cmp-v1, render: {command: [render.sh]}}]
  gitCredentials:
    - {urlPrefix: 'https://github.com/acme/', tokenEnv: GITHUB_TOKEN}
    - {urlPrefix: 'git@github.com:acme/', sshKey: acme.key}
  clusters:
    - {server: 'https://10.0.0.1:6443/', context: prod}
    - {name: prod-eu, context: prod-eu}
    - {kubeConfigSecret: flux-system/prod-kubeconfig, context: prod}
  readSecrets: true
";
        let config =
            Config::from_text(&dir.path().join("driftguard.yaml"), text).expect("a valid section");
        let plan = config.plan();
        let d = plan.discover.expect("a discover section");
        assert_eq!(d.cluster.kubeconfig, Some(dir.path().join("home.yaml")));
        assert_eq!(d.cluster.context.as_deref(), Some("ops"));
        let argocd = d.argocd.expect("Argo CD is read");
        assert_eq!(argocd.namespace, "argo");
        assert_eq!(argocd.namespaces, ["argo", "team-a"]);
        assert_eq!(d.context.argocd_namespace.as_deref(), Some("argo"));
        assert_eq!(d.flux.as_deref(), Some(&["flux-system".to_owned()][..]));
        assert_eq!(d.selector.as_deref(), Some("team in (a,b)"));
        assert!(d.context.filters.selector.is_some());
        assert_eq!(d.context.names["argocd.shop"], "shop-prod");
        assert_eq!(d.context.plugins["cmp-v1"].command, ["render.sh"]);
        assert_eq!(
            d.context.git_credentials[1].ssh_key,
            Some(dir.path().join("acme.key"))
        );
        let c = &d.context.clusters;
        assert_eq!(
            c.servers["https://10.0.0.1:6443"].context.as_deref(),
            Some("prod")
        );
        assert_eq!(c.names["prod-eu"].context.as_deref(), Some("prod-eu"));
        assert_eq!(c.kubeconfig_secrets.len(), 1);
        assert_eq!(c.home.kubeconfig, Some(dir.path().join("home.yaml")));
        assert!(d.read_secrets);
    }

    #[test]
    fn the_defaults_read_argo_cd_in_argocd_and_flux_everywhere() {
        let config =
            Config::from_text(Path::new("d.yaml"), "discover: {}\n").expect("a valid section");
        let d = config.plan().discover.expect("a discover section");
        let argocd = d.argocd.expect("Argo CD is read");
        assert_eq!(argocd.namespace, "argocd");
        assert_eq!(argocd.namespaces, ["argocd"]);
        assert_eq!(d.flux, Some(Vec::new()));
        assert_eq!(d.cluster, Default::default());
        assert!(!d.read_secrets);
        let off = Config::from_text(
            Path::new("d.yaml"),
            "discover: {argocd: {enabled: false}, flux: {enabled: false}}\n",
        )
        .expect("a valid section");
        let d = off.plan().discover.expect("a discover section");
        assert!(d.argocd.is_none() && d.flux.is_none());
    }

    #[test]
    fn problems_are_located() {
        let text = "environments:
  - name: shop
    dir: .
    live: {context: x}
discover:
  cluster: {inCluster: true, context: x}
  argocd: {namespace: Argo_CD}
  filters:
    selector: 'team in a'
  names:
    - discovered: shop
      name: x
    - discovered: argocd.a
      name: shop
    - discovered: argocd.a
      name: a/b
  plugins:
    - name: p
      render: {command: []}
    - name: p
      render: {command: [x]}
  gitCredentials:
    - urlPrefix: https://x/
  clusters:
    - server: https://a
      name: a
    - context: x
    - kubeConfigSecret: nope
";
        assert_eq!(
            problems(text),
            [
                "d.yaml:6: discover.cluster.inCluster: inCluster and a kubeconfig/context are both set: choose one",
                "d.yaml:7: discover.argocd.namespace: must be a namespace name (lower-case letters, digits and `-`, at most 63)",
                "d.yaml:9: discover.filters.selector: invalid label selector `team in a`: found `a`, expected `(`",
                "d.yaml:11: discover.names[0].discovered: `shop` is not a discovered environment's name (`argocd.<name>`, `argocd.<namespace>.<name>`, `flux.<namespace>.<name>`)",
                "d.yaml:14: discover.names[1].name: `shop` is a configured environment's name: the configured one would be scanned, not the discovered one",
                "d.yaml:15: discover.names[2].discovered: `argocd.a` is renamed twice",
                "d.yaml:16: discover.names[2].name: `a/b` may only hold letters, digits, `-`, `_` and `.`",
                "d.yaml:19: discover.plugins[0].render.command: names no program",
                "d.yaml:20: discover.plugins[1].name: plugin `p` is listed twice",
                "d.yaml:23: discover.gitCredentials[0]: set `tokenEnv` or `sshKey`",
                "d.yaml:26: discover.clusters[0].name: names a second cluster: set only one of `server`, `name`, `kubeConfigSecret` or `kubeConfigConfigMap`",
                "d.yaml:27: discover.clusters[1]: names no cluster: set one of `server`, `name`, `kubeConfigSecret` or `kubeConfigConfigMap`",
                "d.yaml:28: discover.clusters[2].kubeConfigSecret: `nope` is not `<namespace>/<name>`",
            ]
        );
    }
}
