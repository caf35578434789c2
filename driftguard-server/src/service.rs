//! The whole service, built from a configuration and run until shutdown: the one entry point
//! behind `driftguard serve`, and the one call that embeds the server in another program.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use driftguard_server::config::Config;
//! use driftguard_server::service::{serve, shutdown_signal, ServeOptions};
//! let config = Config::load(std::path::Path::new("driftguard.yaml"))?;
//! serve(&config, &ServeOptions::default(), shutdown_signal()?).await?;
//! # Ok(()) }
//! ```
//!
//! [`Service::build`] opens the store (through the [`BufferedStore`] wrapper, so that a
//! database outage leaves detection running), the sources of every environment, the notifiers
//! (with their delivery marks) and the supervisors' state; [`Service::run`] serves the API on a
//! listener while the supervisors detect, and on shutdown drains scans and alert queues within
//! the configured grace.
//!
//! With leader election (`server.ha`, see [`crate::ha`]) the supervisors of an environment run
//! only on the replica that leads it: [`Service::run`] starts the elector instead, and on
//! shutdown hands the environments back before it stops.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use driftguard_core::engine::Engine;
use driftguard_core::error::chain;
use driftguard_core::normalize::Normalizer;
use driftguard_core::ports::{Clock, DriftStore};
use driftguard_core::retry::{self, Backoff};
use driftguard_sources::kube::lease::{LeaseClient, LeaseError};
use driftguard_store::BufferedStore;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, EnvironmentPlan, ResolvedConfig, ServerConfig, SettingError};
use crate::context::SystemClock;
use crate::environment::Environment;
use crate::feed::EventFeed;
use crate::follow::Follower;
use crate::ha::elector::Elector;
use crate::ha::{HaSettings, Leadership};
use crate::metrics::Metrics;
use crate::notify::{BuiltNotifiers, Marks};
use crate::setup::{self, SetupError, StoreChoice};
use crate::state::AppState;
use crate::supervisor::Supervisor;

/// How often `serve` prunes history older than `store.retention`.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Batches the store wrapper keeps while the database is down.
const BUFFER_CAPACITY: usize = 10_000;

/// Choices made outside the configuration file (command-line flags).
#[derive(Clone, Debug, Default)]
pub struct ServeOptions {
    /// Address to listen on, instead of `server.listen`.
    pub listen: Option<String>,
    /// An SQLite file to use instead of the configured store.
    pub store: Option<PathBuf>,
    /// Keep no history (an in-memory store).
    pub no_store: bool,
}

/// Why the service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The configuration names no environment and has no `discover:` section.
    #[error("{}: no environments to watch", path.display())]
    NoEnvironments {
        /// The configuration file.
        path: PathBuf,
    },
    /// A setting of the `server:` section cannot be used.
    #[error(transparent)]
    Setting(#[from] SettingError),
    /// A store, a source or the Secret key could not be set up.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// The TLS certificate, key or client CA (`server.tls`) cannot be used.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The listener could not be bound.
    #[error("cannot listen on {addr}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The server stopped with an error.
    #[error("the server on {addr} failed")]
    Serve {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The process cannot listen for stop signals.
    #[error("cannot listen for SIGTERM")]
    Signal(#[source] std::io::Error),
    /// The home cluster of leader election (`server.ha`) cannot be used.
    #[error("server.ha: cannot use the home cluster's Leases")]
    Leases(#[source] LeaseError),
    /// The MCP session over stdio failed.
    #[error(transparent)]
    Mcp(#[from] crate::mcp::McpError),
    /// The environments of the `discover:` section could not be discovered.
    #[error(transparent)]
    Discover(#[from] crate::discover::DiscoverError),
}

/// `plan` with the environments `discover` finds added after the file's, and what was found
/// (the follower starts from it); each problem of the tools' objects, and each thing that
/// could not be read, logged as a warning.
async fn discovered(
    plan: &ResolvedConfig,
    discover: &crate::config::DiscoveryPlan,
) -> Result<(ResolvedConfig, crate::discover::Discovery), ServeError> {
    let configured: Vec<String> = plan.environments.iter().map(|e| e.name.clone()).collect();
    let found = crate::discover::discover(discover, &configured).await?;
    for t in &found.tools {
        tracing::info!(tool = ?t.tool, installed = t.installed, "discovery");
    }
    for e in &found.errors {
        tracing::warn!("discovery: {e}");
    }
    for p in &found.settings_problems {
        tracing::warn!("discovery: Argo CD settings: {p}");
    }
    for d in &found.found {
        let object = format!("{} {}/{}", d.app.kind, d.app.namespace, d.app.name);
        for p in &d.problems {
            tracing::warn!(environment = d.name().unwrap_or("-"), %object,
                blocking = p.blocking, "discovery: {p}");
        }
    }
    tracing::info!(
        discovered = found.environments.len(),
        objects = found.found.len(),
        "environments discovered (followed while serving: the tools' objects are watched)"
    );
    let mut out = plan.clone();
    out.environments.extend(found.environments.iter().cloned());
    Ok((out, found))
}

/// What makes a running environment of a plan: the parts every environment of the service
/// shares. Used at start for every environment, and by discovery for those it finds while
/// `serve` runs ([`crate::follow`]).
pub(crate) struct EnvironmentBuilder {
    key: driftguard_core::normalize::SecretKey,
    clusters: Arc<setup::Clusters>,
    store: Arc<dyn DriftStore>,
    clock: Arc<dyn Clock>,
    notifiers: Vec<Arc<dyn driftguard_core::ports::Notifier>>,
    feed: Arc<EventFeed>,
    poll_interval: Duration,
    full_scan_interval: Duration,
    leadership: Option<Arc<Leadership>>,
}

impl EnvironmentBuilder {
    /// The environment of `env`: its scanner (with the notifiers and the live feed), its
    /// intervals, repositories, web links, leadership and audit settings.
    pub(crate) async fn build(
        &self,
        env: &EnvironmentPlan,
    ) -> Result<Arc<Environment>, ServeError> {
        let engine = Engine::new(env.spec.clone(), Normalizer::new(self.key.clone()));
        let mut scanner = setup::scanner(
            env,
            &self.clusters,
            engine,
            self.store.clone(),
            self.clock.clone(),
        )
        .await?;
        for n in &self.notifiers {
            scanner = scanner.with_notifier(n.clone());
        }
        scanner = scanner.with_notifier(self.feed.notifier());
        let mut environment = Environment::new(
            Arc::new(scanner),
            self.poll_interval,
            self.full_scan_interval,
        )
        .with_repositories(env.repositories())
        .with_web_url(env.git().and_then(|g| g.web_url.clone()))
        .with_cloud_kinds(
            // the kinds the account is listed for (`terraform.orphans.aws.kinds`, else all)
            env.terraform
                .as_ref()
                .and_then(|t| t.orphans.as_ref())
                .map(|a| {
                    if a.kinds.is_empty() {
                        driftguard_core::terraform::cloud::AWS_KINDS
                            .iter()
                            .map(|k| (*k).to_owned())
                            .collect()
                    } else {
                        a.kinds.clone()
                    }
                }),
        );
        if let Some(l) = &self.leadership {
            environment = environment.with_leadership(l.clone());
        }
        let env_var = |k: &str| std::env::var(k).ok();
        if let Some(audit) = setup::audit_settings(env, &env_var)? {
            environment = environment.with_audit(audit);
        }
        Ok(Arc::new(environment))
    }

    /// Gives `service` the remediator of `env`, running as `running`.
    pub(crate) async fn remediation(
        &self,
        service: &crate::remediate::RemediationService,
        env: &EnvironmentPlan,
        running: &Arc<Environment>,
    ) {
        service
            .add(
                env,
                &self.key,
                self.store.clone(),
                self.clock.clone(),
                Some(running),
            )
            .await;
    }
}

/// Discovery, to be followed while the service runs.
struct Following {
    plan: crate::config::DiscoveryPlan,
    found: crate::discover::Discovery,
    builder: EnvironmentBuilder,
}

/// Leader election, ready to run.
struct Election {
    settings: HaSettings,
    leases: LeaseClient,
    leadership: Arc<Leadership>,
}

/// A service ready to run.
pub struct Service {
    state: AppState,
    cancel: CancellationToken,
    notifiers: BuiltNotifiers,
    settings: ServerConfig,
    retention: Option<Duration>,
    addr: SocketAddr,
    /// The remediation policies that act, by environment.
    policies: Vec<(String, driftguard_core::remediate::Policy)>,
    election: Option<Election>,
    /// With a `discover:` section: the discovered environments, followed while running.
    following: Option<Following>,
    /// `server.tls`: serve over TLS.
    tls: Option<crate::tls::Tls>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("addr", &self.addr)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Service {
    /// Builds everything from `config`: store, sources, notifiers, environments. Does not
    /// listen yet. A store that cannot be reached does not stop it: writes are buffered and
    /// `/readyz` says degraded until the store answers.
    ///
    /// The configuration is resolved once ([`Config::plan`]); each part goes where it is used
    /// (see [`Service::build_plan`]).
    pub async fn build(config: &Config, options: &ServeOptions) -> Result<Service, ServeError> {
        Service::build_plan(&config.plan(), options).await
    }

    /// Builds everything from a configuration's plan: the server's part to the API and the
    /// notifiers, the store's and the key's to the store, each environment's to its sources.
    ///
    /// With a `discover:` section, the environments discovered from Argo CD and Flux are read
    /// here and added to the file's ([`crate::discover`]); what they cannot map is logged as
    /// warnings. A discovery that cannot reach its cluster stops the start. While the service
    /// runs, they follow the cluster ([`crate::follow`]).
    pub async fn build_plan(
        plan: &ResolvedConfig,
        options: &ServeOptions,
    ) -> Result<Service, ServeError> {
        let with_discovered;
        let mut found = None;
        let plan = match &plan.discover {
            Some(d) => {
                let (p, f) = discovered(plan, d).await?;
                with_discovered = p;
                found = Some((d.clone(), f));
                &with_discovered
            }
            None => plan,
        };
        // with discovery, environments may appear while the service runs
        if plan.environments.is_empty() && plan.discover.is_none() {
            return Err(ServeError::NoEnvironments {
                path: plan.path.clone(),
            });
        }
        for w in &plan.warnings {
            tracing::warn!("{w}");
        }
        let settings = plan.server.settings.clone();
        // read at start: a certificate or key that cannot be used stops `serve` here
        let tls = settings
            .tls
            .as_ref()
            .map(|t| crate::tls::Tls::load(&t.cert_file, &t.key_file, t.client_ca_file.as_deref()))
            .transpose()?;
        let env_var = |k: &str| std::env::var(k).ok();
        let tokens = settings.resolve_tokens(&env_var)?;
        let scoped_tokens = settings.resolve_scoped_tokens(&env_var)?;
        let webhook_secret = settings.resolve_webhook_secret(&env_var)?;
        let trusted_proxies = settings.resolve_trusted_proxies()?;
        // the client secret read here: a missing file or variable stops `serve`, naming it
        let oidc = settings
            .oidc
            .as_ref()
            .map(|o| o.resolve(&env_var, &settings.role_bindings))
            .transpose()?
            .map(|s| Arc::new(crate::auth::oidc::Oidc::new(s)));
        let (addr, note) = settings.effective_listen(
            options.listen.as_deref(),
            !tokens.is_empty() || !scoped_tokens.is_empty() || oidc.is_some(),
        )?;
        if let Some(n) = note {
            tracing::warn!("{n}");
        }
        let election = match &settings.ha {
            None => None,
            Some(ha) => {
                if options.store.is_some() || options.no_store {
                    return Err(ServeError::Setting(SettingError::Invalid {
                        field: "server.ha".into(),
                        message: "--store and --no-store cannot be used with leader election: the replicas share the configured MongoDB store".into(),
                    }));
                }
                let ha_settings = HaSettings::from_config(ha, &env_var);
                let spec = plan.server.home_cluster.clone().unwrap_or_default();
                let timeout = (ha_settings.renew_deadline / 2)
                    .min(ha_settings.retry_period.max(Duration::from_secs(1)));
                let leases = LeaseClient::connect(&spec, &ha_settings.namespace)
                    .await
                    .map_err(ServeError::Leases)?
                    .with_timeout(timeout);
                let leadership = Arc::new(Leadership::new(ha_settings.identity.clone()));
                Some(Election {
                    settings: ha_settings,
                    leases,
                    leadership,
                })
            }
        };
        let choice =
            StoreChoice::from_plan(&plan.store, options.store.as_deref(), options.no_store);
        let key = setup::secret_key(plan.secret_key.as_ref(), None, &choice)?;
        let inner = choice.open_service().await?;
        if let Some((p, k)) = &key.create {
            setup::write_key_file(p, k)?;
        }
        let buffer = Arc::new(BufferedStore::new(
            inner,
            BUFFER_CAPACITY,
            Duration::from_secs(1),
        ));
        let store: Arc<dyn DriftStore> = buffer.clone();
        let metrics = Arc::new(Metrics::new());
        let cancel = CancellationToken::new();
        let marks = match &election {
            None => Marks::PerNotifier(store.clone()),
            Some(e) => Marks::PerEnvironment(store.clone(), e.leadership.clone()),
        };
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let mut notifiers = crate::notify::build_notifiers_with_marks(
            &settings.notifiers,
            metrics.clone(),
            settings.public_url.clone(),
            cancel.clone(),
            &env_var,
            marks,
            clock.clone(),
        )?;
        // acknowledged drift is not announced again (the core's `ack::announced`)
        notifiers.notifiers = notifiers
            .notifiers
            .into_iter()
            .map(|n| crate::notify::ack::AckGate::wrap(n, store.clone(), clock.clone()))
            .collect();
        let feed = Arc::new(EventFeed::new());
        let builder = EnvironmentBuilder {
            key: key.key.clone(),
            // one client and one set of shared watches per cluster, for every environment on it
            clusters: Arc::new(setup::Clusters::serving()),
            store: store.clone(),
            clock: clock.clone(),
            notifiers: notifiers.notifiers.clone(),
            feed: feed.clone(),
            poll_interval: settings.poll_interval.0,
            full_scan_interval: settings.full_scan_interval.0,
            leadership: election.as_ref().map(|e| e.leadership.clone()),
        };
        let mut envs = Vec::new();
        for env in &plan.environments {
            envs.push(builder.build(env).await?);
        }
        // remediation only when some token may remediate or a policy acts
        let policies = plan.acting_policies();
        let remediation = if !policies.is_empty()
            || scoped_tokens
                .iter()
                .any(|t| t.scopes.contains(&crate::config::TokenScope::Remediate))
        {
            Some(Arc::new(
                crate::remediate::RemediationService::build(
                    &plan.environments,
                    &key.key,
                    store.clone(),
                    clock.clone(),
                    &envs,
                )
                .await,
            ))
        } else {
            None
        };
        let mut state = AppState::builder(store, envs, metrics)
            .tokens(tokens)
            .scoped_tokens(scoped_tokens)
            .oidc(oidc);
        if let Some(r) = remediation {
            state = state.remediation(r);
        }
        let state = state
            .webhook_secret(webhook_secret)
            .trusted_proxies(trusted_proxies)
            .clock(clock)
            .config(&settings)
            .buffer(buffer)
            .feed(feed)
            .build();
        let following = found.map(|(plan, found)| Following {
            plan,
            found,
            builder,
        });
        Ok(Service {
            state,
            cancel,
            notifiers,
            settings,
            policies,
            retention: plan.store.retention,
            addr,
            election,
            following,
            tls,
        })
    }

    /// The shared state (store, environments, metrics).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The address from the configuration (or the options).
    pub fn address(&self) -> SocketAddr {
        self.addr
    }

    /// Binds the configured address and runs until `shutdown` completes.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let addr = self.addr;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Listen { addr, source })?;
        self.run(listener, shutdown).await
    }

    /// Serves on `listener` while the supervisors detect, until `shutdown` completes; then
    /// drains scans and alert queues within `server.shutdownGrace`.
    pub async fn run(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let Service {
            state,
            cancel,
            notifiers,
            settings,
            retention,
            policies,
            election,
            following,
            tls,
            ..
        } = self;
        let addr = listener.local_addr().map_err(|source| ServeError::Listen {
            addr: settings
                .listen
                .parse()
                .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0))),
            source,
        })?;
        state.remediation_paused.store(
            settings.remediation_paused,
            std::sync::atomic::Ordering::SeqCst,
        );
        if let Some(election) = election {
            // the elector takes the environments of the set as discovery changes it
            let follower = following.map(|f| {
                let follower = Follower::new(
                    f.plan,
                    &f.found,
                    f.builder,
                    state.clone(),
                    None,
                    settings.shutdown_grace.0,
                );
                tokio::spawn(follower.run(cancel.clone()))
            });
            let out = run_elected(
                state, cancel, notifiers, settings, retention, listener, addr, election, policies,
                tls, shutdown,
            )
            .await;
            if let Some(f) = follower {
                let _ = f.await;
            }
            return out;
        }
        // what was still queued when the server last stopped goes out first; a store that is
        // down now is asked again until it answers
        // the marks of notifiers new to the store start at this moment, before any event of
        // this run; what a store that is down now holds is asked for again until it answers
        let started = state.clock.now();
        let first =
            crate::notify::resend_undelivered(&notifiers.notifiers, &*state.store, started).await;
        let resend = match first {
            Ok(n) => {
                if n > 0 {
                    tracing::info!(
                        events = n,
                        "queued again the events not delivered before the last stop"
                    );
                }
                None
            }
            Err(e) => {
                tracing::warn!(error = %chain(&e), "cannot read which events were not delivered; trying again");
                Some(tokio::spawn(resend_when_possible(
                    notifiers.notifiers.clone(),
                    state.store.clone(),
                    started,
                    cancel.clone(),
                )))
            }
        };
        let supervisor = Supervisor::start(&state, cancel.clone());
        // with discovery, the follower starts and stops environments: it holds the loops
        // until shutdown and hands them back
        let (supervisor, follower) = match following {
            None => (Some(supervisor), None),
            Some(f) => {
                let follower = Follower::new(
                    f.plan,
                    &f.found,
                    f.builder,
                    state.clone(),
                    Some(supervisor),
                    settings.shutdown_grace.0,
                );
                (None, Some(tokio::spawn(follower.run(cancel.clone()))))
            }
        };
        let policy_tasks = spawn_policies(&state, &policies, &cancel);
        let lapses = crate::queries::ack::spawn_lapses(
            state.clone(),
            crate::queries::ack::LAPSE_EVERY,
            cancel.clone(),
        );
        let pruner = retention.map(|retention| {
            crate::retention::spawn_pruner(
                state.store.clone(),
                state.clock.clone(),
                retention,
                PRUNE_EVERY,
                cancel.clone(),
            )
        });
        let stop = cancel.clone();
        let shutdown = async move {
            tokio::select! {
                _ = shutdown => {}
                _ = stop.cancelled() => {}
            }
        };
        let served = serve_http(listener, state, tls, shutdown).await;
        cancel.cancel();
        let supervisor = match follower {
            Some(f) => f.await.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "the discovery follower ended abnormally");
                None
            }),
            None => supervisor,
        };
        if let Some(supervisor) = supervisor {
            supervisor.shutdown(settings.shutdown_grace.0).await;
        }
        for t in policy_tasks {
            let _ = t.await;
        }
        notifiers.flush(settings.shutdown_grace.0).await;
        if let Some(resend) = resend {
            let _ = resend.await;
        }
        if let Some(p) = pruner {
            let _ = p.await;
        }
        let _ = lapses.await;
        served.map_err(|source| ServeError::Serve { addr, source })
    }
}

/// Serves the router on `listener`, over TLS when `server.tls` is set.
async fn serve_http(
    listener: tokio::net::TcpListener,
    state: AppState,
    tls: Option<crate::tls::Tls>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    match tls {
        None => crate::run(listener, state, shutdown).await,
        Some(tls) => crate::run_tls(listener, state, tls, shutdown).await,
    }
}

/// The remediation policy loop of each environment that has a policy that acts (each acts only
/// while this replica leads its environment).
fn spawn_policies(
    state: &AppState,
    policies: &[(String, driftguard_core::remediate::Policy)],
    cancel: &CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    if let Some(service) = &state.remediation {
        for (name, policy) in policies {
            if let (Some(env), Some(r)) = (state.environment(name), service.get(name)) {
                tasks.push(crate::remediate::spawn_policy(
                    state.scan_context(),
                    env.clone(),
                    r,
                    policy.clone(),
                    state.remediation_paused.clone(),
                    cancel.clone(),
                ));
            }
        }
    }
    tasks
}

/// [`Service::run`] with leader election: the elector runs the supervisors of the environments
/// this replica leads (and sends again, per environment, what the previous leader had not
/// delivered); every replica serves the API. On shutdown the environments are handed back.
#[allow(clippy::too_many_arguments)]
async fn run_elected(
    state: AppState,
    cancel: CancellationToken,
    notifiers: BuiltNotifiers,
    settings: ServerConfig,
    retention: Option<Duration>,
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
    election: Election,
    policies: Vec<(String, driftguard_core::remediate::Policy)>,
    tls: Option<crate::tls::Tls>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let grace = settings.shutdown_grace.0;
    let policy_tasks = spawn_policies(&state, &policies, &cancel);
    // each replica records the lapses of the environments it leads
    let lapses = crate::queries::ack::spawn_lapses(
        state.clone(),
        crate::queries::ack::LAPSE_EVERY,
        cancel.clone(),
    );
    let elector = Elector::new(
        election.settings,
        election.leases,
        election.leadership,
        state.clone(),
        notifiers.notifiers.clone(),
        grace,
    );
    let elector = tokio::spawn(elector.run(cancel.clone()));
    // every replica prunes: the deletes are idempotent
    let pruner = retention.map(|retention| {
        crate::retention::spawn_pruner(
            state.store.clone(),
            state.clock.clone(),
            retention,
            PRUNE_EVERY,
            cancel.clone(),
        )
    });
    let stop = cancel.clone();
    let shutdown = async move {
        tokio::select! {
            _ = shutdown => {}
            _ = stop.cancelled() => {}
        }
    };
    let served = serve_http(listener, state, tls, shutdown).await;
    cancel.cancel();
    // the elector hands the environments back and waits for their loops (within the grace)
    if tokio::time::timeout(grace + Duration::from_secs(5), elector)
        .await
        .is_err()
    {
        tracing::warn!("leader election did not stop in time");
    }
    for t in policy_tasks {
        let _ = t.await;
    }
    notifiers.flush(grace).await;
    if let Some(p) = pruner {
        let _ = p.await;
    }
    let _ = lapses.await;
    served.map_err(|source| ServeError::Serve { addr, source })
}

impl Service {
    /// Serves MCP on stdin/stdout instead of HTTP (`driftguard mcp`): the same environments,
    /// store and notifiers, no listener and no continuous detection (the assistant scans with
    /// the `scan_now` tool). Returns when the client closes the session, after sending the
    /// alerts of the scans it ran (within `server.shutdownGrace`).
    pub async fn run_mcp_stdio(self) -> Result<(), ServeError> {
        let Service {
            state,
            cancel,
            notifiers,
            settings,
            ..
        } = self;
        let served = crate::mcp::serve_stdio(state).await;
        cancel.cancel();
        notifiers.flush(settings.shutdown_grace.0).await;
        Ok(served?)
    }
}

/// Builds the service from `config` and runs it on its configured address until `shutdown`.
pub async fn serve(
    config: &Config,
    options: &ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    Service::build(config, options)
        .await?
        .run_until(shutdown)
        .await
}

/// Completes on Ctrl-C (SIGINT) or SIGTERM (how Kubernetes stops a pod).
pub fn shutdown_signal() -> Result<impl Future<Output = ()> + Send + 'static, ServeError> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(ServeError::Signal)?;
    Ok(async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    })
}

async fn resend_when_possible(
    notifiers: Vec<Arc<dyn driftguard_core::ports::Notifier>>,
    store: Arc<dyn DriftStore>,
    started: chrono::DateTime<chrono::Utc>,
    cancel: CancellationToken,
) {
    let salt = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos().into());
    let mut wait = Backoff::new(
        Duration::from_secs(1),
        Duration::from_secs(30),
        retry::seed("resend", salt),
    );
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(wait.next_delay()) => {}
        }
        match crate::notify::resend_undelivered(&notifiers, &*store, started).await {
            Ok(0) => return,
            Ok(n) => {
                tracing::info!(
                    events = n,
                    "queued again the events not delivered before the last stop"
                );
                return;
            }
            Err(e) => {
                tracing::debug!(error = %chain(&e), "the store still cannot say which events were not delivered");
            }
        }
    }
}
