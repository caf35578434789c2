//! One scan with the shipped sources: the desired side from a Git repository (made here from
//! the demo's `envs/prod` folder with the `git` binary), the live side from a dump file
//! (`kubectl get -o yaml` output), the history in memory. Run with
//! `cargo run -p driftguard-examples --example scan_git_and_dump`.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use driftguard_core::memory::MemoryStore;
use driftguard_core::prelude::*;
use driftguard_sources::files::DumpSource;
use driftguard_sources::git::{GitRepoSource, GitSourceConfig};

/// The wall clock (the core never reads it itself).
struct WallClock;

impl Clock for WallClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

fn git(dir: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .args([
            "-c",
            "user.name=Example",
            "-c",
            "user.email=example@example.org",
        ])
        .args(args)
        .current_dir(dir)
        .status()
        .expect("git runs")
        .success();
    assert!(ok, "git {args:?} failed");
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let demo = driftguard_examples::repo_root().join("examples/demo");
    // a repository holding the demo's prod manifests
    let work = std::env::temp_dir().join(format!("driftguard-example-{}", std::process::id()));
    let repo = work.join("repo");
    std::fs::create_dir_all(repo.join("envs/prod"))?;
    for entry in std::fs::read_dir(demo.join("gitops/envs/prod"))? {
        let entry = entry?;
        std::fs::copy(entry.path(), repo.join("envs/prod").join(entry.file_name()))?;
    }
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-qm", "shop: prod"]);

    let git_source = GitRepoSource::open(
        GitSourceConfig::new(repo.display().to_string(), work.join("cache")).path("envs/prod"),
    )
    .await?;
    let live = DumpSource::new([demo.join("live/prod.yaml")]);
    let scanner = Scanner::new(
        Engine::new(
            EnvironmentSpec::new("prod"),
            Normalizer::new(SecretKey::new(std::fs::read(demo.join("secret.key"))?)),
        ),
        Arc::new(git_source),
        Arc::new(live),
        Arc::new(MemoryStore::new()),
        Arc::new(WallClock),
    );
    let report = scanner.scan().await?;
    println!(
        "{} objects tracked at {}; {} drifts:",
        report.summary.counts.tracked,
        report.summary.revision.as_deref().unwrap_or("?"),
        report.drifts().count()
    );
    for d in report.drifts() {
        println!(
            "  {:<40} {:<9} {:<8} {:<7} {}",
            format!("{}/{}", d.id.group_kind(), d.id.namespaced_name()),
            d.kind,
            d.direction,
            d.severity,
            d.paths().join(", ")
        );
    }
    assert!(
        report.drifts().count() >= 5,
        "the demo's hand changes are found"
    );
    std::fs::remove_dir_all(&work)?;
    Ok(())
}
