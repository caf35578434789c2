//! The desired set of a commit read from its manifest files: the blobs below the
//! environment's folder, parsed once per blob id (on several threads when many changed), and
//! its kustomizations rendered once per root tree. An environment with a renderer is rendered
//! instead (`rendered`).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use gix::ObjectId;

use driftguard_core::limits::Limits;
use driftguard_core::manifest::ManifestError;
use driftguard_core::model::Revision;
use driftguard_core::ports::{DesiredSet, SourceError};

use super::objects::{backend, blob_at, root_tree, walk_tree};
use super::reader::Reader;
use super::refs::commit_info;
use super::worktree::materialize;
use crate::tree::kustomize;
use crate::tree::select::{
    extend_set, kustomization_path, parse_bytes, plan, too_large, FileObjects,
};

/// Memory for delta bases while reading blobs (per reading thread).
const DELTA_BASE_CACHE_BYTES: usize = 32 * 1024 * 1024;

/// Files parsed by one thread.
type Parsed = Vec<(ObjectId, Arc<FileObjects>)>;

impl Reader {
    /// A handle for reading many blobs once each: no object cache (each blob is read once, a
    /// copy into a cache is wasted work), a delta-base cache large enough for the long delta
    /// chains of a pack of similar manifests.
    fn blob_reader(&self) -> gix::Repository {
        let mut repo = self.repo.to_thread_local();
        repo.object_cache_size(None);
        repo.objects.set_pack_cache(|| {
            Box::new(gix::odb::pack::cache::lru::MemoryCappedHashmap::new(
                DELTA_BASE_CACHE_BYTES,
            ))
        });
        repo
    }

    /// Every blob below the environment's folder at `tree`, with its path from the root.
    pub(super) fn walk(
        &self,
        repo: &gix::Repository,
        tree: ObjectId,
    ) -> Result<Vec<(String, ObjectId)>, SourceError> {
        let mut tree_id = tree;
        let prefix = self.filter.prefix.clone();
        if !prefix.is_empty() {
            for component in prefix.split('/') {
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
                    None => return Ok(Vec::new()),
                }
            }
        }
        let mut out = Vec::new();
        walk_tree(repo, tree_id, &prefix, &mut out)?;
        Ok(out)
    }

    pub(super) fn parsed(
        &self,
        repo: &gix::Repository,
        path: &str,
        blob: ObjectId,
    ) -> Result<Arc<FileObjects>, SourceError> {
        {
            let mut c = self.caches();
            let generation = c.generation;
            if let Some((g, p)) = c.parsed.get_mut(&blob) {
                *g = generation;
                return Ok(Arc::clone(p));
            }
        }
        let parsed = Arc::new(read_blob(repo, path, blob, &self.limits)?);
        self.parsed_count.fetch_add(1, Ordering::Relaxed);
        let mut c = self.caches();
        let generation = c.generation;
        c.parsed.insert(blob, (generation, Arc::clone(&parsed)));
        Ok(parsed)
    }

    /// The parsed objects of every file, in order: cached ones are reused, the others are read
    /// and parsed (on several threads when there are many).
    fn parse_all(
        &self,
        repo: &gix::Repository,
        files: &[(String, ObjectId)],
    ) -> Result<Vec<Arc<FileObjects>>, SourceError> {
        let mut out: Vec<Option<Arc<FileObjects>>> = Vec::with_capacity(files.len());
        let mut missing: Vec<(&str, ObjectId)> = Vec::new();
        {
            let mut c = self.caches();
            let generation = c.generation;
            let mut seen = gix::hashtable::HashSet::default();
            for (path, blob) in files {
                match c.parsed.get_mut(blob) {
                    Some((g, p)) => {
                        *g = generation;
                        out.push(Some(Arc::clone(p)));
                    }
                    None => {
                        if seen.insert(*blob) {
                            missing.push((path.as_str(), *blob));
                        }
                        out.push(None);
                    }
                }
            }
        }
        let threads = match self.parse_threads {
            0 => std::thread::available_parallelism()
                .map_or(1, std::num::NonZeroUsize::get)
                .min(8),
            n => n,
        };
        let parsed: Parsed = if missing.is_empty() {
            Vec::new()
        } else if missing.len() < 64 {
            read_and_parse(repo, missing.iter(), &self.limits)?
        } else if threads < 2 {
            read_and_parse(&self.blob_reader(), missing.iter(), &self.limits)?
        } else {
            // contiguous runs of files: neighbours in the tree tend to share delta bases
            let per_thread = missing.len().div_ceil(threads);
            let results: Vec<Result<Parsed, SourceError>> = std::thread::scope(|scope| {
                let handles: Vec<_> = missing
                    .chunks(per_thread)
                    .map(|files| {
                        scope.spawn(move || {
                            read_and_parse(&self.blob_reader(), files.iter(), &self.limits)
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            Err(backend(
                                "cannot parse files",
                                std::io::Error::other("a parser thread panicked"),
                            ))
                        })
                    })
                    .collect()
            });
            let mut all = Vec::with_capacity(missing.len());
            for r in results {
                all.extend(r?);
            }
            all
        };
        if parsed.is_empty() {
            return Ok(out.into_iter().flatten().collect());
        }
        self.parsed_count
            .fetch_add(parsed.len() as u64, Ordering::Relaxed);
        let mut c = self.caches();
        let generation = c.generation;
        for (blob, p) in parsed {
            c.parsed.insert(blob, (generation, p));
        }
        out.into_iter()
            .zip(files)
            .map(|(o, (path, blob))| match o {
                Some(p) => Ok(p),
                None => c
                    .parsed
                    .get(blob)
                    .map(|(_, p)| Arc::clone(p))
                    .ok_or_else(|| {
                        backend(
                            format!("cannot read {path}"),
                            std::io::Error::other("parsed file missing from the cache"),
                        )
                    }),
            })
            .collect()
    }

    /// Renders the kustomization in `dir` as of `root` (cached by root tree).
    pub(super) fn rendered(
        &self,
        repo: &gix::Repository,
        root: ObjectId,
        dir: &str,
        checkout: &mut Option<tempfile::TempDir>,
    ) -> Arc<FileObjects> {
        let key = (root, dir.to_owned());
        {
            let mut c = self.caches();
            let generation = c.generation;
            if let Some((g, p)) = c.rendered.get_mut(&key) {
                *g = generation;
                return Arc::clone(p);
            }
        }
        let file = kustomization_file(repo, root, dir);
        let bin = kustomize::find_binary(self.kustomize_bin.as_deref());
        if bin.is_some() && checkout.is_none() {
            match materialize(repo, root, "driftguard-kustomize-") {
                Ok(t) => *checkout = Some(t),
                Err(e) => {
                    return Arc::new(FileObjects {
                        errors: vec![ManifestError {
                            file,
                            line: 1,
                            field: None,
                            message: format!("cannot write the tree to render it: {e}"),
                        }],
                        ..FileObjects::default()
                    })
                }
            }
        }
        let base = checkout
            .as_ref()
            .map(|t| t.path().to_path_buf())
            .unwrap_or_default();
        let text = blob_at(repo, root, &file)
            .ok()
            .flatten()
            .and_then(|b| repo.find_blob(b).ok())
            .map(|b| String::from_utf8_lossy(&b.data).into_owned());
        let result = kustomize::render_folder(
            bin.as_deref(),
            &base.join(dir),
            &file,
            text.as_deref(),
            self.helm_bin.as_deref(),
            self.kustomize_limits,
        );
        let result = Arc::new(result);
        let mut c = self.caches();
        let generation = c.generation;
        c.rendered.insert(key, (generation, Arc::clone(&result)));
        result
    }

    /// The desired objects at `commit`. Files whose blob was parsed before are not parsed again.
    pub fn load(&self, commit: ObjectId) -> Result<DesiredSet, SourceError> {
        let repo = self.local();
        let revision = Revision {
            id: commit.to_string(),
            commit: Some(commit_info(&repo, commit)?),
        };
        let root = root_tree(&repo, commit)?;
        {
            let mut c = self.caches();
            c.generation += 1;
        }
        if let Some(renderer) = &self.render {
            let set = self.load_rendered(&repo, renderer, commit, root, revision);
            self.caches().forget_unused();
            return set;
        }
        let entries = self.walk(&repo, root)?;
        let plan = plan(&self.filter, entries);
        let rev = revision.id.as_str();
        let mut set = DesiredSet {
            revision: Some(revision.clone()),
            notes: plan.notes,
            ..DesiredSet::default()
        };
        let parsed = self.parse_all(&repo, &plan.files)?;
        set.objects
            .reserve(parsed.iter().map(|p| p.objects.len()).sum::<usize>());
        for ((path, _), parsed) in plan.files.iter().zip(&parsed) {
            extend_set(&mut set, parsed, path, rev);
        }
        let mut checkout = None;
        for dir in &plan.kustomizations {
            let parsed = self.rendered(&repo, root, dir, &mut checkout);
            let file = kustomization_file(&repo, root, dir);
            extend_set(&mut set, &parsed, &file, rev);
            set.notes.push(format!(
                "kustomization {} rendered",
                if dir.is_empty() { "." } else { dir }
            ));
        }
        self.caches().forget_unused();
        Ok(set)
    }
}

/// Reads and parses one blob; a blob over the size limit is not read (its header says how
/// large it is) and is the file's error.
fn read_blob(
    repo: &gix::Repository,
    path: &str,
    blob: ObjectId,
    limits: &Limits,
) -> Result<FileObjects, SourceError> {
    let header = repo
        .find_header(blob)
        .map_err(|e| backend(format!("cannot read {path}"), e))?;
    if let Err(e) = limits.check_manifest(path, header.size()) {
        return Ok(too_large(e));
    }
    let data = repo
        .find_blob(blob)
        .map_err(|e| backend(format!("cannot read {path}"), e))?;
    Ok(parse_bytes(path, &data.data))
}

/// Reads and parses blobs.
fn read_and_parse<'a>(
    repo: &gix::Repository,
    files: impl Iterator<Item = &'a (&'a str, ObjectId)>,
    limits: &Limits,
) -> Result<Parsed, SourceError> {
    let mut out = Vec::new();
    for (path, blob) in files {
        out.push((*blob, Arc::new(read_blob(repo, path, *blob, limits)?)));
    }
    Ok(out)
}

/// The kustomization file's path in `dir` (for provenance and errors).
pub(super) fn kustomization_file(repo: &gix::Repository, root: ObjectId, dir: &str) -> String {
    kustomization_path(dir, |path| matches!(blob_at(repo, root, path), Ok(Some(_))))
}
