//! The limit on failed sign-ins and failed token checks per client ([`Throttle`]), and the
//! answer to a client past it ([`too_many_failures`]). Counted where credentials are checked:
//! [`super::authenticate`], the dashboard's sign-in, the audit and Git webhooks.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::config::canonical_ip;
pub use crate::config::FAILURES_BURST;
use crate::error::AppError;

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
    ip.map(|ip| match canonical_ip(ip) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
