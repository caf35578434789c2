//! The generic renderer with real commands (`sh` scripts printing objects): YAML and JSON
//! output, a shell command line, a script of the repository run at a revision, and the
//! failures: a non-zero exit, a timeout, too much output, a missing program.

mod git_support;

use std::path::Path;
use std::time::{Duration, Instant};

use driftguard_core::error::chain;
use driftguard_core::ports::{DesiredSet, GitSource, SourceError};
use driftguard_core::render::RenderError;
use driftguard_sources::files::DirSource;
use driftguard_sources::git::{GitRepoSource, GitSourceConfig};
use driftguard_sources::render::{CommandRenderer, Renderer};
use git_support::*;

/// Writes an executable script.
fn script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}")).expect("write");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
}

fn names(set: &DesiredSet) -> Vec<String> {
    set.objects
        .iter()
        .map(|m| format!("{} {}", m.object.meta().kind, m.object.meta().name))
        .collect()
}

async fn load(dir: &Path, renderer: CommandRenderer) -> Result<DesiredSet, SourceError> {
    DirSource::new(dir)
        .with_renderer(Renderer::Command(renderer))
        .load()
        .await
}

fn render_error(e: SourceError) -> (RenderError, String) {
    let text = chain(&e);
    match e {
        SourceError::Render(r) => (r, text),
        other => panic!("not a render error: {}", chain(&other)),
    }
}

const GEN_YAML: &str = r#"cat <<EOF
apiVersion: v1
kind: ConfigMap
metadata:
  name: generated
  namespace: gen
data:
  path: "$DRIFTGUARD_PATH"
  arg: "$1"
---
apiVersion: batch/v1
kind: Job
metadata:
  name: seed
  annotations:
    helm.sh/hook: post-install
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
  namespace: gen
spec:
  replicas: 2
EOF
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_printing_yaml_renders_a_folder() {
    let tmp = tempfile::tempdir().expect("temp dir");
    script(&tmp.path().join("gen.sh"), GEN_YAML);
    let mut r = CommandRenderer::new(["./gen.sh", "two words"]);
    r.timeout = Duration::from_secs(20);
    let dir = DirSource::new(tmp.path()).with_renderer(Renderer::Command(r.clone()));
    assert!(
        dir.describe().ends_with("(command ./gen.sh 'two words')"),
        "{}",
        dir.describe()
    );
    let set = dir.load().await.expect("renders");
    assert!(set.errors.is_empty(), "{:?}", set.errors);
    assert_eq!(names(&set), ["ConfigMap generated", "Deployment api"]);
    let cm = set.objects[0].object.value();
    assert_eq!(
        cm["data"]["arg"], "two words",
        "arguments are passed as given, no shell"
    );
    let p = &set.objects[1].provenance;
    assert_eq!(p.file, "./gen.sh 'two words'");
    assert_eq!(p.document, 2, "the third document printed");
    assert_eq!(
        p.to_string(),
        "./gen.sh 'two words' (rendered by command from .)"
    );
    assert_eq!(
        set.notes,
        [
            ". rendered by ./gen.sh 'two words'",
            "command ./gen.sh 'two words': 1 hook skipped (hooks are not desired state): Job seed (post-install)",
        ]
    );
    // kept while the folder is unchanged
    dir.load().await.expect("loads");
    assert_eq!(dir.renders(), 1);
    std::fs::write(tmp.path().join("input.txt"), "changed").expect("write");
    dir.load().await.expect("loads");
    assert_eq!(dir.renders(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_output_and_shell_command_lines() {
    let tmp = tempfile::tempdir().expect("temp dir");
    // an array of objects, as jsonnet prints them
    let mut r = CommandRenderer::new([
        r#"printf '[{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","namespace":"gen"}},{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"b","namespace":"gen"}}]}]' | cat"#,
    ]);
    r.shell = true;
    let set = load(tmp.path(), r).await.expect("renders");
    assert!(set.errors.is_empty(), "{:?}", set.errors);
    assert_eq!(names(&set), ["ConfigMap a", "ConfigMap b"]);
    // a document that is not an object is an error of the set, the rest is read
    let mut r = CommandRenderer::new([
        "printf 'apiVersion: v1\\nkind: ConfigMap\\nmetadata: {name: c}\\n---\\n- just a list\\n'",
    ]);
    r.shell = true;
    let set = load(tmp.path(), r).await.expect("renders");
    assert_eq!(names(&set), ["ConfigMap c"]);
    assert_eq!(set.errors.len(), 1, "{:?}", set.errors);
    assert!(
        set.errors[0]
            .to_string()
            .contains("document is not a mapping"),
        "{}",
        set.errors[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_command_names_itself_its_exit_status_and_its_stderr() {
    let tmp = tempfile::tempdir().expect("temp dir");
    script(
        &tmp.path().join("gen.sh"),
        "echo 'apiVersion: v1'\necho 'jsonnet: main.jsonnet:3: unknown variable: env' >&2\necho 'more detail' >&2\nexit 3\n",
    );
    let (e, text) = render_error(
        load(tmp.path(), CommandRenderer::new(["./gen.sh"]))
            .await
            .expect_err("fails"),
    );
    assert!(matches!(e, RenderError::Failed { .. }), "{text}");
    assert_eq!(
        text,
        "rendering failed: ./gen.sh failed (exit status: 3): jsonnet: main.jsonnet:3: unknown variable: env; more detail"
    );
    // a program that is not there
    let (e, text) = render_error(
        load(
            tmp.path(),
            CommandRenderer::new(["no-such-renderer-4f1d", "x"]),
        )
        .await
        .expect_err("fails"),
    );
    assert!(matches!(e, RenderError::NoBinary { .. }), "{text}");
    assert_eq!(
        text,
        "rendering failed: `no-such-renderer-4f1d` was not found (set render.command)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_that_runs_too_long_or_prints_too_much_is_stopped() {
    let tmp = tempfile::tempdir().expect("temp dir");
    // a child of the shell keeps the output open: the whole process group is stopped
    let mut r = CommandRenderer::new(["sleep 30 | cat; echo done"]);
    r.shell = true;
    r.timeout = Duration::from_millis(500);
    let started = Instant::now();
    let (e, text) = render_error(load(tmp.path(), r).await.expect_err("times out"));
    assert!(matches!(e, RenderError::TimedOut { .. }), "{text}");
    assert_eq!(
        text,
        "rendering failed: sh -c 'sleep 30 | cat; echo done' did not finish within 0.5s (it was stopped)"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "stopped after {:?}",
        started.elapsed()
    );

    let mut r = CommandRenderer::new(["yes 'key: value' | head -c 1000000"]);
    r.shell = true;
    r.max_output = 10_000;
    let (e, text) = render_error(load(tmp.path(), r).await.expect_err("too much"));
    assert!(
        matches!(e, RenderError::OutputTooLarge { limit: 10_000, .. }),
        "{text}"
    );
    assert_eq!(
        text,
        "rendering failed: sh -c 'yes '\\''key: value'\\'' | head -c 1000000' printed more than 10000 bytes (it was stopped; raise the limit if this is expected)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_of_the_repository_renders_each_revision() {
    let mut repo = TestRepo::new();
    repo.write("apps/gen/main.txt", "1");
    repo.commit("input", "Alice");
    let path = repo.path().join("apps/gen/gen.sh");
    script(
        &path,
        "cat <<EOF\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: rev\n  namespace: gen\ndata:\n  revision: \"$DRIFTGUARD_REVISION\"\n  input: \"$(cat main.txt)\"\n  shared: \"$(cat ../../shared.txt)\"\nEOF\n",
    );
    repo.write("shared.txt", "s1");
    let first = repo.commit("generator", "Alice");
    let cache = cache();
    let cfg = GitSourceConfig::new(repo.url(), cache.path())
        .path("apps/gen")
        .render(Renderer::Command(CommandRenderer::new(["./gen.sh"])));
    let git = GitRepoSource::open(cfg).await.expect("opens");
    let set = git.load().await.expect("renders");
    assert!(set.errors.is_empty(), "{:?}", set.errors);
    let data = &set.objects[0].object.value()["data"];
    assert_eq!(data["revision"], first.as_str());
    assert_eq!(data["input"], "1");
    assert_eq!(data["shared"], "s1", "the whole tree is there");
    let p = &set.objects[0].provenance;
    assert_eq!(p.revision.as_deref(), Some(first.as_str()));
    let r = p.rendered.as_ref().expect("rendered");
    assert_eq!(
        (r.renderer.as_str(), r.source.as_str()),
        ("command", "apps/gen")
    );
    assert_eq!(r.inputs_commit.as_deref(), Some(first.as_str()));
    // anything in the tree may be an input of a command: a change anywhere renders again
    repo.write("shared.txt", "s2");
    let second = repo.commit("shared", "Bob");
    git.fetch().await.expect("fetch");
    let set = git.load().await.expect("renders");
    assert_eq!(set.objects[0].object.value()["data"]["shared"], "s2");
    assert_eq!(git.renders(), 2);
    assert_eq!(
        set.objects[0]
            .provenance
            .rendered
            .as_ref()
            .and_then(|r| r.inputs_commit.as_deref()),
        Some(second.as_str())
    );
}

/// Runs `git` with `stdin` in `dir`; its output.
fn git_stdin(dir: &Path, args: &[&str], stdin: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new(git_bin())
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("git runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("git ends");
    assert!(out.status.success(), "git {args:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test]
async fn a_hostile_tree_is_written_without_its_git_folder_and_links() {
    // a commit git itself would never check out: a `.git` folder in the tree, and a link to
    // a file outside it, made with plumbing
    let repo = TestRepo::new();
    let dir = repo.path();
    let blob = |text: &str| git_stdin(dir, &["hash-object", "-w", "--stdin"], text);
    let config = blob("[core]\n\tfsmonitor = touch pwned\n");
    let gen = blob(
        "#!/bin/sh\ncat <<EOF\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: seen\n  namespace: gen\ndata:\n  git: \"$(test -e .git && echo yes || echo no)\"\n  link: \"$(test -e passwd || test -L passwd && echo yes || echo no)\"\nEOF\n",
    );
    let link = blob("/etc/passwd");
    let dot_git = git_stdin(dir, &["mktree"], &format!("100644 blob {config}\tconfig\n"));
    let root = git_stdin(
        dir,
        &["mktree"],
        &format!(
            "040000 tree {dot_git}\t.git\n100755 blob {gen}\tgen.sh\n120000 blob {link}\tpasswd\n"
        ),
    );
    let commit =
        driftguard_test_support::git_as(dir, &["commit-tree", &root, "-m", "hostile"], "Mallory");
    git(dir, &["update-ref", "refs/heads/main", &commit]);
    let cache = cache();
    let cfg = GitSourceConfig::new(repo.url(), cache.path())
        .render(Renderer::Command(CommandRenderer::new(["./gen.sh"])));
    let src = GitRepoSource::open(cfg).await.expect("opens");
    let set = src.load().await.expect("renders");
    assert!(set.errors.is_empty(), "{:?}", set.errors);
    let data = &set.objects[0].object.value()["data"];
    assert_eq!(data["git"], "no", "the tree's .git folder is not written");
    assert_eq!(data["link"], "no", "the tree's link is not written");
}
