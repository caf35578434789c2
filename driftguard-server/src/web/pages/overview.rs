//! The overview: every environment's sources, counts and open drifts.

use super::*;

/// A source's health on the overview.
#[derive(Clone, Debug)]
pub struct SourceView {
    pub(super) label: &'static str,
    pub(super) description: String,
    pub(super) state: &'static str,
    pub(super) detail: String,
}

/// One count with its label.
#[derive(Clone, Debug)]
pub struct Count {
    pub(super) label: &'static str,
    pub(super) class: String,
    pub(super) n: usize,
    pub(super) link: String,
}

/// One environment on the overview.
#[derive(Clone, Debug)]
pub struct EnvCard {
    pub(super) name: String,
    pub(super) status: Badge,
    pub(super) score: String,
    pub(super) open: usize,
    pub(super) severities: Vec<Count>,
    pub(super) directions: Vec<Count>,
    pub(super) oldest: Option<(String, String)>,
    pub(super) sources: Vec<SourceView>,
    pub(super) last_scan: Option<When>,
    pub(super) last_scan_errors: usize,
    pub(super) last_error: Option<String>,
    pub(super) scanning: bool,
    pub(super) watching: bool,
    pub(super) drifts_link: String,
    pub(super) scan_action: String,
}

#[derive(Template)]
#[template(path = "overview.html")]
pub(super) struct OverviewPage {
    pub(super) layout: Layout,
    pub(super) notice: Option<String>,
    pub(super) total_open: usize,
    pub(super) drifted: usize,
    pub(super) envs: Vec<EnvCard>,
    pub(super) chart: Chart,
    pub(super) series: Vec<chart::Series>,
    pub(super) ranges: Vec<(String, String, bool)>,
}

/// Every open drift (all pages), for the overview's counts.
pub(super) async fn all_open(state: &AppState) -> Result<Vec<DriftSummary>, WebError> {
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

pub(super) fn source_view(
    label: &'static str,
    s: &crate::dto::SourceDto,
    now: DateTime<Utc>,
) -> SourceView {
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

pub(super) fn env_card(e: &EnvironmentDto, open: &[&DriftSummary], now: DateTime<Utc>) -> EnvCard {
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
    let environments = state.environments();
    let mut scans = Vec::with_capacity(environments.len());
    let start = now - range.duration();
    for e in environments.iter() {
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
