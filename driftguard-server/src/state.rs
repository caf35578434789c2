//! Shared state of the server: the store, the environments with their scanners and status,
//! authentication, metrics.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use driftguard_core::ports::{Clock, DriftStore};

use crate::auth::session::Sessions;
use crate::auth::throttle::Throttle;
use crate::auth::{caller_of, Caller};
use crate::config::AddrRange;
use crate::context::{ResponseCache, ScanContext, SystemClock};
use crate::feed::EventFeed;
use crate::metrics::Metrics;

pub use crate::environment::{EnvStatus, Environment, SourceState};

/// Everything the handlers and the supervisor share. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

/// The contents of [`AppState`].
pub struct Inner {
    /// The store.
    pub store: Arc<dyn DriftStore>,
    /// The environments watched now (read them with [`AppState::environments`]).
    environments: RwLock<Arc<[Arc<Environment>]>>,
    /// Accepted bearer tokens (empty: no authentication; the server then binds to loopback).
    /// They may read and scan.
    pub tokens: Vec<String>,
    /// Named bearer tokens with scopes (`server.apiTokens`).
    pub scoped_tokens: Vec<crate::config::ScopedToken>,
    /// Remediation (`None`: no environment can be remediated through the API).
    pub remediation: Option<Arc<crate::remediate::RemediationService>>,
    /// The kill switch of the remediation policies.
    pub remediation_paused: Arc<std::sync::atomic::AtomicBool>,
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
    /// The write buffer in front of the store, when there is one (its health is reported by
    /// `/readyz`).
    pub buffer: Option<Arc<driftguard_store::BufferedStore>>,
    /// The live feed of stored events and finished scans (`GET /api/v1/events/stream`).
    pub feed: Arc<EventFeed>,
    /// The dashboard's sessions.
    pub sessions: Arc<Sessions>,
    /// Ends the MCP sessions served over HTTP (cancelled when the server shuts down, so that
    /// an open event stream does not hold the shutdown).
    pub mcp_cancel: tokio_util::sync::CancellationToken,
    /// The proxies whose `X-Forwarded-For` and `X-Forwarded-Proto` are believed
    /// (`server.trustedProxies`).
    pub trusted_proxies: Vec<AddrRange>,
    /// The limit on failed sign-ins and token checks per client.
    pub throttle: Arc<Throttle>,
    /// The deployment tools' latest verdict per discovered environment.
    pub verdicts: Arc<crate::verdicts::Verdicts>,
    /// Failed sign-ins counted per client and minute (recorded as people's actions).
    pub sign_in_failures: Arc<crate::queries::actions::SignInFailures>,
    /// Sign-in with OpenID Connect (`server.oidc`), when configured.
    pub oidc: Option<Arc<crate::auth::oidc::Oidc>>,
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
            .field("environments", &self.environments())
            .field("tokens", &self.tokens.len())
            .finish_non_exhaustive()
    }
}

/// Builds an [`AppState`].
pub struct AppStateBuilder {
    inner: Inner,
}

impl AppState {
    /// Whether requests need a token or a session (plain or named tokens, or sign-in with
    /// OpenID Connect, are configured).
    pub fn auth_required(&self) -> bool {
        !self.tokens.is_empty() || !self.scoped_tokens.is_empty() || self.oidc.is_some()
    }

    /// Who a token is among this server's tokens, and what it may do (see
    /// [`crate::auth::caller_of`]). `None`: not a token of this server.
    pub fn caller(&self, token: &str) -> Option<Caller> {
        caller_of(token, &self.tokens, &self.scoped_tokens)
    }

    /// `caller` with its role bindings by labels naming the environments discovered now
    /// ([`Caller::with_labelled`]): asked on every request a token or a session makes (a
    /// session keeps the caller unresolved, so that a label that changes counts at once).
    pub fn resolved(&self, caller: Caller) -> Caller {
        if caller.grants.iter().all(|g| g.labels.is_empty()) {
            return caller;
        }
        caller.with_labelled(|labels| self.verdicts.labelled(labels))
    }

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
                environments: RwLock::new(environments.into()),
                tokens: Vec::new(),
                scoped_tokens: Vec::new(),
                remediation: None,
                remediation_paused: Arc::new(std::sync::atomic::AtomicBool::new(false)),
                metrics,
                webhook_secret: None,
                clock: Arc::new(SystemClock),
                request_timeout: Duration::from_secs(30),
                body_limit: 1024 * 1024,
                public_url: None,
                cache: Arc::new(ResponseCache::new(Duration::from_secs(1))),
                buffer: None,
                feed: Arc::new(EventFeed::new()),
                sessions: Arc::new(Sessions::new()),
                mcp_cancel: tokio_util::sync::CancellationToken::new(),
                trusted_proxies: Vec::new(),
                throttle: Arc::new(Throttle::new()),
                verdicts: Arc::new(crate::verdicts::Verdicts::default()),
                sign_in_failures: Arc::default(),
                oidc: None,
            },
        }
    }

    /// The environments watched now: the file's, then (with a `discover:` section) those
    /// discovered. With discovery the set changes while `serve` runs ([`crate::follow`]):
    /// this is a snapshot, and an environment taken from it may have stopped since.
    pub fn environments(&self) -> Arc<[Arc<Environment>]> {
        self.environments
            .read()
            .expect("the environment set's lock is never poisoned: nothing panics holding it")
            .clone()
    }

    /// The environment called `name`, among those watched now.
    pub fn environment(&self, name: &str) -> Option<Arc<Environment>> {
        self.environments().iter().find(|e| e.name == name).cloned()
    }

    /// Replaces the set of environments (discovery following the cluster): requests from
    /// now on see `environments`. Starting and stopping their loops is the caller's.
    pub(crate) fn set_environments(&self, environments: Vec<Arc<Environment>>) {
        *self
            .environments
            .write()
            .expect("the environment set's lock is never poisoned: nothing panics holding it") =
            environments.into();
    }

    /// The state as `caller` sees it: itself for a caller who reads every environment;
    /// otherwise the environments its roles let it read, the store seen through the same
    /// check ([`crate::auth::visible::VisibleStore`]) and no shared answer cache.
    pub fn for_caller(&self, caller: &Caller) -> AppState {
        if caller.reads_everything() {
            return self.clone();
        }
        let all = self.environments();
        let names: Vec<String> = all.iter().map(|e| e.name.clone()).collect();
        let seen: Vec<Arc<Environment>> = all
            .iter()
            .filter(|e| caller.may_in(crate::config::TokenScope::Read, &e.name))
            .cloned()
            .collect();
        let i = &self.inner;
        AppState {
            inner: Arc::new(Inner {
                store: Arc::new(crate::auth::visible::VisibleStore::new(
                    i.store.clone(),
                    caller.clone(),
                    names,
                )),
                environments: RwLock::new(seen.into()),
                tokens: i.tokens.clone(),
                scoped_tokens: i.scoped_tokens.clone(),
                remediation: i.remediation.clone(),
                remediation_paused: i.remediation_paused.clone(),
                metrics: i.metrics.clone(),
                webhook_secret: i.webhook_secret.clone(),
                clock: i.clock.clone(),
                request_timeout: i.request_timeout,
                body_limit: i.body_limit,
                public_url: i.public_url.clone(),
                cache: Arc::new(ResponseCache::new(Duration::ZERO)),
                buffer: i.buffer.clone(),
                feed: i.feed.clone(),
                sessions: i.sessions.clone(),
                mcp_cancel: i.mcp_cancel.clone(),
                trusted_proxies: i.trusted_proxies.clone(),
                throttle: i.throttle.clone(),
                verdicts: i.verdicts.clone(),
                sign_in_failures: i.sign_in_failures.clone(),
                oidc: i.oidc.clone(),
            }),
        }
    }

    /// The context scans run in.
    pub fn scan_context(&self) -> ScanContext {
        ScanContext {
            store: self.store.clone(),
            metrics: self.metrics.clone(),
            clock: self.clock.clone(),
            cache: self.cache.clone(),
            feed: self.feed.clone(),
        }
    }
}

impl AppStateBuilder {
    /// Accepted bearer tokens.
    pub fn tokens(mut self, tokens: Vec<String>) -> Self {
        self.inner.tokens = tokens;
        self
    }

    /// Named bearer tokens with scopes.
    pub fn scoped_tokens(mut self, tokens: Vec<crate::config::ScopedToken>) -> Self {
        self.inner.scoped_tokens = tokens;
        self
    }

    /// Sign-in with OpenID Connect.
    pub fn oidc(mut self, oidc: Option<Arc<crate::auth::oidc::Oidc>>) -> Self {
        self.inner.oidc = oidc;
        self
    }

    /// The remediation service.
    pub fn remediation(mut self, r: Arc<crate::remediate::RemediationService>) -> Self {
        self.inner.remediation = Some(r);
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

    /// The write buffer in front of the store (see [`Inner::buffer`]).
    pub fn buffer(mut self, buffer: Arc<driftguard_store::BufferedStore>) -> Self {
        self.inner.buffer = Some(buffer);
        self
    }

    /// The live feed (give its [`EventFeed::notifier`] to every scanner of the environments).
    pub fn feed(mut self, feed: Arc<EventFeed>) -> Self {
        self.inner.feed = feed;
        self
    }

    /// The proxies whose forwarding headers are believed (see [`Inner::trusted_proxies`]).
    pub fn trusted_proxies(mut self, proxies: Vec<AddrRange>) -> Self {
        self.inner.trusted_proxies = proxies;
        self
    }

    /// Public URL for links.
    pub fn public_url(mut self, url: Option<String>) -> Self {
        self.inner.public_url = url.map(|u| u.trim_end_matches('/').to_owned());
        self
    }

    /// Applies the `server:` configuration (timeouts, limits, public URL); tokens and the
    /// webhook secret are resolved separately (see [`crate::config::ServerConfig`]).
    pub fn config(mut self, cfg: &crate::config::ServerConfig) -> Self {
        self.inner.throttle = Arc::new(Throttle::with_burst(cfg.failed_credentials_burst.max(1)));
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
