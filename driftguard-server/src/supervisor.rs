//! Continuous detection: per environment, a full-scan loop, a Git poll loop (also woken by the
//! push webhook), a live watch loop, a loop that writes what the scanner kept while the store
//! could not be written and, with audit settings, an audit loop (it follows the audit log file
//! and has open drifts name the writers new audit events report), each independent of the
//! other environments.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use driftguard_core::error::chain;
use driftguard_core::ports::SourceError;
use driftguard_core::retry::{self, Backoff};
use futures_util::StreamExt;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::context::ScanContext;
use crate::environment::{source_message, Environment};
use crate::state::AppState;

/// The running detection tasks, by environment.
pub struct Supervisor {
    cancel: CancellationToken,
    ctx: ScanContext,
    running: HashMap<String, Loops>,
}

/// One environment's loops.
struct Loops {
    env: Arc<Environment>,
    cancel: CancellationToken,
    tasks: JoinSet<()>,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("environments", &self.running.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Supervisor {
    /// Spawns the loops of every environment. They stop when `cancel` is cancelled (or on
    /// [`Supervisor::shutdown`]).
    pub fn start(state: &AppState, cancel: CancellationToken) -> Self {
        Self::start_for(&state.environments(), &state.scan_context(), cancel)
    }

    /// Spawns the loops of `environments` only (with leader election, a replica runs those
    /// of the environments it leads: [`crate::ha`]). The full-scan loop starts with a scan.
    pub fn start_for(
        environments: &[Arc<Environment>],
        ctx: &ScanContext,
        cancel: CancellationToken,
    ) -> Self {
        let mut supervisor = Supervisor {
            cancel,
            ctx: ctx.clone(),
            running: HashMap::new(),
        };
        for env in environments {
            supervisor.add(env.clone());
        }
        supervisor
    }

    /// Spawns the loops of one more environment (discovered while `serve` runs). An
    /// environment of the same name must have been [removed](Supervisor::remove) first: two
    /// scanners of one environment would race on its records.
    pub fn add(&mut self, env: Arc<Environment>) {
        debug_assert!(!self.running.contains_key(&env.name));
        let cancel = self.cancel.child_token();
        let ctx = &self.ctx;
        let mut tasks = JoinSet::new();
        tasks.spawn(full_scan_loop(env.clone(), ctx.clone(), cancel.clone()));
        tasks.spawn(poll_loop(env.clone(), ctx.clone(), cancel.clone()));
        tasks.spawn(watch_loop(env.clone(), ctx.clone(), cancel.clone()));
        if env.audit.is_some() {
            tasks.spawn(audit_loop(env.clone(), ctx.clone(), cancel.clone()));
        }
        tasks.spawn(write_loop(env.clone(), ctx.clone(), cancel.clone()));
        self.running
            .insert(env.name.clone(), Loops { env, cancel, tasks });
    }

    /// The environment running under `name`, if any.
    pub fn running(&self, name: &str) -> Option<&Arc<Environment>> {
        self.running.get(name).map(|l| &l.env)
    }

    /// Stops the loops of `name` (an environment no longer discovered, or one to start again
    /// with a new configuration): waits up to `grace` for a scan in flight, then abandons it.
    /// Returns whether it was running.
    pub async fn remove(&mut self, name: &str, grace: Duration) -> bool {
        let Some(mut loops) = self.running.remove(name) else {
            return false;
        };
        loops.cancel.cancel();
        drain(&mut loops.tasks, grace, name).await;
        true
    }

    /// Stops accepting work, waits up to `grace` for in-flight scans, then abandons the rest.
    pub async fn shutdown(mut self, grace: Duration) {
        self.cancel.cancel();
        let mut all = JoinSet::new();
        for (name, mut loops) in std::mem::take(&mut self.running) {
            all.spawn(async move { drain(&mut loops.tasks, grace, &name).await });
        }
        while all.join_next().await.is_some() {}
    }
}

/// Waits up to `grace` for `tasks` (cancelled) to end, then aborts the rest.
async fn drain(tasks: &mut JoinSet<()>, grace: Duration, environment: &str) {
    let drained = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(grace, drained).await.is_err() {
        tracing::warn!(
            environment,
            "abandoning in-flight scans after the shutdown grace period"
        );
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
}

/// First wait after a failed full scan; it doubles up to the full-scan interval.
const RETRY_FIRST: Duration = Duration::from_secs(2);

async fn full_scan_loop(env: Arc<Environment>, ctx: ScanContext, cancel: CancellationToken) {
    let salt = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos().into());
    let mut retry = Backoff::new(
        RETRY_FIRST,
        env.full_scan_interval,
        retry::seed(&env.name, salt),
    );
    loop {
        if cancel.is_cancelled() {
            return;
        }
        // a scan is not interrupted by cancellation: shutdown waits for it (up to the grace)
        let wait = match env.run_scan(&ctx).await {
            Ok(_) => {
                retry.reset();
                env.full_scan_interval
            }
            Err(_) => {
                // a source or the store is down: try again soon, not an interval later
                retry.next_delay()
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// How often kept writes are tried again while the store is unavailable.
const WRITE_RETRY: Duration = Duration::from_secs(1);

async fn write_loop(env: Arc<Environment>, ctx: ScanContext, cancel: CancellationToken) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(WRITE_RETRY) => {}
        }
        if env.write_health().unwritten > 0 {
            env.retry_unwritten(&ctx).await;
        }
    }
}

/// Follows the audit log file (if any) and, whenever audit events were indexed (from the file
/// or the webhook), has the open drifts they concern name their writers.
async fn audit_loop(env: Arc<Environment>, ctx: ScanContext, cancel: CancellationToken) {
    let Some(settings) = env.audit.clone() else {
        return;
    };
    // with no file to follow, only the webhook wakes this loop
    let every = if settings.log.is_some() {
        settings.log_every
    } else {
        Duration::from_secs(3600)
    };
    let mut last_note = String::new();
    loop {
        if settings.log.is_some() {
            match env.read_audit_log(&ctx).await {
                Some(Ok(read)) => {
                    for note in &read.notes {
                        if note.ends_with("does not exist (yet)") {
                            if *note != last_note {
                                tracing::info!(environment = %env.name, "audit log: {note}");
                            }
                        } else {
                            tracing::warn!(environment = %env.name, "audit log: {note}");
                        }
                        last_note.clone_from(note);
                    }
                    if read.writes > 0 {
                        tracing::debug!(environment = %env.name, writes = read.writes,
                            indexed = read.indexed, "audit log read");
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(environment = %env.name, error = %chain(&e), "cannot read the audit log");
                }
                None => {}
            }
        }
        env.attribute_pending(&ctx).await;
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = env.audit_wake.notified() => {}
            _ = tokio::time::sleep(every) => {}
        }
    }
}

async fn poll_loop(env: Arc<Environment>, ctx: ScanContext, cancel: CancellationToken) {
    // environments polling at the same interval start at different points of it, so that a
    // fleet on one repository does not fetch all at once (the fetches are shared too)
    let salt = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos().into());
    let mut wait =
        env.poll_interval - retry::offset_in(env.poll_interval, retry::seed(&env.name, salt));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
            _ = env.fetch_now.notified() => {
                tracing::info!(environment = %env.name, "fetch requested");
            }
        }
        wait = env.poll_interval;
        let fetched = tokio::select! {
            _ = cancel.cancelled() => return,
            r = env.scanner.fetch() => r,
        };
        match fetched {
            Ok(Some(rev)) => {
                env.mark_git(Ok(()), &ctx);
                tracing::info!(environment = %env.name, revision = %rev.short(), "Git moved; scanning");
                let _ = env.run_scan(&ctx).await;
            }
            Ok(None) => env.mark_git(Ok(()), &ctx),
            Err(e) => {
                tracing::warn!(environment = %env.name, error = %e, "Git fetch failed");
                env.mark_git(Err(source_message(&e)), &ctx);
            }
        }
    }
}

async fn watch_loop(env: Arc<Environment>, ctx: ScanContext, cancel: CancellationToken) {
    let salt = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos().into());
    let mut backoff = Backoff::new(
        Duration::from_secs(1),
        Duration::from_secs(60),
        retry::seed(&env.name, salt),
    );
    loop {
        // the scope is known after the first successful scan
        let scope = loop {
            if let Some(s) = env.scanner.live_scope() {
                break s;
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = env.scope_changed.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        };
        let watched = tokio::select! {
            _ = cancel.cancelled() => return,
            r = env.scanner.watch(&scope) => r,
        };
        let mut stream = match watched {
            Ok(s) => s,
            Err(SourceError::Unsupported { .. }) => {
                tracing::info!(environment = %env.name, "live source cannot watch; relying on scans");
                return;
            }
            Err(e) => {
                tracing::warn!(environment = %env.name, error = %e, "cannot watch the cluster");
                env.mark_live(Err(source_message(&e)), &ctx);
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(backoff.next_delay()) => {}
                }
                continue;
            }
        };
        backoff.reset();
        env.set_watching(true);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => {
                    env.set_watching(false);
                    return;
                }
                _ = env.scope_changed.notified() => {
                    // a stale wake-up (the scope was already current) keeps the watch
                    if env.scanner.live_scope().as_ref() != Some(&scope) {
                        tracing::info!(environment = %env.name, "tracked kinds changed; restarting the watch");
                        break;
                    }
                }
                item = stream.next() => match item {
                    Some(change) => env.apply_change(&ctx, &change).await,
                    None => {
                        tracing::warn!(environment = %env.name, "watch ended; restarting");
                        break;
                    }
                }
            }
        }
        env.set_watching(false);
    }
}
