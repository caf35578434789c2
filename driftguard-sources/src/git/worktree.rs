//! A revision's tree written into a folder, for the tools that need files (kustomize, a
//! renderer, Terraform): executables with their mode, never a `.git` entry, no symbolic link.

use std::path::Path;

use gix::ObjectId;

use driftguard_core::ports::SourceError;

use super::objects::{backend, root_tree};
use super::reader::Reader;

impl Reader {
    /// Writes the whole tree of `commit` into the folder `target` (created; it must not
    /// exist), executables with their mode: a working copy of the revision, for tools that
    /// need one (Terraform).
    pub fn export(&self, commit: ObjectId, target: &Path) -> Result<(), SourceError> {
        let repo = self.local();
        let root = root_tree(&repo, commit)?;
        std::fs::create_dir_all(target)
            .map_err(|e| backend(format!("cannot create {}", target.display()), e))?;
        write_tree(&repo, root, "", target).map_err(|e| {
            backend(
                format!("cannot write the tree into {}", target.display()),
                e,
            )
        })
    }
}

/// Writes the whole tree into a temporary folder (to run kustomize or a command on it).
pub(super) fn materialize(
    repo: &gix::Repository,
    root: ObjectId,
    prefix: &str,
) -> std::io::Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new().prefix(prefix).tempdir()?;
    write_tree(repo, root, "", dir.path())?;
    Ok(dir)
}

/// Writes the files of `tree` into `target` at `path` (relative to the root), executables
/// with their mode (a command renderer may run a script of the repository). Like a `git`
/// checkout it never writes a `.git` entry (a hostile tree's `.git/config` would configure
/// every `git` run in the folder) and writes symbolic links not at all: every write lands in
/// a folder this function made, inside `target`.
pub(super) fn write_tree(
    repo: &gix::Repository,
    tree: ObjectId,
    path: &str,
    target: &Path,
) -> std::io::Result<()> {
    let t = repo.find_tree(tree).map_err(std::io::Error::other)?;
    let decoded = t.decode().map_err(std::io::Error::other)?;
    for e in &decoded.entries {
        let name = String::from_utf8_lossy(e.filename);
        if name.is_empty()
            || name == "."
            || name == ".."
            || name.contains('/')
            || name.eq_ignore_ascii_case(".git")
        {
            continue;
        }
        let child = if path.is_empty() {
            name.into_owned()
        } else {
            format!("{path}/{name}")
        };
        if e.mode.is_tree() {
            write_tree(repo, e.oid.to_owned(), &child, target)?;
        } else if e.mode.is_blob() {
            write_blob(
                repo,
                e.oid.to_owned(),
                &target.join(&child),
                e.mode.is_executable(),
            )?;
        }
    }
    Ok(())
}

/// Writes one blob to `file` (creating its folder).
pub(super) fn write_blob(
    repo: &gix::Repository,
    blob: ObjectId,
    file: &Path,
    executable: bool,
) -> std::io::Result<()> {
    let data = repo.find_blob(blob).map_err(std::io::Error::other)?;
    if let Some(parent) = file.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(file, &data.data)?;
    #[cfg(unix)]
    if executable {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o755))?;
    }
    #[cfg(not(unix))]
    let _ = executable;
    Ok(())
}
