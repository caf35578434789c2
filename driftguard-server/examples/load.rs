//! Load test of `GET /api/v1/drifts` with `wrk`, and resident memory with 20,000 watched
//! objects across two environments.
//!
//! ```sh
//! apt-get install -y wrk
//! cargo run --release -p driftguard-server --example load -- [--store sqlite|memory]
//!     [--drifts 1000] [--objects 20000] [--seconds 10] [--connections 64] [--threads 2]
//! ```
//!
//! Starts the server on 127.0.0.1:0 over a store holding the open drifts, runs wrk against it
//! and prints requests/s and p99 latency, then builds two environments with `--objects`
//! objects in all (desired and live), scans them, and prints the resident set size.

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use driftguard_core::memory::{MemoryLiveSource, MemoryStore};
use driftguard_core::model::Revision;
use driftguard_core::ports::{DesiredSet, DriftStore, GitSource, SourceError};
use driftguard_core::testkit::deployment;
use driftguard_server::context::SystemClock;
use driftguard_server::metrics::Metrics;
use driftguard_server::state::AppState;
use driftguard_server::testkit;
use tokio_util::sync::CancellationToken;

/// A desired side that hands its objects over once and keeps no copy (as a Git source
/// reading files per scan does).
struct HandOverGit(Mutex<Option<DesiredSet>>);

#[async_trait::async_trait]
impl GitSource for HandOverGit {
    fn describe(&self) -> String {
        "bench".into()
    }
    async fn revision(&self) -> Result<Revision, SourceError> {
        Ok(Revision::plain("rev-1"))
    }
    async fn desired(&self, _: &Revision) -> Result<DesiredSet, SourceError> {
        Ok(self.0.lock().expect("lock").take().unwrap_or_default())
    }
}

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_owned())
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn open_store(kind: &str, dir: &std::path::Path, name: &str) -> Arc<dyn DriftStore> {
    match kind {
        "memory" => Arc::new(MemoryStore::new()),
        _ => Arc::new(
            driftguard_store::sqlite::SqliteStore::open(dir.join(name)).expect("open SQLite store"),
        ),
    }
}

/// Parses wrk's `Requests/sec:` and the `99%` line of `--latency` (in ms).
fn parse_wrk(out: &str) -> (f64, f64) {
    let rps = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    let p99 = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .map(|v| {
            let v = v.trim();
            let (num, unit) = v.split_at(v.find(|c: char| c.is_alphabetic()).unwrap_or(v.len()));
            let n: f64 = num.parse().unwrap_or(f64::NAN);
            match unit {
                "us" => n / 1000.0,
                "s" => n * 1000.0,
                _ => n,
            }
        })
        .unwrap_or(f64::NAN);
    (rps, p99)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let store_kind = arg("--store", "sqlite");
    let drifts: usize = arg("--drifts", "1000").parse().expect("--drifts N");
    let objects: usize = arg("--objects", "20000").parse().expect("--objects N");
    let seconds = arg("--seconds", "10");
    let connections = arg("--connections", "64");
    let threads = arg("--threads", "2");
    let dir = std::env::temp_dir().join(format!("driftguard-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");

    // ---- throughput
    let store = open_store(&store_kind, &dir, "drifts.db");
    testkit::fill_store(store.as_ref(), "prod", drifts, 0)
        .await
        .expect("fill");
    for cache in [true, false] {
        let (env, _, _) = testkit::memory_environment(
            "prod",
            store.clone(),
            Arc::new(SystemClock),
            Duration::from_secs(3600),
            Duration::from_secs(3600),
        );
        let state = AppState::builder(store.clone(), vec![env], Arc::new(Metrics::new()))
            .tokens(vec!["bench-token".into()])
            .cache_ttl(if cache {
                Duration::from_secs(1)
            } else {
                Duration::ZERO
            })
            .build();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        let server = tokio::spawn(driftguard_server::run(listener, state, async move {
            stop.cancelled().await
        }));
        println!(
            "store: {store_kind}, {drifts} open drifts; response cache {}; server on {addr}",
            if cache { "on (1 s)" } else { "off" }
        );
        for query in ["", "?limit=20", "?severity=high&namespace=ns-1"] {
            let url = format!("http://{addr}/api/v1/drifts{query}");
            let args = [
                "-t",
                &threads,
                "-c",
                &connections,
                "-d",
                &format!("{seconds}s"),
                "--latency",
                "-H",
                "Authorization: Bearer bench-token",
                &url,
            ]
            .map(str::to_owned);
            let out = tokio::task::spawn_blocking(move || Command::new("wrk").args(args).output())
                .await
                .expect("join")
                .expect("run wrk (apt-get install -y wrk)");
            let text = String::from_utf8_lossy(&out.stdout);
            let (rps, p99) = parse_wrk(&text);
            let non2xx = text
                .lines()
                .find(|l| l.contains("Non-2xx"))
                .unwrap_or("all 2xx");
            println!(
                "  GET /api/v1/drifts{query}: {rps:.0} requests/s, p99 {p99:.2} ms ({non2xx}; wrk -t{threads} -c{connections} -d{seconds}s)"
            );
        }
        cancel.cancel();
        let _ = server.await;
    }

    // ---- memory with watched objects
    let before = rss_mib();
    let t = Instant::now();
    let mut envs = Vec::new();
    for name in ["env-a", "env-b"] {
        let store = open_store(&store_kind, &dir, &format!("{name}.db"));
        let git = Arc::new(HandOverGit(Mutex::new(None)));
        let live = Arc::new(MemoryLiveSource::new());
        let env = testkit::environment(
            name,
            git.clone(),
            live.clone(),
            store.clone(),
            Arc::new(SystemClock),
            Duration::from_secs(3600),
            Duration::from_secs(3600),
        );
        let objs: Vec<serde_json::Value> = (0..objects / 2)
            .map(|i| {
                deployment(&format!("app-{i}"))
                    .namespace(&format!("ns-{}", i % 50))
                    .replicas(2)
                    .image("registry.example/app:1.0")
                    .build()
            })
            .collect();
        *git.0.lock().expect("lock") = Some(testkit::desired("rev-1", objs.clone()));
        live.set(testkit::live(objs));
        let ctx = driftguard_server::context::ScanContext::new(
            store,
            Arc::new(Metrics::new()),
            Arc::new(SystemClock),
        );
        let summary = env.run_scan(&ctx).await.expect("scan");
        // the sources' own copies are dropped: what stays is the scanner's state
        live.set(Vec::new());
        println!(
            "{name}: {} objects tracked, scan {} ms",
            summary.counts.tracked, summary.duration_ms
        );
        envs.push(env);
    }
    println!(
        "memory: {objects} watched objects across 2 environments: resident {:.1} MiB (before: {before:.1} MiB; built in {:.1} s)",
        rss_mib(),
        t.elapsed().as_secs_f64()
    );
    drop(envs);
    let _ = std::fs::remove_dir_all(&dir);
}
