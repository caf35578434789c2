//! The REST API (axum): its routes, each with the scope it needs, the webhooks, health and
//! metrics, and the OpenAPI document. Who a caller is and what a scope allows are `auth`'s;
//! the limits every request passes are the composed router's (`router`).

use std::sync::OnceLock;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use driftguard_core::audit::parse_event_list;
use driftguard_core::error::chain;
use driftguard_core::query::{DriftSort, DriftStatus, EventQuery};
use driftguard_core::remediate::advice::RemediationAction;
use driftguard_core::severity::Severity;
use driftguard_core::state::{Direction, DriftKind, EventKind};
use driftguard_store::BufferHealth;
use futures_util::StreamExt;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::auth::session::SessionEnd;
use crate::auth::{authenticate, same_secret, Authorization, Caller, Needs};
use crate::config::TokenScope::{Read, Remediate, Scan};
use crate::dto::*;
use crate::error::{AppError, ErrorBody, ErrorDetail};
use crate::queries;
use crate::queries::filter::{parse, parse_limit, parse_offset, parse_time, DriftFilter};
use crate::state::AppState;

/// The API's routes: `/api/v1` behind the API's authentication, each route with the scope it
/// needs ([`Needs`]), beside the webhooks that authenticate themselves; health and metrics.
pub fn routes(state: AppState) -> Router<AppState> {
    let api = Router::new()
        .route(
            "/environments",
            get(list_environments).route_layer(Needs(Read)),
        )
        .route(
            "/environments/{env}",
            get(get_environment).route_layer(Needs(Read)),
        )
        .route(
            "/environments/{env}/scan",
            post(scan_now).route_layer(Needs(Scan)),
        )
        .route(
            "/environments/{env}/objects/{*object}",
            get(object_history).route_layer(Needs(Read)),
        )
        .route("/drifts", get(list_drifts).route_layer(Needs(Read)))
        .route("/drifts/{episode}", get(get_drift).route_layer(Needs(Read)))
        .route(
            "/drifts/{episode}/remediation",
            get(get_remediation).route_layer(Needs(Read)),
        )
        .route(
            "/drifts/{episode}/remediate",
            post(remediate).route_layer(Needs(Remediate)),
        )
        .route(
            "/remediation/pause",
            post(pause_remediation).route_layer(Needs(Remediate)),
        )
        .route(
            "/remediation/resume",
            post(resume_remediation).route_layer(Needs(Remediate)),
        )
        .route("/events", get(list_events).route_layer(Needs(Read)))
        .route("/events/stream", get(event_stream).route_layer(Needs(Read)))
        .route("/scans", get(list_scans).route_layer(Needs(Read)))
        .route("/openapi.json", get(openapi_json).route_layer(Needs(Read)))
        .route_layer(middleware::from_fn_with_state(state, authenticate));
    // their own authentication: a push signature, the API server's audit token
    let hooks = Router::new()
        .route("/webhooks/git", post(git_webhook))
        .route("/environments/{env}/audit", post(audit_webhook));
    Router::new()
        .nest(
            "/api/v1",
            api.merge(hooks).layer(middleware::from_fn(no_store)),
        )
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// API answers hold drifts, events and plans: no browser or proxy keeps them
/// (`Cache-Control: no-store`, unless a route set its own).
async fn no_store(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    resp.headers_mut()
        .entry(header::CACHE_CONTROL)
        .or_insert(axum::http::HeaderValue::from_static("no-store"));
    resp
}

/// Checks an audit post's token against `tokens` (each compared in constant time): as
/// `Authorization: Bearer <token>`, or as the password of `Authorization: Basic` (any user
/// name). The API server's webhook client sends a kubeconfig's `token` only over HTTPS; over
/// plain HTTP it sends the credentials of the server URL's user info
/// (`http://driftguard:<token>@127.0.0.1:8080/...`) as Basic, and masks that password in the
/// errors it logs.
fn check_audit_token(headers: &HeaderMap, tokens: &[String]) -> Result<(), AppError> {
    let Some(authorization) = Authorization::of(headers) else {
        return Err(AppError::unauthorized(
            "missing audit token: send `Authorization: Bearer <token>`, or Basic credentials \
             with the token as the password",
        ));
    };
    let token = match authorization {
        Authorization::Bearer(token) => Some(token),
        Authorization::Basic { password, .. } => Some(password),
        Authorization::Unreadable => None,
    };
    let Some(token) = token else {
        return Err(AppError::unauthorized(
            "expected `Authorization: Bearer <token>` or `Authorization: Basic` with the token \
             as the password",
        ));
    };
    let mut ok = false;
    for t in tokens {
        ok |= same_secret(t, &token);
    }
    if !ok {
        return Err(AppError::unauthorized("invalid audit token"));
    }
    Ok(())
}

fn query_error(e: QueryRejection) -> AppError {
    AppError::bad_request(format!("invalid query: {}", e.body_text()))
}

/// Drift episodes, filtered and paged.
#[utoipa::path(get, path = "/api/v1/drifts", tag = "drifts", params(DriftFilter),
    responses((status = 200, body = DriftPage), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_drifts(
    State(state): State<AppState>,
    q: Result<Query<DriftFilter>, QueryRejection>,
) -> Result<Response, AppError> {
    let Query(p) = q.map_err(query_error)?;
    let query = p.query()?;
    queries::known_env(&state, &query.environment)?;
    let key = format!(
        "drifts:{}",
        serde_json::to_string(&query).map_err(|_| AppError::internal())?
    );
    if let Some(body) = state.cache.get(&key) {
        return Ok(json_bytes(body));
    }
    let generation = state.cache.generation();
    let page = queries::drifts(&state, &query).await?;
    let body = serde_json::to_vec(&page).map_err(|_| AppError::internal())?;
    let body = Bytes::from(body);
    state.cache.put(key, generation, body.clone());
    Ok(json_bytes(body))
}

fn json_bytes(body: Bytes) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// One drift episode with its field diff and attribution.
#[utoipa::path(get, path = "/api/v1/drifts/{episode}", tag = "drifts",
    params(("episode" = String, Path, description = "Episode id")),
    responses((status = 200, body = DriftDetail), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn get_drift(
    State(state): State<AppState>,
    Path(episode): Path<String>,
) -> Result<Json<DriftDetail>, AppError> {
    queries::drift(&state, &episode).await.map(Json)
}

/// Filters of the remediation plan.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RemediationParams {
    /// `revert` (the cluster back to Git) or `adopt` (Git takes the cluster's state); absent:
    /// the action DriftGuard suggests.
    pub action: Option<String>,
}

/// How to end a drift: the revert or adopt plan (steps, commands, field changes). Never
/// applied by DriftGuard.
#[utoipa::path(get, path = "/api/v1/drifts/{episode}/remediation", tag = "drifts",
    params(("episode" = String, Path, description = "Episode id"), RemediationParams),
    responses((status = 200, body = RemediationDto), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn get_remediation(
    State(state): State<AppState>,
    Path(episode): Path<String>,
    q: Result<Query<RemediationParams>, QueryRejection>,
) -> Result<Json<RemediationDto>, AppError> {
    let Query(p) = q.map_err(query_error)?;
    let action = parse::<RemediationAction>("action", &p.action)?;
    queries::remediation(&state, &episode, action)
        .await
        .map(Json)
}

/// Remediates a drift, plan then confirm: without `confirm` the answer is the plan and its
/// preview (nothing changes); with `confirm` the plan of that id is carried out, if planning
/// again gives the same plan. Needs a token with the `remediate` scope.
#[utoipa::path(post, path = "/api/v1/drifts/{episode}/remediate", tag = "drifts",
    params(("episode" = String, Path, description = "Episode id")),
    request_body = RemediateRequest,
    responses((status = 200, body = RemediateAnswer), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
async fn remediate(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(episode): Path<String>,
    body: Result<Json<RemediateRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<RemediateAnswer>, AppError> {
    let Json(body) =
        body.map_err(|e| AppError::bad_request(format!("invalid body: {}", e.body_text())))?;
    queries::remediate(&state, &episode, &body, &caller)
        .await
        .map(Json)
}

/// The kill switch of the remediation policies.
#[derive(Debug, Serialize, ToSchema)]
pub struct RemediationSwitch {
    /// Whether every remediation policy is stopped.
    pub paused: bool,
}

/// Stops every remediation policy at once (the kill switch). Needs the `remediate` scope.
#[utoipa::path(post, path = "/api/v1/remediation/pause", tag = "drifts",
    responses((status = 200, body = RemediationSwitch), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
async fn pause_remediation(State(state): State<AppState>) -> Json<RemediationSwitch> {
    state
        .remediation_paused
        .store(true, std::sync::atomic::Ordering::SeqCst);
    tracing::warn!("remediation policies paused through the API");
    Json(RemediationSwitch { paused: true })
}

/// Lets the remediation policies act again. Needs the `remediate` scope.
#[utoipa::path(post, path = "/api/v1/remediation/resume", tag = "drifts",
    responses((status = 200, body = RemediationSwitch), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
async fn resume_remediation(State(state): State<AppState>) -> Json<RemediationSwitch> {
    state
        .remediation_paused
        .store(false, std::sync::atomic::Ordering::SeqCst);
    tracing::info!("remediation policies resumed through the API");
    Json(RemediationSwitch { paused: false })
}

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
async fn list_events(
    State(state): State<AppState>,
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
async fn event_stream(
    State(state): State<AppState>,
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
        (rx, closed, environment, session),
        |(mut rx, closed, env, session)| async move {
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
                    Ok(m) if env.as_ref().is_none_or(|e| *e == m.environment) => {
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
                    (rx, closed, env, session),
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

/// Filters of `GET /api/v1/scans`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ScanParams {
    /// Environment.
    pub environment: Option<String>,
    /// How many (1..1000, default 20).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
}

/// Scan summaries, newest first.
#[utoipa::path(get, path = "/api/v1/scans", tag = "scans", params(ScanParams),
    responses((status = 200, body = ScanList), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_scans(
    State(state): State<AppState>,
    q: Result<Query<ScanParams>, QueryRejection>,
) -> Result<Json<ScanList>, AppError> {
    let Query(p) = q.map_err(query_error)?;
    let environment = p.environment.clone().filter(|s| !s.is_empty());
    queries::known_env(&state, &environment)?;
    let limit = parse_limit(&p.limit, 20)?;
    Ok(Json(
        queries::scans(&state, environment.as_deref(), limit).await?,
    ))
}

/// Environments with their status and score.
#[utoipa::path(get, path = "/api/v1/environments", tag = "environments",
    responses((status = 200, body = EnvironmentList), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_environments(
    State(state): State<AppState>,
) -> Result<Json<EnvironmentList>, AppError> {
    queries::environments(&state).await.map(Json)
}

/// One environment.
#[utoipa::path(get, path = "/api/v1/environments/{env}", tag = "environments",
    params(("env" = String, Path, description = "Environment name")),
    responses((status = 200, body = EnvironmentDto), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn get_environment(
    State(state): State<AppState>,
    Path(env): Path<String>,
) -> Result<Json<EnvironmentDto>, AppError> {
    let e = queries::environment(&state, &env)?;
    queries::environment_dto(&state, e).await.map(Json)
}

/// Scans an environment now and answers its summary.
#[utoipa::path(post, path = "/api/v1/environments/{env}/scan", tag = "environments",
    params(("env" = String, Path, description = "Environment name")),
    responses((status = 200, body = ScanDto), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Another replica leads the environment (leader election): ask it", body = ErrorBody),
        (status = 502, description = "The scan failed (a source could not be read)", body = ErrorBody),
        (status = 503, description = "The store cannot be read or written", body = ErrorBody)),
    security(("bearer" = [])))]
async fn scan_now(
    State(state): State<AppState>,
    Path(env): Path<String>,
) -> Result<Json<ScanDto>, AppError> {
    queries::scan_now(&state, &env).await.map(Json)
}

/// Filters of the object history.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    /// Most events (1..1000, default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
}

/// The record and events of one object.
#[utoipa::path(get, path = "/api/v1/environments/{env}/objects/{object}", tag = "environments",
    params(("env" = String, Path, description = "Environment name"),
        ("object" = String, Path, description = "`Kind[.group]/[namespace/]name`, slashes unescaped (e.g. `Deployment.apps/shop/web`)"),
        HistoryParams),
    responses((status = 200, body = ObjectHistory), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn object_history(
    State(state): State<AppState>,
    Path((env, object)): Path<(String, String)>,
    q: Result<Query<HistoryParams>, QueryRejection>,
) -> Result<Json<ObjectHistory>, AppError> {
    let Query(p) = q.map_err(query_error)?;
    queries::environment(&state, &env)?;
    let limit = parse_limit(&p.limit, 100)?;
    queries::object_history(&state, &env, &object, limit)
        .await
        .map(Json)
}

/// Verifies a push webhook and triggers an immediate Git fetch.
#[utoipa::path(post, path = "/api/v1/webhooks/git", tag = "webhooks",
    request_body(content = Object, description = "GitHub or GitLab push payload", content_type = "application/json"),
    params(
        ("X-Hub-Signature-256" = Option<String>, Header, description = "GitHub: `sha256=` + hex HMAC-SHA256 of the body with the shared secret"),
        ("X-Gitlab-Token" = Option<String>, Header, description = "GitLab: the shared secret"),
        ("X-GitHub-Event" = Option<String>, Header, description = "GitHub event (`push`, `ping`)"),
        ("X-Gitlab-Event" = Option<String>, Header, description = "GitLab event (`Push Hook`)")),
    responses((status = 202, body = WebhookAccepted), (status = 200, description = "Ping or other event: nothing triggered", body = WebhookAccepted),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, description = "No webhook secret configured", body = ErrorBody),
        (status = 413, body = ErrorBody)))]
async fn git_webhook(
    State(state): State<AppState>,
    axum::Extension(client): axum::Extension<crate::guard::Client>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    throttled(&state, client, git_push(&state, &headers, body))
        .await
        .into_response()
}

/// Runs a token check and what follows under the limit on failed checks per client: a client
/// past it gets 429 at once; a 401 counts as a failure.
async fn throttled<T: IntoResponse>(
    state: &AppState,
    client: crate::guard::Client,
    f: impl std::future::Future<Output = Result<T, AppError>>,
) -> Response {
    if let Err(wait) = state.throttle.admit(client.ip, std::time::Instant::now()) {
        return crate::auth::throttle::too_many_failures(wait);
    }
    match f.await {
        Ok(v) => v.into_response(),
        Err(e) => {
            if e.status == StatusCode::UNAUTHORIZED {
                state.throttle.failed(client.ip, std::time::Instant::now());
            }
            e.into_response()
        }
    }
}

async fn git_push(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<WebhookAccepted>), AppError> {
    let Some(secret) = state.webhook_secret.as_deref() else {
        return Err(AppError::not_found("the Git webhook is not configured"));
    };
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AppError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "request body too large",
            )
        } else {
            AppError::bad_request("cannot read the request body")
        }
    })?;
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(sig) = h("x-hub-signature-256") {
        let hex_sig = sig
            .strip_prefix("sha256=")
            .ok_or_else(|| AppError::unauthorized("malformed X-Hub-Signature-256"))?;
        let expected = hex::decode(hex_sig)
            .map_err(|_| AppError::unauthorized("malformed X-Hub-Signature-256"))?;
        let mut mac =
            Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(|_| AppError::internal())?;
        mac.update(&body);
        mac.verify_slice(&expected)
            .map_err(|_| AppError::unauthorized("signature does not match"))?;
    } else if let Some(token) = h("x-gitlab-token") {
        if !same_secret(token, secret) {
            return Err(AppError::unauthorized("invalid X-Gitlab-Token"));
        }
    } else {
        return Err(AppError::unauthorized(
            "missing X-Hub-Signature-256 or X-Gitlab-Token",
        ));
    }
    let push = crate::push::read_push(h("x-github-event").or_else(|| h("x-gitlab-event")), &body)
        .map_err(|e| AppError::bad_request(e.to_string()))?;
    let event = push.event;
    if !push.is_push {
        return Ok((
            StatusCode::OK,
            Json(WebhookAccepted {
                event,
                triggered: vec![],
            }),
        ));
    }
    let urls = push.repositories;
    let mut triggered = Vec::new();
    for env in &state.environments {
        if env.wants_push(&urls) {
            env.request_fetch();
            triggered.push(env.name.clone());
        }
    }
    tracing::info!(event = %event, triggered = ?triggered, "Git push webhook");
    Ok((
        StatusCode::ACCEPTED,
        Json(WebhookAccepted { event, triggered }),
    ))
}

/// Takes the audit events the API server's webhook backend posts (an `audit.k8s.io/v1`
/// `EventList`, configured with `--audit-webhook-config-file`) into the environment's index of
/// recent writes; the open drifts of the objects they wrote to name their writers soon after.
/// Authenticated by the environment's own token (`audit.webhook.tokenEnv`), not the API's.
#[utoipa::path(post, path = "/api/v1/environments/{env}/audit", tag = "audit",
    request_body(content = Object, description = "An `audit.k8s.io/v1` `EventList` (only the metadata of each event is read; request and response bodies are skipped)", content_type = "application/json"),
    params(("env" = String, Path, description = "Environment name")),
    responses((status = 200, body = AuditAccepted),
        (status = 400, description = "Not an audit.k8s.io/v1 EventList", body = ErrorBody),
        (status = 401, description = "Missing or wrong token (Bearer, or Basic with the token as the password)", body = ErrorBody),
        (status = 404, description = "No such environment, or no audit webhook configured for it (answered only to a caller holding an audit token)", body = ErrorBody),
        (status = 413, description = "Larger than `audit.webhook.maxBody`", body = ErrorBody),
        (status = 503, description = "The index could not be saved: post again (nothing is indexed twice)", body = ErrorBody)),
    security(("audit_token" = [])))]
async fn audit_webhook(
    State(state): State<AppState>,
    axum::Extension(client): axum::Extension<crate::guard::Client>,
    Path(env): Path<String>,
    req: Request,
) -> Response {
    throttled(&state, client, audit_post(&state, env, req)).await
}

async fn audit_post(
    state: &AppState,
    env: String,
    req: Request,
) -> Result<Json<AuditAccepted>, AppError> {
    // authenticate first, then look the environment up: without a token nobody learns which
    // environments exist. A post for an environment without an audit webhook is checked
    // against every environment's audit tokens (and not counted under its name, which anyone
    // may choose).
    let found = state
        .environment(&env)
        .cloned()
        .filter(|e| e.audit.as_ref().is_some_and(|a| a.webhook));
    let Some(e) = found else {
        let every: Vec<String> = state
            .environments
            .iter()
            .filter_map(|e| e.audit.as_ref().filter(|a| a.webhook))
            .flat_map(|a| a.tokens.iter().cloned())
            .collect();
        if let Err(err) = check_audit_token(req.headers(), &every) {
            tracing::warn!(code = err.code, message = %err.message, "audit post refused");
            return Err(err);
        }
        return Err(AppError::not_found(match state.environment(&env) {
            None => format!("no environment `{env}`"),
            Some(_) => format!(
                "the audit webhook is not configured for environment `{env}` (audit.webhook)"
            ),
        }));
    };
    let settings = e.audit.as_ref().expect("found above with an audit webhook");
    let refuse = |err: AppError| {
        state.metrics.audit(&env, "refused", 1);
        tracing::warn!(environment = %env, code = err.code, message = %err.message, "audit post refused");
        err
    };
    check_audit_token(req.headers(), &settings.tokens).map_err(refuse)?;
    let max = settings.max_body;
    let too_large = || {
        AppError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the audit event list is larger than {max} bytes (audit.webhook.maxBody)"),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(refuse(too_large()));
    }
    let mut body = Vec::with_capacity(declared.map_or(64 * 1024, |n| n as usize));
    let mut stream = req.into_body().into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|_| refuse(AppError::bad_request("cannot read the request body")))?;
        if body.len() + chunk.len() > max {
            return Err(refuse(too_large()));
        }
        body.extend_from_slice(&chunk);
    }
    let events = parse_event_list(&body).map_err(|err| {
        refuse(AppError::new(
            StatusCode::BAD_REQUEST,
            "invalid_audit_events",
            chain(&err),
        ))
    })?;
    let stats = e
        .ingest_audit(&state.scan_context(), &events)
        .await
        .map_err(|err| {
            tracing::warn!(environment = %env, error = %chain(&err), "cannot save the audit index");
            AppError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the audit index could not be saved; post the events again (none is indexed twice)",
            )
        })?;
    Ok(Json(AuditAccepted {
        environment: env,
        received: stats.received,
        indexed: stats.indexed,
        ignored: stats.ignored,
        duplicates: stats.duplicates,
    }))
}

/// Liveness.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// Readiness: the store answers and takes writes, and every environment's sources are healthy.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, body = Ready), (status = 503, description = "Not ready; the checks say why", body = Ready)))]
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Ready>) {
    let mut checks = Vec::new();
    let mut degraded = false;
    let store = match tokio::time::timeout(Duration::from_secs(2), state.store.health()).await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => {
            tracing::warn!(error = %chain(&e), "store health check failed");
            match state.buffer.as_ref().map(|b| b.status()) {
                // detection goes on: writes wait in order for the store
                Some(BufferHealth::Degraded { queued, last_error }) => {
                    degraded = true;
                    Some(format!(
                        "degraded: {queued} writes buffered until the store answers ({last_error})"
                    ))
                }
                _ => Some("store unreachable".to_owned()),
            }
        }
        Err(_) => Some("store did not answer within 2 s".to_owned()),
    };
    checks.push(Check {
        name: "store".into(),
        ok: store.is_none(),
        reason: store,
    });
    for env in &state.environments {
        // with leader election, an environment led elsewhere is its leader's to check
        let elected = env.leadership().is_some();
        if elected && !env.leads() {
            continue;
        }
        let w = env.write_health();
        if w.unwritten > 0 {
            degraded = true;
            checks.push(Check {
                name: format!("{}/writes", env.name),
                ok: false,
                reason: Some(format!(
                    "{} changes kept until the store answers: {}",
                    w.unwritten,
                    w.last_error.unwrap_or_default()
                )),
            });
        }
        let s = env.status();
        for (which, src) in [("git", &s.git), ("live", &s.live)] {
            let reason = match src.up {
                Some(true) => None,
                Some(false) => Some(src.error.clone().unwrap_or_else(|| "down".into())),
                // a replica that just took an environment over stays ready meanwhile
                None if elected => None,
                None => Some("not checked yet (first scan pending)".into()),
            };
            checks.push(Check {
                name: format!("{}/{which}", env.name),
                ok: reason.is_none(),
                reason,
            });
        }
    }
    let ready = checks.iter().all(|c| c.ok);
    let (code, status) = match (ready, degraded) {
        (true, _) => (StatusCode::OK, "ready"),
        (false, true) => (StatusCode::SERVICE_UNAVAILABLE, "degraded"),
        (false, false) => (StatusCode::SERVICE_UNAVAILABLE, "unready"),
    };
    (
        code,
        Json(Ready {
            ready,
            status: status.into(),
            checks,
        }),
    )
}

/// Prometheus metrics (OpenMetrics text).
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "OpenMetrics text exposition", content_type = "application/openmetrics-text")))]
async fn metrics(State(state): State<AppState>) -> Response {
    let body = state.metrics.encode(state.clock.now());
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

/// The OpenAPI document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "This document", content_type = "application/json"),
        (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
async fn openapi_json() -> Response {
    static DOC: OnceLock<String> = OnceLock::new();
    let doc = DOC.get_or_init(|| {
        ApiDoc::openapi()
            .to_pretty_json()
            .unwrap_or_else(|_| "{}".into())
    });
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        doc.clone(),
    )
        .into_response()
}

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        // the environment's own audit token (audit.webhook.tokenEnv), not the API's
        components.add_security_scheme(
            "audit_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The query parameters whose values are names of a core enum: the document gives each the
/// pattern of those names (any ASCII case, or empty for "any"), taken from the enum itself.
struct NamedParams;

/// `(parameter, names)` of the query parameters read with [`parse`].
fn named_params() -> [(&'static str, &'static [&'static str]); 7] {
    use driftguard_core::names::Named;
    [
        ("drift", DriftKind::NAMES),
        ("direction", Direction::NAMES),
        ("severity", Severity::NAMES),
        ("status", DriftStatus::NAMES),
        ("sort", DriftSort::NAMES),
        ("event", EventKind::NAMES),
        ("action", RemediationAction::NAMES),
    ]
}

/// A regular expression (ECMA 262, as JSON Schema reads it) matching `names` in any ASCII
/// case, or the empty string.
fn names_pattern(names: &[&str]) -> String {
    let alternatives: Vec<String> = names
        .iter()
        .map(|n| {
            n.chars()
                .map(|c| {
                    if c.is_ascii_alphabetic() {
                        format!("[{}{}]", c.to_ascii_lowercase(), c.to_ascii_uppercase())
                    } else if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                        c.to_string()
                    } else {
                        format!("\\{c}")
                    }
                })
                .collect()
        })
        .collect();
    format!("^(|{})$", alternatives.join("|"))
}

/// The grammar of an object reference in the API, as [`driftguard_core::id::ObjectRef::parse`]
/// reads it: `[env:]Kind[.group]/[namespace/]name`, every part non-empty; before the first `/`
/// a `:` ends the environment.
/// Empty stands for "any object".
pub const OBJECT_REF_PATTERN: &str =
    "^(?:(?:[^:/]+:[^/.]+(?:\\.[^/]+)?|[^:/.]+(?:\\.[^:/]+)?)/(?:[^/]+/)?[^/]+)?$";

/// The same without the environment: a path that already names it
/// (`/environments/{env}/objects/{object}`).
pub const OBJECT_IN_ENV_PATTERN: &str = "^[^:/.]+(?:\\.[^:/]+)?/(?:[^/]+/)?[^/]+$";

impl utoipa::Modify for NamedParams {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::ParameterIn;
        use utoipa::openapi::{RefOr, Schema};
        let named = named_params();
        for item in openapi.paths.paths.values_mut() {
            for op in [&mut item.get, &mut item.post].into_iter().flatten() {
                for p in op.parameters.iter_mut().flatten() {
                    if p.name == "object" {
                        let pattern = match p.parameter_in {
                            ParameterIn::Path => OBJECT_IN_ENV_PATTERN,
                            _ => OBJECT_REF_PATTERN,
                        };
                        if let Some(RefOr::T(Schema::Object(o))) = p.schema.as_mut() {
                            o.pattern = Some(pattern.to_owned());
                        }
                        continue;
                    }
                    if !matches!(p.parameter_in, ParameterIn::Query) {
                        continue;
                    }
                    let Some((_, names)) = named.iter().find(|(n, _)| *n == p.name) else {
                        continue;
                    };
                    if let Some(RefOr::T(Schema::Object(o))) = p.schema.as_mut() {
                        o.pattern = Some(names_pattern(names));
                    }
                }
            }
        }
    }
}

/// The OpenAPI description of the API, generated from the handlers and DTOs.
#[derive(OpenApi)]
#[openapi(
    info(title = "DriftGuard API", description = "Configuration drift between Git and Kubernetes clusters. Every error is answered as `{\"error\": {\"code\", \"message\"}}`."),
    paths(list_environments, get_environment, scan_now, object_history, list_drifts, get_drift,
        get_remediation, remediate, pause_remediation, resume_remediation, list_events,
        event_stream, list_scans, git_webhook, audit_webhook, healthz, readyz, metrics, openapi_json),
    components(schemas(ErrorBody, ErrorDetail, ObjectRef, DriftSummary, DriftDetail, FieldDiffDto,
        FindingDto, RemediationDto, PlanStepDto, FieldChangeDto, RemediateRequest, RemediateAnswer, RemediationEventDto, RemediationSwitch,
        CommitDto, FieldOwnerDto, WriterDto, AttributionDto, ProvenanceDto, RenderingDto, DriftPage, EventDto, EventPage,
        CountsDto, ScanDto, ScanList, SourceDto, EnvironmentDto, EnvironmentList, LeaderDto, RecordDto,
        ObjectHistory, Health, Check, Ready, WebhookAccepted, AuditAccepted)),
    modifiers(&BearerAuth, &NamedParams),
)]
pub struct ApiDoc;
