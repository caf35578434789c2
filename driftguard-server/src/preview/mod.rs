//! `driftguard preview` and `POST /api/v1/preview`: what merging a pull request to the GitOps
//! repository would change in each environment, classified against the drift history.
//!
//! The judgement is the core's ([`driftguard_core::preview`]), and so is the reading, through
//! each environment's scanner ([`Scanner::preview`]): Git at both revisions through the
//! environment's own source (the same renderers a scan uses: plain folders, kustomize, Helm,
//! render commands), and only when the desired state differs between them the live side (one
//! snapshot of the kinds either revision defines) and the stored drift records. Here: which
//! environments, the report across them, and `--fail-on`. Nothing is written anywhere.
//! [`markdown`] renders a report for a pull-request comment.

pub mod markdown;

use std::sync::Arc;

use driftguard_core::engine::Engine;
use driftguard_core::normalize::{Normalizer, SecretKey};
use driftguard_core::ports::{Clock, DriftStore, SourceError};
use driftguard_core::preview::{
    ChangeClass, EnvPreview, PreviewCounts, PreviewError as CorePreviewError,
};
use driftguard_core::scanner::Scanner;
use serde::{Deserialize, Serialize};

use crate::config::ResolvedConfig;
use crate::setup::{self, Clusters, SetupError, SystemClock};

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
    /// Git, the cluster or the records could not be read.
    #[error(transparent)]
    Read(#[from] driftguard_core::preview::PreviewError),
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
            FailOn::High => c.high > 0,
        })
    }
}

/// Previews `request` on the configuration's environments, each on a Git repository through
/// a scanner of its own (the CLI's one-shot way: Git cloned or fetched into the cache, the
/// cluster listed). `key` must be the key scans hash Secrets with.
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
    let mut scanners = Vec::new();
    let mut skipped = Vec::new();
    let asked = config
        .environments
        .iter()
        .filter(|e| request.environments.is_empty() || request.environments.contains(&e.name));
    for env in asked {
        if env.terraform.is_some() || env.git().is_none() {
            skipped.push(not_on_git(&env.name));
            continue;
        }
        let engine = Engine::new(env.spec.clone(), Normalizer::new(key.clone()));
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let scanner = setup::scanner(env, clusters, engine, store.clone(), clock).await?;
        scanners.push(Arc::new(scanner));
    }
    let mut report = of_scanners(&scanners, request).await?;
    skipped.append(&mut report.skipped);
    report.skipped = skipped;
    Ok(report)
}

/// Previews `request` with `scanners` (a running server's environments, or the CLI's): an
/// environment whose source has no revisions by name (a folder) is left out, as one the change
/// does not touch; an error of any other ends the preview.
pub async fn of_scanners(
    scanners: &[Arc<Scanner>],
    request: &PreviewRequest,
) -> Result<PreviewReport, PreviewError> {
    let mut report = PreviewReport {
        base: request.base.clone(),
        head: request.head.clone(),
        ..PreviewReport::default()
    };
    let mut any_git = false;
    for scanner in scanners {
        let name = scanner.environment().to_owned();
        match scanner.preview(&request.base, &request.head).await {
            Ok(run) => {
                any_git = true;
                if run.preview.touched() {
                    report.problems.extend(run.problems);
                    report.environments.push(run.preview);
                } else {
                    report.skipped.push(Skipped {
                        environment: name,
                        reason: "the change does not touch its desired state".into(),
                    });
                }
            }
            Err(CorePreviewError::NotManifests(_))
            | Err(CorePreviewError::Git {
                source: SourceError::Unsupported { .. },
                ..
            }) => report.skipped.push(not_on_git(&name)),
            Err(e) => return Err(e.into()),
        }
    }
    if !any_git {
        return Err(PreviewError::NoGitEnvironment);
    }
    Ok(report)
}

fn not_on_git(environment: &str) -> Skipped {
    Skipped {
        environment: environment.to_owned(),
        reason: "not on a Git repository".into(),
    }
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

#[cfg(test)]
mod tests {
    use driftguard_core::findings::{Finding, FindingCategory};
    use driftguard_core::id::ResourceId;
    use driftguard_core::preview::{FieldChange, ObjectChange, ObjectPreview};
    use driftguard_core::severity::Severity;

    use super::*;

    fn report(class: ChangeClass, risk: Option<Severity>) -> PreviewReport {
        let findings = risk
            .map(|risk| Finding {
                rule: "privileged".into(),
                category: FindingCategory::Security,
                risk,
                path: None,
                reason: "privileged".into(),
            })
            .into_iter()
            .collect();
        PreviewReport {
            environments: vec![EnvPreview {
                environment: "prod".into(),
                objects: vec![ObjectPreview {
                    id: ResourceId::new("prod", "apps", "Deployment", Some("shop"), "api"),
                    api_version: "apps/v1".into(),
                    change: ObjectChange::Modified,
                    class,
                    fields: vec![FieldChange {
                        path: "spec.replicas".into(),
                        class,
                        base: None,
                        head: None,
                        live: None,
                        hand_change: None,
                    }],
                    hand_change: None,
                    findings,
                    provenance: None,
                    live_unknown: false,
                }],
                ..EnvPreview::default()
            }],
            ..PreviewReport::default()
        }
    }

    #[test]
    fn fail_on_names_what_fails() {
        use FailOn::*;
        let cases = [
            (ChangeClass::Overwrites, None, vec![Overwrites], true),
            (ChangeClass::Overwrites, None, vec![Conflicts, High], false),
            (ChangeClass::Conflicts, None, vec![Conflicts], true),
            (
                ChangeClass::Adopts,
                None,
                vec![Overwrites, Conflicts],
                false,
            ),
            (ChangeClass::New, Some(Severity::Critical), vec![High], true),
            (ChangeClass::New, Some(Severity::High), vec![High], true),
            (ChangeClass::New, Some(Severity::Medium), vec![High], false),
            (
                ChangeClass::Overwrites,
                Some(Severity::Critical),
                vec![],
                false,
            ),
        ];
        for (class, risk, fail_on, fails) in cases {
            assert_eq!(
                report(class, risk).fails(&fail_on),
                fails,
                "{class} {risk:?} {fail_on:?}"
            );
        }
    }
}
