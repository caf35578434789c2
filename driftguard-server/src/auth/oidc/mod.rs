//! Sign-in with OpenID Connect (`server.oidc`): the authorization code flow with PKCE.
//!
//! 1. [`Oidc::begin`]: a state, a nonce and a PKCE verifier are made and kept here, in
//!    memory, under the SHA-256 of a random sign-in id that the browser holds in a
//!    short-lived cookie ([`cookie`]: HttpOnly, `SameSite=Lax` so that the provider's
//!    redirect back carries it, 10 minutes); the browser goes to the provider.
//! 2. [`Oidc::finish`]: at the callback, the sign-in is taken (once) by the cookie, the
//!    `state` compared, the code exchanged with the verifier and the client secret, and the
//!    ID token verified ([`token`]) against the issuer's keys ([`provider`]); its claims make a
//!    [`flow::Person`], whom the role bindings let in or not ([`flow::admit`]).
//!
//! Nothing of it is logged or stored: not the code, the tokens, the verifier nor the secret.
//! A person's session then is a dashboard session like a token's ([`super::session`]).

pub mod flow;
pub mod provider;
pub mod token;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum_extra::extract::cookie::{Cookie, SameSite};
use base64::Engine as _;
use reqwest::Url;
use sha2::{Digest, Sha256};

use crate::auth::Caller;
use crate::config::OidcSettings;

pub use flow::{Person, Refusal};
pub use provider::{Discovery, Provider, ProviderError};
pub use token::TokenError;

/// The sign-in cookie's name over plain HTTP.
pub const COOKIE: &str = "driftguard_oidc";

/// Its name over HTTPS.
pub const SECURE_COOKIE: &str = "__Host-driftguard_oidc";

/// How long a sign-in may take at the provider.
pub const PENDING_FOR: Duration = Duration::from_secs(600);

/// Most sign-ins under way at once (the oldest goes first).
const MAX_PENDING: usize = 10_000;

/// Most sign-ins under way from one client address (its oldest goes first), so that one
/// client cannot push everyone else's out.
const MAX_PENDING_PER_CLIENT: usize = 20;

/// The path of the callback, under the redirect base URL.
pub const CALLBACK: &str = "/auth/oidc/callback";

struct Pending {
    state: String,
    nonce: String,
    verifier: String,
    redirect_uri: String,
    next: String,
    created: Instant,
    client: Option<IpAddr>,
}

/// Sign-in with the provider of `server.oidc`.
pub struct Oidc {
    /// The settings (the client secret among them; `Debug` does not show it).
    pub settings: OidcSettings,
    /// The provider.
    pub provider: Provider,
    pending: Mutex<HashMap<[u8; 32], Pending>>,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// What the provider sent back to the callback.
#[derive(Clone, Default, serde::Deserialize)]
pub struct Callback {
    /// The code.
    #[serde(default)]
    pub code: Option<String>,
    /// The state.
    #[serde(default)]
    pub state: Option<String>,
    /// An OAuth error code (`access_denied`, ...).
    #[serde(default)]
    pub error: Option<String>,
    /// The issuer (RFC 9207), when the provider says.
    #[serde(default)]
    pub iss: Option<String>,
}

impl std::fmt::Debug for Callback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callback")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

/// Why a sign-in failed. Messages are for the person and the log: never a code, a token or
/// the secret.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// No sign-in under way for this browser (expired, used, or begun elsewhere).
    #[error("this sign-in has expired or was started in another browser: sign in again")]
    NoSignIn,
    /// The state does not match the sign-in's.
    #[error("the provider's answer does not belong to this sign-in (state): sign in again")]
    State,
    /// The answer names another issuer (RFC 9207).
    #[error("the answer comes from another issuer")]
    Issuer,
    /// The provider refused (its OAuth error code).
    #[error("the identity provider did not sign you in ({0})")]
    Denied(String),
    /// The provider could not be reached or answered wrongly.
    #[error("the identity provider cannot be used now")]
    Provider(#[source] ProviderError),
    /// The ID token was refused.
    #[error("the identity provider's ID token was refused")]
    Token(#[source] TokenError),
    /// The person may not in.
    #[error("{0}")]
    Refused(Refusal),
    /// No random bytes.
    #[error("no random bytes for a sign-in")]
    Random,
}

impl SignInError {
    /// A short reason for the history of people's actions.
    pub fn reason(&self) -> String {
        match self {
            SignInError::NoSignIn => "no sign-in under way".into(),
            SignInError::State => "state mismatch".into(),
            SignInError::Issuer => "another issuer".into(),
            SignInError::Denied(_) => "denied by the provider".into(),
            SignInError::Provider(_) => "provider unavailable".into(),
            SignInError::Token(e) => format!("ID token refused: {e}"),
            SignInError::Refused(r) => r.kind().into(),
            SignInError::Random => "no random bytes".into(),
        }
    }
}

fn random() -> Result<[u8; 32], SignInError> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|_| SignInError::Random)?;
    Ok(b)
}

fn encode(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn key(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl Oidc {
    /// Sign-in with these settings.
    pub fn new(settings: OidcSettings) -> Oidc {
        Oidc {
            provider: Provider::new(&settings.issuer),
            settings,
            pending: Mutex::new(HashMap::new()),
        }
    }

    /// Begins a sign-in of a browser at `client` that returns to `redirect_uri` and then to
    /// `next`: the sign-in id (the cookie's value) and the provider's URL to send it to.
    pub async fn begin(
        &self,
        client: Option<IpAddr>,
        redirect_uri: String,
        next: String,
    ) -> Result<(String, Url), SignInError> {
        let d = self
            .provider
            .discovery()
            .await
            .map_err(SignInError::Provider)?;
        let id = encode(&random()?);
        let pkce = flow::Pkce::from_random(&random()?);
        let pending = Pending {
            state: encode(&random()?),
            nonce: encode(&random()?),
            verifier: pkce.verifier,
            redirect_uri,
            next,
            created: Instant::now(),
            client,
        };
        let url = flow::authorization_url(
            &d.authorization_endpoint,
            &flow::AuthRequest {
                client_id: &self.settings.client_id,
                redirect_uri: &pending.redirect_uri,
                scopes: &self.settings.scopes,
                state: &pending.state,
                nonce: &pending.nonce,
                challenge: &pkce.challenge,
            },
        );
        let mut all = self.pending.lock().expect("never poisoned");
        all.retain(|_, p| p.created.elapsed() < PENDING_FOR);
        let theirs = all.values().filter(|p| p.client == client).count();
        if theirs >= MAX_PENDING_PER_CLIENT || all.len() >= MAX_PENDING {
            let oldest = all
                .iter()
                .filter(|(_, p)| theirs < MAX_PENDING_PER_CLIENT || p.client == client)
                .min_by_key(|(_, p)| p.created)
                .map(|(k, _)| *k);
            if let Some(oldest) = oldest {
                all.remove(&oldest);
            }
        }
        all.insert(key(&id), pending);
        Ok((id, url))
    }

    /// Finishes the sign-in of the browser holding `id` with what the provider sent back,
    /// at `now` (seconds since the Unix epoch): the caller it signs in and where to go next.
    pub async fn finish(
        &self,
        id: Option<&str>,
        back: &Callback,
        now: i64,
    ) -> Result<(Caller, String), SignInError> {
        let pending = id
            .and_then(|id| {
                self.pending
                    .lock()
                    .expect("never poisoned")
                    .remove(&key(id))
            })
            .filter(|p| p.created.elapsed() < PENDING_FOR)
            .ok_or(SignInError::NoSignIn)?;
        let state = back.state.as_deref().unwrap_or_default();
        if !crate::auth::same_secret(state, &pending.state) {
            return Err(SignInError::State);
        }
        if back
            .iss
            .as_deref()
            .is_some_and(|i| i != self.settings.issuer)
        {
            return Err(SignInError::Issuer);
        }
        if let Some(e) = &back.error {
            let code: String = e
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(40)
                .collect();
            return Err(SignInError::Denied(code));
        }
        let code = back
            .code
            .as_deref()
            .filter(|c| !c.is_empty())
            .ok_or(SignInError::Denied("no code".into()))?;
        let s = &self.settings;
        let id_token = self
            .provider
            .exchange(
                &s.client_id,
                &s.client_secret,
                code,
                &pending.redirect_uri,
                &pending.verifier,
            )
            .await
            .map_err(SignInError::Provider)?;
        let claims = self.verify(&id_token, &pending.nonce, now).await?;
        let person = Person::of(&claims, &s.groups_claim);
        let caller = flow::admit(&person, &s.allowed_email_domains, &s.bindings)
            .map_err(SignInError::Refused)?;
        Ok((caller, pending.next))
    }

    /// Verifies an ID token against the issuer's keys (fetched again once for a key id not
    /// among them), this client, `nonce` and `now`.
    pub async fn verify(
        &self,
        id_token: &str,
        nonce: &str,
        now: i64,
    ) -> Result<serde_json::Map<String, serde_json::Value>, SignInError> {
        let kid = token::key_id(id_token);
        let keys = self
            .provider
            .keys_for(kid.as_deref())
            .await
            .map_err(SignInError::Provider)?;
        let expected = token::Expected {
            issuer: &self.settings.issuer,
            client_id: &self.settings.client_id,
            nonce,
            now,
        };
        token::verify(id_token, &keys, &expected).map_err(SignInError::Token)
    }

    /// Where to send a person signing out: the provider's end-session endpoint, back to
    /// `after`, when its discovery document names one.
    pub fn logout_url(&self, after: &str) -> Option<Url> {
        let d = self.provider.known_discovery()?;
        d.end_session_endpoint
            .map(|e| flow::logout_url(&e, &self.settings.client_id, after))
    }
}

/// The sign-in cookie's name: [`SECURE_COOKIE`] over HTTPS, else [`COOKIE`].
pub fn cookie_name(secure: bool) -> &'static str {
    if secure {
        SECURE_COOKIE
    } else {
        COOKIE
    }
}

/// The sign-in cookie: HttpOnly, `SameSite=Lax` (the provider's redirect back is a top-level
/// GET from another site), `Path=/`, for the browser session (the sign-in it names lasts
/// [`PENDING_FOR`] here, and the callback removes it); over HTTPS `Secure` and `__Host-` named.
pub fn cookie(id: String, secure: bool) -> Cookie<'static> {
    crate::auth::session::browser_cookie(cookie_name(secure), id, SameSite::Lax, secure)
}

/// The cookie that removes the sign-in cookie.
pub fn removal(secure: bool) -> Cookie<'static> {
    crate::auth::session::removal_of(cookie(String::new(), secure))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sign_in_cookie_is_lax_http_only_and_short() {
        let c = cookie("abc".into(), false).to_string();
        assert!(c.starts_with("driftguard_oidc=abc;"), "{c}");
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Lax"), "{c}");
        let c = cookie("abc".into(), true).to_string();
        assert!(
            c.starts_with("__Host-driftguard_oidc=abc;")
                && c.contains("Secure")
                && c.contains("Path=/"),
            "{c}"
        );
    }
}
