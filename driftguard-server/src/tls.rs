//! TLS for `serve` (`server.tls`): rustls with the ring provider, the certificate and key read
//! from PEM files and read again when they change ([`CertFiles`], checked every
//! [`RELOAD_CHECK`]; a pair that cannot be read keeps the one in use), and optional client
//! certificates: a connection whose certificate a configured CA signed ([`TlsPeer`]) may post
//! to an environment's audit webhook without its token (the API server's audit webhook
//! kubeconfig can present one). Handshakes run in their own tasks, so a slow client holds up
//! nobody ([`TlsListener`]).

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use axum::extract::connect_info::Connected;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{RootCertStore, ServerConfig};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// How often the certificate and key files are looked at for a change.
pub const RELOAD_CHECK: Duration = Duration::from_secs(2);

/// The longest a client may take to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or holds no usable PEM item.
    #[error("server.tls.{field}: cannot read {path}: {message}")]
    File {
        /// The key (`certFile`, `keyFile`, `clientCaFile`).
        field: &'static str,
        /// The file.
        path: PathBuf,
        /// What went wrong (never the file's content).
        message: String,
    },
    /// The certificate and key do not make a pair, or the CA is not usable.
    #[error("server.tls: {0}")]
    Invalid(String),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(tokio_rustls::rustls::crypto::ring::default_provider())
}

/// What a file looked like when it was last read.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(p: &Path) -> Stamp {
    let m = std::fs::metadata(p).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// The certificate chain and key of `serve`, read from their files, and read again when
/// either changes.
#[derive(Debug)]
pub struct CertFiles {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<(Arc<CertifiedKey>, Stamp, Stamp)>,
}

impl CertFiles {
    /// Reads the pair (an error names the file and never shows its content).
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let (ck, cs, ks) = read_pair(cert, key)?;
        Ok(CertFiles {
            cert: cert.to_owned(),
            key: key.to_owned(),
            current: RwLock::new((Arc::new(ck), cs, ks)),
        })
    }

    /// Reads the pair again if either file changed since it was read; keeps the one in use
    /// when the new files cannot be read (a half-written pair, a key that does not match).
    /// Returns whether a new pair is now served.
    pub fn reload_if_changed(&self) -> bool {
        let (cs, ks) = (stamp(&self.cert), stamp(&self.key));
        {
            let cur = self
                .current
                .read()
                .expect("never poisoned: no panics while held");
            if cur.1 == cs && cur.2 == ks {
                return false;
            }
        }
        match read_pair(&self.cert, &self.key) {
            Ok((ck, cs, ks)) => {
                *self
                    .current
                    .write()
                    .expect("never poisoned: no panics while held") = (Arc::new(ck), cs, ks);
                tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
                true
            }
            Err(e) => {
                // tried again at the next change of either file
                let mut cur = self
                    .current
                    .write()
                    .expect("never poisoned: no panics while held");
                cur.1 = cs;
                cur.2 = ks;
                tracing::warn!(error = %e, "the new TLS certificate or key cannot be used; keeping the one in use");
                false
            }
        }
    }

    /// Reads the files again on every change until `cancel`.
    pub fn watch(self: &Arc<Self>, cancel: CancellationToken) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(RELOAD_CHECK) => {}
                }
                let files = me.clone();
                let _ = tokio::task::spawn_blocking(move || files.reload_if_changed()).await;
            }
        })
    }
}

impl ResolvesServerCert for CertFiles {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .expect("never poisoned: no panics while held")
                .0
                .clone(),
        )
    }
}

fn file_error(field: &'static str, path: &Path, message: impl Into<String>) -> TlsError {
    TlsError::File {
        field,
        path: path.to_owned(),
        message: message.into(),
    }
}

fn read_certs(field: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(field, path, e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(field, path, e.to_string()))?;
    if certs.is_empty() {
        return Err(file_error(field, path, "no PEM certificate in it"));
    }
    Ok(certs)
}

fn read_pair(cert: &Path, key: &Path) -> Result<(CertifiedKey, Stamp, Stamp), TlsError> {
    // the stamps first: a change made while reading is seen at the next check
    let (cs, ks) = (stamp(cert), stamp(key));
    let chain = read_certs("certFile", cert)?;
    let key_der = PrivateKeyDer::from_pem_file(key)
        .map_err(|_| file_error("keyFile", key, "no PEM private key in it"))?;
    let ck = CertifiedKey::from_der(chain, key_der, &provider()).map_err(|e| {
        TlsError::Invalid(format!("the certificate and key do not make a pair: {e}"))
    })?;
    Ok((ck, cs, ks))
}

/// TLS settings made from `server.tls`: the server configuration and the files it reloads.
#[derive(Clone, Debug)]
pub struct Tls {
    /// The acceptor's configuration.
    pub config: Arc<ServerConfig>,
    /// The certificate and key files.
    pub files: Arc<CertFiles>,
}

impl Tls {
    /// Reads the files of `server.tls`: `cert` and `key`, and `client_ca` when client
    /// certificates are asked for (optional: a client without one is served as before).
    pub fn load(cert: &Path, key: &Path, client_ca: Option<&Path>) -> Result<Tls, TlsError> {
        let files = Arc::new(CertFiles::load(cert, key)?);
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Invalid(e.to_string()))?;
        let builder = match client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for c in read_certs("clientCaFile", ca)? {
                    roots
                        .add(c)
                        .map_err(|e| file_error("clientCaFile", ca, e.to_string()))?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                        .allow_unauthenticated()
                        .build()
                        .map_err(|e| TlsError::Invalid(format!("clientCaFile: {e}")))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_cert_resolver(files.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            config: Arc::new(config),
            files,
        })
    }
}

/// A listener that accepts TCP connections and hands on those whose TLS handshake completed
/// (within [`HANDSHAKE_TIMEOUT`], each in its own task).
#[derive(Debug)]
pub struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    accepting: tokio::task::JoinHandle<()>,
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl TlsListener {
    /// TLS on `listener` with `config`.
    pub fn new(listener: TcpListener, config: Arc<ServerConfig>) -> io::Result<Self> {
        let local = listener.local_addr()?;
        let acceptor = TlsAcceptor::from(config);
        let (tx, rx) = mpsc::channel(64);
        let accepting = tokio::spawn(async move {
            loop {
                let (tcp, addr) = match listener.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, addr)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%addr, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%addr, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener {
            rx,
            local,
            accepting,
        })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(c) => c,
            // the accepting task ended (it never does on its own)
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// The peer of a TLS connection: its address, and whether it presented a client certificate
/// that the configured CA signed (the verifier refuses any other certificate).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlsPeer {
    /// The address.
    pub addr: SocketAddr,
    /// Whether a verified client certificate was presented.
    pub client_certificate: bool,
}

impl Connected<axum::serve::IncomingStream<'_, TlsListener>> for TlsPeer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, TlsListener>) -> Self {
        TlsPeer {
            addr: *stream.remote_addr(),
            client_certificate: stream
                .io()
                .get_ref()
                .1
                .peer_certificates()
                .is_some_and(|c| !c.is_empty()),
        }
    }
}

/// A request that came over a connection with a verified client certificate (an extension
/// the guard sets; the audit webhook accepts it in place of a token).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientCertificate;
