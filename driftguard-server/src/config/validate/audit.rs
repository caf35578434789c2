//! An environment's `audit` section: where events come from, and limits above 0.

use super::super::AuditConfig;
use super::Problems;

/// `at` is the section's key (`environments[0].audit`).
pub(super) fn check(problems: &mut Problems, at: &str, a: &AuditConfig) {
    if a.webhook.is_none() && a.log_file.is_none() {
        problems.add(
            at,
            "no audit events to read: set `webhook` (the API server's webhook backend) or `logFile` (its log file)",
        );
    }
    if let Some(w) = &a.webhook {
        if w.token_env.trim().is_empty() {
            problems.add(
                format!("{at}.webhook.tokenEnv"),
                "must name the environment variable holding the token the API server sends",
            );
        }
        if w.max_body == Some(0) {
            problems.add(format!("{at}.webhook.maxBody"), "must be more than 0 bytes");
        }
    }
    for (key, zero) in [
        ("writesPerObject", a.writes_per_object == Some(0)),
        ("maxObjects", a.max_objects == Some(0)),
        ("maxAge", a.max_age.is_some_and(|d| d.0.is_zero())),
        (
            "logPollInterval",
            a.log_poll_interval.is_some_and(|d| d.0.is_zero()),
        ),
    ] {
        if zero {
            problems.add(format!("{at}.{key}"), "must be more than 0");
        }
    }
    if a.log_file
        .as_ref()
        .is_some_and(|p| p.as_os_str().is_empty())
    {
        problems.add(format!("{at}.logFile"), "must not be empty");
    }
}
