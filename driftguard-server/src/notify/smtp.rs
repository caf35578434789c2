//! E-mail over SMTP with a minimal client (EHLO, optional AUTH PLAIN, MAIL, RCPT, DATA).
//! Plain TCP only: use a local relay for TLS.

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use driftguard_core::ports::{Notification, Notifier, NotifyError};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::{tally, EventView};

/// Sends mail.
pub struct SmtpNotifier {
    name: String,
    host: String,
    port: u16,
    from: String,
    to: Vec<String>,
    credentials: Option<(String, String)>,
    public_url: Option<String>,
}

fn clean_address(a: &str) -> Result<String, String> {
    let a = a.trim();
    if a.is_empty()
        || !a.contains('@')
        || a.chars()
            .any(|c| matches!(c, '<' | '>' | '\r' | '\n' | ' ' | ','))
    {
        return Err(format!("`{a}` is not a plain e-mail address"));
    }
    Ok(a.to_owned())
}

impl SmtpNotifier {
    /// A notifier sending from `from` to `to` through `host:port`.
    pub fn new(
        name: String,
        host: String,
        port: u16,
        from: String,
        to: Vec<String>,
        credentials: Option<(String, String)>,
        public_url: Option<String>,
    ) -> Result<Self, String> {
        if to.is_empty() {
            return Err("at least one recipient is needed".into());
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
        })
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
            if let Some(l) = &v.link {
                body.push_str(&format!("  details: {l}\r\n"));
            }
            body.push_str(&format!("  episode: {}\r\n\r\n", v.episode));
        }
        (subject, body)
    }

    async fn send(&self, subject: &str, body: &str) -> Result<(), NotifyError> {
        let stream = tokio::time::timeout(
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
        let (r, mut w) = stream.into_split();
        let mut r = BufReader::new(r);
        expect(&mut r, 220).await?;
        command(&mut w, &mut r, "EHLO driftguard", 250).await?;
        if let Some((user, pass)) = &self.credentials {
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{pass}"));
            command(&mut w, &mut r, &format!("AUTH PLAIN {token}"), 235).await?;
        }
        command(&mut w, &mut r, &format!("MAIL FROM:<{}>", self.from), 250).await?;
        for to in &self.to {
            command(&mut w, &mut r, &format!("RCPT TO:<{to}>"), 250).await?;
        }
        command(&mut w, &mut r, "DATA", 354).await?;
        let subject: String = subject.chars().filter(|c| !c.is_control()).collect();
        let mut msg = format!(
            "From: DriftGuard <{}>\r\nTo: {}\r\nSubject: {subject}\r\nDate: {}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
            self.from,
            self.to.join(", "),
            chrono::Utc::now().to_rfc2822(),
        );
        msg.push_str(&dot_stuff(body));
        w.write_all(msg.as_bytes()).await.map_err(io_err)?;
        expect(&mut r, 250).await?;
        let _ = w.write_all(b"QUIT\r\n").await;
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

async fn command<R: tokio::io::AsyncBufRead + Unpin>(
    w: &mut tokio::net::tcp::OwnedWriteHalf,
    r: &mut R,
    line: &str,
    code: u16,
) -> Result<(), NotifyError> {
    w.write_all(format!("{line}\r\n").as_bytes())
        .await
        .map_err(io_err)?;
    expect(r, code).await
}

/// Reads a (possibly multi-line) reply and checks its code.
async fn expect<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
    code: u16,
) -> Result<(), NotifyError> {
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
        if line.as_bytes().get(3) == Some(&b'-') {
            continue;
        }
        // 251 (user not local, will forward) is as good as 250
        if got == code || (code == 250 && got == 251) {
            return Ok(());
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
