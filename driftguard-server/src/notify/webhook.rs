//! Generic webhooks: a JSON body signed with HMAC-SHA256 (schema in `docs/api.md`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use driftguard_core::ports::{Notification, Notifier, NotifyError};
use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use sha2::Sha256;

use super::{check_status, http_client, send_error, EventView};

/// Header carrying `sha256=<hex HMAC-SHA256 of the body>`.
pub const SIGNATURE_HEADER: &str = "X-DriftGuard-Signature-256";

/// The JSON body posted.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WebhookBody {
    /// Schema version (1).
    pub version: u32,
    /// Environment.
    pub environment: String,
    /// When sent.
    pub sent_at: DateTime<Utc>,
    /// The events.
    pub events: Vec<EventView>,
}

/// Posts signed JSON to a URL.
pub struct WebhookNotifier {
    name: String,
    url: reqwest::Url,
    secret: Option<String>,
    public_url: Option<String>,
    client: reqwest::Client,
}

impl WebhookNotifier {
    /// A notifier posting to `url`, signing with `secret` when given.
    pub fn new(
        name: String,
        url: reqwest::Url,
        secret: Option<String>,
        public_url: Option<String>,
    ) -> Self {
        WebhookNotifier {
            name,
            url,
            secret,
            public_url,
            client: http_client(),
        }
    }
}

/// `sha256=<hex>` of `body` with `secret`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any size");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[async_trait]
impl Notifier for WebhookNotifier {
    fn name(&self) -> &str {
        &self.name
    }

    async fn notify(&self, n: &Notification) -> Result<(), NotifyError> {
        let body = WebhookBody {
            version: 1,
            environment: n.environment.clone(),
            sent_at: Utc::now(),
            events: n
                .events
                .iter()
                .map(|e| EventView::of(e, self.public_url.as_deref()))
                .collect(),
        };
        let bytes = serde_json::to_vec(&body).map_err(|e| NotifyError::Backend {
            context: "encoding the webhook body".into(),
            source: Box::new(e),
        })?;
        let mut req = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        if let Some(secret) = &self.secret {
            req = req.header(SIGNATURE_HEADER, sign(secret, &bytes));
        }
        let resp = req.body(bytes).send().await.map_err(send_error)?;
        check_status(resp.status())
    }
}
