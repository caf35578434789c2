//! The desired-side conformance suite, run against the folder source and the Git source on
//! real repositories committed with `git` (kustomizations rendered with the test cluster's
//! `kubectl`).

mod git_support;

use std::path::Path;
use std::sync::Arc;

use driftguard_core::ports::GitSource;
use driftguard_sources::conformance::{same_desired_set, ManifestTree, Tools};
use driftguard_sources::files::DirSource;
use driftguard_sources::git::{GitRepoSource, GitSourceConfig};
use git_support::{git_bin, kustomize_bin};

fn tools() -> Tools {
    Tools {
        git: git_bin().to_path_buf(),
        kustomize: kustomize_bin(),
    }
}

mod dir {
    use super::*;

    async fn open(repo: &Path, tools: &Tools) -> (Arc<dyn GitSource>, ()) {
        let source = DirSource::new(repo).with_kustomize_bin(&tools.kustomize);
        (Arc::new(source), ())
    }

    driftguard_sources::git_source_conformance_tests!(super::tools, open);
}

mod git_repo {
    use super::*;

    async fn open(repo: &Path, tools: &Tools) -> (Arc<dyn GitSource>, tempfile::TempDir) {
        let cache = tempfile::tempdir().expect("a cache folder");
        let mut config = GitSourceConfig::new(repo.display().to_string(), cache.path());
        config.kustomize_bin = Some(tools.kustomize.clone());
        let source = GitRepoSource::open(config)
            .await
            .expect("the repository opens");
        (Arc::new(source), cache)
    }

    driftguard_sources::git_source_conformance_tests!(super::tools, open);
}

/// The suite itself: a source that leaves a file out is caught.
#[tokio::test]
#[should_panic(expected = "read different objects")]
async fn a_source_missing_a_file_fails_the_suite() {
    let tools = tools();
    let tree = ManifestTree::plain();
    let dir = tempfile::tempdir().expect("a temporary folder");
    tree.write(dir.path()).expect("written");
    let full = DirSource::new(dir.path());
    let partial = DirSource::new(dir.path())
        .with_globs(&[], &["base/list.yaml".into()])
        .expect("valid globs")
        .with_kustomize_bin(&tools.kustomize);
    same_desired_set(&full, &partial).await;
}
