//! Remediation through an environment's configured sources: scan, plan (the core's
//! [`driftguard_core::remediate::plan`]), preview (a server-side dry run), apply, and the audit
//! event. The CLI's `driftguard remediate`, the API and the policy loop all go through
//! [`Remediator`].

use std::sync::Arc;

use driftguard_core::engine::{Engine, ScanError, ScanReport};
use driftguard_core::error::chain;
use driftguard_core::id::ResourceId;
use driftguard_core::model::{ObjectMeta, RawObject};
use driftguard_core::normalize::{Normalizer, SecretKey};
use driftguard_core::ports::{Clock, DesiredSet, DriftStore, GitSource, LiveSource, ScanBatch};
use driftguard_core::remediate::{
    self, remediation_event, Operation, Plan, Readiness, Refusal, RemediationRecord, Request,
};
use driftguard_core::remediation::{FieldChange, RemediationAction};
use driftguard_core::scanner::Scanner;
use driftguard_core::state::Drift;
use driftguard_sources::git::{push_adoption, GitSourceConfig};
use driftguard_sources::kube::{ApplyError, KubeLiveSource};
use serde_json::Value;

use crate::config::{Config, EnvironmentConfig};
use crate::setup::{self, SetupError};

/// Why a remediation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RemediateError {
    /// DriftGuard will not do it (the reason says why).
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The cluster refused or could not be reached.
    #[error(transparent)]
    Cluster(#[from] ApplyError),
    /// The Git side failed.
    #[error("{0}")]
    Git(String),
    /// A source could not be read.
    #[error("cannot read {what}: {why}")]
    Source {
        /// Which source.
        what: String,
        /// Why.
        why: String,
    },
    /// The audit event could not be stored.
    #[error("the remediation was done but its audit event could not be stored: {0}")]
    Audit(String),
}

/// A plan with its preview, ready to confirm.
#[derive(Clone, Debug)]
pub struct Proposal {
    /// The drift it ends.
    pub drift: Drift,
    /// The plan.
    pub plan: Plan,
    /// What would change: for a cluster plan the API server's dry-run answer (JSON pointers),
    /// for adopt the fields to write into Git.
    pub preview: Vec<FieldChange>,
}

/// One drift and what remediating it would do, or why not.
#[derive(Debug)]
pub struct Proposed {
    /// The drift.
    pub drift: Drift,
    /// The proposal, or why there is none.
    pub result: Result<Proposal, RemediateError>,
}

/// Remediation of one environment.
pub struct Remediator {
    engine: Engine,
    git: Arc<dyn GitSource>,
    kube: KubeLiveSource,
    store: Arc<dyn DriftStore>,
    clock: Arc<dyn Clock>,
    scanner: Scanner,
    git_config: Option<GitSourceConfig>,
}

impl Remediator {
    /// Wires the environment's sources with `store`.
    pub async fn open(
        config: &Config,
        env: &EnvironmentConfig,
        key: SecretKey,
        store: Arc<dyn DriftStore>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, SetupError> {
        let git = setup::git_source(config, env).await?;
        let kube = setup::kube_source(config, env).await?;
        let engine = Engine::new(env.spec(), Normalizer::new(key));
        let live: Arc<dyn LiveSource> = Arc::new(kube.clone());
        let scanner = Scanner::new(
            engine.clone(),
            git.clone(),
            live,
            store.clone(),
            clock.clone(),
        );
        let git_config = env.git.as_ref().map(|g| setup::git_config(config, env, g));
        Ok(Remediator {
            engine,
            git,
            kube,
            store,
            clock,
            scanner,
            git_config,
        })
    }

    /// The environment's name.
    pub fn environment(&self) -> &str {
        &self.engine.spec.name
    }

    /// Scans the environment (and stores the result), so that plans start from what is true
    /// now.
    pub async fn scan(&self) -> Result<ScanReport, ScanError> {
        self.scanner.scan().await
    }

    /// Plans and previews `action` for each of `drifts`.
    pub async fn propose(
        &self,
        drifts: Vec<Drift>,
        action: RemediationAction,
        prune: bool,
    ) -> Result<Vec<Proposed>, RemediateError> {
        let source = |what: &str| {
            let what = what.to_owned();
            move |e: driftguard_core::ports::SourceError| RemediateError::Source {
                what: what.clone(),
                why: chain(&e),
            }
        };
        let revision = self.git.revision().await.map_err(source("Git"))?;
        let desired = self.git.desired(&revision).await.map_err(source("Git"))?;
        let scope = self.engine.live_scope(&desired);
        let live = self.kube.snapshot(&scope).await.map_err(source("the cluster"))?;
        let st = self.engine.index(&desired, &live);
        let git_ready = if desired.warnings.is_empty() {
            Readiness::Ready
        } else {
            Readiness::Down(desired.warnings.join("; "))
        };
        let mut out = Vec::new();
        for drift in drifts {
            let raw_desired = find_desired(&desired, &drift.id, self.engine.spec.default_namespace());
            let raw_live = live
                .objects
                .iter()
                .map(|l| &l.object)
                .find(|o| same(o, &drift.id, None))
                .map(|o| o.value().clone());
            let req = Request {
                drift: &drift,
                action,
                desired: raw_desired.as_ref(),
                live: raw_live.as_ref(),
                prune,
                git: git_ready.clone(),
                cluster: Readiness::Ready,
            };
            let result = match remediate::plan(&self.engine, &st, &req) {
                Err(r) => Err(RemediateError::Refused(r)),
                Ok(plan) => self.preview(&plan).await.map(|preview| Proposal {
                    drift: drift.clone(),
                    plan,
                    preview,
                }),
            };
            out.push(Proposed { drift, result });
        }
        Ok(out)
    }

    async fn preview(&self, plan: &Plan) -> Result<Vec<FieldChange>, RemediateError> {
        match plan.operation {
            Operation::Adopt => Ok(plan.changes.clone()),
            _ => Ok(self.kube.preview(plan).await?.changes),
        }
    }

    /// Carries out `p` (cluster side) and stores the `remediated` event, successful or not;
    /// `requested_by` names who asked (`cli:<user>`, `token:<name>`, `policy`).
    pub async fn execute(
        &self,
        p: &Proposal,
        requested_by: &str,
    ) -> Result<RemediationRecord, RemediateError> {
        let outcome = match p.plan.operation {
            Operation::Adopt => self.adopt(p, requested_by).await,
            _ => self
                .kube
                .apply_plan(&p.plan)
                .await
                .map(|a| (a.changes, format!("{} by DriftGuard", p.plan.operation)))
                .map_err(RemediateError::from),
        };
        let record = RemediationRecord {
            plan_id: p.plan.id.clone(),
            action: p.plan.action,
            operation: p.plan.operation,
            requested_by: requested_by.to_owned(),
            changes: match &outcome {
                Ok((c, _)) => c.clone(),
                Err(_) => p.preview.clone(),
            },
            ok: outcome.is_ok(),
            result: match &outcome {
                Ok((_, r)) => r.clone(),
                Err(e) => e.to_string(),
            },
        };
        self.audit(&p.drift, record.clone()).await?;
        outcome.map(|_| record)
    }

    /// Pushes the adoption of `p` to a new branch of the environment's remote.
    async fn adopt(
        &self,
        p: &Proposal,
        requested_by: &str,
    ) -> Result<(Vec<FieldChange>, String), RemediateError> {
        let Some(gc) = self.git_config.clone() else {
            return Err(RemediateError::Git(
                "adopt needs a Git repository as the desired side (`git:`), not a folder".into(),
            ));
        };
        let plan = p.plan.clone();
        let by = requested_by.to_owned();
        let pushed = tokio::task::spawn_blocking(move || push_adoption(&gc, &plan, &by))
            .await
            .map_err(|e| RemediateError::Git(e.to_string()))?
            .map_err(|e| RemediateError::Git(chain(&e)))?;
        Ok((
            p.preview.clone(),
            format!(
                "adopt: pushed branch {} (commit {}) changing {}",
                pushed.branch, pushed.commit, pushed.file
            ),
        ))
    }

    /// Stores the `remediated` event of `drift`.
    pub async fn audit(&self, drift: &Drift, record: RemediationRecord) -> Result<(), RemediateError> {
        let event = remediation_event(drift, record, self.clock.now());
        self.store
            .commit(&ScanBatch {
                environment: drift.id.environment.clone(),
                summary: None,
                upserts: Vec::new(),
                deletes: Vec::new(),
                events: vec![event],
            })
            .await
            .map_err(|e| RemediateError::Audit(chain(&e)))
    }

    /// The Git source (for the adopt writer).
    pub fn git(&self) -> &Arc<dyn GitSource> {
        &self.git
    }
}

/// Whether `o` is the object `id` (`default_ns`: the namespace of a desired object without one).
fn same(o: &RawObject, id: &ResourceId, default_ns: Option<&str>) -> bool {
    let m = ObjectMeta::of(o.value());
    let oid = m.id(&id.environment);
    oid.group == id.group
        && oid.kind == id.kind
        && oid.name == id.name
        && (oid.namespace == id.namespace
            || (oid.namespace.is_none() && id.namespace.as_deref() == default_ns))
}

fn find_desired(desired: &DesiredSet, id: &ResourceId, default_ns: &str) -> Option<Value> {
    desired
        .objects
        .iter()
        .map(|m| &m.object)
        .find(|o| same(o, id, Some(default_ns)))
        .map(|o| o.value().clone())
}
