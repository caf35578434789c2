//! Webhooks: Git pushes (GitHub, GitLab, Gitea) and the API server's audit events.

use super::*;

/// Checks an audit post's token against `tokens` (each compared in constant time): as
/// `Authorization: Bearer <token>`, or as the password of `Authorization: Basic` (any user
/// name). The API server's webhook client sends a kubeconfig's `token` only over HTTPS; over
/// plain HTTP it sends the credentials of the server URL's user info
/// (`http://driftguard:<token>@127.0.0.1:8080/...`) as Basic, and masks that password in the
/// errors it logs.
pub(super) fn check_audit_token(headers: &HeaderMap, tokens: &[String]) -> Result<(), AppError> {
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
pub(super) async fn git_webhook(
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
pub(super) async fn throttled<T: IntoResponse>(
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

pub(super) async fn git_push(
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
    for env in state.environments().iter() {
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
pub(super) async fn audit_webhook(
    State(state): State<AppState>,
    axum::Extension(client): axum::Extension<crate::guard::Client>,
    Path(env): Path<String>,
    req: Request,
) -> Response {
    throttled(&state, client, audit_post(&state, env, req)).await
}

pub(super) async fn audit_post(
    state: &AppState,
    env: String,
    req: Request,
) -> Result<Json<AuditAccepted>, AppError> {
    // authenticate first, then look the environment up: without a token nobody learns which
    // environments exist. A post for an environment without an audit webhook is checked
    // against every environment's audit tokens (and not counted under its name, which anyone
    // may choose).
    // a client certificate the configured CA signed (server.tls.clientCaFile) stands in
    // for the token: the API server's audit webhook kubeconfig can present one
    let by_certificate = req
        .extensions()
        .get::<crate::tls::ClientCertificate>()
        .is_some();
    let found = state
        .environment(&env)
        .filter(|e| e.audit.as_ref().is_some_and(|a| a.webhook));
    let Some(e) = found else {
        if by_certificate {
            return Err(AppError::not_found(format!(
                "no audit webhook for environment `{env}` (audit.webhook)"
            )));
        }
        let every: Vec<String> = state
            .environments()
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
    if !by_certificate {
        check_audit_token(req.headers(), &settings.tokens).map_err(refuse)?;
    }
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
