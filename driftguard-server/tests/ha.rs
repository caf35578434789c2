//! Leader election in one process, against the test cluster (the Leases, the live side) and
//! the MongoDB test server (the shared store): two replicas split the environments, one that
//! stops hands its environments over, a write the store refuses makes a leader step down and
//! come back with a higher epoch, and a leader that cannot renew stops before another takes
//! over (the local fence).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use driftguard_core::ports::{DriftStore, ScanBatch};
use driftguard_server::config::Config;
use driftguard_server::environment::RunScanError;
use driftguard_server::{AppState, ServeOptions, Service};
use driftguard_store::MongoStore;
use tokio_util::sync::CancellationToken;

/// What the tests share: namespaces, a database, a folder of manifests.
struct World {
    kubeconfig: PathBuf,
    kubectl: PathBuf,
    lease_ns: String,
    app_ns: Vec<String>,
    database: String,
    dir: tempfile::TempDir,
}

impl Drop for World {
    fn drop(&mut self) {
        for ns in std::iter::once(&self.lease_ns).chain(&self.app_ns) {
            let _ = Command::new(&self.kubectl)
                .env("KUBECONFIG", &self.kubeconfig)
                .args([
                    "delete",
                    "namespace",
                    ns,
                    "--wait=false",
                    "--ignore-not-found",
                ])
                .output();
        }
        // the database too, from a thread of its own (this may run inside the test's runtime)
        let database = self.database.clone();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Runtime::new() else {
                return;
            };
            rt.block_on(async {
                if let Ok(s) =
                    MongoStore::connect(&driftguard_test_support::mongodb_uri(), &database).await
                {
                    let _ = s.database().drop().await;
                }
            });
        })
        .join();
    }
}

/// A name part of its own for each world (the tests of this binary run at the same time).
fn uniq() -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let k = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() % 1_000_000)
        .unwrap_or(0);
    format!("{}-{n}-{k}", std::process::id() % 100_000)
}

impl World {
    fn new(envs: &[&str]) -> World {
        let (kubeconfig, kubectl) = driftguard_test_support::cluster();
        // the configuration names the URI's variable; every test of this binary sets the same
        std::env::set_var("MONGODB_URI", driftguard_test_support::mongodb_uri());
        let u = uniq();
        let w = World {
            kubeconfig,
            kubectl,
            lease_ns: format!("dg-ha-leases-{u}"),
            app_ns: envs.iter().map(|e| format!("dg-ha-{e}-{u}")).collect(),
            database: format!("dg_ha_{}", u.replace('-', "_")),
            dir: tempfile::tempdir().expect("tmp"),
        };
        w.kubectl(&["create", "namespace", &w.lease_ns]);
        for (env, ns) in envs.iter().zip(&w.app_ns) {
            w.kubectl(&["create", "namespace", ns]);
            let yaml = format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\n  namespace: {ns}\ndata:\n  mode: normal\n"
            );
            let d = w.dir.path().join(env);
            std::fs::create_dir_all(&d).expect("mkdir");
            std::fs::write(d.join("app.yaml"), &yaml).expect("write");
            w.apply(&yaml);
        }
        std::fs::write(w.dir.path().join("key"), "ha-test-key\n").expect("key");
        w
    }

    fn kubectl(&self, args: &[&str]) -> String {
        let out = Command::new(&self.kubectl)
            .env("KUBECONFIG", &self.kubeconfig)
            .args(args)
            .output()
            .expect("kubectl runs");
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn apply(&self, yaml: &str) {
        let p = self.dir.path().join("apply.yaml");
        std::fs::write(&p, yaml).expect("write");
        self.kubectl(&["apply", "-f", p.to_str().expect("utf-8")]);
    }

    /// The holder of each environment Lease, by `kubectl`.
    fn holders(&self) -> Vec<(String, String)> {
        let out = self.kubectl(&[
            "get",
            "leases",
            "-n",
            &self.lease_ns,
            "-l",
            "driftguard.io/lease=environment",
            "-o",
            "jsonpath={range .items[*]}{.metadata.annotations.driftguard\\.io/environment}={.spec.holderIdentity}{\"\\n\"}{end}",
        ]);
        let mut v: Vec<(String, String)> = out
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .collect();
        v.sort();
        v
    }

    /// A configuration of the environments, for replica `identity`, its Leases in the
    /// cluster `home` names.
    fn config(&self, envs: &[&str], identity: &str, home: &Path) -> Config {
        let mut text = String::from("environments:\n");
        for (env, ns) in envs.iter().zip(&self.app_ns) {
            text.push_str(&format!(
                "  - name: {env}\n    dir: {env}\n    live: {{kubeconfig: \"{}\"}}\n    namespaces: [\"{ns}\"]\n",
                self.kubeconfig.display()
            ));
        }
        text.push_str(&format!(
            r#"store:
  mongodb: {{uriEnv: MONGODB_URI, database: {db}}}
secretKey: {{file: key}}
server:
  tokens: [ha-replica-token-9c4e]
  pollInterval: 1h
  fullScanInterval: 1h
  shutdownGrace: 2s
  ha:
    homeKubeconfig: "{home}"
    namespace: {ns}
    identity: {identity}
    leaseDuration: 2s
    renewDeadline: 1500ms
    retryPeriod: 250ms
"#,
            db = self.database,
            home = home.display(),
            ns = self.lease_ns,
        ));
        let path = self.dir.path().join(format!("{identity}.yaml"));
        std::fs::write(&path, &text).expect("write config");
        Config::load(&path).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    async fn store(&self) -> MongoStore {
        MongoStore::connect(&driftguard_test_support::mongodb_uri(), &self.database)
            .await
            .expect("store")
    }
}

/// A replica running in this process.
struct Replica {
    state: AppState,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

async fn start(config: &Config) -> Replica {
    let service = Service::build(config, &ServeOptions::default())
        .await
        .expect("builds");
    let state = service.state().clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let stop = CancellationToken::new();
    let s = stop.clone();
    let task = tokio::spawn(async move {
        service
            .run(listener, async move { s.cancelled().await })
            .await
            .expect("runs");
    });
    Replica { state, stop, task }
}

impl Replica {
    fn led(&self) -> Vec<String> {
        self.state
            .environments()
            .iter()
            .filter(|e| e.leads())
            .map(|e| e.name.clone())
            .collect()
    }

    fn epoch(&self, env: &str) -> Option<u64> {
        let e = self.state.environment(env).expect("environment");
        let v = e.leadership().expect("elected").view(env);
        v.leading.then_some(v.epoch).flatten()
    }

    fn scanned(&self, env: &str) -> bool {
        self.state
            .environment(env)
            .is_some_and(|e| e.status().last_scan.is_some())
    }

    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(15), self.task)
            .await
            .expect("stops in time")
            .expect("no panic");
    }
}

async fn until<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let t = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(t.elapsed() < limit, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_split_environments_hand_them_over_and_step_down_on_a_refused_write() {
    let envs = ["one", "two"];
    let w = World::new(&envs);
    let a = start(&w.config(&envs, "replica-a", &w.kubeconfig)).await;
    // alone, a replica leads everything
    until("a leads both", Duration::from_secs(20), || {
        (a.led().len() == 2 && envs.iter().all(|e| a.scanned(e))).then_some(())
    })
    .await;
    let b = start(&w.config(&envs, "replica-b", &w.kubeconfig)).await;
    // two replicas: one each (a hands one back, b takes it and scans it)
    until("one environment each", Duration::from_secs(20), || {
        (a.led().len() == 1 && b.led().len() == 1 && b.led().iter().all(|e| b.scanned(e)))
            .then_some(())
    })
    .await;
    let (a_env, b_env) = (a.led()[0].clone(), b.led()[0].clone());
    assert_ne!(a_env, b_env);
    assert_eq!(
        w.holders(),
        vec![
            (a_env.clone(), "replica-a".to_owned()),
            (b_env.clone(), "replica-b".to_owned())
        ]
        .into_iter()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect::<Vec<_>>(),
        "the Leases say the same"
    );
    // the store keeps each leader's epoch; b's term of the handed-over one is a new epoch
    let store = w.store().await;
    for (r, env) in [(&a, &a_env), (&b, &b_env)] {
        // (scanned: the term's claim is written)
        let epoch = r.epoch(env).expect("leads");
        assert_eq!(store.epoch(env).await.expect("reads"), Some(epoch), "{env}");
    }
    assert!(b.epoch(&b_env).expect("epoch") >= 2, "a takeover counts");
    // an environment led elsewhere: scans are refused here, with the leader named
    let foreign = b.state.environment(&a_env).expect("env").clone();
    match foreign.run_scan(&b.state.scan_context()).await {
        Err(RunScanError::NotLeader(msg)) => assert!(msg.contains("replica-a"), "{msg}"),
        other => panic!("expected not_leader, got {other:?}"),
    }

    // a stops: it hands its environment back, and b takes it over at once
    let t = Instant::now();
    a.stop().await;
    until("b leads both", Duration::from_secs(10), || {
        (b.led().len() == 2 && envs.iter().all(|e| b.scanned(e))).then_some(())
    })
    .await;
    let handover = t.elapsed();
    assert!(handover < Duration::from_secs(5), "{handover:?}");

    // the fencing window: another replica claimed `a_env` with a higher epoch while b still
    // believes it leads (as after a pause between b's check and its write). b's next write is
    // refused by the store, b steps down, then takes the environment again with an epoch
    // above the store's.
    let e = b.epoch(&a_env).expect("b leads it");
    store
        .commit(&ScanBatch::claim(a_env.clone(), e + 5))
        .await
        .expect("a newer claim");
    let env = b.state.environment(&a_env).expect("env").clone();
    match env.run_scan(&b.state.scan_context()).await {
        Err(RunScanError::NotLeader(msg)) => {
            assert!(msg.contains(&format!("epoch {e} was refused")), "{msg}")
        }
        other => panic!("expected the store to refuse epoch {e}, got {other:?}"),
    }
    let back = until("b leads it again", Duration::from_secs(10), || {
        b.epoch(&a_env).filter(|n| *n > e + 5)
    })
    .await;
    assert_eq!(
        back,
        e + 6,
        "the Lease's count moved past the store's epoch"
    );
    // the new term claims the environment in the store before it scans
    let t = Instant::now();
    while store.epoch(&a_env).await.expect("reads") != Some(e + 6) {
        assert!(t.elapsed() < Duration::from_secs(10), "never claimed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let metrics = b.state.metrics.encode(chrono::Utc::now());
    assert!(
        metrics.contains(&format!(
            "driftguard_leadership_lost_total{{environment=\"{a_env}\"}} 1"
        )),
        "{metrics}"
    );
    b.stop().await;
    // everything handed back on the way out
    assert!(
        w.holders().iter().all(|(_, h)| h.is_empty()),
        "{:?}",
        w.holders()
    );
}

/// A TCP proxy to the API server that can be cut.
struct Proxy {
    port: u16,
    cut: CancellationToken,
    conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Proxy {
    async fn to(upstream: String) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let cut = CancellationToken::new();
        let conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (c, list) = (cut.clone(), conns.clone());
        tokio::spawn(async move {
            loop {
                let (mut down, _) = tokio::select! {
                    _ = c.cancelled() => return,
                    r = listener.accept() => match r { Ok(x) => x, Err(_) => return },
                };
                let upstream = upstream.clone();
                let h = tokio::spawn(async move {
                    if let Ok(mut up) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                    }
                });
                list.lock().expect("lock").push(h);
            }
        });
        Proxy { port, cut, conns }
    }

    /// Drops every connection and accepts no more.
    fn cut(&self) {
        self.cut.cancel();
        for h in self.conns.lock().expect("lock").drain(..) {
            h.abort();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_cannot_renew_stops_before_another_takes_over() {
    let envs = ["solo"];
    let w = World::new(&envs);
    // replica a reaches the Leases through a proxy that the test cuts
    let kc = std::fs::read_to_string(&w.kubeconfig).expect("kubeconfig");
    let server = kc
        .lines()
        .find_map(|l| l.trim().strip_prefix("server:"))
        .expect("server line")
        .trim()
        .trim_matches('"')
        .to_owned();
    let upstream = server
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_owned();
    let proxy = Proxy::to(upstream).await;
    let proxied = w.dir.path().join("proxied-kubeconfig");
    std::fs::write(
        &proxied,
        kc.replace(&server, &format!("https://127.0.0.1:{}", proxy.port)),
    )
    .expect("write");
    let a = start(&w.config(&envs, "replica-a", &proxied)).await;
    until("a leads", Duration::from_secs(20), || {
        (a.led().len() == 1 && a.scanned("solo")).then_some(())
    })
    .await;
    let b = start(&w.config(&envs, "replica-b", &w.kubeconfig)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(b.led().is_empty(), "a holds the only environment");

    // the home cluster is cut off from a: a stops within renewDeadline (1.5 s after its last
    // renewal), b takes over only after leaseDuration (2 s) without change
    let cut = Instant::now();
    proxy.cut();
    let a_stopped = until("a fences itself", Duration::from_secs(5), || {
        a.led().is_empty().then(|| cut.elapsed())
    })
    .await;
    let b_leads = until("b takes over", Duration::from_secs(10), || {
        (b.led().len() == 1).then(|| cut.elapsed())
    })
    .await;
    assert!(
        a_stopped <= Duration::from_millis(1500 + 300),
        "{a_stopped:?}"
    );
    assert!(
        a_stopped < b_leads,
        "a stopped at {a_stopped:?}, b took over at {b_leads:?}"
    );
    // a's loops are stopped: its status no longer watches
    until("a's watch stopped", Duration::from_secs(5), || {
        (!a.state.environment("solo").expect("env").status().watching).then_some(())
    })
    .await;
    let metrics = a.state.metrics.encode(chrono::Utc::now());
    assert!(
        metrics.contains("driftguard_leader{environment=\"solo\"} 0"),
        "{metrics}"
    );
    let store = w.store().await;
    assert_eq!(
        store.epoch("solo").await.expect("reads"),
        b.epoch("solo"),
        "b's epoch fences a off in the store"
    );
    eprintln!("local fence after {a_stopped:?}, takeover after {b_leads:?}");
    a.stop().await;
    b.stop().await;
}
