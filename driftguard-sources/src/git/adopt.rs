//! Adopting a drift into Git: a format-preserving edit of the manifest file (the core's
//! [`driftguard_core::yaml_edit`]), on a new branch, one commit naming the drift episode and
//! the person who asked, pushed to the environment's remote with the `git` binary (the same
//! credentials as the source's fetches).

use std::path::Path;

use driftguard_core::remediate::Plan;
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

/// Clones the remote of `config`, writes the plan's values into its manifest file, commits on
/// a new branch and pushes it. Blocking: run it off the async threads.
pub fn push_adoption(
    config: &GitSourceConfig,
    plan: &Plan,
    requested_by: &str,
) -> Result<Adopted, AdoptError> {
    let target = plan.file.as_ref().ok_or(AdoptError::NotAdopt)?;
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
    if let Some(r) = branch_ref {
        clone.push("--branch".as_ref());
        clone.push(r.as_ref());
    }
    clone.push("--".as_ref());
    clone.push(config.url.as_ref());
    clone.push(work.as_os_str());
    run_git(&clone, None, config.auth.as_ref(), config.timeout).map_err(git_err("git clone"))?;
    let folder = config.path.trim_matches('/');
    // provenance names the file from the repository's root; a file named from the
    // environment's folder is joined to it
    let file = if folder.is_empty() || target.file.starts_with(&format!("{folder}/")) {
        target.file.clone()
    } else {
        format!("{folder}/{}", target.file)
    };
    let path = work.join(&file);
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
    let branch = adopt_branch(&plan.episode);
    let in_work = |args: &[&str], step: &str| {
        let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
        run_git(&args, Some(&work), config.auth.as_ref(), config.timeout).map_err(git_err(step))
    };
    in_work(&["checkout", "--quiet", "-b", &branch], "git checkout")?;
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

fn read_head(work: &Path, branch: &str) -> Option<String> {
    let loose = work.join(".git").join("refs").join("heads").join(branch);
    std::fs::read_to_string(loose)
        .ok()
        .map(|s| s.trim().to_owned())
}
