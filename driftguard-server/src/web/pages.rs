//! The pages: each reads what the API reads (the store through the core's queries, the
//! environments' status) and fills a template.

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use chrono::{DateTime, Utc};
use driftguard_core::duration::HumanDuration;
use driftguard_core::id::{ObjectRef as CoreObjectRef, ResourceId};
use driftguard_core::query::{DriftQuery, DriftSort, DriftStatus, EventQuery};
use driftguard_core::severity::Severity;
use driftguard_core::state::{Direction, Drift, DriftEvent, DriftKind, EventKind};

use super::chart::{self, Chart, Range};
use super::view::{self, When};
use super::{check_csrf, html, CsrfForm, Layout, Viewer, WebError};
use crate::api::{DriftParams, MAX_LIMIT};
use crate::dto::{DriftDetail, DriftSummary, EnvironmentDto};
use crate::error::AppError;
use crate::queries::{environment_dto, find_object};
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
async fn all_open(state: &AppState) -> Result<Vec<Drift>, WebError> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let page = state
            .store
            .drifts(&DriftQuery {
                status: DriftStatus::Open,
                sort: DriftSort::Detected,
                limit: MAX_LIMIT,
                offset,
                ..DriftQuery::default()
            })
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

fn env_card(e: &EnvironmentDto, open: &[&Drift], now: DateTime<Utc>) -> EnvCard {
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
        let n = open.iter().filter(|d| d.severity == s).count();
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
            let n = open.iter().filter(|x| x.direction == *d).count();
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
        let list = state.store.scans(Some(&e.name), MAX_LIMIT).await?;
        // keep the range, and the last scan before it (the state at its start)
        let keep = list
            .iter()
            .position(|s| s.started_at < start)
            .map_or(list.len(), |i| i + 1);
        scans.push(list.into_iter().take(keep).collect::<Vec<_>>());
    }
    let envs: Vec<EnvCard> = state
        .environments
        .iter()
        .map(|e| {
            let dto = environment_dto(e);
            let mine: Vec<&Drift> = open.iter().filter(|d| d.id.environment == e.name).collect();
            env_card(&dto, &mine, now)
        })
        .collect();
    let notice = q
        .get("scan")
        .filter(|env| state.environment(env).is_some())
        .map(|env| format!("A scan of {env} was started; this page updates when it ends."));
    let drawn = chart::draw(range, now, &scans);
    html(&OverviewPage {
        layout: Layout::page("Overview", "/", &viewer),
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
    let e = state
        .environment(&env)
        .cloned()
        .ok_or_else(|| AppError::not_found(format!("no environment `{env}`")))?;
    let ctx = state.scan_context();
    tokio::spawn(async move {
        // the outcome shows on the overview (status, last error) and in the feed
        let _ = e.run_scan(&ctx).await;
    });
    Ok(Redirect::to(&format!("/{}", view::query_string(&[("scan", &env)]))).into_response())
}

// ---------------------------------------------------------------- drifts

/// One row of the drifts table.
#[derive(Clone, Debug)]
pub struct DriftRow {
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

/// The page's filters as the API's drift parameters; `age` (`1h`, `7d`, ...) becomes
/// `detected_before`.
fn drift_query(q: &HashMap<String, String>, now: DateTime<Utc>) -> Result<DriftQuery, AppError> {
    let get = |k: &str| q.get(k).cloned().filter(|v| !v.is_empty());
    let detected_before = match get("age") {
        None => None,
        Some(a) => {
            let d: HumanDuration = a
                .parse()
                .map_err(|e| AppError::bad_request(format!("age: {e}")))?;
            let d = chrono::Duration::from_std(d.0)
                .map_err(|_| AppError::bad_request("age: too long"))?;
            Some((now - d).to_rfc3339())
        }
    };
    DriftParams {
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
        Ok(query) => match &query.environment {
            Some(e) if state.environment(e).is_none() => {
                (None, Some(format!("no environment `{e}`")))
            }
            _ => (Some(state.store.drifts(query).await?), None),
        },
        Err(e) => (None, Some(e.message.clone())),
    };
    let rows: Vec<DriftRow> = page
        .as_ref()
        .map(|p| {
            p.items
                .iter()
                .map(|d| drift_row(&DriftSummary::from(d), now))
                .collect()
        })
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
        layout: Layout::page("Drifts", "/drifts", &viewer),
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

fn event_row(e: &DriftEvent, now: DateTime<Utc>) -> EventRow {
    let d = &e.drift;
    let s = DriftSummary::from(d);
    EventRow {
        at: When::of(e.at, now),
        event: badge("event", e.kind.as_str()),
        environment: d.id.environment.clone(),
        kind: d.id.kind.clone(),
        object: d.id.namespaced_name(),
        object_link: view::object_link(&d.id.environment, &s.object.reference),
        drift_link: view::drift_link(&d.episode),
        detail: match (e.kind, d.resolution) {
            (EventKind::Resolved, Some(r)) => format!("{} ({r})", d.kind),
            _ if d.fields.is_empty() => d.kind.to_string(),
            _ => format!("{}: {}", d.kind, d.paths().join(", ")),
        },
        severity: badge("sev", d.severity.as_str()),
        direction: badge("dir", d.direction.as_str()),
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

fn episode_row(d: &Drift, current: &str, now: DateTime<Utc>) -> EpisodeRow {
    EpisodeRow {
        link: view::drift_link(&d.episode),
        current: d.episode == current,
        drift: d.kind.to_string(),
        direction: d.direction.to_string(),
        detected: When::of(d.detected_at, now),
        ended: match (d.resolved_at, d.resolution) {
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
    reason: &'static str,
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
}

/// The episodes of one object, newest first (the core's object reference with every part).
async fn episodes_of(state: &AppState, id: &ResourceId) -> Result<Vec<Drift>, WebError> {
    let r = CoreObjectRef {
        environment: Some(id.environment.clone()),
        group: Some(id.group.clone()),
        kind: id.kind.clone(),
        namespace: id.namespace.clone(),
        name: id.name.clone(),
    };
    let mut q = r.drift_query();
    q.limit = MAX_LIMIT;
    Ok(state
        .store
        .drifts(&q)
        .await?
        .items
        .into_iter()
        .filter(|d| &d.id == id)
        .collect())
}

/// `GET /drifts/{episode}`.
pub(crate) async fn drift(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Path(episode): Path<String>,
    Query(q): Params,
) -> Result<Html<String>, WebError> {
    let now = state.clock.now();
    let Some(d) = state.store.drift(&episode).await? else {
        return Err(AppError::not_found(format!("no drift episode `{episode}`")).into());
    };
    let detail = DriftDetail::from(&d);
    let s = detail.drift.clone();
    let env = state.environment(&d.id.environment);
    let history = state.store.history(&d.id, MAX_LIMIT).await?;
    let events: Vec<EventRow> = history
        .iter()
        .filter(|e| e.drift.episode == d.episode)
        .rev()
        .map(|e| event_row(e, now))
        .collect();
    let episodes = episodes_of(&state, &d.id)
        .await?
        .iter()
        .map(|x| episode_row(x, &d.episode, now))
        .collect();
    let inline = param(&q, "view") == "inline";
    let base = view::drift_link(&d.episode);
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
            format!("{} {}", s.object.kind, d.id.namespaced_name()),
            "/drifts",
            &viewer,
        ),
        heading: format!("{} {}", s.object.kind, d.id.namespaced_name()),
        drift: badge("drift", &s.drift),
        direction: badge("dir", &s.direction),
        severity: badge("sev", &s.severity),
        status: match &s.resolution {
            Some(r) => format!("resolved ({r})"),
            None => s.status.clone(),
        },
        reason: d.direction_reason(),
        inline,
        side_link: base.clone(),
        inline_link: format!("{base}?view=inline"),
        fields,
        absent_note: match d.kind {
            DriftKind::Missing => Some("The object is in Git and not in the cluster."),
            DriftKind::Orphan => Some("The object is in the cluster and not in Git."),
            DriftKind::Modified if d.fields.is_empty() => Some("No field detail was kept."),
            DriftKind::Modified => None,
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
        place: d.provenance.as_ref().map(|p| Where {
            file: p.file.clone(),
            line: p.line,
            link: env.and_then(|e| e.file_link(p)),
            revision: p.revision.as_deref().map(view::short).unwrap_or_default(),
            rendered: detail
                .provenance
                .as_ref()
                .and_then(|p| p.rendered.as_ref())
                .map(|r| {
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
    if state.environment(&env).is_none() {
        return Err(AppError::not_found(format!("no environment `{env}`")).into());
    }
    let Some(id) = find_object(&state, &env, &object).await? else {
        return Err(AppError::not_found(format!("nothing known about {env}:{object}")).into());
    };
    let record = state.store.record(&id).await?;
    let history = state.store.history(&id, MAX_LIMIT).await?;
    if record.is_none() && history.is_empty() {
        return Err(AppError::not_found(format!("nothing known about {id}")).into());
    }
    let episodes = episodes_of(&state, &id)
        .await?
        .iter()
        .map(|x| episode_row(x, "", now))
        .collect();
    let reference = crate::dto::ObjectRef::from(&id).reference;
    html(&ObjectPage {
        layout: Layout::page(format!("{} {}", id.kind, id.namespaced_name()), "", &viewer),
        heading: format!("{} {}", id.kind, id.namespaced_name()),
        environment: env.clone(),
        in_git: record.as_ref().map(|r| r.desired_hash.is_some()),
        in_cluster: record.as_ref().map(|r| r.live_hash.is_some()),
        open: record.as_ref().and_then(|r| r.drift.as_ref()).map(|d| {
            (
                format!("{} {}", d.kind, d.direction),
                view::drift_link(&d.episode),
            )
        }),
        updated: record.as_ref().map(|r| When::of(r.updated_at, now)),
        events: history.iter().rev().map(|e| event_row(e, now)).collect(),
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
    if let Some(e) = &environment {
        if state.environment(e).is_none() {
            return Err(AppError::not_found(format!("no environment `{e}`")).into());
        }
    }
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
    let total = state.store.events(&base).await?.total;
    let end = total.saturating_sub(skip);
    let start = end.saturating_sub(EVENTS_PER_PAGE);
    let page = state
        .store
        .events(&EventQuery {
            limit: (end - start).max(1),
            offset: start,
            ..base
        })
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
        layout: Layout::page("Events", "/events", &viewer),
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
    if let Some(e) = environment {
        if state.environment(e).is_none() {
            return Err(AppError::not_found(format!("no environment `{e}`")).into());
        }
    }
    let list = state.store.scans(environment, 100).await?;
    let env_names: Vec<&str> = state.environments.iter().map(|e| e.name.as_str()).collect();
    let failing = state
        .environments
        .iter()
        .filter(|e| environment.is_none_or(|n| n == e.name))
        .filter_map(|e: &Arc<crate::Environment>| {
            e.status().last_error.map(|m| (e.name.clone(), m))
        })
        .collect();
    html(&ScansPage {
        layout: Layout::page("Scans", "/scans", &viewer),
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
