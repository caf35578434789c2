//! The reader of one repository for one environment: the handle on the bare mirror's object
//! database (gix, no checkout), what it reads besides the environment's folder, its counters,
//! and the lock on what it keeps ([`Caches`]). What it does is in the files beside this one:
//! refs and commits (`refs`), the desired set of a commit (`manifests`, `rendered`), the
//! history of an object or a file (`history`), a revision written out (`worktree`).

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use driftguard_core::limits::Limits;
use driftguard_core::ports::SourceError;

use super::cache::Caches;
use super::objects::backend;
use crate::render::Renderer;
use crate::tree::kustomize::KustomizeLimits;
use crate::tree::select::Filter;

/// How many commits a history walk looks at, at most.
pub(super) const MAX_HISTORY_WALK: usize = 2_000;

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
    pub(super) repo: gix::ThreadSafeRepository,
    pub filter: Filter,
    pub(super) kustomize_bin: Option<PathBuf>,
    /// The helm binary for kustomizations inflating Helm charts.
    pub(super) helm_bin: Option<PathBuf>,
    /// How long a kustomization's rendering may run and how much it may print.
    pub(super) kustomize_limits: KustomizeLimits,
    /// How the environment is rendered, if it is (a chart, a command), instead of reading
    /// its files.
    pub(super) render: Option<Renderer>,
    /// Threads parsing files when many changed (0: one per core, at most 8).
    pub(super) parse_threads: usize,
    /// What one file may cost.
    pub(super) limits: Limits,
    caches: Mutex<Caches>,
    /// Blobs parsed so far (cache misses).
    pub parsed_count: AtomicU64,
    /// Renderings run so far (cache misses).
    pub render_count: AtomicU64,
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

    pub(super) fn local(&self) -> gix::Repository {
        let mut repo = self.repo.to_thread_local();
        repo.object_cache_size_if_unset(4 * 1024 * 1024);
        repo
    }

    pub(super) fn caches(&self) -> std::sync::MutexGuard<'_, Caches> {
        self.caches.lock().expect("cache lock is never poisoned")
    }
}
