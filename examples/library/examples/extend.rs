//! DriftGuard extended through its traits: a live source, a notifier and a store of your own
//! (see the crate's `src/`), wired to the engine with the shipped folder source. Run with
//! `cargo run -p driftguard-examples --example extend`.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use driftguard_core::manifest::parse_file;
use driftguard_core::prelude::*;
use driftguard_examples::{JsonDirLiveSource, JsonFileStore, LineNotifier};
use driftguard_sources::files::DirSource;

struct WallClock;

impl Clock for WallClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let demo = driftguard_examples::repo_root().join("examples/demo");
    let work = std::env::temp_dir().join(format!("driftguard-extend-{}", std::process::id()));
    // the live side as a backup tool might keep it: one JSON file per object
    let objects = work.join("objects");
    std::fs::create_dir_all(&objects)?;
    let dump = std::fs::read_to_string(demo.join("live/prod.yaml"))?;
    let (live, errors) = parse_file("prod.yaml", &dump, None).into_live();
    assert!(errors.is_empty(), "{errors:?}");
    for (i, o) in live.iter().enumerate() {
        std::fs::write(
            objects.join(format!("{i:03}.json")),
            serde_json::to_vec_pretty(&*o.object.0)?,
        )?;
    }

    let store = Arc::new(JsonFileStore::open(work.join("history.json"))?);
    let notifier = Arc::new(LineNotifier::new(std::io::stdout()));
    let scanner = Scanner::new(
        Engine::new(
            EnvironmentSpec::new("prod"),
            Normalizer::new(SecretKey::new(std::fs::read(demo.join("secret.key"))?)),
        ),
        Arc::new(DirSource::new(demo.join("gitops/envs/prod"))),
        Arc::new(JsonDirLiveSource::new(&objects)),
        store.clone(),
        Arc::new(WallClock),
    )
    .with_notifier(notifier);
    println!("first scan (the notifier prints one line per event):");
    let first = scanner.scan().await?;
    // someone puts the hot-fixed image back by hand: the next scan resolves that drift
    let api = live
        .iter()
        .position(|o| o.object.meta().name == "api" && o.object.meta().kind == "Deployment")
        .expect("the demo dump holds the api Deployment");
    let fixed = std::fs::read_to_string(objects.join(format!("{api:03}.json")))?
        .replace("shop-api:1.4.3-hotfix", "shop-api:1.4.2");
    std::fs::write(objects.join(format!("{api:03}.json")), fixed)?;
    println!("second scan:");
    let second = scanner.scan().await?;
    assert!(second.drifts().count() < first.drifts().count());

    // the history is in the file, read back by a new store
    let reopened = JsonFileStore::open(work.join("history.json"))?;
    let resolved = reopened
        .drifts(&DriftQuery {
            status: driftguard_core::query::DriftStatus::Resolved,
            ..DriftQuery::default()
        })
        .await?;
    println!(
        "{} open drifts, {} resolved, kept in {}",
        second.drifts().count(),
        resolved.total,
        work.join("history.json").display()
    );
    assert_eq!(resolved.total, 1);
    std::fs::remove_dir_all(&work)?;
    Ok(())
}
