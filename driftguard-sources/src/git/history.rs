//! The history of one object: its versions, newest first, following first parents, read from
//! the files of each commit or, for a rendered environment, from the renderings of the
//! revisions whose inputs changed; and the newest commit that changed one file.

use gix::ObjectId;

use driftguard_core::id::ResourceId;
use driftguard_core::model::{CommitInfo, Provenance, RawObject};
use driftguard_core::ports::{ObjectVersion, SourceError};

use super::manifests::kustomization_file;
use super::objects::{backend, blob_at, entry_at, root_tree};
use super::reader::{Reader, MAX_HISTORY_WALK};
use super::refs::commit_info;
use crate::render::Renderer;
use crate::tree::select::plan;

/// How many renderings of earlier revisions one history walk runs, at most (renderings
/// already kept are free).
const MAX_HISTORY_RENDERS: usize = 10;

/// Where an object was found at one commit.
struct Located {
    object: RawObject,
    file: String,
    /// The blob it was read from (`None` when rendered by kustomize).
    blob: Option<ObjectId>,
}

impl Reader {
    /// The versions of one object, newest first, following first parents from `tip`.
    ///
    /// A version is the object as a commit left it (`None` when the commit deleted it); commits
    /// that did not change the object are skipped. The walk stops at the commit that created the
    /// object, after `limit` versions, or after [`MAX_HISTORY_WALK`] commits.
    pub fn history(
        &self,
        tip: ObjectId,
        id: &ResourceId,
        limit: usize,
    ) -> Result<Vec<ObjectVersion>, SourceError> {
        if let Some(renderer) = &self.render {
            return self.history_rendered(renderer, tip, id, limit);
        }
        let repo = self.local();
        let mut versions = Vec::new();
        if limit == 0 {
            return Ok(versions);
        }
        let mut hint: Option<(String, Option<ObjectId>)> = None;
        // the newer commit and the object as it left it
        let mut newer: Option<(ObjectId, Option<RawObject>)> = None;
        let mut current = Some(tip);
        let mut walked = 0;
        while let Some(c) = current {
            walked += 1;
            if walked > MAX_HISTORY_WALK {
                break;
            }
            let commit = repo
                .find_commit(c)
                .map_err(|e| backend(format!("cannot read commit {c}"), e))?;
            let parent = commit.parent_ids().next().map(|p| p.detach());
            // unchanged file: unchanged object
            let mut state: Option<Option<RawObject>> = None;
            if let (Some((path, Some(blob))), Some((_, obj))) = (&hint, &newer) {
                let root = root_tree(&repo, c)?;
                if blob_at(&repo, root, path)? == Some(*blob) {
                    state = Some(obj.clone());
                }
            }
            let state = match state {
                Some(s) => s,
                None => {
                    let found =
                        self.locate(&repo, c, id, hint.as_ref().map(|(p, _)| p.as_str()))?;
                    match found {
                        Some(l) => {
                            hint = Some((l.file, l.blob));
                            Some(l.object)
                        }
                        None => None,
                    }
                }
            };
            if let Some((newer_id, newer_obj)) = newer.take() {
                if newer_obj != state {
                    let created = newer_obj.is_some() && state.is_none();
                    versions.push(ObjectVersion {
                        commit: commit_info(&repo, newer_id)?,
                        object: newer_obj,
                    });
                    if versions.len() >= limit || created {
                        return Ok(versions);
                    }
                }
            }
            newer = Some((c, state));
            current = parent;
        }
        // the root commit created what it holds
        if let Some((root_id, Some(obj))) = newer {
            if walked <= MAX_HISTORY_WALK && versions.len() < limit {
                versions.push(ObjectVersion {
                    commit: commit_info(&repo, root_id)?,
                    object: Some(obj),
                });
            }
        }
        Ok(versions)
    }

    /// [`Reader::history`] of a rendered environment: the object as each revision renders
    /// it. Revisions whose inputs equal their parent's are not rendered; at most
    /// [`MAX_HISTORY_RENDERS`] renderings are run, and the walk stops at a revision that
    /// cannot be rendered (nothing is claimed of what it held).
    fn history_rendered(
        &self,
        renderer: &Renderer,
        tip: ObjectId,
        id: &ResourceId,
        limit: usize,
    ) -> Result<Vec<ObjectVersion>, SourceError> {
        let repo = self.local();
        let mut versions = Vec::new();
        if limit == 0 {
            return Ok(versions);
        }
        // the newer commit, its inputs' key and the object as it rendered it
        let mut newer: Option<(ObjectId, u64, Option<RawObject>)> = None;
        let mut current = Some(tip);
        let mut walked = 0;
        let mut renders_left = MAX_HISTORY_RENDERS;
        while let Some(c) = current {
            walked += 1;
            if walked > MAX_HISTORY_WALK {
                return Ok(versions);
            }
            let commit = repo
                .find_commit(c)
                .map_err(|e| backend(format!("cannot read commit {c}"), e))?;
            let parent = commit.parent_ids().next().map(|p| p.detach());
            let inputs = self.inputs(&repo, renderer, root_tree(&repo, c)?)?;
            let state = match &newer {
                Some((_, key, object)) if *key == inputs.key => object.clone(),
                _ if inputs.folder.is_none() => None,
                _ => {
                    let kept = self.kept_rendering(inputs.key, true);
                    let rendered = match kept {
                        Some(r) => r,
                        None if renders_left == 0 => return Ok(versions),
                        None => {
                            renders_left -= 1;
                            match self.rendering(&repo, renderer, c, &inputs, true) {
                                Ok(r) => r,
                                Err(_) => return Ok(versions),
                            }
                        }
                    };
                    let (exact, loose) = pick(&rendered.objects, id);
                    exact.or(loose)
                }
            };
            if let Some((newer_id, _, newer_obj)) = newer.take() {
                if newer_obj != state {
                    let created = newer_obj.is_some() && state.is_none();
                    versions.push(ObjectVersion {
                        commit: commit_info(&repo, newer_id)?,
                        object: newer_obj,
                    });
                    if versions.len() >= limit || created {
                        return Ok(versions);
                    }
                }
            }
            newer = Some((c, inputs.key, state));
            current = parent;
        }
        // the root commit created what it renders
        if let Some((root_id, _, Some(obj))) = newer {
            if versions.len() < limit {
                versions.push(ObjectVersion {
                    commit: commit_info(&repo, root_id)?,
                    object: Some(obj),
                });
            }
        }
        Ok(versions)
    }

    /// Finds one object at `commit`, looking in `hint` first. A manifest that names no
    /// namespace stands for the object in any namespace (the engine gives it the environment's
    /// default one), when no manifest names it exactly. One pass over the tree.
    fn locate(
        &self,
        repo: &gix::Repository,
        commit: ObjectId,
        id: &ResourceId,
        hint: Option<&str>,
    ) -> Result<Option<Located>, SourceError> {
        let root = root_tree(repo, commit)?;
        let mut fallback: Option<Located> = None;
        let mut look = |objects: &[(RawObject, Provenance)], file: &dyn Fn() -> String, blob| {
            let (exact, loose) = pick(objects, id);
            let located = |object| Located {
                object,
                file: file(),
                blob,
            };
            if fallback.is_none() {
                fallback = loose.map(located);
            }
            exact.map(located)
        };
        if let Some(h) = hint {
            if let Some(blob) = blob_at(repo, root, h)? {
                let parsed = self.parsed(repo, h, blob)?;
                if let Some(found) = look(&parsed.objects, &|| h.to_owned(), Some(blob)) {
                    return Ok(Some(found));
                }
            }
        }
        let plan = plan(&self.filter, self.walk(repo, root)?);
        for (path, blob) in &plan.files {
            let parsed = self.parsed(repo, path, *blob)?;
            if let Some(found) = look(&parsed.objects, &|| path.clone(), Some(*blob)) {
                return Ok(Some(found));
            }
        }
        let mut checkout = None;
        for dir in &plan.kustomizations {
            let parsed = self.rendered(repo, root, dir, &mut checkout);
            let file = || kustomization_file(repo, root, dir);
            if let Some(found) = look(&parsed.objects, &file, None) {
                return Ok(Some(found));
            }
        }
        Ok(fallback)
    }

    /// The newest commit that changed the file at `path` (from the root), following first
    /// parents from `tip`: the oldest commit of the run, ending at `tip`, in which the file
    /// has its blob at `tip`. `None` when the file is not at `tip`, or past
    /// [`MAX_HISTORY_WALK`] commits.
    pub fn last_change(
        &self,
        tip: ObjectId,
        path: &str,
    ) -> Result<Option<CommitInfo>, SourceError> {
        let repo = self.local();
        let Some(blob) = blob_at(&repo, root_tree(&repo, tip)?, path)? else {
            return Ok(None);
        };
        let mut last = tip;
        let mut current = tip;
        for _ in 0..MAX_HISTORY_WALK {
            let commit = repo
                .find_commit(current)
                .map_err(|e| backend(format!("cannot read commit {current}"), e))?;
            let Some(parent) = commit.parent_ids().next().map(|p| p.detach()) else {
                // the root commit made it
                return commit_info(&repo, last).map(Some);
            };
            if blob_at(&repo, root_tree(&repo, parent)?, path)? != Some(blob) {
                return commit_info(&repo, last).map(Some);
            }
            last = parent;
            current = parent;
        }
        Ok(None)
    }

    /// The newest commit that changed anything at `paths` (files or folders, from the root),
    /// following first parents from `tip`: the first commit, walking back, whose parent has
    /// another blob or tree at one of them. `None` when none of them is at `tip`, or past
    /// [`MAX_HISTORY_WALK`] commits.
    pub fn last_change_any(
        &self,
        tip: ObjectId,
        paths: &[String],
    ) -> Result<Option<CommitInfo>, SourceError> {
        let repo = self.local();
        let at = |commit: ObjectId| -> Result<Vec<Option<ObjectId>>, SourceError> {
            let root = root_tree(&repo, commit)?;
            paths.iter().map(|p| entry_at(&repo, root, p)).collect()
        };
        let mut current = tip;
        let mut entries = at(tip)?;
        if entries.iter().all(Option::is_none) {
            return Ok(None);
        }
        for _ in 0..MAX_HISTORY_WALK {
            let commit = repo
                .find_commit(current)
                .map_err(|e| backend(format!("cannot read commit {current}"), e))?;
            let Some(parent) = commit.parent_ids().next().map(|p| p.detach()) else {
                // the root commit made them
                return commit_info(&repo, current).map(Some);
            };
            let before = at(parent)?;
            if before != entries {
                return commit_info(&repo, current).map(Some);
            }
            entries = before;
            current = parent;
        }
        Ok(None)
    }
}

/// The first object naming `id` exactly, and the first naming it without a namespace (a
/// manifest that names none stands for the object in the environment's default namespace).
fn pick(
    objects: &[(RawObject, Provenance)],
    id: &ResourceId,
) -> (Option<RawObject>, Option<RawObject>) {
    let (mut exact, mut loose) = (None, None);
    for (o, _) in objects {
        let mut found = o.meta().id(&id.environment);
        if &found == id {
            exact = Some(o.clone());
            break;
        }
        if loose.is_none() && found.namespace.is_none() && id.namespace.is_some() {
            found.namespace.clone_from(&id.namespace);
            if &found == id {
                loose = Some(o.clone());
            }
        }
    }
    (exact, loose)
}
