//! Loading a repository of 10,000 manifests (5,000 files) through the Git source, against
//! plainly parsing the same YAML with serde_yaml; and the incremental load after a commit that
//! changes 10 files.
//!
//! Targets: the full load runs at no less than 70% of serde_yaml's throughput; the incremental
//! load takes under 5% of the full load. A summary with both ratios is printed at the end.
//!
//! Like with like: both sides start from the same bytes (serde_yaml from the texts in memory,
//! the source from the repository's packed objects, which it must also inflate), turn every
//! document into a `serde_json::Value` and keep it; the values are dropped outside the timing.
//! Both run on the same number of threads: the source is told to parse on one thread
//! (`parse_threads(1)`) against serde_yaml on one thread, and on `DG_BENCH_THREADS` threads
//! (default 2) against serde_yaml splitting the files over as many threads.
#![allow(missing_docs)]

use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use driftguard_core::model::Revision;
use driftguard_core::ports::{DesiredSet, GitSource};
use driftguard_sources::git::{GitRepoSource, GitSourceConfig};
use serde::Deserialize;

const FILES: usize = 5_000;
const CHANGED: usize = 10;

fn git(cwd: &Path, args: &[&str]) -> String {
    driftguard_test_support::git_as(cwd, args, "Bench")
}

/// One file: a Deployment and a ConfigMap.
fn file_text(i: usize, image_tag: usize) -> String {
    let ns = format!("team-{}", i % 50);
    format!(
        "# app {i}\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-{i}\n  namespace: {ns}\n  labels:\n    app: app-{i}\n    tier: backend\nspec:\n  replicas: {r}\n  selector:\n    matchLabels:\n      app: app-{i}\n  template:\n    metadata:\n      labels:\n        app: app-{i}\n    spec:\n      containers:\n      - name: main\n        image: registry.example.com/app-{i}:{image_tag}\n        ports:\n        - containerPort: 8080\n        resources:\n          requests: {{cpu: 100m, memory: 128Mi}}\n          limits: {{cpu: 500m, memory: 256Mi}}\n        env:\n        - name: MODE\n          value: production\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-{i}-config\n  namespace: {ns}\ndata:\n  settings.json: '{{\"feature\": {i}, \"enabled\": true}}'\n  level: info\n",
        r = 1 + i % 5
    )
}

struct Fixture {
    _work: tempfile::TempDir,
    url: String,
    rev_a: String,
    rev_b: String,
    texts: Vec<String>,
    bytes: u64,
}

fn fixture() -> Fixture {
    let work = tempfile::tempdir().expect("temp dir");
    let root = work.path();
    git(root, &["init", "-q", "-b", "main"]);
    let mut texts = Vec::with_capacity(FILES);
    for i in 0..FILES {
        let dir = root.join(format!("envs/prod/team-{}", i % 50));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let text = file_text(i, 1);
        std::fs::write(dir.join(format!("app-{i}.yaml")), &text).expect("write");
        texts.push(text);
    }
    git(root, &["add", "-A"]);
    git(root, &["commit", "-q", "-m", "10,000 manifests"]);
    let rev_a = git(root, &["rev-parse", "HEAD"]);
    for i in 0..CHANGED {
        let i = i * (FILES / CHANGED);
        let dir = root.join(format!("envs/prod/team-{}", i % 50));
        std::fs::write(dir.join(format!("app-{i}.yaml")), file_text(i, 2)).expect("write");
    }
    git(root, &["commit", "-q", "-am", "change 10 files"]);
    let rev_b = git(root, &["rev-parse", "HEAD"]);
    let bytes = texts.iter().map(|t| t.len() as u64).sum();
    Fixture {
        url: root.display().to_string(),
        _work: work,
        rev_a,
        rev_b,
        texts,
        bytes,
    }
}

/// [`parse_plain`] with the files split over `threads` threads.
fn parse_plain_threads(texts: &[String], threads: usize) -> Vec<Vec<serde_json::Value>> {
    if threads < 2 {
        return vec![parse_plain(texts)];
    }
    let chunk = texts.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = texts
            .chunks(chunk)
            .map(|c| s.spawn(move || parse_plain(c)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("parser thread"))
            .collect()
    })
}

/// What plainly parsing the same YAML with serde_yaml costs (every document into a value,
/// kept, like the source keeps its objects; values are dropped outside the timing).
fn parse_plain(texts: &[String]) -> Vec<serde_json::Value> {
    let mut out = Vec::with_capacity(2 * texts.len());
    for t in texts {
        for doc in serde_yaml::Deserializer::from_str(t) {
            let v = serde_json::Value::deserialize(doc).expect("valid YAML");
            if !v.is_null() {
                out.push(v);
            }
        }
    }
    out
}

struct Env {
    rt: tokio::runtime::Runtime,
    cache: tempfile::TempDir,
}

impl Env {
    /// A fresh source (nothing parsed yet) on the cached clone, parsing on `threads` threads.
    fn source(&self, url: &str, threads: usize) -> GitRepoSource {
        self.rt
            .block_on(GitRepoSource::open(
                GitSourceConfig::new(url, self.cache.path())
                    .reference("main")
                    .path("envs/prod")
                    .parse_threads(threads),
            ))
            .expect("opens")
    }

    /// Loads a revision; the set is returned so that it is dropped outside the timing.
    fn load(&self, src: &GitRepoSource, rev: &str) -> DesiredSet {
        let set = self
            .rt
            .block_on(src.desired(&Revision::plain(rev)))
            .expect("loads");
        assert!(set.errors.is_empty());
        set
    }
}

/// CPU time used by the whole process so far (Linux: `/proc/self/stat`, utime + stime, in
/// clock ticks of 10 ms), so that other programs on a shared machine do not count.
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_comm = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<u64> = after_comm
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    Duration::from_millis(10 * fields.iter().sum::<u64>())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn bench(c: &mut Criterion) {
    let fx = fixture();
    let env = Env {
        rt: tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime"),
        cache: tempfile::tempdir().expect("temp dir"),
    };
    assert_eq!(parse_plain(&fx.texts).len(), 2 * FILES);
    {
        let src = env.source(&fx.url, 1);
        assert_eq!(env.load(&src, &fx.rev_a).objects.len(), 2 * FILES);
    }

    let mut g = c.benchmark_group("git_load");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Bytes(fx.bytes));
    g.bench_function("serde_yaml_plain_10k", |b| {
        b.iter(|| parse_plain(&fx.texts))
    });
    g.bench_function("git_full_load_10k", |b| {
        b.iter_batched(
            || env.source(&fx.url, 1),
            |src| {
                let set = env.load(&src, &fx.rev_a);
                (src, set)
            },
            BatchSize::PerIteration,
        )
    });
    g.throughput(Throughput::Elements(CHANGED as u64));
    g.bench_function("git_incremental_10_files", |b| {
        b.iter_batched(
            || {
                let src = env.source(&fx.url, 1);
                drop(env.load(&src, &fx.rev_a));
                src
            },
            |src| {
                let set = env.load(&src, &fx.rev_b);
                (src, set)
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();

    // the figures the targets are about, measured side by side in this run
    let threads: usize = std::env::var("DG_BENCH_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let mb = fx.bytes as f64 / 1e6;
    println!(
        "git_load summary: {FILES} files, {} manifests, {mb:.1} MB",
        2 * FILES
    );
    let mut runs_for = vec![1];
    if threads > 1 {
        runs_for.push(threads);
    }
    for threads in runs_for {
        let runs = 9;
        let mut plain = Vec::new();
        let mut full = Vec::new();
        let mut incr = Vec::new();
        let (mut plain_cpu, mut full_cpu) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..runs {
            let (t, c) = (Instant::now(), process_cpu());
            let values = parse_plain_threads(&fx.texts, threads);
            plain.push(t.elapsed());
            plain_cpu += process_cpu() - c;
            drop(values);
            let src = env.source(&fx.url, threads);
            let (t, c) = (Instant::now(), process_cpu());
            let a = env.load(&src, &fx.rev_a);
            full.push(t.elapsed());
            full_cpu += process_cpu() - c;
            drop(a);
            let t = Instant::now();
            let b = env.load(&src, &fx.rev_b);
            incr.push(t.elapsed());
            drop(b);
            drop(src);
        }
        let (plain, full, incr) = (median(plain), median(full), median(incr));
        println!("  on {threads} thread(s), medians of {runs} runs:");
        println!(
            "    serde_yaml plain parse: {:>8.1} ms ({:.1} MB/s)",
            plain.as_secs_f64() * 1e3,
            mb / plain.as_secs_f64()
        );
        println!(
            "    git full load:          {:>8.1} ms ({:.1} MB/s) = {:.0}% of serde_yaml's throughput (target >= 70%)",
            full.as_secs_f64() * 1e3,
            mb / full.as_secs_f64(),
            100.0 * plain.as_secs_f64() / full.as_secs_f64()
        );
        println!(
            "    by CPU time (all {runs} runs): serde_yaml {:.0} ms, git full load {:.0} ms = {:.0}% of serde_yaml's throughput",
            plain_cpu.as_secs_f64() * 1e3,
            full_cpu.as_secs_f64() * 1e3,
            100.0 * plain_cpu.as_secs_f64() / full_cpu.as_secs_f64()
        );
        println!(
            "    incremental (10 files): {:>8.1} ms = {:.2}% of the full load (target < 5%)",
            incr.as_secs_f64() * 1e3,
            100.0 * incr.as_secs_f64() / full.as_secs_f64()
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
