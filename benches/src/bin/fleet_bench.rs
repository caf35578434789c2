//! Fleet-scale benchmark of `driftguard serve` on the test cluster, or on up to three test
//! clusters (issue #30): many environments, each a folder of manifests against one namespace of
//! one cluster, served by one process. Measures start-up until every environment has finished its
//! first scan and watches, memory, connections and watches on each API server, detection latency
//! of hand changes, and CPU when idle and under churn of objects Git does not track. Prints a
//! Markdown table.
//!
//! ```sh
//! scripts/test-services.sh up
//! cargo build --release -p driftguard-cli -p driftguard-benches --bin driftguard --bin fleet_bench
//! target/release/fleet_bench [--envs 300] [--objects 20000] [--clusters 1] [--full] [--clean]
//! target/release/fleet_bench --full            # 100,000 objects, 300 environments, 3 clusters
//! target/release/fleet_bench --clean --stop-clusters
//! ```
//!
//! Flags (or environment variables): `--envs` (`ENVS`, default 300), `--objects` (`OBJECTS`,
//! total over the environments, default 20,000; `--full`: 100,000), `--clusters` (`CLUSTERS`,
//! 1 to 3, default 1; `--full`: 3), `--kubeconfigs a,b,c` (`KUBECONFIGS`: clusters started by
//! someone else, one kubeconfig each, the first in place of cluster 1; their number is the
//! number of clusters), `--stop-clusters` (stop the clusters the benchmark started once done),
//! `--bin` (`DRIFTGUARD_BIN`, default `target/release/driftguard`), `--changes` (`CHANGES`, hand
//! changes timed, default 100), `--idle-secs` (`IDLE_SECS`, 30), `--churn-secs` (`CHURN_SECS`,
//! 30), `--churn-rate` (`CHURN_RATE`, changes per second, 10), `--settle-timeout`
//! (`SETTLE_TIMEOUT`, seconds, 1800), `--clean` (delete the benchmark's namespaces and objects
//! on every cluster: cluster 1, or those of `--kubeconfigs`, and the benchmark's clusters that
//! run, none started; then exit), `--scan` (also time a one-shot `driftguard scan --config` of
//! the same configuration once `serve` has stopped) and `--scan-only` (only that scan, no
//! `serve`), `--service-account` (DriftGuard reads each cluster as a ServiceAccount allowed only
//! get, list and watch, as deployed; its token from the TokenRequest API: priority and fairness
//! then treat it as a workload, not as the admin).
//!
//! - Clusters: cluster 1 is the test cluster of the environment (`KUBECONFIG` and `KUBECTL`, or
//!   `$DRIFTGUARD_RUN/services.env`, by default `/tmp/driftguard-test`). With `--clusters N`,
//!   the benchmark starts each further cluster `i` (2, 3) itself:
//!   `DRIFTGUARD_RUN=/tmp/fleet-bench-cluster-<i> KUBE_VERSION=<v> scripts/test-cluster/start.sh`
//!   (`<v>` cluster 1's version, or `$KUBE_VERSION`, or 1.37.2; its `export KUBECONFIG=...` and
//!   `export KUBECTL=...` lines read), which reuses the cluster when it already runs there, so
//!   its objects are kept between runs as cluster 1's are. They keep running after the benchmark
//!   (it says how to stop them: `DRIFTGUARD_RUN=/tmp/fleet-bench-cluster-<i>
//!   scripts/test-cluster/stop.sh`) unless `--stop-clusters` is given. Environment `i` is on
//!   cluster `i % N`; each environment names its cluster's kubeconfig in `driftguard.yaml`
//!   (`live: {kubeconfig: ...}`, one path per cluster, so DriftGuard shares one client and one
//!   set of watches per cluster among its environments). The table's `clusters` column says how
//!   many; the watches and connections it gives are the sums over the clusters, and with more
//!   than one a line per cluster follows it.
//! - Objects are created once and kept between runs: namespaces `dg-fleet-<i>`, each with its
//!   share of ConfigMaps and Deployments (two ConfigMaps to a Deployment; `replicas: 0`, so the
//!   test cluster's controllers make a ReplicaSet and no pods), applied server-side with field
//!   manager `kubectl` (as `kubectl apply --server-side`), 16 requests at once. An object is
//!   applied again when it is missing, was generated differently (annotation
//!   `fleet-bench/spec`, a hash of the manifest) or still holds a hand change. Each
//!   environment's folder holds the same manifests (`manifests-NNNN.yaml`, 500 objects a
//!   file), so nothing drifts at start; a temporary folder holds them, `driftguard.yaml` (no API token: the server listens
//!   on 127.0.0.1), the SQLite store and the server's log.
//! - Namespaces are not in the folders, so no namespace is managed and objects Git does not
//!   define are not orphans: the churn ConfigMaps (`churn-<j>`, 10 in each of the first five
//!   namespaces, on their environments' clusters, patched by a `churn-operator`) are read by the
//!   watches but are not drift.
//! - Hand changes: ConfigMap data and Deployment images, patched with field manager
//!   `kubectl-edit`, spread over the environments (so over the clusters), 5 a second; each
//!   timed from the PATCH's answer to its `detected` event on `GET /api/v1/events/stream`. They
//!   are applied back at the end (and their resolution awaited), so the next run starts in sync.
//! - Memory: `VmRSS` and `VmHWM` of `/proc/<pid>/status`; CPU: `utime + stime` of
//!   `/proc/<pid>/stat`; connections: the process's established TCP sockets (`/proc/<pid>/fd`
//!   and `/proc/<pid>/net/tcp{,6}`) to each API server's address and port; watches: each API
//!   server's `apiserver_longrunning_requests{verb="WATCH"}`, before start and once settled (the
//!   test cluster is shared: other clients' watches count too); both per cluster and in total.
//! - The one-shot scan (`--scan`, `--scan-only`): wall time and peak RSS (`ru_maxrss` through
//!   GNU time's `%M`, `/usr/bin/time` from Debian's `time` package) of `driftguard scan`,
//!   which scans the environments four at a time and keeps nothing between them.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use driftguard_sources::kube::{KubeConfigSpec, KubeLiveSource};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams,
};
use kube::Client;
use serde_json::{json, Value};
use xxhash_rust::xxh3::xxh3_64;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Label on everything the benchmark creates.
const PART_OF: &str = "app.kubernetes.io/part-of";
const FLEET: &str = "fleet-bench";
/// Annotation holding the hash of the manifest an object was applied from.
const SPEC: &str = "fleet-bench/spec";
/// The namespaces holding churn ConfigMaps, and how many each.
const CHURN_NAMESPACES: usize = 5;
const CHURN_PER_NAMESPACE: usize = 10;
/// Requests at once while creating objects.
const APPLY_AT_ONCE: usize = 16;
/// Objects per manifest file.
const FILE_OBJECTS: usize = 500;
/// Hand changes a second.
const CHANGE_RATE: f64 = 5.0;
/// The field manager of hand changes (a person's tool to DriftGuard).
const HAND: &str = "kubectl-edit";

struct Options {
    envs: usize,
    objects: usize,
    bin: PathBuf,
    changes: usize,
    idle_secs: u64,
    churn_secs: u64,
    churn_rate: f64,
    settle_timeout: u64,
    clean: bool,
    /// Time a one-shot scan after `serve` (`--scan`), or instead of it (`--scan-only`).
    scan: Scan,
    /// Run DriftGuard as a ServiceAccount with read-only access (`--service-account`).
    service_account: bool,
    /// The clusters the environments are spread over.
    clusters: usize,
    /// Kubeconfigs of clusters started by someone else (`--kubeconfigs`), cluster 1's first.
    kubeconfigs: Vec<PathBuf>,
    /// Stop the clusters the benchmark started once done (`--stop-clusters`).
    stop_clusters: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Scan {
    No,
    After,
    Only,
}

impl Options {
    fn parse() -> Result<Self, BoxError> {
        let env = |key: &str| std::env::var(key).ok();
        let mut flags: HashMap<String, String> = HashMap::new();
        let mut full = false;
        let mut clean = false;
        let mut scan = Scan::No;
        let mut service_account = false;
        let mut stop_clusters = false;
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--full" => full = true,
                "--clean" => clean = true,
                "--scan" => scan = Scan::After,
                "--scan-only" => scan = Scan::Only,
                "--service-account" => service_account = true,
                "--stop-clusters" => stop_clusters = true,
                "-h" | "--help" => {
                    println!("fleet_bench [--envs N] [--objects N] [--clusters 1-3 | --kubeconfigs A,B,C] [--stop-clusters] [--full] [--bin PATH] [--changes N] [--idle-secs S] [--churn-secs S] [--churn-rate R] [--settle-timeout S] [--clean] [--scan | --scan-only] [--service-account]");
                    std::process::exit(0);
                }
                flag if flag.starts_with("--") => {
                    let (key, value) = match flag.split_once('=') {
                        Some((k, v)) => (k.to_owned(), v.to_owned()),
                        None => (
                            flag.to_owned(),
                            args.next().ok_or(format!("{flag} needs a value"))?,
                        ),
                    };
                    flags.insert(key.trim_start_matches("--").to_owned(), value);
                }
                other => return Err(format!("unexpected argument `{other}` (see --help)").into()),
            }
        }
        let mut take = |flag: &str, var: &str| flags.remove(flag).or_else(|| env(var));
        let number = |v: Option<String>, default: u64| -> Result<u64, BoxError> {
            v.map_or(Ok(default), |s| {
                s.replace(['_', ','], "")
                    .parse()
                    .map_err(|e| format!("`{s}`: {e}").into())
            })
        };
        let envs = number(take("envs", "ENVS"), 300)? as usize;
        let objects = number(
            take("objects", "OBJECTS"),
            if full { 100_000 } else { 20_000 },
        )? as usize;
        let bin = take("bin", "DRIFTGUARD_BIN").map_or_else(
            || {
                let benches = Path::new(env!("CARGO_MANIFEST_DIR"));
                benches
                    .parent()
                    .unwrap_or(benches)
                    .join("target/release/driftguard")
            },
            PathBuf::from,
        );
        let changes = number(take("changes", "CHANGES"), 100)? as usize;
        let idle_secs = number(take("idle-secs", "IDLE_SECS"), 30)?;
        let churn_secs = number(take("churn-secs", "CHURN_SECS"), 30)?;
        let churn_rate = take("churn-rate", "CHURN_RATE").map_or(Ok(10.0), |s| {
            s.parse::<f64>().map_err(|e| format!("`{s}`: {e}"))
        })?;
        let settle_timeout = number(take("settle-timeout", "SETTLE_TIMEOUT"), 1800)?;
        let kubeconfigs: Vec<PathBuf> = take("kubeconfigs", "KUBECONFIGS")
            .map(|s| {
                s.split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(PathBuf::from)
                    .collect()
            })
            .unwrap_or_default();
        let clusters = take("clusters", "CLUSTERS")
            .map(|v| number(Some(v), 1))
            .transpose()?
            .map(|n| n as usize);
        let clusters = match (clusters, kubeconfigs.len()) {
            (Some(n), k) if k > 0 && n != k => {
                return Err(format!("--clusters {n} but {k} kubeconfigs in --kubeconfigs").into())
            }
            (_, k) if k > 0 => k,
            (Some(n), _) if !(1..=3).contains(&n) => {
                return Err(format!("--clusters {n}: 1 to 3").into())
            }
            (Some(n), _) => n,
            (None, _) if full => 3,
            (None, _) => 1,
        };
        if let Some(unknown) = flags.keys().next() {
            return Err(format!("unknown flag --{unknown} (see --help)").into());
        }
        if envs == 0 || objects < envs * 3 {
            return Err("need at least one environment and 3 objects per environment".into());
        }
        if envs < clusters {
            return Err("need at least one environment per cluster".into());
        }
        Ok(Options {
            envs,
            objects,
            bin,
            changes,
            idle_secs,
            churn_secs,
            churn_rate: churn_rate.max(0.1),
            settle_timeout,
            clean,
            scan,
            service_account,
            clusters,
            kubeconfigs,
            stop_clusters,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// the cluster

struct Cluster {
    kubeconfig: PathBuf,
    kubectl: PathBuf,
    /// Where it comes from, for the report: the test cluster, a `--kubeconfigs` path, or the
    /// `DRIFTGUARD_RUN` folder of a cluster the benchmark started.
    origin: String,
    /// The `DRIFTGUARD_RUN` folder of a cluster the benchmark started (and may stop).
    run: Option<PathBuf>,
}

/// The test cluster: `KUBECONFIG` and `KUBECTL`, or the test script's `services.env`.
fn cluster() -> Result<Cluster, BoxError> {
    let c = driftguard_benches::TestCluster::from_env()?;
    Ok(Cluster {
        kubeconfig: c.kubeconfig,
        kubectl: c.kubectl,
        origin: "the test cluster".into(),
        run: None,
    })
}

/// The `DRIFTGUARD_RUN` folder of the cluster `i` (2 or 3) the benchmark starts.
fn bench_run(i: usize) -> PathBuf {
    PathBuf::from(format!("/tmp/fleet-bench-cluster-{i}"))
}

/// A script of `scripts/test-cluster/`.
fn cluster_script(name: &str) -> PathBuf {
    let benches = Path::new(env!("CARGO_MANIFEST_DIR"));
    benches
        .parent()
        .unwrap_or(benches)
        .join("scripts/test-cluster")
        .join(name)
}

/// `KUBECONFIG` and `KUBECTL` of `export KEY=value` (or `KEY=value`) lines: what
/// `scripts/test-cluster/start.sh` prints, and its `$DRIFTGUARD_RUN/env`.
fn exported(text: &str) -> (Option<PathBuf>, Option<PathBuf>) {
    let get = |key: &str| {
        text.lines()
            .map(|l| l.trim().trim_start_matches("export ").trim())
            .find_map(|l| l.strip_prefix(key))
            .map(|v| PathBuf::from(v.trim_matches(['"', '\''])))
    };
    (get("KUBECONFIG="), get("KUBECTL="))
}

/// Starts the test cluster `i` (2 or 3) in `/tmp/fleet-bench-cluster-<i>`, of Kubernetes
/// `version`, or reuses it if it already runs there (`start.sh` is idempotent).
fn start_bench_cluster(i: usize, version: &str) -> Result<Cluster, BoxError> {
    let run = bench_run(i);
    let script = cluster_script("start.sh");
    eprintln!(
        "cluster {i}: DRIFTGUARD_RUN={} KUBE_VERSION={version} {}",
        run.display(),
        script.display()
    );
    let t = Instant::now();
    let mut cmd = Command::new(&script);
    cmd.env("DRIFTGUARD_RUN", &run)
        .env("KUBE_VERSION", version)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    if std::env::var_os("DRIFTGUARD_START_TIMEOUT").is_none() {
        // two cores shared with the other clusters and their controllers
        cmd.env("DRIFTGUARD_START_TIMEOUT", "180");
    }
    let out = cmd.output()?;
    if !out.status.success() {
        return Err(format!("{}: {} (cluster {i})", script.display(), out.status).into());
    }
    let (kubeconfig, kubectl) = exported(&String::from_utf8_lossy(&out.stdout));
    eprintln!(
        "  cluster {i} ready after {:.1} s",
        t.elapsed().as_secs_f64()
    );
    Ok(Cluster {
        kubeconfig: kubeconfig.ok_or("start.sh printed no KUBECONFIG")?,
        kubectl: kubectl.ok_or("start.sh printed no KUBECTL")?,
        origin: run.display().to_string(),
        run: Some(run),
    })
}

/// The cluster `i` (2 or 3) the benchmark started, if it runs (for `--clean`: none is started).
fn running_bench_cluster(i: usize) -> Option<Cluster> {
    let run = bench_run(i);
    let pid = std::fs::read_to_string(run.join("kube-apiserver.pid")).ok()?;
    if !Path::new("/proc").join(pid.trim()).exists() {
        return None;
    }
    let (kubeconfig, kubectl) = exported(&std::fs::read_to_string(run.join("env")).ok()?);
    Some(Cluster {
        kubeconfig: kubeconfig?,
        kubectl: kubectl?,
        origin: run.display().to_string(),
        run: Some(run),
    })
}

/// Stops a cluster the benchmark started (`scripts/test-cluster/stop.sh`, which removes its
/// data).
fn stop_bench_cluster(run: &Path) -> Result<(), BoxError> {
    eprintln!(
        "stopping the cluster in {}: DRIFTGUARD_RUN={} {}",
        run.display(),
        run.display(),
        cluster_script("stop.sh").display()
    );
    let status = Command::new(cluster_script("stop.sh"))
        .env("DRIFTGUARD_RUN", run)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        return Err(format!("stop.sh in {}: {status}", run.display()).into());
    }
    Ok(())
}

/// The Kubernetes version of the clusters the benchmark starts: cluster 1's (`v1.37.2` ->
/// `1.37.2`), or `$KUBE_VERSION`, or 1.37.2.
fn started_version(cluster1: &str) -> String {
    let v = cluster1.trim_start_matches('v');
    let release = v.split(['-', '+']).next().unwrap_or_default();
    if release.split('.').count() == 3
        && release
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    {
        return release.to_owned();
    }
    std::env::var("KUBE_VERSION")
        .ok()
        .filter(|v| !v.is_empty())
        .map_or_else(
            || "1.37.2".to_owned(),
            |v| v.trim_start_matches('v').to_owned(),
        )
}

/// The clusters of a run: `--kubeconfigs`, or cluster 1 from the environment and the ones the
/// benchmark starts. With `--clean`, none is started: cluster 1 and those of the benchmark's
/// that run.
fn clusters(opts: &Options) -> Result<Vec<Cluster>, BoxError> {
    if !opts.kubeconfigs.is_empty() {
        let kubectl = std::env::var_os("KUBECTL")
            .map(PathBuf::from)
            .or_else(|| {
                driftguard_benches::TestCluster::from_env()
                    .ok()
                    .map(|c| c.kubectl)
            })
            .unwrap_or_else(|| "kubectl".into());
        return Ok(opts
            .kubeconfigs
            .iter()
            .map(|k| Cluster {
                kubeconfig: k.clone(),
                kubectl: kubectl.clone(),
                origin: k.display().to_string(),
                run: None,
            })
            .collect());
    }
    let first = cluster()?;
    if opts.clean {
        let mut all = vec![first];
        all.extend((2..=3).filter_map(running_bench_cluster));
        return Ok(all);
    }
    if opts.clusters == 1 {
        return Ok(vec![first]);
    }
    let version = started_version(&first.server_version());
    let mut all = vec![first];
    for i in 2..=opts.clusters {
        match start_bench_cluster(i, &version) {
            Ok(c) => all.push(c),
            Err(e) => {
                if opts.stop_clusters {
                    for run in all.iter().filter_map(|c| c.run.as_deref()) {
                        let _ = stop_bench_cluster(run);
                    }
                }
                return Err(e);
            }
        }
    }
    Ok(all)
}

impl Cluster {
    fn kubectl(&self, args: &[&str]) -> Result<String, BoxError> {
        let out = Command::new(&self.kubectl)
            .env("KUBECONFIG", &self.kubeconfig)
            .args(args)
            .stderr(Stdio::inherit())
            .output()?;
        if !out.status.success() {
            return Err(format!("kubectl {}: {}", args.join(" "), out.status).into());
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The API server's address (its connections are counted).
    fn api_endpoint(&self) -> Result<Endpoint, BoxError> {
        let server = self.kubectl(&[
            "config",
            "view",
            "--minify",
            "-o",
            "jsonpath={.clusters[0].cluster.server}",
        ])?;
        Ok(Endpoint::of(server.trim()))
    }

    /// The API server's `gitVersion`, or `?`.
    fn server_version(&self) -> String {
        self.kubectl(&["version", "-o", "json"])
            .ok()
            .and_then(|o| serde_json::from_str::<Value>(&o).ok())
            .and_then(|v| v["serverVersion"]["gitVersion"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "?".into())
    }

    fn metrics(&self) -> Result<Metrics, BoxError> {
        Ok(Metrics::parse(
            &self.kubectl(&["get", "--raw", "/metrics"])?,
        ))
    }
}

/// An API server's address: its port, and the addresses its host resolves to (none: any).
#[derive(Clone)]
struct Endpoint {
    server: String,
    port: u16,
    ips: Vec<std::net::IpAddr>,
}

impl Endpoint {
    /// Of a kubeconfig's `server` URL (`https://host:port`, port 443 when not given).
    fn of(server: &str) -> Self {
        let rest = server.split_once("://").map_or(server, |(_, r)| r);
        let authority = rest.split('/').next().unwrap_or_default();
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(':') && p.bytes().all(|b| b.is_ascii_digit()) => {
                (h, p.parse().unwrap_or(443))
            }
            _ => (authority, 443),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let ips = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
            .map(|a| a.map(|a| a.ip()).collect())
            .unwrap_or_default();
        Endpoint {
            server: authority.to_owned(),
            port,
            ips,
        }
    }

    fn matches(&self, ip: std::net::IpAddr, port: u16) -> bool {
        port == self.port && (self.ips.is_empty() || self.ips.contains(&ip))
    }
}

/// What the API server's metrics say about watches and refused requests.
#[derive(Default)]
struct Metrics {
    /// `apiserver_longrunning_requests{verb="WATCH"}` by resource.
    watches: BTreeMap<String, f64>,
    /// `apiserver_flowcontrol_rejected_requests_total` (absent until a request is rejected).
    rejected: Option<f64>,
    /// `apiserver_request_total{code="429"}`.
    too_many: f64,
}

impl Metrics {
    fn parse(text: &str) -> Self {
        let mut m = Metrics::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let (name, labels) = series.split_once('{').unwrap_or((series, ""));
            let label = |key: &str| {
                labels
                    .split(',')
                    .find_map(|kv| kv.strip_prefix(key)?.strip_prefix("=\""))
                    .map(|v| v.trim_end_matches(['}', '"']))
            };
            match name {
                "apiserver_longrunning_requests" if label("verb") == Some("WATCH") => {
                    let resource = label("resource").unwrap_or("?").to_owned();
                    *m.watches.entry(resource).or_default() += value;
                }
                "apiserver_flowcontrol_rejected_requests_total" => {
                    *m.rejected.get_or_insert(0.0) += value;
                }
                "apiserver_request_total" if label("code") == Some("429") => m.too_many += value,
                _ => {}
            }
        }
        m
    }

    fn watch_total(&self) -> f64 {
        self.watches.values().sum()
    }
}

fn resource(group: &str, version: &str, kind: &str) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind))
}

fn api_of(client: &Client, obj: &Value) -> (Api<DynamicObject>, String) {
    let kind = obj["kind"].as_str().unwrap_or_default();
    let (group, version) = match obj["apiVersion"].as_str().unwrap_or("v1").split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", obj["apiVersion"].as_str().unwrap_or("v1")),
    };
    let ar = resource(group, version, kind);
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let api = match obj["metadata"]["namespace"].as_str() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    };
    (api, name)
}

/// Whether a request is worth trying again (throttled, server trouble, connection lost).
fn transient(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => s.code == 429 || s.code >= 500,
        _ => true,
    }
}

/// Server-side apply of `obj` as `manager` (forced: it takes fields other managers hold).
async fn apply(client: &Client, obj: &Value, manager: &str) -> Result<(), BoxError> {
    let (api, name) = api_of(client, obj);
    let params = PatchParams::apply(manager).force();
    let mut attempt = 0;
    loop {
        match api.patch(&name, &params, &Patch::Apply(obj)).await {
            Ok(_) => return Ok(()),
            Err(e) if transient(&e) && attempt < 8 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(200 << attempt.min(5))).await;
            }
            Err(e) => return Err(format!("apply {name}: {e}").into()),
        }
    }
}

/// Applies every object, `APPLY_AT_ONCE` at a time.
async fn apply_all(client: &Client, objects: Vec<Value>, manager: &str) -> Result<(), BoxError> {
    let objects = Arc::new(objects);
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let total = objects.len();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..APPLY_AT_ONCE {
        let (client, objects, next, done) =
            (client.clone(), objects.clone(), next.clone(), done.clone());
        let manager = manager.to_owned();
        workers.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(obj) = objects.get(i) else {
                    return Ok::<(), BoxError>(());
                };
                apply(&client, obj, &manager).await?;
                let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                if d % 5000 == 0 {
                    eprintln!("  {d}/{total}");
                }
            }
        });
    }
    while let Some(r) = workers.join_next().await {
        r??;
    }
    Ok(())
}

/// Every object of `ar` labelled as the benchmark's, paged: `namespace/name` -> the object.
async fn list_fleet(
    client: &Client,
    ar: &ApiResource,
) -> Result<HashMap<String, DynamicObject>, BoxError> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), ar);
    let mut out = HashMap::new();
    let mut token: Option<String> = None;
    loop {
        let mut lp = ListParams::default()
            .labels(&format!("{PART_OF}={FLEET}"))
            .limit(500);
        if let Some(t) = &token {
            lp = lp.continue_token(t);
        }
        let page = api.list(&lp).await?;
        for o in page.items {
            let key = format!(
                "{}/{}",
                o.metadata.namespace.as_deref().unwrap_or(""),
                o.metadata.name.as_deref().unwrap_or("")
            );
            out.insert(key, o);
        }
        match page.metadata.continue_ {
            Some(t) if !t.is_empty() => token = Some(t),
            _ => return Ok(out),
        }
    }
}

/// Whether a live object is as the benchmark applied `desired`: same manifest hash, and no
/// hand change of an earlier run left in it (one that was not applied back).
fn as_applied(live: &DynamicObject, desired: &Value) -> bool {
    let hash = live
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(SPEC))
        .map(String::as_str);
    let edited = live
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .any(|m| m.manager.as_deref() == Some(HAND));
    hash.is_some() && hash == desired["metadata"]["annotations"][SPEC].as_str() && !edited
}

// ---------------------------------------------------------------------------------------------
// the fleet

struct Env {
    namespace: String,
    objects: Vec<Value>,
    /// Its cluster: environment `i` is on cluster `i % N`.
    cluster: usize,
}

fn namespace_name(i: usize) -> String {
    format!("dg-fleet-{i}")
}

/// Puts the manifest's hash in its `fleet-bench/spec` annotation.
fn stamped(mut obj: Value) -> Value {
    let hash = format!("{:016x}", xxh3_64(obj.to_string().as_bytes()));
    obj["metadata"]["annotations"][SPEC] = Value::String(hash);
    obj
}

fn config_map(ns: &str, env: usize, k: usize) -> Value {
    stamped(json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": format!("cm-{k}"),
            "namespace": ns,
            "labels": {PART_OF: FLEET, "app.kubernetes.io/name": format!("svc-{}", k / 3), "tier": "backend"},
            "annotations": {"owner": format!("team-{}", env % 7)},
        },
        "data": {
            "LOG_LEVEL": "info",
            "FEATURE_FLAGS": "checkout,search,recommendations",
            "DATABASE_URL": format!("postgres://db-{env}.internal:5432/svc{k}"),
            "config.yaml": format!("server:\n  port: {}\n  workers: 4\ncache:\n  ttl: 30s\n", 8000 + k % 100),
        },
    }))
}

fn deployment(ns: &str, env: usize, k: usize) -> Value {
    let app = format!("app-{k}");
    stamped(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": app,
            "namespace": ns,
            "labels": {PART_OF: FLEET, "app.kubernetes.io/name": app, "tier": "backend"},
            "annotations": {"owner": format!("team-{}", env % 7)},
        },
        "spec": {
            // no pods: the test cluster runs the controllers but has no nodes
            "replicas": 0,
            "selector": {"matchLabels": {"app": app}},
            "template": {
                "metadata": {"labels": {"app": app, "tier": "backend"}},
                "spec": {
                    "containers": [{
                        "name": "app",
                        "image": format!("registry.example/shop/svc:1.{}.0", k % 10),
                        "ports": [{"containerPort": 8080, "name": "http"}],
                        "env": [
                            {"name": "LOG_LEVEL", "value": "info"},
                            {"name": "PORT", "value": "8080"},
                            {"name": "CONFIG", "value": format!("/etc/app/cm-{}", k.saturating_sub(1))},
                        ],
                        "resources": {
                            "requests": {"cpu": "100m", "memory": "64Mi"},
                            "limits": {"memory": "128Mi"},
                        },
                    }],
                },
            },
        },
    }))
}

/// The environments: `objects` shared out, two ConfigMaps to a Deployment in each, round-robin
/// over `clusters`.
fn fleet(envs: usize, objects: usize, clusters: usize) -> Vec<Env> {
    (0..envs)
        .map(|i| {
            let namespace = namespace_name(i);
            let n = objects / envs + usize::from(i < objects % envs);
            let objects = (0..n)
                .map(|k| {
                    if k % 3 == 2 {
                        deployment(&namespace, i, k)
                    } else {
                        config_map(&namespace, i, k)
                    }
                })
                .collect();
            Env {
                namespace,
                objects,
                cluster: i % clusters,
            }
        })
        .collect()
}

fn namespace_object(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "labels": {PART_OF: FLEET}}})
}

/// The churn ConfigMaps of the first namespaces, with their environments' clusters.
fn churn_objects(envs: &[Env]) -> Vec<(usize, Value)> {
    envs.iter()
        .take(CHURN_NAMESPACES)
        .flat_map(|e| {
            (0..CHURN_PER_NAMESPACE).map(move |j| {
                (
                    e.cluster,
                    json!({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": format!("churn-{j}"), "namespace": e.namespace,
                            "labels": {"fleet-bench/role": "churn"}},
                        "data": {"counter": "0"}}),
                )
            })
        })
        .collect()
}

/// Creates what is missing or not as applied (namespaces, objects, churn ConfigMaps) of the
/// environments of `all` on one cluster (`cluster`: its index; `name` in messages).
async fn ensure(client: &Client, all: &[Env], cluster: usize, name: &str) -> Result<(), BoxError> {
    let envs: Vec<&Env> = all.iter().filter(|e| e.cluster == cluster).collect();
    let t = Instant::now();
    let namespaces = list_fleet(client, &resource("", "v1", "Namespace")).await?;
    let config_maps = list_fleet(client, &resource("", "v1", "ConfigMap")).await?;
    let deployments = list_fleet(client, &resource("apps", "v1", "Deployment")).await?;
    let missing_ns: Vec<Value> = envs
        .iter()
        .filter(|e| !namespaces.contains_key(&format!("/{}", e.namespace)))
        .map(|e| namespace_object(&e.namespace))
        .collect();
    let others = namespaces
        .keys()
        .filter(|k| {
            let ns = k.trim_start_matches('/');
            ns != SA_NAMESPACE && !envs.iter().any(|e| e.namespace == ns)
        })
        .count();
    let mut todo = Vec::new();
    for e in &envs {
        for obj in &e.objects {
            let key = format!(
                "{}/{}",
                e.namespace,
                obj["metadata"]["name"].as_str().unwrap_or_default()
            );
            let live = match obj["kind"].as_str() {
                Some("Deployment") => deployments.get(&key),
                _ => config_maps.get(&key),
            };
            if !live.is_some_and(|l| as_applied(l, obj)) {
                todo.push(obj.clone());
            }
        }
    }
    let total: usize = envs.iter().map(|e| e.objects.len()).sum();
    eprintln!(
        "{name}: {} of {} namespaces and {} of {total} objects to apply (checked in {:.1} s)",
        missing_ns.len(),
        envs.len(),
        todo.len(),
        t.elapsed().as_secs_f64()
    );
    if others > 0 {
        eprintln!("  and {others} more of the benchmark's namespaces, not this run's on this cluster (--clean deletes them)");
    }
    let t = Instant::now();
    apply_all(client, missing_ns, "kubectl").await?;
    let n = todo.len();
    apply_all(client, todo, "kubectl").await?;
    let churn = churn_objects(all)
        .into_iter()
        .filter(|(c, _)| *c == cluster)
        .map(|(_, o)| o)
        .collect();
    apply_all(client, churn, "fleet-bench-churn").await?;
    if n > 0 {
        eprintln!(
            "  applied in {:.1} s ({:.0} objects/s)",
            t.elapsed().as_secs_f64(),
            n as f64 / t.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// Waits until the deployment controller has seen every Deployment (`observedGeneration`), so
/// that its writes (a ReplicaSet, the status, the revision annotation) are not measured as live
/// changes: at its default 20 requests a second it needs minutes for thousands of new
/// Deployments. Gives up when no progress is made for a minute (a cluster without controllers).
/// `of` names the cluster in messages (empty with one cluster).
async fn caught_up(client: &Client, of: &str) -> Result<(), BoxError> {
    let t = Instant::now();
    let (mut best, mut progressed) = (0, Instant::now());
    loop {
        let deployments = list_fleet(client, &resource("apps", "v1", "Deployment")).await?;
        let total = deployments.len();
        let seen = deployments
            .values()
            .filter(|d| {
                d.data["status"]["observedGeneration"].as_i64() >= d.metadata.generation
                    && d.metadata.generation.is_some()
            })
            .count();
        if seen == total {
            if t.elapsed() > Duration::from_secs(1) {
                eprintln!(
                    "  the deployment controller{of} caught up after {:.0} s",
                    t.elapsed().as_secs_f64()
                );
            }
            return Ok(());
        }
        if seen > best {
            (best, progressed) = (seen, Instant::now());
        } else if progressed.elapsed() > Duration::from_secs(60) {
            eprintln!("  {seen} of {total} Deployments{of} seen by a controller, no progress for a minute: going on");
            return Ok(());
        }
        eprintln!(
            "  waiting for the deployment controller{of}: {seen} of {total} Deployments seen"
        );
        tokio::time::sleep(Duration::from_secs(15)).await;
    }
}

/// Deletes the benchmark's namespaces and what they hold. The namespace controller empties
/// them; without one (a bare API server) the benchmark's kinds are deleted and each namespace
/// finalized after two minutes.
async fn clean(client: &Client) -> Result<(), BoxError> {
    let ns_ar = resource("", "v1", "Namespace");
    let all: Api<DynamicObject> = Api::all_with(client.clone(), &ns_ar);
    let names: Vec<String> = list_fleet(client, &ns_ar)
        .await?
        .into_values()
        .filter_map(|n| n.metadata.name)
        .collect();
    for name in &names {
        match all.delete(name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    eprintln!("deleting {} namespaces", names.len());
    let t = Instant::now();
    loop {
        let left = list_fleet(client, &ns_ar).await?;
        if left.is_empty() {
            eprintln!("  deleted in {:.1} s", t.elapsed().as_secs_f64());
            return Ok(());
        }
        if t.elapsed() < Duration::from_secs(120) {
            tokio::time::sleep(Duration::from_secs(2)).await;
            continue;
        }
        eprintln!(
            "  {} namespaces still there: emptied and finalized",
            left.len()
        );
        for mut ns in left.into_values() {
            let name = ns.metadata.name.clone().unwrap_or_default();
            for ar in [
                resource("", "v1", "ConfigMap"),
                resource("apps", "v1", "Deployment"),
                resource("apps", "v1", "ReplicaSet"),
                resource("", "v1", "Pod"),
            ] {
                let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &name, &ar);
                api.delete_collection(&DeleteParams::default(), &ListParams::default())
                    .await?;
            }
            ns.data["spec"] = json!({"finalizers": []});
            match all
                .replace_subresource("finalize", &name, &PostParams::default(), &ns)
                .await
            {
                Ok(_) => {}
                // gone, or changed meanwhile (the namespace controller, another cleaner)
                Err(kube::Error::Api(s)) if s.is_not_found() || s.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
        }
        return Ok(());
    }
}

/// The ServiceAccount DriftGuard runs as with `--service-account`: read-only on every kind
/// (get, list, watch), as `deploy/helm`'s ClusterRole grants, in namespace `dg-fleet-sa`.
const SA_NAMESPACE: &str = "dg-fleet-sa";

/// Makes the read-only ServiceAccount (kept between runs; `--clean` deletes its namespace, the
/// labelled ClusterRole and binding stay, harmless without the account) and writes a
/// kubeconfig that authenticates as it with a token from the TokenRequest API
/// (`kubectl create token`), for the API server's address and CA of the admin's kubeconfig;
/// `suffix` tells the files of the clusters apart.
fn service_account_kubeconfig(c: &Cluster, dir: &Path, suffix: &str) -> Result<PathBuf, BoxError> {
    let manifest = dir.join(format!("service-account{suffix}.yaml"));
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: v1
kind: Namespace
metadata: {{name: {SA_NAMESPACE}, labels: {{{PART_OF}: {FLEET}}}}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: driftguard, namespace: {SA_NAMESPACE}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: dg-fleet-bench-read, labels: {{{PART_OF}: {FLEET}}}}}
rules:
  - apiGroups: ['*']
    resources: ['*']
    verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: dg-fleet-bench-read, labels: {{{PART_OF}: {FLEET}}}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: dg-fleet-bench-read}}
subjects: [{{kind: ServiceAccount, name: driftguard, namespace: {SA_NAMESPACE}}}]
"
        ),
    )?;
    c.kubectl(&["apply", "-f", &manifest.to_string_lossy()])?;
    let token = c.kubectl(&[
        "create",
        "token",
        "driftguard",
        "-n",
        SA_NAMESPACE,
        "--duration=6h",
    ])?;
    let view = |path: &str| {
        c.kubectl(&[
            "config",
            "view",
            "--raw",
            "--minify",
            "--flatten",
            "-o",
            &format!("jsonpath={{{path}}}"),
        ])
    };
    let server = view(".clusters[0].cluster.server")?;
    let ca = view(".clusters[0].cluster.certificate-authority-data")?;
    let path = dir.join(format!("service-account{suffix}.kubeconfig"));
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1
kind: Config
clusters:
  - name: test
    cluster: {{server: {}, certificate-authority-data: {}}}
users:
  - name: driftguard
    user: {{token: {}}}
contexts:
  - name: driftguard
    context: {{cluster: test, user: driftguard}}
current-context: driftguard
",
            server.trim(),
            ca.trim(),
            token.trim()
        ),
    )?;
    // the token works and is read-only
    let can = |verb: &str| {
        Command::new(&c.kubectl)
            .args(["auth", "can-i", verb, "configmaps", "-A"])
            .env("KUBECONFIG", &path)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "yes")
    };
    if !can("list")? || can("patch")? {
        return Err("the ServiceAccount's kubeconfig is not read-only on the cluster".into());
    }
    Ok(path)
}

/// Writes one folder per environment and `driftguard.yaml`; answers the configuration's path.
/// Each environment names its cluster's kubeconfig (`kubeconfigs[e.cluster]`), the same path
/// for every environment of a cluster: DriftGuard shares one client and one set of watches
/// among the environments of one kubeconfig.
fn write_config(
    work: &Path,
    envs: &[Env],
    kubeconfigs: &[PathBuf],
    port: u16,
) -> Result<PathBuf, BoxError> {
    let q = |s: &str| Value::String(s.to_owned()).to_string();
    let kubeconfigs = kubeconfigs
        .iter()
        .map(std::path::absolute)
        .collect::<Result<Vec<_>, _>>()?;
    let mut config = String::from("environments:\n");
    for e in envs {
        let dir = work.join("envs").join(&e.namespace);
        std::fs::create_dir_all(&dir)?;
        // one document per object (JSON is YAML), in files of at most FILE_OBJECTS objects:
        // a repository's layout, and far under the manifest size limit at any fleet size
        for (k, chunk) in e.objects.chunks(FILE_OBJECTS).enumerate() {
            let mut text = String::new();
            for obj in chunk {
                text.push_str("---\n");
                text.push_str(&obj.to_string());
                text.push('\n');
            }
            std::fs::write(dir.join(format!("manifests-{k:04}.yaml")), text)?;
        }
        config.push_str(&format!(
            "  - name: {}\n    dir: {}\n    live: {{kubeconfig: {}}}\n    namespaces: [{}]\n",
            q(&e.namespace),
            q(&dir.to_string_lossy()),
            q(&kubeconfigs[e.cluster].to_string_lossy()),
            q(&e.namespace)
        ));
    }
    config.push_str(&format!(
        "store:\n  sqlite: {}\nserver:\n  listen: 127.0.0.1:{port}\n",
        q(&work.join("driftguard.db").to_string_lossy())
    ));
    let path = work.join("driftguard.yaml");
    std::fs::write(&path, config)?;
    Ok(path)
}

// ---------------------------------------------------------------------------------------------
// the process

/// The `driftguard serve` child; killed when dropped.
struct Server {
    child: Child,
    log: PathBuf,
}

impl Server {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn alive(&mut self) -> Result<(), BoxError> {
        if let Some(status) = self.child.try_wait()? {
            return Err(format!("driftguard serve exited ({status}):\n{}", self.log_tail()).into());
        }
        Ok(())
    }

    fn log_tail(&self) -> String {
        let Ok(mut f) = std::fs::File::open(&self.log) else {
            return String::new();
        };
        let len = f.metadata().map_or(0, |m| m.len());
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(4000)));
        BufReader::new(f)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// SIGTERM, then SIGKILL after 20 s; answers how long it took to stop.
    fn stop(&mut self) -> Result<Duration, BoxError> {
        let t = Instant::now();
        Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()?;
        while t.elapsed() < Duration::from_secs(20) {
            if self.child.try_wait()?.is_some() {
                return Ok(t.elapsed());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("driftguard serve did not stop within 20 s of SIGTERM: killed");
        self.child.kill()?;
        self.child.wait()?;
        Ok(t.elapsed())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A one-shot `driftguard scan --config`: its wall time and peak RSS (KiB).
fn one_shot_scan(opts: &Options, c: &Cluster, config: &Path) -> Result<(Duration, u64), BoxError> {
    let report = config.with_file_name("scan-rusage.txt");
    let log = config.with_file_name("scan.log");
    eprintln!(
        "one-shot scan: {} scan --config {} (log {})",
        opts.bin.display(),
        config.display(),
        log.display()
    );
    let started = Instant::now();
    let status = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&report)
        .arg(&opts.bin)
        .args(["scan", "--config"])
        .arg(config)
        .env("KUBECONFIG", &c.kubeconfig)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log)?)
        .stderr(Stdio::inherit())
        .status()
        .map_err(|e| format!("/usr/bin/time (Debian's `time` package): {e}"))?;
    let took = started.elapsed();
    // exit 2 is drift found (none is expected); 1 is an error
    if !matches!(status.code(), Some(0 | 2)) {
        return Err(format!("driftguard scan: {status} (log {})", log.display()).into());
    }
    let text = std::fs::read_to_string(&report)?;
    let kib = text
        .lines()
        .rev()
        .find_map(|l| l.trim().parse::<u64>().ok())
        .ok_or_else(|| format!("{}: no peak RSS in `{text}`", report.display()))?;
    Ok((took, kib))
}

/// `VmRSS` and `VmHWM` in KiB.
fn memory(pid: u32) -> Result<(u64, u64), BoxError> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    Ok((field("VmRSS:"), field("VmHWM:")))
}

/// CPU time used (user + system), in clock ticks.
fn cpu_ticks(pid: u32) -> Result<u64, BoxError> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = stat.rsplit_once(')').ok_or("odd /proc/<pid>/stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields 14 and 15 of stat(5); `rest` starts at field 3
    let get = |i: usize| -> Result<u64, BoxError> {
        Ok(fields.get(i - 3).ok_or("short /proc/<pid>/stat")?.parse()?)
    };
    Ok(get(14)? + get(15)?)
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// An address of `/proc/net/tcp{,6}` (`0100007F:1F90`: the address's 32-bit words in host
/// order, the port big-endian), IPv4-mapped IPv6 addresses as IPv4.
fn proc_address(text: &str) -> Option<(std::net::IpAddr, u16)> {
    let (ip, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let words = (0..ip.len() / 8)
        .map(|i| u32::from_str_radix(ip.get(i * 8..i * 8 + 8)?, 16).ok())
        .collect::<Option<Vec<u32>>>()?;
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
    let ip = match bytes.len() {
        4 => std::net::IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?),
        16 => {
            let v6 = std::net::Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?);
            v6.to_ipv4_mapped()
                .map_or(std::net::IpAddr::V6(v6), std::net::IpAddr::V4)
        }
        _ => return None,
    };
    Some((ip, port))
}

/// Established TCP connections of the process: to each of `endpoints`, and in all.
fn tcp_connections(pid: u32, endpoints: &[Endpoint]) -> Result<(Vec<usize>, usize), BoxError> {
    let mut inodes = std::collections::HashSet::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))? {
        let Ok(target) = std::fs::read_link(fd?.path()) else {
            continue;
        };
        if let Some(inode) = target
            .to_str()
            .and_then(|t| t.strip_prefix("socket:["))
            .and_then(|t| t.strip_suffix(']'))
        {
            inodes.insert(inode.to_owned());
        }
    }
    let (mut to, mut all) = (vec![0; endpoints.len()], 0);
    for table in ["tcp", "tcp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
            if f.len() < 10 || f[3] != "01" || !inodes.contains(f[9]) {
                continue;
            }
            all += 1;
            let Some((ip, port)) = proc_address(f[2]) else {
                continue;
            };
            if let Some(i) = endpoints.iter().position(|e| e.matches(ip, port)) {
                to[i] += 1;
            }
        }
    }
    Ok((to, all))
}

/// CPU of the process over `secs` while `load` runs, in % of one core.
async fn cpu_percent<F: std::future::Future<Output = Result<(), BoxError>>>(
    pid: u32,
    secs: u64,
    load: F,
) -> Result<f64, BoxError> {
    let ticks = clock_ticks();
    let (t, c) = (Instant::now(), cpu_ticks(pid)?);
    let deadline = tokio::time::sleep(Duration::from_secs(secs));
    tokio::pin!(deadline);
    tokio::pin!(load);
    let mut load_done = false;
    loop {
        tokio::select! {
            _ = &mut deadline => break,
            r = &mut load, if !load_done => { r?; load_done = true; }
        }
    }
    let used = (cpu_ticks(pid)? - c) as f64 / ticks;
    Ok(100.0 * used / t.elapsed().as_secs_f64())
}

// ---------------------------------------------------------------------------------------------
// the API

/// A drift event read from the event stream.
struct Seen {
    event: String,
    environment: String,
    kind: String,
    name: String,
    at: Instant,
}

#[derive(Default)]
struct Feed {
    seen: Vec<Seen>,
    lagged: usize,
}

/// Follows `GET /api/v1/events/stream`, recording each drift event with its arrival time.
async fn follow_events(http: reqwest::Client, base: String, feed: Arc<Mutex<Feed>>) {
    let mut resp = match http
        .get(format!("{base}/api/v1/events/stream"))
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => r,
        Ok(r) => return eprintln!("event stream: {}", r.status()),
        Err(e) => return eprintln!("event stream: {e}"),
    };
    let mut buf = String::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        let at = Instant::now();
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let message: String = buf.drain(..end + 2).collect();
            let (mut event, mut data) = (String::new(), String::new());
            for line in message.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    event = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            let mut feed = feed.lock().expect("the feed lock is never poisoned");
            if event == "lagged" {
                feed.lagged += 1;
                continue;
            }
            let Ok(v) = serde_json::from_str::<Value>(&data) else {
                continue;
            };
            let o = &v["drift"]["object"];
            if o.is_null() {
                continue;
            }
            let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
            feed.seen.push(Seen {
                event,
                environment: s(&o["environment"]),
                kind: s(&o["kind"]),
                name: s(&o["name"]),
                at,
            });
        }
    }
}

/// Where the environments stand.
struct Progress {
    scanned: usize,
    watching: usize,
    open_drifts: u64,
    /// `environment: error` of those whose last scan failed.
    errors: Vec<String>,
}

/// `driftguard serve`'s REST API (no token: it listens on 127.0.0.1) and what its event
/// stream said.
struct ServeApi {
    http: reqwest::Client,
    base: String,
    feed: Arc<Mutex<Feed>>,
}

impl ServeApi {
    async fn get(&self, path: &str) -> Result<Value, BoxError> {
        Ok(self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    async fn progress(&self) -> Result<Progress, BoxError> {
        let v = self.get("/api/v1/environments").await?;
        let items = v["items"].as_array().cloned().unwrap_or_default();
        Ok(Progress {
            scanned: items.iter().filter(|e| !e["last_scan"].is_null()).count(),
            watching: items
                .iter()
                .filter(|e| e["watching"].as_bool() == Some(true))
                .count(),
            open_drifts: items.iter().filter_map(|e| e["open_drifts"].as_u64()).sum(),
            errors: items
                .iter()
                .filter_map(|e| {
                    let err = e["last_error"].as_str()?;
                    Some(format!("{}: {err}", e["name"].as_str().unwrap_or("?")))
                })
                .collect(),
        })
    }

    /// Starts following the event stream.
    fn follow(&self) {
        tokio::spawn(follow_events(
            self.http.clone(),
            self.base.clone(),
            self.feed.clone(),
        ));
    }
}

/// Starts `driftguard serve` and waits until every environment has scanned once and watches.
async fn start(
    opts: &Options,
    c: &Cluster,
    config: &Path,
    api: &ServeApi,
) -> Result<(Server, Duration, Progress), BoxError> {
    let log = config.with_file_name("serve.log");
    let log_file = std::fs::File::create(&log)?;
    eprintln!(
        "starting {} serve ({} environments; log {})",
        opts.bin.display(),
        opts.envs,
        log.display()
    );
    let started = Instant::now();
    let child = Command::new(&opts.bin)
        .args(["serve", "--config"])
        .arg(config)
        .env("KUBECONFIG", &c.kubeconfig)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .spawn()?;
    let mut server = Server { child, log };
    let mut following = false;
    let mut last_report = Instant::now();
    loop {
        server.alive()?;
        if started.elapsed() > Duration::from_secs(opts.settle_timeout) {
            return Err(format!(
                "not settled within {} s:\n{}",
                opts.settle_timeout,
                server.log_tail()
            )
            .into());
        }
        if let Ok(p) = api.progress().await {
            if !following {
                api.follow();
                following = true;
            }
            if p.scanned == opts.envs && p.watching == opts.envs {
                return Ok((server, started.elapsed(), p));
            }
            if last_report.elapsed() > Duration::from_secs(10) {
                eprintln!(
                    "  {:.0} s: {} scanned, {} watching, {} failed",
                    started.elapsed().as_secs_f64(),
                    p.scanned,
                    p.watching,
                    p.errors.len()
                );
                last_report = Instant::now();
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The process's memory and connections.
struct Footprint {
    /// `VmRSS` and `VmHWM`, KiB.
    rss: u64,
    hwm: u64,
    /// Established TCP connections to the API servers (in all and of each cluster), and in all.
    api_conns: usize,
    by_cluster: Vec<usize>,
    all_conns: usize,
}

fn footprint(pid: u32, endpoints: &[Endpoint]) -> Result<Footprint, BoxError> {
    let (rss, hwm) = memory(pid)?;
    let (by_cluster, all_conns) = tcp_connections(pid, endpoints)?;
    Ok(Footprint {
        rss,
        hwm,
        api_conns: by_cluster.iter().sum(),
        by_cluster,
        all_conns,
    })
}

// ---------------------------------------------------------------------------------------------
// the measurements

/// A hand change: the object, and when its PATCH was answered.
struct Change {
    environment: String,
    kind: &'static str,
    name: String,
    answered: Instant,
}

impl Change {
    /// When the event stream announced `event` for the object.
    fn seen(&self, feed: &Feed, event: &str) -> Option<Instant> {
        feed.seen
            .iter()
            .find(|s| {
                s.event == event
                    && s.environment == self.environment
                    && s.kind == self.kind
                    && s.name == self.name
            })
            .map(|s| s.at)
    }
}

/// The objects changed by hand: spread over the environments, a ConfigMap and a Deployment in
/// turn.
fn pick_changes(envs: &[Env], n: usize) -> Vec<(usize, Value)> {
    (0..n)
        .map(|k| {
            let (env, slot) = if n <= envs.len() {
                (k * envs.len() / n, 0)
            } else {
                (k % envs.len(), k / envs.len())
            };
            let kind = if k % 2 == 0 {
                "ConfigMap"
            } else {
                "Deployment"
            };
            let of_kind: Vec<&Value> = envs[env]
                .objects
                .iter()
                .filter(|o| o["kind"] == kind)
                .collect();
            (env, of_kind[slot % of_kind.len()].clone())
        })
        .collect()
}

async fn hand_change(client: &Client, obj: &Value, k: usize) -> Result<(), BoxError> {
    let (api, name) = api_of(client, obj);
    let params = PatchParams {
        field_manager: Some(HAND.into()),
        ..PatchParams::default()
    };
    let patch = if obj["kind"] == "Deployment" {
        json!({"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": format!("registry.example/shop/svc:hotfix-{k}")}]}}}})
    } else {
        json!({"data": {"LOG_LEVEL": format!("debug-{k}")}})
    };
    api.patch(&name, &params, &Patch::Strategic(&patch)).await?;
    Ok(())
}

/// What the hand changes showed.
struct Detection {
    /// The objects as Git has them, with their clusters (applied back at the end).
    originals: Vec<(usize, Value)>,
    changes: Vec<Change>,
    /// From each PATCH's answer to its `detected` event, sorted.
    latencies: Vec<Duration>,
}

/// Makes `n` hand changes, `CHANGE_RATE` a second, and waits (60 s at most) for their drifts.
async fn detect(
    clients: &[Client],
    envs: &[Env],
    feed: &Mutex<Feed>,
    n: usize,
) -> Result<Detection, BoxError> {
    let targets = pick_changes(envs, n);
    let mut changes = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / CHANGE_RATE));
    for (k, (env, obj)) in targets.iter().enumerate() {
        tick.tick().await;
        hand_change(&clients[envs[*env].cluster], obj, k).await?;
        changes.push(Change {
            environment: envs[*env].namespace.clone(),
            kind: if obj["kind"] == "Deployment" {
                "Deployment"
            } else {
                "ConfigMap"
            },
            name: obj["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            answered: Instant::now(),
        });
    }
    let wait = Instant::now();
    let mut latencies = Vec::new();
    while wait.elapsed() < Duration::from_secs(60) {
        latencies = {
            let feed = feed.lock().expect("the feed lock is never poisoned");
            changes
                .iter()
                .filter_map(|ch| {
                    let at = ch.seen(&feed, "detected")?;
                    Some(at.saturating_duration_since(ch.answered))
                })
                .collect()
        };
        if latencies.len() == changes.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    latencies.sort();
    Ok(Detection {
        originals: targets
            .into_iter()
            .map(|(env, o)| (envs[env].cluster, o))
            .collect(),
        changes,
        latencies,
    })
}

/// Applies the objects changed by hand back as Git has them, so that the next run starts in
/// sync; answers how many drifts resolved (waiting 60 s at most).
async fn apply_back(
    clients: &[Client],
    detection: &Detection,
    feed: &Mutex<Feed>,
) -> Result<usize, BoxError> {
    let t = Instant::now();
    for (cluster, client) in clients.iter().enumerate() {
        let originals = detection
            .originals
            .iter()
            .filter(|(c, _)| *c == cluster)
            .map(|(_, o)| o.clone())
            .collect();
        apply_all(client, originals, "kubectl").await?;
    }
    loop {
        let resolved = {
            let feed = feed.lock().expect("the feed lock is never poisoned");
            detection
                .changes
                .iter()
                .filter(|ch| ch.seen(&feed, "resolved").is_some())
                .count()
        };
        if resolved == detection.changes.len() || t.elapsed() > Duration::from_secs(60) {
            return Ok(resolved);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What churn on untracked ConfigMaps cost and caused.
struct Churn {
    objects: usize,
    made: usize,
    cpu: f64,
    /// Drift events for them on the event stream.
    events: usize,
    /// Drifts for them in the API, open or resolved.
    drifts: u64,
}

/// `rate` merge patches a second on the churn ConfigMaps for `secs`, as a controller would
/// (field manager `churn-operator`, each on its cluster), while the process's CPU is measured.
async fn churn(
    clients: &[Client],
    envs: &[Env],
    api: &ServeApi,
    pid: u32,
    secs: u64,
    rate: f64,
) -> Result<Churn, BoxError> {
    let objects = churn_objects(envs);
    let seen_before = api.feed.lock().expect("the feed lock").seen.len();
    let made = Arc::new(AtomicUsize::new(0));
    let load = {
        let (clients, objects, made) = (clients.to_vec(), objects.clone(), made.clone());
        async move {
            let params = PatchParams {
                field_manager: Some("churn-operator".into()),
                ..PatchParams::default()
            };
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
            for i in 0.. {
                tick.tick().await;
                let (cluster, obj) = &objects[i % objects.len()];
                let (api, name) = api_of(&clients[*cluster], obj);
                let patch = json!({"data": {"counter": i.to_string()}});
                api.patch(&name, &params, &Patch::Merge(&patch)).await?;
                made.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<(), BoxError>(())
        }
    };
    let cpu = cpu_percent(pid, secs, load).await?;
    let made = made.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let events = api.feed.lock().expect("the feed lock").seen[seen_before..]
        .iter()
        .filter(|s| s.name.starts_with("churn-"))
        .count();
    let drifts = api
        .get("/api/v1/drifts?name=churn-*&status=all&limit=1")
        .await?["total"]
        .as_u64()
        .unwrap_or(0);
    Ok(Churn {
        objects: objects.len(),
        made,
        cpu,
        events,
        drifts,
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[i.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1000.0)
}

fn mb(kib: u64) -> String {
    format!("{:.0}", kib as f64 / 1024.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), BoxError> {
    let opts = Options::parse()?;
    let clusters = clusters(&opts)?;
    let result = run(&opts, &clusters).await;
    let started: Vec<&Path> = clusters.iter().filter_map(|c| c.run.as_deref()).collect();
    if opts.stop_clusters {
        for run in started {
            if let Err(e) = stop_bench_cluster(run) {
                eprintln!("{e}");
            }
        }
    } else if !started.is_empty() {
        eprintln!("the clusters the benchmark started keep running, with their objects for the next run; stop them with --stop-clusters or");
        for run in started {
            eprintln!(
                "  DRIFTGUARD_RUN={} {}",
                run.display(),
                cluster_script("stop.sh").display()
            );
        }
    }
    result
}

/// Every cluster's API-server metrics.
fn all_metrics(clusters: &[Cluster]) -> Result<Vec<Metrics>, BoxError> {
    clusters.iter().map(Cluster::metrics).collect()
}

/// The watches added between two readings of a cluster's metrics, by resource.
fn watches_added(before: &Metrics, after: &Metrics) -> BTreeMap<String, f64> {
    after
        .watches
        .iter()
        .filter_map(|(r, v)| {
            let d = v - before.watches.get(r).copied().unwrap_or(0.0);
            (d != 0.0).then(|| (r.clone(), d))
        })
        .collect()
}

fn by_resource(added: &BTreeMap<String, f64>) -> String {
    if added.is_empty() {
        return "none".to_owned();
    }
    added
        .iter()
        .map(|(r, d)| format!("{r} {d:+}"))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn run(opts: &Options, clusters: &[Cluster]) -> Result<(), BoxError> {
    let mut clients = Vec::new();
    for c in clusters {
        let source = KubeLiveSource::connect(&KubeConfigSpec {
            kubeconfig: Some(c.kubeconfig.clone()),
            context: None,
            in_cluster: false,
        })
        .await?;
        clients.push(source.client().clone());
    }
    let c = &clusters[0];
    let client = &clients[0];
    if opts.clean {
        if clusters.len() == 1 {
            return clean(client).await;
        }
        // every cluster, whatever one of them answers
        let mut first_error = None;
        for (i, (c, client)) in clusters.iter().zip(&clients).enumerate() {
            eprintln!("cluster {} ({}):", i + 1, c.origin);
            if let Err(e) = clean(client).await {
                eprintln!("  {e}");
                first_error.get_or_insert(e);
            }
        }
        return first_error.map_or(Ok(()), Err);
    }
    if !opts.bin.exists() {
        return Err(format!(
            "{}: no such binary (build it, or name it with --bin / DRIFTGUARD_BIN)",
            opts.bin.display()
        )
        .into());
    }
    let version = Command::new(&opts.bin)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())?;
    let endpoints = clusters
        .iter()
        .map(Cluster::api_endpoint)
        .collect::<Result<Vec<_>, _>>()?;
    let kube_versions: Vec<String> = clusters.iter().map(Cluster::server_version).collect();
    let kube_version = {
        let mut distinct: Vec<&str> = Vec::new();
        for v in &kube_versions {
            if !distinct.contains(&v.as_str()) {
                distinct.push(v);
            }
        }
        distinct.join(", ")
    };

    // the objects, the folders and the configuration
    let envs = fleet(opts.envs, opts.objects, clusters.len());
    let objects: usize = envs.iter().map(|e| e.objects.len()).sum();
    let name = |i: usize| {
        if clusters.len() == 1 {
            "cluster".to_owned()
        } else {
            format!("cluster {} ({})", i + 1, clusters[i].origin)
        }
    };
    for (i, client) in clients.iter().enumerate() {
        ensure(client, &envs, i, &name(i)).await?;
    }
    for (i, client) in clients.iter().enumerate() {
        let of = if clients.len() == 1 {
            String::new()
        } else {
            format!(" of cluster {}", i + 1)
        };
        caught_up(client, &of).await?;
    }
    let work = tempfile::Builder::new().prefix("fleet-bench-").tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    // DriftGuard's credentials: the admin's, or a read-only ServiceAccount's (as deployed)
    let driftguard_kubeconfigs: Vec<PathBuf> = if opts.service_account {
        clusters
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let suffix = if i == 0 {
                    String::new()
                } else {
                    format!("-{}", i + 1)
                };
                service_account_kubeconfig(c, work.path(), &suffix)
            })
            .collect::<Result<_, _>>()?
    } else {
        clusters.iter().map(|c| c.kubeconfig.clone()).collect()
    };
    let config = write_config(work.path(), &envs, &driftguard_kubeconfigs, port)?;
    let api = ServeApi {
        http: reqwest::Client::new(),
        base: format!("http://127.0.0.1:{port}"),
        feed: Arc::default(),
    };

    if opts.scan == Scan::Only {
        let (took, peak) = one_shot_scan(opts, c, &config)?;
        print_scan(opts, clusters.len(), &version, objects, took, peak);
        return Ok(());
    }

    // start-up, then the footprint once settled
    let before = all_metrics(clusters)?;
    let (mut server, startup, at_start) = start(opts, c, &config, &api).await?;
    let pid = server.pid();
    eprintln!(
        "all {} environments scanned and watching after {:.1} s",
        opts.envs,
        startup.as_secs_f64()
    );
    for e in at_start.errors.iter().take(5) {
        eprintln!("  error: {e}");
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let settled = footprint(pid, &endpoints)?;
    let settled_metrics = all_metrics(clusters)?;

    eprintln!("idle for {} s", opts.idle_secs);
    let idle = cpu_percent(pid, opts.idle_secs, async { Ok::<(), BoxError>(()) }).await?;

    eprintln!("{} hand changes, {CHANGE_RATE} a second", opts.changes);
    let detection = detect(&clients, &envs, &api.feed, opts.changes).await?;

    eprintln!(
        "churn: {} changes a second on untracked ConfigMaps for {} s",
        opts.churn_rate, opts.churn_secs
    );
    let churned = churn(&clients, &envs, &api, pid, opts.churn_secs, opts.churn_rate).await?;

    eprintln!("applying the hand changes back");
    let resolved = apply_back(&clients, &detection, &api.feed).await?;
    let open_at_end = api.progress().await?.open_drifts;
    let end = footprint(pid, &endpoints)?;
    let stopped = server.stop()?;
    let after = all_metrics(clusters)?;
    let lagged = api.feed.lock().expect("the feed lock").lagged;

    // the table
    let added: Vec<BTreeMap<String, f64>> = before
        .iter()
        .zip(&settled_metrics)
        .map(|(b, s)| watches_added(b, s))
        .collect();
    let watches_added: f64 = before
        .iter()
        .zip(&settled_metrics)
        .map(|(b, s)| s.watch_total() - b.watch_total())
        .sum();
    let mut added_in_all: BTreeMap<String, f64> = BTreeMap::new();
    for (r, d) in added.iter().flatten() {
        *added_in_all.entry(r.clone()).or_default() += d;
    }
    added_in_all.retain(|_, d| *d != 0.0);
    let latencies = &detection.latencies;
    // VmHWM is updated lazily: a VmRSS read earlier can exceed it
    let peak = end.hwm.max(settled.hwm).max(settled.rss).max(end.rss);
    println!(
        "fleet benchmark of `driftguard serve` on {} (kube-apiserver {kube_version}, {} cores){}",
        if clusters.len() == 1 {
            "the test cluster".to_owned()
        } else {
            format!("{} test clusters", clusters.len())
        },
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if opts.service_account {
            format!(
                ", DriftGuard as the ServiceAccount {SA_NAMESPACE}/driftguard (get, list, watch)"
            )
        } else {
            String::new()
        }
    );
    println!();
    println!("| binary | clusters | environments | objects | start-up to all watching (s) | RSS settled (MB) | RSS per object (KB) | peak RSS (MB) | API-server watches added | TCP connections to the API server | detection p50 / p99 / max (ms) | idle CPU (% of a core) | churn CPU (% of a core) |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    println!(
        "| `{}` ({version}) | {} | {} | {objects} | {:.1} | {} | {:.2} | {} | {watches_added:+} | {} | {} / {} / {} | {idle:.1} | {:.1} |",
        opts.bin.display(),
        clusters.len(),
        opts.envs,
        startup.as_secs_f64(),
        mb(settled.rss),
        settled.rss as f64 / objects as f64,
        mb(peak),
        settled.api_conns,
        ms(percentile(latencies, 50.0)),
        ms(percentile(latencies, 99.0)),
        ms(latencies.last().copied().unwrap_or_default()),
        churned.cpu,
    );
    println!();
    println!(
        "- watches added by resource: {}; TCP connections to the API server{}: {} once settled ({} in all), {} at the end",
        by_resource(&added_in_all),
        if clusters.len() == 1 { "" } else { "s" },
        settled.api_conns,
        settled.all_conns,
        end.api_conns
    );
    if clusters.len() > 1 {
        println!(
            "- per cluster (environment i on cluster i % {}):",
            clusters.len()
        );
        for (i, c) in clusters.iter().enumerate() {
            let of: Vec<&Env> = envs.iter().filter(|e| e.cluster == i).collect();
            println!(
                "  - cluster {} ({}, API server {}, kube-apiserver {}): {} environments, {} objects; watches added {:+} ({}); TCP connections {} once settled, {} at the end",
                i + 1,
                c.origin,
                endpoints[i].server,
                kube_versions[i],
                of.len(),
                of.iter().map(|e| e.objects.len()).sum::<usize>(),
                settled_metrics[i].watch_total() - before[i].watch_total(),
                by_resource(&added[i]),
                settled.by_cluster[i],
                end.by_cluster[i]
            );
        }
    }
    println!(
        "- RSS: {} MB settled, {} MB at the end; peak {} MB by the time it settled, {} MB over the run",
        mb(settled.rss),
        mb(end.rss),
        mb(settled.hwm),
        mb(peak)
    );
    println!(
        "- open drifts once settled: {} (expected 0); environments whose last scan failed: {}",
        at_start.open_drifts,
        at_start.errors.len()
    );
    println!(
        "- hand changes detected: {} of {} within 60 s; applied back: {resolved} resolved; open drifts at the end: {open_at_end}",
        latencies.len(),
        detection.changes.len()
    );
    println!(
        "- churn: {} changes on {} untracked ConfigMaps in {} s: {} drift events, {} drifts (their namespaces are not managed: no orphans)",
        churned.made, churned.objects, opts.churn_secs, churned.events, churned.drifts
    );
    let rejected = if before.iter().chain(&after).all(|m| m.rejected.is_none()) {
        "0 (`apiserver_flowcontrol_rejected_requests_total` absent: none rejected)".to_owned()
    } else {
        let d: f64 = before
            .iter()
            .zip(&after)
            .map(|(b, a)| a.rejected.unwrap_or(0.0) - b.rejected.unwrap_or(0.0))
            .sum();
        format!("{d:+}")
    };
    let too_many: f64 = before
        .iter()
        .zip(&after)
        .map(|(b, a)| a.too_many - b.too_many)
        .sum();
    println!(
        "- API server{} over the run: requests rejected by priority and fairness {rejected}; 429 answers {too_many:+} (all clients)",
        if clusters.len() == 1 { "" } else { "s" },
    );
    println!(
        "- stopped {:.1} s after SIGTERM; event stream lagged {lagged} times",
        stopped.as_secs_f64()
    );
    if opts.scan == Scan::After {
        let (took, peak) = one_shot_scan(opts, c, &config)?;
        println!();
        print_scan(opts, clusters.len(), &version, objects, took, peak);
    }
    Ok(())
}

fn print_scan(
    opts: &Options,
    clusters: usize,
    version: &str,
    objects: usize,
    took: Duration,
    peak_kib: u64,
) {
    println!("| one-shot `driftguard scan` ({version}) | clusters | environments | objects | wall time (s) | peak RSS (MB) | peak RSS per object (KB) |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    println!(
        "| `{}` | {clusters} | {} | {objects} | {:.1} | {} | {:.2} |",
        opts.bin.display(),
        opts.envs,
        took.as_secs_f64(),
        mb(peak_kib),
        peak_kib as f64 / objects as f64
    );
}
