//! Prints how many audit events per second one core ingests (issue 17: at least 10,000/s):
//! `audit.k8s.io/v1` `EventList` bodies as the API server's batch webhook posts them (400
//! events each, `Metadata` level), parsed (metadata only) and added to an environment's index
//! of recent writes through `Scanner::ingest_audit`, which saves what changed to the store (the
//! in-memory store here: the store's own cost is measured by the `store` bench). By wall time
//! and by this thread's CPU time, on a current-thread runtime, so that it is one core.
//!
//! The events: writes to up to 250,000 objects (five kinds, 50 namespaces, 1,000 names; more
//! than the index keeps by default, 50,000, so that it evicts too), by 200 people, 20 service
//! accounts and the controllers (whose writes the policy usually drops; here they are sent and
//! ignored); a tenth of them failed (409) or reads, which are received and ignored too.
//! `AUDIT_EVENTS=400000` for more.

use std::sync::Arc;
use std::time::Instant;

use chrono::{Duration, SecondsFormat, TimeZone, Utc};
use driftguard_core::audit::{parse_event_list, AuditSpec};
use driftguard_core::memory::{ManualClock, MemoryGitSource, MemoryLiveSource, MemoryStore};
use driftguard_core::prelude::*;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// CPU seconds used by this thread (Linux: /proc/thread-self/stat, fields utime + stime).
fn thread_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const KINDS: [(&str, &str, &str); 5] = [
    ("apps", "deployments", "apps/v1"),
    ("", "configmaps", "v1"),
    ("", "services", "v1"),
    ("apps", "statefulsets", "apps/v1"),
    ("", "secrets", "v1"),
];

/// One event as a 1.20 API server writes it at `Metadata` level.
fn event(rng: &mut Rng, i: usize, base: chrono::DateTime<Utc>) -> String {
    let (group, resource, api_version) = KINDS[rng.below(KINDS.len() as u64) as usize];
    let ns = format!("team-{}", rng.below(50));
    let name = format!("app-{}", rng.below(1000));
    let who = rng.below(100);
    let (user, groups, agent) = if who < 70 {
        (
            format!("user{}@example.com", rng.below(200)),
            r#"["dev","system:authenticated"]"#,
            "kubectl/v1.20.2 (linux/amd64) kubernetes/faecb19",
        )
    } else if who < 90 {
        (
            format!("system:serviceaccount:ci:deployer-{}", rng.below(20)),
            r#"["system:serviceaccounts","system:serviceaccounts:ci","system:authenticated"]"#,
            "argocd-application-controller/v0.0.0 (linux/amd64) kubernetes/$Format",
        )
    } else {
        (
            "system:serviceaccount:kube-system:deployment-controller".to_owned(),
            r#"["system:serviceaccounts","system:serviceaccounts:kube-system","system:authenticated"]"#,
            "kube-controller-manager/v1.20.2 (linux/amd64) kubernetes/faecb19/system:serviceaccount:kube-system:deployment-controller",
        )
    };
    let (verb, manager) = match rng.below(10) {
        0 => ("get", ""),
        1 => ("create", "kubectl-create"),
        2 => ("update", "kubectl-edit"),
        3 => ("delete", ""),
        _ => ("patch", "kubectl-patch"),
    };
    let code = if rng.below(20) == 0 { 409 } else { 200 };
    let subresource = if resource == "deployments" && rng.below(5) == 0 {
        r#","subresource":"scale""#
    } else {
        ""
    };
    let received = base + Duration::milliseconds(i as i64 * 3);
    let done = received + Duration::milliseconds(15);
    let ts = |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Micros, true);
    let prefix = if group.is_empty() {
        "/api/v1".to_owned()
    } else {
        format!("/apis/{group}/v1")
    };
    let query = if manager.is_empty() {
        String::new()
    } else {
        format!("?fieldManager={manager}")
    };
    format!(
        r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"{id:08x}-5b1e-4c6a-9d2f-{i:012x}","stage":"ResponseComplete","requestURI":"{prefix}/namespaces/{ns}/{resource}/{name}{query}","verb":"{verb}","user":{{"username":"{user}","groups":{groups}}},"sourceIPs":["10.0.{a}.{b}"],"userAgent":"{agent}","objectRef":{{"resource":"{resource}","namespace":"{ns}","name":"{name}","apiGroup":"{group}","apiVersion":"{api_version}"{subresource}}},"responseStatus":{{"metadata":{{}},"code":{code}}},"requestReceivedTimestamp":"{r}","stageTimestamp":"{d}","annotations":{{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":"RBAC: allowed by RoleBinding \"editors/{ns}\" of ClusterRole \"edit\" to User \"{user}\""}}}}"#,
        id = rng.next() as u32,
        a = rng.below(256),
        b = rng.below(256),
        r = ts(received),
        d = ts(done),
    )
}

fn main() {
    let total: usize = std::env::var("AUDIT_EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200_000);
    const BATCH: usize = 400;
    let base = Utc
        .with_ymd_and_hms(2026, 11, 1, 12, 0, 0)
        .single()
        .expect("a valid time");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let bodies: Vec<Vec<u8>> = (0..total.div_ceil(BATCH))
        .map(|b| {
            let items: Vec<String> = (b * BATCH..((b + 1) * BATCH).min(total))
                .map(|i| event(&mut rng, i, base))
                .collect();
            format!(
                r#"{{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{{}},"items":[{}]}}"#,
                items.join(",")
            )
            .into_bytes()
        })
        .collect();
    let bytes: usize = bodies.iter().map(Vec::len).sum();
    println!(
        "{total} audit events in {} posts of {BATCH} ({:.1} MiB, {} bytes an event)",
        bodies.len(),
        bytes as f64 / 1048576.0,
        bytes / total.max(1)
    );

    let mut spec = EnvironmentSpec::new("bench");
    spec.audit = Some(AuditSpec::default());
    let engine = Engine::new(spec, Normalizer::new(SecretKey::new(b"bench-key".to_vec())));
    // the index keeps a week: the events are an hour old at most
    let clock = Arc::new(ManualClock::new(base + Duration::hours(1)));
    let scanner = Scanner::new(
        engine,
        Arc::new(MemoryGitSource::new()),
        Arc::new(MemoryLiveSource::new()),
        Arc::new(MemoryStore::new()),
        clock,
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");

    // parsing alone, then parsing and ingesting (the webhook's work per post)
    let (cpu, wall) = (thread_cpu_seconds(), Instant::now());
    let mut parsed = 0;
    for body in &bodies {
        parsed += parse_event_list(body).expect("a valid list").len();
    }
    let (parse_wall, parse_cpu) = (wall.elapsed().as_secs_f64(), thread_cpu_seconds() - cpu);
    assert_eq!(parsed, total);
    println!(
        "parse only:      {:>9.0} events/s wall, {:>9.0} events/s CPU",
        total as f64 / parse_wall,
        total as f64 / parse_cpu.max(0.01)
    );

    let (cpu, wall) = (thread_cpu_seconds(), Instant::now());
    let (mut indexed, mut ignored, mut duplicates) = (0, 0, 0);
    rt.block_on(async {
        for body in &bodies {
            let events = parse_event_list(body).expect("a valid list");
            let stats = scanner.ingest_audit(&events, None).await.expect("ingested");
            indexed += stats.indexed;
            ignored += stats.ignored;
            duplicates += stats.duplicates;
        }
    });
    let (wall, cpu) = (wall.elapsed().as_secs_f64(), thread_cpu_seconds() - cpu);
    println!(
        "parse + ingest:  {:>9.0} events/s wall, {:>9.0} events/s CPU ({indexed} writes indexed, {ignored} ignored, {duplicates} beyond the limits or seen)",
        total as f64 / wall,
        total as f64 / cpu.max(0.01)
    );
    // a second pass: every event seen already (an API server retrying its posts)
    let wall = Instant::now();
    rt.block_on(async {
        for body in &bodies {
            let events = parse_event_list(body).expect("a valid list");
            scanner.ingest_audit(&events, None).await.expect("ingested");
        }
    });
    println!(
        "posted again:    {:>9.0} events/s wall",
        total as f64 / wall.elapsed().as_secs_f64()
    );
}
