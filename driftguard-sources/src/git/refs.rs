//! Which commit a ref names (a branch, a tag, a full ref name, `HEAD` or a commit id), and a
//! commit as DriftGuard reports it.

use chrono::DateTime;
use gix::ObjectId;

use driftguard_core::model::{CommitInfo, Revision};
use driftguard_core::ports::SourceError;

use super::objects::backend;
use super::reader::Reader;

impl Reader {
    /// Resolves a branch, tag, full ref name, `HEAD` or commit id to a commit.
    pub fn resolve(&self, reference: &str) -> Result<ObjectId, SourceError> {
        let repo = self.local();
        let not_found = || SourceError::NotFound {
            what: format!("ref `{reference}`"),
        };
        let reference = reference.trim();
        if reference.len() == 40 && reference.bytes().all(|b| b.is_ascii_hexdigit()) {
            let id = ObjectId::from_hex(reference.as_bytes()).map_err(|_| not_found())?;
            return match repo.find_commit(id) {
                Ok(c) => Ok(c.id),
                Err(_) => Err(not_found()),
            };
        }
        let candidates: Vec<String> = if reference.is_empty() || reference == "HEAD" {
            vec!["HEAD".into()]
        } else if reference.starts_with("refs/") {
            vec![reference.to_owned()]
        } else {
            vec![
                format!("refs/heads/{reference}"),
                format!("refs/tags/{reference}"),
                format!("refs/remotes/origin/{reference}"),
            ]
        };
        for name in candidates {
            let found = repo
                .try_find_reference(name.as_str())
                .map_err(|e| backend(format!("cannot read ref {name}"), e))?;
            if let Some(mut r) = found {
                let commit = r.peel_to_commit().map_err(|_| not_found())?;
                return Ok(commit.id);
            }
        }
        Err(not_found())
    }

    /// The commit as DriftGuard reports it.
    pub fn commit_info(&self, id: ObjectId) -> Result<CommitInfo, SourceError> {
        let repo = self.local();
        commit_info(&repo, id)
    }

    /// The revision of a commit.
    pub fn revision(&self, id: ObjectId) -> Result<Revision, SourceError> {
        Ok(Revision {
            id: id.to_string(),
            commit: Some(self.commit_info(id)?),
        })
    }
}

pub(super) fn commit_info(repo: &gix::Repository, id: ObjectId) -> Result<CommitInfo, SourceError> {
    let c = repo.find_commit(id).map_err(|_| SourceError::NotFound {
        what: format!("commit {id}"),
    })?;
    let author = c
        .author()
        .map_err(|e| backend(format!("cannot decode commit {id}"), e))?;
    let name = author.name.to_string().trim().to_owned();
    let email = author.email.to_string().trim().to_owned();
    let seconds = author.seconds();
    let message = c
        .message()
        .map(|m| m.summary().to_string())
        .unwrap_or_default();
    Ok(CommitInfo {
        id: id.to_string(),
        author: name,
        email,
        time: DateTime::from_timestamp(seconds, 0).unwrap_or_default(),
        message,
    })
}
