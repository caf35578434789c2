//! The whole HTTP application, composed once: the API ([`crate::api`]), the dashboard
//! ([`crate::web`]) and MCP ([`crate::mcp`]) side by side, behind what every request passes
//! (the guard, limits on the URI, the time and the body, a panic answered with the error
//! shape), with the one error shape for a route or method that does not exist.

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;

use crate::auth::{authenticate, Needs};
use crate::config::TokenScope;
use crate::error::AppError;
use crate::state::AppState;
use crate::{api, guard, listener, mcp, web};

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    // MCP (streamable HTTP) behind the same authentication as the API: reading; what a tool
    // does beyond is the tool's to check
    let mcp = Router::new()
        .nest_service("/mcp", mcp::http_service(state.clone()))
        .layer(Needs(TokenScope::Read))
        .layer(middleware::from_fn_with_state(state.clone(), authenticate));
    Router::new()
        .merge(api::routes(state.clone()))
        .merge(web::routes(state.clone()))
        .merge(mcp)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.body_limit))
        .layer(middleware::from_fn_with_state(state.clone(), time_limit))
        .layer(middleware::from_fn(uri_limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            guard::requests,
        ))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(on_panic))
        .with_state(state)
}

fn on_panic(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    AppError::internal().into_response()
}

async fn not_found() -> AppError {
    AppError::not_found("no such route")
}

async fn method_not_allowed() -> AppError {
    AppError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this route",
    )
}

/// Refuses a URI longer than [`listener::MAX_URI`] with the one error shape (a first request
/// line that long never reaches here: the listener answers it).
async fn uri_limit(req: Request, next: Next) -> Response {
    let len = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if len > listener::MAX_URI {
        return AppError::new(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!("the request URI is longer than {} bytes", listener::MAX_URI),
        )
        .into_response();
    }
    next.run(req).await
}

async fn time_limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(state.request_timeout, next.run(req)).await {
        Ok(r) => r,
        Err(_) => AppError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!(
                "the request took longer than {} ms",
                state.request_timeout.as_millis()
            ),
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::Router;
    use driftguard_core::memory::MemoryStore;
    use tower::ServiceExt;

    use super::router;
    use crate::config::{ScopedToken, TokenScope};
    use crate::metrics::Metrics;
    use crate::state::AppState;

    async fn status(app: &Router, method: &str, uri: &str, token: &str) -> StatusCode {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            // the scheme in any case (RFC 7235)
            .header("authorization", format!("BEARER {token}"))
            .header("content-type", "application/json")
            .body(Body::from("{}"))
            .expect("request");
        app.clone().oneshot(req).await.expect("answers").status()
    }

    #[tokio::test]
    async fn each_route_asks_for_the_scope_it_declares() {
        let only = |scope: TokenScope| ScopedToken {
            name: format!("{scope:?}"),
            token: format!("token-{scope:?}"),
            scopes: vec![scope],
            grants: Vec::new(),
        };
        let scopes = [TokenScope::Read, TokenScope::Scan, TokenScope::Remediate];
        // a fresh one where failed checks are counted
        let app = || {
            let state = AppState::builder(
                Arc::new(MemoryStore::new()),
                vec![],
                Arc::new(Metrics::new()),
            )
            .scoped_tokens(scopes.iter().map(|s| only(*s)).collect())
            .build();
            router(state)
        };
        let tokens = app();
        for (method, uri, needs) in [
            ("GET", "/api/v1/environments", TokenScope::Read),
            ("GET", "/api/v1/environments/dev", TokenScope::Read),
            ("POST", "/api/v1/environments/dev/scan", TokenScope::Scan),
            (
                "GET",
                "/api/v1/environments/dev/objects/Pod/a/b",
                TokenScope::Read,
            ),
            ("GET", "/api/v1/drifts", TokenScope::Read),
            ("GET", "/api/v1/drifts/e1", TokenScope::Read),
            ("GET", "/api/v1/drifts/e1/remediation", TokenScope::Read),
            ("POST", "/api/v1/drifts/e1/remediate", TokenScope::Remediate),
            ("POST", "/api/v1/remediation/pause", TokenScope::Remediate),
            ("POST", "/api/v1/remediation/resume", TokenScope::Remediate),
            ("GET", "/api/v1/events", TokenScope::Read),
            ("GET", "/api/v1/scans", TokenScope::Read),
            ("GET", "/api/v1/openapi.json", TokenScope::Read),
            ("POST", "/mcp", TokenScope::Read),
        ] {
            for scope in scopes {
                let got = status(&tokens, method, uri, &format!("token-{scope:?}")).await;
                if scope == needs {
                    assert!(
                        got != StatusCode::FORBIDDEN && got != StatusCode::UNAUTHORIZED,
                        "{method} {uri} with {scope:?}: {got}"
                    );
                } else {
                    assert_eq!(got, StatusCode::FORBIDDEN, "{method} {uri} with {scope:?}");
                }
            }
            assert_eq!(
                status(&app(), method, uri, "wrong").await,
                StatusCode::UNAUTHORIZED,
                "{method} {uri}"
            );
        }
        // a method a route does not take is answered before authentication
        assert_eq!(
            status(&app(), "GET", "/api/v1/environments/dev/scan", "wrong").await,
            StatusCode::METHOD_NOT_ALLOWED
        );
    }
}
