//! What people did through DriftGuard: scan now, acknowledge, withdraw an acknowledgement,
//! remediate, and failed sign-ins counted per client. Each is a [`PersonAction`] naming who,
//! kept by the store beside the drift events ([`crate::ports::DriftStore::actions`]) and shown
//! by the API and the dashboard.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::names::named_enum;

named_enum! {
    /// What a person did.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum ActionKind: "action" {
        /// Asked for a scan now.
        Scan => "scan",
        /// Acknowledged drift.
        Acknowledge => "acknowledge",
        /// Withdrew an acknowledgement.
        Withdraw => "withdraw",
        /// Had a remediation carried out.
        Remediate => "remediate",
        /// Failed to sign in (`count` failures from one client).
        SignInFailed => "sign-in-failed",
    }
}

/// One action of a person.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonAction {
    /// Deterministic id (a retried write keeps one).
    pub id: String,
    /// When.
    pub at: DateTime<Utc>,
    /// Who: `token:<name>`, `cli:<user>`; for failed sign-ins the client's address.
    pub who: String,
    /// What.
    pub action: ActionKind,
    /// The environment it concerned, if one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// The drift episodes it concerned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub episodes: Vec<String>,
    /// How many (failed sign-ins; 1 otherwise).
    pub count: u32,
    /// A word more (a reason, an outcome); never a secret.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

impl PersonAction {
    /// An action of `who` at `at`.
    pub fn new(
        action: ActionKind,
        who: impl Into<String>,
        at: DateTime<Utc>,
        environment: Option<String>,
        episodes: Vec<String>,
        detail: impl Into<String>,
    ) -> Self {
        let (who, detail) = (who.into(), detail.into());
        let seed = format!(
            "{}|{who}|{}|{environment:?}|{}|{detail}",
            action.as_str(),
            at.timestamp_nanos_opt().unwrap_or_default(),
            episodes.join(",")
        );
        PersonAction {
            id: format!("{:016x}", xxhash_rust::xxh3::xxh3_64(seed.as_bytes())),
            at,
            who,
            action,
            environment,
            episodes,
            count: 1,
            detail,
        }
    }

    /// With a count.
    pub fn counted(mut self, count: u32) -> Self {
        self.count = count;
        self
    }
}

/// The newest actions first, at most `limit`, of `environment` (`None`: all): the one order
/// and filter every store gives.
pub fn newest(
    actions: impl IntoIterator<Item = PersonAction>,
    environment: Option<&str>,
    limit: usize,
) -> Vec<PersonAction> {
    let mut out: Vec<PersonAction> = actions
        .into_iter()
        .filter(|a| environment.is_none_or(|e| a.environment.as_deref() == Some(e)))
        .collect();
    out.sort_by(|a, b| b.at.cmp(&a.at).then(b.id.cmp(&a.id)));
    out.truncate(limit);
    out
}
