//! E-mail over SMTP with a minimal client (EHLO, STARTTLS or implicit TLS, optional AUTH PLAIN,
//! MAIL, RCPT, DATA).
//!
//! TLS (rustls, the `ring` provider) checks the server's certificate against the web PKI roots
//! and the configured CA file. In the default mode, [`SmtpTls::Auto`], STARTTLS is used when
//! the server offers it, and a password is never sent over a connection without TLS.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use driftguard_core::ports::{Notification, Notifier, NotifyError};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

use super::{tally, EventView};

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

/// Sends mail.
pub struct SmtpNotifier {
    name: String,
    host: String,
    port: u16,
    from: String,
    to: Vec<String>,
    credentials: Option<(String, String)>,
    public_url: Option<String>,
    tls: SmtpTls,
    connector: TlsConnector,
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

fn clean_address(a: &str) -> Result<String, SmtpSetupError> {
    let a = a.trim();
    if a.is_empty()
        || !a.contains('@')
        || a.chars()
            .any(|c| matches!(c, '<' | '>' | '\r' | '\n' | ' ' | ','))
    {
        return Err(SmtpSetupError::BadAddress(a.to_owned()));
    }
    Ok(a.to_owned())
}

/// A TLS client trusting the web PKI roots and the certificates of `caFile` (PEM).
fn connector(ca_file: Option<&Path>) -> Result<TlsConnector, SmtpSetupError> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect())
            .map_err(|e| SmtpSetupError::CaFile {
                path: path.to_path_buf(),
                source: e.into(),
            })?;
        if certs.is_empty() {
            return Err(SmtpSetupError::CaFile {
                path: path.to_path_buf(),
                source: "no certificate in it".into(),
            });
        }
        for cert in certs {
            roots.add(cert).map_err(|e| SmtpSetupError::CaFile {
                path: path.to_path_buf(),
                source: e.into(),
            })?;
        }
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SmtpSetupError::Tls(e.into()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

impl SmtpNotifier {
    /// A notifier sending from `from` to `to` through `host:port`, with STARTTLS when the server
    /// offers it ([`SmtpTls::Auto`]; see [`SmtpNotifier::with_tls`]).
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
            name,
            host,
            port,
            from: clean_address(&from)?,
            to: to
                .iter()
                .map(|t| clean_address(t))
                .collect::<Result<_, _>>()?,
            credentials,
            public_url,
            tls: SmtpTls::Auto,
            connector: connector(None)?,
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
            self.connector = connector(ca_file)?;
        }
        Ok(self)
    }

    /// Subject and plain-text body of a notification.
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

    async fn send(&self, subject: &str, body: &str) -> Result<(), NotifyError> {
        let tcp = tokio::time::timeout(
            Duration::from_secs(10),
            TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| NotifyError::Unreachable {
            source: "SMTP connect timed out".into(),
        })?
        .map_err(|e| NotifyError::Unreachable {
            source: Box::new(e),
        })?;
        if self.tls == SmtpTls::Tls {
            let mut s = BufReader::new(self.handshake(tcp).await?);
            reply(&mut s, 220).await?;
            command(&mut s, "EHLO driftguard", 250).await?;
            return self.transaction(&mut s, true, subject, body).await;
        }
        let mut s = BufReader::new(tcp);
        reply(&mut s, 220).await?;
        let offers = command(&mut s, "EHLO driftguard", 250)
            .await?
            .iter()
            .any(|l| {
                l.get(4..)
                    .is_some_and(|ext| ext.eq_ignore_ascii_case("STARTTLS"))
            });
        match self.tls {
            SmtpTls::StartTls | SmtpTls::Auto if offers => {
                command(&mut s, "STARTTLS", 220).await?;
                // nothing is pipelined after STARTTLS, so the buffer is empty
                let mut s = BufReader::new(self.handshake(s.into_inner()).await?);
                command(&mut s, "EHLO driftguard", 250).await?;
                self.transaction(&mut s, true, subject, body).await
            }
            SmtpTls::StartTls => Err(NotifyError::Backend {
                context: format!("SMTP server {}:{}", self.host, self.port),
                source: "it does not offer STARTTLS, which `tls: starttls` requires".into(),
            }),
            _ => self.transaction(&mut s, false, subject, body).await,
        }
    }

    /// TLS over `tcp`, checking the certificate names `host`.
    async fn handshake(
        &self,
        tcp: TcpStream,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, NotifyError> {
        let name = ServerName::try_from(self.host.clone()).map_err(|e| NotifyError::Backend {
            context: format!("SMTP host {}", self.host),
            source: Box::new(e),
        })?;
        self.connector
            .connect(name, tcp)
            .await
            .map_err(|e| NotifyError::Unreachable {
                source: format!("TLS with {}:{}: {e}", self.host, self.port).into(),
            })
    }

    /// AUTH (only over TLS, unless `tls: none`), the envelope and the message.
    async fn transaction<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        s: &mut BufReader<S>,
        secured: bool,
        subject: &str,
        body: &str,
    ) -> Result<(), NotifyError> {
        if let Some((user, pass)) = &self.credentials {
            if !secured && self.tls != SmtpTls::None {
                return Err(NotifyError::Backend {
                    context: format!("SMTP server {}:{}", self.host, self.port),
                    source: "it offers no STARTTLS, and the password is not sent in plain text \
                             (set `tls: none` for a relay on the same host)"
                        .into(),
                });
            }
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{pass}"));
            command(s, &format!("AUTH PLAIN {token}"), 235).await?;
        }
        command(s, &format!("MAIL FROM:<{}>", self.from), 250).await?;
        for to in &self.to {
            command(s, &format!("RCPT TO:<{to}>"), 250).await?;
        }
        command(s, "DATA", 354).await?;
        let subject: String = subject.chars().filter(|c| !c.is_control()).collect();
        let mut msg = format!(
            "From: DriftGuard <{}>\r\nTo: {}\r\nSubject: {subject}\r\nDate: {}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
            self.from,
            self.to.join(", "),
            chrono::Utc::now().to_rfc2822(),
        );
        msg.push_str(&dot_stuff(body));
        s.write_all(msg.as_bytes()).await.map_err(io_err)?;
        s.flush().await.map_err(io_err)?;
        reply(s, 250).await?;
        let _ = s.write_all(b"QUIT\r\n").await;
        let _ = s.flush().await;
        Ok(())
    }
}

/// The DATA payload of a body: CRLF line ends, lines starting with `.` doubled, and the
/// terminating `.` line.
pub fn dot_stuff(body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 8);
    for line in body.lines() {
        if line.starts_with('.') {
            out.push('.');
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str(".\r\n");
    out
}

fn io_err(e: std::io::Error) -> NotifyError {
    NotifyError::Unreachable {
        source: Box::new(e),
    }
}

/// Sends one command and reads its reply (the reply's lines).
async fn command<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut BufReader<S>,
    line: &str,
    code: u16,
) -> Result<Vec<String>, NotifyError> {
    s.write_all(format!("{line}\r\n").as_bytes())
        .await
        .map_err(io_err)?;
    s.flush().await.map_err(io_err)?;
    reply(s, code).await
}

/// Reads a (possibly multi-line) reply, checks its code and returns its lines.
async fn reply<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
    code: u16,
) -> Result<Vec<String>, NotifyError> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        let n = tokio::time::timeout(Duration::from_secs(30), r.read_line(&mut line))
            .await
            .map_err(|_| NotifyError::Unreachable {
                source: "SMTP server did not answer".into(),
            })?
            .map_err(io_err)?;
        if n == 0 {
            return Err(NotifyError::Unreachable {
                source: "SMTP server closed the connection".into(),
            });
        }
        let got: u16 =
            line.get(..3)
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| NotifyError::Backend {
                    context: "malformed SMTP reply".into(),
                    source: "reply without a code".into(),
                })?;
        let more = line.as_bytes().get(3) == Some(&b'-');
        lines.push(line.trim_end().to_owned());
        if more {
            continue;
        }
        // 251 (user not local, will forward) is as good as 250
        if got == code || (code == 250 && got == 251) {
            return Ok(lines);
        }
        return Err(NotifyError::Rejected { status: got });
    }
}

#[async_trait]
impl Notifier for SmtpNotifier {
    fn name(&self) -> &str {
        &self.name
    }

    async fn notify(&self, n: &Notification) -> Result<(), NotifyError> {
        let (subject, body) = self.render(n);
        tokio::time::timeout(Duration::from_secs(60), self.send(&subject, &body))
            .await
            .map_err(|_| NotifyError::Unreachable {
                source: "SMTP transaction timed out".into(),
            })?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_stuffing() {
        assert_eq!(dot_stuff("a\r\n.b\n..c"), "a\r\n..b\r\n...c\r\n.\r\n");
    }
}
