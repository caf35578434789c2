//! The `server:` section and the notifiers of the configuration file.
//!
//! Keys are camelCase like the rest of the file; the snake_case spellings these sections used
//! to have are still read (serde aliases), and loading warns about each one
//! ([`super::Config::warnings`]). Unknown fields are refused.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use driftguard_core::severity::Severity;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Durations in the configuration (`500ms`, `30s`, `5m`, `1h`, `7d`, `2w`; a bare number is
/// seconds): the core's type, re-exported so that `config::HumanDuration` keeps working.
pub use driftguard_core::duration::HumanDuration;

/// The `server:` section of the configuration (used by `driftguard serve`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on (`--listen` overrides it). Without API tokens a non-loopback
    /// address is replaced by `127.0.0.1` on the same port.
    pub listen: String,
    /// Bearer tokens accepted by the API, written inline. Prefer `tokenEnv`. Every token
    /// (these, `tokenEnv`'s, `apiTokens`' and the audit webhooks') has at least 16 characters,
    /// 8 of them different, or the server does not start (`openssl rand -hex 20` makes one).
    pub tokens: Vec<String>,
    /// Name of an environment variable holding bearer tokens (comma separated).
    #[serde(alias = "token_env")]
    pub token_env: Option<String>,
    /// Named bearer tokens with scopes. The plain `tokens` and `tokenEnv` may `read` and
    /// `scan`; only a token given the `remediate` scope here may remediate.
    pub api_tokens: Vec<ApiTokenConfig>,
    /// Roles per environment: who (API tokens by name, people signed in with OpenID Connect
    /// by group or e-mail) holds which role (`viewer`, `operator`, `remediator`, `admin`) in
    /// which environments (globs). One check (`Caller::may_in`) guards the API, the dashboard,
    /// MCP and the event stream.
    pub role_bindings: Vec<RoleBinding>,
    /// Sign-in to the dashboard with an OpenID Connect provider (authorization code with
    /// PKCE). People get the roles their groups or e-mail addresses are bound to in
    /// `roleBindings`; API tokens keep working beside it.
    pub oidc: Option<OidcConfig>,
    /// Serve over TLS (HTTPS) with this certificate and key, read again when they change.
    pub tls: Option<TlsConfig>,
    /// The kill switch of every remediation policy: true stops them all (also
    /// `POST /api/v1/remediation/pause`).
    pub remediation_paused: bool,
    /// Name of an environment variable holding the shared secret of the Git push webhook
    /// (`POST /api/v1/webhooks/git` answers 404 without it).
    #[serde(alias = "webhook_secret_env")]
    pub webhook_secret_env: Option<String>,
    /// How often Git is fetched (a scan follows when the tracked ref moved).
    #[serde(alias = "poll_interval")]
    pub poll_interval: HumanDuration,
    /// How often a full reconciling scan runs (and once at start).
    #[serde(alias = "full_scan_interval")]
    pub full_scan_interval: HumanDuration,
    /// Time limit of one API request.
    #[serde(alias = "request_timeout")]
    pub request_timeout: HumanDuration,
    /// Largest accepted request body, in bytes.
    #[serde(alias = "body_limit")]
    pub body_limit: usize,
    /// Public URL of the server, used for links in alerts (e.g. `https://driftguard.example`).
    #[serde(alias = "public_url")]
    pub public_url: Option<String>,
    /// Addresses (`10.0.0.7`) or ranges (`10.0.0.0/8`) of the reverse proxies in front of
    /// the server. Only from these is `X-Forwarded-Proto` believed (`https` makes the session
    /// cookie `Secure`, named `__Host-driftguard_session`) and `X-Forwarded-For` read for the
    /// client's address (the limit on failed sign-ins is per client). Empty: no proxy is
    /// trusted, and the peer's address is the client's.
    pub trusted_proxies: Vec<String>,
    /// Failed sign-ins and token checks one client may make in a burst before it must wait
    /// (one more is allowed every 6 s); past it every credential from that client gets 429.
    pub failed_credentials_burst: u32,
    /// How long shutdown waits for in-flight scans and alert queues.
    #[serde(alias = "shutdown_grace")]
    pub shutdown_grace: HumanDuration,
    /// Longest time the drift and event lists are answered from the server's cache (it is
    /// also invalidated by every scan and live change of this server; `0s` disables it).
    #[serde(alias = "cache_ttl")]
    pub cache_ttl: HumanDuration,
    /// Notifiers, each chosen by its `type` (the top-level `notifications` are added to them).
    pub notifiers: Vec<NotifierConfig>,
    /// High availability: several replicas share one MongoDB store and elect, per environment,
    /// the one that watches, polls, scans, writes and alerts, with Kubernetes Leases in a home
    /// cluster. Absent: this server does all of it alone (the default).
    pub ha: Option<HaConfig>,
}

/// Failed sign-ins and token checks allowed from one client in a burst (the default of
/// `server.failedCredentialsBurst`).
pub const FAILURES_BURST: u32 = 10;

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".into(),
            tokens: Vec::new(),
            token_env: None,
            api_tokens: Vec::new(),
            role_bindings: Vec::new(),
            oidc: None,
            tls: None,
            remediation_paused: false,
            webhook_secret_env: None,
            poll_interval: HumanDuration(Duration::from_secs(60)),
            full_scan_interval: HumanDuration(Duration::from_secs(3600)),
            request_timeout: HumanDuration(Duration::from_secs(30)),
            body_limit: 1024 * 1024,
            public_url: None,
            trusted_proxies: Vec::new(),
            failed_credentials_burst: FAILURES_BURST,
            shutdown_grace: HumanDuration(Duration::from_secs(10)),
            cache_ttl: HumanDuration(Duration::from_secs(1)),
            notifiers: Vec::new(),
            ha: None,
        }
    }
}

/// What a bearer token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum TokenScope {
    /// Read environments, drifts, events, scans.
    Read,
    /// Ask for a scan.
    Scan,
    /// Remediate drifts (`POST /api/v1/drifts/{episode}/remediate`).
    Remediate,
}

/// A named bearer token with scopes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiTokenConfig {
    /// The token's name: the audit trail names it as who asked (`token:<name>`).
    pub name: String,
    /// Name of the environment variable holding the token.
    pub token_env: String,
    /// What it may do in every environment (default: `read`; none for a token named in
    /// `roleBindings`, which then may do only what its roles allow where they apply).
    #[serde(default)]
    pub scopes: Option<Vec<TokenScope>>,
}

/// `server.tls`: `serve` terminates TLS itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, PEM (the server's certificate first). Read again when it
    /// changes (checked every 2 s); a new pair that cannot be used keeps the one in use.
    pub cert_file: PathBuf,
    /// Its private key, PEM (PKCS #8, PKCS #1 or SEC 1).
    pub key_file: PathBuf,
    /// Client certificates signed by this CA (PEM) may post to the audit webhook in place of
    /// its token: the API server's audit webhook kubeconfig can present one. Use a CA of its
    /// own for this. Clients without a certificate are served as before.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
}

/// A role: what a person or token may do in the environments of its binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Role {
    /// Read drifts, events, scans (the API, the dashboard, MCP, the event stream).
    Viewer,
    /// A viewer who may also scan now and acknowledge drift.
    Operator,
    /// An operator who may also remediate (revert, adopt).
    Remediator,
    /// Everything; bound to every environment (`*`), also the remediation kill switch.
    Admin,
}

impl Role {
    /// The scopes the role holds where its binding applies.
    pub fn scopes(self) -> &'static [TokenScope] {
        match self {
            Role::Viewer => &[TokenScope::Read],
            Role::Operator => &[TokenScope::Read, TokenScope::Scan],
            Role::Remediator | Role::Admin => {
                &[TokenScope::Read, TokenScope::Scan, TokenScope::Remediate]
            }
        }
    }
}

/// A role binding (`server.roleBindings`): a role, the environments it applies to (globs,
/// `prod-*`; `*` for all) and who holds it: API tokens by name, people signed in with OpenID
/// Connect by group or by e-mail address.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleBinding {
    /// The role.
    pub role: Role,
    /// The environments, as globs (`*` any run of characters).
    #[serde(default)]
    pub environments: Vec<String>,
    /// Discovered environments (`discover:`) whose Argo CD Application or Flux object carries
    /// all these labels, as well as those of `environments`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment_labels: BTreeMap<String, String>,
    /// The API tokens (`apiTokens` names) holding it.
    #[serde(default)]
    pub tokens: Vec<String>,
    /// The groups (values of the ID token's groups claim, `server.oidc.groupsClaim`) whose
    /// members hold it when they sign in with OpenID Connect.
    #[serde(default)]
    pub groups: Vec<String>,
    /// People holding it when they sign in with OpenID Connect: e-mail addresses (compared
    /// without case) or subjects (`sub`).
    #[serde(default)]
    pub users: Vec<String>,
}

/// `server.oidc`: sign-in with an OpenID Connect provider.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OidcConfig {
    /// The provider's issuer URL, exactly as its ID tokens name it (`iss`); its discovery
    /// document is `<issuer>/.well-known/openid-configuration`. `https://`, or `http://` on a
    /// loopback address only.
    pub issuer: String,
    /// This server's client id at the provider.
    pub client_id: String,
    /// File holding the client secret (relative to the configuration file).
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// Name of an environment variable holding the client secret.
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// Refused: a client secret is never written in the configuration file (use
    /// `clientSecretFile` or `clientSecretEnv`).
    #[serde(default, skip_serializing)]
    #[schemars(with = "Option<String>")]
    pub client_secret: Option<InlineSecret>,
    /// Scopes asked for (`openid` is needed; add the one your provider puts groups under).
    #[serde(default = "default_oidc_scopes")]
    pub scopes: Vec<String>,
    /// The ID token claim holding the person's groups (a list of strings, or one string).
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// E-mail domains allowed to sign in (`acme.example`; the ID token's `email`, which must
    /// not be marked unverified). Empty: any.
    #[serde(default)]
    pub allowed_email_domains: Vec<String>,
    /// Base URL the provider sends people back to (`<base>/auth/oidc/callback`; register
    /// that URL, and `<base>/login` for after sign-out, with the provider). Default:
    /// `server.publicUrl`, else the URL the browser used.
    #[serde(default)]
    pub redirect_base_url: Option<String>,
}

fn default_oidc_scopes() -> Vec<String> {
    vec!["openid".into(), "email".into(), "profile".into()]
}

fn default_groups_claim() -> String {
    "groups".into()
}

/// A value written where a secret may not be: read to say so, never kept (its `Debug` and
/// the configuration's hold nothing of it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InlineSecret;

impl<'de> Deserialize<'de> for InlineSecret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d).map(|_| InlineSecret)
    }
}

impl Serialize for InlineSecret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_none()
    }
}

/// The resolved `server.oidc`: the client secret read. `Debug` does not show it.
#[derive(Clone, PartialEq)]
pub struct OidcSettings {
    /// The issuer, as configured.
    pub issuer: String,
    /// The client id.
    pub client_id: String,
    /// The client secret.
    pub client_secret: String,
    /// Scopes asked for.
    pub scopes: Vec<String>,
    /// The claim holding groups.
    pub groups_claim: String,
    /// Allowed e-mail domains (lower case; empty: any).
    pub allowed_email_domains: Vec<String>,
    /// Base URL of the callback (no trailing `/`).
    pub redirect_base_url: Option<String>,
    /// The role bindings naming groups or people.
    pub bindings: Vec<RoleBinding>,
}

impl std::fmt::Debug for OidcSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcSettings")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("scopes", &self.scopes)
            .field("groups_claim", &self.groups_claim)
            .field("allowed_email_domains", &self.allowed_email_domains)
            .finish_non_exhaustive()
    }
}

impl OidcConfig {
    /// What is wrong with it, as `(key, message)` pairs under `server.oidc` (empty: nothing).
    /// Whether the secret's file or variable is there is known when `serve` reads it.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.client_secret.is_some() {
            out.push((
                "clientSecret",
                "a client secret is never written in the configuration file: put it in a file \
                 (clientSecretFile) or an environment variable (clientSecretEnv)"
                    .into(),
            ));
        }
        match (&self.client_secret_file, &self.client_secret_env) {
            (None, None) if self.client_secret.is_none() => out.push((
                "clientSecretFile",
                "name where the client secret is: clientSecretFile or clientSecretEnv".into(),
            )),
            (Some(_), Some(_)) => out.push((
                "clientSecretEnv",
                "clientSecretFile and clientSecretEnv are both set: choose one".into(),
            )),
            _ => {}
        }
        if let Err(message) = issuer_url(&self.issuer) {
            out.push(("issuer", message));
        }
        if self.client_id.trim().is_empty() {
            out.push(("clientId", "must not be empty".into()));
        }
        if !self.scopes.iter().any(|s| s == "openid") {
            out.push(("scopes", "must include `openid`".into()));
        }
        if self.groups_claim.trim().is_empty() {
            out.push(("groupsClaim", "must not be empty".into()));
        }
        for d in &self.allowed_email_domains {
            let d = d.trim();
            if d.is_empty() || d.contains('@') || d.contains('/') || d.contains(' ') {
                out.push((
                    "allowedEmailDomains",
                    format!("`{d}` is not a domain (write `acme.example`, not an address)"),
                ));
            }
        }
        if let Some(base) = &self.redirect_base_url {
            match reqwest::Url::parse(base) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
                _ => out.push(("redirectBaseUrl", format!("`{base}` is not an http(s) URL"))),
            }
        }
        out
    }

    /// The settings, the secret read from its file or variable (an error names the key,
    /// never the secret). `bindings` are the server's role bindings.
    pub fn resolve(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
        bindings: &[RoleBinding],
    ) -> Result<OidcSettings, SettingError> {
        if let Some((key, message)) = self.problems().into_iter().next() {
            return Err(SettingError::Invalid {
                field: format!("server.oidc.{key}"),
                message,
            });
        }
        let secret = match (&self.client_secret_file, &self.client_secret_env) {
            (Some(file), _) => {
                std::fs::read_to_string(file).map_err(|e| SettingError::Invalid {
                    field: "server.oidc.clientSecretFile".into(),
                    message: format!("cannot read {}: {}", file.display(), e.kind()),
                })?
            }
            (None, Some(var)) => env(var).ok_or_else(|| SettingError::MissingEnv {
                var: var.clone(),
                field: "server.oidc.clientSecretEnv".into(),
            })?,
            (None, None) => String::new(),
        };
        let secret = secret.trim().to_owned();
        if secret.is_empty() {
            return Err(SettingError::Invalid {
                field: "server.oidc.clientSecretFile".into(),
                message: "the client secret is empty".into(),
            });
        }
        Ok(OidcSettings {
            issuer: self.issuer.clone(),
            client_id: self.client_id.clone(),
            client_secret: secret,
            scopes: self.scopes.clone(),
            groups_claim: self.groups_claim.clone(),
            allowed_email_domains: self
                .allowed_email_domains
                .iter()
                .map(|d| d.trim().trim_start_matches('.').to_ascii_lowercase())
                .collect(),
            redirect_base_url: self
                .redirect_base_url
                .as_ref()
                .map(|b| b.trim_end_matches('/').to_owned()),
            bindings: bindings
                .iter()
                .filter(|b| !b.groups.is_empty() || !b.users.is_empty())
                .cloned()
                .collect(),
        })
    }
}

/// Whether `issuer` can be an issuer: an `https://` URL, or `http://` on a loopback address
/// (a provider on the same machine, as in the tests), without query or fragment.
pub fn issuer_url(issuer: &str) -> Result<reqwest::Url, String> {
    let u = reqwest::Url::parse(issuer).map_err(|e| format!("`{issuer}` is not a URL: {e}"))?;
    let host = u.host_str().unwrap_or("");
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    match u.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => {
            return Err(format!(
                "`{issuer}` must be an https:// URL (http:// only on a loopback address)"
            ))
        }
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err(format!("`{issuer}` must have no query or fragment"));
    }
    Ok(u)
}

/// A resolved named token. `Debug` does not show the token.
#[derive(Clone, PartialEq, Eq)]
pub struct ScopedToken {
    /// The name.
    pub name: String,
    /// The token.
    pub token: String,
    /// What it may do in every environment.
    pub scopes: Vec<TokenScope>,
    /// The roles it holds per environment (`roleBindings`).
    pub grants: Vec<crate::auth::Grant>,
}

impl std::fmt::Debug for ScopedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScopedToken")
            .field("name", &self.name)
            .field("scopes", &self.scopes)
            .field("grants", &self.grants)
            .finish_non_exhaustive()
    }
}

/// Leader election per environment (`server.ha`), with `coordination.k8s.io/v1` Leases in a
/// namespace of a home cluster. See `docs/high-availability.md`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HaConfig {
    /// Kubeconfig file of the home cluster, where the Leases live (default: `$KUBECONFIG`,
    /// then `~/.kube/config`). Relative to the configuration file.
    pub home_kubeconfig: Option<std::path::PathBuf>,
    /// Context of the home cluster in that kubeconfig (default: its current context).
    pub home_context: Option<String>,
    /// Reach the home cluster with the pod's service account (DriftGuard runs in it).
    pub in_cluster: bool,
    /// Namespace of the Leases (the replicas need `get`, `list`, `create`, `update` and
    /// `delete` on `leases` there).
    pub namespace: String,
    /// How long a leader's claim lasts after its last renewal: a replica takes an
    /// environment over when its Lease has not changed for this long (judged by the
    /// replica's own monotonic clock since it last saw the Lease change, never by comparing
    /// clocks). Whole seconds, at least `1s`. Failover takes about this long.
    pub lease_duration: HumanDuration,
    /// How long a leader keeps writing without a successful renewal: past it, it stops
    /// writing and stops its loops for the environment at once (local fence). Shorter than
    /// `leaseDuration`, so a leader always stops before another replica can take over.
    pub renew_deadline: HumanDuration,
    /// How often Leases are renewed, and the others looked at.
    pub retry_period: HumanDuration,
    /// This replica's name in the Leases (default: the `POD_NAME` environment variable, else
    /// `<hostname>-<process id>`). Each replica needs its own.
    pub identity: Option<String>,
    /// Prefix of the Leases' names (`<prefix>-env-<environment>`,
    /// `<prefix>-member-<identity>`): deployments sharing a namespace need their own.
    pub lease_prefix: String,
}

impl Default for HaConfig {
    fn default() -> Self {
        HaConfig {
            home_kubeconfig: None,
            home_context: None,
            in_cluster: false,
            namespace: "driftguard".into(),
            lease_duration: HumanDuration(Duration::from_secs(15)),
            renew_deadline: HumanDuration(Duration::from_secs(10)),
            retry_period: HumanDuration(Duration::from_secs(2)),
            identity: None,
            lease_prefix: "driftguard".into(),
        }
    }
}

impl HaConfig {
    /// What is wrong with the timings and names, as `(key, message)` pairs (empty: nothing).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let (lease, renew, retry) = (
            self.lease_duration.0,
            self.renew_deadline.0,
            self.retry_period.0,
        );
        if lease < Duration::from_secs(1) || lease.subsec_nanos() != 0 {
            out.push((
                "leaseDuration",
                "must be a whole number of seconds, at least 1s (Leases keep seconds)".into(),
            ));
        }
        if renew >= lease {
            out.push((
                "renewDeadline",
                "must be shorter than leaseDuration (a leader stops before another can take over)"
                    .into(),
            ));
        }
        if retry.is_zero() || retry >= renew {
            out.push((
                "retryPeriod",
                "must be more than 0 and shorter than renewDeadline".into(),
            ));
        }
        if !is_dns_label_part(&self.namespace) {
            out.push((
                "namespace",
                "must be a namespace name (lower-case letters, digits and `-`)".into(),
            ));
        }
        if self.lease_prefix.is_empty()
            || self.lease_prefix.len() > 40
            || !is_dns_label_part(&self.lease_prefix)
        {
            out.push((
                "leasePrefix",
                "must be 1 to 40 lower-case letters, digits and `-`".into(),
            ));
        }
        if self.in_cluster && (self.home_kubeconfig.is_some() || self.home_context.is_some()) {
            out.push((
                "inCluster",
                "inCluster and homeKubeconfig/homeContext are both set: choose one".into(),
            ));
        }
        if self
            .identity
            .as_deref()
            .is_some_and(|i| i.trim().is_empty())
        {
            out.push(("identity", "must not be empty".into()));
        }
        out
    }
}

fn is_dns_label_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingError {
    /// An environment variable named by the configuration is not set.
    #[error("environment variable {var} (named by {field}) is not set")]
    MissingEnv {
        /// The variable.
        var: String,
        /// The configuration field naming it.
        field: String,
    },
    /// A value is malformed.
    #[error("invalid {field}: {message}")]
    Invalid {
        /// The field.
        field: String,
        /// Why.
        message: String,
    },
}

/// Fewest characters of a token that guards the server (API and audit tokens): 16 random
/// characters of base64 hold 96 bits, of hex 64; `openssl rand -hex 20` makes a good one.
pub const MIN_TOKEN_CHARS: usize = 16;

/// Fewest different characters of such a token (`aaaaaaaaaaaaaaaa` is 16 characters long).
pub const MIN_TOKEN_DISTINCT: usize = 8;

/// Why `token` is too weak to guard the server, if it is. The message never holds the token.
pub fn weak_token(token: &str) -> Option<String> {
    let chars = token.chars().count();
    let distinct = token
        .chars()
        .collect::<std::collections::HashSet<_>>()
        .len();
    let advice = "make one with `openssl rand -hex 20`";
    if chars < MIN_TOKEN_CHARS {
        Some(format!(
            "a token of {chars} characters is too easy to guess: at least {MIN_TOKEN_CHARS} are needed ({advice})"
        ))
    } else if distinct < MIN_TOKEN_DISTINCT {
        Some(format!(
            "a token of only {distinct} different characters is too easy to guess: at least {MIN_TOKEN_DISTINCT} are needed ({advice})"
        ))
    } else {
        None
    }
}

/// The tokens in a comma-separated variable's value, each checked with [`weak_token`]
/// (`field` and `var` name them in the error, with the token's position, never its value).
pub fn split_tokens(value: &str, field: &str, var: &str) -> Result<Vec<String>, SettingError> {
    let tokens: Vec<String> = value
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    for (i, t) in tokens.iter().enumerate() {
        if let Some(message) = weak_token(t) {
            return Err(SettingError::Invalid {
                field: field.to_owned(),
                message: format!("token {} of {} in ${var}: {message}", i + 1, tokens.len()),
            });
        }
    }
    Ok(tokens)
}

impl ServerConfig {
    /// The bearer tokens: `tokens` plus those in the variable named by `tokenEnv`. A token too
    /// easy to guess ([`weak_token`]) is an error naming where it is.
    pub fn resolve_tokens(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Vec<String>, SettingError> {
        let mut out: Vec<String> = Vec::new();
        for (i, t) in self
            .tokens
            .iter()
            .enumerate()
            .filter(|(_, t)| !t.is_empty())
        {
            if let Some(message) = weak_token(t) {
                return Err(SettingError::Invalid {
                    field: format!("server.tokens[{i}]"),
                    message,
                });
            }
            out.push(t.clone());
        }
        if let Some(var) = &self.token_env {
            let v = env(var).ok_or_else(|| SettingError::MissingEnv {
                var: var.clone(),
                field: "server.tokenEnv".into(),
            })?;
            out.extend(split_tokens(&v, "server.tokenEnv", var)?);
        }
        Ok(out)
    }

    /// The named tokens of `apiTokens`, read from their variables.
    pub fn resolve_scoped_tokens(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Vec<ScopedToken>, SettingError> {
        self.api_tokens
            .iter()
            .map(|t| {
                let field = format!("server.apiTokens[{}].tokenEnv", t.name);
                let token = env(&t.token_env)
                    .filter(|v| !v.trim().is_empty())
                    .ok_or_else(|| SettingError::MissingEnv {
                        var: t.token_env.clone(),
                        field: field.clone(),
                    })?;
                if let Some(message) = weak_token(token.trim()) {
                    return Err(SettingError::Invalid {
                        field,
                        message: format!("${}: {message}", t.token_env),
                    });
                }
                let grants: Vec<crate::auth::Grant> = self
                    .role_bindings
                    .iter()
                    .filter(|b| b.tokens.contains(&t.name))
                    .map(crate::auth::Grant::of)
                    .collect();
                let scopes = match &t.scopes {
                    Some(s) => s.clone(),
                    None if grants.is_empty() => vec![TokenScope::Read],
                    None => Vec::new(),
                };
                Ok(ScopedToken {
                    name: t.name.clone(),
                    token: token.trim().to_owned(),
                    scopes,
                    grants,
                })
            })
            .collect()
    }

    /// The trusted proxies' addresses and ranges (`trustedProxies`).
    pub fn resolve_trusted_proxies(&self) -> Result<Vec<AddrRange>, SettingError> {
        self.trusted_proxies
            .iter()
            .enumerate()
            .map(|(i, p)| {
                p.parse().map_err(|message| SettingError::Invalid {
                    field: format!("server.trustedProxies[{i}]"),
                    message,
                })
            })
            .collect()
    }

    /// The webhook secret, if configured.
    pub fn resolve_webhook_secret(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<String>, SettingError> {
        match &self.webhook_secret_env {
            None => Ok(None),
            Some(var) => env(var).filter(|s| !s.is_empty()).map(Some).ok_or_else(|| {
                SettingError::MissingEnv {
                    var: var.clone(),
                    field: "server.webhookSecretEnv".into(),
                }
            }),
        }
    }

    /// The address to bind: `override_listen` or `listen`; without tokens, a non-loopback
    /// address is replaced by `127.0.0.1` on the same port (the second value says so).
    pub fn effective_listen(
        &self,
        override_listen: Option<&str>,
        has_tokens: bool,
    ) -> Result<(SocketAddr, Option<String>), SettingError> {
        let raw = override_listen.unwrap_or(&self.listen);
        let addr: SocketAddr = raw.parse().map_err(|e| SettingError::Invalid {
            field: "server.listen".into(),
            message: format!("`{raw}`: {e}"),
        })?;
        if !has_tokens && !addr.ip().is_loopback() {
            let local = SocketAddr::from(([127, 0, 0, 1], addr.port()));
            return Ok((
                local,
                Some(format!(
                    "no API tokens configured: listening on {local} only instead of {addr}"
                )),
            ));
        }
        Ok((addr, None))
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
        let ip = canonical_ip(ip);
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
        let addr = canonical_ip(addr);
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

/// An IPv4 address mapped into IPv6 as the IPv4 address (how clients and trusted proxies are
/// compared and counted).
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Which events a notifier receives.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct RouteConfig {
    /// Environments whose events are sent (empty: all).
    pub environments: Vec<String>,
    /// Minimum severity of the drifts sent (absent: `low`, i.e. everything).
    #[serde(alias = "min_severity")]
    pub min_severity: Option<Severity>,
}

/// Delivery settings of a notifier's queue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Notifications waiting at most; more are dropped (and counted).
    pub capacity: usize,
    /// Attempts per notification.
    #[serde(alias = "max_attempts")]
    pub max_attempts: u32,
    /// First retry delay (doubles each attempt).
    #[serde(alias = "initial_backoff")]
    pub initial_backoff: HumanDuration,
    /// Longest retry delay.
    #[serde(alias = "max_backoff")]
    pub max_backoff: HumanDuration,
    /// Notifications for the same environment arriving within this window are sent as one.
    #[serde(alias = "group_window")]
    pub group_window: HumanDuration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            capacity: 1000,
            max_attempts: 5,
            initial_backoff: HumanDuration(Duration::from_secs(1)),
            max_backoff: HumanDuration(Duration::from_secs(60)),
            group_window: HumanDuration(Duration::from_secs(2)),
        }
    }
}

/// A notifier: where drift events are announced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(
    tag = "type",
    rename_all = "lowercase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum NotifierConfig {
    /// Slack incoming webhook.
    Slack {
        /// Name for logs, metrics and delivery marks, unique among notifiers (default
        /// `slack`).
        #[serde(default)]
        name: Option<String>,
        /// Environment variable holding the incoming-webhook URL (it is a secret).
        #[serde(alias = "url_env")]
        url_env: Option<String>,
        /// The URL itself (prefer `urlEnv`).
        #[serde(default)]
        url: Option<String>,
        /// Which events this notifier receives.
        #[serde(default)]
        route: RouteConfig,
        /// Delivery: queue size, retries and grouping.
        #[serde(default)]
        queue: QueueConfig,
    },
    /// Generic webhook: JSON body signed with HMAC-SHA256.
    Webhook {
        /// Name for logs, metrics and delivery marks, unique among notifiers (default
        /// `webhook`).
        #[serde(default)]
        name: Option<String>,
        /// Receiver URL.
        url: String,
        /// Environment variable holding the signing secret (the body is signed in
        /// `X-DriftGuard-Signature-256` when it is set).
        #[serde(default, alias = "secret_env")]
        secret_env: Option<String>,
        /// Which events this notifier receives.
        #[serde(default)]
        route: RouteConfig,
        /// Delivery: queue size, retries and grouping.
        #[serde(default)]
        queue: QueueConfig,
    },
    /// PagerDuty Events API v2.
    Pagerduty {
        /// Name for logs, metrics and delivery marks, unique among notifiers (default
        /// `pagerduty`).
        #[serde(default)]
        name: Option<String>,
        /// Environment variable holding the integration (routing) key.
        #[serde(alias = "routing_key_env")]
        routing_key_env: String,
        /// Events URL (default `https://events.pagerduty.com/v2/enqueue`).
        #[serde(default, alias = "events_url")]
        events_url: Option<String>,
        /// Which events this notifier receives.
        #[serde(default)]
        route: RouteConfig,
        /// Delivery: queue size, retries and grouping.
        #[serde(default)]
        queue: QueueConfig,
    },
    /// E-mail over SMTP (STARTTLS when offered, or implicit TLS; optional AUTH PLAIN).
    Email {
        /// Name for logs, metrics and delivery marks, unique among notifiers (default
        /// `email`).
        #[serde(default)]
        name: Option<String>,
        /// SMTP host (the name its certificate must carry).
        host: String,
        /// SMTP port (default 25; 465 with `tls: tls`).
        #[serde(default)]
        port: Option<u16>,
        /// `auto` (default: STARTTLS when offered, never a password without TLS), `starttls`
        /// (required), `tls` (implicit TLS) or `none` (plain text, for a relay on the same
        /// host).
        #[serde(default)]
        tls: SmtpTls,
        /// PEM file of CA certificates to trust besides the web PKI roots.
        #[serde(default, alias = "ca_file")]
        ca_file: Option<std::path::PathBuf>,
        /// Envelope and header sender.
        from: String,
        /// Recipients.
        to: Vec<String>,
        /// User for AUTH PLAIN.
        #[serde(default)]
        username: Option<String>,
        /// Environment variable holding the password (goes with `username`).
        #[serde(default, alias = "password_env")]
        password_env: Option<String>,
        /// Which events this notifier receives.
        #[serde(default)]
        route: RouteConfig,
        /// Delivery: queue size, retries and grouping.
        #[serde(default)]
        queue: QueueConfig,
    },
}

/// How the SMTP connection is secured.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// STARTTLS when the server offers it; without it, mail goes in plain text but a password
    /// is never sent.
    #[default]
    Auto,
    /// STARTTLS, required: a server that does not offer it is an error.
    StartTls,
    /// TLS from the first byte (SMTPS, port 465).
    Tls,
    /// Plain text only, password included: for a relay on the same host.
    None,
}

impl SmtpTls {
    /// The usual port: 465 for [`SmtpTls::Tls`], 25 otherwise.
    pub fn default_port(self) -> u16 {
        match self {
            SmtpTls::Tls => 465,
            _ => 25,
        }
    }
}

impl NotifierConfig {
    /// The notifier's name: `name`, or its type (`slack`, `webhook`, `pagerduty`, `email`).
    /// Names label metrics and delivery marks, so each notifier needs its own.
    pub fn name(&self) -> &str {
        let (name, default) = match self {
            NotifierConfig::Slack { name, .. } => (name, "slack"),
            NotifierConfig::Webhook { name, .. } => (name, "webhook"),
            NotifierConfig::Pagerduty { name, .. } => (name, "pagerduty"),
            NotifierConfig::Email { name, .. } => (name, "email"),
        };
        name.as_deref().unwrap_or(default)
    }
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

    /// A token named in `roleBindings` without scopes of its own may do only what its roles
    /// allow where they apply; one with `scopes` keeps them everywhere; an admin's binding
    /// covers every environment.
    #[test]
    fn role_bindings_give_tokens_roles_per_environment() {
        let cfg: ServerConfig = serde_yaml::from_str(
            "apiTokens:\n  - {name: prodview, tokenEnv: A}\n  - {name: ci, tokenEnv: B}\n  - {name: boss, tokenEnv: C, scopes: [read]}\n\
             roleBindings:\n  - {role: viewer, environments: [prod-*], tokens: [prodview]}\n  - {role: operator, environments: [dev], tokens: [prodview]}\n  - {role: admin, environments: [dev], tokens: [boss]}\n",
        )
        .expect("valid config");
        let vars = |v: &str| {
            Some(
                match v {
                    "A" => "4f1c9e0b7a2d6e83c5b1",
                    "B" => "9e8d7c6b5a4f3e2d1c0b",
                    _ => "0a1b2c3d4e5f60718293",
                }
                .to_owned(),
            )
        };
        let tokens = cfg.resolve_scoped_tokens(&vars).expect("resolves");
        let caller = |name: &str| {
            let t = tokens.iter().find(|t| t.name == name).expect("token");
            crate::auth::caller_of(&t.token, &[], &tokens).expect("caller")
        };
        let prodview = caller("prodview");
        assert!(prodview.scopes.is_empty(), "bound: no scope of its own");
        assert!(prodview.may_in(TokenScope::Read, "prod-eu"));
        assert!(!prodview.may_in(TokenScope::Scan, "prod-eu"));
        assert!(prodview.may_in(TokenScope::Scan, "dev"));
        assert!(!prodview.may_in(TokenScope::Read, "staging"));
        assert!(!prodview.reads_everything());
        assert!(prodview.may(TokenScope::Scan).is_ok(), "somewhere");
        assert!(prodview.may(TokenScope::Remediate).is_err());
        let ci = caller("ci");
        assert_eq!(ci.scopes, vec![TokenScope::Read], "unbound: the default");
        assert!(ci.reads_everything() && !ci.may_in(TokenScope::Scan, "dev"));
        let boss = caller("boss");
        assert!(
            boss.may_in(TokenScope::Remediate, "anything"),
            "admin: everywhere"
        );
        assert!(boss.may_everywhere(TokenScope::Remediate));
        assert!(!prodview.may_everywhere(TokenScope::Remediate));
    }

    #[test]
    fn reads_config_and_refuses_unknown_fields() {
        let cfg: ServerConfig = serde_yaml::from_str(
            "listen: 0.0.0.0:9000\npollInterval: 30s\nnotifiers:\n  - type: webhook\n    url: http://127.0.0.1:1/x\n    route: {minSeverity: high}\n",
        )
        .expect("valid config");
        assert_eq!(cfg.poll_interval.0, Duration::from_secs(30));
        assert_eq!(cfg.notifiers.len(), 1);
        let err = serde_yaml::from_str::<ServerConfig>("listn: x\n").expect_err("typo refused");
        assert!(err.to_string().contains("listn"), "{err}");
        let (addr, note) = cfg.effective_listen(None, false).expect("valid addr");
        assert_eq!(addr.to_string(), "127.0.0.1:9000");
        assert!(note.is_some());
    }

    #[test]
    fn tokens_too_easy_to_guess_are_refused_by_name() {
        // `a` was accepted (and the server then listened on 0.0.0.0)
        for weak in [
            "a",
            "secret",
            "fifteen-chars-x",
            "aaaaaaaaaaaaaaaaaaaa",
            "abababababababab",
        ] {
            assert!(weak_token(weak).is_some(), "{weak}");
            if weak.len() > 3 {
                assert!(
                    !weak_token(weak).unwrap_or_default().contains(weak),
                    "{weak}"
                );
            }
        }
        for strong in [
            "web-s3cret-token",
            "4f1c9e0b7a2d6e83c5b1",
            "contract-test-token-4b1d",
        ] {
            assert_eq!(weak_token(strong), None, "{strong}");
        }
        let cfg: ServerConfig = serde_yaml::from_str(
            "tokens: [4f1c9e0b7a2d6e83c5b1, a]\ntokenEnv: T\napiTokens:\n  - {name: ops, tokenEnv: OPS}\n",
        )
        .expect("valid config");
        let err = cfg
            .resolve_tokens(&|_: &str| Some("x".into()))
            .expect_err("weak inline token");
        assert_eq!(
            err.to_string(),
            "invalid server.tokens[1]: a token of 1 characters is too easy to guess: at least 16 are needed (make one with `openssl rand -hex 20`)"
        );
        let cfg = ServerConfig {
            tokens: vec![],
            ..cfg
        };
        let err = cfg
            .resolve_tokens(&|_: &str| Some("4f1c9e0b7a2d6e83c5b1, short".into()))
            .expect_err("weak token in the variable");
        assert!(
            err.to_string().starts_with(
                "invalid server.tokenEnv: token 2 of 2 in $T: a token of 5 characters"
            ),
            "{err}"
        );
        assert_eq!(
            cfg.resolve_tokens(&|_: &str| Some("4f1c9e0b7a2d6e83c5b1".into()))
                .expect("strong")
                .len(),
            1
        );
        let err = cfg
            .resolve_scoped_tokens(&|_: &str| Some("ops".into()))
            .expect_err("weak named token");
        assert!(
            err.to_string()
                .starts_with("invalid server.apiTokens[ops].tokenEnv: $OPS: a token of 3"),
            "{err}"
        );
    }
}
