//! # driftguard-server
//!
//! The long-running DriftGuard service: continuous detection per environment
//! ([`supervisor::Supervisor`]), a JSON REST API under `/api/v1` with an OpenAPI document
//! ([`api::router`]), Prometheus metrics at `/metrics` ([`metrics::Metrics`]) and alert
//! notifiers ([`notify`]).
//!
//! ```no_run
//! # async fn demo(state: driftguard_server::AppState) -> std::io::Result<()> {
//! use driftguard_server::{run, supervisor::Supervisor};
//! let cancel = tokio_util::sync::CancellationToken::new();
//! let supervisor = Supervisor::start(&state, cancel.clone());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let stop = cancel.clone();
//! run(listener, state, async move { stop.cancelled().await }).await?;
//! supervisor.shutdown(std::time::Duration::from_secs(10)).await;
//! # Ok(()) }
//! ```

pub mod api;
pub mod config;
pub mod dto;
pub mod error;
pub mod metrics;
pub mod notify;
pub mod retention;
pub mod state;
pub mod supervisor;
pub mod testkit;

use std::future::Future;

pub use api::router;
pub use error::AppError;
pub use state::{AppState, Environment};

/// Serves the API on `listener` until `shutdown` completes, then finishes the requests in
/// flight. Refuses a non-loopback listener when no bearer token is configured.
pub async fn run(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    if state.tokens.is_empty() {
        if !addr.ip().is_loopback() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!("no API tokens configured: refusing to listen on {addr} (only 127.0.0.1 is allowed without tokens)"),
            ));
        }
        tracing::warn!(%addr, "no API tokens configured: the API is open, listening on loopback only");
    }
    tracing::info!(%addr, "DriftGuard API listening");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
