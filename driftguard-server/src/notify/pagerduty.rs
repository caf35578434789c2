//! PagerDuty Events API v2: trigger on detection, resolve on resolution, dedup key = episode.

use async_trait::async_trait;
use driftguard_core::ports::{Notification, Notifier, NotifyError};
use driftguard_core::state::EventKind;
use serde_json::{json, Value};

use super::{check_status, http_client, send_error, EventView};

/// The public events endpoint.
pub const DEFAULT_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// Sends PagerDuty events.
pub struct PagerDutyNotifier {
    name: String,
    url: reqwest::Url,
    routing_key: String,
    public_url: Option<String>,
    client: reqwest::Client,
}

impl PagerDutyNotifier {
    /// A notifier sending to `url` with the integration key `routing_key`.
    pub fn new(
        name: String,
        url: reqwest::Url,
        routing_key: String,
        public_url: Option<String>,
    ) -> Self {
        PagerDutyNotifier {
            name,
            url,
            routing_key,
            public_url,
            client: http_client(),
        }
    }
}

/// The PagerDuty event for one DriftGuard event (`None` for `changed`, `remediated` and
/// `acknowledged`).
pub fn event(
    routing_key: &str,
    environment: &str,
    v: &EventView,
    kind: EventKind,
) -> Option<Value> {
    let action = match kind {
        // a lapsed acknowledgement is the drift announced again
        EventKind::Detected | EventKind::Recurred | EventKind::Unacknowledged => "trigger",
        EventKind::Resolved => "resolve",
        EventKind::Changed | EventKind::Remediated | EventKind::Acknowledged => return None,
    };
    let mut e = json!({
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": v.episode,
    });
    if action == "trigger" {
        let severity = match v.severity.as_str() {
            "critical" => "critical",
            "high" => "error",
            "medium" => "warning",
            _ => "info",
        };
        e["payload"] = json!({
            "summary": format!("[{environment}] {}", v.headline()).chars().take(1024).collect::<String>(),
            "source": format!("driftguard/{environment}"),
            "severity": severity,
            "component": v.object.reference,
            "group": environment,
            "class": v.drift,
            "custom_details": {
                "direction": v.direction,
                "fields": v.fields,
                "who": v.who,
                "revision": v.revision,
                "episode": v.episode,
                "risk": v.risk,
                "findings": v.findings_line(),
            },
        });
        if let Some(link) = &v.link {
            e["links"] = json!([{"href": link, "text": "DriftGuard drift"}]);
        }
    }
    Some(e)
}

#[async_trait]
impl Notifier for PagerDutyNotifier {
    fn name(&self) -> &str {
        &self.name
    }

    async fn notify(&self, n: &Notification) -> Result<(), NotifyError> {
        // PagerDuty deduplicates by key, so a retried notification re-sends every event safely
        for e in &n.events {
            let v = EventView::of(e, self.public_url.as_deref());
            let Some(body) = event(&self.routing_key, &n.environment, &v, e.kind) else {
                continue;
            };
            let resp = self
                .client
                .post(self.url.clone())
                .json(&body)
                .send()
                .await
                .map_err(send_error)?;
            check_status(resp.status())?;
        }
        Ok(())
    }
}
