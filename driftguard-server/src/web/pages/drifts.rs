//! The drift table: filters, sort, pages.

use super::*;

/// One row of the drifts table.
#[derive(Clone, Debug)]
pub struct DriftRow {
    pub(super) episode: String,
    /// Whether it is open (only an open drift can be selected for remediation).
    pub(super) open: bool,
    pub(super) link: String,
    pub(super) environment: String,
    pub(super) kind: String,
    pub(super) object: String,
    pub(super) drift: Badge,
    pub(super) direction: Badge,
    pub(super) severity: Badge,
    pub(super) risk: Badge,
    pub(super) fields: String,
    pub(super) who: String,
    pub(super) detected: When,
    pub(super) updated: When,
    pub(super) status: String,
    /// `acknowledged by …` while its acknowledgement holds.
    pub(super) ack: Option<String>,
}

pub(super) fn drift_row(d: &DriftSummary, now: DateTime<Utc>) -> DriftRow {
    DriftRow {
        episode: d.episode.clone(),
        open: d.status == "open",
        link: view::drift_link(&d.episode),
        environment: d.object.environment.clone(),
        kind: d.object.kind.clone(),
        object: match &d.object.namespace {
            Some(ns) => format!("{ns}/{}", d.object.name),
            None => d.object.name.clone(),
        },
        drift: badge("drift", &d.drift),
        direction: badge("dir", &d.direction),
        severity: badge("sev", &d.severity),
        risk: badge("sev", &d.risk),
        fields: if d.paths.is_empty() {
            "–".into()
        } else {
            d.paths.join(", ")
        },
        who: if d.who.is_empty() {
            "–".into()
        } else {
            d.who.clone()
        },
        detected: When::of(d.detected_at, now),
        updated: When::of(d.updated_at, now),
        status: d.status_label(),
        ack: d
            .acknowledgement
            .as_ref()
            .filter(|a| a.holds())
            .map(|a| view::ack_label(a, now)),
    }
}

/// A sortable column header.
#[derive(Clone, Debug)]
pub struct SortLink {
    pub(super) label: &'static str,
    pub(super) href: String,
    /// `aria-sort` value, empty when the table is not sorted by it.
    pub(super) aria: &'static str,
}

/// What a discovered environment's deployment tool says of it, beside DriftGuard's view: shown
/// above the drift table filtered to that environment.
#[derive(Clone, Debug)]
pub struct ToolPanel {
    /// `What Argo CD says`.
    pub(super) heading: String,
    /// `Application argocd/shop`.
    pub(super) object: String,
    /// `Argo CD says Synced, Healthy; DriftGuard sees 3 open drifts.`
    pub(super) sentence: String,
    /// Label, value and class of each fact the tool gave.
    pub(super) facts: Vec<(&'static str, String, &'static str)>,
    /// Flux's `Ready` message.
    pub(super) message: Option<String>,
    /// The tool's Events: the last change it made (`Last change Flux made`, `Progressing, 2
    /// minutes ago`, the objects changed) and its last Event when another one; each a
    /// warning or not.
    pub(super) events: Vec<ToolEventView>,
    /// When DriftGuard read it.
    pub(super) observed: When,
}

/// One Event of a deployment tool, as the panel shows it.
#[derive(Clone, Debug)]
pub struct ToolEventView {
    /// `Last change Flux made`.
    pub(super) label: String,
    /// `Progressing, 2 minutes ago`.
    pub(super) head: String,
    /// The lines shown (the objects changed, or the message).
    pub(super) lines: Vec<String>,
    /// A `Warning` Event.
    pub(super) warning: bool,
}

impl ToolEventView {
    fn of(
        label: String,
        e: &crate::dto::ToolEventDto,
        lines: Vec<String>,
        now: DateTime<Utc>,
    ) -> Self {
        let times = if e.count > 1 {
            format!(" ({} times)", e.count)
        } else {
            String::new()
        };
        ToolEventView {
            label,
            head: match e.at {
                Some(at) => format!("{}{times}, {}", e.reason, When::of(at, now).ago),
                None => format!("{}{times}", e.reason),
            },
            lines,
            warning: e.event_type == "Warning",
        }
    }
}

/// The class of a tool's word: in sync or healthy, not, or unknown.
fn word_class(good: Option<bool>) -> &'static str {
    match good {
        Some(true) => "status-in_sync",
        Some(false) => "status-drifted",
        None => "status-pending",
    }
}

/// The panel of an environment whose `tool` is known; `None` for the file's environments.
pub(super) fn tool_panel(e: &EnvironmentDto, now: DateTime<Utc>) -> Option<ToolPanel> {
    let t = e.tool.as_ref()?;
    let who = match t.tool.as_str() {
        "argocd" => "Argo CD",
        "flux" => "Flux",
        other => other,
    };
    let mut facts: Vec<(&'static str, String, &'static str)> = Vec::new();
    let mut says: Vec<String> = Vec::new();
    if let Some(s) = &t.sync {
        facts.push(("Sync", s.clone(), word_class(t.in_sync)));
        says.push(s.clone());
    }
    if let Some(h) = &t.health {
        facts.push(("Health", h.clone(), word_class(t.healthy)));
        says.push(h.clone());
    }
    if let Some(o) = &t.operation {
        let good = match o.as_str() {
            "Succeeded" => Some(true),
            "Failed" | "Error" => Some(false),
            _ => None,
        };
        facts.push(("Last sync", o.clone(), word_class(good)));
    }
    if let Some(r) = &t.ready {
        facts.push(("Ready", r.clone(), word_class(t.in_sync)));
        says.push(format!("Ready={r}"));
    }
    if let Some(r) = &t.reason {
        facts.push(("Reason", r.clone(), ""));
    }
    if let Some(r) = &t.revision {
        facts.push(("Revision", r.clone(), ""));
    }
    if t.suspended {
        facts.push((
            "Suspended",
            "yes: Flux applies no change".into(),
            "status-pending",
        ));
        says.push("suspended".into());
    }
    if let Some(at) = t.reconciled_at {
        facts.push(("Reconciled", When::of(at, now).ago, ""));
    }
    let tool_says = if says.is_empty() {
        format!("{who} says nothing yet")
    } else {
        format!("{who} says {}", says.join(", "))
    };
    let ours = match e.status.as_str() {
        "pending" => "DriftGuard has not scanned it yet".to_owned(),
        "error" => "DriftGuard's last scan failed".to_owned(),
        _ if e.open_drifts == 0 => "DriftGuard sees no drift".to_owned(),
        _ => format!(
            "DriftGuard sees {} open drift{}",
            e.open_drifts,
            if e.open_drifts == 1 { "" } else { "s" }
        ),
    };
    Some(ToolPanel {
        heading: format!("What {who} says"),
        object: match t.source {
            Some(i) => format!("{} {}/{} (source {i})", t.kind, t.namespace, t.name),
            None => format!("{} {}/{}", t.kind, t.namespace, t.name),
        },
        sentence: format!("{tool_says}; {ours}."),
        facts,
        message: t.message.clone(),
        events: {
            let mut out = Vec::new();
            if let Some(c) = &t.last_change {
                out.push(ToolEventView::of(
                    format!("Last change {who} made"),
                    c,
                    c.changes.clone(),
                    now,
                ));
            }
            if let Some(e) = t
                .last_event
                .as_ref()
                .filter(|e| Some(*e) != t.last_change.as_ref())
            {
                let lines = e.message.lines().map(str::to_owned).collect();
                out.push(ToolEventView::of(
                    format!("Last event of {who}"),
                    e,
                    lines,
                    now,
                ));
            }
            out
        },
        observed: When::of(t.observed_at, now),
    })
}

#[derive(Template)]
#[template(path = "drifts.html")]
pub(super) struct DriftsPage {
    pub(super) layout: Layout,
    pub(super) error: Option<String>,
    pub(super) environments: Vec<Choice>,
    pub(super) drift_kinds: Vec<Choice>,
    pub(super) directions: Vec<Choice>,
    pub(super) severities: Vec<Choice>,
    pub(super) statuses: Vec<Choice>,
    pub(super) ages: Vec<Choice>,
    pub(super) acks: Vec<Choice>,
    pub(super) kind: String,
    pub(super) namespace: String,
    pub(super) name: String,
    pub(super) sort: String,
    pub(super) rows: Vec<DriftRow>,
    pub(super) total: usize,
    pub(super) first: usize,
    pub(super) last: usize,
    pub(super) prev: Option<String>,
    pub(super) next: Option<String>,
    pub(super) by_object: SortLink,
    pub(super) by_severity: SortLink,
    pub(super) by_detected: SortLink,
    pub(super) by_updated: SortLink,
    pub(super) caption: String,
    /// With one discovered environment chosen, what its tool says.
    pub(super) tool: Option<ToolPanel>,
    /// With one Terraform environment chosen that lists its cloud account: `IaC coverage 67 %
    /// (4 of 6 resources)`.
    pub(super) iac_coverage: Option<String>,
}

/// The filters of the drifts page, in URL order.
pub(super) const FILTERS: [&str; 11] = [
    "environment",
    "kind",
    "namespace",
    "name",
    "drift",
    "direction",
    "severity",
    "status",
    "age",
    "acknowledged",
    "sort",
];

/// The page's filters as the drift filter that the API and MCP read too; `age` (`1h`, `7d`,
/// ...) becomes `detected_before`; with the `acknowledged` filter.
pub(super) fn drift_query(
    q: &HashMap<String, String>,
    now: DateTime<Utc>,
) -> Result<(DriftQuery, Option<bool>), AppError> {
    let get = |k: &str| q.get(k).cloned().filter(|v| !v.is_empty());
    let detected_before = match get("age") {
        None => None,
        Some(a) => {
            let d: HumanDuration = a
                .parse()
                .map_err(|e| AppError::bad_request(format!("age: {e}")))?;
            // a duration reaching back past year 1 (or past what a date can hold) is refused,
            // never subtracted unchecked (`99999999999d` made this page panic)
            let before = chrono::Duration::from_std(d.0)
                .ok()
                .and_then(|d| now.checked_sub_signed(d))
                .filter(|t| t.year() >= 1)
                .ok_or_else(|| {
                    AppError::bad_request(format!("age: `{a}` reaches back before year 1"))
                })?;
            Some(before.to_rfc3339())
        }
    };
    let filter = DriftFilter {
        environment: get("environment"),
        group: get("group"),
        kind: get("kind"),
        namespace: get("namespace"),
        name: get("name"),
        drift: get("drift"),
        direction: get("direction"),
        severity: get("severity"),
        status: get("status"),
        detected_before,
        sort: get("sort"),
        limit: Some(get("limit").unwrap_or_else(|| "50".into())),
        offset: get("offset"),
        acknowledged: get("acknowledged"),
    };
    Ok((filter.query()?, filter.acknowledged()?))
}

pub(super) fn with(q: &HashMap<String, String>, changes: &[(&str, &str)]) -> String {
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    for k in FILTERS.iter().copied().chain(["limit", "offset"]) {
        let v = changes
            .iter()
            .find(|(c, _)| *c == k)
            .map_or_else(|| param(q, k), |(_, v)| v);
        pairs.push((k, v));
    }
    format!("/drifts{}", view::query_string(&pairs))
}

/// `GET /drifts`: every environment's drifts in one table; the filters live in the URL.
pub(crate) async fn drifts(
    Visible(state): Visible,
    Extension(viewer): Extension<Viewer>,
    Query(q): Params,
) -> Result<Response, WebError> {
    let now = state.clock.now();
    let query = drift_query(&q, now);
    let environments = state.environments();
    let env_names: Vec<&str> = environments.iter().map(|e| e.name.as_str()).collect();
    let (page, error) = match &query {
        // a bad filter (an unknown environment too) is said above the table
        Ok((query, acknowledged)) => match queries::drifts(&state, query, *acknowledged).await {
            Ok(page) => (Some(page), None),
            Err(e) if e.status == StatusCode::NOT_FOUND => (None, Some(e.message)),
            Err(e) => return Err(e.into()),
        },
        Err(e) => (None, Some(e.message.clone())),
    };
    let rows: Vec<DriftRow> = page
        .as_ref()
        .map(|p| p.items.iter().map(|d| drift_row(d, now)).collect())
        .unwrap_or_default();
    let (limit, offset) = query.as_ref().map_or((50, 0), |(q, _)| (q.limit, q.offset));
    let total = page.as_ref().map_or(0, |p| p.total);
    let prev =
        (offset > 0).then(|| with(&q, &[("offset", &offset.saturating_sub(limit).to_string())]));
    let next = page
        .as_ref()
        .and_then(|p| p.next_offset)
        .map(|n| with(&q, &[("offset", &n.to_string())]));
    let sort = query.as_ref().map_or(DriftSort::Severity, |(q, _)| q.sort);
    let sort_link = |label: &'static str, s: DriftSort, order: &'static str| SortLink {
        label,
        href: with(&q, &[("sort", s.as_str()), ("offset", "")]),
        aria: if s == sort { order } else { "none" },
    };
    let by_object = sort_link("Object", DriftSort::Object, "ascending");
    let by_severity = sort_link("Severity", DriftSort::Severity, "descending");
    let by_detected = sort_link("Detected", DriftSort::Detected, "ascending");
    let by_updated = sort_link("Updated", DriftSort::Updated, "descending");
    let status = param(&q, "status");
    let ages = ["1h", "1d", "7d", "30d"];
    let mut age_choices = choices(param(&q, "age"), "any age", ages);
    for c in &mut age_choices[1..] {
        c.label = format!("older than {}", c.value);
    }
    let custom_age = param(&q, "age");
    if !custom_age.is_empty() && !ages.contains(&custom_age) {
        age_choices.push(Choice {
            value: custom_age.to_owned(),
            label: format!("older than {custom_age}"),
            selected: true,
        });
    }
    let tool = match state.environment(param(&q, "environment")) {
        Some(env) if state.verdicts.get(&env.name).is_some() => {
            tool_panel(&queries::environment_dto(&state, &env).await?, now)
        }
        _ => None,
    };
    let iac_coverage = state
        .environment(param(&q, "environment"))
        .and_then(|env| env.status().iac_coverage)
        .map(|c| {
            format!(
                "IaC coverage {}",
                super::overview::coverage_text(&crate::dto::IacCoverageDto::from(&c))
            )
        });
    let first = if rows.is_empty() { 0 } else { offset + 1 };
    let last = offset + rows.len();
    let page = DriftsPage {
        layout: Layout::page("Drifts", "/drifts", &viewer, &state),
        caption: format!(
            "{} drift{} ({}), sorted by {}",
            total,
            if total == 1 { "" } else { "s" },
            if status.is_empty() { "open" } else { status },
            sort.as_str()
        ),
        error,
        environments: choices(param(&q, "environment"), "all environments", env_names),
        drift_kinds: choices(
            param(&q, "drift"),
            "any drift",
            DriftKind::ALL.iter().map(|k| k.as_str()),
        ),
        directions: choices(
            param(&q, "direction"),
            "any direction",
            Direction::ALL.iter().map(|k| k.as_str()),
        ),
        severities: {
            let mut c = choices(
                param(&q, "severity"),
                "any severity",
                ["low", "medium", "high", "critical"],
            );
            for x in &mut c[1..] {
                x.label = format!("{} or higher", x.value);
            }
            c
        },
        statuses: {
            let mut c = choices(status, "open", ["resolved", "all"]);
            c[0].selected = status.is_empty() || status == "open";
            c
        },
        ages: age_choices,
        acks: {
            let mut c = choices(
                param(&q, "acknowledged"),
                "acknowledged or not",
                ["true", "false"],
            );
            c[1].label = "acknowledged".into();
            c[2].label = "not acknowledged".into();
            c
        },
        kind: param(&q, "kind").to_owned(),
        namespace: param(&q, "namespace").to_owned(),
        name: param(&q, "name").to_owned(),
        sort: param(&q, "sort").to_owned(),
        rows,
        total,
        first,
        last,
        prev,
        next,
        by_object,
        by_severity,
        by_detected,
        by_updated,
        tool,
        iac_coverage,
    };
    let status = if page.error.is_some() {
        axum::http::StatusCode::BAD_REQUEST
    } else {
        axum::http::StatusCode::OK
    };
    Ok((status, html(&page)?).into_response())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::dto::{ToolDto, ToolEventDto};

    fn environment(tool: Option<ToolDto>, status: &str, open_drifts: usize) -> EnvironmentDto {
        EnvironmentDto {
            name: "flux.apps.podinfo".into(),
            status: status.into(),
            score: None,
            open_drifts,
            scanning: false,
            watching: true,
            last_scan: None,
            last_error: None,
            sources: Vec::new(),
            leader: None,
            tool,
            iac_coverage: None,
        }
    }

    #[test]
    fn a_flux_verdict_beside_driftguards() {
        let now = Utc.with_ymd_and_hms(2026, 12, 2, 9, 0, 0).unwrap();
        let tool = ToolDto {
            tool: "flux".into(),
            kind: "Kustomization".into(),
            namespace: "apps".into(),
            name: "podinfo".into(),
            source: None,
            in_sync: Some(true),
            healthy: Some(true),
            sync: None,
            health: None,
            operation: None,
            ready: Some("True".into()),
            reason: Some("ReconciliationSucceeded".into()),
            message: Some("Applied revision: main@sha1:1a2b3c4d".into()),
            revision: Some("main@sha1:1a2b3c4d".into()),
            reconciled_at: Some(now - chrono::Duration::hours(3)),
            suspended: true,
            last_event: Some(ToolEventDto {
                at: Some(now - chrono::Duration::minutes(2)),
                event_type: "Normal".into(),
                reason: "ReconciliationSucceeded".into(),
                message: "Reconciliation finished in 1s, next run in 10m0s".into(),
                count: 1,
                changes: Vec::new(),
            }),
            last_change: Some(ToolEventDto {
                at: Some(now - chrono::Duration::minutes(3)),
                event_type: "Normal".into(),
                reason: "Progressing".into(),
                message: "Deployment/apps/web configured".into(),
                count: 2,
                changes: vec!["Deployment/apps/web configured".into()],
            }),
            observed_at: now,
        };
        let p = tool_panel(&environment(Some(tool.clone()), "drifted", 3), now)
            .expect("a discovered environment");
        assert_eq!(p.heading, "What Flux says");
        assert_eq!(p.object, "Kustomization apps/podinfo");
        assert_eq!(
            p.sentence,
            "Flux says Ready=True, suspended; DriftGuard sees 3 open drifts."
        );
        let labels: Vec<&str> = p.facts.iter().map(|f| f.0).collect();
        assert_eq!(
            labels,
            ["Ready", "Reason", "Revision", "Suspended", "Reconciled"]
        );
        assert_eq!(p.facts[0].2, "status-in_sync");
        assert_eq!(p.facts[4].1, "3 h ago");
        assert_eq!(
            p.message.as_deref(),
            Some("Applied revision: main@sha1:1a2b3c4d")
        );
        let events: Vec<(&str, &str, &[String])> = p
            .events
            .iter()
            .map(|e| (e.label.as_str(), e.head.as_str(), e.lines.as_slice()))
            .collect();
        assert_eq!(
            events,
            [
                (
                    "Last change Flux made",
                    "Progressing (2 times), 3 min ago",
                    &["Deployment/apps/web configured".to_owned()][..]
                ),
                (
                    "Last event of Flux",
                    "ReconciliationSucceeded, 2 min ago",
                    &["Reconciliation finished in 1s, next run in 10m0s".to_owned()][..]
                ),
            ]
        );

        let one = tool_panel(&environment(Some(tool.clone()), "drifted", 1), now).expect("panel");
        assert!(
            one.sentence.ends_with("DriftGuard sees 1 open drift."),
            "{}",
            one.sentence
        );
        let clean = tool_panel(&environment(Some(tool), "in_sync", 0), now).expect("panel");
        assert!(
            clean.sentence.ends_with("DriftGuard sees no drift."),
            "{}",
            clean.sentence
        );
        assert!(tool_panel(&environment(None, "in_sync", 0), now).is_none());
    }
}
