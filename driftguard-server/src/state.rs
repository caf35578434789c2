//! Shared state of the server: the store, the environments with their scanners and status,
//! authentication, metrics.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use driftguard_core::engine::{ScanError, Scanner};
use driftguard_core::ports::{Clock, DriftStore, LiveChange, LiveScope, ScanSummary, SourceError};
use driftguard_core::query::{DriftQuery, DriftStatus};
use tokio::sync::Notify;

use crate::metrics::Metrics;

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

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
}

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
    status: RwLock<EnvStatus>,
    /// Serializes scans and live changes of this environment.
    lock: tokio::sync::Mutex<()>,
    pub(crate) fetch_now: Notify,
    pub(crate) scope_changed: Notify,
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
            name: scanner.engine.spec.name.clone(),
            scanner,
            poll_interval,
            full_scan_interval,
            repositories: Vec::new(),
            status: RwLock::new(EnvStatus::default()),
            lock: tokio::sync::Mutex::new(()),
            fetch_now: Notify::new(),
            scope_changed: Notify::new(),
        }
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

    fn update(&self, f: impl FnOnce(&mut EnvStatus)) {
        f(&mut self.status.write().expect("status lock is never poisoned"));
    }

    /// Asks the poll loop to fetch Git now.
    pub fn request_fetch(&self) {
        self.fetch_now.notify_one();
    }

    /// Whether a push of `repository` concerns this environment.
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

    /// Runs one full scan now (waits for a running scan of this environment to finish first).
    pub async fn run_scan(&self, ctx: &ScanContext) -> Result<ScanSummary, String> {
        let _guard = self.lock.lock().await;
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
                self.update(|s| {
                    s.last_scan = Some(summary.clone());
                    s.last_error = None;
                    s.open_drifts = open.len();
                });
                for e in &report.notify_errors {
                    tracing::warn!(environment = %self.name, error = %e, "notification failed");
                }
                tracing::info!(environment = %self.name, score = summary.score,
                    events = summary.events, duration_ms = summary.duration_ms, "scan finished");
                Ok(summary)
            }
            Err(e) => {
                let msg = describe_scan_error(&e);
                match &e {
                    ScanError::Desired { source, .. } => {
                        self.source("git", Err(source_message(source)), now, &ctx.metrics)
                    }
                    ScanError::Live { source, .. } => {
                        self.source("git", Ok(()), now, &ctx.metrics);
                        self.source("live", Err(source_message(source)), now, &ctx.metrics)
                    }
                    ScanError::Store(_) => {}
                }
                tracing::warn!(environment = %self.name, error = %e, cause = ?std::error::Error::source(&e), "scan failed");
                self.update(|s| s.last_error = Some(msg.clone()));
                Err(msg)
            }
        };
        self.update(|s| s.scanning = false);
        ctx.cache.invalidate();
        if self.scanner.live_scope() != before {
            self.scope_changed.notify_one();
        }
        out
    }

    /// Re-evaluates the objects a live change touched.
    pub async fn apply_change(&self, ctx: &ScanContext, change: &LiveChange) {
        let _guard = self.lock.lock().await;
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
                let q = DriftQuery {
                    environment: Some(self.name.clone()),
                    status: DriftStatus::Open,
                    limit: usize::MAX / 2,
                    ..DriftQuery::default()
                };
                match ctx.store.drifts(&q).await {
                    Ok(page) => {
                        ctx.metrics.set_open_drifts(&self.name, &page.items, now);
                        self.update(|s| s.open_drifts = page.total);
                    }
                    Err(e) => {
                        tracing::warn!(environment = %self.name, error = %e, "cannot read open drifts")
                    }
                }
            }
            Err(e) => {
                tracing::warn!(environment = %self.name, error = %e, "live change not applied");
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
        ScanError::Store(_) => "the store failed".into(),
    }
}

/// What scans need besides the environment.
#[derive(Clone)]
pub struct ScanContext {
    /// The store.
    pub store: Arc<dyn DriftStore>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Answers cached by the API, invalidated after every write.
    pub cache: Arc<ResponseCache>,
}

impl ScanContext {
    /// A context with its own (unshared) cache.
    pub fn new(store: Arc<dyn DriftStore>, metrics: Arc<Metrics>, clock: Arc<dyn Clock>) -> Self {
        ScanContext {
            store,
            metrics,
            clock,
            cache: Arc::new(ResponseCache::new(Duration::ZERO)),
        }
    }
}

/// Serialized answers of read-only queries, keyed by the normalized query. An entry is used
/// only while no scan or live change of this process has written since it was made, and for
/// at most `ttl` (a bound on staleness when another process writes to the same store).
#[derive(Debug)]
pub struct ResponseCache {
    generation: std::sync::atomic::AtomicU64,
    entries: RwLock<std::collections::HashMap<String, (u64, Instant, axum::body::Bytes)>>,
    ttl: Duration,
}

/// Most cached answers kept.
const CACHE_ENTRIES: usize = 512;

impl ResponseCache {
    /// A cache keeping answers for at most `ttl` (zero: disabled).
    pub fn new(ttl: Duration) -> Self {
        ResponseCache {
            generation: std::sync::atomic::AtomicU64::new(0),
            entries: RwLock::new(std::collections::HashMap::new()),
            ttl,
        }
    }

    /// The current generation (read it before querying the store).
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Forgets everything (after a write).
    pub fn invalidate(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// A fresh cached answer.
    pub fn get(&self, key: &str) -> Option<axum::body::Bytes> {
        if self.ttl.is_zero() {
            return None;
        }
        let generation = self.generation();
        let entries = self.entries.read().expect("cache lock is never poisoned");
        entries
            .get(key)
            .filter(|(g, at, _)| *g == generation && at.elapsed() < self.ttl)
            .map(|(_, _, b)| b.clone())
    }

    /// Keeps an answer computed at `generation`.
    pub fn put(&self, key: String, generation: u64, body: axum::body::Bytes) {
        if self.ttl.is_zero() || generation != self.generation() {
            return;
        }
        let mut entries = self.entries.write().expect("cache lock is never poisoned");
        if entries.len() >= CACHE_ENTRIES {
            entries.clear();
        }
        entries.insert(key, (generation, Instant::now(), body));
    }
}

/// Everything the handlers and the supervisor share. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

/// The contents of [`AppState`].
pub struct Inner {
    /// The store.
    pub store: Arc<dyn DriftStore>,
    /// The environments.
    pub environments: Vec<Arc<Environment>>,
    /// Accepted bearer tokens (empty: no authentication; the server then binds to loopback).
    pub tokens: Vec<String>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Shared secret of the Git push webhook (`None`: webhook disabled).
    pub webhook_secret: Option<String>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Time limit of a request.
    pub request_timeout: Duration,
    /// Largest request body.
    pub body_limit: usize,
    /// Public URL used in links.
    pub public_url: Option<String>,
    /// Cached answers of the drift and event lists.
    pub cache: Arc<ResponseCache>,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("environments", &self.environments)
            .field("tokens", &self.tokens.len())
            .finish_non_exhaustive()
    }
}

/// Builds an [`AppState`].
pub struct AppStateBuilder {
    inner: Inner,
}

impl AppState {
    /// Starts building a state around a store and the environments; `metrics` should be the
    /// same instance the notifiers count failures in.
    pub fn builder(
        store: Arc<dyn DriftStore>,
        environments: Vec<Arc<Environment>>,
        metrics: Arc<Metrics>,
    ) -> AppStateBuilder {
        AppStateBuilder {
            inner: Inner {
                store,
                environments,
                tokens: Vec::new(),
                metrics,
                webhook_secret: None,
                clock: Arc::new(SystemClock),
                request_timeout: Duration::from_secs(30),
                body_limit: 1024 * 1024,
                public_url: None,
                cache: Arc::new(ResponseCache::new(Duration::from_secs(1))),
            },
        }
    }

    /// The environment called `name`.
    pub fn environment(&self, name: &str) -> Option<&Arc<Environment>> {
        self.environments.iter().find(|e| e.name == name)
    }

    /// The context scans run in.
    pub fn scan_context(&self) -> ScanContext {
        ScanContext {
            store: self.store.clone(),
            metrics: self.metrics.clone(),
            clock: self.clock.clone(),
            cache: self.cache.clone(),
        }
    }
}

impl AppStateBuilder {
    /// Accepted bearer tokens.
    pub fn tokens(mut self, tokens: Vec<String>) -> Self {
        self.inner.tokens = tokens;
        self
    }

    /// The Git webhook secret.
    pub fn webhook_secret(mut self, secret: Option<String>) -> Self {
        self.inner.webhook_secret = secret;
        self
    }

    /// The clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.inner.clock = clock;
        self
    }

    /// Request time limit.
    pub fn request_timeout(mut self, d: Duration) -> Self {
        self.inner.request_timeout = d;
        self
    }

    /// Largest request body.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.inner.body_limit = bytes;
        self
    }

    /// How long the drift and event lists may be answered from the cache when no write of
    /// this process happened meanwhile (default 1 s; zero disables the cache).
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.inner.cache = Arc::new(ResponseCache::new(ttl));
        self
    }

    /// Public URL for links.
    pub fn public_url(mut self, url: Option<String>) -> Self {
        self.inner.public_url = url.map(|u| u.trim_end_matches('/').to_owned());
        self
    }

    /// Applies the `server:` configuration (timeouts, limits, public URL); tokens and the
    /// webhook secret are resolved separately (see [`crate::config::ServerConfig`]).
    pub fn config(self, cfg: &crate::config::ServerConfig) -> Self {
        self.request_timeout(cfg.request_timeout.0)
            .body_limit(cfg.body_limit)
            .cache_ttl(cfg.cache_ttl.0)
            .public_url(cfg.public_url.clone())
    }

    /// Done.
    pub fn build(self) -> AppState {
        AppState {
            inner: Arc::new(self.inner),
        }
    }
}
