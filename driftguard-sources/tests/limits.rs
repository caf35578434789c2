//! Limits on what one input may cost: a manifest file over the limit is an error of its own
//! (the other files are read), in a folder and in a Git repository; a dump over its limits is a
//! clear error of the live side.

mod git_support;

use driftguard_core::limits::Limits;
use driftguard_core::ports::{GitSource, LiveScope, LiveSource};
use driftguard_sources::files::{DirSource, DumpSource};
use driftguard_sources::git::{GitRepoSource, GitSourceConfig};

const SMALL: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: small, namespace: a}\ndata: {k: v}\n";

fn large() -> String {
    let mut s = String::from(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: large, namespace: a}\ndata:\n",
    );
    for i in 0..200 {
        s.push_str(&format!("  k{i}: \"{}\"\n", "x".repeat(64)));
    }
    s
}

fn tight() -> Limits {
    Limits {
        max_manifest_bytes: 4096,
        ..Limits::default()
    }
}

#[tokio::test]
async fn a_folder_file_over_the_limit_is_its_own_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("a-small.yaml"), SMALL).expect("write");
    std::fs::write(dir.path().join("b-large.yaml"), large()).expect("write");
    let set = DirSource::new(dir.path())
        .with_limits(tight())
        .load()
        .await
        .expect("the folder is read");
    assert_eq!(set.objects.len(), 1, "the small file is read");
    assert_eq!(set.errors.len(), 1, "{:?}", set.errors);
    let e = &set.errors[0];
    assert_eq!(e.file, "b-large.yaml");
    assert!(e.message.contains("limits.maxManifestBytes"), "{e}");
    // with the default limits both are read
    let set = DirSource::new(dir.path()).load().await.expect("read");
    assert_eq!(set.objects.len(), 2);
}

#[tokio::test]
async fn a_git_blob_over_the_limit_is_not_read() {
    let mut repo = git_support::TestRepo::new();
    repo.write("a-small.yaml", SMALL);
    repo.write("b-large.yaml", &large());
    repo.commit("two files", "Alice");
    let cache = git_support::cache();
    let mut cfg = GitSourceConfig::new(repo.url(), cache.path());
    cfg.limits = tight();
    let src = GitRepoSource::open(cfg).await.expect("opens");
    let set = src.load().await.expect("loads");
    assert_eq!(set.objects.len(), 1);
    assert_eq!(set.errors.len(), 1, "{:?}", set.errors);
    assert_eq!(set.errors[0].file, "b-large.yaml");
    assert!(set.errors[0].message.contains("limits.maxManifestBytes"));
}

#[tokio::test]
async fn a_dump_over_its_limits_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dump = dir.path().join("dump.yaml");
    let items: Vec<String> = (0..50)
        .map(|i| format!("- {{apiVersion: v1, kind: ConfigMap, metadata: {{name: c{i}, namespace: a, uid: u{i}}}}}"))
        .collect();
    std::fs::write(
        &dump,
        format!("apiVersion: v1\nkind: List\nitems:\n{}\n", items.join("\n")),
    )
    .expect("write");
    let scope = LiveScope {
        kinds: vec![driftguard_core::ports::GroupVersionKind::from_api_version(
            "v1",
            "ConfigMap",
        )],
        ..LiveScope::default()
    };
    let ok = DumpSource::new([&dump])
        .snapshot(&scope)
        .await
        .expect("read");
    assert_eq!(ok.objects.len(), 50);
    let few = Limits {
        max_objects: 10,
        ..Limits::default()
    };
    let e = DumpSource::new([&dump])
        .with_limits(few)
        .snapshot(&scope)
        .await
        .expect_err("too many objects");
    let msg = driftguard_core::error::chain(&e);
    assert!(
        msg.contains("50 objects") && msg.contains("limits.maxObjects"),
        "{msg}"
    );
    let small = Limits {
        max_dump_bytes: 100,
        ..Limits::default()
    };
    let e = DumpSource::new([&dump])
        .with_limits(small)
        .snapshot(&scope)
        .await
        .expect_err("too large");
    let msg = driftguard_core::error::chain(&e);
    assert!(msg.contains("limits.maxDumpBytes"), "{msg}");
}
