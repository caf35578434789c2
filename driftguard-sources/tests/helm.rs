//! Helm charts on the desired side, rendered by a real helm (v3.18, `scripts/helm/install.sh`;
//! a missing helm fails these tests): the chart of `examples/helm` (a CRD, a subchart under
//! `charts/`, a hook, a test, per-environment value files) in real Git repositories and
//! folders.

mod git_support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use driftguard_core::engine::{EnvironmentSpec, Scanner};
use driftguard_core::error::chain;
use driftguard_core::id::ResourceId;
use driftguard_core::memory::{ManualClock, MemoryLiveSource, MemoryStore};
use driftguard_core::model::{RawLive, RawManifest};
use driftguard_core::normalize::{Normalizer, SecretKey};
use driftguard_core::ports::{DesiredSet, GitSource, SourceError};
use driftguard_core::prelude::{Direction, DriftKind, Engine};
use driftguard_core::render::{HelmOptions, RenderError};
use driftguard_sources::files::DirSource;
use driftguard_sources::git::{GitRepoSource, GitSourceConfig};
use driftguard_sources::render::{HelmRenderer, Renderer};
use git_support::*;
use serde_json::Value;

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/helm")
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).expect("mkdir");
    for e in std::fs::read_dir(src).expect("read dir") {
        let e = e.expect("entry");
        let to = dst.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), to).expect("copy");
        }
    }
}

/// A repository holding `examples/helm` (`charts/shop`, `envs/{staging,prod}/values.yaml`).
fn chart_repo() -> (TestRepo, String) {
    let mut repo = TestRepo::new();
    copy_dir(&example(), repo.path());
    let c = repo.commit("add the shop chart", "Alice");
    (repo, c)
}

/// The prod environment's rendering: release `shop` in `shop-prod` with the prod values.
fn prod_helm() -> HelmRenderer {
    let mut o = HelmOptions::new("shop", "shop-prod");
    o.value_files = vec!["../../envs/prod/values.yaml".into()];
    HelmRenderer::new(o).binary(driftguard_test_support::helm())
}

async fn open(repo: &TestRepo, cache: &Path, helm: HelmRenderer) -> GitRepoSource {
    let cfg = GitSourceConfig::new(repo.url(), cache)
        .path("charts/shop")
        .render(Renderer::Helm(helm));
    GitRepoSource::open(cfg).await.expect("opens")
}

fn find<'a>(set: &'a DesiredSet, kind: &str, name: &str) -> &'a RawManifest {
    set.objects
        .iter()
        .find(|m| m.object.meta().kind == kind && m.object.meta().name == name)
        .unwrap_or_else(|| panic!("{kind} {name} not rendered: {:?}", names(set)))
}

fn names(set: &DesiredSet) -> Vec<String> {
    let mut v: Vec<String> = set
        .objects
        .iter()
        .map(|m| format!("{} {}", m.object.meta().kind, m.object.meta().name))
        .collect();
    v.sort();
    v
}

fn at<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(v, |v, k| match k.parse::<usize>() {
        Ok(i) => &v[i],
        Err(_) => &v[*k],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chart_in_git_renders_with_provenance_and_without_hooks() {
    let (repo, commit) = chart_repo();
    let cache = cache();
    let git = open(&repo, cache.path(), prod_helm()).await;
    assert!(
        git.describe().ends_with(":charts/shop (helm chart)"),
        "{}",
        git.describe()
    );
    let set = git.load().await.expect("renders");
    assert!(set.errors.is_empty(), "{:?}", set.errors);
    assert_eq!(
        names(&set),
        [
            "ConfigMap shop-config",
            "CustomResourceDefinition widgets.shop.example.com",
            "Deployment shop-cache",
            "Deployment shop-web",
            "Deployment shop-worker",
        ],
        "the hook Job and the test Pod are not desired state"
    );
    // prod's values over the chart's, the parent's values over the subchart's
    let web = find(&set, "Deployment", "shop-web");
    assert_eq!(at(web.object.value(), &["spec", "replicas"]), 3);
    let worker = find(&set, "Deployment", "shop-worker");
    let container = at(
        worker.object.value(),
        &["spec", "template", "spec", "containers", "0"],
    );
    assert_eq!(container["image"], "busybox:1.32.1");
    let cache_deploy = find(&set, "Deployment", "shop-cache");
    let args = at(
        cache_deploy.object.value(),
        &["spec", "template", "spec", "containers", "0", "args"],
    );
    assert_eq!(args[1], "256mb");
    // provenance: the template (a subchart's inside it), the value files, the commits
    assert_eq!(web.provenance.file, "charts/shop/templates/web.yaml");
    assert_eq!(
        cache_deploy.provenance.file,
        "charts/shop/charts/cache/templates/cache.yaml"
    );
    assert_eq!(
        find(&set, "CustomResourceDefinition", "widgets.shop.example.com")
            .provenance
            .file,
        "charts/shop/crds/widgets.yaml"
    );
    assert_eq!(web.provenance.revision.as_deref(), Some(commit.as_str()));
    let r = web.provenance.rendered.as_ref().expect("rendered");
    assert_eq!(r.renderer, "helm");
    assert_eq!(r.source, "charts/shop");
    assert_eq!(r.values, ["envs/prod/values.yaml"]);
    assert_eq!(r.inputs_commit.as_deref(), Some(commit.as_str()));
    assert_eq!(
        web.provenance.to_string(),
        format!(
            "charts/shop/templates/web.yaml (rendered by helm from charts/shop with envs/prod/values.yaml, inputs last changed in {})",
            &commit[..12]
        )
    );
    // the notes say what was rendered and which hooks were skipped
    assert!(
        set.notes.contains(
            &"Helm chart charts/shop rendered (release shop, namespace shop-prod, values envs/prod/values.yaml)".to_owned()
        ),
        "{:?}",
        set.notes
    );
    assert!(
        set.notes.contains(&"Helm chart charts/shop: 2 hooks skipped (hooks are not desired state): Pod shop-test-connection (test), Job shop-migrate (pre-install,pre-upgrade)".to_owned()),
        "{:?}",
        set.notes
    );
    assert_eq!(git.renders(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_follow_argo_cds_precedence() {
    let tmp = tempfile::tempdir().expect("temp dir");
    copy_dir(&example(), tmp.path());
    let chart = tmp.path().join("charts/shop");
    std::fs::write(
        chart.join("a.yaml"),
        "logLevel: from-a\ntheme: from-a\nweb: {replicas: 2}\nworker: {image: from-a}\n",
    )
    .expect("write");
    std::fs::write(
        chart.join("b.yaml"),
        "theme: from-b\nweb: {replicas: 3}\nworker: {image: from-b}\n",
    )
    .expect("write");
    let mut o = HelmOptions::new("shop", "shop-qa");
    o.value_files = vec!["a.yaml".into(), "b.yaml".into()];
    o.values = Some("web: {replicas: 4}\nworker: {image: from-inline}\n".into());
    o.parameters = vec![driftguard_core::render::HelmParameter {
        name: "web.replicas".into(),
        value: "5".into(),
        force_string: false,
    }];
    let helm = HelmRenderer::new(o).binary(driftguard_test_support::helm());
    let dir = DirSource::new(&chart).with_renderer(Renderer::Helm(helm));
    let set = dir.load().await.expect("renders");
    let config = find(&set, "ConfigMap", "shop-config").object.value();
    assert_eq!(
        config["data"]["LOG_LEVEL"], "from-a",
        "a value file over the chart"
    );
    assert_eq!(
        config["data"]["THEME"], "from-b",
        "the last value file wins"
    );
    let worker = find(&set, "Deployment", "shop-worker").object.value();
    assert_eq!(
        at(
            worker,
            &["spec", "template", "spec", "containers", "0", "image"]
        ),
        "from-inline",
        "inline values over the value files"
    );
    assert_eq!(
        at(worker, &["spec", "replicas"]),
        1,
        "the chart's values.yaml under everything"
    );
    let web = find(&set, "Deployment", "shop-web").object.value();
    assert_eq!(
        at(web, &["spec", "replicas"]),
        5,
        "parameters over everything"
    );
    let r = find(&set, "Deployment", "shop-web")
        .provenance
        .rendered
        .clone()
        .expect("rendered");
    assert_eq!(r.values, ["a.yaml", "b.yaml"]);
    assert!(
        set.notes[0].ends_with("values a.yaml, b.yaml, inline values, 1 parameter)"),
        "{:?}",
        set.notes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revision_whose_inputs_did_not_change_is_not_rendered_again() {
    let (mut repo, first) = chart_repo();
    let cache = cache();
    let git = open(&repo, cache.path(), prod_helm()).await;
    git.load().await.expect("renders");
    assert_eq!(git.renders(), 1);

    let since = |set: &DesiredSet| {
        set.objects[0]
            .provenance
            .rendered
            .as_ref()
            .and_then(|r| r.inputs_commit.clone())
            .expect("inputs commit")
    };
    // not an input: a file beside the chart, the other environment's values
    repo.write("README.md", "# shop\n");
    let second = repo.commit("docs", "Bob");
    repo.write("envs/staging/values.yaml", "logLevel: trace\n");
    repo.commit("staging: trace", "Bob");
    git.fetch().await.expect("fetch");
    let set = git.load().await.expect("loads");
    assert_eq!(
        git.renders(),
        1,
        "no input changed: the rendering is reused"
    );
    assert_ne!(
        set.revision.as_ref().map(|r| r.id.as_str()),
        Some(first.as_str())
    );
    assert_eq!(since(&set), first);
    let older = git
        .desired(&driftguard_core::model::Revision::plain(second))
        .await
        .expect("loads");
    assert_eq!(git.renders(), 1);
    assert_eq!(since(&older), first);

    // inputs: prod's value file, a template
    repo.write(
        "envs/prod/values.yaml",
        &std::fs::read_to_string(example().join("envs/prod/values.yaml"))
            .expect("read")
            .replace("replicas: 3", "replicas: 4"),
    );
    let values = repo.commit("prod: 4 web replicas", "Carol");
    git.fetch().await.expect("fetch");
    let set = git.load().await.expect("loads");
    assert_eq!(git.renders(), 2);
    assert_eq!(since(&set), values);
    assert_eq!(
        at(
            find(&set, "Deployment", "shop-web").object.value(),
            &["spec", "replicas"]
        ),
        4
    );
    repo.write(
        "charts/shop/templates/extra.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-extra\n",
    );
    let template = repo.commit("an extra ConfigMap", "Dan");
    git.fetch().await.expect("fetch");
    let set = git.load().await.expect("loads");
    assert_eq!(git.renders(), 3);
    assert_eq!(since(&set), template);
    find(&set, "ConfigMap", "shop-extra");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn earlier_revisions_are_rendered_for_history_and_reverse_drift_names_the_commit() {
    let (mut repo, first) = chart_repo();
    let cache = cache();
    let git = Arc::new(open(&repo, cache.path(), prod_helm()).await);
    let at_first = git.load().await.expect("renders");
    let prod = std::fs::read_to_string(example().join("envs/prod/values.yaml")).expect("read");
    repo.write(
        "envs/prod/values.yaml",
        &prod.replace("busybox:1.32.1", "busybox:1.33.0"),
    );
    let bump = repo.commit("prod: worker on busybox 1.33", "Bob");
    repo.write("README.md", "# unrelated\n");
    repo.commit("unrelated", "Carol");
    git.fetch().await.expect("fetch");
    git.load().await.expect("renders");
    assert_eq!(git.renders(), 2);

    let id = ResourceId::new(
        "prod",
        "apps",
        "Deployment",
        Some("shop-prod"),
        "shop-worker",
    );
    let versions = git.history(&id, 20).await.expect("history");
    let seen: Vec<(&str, &str)> = versions
        .iter()
        .map(|v| {
            let image = v
                .object
                .as_ref()
                .and_then(|o| {
                    o.value()["spec"]["template"]["spec"]["containers"][0]["image"].as_str()
                })
                .unwrap_or("-");
            (v.commit.id.as_str(), image)
        })
        .collect();
    assert_eq!(
        seen,
        [
            (bump.as_str(), "busybox:1.33.0"),
            (first.as_str(), "busybox:1.32.1")
        ]
    );
    assert!(
        git.renders() <= 3,
        "earlier renderings are kept: {}",
        git.renders()
    );
    // an object the chart never rendered has no history
    let none = ResourceId::new("prod", "", "ConfigMap", Some("shop-prod"), "nope");
    assert!(git.history(&none, 20).await.expect("history").is_empty());

    // the cluster still runs what the first commit rendered: reverse drift naming the bump
    let live = Arc::new(MemoryLiveSource::new());
    live.set(
        at_first
            .objects
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let mut v = m.object.value().clone();
                if m.object.meta().kind != "CustomResourceDefinition" {
                    v["metadata"]["namespace"] = Value::String("shop-prod".into());
                }
                v["metadata"]["uid"] = Value::String(format!("u{i}"));
                v["metadata"]["resourceVersion"] = Value::String("1".into());
                RawLive::new(v)
            })
            .collect(),
    );
    let mut spec = EnvironmentSpec::new("prod");
    spec.default_namespace = Some("shop-prod".into());
    let engine = Engine::new(spec, Normalizer::new(SecretKey::new(b"test-key".to_vec())));
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2024, 2, 1, 12, 0, 0)
            .single()
            .expect("valid time"),
    ));
    let scanner = Scanner::new(engine, git, live, Arc::new(MemoryStore::new()), clock);
    let report = scanner.scan().await.expect("scan");
    let drifts: Vec<_> = report.drifts().collect();
    assert_eq!(drifts.len(), 1, "{drifts:?}");
    let d = drifts[0];
    assert_eq!(d.id, id);
    assert_eq!(d.kind, DriftKind::Modified);
    assert_eq!(d.direction, Direction::Reverse);
    let commit = d.attribution.commit.as_ref().expect("commit named");
    assert_eq!(
        (commit.id.as_str(), commit.author.as_str()),
        (bump.as_str(), "Bob")
    );
    assert_eq!(
        d.provenance.as_ref().map(|p| p.file.as_str()),
        Some("charts/shop/templates/worker.yaml")
    );
    assert!(
        report.notes.iter().any(|n| n.contains("2 hooks skipped")),
        "{:?}",
        report.notes
    );
}

fn render_error(e: SourceError) -> RenderError {
    match e {
        SourceError::Render(r) => r,
        other => panic!("not a render error: {}", chain(&other)),
    }
}

/// A copy of `examples/helm` in a folder; the chart is `charts/shop` in it.
fn chart_dir() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("temp dir");
    copy_dir(&example(), tmp.path());
    tmp
}

async fn dir_error(chart: &Path, helm: HelmRenderer) -> String {
    let dir = DirSource::new(chart).with_renderer(Renderer::Helm(helm));
    let e = dir.load().await.expect_err("cannot render");
    let text = chain(&e);
    render_error(e);
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_charts_are_clear_errors() {
    // a dependency that is not vendored: it would need the network, DriftGuard does not fetch
    let (mut repo, _) = chart_repo();
    std::fs::remove_dir_all(repo.path().join("charts/shop/charts")).expect("rm");
    repo.commit("drop the vendored cache chart", "Bob");
    let cache = cache();
    let git = open(&repo, cache.path(), prod_helm()).await;
    let e = git.load().await.expect_err("cannot render");
    let text = chain(&e);
    assert!(
        matches!(render_error(e), RenderError::MissingDependency { ref dependencies, .. } if dependencies == &["cache"]),
        "{text}"
    );
    assert_eq!(
        text,
        "rendering failed: chart charts/shop needs a dependency not vendored under charts/ (cache): DriftGuard does not download dependencies; run `helm dependency build` and commit charts/"
    );

    // a template that does not render: helm's own message, with the file
    let tmp = chart_dir();
    let chart = tmp.path().join("charts/shop");
    std::fs::write(
        chart.join("templates/broken.yaml"),
        "kind: ConfigMap\nname: {{ .Values.theme | nosuchfunction }}\n",
    )
    .expect("write");
    let text = dir_error(&chart, prod_helm()).await;
    assert!(
        text.starts_with("rendering failed: helm template shop . failed (exit status: 1): Error: parse error at (shop/templates/broken.yaml:2): function \"nosuchfunction\" not defined"),
        "{text}"
    );
    // a template printing something that is not YAML
    std::fs::write(
        chart.join("templates/broken.yaml"),
        "kind: ConfigMap\n  name: [\n",
    )
    .expect("write");
    let text = dir_error(&chart, prod_helm()).await;
    assert!(
        text.contains(
            "failed (exit status: 1): Error: YAML parse error on shop/templates/broken.yaml"
        ),
        "{text}"
    );

    // no helm binary
    let tmp = chart_dir();
    let chart = tmp.path().join("charts/shop");
    let missing = prod_helm().binary("/nonexistent/bin/helm");
    let text = dir_error(&chart, missing).await;
    assert_eq!(
        text,
        "rendering failed: the helm binary /nonexistent/bin/helm was not found (set helm.binary or helmBin)"
    );

    // a value file that does not exist, unless it is to be left out
    let mut helm = prod_helm();
    helm.options.value_files = vec!["../../envs/qa/values.yaml".into()];
    let text = dir_error(&chart, helm.clone()).await;
    assert_eq!(
        text,
        "rendering failed: value file ../../envs/qa/values.yaml: does not exist (ignoreMissingValueFiles leaves it out)"
    );
    helm.options.ignore_missing_value_files = true;
    let dir = DirSource::new(&chart).with_renderer(Renderer::Helm(helm));
    let set = dir.load().await.expect("renders without it");
    assert!(
        set.notes.iter().any(|n| n
            == "Helm chart .: value file ../../envs/qa/values.yaml does not exist: left out (ignoreMissingValueFiles)"),
        "{:?}",
        set.notes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crds_and_tests_follow_the_options() {
    let tmp = chart_dir();
    let chart = tmp.path().join("charts/shop");
    let mut helm = prod_helm();
    helm.options.include_crds = false;
    helm.options.skip_tests = true;
    let dir = DirSource::new(&chart).with_renderer(Renderer::Helm(helm));
    let set = dir.load().await.expect("renders");
    assert!(
        !names(&set)
            .iter()
            .any(|n| n.starts_with("CustomResourceDefinition")),
        "{:?}",
        names(&set)
    );
    assert!(
        set.notes.contains(&"Helm chart .: 1 hook skipped (hooks are not desired state): Job shop-migrate (pre-install,pre-upgrade)".to_owned()),
        "{:?}",
        set.notes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_chart_renders_like_the_repository_and_only_when_it_changes() {
    let (repo, _) = chart_repo();
    let cache = cache();
    let git = open(&repo, cache.path(), prod_helm()).await;
    let from_git = git.load().await.expect("renders");
    let tmp = chart_dir();
    let chart = tmp.path().join("charts/shop");
    let dir = DirSource::new(&chart).with_renderer(Renderer::Helm(prod_helm()));
    assert!(
        dir.describe().ends_with("(helm chart)"),
        "{}",
        dir.describe()
    );
    let from_dir = dir.load().await.expect("renders");
    let objects = |set: &DesiredSet| -> Vec<(String, Value)> {
        set.objects
            .iter()
            .map(|m| {
                let file = m
                    .provenance
                    .file
                    .trim_start_matches("charts/shop/")
                    .to_owned();
                (file, m.object.value().clone())
            })
            .collect()
    };
    assert_eq!(objects(&from_dir), objects(&from_git));
    let r = from_dir.objects[0]
        .provenance
        .rendered
        .clone()
        .expect("rendered");
    assert_eq!(r.values, ["../../envs/prod/values.yaml"]);
    assert_eq!(r.inputs_commit, None);
    // unchanged: not rendered again; a value file changed: rendered again
    let again = dir.load().await.expect("loads");
    assert_eq!(dir.renders(), 1);
    assert_eq!(again.revision, from_dir.revision);
    std::fs::write(tmp.path().join("envs/prod/values.yaml"), "theme: neon\n").expect("write");
    let changed = dir.load().await.expect("renders");
    assert_eq!(dir.renders(), 2);
    assert_ne!(changed.revision, from_dir.revision);
    assert_eq!(
        find(&changed, "ConfigMap", "shop-config").object.value()["data"]["THEME"],
        "neon"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kustomizations_inflate_helm_charts_when_helm_is_found() {
    let mut repo = TestRepo::new();
    copy_dir(
        &example().join("charts/shop"),
        &repo.path().join("apps/shop/charts/shop"),
    );
    repo.write(
        "apps/shop/kustomization.yaml",
        "helmCharts:\n- name: shop\n  releaseName: kz\n  namespace: shop-kz\n  valuesInline:\n    web: {replicas: 2}\n",
    );
    repo.write("apps/plain.yaml", &configmap("plain", "shop-kz", "1"));
    repo.commit("kustomized chart", "Alice");
    let cache = cache();
    let mut cfg = GitSourceConfig::new(repo.url(), cache.path()).path("apps");
    cfg.kustomize_bin = Some(driftguard_test_support::helm_kubectl());
    cfg.helm_bin = Some(driftguard_test_support::helm());
    let git = GitRepoSource::open(cfg.clone()).await.expect("opens");
    let set = git.load().await.expect("loads");
    assert!(set.errors.is_empty(), "{:?}", set.errors);
    assert_eq!(
        names(&set),
        [
            "ConfigMap kz-config",
            "ConfigMap plain",
            "Deployment kz-cache",
            "Deployment kz-web",
            "Deployment kz-worker",
        ]
    );
    assert_eq!(
        at(
            find(&set, "Deployment", "kz-web").object.value(),
            &["spec", "replicas"]
        ),
        2
    );
    assert!(
        set.notes.contains(&"kustomization apps/shop: 2 hooks skipped (hooks are not desired state): Job kz-migrate (pre-install,pre-upgrade), Pod kz-test-connection (test)".to_owned()),
        "{:?}",
        set.notes
    );
    assert!(
        !set.notes.iter().any(|n| n.contains("Helm chart at")),
        "the chart is the kustomization's: {:?}",
        set.notes
    );
    // without helm the kustomization is an error, the rest is read
    let cache = self::cache();
    cfg.cache_dir = cache.path().to_path_buf();
    cfg.helm_bin = Some(PathBuf::from("/nonexistent/helm"));
    let git = GitRepoSource::open(cfg).await.expect("opens");
    let set = git.load().await.expect("loads");
    assert_eq!(names(&set), ["ConfigMap plain"]);
    assert_eq!(set.errors.len(), 1, "{:?}", set.errors);
    assert_eq!(
        set.errors[0].to_string(),
        "apps/shop/kustomization.yaml:1: cannot render the kustomization: it inflates Helm charts (helmCharts) and no helm binary was found (set helmBin)"
    );
}
