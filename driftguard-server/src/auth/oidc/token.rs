//! The ID token, verified: a JWS in compact form (RFC 7515) checked against the issuer's keys
//! (a JWK set, RFC 7517) with `ring`, then its claims against what this sign-in expects
//! (OpenID Connect Core 1.0, section 3.1.3.7). Pure: the keys, the expectations and the time
//! are values passed in.
//!
//! Only asymmetric algorithms are accepted ([`ALGORITHMS`]): `none` and the HMAC ones
//! (`HS256`, whose key would be the client secret) are refused before any key is looked at.

use base64::Engine as _;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde::Deserialize;
use serde_json::{Map, Value};

/// The signature algorithms an ID token may use.
pub const ALGORITHMS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
];

/// How far the provider's clock and ours may disagree, in seconds (`exp`, `iat`, `nbf`).
pub const CLOCK_SKEW: i64 = 60;

/// A JSON Web Key Set: the issuer's public keys.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Jwks {
    /// The keys.
    #[serde(default)]
    pub keys: Vec<Jwk>,
}

/// One public key of a [`Jwks`] (the members this verifier reads).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Jwk {
    /// `RSA` or `EC`.
    #[serde(default)]
    pub kty: String,
    /// Its id.
    #[serde(default)]
    pub kid: Option<String>,
    /// `sig` (or absent) for a signing key.
    #[serde(default, rename = "use")]
    pub use_: Option<String>,
    /// The one algorithm it is for, when it says.
    #[serde(default)]
    pub alg: Option<String>,
    /// RSA modulus.
    #[serde(default)]
    pub n: Option<String>,
    /// RSA exponent.
    #[serde(default)]
    pub e: Option<String>,
    /// EC curve (`P-256`, `P-384`).
    #[serde(default)]
    pub crv: Option<String>,
    /// EC x coordinate.
    #[serde(default)]
    pub x: Option<String>,
    /// EC y coordinate.
    #[serde(default)]
    pub y: Option<String>,
}

impl Jwks {
    /// Whether it holds a key with id `kid`.
    pub fn has(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }
}

/// What the sign-in expects of its ID token.
#[derive(Clone, Debug)]
pub struct Expected<'a> {
    /// The issuer (`iss`, compared exactly).
    pub issuer: &'a str,
    /// This client's id (among `aud`; `azp` when there are several audiences).
    pub client_id: &'a str,
    /// The nonce sent with the authorization request.
    pub nonce: &'a str,
    /// Now, in seconds since the Unix epoch.
    pub now: i64,
}

/// Why an ID token was refused. The messages never hold the token or a claim's value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a compact JWS of three base64url parts with JSON header and payload.
    #[error("the ID token is malformed")]
    Malformed,
    /// An algorithm outside [`ALGORITHMS`] (`none`, `HS256`, ...).
    #[error("the ID token is signed with `{0}`, which is not accepted")]
    Algorithm(String),
    /// The header has `crit` extensions, which this verifier does not understand.
    #[error("the ID token has critical header extensions")]
    Critical,
    /// No key of the issuer has its `kid` (or, without one, fits its algorithm).
    #[error("no key of the issuer signed the ID token")]
    UnknownKey,
    /// A key was found but the signature does not verify (the token was changed, or signed
    /// by another key).
    #[error("the ID token's signature does not verify")]
    Signature,
    /// `iss` is not the configured issuer.
    #[error("the ID token is from another issuer")]
    Issuer,
    /// `aud` does not name this client (or `azp` names another).
    #[error("the ID token is for another client")]
    Audience,
    /// Past `exp` (beyond the clock skew).
    #[error("the ID token has expired")]
    Expired,
    /// `iat` or `nbf` in the future (beyond the clock skew).
    #[error("the ID token is not valid yet")]
    NotYetValid,
    /// A required claim (`sub`, `exp`, `iat`, `nonce`) is missing or of the wrong type.
    #[error("the ID token has no `{0}`")]
    Missing(&'static str),
    /// `nonce` is not the one of this sign-in (a replayed token).
    #[error("the ID token is not from this sign-in (nonce)")]
    Nonce,
}

#[derive(Debug, Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<Value>,
}

fn b64(part: &str) -> Result<Vec<u8>, TokenError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Malformed)
}

/// The key id a token names (read without verifying anything): what to look for in the
/// issuer's keys, and whether to fetch them again.
pub fn key_id(token: &str) -> Option<String> {
    let header = token.split('.').next()?;
    serde_json::from_slice::<Header>(&b64(header).ok()?)
        .ok()?
        .kid
}

/// Verifies `token` with `keys`, then its claims against `expected`: its claims when it holds.
pub fn verify(
    token: &str,
    keys: &Jwks,
    expected: &Expected<'_>,
) -> Result<Map<String, Value>, TokenError> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let header: Header = serde_json::from_slice(&b64(h)?).map_err(|_| TokenError::Malformed)?;
    if !ALGORITHMS.contains(&header.alg.as_str()) {
        return Err(TokenError::Algorithm(header.alg.chars().take(16).collect()));
    }
    if header.crit.is_some() {
        return Err(TokenError::Critical);
    }
    let signature = b64(s)?;
    let signed = &token.as_bytes()[..h.len() + 1 + p.len()];
    let candidates: Vec<&Jwk> = keys
        .keys
        .iter()
        .filter(|k| fits(k, &header.alg))
        .filter(|k| match &header.kid {
            Some(kid) => k.kid.as_deref() == Some(kid.as_str()),
            None => true,
        })
        .collect();
    if candidates.is_empty() {
        return Err(TokenError::UnknownKey);
    }
    if !candidates
        .iter()
        .any(|k| verifies(k, &header.alg, signed, &signature))
    {
        return Err(TokenError::Signature);
    }
    let claims: Map<String, Value> =
        serde_json::from_slice(&b64(p)?).map_err(|_| TokenError::Malformed)?;
    check_claims(&claims, expected)?;
    Ok(claims)
}

/// Whether key `k` may verify a signature of `alg`.
fn fits(k: &Jwk, alg: &str) -> bool {
    if k.use_.as_deref().is_some_and(|u| u != "sig") || k.alg.as_deref().is_some_and(|a| a != alg) {
        return false;
    }
    match alg {
        "ES256" => k.kty == "EC" && k.crv.as_deref() == Some("P-256"),
        "ES384" => k.kty == "EC" && k.crv.as_deref() == Some("P-384"),
        _ => k.kty == "RSA",
    }
}

fn verifies(k: &Jwk, alg: &str, message: &[u8], sig: &[u8]) -> bool {
    let part = |v: &Option<String>| v.as_deref().and_then(|s| b64(s).ok());
    match alg {
        "ES256" | "ES384" => {
            let (Some(x), Some(y)) = (part(&k.x), part(&k.y)) else {
                return false;
            };
            let (algorithm, len): (&signature::EcdsaVerificationAlgorithm, usize) =
                if alg == "ES256" {
                    (&signature::ECDSA_P256_SHA256_FIXED, 32)
                } else {
                    (&signature::ECDSA_P384_SHA384_FIXED, 48)
                };
            if x.len() != len || y.len() != len {
                return false;
            }
            let mut point = Vec::with_capacity(1 + 2 * len);
            point.push(4);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            UnparsedPublicKey::new(algorithm, point)
                .verify(message, sig)
                .is_ok()
        }
        _ => {
            let (Some(n), Some(e)) = (part(&k.n), part(&k.e)) else {
                return false;
            };
            let algorithm: &signature::RsaParameters = match alg {
                "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
                "RS384" => &signature::RSA_PKCS1_2048_8192_SHA384,
                "RS512" => &signature::RSA_PKCS1_2048_8192_SHA512,
                "PS256" => &signature::RSA_PSS_2048_8192_SHA256,
                "PS384" => &signature::RSA_PSS_2048_8192_SHA384,
                "PS512" => &signature::RSA_PSS_2048_8192_SHA512,
                _ => return false,
            };
            RsaPublicKeyComponents { n: &n, e: &e }
                .verify(algorithm, message, sig)
                .is_ok()
        }
    }
}

/// The claim checks of OpenID Connect Core 1.0, 3.1.3.7, on a token whose signature holds:
/// `iss`, `aud` (and `azp`), `exp`, `iat` and `nbf` within [`CLOCK_SKEW`], `sub`, `nonce`.
pub fn check_claims(
    claims: &Map<String, Value>,
    expected: &Expected<'_>,
) -> Result<(), TokenError> {
    if claims.get("iss").and_then(Value::as_str) != Some(expected.issuer) {
        return Err(TokenError::Issuer);
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => return Err(TokenError::Missing("aud")),
    };
    if !audiences.contains(&expected.client_id) {
        return Err(TokenError::Audience);
    }
    match claims.get("azp").and_then(Value::as_str) {
        Some(azp) if azp != expected.client_id => return Err(TokenError::Audience),
        None if audiences.len() > 1 => return Err(TokenError::Audience),
        _ => {}
    }
    let time = |name: &'static str| claims.get(name).and_then(Value::as_i64);
    let exp = time("exp").ok_or(TokenError::Missing("exp"))?;
    let iat = time("iat").ok_or(TokenError::Missing("iat"))?;
    if expected.now > exp.saturating_add(CLOCK_SKEW) {
        return Err(TokenError::Expired);
    }
    if iat > expected.now.saturating_add(CLOCK_SKEW)
        || claims
            .get("nbf")
            .and_then(Value::as_i64)
            .is_some_and(|nbf| nbf > expected.now.saturating_add(CLOCK_SKEW))
    {
        return Err(TokenError::NotYetValid);
    }
    if claims
        .get("sub")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err(TokenError::Missing("sub"));
    }
    let nonce = claims
        .get("nonce")
        .and_then(Value::as_str)
        .ok_or(TokenError::Missing("nonce"))?;
    if !crate::auth::same_secret(nonce, expected.nonce) {
        return Err(TokenError::Nonce);
    }
    Ok(())
}

/// Test helpers: an ES256 issuer of tokens (`ring` makes the key), for this crate's tests and
/// the integration tests (feature `testkit`).
#[cfg(any(test, feature = "testkit"))]
pub mod testing {
    use base64::Engine as _;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    use serde_json::{json, Value};

    /// An ES256 signing key with its id.
    pub struct Signer {
        key: EcdsaKeyPair,
        /// Its `kid`.
        pub kid: String,
    }

    fn b64(b: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    }

    impl Signer {
        /// A new random key.
        pub fn new(kid: &str) -> Signer {
            let rng = SystemRandom::new();
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .expect("a P-256 key");
            let key =
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                    .expect("the key just made");
            Signer {
                key,
                kid: kid.to_owned(),
            }
        }

        /// Its public key as a JWK.
        pub fn jwk(&self) -> Value {
            let point = self.key.public_key().as_ref();
            json!({"kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": self.kid,
                   "x": b64(&point[1..33]), "y": b64(&point[33..65])})
        }

        /// A JWS of `claims`, signed with this key under `kid` (another key's id to forge).
        pub fn sign_as(&self, kid: &str, claims: &Value) -> String {
            let header = json!({"alg": "ES256", "typ": "JWT", "kid": kid});
            let signed = format!(
                "{}.{}",
                b64(header.to_string().as_bytes()),
                b64(claims.to_string().as_bytes())
            );
            let sig = self
                .key
                .sign(&SystemRandom::new(), signed.as_bytes())
                .expect("signs");
            format!("{signed}.{}", b64(sig.as_ref()))
        }

        /// A JWS of `claims` signed with this key.
        pub fn sign(&self, claims: &Value) -> String {
            self.sign_as(&self.kid.clone(), claims)
        }
    }

    /// `token` with its payload replaced by `claims`, the signature kept.
    pub fn with_payload(token: &str, claims: &Value) -> String {
        let parts: Vec<&str> = token.split('.').collect();
        format!(
            "{}.{}.{}",
            parts[0],
            b64(claims.to_string().as_bytes()),
            parts[2]
        )
    }

    /// A JWS with header `header` and payload `claims`, signature `sig` (for `none`, `HS256`).
    pub fn unsigned(header: &Value, claims: &Value, sig: &str) -> String {
        format!(
            "{}.{}.{sig}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        )
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::testing::{unsigned, with_payload, Signer};
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn claims() -> Value {
        json!({"iss": "https://id.acme.example", "aud": "driftguard", "sub": "u1",
               "nonce": "n-123", "iat": NOW - 10, "exp": NOW + 300,
               "email": "alice@acme.example", "groups": ["platform"]})
    }

    fn expected(now: i64) -> Expected<'static> {
        Expected {
            issuer: "https://id.acme.example",
            client_id: "driftguard",
            nonce: "n-123",
            now,
        }
    }

    fn keys(signers: &[&Signer]) -> Jwks {
        serde_json::from_value(json!({"keys": signers.iter().map(|s| s.jwk()).collect::<Vec<_>>()}))
            .expect("a JWK set")
    }

    #[test]
    fn a_token_signed_by_a_key_of_the_issuer_holds() {
        let (a, b) = (Signer::new("a"), Signer::new("b"));
        let t = b.sign(&claims());
        let got = verify(&t, &keys(&[&a, &b]), &expected(NOW)).expect("valid");
        assert_eq!(got["email"], "alice@acme.example");
        assert_eq!(key_id(&t).as_deref(), Some("b"));
    }

    #[test]
    fn a_changed_or_forged_token_is_refused() {
        let issuer = Signer::new("a");
        let keys = keys(&[&issuer]);
        let t = issuer.sign(&claims());
        // the payload changed: groups widened
        let mut more = claims();
        more["groups"] = json!(["platform", "admins"]);
        assert_eq!(
            verify(&with_payload(&t, &more), &keys, &expected(NOW)),
            Err(TokenError::Signature)
        );
        // signed by a key not in the set, under its kid
        let forger = Signer::new("a");
        assert_eq!(
            verify(&forger.sign(&claims()), &keys, &expected(NOW)),
            Err(TokenError::Signature)
        );
        // or under a kid the issuer does not have
        assert_eq!(
            verify(&forger.sign_as("z", &claims()), &keys, &expected(NOW)),
            Err(TokenError::UnknownKey)
        );
        // no signature, or one with the client secret as an HMAC key
        for alg in ["none", "HS256", "None"] {
            let t = unsigned(&json!({"alg": alg, "kid": "a"}), &claims(), "");
            assert_eq!(
                verify(&t, &keys, &expected(NOW)),
                Err(TokenError::Algorithm(alg.into()))
            );
        }
        let crit = unsigned(
            &json!({"alg": "ES256", "kid": "a", "crit": ["x"]}),
            &claims(),
            "AA",
        );
        assert_eq!(
            verify(&crit, &keys, &expected(NOW)),
            Err(TokenError::Critical)
        );
        for bad in ["", "a.b", "a.b.c.d", "!!.e30.AA", &t[1..]] {
            assert!(verify(bad, &keys, &expected(NOW)).is_err(), "{bad}");
        }
    }

    #[test]
    fn time_is_checked_with_a_bounded_skew() {
        let issuer = Signer::new("a");
        let keys = keys(&[&issuer]);
        let t = issuer.sign(&claims());
        let exp = NOW + 300;
        assert!(
            verify(&t, &keys, &expected(exp + CLOCK_SKEW)).is_ok(),
            "within the skew"
        );
        assert_eq!(
            verify(&t, &keys, &expected(exp + CLOCK_SKEW + 1)),
            Err(TokenError::Expired)
        );
        // issued in the future (our clock behind), beyond the skew
        assert!(verify(&t, &keys, &expected(NOW - 10 - CLOCK_SKEW)).is_ok());
        assert_eq!(
            verify(&t, &keys, &expected(NOW - 11 - CLOCK_SKEW)),
            Err(TokenError::NotYetValid)
        );
        let mut c = claims();
        c["nbf"] = json!(NOW + CLOCK_SKEW + 5);
        assert_eq!(
            verify(&issuer.sign(&c), &keys, &expected(NOW)),
            Err(TokenError::NotYetValid)
        );
    }

    #[test]
    fn issuer_audience_subject_and_nonce_are_this_sign_in_s() {
        let issuer = Signer::new("a");
        let keys = keys(&[&issuer]);
        let check = |edit: &dyn Fn(&mut Value)| {
            let mut c = claims();
            edit(&mut c);
            verify(&issuer.sign(&c), &keys, &expected(NOW))
        };
        assert_eq!(
            check(&|c| c["iss"] = json!("https://id.acme.example/")),
            Err(TokenError::Issuer)
        );
        assert_eq!(
            check(&|c| c["aud"] = json!("other")),
            Err(TokenError::Audience)
        );
        assert!(check(&|c| c["aud"] = json!(["driftguard"])).is_ok());
        assert_eq!(
            check(&|c| c["aud"] = json!(["driftguard", "other"])),
            Err(TokenError::Audience),
            "azp needed"
        );
        assert!(check(&|c| {
            c["aud"] = json!(["driftguard", "other"]);
            c["azp"] = json!("driftguard");
        })
        .is_ok());
        assert_eq!(
            check(&|c| c["azp"] = json!("other")),
            Err(TokenError::Audience)
        );
        assert_eq!(
            check(&|c| c["nonce"] = json!("n-124")),
            Err(TokenError::Nonce)
        );
        for claim in ["nonce", "sub", "exp", "iat", "aud"] {
            assert!(
                matches!(
                    check(&|c| {
                        c.as_object_mut().map(|m| m.remove(claim));
                    }),
                    Err(TokenError::Missing(_))
                ),
                "{claim}"
            );
        }
        assert_eq!(
            check(&|c| c["exp"] = json!("soon")),
            Err(TokenError::Missing("exp"))
        );
    }

    #[test]
    fn keys_are_chosen_by_id_type_and_use() {
        let a = Signer::new("a");
        let mut jwk = a.jwk();
        jwk["use"] = json!("enc");
        let enc: Jwks = serde_json::from_value(json!({"keys": [jwk]})).expect("jwks");
        assert_eq!(
            verify(&a.sign(&claims()), &enc, &expected(NOW)),
            Err(TokenError::UnknownKey)
        );
        let mut jwk = a.jwk();
        jwk.as_object_mut().map(|m| m.remove("kid"));
        let anonymous: Jwks = serde_json::from_value(json!({"keys": [jwk]})).expect("jwks");
        assert_eq!(
            verify(&a.sign(&claims()), &anonymous, &expected(NOW)),
            Err(TokenError::UnknownKey),
            "the kid must match"
        );
        let t = unsigned(&json!({"alg": "ES256"}), &claims(), "AA");
        assert_eq!(
            verify(&t, &anonymous, &expected(NOW)),
            Err(TokenError::Signature),
            "no kid: any key that fits"
        );
        assert!(format!("{}", TokenError::Signature).len() < 60);
    }
}
