//! Reading manifests, commits and object history straight from a repository's object
//! database with `gix` (no checkout).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::DateTime;
use gix::ObjectId;

use driftguard_core::id::ResourceId;
use driftguard_core::manifest::ManifestError;
use driftguard_core::model::{CommitInfo, Provenance, RawObject, Revision};
use driftguard_core::ports::{DesiredSet, ObjectVersion, SourceError};

use super::kustomize;
use super::select::{extend_set, kustomization_path, parse_bytes, plan, FileObjects, Filter};

/// Memory for delta bases while reading blobs (per reading thread).
const DELTA_BASE_CACHE_BYTES: usize = 32 * 1024 * 1024;

/// How many commits a history walk looks at, at most.
const MAX_HISTORY_WALK: usize = 2_000;

fn backend(
    context: impl Into<String>,
    e: impl std::error::Error + Send + Sync + 'static,
) -> SourceError {
    SourceError::Backend {
        context: context.into(),
        source: Box::new(e),
    }
}

/// Files parsed by one thread.
type Parsed = Vec<(ObjectId, Arc<FileObjects>)>;

/// Parsed files and rendered kustomizations, reused while their content is unchanged.
#[derive(Debug, Default)]
struct Caches {
    /// Generation of the last full load.
    generation: u64,
    /// Parsed files by blob id, with the generation that last used them.
    parsed: gix::hashtable::HashMap<ObjectId, (u64, Arc<FileObjects>)>,
    /// Rendered kustomizations by (root tree, folder).
    rendered: HashMap<(ObjectId, String), (u64, Arc<FileObjects>)>,
}

/// Reads one repository for one environment.
#[derive(Debug)]
pub(crate) struct Reader {
    repo: gix::ThreadSafeRepository,
    pub filter: Filter,
    kustomize_bin: Option<PathBuf>,
    /// Threads parsing files when many changed (0: one per core, at most 8).
    parse_threads: usize,
    caches: Mutex<Caches>,
    /// Blobs parsed so far (cache misses).
    pub parsed_count: AtomicU64,
}

/// Where an object was found at one commit.
struct Located {
    object: RawObject,
    file: String,
    /// The blob it was read from (`None` when rendered by kustomize).
    blob: Option<ObjectId>,
}

impl Reader {
    /// Opens the repository at `path` (bare or not).
    pub fn open(
        path: &Path,
        filter: Filter,
        kustomize_bin: Option<PathBuf>,
        parse_threads: usize,
    ) -> Result<Self, SourceError> {
        let repo = gix::open(path)
            .map_err(|e| backend(format!("cannot open repository {}", path.display()), e))?;
        Ok(Reader {
            repo: repo.into_sync(),
            filter,
            kustomize_bin,
            parse_threads,
            caches: Mutex::new(Caches::default()),
            parsed_count: AtomicU64::new(0),
        })
    }

    fn local(&self) -> gix::Repository {
        let mut repo = self.repo.to_thread_local();
        repo.object_cache_size_if_unset(4 * 1024 * 1024);
        repo
    }

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

    fn caches(&self) -> std::sync::MutexGuard<'_, Caches> {
        self.caches.lock().expect("cache lock is never poisoned")
    }

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

    /// Every blob below the environment's folder at `tree`, with its path from the root.
    fn walk(
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

    fn parsed(
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
        let data = repo
            .find_blob(blob)
            .map_err(|e| backend(format!("cannot read {path}"), e))?;
        let parsed = Arc::new(parse_bytes(path, &data.data));
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
            read_and_parse(repo, missing.iter())?
        } else if threads < 2 {
            read_and_parse(&self.blob_reader(), missing.iter())?
        } else {
            // contiguous runs of files: neighbours in the tree tend to share delta bases
            let per_thread = missing.len().div_ceil(threads);
            let results: Vec<Result<Parsed, SourceError>> = std::thread::scope(|scope| {
                let handles: Vec<_> = missing
                    .chunks(per_thread)
                    .map(|files| {
                        scope.spawn(move || read_and_parse(&self.blob_reader(), files.iter()))
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
    fn rendered(
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
        let fail = |message: String| FileObjects {
            objects: Vec::new(),
            errors: vec![ManifestError {
                file: file.clone(),
                line: 1,
                field: None,
                message,
            }],
        };
        let result = match kustomize::find_binary(self.kustomize_bin.as_deref()) {
            None => fail(kustomize::NO_BINARY.into()),
            Some(bin) => {
                if checkout.is_none() {
                    match materialize(repo, root) {
                        Ok(t) => *checkout = Some(t),
                        Err(e) => {
                            return Arc::new(fail(format!(
                                "cannot write the tree to render it: {e}"
                            )))
                        }
                    }
                }
                let base = checkout
                    .as_ref()
                    .map(|t| t.path().to_path_buf())
                    .unwrap_or_default();
                match kustomize::render(&bin, &base.join(dir)) {
                    Ok(text) => parse_bytes(&file, text.as_bytes()),
                    Err(message) => fail(message),
                }
            }
        };
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
        // forget what the last two loads did not use
        let mut c = self.caches();
        let keep = c.generation.saturating_sub(1);
        c.parsed.retain(|_, (g, _)| *g >= keep);
        c.rendered.retain(|_, (g, _)| *g >= keep);
        Ok(set)
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
        // the first object naming `id` exactly, and the first naming it without a namespace
        let pick = |objects: &[(RawObject, Provenance)]| {
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
        };
        let mut fallback: Option<Located> = None;
        let mut look = |objects: &[(RawObject, Provenance)], file: &dyn Fn() -> String, blob| {
            let (exact, loose) = pick(objects);
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
}

/// Reads and parses blobs.
fn read_and_parse<'a>(
    repo: &gix::Repository,
    files: impl Iterator<Item = &'a (&'a str, ObjectId)>,
) -> Result<Parsed, SourceError> {
    let mut out = Vec::new();
    for (path, blob) in files {
        let data = repo
            .find_blob(*blob)
            .map_err(|e| backend(format!("cannot read {path}"), e))?;
        out.push((*blob, Arc::new(parse_bytes(path, &data.data))));
    }
    Ok(out)
}

fn root_tree(repo: &gix::Repository, commit: ObjectId) -> Result<ObjectId, SourceError> {
    let c = repo
        .find_commit(commit)
        .map_err(|_| SourceError::NotFound {
            what: format!("commit {commit}"),
        })?;
    c.tree_id()
        .map(|t| t.detach())
        .map_err(|e| backend(format!("cannot decode commit {commit}"), e))
}

fn commit_info(repo: &gix::Repository, id: ObjectId) -> Result<CommitInfo, SourceError> {
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

fn walk_tree(
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
fn blob_at(
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

/// The kustomization file's path in `dir` (for provenance and errors).
fn kustomization_file(repo: &gix::Repository, root: ObjectId, dir: &str) -> String {
    kustomization_path(dir, |path| matches!(blob_at(repo, root, path), Ok(Some(_))))
}

/// Writes the whole tree into a temporary folder (to run kustomize on it).
fn materialize(repo: &gix::Repository, root: ObjectId) -> std::io::Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new()
        .prefix("driftguard-kustomize-")
        .tempdir()?;
    let mut files = Vec::new();
    walk_tree(repo, root, "", &mut files).map_err(std::io::Error::other)?;
    for (path, blob) in files {
        if path.split('/').any(|c| c == ".." || c.is_empty()) {
            continue;
        }
        let data = repo.find_blob(blob).map_err(std::io::Error::other)?;
        let target = dir.path().join(&path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(target, &data.data)?;
    }
    Ok(dir)
}
