//! Acceptance of high availability (#19): three `driftguard serve` replicas on loopback
//! against the test cluster (Leases in a namespace of their own, the live side) and the MongoDB
//! test server (the shared store), four environments.
//!
//! - each environment has exactly one leader at a time: from the Leases, from every
//!   replica's API (sampled all along) and from the replicas' logs (terms never overlap);
//! - SIGKILL the leader of an environment: a `kubectl` change made during the failover is
//!   detected within lease duration + 2 s; a local webhook receiver gets every detection of
//!   the whole test exactly once;
//! - SIGSTOP a leader in the middle of a scan until its Lease moves, then SIGCONT: the scan's
//!   write carries the old epoch and the store refuses it (in its log, in its answer, in the
//!   store), and it writes nothing after losing the Lease;
//! - every replica's API answers the same drifts.
//!
//! Failover times and the memory of each replica are printed (`--nocapture`).

mod util;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use driftguard_core::ports::{DriftStore, ScanBatch, StoreError};
use serde_json::Value;
use util::e2e::*;

const TOKEN: &str = "ha-acceptance-token";
const HOOK_SECRET: &str = "ha-hook-secret";
const SECRET_KEY: &str = "ha-acceptance-secret-key";
/// `leaseDuration`, `renewDeadline`, `retryPeriod` of the replicas.
const LEASE: Duration = Duration::from_secs(4);
const RENEW: Duration = Duration::from_secs(3);
const RETRY: Duration = Duration::from_millis(500);
const ENVS: [&str; 4] = ["alpha", "bravo", "charlie", "delta"];
/// The environment whose manifests take 1.5 s to render (a kustomization rendered by a slow
/// wrapper): its scans are long enough to pause a leader in the middle of one.
const SLOW: &str = "delta";

struct Cleanup {
    s: Services,
    namespaces: Vec<String>,
    database: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for n in &self.namespaces {
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
        if let Ok(rt) = tokio::runtime::Runtime::new() {
            rt.block_on(async {
                if let Ok(store) =
                    driftguard_store::MongoStore::connect(&self.s.mongodb_uri, &self.database).await
                {
                    let _ = store.database().drop().await;
                }
            });
        }
    }
}

fn manifests(env: &str, ns: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: app-config
  namespace: {ns}
data:
  mode: normal
  owner: team-{env}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: extra-config
  namespace: {ns}
data:
  level: info
"#
    )
}

fn patch(s: &Services, ns: &str, name: &str, data: &str) {
    kubectl(
        s,
        &[
            "patch",
            "configmap",
            name,
            "-n",
            ns,
            "--type",
            "merge",
            "-p",
            &format!(r#"{{"data":{data}}}"#),
        ],
    );
}

/// Holder and `leaseTransitions` of each environment Lease, by `kubectl`.
fn leases(s: &Services, ns: &str) -> BTreeMap<String, (String, u64)> {
    let out = kubectl(
        s,
        &[
            "get",
            "leases",
            "-n",
            ns,
            "-l",
            "driftguard.io/lease=environment",
            "-o",
            "jsonpath={range .items[*]}{.metadata.annotations.driftguard\\.io/environment}={.spec.holderIdentity}={.spec.leaseTransitions}{\"\\n\"}{end}",
        ],
    );
    out.lines()
        .filter_map(|l| {
            let mut p = l.split('=');
            Some((
                p.next()?.to_owned(),
                (p.next()?.to_owned(), p.next()?.parse().unwrap_or(0)),
            ))
        })
        .collect()
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .expect("kill runs")
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

/// `VmRSS` and `VmHWM` (peak) of a process, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// A request with a short timeout: `(status, body)`; `None` when the replica does not answer.
fn request(port: u16, method: &str, path: &str, timeout: Duration) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 0\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.get(9..12)?.parse().ok()?;
    Some((status, out.split_once("\r\n\r\n")?.1.to_owned()))
}

/// `environment -> leader` as replica `port` sees it (`this_replica`).
fn leads(port: u16) -> Option<BTreeSet<String>> {
    let (code, body) = request(
        port,
        "GET",
        "/api/v1/environments",
        Duration::from_millis(700),
    )?;
    if code != 200 {
        return None;
    }
    let v: Value = serde_json::from_str(&body).ok()?;
    Some(
        v["items"]
            .as_array()?
            .iter()
            .filter(|e| e["leader"]["this_replica"] == true)
            .filter_map(|e| e["name"].as_str().map(str::to_owned))
            .collect(),
    )
}

/// One term of one replica, from its log: `[start, end)` in Unix seconds.
#[derive(Debug, Clone)]
struct Term {
    replica: String,
    env: String,
    epoch: u64,
    start: f64,
    end: f64,
}

fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=");
    let at = line.find(&key)? + key.len();
    line[at..].split_whitespace().next()
}

/// The terms in a replica's log; a term still open ends at `open_end`.
fn terms(replica: &str, log: &str, open_end: f64) -> Vec<Term> {
    let mut open: BTreeMap<String, (u64, f64)> = BTreeMap::new();
    let mut out = Vec::new();
    for line in log.lines() {
        let Some(ts) = line.split_whitespace().next() else {
            continue;
        };
        let t = unix_secs(ts);
        let Some(env) = field(line, "environment") else {
            continue;
        };
        if line.contains(" INFO leading the environment ") {
            let epoch = field(line, "epoch")
                .and_then(|e| e.parse().ok())
                .unwrap_or(0);
            open.insert(env.to_owned(), (epoch, t));
        } else if line.contains("stopped leading the environment")
            || line.contains("the term ran out")
        {
            let ago = field(line, "ended_ms_ago")
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
                / 1000.0;
            if let Some((epoch, start)) = open.remove(env) {
                out.push(Term {
                    replica: replica.to_owned(),
                    env: env.to_owned(),
                    epoch,
                    start,
                    end: t - ago,
                });
            }
        }
    }
    for (env, (epoch, start)) in open {
        out.push(Term {
            replica: replica.to_owned(),
            env,
            epoch,
            start,
            end: open_end,
        });
    }
    out
}

fn slow_kustomize(dir: &Path) -> PathBuf {
    let p = dir.join("slow-render");
    std::fs::write(
        &p,
        "#!/bin/sh\n# called as `slow-render kustomize DIR`: a kustomization that takes 1.5 s to render\nsleep 1.5\nexec cat \"$2/app.yaml\"\n",
    )
    .expect("write");
    let ok = Command::new("chmod")
        .args(["+x", p.to_str().expect("utf-8")])
        .status()
        .expect("chmod")
        .success();
    assert!(ok);
    p
}

#[test]
fn three_replicas_four_environments_failover_fencing_and_one_alert_each() {
    let s = services();
    let uniq = format!(
        "{}-{}",
        std::process::id() % 100_000,
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis()
            % 1_000_000
    );
    let lease_ns = format!("ha-leases-{uniq}");
    let app_ns: BTreeMap<&str, String> = ENVS
        .iter()
        .map(|e| (*e, format!("ha-{e}-{uniq}")))
        .collect();
    let database = format!("dg_ha_{}", uniq.replace('-', "_"));
    let _cleanup = Cleanup {
        s: services(),
        namespaces: std::iter::once(lease_ns.clone())
            .chain(app_ns.values().cloned())
            .collect(),
        database: database.clone(),
    };
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().to_path_buf();
    if std::env::var_os("DRIFTGUARD_E2E_KEEP").is_some() {
        eprintln!("keeping {}", tmp.keep().display());
    }
    kubectl(&s, &["create", "namespace", &lease_ns]);
    for (env, ns) in &app_ns {
        kubectl(&s, &["create", "namespace", ns]);
        let d = dir.join(env);
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::write(d.join("app.yaml"), manifests(env, ns)).expect("write");
        if *env == SLOW {
            std::fs::write(d.join("kustomization.yaml"), "resources:\n  - app.yaml\n")
                .expect("write");
        }
        kubectl(
            &s,
            &["apply", "-f", d.join("app.yaml").to_str().expect("utf-8")],
        );
    }
    let render = slow_kustomize(&dir);
    let hook = webhook_receiver(HOOK_SECRET);
    let mut config = String::from("environments:\n");
    for (env, ns) in &app_ns {
        config.push_str(&format!(
            "  - name: {env}\n    dir: {env}\n    live: {{kubeconfig: \"{}\"}}\n    namespaces: [\"{ns}\"]\n",
            s.kubeconfig
        ));
    }
    config.push_str(&format!(
        r#"kustomizeBin: "{render}"
store:
  mongodb: {{uriEnv: MONGODB_URI, database: {database}}}
secretKey: {{env: HA_SECRET_KEY}}
notifications:
  - type: webhook
    name: hook
    url: http://127.0.0.1:{hook_port}/driftguard
    secretEnv: HA_HOOK_SECRET
    queue: {{groupWindow: 100ms, initialBackoff: 200ms}}
server:
  tokenEnv: HA_TOKENS
  pollInterval: 1h
  fullScanInterval: 1h
  shutdownGrace: 2s
  ha:
    homeKubeconfig: "{kc}"
    namespace: {lease_ns}
    leaseDuration: {lease}s
    renewDeadline: {renew}s
    retryPeriod: {retry}ms
"#,
        render = render.display(),
        hook_port = hook.port,
        kc = s.kubeconfig,
        lease = LEASE.as_secs(),
        renew = RENEW.as_secs(),
        retry = RETRY.as_millis(),
    ));
    let config_path = dir.join("driftguard.yaml");
    std::fs::write(&config_path, &config).expect("write config");
    let start = |n: usize, run: usize| -> Server {
        // the identity is the default one: the POD_NAME variable, as in a Deployment
        let name = format!("replica-{n}");
        spawn_server(
            &dir,
            &["--config", config_path.to_str().expect("utf-8 path")],
            &[
                ("RUST_LOG", "info"),
                ("POD_NAME", &name),
                ("MONGODB_URI", &s.mongodb_uri),
                ("HA_TOKENS", TOKEN),
                ("HA_HOOK_SECRET", HOOK_SECRET),
                ("HA_SECRET_KEY", SECRET_KEY),
            ],
            free_port(),
            dir.join(format!("{name}-{run}.log")),
            TOKEN,
        )
    };
    let t_start = Instant::now();
    let mut replicas: BTreeMap<String, Server> = (1..=3)
        .map(|n| (format!("replica-{n}"), start(n, 1)))
        .collect();
    // logs of replicas that were replaced, and when each was killed (Unix seconds)
    let mut old_logs: Vec<(String, String, f64)> = Vec::new();

    // ---- the sampler: every replica's view of who leads, all along
    let ports: Arc<Mutex<Vec<u16>>> =
        Arc::new(Mutex::new(replicas.values().map(|r| r.port).collect()));
    let violations: Arc<Mutex<Vec<String>>> = Arc::default();
    let samples = Arc::new(Mutex::new(0usize));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (ports, violations, samples, done) = (
            ports.clone(),
            violations.clone(),
            samples.clone(),
            done.clone(),
        );
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                let list = ports.lock().expect("lock").clone();
                let mut claims: BTreeMap<String, Vec<u16>> = BTreeMap::new();
                for port in list {
                    for env in leads(port).unwrap_or_default() {
                        claims.entry(env).or_default().push(port);
                    }
                }
                for (env, by) in claims {
                    if by.len() > 1 {
                        violations
                            .lock()
                            .expect("lock")
                            .push(format!("{env} led by replicas on ports {by:?}"));
                    }
                }
                *samples.lock().expect("lock") += 1;
                std::thread::sleep(Duration::from_millis(150));
            }
        })
    };

    // ---- steady state: every environment led by exactly one replica, at most 2 each
    let led_everywhere = |replicas: &BTreeMap<String, Server>| -> Option<BTreeMap<String, String>> {
        let l = leases(&s, &lease_ns);
        let holders: BTreeMap<String, String> = l
            .into_iter()
            .filter(|(_, (h, _))| !h.is_empty())
            .map(|(e, (h, _))| (e, h))
            .collect();
        if holders.len() != ENVS.len() {
            return None;
        }
        // every leader says so and has scanned
        for (env, holder) in &holders {
            let r = replicas.get(holder)?;
            let v = r.json(&format!("/api/v1/environments/{env}"))?;
            if v["leader"]["this_replica"] != true || v["last_scan"].is_null() {
                return None;
            }
        }
        Some(holders)
    };
    let (holders, t_steady) = poll(t_start, Duration::from_secs(60), || {
        led_everywhere(&replicas)
    })
    .unwrap_or_else(|| {
        panic!(
            "not every environment got a leader: {:?}\n{}",
            leases(&s, &lease_ns),
            replicas
                .values()
                .map(Server::log)
                .collect::<Vec<_>>()
                .join("\n----\n")
        )
    });
    let mut per_replica: BTreeMap<&str, usize> = BTreeMap::new();
    for h in holders.values() {
        *per_replica.entry(h.as_str()).or_default() += 1;
    }
    assert!(
        per_replica.values().all(|n| *n <= 2),
        "fair share is 2 of 4 per replica: {holders:?}"
    );
    eprintln!("steady after {t_steady:?}: {holders:?}");
    // a replica that does not lead an environment does not scan it: it names its leader
    let (env0, leader0) = holders.iter().next().expect("an environment");
    let (_, bystander) = replicas
        .iter()
        .find(|(n, _)| *n != leader0)
        .expect("another replica");
    let (code, body) = request(
        bystander.port,
        "POST",
        &format!("/api/v1/environments/{env0}/scan"),
        Duration::from_secs(10),
    )
    .expect("answers");
    assert_eq!(code, 409, "{body}");
    assert!(
        body.contains("not_leader") && body.contains(leader0.as_str()),
        "{body}"
    );

    // ---- a hand change in every environment: one alert each
    for ns in app_ns.values() {
        patch(&s, ns, "app-config", r#"{"mode":"debug"}"#);
    }
    let detections = |hook: &Receiver<Hook>| -> Vec<(String, String)> {
        hook.all()
            .iter()
            .flat_map(|h| h.body["events"].as_array().cloned().unwrap_or_default())
            .filter(|e| e["event"] == "detected")
            .map(|e| {
                (
                    e["event_id"].as_str().unwrap_or_default().to_owned(),
                    e["object"]["name"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    };
    poll(Instant::now(), Duration::from_secs(20), || {
        (detections(&hook).len() >= ENVS.len()).then_some(())
    })
    .unwrap_or_else(|| panic!("detections: {:?}", detections(&hook)));
    // a replica's list tells of an environment another one leads from the store (read for
    // all such environments at once): the open drifts its leader counts, and a last scan
    let told = || -> Option<(Value, Value)> {
        let list = bystander.json("/api/v1/environments")?;
        let mine = list["items"]
            .as_array()?
            .iter()
            .find(|e| e["name"] == env0.as_str())?
            .clone();
        let theirs = replicas
            .get(leader0)?
            .json(&format!("/api/v1/environments/{env0}"))?;
        (mine["leader"]["this_replica"] == false
            && theirs["open_drifts"].as_u64()? >= 1
            && mine["open_drifts"] == theirs["open_drifts"]
            && !mine["last_scan"].is_null())
        .then_some((mine, theirs))
    };
    poll(Instant::now(), Duration::from_secs(20), told).unwrap_or_else(|| {
        panic!(
            "{env0} as the bystander lists it: {:?}\nas its leader says: {:?}",
            bystander.json("/api/v1/environments"),
            replicas
                .get(leader0)
                .and_then(|r| r.json(&format!("/api/v1/environments/{env0}")))
        )
    });
    // delivered and marked: nothing in flight when a leader dies
    std::thread::sleep(Duration::from_millis(1500));

    // ---- SIGKILL the leader of an environment; a change during the failover
    let killed_env = ENVS
        .iter()
        .find(|e| **e != SLOW && holders[**e] != holders[SLOW])
        .or_else(|| ENVS.iter().find(|e| **e != SLOW))
        .expect("an environment");
    let victim = holders[*killed_env].clone();
    let victim_envs: Vec<String> = holders
        .iter()
        .filter(|(_, h)| **h == victim)
        .map(|(e, _)| e.clone())
        .collect();
    let epochs_before = leases(&s, &lease_ns);
    let mut dead = replicas.remove(&victim).expect("victim");
    let victim_port = dead.port;
    let victim_pid = dead.child.id();
    let (rss_victim, _) = memory_kib(victim_pid);
    let t_kill = Instant::now();
    let wall_kill = unix_secs_now();
    signal(victim_pid, "KILL");
    let _ = dead.child.wait();
    ports.lock().expect("lock").retain(|p| *p != victim_port);
    old_logs.push((victim.clone(), dead.log(), wall_kill));
    let ns_killed = &app_ns[*killed_env];
    patch(&s, ns_killed, "extra-config", r#"{"level":"debug"}"#);
    let t_change = Instant::now();
    let (new_holder, t_moved) = poll(t_kill, LEASE * 3, || {
        leases(&s, &lease_ns)
            .get(*killed_env)
            .map(|(h, _)| h.clone())
            .filter(|h| !h.is_empty() && *h != victim)
    })
    .unwrap_or_else(|| {
        panic!(
            "{killed_env} was not taken over: {:?}",
            leases(&s, &lease_ns)
        )
    });
    let (_, t_detected) = poll(t_change, LEASE * 3, || {
        detections(&hook)
            .iter()
            .any(|(_, name)| name == "extra-config")
            .then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "the change made during the failover was not detected:\n{}",
            replicas
                .values()
                .map(Server::log)
                .collect::<Vec<_>>()
                .join("\n----\n")
        )
    });
    let in_api = replicas
        .values()
        .next()
        .expect("a replica")
        .drifts(&format!("environment={killed_env}&name=extra-config"));
    assert_eq!(in_api.len(), 1, "{in_api:?}");
    assert!(
        t_detected <= LEASE + Duration::from_secs(2),
        "detected {t_detected:?} after the change (lease duration {LEASE:?} + 2 s)"
    );
    // every environment of the dead replica is taken over, with a higher epoch
    let (after_kill, t_all_moved) = poll(t_kill, LEASE * 3, || {
        let l = leases(&s, &lease_ns);
        victim_envs
            .iter()
            .all(|e| l.get(e).is_some_and(|(h, _)| !h.is_empty() && *h != victim))
            .then_some(l)
    })
    .expect("every environment of the dead replica is taken over");
    for e in &victim_envs {
        assert!(
            after_kill[e].1 > epochs_before[e].1,
            "{e}: a takeover counts a transition"
        );
    }
    eprintln!(
        "SIGKILL {victim} (leading {victim_envs:?}, RSS {rss_victim} KiB): {killed_env} taken over by \
         {new_holder} after {t_moved:?}, all after {t_all_moved:?}; the change made during the \
         failover detected {t_detected:?} after it ({:?} after the kill)",
        t_change.duration_since(t_kill) + t_detected
    );

    // ---- the dead replica comes back (same name, as a restarted pod)
    let victim_n: usize = victim
        .trim_start_matches("replica-")
        .parse()
        .expect("replica number");
    let back = start(victim_n, 2);
    ports.lock().expect("lock").push(back.port);
    replicas.insert(victim.clone(), back);
    let (holders, _) = poll(Instant::now(), Duration::from_secs(30), || {
        led_everywhere(&replicas)
    })
    .expect("steady again");

    // ---- SIGSTOP a leader in the middle of a scan, until its Lease moves; then SIGCONT
    let paused = holders[SLOW].clone();
    let paused_port = replicas[&paused].port;
    let paused_pid = replicas[&paused].child.id();
    let view = replicas[&paused]
        .json(&format!("/api/v1/environments/{SLOW}"))
        .expect("environment");
    let old_epoch = view["leader"]["epoch"].as_u64().expect("epoch");
    let scan = std::thread::spawn(move || {
        request(
            paused_port,
            "POST",
            &format!("/api/v1/environments/{SLOW}/scan"),
            Duration::from_secs(60),
        )
    });
    // the scan is rendering the slow kustomization (1.5 s): pause the process there
    std::thread::sleep(Duration::from_millis(500));
    let t_stop = Instant::now();
    signal(paused_pid, "STOP");
    let wall_stop = unix_secs_now();
    let (successor, t_stop_moved) = poll(t_stop, LEASE * 4, || {
        leases(&s, &lease_ns)
            .get(SLOW)
            .map(|(h, _)| h.clone())
            .filter(|h| !h.is_empty() && *h != paused)
    })
    .unwrap_or_else(|| {
        signal(paused_pid, "CONT");
        panic!("{SLOW} was not taken over from the paused leader")
    });
    let other = replicas
        .iter()
        .find(|(n, _)| **n != paused)
        .map(|(_, r)| r)
        .expect("another replica");
    // the new leader has claimed the environment in the store: the old epoch is fenced off
    let (new_epoch, _) = poll(Instant::now(), Duration::from_secs(20), || {
        other
            .json(&format!("/api/v1/environments/{SLOW}"))
            .and_then(|v| v["leader"]["store_epoch"].as_u64())
            .filter(|e| *e > old_epoch)
    })
    .expect("the new leader claims the environment");
    // a change while the old leader sleeps: the new leader detects it
    patch(&s, &app_ns[SLOW], "extra-config", r#"{"level":"trace"}"#);
    poll(Instant::now(), Duration::from_secs(20), || {
        (detections(&hook)
            .iter()
            .filter(|(_, n)| n == "extra-config")
            .count()
            >= 2)
            .then_some(())
    })
    .expect("the change in the paused leader's environment is detected by its successor");
    let events_before = other
        .json(&format!("/api/v1/events?environment={SLOW}&limit=1000"))
        .expect("events")["total"]
        .as_u64();
    let scans_before = other
        .json(&format!("/api/v1/scans?environment={SLOW}&limit=1000"))
        .expect("scans")["items"]
        .as_array()
        .map(Vec::len);
    let t_cont = Instant::now();
    let wall_cont = unix_secs_now();
    signal(paused_pid, "CONT");
    let (code, body) = scan
        .join()
        .expect("scan thread")
        .expect("the paused replica answers once it runs again");
    assert_eq!(code, 409, "{body}");
    assert!(
        body.contains("not_leader") && body.contains(&format!("epoch {old_epoch} was refused")),
        "the scan's write carried the old epoch and the store refused it: {body}"
    );
    std::thread::sleep(Duration::from_secs(2));
    let paused_log = replicas[&paused].log();
    let after_cont: Vec<&str> = paused_log
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|t| unix_secs(t) >= wall_cont - 0.05)
        })
        .collect();
    let env_field = format!("environment={SLOW}");
    assert!(
        after_cont
            .iter()
            .any(|l| l.contains("the store refused this replica's write")
                && l.contains(&env_field)
                && l.contains(&format!("epoch {old_epoch} was refused"))),
        "the paused leader's log shows the store refusing its epoch:\n{}",
        after_cont.join("\n")
    );
    assert!(
        !after_cont
            .iter()
            .any(|l| l.contains("scan finished") && l.contains(&env_field)),
        "the paused leader wrote no scan after losing the Lease:\n{}",
        after_cont.join("\n")
    );
    // in the store: the new epoch, nothing more from the old one, and its writes refused
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let store = rt
        .block_on(driftguard_store::MongoStore::connect(
            &s.mongodb_uri,
            &database,
        ))
        .expect("store");
    assert_eq!(
        rt.block_on(store.epoch(SLOW)).expect("epoch"),
        Some(new_epoch)
    );
    let refused = rt.block_on(store.commit(&ScanBatch {
        environment: SLOW.into(),
        summary: None,
        upserts: Vec::new(),
        deletes: vec![driftguard_core::id::ResourceId::new(
            SLOW,
            "",
            "ConfigMap",
            Some(&app_ns[SLOW]),
            "app-config",
        )],
        events: Vec::new(),
        epoch: Some(old_epoch),
    }));
    assert!(
        matches!(&refused, Err(StoreError::Conflict { what }) if what.contains(&format!("epoch {old_epoch} was refused"))),
        "{refused:?}"
    );
    assert_eq!(
        other
            .json(&format!("/api/v1/events?environment={SLOW}&limit=1000"))
            .expect("events")["total"]
            .as_u64(),
        events_before,
        "no event written after the SIGCONT"
    );
    assert_eq!(
        other
            .json(&format!("/api/v1/scans?environment={SLOW}&limit=1000"))
            .expect("scans")["items"]
            .as_array()
            .map(Vec::len),
        scans_before,
        "no scan written after the SIGCONT"
    );
    eprintln!(
        "SIGSTOP {paused} (epoch {old_epoch} of {SLOW}) in the middle of a scan: the Lease moved to \
         {successor} after {t_stop_moved:?} (new epoch {new_epoch}); SIGCONT after {:?}: the scan's \
         write was refused by the store (409), nothing written after",
        t_cont.duration_since(t_stop)
    );

    // ---- every replica answers the same drifts
    let expected: BTreeSet<(String, String)> = ENVS
        .iter()
        .map(|e| (e.to_string(), "app-config".to_owned()))
        .chain([
            (killed_env.to_string(), "extra-config".to_owned()),
            (SLOW.to_owned(), "extra-config".to_owned()),
        ])
        .collect();
    let answers = poll(Instant::now(), Duration::from_secs(10), || {
        let all: Vec<BTreeSet<(String, String)>> = replicas
            .values()
            .map(|r| {
                r.drifts("limit=1000")
                    .iter()
                    .map(|d| {
                        (
                            d["object"]["environment"]
                                .as_str()
                                .unwrap_or_default()
                                .to_owned(),
                            d["object"]["name"].as_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect()
            })
            .collect();
        all.iter().all(|a| *a == expected).then_some(all)
    });
    assert!(
        answers.is_some(),
        "replicas answer different drifts: {:?}",
        replicas
            .iter()
            .map(|(n, r)| (n.clone(), r.drifts("limit=1000").len()))
            .collect::<Vec<_>>()
    );

    // ---- every detection of the whole test, exactly once
    let got = detections(&hook);
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for (id, _) in &got {
        *counts.entry(id.clone()).or_default() += 1;
    }
    let stored: BTreeSet<String> = other
        .json("/api/v1/events?event=detected&limit=1000")
        .expect("events")["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["event_id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(stored.len(), expected.len(), "{stored:?}");
    assert_eq!(
        counts.keys().cloned().collect::<BTreeSet<_>>(),
        stored,
        "the receiver got every detection"
    );
    assert!(
        counts.values().all(|n| *n == 1),
        "each detection exactly once: {counts:?}"
    );
    assert!(hook.all().iter().all(|h| h.signature_ok), "signed");

    // ---- one leader at a time, from the logs: terms of one environment never overlap
    let now = unix_secs_now();
    let mut all_terms: Vec<Term> = Vec::new();
    for (name, log, killed_at) in &old_logs {
        all_terms.extend(terms(name, log, *killed_at));
    }
    for (name, r) in &replicas {
        all_terms.extend(terms(name, &r.log(), now));
    }
    for env in ENVS {
        let mut t: Vec<&Term> = all_terms.iter().filter(|t| t.env == env).collect();
        t.sort_by(|a, b| a.start.total_cmp(&b.start));
        assert!(!t.is_empty(), "{env} was led");
        for pair in t.windows(2) {
            assert!(
                pair[0].end <= pair[1].start,
                "{env}: overlapping terms {:?} and {:?}",
                pair[0],
                pair[1]
            );
            assert!(
                pair[0].epoch < pair[1].epoch,
                "{env}: epochs grow: {pair:?}"
            );
        }
    }
    // the paused leader's term ended when it stopped renewing, before its successor's began
    let paused_term = all_terms
        .iter()
        .find(|t| t.replica == paused && t.env == SLOW && t.epoch == old_epoch)
        .expect("the paused term");
    assert!(
        paused_term.end < wall_stop + RENEW.as_secs_f64() + 0.5,
        "{paused_term:?} (stopped at {wall_stop})"
    );

    done.store(true, Ordering::SeqCst);
    sampler.join().expect("sampler");
    let v = violations.lock().expect("lock").clone();
    assert!(v.is_empty(), "two leaders seen at once: {v:?}");
    let n_samples = *samples.lock().expect("lock");

    // ---- memory and the end
    for (name, r) in &replicas {
        let (rss, peak) = memory_kib(r.child.id());
        let led = leads(r.port).unwrap_or_default();
        eprintln!("{name}: RSS {rss} KiB (peak {peak} KiB), leading {led:?}");
    }
    eprintln!(
        "{n_samples} samples of every replica's view, {} terms in the logs, whole test {:?}",
        all_terms.len(),
        t_start.elapsed()
    );
    for (_, r) in replicas.iter_mut() {
        signal(r.child.id(), "TERM");
    }
    for (_, r) in replicas.iter_mut() {
        let _ = r.child.wait();
    }
    // handed back on the way out
    assert!(
        leases(&s, &lease_ns).values().all(|(h, _)| h.is_empty()),
        "{:?}",
        leases(&s, &lease_ns)
    );
}
