//! Retention: events, scan summaries and resolved episodes older than the configured age are
//! pruned from the store, at start and then periodically (MongoDB also expires them itself with
//! TTL indexes; pruning there is a harmless second pass).

use std::sync::Arc;
use std::time::Duration;

use driftguard_core::ports::{Clock, DriftStore, PruneStats, StoreError};
use tokio_util::sync::CancellationToken;

/// Prunes what is older than `retention` now; returns what was removed.
pub async fn prune_once(
    store: &dyn DriftStore,
    clock: &dyn Clock,
    retention: Duration,
) -> Result<PruneStats, StoreError> {
    let age = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
    let cut = clock
        .now()
        .checked_sub_signed(age)
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
    store.prune(cut).await
}

/// Runs [`prune_once`] now and then every `every` until `cancel`; failures are logged and
/// retried at the next turn (the store may be down for a while).
pub fn spawn_pruner(
    store: Arc<dyn DriftStore>,
    clock: Arc<dyn Clock>,
    retention: Duration,
    every: Duration,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match prune_once(store.as_ref(), clock.as_ref(), retention).await {
                Ok(s) if s != PruneStats::default() => tracing::info!(
                    events = s.events,
                    scans = s.scans,
                    episodes = s.episodes,
                    "pruned history older than the retention"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "pruning the history failed; will retry"),
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
        }
    })
}
