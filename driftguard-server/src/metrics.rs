//! Prometheus metrics (prometheus-client), named after the Prometheus conventions.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use driftguard_core::ports::ScanSummary;
use driftguard_core::state::{Drift, DriftEvent};
use driftguard_core::terraform::codify::Coverage;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// `{environment}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct EnvLabels {
    /// Environment.
    pub environment: String,
}

/// `{environment,state}`: `managed` (a state holds it) or `unmanaged` (an orphan).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IacLabels {
    /// Environment.
    pub environment: String,
    /// `managed` or `unmanaged`.
    pub state: String,
}

/// `{environment,source}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    /// Environment.
    pub environment: String,
    /// `git` or `live`.
    pub source: String,
}

/// `{environment,event}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    /// Environment.
    pub environment: String,
    /// `detected`, `changed`, `resolved`.
    pub event: String,
}

/// `{environment,kind,namespace,drift,direction,severity}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct DriftLabels {
    /// Environment.
    pub environment: String,
    /// Kubernetes kind.
    pub kind: String,
    /// Namespace (empty for cluster-scoped objects).
    pub namespace: String,
    /// `modified`, `missing`, `orphan`.
    pub drift: String,
    /// `forward`, `reverse`, `conflict`, `unknown`.
    pub direction: String,
    /// `low` .. `critical`.
    pub severity: String,
}

/// `{environment,outcome}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AuditLabels {
    /// Environment.
    pub environment: String,
    /// `indexed` (a write kept), `ignored` (not a write kept: reads, failed writes),
    /// `duplicate` (already kept, or older than the index keeps), `refused` (a post refused).
    pub outcome: String,
}

/// `{change}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DiscoveryLabels {
    /// `added`, `changed`, `removed`.
    pub change: String,
}

/// `{environment,tool}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ToolLabels {
    /// Environment (a discovered one).
    pub environment: String,
    /// `argocd` or `flux`.
    pub tool: String,
}

/// The `tool` label of each tool (and of the API's `tool.tool`).
pub const TOOLS: [&str; 2] = ["argocd", "flux"];

/// `{notifier}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NotifierLabels {
    /// Notifier name.
    pub notifier: String,
}

type HistogramCtor = fn() -> Histogram;

/// The open-drift label sets of one environment and its oldest detection.
type OpenSeries = (BTreeSet<DriftLabels>, Option<DateTime<Utc>>);

fn scan_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 16))
}

/// Every metric of the server.
pub struct Metrics {
    registry: Registry,
    drift_score: Family<EnvLabels, Gauge<f64, AtomicU64>>,
    drifts: Family<DriftLabels, Gauge>,
    drift_age: Family<EnvLabels, Gauge<f64, AtomicU64>>,
    events: Family<EventLabels, Counter>,
    scan_duration: Family<EnvLabels, Histogram, HistogramCtor>,
    last_scan: Family<SourceLabels, Gauge<f64, AtomicU64>>,
    source_up: Family<SourceLabels, Gauge>,
    notify_sent: Family<NotifierLabels, Counter>,
    notify_failed: Family<NotifierLabels, Counter>,
    notify_dropped: Family<NotifierLabels, Counter>,
    leader: Family<EnvLabels, Gauge>,
    step_downs: Family<EnvLabels, Counter>,
    audit_events: Family<AuditLabels, Counter>,
    discovered: Family<DiscoveryLabels, Counter>,
    tool_in_sync: Family<ToolLabels, Gauge>,
    tool_healthy: Family<ToolLabels, Gauge>,
    iac_coverage: Family<EnvLabels, Gauge<f64, AtomicU64>>,
    iac_resources: Family<IacLabels, Gauge>,
    /// Label sets of open drifts per environment, and the oldest detection.
    open: Mutex<BTreeMap<String, OpenSeries>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let drift_score = Family::<EnvLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "driftguard_drift_score",
            "Drift score of the environment (0 in sync .. 100), from the last scan",
            drift_score.clone(),
        );
        let drifts = Family::<DriftLabels, Gauge>::default();
        registry.register("driftguard_drifts", "Open drifts", drifts.clone());
        let drift_age = Family::<EnvLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "driftguard_drift_age_seconds",
            "Age of the oldest open drift of the environment (0 when none)",
            drift_age.clone(),
        );
        let events = Family::<EventLabels, Counter>::default();
        registry.register(
            "driftguard_drift_events",
            "Drift events (detected, changed, resolved)",
            events.clone(),
        );
        let scan_duration =
            Family::<EnvLabels, Histogram, HistogramCtor>::new_with_constructor(scan_histogram);
        registry.register(
            "driftguard_scan_duration_seconds",
            "Duration of full scans",
            scan_duration.clone(),
        );
        let last_scan = Family::<SourceLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "driftguard_last_scan_timestamp_seconds",
            "Unix time of the last successful read of the source",
            last_scan.clone(),
        );
        let source_up = Family::<SourceLabels, Gauge>::default();
        registry.register(
            "driftguard_source_up",
            "Whether the source answered at its last use (1) or not (0)",
            source_up.clone(),
        );
        let notify_sent = Family::<NotifierLabels, Counter>::default();
        registry.register(
            "driftguard_notifications_sent",
            "Notifications delivered",
            notify_sent.clone(),
        );
        let notify_failed = Family::<NotifierLabels, Counter>::default();
        registry.register(
            "driftguard_notification_failures",
            "Failed notification delivery attempts",
            notify_failed.clone(),
        );
        let notify_dropped = Family::<NotifierLabels, Counter>::default();
        registry.register(
            "driftguard_notifications_dropped",
            "Notifications given up after every retry, or dropped because the queue was full",
            notify_dropped.clone(),
        );
        let leader = Family::<EnvLabels, Gauge>::default();
        registry.register(
            "driftguard_leader",
            "Whether this replica leads the environment (1) or not (0), with leader election (server.ha)",
            leader.clone(),
        );
        let step_downs = Family::<EnvLabels, Counter>::default();
        registry.register(
            "driftguard_leadership_lost",
            "Times this replica stopped leading the environment without releasing it (lease lost, not renewed in time, or a write refused by the store)",
            step_downs.clone(),
        );
        let audit_events = Family::<AuditLabels, Counter>::default();
        registry.register(
            "driftguard_audit_events",
            "Audit events received (by outcome), and audit posts refused",
            audit_events.clone(),
        );
        let discovered = Family::<DiscoveryLabels, Counter>::default();
        registry.register(
            "driftguard_discovered_environment_changes",
            "Discovered environments started (added), restarted with a new configuration (changed) or stopped (removed) while serve runs",
            discovered.clone(),
        );
        let tool_in_sync = Family::<ToolLabels, Gauge>::default();
        registry.register(
            "driftguard_tool_in_sync",
            "What the deployment tool says of a discovered environment: in sync (1: Argo CD Synced, Flux Ready) or not (0); absent while it says nothing (Unknown)",
            tool_in_sync.clone(),
        );
        let tool_healthy = Family::<ToolLabels, Gauge>::default();
        registry.register(
            "driftguard_tool_healthy",
            "What the deployment tool says of a discovered environment's health: healthy (1: Argo CD Healthy, Flux Ready) or not (0); absent while it says nothing (Unknown)",
            tool_healthy.clone(),
        );
        let iac_coverage = Family::<EnvLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "driftguard_iac_coverage_ratio",
            "Share of the cloud account's resources (of the kinds listed) that a Terraform state holds, from the last check (0..1)",
            iac_coverage.clone(),
        );
        let iac_resources = Family::<IacLabels, Gauge>::default();
        registry.register(
            "driftguard_iac_resources",
            "The cloud account's resources of the kinds listed, managed by code (in a state) or not (orphans), from the last check",
            iac_resources.clone(),
        );
        Metrics {
            registry,
            iac_coverage,
            iac_resources,
            discovered,
            tool_in_sync,
            tool_healthy,
            leader,
            step_downs,
            audit_events,
            drift_score,
            drifts,
            drift_age,
            events,
            scan_duration,
            last_scan,
            source_up,
            notify_sent,
            notify_failed,
            notify_dropped,
            open: Mutex::new(BTreeMap::new()),
        }
    }

    fn env(environment: &str) -> EnvLabels {
        EnvLabels {
            environment: environment.to_owned(),
        }
    }

    fn src(environment: &str, source: &str) -> SourceLabels {
        SourceLabels {
            environment: environment.to_owned(),
            source: source.to_owned(),
        }
    }

    /// Records a finished full scan.
    pub fn record_scan(&self, summary: &ScanSummary, seconds: f64) {
        let env = Metrics::env(&summary.environment);
        self.drift_score.get_or_create(&env).set(summary.score);
        self.scan_duration.get_or_create(&env).observe(seconds);
    }

    /// Sets the IaC coverage of `environment` (its last check); with nothing counted the
    /// ratio is left out.
    pub fn set_iac_coverage(&self, environment: &str, c: &Coverage) {
        let env = Metrics::env(environment);
        match c.ratio() {
            Some(r) => {
                self.iac_coverage.get_or_create(&env).set(r);
            }
            None => {
                self.iac_coverage.remove(&env);
            }
        }
        for (state, n) in [("managed", c.managed), ("unmanaged", c.unmanaged)] {
            self.iac_resources
                .get_or_create(&IacLabels {
                    environment: environment.to_owned(),
                    state: state.to_owned(),
                })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// Says whether a source answered, and when it last did.
    pub fn source(&self, environment: &str, source: &str, up: bool, at: DateTime<Utc>) {
        let l = Metrics::src(environment, source);
        self.source_up.get_or_create(&l).set(i64::from(up));
        if up {
            self.last_scan
                .get_or_create(&l)
                .set(at.timestamp_millis() as f64 / 1000.0);
        }
    }

    /// Counts events.
    pub fn count_events(&self, environment: &str, events: &[DriftEvent]) {
        for e in events {
            self.events
                .get_or_create(&EventLabels {
                    environment: environment.to_owned(),
                    event: e.kind.as_str().to_owned(),
                })
                .inc();
        }
    }

    /// Replaces the open drifts of one environment.
    pub fn set_open_drifts(&self, environment: &str, open: &[Drift], now: DateTime<Utc>) {
        let mut counts: BTreeMap<DriftLabels, i64> = BTreeMap::new();
        let mut oldest: Option<DateTime<Utc>> = None;
        for d in open.iter().filter(|d| d.is_open()) {
            *counts
                .entry(DriftLabels {
                    environment: environment.to_owned(),
                    kind: d.id.kind.clone(),
                    namespace: d.id.namespace.clone().unwrap_or_default(),
                    drift: d.kind.as_str().to_owned(),
                    direction: d.direction.as_str().to_owned(),
                    severity: d.severity.as_str().to_owned(),
                })
                .or_default() += 1;
            oldest = Some(oldest.map_or(d.detected_at, |o| o.min(d.detected_at)));
        }
        let mut guard = self.open.lock().expect("metrics lock is never poisoned");
        let entry = guard.entry(environment.to_owned()).or_default();
        for stale in entry.0.iter().filter(|l| !counts.contains_key(*l)) {
            self.drifts.remove(stale);
        }
        for (l, n) in &counts {
            self.drifts.get_or_create(l).set(*n);
        }
        entry.0 = counts.into_keys().collect();
        entry.1 = oldest;
        let age = oldest.map_or(0.0, |o| age_seconds(o, now));
        self.drift_age
            .get_or_create(&Metrics::env(environment))
            .set(age);
    }

    /// Says whether this replica leads `environment` (leader election). A replica that stops
    /// leading also drops the environment's drift series: the leader publishes them, so that
    /// summing over replicas counts each drift once.
    pub fn set_leader(&self, environment: &str, leading: bool, now: DateTime<Utc>) {
        let env = Metrics::env(environment);
        self.leader.get_or_create(&env).set(i64::from(leading));
        if !leading {
            self.set_open_drifts(environment, &[], now);
            self.drift_score.remove(&env);
            self.drift_age.remove(&env);
            self.open
                .lock()
                .expect("metrics lock is never poisoned")
                .remove(environment);
        }
    }

    /// Counts a leadership lost without a release (see [`Metrics::set_leader`]).
    pub fn leadership_lost(&self, environment: &str) {
        self.step_downs
            .get_or_create(&Metrics::env(environment))
            .inc();
    }

    /// Counts a discovered environment `added`, `changed` or `removed` while `serve` runs.
    pub fn discovery_change(&self, change: &str) {
        self.discovered
            .get_or_create(&DiscoveryLabels {
                change: change.to_owned(),
            })
            .inc();
    }

    /// Sets what the deployment tool (`argocd`, `flux`) says of a discovered environment:
    /// in sync and healthy, 1 or 0; `None` drops the series (the tool says nothing).
    pub fn set_tool_verdict(
        &self,
        environment: &str,
        tool: &str,
        in_sync: Option<bool>,
        healthy: Option<bool>,
    ) {
        let labels = ToolLabels {
            environment: environment.to_owned(),
            tool: tool.to_owned(),
        };
        for (family, value) in [(&self.tool_in_sync, in_sync), (&self.tool_healthy, healthy)] {
            match value {
                Some(v) => {
                    family.get_or_create(&labels).set(i64::from(v));
                }
                None => {
                    family.remove(&labels);
                }
            }
        }
    }

    /// Drops the series of an environment that is no longer watched (discovery removed it):
    /// its score, open drifts, drift age, sources, scan durations, leadership and its tool's
    /// verdict. The counters of its events stay (they count what happened).
    pub fn forget(&self, environment: &str) {
        let env = Metrics::env(environment);
        self.set_open_drifts(environment, &[], chrono::DateTime::<Utc>::UNIX_EPOCH);
        self.open
            .lock()
            .expect("metrics lock is never poisoned")
            .remove(environment);
        self.drift_score.remove(&env);
        self.drift_age.remove(&env);
        self.scan_duration.remove(&env);
        self.leader.remove(&env);
        self.iac_coverage.remove(&env);
        for state in ["managed", "unmanaged"] {
            self.iac_resources.remove(&IacLabels {
                environment: environment.to_owned(),
                state: state.to_owned(),
            });
        }
        for source in ["git", "live"] {
            let l = Metrics::src(environment, source);
            self.source_up.remove(&l);
            self.last_scan.remove(&l);
        }
        for tool in TOOLS {
            self.set_tool_verdict(environment, tool, None, None);
        }
    }

    /// Counts `n` audit events of `environment` with `outcome` (see [`AuditLabels`]).
    pub fn audit(&self, environment: &str, outcome: &str, n: usize) {
        if n > 0 {
            self.audit_events
                .get_or_create(&AuditLabels {
                    environment: environment.to_owned(),
                    outcome: outcome.to_owned(),
                })
                .inc_by(n as u64);
        }
    }

    /// Notifier outcomes.
    pub fn notification(&self, notifier: &str, outcome: NotifyOutcome) {
        let l = NotifierLabels {
            notifier: notifier.to_owned(),
        };
        match outcome {
            NotifyOutcome::Sent => self.notify_sent.get_or_create(&l).inc(),
            NotifyOutcome::Failed => self.notify_failed.get_or_create(&l).inc(),
            NotifyOutcome::Dropped => self.notify_dropped.get_or_create(&l).inc(),
        };
    }

    /// The text exposition (OpenMetrics), with drift ages brought up to `now`.
    pub fn encode(&self, now: DateTime<Utc>) -> String {
        {
            let guard = self.open.lock().expect("metrics lock is never poisoned");
            for (env, (_, oldest)) in guard.iter() {
                let age = oldest.map_or(0.0, |o| age_seconds(o, now));
                self.drift_age.get_or_create(&Metrics::env(env)).set(age);
            }
        }
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        out
    }
}

/// What happened to a notification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotifyOutcome {
    /// Delivered.
    Sent,
    /// One attempt failed.
    Failed,
    /// Given up.
    Dropped,
}

fn age_seconds(since: DateTime<Utc>, now: DateTime<Utc>) -> f64 {
    ((now - since).num_milliseconds().max(0) as f64) / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use driftguard_core::terraform::codify::Coverage;

    #[test]
    fn iac_coverage_is_published_and_forgotten() {
        let m = Metrics::new();
        let c = Coverage {
            managed: 3,
            unmanaged: 1,
            ..Coverage::default()
        };
        m.set_iac_coverage("cloud", &c);
        let text = m.encode(Utc::now());
        for line in [
            "driftguard_iac_coverage_ratio{environment=\"cloud\"} 0.75",
            "driftguard_iac_resources{environment=\"cloud\",state=\"managed\"} 3",
            "driftguard_iac_resources{environment=\"cloud\",state=\"unmanaged\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line}:\n{text}");
        }
        // nothing counted: no ratio
        m.set_iac_coverage("cloud", &Coverage::default());
        let text = m.encode(Utc::now());
        assert!(!text.contains("driftguard_iac_coverage_ratio{"), "{text}");
        m.forget("cloud");
        assert!(!m.encode(Utc::now()).contains("environment=\"cloud\""));
    }
}
