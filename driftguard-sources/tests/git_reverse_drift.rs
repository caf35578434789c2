//! Reverse drift end to end: Git moved on (commit B), the cluster still runs commit A's
//! version; the scanner names commit B's author and message.

mod git_support;

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use driftguard_core::engine::{EnvironmentSpec, Scanner};
use driftguard_core::memory::{ManualClock, MemoryLiveSource, MemoryStore};
use driftguard_core::model::RawLive;
use driftguard_core::normalize::{Normalizer, SecretKey};
use driftguard_core::prelude::{Direction, DriftKind, Engine};
use driftguard_sources::git::{GitRepoSource, GitSourceConfig};
use git_support::*;

fn yaml_to_live(text: &str, uid: &str) -> RawLive {
    let mut v: serde_json::Value = serde_yaml_like(text);
    v["metadata"]["uid"] = serde_json::Value::String(uid.into());
    v["metadata"]["resourceVersion"] = serde_json::Value::String("1".into());
    RawLive::new(v)
}

/// Reads YAML through the core's manifest parser (the test crate has no YAML dependency).
fn serde_yaml_like(text: &str) -> serde_json::Value {
    let parsed = driftguard_core::manifest::parse_file("x.yaml", text, None);
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    parsed.objects[0].0.value().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_equal_to_an_earlier_commit_is_reverse_drift_naming_the_unapplied_commit() {
    let mut repo = TestRepo::new();
    let v1 = deployment("web", "shop", 2, "web:1");
    repo.write("prod/web.yaml", &v1);
    repo.write("prod/other.yaml", &configmap("settings", "shop", "1"));
    repo.write("prod/dup.yaml", &configmap("settings", "shop", "duplicate"));
    repo.commit("create web", "Alice");
    repo.write("prod/web.yaml", &deployment("web", "shop", 2, "web:2"));
    let b = repo.commit("roll out web:2", "Bob");
    repo.write("prod/other.yaml", &configmap("settings", "shop", "1"));
    repo.write("prod/readme.yaml", "just: text\n");
    repo.commit("unrelated change", "Carol");

    let cache = cache();
    let git = Arc::new(
        GitRepoSource::open(GitSourceConfig::new(repo.url(), cache.path()).path("prod"))
            .await
            .expect("opens"),
    );
    let live = Arc::new(MemoryLiveSource::new());
    live.set(vec![
        yaml_to_live(&v1, "u1"),
        yaml_to_live(&configmap("settings", "shop", "1"), "u2"),
    ]);
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2024, 2, 1, 12, 0, 0)
            .single()
            .expect("valid time"),
    ));
    let engine = Engine::new(
        EnvironmentSpec::new("prod"),
        Normalizer::new(SecretKey::new(b"test-key".to_vec())),
    );
    let scanner = Scanner::new(engine, git, live, store, clock);
    let report = scanner.scan().await.expect("scan");

    let drift = report
        .drifts()
        .find(|d| d.id.kind == "Deployment")
        .expect("web drifted");
    assert_eq!(drift.kind, DriftKind::Modified);
    assert_eq!(drift.direction, Direction::Reverse);
    let commit = drift.attribution.commit.as_ref().expect("commit named");
    assert_eq!(commit.id, b);
    assert_eq!(commit.author, "Bob");
    assert_eq!(commit.message, "roll out web:2");
    assert_eq!(
        drift.provenance.as_ref().map(|p| p.file.as_str()),
        Some("prod/web.yaml")
    );

    // bad input is reported in the scan result, naming file and line; the rest was read
    let errors = &report.summary.errors;
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("prod/readme.yaml:1:") && e.contains("apiVersion")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("duplicate object") && e.contains("prod/")),
        "{errors:?}"
    );
}
