//! History queries and their pure evaluation (used by the in-memory store and as the reference
//! meaning of every filter for the other stores).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::id::ResourceId;
use crate::names::named_enum;
use crate::path::glob_match;
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
}
