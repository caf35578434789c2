//! The overview: every environment's sources, counts and open drifts.

use super::*;
use driftguard_core::query::OpenTally;

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
    /// `error`, `pending`, `drifted` or `in_sync`.
    pub(super) status_word: String,
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
    /// Sort keys of the fleet table.
    pub(super) score_value: Option<f64>,
    pub(super) last_scan_at: Option<DateTime<Utc>>,
    /// `67 % (4 of 6 resources)`: a Terraform environment listing its cloud account.
    pub(super) iac_coverage: Option<String>,
}

/// The IaC coverage in words: `67 % (4 of 6 resources)`, and the kinds not counted.
pub(super) fn coverage_text(c: &crate::dto::IacCoverageDto) -> String {
    let mut text = match c.ratio {
        Some(r) => format!(
            "{} % ({} of {} resources)",
            (r * 100.0).round() as u64,
            c.managed,
            c.managed + c.unmanaged
        ),
        None => "unknown (no resource listed)".into(),
    };
    if !c.unknown_kinds.is_empty() {
        text.push_str(&format!(
            "; not counted: {} (could not be listed)",
            c.unknown_kinds.join(", ")
        ));
    }
    text
}

/// Up to this many environments the overview shows each as a card (a handful look as they
/// always did); past it, the ones needing attention most as cards and every environment as a
/// row of the fleet table.
pub(super) const ALL_CARDS_UP_TO: usize = 24;
/// Cards shown above the fleet table.
pub(super) const ATTENTION_CARDS: usize = 12;

/// How the fleet table is sorted (`?sort=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum EnvSort {
    /// Worst first: failed scans, then drifted, pending, in sync; by score, then open drifts.
    Attention,
    /// By name.
    Name,
    /// Highest drift score first.
    Score,
    /// Most open drifts first.
    Open,
    /// Least recently scanned first (never scanned before all).
    Scan,
}

impl EnvSort {
    const ALL: [EnvSort; 5] = [
        EnvSort::Attention,
        EnvSort::Name,
        EnvSort::Score,
        EnvSort::Open,
        EnvSort::Scan,
    ];

    fn key(self) -> &'static str {
        match self {
            EnvSort::Attention => "status",
            EnvSort::Name => "name",
            EnvSort::Score => "score",
            EnvSort::Open => "open",
            EnvSort::Scan => "scan",
        }
    }

    fn parse(s: Option<&str>) -> EnvSort {
        EnvSort::ALL
            .into_iter()
            .find(|x| Some(x.key()) == s)
            .unwrap_or(EnvSort::Attention)
    }

    fn aria(self) -> &'static str {
        match self {
            EnvSort::Name | EnvSort::Scan => "ascending",
            EnvSort::Attention | EnvSort::Score | EnvSort::Open => "descending",
        }
    }
}

fn status_rank(status: &str) -> u8 {
    match status {
        "error" => 0,
        "drifted" => 1,
        "pending" => 2,
        _ => 3,
    }
}

/// Sorts environments for the fleet table; ties by name.
pub(super) fn sort_envs(envs: &mut [EnvCard], by: EnvSort) {
    let score = |e: &EnvCard| e.score_value.unwrap_or(-1.0);
    envs.sort_by(|a, b| {
        let first = match by {
            EnvSort::Attention => status_rank(&a.status_word)
                .cmp(&status_rank(&b.status_word))
                .then(score(b).total_cmp(&score(a)))
                .then(b.open.cmp(&a.open)),
            EnvSort::Name => std::cmp::Ordering::Equal,
            EnvSort::Score => score(b).total_cmp(&score(a)),
            EnvSort::Open => b.open.cmp(&a.open),
            EnvSort::Scan => a.last_scan_at.cmp(&b.last_scan_at),
        };
        first.then_with(|| a.name.cmp(&b.name))
    });
}

/// The environments that need attention most, worst first, at most `n`: a failed scan, then
/// open drifts (by critical ones, score, open drifts). None in sync or not scanned yet.
pub(super) fn attention(envs: &[EnvCard], n: usize) -> Vec<EnvCard> {
    let critical = |e: &EnvCard| e.severities.first().map_or(0, |c| c.n);
    let mut out: Vec<&EnvCard> = envs
        .iter()
        .filter(|e| e.status_word == "error" || e.open > 0)
        .collect();
    out.sort_by(|a, b| {
        status_rank(&a.status_word)
            .cmp(&status_rank(&b.status_word))
            .then(critical(b).cmp(&critical(a)))
            .then(
                b.score_value
                    .unwrap_or(-1.0)
                    .total_cmp(&a.score_value.unwrap_or(-1.0)),
            )
            .then(b.open.cmp(&a.open))
            .then_with(|| a.name.cmp(&b.name))
    });
    out.into_iter().take(n).cloned().collect()
}

/// Every environment in one compact table (a fleet: more than [`ALL_CARDS_UP_TO`]).
#[derive(Clone, Debug)]
pub struct FleetTable {
    pub(super) rows: Vec<EnvCard>,
    pub(super) sorts: Vec<SortLink>,
    pub(super) caption: String,
}

#[derive(Template)]
#[template(path = "overview.html")]
pub(super) struct OverviewPage {
    pub(super) layout: Layout,
    pub(super) notice: Option<String>,
    pub(super) total_open: usize,
    pub(super) drifted: usize,
    pub(super) env_count: usize,
    /// The cards: every environment, or past [`ALL_CARDS_UP_TO`] those needing attention.
    pub(super) envs: Vec<EnvCard>,
    /// Past [`ALL_CARDS_UP_TO`] environments: all of them, a row each.
    pub(super) fleet: Option<FleetTable>,
    pub(super) chart: Chart,
    pub(super) series: Vec<chart::Series>,
    pub(super) ranges: Vec<(String, String, bool)>,
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

/// The card (and fleet table row) of one environment, with its open drifts counted.
pub(super) fn env_card(e: &EnvironmentDto, open: &OpenTally, now: DateTime<Utc>) -> EnvCard {
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
        let n = open.of_severity(s);
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
            let n = open.of_direction(*d);
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
        .oldest
        .as_ref()
        .map(|(at, episode)| (view::age(*at, now), view::drift_link(episode)));
    EnvCard {
        name: e.name.clone(),
        status: badge("status", &e.status),
        status_word: e.status.clone(),
        score: e.score.map_or("–".into(), |s| format!("{s:.1}")),
        open: open.total(),
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
        score_value: e.score,
        last_scan_at: e.last_scan.as_ref().map(|s| s.started_at),
        iac_coverage: e.iac_coverage.as_ref().map(coverage_text),
    }
}

/// `GET /`.
pub(crate) async fn overview(
    Visible(state): Visible,
    Extension(viewer): Extension<Viewer>,
    Query(q): Params,
) -> Result<Html<String>, WebError> {
    let now = state.clock.now();
    let tallies = queries::open_tallies(&state).await?;
    let range = Range::parse(q.get("range").map(String::as_str));
    let scans = queries::scans_at(&state, &chart::points(range, now)).await?;
    let mut envs: Vec<EnvCard> = queries::environments(&state)
        .await?
        .items
        .iter()
        .map(|e| {
            let none = OpenTally::default();
            env_card(e, tallies.get(&e.name).unwrap_or(&none), now)
        })
        .collect();
    let env_count = envs.len();
    let drifted = envs.iter().filter(|e| e.open > 0).count();
    let fleet = (env_count > ALL_CARDS_UP_TO).then(|| {
        let sort = EnvSort::parse(q.get("sort").map(String::as_str));
        let cards = attention(&envs, ATTENTION_CARDS);
        sort_envs(&mut envs, sort);
        let link = |s: EnvSort, label: &'static str| SortLink {
            label,
            href: format!(
                "/{}#fleet",
                view::query_string(&[("range", range.key()), ("sort", s.key())])
            ),
            aria: if s == sort { s.aria() } else { "none" },
        };
        FleetTable {
            rows: std::mem::replace(&mut envs, cards),
            sorts: vec![
                link(EnvSort::Name, "Environment"),
                link(EnvSort::Attention, "Status"),
                link(EnvSort::Score, "Drift score"),
                link(EnvSort::Open, "Open drifts"),
                link(EnvSort::Scan, "Last scan"),
            ],
            caption: format!(
                "Every environment ({env_count}), sorted by {}",
                match sort {
                    EnvSort::Attention => "status, worst first",
                    EnvSort::Name => "name",
                    EnvSort::Score => "drift score, highest first",
                    EnvSort::Open => "open drifts, most first",
                    EnvSort::Scan => "last scan, oldest first",
                }
            ),
        }
    });
    let notice = q
        .get("scan")
        .filter(|env| state.environment(env).is_some())
        .map(|env| format!("A scan of {env} was started; this page updates when it ends."));
    let drawn = chart::draw(range, now, &scans);
    html(&OverviewPage {
        layout: Layout::page("Overview", "/", &viewer, &state),
        notice,
        total_open: tallies.values().map(OpenTally::total).sum(),
        drifted,
        env_count,
        envs,
        fleet,
        series: vec![drawn.open.clone(), drawn.score.clone()],
        chart: drawn,
        ranges: Range::ALL
            .iter()
            .map(|r| {
                (
                    r.key().to_owned(),
                    format!(
                        "/{}",
                        view::query_string(&[
                            ("range", r.key()),
                            ("sort", q.get("sort").map_or("", String::as_str)),
                        ])
                    ),
                    *r == range,
                )
            })
            .collect(),
    })
}

/// `POST /environments/{env}/scan`: starts a scan and goes back to the overview (the page
/// updates when the scan ends).
pub(crate) async fn scan_now(
    Visible(state): Visible,
    Extension(viewer): Extension<Viewer>,
    Path(env): Path<String>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Result<Response, WebError> {
    check_csrf(&viewer, &headers, &form.csrf)?;
    viewer.require(TokenScope::Scan)?;
    viewer.caller.may_in_env(TokenScope::Scan, &env)?;
    queries::environment(&state, &env)?;
    let (state, name, caller) = (state.clone(), env.clone(), viewer.caller.clone());
    tokio::spawn(async move {
        // the outcome shows on the overview (status, last error) and in the feed
        let _ = queries::scan_now(&state, &caller, &name).await;
    });
    Ok(Redirect::to(&format!("/{}", view::query_string(&[("scan", &env)]))).into_response())
}
