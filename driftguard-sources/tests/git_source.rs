//! The Git source against real repositories built with `git`.

mod git_support;

use driftguard_core::id::ResourceId;
use driftguard_core::ports::{GitSource, SourceError};
use driftguard_sources::git::{GitRepoSource, GitSourceConfig};
use git_support::*;

fn names(set: &driftguard_core::ports::DesiredSet) -> Vec<String> {
    let mut v: Vec<String> = set
        .objects
        .iter()
        .map(|m| {
            let meta = m.object.meta();
            format!("{}/{}", meta.kind, meta.name)
        })
        .collect();
    v.sort();
    v
}

fn first_repo() -> TestRepo {
    let mut r = TestRepo::new();
    r.write(
        "envs/prod/app.yaml",
        &format!(
            "# the web app\n{}---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  ports:\n  - port: 80\n",
            deployment("web", "shop", 3, "web:1")
        ),
    );
    r.write(
        "envs/prod/config.json",
        r#"{"apiVersion": "v1", "kind": "List", "items": [
  {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "shop"}, "data": {"k": "1"}},
  {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b", "namespace": "shop"}, "data": {"k": "2"}}]}"#,
    );
    r.write("envs/prod/README.md", "not a manifest");
    r.write(
        "envs/dev/app.yaml",
        &deployment("web", "shop-dev", 1, "web:2"),
    );
    r.commit("first", "Alice");
    r
}

#[tokio::test]
async fn reads_manifests_at_a_revision_with_provenance() {
    let repo = first_repo();
    let cache = cache();
    let src = GitRepoSource::open(
        GitSourceConfig::new(repo.url(), cache.path())
            .reference("main")
            .path("envs/prod"),
    )
    .await
    .expect("opens");
    assert!(
        src.describe().contains("@main:envs/prod"),
        "{}",
        src.describe()
    );
    let rev = src.revision().await.expect("revision");
    let commit = rev.commit.clone().expect("commit info");
    assert_eq!(commit.author, "Alice");
    assert_eq!(commit.message, "first");
    let set = src.desired(&rev).await.expect("loads");
    assert!(set.errors.is_empty(), "{:?}", set.errors);
    assert_eq!(
        names(&set),
        vec![
            "ConfigMap/a",
            "ConfigMap/b",
            "Deployment/web",
            "Service/web"
        ]
    );
    let svc = set
        .objects
        .iter()
        .find(|m| m.object.meta().kind == "Service")
        .expect("service");
    assert_eq!(svc.provenance.file, "envs/prod/app.yaml");
    assert_eq!(svc.provenance.document, 1);
    assert_eq!(svc.provenance.line, 19);
    assert_eq!(svc.provenance.revision.as_deref(), Some(rev.id.as_str()));
    let dep = set
        .objects
        .iter()
        .find(|m| m.object.meta().kind == "Deployment")
        .expect("deployment");
    assert_eq!(dep.object.0["metadata"]["namespace"], "shop");
}

#[tokio::test]
async fn polls_renames_deletes_and_reparses_only_changed_files() {
    let mut repo = first_repo();
    let cache = cache();
    let src = GitRepoSource::open(
        GitSourceConfig::new(repo.url(), cache.path())
            .reference("main")
            .path("envs/prod"),
    )
    .await
    .expect("opens");
    let first = src.load().await.expect("loads");
    assert_eq!(src.files_parsed(), 2);
    assert_eq!(src.fetch().await.expect("fetch"), None, "nothing moved");

    // rename one file, delete a document, change another file outside the env
    repo.mv("envs/prod/config.json", "envs/prod/configmaps.json");
    repo.write("envs/prod/app.yaml", &deployment("web", "shop", 3, "web:1"));
    repo.write(
        "envs/dev/app.yaml",
        &deployment("web", "shop-dev", 1, "web:3"),
    );
    let b = repo.commit("rename and drop the service", "Bob");
    let moved = src.fetch().await.expect("fetch").expect("moved");
    assert_eq!(moved.id, b);
    assert_eq!(
        moved.commit.as_ref().map(|c| c.author.as_str()),
        Some("Bob")
    );
    let second = src.desired(&moved).await.expect("loads");
    assert_eq!(
        names(&second),
        vec!["ConfigMap/a", "ConfigMap/b", "Deployment/web"]
    );
    let a = second
        .objects
        .iter()
        .find(|m| m.object.meta().name == "a")
        .expect("a");
    assert_eq!(a.provenance.file, "envs/prod/configmaps.json");
    assert_eq!(a.provenance.revision.as_deref(), Some(b.as_str()));
    // the renamed file has the same blob: only app.yaml was parsed again
    assert_eq!(src.files_parsed(), 3);
    // the old revision is still readable
    let again = src
        .desired(first.revision.as_ref().expect("revision"))
        .await
        .expect("old revision");
    assert_eq!(names(&again).len(), 4);

    repo.rm("envs/prod/configmaps.json");
    repo.commit("drop config", "Carol");
    let third = src.fetch().await.expect("fetch").expect("moved");
    assert_eq!(
        names(&src.desired(&third).await.expect("loads")),
        vec!["Deployment/web"]
    );
}

#[tokio::test]
async fn bad_files_are_reported_and_the_others_read() {
    let mut repo = TestRepo::new();
    repo.write("ok.yaml", &configmap("ok", "shop", "1"));
    repo.write(
        "bad.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [unclosed\n",
    );
    repo.write(
        "noname.yaml",
        &format!(
            "{}---\napiVersion: v1\nkind: Secret\nmetadata: {{}}\n",
            configmap("two", "shop", "2")
        ),
    );
    repo.write("broken.json", "{\"apiVersion\": \n");
    repo.write(
        "chart/Chart.yaml",
        "apiVersion: v2\nname: c\nversion: 1.0.0\n",
    );
    repo.write("chart/templates/d.yaml", "kind: {{ .Values.kind }}\n");
    repo.commit("mixed", "Alice");
    let cache = cache();
    let src = GitRepoSource::open(GitSourceConfig::new(repo.url(), cache.path()))
        .await
        .expect("opens");
    let set = src.load().await.expect("loads");
    assert_eq!(names(&set), vec!["ConfigMap/ok", "ConfigMap/two"]);
    let errors: Vec<String> = set.errors.iter().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("bad.yaml:") && e.contains("invalid YAML")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("broken.json:") && e.contains("invalid JSON")),
        "{errors:?}"
    );
    assert!(
        errors.contains(
            &"noname.yaml:9: field `metadata.name`: Secret object has no `metadata.name`"
                .to_owned()
        ),
        "{errors:?}"
    );
    assert!(
        set.notes
            .iter()
            .any(|n| n.contains("Helm chart at chart is not supported")),
        "{:?}",
        set.notes
    );
}

#[tokio::test]
async fn missing_refs_and_unreachable_remotes_are_clear_errors() {
    let repo = first_repo();
    let cache = cache();
    let err = GitRepoSource::open(GitSourceConfig::new(repo.url(), cache.path()).reference("nope"))
        .await
        .expect_err("no such ref");
    match &err {
        SourceError::NotFound { what } => {
            assert!(
                what.contains("`nope`") && what.contains(&repo.url()),
                "{what}"
            )
        }
        other => panic!("unexpected {other:?}"),
    }
    let err = GitRepoSource::open(GitSourceConfig::new(
        "git://127.0.0.1:1/nothing.git",
        cache.path(),
    ))
    .await
    .expect_err("unreachable");
    match &err {
        SourceError::Unreachable { target, source } => {
            assert_eq!(target, "git://127.0.0.1:1/nothing.git");
            assert!(!source.to_string().is_empty());
        }
        other => panic!("unexpected {other:?}"),
    }
    // a commit id works as a ref; a tag too
    let head = git(repo.path(), &["rev-parse", "HEAD"]);
    git(repo.path(), &["tag", "-a", "v1", "-m", "v1"]);
    for r in [head.as_str(), "v1"] {
        let src = GitRepoSource::open(GitSourceConfig::new(repo.url(), cache.path()).reference(r))
            .await
            .expect("opens");
        assert_eq!(src.revision().await.expect("revision").id, head);
    }
}

#[tokio::test]
async fn globs_select_files() {
    let repo = first_repo();
    let cache = cache();
    let mut cfg = GitSourceConfig::new(repo.url(), cache.path()).path("envs");
    cfg.include = vec!["**/*.yaml".into()];
    cfg.exclude = vec!["dev/**".into()];
    let src = GitRepoSource::open(cfg).await.expect("opens");
    let set = src.load().await.expect("loads");
    assert_eq!(names(&set), vec!["Deployment/web", "Service/web"]);
}

#[tokio::test]
async fn history_lists_the_commits_that_changed_an_object() {
    let mut repo = TestRepo::new();
    repo.write("prod/web.yaml", &deployment("web", "shop", 2, "web:1"));
    repo.write("prod/other.yaml", &configmap("c", "shop", "1"));
    let a = repo.commit("create web", "Alice");
    repo.write("prod/web.yaml", &deployment("web", "shop", 4, "web:1"));
    let b = repo.commit("scale web to 4", "Bob");
    repo.write("prod/other.yaml", &configmap("c", "shop", "2"));
    repo.commit("unrelated", "Carol");
    // moved to another file, unchanged
    repo.mv("prod/web.yaml", "prod/apps.yaml");
    repo.commit("rename", "Dave");
    repo.write(
        "prod/apps.yaml",
        &format!(
            "{}---\n{}",
            configmap("x", "shop", "1"),
            deployment("web", "shop", 4, "web:2")
        ),
    );
    let e = repo.commit("web:2", "Erin");
    let cache = cache();
    let src = GitRepoSource::open(GitSourceConfig::new(repo.url(), cache.path()).path("prod"))
        .await
        .expect("opens");
    let id = ResourceId::new("prod", "apps", "Deployment", Some("shop"), "web");
    let versions = src.history(&id, 10).await.expect("history");
    let commits: Vec<&str> = versions.iter().map(|v| v.commit.id.as_str()).collect();
    assert_eq!(commits, vec![e.as_str(), b.as_str(), a.as_str()]);
    assert_eq!(versions[1].commit.author, "Bob");
    assert_eq!(versions[1].commit.message, "scale web to 4");
    let replicas = |i: usize| {
        versions[i].object.as_ref().expect("object").0["spec"]["replicas"]
            .as_u64()
            .expect("replicas")
    };
    assert_eq!((replicas(0), replicas(1), replicas(2)), (4, 4, 2));
    assert_eq!(src.history(&id, 1).await.expect("history").len(), 1);

    repo.rm("prod/apps.yaml");
    let f = repo.commit("remove web", "Frank");
    src.fetch().await.expect("fetch");
    let versions = src.history(&id, 10).await.expect("history");
    assert_eq!(versions[0].commit.id, f);
    assert!(versions[0].object.is_none());
    assert_eq!(versions.len(), 4);
    let none = ResourceId::new("prod", "", "ConfigMap", Some("shop"), "never");
    assert!(src.history(&none, 10).await.expect("history").is_empty());
}

#[tokio::test]
async fn history_of_a_manifest_without_a_namespace() {
    let without_ns =
        |value: &str| configmap("settings", "x", value).replace("  namespace: x\n", "");
    let mut repo = TestRepo::new();
    repo.write("prod/settings.yaml", &without_ns("1"));
    let a = repo.commit("create settings", "Alice");
    repo.write("prod/settings.yaml", &without_ns("2"));
    let b = repo.commit("change settings", "Bob");
    // a manifest naming the namespace exactly wins over one naming none
    repo.write("prod/pinned.yaml", &configmap("settings", "pinned", "3"));
    let c = repo.commit("pinned settings", "Carol");
    let cache = cache();
    let src = GitRepoSource::open(GitSourceConfig::new(repo.url(), cache.path()).path("prod"))
        .await
        .expect("opens");
    // the engine gives it the environment's default namespace, whichever that is
    for ns in ["default", "shop"] {
        let id = ResourceId::new("prod", "", "ConfigMap", Some(ns), "settings");
        let versions = src.history(&id, 10).await.expect("history");
        let commits: Vec<&str> = versions.iter().map(|v| v.commit.id.as_str()).collect();
        assert_eq!(commits, vec![b.as_str(), a.as_str()], "in {ns}");
    }
    let pinned = ResourceId::new("prod", "", "ConfigMap", Some("pinned"), "settings");
    let versions = src.history(&pinned, 10).await.expect("history");
    assert_eq!(versions[0].commit.id, c);
    assert_eq!(
        versions[0].object.as_ref().expect("object").0["data"]["key"],
        "3"
    );
    let cluster = ResourceId::new("prod", "", "ConfigMap", None, "settings");
    assert_eq!(src.history(&cluster, 10).await.expect("history").len(), 2);
}

#[tokio::test]
async fn kustomizations_are_rendered() {
    let bin = kustomize_bin();
    let mut repo = TestRepo::new();
    repo.write(
        "base/deploy.yaml",
        &deployment("web", "default", 1, "web:1"),
    );
    repo.write("base/kustomization.yaml", "resources:\n- deploy.yaml\n");
    repo.write(
        "envs/prod/app/kustomization.yaml",
        "namespace: shop\nnamePrefix: prod-\nbases:\n- ../../../base\nresources:\n- cm.yaml\n",
    );
    repo.write(
        "envs/prod/app/cm.yaml",
        &configmap("settings", "default", "1"),
    );
    repo.write("envs/prod/plain.yaml", &configmap("plain", "shop", "1"));
    repo.commit("kustomize", "Alice");
    let cache = cache();
    let mut cfg = GitSourceConfig::new(repo.url(), cache.path()).path("envs/prod");
    cfg.kustomize_bin = Some(bin);
    let src = GitRepoSource::open(cfg).await.expect("opens");
    let set = src.load().await.expect("loads");
    assert!(set.errors.is_empty(), "{:?}", set.errors);
    assert_eq!(
        names(&set),
        vec![
            "ConfigMap/plain",
            "ConfigMap/prod-settings",
            "Deployment/prod-web"
        ]
    );
    let dep = set
        .objects
        .iter()
        .find(|m| m.object.meta().kind == "Deployment")
        .expect("deployment");
    assert_eq!(dep.object.meta().namespace, Some("shop"));
    assert_eq!(dep.provenance.file, "envs/prod/app/kustomization.yaml");
    assert!(set
        .notes
        .iter()
        .any(|n| n.contains("kustomization envs/prod/app rendered")));

    // a broken kustomization is an error naming it; the rest is still read
    repo.write(
        "envs/prod/app/kustomization.yaml",
        "resources:\n- missing.yaml\n",
    );
    repo.commit("break it", "Bob");
    src.fetch().await.expect("fetch");
    let set = src.load().await.expect("loads");
    assert_eq!(names(&set), vec!["ConfigMap/plain"]);
    assert_eq!(set.errors.len(), 1, "{:?}", set.errors);
    assert_eq!(set.errors[0].file, "envs/prod/app/kustomization.yaml");
}

#[tokio::test]
async fn many_files_are_parsed_in_parallel_with_the_same_result() {
    let mut repo = TestRepo::new();
    for i in 0..150 {
        repo.write(
            &format!("apps/app-{i}.yaml"),
            &configmap(&format!("c{i}"), "shop", &i.to_string()),
        );
    }
    // two files with the same content: one blob, parsed once, both provenances kept
    repo.write("apps/copy.yaml", &configmap("c0", "other", "0"));
    repo.write("apps/copy2.yaml", &configmap("c0", "other", "0"));
    repo.commit("many", "Alice");
    let cache = cache();
    let src = GitRepoSource::open(GitSourceConfig::new(repo.url(), cache.path()))
        .await
        .expect("opens");
    let set = src.load().await.expect("loads");
    assert_eq!(set.objects.len(), 152);
    assert_eq!(src.files_parsed(), 151);
    let mut files: Vec<&str> = set
        .objects
        .iter()
        .map(|m| m.provenance.file.as_str())
        .collect();
    files.sort();
    files.dedup();
    assert_eq!(files.len(), 152);
    assert!(files.contains(&"apps/copy2.yaml"));
    let c7 = set
        .objects
        .iter()
        .find(|m| m.object.meta().name == "c7")
        .expect("c7");
    assert_eq!(c7.provenance.file, "apps/app-7.yaml");
}

/// Many environments on one repository (a fleet): opened and polled at the same moment, they
/// share the mirror's clone and fetches instead of running one `git fetch` each, and each still
/// sees the new commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environments_on_one_repository_share_its_fetches() {
    let mut repo = first_repo();
    let cache = cache();
    let opened = futures_util::future::join_all((0..20).map(|_| {
        GitRepoSource::open(GitSourceConfig::new(repo.url(), cache.path()).path("envs/prod"))
    }))
    .await;
    let sources: Vec<GitRepoSource> = opened.into_iter().map(|s| s.expect("open")).collect();
    let after_open = sources[0].fetches_run();
    assert!(
        after_open <= 3,
        "20 opens ran {after_open} clones or fetches"
    );
    repo.write(
        "envs/prod/extra.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\n  namespace: shop\n",
    );
    repo.commit("extra", "Ann <ann@example.com>");
    let polled = futures_util::future::join_all(sources.iter().map(|s| s.fetch())).await;
    for p in polled {
        let moved = p.expect("fetch");
        assert!(moved.is_some(), "every environment sees the new commit");
    }
    let fetches = sources[0].fetches_run() - after_open;
    assert!(
        (1..=3).contains(&fetches),
        "20 polls at once ran {fetches} fetches"
    );
    assert_eq!(sources[19].fetches_run(), sources[0].fetches_run());
}
