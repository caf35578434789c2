//! One environment of the running service: its scanner, its intervals and what is known of its
//! sources, with the two operations the supervisors run on it (a full scan, a live change).
//!
//! With leader election ([`crate::ha`]) an environment runs its operations only while this
//! replica leads it ([`Leadership::leads`]), and a write the store refuses (an older epoch:
//! another replica leads it now) makes it ask its elector to step down
//! ([`Environment::step_down_requested`]).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures_util::FutureExt;

use chrono::{DateTime, Utc};
use driftguard_core::audit::{AuditEvent, AuditObject, IngestStats};
use driftguard_core::engine::ScanError;
use driftguard_core::error::chain;
use driftguard_core::model::Provenance;
use driftguard_core::ports::{LiveChange, LiveScope, ScanSummary, SourceError, StoreError};
use driftguard_core::scanner::{Scanner, WriteHealth};
use driftguard_core::terraform::codify::{coverage_of_verdicts, Coverage};
use tokio::sync::Notify;

use crate::audit::{read_log, AuditReadError, AuditSettings, LogRead};
use crate::context::ScanContext;
use crate::ha::Leadership;
use crate::metrics::Metrics;

/// The state of one source of an environment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SourceState {
    /// Whether it answered at its last use (`None`: not used yet).
    pub up: Option<bool>,
    /// When it last answered.
    pub last_ok: Option<DateTime<Utc>>,
    /// The last error (a one-line message, no internals).
    pub error: Option<String>,
}

/// What is known about an environment.
#[derive(Clone, Debug, Default)]
pub struct EnvStatus {
    /// The last full scan.
    pub last_scan: Option<ScanSummary>,
    /// The last scan failure.
    pub last_error: Option<String>,
    /// The desired side.
    pub git: SourceState,
    /// The live side.
    pub live: SourceState,
    /// Whether a watch is running.
    pub watching: bool,
    /// Whether a scan is running.
    pub scanning: bool,
    /// Open drifts after the last scan or live change.
    pub open_drifts: usize,
    /// The share of the cloud account's resources that code manages, from the last check of
    /// a Terraform environment listing its account (`terraform.orphans`).
    pub iac_coverage: Option<Coverage>,
}

/// Why a scan asked for through [`Environment::run_scan`] failed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum RunScanError {
    /// A source could not be read (the message says which and why).
    #[error("{0}")]
    Source(String),
    /// The store could not be read or written.
    #[error("{0}")]
    Store(String),
    /// This replica does not lead the environment (leader election): its leader scans it.
    #[error("{0}")]
    NotLeader(String),
}

/// A scan asked for now, shared by the requests that wait for it.
type RequestedScan = futures_util::future::Shared<
    futures_util::future::BoxFuture<'static, Result<ScanSummary, RunScanError>>,
>;

/// One environment: its scanner, its intervals and its status.
pub struct Environment {
    /// Name.
    pub name: String,
    /// The scanner.
    pub scanner: Arc<Scanner>,
    /// How often Git is fetched.
    pub poll_interval: Duration,
    /// How often a full reconciling scan runs.
    pub full_scan_interval: Duration,
    /// Repository URL(s) whose push webhooks concern this environment (empty: every push).
    pub repositories: Vec<String>,
    /// A link to the repository's web page (for links to files), when configured.
    pub web_url: Option<String>,
    /// Where its audit events come from (`None`: no audit index).
    pub audit: Option<AuditSettings>,
    /// The kinds of the cloud account a Terraform environment lists for orphans (`None`: not
    /// listed): its IaC coverage is counted over them.
    pub cloud_kinds: Option<Vec<String>>,
    status: RwLock<EnvStatus>,
    pub(crate) fetch_now: Notify,
    pub(crate) scope_changed: Notify,
    /// Who leads which environment, with leader election.
    leadership: Option<Arc<Leadership>>,
    /// Signalled when the store refused a write of this replica's epoch.
    step_down: Notify,
    /// The highest epoch of this replica whose write the store refused.
    refused_epoch: std::sync::Mutex<Option<u64>>,
    /// Objects new audit events wrote to, whose open drifts are to name their writers.
    pending_audit: Mutex<BTreeSet<AuditObject>>,
    /// The scan asked for now that is running, shared by every request made meanwhile.
    requested: std::sync::Mutex<Option<RequestedScan>>,
    pub(crate) audit_wake: Notify,
}

impl std::fmt::Debug for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Environment")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Environment {
    /// An environment around a scanner (its name is the scanner's environment name).
    pub fn new(
        scanner: Arc<Scanner>,
        poll_interval: Duration,
        full_scan_interval: Duration,
    ) -> Self {
        Environment {
            name: scanner.environment().to_owned(),
            scanner,
            poll_interval,
            full_scan_interval,
            repositories: Vec::new(),
            web_url: None,
            audit: None,
            cloud_kinds: None,
            status: RwLock::new(EnvStatus::default()),
            fetch_now: Notify::new(),
            scope_changed: Notify::new(),
            leadership: None,
            step_down: Notify::new(),
            refused_epoch: std::sync::Mutex::new(None),
            pending_audit: Mutex::new(BTreeSet::new()),
            requested: std::sync::Mutex::new(None),
            audit_wake: Notify::new(),
        }
    }

    /// Counts the IaC coverage of each check over the account's `kinds` (a Terraform
    /// environment listing its account for orphans).
    pub fn with_cloud_kinds(mut self, kinds: Option<Vec<String>>) -> Self {
        self.cloud_kinds = kinds;
        self
    }

    /// Takes audit events from `settings` (the scanner's environment must have audit
    /// settings too, see `EnvironmentSpec::audit`).
    pub fn with_audit(mut self, settings: AuditSettings) -> Self {
        self.audit = Some(settings);
        self
    }

    /// Adds audit events to the index (see [`Scanner::ingest_audit`]); the open drifts of the
    /// objects they wrote to name their writers soon after (the supervisor's audit loop).
    pub async fn ingest_audit(
        &self,
        ctx: &ScanContext,
        events: &[AuditEvent],
    ) -> Result<IngestStats, StoreError> {
        let stats = self.scanner.ingest_audit(events, None).await?;
        self.indexed(ctx, &stats.objects);
        ctx.metrics.audit(&self.name, "indexed", stats.indexed);
        ctx.metrics.audit(&self.name, "ignored", stats.ignored);
        ctx.metrics.audit(&self.name, "duplicate", stats.duplicates);
        Ok(stats)
    }

    /// Reads the audit log file on from where it was left, if there is one (see
    /// [`crate::audit::read_log`]).
    pub async fn read_audit_log(
        &self,
        ctx: &ScanContext,
    ) -> Option<Result<LogRead, AuditReadError>> {
        let reader = self.audit.as_ref()?.log.as_ref()?;
        let read = read_log(&self.scanner, reader).await;
        if let Ok(r) = &read {
            self.indexed(ctx, &r.objects);
            ctx.metrics.audit(&self.name, "indexed", r.indexed);
            ctx.metrics
                .audit(&self.name, "duplicate", r.writes - r.indexed);
        }
        Some(read)
    }

    /// Queues the objects that gained writes, and wakes the audit loop.
    fn indexed(&self, _ctx: &ScanContext, objects: &[AuditObject]) {
        if objects.is_empty() {
            return;
        }
        self.pending_audit
            .lock()
            .expect("pending lock is never poisoned")
            .extend(objects.iter().cloned());
        self.audit_wake.notify_one();
    }

    /// Has the open drifts of the objects new audit events wrote to name their writers (a
    /// `changed` event for each drift that gains one). Waits for a scan in progress.
    pub async fn attribute_pending(&self, ctx: &ScanContext) {
        let objects: Vec<AuditObject> = std::mem::take(
            &mut *self
                .pending_audit
                .lock()
                .expect("pending lock is never poisoned"),
        )
        .into_iter()
        .collect();
        if objects.is_empty() {
            return;
        }
        let now = ctx.clock.now();
        let named = self.scanner.attribute_writes(&objects).await;
        ctx.cache.invalidate();
        match named {
            Ok(events) if events.is_empty() => {}
            Ok(events) => {
                ctx.metrics.count_events(&self.name, &events);
                let open = self.scanner.open_drifts().await;
                ctx.metrics.set_open_drifts(&self.name, &open, now);
                self.update(|s| s.open_drifts = open.len());
                tracing::info!(environment = %self.name, drifts = events.len(),
                    "the audit log named who made drifts");
            }
            Err(e @ ScanError::Unwritten { .. }) => {
                tracing::warn!(environment = %self.name, error = %chain(&e),
                    "attribution kept: it is written and announced when the store answers");
            }
            Err(e) => {
                tracing::warn!(environment = %self.name, error = %chain(&e), "attribution not applied");
            }
        }
    }

    /// Links files to the repository's web page: a base URL (`https://github.com/org/repo`:
    /// `{base}/blob/{revision}/{file}#L{line}`) or a template with `{revision}`, `{path}` and
    /// `{line}`.
    pub fn with_web_url(mut self, url: Option<String>) -> Self {
        self.web_url = url.map(|u| u.trim_end_matches('/').to_owned());
        self
    }

    /// The web page of a file and line in the repository, when [`Environment::web_url`] is
    /// configured, the revision is known and the object comes from a manifest file (not a
    /// renderer).
    pub fn file_link(&self, p: &Provenance) -> Option<String> {
        if p.rendered.is_some() {
            // a rendered object's `file` is its template as the renderer names it, and its
            // line is in the rendered output: neither is a place in the repository
            return None;
        }
        let base = self.web_url.as_deref()?;
        let revision = p.revision.as_deref()?;
        let line = p.line.to_string();
        Some(if base.contains("{path}") {
            base.replace("{revision}", revision)
                .replace("{path}", &p.file)
                .replace("{line}", &line)
        } else {
            format!("{base}/blob/{revision}/{}#L{line}", p.file)
        })
    }

    /// Runs operations only while this replica leads the environment (leader election).
    pub fn with_leadership(mut self, leadership: Arc<Leadership>) -> Self {
        self.leadership = Some(leadership);
        self
    }

    /// The leadership view, with leader election.
    pub fn leadership(&self) -> Option<&Arc<Leadership>> {
        self.leadership.as_ref()
    }

    /// Whether this replica may run the environment's operations now: always without leader
    /// election; with it, while it leads the environment.
    pub fn leads(&self) -> bool {
        self.leadership.as_ref().is_none_or(|l| l.leads(&self.name))
    }

    /// Completes when the store refused a write of this replica carrying `epoch` or a later
    /// one (another replica leads the environment): the elector then steps down.
    pub async fn step_down_requested(&self, epoch: u64) {
        loop {
            let notified = self.step_down.notified();
            let refused = *self
                .refused_epoch
                .lock()
                .expect("refusal lock is never poisoned");
            if refused.is_some_and(|r| r >= epoch) {
                return;
            }
            notified.await;
        }
    }

    /// Which replica leads this environment, in words (for a refusal on a replica that does
    /// not).
    pub fn not_leader(&self) -> String {
        let holder = self
            .leadership
            .as_ref()
            .and_then(|l| l.view(&self.name).holder);
        match holder {
            Some(h) => format!("environment {} is led by replica {h}", self.name),
            None => format!("environment {} has no leader on this replica", self.name),
        }
    }

    /// Whether `e` is the store refusing this replica's epoch; if so, asks for a step-down.
    fn refused(&self, e: &ScanError) -> bool {
        let conflict = matches!(
            e,
            ScanError::Store(StoreError::Conflict { .. })
                | ScanError::Unwritten {
                    source: StoreError::Conflict { .. },
                    ..
                }
        );
        if conflict && self.leadership.is_some() {
            tracing::warn!(environment = %self.name, epoch = ?self.scanner.epoch(), error = %chain(e),
                "the store refused this replica's write: another replica leads the environment; stepping down");
            if let Some(epoch) = self.scanner.epoch() {
                let mut refused = self
                    .refused_epoch
                    .lock()
                    .expect("refusal lock is never poisoned");
                *refused = Some(refused.map_or(epoch, |r| r.max(epoch)));
            }
            self.step_down.notify_one();
            return true;
        }
        false
    }

    /// Limits the Git push webhooks that trigger a fetch to these repository URLs.
    pub fn with_repositories(mut self, urls: Vec<String>) -> Self {
        self.repositories = urls;
        self
    }

    /// A copy of the status.
    pub fn status(&self) -> EnvStatus {
        self.status
            .read()
            .expect("status lock is never poisoned")
            .clone()
    }

    /// Whether the scanner's writes reach the store.
    pub fn write_health(&self) -> WriteHealth {
        self.scanner.write_health()
    }

    fn update(&self, f: impl FnOnce(&mut EnvStatus)) {
        f(&mut self.status.write().expect("status lock is never poisoned"));
    }

    /// Asks the poll loop to fetch Git now.
    pub fn request_fetch(&self) {
        self.fetch_now.notify_one();
    }

    /// Whether a push of `repository` (the URLs a push payload names) concerns this
    /// environment.
    pub fn wants_push(&self, repository: &[String]) -> bool {
        self.repositories.is_empty()
            || self.repositories.iter().any(|r| {
                repository
                    .iter()
                    .any(|u| normalize_repo(u) == normalize_repo(r))
            })
    }

    fn source(&self, which: &str, ok: Result<(), String>, now: DateTime<Utc>, metrics: &Metrics) {
        let up = ok.is_ok();
        metrics.source(&self.name, which, up, now);
        self.update(|s| {
            let st = if which == "git" {
                &mut s.git
            } else {
                &mut s.live
            };
            st.up = Some(up);
            match ok {
                Ok(()) => {
                    st.last_ok = Some(now);
                    st.error = None;
                }
                Err(e) => st.error = Some(e),
            }
        });
    }

    /// A full scan asked for now (through the API, MCP or the dashboard): requests made while
    /// one runs share it instead of queueing scans of their own, so ten concurrent requests
    /// cost one scan. The scan runs in its own task: a request that gives up does not stop it.
    pub fn requested_scan(
        self: &Arc<Self>,
        ctx: &ScanContext,
    ) -> impl std::future::Future<Output = Result<ScanSummary, RunScanError>> + 'static {
        let mut slot = self
            .requested
            .lock()
            .expect("the requested-scan slot is never poisoned: nothing panics holding it");
        if let Some(running) = slot.as_ref() {
            return running.clone();
        }
        let (me, ctx) = (Arc::clone(self), ctx.clone());
        let scan = async move {
            let task = tokio::spawn(async move {
                let out = me.run_scan(&ctx).await;
                *me.requested.lock().expect(
                    "the requested-scan slot is never poisoned: nothing panics holding it",
                ) = None;
                out
            });
            task.await
                .unwrap_or_else(|e| Err(RunScanError::Source(format!("the scan task ended: {e}"))))
        }
        .boxed()
        .shared();
        *slot = Some(scan.clone());
        scan
    }

    /// Runs one full scan now (the scanner runs one scan or live change at a time: this waits
    /// for one in progress).
    pub async fn run_scan(&self, ctx: &ScanContext) -> Result<ScanSummary, RunScanError> {
        if !self.leads() {
            return Err(RunScanError::NotLeader(self.not_leader()));
        }
        let before: Option<LiveScope> = self.scanner.live_scope();
        self.update(|s| s.scanning = true);
        let t0 = Instant::now();
        let result = self.scanner.scan().await;
        let secs = t0.elapsed().as_secs_f64();
        let now = ctx.clock.now();
        let out = match result {
            Ok(report) => {
                ctx.metrics.record_scan(&report.summary, secs);
                self.source("git", Ok(()), now, &ctx.metrics);
                self.source("live", Ok(()), now, &ctx.metrics);
                ctx.metrics.count_events(&self.name, &report.events);
                let open: Vec<_> = report.drifts().cloned().collect();
                ctx.metrics.set_open_drifts(&self.name, &open, now);
                let summary = report.summary.clone();
                let coverage = self.cloud_kinds.as_ref().map(|kinds| {
                    coverage_of_verdicts(&report.verdicts, kinds, &report.summary.errors)
                });
                if let Some(c) = &coverage {
                    ctx.metrics.set_iac_coverage(&self.name, c);
                }
                self.update(|s| {
                    s.last_scan = Some(summary.clone());
                    s.last_error = None;
                    s.open_drifts = open.len();
                    if coverage.is_some() {
                        s.iac_coverage = coverage.clone();
                    }
                });
                for e in &report.notify_errors {
                    tracing::warn!(environment = %self.name, error = %e, "notification failed");
                }
                tracing::info!(environment = %self.name, score = summary.score,
                    events = summary.events, duration_ms = summary.duration_ms, "scan finished");
                Ok(summary)
            }
            Err(e) if self.refused(&e) => {
                let msg = format!("{}: {}", self.not_leader(), chain(&e));
                self.update(|s| s.last_error = Some(msg.clone()));
                Err(RunScanError::NotLeader(msg))
            }
            Err(e) => {
                let msg = describe_scan_error(&e);
                let err = match &e {
                    ScanError::Desired { source, .. } => {
                        self.source("git", Err(source_message(source)), now, &ctx.metrics);
                        RunScanError::Source(msg.clone())
                    }
                    ScanError::Live { source, .. } => {
                        self.source("git", Ok(()), now, &ctx.metrics);
                        self.source("live", Err(source_message(source)), now, &ctx.metrics);
                        RunScanError::Source(msg.clone())
                    }
                    ScanError::Store(_) | ScanError::Unwritten { .. } => {
                        RunScanError::Store(msg.clone())
                    }
                };
                tracing::warn!(environment = %self.name, error = %chain(&e), "scan failed");
                self.update(|s| s.last_error = Some(msg));
                Err(err)
            }
        };
        self.update(|s| s.scanning = false);
        ctx.cache.invalidate();
        if let Ok(summary) = &out {
            ctx.feed.publish_scan(summary);
        }
        if self.scanner.live_scope() != before {
            self.scope_changed.notify_one();
        }
        out
    }

    /// Re-evaluates the objects a live change touched. Metrics and the status follow from
    /// the scanner's records; the store is not read back.
    pub async fn apply_change(&self, ctx: &ScanContext, change: &LiveChange) {
        if !self.leads() {
            tracing::debug!(environment = %self.name, "live change ignored: this replica does not lead the environment");
            return;
        }
        let now = ctx.clock.now();
        match change {
            LiveChange::Disconnected(reason) => {
                self.source(
                    "live",
                    Err(format!("watch disconnected: {reason}")),
                    now,
                    &ctx.metrics,
                );
                return;
            }
            _ => self.source("live", Ok(()), now, &ctx.metrics),
        }
        let applied = self.scanner.apply_live_change(change).await;
        ctx.cache.invalidate();
        match applied {
            Ok(events) if events.is_empty() => {}
            Ok(events) => {
                ctx.metrics.count_events(&self.name, &events);
                let open = self.scanner.open_drifts().await;
                ctx.metrics.set_open_drifts(&self.name, &open, now);
                self.update(|s| s.open_drifts = open.len());
            }
            Err(e) if self.refused(&e) => {}
            Err(e @ ScanError::Unwritten { .. }) => {
                tracing::warn!(environment = %self.name, error = %chain(&e),
                    "live change kept: it is written and announced when the store answers");
            }
            Err(e) => {
                tracing::warn!(environment = %self.name, error = %chain(&e), "live change not applied");
            }
        }
    }

    /// Writes what the scanner kept while the store could not be written. Returns whether
    /// nothing is kept any more.
    pub async fn retry_unwritten(&self, ctx: &ScanContext) -> bool {
        if !self.leads() {
            return false;
        }
        match self.scanner.retry_unwritten().await {
            Ok(0) => {
                ctx.cache.invalidate();
                let now = ctx.clock.now();
                let open = self.scanner.open_drifts().await;
                ctx.metrics.set_open_drifts(&self.name, &open, now);
                self.update(|s| s.open_drifts = open.len());
                tracing::info!(environment = %self.name, "the store answers again: kept changes written");
                true
            }
            Ok(_) => false,
            Err(e @ StoreError::Conflict { .. }) => {
                self.refused(&ScanError::Store(e));
                false
            }
            Err(e) => {
                tracing::debug!(environment = %self.name, error = %chain(&e), "store still unavailable");
                false
            }
        }
    }

    pub(crate) fn set_watching(&self, on: bool) {
        self.update(|s| s.watching = on);
    }

    pub(crate) fn mark_git(&self, ok: Result<(), String>, ctx: &ScanContext) {
        self.source("git", ok, ctx.clock.now(), &ctx.metrics);
    }

    pub(crate) fn mark_live(&self, ok: Result<(), String>, ctx: &ScanContext) {
        self.source("live", ok, ctx.clock.now(), &ctx.metrics);
    }
}

fn normalize_repo(u: &str) -> String {
    u.trim()
        .trim_end_matches('/')
        .trim_end_matches(".git")
        .to_ascii_lowercase()
}

/// A one-line message for a source error that names no internals beyond the source's own words.
pub fn source_message(e: &SourceError) -> String {
    e.to_string()
}

fn describe_scan_error(e: &ScanError) -> String {
    match e {
        ScanError::Desired {
            source_name,
            source,
        } => {
            format!("cannot read the desired state ({source_name}): {source}")
        }
        ScanError::Live {
            source_name,
            source,
        } => {
            format!("cannot read the live state ({source_name}): {source}")
        }
        ScanError::Store(_) | ScanError::Unwritten { .. } => "the store is unavailable".into(),
    }
}
