//! The elector: one task per replica. Every `retryPeriod` it renews its membership Lease and
//! counts the live replicas, renews the environment Leases it holds, hands back what it holds
//! beyond its fair share, and takes free environments up to it. Each environment it leads
//! runs as a *term*: claim the environment in the store with the term's epoch, send again what
//! the previous leader had not delivered, then run the environment's loops (starting with a
//! full scan) until the term ends: released, lost, not renewed within `renewDeadline` (the
//! local fence), or refused by the store.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use driftguard_core::error::chain;
use driftguard_core::ports::{Notifier, ScanBatch};
use driftguard_sources::kube::lease::{LeaseClaim, LeaseClient, LeaseError, LeaseRecord};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::share::{acquisition_order, fair_share, is_free, to_release, Observations};
use super::{HaSettings, Leadership, Term};
use crate::context::ScanContext;
use crate::environment::Environment;
use crate::state::AppState;
use crate::supervisor::Supervisor;

/// Label naming what a Lease is for (`environment` or `member`).
pub const LEASE_LABEL: &str = "driftguard.io/lease";
/// Label naming the prefix (the deployment) a Lease belongs to.
pub const PREFIX_LABEL: &str = "driftguard.io/prefix";
/// Annotation naming the environment of an environment Lease.
pub const ENVIRONMENT_ANNOTATION: &str = "driftguard.io/environment";

/// A member Lease unchanged for this many lease durations is deleted (a replica that died).
const STALE_MEMBER_DURATIONS: u32 = 5;

/// One environment this replica leads.
struct Running {
    /// The environment the term runs (discovery may replace it with another of the same
    /// name, or remove it: the term then ends).
    environment: Arc<Environment>,
    epoch: u64,
    /// The Lease as this replica last wrote it.
    record: LeaseRecord,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

/// Everything the elector needs.
pub struct Elector {
    settings: HaSettings,
    leases: LeaseClient,
    leadership: Arc<Leadership>,
    state: AppState,
    notifiers: Vec<Arc<dyn Notifier>>,
    grace: Duration,
    observations: Observations,
    terms: BTreeMap<String, Running>,
    /// Terms stopping (their loops draining).
    stopping: Vec<JoinHandle<()>>,
    member: Option<LeaseRecord>,
    live: usize,
    ticks: u64,
    started: DateTime<Utc>,
}

impl std::fmt::Debug for Elector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Elector")
            .field("identity", &self.settings.identity)
            .field("leading", &self.terms.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn labels(settings: &HaSettings, what: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LEASE_LABEL.to_owned(), what.to_owned()),
        (PREFIX_LABEL.to_owned(), settings.prefix.clone()),
        ("app.kubernetes.io/name".to_owned(), "driftguard".to_owned()),
    ])
}

fn selector(settings: &HaSettings, what: &str) -> String {
    format!("{LEASE_LABEL}={what},{PREFIX_LABEL}={}", settings.prefix)
}

impl Elector {
    /// An elector for the environments of `state` (built with `leadership`), alerting
    /// through `notifiers`; `grace` bounds how long a term's loops may take to stop.
    pub fn new(
        settings: HaSettings,
        leases: LeaseClient,
        leadership: Arc<Leadership>,
        state: AppState,
        notifiers: Vec<Arc<dyn Notifier>>,
        grace: Duration,
    ) -> Self {
        let started = state.clock.now();
        Elector {
            settings,
            leases,
            leadership,
            state,
            notifiers,
            grace,
            observations: Observations::default(),
            terms: BTreeMap::new(),
            stopping: Vec::new(),
            member: None,
            live: 1,
            ticks: 0,
            started,
        }
    }

    /// Runs until `cancel`, then hands back every environment it leads (so that another
    /// replica takes them over at once), waits for their loops (within the grace) and removes
    /// its membership Lease.
    pub async fn run(mut self, cancel: CancellationToken) {
        tracing::info!(identity = %self.settings.identity, namespace = %self.leases.namespace(),
            cluster = %self.leases.describe(), "leader election: joining");
        let mut interval = tokio::time::interval(self.settings.retry_period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = interval.tick() => {}
            }
            self.tick().await;
        }
        self.leave().await;
    }

    /// One round.
    pub async fn tick(&mut self) {
        self.ticks += 1;
        self.reap();
        self.membership().await;
        let now = Instant::now();
        let listed = match self
            .leases
            .list(&selector(&self.settings, "environment"))
            .await
        {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %chain(&e), "cannot list the environment Leases");
                Vec::new()
            }
        };
        let mut by_name: HashMap<String, LeaseRecord> = HashMap::new();
        for r in listed {
            self.observations.see(&r, now);
            by_name.insert(r.name.clone(), r);
        }
        let current = self.state.environments();
        let envs: Vec<String> = current.iter().map(|e| e.name.clone()).collect();
        // a term whose environment discovery removed or replaced (a new configuration) ends:
        // a replaced one is taken again, with the new environment, like any free one
        let stale: Vec<String> = self
            .terms
            .iter()
            .filter(|(name, t)| {
                !current
                    .iter()
                    .any(|e| &e.name == *name && Arc::ptr_eq(e, &t.environment))
            })
            .map(|(name, _)| name.clone())
            .collect();
        for env in stale {
            tracing::info!(environment = %env, "the environment changed or is no longer discovered: handing it back");
            self.release(&env).await;
        }
        for env in &envs {
            if self.terms.contains_key(env) {
                continue;
            }
            let r = by_name.get(&self.settings.environment_lease(env));
            self.leadership.seen(
                env,
                r.and_then(|r| r.holder.clone()),
                r.map(|r| r.transitions + 1),
            );
        }
        self.renew(&by_name).await;
        // the first round only looks: replicas starting together see each other first
        if self.ticks < 2 {
            return;
        }
        let share = fair_share(envs.len(), self.live);
        let held: Vec<String> = self.terms.keys().cloned().collect();
        for env in to_release(&held, share) {
            tracing::info!(environment = %env, share, replicas = self.live,
                "handing the environment back: more replicas are alive");
            self.release(&env).await;
        }
        let now = Instant::now();
        for env in acquisition_order(&envs, &self.settings.identity) {
            if self.terms.len() >= share {
                break;
            }
            if self.terms.contains_key(&env) {
                continue;
            }
            let record = by_name.get(&self.settings.environment_lease(&env));
            if !is_free(
                record,
                &self.settings.identity,
                &self.observations,
                self.settings.lease_duration,
                now,
            ) {
                continue;
            }
            if let Err(e) = self.take(&env, record).await {
                match e {
                    LeaseError::Conflict { .. } => {
                        tracing::debug!(environment = %env, "another replica took the environment first")
                    }
                    e => {
                        tracing::warn!(environment = %env, error = %chain(&e), "cannot take the environment")
                    }
                }
            }
        }
    }

    /// Terms that ended by themselves (local fence, store refusal) are forgotten.
    fn reap(&mut self) {
        let ended: Vec<String> = self
            .terms
            .iter()
            .filter(|(_, t)| t.task.is_finished())
            .map(|(e, _)| e.clone())
            .collect();
        for env in ended {
            if let Some(t) = self.terms.remove(&env) {
                self.leadership.end_epoch(&env, t.epoch);
                self.state
                    .metrics
                    .set_leader(&env, false, self.state.clock.now());
                self.stopping.push(t.task);
            }
        }
        self.stopping.retain(|t| !t.is_finished());
    }

    /// Keeps this replica's membership Lease and counts the live replicas.
    async fn membership(&mut self) {
        let name = self.settings.member_lease(&self.settings.identity);
        let claim = LeaseClaim {
            holder: Some(self.settings.identity.clone()),
            duration: self.settings.lease_duration,
            transitions: 0,
            acquired_at: Some(self.started),
            renewed_at: Some(self.state.clock.now()),
        };
        let written = match &self.member {
            Some(r) => self.leases.update(r, &claim).await,
            None => match self.leases.get(&name).await {
                Ok(Some(r)) => self.leases.update(&r, &claim).await,
                Ok(None) => {
                    let annotations = BTreeMap::from([(
                        "driftguard.io/identity".to_owned(),
                        self.settings.identity.clone(),
                    )]);
                    self.leases
                        .create(
                            &name,
                            &claim,
                            &labels(&self.settings, "member"),
                            &annotations,
                        )
                        .await
                }
                Err(e) => Err(e),
            },
        };
        match written {
            Ok(r) => self.member = Some(r),
            Err(e) => {
                self.member = None;
                tracing::warn!(error = %chain(&e), "cannot renew this replica's membership Lease");
            }
        }
        let members = match self.leases.list(&selector(&self.settings, "member")).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %chain(&e), "cannot list the replicas' Leases");
                return;
            }
        };
        let now = Instant::now();
        let mut live = 1;
        for m in &members {
            self.observations.see(m, now);
            if m.name == name {
                continue;
            }
            let expired = self
                .observations
                .expired(m, self.settings.lease_duration, now);
            if !expired && m.holder.is_some() {
                live += 1;
            }
            let stale = self
                .observations
                .unchanged_for(&m.name, now)
                .is_some_and(|d| d >= self.settings.lease_duration * STALE_MEMBER_DURATIONS);
            if stale {
                match self.leases.delete(m).await {
                    Ok(()) => {
                        tracing::info!(lease = %m.name, "removed the Lease of a replica that stopped")
                    }
                    Err(e) => {
                        tracing::debug!(lease = %m.name, error = %chain(&e), "cannot remove a stale Lease")
                    }
                }
            }
        }
        if live != self.live {
            tracing::info!(replicas = live, "live replicas");
        }
        self.live = live;
    }

    /// Renews every Lease this replica holds (all at once); a Lease another replica took is
    /// lost at once.
    async fn renew(&mut self, listed: &HashMap<String, LeaseRecord>) {
        let me = self.settings.identity.clone();
        let mut lost = Vec::new();
        let mut attempts = Vec::new();
        for (env, t) in &self.terms {
            let name = self.settings.environment_lease(env);
            if let Some(r) = listed.get(&name) {
                if r.holder.as_deref() != Some(me.as_str()) {
                    lost.push((env.clone(), format!("taken over by {:?}", r.holder)));
                    continue;
                }
            }
            let claim = LeaseClaim {
                holder: Some(me.clone()),
                duration: self.settings.lease_duration,
                transitions: t.record.transitions,
                acquired_at: t.record.acquired_at,
                renewed_at: Some(self.state.clock.now()),
            };
            let record = t.record.clone();
            let leases = self.leases.clone();
            let env = env.clone();
            let epoch = t.epoch;
            attempts.push(async move {
                let sent = Instant::now();
                let r = leases.update(&record, &claim).await;
                (env, epoch, sent, r)
            });
        }
        for (env, epoch, sent, result) in futures_util::future::join_all(attempts).await {
            match result {
                Ok(record) => {
                    self.leadership
                        .extend(&env, epoch, sent + self.settings.renew_deadline);
                    if let Some(t) = self.terms.get_mut(&env) {
                        t.record = record;
                    }
                }
                Err(LeaseError::Conflict { .. }) => {
                    // changed by someone else: still ours only if it still names this replica
                    // with the same count
                    let name = self.settings.environment_lease(&env);
                    match self.leases.get(&name).await {
                        Ok(Some(r))
                            if r.holder.as_deref() == Some(me.as_str())
                                && self
                                    .terms
                                    .get(&env)
                                    .is_some_and(|t| t.record.transitions == r.transitions) =>
                        {
                            if let Some(t) = self.terms.get_mut(&env) {
                                t.record = r;
                            }
                        }
                        Ok(r) => lost.push((
                            env.clone(),
                            format!("taken over by {:?}", r.and_then(|r| r.holder)),
                        )),
                        Err(e) => {
                            tracing::warn!(environment = %env, error = %chain(&e), "cannot read the environment's Lease")
                        }
                    }
                }
                Err(e) => {
                    // not renewed: the term ends by itself at its deadline (local fence)
                    tracing::warn!(environment = %env, error = %chain(&e), "cannot renew the environment's Lease");
                }
            }
        }
        for (env, why) in lost {
            if let Some(t) = self.terms.remove(&env) {
                t.cancel.cancel();
                // the term may have run out before (a paused process): say when; a term that
                // ended by itself (and said so) is only cleaned up
                if let Some(ago) = self.leadership.ended_ago(&env, t.epoch) {
                    self.leadership.end_epoch(&env, t.epoch);
                    let now = self.state.clock.now();
                    self.state.metrics.set_leader(&env, false, now);
                    self.state.metrics.leadership_lost(&env);
                    tracing::warn!(environment = %env, epoch = t.epoch, reason = %why,
                        ended_ms_ago = ago.as_millis() as u64,
                        "stopped leading the environment: its Lease was lost");
                }
                self.stopping.push(t.task);
            }
        }
    }

    /// Takes `env`'s Lease (creating it, or taking it over from `record`) and starts a term.
    async fn take(&mut self, env: &str, record: Option<&LeaseRecord>) -> Result<(), LeaseError> {
        let name = self.settings.environment_lease(env);
        let wall = self.state.clock.now();
        let mut claim = LeaseClaim {
            holder: Some(self.settings.identity.clone()),
            duration: self.settings.lease_duration,
            transitions: record.map_or(0, |r| r.transitions + 1),
            acquired_at: Some(wall),
            renewed_at: Some(wall),
        };
        let sent = Instant::now();
        let mut written = match record {
            None => {
                let annotations =
                    BTreeMap::from([(ENVIRONMENT_ANNOTATION.to_owned(), env.to_owned())]);
                self.leases
                    .create(
                        &name,
                        &claim,
                        &labels(&self.settings, "environment"),
                        &annotations,
                    )
                    .await?
            }
            Some(r) => self.leases.update(r, &claim).await?,
        };
        let mut epoch = written.transitions + 1;
        // the epoch must be above every epoch the store has seen (a Lease deleted and made
        // again starts counting at 0)
        match self.state.store.epoch(env).await {
            Ok(Some(stored)) if stored >= epoch => {
                claim.transitions = stored;
                written = self.leases.update(&written, &claim).await?;
                epoch = written.transitions + 1;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(environment = %env, error = %chain(&e),
                    "cannot read the environment's epoch in the store: handing it back");
                self.hand_back(&written).await;
                return Ok(());
            }
        }
        let term = Term {
            epoch,
            valid_until: sent + self.settings.renew_deadline,
        };
        let Some(environment) = self.state.environment(env) else {
            return Ok(());
        };
        self.leadership.begin(env, term);
        self.state
            .metrics
            .set_leader(env, true, self.state.clock.now());
        tracing::info!(environment = %env, epoch, identity = %self.settings.identity,
            previous = ?record.and_then(|r| r.holder.clone()), "leading the environment");
        let cancel = CancellationToken::new();
        let task = tokio::spawn(lead(
            environment.clone(),
            epoch,
            self.state.scan_context(),
            self.notifiers.clone(),
            self.leadership.clone(),
            cancel.clone(),
            self.grace,
        ));
        self.terms.insert(
            env.to_owned(),
            Running {
                environment,
                epoch,
                record: written,
                cancel,
                task,
            },
        );
        Ok(())
    }

    /// Ends the term of `env` and hands its Lease back, so that another replica takes it at
    /// once.
    async fn release(&mut self, env: &str) {
        let Some(t) = self.terms.remove(env) else {
            return;
        };
        t.cancel.cancel();
        self.leadership.end(env);
        self.state
            .metrics
            .set_leader(env, false, self.state.clock.now());
        tracing::info!(environment = %env, epoch = t.epoch, "stopped leading the environment: handed back");
        self.hand_back(&t.record).await;
        self.stopping.push(t.task);
    }

    async fn hand_back(&self, record: &LeaseRecord) {
        let claim = LeaseClaim {
            holder: None,
            duration: self.settings.lease_duration,
            transitions: record.transitions,
            acquired_at: None,
            renewed_at: None,
        };
        if let Err(e) = self.leases.update(record, &claim).await {
            tracing::warn!(lease = %record.name, error = %chain(&e), "cannot hand the Lease back (it expires by itself)");
        }
    }

    /// Hands back everything, waits for the terms' loops, removes the membership Lease.
    async fn leave(mut self) {
        let envs: Vec<String> = self.terms.keys().cloned().collect();
        for env in envs {
            self.release(&env).await;
        }
        let stopping = std::mem::take(&mut self.stopping);
        let all = futures_util::future::join_all(stopping);
        if tokio::time::timeout(self.grace, all).await.is_err() {
            tracing::warn!("environment loops not stopped within the shutdown grace period");
        }
        if let Some(m) = &self.member {
            if let Err(e) = self.leases.delete(m).await {
                tracing::warn!(error = %chain(&e), "cannot remove this replica's membership Lease");
            }
        }
        tracing::info!(identity = %self.settings.identity, "leader election: left");
    }
}

/// One term of leadership of `env`: claim, resend, loops, until it ends.
async fn lead(
    env: Arc<Environment>,
    epoch: u64,
    ctx: ScanContext,
    notifiers: Vec<Arc<dyn Notifier>>,
    leadership: Arc<Leadership>,
    cancel: CancellationToken,
    grace: Duration,
) {
    // a new term starts from the store; the claim fences off every older epoch before this
    // term reads anything
    env.scanner.set_epoch(Some(epoch)).await;
    if let Err(e) = ctx
        .store
        .commit(&ScanBatch::claim(env.name.clone(), epoch))
        .await
    {
        tracing::warn!(environment = %env.name, epoch, error = %chain(&e),
            "cannot claim the environment in the store: stepping down");
        end_term(&env, &leadership, &ctx, epoch, "the claim failed");
        return;
    }
    match crate::notify::resend_undelivered_for(&notifiers, &*ctx.store, &env.name, ctx.clock.now())
        .await
    {
        Ok(0) => {}
        Ok(n) => {
            tracing::info!(environment = %env.name, events = n, "queued again the alerts the previous leader had not delivered")
        }
        Err(e) => {
            tracing::warn!(environment = %env.name, error = %chain(&e), "cannot read which alerts were not delivered")
        }
    }
    let loops = Supervisor::start_for(std::slice::from_ref(&env), &ctx, cancel.child_token());
    let mut valid_until = None;
    let reason = loop {
        let Some(term) = leadership.term(&env.name).filter(|t| t.epoch == epoch) else {
            if cancel.is_cancelled() {
                break None;
            }
            // the term ran out (by the monotonic clock: also while this process was paused);
            // say when, for a reader of the log
            let ago = valid_until.map_or(Duration::ZERO, |v: Instant| {
                Instant::now().saturating_duration_since(v)
            });
            tracing::warn!(environment = %env.name, epoch, ended_ms_ago = ago.as_millis() as u64,
                "the term ran out: not renewed within renewDeadline (local fence)");
            break Some("not renewed within renewDeadline (local fence)");
        };
        valid_until = Some(term.valid_until);
        tokio::select! {
            _ = cancel.cancelled() => break None,
            _ = env.step_down_requested(epoch) => break Some("the store refused a write of this epoch"),
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(term.valid_until)) => {}
        }
    };
    if let Some(reason) = reason {
        end_term(&env, &leadership, &ctx, epoch, reason);
    }
    loops.shutdown(grace).await;
}

fn end_term(
    env: &Environment,
    leadership: &Leadership,
    ctx: &ScanContext,
    epoch: u64,
    reason: &str,
) {
    leadership.end_epoch(&env.name, epoch);
    ctx.metrics.set_leader(&env.name, false, ctx.clock.now());
    ctx.metrics.leadership_lost(&env.name);
    tracing::warn!(environment = %env.name, epoch, reason, "stopped leading the environment");
}
