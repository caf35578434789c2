//! `POST /api/v1/preview`: what merging a pull request would change in each environment.

use axum::extract::rejection::JsonRejection;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::visible::Visible;
use crate::auth::Caller;
use crate::error::{AppError, ErrorBody};
use crate::preview::{markdown, FailOn, PreviewRequest};
use crate::queries;

/// What to preview.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PreviewBody {
    /// The revision merged into (branch, tag, full ref name or commit id).
    pub base: String,
    /// The revision merged (the pull request's commit id, `refs/pull/7/head`, a branch). A ref
    /// or commit the server has not fetched yet is fetched.
    pub head: String,
    /// Environments (default: every one the caller may scan in).
    #[serde(default)]
    pub environments: Vec<String>,
    /// What makes `fails` true: `overwrites`, `conflicts`, `high`.
    #[serde(default)]
    pub fail_on: Vec<FailOn>,
}

/// A preview.
#[derive(Debug, Serialize, ToSchema)]
pub struct PreviewAnswer {
    /// Per environment touched: each object and field the merge writes, classified
    /// (`overwrites`, `adopts`, `conflicts`, `new`; objects `created`, `pruned`, `adopted`),
    /// with the hand changes it would undo (who, when) and the risk findings of the result;
    /// the environments left out and why. As `driftguard preview -o json` prints it.
    #[schema(value_type = Object)]
    pub report: crate::preview::PreviewReport,
    /// The report as a pull-request comment (Markdown, a hidden marker on the first line).
    pub markdown: String,
    /// Whether the report holds what `failOn` names.
    pub fails: bool,
}

/// What merging a pull request would change in each environment, classified against the drift
/// history. Reads Git, the cluster and the store; writes nothing. Needs the `scan` scope (the
/// operator role) in each environment.
#[utoipa::path(post, path = "/api/v1/preview", tag = "preview",
    request_body = PreviewBody,
    responses((status = 200, body = PreviewAnswer), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "No such environment or revision", body = ErrorBody),
        (status = 502, description = "Git or the cluster could not be read", body = ErrorBody),
        (status = 503, description = "The store cannot be read", body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn preview(
    Visible(state): Visible,
    axum::Extension(caller): axum::Extension<Caller>,
    body: Result<Json<PreviewBody>, JsonRejection>,
) -> Result<Json<PreviewAnswer>, AppError> {
    let Json(body) =
        body.map_err(|e| AppError::bad_request(format!("invalid body: {}", e.body_text())))?;
    let request = PreviewRequest {
        base: body.base,
        head: body.head,
        environments: body.environments,
    };
    let report = queries::preview::preview(&state, &caller, &request).await?;
    Ok(Json(PreviewAnswer {
        markdown: markdown::render(&report),
        fails: report.fails(&body.fail_on),
        report,
    }))
}
