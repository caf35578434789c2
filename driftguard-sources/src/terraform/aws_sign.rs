//! What every AWS request of the Terraform source shares (feature `aws`): credentials from
//! the AWS SDK's default credential chain (`aws-config`) or fixed keys, and AWS Signature
//! Version 4 (`aws-sigv4`). The account's listing ([`super::aws`]) and CloudTrail's reader
//! ([`super::cloudtrail`]) both sign here. Credentials are never logged or shown: the signature
//! and a session token are sensitive headers (out of reqwest's `Debug`).

use std::time::SystemTime;

use aws_config::{BehaviorVersion, Region};
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{
    PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings,
};
use aws_sigv4::sign::v4;
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use driftguard_core::error::chain;
use reqwest::header::{HeaderName, HeaderValue};
use tokio::sync::OnceCell;

/// AWS credentials (the SDK's own type): `Debug` shows the access key id, never the secret
/// key or the session token.
pub use aws_credential_types::Credentials;

/// Where credentials come from: fixed keys, or the SDK's default chain (the environment, the
/// profile files with SSO and `credential_process`, a web identity token, container
/// credentials, then the instance metadata service), built at first use (it reads the
/// profile files) in `region` (no region lookup, so no metadata call for it).
pub(super) struct CredentialChain {
    fixed: Option<Credentials>,
    region: String,
    provider: OnceCell<SharedCredentialsProvider>,
}

impl CredentialChain {
    /// The chain; `fixed` replaces it.
    pub(super) fn new(fixed: Option<Credentials>, region: &str) -> Self {
        CredentialChain {
            fixed,
            region: region.to_owned(),
            provider: OnceCell::new(),
        }
    }

    /// The fixed credentials, or the SDK's default chain over the SDK's HTTP client (rustls
    /// with ring).
    async fn build_provider(&self) -> SharedCredentialsProvider {
        if let Some(c) = &self.fixed {
            return SharedCredentialsProvider::new(c.clone());
        }
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https();
        aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(self.region.clone()))
            .http_client(http)
            .load()
            .await
            .credentials_provider()
            .expect("the loader builds the default chain when none is set")
    }

    /// Credentials for one round of requests (one line when there are none).
    pub(super) async fn credentials(&self) -> Result<Credentials, String> {
        let provider = self.provider.get_or_init(|| self.build_provider()).await;
        provider
            .provide_credentials()
            .await
            .map_err(|e| format!("no AWS credentials: {}", chain(&e)))
    }
}

/// Signs `request` for `service` in `region` at `time` with AWS Signature Version 4, adding
/// `x-amz-date`, `x-amz-content-sha256` (S3 needs it, the others accept it),
/// `x-amz-security-token` with temporary credentials, and `authorization`. Every header
/// already on the request is signed; the host is the URL's.
pub(super) fn sign(
    request: &mut reqwest::Request,
    credentials: &Credentials,
    region: &str,
    service: &str,
    time: SystemTime,
) -> Result<(), String> {
    let failed =
        |e: &dyn std::error::Error| format!("cannot sign a request to {service}: {}", chain(e));
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(settings)
        .build()
        .expect("identity, region, name and time are all given")
        .into();
    let headers: Vec<(&str, &str)> = request
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
        .collect();
    let body = request
        .body()
        .and_then(reqwest::Body::as_bytes)
        .unwrap_or(b"");
    let signable = SignableRequest::new(
        request.method().as_str(),
        request.url().as_str(),
        headers.into_iter(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| failed(&e))?;
    let (instructions, _signature) = aws_sigv4::http_request::sign(signable, &params)
        .map_err(|e| failed(&e))?
        .into_parts();
    let (added, _params) = instructions.into_parts();
    for h in added {
        // a session token with a control character, say
        let mut value = HeaderValue::from_str(h.value()).map_err(|e| failed(&e))?;
        // the token and the signature stay out of reqwest's Debug
        value.set_sensitive(h.sensitive() || h.name() == "authorization");
        request
            .headers_mut()
            .insert(HeaderName::from_static(h.name()), value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn signature_v4_matches_the_aws_test_suite() {
        // the `get-vanilla-query-order-key-case` case of AWS's SigV4 test suite, with the
        // content hash header every request of this module carries (S3 needs it), checked
        // against botocore's signer
        let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
        let creds = Credentials::new("AKIDEXAMPLE", secret, None, None, "test");
        // 2015-08-30T12:36:00Z
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160);
        let url = "https://example.amazonaws.com/?Param2=value2&Param1=value1";
        let mut request =
            reqwest::Request::new(reqwest::Method::GET, url.parse().expect("valid URL"));
        sign(&mut request, &creds, "us-east-1", "service", now).expect("signed");
        let auth = request
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .expect("authorization");
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=311c7f58b10b06de8540bb5a27f441ee0609f1d5ad7b191e68d7ea87d90e3d6b"
        );
        assert_eq!(request.headers()["x-amz-date"], "20150830T123600Z");
        assert!(request.headers().get("x-amz-security-token").is_none());
        assert!(!format!("{creds:?}").contains("wJalr"));
        assert!(!format!("{request:?}").contains("Signature="));

        // temporary credentials: the token is sent, signed and hidden
        let token = "TOKEN-of-a-session";
        let temporary = Credentials::new("AKIDEXAMPLE", secret, Some(token.into()), None, "t");
        let mut request =
            reqwest::Request::new(reqwest::Method::GET, url.parse().expect("valid URL"));
        sign(&mut request, &temporary, "us-east-1", "service", now).expect("signed");
        assert_eq!(request.headers()["x-amz-security-token"], token);
        assert!(request.headers()["authorization"]
            .to_str()
            .expect("ASCII")
            .contains("SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token"));
        assert!(!format!("{temporary:?} {request:?}").contains(token));
    }
}
