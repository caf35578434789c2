//! End to end (issue 7): `driftguard serve` against the kube-apiserver test cluster and the
//! MongoDB test server, with a real local webhook receiver and a real local SMTP receiver.
//!
//! Two environments are served; a hand change made with kubectl shows up in the API, in
//! `/metrics`, at the webhook and in a mail within 2 s; reverting it shows it resolved; after a
//! restart of the server nothing is announced twice and open drifts are still open.
//!
//! Needs `scripts/test-services.sh up` (KUBECONFIG, KUBECTL, MONGODB_URI from the environment or
//! `${DRIFTGUARD_RUN:-/tmp/driftguard-test}/services.env`). A missing service fails the test.

mod util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use util::e2e::*;

const TOKEN: &str = "e2e-token-7f3a-c41d";
const HOOK_SECRET: &str = "e2e-hook-secret-91c2";
const SECRET_KEY: &str = "e2e-secret-key-0123456789abcdef";
/// The issue's bound: the server notices a change within this long (it comes from the watch:
/// with the intervals configured below no scan would run in the test's time).
const DETECT_WITHIN: f64 = 2.0;
/// The issue's bound for the change to show in the API, `/metrics`, the webhook and the mail.
const VISIBLE_TARGET: Duration = Duration::from_secs(2);

/// The bound this test enforces for visibility: the issue's 2 s (`DRIFTGUARD_E2E_VISIBLE_MS`
/// overrides it, e.g. to look at a slow machine).
///
/// Each change is visible after its store commit, which is batched into one round trip per
/// collection: on the MongoDB test server (SecantusDB, in Python) the API showed a change after
/// 0.01-0.12 s, `/metrics` 0.11 s, the webhook and the mail 0.21 s (the 100 ms grouping window
/// included).
fn visible_within() -> Duration {
    std::env::var("DRIFTGUARD_E2E_VISIBLE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(VISIBLE_TARGET, Duration::from_millis)
}

/// Checks the server's own time of a transition (`at`, RFC 3339) against the wall clock around
/// the kubectl command, and the time each channel took to show it.
fn check_latency(phase: &str, at: &str, wall: (f64, f64), shown: &[(&str, Duration)]) {
    let at = unix_secs(at);
    eprintln!(
        "{phase}: server time {:+.3}s after kubectl returned; shown after {}",
        at - wall.1,
        shown
            .iter()
            .map(|(w, t)| format!("{w} {:.3}s", t.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    assert!(
        at >= wall.0 - 0.5 && at <= wall.1 + DETECT_WITHIN,
        "{phase}: the server's time {at:.3} is not within {DETECT_WITHIN}s of the change ({:.3}..{:.3})",
        wall.0,
        wall.1
    );
    let limit = visible_within();
    for (what, t) in shown {
        if *t > VISIBLE_TARGET {
            eprintln!("SLOW: {phase}: {what} after {t:?} (target {VISIBLE_TARGET:?})");
        }
        assert!(
            *t <= limit,
            "{phase}: {what} showed it after {t:?} (limit {limit:?})"
        );
    }
}

/// Deletes the test namespaces (without waiting) and, best effort, the test database when the
/// test ends, passed or failed.
struct Namespaces<'a> {
    s: &'a Services,
    names: Vec<String>,
    database: String,
}

impl Drop for Namespaces<'_> {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = Command::new(&self.s.kubectl)
                .args([
                    "delete",
                    "namespace",
                    n,
                    "--wait=false",
                    "--ignore-not-found",
                ])
                .env("KUBECONFIG", &self.s.kubeconfig)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        // the Python of the MongoDB test server's venv has pymongo (scripts/mongo/start.sh)
        let cache = std::env::var("DRIFTGUARD_CACHE").ok().or_else(|| {
            std::env::var("HOME")
                .ok()
                .map(|h| format!("{h}/.cache/driftguard"))
        });
        if let Some(cache) = cache {
            let python = Path::new(&cache).join("secantus-venv/bin/python");
            if python.exists() {
                let _ = Command::new(python)
                    .args([
                        "-c",
                        "import os, pymongo; pymongo.MongoClient(os.environ['E2E_URI'], \
                         serverSelectionTimeoutMS=3000).drop_database(os.environ['E2E_DB'])",
                    ])
                    .env("E2E_URI", &self.s.mongodb_uri)
                    .env("E2E_DB", &self.database)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

fn start_server(s: &Services, dir: &Path, config: &Path, run: usize) -> Server {
    let log_level = std::env::var("DRIFTGUARD_E2E_LOG").unwrap_or_else(|_| "info".into());
    spawn_server(
        dir,
        &["--config", config.to_str().expect("utf-8 path")],
        &[
            ("RUST_LOG", &log_level),
            ("MONGODB_URI", &s.mongodb_uri),
            ("E2E_TOKENS", TOKEN),
            ("E2E_HOOK_SECRET", HOOK_SECRET),
            ("E2E_SECRET_KEY", SECRET_KEY),
        ],
        free_port(),
        dir.join(format!("serve-{run}.log")),
        TOKEN,
    )
}

fn mails_with(mails: &[String], needle: &str) -> usize {
    mails.iter().filter(|m| m.contains(needle)).count()
}

/// A drift as `(environment, kind, name, status)`.
fn describe(d: &Value) -> (String, String, String, String) {
    (
        d["object"]["environment"]
            .as_str()
            .unwrap_or_default()
            .into(),
        d["object"]["kind"].as_str().unwrap_or_default().into(),
        d["object"]["name"].as_str().unwrap_or_default().into(),
        d["status"].as_str().unwrap_or_default().into(),
    )
}

// ---------------------------------------------------------------- the test

#[test]
fn serve_end_to_end_cluster_mongodb_webhook_smtp_and_restart() {
    // the signature check below relies on this HMAC: RFC 4231 test case 2
    assert_eq!(
        hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?"),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    let s = services();
    let started = Instant::now();
    let uniq = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis()
            % 1_000_000
    );
    let (ns_a, ns_b) = (format!("e2e-a-{uniq}"), format!("e2e-b-{uniq}"));
    let database = format!("dg_e2e_{}", uniq.replace('-', "_"));
    let _cleanup = Namespaces {
        s: &s,
        names: vec![ns_a.clone(), ns_b.clone()],
        database: database.clone(),
    };
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().to_path_buf();
    let dir = dir.as_path();
    if std::env::var_os("DRIFTGUARD_E2E_KEEP").is_some() {
        // keep the configuration and the server logs for a look afterwards
        eprintln!("keeping {}", tmp.keep().display());
    }
    for (env, ns) in [("a", &ns_a), ("b", &ns_b)] {
        kubectl(&s, &["create", "namespace", ns]);
        let m = dir.join(env).join("app.yaml");
        std::fs::create_dir_all(m.parent().expect("parent")).expect("mkdir");
        std::fs::write(&m, web_manifests(ns, Some(env))).expect("write manifests");
        kubectl(&s, &["apply", "-f", m.to_str().expect("utf-8 path")]);
    }

    let hook = webhook_receiver(HOOK_SECRET);
    let smtp = smtp_receiver();
    let config = dir.join("driftguard.yaml");
    std::fs::write(
        &config,
        format!(
            r#"environments:
  - name: a
    dir: a
    live: {{kubeconfig: "{kc}"}}
    namespaces: ["{ns_a}"]
  - name: b
    dir: b
    live: {{kubeconfig: "{kc}"}}
    namespaces: ["{ns_b}"]
store:
  mongodb: {{uriEnv: MONGODB_URI, database: {database}}}
secretKey: {{env: E2E_SECRET_KEY}}
notifications:
  - type: webhook
    url: http://127.0.0.1:{hook_port}/driftguard
    secretEnv: E2E_HOOK_SECRET
    queue: {{groupWindow: 100ms, initialBackoff: 200ms}}
  - type: email
    host: 127.0.0.1
    port: {smtp_port}
    from: driftguard@example.org
    to: [ops@example.org]
    queue: {{groupWindow: 100ms, initialBackoff: 200ms}}
server:
  tokenEnv: E2E_TOKENS
  pollInterval: 60s
  fullScanInterval: 1h
  shutdownGrace: 2s
"#,
            kc = s.kubeconfig,
            hook_port = hook.port,
            smtp_port = smtp.port,
        ),
    )
    .expect("write config");

    // ---- first run: everything in sync
    let mut server = start_server(&s, dir, &config, 1);
    server.wait_ready(0.0, 2);
    let t_ready = started.elapsed();
    assert!(
        server.drifts("status=all").is_empty(),
        "freshly applied objects are in sync: {:?}\n{}",
        server.drifts("status=all"),
        server.log()
    );
    let env_list = server.json("/api/v1/environments").expect("environments");
    for e in env_list["items"].as_array().expect("items") {
        assert_eq!(e["status"], "in_sync", "{e}");
    }
    // unauthenticated requests are refused
    {
        let mut c = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
        write!(c, "GET /api/v1/drifts HTTP/1.0\r\n\r\n").expect("write");
        let mut out = String::new();
        c.read_to_string(&mut out).expect("read");
        assert!(
            out.starts_with("HTTP/1.1 401") || out.starts_with("HTTP/1.0 401"),
            "{out}"
        );
    }

    // ---- a hand change in environment a
    let wall_before = unix_secs_now();
    kubectl(
        &s,
        &[
            "patch",
            "configmap",
            "app-config",
            "-n",
            &ns_a,
            "--type",
            "merge",
            "-p",
            r#"{"data":{"mode":"debug"}}"#,
        ],
    );
    let t0 = Instant::now();
    let wall0 = (wall_before, unix_secs_now());
    let (drift, t_api) = poll(t0, Duration::from_secs(10), || {
        server
            .drifts("environment=a")
            .into_iter()
            .find(|d| d["object"]["kind"] == "ConfigMap")
    })
    .unwrap_or_else(|| panic!("no drift in the API for env a:\n{}", server.log()));
    assert_eq!(drift["drift"], "modified", "{drift}");
    assert_eq!(drift["direction"], "forward", "{drift}");
    assert_eq!(drift["object"]["namespace"], ns_a.as_str(), "{drift}");
    assert!(drift["paths"].to_string().contains("data.mode"), "{drift}");
    let episode_a = drift["episode"].as_str().expect("episode").to_owned();
    let (series, t_metrics) = poll(t0, Duration::from_secs(10), || {
        let s = server.drift_series("a");
        (s.len() == 1 && s[0].ends_with(" 1")).then_some(s)
    })
    .unwrap_or_else(|| {
        panic!(
            "no driftguard_drifts series for a: {:?}",
            server.drift_series("a")
        )
    });
    assert!(series[0].contains("kind=\"ConfigMap\""), "{series:?}");
    let (_, t_hook) = poll(t0, Duration::from_secs(10), || {
        hook_events(&hook.all(), "a")
            .contains(&("detected".into(), episode_a.clone()))
            .then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "webhook got no detected event: {:?}\n{}",
            hook.all(),
            server.log()
        )
    });
    let (_, t_mail) = poll(t0, Duration::from_secs(10), || {
        (mails_with(&smtp.all(), &episode_a) >= 1).then_some(())
    })
    .unwrap_or_else(|| panic!("no mail: {:?}\n{}", smtp.all(), server.log()));
    check_latency(
        "detected",
        drift["detected_at"].as_str().unwrap_or_default(),
        wall0,
        &[
            ("API", t_api),
            ("/metrics", t_metrics),
            ("webhook", t_hook),
            ("mail", t_mail),
        ],
    );
    let mail = smtp
        .all()
        .into_iter()
        .find(|m| m.contains(&episode_a))
        .expect("mail");
    assert!(
        mail.contains("Subject: [DriftGuard] a: 1 detected"),
        "{mail}"
    );
    assert!(
        !mail.contains("debug"),
        "a mail never carries field values: {mail}"
    );
    assert!(
        hook.all().iter().all(|h| h.signature_ok),
        "webhook signatures verify"
    );
    assert!(
        !hook
            .all()
            .iter()
            .any(|h| h.body.to_string().contains("\"debug\"")),
        "the webhook never carries field values"
    );
    // environment b is untouched
    assert!(server.drifts("environment=b").is_empty());
    assert!(
        server.drift_series("b").is_empty(),
        "{:?}",
        server.drift_series("b")
    );
    assert!(hook_events(&hook.all(), "b").is_empty());

    // ---- revert it
    let wall_before = unix_secs_now();
    kubectl(
        &s,
        &[
            "patch",
            "configmap",
            "app-config",
            "-n",
            &ns_a,
            "--type",
            "merge",
            "-p",
            r#"{"data":{"mode":"normal"}}"#,
        ],
    );
    let t1 = Instant::now();
    let wall1 = (wall_before, unix_secs_now());
    let (resolved, t_api) = poll(t1, Duration::from_secs(10), || {
        server
            .json(&format!("/api/v1/drifts/{episode_a}"))
            .filter(|v| v["drift"]["status"] == "resolved")
    })
    .unwrap_or_else(|| {
        panic!(
            "the drift was not resolved in the API: {:?}\n{}",
            server.get(&format!("/api/v1/drifts/{episode_a}")),
            server.log()
        )
    });
    assert_eq!(resolved["drift"]["resolution"], "reverted", "{resolved}");
    let (_, t_metrics) = poll(t1, Duration::from_secs(10), || {
        server.drift_series("a").is_empty().then_some(())
    })
    .unwrap_or_else(|| panic!("series still there: {:?}", server.drift_series("a")));
    let (_, t_hook) = poll(t1, Duration::from_secs(10), || {
        hook_events(&hook.all(), "a")
            .contains(&("resolved".into(), episode_a.clone()))
            .then_some(())
    })
    .unwrap_or_else(|| panic!("webhook got no resolved event: {:?}", hook.all()));
    let (_, t_mail) = poll(t1, Duration::from_secs(10), || {
        (mails_with(&smtp.all(), &episode_a) >= 2).then_some(())
    })
    .unwrap_or_else(|| panic!("no resolved mail: {:?}", smtp.all()));
    check_latency(
        "resolved",
        resolved["drift"]["resolved_at"]
            .as_str()
            .unwrap_or_default(),
        wall1,
        &[
            ("API", t_api),
            ("/metrics", t_metrics),
            ("webhook", t_hook),
            ("mail", t_mail),
        ],
    );
    assert!(server.drifts("environment=a").is_empty());

    // ---- a second drift (environment b), left open across a restart
    let wall_before = unix_secs_now();
    kubectl(
        &s,
        &[
            "patch",
            "deployment",
            "web",
            "-n",
            &ns_b,
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"replicas":5}}"#,
        ],
    );
    let t2 = Instant::now();
    let wall2 = (wall_before, unix_secs_now());
    let (drift_b, t_api) = poll(t2, Duration::from_secs(10), || {
        server
            .drifts("environment=b")
            .into_iter()
            .find(|d| d["object"]["kind"] == "Deployment")
    })
    .unwrap_or_else(|| panic!("no drift in env b:\n{}", server.log()));
    let episode_b = drift_b["episode"].as_str().expect("episode").to_owned();
    assert!(
        drift_b["paths"].to_string().contains("spec.replicas"),
        "{drift_b}"
    );
    let (_, t_told) = poll(t2, Duration::from_secs(10), || {
        (hook_events(&hook.all(), "b").contains(&("detected".into(), episode_b.clone()))
            && mails_with(&smtp.all(), &episode_b) >= 1)
            .then_some(())
    })
    .unwrap_or_else(|| panic!("env b drift not announced: {:?}", hook.all()));
    check_latency(
        "detected (b)",
        drift_b["detected_at"].as_str().unwrap_or_default(),
        wall2,
        &[("API", t_api), ("webhook and mail", t_told)],
    );
    // let any stray notification arrive before the snapshot
    std::thread::sleep(Duration::from_millis(500));
    let hooks_before = hook_events(&hook.all(), "a")
        .into_iter()
        .chain(hook_events(&hook.all(), "b"))
        .collect::<Vec<_>>();
    let mails_before = smtp.all().len();
    assert_eq!(
        hooks_before,
        vec![
            ("detected".to_owned(), episode_a.clone()),
            ("resolved".to_owned(), episode_a.clone()),
            ("detected".to_owned(), episode_b.clone()),
        ],
        "each transition announced exactly once"
    );
    assert_eq!(mails_before, 3, "{:?}", smtp.all());

    // ---- restart the server (hard kill, like a crash) with the same configuration
    let _ = server.child.kill();
    let _ = server.child.wait();
    drop(server);
    let restart_at = unix_secs_now();
    let mut server = start_server(&s, dir, &config, 2);
    let t3 = Instant::now();
    server.wait_ready(restart_at, 2);
    let t_restart = t3.elapsed();
    let open: Vec<_> = server.drifts("status=open").iter().map(describe).collect();
    assert_eq!(
        open,
        vec![("b".into(), "Deployment".into(), "web".into(), "open".into())],
        "after the restart exactly the open drift is still open\n{}",
        server.log()
    );
    assert_eq!(
        server.drifts("status=open")[0]["episode"],
        episode_b.as_str()
    );
    let a_ep = server
        .json(&format!("/api/v1/drifts/{episode_a}"))
        .expect("episode a is kept");
    assert_eq!(a_ep["drift"]["status"], "resolved");
    let series = server.drift_series("b");
    assert!(
        series.len() == 1 && series[0].ends_with(" 1"),
        "metrics after restart: {series:?}"
    );
    assert!(server.drift_series("a").is_empty());
    // the store's events: one detected per episode, one resolved for a
    let events = server.json("/api/v1/events?limit=1000").expect("events");
    let kinds: Vec<(String, String)> = events["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| {
            (
                e["event"].as_str().unwrap_or_default().to_owned(),
                e["drift"]["episode"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .filter(|(k, _)| k != "changed")
        .collect();
    assert_eq!(
        kinds, hooks_before,
        "the store's events after the restart: {events}"
    );
    // give the restarted server's queues time to (wrongly) announce anything
    std::thread::sleep(Duration::from_millis(1500));
    let hooks_after = hook_events(&hook.all(), "a")
        .into_iter()
        .chain(hook_events(&hook.all(), "b"))
        .collect::<Vec<_>>();
    assert_eq!(
        hooks_after, hooks_before,
        "nothing is announced twice after a restart"
    );
    assert_eq!(
        smtp.all().len(),
        mails_before,
        "no mail after the restart: {:?}",
        smtp.all()
    );
    // ---- acknowledged drift (#33): not announced; its expiry announced again; a change
    // of the drift lapses it and is announced again
    let acknowledge = |until: Option<&str>| {
        let mut body = serde_json::json!({"episodes": [episode_b], "reason": "load test"});
        if let Some(u) = until {
            body["until"] = u.into();
        }
        let (status, text) = server
            .send_json("POST", "/api/v1/acknowledgements", &body)
            .expect("answers");
        assert_eq!(status, 200, "{text}");
    };
    acknowledge(Some("3s"));
    let t5 = Instant::now();
    let (_, t_lapse) = poll(t5, Duration::from_secs(30), || {
        hook_events(&hook.all(), "b")
            .contains(&("unacknowledged".into(), episode_b.clone()))
            .then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "the expiry was not announced: {:?}\n{}",
            hook.all(),
            server.log()
        )
    });
    eprintln!("acknowledgement expiry announced after {t_lapse:?}");
    let kinds_b: Vec<String> = hook_events(&hook.all(), "b")
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert!(
        !kinds_b.contains(&"acknowledged".to_owned()),
        "a person's acknowledgement is not announced: {kinds_b:?}"
    );
    let ack = server
        .json(&format!("/api/v1/drifts/{episode_b}"))
        .expect("the drift");
    assert_eq!(ack["drift"]["acknowledgement"]["lapse"], "expired", "{ack}");
    acknowledge(None);
    kubectl(
        &s,
        &[
            "patch",
            "deployment",
            "web",
            "-n",
            &ns_b,
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"replicas":6}}"#,
        ],
    );
    let t6 = Instant::now();
    poll(t6, Duration::from_secs(30), || {
        let lapses = hook_events(&hook.all(), "b")
            .into_iter()
            .filter(|e| *e == ("unacknowledged".to_owned(), episode_b.clone()))
            .count();
        (lapses == 2).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "the change was not announced: {:?}\n{}",
            hook.all(),
            server.log()
        )
    });
    let ack = server
        .json(&format!("/api/v1/drifts/{episode_b}"))
        .expect("the drift");
    assert_eq!(ack["drift"]["acknowledgement"]["lapse"], "changed", "{ack}");
    // ---- a graceful stop (SIGTERM, as Kubernetes sends) ends the server with success
    let t4 = Instant::now();
    let sent = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success());
    let exited = poll(t4, Duration::from_secs(15), || {
        server.child.try_wait().ok().flatten()
    });
    let Some((status, t_stop)) = exited else {
        panic!(
            "the server did not stop within 15 s of SIGTERM:\n{}",
            server.log()
        );
    };
    assert!(status.success(), "{status}\n{}", server.log());
    eprintln!(
        "first ready after {t_ready:?}, restart ready after {t_restart:?}, graceful stop {t_stop:?}, total {:?}",
        started.elapsed()
    );
    drop(server);
}

/// A server killed while its alerts cannot be delivered (the receiver is down) sends them when
/// it comes back, from what its store kept; the first scan after the restart finds the drifts
/// known, so only the resend can bring them. Needs no cluster: the demo's saved dumps.
#[test]
fn alerts_not_delivered_when_the_server_is_killed_go_out_after_the_restart() {
    let (_tmp, demo) = util::demo_copy();
    let hook_port = free_port();
    util::write(
        &demo.join("serve.yaml"),
        &format!(
            r#"environments:
  - name: prod
    dir: gitops/envs/prod
    live:
      dump: live/prod.yaml
secretKey:
  file: secret.key
notifications:
  - type: webhook
    name: ops-hook
    url: http://127.0.0.1:{hook_port}/driftguard
    secretEnv: E2E_HOOK_SECRET
    queue: {{groupWindow: 100ms, initialBackoff: 100ms, maxBackoff: 200ms, maxAttempts: 1000}}
server:
  tokenEnv: E2E_TOKENS
  pollInterval: 1h
  fullScanInterval: 1h
  shutdownGrace: 1s
"#
        ),
    );
    let store = demo.join("history.db");
    let store_arg = store.to_string_lossy().into_owned();
    let args = ["--config", "serve.yaml", "--store", store_arg.as_str()];
    let env = [("E2E_TOKENS", TOKEN), ("E2E_HOOK_SECRET", HOOK_SECRET)];
    let start = |run: usize| {
        spawn_server(
            &demo,
            &args,
            &env,
            free_port(),
            demo.join(format!("serve-{run}.log")),
            TOKEN,
        )
    };

    // first run: the drifts are detected and stored, their alert fails and is retried
    let mut first = start(1);
    let open = poll(Instant::now(), Duration::from_secs(30), || {
        let d = first.drifts("environment=prod&status=open");
        (!d.is_empty() && first.log().contains("notification failed")).then_some(d)
    })
    .unwrap_or_else(|| panic!("no drift, or no failed delivery:\n{}", first.log()))
    .0;
    first.child.kill().expect("kill -9");
    let _ = first.child.wait();

    // the receiver comes up; the second run sends what the first could not
    let hooks = webhook_receiver_on(hook_port, HOOK_SECRET);
    let second = start(2);
    let want: std::collections::BTreeSet<String> = open
        .iter()
        .map(|d| d["episode"].as_str().expect("episode").to_owned())
        .collect();
    let got = poll(Instant::now(), Duration::from_secs(30), || {
        let got: std::collections::BTreeSet<String> = hooks
            .all()
            .iter()
            .flat_map(|h| h.body["events"].as_array().cloned().unwrap_or_default())
            .filter(|e| e["event"] == "detected")
            .filter_map(|e| e["episode"].as_str().map(str::to_owned))
            .collect();
        (got == want).then_some(got)
    })
    .unwrap_or_else(|| {
        panic!(
            "the detections of {want:?} never arrived: {:?}\n{}",
            hooks.all(),
            second.log()
        )
    })
    .0;
    assert_eq!(got.len(), open.len());
    assert!(hooks.all().iter().all(|h| h.signature_ok));
    assert!(second.log().contains("queued again"), "{}", second.log());
}
