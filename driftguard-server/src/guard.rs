//! What holds for every request, before any route: who the client is (its address and
//! whether it came over HTTPS, taken from a proxy's headers only when that proxy is trusted),
//! and, without API tokens, the loopback `Host` check against DNS rebinding. (The limit on
//! failed sign-ins and token checks per client is `auth::throttle`, where credentials are read;
//! the trusted proxies' ranges are `config::AddrRange`.)
//!
//! One middleware ([`requests`]) on the composed router does it all, so that no route (API,
//! dashboard, MCP, health, metrics) can be added without it.

use std::net::{IpAddr, SocketAddr};

use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::config::canonical_ip;
use crate::error::AppError;
use crate::state::AppState;

/// The peer address of a connection (axum's connect info for [`crate::listener::GuardedListener`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer(pub SocketAddr);

impl Connected<axum::serve::IncomingStream<'_, crate::listener::GuardedListener>> for Peer {
    fn connect_info(
        stream: axum::serve::IncomingStream<'_, crate::listener::GuardedListener>,
    ) -> Self {
        Peer(*stream.remote_addr())
    }
}

/// Whether a `Host` header (or the request URI's authority) names this machine's loopback
/// interface: `localhost`, `127.0.0.0/8` or `[::1]`, on any port.
pub fn loopback_host(host: &str) -> bool {
    if host.contains('@') {
        return false;
    }
    let Ok(authority) = host.parse::<axum::http::uri::Authority>() else {
        return false;
    };
    let name = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase();
    name == "localhost" || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The host a request names: its `Host` header, else its URI's authority (`None`: neither,
/// which no browser sends, so no DNS rebinding).
fn request_host<'a>(headers: &'a HeaderMap, uri: &'a Uri) -> Option<Result<&'a str, ()>> {
    match headers.get(header::HOST) {
        Some(h) => Some(h.to_str().map_err(|_| ())),
        None => uri.authority().map(|a| Ok(a.as_str())),
    }
}

/// Whether a request may be served as far as its `Host` goes: with API tokens any host (the
/// token is the protection); without, a loopback host only, so that a page of another site
/// whose name was made to resolve to 127.0.0.1 (DNS rebinding) cannot read or scan.
pub fn host_allowed(state: &AppState, headers: &HeaderMap, uri: &Uri) -> bool {
    if state.auth_required() {
        return true;
    }
    match request_host(headers, uri) {
        None => true,
        Some(Ok(h)) => loopback_host(h),
        Some(Err(())) => false,
    }
}

/// Who sent a request, as far as this server can tell (an extension of every request, put
/// there by [`requests`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Client {
    /// The client's address: the peer's; when the peer is a trusted proxy, the nearest
    /// address of `X-Forwarded-For` that is not a trusted proxy. `None`: not known (a request
    /// handed to the router without a connection, as in tests).
    pub ip: Option<IpAddr>,
    /// Whether the browser reached the server over HTTPS: `server.publicUrl` is `https://`,
    /// or a trusted proxy says so in `X-Forwarded-Proto`. The session cookie is then `Secure`
    /// with the `__Host-` prefix.
    pub https: bool,
}

impl Client {
    /// The client of a request from `peer` with `headers`.
    pub fn of(state: &AppState, peer: Option<IpAddr>, headers: &HeaderMap) -> Client {
        let trusted = |ip: IpAddr| state.trusted_proxies.iter().any(|r| r.contains(ip));
        let via_proxy = peer.is_some_and(trusted);
        let mut ip = peer.map(canonical_ip);
        if via_proxy {
            // each proxy appends the address it got the request from: read from the right,
            // past the trusted proxies (anything further left is the client's to write)
            let forwarded: Vec<IpAddr> = headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(|a| a.trim().parse::<IpAddr>().map(canonical_ip))
                .collect::<Result<_, _>>()
                .unwrap_or_default();
            if let Some(first) = forwarded.iter().rev().find(|a| !trusted(**a)) {
                ip = Some(*first);
            }
        }
        let proxied_https = via_proxy
            && headers
                .get_all("x-forwarded-proto")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .next_back()
                .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"));
        let public_https = state
            .public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"));
        Client {
            ip,
            https: public_https || proxied_https,
        }
    }
}

/// The middleware every request passes first (see the module's documentation).
pub async fn requests(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let tls = req
        .extensions()
        .get::<ConnectInfo<crate::tls::TlsPeer>>()
        .map(|c| c.0);
    let peer = req
        .extensions()
        .get::<ConnectInfo<Peer>>()
        .map(|c| c.0 .0.ip())
        .or(tls.map(|t| t.addr.ip()));
    let mut client = Client::of(&state, peer, req.headers());
    if let Some(t) = tls {
        // served over TLS here: the browser's scheme is https
        client.https = true;
        if t.client_certificate {
            req.extensions_mut().insert(crate::tls::ClientCertificate);
        }
    }
    req.extensions_mut().insert(client);
    if !host_allowed(&state, req.headers(), req.uri()) {
        let peer = peer.map(|p| p.to_string());
        tracing::warn!(
            host = ?req.headers().get(header::HOST),
            peer = peer.as_deref().unwrap_or("-"),
            "refused a request for another host: without API tokens only loopback hosts are served (DNS rebinding)"
        );
        return AppError::new(
            StatusCode::FORBIDDEN,
            "host_not_allowed",
            "without API tokens only loopback hosts (localhost, 127.0.0.1, [::1]) are served; \
             configure API tokens to serve other names",
        )
        .into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_hosts_are_loopback() {
        for h in [
            "localhost",
            "LOCALHOST:8080",
            "localhost.:80",
            "127.0.0.1",
            "127.0.0.1:18999",
            "127.1.2.3:1",
            "[::1]:8080",
            "[::1]",
        ] {
            assert!(loopback_host(h), "{h}");
        }
        for h in [
            "attacker.example",
            "attacker.example:8080",
            "localhost.attacker.example",
            "127.0.0.1.nip.io",
            "0.0.0.0:8080",
            "10.0.0.1",
            "[::ffff:127.0.0.1]",
            "user@localhost",
            "",
            "local host",
        ] {
            assert!(!loopback_host(h), "{h}");
        }
    }
}
