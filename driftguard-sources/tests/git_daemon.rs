//! The Git source over the network: a real `git daemon` on 127.0.0.1.

mod git_support;

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use driftguard_core::ports::{GitSource, SourceError};
use driftguard_sources::git::{GitRepoSource, GitSourceConfig};
use git_support::*;

struct Daemon {
    child: Child,
    port: u16,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_daemon(base: &std::path::Path) -> Daemon {
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("addr")
        .port();
    // run git-daemon itself: `git daemon` would run it as a child that outlives a kill
    let exec_path = Command::new(git_bin())
        .arg("--exec-path")
        .output()
        .expect("git runs");
    let exec_path = String::from_utf8_lossy(&exec_path.stdout).trim().to_owned();
    let child = Command::new(std::path::Path::new(&exec_path).join("git-daemon"))
        .arg("--export-all")
        .arg("--reuseaddr")
        .arg("--listen=127.0.0.1")
        .arg(format!("--port={port}"))
        .arg(format!("--base-path={}", base.display()))
        .arg(base)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("git daemon starts (is git installed?)");
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "git daemon did not listen on 127.0.0.1:{port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Daemon { child, port }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polls_a_git_daemon_and_keeps_the_last_good_revision() {
    let base = tempfile::tempdir().expect("temp dir");
    let bare = base.path().join("repo.git");
    git(
        base.path(),
        &["init", "-q", "--bare", "-b", "main", "repo.git"],
    );
    let mut work = TestRepo::new();
    work.write("prod/web.yaml", &deployment("web", "shop", 2, "web:1"));
    let a = work.commit("first", "Alice");
    let bare_path = bare.display().to_string();
    git(work.path(), &["push", "-q", &bare_path, "main"]);

    let daemon = start_daemon(base.path());
    let url = format!("git://127.0.0.1:{}/repo.git", daemon.port);
    let cache = cache();
    let src = GitRepoSource::open(
        GitSourceConfig::new(&url, cache.path())
            .reference("main")
            .path("prod"),
    )
    .await
    .expect("clones over git://");
    assert_eq!(src.revision().await.expect("revision").id, a);
    assert_eq!(src.fetch().await.expect("fetch"), None);

    work.write("prod/web.yaml", &deployment("web", "shop", 5, "web:1"));
    let b = work.commit("scale to 5", "Bob");
    git(work.path(), &["push", "-q", &bare_path, "main"]);
    let moved = src.fetch().await.expect("fetch").expect("the ref moved");
    assert_eq!(moved.id, b);
    let set = src.desired(&moved).await.expect("loads");
    assert_eq!(set.objects[0].object.0["spec"]["replicas"], 5);
    assert!(set.notes.is_empty(), "{:?}", set.notes);

    // the server goes away: the fetch fails, the last good revision stays and says so
    drop(daemon);
    let err = src.fetch().await.expect_err("server is gone");
    assert!(
        matches!(&err, SourceError::Unreachable { target, .. } if target == &url),
        "{err:?}"
    );
    assert!(src.last_fetch_error().is_some());
    let rev = src.revision().await.expect("still resolves");
    assert_eq!(rev.id, b);
    let set = src.desired(&rev).await.expect("still loads");
    assert_eq!(set.objects.len(), 1);
    assert!(
        set.warnings
            .iter()
            .any(|n| n.contains("last fetch") && n.contains(&url)),
        "{:?}",
        set.warnings
    );

    // a new source on the same cache reuses the clone even while the server is down
    let again = GitRepoSource::open(GitSourceConfig::new(&url, cache.path()).reference("main"))
        .await
        .expect("opens from the cache");
    assert_eq!(again.revision().await.expect("revision").id, b);
    assert!(again.last_fetch_error().is_some());
}
