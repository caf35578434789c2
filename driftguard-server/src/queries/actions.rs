//! What people did, recorded with who: scan now, acknowledge, withdraw, remediate, and failed
//! sign-ins counted per client and minute. A record that cannot be written is logged and the
//! action goes on (the history of actions never stops one).

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use driftguard_core::actions::{ActionKind, PersonAction};
use driftguard_core::error::chain;

use crate::dto::ActionDto;
use crate::error::AppError;
use crate::state::AppState;

/// Records `action` (a failure is logged, never returned).
pub async fn record(state: &AppState, action: PersonAction) {
    if let Err(e) = state
        .store
        .record_actions(std::slice::from_ref(&action))
        .await
    {
        tracing::warn!(action = action.action.as_str(), who = %action.who, error = %chain(&e),
            "cannot record what a person did");
    }
}

/// Records an action of `who` now.
pub async fn did(
    state: &AppState,
    action: ActionKind,
    who: &str,
    environment: Option<&str>,
    episodes: Vec<String>,
    detail: impl Into<String>,
) {
    let a = PersonAction::new(
        action,
        who,
        state.clock.now(),
        environment.map(str::to_owned),
        episodes,
        detail,
    );
    record(state, a).await;
}

/// A client's address and a reason of failure.
type ClientReason = (String, String);

/// Failed sign-ins counted per client and minute: one action per client and minute whose
/// count grows (the same id, written again).
#[derive(Debug, Default)]
pub struct SignInFailures {
    /// Per client and reason: the minute counted and the count.
    counts: Mutex<HashMap<ClientReason, (DateTime<Utc>, u32)>>,
}

impl SignInFailures {
    /// Counts one failure of `client` at `now`: the action to record.
    pub fn note(&self, client: &str, now: DateTime<Utc>) -> PersonAction {
        self.note_because(client, now, "")
    }

    /// Counts one failure of `client` at `now` for `reason` (counted apart from other
    /// reasons, and recorded as the action's detail): the action to record.
    pub fn note_because(&self, client: &str, now: DateTime<Utc>, reason: &str) -> PersonAction {
        let minute = now.duration_trunc(TimeDelta::minutes(1)).unwrap_or(now);
        let mut counts = self
            .counts
            .lock()
            .expect("never poisoned: no panics while held");
        // only this minute's are kept: the map holds the clients of one minute at most
        counts.retain(|_, (at, _)| *at == minute);
        let entry = counts
            .entry((client.to_owned(), reason.to_owned()))
            .or_insert((minute, 0));
        entry.1 += 1;
        PersonAction::new(
            ActionKind::SignInFailed,
            client,
            minute,
            None,
            Vec::new(),
            reason,
        )
        .counted(entry.1)
    }
}

/// Records a failed sign-in of `client` (its address, or `unknown`).
pub async fn sign_in_failed(state: &AppState, client: Option<std::net::IpAddr>) {
    let who = client.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
    let action = state.sign_in_failures.note(&who, state.clock.now());
    record(state, action).await;
}

/// Records a failed sign-in of `client` for `reason` (never a credential): counted per
/// client, reason and minute.
pub async fn sign_in_failed_because(
    state: &AppState,
    client: Option<std::net::IpAddr>,
    reason: &str,
) {
    let who = client.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
    let action = state
        .sign_in_failures
        .note_because(&who, state.clock.now(), reason);
    record(state, action).await;
}

/// The newest actions of `environment` (`None`: all the caller may read), at most `limit`.
pub async fn list(
    state: &AppState,
    environment: Option<&str>,
    limit: usize,
) -> Result<Vec<ActionDto>, AppError> {
    crate::queries::known_env(state, &environment.map(str::to_owned))?;
    Ok(state
        .store
        .actions(environment, limit)
        .await?
        .iter()
        .map(ActionDto::from)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn failures_are_counted_per_client_and_minute() {
        let f = SignInFailures::default();
        let t = |s: i64| {
            Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0)
                .single()
                .expect("valid")
                + TimeDelta::seconds(s)
        };
        let a = f.note("192.0.2.1", t(1));
        let b = f.note("192.0.2.1", t(59));
        assert_eq!((a.id == b.id, b.count), (true, 2), "one record, counted");
        let other = f.note("192.0.2.2", t(30));
        assert_eq!(other.count, 1);
        let next = f.note("192.0.2.1", t(61));
        assert_ne!(next.id, a.id, "a new minute");
        assert_eq!(next.count, 1);
        assert_eq!(next.action, ActionKind::SignInFailed);
    }
}
