//! Slack incoming webhooks (Block Kit message).

use async_trait::async_trait;
use driftguard_core::ports::{Notification, Notifier, NotifyError};
use serde_json::{json, Value};

use super::{check_status, http_client, send_error, tally, EventView};

/// Most events listed in one message; the rest are counted.
pub const MAX_LISTED: usize = 20;

/// Posts to a Slack incoming webhook.
pub struct SlackNotifier {
    name: String,
    url: reqwest::Url,
    public_url: Option<String>,
    client: reqwest::Client,
}

impl SlackNotifier {
    /// A notifier posting to `url` (the webhook URL is a secret: it is never logged).
    pub fn new(name: String, url: reqwest::Url, public_url: Option<String>) -> Self {
        SlackNotifier {
            name,
            url,
            public_url,
            client: http_client(),
        }
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The Block Kit message for a notification.
pub fn message(n: &Notification, public_url: Option<&str>) -> Value {
    let title = format!("DriftGuard · {}: {}", n.environment, tally(&n.events));
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": title.chars().take(150).collect::<String>()}
    })];
    for e in n.events.iter().take(MAX_LISTED) {
        let v = EventView::of(e, public_url);
        let icon = match (v.event.as_str(), v.severity.as_str()) {
            ("resolved", _) => ":white_check_mark:",
            (_, "critical") => ":rotating_light:",
            (_, "high") => ":red_circle:",
            (_, "medium") => ":large_orange_circle:",
            _ => ":large_blue_circle:",
        };
        let mut text = format!(
            "{icon} *{}* `{}`\n*{}* · {} · {} drift",
            escape(&v.event),
            escape(&v.object_label()),
            escape(&v.severity),
            escape(&v.direction),
            escape(&v.drift),
        );
        if let Some(r) = &v.resolution {
            let how = driftguard_core::state::ended_how(r, v.resolved_by.as_deref());
            text.push_str(&format!(" · {}", escape(&how)));
        }
        if let Some(again) = driftguard_core::state::recurrences_label(v.recurrences) {
            text.push_str(&format!(" · {again}"));
        }
        if !v.fields.is_empty() {
            let shown: Vec<String> = v
                .fields
                .iter()
                .take(10)
                .map(|f| format!("`{}`", escape(f)))
                .collect();
            text.push_str(&format!("\nFields: {}", shown.join(", ")));
            if v.fields.len() > 10 {
                text.push_str(&format!(" and {} more", v.fields.len() - 10));
            }
        }
        if !v.who.is_empty() {
            text.push_str(&format!("\nWho: {}", escape(&v.who)));
        }
        if !v.findings.is_empty() {
            text.push_str(&format!("\nFindings: {}", escape(&v.findings_line())));
        }
        if let Some(link) = &v.link {
            text.push_str(&format!("\n<{link}|Details>"));
        }
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": text}}));
    }
    if n.events.len() > MAX_LISTED {
        blocks.push(json!({"type": "context", "elements": [
            {"type": "mrkdwn", "text": format!("…and {} more", n.events.len() - MAX_LISTED)}
        ]}));
    }
    json!({"text": title, "blocks": blocks})
}

#[async_trait]
impl Notifier for SlackNotifier {
    fn name(&self) -> &str {
        &self.name
    }

    async fn notify(&self, n: &Notification) -> Result<(), NotifyError> {
        let body = message(n, self.public_url.as_deref());
        let resp = self
            .client
            .post(self.url.clone())
            .json(&body)
            .send()
            .await
            .map_err(send_error)?;
        check_status(resp.status())
    }
}
