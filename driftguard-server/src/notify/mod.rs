//! Notifiers behind the core's [`Notifier`] port: Slack, generic webhooks, PagerDuty and
//! e-mail, plus routing ([`RoutedNotifier`]) and a delivery queue with retries
//! ([`QueuedNotifier`]) so that detection never waits for a receiver.
//!
//! [`build_notifiers`] turns the configuration into ready notifiers: each is
//! `RoutedNotifier(QueuedNotifier(concrete))`. Add each to every environment's `Scanner`
//! (`Scanner::with_notifier`); routing by environment happens inside.
//!
//! **Delivery marks** ([`Marks`]) say, in the store, how far each notifier's deliveries went,
//! so that a server that stops with alerts still queued sends them after its restart
//! ([`resend_undelivered`]). A single server keeps one mark per notifier. Replicas that elect a
//! leader per environment ([`crate::ha`]) keep one per notifier *and environment*
//! (`<notifier>/<environment>`, [`mark_key`]): each replica alerts only for the environments it
//! leads, a new leader sends again what lies after the environment's mark
//! ([`resend_undelivered_for`]), and a replica that no longer leads an environment delivers
//! none of its alerts and moves none of its marks (the new leader sends them).

pub mod pagerduty;
pub mod slack;
pub mod smtp;
pub mod webhook;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use driftguard_core::ports::{Clock, DriftStore, Notification, Notifier, NotifyError, StoreError};
use driftguard_core::query::EventQuery;
use driftguard_core::severity::Severity;
use driftguard_core::state::{DriftEvent, EventKind};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{NotifierConfig, QueueConfig, RouteConfig, SettingError};
use crate::context::SystemClock;
use crate::dto::{FindingDto, ObjectRef};
use crate::ha::Leadership;
use crate::metrics::{Metrics, NotifyOutcome};
use driftguard_core::findings::drift_risk;

/// What a notifier tells about one event. Holds no field values (only paths), so no Secret
/// value and no raw object is ever sent; the findings' reasons quote only what a rule read,
/// and no rule reads a Secret.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EventView {
    /// Event id.
    pub event_id: String,
    /// `detected`, `changed`, `resolved` or `remediated`.
    pub event: String,
    /// When.
    pub at: DateTime<Utc>,
    /// Episode id (also the PagerDuty dedup key).
    pub episode: String,
    /// The object.
    pub object: ObjectRef,
    /// `modified`, `missing`, `orphan`.
    pub drift: String,
    /// `forward`, `reverse`, `conflict`, `unknown`.
    pub direction: String,
    /// `low` .. `critical`.
    pub severity: String,
    /// Drifted field paths.
    pub fields: Vec<String>,
    /// Who changed it (the people the audit log names, else field managers; or the commit
    /// author), `driftguard` when DriftGuard's remediation ended it; may be empty.
    pub who: String,
    /// The writes of the audit log behind it, one line each (`alice (kubectl-edit, patch,
    /// from 10.0.0.7) at 2024-05-01 12:03:04 UTC`), oldest first; absent when none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub writers: Vec<String>,
    /// Git revision.
    pub revision: Option<String>,
    /// How it ended (resolved events).
    pub resolution: Option<String>,
    /// Link to the drift in the API (when `publicUrl` is configured).
    pub link: Option<String>,
    /// The drift's risk: its severity raised by its findings.
    pub risk: String,
    /// Risk findings, highest risk first.
    pub findings: Vec<FindingDto>,
    /// What DriftGuard did (`remediated` events only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remediation: Option<RemediationView>,
}

/// What a notifier tells of a remediation: what, how, who asked and the result; the changed
/// paths without their values.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RemediationView {
    /// The plan's id.
    pub plan: String,
    /// `revert` or `adopt`.
    pub action: String,
    /// `apply`, `create`, `delete` or `adopt`.
    pub operation: String,
    /// Who asked: `token:<name>`, `cli:<user>`, `policy`.
    pub requested_by: String,
    /// Whether it succeeded.
    pub ok: bool,
    /// The result in words.
    pub result: String,
    /// The paths it changed (or would change).
    pub paths: Vec<String>,
}

impl EventView {
    /// The view of one event.
    pub fn of(e: &DriftEvent, public_url: Option<&str>) -> Self {
        let d = &e.drift;
        EventView {
            event_id: e.event_id.clone(),
            event: e.kind.as_str().to_owned(),
            at: e.at,
            episode: d.episode.clone(),
            object: ObjectRef::from(&d.id),
            drift: d.kind.as_str().to_owned(),
            direction: d.direction.as_str().to_owned(),
            severity: d.severity.as_str().to_owned(),
            fields: d.fields.iter().map(|f| f.path.to_string()).collect(),
            who: d.who(),
            writers: d
                .attribution
                .writers
                .iter()
                .map(driftguard_core::audit::AuditWrite::describe)
                .collect(),
            revision: e.revision.clone(),
            resolution: d.resolution.map(|r| r.as_str().to_owned()),
            link: public_url.map(|u| format!("{u}/api/v1/drifts/{}", d.episode)),
            risk: drift_risk(d.severity, &d.findings).as_str().to_owned(),
            findings: d.findings.iter().map(FindingDto::from).collect(),
            remediation: e.remediation.as_ref().map(|r| RemediationView {
                plan: r.plan_id.clone(),
                action: r.action.as_str().to_owned(),
                operation: r.operation.as_str().to_owned(),
                requested_by: r.requested_by.clone(),
                ok: r.ok,
                result: r.result.clone(),
                paths: r.changes.iter().map(|c| c.path.clone()).collect(),
            }),
        }
    }

    /// The findings in one line: `high security rbac-widened: <reason>; ...` (empty when
    /// there are none).
    pub fn findings_line(&self) -> String {
        self.findings
            .iter()
            .map(|f| format!("{} {} {}: {}", f.risk, f.category, f.rule, f.reason))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// `Deployment.apps shop/web`.
    pub fn object_label(&self) -> String {
        let kg = if self.object.group.is_empty() {
            self.object.kind.clone()
        } else {
            format!("{}.{}", self.object.kind, self.object.group)
        };
        match &self.object.namespace {
            Some(ns) => format!("{kg} {ns}/{}", self.object.name),
            None => format!("{kg} {}", self.object.name),
        }
    }

    /// A one-line summary.
    pub fn headline(&self) -> String {
        match self.event.as_str() {
            "resolved" => format!(
                "resolved: {} {} ({}){}",
                self.drift,
                self.object_label(),
                self.severity,
                self.resolution
                    .as_ref()
                    .map(|r| format!(", {r}"))
                    .unwrap_or_default()
            ),
            "remediated" => match &self.remediation {
                Some(r) => format!(
                    "remediated: {} of {} ({}, asked by {}): {}",
                    r.operation,
                    self.object_label(),
                    if r.ok { "done" } else { "not done" },
                    r.requested_by,
                    r.result
                ),
                None => format!("remediated: {}", self.object_label()),
            },
            ev => format!(
                "{ev}: {} {} drift of {} ({})",
                self.direction,
                self.drift,
                self.object_label(),
                self.severity
            ),
        }
    }
}

/// Counts per event kind: `2 detected, 1 resolved`.
pub fn tally(events: &[DriftEvent]) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for e in events {
        *counts.entry(e.kind.as_str()).or_default() += 1;
    }
    counts
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .connect_timeout(Duration::from_secs(5))
        .user_agent(concat!("driftguard/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

pub(crate) fn send_error(e: reqwest::Error) -> NotifyError {
    // never include the URL: for Slack it is the secret
    let e = e.without_url();
    if e.is_connect() || e.is_timeout() {
        NotifyError::Unreachable {
            source: Box::new(e),
        }
    } else {
        NotifyError::Backend {
            context: "sending the notification".into(),
            source: Box::new(e),
        }
    }
}

pub(crate) fn check_status(status: reqwest::StatusCode) -> Result<(), NotifyError> {
    if status.is_success() {
        Ok(())
    } else {
        Err(NotifyError::Rejected {
            status: status.as_u16(),
        })
    }
}

/// Passes on only the events of some environments at or above a severity, and only
/// detections and resolutions (a drift is announced once when detected, once when resolved),
/// plus the changes that name writers, for the queue to fold into their detection.
pub struct RoutedNotifier {
    /// Where to pass them.
    pub inner: Arc<dyn Notifier>,
    /// Environments (empty: all).
    pub environments: Vec<String>,
    /// Minimum severity.
    pub min_severity: Severity,
}

impl RoutedNotifier {
    /// Filters a notification; `None` when nothing is left.
    pub fn route(&self, n: &Notification) -> Option<Notification> {
        if !self.environments.is_empty() && !self.environments.contains(&n.environment) {
            return None;
        }
        let events: Vec<DriftEvent> = n
            .events
            .iter()
            // a change that names writers goes on to the queue, which folds it into the
            // detection it follows in the same group window (see `group`)
            .filter(|e| {
                (e.kind != EventKind::Changed || !e.drift.attribution.writers.is_empty())
                    && e.drift.severity >= self.min_severity
            })
            .cloned()
            .collect();
        (!events.is_empty()).then(|| Notification {
            environment: n.environment.clone(),
            events,
        })
    }
}

#[async_trait]
impl Notifier for RoutedNotifier {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn notify(&self, n: &Notification) -> Result<(), NotifyError> {
        match self.route(n) {
            Some(n) => self.inner.notify(&n).await,
            None => Ok(()),
        }
    }
}

/// Where and how a notifier's queue records how far its deliveries went.
#[derive(Clone, Default)]
pub enum Marks {
    /// Nothing is recorded.
    #[default]
    None,
    /// One mark per notifier (a single server, which alerts for every environment).
    PerNotifier(Arc<dyn DriftStore>),
    /// One mark per notifier and environment ([`mark_key`]), moved only while this replica
    /// leads the environment; the alerts of an environment it does not lead (any more) are not
    /// delivered: its leader sends them.
    PerEnvironment(Arc<dyn DriftStore>, Arc<Leadership>),
}

impl std::fmt::Debug for Marks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Marks::None => "Marks::None",
            Marks::PerNotifier(_) => "Marks::PerNotifier",
            Marks::PerEnvironment(..) => "Marks::PerEnvironment",
        })
    }
}

/// The key of the delivery mark of `notifier` for `environment` (`<notifier>/<environment>`;
/// environment names hold no `/`, so keys of different pairs differ).
pub fn mark_key(notifier: &str, environment: &str) -> String {
    format!("{notifier}/{environment}")
}

/// A bounded queue in front of a notifier: `notify` returns at once; a background task
/// groups bursts, delivers, retries with exponential backoff, and counts failures.
pub struct QueuedNotifier {
    name: String,
    tx: mpsc::Sender<Notification>,
    metrics: Arc<Metrics>,
}

impl QueuedNotifier {
    /// Starts the delivery task. On `cancel` it stops waiting for more, delivers what is
    /// queued with one attempt each, and ends.
    pub fn spawn(
        inner: Arc<dyn Notifier>,
        cfg: QueueConfig,
        metrics: Arc<Metrics>,
        cancel: CancellationToken,
    ) -> (Arc<QueuedNotifier>, JoinHandle<()>) {
        Self::spawn_marked(inner, cfg, metrics, cancel, None)
    }

    /// Like [`QueuedNotifier::spawn`], recording in `marks` how far deliveries went
    /// ([`DriftStore::set_delivered_until`]) so that [`resend_undelivered`] can send again,
    /// after a restart, what was still queued. A notification counts as handed over once
    /// delivered, or given up after all its retries; one that fails while shutting down is not,
    /// and nothing after it is.
    pub fn spawn_marked(
        inner: Arc<dyn Notifier>,
        cfg: QueueConfig,
        metrics: Arc<Metrics>,
        cancel: CancellationToken,
        marks: Option<Arc<dyn DriftStore>>,
    ) -> (Arc<QueuedNotifier>, JoinHandle<()>) {
        let marks = marks.map_or(Marks::None, Marks::PerNotifier);
        Self::spawn_with_marks(inner, cfg, metrics, cancel, marks)
    }

    /// Like [`QueuedNotifier::spawn_marked`], with the marks kept as `marks` says.
    pub fn spawn_with_marks(
        inner: Arc<dyn Notifier>,
        cfg: QueueConfig,
        metrics: Arc<Metrics>,
        cancel: CancellationToken,
        marks: Marks,
    ) -> (Arc<QueuedNotifier>, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(cfg.capacity.max(1));
        let name = inner.name().to_owned();
        let handle = tokio::spawn(deliver_loop(inner, cfg, metrics.clone(), rx, cancel, marks));
        (Arc::new(QueuedNotifier { name, tx, metrics }), handle)
    }
}

#[async_trait]
impl Notifier for QueuedNotifier {
    fn name(&self) -> &str {
        &self.name
    }

    async fn notify(&self, n: &Notification) -> Result<(), NotifyError> {
        if let Err(e) = self.tx.try_send(n.clone()) {
            self.metrics
                .notification(&self.name, NotifyOutcome::Dropped);
            tracing::warn!(notifier = %self.name, reason = %e, "notification dropped: queue full or closed");
        }
        Ok(())
    }
}

/// Merges notifications of the same environment, keeping order of first appearance. A
/// `changed` event is not announced of itself: when it follows the detection of its drift in
/// the same group window (the audit log named who made the drift soon after it was seen),
/// the detection carries its attribution; otherwise it is dropped.
fn group(batch: Vec<Notification>) -> Vec<Notification> {
    let mut out: Vec<Notification> = Vec::new();
    for n in batch {
        match out.iter_mut().find(|o| o.environment == n.environment) {
            Some(o) => o.events.extend(n.events),
            None => out.push(n),
        }
    }
    for n in &mut out {
        let mut kept: Vec<DriftEvent> = Vec::with_capacity(n.events.len());
        for e in std::mem::take(&mut n.events) {
            if e.kind != EventKind::Changed {
                kept.push(e);
                continue;
            }
            if let Some(d) = kept
                .iter_mut()
                .rev()
                .find(|d| d.kind == EventKind::Detected && d.drift.episode == e.drift.episode)
            {
                d.drift.attribution = e.drift.attribution;
            }
        }
        n.events = kept;
    }
    out.retain(|n| !n.events.is_empty());
    out
}

async fn deliver_loop(
    inner: Arc<dyn Notifier>,
    cfg: QueueConfig,
    metrics: Arc<Metrics>,
    mut rx: mpsc::Receiver<Notification>,
    cancel: CancellationToken,
    marks: Marks,
) {
    let name = inner.name().to_owned();
    let mut closing = false;
    // set once a notification is left undelivered at shutdown: no mark may pass it (per
    // environment with per-environment marks)
    let mut held = false;
    let mut held_envs: std::collections::HashSet<String> = std::collections::HashSet::new();
    let leads = |env: &str| match &marks {
        Marks::PerEnvironment(_, leadership) => leadership.leads(env),
        _ => true,
    };
    loop {
        let first = if closing {
            match rx.recv().await {
                Some(n) => n,
                None => break,
            }
        } else {
            tokio::select! {
                n = rx.recv() => match n { Some(n) => n, None => break },
                _ = cancel.cancelled() => { closing = true; rx.close(); continue; }
            }
        };
        let mut batch = vec![first];
        if closing {
            while let Ok(n) = rx.try_recv() {
                batch.push(n);
            }
        } else {
            let deadline = tokio::time::Instant::now() + cfg.group_window.0;
            loop {
                tokio::select! {
                    n = rx.recv() => match n { Some(n) => batch.push(n), None => break },
                    _ = tokio::time::sleep_until(deadline) => break,
                    _ = cancel.cancelled() => { closing = true; rx.close(); break; }
                }
            }
        }
        let newest = batch.iter().flat_map(|n| &n.events).map(|e| e.at).max();
        // environments of this batch not delivered because another replica leads them now
        let mut skipped: std::collections::HashSet<String> = std::collections::HashSet::new();
        let mut newest_per_env: BTreeMap<String, DateTime<Utc>> = BTreeMap::new();
        for e in batch.iter().flat_map(|n| &n.events) {
            let t = newest_per_env
                .entry(e.drift.id.environment.clone())
                .or_insert(e.at);
            *t = (*t).max(e.at);
        }
        for n in group(batch) {
            let attempts = if closing { 1 } else { cfg.max_attempts.max(1) };
            let mut backoff = cfg.initial_backoff.0;
            let mut attempt = 0;
            loop {
                attempt += 1;
                if !leads(&n.environment) {
                    // another replica leads it now: it sends these from the mark
                    skipped.insert(n.environment.clone());
                    tracing::warn!(notifier = %name, environment = %n.environment, events = n.events.len(),
                        "notification not delivered: this replica no longer leads the environment (its leader sends it)");
                    break;
                }
                match inner.notify(&n).await {
                    Ok(()) => {
                        metrics.notification(&name, NotifyOutcome::Sent);
                        break;
                    }
                    Err(e) => {
                        metrics.notification(&name, NotifyOutcome::Failed);
                        tracing::warn!(notifier = %name, environment = %n.environment, attempt, error = %e, "notification failed");
                        if closing {
                            // shutting down: no more attempts; sent again at the next start
                            held = true;
                            held_envs.insert(n.environment.clone());
                            tracing::warn!(notifier = %name, environment = %n.environment, events = n.events.len(), "notification not delivered before shutdown");
                            break;
                        }
                        if attempt >= attempts {
                            metrics.notification(&name, NotifyOutcome::Dropped);
                            tracing::error!(notifier = %name, environment = %n.environment, events = n.events.len(), "notification given up");
                            break;
                        }
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            _ = cancel.cancelled(), if !closing => { closing = true; rx.close(); }
                        }
                        backoff = (backoff * 2).min(cfg.max_backoff.0);
                    }
                }
            }
        }
        match &marks {
            Marks::None => {}
            Marks::PerNotifier(store) => {
                if let (Some(newest), false) = (newest, held) {
                    if let Err(e) = store.set_delivered_until(&name, newest).await {
                        tracing::warn!(notifier = %name, error = %e, "cannot record how far deliveries went");
                    }
                }
            }
            Marks::PerEnvironment(store, _) => {
                for (env, newest) in newest_per_env {
                    // a mark moves past what was delivered while this replica led the
                    // environment, never past a notification left undelivered (not leading
                    // any more, or shutting down): the environment's leader sends it
                    if held_envs.contains(&env) || skipped.contains(&env) {
                        continue;
                    }
                    if let Err(e) = store
                        .set_delivered_until(&mark_key(&name, &env), newest)
                        .await
                    {
                        tracing::warn!(notifier = %name, environment = %env, error = %e, "cannot record how far deliveries went");
                    }
                }
            }
        }
    }
}

/// Sends again what `notifiers` had not handed over when the server last stopped: the events
/// stored after each one's delivery mark ([`DriftStore::delivered_until`]), oldest first, through
/// the notifier (so routing applies). A notifier without a mark starts from `now`: nothing old
/// is sent. Returns how many events were queued again. Receivers may see an event twice (a
/// crash between delivery and mark): `event_id` tells.
pub async fn resend_undelivered(
    notifiers: &[Arc<dyn Notifier>],
    store: &dyn DriftStore,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let mut marks = Vec::new();
    for notifier in notifiers {
        match store.delivered_until(notifier.name()).await? {
            Some(mark) => marks.push((notifier, mark)),
            None => store.set_delivered_until(notifier.name(), now).await?,
        }
    }
    // one read of the store, from the oldest mark
    let Some(oldest) = marks.iter().map(|(_, mark)| *mark).min() else {
        return Ok(0);
    };
    let mut q = EventQuery {
        since: Some(oldest),
        limit: 1000,
        ..EventQuery::default()
    };
    let mut events: Vec<DriftEvent> = Vec::new();
    loop {
        let page = store.events(&q).await?;
        events.extend(page.items);
        match page.next_offset {
            Some(next) => q.offset = next,
            None => break,
        }
    }
    let mut resent = 0;
    for (notifier, mark) in marks {
        let after: Vec<Notification> = events
            .iter()
            .filter(|e| e.at > mark)
            .map(|e| Notification {
                environment: e.drift.id.environment.clone(),
                events: vec![e.clone()],
            })
            .collect();
        if after.is_empty() {
            continue;
        }
        resent += after.len();
        tracing::info!(notifier = %notifier.name(), events = after.len(), since = %mark, "sending again what was not delivered");
        for n in group(after) {
            if let Err(e) = notifier.notify(&n).await {
                tracing::warn!(notifier = %notifier.name(), error = %e, "cannot queue a notification again");
            }
        }
    }
    Ok(resent)
}

/// Sends again what `notifiers` had not handed over for `environment`, by the marks of
/// [`Marks::PerEnvironment`]: the environment's events stored after each notifier's mark
/// ([`mark_key`]), oldest first, through the notifier (so routing applies). A leader calls it
/// when it takes an environment over, before its loops start, so that what its predecessor
/// had not delivered goes out once. A mark not set yet starts at the notifier's own mark (a
/// store a single server used before) or else at `now`. Returns how many events were queued.
pub async fn resend_undelivered_for(
    notifiers: &[Arc<dyn Notifier>],
    store: &dyn DriftStore,
    environment: &str,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let mut marks = Vec::new();
    for notifier in notifiers {
        let key = mark_key(notifier.name(), environment);
        match store.delivered_until(&key).await? {
            Some(mark) => marks.push((notifier, mark)),
            None => {
                let start = store.delivered_until(notifier.name()).await?.unwrap_or(now);
                store.set_delivered_until(&key, start).await?;
                if start < now {
                    marks.push((notifier, start));
                }
            }
        }
    }
    let Some(oldest) = marks.iter().map(|(_, mark)| *mark).min() else {
        return Ok(0);
    };
    let mut q = EventQuery {
        environment: Some(environment.to_owned()),
        since: Some(oldest),
        limit: 1000,
        ..EventQuery::default()
    };
    let mut events: Vec<DriftEvent> = Vec::new();
    loop {
        let page = store.events(&q).await?;
        events.extend(page.items);
        match page.next_offset {
            Some(next) => q.offset = next,
            None => break,
        }
    }
    let mut resent = 0;
    for (notifier, mark) in marks {
        let after: Vec<DriftEvent> = events.iter().filter(|e| e.at > mark).cloned().collect();
        if after.is_empty() {
            continue;
        }
        resent += after.len();
        tracing::info!(notifier = %notifier.name(), environment, events = after.len(), since = %mark,
            "sending again what the environment's previous leader had not delivered");
        let n = Notification {
            environment: environment.to_owned(),
            events: after,
        };
        if let Err(e) = notifier.notify(&n).await {
            tracing::warn!(notifier = %notifier.name(), error = %e, "cannot queue a notification again");
        }
    }
    Ok(resent)
}

/// Notifiers built from the configuration, and their delivery tasks.
pub struct BuiltNotifiers {
    /// Add each to every environment's scanner.
    pub notifiers: Vec<Arc<dyn Notifier>>,
    /// Delivery tasks; they end after the cancellation token given to [`build_notifiers`].
    pub workers: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for BuiltNotifiers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuiltNotifiers")
            .field("notifiers", &self.notifiers.len())
            .finish()
    }
}

impl BuiltNotifiers {
    /// Waits (at most `grace`) for the delivery tasks to flush after cancellation.
    pub async fn flush(self, grace: Duration) {
        let all = futures_util::future::join_all(self.workers);
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!("notification queues not flushed within the shutdown grace period");
        }
    }
}

fn env_var(
    env: &dyn Fn(&str) -> Option<String>,
    var: &str,
    field: &str,
) -> Result<String, SettingError> {
    env(var)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| SettingError::MissingEnv {
            var: var.to_owned(),
            field: field.to_owned(),
        })
}

/// Builds the configured notifiers (must run inside a Tokio runtime: it spawns their queues).
/// `env` reads environment variables (pass `|k| std::env::var(k).ok()`).
pub fn build_notifiers(
    configs: &[NotifierConfig],
    metrics: Arc<Metrics>,
    public_url: Option<String>,
    cancel: CancellationToken,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<BuiltNotifiers, SettingError> {
    build_notifiers_marked(configs, metrics, public_url, cancel, env, None)
}

/// Like [`build_notifiers`], the queues recording in `marks` how far deliveries went (see
/// [`QueuedNotifier::spawn_marked`] and [`resend_undelivered`]).
pub fn build_notifiers_marked(
    configs: &[NotifierConfig],
    metrics: Arc<Metrics>,
    public_url: Option<String>,
    cancel: CancellationToken,
    env: &dyn Fn(&str) -> Option<String>,
    marks: Option<Arc<dyn DriftStore>>,
) -> Result<BuiltNotifiers, SettingError> {
    let marks = marks.map_or(Marks::None, Marks::PerNotifier);
    build_notifiers_with_marks(
        configs,
        metrics,
        public_url,
        cancel,
        env,
        marks,
        Arc::new(SystemClock),
    )
}

/// Like [`build_notifiers`], the queues keeping their delivery marks as `marks` says, the
/// notifiers that date what they send (e-mail) reading `clock` ([`build_notifiers`] and
/// [`build_notifiers_marked`] read the system clock).
pub fn build_notifiers_with_marks(
    configs: &[NotifierConfig],
    metrics: Arc<Metrics>,
    public_url: Option<String>,
    cancel: CancellationToken,
    env: &dyn Fn(&str) -> Option<String>,
    marks: Marks,
    clock: Arc<dyn Clock>,
) -> Result<BuiltNotifiers, SettingError> {
    let public_url = public_url.map(|u| u.trim_end_matches('/').to_owned());
    let mut out = BuiltNotifiers {
        notifiers: Vec::new(),
        workers: Vec::new(),
    };
    for (i, cfg) in configs.iter().enumerate() {
        let field = |f: &str| format!("server.notifiers[{i}].{f}");
        let (inner, route, queue): (Arc<dyn Notifier>, &RouteConfig, &QueueConfig) = match cfg {
            NotifierConfig::Slack {
                name: _,
                url_env,
                url,
                route,
                queue,
            } => {
                let url = match (url_env, url) {
                    (Some(var), _) => env_var(env, var, &field("urlEnv"))?,
                    (None, Some(u)) => u.clone(),
                    (None, None) => {
                        return Err(SettingError::Invalid {
                            field: field("urlEnv"),
                            message: "a Slack notifier needs urlEnv (or url)".into(),
                        })
                    }
                };
                let n = slack::SlackNotifier::new(
                    cfg.name().to_owned(),
                    parse_url(&url, &field("url"))?,
                    public_url.clone(),
                );
                (Arc::new(n), route, queue)
            }
            NotifierConfig::Webhook {
                name: _,
                url,
                secret_env,
                route,
                queue,
            } => {
                let secret = secret_env
                    .as_ref()
                    .map(|v| env_var(env, v, &field("secretEnv")))
                    .transpose()?;
                let n = webhook::WebhookNotifier::new(
                    cfg.name().to_owned(),
                    parse_url(url, &field("url"))?,
                    secret,
                    public_url.clone(),
                );
                (Arc::new(n), route, queue)
            }
            NotifierConfig::Pagerduty {
                name: _,
                routing_key_env,
                events_url,
                route,
                queue,
            } => {
                let key = env_var(env, routing_key_env, &field("routingKeyEnv"))?;
                let url = events_url
                    .clone()
                    .unwrap_or_else(|| pagerduty::DEFAULT_EVENTS_URL.into());
                let n = pagerduty::PagerDutyNotifier::new(
                    cfg.name().to_owned(),
                    parse_url(&url, &field("eventsUrl"))?,
                    key,
                    public_url.clone(),
                );
                (Arc::new(n), route, queue)
            }
            NotifierConfig::Email {
                name: _,
                host,
                port,
                tls,
                ca_file,
                from,
                to,
                username,
                password_env,
                route,
                queue,
            } => {
                let credentials = match (username, password_env) {
                    (Some(u), Some(p)) => {
                        Some((u.clone(), env_var(env, p, &field("passwordEnv"))?))
                    }
                    (None, None) => None,
                    _ => {
                        return Err(SettingError::Invalid {
                            field: field("username"),
                            message: "username and passwordEnv go together".into(),
                        })
                    }
                };
                let n = smtp::SmtpNotifier::new(
                    cfg.name().to_owned(),
                    host.clone(),
                    port.unwrap_or(tls.default_port()),
                    from.clone(),
                    to.clone(),
                    credentials,
                    public_url.clone(),
                )
                .map_err(|e| SettingError::Invalid {
                    field: field("to"),
                    message: driftguard_core::error::chain(&e),
                })?
                .with_tls(*tls, ca_file.as_deref())
                .map_err(|e| SettingError::Invalid {
                    field: field("caFile"),
                    message: driftguard_core::error::chain(&e),
                })?
                .with_clock(clock.clone());
                (Arc::new(n), route, queue)
            }
        };
        // names label metrics and delivery marks: each must be its own
        if out.notifiers.iter().any(|n| n.name() == inner.name()) {
            return Err(SettingError::Invalid {
                field: field("name"),
                message: format!(
                    "the name `{}` is used by another notifier: give each its own `name`",
                    inner.name()
                ),
            });
        }
        let (queued, handle) = QueuedNotifier::spawn_with_marks(
            inner,
            queue.clone(),
            metrics.clone(),
            cancel.clone(),
            marks.clone(),
        );
        out.workers.push(handle);
        out.notifiers.push(Arc::new(RoutedNotifier {
            inner: queued,
            environments: route.environments.clone(),
            min_severity: route.min_severity.unwrap_or(Severity::Low),
        }));
    }
    Ok(out)
}

fn parse_url(u: &str, field: &str) -> Result<reqwest::Url, SettingError> {
    let url = reqwest::Url::parse(u).map_err(|e| SettingError::Invalid {
        field: field.to_owned(),
        message: format!("not a URL: {e}"),
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(SettingError::Invalid {
            field: field.to_owned(),
            message: "expected an http or https URL".into(),
        });
    }
    Ok(url)
}
