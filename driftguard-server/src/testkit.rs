//! Helpers for tests and benchmarks: in-memory environments and stores filled with drifts.
//! Not for production use. The drifts and manifests themselves are made with the core's
//! builders (`driftguard_core::testkit`, `driftguard_test_support::build` in tests).

use std::sync::Arc;
use std::time::Duration;

use driftguard_core::engine::{Engine, EnvironmentSpec, Scanner};
use driftguard_core::id::ResourceId;
use driftguard_core::managed::FieldOwner;
use driftguard_core::memory::{MemoryGitSource, MemoryLiveSource};
use driftguard_core::model::{Provenance, RawLive, RawManifest, RawObject, Revision};
use driftguard_core::normalize::{Normalizer, SecretKey};
use driftguard_core::ports::{
    Clock, DesiredSet, DriftStore, GitSource, LiveSource, ScanBatch, ScanCounts, ScanSummary,
    StoreError,
};
use driftguard_core::severity::Severity;
use driftguard_core::state::{
    Attribution, Direction, Drift, DriftEvent, DriftKind, DriftRecord, EventKind, Hash64,
    Resolution,
};
use driftguard_core::testkit as build;
use serde_json::{json, Value};

use crate::audit::AuditSettings;
use crate::state::Environment;
use driftguard_core::audit::{AuditSpec, UserNames};

pub use driftguard_core::testkit::t0;

/// A desired set at a plain revision.
pub fn desired(revision: &str, objects: Vec<Value>) -> DesiredSet {
    DesiredSet {
        revision: Some(Revision::plain(revision)),
        objects: objects
            .into_iter()
            .enumerate()
            .map(|(i, o)| RawManifest {
                object: RawObject::new(o),
                provenance: Provenance {
                    file: "deploy.yaml".into(),
                    document: i,
                    line: 1 + i * 20,
                    revision: Some(revision.into()),
                    rendered: None,
                },
            })
            .collect(),
        ..DesiredSet::default()
    }
}

/// Live copies of objects (with a uid).
pub fn live(objects: Vec<Value>) -> Vec<RawLive> {
    objects
        .into_iter()
        .enumerate()
        .map(|(i, mut o)| {
            o["metadata"]["uid"] = json!(format!("uid-{i}"));
            RawLive::new(o)
        })
        .collect()
}

/// An environment on in-memory sources: returns the environment and its sources.
pub fn memory_environment(
    name: &str,
    store: Arc<dyn DriftStore>,
    clock: Arc<dyn Clock>,
    poll: Duration,
    full: Duration,
) -> (
    Arc<Environment>,
    Arc<MemoryGitSource>,
    Arc<MemoryLiveSource>,
) {
    let git = Arc::new(MemoryGitSource::new());
    let live = Arc::new(MemoryLiveSource::new());
    let env = environment(name, git.clone(), live.clone(), store, clock, poll, full);
    (env, git, live)
}

/// An environment over any sources.
pub fn environment(
    name: &str,
    git: Arc<dyn GitSource>,
    live: Arc<dyn LiveSource>,
    store: Arc<dyn DriftStore>,
    clock: Arc<dyn Clock>,
    poll: Duration,
    full: Duration,
) -> Arc<Environment> {
    let engine = Engine::new(
        EnvironmentSpec::new(name),
        Normalizer::new(SecretKey::new(b"test-key".to_vec())),
    );
    let scanner = Scanner::new(engine, git, live, store, clock);
    Arc::new(Environment::new(Arc::new(scanner), poll, full))
}

/// An environment on in-memory sources that keeps an audit index (default limits, `names`
/// applied to people) and takes audit posts with `token` (bodies up to `max_body` bytes).
pub fn audited_environment(
    name: &str,
    store: Arc<dyn DriftStore>,
    clock: Arc<dyn Clock>,
    names: UserNames,
    token: &str,
    max_body: usize,
) -> (
    Arc<Environment>,
    Arc<MemoryGitSource>,
    Arc<MemoryLiveSource>,
) {
    let git = Arc::new(MemoryGitSource::new());
    let live = Arc::new(MemoryLiveSource::new());
    let mut spec = EnvironmentSpec::new(name);
    spec.audit = Some(AuditSpec {
        user_names: names,
        ..AuditSpec::default()
    });
    let engine = Engine::new(spec, Normalizer::new(SecretKey::new(b"test-key".to_vec())));
    let scanner = Scanner::new(engine, git.clone(), live.clone(), store, clock);
    let env = Environment::new(
        Arc::new(scanner),
        Duration::from_secs(3600),
        Duration::from_secs(3600),
    )
    .with_audit(AuditSettings {
        tokens: vec![token.to_owned()],
        webhook: true,
        max_body,
        log: None,
        log_every: Duration::from_secs(3600),
    });
    (Arc::new(env), git, live)
}

/// Drift episode number `i` of `env`: the Deployment `ns-<i % 5>/web-<i>`, its kind and
/// direction cycling with `i` (a modified one has its replicas cut, owned by `kubectl-edit`),
/// detected `i` seconds after [`t0`], resolved a minute later unless `open`.
pub fn numbered_drift(env: &str, i: usize, severity: Severity, open: bool) -> Drift {
    let ns = format!("ns-{}", i % 5);
    let kind = match i % 3 {
        0 => DriftKind::Modified,
        1 => DriftKind::Missing,
        _ => DriftKind::Orphan,
    };
    let direction = if i.is_multiple_of(2) {
        Direction::Forward
    } else {
        Direction::Reverse
    };
    let at = t0() + chrono::Duration::seconds(i as i64);
    let d = build::drift()
        .episode(format!("{env}-{i:08}"))
        .id(ResourceId::new(
            env,
            "apps",
            "Deployment",
            Some(&ns),
            format!("web-{i}"),
        ))
        .kind(kind)
        .direction(direction)
        .severity(severity)
        .attribution(Attribution {
            owners: vec![FieldOwner {
                path: "spec.replicas".into(),
                manager: "kubectl-edit".into(),
                operation: "Update".into(),
                subresource: String::new(),
                time: Some(at),
                audit_id: None,
            }],
            ..Attribution::default()
        })
        .at(at)
        .revision("rev-1")
        .provenance("deploy.yaml", 0, 1);
    let d = if kind == DriftKind::Modified {
        d.field("spec.replicas", Some(json!(3)), Some(json!(5)))
            .finding(build::replicas_cut())
    } else {
        d
    };
    if open {
        d.build()
    } else {
        d.resolved(at + chrono::Duration::seconds(60), Resolution::Reverted)
            .build()
    }
}

/// Writes `n` drift episodes of `env` (every fourth one resolved, severities cycling) with
/// their records, detection (and resolution) events and one scan summary.
pub async fn fill_store(
    store: &dyn DriftStore,
    env: &str,
    n: usize,
    resolved_every: usize,
) -> Result<(), StoreError> {
    let severities = [
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];
    let mut batch = ScanBatch {
        environment: env.into(),
        summary: Some(ScanSummary {
            scan_id: format!("{env}-fill"),
            environment: env.into(),
            started_at: t0(),
            duration_ms: 12,
            revision: Some("rev-1".into()),
            counts: ScanCounts {
                tracked: n,
                modified: n,
                ..ScanCounts::default()
            },
            score: 0.5,
            errors: Vec::new(),
            events: n,
        }),
        ..ScanBatch::default()
    };
    let scan = format!("{env}-fill");
    for i in 0..n {
        let open = resolved_every == 0 || i % resolved_every != resolved_every - 1;
        let d = numbered_drift(env, i, severities[i % 4], open);
        let mut opened = d.clone();
        opened.resolved_at = None;
        opened.resolution = None;
        batch.events.push(DriftEvent {
            event_id: format!("{}-d", d.episode),
            ..build::event(EventKind::Detected, &opened, d.detected_at, &scan)
        });
        if !open {
            batch.events.push(DriftEvent {
                event_id: format!("{}-r", d.episode),
                ..build::event(
                    EventKind::Resolved,
                    &d,
                    d.resolved_at.unwrap_or(d.detected_at),
                    &scan,
                )
            });
        }
        batch.upserts.push(DriftRecord {
            desired_hash: Some(Hash64(i as u64)),
            live_hash: Some(Hash64(i as u64 + 1)),
            ..build::record(&d.id, open.then_some(d.clone()), d.updated_at)
        });
    }
    store.commit(&batch).await
}
