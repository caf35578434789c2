//! Reading a revision's trees from the object database: a commit's root tree, the tree or
//! the blob at a path, every blob below a tree; and [`backend`], the error of a failed read.

use gix::ObjectId;

use driftguard_core::ports::SourceError;

pub(super) fn backend(
    context: impl Into<String>,
    e: impl std::error::Error + Send + Sync + 'static,
) -> SourceError {
    SourceError::Backend {
        context: context.into(),
        source: Box::new(e),
    }
}

pub(super) fn root_tree(repo: &gix::Repository, commit: ObjectId) -> Result<ObjectId, SourceError> {
    let c = repo
        .find_commit(commit)
        .map_err(|_| SourceError::NotFound {
            what: format!("commit {commit}"),
        })?;
    c.tree_id()
        .map(|t| t.detach())
        .map_err(|e| backend(format!("cannot decode commit {commit}"), e))
}

/// The tree at `path` (a folder, relative to the root) in `root`, if there is one.
pub(super) fn tree_at(
    repo: &gix::Repository,
    root: ObjectId,
    path: &str,
) -> Result<Option<ObjectId>, SourceError> {
    let mut tree_id = root;
    for component in path.split('/').filter(|c| !c.is_empty()) {
        let t = repo
            .find_tree(tree_id)
            .map_err(|e| backend("cannot read tree", e))?;
        let entry = t
            .decode()
            .map_err(|e| backend("cannot decode tree", e))?
            .entries
            .iter()
            .find(|e| e.filename == component && e.mode.is_tree())
            .map(|e| e.oid.to_owned());
        match entry {
            Some(id) => tree_id = id,
            None => return Ok(None),
        }
    }
    Ok(Some(tree_id))
}

pub(super) fn walk_tree(
    repo: &gix::Repository,
    tree: ObjectId,
    prefix: &str,
    out: &mut Vec<(String, ObjectId)>,
) -> Result<(), SourceError> {
    let t = repo
        .find_tree(tree)
        .map_err(|e| backend("cannot read tree", e))?;
    let decoded = t.decode().map_err(|e| backend("cannot decode tree", e))?;
    for e in &decoded.entries {
        let name = String::from_utf8_lossy(e.filename);
        let mut path = String::with_capacity(prefix.len() + 1 + name.len());
        if !prefix.is_empty() {
            path.push_str(prefix);
            path.push('/');
        }
        path.push_str(&name);
        if e.mode.is_tree() {
            walk_tree(repo, e.oid.to_owned(), &path, out)?;
        } else if e.mode.is_blob() {
            out.push((path, e.oid.to_owned()));
        }
    }
    Ok(())
}

/// The blob at `path` in `root`, if there is one.
/// The blob or tree at `path` (from the root tree `root`; `None`: nothing there).
pub(super) fn entry_at(
    repo: &gix::Repository,
    root: ObjectId,
    path: &str,
) -> Result<Option<ObjectId>, SourceError> {
    let mut tree_id = root;
    let mut parts = path.split('/').filter(|p| !p.is_empty()).peekable();
    while let Some(part) = parts.next() {
        let t = repo
            .find_tree(tree_id)
            .map_err(|e| backend("cannot read tree", e))?;
        let decoded = t.decode().map_err(|e| backend("cannot decode tree", e))?;
        let Some(e) = decoded.entries.iter().find(|e| e.filename == part) else {
            return Ok(None);
        };
        if parts.peek().is_none() {
            return Ok(Some(e.oid.to_owned()));
        }
        if !e.mode.is_tree() {
            return Ok(None);
        }
        tree_id = e.oid.to_owned();
    }
    Ok(None)
}

pub(super) fn blob_at(
    repo: &gix::Repository,
    root: ObjectId,
    path: &str,
) -> Result<Option<ObjectId>, SourceError> {
    let mut tree_id = root;
    let mut parts = path.split('/').peekable();
    while let Some(part) = parts.next() {
        let t = repo
            .find_tree(tree_id)
            .map_err(|e| backend("cannot read tree", e))?;
        let decoded = t.decode().map_err(|e| backend("cannot decode tree", e))?;
        let Some(e) = decoded.entries.iter().find(|e| e.filename == part) else {
            return Ok(None);
        };
        if parts.peek().is_none() {
            return Ok(e.mode.is_blob().then(|| e.oid.to_owned()));
        }
        if !e.mode.is_tree() {
            return Ok(None);
        }
        tree_id = e.oid.to_owned();
    }
    Ok(None)
}
