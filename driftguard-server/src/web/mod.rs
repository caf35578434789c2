//! The web dashboard: server-rendered pages at `/` on the API's listener, behind the same
//! tokens.
//!
//! Pages are askama templates (`templates/`), checked and compiled with the binary: a
//! template that names a missing field does not build, and rendering is plain Rust (fast, no
//! template files at run time). A little plain JavaScript (`assets/app.js`) keeps open pages
//! live from `GET /api/v1/events/stream`; everything else works without it. Styles, script and
//! icon are embedded ([`assets`]); nothing is fetched from elsewhere.
//!
//! The dashboard holds no rules: filters parse into the core's `DriftQuery` exactly as the
//! API's do, objects are found with the API's lookup (the core's `ObjectRef`), and the
//! environments' status is the API's.
//!
//! Security: with tokens configured, a sign-in form exchanges a token for an HttpOnly session
//! cookie ([`crate::auth::session`]); state-changing forms carry the session's CSRF token and
//! must come from this origin; every page is sent with a strict Content-Security-Policy (no
//! inline script or style), `frame-ancestors 'none'`, `X-Frame-Options`,
//! `X-Content-Type-Options`.

pub mod assets;
pub mod chart;
mod pages;
mod remediate;
mod sso;
pub mod view;

use askama::Template;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use axum_extra::extract::CookieJar;
use serde::Deserialize;

use crate::auth::{same_secret, session, Caller};
use crate::config::TokenScope;
use crate::error::AppError;
use crate::guard::Client;
use crate::state::AppState;

/// The Content-Security-Policy of every dashboard answer: only this origin's files, no inline
/// script or style, no framing, forms only to this origin.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
    connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The dashboard's routes (merged into [`crate::router()`]).
pub fn routes(state: AppState) -> Router<AppState> {
    let pages = Router::new()
        .route("/", get(pages::overview))
        .route("/drifts", get(pages::drifts))
        .route("/drifts/remediate", post(remediate::remediate))
        .route("/drifts/{episode}", get(pages::drift))
        .route("/drifts/{episode}/acknowledge", post(pages::acknowledge))
        .route("/objects/{env}/{*object}", get(pages::object))
        .route("/events", get(pages::events))
        .route("/scans", get(pages::scans))
        .route("/environments/{env}/scan", post(pages::scan_now))
        .route("/logout", post(logout))
        .route_layer(middleware::from_fn_with_state(state, viewer));
    Router::new()
        .merge(pages)
        .route("/login", get(login_form).post(login))
        .route("/auth/oidc/login", get(sso::begin))
        .route("/auth/oidc/callback", get(sso::callback))
        .route("/assets/{name}", get(assets::serve))
        .layer(middleware::from_fn(security_headers))
}

async fn security_headers(req: Request, next: Next) -> Response {
    let is_asset = req.uri().path().starts_with("/assets/");
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    if !is_asset {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// Who is looking at a page: their session's CSRF token and what their token may do.
#[derive(Clone, Debug)]
pub struct Viewer {
    /// The CSRF token forms send back.
    pub csrf: String,
    /// Whether a sign-out button is shown (tokens are configured).
    pub signed_in: bool,
    /// Who signed in and the token's scopes (without tokens: read and scan).
    pub caller: Caller,
}

impl Viewer {
    /// Whether the viewer's token has `scope` (a page shows the buttons it allows).
    pub fn may(&self, scope: TokenScope) -> bool {
        self.caller.may(scope).is_ok()
    }

    /// A 403 page unless the viewer's token has `scope`.
    pub fn require(&self, scope: TokenScope) -> Result<(), WebError> {
        self.caller.may(scope).map_err(WebError)
    }
}

/// Whether the request came over HTTPS (see [`crate::guard::Client`]).
fn secure(req_extensions: &axum::http::Extensions) -> bool {
    req_extensions.get::<Client>().is_some_and(|c| c.https)
}

/// Lets a page through with a session: with tokens, one opened by signing in (otherwise a
/// page asks to sign in); without tokens, any session, opened on the first visit.
async fn viewer(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let https = secure(req.extensions());
    let cookie = session::cookie_value(&CookieJar::from_headers(req.headers()), https);
    let found = cookie.as_deref().and_then(|id| state.sessions.get(id));
    let open = !state.auth_required();
    match found {
        Some(s) if s.signed_in || open => {
            req.extensions_mut().insert(Viewer {
                csrf: s.csrf,
                signed_in: !open,
                caller: state.resolved(s.caller),
            });
            next.run(req).await
        }
        _ if open => {
            let (id, s) = match state.sessions.open(false, Caller::anonymous()) {
                Ok(v) => v,
                Err(e) => {
                    tracing::error!(error = %driftguard_core::error::chain(&e), "no session");
                    return WebError(AppError::internal()).into_response();
                }
            };
            req.extensions_mut().insert(Viewer {
                csrf: s.csrf,
                signed_in: false,
                caller: s.caller,
            });
            let resp = next.run(req).await;
            (CookieJar::new().add(session::cookie(id, https)), resp).into_response()
        }
        _ if req.method() == Method::GET || req.method() == Method::HEAD => {
            let here = req
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned();
            Redirect::to(&format!("/login{}", view::query_string(&[("next", &here)])))
                .into_response()
        }
        _ => WebError(AppError::unauthorized(
            "sign in first (your session has ended)",
        ))
        .into_response(),
    }
}

/// Whether a state-changing request comes from this origin: a browser's `Origin` (or, without
/// it, `Sec-Fetch-Site`) must name this host.
fn same_origin(headers: &HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|h| h.to_str().ok()) {
        let bare = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        return matches!((bare, host), (Some(o), Some(h)) if o == h);
    }
    match headers.get("sec-fetch-site").and_then(|h| h.to_str().ok()) {
        Some(site) => site == "same-origin" || site == "none",
        // neither header: not a browser's cross-site request (browsers send Origin on POST)
        None => true,
    }
}

/// Checks a form's CSRF token and origin.
fn check_csrf(viewer: &Viewer, headers: &HeaderMap, token: &str) -> Result<(), WebError> {
    if !same_origin(headers) {
        return Err(WebError(AppError::new(
            StatusCode::FORBIDDEN,
            "cross_site",
            "cross-site requests are refused",
        )));
    }
    if !same_secret(&viewer.csrf, token) {
        return Err(WebError(AppError::new(
            StatusCode::FORBIDDEN,
            "csrf",
            "the form has expired: reload the page and try again",
        )));
    }
    Ok(())
}

/// A form that only carries its CSRF token.
#[derive(Debug, Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// An error shown as a page (the API's error, in HTML).
#[derive(Debug)]
pub struct WebError(pub AppError);

impl From<AppError> for WebError {
    fn from(e: AppError) -> Self {
        WebError(e)
    }
}

impl From<driftguard_core::ports::StoreError> for WebError {
    fn from(e: driftguard_core::ports::StoreError) -> Self {
        WebError(AppError::from(e))
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    layout: Layout,
    status: u16,
    reason: String,
    message: String,
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let e = self.0;
        let page = ErrorPage {
            layout: Layout::plain(e.status.canonical_reason().unwrap_or("Error")),
            status: e.status.as_u16(),
            reason: e.status.canonical_reason().unwrap_or("Error").to_owned(),
            message: e.message,
        };
        match page.render() {
            Ok(html) => (e.status, Html(html)).into_response(),
            Err(_) => (e.status, "error").into_response(),
        }
    }
}

/// A link of the main navigation.
#[derive(Clone, Debug)]
pub struct NavItem {
    /// Text.
    pub label: &'static str,
    /// Target.
    pub href: &'static str,
    /// Whether it is the page shown.
    pub current: bool,
}

/// What every page's frame needs.
#[derive(Clone, Debug)]
pub struct Layout {
    /// The page's title.
    pub title: String,
    /// The main navigation (empty on the sign-in page).
    pub nav: Vec<NavItem>,
    /// The CSRF token of the sign-out form.
    pub csrf: String,
    /// Whether to show the sign-out button.
    pub sign_out: bool,
    /// Who is signed in (`user:<e-mail>`, `token:<name>`), shown beside it.
    pub who: String,
    /// Whether the page follows the live feed.
    pub live: bool,
    /// Whether the viewer's token may ask for scans (the Scan now buttons).
    pub may_scan: bool,
    /// Whether the viewer may remediate: the token has the `remediate` scope and this server
    /// remediates (the preview buttons).
    pub may_remediate: bool,
    /// Stylesheet URL.
    pub css: &'static str,
    /// Script URL.
    pub js: &'static str,
    /// Icon URL.
    pub icon: &'static str,
}

impl Layout {
    /// The frame of a page of the dashboard, `current` being its navigation entry.
    pub fn page(
        title: impl Into<String>,
        current: &str,
        viewer: &Viewer,
        state: &AppState,
    ) -> Layout {
        let nav = [
            ("Overview", "/"),
            ("Drifts", "/drifts"),
            ("Events", "/events"),
            ("Scans", "/scans"),
        ]
        .into_iter()
        .map(|(label, href)| NavItem {
            label,
            href,
            current: href == current,
        })
        .collect();
        Layout {
            title: title.into(),
            nav,
            csrf: viewer.csrf.clone(),
            sign_out: viewer.signed_in,
            who: viewer
                .caller
                .name
                .strip_prefix("user:")
                .unwrap_or(&viewer.caller.name)
                .to_owned(),
            live: true,
            may_scan: viewer.may(TokenScope::Scan),
            may_remediate: viewer.may(TokenScope::Remediate) && state.remediation.is_some(),
            css: assets::url("app.css"),
            js: assets::url("app.js"),
            icon: assets::url("icon.svg"),
        }
    }

    /// A frame without navigation (sign-in, errors).
    pub fn plain(title: impl Into<String>) -> Layout {
        Layout {
            title: title.into(),
            nav: Vec::new(),
            csrf: String::new(),
            sign_out: false,
            who: String::new(),
            live: false,
            may_scan: false,
            may_remediate: false,
            css: assets::url("app.css"),
            js: assets::url("app.js"),
            icon: assets::url("icon.svg"),
        }
    }
}

/// Renders a template into a page.
pub(crate) fn html(t: &impl Template) -> Result<Html<String>, WebError> {
    t.render().map(Html).map_err(|e| {
        tracing::error!(error = %e, "a dashboard template failed to render");
        WebError(AppError::internal())
    })
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    layout: Layout,
    next: String,
    error: Option<String>,
    /// Whether sign-in with OpenID Connect is offered.
    sso: bool,
    /// Whether the token form is (tokens are configured).
    tokens: bool,
}

impl LoginPage {
    fn new(state: &AppState, next: String, error: Option<String>) -> LoginPage {
        LoginPage {
            layout: Layout::plain("Sign in"),
            next,
            error,
            sso: state.oidc.is_some(),
            tokens: !state.tokens.is_empty() || !state.scoped_tokens.is_empty(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct NextParam {
    next: Option<String>,
}

/// Where to go after signing in: `next` when it is a path of this site, else `/`.
///
/// `next` is resolved against this server's origin the way a browser resolves a `Location`
/// (WHATWG URL rules: tabs and newlines dropped, `\\` read as `/`), and kept only when it stays
/// on that origin. A value holding a control character or whitespace anywhere, or starting
/// with `//` or `/\\`, is refused outright, so that no reading of it can name another host
/// (`/\t/evil.example` is `//evil.example` to a browser) and no header is ever built from it.
pub fn local_path(next: Option<&str>) -> String {
    next.and_then(same_origin_path)
        .unwrap_or_else(|| "/".to_owned())
}

fn same_origin_path(next: &str) -> Option<String> {
    let b = next.as_bytes();
    if b.first() != Some(&b'/') || matches!(b.get(1), Some(b'/' | b'\\')) {
        return None;
    }
    if next.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return None;
    }
    let base = reqwest::Url::parse("http://driftguard.invalid/").expect("a valid base URL");
    let url = base.join(next).ok()?;
    if url.origin() != base.origin() || !url.username().is_empty() || url.password().is_some() {
        return None;
    }
    let mut out = url.path().to_owned();
    if let Some(q) = url.query() {
        out.push('?');
        out.push_str(q);
    }
    if let Some(f) = url.fragment() {
        out.push('#');
        out.push_str(f);
    }
    // what the URL parser wrote is ASCII, fit for a header
    (out.starts_with('/') && !out.starts_with("//") && HeaderValue::from_str(&out).is_ok())
        .then_some(out)
}

async fn login_form(
    State(state): State<AppState>,
    q: Result<Query<NextParam>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, WebError> {
    let next = local_path(q.as_ref().ok().and_then(|Query(p)| p.next.as_deref()));
    if !state.auth_required() {
        return Ok(Redirect::to(&next).into_response());
    }
    Ok(html(&LoginPage::new(&state, next, None))?.into_response())
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    next: Option<String>,
}

async fn login(
    State(state): State<AppState>,
    Extension(client): Extension<Client>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, WebError> {
    let Form(form) = form.map_err(|_| AppError::bad_request("expected a sign-in form"))?;
    let next = local_path(form.next.as_deref());
    if !same_origin(&headers) {
        return Err(WebError(AppError::new(
            StatusCode::FORBIDDEN,
            "cross_site",
            "cross-site requests are refused",
        )));
    }
    if !state.auth_required() {
        return Ok(Redirect::to(&next).into_response());
    }
    if let Err(wait) = state.throttle.admit(client.ip, std::time::Instant::now()) {
        let secs = wait.as_secs().max(1);
        tracing::warn!(client = ?client.ip, "dashboard sign-in refused: too many failures");
        let mut resp = WebError(AppError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_failures",
            format!("Too many failed sign-ins from this address: try again in {secs} s."),
        ))
        .into_response();
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return Ok(resp);
    }
    let token = form.token.trim();
    let Some(caller) = state.caller(token) else {
        state.throttle.failed(client.ip, std::time::Instant::now());
        tracing::info!(client = ?client.ip, "dashboard sign-in refused: wrong token");
        crate::queries::actions::sign_in_failed(&state, client.ip).await;
        let page = html(&LoginPage::new(
            &state,
            next,
            Some("That token is not accepted.".into()),
        ))?;
        return Ok((StatusCode::UNAUTHORIZED, page).into_response());
    };
    tracing::info!(caller = %caller.name, "dashboard sign-in");
    let (id, _) = state.sessions.open(true, caller).map_err(|e| {
        tracing::error!(error = %driftguard_core::error::chain(&e), "no session");
        AppError::internal()
    })?;
    let cookies = CookieJar::new().add(session::cookie(id, client.https));
    Ok((cookies, Redirect::to(&next)).into_response())
}

async fn logout(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Extension(client): Extension<Client>,
    headers: HeaderMap,
    cookies: CookieJar,
    Form(form): Form<CsrfForm>,
) -> Result<Response, WebError> {
    check_csrf(&viewer, &headers, &form.csrf)?;
    if let Some(id) = session::cookie_value(&cookies, client.https) {
        state.sessions.close(&id);
    }
    // a person signed in with OpenID Connect signs out at the provider too, when it has an
    // end-session endpoint, and comes back to the sign-in page
    let at_provider = state
        .oidc
        .as_ref()
        .filter(|_| viewer.caller.name.starts_with("user:"))
        .and_then(|o| {
            let base = sso::base_url(&state, &client, &headers)?;
            o.logout_url(&format!("{base}/login"))
        });
    // added, not removed from the jar: the removal is sent whether or not the request had it
    let cookies = cookies.add(session::removal(client.https));
    if let Some(url) = at_provider {
        tracing::info!(caller = %viewer.caller.name, "signed out, and on to the OpenID provider");
        // a page goes on to the provider: the Content-Security-Policy's `form-action 'self'`
        // stops a form's redirect to another site
        let page = html(&sso::Onward {
            layout: Layout::plain("Signed out"),
            heading: "Signed out of DriftGuard".into(),
            next: url.to_string(),
            link: "Sign out at your identity provider too".into(),
        })?;
        return Ok((cookies, page).into_response());
    }
    let to = if !state.auth_required() {
        "/"
    } else {
        "/login"
    };
    Ok((cookies, Redirect::to(to)).into_response())
}

#[cfg(test)]
mod tests {
    use super::local_path;

    #[test]
    fn next_stays_on_this_site() {
        for (next, want) in [
            ("/drifts?environment=prod", "/drifts?environment=prod"),
            (
                "/objects/prod/Deployment.apps/shop/web",
                "/objects/prod/Deployment.apps/shop/web",
            ),
            ("/drifts#top", "/drifts#top"),
            ("/a/../drifts", "/drifts"),
            ("/drifts?name=w%C3%A9b", "/drifts?name=w%C3%A9b"),
            ("/drifts?name=wéb", "/drifts?name=w%C3%A9b"),
            ("/%2F%2Fevil.example", "/%2F%2Fevil.example"),
        ] {
            assert_eq!(local_path(Some(next)), want, "{next:?}");
        }
        for next in [
            "//evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "/\t/127.0.0.1:18999/",
            "/\n/evil.example",
            "/\r\n/evil.example",
            "/ /evil.example",
            "/\u{a0}/evil.example",
            "/\u{2028}/evil.example",
            "/drifts\u{0}",
            "/drifts\u{7f}",
            "http://evil.example/",
            "https:/evil.example",
            "evil.example",
            "javascript:alert(1)",
            "",
        ] {
            assert_eq!(local_path(Some(next)), "/", "{next:?}");
        }
        assert_eq!(local_path(None), "/");
    }
}
