//! Events: a time range, and the live stream (server-sent events).

use super::*;

/// Filters of `GET /api/v1/events`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventParams {
    /// Environment.
    pub environment: Option<String>,
    /// Object reference `Kind[.group]/[namespace/]name` (needs `environment`).
    pub object: Option<String>,
    /// Event kind: `detected`, `changed`, `resolved`.
    pub event: Option<String>,
    /// From (inclusive, RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub since: Option<String>,
    /// To (exclusive, RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub until: Option<String>,
    /// Page size (1..1000, default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
    /// Items to skip.
    #[param(value_type = Option<u32>, maximum = 2147483647)]
    pub offset: Option<String>,
}

/// Events in a time range, oldest first.
#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(EventParams),
    responses((status = 200, body = EventPage), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn list_events(
    Visible(state): Visible,
    q: Result<Query<EventParams>, QueryRejection>,
) -> Result<Json<EventPage>, AppError> {
    let Query(p) = q.map_err(query_error)?;
    let object = p.object.as_deref().filter(|s| !s.is_empty());
    // an object reference may name its environment (`prod:Deployment/shop/web`)
    let environment = p.environment.clone().filter(|s| !s.is_empty()).or_else(|| {
        object
            .and_then(|o| driftguard_core::id::ObjectRef::parse(o).ok())
            .and_then(|r| r.environment)
    });
    queries::known_env(&state, &environment)?;
    if object.is_some() && environment.is_none() {
        return Err(AppError::bad_request(
            "object: needs the environment (the environment parameter, or `env:` before the reference)",
        ));
    }
    let mut query = EventQuery {
        environment,
        object: None,
        kind: parse::<EventKind>("event", &p.event)?,
        since: parse_time("since", &p.since)?,
        until: parse_time("until", &p.until)?,
        limit: parse_limit(&p.limit, 100)?,
        offset: parse_offset(&p.offset)?,
    };
    if let (Some(s), Some(u)) = (query.since, query.until) {
        if u < s {
            return Err(AppError::bad_request("until: must not be before since"));
        }
    }
    if let (Some(r), Some(env)) = (object, query.environment.as_deref()) {
        let found = queries::find_object(&state, env, r)
            .await
            .map_err(|e| AppError::new(e.status, e.code, format!("object: {}", e.message)))?;
        match found {
            Some(id) => query.object = Some(id),
            // nothing known about the object: it has no events
            None => {
                return Ok(Json(EventPage {
                    items: Vec::new(),
                    total: 0,
                    limit: query.limit,
                    offset: query.offset,
                    next_offset: None,
                }))
            }
        }
    }
    Ok(Json(queries::events(&state, &query).await?))
}

/// Filters of `GET /api/v1/events/stream`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamParams {
    /// Environment (absent: every environment).
    pub environment: Option<String>,
}

/// Server-sent events: each drift event as it is stored (`event: detected|changed|resolved`,
/// `id:` the event id, `data:` the event as in `GET /api/v1/events`) and each finished scan
/// (`event: scan`, `data:` the scan as in `GET /api/v1/scans`). A listener too slow to keep
/// up gets `event: lagged` (`data:` how many it missed) and should read the lists again. Only
/// what happens after connecting is sent; a comment is sent every 15 s to keep the connection
/// open.
#[utoipa::path(get, path = "/api/v1/events/stream", tag = "events", params(StreamParams),
    responses((status = 200, description = "An endless `text/event-stream`", content_type = "text/event-stream"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn event_stream(
    Visible(state): Visible,
    axum::Extension(caller): axum::Extension<Caller>,
    session: Option<axum::Extension<SessionEnd>>,
    q: Result<Query<StreamParams>, QueryRejection>,
) -> Result<Response, AppError> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    use tokio::sync::broadcast::error::RecvError;
    let Query(p) = q.map_err(query_error)?;
    let environment = p.environment.filter(|s| !s.is_empty());
    queries::known_env(&state, &environment)?;
    let rx = state.feed.subscribe();
    let closed = state.feed.closed();
    // a stream opened with a session ends when the session does (sign-out, expiry); one
    // opened with a bearer token lives as long as the server, whose tokens are fixed at start
    let session = session.map(|axum::Extension(end)| end);
    let first = Event::default().comment("connected");
    let events = futures_util::stream::unfold(
        (rx, closed, environment, session, caller),
        |(mut rx, closed, env, session, caller)| async move {
            loop {
                let session_ended = async {
                    match &session {
                        Some(end) => end.ended().await,
                        None => std::future::pending().await,
                    }
                };
                let got = tokio::select! {
                    // an ended session delivers nothing more, even what is already queued
                    biased;
                    _ = closed.cancelled() => return None,
                    _ = session_ended => return None,
                    got = rx.recv() => got,
                };
                let event = match got {
                    // roles per environment: the one check (a viewer of `prod-*` receives
                    // nothing of `dev`)
                    Ok(m)
                        if env.as_ref().is_none_or(|e| *e == m.environment)
                            && caller.may_in(Read, &m.environment) =>
                    {
                        Event::default().event(m.kind).id(m.id).data(&*m.data)
                    }
                    Ok(_) => continue,
                    Err(RecvError::Lagged(n)) => {
                        Event::default().event("lagged").data(n.to_string())
                    }
                    Err(RecvError::Closed) => return None,
                };
                return Some((
                    Ok::<_, std::convert::Infallible>(event),
                    (rx, closed, env, session, caller),
                ));
            }
        },
    );
    let stream = futures_util::StreamExt::chain(
        futures_util::stream::once(async move { Ok(first) }),
        events,
    );
    let mut resp = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response();
    // proxies must not hold the stream back
    resp.headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(resp)
}

/// Filters of the list of people's actions.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ActionParams {
    /// Environment (absent: all).
    pub environment: Option<String>,
    /// How many, newest first (1..1000, default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
}

/// What people did, with who: scan now, acknowledge, withdraw, remediate, and failed
/// sign-ins counted per client and minute; newest first.
#[utoipa::path(get, path = "/api/v1/actions", tag = "events", params(ActionParams),
    responses((status = 200, body = ActionList), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn list_actions(
    Visible(state): Visible,
    q: Result<Query<ActionParams>, QueryRejection>,
) -> Result<Json<ActionList>, AppError> {
    let Query(p) = q.map_err(query_error)?;
    let limit = parse_limit(&p.limit, 100)?;
    let env = p.environment.filter(|e| !e.is_empty());
    let items = queries::actions::list(&state, env.as_deref(), limit).await?;
    Ok(Json(ActionList { items }))
}
