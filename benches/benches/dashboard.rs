//! Dashboard bench (issue 15): server-side rendering of the overview and of the drifts page
//! with 10 environments and 1,000 open drifts, through the router as a browser asks for them
//! (session cookie, store query, template). Target: under 50 ms each. In-memory and SQLite
//! stores; each environment has a day of hourly scans for the overview's chart.
//!
//! A fleet (issue 30): 300 environments and 5,000 open drifts on SQLite, warm (criterion) and
//! cold (the first request of a process: a store opened anew on the file and a new router;
//! printed, the median of five). Target: the overview under 100 ms cold, the drift table
//! paginated server-side.
//!
//! `cargo bench -p driftguard-benches --bench dashboard`

#![allow(missing_docs)] // criterion_group! generates an undocumented function

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use criterion::{criterion_group, criterion_main, Criterion};
use driftguard_core::memory::{ManualClock, MemoryStore};
use driftguard_core::ports::{DriftStore, ScanBatch, ScanCounts, ScanSummary};
use driftguard_server::metrics::Metrics;
use driftguard_server::state::AppState;
use driftguard_server::testkit;
use driftguard_store::sqlite::SqliteStore;
use http_body_util::BodyExt;
use tower::ServiceExt;

const ENVIRONMENTS: usize = 10;
const OPEN_DRIFTS: usize = 1_000;
const FLEET_ENVIRONMENTS: usize = 300;
const FLEET_DRIFTS: usize = 5_000;

/// The router on `store` with `environments` environments; with `fill`, the store gets
/// `drifts` open drifts spread over them and a day of hourly scans each.
async fn app(store: Arc<dyn DriftStore>, environments: usize, drifts: usize, fill: bool) -> Router {
    let now = testkit::t0() + chrono::Duration::hours(24);
    let clock = Arc::new(ManualClock::new(now));
    let mut envs = Vec::new();
    for e in 0..environments {
        let name = format!("env-{e}");
        let (env, _, _) = testkit::memory_environment(
            &name,
            store.clone(),
            clock.clone(),
            Duration::from_secs(3600),
            Duration::from_secs(3600),
        );
        envs.push(env);
        if !fill {
            continue;
        }
        let share = drifts / environments + usize::from(e < drifts % environments);
        testkit::fill_store(store.as_ref(), &name, share, 0)
            .await
            .expect("filled");
        for h in 1..24 {
            store
                .commit(&ScanBatch {
                    environment: name.clone(),
                    summary: Some(ScanSummary {
                        scan_id: format!("{name}-h{h}"),
                        environment: name.clone(),
                        started_at: testkit::t0() + chrono::Duration::hours(h),
                        duration_ms: 40,
                        revision: Some("rev-1".into()),
                        counts: ScanCounts {
                            tracked: 500,
                            modified: 100,
                            ..ScanCounts::default()
                        },
                        score: 10.0 + h as f64,
                        errors: Vec::new(),
                        events: 0,
                    }),
                    ..ScanBatch::default()
                })
                .await
                .expect("scan written");
        }
    }
    let state = AppState::builder(store, envs, Arc::new(Metrics::new()))
        .clock(clock)
        .build();
    driftguard_server::router(state)
}

async fn render(app: &Router, uri: &str) -> usize {
    let resp = app
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    assert_eq!(resp.status(), StatusCode::OK, "{uri}");
    resp.into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .len()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let stores: Vec<(&str, Arc<dyn DriftStore>)> = vec![
        ("memory", Arc::new(MemoryStore::new())),
        (
            "sqlite",
            Arc::new(SqliteStore::open(dir.path().join("bench.db")).expect("sqlite")),
        ),
    ];
    let mut g = c.benchmark_group("dashboard");
    g.sample_size(30);
    for (name, store) in stores {
        let app = rt.block_on(app(store, ENVIRONMENTS, OPEN_DRIFTS, true));
        for (page, uri) in [
            ("overview", "/"),
            ("drifts", "/drifts"),
            ("drifts_all_1000", "/drifts?limit=1000"),
        ] {
            let bytes = rt.block_on(render(&app, uri));
            eprintln!("{name} {page}: {bytes} bytes of HTML");
            g.bench_function(format!("{name}/{page}"), |b| {
                b.iter(|| rt.block_on(render(&app, uri)))
            });
        }
    }
    g.finish();
    fleet(c, &rt);
    eprintln!(
        "first load: {} bytes of scripts and styles (target < 200 KB)",
        driftguard_server::web::assets::page_bytes()
    );
}

/// 300 environments, 5,000 open drifts, SQLite: warm and cold.
fn fleet(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("fleet.db");
    let open = || -> Arc<dyn DriftStore> { Arc::new(SqliteStore::open(&db).expect("sqlite")) };
    let app_warm = rt.block_on(app(open(), FLEET_ENVIRONMENTS, FLEET_DRIFTS, true));
    let pages = [
        ("overview", "/"),
        ("drifts", "/drifts"),
        ("drifts_page_100", "/drifts?limit=100&offset=4000"),
    ];
    for (page, uri) in pages {
        let mut cold = Vec::new();
        for _ in 0..5 {
            let fresh = rt.block_on(app(open(), FLEET_ENVIRONMENTS, FLEET_DRIFTS, false));
            let start = std::time::Instant::now();
            rt.block_on(render(&fresh, uri));
            cold.push(start.elapsed());
        }
        cold.sort();
        let bytes = rt.block_on(render(&app_warm, uri));
        eprintln!(
            "fleet ({FLEET_ENVIRONMENTS} environments, {FLEET_DRIFTS} open drifts, sqlite) {page}: \
             cold {:.1} ms (median of 5), {bytes} bytes of HTML",
            cold[2].as_secs_f64() * 1e3
        );
    }
    let mut g = c.benchmark_group("dashboard_fleet");
    g.sample_size(20);
    for (page, uri) in pages {
        g.bench_function(format!("sqlite/{page}"), |b| {
            b.iter(|| rt.block_on(render(&app_warm, uri)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
