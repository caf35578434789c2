//! Adopting into a real repository: the branch starts at the plan's revision, and a file
//! that is (or lies under) a symbolic link, or a path leaving the clone, is refused with
//! nothing written outside the clone.

mod git_support;

use std::path::Path;

use driftguard_core::remediate::advice::RemediationAction;
use driftguard_core::remediate::{AdoptFile, Operation, Plan, Target};
use driftguard_sources::git::{
    adopt_branch, push_adoption, push_adoption_at, AdoptError, GitSourceConfig, UnsafePath,
};
use git_support::*;
use serde_json::json;

const EPISODE: &str = "ep-adopt-1";

fn plan(file: &str) -> Plan {
    Plan {
        id: "0123456789abcdef".into(),
        episode: EPISODE.into(),
        object: "prod:ConfigMap/shop/settings".into(),
        target: Target {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            namespace: Some("shop".into()),
            name: "settings".into(),
        },
        action: RemediationAction::Adopt,
        operation: Operation::Adopt,
        changes: Vec::new(),
        left_alone: Vec::new(),
        file: Some(AdoptFile {
            file: file.into(),
            document: 0,
        }),
        apply: None,
        removals: Vec::new(),
        writes: vec![("data.key".into(), Some(json!("live")))],
    }
}

/// A file outside every clone, as a hostile link's target; its text, to check it is unchanged.
struct Outside {
    dir: tempfile::TempDir,
}

impl Outside {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(
            dir.path().join("victim.yaml"),
            configmap("settings", "shop", "git"),
        )
        .expect("write the outside file");
        Outside { dir }
    }

    fn file(&self) -> std::path::PathBuf {
        self.dir.path().join("victim.yaml")
    }

    fn assert_untouched(&self) {
        assert_eq!(
            std::fs::read_to_string(self.file()).expect("read the outside file"),
            configmap("settings", "shop", "git"),
            "the file outside the clone was rewritten"
        );
    }
}

fn config(repo: &TestRepo) -> GitSourceConfig {
    let cache = repo.path().join(".unused-cache");
    GitSourceConfig::new(repo.url(), cache).reference("main")
}

/// The file `file` on the pushed adoption branch.
fn pushed_file(repo: &TestRepo, file: &str) -> String {
    git(
        repo.path(),
        &["show", &format!("{}:{file}", adopt_branch(EPISODE))],
    )
}

fn no_branch_pushed(repo: &TestRepo) {
    let branches = git(repo.path(), &["branch", "--list", "driftguard/*"]);
    assert!(branches.is_empty(), "a branch was pushed: {branches}");
}

fn symlink(target: &Path, link: &Path) {
    std::os::unix::fs::symlink(target, link).expect("make the link");
}

fn unsafe_reason(e: AdoptError) -> (String, UnsafePath) {
    match e {
        AdoptError::UnsafePath { file, reason } => (file, reason),
        other => panic!("expected an unsafe path, got {other:?}"),
    }
}

#[test]
fn a_manifest_turned_into_a_link_after_the_plan_is_never_followed() {
    let outside = Outside::new();
    let mut repo = TestRepo::new();
    repo.write("prod/settings.yaml", &configmap("settings", "shop", "git"));
    let planned = repo.commit("settings", "Alice");
    // after the plan: the manifest becomes a link to a file outside the clone
    std::fs::remove_file(repo.path().join("prod/settings.yaml")).expect("rm");
    symlink(&outside.file(), &repo.path().join("prod/settings.yaml"));
    let hostile = repo.commit("link it", "Mallory");

    // at the branch's head the link is refused, naming the file
    let err = push_adoption(&config(&repo), &plan("prod/settings.yaml"), "ops")
        .expect_err("a link is refused");
    let text = driftguard_core::error::chain(&err);
    let (file, reason) = unsafe_reason(err);
    assert_eq!(file, "prod/settings.yaml");
    assert_eq!(
        reason,
        UnsafePath::Symlink {
            component: "prod/settings.yaml".into()
        }
    );
    assert!(text.contains("prod/settings.yaml"), "{text}");
    outside.assert_untouched();
    no_branch_pushed(&repo);
    // the same at the hostile revision, asked for by id
    let err = push_adoption_at(
        &config(&repo),
        &plan("prod/settings.yaml"),
        Some(&hostile),
        "ops",
    )
    .expect_err("a link is refused");
    assert!(matches!(unsafe_reason(err).1, UnsafePath::Symlink { .. }));
    outside.assert_untouched();
    no_branch_pushed(&repo);

    // at the plan's revision the file is a plain file: the adoption edits that
    let adopted = push_adoption_at(
        &config(&repo),
        &plan("prod/settings.yaml"),
        Some(&planned),
        "ops",
    )
    .expect("adopted at the plan's revision");
    assert_eq!(adopted.branch, adopt_branch(EPISODE));
    assert_eq!(adopted.file, "prod/settings.yaml");
    let text = pushed_file(&repo, "prod/settings.yaml");
    assert!(
        text.contains("key: \"live\"") || text.contains("key: live"),
        "{text}"
    );
    let parent = git(
        repo.path(),
        &["rev-parse", &format!("{}^", adopt_branch(EPISODE))],
    );
    assert_eq!(parent, planned, "the branch starts at the plan's revision");
    outside.assert_untouched();
}

#[test]
fn a_linked_parent_folder_is_refused() {
    let outside = Outside::new();
    let mut repo = TestRepo::new();
    repo.write("README.md", "hostile\n");
    // `prod` is a link to the folder of the outside file
    symlink(outside.dir.path(), &repo.path().join("prod"));
    let head = repo.commit("link a folder", "Mallory");
    let err = push_adoption_at(
        &config(&repo),
        &plan("prod/victim.yaml"),
        Some(&head),
        "ops",
    )
    .expect_err("a linked folder is refused");
    let (file, reason) = unsafe_reason(err);
    assert_eq!(file, "prod/victim.yaml");
    assert_eq!(
        reason,
        UnsafePath::Symlink {
            component: "prod".into()
        }
    );
    outside.assert_untouched();
    no_branch_pushed(&repo);
}

#[test]
fn a_path_climbing_out_of_the_clone_is_refused() {
    let outside = Outside::new();
    let mut repo = TestRepo::new();
    repo.write("prod/settings.yaml", &configmap("settings", "shop", "git"));
    let head = repo.commit("settings", "Alice");
    // however many `..`, and from the environment's folder too
    let climb = format!("prod/../../../../../../..{}", outside.file().display());
    for file in [climb.as_str(), "../victim.yaml", "prod/../settings.yaml"] {
        let err = push_adoption_at(&config(&repo), &plan(file), Some(&head), "ops")
            .expect_err("`..` is refused");
        assert_eq!(unsafe_reason(err).1, UnsafePath::ParentFolder, "{file}");
    }
    let abs = outside.file().display().to_string();
    let err = push_adoption_at(&config(&repo), &plan(&abs), Some(&head), "ops")
        .expect_err("an absolute path is refused");
    assert!(matches!(err, AdoptError::UnsafePath { .. }), "{err:?}");
    outside.assert_untouched();
    no_branch_pushed(&repo);
}

#[test]
fn a_revision_that_is_not_a_commit_id_is_refused() {
    let mut repo = TestRepo::new();
    repo.write("prod/settings.yaml", &configmap("settings", "shop", "git"));
    repo.commit("settings", "Alice");
    for r in ["main", "--upload-pack=touch /tmp/x", &"0".repeat(40)] {
        let err = push_adoption_at(&config(&repo), &plan("prod/settings.yaml"), Some(r), "ops")
            .expect_err("refused");
        assert!(matches!(err, AdoptError::Revision { .. }), "{r}: {err:?}");
    }
    no_branch_pushed(&repo);
}
