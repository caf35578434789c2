//! Store bench: 10,000 objects' records and 1,000 events per scan for 100 scans, then the
//! open-drift query of one environment, for SQLite and (with `MONGODB_URI`) MongoDB.
//!
//! `cargo bench -p driftguard-benches --bench store` (env `DG_BENCH_SCANS` to change the number
//! of scans, `DG_BENCH_STORES=sqlite` or `mongo` to pick one). Prints figures; asserts nothing
//! but the open-drift query target (< 10 ms) is reported. The summary-only write is also
//! measured with a leadership epoch: the cost of fencing per batch.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use driftguard_core::id::ResourceId;
use driftguard_core::ports::{DriftStore, ScanBatch, ScanCounts, ScanSummary};
use driftguard_core::query::DriftQuery;
use driftguard_core::severity::Severity;
use driftguard_core::state::{Drift, DriftEvent, DriftRecord, EventKind, Hash64, Resolution};
use driftguard_store::mongo::MongoStore;
use driftguard_store::sqlite::SqliteStore;
use driftguard_test_support::build;

const OBJECTS: usize = 10_000;
const EVENTS_PER_SCAN: usize = 1_000;

fn at(scan: usize) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0)
        .single()
        .expect("valid date")
        + chrono::Duration::minutes(scan as i64)
}

fn id(i: usize) -> ResourceId {
    ResourceId::new(
        "prod",
        "apps",
        "Deployment",
        Some(&format!("ns-{}", i % 50)),
        format!("web-{i}"),
    )
}

fn record(i: usize, drift: Option<Drift>, t: DateTime<Utc>) -> DriftRecord {
    DriftRecord {
        desired_hash: Some(Hash64(i as u64 * 7919)),
        live_hash: Some(Hash64(i as u64 * 104_729)),
        ..build::record(&id(i), drift, t)
    }
}

/// The drift of object `i` that scan `scan` opens: its replicas changed by hand.
fn opened_drift(i: usize, scan: usize) -> Drift {
    build::drift()
        .episode(format!("ep-{i}-{scan}"))
        .id(id(i))
        .severity(
            [
                Severity::Low,
                Severity::Medium,
                Severity::High,
                Severity::Critical,
            ][i % 4],
        )
        .field(
            "spec.replicas",
            Some(serde_json::json!(3)),
            Some(serde_json::json!(5)),
        )
        .at(at(scan))
        .revision("rev")
        .build()
}

/// Scan `scan`: half the events open drifts on a fresh slice of objects, half resolve the ones
/// opened by the previous scan; only those objects' records change. Scan 0 writes every record.
fn batch(scan: usize) -> ScanBatch {
    let half = EVENTS_PER_SCAN / 2;
    let t = at(scan);
    let mut b = ScanBatch {
        environment: "prod".into(),
        ..ScanBatch::default()
    };
    let opened: Vec<usize> = (0..half).map(|k| (scan * half + k) % OBJECTS).collect();
    for &i in &opened {
        let d = opened_drift(i, scan);
        b.events.push(DriftEvent {
            event_id: format!("{}-detected", d.episode),
            revision: None,
            ..build::event(EventKind::Detected, &d, t, &format!("s{scan}"))
        });
        b.upserts.push(record(i, Some(d), t));
    }
    if scan > 0 {
        for k in 0..half {
            let i = ((scan - 1) * half + k) % OBJECTS;
            let mut d = opened_drift(i, scan - 1);
            d.updated_at = t;
            d.resolved_at = Some(t);
            d.resolution = Some(Resolution::Reverted);
            b.events.push(DriftEvent {
                event_id: format!("{}-resolved", d.episode),
                revision: None,
                ..build::event(EventKind::Resolved, &d, t, &format!("s{scan}"))
            });
            if !opened.contains(&i) {
                b.upserts.push(record(i, None, t));
            }
        }
    } else {
        b.upserts.extend(
            (0..OBJECTS)
                .filter(|i| *i >= half)
                .map(|i| record(i, None, t)),
        );
    }
    b.summary = Some(summary(scan, b.events.len()));
    b
}

fn summary(scan: usize, events: usize) -> ScanSummary {
    ScanSummary {
        scan_id: format!("s{scan}"),
        environment: "prod".into(),
        started_at: at(scan),
        duration_ms: 100,
        revision: Some("rev".into()),
        counts: ScanCounts {
            tracked: OBJECTS,
            ..ScanCounts::default()
        },
        score: 1.0,
        errors: vec![],
        events,
    }
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

async fn run(name: &str, store: Arc<dyn DriftStore>, scans: usize) {
    // a second, small environment, so that the query has something to filter out
    let mut other = batch(0);
    other.environment = "dev".into();
    for r in &mut other.upserts {
        r.id.environment = "dev".into();
    }
    other.upserts.truncate(100);
    for e in &mut other.events {
        e.drift.id.environment = "dev".into();
        e.event_id = format!("dev-{}", e.event_id);
        e.drift.episode = format!("dev-{}", e.drift.episode);
    }
    other.summary = None;
    store.commit(&other).await.expect("commit");

    let start = Instant::now();
    let b0 = batch(0);
    store.commit(&b0).await.expect("commit");
    let first = start.elapsed();
    let first_rows = b0.upserts.len() + b0.events.len() + 1;
    let mut rows = 0usize;
    let mut per_scan = Vec::new();
    let t = Instant::now();
    for s in 1..scans {
        let b = batch(s);
        rows += b.upserts.len() + b.events.len() + 1;
        let ts = Instant::now();
        store.commit(&b).await.expect("commit");
        per_scan.push(ts.elapsed());
    }
    let steady = t.elapsed();
    // a scan of 10,000 unchanged objects: the engine writes only the summary
    let mut unchanged = Vec::new();
    for k in 0..20 {
        let b = ScanBatch {
            environment: "prod".into(),
            summary: Some(summary(scans + k, 0)),
            ..ScanBatch::default()
        };
        let ts = Instant::now();
        store.commit(&b).await.expect("commit");
        unchanged.push(ts.elapsed());
    }
    // the same with a leadership epoch (server.ha): the fence is checked and kept per batch
    let mut fenced = Vec::new();
    for k in 0..20 {
        let b = ScanBatch {
            environment: "prod".into(),
            summary: Some(summary(scans + 20 + k, 0)),
            epoch: Some(1),
            ..ScanBatch::default()
        };
        let ts = Instant::now();
        store.commit(&b).await.expect("commit");
        fenced.push(ts.elapsed());
    }
    let q = DriftQuery {
        environment: Some("prod".into()),
        ..DriftQuery::default()
    };
    let open = store.drifts(&q).await.expect("query");
    let mut lat = Vec::new();
    for _ in 0..50 {
        let ts = Instant::now();
        let p = store.drifts(&q).await.expect("query");
        lat.push(ts.elapsed());
        assert_eq!(p.total, open.total);
    }
    let p50 = pct(&mut lat, 0.5);
    let p95 = pct(&mut lat, 0.95);
    println!("== {name}: {OBJECTS} objects, {EVENTS_PER_SCAN} events/scan, {scans} scans");
    println!(
        "first scan: {first_rows} rows in {:.2?} ({:.0} rows/s)",
        first,
        first_rows as f64 / first.as_secs_f64()
    );
    println!(
        "scans 2..{scans}: {rows} rows in {:.2?} ({:.0} rows/s, {:.0} events/s; per scan p50 {:.2?} p95 {:.2?})",
        steady,
        rows as f64 / steady.as_secs_f64(),
        ((scans - 1) * EVENTS_PER_SCAN) as f64 / steady.as_secs_f64(),
        pct(&mut per_scan.clone(), 0.5),
        pct(&mut per_scan, 0.95),
    );
    println!(
        "unchanged scan (summary only): p50 {:.2?}; with a leadership epoch (fenced): p50 {:.2?}",
        pct(&mut unchanged, 0.5),
        pct(&mut fenced, 0.5)
    );
    println!(
        "open drifts of one environment ({} open, page of {}): p50 {:.2?} p95 {:.2?} (target < 10 ms: {})",
        open.total,
        open.items.len(),
        p50,
        p95,
        if p95 < Duration::from_millis(10) { "met" } else { "MISSED" }
    );
}

fn main() {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(bench());
}

async fn bench() {
    // `cargo bench` passes `--bench`; ignore arguments
    let scans: usize = std::env::var("DG_BENCH_SCANS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let which = std::env::var("DG_BENCH_STORES").unwrap_or_else(|_| "sqlite,mongo".into());
    if which.contains("sqlite") {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path().join("bench.db")).expect("open");
        run("SQLite (WAL, synchronous=FULL)", Arc::new(store), scans).await;
    }
    if which.contains("mongo") {
        match std::env::var("MONGODB_URI") {
            Ok(uri) => {
                let db = format!("dg_bench_{}", std::process::id());
                let store = MongoStore::connect(&uri, &db).await.expect("connect");
                run("MongoDB", Arc::new(store.clone()), scans).await;
                store.database().drop().await.expect("drop bench database");
            }
            Err(_) => println!("MongoDB: skipped (MONGODB_URI not set)"),
        }
    }
}
