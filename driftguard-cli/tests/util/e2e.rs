//! Shared by the end-to-end tests: the test services, kubectl, a webhook and an SMTP
//! receiver on 127.0.0.1, and a client for a running `driftguard serve`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

// ---------------------------------------------------------------- services

pub struct Services {
    /// KUBECONFIG of the test cluster.
    pub kubeconfig: String,
    /// kubectl of the test cluster's version.
    pub kubectl: String,
    /// The MongoDB test server.
    pub mongodb_uri: String,
}

/// The test services; a missing one fails the test (see `driftguard_test_support`).
pub fn services() -> Services {
    let (kubeconfig, kubectl) = driftguard_test_support::cluster();
    Services {
        kubeconfig: kubeconfig.display().to_string(),
        kubectl: kubectl.display().to_string(),
        mongodb_uri: driftguard_test_support::mongodb_uri(),
    }
}

pub fn kubectl(s: &Services, args: &[&str]) -> String {
    let (code, out, err) = kubectl_status(s, args, &[]);
    assert_eq!(code, 0, "kubectl {args:?} failed: {err}");
    out
}

/// `kubectl` that may fail, with extra environment variables: `(exit code, stdout, stderr)`.
pub fn kubectl_status(s: &Services, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(&s.kubectl);
    cmd.args(args).env("KUBECONFIG", &s.kubeconfig);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("kubectl runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A ConfigMap `app-config` (`mode: normal`, and `owner: team-<team>` when given) and a
/// Deployment `web` (2 replicas of nginx:1.25) in `ns`: the e2e tests' usual desired state.
pub fn web_manifests(ns: &str, team: Option<&str>) -> String {
    let owner = team.map_or(String::new(), |t| format!("  owner: team-{t}\n"));
    format!(
        r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: app-config
  namespace: {ns}
data:
  mode: normal
{owner}---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {ns}
  labels: {{app: web}}
spec:
  replicas: 2
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
        - name: web
          image: nginx:1.25
"#
    )
}

/// Deletes namespaces (and custom resource definitions) when dropped, however the test ends;
/// it does not wait for them to go.
pub struct DeleteOnDrop<'a> {
    s: &'a Services,
    namespaces: Vec<String>,
    crds: Vec<String>,
}

impl<'a> DeleteOnDrop<'a> {
    /// The namespaces `names`, deleted at the end.
    pub fn namespaces(s: &'a Services, names: &[&str]) -> Self {
        DeleteOnDrop {
            s,
            namespaces: names.iter().map(|n| (*n).to_owned()).collect(),
            crds: Vec::new(),
        }
    }

    /// Deletes the CRD `name` at the end too.
    pub fn with_crd(mut self, name: &str) -> Self {
        self.crds.push(name.to_owned());
        self
    }
}

impl Drop for DeleteOnDrop<'_> {
    fn drop(&mut self) {
        let kinds = self
            .namespaces
            .iter()
            .map(|n| ("namespace", n))
            .chain(self.crds.iter().map(|c| ("crd", c)));
        for (kind, name) in kinds {
            let _ = kubectl_status(
                self.s,
                &["delete", kind, name, "--wait=false", "--ignore-not-found"],
                &[],
            );
        }
    }
}

// ---------------------------------------------------------------- SHA-256 / HMAC (to verify the webhook signature)

fn sha256(data: &[u8]) -> [u8; 32] {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for chunk in msg.chunks(64) {
        let mut w = [0u32; 64];
        for i in 0..16 {
            w[i] = u32::from_be_bytes([
                chunk[4 * i],
                chunk[4 * i + 1],
                chunk[4 * i + 2],
                chunk[4 * i + 3],
            ]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 32];
    for (i, v) in h.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&v.to_be_bytes());
    }
    out
}

pub fn hmac_sha256_hex(key: &[u8], msg: &[u8]) -> String {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&sha256(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    inner.extend_from_slice(msg);
    let mut outer: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    outer.extend_from_slice(&sha256(&inner));
    sha256(&outer).iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------- webhook receiver

/// One POST received by the webhook receiver.
#[derive(Clone, Debug)]
pub struct Hook {
    /// The JSON body.
    pub body: Value,
    /// Whether the signature header matched.
    pub signature_ok: bool,
    /// When it arrived.
    pub at: Instant,
}

pub struct Receiver<T> {
    /// Its port on 127.0.0.1.
    pub port: u16,
    got: Arc<Mutex<Vec<T>>>,
}

impl<T: Clone> Receiver<T> {
    pub fn all(&self) -> Vec<T> {
        self.got.lock().expect("receiver lock").clone()
    }
}

pub fn webhook_receiver(secret: &'static str) -> Receiver<Hook> {
    webhook_receiver_on(0, secret)
}

/// [`webhook_receiver`] on a given port (0: any).
pub fn webhook_receiver_on(port: u16, secret: &'static str) -> Receiver<Hook> {
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind webhook receiver");
    let port = listener.local_addr().expect("addr").port();
    let got: Arc<Mutex<Vec<Hook>>> = Arc::default();
    let sink = got.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let sink = sink.clone();
            std::thread::spawn(move || serve_http(conn, &sink, secret));
        }
    });
    Receiver { port, got }
}

/// Serves HTTP/1.1 requests on one (keep-alive) connection: records each body, answers 200.
fn serve_http(conn: TcpStream, sink: &Mutex<Vec<Hook>>, secret: &str) {
    let mut w = conn.try_clone().expect("clone stream");
    let mut r = BufReader::new(conn);
    loop {
        let mut headers: BTreeMap<String, String> = BTreeMap::new();
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
            }
        }
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        let expected = format!("sha256={}", hmac_sha256_hex(secret.as_bytes(), &body));
        let hook = Hook {
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            signature_ok: headers.get("x-driftguard-signature-256") == Some(&expected),
            at: Instant::now(),
        };
        sink.lock().expect("receiver lock").push(hook);
        if w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            .is_err()
        {
            return;
        }
    }
}

// ---------------------------------------------------------------- SMTP receiver

pub fn smtp_receiver() -> Receiver<String> {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind SMTP receiver");
    let port = listener.local_addr().expect("addr").port();
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = got.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let sink = sink.clone();
            std::thread::spawn(move || {
                let _ = serve_smtp(conn, &sink);
            });
        }
    });
    Receiver { port, got }
}

fn serve_smtp(conn: TcpStream, sink: &Mutex<Vec<String>>) -> std::io::Result<()> {
    let mut w = conn.try_clone()?;
    let mut r = BufReader::new(conn);
    w.write_all(b"220 e2e.local ESMTP test receiver\r\n")?;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end().to_ascii_uppercase();
        if cmd.starts_with("EHLO") || cmd.starts_with("HELO") {
            w.write_all(b"250-e2e.local\r\n250 8BITMIME\r\n")?;
        } else if cmd == "DATA" {
            w.write_all(b"354 end with <CRLF>.<CRLF>\r\n")?;
            let mut msg = String::new();
            loop {
                let mut l = String::new();
                if r.read_line(&mut l)? == 0 {
                    return Ok(());
                }
                if l.trim_end_matches(['\r', '\n']) == "." {
                    break;
                }
                msg.push_str(&l);
            }
            sink.lock().expect("receiver lock").push(msg);
            w.write_all(b"250 queued\r\n")?;
        } else if cmd == "QUIT" {
            w.write_all(b"221 bye\r\n")?;
            return Ok(());
        } else {
            w.write_all(b"250 OK\r\n")?;
        }
    }
}

// ---------------------------------------------------------------- the server

pub struct Server {
    /// The process.
    pub child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its stderr.
    pub log: PathBuf,
    /// The API bearer token.
    pub token: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `git daemon` serving the bare repositories under a folder on 127.0.0.1, pushes allowed
/// (`--enable=receive-pack`); stopped when dropped.
pub struct GitDaemon {
    child: Child,
    /// Its port.
    pub port: u16,
}

impl GitDaemon {
    /// Starts `git` (the program) as a daemon of the repositories under `base` and waits until
    /// it listens.
    pub fn start(git: &Path, base: &Path) -> GitDaemon {
        let port = free_port();
        let daemon = GitDaemon {
            child: Command::new(git)
                .args([
                    "daemon",
                    "--reuseaddr",
                    "--export-all",
                    "--enable=receive-pack",
                    "--listen=127.0.0.1",
                    &format!("--port={port}"),
                    &format!("--base-path={}", base.display()),
                    &base.display().to_string(),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("git daemon starts"),
            port,
        };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "git daemon listens"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        daemon
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Starts `driftguard serve` in `dir` with `args` (plus `--listen` on `port`) and extra
/// environment variables; its stderr goes to `log`.
pub fn spawn_server(
    dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    port: u16,
    log: PathBuf,
    token: &str,
) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_driftguard"));
    cmd.arg("serve")
        .args(args)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .current_dir(dir)
        .env_remove("DRIFTGUARD_CONFIG")
        .env_remove("KUBECONFIG")
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("driftguard serve starts");
    Server {
        child,
        port,
        log,
        token: token.into(),
    }
}

impl Server {
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `(status, body)` of a GET (HTTP/1.0: no chunked answers), with the bearer token.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(
            s,
            "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n\r\n",
            self.token
        )
        .ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        let status = out.get(9..12)?.parse().ok()?;
        let body = out.split_once("\r\n\r\n")?.1.to_owned();
        Some((status, body))
    }

    /// `(status, body)` of a request with a JSON body (HTTP/1.0), with the bearer token.
    pub fn send_json(&self, method: &str, path: &str, body: &Value) -> Option<(u16, String)> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        let body = body.to_string();
        write!(
            s,
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.token,
            body.len()
        )
        .ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        let status = out.get(9..12)?.parse().ok()?;
        let body = out.split_once("\r\n\r\n")?.1.to_owned();
        Some((status, body))
    }

    pub fn json(&self, path: &str) -> Option<Value> {
        match self.get(path)? {
            (200, b) => serde_json::from_str(&b).ok(),
            _ => None,
        }
    }

    /// Waits for `/readyz`, a completed scan of every environment started after `after` (Unix
    /// seconds) and their watches.
    pub fn wait_ready(&mut self, after: f64, environments: usize) {
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("driftguard serve exited ({st}):\n{}", self.log());
            }
            let ready = matches!(self.get("/readyz"), Some((200, _)));
            let scanned = ready
                && self.json("/api/v1/environments").is_some_and(|v| {
                    let items = v["items"].as_array().cloned().unwrap_or_default();
                    items.len() == environments
                        && items.iter().all(|e| {
                            e["last_scan"]["started_at"]
                                .as_str()
                                .is_some_and(|t| unix_secs(t) >= after)
                                && e["watching"] == Value::Bool(true)
                        })
                });
            if scanned {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not become ready with a scan of every environment:\n{:?}\n{}",
                self.get("/api/v1/environments"),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn drifts(&self, query: &str) -> Vec<Value> {
        self.json(&format!("/api/v1/drifts?{query}"))
            .and_then(|v| v["items"].as_array().cloned())
            .unwrap_or_default()
    }

    /// Values of the `driftguard_drifts` series of an environment.
    pub fn drift_series(&self, env: &str) -> Vec<String> {
        let Some((200, text)) = self.get("/metrics") else {
            return Vec::new();
        };
        let label = format!("environment=\"{env}\"");
        text.lines()
            .filter(|l| l.starts_with("driftguard_drifts{") && l.contains(&label))
            .map(str::to_owned)
            .collect()
    }
}

// ---------------------------------------------------------------- helpers

/// Unix time in seconds of an RFC 3339 time (0 if it is not one).
pub fn unix_secs(t: &str) -> f64 {
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|d| d.timestamp_micros() as f64 / 1e6)
        .unwrap_or(0.0)
}

/// The Unix time now, in seconds.
pub fn unix_secs_now() -> f64 {
    chrono::Utc::now().timestamp_micros() as f64 / 1e6
}

/// Polls `check` every 100 ms until it answers `Some`, at most `limit`; returns the value and
/// how long it took (from `since`).
pub fn poll<T>(
    since: Instant,
    limit: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Option<(T, Duration)> {
    loop {
        if let Some(v) = check() {
            return Some((v, since.elapsed()));
        }
        if since.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Webhook events (`event`, `episode`) of an environment, in arrival order.
pub fn hook_events(hooks: &[Hook], env: &str) -> Vec<(String, String)> {
    hooks
        .iter()
        .filter(|h| h.body["environment"] == env)
        .flat_map(|h| h.body["events"].as_array().cloned().unwrap_or_default())
        .map(|e| {
            (
                e["event"].as_str().unwrap_or_default().to_owned(),
                e["episode"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

// ---------------------------------------------------------------- forge

/// Requests a fake forge got: `(method and path, Authorization header, JSON body)`.
pub type ForgeSeen = std::sync::Arc<std::sync::Mutex<Vec<(String, String, serde_json::Value)>>>;

/// A fake GitHub API on 127.0.0.1 (no forge runs here): records each request and answers 201
/// with pull request #42.
pub fn fake_forge() -> (u16, ForgeSeen) {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen: ForgeSeen = ForgeSeen::default();
    let sink = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let mut w = conn.try_clone().expect("clone");
            let mut r = BufReader::new(conn);
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                continue;
            }
            let request_line: Vec<&str> = line.split_whitespace().take(2).collect();
            let (mut auth, mut len) = (String::new(), 0usize);
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) == 0 {
                    break;
                }
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    match k.trim().to_ascii_lowercase().as_str() {
                        "authorization" => auth = v.trim().to_owned(),
                        "content-length" => len = v.trim().parse().unwrap_or(0),
                        _ => {}
                    }
                }
            }
            let mut body = vec![0u8; len];
            let _ = r.read_exact(&mut body);
            sink.lock().expect("lock").push((
                request_line.join(" "),
                auth,
                serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
            ));
            let answer =
                r#"{"number": 42, "html_url": "https://github.example/shop/gitops/pull/42"}"#;
            let _ = write!(
                w,
                "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    (port, seen)
}
