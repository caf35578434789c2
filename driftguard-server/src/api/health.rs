//! Liveness, readiness, metrics and the OpenAPI document.

use super::*;

/// Liveness.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Health)))]
pub(super) async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// Readiness: the store answers and takes writes, and every environment's sources are healthy.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, body = Ready), (status = 503, description = "Not ready; the checks say why", body = Ready)))]
pub(super) async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Ready>) {
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
    for env in state.environments().iter() {
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
pub(super) async fn metrics(State(state): State<AppState>) -> Response {
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
pub(super) async fn openapi_json() -> Response {
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
