//! Acceptance of issue 17 (who, by name) on the test cluster, whose API server audits with
//! `deploy/audit/audit-policy.yaml` into a log file and a batch webhook pointing at
//! `http://127.0.0.1:$AUDIT_WEBHOOK_PORT/api/v1/environments/audit/audit`
//! (`scripts/test-cluster/start.sh`).
//!
//! Alice and Bob (token users of the test cluster, bound to `edit` in the test's namespace)
//! make hand changes: a `kubectl scale` (no manager on 1.20), an edit and a patch of the same
//! ConfigMap by each of them, a `set image`, a delete. `driftguard serve`, listening where the
//! webhook posts, names the right person for each drift (API, field owners, alerts); a
//! one-shot `driftguard scan` reading the audit log file names the same people. Malformed,
//! oversized and unauthenticated posts are refused with clear errors. With `serve` stopped,
//! and with a listener that never answers in its place, hand changes still complete promptly:
//! the batch webhook never blocks the API server. After a restart, a new change by Bob to an
//! object Alice changed names both.
//!
//! Needs the test cluster (KUBECONFIG, KUBECTL, AUDIT_WEBHOOK_PORT, AUDIT_TOKEN, AUDIT_LOG,
//! ALICE_TOKEN, BOB_TOKEN from the environment or `services.env`); a missing one fails.

mod util;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use driftguard_test_support::build;
use serde_json::Value;
use util::e2e::*;
use util::run_env;

const API_TOKEN: &str = "audit-e2e-api-token";
const SECRET_KEY: &str = "audit-e2e-secret-key-0123456789";
const HOOK_SECRET: &str = "audit-e2e-hook-secret";
/// How long a hand change may take while DriftGuard is stopped or stuck (they take about a
/// tenth of a second; the batch webhook must never make them wait for it).
const PROMPT: Duration = Duration::from_secs(3);
/// How long the audit log may take to name a writer (the webhook batches for 1 s).
const NAMED_WITHIN: Duration = Duration::from_secs(30);

struct Cluster {
    s: Services,
    webhook_port: u16,
    audit_token: String,
    audit_log: String,
    alice: String,
    bob: String,
}

fn cluster() -> Cluster {
    let (kubeconfig, kubectl) = driftguard_test_support::cluster();
    let need = |k: &str| {
        driftguard_test_support::service(
            k,
            "the test cluster's audit settings (scripts/test-cluster/start.sh)",
        )
    };
    Cluster {
        s: Services {
            kubeconfig: kubeconfig.display().to_string(),
            kubectl: kubectl.display().to_string(),
            mongodb_uri: String::new(),
        },
        webhook_port: need("AUDIT_WEBHOOK_PORT")
            .parse()
            .expect("AUDIT_WEBHOOK_PORT is a port"),
        audit_token: need("AUDIT_TOKEN"),
        audit_log: need("AUDIT_LOG"),
        alice: need("ALICE_TOKEN"),
        bob: need("BOB_TOKEN"),
    }
}

impl Cluster {
    /// kubectl as `token`'s user; returns how long it took.
    fn as_user(&self, token: &str, args: &[&str], env: &[(&str, &str)]) -> Duration {
        let t = Instant::now();
        let mut all = vec!["--token", token];
        all.extend_from_slice(args);
        let (code, _, err) = kubectl_status(&self.s, &all, env);
        assert_eq!(code, 0, "kubectl {args:?} failed: {err}");
        t.elapsed()
    }
}

fn manifests(ns: &str) -> String {
    let deployment = |name: &str, replicas: i64| {
        build::deployment(name)
            .namespace(ns)
            .replicas(replicas)
            .selector()
            .image("nginx:1.25")
            .yaml()
    };
    let config_map = |name: &str| {
        build::configmap(name)
            .namespace(ns)
            .data("A", "a")
            .data("B", "b")
            .yaml()
    };
    [
        deployment("web", 2),
        deployment("api", 1),
        config_map("settings"),
        config_map("doomed"),
        config_map("quiet"),
    ]
    .join("---\n")
}

fn start(dir: &Path, config: &Path, c: &Cluster, run: usize) -> Server {
    spawn_server(
        dir,
        &["--config", config.to_str().expect("utf-8 path")],
        &[
            ("E2E_TOKENS", API_TOKEN),
            ("E2E_SECRET_KEY", SECRET_KEY),
            ("E2E_HOOK_SECRET", HOOK_SECRET),
            ("AUDIT_TOKEN", &c.audit_token),
            ("RUST_LOG", "info"),
        ],
        c.webhook_port,
        dir.join(format!("serve-{run}.log")),
        API_TOKEN,
    )
}

/// The drifts of the environment by object name.
fn drifts(server: &Server) -> BTreeMap<String, Value> {
    server
        .drifts("environment=audit&status=open")
        .into_iter()
        .map(|d| (d["object"]["name"].as_str().unwrap_or("").to_owned(), d))
        .collect()
}

fn detail(server: &Server, d: &Value) -> Value {
    server
        .json(&format!(
            "/api/v1/drifts/{}",
            d["episode"].as_str().expect("episode")
        ))
        .expect("the drift's detail")
}

/// The users an API drift detail names, each once, sorted.
fn writers(detail: &Value) -> BTreeSet<String> {
    detail["attribution"]["writers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|w| w["user"].as_str().map(str::to_owned))
        .collect()
}

/// `path -> user` of an API drift detail's field owners.
fn field_users(detail: &Value) -> BTreeMap<String, String> {
    detail["attribution"]["owners"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|o| {
            Some((
                o["path"].as_str()?.to_owned(),
                o["user"].as_str()?.to_owned(),
            ))
        })
        .collect()
}

/// A raw HTTP/1.1 POST to the audit endpoint: `(status, body)`.
fn post(port: u16, token: Option<&str>, body: &[u8], declared: Option<usize>) -> (u16, Value) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "POST /api/v1/environments/audit/audit HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{auth}\r\n",
        declared.unwrap_or(body.len())
    )
    .expect("write head");
    let _ = s.write_all(body);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let out = String::from_utf8_lossy(&out);
    let status = out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| serde_json::from_str(b).unwrap_or(Value::Null))
        .unwrap_or(Value::Null);
    (status, body)
}

/// The `writes=` of the `audit log read` line of a scan's log.
fn writes_read(log: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("audit log read"))
        .filter_map(|l| l.split("writes=").nth(1))
        .filter_map(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse::<usize>()
                .ok()
        })
        .sum()
}

#[test]
#[allow(clippy::vec_init_then_push)] // each hand change is timed, one after the other
fn who_by_name_from_the_audit_webhook_and_log() {
    let c = cluster();
    let s = &c.s;
    let uniq = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis()
            % 1_000_000
    );
    let ns = format!("audit-e2e-{uniq}");
    let _cleanup = DeleteOnDrop::namespaces(s, &[&ns]);
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().to_path_buf();
    if std::env::var_os("DRIFTGUARD_E2E_KEEP").is_some() {
        eprintln!("keeping {}", tmp.keep().display());
    }
    kubectl(s, &["create", "namespace", &ns]);
    // alice and bob may edit in the test's namespace
    kubectl(
        s,
        &[
            "-n",
            &ns,
            "create",
            "rolebinding",
            "editors",
            "--clusterrole=edit",
            "--user=alice",
            "--user=bob",
        ],
    );
    let manifest = dir.join("desired/app.yaml");
    std::fs::create_dir_all(manifest.parent().expect("parent")).expect("mkdir");
    std::fs::write(&manifest, manifests(&ns)).expect("manifests");
    kubectl(s, &["apply", "-f", manifest.to_str().expect("utf-8")]);

    let hook = webhook_receiver(HOOK_SECRET);
    let config_text = |store: &str, source: &str| {
        format!(
            r#"environments:
  - name: audit
    dir: desired
    live: {{kubeconfig: "{kc}"}}
    namespaces: ["{ns}"]
    audit:
      {source}
store: {{sqlite: {store}}}
secretKey: {{env: E2E_SECRET_KEY}}
notifications:
  - type: webhook
    url: http://127.0.0.1:{hook_port}/driftguard
    secretEnv: E2E_HOOK_SECRET
    queue: {{groupWindow: 4s, initialBackoff: 200ms}}
server:
  tokenEnv: E2E_TOKENS
  pollInterval: 60s
  fullScanInterval: 1h
  shutdownGrace: 2s
"#,
            kc = s.kubeconfig,
            hook_port = hook.port,
        )
    };
    let serve_config = dir.join("serve.yaml");
    std::fs::write(
        &serve_config,
        config_text(
            "serve.db",
            "webhook: {tokenEnv: AUDIT_TOKEN, maxBody: 1048576}",
        ),
    )
    .expect("config");

    // ---- serve, where the API server's webhook posts
    let mut server = start(&dir, &serve_config, &c, 1);
    server.wait_ready(0.0, 1);
    assert!(drifts(&server).is_empty(), "applied objects are in sync");

    // ---- hand changes by Alice and Bob
    let editor = dir.join("edit-a.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nsed -i 's/^  A: a$/  A: alice/' \"$1\"\n",
    )
    .expect("editor");
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let editor = editor.to_str().expect("utf-8").to_owned();
    let mut took = Vec::new();
    took.push(c.as_user(
        &c.alice,
        &["-n", &ns, "scale", "deploy/web", "--replicas=5"],
        &[],
    ));
    took.push(c.as_user(
        &c.alice,
        &["-n", &ns, "edit", "configmap/settings"],
        &[("KUBE_EDITOR", &editor)],
    ));
    took.push(c.as_user(
        &c.bob,
        &[
            "-n",
            &ns,
            "patch",
            "configmap/settings",
            "--type",
            "merge",
            "-p",
            r#"{"data":{"B":"bob"}}"#,
        ],
        &[],
    ));
    took.push(c.as_user(
        &c.bob,
        &["-n", &ns, "set", "image", "deploy/api", "app=nginx:1.26"],
        &[],
    ));
    took.push(c.as_user(&c.alice, &["-n", &ns, "delete", "configmap/doomed"], &[]));
    eprintln!("hand changes with DriftGuard serving took {took:?}");

    // ---- each drift names the right person
    let want_who: BTreeMap<&str, &str> = [
        ("web", "alice (kubectl/scale)"),
        ("api", "bob (kubectl-set)"),
        ("doomed", "alice (kubectl)"),
    ]
    .into_iter()
    .collect();
    let named = poll(Instant::now(), NAMED_WITHIN, || {
        let d = drifts(&server);
        let settled = want_who
            .iter()
            .all(|(name, who)| d.get(*name).is_some_and(|x| x["who"] == *who))
            && d.get("settings").is_some_and(|x| {
                let who = x["who"].as_str().unwrap_or("");
                who.contains("alice (kubectl-edit)") && who.contains("bob (kubectl-patch)")
            });
        settled.then_some(d)
    });
    let (d, after) = named.unwrap_or_else(|| {
        panic!(
            "the drifts do not name who made them: {:#?}\n{}",
            drifts(&server)
                .iter()
                .map(|(n, d)| (n.clone(), d["who"].clone()))
                .collect::<Vec<_>>(),
            server.log()
        )
    });
    eprintln!("every drift named its writers {after:?} after the last change");
    assert_eq!(d.len(), 4, "{:?}", d.keys());
    let web = detail(&server, &d["web"]);
    assert_eq!(
        field_users(&web),
        BTreeMap::from([("spec.replicas".into(), "alice".into())]),
        "spec.replicas is the scaler's: the audit log names the user of the scale (its owner is \
         the manager `kubectl` with subresource `scale` since 1.22, nobody on 1.20)\n{web:#}"
    );
    let w = &web["attribution"]["writers"][0];
    assert_eq!(w["user_class"], "person");
    assert_eq!(w["subresource"], "scale");
    assert!(
        w["source_ip"].as_str().is_some_and(|ip| !ip.is_empty()),
        "{w}"
    );
    let settings = detail(&server, &d["settings"]);
    assert_eq!(
        field_users(&settings),
        BTreeMap::from([
            ("data.A".into(), "alice".into()),
            ("data.B".into(), "bob".into())
        ]),
        "two people, one object: each field names its own\n{settings:#}"
    );
    assert_eq!(
        writers(&settings),
        BTreeSet::from(["alice".into(), "bob".into()])
    );
    let api = detail(&server, &d["api"]);
    assert_eq!(
        field_users(&api),
        BTreeMap::from([(
            "spec.template.spec.containers[app].image".into(),
            "bob".into()
        )])
    );
    assert_eq!(d["doomed"]["drift"], "missing");
    assert_eq!(d["doomed"]["direction"], "forward");
    // the alerts say who too: the audit webhook's batch (1 s) comes within the group window
    let alerts = poll(Instant::now(), Duration::from_secs(10), || {
        let all = hook.all();
        let named: Vec<Value> = all
            .iter()
            .flat_map(|h| h.body["events"].as_array().cloned().unwrap_or_default())
            .filter(|e| e["object"]["name"] == "web" && e["who"] == "alice (kubectl/scale)")
            .collect();
        (!named.is_empty()).then_some(named)
    })
    .unwrap_or_else(|| panic!("no alert names alice: {:#?}", hook.all()));
    let writers_line = alerts.0[0]["writers"][0].as_str().unwrap_or("");
    assert!(
        writers_line.starts_with("alice (kubectl/scale, patch, from "),
        "{writers_line}"
    );

    // ---- malformed, oversized and unauthenticated posts are refused, clearly
    let port = c.webhook_port;
    let events = br#"{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[]}"#;
    type Case<'a> = (Option<&'a str>, Vec<u8>, Option<usize>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (None, events.to_vec(), None, 401, "missing audit token"),
        (
            Some("wrong"),
            events.to_vec(),
            None,
            401,
            "invalid audit token",
        ),
        (
            Some(API_TOKEN),
            events.to_vec(),
            None,
            401,
            "invalid audit token",
        ),
        (
            Some(&c.audit_token),
            b"{\"kind\":".to_vec(),
            None,
            400,
            "not an audit event list",
        ),
        (
            Some(&c.audit_token),
            br#"{"kind":"Status","apiVersion":"v1"}"#.to_vec(),
            None,
            400,
            "expected kind EventList",
        ),
        (
            Some(&c.audit_token),
            Vec::new(),
            Some(2 * 1024 * 1024),
            413,
            "larger than 1048576 bytes",
        ),
        (Some(&c.audit_token), events.to_vec(), None, 200, ""),
    ];
    for (token, body, declared, status, says) in cases {
        let (got, answer) = post(port, token, &body, declared);
        assert_eq!(got, status, "{token:?} {answer}");
        if status != 200 {
            let message = answer["error"]["message"].as_str().unwrap_or("");
            assert!(message.contains(says), "{message:?} says {says:?}");
        }
    }

    // ---- the same people from the audit log file, with a one-shot scan
    let scan_config = dir.join("scan.yaml");
    std::fs::write(
        &scan_config,
        config_text("scan.db", &format!("logFile: \"{}\"", c.audit_log)),
    )
    .expect("config");
    let scan = || {
        run_env(
            &dir,
            &[
                "-v",
                "scan",
                "--config",
                scan_config.to_str().expect("utf-8"),
                "-o",
                "json",
            ],
            &[("E2E_SECRET_KEY", SECRET_KEY)],
        )
    };
    let first = scan();
    assert_eq!(first.code, 2, "drift found: {}", first.stderr);
    let from_log: BTreeMap<String, Value> = first.json()["environments"][0]["drifts"]
        .as_array()
        .expect("drifts")
        .iter()
        .map(|d| (d["id"]["name"].as_str().unwrap_or("").to_owned(), d.clone()))
        .collect();
    assert_eq!(
        from_log.keys().collect::<Vec<_>>(),
        d.keys().collect::<Vec<_>>()
    );
    for (name, drift) in &from_log {
        let users: BTreeSet<String> = drift["attribution"]["writers"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter_map(|w| w["user"]["name"].as_str().map(str::to_owned))
            .collect();
        let served = writers(&detail(&server, &d[name]));
        assert_eq!(
            users, served,
            "{name}: the log file names whom the webhook named"
        );
        // each field owner names the same user
        let by_id: BTreeMap<&str, &str> = drift["attribution"]["writers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|w| Some((w["audit_id"].as_str()?, w["user"]["name"].as_str()?)))
            .collect();
        let fields: BTreeMap<String, String> = drift["attribution"]["owners"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| {
                let user = by_id.get(o["audit_id"].as_str()?)?;
                Some((o["path"].as_str()?.to_owned(), (*user).to_owned()))
            })
            .collect();
        assert_eq!(fields, field_users(&detail(&server, &d[name])), "{name}");
    }
    assert!(
        first.stderr.contains("audit log read"),
        "the log was read: {}",
        first.stderr
    );
    // a second scan goes on from where the first stopped: what was read is not read again
    let second = scan();
    assert_eq!(second.code, 2, "{}", second.stderr);
    let (read_first, read_second) = (writes_read(&first.stderr), writes_read(&second.stderr));
    eprintln!("the audit log gave {read_first} writes, then {read_second}");
    assert!(
        read_first > 0 && read_second < read_first,
        "{read_first} then {read_second}: {}",
        second.stderr
    );
    let explain = run_env(
        &dir,
        &[
            "explain",
            "--config",
            scan_config.to_str().expect("utf-8"),
            &format!("audit:Deployment.apps/{ns}/web"),
        ],
        &[],
    );
    assert_eq!(explain.code, 0, "{}", explain.stderr);
    assert!(
        explain.stdout.contains("who:       alice (kubectl/scale)"),
        "{}",
        explain.stdout
    );
    assert!(
        explain
            .stdout
            .contains("who:  alice (kubectl/scale, patch, from "),
        "{}",
        explain.stdout
    );
    let table = run_env(
        &dir,
        &["drifts", "--config", scan_config.to_str().expect("utf-8")],
        &[],
    );
    let web_row = format!("{ns}/web");
    assert!(
        table
            .stdout
            .lines()
            .any(|l| l.contains(&web_row) && l.contains("alice (kubectl/scale)")),
        "the WHO column: {}",
        table.stdout
    );

    // ---- a stopped DriftGuard never blocks the API server
    drop(server);
    let mut stopped = Vec::new();
    for i in 0..3 {
        stopped.push(c.as_user(
            &c.alice,
            &[
                "-n",
                &ns,
                "patch",
                "configmap/quiet",
                "--type",
                "merge",
                "-p",
                &format!(r#"{{"data":{{"C":"stopped-{i}"}}}}"#),
            ],
            &[],
        ));
    }
    eprintln!("hand changes with DriftGuard stopped took {stopped:?}");
    // nor does one that accepts and never answers
    let black_hole = TcpListener::bind(("127.0.0.1", port)).expect("bind the webhook port");
    let held = Arc::new(AtomicBool::new(true));
    let keep = held.clone();
    let accepted = Arc::new(std::sync::Mutex::new(Vec::new()));
    let conns = accepted.clone();
    std::thread::spawn(move || {
        for conn in black_hole.incoming() {
            if !keep.load(Ordering::SeqCst) {
                break;
            }
            if let Ok(c) = conn {
                conns.lock().expect("lock").push(c);
            }
        }
    });
    let mut stuck = Vec::new();
    for i in 0..3 {
        stuck.push(c.as_user(
            &c.bob,
            &[
                "-n",
                &ns,
                "patch",
                "configmap/quiet",
                "--type",
                "merge",
                "-p",
                &format!(r#"{{"data":{{"D":"stuck-{i}"}}}}"#),
            ],
            &[],
        ));
        std::thread::sleep(Duration::from_millis(700));
    }
    eprintln!(
        "hand changes with a DriftGuard that never answers took {stuck:?} ({} webhook connections held)",
        accepted.lock().expect("lock").len()
    );
    assert!(
        !accepted.lock().expect("lock").is_empty(),
        "the API server tried to post to the stuck listener"
    );
    for t in stopped.iter().chain(&stuck) {
        assert!(
            *t < PROMPT,
            "a hand change took {t:?}: {stopped:?} {stuck:?}"
        );
    }
    held.store(false, Ordering::SeqCst);
    accepted.lock().expect("lock").clear();
    // wake the accept loop so that it lets the port go
    let _ = TcpStream::connect(("127.0.0.1", port));
    std::thread::sleep(Duration::from_millis(200));

    // ---- restarted: the drifts still name their writers, and a new one is added
    let mut server = start(&dir, &serve_config, &c, 2);
    server.wait_ready(0.0, 1);
    let d = drifts(&server);
    assert_eq!(
        d["web"]["who"], "alice (kubectl/scale)",
        "kept across the restart"
    );
    c.as_user(
        &c.bob,
        &["-n", &ns, "scale", "deploy/web", "--replicas=6"],
        &[],
    );
    let both = poll(Instant::now(), NAMED_WITHIN, || {
        let d = drifts(&server);
        let who = d.get("web")?["who"].as_str()?.to_owned();
        (who.contains("bob (kubectl/scale)") && who.contains("alice (kubectl/scale)"))
            .then_some(who)
    });
    assert!(
        both.is_some(),
        "the second scale names bob next to alice: {:?}\n{}",
        drifts(&server).get("web").map(|d| d["who"].clone()),
        server.log()
    );
}
