//! Environments, their scans and object histories, and scanning now.

use super::*;

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
pub(super) async fn list_scans(
    Visible(state): Visible,
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
pub(super) async fn list_environments(
    Visible(state): Visible,
) -> Result<Json<EnvironmentList>, AppError> {
    queries::environments(&state).await.map(Json)
}

/// One environment.
#[utoipa::path(get, path = "/api/v1/environments/{env}", tag = "environments",
    params(("env" = String, Path, description = "Environment name")),
    responses((status = 200, body = EnvironmentDto), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn get_environment(
    Visible(state): Visible,
    Path(env): Path<String>,
) -> Result<Json<EnvironmentDto>, AppError> {
    let e = queries::environment(&state, &env)?;
    queries::environment_dto(&state, &e).await.map(Json)
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
pub(super) async fn scan_now(
    Visible(state): Visible,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(env): Path<String>,
) -> Result<Json<ScanDto>, AppError> {
    queries::scan_now(&state, &caller, &env).await.map(Json)
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
pub(super) async fn object_history(
    Visible(state): Visible,
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
