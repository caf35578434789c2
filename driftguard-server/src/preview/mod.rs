//! `driftguard preview` and `POST /api/v1/preview`: what merging a pull request to the GitOps
//! repository would change in each environment, classified against the drift history.
//!
//! The gathering is here, the judgement in the core ([`driftguard_core::preview`]): for each
//! environment on a Git repository, Git is read at both revisions through the environment's
//! own source (the same renderers a scan uses: plain folders, kustomize, Helm, render
//! commands), and only when the desired state differs between them are the live side (one
//! snapshot of the kinds either revision defines) and the stored drift records read. Nothing is
//! written anywhere. [`markdown`] renders a report for a pull-request comment.

pub mod markdown;

use std::sync::Arc;

use driftguard_core::engine::Engine;
use driftguard_core::error::chain;
use driftguard_core::normalize::{Normalizer, SecretKey};
use driftguard_core::ports::{DesiredSet, DriftStore, GitSource, SourceError, StoreError};
use driftguard_core::preview::{ChangeClass, EnvPreview, PreviewCounts};
use driftguard_core::severity::Severity;
use driftguard_sources::git::GitRepoSource;
use serde::{Deserialize, Serialize};

use crate::config::{EnvironmentPlan, ResolvedConfig};
use crate::setup::{self, Clusters, SetupError};

/// Why a preview could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    /// No environment of the configuration has the name asked for.
    #[error("no environment `{0}`")]
    NoEnvironment(String),
    /// No environment asked for reads a Git repository.
    #[error("no environment reads a Git repository: a preview compares two revisions")]
    NoGitEnvironment,
    /// A source could not be set up.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// Git or the cluster could not be read.
    #[error("environment {environment}: cannot read {what}")]
    Source {
        /// The environment.
        environment: String,
        /// What was being read.
        what: String,
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

/// What to preview.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviewRequest {
    /// The revision merged into (a branch, tag, full ref name or commit id).
    pub base: String,
    /// The revision merged (`refs/pull/7/head`, a branch, a commit id).
    pub head: String,
    /// The environments (empty: every one on a Git repository).
    #[serde(default)]
    pub environments: Vec<String>,
}

/// What `--fail-on` (and the API's `failOn`) can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailOn {
    /// A hand change the merge would undo.
    Overwrites,
    /// A field both the change and the cluster moved (or a hand change overwritten).
    Conflicts,
    /// A finding of high or critical risk.
    High,
}

/// An environment the preview left out, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    /// The environment.
    pub environment: String,
    /// Why.
    pub reason: String,
}

/// A preview of every environment asked for.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PreviewReport {
    /// The base as asked.
    pub base: String,
    /// The head as asked.
    pub head: String,
    /// The environments whose desired state the change touches.
    pub environments: Vec<EnvPreview>,
    /// The environments left out (untouched, not on Git, unreadable).
    #[serde(default)]
    pub skipped: Vec<Skipped>,
    /// Problems met reading Git at either revision (files that could not be read or rendered).
    #[serde(default)]
    pub problems: Vec<String>,
}

impl PreviewReport {
    /// The counts of every environment, added up.
    pub fn counts(&self) -> PreviewCounts {
        let mut t = PreviewCounts::default();
        for e in &self.environments {
            let c = e.counts();
            t.overwrites += c.overwrites;
            t.adopts += c.adopts;
            t.conflicts += c.conflicts;
            t.new += c.new;
            t.created += c.created;
            t.pruned += c.pruned;
            t.high += c.high;
        }
        t
    }

    /// Whether the report holds anything `fail_on` names.
    pub fn fails(&self, fail_on: &[FailOn]) -> bool {
        let c = self.counts();
        fail_on.iter().any(|f| match f {
            FailOn::Overwrites => c.overwrites > 0,
            FailOn::Conflicts => c.conflicts > 0,
            FailOn::High => self.environments.iter().any(|e| {
                e.objects
                    .iter()
                    .any(|o| o.findings.iter().any(|f| f.risk >= Severity::High))
            }),
        })
    }
}

/// Previews `request` on the configuration's environments: each on a Git repository, read at
/// both revisions; the cluster and `store`'s records only where the change touches the desired
/// state. `key` must be the key scans hash Secrets with.
pub async fn preview(
    config: &ResolvedConfig,
    key: SecretKey,
    store: Arc<dyn DriftStore>,
    clusters: &Clusters,
    request: &PreviewRequest,
) -> Result<PreviewReport, PreviewError> {
    for name in &request.environments {
        if config.environment(name).is_none() {
            return Err(PreviewError::NoEnvironment(name.clone()));
        }
    }
    let mut report = PreviewReport {
        base: request.base.clone(),
        head: request.head.clone(),
        ..PreviewReport::default()
    };
    let asked = config
        .environments
        .iter()
        .filter(|e| request.environments.is_empty() || request.environments.contains(&e.name));
    let mut any_git = false;
    for env in asked {
        if env.terraform.is_some() || env.git().is_none() {
            report.skipped.push(Skipped {
                environment: env.name.clone(),
                reason: "not on a Git repository".into(),
            });
            continue;
        }
        any_git = true;
        match preview_environment(env, key.clone(), &store, clusters, request).await? {
            Outcome::Untouched => report.skipped.push(Skipped {
                environment: env.name.clone(),
                reason: "the change does not touch its desired state".into(),
            }),
            Outcome::Touched(p, problems) => {
                report.problems.extend(problems);
                report.environments.push(*p);
            }
        }
    }
    if !any_git {
        return Err(PreviewError::NoGitEnvironment);
    }
    Ok(report)
}

enum Outcome {
    Untouched,
    Touched(Box<EnvPreview>, Vec<String>),
}

async fn preview_environment(
    env: &EnvironmentPlan,
    key: SecretKey,
    store: &Arc<dyn DriftStore>,
    clusters: &Clusters,
    request: &PreviewRequest,
) -> Result<Outcome, PreviewError> {
    let name = &env.name;
    let source_error = |what: String| {
        move |source| PreviewError::Source {
            environment: name.clone(),
            what,
            source,
        }
    };
    let git = env
        .git()
        .ok_or(PreviewError::NoGitEnvironment)?
        .source
        .clone();
    let src = GitRepoSource::open(git)
        .await
        .map_err(source_error("the repository".into()))?;
    let base_rev = src
        .revision_of(&request.base)
        .await
        .map_err(source_error(format!("base `{}`", request.base)))?;
    let head_rev = src
        .revision_of(&request.head)
        .await
        .map_err(source_error(format!("head `{}`", request.head)))?;
    let base = src
        .desired(&base_rev)
        .await
        .map_err(source_error(format!("Git at base {}", base_rev.short())))?;
    let head = src
        .desired(&head_rev)
        .await
        .map_err(source_error(format!("Git at head {}", head_rev.short())))?;
    if same_objects(&base, &head) && base.errors.len() == head.errors.len() {
        return Ok(Outcome::Untouched);
    }
    let engine = Engine::new(env.spec.clone(), Normalizer::new(key));
    let both = DesiredSet {
        objects: base
            .objects
            .iter()
            .chain(head.objects.iter())
            .cloned()
            .collect(),
        ..DesiredSet::default()
    };
    let scope = engine.live_scope(&both);
    drop(both);
    let live = setup::live_source(env, clusters).await?;
    let snapshot = live
        .snapshot(&scope)
        .await
        .map_err(source_error("the cluster".into()))?;
    let records = store
        .records(name)
        .await
        .map_err(|source| PreviewError::Store {
            environment: name.clone(),
            source,
        })?;
    let b = engine.index(&base, &snapshot);
    let h = engine.index(&head, &snapshot);
    let preview = engine.preview(&b, &h, &records);
    if !preview.touched() {
        return Ok(Outcome::Untouched);
    }
    let mut problems: Vec<String> = Vec::new();
    for (side, st) in [("base", &b), ("head", &h)] {
        for e in &st.errors {
            problems.push(format!("{name} ({side}): {e}"));
        }
        for e in &st.live_errors {
            problems.push(format!("{name}: {e}"));
        }
    }
    for w in head.warnings.iter().chain(base.warnings.iter()) {
        problems.push(format!("{name}: {w}"));
    }
    problems.dedup();
    Ok(Outcome::Touched(Box::new(preview), problems))
}

/// Whether both revisions give the same objects, in the same order.
fn same_objects(a: &DesiredSet, b: &DesiredSet) -> bool {
    a.objects.len() == b.objects.len()
        && a.objects
            .iter()
            .zip(&b.objects)
            .all(|(x, y)| x.object.value() == y.object.value())
}

/// The one-line summary of a class, as every rendering names it.
pub fn class_label(class: ChangeClass) -> &'static str {
    match class {
        ChangeClass::New => "new",
        ChangeClass::Adopts => "adopts a drift",
        ChangeClass::Overwrites => "overwrites a hand change",
        ChangeClass::Conflicts => "conflicts",
    }
}

/// An error's chain, for a report line.
pub fn describe(e: &PreviewError) -> String {
    chain(e)
}
