//! Notifiers against local receivers on 127.0.0.1: a HTTP receiver (Slack, webhook,
//! PagerDuty) and an SMTP receiver written here.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use driftguard_core::ports::{Notification, Notifier};
use driftguard_core::severity::Severity;
use driftguard_core::state::{DriftEvent, EventKind};
use driftguard_server::config::{HumanDuration, NotifierConfig, QueueConfig, RouteConfig};
use driftguard_server::metrics::Metrics;
use driftguard_server::notify::smtp::{SmtpNotifier, SmtpTls};
use driftguard_server::notify::{
    self, build_notifiers, build_notifiers_marked, resend_undelivered, QueuedNotifier,
    RoutedNotifier,
};
use driftguard_server::testkit;
use driftguard_test_support::build;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct Receiver {
    got: Mutex<Vec<(HeaderMap, Bytes)>>,
    /// Statuses to answer, in order (then 200).
    script: Mutex<VecDeque<u16>>,
}

async fn receive(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    r.got.lock().expect("lock").push((headers, body));
    let code = r.script.lock().expect("lock").pop_front().unwrap_or(202);
    StatusCode::from_u16(code).expect("status")
}

async fn receiver() -> (Arc<Receiver>, String) {
    let r = Arc::new(Receiver::default());
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (r, format!("http://{addr}/hook"))
}

fn event(env: &str, i: usize, kind: EventKind, severity: Severity) -> DriftEvent {
    let mut d = testkit::numbered_drift(env, i, severity, kind != EventKind::Resolved);
    // a Secret-like value in a diff: notifiers send paths, never values
    if let Some(f) = d.fields.first_mut() {
        f.live = Some(serde_json::json!("hunter2-live-value"));
    }
    DriftEvent {
        event_id: format!("{}-{}", d.episode, kind.as_str()),
        ..build::event(kind, &d, d.updated_at, "s1")
    }
}

fn notification(env: &str, events: Vec<DriftEvent>) -> Notification {
    Notification {
        environment: env.into(),
        events,
    }
}

fn fast_queue() -> QueueConfig {
    QueueConfig {
        capacity: 100,
        max_attempts: 4,
        initial_backoff: HumanDuration(Duration::from_millis(20)),
        max_backoff: HumanDuration(Duration::from_millis(100)),
        group_window: HumanDuration(Duration::from_millis(100)),
    }
}

async fn wait_for(r: &Receiver, n: usize) {
    let start = Instant::now();
    while r.got.lock().expect("lock").len() < n {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {n} requests"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    move |k| {
        pairs
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    }
}

#[tokio::test]
async fn generic_webhook_is_signed_and_documented_shape() {
    let (rx, url) = receiver().await;
    let cancel = CancellationToken::new();
    let metrics = Arc::new(Metrics::new());
    let built = build_notifiers(
        &[NotifierConfig::Webhook {
            name: None,
            url,
            secret_env: Some("HOOK_SECRET".into()),
            route: RouteConfig::default(),
            queue: fast_queue(),
        }],
        metrics.clone(),
        Some("https://dg.example/".into()),
        cancel.clone(),
        &env_of(&[("HOOK_SECRET", "k3y")]),
    )
    .expect("built");
    let n = &built.notifiers[0];
    n.notify(&notification(
        "prod",
        vec![event("prod", 0, EventKind::Detected, Severity::High)],
    ))
    .await
    .expect("queued");
    wait_for(&rx, 1).await;
    let (headers, body) = rx.got.lock().expect("lock")[0].clone();
    let sig = headers["x-driftguard-signature-256"]
        .to_str()
        .expect("ascii");
    assert_eq!(sig, notify::webhook::sign("k3y", &body));
    let text = String::from_utf8_lossy(&body);
    assert!(!text.contains("hunter2"), "values are never sent: {text}");
    let v: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["version"], 1);
    assert_eq!(v["environment"], "prod");
    let e = &v["events"][0];
    assert_eq!(e["event"], "detected");
    assert_eq!(e["episode"], "prod-00000000");
    assert_eq!(e["severity"], "high");
    assert_eq!(e["direction"], "forward");
    assert_eq!(e["fields"], serde_json::json!(["spec.replicas"]));
    assert_eq!(e["who"], "kubectl-edit");
    assert_eq!(e["object"]["reference"], "Deployment.apps/ns-0/web-0");
    assert_eq!(e["link"], "https://dg.example/api/v1/drifts/prod-00000000");
    // the findings travel with the event, and raise its risk to at least the severity
    assert_eq!(e["risk"], "high");
    assert_eq!(e["findings"][0]["rule"], "replicas-cut");
    assert_eq!(e["findings"][0]["category"], "availability");
    assert_eq!(e["findings"][0]["risk"], "medium");
    assert_eq!(e["findings"][0]["path"], "spec.replicas");
    assert_eq!(e["findings"][0]["reason"], "fewer replicas live");
    cancel.cancel();
    built.flush(Duration::from_secs(5)).await;
    assert!(metrics
        .encode(chrono::Utc::now())
        .contains("driftguard_notifications_sent_total{notifier=\"webhook\"} 1"));
}

#[tokio::test]
async fn slack_block_kit_message() {
    let (rx, url) = receiver().await;
    let n = notify::slack::SlackNotifier::new(
        "slack".into(),
        url.parse().expect("url"),
        Some("https://dg.example".into()),
    );
    let events: Vec<DriftEvent> = (0..25)
        .map(|i| event("prod", i * 4, EventKind::Detected, Severity::Critical))
        .chain([event("prod", 3, EventKind::Resolved, Severity::Low)])
        .collect();
    n.notify(&notification("prod", events)).await.expect("sent");
    let (_, body) = rx.got.lock().expect("lock")[0].clone();
    let text = String::from_utf8_lossy(&body);
    assert!(!text.contains("hunter2"));
    let v: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["text"], "DriftGuard · prod: 25 detected, 1 resolved");
    let blocks = v["blocks"].as_array().expect("blocks");
    assert_eq!(blocks[0]["type"], "header");
    assert_eq!(
        blocks.len(),
        1 + notify::slack::MAX_LISTED + 1,
        "grouped, capped, counted"
    );
    let first = blocks[1]["text"]["text"].as_str().expect("mrkdwn");
    for part in [
        "*detected*",
        "`Deployment.apps ns-0/web-0`",
        "*critical*",
        "forward",
        "`spec.replicas`",
        "Who: kubectl-edit",
        "Findings: medium availability replicas-cut: fewer replicas live",
        "<https://dg.example/api/v1/drifts/prod-00000000|Details>",
    ] {
        assert!(first.contains(part), "{part} in {first}");
    }
    assert!(blocks.last().expect("last")["elements"][0]["text"]
        .as_str()
        .expect("t")
        .contains("6 more"));
    // a rejected post is an error (the queue retries it)
    rx.script.lock().expect("lock").push_back(500);
    let err = n
        .notify(&notification(
            "prod",
            vec![event("prod", 0, EventKind::Detected, Severity::Low)],
        ))
        .await;
    assert!(matches!(
        err,
        Err(driftguard_core::ports::NotifyError::Rejected { status: 500 })
    ));
}

#[tokio::test]
async fn pagerduty_triggers_and_resolves_with_the_episode_as_dedup_key() {
    let (rx, url) = receiver().await;
    let n = notify::pagerduty::PagerDutyNotifier::new(
        "pd".into(),
        url.parse().expect("url"),
        "RKEY".into(),
        None,
    );
    n.notify(&notification(
        "prod",
        vec![
            event("prod", 0, EventKind::Detected, Severity::High),
            event("prod", 0, EventKind::Changed, Severity::High),
        ],
    ))
    .await
    .expect("sent");
    n.notify(&notification(
        "prod",
        vec![event("prod", 0, EventKind::Resolved, Severity::High)],
    ))
    .await
    .expect("sent");
    let got = rx.got.lock().expect("lock").clone();
    assert_eq!(got.len(), 2, "changed is not sent");
    let trigger: Value = serde_json::from_slice(&got[0].1).expect("json");
    assert_eq!(trigger["routing_key"], "RKEY");
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(trigger["dedup_key"], "prod-00000000");
    assert_eq!(trigger["payload"]["severity"], "error");
    assert_eq!(trigger["payload"]["source"], "driftguard/prod");
    assert!(trigger["payload"]["summary"]
        .as_str()
        .expect("s")
        .contains("Deployment.apps ns-0/web-0"));
    assert!(!String::from_utf8_lossy(&got[0].1).contains("hunter2"));
    let resolve: Value = serde_json::from_slice(&got[1].1).expect("json");
    assert_eq!(resolve["event_action"], "resolve");
    assert_eq!(resolve["dedup_key"], "prod-00000000");
    assert!(resolve.get("payload").is_none());
}

/// A minimal SMTP receiver: records the envelope and the DATA of each message.
async fn smtp_receiver(auth: bool) -> (Arc<Mutex<Vec<(Vec<String>, String)>>>, u16) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let store = got.clone();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            let store = store.clone();
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut r = BufReader::new(r);
                w.write_all(b"220 test ESMTP\r\n").await.expect("write");
                let mut envelope = Vec::new();
                let mut line = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let cmd = line.trim_end().to_owned();
                    let reply: &[u8] = if cmd.starts_with("EHLO") {
                        if auth {
                            b"250-test\r\n250 AUTH PLAIN\r\n"
                        } else {
                            b"250-test\r\n250 8BITMIME\r\n"
                        }
                    } else if let Some(token) = cmd.strip_prefix("AUTH PLAIN ") {
                        envelope.push(format!("AUTH {token}"));
                        b"235 ok\r\n"
                    } else if cmd.starts_with("MAIL FROM:") || cmd.starts_with("RCPT TO:") {
                        envelope.push(cmd.clone());
                        b"250 ok\r\n"
                    } else if cmd == "DATA" {
                        w.write_all(b"354 go\r\n").await.expect("write");
                        let mut data = String::new();
                        loop {
                            line.clear();
                            r.read_line(&mut line).await.expect("read");
                            if line == ".\r\n" {
                                break;
                            }
                            data.push_str(&line);
                        }
                        store.lock().expect("lock").push((envelope.clone(), data));
                        b"250 queued\r\n"
                    } else if cmd == "QUIT" {
                        let _ = w.write_all(b"221 bye\r\n").await;
                        return;
                    } else {
                        b"500 what\r\n"
                    };
                    w.write_all(reply).await.expect("write");
                }
            });
        }
    });
    (got, port)
}

#[tokio::test]
async fn email_over_smtp_to_a_local_receiver() {
    let (got, port) = smtp_receiver(true).await;
    let n = notify::smtp::SmtpNotifier::new(
        "email".into(),
        "127.0.0.1".into(),
        port,
        "driftguard@example.org".into(),
        vec!["ops@example.org".into(), "sre@example.org".into()],
        Some(("bot".into(), "pw".into())),
        None,
    )
    .expect("valid")
    // this receiver offers no STARTTLS: the password goes in plain text only when told to
    .with_tls(SmtpTls::None, None)
    .expect("no CA file");
    let e = event("prod", 0, EventKind::Detected, Severity::High);
    n.notify(&notification(
        "prod",
        vec![e, event("prod", 3, EventKind::Resolved, Severity::Low)],
    ))
    .await
    .expect("sent");
    let got = got.lock().expect("lock").clone();
    assert_eq!(got.len(), 1);
    let (envelope, data) = &got[0];
    assert_eq!(envelope[0], "AUTH AGJvdABwdw==", "AUTH PLAIN \\0bot\\0pw");
    assert_eq!(envelope[1], "MAIL FROM:<driftguard@example.org>");
    assert_eq!(
        &envelope[2..],
        ["RCPT TO:<ops@example.org>", "RCPT TO:<sre@example.org>"]
    );
    assert!(
        data.contains("Subject: [DriftGuard] prod: 1 detected, 1 resolved\r\n"),
        "{data}"
    );
    assert!(
        data.contains("detected: forward modified drift of Deployment.apps ns-0/web-0 (high)"),
        "{data}"
    );
    assert!(
        data.contains("resolved: modified Deployment.apps ns-3/web-3 (low), reverted"),
        "{data}"
    );
    assert!(data.contains("who: kubectl-edit"));
    assert!(
        data.contains("  findings: medium availability replicas-cut: fewer replicas live\r\n"),
        "{data}"
    );
    assert!(!data.contains("hunter2"));

    assert!(notify::smtp::SmtpNotifier::new(
        "e".into(),
        "h".into(),
        25,
        "x@y".into(),
        vec!["a@b\r\nBcc: evil@x".into()],
        None,
        None
    )
    .is_err());
    // an unreachable server is an error, not a hang
    let dead = notify::smtp::SmtpNotifier::new(
        "e".into(),
        "127.0.0.1".into(),
        1,
        "x@y.z".into(),
        vec!["a@b.c".into()],
        None,
        None,
    )
    .expect("valid");
    assert!(dead
        .notify(&notification(
            "prod",
            vec![event("prod", 0, EventKind::Detected, Severity::High)]
        ))
        .await
        .is_err());
}

/// The value of header `name` in a message as received, its folded lines joined.
fn header(data: &str, name: &str) -> Option<String> {
    let mut lines = data.split("\r\n");
    let prefix = format!("{}:", name.to_ascii_lowercase());
    let first = lines.find(|l| l.to_ascii_lowercase().starts_with(&prefix))?;
    let mut value = first[prefix.len()..].trim().to_owned();
    for l in lines.take_while(|l| l.starts_with([' ', '\t'])) {
        value.push(' ');
        value.push_str(l.trim());
    }
    Some(value)
}

/// The text of an unstructured header value with RFC 2047 encoded words (`=?utf-8?b?...?=`,
/// `=?utf-8?q?...?=`; the space between two encoded words is not text).
fn decode_rfc2047(value: &str) -> String {
    use base64::Engine as _;
    let mut out = String::new();
    let mut after_word = false;
    for token in value.split(' ') {
        let word = token
            .strip_prefix("=?")
            .and_then(|t| t.strip_suffix("?="))
            .and_then(|t| {
                let mut parts = t.splitn(3, '?');
                Some((parts.next()?, parts.next()?, parts.next()?))
            });
        let (text, encoded) = match word {
            Some((charset, encoding, text)) => {
                assert!(charset.eq_ignore_ascii_case("utf-8"), "{value}");
                let bytes = if encoding.eq_ignore_ascii_case("b") {
                    base64::engine::general_purpose::STANDARD
                        .decode(text)
                        .expect("base64 word")
                } else {
                    quoted_printable(&text.replace('_', " "))
                };
                (String::from_utf8(bytes).expect("utf-8 word"), true)
            }
            None => (token.to_owned(), false),
        };
        // adjacent encoded words join without the space between them
        let joined = encoded && after_word;
        if !out.is_empty() && !joined {
            out.push(' ');
        }
        out.push_str(&text);
        after_word = encoded;
    }
    out
}

/// Quoted-printable decoded (soft line breaks dropped).
fn quoted_printable(s: &str) -> Vec<u8> {
    let s = s.replace("=\r\n", "");
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).expect("hex");
            out.push(u8::from_str_radix(hex, 16).expect("hex"));
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

#[tokio::test]
async fn email_headers_are_encoded_dated_by_the_clock_and_identified() {
    let clock = Arc::new(driftguard_core::memory::ManualClock::new(testkit::t0()));
    let env = "produktion-süd";
    let first = notification(
        env,
        vec![event("prod", 0, EventKind::Detected, Severity::High)],
    );
    let second = notification(
        env,
        vec![event("prod", 1, EventKind::Detected, Severity::High)],
    );

    // a server that offers 8BITMIME
    let (got, port) = smtp_receiver(false).await;
    let n = smtp_to(port, false).with_clock(clock.clone());
    n.notify(&first).await.expect("sent");
    n.notify(&first).await.expect("sent again");
    n.notify(&second).await.expect("sent");
    let got = got.lock().expect("lock").clone();
    assert_eq!(got.len(), 3);
    let (envelope, data) = &got[0];
    let head = data.split("\r\n\r\n").next().expect("headers");
    assert!(head.is_ascii(), "headers are 7-bit: {head}");
    let subject = header(data, "Subject").expect("Subject");
    assert!(
        subject.to_ascii_lowercase().contains("=?utf-8?") && !subject.contains("ü"),
        "RFC 2047: {subject}"
    );
    assert_eq!(
        decode_rfc2047(&subject),
        "[DriftGuard] produktion-süd: 1 detected"
    );
    let date = header(data, "Date").expect("Date");
    assert_eq!(
        chrono::DateTime::parse_from_rfc2822(&date).expect("RFC 5322 date"),
        testkit::t0(),
        "the Date is the clock's: {date}"
    );
    let id = header(data, "Message-ID").expect("Message-ID");
    assert!(
        id.starts_with('<') && id.ends_with("@example.org>") && id.len() > 20,
        "{id}"
    );
    assert_eq!(
        header(&got[1].1, "Message-ID").as_ref(),
        Some(&id),
        "a resend of the same alert is the same message"
    );
    assert_ne!(header(&got[2].1, "Message-ID").as_ref(), Some(&id));
    assert_eq!(
        header(data, "From").as_deref(),
        Some("DriftGuard <driftguard@example.org>")
    );
    // the body in 8bit, announced as such
    assert_eq!(
        envelope[0],
        "MAIL FROM:<driftguard@example.org> BODY=8BITMIME"
    );
    assert_eq!(
        header(data, "Content-Transfer-Encoding").as_deref(),
        Some("8bit")
    );
    assert!(
        data.contains("DriftGuard detected changes in environment produktion-süd.\r\n"),
        "{data}"
    );
    assert!(!data.contains("hunter2"));

    // a server without 8BITMIME, and a line longer than 76 characters: the body goes
    // quoted-printable, 7-bit, each line folded short
    let (got, port) = smtp_receiver(true).await;
    SmtpNotifier::new(
        "email".into(),
        "127.0.0.1".into(),
        port,
        "driftguard@example.org".into(),
        vec!["ops@example.org".into()],
        None,
        Some("https://driftguard.example.org/a/rather/long/prefix/before/the/pages".into()),
    )
    .expect("valid")
    .with_clock(clock.clone())
    .notify(&first)
    .await
    .expect("sent");
    let got = got.lock().expect("lock").clone();
    let (envelope, data) = &got[0];
    assert_eq!(envelope[0], "MAIL FROM:<driftguard@example.org>");
    assert!(data.is_ascii(), "{data}");
    assert!(
        data.split("\r\n").all(|l| l.len() <= 78),
        "lines are folded: {data}"
    );
    assert_eq!(
        header(data, "Content-Transfer-Encoding").as_deref(),
        Some("quoted-printable")
    );
    let body = data.split_once("\r\n\r\n").expect("body").1;
    let body = String::from_utf8(quoted_printable(body)).expect("utf-8");
    assert!(
        body.contains("DriftGuard detected changes in environment produktion-süd.\r\n"),
        "{body}"
    );
    assert!(
        body.contains(
            "  details: https://driftguard.example.org/a/rather/long/prefix/before/the/pages/"
        ),
        "{body}"
    );
    assert!(!body.contains("hunter2"));
}

/// How a test SMTP receiver offers TLS.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Offer {
    Nothing,
    StartTls,
    Implicit,
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// A test CA and a TLS acceptor whose certificate (for `127.0.0.1` and `localhost`) it signed;
/// the CA's certificate as PEM.
fn test_tls() -> (tokio_rustls::TlsAcceptor, String) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca =
        CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("key")).expect("CA");
    let key = KeyPair::generate().expect("key");
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .expect("params")
        .signed_by(&key, &ca)
        .expect("certificate");
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.der().clone()],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
    .expect("server config");
    (tokio_rustls::TlsAcceptor::from(Arc::new(config)), ca.pem())
}

type Transcripts = Arc<Mutex<Vec<Vec<String>>>>;

/// An SMTP receiver offering TLS as `offer` says. Each session's transcript: the commands
/// received (`TLS` once the connection is secured, `DATA` with the message's subject).
async fn tls_receiver(offer: Offer) -> (Transcripts, u16, String) {
    let (acceptor, ca_pem) = test_tls();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let transcripts: Transcripts = Arc::default();
    let all = transcripts.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let all = all.clone();
            tokio::spawn(async move {
                let mut log = Vec::new();
                let _ = smtp_session(sock, offer, &acceptor, &mut log).await;
                all.lock().expect("lock").push(log);
            });
        }
    });
    (transcripts, port, ca_pem)
}

async fn smtp_session(
    sock: tokio::net::TcpStream,
    offer: Offer,
    acceptor: &tokio_rustls::TlsAcceptor,
    log: &mut Vec<String>,
) -> std::io::Result<()> {
    let mut s: BufReader<Box<dyn Stream>> = if offer == Offer::Implicit {
        let tls = acceptor.accept(sock).await?;
        log.push("TLS".into());
        BufReader::new(Box::new(tls))
    } else {
        BufReader::new(Box::new(sock))
    };
    let mut secured = offer == Offer::Implicit;
    s.write_all(b"220 test ESMTP\r\n").await?;
    s.flush().await?;
    let mut line = String::new();
    loop {
        line.clear();
        if s.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end().to_owned();
        let reply: &[u8] = if cmd.starts_with("EHLO") {
            if offer == Offer::StartTls && !secured {
                b"250-test\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n"
            } else {
                b"250-test\r\n250 AUTH PLAIN\r\n"
            }
        } else if cmd == "STARTTLS" && offer == Offer::StartTls && !secured {
            s.write_all(b"220 go ahead\r\n").await?;
            s.flush().await?;
            let tls = acceptor.accept(s.into_inner()).await?;
            s = BufReader::new(Box::new(tls));
            secured = true;
            log.push("TLS".into());
            continue;
        } else if let Some(token) = cmd.strip_prefix("AUTH PLAIN ") {
            log.push(format!("AUTH {token}"));
            b"235 ok\r\n"
        } else if cmd.starts_with("MAIL FROM:") || cmd.starts_with("RCPT TO:") {
            log.push(cmd.clone());
            b"250 ok\r\n"
        } else if cmd == "DATA" {
            s.write_all(b"354 go\r\n").await?;
            s.flush().await?;
            let mut subject = String::new();
            loop {
                line.clear();
                s.read_line(&mut line).await?;
                if line == ".\r\n" {
                    break;
                }
                if let Some(sub) = line.strip_prefix("Subject: ") {
                    subject = sub.trim_end().to_owned();
                }
            }
            log.push(format!("DATA {subject}"));
            b"250 queued\r\n"
        } else if cmd == "QUIT" {
            s.write_all(b"221 bye\r\n").await?;
            s.flush().await?;
            return Ok(());
        } else {
            log.push(cmd.clone());
            b"500 what\r\n"
        };
        s.write_all(reply).await?;
        s.flush().await?;
    }
}

/// A notifier mailing ops@ through 127.0.0.1:`port`, logging in as `bot` when `password`.
fn smtp_to(port: u16, password: bool) -> SmtpNotifier {
    SmtpNotifier::new(
        "email".into(),
        "127.0.0.1".into(),
        port,
        "driftguard@example.org".into(),
        vec!["ops@example.org".into()],
        password.then(|| ("bot".into(), "pw".into())),
        None,
    )
    .expect("valid")
}

fn mailer(port: u16, tls: SmtpTls, ca_file: Option<&std::path::Path>) -> SmtpNotifier {
    smtp_to(port, true).with_tls(tls, ca_file).expect("CA file")
}

fn one_detection() -> Notification {
    notification(
        "prod",
        vec![event("prod", 0, EventKind::Detected, Severity::High)],
    )
}

/// Waits for the receiver to finish `n` sessions.
async fn sessions(t: &Transcripts, n: usize) -> Vec<Vec<String>> {
    for _ in 0..200 {
        if t.lock().expect("lock").len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    t.lock().expect("lock").clone()
}

#[tokio::test]
async fn email_over_starttls_and_implicit_tls_trusting_a_private_ca() {
    let dir = tempfile::tempdir().expect("tmp");
    for (offer, tls) in [
        (Offer::StartTls, SmtpTls::Auto),
        (Offer::StartTls, SmtpTls::StartTls),
        (Offer::Implicit, SmtpTls::Tls),
    ] {
        let (t, port, ca_pem) = tls_receiver(offer).await;
        let ca = dir.path().join(format!("ca-{port}.pem"));
        std::fs::write(&ca, ca_pem).expect("write CA");
        mailer(port, tls, Some(&ca))
            .notify(&one_detection())
            .await
            .unwrap_or_else(|e| panic!("{offer:?} with {tls:?}: {e:?}"));
        let got = sessions(&t, 1).await;
        assert_eq!(
            got[0],
            [
                "TLS",
                "AUTH AGJvdABwdw==",
                "MAIL FROM:<driftguard@example.org>",
                "RCPT TO:<ops@example.org>",
                "DATA [DriftGuard] prod: 1 detected",
            ],
            "{offer:?} with {tls:?}: the password only after TLS"
        );
    }
}

#[tokio::test]
async fn no_password_without_tls_and_no_unknown_certificates() {
    // no STARTTLS offered: auto refuses to send the password, starttls refuses to go on
    let (t, port, _) = tls_receiver(Offer::Nothing).await;
    let err = mailer(port, SmtpTls::Auto, None)
        .notify(&one_detection())
        .await
        .expect_err("no password in plain text");
    assert!(
        format!("{err:?}").contains("not sent in plain text"),
        "{err:?}"
    );
    let err = mailer(port, SmtpTls::StartTls, None)
        .notify(&one_detection())
        .await
        .expect_err("STARTTLS required");
    assert!(
        format!("{err:?}").contains("does not offer STARTTLS"),
        "{err:?}"
    );
    for session in sessions(&t, 2).await {
        assert!(
            session
                .iter()
                .all(|c| !c.starts_with("AUTH") && !c.starts_with("MAIL")),
            "{session:?}"
        );
    }
    // without a password, auto sends in plain text when the server offers no TLS
    let (t, port, _) = tls_receiver(Offer::Nothing).await;
    smtp_to(port, false)
        .notify(&one_detection())
        .await
        .expect("sent");
    assert_eq!(
        sessions(&t, 1).await[0].last().map(String::as_str),
        Some("DATA [DriftGuard] prod: 1 detected")
    );

    // a certificate no trusted CA signed: no password, no mail
    let (t, port, _) = tls_receiver(Offer::StartTls).await;
    let err = mailer(port, SmtpTls::Auto, None)
        .notify(&one_detection())
        .await
        .expect_err("unknown issuer");
    assert!(format!("{err:?}").contains("TLS with 127.0.0.1"), "{err:?}");
    assert!(sessions(&t, 1).await[0]
        .iter()
        .all(|c| !c.starts_with("AUTH")));

    // a CA file that cannot be read is named
    let missing = std::path::Path::new("/nonexistent/ca.pem");
    let err = smtp_to(port, false)
        .with_tls(SmtpTls::Auto, Some(missing))
        .err()
        .expect("unreadable CA file");
    let err = driftguard_core::error::chain(&err);
    assert!(err.contains("/nonexistent/ca.pem"), "{err}");
}

/// One run of a server's notifiers on `store`: a webhook to `url`, recording delivery marks.
fn marked_webhook(
    url: &str,
    store: &Arc<dyn driftguard_core::ports::DriftStore>,
    cancel: &CancellationToken,
) -> notify::BuiltNotifiers {
    build_notifiers_marked(
        &[NotifierConfig::Webhook {
            name: Some("hook".into()),
            url: url.to_owned(),
            secret_env: None,
            route: RouteConfig::default(),
            queue: QueueConfig {
                max_attempts: 1000,
                ..fast_queue()
            },
        }],
        Arc::new(Metrics::new()),
        None,
        cancel.clone(),
        &env_of(&[]),
        Some(store.clone()),
    )
    .expect("built")
}

#[tokio::test]
async fn alerts_not_delivered_before_a_stop_are_sent_after_the_restart() {
    use driftguard_core::ports::{DriftStore, ScanBatch};
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("driftguard.db");
    let store: Arc<dyn DriftStore> =
        Arc::new(driftguard_store::SqliteStore::open(&path).expect("opens"));
    let (rx, url) = receiver().await;
    let t0 = testkit::t0();

    // first run: the receiver fails every time
    rx.script.lock().expect("lock").extend([500; 10_000]);
    let cancel = CancellationToken::new();
    let built = marked_webhook(&url, &store, &cancel);
    assert_eq!(
        resend_undelivered(&built.notifiers, &*store, t0)
            .await
            .expect("reads"),
        0,
        "a new notifier starts from now"
    );
    assert_eq!(store.delivered_until("hook").await.expect("mark"), Some(t0));
    let events = vec![
        event("prod", 1, EventKind::Detected, Severity::High),
        event("prod", 2, EventKind::Detected, Severity::Low),
    ];
    // what a scan does: store the events, then announce them
    store
        .commit(&ScanBatch {
            environment: "prod".into(),
            summary: None,
            upserts: Vec::new(),
            deletes: Vec::new(),
            events: events.clone(),
            epoch: None,
        })
        .await
        .expect("stored");
    built.notifiers[0]
        .notify(&notification("prod", events.clone()))
        .await
        .expect("queued");
    wait_for(&rx, 2).await;
    cancel.cancel();
    built.flush(Duration::from_secs(5)).await;
    assert_eq!(
        store.delivered_until("hook").await.expect("mark"),
        Some(t0),
        "nothing was delivered: the mark stays"
    );

    // the restart, on the same file: the receiver is back
    rx.script.lock().expect("lock").clear();
    let before = rx.got.lock().expect("lock").len();
    drop(store);
    let store: Arc<dyn DriftStore> =
        Arc::new(driftguard_store::SqliteStore::open(&path).expect("opens again"));
    let cancel = CancellationToken::new();
    let built = marked_webhook(&url, &store, &cancel);
    let later = t0 + chrono::Duration::hours(1);
    assert_eq!(
        resend_undelivered(&built.notifiers, &*store, later)
            .await
            .expect("reads"),
        2
    );
    wait_for(&rx, before + 1).await;
    let (_, body) = rx.got.lock().expect("lock")[before].clone();
    let body: Value = serde_json::from_slice(&body).expect("json");
    let ids: Vec<&str> = body["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["event_id"].as_str().expect("id"))
        .collect();
    assert_eq!(
        ids,
        [events[0].event_id.as_str(), events[1].event_id.as_str()]
    );
    // once delivered, the mark moves to the newest event, and a further restart sends nothing
    let start = Instant::now();
    while store.delivered_until("hook").await.expect("mark") != Some(events[1].at) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "mark never moved"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cancel.cancel();
    built.flush(Duration::from_secs(5)).await;
    let cancel = CancellationToken::new();
    let built = marked_webhook(&url, &store, &cancel);
    assert_eq!(
        resend_undelivered(&built.notifiers, &*store, later)
            .await
            .expect("reads"),
        0
    );
    cancel.cancel();
    built.flush(Duration::from_secs(5)).await;

    // names are marks: two notifiers may not share one
    let twice = build_notifiers(
        &[
            NotifierConfig::Webhook {
                name: None,
                url: url.clone(),
                secret_env: None,
                route: RouteConfig::default(),
                queue: fast_queue(),
            },
            NotifierConfig::Webhook {
                name: None,
                url,
                secret_env: None,
                route: RouteConfig::default(),
                queue: fast_queue(),
            },
        ],
        Arc::new(Metrics::new()),
        None,
        CancellationToken::new(),
        &env_of(&[]),
    );
    let err = twice.expect_err("duplicate names");
    assert!(
        err.to_string().contains("server.notifiers[1].name"),
        "{err}"
    );
}

#[tokio::test]
async fn routing_by_environment_and_severity_and_only_transitions() {
    let sink = Arc::new(driftguard_core::memory::RecordingNotifier::default());
    let routed = RoutedNotifier {
        inner: sink.clone(),
        environments: vec!["prod".into()],
        min_severity: Severity::High,
    };
    routed
        .notify(&notification(
            "dev",
            vec![event("dev", 0, EventKind::Detected, Severity::Critical)],
        ))
        .await
        .expect("ok");
    routed
        .notify(&notification(
            "prod",
            vec![
                event("prod", 0, EventKind::Detected, Severity::Medium),
                event("prod", 1, EventKind::Detected, Severity::High),
                event("prod", 2, EventKind::Changed, Severity::Critical),
                event("prod", 3, EventKind::Resolved, Severity::Critical),
            ],
        ))
        .await
        .expect("ok");
    let got = sink.received.lock().expect("lock").clone();
    assert_eq!(got.len(), 1);
    let ids: Vec<&str> = got[0]
        .events
        .iter()
        .map(|e| e.drift.episode.as_str())
        .collect();
    assert_eq!(ids, ["prod-00000001", "prod-00000003"]);
}

/// Answers slowly and fails a few times.
struct Flaky {
    fail: Mutex<u32>,
    delay: Duration,
    calls: Mutex<Vec<Notification>>,
}

#[async_trait::async_trait]
impl Notifier for Flaky {
    fn name(&self) -> &str {
        "flaky"
    }
    async fn notify(&self, n: &Notification) -> Result<(), driftguard_core::ports::NotifyError> {
        tokio::time::sleep(self.delay).await;
        self.calls.lock().expect("lock").push(n.clone());
        let mut f = self.fail.lock().expect("lock");
        if *f > 0 {
            *f -= 1;
            return Err(driftguard_core::ports::NotifyError::Rejected { status: 503 });
        }
        Ok(())
    }
}

#[tokio::test]
async fn queue_never_blocks_groups_bursts_and_retries_with_backoff() {
    let flaky = Arc::new(Flaky {
        fail: Mutex::new(2),
        delay: Duration::from_millis(50),
        calls: Mutex::new(Vec::new()),
    });
    let metrics = Arc::new(Metrics::new());
    let cancel = CancellationToken::new();
    let (q, handle) =
        QueuedNotifier::spawn(flaky.clone(), fast_queue(), metrics.clone(), cancel.clone());
    let t = Instant::now();
    for i in 0..5 {
        q.notify(&notification(
            "prod",
            vec![event("prod", i, EventKind::Detected, Severity::High)],
        ))
        .await
        .expect("queued");
    }
    q.notify(&notification(
        "dev",
        vec![event("dev", 9, EventKind::Detected, Severity::High)],
    ))
    .await
    .expect("queued");
    assert!(
        t.elapsed() < Duration::from_millis(40),
        "notify returns at once"
    );
    let start = Instant::now();
    loop {
        let calls = flaky.calls.lock().expect("lock").len();
        // prod group: 2 failures + 1 success; dev group: 1 success
        if calls >= 4 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "deliveries: {calls}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let calls = flaky.calls.lock().expect("lock").clone();
    assert_eq!(calls[0].environment, "prod");
    assert_eq!(calls[0].events.len(), 5, "the burst went out as one");
    assert_eq!(calls[2].events.len(), 5, "the retry sends the same");
    assert_eq!(calls[3].environment, "dev");
    let m = metrics.encode(chrono::Utc::now());
    assert!(
        m.contains("driftguard_notification_failures_total{notifier=\"flaky\"} 2"),
        "{m}"
    );
    assert!(
        m.contains("driftguard_notifications_sent_total{notifier=\"flaky\"} 2"),
        "{m}"
    );

    // a receiver that never recovers: given up after max_attempts, counted as dropped
    *flaky.fail.lock().expect("lock") = 100;
    q.notify(&notification(
        "prod",
        vec![event("prod", 1, EventKind::Resolved, Severity::High)],
    ))
    .await
    .expect("queued");
    let start = Instant::now();
    while !metrics
        .encode(chrono::Utc::now())
        .contains("driftguard_notifications_dropped_total{notifier=\"flaky\"} 1")
    {
        assert!(start.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .expect("worker ends")
        .expect("no panic");
}

#[test]
fn missing_secrets_are_named_in_errors() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        let err = build_notifiers(
            &[NotifierConfig::Pagerduty {
                name: None,
                routing_key_env: "PD_KEY".into(),
                events_url: None,
                route: RouteConfig::default(),
                queue: QueueConfig::default(),
            }],
            Arc::new(Metrics::new()),
            None,
            CancellationToken::new(),
            &|_| None,
        )
        .expect_err("missing");
        assert_eq!(
            err.to_string(),
            "environment variable PD_KEY (named by server.notifiers[0].routingKeyEnv) is not set"
        );
    });
}

fn ids_of(body: &Bytes) -> Vec<String> {
    let body: Value = serde_json::from_slice(body).expect("json");
    body["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["event_id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test]
async fn per_environment_marks_move_for_led_environments_and_a_new_leader_resends_from_them() {
    use driftguard_core::ports::{DriftStore, ScanBatch};
    use driftguard_server::ha::{Leadership, Term};
    use driftguard_server::notify::{
        build_notifiers_with_marks, mark_key, resend_undelivered_for, Marks,
    };
    let store: Arc<dyn DriftStore> = Arc::new(driftguard_core::memory::MemoryStore::new());
    let (rx, url) = receiver().await;
    let leadership = Arc::new(Leadership::new("replica-a"));
    let term = |epoch| Term {
        epoch,
        valid_until: Instant::now() + Duration::from_secs(600),
    };
    leadership.begin("prod", term(1));
    let cancel = CancellationToken::new();
    let built = build_notifiers_with_marks(
        &[NotifierConfig::Webhook {
            name: Some("hook".into()),
            url: url.clone(),
            secret_env: None,
            route: RouteConfig::default(),
            queue: fast_queue(),
        }],
        Arc::new(Metrics::new()),
        None,
        cancel.clone(),
        &env_of(&[]),
        Marks::PerEnvironment(store.clone(), leadership.clone()),
        Arc::new(driftguard_core::memory::ManualClock::new(testkit::t0())),
    )
    .expect("built");
    let stored = |env: &str, events: &[DriftEvent]| {
        let store = store.clone();
        let batch = ScanBatch {
            environment: env.to_owned(),
            events: events.to_vec(),
            ..ScanBatch::default()
        };
        async move { store.commit(&batch).await.expect("stored") }
    };
    let t0 = testkit::t0();
    // a new leader's first acquisition: the mark starts now, nothing old is sent
    assert_eq!(
        resend_undelivered_for(&built.notifiers, &*store, "prod", t0)
            .await
            .expect("reads"),
        0
    );
    assert_eq!(
        store
            .delivered_until(&mark_key("hook", "prod"))
            .await
            .expect("mark"),
        Some(t0)
    );

    // an environment this replica leads: delivered, its mark moves (and only its own)
    let prod = vec![
        event("prod", 1, EventKind::Detected, Severity::High),
        event("prod", 2, EventKind::Detected, Severity::High),
    ];
    stored("prod", &prod).await;
    built.notifiers[0]
        .notify(&notification("prod", prod.clone()))
        .await
        .expect("queued");
    wait_for(&rx, 1).await;
    let start = Instant::now();
    while store
        .delivered_until(&mark_key("hook", "prod"))
        .await
        .expect("mark")
        != Some(prod[1].at)
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the mark never moved"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(store.delivered_until("hook").await.expect("mark"), None);

    // an environment another replica leads: not delivered, no mark moves
    let dev = vec![event("dev", 3, EventKind::Detected, Severity::High)];
    stored("dev", &dev).await;
    store
        .set_delivered_until(&mark_key("hook", "dev"), t0)
        .await
        .expect("the other leader's mark");
    built.notifiers[0]
        .notify(&notification("dev", dev.clone()))
        .await
        .expect("queued");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        rx.got.lock().expect("lock").len(),
        1,
        "nothing sent for dev"
    );
    assert_eq!(
        store
            .delivered_until(&mark_key("hook", "dev"))
            .await
            .expect("mark"),
        Some(t0)
    );

    // this replica takes dev over: what lies after dev's mark goes out once, then the mark moves
    leadership.begin("dev", term(2));
    assert_eq!(
        resend_undelivered_for(&built.notifiers, &*store, "dev", t0)
            .await
            .expect("reads"),
        1
    );
    wait_for(&rx, 2).await;
    let (_, body) = rx.got.lock().expect("lock")[1].clone();
    assert_eq!(ids_of(&body), [dev[0].event_id.clone()]);
    let start = Instant::now();
    while store
        .delivered_until(&mark_key("hook", "dev"))
        .await
        .expect("mark")
        != Some(dev[0].at)
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the mark never moved"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // and again: nothing more to send
    assert_eq!(
        resend_undelivered_for(&built.notifiers, &*store, "dev", t0)
            .await
            .expect("reads"),
        0
    );

    // a store a single server used: an environment's first mark starts at the notifier's
    let stage = vec![event("stage", 4, EventKind::Detected, Severity::High)];
    stored("stage", &stage).await;
    store
        .set_delivered_until("hook", t0)
        .await
        .expect("a single server's mark");
    leadership.begin("stage", term(1));
    assert_eq!(
        resend_undelivered_for(
            &built.notifiers,
            &*store,
            "stage",
            t0 + chrono::Duration::hours(1)
        )
        .await
        .expect("reads"),
        1
    );
    wait_for(&rx, 3).await;

    // losing an environment while its alerts wait in the queue: they are not delivered
    leadership.end("prod");
    let late = vec![event("prod", 5, EventKind::Detected, Severity::High)];
    built.notifiers[0]
        .notify(&notification("prod", late))
        .await
        .expect("queued");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rx.got.lock().expect("lock").len(), 3);
    assert_eq!(
        store
            .delivered_until(&mark_key("hook", "prod"))
            .await
            .expect("mark"),
        Some(prod[1].at)
    );
    cancel.cancel();
    built.flush(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_detection_carries_the_writers_named_within_its_group_window() {
    let sink = Arc::new(Flaky {
        fail: Mutex::new(0),
        delay: Duration::from_millis(1),
        calls: Mutex::new(Vec::new()),
    });
    let metrics = Arc::new(Metrics::new());
    let cancel = CancellationToken::new();
    let (q, handle) = QueuedNotifier::spawn(
        sink.clone(),
        QueueConfig {
            group_window: HumanDuration(Duration::from_millis(300)),
            ..fast_queue()
        },
        metrics,
        cancel.clone(),
    );
    let routed = RoutedNotifier {
        inner: q,
        environments: Vec::new(),
        min_severity: Severity::Low,
    };
    let alice: driftguard_core::audit::AuditWrite = serde_json::from_value(serde_json::json!({
        "audit_id": "a1", "at": "2026-01-01T00:00:00Z", "verb": "patch",
        "subresource": "scale", "user": {"name": "alice", "class": "person"},
        "manager": "", "user_agent": "kubectl/v1.20.2"
    }))
    .expect("a write");
    let named = |i: usize| {
        let mut e = event("prod", i, EventKind::Changed, Severity::High);
        e.drift.attribution.writers = vec![alice.clone()];
        e
    };
    // detected, then named by the audit log within the window: one alert that says who
    routed
        .notify(&notification(
            "prod",
            vec![event("prod", 0, EventKind::Detected, Severity::High)],
        ))
        .await
        .expect("ok");
    // a change that names no one is never announced
    routed
        .notify(&notification(
            "prod",
            vec![event("prod", 0, EventKind::Changed, Severity::High)],
        ))
        .await
        .expect("ok");
    routed
        .notify(&notification("prod", vec![named(0)]))
        .await
        .expect("ok");
    let start = Instant::now();
    while sink.calls.lock().expect("lock").is_empty() {
        assert!(start.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // named after its detection was sent: no second alert
    routed
        .notify(&notification("prod", vec![named(0)]))
        .await
        .expect("ok");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let calls = sink.calls.lock().expect("lock").clone();
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert_eq!(calls[0].events.len(), 1);
    let e = &calls[0].events[0];
    assert_eq!(e.kind, EventKind::Detected);
    assert_eq!(e.drift.attribution.writers, [alice]);
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .expect("worker ends")
        .expect("no panic");
}
