//! The conformance suite, the Secret canary and crash safety against SQLite.

use std::io::Write;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use chrono::{Duration as ChronoDuration, TimeZone, Utc};
use driftguard_core::id::ResourceId;
use driftguard_core::ports::{ScanBatch, ScanCounts, ScanSummary};
use driftguard_core::state::{DriftEvent, EventKind};

use driftguard_core::ports::DriftStore;
use driftguard_core::query::EventQuery;
use driftguard_store::sqlite::SqliteStore;
use driftguard_test_support::build;

async fn fresh() -> Arc<dyn DriftStore> {
    let dir = tempfile::tempdir().expect("tempdir");
    // keep the folder for the test's lifetime (the process ends with the test binary)
    let path = dir.keep().join("store.db");
    Arc::new(SqliteStore::open(path).expect("opens"))
}

driftguard_store::conformance_tests!(fresh);

/// `BufferedStore` over SQLite.
mod buffered {
    use std::sync::Arc;
    use std::time::Duration;

    use driftguard_core::ports::DriftStore;
    use driftguard_store::BufferedStore;

    async fn fresh() -> Arc<dyn DriftStore> {
        Arc::new(BufferedStore::new(
            super::fresh().await,
            100,
            Duration::from_millis(50),
        ))
    }

    driftguard_store::conformance_tests!(fresh);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_in_memory_database() {
    let store: Arc<dyn DriftStore> = Arc::new(SqliteStore::open_in_memory().expect("opens"));
    driftguard_store::conformance::queries_match_reference(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_canary_is_not_in_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("canary.db");
    let store = SqliteStore::open(&path).expect("opens");
    let needles = driftguard_store::conformance::write_secret_canary(Arc::new(store.clone())).await;
    // search the WAL before the checkpoint, then the main file after it
    let mut files = vec![path.clone(), path.with_extension("db-wal")];
    let scan = |files: &[std::path::PathBuf]| {
        let mut searched = 0;
        for f in files {
            let Ok(bytes) = std::fs::read(f) else {
                continue;
            };
            searched += bytes.len();
            for n in &needles {
                assert!(
                    !bytes.windows(n.len()).any(|w| w == n.as_bytes()),
                    "canary found in {}",
                    f.display()
                );
            }
        }
        searched
    };
    assert!(scan(&files) > 0, "store files exist");
    store.checkpoint().await.expect("checkpoint");
    files.push(path.with_extension("db-shm"));
    assert!(scan(&files) > 0);
    // and the stored Secret drift is there
    let page = store.events(&EventQuery::default()).await.expect("events");
    assert!(page.items.iter().any(|e| e.drift.id.kind == "Secret"));
}

/// A writer process commits batches and prints each acknowledged event id; it is killed with
/// SIGKILL mid-stream. Reopened, the store has every acknowledged event exactly once, and a
/// new writer continues.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_writer_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("crash.db");
    let exe = writer_binary();
    let mut acked: Vec<String> = Vec::new();
    for round in 0..3 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_writer_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(
                "DRIFTGUARD_CRASH_WRITER",
                format!("{},r{round}", path.display()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn writer");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut mine = 0;
        // let it get well into writing, then kill it without warning
        while let Some(Ok(line)) = lines.next() {
            if let Some(id) = line.strip_prefix("ACK ") {
                acked.push(id.to_owned());
                mine += 1;
                if mine >= 40 + round * 13 {
                    break;
                }
            }
        }
        child.kill().expect("SIGKILL");
        // ids printed after the kill decision but before death were acknowledged too
        for line in lines.map_while(Result::ok) {
            if let Some(id) = line.strip_prefix("ACK ") {
                acked.push(id.to_owned());
            }
        }
        child.wait().expect("reaped");
        assert!(mine > 0, "writer acknowledged something");

        let store = SqliteStore::open(&path).expect("reopens after kill");
        let all = store
            .events(&EventQuery {
                limit: 1_000_000,
                ..EventQuery::default()
            })
            .await
            .expect("events");
        let stored: std::collections::HashMap<&str, usize> =
            all.items.iter().fold(Default::default(), |mut m, e| {
                *m.entry(e.event_id.as_str()).or_default() += 1;
                m
            });
        for id in &acked {
            assert_eq!(stored.get(id.as_str()), Some(&1), "acknowledged event {id}");
        }
        assert!(stored.values().all(|n| *n == 1));
        drop(store);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn writer_binary() -> std::path::PathBuf {
    // this very test binary, running only `crash_writer_child`
    std::env::current_exe().expect("test exe")
}

/// The child side of `killed_writer_loses_nothing_acknowledged`: when started by that test (env
/// `DRIFTGUARD_CRASH_WRITER=<path>,<prefix>`), writes batches forever and prints `ACK <id>` for
/// every event of a committed batch. Otherwise it does nothing.
#[tokio::test(flavor = "current_thread")]
async fn crash_writer_child() {
    let Ok(spec) = std::env::var("DRIFTGUARD_CRASH_WRITER") else {
        return;
    };
    let (path, prefix) = spec.split_once(',').expect("path,prefix");
    let prefix = prefix.to_owned();
    let store = SqliteStore::open(path).expect("open store");
    let base = Utc
        .with_ymd_and_hms(2024, 1, 1, 0, 0, 0)
        .single()
        .expect("valid date");
    let mut out = std::io::stdout();
    for scan in 0u64.. {
        let env = "prod".to_owned();
        let at = base + ChronoDuration::seconds(scan as i64);
        let scan_id = format!("{prefix}-{scan}");
        let mut batch = ScanBatch {
            environment: env.clone(),
            summary: Some(ScanSummary {
                scan_id: scan_id.clone(),
                environment: env.clone(),
                started_at: at,
                duration_ms: 1,
                revision: None,
                counts: ScanCounts::default(),
                score: 0.0,
                errors: vec![],
                events: 20,
            }),
            ..ScanBatch::default()
        };
        for i in 0..20 {
            let id = ResourceId::new(&env, "", "ConfigMap", Some("ns"), format!("cm-{i}"));
            let drift = build::drift()
                .episode(format!("{prefix}-{scan}-{i}"))
                .id(id.clone())
                .at(at)
                .build();
            batch
                .upserts
                .push(build::record(&id, Some(drift.clone()), at));
            batch.events.push(DriftEvent {
                event_id: format!("{prefix}-{scan}-{i}-detected"),
                ..build::event(EventKind::Detected, &drift, at, &scan_id)
            });
        }
        store.commit(&batch).await.expect("commit");
        for e in &batch.events {
            writeln!(out, "ACK {}", e.event_id).expect("stdout");
        }
        out.flush().expect("flush");
    }
}
