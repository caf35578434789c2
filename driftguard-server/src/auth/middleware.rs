//! Authentication on the routes that need it: [`authenticate`] finds who is asking (once, on a
//! router), [`Needs`] says what a route asks of them (on each route).

use std::future::{ready, Ready};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use futures_util::future::Either;
use tower::{Layer, Service};

use super::throttle::too_many_failures;
use super::{session, Authorization, Caller};
use crate::config::TokenScope;
use crate::error::AppError;
use crate::guard::Client;
use crate::state::AppState;

/// Finds the caller of a request and hands it on as an extension ([`Caller`]): the caller of
/// a bearer token; or, for reads only (`GET`, `HEAD`), of the dashboard's session cookie, so
/// that its pages can follow the event stream (a cookie never authorizes a change: that would
/// be open to cross-site requests); without configured tokens, [`Caller::anonymous`]. What the
/// caller may do there is the route's to say ([`Needs`]).
///
/// Failed token checks count against the client's limit ([`super::throttle::Throttle`]).
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    if !state.auth_required() {
        req.extensions_mut().insert(Caller::anonymous());
        return next.run(req).await;
    }
    let client = req.extensions().get::<Client>().copied().unwrap_or(Client {
        ip: None,
        https: false,
    });
    let Some(authorization) = Authorization::of(req.headers()) else {
        let read = req.method() == Method::GET || req.method() == Method::HEAD;
        let cookies = CookieJar::from_headers(req.headers());
        let session = session::cookie_value(&cookies, client.https)
            .and_then(|id| state.sessions.get(&id))
            .filter(|s| s.signed_in);
        if let Some(session) = session.filter(|_| read) {
            // who signed in, reading only: a viewer where its roles applied
            req.extensions_mut()
                .insert(state.resolved(session.caller.reading_only()));
            // what it opens (the event stream) ends when the session does
            req.extensions_mut().insert(session.end);
            return next.run(req).await;
        }
        return refuse(
            &req,
            AppError::unauthorized("missing bearer token").into_response(),
        );
    };
    if let Err(wait) = state.throttle.admit(client.ip, Instant::now()) {
        return refuse(&req, too_many_failures(wait));
    }
    let Authorization::Bearer(token) = authorization else {
        let refused = AppError::unauthorized("expected `Authorization: Bearer <token>`");
        return refuse(&req, refused.into_response());
    };
    let Some(caller) = state.caller(&token) else {
        state.throttle.failed(client.ip, Instant::now());
        return refuse(
            &req,
            AppError::unauthorized("invalid bearer token").into_response(),
        );
    };
    req.extensions_mut().insert(state.resolved(caller));
    next.run(req).await
}

/// A refusal of a request whose body is left unread. hyper does not keep such a connection
/// (it drains what has already arrived, else closes it), so a client that reused it for its
/// next request could find it closed under that request (httpx: "Server disconnected without
/// sending a response"). `Connection: close` says so before the client tries.
fn refuse(req: &Request, mut response: Response) -> Response {
    use axum::http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
    let headers = req.headers();
    let has_body = headers.contains_key(TRANSFER_ENCODING)
        || headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0");
    if has_body {
        response
            .headers_mut()
            .insert(CONNECTION, axum::http::HeaderValue::from_static("close"));
    }
    response
}

/// The scope a route needs, declared on the route
/// (`post(scan_now).route_layer(Needs(TokenScope::Scan))`), under [`authenticate`]: a caller
/// without it is answered 403, naming the scope to give the token ([`Caller::may`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Needs(pub TokenScope);

impl<S> Layer<S> for Needs {
    type Service = NeedsService<S>;

    fn layer(&self, inner: S) -> NeedsService<S> {
        NeedsService {
            inner,
            scope: self.0,
        }
    }
}

/// A route behind [`Needs`].
#[derive(Clone, Debug)]
pub struct NeedsService<S> {
    inner: S,
    scope: TokenScope,
}

impl<S> Service<Request> for NeedsService<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<S::Future, Ready<Result<Response, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let allowed = match req.extensions().get::<Caller>() {
            Some(caller) => caller.may(self.scope),
            // not behind `authenticate`: nobody is known, so nothing is allowed
            None => Err(AppError::unauthorized("missing bearer token")),
        };
        match allowed {
            Ok(()) => Either::Left(self.inner.call(req)),
            Err(e) => Either::Right(ready(Ok(e.into_response()))),
        }
    }
}
