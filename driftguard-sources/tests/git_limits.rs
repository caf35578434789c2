//! A `git` command that hangs (an SSH connection that never answers) is stopped at the
//! source's timeout, with the programs it started: its own process group. One test in this
//! binary: it sets `GIT_SSH_COMMAND` for the process.

use std::time::{Duration, Instant};

use driftguard_core::ports::SourceError;
use driftguard_sources::git::{GitRepoSource, GitSourceConfig};

fn alive(pid: &str) -> bool {
    std::process::Command::new("kill")
        .args(["-0", pid])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test]
async fn a_hanging_clone_is_stopped_with_what_it_started() {
    let work = tempfile::tempdir().expect("temp dir");
    let pid_file = work.path().join("ssh.pid");
    // the "ssh" starts a child that never ends and waits for it; `#` drops git's arguments
    std::env::set_var(
        "GIT_SSH_COMMAND",
        format!("sleep 600 & echo $! > '{}'; wait #", pid_file.display()),
    );
    std::env::set_var("GIT_SSH_VARIANT", "simple");
    let mut cfg = GitSourceConfig::new(
        "ssh://git@example.invalid/never/answers.git",
        work.path().join("cache"),
    );
    cfg.timeout = Duration::from_secs(1);
    let started = Instant::now();
    let err = GitRepoSource::open(cfg).await.expect_err("the clone hangs");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    match &err {
        SourceError::Unreachable { source, .. } => {
            assert!(
                source.to_string().contains("git timed out after 1s"),
                "{source}"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    let pid = std::fs::read_to_string(&pid_file).expect("the fake ssh ran");
    let pid = pid.trim();
    let gone = Instant::now();
    while alive(pid) && gone.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !alive(pid),
        "the hanging child {pid} of git's ssh was left running"
    );
}
