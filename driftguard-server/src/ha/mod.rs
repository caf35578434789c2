//! High availability (`server.ha`): replicas share one store and elect, per environment, the
//! replica that watches, polls, scans, writes and alerts.
//!
//! - **Leases.** Each environment has a `coordination.k8s.io/v1` Lease
//!   (`<prefix>-env-<environment>`) in a namespace of a home cluster; its holder leads the
//!   environment. Each replica also keeps a membership Lease (`<prefix>-member-<identity>`), so
//!   that the replicas know how many of them are alive. The elector ([`elector`]) renews what
//!   it holds every `retryPeriod` and takes a Lease over when it has not changed for
//!   `leaseDuration`, judged by the replica's own monotonic clock since it last saw the Lease
//!   change (clocks of different machines are never compared).
//! - **Epochs.** A term's epoch is the Lease's `leaseTransitions` plus one at acquisition
//!   (moved past the store's epoch when the store has seen a higher one, e.g. after the Lease
//!   was deleted). The scanner stamps it on every batch; the store refuses batches of an older
//!   epoch ([`driftguard_core::fence`]). A new leader first claims the environment in the store
//!   ([`driftguard_core::ports::ScanBatch::claim`]), then sends again the alerts its
//!   predecessor had not delivered, then starts the environment's loops with a full scan.
//! - **Local fence.** A leader that has not renewed for `renewDeadline` (shorter than
//!   `leaseDuration`) stops at once: [`Leadership::leads`] turns false (the environment refuses
//!   to start scans and live changes, the notifiers stop delivering its alerts) and its loops
//!   are stopped. A write the store refuses makes it step down too.
//! - **Spreading.** A replica leads at most [`share::fair_share`] environments (the
//!   environments divided by the live replicas, rounded up), and hands back what it holds
//!   beyond that when replicas join.
//!
//! Every replica serves the API, the metrics and the dashboard from the store; the status of
//! an environment led elsewhere is its last scan summary in the store.

pub mod elector;
pub mod share;

use std::collections::BTreeMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use crate::config::HaConfig;

/// The settings of leader election, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HaSettings {
    /// This replica's name in the Leases.
    pub identity: String,
    /// Namespace of the Leases.
    pub namespace: String,
    /// See [`HaConfig::lease_duration`].
    pub lease_duration: Duration,
    /// See [`HaConfig::renew_deadline`].
    pub renew_deadline: Duration,
    /// See [`HaConfig::retry_period`].
    pub retry_period: Duration,
    /// Prefix of the Leases' names.
    pub prefix: String,
}

impl HaSettings {
    /// The settings of `config`; the identity, when not configured, is `POD_NAME` (read
    /// through `env`), else `<hostname>-<process id>`.
    pub fn from_config(config: &HaConfig, env: &dyn Fn(&str) -> Option<String>) -> Self {
        let identity = config
            .identity
            .clone()
            .or_else(|| env("POD_NAME").filter(|v| !v.trim().is_empty()))
            .unwrap_or_else(|| format!("{}-{}", hostname(), std::process::id()));
        HaSettings {
            identity,
            namespace: config.namespace.clone(),
            lease_duration: config.lease_duration.0,
            renew_deadline: config.renew_deadline.0,
            retry_period: config.retry_period.0,
            prefix: config.lease_prefix.clone(),
        }
    }

    /// The Lease of `environment`.
    pub fn environment_lease(&self, environment: &str) -> String {
        format!("{}-env-{}", self.prefix, lease_suffix(environment))
    }

    /// The membership Lease of replica `identity`.
    pub fn member_lease(&self, identity: &str) -> String {
        format!("{}-member-{}", self.prefix, lease_suffix(identity))
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "driftguard".into())
}

/// A name part usable in a Lease name (a DNS subdomain): lower case, `_` and `.` as `-`; when
/// that changed the name, a hash of the original keeps different names apart
/// (`Prod_EU` → `prod-eu-1a2b3c4d`).
pub fn lease_suffix(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '-' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '-',
        })
        .collect();
    s = s.trim_matches('-').to_owned();
    s.truncate(180);
    if s != name || s.is_empty() {
        let h = fnv1a(name.as_bytes());
        s = if s.is_empty() {
            format!("{h:08x}")
        } else {
            format!("{s}-{h:08x}")
        };
    }
    s
}

/// FNV-1a, 32 bits: a stable short hash for names (no dependency for eight hex digits).
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// This replica's term as leader of one environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Term {
    /// The epoch every write of the term carries.
    pub epoch: u64,
    /// Until when the term is valid without another renewal (the local fence).
    pub valid_until: Instant,
}

/// What a replica knows of an environment's leadership.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaderView {
    /// The holder of the Lease as last seen (`None`: nobody, or not seen yet).
    pub holder: Option<String>,
    /// Whether this replica leads it now (its term is valid).
    pub leading: bool,
    /// The epoch of this replica's term, when it leads; else of the holder's, as last seen.
    pub epoch: Option<u64>,
}

#[derive(Clone, Debug, Default)]
struct EnvLeadership {
    holder: Option<String>,
    holder_epoch: Option<u64>,
    term: Option<Term>,
}

/// Who leads each environment, as this replica knows it; shared by the elector (which
/// writes it), the environments, the notifiers and the API (which read it).
#[derive(Debug)]
pub struct Leadership {
    identity: String,
    envs: RwLock<BTreeMap<String, EnvLeadership>>,
}

impl Leadership {
    /// Nothing led yet, for replica `identity`.
    pub fn new(identity: impl Into<String>) -> Self {
        Leadership {
            identity: identity.into(),
            envs: RwLock::new(BTreeMap::new()),
        }
    }

    /// This replica's name.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, EnvLeadership>> {
        self.envs.read().expect("leadership lock is never poisoned")
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, EnvLeadership>> {
        self.envs
            .write()
            .expect("leadership lock is never poisoned")
    }

    /// The term of `environment` while it is valid (see [`Leadership::leads`]).
    pub fn term(&self, environment: &str) -> Option<Term> {
        let now = Instant::now();
        self.read()
            .get(environment)
            .and_then(|e| e.term)
            .filter(|t| t.valid_until > now)
    }

    /// How long ago the term of `epoch` of `environment` ran out (zero while it is valid;
    /// `None` when there is no such term).
    pub fn ended_ago(&self, environment: &str, epoch: u64) -> Option<Duration> {
        let now = Instant::now();
        self.read()
            .get(environment)
            .and_then(|e| e.term)
            .filter(|t| t.epoch == epoch)
            .map(|t| now.saturating_duration_since(t.valid_until))
    }

    /// Whether this replica leads `environment` now: it holds the Lease and renewed it less
    /// than `renewDeadline` ago (by the monotonic clock: a process that was paused finds its
    /// terms over when it wakes).
    pub fn leads(&self, environment: &str) -> bool {
        self.term(environment).is_some()
    }

    /// What this replica knows of `environment`'s leadership.
    pub fn view(&self, environment: &str) -> LeaderView {
        let now = Instant::now();
        let guard = self.read();
        let Some(e) = guard.get(environment) else {
            return LeaderView::default();
        };
        match e.term.filter(|t| t.valid_until > now) {
            Some(t) => LeaderView {
                holder: Some(self.identity.clone()),
                leading: true,
                epoch: Some(t.epoch),
            },
            None => LeaderView {
                holder: e.holder.clone().filter(|h| h != &self.identity),
                leading: false,
                epoch: e.holder_epoch,
            },
        }
    }

    /// The environments this replica leads now.
    pub fn led(&self) -> Vec<String> {
        let now = Instant::now();
        self.read()
            .iter()
            .filter(|(_, e)| e.term.is_some_and(|t| t.valid_until > now))
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Starts a term (the elector does; so can a test).
    pub fn begin(&self, environment: &str, term: Term) {
        let mut guard = self.write();
        let e = guard.entry(environment.to_owned()).or_default();
        e.term = Some(term);
        e.holder = Some(self.identity.clone());
        e.holder_epoch = Some(term.epoch);
    }

    /// Extends the term of `epoch` to `valid_until` (a renewal); nothing when that term ended.
    pub(crate) fn extend(&self, environment: &str, epoch: u64, valid_until: Instant) {
        if let Some(t) = self
            .write()
            .get_mut(environment)
            .and_then(|e| e.term.as_mut())
            .filter(|t| t.epoch == epoch)
        {
            t.valid_until = t.valid_until.max(valid_until);
        }
    }

    /// Ends the term of `environment`, if any: from now on this replica does not lead it (the
    /// elector does; so can a test).
    pub fn end(&self, environment: &str) {
        if let Some(e) = self.write().get_mut(environment) {
            e.term = None;
        }
    }

    /// Ends the term of `environment` if it is the term of `epoch` (not a later one).
    pub(crate) fn end_epoch(&self, environment: &str, epoch: u64) {
        if let Some(e) = self.write().get_mut(environment) {
            if e.term.is_some_and(|t| t.epoch == epoch) {
                e.term = None;
            }
        }
    }

    /// Records who holds `environment`'s Lease, as seen in it.
    pub(crate) fn seen(&self, environment: &str, holder: Option<String>, epoch: Option<u64>) {
        let mut guard = self.write();
        let e = guard.entry(environment.to_owned()).or_default();
        e.holder = holder;
        e.holder_epoch = epoch;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_names_are_dns_names_and_keep_names_apart() {
        assert_eq!(lease_suffix("prod"), "prod");
        assert_eq!(lease_suffix("eu-west-1"), "eu-west-1");
        let a = lease_suffix("Prod_EU");
        let b = lease_suffix("prod-eu");
        assert!(
            a.starts_with("prod-eu-") && a.len() == "prod-eu-".len() + 8,
            "{a}"
        );
        assert_ne!(a, b);
        assert_ne!(lease_suffix("a.b"), lease_suffix("a_b"));
        assert!(lease_suffix("__").len() == 8);
    }

    #[test]
    fn a_term_ends_by_itself_when_not_renewed() {
        let l = Leadership::new("me");
        assert!(!l.leads("prod"));
        l.begin(
            "prod",
            Term {
                epoch: 3,
                valid_until: Instant::now() + Duration::from_secs(60),
            },
        );
        assert!(l.leads("prod"));
        assert_eq!(
            l.view("prod"),
            LeaderView {
                holder: Some("me".into()),
                leading: true,
                epoch: Some(3)
            }
        );
        assert_eq!(l.led(), ["prod"]);
        // a renewal of another term does nothing
        l.extend("prod", 2, Instant::now() + Duration::from_secs(600));
        // past its deadline the term is over, though nobody ended it
        l.begin(
            "dev",
            Term {
                epoch: 1,
                valid_until: Instant::now(),
            },
        );
        assert!(!l.leads("dev"));
        l.seen("dev", Some("other".into()), Some(2));
        assert_eq!(
            l.view("dev"),
            LeaderView {
                holder: Some("other".into()),
                leading: false,
                epoch: Some(2)
            }
        );
        l.end("prod");
        assert!(!l.leads("prod"));
        assert!(l.led().is_empty());
    }
}
