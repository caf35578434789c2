//! `serve` over TLS (`server.tls`) on a real listener, with certificates made here: HTTPS
//! answers and plain HTTP does not; the certificate and key are read again when their files
//! change, and a pair that cannot be used keeps the one in use; a client certificate signed by
//! the configured CA posts to the audit webhook without its token, one signed by another CA
//! is refused at the handshake, no certificate at all needs the token as before.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use driftguard_core::audit::UserNames;
use driftguard_core::memory::{ManualClock, MemoryStore};
use driftguard_server::metrics::Metrics;
use driftguard_server::state::AppState;
use driftguard_server::testkit;
use driftguard_server::tls::Tls;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use tokio_rustls::rustls;

const TOKEN: &str = "tls-api-token-0123456789";
const AUDIT_TOKEN: &str = "tls-audit-token-0123456";

struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        Ca {
            issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key"))
                .expect("CA"),
        }
    }

    /// A certificate for `names` and its key, both PEM.
    fn leaf(&self, names: &[&str], cn: &str) -> (String, String) {
        let key = KeyPair::generate().expect("key");
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let cert = params.signed_by(&key, &self.issuer).expect("certificate");
        (cert.pem(), key.serialize_pem())
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p
}

/// A client trusting `ca`, presenting `identity` (certificate and key PEM) when given.
fn client(ca: &str, identity: Option<(&str, &str)>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).expect("CA"))
        .timeout(Duration::from_secs(10));
    if let Some((cert, key)) = identity {
        let pem = format!("{cert}{key}");
        b = b.identity(reqwest::Identity::from_pem(pem.as_bytes()).expect("identity"));
    }
    b.build().expect("client")
}

/// The certificate the server presents now (its DER), over a fresh connection.
async fn served_certificate(port: u16, ca: &str) -> Vec<u8> {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(ca.as_bytes()) {
        roots.add(c.expect("CA")).expect("root");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let tls = connector.connect(name, tcp).await.expect("handshake");
    tls.get_ref().1.peer_certificates().expect("a certificate")[0].to_vec()
}

use rustls::pki_types::pem::PemObject;

fn der_of(pem: &str) -> Vec<u8> {
    rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .expect("PEM")
        .to_vec()
}

fn audit_body() -> String {
    serde_json::json!({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "metadata": {},
        "items": []})
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_over_tls_reloads_its_certificate_and_takes_client_certificates_for_audit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server_ca = Ca::new("server CA");
    let client_ca = Ca::new("audit client CA");
    let other_ca = Ca::new("another CA");
    let (cert1, key1) = server_ca.leaf(&["127.0.0.1", "localhost"], "driftguard one");
    let cert_file = write(dir.path(), "tls.crt", &cert1);
    let key_file = write(dir.path(), "tls.key", &key1);
    let ca_file = write(dir.path(), "clients.pem", &client_ca.pem());

    // refusals name the file, never its content
    let bad = write(
        dir.path(),
        "bad.key",
        "-----BEGIN PRIVATE KEY-----\nnot base64\n",
    );
    let err = Tls::load(&cert_file, &bad, None).expect_err("no key");
    assert!(err.to_string().contains("bad.key"), "{err}");
    assert!(!err.to_string().contains("not base64"), "{err}");
    let (_, other_key) = server_ca.leaf(&["x"], "x");
    let mismatched = write(dir.path(), "other.key", &other_key);
    let err = Tls::load(&cert_file, &mismatched, None).expect_err("not a pair");
    assert!(err.to_string().contains("pair"), "{err}");

    let tls = Tls::load(&cert_file, &key_file, Some(&ca_file)).expect("loads");
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(testkit::t0()));
    let (prod, _, _) = testkit::audited_environment(
        "prod",
        store.clone(),
        clock.clone(),
        UserNames::default(),
        AUDIT_TOKEN,
        64 * 1024,
    );
    let state = AppState::builder(store, vec![prod], Arc::new(Metrics::new()))
        .tokens(vec![TOKEN.into()])
        .clock(clock)
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let stop = tokio_util::sync::CancellationToken::new();
    let until = stop.clone();
    let server = tokio::spawn(driftguard_server::run_tls(
        listener,
        state,
        tls,
        async move { until.cancelled().await },
    ));
    let base = format!("https://127.0.0.1:{port}");

    // HTTPS answers; plain HTTP on the same port does not
    let https = client(&server_ca.pem(), None);
    let r = https
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("https");
    assert_eq!(r.status(), 200);
    let r = https
        .get(format!("{base}/api/v1/environments"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("https");
    assert_eq!(r.status(), 200);
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP is not served: {plain:?}");
    assert_eq!(
        served_certificate(port, &server_ca.pem()).await,
        der_of(&cert1)
    );

    // the audit webhook: a certificate of the clients' CA stands in for the token
    let audit = format!("{base}/api/v1/environments/prod/audit");
    let r = https
        .post(&audit)
        .body(audit_body())
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 401, "no certificate, no token");
    let (ccert, ckey) = client_ca.leaf(&["kube-apiserver"], "kube-apiserver");
    let with_cert = client(&server_ca.pem(), Some((&ccert, &ckey)));
    let r = with_cert
        .post(&audit)
        .body(audit_body())
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    // ... for the audit webhook only
    let r = with_cert
        .get(format!("{base}/api/v1/environments"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 401);
    let (ocert, okey) = other_ca.leaf(&["kube-apiserver"], "kube-apiserver");
    let refused = client(&server_ca.pem(), Some((&ocert, &okey)))
        .post(&audit)
        .body(audit_body())
        .send()
        .await;
    assert!(
        refused.is_err(),
        "another CA's certificate fails the handshake"
    );

    // the certificate is renewed on disk: served from the next connection on
    let (cert2, key2) = server_ca.leaf(&["127.0.0.1"], "driftguard two");
    std::fs::write(&key_file, &key2).expect("write key");
    std::fs::write(&cert_file, &cert2).expect("write cert");
    let renewed = async {
        loop {
            if served_certificate(port, &server_ca.pem()).await == der_of(&cert2) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(15), renewed)
        .await
        .expect("the new certificate is served within a few seconds");
    // a half-written pair keeps the one in use
    std::fs::write(&cert_file, "-----BEGIN CERTIFICATE-----\ntrunc").expect("write");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        served_certificate(port, &server_ca.pem()).await,
        der_of(&cert2)
    );
    let r = https
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("still served");
    assert_eq!(r.status(), 200);

    stop.cancel();
    let ended = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("stops")
        .expect("joins");
    assert!(ended.is_ok(), "{ended:?}");
}
