//! The plain-folder desired source and the dump live source.

use driftguard_core::ports::{GitSource, GroupVersionKind, LiveScope, LiveSource, SourceError};
use driftguard_sources::files::{DirSource, DumpSource};

fn write(dir: &std::path::Path, file: &str, text: &str) {
    let p = dir.join(file);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, text).expect("write");
}

const CM: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  namespace: shop\ndata:\n  k: v\n";

#[tokio::test]
async fn a_folder_reads_like_git_with_a_content_revision() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(
        dir.path(),
        "app/cm.yaml",
        &format!("{CM}---\napiVersion: v1\nkind: Service\nmetadata:\n  name: s\n"),
    );
    write(
        dir.path(),
        "bad.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n",
    );
    write(dir.path(), ".hidden/x.yaml", CM);
    write(dir.path(), "chart/Chart.yaml", "apiVersion: v2\nname: c\n");
    let src = DirSource::new(dir.path());
    let set = src.load().await.expect("loads");
    let rev = set.revision.clone().expect("revision");
    assert!(rev.id.starts_with("dir:"), "{}", rev.id);
    assert_eq!(set.objects.len(), 2);
    assert_eq!(set.objects[1].provenance.file, "app/cm.yaml");
    assert_eq!(set.objects[1].provenance.line, 9);
    assert_eq!(set.errors.len(), 1);
    assert_eq!(set.errors[0].file, "bad.yaml");
    assert!(set.notes.iter().any(|n| n.contains("Helm chart at chart")));
    // same content, same revision; changed content, new revision
    assert_eq!(src.revision().await.expect("rev"), rev);
    write(dir.path(), "app/cm.yaml", CM);
    assert_ne!(src.revision().await.expect("rev"), rev);
    let id = driftguard_core::id::ResourceId::new("e", "", "ConfigMap", Some("shop"), "a");
    assert!(matches!(
        src.history(&id, 5).await,
        Err(SourceError::Unsupported { .. })
    ));
    let filtered = DirSource::new(dir.path())
        .with_globs(&[], &["bad.yaml".into()])
        .expect("globs");
    assert!(filtered.load().await.expect("loads").errors.is_empty());
    assert!(matches!(
        DirSource::new(dir.path().join("nope")).load().await,
        Err(SourceError::NotFound { .. })
    ));
}

fn scope(kinds: &[(&str, &str)], namespaces: &[&str]) -> LiveScope {
    LiveScope {
        kinds: kinds
            .iter()
            .map(|(av, k)| GroupVersionKind::from_api_version(av, k))
            .collect(),
        namespaces: namespaces.iter().map(|s| (*s).to_owned()).collect(),
        label_selector: None,
    }
}

#[tokio::test]
async fn dumps_are_a_live_side_filtered_by_scope() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(
        dir.path(),
        "cluster.json",
        r#"{"apiVersion": "v1", "kind": "List", "items": [
  {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "shop", "uid": "1"}},
  {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b", "namespace": "other", "uid": "2"}},
  {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w", "namespace": "shop", "uid": "3"}}]}"#,
    );
    write(
        dir.path(),
        "more.yaml",
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Namespace\n  metadata:\n    name: shop\n",
    );
    let src = DumpSource::new([
        dir.path().join("cluster.json"),
        dir.path().join("more.yaml"),
    ]);
    assert!(src.describe().starts_with("dump "));
    let all = src
        .snapshot(&scope(
            &[
                ("v1", "ConfigMap"),
                ("apps/v1", "Deployment"),
                ("v1", "Namespace"),
            ],
            &[],
        ))
        .await
        .expect("snapshot");
    assert_eq!(all.objects.len(), 4);
    let some = src
        .snapshot(&scope(
            &[("v1", "ConfigMap"), ("v1", "Namespace")],
            &["shop"],
        ))
        .await
        .expect("snapshot");
    let names: Vec<String> = some
        .objects
        .iter()
        .map(|o| o.object.meta().name.to_owned())
        .collect();
    assert_eq!(names, vec!["a", "shop"]);

    write(
        dir.path(),
        "broken.yaml",
        "apiVersion: v1\nkind: List\nitems:\n- [\n",
    );
    let bad = DumpSource::new([dir.path().join("more.yaml"), dir.path().join("broken.yaml")]);
    match bad.snapshot(&scope(&[("v1", "ConfigMap")], &[])).await {
        Err(SourceError::Invalid(e)) => {
            assert!(e.file.ends_with("broken.yaml"), "{e}");
            assert!(e.line >= 3, "{e}");
        }
        other => panic!("expected an invalid dump, got {other:?}"),
    }
}
