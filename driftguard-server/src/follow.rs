//! The discovered environments followed while `serve` runs (issue #31): one environment per
//! Argo CD Application or Flux Kustomization/HelmRelease, started, restarted and stopped as
//! the objects change.
//!
//! How: kube-runtime watches on the tools' kinds ([`discover::watch`]) say *that* something
//! changed (an object added, deleted, or changed in what the mapping reads; status churn is
//! not); after a quiet moment ([`DEBOUNCE`], at most [`MAX_DELAY`] after the first change)
//! the whole discovery runs again ([`discover::discover`]: the same reading and mapping as at
//! start, with the ConfigMaps and Secrets the objects name), and the environments it makes are
//! compared with the running ones ([`changes`], pure): new ones start, changed ones (the same
//! name, another configuration) stop and start again with the new one, gone ones stop. Every
//! [`RESYNC`] the discovery runs again anyway: a watch cannot see a change of `argocd-cm` or
//! of a ConfigMap a Kustomization substitutes from, nor a tool installed after the start.
//!
//! Why a watch that triggers a full discovery, rather than mapping the watched objects: the
//! mapping needs the whole set at once (names are made unique across both tools, a
//! configured name wins, Flux objects refer to sources and ConfigMaps), and one path for start
//! and changes keeps one behaviour. The debounce bounds what a burst costs (one discovery).
//!
//! The file's environments never change here, and a discovered name that is a configured
//! one's keeps following the mapping's rule (the configured one is scanned). A stopped
//! environment's history stays in the store. A discovery that cannot reach the cluster
//! changes nothing; one that could not read everything starts and restarts but stops nothing.
//!
//! Without leader election the follower starts and stops the environments' loops itself (it
//! holds the [`Supervisor`]); with it, it only changes the set, and the elector takes, runs and
//! hands back the environments of the new set on its next round.
//!
//! The tools' verdicts ([`crate::verdicts`]) are taken from each discovery, and from the
//! watches' status changes ([`ChangeKind::Status`]) at once: a verdict changes no
//! environment, so it neither waits for nor triggers a discovery.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use driftguard_core::error::chain;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::discover::{
    changes, secret_values, Discovered, Problem, ToolEvent, ToolVerdict,
};
use crate::config::{DiscoveryPlan, EnvironmentConfig, EnvironmentPlan};
use crate::discover::{self, Change, ChangeKind, Discovery, Watches};
use crate::environment::Environment;
use crate::service::EnvironmentBuilder;
use crate::state::AppState;
use crate::supervisor::Supervisor;
use crate::verdicts::ToolStatus;

/// How long the tools' objects must be quiet before discovering again.
pub const DEBOUNCE: Duration = Duration::from_secs(2);
/// The longest a change waits for its discovery while changes keep coming.
pub const MAX_DELAY: Duration = Duration::from_secs(30);
/// How often the discovery runs again without a change seen.
pub const RESYNC: Duration = Duration::from_secs(600);

/// A discovered environment running now.
struct Running {
    /// What it was started with (compared with each new discovery).
    config: EnvironmentConfig,
    /// The tool's object it comes from (`Application argocd/shop`), for the log.
    object: String,
    /// The fields of `config` holding values read from Secrets
    /// ([`Discovered::secret_fields`]).
    secret_fields: Vec<String>,
}

/// Follows the discovery cluster while `serve` runs.
pub(crate) struct Follower {
    plan: DiscoveryPlan,
    /// The file's environments, first in the set, never changed.
    configured: Vec<Arc<Environment>>,
    builder: EnvironmentBuilder,
    state: AppState,
    running: BTreeMap<String, Running>,
    /// The problems last logged per object, so that each is logged when it appears.
    reported: HashMap<String, Vec<Problem>>,
    /// The environments' loops, without leader election.
    supervisor: Option<Supervisor>,
    grace: Duration,
}

fn object_of(d: &Discovered) -> String {
    format!("{} {}/{}", d.app.kind, d.app.namespace, d.app.name)
}

impl Follower {
    /// A follower of `plan`, which found `found` at start; the state holds the file's
    /// environments and those of `found`.
    pub(crate) fn new(
        plan: DiscoveryPlan,
        found: &Discovery,
        builder: EnvironmentBuilder,
        state: AppState,
        supervisor: Option<Supervisor>,
        grace: Duration,
    ) -> Self {
        let running: BTreeMap<String, Running> = found
            .found
            .iter()
            .filter_map(|d| {
                let config = d.environment.clone()?;
                Some((
                    config.name.clone(),
                    Running {
                        config,
                        object: object_of(d),
                        secret_fields: d.secret_fields.clone(),
                    },
                ))
            })
            .collect();
        let configured = state
            .environments()
            .iter()
            .filter(|e| !running.contains_key(&e.name))
            .cloned()
            .collect();
        let reported = found
            .found
            .iter()
            .map(|d| (object_of(d), d.problems.clone()))
            .collect();
        let now = state.clock.now();
        for d in &found.found {
            if let Some(name) = d.name().filter(|n| running.contains_key(*n)) {
                state
                    .verdicts
                    .set(name, ToolStatus::of(d, now), &state.metrics);
            }
        }
        Follower {
            plan,
            configured,
            builder,
            state,
            running,
            reported,
            supervisor,
            grace,
        }
    }

    /// Runs until `cancel`; gives the supervisor back (to be shut down with the rest).
    pub(crate) async fn run(mut self, cancel: CancellationToken) -> Option<Supervisor> {
        let mut watches = self.watch().await;
        'follow: loop {
            let first = tokio::select! {
                _ = cancel.cancelled() => break 'follow,
                c = next_change(&mut watches) => c,
                _ = tokio::time::sleep(RESYNC) => None,
            };
            if let Some(c) = first.as_ref().filter(|c| c.kind.verdict_only()) {
                // the tool's verdict only: nothing to discover
                self.status(c);
                continue;
            }
            match &first {
                Some(c) => {
                    tracing::debug!(change = %c, "discovery: a change of the tools' objects")
                }
                None => {
                    tracing::debug!("discovery: periodic discovery");
                    if watches.is_none() {
                        watches = self.watch().await;
                    }
                }
            }
            // wait for the changes to settle, within MAX_DELAY
            let deadline = Instant::now() + MAX_DELAY;
            if first.is_some() {
                loop {
                    let quiet = (Instant::now() + DEBOUNCE).min(deadline);
                    tokio::select! {
                        _ = cancel.cancelled() => break 'follow,
                        c = next_change(&mut watches) => {
                            match c {
                                Some(c) if c.kind.verdict_only() => self.status(&c),
                                Some(c) => tracing::debug!(change = %c, "discovery: a change of the tools' objects"),
                                None => {}
                            }
                        }
                        _ = tokio::time::sleep_until(quiet) => break,
                    }
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => break 'follow,
                _ = self.rediscover() => {}
            }
        }
        self.supervisor
    }

    async fn watch(&self) -> Option<Watches> {
        match discover::watch(&self.plan).await {
            Ok(w) => {
                for e in &w.errors {
                    tracing::warn!(
                        "discovery: {e}: its changes are seen every {}s only",
                        RESYNC.as_secs()
                    );
                }
                Some(w)
            }
            Err(e) => {
                tracing::warn!(error = %chain(&e), "discovery: cannot watch the tools' objects; discovering every {}s", RESYNC.as_secs());
                None
            }
        }
    }

    /// Takes the tool's new verdict on an object (a [`ChangeKind::Status`] change), or the
    /// Event it recorded on it (a [`ChangeKind::Event`]): no environment changes.
    fn status(&self, change: &Change) {
        let Some(fields) = &change.verdict else {
            return;
        };
        let changed = self.state.verdicts.update_object(
            &change.object,
            |env, s| {
                // the Secret values the environment took, out of the tool's message
                let secrets = self
                    .running
                    .get(env)
                    .map(|r| secret_values(&r.config, &r.secret_fields))
                    .unwrap_or_default();
                if change.kind == ChangeKind::Event {
                    let mut v = s.verdict.clone();
                    if let Some((_, e)) = ToolEvent::read(fields, &secrets) {
                        v.take_event(e);
                    }
                    return v;
                }
                ToolVerdict {
                    // not in the object: kept
                    last_event: s.verdict.last_event.clone(),
                    last_change: s.verdict.last_change.clone(),
                    ..ToolVerdict::read(s.tool, &s.kind, fields, s.source, &secrets)
                }
            },
            self.state.clock.now(),
            &self.state.metrics,
        );
        for name in changed {
            if let Some(v) = self.state.verdicts.get(&name) {
                tracing::debug!(environment = %name, object = %change.object,
                    "discovery: the tool says {}", v.verdict.summary());
            }
        }
    }

    /// Takes the verdicts of a discovery, for the environments running.
    fn verdicts(&self, found: &Discovery) {
        let now = self.state.clock.now();
        for d in &found.found {
            if let Some(name) = d.name().filter(|n| self.running.contains_key(*n)) {
                self.state
                    .verdicts
                    .set(name, ToolStatus::of(d, now), &self.state.metrics);
            }
        }
    }

    /// Discovers again and applies what changed.
    async fn rediscover(&mut self) {
        let configured: Vec<String> = self.configured.iter().map(|e| e.name.clone()).collect();
        let found = match discover::discover(&self.plan, &configured).await {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %chain(&e), "discovery: cannot read the tools' objects; the environments stay as they are");
                return;
            }
        };
        self.report(&found);
        let complete = found.errors.is_empty();
        let configs = found.found.iter().filter_map(|d| d.environment.as_ref());
        let running: BTreeMap<String, EnvironmentConfig> = self
            .running
            .iter()
            .map(|(n, r)| (n.clone(), r.config.clone()))
            .collect();
        let c = changes(&running, configs, complete);
        for name in &c.kept {
            tracing::info!(environment = %name, "discovery: not found, but kept: the discovery could not read everything");
        }
        if c.is_empty() {
            tracing::debug!("discovery: no environment changed");
            self.verdicts(&found);
            return;
        }
        let plans: HashMap<&str, &EnvironmentPlan> = found
            .environments
            .iter()
            .map(|p| (p.name.as_str(), p))
            .collect();
        let discovered: HashMap<&str, &Discovered> = found
            .found
            .iter()
            .filter_map(|d| Some((d.name()?, d)))
            .collect();
        // stop what is gone or changed (its loops end before another scanner of the same
        // name starts: two would race on its records)
        let current = self.state.environments();
        for name in c.removed.iter().chain(&c.changed) {
            if let Some(s) = self.supervisor.as_mut() {
                s.remove(name, self.grace).await;
            }
            if let Some(r) = &self.state.remediation {
                r.remove(name);
            }
        }
        for name in &c.removed {
            if let Some(r) = self.running.remove(name) {
                self.state.verdicts.remove(name);
                self.state.metrics.forget(name);
                self.state.metrics.discovery_change("removed");
                tracing::info!(environment = %name, object = %r.object,
                    "discovery: environment removed: no longer scanned (its history stays)");
            }
        }
        // make the new and changed ones
        let mut started: HashMap<String, Arc<Environment>> = HashMap::new();
        for (name, change) in c
            .added
            .iter()
            .map(|n| (n, "added"))
            .chain(c.changed.iter().map(|n| (n, "changed")))
        {
            let (Some(plan), Some(d)) = (plans.get(name.as_str()), discovered.get(name.as_str()))
            else {
                continue;
            };
            let object = object_of(d);
            match self.builder.build(plan).await {
                Ok(env) => {
                    if let Some(r) = &self.state.remediation {
                        self.builder.remediation(r, plan, &env).await;
                    }
                    started.insert(name.clone(), env);
                    if let Some(config) = d.environment.clone() {
                        self.running.insert(
                            name.clone(),
                            Running {
                                config,
                                object: object.clone(),
                                secret_fields: d.secret_fields.clone(),
                            },
                        );
                    }
                    self.state.metrics.discovery_change(change);
                    tracing::info!(environment = %name, %object, "discovery: environment {change}: {}",
                        if change == "added" { "scanning it" } else { "scanning it with its new configuration" });
                }
                Err(e) => {
                    // not running: the next discovery tries again
                    self.running.remove(name);
                    self.state.verdicts.remove(name);
                    self.state.metrics.forget(name);
                    tracing::warn!(environment = %name, %object, error = %chain(&e),
                        "discovery: cannot start the environment; trying again at the next discovery");
                }
            }
        }
        // the new set: the file's, then the discovered ones in the order discovered, then
        // those kept although not found
        let mut set: Vec<Arc<Environment>> = self.configured.clone();
        let by_name: HashMap<&str, &Arc<Environment>> =
            current.iter().map(|e| (e.name.as_str(), e)).collect();
        let mut placed: std::collections::HashSet<String> = std::collections::HashSet::new();
        let names = found
            .found
            .iter()
            .filter_map(|d| d.name())
            .chain(c.kept.iter().map(String::as_str));
        for name in names {
            if !self.running.contains_key(name) || !placed.insert(name.to_owned()) {
                continue;
            }
            if let Some(env) = started.get(name).or_else(|| by_name.get(name).copied()) {
                set.push(env.clone());
            }
        }
        self.state.set_environments(set);
        self.verdicts(&found);
        if let Some(s) = self.supervisor.as_mut() {
            for env in started.into_values() {
                s.add(env);
            }
        }
        tracing::info!(
            added = c.added.len(),
            changed = c.changed.len(),
            removed = c.removed.len(),
            environments = self.state.environments().len(),
            "discovery: environments updated"
        );
    }

    /// Logs what the discovery could not read, and each object's problems when they are new.
    fn report(&mut self, found: &Discovery) {
        for e in &found.errors {
            tracing::warn!("discovery: {e}");
        }
        let mut now = HashMap::new();
        for d in &found.found {
            let object = object_of(d);
            if self.reported.get(&object) != Some(&d.problems) {
                for p in &d.problems {
                    tracing::warn!(environment = d.name().unwrap_or("-"), %object,
                        blocking = p.blocking, "discovery: {p}");
                }
            }
            now.insert(object, d.problems.clone());
        }
        self.reported = now;
    }
}

/// The next change of `watches`; never, without watches (then the periodic discovery runs).
async fn next_change(watches: &mut Option<Watches>) -> Option<Change> {
    match watches {
        Some(w) => match w.next().await {
            Some(c) => Some(c),
            None => {
                tracing::warn!("discovery: the watches ended; discovering periodically");
                *watches = None;
                std::future::pending().await
            }
        },
        None => std::future::pending().await,
    }
}
