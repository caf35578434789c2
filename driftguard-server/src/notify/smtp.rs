//! E-mail over SMTP with `lettre`, which writes the message (headers encoded by RFC 2047 and
//! folded, a `Message-ID`, the body's transfer encoding chosen for the server: `8bit` where it
//! offers 8BITMIME, quoted-printable or base64 elsewhere) and speaks the protocol (EHLO,
//! STARTTLS or implicit TLS, AUTH, the envelope, DATA with its dot-stuffing). The `Date` is the
//! [`Clock`] port's.
//!
//! What is decided here is the policy: TLS (rustls, the `ring` provider) checks the server's
//! certificate against the web PKI roots and the configured CA file. In the default mode,
//! [`SmtpTls::Auto`], STARTTLS is used when the server offers it, and a password is never sent
//! over a connection without TLS.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use driftguard_core::ports::{Clock, Notification, Notifier, NotifyError};
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Body, Mailbox, Mailboxes, SinglePart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, Certificate, CertificateStore, TlsParameters,
};
use lettre::transport::smtp::extension::{ClientId, Extension};
use lettre::{Address, Message};
use sha2::{Digest, Sha256};

use super::{tally, EventView};
use crate::context::SystemClock;

/// How the connection is secured (the configuration's type: `notifications[].tls`).
pub use crate::config::SmtpTls;

/// How long connecting (and the TLS handshake of implicit TLS) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one whole delivery may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(60);

/// The name this client gives in EHLO.
const HELLO: &str = "driftguard";

/// Sends mail.
pub struct SmtpNotifier {
    name: String,
    host: String,
    port: u16,
    /// `DriftGuard <from>`.
    from: Mailbox,
    to: Vec<Mailbox>,
    credentials: Option<Credentials>,
    public_url: Option<String>,
    tls: SmtpTls,
    /// The server's name to check its certificate against, and the roots to trust.
    tls_parameters: TlsParameters,
    clock: Arc<dyn Clock>,
}

/// Why an e-mail notifier cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum SmtpSetupError {
    /// An address is not a plain `user@host`.
    #[error("`{0}` is not a plain e-mail address")]
    BadAddress(String),
    /// No recipient.
    #[error("at least one recipient is needed")]
    NoRecipient,
    /// The CA file cannot be read or holds no usable certificate.
    #[error("CA file {}", path.display())]
    CaFile {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: driftguard_core::ports::BoxError,
    },
    /// The TLS client cannot be set up.
    #[error("TLS")]
    Tls(#[source] driftguard_core::ports::BoxError),
}

/// A plain `user@host` (no display name, no list, nothing a header could be smuggled in).
fn clean_address(a: &str) -> Result<Address, SmtpSetupError> {
    let a = a.trim();
    if a.is_empty()
        || !a.contains('@')
        || a.chars()
            .any(|c| matches!(c, '<' | '>' | '\r' | '\n' | ' ' | ','))
    {
        return Err(SmtpSetupError::BadAddress(a.to_owned()));
    }
    a.parse()
        .map_err(|_| SmtpSetupError::BadAddress(a.to_owned()))
}

/// TLS with `host`, trusting the web PKI roots and the certificates of `caFile` (PEM).
fn tls_parameters(host: &str, ca_file: Option<&Path>) -> Result<TlsParameters, SmtpSetupError> {
    let builder =
        TlsParameters::builder(host.to_owned()).certificate_store(CertificateStore::WebpkiRoots);
    let Some(path) = ca_file else {
        return builder
            .build_rustls()
            .map_err(|e| SmtpSetupError::Tls(e.into()));
    };
    let ca_error = |source: driftguard_core::ports::BoxError| SmtpSetupError::CaFile {
        path: path.to_path_buf(),
        source,
    };
    let pem = std::fs::read(path).map_err(|e| ca_error(e.into()))?;
    if !pem
        .windows(b"-----BEGIN CERTIFICATE-----".len())
        .any(|w| w == b"-----BEGIN CERTIFICATE-----")
    {
        return Err(ca_error("no certificate in it".into()));
    }
    let certs = Certificate::from_pem(&pem).map_err(|e| ca_error(e.into()))?;
    // a certificate that is not one fails here, at setup, rather than at the first mail
    builder
        .add_root_certificate(certs)
        .build_rustls()
        .map_err(|e| ca_error(e.into()))
}

impl SmtpNotifier {
    /// A notifier sending from `from` to `to` through `host:port`, with STARTTLS when the server
    /// offers it ([`SmtpTls::Auto`]; see [`SmtpNotifier::with_tls`]), dating its mail by the
    /// system clock (see [`SmtpNotifier::with_clock`]).
    pub fn new(
        name: String,
        host: String,
        port: u16,
        from: String,
        to: Vec<String>,
        credentials: Option<(String, String)>,
        public_url: Option<String>,
    ) -> Result<Self, SmtpSetupError> {
        if to.is_empty() {
            return Err(SmtpSetupError::NoRecipient);
        }
        Ok(SmtpNotifier {
            tls_parameters: tls_parameters(&host, None)?,
            name,
            host,
            port,
            from: Mailbox::new(Some("DriftGuard".into()), clean_address(&from)?),
            to: to
                .iter()
                .map(|t| clean_address(t).map(|a| Mailbox::new(None, a)))
                .collect::<Result<_, _>>()?,
            credentials: credentials.map(|(user, password)| Credentials::new(user, password)),
            public_url,
            tls: SmtpTls::Auto,
            clock: Arc::new(SystemClock),
        })
    }

    /// Secures the connection as `tls` says, trusting the certificates of `caFile` (PEM)
    /// besides the web PKI roots.
    pub fn with_tls(
        mut self,
        tls: SmtpTls,
        ca_file: Option<&Path>,
    ) -> Result<Self, SmtpSetupError> {
        self.tls = tls;
        if ca_file.is_some() {
            self.tls_parameters = tls_parameters(&self.host, ca_file)?;
        }
        Ok(self)
    }

    /// Dates mail by `clock` (the `Date` header).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Subject and plain-text body of a notification. Fields are named by their paths, never
    /// their values.
    pub fn render(&self, n: &Notification) -> (String, String) {
        let subject = format!("[DriftGuard] {}: {}", n.environment, tally(&n.events));
        let mut body = format!(
            "DriftGuard detected changes in environment {}.\r\n\r\n",
            n.environment
        );
        for e in &n.events {
            let v = EventView::of(e, self.public_url.as_deref());
            body.push_str(&format!("* {}\r\n", v.headline()));
            if !v.fields.is_empty() {
                body.push_str(&format!("  fields: {}\r\n", v.fields.join(", ")));
            }
            if !v.who.is_empty() {
                body.push_str(&format!("  who: {}\r\n", v.who));
            }
            for w in &v.writers {
                body.push_str(&format!("  by: {w}\r\n"));
            }
            if !v.findings.is_empty() {
                body.push_str(&format!("  findings: {}\r\n", v.findings_line()));
            }
            if let Some(l) = &v.link {
                body.push_str(&format!("  details: {l}\r\n"));
            }
            body.push_str(&format!("  episode: {}\r\n\r\n", v.episode));
        }
        (subject, body)
    }

    /// The `Message-ID` of a notification, at the sender's domain: the same for the same
    /// events, so that a retry or a resend after a restart is the same message to a receiver
    /// that folds duplicates.
    fn message_id(&self, n: &Notification) -> String {
        let mut h = Sha256::new();
        h.update(self.name.as_bytes());
        h.update([0]);
        h.update(n.environment.as_bytes());
        for e in &n.events {
            h.update([0]);
            h.update(e.event_id.as_bytes());
        }
        let digest = h.finalize();
        format!(
            "<{}.driftguard@{}>",
            hex::encode(&digest[..16]),
            self.from.email.domain()
        )
    }

    /// The message: `8bit` when the server takes it (`eight_bit`: it offers 8BITMIME) and the
    /// body needs it, else whatever 7-bit encoding suits the body.
    fn message(&self, n: &Notification, eight_bit: bool) -> Result<Message, lettre::error::Error> {
        let (subject, body) = self.render(n);
        let subject: String = subject.chars().filter(|c| !c.is_control()).collect();
        let body = if eight_bit && !body.is_ascii() {
            // refused when a line is too long for 8bit: then quoted-printable or base64
            Body::new_with_encoding(body.clone(), ContentTransferEncoding::EightBit)
                .unwrap_or_else(|_| Body::new(body))
        } else {
            Body::new(body)
        };
        let to: Mailboxes = self.to.iter().cloned().collect();
        Message::builder()
            .from(self.from.clone())
            .mailbox(lettre::message::header::To::from(to))
            .subject(subject)
            .date(SystemTime::from(self.clock.now()))
            .message_id(Some(self.message_id(n)))
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(body),
            )
    }

    /// Where this notifier delivers, for errors.
    fn server(&self) -> String {
        format!("SMTP server {}:{}", self.host, self.port)
    }

    /// A failure of the conversation: the server's reply code when it answered with one.
    fn failed(&self, e: lettre::transport::smtp::Error) -> NotifyError {
        if let Some(code) = e.status() {
            return NotifyError::Rejected {
                status: code.into(),
            };
        }
        if e.is_client() || e.is_response() {
            return NotifyError::Backend {
                context: self.server(),
                source: Box::new(e),
            };
        }
        NotifyError::Unreachable {
            source: Box::new(e),
        }
    }

    async fn send(&self, n: &Notification) -> Result<(), NotifyError> {
        let hello = ClientId::Domain(HELLO.into());
        let implicit = (self.tls == SmtpTls::Tls).then(|| self.tls_parameters.clone());
        let mut conn = AsyncSmtpConnection::connect_tokio1(
            (self.host.as_str(), self.port),
            Some(CONNECT_TIMEOUT),
            &hello,
            implicit,
            None,
        )
        .await
        .map_err(|e| match (self.tls, e.status()) {
            (SmtpTls::Tls, None) => NotifyError::Unreachable {
                source: format!("TLS with {}:{}: {e}", self.host, self.port).into(),
            },
            _ => self.failed(e),
        })?;
        // on an error here the connection is dropped without QUIT: a failed TLS handshake
        // leaves lettre no stream to say it on
        self.starttls(&mut conn, &hello).await?;
        let sent = self.transaction(&mut conn, n).await;
        // QUIT, whatever came of it
        conn.abort().await;
        sent
    }

    /// STARTTLS as the mode says.
    async fn starttls(
        &self,
        conn: &mut AsyncSmtpConnection,
        hello: &ClientId,
    ) -> Result<(), NotifyError> {
        match self.tls {
            SmtpTls::StartTls | SmtpTls::Auto if conn.can_starttls() => conn
                .starttls(self.tls_parameters.clone(), hello)
                .await
                .map_err(|e| match e.status() {
                    Some(_) => self.failed(e),
                    None => NotifyError::Unreachable {
                        source: format!("TLS with {}:{}: {e}", self.host, self.port).into(),
                    },
                })?,
            SmtpTls::StartTls => {
                return Err(NotifyError::Backend {
                    context: self.server(),
                    source: "it does not offer STARTTLS, which `tls: starttls` requires".into(),
                })
            }
            _ => {}
        }
        Ok(())
    }

    /// AUTH (only over TLS, unless `tls: none`), the envelope and the message.
    async fn transaction(
        &self,
        conn: &mut AsyncSmtpConnection,
        n: &Notification,
    ) -> Result<(), NotifyError> {
        if let Some(credentials) = &self.credentials {
            if !conn.is_encrypted() && self.tls != SmtpTls::None {
                return Err(NotifyError::Backend {
                    context: self.server(),
                    source: "it offers no STARTTLS, and the password is not sent in plain text \
                             (set `tls: none` for a relay on the same host)"
                        .into(),
                });
            }
            conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .await
                .map_err(|e| self.failed(e))?;
        }
        let eight_bit = conn.server_info().supports_feature(Extension::EightBitMime);
        let message = self
            .message(n, eight_bit)
            .map_err(|e| NotifyError::Backend {
                context: "composing the e-mail".into(),
                source: Box::new(e),
            })?;
        // a message that is not 7-bit goes with BODY=8BITMIME (lettre adds it)
        conn.send(message.envelope(), &message.formatted())
            .await
            .map_err(|e| self.failed(e))?;
        Ok(())
    }
}

#[async_trait]
impl Notifier for SmtpNotifier {
    fn name(&self) -> &str {
        &self.name
    }

    async fn notify(&self, n: &Notification) -> Result<(), NotifyError> {
        tokio::time::timeout(SEND_TIMEOUT, self.send(n))
            .await
            .map_err(|_| NotifyError::Unreachable {
                source: "SMTP transaction timed out".into(),
            })?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    /// What DATA carries of a body (lettre's codec, no longer ours): CRLF line ends, lines
    /// starting with `.` doubled, and the terminating `.` line.
    #[tokio::test]
    async fn dot_stuffing() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = tokio::spawn(async move {
            let (sock, _) = listener.accept().await.expect("accept");
            let mut s = BufReader::new(sock);
            s.write_all(b"220 test\r\n").await.expect("write");
            let mut line = String::new();
            s.read_line(&mut line).await.expect("EHLO");
            s.write_all(b"250 test\r\n").await.expect("write");
            let mut data = String::new();
            while !data.ends_with("\r\n.\r\n") {
                line.clear();
                if s.read_line(&mut line).await.expect("read") == 0 {
                    break;
                }
                data.push_str(&line);
            }
            s.write_all(b"250 queued\r\n").await.expect("write");
            data
        });
        let mut conn = AsyncSmtpConnection::connect_tokio1(
            ("127.0.0.1", port),
            Some(CONNECT_TIMEOUT),
            &ClientId::Domain(HELLO.into()),
            None,
            None,
        )
        .await
        .expect("connect");
        let body = Body::new("a\r\n.b\n..c".to_owned());
        conn.message(&body.into_vec()).await.expect("sent");
        assert_eq!(server.await.expect("server"), "a\r\n..b\r\n...c\r\n.\r\n");
    }
}
