//! Sign-in with OpenID Connect on the dashboard ([`crate::auth::oidc`]):
//! `GET /auth/oidc/login?next=` sends the browser to the provider, `GET /auth/oidc/callback`
//! takes it back, opens a session and goes on to `next`. A person the provider signed in but
//! whom DriftGuard does not let in (no role binding, an e-mail domain not allowed) gets a 403
//! page saying why; every failed sign-in is counted in the history of people's actions, with
//! its reason.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use axum_extra::extract::CookieJar;

use super::{html, local_path, Layout, NextParam, WebError};
use crate::auth::oidc::{self, Callback, SignInError};
use crate::auth::session;
use crate::error::AppError;
use crate::guard::Client;
use crate::state::AppState;

/// The base URL the provider sends people back to: `server.oidc.redirectBaseUrl`, else
/// `server.publicUrl`, else the URL the browser used (its `Host`, the scheme as the guard
/// found it). The provider accepts only the redirect URIs registered with it.
pub(super) fn base_url(state: &AppState, client: &Client, headers: &HeaderMap) -> Option<String> {
    let configured = state
        .oidc
        .as_ref()
        .and_then(|o| o.settings.redirect_base_url.clone())
        .or_else(|| state.public_url.clone());
    if configured.is_some() {
        return configured;
    }
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let valid = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    let scheme = if client.https { "https" } else { "http" };
    valid.then(|| format!("{scheme}://{host}"))
}

/// `GET /auth/oidc/login`: to the provider.
pub(super) async fn begin(
    State(state): State<AppState>,
    Extension(client): Extension<Client>,
    headers: HeaderMap,
    q: Result<Query<NextParam>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, WebError> {
    let Some(oidc) = state.oidc.clone() else {
        return Err(WebError(AppError::not_found(
            "single sign-on is not configured",
        )));
    };
    let next = local_path(q.as_ref().ok().and_then(|Query(p)| p.next.as_deref()));
    let base = base_url(&state, &client, &headers)
        .ok_or_else(|| AppError::bad_request("the request has no usable Host"))?;
    match oidc
        .begin(client.ip, format!("{base}{}", oidc::CALLBACK), next)
        .await
    {
        Ok((id, url)) => {
            let cookies = CookieJar::new().add(oidc::cookie(id, client.https));
            Ok((cookies, Redirect::to(url.as_str())).into_response())
        }
        Err(e) => {
            tracing::warn!(error = %driftguard_core::error::chain(&e), "single sign-on cannot begin");
            Ok(refused(&state, &client, &e).await)
        }
    }
}

/// A page that goes on to `next` by itself (a `refresh`, no script), with a link to it.
#[derive(Template)]
#[template(path = "onward.html")]
pub(super) struct Onward {
    pub(super) layout: Layout,
    pub(super) heading: String,
    pub(super) next: String,
    pub(super) link: String,
}

#[derive(Template)]
#[template(path = "refused.html")]
struct Refused {
    layout: Layout,
    status: u16,
    heading: String,
    reason: String,
}

/// `GET /auth/oidc/callback`: the provider's answer; a session, or a page saying why not.
pub(super) async fn callback(
    State(state): State<AppState>,
    Extension(client): Extension<Client>,
    cookies: CookieJar,
    back: Result<Query<Callback>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, WebError> {
    let Some(oidc) = state.oidc.clone() else {
        return Err(WebError(AppError::not_found(
            "single sign-on is not configured",
        )));
    };
    let back = back.map(|Query(b)| b).unwrap_or_default();
    let id = cookies
        .get(oidc::cookie_name(client.https))
        .map(|c| c.value().to_owned());
    let now = state.clock.now().timestamp();
    // the sign-in cookie has served, whatever the outcome
    let cookies = CookieJar::new().add(oidc::removal(client.https));
    match oidc.finish(id.as_deref(), &back, now).await {
        Ok((caller, next)) => {
            tracing::info!(caller = %caller.name, "dashboard sign-in with OpenID Connect");
            let (sid, _) = state.sessions.open(true, caller).map_err(|e| {
                tracing::error!(error = %driftguard_core::error::chain(&e), "no session");
                AppError::internal()
            })?;
            let cookies = cookies.add(session::cookie(sid, client.https));
            // a page of this site goes on to `next`: the session cookie is `SameSite=Strict`,
            // and a browser does not send it on a redirect chain that began at the provider
            let page = html(&Onward {
                layout: Layout::plain("Signed in"),
                heading: "Signed in".into(),
                next,
                link: "Continue to DriftGuard".into(),
            })?;
            Ok((cookies, page).into_response())
        }
        Err(e) => Ok((cookies, refused(&state, &client, &e).await).into_response()),
    }
}

/// The page of a failed sign-in, the failure logged (without any secret) and counted.
async fn refused(state: &AppState, client: &Client, e: &SignInError) -> Response {
    let status = match e {
        SignInError::Refused(_) => StatusCode::FORBIDDEN,
        SignInError::Provider(_) => StatusCode::BAD_GATEWAY,
        SignInError::Random => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    tracing::warn!(client = ?client.ip, reason = %e.reason(), error = %driftguard_core::error::chain(e),
        "dashboard sign-in with OpenID Connect refused");
    crate::queries::actions::sign_in_failed_because(
        state,
        client.ip,
        &format!("oidc: {}", e.reason()),
    )
    .await;
    let heading = match e {
        SignInError::Refused(_) => "You may not use this DriftGuard",
        _ => "Sign-in failed",
    };
    let page = Refused {
        layout: Layout::plain(heading),
        status: status.as_u16(),
        heading: heading.to_owned(),
        reason: e.to_string(),
    };
    match html(&page) {
        Ok(p) => (status, p).into_response(),
        Err(e) => e.into_response(),
    }
}
