//! The pages: each reads through the same functions as the API and the MCP server
//! ([`crate::queries`], answering the API's DTOs) and fills a template; no page reads the
//! store itself.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use chrono::{DateTime, Datelike, Utc};
use driftguard_core::duration::HumanDuration;
use driftguard_core::id::ResourceId;
use driftguard_core::query::{DriftQuery, DriftSort, DriftStatus, EventQuery};
use driftguard_core::severity::Severity;
use driftguard_core::state::{Direction, DriftKind, EventKind};

use super::chart::{self, Chart, Range};
use super::view::{self, When};
use super::{check_csrf, html, CsrfForm, Layout, Viewer, WebError};
use crate::config::TokenScope;
use crate::dto::{DriftSummary, EnvironmentDto, EventDto, RemediationDto};
use crate::error::AppError;
use crate::queries::{self, DriftFilter, MAX_LIMIT};
use crate::state::AppState;

type Params = Query<HashMap<String, String>>;

fn param<'a>(q: &'a HashMap<String, String>, k: &str) -> &'a str {
    q.get(k).map_or("", |v| v.as_str())
}

/// A choice of a `<select>`.
#[derive(Clone, Debug)]
pub struct Choice {
    value: String,
    label: String,
    selected: bool,
}

fn choices<'a>(current: &str, any: &str, values: impl IntoIterator<Item = &'a str>) -> Vec<Choice> {
    let mut out = vec![Choice {
        value: String::new(),
        label: any.to_owned(),
        selected: current.is_empty(),
    }];
    out.extend(values.into_iter().map(|v| Choice {
        value: v.to_owned(),
        label: v.to_owned(),
        selected: v == current,
    }));
    out
}

/// A badge: text and CSS class.
#[derive(Clone, Debug)]
pub struct Badge {
    text: String,
    class: String,
}

fn badge(prefix: &str, text: &str) -> Badge {
    Badge {
        text: text.replace('_', " "),
        class: format!("badge {prefix}-{text}"),
    }
}

// ---------------------------------------------------------------- overview

/// A source's health on the overview.
#[derive(Clone, Debug)]
pub struct SourceView {
    label: &'static str,
    description: String,
    state: &'static str,
    detail: String,
}

/// One count with its label.
#[derive(Clone, Debug)]
pub struct Count {
    label: &'static str,
    class: String,
    n: usize,
    link: String,
}

/// One environment on the overview.
#[derive(Clone, Debug)]
pub struct EnvCard {
    name: String,
    status: Badge,
    score: String,
    open: usize,
    severities: Vec<Count>,
    directions: Vec<Count>,
    oldest: Option<(String, String)>,
    sources: Vec<SourceView>,
    last_scan: Option<When>,
    last_scan_errors: usize,
    last_error: Option<String>,
    scanning: bool,
    watching: bool,
    drifts_link: String,
    scan_action: String,
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    layout: Layout,
    notice: Option<String>,
    total_open: usize,
    drifted: usize,
    envs: Vec<EnvCard>,
    chart: Chart,
    series: Vec<chart::Series>,
    ranges: Vec<(String, String, bool)>,
}

/// Every open drift (all pages), for the overview's counts.
async fn all_open(state: &AppState) -> Result<Vec<DriftSummary>, WebError> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let page = queries::drifts(
            state,
            &DriftQuery {
                status: DriftStatus::Open,
                sort: DriftSort::Detected,
                limit: MAX_LIMIT,
                offset,
                ..DriftQuery::default()
            },
        )
        .await?;
        out.extend(page.items);
        match page.next_offset {
            Some(n) => offset = n,
            None => return Ok(out),
        }
    }
}

fn source_view(label: &'static str, s: &crate::dto::SourceDto, now: DateTime<Utc>) -> SourceView {
    let (state, detail) = match s.up {
        Some(true) => (
            "up",
            s.last_ok
                .map(|t| format!("answered {}", view::ago(t, now)))
                .unwrap_or_default(),
        ),
        Some(false) => ("down", s.error.clone().unwrap_or_else(|| "down".into())),
        None => ("unknown", "not read yet".into()),
    };
    SourceView {
        label,
        description: s.description.clone(),
        state,
        detail,
    }
}

fn env_card(e: &EnvironmentDto, open: &[&DriftSummary], now: DateTime<Utc>) -> EnvCard {
    let env_q = |extra: &[(&str, &str)]| {
        let mut pairs = vec![("environment", e.name.as_str())];
        pairs.extend_from_slice(extra);
        format!("/drifts{}", view::query_string(&pairs))
    };
    let severities = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
    ]
    .into_iter()
    .map(|s| {
        let n = open.iter().filter(|d| d.severity == s.as_str()).count();
        Count {
            label: s.as_str(),
            class: if n == 0 {
                "zero".into()
            } else {
                format!("sev-{}", s.as_str())
            },
            n,
            link: env_q(&[("severity", s.as_str())]),
        }
    })
    .collect();
    let directions = Direction::ALL
        .iter()
        .map(|d| {
            let n = open.iter().filter(|x| x.direction == d.as_str()).count();
            Count {
                label: d.as_str(),
                class: if n == 0 {
                    "zero".into()
                } else {
                    format!("dir-{}", d.as_str())
                },
                n,
                link: env_q(&[("direction", d.as_str())]),
            }
        })
        .collect();
    let oldest = open
        .iter()
        .min_by_key(|d| d.detected_at)
        .map(|d| (view::age(d.detected_at, now), view::drift_link(&d.episode)));
    EnvCard {
        name: e.name.clone(),
        status: badge("status", &e.status),
        score: e.score.map_or("–".into(), |s| format!("{s:.1}")),
        open: open.len(),
        severities,
        directions,
        oldest,
        sources: e
            .sources
            .iter()
            .map(|s| source_view(if s.source == "git" { "Git" } else { "Live" }, s, now))
            .collect(),
        last_scan: e.last_scan.as_ref().map(|s| When::of(s.started_at, now)),
        last_scan_errors: e.last_scan.as_ref().map_or(0, |s| s.errors.len()),
        last_error: e.last_error.clone(),
        scanning: e.scanning,
        watching: e.watching,
        drifts_link: env_q(&[]),
        scan_action: format!("/environments/{}/scan", view::segment(&e.name)),
    }
}

/// `GET /`.
pub(crate) async fn overview(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Query(q): Params,
) -> Result<Html<String>, WebError> {
    let now = state.clock.now();
    let open = all_open(&state).await?;
    let range = Range::parse(q.get("range").map(String::as_str));
    let mut scans = Vec::with_capacity(state.environments.len());
    let start = now - range.duration();
    for e in &state.environments {
        let list = queries::scans(&state, Some(&e.name), MAX_LIMIT)
            .await?
            .items;
        // keep the range, and the last scan before it (the state at its start)
        let keep = list
            .iter()
            .position(|s| s.started_at < start)
            .map_or(list.len(), |i| i + 1);
        scans.push(list.into_iter().take(keep).collect::<Vec<_>>());
    }
    let envs: Vec<EnvCard> = queries::environments(&state)
        .await?
        .items
        .iter()
        .map(|e| {
            let mine: Vec<&DriftSummary> = open
                .iter()
                .filter(|d| d.object.environment == e.name)
                .collect();
            env_card(e, &mine, now)
        })
        .collect();
    let notice = q
        .get("scan")
        .filter(|env| state.environment(env).is_some())
        .map(|env| format!("A scan of {env} was started; this page updates when it ends."));
    let drawn = chart::draw(range, now, &scans);
    html(&OverviewPage {
        layout: Layout::page("Overview", "/", &viewer, &state),
        notice,
        total_open: open.len(),
        drifted: envs.iter().filter(|e| e.open > 0).count(),
        envs,
        series: vec![drawn.open.clone(), drawn.score.clone()],
        chart: drawn,
        ranges: Range::ALL
            .iter()
            .map(|r| {
                (
                    r.key().to_owned(),
                    format!("/?range={}", r.key()),
                    *r == range,
                )
            })
            .collect(),
    })
}

/// `POST /environments/{env}/scan`: starts a scan and goes back to the overview (the page
/// updates when the scan ends).
pub(crate) async fn scan_now(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Path(env): Path<String>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Result<Response, WebError> {
    check_csrf(&viewer, &headers, &form.csrf)?;
    viewer.require(TokenScope::Scan)?;
    queries::environment(&state, &env)?;
    let (state, name) = (state.clone(), env.clone());
    tokio::spawn(async move {
        // the outcome shows on the overview (status, last error) and in the feed
        let _ = queries::scan_now(&state, &name).await;
    });
    Ok(Redirect::to(&format!("/{}", view::query_string(&[("scan", &env)]))).into_response())
}

// ---------------------------------------------------------------- drifts

/// One row of the drifts table.
#[derive(Clone, Debug)]
pub struct DriftRow {
    episode: String,
    /// Whether it is open (only an open drift can be selected for remediation).
    open: bool,
    link: String,
    environment: String,
    kind: String,
    object: String,
    drift: Badge,
    direction: Badge,
    severity: Badge,
    risk: Badge,
    fields: String,
    who: String,
    detected: When,
    updated: When,
    status: String,
}

fn drift_row(d: &DriftSummary, now: DateTime<Utc>) -> DriftRow {
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
        status: match (&d.status[..], &d.resolution) {
            ("resolved", Some(r)) => format!("resolved ({r})"),
            (s, _) => s.to_owned(),
        },
    }
}

/// A sortable column header.
#[derive(Clone, Debug)]
pub struct SortLink {
    label: &'static str,
    href: String,
    /// `aria-sort` value, empty when the table is not sorted by it.
    aria: &'static str,
}

#[derive(Template)]
#[template(path = "drifts.html")]
struct DriftsPage {
    layout: Layout,
    error: Option<String>,
    environments: Vec<Choice>,
    drift_kinds: Vec<Choice>,
    directions: Vec<Choice>,
    severities: Vec<Choice>,
    statuses: Vec<Choice>,
    ages: Vec<Choice>,
    kind: String,
    namespace: String,
    name: String,
    sort: String,
    rows: Vec<DriftRow>,
    total: usize,
    first: usize,
    last: usize,
    prev: Option<String>,
    next: Option<String>,
    by_object: SortLink,
    by_severity: SortLink,
    by_detected: SortLink,
    by_updated: SortLink,
    caption: String,
}

/// The filters of the drifts page, in URL order.
const FILTERS: [&str; 10] = [
    "environment",
    "kind",
    "namespace",
    "name",
    "drift",
    "direction",
    "severity",
    "status",
    "age",
    "sort",
];

/// The page's filters as the drift filter that the API and MCP read too; `age` (`1h`, `7d`,
/// ...) becomes `detected_before`.
fn drift_query(q: &HashMap<String, String>, now: DateTime<Utc>) -> Result<DriftQuery, AppError> {
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
    DriftFilter {
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
    }
    .query()
}

fn with(q: &HashMap<String, String>, changes: &[(&str, &str)]) -> String {
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
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Query(q): Params,
) -> Result<Response, WebError> {
    let now = state.clock.now();
    let query = drift_query(&q, now);
    let env_names: Vec<&str> = state.environments.iter().map(|e| e.name.as_str()).collect();
    let (page, error) = match &query {
        // a bad filter (an unknown environment too) is said above the table
        Ok(query) => match queries::drifts(&state, query).await {
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
    let (limit, offset) = query.as_ref().map_or((50, 0), |q| (q.limit, q.offset));
    let total = page.as_ref().map_or(0, |p| p.total);
    let prev =
        (offset > 0).then(|| with(&q, &[("offset", &offset.saturating_sub(limit).to_string())]));
    let next = page
        .as_ref()
        .and_then(|p| p.next_offset)
        .map(|n| with(&q, &[("offset", &n.to_string())]));
    let sort = query.as_ref().map_or(DriftSort::Severity, |q| q.sort);
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
    };
    let status = if page.error.is_some() {
        axum::http::StatusCode::BAD_REQUEST
    } else {
        axum::http::StatusCode::OK
    };
    Ok((status, html(&page)?).into_response())
}

// ---------------------------------------------------------------- one drift

/// One drifted field.
#[derive(Clone, Debug)]
pub struct FieldRow {
    path: String,
    git: Option<String>,
    live: Option<String>,
    who: String,
}

/// One owner of a drifted field.
#[derive(Clone, Debug)]
pub struct OwnerRow {
    path: String,
    manager: String,
    operation: String,
    time: Option<When>,
}

/// One event in a list.
#[derive(Clone, Debug)]
pub struct EventRow {
    at: When,
    event: Badge,
    environment: String,
    kind: String,
    object: String,
    object_link: String,
    drift_link: String,
    detail: String,
    severity: Badge,
    direction: Badge,
}

/// `namespace/name`, or the name of a cluster-scoped object.
fn namespaced(o: &crate::dto::ObjectRef) -> String {
    match &o.namespace {
        Some(ns) => format!("{ns}/{}", o.name),
        None => o.name.clone(),
    }
}

fn event_row(e: &EventDto, now: DateTime<Utc>) -> EventRow {
    let d = &e.drift;
    EventRow {
        at: When::of(e.at, now),
        event: badge("event", &e.event),
        environment: d.object.environment.clone(),
        kind: d.object.kind.clone(),
        object: namespaced(&d.object),
        object_link: view::object_link(&d.object.environment, &d.object.reference),
        drift_link: view::drift_link(&d.episode),
        detail: match (e.event.as_str(), &d.resolution) {
            ("resolved", Some(r)) => format!("{} ({r})", d.drift),
            _ if d.paths.is_empty() => d.drift.clone(),
            _ => format!("{}: {}", d.drift, d.paths.join(", ")),
        },
        severity: badge("sev", &d.severity),
        direction: badge("dir", &d.direction),
    }
}

/// An earlier (or the current) episode of an object.
#[derive(Clone, Debug)]
pub struct EpisodeRow {
    link: String,
    current: bool,
    drift: String,
    direction: String,
    detected: When,
    ended: String,
}

fn episode_row(d: &DriftSummary, current: &str, now: DateTime<Utc>) -> EpisodeRow {
    EpisodeRow {
        link: view::drift_link(&d.episode),
        current: d.episode == current,
        drift: d.drift.clone(),
        direction: d.direction.clone(),
        detected: When::of(d.detected_at, now),
        ended: match (d.resolved_at, &d.resolution) {
            (Some(t), Some(r)) => format!("{r} {}", view::ago(t, now)),
            (Some(t), None) => format!("resolved {}", view::ago(t, now)),
            _ => "open".into(),
        },
    }
}

/// The commit of a drift.
#[derive(Clone, Debug)]
pub struct CommitView {
    id: String,
    short: String,
    author: String,
    email: String,
    time: When,
    message: String,
}

/// Where the object is defined.
#[derive(Clone, Debug)]
pub struct Where {
    file: String,
    line: usize,
    link: Option<String>,
    revision: String,
    /// How a renderer made it (a Helm chart, a command), in words.
    rendered: Option<String>,
}

/// A risk finding of a drift (the core's findings, as the API gives them).
#[derive(Clone, Debug)]
pub struct FindingView {
    risk: Badge,
    rule: String,
    category: String,
    path: Option<String>,
    reason: String,
}

#[derive(Template)]
#[template(path = "drift.html")]
struct DriftPage {
    layout: Layout,
    d: DriftSummary,
    heading: String,
    drift: Badge,
    direction: Badge,
    severity: Badge,
    status: String,
    reason: String,
    inline: bool,
    side_link: String,
    inline_link: String,
    fields: Vec<FieldRow>,
    absent_note: Option<&'static str>,
    owners: Vec<OwnerRow>,
    who: String,
    commit: Option<CommitView>,
    place: Option<Where>,
    revision: String,
    detected: When,
    updated: When,
    resolved: Option<When>,
    events: Vec<EventRow>,
    episodes: Vec<EpisodeRow>,
    explain: String,
    object_link: String,
    risk: Badge,
    findings: Vec<FindingView>,
    remediation: Option<RemediationDto>,
}

/// `GET /drifts/{episode}`.
pub(crate) async fn drift(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Path(episode): Path<String>,
    Query(q): Params,
) -> Result<Html<String>, WebError> {
    let now = state.clock.now();
    let detail = queries::drift(&state, &episode).await?;
    let s = detail.drift.clone();
    let o = &s.object;
    let id = ResourceId::new(
        &o.environment,
        &o.group,
        &o.kind,
        o.namespace.as_deref(),
        &o.name,
    );
    let history = queries::events(
        &state,
        &EventQuery {
            environment: Some(o.environment.clone()),
            object: Some(id),
            limit: MAX_LIMIT,
            ..EventQuery::default()
        },
    )
    .await?;
    let events: Vec<EventRow> = history
        .items
        .iter()
        .filter(|e| e.drift.episode == s.episode)
        .rev()
        .map(|e| event_row(e, now))
        .collect();
    let episodes = queries::episodes(&state, o, MAX_LIMIT)
        .await?
        .iter()
        .map(|x| episode_row(x, &s.episode, now))
        .collect();
    // an open drift's suggested plan, shown and never applied (the API's remediation query)
    let remediation = if s.status == "open" {
        Some(queries::remediation(&state, &s.episode, None).await?)
    } else {
        None
    };
    let inline = param(&q, "view") == "inline";
    let base = view::drift_link(&s.episode);
    let fields = detail
        .fields
        .iter()
        .map(|f| FieldRow {
            path: f.path.clone(),
            git: view::value(&f.desired),
            live: view::value(&f.live),
            who: detail
                .attribution
                .owners
                .iter()
                .filter(|o| o.path == f.path)
                .map(|o| o.manager.clone())
                .collect::<Vec<_>>()
                .join(", "),
        })
        .collect();
    let reference = format!("{}:{}", s.object.environment, s.object.reference);
    html(&DriftPage {
        layout: Layout::page(
            format!("{} {}", o.kind, namespaced(o)),
            "/drifts",
            &viewer,
            &state,
        ),
        heading: format!("{} {}", o.kind, namespaced(o)),
        drift: badge("drift", &s.drift),
        direction: badge("dir", &s.direction),
        severity: badge("sev", &s.severity),
        status: match &s.resolution {
            Some(r) => format!("resolved ({r})"),
            None => s.status.clone(),
        },
        reason: detail.direction_reason.clone(),
        inline,
        side_link: base.clone(),
        inline_link: format!("{base}?view=inline"),
        fields,
        absent_note: match s.drift.parse::<DriftKind>() {
            Ok(DriftKind::Missing) => Some("The object is in Git and not in the cluster."),
            Ok(DriftKind::Orphan) => Some("The object is in the cluster and not in Git."),
            _ if detail.fields.is_empty() => Some("No field detail was kept."),
            _ => None,
        },
        owners: detail
            .attribution
            .owners
            .iter()
            .map(|o| OwnerRow {
                path: o.path.clone(),
                manager: o.manager.clone(),
                operation: if o.subresource.is_empty() {
                    o.operation.clone()
                } else {
                    format!("{} ({})", o.operation, o.subresource)
                },
                time: o.time.map(|t| When::of(t, now)),
            })
            .collect(),
        who: detail.attribution.who.clone(),
        commit: detail.attribution.commit.as_ref().map(|c| CommitView {
            id: c.id.clone(),
            short: view::short(&c.id),
            author: c.author.clone(),
            email: c.email.clone(),
            time: When::of(c.time, now),
            message: c.message.clone(),
        }),
        place: detail.provenance.as_ref().map(|p| Where {
            file: p.file.clone(),
            line: p.line,
            link: p.web_url.clone(),
            revision: p.revision.as_deref().map(view::short).unwrap_or_default(),
            rendered: p.rendered.as_ref().map(|r| {
                let mut text = format!("rendered by {} from {}", r.renderer, r.source);
                if !r.values.is_empty() {
                    text.push_str(&format!(" with {}", r.values.join(", ")));
                }
                if let Some(c) = &r.inputs_commit {
                    text.push_str(&format!("; inputs last changed in {}", view::short(c)));
                }
                text
            }),
        }),
        revision: s.revision.as_deref().map(view::short).unwrap_or_default(),
        detected: When::of(s.detected_at, now),
        updated: When::of(s.updated_at, now),
        resolved: s.resolved_at.map(|t| When::of(t, now)),
        events,
        episodes,
        explain: format!("driftguard explain {reference}"),
        object_link: view::object_link(&s.object.environment, &s.object.reference),
        risk: badge("sev", &s.risk),
        findings: s
            .findings
            .iter()
            .map(|f| FindingView {
                risk: badge("sev", &f.risk),
                rule: f.rule.clone(),
                category: f.category.replace('-', " "),
                path: f.path.clone(),
                reason: f.reason.clone(),
            })
            .collect(),
        remediation,
        d: s,
    })
}

// ---------------------------------------------------------------- one object

#[derive(Template)]
#[template(path = "object.html")]
struct ObjectPage {
    layout: Layout,
    heading: String,
    environment: String,
    in_git: Option<bool>,
    in_cluster: Option<bool>,
    open: Option<(String, String)>,
    updated: Option<When>,
    events: Vec<EventRow>,
    episodes: Vec<EpisodeRow>,
    explain: String,
}

/// `GET /objects/{env}/{*object}`: the record and the history of one object.
pub(crate) async fn object(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Path((env, object)): Path<(String, String)>,
) -> Result<Html<String>, WebError> {
    let now = state.clock.now();
    let history = queries::object_history(&state, &env, &object, MAX_LIMIT).await?;
    let o = &history.object;
    let record = history.record.as_ref();
    let episodes = queries::episodes(&state, o, MAX_LIMIT)
        .await?
        .iter()
        .map(|x| episode_row(x, "", now))
        .collect();
    let reference = &o.reference;
    html(&ObjectPage {
        layout: Layout::page(format!("{} {}", o.kind, namespaced(o)), "", &viewer, &state),
        heading: format!("{} {}", o.kind, namespaced(o)),
        environment: env.clone(),
        in_git: record.map(|r| r.in_git),
        in_cluster: record.map(|r| r.in_cluster),
        open: record.and_then(|r| r.drift.as_ref()).map(|d| {
            (
                format!("{} {}", d.drift, d.direction),
                view::drift_link(&d.episode),
            )
        }),
        updated: record.map(|r| When::of(r.updated_at, now)),
        events: history
            .events
            .iter()
            .rev()
            .map(|e| event_row(e, now))
            .collect(),
        episodes,
        explain: format!("driftguard explain {env}:{reference}"),
    })
}

// ---------------------------------------------------------------- events

#[derive(Template)]
#[template(path = "events.html")]
struct EventsPage {
    layout: Layout,
    environments: Vec<Choice>,
    kinds: Vec<Choice>,
    events: Vec<EventRow>,
    total: usize,
    older: Option<String>,
    newer: Option<String>,
}

/// Events shown per page.
const EVENTS_PER_PAGE: usize = 50;

/// `GET /events`: the newest events first; open, the page adds new ones as they happen.
pub(crate) async fn events(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Query(q): Params,
) -> Result<Response, WebError> {
    let now = state.clock.now();
    let environment = Some(param(&q, "environment").to_owned()).filter(|s| !s.is_empty());
    let kind = match param(&q, "event") {
        "" => None,
        k => Some(
            k.parse::<EventKind>()
                .map_err(|e| AppError::bad_request(format!("event: {e}")))?,
        ),
    };
    let skip: usize = param(&q, "skip").parse().unwrap_or(0);
    let base = EventQuery {
        environment: environment.clone(),
        kind,
        limit: 1,
        ..EventQuery::default()
    };
    // the store pages oldest first: count, then read the newest page
    let total = queries::events(&state, &base).await?.total;
    let end = total.saturating_sub(skip);
    let start = end.saturating_sub(EVENTS_PER_PAGE);
    let page = queries::events(
        &state,
        &EventQuery {
            limit: (end - start).max(1),
            offset: start,
            ..base
        },
    )
    .await?;
    let events = page
        .items
        .iter()
        .take(end - start)
        .rev()
        .map(|e| event_row(e, now))
        .collect();
    let link = |skip: usize| {
        format!(
            "/events{}",
            view::query_string(&[
                ("environment", param(&q, "environment")),
                ("event", param(&q, "event")),
                (
                    "skip",
                    &if skip == 0 {
                        String::new()
                    } else {
                        skip.to_string()
                    }
                ),
            ])
        )
    };
    let env_names: Vec<&str> = state.environments.iter().map(|e| e.name.as_str()).collect();
    Ok(html(&EventsPage {
        layout: Layout::page("Events", "/events", &viewer, &state),
        environments: choices(param(&q, "environment"), "all environments", env_names),
        kinds: choices(
            param(&q, "event"),
            "any event",
            EventKind::ALL.iter().map(|k| k.as_str()),
        ),
        events,
        total,
        older: (start > 0).then(|| link(skip + EVENTS_PER_PAGE)),
        newer: (skip > 0).then(|| link(skip.saturating_sub(EVENTS_PER_PAGE))),
    })?
    .into_response())
}

// ---------------------------------------------------------------- scans

/// One scan in the list.
#[derive(Clone, Debug)]
pub struct ScanRow {
    environment: String,
    started: When,
    duration: String,
    revision: String,
    tracked: usize,
    open: usize,
    score: String,
    events: usize,
    errors: Vec<String>,
}

#[derive(Template)]
#[template(path = "scans.html")]
struct ScansPage {
    layout: Layout,
    environments: Vec<Choice>,
    rows: Vec<ScanRow>,
    failing: Vec<(String, String)>,
}

/// `GET /scans`: the latest scans with their errors and warnings, and the environments whose
/// last scan failed.
pub(crate) async fn scans(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Query(q): Params,
) -> Result<Html<String>, WebError> {
    let now = state.clock.now();
    let environment = Some(param(&q, "environment")).filter(|s| !s.is_empty());
    let list = queries::scans(&state, environment, 100).await?.items;
    let env_names: Vec<&str> = state.environments.iter().map(|e| e.name.as_str()).collect();
    let failing = queries::environments(&state)
        .await?
        .items
        .into_iter()
        .filter(|e| environment.is_none_or(|n| n == e.name))
        .filter_map(|e| e.last_error.map(|m| (e.name, m)))
        .collect();
    html(&ScansPage {
        layout: Layout::page("Scans", "/scans", &viewer, &state),
        environments: choices(param(&q, "environment"), "all environments", env_names),
        rows: list
            .iter()
            .map(|s| ScanRow {
                environment: s.environment.clone(),
                started: When::of(s.started_at, now),
                duration: format!("{} ms", s.duration_ms),
                revision: s.revision.as_deref().map(view::short).unwrap_or_default(),
                tracked: s.counts.tracked,
                open: s.counts.modified + s.counts.missing + s.counts.orphan,
                score: format!("{:.1}", s.score),
                events: s.events,
                errors: s.errors.clone(),
            })
            .collect(),
        failing,
    })
}
