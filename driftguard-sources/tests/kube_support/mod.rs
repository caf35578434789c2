//! Shared helpers of the kube integration tests: finding the test cluster, running its
//! `kubectl`, building a [`Scanner`] over a [`KubeLiveSource`] and the same manifests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use driftguard_core::engine::{EnvironmentSpec, Scanner};
use driftguard_core::manifest::parse_file;
use driftguard_core::memory::{ManualClock, MemoryGitSource, MemoryStore};
use driftguard_core::model::Revision;
use driftguard_core::normalize::{Normalizer, SecretKey};
use driftguard_core::ports::DesiredSet;
use driftguard_sources::kube::{KubeConfigSpec, KubeLiveSource};

/// The test cluster, as `scripts/test-services.sh up` describes it.
#[derive(Clone, Debug)]
pub struct Cluster {
    pub kubeconfig: PathBuf,
    pub kubectl: PathBuf,
    pub run_dir: PathBuf,
}

/// The test cluster (`driftguard_test_support::cluster`): a cluster that is not configured or
/// does not answer fails the test.
#[track_caller]
pub fn cluster() -> Cluster {
    let (kubeconfig, kubectl) = driftguard_test_support::cluster();
    Cluster {
        kubeconfig,
        kubectl,
        run_dir: driftguard_test_support::run_dir(),
    }
}

impl Cluster {
    /// Runs kubectl; panics with its output on failure.
    pub fn kubectl(&self, args: &[&str]) -> String {
        let out = self.kubectl_raw(args, None);
        assert!(
            out.status.success(),
            "kubectl {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs kubectl with standard input.
    pub fn kubectl_raw(&self, args: &[&str], stdin: Option<&str>) -> std::process::Output {
        use std::io::Write;
        let mut cmd = Command::new(&self.kubectl);
        cmd.env("KUBECONFIG", &self.kubeconfig)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .stdin(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("kubectl runs");
        {
            let mut pipe = child.stdin.take().expect("stdin");
            if let Some(text) = stdin {
                pipe.write_all(text.as_bytes()).expect("write stdin");
            }
        }
        child.wait_with_output().expect("kubectl output")
    }

    /// `kubectl apply -f -` of a YAML text.
    pub fn apply(&self, yaml: &str, extra: &[&str]) -> String {
        let mut args = vec!["apply", "-f", "-"];
        args.extend_from_slice(extra);
        let out = self.kubectl_raw(&args, Some(yaml));
        assert!(
            out.status.success(),
            "kubectl apply failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A live source on this cluster.
    pub async fn source(&self) -> KubeLiveSource {
        KubeLiveSource::connect(&KubeConfigSpec {
            kubeconfig: Some(self.kubeconfig.clone()),
            context: None,
            in_cluster: false,
        })
        .await
        .expect("connect to the test cluster")
    }

    /// Deletes a namespace without waiting.
    pub fn drop_namespace(&self, ns: &str) {
        let _ = self.kubectl_raw(
            &[
                "delete",
                "namespace",
                ns,
                "--wait=false",
                "--ignore-not-found",
            ],
            None,
        );
    }
}

/// A namespace name unique to this test run.
pub fn unique_ns(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id() % 100_000,
        nanos % 100_000
    )
}

/// The desired set of named YAML texts, parsed like Git files.
pub fn desired(files: &[(String, String)]) -> DesiredSet {
    let mut set = DesiredSet {
        revision: Some(Revision::plain("test-rev")),
        ..DesiredSet::default()
    };
    for (name, text) in files {
        let (objects, errors) = parse_file(name, text, Some("test-rev")).into_manifests();
        assert!(errors.is_empty(), "{name}: {errors:?}");
        set.objects.extend(objects);
    }
    set
}

/// A scanner for one environment reading `namespaces` from the cluster.
pub fn scanner(
    env: &str,
    namespaces: &[&str],
    set: DesiredSet,
    live: Arc<KubeLiveSource>,
) -> (Scanner, Arc<ManualClock>, Arc<MemoryStore>) {
    let mut spec = EnvironmentSpec::new(env);
    spec.namespaces = namespaces.iter().map(|s| s.to_string()).collect();
    scanner_for(spec, set, live)
}

/// A scanner for an environment configured by `spec`.
pub fn scanner_for(
    spec: EnvironmentSpec,
    set: DesiredSet,
    live: Arc<KubeLiveSource>,
) -> (Scanner, Arc<ManualClock>, Arc<MemoryStore>) {
    let git = Arc::new(MemoryGitSource::new());
    git.set(set);
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0)
            .single()
            .expect("valid time"),
    ));
    let engine = driftguard_core::engine::Engine::new(
        spec,
        Normalizer::new(SecretKey::new(b"test-key".to_vec())),
    );
    let scanner = Scanner::new(engine, git, live, store.clone(), clock.clone());
    (scanner, clock, store)
}

/// The corpus of real manifests shared by the project, with its namespace renamed. It was taken
/// on a 1.20 server; the test cluster (1.35 and newer) no longer serves the beta versions of the
/// HPA (`autoscaling/v2beta2`, gone in 1.26) and the CronJob (`batch/v1beta1`, gone in 1.25), so
/// those two ask for `autoscaling/v2` and `batch/v1`, as current manifests do (same fields).
pub fn corpus(ns: &str) -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = [
        root.join("../driftguard-core/tests/fixtures/apiserver-1.20-corpus/desired"),
        root.join("../../shared/fixtures/apiserver-1.20-corpus/desired"),
    ]
    .into_iter()
    .find(|d| d.exists())
    .expect("the apiserver-1.20 corpus (driftguard-core/tests/fixtures or shared/fixtures)");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus folder {}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(&f).expect("corpus file");
            let text = text
                .replace("namespace: corpus", &format!("namespace: {ns}"))
                .replace("name: corpus\n", &format!("name: {ns}\n"))
                .replace(
                    "apiVersion: autoscaling/v2beta2\n",
                    "apiVersion: autoscaling/v2\n",
                )
                .replace("apiVersion: batch/v1beta1\n", "apiVersion: batch/v1\n");
            (
                f.file_name()
                    .expect("file name")
                    .to_string_lossy()
                    .into_owned(),
                text,
            )
        })
        .collect()
}
