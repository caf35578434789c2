//! A kustomization whose remote base points at an address that never answers (a TCP listener
//! on 127.0.0.1 that accepts and stays silent, as a network dropping packets behaves once
//! connected) rendered by the real kustomize (`kubectl kustomize`, found by
//! `git_support::kustomize_bin`, which fails the test when there is none): kustomize runs
//! `git fetch` of the base, which hangs on the TLS handshake. The rendering of that
//! environment fails at its timeout with a clear error, the `git` kustomize started is stopped
//! with it (its connection closes), and another environment or folder still renders. No
//! traffic leaves 127.0.0.1.

mod git_support;

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use driftguard_core::ports::{DesiredSet, GitSource};
use driftguard_sources::files::DirSource;
use driftguard_sources::git::{GitRepoSource, GitSourceConfig, KustomizeLimits};
use git_support::*;

/// The rendering's timeout in these tests.
const TIMEOUT: Duration = Duration::from_secs(3);
/// Longest a rendering stopped at [`TIMEOUT`] may take in all (a loaded 2-core machine).
const BOUND: Duration = Duration::from_secs(20);

/// A TCP listener on 127.0.0.1 that accepts connections and never answers.
struct Silent {
    addr: SocketAddr,
    accepted: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
}

impl Silent {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("address");
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s) = (Arc::clone(&accepted), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(false).expect("blocking");
                        a.lock().expect("lock").push(stream);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Silent {
            addr,
            accepted,
            stop,
        }
    }

    /// A remote base that kustomize fetches with `git` over HTTPS.
    fn base_url(&self) -> String {
        format!("https://{}/org/base.git", self.addr)
    }

    fn connections(&self) -> usize {
        self.accepted.lock().expect("lock").len()
    }

    /// Whether every connection was closed by its client within `within` (the client was
    /// stopped): what it sent is read, then the end of the stream.
    fn all_closed(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let streams = self.accepted.lock().expect("lock");
        streams.iter().all(|s| {
            let mut s = s;
            let mut buf = [0u8; 4096];
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return false;
                }
                s.set_read_timeout(Some(left)).expect("read timeout");
                match s.read(&mut buf) {
                    Ok(0) => return true,
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                    Err(_) => return false,
                }
            }
        })
    }
}

impl Drop for Silent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn limits() -> KustomizeLimits {
    KustomizeLimits {
        timeout: TIMEOUT,
        ..KustomizeLimits::default()
    }
}

fn names(set: &DesiredSet) -> Vec<String> {
    set.objects
        .iter()
        .map(|m| format!("{} {}", m.object.meta().kind, m.object.meta().name))
        .collect()
}

/// The set's one error is `file`'s, a timeout of kustomize within [`TIMEOUT`].
fn assert_timed_out(set: &DesiredSet, file: &str) {
    assert_eq!(set.errors.len(), 1, "{:?}", set.errors);
    let e = &set.errors[0];
    assert_eq!(e.file, file);
    assert!(
        e.message.contains("kustomize")
            && e.message
                .contains("did not finish within 3s (it was stopped)"),
        "{}",
        e.message
    );
}

/// The remote base was tried (kustomize keeps the network) and its `git` was stopped with
/// kustomize: its connection is closed.
fn assert_fetch_stopped(silent: &Silent) {
    assert!(
        silent.connections() >= 1,
        "kustomize never connected to the remote base at {}",
        silent.addr
    );
    assert!(
        silent.all_closed(Duration::from_secs(5)),
        "a connection to the remote base stayed open: the git kustomize started was left running"
    );
}

const REMOTE_ROOT: &str = "resources:\n- https://ADDR/org/base.git\n- cm.yaml\n";
const LOCAL_ROOT: &str = "resources:\n- cm.yaml\nnamePrefix: local-\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_environment_with_a_silent_remote_base_fails_at_its_timeout_and_another_renders() {
    let silent = Silent::start();
    let bin = kustomize_bin();
    let mut repo = TestRepo::new();
    repo.write(
        "envs/remote/kustomization.yaml",
        &REMOTE_ROOT.replace("https://ADDR/org/base.git", &silent.base_url()),
    );
    repo.write("envs/remote/cm.yaml", &configmap("remote", "shop", "1"));
    repo.write("envs/local/kustomization.yaml", LOCAL_ROOT);
    repo.write("envs/local/cm.yaml", &configmap("app", "shop", "1"));
    repo.commit("two environments", "Alice");
    let cache = cache();
    let env = |path: &str| {
        let mut cfg = GitSourceConfig::new(repo.url(), cache.path().join(path)).path(path);
        cfg.kustomize_bin = Some(bin.clone());
        cfg.kustomize_limits = limits();
        cfg
    };
    let remote = GitRepoSource::open(env("envs/remote"))
        .await
        .expect("opens");
    let local = GitRepoSource::open(env("envs/local")).await.expect("opens");
    // both scanned at once, as the server scans its environments
    let timed = |src: GitRepoSource| async move {
        let started = Instant::now();
        let set = src.load().await.expect("loads");
        (set, started.elapsed())
    };
    let (remote, local) = tokio::join!(tokio::spawn(timed(remote)), tokio::spawn(timed(local)));
    let (remote_set, remote_took) = remote.expect("the remote environment's scan");
    let (local_set, local_took) = local.expect("the local environment's scan");
    assert!(
        remote_took >= TIMEOUT && remote_took < BOUND,
        "the remote environment took {remote_took:?}"
    );
    assert_timed_out(&remote_set, "envs/remote/kustomization.yaml");
    assert!(remote_set.objects.is_empty(), "{:?}", names(&remote_set));
    assert_fetch_stopped(&silent);
    // the other environment rendered, not held up by the first
    assert!(local_set.errors.is_empty(), "{:?}", local_set.errors);
    assert_eq!(names(&local_set), ["ConfigMap local-app"]);
    assert!(
        local_took < BOUND,
        "the local environment took {local_took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_with_a_silent_remote_base_fails_at_its_timeout_and_its_other_folder_renders() {
    let silent = Silent::start();
    let bin = kustomize_bin();
    let dir = tempfile::tempdir().expect("temp dir");
    let write = |file: &str, text: &str| {
        let path = dir.path().join(file);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    };
    write(
        "remote/kustomization.yaml",
        &REMOTE_ROOT.replace("https://ADDR/org/base.git", &silent.base_url()),
    );
    write("remote/cm.yaml", &configmap("remote", "shop", "1"));
    write("local/kustomization.yaml", LOCAL_ROOT);
    write("local/cm.yaml", &configmap("app", "shop", "1"));
    write("plain.yaml", &configmap("plain", "shop", "1"));
    let started = Instant::now();
    let set = DirSource::new(dir.path())
        .with_kustomize_bin(&bin)
        .with_kustomize_limits(limits())
        .load()
        .await
        .expect("the folder is read");
    let took = started.elapsed();
    assert!(took >= TIMEOUT && took < BOUND, "took {took:?}");
    assert_timed_out(&set, "remote/kustomization.yaml");
    assert_fetch_stopped(&silent);
    let mut names = names(&set);
    names.sort();
    assert_eq!(names, ["ConfigMap local-app", "ConfigMap plain"]);
}
