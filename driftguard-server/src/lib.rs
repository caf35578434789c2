//! # driftguard-server
//!
//! The long-running DriftGuard service: continuous detection per environment
//! ([`supervisor::Supervisor`]), a JSON REST API under `/api/v1` with an OpenAPI document
//! ([`api`]), a live event stream ([`feed`]), the web dashboard at `/` ([`web`]), an
//! MCP server for AI assistants at `/mcp` and over stdio ([`mcp`]),
//! Prometheus metrics at `/metrics` ([`metrics::Metrics`]) and alert notifiers ([`notify`]).
//! The three faces share one authentication ([`auth`]) and one set of queries ([`queries`]),
//! and are composed into one application by [`router()`].
//!
//! Everything is built from the configuration file by one call ([`service::serve`]); the CLI's
//! `driftguard serve` is that call plus flag parsing:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use driftguard_server::{config::Config, serve, service::shutdown_signal, ServeOptions};
//! let config = Config::load(std::path::Path::new("driftguard.yaml"))?;
//! serve(&config, &ServeOptions::default(), shutdown_signal()?).await?;
//! # Ok(()) }
//! ```
//!
//! The configuration file's model and its validation are in [`config`]; wiring a
//! configuration to sources and stores (also used by the CLI's one-shot scans) is in [`setup`].

pub mod api;
pub mod audit;
pub mod auth;
pub mod config;
pub mod context;
pub mod discover;
pub mod dto;
pub mod environment;
pub mod error;
pub mod feed;
pub mod follow;
pub mod forge;
pub mod guard;
pub mod ha;
pub mod listener;
pub mod mcp;
pub mod metrics;
pub mod notify;
pub mod preview;
pub mod push;
pub mod queries;
pub mod remediate;
pub mod retention;
pub mod router;
pub mod service;
pub mod setup;
pub mod state;
pub mod supervisor;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod tls;
pub mod verdicts;
pub mod web;

use std::future::Future;

pub use environment::Environment;
pub use error::AppError;
pub use router::router;
pub use service::{serve, ServeError, ServeOptions, Service};
pub use state::AppState;

/// Serves the API on `listener` until `shutdown` completes, then finishes the requests in
/// flight. Refuses a non-loopback listener when no bearer token is configured.
pub async fn run(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    if !state.auth_required() {
        if !addr.ip().is_loopback() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!("no API tokens configured: refusing to listen on {addr} (only 127.0.0.1 is allowed without tokens)"),
            ));
        }
        tracing::warn!(%addr, "no API tokens configured: the API is open, listening on loopback only");
    }
    tracing::info!(%addr, "DriftGuard API and dashboard listening");
    let feed = state.feed.clone();
    let mcp = state.mcp_cancel.clone();
    let shutdown = async move {
        shutdown.await;
        // open event streams (the live feed's, MCP's) end now, so that the connections can
        // close and do not hold the graceful shutdown up
        feed.close();
        mcp.cancel();
    };
    axum::serve(
        listener::GuardedListener(listener),
        router(state).into_make_service_with_connect_info::<guard::Peer>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// [`run`] over TLS (`server.tls`): the certificate and key are read again when their files
/// change, until `shutdown`; a client certificate the configured CA signed may post to the
/// audit webhook in place of its token. A first request line too long is answered by hyper
/// here (the plain listener's own check reads the bytes before TLS could decrypt them).
pub async fn run_tls(
    listener: tokio::net::TcpListener,
    state: AppState,
    tls: tls::Tls,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    if !state.auth_required() && !addr.ip().is_loopback() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!("no API tokens configured: refusing to listen on {addr} (only 127.0.0.1 is allowed without tokens)"),
        ));
    }
    tracing::info!(%addr, "DriftGuard API and dashboard listening over TLS");
    let feed = state.feed.clone();
    let mcp = state.mcp_cancel.clone();
    let reload = tokio_util::sync::CancellationToken::new();
    let watcher = tls.files.watch(reload.clone());
    let stop = reload.clone();
    let shutdown = async move {
        shutdown.await;
        stop.cancel();
        feed.close();
        mcp.cancel();
    };
    let served = axum::serve(
        tls::TlsListener::new(listener, tls.config)?,
        router(state).into_make_service_with_connect_info::<tls::TlsPeer>(),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    reload.cancel();
    let _ = watcher.await;
    served
}
