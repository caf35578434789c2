//! Loading an environment rendered from a Helm chart (`examples/helm`'s chart plus a template
//! making 100 more Deployments and ConfigMaps: about 200 objects) through the Git source: the
//! full load, which runs `helm template`, against a reload of a later revision whose inputs did
//! not change (a commit beside the chart), which must not run helm: the inputs' key (the chart
//! folder's tree id and the value files' blob ids) is equal, so the kept rendering is reused.
//! The same for a chart in a plain folder, whose key is the content of its files.
//!
//! A summary with the medians of both and the number of helm runs is printed at the end; the
//! reloads must leave that number unchanged (checked). Needs helm (`scripts/helm/install.sh`,
//! `HELM` in the environment or `services.env`).
#![allow(missing_docs)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use driftguard_core::model::Revision;
use driftguard_core::ports::{DesiredSet, GitSource};
use driftguard_core::render::HelmOptions;
use driftguard_sources::files::DirSource;
use driftguard_sources::git::{GitRepoSource, GitSourceConfig};
use driftguard_sources::render::{HelmRenderer, Renderer};

const EXTRA: usize = 100;

fn git(cwd: &Path, args: &[&str]) -> String {
    driftguard_test_support::git_as(cwd, args, "Bench")
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).expect("mkdir");
    for e in std::fs::read_dir(src).expect("read dir") {
        let e = e.expect("entry");
        let to = dst.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), to).expect("copy");
        }
    }
}

const MANY: &str = r#"{{- range $i := until (int .Values.extra) }}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ $.Release.Name }}-extra-{{ $i }}
data:
  index: {{ $i | quote }}
  theme: {{ $.Values.theme | quote }}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $.Release.Name }}-extra-{{ $i }}
  labels:
    {{- include "shop.labels" $ | nindent 4 }}
spec:
  replicas: {{ add 1 (mod $i 3) }}
  selector:
    matchLabels: {app: extra-{{ $i }}}
  template:
    metadata:
      labels: {app: extra-{{ $i }}}
    spec:
      containers:
        - name: main
          image: registry.example.com/extra-{{ $i }}:1.0
          envFrom:
            - configMapRef: {name: {{ $.Release.Name }}-extra-{{ $i }}}
{{- end }}
"#;

struct Fixture {
    work: tempfile::TempDir,
    url: String,
    rev_a: String,
    /// Later revisions changing only a file beside the chart.
    unchanged: Vec<String>,
}

fn fixture() -> Fixture {
    let work = tempfile::tempdir().expect("temp dir");
    let root = work.path();
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/helm"),
        root,
    );
    std::fs::write(root.join("charts/shop/templates/many.yaml"), MANY).expect("write");
    let values = root.join("envs/prod/values.yaml");
    let text = std::fs::read_to_string(&values).expect("read");
    std::fs::write(&values, format!("{text}extra: {EXTRA}\n")).expect("write");
    git(root, &["init", "-q", "-b", "main"]);
    git(root, &["add", "-A"]);
    git(root, &["commit", "-q", "-m", "chart"]);
    let rev_a = git(root, &["rev-parse", "HEAD"]);
    let mut unchanged = Vec::new();
    for i in 0..4 {
        std::fs::write(root.join("README.md"), format!("# shop {i}\n")).expect("write");
        git(root, &["add", "-A"]);
        git(root, &["commit", "-q", "-m", "docs"]);
        unchanged.push(git(root, &["rev-parse", "HEAD"]));
    }
    Fixture {
        url: root.display().to_string(),
        work,
        rev_a,
        unchanged,
    }
}

fn renderer(helm: &Path) -> Renderer {
    let mut o = HelmOptions::new("shop", "shop-prod");
    o.value_files = vec!["../../envs/prod/values.yaml".into()];
    Renderer::Helm(HelmRenderer::new(o).binary(helm))
}

struct Env {
    rt: tokio::runtime::Runtime,
    cache: tempfile::TempDir,
    helm: PathBuf,
}

impl Env {
    /// A fresh source (nothing rendered yet) on the cached clone.
    fn source(&self, url: &str) -> GitRepoSource {
        self.rt
            .block_on(GitRepoSource::open(
                GitSourceConfig::new(url, self.cache.path())
                    .reference("main")
                    .path("charts/shop")
                    .render(renderer(&self.helm)),
            ))
            .expect("opens")
    }

    /// Loads a revision; the set is returned so that it is dropped outside the timing.
    fn load(&self, src: &GitRepoSource, rev: &str) -> DesiredSet {
        let set = self
            .rt
            .block_on(src.desired(&Revision::plain(rev)))
            .expect("loads");
        assert!(set.errors.is_empty(), "{:?}", set.errors);
        set
    }

    fn load_dir(&self, src: &DirSource) -> DesiredSet {
        self.rt.block_on(src.load()).expect("loads")
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
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
        helm: driftguard_test_support::helm(),
    };
    let objects = {
        let src = env.source(&fx.url);
        env.load(&src, &fx.rev_a).objects.len()
    };
    assert_eq!(objects, 5 + 2 * EXTRA);
    let chart_dir = fx.work.path().join("charts/shop");

    let mut g = c.benchmark_group("helm_load");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(15));
    g.bench_function("git_full_load_renders", |b| {
        b.iter_batched(
            || env.source(&fx.url),
            |src| {
                let set = env.load(&src, &fx.rev_a);
                (src, set)
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("git_reload_inputs_unchanged", |b| {
        let src = env.source(&fx.url);
        drop(env.load(&src, &fx.rev_a));
        let mut i = 0;
        b.iter(|| {
            i += 1;
            env.load(&src, &fx.unchanged[i % fx.unchanged.len()])
        });
        assert_eq!(
            src.renders(),
            1,
            "a reload with no input changed runs no helm"
        );
    });
    g.bench_function("dir_full_load_renders", |b| {
        b.iter_batched(
            || DirSource::new(&chart_dir).with_renderer(renderer(&env.helm)),
            |src| {
                let set = env.load_dir(&src);
                (src, set)
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("dir_reload_unchanged", |b| {
        let src = DirSource::new(&chart_dir).with_renderer(renderer(&env.helm));
        drop(env.load_dir(&src));
        b.iter(|| env.load_dir(&src));
        assert_eq!(
            src.renders(),
            1,
            "a reload with no input changed runs no helm"
        );
    });
    g.finish();

    // the two figures, side by side in this run
    let runs = 9;
    let (mut full, mut reload, mut dir_full, mut dir_reload) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut helm_runs = 0;
    for r in 0..runs {
        let src = env.source(&fx.url);
        let t = Instant::now();
        drop(env.load(&src, &fx.rev_a));
        full.push(t.elapsed());
        let t = Instant::now();
        drop(env.load(&src, &fx.unchanged[r % fx.unchanged.len()]));
        reload.push(t.elapsed());
        helm_runs += src.renders();
        let dir = DirSource::new(&chart_dir).with_renderer(renderer(&env.helm));
        let t = Instant::now();
        drop(env.load_dir(&dir));
        dir_full.push(t.elapsed());
        let t = Instant::now();
        drop(env.load_dir(&dir));
        dir_reload.push(t.elapsed());
        helm_runs += dir.renders();
    }
    assert_eq!(
        helm_runs,
        2 * runs as u64,
        "one helm run per full load, none per reload"
    );
    let (full, reload, dir_full, dir_reload) = (
        median(full),
        median(reload),
        median(dir_full),
        median(dir_reload),
    );
    println!(
        "helm_load summary: chart of {objects} objects, medians of {runs} runs, helm runs: {helm_runs} for {} loads",
        4 * runs
    );
    println!(
        "  git:  full load (helm template) {:>7.1} ms, reload with no input changed {:>6.2} ms ({:.1}% of the full load, no helm run)",
        ms(full),
        ms(reload),
        100.0 * reload.as_secs_f64() / full.as_secs_f64()
    );
    println!(
        "  dir:  full load (helm template) {:>7.1} ms, reload with no input changed {:>6.2} ms ({:.1}% of the full load, no helm run)",
        ms(dir_full),
        ms(dir_reload),
        100.0 * dir_reload.as_secs_f64() / dir_full.as_secs_f64()
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
