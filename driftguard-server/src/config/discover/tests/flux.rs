//! Flux Kustomizations and HelmReleases with their sources.

use std::collections::{BTreeMap, BTreeSet};

use driftguard_core::metadata::MetadataKeys;
use serde_json::json;

use super::*;
use crate::config::discover::{flux, DiscoveredApp, ObjectKey, SecretData, Tool, ToolVerdict};
use crate::config::{
    EnvironmentConfig, GitConfig, HelmConfig, InlineValues, KustomizeConfig, KustomizePatch,
};

const SECRETS: [&str; 3] = ["s3cr3t-Pa55w0rd!", "tok-9f8e7d6c5b4a", "Sup3rS3cret"];

/// The fixture's Flux objects, and the context holding every other object of it.
fn load(file: &str) -> (Vec<Value>, Vec<Value>, DiscoveryContext) {
    let docs = fixture(&format!("flux/{file}"));
    let mut ctx = context();
    for d in &docs {
        ctx.add_object(d);
    }
    (
        of_kind(&docs, "Kustomization"),
        of_kind(&docs, "HelmRelease"),
        ctx,
    )
}

fn environment(found: &Discovered) -> &EnvironmentConfig {
    found
        .environment
        .as_ref()
        .unwrap_or_else(|| panic!("an environment: {:#?}", found.problems))
}

#[test]
fn a_kustomization_of_a_git_repository() {
    let (ks, _, ctx) = load("podinfo-kustomization.yaml");
    let found = flux::map_kustomization(&ks[0], &ctx);
    assert_eq!(
        found.app,
        DiscoveredApp {
            tool: Tool::Flux,
            kind: "Kustomization".into(),
            namespace: "flux-system".into(),
            name: "podinfo".into(),
            source: None,
            project: None,
            labels: BTreeMap::from([("team".into(), "apps".into())]),
            verdict: ToolVerdict {
                ready: Some("True".into()),
                reason: Some("ReconciliationSucceeded".into()),
                message: Some(
                    "Applied revision: master@sha1:6f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c".into()
                ),
                revision: Some("master@sha1:6f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c".into()),
                reconciled_at: Some("2026-05-04T08:56:02Z".into()),
                ..ToolVerdict::default()
            },
        }
    );
    assert_eq!(
        environment(&found),
        &EnvironmentConfig {
            name: "flux.flux-system.podinfo".into(),
            git: Some(GitConfig {
                url: "https://github.com/stefanprodan/podinfo".into(),
                reference: Some("master".into()),
                path: Some("kustomize".into()),
                ..GitConfig::default()
            }),
            kustomize: Some(KustomizeConfig {
                name_prefix: Some("prod-".into()),
                name_suffix: Some("-eu".into()),
                namespace: Some("podinfo".into()),
                images: vec![
                    "ghcr.io/stefanprodan/podinfo=registry.example.com/mirror/podinfo:6.7.1"
                        .into(),
                    // the digest wins over the tag
                    "busybox@sha256:9ae97d36d26566ff84e8893c64a6dc4fe8ca6d1144bf5b87b2b85a32def253c7"
                        .into(),
                ],
                patches: vec![KustomizePatch {
                    patch: Some(
                        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: podinfo\nspec:\n  minReadySeconds: 10"
                            .into(),
                    ),
                    path: None,
                    target: Some(BTreeMap::from([
                        ("kind".into(), "Deployment".into()),
                        ("name".into(), "podinfo".into()),
                    ])),
                }],
                components: vec!["../components/hpa".into()],
                // the ConfigMap, then the Secret, then the inline values (region wins)
                substitute: BTreeMap::from([
                    ("api_token".into(), "tok-9f8e7d6c5b4a".into()),
                    ("cluster_env".into(), "prod".into()),
                    ("cluster_name".into(), "prod-eu-1".into()),
                    ("db_password".into(), "s3cr3t-Pa55w0rd!".into()),
                    ("ingress_class".into(), "nginx".into()),
                    ("region".into(), "eu-west-1".into()),
                ]),
                ..KustomizeConfig::default()
            }),
            live: Some(home()),
            default_namespace: Some("podinfo".into()),
            ignore: vec![rule(
                None,
                Some("Deployment"),
                Some("*-podinfo-*"),
                &["/spec/replicas"],
                &[]
            )],
            metadata_keys: MetadataKeys {
                compare: Vec::new(),
                tool_owned: vec![
                    "app.kubernetes.io/part-of".into(),
                    "team.example.com/owner".into()
                ],
            },
            ..EnvironmentConfig::default()
        }
    );
    assert_eq!(
        found.secret_fields,
        vec![
            "kustomize.substitute.api_token",
            "kustomize.substitute.db_password"
        ]
    );
    assert_eq!(
        problems(&found),
        vec![
            "GitRepository/flux-system/podinfo.spec.secretRef: the repository takes credentials (Secret podinfo-git-auth), and none are configured for its URL in DriftGuard's discovery configuration: reading it may fail",
            "spec.ignore[1].target.labelSelector: DriftGuard's ignore rules select by group, kind, namespace and name only: the rule is left out, differences there are reported",
        ]
    );
}

#[test]
fn secret_values_never_show() {
    let (ks, hr, ctx) = load("podinfo-kustomization.yaml");
    let (_, releases, hr_ctx) = load("podinfo-helmrelease.yaml");
    assert!(hr.is_empty());
    let mut found = vec![
        flux::map_kustomization(&ks[0], &ctx),
        flux::map_helm_release(&releases[0], &hr_ctx),
    ];

    // a Secret that is not YAML, one that is missing, one whose value is binary
    let mut broken = hr_ctx.clone();
    broken.secrets.insert(
        ObjectKey::new("apps", "podinfo-db"),
        SecretData::new(BTreeMap::from([(
            "url".to_owned(),
            "Sup3rS3cret: [unclosed".to_owned(),
        )])),
    );
    let mut release = releases[0].clone();
    release["spec"]["valuesFrom"][1]
        .as_object_mut()
        .expect("a reference")
        .remove("targetPath");
    release["spec"]["valuesFrom"][1]["valuesKey"] = json!("url");
    found.push(flux::map_helm_release(&release, &broken));
    let mut binary = ctx.clone();
    binary.secrets.insert(
        ObjectKey::new("flux-system", "cluster-secrets"),
        SecretData::from_object(
            &json!({"data": {"db_password": "/w==", "api_token": "dG9rLTlmOGU3ZDZjNWI0YQ=="}}),
        ),
    );
    found.push(flux::map_kustomization(&ks[0], &binary));
    // Ready messages quoting the values taken from Secrets (a build error, say)
    let quoting = format!("build failed near {} and {}", SECRETS[0], SECRETS[1]);
    let mut kustomization = ks[0].clone();
    kustomization["status"]["conditions"] =
        json!([{"type": "Ready", "status": "False", "reason": "BuildFailed", "message": quoting}]);
    let quoting = "upgrade failed: cannot reach postgres://shop:Sup3rS3cret@db.internal:5432/shop";
    found.push(flux::map_kustomization(&kustomization, &ctx));
    let mut release = releases[0].clone();
    release["status"]["conditions"] = json!([{"type": "Ready", "status": "False", "reason": "UpgradeFailed", "message": quoting}]);
    found.push(flux::map_helm_release(&release, &hr_ctx));
    for f in &found[4..] {
        let message = f.app.verdict.message.as_deref().expect("a message");
        assert!(message.contains("<redacted>"), "{message}");
    }

    for f in &found {
        let shown = format!("{f:?} {:?} {}", f.problems, problems(f).join("\n"));
        for secret in SECRETS {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }
    assert!(format!("{:?}", found[0]).contains("\"db_password\": \"<redacted>\""));
    assert!(format!("{:?}", found[1]).contains("Text(\"<redacted>\")"));
    // the redacted copy is what a configuration is shown or stored as
    let redacted = found[0].redacted();
    let substitute = &environment(&redacted)
        .kustomize
        .as_ref()
        .expect("kustomize")
        .substitute;
    assert_eq!(substitute["db_password"], "<redacted>");
    assert_eq!(substitute["cluster_name"], "prod-eu-1");
    assert_eq!(
        problems(&found[2]),
        vec!["BLOCKS spec.valuesFrom[1]: `url` of the Secret apps/podinfo-db is not YAML"]
    );
    assert_eq!(
        problems(&found[3])[1],
        "spec.postBuild.substituteFrom[1]: the values of db_password in Secret flux-system/cluster-secrets are not text: left out"
    );
    assert_eq!(
        format!(
            "{:?}",
            SecretData::from_object(&json!({"data": {"k": "czNjcjN0LVBhNTV3MHJkIQ=="}}))
        ),
        "SecretData { keys: [\"k\"], undecodable: {} }"
    );
}

#[test]
fn a_required_source_of_variables_that_is_missing_blocks() {
    let (ks, _, mut ctx) = load("podinfo-kustomization.yaml");
    ctx.config_maps.clear();
    let found = flux::map_kustomization(&ks[0], &ctx);
    assert_eq!(found.environment, None);
    assert_eq!(
        problems(&found)[1],
        "BLOCKS spec.postBuild.substituteFrom[0]: the ConfigMap flux-system/cluster-vars was not found among the objects read, and it is not optional: Flux cannot build without it either"
    );
}

#[test]
fn variables_as_flux_reads_them() {
    let (ks, _, mut ctx) = load("podinfo-kustomization.yaml");
    let vars = ctx
        .config_maps
        .get_mut(&ObjectKey::new("flux-system", "cluster-vars"))
        .expect("the ConfigMap");
    vars.insert("cluster_name".into(), "prod-\neu-1\n".into());
    let found = flux::map_kustomization(&ks[0], &ctx);
    let substitute = &environment(&found)
        .kustomize
        .as_ref()
        .expect("kustomize")
        .substitute;
    assert_eq!(substitute["cluster_name"], "prod-eu-1");

    let vars = ctx
        .config_maps
        .get_mut(&ObjectKey::new("flux-system", "cluster-vars"))
        .expect("the ConfigMap");
    vars.insert("ingress-class".into(), "nginx".into());
    let found = flux::map_kustomization(&ks[0], &ctx);
    assert_eq!(found.environment, None);
    assert_eq!(
        problems(&found)[1],
        "BLOCKS spec.postBuild: `ingress-class` is not a variable name (letters, digits and `_`, not starting with a digit): Flux refuses to build with it too"
    );
}

#[test]
fn a_helm_release_of_a_chart_folder_in_git() {
    let (_, hr, ctx) = load("podinfo-helmrelease.yaml");
    let found = flux::map_helm_release(&hr[0], &ctx);
    assert_eq!(
        found.app.verdict,
        ToolVerdict {
            ready: Some("False".into()),
            reason: Some("UpgradeFailed".into()),
            message: Some("Helm upgrade failed for release podinfo-prod/podinfo-prod-podinfo with chart podinfo@6.7.1: context deadline exceeded".into()),
            revision: Some("6.7.1".into()),
            reconciled_at: Some("2026-05-04T09:01:30Z".into()),
            ..ToolVerdict::default()
        }
    );
    // the ConfigMap's values, the Secret's at its target path, then spec.values over them
    let values = json!({
        "replicaCount": 3,
        "ingress": {
            "className": "nginx",
            "enabled": true,
            "hosts": [{"host": "podinfo.example.com"}],
        },
        "resources": {"requests": {"cpu": "100m"}},
        "database": {"url": "postgres://shop:Sup3rS3cret@db.internal:5432/shop"},
    });
    let Value::Object(values) = values else {
        panic!("a mapping")
    };
    assert_eq!(
        environment(&found),
        &EnvironmentConfig {
            name: "flux.apps.podinfo".into(),
            git: Some(GitConfig {
                url: "ssh://git@git.example.com/platform/charts.git".into(),
                reference: Some("v3.2.0".into()),
                path: Some("charts/podinfo".into()),
                ssh_key: Some(PathBuf::from("/etc/driftguard/keys/platform")),
                ..GitConfig::default()
            }),
            helm: Some(HelmConfig {
                // [<targetNamespace>-]<name>
                release_name: Some("podinfo-prod-podinfo".into()),
                namespace: Some("podinfo-prod".into()),
                value_files: vec!["values.yaml".into(), "../../envs/prod/podinfo.yaml".into()],
                values: Some(InlineValues::Object(values)),
                include_crds: Some(false),
                ..HelmConfig::default()
            }),
            live: Some(home()),
            ignore: vec![rule(
                None,
                Some("Deployment"),
                None,
                &["/spec/replicas"],
                &[]
            )],
            metadata_keys: MetadataKeys {
                compare: Vec::new(),
                tool_owned: vec!["app.kubernetes.io/part-of".into()],
            },
            ..EnvironmentConfig::default()
        }
    );
    assert_eq!(found.secret_fields, vec!["helm.values"]);
    assert_eq!(problems(&found), Vec::<String>::new());
}

#[test]
fn charts_that_cannot_be_fetched_here() {
    let (_, hr, ctx) = load("helmrelease-helmrepository.yaml");
    let found = flux::map_all(&[], &hr, &ctx);
    assert_eq!(found.len(), 2);
    assert!(found.iter().all(|f| f.environment.is_none()));
    assert_eq!(
        problems(&found[0]),
        vec![
            "BLOCKS spec.chart.spec.sourceRef: chart `ingress-nginx` from the HelmRepository flux-system/ingress-nginx cannot be fetched here: DriftGuard renders charts that are folders of a Git repository",
        ]
    );
    assert_eq!(
        problems(&found[1]),
        vec![
            "BLOCKS spec.chartRef.kind: a chart from the OCIRepository flux-system/cert-manager cannot be fetched here: DriftGuard renders charts that are folders of a Git repository",
        ]
    );
    assert_eq!(found[0].app.verdict.ready.as_deref(), Some("True"));
}

#[test]
fn remote_clusters_are_the_discovery_configuration_s() {
    let (ks, _, mut ctx) = load("podinfo-kustomization.yaml");
    let mut remote = ks[0].clone();
    remote["spec"]["kubeConfig"] =
        json!({"secretRef": {"name": "prod-kubeconfig", "key": "value"}});
    let found = flux::map_kustomization(&remote, &ctx);
    assert_eq!(found.environment, None);
    assert_eq!(
        problems(&found)[0],
        "BLOCKS spec.kubeConfig.secretRef: the remote cluster of the Secret flux-system/prod-kubeconfig is not known to DriftGuard: map it to a kubeconfig context in the discovery configuration (Flux's kubeconfig is not used)"
    );
    ctx.clusters.kubeconfig_secrets.insert(
        ObjectKey::new("flux-system", "prod-kubeconfig"),
        context_live("prod"),
    );
    let found = flux::map_kustomization(&remote, &ctx);
    assert_eq!(environment(&found).live, Some(context_live("prod")));
}

#[test]
fn other_sources_and_references() {
    let (ks, _, ctx) = load("podinfo-kustomization.yaml");
    let mut oci = ks[0].clone();
    oci["spec"]["sourceRef"] = json!({"kind": "OCIRepository", "name": "podinfo"});
    let found = flux::map_kustomization(&oci, &ctx);
    assert_eq!(found.environment, None);
    assert_eq!(
        problems(&found)[0],
        "BLOCKS spec.sourceRef.kind: a source of kind OCIRepository (flux-system/podinfo) cannot be fetched here: DriftGuard reads Git repositories (GitRepository sources)"
    );

    let (_, hr, _) = load("podinfo-helmrelease.yaml");
    let refs = flux::references(&ks, &hr);
    assert_eq!(
        refs.config_maps,
        BTreeSet::from([
            ObjectKey::new("apps", "podinfo-values"),
            ObjectKey::new("flux-system", "cluster-vars"),
            ObjectKey::new("flux-system", "optional-overrides"),
        ])
    );
    assert_eq!(
        refs.secrets,
        BTreeSet::from([
            ObjectKey::new("apps", "podinfo-db"),
            ObjectKey::new("flux-system", "cluster-secrets"),
        ])
    );
}

#[test]
fn git_references_follow_flux_s_precedence() {
    let (ks, _, mut ctx) = load("podinfo-kustomization.yaml");
    let key = ObjectKey::new("flux-system", "podinfo");
    let reference = |ctx: &DiscoveryContext| {
        flux::map_kustomization(&ks[0], ctx)
            .environment
            .and_then(|e| e.git)
            .and_then(|g| g.reference)
    };
    let repo = ctx
        .git_repositories
        .get_mut(&key)
        .expect("the GitRepository");
    repo["spec"]["ref"] = json!({"branch": "main", "tag": "6.7.1", "commit": "6f1a2b3c"});
    assert_eq!(reference(&ctx).as_deref(), Some("6f1a2b3c"));
    let repo = ctx
        .git_repositories
        .get_mut(&key)
        .expect("the GitRepository");
    repo["spec"]["ref"] = json!({"branch": "main", "tag": "6.7.1"});
    assert_eq!(reference(&ctx).as_deref(), Some("6.7.1"));
    let repo = ctx
        .git_repositories
        .get_mut(&key)
        .expect("the GitRepository");
    repo["spec"]["ref"] = json!({"semver": ">=6.0.0"});
    repo["status"]["artifact"]["revision"] = json!("6.7.1@sha1:6f1a2b3c");
    assert_eq!(reference(&ctx).as_deref(), Some("6.7.1"));
    let repo = ctx
        .git_repositories
        .get_mut(&key)
        .expect("the GitRepository");
    repo["spec"].as_object_mut().expect("spec").remove("ref");
    // Flux's default, not the remote's default branch
    assert_eq!(reference(&ctx).as_deref(), Some("master"));
}
