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
use driftguard_core::render::RenderError;

use crate::render::{join_relative, RenderInput, Rendered, Renderer};
use crate::tree::kustomize::{self, KustomizeLimits};
use crate::tree::select::{
    extend_set, kustomization_path, parse_bytes, plan, too_large, FileObjects, Filter,
};
use driftguard_core::limits::Limits;

/// Memory for delta bases while reading blobs (per reading thread).
const DELTA_BASE_CACHE_BYTES: usize = 32 * 1024 * 1024;

/// How many commits a history walk looks at, at most.
const MAX_HISTORY_WALK: usize = 2_000;

/// How many renderings of earlier revisions one history walk runs, at most (renderings
/// already kept are free).
const MAX_HISTORY_RENDERS: usize = 10;

/// How many renderings of earlier revisions are kept for history (besides those of the last
/// two loads).
const OLD_RENDERS_KEPT: usize = 32;

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
    /// Renderings of the environment (a chart, a command) by the key of their inputs, with
    /// the generation that last used them.
    renders: HashMap<u64, (u64, Arc<Rendered>)>,
    /// Renderings of earlier revisions made for history, with when they were last used.
    old_renders: HashMap<u64, (u64, Arc<Rendered>)>,
    /// The clock of `old_renders`.
    old_tick: u64,
    /// The newest commit that changed the rendering's inputs, by commit (`None`: not found
    /// within [`MAX_HISTORY_WALK`] commits).
    inputs_commits: HashMap<ObjectId, (u64, Option<ObjectId>)>,
}

/// The inputs of a rendering at one commit, found from the tree alone (no blob is read).
#[derive(Debug, Clone)]
struct Inputs {
    /// Their key: equal keys, equal inputs (a tree diff restricted to the inputs).
    key: u64,
    /// The root tree.
    root: ObjectId,
    /// The environment's folder, if the commit has it.
    folder: Option<ObjectId>,
    /// Value files that exist: path from the root, blob.
    values: Vec<(String, ObjectId)>,
    /// Value files that do not (paths from the root).
    missing: Vec<String>,
}

/// How a [`Reader`] reads besides its folder.
#[derive(Debug, Default)]
pub(crate) struct ReaderOptions {
    /// The binary rendering kustomizations.
    pub kustomize_bin: Option<PathBuf>,
    /// The helm binary for kustomizations inflating Helm charts.
    pub helm_bin: Option<PathBuf>,
    /// How long a kustomization's rendering may run and how much it may print.
    pub kustomize_limits: KustomizeLimits,
    /// How the environment is rendered, if it is.
    pub render: Option<Renderer>,
    /// Threads parsing files (0: one per core, at most 8).
    pub parse_threads: usize,
    /// What one file may cost.
    pub limits: Limits,
}

/// Reads one repository for one environment.
#[derive(Debug)]
pub(crate) struct Reader {
    repo: gix::ThreadSafeRepository,
    pub filter: Filter,
    kustomize_bin: Option<PathBuf>,
    /// The helm binary for kustomizations inflating Helm charts.
    helm_bin: Option<PathBuf>,
    /// How long a kustomization's rendering may run and how much it may print.
    kustomize_limits: KustomizeLimits,
    /// How the environment is rendered, if it is (a chart, a command), instead of reading
    /// its files.
    render: Option<Renderer>,
    /// Threads parsing files when many changed (0: one per core, at most 8).
    parse_threads: usize,
    /// What one file may cost.
    limits: Limits,
    caches: Mutex<Caches>,
    /// Blobs parsed so far (cache misses).
    pub parsed_count: AtomicU64,
    /// Renderings run so far (cache misses).
    pub render_count: AtomicU64,
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
    pub fn open(path: &Path, filter: Filter, options: ReaderOptions) -> Result<Self, SourceError> {
        let repo = gix::open(path)
            .map_err(|e| backend(format!("cannot open repository {}", path.display()), e))?;
        Ok(Reader {
            repo: repo.into_sync(),
            filter,
            kustomize_bin: options.kustomize_bin,
            helm_bin: options.helm_bin,
            kustomize_limits: options.kustomize_limits,
            render: options.render,
            parse_threads: options.parse_threads,
            limits: options.limits,
            caches: Mutex::new(Caches::default()),
            parsed_count: AtomicU64::new(0),
            render_count: AtomicU64::new(0),
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
            self.forget_unused();
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
        self.forget_unused();
        Ok(set)
    }

    /// Forgets what the last two loads did not use.
    fn forget_unused(&self) {
        let mut c = self.caches();
        let keep = c.generation.saturating_sub(1);
        c.parsed.retain(|_, (g, _)| *g >= keep);
        c.rendered.retain(|_, (g, _)| *g >= keep);
        c.renders.retain(|_, (g, _)| *g >= keep);
        c.inputs_commits.retain(|_, (g, _)| *g >= keep);
    }

    /// The desired objects at `commit` as `renderer` renders them: reused while the inputs
    /// are unchanged.
    fn load_rendered(
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
    /// for a command) and the value files. No blob is read.
    fn inputs(
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
    fn rendering(
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
    fn kept_rendering(&self, key: u64, old: bool) -> Option<Arc<Rendered>> {
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
}

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

/// The tree at `path` (a folder, relative to the root) in `root`, if there is one.
fn tree_at(
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

/// Writes the whole tree into a temporary folder (to run kustomize or a command on it).
fn materialize(
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
fn write_tree(
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
fn write_blob(
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
