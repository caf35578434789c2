//! Who is asking, and what they may do: the one place where credentials are read and scopes
//! are decided, for the API, MCP and the dashboard alike.
//!
//! - [`Caller`]: who made a request (a token's name, never the token) and its scopes; every
//!   check of a scope is [`Caller::may`].
//! - [`Authorization`]: the one reader of the `Authorization` header (the scheme in any case,
//!   RFC 7235): `Bearer` for the API and MCP, `Bearer` or `Basic` for the audit webhook.
//! - [`caller_of`]: which configured token a presented one is, compared in constant time.
//! - [`session`]: the dashboard's sessions, each acting as the caller who signed in.
//! - [`oidc`]: sign-in with OpenID Connect; a person is a caller named `user:<e-mail>` whose
//!   roles are those their groups or e-mail are bound to.
//! - [`middleware`]: [`authenticate`] finds the caller of a request; [`Needs`], on a route, is
//!   the scope that route needs.
//! - [`throttle`]: the limit on failed sign-ins and token checks per client.
//! - [`visible`]: what a caller whose roles cover some environments sees ([`Grant`],
//!   [`Caller::may_in`], the one check of roles per environment).

pub mod middleware;
pub mod oidc;
pub mod session;
pub mod throttle;
pub mod visible;

use axum::http::{header, HeaderMap, StatusCode};
use std::collections::BTreeMap;

use base64::Engine as _;
use subtle::ConstantTimeEq;

use crate::config::{Role, RoleBinding, ScopedToken, TokenScope};
use crate::error::AppError;

pub use middleware::{authenticate, Needs};

/// A role held in some environments (a `roleBindings` entry).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The role.
    pub role: Role,
    /// The environments, as globs.
    pub environments: Vec<String>,
    /// Discovered environments whose tool's object carries all these labels (empty: none by
    /// label). [`Caller::with_labelled`] adds their names to `environments` when a request
    /// is authenticated, from the environments discovered then.
    pub labels: BTreeMap<String, String>,
}

impl Grant {
    /// The grant of a binding (an admin's applies to every environment).
    pub fn of(b: &RoleBinding) -> Grant {
        Grant {
            role: b.role,
            environments: if b.role == Role::Admin {
                vec!["*".into()]
            } else {
                b.environments.clone()
            },
            labels: if b.role == Role::Admin {
                BTreeMap::new()
            } else {
                b.environment_labels.clone()
            },
        }
    }

    /// Whether it applies to `environment`.
    pub fn covers(&self, environment: &str) -> bool {
        self.environments
            .iter()
            .any(|g| driftguard_core::path::glob_match(g, environment))
    }
}

/// Who made a request, as its credentials say (an extension of every authenticated request).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// `token:<name>` for a named token, `token` for a plain one, `anonymous` without tokens.
    pub name: String,
    /// What it may do in every environment.
    pub scopes: Vec<TokenScope>,
    /// The roles it holds in some environments.
    pub grants: Vec<Grant>,
}

impl Caller {
    /// A caller who may do `scopes` everywhere and holds no role.
    pub fn with_scopes(name: impl Into<String>, scopes: Vec<TokenScope>) -> Caller {
        Caller {
            name: name.into(),
            scopes,
            grants: Vec::new(),
        }
    }

    /// The one check of roles per environment: whether the caller may do what `scope`
    /// allows in `environment` (its scopes apply everywhere, a role where its binding
    /// applies). The API, the dashboard, MCP and the event stream ask this.
    pub fn may_in(&self, scope: TokenScope, environment: &str) -> bool {
        self.scopes.contains(&scope)
            || self
                .grants
                .iter()
                .any(|g| g.role.scopes().contains(&scope) && g.covers(environment))
    }

    /// [`Caller::may_in`] as an answer: a 403 naming the environment.
    pub fn may_in_env(&self, scope: TokenScope, environment: &str) -> Result<(), AppError> {
        self.may(scope)?;
        if self.may_in(scope, environment) {
            return Ok(());
        }
        Err(AppError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "{} may not {} in environment `{environment}`: no role binding gives it there",
                self.name,
                scope_verb(scope)
            ),
        ))
    }

    /// Whether the caller reads every environment (no role restricts what it sees).
    pub fn reads_everything(&self) -> bool {
        self.scopes.contains(&TokenScope::Read)
            || self
                .grants
                .iter()
                .any(|g| g.environments.iter().any(|e| e == "*"))
    }

    /// The same caller, reading only (what a session cookie allows on the API): its scopes
    /// cut to `read`, its roles to `viewer`, where they applied.
    pub fn reading_only(&self) -> Caller {
        Caller {
            name: self.name.clone(),
            scopes: self
                .scopes
                .iter()
                .copied()
                .filter(|s| *s == TokenScope::Read)
                .collect(),
            grants: self
                .grants
                .iter()
                .map(|g| Grant {
                    role: Role::Viewer,
                    ..g.clone()
                })
                .collect(),
        }
    }

    /// The same caller, each grant by labels also naming the discovered environments that
    /// `labelled` finds for its labels now (the one place a binding's `environmentLabels`
    /// become environments; [`crate::state::AppState::resolved`] gives the discovered ones).
    pub fn with_labelled(
        mut self,
        labelled: impl Fn(&BTreeMap<String, String>) -> Vec<String>,
    ) -> Caller {
        for g in &mut self.grants {
            if !g.labels.is_empty() {
                for name in labelled(&g.labels) {
                    if !g.environments.contains(&name) {
                        g.environments.push(name);
                    }
                }
            }
        }
        self
    }

    /// Whether `scope` holds for every environment: the caller's own scopes, or an admin.
    pub fn may_everywhere(&self, scope: TokenScope) -> bool {
        self.scopes.contains(&scope) || self.grants.iter().any(|g| g.role == Role::Admin)
    }

    /// The caller of a request when no token is configured: it may read and scan, never
    /// remediate (remediation needs a named token with the `remediate` scope).
    pub fn anonymous() -> Caller {
        Caller {
            name: "anonymous".into(),
            scopes: vec![TokenScope::Read, TokenScope::Scan],
            grants: Vec::new(),
        }
    }

    /// Whether it may do what `needed` allows: otherwise 403 `forbidden`, naming the scope
    /// to give the token.
    pub fn may(&self, needed: TokenScope) -> Result<(), AppError> {
        if self.scopes.contains(&needed)
            || self
                .grants
                .iter()
                .any(|g| g.role.scopes().contains(&needed))
        {
            return Ok(());
        }
        let (what, scope) = match needed {
            TokenScope::Remediate => ("remediate", "remediate"),
            TokenScope::Scan => ("ask for scans", "scan"),
            TokenScope::Read => ("read", "read"),
        };
        Err(AppError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this token may not {what}: give it the `{scope}` scope in server.apiTokens"),
        ))
    }
}

fn scope_verb(scope: TokenScope) -> &'static str {
    match scope {
        TokenScope::Remediate => "remediate",
        TokenScope::Scan => "scan or acknowledge",
        TokenScope::Read => "read",
    }
}

/// Whether two secrets are equal, compared in constant time (for secrets of the same length).
pub fn same_secret(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// Who `token` is among the configured tokens, and what it may do: a plain token reads and
/// scans, a named one has its configured scopes (every token is compared, in constant time).
/// `None`: not a token of this server.
pub fn caller_of(token: &str, plain: &[String], named: &[ScopedToken]) -> Option<Caller> {
    if token.is_empty() {
        return None;
    }
    let mut found = None;
    for t in plain {
        if same_secret(t, token) {
            found = Some(Caller::with_scopes(
                "token",
                vec![TokenScope::Read, TokenScope::Scan],
            ));
        }
    }
    for t in named {
        if same_secret(&t.token, token) {
            found = Some(Caller {
                name: format!("token:{}", t.name),
                scopes: t.scopes.clone(),
                grants: t.grants.clone(),
            });
        }
    }
    found
}

/// An `Authorization` header, read: the scheme's name in any case (RFC 7235), then its
/// credentials after one or more spaces (a `Bearer` without a token cannot be read).
#[derive(Clone, PartialEq, Eq)]
pub enum Authorization {
    /// `Bearer <token>` (RFC 6750).
    Bearer(String),
    /// `Basic <base64 of user:password>` (RFC 7617).
    Basic {
        /// The user name.
        user: String,
        /// The password.
        password: String,
    },
    /// Another scheme, or credentials that cannot be read.
    Unreadable,
}

impl std::fmt::Debug for Authorization {
    // never the secret
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Authorization::Bearer(_) => f.write_str("Bearer(..)"),
            Authorization::Basic { user, .. } => write!(f, "Basic({user}:..)"),
            Authorization::Unreadable => f.write_str("Unreadable"),
        }
    }
}

impl Authorization {
    /// The `Authorization` header of a request, read; `None` without one.
    pub fn of(headers: &HeaderMap) -> Option<Authorization> {
        headers
            .get(header::AUTHORIZATION)
            .map(|v| Authorization::parse(v.to_str().unwrap_or("")))
    }

    /// Reads a header value.
    pub fn parse(value: &str) -> Authorization {
        let value = value.trim();
        let (scheme, credentials) = value.split_once(' ').unwrap_or((value, ""));
        let credentials = credentials.trim();
        if scheme.eq_ignore_ascii_case("bearer") && !credentials.is_empty() {
            Authorization::Bearer(credentials.to_owned())
        } else if scheme.eq_ignore_ascii_case("basic") {
            base64::engine::general_purpose::STANDARD
                .decode(credentials)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|up| {
                    up.split_once(':').map(|(u, p)| Authorization::Basic {
                        user: u.to_owned(),
                        password: p.to_owned(),
                    })
                })
                .unwrap_or(Authorization::Unreadable)
        } else {
            Authorization::Unreadable
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_is_read_in_any_case() {
        for v in [
            "Bearer abc",
            "bearer abc",
            "BEARER abc",
            "bEaReR   abc ",
            " Bearer abc",
        ] {
            assert_eq!(
                Authorization::parse(v),
                Authorization::Bearer("abc".into()),
                "{v:?}"
            );
        }
        let basic = base64::engine::general_purpose::STANDARD.encode("driftguard:s3cret");
        for scheme in ["Basic", "basic", "BASIC"] {
            assert_eq!(
                Authorization::parse(&format!("{scheme} {basic}")),
                Authorization::Basic {
                    user: "driftguard".into(),
                    password: "s3cret".into()
                }
            );
        }
        for v in [
            "Digest abc",
            "Bearerabc",
            "Basic !!!",
            "Basic YWJj",
            "",
            "Token abc",
        ] {
            assert_eq!(Authorization::parse(v), Authorization::Unreadable, "{v:?}");
        }
        // a token is not optional (RFC 6750: `Bearer 1*SP b64token`)
        for v in ["Bearer", "Bearer ", "bearer   "] {
            assert_eq!(Authorization::parse(v), Authorization::Unreadable, "{v:?}");
        }
        assert_eq!(
            format!("{:?}", Authorization::parse("Bearer abc")),
            "Bearer(..)",
            "never the token"
        );
    }

    #[test]
    fn tokens_name_their_callers() {
        let named = vec![ScopedToken {
            name: "ops".into(),
            token: "t-ops".into(),
            scopes: vec![TokenScope::Read, TokenScope::Remediate],
            grants: Vec::new(),
        }];
        let plain = vec!["t-plain".to_owned()];
        let c = caller_of("t-ops", &plain, &named).expect("named");
        assert_eq!(c.name, "token:ops");
        assert!(c.may(TokenScope::Remediate).is_ok());
        assert_eq!(
            c.may(TokenScope::Scan).map_err(|e| e.code),
            Err("forbidden")
        );
        let c = caller_of("t-plain", &plain, &named).expect("plain");
        assert_eq!(c.name, "token");
        assert!(c.may(TokenScope::Scan).is_ok() && c.may(TokenScope::Remediate).is_err());
        assert_eq!(caller_of("t-op", &plain, &named), None);
        assert_eq!(caller_of("", &[String::new()], &[]), None);
        assert!(
            same_secret("abc", "abc") && !same_secret("abc", "abd") && !same_secret("ab", "abc")
        );
    }
}
