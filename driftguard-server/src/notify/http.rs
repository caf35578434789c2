//! The HTTP client the notifiers share, and how its failures are told.

use super::*;

pub(crate) fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .connect_timeout(Duration::from_secs(5))
        .user_agent(concat!("driftguard/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

pub(crate) fn send_error(e: reqwest::Error) -> NotifyError {
    // never include the URL: for Slack it is the secret
    let e = e.without_url();
    if e.is_connect() || e.is_timeout() {
        NotifyError::Unreachable {
            source: Box::new(e),
        }
    } else {
        NotifyError::Backend {
            context: "sending the notification".into(),
            source: Box::new(e),
        }
    }
}

pub(crate) fn check_status(status: reqwest::StatusCode) -> Result<(), NotifyError> {
    if status.is_success() {
        Ok(())
    } else {
        Err(NotifyError::Rejected {
            status: status.as_u16(),
        })
    }
}
