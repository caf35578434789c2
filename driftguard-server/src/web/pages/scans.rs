//! The scans.

use super::*;

/// One scan in the list.
#[derive(Clone, Debug)]
pub struct ScanRow {
    pub(super) environment: String,
    pub(super) started: When,
    pub(super) duration: String,
    pub(super) revision: String,
    pub(super) tracked: usize,
    pub(super) open: usize,
    pub(super) score: String,
    pub(super) events: usize,
    pub(super) errors: Vec<String>,
}

#[derive(Template)]
#[template(path = "scans.html")]
pub(super) struct ScansPage {
    pub(super) layout: Layout,
    pub(super) environments: Vec<Choice>,
    pub(super) rows: Vec<ScanRow>,
    pub(super) failing: Vec<(String, String)>,
}

/// `GET /scans`: the latest scans with their errors and warnings, and the environments whose
/// last scan failed.
pub(crate) async fn scans(
    Visible(state): Visible,
    Extension(viewer): Extension<Viewer>,
    Query(q): Params,
) -> Result<Html<String>, WebError> {
    let now = state.clock.now();
    let environment = Some(param(&q, "environment")).filter(|s| !s.is_empty());
    let list = queries::scans(&state, environment, 100).await?.items;
    let environments = state.environments();
    let env_names: Vec<&str> = environments.iter().map(|e| e.name.as_str()).collect();
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
