//! The kube client of a cluster, speaking HTTP/2 where the API server offers it.
//!
//! kube-rs builds its clients for HTTP/1.1 only (kube-rs#1923: HTTP/2 breaks its websocket
//! upgrades for `exec` and `attach`, which DriftGuard never makes). Over HTTP/1.1 every watch
//! holds a connection of its own, and a cluster with a dozen watched kinds costs a dozen TLS
//! connections; over HTTP/2 the lists and watches of a cluster share one connection (the API
//! server offers `h2` by ALPN and serves up to `--http2-max-streams-per-connection`, 1,000 by
//! default, on it), kept alive by HTTP/2 pings. The stack is kube's own otherwise: its TLS
//! configuration, base URI, authentication (tokens refreshed, exec plugins' tokens), extra
//! headers and retries of 429/503/504, and its timeouts.
//!
//! kube's own builder is used instead where this one cannot do what it does: a proxy, a fixed
//! TLS server name, or an exec plugin (whose client certificate expiry only kube can read).

use std::time::Duration;

use ::kube::client::{ClientBuilder, ConfigExt};
use ::kube::{Client, Config};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tower::ServiceBuilder;

/// How often an idle HTTP/2 connection is pinged (kube-rs's HTTP/1.1 watches rely on the
/// server's watch timeout instead).
const KEEPALIVE: Duration = Duration::from_secs(30);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Which protocol a client of `config` offers: `true` for HTTP/2 and HTTP/1.1 by ALPN.
pub(crate) fn offers_http2(config: &Config) -> bool {
    config.proxy_url.is_none()
        && config.tls_server_name.is_none()
        && config.auth_info.exec.is_none()
}

/// A client of `config`: HTTP/2 where the server offers it (see the module documentation).
pub(crate) fn client_for(config: Config) -> Result<Client, ::kube::Error> {
    if !offers_http2(&config) {
        return Client::try_from(config);
    }
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config.rustls_client_config()?)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    let mut connector = hyper_timeout::TimeoutConnector::new(https);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    let client: hyper_util::client::legacy::Client<_, ::kube::client::Body> =
        hyper_util::client::legacy::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .http2_keep_alive_interval(KEEPALIVE)
            .http2_keep_alive_while_idle(true)
            .build(connector);
    let retry = config
        .default_retry
        .then(|| tower::retry::RetryLayer::new(::kube::client::retry::RetryPolicy::server_retry()));
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(retry)
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(BoxError::from)
        .service(client);
    Ok(ClientBuilder::new(service, config.default_namespace.clone()).build())
}
