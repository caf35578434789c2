//! The pure parts of a sign-in: PKCE (RFC 7636, `S256`), the authorization and sign-out URLs,
//! and who a verified ID token's claims make a person, with the roles their bindings give.

use base64::Engine as _;
use reqwest::Url;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::auth::{Caller, Grant};
use crate::config::RoleBinding;

/// A PKCE pair: the verifier kept for the token request, its S256 challenge sent with the
/// authorization request.
#[derive(Clone, PartialEq, Eq)]
pub struct Pkce {
    /// The verifier (43 characters of base64url).
    pub verifier: String,
    /// `BASE64URL(SHA256(verifier))`.
    pub challenge: String,
}

impl std::fmt::Debug for Pkce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pkce(..)")
    }
}

impl Pkce {
    /// The pair of 32 random bytes.
    pub fn from_random(bytes: &[u8; 32]) -> Pkce {
        let verifier = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        Pkce {
            challenge: challenge(&verifier),
            verifier,
        }
    }
}

/// The S256 challenge of a verifier.
pub fn challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// What the authorization request carries.
#[derive(Clone, Debug)]
pub struct AuthRequest<'a> {
    /// The client id.
    pub client_id: &'a str,
    /// Where the provider sends the browser back.
    pub redirect_uri: &'a str,
    /// Scopes.
    pub scopes: &'a [String],
    /// The state (checked at the callback).
    pub state: &'a str,
    /// The nonce (checked in the ID token).
    pub nonce: &'a str,
    /// The PKCE challenge (S256).
    pub challenge: &'a str,
}

/// The authorization endpoint's URL for `r` (its own query parameters kept).
pub fn authorization_url(endpoint: &Url, r: &AuthRequest<'_>) -> Url {
    let mut u = endpoint.clone();
    u.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", r.client_id)
        .append_pair("redirect_uri", r.redirect_uri)
        .append_pair("scope", &r.scopes.join(" "))
        .append_pair("state", r.state)
        .append_pair("nonce", r.nonce)
        .append_pair("code_challenge", r.challenge)
        .append_pair("code_challenge_method", "S256");
    u
}

/// The provider's sign-out URL (OpenID Connect RP-Initiated Logout 1.0): back to
/// `after` once signed out there.
pub fn logout_url(end_session: &Url, client_id: &str, after: &str) -> Url {
    let mut u = end_session.clone();
    u.query_pairs_mut()
        .append_pair("client_id", client_id)
        .append_pair("post_logout_redirect_uri", after);
    u
}

/// Who signed in, as the ID token says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Person {
    /// `sub`.
    pub subject: String,
    /// `email`, when there is one not marked unverified.
    pub email: Option<String>,
    /// The groups claim's values.
    pub groups: Vec<String>,
}

impl Person {
    /// The person's claims: `sub`, `email` (unless `email_verified` is false) and the groups
    /// claim (a list of strings or one string; absent: none).
    pub fn of(claims: &Map<String, Value>, groups_claim: &str) -> Person {
        let verified = claims.get("email_verified").and_then(Value::as_bool) != Some(false);
        let groups = match claims.get(groups_claim) {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            Some(Value::String(g)) => vec![g.clone()],
            _ => Vec::new(),
        };
        Person {
            subject: claims
                .get("sub")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            email: claims
                .get("email")
                .and_then(Value::as_str)
                .filter(|_| verified)
                .map(str::to_owned),
            groups,
        }
    }

    /// The name of the caller (`user:<email>`, else `user:<sub>`): who the history says did
    /// what.
    pub fn name(&self) -> String {
        format!("user:{}", self.email.as_deref().unwrap_or(&self.subject))
    }
}

/// Why a person who proved who they are may not in.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Sign-in is for some e-mail domains and the token has no (verified) e-mail.
    #[error("your identity provider gave no verified e-mail address, and this DriftGuard lets in only addresses of {allowed}")]
    NoEmail {
        /// The allowed domains, listed.
        allowed: String,
    },
    /// The e-mail's domain is not one of the allowed ones.
    #[error("{domain} is not among the e-mail domains allowed to sign in to this DriftGuard ({allowed})")]
    Domain {
        /// The person's domain.
        domain: String,
        /// The allowed domains, listed.
        allowed: String,
    },
    /// No role binding names the person or one of their groups.
    #[error("{who} ({groups}) holds no role here: no entry of server.roleBindings names you or one of your groups; ask an admin of DriftGuard to bind one")]
    NoRole {
        /// Who.
        who: String,
        /// Their groups, listed (or `no groups`).
        groups: String,
    },
}

impl Refusal {
    /// A short word for the history of people's actions.
    pub fn kind(&self) -> &'static str {
        match self {
            Refusal::NoEmail { .. } => "no verified e-mail",
            Refusal::Domain { .. } => "e-mail domain not allowed",
            Refusal::NoRole { .. } => "no role binding",
        }
    }
}

/// Lets `person` in or says why not: their e-mail's domain among `allowed_domains` (when
/// there are any), and at least one binding naming them (by e-mail, without case, or by
/// subject) or one of their groups. The caller holds those bindings' roles and no scope of
/// its own.
pub fn admit(
    person: &Person,
    allowed_domains: &[String],
    bindings: &[RoleBinding],
) -> Result<Caller, Refusal> {
    if !allowed_domains.is_empty() {
        let allowed = allowed_domains.join(", ");
        let Some(email) = &person.email else {
            return Err(Refusal::NoEmail { allowed });
        };
        let domain = email
            .rsplit_once('@')
            .map_or("", |(_, d)| d)
            .to_ascii_lowercase();
        if !allowed_domains.contains(&domain) {
            return Err(Refusal::Domain { domain, allowed });
        }
    }
    let grants: Vec<Grant> = bindings
        .iter()
        .filter(|b| {
            b.users.iter().any(|u| {
                *u == person.subject
                    || person
                        .email
                        .as_deref()
                        .is_some_and(|e| e.eq_ignore_ascii_case(u))
            }) || b.groups.iter().any(|g| person.groups.contains(g))
        })
        .map(Grant::of)
        .collect();
    if grants.is_empty() {
        return Err(Refusal::NoRole {
            who: person
                .email
                .clone()
                .unwrap_or_else(|| person.subject.clone()),
            groups: if person.groups.is_empty() {
                "no groups".into()
            } else {
                format!("groups: {}", person.groups.join(", "))
            },
        });
    }
    Ok(Caller {
        name: person.name(),
        scopes: Vec::new(),
        grants,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::config::{Role, TokenScope};

    #[test]
    fn pkce_is_rfc_7636_s256() {
        // RFC 7636, appendix B
        assert_eq!(
            challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let p = Pkce::from_random(&[7; 32]);
        assert_eq!(p.verifier.len(), 43);
        assert_eq!(p.challenge, challenge(&p.verifier));
        assert_eq!(format!("{p:?}"), "Pkce(..)");
    }

    #[test]
    fn the_authorization_url_carries_every_parameter_encoded() {
        let endpoint = Url::parse("https://id.acme.example/authorize?tenant=a").expect("url");
        let scopes = vec!["openid".to_owned(), "email".to_owned(), "groups".to_owned()];
        let u = authorization_url(
            &endpoint,
            &AuthRequest {
                client_id: "drift guard",
                redirect_uri: "https://dg.acme.example/auth/oidc/callback",
                scopes: &scopes,
                state: "s1",
                nonce: "n1",
                challenge: "c1",
            },
        );
        assert_eq!(
            u.as_str(),
            "https://id.acme.example/authorize?tenant=a&response_type=code&client_id=drift+guard\
             &redirect_uri=https%3A%2F%2Fdg.acme.example%2Fauth%2Foidc%2Fcallback\
             &scope=openid+email+groups&state=s1&nonce=n1&code_challenge=c1&code_challenge_method=S256"
        );
        let out = logout_url(
            &Url::parse("https://id.acme.example/logout").expect("url"),
            "dg",
            "https://dg/login",
        );
        assert_eq!(
            out.as_str(),
            "https://id.acme.example/logout?client_id=dg&post_logout_redirect_uri=https%3A%2F%2Fdg%2Flogin"
        );
    }

    fn binding(role: Role, envs: &[&str], groups: &[&str], users: &[&str]) -> RoleBinding {
        RoleBinding {
            role,
            environments: envs.iter().map(|s| s.to_string()).collect(),
            environment_labels: Default::default(),
            tokens: Vec::new(),
            groups: groups.iter().map(|s| s.to_string()).collect(),
            users: users.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn claims_make_a_person() {
        let c = |v: Value| v.as_object().cloned().expect("an object");
        let p = Person::of(
            &c(json!({"sub": "u1", "email": "Alice@Acme.example", "roles": "platform"})),
            "roles",
        );
        assert_eq!(p.groups, vec!["platform"]);
        assert_eq!(p.name(), "user:Alice@Acme.example");
        let p = Person::of(
            &c(
                json!({"sub": "u2", "email": "b@acme.example", "email_verified": false, "groups": ["a", 3]}),
            ),
            "groups",
        );
        assert_eq!(
            (p.email, p.groups),
            (None, vec!["a".to_owned()]),
            "an unverified e-mail is none"
        );
    }

    #[test]
    fn people_get_the_roles_of_their_groups_and_names_in_allowed_domains() {
        let bindings = vec![
            binding(Role::Operator, &["prod-*"], &["platform"], &[]),
            binding(
                Role::Viewer,
                &["dev"],
                &["team-dev"],
                &["carol@other.example"],
            ),
            binding(Role::Admin, &["dev"], &[], &["u-boss"]),
        ];
        let person = |email: Option<&str>, groups: &[&str]| Person {
            subject: "u1".into(),
            email: email.map(str::to_owned),
            groups: groups.iter().map(|s| s.to_string()).collect(),
        };
        let domains = vec!["acme.example".to_owned()];
        let alice = admit(
            &person(Some("alice@acme.example"), &["platform"]),
            &domains,
            &bindings,
        )
        .expect("in");
        assert_eq!(alice.name, "user:alice@acme.example");
        assert!(alice.scopes.is_empty());
        assert!(
            alice.may_in(TokenScope::Scan, "prod-eu") && !alice.may_in(TokenScope::Read, "dev")
        );
        let bob = admit(
            &person(Some("bob@ACME.example"), &["team-dev"]),
            &domains,
            &bindings,
        )
        .expect("in");
        assert!(bob.may_in(TokenScope::Read, "dev") && !bob.may_in(TokenScope::Scan, "dev"));
        assert!(!bob.may_in(TokenScope::Read, "prod-eu"));
        // a wrong group
        let err = admit(
            &person(Some("dan@acme.example"), &["sales"]),
            &domains,
            &bindings,
        )
        .expect_err("no role");
        assert_eq!(err.kind(), "no role binding");
        assert!(
            err.to_string()
                .starts_with("dan@acme.example (groups: sales) holds no role here"),
            "{err}"
        );
        // named, but from a domain not allowed
        let err = admit(
            &person(Some("carol@other.example"), &[]),
            &domains,
            &bindings,
        )
        .expect_err("domain");
        assert_eq!(
            err.to_string(),
            "other.example is not among the e-mail domains allowed to sign in to this DriftGuard (acme.example)"
        );
        assert!(
            admit(&person(Some("carol@other.example"), &[]), &[], &bindings).is_ok(),
            "any domain"
        );
        assert_eq!(
            admit(&person(None, &["platform"]), &domains, &bindings).map_err(|e| e.kind()),
            Err("no verified e-mail")
        );
        // by subject, an admin everywhere
        let boss = Person {
            subject: "u-boss".into(),
            email: None,
            groups: vec![],
        };
        let boss = admit(&boss, &[], &bindings).expect("in");
        assert!(boss.may_in(TokenScope::Remediate, "anything"));
        assert_eq!(boss.name, "user:u-boss");
    }
}
