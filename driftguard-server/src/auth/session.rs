//! Dashboard sessions: a sign-in with an API token gives the browser an HttpOnly,
//! `SameSite=Strict` session cookie that lasts as long as the browser session (no
//! `Max-Age`); the token itself is never stored in the browser, never put in a URL and never
//! kept here. Each session has its own CSRF token, which every state-changing form sends back.
//!
//! Sessions live in memory: a restart signs everyone out. Only a SHA-256 of each session id is
//! kept, so the table alone cannot be replayed. What a session opened (the event stream) ends
//! with it ([`SessionEnd`]): at sign-out, and when the session expires.
//!
//! Over HTTPS (see [`crate::guard::Client::https`]) the cookie is `Secure` and named
//! `__Host-driftguard_session`: the prefix makes the browser refuse it unless it was set over
//! HTTPS, for this host only (no `Domain`) and for every path, so that a neighbouring site
//! cannot plant a session of its own.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum_extra::extract::cookie::{Cookie, SameSite};
use axum_extra::extract::CookieJar;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

/// The session cookie's name over plain HTTP.
pub const COOKIE: &str = "driftguard_session";

/// The session cookie's name over HTTPS.
pub const SECURE_COOKIE: &str = "__Host-driftguard_session";

/// The session cookie's name: [`SECURE_COOKIE`] over HTTPS, else [`COOKIE`].
pub fn cookie_name(secure: bool) -> &'static str {
    if secure {
        SECURE_COOKIE
    } else {
        COOKIE
    }
}

/// How long a session lasts without being used.
pub const IDLE: Duration = Duration::from_secs(8 * 3600);

/// How long a session lasts at most.
pub const MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// Most sessions kept (the oldest goes first).
const MAX_SESSIONS: usize = 10_000;

/// The end of a session, for what it opened: cancelled when the session is closed or found
/// expired, and due at its maximum age in any case.
#[derive(Clone, Debug)]
pub struct SessionEnd {
    token: CancellationToken,
    deadline: Instant,
}

impl SessionEnd {
    /// Completes when the session ends.
    pub async fn ended(&self) {
        tokio::select! {
            _ = self.token.cancelled() => {}
            _ = tokio::time::sleep_until(self.deadline.into()) => {}
        }
    }

    /// Whether the session has ended.
    pub fn is_ended(&self) -> bool {
        self.token.is_cancelled() || Instant::now() >= self.deadline
    }
}

/// One signed-in browser.
#[derive(Clone, Debug)]
pub struct Session {
    /// The CSRF token of its forms.
    pub csrf: String,
    /// Whether it was opened by signing in with a token (otherwise: no tokens are configured).
    pub signed_in: bool,
    /// Who signed in (the token's name, never the token) and what the token may do: a page
    /// offers and accepts only what its scopes allow.
    pub caller: crate::auth::Caller,
    /// Its end (event streams it opened stop then).
    pub end: SessionEnd,
}

#[derive(Debug)]
struct Entry {
    session: Session,
    created: Instant,
    used: Instant,
}

/// Why a session could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The operating system's random source failed.
    #[error("no random bytes for a session id")]
    Random(#[source] getrandom::Error),
}

/// The sessions of this server.
#[derive(Debug, Default)]
pub struct Sessions {
    entries: Mutex<HashMap<[u8; 32], Entry>>,
}

fn random_token() -> Result<String, SessionError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(SessionError::Random)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

fn key(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl Sessions {
    /// No sessions.
    pub fn new() -> Self {
        Sessions::default()
    }

    /// Opens a session for `caller`: returns its id (the cookie's value) and the session.
    pub fn open(
        &self,
        signed_in: bool,
        caller: crate::auth::Caller,
    ) -> Result<(String, Session), SessionError> {
        let id = random_token()?;
        let now = Instant::now();
        let session = Session {
            csrf: random_token()?,
            signed_in,
            caller,
            end: SessionEnd {
                token: CancellationToken::new(),
                deadline: now + MAX_AGE,
            },
        };
        let mut entries = self.entries.lock().expect("session lock is never poisoned");
        entries.retain(|_, e| {
            let keep = alive(e, now);
            if !keep {
                e.session.end.token.cancel();
            }
            keep
        });
        if entries.len() >= MAX_SESSIONS {
            if let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, e)| e.created)
                .map(|(k, _)| *k)
            {
                if let Some(e) = entries.remove(&oldest) {
                    e.session.end.token.cancel();
                }
            }
        }
        entries.insert(
            key(&id),
            Entry {
                session: session.clone(),
                created: now,
                used: now,
            },
        );
        Ok((id, session))
    }

    /// The live session of a cookie value (its idle time starts again).
    pub fn get(&self, id: &str) -> Option<Session> {
        let now = Instant::now();
        let mut entries = self.entries.lock().expect("session lock is never poisoned");
        let k = key(id);
        match entries.get_mut(&k) {
            Some(e) if alive(e, now) => {
                e.used = now;
                Some(e.session.clone())
            }
            Some(_) => {
                if let Some(e) = entries.remove(&k) {
                    e.session.end.token.cancel();
                }
                None
            }
            None => None,
        }
    }

    /// Ends a session, and what it opened.
    pub fn close(&self, id: &str) {
        let removed = self
            .entries
            .lock()
            .expect("session lock is never poisoned")
            .remove(&key(id));
        if let Some(e) = removed {
            e.session.end.token.cancel();
        }
    }
}

fn alive(e: &Entry, now: Instant) -> bool {
    now.duration_since(e.used) < IDLE && now.duration_since(e.created) < MAX_AGE
}

/// The session id among a request's cookies: the cookie named for the request's scheme
/// ([`cookie_name`]); over HTTPS one without the `__Host-` prefix is not read.
pub fn cookie_value(jar: &CookieJar, secure: bool) -> Option<String> {
    jar.get(cookie_name(secure))
        .map(|c| c.value())
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// The session cookie of a session id: HttpOnly, `SameSite=Strict`, `Path=/`, no `Domain`,
/// for the browser session only (no `Max-Age`); over HTTPS `Secure` and `__Host-` named.
pub fn cookie(id: String, secure: bool) -> Cookie<'static> {
    browser_cookie(cookie_name(secure), id, SameSite::Strict, secure)
}

/// The cookie that removes the session cookie: the same attributes, empty, `Max-Age=0` (and
/// an `Expires` in the past).
pub fn removal(secure: bool) -> Cookie<'static> {
    removal_of(cookie(String::new(), secure))
}

/// A cookie of the dashboard's: HttpOnly, `Path=/`, no `Domain`, for the browser session only
/// (no `Max-Age`), `Secure` over HTTPS (the caller gives the `__Host-` name then).
pub(crate) fn browser_cookie(
    name: &'static str,
    value: String,
    same_site: SameSite,
    secure: bool,
) -> Cookie<'static> {
    Cookie::build((name, value))
        .path("/")
        .http_only(true)
        .same_site(same_site)
        .secure(secure)
        .build()
}

/// The cookie that removes `cookie`: the same attributes, `Max-Age=0`.
pub(crate) fn removal_of(mut cookie: Cookie<'static>) -> Cookie<'static> {
    cookie.make_removal();
    cookie
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_open_read_and_close() {
        let s = Sessions::new();
        let caller =
            crate::auth::Caller::with_scopes("token:ops", vec![crate::config::TokenScope::Read]);
        let (id, session) = s.open(true, caller.clone()).expect("random");
        assert_eq!(session.caller, caller, "the session keeps who signed in");
        assert_ne!(id, session.csrf);
        assert_eq!(id.len(), 43, "256 bits");
        assert_eq!(s.get(&id).map(|x| x.csrf), Some(session.csrf.clone()));
        assert!(s.get("forged").is_none());
        assert!(!session.end.is_ended());
        s.close(&id);
        assert!(s.get(&id).is_none());
        assert!(session.end.is_ended(), "what it opened ends with it");
    }

    #[test]
    fn the_cookie_is_found_among_others_and_is_http_only() {
        let mut h = axum::http::HeaderMap::new();
        h.append(
            "cookie",
            "a=1; driftguard_session=abc; b=2".parse().expect("ascii"),
        );
        let jar = CookieJar::from_headers(&h);
        assert_eq!(cookie_value(&jar, false).as_deref(), Some("abc"));
        assert_eq!(
            cookie_value(&jar, true),
            None,
            "over HTTPS only the __Host- cookie"
        );
        let c = cookie("abc".into(), false).to_string();
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && !c.contains("Max-Age"));
        assert!(
            c.starts_with("driftguard_session=abc;") && !c.contains("Secure"),
            "{c}"
        );
        let c = cookie("abc".into(), true).to_string();
        let attributes: Vec<&str> = c.split("; ").collect();
        assert_eq!(attributes[0], "__Host-driftguard_session=abc", "{c}");
        assert!(
            attributes.contains(&"Path=/") && attributes.contains(&"Secure"),
            "{c}"
        );
        assert!(!c.contains("Domain"), "{c}");
        let c = removal(true).to_string();
        assert!(
            c.starts_with("__Host-driftguard_session=;")
                && c.contains("; Max-Age=0")
                && c.contains("; Path=/")
                && c.contains("; Secure"),
            "{c}"
        );
        h.append(
            "cookie",
            "__Host-driftguard_session=def".parse().expect("ascii"),
        );
        let jar = CookieJar::from_headers(&h);
        assert_eq!(cookie_value(&jar, true).as_deref(), Some("def"));
    }
}
