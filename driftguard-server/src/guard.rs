//! What holds for every request, before any route: who the client is (its address and
//! whether it came over HTTPS, taken from a proxy's headers only when that proxy is trusted),
//! and, without API tokens, the loopback `Host` check against DNS rebinding. Also the limit on
//! failed sign-ins and token checks per client ([`Throttle`]).
//!
//! One middleware ([`requests`]) on the composed router does it all, so that no route (API,
//! dashboard, MCP, health, metrics) can be added without it.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

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

/// A range of addresses (`10.0.0.7`, `10.0.0.0/8`, `fd00::/8`): the trusted proxies of
/// `server.trustedProxies`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddrRange {
    addr: IpAddr,
    prefix: u8,
}

impl AddrRange {
    /// Whether `ip` is in the range (an IPv4 address mapped into IPv6 counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.addr, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(a) & mask == u32::from(b) & mask
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(a) & mask == u128::from(b) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for AddrRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{s}` is not an IP address or a range like 10.0.0.0/8"))?;
        let addr = canonical(addr);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{s}`: the prefix length must be 0 to {max}"))?,
        };
        Ok(AddrRange { addr, prefix })
    }
}

/// An IPv4 address mapped into IPv6 as the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
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
        let mut ip = peer.map(canonical);
        if via_proxy {
            // each proxy appends the address it got the request from: read from the right,
            // past the trusted proxies (anything further left is the client's to write)
            let forwarded: Vec<IpAddr> = headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(|a| a.trim().parse::<IpAddr>().map(canonical))
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

/// Failed sign-ins and token checks allowed from one client in a burst.
pub const FAILURES_BURST: u32 = 10;

/// How long it takes for one more failure to be allowed.
pub const FAILURE_REFILL: Duration = Duration::from_secs(6);

/// Most clients remembered (the table is in memory and bounded).
const MAX_CLIENTS: usize = 10_000;

/// The limit on failed sign-ins and failed token checks (bearer, audit, Git webhook) per
/// client address: a burst of [`FAILURES_BURST`], then one every [`FAILURE_REFILL`]. A client
/// past it gets 429 with `Retry-After` for every credential it sends, right or wrong, until
/// it may fail again (otherwise its guesses would still be told apart). IPv6 clients are
/// counted per /64, the block one host usually has. In memory, at most 10,000 clients.
#[derive(Debug)]
pub struct Throttle {
    buckets: Mutex<HashMap<Option<IpAddr>, Bucket>>,
    /// Failures allowed in a burst (`server.failedCredentialsBurst`).
    burst: u32,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle::with_burst(FAILURES_BURST)
    }
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    /// Failures still counted (they drain at one per [`FAILURE_REFILL`]).
    used: f64,
    at: Instant,
}

impl Bucket {
    fn drained(self, now: Instant) -> f64 {
        let gone =
            now.saturating_duration_since(self.at).as_secs_f64() / FAILURE_REFILL.as_secs_f64();
        (self.used - gone).max(0.0)
    }
}

fn client_key(ip: Option<IpAddr>) -> Option<IpAddr> {
    ip.map(|ip| match canonical(ip) {
        IpAddr::V6(v6) => {
            let block = u128::from(v6) & (u128::MAX << 64);
            IpAddr::V6(Ipv6Addr::from(block))
        }
        v4 => v4,
    })
}

impl Throttle {
    /// No failures yet.
    pub fn new() -> Self {
        Throttle::default()
    }

    /// No failures yet; `burst` allowed before a client must wait.
    pub fn with_burst(burst: u32) -> Self {
        Throttle {
            buckets: Mutex::new(HashMap::new()),
            burst,
        }
    }

    /// `Err(how long to wait)` when `ip` has failed too often to be heard now.
    pub fn admit(&self, ip: Option<IpAddr>, now: Instant) -> Result<(), Duration> {
        let buckets = self
            .buckets
            .lock()
            .expect("throttle lock is never poisoned");
        let Some(b) = buckets.get(&client_key(ip)) else {
            return Ok(());
        };
        let over = b.drained(now) + 1.0 - f64::from(self.burst);
        if over > 0.0 {
            return Err(FAILURE_REFILL.mul_f64(over));
        }
        Ok(())
    }

    /// Counts a failed sign-in or token check of `ip`.
    pub fn failed(&self, ip: Option<IpAddr>, now: Instant) {
        let key = client_key(ip);
        let mut buckets = self
            .buckets
            .lock()
            .expect("throttle lock is never poisoned");
        if !buckets.contains_key(&key) && buckets.len() >= MAX_CLIENTS {
            buckets.retain(|_, b| b.drained(now) > 0.0);
            if buckets.len() >= MAX_CLIENTS {
                if let Some(oldest) = buckets.iter().min_by_key(|(_, b)| b.at).map(|(k, _)| *k) {
                    buckets.remove(&oldest);
                }
            }
        }
        let used = buckets.get(&key).map_or(0.0, |b| b.drained(now));
        buckets.insert(
            key,
            Bucket {
                used: used + 1.0,
                at: now,
            },
        );
    }

    /// Clients remembered.
    pub fn len(&self) -> usize {
        self.buckets
            .lock()
            .expect("throttle lock is never poisoned")
            .len()
    }

    /// Whether no client is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The answer to a client past the limit: 429 with `Retry-After` (whole seconds, at least 1).
pub fn too_many_failures(wait: Duration) -> Response {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let secs = secs.max(1);
    let mut resp = AppError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_failures",
        format!(
            "too many failed sign-ins or token checks from this address: try again in {secs} s"
        ),
    )
    .into_response();
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    resp
}

/// The middleware every request passes first (see the module's documentation).
pub async fn requests(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<Peer>>()
        .map(|c| c.0 .0.ip());
    let client = Client::of(&state, peer, req.headers());
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
    fn ranges_hold_their_addresses() {
        let r = |s: &str| s.parse::<AddrRange>().expect(s);
        let ip = |s: &str| s.parse::<IpAddr>().expect(s);
        assert!(r("10.0.0.0/8").contains(ip("10.1.2.3")));
        assert!(!r("10.0.0.0/8").contains(ip("11.0.0.1")));
        assert!(r("10.0.0.7").contains(ip("10.0.0.7")));
        assert!(!r("10.0.0.7").contains(ip("10.0.0.8")));
        assert!(r("10.0.0.7").contains(ip("::ffff:10.0.0.7")), "mapped IPv4");
        assert!(r("0.0.0.0/0").contains(ip("192.0.2.1")));
        assert!(!r("0.0.0.0/0").contains(ip("2001:db8::1")));
        assert!(r("fd00::/8").contains(ip("fd12::1")));
        assert!(r("::1").contains(ip("::1")));
        for bad in [
            "10.0.0.0/33",
            "proxy.example",
            "10.0.0.0/",
            "fd00::/129",
            "",
        ] {
            assert!(bad.parse::<AddrRange>().is_err(), "{bad}");
        }
    }

    #[test]
    fn failures_are_limited_per_client_and_drain() {
        let t = Throttle::new();
        let now = Instant::now();
        let a = Some("192.0.2.1".parse().expect("ip"));
        let b = Some("192.0.2.2".parse().expect("ip"));
        for _ in 0..FAILURES_BURST {
            assert!(t.admit(a, now).is_ok());
            t.failed(a, now);
        }
        let wait = t.admit(a, now).expect_err("the burst is used up");
        assert_eq!(wait, FAILURE_REFILL);
        assert!(t.admit(b, now).is_ok(), "another client is not held");
        assert!(
            t.admit(a, now + FAILURE_REFILL).is_ok(),
            "one more after the refill"
        );
        // IPv6: one /64 is one client
        let v6a = Some("2001:db8::1".parse().expect("ip"));
        let v6b = Some("2001:db8::ffff:2".parse().expect("ip"));
        for _ in 0..FAILURES_BURST {
            t.failed(v6a, now);
        }
        assert!(t.admit(v6b, now).is_err(), "same /64");
    }

    #[test]
    fn the_table_stays_bounded() {
        let t = Throttle::new();
        let now = Instant::now();
        for i in 0..(MAX_CLIENTS as u32 + 50) {
            t.failed(Some(IpAddr::V4(i.into())), now);
        }
        assert!(t.len() <= MAX_CLIENTS, "{}", t.len());
    }

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
