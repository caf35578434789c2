//! Argo CD Applications and `argocd-cm`.

use std::collections::BTreeMap;

use driftguard_core::admission::LabelSelector;
use driftguard_core::ignore::IgnoreRule;
use serde_json::json;

use super::*;
use crate::config::discover::{argocd, ArgoCdSettings, Discovered, Tool, ToolVerdict};
use crate::config::{
    EnvironmentConfig, GitConfig, HelmConfig, HelmParameterConfig, InlineValues, KustomizeConfig,
    KustomizePatch, KustomizeReplicas,
};

fn applications(file: &str) -> Vec<Value> {
    of_kind(&fixture(&format!("argocd/{file}")), "Application")
}

fn settings() -> ArgoCdSettings {
    let cm = fixture("argocd/argocd-cm.yaml");
    ArgoCdSettings::from_config_maps(cm.first(), None)
}

/// The context with Argo CD's settings of the fixture.
fn argocd_context() -> DiscoveryContext {
    let mut ctx = context();
    ctx.argocd = settings();
    ctx
}

/// The rules of `argocd-cm.yaml`, by group and kind.
fn system_rules() -> Vec<IgnoreRule> {
    vec![
        rule(None, None, None, &["/status"], &["kube-controller-manager"]),
        rule(
            Some("admissionregistration.k8s.io"),
            Some("MutatingWebhookConfiguration"),
            None,
            &["/webhooks/*/clientConfig/caBundle"],
            &[],
        ),
        rule(
            Some("apps"),
            Some("Deployment"),
            None,
            &["/spec/template/metadata/annotations/kubectl.kubernetes.io~1restartedAt"],
            &[],
        ),
    ]
}

fn one(file: &str) -> Discovered {
    let apps = applications(file);
    let mut found = argocd::map_application(&apps[0], &argocd_context());
    assert_eq!(found.len(), 1, "{found:#?}");
    found.remove(0)
}

fn environment(found: &Discovered) -> &EnvironmentConfig {
    found
        .environment
        .as_ref()
        .unwrap_or_else(|| panic!("an environment: {:#?}", found.problems))
}

#[test]
fn argocd_cm_gives_system_wide_ignore_rules() {
    let s = settings();
    assert_eq!(s.ignore, system_rules());
    assert!(!s.server_side_diff);
    let problems: Vec<String> = s.problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        problems,
        vec![
            "argocd-cm.data[resource.customizations.ignoreDifferences.Service].jqPathExpressions[0]: `.spec.ports[] | select(.name == \"metrics\") | .nodePort` is not a plain path (only `.key`, `.\"key\"`, `[\"key\"]`, `[N]` and `[]` steps are translated): not ignored, differences there are reported",
        ]
    );
    let params = json!({"data": {"controller.diff.server.side": "true"}});
    assert!(ArgoCdSettings::from_config_maps(None, Some(&params)).server_side_diff);
}

#[test]
fn a_directory_application() {
    let found = one("guestbook-directory.yaml");
    assert_eq!(
        found.app,
        crate::config::discover::DiscoveredApp {
            tool: Tool::ArgoCd,
            kind: "Application".into(),
            namespace: "argocd".into(),
            name: "guestbook".into(),
            source: None,
            project: Some("web".into()),
            labels: BTreeMap::from([("team".into(), "web".into())]),
            verdict: ToolVerdict {
                sync: Some("Synced".into()),
                health: Some("Healthy".into()),
                revision: Some("53e28ff20cc530b9ada2173fbbd64d48338583ba".into()),
                reconciled_at: Some("2026-05-04T09:12:44Z".into()),
                ..ToolVerdict::default()
            },
        }
    );
    let mut ignore = vec![
        rule(
            Some("apps"),
            Some("Deployment"),
            None,
            &["/spec/replicas"],
            &[],
        ),
        rule(
            Some(""),
            Some("ConfigMap"),
            Some("guestbook-config"),
            &["/data/generated.timestamp"],
            &[],
        ),
        rule(None, None, None, &[], &["kube-controller-manager"]),
    ];
    ignore.extend(system_rules());
    assert_eq!(
        environment(&found),
        &EnvironmentConfig {
            name: "argocd.guestbook".into(),
            git: Some(GitConfig {
                url: "https://github.com/argoproj/argocd-example-apps.git".into(),
                reference: None,
                path: Some("guestbook".into()),
                include: vec!["*.yaml".into(), "*.yml".into()],
                exclude: vec!["test-*.yaml".into()],
                recurse: Some(true),
                ..GitConfig::default()
            }),
            live: Some(home()),
            default_namespace: Some("guestbook".into()),
            ignore,
            server_side_diff: true,
            ..EnvironmentConfig::default()
        }
    );
    assert_eq!(
        problems(&found),
        vec![
            "spec.ignoreDifferences[1].jqPathExpressions[1]: `.metadata.annotations | with_entries(select(.key | startswith(\"checksum/\")))` is not a plain path (only `.key`, `.\"key\"`, `[\"key\"]`, `[N]` and `[]` steps are translated): not ignored, differences there are reported",
        ]
    );
}

#[test]
fn a_helm_chart_folder_with_values_object_and_parameters() {
    let found = one("shop-helm.yaml");
    assert_eq!(found.app.verdict.sync.as_deref(), Some("OutOfSync"));
    assert_eq!(found.app.verdict.health.as_deref(), Some("Degraded"));
    let values = json!({
        "worker": {"replicas": 2},
        "ingress": {"enabled": true, "hosts": ["shop.example.com"]},
    });
    let Value::Object(values) = values else {
        panic!("a mapping")
    };
    assert_eq!(
        environment(&found),
        &EnvironmentConfig {
            name: "argocd.shop".into(),
            git: Some(GitConfig {
                url: "https://git.example.com/platform/gitops.git".into(),
                reference: Some("main".into()),
                path: Some("charts/shop".into()),
                token_env: Some("GIT_TOKEN".into()),
                ..GitConfig::default()
            }),
            helm: Some(HelmConfig {
                release_name: Some("shop".into()),
                namespace: Some("shop-prod".into()),
                value_files: vec!["values.yaml".into(), "../../envs/prod/values.yaml".into()],
                // valuesObject wins over values, as in Argo CD
                values: Some(InlineValues::Object(values)),
                parameters: vec![
                    HelmParameterConfig {
                        name: "web.image".into(),
                        value: "registry.example.com/shop/web:1.21".into(),
                        force_string: false,
                    },
                    HelmParameterConfig {
                        name: "build".into(),
                        value: "0042".into(),
                        force_string: true,
                    },
                    HelmParameterConfig {
                        name: "podAnnotations.argocd-app".into(),
                        value: "shop".into(),
                        force_string: false,
                    },
                ],
                kube_version: Some("1.29.0".into()),
                api_versions: vec!["monitoring.coreos.com/v1/ServiceMonitor".into()],
                include_crds: Some(false),
                skip_tests: true,
                ignore_missing_value_files: true,
                ..HelmConfig::default()
            }),
            live: Some(context_live("prod-eu")),
            // the release namespace holds the objects that name none
            default_namespace: None,
            ignore: system_rules(),
            ..EnvironmentConfig::default()
        }
    );
    assert_eq!(
        problems(&found),
        vec![
            "spec.source.helm.valueFiles[2]: a remote values file cannot be fetched: left out, the chart is rendered without it",
            "spec.source.helm.fileParameters[0]: `config.banner` from the file `files/banner.txt` (--set-file) is not passed: the chart is rendered without it, and the fields it sets may show as drift",
        ]
    );
}

#[test]
fn a_kustomization_with_every_option() {
    let found = one("storefront-kustomize.yaml");
    assert_eq!(
        environment(&found),
        &EnvironmentConfig {
            name: "argocd.storefront".into(),
            git: Some(GitConfig {
                url: "git@github.com:acme/storefront-deploy.git".into(),
                reference: Some("v2.4.1".into()),
                path: Some("overlays/prod".into()),
                ssh_key: Some(PathBuf::from("/etc/driftguard/keys/acme")),
                ..GitConfig::default()
            }),
            kustomize: Some(KustomizeConfig {
                name_prefix: Some("prod-".into()),
                name_suffix: Some("-v2".into()),
                namespace: Some("storefront".into()),
                images: vec![
                    "storefront=registry.example.com/storefront:v2.4.1".into(),
                    // the revision's variables are the renderer's, at build
                    "storefront-migrations=registry.example.com/storefront-migrations:${ARGOCD_APP_REVISION_SHORT}"
                        .into(),
                    "nginx:1.27".into(),
                    "redis@sha256:6cc8a0b94a6b0d6f2f4a8c3f0e0f6f3f7a3c1e6c2d6d0b8b5e0c3a9d2f1e4b7a"
                        .into(),
                ],
                common_labels: BTreeMap::from([
                    ("app.kubernetes.io/instance".into(), "storefront".into()),
                    ("app.kubernetes.io/part-of".into(), "storefront".into()),
                    ("env".into(), "prod".into()),
                ]),
                common_annotations: BTreeMap::from([
                    ("deployed-by".into(), "argocd/storefront".into()),
                    ("team".into(), "storefront".into()),
                ]),
                patches: vec![
                    KustomizePatch {
                        patch: Some(
                            "- op: add\n  path: /spec/template/spec/priorityClassName\n  value: high"
                                .into(),
                        ),
                        path: None,
                        target: Some(BTreeMap::from([
                            ("kind".into(), "Deployment".into()),
                            ("name".into(), "storefront-web".into()),
                        ])),
                    },
                    KustomizePatch {
                        patch: None,
                        path: Some("patches/resources.yaml".into()),
                        target: None,
                    },
                ],
                replicas: vec![
                    KustomizeReplicas {
                        name: "storefront-web".into(),
                        count: 4,
                    },
                    KustomizeReplicas {
                        name: "storefront-worker".into(),
                        count: 2,
                    },
                ],
                components: vec!["../../components/monitoring".into()],
                substitute: BTreeMap::new(),
            }),
            live: Some(context_live("storefront-prod")),
            default_namespace: Some("storefront".into()),
            ignore: system_rules(),
            ..EnvironmentConfig::default()
        }
    );
    assert_eq!(
        problems(&found),
        vec![
            "spec.source.kustomize.forceCommonLabels: not supported: a label the kustomization already sets fails the rendering, where Argo CD replaces it",
            "spec.source.kustomize.forceCommonAnnotations: not supported: an annotation the kustomization already sets fails the rendering, where Argo CD replaces it",
            "spec.source.kustomize.labelWithoutSelector: DriftGuard adds commonLabels to selectors and pod templates too (kustomize's commonLabels): the selectors and templates of the objects may show as drift",
            "spec.source.kustomize.ignoreMissingComponents: not supported: a component that does not exist fails the rendering",
        ]
    );
}

#[test]
fn multi_source_value_files_of_the_same_repository() {
    let apps = applications("prometheus-multi-source.yaml");
    let found = argocd::map_application(&apps[0], &argocd_context());
    assert_eq!(found.len(), 1);
    let found = &found[0];
    assert_eq!(found.app.source, Some(0));
    assert_eq!(
        found.app.verdict.revision.as_deref(),
        Some("8e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b")
    );
    assert_eq!(
        environment(found),
        &EnvironmentConfig {
            name: "argocd.prometheus".into(),
            git: Some(GitConfig {
                url: "https://git.example.com/platform/gitops.git".into(),
                reference: Some("main".into()),
                path: Some("charts/kube-prometheus-stack".into()),
                token_env: Some("GIT_TOKEN".into()),
                ..GitConfig::default()
            }),
            helm: Some(HelmConfig {
                release_name: Some("kps".into()),
                namespace: Some("monitoring".into()),
                value_files: vec!["../../envs/prod/prometheus.yaml".into()],
                ..HelmConfig::default()
            }),
            live: Some(home()),
            ignore: system_rules(),
            ..EnvironmentConfig::default()
        }
    );
    assert_eq!(
        problems(found),
        vec![
            "spec.sources[0].helm.valueFiles[1]: is in another repository (https://git.example.com/platform/shared-values.git): DriftGuard reads one repository per environment; left out, the chart is rendered without it",
        ]
    );
}

#[test]
fn multi_source_with_two_rendering_sources_gives_two_environments() {
    let apps = applications("prometheus-multi-source.yaml");
    let found = argocd::map_application(&apps[1], &argocd_context());
    let names: Vec<Option<&str>> = found.iter().map(Discovered::name).collect();
    assert_eq!(
        names,
        vec![Some("argocd.logging.0"), Some("argocd.logging.1")]
    );
    let split = "spec.sources: 2 sources render objects: one environment each; orphans are not looked for in them (each would take the others' objects for orphans)";
    for f in &found {
        assert_eq!(problems(f), vec![split]);
        assert_eq!(environment(f).orphan_kinds, Some(Vec::new()));
    }
    let chart = environment(&found[0]);
    assert_eq!(
        chart.git.as_ref().and_then(|g| g.path.as_deref()),
        Some("charts/loki")
    );
    assert_eq!(
        chart.helm,
        Some(HelmConfig {
            release_name: Some("logging".into()),
            namespace: Some("logging".into()),
            value_files: vec!["values-prod.yaml".into()],
            ..HelmConfig::default()
        })
    );
    let folder = environment(&found[1]);
    assert_eq!(folder.helm, None);
    assert_eq!(folder.default_namespace.as_deref(), Some("logging"));
    assert_eq!(
        folder.git,
        Some(GitConfig {
            url: "https://git.example.com/platform/gitops.git".into(),
            reference: Some("main".into()),
            path: Some("manifests/logging".into()),
            // Argo CD's directory default
            recurse: Some(false),
            token_env: Some("GIT_TOKEN".into()),
            ..GitConfig::default()
        })
    );
    assert_eq!(found[1].app.source, Some(1));
}

#[test]
fn a_plugin_mapped_to_a_command_and_one_that_is_not() {
    let apps = applications("tools-plugin.yaml");
    let ctx = argocd_context();
    let tools = &argocd::map_application(&apps[0], &ctx)[0];
    assert_eq!(
        environment(tools),
        &EnvironmentConfig {
            // outside Argo CD's namespace: the namespace is part of the name
            name: "argocd.team-tools.tools".into(),
            git: Some(GitConfig {
                url: "https://git.example.com/tools/deploy.git".into(),
                reference: Some("release-1.4".into()),
                path: Some("jsonnet/tools".into()),
                // the longest prefix wins
                token_env: Some("TOOLS_GIT_TOKEN".into()),
                ..GitConfig::default()
            }),
            render: Some(jsonnet_command()),
            live: Some(home()),
            default_namespace: Some("tools".into()),
            ignore: system_rules(),
            ..EnvironmentConfig::default()
        }
    );
    assert_eq!(
        problems(tools),
        vec![
            "spec.source.plugin.env: ARGOCD_ENV_CLUSTER are not given to the command (it runs with a scrubbed environment; name variables of DriftGuard's own environment in the command's passEnv)",
            "spec.source.plugin.parameters: image-tag are not given to the command",
        ]
    );
    let legacy = &argocd::map_application(&apps[1], &ctx)[0];
    assert_eq!(legacy.environment, None);
    assert_eq!(
        problems(legacy),
        vec![
            "BLOCKS spec.source.plugin.name: the plugin `kasane` has no command in DriftGuard's discovery configuration (plugins): it cannot be rendered",
        ]
    );
}

#[test]
fn a_chart_from_a_helm_repository_is_a_blocking_problem() {
    let found = one("ingress-nginx-helm-repo.yaml");
    assert_eq!(found.environment, None);
    assert_eq!(found.app.verdict.revision.as_deref(), Some("4.11.2"));
    assert_eq!(
        problems(&found),
        vec![
            "BLOCKS spec.source.chart: chart `ingress-nginx` from a Helm repository (https://kubernetes.github.io/ingress-nginx) cannot be fetched: DriftGuard renders charts that are folders of a Git repository",
        ]
    );
}

#[test]
fn a_cluster_discovery_does_not_know_is_a_blocking_problem() {
    let apps = applications("storefront-kustomize.yaml");
    let mut ctx = argocd_context();
    ctx.clusters.servers.clear();
    let found = &argocd::map_application(&apps[0], &ctx)[0];
    assert_eq!(found.environment, None);
    assert!(problems(found).contains(
        &"BLOCKS spec.destination.server: the cluster `https://10.0.12.1:6443` is not known to DriftGuard: map its URL to a kubeconfig context in the discovery configuration".to_owned()
    ));
}

#[test]
fn a_version_range_follows_what_argo_cd_resolved() {
    let mut app = applications("storefront-kustomize.yaml").remove(0);
    app["spec"]["source"]["targetRevision"] = json!("2.4.*");
    let found = &argocd::map_application(&app, &argocd_context())[0];
    let git = environment(found).git.as_ref().expect("git");
    assert_eq!(
        git.reference.as_deref(),
        Some("4b825dc642cb6eb9a060e54bf8d69288fbee4904")
    );
    assert!(problems(found)[0].starts_with(
        "spec.source.targetRevision: `2.4.*` is a version range, which DriftGuard does not resolve: the commit Argo CD last resolved (4b825dc642cb6eb9a060e54bf8d69288fbee4904) is read"
    ));
    app["status"] = json!({});
    let found = &argocd::map_application(&app, &argocd_context())[0];
    assert_eq!(found.environment, None);
}

#[test]
fn every_field_is_read_or_named() {
    let mut app = applications("guestbook-directory.yaml").remove(0);
    app["spec"]["source"]["directory"]["jsonnet"] =
        json!({"tlas": [{"name": "env", "value": "prod"}]});
    app["spec"]["source"]["kustomizeVersion"] = json!("v5");
    app["spec"]["futureOption"] = json!(true);
    let found = &argocd::map_application(&app, &argocd_context())[0];
    assert_eq!(found.environment, None);
    let p = problems(found);
    assert!(p.contains(&"spec.futureOption: not known to DriftGuard's discovery: not read (it may change what the tool deploys)".to_owned()), "{p:#?}");
    assert!(p.contains(&"spec.source.kustomizeVersion: not known to DriftGuard's discovery: not read (it may change what the tool deploys)".to_owned()), "{p:#?}");
    assert!(p.contains(&"BLOCKS spec.source.directory.jsonnet: sets tlas: DriftGuard does not render jsonnet (a command can: map the Application to a plugin)".to_owned()), "{p:#?}");
}

#[test]
fn filters_and_names() {
    let all: Vec<Value> = [
        "guestbook-directory.yaml",
        "shop-helm.yaml",
        "storefront-kustomize.yaml",
        "prometheus-multi-source.yaml",
        "tools-plugin.yaml",
        "ingress-nginx-helm-repo.yaml",
    ]
    .iter()
    .flat_map(|f| applications(f))
    .collect();
    let names = |ctx: &DiscoveryContext| -> Vec<String> {
        argocd::map_applications(&all, ctx)
            .iter()
            .map(|d| format!("{}/{}", d.app.namespace, d.app.name))
            .collect()
    };
    let mut ctx = argocd_context();
    assert_eq!(names(&ctx).len(), 9);
    ctx.filters.selector = Some(LabelSelector::parse("team in (web,shop)").expect("a selector"));
    assert_eq!(names(&ctx), vec!["argocd/guestbook", "argocd/shop"]);
    ctx.filters.selector = None;
    ctx.filters.projects = vec!["platform".into()];
    assert_eq!(
        names(&ctx),
        vec![
            "argocd/prometheus",
            "argocd/logging",
            "argocd/logging",
            "argocd/ingress-nginx"
        ]
    );
    ctx.filters.projects.clear();
    ctx.filters.namespaces = vec!["team-tools".into()];
    assert_eq!(names(&ctx), vec!["team-tools/tools"]);

    // a name given twice: the second environment is dropped, saying why
    let mut ctx = argocd_context();
    ctx.names
        .insert("argocd.shop".into(), "argocd.guestbook".into());
    let found = argocd::map_applications(&all, &ctx);
    let shop = found
        .iter()
        .find(|d| d.app.name == "shop")
        .expect("the shop Application");
    assert_eq!(shop.environment, None);
    assert_eq!(
        problems(shop),
        vec![
            "spec.source.helm.valueFiles[2]: a remote values file cannot be fetched: left out, the chart is rendered without it",
            "spec.source.helm.fileParameters[0]: `config.banner` from the file `files/banner.txt` (--set-file) is not passed: the chart is rendered without it, and the fields it sets may show as drift",
            "BLOCKS metadata.name: the environment name `argocd.guestbook` is already taken by Application argocd/guestbook: give one of them another name in the discovery name map",
        ]
    );
}
