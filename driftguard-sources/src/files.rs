//! File-based sources: a manifest folder that is not a Git repository (desired side, with the
//! same rules as the Git source; or a Helm chart or a command's folder, rendered), and saved
//! dumps of live objects (`kubectl get ... -o yaml` or `-o json`) as the live side, for
//! air-gapped audits.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use driftguard_core::limits::Limits;
use driftguard_core::manifest::{parse_dump, ManifestError};
use driftguard_core::model::{RawLive, Revision};
use driftguard_core::ports::{
    DesiredSet, GitSource, LiveScope, LiveSnapshot, LiveSource, SourceError,
};
use driftguard_core::render::RenderError;

use crate::git::{
    extend_set, find_kustomize, kustomization_path, parse_bytes, plan, render_kustomization,
    FileObjects, KustomizeLimits,
};
use crate::render::{join_relative, RenderInput, Rendered, Renderer};
use crate::tree::select::{too_large, walk_folder, Filter};

/// A rendering and the key of the inputs it was made from.
type KeptRendering = (u64, Arc<Rendered>);

/// A folder of manifests that is not a Git repository, or a folder rendered by a
/// [`Renderer`] (a Helm chart, a command).
///
/// Its revision is `dir:<xxh3 of the selected files' paths and contents>` (of every file of
/// the folder and the value files, when rendered); it has no history ([`GitSource::history`]
/// answers `Unsupported`). A rendering is kept while that revision is the same: a reload of
/// an unchanged folder does not run the renderer.
#[derive(Debug, Clone)]
pub struct DirSource {
    root: PathBuf,
    filter: Filter,
    kustomize_bin: Option<PathBuf>,
    helm_bin: Option<PathBuf>,
    kustomize_limits: KustomizeLimits,
    render: Option<Renderer>,
    /// Whether files in subfolders are read.
    recurse: bool,
    /// The last rendering, by the key of its inputs.
    rendered: Arc<Mutex<Option<KeptRendering>>>,
    /// Renderings run so far.
    renders: Arc<AtomicU64>,
    /// What one file may cost.
    limits: Limits,
}

fn io_error(context: String, e: std::io::Error) -> SourceError {
    if e.kind() == std::io::ErrorKind::NotFound {
        SourceError::NotFound { what: context }
    } else {
        SourceError::Backend {
            context,
            source: Box::new(e),
        }
    }
}

/// Every file below `root` (paths relative to it, sorted), `.git` folders left out.
fn walk_dir(root: &Path, out: &mut Vec<(String, PathBuf)>) -> Result<(), SourceError> {
    walk_folder(root, "", out).map_err(|(dir, e)| io_error(format!("folder {}", dir.display()), e))
}

impl DirSource {
    /// A folder, read whole.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DirSource {
            root: root.into(),
            filter: Filter::new("", &[], &[]).expect("no globs are valid globs"),
            kustomize_bin: None,
            helm_bin: None,
            kustomize_limits: KustomizeLimits::default(),
            render: None,
            recurse: true,
            rendered: Arc::new(Mutex::new(None)),
            renders: Arc::new(AtomicU64::new(0)),
            limits: Limits::default(),
        }
    }

    /// What one manifest file may cost (a larger one is an error of its own, not read).
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Renders the folder with `renderer` (a Helm chart, a command) instead of reading its
    /// manifest files.
    pub fn with_renderer(mut self, renderer: Renderer) -> Self {
        self.render = Some(renderer);
        self
    }

    /// The helm binary inflating the Helm charts of kustomizations (`helmCharts:`).
    pub fn with_helm_bin(mut self, bin: impl Into<PathBuf>) -> Self {
        self.helm_bin = Some(bin.into());
        self
    }

    /// How many renderings ran so far (an unchanged folder reuses the last one).
    pub fn renders(&self) -> u64 {
        self.renders.load(Ordering::Relaxed)
    }

    /// Keeps only files matching `include` (if any) and not matching `exclude` (globs relative
    /// to the folder).
    pub fn with_globs(
        mut self,
        include: &[String],
        exclude: &[String],
    ) -> Result<Self, SourceError> {
        self.filter = Filter::new("", include, exclude)?.with_recurse(self.recurse);
        Ok(self)
    }

    /// Whether files in subfolders are read (default true); without, only the folder's own
    /// files are (Argo CD's `directory.recurse: false`).
    pub fn with_recurse(mut self, recurse: bool) -> Self {
        self.recurse = recurse;
        self.filter = self.filter.with_recurse(recurse);
        self
    }

    /// The binary rendering kustomizations (`kubectl` or `kustomize`).
    pub fn with_kustomize_bin(mut self, bin: impl Into<PathBuf>) -> Self {
        self.kustomize_bin = Some(bin.into());
        self
    }

    /// How long a kustomization's rendering may run and how much it may print (default:
    /// [`KustomizeLimits::default`]).
    pub fn with_kustomize_limits(mut self, limits: KustomizeLimits) -> Self {
        self.kustomize_limits = limits;
        self
    }

    /// Reads the folder: the set (with revision) or an IO error.
    fn read(&self) -> Result<DesiredSet, SourceError> {
        if let Some(renderer) = &self.render {
            return self.read_rendered(renderer);
        }
        let mut all = Vec::new();
        walk_dir(&self.root, &mut all)?;
        // the order of a Git tree (`a.yaml` before `a/`), so that objects come in the same
        // order as from a repository holding the same files (the first of two definitions of
        // an object is the one kept)
        all.sort_by(|a, b| a.0.cmp(&b.0));
        let plan = plan(&self.filter, all);
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        let mut files: Vec<(String, FileObjects)> = Vec::with_capacity(plan.files.len());
        for (rel, path) in &plan.files {
            let size = std::fs::metadata(path)
                .map_err(|e| io_error(format!("file {}", path.display()), e))?
                .len();
            if let Err(e) = self.limits.check_manifest(rel, size) {
                hasher.update(rel.as_bytes());
                hasher.update(&size.to_le_bytes());
                files.push((rel.clone(), too_large(e)));
                continue;
            }
            let data =
                std::fs::read(path).map_err(|e| io_error(format!("file {}", path.display()), e))?;
            hasher.update(rel.as_bytes());
            hasher.update(&[0]);
            hasher.update(&(data.len() as u64).to_le_bytes());
            hasher.update(&data);
            files.push((rel.clone(), parse_bytes(rel, &data)));
        }
        let mut rendered = Vec::new();
        for dir in &plan.kustomizations {
            let file = kustomization_path(dir, |p| self.root.join(p).is_file());
            let text = std::fs::read_to_string(self.root.join(&file)).ok();
            let parsed = render_kustomization(
                find_kustomize(self.kustomize_bin.as_deref()).as_deref(),
                &self.root.join(dir),
                &file,
                text.as_deref(),
                self.helm_bin.as_deref(),
                self.kustomize_limits,
            );
            if parsed.errors.is_empty() {
                hasher.update(file.as_bytes());
                hasher.update(&[0]);
                for (o, _) in &parsed.objects {
                    hasher.update(o.value().to_string().as_bytes());
                }
            }
            rendered.push((file, dir.clone(), parsed));
        }
        let revision = Revision::plain(format!("dir:{:016x}", hasher.digest()));
        let mut set = DesiredSet {
            revision: Some(revision.clone()),
            notes: plan.notes,
            ..DesiredSet::default()
        };
        for (rel, parsed) in &files {
            extend_set(&mut set, parsed, rel, &revision.id);
        }
        for (file, dir, parsed) in &rendered {
            extend_set(&mut set, parsed, file, &revision.id);
            set.notes.push(format!(
                "kustomization {} rendered",
                if dir.is_empty() { "." } else { dir }
            ));
        }
        Ok(set)
    }
}

impl DirSource {
    /// Reads the folder as `renderer` renders it: the rendering is kept while every file of
    /// the folder and every value file are the same, and the renderer's options. A folder
    /// built with kustomize is built at every read, as a kustomization among plain manifests
    /// is: its bases may lie outside the folder; its revision then also names what the build
    /// printed (before any substitution: a revision never depends on a substituted value).
    fn read_rendered(&self, renderer: &Renderer) -> Result<DesiredSet, SourceError> {
        let mut all = Vec::new();
        walk_dir(&self.root, &mut all)?;
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        let mut hash_file = |rel: &str, path: &Path| -> Result<bool, SourceError> {
            match std::fs::read(path) {
                Ok(data) => {
                    hasher.update(rel.as_bytes());
                    hasher.update(&[0]);
                    hasher.update(&(data.len() as u64).to_le_bytes());
                    hasher.update(&data);
                    Ok(true)
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    hasher.update(rel.as_bytes());
                    hasher.update(b"\0missing");
                    Ok(false)
                }
                Err(e) => Err(io_error(format!("file {}", path.display()), e)),
            }
        };
        for (rel, path) in &all {
            hash_file(rel, path)?;
        }
        let mut values = Vec::new();
        let mut missing = Vec::new();
        for f in renderer.value_files() {
            // named relative to the folder when inside it, else as written
            let rel = join_relative("", f).unwrap_or_else(|| f.clone());
            let path = self.root.join(f);
            if hash_file(&format!("value file {rel}"), &path)? {
                values.push((rel, path));
            } else {
                missing.push(rel);
            }
        }
        let content = hasher.digest();
        let key = {
            let mut h = xxhash_rust::xxh3::Xxh3::new();
            h.update(&content.to_le_bytes());
            renderer.hash_into(&mut h);
            h.digest()
        };
        let kept = self
            .rendered
            .lock()
            .expect("lock is never poisoned")
            .as_ref()
            .filter(|(k, _)| *k == key && !renderer.reads_outside_folder())
            .map(|(_, r)| Arc::clone(r));
        let rendered = match kept {
            Some(r) => r,
            None => {
                if let Some(m) = missing.first() {
                    if !renderer.ignore_missing_value_files() {
                        return Err(RenderError::Input {
                            what: format!("value file {m}"),
                            problem: "does not exist (ignoreMissingValueFiles leaves it out)"
                                .into(),
                        }
                        .into());
                    }
                }
                let scratch = tempfile::Builder::new()
                    .prefix("driftguard-render-scratch-")
                    .tempdir()
                    .map_err(|source| RenderError::Prepare {
                        folder: std::env::temp_dir().display().to_string(),
                        source,
                    })?;
                let input = RenderInput {
                    dir: &self.root,
                    rel: "",
                    value_files: values,
                    missing_value_files: missing,
                    revision: None,
                    scratch: scratch.path(),
                    filter: &self.filter,
                    editable: false,
                };
                let r = Arc::new(renderer.render(&input)?);
                self.renders.fetch_add(1, Ordering::Relaxed);
                *self.rendered.lock().expect("lock is never poisoned") =
                    Some((key, Arc::clone(&r)));
                r
            }
        };
        let revision = match rendered.digest {
            Some(built) if renderer.reads_outside_folder() => {
                let mut h = xxhash_rust::xxh3::Xxh3::new();
                h.update(&content.to_le_bytes());
                h.update(&built.to_le_bytes());
                Revision::plain(format!("dir:{:016x}", h.digest()))
            }
            _ => Revision::plain(format!("dir:{content:016x}")),
        };
        let mut set = DesiredSet {
            revision: Some(revision.clone()),
            ..DesiredSet::default()
        };
        rendered.extend_set(&mut set, &revision.id, None);
        Ok(set)
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SourceError> + Send + 'static,
) -> Result<T, SourceError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| SourceError::Backend {
            context: "file task failed".into(),
            source: Box::new(e),
        })?
}

#[async_trait]
impl GitSource for DirSource {
    fn describe(&self) -> String {
        match &self.render {
            Some(r) => format!("dir {} ({})", self.root.display(), r.describe()),
            None => format!("dir {}", self.root.display()),
        }
    }

    async fn revision(&self) -> Result<Revision, SourceError> {
        let me = self.clone();
        let set = blocking(move || me.read()).await?;
        Ok(set.revision.unwrap_or_else(|| Revision::plain("dir:")))
    }

    /// The folder as it is now (a folder keeps no old revisions): the set's revision says
    /// which content was read.
    async fn desired(&self, _revision: &Revision) -> Result<DesiredSet, SourceError> {
        let me = self.clone();
        blocking(move || me.read()).await
    }

    async fn load(&self) -> Result<DesiredSet, SourceError> {
        let me = self.clone();
        blocking(move || me.read()).await
    }
}

/// Saved dumps of live objects: the output of `kubectl get <kinds> -A -o yaml` or `-o json`
/// (a `List`), one or several files. A snapshot holds the dumped objects the scope admits
/// ([`LiveScope::admits`]), as a cluster would list them.
#[derive(Debug, Clone)]
pub struct DumpSource {
    paths: Vec<PathBuf>,
    limits: Limits,
}

impl DumpSource {
    /// Dumps to read (each is read at every snapshot).
    pub fn new(paths: impl IntoIterator<Item = impl Into<PathBuf>>) -> Self {
        DumpSource {
            paths: paths.into_iter().map(Into::into).collect(),
            limits: Limits::default(),
        }
    }

    /// How large a dump may be and how many objects it may hold.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    fn read(&self) -> Result<Vec<RawLive>, SourceError> {
        let mut objects = Vec::new();
        for path in &self.paths {
            let name = path.display().to_string();
            let size = std::fs::metadata(path)
                .map_err(|e| io_error(format!("dump {name}"), e))?
                .len();
            self.limits
                .check_dump(&name, size)
                .map_err(SourceError::Invalid)?;
            let data = std::fs::read(path).map_err(|e| io_error(format!("dump {name}"), e))?;
            let text = std::str::from_utf8(&data).map_err(|_| {
                SourceError::Invalid(ManifestError {
                    file: name.clone(),
                    line: 1,
                    field: None,
                    message: "dump is not valid UTF-8".into(),
                })
            })?;
            // counted while parsed: objects past the limit are skipped, not held
            let left = self.limits.max_objects.saturating_sub(objects.len());
            let parsed = parse_dump(&name, text, left).map_err(|e| {
                let count = objects.len() + e.found;
                match self.limits.check_objects(&format!("dump {name}"), count) {
                    Err(e) => SourceError::Invalid(e),
                    Ok(()) => SourceError::Invalid(ManifestError {
                        file: name.clone(),
                        line: 0,
                        field: None,
                        message: format!("{count} objects, over the limit"),
                    }),
                }
            })?;
            let (live, errors) = parsed.into_live();
            if let Some(e) = errors.into_iter().next() {
                return Err(SourceError::Invalid(e));
            }
            objects.extend(live);
        }
        Ok(objects)
    }
}

#[async_trait]
impl LiveSource for DumpSource {
    fn describe(&self) -> String {
        let names: Vec<String> = self.paths.iter().map(|p| p.display().to_string()).collect();
        format!("dump {}", names.join(", "))
    }

    async fn snapshot(&self, scope: &LiveScope) -> Result<LiveSnapshot, SourceError> {
        let rule = scope.admission()?;
        let me = self.clone();
        let objects = blocking(move || me.read()).await?;
        Ok(LiveSnapshot {
            served: Vec::new(),
            objects: objects
                .into_iter()
                .filter(|o| rule.admits(o.object.value()))
                .collect(),
            errors: Vec::new(),
        })
    }
}
