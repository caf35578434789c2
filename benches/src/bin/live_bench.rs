//! Live scan benchmark on the test cluster: a full DriftGuard scan (snapshot through the kube
//! live source + comparison with the desired manifests) of 500 and 5,000 objects, the same scan
//! with `serverSideDiff` (a server-side apply dry run of every desired object, compared in its
//! place), side by side with `kubectl diff -f` on the same manifests and `kubectl get -o json`
//! of the same objects, in one run.
//!
//! ```sh
//! scripts/test-services.sh up
//! cargo run --release -p driftguard-benches --bin live_bench -- [SIZES] [RUNS] [DIFF_RUNS]
//! #   SIZES: comma-separated object counts (default 500,5000); RUNS: timed runs each (default 3)
//! #   DIFF_RUNS: timed runs of `kubectl diff` (default 1: it takes minutes at 5,000 objects; 0: skip)
//! ```
//!
//! Objects are created once per size in namespace `dg-bench-<size>` with
//! `kubectl apply --server-side` (kept between runs). Medians are printed as a Markdown table.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use driftguard_benches::{live_manifests as manifests, BoxError, TestCluster as Cluster};
use driftguard_core::engine::{Engine, EnvironmentSpec, Scanner};
use driftguard_core::manifest::parse_file;
use driftguard_core::memory::{ManualClock, MemoryGitSource, MemoryStore};
use driftguard_core::model::Revision;
use driftguard_core::normalize::{Normalizer, SecretKey};
use driftguard_core::ports::{DesiredSet, LiveSource};
use driftguard_sources::kube::{KubeConfigSpec, KubeLiveSource};

fn timed(mut cmd: Command, ok_codes: &[i32]) -> Result<Duration, BoxError> {
    let start = Instant::now();
    let status = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).status()?;
    let took = start.elapsed();
    let code = status.code().unwrap_or(-1);
    if !ok_codes.contains(&code) {
        return Err(format!("{cmd:?} exited with {code}").into());
    }
    Ok(took)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let sizes: Vec<usize> = args
        .first()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![500, 5000]);
    let runs: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(3).max(1);
    let diff_runs: usize = args
        .get(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
        .min(runs);
    let c = Cluster::from_env()?;
    let work = tempfile::tempdir()?;
    let source = Arc::new(
        KubeLiveSource::connect(&KubeConfigSpec {
            kubeconfig: Some(c.kubeconfig.clone()),
            context: None,
            in_cluster: false,
        })
        .await?,
    );
    let mut rows = Vec::new();
    for &n in &sizes {
        let ns = format!("dg-bench-{n}");
        let files = manifests(&ns, n);
        let dir = work.path().join(&ns);
        std::fs::create_dir_all(&dir)?;
        for (name, text) in &files {
            std::fs::write(dir.join(name), text)?;
        }
        let have = c.live_set_count(&ns);
        if have < n {
            eprintln!("creating {n} objects in {ns} (have {have}) ...");
            let t = Instant::now();
            let dir_s = dir.to_string_lossy().into_owned();
            let status = c
                .kubectl(&["apply", "--server-side", "-f", &dir_s])
                .stdout(Stdio::null())
                .status()?;
            if !status.success() {
                return Err(format!("kubectl apply of {ns} failed").into());
            }
            eprintln!("  done in {:.1} s", t.elapsed().as_secs_f64());
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        let mut set = DesiredSet {
            revision: Some(Revision::plain("bench")),
            ..DesiredSet::default()
        };
        for (name, text) in &files {
            let (objects, errors) = parse_file(name, text, Some("bench")).into_manifests();
            if !errors.is_empty() {
                return Err(format!("{name}: {errors:?}").into());
            }
            set.objects.extend(objects);
        }
        let total = set.objects.len();

        let dir_s = dir.to_string_lossy().into_owned();
        let (mut scan_t, mut snap_t, mut diff_t, mut get_t, mut ssd_t) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut drifted = 0;
        let mut ssd_drifted = 0;
        let mut live_objects = 0;
        for run in 0..=runs {
            // DriftGuard: a full scan (desired from memory, live snapshot, comparison, store)
            let scanner_with = |server_side_diff: bool| {
                let git = Arc::new(MemoryGitSource::new());
                git.set(set.clone());
                let mut spec = EnvironmentSpec::new("bench");
                spec.namespaces = vec![ns.clone()];
                spec.server_side_diff = server_side_diff;
                Scanner::new(
                    Engine::new(spec, Normalizer::new(SecretKey::new(b"bench".to_vec()))),
                    git,
                    source.clone(),
                    Arc::new(MemoryStore::new()),
                    Arc::new(ManualClock::new(chrono::DateTime::<chrono::Utc>::from(
                        std::time::SystemTime::now(),
                    ))),
                )
            };
            let scanner = scanner_with(false);
            let t = Instant::now();
            let report = scanner.scan().await?;
            let scan = t.elapsed();
            drifted = report.drifts().count();
            // the same scan with serverSideDiff: one dry-run apply per desired object
            let t = Instant::now();
            let report = scanner_with(true).scan().await?;
            let ssd = t.elapsed();
            ssd_drifted = report.drifts().count();
            if !report.summary.errors.is_empty() {
                return Err(format!("server-side diff: {:?}", report.summary.errors).into());
            }
            let scope = scanner.live_scope().ok_or("no scope")?;
            let t = Instant::now();
            live_objects = source.snapshot(&scope).await?.objects.len();
            let snap = t.elapsed();
            // kubectl diff is slow (one GET and one dry-run PATCH per object, behind kubectl's
            // client-side rate limit): it runs only in the first DIFF_RUNS timed runs
            let diff = if run >= 1 && run <= diff_runs {
                Some(timed(c.kubectl(&["diff", "-f", &dir_s]), &[0, 1])?)
            } else {
                None
            };
            let get = timed(
                c.kubectl(&[
                    "get",
                    "configmaps,secrets,roles,rolebindings,deployments",
                    "-n",
                    &ns,
                    "-o",
                    "json",
                ]),
                &[0],
            )?;
            if run == 0 {
                continue; // warm-up (discovery caches, connections)
            }
            eprintln!(
                "{n}: run {run}: scan {} ms, server-side diff scan {} ms, snapshot {} ms, kubectl diff {} ms, kubectl get {} ms",
                ms(scan),
                ms(ssd),
                ms(snap),
                diff.map_or("-".into(), ms),
                ms(get)
            );
            scan_t.push(scan);
            ssd_t.push(ssd);
            snap_t.push(snap);
            diff_t.extend(diff);
            get_t.push(get);
        }
        let (scan, snap, get) = (median(scan_t), median(snap_t), median(get_t));
        let ssd = median(ssd_t);
        let diff = (!diff_t.is_empty()).then(|| median(diff_t));
        rows.push(format!(
            "| {n} | {total} | {live_objects} | {drifted} | {} | {ssd_drifted} | {} ({:.1}x) | {} | {} | {} | {:.1}x | {:.2}x |",
            ms(scan),
            ms(ssd),
            ssd.as_secs_f64() / scan.as_secs_f64(),
            ms(snap),
            diff.map_or("-".into(), ms),
            ms(get),
            diff.map_or(f64::NAN, |d| d.as_secs_f64() / scan.as_secs_f64()),
            scan.as_secs_f64() / get.as_secs_f64()
        ));
    }
    let version = c
        .kubectl(&["version", "-o", "json"])
        .output()
        .ok()
        .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
        .and_then(|v| v["serverVersion"]["gitVersion"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "?".into());
    println!("live scan on the test cluster (kube-apiserver {version}), median of {runs} runs ({diff_runs} for kubectl diff), after one warm-up, ms");
    println!();
    println!("| objects | desired | live listed | drifts | DriftGuard scan | drifts (server-side diff) | scan with serverSideDiff (x plain) | snapshot alone | kubectl diff -f | kubectl get -o json | diff / scan (target >= 10) | scan / get (target <= 1.25) |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for r in rows {
        println!("{r}");
    }
    Ok(())
}
