//! The delivery queue: marks of what was delivered, retries, and resending what was not.

use super::*;
use driftguard_core::retry::{self, Backoff};

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
pub(super) fn group(batch: Vec<Notification>) -> Vec<Notification> {
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
            if let Some(d) = kept.iter_mut().rev().find(|d| {
                matches!(d.kind, EventKind::Detected | EventKind::Recurred)
                    && d.drift.episode == e.drift.episode
            }) {
                d.drift.attribution = e.drift.attribution;
            }
        }
        n.events = kept;
    }
    out.retain(|n| !n.events.is_empty());
    out
}

pub(super) async fn deliver_loop(
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
            let salt = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos().into());
            let mut backoff = Backoff::new(
                cfg.initial_backoff.0,
                cfg.max_backoff.0,
                retry::seed(&name, salt),
            );
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
                            _ = tokio::time::sleep(backoff.next_delay()) => {}
                            _ = cancel.cancelled(), if !closing => { closing = true; rx.close(); }
                        }
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
