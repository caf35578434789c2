//! End to end (issue 13): a MongoDB outage under `driftguard serve`. The server runs against
//! the test cluster and a MongoDB server of the test's own; the database is killed, hand
//! changes are made with kubectl while it is down, and it is started again. Detection goes on
//! during the outage, `/readyz` says degraded with the reason, and afterwards every event is
//! stored once (with the time the change was observed, not the time of recovery) and announced
//! once to a real local webhook receiver.
//!
//! Needs the test cluster and SecantusDB installed (`scripts/test-services.sh up`); a missing
//! service fails the test.

mod util;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use driftguard_test_support::MongoServer;
use serde_json::Value;
use util::e2e::*;

const TOKEN: &str = "outage-token-5d1e";
const HOOK_SECRET: &str = "outage-hook-secret-77aa";

fn readyz(server: &Server) -> (u16, Value) {
    match server.get("/readyz") {
        Some((code, body)) => (code, serde_json::from_str(&body).unwrap_or(Value::Null)),
        None => (0, Value::Null),
    }
}

#[test]
fn a_mongodb_outage_under_serve_loses_nothing_and_repeats_nothing() {
    let s = services();
    let uniq = format!("{}", std::process::id());
    let ns = format!("outage-{uniq}");
    let _cleanup = DeleteOnDrop::namespaces(&s, &[&ns]);
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path();
    let mut mongo = MongoServer::start(dir.join("mongo-data"));

    kubectl(&s, &["create", "namespace", &ns]);
    let m = dir.join("app").join("app.yaml");
    std::fs::create_dir_all(m.parent().expect("parent")).expect("mkdir");
    std::fs::write(&m, web_manifests(&ns, None)).expect("write manifests");
    kubectl(&s, &["apply", "-f", m.to_str().expect("utf-8 path")]);

    let hook = webhook_receiver(HOOK_SECRET);
    let config = dir.join("driftguard.yaml");
    std::fs::write(
        &config,
        format!(
            r#"environments:
  - name: app
    dir: app
    live: {{kubeconfig: "{kc}"}}
    namespaces: ["{ns}"]
store:
  mongodb: {{uriEnv: OUTAGE_MONGODB_URI, database: outage}}
secretKey: {{env: OUTAGE_SECRET_KEY}}
notifications:
  - type: webhook
    url: http://127.0.0.1:{hook_port}/driftguard
    secretEnv: OUTAGE_HOOK_SECRET
    queue: {{groupWindow: 100ms, initialBackoff: 200ms}}
server:
  tokenEnv: OUTAGE_TOKENS
  pollInterval: 60s
  fullScanInterval: 1h
  shutdownGrace: 2s
"#,
            kc = s.kubeconfig,
            hook_port = hook.port,
        ),
    )
    .expect("write config");
    // a call during the outage fails within about twice the server selection timeout: 2 s
    // keeps an API read's 503 inside the test client's 5 s read timeout however loaded the
    // machine (the default 5 s made it a race)
    let uri = format!("{}&serverSelectionTimeoutMS=2000", mongo.uri());
    let mut server = spawn_server(
        dir,
        &["--config", config.to_str().expect("utf-8 path")],
        &[
            ("OUTAGE_MONGODB_URI", uri.as_str()),
            ("OUTAGE_TOKENS", TOKEN),
            ("OUTAGE_HOOK_SECRET", HOOK_SECRET),
            ("OUTAGE_SECRET_KEY", "outage-secret-key-0123456789"),
        ],
        free_port(),
        dir.join("serve.log"),
        TOKEN,
    );
    server.wait_ready(0.0, 1);
    assert!(server.drifts("status=all").is_empty(), "{}", server.log());

    // ---- the database dies; hand changes follow
    mongo.kill();
    let outage_began = unix_secs_now();
    kubectl(
        &s,
        &["scale", "deployment", "web", "-n", &ns, "--replicas=4"],
    );
    kubectl(
        &s,
        &[
            "patch",
            "configmap",
            "app-config",
            "-n",
            &ns,
            "--type",
            "merge",
            "-p",
            r#"{"data":{"mode":"debug"}}"#,
        ],
    );
    kubectl(
        &s,
        &["label", "configmap", "app-config", "-n", &ns, "hotfix=yes"],
    );
    let changed_by = unix_secs_now();

    // detection goes on: the writes wait in the buffer, and /readyz says so
    let (degraded, _) = poll(Instant::now(), Duration::from_secs(30), || {
        let (code, body) = readyz(&server);
        (code == 503 && body["status"] == "degraded").then_some(body)
    })
    .unwrap_or_else(|| {
        panic!(
            "/readyz never said degraded during the outage: {:?}\n{}",
            readyz(&server),
            server.log()
        )
    });
    let store_check = degraded["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "store").cloned())
        .expect("a store check");
    assert_eq!(store_check["ok"], false, "{degraded}");
    assert!(
        store_check["reason"]
            .as_str()
            .is_some_and(|r| r.contains("buffered")),
        "the reason names the buffered writes: {degraded}"
    );
    // the API cannot read the store meanwhile, and says so in the one error shape
    let (code, body) = server.get("/api/v1/drifts").expect("an answer");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("store_unavailable"), "{body}");

    // ---- the database comes back on the same data
    std::thread::sleep(Duration::from_secs(2));
    let recovery = unix_secs_now();
    mongo.spawn();
    poll(Instant::now(), Duration::from_secs(60), || {
        (readyz(&server).0 == 200).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "not ready after the database came back: {:?}\n{}",
            readyz(&server),
            server.log()
        )
    });
    let (open, _) = poll(Instant::now(), Duration::from_secs(20), || {
        let d = server.drifts("environment=app");
        (d.len() == 2).then_some(d)
    })
    .unwrap_or_else(|| {
        panic!(
            "the changes made during the outage are not all stored: {:?}\n{}",
            server.drifts("status=all"),
            server.log()
        )
    });
    let mut by_kind: BTreeMap<String, Value> = BTreeMap::new();
    for d in open {
        by_kind.insert(d["object"]["kind"].as_str().unwrap_or_default().into(), d);
    }
    let dep = &by_kind["Deployment"];
    assert_eq!(dep["direction"], "forward", "{dep}");
    assert!(dep["paths"].to_string().contains("spec.replicas"), "{dep}");
    let cm = &by_kind["ConfigMap"];
    assert!(cm["paths"].to_string().contains("data.mode"), "{cm}");
    // observed during the outage, not at recovery
    for d in by_kind.values() {
        let at = unix_secs(d["detected_at"].as_str().unwrap_or_default());
        assert!(
            at >= outage_began - 1.0 && at <= changed_by + 10.0 && at < recovery,
            "detected_at {at} is not the time of the change ({outage_began}..{changed_by}; recovery {recovery}): {d}"
        );
    }

    // ---- stored once: one `detected` per episode, no event twice
    let events = server
        .json("/api/v1/events?environment=app&limit=1000")
        .expect("events");
    let items = events["items"].as_array().cloned().unwrap_or_default();
    let mut ids: Vec<&str> = items
        .iter()
        .filter_map(|e| e["event_id"].as_str())
        .collect();
    let n = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), n, "an event was stored twice: {events}");
    let mut detected: BTreeMap<String, usize> = BTreeMap::new();
    for e in &items {
        if e["event"] == "detected" {
            *detected
                .entry(e["drift"]["episode"].as_str().unwrap_or_default().into())
                .or_default() += 1;
        }
    }
    assert_eq!(detected.len(), 2, "{events}");
    assert!(detected.values().all(|n| *n == 1), "{detected:?}");

    // ---- announced once: every detection reaches the receiver exactly once
    std::thread::sleep(Duration::from_secs(3));
    let hooks = hook.all();
    let mut announced: BTreeMap<String, usize> = BTreeMap::new();
    for (event, episode) in hook_events(&hooks, "app") {
        if event == "detected" {
            *announced.entry(episode).or_default() += 1;
        }
    }
    assert_eq!(
        announced.keys().collect::<Vec<_>>(),
        detected.keys().collect::<Vec<_>>(),
        "{announced:?}\nhooks: {:?}\n{}",
        hooks.iter().map(|h| h.body.to_string()).collect::<Vec<_>>(),
        server.log()
    );
    assert!(
        announced.values().all(|n| *n == 1),
        "announced twice: {announced:?}"
    );
    eprintln!(
        "outage: degraded reported; {} events stored once, {} detections announced once",
        n,
        announced.len()
    );
}
