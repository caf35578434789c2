//! Routing: which notifier takes which events.

use super::*;

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
