//! Kustomize options (Argo CD's `spec.source.kustomize`, a Flux Kustomization's fields) over an
//! environment's folder, built by the real kustomize (`kubectl kustomize`): the folder's
//! kustomization edited as Argo CD edits it, one generated for a folder without one as Flux
//! generates it, Flux's post-build substitution; `recurse: false`; renderings keyed by the
//! options.

mod git_support;

use std::collections::BTreeMap;
use std::path::Path;

use driftguard_core::model::RawManifest;
use driftguard_core::ports::{DesiredSet, GitSource};
use driftguard_sources::files::DirSource;
use driftguard_sources::git::{GitRepoSource, GitSourceConfig};
use driftguard_sources::render::{
    KustomizeOptions, KustomizePatch, KustomizeRenderer, KustomizeReplica, Renderer,
};
use git_support::*;
use serde_json::{json, Value};

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: app
        image: nginx:1.25
        env:
        - {name: REGION, value: \"${region}\"}
        - {name: LOG_LEVEL, value: \"${log_level:=info}\"}
        - {name: REPLICAS, value: \"${replicas}\"}
";

const SERVICE: &str = "apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - {port: 80, targetPort: 8080}
";

const SETTINGS: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  script: echo $${HOME}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: raw
  annotations:
    kustomize.toolkit.fluxcd.io/substitute: disabled
data:
  region: ${region}
---
apiVersion: v1
kind: Secret
metadata:
  name: db
stringData:
  password: ${db_password}
";

/// A strategic-merge patch in a file of the folder (not one of its resources).
const MEMORY_PATCH: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  template:
    spec:
      containers:
      - name: app
        resources:
          limits: {memory: 256Mi}
";

const COMPONENT: &str = "apiVersion: kustomize.config.k8s.io/v1alpha1
kind: Component
resources:
- pdb.yaml
";

const PDB: &str = "apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: web
spec:
  minAvailable: 1
  selector:
    matchLabels: {app: web}
";

/// A repository: `apps/base` (a kustomization with a name prefix of its own that the options
/// replace, and an image entry they replace), `apps/components/ha` (a component).
fn write_base(repo: &TestRepo) {
    repo.write(
        "apps/base/kustomization.yaml",
        "# the folder's own settings\nresources:\n- deployment.yaml\n- service.yaml\n- settings.yaml\nnamePrefix: base-\nimages:\n- name: nginx\n  newTag: '1.26'\n",
    );
    repo.write("apps/base/deployment.yaml", DEPLOYMENT);
    repo.write("apps/base/service.yaml", SERVICE);
    repo.write("apps/base/settings.yaml", SETTINGS);
    repo.write("apps/base/memory.yaml", MEMORY_PATCH);
    repo.write("apps/components/ha/kustomization.yaml", COMPONENT);
    repo.write("apps/components/ha/pdb.yaml", PDB);
}

/// Every option of Argo CD's and Flux's.
fn options() -> KustomizeOptions {
    KustomizeOptions {
        name_prefix: Some("prod-".into()),
        name_suffix: Some("-v2".into()),
        namespace: Some("shop".into()),
        images: vec!["nginx=ghcr.io/acme/nginx:1.27".into()],
        common_labels: [("team".to_owned(), "shop".to_owned())].into(),
        common_annotations: [("owner".to_owned(), "platform".to_owned())].into(),
        patches: vec![
            KustomizePatch {
                path: Some("memory.yaml".into()),
                ..KustomizePatch::default()
            },
            KustomizePatch {
                patch: Some("- op: replace\n  path: /spec/ports/0/port\n  value: 8081".into()),
                path: None,
                target: [
                    ("kind".to_owned(), "Service".to_owned()),
                    ("name".to_owned(), "web".to_owned()),
                ]
                .into(),
            },
        ],
        replicas: vec![KustomizeReplica {
            name: "web".into(),
            count: 3,
        }],
        components: vec!["../components/ha".into()],
        substitute: [
            ("region".to_owned(), "eu-west-1".to_owned()),
            ("replicas".to_owned(), "3".to_owned()),
            ("db_password".to_owned(), "s3cr3t-pa55".to_owned()),
        ]
        .into(),
    }
}

fn renderer(options: KustomizeOptions) -> Renderer {
    Renderer::Kustomize(KustomizeRenderer::new(options).binary(kustomize_bin()))
}

/// The objects by `Kind namespace/name`.
fn by_id(set: &DesiredSet) -> BTreeMap<String, &RawManifest> {
    set.objects
        .iter()
        .map(|m| {
            let v = m.object.value();
            let id = format!(
                "{} {}/{}",
                v["kind"].as_str().unwrap_or(""),
                v["metadata"]["namespace"].as_str().unwrap_or(""),
                v["metadata"]["name"].as_str().unwrap_or("")
            );
            (id, m)
        })
        .collect()
}

#[track_caller]
fn object<'a>(set: &'a DesiredSet, id: &str) -> &'a Value {
    let all = by_id(set);
    match all.get(id) {
        Some(m) => m.object.value(),
        None => panic!("{id} not in {:?}", all.keys().collect::<Vec<_>>()),
    }
}

#[tokio::test]
async fn argo_cd_s_options_and_flux_s_substitution_build_the_folder() {
    let mut repo = TestRepo::new();
    write_base(&repo);
    let commit = repo.commit("base", "Alice");
    let cache = cache();
    let cfg = GitSourceConfig::new(repo.url(), cache.path())
        .path("apps/base")
        .render(renderer(options()));
    let git = GitRepoSource::open(cfg).await.expect("opens");
    let set = git.load().await.expect("builds");
    assert!(set.errors.is_empty(), "{:?}", set.errors);
    let ids: Vec<String> = by_id(&set).into_keys().collect();
    assert_eq!(
        ids,
        [
            "ConfigMap shop/prod-raw-v2",
            "ConfigMap shop/prod-settings-v2",
            "Deployment shop/prod-web-v2",
            "PodDisruptionBudget shop/prod-web-v2",
            "Secret shop/prod-db-v2",
            "Service shop/prod-web-v2",
        ],
        "the options' prefix replaces the folder's (`base-` is gone), the suffix and namespace are set, the component's object is there"
    );
    let web = object(&set, "Deployment shop/prod-web-v2");
    assert_eq!(web["spec"]["replicas"], 3, "replicas by the object's name");
    assert_eq!(
        web["metadata"]["labels"],
        json!({"app": "web", "team": "shop"})
    );
    assert_eq!(web["metadata"]["annotations"], json!({"owner": "platform"}));
    assert_eq!(
        web["spec"]["selector"]["matchLabels"],
        json!({"app": "web", "team": "shop"}),
        "commonLabels reach the selectors"
    );
    let container = &web["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["image"], "ghcr.io/acme/nginx:1.27",
        "the override replaces the folder's entry for nginx"
    );
    assert_eq!(
        container["resources"],
        json!({"limits": {"memory": "256Mi"}}),
        "the strategic-merge patch"
    );
    assert_eq!(
        container["env"],
        json!([
            {"name": "REGION", "value": "eu-west-1"},
            {"name": "LOG_LEVEL", "value": "info"},
            // Flux substitutes the built YAML, where kustomize left `${replicas}` unquoted:
            // the value is read again as a number, as Flux reads it
            {"name": "REPLICAS", "value": 3},
        ]),
        "variables and a default"
    );
    let svc = object(&set, "Service shop/prod-web-v2");
    assert_eq!(
        svc["spec"]["ports"],
        json!([{"port": 8081, "targetPort": 8080}]),
        "the JSON 6902 patch"
    );
    assert_eq!(
        svc["spec"]["selector"],
        json!({"app": "web", "team": "shop"})
    );
    assert_eq!(
        object(&set, "ConfigMap shop/prod-settings-v2")["data"]["script"],
        "echo ${HOME}",
        "`$$` escapes"
    );
    assert_eq!(
        object(&set, "ConfigMap shop/prod-raw-v2")["data"]["region"],
        "${region}",
        "an object annotated `substitute: disabled` is left as built"
    );
    assert_eq!(
        object(&set, "Secret shop/prod-db-v2")["stringData"]["password"],
        "s3cr3t-pa55"
    );
    let pdb = object(&set, "PodDisruptionBudget shop/prod-web-v2");
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"],
        json!({"app": "web", "team": "shop"})
    );
    // provenance: rendered by kustomize from the folder, named by its kustomization
    let p = &by_id(&set)["Deployment shop/prod-web-v2"].provenance;
    assert_eq!(p.file, "apps/base/kustomization.yaml");
    assert_eq!(p.revision.as_deref(), Some(commit.as_str()));
    let r = p.rendered.as_ref().expect("rendered");
    assert_eq!(
        (r.renderer.as_str(), r.source.as_str()),
        ("kustomize", "apps/base")
    );
    assert!(
        set.notes.iter().any(|n| n.starts_with(
            "kustomization apps/base built with kustomize options (namePrefix, nameSuffix, images, replicas, commonLabels, commonAnnotations, namespace, patches, components, 3 variable(s) substituted)"
        )),
        "{:?}",
        set.notes
    );
    assert!(
        !format!("{:?}", git).contains("s3cr3t"),
        "the source's Debug shows no substituted value"
    );
    // the same revision again: the rendering is kept
    git.load().await.expect("builds");
    assert_eq!(git.renders(), 1);
}

#[tokio::test]
async fn a_changed_option_renders_anew_and_the_same_options_do_not() {
    let mut repo = TestRepo::new();
    write_base(&repo);
    repo.commit("base", "Alice");
    let cache = cache();
    let open = |options: KustomizeOptions| {
        GitRepoSource::open(
            GitSourceConfig::new(repo.url(), cache.path())
                .path("apps/base")
                .render(renderer(options)),
        )
    };
    let a = open(KustomizeOptions {
        name_prefix: Some("a-".into()),
        ..KustomizeOptions::default()
    })
    .await
    .expect("opens");
    let b = open(KustomizeOptions {
        name_prefix: Some("b-".into()),
        ..KustomizeOptions::default()
    })
    .await
    .expect("opens");
    let names = |set: &DesiredSet| -> Vec<String> {
        let mut n: Vec<String> = set
            .objects
            .iter()
            .map(|m| {
                m.object.value()["metadata"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned()
            })
            .collect();
        n.sort();
        n
    };
    let set_a = a.load().await.expect("builds");
    assert_eq!(
        names(&set_a),
        ["a-db", "a-raw", "a-settings", "a-web", "a-web"]
    );
    let set_b = b.load().await.expect("builds");
    assert_eq!(
        names(&set_b),
        ["b-db", "b-raw", "b-settings", "b-web", "b-web"]
    );
    // no substitution without variables: the text stays
    assert_eq!(
        object(&set_b, "ConfigMap /b-settings")["data"]["script"],
        "echo $${HOME}"
    );
    a.load().await.expect("builds");
    assert_eq!((a.renders(), b.renders()), (1, 1));
    // a change in a folder the kustomization reads (the component) renders anew
    repo.write(
        "apps/base/kustomization.yaml",
        "resources:\n- deployment.yaml\ncomponents:\n- ../components/ha\n",
    );
    repo.commit("component", "Bob");
    a.fetch().await.expect("fetch");
    let set = a.load().await.expect("builds");
    assert_eq!(names(&set), ["a-web", "a-web"]);
    repo.write(
        "apps/components/ha/pdb.yaml",
        &PDB.replace("minAvailable: 1", "minAvailable: 2"),
    );
    repo.commit("pdb", "Bob");
    a.fetch().await.expect("fetch");
    let set = a.load().await.expect("builds");
    assert_eq!(
        object(&set, "PodDisruptionBudget /a-web")["spec"]["minAvailable"],
        2
    );
    assert_eq!(a.renders(), 3);
}

/// A folder with no kustomization: plain manifests, one in a subfolder, a kustomization
/// below it, a file left out by a glob, a Helm chart, a README.
fn write_plain(repo: &TestRepo) {
    let cm = |name: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  k: v\n")
    };
    repo.write("apps/plain/a.yaml", &cm("a"));
    repo.write("apps/plain/sub/b.yml", &cm("b"));
    repo.write(
        "apps/plain/sub/app/kustomization.yaml",
        "resources: [c.yaml]\n",
    );
    repo.write("apps/plain/sub/app/c.yaml", &cm("c"));
    repo.write("apps/plain/skip-me.yaml", &cm("skipped"));
    repo.write("apps/plain/README.md", "# not a manifest\n");
    repo.write(
        "apps/plain/chart/Chart.yaml",
        "apiVersion: v2\nname: x\nversion: 1.0.0\n",
    );
    repo.write("apps/plain/chart/templates/x.yaml", &cm("chart"));
}

#[tokio::test]
async fn a_folder_without_kustomization_gets_one_as_flux_generates_it() {
    let mut repo = TestRepo::new();
    write_plain(&repo);
    repo.commit("plain", "Alice");
    let cache = cache();
    let options = KustomizeOptions {
        name_prefix: Some("x-".into()),
        namespace: Some("ns".into()),
        common_labels: [("env".to_owned(), "prod".to_owned())].into(),
        ..KustomizeOptions::default()
    };
    let mut cfg = GitSourceConfig::new(repo.url(), cache.path())
        .path("apps/plain")
        .render(renderer(options.clone()));
    cfg.exclude = vec!["skip-*".into()];
    let git = GitRepoSource::open(cfg.clone()).await.expect("opens");
    let set = git.load().await.expect("builds");
    assert!(set.errors.is_empty(), "{:?}", set.errors);
    let ids: Vec<String> = by_id(&set).into_keys().collect();
    assert_eq!(
        ids,
        ["ConfigMap ns/x-a", "ConfigMap ns/x-b", "ConfigMap ns/x-c"]
    );
    assert_eq!(
        object(&set, "ConfigMap ns/x-c")["metadata"]["labels"],
        json!({"env": "prod"})
    );
    assert!(
        set.notes.iter().any(|n| n
            == "apps/plain has no kustomization: one listing its 3 resource(s) was generated, as Flux does, and built (namePrefix, commonLabels, namespace)"),
        "{:?}",
        set.notes
    );
    assert!(
        set.notes
            .iter()
            .any(|n| n.contains("Helm chart at apps/plain/chart")),
        "{:?}",
        set.notes
    );
    // without recurse, only the folder's own files are listed
    cfg.recurse = false;
    let git = GitRepoSource::open(cfg).await.expect("opens");
    let set = git.load().await.expect("builds");
    let ids: Vec<String> = by_id(&set).into_keys().collect();
    assert_eq!(ids, ["ConfigMap ns/x-a"]);
}

#[tokio::test]
async fn without_recurse_a_git_folder_s_subfolders_are_not_read() {
    let mut repo = TestRepo::new();
    write_plain(&repo);
    repo.write(
        "apps/plain/kustomize-free.json",
        "{\"apiVersion\": \"v1\", \"kind\": \"ConfigMap\", \"metadata\": {\"name\": \"j\"}}",
    );
    repo.commit("plain", "Alice");
    let cache = cache();
    let mut cfg = GitSourceConfig::new(repo.url(), cache.path()).path("apps/plain");
    cfg.kustomize_bin = Some(kustomize_bin());
    let all = GitRepoSource::open(cfg.clone()).await.expect("opens");
    let names = |set: &DesiredSet| -> Vec<String> {
        let mut n: Vec<String> = set
            .objects
            .iter()
            .map(|m| {
                m.object.value()["metadata"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned()
            })
            .collect();
        n.sort();
        n
    };
    let set = all.load().await.expect("reads");
    assert_eq!(names(&set), ["a", "b", "c", "j", "skipped"]);
    cfg.recurse = false;
    let top = GitRepoSource::open(cfg).await.expect("opens");
    let set = top.load().await.expect("reads");
    assert_eq!(names(&set), ["a", "j", "skipped"]);
    assert!(set.errors.is_empty(), "{:?}", set.errors);
    assert!(
        set.notes.is_empty(),
        "no chart or kustomization looked at: {:?}",
        set.notes
    );
    // the same for a plain folder
    let dir = DirSource::new(repo.path().join("apps/plain"))
        .with_kustomize_bin(kustomize_bin())
        .with_recurse(false);
    assert_eq!(
        names(&dir.load().await.expect("reads")),
        ["a", "j", "skipped"]
    );
}

#[tokio::test]
async fn a_plain_folder_is_built_from_a_copy_and_left_as_it_is() {
    let repo = TestRepo::new();
    write_base(&repo);
    repo.write(
        "apps/prod/kustomization.yaml",
        "resources:\n- ../base\npatches:\n- path: replicas.yaml\n",
    );
    repo.write(
        "apps/prod/replicas.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 5\n",
    );
    let folder = repo.path().join("apps/prod");
    let before = std::fs::read_to_string(folder.join("kustomization.yaml")).expect("read");
    let options = KustomizeOptions {
        name_suffix: Some("-eu".into()),
        namespace: Some("shop-eu".into()),
        components: vec!["../components/ha".into()],
        substitute: [("region".to_owned(), "eu-central-1".to_owned())].into(),
        ..KustomizeOptions::default()
    };
    let dir = DirSource::new(&folder).with_renderer(renderer(options.clone()));
    let set = dir.load().await.expect("builds");
    assert!(set.errors.is_empty(), "{:?}", set.errors);
    let web = object(&set, "Deployment shop-eu/base-web-eu");
    assert_eq!(web["spec"]["replicas"], 5, "the folder's own patch");
    assert_eq!(
        web["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"],
        "eu-central-1"
    );
    assert!(
        by_id(&set).contains_key("PodDisruptionBudget shop-eu/web-eu"),
        "{:?}",
        by_id(&set).keys()
    );
    assert_eq!(
        std::fs::read_to_string(folder.join("kustomization.yaml")).expect("read"),
        before,
        "the user's kustomization is not edited"
    );
    let names: Vec<_> = std::fs::read_dir(&folder)
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names.len(), 2, "nothing written into the folder: {names:?}");
    // a folder that may read outside itself is built at every read, and its revision
    // follows what the build printed
    let first = dir.revision().await.expect("revision");
    repo.write(
        "apps/base/service.yaml",
        &SERVICE.replace("port: 80,", "port: 81,"),
    );
    let second = dir.revision().await.expect("revision");
    assert_ne!(first.id, second.id, "a change in ../base is a new revision");
    let again = DirSource::new(&folder).with_renderer(renderer(options));
    assert_eq!(again.revision().await.expect("revision").id, second.id);
}

#[tokio::test]
async fn substituted_values_stay_out_of_errors() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let write = |file: &str, text: &str| {
        let p = tmp.path().join(file);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    };
    write(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  a: x\n  ${key}: 1\n  b: ${broken\n",
    );
    let load = |value: &str| {
        let options = KustomizeOptions {
            substitute: [("key".to_owned(), value.to_owned())].into(),
            ..KustomizeOptions::default()
        };
        let dir = DirSource::new(tmp.path()).with_renderer(renderer(options));
        async move { dir.load().await }
    };
    // a malformed `${`: an error of the environment naming the object, never a value
    let e = load("hunter2").await.expect_err("bad substitution");
    let message = driftguard_core::error::chain(&e);
    assert!(message.contains("ConfigMap cm"), "{message}");
    assert!(message.contains("missing closing brace"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
    // a value that breaks the YAML: an error of the object, without the value
    write(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  a: ${key}\n",
    );
    let set = load("p4ss: {[word").await.expect("built");
    assert_eq!(set.errors.len(), 1, "{:?}", set.errors);
    assert!(
        !set.errors[0].message.contains("p4ss"),
        "{}",
        set.errors[0].message
    );
    // a value in a name the API server refuses: the reader's message quotes the name, so it
    // is withheld
    write(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-${key}\n",
    );
    let set = load("hunter/2").await.expect("built");
    assert_eq!(set.errors.len(), 1, "{:?}", set.errors);
    let e = &set.errors[0];
    assert!(!e.message.contains("hunter/2"), "{}", e.message);
    assert!(e.message.contains("withheld"), "{}", e.message);
    // an option that is not a variable name
    let e = load_named(tmp.path(), "bad-name").await;
    assert!(e.contains("kustomize.substitute.bad-name"), "{e}");
}

async fn load_named(dir: &Path, name: &str) -> String {
    let options = KustomizeOptions {
        substitute: [(name.to_owned(), "v".to_owned())].into(),
        ..KustomizeOptions::default()
    };
    let e = DirSource::new(dir)
        .with_renderer(renderer(options))
        .load()
        .await
        .expect_err("refused");
    driftguard_core::error::chain(&e)
}

#[tokio::test]
async fn history_follows_the_built_object() {
    let mut repo = TestRepo::new();
    write_base(&repo);
    let first = repo.commit("base", "Alice");
    repo.write(
        "apps/base/deployment.yaml",
        &DEPLOYMENT.replace("nginx:1.25", "nginx:1.26"),
    );
    repo.commit("unrelated to the override", "Bob");
    repo.write(
        "apps/base/deployment.yaml",
        &DEPLOYMENT.replace("replicas: 1", "replicas: 1\n  minReadySeconds: 5"),
    );
    let third = repo.commit("minReadySeconds", "Carol");
    let cache = cache();
    let git = GitRepoSource::open(
        GitSourceConfig::new(repo.url(), cache.path())
            .path("apps/base")
            .render(renderer(options())),
    )
    .await
    .expect("opens");
    let id = driftguard_core::id::ResourceId::new(
        "prod",
        "apps",
        "Deployment",
        Some("shop"),
        "prod-web-v2",
    );
    let versions = git.history(&id, 10).await.expect("history");
    let commits: Vec<&str> = versions.iter().map(|v| v.commit.id.as_str()).collect();
    // the image change is hidden by the override: two versions
    assert_eq!(commits, [third.as_str(), first.as_str()]);
}
