//! The event log.

use super::*;

#[derive(Template)]
#[template(path = "events.html")]
pub(super) struct EventsPage {
    pub(super) layout: Layout,
    pub(super) environments: Vec<Choice>,
    pub(super) kinds: Vec<Choice>,
    pub(super) events: Vec<EventRow>,
    pub(super) total: usize,
    pub(super) older: Option<String>,
    pub(super) newer: Option<String>,
    /// What people did, newest first: (when, who, what, where, detail).
    pub(super) actions: Vec<ActionRow>,
}

/// One action of a person, for the table.
#[derive(Clone, Debug)]
pub struct ActionRow {
    pub(super) when: When,
    pub(super) who: String,
    pub(super) what: String,
    pub(super) environment: String,
    pub(super) detail: String,
}

/// People's actions shown on the events page.
const ACTIONS_SHOWN: usize = 20;

/// Events shown per page.
pub(super) const EVENTS_PER_PAGE: usize = 50;

/// `GET /events`: the newest events first; open, the page adds new ones as they happen.
pub(crate) async fn events(
    Visible(state): Visible,
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
    let environments = state.environments();
    let env_names: Vec<&str> = environments.iter().map(|e| e.name.as_str()).collect();
    let actions = queries::actions::list(&state, environment.as_deref(), ACTIONS_SHOWN)
        .await?
        .into_iter()
        .map(|a| ActionRow {
            when: When::of(a.at, now),
            who: a.who,
            what: if a.count > 1 {
                format!("{} ×{}", a.action, a.count)
            } else {
                a.action
            },
            environment: a.environment.unwrap_or_else(|| "–".into()),
            detail: if a.episodes.is_empty() {
                a.detail
            } else if a.detail.is_empty() {
                format!(
                    "{} drift{}",
                    a.episodes.len(),
                    if a.episodes.len() == 1 { "" } else { "s" }
                )
            } else {
                format!(
                    "{} drift{}: {}",
                    a.episodes.len(),
                    if a.episodes.len() == 1 { "" } else { "s" },
                    a.detail
                )
            },
        })
        .collect();
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
        actions,
    })?
    .into_response())
}
