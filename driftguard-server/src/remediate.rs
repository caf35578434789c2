//! Remediation through an environment's configured sources: scan, plan (the core's
//! [`driftguard_core::remediate::plan`]), preview (a server-side dry run), apply, and the audit
//! event. The CLI's `driftguard remediate`, the API and the policy loop all go through
//! [`Remediator`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use driftguard_core::engine::{Engine, ScanError, ScanReport};
use driftguard_core::error::chain;
use driftguard_core::id::ResourceId;
use driftguard_core::model::ObjectMeta;
use driftguard_core::normalize::{Normalizer, SecretKey};
use driftguard_core::ports::{Clock, DesiredSet, DriftStore, GitSource, LiveSource};
use driftguard_core::remediate::advice::{FieldChange, RemediationAction};
use driftguard_core::remediate::{
    self, remediation_event, Operation, Plan, Readiness, Refusal, RemediationRecord, Request,
};
use driftguard_core::scanner::Scanner;
use driftguard_core::state::Drift;
use driftguard_sources::git::{adoption_revision, push_adoption_at, GitSourceConfig};
use driftguard_sources::kube::{ApplyError, KubeLiveSource};
use serde_json::Value;

use crate::config::EnvironmentPlan;
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
    /// No plan with this id waits for confirmation (never made, already used, or expired).
    #[error("no plan {0} waits for confirmation (plans expire after 10 minutes and are used once): plan again")]
    UnknownPlan(String),
    /// The plan made now differs from the one confirmed.
    #[error("the drift changed since plan {0} was made: nothing was changed; plan again")]
    Changed(String),
    /// The environment cannot be remediated here.
    #[error(
        "environment {0} cannot be remediated through this server (its live side is not a cluster)"
    )]
    NotAvailable(String),
}

/// How long a plan waits for its confirmation.
pub const PLAN_TTL: std::time::Duration = std::time::Duration::from_secs(600);

/// Remediation through the API: a [`Remediator`] per environment whose live side is a
/// cluster, and the plans waiting for confirmation (plan, then confirm exactly that plan).
pub struct RemediationService {
    /// By environment; discovery adds and removes them while `serve` runs.
    remediators: RwLock<HashMap<String, Arc<Remediator>>>,
    pending: Mutex<HashMap<String, (Proposal, Instant)>>,
}

impl RemediationService {
    /// Builds the remediators of the configured environments (those with a cluster); each
    /// announces its remediations through its running environment among `running`.
    pub async fn build(
        environments: &[EnvironmentPlan],
        key: &SecretKey,
        store: Arc<dyn DriftStore>,
        clock: Arc<dyn Clock>,
        running: &[Arc<crate::environment::Environment>],
    ) -> Self {
        let service = RemediationService {
            remediators: RwLock::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
        };
        for env in environments {
            let running = running.iter().find(|e| e.name == env.name);
            service
                .add(env, key, store.clone(), clock.clone(), running)
                .await;
        }
        service
    }

    /// Adds (or replaces) the remediator of `env`, unless its live side is a dump; it
    /// announces its remediations through `running`, the environment's running scanner.
    pub async fn add(
        &self,
        env: &EnvironmentPlan,
        key: &SecretKey,
        store: Arc<dyn DriftStore>,
        clock: Arc<dyn Clock>,
        running: Option<&Arc<crate::environment::Environment>>,
    ) {
        if env.live_is_dump() {
            return;
        }
        match Remediator::open(env, key.clone(), store, clock).await {
            Ok(mut r) => {
                if let Some(e) = running {
                    r = r.with_live_scanner(e.scanner.clone());
                }
                self.remediators
                    .write()
                    .expect("remediators lock is never poisoned")
                    .insert(env.name.clone(), Arc::new(r));
            }
            Err(e) => tracing::warn!(environment = %env.name, "no remediation: {}", chain(&e)),
        }
    }

    /// Removes the remediator of `env` (an environment no longer discovered).
    pub fn remove(&self, env: &str) {
        self.remediators
            .write()
            .expect("remediators lock is never poisoned")
            .remove(env);
    }

    /// The remediator of `env`, when it has one.
    pub fn get(&self, env: &str) -> Option<Arc<Remediator>> {
        self.remediators
            .read()
            .expect("remediators lock is never poisoned")
            .get(env)
            .cloned()
    }

    fn remediator(&self, env: &str) -> Result<Arc<Remediator>, RemediateError> {
        self.get(env)
            .ok_or_else(|| RemediateError::NotAvailable(env.to_owned()))
    }

    /// Plans and previews `action` for each of `drifts`, reading each environment's sides
    /// once; keeps every plan made for its confirmation. The answers are in the order of
    /// `drifts`.
    /// `planned_by` names who asked for the plans (recorded with the remediation when another
    /// caller confirms).
    pub async fn plan_many(
        &self,
        drifts: Vec<Drift>,
        action: RemediationAction,
        prune: bool,
        planned_by: &str,
    ) -> Vec<Proposed> {
        let mut proposed = self.propose_grouped(drifts, action, prune).await;
        let mut pending = self.pending.lock().expect("plan lock is never poisoned");
        pending.retain(|_, (_, at)| at.elapsed() < PLAN_TTL);
        for p in &mut proposed {
            if let Ok(p) = &mut p.result {
                p.planned_by = Some(planned_by.to_owned());
                pending.insert(p.plan.id.clone(), (p.clone(), Instant::now()));
            }
        }
        proposed
    }

    /// Plans `action` for `drift` and keeps the plan for its confirmation.
    pub async fn plan(
        &self,
        drift: Drift,
        action: RemediationAction,
        prune: bool,
        planned_by: &str,
    ) -> Result<Proposal, RemediateError> {
        match self
            .plan_many(vec![drift], action, prune, planned_by)
            .await
            .pop()
        {
            Some(p) => p.result,
            None => Err(RemediateError::Git("nothing proposed".into())),
        }
    }

    /// Proposes `action` for `drifts`, one [`Remediator::propose`] per environment, answers
    /// in the order of `drifts`.
    async fn propose_grouped(
        &self,
        drifts: Vec<Drift>,
        action: RemediationAction,
        prune: bool,
    ) -> Vec<Proposed> {
        let mut groups: Vec<(String, Vec<(usize, Drift)>)> = Vec::new();
        for (i, d) in drifts.into_iter().enumerate() {
            let env = d.id.environment.clone();
            match groups.iter_mut().find(|(e, _)| *e == env) {
                Some((_, g)) => g.push((i, d)),
                None => groups.push((env, vec![(i, d)])),
            }
        }
        let mut out: Vec<(usize, Proposed)> = Vec::new();
        for (env, group) in groups {
            let (order, drifts): (Vec<usize>, Vec<Drift>) = group.into_iter().unzip();
            let answers = match self.remediator(&env) {
                Ok(r) => match r.propose(drifts.clone(), action, prune).await {
                    Ok(p) => p,
                    Err(e) => {
                        // a source could not be read: every drift of the environment says so
                        let why = e.to_string();
                        drifts
                            .into_iter()
                            .map(|drift| Proposed {
                                drift,
                                result: Err(RemediateError::Source {
                                    what: format!("environment {env}"),
                                    why: why.clone(),
                                }),
                            })
                            .collect()
                    }
                },
                Err(_) => drifts
                    .into_iter()
                    .map(|drift| Proposed {
                        drift,
                        result: Err(RemediateError::NotAvailable(env.clone())),
                    })
                    .collect(),
            };
            out.extend(order.into_iter().zip(answers));
        }
        out.sort_by_key(|(i, _)| *i);
        out.into_iter().map(|(_, p)| p).collect()
    }

    /// Carries out the plan `plan_id` made earlier for `drift`, if planning it again gives the
    /// same plan; `requested_by` names who asked.
    pub async fn confirm(
        &self,
        drift: Drift,
        plan_id: &str,
        prune: bool,
        requested_by: &str,
    ) -> Result<RemediationRecord, RemediateError> {
        match self
            .confirm_many(vec![(drift, plan_id.to_owned())], prune, requested_by)
            .await
            .pop()
        {
            Some((_, r)) => r,
            None => Err(RemediateError::UnknownPlan(plan_id.to_owned())),
        }
    }

    /// Carries out each `(drift, plan id)` made earlier, one by one, each only if planning it
    /// again (each environment's sides read once) gives the same plan. Answers, by episode,
    /// in the order given.
    pub async fn confirm_many(
        &self,
        items: Vec<(Drift, String)>,
        prune: bool,
        requested_by: &str,
    ) -> Vec<(String, Result<RemediationRecord, RemediateError>)> {
        // each plan waits once: take them all before planning again
        let mut waiting = Vec::with_capacity(items.len());
        {
            let mut pending = self.pending.lock().expect("plan lock is never poisoned");
            pending.retain(|_, (_, at)| at.elapsed() < PLAN_TTL);
            for (drift, id) in items {
                // a plan of another episode is not used up by a wrong confirmation
                let of_this = pending
                    .get(&id)
                    .is_some_and(|(p, _)| p.drift.episode == drift.episode);
                let found = if of_this {
                    pending.remove(&id).map(|(p, _)| p)
                } else {
                    None
                };
                waiting.push((drift, id, found));
            }
        }
        let mut out = Vec::with_capacity(waiting.len());
        // plans of one action are proposed again together
        let mut by_action: Vec<(RemediationAction, Vec<(Drift, Proposal)>)> = Vec::new();
        let mut order = Vec::with_capacity(waiting.len());
        for (drift, id, found) in waiting {
            order.push(drift.episode.clone());
            match found {
                None => out.push((drift.episode.clone(), Err(RemediateError::UnknownPlan(id)))),
                Some(p) => match by_action.iter_mut().find(|(a, _)| *a == p.plan.action) {
                    Some((_, g)) => g.push((drift, p)),
                    None => by_action.push((p.plan.action, vec![(drift, p)])),
                },
            }
        }
        for (action, group) in by_action {
            let (drifts, earlier): (Vec<Drift>, Vec<Proposal>) = group.into_iter().unzip();
            let now = self.propose_grouped(drifts, action, prune).await;
            for (p, now) in earlier.into_iter().zip(now) {
                let episode = p.drift.episode.clone();
                let result = match now.result {
                    Err(e) => Err(e),
                    Ok(n) if n.plan.id != p.plan.id => {
                        Err(RemediateError::Changed(p.plan.id.clone()))
                    }
                    Ok(n) => match self.remediator(&n.drift.id.environment) {
                        Ok(r) => r.execute(&p, requested_by).await,
                        Err(e) => Err(e),
                    },
                };
                out.push((episode, result));
            }
        }
        out.sort_by_key(|(e, _)| order.iter().position(|o| o == e));
        out
    }
}

/// Who made `p`, when not `confirmed_by`.
fn planned_by(p: &Proposal, confirmed_by: &str) -> Option<String> {
    p.planned_by.clone().filter(|by| by != confirmed_by)
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
    /// Who asked for the plan (`None`: planned and carried out in one go, by the CLI or a
    /// policy).
    pub planned_by: Option<String>,
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
    clock: Arc<dyn Clock>,
    scanner: Scanner,
    git_config: Option<GitSourceConfig>,
    /// The pull request to open after an adoption is pushed, and the branch it merges into.
    pull_request: Option<(crate::forge::PullRequestConfig, String)>,
    /// The running environment's scanner (under `serve`): remediated events are announced
    /// through its notifiers and its `resolved` events name DriftGuard.
    live_scanner: Option<Arc<Scanner>>,
}

impl Remediator {
    /// Wires the environment's sources with `store`.
    pub async fn open(
        env: &EnvironmentPlan,
        key: SecretKey,
        store: Arc<dyn DriftStore>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, SetupError> {
        let git = setup::git_source(env).await?;
        let kube = setup::kube_source(env).await?;
        let engine = Engine::new(env.spec.clone(), Normalizer::new(key));
        let live: Arc<dyn LiveSource> = Arc::new(kube.clone());
        let scanner = Scanner::new(
            engine.clone(),
            git.clone(),
            live,
            store.clone(),
            clock.clone(),
        );
        Ok(Remediator {
            engine,
            git,
            kube,
            clock,
            scanner,
            git_config: env.git().map(|g| g.source.clone()),
            pull_request: env
                .git()
                .and_then(|g| g.pull_request.clone())
                .map(|pr| (pr.config, pr.base)),
            live_scanner: None,
        })
    }

    /// Announces remediations through `scanner` (the running environment's, with its
    /// notifiers) instead of this remediator's own.
    pub fn with_live_scanner(mut self, scanner: Arc<Scanner>) -> Self {
        self.live_scanner = Some(scanner);
        self
    }

    /// The scanner remediated events go through.
    fn announcer(&self) -> &Scanner {
        self.live_scanner.as_deref().unwrap_or(&self.scanner)
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
        let live = self
            .kube
            .snapshot(&scope)
            .await
            .map_err(source("the cluster"))?;
        let st = self.engine.index(&desired, &live);
        let git_ready = if desired.warnings.is_empty() {
            Readiness::Ready
        } else {
            Readiness::Down(desired.warnings.join("; "))
        };
        let mut out = Vec::new();
        for drift in drifts {
            let raw_desired =
                find_desired(&desired, &drift.id, self.engine.spec.default_namespace());
            // only the drifted object is parsed (a snapshot may keep its objects as text)
            let raw_live = live
                .objects
                .iter_where(|m| same(m, &drift.id, None))
                .next()
                .map(|l| l.object.into_value());
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
                    planned_by: None,
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
        let expected = RemediationRecord {
            plan_id: p.plan.id.clone(),
            action: p.plan.action,
            operation: p.plan.operation,
            requested_by: requested_by.to_owned(),
            planned_by: planned_by(p, requested_by),
            changes: p.preview.clone(),
            ok: true,
            result: String::new(),
        };
        let outcome = match p.plan.operation {
            Operation::Adopt => self.adopt(p, requested_by).await,
            _ => {
                // a watch may see the change before the audit event is stored
                self.announcer()
                    .expect_remediation(&p.drift.episode, expected);
                self.kube
                    .apply_plan(&p.plan)
                    .await
                    .map(|a| (a.changes, format!("{} by DriftGuard", p.plan.operation)))
                    .map_err(RemediateError::from)
            }
        };
        if outcome.is_err() {
            self.announcer().forget_remediation(&p.drift.episode);
        }
        let record = RemediationRecord {
            plan_id: p.plan.id.clone(),
            action: p.plan.action,
            operation: p.plan.operation,
            requested_by: requested_by.to_owned(),
            planned_by: planned_by(p, requested_by),
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
        // the branch starts at the commit the plan was made from, never the branch head: a
        // commit pushed since the plan cannot change what is written, nor where
        let revision = adoption_revision(&p.drift).map(str::to_owned);
        let pushed = tokio::task::spawn_blocking(move || {
            push_adoption_at(&gc, &plan, revision.as_deref(), &by)
        })
        .await
        .map_err(|e| RemediateError::Git(e.to_string()))?
        .map_err(|e| RemediateError::Git(chain(&e)))?;
        let mut result = format!(
            "adopt: pushed branch {} (commit {}) changing {}",
            pushed.branch, pushed.commit, pushed.file
        );
        if let Some((forge, base)) = &self.pull_request {
            let fields: Vec<&str> = p.plan.writes.iter().map(|(f, _)| f.as_str()).collect();
            let pr = crate::forge::PullRequest {
                head: pushed.branch.clone(),
                base: base.clone(),
                title: format!("DriftGuard: adopt the live {} of {}", fields.join(", "), p.plan.object),
                body: format!(
                    "DriftGuard adopts what the cluster runs into Git.\n\n- Drift episode: `{}`\n- Plan: `{}`\n- Requested by: {}\n- File: `{}`\n",
                    p.plan.episode, p.plan.id, requested_by, pushed.file
                ),
            };
            match forge.open(&pr).await {
                Ok(o) => result.push_str(&format!("; opened pull request #{} {}", o.number, o.url)),
                Err(e) => {
                    // the branch is pushed: the drift resolves once it is merged, by hand
                    tracing::warn!(branch = %pushed.branch, "the pull request could not be opened: {}", chain(&e));
                    result.push_str(&format!(
                        "; the pull request could not be opened: {}",
                        chain(&e)
                    ));
                }
            }
        }
        Ok((p.preview.clone(), result))
    }

    /// Stores the `remediated` event of `drift` and announces it to the notifiers (those of
    /// the running environment under `serve`).
    pub async fn audit(
        &self,
        drift: &Drift,
        record: RemediationRecord,
    ) -> Result<(), RemediateError> {
        let event = remediation_event(drift, record, self.clock.now());
        let errors = self
            .announcer()
            .record_remediation(event)
            .await
            .map_err(|e| RemediateError::Audit(chain(&e)))?;
        for e in errors {
            tracing::warn!(environment = %drift.id.environment, error = %e, "notification failed");
        }
        Ok(())
    }

    /// The Git source (for the adopt writer).
    pub fn git(&self) -> &Arc<dyn GitSource> {
        &self.git
    }
}

/// Whether `o` is the object `id` (`default_ns`: the namespace of a desired object without one).
fn same(m: ObjectMeta<'_>, id: &ResourceId, default_ns: Option<&str>) -> bool {
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
        .find(|o| same(o.meta(), id, Some(default_ns)))
        .map(|o| o.value().clone())
}

/// Runs the remediation `policy` of `env` until `cancel`: every open drift is decided by the
/// core's [`driftguard_core::remediate::decide`] (the kill switch `paused` read each time) and
/// the ones to act on are remediated with `policy` named as who asked, then the environment is
/// scanned (in `ctx`, whose clock also times the policy) so that they resolve.
pub fn spawn_policy(
    ctx: crate::context::ScanContext,
    env: Arc<crate::environment::Environment>,
    remediator: Arc<Remediator>,
    policy: driftguard_core::remediate::Policy,
    paused: Arc<std::sync::atomic::AtomicBool>,
    cancel: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<()> {
    use driftguard_core::remediate::{decide, Decision, PolicyLedger};
    tokio::spawn(async move {
        let mut ledger = PolicyLedger::default();
        let mut notified = std::collections::HashSet::new();
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(std::time::Duration::from_millis(250)) => {}
            }
            // with leader election, only the replica that leads the environment acts
            if !env.leads() {
                continue;
            }
            let drifts = env.scanner.open_drifts().await;
            let mut acted = false;
            for d in drifts {
                let killed = paused.load(std::sync::atomic::Ordering::SeqCst);
                match decide(&policy, &d, &ledger, killed, ctx.clock.now()) {
                    Decision::Skip(_) => {}
                    Decision::Notify => {
                        if notified.insert(d.episode.clone()) {
                            tracing::info!(environment = %env.name, episode = %d.episode,
                                "the remediation policy would remediate this drift (notify only)");
                            if let Err(e) = notify_only(&remediator, d).await {
                                tracing::warn!(environment = %env.name,
                                    "the remediation policy could not announce a drift: {}", chain(&e));
                            }
                        }
                    }
                    Decision::Act(action) => {
                        // once per episode, whatever comes of it
                        ledger.record(&d.episode, ctx.clock.now());
                        let episode = d.episode.clone();
                        let result = match remediator.propose(vec![d], action, false).await {
                            Ok(mut p) => match p.pop().map(|p| p.result) {
                                Some(Ok(prop)) => {
                                    remediator.execute(&prop, "policy").await.map(|_| ())
                                }
                                Some(Err(e)) => Err(e),
                                None => Ok(()),
                            },
                            Err(e) => Err(e),
                        };
                        match result {
                            Ok(()) => {
                                acted = true;
                                tracing::info!(environment = %env.name, %episode, %action, "remediated by policy");
                            }
                            Err(e) => tracing::warn!(environment = %env.name, %episode,
                                "the remediation policy could not remediate: {}", chain(&e)),
                        }
                    }
                }
            }
            if acted {
                let _ = env.run_scan(&ctx).await;
            }
        }
    })
}

/// The `notify` mode: plans and previews a revert of `d` without carrying it out, and
/// announces (and records) a `remediated` event that says so, `ok: false`, with what would
/// change or why it would not.
async fn notify_only(remediator: &Remediator, d: Drift) -> Result<(), RemediateError> {
    let action = RemediationAction::Revert;
    let proposed = remediator.propose(vec![d.clone()], action, false).await;
    let (plan_id, operation, changes, result) = match proposed.map(|mut p| p.pop()) {
        Ok(Some(Proposed { result: Ok(p), .. })) => (
            p.plan.id.clone(),
            p.plan.operation,
            p.preview,
            format!(
                "notify only: the policy would {} this drift ({}); nothing was changed",
                action, p.plan.operation
            ),
        ),
        Ok(Some(Proposed { result: Err(e), .. })) | Err(e) => (
            String::new(),
            Operation::Apply,
            Vec::new(),
            format!("notify only: the policy could not {action} this drift: {e}"),
        ),
        Ok(None) => return Ok(()),
    };
    let record = RemediationRecord {
        plan_id,
        action,
        operation,
        requested_by: "policy".into(),
        planned_by: None,
        changes,
        ok: false,
        result,
    };
    remediator.audit(&d, record).await
}
