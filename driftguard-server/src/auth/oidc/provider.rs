//! The provider over HTTP: its discovery document, its keys (fetched again, at most once per
//! [`REFETCH_AFTER`], when a token names a key not among them: key rotation) and the token
//! request. Errors name the endpoint and what went wrong, never a code, token or secret.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::Url;
use serde::Deserialize;

use super::token::Jwks;

/// Least time between two fetches of the keys for an unknown key id.
pub const REFETCH_AFTER: Duration = Duration::from_secs(30);

/// Time limit of one request to the provider.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Largest answer read from the provider.
const MAX_BODY: usize = 1024 * 1024;

/// What the provider's discovery document says (the members used).
#[derive(Clone, Debug, Deserialize)]
pub struct Discovery {
    /// Its issuer: must be the configured one.
    pub issuer: String,
    /// Where people sign in.
    #[serde(deserialize_with = "url")]
    pub authorization_endpoint: Url,
    /// Where a code becomes tokens.
    #[serde(deserialize_with = "url")]
    pub token_endpoint: Url,
    /// Its keys.
    #[serde(deserialize_with = "url")]
    pub jwks_uri: Url,
    /// Where people sign out (RP-Initiated Logout), if it has one.
    #[serde(default, deserialize_with = "optional_url")]
    pub end_session_endpoint: Option<Url>,
}

fn url<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Url, D::Error> {
    let s = String::deserialize(d)?;
    Url::parse(&s).map_err(serde::de::Error::custom)
}

fn optional_url<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Url>, D::Error> {
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(s) => Url::parse(&s).map(Some).map_err(serde::de::Error::custom),
    }
}

/// Why the provider could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// A request failed or its answer could not be read.
    #[error("{what} at {url}: {message}")]
    Http {
        /// What was asked (`discovery`, `keys`, `token request`).
        what: &'static str,
        /// The endpoint.
        url: String,
        /// What went wrong (a status, a transport error's kind, or the OAuth error code).
        message: String,
    },
    /// The discovery document names another issuer.
    #[error("the discovery document names issuer `{found}`, not the configured `{configured}`")]
    Issuer {
        /// Configured.
        configured: String,
        /// Found.
        found: String,
    },
}

#[derive(Debug, Default)]
struct Keys {
    jwks: Option<Jwks>,
    /// When the keys were last fetched again for a key id not among them.
    refetched: Option<Instant>,
}

/// The provider of `server.oidc`, its documents cached.
#[derive(Debug)]
pub struct Provider {
    http: reqwest::Client,
    issuer: String,
    discovery: Mutex<Option<Discovery>>,
    keys: Mutex<Keys>,
    /// Serializes fetches of the keys (one refetch for many sign-ins at once).
    fetching: tokio::sync::Mutex<()>,
}

fn http_error(what: &'static str, url: &Url, e: &reqwest::Error) -> ProviderError {
    let message = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "cannot connect".to_owned()
    } else if let Some(s) = e.status() {
        format!("answered {s}")
    } else if e.is_decode() {
        "the answer is not the JSON expected".to_owned()
    } else {
        "the request failed".to_owned()
    };
    ProviderError::Http {
        what,
        url: url.to_string(),
        message,
    }
}

impl Provider {
    /// The provider at `issuer` (nothing is fetched yet).
    pub fn new(issuer: &str) -> Provider {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Provider {
            http,
            issuer: issuer.to_owned(),
            discovery: Mutex::new(None),
            keys: Mutex::new(Keys::default()),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        what: &'static str,
        url: &Url,
    ) -> Result<T, ProviderError> {
        let resp = self
            .http
            .get(url.clone())
            .header("accept", "application/json")
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| http_error(what, url, &e))?;
        let body = resp.bytes().await.map_err(|e| http_error(what, url, &e))?;
        if body.len() > MAX_BODY {
            return Err(ProviderError::Http {
                what,
                url: url.to_string(),
                message: "the answer is too large".into(),
            });
        }
        serde_json::from_slice(&body).map_err(|_| ProviderError::Http {
            what,
            url: url.to_string(),
            message: "the answer is not the JSON expected".into(),
        })
    }

    /// The discovery document (fetched once, then kept).
    pub async fn discovery(&self) -> Result<Discovery, ProviderError> {
        if let Some(d) = self.discovery.lock().expect("never poisoned").clone() {
            return Ok(d);
        }
        let url = Url::parse(&format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        ))
        .map_err(|_| ProviderError::Http {
            what: "discovery",
            url: self.issuer.clone(),
            message: "not a URL".into(),
        })?;
        let d: Discovery = self.get_json("discovery", &url).await?;
        if d.issuer != self.issuer {
            return Err(ProviderError::Issuer {
                configured: self.issuer.clone(),
                found: d.issuer,
            });
        }
        *self.discovery.lock().expect("never poisoned") = Some(d.clone());
        Ok(d)
    }

    /// The discovery document if it was fetched (for sign-out, which does not wait for it).
    pub fn known_discovery(&self) -> Option<Discovery> {
        self.discovery.lock().expect("never poisoned").clone()
    }

    /// The issuer's keys for a token naming `kid`: the keys kept, fetched first when there are
    /// none, or again when none has `kid` (a rotated key), unless they were already fetched
    /// again for that reason less than [`REFETCH_AFTER`] ago: a forged `kid` cannot make the
    /// server fetch more often than that.
    pub async fn keys_for(&self, kid: Option<&str>) -> Result<Jwks, ProviderError> {
        let fresh = |k: &Keys| match (&k.jwks, kid) {
            (None, _) => None,
            (Some(j), Some(kid)) if !j.has(kid) => {
                if k.refetched.is_some_and(|t| t.elapsed() < REFETCH_AFTER) {
                    Some(j.clone())
                } else {
                    None
                }
            }
            (Some(j), _) => Some(j.clone()),
        };
        if let Some(j) = fresh(&self.keys.lock().expect("never poisoned")) {
            return Ok(j);
        }
        let _one = self.fetching.lock().await;
        // another sign-in may have fetched them meanwhile
        if let Some(j) = fresh(&self.keys.lock().expect("never poisoned")) {
            return Ok(j);
        }
        let d = self.discovery().await?;
        let fetched = self.get_json::<Jwks>("keys", &d.jwks_uri).await;
        let mut k = self.keys.lock().expect("never poisoned");
        if k.jwks.is_some() {
            k.refetched = Some(Instant::now());
        }
        let jwks = fetched?;
        tracing::info!(keys = jwks.keys.len(), "OpenID provider's keys fetched");
        k.jwks = Some(jwks.clone());
        Ok(jwks)
    }

    /// Exchanges an authorization code for the ID token (client authentication:
    /// `client_secret_basic`, RFC 6749 2.3.1; the PKCE verifier).
    pub async fn exchange(
        &self,
        client_id: &str,
        client_secret: &str,
        code: &str,
        redirect_uri: &str,
        verifier: &str,
    ) -> Result<String, ProviderError> {
        #[derive(Deserialize)]
        struct Answer {
            #[serde(default)]
            id_token: Option<String>,
            #[serde(default)]
            error: Option<String>,
        }
        let d = self.discovery().await?;
        let url = &d.token_endpoint;
        let form = |s: &str| {
            serde_urlencoded::to_string([("", s)])
                .map(|v| v[1..].to_owned())
                .unwrap_or_default()
        };
        let resp = self
            .http
            .post(url.clone())
            .basic_auth(form(client_id), Some(form(client_secret)))
            .header("accept", "application/json")
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect_uri),
                ("code_verifier", verifier),
            ])
            .send()
            .await
            .map_err(|e| http_error("token request", url, &e))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| http_error("token request", url, &e))?;
        let answer: Option<Answer> = serde_json::from_slice(&body).ok();
        match answer {
            Some(Answer {
                id_token: Some(t), ..
            }) if status.is_success() => Ok(t),
            Some(Answer { error: Some(e), .. }) => Err(ProviderError::Http {
                what: "token request",
                url: url.to_string(),
                // the OAuth error code only (RFC 6749 5.2), a word such as `invalid_grant`
                message: e
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .take(40)
                    .collect(),
            }),
            _ => Err(ProviderError::Http {
                what: "token request",
                url: url.to_string(),
                message: format!("answered {status} without an ID token"),
            }),
        }
    }
}
