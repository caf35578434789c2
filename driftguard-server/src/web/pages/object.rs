//! One object: its drifts and events.

use super::*;

#[derive(Template)]
#[template(path = "object.html")]
pub(super) struct ObjectPage {
    pub(super) layout: Layout,
    pub(super) heading: String,
    pub(super) environment: String,
    pub(super) in_git: Option<bool>,
    pub(super) in_cluster: Option<bool>,
    pub(super) open: Option<(String, String)>,
    pub(super) updated: Option<When>,
    pub(super) events: Vec<EventRow>,
    pub(super) episodes: Vec<EpisodeRow>,
    pub(super) explain: String,
}

/// `GET /objects/{env}/{*object}`: the record and the history of one object.
pub(crate) async fn object(
    Visible(state): Visible,
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
