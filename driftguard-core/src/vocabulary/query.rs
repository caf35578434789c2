//! History queries and their pure evaluation (used by the in-memory store and as the reference
//! meaning of every filter for the other stores).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::id::ResourceId;
use crate::names::named_enum;
use crate::path::glob_match;
use crate::ports::ScanSummary;
use crate::severity::Severity;
use crate::state::{Direction, Drift, DriftEvent, DriftKind, EventKind};

named_enum! {
    /// Open, resolved or both.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub enum DriftStatus: "drift status" {
        /// Still open.
        #[default]
        Open => "open",
        /// Resolved.
        Resolved => "resolved",
        /// Both.
        All => "all",
    }
}

named_enum! {
    /// Sort order of drifts.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub enum DriftSort: "sort order" {
        /// Highest severity first, then oldest first.
        #[default]
        Severity => "severity",
        /// Oldest detection first.
        Detected => "detected",
        /// Most recent update first.
        Updated => "updated",
        /// By object identity.
        Object => "object",
    }
}

/// A query over drift episodes. Unset filters match everything.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftQuery {
    /// Environment.
    pub environment: Option<String>,
    /// API group (exact; `""` is the core group).
    #[serde(default)]
    pub group: Option<String>,
    /// Kubernetes kind (exact).
    pub kind: Option<String>,
    /// Namespace (exact).
    pub namespace: Option<String>,
    /// Name (glob).
    pub name: Option<String>,
    /// Kind of drift.
    pub drift: Option<DriftKind>,
    /// Direction.
    pub direction: Option<Direction>,
    /// Minimum severity.
    pub min_severity: Option<Severity>,
    /// Only episodes detected before this time (an age filter: "open for more than a day" is
    /// `now - 1 day`).
    #[serde(default)]
    pub detected_before: Option<DateTime<Utc>>,
    /// Open, resolved or both.
    pub status: DriftStatus,
    /// Order.
    pub sort: DriftSort,
    /// Page size.
    pub limit: usize,
    /// Items to skip.
    pub offset: usize,
}

impl Default for DriftQuery {
    fn default() -> Self {
        DriftQuery {
            environment: None,
            group: None,
            kind: None,
            namespace: None,
            name: None,
            drift: None,
            direction: None,
            min_severity: None,
            detected_before: None,
            status: DriftStatus::Open,
            sort: DriftSort::Severity,
            limit: 100,
            offset: 0,
        }
    }
}

impl DriftQuery {
    /// Whether `d` passes the filters.
    pub fn matches(&self, d: &Drift) -> bool {
        self.environment
            .as_ref()
            .is_none_or(|e| &d.id.environment == e)
            && self.group.as_ref().is_none_or(|g| &d.id.group == g)
            && self.kind.as_ref().is_none_or(|k| &d.id.kind == k)
            && self
                .namespace
                .as_ref()
                .is_none_or(|n| d.id.namespace.as_ref() == Some(n))
            && self.name.as_ref().is_none_or(|n| glob_match(n, &d.id.name))
            && self.drift.is_none_or(|k| d.kind == k)
            && self.direction.is_none_or(|x| d.direction == x)
            && self.min_severity.is_none_or(|s| d.severity >= s)
            && self.detected_before.is_none_or(|t| d.detected_at < t)
            && match self.status {
                DriftStatus::Open => d.is_open(),
                DriftStatus::Resolved => !d.is_open(),
                DriftStatus::All => true,
            }
    }

    /// Sorts drifts in this query's order (ties broken by episode id, so pages are stable).
    pub fn sort(&self, items: &mut [Drift]) {
        match self.sort {
            DriftSort::Severity => items.sort_by(|a, b| {
                b.severity
                    .cmp(&a.severity)
                    .then(a.detected_at.cmp(&b.detected_at))
                    .then(a.episode.cmp(&b.episode))
            }),
            DriftSort::Detected => items.sort_by(|a, b| {
                a.detected_at
                    .cmp(&b.detected_at)
                    .then(a.episode.cmp(&b.episode))
            }),
            DriftSort::Updated => items.sort_by(|a, b| {
                b.updated_at
                    .cmp(&a.updated_at)
                    .then(a.episode.cmp(&b.episode))
            }),
            DriftSort::Object => {
                items.sort_by(|a, b| a.id.cmp(&b.id).then(a.episode.cmp(&b.episode)))
            }
        }
    }

    /// Filters, sorts and pages a full list.
    pub fn apply(&self, all: impl IntoIterator<Item = Drift>) -> Page<Drift> {
        let mut items: Vec<Drift> = all.into_iter().filter(|d| self.matches(d)).collect();
        self.sort(&mut items);
        Page::slice(items, self.offset, self.limit)
    }
}

/// A query over events. Unset filters match everything.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventQuery {
    /// Environment.
    pub environment: Option<String>,
    /// One object.
    pub object: Option<ResourceId>,
    /// Event kind.
    pub kind: Option<EventKind>,
    /// From (inclusive).
    pub since: Option<DateTime<Utc>>,
    /// To (exclusive).
    pub until: Option<DateTime<Utc>>,
    /// Page size.
    pub limit: usize,
    /// Items to skip.
    pub offset: usize,
}

impl Default for EventQuery {
    fn default() -> Self {
        EventQuery {
            environment: None,
            object: None,
            kind: None,
            since: None,
            until: None,
            limit: 100,
            offset: 0,
        }
    }
}

impl EventQuery {
    /// Whether `e` passes the filters.
    pub fn matches(&self, e: &DriftEvent) -> bool {
        self.environment
            .as_ref()
            .is_none_or(|env| &e.drift.id.environment == env)
            && self.object.as_ref().is_none_or(|o| &e.drift.id == o)
            && self.kind.is_none_or(|k| e.kind == k)
            && self.since.is_none_or(|s| e.at >= s)
            && self.until.is_none_or(|u| e.at < u)
    }

    /// Filters, sorts (oldest first, then by id) and pages a full list.
    pub fn apply(&self, all: impl IntoIterator<Item = DriftEvent>) -> Page<DriftEvent> {
        let mut items: Vec<DriftEvent> = all.into_iter().filter(|e| self.matches(e)).collect();
        items.sort_by(|a, b| a.at.cmp(&b.at).then(a.event_id.cmp(&b.event_id)));
        Page::slice(items, self.offset, self.limit)
    }
}

/// One page of results.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// How many matched in all.
    pub total: usize,
    /// Offset of the next page, if there is one.
    pub next_offset: Option<usize>,
}

impl<T> Page<T> {
    /// Cuts one page out of a full, sorted list.
    pub fn slice(items: Vec<T>, offset: usize, limit: usize) -> Page<T> {
        let total = items.len();
        let items: Vec<T> = items.into_iter().skip(offset).take(limit).collect();
        let end = offset + items.len();
        Page {
            next_offset: (end < total).then_some(end),
            items,
            total,
        }
    }
}

/// Newest scan first: by start, then by scan id (both descending), the order of
/// [`DriftStore::scans`](crate::ports::DriftStore::scans).
pub fn newest_scan_first(a: &ScanSummary, b: &ScanSummary) -> std::cmp::Ordering {
    b.started_at
        .cmp(&a.started_at)
        .then_with(|| b.scan_id.cmp(&a.scan_id))
}

/// The scans that tell one environment's state at each of `times`: for each time, the latest
/// scan (in [`newest_scan_first`] order) started at or before it; each scan once, newest
/// first. `scans` are the environment's scans, newest first. The meaning of
/// [`DriftStore::scans_at`](crate::ports::DriftStore::scans_at) for one environment.
pub fn scans_at(scans: &[ScanSummary], times: &[DateTime<Utc>]) -> Vec<ScanSummary> {
    let mut kept: Vec<usize> = times
        .iter()
        .filter_map(|t| scans.iter().position(|s| s.started_at <= *t))
        .collect();
    kept.sort_unstable();
    kept.dedup();
    kept.into_iter().map(|i| scans[i].clone()).collect()
}

/// The open drifts of one environment, counted: what an overview shows of an environment,
/// without reading each drift.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenTally {
    /// The environment.
    pub environment: String,
    /// Open drifts by severity and direction (only pairs that have some).
    pub counts: std::collections::BTreeMap<(Severity, Direction), usize>,
    /// The oldest open drift: when it was detected and its episode (of two detected together,
    /// the smaller episode id).
    pub oldest: Option<(DateTime<Utc>, String)>,
}

impl OpenTally {
    /// The tally of `environment` over `drifts` (the reference meaning of
    /// [`DriftStore::open_tallies`](crate::ports::DriftStore::open_tallies)): the open ones of
    /// that environment are counted, others are ignored.
    pub fn of<'a>(environment: &str, drifts: impl IntoIterator<Item = &'a Drift>) -> OpenTally {
        let mut t = OpenTally {
            environment: environment.to_owned(),
            ..OpenTally::default()
        };
        for d in drifts {
            if d.id.environment != environment || !d.is_open() {
                continue;
            }
            *t.counts.entry((d.severity, d.direction)).or_default() += 1;
            let older = t
                .oldest
                .as_ref()
                .is_none_or(|(at, ep)| (d.detected_at, &d.episode) < (*at, ep));
            if older {
                t.oldest = Some((d.detected_at, d.episode.clone()));
            }
        }
        t
    }

    /// Open drifts in all.
    pub fn total(&self) -> usize {
        self.counts.values().sum()
    }

    /// Open drifts of one severity.
    pub fn of_severity(&self, severity: Severity) -> usize {
        self.counts
            .iter()
            .filter(|((s, _), _)| *s == severity)
            .map(|(_, n)| n)
            .sum()
    }

    /// Open drifts of one direction.
    pub fn of_direction(&self, direction: Direction) -> usize {
        self.counts
            .iter()
            .filter(|((_, d), _)| *d == direction)
            .map(|(_, n)| n)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::drift;

    fn drift_of(id: ResourceId) -> Drift {
        drift().id(id).build()
    }

    #[test]
    fn group_is_an_exact_filter_and_absent_means_any() {
        let apps = drift_of(ResourceId::new("e", "apps", "Deployment", Some("n"), "web"));
        let core = drift_of(ResourceId::new("e", "", "ConfigMap", Some("n"), "web"));
        let q = |group: Option<&str>| DriftQuery {
            group: group.map(Into::into),
            ..DriftQuery::default()
        };
        assert!(q(None).matches(&apps) && q(None).matches(&core));
        assert!(q(Some("apps")).matches(&apps));
        assert!(!q(Some("apps")).matches(&core));
        assert!(q(Some("")).matches(&core), "the core group");
        assert!(!q(Some("")).matches(&apps));
        assert!(!q(Some("app*")).matches(&apps), "exact, not a glob");
        // queries stored or sent before the field existed still read
        let old: DriftQuery = serde_json::from_value(serde_json::json!({
            "environment": null, "kind": null, "namespace": null, "name": null, "drift": null,
            "direction": null, "min_severity": null, "status": "open", "sort": "severity",
            "limit": 100, "offset": 0}))
        .expect("reads");
        assert_eq!(old, DriftQuery::default());
    }

    #[test]
    fn detected_before_is_an_exclusive_age_filter() {
        let d = drift_of(ResourceId::new("e", "apps", "Deployment", Some("n"), "web"));
        let q = |t| DriftQuery {
            detected_before: Some(t),
            ..DriftQuery::default()
        };
        let second = chrono::Duration::seconds(1);
        assert!(q(d.detected_at + second).matches(&d));
        assert!(!q(d.detected_at).matches(&d), "exclusive");
        assert!(!q(d.detected_at - second).matches(&d));
    }

    fn scan(env: &str, id: &str, secs: i64) -> ScanSummary {
        ScanSummary {
            scan_id: id.into(),
            environment: env.into(),
            started_at: DateTime::from_timestamp(1_700_000_000 + secs, 0).expect("valid time"),
            duration_ms: 1,
            revision: None,
            counts: crate::ports::ScanCounts::default(),
            score: 0.0,
            errors: Vec::new(),
            events: 0,
        }
    }

    #[test]
    fn scans_at_keeps_the_latest_scan_at_or_before_each_time_once() {
        let at = |secs: i64| DateTime::from_timestamp(1_700_000_000 + secs, 0).expect("time");
        // newest first; b and c start together: the higher id is the later one
        let mut scans = vec![
            scan("e", "a", 10),
            scan("e", "b", 20),
            scan("e", "c", 20),
            scan("e", "d", 40),
        ];
        scans.sort_by(newest_scan_first);
        let ids = |v: Vec<ScanSummary>| v.into_iter().map(|s| s.scan_id).collect::<Vec<_>>();
        assert_eq!(ids(scans_at(&scans, &[at(5)])), Vec::<String>::new());
        assert_eq!(
            ids(scans_at(&scans, &[at(10)])),
            ["a"],
            "at the time counts"
        );
        assert_eq!(
            ids(scans_at(&scans, &[at(35), at(25), at(12), at(20), at(100)])),
            ["d", "c", "a"],
            "each once, newest first, whatever the order of the times"
        );
        assert_eq!(ids(scans_at(&scans, &[])), Vec::<String>::new());
    }
}
