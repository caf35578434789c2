//! A scanner's preview: its ports read for [`Engine::preview`](crate::engine::Engine::preview),
//! in one batch before the pure step, as a scan gathers. Nothing is written, and a running
//! scan is not waited for (the scanner's state is not touched).

use crate::ports::{DesiredSet, SourceError, StoreError};
use crate::scanner::Scanner;

use super::EnvPreview;

/// Why a scanner could not preview.
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    /// The environment is not one of manifests on a Git source (Terraform plans).
    #[error("environment {0}: a preview needs Kubernetes manifests from Git")]
    NotManifests(String),
    /// Git could not be read at a revision.
    #[error("environment {environment}: cannot read {what} from {source_name}")]
    Git {
        /// The environment.
        environment: String,
        /// What was being read (`base main`, `head 1a2b3c4d5e6f`).
        what: String,
        /// The source, described.
        source_name: String,
        /// The cause.
        #[source]
        source: SourceError,
    },
    /// The cluster could not be read.
    #[error("environment {environment}: cannot read {source_name}")]
    Live {
        /// The environment.
        environment: String,
        /// The source, described.
        source_name: String,
        /// The cause.
        #[source]
        source: SourceError,
    },
    /// The drift records could not be read.
    #[error("environment {environment}: cannot read the drift records")]
    Store {
        /// The environment.
        environment: String,
        /// The cause.
        #[source]
        source: StoreError,
    },
}

/// A preview and what reading Git found wrong on the way.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PreviewRun {
    /// The preview (no objects: the change does not touch the environment).
    pub preview: EnvPreview,
    /// Files that could not be read or rendered at either revision, kinds that could not be
    /// read live, a stale fetch.
    pub problems: Vec<String>,
}

impl Scanner {
    /// What merging `head` into `base` (each a branch, tag, full ref name or commit id) would
    /// do to the environment: Git read at both revisions through the scanner's own source and
    /// renderers; only when the desired state differs, one snapshot of the kinds either
    /// revision defines and the stored records; then [`Engine::preview`](crate::engine::Engine::preview).
    pub async fn preview(&self, base: &str, head: &str) -> Result<PreviewRun, PreviewError> {
        let engine = self.engine();
        let name = &engine.spec.name;
        let store = self.store();
        let (Some(git), Some(live)) = (self.git_source(), self.live_source()) else {
            return Err(PreviewError::NotManifests(name.clone()));
        };
        let git_error = |what: String| {
            move |source| PreviewError::Git {
                environment: name.clone(),
                what,
                source_name: git.describe(),
                source,
            }
        };
        let base_rev = git
            .revision_of(base)
            .await
            .map_err(git_error(format!("base `{base}`")))?;
        let head_rev = git
            .revision_of(head)
            .await
            .map_err(git_error(format!("head `{head}`")))?;
        let mut run = PreviewRun {
            preview: EnvPreview {
                environment: name.clone(),
                base: Some(base_rev.clone()),
                head: Some(head_rev.clone()),
                objects: Vec::new(),
            },
            problems: Vec::new(),
        };
        if base_rev.id == head_rev.id {
            return Ok(run);
        }
        let base_set = git
            .desired(&base_rev)
            .await
            .map_err(git_error(format!("base {}", base_rev.short())))?;
        let head_set = git
            .desired(&head_rev)
            .await
            .map_err(git_error(format!("head {}", head_rev.short())))?;
        if same_objects(&base_set, &head_set) {
            return Ok(run);
        }
        let both = DesiredSet {
            objects: base_set
                .objects
                .iter()
                .chain(&head_set.objects)
                .cloned()
                .collect(),
            ..DesiredSet::default()
        };
        let scope = engine.live_scope(&both);
        drop(both);
        let snapshot = live
            .snapshot(&scope)
            .await
            .map_err(|source| PreviewError::Live {
                environment: name.clone(),
                source_name: live.describe(),
                source,
            })?;
        let records = store
            .records(name)
            .await
            .map_err(|source| PreviewError::Store {
                environment: name.clone(),
                source,
            })?;
        let b = engine.index(&base_set, &snapshot);
        let h = engine.index(&head_set, &snapshot);
        run.preview = engine.preview(&b, &h, &records);
        for (side, st) in [("base", &b), ("head", &h)] {
            run.problems
                .extend(st.errors.iter().map(|e| format!("{name} ({side}): {e}")));
        }
        run.problems
            .extend(h.live_errors.iter().map(|e| format!("{name}: {e}")));
        for w in head_set.warnings.iter().chain(&base_set.warnings) {
            let line = format!("{name}: {w}");
            if !run.problems.contains(&line) {
                run.problems.push(line);
            }
        }
        Ok(run)
    }
}

/// Whether both revisions give the same objects, in the same order (and the same problems).
fn same_objects(a: &DesiredSet, b: &DesiredSet) -> bool {
    a.errors.len() == b.errors.len()
        && a.objects.len() == b.objects.len()
        && a.objects
            .iter()
            .zip(&b.objects)
            .all(|(x, y)| x.object.value() == y.object.value())
}
