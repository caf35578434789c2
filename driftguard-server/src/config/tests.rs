//! The configuration's tests: loading, validation with located problems, and the plan.

use std::path::Path;

use super::*;

const ENV: &str = "environments:\n  - name: a\n    dir: .\n    live:\n      dump: mod.rs\n";

fn load(text: &str) -> Result<Config, ConfigError> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/config");
    Config::from_text(&dir.join("d.yaml"), text)
}

#[test]
fn snake_case_keys_load_and_warn_with_file_line_and_new_key() {
    let text = format!(
        "{ENV}server:\n  listen: 127.0.0.1:9000\n  poll_interval: 30s\n  notifiers:\n    - type: pagerduty\n      routing_key_env: PD\n      route: {{min_severity: high}}\n      queue:\n        max_attempts: 3\n"
    );
    let config = load(&text).expect("snake_case keys still load");
    let server = config.file.server.as_ref().expect("server section");
    assert_eq!(server.poll_interval.0, std::time::Duration::from_secs(30));
    assert_eq!(server.notifiers[0].name(), "pagerduty");
    let NotifierConfig::Pagerduty {
        routing_key_env,
        route,
        queue,
        ..
    } = &server.notifiers[0]
    else {
        panic!("a pagerduty notifier: {:?}", server.notifiers[0]);
    };
    assert_eq!(routing_key_env, "PD");
    assert_eq!(
        route.min_severity,
        Some(driftguard_core::severity::Severity::High)
    );
    assert_eq!(queue.max_attempts, 3);
    let warnings: Vec<String> = config
        .warnings
        .iter()
        .map(|w| {
            w.to_string()
                .replace(&config.path.display().to_string(), "d.yaml")
        })
        .collect();
    assert_eq!(
        warnings,
        [
            "d.yaml:8: server.poll_interval: snake_case keys are deprecated; write pollInterval",
            "d.yaml:11: server.notifiers[0].routing_key_env: snake_case keys are deprecated; write routingKeyEnv",
            "d.yaml:12: server.notifiers[0].route.min_severity: snake_case keys are deprecated; write minSeverity",
            "d.yaml:14: server.notifiers[0].queue.max_attempts: snake_case keys are deprecated; write maxAttempts",
        ]
    );
}

#[test]
fn camel_case_keys_load_without_warnings() {
    let text = format!(
        "{ENV}server:\n  pollInterval: 30s\n  cacheTtl: 0s\n  notifiers:\n    - type: pagerduty\n      routingKeyEnv: PD\n      route: {{minSeverity: high}}\n      queue: {{maxAttempts: 3, groupWindow: 1s}}\n"
    );
    let config = load(&text).expect("valid");
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    let server = config.file.server.expect("server section");
    assert_eq!(server.cache_ttl.0, std::time::Duration::ZERO);
}

#[test]
fn unknown_and_doubled_keys_are_still_errors() {
    let e = load(&format!("{ENV}server:\n  pollIntervall: 30s\n")).expect_err("typo");
    let s = e.to_string();
    assert!(
        s.contains("d.yaml:7:") && s.contains("unknown field `pollIntervall`"),
        "{s}"
    );
    let e = load(&format!(
        "{ENV}server:\n  pollInterval: 30s\n  poll_interval: 40s\n"
    ))
    .expect_err("the same key twice");
    assert!(e.to_string().contains("duplicate field"), "{e}");
    // snake_case keys outside `server:` and notifiers were never valid
    let e = load(&format!("{ENV}secret_key:\n  env: K\n")).expect_err("not an alias");
    assert!(e.to_string().contains("unknown field `secret_key`"), "{e}");
}

#[test]
fn leader_election_needs_a_shared_store_and_timings_in_order() {
    let mongo = "store:\n  mongodb: {uriEnv: U}\n";
    let ok = load(&format!(
        "{ENV}{mongo}server:\n  ha: {{namespace: dg, leaseDuration: 15s, renewDeadline: 10s, retryPeriod: 2s}}\n"
    ))
    .expect("valid");
    let ha = ok.file.server.and_then(|s| s.ha).expect("ha");
    assert_eq!(ha.namespace, "dg");
    assert_eq!(ha.lease_prefix, "driftguard");
    let problems = |text: String| -> Vec<String> {
        load(&text)
            .expect_err("refused")
            .problems
            .iter()
            .map(|p| p.path.clone().unwrap_or_default())
            .collect()
    };
    assert_eq!(
        problems(format!("{ENV}server:\n  ha: {{}}\n")),
        ["server.ha"],
        "replicas share their history: a MongoDB store"
    );
    assert_eq!(
        problems(format!(
            "{ENV}{mongo}server:\n  ha: {{leaseDuration: 1500ms, renewDeadline: 2s, retryPeriod: 3s, namespace: Not_A_Name, leasePrefix: '', inCluster: true, homeContext: c}}\n"
        )),
        [
            "server.ha.leaseDuration",
            "server.ha.renewDeadline",
            "server.ha.retryPeriod",
            "server.ha.namespace",
            "server.ha.leasePrefix",
            "server.ha.inCluster",
        ]
    );
}

#[test]
fn problems_name_the_camel_case_key_at_the_line_of_either_spelling() {
    for key in ["caFile", "ca_file"] {
        let text = format!(
            "{ENV}notifications:\n  - type: email\n    host: h\n    from: a@b.c\n    to: [d@e.f]\n    {key}: none.pem\n"
        );
        let e = load(&text).expect_err("missing CA file");
        assert_eq!(e.problems.len(), 1, "{e}");
        let p = &e.problems[0];
        assert_eq!(p.path.as_deref(), Some("notifications[0].caFile"), "{e}");
        assert_eq!(p.line, 11, "{e}");
    }
}
#[test]
fn an_inline_token_too_easy_to_guess_is_a_located_problem() {
    let text = format!("{ENV}server:\n  tokens:\n    - 4f1c9e0b7a2d6e83c5b1\n    - a\n");
    let e = load(&text).expect_err("`a` guards nothing");
    assert_eq!(e.problems.len(), 1, "{e}");
    let p = &e.problems[0];
    assert_eq!(p.path.as_deref(), Some("server.tokens[1]"), "{e}");
    assert!(p.message.contains("at least 16"), "{e}");
    assert!(p.line >= 7, "{e}");
    load(&format!("{ENV}server:\n  tokens: [4f1c9e0b7a2d6e83c5b1]\n")).expect("strong");
}

#[test]
fn role_bindings_name_environments_and_known_tokens() {
    let tokens = "  apiTokens:\n    - {name: ops, tokenEnv: OPS}\n";
    load(&format!(
        "{ENV}server:\n{tokens}  roleBindings:\n    - {{role: operator, environments: [prod-*], tokens: [ops]}}\n"
    ))
    .expect("valid");
    assert_eq!(
        problems(&format!(
            "{ENV}server:\n{tokens}  roleBindings:\n    - {{role: viewer, environments: [], tokens: [ops, nobody]}}\n    - {{role: admin, environments: ['*']}}\n"
        )),
        [
            "server.roleBindings[0].environments: name at least one environment (a glob such as `prod-*`, or `*` for all), or discovered ones by label (environmentLabels)",
            "server.roleBindings[0].tokens[1]: no token named `nobody` in server.apiTokens",
            "server.roleBindings[1].tokens: name who holds the role (API tokens of apiTokens by name, or `groups` or `users` signed in with server.oidc)",
        ]
    );
    let e = load(&format!(
        "{ENV}server:\n{tokens}  roleBindings:\n    - {{role: owner, environments: [x], tokens: [ops]}}\n"
    ))
    .expect_err("no such role");
    assert!(e.to_string().contains("owner"), "{e}");
    // by labels: discovered environments only
    assert_eq!(
        problems(&format!(
            "{ENV}server:\n{tokens}  roleBindings:\n    - {{role: viewer, environmentLabels: {{team: web}}, tokens: [ops]}}\n"
        )),
        ["server.roleBindings[0].environmentLabels: labels select discovered environments: add a `discover:` section, or name the environments"]
    );
}

/// `server.oidc`: the secret never inline, an https issuer, `openid`, domains; groups and
/// people in bindings only with it; the secret read from its file or variable by name.
#[test]
fn oidc_settings_and_bindings_of_people_are_checked() {
    let oidc = "  oidc:\n    issuer: https://id.acme.example\n    clientId: driftguard\n    clientSecretEnv: OIDC_SECRET\n    allowedEmailDomains: [acme.example]\n";
    let bindings = "  roleBindings:\n    - {role: operator, environments: [prod-*], groups: [platform]}\n    - {role: viewer, environments: [dev], users: [carol@acme.example]}\n";
    let cfg = load(&format!("{ENV}server:\n{oidc}{bindings}")).expect("valid");
    let server = cfg.file.server.clone().expect("server");
    let o = server.oidc.clone().expect("oidc");
    assert_eq!(o.scopes, ["openid", "email", "profile"], "default scopes");
    assert_eq!(o.groups_claim, "groups");
    let resolved = o
        .resolve(
            &|v: &str| (v == "OIDC_SECRET").then(|| "s3cret-value\n".to_owned()),
            &server.role_bindings,
        )
        .expect("resolves");
    assert_eq!(resolved.client_secret, "s3cret-value");
    assert_eq!(resolved.bindings.len(), 2);
    assert!(
        !format!("{resolved:?}").contains("s3cret"),
        "Debug hides the secret"
    );
    let e = o.resolve(&|_: &str| None, &[]).expect_err("no variable");
    assert_eq!(
        e.to_string(),
        "environment variable OIDC_SECRET (named by server.oidc.clientSecretEnv) is not set"
    );
    assert_eq!(
        problems(&format!(
            "{ENV}server:\n  oidc:\n    issuer: http://id.acme.example\n    clientId: ''\n    clientSecret: hunter2-inline\n    scopes: [email]\n    allowedEmailDomains: [alice@acme.example]\n"
        )),
        [
            "server.oidc.issuer: `http://id.acme.example` must be an https:// URL (http:// only on a loopback address)",
            "server.oidc.clientId: must not be empty",
            "server.oidc.clientSecret: a client secret is never written in the configuration file: put it in a file (clientSecretFile) or an environment variable (clientSecretEnv)",
            "server.oidc.scopes: must include `openid`",
            "server.oidc.allowedEmailDomains: `alice@acme.example` is not a domain (write `acme.example`, not an address)",
        ]
    );
    let e = load(&format!(
        "{ENV}server:\n  oidc:\n    issuer: https://id.acme.example\n    clientId: dg\n    clientSecret: hunter2-inline\n"
    ))
    .expect_err("inline secret");
    assert!(
        !e.to_string().contains("hunter2"),
        "the secret is never shown: {e}"
    );
    assert_eq!(
        problems(&format!(
            "{ENV}server:\n  oidc:\n    issuer: http://127.0.0.1:5556\n    clientId: dg\n    clientSecretFile: nowhere.txt\n"
        ))
        .len(),
        1,
        "a loopback http issuer is fine; the missing file is the problem"
    );
    assert_eq!(
        problems(&format!("{ENV}server:\n{bindings}")),
        [
            "server.roleBindings[0].groups: people sign in with OpenID Connect: configure server.oidc",
            "server.roleBindings[1].users: people sign in with OpenID Connect: configure server.oidc",
        ]
    );
}

const CHART: &str = "../../../examples/helm/charts/shop";

fn problems(text: &str) -> Vec<String> {
    match load(text) {
        Ok(_) => Vec::new(),
        Err(e) => e
            .problems
            .iter()
            .map(|p| format!("{}: {}", p.path.clone().unwrap_or_default(), p.message))
            .collect(),
    }
}

#[test]
fn a_helm_environment_loads_with_argo_cd_keys() {
    let text = format!(
        "environments:\n  - name: prod\n    dir: {CHART}\n    helm:\n      releaseName: shop\n      namespace: shop-prod\n      valueFiles: [../../envs/prod/values.yaml]\n      values: |\n        theme: blue\n      parameters:\n        - {{name: web.replicas, value: \"4\"}}\n        - {{name: worker.image, value: \"busybox:1.33\", forceString: true}}\n      kubeVersion: 1.20.2\n      apiVersions: [monitoring.coreos.com/v1]\n      includeCRDs: false\n      skipTests: true\n    live:\n      dump: mod.rs\n  - name: gen\n    dir: .\n    render:\n      command: [./gen.sh, --all]\n      timeout: 5s\n      maxOutput: 1000\n    live:\n      dump: mod.rs\n"
    );
    let plan = load(&text).expect("valid").plan();
    let prod = plan.environment("prod").expect("prod");
    assert_eq!(prod.spec.default_namespace.as_deref(), Some("shop-prod"));
    let Some(driftguard_sources::render::Renderer::Helm(h)) = prod.renderer() else {
        panic!("a helm renderer");
    };
    assert_eq!(h.options.release_name, "shop");
    assert!(!h.options.include_crds);
    assert!(h.options.skip_tests);
    assert_eq!(h.options.values.as_deref(), Some("theme: blue\n"));
    assert_eq!(
        h.options.template_args("c", &["v.yaml".into()], Some("i.yaml")).join(" "),
        "template shop c --namespace shop-prod --kube-version 1.20.2 --api-versions monitoring.coreos.com/v1 --skip-tests --values v.yaml --values i.yaml --set web.replicas=4 --set-string worker.image=busybox:1.33"
    );
    let Some(driftguard_sources::render::Renderer::Command(c)) =
        plan.environment("gen").expect("gen").renderer()
    else {
        panic!("a command renderer");
    };
    assert_eq!(c.command, ["./gen.sh", "--all"]);
    assert_eq!(c.timeout, std::time::Duration::from_secs(5));
    assert_eq!(c.max_output, 1000);
    // defaults: the environment's name is the release, `default` the namespace
    let text = format!(
        "environments:\n  - name: staging\n    dir: {CHART}\n    helm:\n      values: {{theme: red}}\n    live:\n      dump: mod.rs\n"
    );
    let plan = load(&text).expect("valid").plan();
    let env = plan.environment("staging").expect("staging");
    let Some(driftguard_sources::render::Renderer::Helm(h)) = env.renderer() else {
        panic!("a helm renderer");
    };
    assert_eq!(
        (
            h.options.release_name.as_str(),
            h.options.namespace.as_str()
        ),
        ("staging", "default")
    );
    assert!(h.options.include_crds);
    assert_eq!(h.options.values.as_deref(), Some("{\"theme\":\"red\"}"));
}

#[test]
fn helm_and_render_problems_are_located() {
    let env = |name: &str, body: &str| {
        format!("environments:\n  - name: {name}\n{body}    live:\n      dump: mod.rs\n")
    };
    let cases = [
        (
            env("a", &format!("    dir: {CHART}\n    helm: {{}}\n    render: {{command: [x]}}\n")),
            "environments[0].render: `helm` and `render` are both set: choose one",
        ),
        (
            env("a", "    git: {url: x, include: ['*.yaml']}\n    helm: {}\n"),
            "environments[0].git: `include` and `exclude` do not apply",
        ),
        (
            env("Prod_EU", &format!("    dir: {CHART}\n    helm: {{}}\n")),
            "environments[0].helm.releaseName: the environment's name `Prod_EU` is not a release name",
        ),
        (
            env("a", &format!("    dir: {CHART}\n    helm: {{releaseName: Shop}}\n")),
            "environments[0].helm.releaseName: `Shop` is not a release name",
        ),
        (
            env("a", &format!("    dir: {CHART}\n    defaultNamespace: x\n    helm: {{namespace: y}}\n")),
            "environments[0].helm.namespace: differs from `defaultNamespace`",
        ),
        (
            env("a", &format!("    dir: {CHART}\n    helm: {{valueFiles: [nope.yaml]}}\n")),
            "environments[0].helm.valueFiles[0]: file ",
        ),
        (
            env("a", "    git: {url: x}\n    helm: {valueFiles: [/etc/v.yaml]}\n"),
            "environments[0].helm.valueFiles[0]: must be a file of the repository",
        ),
        (
            env("a", &format!("    dir: {CHART}\n    helm: {{values: '[1, 2]'}}\n")),
            "environments[0].helm.values: must be a YAML mapping",
        ),
        (
            env("a", &format!("    dir: {CHART}\n    helm: {{parameters: [{{name: '', value: x}}]}}\n")),
            "environments[0].helm.parameters[0].name: must not be empty",
        ),
        (
            env("a", &format!("    dir: {CHART}\n    helm: {{binary: ./no/helm}}\n")),
            "environments[0].helm.binary: file ",
        ),
        (
            env("a", "    dir: .\n    render: {command: [sh, -c], shell: true}\n"),
            "environments[0].render.command: with `shell: true`, give one command line",
        ),
        (
            env("a", "    dir: .\n    render: {command: []}\n"),
            "environments[0].render.command: names no program",
        ),
        (
            env("a", "    dir: .\n    render: {command: [x], timeout: 0s, maxOutput: 0}\n"),
            "environments[0].render.maxOutput: must be more than 0 bytes",
        ),
        (
            format!("{}helmBin: ./missing/helm\n", env("a", "    dir: .\n")),
            "helmBin: file ",
        ),
    ];
    for (text, expected) in cases {
        let found = problems(&text);
        assert!(
            found.iter().any(|p| p.starts_with(expected)),
            "{expected:?} not in {found:?}\n{text}"
        );
    }
    // a missing value file is fine when it is to be left out
    let ok = env(
        "a",
        &format!("    dir: {CHART}\n    helm: {{valueFiles: [nope.yaml], ignoreMissingValueFiles: true}}\n"),
    );
    assert_eq!(problems(&ok), Vec::<String>::new());
}

#[test]
fn a_kustomize_section_resolves_into_the_renderer_of_git_and_dir_environments() {
    use driftguard_sources::render::{KustomizePatch, KustomizeReplica, Renderer};
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/config");
    let text = "kustomizeBin: bin/kustomize\nenvironments:\n  - name: prod\n    git: {url: 'https://git.example/gitops.git', path: apps/prod, recurse: false}\n    kustomize:\n      namePrefix: prod-\n      nameSuffix: -eu\n      namespace: shop\n      images: ['nginx=ghcr.io/acme/nginx:1.27', 'api:v2']\n      commonLabels: {team: shop}\n      commonAnnotations: {owner: platform}\n      patches:\n        - patch: |-\n            - op: replace\n              path: /spec/replicas\n              value: 2\n          target: {kind: Deployment, name: web}\n        - path: memory.yaml\n      replicas: [{name: web, count: 3}]\n      components: [../components/ha]\n      substitute: {region: eu-west-1}\n    live: {dump: mod.rs}\n  - name: folder\n    dir: {path: ., exclude: ['*.rs']}\n    kustomize: {namespace: shop}\n    live: {dump: mod.rs}\n  - name: plain\n    git: {url: 'https://git.example/gitops.git'}\n    live: {dump: mod.rs}\n";
    let plan = load(text).expect("valid").plan();
    let prod = plan.environment("prod").expect("prod");
    assert!(!prod.git().expect("git").source.recurse);
    let Some(Renderer::Kustomize(k)) = prod.renderer() else {
        panic!("a kustomize renderer: {:?}", prod.renderer());
    };
    assert_eq!(k.binary, Some(base.join("bin/kustomize")));
    let o = &k.options;
    assert_eq!(o.name_prefix.as_deref(), Some("prod-"));
    assert_eq!(o.name_suffix.as_deref(), Some("-eu"));
    assert_eq!(o.namespace.as_deref(), Some("shop"));
    assert_eq!(o.images, ["nginx=ghcr.io/acme/nginx:1.27", "api:v2"]);
    assert_eq!(o.common_labels["team"], "shop");
    assert_eq!(o.common_annotations["owner"], "platform");
    assert_eq!(
        o.patches,
        [
            KustomizePatch {
                patch: Some("- op: replace\n  path: /spec/replicas\n  value: 2".into()),
                path: None,
                target: [
                    ("kind".to_owned(), "Deployment".to_owned()),
                    ("name".to_owned(), "web".to_owned())
                ]
                .into(),
            },
            KustomizePatch {
                patch: None,
                path: Some("memory.yaml".into()),
                target: Default::default(),
            },
        ]
    );
    assert_eq!(
        o.replicas,
        [KustomizeReplica {
            name: "web".into(),
            count: 3
        }]
    );
    assert_eq!(o.components, ["../components/ha"]);
    assert_eq!(o.substitute["region"], "eu-west-1");
    assert!(
        !format!("{prod:?}").contains("eu-west-1"),
        "the plan's Debug shows no substituted value"
    );
    let folder = plan.environment("folder").expect("folder");
    let Some(DesiredPlan::Folder(f)) = &folder.desired else {
        panic!("a folder");
    };
    assert_eq!(
        f.exclude,
        ["*.rs"],
        "the globs select what a generated kustomization lists"
    );
    let Some(Renderer::Kustomize(k)) = &f.renderer else {
        panic!("a kustomize renderer: {:?}", f.renderer);
    };
    assert_eq!(k.options.namespace.as_deref(), Some("shop"));
    let plain = plan.environment("plain").expect("plain");
    assert!(
        plain.git().expect("git").source.recurse,
        "recurse by default"
    );
    assert!(plain.renderer().is_none());
}

#[test]
fn kustomize_problems_are_located() {
    let env =
        |body: &str| format!("environments:\n  - name: a\n{body}    live:\n      dump: mod.rs\n");
    let cases = [
        (
            env(&format!(
                "    dir: {CHART}\n    helm: {{}}\n    kustomize: {{}}\n"
            )),
            "environments[0].kustomize: `kustomize` and `helm` are both set: choose one",
        ),
        (
            env("    dir: .\n    render: {command: [x]}\n    kustomize: {}\n"),
            "environments[0].kustomize: `kustomize` and `render` are both set: choose one",
        ),
        (
            env("    dir: .\n    kustomize: {namespace: Shop}\n"),
            "environments[0].kustomize.namespace: must be a namespace name",
        ),
        (
            env("    dir: .\n    kustomize:\n      images: ['nginx:1', nginx]\n"),
            "environments[0].kustomize.images[1]: `nginx` is not an image override",
        ),
        (
            env("    dir: .\n    kustomize: {commonLabels: {team: 'a b'}}\n"),
            "environments[0].kustomize.commonLabels: the value of label `team`",
        ),
        (
            env("    dir: .\n    kustomize: {commonAnnotations: {'a b': x}}\n"),
            "environments[0].kustomize.commonAnnotations: annotation key `a b`",
        ),
        (
            env("    dir: .\n    kustomize: {patches: [{target: {kind: X}}]}\n"),
            "environments[0].kustomize.patches[0]: needs `patch` (inline) or `path` (a file)",
        ),
        (
            env("    dir: .\n    kustomize: {patches: [{path: nope.yaml}]}\n"),
            "environments[0].kustomize.patches[0].path: file ",
        ),
        (
            env("    git: {url: x}\n    kustomize: {patches: [{path: /etc/p.yaml}]}\n"),
            "environments[0].kustomize.patches[0].path: must be a file relative to the folder",
        ),
        (
            env("    dir: .\n    kustomize: {patches: [{patch: 'a: [', target: {knd: X}}]}\n"),
            "environments[0].kustomize.patches[0].patch: is not YAML",
        ),
        (
            env("    dir: .\n    kustomize: {patches: [{patch: 'a: b', target: {knd: X}}]}\n"),
            "environments[0].kustomize.patches[0].target.knd: is not a target key",
        ),
        (
            env("    dir: .\n    kustomize: {replicas: [{name: '', count: 1}]}\n"),
            "environments[0].kustomize.replicas[0].name: must not be empty",
        ),
        (
            env("    dir: .\n    kustomize: {components: [../nope]}\n"),
            "environments[0].kustomize.components[0]: folder ",
        ),
        (
            env("    dir: .\n    kustomize: {substitute: {db-password: x}}\n"),
            "environments[0].kustomize.substitute: `db-password` is not a variable name",
        ),
        (
            env("    git: {url: x, path: y, recurse: false}\n    helm: {releaseName: r}\n"),
            "environments[0].git.recurse: does not apply to a rendered environment",
        ),
    ];
    for (text, expected) in cases {
        let found = problems(&text);
        assert!(
            found.iter().any(|p| p.starts_with(expected)),
            "{expected:?} not in {found:?}\n{text}"
        );
    }
    // the line of the image at fault, and no value of `substitute` in a message
    let text = env("    dir: .\n    kustomize:\n      substitute: {password: hunter2}\n      images:\n        - nginx:1\n        - nginx\n");
    let e = load(&text).expect_err("a bare image name");
    assert_eq!(e.problems.len(), 1, "{e}");
    assert_eq!(e.problems[0].line, 8, "{e}");
    assert!(!e.to_string().contains("hunter2"), "{e}");
    // Argo CD's variables are left to the build
    let ok = env("    git: {url: x}\n    kustomize:\n      images: ['api=ghcr.io/acme/api:$ARGOCD_APP_REVISION']\n      commonLabels: {rev: $ARGOCD_APP_REVISION_SHORT}\n");
    assert_eq!(problems(&ok), Vec::<String>::new());
}

const MODULE: &str = "../../../examples/terraform";

#[test]
fn a_terraform_environment_loads_without_a_live_side() {
    let text = format!(
        "terraformCache: /var/cache/dg-tf\nenvironments:\n  - name: cloud\n    dir: {MODULE}\n    terraform:\n      workspace: prod\n      varFiles: [variables.tf, /etc/hostname]\n      binary: terraform\n      backendConfig: [path=/var/lib/tf/prod.tfstate]\n      timeout: 2m\n      orphans:\n        aws:\n          regions: [eu-west-1]\n          endpoint: http://127.0.0.1:5000\n          kinds: [aws_s3_bucket, aws_vpc]\n          exclude: ['tfstate-*']\n"
    );
    let config = load(&text).expect("valid");
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    let env = config.environment("cloud").expect("cloud");
    let t = env.terraform.as_ref().expect("terraform section");
    assert_eq!(t.workspace.as_deref(), Some("prod"));
    assert_eq!(t.var_files, ["variables.tf", "/etc/hostname"]);
    assert_eq!(t.backend_config, ["path=/var/lib/tf/prod.tfstate"]);
    assert_eq!(
        t.timeout.map(|d| d.0),
        Some(std::time::Duration::from_secs(120))
    );
    let aws = &t.orphans.as_ref().expect("orphans").aws;
    assert_eq!(aws.kinds, ["aws_s3_bucket", "aws_vpc"]);
    assert_eq!(aws.endpoint.as_deref(), Some("http://127.0.0.1:5000"));
    assert_eq!(
        config.file.terraform_cache.as_deref(),
        Some(Path::new("/var/cache/dg-tf"))
    );
}

#[test]
fn an_empty_state_is_expected_only_when_said() {
    let at = |body: &str| {
        format!("environments:\n  - name: cloud\n    dir: {MODULE}\n    terraform: {body}\n")
    };
    let config = load(&at("{}")).expect("valid");
    let env = config.environment("cloud").expect("cloud");
    assert!(!env.spec().expect_empty_state);
    let config = load(&at("{expectEmptyState: true}")).expect("valid");
    let env = config.environment("cloud").expect("cloud");
    assert!(env.spec().expect_empty_state);
    // a Kubernetes environment never expects one
    let config = load(&format!(
        "environments:\n  - name: k\n    dir: {MODULE}\n    live: {{dump: mod.rs}}\n"
    ))
    .expect("valid");
    assert!(
        !config
            .environment("k")
            .expect("k")
            .spec()
            .expect_empty_state
    );
    let e = load(&at("{expectEmptyState: sometimes}")).expect_err("not a boolean");
    assert!(e.to_string().contains("expectEmptyState"), "{e}");
}

#[test]
fn terraform_problems_are_located() {
    let env = |body: &str| format!("environments:\n  - name: a\n{body}");
    let cases = [
        (
            env(&format!("    dir: {MODULE}\n    terraform: {{}}\n    live:\n      dump: mod.rs\n")),
            "environments[0].live: a Terraform environment has no `live` side",
        ),
        (
            env(&format!("    dir: {CHART}\n    terraform: {{}}\n    helm: {{}}\n")),
            "environments[0].terraform: `terraform` and `helm`/`render` are both set",
        ),
        (
            env("    git: {url: x, include: ['*.tf']}\n    terraform: {}\n"),
            "environments[0].terraform: `include` and `exclude` do not apply",
        ),
        (
            env(&format!("    dir: {MODULE}\n    terraform: {{workspace: ' '}}\n")),
            "environments[0].terraform.workspace: must not be empty",
        ),
        (
            env(&format!("    dir: {MODULE}\n    terraform: {{varFiles: [prod.tfvars]}}\n")),
            "environments[0].terraform.varFiles[0]: file ",
        ),
        (
            env(&format!("    dir: {MODULE}\n    terraform: {{binary: ./no/terraform}}\n")),
            "environments[0].terraform.binary: file ",
        ),
        (
            env(&format!("    dir: {MODULE}\n    terraform: {{cliConfigFile: none.tfrc}}\n")),
            "environments[0].terraform.cliConfigFile: file ",
        ),
        (
            env(&format!("    dir: {MODULE}\n    terraform: {{timeout: 0s}}\n")),
            "environments[0].terraform.timeout: must be longer than 0s",
        ),
        (
            env(&format!("    dir: {MODULE}\n    terraform: {{orphans: {{aws: {{kinds: [aws_lambda_function]}}}}}}\n")),
            "environments[0].terraform.orphans.aws.kinds[0]: `aws_lambda_function` cannot be listed",
        ),
        (
            env(&format!("    dir: {MODULE}\n    terraform: {{orphans: {{aws: {{endpoint: '127.0.0.1:5000'}}}}}}\n")),
            "environments[0].terraform.orphans.aws.endpoint: must be an http:// or https:// URL",
        ),
    ];
    for (text, expected) in cases {
        let found = problems(&text);
        assert!(
            found.iter().any(|p| p.starts_with(expected)),
            "{expected:?} not in {found:?}\n{text}"
        );
    }
    // without `live`, only a Kubernetes environment is refused
    let found = problems(&env(&format!("    dir: {MODULE}\n")));
    assert!(
        found.iter().any(|p| p.contains("no live side")),
        "{found:?}"
    );
}

#[test]
fn an_audit_section_loads_and_its_problems_are_located() {
    let env = |audit: &str| {
        format!("environments:\n  - name: prod\n    dir: .\n    live:\n      dump: mod.rs\n    audit:\n{audit}")
    };
    let config = load(&env(
        "      webhook: {tokenEnv: AUDIT_TOKEN, maxBody: 1000}\n      logFile: /var/log/kubernetes/audit.log\n      logPollInterval: 5s\n      userNames: hash\n      writesPerObject: 4\n      maxAge: 2d\n      maxObjects: 10\n",
    ))
    .expect("valid");
    let plan = config.plan();
    let prod = plan.environment("prod").expect("prod");
    let spec = prod.spec.audit.clone().expect("audit settings");
    assert_eq!(spec.user_names, driftguard_core::audit::UserNames::Hash);
    assert_eq!(spec.limits.writes_per_object, 4);
    assert_eq!(
        spec.limits.max_age,
        std::time::Duration::from_secs(2 * 86400)
    );
    assert_eq!(spec.limits.max_objects, 10);
    let (t1, t2) = ("audit-token-1-4f1c9e0b", "audit-token-2-7a2d6e83");
    let var = |k: &str| (k == "AUDIT_TOKEN").then(|| format!("{t1}, {t2}"));
    let settings = crate::setup::audit_settings(prod, &var)
        .expect("resolved")
        .expect("settings");
    assert_eq!(settings.tokens, [t1, t2]);
    assert_eq!(settings.max_body, 1000);
    assert!(settings.webhook);
    assert_eq!(settings.log_every, std::time::Duration::from_secs(5));
    assert!(
        !format!("{settings:?}").contains(t1),
        "tokens are not printed"
    );
    let weak = |k: &str| (k == "AUDIT_TOKEN").then(|| format!("{t1}, audit"));
    let err = crate::setup::audit_settings(prod, &weak).expect_err("a token too easy to guess");
    assert!(
        err.to_string().starts_with(
            "invalid environment prod: audit.webhook.tokenEnv: token 2 of 2 in $AUDIT_TOKEN: a token of 5 characters"
        ),
        "{err}"
    );
    let err =
        crate::setup::audit_settings(prod, &|_: &str| None).expect_err("the variable is missing");
    assert_eq!(
        err.to_string(),
        "environment prod: audit.webhook.tokenEnv: environment variable AUDIT_TOKEN is not set"
    );
    // defaults: nothing but a log file
    let plan = load(&env("      logFile: audit.log\n"))
        .expect("valid")
        .plan();
    let prod = plan.environment("prod").expect("prod");
    assert_eq!(
        prod.spec.audit,
        Some(driftguard_core::audit::AuditSpec::default())
    );
    let settings = crate::setup::audit_settings(prod, &|_: &str| None)
        .expect("no token needed")
        .expect("settings");
    assert!(!settings.webhook);
    assert!(settings
        .log
        .as_ref()
        .is_some_and(|l| l.path().ends_with("src/config/audit.log")));
    let cases = [
        (
            "      userNames: keep\n",
            "environments[0].audit: no audit events to read",
        ),
        (
            "      webhook: {tokenEnv: ' '}\n",
            "environments[0].audit.webhook.tokenEnv: must name the environment variable",
        ),
        (
            "      webhook: {tokenEnv: T, maxBody: 0}\n",
            "environments[0].audit.webhook.maxBody: must be more than 0 bytes",
        ),
        (
            "      logFile: a.log\n      writesPerObject: 0\n",
            "environments[0].audit.writesPerObject: must be more than 0",
        ),
        (
            "      logFile: a.log\n      maxAge: 0s\n",
            "environments[0].audit.maxAge: must be more than 0",
        ),
        (
            "      logFile: a.log\n      userNames: blur\n",
            "environments[0].audit.userNames: unknown user name setting `blur`",
        ),
        (
            "      logFile: a.log\n      tokenEnv: X\n",
            "environments[0].audit: unknown field `tokenEnv`",
        ),
    ];
    for (audit, expected) in cases {
        let found = problems(&env(audit));
        assert!(
            found.iter().any(|p| p.starts_with(expected)),
            "{expected:?} not in {found:?}"
        );
    }
}

#[test]
fn a_render_command_gets_the_variables_it_names_and_the_network_only_when_asked() {
    let text = "environments:\n  - name: gen\n    dir: .\n    render:\n      command: [./gen.sh]\n      passEnv: [JSONNET_PATH, CDK8S_ENV]\n      allowNetwork: true\n    live:\n      dump: mod.rs\n  - name: plain\n    git: {url: x}\n    render: {command: [./gen.sh]}\n    live:\n      dump: mod.rs\n";
    let plan = load(text).expect("valid").plan();
    let Some(driftguard_sources::render::Renderer::Command(c)) =
        plan.environment("gen").expect("gen").renderer()
    else {
        panic!("a command renderer");
    };
    assert_eq!(c.pass_env, ["JSONNET_PATH", "CDK8S_ENV"]);
    assert!(c.allow_network);
    // defaults: nothing passed on, no network (a repository's renderer alike)
    let Some(driftguard_sources::render::Renderer::Command(c)) =
        plan.environment("plain").expect("plain").renderer()
    else {
        panic!("a command renderer");
    };
    assert!(c.pass_env.is_empty());
    assert!(!c.allow_network);
    let env = |render: &str| {
        format!("environments:\n  - name: a\n    dir: .\n    render: {render}\n    live:\n      dump: mod.rs\n")
    };
    for (render, expected) in [
        (
            "{command: [x], passEnv: ['']}",
            "environments[0].render.passEnv[0]: must not be empty",
        ),
        (
            "{command: [x], passEnv: [A, 'B=1']}",
            "environments[0].render.passEnv[1]: `B=1` is not the name of an environment variable",
        ),
        (
            "{command: [x], allowNetwork: yes please}",
            "environments[0].render.allowNetwork: invalid type",
        ),
    ] {
        let found = problems(&env(render));
        assert!(
            found.iter().any(|p| p.starts_with(expected)),
            "{expected:?} not in {found:?}"
        );
    }
}

#[test]
fn a_glob_the_sources_cannot_compile_is_a_located_problem() {
    let text = "environments:\n  - name: a\n    dir:\n      path: .\n      include: ['*.yaml', '[a']\n    live:\n      dump: mod.rs\n";
    let e = load(text).expect_err("an unclosed class");
    assert_eq!(e.problems.len(), 1, "{e}");
    let p = &e.problems[0];
    assert_eq!(
        p.path.as_deref(),
        Some("environments[0].dir.include[1]"),
        "{e}"
    );
    assert!(p.message.starts_with("bad glob `[a`"), "{e}");
    assert_eq!(p.line, 5, "{e}");
}

#[test]
fn the_plan_resolves_every_path_against_the_file_folder() {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/config");
    let text = "environments:\n  - name: folder\n    dir: .\n    live:\n      dump: [mod.rs, tests.rs]\n  - name: repo\n    git:\n      url: repo\n      ref: prod\n      sshKey: keys/id\n      pullRequest: {forge: github, repository: o/r, tokenEnv: T}\n    live:\n      kubeconfig: kube/config\n      context: c\n  - name: remote\n    git: {url: 'https://git.example/r.git', tokenEnv: GT}\n    live: {inCluster: true}\ngitCache: cache\nkustomizeBin: kustomize\nhelmBin: helm\nstore:\n  mongodb: {uriEnv: U}\n  retention: 90d\nsecretKey: {file: mod.rs}\nnotifications:\n  - {type: email, host: h, from: a@b.c, to: [d@e.f], caFile: mod.rs}\nserver:\n  notifiers:\n    - {type: webhook, url: 'http://h/x'}\n  ha: {homeKubeconfig: mod.rs}\n";
    let plan = load(text).expect("valid").plan();
    let folder = plan.environment("folder").expect("folder");
    let Some(DesiredPlan::Folder(f)) = &folder.desired else {
        panic!("a folder: {:?}", folder.desired);
    };
    assert_eq!(f.path, base.join("."));
    assert_eq!(f.kustomize_bin, Some(base.join("kustomize")));
    assert_eq!(
        f.helm_bin.as_deref(),
        Some(Path::new("helm")),
        "a bare name is PATH's"
    );
    assert_eq!(
        folder.live,
        LivePlan::Dump(vec![base.join("mod.rs"), base.join("tests.rs")])
    );
    assert!(folder.live_is_dump() && folder.repositories().is_empty());
    let repo = plan.environment("repo").expect("repo");
    let g = repo.git().expect("a repository");
    let url = std::path::absolute(base.join("repo")).expect("absolute");
    assert_eq!(g.source.url, url.display().to_string());
    assert_eq!(repo.repositories(), [url.display().to_string()]);
    assert_eq!(g.source.reference, "prod");
    assert_eq!(g.source.cache_dir, base.join("cache"));
    assert_eq!(
        g.source.auth.as_ref().and_then(|a| a.ssh_key_path.clone()),
        Some(base.join("keys/id"))
    );
    let pr = g.pull_request.as_ref().expect("a pull request");
    assert_eq!(
        (pr.config.repository.as_str(), pr.base.as_str()),
        ("o/r", "prod")
    );
    assert_eq!(
        repo.live,
        LivePlan::Cluster(driftguard_sources::kube::KubeConfigSpec {
            kubeconfig: Some(base.join("kube/config")),
            context: Some("c".into()),
            in_cluster: false,
        })
    );
    let remote = plan.environment("remote").expect("remote");
    assert_eq!(
        remote.repositories(),
        ["https://git.example/r.git"],
        "a URL as written"
    );
    assert!(!remote.live_is_dump());
    assert_eq!(
        plan.store,
        StorePlan {
            backend: StoreBackend::Mongo {
                uri_env: "U".into(),
                database: "driftguard".into()
            },
            retention: Some(std::time::Duration::from_secs(90 * 86400)),
        }
    );
    assert_eq!(
        plan.secret_key,
        Some(SecretKeyPlan::File(base.join("mod.rs")))
    );
    // `server.notifiers` then `notifications`, CA files resolved
    let notifiers = &plan.server.settings.notifiers;
    assert_eq!(notifiers.len(), 2);
    let NotifierConfig::Email { ca_file, .. } = &notifiers[1] else {
        panic!("an e-mail notifier: {:?}", notifiers[1]);
    };
    assert_eq!(ca_file.as_deref(), Some(base.join("mod.rs").as_path()));
    assert_eq!(
        plan.server
            .home_cluster
            .as_ref()
            .and_then(|c| c.kubeconfig.clone()),
        Some(base.join("mod.rs"))
    );
    // the defaults: an SQLite file next to the configuration
    let plan = load(ENV).expect("valid").plan();
    assert_eq!(
        plan.store.backend,
        StoreBackend::Sqlite(base.join(".driftguard/driftguard.db"))
    );
    assert_eq!(plan.secret_key, None);
    assert!(plan.server.home_cluster.is_none());
    let plan = load(&format!("{ENV}store: {{sqlite: db/dg.db}}\n"))
        .expect("valid")
        .plan();
    assert_eq!(
        plan.store.backend,
        StoreBackend::Sqlite(base.join("db/dg.db"))
    );
}

#[test]
fn a_file_loads_into_its_plan_with_the_problems_and_warnings_of_config_load() {
    let dir = tempfile::tempdir().expect("a folder");
    let path = dir.path().join("driftguard.yaml");
    let env = "environments:\n  - name: a\n    dir: .\n    live:\n      dump: ";
    std::fs::write(&path, format!("{env}none.yaml\n")).expect("write");
    let e = ResolvedConfig::load(&path).expect_err("a dump that does not exist");
    assert_eq!(e, Config::load(&path).expect_err("the same problems"));
    assert_eq!(e.problems.len(), 1, "{e}");
    assert_eq!(
        (e.problems[0].path.as_deref(), e.problems[0].line),
        (Some("environments[0].live.dump"), 5),
        "{e}"
    );
    std::fs::write(
        &path,
        format!("{env}driftguard.yaml\nserver:\n  poll_interval: 30s\n"),
    )
    .expect("write");
    let plan = ResolvedConfig::load(&path).expect("valid");
    assert_eq!(plan.path, path);
    assert_eq!(plan.warnings, Config::load(&path).expect("valid").warnings);
    assert_eq!(plan.warnings.len(), 1);
    assert_eq!(
        plan.environment("a").expect("a").live,
        LivePlan::Dump(vec![dir.path().join("driftguard.yaml")])
    );
    assert_eq!(
        plan.server.settings.poll_interval.0,
        std::time::Duration::from_secs(30)
    );
}
