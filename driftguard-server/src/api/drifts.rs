//! Drift episodes: list, one, its remediation plan and remediation, the kill switch.

use super::*;

/// Drift episodes, filtered and paged.
#[utoipa::path(get, path = "/api/v1/drifts", tag = "drifts", params(DriftFilter),
    responses((status = 200, body = DriftPage), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn list_drifts(
    Visible(state): Visible,
    q: Result<Query<DriftFilter>, QueryRejection>,
) -> Result<Response, AppError> {
    let Query(p) = q.map_err(query_error)?;
    let query = p.query()?;
    let acknowledged = p.acknowledged()?;
    queries::known_env(&state, &query.environment)?;
    let key = format!(
        "drifts:{}:{acknowledged:?}",
        serde_json::to_string(&query).map_err(|_| AppError::internal())?
    );
    if let Some(body) = state.cache.get(&key) {
        return Ok(json_bytes(body));
    }
    let generation = state.cache.generation();
    let page = queries::drifts(&state, &query, acknowledged).await?;
    let body = serde_json::to_vec(&page).map_err(|_| AppError::internal())?;
    let body = Bytes::from(body);
    state.cache.put(key, generation, body.clone());
    Ok(json_bytes(body))
}

/// One drift episode with its field diff and attribution.
#[utoipa::path(get, path = "/api/v1/drifts/{episode}", tag = "drifts",
    params(("episode" = String, Path, description = "Episode id")),
    responses((status = 200, body = DriftDetail), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn get_drift(
    Visible(state): Visible,
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
pub(super) async fn get_remediation(
    Visible(state): Visible,
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
pub(super) async fn remediate(
    Visible(state): Visible,
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
pub(super) async fn pause_remediation(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
) -> Result<Json<RemediationSwitch>, AppError> {
    everywhere(&caller)?;
    state
        .remediation_paused
        .store(true, std::sync::atomic::Ordering::SeqCst);
    tracing::warn!(by = %caller.name, "remediation policies paused through the API");
    Ok(Json(RemediationSwitch { paused: true }))
}

/// Lets the remediation policies act again. Needs the `remediate` scope.
#[utoipa::path(post, path = "/api/v1/remediation/resume", tag = "drifts",
    responses((status = 200, body = RemediationSwitch), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn resume_remediation(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
) -> Result<Json<RemediationSwitch>, AppError> {
    everywhere(&caller)?;
    state
        .remediation_paused
        .store(false, std::sync::atomic::Ordering::SeqCst);
    tracing::info!(by = %caller.name, "remediation policies resumed through the API");
    Ok(Json(RemediationSwitch { paused: false }))
}

/// The kill switch stops every environment's policies: only a caller who may remediate
/// everywhere (its own scope, or an admin) may turn it.
fn everywhere(caller: &Caller) -> Result<(), AppError> {
    if caller.may_everywhere(Remediate) {
        return Ok(());
    }
    Err(AppError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        "the kill switch stops every environment's policies: it needs the `remediate` scope or the admin role",
    ))
}

/// Acknowledges drifts: the episodes named, or every open drift of an environment (the
/// baseline). Each stays open and visible, marked; it is not announced again and the CLI's
/// guardrail leaves it out, until it changes, ends or the expiry passes. Needs the `scan`
/// scope.
#[utoipa::path(post, path = "/api/v1/acknowledgements", tag = "drifts",
    request_body = AcknowledgeRequest,
    responses((status = 200, body = AcknowledgementList), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn acknowledge(
    Visible(state): Visible,
    axum::Extension(caller): axum::Extension<Caller>,
    body: Result<Json<AcknowledgeRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<AcknowledgementList>, AppError> {
    let Json(body) =
        body.map_err(|e| AppError::bad_request(format!("invalid body: {}", e.body_text())))?;
    let selection = match (body.episodes.is_empty(), body.environment) {
        (false, None) => queries::ack::Selection::Episodes(body.episodes),
        (true, Some(env)) if !env.is_empty() => {
            queries::environment(&state, &env)?;
            queries::ack::Selection::Open(driftguard_core::query::DriftQuery {
                environment: Some(env),
                ..driftguard_core::query::DriftQuery::default()
            })
        }
        _ => {
            return Err(AppError::bad_request(
                "give either `episodes` or `environment`",
            ))
        }
    };
    let until = queries::ack::parse_until(body.until.as_deref(), state.clock.now())?;
    let items = queries::ack::acknowledge(&state, &caller, &selection, &body.reason, until).await?;
    Ok(Json(AcknowledgementList { items }))
}

/// Filters of the acknowledgement list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AcknowledgementParams {
    /// Environment (absent: all).
    pub environment: Option<String>,
}

/// The acknowledgements, each as it stands for its drift now (`holds` or `lapsed`, and why).
#[utoipa::path(get, path = "/api/v1/acknowledgements", tag = "drifts",
    params(AcknowledgementParams),
    responses((status = 200, body = AcknowledgementList), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn list_acknowledgements(
    Visible(state): Visible,
    q: Result<Query<AcknowledgementParams>, QueryRejection>,
) -> Result<Json<AcknowledgementList>, AppError> {
    let Query(p) = q.map_err(query_error)?;
    let env = p.environment.filter(|e| !e.is_empty());
    let items = queries::ack::list(&state, env.as_deref()).await?;
    Ok(Json(AcknowledgementList { items }))
}

/// Withdraws a drift's acknowledgement: the drift is announced again. Needs the `scan` scope.
#[utoipa::path(delete, path = "/api/v1/drifts/{episode}/acknowledgement", tag = "drifts",
    params(("episode" = String, Path, description = "Episode id")),
    responses((status = 200, body = AcknowledgementDto), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn withdraw_acknowledgement(
    Visible(state): Visible,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(episode): Path<String>,
) -> Result<Json<AcknowledgementDto>, AppError> {
    queries::ack::withdraw(&state, &caller, &episode)
        .await
        .map(Json)
}
