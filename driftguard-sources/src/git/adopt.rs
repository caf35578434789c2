//! Adopting a drift into Git: a format-preserving edit of the manifest file (the core's
//! [`driftguard_core::yaml_edit`]), on a new branch, one commit naming the drift episode and
//! the person who asked, pushed to the environment's remote with the `git` binary (the same
//! credentials as the source's fetches).
//!
//! The repository is hostile ground: the branch is made from the revision the plan was made
//! from ([`push_adoption_at`], not whatever the branch holds now), and the manifest file is
//! written only when no component of its path is a symbolic link, `..` or `.git`, and its
//! canonical path stays inside the clone ([`UnsafePath`]). A commit that turns the file into
//! a link to a file outside the clone cannot make DriftGuard write there.

use std::path::{Path, PathBuf};

use driftguard_core::remediate::Plan;
use driftguard_core::state::Drift;
use driftguard_core::yaml_edit::{self, YamlEditError};

use super::{redact_url, run_git, GitSourceConfig};

/// Why an adoption could not be pushed (nothing was pushed).
#[derive(Debug, thiserror::Error)]
pub enum AdoptError {
    /// The plan is not an adopt plan.
    #[error("the plan does not adopt into Git")]
    NotAdopt,
    /// A `git` command failed.
    #[error("{step} failed for {remote}: {message}")]
    Git {
        /// What was being done.
        step: String,
        /// The remote (without credentials).
        remote: String,
        /// Git's last message.
        message: String,
    },
    /// The revision the plan was made from is not a commit id, or not on the remote (any
    /// more).
    #[error("cannot adopt at revision {revision} of {remote}: {problem}")]
    Revision {
        /// The revision, as given.
        revision: String,
        /// The remote (without credentials).
        remote: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The manifest file's path is not safe to write in the clone: nothing was written.
    #[error("refusing to write {file}")]
    UnsafePath {
        /// The file, relative to the repository root.
        file: String,
        /// Why.
        #[source]
        reason: UnsafePath,
    },
    /// The manifest file could not be read or written.
    #[error("cannot {what} {file}: {message}")]
    File {
        /// `read`, `write`.
        what: String,
        /// The file.
        file: String,
        /// Why.
        message: String,
    },
    /// The file cannot be edited in place.
    #[error("{file}: {source}")]
    Edit {
        /// The file.
        file: String,
        /// Why.
        #[source]
        source: YamlEditError,
    },
}

/// Why a path in a clone is not written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UnsafePath {
    /// Empty or absolute.
    #[error("the path is empty or absolute")]
    NotRelative,
    /// A `..` component.
    #[error("the path climbs out of its folder with `..`")]
    ParentFolder,
    /// A `.git` component: the repository's own files.
    #[error("the path goes into the .git folder")]
    GitFolder,
    /// A component is a symbolic link (in the revision checked out).
    #[error("{component} is a symbolic link")]
    Symlink {
        /// The linked component, relative to the repository root.
        component: String,
    },
    /// The path names a folder, a socket or anything else but a regular file.
    #[error("it is not a regular file")]
    NotAFile,
    /// The canonical path is not inside the clone.
    #[error("it resolves outside the clone")]
    OutsideClone,
}

/// What was pushed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Adopted {
    /// The branch pushed.
    pub branch: String,
    /// The commit id.
    pub commit: String,
    /// The file changed, relative to the repository root.
    pub file: String,
}

/// The branch an adoption of `episode` is pushed to.
pub fn adopt_branch(episode: &str) -> String {
    let short: String = episode
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(16)
        .collect();
    format!("driftguard/adopt-{short}")
}

/// The revision an adoption of `drift` starts from: the commit its manifest was read at
/// (provenance), else the revision of the drift's last update.
pub fn adoption_revision(drift: &Drift) -> Option<&str> {
    drift
        .provenance
        .as_ref()
        .and_then(|p| p.revision.as_deref())
        .or(drift.revision.as_deref())
}

/// [`push_adoption_at`] on the tracked branch as it is now. Prefer [`push_adoption_at`] with
/// the plan's revision ([`adoption_revision`]): what was previewed is what gets edited.
pub fn push_adoption(
    config: &GitSourceConfig,
    plan: &Plan,
    requested_by: &str,
) -> Result<Adopted, AdoptError> {
    push_adoption_at(config, plan, None, requested_by)
}

/// Clones the remote of `config`, makes a new branch at `revision` (the commit the plan was
/// made from; `None`: the tracked branch's head), writes the plan's values into its manifest
/// file, commits and pushes the branch. A path with a symbolic link, `..` or `.git` in it, or
/// resolving outside the clone, is refused before anything is written
/// ([`AdoptError::UnsafePath`]). Blocking: run it off the async threads.
pub fn push_adoption_at(
    config: &GitSourceConfig,
    plan: &Plan,
    revision: Option<&str>,
    requested_by: &str,
) -> Result<Adopted, AdoptError> {
    let target = plan.file.as_ref().ok_or(AdoptError::NotAdopt)?;
    let branch = adopt_branch(&plan.episode);
    let (_tmp, work) = clone_at(config, revision, &branch)?;
    let remote = redact_url(&config.url);
    let git_err = |step: &str| {
        let remote = remote.clone();
        let step = step.to_owned();
        move |message: String| AdoptError::Git {
            step,
            remote,
            message,
        }
    };
    let in_work = |args: &[&str], step: &str| {
        let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
        run_git(&args, Some(&work), config.auth.as_ref(), config.timeout).map_err(git_err(step))
    };
    let folder = config.path.trim_matches('/');
    // provenance names the file from the repository's root; a file named from the
    // environment's folder is joined to it
    let file = if folder.is_empty() || target.file.starts_with(&format!("{folder}/")) {
        target.file.clone()
    } else {
        format!("{folder}/{}", target.file)
    };
    let path = contained(&work, &file).map_err(|reason| match reason {
        Contained::Unsafe(reason) => AdoptError::UnsafePath {
            file: file.clone(),
            reason,
        },
        Contained::Io(e) => AdoptError::File {
            what: "read".into(),
            file: file.clone(),
            message: e.to_string(),
        },
    })?;
    let file_error = |what: &str| {
        let file = file.clone();
        let what = what.to_owned();
        move |e: std::io::Error| AdoptError::File {
            what,
            file,
            message: e.to_string(),
        }
    };
    let mut text = std::fs::read_to_string(&path).map_err(file_error("read"))?;
    for (p, v) in &plan.writes {
        text = yaml_edit::edit(&text, target.document, p, v.as_ref()).map_err(|source| {
            AdoptError::Edit {
                file: file.clone(),
                source,
            }
        })?;
    }
    std::fs::write(&path, &text).map_err(file_error("write"))?;
    let fields: Vec<&str> = plan.writes.iter().map(|(p, _)| p.as_str()).collect();
    let message = format!(
        "Adopt the live {} of {}\n\nDriftGuard adopts what the cluster runs into Git.\n\nDrift-Episode: {}\nPlan: {}\nRequested-By: {}\n",
        fields.join(", "),
        plan.object,
        plan.episode,
        plan.id,
        requested_by
    );
    in_work(
        &[
            "-c",
            "user.name=DriftGuard",
            "-c",
            "user.email=driftguard@localhost",
            "commit",
            "--quiet",
            "-m",
            &message,
            "--",
            &file,
        ],
        "git commit",
    )?;
    in_work(
        &[
            "push",
            "--quiet",
            "origin",
            &format!("HEAD:refs/heads/{branch}"),
        ],
        "git push",
    )?;
    let commit = read_head(&work, &branch).unwrap_or_default();
    Ok(Adopted {
        branch,
        commit,
        file,
    })
}

/// Clones the remote of `config` into a temporary folder and makes the new branch `branch` at
/// `revision` (a full commit id; `None`: the tracked branch's head). Returns the folder (removed
/// when dropped) and the clone in it.
fn clone_at(
    config: &GitSourceConfig,
    revision: Option<&str>,
    branch: &str,
) -> Result<(tempfile::TempDir, PathBuf), AdoptError> {
    let remote = redact_url(&config.url);
    let revision_error = |revision: &str, problem: &str| AdoptError::Revision {
        revision: revision.to_owned(),
        remote: remote.clone(),
        problem: problem.to_owned(),
    };
    if let Some(r) = revision {
        if !is_commit_id(r) {
            return Err(revision_error(r, "not a full commit id"));
        }
    }
    let git_err = |step: &str| {
        let remote = remote.clone();
        let step = step.to_owned();
        move |message: String| AdoptError::Git {
            step,
            remote,
            message,
        }
    };
    let tmp = tempfile::tempdir().map_err(|e| AdoptError::File {
        what: "create a work folder for".into(),
        file: remote.clone(),
        message: e.to_string(),
    })?;
    let work = tmp.path().join("work");
    let mut clone: Vec<&std::ffi::OsStr> =
        vec!["clone".as_ref(), "--quiet".as_ref(), "--no-local".as_ref()];
    let reference = config.reference.trim();
    let branch_ref = (!reference.is_empty() && reference != "HEAD").then_some(reference);
    // at a revision every branch is fetched (the default), and the revision checked out
    if let (Some(r), None) = (branch_ref, revision) {
        clone.push("--branch".as_ref());
        clone.push(r.as_ref());
    }
    clone.push("--".as_ref());
    clone.push(config.url.as_ref());
    clone.push(work.as_os_str());
    run_git(&clone, None, config.auth.as_ref(), config.timeout).map_err(git_err("git clone"))?;
    let in_work = |args: &[&str], step: &str| {
        let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
        run_git(&args, Some(&work), config.auth.as_ref(), config.timeout).map_err(git_err(step))
    };
    match revision {
        Some(r) => {
            let commit = format!("{r}^{{commit}}");
            if in_work(&["cat-file", "-e", &commit], "git cat-file").is_err() {
                // on no branch: ask for it by id (servers allowing it answer)
                let _ = in_work(&["fetch", "--quiet", "origin", r], "git fetch");
                in_work(&["cat-file", "-e", &commit], "git cat-file")
                    .map_err(|_| revision_error(r, "the remote does not have it (any more)"))?;
            }
            in_work(
                &["checkout", "--quiet", "--no-track", "-b", branch, r],
                "git checkout",
            )?;
        }
        None => in_work(&["checkout", "--quiet", "-b", branch], "git checkout")?,
    }
    Ok((tmp, work))
}

/// What [`push_files_at`] pushed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushedFiles {
    /// The branch pushed.
    pub branch: String,
    /// The commit id.
    pub commit: String,
    /// The files written, relative to the repository root.
    pub files: Vec<String>,
}

/// Clones the remote of `config`, makes the new branch `branch` at `revision` (a full commit
/// id; `None`: the tracked branch's head), writes `files` (`(path relative to the repository
/// root, text)`: a new file, or the text added at the end of a file the branch has) in one
/// commit with `message`, and pushes
/// the branch. A path with `..`, `.git` or a symbolic link in it, or resolving outside the
/// clone, is refused before anything is written. Blocking: run it off the async threads.
pub fn push_files_at(
    config: &GitSourceConfig,
    revision: Option<&str>,
    branch: &str,
    files: &[(String, String)],
    message: &str,
) -> Result<PushedFiles, AdoptError> {
    let (_tmp, work) = clone_at(config, revision, branch)?;
    let remote = redact_url(&config.url);
    let in_work = |args: &[&str], step: &str| {
        let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
        run_git(&args, Some(&work), config.auth.as_ref(), config.timeout).map_err(|message| {
            AdoptError::Git {
                step: step.to_owned(),
                remote: remote.clone(),
                message,
            }
        })
    };
    for (file, text) in files {
        let unsafe_path = |reason: UnsafePath| AdoptError::UnsafePath {
            file: file.clone(),
            reason,
        };
        let (folder, name) = file.rsplit_once('/').unwrap_or(("", file.as_str()));
        if name.is_empty() || name == ".." || name.eq_ignore_ascii_case(".git") {
            return Err(unsafe_path(UnsafePath::NotRelative));
        }
        let dir = if folder.is_empty() {
            work.clone()
        } else {
            match contained_dir(&work, folder) {
                Ok(d) => d,
                Err(Contained::Unsafe(u)) => return Err(unsafe_path(u)),
                Err(Contained::Io(e)) => {
                    return Err(AdoptError::File {
                        what: "read".into(),
                        file: file.clone(),
                        message: e.to_string(),
                    })
                }
            }
        };
        let path = dir.join(name);
        let before = match std::fs::symlink_metadata(&path) {
            Ok(m) if !m.file_type().is_file() => return Err(unsafe_path(UnsafePath::NotAFile)),
            Ok(_) => std::fs::read_to_string(&path).map_err(|e| AdoptError::File {
                what: "read".into(),
                file: file.clone(),
                message: e.to_string(),
            })?,
            Err(_) => String::new(),
        };
        // a file the branch has already (an earlier codify, merged) keeps what it holds
        let text = if before.is_empty() {
            text.clone()
        } else {
            format!("{}\n{text}", before.trim_end())
        };
        std::fs::write(&path, text).map_err(|e| AdoptError::File {
            what: "write".into(),
            file: file.clone(),
            message: e.to_string(),
        })?;
        in_work(&["add", "--", file], "git add")?;
    }
    in_work(
        &[
            "-c",
            "user.name=DriftGuard",
            "-c",
            "user.email=driftguard@localhost",
            "commit",
            "--quiet",
            "-m",
            message,
        ],
        "git commit",
    )?;
    in_work(
        &[
            "push",
            "--quiet",
            "origin",
            &format!("HEAD:refs/heads/{branch}"),
        ],
        "git push",
    )?;
    let commit = read_head(&work, branch).unwrap_or_default();
    Ok(PushedFiles {
        branch: branch.to_owned(),
        commit,
        files: files.iter().map(|(f, _)| f.clone()).collect(),
    })
}

/// The folder `folder` (relative to the root, `/`-separated) of the clone `root`, made where
/// missing one component at a time: no component may be `..`, `.git` or a symbolic link, and
/// its canonical path must lie inside the canonical root (as [`contained`] for a file).
fn contained_dir(root: &Path, folder: &str) -> Result<PathBuf, Contained> {
    if folder.starts_with('/') || folder.starts_with('\\') {
        return Err(Contained::Unsafe(UnsafePath::NotRelative));
    }
    let (at, _) = walk(root, folder, true)?;
    inside(root, &at)
}

/// A full commit id (SHA-1 or SHA-256, hexadecimal): never taken for an option or a ref name.
fn is_commit_id(r: &str) -> bool {
    matches!(r.len(), 40 | 64) && r.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Why [`contained`] refused.
#[derive(Debug)]
enum Contained {
    Unsafe(UnsafePath),
    Io(std::io::Error),
}

/// The path of the regular file `file` (relative to the root, `/`-separated) in the clone
/// `root`: no component may be empty-absolute, `..`, `.git` or a symbolic link (each looked
/// at with `symlink_metadata`, without following it), and its canonical path must lie inside
/// the canonical root.
fn contained(root: &Path, file: &str) -> Result<PathBuf, Contained> {
    if file.is_empty() || file.starts_with('/') || file.starts_with('\\') {
        return Err(Contained::Unsafe(UnsafePath::NotRelative));
    }
    let (at, components) = walk(root, file, false)?;
    if components == 0 {
        return Err(Contained::Unsafe(UnsafePath::NotRelative));
    }
    let meta = std::fs::symlink_metadata(&at).map_err(Contained::Io)?;
    if !meta.file_type().is_file() {
        return Err(Contained::Unsafe(UnsafePath::NotAFile));
    }
    inside(root, &at)
}

/// Walks `path` from `root` one component at a time, each looked at with `symlink_metadata`
/// (never followed): `..`, `.git` and symbolic links are refused; with `make_folders`, every
/// component is a folder, made where missing. The path reached and how many components it has.
fn walk(root: &Path, path: &str, make_folders: bool) -> Result<(PathBuf, usize), Contained> {
    let mut at = root.to_path_buf();
    let mut walked: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => continue,
            ".." => return Err(Contained::Unsafe(UnsafePath::ParentFolder)),
            p if p.eq_ignore_ascii_case(".git") => {
                return Err(Contained::Unsafe(UnsafePath::GitFolder))
            }
            p => {
                walked.push(p);
                at.push(p);
                match std::fs::symlink_metadata(&at) {
                    Ok(m) if m.file_type().is_symlink() => {
                        return Err(Contained::Unsafe(UnsafePath::Symlink {
                            component: walked.join("/"),
                        }))
                    }
                    Ok(m) if make_folders && !m.is_dir() => {
                        return Err(Contained::Unsafe(UnsafePath::NotAFile))
                    }
                    Ok(_) => {}
                    Err(_) if make_folders => std::fs::create_dir(&at).map_err(Contained::Io)?,
                    Err(e) => return Err(Contained::Io(e)),
                }
            }
        }
    }
    Ok((at, walked.len()))
}

/// `at`'s canonical path, which must lie inside `root`'s.
fn inside(root: &Path, at: &Path) -> Result<PathBuf, Contained> {
    let canonical_root = root.canonicalize().map_err(Contained::Io)?;
    let canonical = at.canonicalize().map_err(Contained::Io)?;
    if !canonical.starts_with(&canonical_root) {
        return Err(Contained::Unsafe(UnsafePath::OutsideClone));
    }
    Ok(canonical)
}

fn read_head(work: &Path, branch: &str) -> Option<String> {
    let loose = work.join(".git").join("refs").join("heads").join(branch);
    std::fs::read_to_string(loose)
        .ok()
        .map(|s| s.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_ids_are_full_hex() {
        assert!(is_commit_id(&"a".repeat(40)));
        assert!(is_commit_id(&"0".repeat(64)));
        assert!(!is_commit_id("main"));
        assert!(!is_commit_id(&format!("--{}", "a".repeat(38))));
        assert!(!is_commit_id(&"a".repeat(12)));
    }

    #[test]
    fn new_folders_stay_in_the_clone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        let made = contained_dir(root, "live/prod").expect("made");
        assert!(made.is_dir() && made.ends_with("live/prod"));
        let unsafe_ = |folder: &str| match contained_dir(root, folder) {
            Err(Contained::Unsafe(u)) => u,
            other => panic!("{folder}: {other:?}"),
        };
        assert_eq!(unsafe_("live/../../x"), UnsafePath::ParentFolder);
        assert_eq!(unsafe_(".git/hooks"), UnsafePath::GitFolder);
        assert_eq!(unsafe_("/etc"), UnsafePath::NotRelative);
        #[cfg(unix)]
        {
            let outside = tempfile::tempdir().expect("tempdir");
            std::os::unix::fs::symlink(outside.path(), root.join("out")).expect("link");
            assert_eq!(
                unsafe_("out/new"),
                UnsafePath::Symlink {
                    component: "out".into()
                }
            );
            assert!(!outside.path().join("new").exists());
        }
    }

    #[test]
    fn paths_stay_in_the_clone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::create_dir_all(root.join("apps")).expect("mkdir");
        std::fs::write(root.join("apps/cm.yaml"), "a: 1\n").expect("write");
        assert!(contained(root, "apps/cm.yaml").is_ok());
        assert!(contained(root, "./apps//cm.yaml").is_ok());
        let unsafe_ = |file: &str| match contained(root, file) {
            Err(Contained::Unsafe(u)) => u,
            other => panic!("{file}: {other:?}"),
        };
        assert_eq!(unsafe_("/etc/passwd"), UnsafePath::NotRelative);
        assert_eq!(unsafe_(""), UnsafePath::NotRelative);
        assert_eq!(unsafe_("apps/../../x.yaml"), UnsafePath::ParentFolder);
        assert_eq!(unsafe_(".git/config"), UnsafePath::GitFolder);
        assert_eq!(unsafe_("apps/.GIT/config"), UnsafePath::GitFolder);
        assert_eq!(unsafe_("apps"), UnsafePath::NotAFile);
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("/tmp", root.join("tmp")).expect("link");
            assert_eq!(
                unsafe_("tmp/x.yaml"),
                UnsafePath::Symlink {
                    component: "tmp".into()
                }
            );
        }
        assert!(matches!(
            contained(root, "apps/missing.yaml"),
            Err(Contained::Io(_))
        ));
    }
}
