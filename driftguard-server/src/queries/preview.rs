//! The preview of a pull request on a running server (`POST /api/v1/preview`): the caller's
//! environments (those it may scan in), each through its running scanner
//! ([`crate::preview::of_scanners`]).

use std::sync::Arc;

use axum::http::StatusCode;
use driftguard_core::error::chain;
use driftguard_core::ports::SourceError;
use driftguard_core::preview::PreviewError as CorePreviewError;

use crate::auth::Caller;
use crate::config::TokenScope;
use crate::error::AppError;
use crate::preview::{of_scanners, PreviewError, PreviewReport, PreviewRequest};
use crate::state::AppState;

/// Previews `request` in the environments it names (each one the caller may scan in), else
/// in every environment the caller may scan in.
pub async fn preview(
    state: &AppState,
    caller: &Caller,
    request: &PreviewRequest,
) -> Result<PreviewReport, AppError> {
    caller.may(TokenScope::Scan)?;
    for (what, value) in [("base", &request.base), ("head", &request.head)] {
        if value.trim().is_empty() {
            return Err(AppError::bad_request(format!("`{what}` is required")));
        }
    }
    let mut scanners = Vec::new();
    if request.environments.is_empty() {
        for e in state.environments().iter() {
            if caller.may_in(TokenScope::Scan, &e.name) {
                scanners.push(Arc::clone(&e.scanner));
            }
        }
    } else {
        for name in &request.environments {
            let e = super::environment(state, name)?;
            caller.may_in_env(TokenScope::Scan, name)?;
            scanners.push(Arc::clone(&e.scanner));
        }
    }
    if scanners.is_empty() {
        return Err(AppError::bad_request(
            "no environment to preview: none the caller may scan in",
        ));
    }
    of_scanners(&scanners, request).await.map_err(answer)
}

fn answer(e: PreviewError) -> AppError {
    let message = chain(&e);
    match e {
        PreviewError::NoEnvironment(_) => AppError::not_found(message),
        PreviewError::NoGitEnvironment => AppError::bad_request(message),
        PreviewError::Read(CorePreviewError::Git {
            source: SourceError::NotFound { .. },
            ..
        }) => AppError::new(StatusCode::NOT_FOUND, "unknown_revision", message),
        PreviewError::Read(CorePreviewError::Store { .. }) => AppError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            message,
        ),
        _ => AppError::new(StatusCode::BAD_GATEWAY, "preview_failed", message),
    }
}
