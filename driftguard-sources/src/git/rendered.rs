//! An environment rendered instead of read (a Helm chart, a command): the inputs of a
//! rendering found from the tree alone, keyed by their tree and blob ids; renderings kept by
//! that key (those of earlier revisions apart, for history); the newest commit that changed
//! the inputs.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use gix::ObjectId;

use driftguard_core::model::Revision;
use driftguard_core::ports::{DesiredSet, SourceError};
use driftguard_core::render::RenderError;

use super::objects::{backend, blob_at, root_tree, tree_at};
use super::reader::{Reader, MAX_HISTORY_WALK};
use super::worktree::{write_blob, write_tree};
use crate::render::{join_relative, RenderInput, Rendered, Renderer};

/// How many renderings of earlier revisions are kept for history (besides those of the last
/// two loads).
const OLD_RENDERS_KEPT: usize = 32;

/// The inputs of a rendering at one commit, found from the tree alone (no blob is read).
#[derive(Debug, Clone)]
pub(super) struct Inputs {
    /// Their key: equal keys, equal inputs (a tree diff restricted to the inputs, and the
    /// renderer's options).
    pub(super) key: u64,
    /// The root tree.
    pub(super) root: ObjectId,
    /// The environment's folder, if the commit has it.
    pub(super) folder: Option<ObjectId>,
    /// Value files that exist: path from the root, blob.
    pub(super) values: Vec<(String, ObjectId)>,
    /// Value files that do not (paths from the root).
    pub(super) missing: Vec<String>,
}

impl Reader {
    /// The desired objects at `commit` as `renderer` renders them: reused while the inputs
    /// are unchanged.
    pub(super) fn load_rendered(
        &self,
        repo: &gix::Repository,
        renderer: &Renderer,
        commit: ObjectId,
        root: ObjectId,
        revision: Revision,
    ) -> Result<DesiredSet, SourceError> {
        let inputs = self.inputs(repo, renderer, root)?;
        let rendered = self.rendering(repo, renderer, commit, &inputs, false)?;
        let since = self.inputs_commit(repo, renderer, commit, inputs.key)?;
        let mut set = DesiredSet {
            revision: Some(revision.clone()),
            ..DesiredSet::default()
        };
        let since = since.map(|c| c.to_string());
        rendered.extend_set(&mut set, &revision.id, since.as_deref());
        Ok(set)
    }

    /// The inputs of `renderer` in the tree `root`: the environment's folder (the whole tree
    /// for a command or a kustomization), the value files and the renderer's options. No blob
    /// is read.
    pub(super) fn inputs(
        &self,
        repo: &gix::Repository,
        renderer: &Renderer,
        root: ObjectId,
    ) -> Result<Inputs, SourceError> {
        let prefix = &self.filter.prefix;
        let folder = if prefix.is_empty() {
            Some(root)
        } else {
            tree_at(repo, root, prefix)?
        };
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        renderer.hash_into(&mut h);
        match (renderer.reads_whole_tree(), folder) {
            (true, _) => h.update(root.as_bytes()),
            (false, Some(f)) => h.update(f.as_bytes()),
            (false, None) => h.update(b"\0no folder"),
        }
        let mut values = Vec::new();
        let mut missing = Vec::new();
        for f in renderer.value_files() {
            let path = join_relative(prefix, f).ok_or_else(|| RenderError::Input {
                what: format!("value file {f}"),
                problem: "is not a file of the repository".into(),
            })?;
            h.update(path.as_bytes());
            match blob_at(repo, root, &path)? {
                Some(b) => {
                    h.update(b.as_bytes());
                    values.push((path, b));
                }
                None => {
                    h.update(b"\0missing");
                    missing.push(path);
                }
            }
        }
        Ok(Inputs {
            key: h.digest(),
            root,
            folder,
            values,
            missing,
        })
    }

    /// The rendering of `inputs` (found at `commit`): kept, or run now. `old`: for history
    /// (kept apart from the loads' renderings, at most [`OLD_RENDERS_KEPT`]).
    pub(super) fn rendering(
        &self,
        repo: &gix::Repository,
        renderer: &Renderer,
        commit: ObjectId,
        inputs: &Inputs,
        old: bool,
    ) -> Result<Arc<Rendered>, SourceError> {
        if let Some(r) = self.kept_rendering(inputs.key, old) {
            return Ok(r);
        }
        let prefix = self.filter.prefix.as_str();
        let short = &commit.to_string()[..12];
        let Some(folder) = inputs.folder else {
            return Err(RenderError::Input {
                what: format!("folder {}", crate::render::folder_label(prefix)),
                problem: format!("does not exist at commit {short}"),
            }
            .into());
        };
        if let Some(m) = inputs.missing.first() {
            if !renderer.ignore_missing_value_files() {
                return Err(RenderError::Input {
                    what: format!("value file {m}"),
                    problem: format!(
                        "does not exist at commit {short} (ignoreMissingValueFiles leaves it out)"
                    ),
                }
                .into());
            }
        }
        let tempdir = |prefix: &str| {
            tempfile::Builder::new()
                .prefix(prefix)
                .tempdir()
                .map_err(|source| RenderError::Prepare {
                    folder: std::env::temp_dir().display().to_string(),
                    source,
                })
        };
        let work = tempdir("driftguard-render-")?;
        let scratch = tempdir("driftguard-render-scratch-")?;
        let prepare = |source| RenderError::Prepare {
            folder: work.path().display().to_string(),
            source,
        };
        if renderer.reads_whole_tree() {
            write_tree(repo, inputs.root, "", work.path()).map_err(prepare)?;
        } else {
            write_tree(repo, folder, prefix, work.path()).map_err(prepare)?;
            for (path, blob) in &inputs.values {
                write_blob(repo, *blob, &work.path().join(path), false).map_err(prepare)?;
            }
        }
        let dir = if prefix.is_empty() {
            work.path().to_path_buf()
        } else {
            work.path().join(prefix)
        };
        let revision = commit.to_string();
        let input = RenderInput {
            dir: &dir,
            rel: prefix,
            value_files: inputs
                .values
                .iter()
                .map(|(p, _)| (p.clone(), work.path().join(p)))
                .collect(),
            missing_value_files: inputs.missing.clone(),
            revision: Some(&revision),
            scratch: scratch.path(),
            filter: &self.filter,
            editable: true,
        };
        let rendered = Arc::new(renderer.render(&input)?);
        self.render_count.fetch_add(1, Ordering::Relaxed);
        let mut c = self.caches();
        if old {
            c.old_tick += 1;
            let tick = c.old_tick;
            c.old_renders
                .insert(inputs.key, (tick, Arc::clone(&rendered)));
            if c.old_renders.len() > OLD_RENDERS_KEPT {
                let oldest = c
                    .old_renders
                    .iter()
                    .min_by_key(|(_, (t, _))| *t)
                    .map(|(k, _)| *k);
                if let Some(k) = oldest {
                    c.old_renders.remove(&k);
                }
            }
        } else {
            let generation = c.generation;
            c.renders
                .insert(inputs.key, (generation, Arc::clone(&rendered)));
        }
        Ok(rendered)
    }

    /// A rendering kept for inputs `key`, if there is one (marked used).
    pub(super) fn kept_rendering(&self, key: u64, old: bool) -> Option<Arc<Rendered>> {
        let mut c = self.caches();
        let generation = c.generation;
        if let Some((g, r)) = c.renders.get_mut(&key) {
            if !old {
                *g = generation;
            }
            return Some(Arc::clone(r));
        }
        c.old_tick += 1;
        let tick = c.old_tick;
        let (t, r) = c.old_renders.get_mut(&key)?;
        *t = tick;
        let r = Arc::clone(r);
        if !old {
            c.renders.insert(key, (generation, Arc::clone(&r)));
        }
        Some(r)
    }

    /// The newest commit that changed an input of the rendering, following first parents
    /// from `commit` (whose inputs' key is `key`): the oldest commit of the run with the same
    /// inputs. `None` past [`MAX_HISTORY_WALK`] commits.
    fn inputs_commit(
        &self,
        repo: &gix::Repository,
        renderer: &Renderer,
        commit: ObjectId,
        key: u64,
    ) -> Result<Option<ObjectId>, SourceError> {
        let generation = {
            let mut c = self.caches();
            let generation = c.generation;
            if let Some((g, since)) = c.inputs_commits.get_mut(&commit) {
                *g = generation;
                return Ok(*since);
            }
            generation
        };
        let parent_of = |c: ObjectId| -> Result<Option<ObjectId>, SourceError> {
            let commit = repo
                .find_commit(c)
                .map_err(|e| backend(format!("cannot read commit {c}"), e))?;
            let parent = commit.parent_ids().next().map(|p| p.detach());
            Ok(parent)
        };
        let mut last = commit;
        let mut current = parent_of(commit)?;
        let mut walked = 0;
        let since = loop {
            let Some(c) = current else {
                break Some(last);
            };
            walked += 1;
            if walked > MAX_HISTORY_WALK {
                break None;
            }
            let inputs = self.inputs(repo, renderer, root_tree(repo, c)?)?;
            if inputs.key != key {
                break Some(last);
            }
            // an earlier load walked from here already
            let known = self.caches().inputs_commits.get(&c).map(|(_, s)| *s);
            if let Some(since) = known {
                break since;
            }
            last = c;
            current = parent_of(c)?;
        };
        self.caches()
            .inputs_commits
            .insert(commit, (generation, since));
        Ok(since)
    }
}
